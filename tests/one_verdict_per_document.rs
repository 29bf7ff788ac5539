//! One verdict per document, not per input: a roster of three people dropped as one CSV file
//! (one `InsuredPerson@1` per row, a test mapping of its own) of whom the second has not
//! consented to the platform. The first and third reach their subscriber; the second's document
//! is kept in quarantine by the translate hop as its canonical document (document index, kind,
//! category, subject hash, reason, refused at translate); the file goes to `done/` with a
//! value-free report naming document 2 and why; the audit log tells each document's fate at
//! ingress and translate. Once the person consents, `replay quarantine` sends the kept document
//! to the deliver hop, which judges it again and delivers it. Run on RabbitMQ and on the
//! in-memory bus alike.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
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

/// The shipped mappings plus the roster mapping, in the scratch directory.
fn mappings_dir(s: &Scratch) -> PathBuf {
    let dir = s.dir.join("mappings");
    std::fs::create_dir_all(&dir).expect("mappings dir");
    for entry in std::fs::read_dir(repo().join("mappings")).expect("shipped mappings") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, dir.join(name)).expect("copy a mapping");
        }
    }
    std::fs::write(dir.join("roster-test.yaml"), ROSTER_MAPPING).expect("roster mapping");
    dir
}

fn audit_events(s: &Scratch) -> Vec<Value> {
    std::fs::read_to_string(s.config().audit_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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
    put_atomically(&inbox.join(FILE), ROSTER.as_bytes());
    let done = inbox.join("done");
    let (_, report) = wait_for_file(&done, "the roster's report", |n| {
        n == format!("{FILE}.report.txt")
    })
    .await;
    let report = String::from_utf8(report).expect("a UTF-8 report");
    assert!(done.join(FILE).is_file(), "the file is done: {report}");
    assert!(!inbox.join("failed").exists(), "nothing failed");
    for part in [
        "outcome: accepted-in-part",
        "party: 0300000005",
        "documents: 3",
        "refused: 1",
        "document 2 (InsuredPerson@1): consent-denied:no-consent: ",
    ] {
        assert!(report.contains(part), "`{part}` missing from: {report}");
    }
    for personal in ["0000100001", "介護", "1942", "0000012345"] {
        assert!(!report.contains(personal), "`{personal}` in: {report}");
    }
    let envelope = report
        .lines()
        .find_map(|l| l.strip_prefix("envelope: "))
        .expect("the report names the envelope")
        .to_string();

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
    hub.audit.flush();
    let events: Vec<Value> = audit_events(&s)
        .into_iter()
        .filter(|e| e["envelope_id"] == envelope.as_str())
        .collect();
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
