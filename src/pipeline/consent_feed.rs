//! The consent change feed (DESIGN §1, §3): every grant or revoke is announced on the `kaigo.consent`
//! fanout, and every hub process listening there drops its [`ConsentCache`] copy, so a revoke takes
//! effect in every process for messages already waiting in `kaigo.translate` or `kaigo.deliver`.
//! In: consent changes (from the CLI, `POST /fhir/Consent`, [`Hub::grant_consent`] and
//! [`Hub::revoke_consent`]). Out: one small JSON event per change on the fanout (its message id is
//! the change's id), the cache of this process kept live only while its subscription stands, and,
//! in a registered `serve` process, each change recorded as applied once the copy is dropped, for
//! its announcer to see ([`super::consent_reach`]).
//!
//! Must never: carry a 被保険者番号 or a name (the event names the consent id and the subject's
//! keyed hash only), or let the cache answer while the subscription is lost.

use super::Hub;
use super::consent_reach::{OwnBus, Reach, Teller};
use super::presence::Acknowledger;
use crate::bus::{Bus, BusError, Props, Topology};
use crate::consent::cache::ConsentCache;
use crate::consent::{Consent, ConsentError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
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

/// Publishes `event` to the topology's consent fanout; returns the change's id (the message id
/// it was published with) once the broker confirmed it. With no hub process listening (no queue
/// bound to the fanout) there is no copy to drop, so the unroutable event is not an error.
pub async fn announce(
    bus: &dyn Bus,
    topology: &Topology,
    event: &ConsentChanged,
) -> Result<String, BusError> {
    let body = serde_json::to_vec(event).map_err(|e| BusError::Refused(e.to_string()))?;
    let id = super::clock::envelope_id();
    let props = Props {
        message_id: Some(id.clone()),
        content_type: Some(CONTENT_TYPE.into()),
        ..Props::default()
    };
    match bus.publish(&topology.consent(), "", &props, &body).await {
        Ok(()) | Err(BusError::Unroutable(_)) => Ok(id),
        Err(e) => Err(e),
    }
}

impl Hub {
    /// Stores a consent, then tells every hub process (this one at once, the others through the
    /// fanout) and waits, bounded, for the registered ones to acknowledge ([`Hub::changed`]). The
    /// grant stands whatever the [`Reach`] says; a process that did not hear sees the change
    /// when its cached copies expire.
    pub async fn grant_consent(&self, consent: Consent) -> Result<Reach, ConsentError> {
        let event = ConsentChanged {
            change: "grant".into(),
            consent: consent.id.as_str().to_string(),
            subject: Some(self.subject_hash(&consent.subject)),
            at: super::clock::now_rfc3339(),
        };
        let store = self.store.clone();
        blocking(move || store.consents().grant(consent)).await?;
        Ok(self.changed(&[event]).await)
    }

    /// Revokes consent `id` as of `at`, then tells every hub process, like [`Hub::grant_consent`].
    pub async fn revoke_consent(&self, id: &str, at: &str) -> Result<Reach, ConsentError> {
        let event = ConsentChanged {
            change: "revoke".into(),
            consent: id.to_string(),
            subject: None,
            at: super::clock::now_rfc3339(),
        };
        let (store, id, at) = (self.store.clone(), id.to_string(), at.to_string());
        blocking(move || store.consents().revoke(&id, &at)).await?;
        Ok(self.changed(&[event]).await)
    }

    /// After changes reached the store: drop this process's copy, announce them on this
    /// process's bus and to every other registered process, and wait up to `consent_ack_secs`
    /// for those that may answer from a cached copy to acknowledge ([`Teller::tell`]). What did
    /// not reach a process is logged (process names and ids, never a subject).
    pub async fn changed(&self, events: &[ConsentChanged]) -> Reach {
        let stored_at = SystemTime::now();
        if let Some(cache) = &self.consent_cache {
            cache.invalidate();
        }
        let presence = &self.presence;
        let reach = Teller {
            store: &self.store,
            own: Some(OwnBus {
                bus: self.bus.as_ref(),
                url: presence.record.bus_url.as_deref(),
                topology: &self.topology,
            }),
            credentials: presence.credentials(),
            exclude: Some(&presence.record.id),
            wait: presence.ack_wait,
        }
        .tell(events, stored_at)
        .await;
        if let Some(shortfall) = reach.shortfall() {
            tracing::warn!(shortfall = %shortfall, "consent change not acknowledged everywhere");
        }
        for p in &reach.problems {
            tracing::warn!(problem = %p, "consent change not announced on this process's bus");
        }
        reach
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
/// the copy on every event (then, with an `acknowledger`, records the event's id as applied); on
/// any trouble marks it not live (decisions go to the store) and subscribes again with backoff.
pub async fn run(
    bus: Arc<dyn Bus>,
    topology: Topology,
    cache: Arc<ConsentCache>,
    acknowledger: Option<Acknowledger>,
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
                            if let (Some(a), Some(change)) = (&acknowledger, &d.props.message_id) {
                                a.applied(change).await;
                            }
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
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::sqlite::SqliteStore::in_memory().expect("store"));
        let acknowledger = super::super::presence::Presence::new(
            Some("amqp://127.0.0.1:5672/%2f"),
            "feed",
            60,
            Duration::from_secs(1),
        )
        .acknowledger(store.clone());
        let task = tokio::spawn(run(
            bus.clone(),
            t.clone(),
            cache.clone(),
            Some(acknowledger),
            rx,
        ));
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
        let change = announce(bus.as_ref(), &t, &event).await.expect("announce");
        for _ in 0..100 {
            if cache.is_empty() && !store.processes().applied_by(&change).unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty(), "the event dropped the copy");
        assert_eq!(
            store
                .processes()
                .applied_by(&change)
                .expect("applied")
                .len(),
            1,
            "and the process recorded the change as applied"
        );
        tx.send(true).expect("shutdown");
        task.await.expect("feed task");
        assert!(!cache.is_live(), "a stopped feed leaves the cache silent");
    }
}
