//! The hub's wrapping of one canonical document as a FHIR `document` Bundle, for the kinds whose
//! outbound mapping says so (its container Bundle is `type: document`: the 主治医意見書,
//! docs/fhir-physician-opinion.md). A document is read as a whole, not PUT resource by resource:
//! the Composition comes first, every entry has a `fullUrl` and references name entries by it
//! (`urn:uuid:…`, as the JP-CLINS documents do), and the Bundle has an `identifier` and a
//! `timestamp`.
//!
//! In: the document (JSON), the resources its mapping rendered, the deployment's
//! [`ResourceIds`]. Out: the Bundle. Ids, `meta.lastUpdated` and the Provenance are made as for
//! a transaction ([`super::bundle`]); the fullUrls are the UUID form of the keyed ids
//! ([`ResourceId::uuid`]), the `identifier` the UUID of the id keyed from the whole document.
//! `timestamp` is the send time, or the Composition's `date` when the document does not say
//! when it was sent: never the clock. Errors name the document and the part, never a value.

use serde_json::{Map, Value, json};

use super::bundle::{BundleError, RefForm, instant, keyed, stamped};
use super::ids::{ResourceId, ResourceIds};

/// The system of `Bundle.identifier`: the value is a `urn:uuid:`.
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// The `document` Bundle of `doc`'s `rendered` resources (one of them a Composition), and their
/// Provenance last.
pub fn document(
    ids: &ResourceIds,
    doc: &Value,
    rendered: Vec<Value>,
) -> Result<Value, BundleError> {
    let k = keyed(ids, doc, rendered, RefForm::Uuid)?;
    let Some(first) = k.resources.iter().position(|(_, t, _)| t == "Composition") else {
        return Err(BundleError::NoComposition {
            document: k.kind.clone(),
        });
    };
    let timestamp = match &k.at {
        Some(at) => at.clone(),
        None => {
            let date = k.resources[first].0.get("date").and_then(Value::as_str);
            match date {
                Some(d) => instant(d, &k.kind)?,
                None => {
                    return Err(BundleError::NoDocumentTime {
                        document: k.kind.clone(),
                    });
                }
            }
        }
    };
    let at = k.at.as_deref();
    let bundle_id = ids.id(&["Bundle", "document", &k.doc_text]);
    let (p, pid) = k.provenance(ids, doc, RefForm::Uuid);
    let mut resources = k.resources;
    let composition = resources.remove(first);
    let mut entries: Vec<Value> = std::iter::once(composition)
        .chain(resources)
        .map(|(r, _, id)| entry(stamped(r, &id, at), &id))
        .collect();
    entries.push(entry(stamped(p, &pid, at), &pid));
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert(
        "identifier".into(),
        json!({ "system": URI_SYSTEM, "value": format!("urn:uuid:{}", bundle_id.uuid()) }),
    );
    bundle.insert("type".into(), json!("document"));
    bundle.insert("timestamp".into(), Value::String(timestamp));
    bundle.insert("entry".into(), Value::Array(entries));
    Ok(Value::Object(bundle))
}

fn entry(resource: Value, id: &ResourceId) -> Value {
    json!({ "fullUrl": format!("urn:uuid:{}", id.uuid()), "resource": resource })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ResourceIds {
        ResourceIds::new(b"0123456789abcdef0123456789abcdef").expect("key")
    }

    fn opinion() -> Value {
        json!({
            "document": "PhysicianOpinion@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "source": { "sender": "1320000017" }
        })
    }

    fn rendered() -> Vec<Value> {
        vec![json!({
            "resourceType": "Bundle",
            "type": "document",
            "entry": [
                { "resource": { "resourceType": "Patient", "id": "patient" } },
                { "resource": { "resourceType": "Composition", "id": "composition",
                    "date": "2026-04-15",
                    "subject": { "reference": "Patient/patient" },
                    "author": [{ "reference": "Organization?identifier=http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no|1320000017" }] } },
                { "resource": { "resourceType": "Organization", "id": "institution",
                    "identifier": [{ "system": "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no", "value": "1320000017" }] } }
            ]
        })]
    }

    #[test]
    fn the_composition_comes_first_and_references_are_the_entries_full_urls() {
        let b = document(&ids(), &opinion(), rendered()).expect("document");
        assert_eq!(b["type"], "document");
        assert_eq!(
            b["timestamp"], "2026-04-15T00:00:00+09:00",
            "the Composition's date"
        );
        let entries = b["entry"].as_array().expect("entries");
        assert_eq!(entries.len(), 4, "3 resources and the Provenance");
        assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
        for e in entries {
            let full = e["fullUrl"].as_str().expect("fullUrl");
            let id = e["resource"]["id"].as_str().expect("id");
            let hex = full
                .strip_prefix("urn:uuid:")
                .expect("urn:uuid")
                .replace('-', "");
            assert_eq!(hex[..12], id[..12], "the UUID is the keyed id's");
            assert!(
                e.get("request").is_none(),
                "a document is not a transaction"
            );
        }
        let c = &entries[0]["resource"];
        assert_eq!(c["subject"]["reference"], entries[1]["fullUrl"]);
        assert_eq!(c["author"][0]["reference"], entries[2]["fullUrl"]);
        let prov = &entries[3]["resource"];
        assert_eq!(prov["target"][0]["reference"], entries[1]["fullUrl"]);
        let value = b["identifier"]["value"].as_str().expect("identifier");
        assert!(
            value.starts_with("urn:uuid:") && value.len() == 45,
            "{value}"
        );
        assert_eq!(b, document(&ids(), &opinion(), rendered()).expect("again"));
    }

    #[test]
    fn the_send_time_wins_and_a_document_without_a_time_or_a_composition_is_named() {
        let mut doc = opinion();
        doc["source"]["sent_at"] = json!("2026-04-20T09:30:00");
        let b = document(&ids(), &doc, rendered()).expect("document");
        assert_eq!(b["timestamp"], "2026-04-20T09:30:00+09:00");
        let mut undated = rendered();
        undated[0]["entry"][1]["resource"]
            .as_object_mut()
            .expect("composition")
            .shift_remove("date");
        let e = document(&ids(), &opinion(), undated).expect_err("no time");
        assert!(matches!(e, BundleError::NoDocumentTime { .. }), "{e}");
        let e = document(
            &ids(),
            &opinion(),
            vec![json!({ "resourceType": "Patient", "id": "patient" })],
        )
        .expect_err("no Composition");
        assert!(matches!(e, BundleError::NoComposition { .. }), "{e}");
        assert!(!e.to_string().contains("0000012345"));
    }
}
