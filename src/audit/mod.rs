//! The audit log: one event per hop and per consent decision, linked into a keyed hash chain so
//! that any later edit, deletion or reordering of a row is detected by [`verify`], and re-sealing
//! the rows needs the key.
//!
//! In: an [`AuditDraft`] (what happened, when, by whom, about which envelope and which subject hash).
//! Out: a sealed [`AuditEvent`] carrying `seq`, `prev_hash` and `hash`; a [`VerifyReport`] or a
//! [`VerifyError`] naming the first broken `seq`; the events that match an [`AuditFilter`].
//! Storage lives next door ([`jsonl`]); the key ([`key`]); the chains of a data directory and
//! their checkpoints in the store ([`chains`]); the FHIR `AuditEvent` view too ([`fhir`]).
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
//! That order is part of the log format: changing it (or adding a field) makes a new chain format and
//! needs a new genesis. `seq` starts at 1 and grows by one per event. A chain can also start from a
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

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `prev_hash` of the first event of a chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest accepted id-like field (`actor`, `party`, `category`, `document`, `envelope_id`), in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Longest accepted `reason`, in bytes. A reason is a code (`unknown-subject`, `consent-revoked`),
/// not an error message: error messages may quote field values, and field values are personal data.
pub const MAX_REASON_BYTES: usize = 256;

// ---------------------------------------------------------------------------------------------
// Event model
// ---------------------------------------------------------------------------------------------

/// Where in the hub the event happened (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hop {
    /// A source received bytes from a party (consent #1 is audited as `consent`).
    Ingress,
    /// The translate hop mapped a message to canonical document(s).
    Translate,
    /// The deliver hop sent a document to one recipient.
    Deliver,
    /// A consent decision, at any of the three points.
    Consent,
    /// An operator re-drove a dead-lettered or quarantined message.
    Replay,
    /// An administrative act: consent registered or revoked, mapping reloaded, key rotated.
    Admin,
}

impl Hop {
    /// Every hop, in declaration order.
    pub const ALL: [Hop; 6] = [
        Hop::Ingress,
        Hop::Translate,
        Hop::Deliver,
        Hop::Consent,
        Hop::Replay,
        Hop::Admin,
    ];

    /// The wire name (`ingress`, `translate`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Ingress => "ingress",
            Hop::Translate => "translate",
            Hop::Deliver => "deliver",
            Hop::Consent => "consent",
            Hop::Replay => "replay",
            Hop::Admin => "admin",
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Hop {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hop::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| UnknownCode::new("hop", s, Hop::ALL.map(Hop::as_str).as_slice()))
    }
}

/// The outcome recorded by an event: a consent decision or the fate of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Consent allows it (the consent id goes in `reason`).
    Permit,
    /// Consent refuses it (the reason code goes in `reason`).
    Deny,
    /// The consent registry could not answer; retried later, never treated as permit.
    Indeterminate,
    /// A source accepted the message (the sender was acknowledged).
    Accepted,
    /// A source refused the message at once (`ACK` AE/AR, `OperationOutcome`, reject).
    Rejected,
    /// A recipient confirmed receipt.
    Delivered,
    /// The message went to the dead-letter queue (could not be parsed, mapped or delivered).
    Dead,
    /// The message went to quarantine (consent denied, subject unknown).
    Quarantined,
    /// A recipient's sink failed; its copy waits to be tried again (the attempt and the error
    /// kind go in `reason`).
    Retrying,
    /// A parked copy was dropped after its retention (`quarantine_keep_days`; the reason it was
    /// parked for goes in `reason`).
    Expired,
}

impl Decision {
    /// Every decision, in declaration order.
    pub const ALL: [Decision; 10] = [
        Decision::Permit,
        Decision::Deny,
        Decision::Indeterminate,
        Decision::Accepted,
        Decision::Rejected,
        Decision::Delivered,
        Decision::Dead,
        Decision::Quarantined,
        Decision::Retrying,
        Decision::Expired,
    ];

