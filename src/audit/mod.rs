//! The audit log: one event per hop and per consent decision, linked into a keyed hash chain so
//! that any later edit, deletion or reordering of a row is detected by [`verify`], and re-sealing
//! the rows needs the key.
//!
//! In: an [`AuditDraft`] (what happened, when, by whom, about which envelope and which subject hash).
//! Out: a sealed [`AuditEvent`] carrying `seq`, `prev_hash` and `hash`; a [`VerifyReport`] or a
//! [`VerifyError`] naming the first broken `seq`; the events that match an [`AuditFilter`].
//! Storage lives next door ([`jsonl`]); the key ([`key`]); the chains of a data directory and
//! their checkpoints in the store ([`chains`]); the FHIR `AuditEvent` view too ([`fhir`]).
//! This file only names the parts and re-exports them: the event model (`event.rs`), the subject
//! hash (`subject.rs`), sealing and the in-memory chain (`chain.rs`), verification (`verify.rs`)
//! and the filter (`query.rs`); an event's time is the calendar's [`Timestamp`].
//!
//! This room must never hold message bodies or personal data. An event carries ids (envelope, party,
//! document kind), codes (hop, decision, reason code) and a *keyed* hash of the subject, nothing more:
//! [`SubjectHash`] can only be made by [`SubjectHasher`] or parsed from its 64-hex form, so a raw
//! 保険者番号/被保険者番号 cannot be passed where a subject is expected, and errors here never echo a
//! rejected value.
//!
//! ## The chain
//!
//! `hash = hex(HMAC-SHA256(chain key, prev_hash || canonical))`, where the chain key is derived
//! from the audit key for one writer ([`key::ChainKey`]; the `hub` and the `cli` each have a chain
//! of their own), `prev_hash` is the previous event's `hash` as its 64 ASCII hex characters (for
//! the first event: [`GENESIS_HASH`], 64 zeros), and `canonical` is the compact `serde_json`
//! serialisation of the event *without* `hash`, with its fields in this fixed order, absent options
//! written as `null`:
//!
//! `seq, at, hop, actor, party, subject, category, document, decision, reason, envelope_id, prev_hash`
//!
//! with one exception: `purpose` (the purpose a consent question stated) is written between
//! `envelope_id` and `prev_hash` only when the event has one, so every event without it (all
//! events written before it existed) hashes exactly as before.
//!
//! That order is part of the log format: changing it (or adding a field that is always written)
//! makes a new chain format and needs a new genesis. `seq` starts at 1 and grows by one per event. A chain can also start from a
//! [`Checkpoint`] (the `seq` and `hash` of the last event of an earlier, rotated file).
//!
//! Logs written before the chain was keyed used `hash = hex(SHA-256(prev_hash || canonical))`
//! ([`key::ChainKey::unkeyed`]); they can still be read and checked, and `serve` closes such a log
//! and starts a keyed chain whose first event records its last seq and hash
//! ([`chains::ChainNotice::AfterUnkeyed`]).
//!
//! What a chain alone cannot show is a cut *tail* (the newest rows removed): the writers record
//! their head in the store from time to time ([`chains`]), and verification takes it as an
//! [`VerifyOptions::anchor`].

pub mod chains;
pub mod fhir;
pub mod jsonl;
pub mod key;

pub use key::{AuditKey, AuditKeyError, ChainKey};
mod chain;
mod event;
mod query;
mod subject;
mod verify;

pub use crate::calendar::{Timestamp, TimestampError};
pub use chain::{AuditChain, Checkpoint, GENESIS_HASH};
pub use event::{
    AuditDraft, AuditEvent, Decision, DraftError, Hop, MAX_ID_BYTES, MAX_REASON_BYTES, UnknownCode,
};
pub use query::{AuditFilter, query};
pub use subject::{
    MIN_SUBJECT_KEY_BYTES, SubjectHash, SubjectHashError, SubjectHasher, SubjectKeyError,
};
pub use verify::{
    EditHint, Verifier, VerifyError, VerifyOptions, VerifyReport, verify, verify_with,
};

/// Lowercase hex of `bytes`: the form of every hash in the log (subject hashes, chain hashes).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("test timestamp is valid")
    }

    /// A fresh directory under the system temp dir, removed when dropped (the audit files'
    /// tests in jsonl.rs and chains.rs).
    pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

    impl Scratch {
        pub(crate) fn new(name: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "kaigo-audit-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir is writable");
            Scratch(dir)
        }

        pub(crate) fn file(&self, name: &str) -> std::path::PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The hub's chain under a fixed test key.
    pub(crate) fn chain_key() -> ChainKey {
        AuditKey::new(b"audit key: thirty-two bytes long")
            .expect("key is long enough")
            .chain("hub")
    }

    pub(crate) fn hasher() -> SubjectHasher {
        SubjectHasher::new(b"test key: thirty-two bytes long!").expect("key is long enough")
    }

    pub(crate) fn sample_draft(i: u64) -> AuditDraft {
        let hops = Hop::ALL;
        let decisions = Decision::ALL;
        let n = usize::try_from(i).unwrap_or(0);
        AuditDraft::new(
            ts(&format!(
                "2025-04-01T09:{:02}:{:02}Z",
                (i / 60) % 60,
                i % 60
            )),
            hops[n % hops.len()],
            "hub:translate",
        )
        .party(format!("party-{}", i % 3))
        .subject(hasher().hash("131011", &format!("{:010}", i % 4)))
        .category("certification")
        .document("InsuranceCard@1")
        .decision(decisions[n % decisions.len()])
        .reason("consent-123")
        .envelope_id(format!("env-{}", i / 2))
    }

    pub(crate) fn sample_chain(n: u64) -> AuditChain {
        let mut chain = AuditChain::new(chain_key());
        for i in 0..n {
            chain
                .append(sample_draft(i))
                .expect("sample draft is valid");
        }
        chain
    }
}
