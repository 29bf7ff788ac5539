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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentRegistry;
    use crate::consent::Subject;
    use crate::store::sqlite::SqliteStore;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// SQLite, counting the group calls and failing them on demand.
    struct Counting {
        inner: SqliteStore,
        groups: AtomicUsize,
        fail: AtomicBool,
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
        fn inline(&self) -> bool {
            true
        }
    }

    fn counting() -> Arc<Counting> {
        Arc::new(Counting {
            inner: SqliteStore::in_memory().expect("sqlite"),
            groups: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
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
}
