//! Parked messages keep personal data only as long as they must: a quarantined copy older than
//! `quarantine_keep_days` (counted from `x-kaigo-quarantined-at`, which [`Hub::quarantine`]
//! writes) and a dead letter older than `dead_keep_days` (from `x-kaigo-dead-at`, which
//! [`Hub::dead`] writes) are dropped, and each drop is an audit event (hop `admin`, decision
//! `expired`, the reason it was parked for in `reason`, actor `quarantine-retention` or
//! `dead-retention`), counted in `kaigo_quarantine_expired_total` / `kaigo_dead_expired_total`.
//! Like Mirth's data pruner, it runs in `serve` (once an hour, and once soon after start) and
//! visits every message of the queue once: the young ones go back to the tail unchanged. A
//! message parked without the header (by an older hub, or dead-lettered by the broker itself
//! after too many deliveries) is stamped now, and kept that long from now.
//!
//! Must never: drop a message before its time, or drop one without the audit event.

use super::Hub;
use super::clock;
use super::headers as h;
use super::metrics::Metrics;
use super::replay::Parked;
use crate::audit::{Decision, Hop, SubjectHash};
use crate::bus::{BusError, Props};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often `serve` prunes.
pub const EVERY: Duration = Duration::from_secs(3600);

/// The first prune after start.
pub const FIRST: Duration = Duration::from_secs(60);

/// What one prune did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Dropped (older than the retention).
    pub expired: u64,
    /// Kept (younger).
    pub kept: u64,
    /// Kept, and stamped now: they had no `x-kaigo-quarantined-at`.
    pub stamped: u64,
}

/// What each parking queue's retention reads: its queue and exchange, the header that says when a
/// message was parked, the audit actor, the counter and the setting, for messages and logs.
struct Place<'h> {
    queue: String,
    park: String,
    stamp: &'static str,
    actor: &'static str,
    expired: &'h std::sync::atomic::AtomicU64,
    setting: &'static str,
}

fn place(hub: &Hub, parked: Parked) -> Place<'_> {
    let t = &hub.topology;
    match parked {
        Parked::Quarantine => Place {
            queue: t.quarantine_queue(),
            park: t.quarantine(),
            stamp: h::QUARANTINED_AT,
            actor: "quarantine-retention",
            expired: &hub.metrics.quarantine_expired,
            setting: "quarantine_keep_days",
        },
        Parked::Dead => Place {
            queue: t.dead_queue(),
            park: t.dead(),
            stamp: h::DEAD_AT,
            actor: "dead-retention",
            expired: &hub.metrics.dead_expired,
            setting: "dead_keep_days",
        },
    }
}

/// Drops the messages of `parked` (quarantined copies, or dead letters) parked before
/// `now - keep`; each is audited first.
pub async fn prune(hub: &Hub, parked: Parked, keep: Duration) -> Result<Pruned, BusError> {
    let cutoff = clock::rfc3339_before(keep);
    let place = place(hub, parked);
    let waiting = hub.bus.queue_len(&place.queue).await?;
    let mut consumer = hub.bus.consume(&place.queue, 16).await?;
    let mut done = Pruned::default();
    for _ in 0..waiting {
        let d = match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => break,
        };
        let at = d
            .props
            .header(place.stamp)
            .filter(|a| clock::is_rfc3339(a))
            .map(String::from);
        match at {
            Some(at) if at.as_str() < cutoff.as_str() => {
                let (envelope, reason) = audit_expired(hub, place.actor, &d.props);
                // Audited first: a message is never gone without its event.
                d.ack().await?;
                Metrics::inc(place.expired);
                tracing::info!(envelope, parked_at = %at, reason, setting = place.setting, "retention: dropped a parked message after its keep days");
                done.expired += 1;
            }
            Some(_) => {
                hub.bus
                    .publish(&place.park, &d.routing_key, &d.props, &d.body)
                    .await?;
                d.ack().await?;
                done.kept += 1;
            }
            None => {
                let mut props = d.props.clone();
                props
                    .headers
                    .insert(place.stamp.into(), clock::now_rfc3339());
                hub.bus
                    .publish(&place.park, &d.routing_key, &props, &d.body)
                    .await?;
                d.ack().await?;
                done.stamped += 1;
            }
        }
    }
    Ok(done)
}

/// Audits the drop of an expired parked message: one event per subject it names (one without a
/// subject when it names none), by `actor`. Gives its envelope id and the reason it was parked.
fn audit_expired(hub: &Hub, actor: &str, props: &Props) -> (String, String) {
    let envelope = props.message_id.clone().unwrap_or_default();
    let reason = props.header(h::REASON).unwrap_or("").to_string();
    let hashes: Vec<SubjectHash> = props
        .header(h::SUBJECT)
        .unwrap_or("")
        .split(',')
        .filter_map(|x| SubjectHash::from_hex(x).ok())
        .collect();
    let (source, document, category) = (
        props.header(h::SOURCE).unwrap_or(""),
        props.header(h::DOCUMENT),
        props.header(h::CATEGORY),
    );
    let event = |subject: Option<SubjectHash>| {
        hub.audit(Hop::Admin, actor, &envelope, |a| {
            let mut a = a.decision(Decision::Expired);
            if !reason.is_empty() {
                a = a.reason(reason.as_str());
            }
            if !source.is_empty() {
                a = a.party(source);
            }
            if let Some(doc) = document {
                a = a.document(doc);
            }
            if let Some(c) = category {
                a = a.category(c);
            }
            match subject {
                Some(s) => a.subject(s),
                None => a,
            }
        })
    };
    if hashes.is_empty() {
        event(None);
    }
    for s in hashes {
        event(Some(s));
    }
    (envelope, reason)
}

/// Prunes quarantine and the dead letters soon after start, then every [`EVERY`], until shutdown;
/// a `keep_days` of 0 never prunes that queue.
pub async fn run(
    hub: Arc<Hub>,
    quarantine_keep_days: u64,
    dead_keep_days: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let days = |d: u64| Duration::from_secs(d.saturating_mul(86_400));
    let queues: Vec<(Parked, Duration)> = [
        (Parked::Quarantine, quarantine_keep_days),
        (Parked::Dead, dead_keep_days),
    ]
    .into_iter()
    .filter(|(_, d)| *d > 0)
    .map(|(p, d)| (p, days(d)))
    .collect();
    if queues.is_empty() {
        return;
    }
    let mut wait = FIRST;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        for (parked, keep) in &queues {
            let setting = place(&hub, *parked).setting;
            match prune(&hub, *parked, *keep).await {
                Ok(p) if p.expired > 0 || p.stamped > 0 => {
                    tracing::info!(
                        setting,
                        expired = p.expired,
                        kept = p.kept,
                        stamped = p.stamped,
                        "retention"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(setting, error = %e, "retention: the queue could not be pruned now; trying again in an hour")
                }
            }
        }
    }
}
