//! One message's journey, and finding messages: the trace of an envelope put together from the
//! audit events (every hop's step, every consent decision, every recipient's copy) and the
//! archive's metadata (sender, format, mapping id@version, the documents made of it); and a
//! search by envelope id, sender, recipient, document kind, person (保険者番号:被保険者番号,
//! hashed with the hub's subject key before anything is looked up) and time range. The console's
//! Messages page and `kaigo-hub audit trace|search` both read through here.
//!
//! In: a search text ([`Search::parse`]), audit events (any iterator, e.g. [`read_events`] over
//! the hub's and the CLI's logs), the archive's tables when the archive is on. Out: [`Found`]
//! messages and a [`Trace`] — ids, codes, times and hashes only. Must never: hold or show a body
//! (that is `store::archive::Archive`, behind a role and an audit event), or echo a person's
//! numbers in an error.

use crate::audit::jsonl::{StoreError as LogError, read_path};
use crate::audit::{AuditEvent, Hop, SubjectHasher};
use crate::consent::Subject;
use crate::store::archive::{ArchiveStore, Document, Original, Query};
use std::collections::HashMap;
use std::path::PathBuf;

/// What to look for: one term and an optional time range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// The term.
    pub term: Term,
    /// At or after (RFC 3339 UTC, `2026-12-07T05:00:00.000Z`).
    pub since: Option<String>,
    /// Strictly before.
    pub until: Option<String>,
}

/// One search term.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Term {
    /// Every message (newest first).
    #[default]
    All,
    /// One envelope id.
    Envelope(String),
    /// Sent by this party.
    Sender(String),
    /// A copy went (or was meant to go) to this party.
    Recipient(String),
    /// Holding a document of this kind (`InsuranceCard`, `InsuranceCard@1`).
    Kind(String),
    /// Naming this person (hashed before any lookup; never shown).
    Person(Subject),
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Term::All => f.write_str("All"),
            Term::Envelope(e) => write!(f, "Envelope({e})"),
            Term::Sender(s) => write!(f, "Sender({s})"),
            Term::Recipient(r) => write!(f, "Recipient({r})"),
            Term::Kind(k) => write!(f, "Kind({k})"),
            Term::Person(_) => f.write_str("Person(…)"),
        }
    }
}

impl Term {
    /// Is this a search by person (audited, with its subject hash)?
    pub fn is_person(&self) -> bool {
        matches!(self, Term::Person(_))
    }
}

/// Longest search text accepted.
const MAX_TERM: usize = 200;

impl Search {
    /// Reads the search box: empty (everything), `sender:X`, `recipient:X`, `kind:X`,
    /// `保険者番号:被保険者番号` (6 digits, a colon, the 被保険者番号), or an envelope id; and
    /// the range, each `YYYY-MM-DDTHH:MM[:SS]` (UTC, as a `datetime-local` input sends it) or a
    /// full RFC 3339 UTC time, or empty. An error says what to write and never repeats the
    /// text given (it may be a person's numbers).
    pub fn parse(q: &str, from: &str, to: &str) -> Result<Search, String> {
        let q = q.trim();
        if q.len() > MAX_TERM {
            return Err(format!("the search is longer than {MAX_TERM} bytes"));
        }
        let term = if q.is_empty() {
            Term::All
        } else if let Some((prefix, rest)) = q.split_once(':') {
            let rest = rest.trim();
            let word = |what: &str| -> Result<String, String> {
                if rest.is_empty() || rest.chars().any(char::is_whitespace) {
                    Err(format!("`{prefix}:` needs one {what} after the colon"))
                } else {
                    Ok(rest.to_string())
                }
            };
            match prefix.trim() {
                "sender" => Term::Sender(word("party id")?),
                "recipient" => Term::Recipient(word("party id")?),
                "kind" => Term::Kind(word("document kind (e.g. InsuranceCard)")?),
                insurer if insurer.bytes().all(|b| b.is_ascii_digit()) => {
                    Term::Person(Subject::new(insurer, rest).map_err(|_| {
                        "a person is searched as 保険者番号:被保険者番号 — 6 digits, a colon, and \
                         the 10-character 被保険者番号 (the numbers given do not have that form)"
                            .to_string()
                    })?)
                }
                _ => {
                    return Err(
                        "write sender:PARTY, recipient:PARTY, kind:KIND, 保険者番号:被保険者番号 \
                         or an envelope id"
                            .into(),
                    );
                }
            }
        } else if q
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Term::Envelope(q.to_string())
        } else {
            return Err(
                "an envelope id is letters, digits and `-`; or write sender:PARTY, \
                 recipient:PARTY, kind:KIND or 保険者番号:被保険者番号"
                    .into(),
            );
        };
        Ok(Search {
            term,
            since: time_bound(from, "from")?,
            until: time_bound(to, "to")?,
        })
    }
}

