//! The samples the hub case sends, what the hub makes of them (category, document, subjects,
//! sender), the derived parties file with one AMQP recipient, and the consents that let every check
//! permit.

use crate::root;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyId, PartyKind, Subject};
use kaigo_hub::mapping::{Input, TranslateError, Translation};
use kaigo_hub::parties::{DeliveryTarget, Parties};
use kaigo_hub::pipeline::Hub;
use std::path::Path;

pub(crate) struct Sample {
    pub(crate) label: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) file_name: Option<String>,
    /// The source it would come through (`file`, `mllp`): the audit actor.
    pub(crate) via: &'static str,
}

pub(crate) fn load_sample(
    label: &'static str,
    rel: &str,
    via: &'static str,
) -> Result<Sample, String> {
    let path = root().join(rel);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).map(String::from);
    Ok(Sample {
        label,
        bytes,
        file_name,
        via,
    })
}

pub(crate) fn find_careplan(prefix: &str) -> Result<String, String> {
    let dir = root().join("samples/careplan");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.starts_with(prefix) && n.ends_with(".CSV"))
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .map(|n| format!("samples/careplan/{n}"))
        .ok_or_else(|| format!("no {prefix}*.CSV under {}", dir.display()))
}

/// What the hub will make of the sample: category, document kind, subjects, sender.
pub(crate) struct Identified {
    pub(crate) category: Category,
    pub(crate) kind: String,
    pub(crate) docs: usize,
    pub(crate) subjects: Vec<Subject>,
    pub(crate) sender: String,
    pub(crate) first_doc: serde_json::Value,
}

impl Sample {
    /// The hub's mapping of this sample, chosen by match as ingress chooses it.
    pub(crate) fn translate(&self, hub: &Hub) -> Result<Translation, TranslateError> {
        hub.mappings.current().translate(
            Input {
                bytes: &self.bytes,
                file_name: self.file_name.as_deref(),
            },
            None,
        )
    }
}

pub(crate) async fn identify(hub: &Hub, s: &Sample) -> Result<Identified, String> {
    let t = s.translate(hub).map_err(|e| format!("{}: {e}", s.label))?;
    let category = t
        .mapping
        .category
        .as_deref()
        .and_then(|c| c.parse::<Category>().ok())
        .ok_or_else(|| format!("mapping {} names no category", t.mapping.id))?;
    let first = t.documents.first().ok_or("the sample makes no document")?;
    let docs: Vec<serde_json::Value> = t
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut sender = String::new();
    for v in &docs {
        if let Some(x) = v.pointer("/source/sender").and_then(|x| x.as_str()) {
            sender = x.to_string();
        }
    }
    if hub.parties.current().get(&sender).is_none() {
        return Err(format!("the sample's sender `{sender}` is not a party"));
    }
    let mut subjects = Vec::new();
    let mut first_doc = serde_json::Value::Null;
    for v in docs {
        // The document's own subject, or the sender's patient id through the cross-reference.
        let s = hub
            .subject_of(&sender, &kaigo_hub::pipeline::Identity::of_value(&v))
            .await?
            .ok_or("the sample's document names no subject and no linked patient id")?;
        if !subjects.contains(&s) {
            subjects.push(s);
        }
        if first_doc.is_null() {
            first_doc = v;
        }
    }
    Ok(Identified {
        category,
        kind: first.kind.name().to_string(),
        docs: t.documents.len(),
        subjects,
        sender,
        first_doc,
    })
}

/// The repo's parties file with every party kept as a sender, but only `recipient` receiving
/// (its subscriptions, delivered on AMQP); inboxes and directory targets are dropped, so nothing
/// is written under the repo's `data/`.
pub(crate) fn derived_parties(recipient: &str, out: &Path) -> Result<(), String> {
    let p = Parties::load(&root().join("parties.yaml")).map_err(|e| e.to_string())?;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        )
    };
    let mut y = format!(
        "hub:\n  id: {}\n  name: {}\nparties:\n",
        q(&p.hub.id),
        q(&p.hub.name)
    );
    let mut found = false;
    for party in &p.all {
        y += &format!(
            "  - id: {}\n    name: {}\n    kind: {}\n",
            q(&party.id),
            q(&party.name),
            party.kind.code()
        );
        y += &format!(
            "    api_keys_sha256: {}\n    mllp_peers: {}\n",
            list(&party.api_keys_sha256),
            list(&party.mllp_peers)
        );
        if let Some(u) = &party.amqp_user {
            y += &format!("    amqp_user: {}\n", q(u));
        }
        if party.id == recipient {
            found = true;
            y += "    receives:\n";
            for s in &party.receives {
                y += &format!(
                    "      - {{ document: {}, format: {} }}\n",
                    q(&s.document),
                    q(&s.format)
                );
            }
            y += "    delivery: amqp\n";
        }
    }
    if !found {
        return Err(format!("recipient {recipient} is not in parties.yaml"));
    }
    std::fs::write(out, y).map_err(|e| format!("{}: {e}", out.display()))
}

/// The repo's AMQP recipient that subscribes to `document`.
pub(crate) fn amqp_recipient_for(document: &str) -> Result<String, String> {
    let p = Parties::load(&root().join("parties.yaml")).map_err(|e| e.to_string())?;
    p.all
        .iter()
        .find(|x| {
            matches!(x.delivery, Some(DeliveryTarget::Amqp))
                && x.receives.iter().any(|s| s.document == document)
        })
        .map(|x| x.id.clone())
        .ok_or_else(|| format!("parties.yaml has no AMQP recipient of {document}"))
}

/// Consents #1/#2 (the platform) and #3 (the recipient) for every subject of the sample.
pub(crate) fn grant(hub: &Hub, id: &Identified, recipient: &str) -> Result<(), String> {
    let reg = hub.store.consents();
    let rid = PartyId::parse(recipient).map_err(|e| e.to_string())?;
    for (i, s) in id.subjects.iter().enumerate() {
        for (j, g) in [
            Grantee::Kind(PartyKind::Platform),
            Grantee::Party(rid.clone()),
        ]
        .into_iter()
        .enumerate()
        {
            let c = Consent {
                id: format!("bench-{}-{i}-{j}", id.category)
                    .parse()
                    .map_err(|e: kaigo_hub::consent::ValueError| e.to_string())?,
                subject: s.clone(),
                grantee: g,
                categories: vec![id.category],
                valid_from: IsoDate::parse("2000-01-01").map_err(|e| e.to_string())?,
                valid_to: None,
                purpose: None,
                revoked_at: None,
            };
            reg.grant(c).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
