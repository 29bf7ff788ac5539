//! 受給者異動連絡票 (5311) end to end: the insurer 131011 drops its 国保連 file of three people's
//! 証 data (the shipped REAMS-style sample: every field quoted, every data record numbered `2`, the
//! ブランク field holding `0x0D0A`) into its file-drop inbox. The hub reads it by content (the
//! control record's データ種別 531 and the 5311 records; the claims-file mappings that also fit the
//! control record make nothing of it), judges each person alone for the certification category,
//! delivers the `RecipientChange@1` of the two who consented to the care manager that subscribes to
//! the kind, and keeps the third in quarantine; the report and the audit log say so without a
//! personal value. A file whose control record names another insurer is refused whole
//! (`sender-mismatch`), naming the record and the rule that read its field 7; a record of another
//! insurer's person is kept alone (`insurer-mismatch`). The same file
//! quoted as QKAN or the 共通編 rule quote, and with extra trailing fields of a later revision,
//! reads the same. In memory and on the real RabbitMQ.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::mapping::{Input, MappingSet};
use kaigo_hub::pipeline::headers as h;
use serde_json::Value;

const FILE: &str = "10_531131011202510.csv";

/// The three people of the sample, in record order; the second has not consented.
const PEOPLE: [(&str, &str); 3] = [
    ("131011", "0000012345"),
    ("131011", "0000012346"),
    ("131011", "0000012347"),
];

/// The demo parties, with an inbox for the insurer and the care manager subscribed to the kind.
fn insurer_parties(text: String) -> String {
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
    let opinion = "      - { document: PhysicianOpinion@1, format: canonical }\n";
    let edited = edited.replacen(
        opinion,
        &format!("{opinion}      - {{ document: RecipientChange@1, format: canonical }}\n"),
        1,
    );
    assert!(edited.contains("/data/inbox/131011") && edited.contains("RecipientChange@1"));
    edited
}

/// [`insurer_parties`], with [`FHIR_RECIPIENT`] and [`CSV_RECIPIENT`] receiving the change in
/// their format: with the care manager's canonical JSON, each change in three formats.
fn three_formats(text: String) -> String {
    also_receive(insurer_parties(text), &["RecipientChange@1"])
}

/// The sample's documents as the golden file holds them.
fn golden() -> Vec<Value> {
    match json(&sample("claims/10_531131011202510.recipient-change.json")) {
        Value::Array(docs) => docs,
        one => vec![one],
    }
}

