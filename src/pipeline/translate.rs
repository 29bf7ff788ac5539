//! Hop 2: consume raw messages from the translate queue, ask consent #2 (the message may have
//! waited; the consent may have been revoked meanwhile), run the mapping, validate against the
//! canonical schema, publish each canonical document to the canonical exchange, then ack the
//! input. Mapping failures go to the dead-letter queue with the precise error; denials to
//! quarantine; an unreachable registry is retried with backoff and never treated as permit.

use super::body_limit::TooLarge;
use super::headers as h;
use super::metrics::Metrics;
use super::{Hub, admission, key_word};
use crate::audit::{Decision as AuditDecision, Hop};
use crate::bus::{BusError, Delivery, Props};
use crate::consent::Category;
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

async fn handle(hub: &Hub, d: Delivery, mut shutdown: watch::Receiver<bool>) {
    let envelope = d.props.message_id.clone().unwrap_or_default();
    let source = d.props.header(h::SOURCE).unwrap_or("").to_string();
    // One mapping set for the whole message, even if `serve --watch` replaces it meanwhile.
    let mappings = hub.mappings.current();
    let mapping_id = d
        .props
        .header(h::MAPPING)
        .and_then(|m| m.rsplit_once('@'))
        .map(|(id, _)| id.to_string())
        .filter(|id| mappings.get(id).is_some());
    let file_name = d.props.header(h::FILE_NAME).map(String::from);

    // A door refuses what is larger than body_limit; a replayed dead letter came through no
    // door this time, so it is held to the same limit here.
    if let Err(too_large) = hub.body_limit.check("the message", d.body.len() as u64) {
        let error = too_large.to_string();
        return dead_and_ack(hub, d, &envelope, &error, TooLarge::REASON).await;
    }

    // Mapped by this process's ingress with this same set: take that result, not a second run.
    let kept = hub
        .handoff
        .take(&envelope, &mappings)
        .filter(|m| mapping_id.as_deref() == Some(m.mapping.as_str()));
    let mapped = match kept {
        Some(m) => {
            Metrics::inc(&hub.metrics.mapped_once);
            m
        }
        None => {
            let mapped = super::handoff::Mapped::run(
                mappings,
                &d.body,
                file_name.as_deref(),
                mapping_id.as_deref(),
            )
            .await;
            match mapped {
                Ok(m) => m,
                Err(e) => {
                    return dead_and_ack(hub, d, &envelope, &e.to_string(), "mapping-failed").await;
                }
            }
        }
    };
    let (mapping, version, docs) = (&mapped.mapping, mapped.version, &mapped.documents);
    let Some(category) = mapped
        .category
        .as_deref()
        .and_then(|c| c.parse::<Category>().ok())
    else {
        return dead_and_ack(
            hub,
            d,
            &envelope,
            &format!("mapping `{mapping}` names no platform category"),
            "mapping-failed",
        )
        .await;
    };

    // The same judgement as a new message's at ingress, asked again: a replayed message is not
    // trusted because it was once seen, and parties or consents may have changed meanwhile.
    let judged = admission::Doc::all(docs);
    let case = admission::Case {
        envelope: &envelope,
        point: "translate",
        source: &source,
        category,
        docs: &judged,
    };
    let admitted = match admission::judge(hub, &case, Some(&mut shutdown)).await {
        Ok(a) => a,
        Err(admission::Refused::Withheld(w)) => {
            return quarantine_and_ack(hub, d, &envelope, &w.code(), &w.detail()).await;
        }
        Err(admission::Refused::Unavailable(message)) => {
            tracing::warn!(envelope, error = %message, "translate: cannot judge the message now; requeue");
            return requeue(d).await;
        }
        // Shutting down while waiting: the unacked delivery is redelivered later.
        Err(admission::Refused::Stopped) => return,
    };

    let mut outputs = Vec::with_capacity(docs.len());
    for (i, (doc, subject)) in docs.iter().zip(admitted.subjects).enumerate() {
        let mut props = Props {
            message_id: Some(envelope.clone()),
            correlation_id: d.props.correlation_id.clone(),
            content_type: Some("application/json".into()),
            user_id: None,
            headers: d.props.headers.clone(),
        };
        props.headers.insert(h::HOP.into(), "translate".into());
        props
            .headers
            .insert(h::MAPPING.into(), format!("{mapping}@{version}"));
        props
            .headers
            .insert(h::DOCUMENT.into(), doc.kind.name().into());
        props
            .headers
            .insert(h::CATEGORY.into(), category.code().into());
        props.headers.insert(h::DOC_INDEX.into(), i.to_string());
        props
            .headers
            .insert(h::SUBJECT.into(), hub.subject_hash(&subject));
        outputs.push((props, &doc.json, subject, doc.kind.name()));
    }
    // All documents are published at once, each waiting for its own confirm (a multi-document
    // message costs one confirm round trip, not one per document); the input is acked only
    // when every one was confirmed.
    let category_code = category.code();
    let exchange = &hub.topology.canonical();
    let published = futures_util::future::join_all(outputs.iter().map(|(props, json, _, kind)| {
        let key = format!("{category_code}.{}", key_word(kind));
        async move {
            hub.bus
                .publish(exchange, &key, props, json.as_bytes())
                .await
        }
    }))
    .await;
    if let Some(e) = published.into_iter().find_map(Result::err) {
        // Those confirmed are published again on the redelivery; deliver de-duplicates them.
        tracing::warn!(envelope, error = %e, "translate: publish failed; requeue");
        return requeue(d).await;
    }
    for (_, _, subject, kind) in &outputs {
        Metrics::inc(&hub.metrics.translated);
        let hash = hub.hasher.hash(
            subject.insurer_number.as_str(),
            subject.insured_number.as_str(),
        );
        hub.audit(Hop::Translate, "translate", &envelope, |a| {
            a.party(source.as_str())
                .subject(hash)
                .category(category_code)
                .document(*kind)
                .decision(AuditDecision::Accepted)
        });
    }
    if let Err(e) = d.ack().await {
        tracing::warn!(envelope, error = %e, "translate: ack failed (will be redelivered; deliver de-duplicates)");
    }
}

async fn requeue(d: Delivery) {
    let _ = d.requeue().await;
}

/// Dead-letters the message with `error` (value-free) and audits it with the reason code.
async fn dead_and_ack(hub: &Hub, d: Delivery, envelope: &str, error: &str, reason: &str) {
    tracing::warn!(envelope, error, "translate: dead-lettered");
    match hub.dead(&d.props, &d.body, error).await {
        Ok(()) => {
            hub.audit(Hop::Translate, "translate", envelope, |a| {
                a.decision(AuditDecision::Dead).reason(reason)
            });
            let _ = d.ack().await;
        }
        Err(_) => requeue(d).await,
    }
}

async fn quarantine_and_ack(hub: &Hub, d: Delivery, envelope: &str, reason: &str, detail: &str) {
    match hub
        .quarantine("translate", &d.props, &d.body, reason, detail, None)
        .await
    {
        Ok(()) => {
            hub.audit(Hop::Translate, "translate", envelope, |a| {
                a.decision(AuditDecision::Quarantined).reason(reason)
            });
            let _ = d.ack().await;
        }
        Err(_) => requeue(d).await,
    }
}
