//! Admission: may this sender bring these documents, about these people, to the platform? The
//! one judgement every message passes before the platform keeps or forwards it — asked by
//! ingress of a new message, by translate of every message it maps (new or replayed), and by
//! deliver of a copy that did not come through translate this time (a replayed canonical
//! document). A message is never trusted because it was once seen: each asks again, with the
//! parties and consents in force now.
//!
//! In: the sending party's id, the category, and each document's [`Identity`] and kind. Out
//! ([`judge_each`]): for each document its subject, or why it is withheld ([`Withheld`]: a reason
//! code for headers and audit, a sentence for the sender and operators that says what is missing
//! and what clears it, and whether any later fact can clear it at all); or that the message is
//! refused whole, or that the store or registry could not answer. [`judge`] asks the same of a
//! message that must pass whole (deliver's replayed single document).
//!
//! The checks, in order. Of the whole message: the sender is a party of the parties file; no
//! document names another party as its sender (`sender-mismatch`). Of each document on its own:
//! it resolves to a person (`unknown-subject`); a municipality speaks only for the people it
//! insures (`insurer-mismatch`); the person consented to this category reaching the platform
//! (`consent-denied:<why>`, consent #1/#2, asked once per person). One person's refusal withholds
//! that person's documents, never the others'. A document whose kind carries no person (a
//! 請求書, [`crate::canonical::DocKind::carries_subject`]) passes the whole-message checks only:
//! there is nobody to resolve and nobody whose consent to ask. The kind decides, never the
//! document, so no document can talk its way out of its person's consent.
//!
//! Must never: echo a 保険者番号, 被保険者番号 or any other personal value in a reason or sentence,
//! or let a reason that no later fact can cure be released by `replay`.

use super::{Ask, Hub, Identity, Verdict};
use crate::canonical::DocKind;
use crate::consent::{Category, DenyReason, PartyKind, Recipient, Subject};
use crate::parties::Party;
use tokio::sync::watch;

/// One document to judge.
pub struct Doc<'a> {
    /// What the document says about whose it is and who sent it.
    pub who: Identity,
    /// Its canonical kind (`CarePlan@1`).
    pub kind: &'a str,
    /// Where the sender it names was read, when the mapping run knows (`record 2, line 2; rule
    /// `source.sender` from `/8` (claims-invoice.yaml:58:3)`): positions and rules, never a value.
    pub sender_at: Option<String>,
}

impl Doc<'_> {
    /// A mapping's documents as the judgement reads them.
    pub fn all(docs: &[crate::mapping::Document]) -> Vec<Doc<'static>> {
        docs.iter()
            .map(|d| {
                let rule = d.mapping.rule_reading("source.sender");
                let sender_at = match (&d.origin, rule) {
                    (Some(o), Some(r)) => Some(format!("{o}; {r}")),
                    (o, r) => o.clone().or(r),
                };
                Doc {
                    who: Identity::of_json(&d.json),
                    kind: d.kind.name(),
                    sender_at,
                }
            })
            .collect()
    }

    /// Does the document carry a person? See [`carries_person`].
    fn carries_subject(&self) -> bool {
        carries_person(self.kind, &self.who)
    }
}

/// Does a document of `kind` (`ClaimInvoice@1`) carry a person? Only a known kind without a
/// subject does not: an unknown kind is taken as a person's, and judged as one; so is a document
/// that holds a `subject` whatever its kind says (not a valid document of a kind without a
/// person: only an edited copy could be).
pub fn carries_person(kind: &str, who: &Identity) -> bool {
    DocKind::parse(kind).is_none_or(DocKind::carries_subject) || who.subject.is_some()
}

/// A message to judge.
pub struct Case<'a> {
    /// Envelope id (for the audit events of the consent decisions).
    pub envelope: &'a str,
    /// Where it is asked: `ingress`, `translate` or `deliver`.
    pub point: &'a str,
    /// The party the message came from: authenticated by the source (ingress), or as the
    /// source recorded it in `x-kaigo-source` (the hops; only the hub writes that header).
    pub source: &'a str,
    /// The platform category of the documents.
    pub category: Category,
    /// The documents, in envelope order.
    pub docs: &'a [Doc<'a>],
    /// A preview's question (`replay --preview`): the registry is consulted
    /// ([`Hub::consult`]), not decided on, so nothing is audited or counted, and each person's
    /// answer (with the consent id of a permit) is kept here. `None` for the hops.
    pub consulted: Option<&'a Consulted>,
}

