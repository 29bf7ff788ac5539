//! Preview: what a parked message would meet now if it were replayed — a dry run of the hops'
//! own checks, asked of the parties, consents, links and mappings in force now, with nothing
//! published, nothing moved and nothing audited or counted (the registry is consulted,
//! [`super::Hub::consult`], not decided on).
//!
//! A raw message is mapped again by the translate hop's own steps
//! ([`super::translate::mapped_again`]) and judged by [`super::admission`] as translate judges it
//! (sender, subject, insurer, consent #1/#2 to the platform); each document it would publish is
//! routed by the deliver hop's routes ([`super::deliver::routes`]) and each recipient's consent
//! #3 asked, skipping those its delivery key says were served. A canonical document (it carries
//! `x-kaigo-doc-index`) is judged as the deliver hop judges a replayed one, then routed the same
//! way. Chosen recipients (`replay --to`) narrow the routes exactly as `x-kaigo-replay-to` does in
//! the deliver hop. What the preview does not do: render each recipient's format (a recipient
//! whose outbound mapping fails shows as permitted; its copy would go to `dead`).
//!
//! In: the hub, a parked message's properties and body, the chosen recipients. Out: a
//! [`Preview`] of ids, codes, consent ids and value-free sentences; never a personal value.

use super::admission::{self, Consulted, Judged, Refused, Withheld};
use super::deliver::{delivery_key, routes};
use super::headers as h;
use super::outcome::Outcome;
use super::{Ask, Hub, Identity};
use crate::bus::Props;
use crate::consent::{Category, Decision, Subject};

/// What a parked message would meet now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Envelope id.
    pub envelope: String,
    /// What would happen to it.
    pub would: Would,
}

/// What replaying a message would do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Would {
    /// `replay` keeps it where it is (a reason no later fact can cure, or no source).
    Stay {
        /// The code it stays for.
        code: String,
        /// Why, in words.
        why: String,
    },
    /// A hop would keep it in the dead-letter queue again.
    Dead {
        /// Reason code (`mapping-failed`, `body-too-large`, `not-canonical`, …).
        reason: String,
        /// Where and why (value-free).
        error: String,
    },
    /// Admission would keep the whole message in quarantine again.
    Withheld {
        /// Reason code.
        code: String,
        /// What is missing and what clears it.
        detail: String,
    },
    /// The store or consent registry did not answer: nothing can be said now.
    Unknown(String),
    /// Its documents would be judged one by one, as here.
    Documents(Vec<DocumentPreview>),
}

/// One document's fate on a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentPreview {
    /// Its `x-kaigo-doc-index` (from 0).
    pub index: usize,
    /// Canonical kind (`CarePlan@1`).
    pub kind: String,
    /// Its platform category.
    pub category: Category,
    /// Consent #1/#2, the platform's answer for its person (`None` when the kind carries no
    /// person, or when it was withheld before consent was asked).
    pub platform: Option<Answer>,
    /// Why it would stay in quarantine, when it would.
    pub withheld: Option<(String, String)>,
    /// Each recipient it would be routed to (none when withheld).
    pub recipients: Vec<RecipientPreview>,
}

/// One recipient's copy on a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientPreview {
    /// The party id.
    pub party: String,
    /// The format it receives.
    pub format: String,
    /// What it would get.
    pub answer: Answer,
}

/// A consent answer, or why no question was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Permitted: by this consent (`None`: the document carries no person, so no consent is
    /// asked and the kind's routes alone decide).
    Permit(Option<String>),
    /// Denied: the registry's reason code and what is missing.
    Deny {
        /// `no-consent`, `revoked`, …
        reason: String,
        /// What is missing and what clears it (ids and codes only).
        detail: String,
    },
    /// The registry could not answer now (never taken as permit).
    Indeterminate(String),
    /// Its delivery key says it was served already: it gets nothing again.
    AlreadyDelivered,
    /// It receives no copies (no delivery target, or not a party that can be a recipient).
    NoTarget,
    /// Chosen, but it does not receive this kind from this sender.
    NotARecipient,
}

