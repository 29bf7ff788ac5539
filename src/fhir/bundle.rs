//! The hub's wrapping of one canonical document's FHIR resources: a `transaction` Bundle of PUT
//! entries (`request.url` = `Type/id`), so a re-sent document updates the same resources instead of
//! adding copies, and a `Provenance` naming the sender and the message.
//!
//! In: the canonical document (JSON), the resources its outbound FHIR mapping rendered (a mapping
//! that makes several resources writes them as the `entry[N].resource` of a container Bundle, and
//! names each by a local `id` that its references use: `Patient/patient`), and the deployment's
//! [`ResourceIds`]. Out: the Bundle. Every id is keyed ([`identity`] says from what), every time is
//! the document's `source.sent_at` — never the clock, so the same document and key give the same
//! bytes. A document without one gets no `Bundle.timestamp` nor `meta.lastUpdated` (the receiving
//! server stamps its own) and a `Provenance.recorded` that says, by the `data-absent-reason`
//! extension, that the time is unknown. Errors name the document and the part, never a value.

use serde_json::{Map, Value, json};

use super::ids::{ResourceId, ResourceIds};

/// The identifier system of the sending party in `Provenance.agent.who` (the canonical
/// `source.sender`: a 医療機関コード, 事業所番号 or the sender's application id).
pub const SENDER_SYSTEM: &str = "urn:kaigo-hub:sender";
/// The identifier system of the sender's message id in `Provenance.entity.what`.
pub const MESSAGE_SYSTEM: &str = "urn:kaigo-hub:message-id";
/// The extension that stands in for a required value the document does not give.
const DATA_ABSENT: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
/// The offset a send time without one is read in: the platform's senders write Japan time.
const JAPAN: &str = "+09:00";

/// Resource types that stand for a party known beyond one person (an insurer, an office, a
/// physician): their id comes from their first identifier, so every document names the same one.
const SHARED: &[&str] = &[
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
];

/// Why a document's resources could not be wrapped. Carries the document kind and the part,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// `source.sent_at` is not an ISO 8601 date or date-time.
    #[error(
        "{document}: `source.sent_at` is not an ISO 8601 date-time ({expected} expected); fix the inbound mapping's rule for it"
    )]
    BadSendTime {
        /// The document kind.
        document: String,
        /// What was expected where it went wrong.
        expected: &'static str,
    },
    /// A rendered item has no `resourceType`.
    #[error(
        "{document}: item {index} the outbound FHIR mapping made has no `resourceType`; every resource (and every `entry[N].resource` of a container Bundle) needs `resourceType: {{ const: … }}`"
    )]
    NotAResource {
        /// The document kind.
        document: String,
        /// 1-based position among the rendered resources.
        index: usize,
    },
    /// A reference names no resource of the Bundle and cannot be keyed from the document.
    #[error(
        "{document}: a reference to a {resource_type} names no resource of the Bundle; write `{resource_type}/<local id>` of an entry, of a resource of the document's subject, or `{resource_type}?identifier=SYSTEM|VALUE` for an Organization, Practitioner, PractitionerRole or Location"
    )]
    UnresolvedReference {
        /// The document kind.
        document: String,
        /// The type the reference names.
        resource_type: String,
    },
    /// A `document` Bundle needs a Composition, its first entry.
    #[error(
        "{document}: the outbound FHIR mapping makes a `document` Bundle but no Composition; write one as an entry of its container Bundle"
    )]
    NoComposition {
        /// The document kind.
        document: String,
    },
    /// A `document` Bundle needs a time, and the document gives none.
    #[error(
        "{document}: a `document` Bundle needs a timestamp: the document has no `source.sent_at` and its Composition no `date`"
    )]
    NoDocumentTime {
        /// The document kind.
        document: String,
    },
    /// Two different resources have the same type and local id.
    #[error(
        "{document}: two different resources are `{resource_type}/{label}`; give each resource of a mapping its own local `id`"
    )]
    SameLocalId {
        /// The document kind.
        document: String,
        /// Their type.
        resource_type: String,
        /// Their local id.
        label: String,
    },
}

