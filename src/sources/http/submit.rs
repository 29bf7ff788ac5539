//! `POST /fhir` (a `Bundle`) and `POST /fhir/{type}` (one resource of `{type}`): a hospital hands
//! the hub FHIR JSON. In: an authenticated request whose body is FHIR JSON of the type the URL
//! names; out: the body, untouched, through `ingress::accept`, and the answer that mirrors what
//! `accept` decided. 202 is sent only after `accept` returned `Ok` (the bus confirmed).
//!
//! | outcome | status | `X-Kaigo-Envelope` |
//! |---|---|---|
//! | on the bus | 202, `information` | yes |
//! | on the bus, some documents refused | 202, `information` + one `warning`/`forbidden` issue per refused document (kept in quarantine by the translate hop) | yes |
//! | no/unknown key | 401 + `WWW-Authenticate: Bearer` | no |
//! | not FHIR JSON media type | 415 | no |
//! | larger than `body_limit` | 413 | no |
//! | not JSON / `resourceType` missing or not the URL's | 400 | no |
//! | JSON that no mapping takes, or that fails its mapping | 422 (kept in the dead-letter queue) | yes |
//! | consent denied or subject unknown | 403 (kept in quarantine) | yes |
//! | bus or registry unreachable | 503 + `Retry-After` (nothing kept) | no |

use super::State;
use super::audit_trail;
use super::auth;
use super::body::{self, ResourceType};
use super::outcome::{
    ENVELOPE_HEADER, Issue, REQUEST_ID_HEADER, Refused, clip, outcome, outcome_issues,
};
use crate::pipeline::ingress::{self, Refusal, Submission};
use crate::redact::Disclose;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

/// Longest `X-Request-Id` kept as the correlation id.
const MAX_REQUEST_ID: usize = 128;

/// `POST /fhir`: a Bundle.
pub async fn bundle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    submit(&req, payload, &state, None).await
}

/// `POST /fhir/{type}`: one resource of that type.
pub async fn resource(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
    path: web::Path<String>,
) -> HttpResponse {
    submit(&req, payload, &state, Some(path.as_str())).await
}

/// `url_type`: the type in the URL (`None` for `POST /fhir`, which takes a Bundle).
async fn submit(
    req: &HttpRequest,
    payload: web::Payload,
    state: &State,
    url_type: Option<&str>,
) -> HttpResponse {
    let hub = &state.hub;
    let party = match auth::authenticate(req, &hub.parties.current()) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let refused = |reason: &str, refused: Refused| {
        audit_trail::refused_at_the_door(hub, &party.id, reason);
        refused.into_response()
    };
    if let Err(r) = body::check_content_type(req) {
        return refused(r.reason, r.refused);
    }
    let request_id = match request_id(req) {
        Ok(id) => id,
        Err(r) => return refused("bad-request-id", r),
    };
    let bytes = match body::read_limited(req, payload, state.body_limit).await {
        Ok(b) => b,
        Err(r) => return refused(r.reason, r.refused),
    };
    // A full JSON parse of up to `body_limit` bytes: off the reactor.
    let check = {
        let (bytes, url_type) = (bytes.clone(), url_type.map(String::from));
        web::block(move || wrong_resource(&bytes, url_type.as_deref())).await
    };
    match check {
        Ok(None) => {}
        Ok(Some((reason, r))) => return refused(reason, r),
        Err(e) => {
            tracing::error!(error = %e, "HTTP submission: body check task failed");
            return super::outcome::unavailable(
                "the hub could not check the body; nothing was kept, send the message again after Retry-After seconds",
            );
        }
    }

    let result = ingress::accept(
        hub,
        Submission {
            party: &party,
            bytes: &bytes,
            file_name: None,
            correlation_id: request_id.as_deref(),
            via: "http",
        },
    )
    .await;
    let builder = |code: StatusCode| {
        let mut b = HttpResponse::build(code);
        if let Some(id) = &request_id {
            b.insert_header((REQUEST_ID_HEADER, id.as_str()));
        }
        b
    };
    let kept = |mut b: HttpResponseBuilder, envelope: &str| {
        b.insert_header((ENVELOPE_HEADER, envelope));
        b
    };
    match result {
        Ok(a) => outcome_issues(
            kept(builder(StatusCode::ACCEPTED), &a.envelope_id),
            &accepted_issues(&a),
        ),
        Err(Refusal::Malformed {
            envelope_id,
            message,
        }) => outcome(
            kept(builder(StatusCode::UNPROCESSABLE_ENTITY), &envelope_id),
            Issue::Processing,
            &format!(
                "{} (envelope {envelope_id}, kept in the dead-letter queue; correct the message and send it again)",
                message.for_sender()
            ),
        ),
        Err(Refusal::Forbidden {
            envelope_id,
            reason,
            detail,
            documents,
        }) => outcome_issues(
            kept(builder(StatusCode::FORBIDDEN), &envelope_id),
            &forbidden_issues(&reason, &detail, &envelope_id, &documents),
        ),
        Err(Refusal::Unavailable { message }) => {
            tracing::warn!(source = %party.id, error = %message, "HTTP submission: hub unavailable");
            let mut b = builder(StatusCode::SERVICE_UNAVAILABLE);
            b.insert_header(("Retry-After", super::outcome::RETRY_AFTER_SECS.to_string()));
            outcome(
                b,
                Issue::Transient,
                "the hub cannot take messages right now (message bus or consent registry unreachable, or its backlog at max_backlog); nothing was kept, send the message again after Retry-After seconds",
            )
        }
    }
}

