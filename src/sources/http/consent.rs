//! `POST /fhir/Consent`: a municipality (or the platform) registers a person's consent as a FHIR R4
//! `Consent` resource. In: an authenticated request from a party of kind municipality or platform;
//! out: the grants `consent::fhir_import` reads from it, stored in the registry (on a blocking
//! thread), audited, and named in the answer. A municipality registers consents of its own
//! insured persons only (the subject's 保険者番号 must be its party id); the platform may register
//! any. Must never store a grant the importer refused, or echo the subject in an answer.
//!
//! A stored change is announced to every running hub process as the CLI does
//! (`pipeline::consent_reach`), waiting up to `consent_ack_secs` for their acknowledgements. The
//! answer stays 201 (the registry holds it); when a process did not acknowledge, the
//! `OperationOutcome` adds a warning saying how many did not and by when the change is in force
//! in every process anyway, and `X-Kaigo-Consent-In-Force-By` gives that time. Without a warning
//! the change is in force everywhere now; a warning without the header means the registry of
//! processes could not be read, so no time can be given beyond `consent_cache_secs`. Which
//! processes did not acknowledge is logged, not told the sender (it names the hub's hosts).
//!
//! | outcome | status |
//! |---|---|
//! | stored (or, `status: inactive`, revoked) | 201, `X-Kaigo-Consent: <grant ids>` |
//! | `status: rejected` (grants nothing) | 200, nothing stored |
//! | not JSON | 400 |
//! | not importable (the error names the JSON path) | 422 |
//! | not a municipality/platform, or another insurer's person | 403 |
//! | a different consent already has that id, or it is revoked | 409 |
//! | registry unreachable | 503 + `Retry-After` |

use super::State;
use super::audit_trail;
use super::auth;
use super::body;
use super::outcome::{CONSENT_HEADER, FHIR_JSON, Issue, outcome_json, status, unavailable};
use crate::consent::fhir_import::{FhirProblem, consents_from_fhir_json};
use crate::consent::{Consent, ConsentError, PartyKind};
use crate::parties::Party;
use crate::pipeline::consent_feed::ConsentChanged;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

