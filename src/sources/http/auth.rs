//! Who is asking: the client certificate verified in the TLS handshake (its SHA-256 fingerprint
//! matched against `client_certs_sha256` in the parties file) and/or `Authorization: Bearer <API
//! key>` (matched by SHA-256 against `api_keys_sha256`), and which kinds of party may use an
//! endpoint. In: the request (and its connection's [`ClientCert`]); out: the owning [`Party`], or
//! the 401/403 answer to send. Must never echo the key, or take an identity from anything but
//! these credentials.
//!
//! The rules, certificate first because the handshake already proved it:
//! - a certificate whose fingerprint belongs to a party makes that party the caller; an API key
//!   sent along must be one of *that* party's keys — a key of another party is `403` (a party may
//!   only act as itself; both credentials are genuine, so this is not a login problem), an unknown
//!   or malformed key `401`;
//! - a verified certificate no party lists is `401`, whatever key comes with it: the hub does not
//!   fall back to the key when a client claims an identity it cannot place;
//! - no certificate: the API key alone decides, as over plain HTTP.

use super::outcome::{Issue, Refused};
use super::tls::ClientCert;
use crate::consent::PartyKind;
use crate::parties::{Parties, Party};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};

/// The party the request's credentials name, or the 401/403 to answer.
pub fn authenticate(req: &HttpRequest, parties: &Parties) -> Result<Party, Refused> {
    let cert = req.conn_data::<ClientCert>().map(|c| c.sha256.clone());
    authenticate_with(req, cert.as_deref(), parties)
}

/// [`authenticate`], given the fingerprint of the connection's verified client certificate.
fn authenticate_with(
    req: &HttpRequest,
    cert_sha256: Option<&str>,
    parties: &Parties,
) -> Result<Party, Refused> {
    let challenge = |error: Option<&str>, diagnostics: &str| {
        let value = match error {
            Some(e) => format!("Bearer realm=\"kaigo-hub\", error=\"{e}\""),
            None => "Bearer realm=\"kaigo-hub\"".to_string(),
        };
        tracing::warn!(peer = ?req.peer_addr(), path = req.path(), "HTTP request refused: {diagnostics}");
        Refused::new(StatusCode::UNAUTHORIZED, Issue::Login, diagnostics)
            .header(WWW_AUTHENTICATE, value)
    };
    let by_cert = match cert_sha256 {
        None => None,
        Some(fp) => match parties.by_client_cert(fp) {
            Some(p) => Some(p),
            None => {
                return Err(challenge(
                    None,
                    &format!(
                        "the client certificate (SHA-256 {fp}) is issued by a CA this hub trusts \
                         but is not registered to any party; ask the hub's operator to add this \
                         fingerprint to `client_certs_sha256` of your organisation, or connect \
                         without a client certificate and send your API key"
                    ),
                ));
            }
        },
    };
    let Some(header) = req.headers().get(AUTHORIZATION) else {
        return match by_cert {
            Some(p) => Ok(p.clone()),
            None => Err(challenge(
                None,
                "no credentials: send `Authorization: Bearer <API key>` with the key the platform issued to your organisation",
            )),
        };
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
    match (parties.by_api_key(key), by_cert) {
        (Some(p), None) => Ok(p.clone()),
        (Some(p), Some(c)) if p.id == c.id => Ok(c.clone()),
        (Some(_), Some(c)) => {
            let diagnostics = format!(
                "the client certificate is party {}'s but the API key belongs to another party; \
                 a party may only act as itself: send party {}'s own key, or none",
                c.id, c.id
            );
            tracing::warn!(peer = ?req.peer_addr(), path = req.path(), "HTTP request refused: {diagnostics}");
            Err(Refused::new(
                StatusCode::FORBIDDEN,
                Issue::Forbidden,
                diagnostics,
            ))
        }
        (None, _) => Err(challenge(
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
    use crate::parties::{PartiesFile, cert_fingerprint, key_hash};
    use actix_web::test::TestRequest;

    fn parties() -> Parties {
        let yaml = format!(
            "hub: {{ id: \"9990000001\" }}\nparties:\n  - id: \"1311234567\"\n    kind: hospital\n    api_keys_sha256: [\"{}\"]\n    client_certs_sha256: [\"{}\"]\n  - id: \"131011\"\n    kind: municipality\n    api_keys_sha256: [\"{}\"]\n",
            key_hash("right-key"),
            cert_fingerprint(b"hospital cert"),
            key_hash("municipality-key")
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

    fn with_cert(key: Option<&str>, cert: &[u8]) -> Result<Party, Refused> {
        let mut req = TestRequest::default();
        if let Some(k) = key {
            req = req.insert_header((AUTHORIZATION, format!("Bearer {k}")));
        }
        let fp = cert_fingerprint(cert);
        authenticate_with(&req.to_http_request(), Some(&fp), &parties())
    }

    fn status(r: Result<Party, Refused>) -> StatusCode {
        r.expect_err("refused").into_response().status()
    }

    #[test]
    fn a_registered_certificate_names_the_party_with_or_without_its_own_key() {
        assert_eq!(
            with_cert(None, b"hospital cert").expect("cert").id,
            "1311234567"
        );
        assert_eq!(
            with_cert(Some("right-key"), b"hospital cert")
                .expect("cert and own key")
                .id,
            "1311234567"
        );
    }

    #[test]
    fn a_certificate_with_another_partys_key_is_403() {
        assert_eq!(
            status(with_cert(Some("municipality-key"), b"hospital cert")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(with_cert(Some("no-such-key"), b"hospital cert")),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn an_unregistered_certificate_is_401_even_with_a_good_key() {
        for key in [None, Some("right-key")] {
            let resp = with_cert(key, b"someone else's cert")
                .expect_err("unknown certificate")
                .into_response();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{key:?}");
            assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
        }
    }
}
