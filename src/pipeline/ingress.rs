//! Hop 1, called by every source with the authenticated party and the raw bytes: identify the
//! format, document, subject and category (by running the mapping), ask consent #1 (may this
//! person's data of this category come to the platform?), and publish the raw message to the
//! ingress exchange. The source acknowledges its sender only after `accept` returned `Ok`, i.e.
//! after the broker confirmed. Refusals are answered at once and nothing is lost: malformed input
//! goes to the dead-letter queue, denied or unidentifiable input to quarantine, both with reasons.
//! Each document is judged on its own ([`admission::judge_each`]): when some may go on, the
//! message is published and the answer lists the refused ones ([`Accepted::refused`], audited
//! each), which the translate hop keeps in quarantine; only when none may go on (or the sender
//! itself is refused) is the message refused and quarantined whole.
//!
//! Read top to bottom: `accept` opens an [`Envelope`], runs the steps (`room`, `map`,
//! `category`, `admit`), each of which labels the envelope and hands the next what it needs or
//! ends the journey with an [`Outcome`]; `settle` alone publishes, dead-letters, quarantines,
//! audits and answers the source, and hands each copy it kept to the encrypted archive (when on),
//! which returns at once (`archiver`).

use super::clock;
use super::handoff::Mapped;
use super::headers as h;
use super::metrics::Metrics;
use super::outcome::Outcome;
use super::{Hub, admission, key_word};
use crate::audit::{Decision as AuditDecision, Hop, SubjectHash};
use crate::bus::{BusError, Props};
use crate::consent::Category;
use crate::formats::Format;
use crate::parties::Party;
use crate::redact::ErrorText;
use crate::store::archive::Original;

/// One message as a source received it.
pub struct Submission<'a> {
    /// The authenticated sender.
    pub party: &'a Party,
    /// The bytes, untouched.
    pub bytes: &'a [u8],
    /// File name, for file-based sources (ケアプラン CSV metadata).
    pub file_name: Option<&'a str>,
    /// The sender's own message id, kept as the correlation id.
    pub correlation_id: Option<&'a str>,
    /// Which source: `http`, `mllp`, `amqp`, `file`.
    pub via: &'static str,
}

/// The message is on the bus: all its documents, or (see `refused`) some of them.
#[derive(Debug)]
pub struct Accepted {
    /// Envelope id (AMQP `message_id` on every hop).
    pub envelope_id: String,
    /// Mapping that identified it.
    pub mapping: String,
    /// Canonical documents the mapping made of it (the refused ones included).
    pub documents: usize,
    /// The documents that may not go on, in document order (empty: every one goes on). The
    /// message is published whole; the translate hop judges every document again and keeps
    /// each one still refused then in quarantine, as its canonical document.
    pub refused: Vec<RefusedDocument>,
    /// What the mappings warned of (`Display`: where, what, the rule; never a value), for the
    /// sender's report: the message went on all the same.
    pub warnings: Vec<String>,
}

/// One document of an accepted message that may not go on: ids and codes only, for the
/// sender's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDocument {
    /// Its number in the message, from 1.
    pub number: usize,
    /// Its canonical kind (`InsuredPerson@1`).
    pub kind: String,
    /// Reason code (`consent-denied:no-consent`, `unknown-subject`, `insurer-mismatch`).
    pub reason: String,
    /// What is missing and what clears it ([`admission::Withheld::detail`]).
    pub detail: String,
    /// Where in the message it came from (`record 3, line 4`, `entry 2`), when the mapping
    /// run knows: positions only, never a value.
    pub origin: Option<String>,
}

impl RefusedDocument {
    /// `w` as the sender is told of it; `origins` are the message's documents' origins.
    fn of(w: &admission::Withheld, origins: &[Option<String>]) -> RefusedDocument {
        let (number, kind) = w.document().unwrap_or((0, ""));
        RefusedDocument {
            number,
            kind: kind.to_string(),
            reason: w.code(),
            detail: w.detail(),
            origin: number
                .checked_sub(1)
                .and_then(|i| origins.get(i).cloned().flatten()),
        }
    }

    /// ` (record 3, line 4)` after its number in an answer, or nothing when unknown.
    pub fn at(&self) -> String {
        self.origin
            .as_deref()
            .map_or_else(String::new, |o| format!(" ({o})"))
    }
}

