//! The whole hub, end to end, on the real RabbitMQ: each shipped sample enters through the source
//! its sender would use — JP Core FHIR over HTTP, SS-MIX2 HL7 v2 over MLLP, a vendor's XML
//! 被保険者証 over AMQP, a ケアプラン CSV dropped into an inbox — crosses ingress → translate →
//! deliver, and must reach exactly the parties that subscribe to the document and whose consent
//! allows it, each in its own format (FHIR on an AMQP queue, canonical JSON or MS932 CSV in a
//! directory or on a queue), and nobody else. Consents and patient links are the demo seed
//! (`kaigo_hub::demo::seed`): the second ケアプラン subject has not consented to the
//! municipality, so its copy for 131011 is quarantined naming 131011. Around that: messages in
//! flight when the hub stops are delivered once after a restart (and the audit chain still
//! verifies); a withheld copy is delivered once its consent exists and `kaigo-hub replay
//! quarantine` re-drives it, with nobody served twice; a care plan sent in another party's name
//! is refused and never delivered, not even by a replay.
//!
//! Each test runs a hub in-process under a topology prefix of its own, in a temp directory, with
//! a parties file derived from `parties.yaml`; the prefix's queues and exchanges are deleted
//! afterwards, also when the test fails. Arrivals are awaited by bounded polling.

mod common;

use common::*;
use kaigo_hub::bus::Props;
use kaigo_hub::formats::charset::Charset;
use kaigo_hub::formats::csv::{self, CsvOptions};
use kaigo_hub::serve::Running;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

const H_REASON: &str = "x-kaigo-reason";
const H_RECIPIENT: &str = "x-kaigo-recipient";
const H_DOC_INDEX: &str = "x-kaigo-doc-index";

/// Taps on the queues a test watches: the provider's AMQP queue, quarantine, dead letters.
struct Watch {
    provider: Tap,
    quarantine: Tap,
    dead: Tap,
}

impl Watch {
    async fn new(running: &Running) -> Watch {
        let (bus, t) = (running.hub.bus.as_ref(), &running.hub.topology);
        Watch {
            provider: Tap::new(bus, &t.out_queue(PROVIDER)).await,
            quarantine: Tap::new(bus, &t.quarantine_queue()).await,
            dead: Tap::new(bus, &t.dead_queue()).await,
        }
    }
}

/// `v` without its `source` block (where the message came from differs by transport).
fn without_source(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("source");
    }
    v
}

fn golden(rel: &str) -> Value {
    json(&sample(rel))
}

