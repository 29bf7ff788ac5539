//! Who is asking: `Authorization: Bearer <API key>` matched (by SHA-256) against the parties file,
//! and which kinds of party may use an endpoint. In: the request; out: the owning [`Party`], or
//! the 401/403 answer to send. Must never echo the key, or take an identity from anything but it.

use super::outcome::{Issue, Refused};
use crate::consent::PartyKind;
use crate::parties::{Parties, Party};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};

/// The party owning the request's API key, or the 401 to answer.
pub fn authenticate(req: &HttpRequest, parties: &Parties) -> Result<Party, Refused> {
    let challenge = |error: Option<&str>, diagnostics: &str| {
        let value = match error {
            Some(e) => format!("Bearer realm=\"kaigo-hub\", error=\"{e}\""),
            None => "Bearer realm=\"kaigo-hub\"".to_string(),
        };
        tracing::warn!(peer = ?req.peer_addr(), path = req.path(), "HTTP request refused: {diagnostics}");
        Refused::new(StatusCode::UNAUTHORIZED, Issue::Login, diagnostics)
            .header(WWW_AUTHENTICATE, value)
    };
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return Err(challenge(
            None,
            "no credentials: send `Authorization: Bearer <API key>` with the key the platform issued to your organisation",
        ));
    };
    let key = header
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err(challenge(
            Some("invalid_request"),
            "the Authorization header is not `Bearer <API key>`",
        ));
    };
    match parties.by_api_key(key) {
        Some(p) => Ok(p.clone()),
        None => Err(challenge(
            Some("invalid_token"),
            "the API key is not known to this hub; check the key, or ask the hub's operator to register it",
        )),
    }
}

/// Refuses (403) a party whose kind is not in `allowed`, naming what the endpoint is for.
pub fn require_kind(party: &Party, allowed: &[PartyKind], what: &str) -> Result<(), Refused> {
    if allowed.contains(&party.kind) {
        return Ok(());
    }
    let kinds: Vec<&str> = allowed.iter().map(|k| k.code()).collect();
    Err(Refused::new(
        StatusCode::FORBIDDEN,
        Issue::Forbidden,
        format!(
            "party {} is a {}; only a {} may {what}",
            party.id,
            party.kind.code(),
            kinds.join(" or ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parties::{PartiesFile, key_hash};
    use actix_web::test::TestRequest;

    fn parties() -> Parties {
        let yaml = format!(
            "hub: {{ id: \"9990000001\" }}\nparties:\n  - id: \"1311234567\"\n    kind: hospital\n    api_keys_sha256: [\"{}\"]\n",
            key_hash("right-key")
        );
        let file: PartiesFile = serde_saphyr::from_str(&yaml).expect("test parties parse");
        Parties::check(file).expect("test parties are valid")
    }

    #[test]
    fn the_key_names_the_party_and_the_scheme_is_case_insensitive() {
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, "bearer right-key"))
            .to_http_request();
        assert_eq!(
            authenticate(&req, &parties()).expect("known key").id,
            "1311234567"
        );
    }

    #[test]
    fn missing_malformed_and_unknown_keys_get_401_with_a_challenge() {
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer wrong-key"),
            Some("Bearer "),
        ] {
            let mut req = TestRequest::default();
            if let Some(h) = header {
                req = req.insert_header((AUTHORIZATION, h));
            }
            let resp = authenticate(&req.to_http_request(), &parties())
                .expect_err("refused")
                .into_response();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header:?}");
            let challenge = resp.headers().get(WWW_AUTHENTICATE).expect("challenge");
            assert!(challenge.to_str().unwrap_or("").starts_with("Bearer"));
        }
    }
}