/// Where each document of a mapping run came from, in document order.
fn origins(mapped: &Mapped) -> Vec<Option<String>> {
    mapped.documents.iter().map(|d| d.origin.clone()).collect()
}

/// Why a source must refuse the message.
#[derive(Debug)]
pub enum Refusal {
    /// Not parseable or not mappable: kept in the dead-letter queue.
    Malformed {
        /// Envelope id of the dead-lettered copy.
        envelope_id: String,
        /// The precise error (file, segment/field, line/column, rule): its `Display` without the
        /// message's values (for logs and side files), `for_sender()` with them, for the answer.
        message: ErrorText,
    },
    /// Consent denied, subject unknown, or a sender that may not send it: kept in quarantine.
    Forbidden {
        /// Envelope id of the quarantined copy.
        envelope_id: String,
        /// Reason code (`consent-denied:no-consent`, `insurer-mismatch`, …).
        reason: String,
        /// What is missing and what clears it (ids and codes only, never a personal value).
        detail: String,
        /// When none of the message's documents may go on: each one and why, in document order
        /// (a file of many people tells the sender about every one, not only the first).
        /// Empty when the message is refused as a whole (its sender, not its people).
        documents: Vec<RefusedDocument>,
    },
    /// The broker or registry is unreachable: nothing kept, the sender should retry.
    Unavailable {
        /// What was unreachable.
        message: String,
    },
}

fn content_type(f: Format) -> &'static str {
    match f {
        Format::Hl7v2 => "x-application/hl7-v2+er7",
        Format::Fhir => "application/fhir+json",
        Format::Canonical => "application/json",
        Format::Xml => "application/xml",
        Format::Csv => "text/csv",
    }
}

/// Runs hop 1 for one submission: its steps, then the one place that settles it.
pub async fn accept(hub: &Hub, sub: Submission<'_>) -> Result<Accepted, Refusal> {
    let mut envelope = Envelope::open(&sub);
    let outcome = Outcome::of(ingress(hub, &sub, &mut envelope).await);
    settle(hub, &sub, envelope, outcome).await
}

/// A step of this hop: what the next step needs, or how the message's journey ends.
type Step<T> = super::outcome::Step<T, Identified>;

/// The message as the hop keeps or publishes it: the raw bytes' envelope id, wire format and
/// properties, labelled step by step (a dead letter or quarantined copy carries the labels its
/// steps had put on when it stopped).
struct Envelope {
    id: String,
    format: Format,
    props: Props,
    /// Its documents, each with why it may not go on, once admission withheld every one.
    refused: Vec<RefusedDocument>,
    /// The distinct kinds of its documents, once mapped (for the archive).
    kinds: Vec<String>,
    /// The keyed hashes of the people its documents name, admitted or not, once judged (for the
    /// archive's person search).
    subjects: Vec<String>,
}

impl Envelope {
    fn open(sub: &Submission<'_>) -> Envelope {
        let id = clock::envelope_id();
        let format = Format::sniff(sub.bytes);
        let mut props = Props {
            message_id: Some(id.clone()),
            correlation_id: Some(sub.correlation_id.unwrap_or(&id).to_string()),
            content_type: Some(content_type(format).into()),
            user_id: None,
            headers: Default::default(),
        };
        props.headers.insert(h::SOURCE.into(), sub.party.id.clone());
        props.headers.insert(h::FORMAT.into(), format.name().into());
        props.headers.insert(h::HOP.into(), "ingress".into());
        if let Some(f) = sub.file_name {
            props.headers.insert(h::FILE_NAME.into(), f.into());
        }
        Envelope {
            id,
            format,
            props,
            refused: Vec::new(),
            kinds: Vec::new(),
            subjects: Vec::new(),
        }
    }

    fn label(&mut self, header: &str, value: impl Into<String>) {
        self.props.headers.insert(header.into(), value.into());
    }
}

/// What the hop forwards: the message identified, and at least one of its documents admitted.
struct Identified {
    mapped: Mapped,
    category: Category,
    /// Who may come, and which documents may not.
    admitted: Box<Admitted>,
}

