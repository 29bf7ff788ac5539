//! The 国保連 claims CSV written back (issue 17): the shipped samples read by the inbound claims
//! mappings and written by the outbound ones (claims-711-csv, claims-821-csv) give back the
//! very bytes of the file; the documents of one input go into one file, with its control and
//! end records, counts and record numbers computed; documents of two files, or a total that
//! differs from its lines, are refused; and a property test: any file the writer makes of
//! documents within the schema (請求書 and 明細書, 給付管理票, 受給者異動連絡票) reads back to the
//! same documents.

use kaigo_hub::mapping::{Input, MappingSet, Rendered, TranslateError};
use kaigo_hub::redact::Disclose;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| match MappingSet::load_dir(&root().join("mappings")) {
        Ok(set) => set,
        Err(errors) => panic!(
            "mappings do not load:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    })
}

fn sample(name: &str) -> Vec<u8> {
    let p = root().join("samples/claims").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn translate(bytes: &[u8], name: Option<&str>) -> Result<Vec<Value>, TranslateError> {
    let tr = mappings().translate(
        Input {
            bytes,
            file_name: name,
        },
        None,
    )?;
    Ok(tr
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("translate returns JSON"))
        .collect())
}

fn render_csv(docs: &[Value]) -> Result<Vec<u8>, TranslateError> {
    match mappings().render(docs, "csv", None)? {
        Rendered::Csv(bytes) => Ok(bytes),
        Rendered::Json(_) => panic!("`--to csv` rendered JSON"),
    }
}

fn text(bytes: &[u8]) -> String {
    let (t, _, bad) = encoding_rs::SHIFT_JIS.decode(bytes);
    assert!(!bad, "the file is MS932");
    t.into_owned()
}

#[test]
fn the_shipped_claims_files_come_back_byte_for_byte() {
    for name in [
        "d0711a.csv",
        "d0711b.csv",
        "d0711c.csv",
        "d0812a.csv",
        "d0821a.csv",
    ] {
        let bytes = sample(name);
        let docs = translate(&bytes, Some(name)).expect("the sample reads");
        let out = render_csv(&docs).unwrap_or_else(|e| panic!("{name}: {}", e.for_sender()));
        assert_eq!(text(&out), text(&bytes), "{name}");
        assert_eq!(out, bytes, "{name}: the same bytes");
    }
}

/// Fields after a layout's last item (a later interface revision's) are kept verbatim in the
/// record's `extra_fields`, empty ones and kanji included, written back where they were, and
/// reported as warnings that name the record, the column and the rule, never the values.
#[test]
fn a_later_revisions_trailing_fields_are_kept_reported_and_written_back() {
    // d0711b's record 9 (a 10 record) carries `"REV"` after its 38 items; d0711c's 7111 record
    // (line 2) and 02 record (line 4) get two and one more here.
    let sample_b = sample("d0711b.csv");
    let docs = translate(&sample_b, Some("d0711b.csv")).expect("the sample reads");
    assert_eq!(docs[2]["totals"][0]["extra_fields"], json!(["REV"]));
    let mut lines: Vec<String> = text(&sample("d0711c.csv"))
        .split_terminator("\r\n")
        .map(String::from)
        .collect();
    assert!(lines[1].starts_with("2,2,\"7111\""), "{}", lines[1]);
    assert!(lines[3].starts_with("2,4,\"7183\",\"02\""), "{}", lines[3]);
    lines[1].push_str(",\"\",\"改定\"");
    lines[3].push_str(",\"X1\"");
    let later: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&later);
    let tr = mappings()
        .translate(
            Input {
                bytes: &bytes,
                file_name: Some("later.csv"),
            },
            None,
        )
        .expect("a later revision's file reads");
    let docs: Vec<Value> = tr
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("JSON"))
        .collect();
    assert_eq!(
        docs[0]["extra_fields"],
        json!(["", "改定"]),
        "empty kept in place"
    );
    let statement = docs
        .iter()
        .find(|d| d["document"] == "ClaimStatement@1")
        .expect("a 明細書");
    assert_eq!(statement["details"][0]["extra_fields"], json!(["X1"]));
    let said: Vec<String> = tr
        .warnings
        .iter()
        .map(|(id, w)| format!("{id}: {w}"))
        .collect();
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[0].starts_with("claims-invoice: record 2 (line 2), column 21: 2 values kept: after the last item of its layout: a later interface revision's fields (claims-csv.md §2.4) (rule `extra_fields` in "),
        "{said:#?}"
    );
    assert!(
        said[1].starts_with("claims-statement: record 4 (line 4), column 21: 1 value kept: after the last item of its layout") && said[1].contains("(rule `details[+].extra_fields` in "),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .all(|w| !w.contains("改定") && !w.contains("X1"))
    );
    let out = render_csv(&docs).expect("renders");
    assert_eq!(text(&out), later);
    assert_eq!(out, bytes.into_owned(), "the same bytes");
}

