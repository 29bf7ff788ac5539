//! What the hub must remember across messages and restarts: consents (the registry behind every
//! decision), the subject cross-reference (party + local id → 保険者番号 + 被保険者番号) and the
//! idempotency keys that keep a recipient from getting a document twice. SQLite is the embedded
//! default (`sqlite.rs`); PostgreSQL (`postgres.rs`) lets several hub processes share them. Every
//! method is blocking: async callers hand a call to `spawn_blocking`, unless the store says its
//! calls are local and take microseconds ([`Store::inline`]), as SQLite's are. The two calls the
//! deliver hop makes for every copy, the subject lookup ingress and translate make for every
//! message without a `subject`, and the consent read behind every decision also have async forms
//! ([`was_delivered`], [`mark_delivered_all`], [`resolve_first`], [`Store::consents_of_async`]),
//! which PostgreSQL answers on its async client directly. The audit chains' checkpoints live
//! here too ([`AuditCheckpoints`]), apart from the log files they vouch for.

pub mod postgres;
pub mod sqlite;

use crate::consent::{Consent, ConsentError, ConsentRegistry, InMemoryRegistry, Subject};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A store call made without the blocking pool, by a store whose client is async.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Opens the store a database URL names: `postgres://…` / `postgresql://…`, otherwise a SQLite
/// file path (optionally `sqlite://path`). Must run inside a tokio runtime.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        let path = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url));
        Ok(Arc::new(sqlite::SqliteStore::open(&path)?))
    }
}

/// Applies a grant or revoke with the registry's own rules (`InMemoryRegistry` decides what the
/// change means) to the stored copies of one consent id, then writes back what changed. Shared by
/// every database so they cannot disagree with the model.
pub fn apply_change(
    load: impl FnOnce() -> Result<Vec<Consent>, StoreError>,
    put: impl Fn(&Consent) -> Result<(), StoreError>,
    change: impl FnOnce(&InMemoryRegistry) -> Result<(), ConsentError>,
) -> Result<(), ConsentError> {
    let unavailable = |e: StoreError| ConsentError::Unavailable { detail: e.0 };
    let model = InMemoryRegistry::new();
    for c in load().map_err(unavailable)? {
        model.grant(c)?;
    }
    let before = model.change_counter()?;
    change(&model)?;
    if model.change_counter()? != before {
        for c in model.list(None) {
            put(&c).map_err(unavailable)?;
        }
    }
    Ok(())
}

/// The consents stored as JSON in the `body` column of `consents`, or which one is unreadable.
fn consents_from<'a>(
    bodies: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Consent>, StoreError> {
    bodies
        .into_iter()
        .map(|b| {
            serde_json::from_str(b)
                .map_err(|e| StoreError(format!("stored consent is unreadable: {e}")))
        })
        .collect()
}

/// A store failure (the database is unreachable or refused the statement).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// The hub's persistent state.
pub trait Store: Send + Sync {
    /// The consent registry kept in this store.
    fn consents(&self) -> &dyn ConsentRegistry;
    /// Records that `party` knows `subject` under `local_id` (e.g. a hospital 患者ID).
    fn link(&self, party: &str, local_id: &str, subject: &Subject) -> Result<(), StoreError>;
    /// The subject `party` knows as `local_id`, if linked.
    fn resolve(&self, party: &str, local_id: &str) -> Result<Option<Subject>, StoreError>;
    /// True when `key` (envelope, document, recipient) was already delivered.
    fn was_delivered(&self, key: &str) -> Result<bool, StoreError>;
    /// Records a completed delivery.
    fn mark_delivered(&self, key: &str) -> Result<(), StoreError>;
    /// Records several completed deliveries in one transaction: all of them or, on error, none
    /// (a key already recorded is no error). The deliver hop's group commit
    /// ([`crate::pipeline::keys`]) calls this. The default records them one by one.
    fn mark_delivered_all(&self, keys: &[String]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.mark_delivered(k))
    }
    /// Forgets at most `at_most` delivery keys recorded more than `older_than` ago; returns how
    /// many it forgot (fewer than `at_most`: none of that age is left). A copy redelivered after
    /// its key was forgotten would be sent again, so keys are kept forever unless
    /// `delivered_keep_days` says otherwise ([`crate::pipeline::keys::expire`]).
    fn forget_delivered(
        &self,
        older_than: std::time::Duration,
        at_most: usize,
    ) -> Result<usize, StoreError>;
    /// [`Store::was_delivered`] for an async caller, when the store's client is async
    /// (PostgreSQL): the call then waits on the network without a blocking-pool thread. `None`
    /// (the default): use the blocking call. The deliver hop asks this once per copy.
    fn was_delivered_async<'a>(&'a self, _key: &'a str) -> Option<StoreFuture<'a, bool>> {
        None
    }
    /// [`Store::mark_delivered_all`] for an async caller, as [`Store::was_delivered_async`].
    fn mark_delivered_all_async<'a>(&'a self, _keys: &'a [String]) -> Option<StoreFuture<'a, ()>> {
        None
    }
    /// The subject `party` knows under the first of `local_ids` that is linked, for an async
    /// caller, as [`Store::was_delivered_async`]: one round trip for all of them. `None` (the
    /// default): [`resolve_first`] asks [`Store::resolve`] for each id in turn.
    fn resolve_async<'a>(
        &'a self,
        _party: &'a str,
        _local_ids: &'a [String],
    ) -> Option<StoreFuture<'a, Option<Subject>>> {
        None
    }
    /// The consents of one subject (revoked ones too, ordered by id), as the registry's
    /// `consents_of`, for an async caller, as [`Store::was_delivered_async`]. The hub decides
    /// from them itself (`consent::decide_from`, the rule every registry shares). `None` (the
    /// default): the decision is made by the blocking registry.
    fn consents_of_async<'a>(
        &'a self,
        _subject: &'a Subject,
    ) -> Option<StoreFuture<'a, Vec<Consent>>> {
        None
    }
    /// True when every call is local and takes microseconds (no network, no wait but a file
    /// lock), so an async caller may make it on its own thread: a hand-off to the blocking pool
    /// costs two thread switches, more than such a call. False (the default) hands calls off.
    fn inline(&self) -> bool {
        false
    }

    // ----- audit checkpoints (see `AuditCheckpoints` below) -----

    /// The audit chains' checkpoints kept in this store; `None` (the default) for a store that
    /// keeps none (a test double): its hub's audit log then cannot show a cut tail.
    fn audit_checkpoints(&self) -> Option<&dyn AuditCheckpoints> {
        None
    }
}

