//! The three hops of DESIGN §1 — ingress (called by sources), translate and deliver (queue
//! consumers) — and what they share: the `Hub` context (bus, topology, mappings, parties, store,
//! audit, metrics), subject resolution, consent decisions that are audited and counted, and the
//! quarantine and dead-letter paths. Knows nothing of HTTP, MLLP or HL7: sources hand it bytes and
//! an authenticated party; sinks take rendered bytes. Acknowledges an input only after every
//! output it caused was confirmed.

pub mod admission;
pub mod archiver;
pub mod audit_writer;
pub mod backlog;
pub mod body_limit;
pub mod clock;
pub mod consent_feed;
pub mod consent_reach;
pub mod deliver;
pub mod handoff;
pub mod ingress;
pub mod keys;
pub mod metrics;
pub mod outcome;
pub mod presence;
pub mod preview;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod translate;

use crate::audit::{AuditDraft, Decision as AuditDecision, Hop, SubjectHasher, Timestamp};
use crate::bus::{Bus, BusError, Props, Topology};
use crate::consent::cache::ConsentCache;
use crate::consent::{
    Category, Decision, IndeterminateReason, IsoDate, PartyId, PartyKind, Question, Recipient,
    Subject, decide_from,
};
use crate::mapping::live::LiveMappings;
use crate::parties::LiveParties;
use crate::sinks::Sinks;
use crate::store::Store;
use audit_writer::AuditWriter;
use metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Header names the hub writes on every message.
pub mod headers {
    /// The authenticated party that sent the message.
    pub const SOURCE: &str = "x-kaigo-source";
    /// Wire format of the original (hl7v2, fhir, xml, csv).
    pub const FORMAT: &str = "x-kaigo-format";
    /// Original file name, when there was one.
    pub const FILE_NAME: &str = "x-kaigo-file-name";
    /// Mapping id@version that identified the message.
    pub const MAPPING: &str = "x-kaigo-mapping";
    /// Platform category.
    pub const CATEGORY: &str = "x-kaigo-category";
    /// Canonical document kind.
    pub const DOCUMENT: &str = "x-kaigo-document";
    /// Keyed hashes of the subjects, comma-separated (never the numbers themselves).
    pub const SUBJECT: &str = "x-kaigo-subject";
    /// The hop that published the message (`replay` for a replayed one).
    pub const HOP: &str = "x-kaigo-hop";
    /// Index of the document within its envelope; present exactly on canonical documents (the
    /// translate hop's output), which is how `replay` knows where a parked body goes back.
    pub const DOC_INDEX: &str = "x-kaigo-doc-index";
    /// Why a message was dead-lettered (the precise error: where and why, never the offending
    /// value — an error's `Display`, see [`crate::redact`]).
    pub const ERROR: &str = "x-kaigo-error";
    /// Why a message was quarantined (`consent-denied:<reason>`, `unknown-subject`).
    pub const REASON: &str = "x-kaigo-reason";
    /// The hop whose check refused a quarantined message: ingress, translate or deliver.
    pub const REFUSED_AT: &str = "x-kaigo-refused-at";
    /// On a quarantined copy: what is missing and what clears it (ids and codes, no values).
    pub const DETAIL: &str = "x-kaigo-detail";
    /// On a quarantined copy: when it was quarantined (RFC 3339), for `quarantine_keep_days`.
    pub const QUARANTINED_AT: &str = "x-kaigo-quarantined-at";
    /// On a dead letter: when it was dead-lettered (RFC 3339), for `dead_keep_days`.
    pub const DEAD_AT: &str = "x-kaigo-dead-at";
    /// The recipient a quarantined copy was meant for.
    pub const RECIPIENT: &str = "x-kaigo-recipient";
    /// On a copy back from a waiting room: the one recipient it is for (the others were served).
    pub const RETRY_FOR: &str = "x-kaigo-retry-for";
    /// On a copy back from a waiting room: which attempt at that recipient this is (2, 3, …).
    pub const ATTEMPT: &str = "x-kaigo-attempt";
    /// On a copy `replay` put back for chosen recipients only: their party ids, comma-separated.
    /// The deliver hop serves no other recipient of it (each still with its consent #3). Only
    /// `replay` writes it: every source builds its messages' headers itself, and a new message
    /// never carries one (ingress builds fresh properties; the AMQP source forwards none of the
    /// sender's headers).
    pub const REPLAY_TO: &str = "x-kaigo-replay-to";
}