/// A CSV file's records as lists of field texts (quotes removed).
fn records(bytes: &[u8]) -> Vec<Vec<String>> {
    let f = kaigo_hub::formats::csv::parse(bytes, &Default::default()).expect("CSV");
    (0..f.record_count())
        .map(|r| {
            (0..f.field_count(r))
                .map(|c| f.field(r, c).unwrap_or_default().into_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_reams_5311_file_comes_back_as_the_same_records_in_qkan_style() {
    let name = "10_531131011202510.csv";
    let bytes = sample(name);
    let docs = translate(&bytes, Some(name)).expect("the sample reads");
    assert_eq!(docs.len(), 3);
    assert!(docs.iter().all(|d| d["document"] == "RecipientChange@1"));
    let out = render_csv(&docs).expect("renders");
    // The same documents read back from what was written …
    let back = translate(&out, Some(name)).expect("the file written reads");
    assert_eq!(back, docs);
    // … and the same records, but for REAMS's quirks: every data record numbered 2, 件数 1,
    // a ブランク field holding `0x0D0A` (control, data and end records).
    let mut expected = records(&bytes);
    let last = expected.len() - 1;
    expected[0][3] = "3".into();
    expected[0].truncate(12);
    for (i, r) in expected.iter_mut().enumerate().skip(1).take(3) {
        r[1] = (i + 1).to_string();
        r[79] = String::new();
    }
    expected[last].truncate(2);
    assert_eq!(records(&out), expected);
    let out = text(&out);
    assert!(
        out.starts_with("1,1,0,3,531,0,131011,0,0,1,202510,1\r\n2,2,\"5311\",\"20251001\","),
        "{out}"
    );
    assert!(
        out.contains(",\"ｶｲｺﾞ ﾀﾛｳ\","),
        "half-width kana as it came: {out}"
    );
    assert!(out.ends_with("\"\"\r\n3,5\r\n"), "{out}");
}

/// The warnings a file's translation gives, each as `mapping: Display`.
fn warnings(bytes: &[u8], name: &str) -> Vec<String> {
    mappings()
        .translate(
            Input {
                bytes,
                file_name: Some(name),
            },
            None,
        )
        .expect("reads")
        .warnings
        .iter()
        .map(|(id, w)| format!("{id}: {w}"))
        .collect()
}

/// A file's account of itself (claims-csv.md §2.4): REAMS's record numbers (`2` on every data
/// record) and 件数 (`1`) are read all the same and reported once each; the same faults in a 711
/// file, which three mappings read, are reported once, not once per mapping; a file whose last
/// record is no end record is refused as cut short, at that record.
#[test]
fn record_numbers_and_counts_are_warned_of_and_a_file_cut_short_is_refused() {
    let reams = warnings(&sample("10_531131011202510.csv"), "10_531131011202510.csv");
    assert_eq!(reams.len(), 2, "{reams:#?}");
    assert!(reams[0].starts_with("claims-5311-recipient-change: record 3 (line 3), column 2: 2 of the 5 records do not hold their number in the file (1, 2, 3 …) in column 2; read all the same (rule `source.record_number` in "), "{reams:#?}");
    assert!(reams[1].starts_with("claims-5311-recipient-change: record 1 (line 1), column 4: the count `/4` states is not the input's 3 records where `1` is `2`; read all the same (rule `source.count` in "), "{reams:#?}");
    assert!(warnings(&sample("d0711a.csv"), "d0711a.csv").is_empty());

    let a = text(&sample("d0711a.csv"));
    let off = a
        .replacen("1,1,0,2,", "1,1,0,7,", 1)
        .replacen("2,3,", "2,9,", 1);
    let said = warnings(off.as_bytes(), "d0711a.csv");
    assert_eq!(
        said.len(),
        2,
        "once each, whichever mapping said it: {said:#?}"
    );
    assert!(
        said[0].contains("record 3 (line 3), column 2: 1 of the 4 records"),
        "{said:#?}"
    );
    assert!(
        said[1].contains(
            "record 1 (line 1), column 4: the count `/4` states is not the input's 2 records"
        ),
        "{said:#?}"
    );

    // A record shorter than its layout (here the first 7111 line without its last field) is read,
    // its missing items empty, and said.
    let short = a.replacen(",\"\",\"\"\r\n2,3,", ",\"\"\r\n2,3,", 1);
    assert_ne!(short, a);
    let said = warnings(short.as_bytes(), "d0711a.csv");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(
        said[0].starts_with("claims-invoice: record 2 (line 2): the record has 19 fields, fewer than the 20 before `21..`: the missing ones are read as empty (rule `extra_fields` in "),
        "{said:#?}"
    );

    let cut = a.replacen("3,4\r\n", "", 1);
    let e = translate(cut.as_bytes(), Some("d0711a.csv"))
        .expect_err("no end record")
        .to_string();
    assert!(
        e.starts_with("record 3 (line 3): the input's last record is not what `source.last` wants (`1` is `3`): the file may be cut short, so it is refused rather than read in part (rule `source.last` in "),
        "{e}"
    );
}

#[test]
fn one_input_is_one_file_with_its_records_counted_and_numbered() {
    let docs = translate(&sample("d0711b.csv"), None).expect("reads");
    let out = text(&render_csv(&docs).expect("renders"));
    let lines: Vec<&str> = out.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 11, "{out}");
    assert!(out.ends_with("\r\n") && !out.contains("\r\n\r\n"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("1,")).count(), 1);
    assert_eq!(lines.iter().filter(|l| l.starts_with("3,")).count(), 1);
    assert!(lines[0].starts_with("1,1,0,9,711,"), "件数 9: {}", lines[0]);
    for (i, l) in lines.iter().enumerate().skip(1).take(9) {
        assert!(
            l.starts_with(&format!("2,{},\"", i + 1)),
            "record {}: {l}",
            i + 1
        );
    }
    assert_eq!(lines[10], "3,11");

    // A 明細書 alone (what deliver renders for one document) is a whole file of its own.
    let alone = text(&render_csv(&docs[2..]).expect("renders"));
    let lines: Vec<&str> = alone.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 6, "{alone}");
    assert!(lines[0].starts_with("1,1,0,4,711,0,000000,0300000005,00,1,202511,0"));
    assert!(lines[1].starts_with("2,2,\"7131\",\"01\","), "{}", lines[1]);
    assert_eq!(lines[5], "3,6");
}

#[test]
fn documents_of_two_files_are_refused_not_joined() {
    let mut docs = translate(&sample("d0711b.csv"), None).expect("reads");
    docs[2]["file"]["control_number"] = json!("1");
    let e = render_csv(&docs).expect_err("two files");
    assert!(matches!(e, TranslateError::SeveralFiles(2)), "{e}");
    assert!(e.to_string().contains("file.group_by"), "{e}");

    // A 請求書 and a 給付管理票 are two files (two framed mappings).
    let mut both = translate(&sample("d0711a.csv"), None).expect("reads");
    both.extend(translate(&sample("d0821a.csv"), None).expect("reads"));
    assert!(matches!(
        render_csv(&both),
        Err(TranslateError::SeveralFiles(2))
    ));
}

#[test]
fn a_total_that_differs_from_its_lines_is_refused_naming_the_rule() {
    let mut docs = translate(&sample("d0821a.csv"), None).expect("reads");
    docs[0]["total"]["planned_units"] = json!(6885);
    let e = render_csv(&docs).expect_err("6885 is not 2684 + 3000 + 1200");
    let shown = e.to_string();
    assert!(shown.contains("records[+total].26"), "{shown}");
    assert!(shown.contains("sum: lines.planned_units"), "{shown}");
    assert!(shown.contains("claims-821-csv.yaml"), "{shown}");
    assert!(!shown.contains("0000012345"), "no 被保険者番号: {shown}");

    // Without a stored total the sum is written.
    let mut docs = translate(&sample("d0821a.csv"), None).expect("reads");
    docs[0]["total"]
        .as_object_mut()
        .expect("total")
        .remove("planned_units");
    let out = text(&render_csv(&docs).expect("renders"));
    assert!(out.contains(",\"6884\",\"03100001\","), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Property: documents within the schema → file → the same documents.
// ---------------------------------------------------------------------------------------------

/// The control record's items every document of the file carries.
fn control() -> Value {
    json!({ "medium": "1", "processing_month": "2025-11", "control_number": "0" })
}

/// The same, with the データ種別 the 請求書 and 明細書 readers keep (`711`, or `812` for QKAN's
/// file of 様式第七 only).
fn claims_control(data_type: &str) -> Value {
    let mut c = control();
    c["data_type"] = json!(data_type);
    c
}

fn amount() -> impl Strategy<Value = i64> {
    0i64..5_000_000
}

/// Free text of a remarks field: MS932 characters, commas and quotes included (never empty: an
/// empty field is no value).
fn remark() -> impl Strategy<Value = String> {
    "[A-Za-z0-9,\"介護摘要ｱｲ]{1,10}"
}

fn month() -> impl Strategy<Value = String> {
    (2020u32..2030, 1u32..=12).prop_map(|(y, m)| format!("{y}-{m:02}"))
}

fn day() -> impl Strategy<Value = String> {
    (1930u32..2030, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}"))
}

/// A later revision's trailing fields: none mostly, else a few texts, empty ones included.
fn extra() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec("[A-Z0-9改]{0,3}", 1..3),
    ]
}

fn three() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(
        (0i64..99, 0i64..99, 0i64..99)
            .prop_map(|(a, b, c)| json!({ "public_1": a, "public_2": b, "public_3": c })),
    )
}

fn invoice() -> impl Strategy<Value = Value> {
    (
        month(),
        prop_oneof![Just("1"), Just("2")],
        prop_oneof![Just("00"), Just("12"), Just("81")],
        prop_oneof![Just("01"), Just("02")],
        proptest::collection::vec(amount(), 6),
        proptest::option::of(proptest::collection::vec(amount(), 6)),
        extra(),
    )
        .prop_map(|(m, payer, law, class, s, resident, extra)| {
            let mut d = json!({
                "document": "ClaimInvoice@1", "form": "7111", "service_month": m,
                "provider_number": "0300000005", "payer": payer, "law_number": law,
                "claim_class": class,
                "services": { "count": s[0], "units": s[1], "total_cost": s[2],
                              "insurance_claim": s[3], "public_claim": s[4], "user_share": s[5] },
                "file": claims_control("711"), "source": { "sender": "0300000005" }
            });
            if let Some(r) = resident {
                d["specified_resident"] = json!({ "count": r[0], "days": r[1], "total_cost": r[2],
                    "user_share": r[3], "public_claim": r[4], "insurance_claim": r[5] });
            }
            if !extra.is_empty() {
                d["extra_fields"] = json!(extra);
            }
            d
        })
}

fn detail() -> impl Strategy<Value = Value> {
    (
        "[0-9A-Z]{2}",
        "[0-9A-Z]{4}",
        proptest::option::of(amount()),
        proptest::option::of(0i64..31),
        three(),
        amount(),
        three(),
        proptest::option::of(remark()),
        extra(),
    )
        .prop_map(|(st, item, uv, count, pc, units, pu, remarks, extra)| {
            let mut d = json!({ "service_type": st, "service_item": item, "units": units });
            put(&mut d, "unit_value", uv.map(Value::from));
            put(&mut d, "count", count.map(Value::from));
            put(&mut d, "public_counts", pc);
            put(&mut d, "public_units", pu);
            put(&mut d, "remarks", remarks.map(Value::from));
            if !extra.is_empty() {
                d["extra_fields"] = json!(extra);
            }
            d
        })
}

fn totals() -> impl Strategy<Value = Value> {
    (
        "[0-9]{2}",
        proptest::collection::vec(proptest::option::of(0i64..10_000), 6),
        (amount(), 1u32..20, 0u32..100, amount(), amount()),
        proptest::option::of((amount(), amount(), amount())),
        proptest::option::of((amount(), amount(), amount())),
    )
        .prop_map(|(st, opt, (units, yen, sen, claim, share), p1, med)| {
            let mut d = json!({ "service_type": st, "insurance": {
                "units": units, "unit_price": format!("{yen}.{sen:02}"),
                "claim": claim, "user_share": share } });
            for (k, v) in [
                "service_days",
                "planned_units",
                "capped_units",
                "uncapped_units",
                "short_stay_planned_days",
                "short_stay_days",
            ]
            .iter()
            .zip(opt)
            {
                put(&mut d, k, v.map(Value::from));
            }
            let three =
                |(u, c, o): (i64, i64, i64)| json!({ "units": u, "claim": c, "own_share": o });
            put(&mut d, "public_1", p1.map(three));
            put(&mut d, "insurance_medical", med.map(three));
            d
        })
}

fn specified() -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec(
        (
            "[0-9]{2}",
            "[0-9]{4}",
            0i64..5000,
            proptest::option::of(0i64..2000),
            0i64..31,
            amount(),
            amount(),
            amount(),
        ),
        0..3,
    )
    .prop_map(|items| {
        let n = items.len();
        let mut out: Vec<Value> = items
            .into_iter()
            .enumerate()
            .map(|(i, (st, item, unit, limit, days, cost, claim, share))| {
                let sequence = if i + 1 == n {
                    "99".to_string()
                } else {
                    format!("{:02}", i + 1)
                };
                let mut d = json!({ "sequence": sequence, "service_type": st,
                    "service_item": item, "unit_cost": unit, "days": days, "cost": cost,
                    "insurance_claim": claim, "user_share": share });
                put(&mut d, "limit", limit.map(Value::from));
                d
            })
            .collect();
        // The 99 line carries the sums of the 11 records (claims-csv §5.5).
        let sum = |k: &str| out.iter().map(|d| d[k].as_i64().unwrap_or(0)).sum::<i64>();
        let totals = json!({ "total_cost": sum("cost"), "insurance_claim": sum("insurance_claim"),
                             "user_share": sum("user_share") });
        if let Some(last) = out.last_mut() {
            last["totals"] = totals;
        }
        out
    })
}

