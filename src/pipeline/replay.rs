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
//! Chosen recipients: a replay may be for some recipients only (`--to`); the copy then carries
//! `x-kaigo-replay-to`, which only replay writes and the deliver hop honours
//! ([`super::deliver::routes`]): the others get nothing from this replay, and each chosen one
//! still gets its copy only with its consent #3.
//!
//! Order: the messages a replay releases go back in the order they arrived at the hub — the
//! time ingress wrote into their envelope id ([`arrival_ms`]), then their document index — not
//! in the order they sit in the parking queue (a copy withheld at deliver may have been parked
//! before an older one withheld at translate). So each person's messages are put back in their
//! arrival order. The replay reads the whole queue (up to [`BATCH`] released messages at a time,
//! held unacknowledged until put back, so a replay cut short loses nothing), then publishes them
//! in that order. From there the hops handle them as new messages, up to `prefetch` at a time.
//!
//! Looking without moving: [`list`] (each parked message's ids, reason and the error's location,
//! grouped by [`grouped`]) and [`preview_parked`] (what a replay would do now,
//! [`super::preview`]) read each message and put it straight back at the tail of its queue, in
//! the order read, so the queue keeps its order.
//!
//! In: the bus, the topology, which queue, and which messages (a predicate on their
//! properties). Out: one [`Step`] per message visited, told to the caller as it happens, and a
//! [`Summary`]. Each message is visited once: the ones kept go back to the tail of their queue.

use super::admission;
use super::headers as h;
use crate::audit::{AuditDraft, Decision, SubjectHash};
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

/// Which parked messages a replay, preview or listing takes: those envelope ids (none = any),
/// of that reason (none = any). A reason is a code as parked (`consent-denied:no-consent`) or
/// its family before the colon (`consent-denied`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Envelope ids; empty takes every envelope.
    pub ids: Vec<String>,
    /// A reason code or family.
    pub reason: Option<String>,
}

impl Selection {
    /// Does the selection take the message with these properties?
    pub fn takes(&self, p: &Props) -> bool {
        let id = p.message_id.as_deref().unwrap_or("");
        let by_id = self.ids.is_empty() || self.ids.iter().any(|i| i == id);
        let by_reason = self.reason.as_deref().is_none_or(|want| {
            let reason = ParkedMessage::of(p).reason;
            reason == want
                || reason
                    .strip_prefix(want)
                    .is_some_and(|rest| rest.starts_with(':'))
        });
        by_id && by_reason
    }
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

/// Released messages held at most at once before they are put back in arrival order (the
/// consumer's prefetch while a replay reads its queue).
pub const BATCH: usize = 5000;

/// When the message arrived at the hub: the milliseconds ingress wrote into its envelope id
/// (`k` + 11 hex digits, [`super::clock::envelope_id`]); `None` for an id of another shape.
pub fn arrival_ms(envelope: &str) -> Option<u64> {
    let digits = envelope.strip_prefix('k')?.get(..11)?;
    u64::from_str_radix(digits, 16).ok()
}

/// The order a replay puts messages back in: arrival, then envelope, then document index
/// (an id of another shape last, in the order read).
fn arrival_order(p: &Props) -> (u64, String, u64) {
    let envelope = p.message_id.clone().unwrap_or_default();
    let index = p
        .header(h::DOC_INDEX)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    (arrival_ms(&envelope).unwrap_or(u64::MAX), envelope, index)
}

/// Replays the messages of `parked` that `select` takes, in arrival order, to every recipient
/// ([`replay_to`] without a choice).
pub async fn replay(
    bus: &dyn Bus,
    t: &Topology,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
    each: &mut (dyn FnMut(&Step, &Props) + Send),
) -> Result<Summary, BusError> {
    replay_to(bus, t, parked, select, None, each).await
}

/// Replays the messages of `parked` that `select` takes, in arrival order, to the recipients
/// `to` only when given (see the module's opening); tells `each` what happened to each (with the
/// message's properties as they were parked), once it happened. Stops at the first bus error
/// (the messages in hand stay where they were, or are redelivered to the queue).
pub async fn replay_to(
    bus: &dyn Bus,
    t: &Topology,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
    to: Option<&[String]>,
    each: &mut (dyn FnMut(&Step, &Props) + Send),
) -> Result<Summary, BusError> {
    let (queue, park) = match parked {
        Parked::Dead => (t.dead_queue(), t.dead()),
        Parked::Quarantine => (t.quarantine_queue(), t.quarantine()),
    };
    let waiting = bus.queue_len(&queue).await?;
    let prefetch = u16::try_from(waiting.clamp(16, BATCH as u64)).unwrap_or(u16::MAX);
    let mut consumer = bus.consume(&queue, prefetch).await?;
    let mut summary = Summary::default();
    let mut released: Vec<Delivery> = Vec::new();
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
        released.push(d);
        if released.len() >= BATCH {
            put_back(bus, t, &mut released, to, &mut summary, each).await?;
        }
    }
    put_back(bus, t, &mut released, to, &mut summary, each).await?;
    consumer.close().await;
    returned(bus, &queue, summary.held + summary.skipped).await;
    Ok(summary)
}