/// The 202 issues: what was accepted, then one issue per refused document (its number, kind,
/// reason code and what clears it; never a value).
fn accepted_issues(a: &ingress::Accepted) -> Vec<(Issue, String)> {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut first = format!(
        "accepted as envelope {} (mapping {}, {} document{})",
        a.envelope_id,
        a.mapping,
        a.documents,
        plural(a.documents)
    );
    if !a.refused.is_empty() {
        let n = a.refused.len();
        first.push_str(&format!(
            "; {n} document{} refused, kept in quarantine, the others go on",
            plural(n)
        ));
    }
    let mut issues = vec![(Issue::Informational, first)];
    for r in &a.refused {
        issues.push((
            Issue::DocumentRefused,
            format!(
                "refused: {} (envelope {}, document {}{}, kept in quarantine): {}",
                r.reason,
                a.envelope_id,
                r.number,
                r.at(),
                r.detail
            ),
        ));
    }
    issues
}

/// The 403 words: the reason code, the envelope id, what is missing and what clears it
/// ([`crate::pipeline::admission::Withheld::detail`]). Never the subject.
fn forbidden_diagnostics(reason: &str, detail: &str, envelope_id: &str) -> String {
    format!("refused: {reason} (envelope {envelope_id}, held in quarantine): {detail}")
}

/// The 403 issues: the refusal, then — when the message held several documents, none of which
/// may go on — one issue per document with its own reason, so the sender learns of each person.
fn forbidden_issues(
    reason: &str,
    detail: &str,
    envelope_id: &str,
    documents: &[ingress::RefusedDocument],
) -> Vec<(Issue, String)> {
    let mut issues = vec![(
        Issue::Forbidden,
        forbidden_diagnostics(reason, detail, envelope_id),
    )];
    if documents.len() > 1 {
        issues.extend(documents.iter().map(|r| {
            (
                Issue::Forbidden,
                format!(
                    "refused: {} (envelope {envelope_id}, document {}{}, held in quarantine with the message): {}",
                    r.reason,
                    r.number,
                    r.at(),
                    r.detail
                ),
            )
        }));
    }
    issues
}

/// The sender's `X-Request-Id`: absent is fine; present must be 1–128 visible ASCII characters.
fn request_id(req: &HttpRequest) -> Result<Option<String>, Refused> {
    let Some(v) = req.headers().get(REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s)
            if !s.is_empty()
                && s.len() <= MAX_REQUEST_ID
                && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(s.to_string()))
        }
        _ => Err(Refused::new(
            StatusCode::BAD_REQUEST,
            Issue::Invalid,
            format!(
                "X-Request-Id must be 1 to {MAX_REQUEST_ID} visible ASCII characters (no spaces); leave it out to let the hub use the envelope id"
            ),
        )),
    }
}

