//! Hop 3: consume canonical documents, find the recipients that subscribe to the document kind
//! (never the sender itself), ask consent #3 per recipient (may *this* party receive *this*
//! category of *this* person now?), render each recipient's format with an outbound mapping,
//! hand it to the recipient's sink, record the delivery key, then ack. Deliveries are
//! de-duplicated by envelope + document + recipient, so redelivery after a crash never gives a
//! recipient the same document twice. A denied recipient gets nothing; a quarantined copy names it.

use super::headers as h;
use super::metrics::Metrics;
use super::{Hub, Verdict};
use crate::audit::{Decision as AuditDecision, Hop};
use crate::bus::{BusError, Delivery, Props};
use crate::consent::Category;
use crate::mapping::Rendered;
use crate::sinks::{self, Outbound};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Runs the deliver hop until shutdown.
pub async fn run(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    let mut consumer = hub
        .bus
        .consume(&hub.topology.deliver_queue(), hub.prefetch)
        .await?;
    let mut tasks = JoinSet::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            d = consumer.next() => d,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "deliver: consumer error");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Some(Ok(d)) => {
                let (hub, sd) = (hub.clone(), shutdown.clone());
                tasks.spawn(async move { handle(&hub, d, sd).await });
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn handle(hub: &Hub, d: Delivery, mut shutdown: watch::Receiver<bool>) {
    let envelope = d.props.message_id.clone().unwrap_or_default();
    let source = d.props.header(h::SOURCE).unwrap_or("").to_string();
    let index = d.props.header(h::DOC_INDEX).unwrap_or("0").to_string();
    let doc: serde_json::Value = match serde_json::from_slice(&d.body) {
        Ok(v) => v,
        Err(e) => {
            let _ = hub
                .dead(
                    &d.props,
                    &d.body,
                    &format!("canonical document is not JSON: {e}"),
                )
                .await;
            let _ = d.ack().await;
            return;
        }
    };
    let kind = doc
        .get("document")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let Some(category) = d
        .props
        .header(h::CATEGORY)
        .and_then(|c| c.parse::<Category>().ok())
    else {
        let _ = hub
            .dead(&d.props, &d.body, "message has no x-kaigo-category")
            .await;
        let _ = d.ack().await;
        return;
    };
    let subject = match hub.subject_of_retrying(&source, &doc, &mut shutdown).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            if hub
                .quarantine("deliver", &d.props, &d.body, "unknown-subject", None)
                .await
                .is_ok()
            {
                let _ = d.ack().await;
            }
            return;
        }
        // Shutting down while the store is away: leave it unacked for redelivery.
        Err(()) => return,
    };
    let hash = hub.hasher.hash(
        subject.insurer_number.as_str(),
        subject.insured_number.as_str(),
    );

    for (party, format) in hub.parties.recipients_of(&kind, &source) {
        let key = format!("{envelope}/{index}/{}", party.id);
        let store = hub.store.clone();
        let k = key.clone();
        match tokio::task::spawn_blocking(move || store.was_delivered(&k)).await {
            Ok(Ok(true)) => continue,
            Ok(Ok(false)) => {}
            _ => {
                let _ = d.requeue().await;
                return;
            }
        }
        let Some(recipient) = party.recipient() else {
            continue;
        };
        match hub
            .decide_until_known(
                &super::Ask {
                    envelope: &envelope,
                    point: "deliver",
                    subject: &subject,
                    recipient: &recipient,
                    category,
                    document: &kind,
                },
                &mut shutdown,
            )
            .await
        {
            None => return,
            Some(Verdict::Indeterminate(_)) => {
                let _ = d.requeue().await;
                return;
            }
            Some(Verdict::Deny(r)) => {
                let reason = format!("consent-denied:{r}");
                if hub
                    .quarantine("deliver", &d.props, &d.body, &reason, Some(&party.id))
                    .await
                    .is_err()
                {
                    let _ = d.requeue().await;
                    return;
                }
                hub.audit(Hop::Deliver, "deliver", &envelope, |a| {
                    a.party(party.id.as_str())
                        .subject(hash.clone())
                        .category(category.code())
                        .document(kind.as_str())
                        .decision(AuditDecision::Quarantined)
                        .reason(r)
                });
                continue;
            }
            Some(Verdict::Permit) => {}
        }
        let rendered = match render(hub, &doc, format) {
            Ok(r) => r,
            Err(e) => {
                // The document cannot be rendered for this recipient: keep it with the error.
                let mut p = d.props.clone();
                p.headers.insert(h::RECIPIENT.into(), party.id.clone());
                hub.audit(Hop::Deliver, "deliver", &envelope, |a| {
                    a.party(party.id.as_str())
                        .subject(hash.clone())
                        .category(category.code())
                        .document(kind.as_str())
                        .decision(AuditDecision::Dead)
                        .reason("render-failed")
                });
                if hub.dead(&p, &d.body, &e).await.is_err() {
                    let _ = d.requeue().await;
                    return;
                }
                continue;
            }
        };
        let Some(target) = &party.delivery else {
            continue;
        };
        let mut props = Props {
            message_id: Some(envelope.clone()),
            correlation_id: d.props.correlation_id.clone(),
            content_type: Some(rendered.1.into()),
            user_id: None,
            headers: d.props.headers.clone(),
        };
        props.headers.insert(h::HOP.into(), "deliver".into());
        props.headers.insert(h::RECIPIENT.into(), party.id.clone());
        let file_name = format!("{envelope}-{index}.{}", rendered.2);
        let out = Outbound {
            recipient: &party.id,
            body: &rendered.0,
            content_type: rendered.1,
            file_name: &file_name,
            props: &props,
        };
        if let Err(e) = sinks::send(hub.bus.as_ref(), &hub.topology.egress(), target, &out).await {
            tracing::warn!(envelope, recipient = %party.id, error = %e, "deliver: sink failed; requeue");
            let _ = d.requeue().await;
            return;
        }
        let store = hub.store.clone();
        let k = key.clone();
        let _ = tokio::task::spawn_blocking(move || store.mark_delivered(&k)).await;
        Metrics::inc(&hub.metrics.delivered);
        hub.audit(Hop::Deliver, "deliver", &envelope, |a| {
            a.party(party.id.as_str())
                .subject(hash.clone())
                .category(category.code())
                .document(kind.as_str())
                .decision(AuditDecision::Delivered)
        });
        tracing::info!(envelope, recipient = %party.id, format, "delivered");
    }
    let _ = d.ack().await;
}

/// Renders a canonical document as `format`: bytes, MIME type, file extension.
fn render(
    hub: &Hub,
    doc: &serde_json::Value,
    format: &str,
) -> Result<(Vec<u8>, &'static str, &'static str), String> {
    match format {
        "canonical" => Ok((doc.to_string().into_bytes(), "application/json", "json")),
        to => match hub
            .mappings
            .render(std::slice::from_ref(doc), to, None)
            .map_err(|e| e.to_string())?
        {
            Rendered::Json(texts) => Ok((
                texts.join("\n").into_bytes(),
                "application/fhir+json",
                "json",
            )),
            Rendered::Csv(bytes) => Ok((bytes, "text/csv; charset=Shift_JIS", "csv")),
        },
    }
}
