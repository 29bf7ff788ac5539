//! 要介護認定 end to end: the municipality (保険者 131011) drops its 認定支援ネットワーク「センター
//! 送信」 file of three people, under a name that says nothing, into its file-drop inbox. The hub
//! reads it by content with the four shipped センター送信 mappings (application, decision,
//! InsuredPerson, survey: twelve documents), judges each document on its own — consent #1 and #2
//! for the certification category, #3 for the care manager who subscribes to them — and
//! delivers the documents of the two people who consented; the four documents of the one who did
//! not are kept in quarantine, each as its canonical document, and the report beside the file
//! names them by number and reason, without a personal value. The audit log tells every
//! document's fate at each hop. Likewise a clinic's JMA 医見書 CSV of two 主治医意見書, one of a
//! person who consented and one of a person who did not. On the real RabbitMQ.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use std::collections::BTreeMap;

/// The three people of the sample, in record order; the second has not consented.
const PEOPLE: [(&str, &str); 3] = [
    ("131011", "0000012345"),
    ("131011", "0000012346"),
    ("131011", "0000012347"),
];

/// The four mappings read the file in file-name order, each making one document per record.
const KINDS: [&str; 4] = [
    "CertificationApplication@1",
    "CertificationDecision@1",
    "InsuredPerson@1",
    "CertificationSurvey@1",
];

const FILE: &str = "DBE561001-20251010.dat";

/// The clinic whose 医見書 software wrote the sample (its 事業所番号 as the insurer assigned it,
/// field 007 of each row), as a party with an inbox.
const CLINIC: &str = "1320000017";