/// Everything a hop needs.
pub struct Hub {
    /// The message bus.
    pub bus: Arc<dyn Bus>,
    /// Names and declarations.
    pub topology: Topology,
    /// The mappings in force (replaced by `serve --watch`; take [`LiveMappings::current`] once
    /// per message).
    pub mappings: Arc<LiveMappings>,
    /// The parties in force (replaced by `serve`'s SIGHUP; take [`LiveParties::current`] once
    /// per message).
    pub parties: Arc<LiveParties>,
    /// Consents, cross-reference, idempotency.
    pub store: Arc<dyn Store>,
    /// Audit sink.
    pub audit: AuditWriter,
    /// Keyed subject hashing for headers, logs and audit.
    pub hasher: SubjectHasher,
    /// FHIR resource ids, keyed with the same subject key (another domain): docs/fhir.md.
    pub fhir_ids: crate::fhir::ResourceIds,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Unsettled deliveries per consumer.
    pub prefetch: u16,
    /// Purpose stated in consent questions (`None`: consents without a purpose only).
    pub purpose: Option<String>,
    /// This process's copy of the consents it decided on, kept in step by the `kaigo.consent`
    /// feed ([`consent_feed`]); `None` = every decision reads the store. Change consents through
    /// [`Hub::grant_consent`] / [`Hub::revoke_consent`] (or the CLI), which announce the change.
    pub consent_cache: Option<Arc<ConsentCache>>,
    /// What the sinks are built with (the push sink's HTTPS client configuration), handed to
    /// every delivery as it is.
    pub sinks: Sinks,
    /// Ingress's mapping results, for this process's translate hop ([`handoff`]).
    pub handoff: handoff::Handoff,
    /// The deliver hop's delivery keys, recorded in groups ([`keys`]); built on `store`.
    pub delivery_keys: keys::DeliveryKeys,
    /// Backpressure: ingress refuses new messages while this many wait ([`backlog`]).
    pub backlog: backlog::Backlog,
    /// Who this process is in the store's process registry (registered by `serve`), and how a
    /// consent change made here is announced to the others ([`presence`], [`consent_reach`]).
    pub presence: presence::Presence,
    /// `body_limit`: the doors refuse larger inputs, and translate holds every raw message it
    /// maps to it again (a replayed dead letter included).
    pub body_limit: body_limit::BodyLimit,
    /// The encrypted message archive's writer (`archive_key_file`); `None`: nothing is archived.
    pub archive: Option<archiver::Archiver>,
}

/// Bytes of canonical documents ingress keeps for the translate hop (beyond them the oldest are
/// mapped again).
pub const HANDOFF_BYTES: usize = 64 << 20;

/// What a canonical document says about whose data it is and who sent it: the few fields the
/// hops read, taken from the JSON without building the whole document as a `Value`. A document
/// that does not parse says nothing (no subject: the hop quarantines it as `unknown-subject`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Identity {
    /// `document`: the canonical kind (`CarePlan@1`).
    #[serde(default)]
    pub document: Option<String>,
    /// `subject`, when the document has one (even `null`: then it names nobody).
    #[serde(default, deserialize_with = "present")]
    pub subject: Option<serde_json::Value>,
    /// `identifiers`.
    #[serde(default)]
    pub identifiers: Vec<IdentityId>,
    /// `source`.
    #[serde(default)]
    pub source: Option<IdentitySource>,
}

/// One of a document's `identifiers`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct IdentityId {
    /// Identifier system.
    pub system: Option<String>,
    /// The value.
    pub value: Option<String>,
    /// Who issued it.
    pub assigner: Option<String>,
}

/// A document's `source`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct IdentitySource {
    /// The sender the document names (MSH-4, the ケアプラン file name's 送信元, …).
    pub sender: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

