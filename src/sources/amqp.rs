//! The AMQP source: vendor systems publish XML (被保険者証 exports and the like) to the
//! `<prefix>.vendor.in` exchange with their own RabbitMQ user; the hub consumes the vendor queue,
//! one message at a time so each vendor's order is kept. The sender is the broker-validated
//! `user_id` property and nothing else (no header, no field of the body): it is looked up with
//! `Parties::by_amqp_user`. A message with no `user_id`, or one no party publishes as, is copied
//! to the dead-letter exchange with `x-kaigo-error` saying why (and none of the sender's own
//! headers), then acked; so is one larger than `body_limit` (the limit of every door), never
//! handed to ingress. Otherwise it goes to
//! `ingress::accept` (the vendor's `message_id` kept as correlation id): accepted, malformed
//! (ingress dead-lettered it) and refused (ingress quarantined it) are acked; unavailable is
//! requeued after a backoff that grows with the delivery count (the queue's delivery limit then
//! dead-letters a message that never gets through). On shutdown it stops consuming after the
//! message in hand. Must never take a sender's identity from anything but the broker's `user_id`,
//! or ack a message before its copy or its next hop was confirmed.

use crate::audit::{Decision as AuditDecision, Hop};
use crate::bus::{Delivery, Props};
use crate::parties::Party;
use crate::pipeline::body_limit::{BodyLimit, TooLarge};
use crate::pipeline::ingress::{self, Refusal, Submission};
use crate::pipeline::metrics::Metrics;
use crate::pipeline::retry::{FIRST_BACKOFF, backoff, pause};
use crate::pipeline::{Hub, clock, headers};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the AMQP source is built from: the setting `body_limit` (the queue, `<prefix>.vendor.in`,
/// and `prefetch` are the hub's). Nothing in it can be wrong on its own.
#[derive(Debug, Clone, Copy)]
pub struct AmqpSourceConfig {
    /// `body_limit`: a larger message is dead-lettered, saying so.
    pub body_limit: BodyLimit,
}

/// Consumes the vendor queue until `shutdown` turns true.
pub fn start(
    hub: Arc<Hub>,
    cfg: AmqpSourceConfig,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(hub, cfg.body_limit, shutdown))
}

async fn run(hub: Arc<Hub>, limit: BodyLimit, mut shutdown: watch::Receiver<bool>) {
    let queue = hub.topology.vendor_queue();
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut consumer = match hub.bus.consume(&queue, hub.prefetch).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, "AMQP source: cannot consume; retrying");
                if !pause(backoff(failures), &mut shutdown).await {
                    return;
                }
                failures = failures.saturating_add(1);
                continue;
            }
        };
        tracing::info!(queue = %queue, "AMQP source: consuming");
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                d = consumer.next() => d,
            };
            match next {
                Some(Ok(d)) => {
                    failures = 0;
                    handle(&hub, d, limit, &mut shutdown).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(queue = %queue, error = %e, "AMQP source: consumer error");
                    if !pause(backoff(failures), &mut shutdown).await {
                        return;
                    }
                    failures = failures.saturating_add(1);
                }
                // The broker cancelled the consumer with its channel open: the vendor queue was
                // deleted under the hub.
                None => match hub
                    .consume_again(&queue, "amqp source", &mut shutdown)
                    .await
                {
                    Some(c) => consumer = c,
                    None => return,
                },
            }
        }
    }
}