fn statement(insured: String) -> impl Strategy<Value = Value> {
    (
        (
            prop_oneof![Just("7131"), Just("7132"), Just("7183")],
            month(),
            day(),
            prop_oneof![Just("male"), Just("female")],
            prop_oneof![Just("12"), Just("13"), Just("21"), Just("22"), Just("25")],
            proptest::option::of(prop_oneof![Just("1"), Just("2"), Just("3")]),
            proptest::option::of(day()),
            proptest::option::of(0i64..31),
        ),
        (
            prop_oneof![Just(70i64), Just(80), Just(90)],
            amount(),
            amount(),
            amount(),
            proptest::option::of(amount()),
        ),
        proptest::collection::vec(detail(), 1..4),
        proptest::collection::vec(totals(), 1..3),
        specified(),
        proptest::option::of((0i64..1000, amount(), amount(), amount(), proptest::option::of(remark()))),
    )
        .prop_map(
            move |(
                (form, m, birth, sex, level, author, admitted, days_in),
                (rate, units, claim, share, resident_claim),
                details,
                totals,
                specified,
                reduction,
            )| {
                let mut basic = json!({ "birth_date": birth, "sex": sex, "care_level": level,
                    "certified_from": "2025-04-01", "certified_to": "2026-03-31",
                    "insurance": { "rate": rate, "units": units, "claim": claim, "user_share": share } });
                put(&mut basic, "plan_author", author.map(Value::from));
                put(&mut basic, "admitted_on", admitted.map(Value::from));
                put(&mut basic, "days_in", days_in.map(Value::from));
                put(
                    &mut basic["insurance"],
                    "specified_resident_claim",
                    resident_claim.map(Value::from),
                );
                let mut d = json!({
                    "document": "ClaimStatement@1", "form": form, "service_month": m,
                    "provider_number": "0300000005",
                    "subject": { "insurer_number": "131011", "insured_number": insured },
                    "card_insurer_number": "00131011", "basic": basic,
                    "details": details, "totals": totals,
                    "file": claims_control("711"), "source": { "sender": "0300000005" }
                });
                if !specified.is_empty() {
                    d["specified_resident"] = Value::Array(specified);
                }
                if let Some((rate, due, cut, after, remarks)) = reduction {
                    let mut r = json!({ "rate": rate.to_string(), "service_type": "11",
                        "user_share_due": due, "reduction": cut, "user_share_after": after });
                    put(&mut r, "remarks", remarks.map(Value::from));
                    d["reductions"] = json!([r]);
                }
                d
            },
        )
}

