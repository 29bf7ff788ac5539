//! Keeps each message's original and each canonical document in the encrypted archive
//! (`store::archive`) without slowing the hops: a hop hands its row over and goes on at once
//! (no await, no store call); one flusher task at a time takes every row waiting, seals them
//! (AES-256-GCM) and writes them in one store call off the hop's thread, as the deliver hop's
//! delivery keys are grouped (`keys.rs`). The archive is a copy for traces and body views, not a
//! step of the journey: a message is published, quarantined or dead-lettered whether or not its
//! copy was kept. A failed write (store unreachable) is logged with the count and the first
//! envelope id, never a value, and counted in `kaigo_archive_failed_total`; so are rows that
//! arrive while [`MAX_WAITING_BYTES`] already wait (a store that stopped answering cannot make the
//! hub's memory grow without bound). The guarantee is therefore "archived unless counted as
//! failed", never "delivered only if archived". Retention (`archive_keep_days`) is [`expire`],
//! run by `serve` like the other retention jobs.
//!
//! Must never: block or fail a message because of the archive, or log a body.

use super::metrics::Metrics;
use crate::store::archive::{ArchiveKey, Document, Original, Row};
use crate::store::{Store, StoreError};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of bodies that may wait for the flusher; beyond them a new row is not kept (counted).
pub const MAX_WAITING_BYTES: usize = 64 << 20;

/// A row before it is sealed.
enum Plain {
    Original(Original, Vec<u8>),
    Document(Document, Vec<u8>),
}

impl Plain {
    fn envelope(&self) -> &str {
        match self {
            Plain::Original(o, _) => &o.envelope,
            Plain::Document(d, _) => &d.envelope,
        }
    }

    fn seal(self, key: &ArchiveKey) -> Result<Row, StoreError> {
        Ok(match self {
            Plain::Original(o, body) => {
                let sealed = key.seal(&Original::aad(&o.envelope), &body)?;
                Row::Original(o, sealed)
            }
            Plain::Document(d, json) => {
                let sealed = key.seal(&Document::aad(&d.envelope, d.index), &json)?;
                Row::Document(d, sealed)
            }
        })
    }
}

#[derive(Default)]
struct Pending {
    rows: Vec<Plain>,
    bytes: usize,
    flushing: bool,
}

/// The hub's archive writer. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Archiver {
    key: Arc<ArchiveKey>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    pending: Arc<Mutex<Pending>>,
}

impl Archiver {
    /// An archiver into `store`'s archive tables with `key`; `None` when the store keeps no
    /// archive.
    pub fn new(key: ArchiveKey, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Option<Archiver> {
        store.archive()?;
        Some(Archiver {
            key: Arc::new(key),
            store,
            metrics,
            pending: Arc::default(),
        })
    }

    /// The key in force (for reading the archive back).
    pub fn key(&self) -> &ArchiveKey {
        &self.key
    }

    /// The store whose archive tables this writes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a message's original bytes (returns at once).
    pub fn keep_original(&self, meta: Original, body: &[u8]) {
        self.push(Plain::Original(meta, body.to_vec()), body.len());
    }

    /// Keeps one canonical document (returns at once).
    pub fn keep_document(&self, meta: Document, json: &[u8]) {
        self.push(Plain::Document(meta, json.to_vec()), json.len());
    }

    fn push(&self, row: Plain, bytes: usize) {
        let start = {
            let mut p = self.pending();
            if p.bytes.saturating_add(bytes) > MAX_WAITING_BYTES && !p.rows.is_empty() {
                drop(p);
                Metrics::inc(&self.metrics.archive_failed);
                tracing::warn!(
                    envelope = row.envelope(),
                    "archive: too much is waiting to be written; this copy is not archived"
                );
                return;
            }
            p.rows.push(row);
            p.bytes += bytes;
            !std::mem::replace(&mut p.flushing, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.flush().await });
        }
    }

