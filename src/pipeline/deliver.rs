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

use super::headers as h;
use super::metrics::Metrics;
use super::{Hub, Verdict, admission};
use crate::audit::{Decision as AuditDecision, Hop};
use crate::bus::{BusError, Delivery, Props};
use crate::consent::Category;
use crate::mapping::{MappingSet, Rendered};
use crate::sinks::Outbound;
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

async fn handle(hub: &Hub, mut d: Delivery, mut shutdown: watch::Receiver<bool>) {
    // Back from a waiting room, the copy carries the broker's dead-letter marks; they would
    // mislead anyone reading the recipient's copy or a later dead letter.
    d.props.strip_dead_letter_marks();
    let envelope = d.props.message_id.clone().unwrap_or_default();
    // A copy from a waiting room is for one recipient, on its attempt `attempt`.
    let retry_for = d.props.header(h::RETRY_FOR).map(String::from);
    let attempt: u32 = d
        .props
        .header(h::ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
        .max(1);
    let source = d.props.header(h::SOURCE).unwrap_or("").to_string();
    let index = d.props.header(h::DOC_INDEX).unwrap_or("0").to_string();
    // What the hop reads itself; the whole document is parsed only for a recipient whose format
    // needs an outbound mapping (see `Renders`).
    let who: super::Identity = match serde_json::from_slice(&d.body) {
        Ok(v) => v,
        Err(e) => {
            let _ = hub
                .dead(
                    &d.props,
                    &d.body,
                    &format!("canonical document is not a JSON object: {e}"),
                )
                .await;
            let _ = d.ack().await;
            return;
        }
    };
    let kind = who.document.clone().unwrap_or_default();
    let Some(category) = d
        .props
        .header(h::CATEGORY)
        .and_then(|c| c.parse::<Category>().ok())
    else {
        let _ = hub
            .dead(&d.props, &d.body, "message has no x-kaigo-category")
            .await;
        let _ = d.ack().await;
        return;
    };
    // A document translate vouched for just now needs only its subject; any other copy (one
    // `replay` put back, one back from a waiting room minutes later) is judged as a new message
    // would be: sender, subject, insurer, and the person's consent to the platform, as in force
    // now.
    let from_translate = d.props.header(h::HOP) == Some("translate") && retry_for.is_none();
    let withheld = if from_translate {
        match hub.subject_of_retrying(&source, &who, &mut shutdown).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(admission::Withheld::UnknownSubject {
                document: index.parse::<usize>().map_or(1, |i| i + 1),
                kind: kind.clone(),
                source: source.clone(),
            }),
            // Shutting down while the store is away: leave it unacked for redelivery.
            Err(()) => return,
        }
    } else {
        let docs = [admission::Doc { who, kind: &kind }];
        let case = admission::Case {
            envelope: &envelope,
            point: "deliver",
            source: &source,
            category,
            docs: &docs,
        };
        match admission::judge(hub, &case, Some(&mut shutdown)).await {
            Ok(a) => Ok(a
                .subjects
                .into_iter()
                .next()
                .expect("one document, one subject")),
            Err(admission::Refused::Withheld(w)) => Err(w),
            Err(admission::Refused::Unavailable(message)) => {
                tracing::warn!(envelope, error = %message, "deliver: cannot judge the copy now; requeue");
                let _ = d.requeue().await;
                return;
            }
            Err(admission::Refused::Stopped) => return,
        }
    };
    let subject = match withheld {
        Ok(s) => s,
        Err(w) => {
            let (reason, detail) = (w.code(), w.detail());
            if hub
                .quarantine("deliver", &d.props, &d.body, &reason, &detail, None)
                .await
                .is_err()
            {
                let _ = d.requeue().await;
                return;
            }
            hub.audit(Hop::Deliver, "deliver", &envelope, |a| {
                a.party(source.as_str())
                    .category(category.code())
                    .document(kind.as_str())
                    .decision(AuditDecision::Quarantined)
                    .reason(reason)
            });
            let _ = d.ack().await;
            return;
        }
    };
    let hash = hub.hasher.hash(
        subject.insurer_number.as_str(),
        subject.insured_number.as_str(),
    );

    // What happened to one recipient's copy, for the audit log.
    let audit_copy = |party: &str, decision: AuditDecision, reason: &str| {
        hub.audit(Hop::Deliver, "deliver", &envelope, |a| {
            let a = a
                .party(party)
                .subject(hash.clone())
                .category(category.code())
                .document(kind.as_str())
                .decision(decision);
            if reason.is_empty() {
                a
            } else {
                a.reason(reason)
            }
        })
    };
    let parties = hub.parties.current();
    let mut recipients = parties.recipients_of(&kind, &source);
    if let Some(only) = &retry_for {
        recipients.retain(|(p, _)| p.id == *only);
        if recipients.is_empty() {
            // The parties file changed while the copy waited: keep it where an operator sees it.
            let error = format!(
                "recipient {only} no longer receives {kind} from {source} (the parties file changed while its copy waited to be tried again)"
            );
            if dead_copy(hub, &d.props, &d.body, only, &error)
                .await
                .is_err()
            {
                let _ = d.requeue().await;
                return;
            }
            audit_copy(only, AuditDecision::Dead, "not-a-recipient");
            let _ = d.ack().await;
            return;
        }
    }
    // One mapping set for the whole message, even if `serve --watch` replaces it meanwhile.
    let mappings = hub.mappings.current();
    let mut renders = Renders::new(&d.body, recipients.iter().map(|(_, f)| *f));
    for (party, format) in recipients {
        let key = format!("{envelope}/{index}/{}", party.id);
        // Check, send and record as one step per key in this process: after a lost broker
        // connection the message comes back while its first handler may still be sending.
        let Some(_claim) = Claim::take(&key, &mut shutdown).await else {
            return;
        };
        match retrying(&mut shutdown, || {
            crate::store::was_delivered(&hub.store, &key)
        })
        .await
        {
            Some(true) => continue,
            Some(false) => {}
            None => return,
        }
        let Some(recipient) = party.recipient() else {
            continue;
        };
        match hub
            .decide_until_known(
                &super::Ask {
                    envelope: &envelope,
                    point: "deliver",
                    subject: &subject,
                    recipient: &recipient,
                    category,
                    document: &kind,
                },
                &mut shutdown,
            )
            .await
        {
            None => return,
            Some(Verdict::Indeterminate(_)) => {
                let _ = d.requeue().await;
                return;
            }
            Some(Verdict::Deny(r)) => {
                let w = admission::Withheld::ConsentDenied {
                    document: index.parse::<usize>().map_or(1, |i| i + 1),
                    kind: kind.clone(),
                    reason: r,
                    category,
                    recipient: recipient.clone(),
                };
                if hub
                    .quarantine(
                        "deliver",
                        &d.props,
                        &d.body,
                        &w.code(),
                        &w.detail(),
                        Some(&party.id),
                    )
                    .await
                    .is_err()
                {
                    let _ = d.requeue().await;
                    return;
                }
                audit_copy(&party.id, AuditDecision::Quarantined, r.code());
                continue;
            }
            Some(Verdict::Permit) => {}
        }
        let rendered = match renders.get(&mappings, format) {
            Ok(r) => r,
            Err(e) => {
                // The document cannot be rendered for this recipient: keep it with the error.
                if dead_copy(hub, &d.props, &d.body, &party.id, e)
                    .await
                    .is_err()
                {
                    let _ = d.requeue().await;
                    return;
                }
                audit_copy(&party.id, AuditDecision::Dead, "render-failed");
                continue;
            }
        };
        let Some(target) = &party.delivery else {
            continue;
        };
        let mut props = Props {
            message_id: Some(envelope.clone()),
            correlation_id: d.props.correlation_id.clone(),
            content_type: Some(rendered.1.into()),
            user_id: None,
            headers: d.props.headers.clone(),
        };
        props.headers.remove(h::RETRY_FOR);
        props.headers.remove(h::ATTEMPT);
        props.headers.insert(h::HOP.into(), "deliver".into());
        props.headers.insert(h::RECIPIENT.into(), party.id.clone());
        let file_name = format!("{envelope}-{index}.{}", rendered.2);
        let out = Outbound {
            recipient: &party.id,
            body: &rendered.0,
            content_type: rendered.1,
            file_name: &file_name,
            props: &props,
        };
        let sent = hub
            .sinks
            .send(hub.bus.as_ref(), &hub.topology.egress(), target, &out)
            .await;
        if let Err(e) = sent {
            // A recipient that refused the content itself would refuse the same bytes again.
            let wait = if e.refused {
                None
            } else {
                hub.topology.retry_delay(attempt)
            };
            if let Some(wait) = wait {
                // A recipient that is down for a moment must not use up its tries in a second,
                // nor make the others wait: its copy waits in a room of its own.
                let mut again = d.props.clone();
                again.user_id = None;
                again.headers.insert(h::RETRY_FOR.into(), party.id.clone());
                again
                    .headers
                    .insert(h::ATTEMPT.into(), (attempt + 1).to_string());
                let room = crate::bus::Topology::wait_key(wait);
                if let Err(b) = hub
                    .bus
                    .publish(&hub.topology.wait(), &room, &again, &d.body)
                    .await
                {
                    tracing::warn!(envelope, recipient = %party.id, error = %b, "deliver: cannot put a copy in a waiting room; requeue");
                    let _ = d.requeue().await;
                    return;
                }
                Metrics::inc(&hub.metrics.delivery_retries);
                audit_copy(
                    &party.id,
                    AuditDecision::Retrying,
                    &format!("sink-failed:attempt-{attempt}"),
                );
                tracing::warn!(envelope, recipient = %party.id, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "deliver: sink failed; tried again later");
                continue;
            }
            // The last attempt, or a refusal of the content: keep this recipient's copy in the
            // dead-letter queue with the sink's error, and go on with the other recipients.
            let (error, reason) = if e.refused {
                let error = format!(
                    "{e}; not tried again: the recipient refused the content itself, and another try would send it unchanged"
                );
                (error, "sink-refused")
            } else {
                (e.message, "sink-failed")
            };
            if dead_copy(hub, &d.props, &d.body, &party.id, &error)
                .await
                .is_err()
            {
                let _ = d.requeue().await;
                return;
            }
            audit_copy(&party.id, AuditDecision::Dead, reason);
            tracing::warn!(envelope, recipient = %party.id, error = %error, attempt, "deliver: sink failed at the delivery limit or refused the content; dead-lettered");
            continue;
        }
        if record_retrying(hub, &mut shutdown, &key).await.is_none() {
            // Shutting down with the store away: sent but not recorded, so it is sent again
            // after the redelivery (at-least-once; acking would lose the other recipients).
            return;
        }
        Metrics::inc(&hub.metrics.delivered);
        audit_copy(&party.id, AuditDecision::Delivered, "");
        tracing::info!(envelope, recipient = %party.id, format, "delivered");
    }
    let _ = d.ack().await;
}

