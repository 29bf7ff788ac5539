//! Replay: puts parked messages — dead letters and quarantined copies — back on the path once
//! their cause is fixed (a mapping corrected, a consent registered, a person linked). A raw
//! message goes back to the ingress exchange, where the translate hop judges it again exactly as
//! a new one ([`super::admission`]: sender, subject, insurer, consent as in force now) and maps
//! it again; a canonical document (it carries `x-kaigo-doc-index`) goes back to the canonical
//! exchange, where the deliver hop judges it the same way before asking each recipient's
//! consent. Nothing is released because it was once seen.
//!
//! Kept where it is, and said so: a message that never passed a source's identity check (no
//! `x-kaigo-source`), and one parked for a reason no later fact can cure
//! ([`super::admission::INCURABLE`]: another party's identity, another insurer's person).
//!
//! In: the bus, the topology, which queue, and which messages (a predicate on their
//! properties). Out: one [`Step`] per message visited, told to the caller as it happens, and a
//! [`Summary`]. Each message is visited once: the ones kept go back to the tail of their queue.

use super::admission;
use super::headers as h;
use crate::bus::{Bus, BusError, Delivery, Props, Topology};
use std::time::Duration;

/// Which parking queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// `<prefix>.dead`: could not be parsed, mapped, rendered or delivered.
    Dead,
    /// `<prefix>.quarantine`: withheld (consent, unknown subject, sender's rights).
    Quarantine,
}

impl std::str::FromStr for Parked {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dead" => Ok(Parked::Dead),
            "quarantine" => Ok(Parked::Quarantine),
            other => Err(format!("replay dead or quarantine, not `{other}`")),
        }
    }
}

/// What happened to one visited message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Published again to `exchange`, to be judged there as a new message.
    Replayed {
        /// Envelope id.
        envelope: String,
        /// Where it went.
        exchange: String,
    },
    /// Left in its queue, with why (for messages the selection took; the others are not told).
    Kept {
        /// Envelope id.
        envelope: String,
        /// Why it stays, as a code (the reason it was parked for, or `no-source`).
        code: String,
        /// Why it stays, in words.
        why: String,
    },
}

/// The counts of one replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Published again.
    pub replayed: u64,
    /// Selected, but kept for a reason (see [`Step::Kept`]).
    pub held: u64,
    /// Not selected, left in the queue.
    pub skipped: u64,
}

/// Why a selected message must stay parked, if it must: a code and the words.
pub fn must_stay(props: &Props) -> Option<(String, String)> {
    if props.header(h::SOURCE).is_none() {
        return Some((
            "no-source".into(),
            "it never passed a source's identity check (no x-kaigo-source): nothing says who may have sent it"
                .into(),
        ));
    }
    let reason = props.header(h::REASON)?;
    (!admission::curable(reason)).then(|| {
        (
            reason.to_string(),
            format!(
                "{reason}: no later fact can cure it (a party sends only as itself, a municipality only for the people it insures)"
            ),
        )
    })
}

/// Replays the messages of `parked` that `select` takes; tells `each` what happened to each
/// (with the message's properties as they were parked), once it happened. Stops at the first
/// bus error (the message in hand stays where it was).
pub async fn replay(
    bus: &dyn Bus,
    t: &Topology,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
    each: &mut (dyn FnMut(&Step, &Props) + Send),
) -> Result<Summary, BusError> {
    let (queue, park) = match parked {
        Parked::Dead => (t.dead_queue(), t.dead()),
        Parked::Quarantine => (t.quarantine_queue(), t.quarantine()),
    };
    let waiting = bus.queue_len(&queue).await?;
    let mut consumer = bus.consume(&queue, 16).await?;
    let mut summary = Summary::default();
    for _ in 0..waiting {
        let d = match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => break,
        };
        let envelope = d.props.message_id.clone().unwrap_or_default();
        if !select(&d.props) {
            summary.skipped += 1;
            keep(bus, &park, d).await?;
            continue;
        }
        if let Some((code, why)) = must_stay(&d.props) {
            summary.held += 1;
            let props = d.props.clone();
            keep(bus, &park, d).await?;
            each(
                &Step::Kept {
                    envelope,
                    code,
                    why,
                },
                &props,
            );
            continue;
        }
        let (exchange, props) = fresh(t, &d);
        bus.publish(&exchange, &d.routing_key, &props, &d.body)
            .await?;
        let parked = d.props.clone();
        d.ack().await?;
        summary.replayed += 1;
        each(&Step::Replayed { envelope, exchange }, &parked);
    }
    Ok(summary)
}

/// Back to the tail of the same queue, so each message is visited once.
async fn keep(bus: &dyn Bus, park: &str, d: Delivery) -> Result<(), BusError> {
    bus.publish(park, &d.routing_key, &d.props, &d.body).await?;
    d.ack().await
}