    /// Writes groups until none is waiting.
    async fn flush(&self) {
        // Should a store call panic, the next row starts a new flusher; the rows waiting then
        // are counted as failed instead of kept forever.
        struct Stopped<'a>(&'a Archiver);
        impl Drop for Stopped<'_> {
            fn drop(&mut self) {
                let mut p = self.0.pending();
                p.flushing = false;
                let lost = std::mem::take(&mut p.rows).len() as u64;
                p.bytes = 0;
                self.0
                    .metrics
                    .archive_failed
                    .fetch_add(lost, Ordering::Relaxed);
            }
        }
        let stopped = Stopped(self);
        loop {
            // Let the hops that are ready add their rows to this group first.
            tokio::task::yield_now().await;
            let group = {
                let mut p = self.pending();
                if p.rows.is_empty() {
                    p.flushing = false;
                    drop(p);
                    std::mem::forget(stopped);
                    return;
                }
                p.bytes = 0;
                std::mem::take(&mut p.rows)
            };
            let n = group.len() as u64;
            let first = group[0].envelope().to_string();
            let key = self.key.clone();
            let written = crate::store::call(&self.store, move |s| {
                let rows = group
                    .into_iter()
                    .map(|r| r.seal(&key))
                    .collect::<Result<Vec<Row>, _>>()?;
                s.archive()
                    .ok_or_else(|| StoreError("this store keeps no archive".into()))?
                    .archive_put(&rows)
            })
            .await;
            match written {
                Ok(()) => {
                    self.metrics.archive_kept.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.metrics.archive_failed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(rows = n, first_envelope = %first, error = %e, "archive: rows not kept (the messages went on)");
                }
            }
        }
    }

    /// Waits until every row handed over so far was written or counted as failed (tests, and
    /// `Running::stop`), at most `patience`.
    pub async fn settled(&self, patience: Duration) {
        let until = tokio::time::Instant::now() + patience;
        loop {
            {
                let p = self.pending();
                if p.rows.is_empty() && !p.flushing {
                    return;
                }
            }
            if tokio::time::Instant::now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How often `serve` forgets archive rows older than `archive_keep_days`.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(3_600);

/// Rows forgotten per store call, so the hops' own store calls are not held up behind one long
/// `DELETE`.
const FORGET_BATCH: usize = 1_000;

/// Forgets the archive rows kept before `now - keep`, in batches; returns how many.
pub async fn forget_older_than(
    store: &Arc<dyn Store>,
    metrics: &Metrics,
    keep: Duration,
) -> Result<u64, StoreError> {
    let before = super::clock::rfc3339_before(keep);
    let mut total = 0u64;
    loop {
        let before = before.clone();
        let n = crate::store::call(store, move |s| match s.archive() {
            Some(a) => a.archive_prune(&before, FORGET_BATCH),
            None => Ok(0),
        })
        .await?;
        total += n as u64;
        metrics
            .archive_pruned
            .fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// `serve`'s archive retention: at start and then every `every`, forgets the rows older than
/// `keep_days` days; a store error is logged and tried again at the next turn. Ends on shutdown.
pub async fn expire(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    keep_days: u64,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let keep = Duration::from_secs(keep_days.saturating_mul(86_400));
    loop {
        match forget_older_than(&store, &metrics, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                forgotten = n,
                keep_days,
                "archive rows older than archive_keep_days forgotten"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "archive retention failed; trying again later")
            }
        }
        if !super::retry::pause(every, &mut shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::archive::{Archive, KEY_BYTES};
    use crate::store::sqlite::SqliteStore;

    fn archiver() -> (Archiver, Arc<dyn Store>, Arc<Metrics>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("sqlite"));
        let metrics = Arc::new(Metrics::default());
        let a = Archiver::new(
            ArchiveKey::from_bytes(&[3u8; KEY_BYTES]),
            store.clone(),
            metrics.clone(),
        )
        .expect("sqlite keeps an archive");
        (a, store, metrics)
    }

    fn original(envelope: &str, at: &str) -> Original {
        Original {
            envelope: envelope.into(),
            at: at.into(),
            sender: "hospital-a".into(),
            format: "hl7v2".into(),
            outcome: "accepted".into(),
            ..Original::default()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rows_handed_over_together_are_written_in_one_group_and_read_back_opened() {
        let (a, store, metrics) = archiver();
        for i in 0..20 {
            a.keep_original(
                original(&format!("e{i}"), "2026-01-01T00:00:00.000Z"),
                format!("MSH|{i}").as_bytes(),
            );
        }
        a.keep_document(
            Document {
                envelope: "e0".into(),
                index: 0,
                kind: "InsuredPerson@1".into(),
                ..Document::default()
            },
            b"{}",
        );
        a.settled(Duration::from_secs(10)).await;
        assert_eq!(metrics.archive_kept.load(Ordering::Relaxed), 21);
        assert_eq!(metrics.archive_failed.load(Ordering::Relaxed), 0);
        let archive = Archive {
            store: store.archive().expect("archive"),
            key: a.key(),
        };
        let (_, body) = archive.original("e7").unwrap().expect("kept");
        assert_eq!(body, b"MSH|7");
        assert_eq!(archive.documents("e0").unwrap()[0].json, b"{}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rows_beyond_the_waiting_bound_are_counted_not_kept_and_the_caller_is_not_held() {
        let (a, _, metrics) = archiver();
        let big = vec![b'x'; MAX_WAITING_BYTES / 2 + 1];
        // On one thread the flusher cannot run between these: the third finds two waiting.
        a.keep_original(original("b1", "2026-01-01T00:00:00.000Z"), &big);
        a.keep_original(original("b2", "2026-01-01T00:00:00.000Z"), b"small");
        a.keep_original(original("b3", "2026-01-01T00:00:00.000Z"), &big);
        a.settled(Duration::from_secs(10)).await;
        assert_eq!(metrics.archive_failed.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.archive_kept.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn retention_forgets_only_rows_older_than_the_bound() {
        let (a, store, metrics) = archiver();
        a.keep_original(original("old", "2000-01-01T00:00:00.000Z"), b"old");
        a.keep_original(original("new", &super::super::clock::now_rfc3339()), b"new");
        a.settled(Duration::from_secs(10)).await;
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(forget_older_than(&store, &metrics, week).await.unwrap(), 1);
        assert_eq!(metrics.archive_pruned.load(Ordering::Relaxed), 1);
        let tables = store.archive().expect("archive");
        assert!(tables.archived_original("old").unwrap().is_none());
        assert!(tables.archived_original("new").unwrap().is_some());
    }
}