/// What an InsuredPerson must become: FHIR on 0300000005's queue, canonical JSON in
/// 0300000100's directory, nothing for 131011 (it does not subscribe), nothing quarantined.
async fn insured_person_reaches_its_subscribers(
    s: &Scratch,
    running: &Running,
    w: &Watch,
    envelope: &str,
    canonical_golden: &str,
    fhir_golden: &str,
) {
    let got = w
        .provider
        .wait("the FHIR Patient for 0300000005", |m| {
            m.iter().any(|m| m.envelope() == envelope)
        })
        .await;
    let m = got
        .iter()
        .find(|m| m.envelope() == envelope)
        .expect("found above");
    assert_eq!(
        m.props.content_type.as_deref(),
        Some("application/fhir+json")
    );
    assert_eq!(m.header(H_RECIPIENT), Some(PROVIDER));
    // One transaction Bundle (docs/fhir.md): the mapping's Patient, with the hub's keyed id and
    // the send time as meta.lastUpdated, then the Provenance.
    let bundle = json(&m.body);
    assert_eq!(bundle["type"], "transaction", "{bundle}");
    let entries = bundle["entry"].as_array().expect("entries");
    let types: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert_eq!(types, ["Patient", "Provenance"], "{bundle}");
    let mut patient = entries[0]["resource"].clone();
    let id = patient["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 64, "a keyed id");
    assert_eq!(entries[0]["request"]["url"], format!("Patient/{id}"));
    let members = patient.as_object_mut().expect("object");
    members.shift_remove("id");
    let meta = members["meta"].as_object_mut().expect("meta");
    meta.shift_remove("lastUpdated");
    assert_eq!(patient, golden(fhir_golden), "the rendered Patient");

    let (name, bytes) = wait_for_file(
        &s.out_dir(CARE_MANAGER),
        "the canonical InsuredPerson for 0300000100",
        |n| n.starts_with(envelope),
    )
    .await;
    assert_eq!(name, format!("{envelope}-0.json"));
    let doc = json(&bytes);
    assert_eq!(doc["document"], "InsuredPerson@1");
    assert_eq!(
        without_source(doc),
        without_source(golden(canonical_golden)),
        "the canonical document as its mapping's golden file says"
    );

    tokio::time::sleep(QUIET).await;
    assert_eq!(
        files(&s.out_dir(MUNICIPALITY)),
        vec![],
        "131011 does not subscribe to InsuredPerson"
    );
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)).len(),
        1,
        "one document, once"
    );
    assert_eq!(w.provider.all().len(), 1, "one document, once");
    assert_eq!(w.quarantine.all().len(), 0, "{:#?}", w.quarantine.all());
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    assert_eq!(running.hub.metrics.delivered.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fhir_over_http_reaches_the_subscribers_in_their_formats() {
    let s = Scratch::rabbit("e2e-fhir", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let w = Watch::new(&running).await;

    let envelope = post_sample_patient(running.http_addr).await;

    insured_person_reaches_its_subscribers(
        &s,
        &running,
        &w,
        &envelope,
        "fhir/patient-jpcore.insured-person.json",
        "fhir/patient-jpcore.roundtrip.json",
    )
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_queue_deleted_while_the_hub_runs_is_declared_again_and_gets_its_copy() {
    let s = Scratch::rabbit("e2e-deleted-out", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let (bus, t) = (running.hub.bus.clone(), running.hub.topology.clone());
    let out = t.out_queue(PROVIDER);
    delete_queue(&out).await;

    // As in the next test, the deletion is let finish first.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // Without the repair the broker would confirm the copy into nothing, and the hub would
    // record it as delivered.
    post_sample_patient(running.http_addr).await;
    eventually(
        "the provider's copy in its declared-again queue",
        async || bus.queue_len(&out).await.expect("queue_len") == 1,
    )
    .await;
    let w = Watch::new(&running).await;
    let copy = w.provider.wait("the copy", |m| m.len() == 1).await;
    assert_eq!(copy[0].header(H_RECIPIENT), Some(PROVIDER));
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hops_queues_deleted_while_the_hub_runs_are_declared_again_and_consumed_again() {
    let s = Scratch::rabbit("e2e-deleted-hops", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let t = running.hub.topology.clone();
    let w = Watch::new(&running).await;
    // The broker cancels the hop's consumer. Without the hop consuming again, the message would
    // wait in a declared-again queue that nobody reads.
    for (n, queue) in [t.translate_queue(), t.deliver_queue()].iter().enumerate() {
        delete_queue(queue).await;
        // RabbitMQ finishes deleting a quorum queue, and cancels its consumers, a moment after
        // `delete-ok`; a message published in that moment can go with the queue (see
        // docs/operating.md). The test is about what follows.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let envelope = post_sample_patient(running.http_addr).await;
        let copies = w
            .provider
            .wait(
                &format!("the provider's copy after `{queue}` was deleted"),
                |m| m.len() == n + 1,
            )
            .await;
        assert_eq!(copies[n].envelope(), envelope);
    }
    assert_eq!(files(&s.out_dir(CARE_MANAGER)).len(), 2);
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    let metrics = running.hub.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l == "kaigo_consumers_restarted_total 2"),
        "{metrics}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hl7v2_over_mllp_is_acked_aa_and_reaches_the_same_recipients() {
    let s = Scratch::rabbit("e2e-mllp", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let w = Watch::new(&running).await;

    let ack = mllp_send(running.mllp_addr, &adt_a08()).await;
    assert_eq!(ack_code(&ack), "AA", "{}", String::from_utf8_lossy(&ack));
    // The ACK does not name the envelope; the hub kept the sender's MSH-10 as correlation id.
    let got = w
        .provider
        .wait("the A08's Patient for 0300000005", |m| !m.is_empty())
        .await;
    assert_eq!(got[0].props.correlation_id.as_deref(), Some("MSG000001"));
    let envelope = got[0].envelope().to_string();

    insured_person_reaches_its_subscribers(
        &s,
        &running,
        &w,
        &envelope,
        "hl7v2/adt-a08.insured-person.json",
        "fhir/adt-a08.jpcore-patient.json",
    )
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vendor_xml_over_amqp_reaches_only_the_subscriber() {
    let s = Scratch::rabbit("e2e-vendor", |p| {
        // The broker validates user_id against the connecting user, and the test connects as
        // guest: in this copy only, the municipality's vendor publishes as guest.
        let p2 = p.replace("amqp_user: kaigo-vendor-131011", "amqp_user: guest");
        assert_ne!(p, p2, "parties.yaml names the municipality's broker user");
        // A recipient of 被保険者証: the care manager, as canonical JSON into its out dir.
        let sub = "      - { document: ServiceUsage@1, format: canonical }\n";
        let p3 = p2.replace(
            sub,
            &format!("{sub}      - {{ document: InsuranceCard@1, format: canonical }}\n"),
        );
        assert_ne!(p2, p3, "parties.yaml lists 0300000100's subscriptions");
        p3
    });
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let w = Watch::new(&running).await;

    let props = Props {
        message_id: Some("vendor-card-e2e-1".into()),
        content_type: Some("application/xml".into()),
        user_id: Some("guest".into()),
        ..Default::default()
    };
    running
        .hub
        .bus
        .publish(
            &running.hub.topology.vendor_in(),
            "xml.insurance-card",
            &props,
            &sample("xml/card-wareki.xml"),
        )
        .await
        .expect("the broker takes the vendor's message");

    let (name, bytes) = wait_for_file(
        &s.out_dir(CARE_MANAGER),
        "the 被保険者証 for 0300000100",
        |n| n.ends_with(".json"),
    )
    .await;
    assert!(name.ends_with("-0.json"), "{name}");
    let doc = json(&bytes);
    assert_eq!(doc["document"], "InsuranceCard@1");
    assert_eq!(
        without_source(doc),
        without_source(golden("xml/card-wareki.insurance-card.json"))
    );

    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&s.out_dir(CARE_MANAGER)).len(), 1, "once");
    assert_eq!(
        files(&s.out_dir(MUNICIPALITY)),
        vec![],
        "the sender gets nothing back"
    );
    assert_eq!(w.provider.all().len(), 0, "0300000005 does not subscribe");
    assert_eq!(w.quarantine.all().len(), 0, "{:#?}", w.quarantine.all());
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    let t = &running.hub.topology;
    assert_eq!(
        running.hub.bus.queue_len(&t.vendor_queue()).await.unwrap(),
        0
    );
    assert_eq!(running.hub.metrics.delivered.load(Ordering::Relaxed), 1);
    running.stop().await;
}

/// Data records of an MS932 CSV, each as its fields.
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let f = csv::parse(
        bytes,
        &CsvOptions {
            charset: Some(Charset::Ms932),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("not an MS932 CSV: {e}"));
    (0..f.record_count())
        .map(|r| {
            (0..f.field_count(r))
                .map(|c| f.field(r, c).unwrap_or_default().into_owned())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_careplan_csv_drop_reaches_the_provider_as_ms932_and_the_municipality_only_where_consented()
 {
    let s = Scratch::rabbit("e2e-csv", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let w = Watch::new(&running).await;

    let inbox = s.inbox(CARE_MANAGER);
    let original = sample(&format!("careplan/{UP2KYO}"));
    put_atomically(&inbox.join(UP2KYO), &original);

    // 0300000005 (every provider is consented for both people): one CSV per care plan.
    let got = w
        .provider
        .wait("both care plans for 0300000005", |m| m.len() >= 2)
        .await;
    let envelope = got[0].envelope().to_string();
    let mut rows = Vec::new();
    let mut indexes = Vec::new();
    for m in &got {
        assert_eq!(m.envelope(), envelope, "one file, one envelope");
        assert_eq!(m.header(H_RECIPIENT), Some(PROVIDER));
        assert_eq!(
            m.props.content_type.as_deref(),
            Some("text/csv; charset=Shift_JIS")
        );
        let r = csv_rows(&m.body);
        assert!(!r.is_empty());
        let people: std::collections::BTreeSet<(&str, &str)> =
            r.iter().map(|f| (f[1].as_str(), f[2].as_str())).collect();
        assert_eq!(people.len(), 1, "one care plan is one person's: {people:?}");
        indexes.push(m.header(H_DOC_INDEX).unwrap_or("?").to_string());
        rows.extend(r);
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1"]);
    let mut expected = csv_rows(&original);
    expected.sort();
    rows.sort();
    assert_eq!(rows, expected, "the provider's rows are the sample's rows");

    // 131011: the first person's care plan only, as canonical JSON.
    let (name, bytes) = wait_for_file(
        &s.out_dir(MUNICIPALITY),
        "person 1's care plan for 131011",
        |n| n.starts_with(&envelope),
    )
    .await;
    let plan = json(&bytes);
    assert_eq!(plan["document"], "CarePlan@1");
    assert_eq!(plan["subject"]["insurer_number"], PERSON_1.0);
    assert_eq!(plan["subject"]["insured_number"], PERSON_1.1);
    let goldens = golden(&format!(
        "careplan/{}",
        UP2KYO.replace(".CSV", ".careplan.json")
    ));
    assert_eq!(plan, goldens[0], "the canonical care plan");
    let index_1 = name
        .strip_prefix(&format!("{envelope}-"))
        .and_then(|n| n.strip_suffix(".json"))
        .expect("<envelope>-<index>.json")
        .to_string();

    // …and a quarantined copy of the second person's, naming 131011.
    let q = w
        .quarantine
        .wait("the copy withheld from 131011", |m| !m.is_empty())
        .await;
    assert_eq!(q[0].envelope(), envelope);
    assert_eq!(q[0].header(H_RECIPIENT), Some(MUNICIPALITY));
    assert_eq!(
        q[0].header(H_REASON),
        Some("consent-denied:recipient-not-covered"),
        "{:?}",
        q[0].props.headers
    );
    assert_ne!(q[0].header(H_DOC_INDEX), Some(index_1.as_str()));
    let withheld = json(&q[0].body);
    assert_eq!(withheld["subject"]["insured_number"], PERSON_2.1);

    eventually("the file is done", async || {
        inbox.join("done").join(UP2KYO).is_file()
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(w.provider.all().len(), 2, "each care plan once");
    assert_eq!(files(&s.out_dir(MUNICIPALITY)).len(), 1, "person 2's never");
    assert_eq!(w.quarantine.all().len(), 1, "{:#?}", w.quarantine.all());
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)),
        vec![],
        "the sender gets nothing back"
    );
    assert_eq!(running.hub.metrics.delivered.load(Ordering::Relaxed), 3);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_in_flight_when_the_hub_stops_are_delivered_once_after_a_restart() {
    let s = Scratch::rabbit("e2e-restart", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let mut envelopes = Vec::new();
    for _ in 0..6 {
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
    }
    // Stop at once: some messages are in translate, some in deliver, some delivered.
    running.stop().await;

    let running = s.start().await;
    let w = Watch::new(&running).await;
    for e in &envelopes {
        wait_for_file(
            &s.out_dir(CARE_MANAGER),
            "every accepted Patient for 0300000100",
            |n| n.starts_with(e.as_str()),
        )
        .await;
    }
    tokio::time::sleep(QUIET).await;
    let dir: Vec<String> = files(&s.out_dir(CARE_MANAGER))
        .into_iter()
        .map(|f| f.0)
        .collect();
    let mut expected: Vec<String> = envelopes.iter().map(|e| format!("{e}-0.json")).collect();
    expected.sort();
    assert_eq!(dir, expected, "each once");
    // 0300000005's queue: what the first hub delivered is already there (the tap was not), so
    // count over both: every envelope exactly once.
    let mut on_queue: Vec<String> = w
        .provider
        .all()
        .iter()
        .map(|m| m.envelope().to_string())
        .collect();
    on_queue.sort();
    let mut unique = on_queue.clone();
    unique.dedup();
    assert_eq!(on_queue, unique, "no envelope twice on 0300000005's queue");
    let mut all = envelopes.clone();
    all.sort();
    assert_eq!(unique, all, "every envelope reached 0300000005");
    assert_eq!(w.quarantine.all().len(), 0);
    assert_eq!(w.dead.all().len(), 0);
    running.stop().await;
    // Two hub lifetimes appended to one audit log: the keyed chain still verifies, and the
    // store's checkpoint (recorded as the second life stopped) is its last event.
    let cfg = s.config();
    let key = kaigo_hub::audit::AuditKey::read(&cfg.audit_key_path()).expect("the hub's key");
    let store = kaigo_hub::store::open(&cfg.store_url())
        .await
        .expect("store");
    let report = kaigo_hub::audit::chains::verify_chain(
        kaigo_hub::audit::chains::Writer::Hub,
        &cfg.audit_path(),
        &key,
        store
            .audit_checkpoints()
            .expect("the store keeps checkpoints"),
    )
    .expect("verifies");
    match &report.verdict {
        kaigo_hub::audit::chains::Verdict::Intact {
            head, checkpoint, ..
        } => assert_eq!(head.seq, checkpoint.seq, "{report}"),
        _ => panic!("the audit log does not verify after a restart: {report}"),
    }
}

/// `kaigo-hub replay quarantine` against this test's broker prefix; its stdout.
fn replay_quarantine(s: &Scratch) -> String {
    replay(s, "quarantine")
}

/// `kaigo-hub replay <queue>` against this test's broker prefix and the hub's store (its audit
/// events go to the CLI's chain beside the hub's); its stdout.
fn replay(s: &Scratch, queue: &str) -> String {
    let cfg = s.config();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    command
        .args(["replay", queue])
        .current_dir(&s.dir)
        .env("KAIGO_AMQP_URL", amqp_url())
        .env("KAIGO_PREFIX", &s.prefix)
        .env("KAIGO_DATA_DIR", &cfg.data_dir);
    if let Some(url) = &cfg.database_url {
        command.env("KAIGO_DATABASE_URL", url);
    }
    let out = command.output().expect("kaigo-hub runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_care_plan_sent_in_another_partys_name_is_never_delivered_not_even_by_replay() {
    let s = Scratch::rabbit("e2e-impostor", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    // 0300000005 drops into its own inbox a care plan whose file name says 0300000100 sent it.
    let inbox = s.inbox(PROVIDER);
    put_atomically(&inbox.join(UP2KYO), &sample(&format!("careplan/{UP2KYO}")));
    wait_for_file(&inbox.join("failed"), "the file refused", |n| n == UP2KYO).await;
    let quarantine = t.quarantine_queue();
    eventually("a quarantined copy", async || {
        hub.bus.queue_len(&quarantine).await.unwrap() == 1
    })
    .await;

    // An operator re-drives quarantine (say, after registering consents): the impostor's copy
    // stays where it is, and nobody receives the care plan.
    let said = replay_quarantine(&s);
    assert!(said.contains("0 replayed, 1 kept"), "{said}");
    assert!(
        said.contains("sender-mismatch: no later fact can cure it"),
        "{said}"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        files(&s.out_dir(MUNICIPALITY)),
        vec![],
        "131011 received a forged care plan"
    );
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 0);
    let w = Watch::new(&running).await;
    let kept = w
        .quarantine
        .wait("the copy is still there", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].header(H_REASON), Some("sender-mismatch"));
    assert_eq!(kept[0].header("x-kaigo-source"), Some(PROVIDER));
    assert_eq!(w.provider.all().len(), 0);
    running.stop().await;
}

/// The vendor XML 被保険者証 sample, rewritten to be the card of person 2 (insurer 435073).
fn card_of_person_2() -> Vec<u8> {
    let xml = String::from_utf8(sample("xml/card-wareki.xml")).expect("UTF-8 sample");
    xml.replace(
        r#"<hk:保険者 number="131011">"#,
        r#"<hk:保険者 number="435073">"#,
    )
    .replace(
        r#"<hk:被保険者 number="0000123456""#,
        r#"<hk:被保険者 number="0000200002""#,
    )
    .into_bytes()
}

/// Defect 1 of issue 13: a municipality sends the card of a person another insurer insures, who
/// has consented to the platform and to providers. Ingress refuses it (`insurer-mismatch`);
/// `replay quarantine` keeps it and says why; and the same message replayed from the dead-letter
/// queue (where nothing says why it is wrong) is judged by translate as a new message would be,
/// quarantined again, and reaches nobody. Before, replay released it and translate delivered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_insurers_person_sent_by_a_municipality_is_never_released_by_replay() {
    let s = Scratch::rabbit("e2e-foreign", |p| {
        p.replace(
            "      - { document: InsuredPerson@1, format: fhir }",
            "      - { document: InsuredPerson@1, format: fhir }\n      - { document: InsuranceCard@1, format: canonical }",
        )
    });
    let running = s.start().await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    use kaigo_hub::consent::{Category, Grantee, PartyKind};
    for (id, kind) in [
        ("f-platform", PartyKind::Platform),
        ("f-provider", PartyKind::Provider),
    ] {
        grant(
            &hub,
            id,
            PERSON_2,
            Grantee::Kind(kind),
            &[Category::Certification],
        )
        .await;
    }
    let municipality = hub
        .parties
        .current()
        .get(MUNICIPALITY)
        .expect("131011 in the parties file")
        .clone();
    let card = card_of_person_2();
    let refused = kaigo_hub::pipeline::ingress::accept(
        &hub,
        kaigo_hub::pipeline::ingress::Submission {
            party: &municipality,
            bytes: &card,
            file_name: None,
            correlation_id: None,
            via: "test",
        },
    )
    .await;
    let envelope = match refused {
        Err(kaigo_hub::pipeline::ingress::Refusal::Forbidden {
            envelope_id,
            reason,
            detail,
            ..
        }) => {
            assert_eq!(reason, "insurer-mismatch");
            assert!(detail.contains("another insurer"), "{detail}");
            assert!(
                !detail.contains("435073"),
                "no numbers in the words: {detail}"
            );
            envelope_id
        }
        other => panic!("another insurer's person must be refused: {other:?}"),
    };
    eventually("the refused card waits in quarantine", async || {
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap() == 1
    })
    .await;
    let said = replay_quarantine(&s);
    assert!(said.contains("0 replayed, 1 kept"), "{said}");
    assert!(
        said.contains(&format!(
            "kept {envelope}: insurer-mismatch: no later fact can cure it"
        )),
        "{said}"
    );
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 1);
    // The replay is audited in the CLI's chain: the message it kept, and why.
    let cli_events = || -> Vec<Value> {
        std::fs::read_to_string(s.config().data_dir.join("audit-cli.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &Value| e["hop"] == "replay")
            .collect()
    };
    let kept = cli_events();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["envelope_id"], envelope.as_str());
    assert_eq!(kept[0]["decision"], "rejected");
    assert_eq!(kept[0]["reason"], "insurer-mismatch");
    assert_eq!(kept[0]["party"], MUNICIPALITY);
    // The same bytes parked in the dead-letter queue with nothing but where they came from: the
    // replay releases them, and translate judges them as a new message.
    let mut dead = Props {
        message_id: Some("dead-foreign-card".into()),
        ..Props::default()
    };
    for (k, v) in [
        ("x-kaigo-source", MUNICIPALITY),
        ("x-kaigo-hop", "ingress"),
        ("x-kaigo-format", "xml"),
        ("x-kaigo-error", "a mapping error, since fixed"),
    ] {
        dead.headers.insert(k.into(), v.into());
    }
    hub.bus
        .publish(&t.dead(), "xml", &dead, &card)
        .await
        .expect("dead-lettered");
    // Watch quarantine and the provider's queue (not dead: the replay must find it there).
    let quarantine = Tap::new(hub.bus.as_ref(), &t.quarantine_queue()).await;
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let said = replay(&s, "dead");
    assert!(said.contains("1 replayed, 0 kept"), "{said}");
    let put_back = cli_events();
    assert_eq!(put_back.len(), 2, "{put_back:?}");
    assert_eq!(put_back[1]["envelope_id"], "dead-foreign-card");
    assert_eq!(put_back[1]["decision"], "accepted");
    assert_eq!(
        put_back[1]["reason"],
        format!("to:{}", t.ingress()).as_str()
    );
    let again = quarantine
        .wait("quarantined again by translate", |m| {
            m.iter().any(|m| m.envelope() == "dead-foreign-card")
        })
        .await;
    let again: Vec<_> = again
        .into_iter()
        .filter(|m| m.envelope() == "dead-foreign-card")
        .collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].header(H_REASON), Some("insurer-mismatch"));
    assert_eq!(again[0].header("x-kaigo-refused-at"), Some("translate"));
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        provider.all().len(),
        0,
        "the provider got another insurer's card"
    );
    assert_eq!(hub.metrics.delivered.load(Ordering::Relaxed), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withheld_copy_is_delivered_once_consent_exists_and_quarantine_is_replayed() {
    let s = Scratch::rabbit("e2e-replay", |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let provider = Tap::new(hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let inbox = s.inbox(CARE_MANAGER);
    put_atomically(&inbox.join(UP2KYO), &sample(&format!("careplan/{UP2KYO}")));
    provider
        .wait("both care plans for 0300000005", |m| m.len() == 2)
        .await;
    wait_for_file(&s.out_dir(MUNICIPALITY), "person 1's care plan", |_| true).await;
    let quarantine = t.quarantine_queue();
    eventually("person 2's copy for 131011 withheld", async || {
        hub.bus.queue_len(&quarantine).await.unwrap() == 1
    })
    .await;

    // Person 2 consents to the municipality; the operator re-drives quarantine.
    grant(
        &hub,
        "replay-municipality",
        PERSON_2,
        kaigo_hub::consent::Grantee::Kind(kaigo_hub::consent::PartyKind::Municipality),
        &[kaigo_hub::consent::Category::CarePlan],
    )
    .await;
    let said = replay_quarantine(&s);
    assert!(said.contains("1 replayed, 0 kept"), "{said}");

    let dir = s.out_dir(MUNICIPALITY);
    eventually("person 2's care plan reaches 131011", async || {
        files(&dir).len() == 2
    })
    .await;
    let people: BTreeSet<String> = files(&dir)
        .iter()
        .map(|(_, b)| {
            json(b)["subject"]["insured_number"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        people,
        BTreeSet::from([PERSON_1.1.to_string(), PERSON_2.1.to_string()])
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        provider.all().len(),
        2,
        "the re-drive gives 0300000005 nothing twice"
    );
    assert_eq!(files(&dir).len(), 2);
    assert_eq!(hub.bus.queue_len(&quarantine).await.unwrap(), 0);
    assert_eq!(hub.bus.queue_len(&t.dead_queue()).await.unwrap(), 0);
    running.stop().await;
}

/// `serve --watch`: an integrator edits a mapping while the hub runs. The edit is in force for the
/// next message (its mapping version shows in `x-kaigo-mapping`), a broken edit is refused with
/// its location and the working set stays in force, and no message is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapping_edited_while_the_hub_runs_is_in_force_for_the_next_message() {
    let s = Scratch::rabbit("e2e-watch", |p| p);
    let dir = s.dir.join("mappings");
    std::fs::create_dir_all(&dir).expect("mappings dir");
    for e in std::fs::read_dir(repo().join("mappings")).expect("shipped mappings") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, dir.join(p.file_name().expect("name"))).expect("copy");
    }
    let mut cfg = s.config();
    cfg.mappings = dir.clone();
    cfg.watch_mappings = true;
    let running = kaigo_hub::serve::start(&cfg)
        .await
        .expect("the hub starts on RabbitMQ");
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let w = Watch::new(&running).await;
    let metrics = running.hub.metrics.clone();
    let file = dir.join("jpcore-patient-insured-person.yaml");
    let text = std::fs::read_to_string(&file).expect("mapping");

    let mut envelopes = Vec::new();
    for (step, edit, expect_version) in [
        ("as shipped", None, "1"),
        (
            "edited",
            Some(text.replace("\nversion: 1\n", "\nversion: 2\n")),
            "2",
        ),
        (
            "broken",
            Some(text.replace("\nversion: 1\n", "\nversion: [\n")),
            "2",
        ),
    ] {
        if let Some(new_text) = edit {
            let (reloaded, refused) = (
                metrics.mappings_reloaded.load(Ordering::Relaxed),
                metrics.mappings_refused.load(Ordering::Relaxed),
            );
            put_atomically(&file, new_text.as_bytes());
            eventually(&format!("the hub saw the {step} mapping"), async || {
                metrics.mappings_reloaded.load(Ordering::Relaxed)
                    + metrics.mappings_refused.load(Ordering::Relaxed)
                    > reloaded + refused
            })
            .await;
        }
        let envelope = post_sample_patient(running.http_addr).await;
        let got = w
            .provider
            .wait(&format!("the {step} document"), |m| {
                m.iter().any(|m| m.envelope() == envelope)
            })
            .await;
        let m = got
            .iter()
            .find(|m| m.envelope() == envelope)
            .expect("found above");
        assert_eq!(
            m.header("x-kaigo-mapping"),
            Some(format!("jpcore-patient-insured-person@{expect_version}").as_str()),
            "{step}"
        );
        envelopes.push(envelope);
    }
    assert_eq!(metrics.mappings_reloaded.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.mappings_refused.load(Ordering::Relaxed), 1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(w.provider.all().len(), 3, "each message once");
    assert_eq!(w.dead.all().len(), 0, "{:#?}", w.dead.all());
    running.stop().await;
}