/// [`Store::was_delivered`] from async code: the store's async path if it has one, otherwise as
/// [`call`] makes it.
pub async fn was_delivered(store: &Arc<dyn Store>, key: &str) -> Result<bool, StoreError> {
    if let Some(answer) = store.was_delivered_async(key) {
        return answer.await;
    }
    let key = key.to_string();
    call(store, move |s| s.was_delivered(&key)).await
}

/// [`Store::mark_delivered_all`] from async code, as [`was_delivered`].
pub async fn mark_delivered_all(
    store: &Arc<dyn Store>,
    keys: Vec<String>,
) -> Result<(), StoreError> {
    if let Some(done) = store.mark_delivered_all_async(&keys) {
        return done.await;
    }
    call(store, move |s| s.mark_delivered_all(&keys)).await
}

/// The subject `party` knows under the first of `local_ids` (in their order) that is linked:
/// the store's async path if it has one, otherwise one [`call`] that tries them in turn.
pub async fn resolve_first(
    store: &Arc<dyn Store>,
    party: &str,
    local_ids: Vec<String>,
) -> Result<Option<Subject>, StoreError> {
    if local_ids.is_empty() {
        return Ok(None);
    }
    if let Some(answer) = store.resolve_async(party, &local_ids) {
        return answer.await;
    }
    let party = party.to_string();
    call(store, move |s| {
        for id in &local_ids {
            if let Some(subject) = s.resolve(&party, id)? {
                return Ok(Some(subject));
            }
        }
        Ok(None)
    })
    .await
}

/// Runs a store call from async code: on the caller's thread when the store is [`Store::inline`],
/// otherwise on the blocking pool.
pub async fn call<T: Send + 'static>(
    store: &std::sync::Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if store.inline() {
        return f(store.as_ref());
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .unwrap_or_else(|e| Err(StoreError(e.to_string())))
}

// ---------------------------------------------------------------------------------------------
// Audit checkpoints
// ---------------------------------------------------------------------------------------------

/// One audit chain's checkpoint as the store keeps it (table `audit_checkpoints`, one row per
/// chain): the seq and hash of an event its writer had made durable, and when and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The chain's id (`hub-3f2a9c1b7d4e`, `cli-…`: `audit::ChainKey::id`).
    pub chain: String,
    /// The seq of the event.
    pub seq: u64,
    /// Its hash (64 hex).
    pub hash: String,
    /// The log file, as its writer named it (for messages).
    pub file: String,
    /// When it was recorded (RFC 3339 UTC, the writer's clock).
    pub at: String,
}

/// What [`AuditCheckpoints::advance_checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The new checkpoint is stored.
    Stored,
    /// Not stored: the row is not the one the caller expected (another writer keeps this chain,
    /// or the row was changed); here is what it holds (`None`: no row).
    Moved(Option<StoredCheckpoint>),
}

/// The audit chains' checkpoints (`audit::chains`): kept in the store, apart from the log
/// files, so that a log cut short or re-sealed no longer matches what its writer recorded. One
/// row per chain; a writer moves its row forward only from the row it last saw, so two writers on
/// one chain are noticed instead of overwriting each other.
pub trait AuditCheckpoints: Send + Sync {
    /// The checkpoint of `chain`, if one was recorded.
    fn checkpoint_of(&self, chain: &str) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Every chain's checkpoint, ordered by chain.
    fn every_checkpoint(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;
    /// Stores `new` for `new.chain` if the row holds `expected` (seq, hash) now, or, with
    /// `expected` `None`, if there is no row yet.
    fn advance_checkpoint(
        &self,
        new: &StoredCheckpoint,
        expected: Option<(u64, &str)>,
    ) -> Result<Advance, StoreError>;
}

/// A seq as the databases' signed 64-bit integer.
fn seq_to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError(format!("audit seq {seq} is beyond 2^63")))
}