/// The 400 for a body that is not JSON, or not the resource the URL names.
fn wrong_resource(bytes: &[u8], url_type: Option<&str>) -> Option<(&'static str, Refused)> {
    let expected = url_type.unwrap_or("Bundle");
    let bad = |reason, issue, text: String| {
        Some((reason, Refused::new(StatusCode::BAD_REQUEST, issue, text)))
    };
    match body::resource_type(bytes) {
        Err(e) => bad(
            "not-json",
            Issue::Structure,
            format!("the body is not JSON: {e}; send one FHIR resource as JSON"),
        ),
        Ok(ResourceType::Unnamed) => bad(
            "not-a-resource",
            Issue::Invalid,
            "the body is JSON but not a FHIR resource: it has no `resourceType` string at the top level".into(),
        ),
        Ok(ResourceType::Named(t)) if t != expected => {
            let hint = match url_type {
                None => format!("POST /fhir takes a Bundle; POST a single {} to /fhir/{}", clip(&t, 64), clip(&t, 64)),
                Some(u) => format!("POST it to /fhir/{} or fix its resourceType (the URL names `{}`)", clip(&t, 64), clip(u, 64)),
            };
            bad(
                "resource-type-mismatch",
                Issue::Invalid,
                format!("the body is a `{}`, not a `{expected}`: {hint}", clip(&t, 64)),
            )
        }
        Ok(ResourceType::Named(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_url_takes_only_bundles_and_a_type_url_only_its_type() {
        assert!(wrong_resource(br#"{"resourceType":"Bundle"}"#, None).is_none());
        assert!(wrong_resource(br#"{"resourceType":"Patient"}"#, Some("Patient")).is_none());
        let (reason, r) = wrong_resource(br#"{"resourceType":"Patient"}"#, None).expect("refused");
        assert_eq!(
            (reason, r.status),
            ("resource-type-mismatch", StatusCode::BAD_REQUEST)
        );
        let (reason, _) =
            wrong_resource(br#"{"resourceType":"Bundle"}"#, Some("Patient")).expect("refused");
        assert_eq!(reason, "resource-type-mismatch");
        let (reason, _) = wrong_resource(b"MSH|^~\\&|", Some("Patient")).expect("refused");
        assert_eq!(reason, "not-json");
        let (reason, _) = wrong_resource(b"{\"a\":1}", Some("Patient")).expect("refused");
        assert_eq!(reason, "not-a-resource");
    }

    #[test]
    fn a_message_none_of_whose_documents_may_go_on_names_each_one() {
        let doc = |number: usize, reason: &str| ingress::RefusedDocument {
            number,
            kind: "InsuredPerson@1".into(),
            reason: reason.into(),
            detail: format!("document {number} (InsuredPerson@1): what clears it"),
            origin: Some(format!("record {number}, line {}", number + 1)),
        };
        let one = forbidden_issues("unknown-subject", "d", "k1", &[doc(1, "unknown-subject")]);
        assert_eq!(one.len(), 1, "one document: the refusal says it all");
        let both = [
            doc(1, "consent-denied:no-consent"),
            doc(2, "unknown-subject"),
        ];
        let issues = forbidden_issues("consent-denied:no-consent", "d", "k1", &both);
        assert_eq!(issues.len(), 3);
        assert!(issues[1].1.contains("document 1") && issues[1].1.contains("consent-denied"));
        assert!(
            issues[2].1.contains("document 2 (record 2, line 3)"),
            "{}",
            issues[2].1
        );
        assert!(issues[2].1.contains("unknown-subject"));
        assert!(issues.iter().all(|(i, _)| matches!(i, Issue::Forbidden)));
    }

    #[test]
    fn a_partly_refused_message_lists_each_refused_document() {
        let a = ingress::Accepted {
            envelope_id: "k1".into(),
            mapping: "roster".into(),
            documents: 3,
            refused: vec![ingress::RefusedDocument {
                number: 2,
                kind: "InsuredPerson@1".into(),
                reason: "consent-denied:no-consent".into(),
                detail: "document 2 (InsuredPerson@1): no consent".into(),
                origin: None,
            }],
            warnings: Vec::new(),
        };
        let issues = accepted_issues(&a);
        assert_eq!(issues.len(), 2);
        assert!(issues[0].1.contains("3 documents"), "{}", issues[0].1);
        assert!(
            issues[0].1.contains("1 document refused"),
            "{}",
            issues[0].1
        );
        assert!(matches!(issues[1].0, Issue::DocumentRefused));
        for part in [
            "consent-denied:no-consent",
            "document 2",
            "k1",
            "quarantine",
        ] {
            assert!(
                issues[1].1.contains(part),
                "`{part}` missing: {}",
                issues[1].1
            );
        }
        let whole = ingress::Accepted {
            refused: Vec::new(),
            ..a
        };
        assert_eq!(accepted_issues(&whole).len(), 1);
    }

    #[test]
    fn forbidden_answers_name_the_reason_envelope_and_what_is_missing() {
        let d = forbidden_diagnostics(
            "consent-denied:no-consent",
            "no consent in force lets care-plan go to the platform",
            "k123",
        );
        for part in [
            "consent-denied:no-consent",
            "k123",
            "quarantine",
            "care-plan",
        ] {
            assert!(d.contains(part), "`{part}` missing: {d}");
        }
    }
}
