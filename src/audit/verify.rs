//! Checking a chain: seqs 1, 2, 3… each linking to the one before and hashing to its stored hash
//! under the chain key, from genesis or a [`Checkpoint`], and up to an anchor if one is given.
//!
//! In: events, one at a time ([`Verifier`]) or as an iterator ([`verify`], [`verify_with`]). Out: a
//! [`VerifyReport`] with the chain's head, or the first break as a [`VerifyError`] naming its seq
//! and, for an edited row, which part was most likely changed ([`EditHint`]).

use std::cmp::Ordering;
use std::fmt;

use super::{AuditEvent, ChainKey, Checkpoint};

/// Where verification starts and what it must reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The point the first event must follow: genesis for a whole log, or the last event of the
    /// previous (rotated) file. From genesis, a first event with seq > 1 is a truncated head.
    pub start: Checkpoint,
    /// A head recorded earlier (e.g. a daily published [`VerifyReport::head`]): the log must contain
    /// an event with this seq and hash, which detects rows cut from the tail.
    pub anchor: Option<Checkpoint>,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events were checked.
    pub events: u64,
    /// The seq of the first event checked, if any.
    pub first_seq: Option<u64>,
    /// The chain's head after the last event: record it outside the log to detect a cut tail later.
    pub head: Checkpoint,
    /// Whether the anchor was found (always false without one).
    pub anchored: bool,
}

/// Which part of an event was most likely changed, judged by what its successor links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditHint {
    /// The successor links to the stored hash: a content field was changed after sealing.
    ContentChanged,
    /// The successor links to the recomputed hash: only the `hash` field was changed.
    HashFieldChanged,
    /// No successor to judge by (last row), or it links to neither.
    Unknown,
}

impl fmt::Display for EditHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EditHint::ContentChanged => {
                "a content field (at, hop, actor, party, subject, category, document, decision, reason, envelope_id) was changed after the row was sealed"
            }
            EditHint::HashFieldChanged => "its `hash` field was changed",
            EditHint::Unknown => "the row was changed",
        })
    }
}

/// The first break found in a chain. [`VerifyError::seq`] names the seq at which it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Verifying from genesis, the first row is not seq 1.
    #[error(
        "seq {expected}: the log starts at seq {found}, so seq {expected}..{found} are missing (truncated head); if the log was rotated, verify from the previous file's last seq and hash"
    )]
    TruncatedHead {
        /// The seq that should come first.
        expected: u64,
        /// The seq that came first.
        found: u64,
    },
    /// A row's seq is further on than the next expected one.
    #[error(
        "seq {expected}: found seq {found} instead, so seq {expected}..{found} were deleted or rows were reordered"
    )]
    SeqGap {
        /// The seq that should come here.
        expected: u64,
        /// The seq found here.
        found: u64,
    },
    /// A row's seq is not after the previous row's.
    #[error(
        "seq {expected}: found seq {found}, which does not follow seq {}; rows were reordered, duplicated or renumbered",
        .expected.saturating_sub(1)
    )]
    SeqNotIncreasing {
        /// The seq that should come here.
        expected: u64,
        /// The seq found here.
        found: u64,
    },
    /// A row does not link to its predecessor.
    #[error(
        "seq {seq}: prev_hash is {}… but the preceding hash is {}…; the row before was rewritten and re-hashed, or this row's prev_hash was changed",
        short(.found), short(.expected)
    )]
    BrokenLink {
        /// The seq of the row that does not link.
        seq: u64,
        /// The hash it should link to.
        expected: String,
        /// The prev_hash it carries.
        found: String,
    },
    /// A row's contents do not hash to its stored hash.
    #[error(
        "seq {seq}: stored hash {}… but its contents hash to {}…: {hint}",
        short(.stored), short(.computed)
    )]
    HashMismatch {
        /// The edited row.
        seq: u64,
        /// The hash it carries.
        stored: String,
        /// The hash its contents give.
        computed: String,
        /// Which part was likely changed.
        hint: EditHint,
    },
    /// The row at the anchor's seq is not the anchored one.
    #[error(
        "seq {seq}: hash is {}… but the anchor recorded {}…; the log was rewritten from here or earlier",
        short(.found), short(.expected)
    )]
    AnchorMismatch {
        /// The anchor's seq.
        seq: u64,
        /// The anchor's hash.
        expected: String,
        /// The hash found.
        found: String,
    },
    /// The log ends before the anchor.
    #[error(
        "seq {expected}: the log ends at seq {}, before the anchor at seq {anchor_seq}; rows were cut from the tail",
        .expected.saturating_sub(1)
    )]
    TruncatedTail {
        /// The first missing seq.
        expected: u64,
        /// The anchor's seq.
        anchor_seq: u64,
    },
}