/// A time bound as the archive and the audit log write times (RFC 3339 UTC with milliseconds).
fn time_bound(text: &str, name: &str) -> Result<Option<String>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let b = t.trim_end_matches('Z').as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let shape = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    let seconds = match b.len() {
        16 => "00.000".to_string(),
        19 if b[16] == b':' && digits(17..19) => format!("{}.000", &t[17..19]),
        23 if b[16] == b':' && digits(17..19) && b[19] == b'.' && digits(20..23) => {
            t[17..23].to_string()
        }
        _ => String::new(),
    };
    if !shape || seconds.is_empty() {
        return Err(format!(
            "`{name}` is `{t}`; write YYYY-MM-DDTHH:MM (UTC), e.g. 2026-12-07T09:00"
        ));
    }
    Ok(Some(format!("{}T{}:{}Z", &t[0..10], &t[11..16], seconds)))
}

/// A message a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its metadata: from the archive when it is kept there, else as the audit log tells it
    /// (format and mapping then unknown: empty).
    pub meta: Original,
    /// Is its original in the archive?
    pub archived: bool,
}

/// Reads every event of the given logs, in order, handing each to `each`; a log that does not
/// exist is skipped (the CLI's exists once a consent command ran). A last line an append is
/// writing is taken as the end.
pub fn read_events(paths: &[PathBuf], mut each: impl FnMut(AuditEvent)) -> Result<(), String> {
    for path in paths {
        let mut lines = match read_path(path) {
            Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue;
            }
            other => other.map_err(|e| e.to_string())?,
        }
        .partial_last_line_is_end();
        while let Some(item) = lines.next_event() {
            let (_, event) = item.map_err(|e| e.to_string())?;
            each(event);
        }
    }
    Ok(())
}

/// What the audit log says of one envelope, summed up as the archive's metadata would be.
fn summary_of(envelope: &str, events: &[&AuditEvent]) -> Original {
    let mut o = Original {
        envelope: envelope.to_string(),
        ..Original::default()
    };
    for e in events {
        if o.at.is_empty() || e.at < o.at {
            o.at = e.at.clone();
        }
        if e.hop == Hop::Ingress {
            if let Some(p) = &e.party
                && o.sender.is_empty()
            {
                o.sender = p.clone();
            }
            if let Some(d) = &e.decision {
                o.outcome = d.clone();
            }
        }
        if let Some(k) = &e.document
            && !o.kinds.contains(k)
        {
            o.kinds.push(k.clone());
        }
        if let Some(s) = &e.subject
            && !o.subjects.contains(s)
        {
            o.subjects.push(s.clone());
        }
    }
    o
}

/// Runs `search` over the archive (when on) and the audit events: a recipient is found in the
/// deliver hop's events, everything else in the archive's metadata, or, with the archive off,
/// in the events themselves. At most `limit` messages, newest first.
pub fn search(
    search: &Search,
    hasher: &SubjectHasher,
    archive: Option<&dyn ArchiveStore>,
    events: impl IntoIterator<Item = AuditEvent>,
    limit: usize,
) -> Result<Vec<Found>, String> {
    let mut q = Query {
        since: search.since.clone(),
        until: search.until.clone(),
        limit,
        ..Query::default()
    };
    match &search.term {
        Term::All | Term::Recipient(_) => {}
        Term::Envelope(e) => q.envelope = Some(e.clone()),
        Term::Sender(s) => q.sender = Some(s.clone()),
        Term::Kind(k) => q.kind = Some(k.clone()),
        Term::Person(p) => q.subject = Some(hasher.hash_subject(p).into_string()),
    }
    // The recipient's envelopes, and (archive off) every envelope's events.
    let need_events = archive.is_none() || matches!(search.term, Term::Recipient(_));
    let mut by_envelope: HashMap<String, Vec<AuditEvent>> = HashMap::new();
    let mut recipient_of: Vec<String> = Vec::new();
    if need_events {
        for e in events {
            let Some(env) = e.envelope_id.clone() else {
                continue;
            };
            if let Term::Recipient(r) = &search.term
                && e.hop == Hop::Deliver
                && e.party.as_deref() == Some(r.as_str())
                && !recipient_of.contains(&env)
            {
                recipient_of.push(env.clone());
            }
            if archive.is_none() {
                by_envelope.entry(env).or_default().push(e);
            }
        }
        if matches!(search.term, Term::Recipient(_)) {
            q.among = Some(recipient_of);
        }
    }
    if let Some(a) = archive {
        let found = a.archive_search(&q).map_err(|e| e.to_string())?;
        return Ok(found
            .into_iter()
            .map(|meta| Found {
                meta,
                archived: true,
            })
            .collect());
    }
    let mut found: Vec<Found> = by_envelope
        .iter()
        .map(|(env, events)| summary_of(env, &events.iter().collect::<Vec<_>>()))
        .filter(|o| q.matches(o, &[]))
        .map(|meta| Found {
            meta,
            archived: false,
        })
        .collect();
    found.sort_by(|a, b| (&b.meta.at, &b.meta.envelope).cmp(&(&a.meta.at, &a.meta.envelope)));
    found.truncate(q.limit());
    Ok(found)
}

