//! Consent is asked at every hop (DESIGN §1), and a denial anywhere means the data does not move:
//! refused at ingress without consent (HTTP 403, HL7 `AR`) and kept in quarantine with the
//! reason; a consent revoked while the message waited in the translate queue, or in the deliver
//! queue, stops it there (`consent-denied:revoked`); a consent for one recipient never lets
//! another receive the document, whose withheld copy names it. A property test draws random
//! consent sets over two people × the recipient parties × categories and checks that what a
//! fixed set of messages actually delivers is exactly what those consents permit — on the real
//! RabbitMQ and, with more cases, on the in-memory bus. Last, the hub's logs (debug level) carry
//! envelope ids and hashes, never the samples' names, birth dates or addresses.
//!
//! Every test runs under a topology prefix of its own, in a temp directory, on the broker at
//! amqp://guest:guest@127.0.0.1:5672/%2f (or `KAIGO_TEST_AMQP_URL`); what it declared is deleted
//! afterwards, also on failure. Every test of this file installs (once) a process-wide tracing
//! subscriber that writes into a buffer, so the log test also sees what the other tests logged.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyId, PartyKind};
use kaigo_hub::pipeline::clock;
use kaigo_hub::pipeline::ingress::{self, Refusal, Submission};
use kaigo_hub::pipeline::replay::{self, Parked};
use kaigo_hub::pipeline::{Hub, consent_feed, deliver, translate};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

const H_REASON: &str = "x-kaigo-reason";
const H_RECIPIENT: &str = "x-kaigo-recipient";
const H_DOC_INDEX: &str = "x-kaigo-doc-index";
const HUB_ID: &str = "9990000001";

// ------------------------------------------------------------------------------------------------
// Captured logs
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per process, a debug-level subscriber writing into a buffer; returns it.
fn captured_logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other global subscriber in this test binary");
        buf
    })
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn party(hub: &Hub, id: &str) -> kaigo_hub::parties::Party {
    hub.parties
        .current()
        .get(id)
        .unwrap_or_else(|| panic!("party {id} is in the parties file"))
        .clone()
}

async fn accept(
    hub: &Hub,
    from: &str,
    bytes: &[u8],
    file_name: Option<&str>,
) -> Result<ingress::Accepted, Refusal> {
    let p = party(hub, from);
    ingress::accept(
        hub,
        Submission {
            party: &p,
            bytes,
            file_name,
            correlation_id: None,
            via: "test",
        },
    )
    .await
}

/// The translate and deliver hops, run by the test itself.
struct Hops {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hops {
    /// Starts the hops and, as `serve` does on RabbitMQ, the consent feed that keeps the hub's
    /// consent cache in step; returns once the cache answers.
    async fn start(hub: &Arc<Hub>, translate_hop: bool, deliver_hop: bool) -> Hops {
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(cache) = &hub.consent_cache {
            tasks.push(tokio::spawn(consent_feed::run(
                hub.bus.clone(),
                hub.topology.clone(),
                cache.clone(),
                Some(hub.presence.acknowledger(hub.store.clone())),
                rx.clone(),
            )));
            eventually("the consent cache is live", async || cache.is_live()).await;
        }
        if translate_hop {
            let (h, r) = (hub.clone(), rx.clone());
            tasks.push(tokio::spawn(async move {
                translate::run(h, r).await.expect("the translate hop runs");
            }));
        }
        if deliver_hop {
            let (h, r) = (hub.clone(), rx.clone());
            tasks.push(tokio::spawn(async move {
                deliver::run(h, r).await.expect("the deliver hop runs");
            }));
        }
        Hops { stop, tasks }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            tokio::time::timeout(PATIENCE, t)
                .await
                .expect("the hop stops in time")
                .expect("the hop did not panic");
        }
    }
}

async fn queue_len(hub: &Hub, q: &str) -> u64 {
    hub.bus.queue_len(q).await.expect("queue length")
}

fn consent_of(id: &str, who: (&str, &str), grantee: Grantee, categories: &[Category]) -> Consent {
    Consent {
        id: id.parse().expect("consent id"),
        subject: subject(who),
        grantee,
        categories: categories.to_vec(),
        valid_from: IsoDate::parse("2000-01-01").expect("date"),
        valid_to: None,
        purpose: None,
        revoked_at: None,
    }
}

fn party_grantee(id: &str) -> Grantee {
    Grantee::Party(PartyId::parse(id).expect("party id"))
}

// ------------------------------------------------------------------------------------------------
// 5. No consent: refused at ingress
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_consent_ingress_refuses_and_quarantines_and_nothing_is_delivered() {
    captured_logs();
    let s = Scratch::rabbit("hop-none", |p| p);
    let running = s.start().await;
    link_sample_patients(&running.hub);
    let (bus, t) = (running.hub.bus.as_ref(), running.hub.topology.clone());
    let quarantine = Tap::new(bus, &t.quarantine_queue()).await;
    let provider = Tap::new(bus, &t.out_queue(PROVIDER)).await;

    let reply = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &sample("fhir/patient-jpcore.json"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    let http_envelope = reply
        .header("x-kaigo-envelope")
        .expect("a kept message names its envelope")
        .to_string();
    assert!(
        !reply.text().contains("試験"),
        "no personal data in the answer: {}",
        reply.text()
    );

    let ack = mllp_send(running.mllp_addr, &adt_a08()).await;
    assert_eq!(ack_code(&ack), "AR", "{}", String::from_utf8_lossy(&ack));

    let q = quarantine
        .wait("both refusals quarantined", |m| m.len() >= 2)
        .await;
    assert!(q.iter().any(|m| m.envelope() == http_envelope));
    for m in &q {
        assert_eq!(
            m.header(H_REASON),
            Some("consent-denied:no-consent"),
            "{:?}",
            m.props.headers
        );
        assert_eq!(m.header("x-kaigo-hop"), Some("ingress"));
        assert_eq!(m.header(H_RECIPIENT), None, "refused for everyone");
    }

    tokio::time::sleep(QUIET).await;
    assert_eq!(quarantine.all().len(), 2);
    assert_eq!(provider.all().len(), 0, "nothing for 0300000005");
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)),
        vec![],
        "nothing for 0300000100"
    );
    assert_eq!(
        queue_len(&running.hub, &t.translate_queue()).await,
        0,
        "nothing went on"
    );
    assert_eq!(queue_len(&running.hub, &t.dead_queue()).await, 0);
    let m = &running.hub.metrics;
    assert_eq!(m.accepted.load(Ordering::Relaxed), 0);
    assert_eq!(m.delivered.load(Ordering::Relaxed), 0);
    running.stop().await;
}