/// The `transaction` Bundle of `doc`'s `rendered` resources and their Provenance.
pub fn transaction(
    ids: &ResourceIds,
    doc: &Value,
    rendered: Vec<Value>,
) -> Result<Value, BundleError> {
    let k = keyed(ids, doc, rendered, RefForm::Relative)?;
    let at = k.at.as_deref();
    let provenance = k.provenance(ids, doc, RefForm::Relative);
    let mut entries: Vec<Value> = k
        .resources
        .into_iter()
        .map(|(r, rtype, id)| entry(stamped(r, &id, at), &rtype, &id))
        .collect();
    let (p, pid) = provenance;
    entries.push(entry(stamped(p, &pid, at), "Provenance", &pid));
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert("type".into(), json!("transaction"));
    if let Some(at) = k.at {
        bundle.insert("timestamp".into(), Value::String(at));
    }
    bundle.insert("entry".into(), Value::Array(entries));
    Ok(Value::Object(bundle))
}

/// How a reference to a resource of the Bundle is written: `Type/id` (a transaction, whose
/// entries are PUT to those urls) or the entry's `fullUrl`, `urn:uuid:…` (a document, read as
/// it is, as JP-CLINS documents reference their entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RefForm {
    /// `Type/id`.
    Relative,
    /// `urn:uuid:` + [`ResourceId::uuid`].
    Uuid,
}

impl RefForm {
    /// The reference to the resource `rtype`/`id` of the Bundle.
    pub(super) fn write(self, rtype: &str, id: &ResourceId) -> String {
        match self {
            RefForm::Relative => format!("{rtype}/{}", id.as_str()),
            RefForm::Uuid => format!("urn:uuid:{}", id.uuid()),
        }
    }
}

/// A document's resources with their keyed ids and their references rewritten, in the order
/// the mapping wrote them; what both forms of Bundle are made of.
pub(super) struct Keyed {
    /// The document kind (`PhysicianOpinion@1`).
    pub kind: String,
    /// The send time as a FHIR `instant`, when the document says it.
    pub at: Option<String>,
    /// [`canonical_text`] of the document.
    pub doc_text: String,
    /// Each resource with its type and keyed id.
    pub resources: Vec<(Value, String, ResourceId)>,
}

impl Keyed {
    /// The Provenance of the document (targeting every resource) and its id.
    pub(super) fn provenance(
        &self,
        ids: &ResourceIds,
        doc: &Value,
        form: RefForm,
    ) -> (Value, ResourceId) {
        let id = ids.id(&["Provenance", "document", &self.doc_text]);
        let targets: Vec<String> = self
            .resources
            .iter()
            .map(|(_, t, id)| form.write(t, id))
            .collect();
        (provenance(doc, &targets, self.at.as_deref()), id)
    }
}

/// Keys `rendered` (flattened out of a container Bundle) for `doc` and rewrites the references
/// between them in `form`.
pub(super) fn keyed(
    ids: &ResourceIds,
    doc: &Value,
    rendered: Vec<Value>,
    form: RefForm,
) -> Result<Keyed, BundleError> {
    let kind = doc
        .get("document")
        .and_then(Value::as_str)
        .unwrap_or("a document")
        .to_string();
    let at = send_time(doc, &kind)?;
    let doc_text = canonical_text(doc);
    let mut resources: Vec<Value> = Vec::new();
    let mut named: Vec<(String, String, ResourceId)> = Vec::new();
    for (i, r) in flatten(rendered).into_iter().enumerate() {
        let Some(rtype) = r.get("resourceType").and_then(Value::as_str) else {
            return Err(BundleError::NotAResource {
                document: kind,
                index: i + 1,
            });
        };
        // A resource its mapping gives no local id is named by its type, in lower case: the
        // Patient of a one-resource mapping is `patient`, as in the mappings that name it.
        let label = r
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| rtype.to_lowercase());
        // The same resource written again (a goal that several rows of a table share) is one
        // entry; two different ones under one local id are an error.
        if let Some(at) = named.iter().position(|(t, l, _)| t == rtype && *l == label) {
            if resources[at] == r {
                continue;
            }
            return Err(BundleError::SameLocalId {
                document: kind,
                resource_type: rtype.to_string(),
                label,
            });
        }
        let id = ids.id(&identity(doc, &r, rtype, &label, &doc_text));
        named.push((rtype.to_string(), label, id));
        resources.push(r);
    }
    let links = Links {
        named: &named,
        ids,
        subject: subject_of(doc),
        kind: &kind,
        form,
    };
    for r in &mut resources {
        links.relink(r)?;
    }
    Ok(Keyed {
        at,
        doc_text,
        resources: resources
            .into_iter()
            .zip(named)
            .map(|(r, (rtype, _, id))| (r, rtype, id))
            .collect(),
        kind,
    })
}