/// Authenticates, checks the size of, ingests and settles one vendor message.
async fn handle(hub: &Hub, d: Delivery, limit: BodyLimit, shutdown: &mut watch::Receiver<bool>) {
    let user = d.props.user_id.as_deref().filter(|u| !u.is_empty());
    let parties = hub.parties.current();
    let Some(party) = user.and_then(|u| parties.by_amqp_user(u)) else {
        let reason = match user {
            None => "unauthenticated: the message has no user_id property; vendors publish with their own broker user and user_id set to it".to_string(),
            Some(u) => format!("unauthenticated: user_id `{u}` is not the amqp_user of any party"),
        };
        return dead(hub, d, None, "unauthenticated", &reason).await;
    };
    if let Err(too_large) = limit.check("the message", d.body.len() as u64) {
        return dead(
            hub,
            d,
            Some(party),
            TooLarge::REASON,
            &too_large.to_string(),
        )
        .await;
    }
    let result = ingress::accept(
        hub,
        Submission {
            party,
            bytes: &d.body,
            file_name: None,
            correlation_id: d.props.message_id.as_deref(),
            via: "amqp",
        },
    )
    .await;
    match result {
        Ok(accepted) => {
            tracing::debug!(envelope = %accepted.envelope_id, party = %party.id, refused = accepted.refused.len(), "AMQP source: accepted");
            settle_ack(d).await;
        }
        Err(Refusal::Malformed { envelope_id, .. }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, "AMQP source: malformed (dead-lettered)");
            settle_ack(d).await;
        }
        Err(Refusal::Forbidden {
            envelope_id,
            reason,
            ..
        }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, reason = %reason, "AMQP source: refused (quarantined)");
            settle_ack(d).await;
        }
        Err(Refusal::Unavailable { message }) => {
            let wait = backoff(d.delivery_count);
            tracing::warn!(party = %party.id, error = %message, retry_in_ms = wait.as_millis() as u64, "AMQP source: unavailable; requeue");
            pause(wait, shutdown).await;
            if let Err(e) = d.requeue().await {
                tracing::warn!(error = %e, "AMQP source: requeue failed (the broker redelivers it)");
            }
        }
    }
}

async fn settle_ack(d: Delivery) {
    if let Err(e) = d.ack().await {
        tracing::warn!(error = %e, "AMQP source: ack failed (the message will be redelivered)");
    }
}

/// Dead-letters a message ingress must not see — from an unproven sender (`party` is `None`), or
/// too large — with `reason` as `x-kaigo-error` and `code` in the audit event, then acks it
/// (requeues if the copy failed).
async fn dead(hub: &Hub, d: Delivery, party: Option<&Party>, code: &str, reason: &str) {
    let envelope = clock::envelope_id();
    // The sender's own headers are not forwarded: its `x-kaigo-*` claims are not ours to
    // believe, and the dead letter's headers carry ids and reasons only (what a sender puts in
    // its headers may be personal; the body is kept as it came). The broker would refuse a
    // republish carrying someone else's `user_id`.
    let mut props = Props {
        message_id: Some(envelope.clone()),
        correlation_id: d.props.message_id.clone(),
        content_type: d.props.content_type.clone(),
        user_id: None,
        headers: Default::default(),
    };
    props.headers.insert(
        headers::FORMAT.into(),
        crate::formats::Format::sniff(&d.body).name().into(),
    );
    props.headers.insert(headers::HOP.into(), "ingress".into());
    if let Some(p) = party {
        props.headers.insert(headers::SOURCE.into(), p.id.clone());
    }
    match hub.dead(&props, &d.body, code, reason).await {
        Ok(()) => {
            Metrics::inc(&hub.metrics.rejected);
            hub.audit(Hop::Ingress, "amqp", &envelope, |a| {
                let a = a.decision(AuditDecision::Rejected).reason(code);
                match party {
                    Some(p) => a.party(p.id.as_str()),
                    None => a,
                }
            });
            tracing::warn!(envelope = %envelope, party = party.map(|p| p.id.as_str()), reason, "AMQP source: message dead-lettered before ingress");
            settle_ack(d).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "AMQP source: cannot dead-letter; requeue");
            tokio::time::sleep(FIRST_BACKOFF).await;
            if let Err(e) = d.requeue().await {
                tracing::warn!(error = %e, "AMQP source: requeue failed (the broker redelivers it)");
            }
        }
    }
}
