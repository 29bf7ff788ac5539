//! Hop 3: consume canonical documents, find the recipients that subscribe to the document kind
//! (never the sender itself), ask consent #3 per recipient (may *this* party receive *this*
//! category of *this* person now?), render each recipient's format with an outbound mapping,
//! hand it to the recipient's sink, record the delivery key, then ack. Deliveries are
//! de-duplicated by envelope + document + recipient, so a redelivered message does not give a
//! recipient a copy already recorded. A copy sent but not yet recorded when the process dies
//! (broker confirm in flight, or confirmed but not written) is sent again after the restart:
//! across a crash delivery is at-least-once, and the copy carries the same `message_id` (the
//! envelope), `x-kaigo-doc-index` and `x-kaigo-recipient` for the recipient to de-duplicate.
//! A denied recipient gets nothing; a quarantined copy names it. When a recipient's sink fails,
//! a copy for that recipient alone (`x-kaigo-retry-for`, `x-kaigo-attempt`) goes to the waiting
//! room of the delay `retry_delays_ms` gives for that attempt (`kaigo.deliver.wait.<ms>`), which
//! hands it back to the deliver queue when its time is up, and the hop goes on with the other
//! recipients and acks: a recipient that is down holds up neither the others nor the hop's
//! prefetch window. The attempt with no delay left is the last: that copy goes to the
//! dead-letter queue with the sink's error in `x-kaigo-error` and the recipient in
//! `x-kaigo-recipient`. So does, at once, a copy whose recipient refused the content itself
//! (HTTP 400, 413, 415, 422: `SinkError::refused`), which another try would send unchanged.
//!
//! Read top to bottom: `handle` reads the copy's [`Labels`], runs the steps (`canonical`,
//! `category`, `subject`, then per recipient `fate`), and hands the result to `settle`, the one
//! place the delivery is acked or requeued (a whole copy quarantined or dead-lettered there
//! too). Each recipient's [`Fate`] is carried out by `settle_copy`, the one place a copy is
//! sent, quarantined, dead-lettered or put in a waiting room, and audited.

use super::headers as h;
use super::metrics::Metrics;
use super::outcome::Outcome;
use super::{Hub, Identity, Verdict, admission};
use crate::audit::{Decision as AuditDecision, Hop, SubjectHash};
use crate::bus::{BusError, Delivery, Props};
use crate::consent::{Category, Subject};
use crate::mapping::{MappingSet, Rendered};
use crate::parties::{DeliveryTarget, Parties, Party};
use crate::sinks::{Outbound, SinkError};
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Runs the deliver hop until shutdown.
pub async fn run(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Result<(), BusError> {
    let queue = hub.topology.deliver_queue();
    super::consume_until_shutdown(hub, &queue, "deliver", shutdown, |hub, d, sd| async move {
        handle(&hub, d, sd).await
    })
    .await
}

/// A step of this hop: what the next step needs, or how the copy's journey ends.
type Step<T> = super::outcome::Step<T, ()>;

/// One copy's journey through the hop: its steps, then the one place that settles it.
async fn handle(hub: &Hub, mut d: Delivery, mut shutdown: watch::Receiver<bool>) {
    // Back from a waiting room, the copy carries the broker's dead-letter marks; they would
    // mislead anyone reading the recipient's copy or a later dead letter.
    d.props.strip_dead_letter_marks();
    let (labels, who) = Labels::read(&d.props, &d.body);
    let letter = Letter {
        props: &d.props,
        body: &d.body,
    };
    let outcome = Outcome::of(deliver(hub, letter, &labels, who, &mut shutdown).await);
    settle(hub, d, &labels, outcome).await;
}

/// The message as the hop publishes copies of it (never the delivery: only `settle` settles
/// that).
#[derive(Clone, Copy)]
struct Letter<'a> {
    props: &'a Props,
    body: &'a [u8],
}

/// What the hop reads of a copy's properties and document, for its steps and audit events.
struct Labels {
    envelope: String,
    source: String,
    /// `x-kaigo-doc-index`.
    index: String,
    /// A copy from a waiting room is for one recipient, on its attempt `attempt`.
    retry_for: Option<String>,
    /// A copy `replay` put back for chosen recipients only (`x-kaigo-replay-to`).
    chosen: Option<Vec<String>>,
    attempt: u32,
    /// A document translate vouched for just now (not replayed, not back from a waiting room).
    from_translate: bool,
    /// The canonical kind (`CarePlan@1`; empty when the document does not name it).
    kind: String,
    category: Option<Category>,
}