/// What a preview was told by the registry about consent #1/#2: per document number (from 1)
/// the platform's answer for its person, in the order asked.
#[derive(Debug, Default)]
pub struct Consulted(std::sync::Mutex<Vec<(usize, crate::consent::Decision)>>);

impl Consulted {
    /// The answers, per document number (from 1).
    pub fn answers(&self) -> Vec<(usize, crate::consent::Decision)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, document: usize, d: crate::consent::Decision) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((document, d));
    }
}

/// The message may come: each document's subject, in document order (`None` for a document
/// whose kind carries no person).
#[derive(Debug)]
pub struct Admitted {
    /// The person of each document.
    pub subjects: Vec<Option<Subject>>,
}

/// Why a message (or one recipient's copy) is withheld. Document numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// The sender is not (or no longer) a party of the parties file.
    UnknownSender {
        /// The party id the message came from.
        source: String,
    },
    /// A document names another party as its sender (MSH-4, the file name's 送信元, …).
    SenderMismatch {
        /// Which document.
        document: usize,
        /// The party id it names.
        claimed: String,
        /// The party it came from.
        source: String,
        /// Where in the input and by which mapping rule the sender was read, when known.
        at: Option<String>,
    },
    /// A document carries no subject the hub can resolve.
    UnknownSubject {
        /// Which document.
        document: usize,
        /// Its kind.
        kind: String,
        /// The party whose identifiers were looked up.
        source: String,
    },
    /// A municipality sent the data of a person another insurer insures.
    InsurerMismatch {
        /// Which document.
        document: usize,
        /// Its kind.
        kind: String,
        /// The municipality.
        source: String,
    },
    /// No consent lets this category of this person go to `recipient`.
    ConsentDenied {
        /// Which document.
        document: usize,
        /// Its kind.
        kind: String,
        /// Why the registry said no.
        reason: DenyReason,
        /// The category asked for.
        category: Category,
        /// Who would have received it (the platform at ingress and translate).
        recipient: Recipient,
    },
}

/// The audit reason of a document admitted, published or delivered without a person (its kind
/// carries none): there was no subject to resolve and no consent to ask.
pub const NO_SUBJECT: &str = "no-subject";

/// Reason codes that no later fact can cure: a party claiming another's identity, a municipality
/// sending another insurer's person. `replay` never releases a message parked for one of them.
pub const INCURABLE: [&str; 2] = ["sender-mismatch", "insurer-mismatch"];

/// Can a later fact (a consent granted, a link registered, a party added) cure a message parked
/// with this reason code? Unknown codes are taken as curable: the hops judge again on replay.
pub fn curable(reason: &str) -> bool {
    !INCURABLE.contains(&reason)
}

impl Withheld {
    /// The reason code for headers, audit events and the sender (`consent-denied:no-consent`).
    pub fn code(&self) -> String {
        match self {
            Withheld::UnknownSender { .. } => "unknown-sender".into(),
            Withheld::SenderMismatch { .. } => "sender-mismatch".into(),
            Withheld::UnknownSubject { .. } => "unknown-subject".into(),
            Withheld::InsurerMismatch { .. } => "insurer-mismatch".into(),
            Withheld::ConsentDenied { reason, .. } => format!("consent-denied:{}", reason.code()),
        }
    }

    /// The number (from 1) and kind of the document it withholds, when it withholds one document
    /// (the per-document refusals: unknown subject, another insurer's person, consent).
    pub fn document(&self) -> Option<(usize, &str)> {
        match self {
            Withheld::UnknownSubject { document, kind, .. }
            | Withheld::InsurerMismatch { document, kind, .. }
            | Withheld::ConsentDenied { document, kind, .. } => Some((*document, kind)),
            Withheld::UnknownSender { .. } | Withheld::SenderMismatch { .. } => None,
        }
    }