    /// The wire name (`permit`, `deny`, …), as stored in [`AuditEvent::decision`].
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Permit => "permit",
            Decision::Deny => "deny",
            Decision::Indeterminate => "indeterminate",
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
            Decision::Delivered => "delivered",
            Decision::Dead => "dead",
            Decision::Quarantined => "quarantined",
            Decision::Retrying => "retrying",
            Decision::Expired => "expired",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                UnknownCode::new(
                    "decision",
                    s,
                    Decision::ALL.map(Decision::as_str).as_slice(),
                )
            })
    }
}

/// A code that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a known {kind}; expected one of: {expected}")]
pub struct UnknownCode {
    /// What kind of code (`hop`, `decision`).
    pub kind: &'static str,
    /// The value given (codes are not personal data).
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: String,
}

impl UnknownCode {
    fn new(kind: &'static str, value: &str, expected: &[&str]) -> Self {
        UnknownCode {
            kind,
            value: value.chars().take(MAX_ID_BYTES).collect(),
            expected: expected.join(", "),
        }
    }
}

/// One sealed row of the audit log.
///
/// The field order here is the order of the stored JSON line; the order that is *hashed* is the one
/// in the module documentation (the same order, without `hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in the chain, from 1, one more than the previous event's.
    pub seq: u64,
    /// When it happened: RFC 3339 in UTC (`2025-04-01T09:30:00.123Z`), given by the caller.
    pub at: String,
    /// Where in the hub.
    pub hop: Hop,
    /// Who acted: a party id or a hub component (`hub:deliver`).
    pub actor: String,
    /// The counterpart party, if any (the recipient at `deliver`).
    pub party: Option<String>,
    /// The subject as a keyed hash ([`SubjectHasher`]), never the raw 保険者番号/被保険者番号.
    pub subject: Option<String>,
    /// The platform category (`certification`, `claims`, …).
    pub category: Option<String>,
    /// The document kind (`InsuranceCard@1`), never its content.
    pub document: Option<String>,
    /// `permit|deny|indeterminate|accepted|rejected|delivered|dead|quarantined` ([`Decision`]).
    pub decision: Option<String>,
    /// A reason code or consent id; never an error message that could quote data.
    pub reason: Option<String>,
    /// The envelope id (AMQP `message_id`), stable across hops and retries.
    pub envelope_id: Option<String>,
    /// The previous event's `hash` (hex), or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// `hex(HMAC-SHA256(chain key, prev_hash || canonical))`, see the module documentation.
    pub hash: String,
}

/// The bytes that are hashed: every field but `hash`, in the documented fixed order.
#[derive(Serialize)]
struct CanonicalEvent<'a> {
    seq: u64,
    at: &'a str,
    hop: Hop,
    actor: &'a str,
    party: Option<&'a str>,
    subject: Option<&'a str>,
    category: Option<&'a str>,
    document: Option<&'a str>,
    decision: Option<&'a str>,
    reason: Option<&'a str>,
    envelope_id: Option<&'a str>,
    prev_hash: &'a str,
}

impl AuditEvent {
    /// The canonical bytes of this event (without `hash`), as hashed into the chain.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let canonical = CanonicalEvent {
            seq: self.seq,
            at: &self.at,
            hop: self.hop,
            actor: &self.actor,
            party: self.party.as_deref(),
            subject: self.subject.as_deref(),
            category: self.category.as_deref(),
            document: self.document.as_deref(),
            decision: self.decision.as_deref(),
            reason: self.reason.as_deref(),
            envelope_id: self.envelope_id.as_deref(),
            prev_hash: &self.prev_hash,
        };
        serde_json::to_vec(&canonical)
            .expect("a struct of strings, options and an integer always serialises")
    }

    /// The hash this event should carry in the chain `key` seals, recomputed from its contents
    /// and `prev_hash`.
    pub fn compute_hash(&self, key: &ChainKey) -> String {
        key.seal(&self.prev_hash, &self.canonical_bytes())
    }
}