impl Labels {
    /// The labels, and what the hop reads itself of the document; the whole document is parsed
    /// only for a recipient whose format needs an outbound mapping (see `Renders`).
    fn read(props: &Props, body: &[u8]) -> (Labels, Result<Identity, String>) {
        let who: Result<Identity, String> = serde_json::from_slice(body).map_err(|e| e.to_string());
        let retry_for = props.header(h::RETRY_FOR).map(String::from);
        let labels = Labels {
            envelope: props.message_id.clone().unwrap_or_default(),
            source: props.header(h::SOURCE).unwrap_or("").to_string(),
            index: props.header(h::DOC_INDEX).unwrap_or("0").to_string(),
            from_translate: props.header(h::HOP) == Some("translate") && retry_for.is_none(),
            retry_for,
            chosen: chosen(props),
            attempt: props
                .header(h::ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(1)
                .max(1),
            kind: who
                .as_ref()
                .ok()
                .and_then(|w| w.document.clone())
                .unwrap_or_default(),
            category: props.header(h::CATEGORY).and_then(|c| c.parse().ok()),
        };
        (labels, who)
    }

    /// The document's number within its envelope, counted from 1.
    fn document(&self) -> usize {
        self.index.parse::<usize>().map_or(1, |i| i + 1)
    }
}

/// The steps, in order: a canonical document of a known category about a known person, then
/// each recipient's copy.
async fn deliver(
    hub: &Hub,
    letter: Letter<'_>,
    labels: &Labels,
    who: Result<Identity, String>,
    shutdown: &mut watch::Receiver<bool>,
) -> Step<()> {
    let who = canonical(who)?;
    let category = category(labels)?;
    let subject = subject(hub, labels, who, category, shutdown).await?;
    let journey = Journey {
        hub,
        letter,
        labels,
        category,
        hash: subject.as_ref().map(|s| {
            hub.hasher
                .hash(s.insurer_number.as_str(), s.insured_number.as_str())
        }),
        subject,
    };
    let parties = hub.parties.current();
    match journey.recipients(&parties) {
        Ok(recipients) => journey.serve(recipients, shutdown).await,
        Err(gone) => journey.settle_copy(gone, shutdown).await,
    }
}

/// The parties a copy of a `kind` document from `source` goes to, each with its format: those
/// that receive the kind, never the sender itself; only the `chosen` ones of them when `replay`
/// chose (`x-kaigo-replay-to`). A replay's preview routes by this too.
pub(crate) fn routes<'p>(
    parties: &'p Parties,
    kind: &str,
    source: &str,
    chosen: Option<&[String]>,
) -> Vec<(&'p Party, &'p str)> {
    let mut recipients = parties.recipients_of(kind, source);
    if let Some(chosen) = chosen {
        recipients.retain(|(p, _)| chosen.contains(&p.id));
    }
    recipients
}

/// The recipients `replay` chose for a copy (`x-kaigo-replay-to`), if it chose.
pub(crate) fn chosen(props: &Props) -> Option<Vec<String>> {
    props.header(h::REPLAY_TO).map(|to| {
        to.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    })
}

/// The delivery key of one recipient's copy of one document: what the hop records once the
/// copy is sent, and skips a recipient by when it is already there.
pub(crate) fn delivery_key(envelope: &str, index: &str, party: &str) -> String {
    format!("{envelope}/{index}/{party}")
}

/// The body is a canonical document (a JSON object).
fn canonical(who: Result<Identity, String>) -> Step<Identity> {
    who.map_err(|e| {
        Outcome::dead(
            format!("canonical document is not a JSON object: {e}"),
            "not-canonical",
        )
    })
}

/// The copy names its platform category.
fn category(labels: &Labels) -> Step<Category> {
    labels
        .category
        .ok_or_else(|| Outcome::dead("message has no x-kaigo-category", "no-category"))
}

