//! This process in the store's process registry ([`crate::store::processes`]), so that a consent
//! command run anywhere can find it, tell it of a change and know that it heard. In: who the
//! process is (a fresh id, host name, pid, start time), where it hears of consent changes (its bus
//! URL without credentials, its prefix) and how long it may answer from its consent cache. Out:
//! its row, written by `serve` at start before the consent feed subscribes; a heartbeat every
//! [`HEARTBEAT_EVERY`], each of which vouches for the cache for [`VOUCHED_FOR`]; the consent
//! changes its feed applied ([`Acknowledger`]); and the row's removal on a graceful stop.
//!
//! Why a vouch: a registration whose heartbeat is older than [`SILENT_AFTER`] may be passed over
//! by a consent command (the process crashed, or is paused, or lost its store), because such a
//! process's cache has stopped answering and dropped its copy by then, whatever happened to it.
//!
//! Must never: record a credential (the bus URL is kept without user and password), or let the
//! cache answer on a heartbeat older than [`VOUCHED_FOR`].

use crate::bus::rabbitmq::without_credentials;
use crate::consent::cache::ConsentCache;
use crate::store::processes::ProcessRecord;
use crate::store::{self, Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a registered process writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How long after a heartbeat was sent the process's consent cache may answer (three beats:
/// one slow or failed write of the store does not stop it).
pub const VOUCHED_FOR: Duration = Duration::from_secs(15);
/// A registration whose heartbeat (by the database's clock) is older than this uses no cached
/// copy: its cache stopped answering [`VOUCHED_FOR`] after that heartbeat was sent; the second
/// more covers the rounding of the database's clock.
pub const SILENT_AFTER: Duration = Duration::from_secs(VOUCHED_FOR.as_secs() + 1);
/// Registrations (of crashed processes) silent this long are removed by the others' heartbeats.
pub const FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);

/// Who this process is, and what a consent announcement of its own needs.
#[derive(Clone)]
pub struct Presence {
    /// Its row in the registry.
    pub record: ProcessRecord,
    /// Its own RabbitMQ URL, credentials included: a change posted to this process
    /// (`POST /fhir/Consent`) is announced to processes on other brokers or prefixes with these
    /// credentials. Never recorded or shown.
    amqp_url: Option<String>,
    /// How long a change made through this process waits for the others to acknowledge it
    /// (`consent_ack_secs`).
    pub ack_wait: Duration,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("record", &self.record)
            .field("ack_wait", &self.ack_wait)
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// This process: on RabbitMQ at `amqp_url` (`None`: the in-memory bus) under `prefix`,
    /// answering from a cached copy for `consent_cache_secs` (0: no cache).
    pub fn new(
        amqp_url: Option<&str>,
        prefix: &str,
        consent_cache_secs: u64,
        ack_wait: Duration,
    ) -> Presence {
        Presence {
            record: ProcessRecord {
                id: super::clock::envelope_id(),
                host: host_name(),
                pid: std::process::id(),
                started_at: super::clock::now_rfc3339(),
                bus: if amqp_url.is_some() {
                    "rabbitmq"
                } else {
                    "memory"
                }
                .into(),
                bus_url: amqp_url.map(without_credentials),
                prefix: prefix.to_string(),
                consent_cache_secs: if amqp_url.is_some() {
                    consent_cache_secs
                } else {
                    0
                },
            },
            amqp_url: amqp_url.map(str::to_string),
            ack_wait,
        }
    }

    /// The credentials this process announces with (its own `amqp_url`).
    pub fn credentials(&self) -> Option<&str> {
        self.amqp_url.as_deref()
    }

