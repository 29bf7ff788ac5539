//! Delivery keys recorded in groups (group commit). Each copy the deliver hop hands to a sink is
//! recorded by its key before the message is acked; one transaction per key made the commit the
//! hop's costliest store call (~30 µs a SQLite WAL commit, a round trip and a WAL flush on
//! PostgreSQL). Here every key waiting to be recorded joins the next group: one flusher task at
//! a time takes all that are waiting, records them with [`Store::mark_delivered_all`] (all or
//! none), and tells each waiter the outcome; keys that arrive meanwhile form the next group.
//! Before it takes a group the flusher lets the tasks that are ready run (one `yield_now`), so
//! under load the deliveries in progress add their keys first: without that, a flusher spawned
//! on a worker thread ran next and SQLite's groups held 1.1–1.2 keys; with it they hold ~6 at
//! 64 producers through RabbitMQ and ~60 on the in-memory bus, and an idle hub pays nothing. A
//! caller returns only when its own key's group is recorded, so the hop's order (send, record,
//! ack) is unchanged. On error every waiter of that group gets the error and retries as before.
//! Must never: report a key recorded before its transaction committed, or leave a waiter without
//! an answer.

use super::metrics::Metrics;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Waiter = (String, oneshot::Sender<Result<(), StoreError>>);

/// The keys waiting for the next group, and whether a flusher is at work.
#[derive(Default)]
struct Pending {
    waiting: Vec<Waiter>,
    flushing: bool,
}

/// The group committer of one store. Cheap to clone (shared state).
#[derive(Clone)]
pub struct DeliveryKeys {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    pending: Arc<Mutex<Pending>>,
}

impl DeliveryKeys {
    /// Group commits into `store`, counting the groups in `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        DeliveryKeys {
            store,
            metrics,
            pending: Arc::default(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `key`, in a group with whatever other keys are waiting; returns once that group
    /// was committed (or failed: then nothing of it was recorded).
    pub async fn record(&self, key: String) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut p = self.pending();
            p.waiting.push((key, tx));
            !std::mem::replace(&mut p.flushing, true)
        };
        if start {
            // A task of its own, so no caller's delivery waits for other groups than its own.
            let me = self.clone();
            tokio::spawn(async move { me.flush().await });
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError("the delivery-key flusher stopped".into())))
    }

    /// Records groups until none is waiting.
    async fn flush(&self) {
        // Should the store call panic, the next key starts a new flusher, and the keys waiting
        // meanwhile are answered with an error (their callers retry) instead of never.
        struct Stopped<'a>(&'a DeliveryKeys);
        impl Drop for Stopped<'_> {
            fn drop(&mut self) {
                let mut p = self.0.pending();
                p.flushing = false;
                p.waiting.clear();
            }
        }
        let stopped = Stopped(self);
        loop {
            // Let the tasks that are ready run first: under load their keys join this group
            // (a SQLite commit is over in ~30 µs, before many could arrive); when nothing else
            // is ready this returns at once.
            tokio::task::yield_now().await;
            let group = {
                let mut p = self.pending();
                if p.waiting.is_empty() {
                    // Done, under the same lock a new key would find the flag under.
                    p.flushing = false;
                    drop(p);
                    std::mem::forget(stopped);
                    return;
                }
                std::mem::take(&mut p.waiting)
            };
            let keys: Vec<String> = group.iter().map(|(k, _)| k.clone()).collect();
            Metrics::inc(&self.metrics.delivery_key_groups);
            let outcome = crate::store::mark_delivered_all(&self.store, keys).await;
            for (_, tx) in group {
                let _ = tx.send(outcome.clone());
            }
        }
    }
}

/// How often `serve` forgets old delivery keys (`delivered_keep_days`).
pub const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Keys forgotten per store call: each call is short, so the hops' own store calls are not held
/// up behind one long `DELETE`.
const FORGET_BATCH: usize = 1_000;