/// Whose data it is. A document translate vouched for just now needs only its subject; any
/// other copy (one `replay` put back, one back from a waiting room minutes later) is judged as a
/// new message would be: sender, subject, insurer, and the person's consent to the platform, as
/// in force now. `None`: the document's kind carries no person (a 請求書), so there is nobody to
/// resolve, and a copy not from translate passes the sender's checks alone.
async fn subject(
    hub: &Hub,
    labels: &Labels,
    who: Identity,
    category: Category,
    shutdown: &mut watch::Receiver<bool>,
) -> Step<Option<Subject>> {
    if labels.from_translate && !admission::carries_person(&labels.kind, &who) {
        return Ok(None);
    }
    if labels.from_translate {
        return match hub
            .subject_of_retrying(&labels.source, &who, shutdown)
            .await
        {
            Ok(Some(s)) => Ok(Some(s)),
            Ok(None) => Err(Outcome::Quarantine(admission::Withheld::UnknownSubject {
                document: labels.document(),
                kind: labels.kind.clone(),
                source: labels.source.clone(),
            })),
            // Shutting down while the store is away: leave it unacked for redelivery.
            Err(()) => Err(Outcome::Stop),
        };
    }
    let docs = [admission::Doc {
        who,
        kind: &labels.kind,
        sender_at: None,
    }];
    let case = admission::Case {
        envelope: &labels.envelope,
        point: "deliver",
        source: &labels.source,
        category,
        docs: &docs,
        consulted: None,
    };
    let admitted = admission::judge(hub, &case, Some(shutdown)).await?;
    let first = admitted.subjects.into_iter().next();
    Ok(first.expect("one document, one judgement"))
}

/// The one place the hop settles a delivery: acks it once every recipient's copy was settled
/// (or the whole copy kept in the dead-letter queue or quarantine, then audited), requeues it
/// when something could not be done now (a dead letter or quarantined copy the broker would not
/// take included: bad input loses nothing), or (shutting down) leaves it unsettled for
/// redelivery.
async fn settle(hub: &Hub, d: Delivery, labels: &Labels, outcome: Outcome<()>) {
    let envelope = labels.envelope.as_str();
    let (kept, decision, reason) = match outcome {
        Outcome::Forward(()) => {
            let _ = d.ack().await;
            return;
        }
        // Not a canonical document, or no category.
        Outcome::Dead { error, reason } => {
            let error = error.to_string();
            tracing::warn!(envelope, error = error.as_str(), "deliver: dead-lettered");
            let kept = hub.dead(&d.props, &d.body, reason, &error).await;
            (kept, AuditDecision::Dead, reason.to_string())
        }
        Outcome::Quarantine(w) => {
            let reason = w.code();
            let kept = hub
                .quarantine("deliver", &d.props, &d.body, &reason, &w.detail(), None)
                .await;
            (kept, AuditDecision::Quarantined, reason)
        }
        Outcome::Retry(message) => {
            tracing::warn!(envelope, error = %message, "deliver: cannot settle the copy now; requeue");
            let _ = d.requeue().await;
            return;
        }
        Outcome::Stop => return,
    };
    if let Err(e) = kept {
        tracing::warn!(envelope, error = %e, "deliver: cannot keep the copy in the dead-letter queue or quarantine; requeue");
        let _ = d.requeue().await;
        return;
    }
    // The category and kind as far as they are known (neither on a `not-canonical` copy).
    hub.audit(Hop::Deliver, "deliver", envelope, |a| {
        let mut a = a
            .party(labels.source.as_str())
            .decision(decision)
            .reason(reason);
        if let Some(category) = labels.category {
            a = a.category(category.code());
        }
        if !labels.kind.is_empty() {
            a = a.document(labels.kind.as_str());
        }
        a
    });
    let _ = d.ack().await;
}

/// What becomes of one recipient's copy; `settle_copy` carries it out.
enum Fate<'r> {
    /// Nothing to do: already delivered, or a party that cannot receive.
    Skip,
    /// Consent #3 said no: a quarantined copy names the recipient.
    Withheld {
        party: &'r str,
        withheld: admission::Withheld,
        /// The registry's reason, for the audit event.
        reason: &'static str,
    },
    /// Kept in the dead-letter queue with `error`, naming the recipient.
    Dead {
        party: &'r str,
        error: String,
        /// Reason code for the audit event.
        reason: &'static str,
    },
    /// Hand the rendered copy to the recipient's sink, then record its delivery key.
    Send {
        party: &'r str,
        format: &'r str,
        target: &'r DeliveryTarget,
        rendered: &'r Rendering,
        key: &'r str,
    },
    /// The sink failed and the delivery limit is not reached: a copy for this recipient alone
    /// waits `wait` in its own room.
    Wait {
        party: &'r str,
        wait: Duration,
        error: SinkError,
    },
}

/// One judged message on its way to its recipients: what every copy of it shares.
struct Journey<'a> {
    hub: &'a Hub,
    letter: Letter<'a>,
    labels: &'a Labels,
    category: Category,
    /// The document's person; `None` when its kind carries none (no consent #3 to ask).
    subject: Option<Subject>,
    hash: Option<SubjectHash>,
}

