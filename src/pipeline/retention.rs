//! Quarantine keeps personal data only as long as it must: a quarantined copy older than
//! `quarantine_keep_days` (counted from `x-kaigo-quarantined-at`, which [`Hub::quarantine`]
//! writes) is dropped, and each drop is an audit event (hop `admin`, decision `expired`, the
//! quarantine reason in `reason`), counted in `kaigo_quarantine_expired_total`. Like Mirth's
//! data pruner, it runs in `serve` (once an hour, and once soon after start) and visits every
//! message of the quarantine queue once: the young ones go back to the tail unchanged. A copy
//! an older hub quarantined without the header is stamped now, and kept that long from now.
//!
//! Must never: drop a copy before its time, or drop one without the audit event.

use super::Hub;
use super::clock;
use super::headers as h;
use super::metrics::Metrics;
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

/// Drops the quarantined copies quarantined before `now - keep`; each is audited.
pub async fn prune(hub: &Hub, keep: Duration) -> Result<Pruned, BusError> {
    let cutoff = clock::rfc3339_before(keep);
    let t = &hub.topology;
    let (queue, park) = (t.quarantine_queue(), t.quarantine());
    let waiting = hub.bus.queue_len(&queue).await?;
    let mut consumer = hub.bus.consume(&queue, 16).await?;
    let mut done = Pruned::default();
    for _ in 0..waiting {
        let d = match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => break,
        };
        let at = d
            .props
            .header(h::QUARANTINED_AT)
            .filter(|a| clock::is_rfc3339(a))
            .map(String::from);
        match at {
            Some(at) if at.as_str() < cutoff.as_str() => {
                let (envelope, reason) = audit_expired(hub, &d.props);
                // Audited first: a copy is never gone without its event.
                d.ack().await?;
                Metrics::inc(&hub.metrics.quarantine_expired);
                tracing::info!(envelope, quarantined_at = %at, reason, "quarantine: dropped after quarantine_keep_days");
                done.expired += 1;
            }
            Some(_) => {
                hub.bus
                    .publish(&park, &d.routing_key, &d.props, &d.body)
                    .await?;
                d.ack().await?;
                done.kept += 1;
            }
            None => {
                let mut props = d.props.clone();
                props
                    .headers
                    .insert(h::QUARANTINED_AT.into(), clock::now_rfc3339());
                hub.bus
                    .publish(&park, &d.routing_key, &props, &d.body)
                    .await?;
                d.ack().await?;
                done.stamped += 1;
            }
        }
    }
    Ok(done)
}

/// Audits the drop of an expired quarantined copy: one event per subject it names (one without
/// a subject when it names none). Gives its envelope id and quarantine reason.
fn audit_expired(hub: &Hub, props: &Props) -> (String, String) {
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
        hub.audit(Hop::Admin, "quarantine-retention", &envelope, |a| {
            let mut a = a.decision(Decision::Expired).reason(reason.as_str());
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

/// Prunes soon after start, then every [`EVERY`], until shutdown. `keep_days` 0: never.
pub async fn run(hub: Arc<Hub>, keep_days: u64, mut shutdown: watch::Receiver<bool>) {
    if keep_days == 0 {
        return;
    }
    let keep = Duration::from_secs(keep_days.saturating_mul(86_400));
    let mut wait = FIRST;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match prune(&hub, keep).await {
            Ok(p) if p.expired > 0 || p.stamped > 0 => {
                tracing::info!(
                    expired = p.expired,
                    kept = p.kept,
                    stamped = p.stamped,
                    "quarantine retention"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "quarantine retention: the queue could not be pruned now; trying again in an hour")
            }
        }
    }
}