/// A 様式第七 / 第七の二 明細書 (claims-csv §6): one to four lines, the last numbered `99` with
/// the totals: サービス単位数合計 the sum of the lines, 請求金額 ⌊合計 × 単価⌋.
fn care_management(insured: String, data_type: &'static str) -> impl Strategy<Value = Value> {
    (
        (
            prop_oneof![Just("8124"), Just("8125")],
            "[1-5]",
            month(),
            prop_oneof![Just("131011"), Just("00131011")],
            prop_oneof![Just(1000i64), Just(1040), Just(1090), Just(1140)],
            proptest::option::of(("[0-9]{8}", proptest::option::of("[0-9]{7}"))),
        ),
        (
            day(),
            prop_oneof![Just("male"), Just("female")],
            prop_oneof![Just("12"), Just("13"), Just("21"), Just("22"), Just("25")],
            proptest::option::of(day()),
        ),
        proptest::collection::vec(
            (
                "[0-9A-Z]{6}",
                proptest::option::of(0i64..5000),
                proptest::option::of(0i64..10),
                0i64..5000,
                proptest::option::of("[0-9]{8}"),
                proptest::option::of(remark()),
            ),
            1..5,
        ),
    )
        .prop_map(
            move |((form, class, m, card, price, public), (birth, sex, level, notified), lines)| {
                let n = lines.len();
                let lines: Vec<Value> = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (code, value, count, units, manager, remarks))| {
                        let no = if i + 1 == n {
                            "99".to_string()
                        } else {
                            format!("{:02}", i + 1)
                        };
                        let mut l = json!({ "line": no, "service_code": code, "units": units });
                        put(&mut l, "unit_value", value.map(Value::from));
                        put(&mut l, "count", count.map(Value::from));
                        put(&mut l, "care_manager", manager.map(Value::from));
                        put(&mut l, "remarks", remarks.map(Value::from));
                        l
                    })
                    .collect();
                let units: i64 = lines.iter().map(|l| l["units"].as_i64().unwrap_or(0)).sum();
                let mut d = json!({
                    "document": "CareManagementStatement@1", "form": form,
                    "provider_number": "0300000100", "provider_class": class, "service_month": m,
                    "subject": { "insurer_number": "131011", "insured_number": insured },
                    "card_insurer_number": card,
                    "unit_price": format!("{}.{:02}", price / 100, price % 100),
                    "birth_date": birth, "sex": sex, "care_level": level,
                    "certified_from": "2025-04-01", "certified_to": "2026-03-31",
                    "lines": lines,
                    "total": { "units": units, "claim": units * price / 100 },
                    "file": claims_control(data_type), "source": { "sender": "0300000100" }
                });
                if let Some((payer, recipient)) = public {
                    let mut p = json!({ "payer_number": payer });
                    put(&mut p, "recipient_number", recipient.map(Value::from));
                    d["public"] = p;
                }
                put(&mut d, "plan_notified_on", notified.map(Value::from));
                d
            },
        )
}

