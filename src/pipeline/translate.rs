//! Hop 2: consume raw messages from the translate queue, ask consent #2 (the message may have
//! waited; the consent may have been revoked meanwhile), run the mapping, validate against the
//! canonical schema, publish each canonical document to the canonical exchange, then ack the
//! input. Mapping failures go to the dead-letter queue with the precise error; denials to
//! quarantine; an unreachable registry is retried with backoff and never treated as permit.
//! Each document is judged on its own: a withheld one is kept in quarantine as its canonical
//! document (labelled like a published one, `x-kaigo-doc-index` included, so that `replay`
//! sends it to the deliver hop, which judges it again), while the others go on; a message none
//! of whose documents may go on is kept whole, raw, as before.
//!
//! Read top to bottom: `handle` runs the steps (`within_body_limit`, `map`, `category`,
//! `admit`, `documents`), each of which hands the next what it needs or ends the journey with an
//! [`Outcome`]; `settle` alone publishes, dead-letters, quarantines, audits, and acks or requeues.
//! Once every document is confirmed, each is handed to the encrypted archive (when on), which
//! returns at once (`archiver`).

use super::body_limit::TooLarge;
use super::handoff::Mapped;
use super::headers as h;
use super::metrics::Metrics;
use super::outcome::Outcome;
use super::{Hub, admission, key_word};
use crate::audit::{Decision as AuditDecision, Hop, SubjectHash};
use crate::bus::{BusError, Delivery, Props};
use crate::consent::Category;
use admission::{Judged, Withheld};
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the translate hop until shutdown; in-flight messages are finished (or left unacked for
/// redelivery) before it returns.
pub async fn run(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    let queue = hub.topology.translate_queue();
    super::consume_until_shutdown(
        hub,
        &queue,
        "translate",
        shutdown,
        |hub, d, sd| async move { handle(&hub, d, sd).await },
    )
    .await
}

/// A step of this hop: what the next step needs, or how the message's journey ends.
type Step<T> = super::outcome::Step<T, Canonical>;

/// One message's journey through the hop: its steps, then the one place that settles it.
async fn handle(hub: &Hub, d: Delivery, mut shutdown: watch::Receiver<bool>) {
    let envelope = d.props.message_id.clone().unwrap_or_default();
    let m = Message {
        envelope: &envelope,
        props: &d.props,
        body: &d.body,
    };
    let outcome = Outcome::of(translate(hub, &m, &mut shutdown).await);
    settle(hub, d, &envelope, outcome).await;
}

/// What the steps read of a delivery (never the delivery itself: only `settle` settles it).
struct Message<'a> {
    envelope: &'a str,
    props: &'a Props,
    body: &'a [u8],
}

/// The steps, in order.
async fn translate(
    hub: &Hub,
    m: &Message<'_>,
    shutdown: &mut watch::Receiver<bool>,
) -> Step<Canonical> {
    within_body_limit(hub, m.body)?;
    let mapped = map(hub, m).await?;
    let category = category(&mapped)?;
    let judged = admit(hub, m, &mapped, category, shutdown).await?;
    Ok(documents(hub, m, mapped, category, judged))
}

/// What this hop would make of a parked raw message now, by its own steps but without the
/// handoff and without judging it: held to the body limit, mapped again, with its category. A
/// replay's preview asks this ([`super::preview`]); it then judges the documents itself.
pub(crate) async fn mapped_again<F>(
    hub: &Hub,
    props: &Props,
    body: &[u8],
) -> super::outcome::Step<(Mapped, Category), F> {
    within_body_limit(hub, body)?;
    let mappings = hub.mappings.current();
    let mapped = run_mapping(mappings, props, body).await?;
    let category = category(&mapped)?;
    Ok((mapped, category))
}

/// A door refuses what is larger than body_limit; a replayed dead letter came through no door
/// this time, so it is held to the same limit here.
fn within_body_limit<F>(hub: &Hub, body: &[u8]) -> super::outcome::Step<(), F> {
    hub.body_limit
        .check("the message", body.len() as u64)
        .map_err(|too_large| Outcome::dead(too_large.to_string(), TooLarge::REASON))
}

/// Runs the mapping the message names, or takes the result this process's ingress kept.
async fn map(hub: &Hub, m: &Message<'_>) -> Step<Mapped> {
    // One mapping set for the whole message, even if `serve --watch` replaces it meanwhile.
    let mappings = hub.mappings.current();
    let mapping_id = m
        .props
        .header(h::MAPPING)
        .and_then(|label| mapping_ids(label, &mappings));
    // Mapped by this process's ingress with this same set: take that result, not a second run.
    let kept = hub
        .handoff
        .take(m.envelope, &mappings)
        .filter(|m| mapping_id.as_deref() == Some(m.ids().as_str()));
    if let Some(mapped) = kept {
        Metrics::inc(&hub.metrics.mapped_once);
        return Ok(mapped);
    }
    run_mapping(mappings, m.props, m.body).await
}

