//! One chain in memory: a [`Checkpoint`] (the `seq` and `hash` of a chain's last event) seals the
//! next [`AuditDraft`] into an [`AuditEvent`], and an [`AuditChain`] keeps the events it appended.
//!
//! In: drafts and a [`ChainKey`]. Out: sealed events, each linking to the one before. The chains of
//! a data directory on disk, and their checkpoints in the store, are in `chains.rs`; checking a
//! chain is in `verify.rs`.

use serde::{Deserialize, Serialize};

use super::{
    AuditDraft, AuditEvent, AuditFilter, ChainKey, DraftError, SubjectHash, VerifyError,
    VerifyOptions, VerifyReport, verify_with,
};

/// `prev_hash` of the first event of a chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A point in a chain: the `seq` and `hash` of its last event, or genesis (`seq` 0, 64 zeros).
/// The next event gets `seq + 1` and `prev_hash = hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The seq of the last event (0 before the first).
    pub seq: u64,
    /// The hash of the last event ([`GENESIS_HASH`] before the first).
    pub hash: String,
}

impl Checkpoint {
    /// Before the first event of a chain.
    pub fn genesis() -> Self {
        Checkpoint {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }

    /// Just after `event`.
    pub fn after(event: &AuditEvent) -> Self {
        Checkpoint {
            seq: event.seq,
            hash: event.hash.clone(),
        }
    }

    /// Is this the start of a chain?
    pub fn is_genesis(&self) -> bool {
        self.seq == 0 && self.hash == GENESIS_HASH
    }

    /// The event that would follow this point, sealed with `key`, without moving anything: callers
    /// that must store the event first (see [`jsonl`](super::jsonl)) advance only once it is stored.
    pub fn seal(&self, draft: AuditDraft, key: &ChainKey) -> Result<AuditEvent, DraftError> {
        let seq = self
            .seq
            .checked_add(1)
            .ok_or(DraftError::SeqExhausted { last: self.seq })?;
        draft.check(seq)?;
        let mut event = AuditEvent {
            seq,
            at: draft.at.into_string(),
            hop: draft.hop,
            actor: draft.actor,
            party: draft.party,
            subject: draft.subject.map(SubjectHash::into_string),
            category: draft.category,
            document: draft.document,
            decision: draft.decision.map(|d| d.as_str().to_string()),
            reason: draft.reason,
            envelope_id: draft.envelope_id,
            purpose: draft.purpose,
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        event.hash = event.compute_hash(key);
        Ok(event)
    }
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint::genesis()
    }
}

/// An in-memory audit log: the chain's head plus every event appended. For tests, the embedded
/// default and tools; the durable store is [`JsonlAuditStore`](super::jsonl::JsonlAuditStore).
#[derive(Debug, Clone)]
pub struct AuditChain {
    key: ChainKey,
    start: Checkpoint,
    head: Checkpoint,
    events: Vec<AuditEvent>,
}

impl AuditChain {
    /// An empty chain from genesis, sealed with `key`.
    pub fn new(key: ChainKey) -> Self {
        AuditChain::resume(key, Checkpoint::genesis())
    }

    /// An empty chain continuing from `start` (the last event of an earlier log).
    pub fn resume(key: ChainKey, start: Checkpoint) -> Self {
        AuditChain {
            key,
            head: start.clone(),
            start,
            events: Vec::new(),
        }
    }

    /// Seal `draft` as the next event and keep it.
    pub fn append(&mut self, draft: AuditDraft) -> Result<AuditEvent, DraftError> {
        let event = self.head.seal(draft, &self.key)?;
        self.head = Checkpoint::after(&event);
        self.events.push(event.clone());
        Ok(event)
    }

    /// The point the next event will follow.
    pub fn head(&self) -> &Checkpoint {
        &self.head
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[AuditEvent] {
        &self.events
    }

    /// Verify the kept events from where this chain started.
    pub fn verify(&self) -> Result<VerifyReport, VerifyError> {
        verify_with(
            self.events.iter().cloned(),
            &self.key,
            &VerifyOptions {
                start: self.start.clone(),
                anchor: None,
            },
        )
    }

    /// The kept events that match `filter`, oldest first.
    pub fn query<'a>(&'a self, filter: &'a AuditFilter) -> impl Iterator<Item = &'a AuditEvent> {
        self.events.iter().filter(move |e| filter.matches(e))
    }

    /// The kept events, oldest first.
    pub fn into_events(self) -> Vec<AuditEvent> {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{chain_key, sample_chain, sample_draft};
    use super::super::verify;
    use super::*;

    #[test]
    fn appended_events_verify_from_genesis() {
        let chain = sample_chain(5);
        let events = chain.events();
        assert_eq!(events[0].seq, 1);
        assert_eq!(events[0].prev_hash, GENESIS_HASH);
        for pair in events.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        let report =
            verify(events.iter().cloned(), &chain_key()).expect("untampered chain verifies");
        assert_eq!(report.events, 5);
        assert_eq!(report.first_seq, Some(1));
        assert_eq!(report.head, Checkpoint::after(&events[4]));
        assert_eq!(chain.verify(), Ok(report));
    }

    #[test]
    fn resumed_chain_continues_from_its_checkpoint() {
        let first = sample_chain(2);
        let mut second = AuditChain::resume(chain_key(), first.head().clone());
        let event = second.append(sample_draft(9)).expect("valid");
        assert_eq!(event.seq, 3);
        assert_eq!(event.prev_hash, first.head().hash);
        assert_eq!(second.verify().map(|r| r.events), Ok(1));
    }

    #[test]
    fn full_chain_refuses_to_wrap() {
        let start = Checkpoint {
            seq: u64::MAX,
            hash: GENESIS_HASH.into(),
        };
        let err = start
            .seal(sample_draft(0), &chain_key())
            .expect_err("no seq left");
        assert_eq!(err, DraftError::SeqExhausted { last: u64::MAX });
    }
}