/// The demo parties (the care manager subscribes to the 要介護認定 documents, 主治医意見書
/// included, and to InsuredPerson@1), with an inbox for the municipality and the clinic.
fn certification_parties(text: String) -> String {
    let out_dir = "/data/out/131011 }";
    let at = text.find(out_dir).expect("the municipality's out dir");
    let from = text[..at].rfind("dir: ").expect("a dir") + "dir: ".len();
    let base = text[from..at].to_string();
    let vendor = "    amqp_user: kaigo-vendor-131011\n";
    let edited = text.replacen(
        vendor,
        &format!("{vendor}    inbox: {base}/data/inbox/131011\n"),
        1,
    );
    assert!(edited.contains("/data/inbox/131011"), "the inbox was added");
    let clinic = format!(
        "parties:\n  - id: \"{CLINIC}\"\n    name: 試験内科クリニック\n    kind: hospital\n    inbox: {base}/data/inbox/{CLINIC}\n"
    );
    let edited = edited.replacen("parties:\n", &clinic, 1);
    assert!(edited.contains(&format!("inbox: {base}/data/inbox/{CLINIC}")));
    edited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_municipalitys_center_file_delivers_the_consented_and_keeps_the_others_on_rabbitmq() {
    let s = Scratch::rabbit("cert-e2e", certification_parties);
    let running = s.start().await;
    let hub = running.hub.clone();
    let cert = [Category::Certification];
    for (i, who) in [PEOPLE[0], PEOPLE[2]].into_iter().enumerate() {
        grant(
            &hub,
            &format!("cert-p{i}"),
            who,
            Grantee::Kind(PartyKind::Platform),
            &cert,
        )
        .await;
        grant(
            &hub,
            &format!("cert-c{i}"),
            who,
            Grantee::Kind(PartyKind::Provider),
            &cert,
        )
        .await;
    }
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;

    // Person 2's document of each kind: documents 2, 5, 8 and 11.
    let lines: Vec<String> = [2, 5, 8, 11]
        .into_iter()
        .zip(KINDS)
        .map(|(n, kind)| format!("document {n} ({kind}): consent-denied:no-consent: "))
        .collect();
    let mut parts = vec![
        "outcome: accepted-in-part",
        "party: 131011",
        "documents: 12",
        "refused: 4",
    ];
    parts.extend(lines.iter().map(String::as_str));
    let personal = ["0000012346", "0000012345", "介護", "ｶｲｺﾞ", "19400101"];
    let bytes = sample("certification/center-transmission-09b.csv");
    let inbox = s.inbox(MUNICIPALITY);
    let (_, envelope) = drop_and_read_report(&inbox, FILE, &bytes, &parts, &personal).await;

    // The care manager receives the eight documents of persons 1 and 3, four kinds each.
    let out = s.out_dir(CARE_MANAGER);
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for index in [0, 2, 3, 5, 6, 8, 9, 11] {
        let name = format!("{envelope}-{index}.json");
        let (_, body) = wait_for_file(&out, "a consented person's document", |n| n == name).await;
        let doc = json(&body);
        assert_eq!(doc["document"], KINDS[index / 3], "document {}", index + 1);
        let who = doc["subject"]["insured_number"].as_str().unwrap_or("");
        assert_eq!(who, PEOPLE[index % 3].1, "document {}", index + 1);
        *got.entry((KINDS[index / 3].to_string(), who.to_string()))
            .or_default() += 1;
    }
    assert_eq!(
        got.len(),
        8,
        "each kind of each consented person once: {got:?}"
    );

    // Person 2's four documents wait in quarantine, each as its canonical document.
    let kept = quarantine
        .wait("person 2's four documents", |m| m.len() >= 4)
        .await;
    let person_2 = hub.subject_hash(&subject(PEOPLE[1]));
    let mut indexes: Vec<String> = Vec::new();
    for k in &kept {
        assert_eq!(k.envelope(), envelope);
        assert_eq!(k.header("x-kaigo-category"), Some("certification"));
        assert_eq!(
            k.header("x-kaigo-reason"),
            Some("consent-denied:no-consent")
        );
        assert_eq!(k.header("x-kaigo-refused-at"), Some("translate"));
        assert_eq!(k.header("x-kaigo-subject"), Some(person_2.as_str()));
        let doc = json(&k.body);
        assert_eq!(doc["subject"]["insured_number"], PEOPLE[1].1);
        assert_eq!(k.header("x-kaigo-document"), doc["document"].as_str());
        indexes.push(k.header("x-kaigo-doc-index").unwrap_or("").to_string());
    }
    indexes.sort();
    assert_eq!(indexes, ["1", "10", "4", "7"]);
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        files(&out).len(),
        8,
        "person 2's documents are not delivered"
    );
    assert_eq!(quarantine.all().len(), 4, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    // The audit trail: every document's fate at each hop, and consent #3 for the care manager.
    let events = envelope_events(&s, &hub, &envelope);
    let count = |hop: &str, decision: &str, who: &str, party: Option<&str>| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision && e["subject"] == who)
            .filter(|e| party.is_none_or(|p| e["party"] == p))
            .count()
    };
    let consented: Vec<String> = [PEOPLE[0], PEOPLE[2]]
        .iter()
        .map(|p| hub.subject_hash(&subject(*p)))
        .collect();
    let provider = Some(PROVIDER);
    for who in &consented {
        // Ingress: one event per person and document kind (application, survey, decision and
        // InsuredPerson), each naming its kind.
        assert_eq!(count("ingress", "accepted", who, None), 4, "{events:#?}");
        assert_eq!(count("translate", "accepted", who, None), 4, "{events:#?}");
        // Consent #3 and delivery: the care manager gets all four documents; the provider
        // that subscribes to InsuredPerson@1 (as FHIR) gets that one.
        let cm = Some(CARE_MANAGER);
        assert_eq!(count("consent", "permit", who, cm), 4, "{events:#?}");
        // Consent #1 and #2, for the platform: once per person at ingress and at translate.
        let platform = Some("9990000001");
        assert_eq!(count("consent", "permit", who, platform), 2, "{events:#?}");
        assert_eq!(count("deliver", "delivered", who, cm), 4, "{events:#?}");
        assert_eq!(
            count("deliver", "delivered", who, provider),
            1,
            "{events:#?}"
        );
    }
    assert_eq!(
        count("ingress", "rejected", &person_2, None),
        4,
        "{events:#?}"
    );
    assert_eq!(
        count("translate", "quarantined", &person_2, None),
        4,
        "{events:#?}"
    );
    assert_eq!(
        count("deliver", "delivered", &person_2, None),
        0,
        "{events:#?}"
    );
    assert!(
        count("consent", "deny", &person_2, None) >= 2,
        "{events:#?}"
    );
    for e in events.iter().filter(|e| e["subject"] == person_2.as_str()) {
        if e["decision"] == "rejected" || e["decision"] == "quarantined" {
            assert_eq!(e["reason"], "consent-denied:no-consent", "{e}");
            assert_eq!(e["category"], "certification", "{e}");
        }
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clinics_ikensho_file_delivers_the_consented_opinion_and_keeps_the_other_on_rabbitmq() {
    let s = Scratch::rabbit("ikensho-e2e", certification_parties);
    let running = s.start().await;
    let hub = running.hub.clone();
    let cert = [Category::Certification];
    let who = PEOPLE[0];
    grant(
        &hub,
        "iken-p",
        who,
        Grantee::Kind(PartyKind::Platform),
        &cert,
    )
    .await;
    grant(
        &hub,
        "iken-c",
        who,
        Grantee::Kind(PartyKind::Provider),
        &cert,
    )
    .await;
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;

    // The sample's two opinions: 0000012345 (consented) and 0000012346 (not).
    let file = "1320000017_2025100101.csv";
    let parts = [
        "outcome: accepted-in-part",
        "documents: 2",
        "refused: 1",
        "document 2 (PhysicianOpinion@1): consent-denied:no-consent: ",
    ];
    let personal = ["0000012346", "0000012345", "19380315", "花子", "ハナコ"];
    let bytes = sample("certification/ikensho-ms932-crlf.csv");
    let inbox = s.inbox(CLINIC);
    let (_, envelope) = drop_and_read_report(&inbox, file, &bytes, &parts, &personal).await;

    let out = s.out_dir(CARE_MANAGER);
    let name = format!("{envelope}-0.json");
    let (_, body) = wait_for_file(&out, "the consented person's opinion", |n| n == name).await;
    let doc = json(&body);
    assert_eq!(doc["document"], "PhysicianOpinion@1");
    assert_eq!(doc["subject"]["insured_number"], who.1);
    let kept = quarantine
        .wait("the other opinion", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].header("x-kaigo-doc-index"), Some("1"));
    assert_eq!(
        kept[0].header("x-kaigo-document"),
        Some("PhysicianOpinion@1")
    );
    assert_eq!(kept[0].header("x-kaigo-category"), Some("certification"));
    assert_eq!(
        kept[0].header("x-kaigo-reason"),
        Some("consent-denied:no-consent")
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 1, "one opinion delivered");
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    let events = envelope_events(&s, &hub, &envelope);
    let consented = hub.subject_hash(&subject(who));
    let other = hub.subject_hash(&subject(PEOPLE[1]));
    let with = |hop: &str, decision: &str, subject: &str| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision && e["subject"] == subject)
            .count()
    };
    assert_eq!(with("ingress", "accepted", &consented), 1, "{events:#?}");
    assert_eq!(with("translate", "accepted", &consented), 1, "{events:#?}");
    assert_eq!(with("consent", "permit", &consented), 3, "{events:#?}");
    assert_eq!(with("deliver", "delivered", &consented), 1, "{events:#?}");
    assert_eq!(with("ingress", "rejected", &other), 1, "{events:#?}");
    assert_eq!(with("translate", "quarantined", &other), 1, "{events:#?}");
    assert_eq!(with("consent", "deny", &other), 2, "{events:#?}");
    assert_eq!(with("deliver", "delivered", &other), 0, "{events:#?}");
    running.stop().await;
}