/// Runs the mappings the message's `x-kaigo-mapping` label names while all are loaded, else
/// the one the match rules choose.
async fn run_mapping<F>(
    mappings: Arc<crate::mapping::MappingSet>,
    props: &Props,
    body: &[u8],
) -> super::outcome::Step<Mapped, F> {
    let mapping_id = props
        .header(h::MAPPING)
        .and_then(|label| mapping_ids(label, &mappings));
    let file_name = props.header(h::FILE_NAME);
    Mapped::run(mappings, body, file_name, mapping_id.as_deref())
        .await
        .map_err(|error| Outcome::Dead {
            error,
            reason: "mapping-failed",
        })
}

/// The ids of an `x-kaigo-mapping` label (`a@1,b@2` → `a,b`), when every one is still loaded;
/// otherwise the message is mapped as a new one (by the match rules).
fn mapping_ids(label: &str, mappings: &crate::mapping::MappingSet) -> Option<String> {
    let ids = super::handoff::label_ids(label)?;
    let loaded = ids.iter().all(|id| mappings.get(id).is_some());
    loaded.then(|| ids.join(","))
}

/// The mapping's platform category.
fn category<F>(mapped: &Mapped) -> super::outcome::Step<Category, F> {
    mapped
        .category()
        .map_err(|error| Outcome::dead(error, "mapping-failed"))
}

/// The same judgement as a new message's at ingress, asked again: a replayed message is not
/// trusted because it was once seen, and parties or consents may have changed meanwhile. Each
/// document is judged on its own; when none may go on, the message is kept whole (for the reason
/// [`admission::whole`] picks). Gives each document's judgement.
async fn admit(
    hub: &Hub,
    m: &Message<'_>,
    mapped: &Mapped,
    category: Category,
    shutdown: &mut watch::Receiver<bool>,
) -> Step<Vec<Judged>> {
    let judged = admission::Doc::all(&mapped.documents);
    let case = admission::Case {
        envelope: m.envelope,
        point: "translate",
        source: m.props.header(h::SOURCE).unwrap_or(""),
        category,
        docs: &judged,
        consulted: None,
    };
    let judged = admission::judge_each(hub, &case, Some(shutdown)).await?;
    if judged.iter().all(|j| j.withheld().is_some())
        && let Some(w) = admission::whole(judged.iter().filter_map(Judged::withheld))
    {
        return Err(Outcome::Quarantine(w.clone()));
    }
    Ok(judged)
}

/// What the hop forwards: the canonical documents of one message, in envelope order.
struct Canonical {
    /// Their platform category.
    category: Category,
    /// Each document as it is published, or kept in quarantine.
    docs: Vec<Output>,
}

/// One canonical document with its properties, and what its audit event names.
struct Output {
    props: Props,
    json: String,
    kind: &'static str,
    /// Its person's keyed hash (unknown for a document withheld as `unknown-subject`, and for
    /// one whose kind carries no person).
    subject: Option<SubjectHash>,
    /// Why it may not go on: it is kept in quarantine as this canonical document, where
    /// `replay` finds it and sends it to the deliver hop, which judges it again.
    withheld: Option<Withheld>,
}

/// Each document with the input's properties and the translate hop's headers.
fn documents(
    hub: &Hub,
    m: &Message<'_>,
    mapped: Mapped,
    category: Category,
    judged: Vec<Judged>,
) -> Canonical {
    let mapping = mapped.label.clone();
    let docs = mapped.documents.into_iter().zip(judged).enumerate();
    let docs = docs.map(|(i, (doc, judged))| {
        let subject = judged.subject().map(|s| {
            hub.hasher
                .hash(s.insurer_number.as_str(), s.insured_number.as_str())
        });
        let mut props = Props {
            message_id: Some(m.envelope.to_string()),
            correlation_id: m.props.correlation_id.clone(),
            content_type: Some("application/json".into()),
            user_id: None,
            headers: m.props.headers.clone(),
        };
        let headers = [
            (h::HOP, "translate".to_string()),
            (h::MAPPING, mapping.clone()),
            (h::DOCUMENT, doc.kind.name().into()),
            (h::CATEGORY, category.code().into()),
            (h::DOC_INDEX, i.to_string()),
        ];
        for (name, value) in headers {
            props.headers.insert(name.into(), value);
        }
        // The message's header names the subjects of all its documents: each document names its own.
        props.headers.remove(h::SUBJECT);
        if let Some(s) = &subject {
            props.headers.insert(h::SUBJECT.into(), s.as_str().into());
        }
        Output {
            props,
            json: doc.json,
            kind: doc.kind.name(),
            subject,
            withheld: match judged {
                Judged::Withheld(w, _) => Some(w),
                Judged::Admitted(_) => None,
            },
        }
    });
    Canonical {
        category,
        docs: docs.collect(),
    }
}