/// What a caller knows when something happens; [`Checkpoint::seal`] / [`AuditChain::append`] add
/// `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// When it happened (UTC).
    pub at: Timestamp,
    /// Where in the hub.
    pub hop: Hop,
    /// Who acted: a party id or a hub component.
    pub actor: String,
    /// The counterpart party.
    pub party: Option<String>,
    /// The subject's keyed hash.
    pub subject: Option<SubjectHash>,
    /// The platform category.
    pub category: Option<String>,
    /// The document kind.
    pub document: Option<String>,
    /// The decision or fate.
    pub decision: Option<Decision>,
    /// A reason code or consent id (at most [`MAX_REASON_BYTES`]).
    pub reason: Option<String>,
    /// The envelope id.
    pub envelope_id: Option<String>,
}

impl AuditDraft {
    /// A draft with the three required facts; add the rest with the builder methods.
    pub fn new(at: Timestamp, hop: Hop, actor: impl Into<String>) -> Self {
        AuditDraft {
            at,
            hop,
            actor: actor.into(),
            party: None,
            subject: None,
            category: None,
            document: None,
            decision: None,
            reason: None,
            envelope_id: None,
        }
    }

    /// Set the counterpart party.
    pub fn party(mut self, party: impl Into<String>) -> Self {
        self.party = Some(party.into());
        self
    }

    /// Set the subject's keyed hash.
    pub fn subject(mut self, subject: SubjectHash) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Set the platform category.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// Set the document kind.
    pub fn document(mut self, document: impl Into<String>) -> Self {
        self.document = Some(document.into());
        self
    }

    /// Set the decision.
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Set the reason code or consent id.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Set the envelope id.
    pub fn envelope_id(mut self, envelope_id: impl Into<String>) -> Self {
        self.envelope_id = Some(envelope_id.into());
        self
    }

    fn check(&self, seq: u64) -> Result<(), DraftError> {
        check_text(seq, "actor", Some(&self.actor), MAX_ID_BYTES)?;
        check_text(seq, "party", self.party.as_deref(), MAX_ID_BYTES)?;
        check_text(seq, "category", self.category.as_deref(), MAX_ID_BYTES)?;
        check_text(seq, "document", self.document.as_deref(), MAX_ID_BYTES)?;
        check_text(seq, "reason", self.reason.as_deref(), MAX_REASON_BYTES)?;
        check_text(
            seq,
            "envelope_id",
            self.envelope_id.as_deref(),
            MAX_ID_BYTES,
        )?;
        Ok(())
    }
}

