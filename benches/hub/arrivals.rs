//! Arrivals on a recipient queue, recorded by message_id before each is acked, until the collector
//! is told to stop.

use crate::prefetch;
use kaigo_hub::bus::Bus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Arrivals {
    pub(crate) seen: Mutex<Vec<(String, Instant)>>,
    pub(crate) count: AtomicUsize,
    pub(crate) stop: AtomicBool,
}

impl Arrivals {
    pub(crate) fn take(&self) -> Vec<(String, Instant)> {
        self.count.store(0, Ordering::SeqCst);
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    pub(crate) async fn wait_for(&self, n: usize, cap: Duration) -> bool {
        let until = Instant::now() + cap;
        while self.count.load(Ordering::SeqCst) < n {
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// Consumes `queue`, recording each arrival before acking it, until told to stop.
pub(crate) fn spawn_collector(
    bus: Arc<dyn Bus>,
    queue: String,
    arrivals: Arc<Arrivals>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let mut c = bus
            .consume(&queue, prefetch())
            .await
            .map_err(|e| e.to_string())?;
        while !arrivals.stop.load(Ordering::SeqCst) {
            match tokio::time::timeout(Duration::from_millis(50), c.next()).await {
                Err(_) => continue,
                Ok(None) => return Err(format!("consumer of `{queue}` was closed")),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(d))) => {
                    let now = Instant::now();
                    let id = d.props.message_id.clone().unwrap_or_default();
                    arrivals.seen.lock().unwrap().push((id, now));
                    arrivals.count.fetch_add(1, Ordering::SeqCst);
                    d.ack().await.map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}