/// `POST /fhir/Consent`.
pub async fn register(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let hub = &state.hub;
    let party = match auth::authenticate(&req, &hub.parties.current()) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let refused = |reason: &str, response: HttpResponse| {
        audit_trail::consent_refused(hub, &party.id, reason);
        response
    };
    if let Err(r) = auth::require_kind(
        &party,
        &[PartyKind::Municipality, PartyKind::Platform],
        "register consents",
    ) {
        return refused("not-a-registrar", r.into_response());
    }
    if let Err(r) = body::check_content_type(&req) {
        return refused(r.reason, r.refused.into_response());
    }
    let bytes = match body::read_limited(&req, payload, state.body_limit).await {
        Ok(b) => b,
        Err(r) => return refused(r.reason, r.refused.into_response()),
    };
    // A full JSON parse of up to `body_limit` bytes: off the reactor.
    let imported = web::block(move || {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        std::str::from_utf8(bytes).ok().map(consents_from_fhir_json)
    })
    .await;
    let imported = match imported {
        Ok(Some(r)) => r,
        Ok(None) => {
            return refused(
                "not-utf8",
                status(
                    StatusCode::BAD_REQUEST,
                    Issue::Structure,
                    "the body is not UTF-8; FHIR JSON is UTF-8",
                ),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "consent import task failed");
            return unavailable(
                "the hub could not read the Consent; nothing was stored, send it again after Retry-After seconds",
            );
        }
    };
    let consents = match imported {
        Ok(c) => c,
        Err(e) if matches!(e.problem, FhirProblem::NotJson { .. }) => {
            return refused(
                "not-json",
                status(
                    StatusCode::BAD_REQUEST,
                    Issue::Structure,
                    &format!("the body is not JSON: {e}"),
                ),
            );
        }
        Err(e) => {
            return refused(
                "consent-not-importable",
                status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Issue::Processing,
                    &format!("the Consent cannot be registered: {e}"),
                ),
            );
        }
    };
    if let Some(r) = not_own_insured(&party, &consents) {
        return refused("other-insurer", r);
    }
    if consents.is_empty() {
        return status(
            StatusCode::OK,
            Issue::Informational,
            "the Consent has status `rejected`: it grants nothing, so nothing was stored",
        );
    }

    let store = hub.store.clone();
    let to_store = consents.clone();
    let stored = web::block(move || {
        let mut done: Vec<String> = Vec::new();
        for c in to_store {
            let id = c.id.as_str().to_string();
            if let Err(e) = store.consents().grant(c) {
                return Err((done, e));
            }
            done.push(id);
        }
        Ok(done)
    })
    .await;
    let stored = match stored {
        Ok(r) => r,
        Err(e) => Err((
            Vec::new(),
            ConsentError::Unavailable {
                detail: e.to_string(),
            },
        )),
    };
    // Audit what reached the registry, even when a later grant of the same resource failed.
    let done = match &stored {
        Ok(done) | Err((done, _)) => done,
    };
    let mut events = Vec::new();
    for c in consents
        .iter()
        .filter(|c| done.iter().any(|d| d == c.id.as_str()))
    {
        let hash = hub.hasher.hash(
            c.subject.insurer_number.as_str(),
            c.subject.insured_number.as_str(),
        );
        audit_trail::consent_registered(hub, &party.id, c.id.as_str(), hash.clone());
        events.push(ConsentChanged {
            change: if c.revoked_at.is_some() {
                "revoke"
            } else {
                "grant"
            }
            .into(),
            consent: c.id.as_str().to_string(),
            subject: Some(hash.into_string()),
            at: crate::pipeline::clock::now_rfc3339(),
        });
    }
    // The registry holds it either way; a hub process that missed the word sees it when its
    // cached copy expires (`consent_cache_secs`). `changed` logs which did not hear.
    let reach = if events.is_empty() {
        None
    } else {
        Some(hub.changed(&events).await)
    };
    match stored {
        Ok(done) => {
            tracing::info!(source = %party.id, grants = done.len(), "consents registered");
            let mut answer = HttpResponse::build(StatusCode::CREATED);
            answer.insert_header((CONSENT_HEADER, done.join(",")));
            let mut body = outcome_json(
                Issue::Informational,
                &format!(
                    "registered {} consent grant{}: {}",
                    done.len(),
                    if done.len() == 1 { "" } else { "s" },
                    done.join(", ")
                ),
            );
            if let Some(reach) = reach.filter(|r| !r.complete()) {
                let by = reach.in_force_everywhere_by();
                let by_text = by.map(crate::pipeline::clock::rfc3339);
                if let Some(t) = &by_text {
                    answer.insert_header((IN_FORCE_HEADER, t.as_str()));
                }
                let diagnostics = match by_text {
                    Some(t) => format!(
                        "{} running hub process{} did not acknowledge the change within {} s; it \
                         is in force in every hub process by {t} at the latest, when their cached \
                         copies expire",
                        reach.unheard.len(),
                        if reach.unheard.len() == 1 { "" } else { "es" },
                        hub.presence.ack_wait.as_secs()
                    ),
                    None => "the running hub processes could not be told of the change; each \
                             sees it when its cached copies expire"
                        .to_string(),
                };
                if let Some(issues) = body["issue"].as_array_mut() {
                    issues.push(serde_json::json!({
                        "severity": "warning",
                        "code": "incomplete",
                        "diagnostics": diagnostics,
                    }));
                }
            }
            answer.content_type(FHIR_JSON).body(body.to_string())
        }
        Err((done, e)) => {
            let before = if done.is_empty() {
                String::new()
            } else {
                format!(
                    " (stored before the failure: {}; sending the Consent again is safe)",
                    done.join(", ")
                )
            };
            match e {
                ConsentError::Unavailable { detail } => {
                    tracing::warn!(source = %party.id, error = %detail, "consent registry unavailable");
                    unavailable(&format!(
                        "the consent registry is unreachable; send the Consent again after Retry-After seconds{before}"
                    ))
                }
                ConsentError::IdInUse { .. } | ConsentError::AlreadyRevoked { .. } => refused(
                    "consent-id-in-use",
                    status(
                        StatusCode::CONFLICT,
                        Issue::Duplicate,
                        &format!("{e}{before}"),
                    ),
                ),
                ConsentError::Invalid { .. } | ConsentError::UnknownConsent { .. } => refused(
                    "consent-invalid",
                    status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Issue::Processing,
                        &format!("{e}{before}"),
                    ),
                ),
            }
        }
    }
}

/// On a 201 whose change not every running hub process acknowledged: the time (RFC 3339) by
/// which it is in force in all of them anyway.
pub const IN_FORCE_HEADER: &str = "X-Kaigo-Consent-In-Force-By";

/// A municipality may only register consents of persons it insures.
fn not_own_insured(party: &Party, consents: &[Consent]) -> Option<HttpResponse> {
    if party.kind != PartyKind::Municipality
        || consents
            .iter()
            .all(|c| c.subject.insurer_number.as_str() == party.id)
    {
        return None;
    }
    Some(status(
        StatusCode::FORBIDDEN,
        Issue::Forbidden,
        &format!(
            "municipality {} registers consents of its own insured persons only: the Consent's 保険者番号 must be {}",
            party.id, party.id
        ),
    ))
}