impl Answer {
    /// `permit`, `deny`, `indeterminate`, `delivered`, `no-target`, `not-a-recipient`: the
    /// console's `data-decision` and the CLI's first word.
    pub fn code(&self) -> &'static str {
        match self {
            Answer::Permit(_) => "permit",
            Answer::Deny { .. } => "deny",
            Answer::Indeterminate(_) => "indeterminate",
            Answer::AlreadyDelivered => "delivered",
            Answer::NoTarget => "no-target",
            Answer::NotARecipient => "not-a-recipient",
        }
    }

    fn of(d: &Decision) -> Answer {
        match d {
            Decision::Permit { consent_id } => Answer::Permit(Some(consent_id.to_string())),
            Decision::Deny { reason } => Answer::Deny {
                reason: reason.code().to_string(),
                detail: String::new(),
            },
            Decision::Indeterminate { reason } => Answer::Indeterminate(reason.to_string()),
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Permit(Some(c)) => write!(f, "permit (consent {c})"),
            Answer::Permit(None) => write!(f, "permit (no person: no consent asked)"),
            Answer::Deny { reason, detail } if detail.is_empty() => write!(f, "deny ({reason})"),
            Answer::Deny { reason, detail } => write!(f, "deny ({reason}): {detail}"),
            Answer::Indeterminate(r) => write!(f, "indeterminate ({r})"),
            Answer::AlreadyDelivered => write!(f, "already delivered: nothing again"),
            Answer::NoTarget => write!(f, "receives no copies (no delivery target)"),
            Answer::NotARecipient => {
                write!(
                    f,
                    "chosen, but it does not receive this kind from this sender"
                )
            }
        }
    }
}

/// What replaying the parked message (`props`, `body`) would do now, `to` only those
/// recipients when chosen.
pub async fn preview(hub: &Hub, props: &Props, body: &[u8], to: Option<&[String]>) -> Preview {
    let envelope = props.message_id.clone().unwrap_or_default();
    let would = match super::replay::must_stay(props) {
        Some((code, why)) => Would::Stay { code, why },
        None if props.header(h::DOC_INDEX).is_some() => document(hub, props, body, to).await,
        None => raw(hub, props, body, to).await,
    };
    Preview { envelope, would }
}

/// A raw message: mapped again, judged as translate judges it, each document routed.
async fn raw(hub: &Hub, props: &Props, body: &[u8], to: Option<&[String]>) -> Would {
    let envelope = props.message_id.clone().unwrap_or_default();
    let (mapped, category) = match super::translate::mapped_again::<()>(hub, props, body).await {
        Ok(m) => m,
        Err(o) => return ended(o),
    };
    let docs = admission::Doc::all(&mapped.documents);
    let consulted = Consulted::default();
    let source = props.header(h::SOURCE).unwrap_or("");
    let case = admission::Case {
        envelope: &envelope,
        point: "translate",
        source,
        category,
        docs: &docs,
        consulted: Some(&consulted),
    };
    let judged = match admission::judge_each(hub, &case, None).await {
        Ok(j) => j,
        Err(r) => return refused(r),
    };
    let answers = consulted.answers();
    let mut out = Vec::with_capacity(judged.len());
    for (i, (doc, judged)) in mapped.documents.iter().zip(judged).enumerate() {
        let kind = doc.kind.name();
        let platform = answers
            .iter()
            .find(|(n, _)| *n == i + 1)
            .map(|(_, d)| Answer::of(d));
        let mut p = DocumentPreview {
            index: i,
            kind: kind.to_string(),
            category,
            platform,
            withheld: judged.withheld().map(|w| (w.code(), w.detail())),
            recipients: Vec::new(),
        };
        if let Judged::Admitted(subject) = &judged {
            let copy = Copy {
                envelope: &envelope,
                index: i,
                kind,
                source,
                category,
                subject: subject.as_ref(),
            };
            p.recipients = match copy.recipients(hub, to).await {
                Ok(r) => r,
                Err(unknown) => return unknown,
            };
        }
        out.push(p);
    }
    Would::Documents(out)
}

/// A canonical document: judged as the deliver hop judges a replayed copy, then routed.
async fn document(hub: &Hub, props: &Props, body: &[u8], to: Option<&[String]>) -> Would {
    let envelope = props.message_id.clone().unwrap_or_default();
    let who: Identity = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(e) => {
            return Would::Dead {
                reason: "not-canonical".into(),
                error: format!("canonical document is not a JSON object: {e}"),
            };
        }
    };
    let Some(category) = props
        .header(h::CATEGORY)
        .and_then(|c| c.parse::<Category>().ok())
    else {
        return Would::Dead {
            reason: "no-category".into(),
            error: "message has no x-kaigo-category".into(),
        };
    };
    let kind = who.document.clone().unwrap_or_default();
    let index: usize = props
        .header(h::DOC_INDEX)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let source = props.header(h::SOURCE).unwrap_or("");
    let consulted = Consulted::default();
    let docs = [admission::Doc {
        who,
        kind: &kind,
        sender_at: None,
    }];
    let case = admission::Case {
        envelope: &envelope,
        point: "deliver",
        source,
        category,
        docs: &docs,
        consulted: Some(&consulted),
    };
    let judged = match admission::judge_each(hub, &case, None).await {
        Ok(j) => j,
        Err(r) => return refused(r),
    };
    let platform = consulted.answers().first().map(|(_, d)| Answer::of(d));
    let Some(judged) = judged.into_iter().next() else {
        return Would::Documents(Vec::new());
    };
    // The deliver hop numbers the document of a copy by its index (`document index + 1`).
    let renumbered = judged.withheld().map(|w| {
        let w = renumber(w.clone(), index + 1);
        (w.code(), w.detail())
    });
    let mut p = DocumentPreview {
        index,
        kind: kind.clone(),
        category,
        platform,
        withheld: renumbered,
        recipients: Vec::new(),
    };
    if let Judged::Admitted(subject) = &judged {
        let copy = Copy {
            envelope: &envelope,
            index,
            kind: &kind,
            source,
            category,
            subject: subject.as_ref(),
        };
        p.recipients = match copy.recipients(hub, to).await {
            Ok(r) => r,
            Err(unknown) => return unknown,
        };
    }
    Would::Documents(vec![p])
}