// ------------------------------------------------------------------------------------------------
// 6. Revoked while waiting
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consent_revoked_while_the_message_waits_for_translate_stops_it_there() {
    captured_logs();
    let s = Scratch::rabbit("hop-revoke-t", |p| p);
    let hub = s.build().await;
    link_sample_patients(&hub);
    let platform = consent_of(
        "rt-platform",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &[Category::Certification],
    );
    hub.grant_consent(platform).await.unwrap();
    hub.grant_consent(consent_of(
        "rt-providers",
        PERSON_1,
        Grantee::Kind(PartyKind::Provider),
        &[Category::Certification],
    ))
    .await
    .unwrap();
    let t = hub.topology.clone();
    let quarantine = Tap::new(hub.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;

    let a = accept(&hub, HOSPITAL, &sample("fhir/patient-jpcore.json"), None)
        .await
        .expect("consent #1 permits");
    eventually("the message waits in the translate queue", async || {
        queue_len(&hub, &t.translate_queue()).await == 1
    })
    .await;
    hub.revoke_consent("rt-platform", &clock::now_rfc3339())
        .await
        .unwrap();

    let hops = Hops::start(&hub, true, true).await;
    let q = quarantine
        .wait("the revoked message quarantined", |m| !m.is_empty())
        .await;
    assert_eq!(q[0].envelope(), a.envelope_id);
    assert_eq!(
        q[0].header(H_REASON),
        Some("consent-denied:revoked"),
        "{:?}",
        q[0].props.headers
    );
    eventually("the translate queue is empty", async || {
        queue_len(&hub, &t.translate_queue()).await == 0
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(quarantine.all().len(), 1);
    assert_eq!(provider.all().len(), 0, "nothing for 0300000005");
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)),
        vec![],
        "nothing for 0300000100"
    );
    assert_eq!(
        queue_len(&hub, &t.deliver_queue()).await,
        0,
        "no canonical document"
    );
    assert_eq!(queue_len(&hub, &t.dead_queue()).await, 0);
    assert_eq!(hub.metrics.translated.load(Ordering::Relaxed), 0);
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 0);
    hops.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consent_revoked_while_the_document_waits_for_deliver_withholds_it_from_that_recipient() {
    captured_logs();
    let s = Scratch::rabbit("hop-revoke-d", |p| p);
    let hub = s.build().await;
    link_sample_patients(&hub);
    let cert = [Category::Certification];
    hub.grant_consent(consent_of(
        "rd-platform",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &cert,
    ))
    .await
    .unwrap();
    hub.grant_consent(consent_of(
        "rd-provider",
        PERSON_1,
        party_grantee(PROVIDER),
        &cert,
    ))
    .await
    .unwrap();
    hub.grant_consent(consent_of(
        "rd-care-manager",
        PERSON_1,
        party_grantee(CARE_MANAGER),
        &cert,
    ))
    .await
    .unwrap();
    let t = hub.topology.clone();
    let quarantine = Tap::new(hub.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;

    let a = accept(&hub, HOSPITAL, &sample("fhir/patient-jpcore.json"), None)
        .await
        .expect("consent #1 permits");
    let translating = Hops::start(&hub, true, false).await;
    eventually(
        "the canonical document waits in the deliver queue",
        async || queue_len(&hub, &t.deliver_queue()).await == 1,
    )
    .await;
    translating.stop().await;
    assert_eq!(
        queue_len(&hub, &t.translate_queue()).await,
        0,
        "translate acked its input"
    );
    hub.revoke_consent("rd-provider", &clock::now_rfc3339())
        .await
        .unwrap();

    let delivering = Hops::start(&hub, false, true).await;
    wait_for_file(
        &s.out_dir(CARE_MANAGER),
        "0300000100's copy (still consented)",
        |n| n == format!("{}-0.json", a.envelope_id),
    )
    .await;
    let q = quarantine
        .wait("the copy withheld from 0300000005", |m| !m.is_empty())
        .await;
    assert_eq!(q[0].envelope(), a.envelope_id);
    assert_eq!(q[0].header(H_RECIPIENT), Some(PROVIDER));
    assert_eq!(
        q[0].header(H_REASON),
        Some("consent-denied:revoked"),
        "{:?}",
        q[0].props.headers
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(provider.all().len(), 0, "0300000005's consent was revoked");
    assert_eq!(quarantine.all().len(), 1);
    assert_eq!(files(&s.out_dir(CARE_MANAGER)).len(), 1);
    assert_eq!(queue_len(&hub, &t.deliver_queue()).await, 0);
    assert_eq!(queue_len(&hub, &t.dead_queue()).await, 0);
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 1);
    delivering.stop().await;
}

/// Two hub processes share one database and one broker. The one that moves messages answers
/// consent questions from its cache; a revoke made through the other reaches that cache through the
/// `kaigo.consent` fanout, so the next document of the person is withheld although the cached copy
/// had not expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_in_one_hub_process_reaches_the_consent_cache_of_another_through_the_fanout() {
    captured_logs();
    let s = Scratch::rabbit("hop-feed", |p| p);
    let mover = s.build().await;
    let cache = mover
        .consent_cache
        .clone()
        .expect("a RabbitMQ hub caches consents");
    let mut admin_cfg = s.config();
    admin_cfg.database_url = Some(admin_cfg.store_url());
    admin_cfg.data_dir = s.dir.join("admin-state");
    let admin = kaigo_hub::serve::build(&admin_cfg)
        .await
        .expect("the second hub process builds");
    link_sample_patients(&mover);
    let cert = [Category::Certification];
    for (id, grantee) in [
        ("fd-platform", Grantee::Kind(PartyKind::Platform)),
        ("fd-provider", party_grantee(PROVIDER)),
        ("fd-care-manager", party_grantee(CARE_MANAGER)),
    ] {
        admin
            .grant_consent(consent_of(id, PERSON_1, grantee, &cert))
            .await
            .unwrap();
    }
    let t = mover.topology.clone();
    let quarantine = Tap::new(mover.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(mover.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let hops = Hops::start(&mover, true, true).await;

    let first = accept(&mover, HOSPITAL, &sample("fhir/patient-jpcore.json"), None)
        .await
        .expect("consent #1 permits");
    provider
        .wait("the first document reaches 0300000005", |m| m.len() == 1)
        .await;
    assert_eq!(provider.all()[0].envelope(), first.envelope_id);
    let hits = mover.metrics.consent_cache_hits.load(Ordering::Relaxed);
    assert!(hits > 0, "the moving process answered from its cache");
    assert!(!cache.is_empty(), "and holds the person's consents");

    admin
        .revoke_consent("fd-provider", &clock::now_rfc3339())
        .await
        .unwrap();
    eventually("the fanout dropped the mover's copy", async || {
        cache.is_empty()
    })
    .await;

    let second = accept(&mover, HOSPITAL, &sample("fhir/patient-jpcore.json"), None)
        .await
        .expect("consent #1 still permits");
    wait_for_file(
        &s.out_dir(CARE_MANAGER),
        "0300000100's copy of the second document",
        |n| n == format!("{}-0.json", second.envelope_id),
    )
    .await;
    let q = quarantine
        .wait("the second document withheld from 0300000005", |m| {
            !m.is_empty()
        })
        .await;
    assert_eq!(q[0].envelope(), second.envelope_id);
    assert_eq!(q[0].header(H_RECIPIENT), Some(PROVIDER));
    assert_eq!(q[0].header(H_REASON), Some("consent-denied:revoked"));
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        provider.all().len(),
        1,
        "only the first document reached 0300000005"
    );
    assert!(
        mover.metrics.consent_cache_hits.load(Ordering::Relaxed) > hits,
        "the second document was decided from a fresh cached copy too"
    );
    hops.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_waiting_for_deliver_reaches_nobody_once_every_recipient_consent_is_revoked() {
    captured_logs();
    let s = Scratch::rabbit("hop-revoke-all", |p| p);
    let hub = s.build().await;
    link_sample_patients(&hub);
    let cert = [Category::Certification];
    hub.grant_consent(consent_of(
        "ra-platform",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &cert,
    ))
    .await
    .unwrap();
    hub.grant_consent(consent_of(
        "ra-providers",
        PERSON_1,
        Grantee::Kind(PartyKind::Provider),
        &cert,
    ))
    .await
    .unwrap();
    let t = hub.topology.clone();
    let quarantine = Tap::new(hub.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;

    let a = accept(&hub, HOSPITAL, &sample("fhir/patient-jpcore.json"), None)
        .await
        .expect("consent #1 permits");
    let translating = Hops::start(&hub, true, false).await;
    eventually(
        "the canonical document waits in the deliver queue",
        async || queue_len(&hub, &t.deliver_queue()).await == 1,
    )
    .await;
    translating.stop().await;
    hub.revoke_consent("ra-providers", &clock::now_rfc3339())
        .await
        .unwrap();

    let delivering = Hops::start(&hub, false, true).await;
    let q = quarantine
        .wait("a withheld copy per subscriber", |m| m.len() >= 2)
        .await;
    let named: BTreeSet<&str> = q.iter().filter_map(|m| m.header(H_RECIPIENT)).collect();
    assert_eq!(named, BTreeSet::from([CARE_MANAGER, PROVIDER]));
    for m in &q {
        assert_eq!(m.envelope(), a.envelope_id);
        assert_eq!(m.header(H_REASON), Some("consent-denied:revoked"));
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(provider.all().len(), 0);
    assert_eq!(files(&s.out_dir(CARE_MANAGER)), vec![]);
    assert_eq!(quarantine.all().len(), 2);
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 0);
    delivering.stop().await;
}

// ------------------------------------------------------------------------------------------------
// 7. Consent for one recipient only
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_for_one_recipient_never_lets_another_receive_and_the_withheld_copy_names_it() {
    captured_logs();
    let s = Scratch::rabbit("hop-one", |p| p);
    let running = s.start().await;
    let hub = running.hub.clone();
    link_sample_patients(&hub);
    let cert = [Category::Certification];
    grant(
        &hub,
        "one-platform",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &cert,
    )
    .await;
    grant(
        &hub,
        "one-care-manager",
        PERSON_1,
        party_grantee(CARE_MANAGER),
        &cert,
    )
    .await;
    // Consents that must not help 0300000005: another person, another category, another kind.
    grant(
        &hub,
        "one-other-person",
        PERSON_2,
        party_grantee(PROVIDER),
        &cert,
    )
    .await;
    grant(
        &hub,
        "one-other-category",
        PERSON_1,
        party_grantee(PROVIDER),
        &[Category::CarePlan],
    )
    .await;
    grant(
        &hub,
        "one-other-kind",
        PERSON_1,
        Grantee::Kind(PartyKind::Hospital),
        &cert,
    )
    .await;
    let t = hub.topology.clone();
    let quarantine = Tap::new(hub.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;

    let reply = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &sample("fhir/patient-jpcore.json"),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let envelope = reply
        .header("x-kaigo-envelope")
        .expect("envelope")
        .to_string();

    wait_for_file(&s.out_dir(CARE_MANAGER), "0300000100's copy", |n| {
        n == format!("{envelope}-0.json")
    })
    .await;
    let q = quarantine
        .wait("the copy withheld from 0300000005", |m| !m.is_empty())
        .await;
    assert_eq!(q[0].envelope(), envelope);
    assert_eq!(q[0].header(H_RECIPIENT), Some(PROVIDER));
    assert_eq!(q[0].header(H_DOC_INDEX), Some("0"));
    assert_eq!(
        q[0].header(H_REASON),
        Some("consent-denied:category-not-covered"),
        "the most specific reason of the person's consents: {:?}",
        q[0].props.headers
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(provider.all().len(), 0, "0300000005 receives nothing");
    assert_eq!(quarantine.all().len(), 1);
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 1);
    running.stop().await;
}

// ------------------------------------------------------------------------------------------------
// 8. Delivered = permitted, for random consent sets
// ------------------------------------------------------------------------------------------------

/// Who a drawn consent names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Kind(PartyKind),
    Party(&'static str),
}

const GRANTEES: [Who; 8] = [
    Who::Kind(PartyKind::Platform),
    Who::Kind(PartyKind::Provider),
    Who::Kind(PartyKind::Municipality),
    Who::Kind(PartyKind::Hospital),
    Who::Party(HUB_ID),
    Who::Party(PROVIDER),
    Who::Party(CARE_MANAGER),
    Who::Party(MUNICIPALITY),
];

/// A drawn consent's period and state; the boundaries are today in Japan (日本時間), inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Validity {
    Active,
    EndsToday,
    StartsToday,
    EndedYesterday,
    StartsTomorrow,
    Revoked,
    Expired,
    NotYetValid,
}

impl Validity {
    fn permits(self) -> bool {
        matches!(
            self,
            Validity::Active | Validity::EndsToday | Validity::StartsToday
        )
    }
}

/// `YYYY-MM-DD` of the day `offset` days from today in Japan (UTC+9), computed here rather
/// than with the hub's clock.
fn jst_day(offset: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    // Howard Hinnant's civil_from_days.
    let z = (secs + 9 * 3600).div_euclid(86_400) + offset + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One drawn consent.
#[derive(Clone, Debug)]
struct Drawn {
    person: usize,
    who: Who,
    categories: Vec<Category>,
    validity: Validity,
    /// The one purpose the consent is for; the hub asks without a purpose, so only `None` permits.
    purpose: Option<&'static str>,
}

const PEOPLE: [(&str, &str); 2] = [PERSON_1, PERSON_2];

fn drawn(grantees: &'static [Who]) -> impl Strategy<Value = Drawn> {
    let categories = proptest::sample::subsequence(
        vec![
            Category::Certification,
            Category::CarePlan,
            Category::Claims,
        ],
        1..=3,
    );
    let validity = prop_oneof![
        8 => Just(Validity::Active),
        1 => Just(Validity::EndsToday),
        1 => Just(Validity::StartsToday),
        1 => Just(Validity::EndedYesterday),
        1 => Just(Validity::StartsTomorrow),
        1 => Just(Validity::Revoked),
        1 => Just(Validity::Expired),
        1 => Just(Validity::NotYetValid),
    ];
    let purpose = prop_oneof![6 => Just(None), 1 => Just(Some("research"))];
    (
        0..PEOPLE.len(),
        proptest::sample::select(grantees),
        categories,
        validity,
        purpose,
    )
        .prop_map(|(person, who, categories, validity, purpose)| Drawn {
            person,
            who,
            categories,
            validity,
            purpose,
        })
}

/// Platform consents drawn apart (so that messages often get past ingress), then any consents.
fn consent_sets() -> impl Strategy<Value = Vec<Drawn>> {
    static PLATFORM: [Who; 2] = [Who::Kind(PartyKind::Platform), Who::Party(HUB_ID)];
    (
        proptest::collection::vec(drawn(&PLATFORM), 1..=4),
        proptest::collection::vec(drawn(&GRANTEES), 0..=10),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
}

/// The predicate the hub must implement: a consent of this person, in force today and not
/// revoked, without a purpose, naming this party or its kind, covering this category.
fn permits(set: &[Drawn], person: usize, party: &str, kind: PartyKind, c: Category) -> bool {
    set.iter().any(|d| {
        d.person == person
            && d.validity.permits()
            && d.purpose.is_none()
            && d.categories.contains(&c)
            && match d.who {
                Who::Kind(k) => k == kind,
                Who::Party(id) => id == party,
            }
    })
}

/// One of the fixed messages.
struct Fixed {
    file: &'static str,
    /// What the test makes of the file's bytes (the identity, or another person's card).
    edit: fn(Vec<u8>) -> Vec<u8>,
    from: &'static str,
    file_name: Option<&'static str>,
    /// The canonical document kind it becomes.
    document: &'static str,
    category: Category,
    /// The person of each canonical document, by document index.
    docs: &'static [usize],
    /// Subscribers of the document kind (other than the sender): id and kind.
    recipients: &'static [(&'static str, PartyKind)],
    /// The sender may not speak for this person (a municipality sending another insurer's
    /// person): refused whatever the consents, and never released by a replay.
    foreign: bool,
}

fn unchanged(b: Vec<u8>) -> Vec<u8> {
    b
}

/// card-wareki.xml (insurer 131011) as the card of `person`.
fn card_of(b: Vec<u8>, person: (&str, &str)) -> Vec<u8> {
    String::from_utf8(b)
        .expect("UTF-8 sample")
        .replace(
            r#"<hk:保険者 number="131011">"#,
            &format!(r#"<hk:保険者 number="{}">"#, person.0),
        )
        .replace(
            r#"<hk:被保険者 number="0000123456""#,
            &format!(r#"<hk:被保険者 number="{}""#, person.1),
        )
        .into_bytes()
}

const FIXED: [Fixed; 6] = [
    Fixed {
        file: "fhir/patient-jpcore.json",
        edit: unchanged,
        from: HOSPITAL,
        file_name: None,
        document: "InsuredPerson@1",
        category: Category::Certification,
        docs: &[0],
        recipients: &[
            (CARE_MANAGER, PartyKind::Provider),
            (PROVIDER, PartyKind::Provider),
        ],
        foreign: false,
    },
    Fixed {
        file: "hl7v2/adt-a01-utf8.hl7",
        edit: unchanged,
        from: HOSPITAL_2,
        file_name: None,
        document: "InsuredPerson@1",
        category: Category::Certification,
        docs: &[1],
        recipients: &[
            (CARE_MANAGER, PartyKind::Provider),
            (PROVIDER, PartyKind::Provider),
        ],
        foreign: false,
    },
    Fixed {
        file: "careplan/UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV",
        edit: unchanged,
        from: CARE_MANAGER,
        file_name: Some(UP2KYO),
        document: "CarePlan@1",
        category: Category::CarePlan,
        docs: &[0, 1],
        recipients: &[
            (PROVIDER, PartyKind::Provider),
            (MUNICIPALITY, PartyKind::Municipality),
        ],
        foreign: false,
    },
    Fixed {
        file: "careplan/UPJSK_202511_0300000005_11_0300000100_43_20251203090000.CSV",
        edit: unchanged,
        from: PROVIDER,
        file_name: Some(UPJSK),
        document: "ServiceUsage@1",
        category: Category::CarePlan,
        docs: &[0],
        recipients: &[(CARE_MANAGER, PartyKind::Provider)],
        foreign: false,
    },
    Fixed {
        file: "xml/card-wareki.xml",
        edit: |b| card_of(b, PERSON_1),
        from: MUNICIPALITY,
        file_name: None,
        document: "InsuranceCard@1",
        category: Category::Certification,
        docs: &[0],
        recipients: &[(CARE_MANAGER, PartyKind::Provider)],
        foreign: false,
    },
    // 131011 sends the card of person 2, whom 435073 insures.
    Fixed {
        file: "xml/card-wareki.xml",
        edit: |b| card_of(b, PERSON_2),
        from: MUNICIPALITY,
        file_name: None,
        document: "InsuranceCard@1",
        category: Category::Certification,
        docs: &[1],
        recipients: &[(CARE_MANAGER, PartyKind::Provider)],
        foreign: true,
    },
];

impl Fixed {
    fn bytes(&self) -> Vec<u8> {
        (self.edit)(sample(self.file))
    }
}

/// The property test's parties: the demo's, with the care manager also receiving 被保険者証.
fn with_cards_for_the_care_manager(p: String) -> String {
    let from = "      - { document: ServiceUsage@1, format: canonical }";
    assert!(p.contains(from), "parties.yaml changed: {from}");
    p.replace(
        from,
        &format!("{from}\n      - {{ document: InsuranceCard@1, format: canonical }}"),
    )
}

/// What happened to an envelope, as seen from outside the hub.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// Refused for everyone (ingress or translate quarantined the whole message).
    Refused { envelope: String },
    /// Document `index` was kept in quarantine for everyone (translate withheld it while others
    /// of its message went on, or deliver withheld it again after a replay).
    Kept { envelope: String, index: String },
    /// Document `index` reached `party`.
    Delivered {
        envelope: String,
        index: String,
        party: String,
    },
    /// Document `index` was withheld from `party` (quarantined copy naming it).
    Withheld {
        envelope: String,
        index: String,
        party: String,
    },
    /// Anything in the dead-letter queue.
    Dead { envelope: String },
}

impl Seen {
    fn envelope(&self) -> &str {
        match self {
            Seen::Refused { envelope }
            | Seen::Kept { envelope, .. }
            | Seen::Delivered { envelope, .. }
            | Seen::Withheld { envelope, .. }
            | Seen::Dead { envelope } => envelope,
        }
    }
}

/// One step of a case's schedule, after its messages were sent.
#[derive(Clone, Debug)]
enum Step {
    /// More consents (kept until the case ends).
    Grant(Vec<Drawn>),
    /// Every category to every grantee, for both people: whatever is still held back after
    /// this and a replay is held back for a reason no consent cures.
    GrantAll,
    /// `replay quarantine` of this case's messages.
    ReplayQuarantine,
    /// `replay dead` of this case's messages.
    ReplayDead,
}

/// A drawn case: consents, then the fixed messages plus the ones found in the dead-letter queue
/// (indexes into [`FIXED`], parked there as if a mapping had failed on them earlier), then the
/// schedule.
#[derive(Clone, Debug)]
struct Drawing {
    consents: Vec<Drawn>,
    dead: Vec<usize>,
    steps: Vec<Step>,
}

fn drawings() -> impl Strategy<Value = Drawing> {
    let step = prop_oneof![
        3 => proptest::collection::vec(drawn(&GRANTEES), 1..=4).prop_map(Step::Grant),
        1 => Just(Step::GrantAll),
        3 => Just(Step::ReplayQuarantine),
        2 => Just(Step::ReplayDead),
    ];
    // The foreign card is drawn as often as all the others together.
    let dead = prop_oneof![1 => 0..FIXED.len(), 1 => Just(FIXED.len() - 1)];
    (
        consent_sets(),
        proptest::collection::vec(dead, 0..=2),
        proptest::collection::vec(step, 0..=4),
    )
        .prop_map(|(consents, dead, steps)| Drawing {
            consents,
            dead,
            steps,
        })
}

/// Something the model holds in quarantine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    /// A whole raw message (refused by ingress or translate); `m` indexes [`FIXED`].
    Raw { envelope: String, m: usize },
    /// Canonical document `index` of message `m`, withheld from everyone (the platform had no
    /// consent for its person) while the others of its message went on.
    Doc {
        envelope: String,
        m: usize,
        index: usize,
    },
    /// A withheld canonical document `index` of message `m`.
    Copy {
        envelope: String,
        m: usize,
        index: usize,
    },
    /// A message no replay releases.
    Kept { envelope: String },
}

/// What the hub must do, step by step: the predicate applied to the consents in force at each
/// moment a message is judged (consent is only ever added during a case, so what was permitted
/// stays permitted).
#[derive(Default)]
struct Model {
    consents: Vec<Drawn>,
    expected: BTreeSet<Seen>,
    delivered: BTreeSet<(String, usize, String)>,
    quarantine: BTreeSet<Held>,
    dead: Vec<(String, usize)>,
}

impl Model {
    /// May document `index` of `m` come to the platform?
    fn platform_ok(&self, m: &Fixed, index: usize) -> bool {
        permits(
            &self.consents,
            m.docs[index],
            HUB_ID,
            PartyKind::Platform,
            m.category,
        )
    }

    /// The numbers (from 1) of the documents of `m` that may not come to the platform.
    fn refused_documents(&self, m: &Fixed) -> Vec<usize> {
        (0..m.docs.len())
            .filter(|&i| !self.platform_ok(m, i))
            .map(|i| i + 1)
            .collect()
    }

    /// Is `m` refused whole: a foreign person, or no document that may come.
    fn refused_whole(&self, m: &Fixed) -> bool {
        m.foreign || self.refused_documents(m).len() == m.docs.len()
    }

    /// Message `m` judged as new (ingress, or translate after a replay).
    fn arrive(&mut self, envelope: &str, m: usize) {
        let f = &FIXED[m];
        let envelope = envelope.to_string();
        if f.foreign {
            self.expected.insert(Seen::Refused {
                envelope: envelope.clone(),
            });
            self.quarantine.insert(Held::Kept { envelope });
            return;
        }
        if self.refused_whole(f) {
            self.expected.insert(Seen::Refused {
                envelope: envelope.clone(),
            });
            self.quarantine.insert(Held::Raw { envelope, m });
            return;
        }
        // Document by document: those whose person consented go on, the others are kept.
        for index in 0..f.docs.len() {
            if self.platform_ok(f, index) {
                self.offer(&envelope, m, index);
            } else {
                self.keep(&envelope, m, index);
            }
        }
    }

    /// Document `index` of `m` kept in quarantine for everyone.
    fn keep(&mut self, envelope: &str, m: usize, index: usize) {
        self.expected.insert(Seen::Kept {
            envelope: envelope.to_string(),
            index: index.to_string(),
        });
        self.quarantine.insert(Held::Doc {
            envelope: envelope.to_string(),
            m,
            index,
        });
    }

    /// Document `index` of `m` offered to every recipient (those served before are skipped).
    fn offer(&mut self, envelope: &str, m: usize, index: usize) {
        let f = &FIXED[m];
        let person = f.docs[index];
        for &(party, kind) in f.recipients {
            let key = (envelope.to_string(), index, party.to_string());
            if self.delivered.contains(&key) {
                continue;
            }
            let (envelope, i, party) = (envelope.to_string(), index.to_string(), party.to_string());
            if permits(&self.consents, person, &party, kind, f.category) {
                self.expected.insert(Seen::Delivered {
                    envelope,
                    index: i,
                    party,
                });
                self.delivered.insert(key);
            } else {
                self.expected.insert(Seen::Withheld {
                    envelope: envelope.clone(),
                    index: i,
                    party,
                });
                self.quarantine.insert(Held::Copy { envelope, m, index });
            }
        }
    }

    fn replay_quarantine(&mut self) {
        let held = std::mem::take(&mut self.quarantine);
        for h in held {
            match h {
                Held::Kept { .. } => {
                    self.quarantine.insert(h);
                }
                Held::Raw { envelope, m } => self.arrive(&envelope, m),
                // Deliver judges a replayed document as a new one: the platform's consent first.
                Held::Doc { envelope, m, index } => {
                    if self.platform_ok(&FIXED[m], index) {
                        self.offer(&envelope, m, index)
                    } else {
                        self.keep(&envelope, m, index)
                    }
                }
                Held::Copy { envelope, m, index } => self.offer(&envelope, m, index),
            }
        }
    }

    fn replay_dead(&mut self) {
        for (envelope, m) in std::mem::take(&mut self.dead) {
            self.arrive(&envelope, m);
        }
    }
}

/// A hub with its hops, and taps on every place a document can end up.
struct World {
    s: Scratch,
    hub: Arc<Hub>,
    hops: Option<Hops>,
    provider: Tap,
    quarantine: Tap,
    dead: Tap,
    quiet: Duration,
}

impl World {
    async fn new(s: Scratch, quiet: Duration) -> World {
        let hub = s.build().await;
        link_sample_patients(&hub);
        for m in &FIXED {
            let parties = hub.parties.current();
            let routed: Vec<(&str, PartyKind)> = parties
                .recipients_of(m.document, m.from)
                .into_iter()
                .map(|(p, _)| (p.id.as_str(), p.kind))
                .collect();
            assert_eq!(
                routed, m.recipients,
                "{}: the parties file routes it differently than this test assumes",
                m.file
            );
        }
        let t = hub.topology.clone();
        let bus = hub.bus.as_ref();
        let provider = Tap::new(bus, &t.out_queue(PROVIDER)).await;
        // Copies of what is parked: the queues keep it, for the replays.
        let quarantine = Tap::subscribed(bus, &t.quarantine()).await;
        let dead = Tap::subscribed(bus, &t.dead()).await;
        let hops = Some(Hops::start(&hub, true, true).await);
        World {
            s,
            hub,
            hops,
            provider,
            quarantine,
            dead,
            quiet,
        }
    }

    /// Everything seen so far about `envelopes`.
    fn seen(&self, envelopes: &BTreeSet<String>) -> BTreeSet<Seen> {
        let mut out = BTreeSet::new();
        for m in self.provider.all() {
            out.insert(Seen::Delivered {
                envelope: m.envelope().into(),
                index: m.header(H_DOC_INDEX).unwrap_or("?").into(),
                party: PROVIDER.into(),
            });
        }
        for party in [CARE_MANAGER, MUNICIPALITY] {
            for (name, _) in files(&self.s.out_dir(party)) {
                let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
                let (envelope, index) = stem.rsplit_once('-').unwrap_or((stem, "?"));
                out.insert(Seen::Delivered {
                    envelope: envelope.into(),
                    index: index.into(),
                    party: party.into(),
                });
            }
        }
        for m in self.quarantine.all() {
            out.insert(match m.header(H_RECIPIENT) {
                Some(party) => Seen::Withheld {
                    envelope: m.envelope().into(),
                    index: m.header(H_DOC_INDEX).unwrap_or("?").into(),
                    party: party.into(),
                },
                None => match m.header(H_DOC_INDEX) {
                    Some(index) => Seen::Kept {
                        envelope: m.envelope().into(),
                        index: index.into(),
                    },
                    None => Seen::Refused {
                        envelope: m.envelope().into(),
                    },
                },
            });
        }
        for m in self.dead.all() {
            out.insert(Seen::Dead {
                envelope: m.envelope().into(),
            });
        }
        out.retain(|s| envelopes.contains(s.envelope()));
        out
    }

    /// Waits until what the model expects was seen (bounded), then until the hub is idle: the
    /// hop queues empty and its counters still for a quiet spell, so that the next step finds
    /// every message where the last one left it.
    async fn settle(&self, envelopes: &BTreeSet<String>, expected: &BTreeSet<Seen>) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !expected.is_subset(&self.seen(envelopes)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let m = &self.hub.metrics;
        let counters = || {
            [
                &m.translated,
                &m.delivered,
                &m.quarantined,
                &m.dead,
                &m.permit,
                &m.deny,
            ]
            .map(|c| c.load(Ordering::Relaxed))
        };
        let t = &self.hub.topology;
        loop {
            let before = counters();
            tokio::time::sleep(self.quiet).await;
            let idle = queue_len(&self.hub, &t.translate_queue()).await == 0
                && queue_len(&self.hub, &t.deliver_queue()).await == 0;
            if idle && counters() == before || tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Runs the drawn case and checks the outcome; returns what was expected. The case's
    /// consents are revoked afterwards, whatever happened, so that they decide nothing in the
    /// next case (shrinking included).
    async fn case(
        &self,
        n: usize,
        drawing: &Drawing,
    ) -> Result<(BTreeSet<String>, BTreeSet<Seen>), TestCaseError> {
        let mut ids = Vec::new();
        let result = self.run_case(n, drawing, &mut ids).await;
        let now = clock::now_rfc3339();
        for id in &ids {
            self.hub
                .revoke_consent(id, &now)
                .await
                .map_err(|e| TestCaseError::fail(format!("revoke {id}: {e}")))?;
        }
        result
    }

    async fn grant(&self, id: String, d: &Drawn) -> Result<(), TestCaseError> {
        let day = |offset| IsoDate::parse(&jst_day(offset)).expect("date");
        let grantee = match d.who {
            Who::Kind(k) => Grantee::Kind(k),
            Who::Party(p) => party_grantee(p),
        };
        let mut c = consent_of(&id, PEOPLE[d.person], grantee, &d.categories);
        c.purpose = d.purpose.map(String::from);
        match d.validity {
            Validity::Active => {}
            Validity::EndsToday => c.valid_to = Some(day(0)),
            Validity::StartsToday => c.valid_from = day(0),
            Validity::EndedYesterday => c.valid_to = Some(day(-1)),
            Validity::StartsTomorrow => c.valid_from = day(1),
            Validity::Revoked => {
                c.revoked_at = Some("2020-01-01T00:00:00Z".parse().expect("timestamp"))
            }
            Validity::Expired => c.valid_to = Some(IsoDate::parse("2001-12-31").expect("date")),
            Validity::NotYetValid => c.valid_from = IsoDate::parse("2999-01-01").expect("date"),
        }
        self.hub
            .grant_consent(c)
            .await
            .map(|_| ())
            .map_err(|e| TestCaseError::fail(format!("grant {id}: {e}")))
    }

    async fn run_case(
        &self,
        n: usize,
        drawing: &Drawing,
        ids: &mut Vec<String>,
    ) -> Result<(BTreeSet<String>, BTreeSet<Seen>), TestCaseError> {
        let today = jst_day(0);
        let mut model = Model::default();
        for d in &drawing.consents {
            let id = format!("p{n}-{}", ids.len());
            self.grant(id.clone(), d).await?;
            ids.push(id);
            model.consents.push(d.clone());
        }

        let mut envelopes = BTreeSet::new();
        for (i, m) in FIXED.iter().enumerate() {
            let r = accept(&self.hub, m.from, &m.bytes(), m.file_name).await;
            let refused = model.refused_whole(m);
            let envelope = match (&r, refused) {
                (Ok(a), false) => {
                    // The answer names each document that may not come, and only those.
                    let named: Vec<usize> = a.refused.iter().map(|r| r.number).collect();
                    prop_assert_eq!(&named, &model.refused_documents(m), "{}", m.file);
                    for r in &a.refused {
                        prop_assert!(r.reason.starts_with("consent-denied:"), "{r:?}");
                    }
                    a.envelope_id.clone()
                }
                (
                    Err(Refusal::Forbidden {
                        envelope_id,
                        reason,
                        detail,
                        ..
                    }),
                    true,
                ) => {
                    if m.foreign {
                        prop_assert_eq!(reason.as_str(), "insurer-mismatch");
                    } else {
                        prop_assert!(reason.starts_with("consent-denied:"), "{reason}");
                        prop_assert!(detail.contains("the platform (hub 9990000001)"), "{detail}");
                    }
                    envelope_id.clone()
                }
                (r, _) => {
                    return Err(TestCaseError::fail(format!(
                        "{}: ingress answered {r:?}, but it should {}",
                        m.file,
                        if refused { "refuse" } else { "accept" }
                    )));
                }
            };
            envelopes.insert(envelope.clone());
            model.arrive(&envelope, i);
        }
        // Messages a mapping failed on earlier, waiting in the dead-letter queue with nothing
        // but where they came from.
        for (k, &m) in drawing.dead.iter().enumerate() {
            let f = &FIXED[m];
            let envelope = format!("dead{n}x{k}");
            let mut props = kaigo_hub::bus::Props {
                message_id: Some(envelope.clone()),
                ..Default::default()
            };
            for (h, v) in [
                ("x-kaigo-source", f.from),
                ("x-kaigo-hop", "ingress"),
                ("x-kaigo-error", "a mapping error, since fixed"),
            ] {
                props.headers.insert(h.into(), v.into());
            }
            if let Some(name) = f.file_name {
                props
                    .headers
                    .insert("x-kaigo-file-name".into(), name.into());
            }
            self.hub
                .bus
                .publish(&self.hub.topology.dead(), "test", &props, &f.bytes())
                .await
                .map_err(|e| TestCaseError::fail(format!("dead-lettering {envelope}: {e}")))?;
            envelopes.insert(envelope.clone());
            model.expected.insert(Seen::Dead {
                envelope: envelope.clone(),
            });
            model.dead.push((envelope, m));
        }
        self.settle(&envelopes, &model.expected).await;
        check(drawing, &model.expected, &self.seen(&envelopes))?;

        let ours = |p: &kaigo_hub::bus::Props| {
            p.message_id
                .as_deref()
                .is_some_and(|id| envelopes.contains(id))
        };
        for step in &drawing.steps {
            let parked = match step {
                Step::Grant(_) | Step::GrantAll => {
                    let all: Vec<Drawn> = (0..PEOPLE.len())
                        .flat_map(|person| {
                            GRANTEES.iter().map(move |&who| Drawn {
                                person,
                                who,
                                categories: vec![
                                    Category::Certification,
                                    Category::CarePlan,
                                    Category::Claims,
                                ],
                                validity: Validity::Active,
                                purpose: None,
                            })
                        })
                        .collect();
                    let more = match step {
                        Step::Grant(more) => more,
                        _ => &all,
                    };
                    for d in more {
                        let id = format!("p{n}-{}", ids.len());
                        self.grant(id.clone(), d).await?;
                        ids.push(id);
                        model.consents.push(d.clone());
                    }
                    continue;
                }
                Step::ReplayQuarantine => {
                    model.replay_quarantine();
                    Parked::Quarantine
                }
                Step::ReplayDead => {
                    model.replay_dead();
                    Parked::Dead
                }
            };
            replay::replay(
                self.hub.bus.as_ref(),
                &self.hub.topology,
                parked,
                &ours,
                &mut |_, _| {},
            )
            .await
            .map_err(|e| TestCaseError::fail(format!("{step:?}: {e}")))?;
            self.settle(&envelopes, &model.expected).await;
            check(drawing, &model.expected, &self.seen(&envelopes))?;
        }
        if jst_day(0) != today {
            // Midnight in Japan passed during the case: today's boundaries moved; inconclusive.
            return Ok((BTreeSet::new(), BTreeSet::new()));
        }
        Ok((envelopes, model.expected))
    }
}

fn check(
    drawing: &Drawing,
    expected: &BTreeSet<Seen>,
    seen: &BTreeSet<Seen>,
) -> Result<(), TestCaseError> {
    if expected == seen {
        return Ok(());
    }
    let missing: Vec<&Seen> = expected.difference(seen).collect();
    let extra: Vec<&Seen> = seen.difference(expected).collect();
    Err(TestCaseError::fail(format!(
        "drawn {drawing:#?}\nexpected but not seen: {missing:#?}\nseen but not permitted/expected: {extra:#?}"
    )))
}

/// Runs `cases` random drawings through one hub on `scratch`.
fn delivered_equals_permitted(scratch: Scratch, cases: u32, quiet: Duration) {
    captured_logs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let world = rt.block_on(World::new(scratch, quiet));
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let passed = Mutex::new(Vec::new());
    let result = runner.run(&drawings(), |drawing| {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let (envelopes, expected) = rt.block_on(world.case(n, &drawing))?;
        passed
            .lock()
            .expect("lock")
            .push((drawing, envelopes, expected));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // A late delivery would have been missed by its own case: look at all of them once more.
    rt.block_on(async {
        tokio::time::sleep(world.quiet).await;
        for (drawing, envelopes, expected) in passed.lock().expect("lock").iter() {
            if let Err(e) = check(drawing, expected, &world.seen(envelopes)) {
                panic!("on a second look: {e}");
            }
        }
        if let Some(h) = &world.hops {
            assert!(
                h.tasks.iter().all(|t| !t.is_finished()),
                "the hops are still running"
            );
        }
    });
    let World { s, hops, .. } = world;
    rt.block_on(async {
        if let Some(h) = hops {
            h.stop().await;
        }
    });
    drop(s);
}

#[test]
fn delivered_equals_permitted_for_random_consent_sets_and_replays_on_rabbitmq() {
    delivered_equals_permitted(
        Scratch::rabbit("hop-prop", with_cards_for_the_care_manager),
        24,
        Duration::from_millis(300),
    );
}

#[test]
fn delivered_equals_permitted_for_random_consent_sets_and_replays_on_the_memory_bus() {
    delivered_equals_permitted(
        Scratch::memory("hop-prop-mem", with_cards_for_the_care_manager),
        64,
        Duration::from_millis(60),
    );
}

// ------------------------------------------------------------------------------------------------
// 9. Logs: ids and hashes, never personal data
// ------------------------------------------------------------------------------------------------

/// Strings of the samples' personal data: names (kanji, kana, half-width kana), birth dates in
/// both spellings, addresses, postal codes, phone numbers.
const PERSONAL: &[&str] = &[
    "試験",
    "花子",
    "シケン",
    "ハナコ",
    "ｼｹﾝ",
    "ﾊﾅｺ",
    "架空",
    "一郎",
    "カクウ",
    "イチロウ",
    "ｶｸｳ",
    "1941-03-15",
    "19410315",
    "1938-07-04",
    "19380704",
    "1941-04-05",
    "1941-13-45",
    "19411399",
    "架空町",
    "静岡県",
    "静岡市",
    "大阪府",
    "東京都",
    "420-0853",
    "530-0001",
    "100-0099",
    "054-000-1234",
    "090-0000-5678",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_carry_envelope_ids_and_never_names_birth_dates_or_addresses() {
    let logs = captured_logs();
    let s = Scratch::rabbit("hop-logs", |p| p);
    let running = s.start().await;
    let hub = running.hub.clone();
    kaigo_hub::demo::seed(&hub).expect("demo seed");
    tracing::debug!("log capture check");

    let mut envelopes = Vec::new();
    let reply = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &sample("fhir/patient-jpcore.json"),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    envelopes.push(
        reply
            .header("x-kaigo-envelope")
            .expect("envelope")
            .to_string(),
    );
    let ack = mllp_send(running.mllp_addr, &adt_a08()).await;
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    // Refusals, whose errors are about personal data: a birth date that is no date.
    let bad = String::from_utf8(sample("fhir/patient-jpcore.json"))
        .expect("UTF-8")
        .replace("1941-03-15", "1941-13-45");
    // Its status is not asserted here: the FHIR mapping checks birthDate's shape only (a gap,
    // reported), so today this one is accepted and travels on; either way it is logged.
    let reply = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        bad.as_bytes(),
    )
    .await;
    assert!(reply.status < 500, "{} {}", reply.status, reply.text());
    let mut bad = adt_a08();
    let at = bad
        .windows(8)
        .position(|w| w == b"19410315")
        .expect("PID-7 in the sample");
    bad.splice(at..at + 8, b"19411399".iter().copied());
    let ack = mllp_send(running.mllp_addr, &bad).await;
    assert_eq!(ack_code(&ack), "AE", "{}", String::from_utf8_lossy(&ack));
    // Every other sample, as its sender would send it (ケアプラン CSV through the inboxes).
    for line in kaigo_hub::demo::feed(&hub, &repo().join("samples")).await {
        if let Some(id) = line
            .split("accepted as ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
        {
            envelopes.push(id.to_string());
        }
    }
    assert!(envelopes.len() >= 5, "{envelopes:?}");

    // Let everything settle: inboxes empty, hop queues drained, deliveries stable.
    let t = hub.topology.clone();
    let inboxes = [s.inbox(CARE_MANAGER), s.inbox(PROVIDER)];
    let mut last = u64::MAX;
    eventually("the hub has finished with the samples", async || {
        let waiting = inboxes
            .iter()
            .any(|i| files(i).iter().any(|(n, _)| n.ends_with(".CSV")))
            || inboxes
                .iter()
                .any(|i| !files(&i.join("processing")).is_empty());
        let busy =
            queue_len(&hub, &t.translate_queue()).await + queue_len(&hub, &t.deliver_queue()).await;
        let delivered = hub.metrics.delivered.load(Ordering::Relaxed);
        let settled = !waiting && busy == 0 && delivered == last && delivered > 0;
        last = delivered;
        if !settled {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        settled
    })
    .await;
    running.stop().await;

    let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
    assert!(
        text.contains("log capture check"),
        "the subscriber captures"
    );
    for id in &envelopes {
        assert!(text.contains(id.as_str()), "the logs name envelope {id}");
    }
    let leaks: Vec<(&str, String)> = PERSONAL
        .iter()
        .filter_map(|p| {
            text.lines()
                .find(|l| l.contains(p))
                .map(|l| (*p, l.chars().take(400).collect()))
        })
        .collect();
    assert!(leaks.is_empty(), "personal data in the logs: {leaks:#?}");
    // People are named by keyed hashes only: no 被保険者番号, no hospital patient id.
    for id in [PERSON_1.1, PERSON_2.1, CARD_PERSON.1, "00012345", "A-778"] {
        assert!(!text.contains(id), "`{id}` in the logs");
    }

    // The audit log keeps ids and hashes only, too.
    let audit = std::fs::read_to_string(s.dir.join("state/audit.jsonl")).expect("audit log");
    assert!(audit.lines().count() > envelopes.len());
    for p in PERSONAL {
        assert!(!audit.contains(p), "`{p}` in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_municipality_may_only_send_cards_of_people_it_insures() {
    let s = Scratch::memory("hop-insurer", |p| p);
    let hub = s.build().await;
    // card-sjis.xml is a 被保険者証 of insurer 019992; 131011 sending it speaks for someone else.
    let foreign = accept(&hub, "131011", &sample("xml/card-sjis.xml"), None).await;
    match foreign {
        Err(Refusal::Forbidden { reason, .. }) => assert_eq!(reason, "insurer-mismatch"),
        other => panic!("a foreign insurer's card must be refused: {other:?}"),
    }
    assert_eq!(
        hub.bus
            .queue_len(&hub.topology.quarantine_queue())
            .await
            .unwrap(),
        1,
        "kept in quarantine, not dropped"
    );
    // Its own card passes this check (and is then refused only for lack of consent).
    let own = accept(&hub, "131011", &sample("xml/card-wareki.xml"), None).await;
    match own {
        Err(Refusal::Forbidden { reason, .. }) => assert_ne!(reason, "insurer-mismatch"),
        Ok(_) => {}
        other => panic!("unexpected: {other:?}"),
    }
}