    /// True when a later fact can cure it (see [`curable`]).
    pub fn curable(&self) -> bool {
        curable(&self.code())
    }

    /// What is missing and what clears it, in one sentence with ids and codes only.
    pub fn detail(&self) -> String {
        match self {
            Withheld::UnknownSender { source } => format!(
                "the message came from party {source}, which the parties file does not list (any more); add the party again, then replay it"
            ),
            Withheld::SenderMismatch {
                document,
                claimed,
                source,
                at,
            } => format!(
                "document {document} names party {claimed} as its sender{}, but it came from {source}: a party sends only as itself; no later fact makes this right, so replay keeps it",
                at.as_deref()
                    .map_or_else(String::new, |at| format!(" ({at})"))
            ),
            Withheld::UnknownSubject {
                document,
                kind,
                source,
            } => format!(
                "{} carries no 保険者番号 + 被保険者番号 and none of its identifiers is linked for party {source}: link the person (kaigo-hub consent link --party {source} --local-id <id> --subject <保険者番号:被保険者番号>), then replay it",
                named(*document, kind)
            ),
            Withheld::InsurerMismatch {
                document,
                kind,
                source,
            } => format!(
                "{} is about a person another insurer insures: municipality {source} sends only the data of the people it insures; no later fact makes this right, so replay keeps it",
                named(*document, kind)
            ),
            Withheld::ConsentDenied {
                document,
                kind,
                reason,
                category,
                recipient,
            } => {
                let cat = category.code();
                let who = match recipient.kind {
                    PartyKind::Platform => format!("the platform (hub {})", recipient.id.as_str()),
                    k => format!("{} {}", k.code(), recipient.id.as_str()),
                };
                let why = match reason {
                    DenyReason::NoConsent => "the person has no consent registered".to_string(),
                    DenyReason::RecipientNotCovered => {
                        format!("no consent of the person names {who} or its kind")
                    }
                    DenyReason::CategoryNotCovered => {
                        format!("the person's consents for {who} do not cover {cat}")
                    }
                    DenyReason::PurposeMismatch => {
                        "the consent that covers it is for another purpose".to_string()
                    }
                    DenyReason::Expired => "the consent that covered it has ended".to_string(),
                    DenyReason::NotYetValid => {
                        "the consent that covers it starts later".to_string()
                    }
                    DenyReason::Revoked => {
                        "the person revoked the consent that covered it".to_string()
                    }
                };
                let to = match recipient.kind {
                    PartyKind::Platform => "platform".to_string(),
                    _ => recipient.id.as_str().to_string(),
                };
                format!(
                    "{}: no consent in force lets {cat} go to {who} ({why}); what is missing is the person's consent for {cat} to {to} (kaigo-hub consent grant --subject <保険者番号:被保険者番号> --to {to} --categories {cat} --from <YYYY-MM-DD>), then replay it",
                    named(*document, kind)
                )
            }
        }
    }
}

/// How a sentence names one document: `document 3 (InsuredPerson@1)`. The one place to add
/// where in the input it came from (`mapping::Document`'s origin, "record 3, line 4") once the
/// documents carry it: ids and positions only, never a value.
pub fn named(document: usize, kind: &str) -> String {
    format!("document {document} ({kind})")
}

/// Why a message was not admitted.
#[derive(Debug)]
pub enum Refused {
    /// Withheld for a reason (quarantine it).
    Withheld(Withheld),
    /// The store or the consent registry did not answer (only without patience): retry later.
    Unavailable(String),
    /// Shutdown was asked for while waiting for the store or registry (only with patience):
    /// leave the message unsettled.
    Stopped,
}

/// One document's judgement ([`judge_each`]).
#[derive(Debug)]
pub enum Judged {
    /// It may come: its person (`None`: its kind carries no person, so no consent was asked).
    Admitted(Option<Subject>),
    /// Withheld, and why; with its person when that was resolved (an insurer or consent
    /// refusal), so that its audit event and quarantined copy can name the keyed hash.
    Withheld(Withheld, Option<Subject>),
}