fn check_text(
    seq: u64,
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<(), DraftError> {
    let Some(value) = value else { return Ok(()) };
    let problem = if value.is_empty() {
        "is empty (leave it out instead)".to_string()
    } else if value.len() > max {
        format!(
            "is {} bytes, more than {max}: it must be an id or a code, not a message or its content",
            value.len()
        )
    } else if value.chars().any(char::is_control) {
        "contains a control character".to_string()
    } else {
        return Ok(());
    };
    Err(DraftError::Field {
        seq,
        field,
        problem,
    })
}

/// A draft that cannot become an event. Never echoes the rejected value: it may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// A field has the wrong shape.
    #[error("audit event seq {seq}: field `{field}` {problem}")]
    Field {
        /// The seq the event would have had.
        seq: u64,
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The chain has reached `u64::MAX`.
    #[error("audit chain is full after seq {last}: start a new chain")]
    SeqExhausted {
        /// The last seq.
        last: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// An RFC 3339 instant in UTC (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`), kept as given and ordered by the
/// instant it names (so `…:00.5Z` sorts after `…:00Z`, which plain string order gets wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    text: String,
    key: (u16, u8, u8, u8, u8, u8, u32),
}

impl Timestamp {
    /// Parse `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`; uppercase `T` and `Z` only, so one instant has one
    /// spelling per precision and the value is a valid FHIR `instant`.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let err = |expected: &'static str| TimestampError {
            value: text.chars().take(40).collect(),
            expected,
        };
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(err("YYYY-MM-DDTHH:MM:SSZ (at least 20 characters)"));
        }
        let num = |range: std::ops::Range<usize>, what: &'static str| -> Result<u32, _> {
            let digits = &b[range];
            if digits.iter().all(u8::is_ascii_digit) {
                Ok(digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
            } else {
                Err(err(what))
            }
        };
        let year = num(0..4, "a 4-digit year")?;
        let month = num(5..7, "a 2-digit month")?;
        let day = num(8..10, "a 2-digit day")?;
        let hour = num(11..13, "a 2-digit hour")?;
        let minute = num(14..16, "a 2-digit minute")?;
        let second = num(17..19, "2-digit seconds")?;
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(err("YYYY-MM-DDTHH:MM:SS with `-`, `T` and `:`"));
        }
        if year == 0 || !(1..=12).contains(&month) {
            return Err(err("a year from 0001 and a month 01-12"));
        }
        if day == 0 || day > crate::calendar::days_in_month(i64::from(year), month) {
            return Err(err("a day that exists in that month"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("a time from 00:00:00 to 23:59:60"));
        }
        let rest = &b[19..];
        let (fraction, zone) = match rest.first() {
            Some(b'.') => {
                let digits = rest[1..].iter().take_while(|d| d.is_ascii_digit()).count();
                if digits == 0 || digits > 9 {
                    return Err(err("1 to 9 digits of fraction after `.`"));
                }
                let mut nanos = num(20..20 + digits, "fraction digits")?;
                for _ in digits..9 {
                    nanos *= 10;
                }
                (nanos, &rest[1 + digits..])
            }
            _ => (0, rest),
        };
        if zone != b"Z" {
            return Err(err(
                "UTC, written as a final `Z` (convert offsets before auditing)",
            ));
        }
        // Each component is range-checked above, so these narrowings cannot truncate.
        let key = (
            year as u16,
            month as u8,
            day as u8,
            hour as u8,
            minute as u8,
            second as u8,
            fraction,
        );
        Ok(Timestamp {
            text: text.to_string(),
            key,
        })
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

/// A time that is not an RFC 3339 UTC instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an RFC 3339 UTC time: expected {expected}, e.g. 2025-04-01T09:30:00Z")]
pub struct TimestampError {
    /// The value given (first 40 characters).
    pub value: String,
    /// What was expected at the first point of difference.
    pub expected: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Subject hashing
// ---------------------------------------------------------------------------------------------

/// Shortest accepted [`SubjectHasher`] key, in bytes (128 bits). Use 32 random bytes.
pub const MIN_SUBJECT_KEY_BYTES: usize = 16;

/// Turns 保険者番号 + 被保険者番号 into the only form of a subject the audit log accepts.
///
/// Why keyed: a 被保険者番号 is 10 digits and a 保険者番号 6, so there are at most 10^16 subjects and
/// far fewer real ones (insurer numbers are public, insured numbers dense). A plain SHA-256 of them
/// could be reversed by trying every candidate in hours on one GPU, which would make the audit log
/// a list of personal identifiers. HMAC-SHA256 with a secret key held outside the log makes that
/// search impossible for whoever holds only the log, while the hub (holding the key) can still find
/// every event about one person by hashing their numbers again.
///
/// The two numbers are encoded with a domain tag and a length prefix each (`u64` big-endian byte
/// length, then the bytes), so `("12", "3")` and `("1", "23")` hash differently. The hasher does not
/// normalise: pass the validated canonical form (half-width digits, no spaces), or the same person
/// gets two hashes. Rotating the key changes every hash: events before and after no longer link.
#[derive(Clone)]
pub struct SubjectHasher {
    mac: Hmac<Sha256>,
}

const SUBJECT_DOMAIN: &[u8] = b"kaigo-hub/audit-subject/v1\0";

impl SubjectHasher {
    /// A hasher with this secret key (at least [`MIN_SUBJECT_KEY_BYTES`]).
    pub fn new(key: &[u8]) -> Result<Self, SubjectKeyError> {
        if key.len() < MIN_SUBJECT_KEY_BYTES {
            return Err(SubjectKeyError { len: key.len() });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|_| SubjectKeyError { len: key.len() })?;
        Ok(SubjectHasher { mac })
    }

    /// The keyed hash of 保険者番号 `insurer` + 被保険者番号 `insured`: 64 lowercase hex characters.
    pub fn hash(&self, insurer: &str, insured: &str) -> SubjectHash {
        let mut mac = self.mac.clone();
        mac.update(SUBJECT_DOMAIN);
        for part in [insurer, insured] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        SubjectHash(hex(&mac.finalize().into_bytes()))
    }

    /// The keyed hash of a validated [`Subject`](crate::identifiers::Subject): the same as
    /// [`SubjectHasher::hash`] of its two numbers as carried.
    pub fn hash_subject(&self, subject: &crate::identifiers::Subject) -> SubjectHash {
        self.hash(
            subject.insurer_number.as_str(),
            subject.insured_number.as_str(),
        )
    }
}

impl fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectHasher { key: <secret> }")
    }
}

