//! How long to wait before trying a message again: a backoff that grows with the delivery count
//! (the queue's delivery limit then ends the tries), and a pause that gives way to shutdown. Used
//! where the hub itself waits: the AMQP source before requeueing while the hub is unavailable,
//! and the background loops (backlog, delivery-key expiry). The deliver hop does not wait on a
//! failing recipient: its copy waits in a broker-side waiting room (`retry_delays_ms`). Never
//! sleeps past a shutdown request.

use std::time::Duration;
use tokio::sync::watch;

/// First wait before a requeue, or before consuming again after a bus failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before try `attempt + 1` (`attempt` = deliveries so far): 0.5 s, 1 s, 2 s, … ≤ 30 s.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF)
}

/// Sleeps `wait`; false when shutdown came first.
pub async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        biased;
        _ = shutdown.wait_for(|stop| *stop) => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_pause_gives_way_to_shutdown() {
        let (tx, mut rx) = watch::channel(false);
        tx.send(true).expect("receiver alive");
        let started = std::time::Instant::now();
        assert!(!pause(MAX_BACKOFF, &mut rx).await);
        assert!(started.elapsed() < MAX_BACKOFF);
    }
}
