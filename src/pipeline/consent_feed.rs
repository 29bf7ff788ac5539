//! The consent change feed (DESIGN §1, §3): every grant or revoke is announced on the `kaigo.consent`
//! fanout, and every hub process listening there drops its [`ConsentCache`] copy, so a revoke takes
//! effect in every process for messages already waiting in `kaigo.translate` or `kaigo.deliver`.
//! In: consent changes (from the CLI, `POST /fhir/Consent`, [`Hub::grant_consent`] and
//! [`Hub::revoke_consent`]). Out: one small JSON event per change on the fanout, and the cache of
//! this process kept live only while its subscription stands.
//!
//! Must never: carry a 被保険者番号 or a name (the event names the consent id and the subject's
//! keyed hash only), or let the cache answer while the subscription is lost.

use super::Hub;
use crate::bus::{Bus, BusError, Props, Topology};
use crate::consent::cache::ConsentCache;
use crate::consent::{Consent, ConsentError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One consent change, as announced on the fanout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentChanged {
    /// `grant` or `revoke`.
    pub change: String,
    /// The consent's id.
    pub consent: String,
    /// Keyed hash of the subject (never the numbers), when the announcer knows it.
    pub subject: Option<String>,
    /// When it was announced (RFC 3339).
    pub at: String,
}

/// Content type of the events.
pub const CONTENT_TYPE: &str = "application/vnd.kaigo.consent-changed+json";

/// Publishes `event` to the topology's consent fanout; returns once the broker confirmed it.
/// With no hub process listening (no queue bound to the fanout) there is no copy to drop, so
/// the unroutable event is not an error.
pub async fn announce(
    bus: &dyn Bus,
    topology: &Topology,
    event: &ConsentChanged,
) -> Result<(), BusError> {
    let body = serde_json::to_vec(event).map_err(|e| BusError::Refused(e.to_string()))?;
    let props = Props {
        message_id: Some(super::clock::envelope_id()),
        content_type: Some(CONTENT_TYPE.into()),
        ..Props::default()
    };
    match bus.publish(&topology.consent(), "", &props, &body).await {
        Err(BusError::Unroutable(_)) => Ok(()),
        r => r,
    }
}

impl Hub {
    /// Stores a consent, then tells every hub process (this one at once, the others through the
    /// fanout). The grant stands even when the announcement fails; the error says so, and the
    /// other processes see the change when their copies expire.
    pub async fn grant_consent(&self, consent: Consent) -> Result<(), ConsentError> {
        let event = ConsentChanged {
            change: "grant".into(),
            consent: consent.id.as_str().to_string(),
            subject: Some(self.subject_hash(&consent.subject)),
            at: super::clock::now_rfc3339(),
        };
        let store = self.store.clone();
        blocking(move || store.consents().grant(consent)).await?;
        self.changed(&event).await
    }

    /// Revokes consent `id` as of `at`, then tells every hub process, like [`Hub::grant_consent`].
    pub async fn revoke_consent(&self, id: &str, at: &str) -> Result<(), ConsentError> {
        let event = ConsentChanged {
            change: "revoke".into(),
            consent: id.to_string(),
            subject: None,
            at: super::clock::now_rfc3339(),
        };
        let (store, id, at) = (self.store.clone(), id.to_string(), at.to_string());
        blocking(move || store.consents().revoke(&id, &at)).await?;
        self.changed(&event).await
    }

    /// After a change reached the store: drop this process's copy, then announce it.
    pub async fn changed(&self, event: &ConsentChanged) -> Result<(), ConsentError> {
        if let Some(cache) = &self.consent_cache {
            cache.invalidate();
        }
        announce(self.bus.as_ref(), &self.topology, event)
            .await
            .map_err(|e| ConsentError::Unavailable {
                detail: format!(
                    "the change is stored, but other hub processes were not told ({e}); they see it \
                     once their cached copy expires"
                ),
            })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConsentError> + Send + 'static,
) -> Result<T, ConsentError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ConsentError::Unavailable {
            detail: e.to_string(),
        })
    })
}

