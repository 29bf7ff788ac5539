//! The audit log seen as FHIR R4 `AuditEvent` resources, for auditors and for platforms that collect
//! audit trails over FHIR.
//!
//! In: a sealed [`AuditEvent`]. Out: one `AuditEvent` resource as `serde_json::Value` (field order
//! as in the R4 specification). Nothing else is read: the export can only repeat what the log
//! holds, which is ids, codes and the keyed subject hash. It must never add a name, a birth date,
//! a raw 保険者番号/被保険者番号 or any part of a message body.
//!
//! Mapping (R4 `AuditEvent`):
//!
//! | log field | FHIR element |
//! |---|---|
//! | `seq` | `id` = `audit-<seq>` |
//! | `hop` | `type` = `{HUB_BASE}/CodeSystem/audit-hop#<hop>`; `action` (ingress, translate: `C`; others: `E`) |
//! | `decision` | `subtype` `{HUB_BASE}/CodeSystem/audit-decision#<decision>`; `outcome` (below) |
//! | `category`, `document` | `subtype` `{HUB_BASE}/CodeSystem/category#…`, `…/CodeSystem/document#…` |
//! | `at` | `recorded` (an RFC 3339 UTC time is a valid `instant`) |
//! | `reason` | `outcomeDesc` |
//! | `purpose` | `purposeOfEvent` `{HUB_BASE}/CodeSystem/purpose#<purpose>` (the purpose a consent question stated) |
//! | `actor` | `agent[0]` (`requestor: true`), `who.identifier` in `{HUB_BASE}/sid/party` |
//! | `party` | `agent[1]` (`requestor: false`), same identifier system |
//! | `envelope_id` | `entity` `what.identifier` in `{HUB_BASE}/sid/envelope-id`, type 2 System Object |
//! | `subject` | `entity` `what.identifier` in `{HUB_BASE}/sid/subject-hash`, type 1 Person, role 1 Patient |
//! | `prev_hash`, `hash` | `entity` `what.identifier` in `{HUB_BASE}/sid/audit-chain` = `<seq>:<hash>`, detail `prev_hash` |
//!
//! `outcome`: `0` success for permit, accepted, delivered; `4` minor failure (refused, as an HTTP 4xx
//! would be) for deny, rejected, quarantined; `8` serious failure (could not be done, as a 5xx) for
//! indeterminate and dead; absent when the event has no decision.
//!
//! The `audit-hop`, `audit-decision` and `audit-agent-role` codes are this module's [`Hop`] and
//! [`Decision`] wire names and `actor`/`counterpart`; they are defined here, by the hub, under
//! [`HUB_BASE`]. `source` names the hub (`security-source-type` 4, Application Server).

use serde_json::{Value, json};

use super::{AuditEvent, Decision, Hop};

/// The base URI of kaigo-hub's own code systems and identifier systems. `.example` until the
/// platform registers its canonical base; change it here only, since it is part of every export.
pub const HUB_BASE: &str = "https://kaigo-hub.example/fhir";

const AUDIT_ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";

/// An event that cannot be expressed as a FHIR `AuditEvent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// The stored decision is not one this version knows (a newer writer, or an edited log).
    #[error(
        "seq {seq}: decision `{decision}` has no FHIR outcome; expected permit, deny, indeterminate, accepted, rejected, delivered, dead or quarantined"
    )]
    UnknownDecision {
        /// The event's seq.
        seq: u64,
        /// The decision found (a code, first 64 characters).
        decision: String,
    },
}