/// Publishes the released messages in arrival order, each acked once its copy is confirmed.
async fn put_back(
    bus: &dyn Bus,
    t: &Topology,
    released: &mut Vec<Delivery>,
    to: Option<&[String]>,
    summary: &mut Summary,
    each: &mut (dyn FnMut(&Step, &Props) + Send),
) -> Result<(), BusError> {
    released.sort_by_cached_key(|d| arrival_order(&d.props));
    for d in released.drain(..) {
        let envelope = d.props.message_id.clone().unwrap_or_default();
        let (exchange, props) = fresh(t, &d, to);
        bus.publish(&exchange, &d.routing_key, &props, &d.body)
            .await?;
        let parked = d.props.clone();
        d.ack().await?;
        summary.replayed += 1;
        each(&Step::Replayed { envelope, exchange }, &parked);
    }
    Ok(())
}

/// One parked message as a listing shows it: ids, codes and where the error is; never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMessage {
    /// Envelope id.
    pub envelope: String,
    /// Why it is parked: `x-kaigo-reason` (`consent-denied:no-consent`, `mapping-failed`, …);
    /// `delivery-limit` for a copy the broker dead-lettered after too many deliveries,
    /// `unlabelled` when nothing says.
    pub reason: String,
    /// Where and why: the dead letter's `x-kaigo-error`, or the quarantined copy's
    /// `x-kaigo-detail` (ids, codes, locations and rules only).
    pub location: String,
    /// The hop that parked it (`ingress`, `translate`, `deliver`).
    pub hop: String,
    /// The party that sent it.
    pub source: String,
    /// Canonical kind, when known.
    pub document: String,
    /// `x-kaigo-doc-index` of a canonical document.
    pub doc_index: Option<String>,
    /// The recipient a copy was meant for, when it names one.
    pub recipient: String,
    /// When it was quarantined or dead-lettered (RFC 3339), when said.
    pub parked_at: String,
    /// When it arrived at the hub ([`arrival_ms`]).
    pub arrived_ms: Option<u64>,
    /// Why a replay would keep it, when it would ([`must_stay`]).
    pub stays: Option<(String, String)>,
}

impl ParkedMessage {
    /// Reads a parked message's properties.
    pub fn of(p: &Props) -> ParkedMessage {
        let text = |k: &str| p.header(k).unwrap_or("").to_string();
        let envelope = p.message_id.clone().unwrap_or_default();
        let reason = match p.header(h::REASON) {
            Some(r) => r.to_string(),
            None if p.headers.contains_key("x-death")
                || p.headers.contains_key("x-first-death-reason") =>
            {
                "delivery-limit".to_string()
            }
            None => "unlabelled".to_string(),
        };
        let location = match (p.header(h::ERROR), p.header(h::DETAIL)) {
            (Some(e), _) => e.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => String::new(),
        };
        ParkedMessage {
            arrived_ms: arrival_ms(&envelope),
            envelope,
            reason,
            location,
            hop: p
                .header(h::REFUSED_AT)
                .or(p.header(h::HOP))
                .unwrap_or("")
                .to_string(),
            source: text(h::SOURCE),
            document: text(h::DOCUMENT),
            doc_index: p.header(h::DOC_INDEX).map(String::from),
            recipient: text(h::RECIPIENT),
            parked_at: match text(h::QUARANTINED_AT) {
                at if at.is_empty() => text(h::DEAD_AT),
                at => at,
            },
            stays: must_stay(p),
        }
    }
}

/// The parked messages of one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The reason code.
    pub reason: String,
    /// Its messages, in the order listed.
    pub messages: Vec<ParkedMessage>,
}

