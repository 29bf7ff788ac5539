//! One verdict per document, not per input: a roster of three people dropped as one CSV file
//! (one `InsuredPerson@1` per row, a test mapping of its own) of whom the second has not
//! consented to the platform. The first and third reach their subscriber; the second's document
//! is kept in quarantine by the translate hop as its canonical document (document index, kind,
//! category, subject hash, reason, refused at translate); the file goes to `done/` with a
//! value-free report naming document 2 and why; the audit log tells each document's fate at
//! ingress and translate. Once the person consents, `replay quarantine` sends the kept document
//! to the deliver hop, which judges it again and delivers it. Run on RabbitMQ and on the
//! in-memory bus alike. Over MLLP, an ADT with two PID segments (a test mapping making one
//! document of each) whose second patient is linked to nobody is answered `AA` with one ERR
//! (`W`, `unknown-subject`, document 2), and `AR` once neither patient is known.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::formats::hl7v2;
use kaigo_hub::pipeline::replay::{self, Parked};
use serde_json::Value;
use std::path::PathBuf;

const ROSTER_MAPPING: &str = r#"id: roster-test
version: 1
description: A roster with a header row, one InsuredPerson@1 per row (a test's own mapping).
source: { format: csv, charset: utf-8, header: true }
documents: { each: "*" }
target: InsuredPerson@1
category: certification
fields:
  subject.insurer_number: 保険者番号
  subject.insured_number: 被保険者番号
  name.kanji.text: 氏名
  birth_date: { from: 生年月日, then: [{ date: yyyyMMdd }] }
"#;

/// The three people of the roster, in row order; the second has not consented.
const PEOPLE: [(&str, &str); 3] = [
    ("131011", "0000012345"),
    ("131011", "0000100001"),
    ("435073", "0000200002"),
];

const ROSTER: &str = "保険者番号,被保険者番号,氏名,生年月日\n\
                      131011,0000012345,介護 太郎,19400101\n\
                      131011,0000100001,介護 花子,19420202\n\
                      435073,0000200002,介護 次郎,19450303\n";

const FILE: &str = "roster.csv";

/// An ADT of several patients, one document per PID segment (the shipped ADT mapping makes one).
const ADT_EACH_PID: &str = r#"id: adt-each-pid
version: 1
description: One InsuredPerson@1 per PID segment of an ADT (a test's own mapping).
source: { format: hl7v2, match: { MSH-9.1: ADT } }
documents: { each: PID }
target: InsuredPerson@1
category: certification
fields:
  identifiers[+patient-id]:
    each: "-3"
    fields:
      system: { from: MSH-4, then: [{ prefix: "urn:oid:1.2.392.100495.20.3.51.1" }] }
      value: { from: ".1", required: true }
      assigner: MSH-4
  birth_date: { from: "-7", then: [{ date: hl7 }], required: true }
  source.sender: MSH-4
"#;

/// The second hospital's ADT of two patients: A-778 (linked to [`PERSON_2`] by the samples'
/// links) and B-999 (linked to nobody).
const TWO_PATIENTS: &str = "MSH|^~\\&|HIS|2710000015|KAIGO-HUB|PLATFORM|20251121140000||ADT^A08^ADT_A01|MSG-2P|P|2.5||||||UNICODE UTF-8\r\
                            EVN||20251121140000\r\
                            PID|0001||A-778^^^^PI||||19380704|M\r\
                            PID|0002||B-999^^^^PI||||19400101|F\r";

/// The shipped mappings plus the roster mapping, in the scratch directory.
fn mappings_dir(s: &Scratch) -> PathBuf {
    mappings_dir_with(s, "roster-test.yaml", ROSTER_MAPPING, None)
}

async fn one_person_without_consent_holds_back_only_their_document(s: Scratch) {
    let mut cfg = s.config();
    cfg.mappings = mappings_dir(&s);
    let running = s.start_with(&cfg).await;
    let hub = running.hub.clone();
    for (i, who) in [PEOPLE[0], PEOPLE[2]].into_iter().enumerate() {
        let platform = Grantee::Kind(PartyKind::Platform);
        let providers = Grantee::Kind(PartyKind::Provider);
        let cert = [Category::Certification];
        grant(&hub, &format!("roster-p{i}"), who, platform, &cert).await;
        grant(&hub, &format!("roster-c{i}"), who, providers, &cert).await;
    }
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;

    // The provider drops the roster; the care manager subscribes to InsuredPerson@1.
    let inbox = s.inbox(PROVIDER);
    let parts = [
        "outcome: accepted-in-part",
        "party: 0300000005",
        "documents: 3",
        "refused: 1",
        "document 2 (InsuredPerson@1): consent-denied:no-consent: ",
        "(at record 2, line 3)\n",
    ];
    let personal = ["0000100001", "介護", "19420202", "0000012345"];
    let (_, envelope) =
        drop_and_read_report(&inbox, FILE, ROSTER.as_bytes(), &parts, &personal).await;

    // Documents 1 and 3 (indexes 0 and 2) reach the care manager; document 2 waits in quarantine.
    let out = s.out_dir(CARE_MANAGER);
    for index in [0, 2] {
        let name = format!("{envelope}-{index}.json");
        let (_, body) = wait_for_file(&out, "a consented person's document", |n| n == name).await;
        let doc = json(&body);
        assert_eq!(doc["document"], "InsuredPerson@1");
        assert_eq!(doc["subject"]["insured_number"], PEOPLE[index].1);
    }
    let kept = quarantine
        .wait("document 2 kept in quarantine", |m| !m.is_empty())
        .await;
    let k = &kept[0];
    assert_eq!(k.envelope(), envelope);
    let person_2 = hub.subject_hash(&subject(PEOPLE[1]));
    for (header, value) in [
        ("x-kaigo-doc-index", "1"),
        ("x-kaigo-document", "InsuredPerson@1"),
        ("x-kaigo-category", "certification"),
        ("x-kaigo-reason", "consent-denied:no-consent"),
        ("x-kaigo-refused-at", "translate"),
        ("x-kaigo-mapping", "roster-test@1"),
        ("x-kaigo-subject", person_2.as_str()),
    ] {
        assert_eq!(k.header(header), Some(value), "{header}: {:?}", k.props);
    }
    assert_eq!(
        k.header("x-kaigo-recipient"),
        None,
        "withheld from everyone"
    );
    let detail = k.header("x-kaigo-detail").expect("what is missing");
    assert!(
        detail.starts_with("document 2 (InsuredPerson@1)"),
        "{detail}"
    );
    assert_eq!(json(&k.body)["subject"]["insured_number"], PEOPLE[1].1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 2, "person 2's document is not delivered");
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    // The audit trail: each document's fate at ingress and at translate.
    let events = envelope_events(&s, &hub, &envelope);
    let of = |hop: &str, decision: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision)
            .collect()
    };
    let hashes = |es: &[&Value]| -> Vec<String> {
        let mut h: Vec<String> = es
            .iter()
            .map(|e| e["subject"].as_str().unwrap_or("").to_string())
            .collect();
        h.sort();
        h
    };
    let mut consented: Vec<String> = [PEOPLE[0], PEOPLE[2]]
        .iter()
        .map(|p| hub.subject_hash(&subject(*p)))
        .collect();
    consented.sort();
    assert_eq!(hashes(&of("ingress", "accepted")), consented, "{events:#?}");
    let rejected = of("ingress", "rejected");
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert_eq!(rejected[0]["reason"], "consent-denied:no-consent");
    assert_eq!(rejected[0]["document"], "InsuredPerson@1");
    assert_eq!(rejected[0]["subject"], person_2.as_str());
    assert_eq!(
        hashes(&of("translate", "accepted")),
        consented,
        "{events:#?}"
    );
    let held = of("translate", "quarantined");
    assert_eq!(held.len(), 1, "{events:#?}");
    assert_eq!(held[0]["reason"], "consent-denied:no-consent");
    assert_eq!(held[0]["subject"], person_2.as_str());

    // Person 2 consents; the kept document is replayed to the deliver hop and delivered.
    let platform = Grantee::Kind(PartyKind::Platform);
    let providers = Grantee::Kind(PartyKind::Provider);
    let cert = [Category::Certification];
    grant(&hub, "roster-p2", PEOPLE[1], platform, &cert).await;
    grant(&hub, "roster-c2", PEOPLE[1], providers, &cert).await;
    let ours = |p: &kaigo_hub::bus::Props| p.message_id.as_deref() == Some(envelope.as_str());
    let summary = replay::replay(
        hub.bus.as_ref(),
        &hub.topology,
        Parked::Quarantine,
        &ours,
        &mut |_, _| {},
    )
    .await
    .expect("replay");
    assert_eq!(summary.replayed, 1, "{summary:?}");
    let name = format!("{envelope}-1.json");
    let (_, body) =
        wait_for_file(&out, "person 2's document after the replay", |n| n == name).await;
    assert_eq!(json(&body)["subject"]["insured_number"], PEOPLE[1].1);
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 3, "each document once");
    assert_eq!(quarantine.all().len(), 1, "nothing quarantined again");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_person_without_consent_holds_back_only_their_document_on_rabbitmq() {
    one_person_without_consent_holds_back_only_their_document(Scratch::rabbit("per-doc", |p| p))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_person_without_consent_holds_back_only_their_document_on_the_memory_bus() {
    one_person_without_consent_holds_back_only_their_document(Scratch::memory(
        "per-doc-mem",
        |p| p,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_none_of_whose_people_may_come_is_refused_naming_each_document() {
    let s = Scratch::memory("per-doc-none", |p| p);
    let mut cfg = s.config();
    cfg.mappings = mappings_dir(&s);
    let running = s.start_with(&cfg).await;
    // Nobody has consented: the file is refused whole, and its error file names all three.
    let inbox = s.inbox(PROVIDER);
    put_atomically(&inbox.join(FILE), ROSTER.as_bytes());
    let failed = inbox.join("failed");
    let (_, text) = wait_for_file(&failed, "the roster's error file", |n| {
        n == format!("{FILE}.error.txt")
    })
    .await;
    let text = String::from_utf8(text).expect("a UTF-8 error file");
    assert!(text.contains("outcome: refused"), "{text}");
    for n in 1..=3 {
        let line = format!("document {n} (InsuredPerson@1): consent-denied:no-consent: ");
        assert!(text.contains(&line), "`{line}` missing from: {text}");
    }
    for personal in ["0000100001", "0000012345", "介護", "1942"] {
        assert!(!text.contains(personal), "`{personal}` in: {text}");
    }
    running.stop().await;
}

fn field(m: &hl7v2::Message, path: &str) -> String {
    m.value_at(&hl7v2::Path::compile(path).expect("a valid path"))
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_mllp_a_message_some_of_whose_patients_are_unknown_is_aa_with_an_err_per_refused_one()
{
    let s = Scratch::rabbit("per-doc-mllp", |p| p);
    let mut cfg = s.config();
    // The shipped ADT mapping would take the message too: this test's takes its place.
    let leave_out = Some("ssmix2-adt-insured-person.yaml");
    cfg.mappings = mappings_dir_with(&s, "adt-each-pid.yaml", ADT_EACH_PID, leave_out);
    let running = s.start_with(&cfg).await;
    let hub = running.hub.clone();
    let addr = running.mllp_addr;
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;

    // Neither patient known yet: nothing may go on, the message is refused whole.
    let acks = mllp_send_from("127.0.0.2", addr, &[TWO_PATIENTS.as_bytes()]).await;
    let ack = hl7v2::parse(&acks[0]).expect("the ACK parses");
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(field(&ack, "ERR-5.1"), "unknown-subject", "{}", ack.text());
    // The refusal, then one ERR for each of the two patients.
    let text = ack.text();
    assert_eq!(text.matches("\rERR|").count(), 3, "{text}");
    // Each named with where in the message it is (its PID segment).
    for n in [1, 2] {
        let at = format!("document {n} (PID[{n}] (segment {})) of ", n + 2);
        assert!(text.contains(&at), "`{at}` missing from: {text}");
    }

    // A-778 linked and consented, B-999 still unknown: AA, and document 2 named in an ERR.
    link_sample_patients(&hub);
    let cert = [Category::Certification];
    let platform = Grantee::Kind(PartyKind::Platform);
    grant(&hub, "mllp-p2", PERSON_2, platform, &cert).await;
    let providers = Grantee::Kind(PartyKind::Provider);
    grant(&hub, "mllp-c2", PERSON_2, providers, &cert).await;
    let acks = mllp_send_from("127.0.0.2", addr, &[TWO_PATIENTS.as_bytes()]).await;
    let ack = hl7v2::parse(&acks[0]).expect("the ACK parses");
    let text = ack.text();
    assert_eq!(field(&ack, "MSA-1"), "AA", "{text}");
    assert_eq!(field(&ack, "MSA-2"), "MSG-2P", "{text}");
    assert_eq!(field(&ack, "MSA-3"), "", "{text}");
    assert_eq!(text.matches("\rERR|").count(), 1, "{text}");
    assert_eq!(field(&ack, "ERR-3"), "", "{text}");
    assert_eq!(field(&ack, "ERR-4"), "W", "{text}");
    assert_eq!(field(&ack, "ERR-5.1"), "unknown-subject", "{text}");
    assert_eq!(field(&ack, "ERR-5.3"), "99KHB", "{text}");
    let err8 = field(&ack, "ERR-8");
    assert!(
        err8.contains("document 2") && err8.contains("kept in quarantine"),
        "{err8}"
    );
    for personal in ["B-999", "A-778", PERSON_2.1, "19400101"] {
        assert!(!err8.contains(personal), "`{personal}` in: {err8}");
    }

    // Document 1 reaches the care manager; document 2 waits in quarantine, as its document.
    let (name, _) = wait_for_file(&s.out_dir(CARE_MANAGER), "A-778's document", |n| {
        n.ends_with("-0.json")
    })
    .await;
    let envelope = name.trim_end_matches("-0.json").to_string();
    let kept = quarantine
        .wait("document 2 kept", |m| {
            m.iter().any(|m| m.envelope() == envelope)
        })
        .await;
    let k = kept
        .iter()
        .find(|m| m.envelope() == envelope)
        .expect("document 2's copy");
    assert_eq!(k.header("x-kaigo-doc-index"), Some("1"));
    assert_eq!(k.header("x-kaigo-reason"), Some("unknown-subject"));
    assert!(err8.contains(&envelope), "{err8}");
    running.stop().await;
}