impl Identity {
    /// From a document's JSON text.
    pub fn of_json(json: &str) -> Identity {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// From a parsed document.
    pub fn of_value(doc: &serde_json::Value) -> Identity {
        serde::Deserialize::deserialize(doc).unwrap_or_default()
    }

    /// The 保険者番号 and 被保険者番号 the document's `subject` holds, as written (empty when
    /// missing or not text); `None` when it has no `subject` at all. The one reader of a
    /// canonical document's subject for the hops: [`Hub::subject_of`] validates what it gives.
    pub fn subject_numbers(&self) -> Option<(&str, &str)> {
        let s = self.subject.as_ref()?;
        let text = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("");
        Some((text("insurer_number"), text("insured_number")))
    }

    /// The sender the document names, if any.
    pub fn sender(&self) -> &str {
        self.source
            .as_ref()
            .and_then(|s| s.sender.as_deref())
            .unwrap_or("")
    }
}

/// One consent question as a hop asks it (who, for whom, what), with where it is asked.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    /// Envelope id (for the audit event).
    pub envelope: &'a str,
    /// `ingress`, `translate` or `deliver`.
    pub point: &'a str,
    /// Whose data.
    pub subject: &'a Subject,
    /// Who would receive it.
    pub recipient: &'a Recipient,
    /// Which category.
    pub category: Category,
    /// Which document kind.
    pub document: &'a str,
}

/// What a consent check concluded, reduced to what a hop does next.
pub enum Verdict {
    /// Go on.
    Permit,
    /// Quarantine: the registry's reason.
    Deny(crate::consent::DenyReason),
    /// Registry unreachable: retry later.
    Indeterminate(String),
}

impl Verdict {
    /// What a hop does with the registry's answer.
    pub fn of(d: Decision) -> Verdict {
        match d {
            Decision::Permit { .. } => Verdict::Permit,
            Decision::Deny { reason } => Verdict::Deny(reason),
            Decision::Indeterminate { .. } => {
                Verdict::Indeterminate("registry-unavailable".to_string())
            }
        }
    }
}

impl Hub {
    /// The hub as a consent recipient (consent #1 and #2).
    pub fn platform(&self) -> Option<Recipient> {
        Some(Recipient {
            id: PartyId::parse(&self.parties.current().hub.id).ok()?,
            kind: PartyKind::Platform,
        })
    }

    /// The keyed hash of a subject.
    pub fn subject_hash(&self, s: &Subject) -> String {
        self.hasher.hash_subject(s).into_string()
    }

    /// Records an audit event for `envelope` (ids and codes only).
    pub fn audit(
        &self,
        hop: Hop,
        actor: &str,
        envelope: &str,
        f: impl FnOnce(AuditDraft) -> AuditDraft,
    ) {
        let Ok(at) = Timestamp::parse(&clock::now_rfc3339()) else {
            return;
        };
        self.audit
            .record(f(AuditDraft::new(at, hop, actor).envelope_id(envelope)));
    }

    /// The subject of a canonical document: its own `subject`, or the cross-reference of one of
    /// its identifiers as known by `source`. `Ok(None)` = unknown.
    pub async fn subject_of(
        &self,
        source: &str,
        doc: &Identity,
    ) -> Result<Option<Subject>, String> {
        if let Some((insurer, insured)) = doc.subject_numbers() {
            return Ok(Subject::new(insurer, insured).ok());
        }
        // Only identifiers the sender itself issued count (assigner = its id, or a JP Core
        // patient-id system that carries its 医療機関コード): a value from another system that
        // happens to equal a linked 患者ID must not resolve to that person.
        let ids: Vec<String> = doc
            .identifiers
            .iter()
            .filter(|i| {
                let system = i.system.as_deref().unwrap_or("");
                i.assigner.as_deref() == Some(source)
                    || (!source.is_empty() && system.ends_with(source))
            })
            .filter_map(|i| i.value.clone())
            .collect();
        crate::store::resolve_first(&self.store, source, ids)
            .await
            .map_err(|e| e.0)
    }

