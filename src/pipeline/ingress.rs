//! Hop 1, called by every source with the authenticated party and the raw bytes: identify the
//! format, document, subject and category (by running the mapping), ask consent #1 (may this
//! person's data of this category come to the platform?), and publish the raw message to the
//! ingress exchange. The source acknowledges its sender only after `accept` returned `Ok`, i.e.
//! after the broker confirmed. Refusals are answered at once and nothing is lost: malformed input
//! goes to the dead-letter queue, denied or unidentifiable input to quarantine, both with reasons.

use super::clock;
use super::headers as h;
use super::metrics::Metrics;
use super::{Hub, admission, key_word};
use crate::audit::{Decision as AuditDecision, Hop};
use crate::bus::Props;
use crate::consent::Category;
use crate::formats::Format;
use crate::parties::Party;
use crate::redact::ErrorText;

/// One message as a source received it.
pub struct Submission<'a> {
    /// The authenticated sender.
    pub party: &'a Party,
    /// The bytes, untouched.
    pub bytes: &'a [u8],
    /// File name, for file-based sources (ケアプラン CSV metadata).
    pub file_name: Option<&'a str>,
    /// The sender's own message id, kept as the correlation id.
    pub correlation_id: Option<&'a str>,
    /// Which source: `http`, `mllp`, `amqp`, `file`.
    pub via: &'static str,
}

/// The message is on the bus.
#[derive(Debug)]
pub struct Accepted {
    /// Envelope id (AMQP `message_id` on every hop).
    pub envelope_id: String,
    /// Mapping that identified it.
    pub mapping: String,
    /// Canonical documents it will become.
    pub documents: usize,
}

/// Why a source must refuse the message.
#[derive(Debug)]
pub enum Refusal {
    /// Not parseable or not mappable: kept in the dead-letter queue.
    Malformed {
        /// Envelope id of the dead-lettered copy.
        envelope_id: String,
        /// The precise error (file, segment/field, line/column, rule): its `Display` without the
        /// message's values (for logs and side files), `for_sender()` with them, for the answer.
        message: ErrorText,
    },
    /// Consent denied, subject unknown, or a sender that may not send it: kept in quarantine.
    Forbidden {
        /// Envelope id of the quarantined copy.
        envelope_id: String,
        /// Reason code (`consent-denied:no-consent`, `insurer-mismatch`, …).
        reason: String,
        /// What is missing and what clears it (ids and codes only, never a personal value).
        detail: String,
    },
    /// The broker or registry is unreachable: nothing kept, the sender should retry.
    Unavailable {
        /// What was unreachable.
        message: String,
    },
}

fn content_type(f: Format) -> &'static str {
    match f {
        Format::Hl7v2 => "x-application/hl7-v2+er7",
        Format::Fhir => "application/fhir+json",
        Format::Canonical => "application/json",
        Format::Xml => "application/xml",
        Format::Csv => "text/csv",
    }
}

