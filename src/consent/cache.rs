//! A per-process copy of the consents the hops asked about, so a decision does not cost a database
//! round trip. In: a subject's consents as the registry listed them ([`ConsentCache::put`]), and
//! word that the registry changed ([`ConsentCache::invalidate`], fed by the `kaigo.consent` fanout).
//! Out: the same [`Decision`] the registry would give, decided by [`decide_from`] on the copy.
//!
//! This room must never answer from a copy that may be stale. Three things guard that:
//! - it answers only while it is *live*, i.e. while its owner holds a subscription to the change
//!   feed; losing the subscription (broker gone, channel closed) clears it and stops it answering
//!   until a new subscription exists ([`ConsentCache::set_live`]);
//! - every change clears everything, and a copy that was being read from the registry while a
//!   change arrived is not kept (the *generation* check in [`ConsentCache::put`]);
//! - each copy expires `ttl` after the read that filled it *began*, a backstop for a change made
//!   by a process that could not announce it: a copy read before a change was stored is gone
//!   `ttl` after that change at the latest, which is the time a consent command names when a
//!   process did not acknowledge the change;
//! - in a registered `serve` process, it answers only while the process's heartbeat in the
//!   store's process registry is recent ([`ConsentCache::vouch`]): a process whose heartbeat
//!   stopped (paused, cut off from the store) drops its copy, so a consent command may pass over
//!   a registration whose heartbeat is old.

use super::{Consent, Decision, Question, Subject, decide_from};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What the cache holds behind its lock.
#[derive(Default)]
struct Inner {
    /// Answers only while true.
    live: bool,
    /// Bumped by every invalidation; a `put` that began under another generation is dropped.
    generation: u64,
    /// Subject → (its consents, when the read of them began).
    subjects: HashMap<Subject, (Arc<[Consent]>, Instant)>,
    /// Set by [`ConsentCache::vouch`]: answers only before this instant.
    vouched_until: Option<Instant>,
}

impl Inner {
    /// Forgets every copy, and refuses copies being read right now.
    fn forget(&mut self) {
        self.generation += 1;
        self.subjects.clear();
    }

    /// False once a vouch lapsed; the copy is forgotten then, so that a later vouch does not
    /// bring back copies kept from before the lapse.
    fn vouched(&mut self, now: Instant) -> bool {
        match self.vouched_until {
            Some(until) if now >= until => {
                self.forget();
                false
            }
            _ => true,
        }
    }
}

/// The cache. Share it behind an `Arc`.
pub struct ConsentCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

/// A read of the registry that may be stored with [`ConsentCache::put`]: it remembers the
/// generation it began under, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64, Instant);

