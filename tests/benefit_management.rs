//! 給付管理票 (`BenefitManagement@1`, issue 17) from a care manager's 国保連 claims file: the
//! shipped sample `samples/claims/d0821a.csv` (データ種別 821, sent by the 居宅介護支援事業所
//! 0300000100) holds two 給付管理票, each detail lines `01`… and a `99` total line. Its golden is
//! checked here against the spec's arithmetic (claims-csv.md §7: the `99` line's item 24 is the
//! sum of the detail lines' item 20), recomputed from the golden itself.
//!
//! Through the hub (in memory and on the real RabbitMQ): the care manager drops the file into
//! its inbox; the first person has consented (platform and the insurer, category claims), so
//! their 給付管理票 is delivered to 131011 as the golden has it; the second has not, so theirs
//! is held back (`consent-denied`) and named in the file's report by position, never by number.
//! The audit trail says the same. The same file from another party is a `sender-mismatch`.

mod common;

use common::*;
use kaigo_hub::pipeline::headers as h;
use serde_json::Value;

const FILE: &str = "d0821a.csv";
const KIND: &str = "BenefitManagement@1";
/// The sample's two people (invented numbers): the first consents, the second does not.
const CONSENTED: (&str, &str) = ("131011", "0000012345");
const SILENT: (&str, &str) = ("131011", "0000012399");

fn golden() -> Vec<Value> {
    sample_docs("claims/d0821a.benefit-management.json")
}

/// Per 給付管理票: 給付計画合計 (99 #24) = Σ 給付計画単位数 (#20) of its lines, within the
/// 支給限度額 (99 #15); lines numbered 01, 02, … in order.
///
/// By hand: 0000012345 (要介護2, 限度額 19,705): 2,684 (11 訪問介護, the d0711b 明細書's
/// 計画単位数), 3,000 (15 通所介護) and 1,200 (13 訪問看護) make 6,884. 0000012399 (要介護1,
/// 限度額 16,765): 976 (11, as d0711b) and 1,500 (17 福祉用具貸与) make 2,476.
#[test]
fn the_golden_adds_up_as_the_spec_says() {
    let mut sums = Vec::new();
    for sheet in golden() {
        assert_eq!(sheet["document"], KIND);
        let lines = sheet["lines"].as_array().expect("lines");
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["line"], format!("{:02}", i + 1), "lines in order");
        }
        let planned: i64 = lines.iter().map(|l| int(&l["planned_units"])).sum();
        assert_eq!(int(&sheet["total"]["planned_units"]), planned, "99 #24");
        assert!(planned <= int(&sheet["cap_units"]), "within the 限度額");
        sums.push((int(&sheet["cap_units"]), planned));
    }
    assert_eq!(sums, [(19_705, 6_884), (16_765, 2_476)]);
}

async fn a_care_managers_file_delivers_each_consented_sheet(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;
    grant_claims_to_every_recipient(&hub, CONSENTED).await;

    let parts = [
        "outcome: accepted-in-part",
        "documents: 2",
        "refused: 1",
        "document 2 (BenefitManagement@1): consent-denied:no-consent",
    ];
    let personal = [CONSENTED.1, SILENT.1, "00131011", "19400405", "19380212"];
    let inbox = s.inbox(CARE_MANAGER);
    let bytes = sample("claims/d0821a.csv");
    let (_, envelope) = drop_and_read_report(&inbox, FILE, &bytes, &parts, &personal).await;

    let out = s.out_dir(MUNICIPALITY);
    let want = golden();
    let name = format!("{envelope}-0.json");
    let (_, body) = wait_for_file(&out, "the delivered sheet", |n| n == name).await;
    assert_eq!(json(&body), want[0]);
    // The same sheet as FHIR and as a whole 821 file of its own, each exactly what
    // `translate --to` makes of it.
    delivered_as_fhir_and_csv(&s, &envelope, 0, &want[0]).await;
    let kept = quarantine
        .wait("the second person's sheet", |m| !m.is_empty())
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
        assert_eq!(files(dir).len(), 1, "the held-back sheet is not delivered");
    }
    assert!(
        files(&s.out_dir(CARE_MANAGER)).is_empty(),
        "the sender does not subscribe"
    );
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    let events = envelope_events(&s, &hub, &envelope);
    let consented = hub.subject_hash(&subject(CONSENTED));
    let count = |hop: &str, decision: &str, who: &str| {
        events
            .iter()
            .filter(|e| e["hop"] == hop && e["decision"] == decision)
            .filter(|e| e["document"] == KIND && e["category"] == "claims")
            .filter(|e| e["subject"] == who)
            .count()
    };
    assert!(count("consent", "permit", &consented) >= 2, "{events:#?}");
    assert!(count("consent", "deny", &silent) >= 1, "{events:#?}");
    assert_eq!(count("consent", "permit", &silent), 0, "{events:#?}");
    // One delivery per recipient: canonical, FHIR, CSV.
    assert_eq!(count("deliver", "delivered", &consented), 3, "{events:#?}");
    let text = serde_json::to_string(&events).expect("JSON");
    for value in personal {
        assert!(!text.contains(value), "`{value}` in the audit trail");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_care_managers_file_delivers_each_consented_sheet_in_memory() {
    let s = Scratch::memory("benefit-mem", |p| also_receive(p, &[KIND]));
    a_care_managers_file_delivers_each_consented_sheet(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_care_managers_file_delivers_each_consented_sheet_on_rabbitmq() {
    let s = Scratch::rabbit("benefit-rmq", |p| also_receive(p, &[KIND]));
    a_care_managers_file_delivers_each_consented_sheet(s).await;
}

/// A 給付管理票 whose `99` total line is missing: the file is refused, its error naming a record
/// of that 給付管理票 and `documents.head`, never the person's numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sheet_without_its_total_line_is_refused_naming_the_line() {
    let s = Scratch::memory("benefit-no-99", |p| p);
    let running = s.start().await;
    let text = String::from_utf8(sample("claims/d0821a.csv")).expect("ASCII sample");
    let total = text
        .lines()
        .find(|l| l.starts_with("2,8,"))
        .expect("the second person's 99 line");
    assert!(total.contains("\"3\",\"99\""), "{total}");
    let cut = text.replacen(&format!("{total}\r\n"), "", 1);
    let parts = [
        "outcome: malformed",
        "record 6 (line 6): its document has no member that meets `documents.head`",
        "rule `documents.head` in claims-benefit-management.yaml:",
    ];
    let personal = [SILENT.1, "00131011", "19380212"];
    let inbox = s.inbox(CARE_MANAGER);
    drop_and_read_error(&inbox, FILE, cut.as_bytes(), &parts, &personal).await;
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "nothing delivered"
    );
    running.stop().await;
}

/// The sender is the control record's 事業所番号: the same file dropped by another party (the
/// 訪問介護事業所) is refused whole as `sender-mismatch`, nothing delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sheet_file_from_another_party_is_a_sender_mismatch() {
    let s = Scratch::memory("benefit-mismatch", |p| p);
    let running = s.start().await;
    let parts = [
        "outcome: refused",
        "error: sender-mismatch: document 1 names party 0300000100 as its sender",
        "(claims-benefit-management.yaml:",
        "but it came from 0300000005",
    ];
    let personal = [CONSENTED.1, SILENT.1, "00131011", "19400405", "19380212"];
    let bytes = sample("claims/d0821a.csv");
    drop_and_read_error(&s.inbox(PROVIDER), FILE, &bytes, &parts, &personal).await;
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "nothing delivered"
    );
    running.stop().await;
}