/// Keeps `cache` in step with the fanout until shutdown: subscribes, marks the cache live, drops
/// the copy on every event; on any trouble marks it not live (decisions go to the store) and
/// subscribes again with backoff.
pub async fn run(
    bus: Arc<dyn Bus>,
    topology: Topology,
    cache: Arc<ConsentCache>,
    mut shutdown: watch::Receiver<bool>,
) {
    let exchange = topology.consent();
    let mut wait = Duration::from_millis(200);
    loop {
        let subscribed = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            s = bus.subscribe(&exchange) => s,
        };
        match subscribed {
            Ok(mut feed) => {
                cache.set_live(true);
                tracing::debug!("consent feed subscribed; cache live");
                wait = Duration::from_millis(200);
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = shutdown.changed() => {
                            cache.set_live(false);
                            return;
                        }
                        n = feed.next() => n,
                    };
                    match next {
                        Some(Ok(d)) => {
                            cache.invalidate();
                            match serde_json::from_slice::<ConsentChanged>(&d.body) {
                                Ok(e) => {
                                    tracing::debug!(change = %e.change, consent = %e.consent, "consent changed")
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "an unreadable consent-change event; the cache was dropped all the same")
                                }
                            }
                            if let Err(e) = d.ack().await {
                                tracing::debug!(error = %e, "acking a consent-change event");
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "consent feed lost; deciding from the store until it is back");
                            break;
                        }
                        None => {
                            tracing::warn!(
                                "consent feed ended; deciding from the store until it is back"
                            );
                            break;
                        }
                    }
                }
                cache.set_live(false);
            }
            Err(e) => {
                cache.set_live(false);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot subscribe to the consent feed");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
    cache.set_live(false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;

    #[tokio::test]
    async fn an_announcement_nobody_listens_to_is_not_an_error_but_a_missing_fanout_is() {
        let bus = MemoryBus::new();
        let t = Topology::new("feed");
        let event = ConsentChanged {
            change: "grant".into(),
            consent: "c-1".into(),
            subject: None,
            at: "2025-06-01T00:00:00Z".into(),
        };
        let missing = announce(&bus, &t, &event).await;
        assert!(matches!(missing, Err(BusError::Refused(_))), "{missing:?}");
        bus.declare(&t, &[]).await.expect("declare");
        announce(&bus, &t, &event)
            .await
            .expect("no hub process listens: no copy to drop");
    }

    #[tokio::test]
    async fn an_announced_change_clears_the_cache_of_a_subscribed_process() {
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        let t = Topology::new("feed");
        bus.declare(&t, &[]).await.expect("declare");
        let cache = Arc::new(ConsentCache::new(Duration::from_secs(60)));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(bus.clone(), t.clone(), cache.clone(), rx));
        for _ in 0..100 {
            if cache.is_live() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_live(), "the feed subscribed");
        let subject = crate::consent::Subject::new("131011", "0000100001").expect("subject");
        let q = crate::consent::Question {
            subject: subject.clone(),
            recipient: crate::consent::Recipient {
                id: crate::consent::PartyId::parse("0300000005").expect("id"),
                kind: crate::consent::PartyKind::Provider,
            },
            category: crate::consent::Category::CarePlan,
            purpose: None,
            on: crate::consent::IsoDate::parse("2025-06-01").expect("date"),
        };
        let ticket = cache.decide(&q).unwrap_err().expect("ticket");
        cache.put(ticket, &subject, Vec::new());
        assert_eq!(cache.len(), 1);
        let event = ConsentChanged {
            change: "revoke".into(),
            consent: "c-1".into(),
            subject: None,
            at: "2025-06-01T00:00:00Z".into(),
        };
        announce(bus.as_ref(), &t, &event).await.expect("announce");
        for _ in 0..100 {
            if cache.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty(), "the event dropped the copy");
        tx.send(true).expect("shutdown");
        task.await.expect("feed task");
        assert!(!cache.is_live(), "a stopped feed leaves the cache silent");
    }
}
