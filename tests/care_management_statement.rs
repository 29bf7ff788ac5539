//! 居宅介護支援・介護予防支援 明細書 (`CareManagementStatement@1`, 様式第七 8124 / 第七の二 8125,
//! issue 17) from a care manager's 国保連 claims file: the shipped sample
//! `samples/claims/d0812a.csv` (データ種別 812, sent by the 居宅介護支援事業所 0300000100) holds
//! its 7111 請求書 line (請求情報区分 02) and two 明細書: one of two lines (01, 99), one of a
//! single `99` line. The goldens are checked here against the spec's arithmetic (claims-csv.md
//! §6: サービス単位数 = 単位数 × 回数, the `99` line's 合計 = Σ サービス単位数, 請求金額 =
//! ⌊合計 × 単位数単価⌋ at 10割; §4: the 7111 line sums the 明細書), recomputed from the goldens.
//!
//! Through the hub (in memory and on the real RabbitMQ): the care manager drops the file into
//! its inbox; the hub reads the 請求書 and both 明細書 (two mappings, one category). The first
//! person has consented, so their 明細書 reaches 131011 as the golden has it, with the 請求書
//! (no person, no consent); the second person's is held back (`consent-denied`), named in the
//! file's report by position, never by number. The audit trail says the same.

mod common;

use common::*;
use kaigo_hub::pipeline::headers as h;
use serde_json::Value;

const FILE: &str = "d0812a.csv";
const KIND: &str = "CareManagementStatement@1";
/// The sample's two people (invented numbers): the first consents, the second does not.
const CONSENTED: (&str, &str) = ("131011", "0000012345");
const SILENT: (&str, &str) = ("131011", "0000012399");

/// By hand (claims-csv §6, 単位数単価 11.40): 0000012345: 431111 1,086 × 1 + 434001 300 × 1 =
/// 1,386 単位 × 11.40 = 15,800.4 → 15,800 円; 0000012399: 431111 1,086 × 1 = 1,086 × 11.40 =
/// 12,380.4 → 12,380 円. 居宅介護支援 is 10割給付: the 7111 line (1, 00, 02) has 件数 2, 単位数
/// 2,472, 費用合計 = 保険請求額 = 28,180, 公費 0, 利用者負担 0.
#[test]
fn the_goldens_add_up_as_the_spec_says() {
    let statements = sample_docs("claims/d0812a.care-management-statement.json");
    let mut by_hand = Vec::new();
    for s in &statements {
        assert_eq!(s["document"], KIND);
        let lines = s["lines"].as_array().expect("lines");
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(
                int(&l["units"]),
                int(&l["unit_value"]) * int(&l["count"]),
                "単位数 × 回数"
            );
            let want = match i + 1 == lines.len() {
                true => "99".to_string(),
                false => format!("{:02}", i + 1),
            };
            assert_eq!(l["line"], want.as_str(), "lines 01… and the last 99");
        }
        let units: i64 = lines.iter().map(|l| int(&l["units"])).sum();
        assert_eq!(int(&s["total"]["units"]), units, "the 99 line's 合計");
        let claim = units * hundredths(&s["unit_price"]) / 100;
        assert_eq!(int(&s["total"]["claim"]), claim, "⌊合計 × 単価⌋");
        by_hand.push((units, claim));
    }
    assert_eq!(by_hand, [(1_386, 15_800), (1_086, 12_380)]);

    let invoices = sample_docs("claims/d0812a.claim-invoice.json");
    assert_eq!(invoices.len(), 1);
    let line = &invoices[0];
    assert_eq!(
        (&line["payer"], &line["law_number"], &line["claim_class"]),
        (&"1".into(), &"00".into(), &"02".into()),
        "the 保険 line of 居宅介護支援"
    );
    let services = &line["services"];
    assert_eq!(int(&services["count"]), statements.len() as i64);
    assert_eq!(
        int(&services["units"]),
        by_hand.iter().map(|b| b.0).sum::<i64>()
    );
    let total: i64 = by_hand.iter().map(|b| b.1).sum();
    assert_eq!(int(&services["total_cost"]), total);
    assert_eq!(int(&services["insurance_claim"]), total, "10割");
    assert_eq!(int(&services["user_share"]), 0);
    assert_eq!(int(&services["public_claim"]), 0);
}

/// The shipped parties, with [`FHIR_RECIPIENT`] and [`CSV_RECIPIENT`] (two demo hospitals)
/// receiving both kinds of the file in their format: with 131011's canonical JSON, the three
/// formats of every document in one run.
fn three_formats(parties: String) -> String {
    also_receive(parties, &[KIND, "ClaimInvoice@1"])
}

