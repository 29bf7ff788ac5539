//! 給付費明細書 (`ClaimStatement@1`, issue 17) from a provider's 国保連 claims file: the shipped
//! sample `samples/claims/d0711b.csv` holds one 7111 請求書 line and two 7131 明細書 (01 基本,
//! 02 明細, 10 集計, and a 12 社会福祉法人軽減 on the second). Its goldens are checked here
//! against the spec's arithmetic (claims-csv.md §4, §5.5), recomputed from the goldens
//! themselves, so a golden regenerated with a wrong amount fails.
//!
//! Through the hub (in memory and on the real RabbitMQ): the provider drops the file into its
//! inbox; the hub reads the 請求書 and both 明細書 from it (two mappings, one category). The
//! 請求書 carries no person and goes on without consent; the first person has consented
//! (platform and the insurer, category claims), so their 明細書 is delivered to 131011 as the
//! golden has it; the second has not, so theirs alone is held back (`consent-denied`) and named
//! in the file's report by position, never by number. The audit trail says the same.
//! A recipient subscribed with `format: csv` gets each delivered document as a whole 国保連 file.

mod common;

use common::*;
use kaigo_hub::pipeline::headers as h;
use serde_json::Value;

const FILE: &str = "d0711b.csv";
/// The sample's two people (invented numbers): the first consents, the second does not.
const CONSENTED: (&str, &str) = ("131011", "0000012345");
const SILENT: (&str, &str) = ("131011", "0000012399");

/// Per 10 集計: 費用 = ⌊単位数合計 × 単価⌋, 保険請求額 = ⌊費用 × 保険給付率 / 100⌋, 利用者負担額 =
/// 費用 − 保険請求額 (no 公費 here); 02 lines: サービス単位数 = 単位数 × 回数, summing to the 10's
/// 単位数合計 and the 01's 保険 サービス単位数; 12 軽減: 軽減後 = 総額 − 軽減額. The 7111 保険
/// line: 件数 = the 明細書, 単位数 = Σ 01 #33, 保険請求額 = Σ 01 #34, 費用合計 = Σ 費用,
/// 利用者負担 = Σ 01 #35, and 費用合計 = 保険 + 公費 + 利用者.
///
/// By hand (claims-csv §5.5): 0000012345: 244 × 8 + 183 × 4 = 2,684 units × 11.40 = 30,597.6 →
/// 30,597 円; × 90% = 27,537.3 → 27,537; user 3,060. 0000012399: 244 × 4 = 976 × 11.40 =
/// 11,126.4 → 11,126; × 80% = 8,900.8 → 8,900; user 2,226; 軽減 556 → 1,670. 請求書: 2 明細書,
/// 3,660 units, 41,723 = 36,437 + 0 + 5,286.
///
/// d0711c (様式第八 7183, 介護老人福祉施設): 700 × 31 = 21,700 units × 10.90 = 236,530 円; × 90%
/// = 212,877; user 23,653. 11 特定入所者 (§5.6): 食費 1,445 × 31 = 44,795, 負担限度額 650 × 31 =
/// 20,150, 保険分 24,645; 居住費 915 × 31 = 28,365, 430 × 31 = 13,330, 保険分 15,035; the `99`
/// record's sums 73,160 / 39,680 / 33,480 = 01 #38 and the 7111 line's items 15, 18, 16.
#[test]
fn the_goldens_add_up_as_the_spec_says() {
    assert_eq!(add_up("d0711b"), [(30_597, 27_537), (11_126, 8_900)]);
    assert_eq!(add_up("d0711c"), [(236_530, 212_877)]);
}

