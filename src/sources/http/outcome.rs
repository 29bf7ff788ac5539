//! How the HTTP source answers: FHIR `OperationOutcome` bodies (one issue, `severity`, `code` from
//! the FHIR issue-type value set, `diagnostics` in plain words), FHIR JSON resources, the header
//! names the source writes, and the answers for unknown paths and methods. Nothing here decides
//! what happened; callers pass the status and the words.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde_json::{Value, json};

/// Media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// The envelope id of a message the hub kept (published, quarantined or dead-lettered).
pub const ENVELOPE_HEADER: &str = "X-Kaigo-Envelope";
/// The ids of the consent grants a `POST /fhir/Consent` stored, comma-separated.
pub const CONSENT_HEADER: &str = "X-Kaigo-Consent";
/// The sender's own request id; kept as the correlation id and echoed back.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
/// Seconds a sender should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 30;

/// FHIR `IssueType` codes the source uses (http://hl7.org/fhir/R4/valueset-issue-type.html).
#[derive(Debug, Clone, Copy)]
pub enum Issue {
    /// 202/201/200: it worked.
    Informational,
    /// 401: no or unknown credentials.
    Login,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 202 with some documents refused: one such issue per document that may not go on (a
    /// warning: the message itself was accepted).
    DocumentRefused,
    /// 400: the body is not JSON.
    Structure,
    /// 400: JSON, but not what this URL takes.
    Invalid,
    /// 422: could not be mapped or imported.
    Processing,
    /// 409: a different consent already has this id.
    Duplicate,
    /// 413: the body is larger than allowed.
    TooLong,
    /// 404/405/415: not something this server does.
    NotSupported,
    /// 404: no such path.
    NotFound,
    /// 503: try again later.
    Transient,
    /// 500: the hub failed.
    Exception,
}

impl Issue {
    fn code(self) -> &'static str {
        match self {
            Issue::Informational => "informational",
            Issue::Login => "login",
            Issue::Forbidden | Issue::DocumentRefused => "forbidden",
            Issue::Structure => "structure",
            Issue::Invalid => "invalid",
            Issue::Processing => "processing",
            Issue::Duplicate => "duplicate",
            Issue::TooLong => "too-long",
            Issue::NotSupported => "not-supported",
            Issue::NotFound => "not-found",
            Issue::Transient => "transient",
            Issue::Exception => "exception",
        }
    }

    fn severity(self) -> &'static str {
        match self {
            Issue::Informational => "information",
            Issue::Exception => "fatal",
            Issue::DocumentRefused => "warning",
            _ => "error",
        }
    }
}

/// The `OperationOutcome` JSON for one issue.
pub fn outcome_json(issue: Issue, diagnostics: &str) -> Value {
    issues_json(&[(issue, diagnostics.to_string())])
}

/// The `OperationOutcome` JSON for several issues, in order.
pub fn issues_json(issues: &[(Issue, String)]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|(issue, diagnostics)| {
            json!({
                "severity": issue.severity(),
                "code": issue.code(),
                "diagnostics": diagnostics,
            })
        })
        .collect();
    json!({
        "resourceType": "OperationOutcome",
        "issue": issues,
    })
}

/// Finishes `builder` with an `OperationOutcome` body of several issues.
pub fn outcome_issues(
    mut builder: HttpResponseBuilder,
    issues: &[(Issue, String)],
) -> HttpResponse {
    builder
        .content_type(FHIR_JSON)
        .body(issues_json(issues).to_string())
}

/// Finishes `builder` (status and any headers already set) with an `OperationOutcome` body.
pub fn outcome(mut builder: HttpResponseBuilder, issue: Issue, diagnostics: &str) -> HttpResponse {
    builder
        .content_type(FHIR_JSON)
        .body(outcome_json(issue, diagnostics).to_string())
}

/// A refusal decided on the way into a handler, as a value; the handler renders it with
/// [`Refused::into_response`] (an `OperationOutcome` with `status`).
#[derive(Debug)]
pub struct Refused {
    /// HTTP status.
    pub status: StatusCode,
    /// The issue type.
    pub issue: Issue,
    /// What is wrong and what to do.
    pub diagnostics: String,
    /// Headers to send along (`WWW-Authenticate`, `Retry-After`, …).
    pub headers: Vec<(HeaderName, String)>,
}

impl Refused {
    /// A refusal without extra headers.
    pub fn new(status: StatusCode, issue: Issue, diagnostics: impl Into<String>) -> Refused {
        Refused {
            status,
            issue,
            diagnostics: diagnostics.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the answer.
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Refused {
        self.headers.push((name, value.into()));
        self
    }

    /// The answer.
    pub fn into_response(self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        for (n, v) in self.headers {
            b.insert_header((n, v));
        }
        outcome(b, self.issue, &self.diagnostics)
    }
}

/// An `OperationOutcome` answer with only a status.
pub fn status(status: StatusCode, issue: Issue, diagnostics: &str) -> HttpResponse {
    outcome(HttpResponse::build(status), issue, diagnostics)
}

/// A FHIR resource answer.
pub fn resource(status: StatusCode, value: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(FHIR_JSON)
        .body(value.to_string())
}

/// 503 with `Retry-After`.
pub fn unavailable(diagnostics: &str) -> HttpResponse {
    outcome(
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
            .take(),
        Issue::Transient,
        diagnostics,
    )
}

/// Text from the request for a message: at most `max` characters.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// Any path no route serves.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    status(
        StatusCode::NOT_FOUND,
        Issue::NotFound,
        &format!(
            "nothing is served at {}; see GET /fhir/metadata for what this server does",
            clip(req.path(), 200)
        ),
    )
}

/// A known path asked with a method it does not take.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allow = match req.path() {
        "/fhir/metadata" | "/fhir/AuditEvent" | "/health" | "/metrics" => "GET",
        _ => "POST",
    };
    outcome(
        HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
            .insert_header(("Allow", allow))
            .take(),
        Issue::NotSupported,
        &format!("{} takes {allow} only", clip(req.path(), 200)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_successes_share_one_shape() {
        let e = outcome_json(Issue::TooLong, "too big");
        assert_eq!(e["resourceType"], "OperationOutcome");
        assert_eq!(e["issue"][0]["severity"], "error");
        assert_eq!(e["issue"][0]["code"], "too-long");
        assert_eq!(e["issue"][0]["diagnostics"], "too big");
        let ok = outcome_json(Issue::Informational, "accepted");
        assert_eq!(ok["issue"][0]["severity"], "information");
        assert_eq!(ok["issue"][0]["code"], "informational");
        let partly = issues_json(&[
            (Issue::Informational, "accepted".into()),
            (Issue::DocumentRefused, "document 2 refused".into()),
        ]);
        assert_eq!(partly["issue"].as_array().map(Vec::len), Some(2));
        assert_eq!(partly["issue"][1]["severity"], "warning");
        assert_eq!(partly["issue"][1]["code"], "forbidden");
        assert_eq!(partly["issue"][1]["diagnostics"], "document 2 refused");
    }

    #[test]
    fn clip_keeps_short_text_and_marks_cut_text() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("保険者番号", 2), "保険…");
    }
}