impl<'a> Journey<'a> {
    /// The parties that receive this kind from this sender (only the one a copy from a waiting
    /// room is for); `Err` with that copy's fate when it no longer does.
    fn recipients<'p>(&self, parties: &'p Parties) -> Result<Vec<(&'p Party, &'p str)>, Fate<'a>> {
        let labels: &'a Labels = self.labels;
        let (kind, source) = (&labels.kind, &labels.source);
        let mut recipients = routes(parties, kind, source, labels.chosen.as_deref());
        let Some(only) = &labels.retry_for else {
            return Ok(recipients);
        };
        recipients.retain(|(p, _)| p.id == *only);
        if !recipients.is_empty() {
            return Ok(recipients);
        }
        // The parties file changed while the copy waited: keep it where an operator sees it.
        Err(Fate::Dead {
            party: only,
            error: format!(
                "recipient {only} no longer receives {kind} from {source} (the parties file changed while its copy waited to be tried again)"
            ),
            reason: "not-a-recipient",
        })
    }

    /// Each recipient's copy in turn: its fate, then `settle_copy`.
    async fn serve<'p>(
        &self,
        recipients: Vec<(&'p Party, &'p str)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Step<()> {
        // One mapping set for the whole message, even if `serve --watch` replaces it meanwhile.
        let mappings = self.hub.mappings.current();
        let mut renders = Renders::new(
            self.letter.body,
            &self.hub.fhir_ids,
            recipients.iter().map(|(_, f)| *f),
        );
        for (party, format) in recipients {
            let key = delivery_key(&self.labels.envelope, &self.labels.index, &party.id);
            // Check, send and record as one step per key in this process: after a lost broker
            // connection the message comes back while its first handler may still be sending.
            let Some(_claim) = Claim::take(&key, shutdown).await else {
                return Err(Outcome::Stop);
            };
            let fate = self
                .fate(party, format, &key, &mappings, &mut renders, shutdown)
                .await?;
            self.settle_copy(fate, shutdown).await?;
        }
        Ok(())
    }

    /// What becomes of `party`'s copy: not again once delivered; only with its consent (#3);
    /// rendered in its format; sent where it receives.
    async fn fate<'r, 'p: 'r>(
        &self,
        party: &'p Party,
        format: &'p str,
        key: &'r str,
        mappings: &MappingSet,
        renders: &'r mut Renders<'p>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Step<Fate<'r>> {
        let delivered = retrying(shutdown, || {
            crate::store::was_delivered(&self.hub.store, key)
        });
        match delivered.await {
            Some(true) => return Ok(Fate::Skip),
            Some(false) => {}
            None => return Err(Outcome::Stop),
        }
        let Some(recipient) = party.recipient() else {
            return Ok(Fate::Skip);
        };
        // Consent #3 is a person's: a document without one goes by its kind's routes alone.
        let verdict = match &self.subject {
            None => Some(Verdict::Permit),
            Some(subject) => {
                let ask = super::Ask {
                    envelope: &self.labels.envelope,
                    point: "deliver",
                    subject,
                    recipient: &recipient,
                    category: self.category,
                    document: &self.labels.kind,
                };
                self.hub.decide_until_known(&ask, shutdown).await
            }
        };
        match verdict {
            None => return Err(Outcome::Stop),
            Some(Verdict::Indeterminate(r)) => return Err(Outcome::Retry(r)),
            Some(Verdict::Deny(reason)) => {
                let withheld = admission::Withheld::ConsentDenied {
                    document: self.labels.document(),
                    kind: self.labels.kind.clone(),
                    reason,
                    category: self.category,
                    recipient,
                };
                let reason = reason.code();
                let party = &party.id;
                return Ok(Fate::Withheld {
                    party,
                    withheld,
                    reason,
                });
            }
            Some(Verdict::Permit) => {}
        }
        let rendered = match renders.get(mappings, format) {
            Ok(r) => r,
            // The document cannot be rendered for this recipient: keep it with the error.
            Err(e) => {
                let (party, error) = (&party.id, e.clone());
                return Ok(Fate::Dead {
                    party,
                    error,
                    reason: "render-failed",
                });
            }
        };
        Ok(match &party.delivery {
            Some(target) => Fate::Send {
                party: &party.id,
                format,
                target,
                rendered,
                key,
            },
            None => Fate::Skip,
        })
    }

    /// The one place a recipient's copy is sent, quarantined, dead-lettered or put in a waiting
    /// room, and audited; `Err` when that could not be done now (`settle` requeues the delivery)
    /// or shutdown came meanwhile.
    async fn settle_copy(&self, fate: Fate<'_>, shutdown: &mut watch::Receiver<bool>) -> Step<()> {
        let mut fate = fate;
        // A failed send turns into the fate `after_failure` gives it, settled on the next turn.
        let kept = loop {
            break match fate {
                Fate::Skip => return Ok(()),
                Fate::Withheld {
                    party,
                    withheld,
                    reason,
                } => {
                    let Letter { props, body } = self.letter;
                    let (code, detail) = (withheld.code(), withheld.detail());
                    let kept =
                        self.hub
                            .quarantine("deliver", props, body, &code, &detail, Some(party));
                    kept.await
                        .map(|()| (party, AuditDecision::Quarantined, reason.to_string()))
                }
                Fate::Dead {
                    party,
                    error,
                    reason,
                } => self
                    .dead_copy(party, reason, &error)
                    .await
                    .map(|()| (party, AuditDecision::Dead, reason.to_string())),
                Fate::Wait { party, wait, error } => {
                    let reason = format!("sink-failed:attempt-{}", self.labels.attempt);
                    self.wait_copy(party, wait, &error)
                        .await
                        .map(|()| (party, AuditDecision::Retrying, reason))
                }
                Fate::Send {
                    party,
                    format,
                    target,
                    rendered,
                    key,
                } => match self.send(party, target, rendered).await {
                    Ok(()) => return self.delivered(party, format, key, shutdown).await,
                    Err(e) => {
                        fate = self.after_failure(party, e);
                        continue;
                    }
                },
            };
        };
        let (party, decision, reason) = kept.map_err(|e| Outcome::Retry(e.to_string()))?;
        self.audit_copy(party, decision, &reason);
        Ok(())
    }

    /// Hands the rendered copy to the recipient's sink, with the deliver hop's headers.
    async fn send(
        &self,
        party: &str,
        target: &DeliveryTarget,
        rendered: &Rendering,
    ) -> Result<(), SinkError> {
        let (envelope, index) = (&self.labels.envelope, &self.labels.index);
        let mut props = Props {
            message_id: Some(envelope.clone()),
            correlation_id: self.letter.props.correlation_id.clone(),
            content_type: Some(rendered.1.into()),
            user_id: None,
            headers: self.letter.props.headers.clone(),
        };
        props.headers.remove(h::RETRY_FOR);
        props.headers.remove(h::ATTEMPT);
        props.headers.insert(h::HOP.into(), "deliver".into());
        props.headers.insert(h::RECIPIENT.into(), party.to_string());
        let file_name = format!("{envelope}-{index}.{}", rendered.2);
        let out = Outbound {
            recipient: party,
            body: &rendered.0,
            content_type: rendered.1,
            file_name: &file_name,
            props: &props,
        };
        let hub = self.hub;
        hub.sinks
            .send(hub.bus.as_ref(), &hub.topology.egress(), target, &out)
            .await
    }

    /// A sent copy: its delivery key recorded, counted and audited.
    async fn delivered(
        &self,
        party: &str,
        format: &str,
        key: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Step<()> {
        if record_retrying(self.hub, shutdown, key).await.is_none() {
            // Shutting down with the store away: sent but not recorded, so it is sent again
            // after the redelivery (at-least-once; acking would lose the other recipients).
            return Err(Outcome::Stop);
        }
        Metrics::inc(&self.hub.metrics.delivered);
        self.audit_copy(party, AuditDecision::Delivered, "");
        tracing::info!(envelope = %self.labels.envelope, recipient = %party, format, "delivered");
        Ok(())
    }

    /// After a failed send: a recipient that is down for a moment must not use up its tries in
    /// a second, nor make the others wait, so its copy waits in a room of its own; at the last
    /// attempt, or when the recipient refused the content itself (it would refuse the same
    /// bytes again), its copy goes to the dead-letter queue with the sink's error, and the hop
    /// goes on with the other recipients.
    fn after_failure<'r>(&self, party: &'r str, e: SinkError) -> Fate<'r> {
        let attempt = self.labels.attempt;
        let wait = if e.refused {
            None
        } else {
            self.hub.topology.retry_delay(attempt)
        };
        if let Some(wait) = wait {
            return Fate::Wait {
                party,
                wait,
                error: e,
            };
        }
        let (error, reason) = if e.refused {
            let error = format!(
                "{e}; not tried again: the recipient refused the content itself, and another try would send it unchanged"
            );
            (error, "sink-refused")
        } else {
            (e.message, "sink-failed")
        };
        tracing::warn!(envelope = %self.labels.envelope, recipient = %party, error = %error, attempt, "deliver: sink failed at the delivery limit or refused the content; dead-lettered");
        Fate::Dead {
            party,
            error,
            reason,
        }
    }

    /// Puts a copy for `party` alone in the waiting room of `wait`, on its next attempt.
    async fn wait_copy(&self, party: &str, wait: Duration, e: &SinkError) -> Result<(), BusError> {
        let (envelope, attempt) = (&self.labels.envelope, self.labels.attempt);
        let mut again = self.letter.props.clone();
        again.user_id = None;
        again.headers.insert(h::RETRY_FOR.into(), party.to_string());
        again
            .headers
            .insert(h::ATTEMPT.into(), (attempt + 1).to_string());
        let room = crate::bus::Topology::wait_key(wait);
        let hub = self.hub;
        let put = hub
            .bus
            .publish(&hub.topology.wait(), &room, &again, self.letter.body)
            .await;
        if let Err(b) = put {
            tracing::warn!(envelope, recipient = %party, error = %b, "deliver: cannot put a copy in a waiting room; requeue");
            return Err(b);
        }
        Metrics::inc(&hub.metrics.delivery_retries);
        tracing::warn!(envelope, recipient = %party, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "deliver: sink failed; tried again later");
        Ok(())
    }

    /// Keeps one recipient's copy in the dead-letter queue with `error`, naming the recipient.
    async fn dead_copy(&self, recipient: &str, reason: &str, error: &str) -> Result<(), BusError> {
        let mut p = self.letter.props.clone();
        p.headers.insert(h::RECIPIENT.into(), recipient.to_string());
        self.hub.dead(&p, self.letter.body, reason, error).await
    }

    /// What happened to one recipient's copy, for the audit log.
    fn audit_copy(&self, party: &str, decision: AuditDecision, reason: &str) {
        let labels = self.labels;
        self.hub
            .audit(Hop::Deliver, "deliver", &labels.envelope, |a| {
                let a = a
                    .party(party)
                    .category(self.category.code())
                    .document(labels.kind.as_str())
                    .decision(decision);
                let (a, quiet) = match &self.hash {
                    Some(hash) => (a.subject(hash.clone()), ""),
                    // No person: the copy went with no consent asked, and says so.
                    None => (a, admission::NO_SUBJECT),
                };
                match (reason, quiet) {
                    ("", "") => a,
                    ("", quiet) => a.reason(quiet),
                    (reason, _) => a.reason(reason),
                }
            })
    }
}

