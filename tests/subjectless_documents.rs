//! Documents that carry no person (issue 15): a 事業所 drops its 国保連 claims CSV (the shipped
//! QKAN-style sample, two 7111 介護給付費請求書 lines) into its file-drop inbox. The hub reads
//! it by content (the control record), makes two `ClaimInvoice@1` documents, and — there being no
//! person — asks no consent anywhere: it delivers both to the party that subscribes to the kind
//! (the insurer 131011 of the demo) and audits every hop with `no-subject` and no subject hash;
//! no copy carries `x-kaigo-subject`, and the audit log still verifies. A file whose control
//! record names another 事業所 is refused whole (`sender-mismatch`), its error file naming the
//! record and the rule that read field 8. A replayed invoice is judged like a new one: delivered
//! when its sender is the party it names, kept when not. A file giving a person's document beside
//! the invoices keeps one verdict per document: the person's, without consent, is held back; the
//! invoices go on. In memory and on the real RabbitMQ.

mod common;

use common::*;
use kaigo_hub::bus::Props;
use kaigo_hub::pipeline::headers as h;
use serde_json::Value;

const FILE: &str = "d0711a.csv";

/// The demo parties, and the hospital as a second subscriber of `ClaimInvoice@1`, on its AMQP
/// queue: the copies' headers are looked at there.
fn with_amqp_subscriber(text: String) -> String {
    let peers = "    mllp_peers: [\"127.0.0.1\"]\n";
    let edited = text.replacen(
        peers,
        &format!("{peers}    receives: [{{ document: ClaimInvoice@1, format: canonical }}]\n    delivery: amqp\n"),
        1,
    );
    assert_ne!(edited, text, "the hospital subscribes");
    edited
}

/// The audit events of `envelope`.
fn events_of(s: &Scratch, envelope: &str) -> Vec<Value> {
    let all = audit_events(s).into_iter();
    all.filter(|e| e["envelope_id"] == envelope).collect()
}

/// The sample's invoices as the golden file holds them.
fn golden() -> Vec<Value> {
    match json(&sample("claims/d0711a.claim-invoice.json")) {
        Value::Array(docs) => docs,
        one => vec![one],
    }
}

/// A canonical invoice as `replay` puts one back on the canonical exchange (fresh envelope).
async fn replayed(hub: &kaigo_hub::pipeline::Hub, envelope: &str, source: &str) {
    let mut props = Props {
        message_id: Some(envelope.to_string()),
        content_type: Some("application/json".into()),
        ..Props::default()
    };
    for (k, v) in [
        (h::SOURCE, source),
        (h::HOP, "replay"),
        (h::CATEGORY, "claims"),
        (h::DOCUMENT, "ClaimInvoice@1"),
        (h::DOC_INDEX, "0"),
    ] {
        props.headers.insert(k.into(), v.into());
    }
    let body = serde_json::to_vec(&golden()[0]).expect("JSON");
    hub.bus
        .publish(
            &hub.topology.canonical(),
            "claims.claiminvoice-v1",
            &props,
            &body,
        )
        .await
        .expect("published");
}

