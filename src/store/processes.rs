//! The process registry: which `kaigo-hub serve` processes run on this store, where each one
//! listens for consent changes (bus, its URL without credentials, topology prefix), how long it
//! may answer consent questions from its own cached copy (`consent_cache_secs`, 0 = never), that
//! it is alive (a heartbeat written by the database's clock), and which consent changes it has
//! applied (dropped its copy on). In: rows written by `serve` for itself
//! (`pipeline::presence`) and the change ids its consent feed applied. Out: the list a consent
//! command reads to tell every process of a change and to know that each one heard
//! (`pipeline::consent_reach`).
//!
//! Must never hold a credential: the bus URL is stored without user and password.

use super::StoreError;
use std::time::Duration;

/// One running hub process, as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    /// Unique per process start (an envelope-style id).
    pub id: String,
    /// The machine it runs on (its host name).
    pub host: String,
    /// Its operating-system process id.
    pub pid: u32,
    /// When it started (RFC 3339 UTC).
    pub started_at: String,
    /// `rabbitmq` or `memory`.
    pub bus: String,
    /// The RabbitMQ URL it listens on, without user and password; `None` on the in-memory bus.
    pub bus_url: Option<String>,
    /// Its topology prefix: it listens on `<prefix>.consent`.
    pub prefix: String,
    /// How long it may answer from a cached copy; 0 = it reads the store at every decision.
    pub consent_cache_secs: u64,
}

impl ProcessRecord {
    /// How an operator tells it apart: `host pid N (id …)`.
    pub fn name(&self) -> String {
        format!("{} pid {} (id {})", self.host, self.pid, self.id)
    }

    /// True when it holds no copy a change could leave stale: on the in-memory bus (nothing can
    /// announce to it from another process, so it keeps no cache) or with `consent_cache_secs = 0`.
    pub fn reads_the_store_at_every_decision(&self) -> bool {
        self.bus_url.is_none() || self.consent_cache_secs == 0
    }
}

/// A registered process with the age of its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedProcess {
    /// What it registered.
    pub record: ProcessRecord,
    /// How long ago its last heartbeat was written, by the database's own clock (so the clocks
    /// of the hosts do not matter).
    pub heartbeat_age: Duration,
}

/// The registry kept in a [`super::Store`]. Every method is blocking, like the store's own.
pub trait ProcessRegistry: Send + Sync {
    /// Records `p` (replacing a row of the same id) with a heartbeat of now.
    fn register(&self, p: &ProcessRecord) -> Result<(), StoreError>;
    /// Writes a heartbeat of now for `id`; `false` when its row is gone (removed as stale), so
    /// the caller registers again.
    fn heartbeat(&self, id: &str) -> Result<bool, StoreError>;
    /// Removes `id`'s row and the changes it recorded as applied (a graceful stop).
    fn deregister(&self, id: &str) -> Result<(), StoreError>;
    /// Every registered process, in the order they started.
    fn registered(&self) -> Result<Vec<ListedProcess>, StoreError>;
    /// Records that `process` has applied consent change `change` (dropped its cached copy).
    fn record_applied(&self, process: &str, change: &str) -> Result<(), StoreError>;
    /// The processes that recorded `change` as applied.
    fn applied_by(&self, change: &str) -> Result<Vec<String>, StoreError>;
    /// Forgets what was recorded about `changes` (once their announcer stopped waiting).
    fn forget_changes(&self, changes: &[String]) -> Result<(), StoreError>;
    /// Removes processes whose last heartbeat is older than `older_than` (they crashed) and
    /// applied-change records older than it; returns how many processes it removed.
    fn prune(&self, older_than: Duration) -> Result<usize, StoreError>;
}

/// The registry of a store that keeps none (a test double): every call fails, saying so, so
/// `serve` refuses to start on it rather than run unseen by consent commands.
pub struct NoRegistry;

impl NoRegistry {
    fn none<T>() -> Result<T, StoreError> {
        Err(StoreError(
            "this store keeps no registry of running hub processes".into(),
        ))
    }
}