/// Where a parked message goes back, and its properties for a fresh start: no verdict, no
/// recipient, no attempts counted, no broker marks (a copy that ran out of attempts goes to
/// every recipient again; those served before are skipped by their delivery keys).
fn fresh(t: &Topology, d: &Delivery) -> (String, Props) {
    let mut props = d.props.clone();
    for k in [
        h::ERROR,
        h::REASON,
        h::DETAIL,
        h::RECIPIENT,
        h::REFUSED_AT,
        h::QUARANTINED_AT,
        h::RETRY_FOR,
        h::ATTEMPT,
    ] {
        props.headers.remove(k);
    }
    props.strip_dead_letter_marks();
    props.headers.insert(h::HOP.into(), "replay".into());
    // The hub publishes as its own broker user.
    props.user_id = None;
    // Only canonical documents carry a document index.
    let exchange = if d.props.header(h::DOC_INDEX).is_some() {
        t.canonical()
    } else {
        t.ingress()
    };
    (exchange, props)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        let mut p = Props::default();
        for (k, v) in pairs {
            p.headers.insert((*k).into(), (*v).into());
        }
        p
    }

    #[test]
    fn incurable_reasons_and_unknown_senders_stay_and_say_why() {
        let stays = must_stay(&props(&[
            (h::SOURCE, "131011"),
            (h::REASON, "insurer-mismatch"),
        ]))
        .expect("an insurer mismatch stays");
        assert_eq!(stays.0, "insurer-mismatch");
        assert!(stays.1.contains("no later fact can cure it"), "{}", stays.1);
        assert!(must_stay(&props(&[(h::SOURCE, "1"), (h::REASON, "sender-mismatch")])).is_some());
        assert_eq!(
            must_stay(&props(&[(h::REASON, "consent-denied:no-consent")])).map(|s| s.0),
            Some("no-source".to_string())
        );
        assert_eq!(
            must_stay(&props(&[
                (h::SOURCE, "131011"),
                (h::REASON, "consent-denied:no-consent")
            ])),
            None
        );
        assert_eq!(must_stay(&props(&[(h::SOURCE, "131011")])), None);
    }

    #[tokio::test]
    async fn raw_messages_go_to_ingress_and_documents_to_canonical_with_a_fresh_start() {
        use crate::bus::memory::MemoryBus;
        let bus = MemoryBus::new();
        let t = Topology::new("replay-unit");
        bus.declare(&t, &[]).await.expect("declare");
        let raw = props(&[
            (h::SOURCE, "131011"),
            (h::HOP, "ingress"),
            (h::REASON, "consent-denied:no-consent"),
            (h::DETAIL, "what is missing"),
            (h::REFUSED_AT, "ingress"),
        ]);
        let doc = props(&[
            (h::SOURCE, "0300000100"),
            (h::HOP, "deliver"),
            (h::DOC_INDEX, "1"),
            (h::REASON, "consent-denied:revoked"),
            (h::RECIPIENT, "0300000005"),
        ]);
        let foreign = props(&[(h::SOURCE, "131011"), (h::REASON, "insurer-mismatch")]);
        for p in [&raw, &doc, &foreign] {
            bus.publish(&t.quarantine(), "k", p, b"{}")
                .await
                .expect("park");
        }
        let translate = crate::bus::Bus::consume(&bus, &t.translate_queue(), 10)
            .await
            .expect("consume translate");
        let deliver = crate::bus::Bus::consume(&bus, &t.deliver_queue(), 10)
            .await
            .expect("consume deliver");
        let mut steps = Vec::new();
        let summary = replay(&bus, &t, Parked::Quarantine, &|_| true, &mut |s, _| {
            steps.push(s.clone())
        })
        .await
        .expect("replay");
        assert_eq!(
            summary,
            Summary {
                replayed: 2,
                held: 1,
                skipped: 0
            }
        );
        assert!(matches!(&steps[2], Step::Kept { why, .. } if why.starts_with("insurer-mismatch")));
        let (mut translate, mut deliver) = (translate, deliver);
        let r = translate.next().await.expect("raw").expect("raw ok");
        assert_eq!(r.props.header(h::HOP), Some("replay"));
        for k in [h::REASON, h::DETAIL, h::REFUSED_AT] {
            assert_eq!(r.props.header(k), None, "{k} is gone");
        }
        let c = deliver.next().await.expect("doc").expect("doc ok");
        assert_eq!(c.props.header(h::DOC_INDEX), Some("1"));
        assert_eq!(c.props.header(h::RECIPIENT), None);
        assert_eq!(
            bus.queue_len(&t.quarantine_queue()).await.expect("len"),
            1,
            "the incurable one stays"
        );
    }
}