/// One step of a message at a hop, as the audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When (RFC 3339 UTC).
    pub at: String,
    /// `ingress`, `translate`, `deliver`, `replay`, `admin`.
    pub hop: String,
    /// Who acted (`http`, `mllp`, `translate`, `deliver`, `cli:uid-0`, …).
    pub actor: String,
    /// What became of it (`accepted`, `delivered`, `quarantined`, …).
    pub outcome: String,
    /// The counterpart: the sender at ingress, the recipient at deliver.
    pub party: Option<String>,
    /// The document kind.
    pub document: Option<String>,
    /// The platform category.
    pub category: Option<String>,
    /// A reason code.
    pub reason: Option<String>,
    /// The person's keyed hash.
    pub subject: Option<String>,
}

/// One consent decision about the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentStep {
    /// When.
    pub at: String,
    /// Where it was asked: `ingress`, `translate`, `deliver`.
    pub point: String,
    /// `permit`, `deny` or `indeterminate`.
    pub decision: String,
    /// The consent that permitted it.
    pub consent_id: Option<String>,
    /// The category asked about.
    pub category: Option<String>,
    /// The purpose the question stated, as its audit event records it; `None`: none (only
    /// consents without a purpose could permit).
    pub purpose: Option<String>,
    /// Who would receive it (the platform at ingress and translate).
    pub recipient: Option<String>,
    /// Why it was denied or indeterminate (a code).
    pub reason: Option<String>,
    /// The document kind.
    pub document: Option<String>,
    /// The person's keyed hash.
    pub subject: Option<String>,
}

/// One message's journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The envelope id.
    pub envelope: String,
    /// The archive's metadata of the original, when kept.
    pub original: Option<Original>,
    /// The archive's metadata of its canonical documents (kind, subject hash, mapping).
    pub documents: Vec<Document>,
    /// Every step but the consent decisions, in the log's order.
    pub steps: Vec<Step>,
    /// Every consent decision, in the log's order.
    pub decisions: Vec<ConsentStep>,
}

impl Trace {
    /// The steps of the deliver hop that name a recipient: what each recipient received (or
    /// why not) and when.
    pub fn deliveries(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| s.hop == "deliver" && s.party.is_some())
    }

    /// The mapping id@version labels that made its documents (archive), in first-seen order.
    pub fn mappings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let labels = self
            .original
            .iter()
            .map(|o| o.mapping.as_str())
            .chain(self.documents.iter().map(|d| d.mapping.as_str()));
        for label in labels {
            for m in label.split(',').filter(|m| !m.is_empty()) {
                if !out.iter().any(|o| o == m) {
                    out.push(m.to_string());
                }
            }
        }
        out
    }

    /// Is there anything known of this envelope?
    pub fn is_empty(&self) -> bool {
        self.original.is_none()
            && self.documents.is_empty()
            && self.steps.is_empty()
            && self.decisions.is_empty()
    }
}