    /// What records the changes this process's consent feed applies.
    pub fn acknowledger(&self, store: Arc<dyn Store>) -> Acknowledger {
        Acknowledger {
            store,
            process: self.record.id.clone(),
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), or
/// `unknown-host`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Records this process in `store` and, when it has a cache, vouches for it.
pub async fn register(
    store: &Arc<dyn Store>,
    presence: &Presence,
    cache: Option<&ConsentCache>,
) -> Result<(), StoreError> {
    let sent = Instant::now();
    let record = presence.record.clone();
    store::call(store, move |s| s.processes().register(&record)).await?;
    if let Some(cache) = cache {
        cache.vouch(sent + VOUCHED_FOR);
    }
    Ok(())
}

/// Removes this process's row (a graceful stop, once its hops and consent feed have ended).
pub async fn deregister(store: &Arc<dyn Store>, presence: &Presence) {
    let id = presence.record.id.clone();
    if let Err(e) = store::call(store, move |s| s.processes().deregister(&id)).await {
        tracing::warn!(error = %e, "could not remove this process from the store's process registry; consent commands pass over it once its heartbeat is old");
    }
}

/// The heartbeat until shutdown: every [`HEARTBEAT_EVERY`] writes it (registering again when the
/// row was removed meanwhile) and vouches for `cache`; once a minute removes registrations silent
/// for [`FORGOTTEN_AFTER`]. A failed write leaves the vouch to lapse: the cache then stops
/// answering and every decision reads the store until a heartbeat succeeds again.
pub async fn run(
    store: Arc<dyn Store>,
    presence: Presence,
    cache: Option<Arc<ConsentCache>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
        beats += 1;
        let sent = Instant::now();
        let id = presence.record.id.clone();
        let beat = match store::call(&store, move |s| s.processes().heartbeat(&id)).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(process = %presence.record.id, "this process's registration had been removed (its heartbeat was older than an hour); registering again");
                let record = presence.record.clone();
                store::call(&store, move |s| s.processes().register(&record)).await
            }
            Err(e) => Err(e),
        };
        match beat {
            Ok(()) => {
                if let Some(cache) = &cache {
                    cache.vouch(sent + VOUCHED_FOR);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat not written; the consent cache stops answering if none is written within 15 s")
            }
        }
        if beats.is_multiple_of(12) {
            match store::call(&store, |s| s.processes().prune(FORGOTTEN_AFTER)).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(
                        removed = n,
                        "removed registrations of hub processes silent for an hour"
                    )
                }
                Err(e) => tracing::debug!(error = %e, "pruning the process registry"),
            }
        }
    }
}

/// Records, for a consent command waiting on it, that this process applied a change.
#[derive(Clone)]
pub struct Acknowledger {
    store: Arc<dyn Store>,
    process: String,
}

impl Acknowledger {
    /// Records that change `change` was applied (the cached copy dropped). A failure is logged:
    /// the announcer then names this process as not having acknowledged.
    pub async fn applied(&self, change: &str) {
        let (process, change) = (self.process.clone(), change.to_string());
        if let Err(e) = store::call(&self.store, move |s| {
            s.processes().record_applied(&process, &change)
        })
        .await
        {
            tracing::warn!(error = %e, "could not record a consent change as applied; its announcer will say this process did not acknowledge it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_records_its_bus_without_credentials_and_no_cache_on_the_memory_bus() {
        let p = Presence::new(
            Some("amqp://hub:s3cret@127.0.0.1:5672/%2f"),
            "kaigo",
            30,
            Duration::from_secs(5),
        );
        assert_eq!(p.record.bus, "rabbitmq");
        assert_eq!(
            p.record.bus_url.as_deref(),
            Some("amqp://127.0.0.1:5672/%2f")
        );
        assert_eq!(p.record.consent_cache_secs, 30);
        assert_eq!(p.record.pid, std::process::id());
        assert!(!format!("{p:?}").contains("s3cret"), "{p:?}");
        let m = Presence::new(None, "kaigo", 30, Duration::from_secs(5));
        assert_eq!(
            (m.record.bus.as_str(), m.record.bus_url.as_deref()),
            ("memory", None)
        );
        assert_eq!(m.record.consent_cache_secs, 0, "no cache on the memory bus");
        assert!(m.record.reads_the_store_at_every_decision());
        assert_ne!(p.record.id, m.record.id);
    }

    #[tokio::test]
    async fn registration_vouches_for_the_cache_and_deregistration_removes_the_row() {
        let store: Arc<dyn Store> =
            Arc::new(crate::store::sqlite::SqliteStore::in_memory().expect("store"));
        let p = Presence::new(
            Some("amqp://127.0.0.1:5672/%2f"),
            "t",
            30,
            Duration::from_secs(5),
        );
        let cache = ConsentCache::new(Duration::from_secs(30));
        register(&store, &p, Some(&cache)).await.expect("register");
        let listed = store.processes().registered().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record, p.record);
        p.acknowledger(store.clone()).applied("change-1").await;
        assert_eq!(
            store.processes().applied_by("change-1").expect("applied"),
            vec![p.record.id.clone()]
        );
        deregister(&store, &p).await;
        assert!(store.processes().registered().expect("list").is_empty());
    }
}