/// The one place the hop acts on a message: publishes its documents, or keeps it in the
/// dead-letter queue or quarantine; audits what it did; then acks, requeues, or (shutting down)
/// leaves it unsettled for redelivery. A copy that cannot be kept is requeued, never acked.
async fn settle(hub: &Hub, d: Delivery, envelope: &str, outcome: Outcome<Canonical>) {
    let kept = match outcome {
        Outcome::Forward(canonical) => return publish(hub, d, envelope, canonical).await,
        Outcome::Dead { error, reason } => {
            let error = error.to_string();
            tracing::warn!(envelope, error = error.as_str(), "translate: dead-lettered");
            let kept = hub.dead(&d.props, &d.body, reason, &error).await;
            kept.map(|()| (AuditDecision::Dead, reason.to_string()))
        }
        Outcome::Quarantine(w) => {
            let (reason, detail) = (w.code(), w.detail());
            let kept = hub
                .quarantine("translate", &d.props, &d.body, &reason, &detail, None)
                .await;
            kept.map(|()| (AuditDecision::Quarantined, reason))
        }
        Outcome::Retry(message) => {
            tracing::warn!(envelope, error = %message, "translate: cannot judge the message now; requeue");
            return requeue(d).await;
        }
        // Shutting down while waiting: the unacked delivery is redelivered later.
        Outcome::Stop => return,
    };
    match kept {
        Ok((decision, reason)) => {
            hub.audit(Hop::Translate, "translate", envelope, |a| {
                a.decision(decision).reason(reason)
            });
            let _ = d.ack().await;
        }
        Err(_) => requeue(d).await,
    }
}

/// `settle`'s forward: all documents are published at once, each waiting for its own confirm
/// (a multi-document message costs one confirm round trip, not one per document), the admitted
/// ones to the canonical exchange and the withheld ones to quarantine; each is counted and
/// audited, and the input acked, only when every one was confirmed.
async fn publish(hub: &Hub, d: Delivery, envelope: &str, canonical: Canonical) {
    let category = canonical.category.code();
    let exchange = &hub.topology.canonical();
    let published = futures_util::future::join_all(canonical.docs.iter().map(|doc| async move {
        match &doc.withheld {
            None => {
                let key = format!("{category}.{}", key_word(doc.kind));
                hub.bus
                    .publish(exchange, &key, &doc.props, doc.json.as_bytes())
                    .await
            }
            Some(w) => {
                let (reason, detail) = (w.code(), w.detail());
                hub.quarantine(
                    "translate",
                    &doc.props,
                    doc.json.as_bytes(),
                    &reason,
                    &detail,
                    None,
                )
                .await
            }
        }
    }))
    .await;
    if let Some(e) = published.into_iter().find_map(Result::err) {
        // Those confirmed are published again on the redelivery; deliver de-duplicates them.
        tracing::warn!(envelope, error = %e, "translate: publish failed; requeue");
        return requeue(d).await;
    }
    let source = d.props.header(h::SOURCE).unwrap_or("");
    if let Some(archive) = &hub.archive {
        let at = super::clock::now_rfc3339();
        for (i, doc) in canonical.docs.iter().enumerate() {
            let meta = crate::store::archive::Document {
                envelope: envelope.to_string(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                at: at.clone(),
                kind: doc.kind.to_string(),
                subject: doc.subject.as_ref().map(|s| s.as_str().to_string()),
                mapping: doc.props.header(h::MAPPING).unwrap_or("").to_string(),
            };
            archive.keep_document(meta, doc.json.as_bytes());
        }
    }
    for doc in canonical.docs {
        let (decision, reason) = match &doc.withheld {
            None => {
                Metrics::inc(&hub.metrics.translated);
                (AuditDecision::Accepted, None)
            }
            Some(w) => (AuditDecision::Quarantined, Some(w.code())),
        };
        // Published without a person: say so, as no consent was asked.
        let reason = match (&reason, &doc.subject) {
            (None, None) => Some(admission::NO_SUBJECT.to_string()),
            _ => reason,
        };
        hub.audit(Hop::Translate, "translate", envelope, |a| {
            let mut a = a
                .party(source)
                .category(category)
                .document(doc.kind)
                .decision(decision);
            if let Some(s) = doc.subject {
                a = a.subject(s);
            }
            if let Some(r) = reason {
                a = a.reason(r);
            }
            a
        });
    }
    if let Err(e) = d.ack().await {
        tracing::warn!(envelope, error = %e, "translate: ack failed (will be redelivered; deliver de-duplicates)");
    }
}

async fn requeue(d: Delivery) {
    let _ = d.requeue().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_label_names_the_mappings_to_apply_again_while_all_are_loaded() {
        let m = |id: &str| {
            let yaml = format!(
                "id: {id}\nversion: 1\nsource: {{ format: csv }}\ntarget: InsuredPerson@1\nfields: {{}}\n"
            );
            Arc::new(
                crate::mapping::compile::compile_str(&yaml, std::path::Path::new("m.yaml"))
                    .expect("compiles"),
            )
        };
        let set = crate::mapping::MappingSet {
            mappings: vec![m("a"), m("b")],
        };
        assert_eq!(mapping_ids("a@1", &set).as_deref(), Some("a"));
        assert_eq!(mapping_ids("b@2,a@1", &set).as_deref(), Some("b,a"));
        assert_eq!(mapping_ids("a@1,gone@1", &set), None);
        assert_eq!(mapping_ids("a", &set), None);
    }
}