/// A [`SubjectHasher`] key that is too short to be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the subject hashing key is {len} bytes; use at least {MIN_SUBJECT_KEY_BYTES} random bytes (32 recommended)"
)]
pub struct SubjectKeyError {
    /// The length given.
    pub len: usize,
}

/// A subject's keyed hash: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectHash(String);

impl SubjectHash {
    /// Re-read a hash that travelled as text (a message header, a query). Refuses anything that is
    /// not 64 lowercase hex characters, which is what keeps raw numbers out of the log.
    pub fn from_hex(text: &str) -> Result<SubjectHash, SubjectHashError> {
        if is_hex64(text) {
            Ok(SubjectHash(text.to_string()))
        } else {
            Err(SubjectHashError { len: text.len() })
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SubjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a subject hash. Does not echo it: it may be a raw 被保険者番号.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a subject must be the 64 lowercase hex characters made by SubjectHasher, got {len} bytes; never pass a raw 保険者番号/被保険者番号"
)]
pub struct SubjectHashError {
    /// Length of the rejected text.
    pub len: usize,
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Chain
// ---------------------------------------------------------------------------------------------

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
    /// that must store the event first (see [`jsonl`]) advance only once it is stored.
    pub fn seal(&self, draft: AuditDraft, key: &ChainKey) -> Result<AuditEvent, DraftError> {
        let seq = self
            .seq
            .checked_add(1)
            .ok_or(DraftError::SeqExhausted { last: self.seq })?;
        draft.check(seq)?;
        let mut event = AuditEvent {
            seq,
            at: draft.at.text,
            hop: draft.hop,
            actor: draft.actor,
            party: draft.party,
            subject: draft.subject.map(SubjectHash::into_string),
            category: draft.category,
            document: draft.document,
            decision: draft.decision.map(|d| d.as_str().to_string()),
            reason: draft.reason,
            envelope_id: draft.envelope_id,
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
/// default and tools; the durable store is [`jsonl::JsonlAuditStore`].
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

// ---------------------------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------------------------

/// Which events to return; every field set must match (an empty filter matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this envelope.
    pub envelope_id: Option<String>,
    /// Only events about this subject.
    pub subject: Option<SubjectHash>,
    /// Only events where this party is the actor or the counterpart.
    pub party: Option<String>,
    /// Only events at this hop.
    pub hop: Option<Hop>,
    /// Only events with this decision.
    pub decision: Option<Decision>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events strictly before this instant.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// Does `event` match? An event whose `at` does not parse never matches a time bound.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        fn same(want: Option<&str>, have: Option<&str>) -> bool {
            want.is_none() || want == have
        }
        if !same(self.envelope_id.as_deref(), event.envelope_id.as_deref())
            || !same(
                self.subject.as_ref().map(SubjectHash::as_str),
                event.subject.as_deref(),
            )
            || !same(
                self.decision.map(Decision::as_str),
                event.decision.as_deref(),
            )
            || self.hop.is_some_and(|h| h != event.hop)
        {
            return false;
        }
        if let Some(party) = &self.party
            && event.actor != *party
            && event.party.as_ref() != Some(party)
        {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = Timestamp::parse(&event.at) else {
                return false;
            };
            if self.since.as_ref().is_some_and(|since| at < *since)
                || self.until.as_ref().is_some_and(|until| at >= *until)
            {
                return false;
            }
        }
        true
    }
}

/// The events that match `filter`, in the order given.
pub fn query<'f>(
    events: impl IntoIterator<Item = AuditEvent> + 'f,
    filter: &'f AuditFilter,
) -> impl Iterator<Item = AuditEvent> + 'f {
    events.into_iter().filter(move |e| filter.matches(e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn empty_log_verifies_to_genesis() {
        let report = verify(std::iter::empty(), &chain_key()).expect("empty log verifies");
        assert_eq!(report.events, 0);
        assert!(report.head.is_genesis());
    }

    #[test]
    fn canonical_bytes_have_the_documented_field_order_and_nulls() {
        let event = AuditChain::new(chain_key())
            .append(AuditDraft::new(
                ts("2025-04-01T00:00:00Z"),
                Hop::Admin,
                "op",
            ))
            .expect("valid");
        let text = String::from_utf8(event.canonical_bytes()).expect("json is utf-8");
        assert_eq!(
            text,
            format!(
                r#"{{"seq":1,"at":"2025-04-01T00:00:00Z","hop":"admin","actor":"op","party":null,"subject":null,"category":null,"document":null,"decision":null,"reason":null,"envelope_id":null,"prev_hash":"{GENESIS_HASH}"}}"#
            )
        );
        // The documented derivation, spelt out again: the hub's chain key, then the event's HMAC.
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes()
        };
        let chain = hmac(
            b"audit key: thirty-two bytes long",
            &[b"kaigo-hub/audit-chain/v2\0", b"hub"],
        );
        let sealed = hmac(&chain, &[GENESIS_HASH.as_bytes(), text.as_bytes()]);
        assert_eq!(event.hash, hex(&sealed));
        // Pinned (computed independently with Python's hmac), so that an accidental change of the
        // sealing, which would make every existing log fail to verify, fails here first.
        assert_eq!(
            event.hash,
            "6c9133345d4b55bf587942443041b5eead008b5fbee0d410a8820ab683f37a8e"
        );
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
    fn subject_hash_is_keyed_and_stable() {
        let a = hasher();
        let b = SubjectHasher::new(b"another key, also 32 bytes long!").expect("long enough");
        let h1 = a.hash("131011", "0000012345");
        assert_eq!(h1, a.hash("131011", "0000012345"));
        assert_ne!(h1, b.hash("131011", "0000012345"));
        assert_ne!(h1, a.hash("131011", "0000012346"));
        assert!(is_hex64(h1.as_str()));
        // Pinned (computed independently with Python's hmac) so that an accidental change of
        // encoding, which would unlink every earlier log, fails.
        assert_eq!(
            h1.as_str(),
            "369c34f6403452aac4ea39f9089c4c2abcff57ca0c1302f8c7d8b39bc2fd444a"
        );
    }

    #[test]
    fn subject_hash_is_length_prefixed() {
        let h = hasher();
        assert_ne!(h.hash("12", "3"), h.hash("1", "23"));
        assert_ne!(h.hash("", "123"), h.hash("123", ""));
    }

    #[test]
    fn short_subject_key_is_refused_and_debug_hides_the_key() {
        assert_eq!(
            SubjectHasher::new(b"short").map(|_| ()),
            Err(SubjectKeyError { len: 5 })
        );
        assert!(!format!("{:?}", hasher()).contains("thirty-two"));
    }

    #[test]
    fn a_subject_hashes_as_its_carried_numbers() {
        let padded = crate::identifiers::Subject::new("00132019", "0000100001").expect("valid");
        assert_eq!(
            hasher().hash_subject(&padded),
            hasher().hash("132019", "0000100001")
        );
    }

    #[test]
    fn raw_insured_number_is_not_a_subject_hash() {
        let err = SubjectHash::from_hex("0000012345").expect_err("not a hash");
        assert!(!err.to_string().contains("0000012345"));
        let upper = "A".repeat(64);
        assert!(SubjectHash::from_hex(&upper).is_err());
        let hash = hasher().hash("131011", "0000012345");
        assert_eq!(SubjectHash::from_hex(hash.as_str()), Ok(hash));
    }

    #[test]
    fn oversized_reason_is_refused_without_echoing_it() {
        let secret = "山田太郎 1948-04-05 ".repeat(20);
        let err = AuditChain::new(chain_key())
            .append(sample_draft(0).reason(secret.clone()))
            .expect_err("too long");
        assert!(matches!(
            err,
            DraftError::Field {
                seq: 1,
                field: "reason",
                ..
            }
        ));
        assert!(!err.to_string().contains("山田"));
    }

    #[test]
    fn empty_actor_and_control_characters_are_refused() {
        let mut chain = AuditChain::new(chain_key());
        let err = chain
            .append(AuditDraft::new(ts("2025-01-01T00:00:00Z"), Hop::Admin, ""))
            .expect_err("empty actor");
        assert!(matches!(err, DraftError::Field { field: "actor", .. }));
        let err = chain
            .append(sample_draft(0).envelope_id("a\nb"))
            .expect_err("newline");
        assert!(matches!(
            err,
            DraftError::Field {
                field: "envelope_id",
                ..
            }
        ));
        assert!(chain.events().is_empty());
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

    #[test]
    fn timestamps_parse_strictly_and_order_by_instant() {
        for good in [
            "2025-04-01T09:30:00Z",
            "2024-02-29T23:59:60Z",
            "2025-04-01T09:30:00.123456789Z",
        ] {
            assert!(Timestamp::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "2025-04-01T09:30:00+09:00",
            "2025-04-01 09:30:00Z",
            "2025-04-01t09:30:00z",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-04-01T24:00:00Z",
            "2025-04-01T09:30:00.Z",
            "2025-04-01T09:30:00.1234567890Z",
            "2025-04-01",
            "２０２５-04-01T09:30:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert!(ts("2025-04-01T09:30:00.5Z") > ts("2025-04-01T09:30:00Z"));
        assert!(ts("2025-04-01T09:30:00.5Z") < ts("2025-04-01T09:30:01Z"));
        assert_eq!(
            ts("2025-04-01T09:30:00.5Z").cmp(&ts("2025-04-01T09:30:00.500Z")),
            Ordering::Equal
        );
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_list_the_choices() {
        for hop in Hop::ALL {
            assert_eq!(hop.as_str().parse::<Hop>(), Ok(hop));
        }
        for decision in Decision::ALL {
            assert_eq!(decision.as_str().parse::<Decision>(), Ok(decision));
        }
        let err = "allow".parse::<Decision>().expect_err("unknown");
        assert!(err.to_string().contains("permit, deny"), "{err}");
    }

    #[test]
    fn query_filters_by_each_criterion() {
        let chain = sample_chain(12);
        let all = chain.events().to_vec();
        let count = |filter: AuditFilter| query(all.clone(), &filter).count();
        assert_eq!(count(AuditFilter::default()), 12);
        assert_eq!(
            count(AuditFilter {
                envelope_id: Some("env-1".into()),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                subject: Some(hasher().hash("131011", "0000000001")),
                ..Default::default()
            }),
            3
        );
        assert_eq!(
            count(AuditFilter {
                party: Some("party-2".into()),
                ..Default::default()
            }),
            4
        );
        assert_eq!(
            count(AuditFilter {
                party: Some("hub:translate".into()),
                ..Default::default()
            }),
            12
        );
        assert_eq!(
            count(AuditFilter {
                hop: Some(Hop::Consent),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                decision: Some(Decision::Deny),
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            count(AuditFilter {
                since: Some(ts("2025-04-01T09:00:03Z")),
                until: Some(ts("2025-04-01T09:00:05.5Z")),
                ..Default::default()
            }),
            3
        );
        assert_eq!(
            count(AuditFilter {
                hop: Some(Hop::Ingress),
                decision: Some(Decision::Permit),
                envelope_id: Some("env-0".into()),
                ..Default::default()
            }),
            1
        );
        let filter = AuditFilter {
            envelope_id: Some("env-2".into()),
            ..Default::default()
        };
        let seqs: Vec<u64> = chain.query(&filter).map(|e| e.seq).collect();
        assert_eq!(seqs, vec![5, 6]);
    }

    #[test]
    fn stored_event_with_an_unknown_field_does_not_parse() {
        let event = &sample_chain(1).into_events()[0];
        let mut value = serde_json::to_value(event).expect("serialises");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("note".into(), serde_json::Value::String("x".into()));
        }
        assert!(serde_json::from_value::<AuditEvent>(value).is_err());
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
            field in 0usize..13,
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