impl ProcessRegistry for NoRegistry {
    fn register(&self, _: &ProcessRecord) -> Result<(), StoreError> {
        Self::none()
    }
    fn heartbeat(&self, _: &str) -> Result<bool, StoreError> {
        Self::none()
    }
    fn deregister(&self, _: &str) -> Result<(), StoreError> {
        Self::none()
    }
    fn registered(&self) -> Result<Vec<ListedProcess>, StoreError> {
        Self::none()
    }
    fn record_applied(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Self::none()
    }
    fn applied_by(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Self::none()
    }
    fn forget_changes(&self, _: &[String]) -> Result<(), StoreError> {
        Self::none()
    }
    fn prune(&self, _: Duration) -> Result<usize, StoreError> {
        Self::none()
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every database's registry must have; each store's tests run it.

    use super::*;

    pub fn record(id: &str, cache: u64) -> ProcessRecord {
        ProcessRecord {
            id: id.into(),
            host: "hub-a".into(),
            pid: 4242,
            started_at: "2026-01-05T09:00:00.000Z".into(),
            bus: "rabbitmq".into(),
            bus_url: Some("amqp://127.0.0.1:5672/%2f".into()),
            prefix: "kaigo".into(),
            consent_cache_secs: cache,
        }
    }

    /// Registers, beats, records and forgets applied changes, and deregisters; `age` sets a
    /// process's last heartbeat into the past, as the database itself would see it.
    pub fn holds(r: &dyn ProcessRegistry, age: &dyn Fn(&str, Duration)) {
        assert!(r.registered().expect("list").is_empty());
        let a = record("p-a", 30);
        let mut b = record("p-b", 0);
        b.bus = "memory".into();
        b.bus_url = None;
        r.register(&a).expect("register a");
        r.register(&b).expect("register b");
        r.register(&a).expect("registering again replaces the row");
        let listed = r.registered().expect("list");
        assert_eq!(
            listed.iter().map(|p| &p.record).collect::<Vec<_>>(),
            vec![&a, &b]
        );
        assert!(
            listed
                .iter()
                .all(|p| p.heartbeat_age < Duration::from_secs(5))
        );
        assert!(!a.reads_the_store_at_every_decision());
        assert!(b.reads_the_store_at_every_decision());

        age("p-a", Duration::from_secs(120));
        let old = &r.registered().expect("list")[0];
        assert!(
            old.heartbeat_age >= Duration::from_secs(119),
            "{:?}",
            old.heartbeat_age
        );
        assert!(r.heartbeat("p-a").expect("beat"));
        assert!(r.registered().expect("list")[0].heartbeat_age < Duration::from_secs(5));
        assert!(!r.heartbeat("p-unknown").expect("beat"), "no row, no beat");

        r.record_applied("p-a", "change-1").expect("applied");
        r.record_applied("p-a", "change-1")
            .expect("applied twice is no error");
        r.record_applied("p-b", "change-1").expect("applied");
        r.record_applied("p-a", "change-2").expect("applied");
        let mut by = r.applied_by("change-1").expect("applied_by");
        by.sort();
        assert_eq!(by, ["p-a", "p-b"]);
        r.forget_changes(&["change-1".into()]).expect("forget");
        assert!(r.applied_by("change-1").expect("applied_by").is_empty());
        assert_eq!(r.applied_by("change-2").expect("applied_by"), ["p-a"]);

        age("p-b", Duration::from_secs(7200));
        assert_eq!(r.prune(Duration::from_secs(3600)).expect("prune"), 1);
        assert_eq!(
            r.registered()
                .expect("list")
                .iter()
                .map(|p| p.record.id.as_str())
                .collect::<Vec<_>>(),
            ["p-a"]
        );
        r.deregister("p-a").expect("deregister");
        assert!(r.registered().expect("list").is_empty());
        assert!(
            r.applied_by("change-2").expect("applied_by").is_empty(),
            "a stopped process's records go with it"
        );
    }
}