impl VerifyError {
    /// The seq at which the chain breaks: the edited row, or the first missing or misplaced one.
    pub fn seq(&self) -> u64 {
        match self {
            VerifyError::TruncatedHead { expected, .. }
            | VerifyError::SeqGap { expected, .. }
            | VerifyError::SeqNotIncreasing { expected, .. }
            | VerifyError::TruncatedTail { expected, .. } => *expected,
            VerifyError::BrokenLink { seq, .. }
            | VerifyError::HashMismatch { seq, .. }
            | VerifyError::AnchorMismatch { seq, .. } => *seq,
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[derive(Debug, Clone)]
struct PendingMismatch {
    seq: u64,
    stored: String,
    computed: String,
}

/// Checks events one at a time, for stores that stream. Stop at the first error.
///
/// A hash mismatch is reported one event late (at the next [`Verifier::push`] or at
/// [`Verifier::finish`]) so that the successor's `prev_hash` can tell whether the content or the
/// `hash` field was changed.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: ChainKey,
    options: VerifyOptions,
    head: Checkpoint,
    events: u64,
    first_seq: Option<u64>,
    anchored: bool,
    pending: Option<PendingMismatch>,
}

impl Verifier {
    /// A verifier of the chain `key` seals, starting at `options.start`.
    pub fn new(key: ChainKey, options: VerifyOptions) -> Self {
        Verifier {
            key,
            head: options.start.clone(),
            options,
            events: 0,
            first_seq: None,
            anchored: false,
            pending: None,
        }
    }

    /// Check the next event.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), VerifyError> {
        if let Some(pending) = self.pending.take() {
            let hint = if event.prev_hash == pending.computed {
                EditHint::HashFieldChanged
            } else if event.prev_hash == pending.stored {
                EditHint::ContentChanged
            } else {
                EditHint::Unknown
            };
            return Err(mismatch(pending, hint));
        }
        let expected = self.head.seq.saturating_add(1);
        match event.seq.cmp(&expected) {
            Ordering::Equal => {}
            Ordering::Greater if self.events == 0 && self.options.start.is_genesis() => {
                return Err(VerifyError::TruncatedHead {
                    expected,
                    found: event.seq,
                });
            }
            Ordering::Greater => {
                return Err(VerifyError::SeqGap {
                    expected,
                    found: event.seq,
                });
            }
            Ordering::Less => {
                return Err(VerifyError::SeqNotIncreasing {
                    expected,
                    found: event.seq,
                });
            }
        }
        if event.prev_hash != self.head.hash {
            return Err(VerifyError::BrokenLink {
                seq: event.seq,
                expected: self.head.hash.clone(),
                found: event.prev_hash.clone(),
            });
        }
        let computed = event.compute_hash(&self.key);
        if computed != event.hash {
            self.pending = Some(PendingMismatch {
                seq: event.seq,
                stored: event.hash.clone(),
                computed,
            });
            return Ok(());
        }
        if let Some(anchor) = &self.options.anchor
            && anchor.seq == event.seq
        {
            if anchor.hash != event.hash {
                return Err(VerifyError::AnchorMismatch {
                    seq: event.seq,
                    expected: anchor.hash.clone(),
                    found: event.hash.clone(),
                });
            }
            self.anchored = true;
        }
        self.first_seq.get_or_insert(event.seq);
        self.events += 1;
        self.head = Checkpoint::after(event);
        Ok(())
    }

    /// End of the events: report, or the last row's mismatch, or a tail cut before the anchor.
    pub fn finish(self) -> Result<VerifyReport, VerifyError> {
        if let Some(pending) = self.pending {
            return Err(mismatch(pending, EditHint::Unknown));
        }
        if let Some(anchor) = &self.options.anchor
            && !self.anchored
            && anchor.seq > self.options.start.seq
        {
            return Err(VerifyError::TruncatedTail {
                expected: self.head.seq.saturating_add(1),
                anchor_seq: anchor.seq,
            });
        }
        Ok(VerifyReport {
            events: self.events,
            first_seq: self.first_seq,
            head: self.head,
            anchored: self.anchored,
        })
    }
}

fn mismatch(pending: PendingMismatch, hint: EditHint) -> VerifyError {
    VerifyError::HashMismatch {
        seq: pending.seq,
        stored: pending.stored,
        computed: pending.computed,
        hint,
    }
}

/// Verify a whole log of the chain `key` seals, from genesis: seqs 1, 2, 3… each linking to the
/// one before, each hashing to its stored hash.
pub fn verify(
    events: impl Iterator<Item = AuditEvent>,
    key: &ChainKey,
) -> Result<VerifyReport, VerifyError> {
    verify_with(events, key, &VerifyOptions::default())
}

/// Verify from a checkpoint and/or up to an anchor.
pub fn verify_with(
    events: impl Iterator<Item = AuditEvent>,
    key: &ChainKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let mut verifier = Verifier::new(key.clone(), options.clone());
    for event in events {
        verifier.push(&event)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::Sha256;

    use super::super::tests::{chain_key, hasher, sample_chain, sample_draft, ts};
    use super::super::{AuditChain, AuditDraft, AuditKey, Decision, GENESIS_HASH, Hop, hex};
    use super::*;

    #[test]
    fn empty_log_verifies_to_genesis() {
        let report = verify(std::iter::empty(), &chain_key()).expect("empty log verifies");
        assert_eq!(report.events, 0);
        assert!(report.head.is_genesis());
    }

    #[test]
    fn content_edit_names_the_seq_and_says_content_changed() {
        let mut events = sample_chain(4).into_events();
        events[1].actor = "someone-else".into();
        let err = verify(events.into_iter(), &chain_key()).expect_err("edit is detected");
        assert_eq!(err.seq(), 2);
        assert!(matches!(
            err,
            VerifyError::HashMismatch {
                hint: EditHint::ContentChanged,
                ..
            }
        ));
        assert!(err.to_string().starts_with("seq 2: "), "{err}");
    }

    #[test]
    fn hash_field_edit_is_told_apart_from_content_edit() {
        let mut events = sample_chain(3).into_events();
        events[0].hash = GENESIS_HASH.into();
        let err = verify(events.into_iter(), &chain_key()).expect_err("edit is detected");
        assert!(matches!(
            err,
            VerifyError::HashMismatch {
                seq: 1,
                hint: EditHint::HashFieldChanged,
                ..
            }
        ));
    }

    #[test]
    fn edit_of_the_last_row_is_reported_at_finish() {
        let mut events = sample_chain(3).into_events();
        events[2].reason = Some("other".into());
        let err = verify(events.into_iter(), &chain_key()).expect_err("edit is detected");
        assert!(matches!(
            err,
            VerifyError::HashMismatch {
                seq: 3,
                hint: EditHint::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn rewritten_and_rehashed_row_breaks_the_next_link() {
        let mut events = sample_chain(3).into_events();
        events[1].decision = Some("permit".into());
        events[1].hash = events[1].compute_hash(&chain_key());
        let err = verify(events.into_iter(), &chain_key()).expect_err("rewrite is detected");
        assert!(
            matches!(err, VerifyError::BrokenLink { seq: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_row_edited_and_the_chain_resealed_without_the_key_is_detected_at_that_row() {
        // What passed as intact with the unkeyed chain: edit a row, then hash it and every later
        // row again (all one can do without the key) so that each links to the one before.
        let forge = |mut events: Vec<AuditEvent>| {
            events[2].decision = Some("permit".into());
            let mut prev = events[1].hash.clone();
            for event in &mut events[2..] {
                event.prev_hash = prev;
                event.hash = event.compute_hash(&ChainKey::unkeyed());
                prev = event.hash.clone();
            }
            events
        };
        let mut unkeyed = AuditChain::new(ChainKey::unkeyed());
        for i in 0..5 {
            unkeyed.append(sample_draft(i)).expect("valid");
        }
        let forged = forge(unkeyed.into_events());
        assert!(verify(forged.into_iter(), &ChainKey::unkeyed()).is_ok());
        let forged = forge(sample_chain(5).into_events());
        let err = verify(forged.into_iter(), &chain_key()).expect_err("resealing is detected");
        assert_eq!(err.seq(), 3, "{err}");
        // Another writer's key does not verify the hub's chain either.
        let cli = AuditKey::new(b"audit key: thirty-two bytes long")
            .expect("long enough")
            .chain("cli");
        let err = verify(sample_chain(2).into_events().into_iter(), &cli).expect_err("cli");
        assert_eq!(err.seq(), 1);
    }

    #[test]
    fn deleted_middle_row_is_a_seq_gap() {
        let mut events = sample_chain(4).into_events();
        events.remove(2);
        let err = verify(events.into_iter(), &chain_key()).expect_err("deletion is detected");
        assert_eq!(
            err,
            VerifyError::SeqGap {
                expected: 3,
                found: 4
            }
        );
    }

    #[test]
    fn deleted_first_row_is_a_truncated_head_unless_verified_from_a_checkpoint() {
        let events = sample_chain(4).into_events();
        let err =
            verify(events[1..].iter().cloned(), &chain_key()).expect_err("truncation is detected");
        assert_eq!(
            err,
            VerifyError::TruncatedHead {
                expected: 1,
                found: 2
            }
        );
        let options = VerifyOptions {
            start: Checkpoint::after(&events[0]),
            anchor: None,
        };
        let report =
            verify_with(events[1..].iter().cloned(), &chain_key(), &options).expect("rotated file");
        assert_eq!(report.events, 3);
        assert_eq!(report.first_seq, Some(2));
    }

    #[test]
    fn wrong_checkpoint_is_a_broken_link() {
        let events = sample_chain(3).into_events();
        let options = VerifyOptions {
            start: Checkpoint {
                seq: 1,
                hash: GENESIS_HASH.into(),
            },
            anchor: None,
        };
        let err = verify_with(events[1..].iter().cloned(), &chain_key(), &options)
            .expect_err("wrong start");
        assert!(matches!(err, VerifyError::BrokenLink { seq: 2, .. }));
    }

    #[test]
    fn swapped_rows_are_detected() {
        let mut events = sample_chain(4).into_events();
        events.swap(1, 2);
        let err = verify(events.into_iter(), &chain_key()).expect_err("swap is detected");
        assert_eq!(err.seq(), 2);
    }

    #[test]
    fn duplicated_row_is_not_increasing() {
        let mut events = sample_chain(3).into_events();
        events.insert(2, events[1].clone());
        let err = verify(events.into_iter(), &chain_key()).expect_err("duplicate is detected");
        assert_eq!(
            err,
            VerifyError::SeqNotIncreasing {
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn cut_tail_is_detected_only_with_an_anchor() {
        let events = sample_chain(5).into_events();
        let anchor = Checkpoint::after(&events[4]);
        assert!(verify(events[..3].iter().cloned(), &chain_key()).is_ok());
        let options = VerifyOptions {
            start: Checkpoint::genesis(),
            anchor: Some(anchor.clone()),
        };
        let err =
            verify_with(events[..3].iter().cloned(), &chain_key(), &options).expect_err("cut tail");
        assert_eq!(
            err,
            VerifyError::TruncatedTail {
                expected: 4,
                anchor_seq: 5
            }
        );
        let report =
            verify_with(events.iter().cloned(), &chain_key(), &options).expect("whole log");
        assert!(report.anchored);
    }

    #[test]
    fn rewritten_log_fails_its_anchor() {
        let events = sample_chain(3).into_events();
        let mut other = AuditChain::new(chain_key());
        other.append(sample_draft(7)).expect("valid");
        let options = VerifyOptions {
            start: Checkpoint::genesis(),
            anchor: Some(Checkpoint::after(&events[0])),
        };
        let err = verify_with(other.into_events().into_iter(), &chain_key(), &options)
            .expect_err("rewritten");
        assert!(matches!(err, VerifyError::AnchorMismatch { seq: 1, .. }));
    }

    // ----- property tests: every single tamper is detected, at the right seq -----

    fn arb_opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-z0-9:@-]{1,12}")
    }

    prop_compose! {
        fn arb_draft()(
            hop in 0..Hop::ALL.len(),
            decision in proptest::option::of(0..Decision::ALL.len()),
            second in 0u64..86_400,
            actor in "[a-z:-]{1,12}",
            party in arb_opt_text(),
            subject in proptest::option::of("[0-9]{10}"),
            category in arb_opt_text(),
            document in arb_opt_text(),
            reason in arb_opt_text(),
            envelope_id in arb_opt_text(),
            purpose in arb_opt_text(),
        ) -> AuditDraft {
            let at = ts(&format!(
                "2025-04-01T{:02}:{:02}:{:02}Z",
                second / 3600,
                (second / 60) % 60,
                second % 60
            ));
            AuditDraft {
                at,
                hop: Hop::ALL[hop],
                actor,
                party,
                subject: subject.map(|s| hasher().hash("131011", &s)),
                category,
                document,
                decision: decision.map(|d| Decision::ALL[d]),
                reason,
                envelope_id,
                purpose,
            }
        }
    }

    fn build(drafts: Vec<AuditDraft>) -> Vec<AuditEvent> {
        let mut chain = AuditChain::new(chain_key());
        for draft in drafts {
            chain.append(draft).expect("generated drafts are valid");
        }
        chain.into_events()
    }

    /// Change field number `field` of `event` to a value that differs from the current one.
    fn edit(event: &mut AuditEvent, field: usize, salt: &str) {
        fn other(value: &Option<String>, salt: &str) -> Option<String> {
            match value {
                None => Some(format!("x{salt}")),
                Some(v) if salt.len().is_multiple_of(2) => Some(format!("{v}{salt}x")),
                Some(_) => None,
            }
        }
        match field {
            0 => event.seq = event.seq.wrapping_add(1 + salt.len() as u64),
            1 => event.at = format!("{}x", event.at),
            2 => {
                let i = Hop::ALL.iter().position(|h| *h == event.hop).unwrap_or(0);
                event.hop = Hop::ALL[(i + 1 + salt.len() % 5) % Hop::ALL.len()];
            }
            3 => event.actor.push_str(&format!("{salt}x")),
            4 => event.party = other(&event.party, salt),
            5 => event.subject = other(&event.subject, salt),
            6 => event.category = other(&event.category, salt),
            7 => event.document = other(&event.document, salt),
            8 => event.decision = other(&event.decision, salt),
            9 => event.reason = other(&event.reason, salt),
            10 => event.envelope_id = other(&event.envelope_id, salt),
            12 => event.purpose = other(&event.purpose, salt),
            11 => event.prev_hash = format!("{}{salt}", &event.prev_hash[1..]).replace('0', "1"),
            _ => {
                event.hash = hex(&<Sha256 as sha2::Digest>::digest(format!(
                    "{}{salt}",
                    event.hash
                )))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn untampered_chains_always_verify(drafts in proptest::collection::vec(arb_draft(), 0..24)) {
            let n = drafts.len() as u64;
            let events = build(drafts);
            let report = verify(events.iter().cloned(), &chain_key());
            prop_assert!(report.is_ok(), "{:?}", report);
            prop_assert_eq!(report.map(|r| r.events), Ok(n));
        }

        #[test]
        fn any_single_field_edit_is_detected_at_its_seq(
            drafts in proptest::collection::vec(arb_draft(), 1..16),
            row in any::<prop::sample::Index>(),
            field in 0usize..14,
            salt in "[a-z]{0,3}",
        ) {
            let mut events = build(drafts);
            let i = row.index(events.len());
            let before = events[i].clone();
            edit(&mut events[i], field, &salt);
            prop_assume!(events[i] != before);
            let err = verify(events.iter().cloned(), &chain_key());
            prop_assert!(err.is_err(), "edit of field {} at seq {} went unnoticed", field, i + 1);
            prop_assert_eq!(err.map_err(|e| e.seq()).err(), Some(i as u64 + 1));
        }

        #[test]
        fn any_deletion_is_detected_at_the_missing_seq(
            drafts in proptest::collection::vec(arb_draft(), 1..16),
            row in any::<prop::sample::Index>(),
        ) {
            let mut events = build(drafts);
            let anchor = events.last().map(Checkpoint::after);
            let i = row.index(events.len());
            events.remove(i);
            let options = VerifyOptions { start: Checkpoint::genesis(), anchor };
            let err = verify_with(events.iter().cloned(), &chain_key(), &options);
            prop_assert_eq!(err.map_err(|e| e.seq()).err(), Some(i as u64 + 1));
        }

        #[test]
        fn any_swap_is_detected_at_the_first_moved_seq(
            drafts in proptest::collection::vec(arb_draft(), 2..16),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let mut events = build(drafts);
            let (i, j) = (a.index(events.len()), b.index(events.len()));
            prop_assume!(i != j);
            events.swap(i, j);
            let err = verify(events.iter().cloned(), &chain_key());
            prop_assert_eq!(err.map_err(|e| e.seq()).err(), Some(i.min(j) as u64 + 1));
        }
    }
}