/// The `type` a mapping's container Bundle gives (`document`), if it wrote one.
pub fn container_type(rendered: &[Value]) -> Option<&str> {
    rendered
        .iter()
        .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
}

/// What a resource's id is made from (with its type first):
/// - a [`SHARED`] resource with an identifier: its first identifier's system and value;
/// - otherwise, for a document with a subject: the subject (保険者番号, 被保険者番号) and the local id;
/// - otherwise, a resource with an identifier: its first identifier (a hospital's 患者ID);
/// - otherwise: the whole document ([`canonical_text`]) and the local id.
pub fn identity<'a>(
    doc: &'a Value,
    resource: &'a Value,
    rtype: &'a str,
    label: &'a str,
    doc_text: &'a str,
) -> Vec<&'a str> {
    let identifier = first_identifier(resource);
    let subject = subject_of(doc);
    match (SHARED.contains(&rtype), identifier, subject) {
        (true, Some((system, value)), _) => vec![rtype, "identifier", system, value],
        (_, _, Some((insurer, insured))) => vec![rtype, "subject", insurer, insured, label],
        (_, Some((system, value)), None) => vec![rtype, "identifier", system, value],
        (_, None, None) => vec![rtype, "document", doc_text, label],
    }
}

/// The document's 保険者番号 and 被保険者番号, when it has a subject.
fn subject_of(doc: &Value) -> Option<(&str, &str)> {
    let s = doc.get("subject")?;
    Some((
        s.get("insurer_number")?.as_str()?,
        s.get("insured_number")?.as_str()?,
    ))
}

fn first_identifier(resource: &Value) -> Option<(&str, &str)> {
    let first = resource.get("identifier")?.as_array()?.first()?;
    Some((
        first.get("system")?.as_str()?,
        first.get("value")?.as_str()?,
    ))
}

/// The document as compact JSON with every object's members sorted by name: what a
/// document-scoped id is made from, so the order a sender or a file wrote the members in does not
/// change it.
pub fn canonical_text(doc: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(doc).to_string()
}

/// The resources of a rendering: a container Bundle gives its entries' resources.
fn flatten(rendered: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for r in rendered {
        if r.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            if let Some(Value::Array(entries)) = r.get("entry") {
                out.extend(entries.iter().filter_map(|e| e.get("resource").cloned()));
            }
        } else {
            out.push(r);
        }
    }
    out
}

/// How the references a mapping writes become keyed ones. A mapping writes:
/// - `Type/label` for a resource of this Bundle (its local `id`);
/// - `Type/label` for a resource of the document's subject that this document does not carry
///   (a decision's Coverage naming the Patient, which only the 被保険者証 fills): the id that
///   resource has in any Bundle of the same subject, so nothing half-empty is PUT over it;
/// - `Type?identifier=system|value` for a shared resource ([`SHARED`]: an insurer, a physician)
///   by its identifier: the id it has wherever it is an entry.
///
/// Any other reference (absolute URLs, `#contained`) is left as written.
struct Links<'a> {
    named: &'a [(String, String, ResourceId)],
    ids: &'a ResourceIds,
    subject: Option<(&'a str, &'a str)>,
    kind: &'a str,
    form: RefForm,
}