impl Judged {
    /// The document's person, when resolved.
    pub fn subject(&self) -> Option<&Subject> {
        match self {
            Judged::Admitted(Some(s)) | Judged::Withheld(_, Some(s)) => Some(s),
            Judged::Admitted(None) | Judged::Withheld(_, None) => None,
        }
    }

    /// Why it is withheld, if it is.
    pub fn withheld(&self) -> Option<&Withheld> {
        match self {
            Judged::Admitted(_) => None,
            Judged::Withheld(w, _) => Some(w),
        }
    }
}

/// Judges `case` whole: every document must be admitted. The first document withheld (in
/// document order) withholds the message. Deliver asks this of a replayed single document.
/// Without `patience` an unreachable store or registry is [`Refused::Unavailable`] at once
/// (ingress: the sender is told to retry); with it, the question is asked again with backoff
/// until answered or shutdown ([`Refused::Stopped`]).
pub async fn judge(
    hub: &Hub,
    case: &Case<'_>,
    patience: Option<&mut watch::Receiver<bool>>,
) -> Result<Admitted, Refused> {
    let mut subjects = Vec::with_capacity(case.docs.len());
    for judged in judge_each(hub, case, patience).await? {
        match judged {
            Judged::Admitted(s) => subjects.push(s),
            Judged::Withheld(w, _) => return Err(Refused::Withheld(w)),
        }
    }
    Ok(Admitted { subjects })
}

/// Judges each document of `case` on its own: one person without consent (or unknown, or
/// another insurer's) withholds that person's documents, not the others'. What concerns the
/// whole message still refuses it whole ([`Refused`]): an unknown sender, a document claiming
/// another sender (the message as a whole is then not the sender's to send), the store or
/// registry unavailable, shutdown. Gives one [`Judged`] per document, in document order.
/// `patience` as in [`judge`].
pub async fn judge_each(
    hub: &Hub,
    case: &Case<'_>,
    mut patience: Option<&mut watch::Receiver<bool>>,
) -> Result<Vec<Judged>, Refused> {
    let parties = hub.parties.current();
    let Some(party) = parties.get(case.source) else {
        return Err(Refused::Withheld(Withheld::UnknownSender {
            source: case.source.to_string(),
        }));
    };
    sent_as_itself(case, party)?;
    let found = subjects(hub, case, party, patience.as_deref_mut()).await?;
    consented(hub, case, found, patience).await
}

/// Why a message none of whose documents may go on is kept whole: the first reason a later fact
/// can cure, else the first reason (`None` when nothing is withheld). A curable reason first, so
/// that `replay` can still bring the message back once it is cured; the translate hop then
/// judges each document again, and keeps one withheld for an incurable reason on its own.
pub fn whole<'w>(withheld: impl IntoIterator<Item = &'w Withheld>) -> Option<&'w Withheld> {
    let mut first = None;
    for w in withheld {
        if w.curable() {
            return Some(w);
        }
        first = first.or(Some(w));
    }
    first
}

/// A party may only send as itself. Free-form sender ids are not party ids.
fn sent_as_itself(case: &Case<'_>, party: &Party) -> Result<(), Refused> {
    for (i, d) in case.docs.iter().enumerate() {
        let claimed = d.who.sender();
        let party_like =
            matches!(claimed.len(), 6 | 10) && claimed.bytes().all(|b| b.is_ascii_digit());
        if party_like && claimed != party.id {
            return Err(Refused::Withheld(Withheld::SenderMismatch {
                document: i + 1,
                claimed: claimed.to_string(),
                source: party.id.clone(),
                at: d.sender_at.clone(),
            }));
        }
    }
    Ok(())
}