/// Delivery keys being checked, sent and recorded by this process.
static IN_HAND: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// This process's hold on one delivery key; released when dropped.
struct Claim(String);

impl Claim {
    /// Waits until no other handler holds `key`; `None` when shutdown was requested meanwhile.
    async fn take(key: &str, shutdown: &mut watch::Receiver<bool>) -> Option<Claim> {
        loop {
            if IN_HAND
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string())
            {
                return Some(Claim(key.to_string()));
            }
            tokio::select! {
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        IN_HAND
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// Records a delivery key (in a group with the others waiting, [`super::keys`]), retried like
/// every store call of this hop ([`retrying`]).
async fn record_retrying(hub: &Hub, shutdown: &mut watch::Receiver<bool>, key: &str) -> Option<()> {
    retrying(shutdown, || hub.delivery_keys.record(key.to_string())).await
}

/// Tries `attempt` until it succeeds, waiting 0.1 s, 0.2 s, … up to 10 s between tries: a
/// brief database outage delays a delivery; it neither counts towards the delivery limit nor
/// forgets a delivery key. `None` when shutdown was requested while waiting.
async fn retrying<T, F: Future<Output = Result<T, StoreError>>>(
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut wait = Duration::from_millis(100);
    loop {
        let error = match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "deliver: store unavailable; retrying");
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// A rendered copy: bytes, MIME type, file extension.
type Rendering = (Vec<u8>, &'static str, &'static str);

/// One message's renderings, one per format however many recipients ask for it. `canonical` is
/// the message body as it came; other formats run an outbound mapping over the document, which
/// is parsed on the first such need and handed over (not copied) to the last one.
struct Renders<'a> {
    body: &'a [u8],
    /// The deployment's FHIR resource ids (`fhir` is one transaction Bundle per document).
    ids: &'a crate::fhir::ResourceIds,
    doc: Option<serde_json::Value>,
    /// Formats still to render (a format appears once).
    pending: Vec<&'a str>,
    done: Vec<(&'a str, Result<Rendering, String>)>,
}

impl<'a> Renders<'a> {
    fn new(
        body: &'a [u8],
        ids: &'a crate::fhir::ResourceIds,
        formats: impl Iterator<Item = &'a str>,
    ) -> Self {
        let mut pending: Vec<&str> = Vec::new();
        for f in formats {
            if f != "canonical" && !pending.contains(&f) {
                pending.push(f);
            }
        }
        Renders {
            body,
            ids,
            doc: None,
            pending,
            done: Vec::new(),
        }
    }

    fn get(&mut self, set: &MappingSet, format: &'a str) -> Result<&Rendering, &String> {
        let at = match self.done.iter().position(|(f, _)| *f == format) {
            Some(at) => at,
            None => {
                let copy = self.render(set, format);
                self.done.push((format, copy));
                self.done.len() - 1
            }
        };
        self.done[at].1.as_ref()
    }

    fn render(&mut self, set: &MappingSet, format: &'a str) -> Result<Rendering, String> {
        if format == "canonical" {
            return Ok((self.body.to_vec(), "application/json", "json"));
        }
        self.pending.retain(|f| *f != format);
        let doc = match self.doc.take() {
            Some(doc) => doc,
            None => serde_json::from_slice(self.body)
                .map_err(|e| format!("canonical document is not JSON: {e}"))?,
        };
        let doc = if self.pending.is_empty() {
            doc
        } else {
            self.doc.insert(doc).clone()
        };
        // `fhir`: the hub's Bundle around the mapping's resources (docs/fhir.md).
        match crate::fhir::render(set, vec![doc], format, None, Some(self.ids))
            .map_err(|e| e.to_string())?
        {
            Rendered::Json(texts) => Ok((
                texts.join("\n").into_bytes(),
                "application/fhir+json",
                "json",
            )),
            Rendered::Csv(bytes) => Ok((bytes, "text/csv; charset=Shift_JIS", "csv")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ids() -> crate::fhir::ResourceIds {
        crate::fhir::ResourceIds::new(&[7u8; 32]).expect("test key")
    }

    fn set() -> MappingSet {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        MappingSet::load_dir(&root.join("mappings")).expect("shipped mappings load")
    }

    fn sample(name: &str) -> Vec<u8> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read(root.join("samples/careplan").join(name)).expect("sample")
    }

    /// The first document of the UP2KYO sample (the deliver hop gets one document per message)
    /// as the body translate publishes.
    fn first_care_plan() -> (serde_json::Value, Vec<u8>) {
        let docs: Vec<serde_json::Value> = serde_json::from_slice(&sample(
            "UP2KYO_0300000100_43_0300000005_11_20251025200201.careplan.json",
        ))
        .expect("sample is JSON");
        let doc = docs.into_iter().next().expect("one document");
        let body = serde_json::to_vec(&doc).expect("serialises");
        (doc, body)
    }

    /// `subject` of a copy of `body` that `hop` published, labelled as sent by `source`.
    async fn person_of(hub: &Hub, body: &[u8], hop: &str, source: &str) -> Step<Option<Subject>> {
        let mut props = Props::default();
        for (k, v) in [
            (h::SOURCE, source),
            (h::HOP, hop),
            (h::CATEGORY, "claims"),
            (h::DOC_INDEX, "0"),
        ] {
            props.headers.insert(k.into(), v.into());
        }
        let (labels, who) = Labels::read(&props, body);
        let (_stop, mut shutdown) = watch::channel(false);
        let who = who.expect("JSON");
        subject(hub, &labels, who, Category::Claims, &mut shutdown).await
    }

    fn withheld(step: Step<Option<Subject>>) -> String {
        match step {
            Err(Outcome::Quarantine(w)) => w.code(),
            other => panic!("expected a quarantined copy, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_invoice_has_no_person_and_a_replayed_one_is_judged_by_its_sender_alone() {
        let (hub, dir) = crate::pipeline::demo_hub("deliver-invoice").await;
        let invoice = br#"{"document":"ClaimInvoice@1","source":{"sender":"0300000005"}}"#;
        for hop in ["translate", "replay"] {
            let person = person_of(&hub, invoice, hop, "0300000005").await;
            assert!(matches!(person, Ok(None)), "{hop}: {person:?}");
        }
        let replayed = person_of(&hub, invoice, "replay", "0300000100").await;
        assert_eq!(withheld(replayed), "sender-mismatch");
        // The kind decides: a person's document without a subject is not taken for an invoice.
        let plan = br#"{"document":"CarePlan@1","source":{"sender":"0300000005"}}"#;
        let person = person_of(&hub, plan, "translate", "0300000005").await;
        assert_eq!(withheld(person), "unknown-subject");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_replay_for_chosen_recipients_routes_to_those_of_the_kinds_recipients_alone() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let parties = Parties::load(&root.join("parties.yaml")).expect("parties");
        let ids = |r: Vec<(&Party, &str)>| -> Vec<String> {
            r.into_iter().map(|(p, _)| p.id.clone()).collect()
        };
        let every = ids(routes(&parties, "CarePlan@1", "0300000100", None));
        assert_eq!(every, ["0300000005", "131011"]);
        let mut props = Props::default();
        assert_eq!(chosen(&props), None);
        props
            .headers
            .insert(h::REPLAY_TO.into(), " 131011,,1311234567".into());
        let to = chosen(&props).expect("chosen");
        assert_eq!(to, ["131011", "1311234567"]);
        // A chosen party that does not receive the kind gets nothing; nor does one not chosen.
        assert_eq!(
            ids(routes(&parties, "CarePlan@1", "0300000100", Some(&to))),
            ["131011"]
        );
        let (labels, _) = Labels::read(&props, b"{}");
        assert_eq!(labels.chosen.as_deref(), Some(&to[..]));
    }

    #[test]
    fn each_format_is_rendered_once_from_the_body_and_canonical_is_the_body_itself() {
        let set = set();
        let (doc, body) = first_care_plan();
        // The sample CSV holds this document's records first, then the next document's.
        let sample_csv = sample("UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV");
        let formats = ["csv", "canonical", "csv", "canonical"];
        let ids = ids();
        let mut r = Renders::new(&body, &ids, formats.iter().copied());
        assert_eq!(
            r.pending,
            vec!["csv"],
            "canonical needs no mapping; csv once"
        );

        let (bytes, mime, ext) = r.get(&set, "canonical").expect("canonical").clone();
        assert_eq!(
            (bytes.as_slice(), mime, ext),
            (body.as_slice(), "application/json", "json")
        );
        assert!(r.doc.is_none(), "canonical does not parse the document");

        let (csv, mime, ext) = r.get(&set, "csv").expect("csv").clone();
        assert_eq!((mime, ext), ("text/csv; charset=Shift_JIS", "csv"));
        let Ok(Rendered::Csv(expected_csv)) = set.render(&[doc], "csv", None) else {
            panic!("the mapping set renders the document as CSV");
        };
        assert_eq!(csv, expected_csv, "the same bytes as MappingSet::render");
        assert!(csv.len() > 100 && sample_csv.starts_with(&csv) && csv.ends_with(b"\r\n"));
        // The last format that needed the document took it; asking again reuses the copy.
        assert!(r.pending.is_empty() && r.doc.is_none());
        assert_eq!(r.get(&set, "csv").expect("csv again").0, expected_csv);
        assert_eq!(r.done.len(), 2);
    }

    #[test]
    fn the_document_is_kept_while_another_format_still_needs_it_and_errors_are_kept_per_format() {
        let set = set();
        let (_, body) = first_care_plan();
        let ids = ids();
        let mut r = Renders::new(&body, &ids, ["csv", "xml"].into_iter());
        assert!(r.get(&set, "csv").is_ok());
        assert!(r.doc.is_some(), "xml still needs the document");
        // No outbound mapping renders a CarePlan as XML: the error names it, for that
        // recipient only, and is the same for every recipient asking for it.
        let e = r
            .get(&set, "xml")
            .expect_err("no CarePlan -> XML mapping")
            .clone();
        assert!(e.contains("CarePlan@1"), "{e}");
        assert_eq!(r.get(&set, "xml").expect_err("again"), &e);
        assert_eq!(
            r.get(&set, "csv").map(|c| c.1),
            Ok("text/csv; charset=Shift_JIS")
        );

        let mut r = Renders::new(b"{\"document\": [1, ", &ids, ["csv"].into_iter());
        let e = r.get(&set, "csv").expect_err("broken JSON").clone();
        assert!(e.starts_with("canonical document is not JSON"), "{e}");
    }

    #[test]
    fn fhir_is_the_transaction_bundle_of_the_document() {
        let set = set();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("samples/xml/card-sjis.insurance-card.json")).expect("sample"),
        )
        .expect("JSON");
        let body = serde_json::to_vec(&doc).expect("serialises");
        let ids = ids();
        let mut r = Renders::new(&body, &ids, ["fhir"].into_iter());
        let (bytes, mime, ext) = r.get(&set, "fhir").expect("fhir").clone();
        assert_eq!((mime, ext), ("application/fhir+json", "json"));
        let bundle: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(
            bundle,
            crate::fhir::bundle_of(&set, &doc, None, &ids).expect("bundle"),
            "the Bundle translate --to fhir makes with the same key"
        );
        let types: Vec<&str> = bundle["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["resource"]["resourceType"].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "Patient",
                "Organization",
                "Coverage",
                "Organization",
                "Provenance"
            ],
            "the insurer, then the 居宅介護支援事業者"
        );
    }
}