/// A withheld document as the deliver hop numbers it.
fn renumber(w: Withheld, n: usize) -> Withheld {
    match w {
        Withheld::UnknownSubject { kind, source, .. } => Withheld::UnknownSubject {
            document: n,
            kind,
            source,
        },
        Withheld::InsurerMismatch { kind, source, .. } => Withheld::InsurerMismatch {
            document: n,
            kind,
            source,
        },
        Withheld::ConsentDenied {
            kind,
            reason,
            category,
            recipient,
            ..
        } => Withheld::ConsentDenied {
            document: n,
            kind,
            reason,
            category,
            recipient,
        },
        other => other,
    }
}

/// One admitted document on its way to its recipients.
struct Copy<'a> {
    envelope: &'a str,
    index: usize,
    kind: &'a str,
    source: &'a str,
    category: Category,
    subject: Option<&'a Subject>,
}

impl Copy<'_> {
    /// Each recipient's answer, in the deliver hop's order: served already, can receive at
    /// all, consent #3. `Err` when the store could not say what was delivered.
    async fn recipients(
        &self,
        hub: &Hub,
        to: Option<&[String]>,
    ) -> Result<Vec<RecipientPreview>, Would> {
        let parties = hub.parties.current();
        let routed = routes(&parties, self.kind, self.source, to);
        let mut out = Vec::with_capacity(routed.len());
        for (party, format) in &routed {
            let key = delivery_key(self.envelope, &self.index.to_string(), &party.id);
            let answer = match crate::store::was_delivered(&hub.store, &key).await {
                Err(e) => return Err(Would::Unknown(e.to_string())),
                Ok(true) => Answer::AlreadyDelivered,
                Ok(false) => match (party.recipient(), &party.delivery) {
                    (Some(recipient), Some(_)) => self.consent(hub, recipient).await,
                    _ => Answer::NoTarget,
                },
            };
            out.push(RecipientPreview {
                party: party.id.clone(),
                format: (*format).to_string(),
                answer,
            });
        }
        for chosen in to.unwrap_or_default() {
            if !routed.iter().any(|(p, _)| &p.id == chosen) {
                out.push(RecipientPreview {
                    party: chosen.clone(),
                    format: String::new(),
                    answer: Answer::NotARecipient,
                });
            }
        }
        Ok(out)
    }

    /// Consent #3 for `recipient`, as the deliver hop asks it.
    async fn consent(&self, hub: &Hub, recipient: crate::consent::Recipient) -> Answer {
        let Some(subject) = self.subject else {
            return Answer::Permit(None);
        };
        let ask = Ask {
            envelope: self.envelope,
            point: "deliver",
            subject,
            recipient: &recipient,
            category: self.category,
            document: self.kind,
        };
        match hub.consult(&ask).await {
            Decision::Deny { reason } => Answer::Deny {
                reason: reason.code().to_string(),
                detail: Withheld::ConsentDenied {
                    document: self.index + 1,
                    kind: self.kind.to_string(),
                    reason,
                    category: self.category,
                    recipient,
                }
                .detail(),
            },
            d => Answer::of(&d),
        }
    }
}

/// A hop's step that ended the journey, as a preview says it.
fn ended(o: Outcome<()>) -> Would {
    match o {
        Outcome::Dead { error, reason } => Would::Dead {
            reason: reason.to_string(),
            error: error.to_string(),
        },
        Outcome::Quarantine(w) => Would::Withheld {
            code: w.code(),
            detail: w.detail(),
        },
        Outcome::Retry(m) => Would::Unknown(m),
        Outcome::Forward(()) | Outcome::Stop => Would::Unknown("not judged".into()),
    }
}

/// Admission refused the whole message.
fn refused(r: Refused) -> Would {
    match r {
        Refused::Withheld(w) => Would::Withheld {
            code: w.code(),
            detail: w.detail(),
        },
        Refused::Unavailable(m) => Would::Unknown(m),
        Refused::Stopped => Would::Unknown("stopped".into()),
    }
}