/// Whose data is each document? A document must resolve to a person (`unknown-subject`), and
/// a municipality (保険者) speaks only for the people it insures (`insurer-mismatch`); one whose
/// kind carries no person is admitted as it is.
async fn subjects(
    hub: &Hub,
    case: &Case<'_>,
    party: &Party,
    mut patience: Option<&mut watch::Receiver<bool>>,
) -> Result<Vec<Judged>, Refused> {
    let mut judged = Vec::with_capacity(case.docs.len());
    for (i, d) in case.docs.iter().enumerate() {
        if !d.carries_subject() {
            judged.push(Judged::Admitted(None));
            continue;
        }
        let found = match patience.as_deref_mut() {
            Some(shutdown) => hub
                .subject_of_retrying(&party.id, &d.who, shutdown)
                .await
                .map_err(|()| Refused::Stopped)?,
            None => hub
                .subject_of(&party.id, &d.who)
                .await
                .map_err(Refused::Unavailable)?,
        };
        judged.push(match found {
            None => Judged::Withheld(
                Withheld::UnknownSubject {
                    document: i + 1,
                    kind: d.kind.to_string(),
                    source: party.id.clone(),
                },
                None,
            ),
            Some(subject)
                if party.kind == PartyKind::Municipality
                    && subject.insurer_number.as_str() != party.id =>
            {
                Judged::Withheld(
                    Withheld::InsurerMismatch {
                        document: i + 1,
                        kind: d.kind.to_string(),
                        source: party.id.clone(),
                    },
                    Some(subject),
                )
            }
            Some(subject) => Judged::Admitted(Some(subject)),
        });
    }
    Ok(judged)
}