impl Links<'_> {
    fn relink(&self, value: &mut Value) -> Result<(), BundleError> {
        match value {
            Value::Object(members) => {
                for (key, v) in members.iter_mut() {
                    match v {
                        Value::String(text) if key == "reference" => {
                            if let Some(keyed) = self.resolve(text)? {
                                *text = keyed;
                            }
                        }
                        _ => self.relink(v)?,
                    }
                }
            }
            Value::Array(items) => {
                for v in items {
                    self.relink(v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The keyed form of a local reference; `None` for one that is not local.
    fn resolve(&self, text: &str) -> Result<Option<String>, BundleError> {
        let is_type = |t: &str| {
            t.starts_with(|c: char| c.is_ascii_uppercase())
                && t.chars().all(|c| c.is_ascii_alphanumeric())
        };
        if let Some((rtype, query)) = text.split_once('?')
            && is_type(rtype)
        {
            let Some((system, value)) = query
                .strip_prefix("identifier=")
                .and_then(|q| q.split_once('|'))
                .filter(|_| SHARED.contains(&rtype))
            else {
                return Err(self.unresolved(rtype));
            };
            let id = self.ids.id(&[rtype, "identifier", system, value]);
            if self.named.iter().any(|(t, _, i)| t == rtype && *i == id) {
                return Ok(Some(self.form.write(rtype, &id)));
            }
            return Ok(Some(format!("{rtype}/{}", id.as_str())));
        }
        let Some((rtype, label)) = text.split_once('/').filter(|(t, _)| is_type(t)) else {
            return Ok(None);
        };
        if let Some((_, _, id)) = self.named.iter().find(|(t, l, _)| t == rtype && l == label) {
            return Ok(Some(self.form.write(rtype, id)));
        }
        match self.subject {
            Some((insurer, insured)) if !SHARED.contains(&rtype) => {
                let id = self.ids.id(&[rtype, "subject", insurer, insured, label]);
                Ok(Some(format!("{rtype}/{}", id.as_str())))
            }
            _ => Err(self.unresolved(rtype)),
        }
    }

    fn unresolved(&self, rtype: &str) -> BundleError {
        BundleError::UnresolvedReference {
            document: self.kind.to_string(),
            resource_type: rtype.to_string(),
        }
    }
}

/// The resource with its keyed id and `meta.lastUpdated` (when the send time is known), members in the order resourceType, id,
/// meta, then the mapping's.
pub(super) fn stamped(resource: Value, id: &ResourceId, at: Option<&str>) -> Value {
    let Value::Object(mut members) = resource else {
        return resource;
    };
    let mut out = Map::new();
    if let Some(t) = members.shift_remove("resourceType") {
        out.insert("resourceType".into(), t);
    }
    members.shift_remove("id");
    out.insert("id".into(), Value::String(id.as_str().to_string()));
    let mut meta = match members.shift_remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(at) = at {
        meta.insert("lastUpdated".into(), Value::String(at.to_string()));
    }
    if !meta.is_empty() {
        out.insert("meta".into(), Value::Object(meta));
    }
    out.extend(members);
    Value::Object(out)
}

fn entry(resource: Value, rtype: &str, id: &ResourceId) -> Value {
    json!({
        "resource": resource,
        "request": { "method": "PUT", "url": format!("{rtype}/{}", id.as_str()) },
    })
}

/// The Provenance of the document: it targets every resource of the Bundle, was recorded when the
/// message was sent, and names the sender (`author`) and the sender's message id (`source`).
fn provenance(doc: &Value, targets: &[String], at: Option<&str>) -> Value {
    let source = doc.get("source");
    let text = |k: &str| source.and_then(|s| s.get(k)).and_then(Value::as_str);
    let sender = match text("sender") {
        Some(s) => json!({ "identifier": { "system": SENDER_SYSTEM, "value": s } }),
        None => json!({ "display": "sender not named in the message" }),
    };
    let mut what = match text("message_id") {
        Some(m) => json!({ "identifier": { "system": MESSAGE_SYSTEM, "value": m } }),
        None => json!({}),
    };
    if let Some(kind) = doc.get("document").and_then(Value::as_str) {
        what["display"] = Value::String(kind.to_string());
    }
    let targets: Vec<Value> = targets.iter().map(|t| json!({ "reference": t })).collect();
    let mut p = json!({
        "resourceType": "Provenance",
        "target": targets,
        "agent": [{
            "type": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author"
            }] },
            "who": sender
        }],
        "entity": [{ "role": "source", "what": what }]
    });
    let recorded = match at {
        Some(at) => ("recorded", json!(at)),
        None => (
            "_recorded",
            json!({ "extension": [{ "url": DATA_ABSENT, "valueCode": "unknown" }] }),
        ),
    };
    if let Value::Object(members) = &mut p {
        members.shift_insert(2, recorded.0.to_string(), recorded.1);
    }
    p
}

/// The document's `source.sent_at` as a FHIR `instant` (`None` without one).
fn send_time(doc: &Value, kind: &str) -> Result<Option<String>, BundleError> {
    doc.get("source")
        .and_then(|s| s.get("sent_at"))
        .and_then(Value::as_str)
        .map(|text| instant(text, kind))
        .transpose()
}

/// An ISO 8601 date or date-time as a FHIR `instant`: a time without an offset is Japan time, a
/// date alone is its first second in Japan.
pub(super) fn instant(text: &str, kind: &str) -> Result<String, BundleError> {
    let full = match text.len() {
        10 => format!("{text}T00:00:00{JAPAN}"),
        19 => format!("{text}{JAPAN}"),
        _ => text.to_string(),
    };
    match crate::calendar::parse_date_time(&full) {
        Ok(d) if d.time.is_some() => Ok(full),
        Ok(_) => Err(BundleError::BadSendTime {
            document: kind.to_string(),
            expected: "a time of day",
        }),
        Err(e) => Err(BundleError::BadSendTime {
            document: kind.to_string(),
            expected: e.expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ResourceIds {
        ResourceIds::new(b"0123456789abcdef0123456789abcdef").expect("key")
    }

    fn card() -> Value {
        json!({
            "document": "InsuranceCard@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "source": { "sender": "SYS-131011-01", "message_id": "M-1", "sent_at": "2025-09-01T17:45:12" }
        })
    }

    fn rendered() -> Vec<Value> {
        vec![json!({
            "resourceType": "Bundle",
            "entry": [
                { "resource": { "resourceType": "Patient", "id": "patient" } },
                { "resource": { "resourceType": "Organization", "id": "insurer",
                    "identifier": [{ "system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber", "value": "131011" }] } },
                { "resource": { "resourceType": "Coverage", "id": "coverage",
                    "beneficiary": { "reference": "Patient/patient" },
                    "payor": [{ "reference": "Organization/insurer" }] } }
            ]
        })]
    }

    #[test]
    fn entries_are_puts_to_keyed_ids_and_references_follow_them() {
        let b = transaction(&ids(), &card(), rendered()).expect("bundle");
        assert_eq!(b["type"], "transaction");
        assert_eq!(b["timestamp"], "2025-09-01T17:45:12+09:00");
        let entries = b["entry"].as_array().expect("entries");
        assert_eq!(entries.len(), 4, "3 resources and the Provenance");
        for e in entries {
            let r = &e["resource"];
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert_eq!(e["request"]["method"], "PUT");
            assert_eq!(e["request"]["url"], url);
            assert_eq!(r["meta"]["lastUpdated"], "2025-09-01T17:45:12+09:00");
            assert_eq!(r["id"].as_str().unwrap().len(), 64);
        }
        let patient = entries[0]["request"]["url"].as_str().unwrap();
        let insurer = entries[1]["request"]["url"].as_str().unwrap();
        assert_eq!(entries[2]["resource"]["beneficiary"]["reference"], patient);
        assert_eq!(entries[2]["resource"]["payor"][0]["reference"], insurer);
        let prov = &entries[3]["resource"];
        assert_eq!(prov["recorded"], "2025-09-01T17:45:12+09:00");
        assert_eq!(prov["target"].as_array().unwrap().len(), 3);
        assert_eq!(
            prov["agent"][0]["who"]["identifier"]["value"],
            "SYS-131011-01"
        );
        assert_eq!(prov["entity"][0]["what"]["identifier"]["value"], "M-1");
    }

    #[test]
    fn the_same_document_gives_the_same_bundle_and_another_person_other_ids() {
        let a = transaction(&ids(), &card(), rendered()).expect("bundle");
        assert_eq!(a, transaction(&ids(), &card(), rendered()).expect("again"));
        let mut other = card();
        other["subject"]["insured_number"] = json!("0000012346");
        let b = transaction(&ids(), &other, rendered()).expect("bundle");
        assert_ne!(
            a["entry"][0]["resource"]["id"],
            b["entry"][0]["resource"]["id"]
        );
        // The insurer is one Organization whoever the card is about.
        assert_eq!(
            a["entry"][1]["resource"]["id"],
            b["entry"][1]["resource"]["id"]
        );
        let text = a.to_string();
        assert!(!text.contains("0000012345"), "no 被保険者番号 in ids");
    }

    #[test]
    fn a_document_without_a_send_time_says_so_and_a_date_is_its_first_second_in_japan() {
        let mut doc = card();
        doc["source"]
            .as_object_mut()
            .unwrap()
            .shift_remove("sent_at");
        let b = transaction(&ids(), &doc, rendered()).expect("no time");
        assert!(b.get("timestamp").is_none());
        let entries = b["entry"].as_array().expect("entries");
        assert!(
            entries[0]["resource"].get("meta").is_none(),
            "no lastUpdated, no empty meta"
        );
        let prov = &entries[3]["resource"];
        assert!(prov.get("recorded").is_none());
        assert_eq!(prov["_recorded"]["extension"][0]["valueCode"], "unknown");
        doc["source"]["sent_at"] = json!("2025-09-01");
        let b = transaction(&ids(), &doc, rendered()).expect("date");
        assert_eq!(b["timestamp"], "2025-09-01T00:00:00+09:00");
        doc["source"]["sent_at"] = json!("2025-02-30T10:00:00+09:00");
        let e = transaction(&ids(), &doc, rendered()).expect_err("30 February");
        assert!(matches!(e, BundleError::BadSendTime { .. }), "{e}");
        assert!(!e.to_string().contains("2025-02-30"));
    }

    #[test]
    fn the_order_of_the_documents_members_does_not_change_the_ids() {
        let a = card();
        let b: Value = serde_json::from_str(
            r#"{"source": {"sent_at": "2025-09-01T17:45:12", "message_id": "M-1", "sender": "SYS-131011-01"},
                "subject": {"insured_number": "0000012345", "insurer_number": "131011"},
                "document": "InsuranceCard@1"}"#,
        )
        .expect("JSON");
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(canonical_text(&a), canonical_text(&b));
        let (x, y) = (
            transaction(&ids(), &a, rendered()).expect("a"),
            transaction(&ids(), &b, rendered()).expect("b"),
        );
        assert_eq!(
            x["entry"][3]["resource"]["id"],
            y["entry"][3]["resource"]["id"]
        );
        let mut c = a.clone();
        c["source"]["message_id"] = json!("M-2");
        let z = transaction(&ids(), &c, rendered()).expect("c");
        assert_ne!(
            x["entry"][3]["resource"]["id"],
            z["entry"][3]["resource"]["id"]
        );
    }

    #[test]
    fn a_reference_to_a_resource_the_document_does_not_carry_gets_the_id_it_has_elsewhere() {
        let full = transaction(&ids(), &card(), rendered()).expect("card");
        // A later document of the same person carries only the Coverage, naming the Patient it
        // does not fill and the insurer by its number.
        let coverage_only = vec![json!({ "resourceType": "Coverage", "id": "coverage",
            "beneficiary": { "reference": "Patient/patient" },
            "payor": [{ "reference": "Organization?identifier=http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber|131011" }],
            "contained": [], "subscriber": { "reference": "#x" } })];
        let b = transaction(&ids(), &card(), coverage_only).expect("decision");
        let coverage = &b["entry"][0]["resource"];
        assert_eq!(
            b["entry"].as_array().unwrap().len(),
            2,
            "Coverage and Provenance only"
        );
        assert_eq!(
            coverage["beneficiary"]["reference"],
            full["entry"][0]["request"]["url"]
        );
        assert_eq!(
            coverage["payor"][0]["reference"],
            full["entry"][1]["request"]["url"]
        );
        assert_eq!(coverage["id"], full["entry"][2]["resource"]["id"]);
        assert_eq!(
            coverage["subscriber"]["reference"], "#x",
            "not local: left as written"
        );

        let mut no_subject = card();
        no_subject.as_object_mut().unwrap().shift_remove("subject");
        let e = transaction(
            &ids(),
            &no_subject,
            vec![json!({ "resourceType": "Coverage",
            "beneficiary": { "reference": "Patient/patient" } })],
        )
        .expect_err("no subject to key the Patient by");
        assert!(matches!(e, BundleError::UnresolvedReference { .. }), "{e}");
        let e = transaction(
            &ids(),
            &card(),
            vec![json!({ "resourceType": "Coverage",
            "beneficiary": { "reference": "Patient?identifier=urn:x|0000012345" } })],
        )
        .expect_err("a person is keyed by the subject, not by an identifier");
        assert!(!e.to_string().contains("0000012345"), "{e}");
    }

    #[test]
    fn a_resource_without_a_local_id_is_named_by_its_type_so_every_document_of_a_person_keys_one_patient()
     {
        let full = transaction(&ids(), &card(), rendered()).expect("card");
        // A one-resource mapping (InsuredPerson → Patient) names no local id.
        let mut person = card();
        person["document"] = json!("InsuredPerson@1");
        let b = transaction(&ids(), &person, vec![json!({ "resourceType": "Patient" })])
            .expect("person");
        assert_eq!(
            b["entry"][0]["resource"]["id"],
            full["entry"][0]["resource"]["id"]
        );
        let e = transaction(
            &ids(),
            &person,
            vec![
                json!({ "resourceType": "Patient" }),
                json!({ "resourceType": "Patient", "id": "patient" }),
            ],
        )
        .expect_err("the same local id twice");
        assert!(matches!(e, BundleError::SameLocalId { .. }), "{e}");
    }

    #[test]
    fn a_rendered_item_without_a_type_or_a_repeated_local_id_is_named() {
        let e = transaction(&ids(), &card(), vec![json!({ "id": "x" })]).expect_err("no type");
        assert_eq!(
            e,
            BundleError::NotAResource {
                document: "InsuranceCard@1".into(),
                index: 1
            }
        );
        let twice = vec![
            json!({ "resourceType": "Patient", "gender": "male" }),
            json!({ "resourceType": "Patient", "gender": "female" }),
        ];
        let e = transaction(&ids(), &card(), twice).expect_err("same id");
        assert!(matches!(e, BundleError::SameLocalId { .. }), "{e}");
    }

    #[test]
    fn the_same_resource_written_twice_is_one_entry() {
        let goal =
            json!({ "resourceType": "Goal", "id": "goal-1", "description": { "text": "入浴" } });
        let b = transaction(&ids(), &card(), vec![goal.clone(), goal]).expect("one Goal");
        let types: Vec<&str> = b["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["Goal", "Provenance"]);
        assert_eq!(
            b["entry"][1]["resource"]["target"].as_array().map(Vec::len),
            Some(1)
        );
    }
}