/// Checks the arithmetic of a sample's goldens; gives each 明細書's (費用, 保険請求額).
fn add_up(stem: &str) -> Vec<(i64, i64)> {
    let statements = sample_docs(&format!("claims/{stem}.claim-statement.json"));
    let invoices = sample_docs(&format!("claims/{stem}.claim-invoice.json"));
    let (mut units, mut claim, mut user, mut cost) = (0, 0, 0, 0);
    let (mut resident_cost, mut resident_claim, mut resident_user, mut residents) = (0, 0, 0, 0);
    let mut by_hand = Vec::new();
    for s in &statements {
        assert_eq!(s["document"], "ClaimStatement@1");
        let basic = &s["basic"]["insurance"];
        let rate = int(&basic["rate"]);
        let lines: i64 = s["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| {
                assert_eq!(int(&d["unit_value"]) * int(&d["count"]), int(&d["units"]));
                int(&d["units"])
            })
            .sum();
        let totals = s["totals"].as_array().expect("totals");
        assert_eq!(totals.len(), 1, "one サービス種類");
        let t = &totals[0]["insurance"];
        assert_eq!(lines, int(&t["units"]));
        assert_eq!(int(&basic["units"]), int(&t["units"]));
        let spent = int(&t["units"]) * hundredths(&t["unit_price"]) / 100;
        let insured = spent * rate / 100;
        assert_eq!(int(&t["claim"]), insured, "保険請求額 = ⌊費用 × 給付率⌋");
        assert_eq!(int(&t["user_share"]), spent - insured);
        assert_eq!(int(&basic["claim"]), insured);
        assert_eq!(int(&basic["user_share"]), spent - insured);
        for r in s["reductions"].as_array().into_iter().flatten() {
            assert_eq!(int(&r["user_share_due"]), spent - insured);
            let after = int(&r["user_share_due"]) - int(&r["reduction"]);
            assert_eq!(int(&r["user_share_after"]), after);
        }
        let lines = s["specified_resident"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(last) = lines.last() {
            assert_eq!(last["sequence"], "99", "the last 11 record is 99");
            let (mut c, mut i, mut u) = (0, 0, 0);
            for r in &lines {
                assert_eq!(int(&r["cost"]), int(&r["unit_cost"]) * int(&r["days"]));
                assert_eq!(int(&r["user_share"]), int(&r["limit"]) * int(&r["days"]));
                let rest = int(&r["cost"]) - int(&r["user_share"]);
                assert_eq!(int(&r["insurance_claim"]), rest);
                (c, i, u) = (c + int(&r["cost"]), i + rest, u + int(&r["user_share"]));
            }
            let sums = &last["totals"];
            assert_eq!(
                (int(&sums["total_cost"]), int(&sums["insurance_claim"])),
                (c, i)
            );
            assert_eq!(int(&sums["user_share"]), u);
            assert_eq!(int(&basic["specified_resident_claim"]), i, "01 #38");
            (resident_cost, resident_claim, resident_user) =
                (resident_cost + c, resident_claim + i, resident_user + u);
            residents += 1;
        }
        by_hand.push((spent, insured));
        units += int(&basic["units"]);
        claim += int(&basic["claim"]);
        user += int(&basic["user_share"]);
        cost += spent;
    }
    let insurance: Vec<&Value> = invoices.iter().filter(|i| i["payer"] == "1").collect();
    assert_eq!(insurance.len(), 1);
    let line = &insurance[0]["services"];
    assert_eq!(int(&line["count"]), statements.len() as i64);
    assert_eq!(int(&line["units"]), units);
    assert_eq!(int(&line["insurance_claim"]), claim);
    assert_eq!(int(&line["user_share"]), user);
    assert_eq!(int(&line["total_cost"]), cost);
    let parts = int(&line["insurance_claim"]) + int(&line["public_claim"]) + user;
    assert_eq!(int(&line["total_cost"]), parts);
    let resident = &insurance[0]["specified_resident"];
    if residents == 0 {
        assert!(resident.is_null(), "{resident}");
    } else {
        assert_eq!(int(&resident["count"]), residents);
        assert_eq!(int(&resident["total_cost"]), resident_cost);
        assert_eq!(int(&resident["insurance_claim"]), resident_claim);
        assert_eq!(int(&resident["user_share"]), resident_user);
    }
    by_hand
}

/// The shipped parties, with [`FHIR_RECIPIENT`] and [`CSV_RECIPIENT`] receiving the 請求書 and
/// the 明細書 in their format: with 131011's canonical JSON, every document in three formats.
fn three_formats(parties: String) -> String {
    also_receive(parties, &["ClaimInvoice@1", "ClaimStatement@1"])
}