/// What admission made of a message some of whose documents may go on.
struct Admitted {
    /// The distinct (subject's keyed hash, document kind) of its admitted documents, in
    /// first-seen order: each audited with its own kind (one file may carry several kinds).
    subjects: Vec<(SubjectHash, &'static str)>,
    /// The distinct kinds of its admitted documents that carry no person (a 請求書): no
    /// subject, no consent asked.
    without_person: Vec<&'static str>,
    /// Its documents that may not go on, with their person's keyed hash when it is known.
    withheld: Vec<(admission::Withheld, Option<SubjectHash>)>,
}

/// The steps, in order.
async fn ingress(hub: &Hub, sub: &Submission<'_>, envelope: &mut Envelope) -> Step<Identified> {
    room(hub)?;
    let mapped = map(hub, sub).await?;
    for (mapping, w) in &mapped.warnings {
        // Value-free: where, which rule, how many values and why.
        tracing::warn!(envelope = %envelope.id, mapping = %mapping, warning = %w, "ingress: a mapping warns (the message is read all the same)");
        Metrics::inc(&hub.metrics.mapping_warnings);
    }
    envelope.label(h::MAPPING, mapped.label.clone());
    envelope.label(h::DOCUMENT, mapped.documents[0].kind.name());
    for doc in &mapped.documents {
        let kind = doc.kind.name();
        if !envelope.kinds.iter().any(|k| k == kind) {
            envelope.kinds.push(kind.to_string());
        }
    }
    let category = category(&mapped)?;
    envelope.label(h::CATEGORY, category.code());
    let admitted = admit(hub, sub, envelope, &mapped, category).await?;
    let mut hashes: Vec<&str> = Vec::with_capacity(admitted.subjects.len());
    for (subject, _) in &admitted.subjects {
        if !hashes.contains(&subject.as_str()) {
            hashes.push(subject.as_str());
        }
    }
    // A message of documents without a person names nobody: no subject header at all.
    if !hashes.is_empty() {
        envelope.label(h::SUBJECT, hashes.join(","));
    }
    Ok(Identified {
        mapped,
        category,
        admitted: Box::new(admitted),
    })
}

/// Backpressure: no new message while too many wait ([`super::backlog`]).
fn room(hub: &Hub) -> Step<()> {
    hub.backlog.admit().map_err(|message| {
        Metrics::inc(&hub.metrics.busy);
        Outcome::Retry(message)
    })
}

/// Identify: the mapping tells the documents, category and subjects.
async fn map(hub: &Hub, sub: &Submission<'_>) -> Step<Mapped> {
    let set = hub.mappings.current();
    match Mapped::run(set, sub.bytes, sub.file_name, None).await {
        Ok(m) if !m.documents.is_empty() => Ok(m),
        Ok(_) => Err(Outcome::dead(
            "the message holds no document this hub maps",
            "no-document",
        )),
        Err(error) => Err(Outcome::Dead {
            error,
            reason: "malformed",
        }),
    }
}

/// The mapping's platform category.
fn category(mapped: &Mapped) -> Step<Category> {
    mapped
        .category()
        .map_err(|error| Outcome::dead(error, "no-category"))
}

/// Who sent it, whose data it is, and may it come: the judgement translate (and deliver, for a
/// replayed document) makes again, in `admission`, document by document. Gives the distinct
/// admitted subjects' keyed hashes and the documents withheld; when none is admitted, the
/// message is refused whole ([`admission::whole`] says for which reason).
async fn admit(
    hub: &Hub,
    sub: &Submission<'_>,
    envelope: &mut Envelope,
    mapped: &Mapped,
    category: Category,
) -> Step<Admitted> {
    let judged = admission::Doc::all(&mapped.documents);
    let case = admission::Case {
        envelope: &envelope.id,
        point: "ingress",
        source: &sub.party.id,
        category,
        docs: &judged,
        consulted: None,
    };
    let hash = |s: &crate::consent::Subject| {
        hub.hasher
            .hash(s.insurer_number.as_str(), s.insured_number.as_str())
    };
    let mut admitted = Admitted {
        subjects: Vec::new(),
        without_person: Vec::new(),
        withheld: Vec::new(),
    };
    let kinds: Vec<&'static str> = judged.iter().map(|d| d.kind).collect();
    let verdicts = admission::judge_each(hub, &case, None).await?;
    for (n, judged) in verdicts.into_iter().enumerate() {
        let kind = kinds.get(n).copied().unwrap_or_default();
        match judged {
            admission::Judged::Admitted(None) => {
                if !admitted.without_person.contains(&kind) {
                    admitted.without_person.push(kind);
                }
            }
            admission::Judged::Admitted(Some(s)) => {
                let h = (hash(&s), kind);
                if !admitted.subjects.contains(&h) {
                    admitted.subjects.push(h);
                }
            }
            admission::Judged::Withheld(w, s) => {
                admitted.withheld.push((w, s.as_ref().map(hash)));
            }
        }
    }
    let known = admitted.subjects.iter().map(|(h, _)| h);
    for hash in known.chain(admitted.withheld.iter().filter_map(|(_, h)| h.as_ref())) {
        if !envelope.subjects.iter().any(|s| s == hash.as_str()) {
            envelope.subjects.push(hash.as_str().to_string());
        }
    }
    let all = admitted.withheld.iter().map(|(w, _)| w);
    match admission::whole(all) {
        Some(w) if admitted.subjects.is_empty() && admitted.without_person.is_empty() => {
            // The quarantined copy names its people by keyed hash, as a forwarded one does: a
            // replay or a preview of it is then audited about them.
            if !envelope.subjects.is_empty() {
                let named = envelope.subjects.join(",");
                envelope.label(h::SUBJECT, named);
            }
            envelope.refused = admitted
                .withheld
                .iter()
                .map(|(w, _)| RefusedDocument::of(w, &origins(mapped)))
                .collect();
            Err(Outcome::Quarantine(w.clone()))
        }
        _ => Ok(admitted),
    }
}

/// The one place the hop acts on a message: publishes it, or keeps it in the dead-letter queue
/// or quarantine; audits what it did; and answers the source. A copy that cannot be kept is
/// answered `Unavailable` (the sender retries), never refused.
async fn settle(
    hub: &Hub,
    sub: &Submission<'_>,
    envelope: Envelope,
    outcome: Outcome<Identified>,
) -> Result<Accepted, Refusal> {
    let Envelope { id, props, .. } = &envelope;
    match outcome {
        Outcome::Forward(identified) => {
            let kept = original(hub, sub, &envelope, AuditDecision::Accepted);
            let accepted = publish(hub, sub, envelope, identified).await?;
            archive(hub, sub, kept);
            Ok(accepted)
        }
        Outcome::Dead { error, reason } => {
            hub.dead(props, sub.bytes, reason, &error.to_string())
                .await
                .map_err(unavailable)?;
            archive(hub, sub, original(hub, sub, &envelope, AuditDecision::Dead));
            refused(hub, sub, id, reason);
            Err(Refusal::Malformed {
                envelope_id: envelope.id,
                message: error.map(|m| for_sender(hub, m)),
            })
        }
        Outcome::Quarantine(w) => {
            let (reason, detail) = (w.code(), w.detail());
            hub.quarantine("ingress", props, sub.bytes, &reason, &detail, None)
                .await
                .map_err(unavailable)?;
            let kept = original(hub, sub, &envelope, AuditDecision::Quarantined);
            archive(hub, sub, kept);
            refused(hub, sub, id, &reason);
            Err(Refusal::Forbidden {
                envelope_id: envelope.id,
                reason,
                detail,
                documents: envelope.refused,
            })
        }
        Outcome::Retry(message) => Err(Refusal::Unavailable { message }),
        Outcome::Stop => Err(Refusal::Unavailable {
            message: "the hub is shutting down".into(),
        }),
    }
}

/// What the archive keeps in clear of the message (ids, codes, hashes), when the hub archives.
fn original(
    hub: &Hub,
    sub: &Submission<'_>,
    envelope: &Envelope,
    outcome: AuditDecision,
) -> Option<Original> {
    hub.archive.as_ref()?;
    Some(Original {
        envelope: envelope.id.clone(),
        at: clock::now_rfc3339(),
        sender: sub.party.id.clone(),
        format: envelope.format.name().to_string(),
        mapping: envelope.props.header(h::MAPPING).unwrap_or("").to_string(),
        outcome: outcome.as_str().to_string(),
        kinds: envelope.kinds.clone(),
        subjects: envelope.subjects.clone(),
    })
}

/// Hands the original bytes to the archive once the message was kept (published, dead-lettered
/// or quarantined): returns at once, never fails the message (`archiver`).
fn archive(hub: &Hub, sub: &Submission<'_>, meta: Option<Original>) {
    if let (Some(archive), Some(meta)) = (&hub.archive, meta) {
        archive.keep_original(meta, sub.bytes);
    }
}

/// `settle`'s forward: the mapping result is kept for this process's translate hop, the raw
/// message published to the ingress exchange, and each subject's acceptance audited.
async fn publish(
    hub: &Hub,
    sub: &Submission<'_>,
    envelope: Envelope,
    identified: Identified,
) -> Result<Accepted, Refusal> {
    let Identified {
        mapped,
        category,
        admitted,
    } = identified;
    let Admitted {
        subjects,
        without_person,
        withheld,
    } = *admitted;
    let Envelope {
        id, format, props, ..
    } = envelope;
    let document = mapped.documents[0].kind.name();
    let key = format!("{}.{}", format.name(), key_word(document));
    let (mapping, documents) = (mapped.ids(), mapped.documents.len());
    let origins = origins(&mapped);
    let warnings: Vec<String> = mapped.warnings.iter().map(|(_, w)| w.to_string()).collect();
    // Kept before publishing, so the translate hop cannot look before it is there.
    hub.handoff.put(&id, mapped);
    let published = hub
        .bus
        .publish(&hub.topology.ingress(), &key, &props, sub.bytes)
        .await;
    if let Err(e) = published {
        hub.handoff.forget(&id);
        return Err(unavailable(e));
    }
    Metrics::inc(&hub.metrics.accepted);
    for (subject, kind) in subjects {
        hub.audit(Hop::Ingress, sub.via, &id, |d| {
            d.party(sub.party.id.as_str())
                .category(category.code())
                .document(kind)
                .decision(AuditDecision::Accepted)
                .subject(subject)
        });
    }
    // Documents without a person: accepted with no subject, and no consent was asked of anyone.
    for kind in without_person {
        hub.audit(Hop::Ingress, sub.via, &id, |d| {
            d.party(sub.party.id.as_str())
                .category(category.code())
                .document(kind)
                .decision(AuditDecision::Accepted)
                .reason(admission::NO_SUBJECT)
        });
    }
    let refused = withheld_documents(hub, sub, &id, category, withheld, &origins);
    tracing::info!(envelope = %id, source = %sub.party.id, via = sub.via, mapping = %mapping, documents, refused = refused.len(), "accepted");
    Ok(Accepted {
        envelope_id: id,
        mapping,
        documents,
        refused,
        warnings,
    })
}

/// The documents of an accepted message that may not go on, each audited as refused (with its
/// person's keyed hash when known). Ingress keeps no copy of them: the translate hop judges
/// every document again (consent may change meanwhile) and keeps those still refused.
fn withheld_documents(
    hub: &Hub,
    sub: &Submission<'_>,
    id: &str,
    category: Category,
    withheld: Vec<(admission::Withheld, Option<SubjectHash>)>,
    origins: &[Option<String>],
) -> Vec<RefusedDocument> {
    let mut refused = Vec::with_capacity(withheld.len());
    for (w, subject) in withheld {
        let doc = RefusedDocument::of(&w, origins);
        hub.audit(Hop::Ingress, sub.via, id, |d| {
            let d = d
                .party(sub.party.id.as_str())
                .category(category.code())
                .document(doc.kind.as_str())
                .decision(AuditDecision::Rejected)
                .reason(doc.reason.as_str());
            match subject {
                Some(s) => d.subject(s),
                None => d,
            }
        });
        refused.push(doc);
    }
    refused
}

/// A refusal, counted and audited (after its copy was kept).
fn refused(hub: &Hub, sub: &Submission<'_>, id: &str, reason: &str) {
    Metrics::inc(&hub.metrics.rejected);
    hub.audit(Hop::Ingress, sub.via, id, |d| {
        d.party(sub.party.id.as_str())
            .decision(AuditDecision::Rejected)
            .reason(reason)
    });
}

fn unavailable(e: BusError) -> Refusal {
    Refusal::Unavailable {
        message: e.to_string(),
    }
}

/// The error as an outside sender may see it: mapping files named without the server's
/// directories (the dead-letter copy keeps the full text for operators).
fn for_sender(hub: &Hub, message: &str) -> String {
    let mut m = message.to_string();
    let set = hub.mappings.current();
    for mapping in &set.mappings {
        if let Some(dir) = mapping
            .loc
            .file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            m = m.replace(&format!("{}/", dir.display()), "");
        }
    }
    m
}