fn benefit_management(insured: String) -> impl Strategy<Value = Value> {
    (
        month(),
        day(),
        prop_oneof![Just("male"), Just("female")],
        0i64..40_000,
        proptest::collection::vec(
            (
                "[0-9]{2}",
                0i64..10_000,
                proptest::option::of(0i64..31),
                proptest::option::of(amount()),
            ),
            1..5,
        ),
        proptest::option::of("[0-9]{8}"),
    )
        .prop_map(move |(m, created, sex, cap, lines, manager)| {
            let lines: Vec<Value> = lines
                .into_iter()
                .enumerate()
                .map(|(i, (st, units, prior, sub))| {
                    let mut l = json!({ "line": format!("{:02}", i + 1),
                        "provider_number": "0300000005", "provider_class": "1",
                        "service_type": st, "planned_units": units });
                    put(&mut l, "prior_days", prior.map(Value::from));
                    put(&mut l, "designated_subtotal", sub.map(Value::from));
                    l
                })
                .collect();
            let planned: i64 = lines
                .iter()
                .map(|l| l["planned_units"].as_i64().unwrap_or(0))
                .sum();
            let mut total = json!({ "planned_units": planned });
            put(&mut total, "care_manager", manager.map(Value::from));
            json!({
                "document": "BenefitManagement@1", "service_month": m,
                "plan_office": "0300000100",
                "subject": { "insurer_number": "131011", "insured_number": insured },
                "card_insurer_number": "00131011", "creation": "1", "created_on": created,
                "sheet_kind": "3", "birth_date": "1940-04-05", "sex": sex, "care_level": "22",
                "cap_from": "2025-04", "cap_to": "2026-03", "cap_units": cap, "plan_author": "1",
                "lines": lines, "total": total,
                "file": control(), "source": { "sender": "0300000100" }
            })
        })
}

