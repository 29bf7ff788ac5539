//! Backpressure at ingress (`max_backlog`). The sources accept as fast as the broker confirms,
//! which under load is faster than the translate and deliver hops work (the hub bench at 64
//! producers: accept ~2× delivery), so without a bound the queues grow until RabbitMQ's own memory
//! or disk alarm stops every publisher at once. With a bound, a watcher reads the depth of the
//! `translate` and `deliver` queues a few times a second; while it is at the bound, ingress
//! refuses new messages as *unavailable* — nothing kept, the sender retries, as for a broker
//! outage: HTTP 503 with `Retry-After`, MLLP `AE`, the AMQP source requeues after a pause, the
//! file drop leaves the file for the next poll. It admits again once the depth falls below 90 %
//! of the bound, so the sources do not flap at the edge. The depth is shared by every hub process
//! on the same queues, so the bound holds for all of them together. A depth that cannot be read
//! (the broker is away) leaves the last state as it was: publishing fails then anyway.

use super::Hub;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often `serve` reads the queue depth.
pub const READ_EVERY: Duration = Duration::from_millis(250);

/// The bound and the last depth read. `bound == 0`: no bound, every message is admitted.
#[derive(Debug, Default)]
pub struct Backlog {
    bound: u64,
    waiting: AtomicU64,
    full: AtomicBool,
    reads: AtomicU64,
}

impl Backlog {
    /// A backlog bounded at `bound` messages waiting in `translate` + `deliver` (0 = none).
    pub fn new(bound: u64) -> Backlog {
        Backlog {
            bound,
            ..Backlog::default()
        }
    }

    /// The bound (0 = none).
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Messages waiting at the last read.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// How many times the depth was read.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Records a depth read: full at the bound, admitting again below 90 % of it.
    pub fn observe(&self, waiting: u64) {
        self.waiting.store(waiting, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        if self.bound == 0 {
            return;
        }
        if waiting >= self.bound {
            self.full.store(true, Ordering::Relaxed);
        } else if waiting < self.bound - self.bound / 10 {
            self.full.store(false, Ordering::Relaxed);
        }
    }

    /// `Err` with the words for the sender while the backlog is at its bound.
    pub fn admit(&self) -> Result<(), String> {
        if self.bound == 0 || !self.full.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(format!(
            "the hub is at its backlog bound ({} messages waiting to be translated or delivered, \
             max_backlog {}); nothing was kept, send the message again later",
            self.waiting(),
            self.bound
        ))
    }
}

/// Reads the depth of the hub's `translate` and `deliver` queues every `every` into
/// `hub.backlog` until `shutdown` turns true. `serve` runs it when `max_backlog` is set.
pub async fn watch(
    hub: Arc<Hub>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let queues = [hub.topology.translate_queue(), hub.topology.deliver_queue()];
    loop {
        match depth(&hub, &queues).await {
            Ok(n) => hub.backlog.observe(n),
            Err(e) => tracing::debug!(error = %e, "backlog: queue depth unreadable"),
        }
        if !super::retry::pause(every, &mut shutdown).await {
            return;
        }
    }
}

/// Messages waiting in `queues` together.
async fn depth(hub: &Hub, queues: &[String]) -> Result<u64, crate::bus::BusError> {
    let mut waiting = 0;
    for q in queues {
        waiting += hub.bus.queue_len(q).await?;
    }
    Ok(waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bound_admits_everything() {
        let b = Backlog::new(0);
        b.observe(1_000_000);
        assert_eq!(b.admit(), Ok(()));
        assert_eq!(b.waiting(), 1_000_000);
    }

    #[test]
    fn full_at_the_bound_and_admitting_again_below_ninety_percent() {
        let b = Backlog::new(100);
        b.observe(99);
        assert_eq!(b.admit(), Ok(()), "below the bound");
        b.observe(100);
        let e = b.admit().expect_err("at the bound");
        assert!(
            e.contains("100 messages waiting") && e.contains("max_backlog 100"),
            "{e}"
        );
        b.observe(95);
        assert!(b.admit().is_err(), "still full between 90 % and the bound");
        b.observe(90);
        assert!(b.admit().is_err(), "90 % is not below 90 %");
        b.observe(89);
        assert_eq!(b.admit(), Ok(()), "admits again below 90 %");
        b.observe(95);
        assert_eq!(b.admit(), Ok(()), "and stays open until the bound");
        assert_eq!(b.reads(), 6);
    }

    #[test]
    fn a_bound_of_one_opens_when_the_queues_are_empty() {
        let b = Backlog::new(1);
        b.observe(1);
        assert!(b.admit().is_err());
        b.observe(0);
        assert_eq!(b.admit(), Ok(()));
    }
}