/// Groups a listing by reason, the reasons in the order first met.
pub fn grouped(list: Vec<ParkedMessage>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for m in list {
        match groups.iter_mut().find(|g| g.reason == m.reason) {
            Some(g) => g.messages.push(m),
            None => groups.push(Group {
                reason: m.reason.clone(),
                messages: vec![m],
            }),
        }
    }
    groups
}

/// Reads every message of `parked` once and puts it straight back at the tail, in the order
/// read; gives the properties (and, with `bodies`, a copy of the body) of those `select` takes.
async fn browse(
    bus: &dyn Bus,
    t: &Topology,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
    bodies: bool,
) -> Result<Vec<(Props, Vec<u8>)>, BusError> {
    let (queue, park) = match parked {
        Parked::Dead => (t.dead_queue(), t.dead()),
        Parked::Quarantine => (t.quarantine_queue(), t.quarantine()),
    };
    let waiting = bus.queue_len(&queue).await?;
    let mut consumer = bus.consume(&queue, 16).await?;
    let mut seen = Vec::new();
    let mut put_back = 0;
    for _ in 0..waiting {
        let d = match tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => break,
        };
        if select(&d.props) {
            let body = if bodies { d.body.clone() } else { Vec::new() };
            seen.push((d.props.clone(), body));
        }
        keep(bus, &park, d).await?;
        put_back += 1;
    }
    // What it fetched again of the copies put back is returned before anyone counts the queue.
    consumer.close().await;
    returned(bus, &queue, put_back).await;
    Ok(seen)
}

/// The messages parked in `parked` that `select` takes, in queue order (see [`grouped`]).
pub async fn list(
    bus: &dyn Bus,
    t: &Topology,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
) -> Result<Vec<ParkedMessage>, BusError> {
    let seen = browse(bus, t, parked, select, false).await?;
    Ok(seen.iter().map(|(p, _)| ParkedMessage::of(p)).collect())
}

/// What replaying the messages of `parked` that `select` takes would do now, to the recipients
/// `to` only when given ([`super::preview`]), with each message's headers (the caller audits the
/// preview: [`PREVIEW_REASON`]); nothing is published or moved.
pub async fn preview_parked(
    hub: &super::Hub,
    parked: Parked,
    select: &(dyn Fn(&Props) -> bool + Sync),
    to: Option<&[String]>,
) -> Result<Vec<(ParkedMessage, super::preview::Preview, Props)>, BusError> {
    let seen = browse(hub.bus.as_ref(), &hub.topology, parked, select, true).await?;
    let mut out = Vec::with_capacity(seen.len());
    for (props, body) in seen {
        let p = super::preview::preview(hub, &props, &body, to).await;
        out.push((ParkedMessage::of(&props), p, props));
    }
    Ok(out)
}

/// The reason of the audit events a preview records (hop `admin`, one per person the parked
/// message names, as a replay records them): a preview asks each person's consent for each
/// recipient, so who asked, and about whom, is on the record like any consent decision.
pub const PREVIEW_REASON: &str = "replay-preview";

/// Waits (at most 5 s) until `queue` counts at least the `kept` messages put back: RabbitMQ
/// returns what a closed consumer had fetched again of them through its quorum log, a moment
/// after the channel closed, and whoever counts or reads the queue next must find them all.
async fn returned(bus: &dyn Bus, queue: &str, kept: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match bus.queue_len(queue).await {
            Ok(n) if n < kept => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => return,
        }
    }
}

/// Back to the tail of the same queue, so each message is visited once.
async fn keep(bus: &dyn Bus, park: &str, d: Delivery) -> Result<(), BusError> {
    bus.publish(park, &d.routing_key, &d.props, &d.body).await?;
    d.ack().await
}