fn put(d: &mut Value, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        d[key] = v;
    }
}

/// Each person once: a 明細書 or 給付管理票 is keyed by its person (and month, office …).
fn insured(i: usize) -> String {
    format!("{:010}", 12_345 + i)
}

fn claims_file() -> impl Strategy<Value = Vec<Value>> {
    (
        proptest::collection::vec(invoice(), 0..3),
        (0usize..4).prop_flat_map(|n| (0..n).map(|i| statement(insured(i))).collect::<Vec<_>>()),
    )
        .prop_filter("a file holds a document", |(i, s)| {
            !i.is_empty() || !s.is_empty()
        })
        .prop_map(|(mut invoices, statements)| {
            // translate gives the 請求書 (claims-invoice.yaml) before the 明細書.
            invoices.extend(statements);
            invoices
        })
}

/// A care manager's file: its 請求書 (none to two) and one to three 様式第七 明細書, under
/// データ種別 `812` (QKAN's file of 様式第七 only) or `711`.
fn care_management_file() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![Just("812"), Just("711")].prop_flat_map(|data_type| {
        (
            proptest::collection::vec(invoice(), 0..3),
            (1usize..4).prop_flat_map(move |n| {
                (0..n)
                    .map(|i| care_management(insured(i), data_type))
                    .collect::<Vec<_>>()
            }),
        )
            .prop_map(move |(invoices, mut docs)| {
                // translate gives the 明細書 (claims-care-management-statement.yaml) before the
                // 請求書 (claims-invoice.yaml); the writer puts the 請求書 first (`file.order`).
                // The care manager's 請求書: its office, its file's データ種別.
                docs.extend(invoices.into_iter().map(|mut d| {
                    d["provider_number"] = json!("0300000100");
                    d["source"] = json!({ "sender": "0300000100" });
                    d["file"] = claims_control(data_type);
                    d
                }));
                docs
            })
    })
}