/// Keeps one recipient's copy in the dead-letter queue with `error`, naming the recipient.
async fn dead_copy(
    hub: &Hub,
    props: &Props,
    body: &[u8],
    recipient: &str,
    error: &str,
) -> Result<(), BusError> {
    let mut p = props.clone();
    p.headers.insert(h::RECIPIENT.into(), recipient.to_string());
    hub.dead(&p, body, error).await
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
type Copy = (Vec<u8>, &'static str, &'static str);

/// One message's renderings, one per format however many recipients ask for it. `canonical` is
/// the message body as it came; other formats run an outbound mapping over the document, which
/// is parsed on the first such need and handed over (not copied) to the last one.
struct Renders<'a> {
    body: &'a [u8],
    doc: Option<serde_json::Value>,
    /// Formats still to render (a format appears once).
    pending: Vec<&'a str>,
    done: Vec<(&'a str, Result<Copy, String>)>,
}

impl<'a> Renders<'a> {
    fn new(body: &'a [u8], formats: impl Iterator<Item = &'a str>) -> Self {
        let mut pending: Vec<&str> = Vec::new();
        for f in formats {
            if f != "canonical" && !pending.contains(&f) {
                pending.push(f);
            }
        }
        Renders {
            body,
            doc: None,
            pending,
            done: Vec::new(),
        }
    }

    fn get(&mut self, set: &MappingSet, format: &'a str) -> Result<&Copy, &String> {
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

    fn render(&mut self, set: &MappingSet, format: &'a str) -> Result<Copy, String> {
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
        match set
            .render_owned(vec![doc], format, None)
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

    #[test]
    fn each_format_is_rendered_once_from_the_body_and_canonical_is_the_body_itself() {
        let set = set();
        let (doc, body) = first_care_plan();
        // The sample CSV holds this document's records first, then the next document's.
        let sample_csv = sample("UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV");
        let formats = ["csv", "canonical", "csv", "canonical"];
        let mut r = Renders::new(&body, formats.iter().copied());
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
        let mut r = Renders::new(&body, ["csv", "fhir"].into_iter());
        assert!(r.get(&set, "csv").is_ok());
        assert!(r.doc.is_some(), "fhir still needs the document");
        // No outbound mapping renders a CarePlan as FHIR: the error names it, for that
        // recipient only, and is the same for every recipient asking for it.
        let e = r
            .get(&set, "fhir")
            .expect_err("no CarePlan -> FHIR mapping")
            .clone();
        assert!(e.contains("CarePlan@1"), "{e}");
        assert_eq!(r.get(&set, "fhir").expect_err("again"), &e);
        assert_eq!(
            r.get(&set, "csv").map(|c| c.1),
            Ok("text/csv; charset=Shift_JIS")
        );

        let mut r = Renders::new(b"{\"document\": [1, ", ["csv"].into_iter());
        let e = r.get(&set, "csv").expect_err("broken JSON").clone();
        assert!(e.starts_with("canonical document is not JSON"), "{e}");
    }
}
