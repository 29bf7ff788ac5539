//! The request body of a FHIR POST: its media type (`application/fhir+json` or `application/json`,
//! UTF-8), its size (at most `body_limit`, the limit of every door, refused from `Content-Length`
//! before reading when it says so), and what resource it is (`resourceType`). In: the request and
//! its payload; out: the bytes untouched, or the 413/415/400 answer. Must never read past the
//! limit.

use super::outcome::{Issue, Refused};
use crate::pipeline::body_limit::{BodyLimit, TooLarge};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::{Bytes, Payload};

/// Why a body was refused, as a short code for the audit log and the answer to send.
pub struct BodyRefusal {
    /// Reason code for the audit event (`unsupported-media-type`, `body-too-large`, …).
    pub reason: &'static str,
    /// The answer.
    pub refused: Refused,
}

fn refuse(reason: &'static str, code: StatusCode, issue: Issue, diagnostics: &str) -> BodyRefusal {
    BodyRefusal {
        reason,
        refused: Refused::new(code, issue, diagnostics),
    }
}

/// Accepts `application/fhir+json` and `application/json`, with no charset or `utf-8`.
pub fn check_content_type(req: &HttpRequest) -> Result<(), BodyRefusal> {
    let unsupported = |what: &str| {
        refuse(
            "unsupported-media-type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Issue::NotSupported,
            &format!(
                "{what}; send FHIR JSON as `Content-Type: application/fhir+json` (or application/json), UTF-8"
            ),
        )
    };
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Err(unsupported("no Content-Type"));
    };
    let Ok(value) = value.to_str() else {
        return Err(unsupported("the Content-Type is not readable text"));
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/fhir+json" && essence != "application/json" {
        return Err(unsupported(&format!(
            "Content-Type `{}` is not taken here",
            super::outcome::clip(&essence, 80)
        )));
    }
    for param in parts {
        if let Some((name, v)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
        {
            let v = v.trim().trim_matches('"');
            if !v.eq_ignore_ascii_case("utf-8") && !v.eq_ignore_ascii_case("utf8") {
                return Err(unsupported(&format!(
                    "charset `{}` is not taken (FHIR JSON is UTF-8)",
                    super::outcome::clip(v, 40)
                )));
            }
        }
    }
    Ok(())
}

/// Reads the whole body, refusing it once it is larger than `limit`.
pub async fn read_limited(
    req: &HttpRequest,
    payload: Payload,
    limit: BodyLimit,
) -> Result<Bytes, BodyRefusal> {
    let too_large = |size: Option<u64>| {
        refuse(
            TooLarge::REASON,
            StatusCode::PAYLOAD_TOO_LARGE,
            Issue::TooLong,
            &limit.exceeded("the body", size).to_string(),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && limit.check("the body", n).is_err()
    {
        return Err(too_large(Some(n)));
    }
    let bytes = match payload.to_bytes_limited(limit.bytes()).await {
        Err(_) => return Err(too_large(declared)),
        Ok(Err(e)) => {
            return Err(refuse(
                "body-unreadable",
                StatusCode::BAD_REQUEST,
                Issue::Structure,
                &format!("the body could not be read: {e}"),
            ));
        }
        Ok(Ok(b)) => b,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(refuse(
            "empty-body",
            StatusCode::BAD_REQUEST,
            Issue::Structure,
            "the body is empty; send one FHIR resource as JSON",
        ));
    }
    Ok(bytes)
}

/// What the body says it is.
pub enum ResourceType {
    /// A JSON object with a string `resourceType`.
    Named(String),
    /// Valid JSON, but no `resourceType` string at the top.
    Unnamed,
}

/// Parses the body as JSON and reads its `resourceType`; `Err` is the JSON error (with line and
/// column) for a body that is not JSON.
pub fn resource_type(bytes: &[u8]) -> Result<ResourceType, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(match value.get("resourceType").and_then(|t| t.as_str()) {
        Some(t) => ResourceType::Named(t.to_string()),
        None => ResourceType::Unnamed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn with_type(ct: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((CONTENT_TYPE, ct))
            .to_http_request()
    }

    #[test]
    fn fhir_and_plain_json_in_utf8_are_taken() {
        for ct in [
            "application/fhir+json",
            "application/json",
            "Application/FHIR+JSON; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
        ] {
            assert!(check_content_type(&with_type(ct)).is_ok(), "{ct}");
        }
    }

    #[test]
    fn other_types_and_charsets_are_415() {
        for ct in [
            "text/plain",
            "application/xml",
            "application/fhir+json; charset=shift_jis",
        ] {
            let r = check_content_type(&with_type(ct)).expect_err("refused");
            assert_eq!(r.refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        }
        let r = check_content_type(&TestRequest::default().to_http_request())
            .expect_err("no type is refused");
        assert_eq!(r.reason, "unsupported-media-type");
    }

    #[test]
    fn resource_type_is_read_and_broken_json_names_line_and_column() {
        assert!(matches!(
            resource_type(b"{\"resourceType\":\"Patient\"}"),
            Ok(ResourceType::Named(t)) if t == "Patient"
        ));
        assert!(matches!(resource_type(b"[1,2]"), Ok(ResourceType::Unnamed)));
        let e = resource_type(b"{\n  \"resourceType\": }")
            .err()
            .unwrap_or_default();
        assert!(e.contains("line 2"), "{e}");
    }
}