    /// [`Hub::subject_of`], retried with backoff while the store is unreachable (a brief database
    /// outage delays messages, it never dead-letters them); `Err(())` when shutdown was requested
    /// while waiting.
    pub async fn subject_of_retrying(
        &self,
        source: &str,
        doc: &Identity,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<Subject>, ()> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.subject_of(source, doc).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "store unavailable; retrying");
                    tokio::select! {
                        _ = shutdown.changed() => return Err(()),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// The registry's answer to `ask` as in force now, neither audited nor counted: what a hop
    /// would be told. [`Hub::decide`] asks through it; a replay's preview asks it alone (a
    /// preview is not a decision the hub acted on).
    pub async fn consult(&self, ask: &Ask<'_>) -> Decision {
        let q = Question {
            subject: ask.subject.clone(),
            recipient: ask.recipient.clone(),
            category: ask.category,
            purpose: self.purpose.clone(),
            on: IsoDate::parse(&clock::today_jst())
                .unwrap_or_else(|_| IsoDate::parse("1970-01-01").expect("literal date")),
        };
        self.decision(q).await
    }

    /// Asks the registry, audits the decision and counts it.
    pub async fn decide(&self, ask: &Ask<'_>) -> Verdict {
        let Ask {
            envelope,
            point,
            subject,
            recipient,
            category,
            document,
        } = *ask;
        let decision = self.consult(ask).await;
        let (verdict, audit_decision, reason) = match &decision {
            Decision::Permit { consent_id } => {
                Metrics::inc(&self.metrics.permit);
                (
                    Verdict::Permit,
                    AuditDecision::Permit,
                    consent_id.as_str().to_string(),
                )
            }
            Decision::Deny { reason } => {
                Metrics::inc(&self.metrics.deny);
                (
                    Verdict::Deny(*reason),
                    AuditDecision::Deny,
                    reason.code().to_string(),
                )
            }
            Decision::Indeterminate { .. } => {
                Metrics::inc(&self.metrics.indeterminate);
                let r = "registry-unavailable".to_string();
                (
                    Verdict::Indeterminate(r.clone()),
                    AuditDecision::Indeterminate,
                    r,
                )
            }
        };
        let hash = self.hasher.hash(
            subject.insurer_number.as_str(),
            subject.insured_number.as_str(),
        );
        self.audit(Hop::Consent, point, envelope, |d| {
            let d = d
                .party(recipient.id.as_str())
                .subject(hash)
                .category(category.code())
                .document(document)
                .decision(audit_decision)
                .reason(reason);
            match self.purpose.as_deref() {
                Some(p) => d.purpose(p),
                None => d,
            }
        });
        tracing::debug!(envelope, point, recipient = recipient.id.as_str(), category = category.code(), decision = %decision, "consent");
        verdict
    }

    /// The registry's answer: from this process's cache when it holds the subject, otherwise from
    /// the store (and the cache keeps what the store said, unless a change arrived meanwhile):
    /// read on the store's async path when it has one, decided here by the shared rule.
    async fn decision(&self, q: Question) -> Decision {
        let ticket = match self.consent_cache.as_ref().map(|c| c.decide(&q)) {
            Some(Ok(d)) => {
                Metrics::inc(&self.metrics.consent_cache_hits);
                return d;
            }
            Some(Err(ticket)) => ticket,
            None => None,
        };
        if let Some(read) = self.store.consents_of_async(&q.subject) {
            return match read.await {
                Ok(consents) => {
                    let d = decide_from(consents.iter(), &q);
                    if let (Some(ticket), Some(cache)) = (ticket, &self.consent_cache) {
                        cache.put(ticket, &q.subject, consents);
                    }
                    d
                }
                Err(e) => Decision::Indeterminate {
                    reason: IndeterminateReason::RegistryUnavailable { detail: e.0 },
                },
            };
        }
        let cache = self.consent_cache.clone();
        crate::store::call(&self.store, move |store| {
            Ok(match (ticket, cache) {
                (Some(ticket), Some(cache)) => match store.consents().consents_of(&q.subject) {
                    Ok(consents) => {
                        let d = decide_from(consents.iter(), &q);
                        cache.put(ticket, &q.subject, consents);
                        d
                    }
                    Err(e) => Decision::Indeterminate {
                        reason: IndeterminateReason::RegistryUnavailable {
                            detail: e.to_string(),
                        },
                    },
                },
                _ => store.consents().decide(&q),
            })
        })
        .await
        .unwrap_or_else(|e| Decision::Indeterminate {
            reason: IndeterminateReason::RegistryUnavailable { detail: e.0 },
        })
    }

    /// Decides with retries while the registry is unreachable (never permits on doubt); gives
    /// `None` when shutdown was requested while waiting.
    pub async fn decide_until_known(
        &self,
        ask: &Ask<'_>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<Verdict> {
        let (envelope, point) = (ask.envelope, ask.point);
        let mut wait = Duration::from_millis(100);
        loop {
            match self.decide(ask).await {
                Verdict::Indeterminate(r) => {
                    tracing::warn!(envelope, point, reason = %r, retry_in_ms = wait.as_millis() as u64, "consent indeterminate; retrying");
                    tokio::select! {
                        _ = shutdown.changed() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                v => return Some(v),
            }
        }
    }

    /// Publishes a copy to quarantine with the reason code, what is missing (`detail`: ids and
    /// codes only) and the recipient it was meant for, labelled with the hop that withheld it
    /// (`x-kaigo-hop` and `x-kaigo-refused-at`) and when (`x-kaigo-quarantined-at`, which
    /// `quarantine_keep_days` counts from).
    pub async fn quarantine(
        &self,
        at: &str,
        props: &Props,
        body: &[u8],
        reason: &str,
        detail: &str,
        recipient: Option<&str>,
    ) -> Result<(), BusError> {
        let mut p = props.clone();
        // Which check refused it: `ingress` (the sender was told 403/AR), `translate` or
        // `deliver` (accepted, then withheld). Replay and operators read this.
        p.headers.insert(headers::REFUSED_AT.into(), at.into());
        p.headers.insert(headers::HOP.into(), at.into());
        p.headers
            .insert(headers::QUARANTINED_AT.into(), clock::now_rfc3339());
        // The hub publishes as its own broker user; a vendor's user_id would be refused.
        p.user_id = None;
        p.headers.insert(headers::REASON.into(), reason.into());
        let detail: String = detail.chars().take(1000).collect();
        p.headers.insert(headers::DETAIL.into(), detail);
        if let Some(r) = recipient {
            p.headers.insert(headers::RECIPIENT.into(), r.into());
        }
        let key = p.header(headers::DOCUMENT).unwrap_or("unknown").to_string();
        self.bus
            .publish(&self.topology.quarantine(), &key, &p, body)
            .await?;
        Metrics::inc(&self.metrics.quarantined);
        Ok(())
    }

    /// Publishes a copy to the dead-letter exchange with the precise error (an error's
    /// value-free `Display`, never its `for_sender()` words: the header outlives the answer) and
    /// its reason code in `x-kaigo-reason` (`mapping-failed`, `sink-failed`, …: what the Dead
    /// and quarantine page and `replay --list` group by).
    pub async fn dead(
        &self,
        props: &Props,
        body: &[u8],
        reason: &str,
        error: &str,
    ) -> Result<(), BusError> {
        let mut p = props.clone();
        p.user_id = None;
        p.headers.insert(headers::REASON.into(), reason.into());
        // Header values are bounded; the error names file, rule and location.
        let e: String = error.chars().take(2000).collect();
        p.headers.insert(headers::ERROR.into(), e);
        p.headers
            .insert(headers::DEAD_AT.into(), clock::now_rfc3339());
        let key = p.header(headers::FORMAT).unwrap_or("unknown").to_string();
        self.bus
            .publish(&self.topology.dead(), &key, &p, body)
            .await?;
        Metrics::inc(&self.metrics.dead);
        Ok(())
    }

    /// After a hop's consumer ended without a shutdown (its queue deleted under the hub):
    /// declares the topology again and consumes `queue` again, retrying with a growing pause;
    /// `None` once shutdown is asked for.
    pub(crate) async fn consume_again(
        &self,
        queue: &str,
        hop: &'static str,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<Box<dyn crate::bus::Consumer>> {
        let mut pause = Duration::from_millis(100);
        loop {
            tracing::error!(
                hop,
                queue,
                "the broker ended the hop's consumer (was its queue deleted?); declaring the topology again and consuming again"
            );
            let recipients = self.parties.current().amqp_recipients();
            let again = match self.bus.declare(&self.topology, &recipients).await {
                Ok(()) => self.bus.consume(queue, self.prefetch).await,
                Err(e) => Err(e),
            };
            match again {
                Ok(c) => {
                    Metrics::inc(&self.metrics.consumers_restarted);
                    return Some(c);
                }
                Err(e) => {
                    tracing::warn!(hop, queue, error = %e, "consuming again failed; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return None,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }
}

/// Consumes `queue` until shutdown, handling each delivery in its own task (at most `prefetch`
/// are in flight, the bus bounds that), then waits for the tasks in hand: the shared loop of the
/// translate and deliver hops.
pub async fn consume_until_shutdown<F, Fut>(
    hub: Arc<Hub>,
    queue: &str,
    hop: &'static str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    handle: F,
) -> Result<(), BusError>
where
    F: Fn(Arc<Hub>, crate::bus::Delivery, tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut consumer = hub.bus.consume(queue, hub.prefetch).await?;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            d = consumer.next() => d,
        };
        match next {
            None if *shutdown.borrow() => break,
            // The broker cancelled the consumer with its channel open: the queue was deleted
            // under the hub. Ending here would leave the hop's messages to pile up unread.
            None => match hub.consume_again(queue, hop, &mut shutdown).await {
                Some(c) => consumer = c,
                None => break,
            },
            Some(Err(e)) => {
                tracing::warn!(hop, error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Some(Ok(d)) => {
                tasks.spawn(handle(hub.clone(), d, shutdown.clone()));
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Routing-key word for a document kind (`CarePlan@1` → `careplan-v1`).
pub fn key_word(doc: &str) -> String {
    doc.to_ascii_lowercase().replace('@', "-v")
}

/// For the hops' unit tests: a hub on the in-memory bus with the shipped parties and mappings,
/// in a directory of its own (remove it after), with no consent registered.
#[cfg(test)]
pub(crate) async fn demo_hub(tag: &str) -> (Arc<Hub>, std::path::PathBuf) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("kaigo-{tag}-{}", clock::envelope_id()));
    let cfg = crate::config::Config {
        data_dir: dir.join("state"),
        parties: root.join("parties.yaml"),
        mappings: root.join("mappings"),
        prefix: tag.to_string(),
        ..Default::default()
    };
    (crate::serve::build(&cfg).await.expect("hub"), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_reads_subject_identifiers_and_sender_as_the_document_says_them() {
        let who = Identity::of_json(
            r#"{"document":"CarePlan@1","subject":{"insurer_number":"131011","insured_number":"0000100001"},
                "source":{"sender":"1310100013","x":[1,2]},"plan":{"deep":[{"a":"\u3042"}]}}"#,
        );
        let s = who.subject.as_ref().expect("subject");
        assert_eq!(s["insured_number"], "0000100001");
        assert_eq!(who.sender(), "1310100013");
        assert!(who.identifiers.is_empty());

        let who = Identity::of_json(
            r#"{"identifiers":[{"system":"urn:oid:1.2.392.100495.20.3.51.11310100013","value":"P1"},
                {"assigner":"1310100013","value":"P2"},{"value":"P3"}]}"#,
        );
        assert!(who.subject.is_none());
        assert_eq!(who.sender(), "");
        let values: Vec<_> = who
            .identifiers
            .iter()
            .map(|i| (i.assigner.as_deref(), i.value.as_deref()))
            .collect();
        assert_eq!(
            values,
            vec![
                (None, Some("P1")),
                (Some("1310100013"), Some("P2")),
                (None, Some("P3"))
            ]
        );
        // `subject: null` is a subject that names nobody, not a missing one (no fall-back to
        // the identifiers); text that is not JSON says nothing.
        let who = Identity::of_json(r#"{"subject":null,"identifiers":[{"value":"P1"}]}"#);
        assert_eq!(who.subject, Some(serde_json::Value::Null));
        let who = Identity::of_json("not json");
        assert!(who.subject.is_none() && who.identifiers.is_empty());
        // The same from a parsed document.
        let v: serde_json::Value =
            serde_json::from_str(r#"{"source":{"sender":"0300000005"}}"#).unwrap();
        assert_eq!(Identity::of_value(&v).sender(), "0300000005");
    }
}