/// The FHIR R4 `AuditEvent` for one sealed event.
pub fn to_fhir(event: &AuditEvent) -> Result<Value, FhirError> {
    let decision = match event.decision.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<Decision>()
                .map_err(|_| FhirError::UnknownDecision {
                    seq: event.seq,
                    decision: text.chars().take(64).collect(),
                })?,
        ),
    };

    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", event.seq),
        "type": {
            "system": format!("{HUB_BASE}/CodeSystem/audit-hop"),
            "code": event.hop.as_str(),
            "display": hop_display(event.hop),
        },
    });
    let map = resource
        .as_object_mut()
        .expect("a json! object literal is an object");

    let mut subtype = Vec::new();
    if let Some(d) = decision {
        subtype.push(coding("audit-decision", d.as_str()));
    }
    if let Some(category) = &event.category {
        subtype.push(coding("category", category));
    }
    if let Some(document) = &event.document {
        subtype.push(coding("document", document));
    }
    if !subtype.is_empty() {
        map.insert("subtype".into(), Value::Array(subtype));
    }
    map.insert("action".into(), json!(action(event.hop)));
    map.insert("recorded".into(), json!(event.at));
    if let Some(d) = decision {
        map.insert("outcome".into(), json!(outcome(d)));
    }
    if let Some(reason) = &event.reason {
        map.insert("outcomeDesc".into(), json!(reason));
    }
    if let Some(purpose) = &event.purpose {
        map.insert(
            "purposeOfEvent".into(),
            json!([{ "coding": [coding("purpose", purpose)] }]),
        );
    }

    let mut agents = vec![agent(&event.actor, "actor", true)];
    if let Some(party) = &event.party {
        agents.push(agent(party, "counterpart", false));
    }
    map.insert("agent".into(), Value::Array(agents));
    map.insert(
        "source".into(),
        json!({
            "observer": { "display": "kaigo-hub" },
            "type": [{
                "system": SECURITY_SOURCE_TYPE,
                "code": "4",
                "display": "Application Server",
            }],
        }),
    );

    let mut entities = Vec::new();
    if let Some(envelope_id) = &event.envelope_id {
        entities.push(json!({
            "what": { "identifier": identifier("envelope-id", envelope_id) },
            "type": { "system": AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object" },
        }));
    }
    if let Some(subject) = &event.subject {
        entities.push(json!({
            "what": { "identifier": identifier("subject-hash", subject) },
            "type": { "system": AUDIT_ENTITY_TYPE, "code": "1", "display": "Person" },
            "role": { "system": OBJECT_ROLE, "code": "1", "display": "Patient" },
        }));
    }
    entities.push(json!({
        "what": {
            "identifier": identifier("audit-chain", &format!("{}:{}", event.seq, event.hash)),
        },
        "type": { "system": AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object" },
        "detail": [{ "type": "prev_hash", "valueString": event.prev_hash }],
    }));
    map.insert("entity".into(), Value::Array(entities));
    Ok(resource)
}

fn coding(code_system: &str, code: &str) -> Value {
    json!({ "system": format!("{HUB_BASE}/CodeSystem/{code_system}"), "code": code })
}

fn identifier(id_system: &str, value: &str) -> Value {
    json!({ "system": format!("{HUB_BASE}/sid/{id_system}"), "value": value })
}

fn agent(who: &str, role: &str, requestor: bool) -> Value {
    json!({
        "type": { "coding": [coding("audit-agent-role", role)] },
        "who": { "identifier": identifier("party", who) },
        "requestor": requestor,
    })
}

fn hop_display(hop: Hop) -> &'static str {
    match hop {
        Hop::Ingress => "Message received from a party",
        Hop::Translate => "Message mapped to canonical documents",
        Hop::Deliver => "Document delivered to a recipient",
        Hop::Consent => "Consent decision",
        Hop::Replay => "Message re-driven",
        Hop::Admin => "Administrative action",
    }
}

/// `C` where the hub creates a record (an envelope, a canonical document), `E` where it executes
/// an act (deliver, decide, re-drive, administer).
fn action(hop: Hop) -> &'static str {
    match hop {
        Hop::Ingress | Hop::Translate => "C",
        Hop::Deliver | Hop::Consent | Hop::Replay | Hop::Admin => "E",
    }
}