async fn an_insurers_5311_file_delivers_the_consented_and_keeps_the_other(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let cert = [Category::Certification];
    for (i, who) in [PEOPLE[0], PEOPLE[2]].into_iter().enumerate() {
        let platform = Grantee::Kind(PartyKind::Platform);
        grant(&hub, &format!("rc-p{i}"), who, platform, &cert).await;
        let provider = Grantee::Kind(PartyKind::Provider);
        grant(&hub, &format!("rc-c{i}"), who, provider, &cert).await;
        for (tag, party) in [("f", FHIR_RECIPIENT), ("v", CSV_RECIPIENT)] {
            let grantee = Grantee::Party(party.parse().expect("id"));
            grant(&hub, &format!("rc-{tag}{i}"), who, grantee, &cert).await;
        }
    }
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;

    let parts = [
        "outcome: accepted-in-part",
        "party: 131011",
        "documents: 3",
        "refused: 1",
        "document 2 (RecipientChange@1): consent-denied:no-consent: ",
    ];
    let personal = ["0000012346", "0000012345", "ｼｹﾝ", "シケン", "19450505"];
    let bytes = sample("claims/10_531131011202510.csv");
    let inbox = s.inbox(MUNICIPALITY);
    let (_, envelope) = drop_and_read_report(&inbox, FILE, &bytes, &parts, &personal).await;

    // The care manager receives persons 1 and 3, as the golden file has them.
    let out = s.out_dir(CARE_MANAGER);
    for index in [0, 2] {
        let name = format!("{envelope}-{index}.json");
        let (_, body) = wait_for_file(&out, "a consented person's change", |n| n == name).await;
        let want = &golden()[index];
        assert_eq!(&json(&body), want, "document {}", index + 1);
        // The same change as FHIR and as a whole 531 file of its own, each exactly what
        // `translate --to` makes of it.
        delivered_as_fhir_and_csv(&s, &envelope, index, want).await;
    }
    let kept = quarantine
        .wait("person 2's change", |m| !m.is_empty())
        .await;
    let person_2 = hub.subject_hash(&subject(PEOPLE[1]));
    assert_eq!(kept[0].envelope(), envelope);
    assert_eq!(kept[0].header(h::DOC_INDEX), Some("1"));
    assert_eq!(kept[0].header(h::DOCUMENT), Some("RecipientChange@1"));
    assert_eq!(kept[0].header(h::CATEGORY), Some("certification"));
    assert_eq!(kept[0].header(h::REASON), Some("consent-denied:no-consent"));
    assert_eq!(kept[0].header(h::REFUSED_AT), Some("translate"));
    assert_eq!(kept[0].header(h::SUBJECT), Some(person_2.as_str()));
    assert_eq!(json(&kept[0].body), golden()[1], "kept as its document");
    tokio::time::sleep(QUIET).await;
    for dir in [&out, &s.out_dir(FHIR_RECIPIENT), &s.out_dir(CSV_RECIPIENT)] {
        assert_eq!(files(dir).len(), 2, "person 2's change is not delivered");
    }
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "not to its sender"
    );
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    // The audit trail: each person's fate at each hop, by subject hash only.
    let events = envelope_events(&s, &hub, &envelope);
    let text = serde_json::to_string(&events).expect("JSON");
    for value in personal {
        assert!(!text.contains(value), "`{value}` in the audit events");
    }
    let count = |hop: &str, decision: &str, who: &str, party: Option<&str>| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision && e["subject"] == who)
            .filter(|e| e["document"] == "RecipientChange@1")
            .filter(|e| party.is_none_or(|p| e["party"] == p))
            .count()
    };
    for who in [PEOPLE[0], PEOPLE[2]].map(|p| hub.subject_hash(&subject(p))) {
        assert_eq!(count("ingress", "accepted", &who, None), 1, "{events:#?}");
        assert_eq!(count("translate", "accepted", &who, None), 1, "{events:#?}");
        for party in [CARE_MANAGER, FHIR_RECIPIENT, CSV_RECIPIENT] {
            let to = Some(party);
            assert_eq!(count("deliver", "delivered", &who, to), 1, "{events:#?}");
        }
    }
    assert_eq!(count("ingress", "rejected", &person_2, None), 1);
    assert_eq!(count("translate", "quarantined", &person_2, None), 1);
    assert_eq!(count("deliver", "delivered", &person_2, None), 0);
    running.stop().await;

    let config = config_file(&s, &s.config());
    let verified = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(verified.status.code(), Some(0), "the audit log verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insurers_5311_file_delivers_the_consented_and_keeps_the_other_in_memory() {
    let s = Scratch::memory("rc-mem", three_formats);
    an_insurers_5311_file_delivers_the_consented_and_keeps_the_other(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insurers_5311_file_delivers_the_consented_and_keeps_the_other_on_rabbitmq() {
    let s = Scratch::rabbit("rc-rmq", three_formats);
    an_insurers_5311_file_delivers_the_consented_and_keeps_the_other(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5311_file_whose_control_record_names_another_insurer_is_refused_naming_field_7() {
    let s = Scratch::memory("rc-mismatch", insurer_parties);
    let running = s.start().await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let text = encoding_free(&sample("claims/10_531131011202510.csv"));
    // Another insurer's number (435073) in the control record's field 7; the records keep theirs.
    let other = text.replacen("\"531\",\"0\",\"131011\"", "\"531\",\"0\",\"435073\"", 1);
    assert_ne!(other, text);
    let inbox = s.inbox(MUNICIPALITY);
    put_atomically(&inbox.join(FILE), &to_ms932(&other));
    let (_, error) = wait_for_file(&inbox.join("failed"), "the error file", |n| {
        n.ends_with(".error.txt")
    })
    .await;
    let error = String::from_utf8(error).expect("UTF-8");
    for part in [
        "outcome: refused",
        "error: sender-mismatch: document 1 names party 435073 as its sender (record 2, line 2; rule `source.sender` from `/7` (claims-5311-recipient-change.yaml:",
        "but it came from 131011",
    ] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    for value in ["0000012345", "ｶｲｺﾞ", "カイゴ"] {
        assert!(!error.contains(value), "`{value}` in: {error}");
    }
    let kept = quarantine.wait("the refused file", |m| !m.is_empty()).await;
    assert_eq!(kept[0].header(h::REASON), Some("sender-mismatch"));
    assert_eq!(kept[0].header(h::REFUSED_AT), Some("ingress"));
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(CARE_MANAGER)).is_empty(),
        "nothing delivered"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_of_another_insurers_person_is_kept_and_the_others_go_on() {
    let s = Scratch::memory("rc-insurer", insurer_parties);
    let running = s.start().await;
    let hub = running.hub.clone();
    let cert = [Category::Certification];
    // Everyone consented, person 2 under the other insurer's number too: only the insurer differs.
    let other = ("435073", PEOPLE[1].1);
    for (i, who) in [PEOPLE[0], other, PEOPLE[2]].into_iter().enumerate() {
        let platform = Grantee::Kind(PartyKind::Platform);
        grant(&hub, &format!("ri-p{i}"), who, platform, &cert).await;
        let provider = Grantee::Kind(PartyKind::Provider);
        grant(&hub, &format!("ri-c{i}"), who, provider, &cert).await;
    }
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let text = encoding_free(&sample("claims/10_531131011202510.csv"));
    // Person 2's 証記載保険者番号 (item 7) is another insurer's; the control record stays 131011.
    let moved = text.replacen("\"131011\",\"0000012346\"", "\"435073\",\"0000012346\"", 1);
    assert_ne!(moved, text);
    let parts = [
        "outcome: accepted-in-part",
        "refused: 1",
        "document 2 (RecipientChange@1): insurer-mismatch",
    ];
    let personal = ["0000012346", "435073", "ｼｹﾝ"];
    let inbox = s.inbox(MUNICIPALITY);
    let (_, envelope) =
        drop_and_read_report(&inbox, FILE, &to_ms932(&moved), &parts, &personal).await;
    let out = s.out_dir(CARE_MANAGER);
    for index in [0, 2] {
        let name = format!("{envelope}-{index}.json");
        let (_, body) = wait_for_file(&out, "a change of the insurer's own", |n| n == name).await;
        assert_eq!(json(&body), golden()[index]);
    }
    let kept = quarantine
        .wait("the other insurer's person", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].header(h::DOC_INDEX), Some("1"));
    assert_eq!(kept[0].header(h::REASON), Some("insurer-mismatch"));
    tokio::time::sleep(QUIET).await;
    assert_eq!(files(&out).len(), 2);
    running.stop().await;
}

/// The sample is MS932 (half-width kana): read it as the hub does.
fn encoding_free(bytes: &[u8]) -> String {
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(bytes);
    assert!(!bad, "the sample is MS932");
    text.into_owned()
}

fn to_ms932(text: &str) -> Vec<u8> {
    let (bytes, _, bad) = encoding_rs::SHIFT_JIS.encode(text);
    assert!(!bad, "MS932 can write it");
    bytes.into_owned()
}

/// The sample's documents, translated by the shipped mappings from `bytes`.
fn translated(bytes: &[u8]) -> Vec<Value> {
    let set = MappingSet::load_dir(&repo().join("mappings")).expect("shipped mappings load");
    let t = set
        .translate(
            Input {
                bytes,
                file_name: Some(FILE),
            },
            None,
        )
        .expect("translates");
    t.documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("JSON"))
        .collect()
}

#[test]
fn every_quoting_style_and_extra_trailing_fields_read_the_same() {
    let reams = encoding_free(&sample("claims/10_531131011202510.csv"));
    assert_eq!(translated(&to_ms932(&reams)), golden(), "REAMS: all quoted");
    let records: Vec<Vec<String>> = reams
        .lines()
        .map(|l| {
            l.split(',')
                .map(|f| f.trim_matches('"').to_string())
                .collect()
        })
        .collect();
    let write = |quote: &dyn Fn(usize, usize, &str) -> String, extra: &str| {
        let mut text = String::new();
        for (r, fields) in records.iter().enumerate() {
            let line: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| quote(r, i, f))
                .collect();
            text.push_str(&line.join(","));
            if r > 0 && r + 1 < records.len() {
                text.push_str(extra);
            }
            text.push_str("\r\n");
        }
        to_ms932(&text)
    };
    // QKAN: the control record, the end record and each data record's `2,<n>,` bare; every
    // inner field quoted.
    let qkan = |r: usize, i: usize, f: &str| {
        let frame = r == 0 || r + 1 == records.len() || i < 2;
        if frame {
            f.to_string()
        } else {
            format!("\"{f}\"")
        }
    };
    // 共通編: only 2-byte (kanji) items quoted: none in a 5311 record, so nothing is.
    let bare = |_: usize, _: usize, f: &str| f.to_string();
    assert_eq!(translated(&write(&qkan, "")), golden(), "QKAN quoting");
    assert_eq!(translated(&write(&bare, "")), golden(), "bare");
    // A later revision's items after the ブランク field are read all the same, kept verbatim in
    // each record's `extra_fields` (claims-csv.md §2.4), never refused and never read as known.
    let extra = ",\"20260801\",\"20270731\",\"3\"";
    let mut want = golden();
    for doc in &mut want {
        doc["extra_fields"] = serde_json::json!(["20260801", "20270731", "3"]);
    }
    assert_eq!(translated(&write(&qkan, extra)), want, "extra fields");
}

/// The 5311 records in a file whose control record says データ種別 711 (請求書 and 明細書) are no
/// 受給者異動連絡票: the 異動 mapping does not fit the file, and the claims mappings that do fit
/// read no 5311 record, so the file is refused at its first data record (`documents.frame`)
/// rather than taken as a file of nothing.
#[test]
fn a_claims_file_of_another_data_type_is_refused_at_its_first_record() {
    let reams = encoding_free(&sample("claims/10_531131011202510.csv"));
    let other = reams.replacen("\"531\"", "\"711\"", 1);
    let set = MappingSet::load_dir(&repo().join("mappings")).expect("shipped mappings load");
    let e = set
        .translate(
            Input {
                bytes: &to_ms932(&other),
                file_name: Some(FILE),
            },
            None,
        )
        .expect_err("no mapping that fits a 711 file reads a 5311 record")
        .to_string();
    assert!(
        e.starts_with("record 2 (line 2): no mapping that reads this input takes this record"),
        "{e}"
    );
    assert!(
        e.contains("`claims-invoice` takes records where `1` is `2` and `3` is `7111`"),
        "{e}"
    );
    assert!(!e.contains("claims-5311-recipient-change"), "{e}");
}