/// Where a parked message goes back, and its properties for a fresh start: no verdict, no
/// recipient, no attempts counted, no broker marks (a copy that ran out of attempts goes to
/// every recipient again; those served before are skipped by their delivery keys).
fn fresh(t: &Topology, d: &Delivery, to: Option<&[String]>) -> (String, Props) {
    let mut props = d.props.clone();
    for k in [
        h::REPLAY_TO,
        h::ERROR,
        h::REASON,
        h::DETAIL,
        h::RECIPIENT,
        h::REFUSED_AT,
        h::QUARANTINED_AT,
        h::DEAD_AT,
        h::RETRY_FOR,
        h::ATTEMPT,
    ] {
        props.headers.remove(k);
    }
    props.strip_dead_letter_marks();
    props.headers.insert(h::HOP.into(), "replay".into());
    if let Some(to) = to {
        props.headers.insert(h::REPLAY_TO.into(), to.join(","));
    }
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

/// The people a parked message carries (`x-kaigo-subject`), each as the subject of one replay
/// audit event; `[None]` (one event without a subject) when it carries none.
pub fn parked_subjects(props: &Props) -> Vec<Option<SubjectHash>> {
    let subjects: Vec<Option<SubjectHash>> = props
        .header(h::SUBJECT)
        .unwrap_or("")
        .split(',')
        .filter_map(|x| SubjectHash::from_hex(x).ok())
        .map(Some)
        .collect();
    if subjects.is_empty() {
        vec![None]
    } else {
        subjects
    }
}

/// One replay audit event about a parked message, as every replayer (the command line, the
/// console) records it: `d` (the actor's draft) with the envelope, the decision, the reason,
/// `subject`, and from the parked copy's headers the source party, document kind and category.
pub fn audit_event(
    d: AuditDraft,
    props: &Props,
    envelope: &str,
    decision: Decision,
    reason: &str,
    subject: Option<SubjectHash>,
) -> AuditDraft {
    let mut d = d
        .envelope_id(envelope)
        .decision(decision)
        .reason(reason.to_string());
    if let Some(p) = props.header(h::SOURCE) {
        d = d.party(p);
    }
    if let Some(doc) = props.header(h::DOCUMENT) {
        d = d.document(doc);
    }
    if let Some(c) = props.header(h::CATEGORY) {
        d = d.category(c);
    }
    match subject {
        Some(s) => d.subject(s),
        None => d,
    }
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

    #[test]
    fn a_selection_takes_ids_and_a_reason_or_its_family_and_a_listing_says_where() {
        let mut p = props(&[
            (h::SOURCE, "0300000100"),
            (h::REASON, "consent-denied:no-consent"),
            (h::REFUSED_AT, "translate"),
            (h::DETAIL, "document 1 (CarePlan@1): what is missing"),
        ]);
        p.message_id = Some("k1".into());
        let take = |ids: &[&str], reason: Option<&str>| {
            Selection {
                ids: ids.iter().map(|i| i.to_string()).collect(),
                reason: reason.map(String::from),
            }
            .takes(&p)
        };
        assert!(take(&[], None), "an empty selection takes all");
        assert!(take(&["k0", "k1"], None));
        assert!(!take(&["k0"], None));
        assert!(take(&[], Some("consent-denied")));
        assert!(take(&["k1"], Some("consent-denied:no-consent")));
        assert!(!take(&[], Some("consent-denied:revoked")));
        assert!(!take(&[], Some("consent")), "a family ends at the colon");
        assert!(!take(&["k0"], Some("consent-denied")));

        let m = ParkedMessage::of(&p);
        assert_eq!(
            (m.reason.as_str(), m.hop.as_str(), m.source.as_str()),
            ("consent-denied:no-consent", "translate", "0300000100")
        );
        assert_eq!(m.location, "document 1 (CarePlan@1): what is missing");
        assert_eq!(m.stays, None);
        let mut dead = props(&[(h::SOURCE, "1"), (h::ERROR, "PID-7: not a date (rule x)")]);
        assert_eq!(ParkedMessage::of(&dead).reason, "unlabelled");
        assert_eq!(
            ParkedMessage::of(&dead).location,
            "PID-7: not a date (rule x)"
        );
        dead.headers
            .insert("x-first-death-reason".into(), "delivery_limit".into());
        assert_eq!(ParkedMessage::of(&dead).reason, "delivery-limit");
        let groups = grouped(vec![
            ParkedMessage::of(&p),
            ParkedMessage::of(&dead),
            ParkedMessage::of(&p),
        ]);
        let counts: Vec<(&str, usize)> = groups
            .iter()
            .map(|g| (g.reason.as_str(), g.messages.len()))
            .collect();
        assert_eq!(
            counts,
            [("consent-denied:no-consent", 2), ("delivery-limit", 1)]
        );
    }

    #[test]
    fn the_arrival_is_the_time_in_the_envelope_id() {
        let id = crate::pipeline::clock::envelope_id();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let at = arrival_ms(&id).expect("an envelope id");
        assert!(now.abs_diff(at) < 60_000, "{id}: {at} vs {now}");
        assert_eq!(arrival_ms("k00000000010ffffffffffffffff"), Some(16));
        assert_eq!(arrival_ms("not-an-envelope"), None);
        assert_eq!(arrival_ms("k12"), None);
    }

    #[tokio::test]
    async fn released_messages_go_back_in_arrival_order_for_the_chosen_recipients_only() {
        use crate::bus::memory::MemoryBus;
        let bus = MemoryBus::new();
        let t = Topology::new("replay-order");
        bus.declare(&t, &[]).await.expect("declare");
        // Parked out of arrival order: the later document of envelope 2 first, then 3, 1, 2's first.
        let parked = [
            ("k00000000002aaaaaaaaaaaaaaa", "1"),
            ("k00000000003aaaaaaaaaaaaaaa", "0"),
            ("k00000000001aaaaaaaaaaaaaaa", "0"),
            ("k00000000002aaaaaaaaaaaaaaa", "0"),
        ];
        for (envelope, index) in parked {
            let mut p = props(&[
                (h::SOURCE, "0300000100"),
                (h::DOC_INDEX, index),
                (h::REASON, "consent-denied:no-consent"),
                (h::REPLAY_TO, "a-stale-choice"),
            ]);
            p.message_id = Some(envelope.into());
            bus.publish(&t.quarantine(), "k", &p, b"{}")
                .await
                .expect("park");
        }
        let mut deliver = crate::bus::Bus::consume(&bus, &t.deliver_queue(), 10)
            .await
            .expect("consume deliver");
        let to = ["0300000005".to_string(), "131011".to_string()];
        let mut told = Vec::new();
        let summary = replay_to(
            &bus,
            &t,
            Parked::Quarantine,
            &|_| true,
            Some(&to),
            &mut |s, p| {
                if let Step::Replayed { envelope, .. } = s {
                    told.push((
                        envelope.clone(),
                        p.header(h::DOC_INDEX).unwrap_or("").to_string(),
                    ));
                }
            },
        )
        .await
        .expect("replay");
        assert_eq!(summary.replayed, 4);
        let mut order = Vec::new();
        for _ in 0..4 {
            let d = deliver.next().await.expect("a copy").expect("ok");
            assert_eq!(d.props.header(h::REPLAY_TO), Some("0300000005,131011"));
            order.push((
                d.props.message_id.clone().unwrap_or_default(),
                d.props.header(h::DOC_INDEX).unwrap_or("").to_string(),
            ));
            d.ack().await.expect("ack");
        }
        let expected: Vec<(String, String)> = [
            ("k00000000001aaaaaaaaaaaaaaa", "0"),
            ("k00000000002aaaaaaaaaaaaaaa", "0"),
            ("k00000000002aaaaaaaaaaaaaaa", "1"),
            ("k00000000003aaaaaaaaaaaaaaa", "0"),
        ]
        .iter()
        .map(|(e, i)| (e.to_string(), i.to_string()))
        .collect();
        assert_eq!(order, expected);
        assert_eq!(told, expected, "told in the order put back");
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
            (h::QUARANTINED_AT, "2026-12-01T00:00:00Z"),
            (h::DEAD_AT, "2026-11-30T00:00:00Z"),
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
        // The kept one is told as it is found; the released ones once put back in order.
        assert!(matches!(&steps[0], Step::Kept { why, .. } if why.starts_with("insurer-mismatch")));
        let (mut translate, mut deliver) = (translate, deliver);
        let r = translate.next().await.expect("raw").expect("raw ok");
        assert_eq!(r.props.header(h::HOP), Some("replay"));
        for k in [
            h::REASON,
            h::DETAIL,
            h::REFUSED_AT,
            h::QUARANTINED_AT,
            h::DEAD_AT,
        ] {
            assert_eq!(r.props.header(k), None, "{k} is gone");
        }
        let c = deliver.next().await.expect("doc").expect("doc ok");
        assert_eq!(c.props.header(h::DOC_INDEX), Some("1"));
        assert_eq!(c.props.header(h::REPLAY_TO), None, "every recipient");
        assert_eq!(c.props.header(h::RECIPIENT), None);
        assert_eq!(
            bus.queue_len(&t.quarantine_queue()).await.expect("len"),
            1,
            "the incurable one stays"
        );
    }
}