impl ConsentCache {
    /// An empty cache that is not live yet; copies expire after `ttl`.
    pub fn new(ttl: Duration) -> ConsentCache {
        ConsentCache {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// How long a copy may be used.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is one step that leaves the maps whole; a panicking holder changes nothing.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides from the copy of `question.subject`'s consents, or says why it cannot: `Err` with
    /// a [`Ticket`] to read the registry under, then [`put`](Self::put) what was read.
    pub fn decide(&self, question: &Question) -> Result<Decision, Option<Ticket>> {
        let mut inner = self.lock();
        let now = Instant::now();
        if !inner.live || !inner.vouched(now) {
            return Err(None);
        }
        match inner.subjects.get(&question.subject) {
            Some((consents, read_at)) if now.duration_since(*read_at) < self.ttl => {
                Ok(decide_from(consents.iter(), question))
            }
            _ => Err(Some(Ticket(inner.generation, now))),
        }
    }

    /// Keeps `consents` (everything the registry holds for `subject`, revoked ones too) unless a
    /// change arrived since `ticket` was issued or the cache is not live. The copy expires `ttl`
    /// after the ticket was issued (before the read began).
    pub fn put(&self, ticket: Ticket, subject: &Subject, consents: Vec<Consent>) {
        let mut inner = self.lock();
        if inner.live && inner.generation == ticket.0 && inner.vouched(Instant::now()) {
            inner
                .subjects
                .insert(subject.clone(), (consents.into(), ticket.1));
        }
    }

    /// The registry changed: forget everything, and refuse copies being read right now.
    pub fn invalidate(&self) {
        self.lock().forget();
    }

    /// Answers only until `until` (renewed by every heartbeat of a registered process). A vouch
    /// that lapsed before it was renewed has dropped the copy: the cache starts from nothing.
    pub fn vouch(&self, until: Instant) {
        let mut inner = self.lock();
        inner.vouched(Instant::now());
        inner.vouched_until = Some(until);
    }

    /// Starts (`true`: a subscription to the change feed now exists) or stops answering. Either
    /// way the copy is dropped: what happened while no subscription existed is unknown.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.live = live;
        inner.forget();
    }

    /// True while answering.
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// Subjects held now (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().subjects.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Category, Grantee, IsoDate, PartyId, PartyKind, Recipient};

    fn subject() -> Subject {
        Subject::new("131011", "0000100001").expect("valid sample subject")
    }

    fn consent(revoked: bool) -> Consent {
        Consent {
            id: "c-1".parse().expect("valid id"),
            subject: subject(),
            grantee: Grantee::Kind(PartyKind::Provider),
            categories: vec![Category::CarePlan],
            valid_from: IsoDate::parse("2025-04-01").expect("date"),
            valid_to: None,
            purpose: None,
            revoked_at: revoked.then(|| "2025-05-01T00:00:00Z".parse().expect("timestamp")),
        }
    }

    fn question() -> Question {
        Question {
            subject: subject(),
            recipient: Recipient {
                id: PartyId::parse("0300000005").expect("party id"),
                kind: PartyKind::Provider,
            },
            category: Category::CarePlan,
            purpose: None,
            on: IsoDate::parse("2025-06-01").expect("date"),
        }
    }

    fn live(ttl: Duration) -> ConsentCache {
        let c = ConsentCache::new(ttl);
        c.set_live(true);
        c
    }

    #[test]
    fn a_cache_without_a_feed_never_answers() {
        let c = ConsentCache::new(Duration::from_secs(60));
        assert_eq!(c.decide(&question()).unwrap_err(), None);
        c.put(Ticket(0, Instant::now()), &subject(), vec![consent(false)]);
        assert!(c.is_empty(), "nothing is kept while not live");
    }

    #[test]
    fn a_kept_copy_decides_like_the_registry() {
        let c = live(Duration::from_secs(60));
        let ticket = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(ticket, &subject(), vec![consent(false)]);
        assert!(c.decide(&question()).expect("answered").is_permit());
        let c = live(Duration::from_secs(60));
        let ticket = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(ticket, &subject(), vec![consent(true)]);
        assert!(!c.decide(&question()).expect("answered").is_permit());
    }

    #[test]
    fn a_change_during_a_read_drops_that_read() {
        let c = live(Duration::from_secs(60));
        let ticket = c.decide(&question()).unwrap_err().expect("a ticket");
        c.invalidate(); // a revoke announced while the registry was being read
        c.put(ticket, &subject(), vec![consent(false)]);
        assert!(c.is_empty());
        assert!(c.decide(&question()).is_err(), "asks the registry again");
    }

    #[test]
    fn a_change_or_a_lost_feed_forgets_everything() {
        let c = live(Duration::from_secs(60));
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(t, &subject(), vec![consent(false)]);
        c.invalidate();
        assert!(c.decide(&question()).is_err());
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(t, &subject(), vec![consent(false)]);
        c.set_live(false);
        assert_eq!(c.decide(&question()).unwrap_err(), None);
        c.set_live(true);
        assert!(c.is_empty(), "a new subscription starts from nothing");
    }

    #[test]
    fn a_copy_expires_ttl_after_its_read_began_not_after_it_was_kept() {
        let c = live(Duration::from_millis(200));
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        std::thread::sleep(Duration::from_millis(250)); // a slow read of the registry
        c.put(t, &subject(), vec![consent(false)]);
        assert!(
            c.decide(&question()).is_err(),
            "a read that began more than ttl ago is already stale"
        );
    }

    #[test]
    fn a_lapsed_vouch_stops_answers_and_a_renewed_one_starts_from_nothing() {
        let c = live(Duration::from_secs(60));
        c.vouch(Instant::now() + Duration::from_secs(60));
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(t, &subject(), vec![consent(false)]);
        assert!(c.decide(&question()).is_ok(), "answers while vouched for");
        // The heartbeat stopped (the process was paused): the vouch lapses unrenewed.
        c.vouch(Instant::now() + Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.decide(&question()).unwrap_err(), None, "no answer");
        c.vouch(Instant::now() + Duration::from_secs(60));
        assert!(c.is_empty(), "the copy from before the lapse is gone");
        // Lapsed and renewed without a decision in between: still gone.
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(t, &subject(), vec![consent(false)]);
        c.vouch(Instant::now() + Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(30));
        c.vouch(Instant::now() + Duration::from_secs(60));
        assert!(c.is_empty(), "a renewal after a lapse starts from nothing");
        assert!(c.decide(&question()).is_err());
    }

    #[test]
    fn copies_expire() {
        let c = live(Duration::ZERO);
        let t = c.decide(&question()).unwrap_err().expect("a ticket");
        c.put(t, &subject(), vec![consent(false)]);
        assert!(
            c.decide(&question()).is_err(),
            "an expired copy is read again"
        );
    }
}