async fn a_claims_file_delivers_the_invoice_and_each_consented_statement(s: Scratch) {
    let running = s.start().await;
    let hub = running.hub.clone();
    let quarantine = Tap::subscribed(hub.bus.as_ref(), &hub.topology.quarantine()).await;
    let dead = Tap::subscribed(hub.bus.as_ref(), &hub.topology.dead()).await;
    grant_claims_to_every_recipient(&hub, CONSENTED).await;

    let parts = [
        "outcome: accepted-in-part",
        "documents: 3",
        "refused: 1",
        "document 3 (ClaimStatement@1): consent-denied:no-consent",
        // Record 9's field after the 10 layout's last, told to the sender too (no value).
        "warning: record 9 (line 9), column 41: 1 value kept: after the last item of its layout",
    ];
    let personal = [
        CONSENTED.1,
        SILENT.1,
        "00131011",
        "19400405",
        "19380212",
        "REV",
    ];
    let inbox = s.inbox(PROVIDER);
    let bytes = sample("claims/d0711b.csv");
    let (_, envelope) = drop_and_read_report(&inbox, FILE, &bytes, &parts, &personal).await;

    // The invoice and the consented person's statement reach the insurer as the goldens are.
    let out = s.out_dir(MUNICIPALITY);
    let invoice = sample_docs("claims/d0711b.claim-invoice.json");
    let statements = sample_docs("claims/d0711b.claim-statement.json");
    for (i, want) in [(0, &invoice[0]), (1, &statements[0])] {
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
    assert_eq!(kept[0].header(h::DOC_INDEX), Some("2"));
    assert_eq!(kept[0].header(h::DOCUMENT), Some("ClaimStatement@1"));
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
        "nobody else subscribes"
    );
    assert_eq!(quarantine.all().len(), 1, "{:#?}", quarantine.all());
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    // Record 9's field after the 10 layout's last (a later revision's) is kept and reported once
    // (logged with the envelope id, counted), never refused.
    assert_eq!(
        hub.metrics
            .mapping_warnings
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

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
    let statement = "ClaimStatement@1";
    assert!(
        count("consent", "permit", statement, Some(&consented)) >= 2,
        "{events:#?}"
    );
    assert!(
        count("consent", "deny", statement, Some(&silent)) >= 1,
        "{events:#?}"
    );
    assert_eq!(
        count("consent", "permit", statement, Some(&silent)),
        0,
        "{events:#?}"
    );
    // One delivery per recipient: canonical, FHIR, CSV.
    assert_eq!(
        count("deliver", "delivered", statement, Some(&consented)),
        3,
        "{events:#?}"
    );
    assert_eq!(
        count("deliver", "delivered", "ClaimInvoice@1", None),
        3,
        "{events:#?}"
    );
    let invoice_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["document"] == "ClaimInvoice@1")
        .collect();
    assert!(
        invoice_events
            .iter()
            .all(|e| e["hop"] != "consent" && e.get("subject").is_none_or(Value::is_null)),
        "no consent and no subject for the invoice: {invoice_events:#?}"
    );
    let text = serde_json::to_string(&events).expect("JSON");
    for value in personal {
        assert!(!text.contains(value), "`{value}` in the audit trail");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claims_file_delivers_the_invoice_and_each_consented_statement_in_memory() {
    let s = Scratch::memory("statement-mem", three_formats);
    a_claims_file_delivers_the_invoice_and_each_consented_statement(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claims_file_delivers_the_invoice_and_each_consented_statement_on_rabbitmq() {
    let s = Scratch::rabbit("statement-rmq", three_formats);
    a_claims_file_delivers_the_invoice_and_each_consented_statement(s).await;
}

/// A recipient whose format is `csv` for the claims kinds gets each delivered document as a
/// whole 国保連 file (claims-711-csv): the 請求書 framed alone, the consented person's 明細書
/// framed alone, each with its own 件数 and record numbers; the other person's is held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_csv_recipient_receives_each_document_as_a_whole_claims_file() {
    let s = Scratch::memory("statement-csv", |p| {
        let csv = |kind: &str, p: String| {
            let from = format!("{{ document: {kind}, format: canonical }}");
            assert!(
                p.contains(&from),
                "parties.yaml subscribes 131011 to {kind}"
            );
            p.replacen(&from, &format!("{{ document: {kind}, format: csv }}"), 1)
        };
        csv("ClaimStatement@1", csv("ClaimInvoice@1", p))
    });
    let running = s.start().await;
    let hub = running.hub.clone();
    grant_claims_to_every_recipient(&hub, CONSENTED).await;
    let text = String::from_utf8(sample("claims/d0711b.csv")).expect("ASCII sample");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    let control = |count: usize| format!("1,1,0,{count},711,0,000000,0300000005,00,1,202511,0\r\n");
    // The 請求書: the sample's record 2 between a control record of 件数 1 and the end record 3.
    let invoice = format!("{}{}\r\n3,3\r\n", control(1), lines[1]);
    // The first person's 明細書: records 3–6 of the sample, numbered 2–5, 件数 4, end record 6.
    let mut statement = control(4);
    for (i, l) in lines[2..6].iter().enumerate() {
        let rest = l
            .strip_prefix(&format!("2,{},", i + 3))
            .expect("numbered record");
        statement.push_str(&format!("2,{},{rest}\r\n", i + 2));
    }
    statement.push_str("3,6\r\n");
    assert!(
        statement.contains("\"0000012345\""),
        "the consented person's records"
    );

    let parts = ["outcome: accepted-in-part", "documents: 3", "refused: 1"];
    let personal = [CONSENTED.1, SILENT.1, "00131011", "19400405", "19380212"];
    let (_, envelope) =
        drop_and_read_report(&s.inbox(PROVIDER), FILE, text.as_bytes(), &parts, &personal).await;
    let out = s.out_dir(MUNICIPALITY);
    for (i, want) in [(0, &invoice), (1, &statement)] {
        let name = format!("{envelope}-{i}.csv");
        let (_, body) = wait_for_file(&out, "a delivered claims file", |n| n == name).await;
        assert_eq!(
            String::from_utf8_lossy(&body),
            want.as_str(),
            "document {i}"
        );
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        files(&out).len(),
        2,
        "the held-back statement is not delivered"
    );
    running.stop().await;
}

/// A 明細書 whose 01 基本情報 record is missing: the file is refused, its error naming the record
/// of that 明細書 and `documents.head`, never the person's numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_without_its_basic_record_is_refused_naming_the_line() {
    let s = Scratch::memory("statement-no-01", |p| p);
    let running = s.start().await;
    let text = String::from_utf8(sample("claims/d0711b.csv")).expect("ASCII sample");
    let basic = text
        .lines()
        .find(|l| l.starts_with("2,7,"))
        .expect("the second person's 01 record");
    assert!(basic.contains("\"7131\",\"01\""), "{basic}");
    let cut = text.replacen(&format!("{basic}\r\n"), "", 1);
    let parts = [
        "outcome: malformed",
        "record 7 (line 7): its document has no member that meets `documents.head`",
        "rule `documents.head` in claims-statement.yaml:",
    ];
    let personal = [SILENT.1, "00131011", "19380212"];
    let inbox = s.inbox(PROVIDER);
    drop_and_read_error(&inbox, FILE, cut.as_bytes(), &parts, &personal).await;
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "nothing delivered"
    );
    running.stop().await;
}

/// A record whose 交換情報識別番号 no claims mapping reads (here `7193`, in the place of the
/// second person's 02 record) is never passed over: the whole file is refused, its report naming
/// the record and what each mapping that reads the file takes, and nothing is delivered — not
/// even the 請求書 and the 明細書 that read well.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_no_claims_mapping_reads_refuses_the_file_naming_it() {
    let s = Scratch::memory("statement-unread", |p| p);
    let running = s.start().await;
    grant_claims_to_every_recipient(&running.hub, CONSENTED).await;
    let text = String::from_utf8(sample("claims/d0711b.csv")).expect("ASCII sample");
    let unknown = text.replacen("2,8,\"7131\",\"02\"", "2,8,\"7193\",\"02\"", 1);
    assert_ne!(unknown, text, "record 8 is the second person's 02 record");
    let parts = [
        "outcome: malformed",
        "record 8 (line 8): no mapping that reads this input takes this record",
        "`claims-invoice` takes records where `1` is `2` and `3` is `7111`",
        "`claims-statement` takes records where `1` is `2` and `3` is one of `7131`, `7132`, `7183`",
        "rule `documents.frame` in ",
    ];
    let personal = [CONSENTED.1, SILENT.1, "00131011", "19400405", "19380212"];
    drop_and_read_error(
        &s.inbox(PROVIDER),
        FILE,
        unknown.as_bytes(),
        &parts,
        &personal,
    )
    .await;
    tokio::time::sleep(QUIET).await;
    assert!(
        files(&s.out_dir(MUNICIPALITY)).is_empty(),
        "nothing delivered"
    );
    running.stop().await;
}