/// Forgets the delivery keys recorded more than `keep` ago, in batches, off the hops' threads;
/// returns how many. A copy redelivered after its key was forgotten would be sent again, so
/// `keep` must outlast any redelivery or replay that may still come.
pub async fn forget_older_than(
    store: &Arc<dyn Store>,
    metrics: &Metrics,
    keep: std::time::Duration,
) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let s = store.clone();
        let n = tokio::task::spawn_blocking(move || s.forget_delivered(keep, FORGET_BATCH))
            .await
            .unwrap_or_else(|e| Err(StoreError(e.to_string())))?;
        total += n as u64;
        metrics
            .delivery_keys_forgotten
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if n < FORGET_BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// `serve`'s expiry of delivery keys (`delivered_keep_days` > 0): at start and then every
/// `every`, forgets the keys older than `keep`; a store error is logged and tried again at the
/// next turn. Ends when `shutdown` turns true.
pub async fn expire(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    keep: std::time::Duration,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match forget_older_than(&store, &metrics, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                forgotten = n,
                keep_days = keep.as_secs() / 86_400,
                "delivery keys older than delivered_keep_days forgotten"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "forgetting old delivery keys failed; trying again later")
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
    use crate::consent::ConsentRegistry;
    use crate::consent::Subject;
    use crate::store::sqlite::SqliteStore;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// SQLite, counting the group calls and failing them on demand; `old` keys are old enough
    /// to forget (counted, not stored), `forgets` counts the calls that forgot.
    struct Counting {
        inner: SqliteStore,
        groups: AtomicUsize,
        fail: AtomicBool,
        old: AtomicUsize,
        forgets: AtomicUsize,
    }

    impl Store for Counting {
        fn consents(&self) -> &dyn ConsentRegistry {
            self.inner.consents()
        }
        fn link(&self, party: &str, local_id: &str, subject: &Subject) -> Result<(), StoreError> {
            self.inner.link(party, local_id, subject)
        }
        fn resolve(&self, party: &str, local_id: &str) -> Result<Option<Subject>, StoreError> {
            self.inner.resolve(party, local_id)
        }
        fn was_delivered(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.was_delivered(key)
        }
        fn mark_delivered(&self, key: &str) -> Result<(), StoreError> {
            self.inner.mark_delivered(key)
        }
        fn mark_delivered_all(&self, keys: &[String]) -> Result<(), StoreError> {
            self.groups.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError("database is away".into()));
            }
            self.inner.mark_delivered_all(keys)
        }
        fn forget_delivered(
            &self,
            older_than: std::time::Duration,
            at_most: usize,
        ) -> Result<usize, StoreError> {
            self.forgets.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError("database is away".into()));
            }
            let n = self.old.load(Ordering::SeqCst).min(at_most);
            self.old.fetch_sub(n, Ordering::SeqCst);
            Ok(n + self.inner.forget_delivered(older_than, at_most - n)?)
        }
        fn inline(&self) -> bool {
            true
        }
    }

    fn counting() -> Arc<Counting> {
        Arc::new(Counting {
            inner: SqliteStore::in_memory().expect("sqlite"),
            groups: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            old: AtomicUsize::new(0),
            forgets: AtomicUsize::new(0),
        })
    }

    async fn record_all(keys: &DeliveryKeys, n: usize, tag: &str) -> Vec<Result<(), StoreError>> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let keys = keys.clone();
                let key = format!("{tag}-{i}/0/r");
                tokio::spawn(async move { keys.record(key).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn keys_waiting_together_are_committed_in_one_group_and_each_caller_is_answered() {
        let store = counting();
        let metrics = Arc::new(Metrics::default());
        let keys = DeliveryKeys::new(store.clone(), metrics.clone());
        // On one thread the 50 callers all queue their key before the flusher first runs.
        let outcomes = record_all(&keys, 50, "e").await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(store.groups.load(Ordering::SeqCst), 1, "one transaction");
        assert_eq!(metrics.delivery_key_groups.load(Ordering::Relaxed), 1);
        for i in 0..50 {
            assert!(store.was_delivered(&format!("e-{i}/0/r")).unwrap());
        }
        // A lone key later is a group of its own, and the flusher starts again for it.
        keys.record("late/0/r".into()).await.unwrap();
        assert_eq!(store.groups.load(Ordering::SeqCst), 2);
        assert!(store.was_delivered("late/0/r").unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_group_answers_every_caller_with_the_error_and_records_nothing() {
        let store = counting();
        let keys = DeliveryKeys::new(store.clone(), Arc::default());
        store.fail.store(true, Ordering::SeqCst);
        let outcomes = record_all(&keys, 5, "f").await;
        assert_eq!(outcomes.len(), 5);
        for o in &outcomes {
            let e = o.as_ref().expect_err("the group failed");
            assert!(e.0.contains("database is away"), "{e}");
        }
        assert!(!store.was_delivered("f-0/0/r").unwrap());
        // Nothing is left waiting: once the store is back the same keys are recorded.
        store.fail.store(false, Ordering::SeqCst);
        assert!(record_all(&keys, 5, "f").await.iter().all(Result::is_ok));
        assert!((0..5).all(|i| store.was_delivered(&format!("f-{i}/0/r")).unwrap()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn keys_of_tasks_ready_on_a_worker_thread_join_the_flushers_group() {
        // Spawned on a worker thread, the flusher would run next (tokio's LIFO slot), before
        // the callers already queued there: each group would hold one key. It lets them run
        // first, so their keys join it.
        let store = counting();
        let keys = DeliveryKeys::new(store.clone(), Arc::default());
        let on_worker = {
            let keys = keys.clone();
            tokio::spawn(async move { record_all(&keys, 50, "w").await })
        };
        let outcomes = on_worker.await.expect("task");
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert!((0..50).all(|i| store.was_delivered(&format!("w-{i}/0/r")).unwrap()));
        let groups = store.groups.load(Ordering::SeqCst);
        assert!(
            groups <= 3,
            "50 keys ready together took {groups} transactions"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_concurrent_load_every_key_is_recorded_once_asked() {
        let store = counting();
        let keys = DeliveryKeys::new(store.clone(), Arc::default());
        let outcomes = record_all(&keys, 400, "m").await;
        assert!(outcomes.iter().all(Result::is_ok));
        assert!((0..400).all(|i| store.was_delivered(&format!("m-{i}/0/r")).unwrap()));
        let groups = store.groups.load(Ordering::SeqCst);
        assert!((1..=400).contains(&groups), "{groups}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn old_keys_are_forgotten_in_short_batches_until_a_batch_comes_back_short() {
        let store = counting();
        store.old.store(2 * FORGET_BATCH + 7, Ordering::SeqCst);
        let metrics = Metrics::default();
        let dyn_store: Arc<dyn Store> = store.clone();
        let week = std::time::Duration::from_secs(7 * 86_400);
        let n = forget_older_than(&dyn_store, &metrics, week).await.unwrap();
        assert_eq!(n, 2 * FORGET_BATCH as u64 + 7);
        assert_eq!(
            store.forgets.load(Ordering::SeqCst),
            3,
            "two full batches and a short one"
        );
        assert_eq!(metrics.delivery_keys_forgotten.load(Ordering::Relaxed), n);
        assert_eq!(
            forget_older_than(&dyn_store, &metrics, week).await.unwrap(),
            0
        );
        store.fail.store(true, Ordering::SeqCst);
        assert!(forget_older_than(&dyn_store, &metrics, week).await.is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_expiry_runs_at_start_and_every_turn_and_stops_on_shutdown() {
        let store = counting();
        store.old.store(5, Ordering::SeqCst);
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let turn = std::time::Duration::from_millis(50);
        let task = tokio::spawn(expire(
            store.clone(),
            metrics.clone(),
            std::time::Duration::from_secs(86_400),
            turn,
            rx,
        ));
        let forgotten = || metrics.delivery_keys_forgotten.load(Ordering::Relaxed);
        let wait_for = |n: u64| async move {
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while forgotten() < n {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{n} keys not forgotten within 10 s"))
        };
        wait_for(5).await;
        // Keys that grow old later are forgotten at a later turn.
        store.old.store(3, Ordering::SeqCst);
        wait_for(8).await;
        assert!(store.forgets.load(Ordering::SeqCst) >= 2);
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the expiry ends on shutdown")
            .expect("task");
    }
}