/// Consent #1 / #2: may each person's data of this category come to the platform? Asked once
/// per distinct person (of the documents still admitted), in first-seen order; a person's
/// refusal withholds each of that person's documents, each naming its own number. A document
/// without a person asks nothing.
async fn consented(
    hub: &Hub,
    case: &Case<'_>,
    mut judged: Vec<Judged>,
    mut patience: Option<&mut watch::Receiver<bool>>,
) -> Result<Vec<Judged>, Refused> {
    let Some(platform) = hub.platform() else {
        return Err(Refused::Unavailable(
            "the hub's own party id (hub.id in the parties file) is not a valid party id".into(),
        ));
    };
    let mut denied: Vec<(Subject, crate::consent::DenyReason)> = Vec::new();
    let mut asked: Vec<(Subject, Option<crate::consent::Decision>)> = Vec::new();
    for (i, judgement) in judged.iter_mut().enumerate() {
        let Judged::Admitted(Some(subject)) = judgement else {
            continue;
        };
        let subject = subject.clone();
        let subject = &subject;
        let kind = case.docs.get(i).map_or("", |d| d.kind);
        if let Some(consulted) = case.consulted
            && let Some((_, Some(answer))) = asked.iter().find(|(s, _)| s == subject)
        {
            // A preview shows each document its person's answer.
            consulted.keep(i + 1, answer.clone());
        }
        if !asked.iter().any(|(s, _)| s == subject) {
            let ask = Ask {
                envelope: case.envelope,
                point: case.point,
                subject,
                recipient: &platform,
                category: case.category,
                document: kind,
            };
            let verdict = match (case.consulted, patience.as_deref_mut()) {
                (Some(consulted), _) => {
                    let answer = hub.consult(&ask).await;
                    consulted.keep(i + 1, answer.clone());
                    asked.push((subject.clone(), Some(answer.clone())));
                    Verdict::of(answer)
                }
                (None, Some(shutdown)) => hub
                    .decide_until_known(&ask, shutdown)
                    .await
                    .ok_or(Refused::Stopped)?,
                (None, None) => hub.decide(&ask).await,
            };
            if case.consulted.is_none() {
                asked.push((subject.clone(), None));
            }
            match verdict {
                Verdict::Permit => {}
                Verdict::Deny(reason) => denied.push((subject.clone(), reason)),
                Verdict::Indeterminate(message) => return Err(Refused::Unavailable(message)),
            }
        }
        let Some((_, reason)) = denied.iter().find(|(s, _)| s == subject) else {
            continue;
        };
        let withheld = Withheld::ConsentDenied {
            document: i + 1,
            kind: kind.to_string(),
            reason: *reason,
            category: case.category,
            recipient: platform.clone(),
        };
        *judgement = Judged::Withheld(withheld, Some(subject.clone()));
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::PartyId;
    use crate::pipeline::Identity;

    const INVOICE: &str = r#"{"document":"ClaimInvoice@1","source":{"sender":"0300000005"}}"#;
    const PLAN: &str = r#"{"document":"CarePlan@1","subject":{"insurer_number":"131011","insured_number":"0000100001"}}"#;

    fn doc<'a>(json: &str, kind: &'a str) -> Doc<'a> {
        Doc {
            who: Identity::of_json(json),
            kind,
            sender_at: Some("record 2, line 2; rule `source.sender` from `/8`".into()),
        }
    }

    fn case<'a>(source: &'a str, docs: &'a [Doc<'a>]) -> Case<'a> {
        Case {
            envelope: "env-1",
            point: "ingress",
            source,
            category: Category::Claims,
            docs,
            consulted: None,
        }
    }

    #[tokio::test]
    async fn a_document_without_a_person_is_admitted_without_a_subject_beside_a_persons_refusal() {
        let (hub, dir) = crate::pipeline::demo_hub("admission-mixed").await;
        let docs = [
            doc(INVOICE, "ClaimInvoice@1"),
            doc(PLAN, "CarePlan@1"),
            doc(INVOICE, "ClaimInvoice@1"),
        ];
        let judged = judge_each(&hub, &case("0300000005", &docs), None)
            .await
            .expect("judged per document");
        assert!(matches!(judged[0], Judged::Admitted(None)), "{judged:?}");
        assert!(matches!(judged[2], Judged::Admitted(None)), "{judged:?}");
        assert_eq!(judged[0].subject(), None);
        // The person's document is still judged as one: no consent, so withheld, naming it.
        let w = judged[1].withheld().expect("the care plan is withheld");
        assert_eq!(w.code(), "consent-denied:no-consent");
        assert_eq!(w.document(), Some((2, "CarePlan@1")));
        assert!(judged[1].subject().is_some());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_document_without_a_person_still_passes_every_check_of_the_whole_message() {
        let (hub, dir) = crate::pipeline::demo_hub("admission-whole").await;
        let docs = [doc(
            r#"{"document":"ClaimInvoice@1","source":{"sender":"0300000100"}}"#,
            "ClaimInvoice@1",
        )];
        let Err(Refused::Withheld(w)) = judge_each(&hub, &case("0300000005", &docs), None).await
        else {
            panic!("another 事業所's file is refused");
        };
        assert_eq!(w.code(), "sender-mismatch");
        assert!(!w.curable());
        let detail = w.detail();
        for part in [
            "names party 0300000100 as its sender (record 2, line 2; rule `source.sender` from `/8`)",
            "it came from 0300000005",
        ] {
            assert!(detail.contains(part), "`{part}` missing from: {detail}");
        }
        let docs = [doc(INVOICE, "ClaimInvoice@1")];
        let Err(Refused::Withheld(w)) = judge_each(&hub, &case("1234567890", &docs), None).await
        else {
            panic!("an unknown sender is refused");
        };
        assert_eq!(w.code(), "unknown-sender");
        // An invoice that holds a subject anyway is judged as that person's document.
        let odd = r#"{"document":"ClaimInvoice@1","source":{"sender":"0300000005"},"subject":{"insurer_number":"131011","insured_number":"0000100001"}}"#;
        let docs = [doc(odd, "ClaimInvoice@1")];
        let judged = judge_each(&hub, &case("0300000005", &docs), None)
            .await
            .expect("judged");
        let w = judged[0].withheld().expect("asked about the person");
        assert_eq!(w.code(), "consent-denied:no-consent");
        // Judged whole (deliver's replayed copy): admitted, with no person.
        let docs = [doc(INVOICE, "ClaimInvoice@1")];
        let admitted = judge(&hub, &case("0300000005", &docs), None)
            .await
            .expect("admitted");
        assert_eq!(admitted.subjects, [None]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_a_known_kind_without_a_subject_carries_no_person() {
        let nobody = Identity::of_json(INVOICE);
        assert!(!carries_person("ClaimInvoice@1", &nobody));
        assert!(!carries_person("ClaimInvoice", &nobody));
        for kind in [
            "InsuredPerson@1",
            "CarePlan@1",
            "ClaimInvoice@9",
            "Unknown@1",
            "",
        ] {
            assert!(carries_person(kind, &nobody), "{kind}");
        }
        let somebody = Identity::of_json(PLAN);
        assert!(carries_person("ClaimInvoice@1", &somebody));
    }

    #[test]
    fn only_a_false_identity_and_another_insurers_person_are_incurable() {
        for code in ["sender-mismatch", "insurer-mismatch"] {
            assert!(!curable(code), "{code}");
        }
        for code in [
            "consent-denied:no-consent",
            "consent-denied:revoked",
            "unknown-subject",
            "unknown-sender",
            "something-new",
        ] {
            assert!(curable(code), "{code}");
        }
        let w = Withheld::InsurerMismatch {
            document: 1,
            kind: "InsuranceCard@1".into(),
            source: "131011".into(),
        };
        assert_eq!(w.code(), "insurer-mismatch");
        assert!(!w.curable());
        assert!(w.detail().contains("replay keeps it"), "{}", w.detail());
    }

    #[test]
    fn a_message_kept_whole_is_kept_for_a_curable_reason_when_it_has_one() {
        let foreign = |document| Withheld::InsurerMismatch {
            document,
            kind: "InsuranceCard@1".into(),
            source: "131011".into(),
        };
        let unknown = Withheld::UnknownSubject {
            document: 2,
            kind: "InsuranceCard@1".into(),
            source: "131011".into(),
        };
        let both = [foreign(1), unknown.clone()];
        assert_eq!(whole(&both), Some(&unknown));
        let incurable = [foreign(1), foreign(2)];
        assert_eq!(whole(&incurable), Some(&incurable[0]));
        assert_eq!(whole(&[]), None);
    }

    #[test]
    fn a_withheld_document_says_which_one_and_its_detail_names_it() {
        let w = Withheld::UnknownSubject {
            document: 3,
            kind: "InsuredPerson@1".into(),
            source: "0300000005".into(),
        };
        assert_eq!(w.document(), Some((3, "InsuredPerson@1")));
        assert!(
            w.detail()
                .starts_with("document 3 (InsuredPerson@1) carries no"),
            "{}",
            w.detail()
        );
        let whole_message = Withheld::UnknownSender {
            source: "0300000005".into(),
        };
        assert_eq!(whole_message.document(), None);
        assert_eq!(named(12, "CarePlan@1"), "document 12 (CarePlan@1)");
    }

    #[test]
    fn a_consent_refusal_names_the_category_the_party_that_lacks_it_and_what_to_grant() {
        let platform = Recipient {
            id: PartyId::parse("9990000001").expect("id"),
            kind: PartyKind::Platform,
        };
        let w = Withheld::ConsentDenied {
            document: 2,
            kind: "CarePlan@1".into(),
            reason: DenyReason::CategoryNotCovered,
            category: Category::CarePlan,
            recipient: platform,
        };
        assert_eq!(w.code(), "consent-denied:category-not-covered");
        let d = w.detail();
        for part in [
            "document 2 (CarePlan@1)",
            "care-plan",
            "the platform (hub 9990000001)",
            "--to platform --categories care-plan",
        ] {
            assert!(d.contains(part), "`{part}` missing from: {d}");
        }
        let provider = Recipient {
            id: PartyId::parse("0300000005").expect("id"),
            kind: PartyKind::Provider,
        };
        let w = Withheld::ConsentDenied {
            document: 1,
            kind: "CarePlan@1".into(),
            reason: DenyReason::Revoked,
            category: Category::CarePlan,
            recipient: provider,
        };
        let d = w.detail();
        assert!(d.contains("provider 0300000005"), "{d}");
        assert!(d.contains("--to 0300000005"), "{d}");
        assert!(d.contains("revoked"), "{d}");
    }
}