/// Runs hop 1 for one submission.
pub async fn accept(hub: &Hub, sub: Submission<'_>) -> Result<Accepted, Refusal> {
    if let Err(message) = hub.backlog.admit() {
        Metrics::inc(&hub.metrics.busy);
        return Err(Refusal::Unavailable { message });
    }
    let id = clock::envelope_id();
    let format = Format::sniff(sub.bytes);
    let mut props = Props {
        message_id: Some(id.clone()),
        correlation_id: Some(sub.correlation_id.unwrap_or(&id).to_string()),
        content_type: Some(content_type(format).into()),
        user_id: None,
        headers: Default::default(),
    };
    props.headers.insert(h::SOURCE.into(), sub.party.id.clone());
    props.headers.insert(h::FORMAT.into(), format.name().into());
    props.headers.insert(h::HOP.into(), "ingress".into());
    if let Some(f) = sub.file_name {
        props.headers.insert(h::FILE_NAME.into(), f.into());
    }
    let unavailable = |e: crate::bus::BusError| Refusal::Unavailable {
        message: e.to_string(),
    };
    let refuse = |reason: &str| {
        Metrics::inc(&hub.metrics.rejected);
        hub.audit(Hop::Ingress, sub.via, &id, |d| {
            d.party(sub.party.id.as_str())
                .decision(AuditDecision::Rejected)
                .reason(reason)
        });
    };

    // Identify: the mapping tells the document, category and subject.
    let set = hub.mappings.current();
    let mapped = match super::handoff::Mapped::run(set, sub.bytes, sub.file_name, None).await {
        Ok(m) if !m.documents.is_empty() => m,
        Ok(_) => {
            let message = ErrorText::plain("the message holds no document this hub maps");
            hub.dead(&props, sub.bytes, &message.to_string())
                .await
                .map_err(unavailable)?;
            refuse("no-document");
            return Err(Refusal::Malformed {
                envelope_id: id,
                message: message.map(|m| for_sender(hub, m)),
            });
        }
        Err(message) => {
            hub.dead(&props, sub.bytes, &message.to_string())
                .await
                .map_err(unavailable)?;
            refuse("malformed");
            return Err(Refusal::Malformed {
                envelope_id: id,
                message: message.map(|m| for_sender(hub, m)),
            });
        }
    };
    let (mapping, version) = (mapped.mapping.clone(), mapped.version);
    let docs = &mapped.documents;
    let document = docs[0].kind.name();
    props
        .headers
        .insert(h::MAPPING.into(), format!("{mapping}@{version}"));
    props.headers.insert(h::DOCUMENT.into(), document.into());
    let category: Option<Category> = mapped.category.as_deref().and_then(|c| c.parse().ok());
    let Some(category) = category else {
        let message = format!("mapping `{mapping}` names no platform category");
        hub.dead(&props, sub.bytes, &message)
            .await
            .map_err(unavailable)?;
        refuse("no-category");
        return Err(Refusal::Malformed {
            envelope_id: id,
            message: ErrorText::plain(message),
        });
    };
    props
        .headers
        .insert(h::CATEGORY.into(), category.code().into());

    // Who sent it, whose data it is, and may it come: the judgement translate (and deliver, for
    // a replayed document) makes again, in `admission`.
    let judged = admission::Doc::all(docs);
    let case = admission::Case {
        envelope: &id,
        point: "ingress",
        source: &sub.party.id,
        category,
        docs: &judged,
    };
    let admitted = match admission::judge(hub, &case, None).await {
        Ok(a) => a,
        Err(admission::Refused::Withheld(w)) => {
            let reason = w.code();
            let detail = w.detail();
            hub.quarantine("ingress", &props, sub.bytes, &reason, &detail, None)
                .await
                .map_err(unavailable)?;
            refuse(&reason);
            return Err(Refusal::Forbidden {
                envelope_id: id,
                reason,
                detail,
            });
        }
        Err(admission::Refused::Unavailable(message)) => {
            return Err(Refusal::Unavailable { message });
        }
        Err(admission::Refused::Stopped) => {
            return Err(Refusal::Unavailable {
                message: "the hub is shutting down".into(),
            });
        }
    };
    let hashes: Vec<String> = admitted
        .distinct()
        .into_iter()
        .map(|s| hub.subject_hash(s))
        .collect();
    props.headers.insert(h::SUBJECT.into(), hashes.join(","));

    let key = format!("{}.{}", format.name(), key_word(document));
    let documents = docs.len();
    // Kept before publishing, so the translate hop cannot look before it is there.
    hub.handoff.put(&id, mapped);
    if let Err(e) = hub
        .bus
        .publish(&hub.topology.ingress(), &key, &props, sub.bytes)
        .await
    {
        hub.handoff.forget(&id);
        return Err(unavailable(e));
    }
    Metrics::inc(&hub.metrics.accepted);
    for hash in &hashes {
        let hash = crate::audit::SubjectHash::from_hex(hash).ok();
        hub.audit(Hop::Ingress, sub.via, &id, |d| {
            let d = d
                .party(sub.party.id.as_str())
                .category(category.code())
                .document(document)
                .decision(AuditDecision::Accepted);
            match hash {
                Some(h) => d.subject(h),
                None => d,
            }
        });
    }
    tracing::info!(envelope = %id, source = %sub.party.id, via = sub.via, mapping = %mapping, documents, "accepted");
    Ok(Accepted {
        envelope_id: id,
        mapping,
        documents,
    })
}

/// The error as an outside sender may see it: mapping files named without the server's
/// directories (the dead-letter copy keeps the full text for operators).
fn for_sender(hub: &Hub, message: &str) -> String {
    let mut m = message.to_string();
    let set = hub.mappings.current();
    for mapping in &set.mappings {
        if let Some(dir) = mapping
            .loc
            .file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            m = m.replace(&format!("{}/", dir.display()), "");
        }
    }
    m
}
