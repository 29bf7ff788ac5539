//! What the hub must remember across messages and restarts: consents (the registry behind every
//! decision), the subject cross-reference (party + local id → 保険者番号 + 被保険者番号) and the
//! idempotency keys that keep a recipient from getting a document twice. SQLite is the embedded
//! default (`sqlite.rs`); every method is blocking, so async callers use `spawn_blocking`.
//! `translate` never needs a store.

pub mod sqlite;

use crate::consent::{ConsentRegistry, Subject};

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
}
