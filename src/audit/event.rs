//! The audit event model: where ([`Hop`]), what became of it ([`Decision`]), the sealed row
//! ([`AuditEvent`]) with the canonical bytes its hash covers, and what a caller knows when something
//! happens ([`AuditDraft`]).
//!
//! In: a caller's facts (ids, codes, a [`Timestamp`], a [`SubjectHash`]). Out: a draft checked for
//! shape, or a [`DraftError`] that never echoes the rejected value (it may be personal data). Sealing
//! a draft into the chain is next door (`chain.rs`); this file must never hold message bodies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ChainKey, SubjectHash, Timestamp};

/// Longest accepted id-like field (`actor`, `party`, `category`, `document`, `envelope_id`), in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Longest accepted `reason`, in bytes. A reason is a code (`unknown-subject`, `consent-revoked`),
/// not an error message: error messages may quote field values, and field values are personal data.
pub const MAX_REASON_BYTES: usize = 256;

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
/// in the [`audit`](super) module documentation (the same order, without `hash`).
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
    /// The subject as a keyed hash ([`SubjectHasher`](super::SubjectHasher)), never the raw 保険者番号/被保険者番号.
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
    /// The purpose a consent question stated (the hub's `purpose` setting when it was asked);
    /// absent when it stated none, and then neither stored nor hashed (events before the field
    /// existed hash as they did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The previous event's `hash` (hex), or [`GENESIS_HASH`](super::GENESIS_HASH).
    pub prev_hash: String,
    /// `hex(HMAC-SHA256(chain key, prev_hash || canonical))`, see the [`audit`](super) module documentation.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
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
            purpose: self.purpose.as_deref(),
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

/// What a caller knows when something happens; [`Checkpoint::seal`](super::Checkpoint::seal) /
/// [`AuditChain::append`](super::AuditChain::append) add
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
    /// The purpose a consent question stated.
    pub purpose: Option<String>,
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
            purpose: None,
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

    /// Set the purpose a consent question stated.
    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    pub(super) fn check(&self, seq: u64) -> Result<(), DraftError> {
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
        check_text(seq, "purpose", self.purpose.as_deref(), MAX_ID_BYTES)?;
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

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::super::tests::{chain_key, sample_chain, sample_draft, ts};
    use super::super::{AuditChain, GENESIS_HASH, hex};
    use super::*;

    /// `purpose` is hashed, between `envelope_id` and `prev_hash`, only when the event has one,
    /// so an event without it (every event from before the field) hashes as it always did; and
    /// the stored line leaves it out then too.
    #[test]
    fn a_purpose_is_hashed_and_stored_only_when_there_is_one() {
        let draft = || AuditDraft::new(ts("2025-04-01T00:00:00Z"), Hop::Consent, "hub:deliver");
        let with = AuditChain::new(chain_key())
            .append(draft().purpose("care"))
            .expect("valid");
        let text = String::from_utf8(with.canonical_bytes()).expect("utf-8");
        assert!(
            text.ends_with(&format!(
                r#""envelope_id":null,"purpose":"care","prev_hash":"{GENESIS_HASH}"}}"#
            )),
            "{text}"
        );
        let without = AuditChain::new(chain_key()).append(draft()).expect("valid");
        assert!(
            !String::from_utf8(without.canonical_bytes())
                .expect("utf-8")
                .contains("purpose")
        );
        let line = serde_json::to_string(&without).expect("serialises");
        assert!(!line.contains("purpose"), "{line}");
        let back: AuditEvent = serde_json::from_str(&line).expect("an old line reads");
        assert_eq!(back, without);
        assert_ne!(with.hash, without.hash, "the purpose is sealed");
        let e = AuditChain::new(chain_key())
            .append(draft().purpose("x".repeat(MAX_ID_BYTES + 1)))
            .expect_err("a purpose is a code");
        assert!(e.to_string().contains("purpose"), "{e}");
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
    fn stored_event_with_an_unknown_field_does_not_parse() {
        let event = &sample_chain(1).into_events()[0];
        let mut value = serde_json::to_value(event).expect("serialises");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("note".into(), serde_json::Value::String("x".into()));
        }
        assert!(serde_json::from_value::<AuditEvent>(value).is_err());
    }
}