fn benefit_file() -> impl Strategy<Value = Vec<Value>> {
    (1usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|i| benefit_management(insured(i)))
            .collect::<Vec<_>>()
    })
}

fn round_trip(docs: &[Value]) -> Result<(), TestCaseError> {
    let file = render_csv(docs).map_err(|e| TestCaseError::fail(e.for_sender().to_string()))?;
    let back = translate(&file, None)
        .map_err(|e| TestCaseError::fail(format!("{}\n{}", e.for_sender(), text(&file))))?;
    prop_assert_eq!(&back, &docs.to_vec(), "file:\n{}", text(&file));
    // And the file the documents read back from is written again the same.
    prop_assert_eq!(
        render_csv(&back).map_err(|e| TestCaseError::fail(e.to_string()))?,
        file
    );
    Ok(())
}

/// 受給者異動連絡票 files: the shipped sample's people as templates (any subsequence of them),
/// each with its dates, name, 支給限度 and optional parts varied, the file's control items too.
fn recipient_file() -> impl Strategy<Value = Vec<Value>> {
    let templates: Vec<Value> =
        match serde_json::from_slice(&sample("10_531131011202510.recipient-change.json"))
            .expect("golden")
        {
            Value::Array(docs) => docs,
            one => vec![one],
        };
    let person = (
        day(),
        day(),
        "[アイウエオカキクケコガギグゲゴサシスセソタチツテトダナハバパマヤラワンー]{1,6}",
        proptest::option::of(0i64..40_000),
        proptest::collection::vec(any::<bool>(), 4),
    );
    (
        proptest::sample::subsequence(templates, 1..=3),
        proptest::collection::vec(person, 3),
        month(),
        "[0-9]{1,3}",
    )
        .prop_map(|(docs, people, processing, control)| {
            docs.into_iter()
                .zip(people)
                .map(|(mut d, (changed, born, kana, limit, keep))| {
                    d["change"]["date"] = json!(changed);
                    d["birth_date"] = json!(born);
                    d["name"]["kana"]["text"] = json!(format!("{kana} タロウ"));
                    match limit {
                        Some(units) => d["benefit_limit"]["units"] = json!(units),
                        None => {
                            d.as_object_mut().expect("document").remove("benefit_limit");
                        }
                    }
                    let optional = [
                        "twenty_percent_share",
                        "special_residence",
                        "welfare_corporation_reduction",
                        "care_plan",
                    ];
                    for (part, keep) in optional.iter().zip(keep) {
                        if !keep {
                            d.as_object_mut().expect("document").remove(*part);
                        }
                    }
                    d["file"] = json!({ "medium": "1", "processing_month": processing,
                                        "control_number": control });
                    d["source"] = json!({ "sender": "131011" });
                    d
                })
                .collect()
        })
}

/// 64 cases of `files`, each round-tripped, on a runner of its own (a runner counts its
/// successes across runs, so a shared one would run the later strategies not at all).
fn round_trips(what: &str, files: impl Strategy<Value = Vec<Value>>) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&files, |docs| round_trip(&docs)) {
        panic!("{what}: {e}");
    }
}

#[test]
fn any_claims_file_the_writer_makes_reads_back_to_the_same_documents() {
    round_trips("711 files (請求書 and 明細書)", claims_file());
}

#[test]
fn any_care_management_file_the_writer_makes_reads_back_to_the_same_documents() {
    round_trips("812 files (様式第七 明細書)", care_management_file());
}

#[test]
fn any_benefit_management_file_the_writer_makes_reads_back_to_the_same_documents() {
    round_trips("821 files (給付管理票)", benefit_file());
}

#[test]
fn any_recipient_change_file_the_writer_makes_reads_back_to_the_same_documents() {
    round_trips("531 files (受給者異動連絡票)", recipient_file());
}