/// 様式第二の二 (7132, 介護予防) has the 7131 layout: the same records read as a 7132 明細書 give
/// the golden with only `form` changed; and the 様式 is part of what makes one 明細書.
#[test]
fn a_7132_statement_reads_as_the_7131_layout() {
    let text = String::from_utf8(sample("claims/d0711b.csv")).expect("ASCII sample");
    let first: String = text
        .split_inclusive("\r\n")
        .map(
            |l| match l.contains("\"0000012345\"") && l.starts_with("2,") {
                true => l.replacen("\"7131\"", "\"7132\"", 1),
                false => l.to_string(),
            },
        )
        .collect();
    assert_eq!(first.matches("\"7132\"").count(), 4, "01, two 02, 10");
    let o = translate_statements(&first, "7132");
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
    let mut want = sample_docs("claims/d0711b.claim-statement.json");
    want[0]["form"] = "7132".into();
    assert_eq!(made, want);

    // One person's 7131 and 7132 of a month are two 明細書: here the 7132 one (a 02 line) has no 01.
    let mixed = text.replacen("2,4,\"7131\"", "2,4,\"7132\"", 1);
    let o = translate_statements(&mixed, "7132-mixed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("record 4 (line 4): its document has no member"),
        "{err}"
    );
}

/// A record kind a 7131 明細書 does not have (04 特定診療費, or an unknown code) is never passed
/// over: the file is refused at that record, its line and column 4 (the レコード種別コード),
/// by `documents.members`; the code is said to the file's own user (`translate`), the person's
/// numbers never.
#[test]
fn a_record_kind_the_statement_does_not_read_is_refused_naming_its_line() {
    let text = String::from_utf8(sample("claims/d0711b.csv")).expect("ASCII sample");
    let extra = "2,7,\"7131\",\"04\",\"202510\",\"0300000005\",\"00131011\",\"0000012345\",\"99\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\r\n";
    for (code, tag) in [("04", "kind-04"), ("77", "kind-77")] {
        // After the first person's 10 record (line 6): a 04 of the same 明細書, line 7.
        let line = extra.replacen("\"04\"", &format!("\"{code}\""), 1);
        let at = text.find("2,7,").expect("the second person's first record");
        let file = format!("{}{line}{}", &text[..at], &text[at..]);
        let o = translate_statements(&file, tag);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "record 7 (line 7), column 4: `{code}` is not allowed: `documents.members` wants `4` to be one of `01`, `02`, `10`, `11`, `12`"
            )),
            "{err}"
        );
        assert!(
            err.contains("rule `documents.members` in mappings/claims-statement.yaml:"),
            "{err}"
        );
        for personal in ["0000012345", "00131011", "19400405"] {
            assert!(!err.contains(personal), "{personal} in {err}");
        }
    }
}