async fn a_providers_claims_file_reaches_its_subscriber_with_no_consent_asked(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let copies = Tap::new(hub.bus.as_ref(), &hub.topology.out_queue(HOSPITAL)).await;
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;

    // No consent of anybody is registered: a person's document would go nowhere.
    let inbox = s.inbox(PROVIDER);
    put_atomically(&inbox.join(FILE), &sample("claims/d0711a.csv"));
    let out = s.out_dir(MUNICIPALITY);
    let (second, _) = wait_for_file(&out, "the second invoice", |n| n.ends_with("-1.json")).await;
    let envelope = second.trim_end_matches("-1.json").to_string();
    wait_for_file(&out, "the first invoice", |n| {
        n == format!("{envelope}-0.json")
    })
    .await;
    let delivered: Vec<Value> = files(&out).iter().map(|(_, b)| json(b)).collect();
    assert_eq!(
        delivered,
        golden(),
        "both invoices, as the golden file has them"
    );

    let sent = copies
        .wait("the hospital's two invoices", |m| m.len() >= 2)
        .await;
    for m in &sent {
        assert_eq!(m.envelope(), envelope);
        assert_eq!(m.header(h::RECIPIENT), Some(HOSPITAL));
        assert_eq!(m.header(h::DOCUMENT), Some("ClaimInvoice@1"));
        assert_eq!(m.header(h::CATEGORY), Some("claims"));
        assert_eq!(m.header(h::SUBJECT), None, "no person, no subject header");
    }
    tokio::time::sleep(QUIET).await;
    assert!(inbox.join("done").join(FILE).is_file(), "the file is done");
    assert!(!inbox.join("failed").exists(), "nothing failed");
    assert!(
        !inbox
            .join("done")
            .join(format!("{FILE}.report.txt"))
            .exists(),
        "nothing refused"
    );
    assert_eq!(files(&out).len(), 2);
    // The sender is not a recipient of its own invoices, nor is anyone else subscribed.
    assert!(files(&s.out_dir(CARE_MANAGER)).is_empty());
    assert_eq!(quarantine.all().len(), 0, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    hub.audit.flush();
    let events = events_of(&s, &envelope);
    assert!(
        events.iter().all(|e| e["hop"] != "consent"),
        "no consent was asked: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.get("subject").is_none_or(Value::is_null)),
        "no subject hash anywhere: {events:#?}"
    );
    let count = |hop: &str, decision: &str, party: &str| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision && e["party"] == party)
            .filter(|e| e["reason"] == "no-subject" && e["category"] == "claims")
            .filter(|e| e["document"] == "ClaimInvoice@1")
            .count()
    };
    assert_eq!(count("ingress", "accepted", PROVIDER), 1, "{events:#?}");
    assert_eq!(count("translate", "accepted", PROVIDER), 2, "{events:#?}");
    assert_eq!(
        count("deliver", "delivered", MUNICIPALITY),
        2,
        "{events:#?}"
    );
    assert_eq!(count("deliver", "delivered", HOSPITAL), 2, "{events:#?}");

    // Replayed: judged again like a new message. From the party it names: delivered.
    replayed(&hub, "replayed-invoice-1", PROVIDER).await;
    wait_for_file(&out, "the replayed invoice", |n| {
        n == "replayed-invoice-1-0.json"
    })
    .await;
    // From another party than the one it names: kept, for a reason replay never releases.
    replayed(&hub, "replayed-invoice-2", CARE_MANAGER).await;
    let kept = quarantine
        .wait("the invoice another party replayed", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].envelope(), "replayed-invoice-2");
    assert_eq!(kept[0].header(h::REASON), Some("sender-mismatch"));
    assert_eq!(kept[0].header(h::REFUSED_AT), Some("deliver"));
    assert_eq!(kept[0].header(h::SUBJECT), None);
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 3, "the mismatched copy is not delivered");
    running.stop().await;

    let config = config_file(&s, &s.config());
    let verified = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_providers_claims_file_reaches_its_subscriber_with_no_consent_asked_in_memory() {
    let s = Scratch::memory("claims-mem", with_amqp_subscriber);
    a_providers_claims_file_reaches_its_subscriber_with_no_consent_asked(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_providers_claims_file_reaches_its_subscriber_with_no_consent_asked_on_rabbitmq() {
    let s = Scratch::rabbit("claims-rmq", with_amqp_subscriber);
    a_providers_claims_file_reaches_its_subscriber_with_no_consent_asked(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claims_file_whose_control_record_names_another_office_is_refused_naming_field_8() {
    let s = Scratch::memory("claims-mismatch", |p| p);
    let running = s.start().await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let text = String::from_utf8(sample("claims/d0711a.csv")).expect("ASCII sample");
    // The care manager's 事業所番号 in the control record's field 8; the lines keep their own.
    let other = text.replacen(",0300000005,00,1,", ",0300000100,00,1,", 1);
    assert_ne!(other, text);
    let inbox = s.inbox(PROVIDER);
    put_atomically(&inbox.join(FILE), other.as_bytes());
    let (_, error) = wait_for_file(&inbox.join("failed"), "the error file", |n| {
        n.ends_with(".error.txt")
    })
    .await;
    let error = String::from_utf8(error).expect("UTF-8");
    for part in [
        "outcome: refused",
        "error: sender-mismatch: document 1 names party 0300000100 as its sender (record 2, line 2; rule `source.sender` from `/8` (claims-invoice.yaml:",
        "), but it came from 0300000005",
    ] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    let kept = quarantine.wait("the refused file", |m| !m.is_empty()).await;
    assert_eq!(kept[0].header(h::REASON), Some("sender-mismatch"));
    assert_eq!(kept[0].header(h::REFUSED_AT), Some("ingress"));
    assert_eq!(kept[0].header(h::SUBJECT), None);
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "nothing delivered"
    );
    hub.audit.flush();
    let envelope = kept[0].envelope().to_string();
    let events = events_of(&s, &envelope);
    assert!(events.iter().all(|e| e["hop"] != "consent"), "{events:#?}");
    assert!(
        events.iter().any(|e| e["hop"] == "ingress"
            && e["decision"] == "rejected"
            && e["reason"] == "sender-mismatch"),
        "{events:#?}"
    );
    running.stop().await;
}

/// A test mapping that reads a person from the same claims file: the 明細書 基本情報 record's
/// 証記載保険者番号 (8 digits, `00` + the 6-digit 保険者番号) and 被保険者番号 (claims-csv §5.1). It
/// reads the file as the claims mappings do (MS932), so its records count as read when the
/// claims mappings' `documents.frame` asks whether every record of the file is.
const PERSON_FROM_STATEMENT: &str = r#"
id: claims-statement-person-test
version: 1
source:
  format: csv
  charset: ms932
  match: { "1": "1", "5": { pattern: "^[0-9A-Z]{3}$" } }
target: InsuredPerson@1
category: claims
documents:
  each: "*"
  when: { "1": "2", "3": "7131", "4": "01" }
fields:
  subject.insurer_number: { from: "7", then: [{ substr: "2,6" }] }
  subject.insured_number: "8"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_of_invoices_and_a_persons_document_keeps_one_verdict_per_document() {
    let s = Scratch::memory("claims-mixed", |p| p);
    let mut cfg = s.config();
    cfg.mappings = mappings_dir_with(
        &s,
        "claims-statement-person-test.yaml",
        PERSON_FROM_STATEMENT,
        // Its cut 基本情報 record is no whole 明細書: the shipped ClaimStatement mapping stays out.
        Some("claims-statement.yaml"),
    );
    let running = s.start_with(&cfg).await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    // The sample with a 7131 基本情報 record (cut to its common header, all this test reads)
    // of PERSON_1, who has consented to nothing.
    let text = String::from_utf8(sample("claims/d0711a.csv")).expect("ASCII sample");
    let statement = "2,4,\"7131\",\"01\",\"202510\",\"0300000005\",\"00131011\",\"0000100001\"\r\n";
    let mixed = text.replacen("3,4\r\n", &format!("{statement}3,5\r\n"), 1);
    assert_ne!(mixed, text);
    let parts = [
        "outcome: accepted-in-part",
        "documents: 3",
        "refused: 1",
        "document 3 (InsuredPerson@1): consent-denied:no-consent: ",
        "(at record 4, line 4)",
    ];
    let inbox = s.inbox(PROVIDER);
    let personal = ["0000100001", "00131011"];
    let (_, envelope) =
        drop_and_read_report(&inbox, FILE, mixed.as_bytes(), &parts, &personal).await;

    // The invoices go on, with no consent asked for them; the person's document is kept.
    let out = s.out_dir(MUNICIPALITY);
    for i in 0..2 {
        let name = format!("{envelope}-{i}.json");
        let (_, body) = wait_for_file(&out, "an invoice", |n| n == name).await;
        assert_eq!(json(&body), golden()[i]);
    }
    let kept = quarantine
        .wait("the person's document", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].header(h::DOC_INDEX), Some("2"));
    assert_eq!(kept[0].header(h::DOCUMENT), Some("InsuredPerson@1"));
    assert_eq!(kept[0].header(h::REASON), Some("consent-denied:no-consent"));
    let person = hub.subject_hash(&subject(PERSON_1));
    assert_eq!(kept[0].header(h::SUBJECT), Some(person.as_str()));
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 2, "only the invoices are delivered");
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());

    hub.audit.flush();
    let events = events_of(&s, &envelope);
    let consent: Vec<&Value> = events.iter().filter(|e| e["hop"] == "consent").collect();
    assert!(!consent.is_empty(), "the person's consent was asked");
    assert!(
        consent.iter().all(|e| e["subject"] == person.as_str()),
        "only about the person: {consent:#?}"
    );
    let no_subject = |hop: &str| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["reason"] == "no-subject")
            .count()
    };
    assert_eq!(no_subject("ingress"), 1, "{events:#?}");
    assert_eq!(no_subject("translate"), 2, "{events:#?}");
    assert_eq!(no_subject("deliver"), 2, "{events:#?}");
    running.stop().await;
}