/// The trace of `envelope` from the audit events and the archive (when on).
pub fn trace(
    envelope: &str,
    events: impl IntoIterator<Item = AuditEvent>,
    archive: Option<&dyn ArchiveStore>,
) -> Result<Trace, String> {
    let (original, documents) = match archive {
        Some(a) => (
            a.archived_original(envelope)
                .map_err(|e| e.to_string())?
                .map(|(o, _)| o),
            a.archived_documents(envelope)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(d, _)| d)
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    let mut t = Trace {
        envelope: envelope.to_string(),
        original,
        documents,
        steps: Vec::new(),
        decisions: Vec::new(),
    };
    for e in events {
        if e.envelope_id.as_deref() != Some(envelope) {
            continue;
        }
        if e.hop == Hop::Consent {
            let decision = e.decision.clone().unwrap_or_default();
            let permit = decision == "permit";
            t.decisions.push(ConsentStep {
                at: e.at,
                point: e.actor,
                consent_id: if permit { e.reason.clone() } else { None },
                reason: if permit { None } else { e.reason },
                decision,
                category: e.category,
                purpose: e.purpose,
                recipient: e.party,
                document: e.document,
                subject: e.subject,
            });
        } else {
            t.steps.push(Step {
                at: e.at,
                hop: e.hop.as_str().to_string(),
                actor: e.actor,
                outcome: e.decision.unwrap_or_default(),
                party: e.party,
                document: e.document,
                category: e.category,
                reason: e.reason,
                subject: e.subject,
            });
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, hop: Hop, actor: &str, envelope: &str) -> AuditEvent {
        AuditEvent {
            seq,
            at: format!("2026-01-01T00:00:{seq:02}.000Z"),
            hop,
            actor: actor.into(),
            party: None,
            subject: None,
            category: None,
            document: None,
            decision: None,
            reason: None,
            envelope_id: Some(envelope.into()),
            purpose: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn journey(hasher: &SubjectHasher) -> Vec<AuditEvent> {
        let h = hasher.hash("131011", "0000100001").into_string();
        let with = |mut e: AuditEvent, f: &dyn Fn(&mut AuditEvent)| {
            f(&mut e);
            e
        };
        vec![
            with(event(1, Hop::Consent, "ingress", "e1"), &|e| {
                e.party = Some("hub".into());
                e.decision = Some("permit".into());
                e.reason = Some("c-1".into());
                e.category = Some("certification".into());
                e.purpose = Some("care".into());
                e.subject = Some(h.clone());
            }),
            with(event(2, Hop::Ingress, "mllp", "e1"), &|e| {
                e.party = Some("hospital-a".into());
                e.decision = Some("accepted".into());
                e.document = Some("InsuredPerson@1".into());
                e.subject = Some(h.clone());
            }),
            with(event(3, Hop::Ingress, "http", "e2"), &|e| {
                e.party = Some("hospital-b".into());
                e.decision = Some("accepted".into());
                e.document = Some("InsuranceCard@1".into());
            }),
            with(event(4, Hop::Consent, "deliver", "e1"), &|e| {
                e.party = Some("city-131011".into());
                e.decision = Some("deny".into());
                e.reason = Some("no-consent".into());
            }),
            with(event(5, Hop::Deliver, "deliver", "e1"), &|e| {
                e.party = Some("provider-1".into());
                e.decision = Some("delivered".into());
            }),
            with(event(6, Hop::Deliver, "deliver", "e1"), &|e| {
                e.party = Some("city-131011".into());
                e.decision = Some("quarantined".into());
                e.reason = Some("consent-denied:no-consent".into());
            }),
        ]
    }

    fn hasher() -> SubjectHasher {
        SubjectHasher::new(&[9u8; 32]).expect("key")
    }

    #[test]
    fn the_search_box_reads_each_form_and_never_echoes_a_persons_numbers() {
        let p = |q: &str| Search::parse(q, "", "").map(|s| s.term);
        assert_eq!(p("").unwrap(), Term::All);
        assert_eq!(p("k0192af3c").unwrap(), Term::Envelope("k0192af3c".into()));
        assert_eq!(
            p("sender:hospital-a").unwrap(),
            Term::Sender("hospital-a".into())
        );
        assert_eq!(
            p("recipient: city-1").unwrap(),
            Term::Recipient("city-1".into())
        );
        assert_eq!(
            p("kind:InsuranceCard").unwrap(),
            Term::Kind("InsuranceCard".into())
        );
        assert!(p("131011:0000100001").unwrap().is_person());
        let e = p("13101:0000100001").unwrap_err();
        assert!(!e.contains("0000100001") && !e.contains("13101:"), "{e}");
        assert!(p("who:x").is_err());
        assert!(p("sender:").is_err());
        assert!(p("two words").is_err());
        let s = Search::parse("", "2026-12-07T09:00", "2026-12-08T10:30:15").unwrap();
        assert_eq!(s.since.as_deref(), Some("2026-12-07T09:00:00.000Z"));
        assert_eq!(s.until.as_deref(), Some("2026-12-08T10:30:15.000Z"));
        assert_eq!(
            Search::parse("", "2026-12-07T09:00:00.250Z", "")
                .unwrap()
                .since
                .as_deref(),
            Some("2026-12-07T09:00:00.250Z")
        );
        let e = Search::parse("", "yesterday", "").unwrap_err();
        assert!(e.contains("`from`"), "{e}");
        assert_eq!(
            format!("{:?}", p("131011:0000100001").unwrap()),
            "Person(…)"
        );
    }

    #[test]
    fn a_trace_gathers_each_step_each_decision_and_each_recipients_copy() {
        let t = trace("e1", journey(&hasher()), None).unwrap();
        assert_eq!(t.steps.len(), 3);
        assert_eq!(t.decisions.len(), 2);
        let permit = &t.decisions[0];
        assert_eq!(
            (
                permit.decision.as_str(),
                permit.consent_id.as_deref(),
                permit.reason.as_deref()
            ),
            ("permit", Some("c-1"), None)
        );
        assert_eq!(permit.purpose.as_deref(), Some("care"), "as the event says");
        let deny = &t.decisions[1];
        assert_eq!(
            (
                deny.consent_id.as_deref(),
                deny.reason.as_deref(),
                deny.recipient.as_deref()
            ),
            (None, Some("no-consent"), Some("city-131011"))
        );
        let copies: Vec<(&str, &str)> = t
            .deliveries()
            .map(|s| (s.party.as_deref().unwrap(), s.outcome.as_str()))
            .collect();
        assert_eq!(
            copies,
            vec![("provider-1", "delivered"), ("city-131011", "quarantined")]
        );
        assert!(trace("none", journey(&hasher()), None).unwrap().is_empty());
    }

    #[test]
    fn without_the_archive_the_search_reads_the_audit_log() {
        let h = hasher();
        let run = |q: &str| -> Vec<String> {
            let s = Search::parse(q, "", "").unwrap();
            search(&s, &h, None, journey(&h), 0)
                .unwrap()
                .into_iter()
                .map(|f| f.meta.envelope)
                .collect()
        };
        assert_eq!(run(""), vec!["e2", "e1"], "newest first");
        assert_eq!(run("e2"), vec!["e2"]);
        assert_eq!(run("sender:hospital-a"), vec!["e1"]);
        assert_eq!(run("recipient:provider-1"), vec!["e1"]);
        assert!(run("recipient:nobody").is_empty());
        assert_eq!(run("kind:InsuranceCard"), vec!["e2"]);
        assert_eq!(run("131011:0000100001"), vec!["e1"]);
        assert!(run("131011:0000100002").is_empty());
    }

    #[test]
    fn with_the_archive_the_search_reads_its_metadata_and_a_recipient_from_the_log() {
        use crate::store::archive::{ArchiveKey, KEY_BYTES, Row};
        let h = hasher();
        let store = crate::store::sqlite::SqliteStore::in_memory().unwrap();
        let key = ArchiveKey::from_bytes(&[1u8; KEY_BYTES]);
        let archive: &dyn ArchiveStore = &store;
        let o = Original {
            envelope: "e1".into(),
            at: "2026-01-01T00:00:02.000Z".into(),
            sender: "hospital-a".into(),
            mapping: "ssmix2-adt@1".into(),
            subjects: vec![h.hash("131011", "0000100001").into_string()],
            ..Original::default()
        };
        let sealed = key.seal(&Original::aad("e1"), b"MSH").unwrap();
        archive.archive_put(&[Row::Original(o, sealed)]).unwrap();
        let run = |q: &str| -> Vec<String> {
            let s = Search::parse(q, "", "").unwrap();
            search(&s, &h, Some(archive), journey(&h), 0)
                .unwrap()
                .into_iter()
                .map(|f| f.meta.envelope)
                .collect()
        };
        assert_eq!(run(""), vec!["e1"], "e2 was never archived");
        assert_eq!(run("131011:0000100001"), vec!["e1"]);
        assert_eq!(run("recipient:city-131011"), vec!["e1"]);
        assert!(run("recipient:nobody").is_empty());
        let t = trace("e1", journey(&h), Some(archive)).unwrap();
        assert_eq!(t.mappings(), vec!["ssmix2-adt@1"]);
        assert_eq!(t.original.unwrap().sender, "hospital-a");
    }
}
