//! `GET /fhir/AuditEvent`: the audit trail as a FHIR `searchset` Bundle of `AuditEvent`s, for
//! municipalities and the platform. In: search parameters `envelope` (envelope id), `subject` (the
//! keyed subject hash, 64 hex — never a raw 保険者番号/被保険者番号, which is refused), `party`
//! (actor or counterpart party id) and `_count` (default 100, at most 1000); anything else is a 400
//! so a misspelt filter never returns the whole log. Out: matching events in log order (oldest
//! first), `total` = every match. The log is flushed, then read on a blocking thread.

use super::State;
use super::auth;
use super::outcome::{Issue, clip, resource, status};
use crate::audit::fhir::to_fhir;
use crate::audit::jsonl::{StoreError, read_path};
use crate::audit::{AuditFilter, SubjectHash};
use crate::consent::PartyKind;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::path::Path;

/// Entries returned when `_count` is not given.
const DEFAULT_COUNT: usize = 100;
/// Largest `_count` honoured.
const MAX_COUNT: usize = 1000;
/// The search parameters, as the CapabilityStatement lists them.
pub const SEARCH_PARAMS: [(&str, &str); 3] = [
    (
        "envelope",
        "Envelope id (X-Kaigo-Envelope) the event is about",
    ),
    (
        "subject",
        "Keyed subject hash (64 lowercase hex, as in the audit log); raw 保険者番号/被保険者番号 are refused",
    ),
    ("party", "Party id that acted or was the counterpart"),
];

/// `GET /fhir/AuditEvent`.
pub async fn search(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let party = match auth::authenticate(&req, &state.hub.parties.current()) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = auth::require_kind(
        &party,
        &[PartyKind::Municipality, PartyKind::Platform],
        "search the audit trail",
    ) {
        return r.into_response();
    }
    let (filter, count) = match parse_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => return status(StatusCode::BAD_REQUEST, Issue::Invalid, &e),
    };
    let hub = state.hub.clone();
    let path = state.audit_path.clone();
    let found = web::block(move || {
        // Events recorded a moment ago are still in the writer's channel.
        hub.audit.flush();
        read_matches(&path, &filter, count)
    })
    .await;
    let (total, events) = match found {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "audit log unreadable for GET /fhir/AuditEvent");
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                Issue::Exception,
                "the audit log cannot be read; the hub's operator should run `kaigo-hub audit verify`",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "audit search task failed");
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                Issue::Exception,
                "the audit search failed inside the hub",
            );
        }
    };
    let base = {
        let ci = req.connection_info();
        format!("{}://{}/fhir", ci.scheme(), ci.host())
    };
    let mut entries: Vec<Value> = Vec::with_capacity(events.len());
    for e in &events {
        match to_fhir(e) {
            Ok(r) => {
                let id = r["id"].as_str().unwrap_or("").to_string();
                entries.push(json!({
                    "fullUrl": format!("{base}/AuditEvent/{id}"),
                    "resource": r,
                    "search": { "mode": "match" },
                }));
            }
            Err(err) => entries.push(json!({
                "resource": super::outcome::outcome_json(Issue::Processing, &err.to_string()),
                "search": { "mode": "outcome" },
            })),
        }
    }
    let query = req.query_string();
    let self_url = if query.is_empty() {
        format!("{base}/AuditEvent")
    } else {
        format!("{base}/AuditEvent?{query}")
    };
    resource(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": [{ "relation": "self", "url": self_url }],
            "entry": entries,
        }),
    )
}

/// The filter and `_count` a query string asks for, or what is wrong with it.
fn parse_query(query: &str) -> Result<(AuditFilter, usize), String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("the query string cannot be read: {e}"))?
        .into_inner();
    let mut filter = AuditFilter::default();
    let mut count: Option<usize> = None;
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        if seen.contains(&name.as_str()) {
            return Err(format!(
                "search parameter `{}` is given twice; give each once",
                clip(name, 40)
            ));
        }
        seen.push(name);
        if value.is_empty() {
            return Err(format!("search parameter `{}` is empty", clip(name, 40)));
        }
        match name.as_str() {
            "envelope" => filter.envelope_id = Some(value.clone()),
            "party" => filter.party = Some(value.clone()),
            "subject" => {
                filter.subject =
                    Some(SubjectHash::from_hex(value).map_err(|e| format!("subject: {e}"))?)
            }
            "_count" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("_count must be a whole number from 0 to {MAX_COUNT}"))?;
                count = Some(n.min(MAX_COUNT));
            }
            // Only JSON is served; asking for it is fine.
            "_format"
                if matches!(
                    value.as_str(),
                    "json" | "application/fhir+json" | "application/json"
                ) => {}
            other => {
                let known: Vec<&str> = SEARCH_PARAMS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown search parameter `{}`; this server supports {} and _count",
                    clip(other, 40),
                    known.join(", ")
                ));
            }
        }
    }
    Ok((filter, count.unwrap_or(DEFAULT_COUNT)))
}

/// Every matching event counted, the first `count` kept. A missing log is an empty one; a torn
/// last line is an append in progress (the writer thread never leaves one behind), so the read
/// stops there.
fn read_matches(
    path: &Path,
    filter: &AuditFilter,
    count: usize,
) -> Result<(u64, Vec<crate::audit::AuditEvent>), StoreError> {
    let mut lines = match read_path(path) {
        Ok(l) => l,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0, Vec::new()));
        }
        Err(e) => return Err(e),
    };
    let (mut total, mut kept) = (0u64, Vec::new());
    while let Some(item) = lines.next_event() {
        let event = match item {
            Ok((_, event)) => event,
            Err(StoreError::TornTail { .. }) => break,
            Err(e) => return Err(e),
        };
        if filter.matches(&event) {
            total += 1;
            if kept.len() < count {
                kept.push(event);
            }
        }
    }
    Ok((total, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_parameters_fill_the_filter() {
        let hash = "a".repeat(64);
        let (f, n) = parse_query(&format!("envelope=k1&party=131011&subject={hash}&_count=5"))
            .expect("valid");
        assert_eq!(f.envelope_id.as_deref(), Some("k1"));
        assert_eq!(f.party.as_deref(), Some("131011"));
        assert_eq!(
            f.subject.as_ref().map(SubjectHash::as_str),
            Some(hash.as_str())
        );
        assert_eq!(n, 5);
        assert_eq!(parse_query("").expect("valid").1, DEFAULT_COUNT);
        assert_eq!(parse_query("_count=99999").expect("valid").1, MAX_COUNT);
    }

    #[test]
    fn raw_numbers_unknown_and_repeated_parameters_are_refused() {
        let e = parse_query("subject=0000100001").expect_err("raw number refused");
        assert!(!e.contains("0000100001"), "the number is not echoed: {e}");
        assert!(
            parse_query("subjet=x")
                .expect_err("typo")
                .contains("unknown")
        );
        assert!(
            parse_query("party=a&party=b")
                .expect_err("twice")
                .contains("twice")
        );
        assert!(parse_query("_count=-1").is_err());
    }
}