async fn a_care_managers_claims_file_delivers_the_invoice_and_each_consented_statement(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;
    grant_claims_to_every_recipient(&hub, CONSENTED).await;

    // Mappings run in file-name order: the 明細書 (documents 1, 2), then the 請求書 (3).
    let parts = [
        "outcome: accepted-in-part",
        "documents: 3",
        "refused: 1",
        "document 2 (CareManagementStatement@1): consent-denied:no-consent",
    ];
    let personal = [CONSENTED.1, SILENT.1, "19400405", "19380212"];
    let inbox = s.inbox(CARE_MANAGER);
    let bytes = sample("claims/d0812a.csv");
    let (_, envelope) = drop_and_read_report(&inbox, FILE, &bytes, &parts, &personal).await;

    let out = s.out_dir(MUNICIPALITY);
    let statements = sample_docs("claims/d0812a.care-management-statement.json");
    let invoice = sample_docs("claims/d0812a.claim-invoice.json");
    for (i, want) in [(0, &statements[0]), (2, &invoice[0])] {
        let name = format!("{envelope}-{i}.json");
        let (_, body) = wait_for_file(&out, "a delivered document", |n| n == name).await;
        assert_eq!(&json(&body), want, "document {i}");
        // The same document as FHIR and as a whole claims file of its own (its own control
        // and end record), each exactly what `translate --to` makes of it.
        delivered_as_fhir_and_csv(&s, &envelope, i, want).await;
    }
    let kept = quarantine
        .wait("the second person's statement", |m| !m.is_empty())
        .await;
    assert_eq!(kept[0].envelope(), envelope);
    assert_eq!(kept[0].header(h::DOC_INDEX), Some("1"));
    assert_eq!(kept[0].header(h::DOCUMENT), Some(KIND));
    assert_eq!(kept[0].header(h::CATEGORY), Some("claims"));
    assert_eq!(kept[0].header(h::REASON), Some("consent-denied:no-consent"));
    let silent = hub.subject_hash(&subject(SILENT));
    assert_eq!(kept[0].header(h::SUBJECT), Some(silent.as_str()));
    tokio::time::sleep(QUIET).await;
    for dir in [&out, &s.out_dir(FHIR_RECIPIENT), &s.out_dir(CSV_RECIPIENT)] {
        assert_eq!(
            files(dir).len(),
            2,
            "the held-back statement is not delivered ({})",
            dir.display()
        );
    }
    assert!(
        files(&s.out_dir(CARE_MANAGER)).is_empty(),
        "the sender does not subscribe"
    );
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    let events = envelope_events(&s, &hub, &envelope);
    let consented = hub.subject_hash(&subject(CONSENTED));
    let count = |hop: &str, decision: &str, document: &str, who: Option<&str>| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision)
            .filter(|e| e["document"] == document && e["category"] == "claims")
            .filter(|e| who.is_none_or(|w| e["subject"] == w))
            .count()
    };
    assert!(
        count("consent", "permit", KIND, Some(&consented)) >= 2,
        "{events:#?}"
    );
    assert!(
        count("consent", "deny", KIND, Some(&silent)) >= 1,
        "{events:#?}"
    );
    assert_eq!(
        count("consent", "permit", KIND, Some(&silent)),
        0,
        "{events:#?}"
    );
    // One delivery per recipient: canonical, FHIR, CSV.
    assert_eq!(
        count("deliver", "delivered", KIND, Some(&consented)),
        3,
        "{events:#?}"
    );
    assert_eq!(
        count("deliver", "delivered", "ClaimInvoice@1", None),
        3,
        "{events:#?}"
    );
    let text = serde_json::to_string(&events).expect("JSON");
    for value in personal {
        assert!(!text.contains(value), "`{value}` in the audit trail");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_care_managers_claims_file_delivers_each_consented_statement_in_memory() {
    let s = Scratch::memory("care-mgmt-mem", three_formats);
    a_care_managers_claims_file_delivers_the_invoice_and_each_consented_statement(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_care_managers_claims_file_delivers_each_consented_statement_on_rabbitmq() {
    let s = Scratch::rabbit("care-mgmt-rmq", three_formats);
    a_care_managers_claims_file_delivers_the_invoice_and_each_consented_statement(s).await;
}

/// The 証記載保険者番号 as the IF writes it (8 digits, `00` + 保険者番号) gives the same person
/// as QKAN's 6 digits, keeping what was written; a 8125 (介護予防支援) reads the same layout;
/// a 明細書 without its `99` line is refused naming its record.
#[test]
fn the_insurer_number_may_be_padded_and_8125_reads_the_same_layout() {
    let text = String::from_utf8(sample("claims/d0812a.csv")).expect("ASCII sample");
    let padded = text.replace(",\"131011\",", ",\"00131011\",");
    assert_eq!(padded.matches("\"00131011\"").count(), 3);
    let o = translate(&padded, "cms-padded");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let made = match json(&o.stdout) {
        Value::Array(d) => d,
        one => vec![one],
    };
    let mut want = sample_docs("claims/d0812a.care-management-statement.json");
    for d in &mut want {
        d["card_insurer_number"] = "00131011".into();
    }
    assert_eq!(made, want);

    let preventive = text.replace("\"8124\"", "\"8125\"");
    let o = translate(&preventive, "cms-8125");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let made = match json(&o.stdout) {
        Value::Array(d) => d,
        one => vec![one],
    };
    let mut want = sample_docs("claims/d0812a.care-management-statement.json");
    for d in &mut want {
        d["form"] = "8125".into();
    }
    assert_eq!(made, want);

    // The first person's 99 line renumbered 02: their 明細書 has no 99 line.
    let cut = text.replacen("\"20250320\",\"99\"", "\"20250320\",\"02\"", 1);
    let o = translate(&cut, "cms-no-99");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("record 3 (line 3): its document has no member that meets `documents.head`"),
        "{err}"
    );
    assert!(!err.contains("0000012345"), "{err}");
}

/// `kaigo-hub translate --mapping claims-care-management-statement` of `text` as `d0812a.csv`.
fn translate(text: &str, tag: &str) -> std::process::Output {
    translate_as_file(text, FILE, "claims-care-management-statement", tag)
}