/// Each claims mapping fits the データ種別 it reads and no other: a 711 file is read by the
/// 請求書 and 明細書 mappings, a 812 file by the 請求書 and 様式第七 ones, a 821 file by the
/// 給付管理票 one, a 531 file by the 異動 one.
#[test]
fn each_claims_mapping_fits_only_its_data_kind() {
    use kaigo_hub::mapping::{Input, MappingSet};
    let set = MappingSet::load_dir(&repo().join("mappings")).expect("mappings load");
    for (file, want) in [
        // A 711 file may also hold 8124/8125 明細書 (claims-csv §2.2): that mapping fits it too.
        (
            "claims/d0711b.csv",
            vec![
                "claims-care-management-statement",
                "claims-invoice",
                "claims-statement",
            ],
        ),
        (
            "claims/d0812a.csv",
            vec!["claims-care-management-statement", "claims-invoice"],
        ),
        ("claims/d0821a.csv", vec!["claims-benefit-management"]),
        (
            "claims/10_531131011202510.csv",
            vec!["claims-5311-recipient-change"],
        ),
    ] {
        let bytes = sample(file);
        let t = set
            .translate(
                Input {
                    bytes: &bytes,
                    file_name: None,
                },
                None,
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut ids: Vec<String> = t
            .ids()
            .split(',')
            .map(|s| s.split('@').next().unwrap_or("").to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, want, "{file}");
    }
}

/// `kaigo-hub translate --mapping claims-statement` of `text` as a file `d0711b.csv`.
fn translate_statements(text: &str, tag: &str) -> std::process::Output {
    translate_as_file(text, FILE, "claims-statement", tag)
}