fn outcome(decision: Decision) -> &'static str {
    match decision {
        Decision::Permit | Decision::Accepted | Decision::Delivered | Decision::Expired => "0",
        Decision::Deny | Decision::Rejected | Decision::Quarantined | Decision::Retrying => "4",
        Decision::Indeterminate | Decision::Dead => "8",
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{chain_key, hasher, ts};
    use super::super::{AuditChain, AuditDraft};
    use super::*;

    const INSURER: &str = "131011";
    const INSURED: &str = "0000012345";

    fn consent_event(decision: Decision) -> AuditEvent {
        AuditChain::new(chain_key())
            .append(
                AuditDraft::new(ts("2025-04-01T09:30:00.250Z"), Hop::Consent, "hub:deliver")
                    .party("care-office-1310100001")
                    .subject(hasher().hash(INSURER, INSURED))
                    .category("certification")
                    .document("InsuranceCard@1")
                    .decision(decision)
                    .reason("no-consent-for-recipient")
                    .envelope_id("env-7f3a")
                    .purpose("care"),
            )
            .expect("valid draft")
    }

    #[test]
    fn export_is_an_audit_event_with_the_required_elements() {
        let event = consent_event(Decision::Deny);
        let resource = to_fhir(&event).expect("exports");
        let text = serde_json::to_string_pretty(&resource).expect("serialises");
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["resourceType"], "AuditEvent");
        assert_eq!(parsed["id"], "audit-1");
        assert_eq!(parsed["type"]["code"], "consent");
        assert_eq!(parsed["recorded"], "2025-04-01T09:30:00.250Z");
        assert_eq!(parsed["outcome"], "4");
        assert_eq!(parsed["outcomeDesc"], "no-consent-for-recipient");
        assert_eq!(
            parsed["purposeOfEvent"][0]["coding"][0],
            json!({ "system": format!("{HUB_BASE}/CodeSystem/purpose"), "code": "care" })
        );
        assert_eq!(parsed["action"], "E");
        assert_eq!(parsed["source"]["observer"]["display"], "kaigo-hub");
        let agents = parsed["agent"].as_array().expect("agents");
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0]["requestor"], true);
        assert_eq!(agents[0]["who"]["identifier"]["value"], "hub:deliver");
        assert_eq!(agents[1]["requestor"], false);
        assert_eq!(
            agents[1]["who"]["identifier"]["value"],
            "care-office-1310100001"
        );
        let entities = parsed["entity"].as_array().expect("entities");
        assert_eq!(entities[0]["what"]["identifier"]["value"], "env-7f3a");
        assert_eq!(
            entities[1]["what"]["identifier"]["value"],
            event.subject.as_deref().expect("has a subject")
        );
        assert_eq!(
            entities[1]["what"]["identifier"]["system"],
            format!("{HUB_BASE}/sid/subject-hash")
        );
        assert_eq!(
            entities[2]["what"]["identifier"]["value"],
            format!("1:{}", event.hash)
        );
        let subtypes: Vec<&str> = parsed["subtype"]
            .as_array()
            .expect("subtypes")
            .iter()
            .filter_map(|c| c["code"].as_str())
            .collect();
        assert_eq!(subtypes, ["deny", "certification", "InsuranceCard@1"]);
    }

    #[test]
    fn export_holds_no_raw_subject_identifiers() {
        for decision in Decision::ALL {
            let text = to_fhir(&consent_event(decision))
                .expect("exports")
                .to_string();
            assert!(!text.contains(INSURED), "raw 被保険者番号 in {text}");
            assert!(!text.contains(INSURER), "raw 保険者番号 in {text}");
        }
    }

    #[test]
    fn outcome_follows_the_decision() {
        let expected = [
            (Decision::Permit, "0"),
            (Decision::Accepted, "0"),
            (Decision::Delivered, "0"),
            (Decision::Expired, "0"),
            (Decision::Deny, "4"),
            (Decision::Rejected, "4"),
            (Decision::Quarantined, "4"),
            (Decision::Retrying, "4"),
            (Decision::Indeterminate, "8"),
            (Decision::Dead, "8"),
        ];
        for (decision, code) in expected {
            let resource = to_fhir(&consent_event(decision)).expect("exports");
            assert_eq!(resource["outcome"], code, "{decision}");
        }
    }

    #[test]
    fn minimal_event_has_one_agent_the_chain_entity_and_no_outcome() {
        let event = AuditChain::new(chain_key())
            .append(AuditDraft::new(
                ts("2025-04-01T00:00:00Z"),
                Hop::Admin,
                "operator-1",
            ))
            .expect("valid");
        let resource = to_fhir(&event).expect("exports");
        assert_eq!(resource["agent"].as_array().map(Vec::len), Some(1));
        assert_eq!(resource["entity"].as_array().map(Vec::len), Some(1));
        assert!(resource.get("outcome").is_none());
        assert!(resource.get("subtype").is_none());
    }

    #[test]
    fn unknown_stored_decision_is_an_error_naming_the_seq() {
        let mut event = consent_event(Decision::Permit);
        event.decision = Some("maybe".into());
        assert_eq!(
            to_fhir(&event),
            Err(FhirError::UnknownDecision {
                seq: 1,
                decision: "maybe".into()
            })
        );
    }
}
