//! JMA 医見書 CSV exports through the library, as the hub runs them: the mappings in `mappings/`
//! choose `jma-ikensho-physician-opinion` by content (any file name), and each row becomes one
//! `PhysicianOpinion@1`. Values are checked here by hand against certification.md §3: the 他科
//! bit string 033 `1000000000001` (内科 and その他), the 医学的管理 string 106 `20010000000`
//! (訪問診療 checked and underlined, 通所リハビリテーション checked), the 和暦 onsets `令和05年06月`,
//! `平成22年` and `不詳`, VT line breaks, and the 同意欄 of the pre-2026 form against the 2026
//! form's empty 029. A bit string of the wrong length fails with the rule and the reason, without
//! the value in its `Display`.
//!
//! Run from the package root (cargo does), since mapping locations are printed relative to it.

use kaigo_hub::canonical::DocKind;
use kaigo_hub::mapping::{Input, MappingSet, TranslateError};
use kaigo_hub::redact::Disclose;
use serde_json::{Value, json};
use std::path::Path;

const MS932_CRLF: &str = "samples/certification/ikensho-ms932-crlf.csv";

fn mappings() -> MappingSet {
    MappingSet::load_dir(Path::new("mappings")).unwrap_or_else(|errors| {
        panic!(
            "mappings do not load:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Translates with the mapping chosen by its match rule, under a file name that says nothing.
fn translate(set: &MappingSet, bytes: &[u8]) -> Result<Vec<Value>, TranslateError> {
    let tr = set.translate(
        Input {
            bytes,
            file_name: Some("upload-0001.dat"),
        },
        None,
    )?;
    assert_eq!(tr.mapping.id, "jma-ikensho-physician-opinion");
    Ok(tr
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("validated document is JSON"))
        .collect())
}

/// The MS932 sample as text, one row per element (CRLF removed).
fn sample_rows() -> Vec<String> {
    let bytes = read(MS932_CRLF);
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!bad, "the sample is MS932");
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Field `n` (1-based) of a row whose fields are all quoted and hold no `","`.
fn field(row: &str, n: usize) -> String {
    let inner = &row[1..row.len() - 1];
    inner.split("\",\"").nth(n - 1).expect("field").to_string()
}

/// `row` with field `n` (1-based) replaced by `value`.
fn with_field(row: &str, n: usize, value: &str) -> String {
    let inner = &row[1..row.len() - 1];
    let mut fields: Vec<&str> = inner.split("\",\"").collect();
    assert_eq!(fields.len(), 121, "the sample row has 121 fields");
    fields[n - 1] = value;
    format!("\"{}\"", fields.join("\",\""))
}

#[test]
fn the_sample_rows_hold_the_values_the_checks_below_read() {
    let rows = sample_rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(field(&rows[0], 33), "1000000000001");
    assert_eq!(field(&rows[0], 36), "令和05年06月");
    assert_eq!(field(&rows[0], 38), "平成22年");
    assert_eq!(field(&rows[0], 40), "不詳");
    assert_eq!(field(&rows[0], 106), "20010000000");
    assert_eq!(field(&rows[0], 29), "1");
    assert_eq!(field(&rows[1], 29), "");
    assert!(field(&rows[0], 121).contains('\u{b}'));
}

#[test]
fn bit_strings_partial_wareki_and_vt_read_as_the_spec_says() {
    let docs = translate(&mappings(), &read(MS932_CRLF)).expect("translates");
    assert_eq!(docs.len(), 2, "one document per row");
    let a = &docs[0];
    // 033 `1000000000001`: the first (内科) and the last (その他) of the 13 options.
    assert_eq!(
        a["other_departments"]["departments"],
        json!(["internal_medicine", "other"])
    );
    assert_eq!(a["other_departments"]["other"], "心療内科");
    // 106 `20010000000`: 訪問診療 is 2 (checked and underlined), 通所リハビリテーション (4th) is 1.
    let mm = &a["living_function"]["medical_management"];
    assert_eq!(
        mm["services"],
        json!([
            { "service": "home_visit_medical", "underlined": true },
            { "service": "outpatient_rehabilitation", "underlined": false }
        ])
    );
    // 036 `令和05年06月`: 令和1 = 2019, so 令和5 = 2023; month precision kept, 頃 on the form.
    let d = &a["illness"]["diagnoses"];
    assert_eq!(
        d[0]["onset"],
        json!({ "date": "2023-06", "approximate": true })
    );
    // 038 `平成22年`: 平成1 = 1989, so 平成22 = 2010.
    assert_eq!(
        d[1]["onset"],
        json!({ "date": "2010", "approximate": true })
    );
    // 040 `不詳`: the diagnosis without an onset.
    assert_eq!(d[2], json!({ "name": "変形性膝関節症" }));
    // VT (U+000B) is a line break.
    let remarks = a["remarks"].as_str().expect("remarks");
    assert_eq!(
        remarks,
        "長谷川式 = 18点 (2025/10/10)\n日中独居のため, 通所サービスの利用が望ましい。"
    );
    assert!(!remarks.contains('\u{b}'));
    // The pre-2026 form's 同意欄 (029 = 1 同意する); the 2026 form leaves it out.
    assert_eq!(a["consent"], "agrees");
    assert!(docs[1].get("consent").is_none(), "{}", docs[1]);
    // 106 `02100000001` of the second: 訪問看護 underlined, and the 11th option (added last).
    assert_eq!(
        docs[1]["living_function"]["medical_management"],
        json!({
            "services": [
                { "service": "home_visit_nursing", "underlined": true },
                { "service": "home_visit_rehabilitation", "underlined": false },
                { "service": "nurse_visit_consultation", "underlined": false }
            ]
        })
    );
    // 036 `令和05年06月12日` keeps its day.
    assert_eq!(
        docs[1]["illness"]["diagnoses"][0]["onset"]["date"],
        "2023-06-12"
    );
}

#[test]
fn a_bit_string_of_the_wrong_length_names_the_rule_and_keeps_the_value_for_the_sender() {
    let rows = sample_rows();
    let bad = with_field(&rows[0], 33, "10000000000019");
    let e = translate(&mappings(), format!("{bad}\r\n").as_bytes()).unwrap_err();
    let plain = e.to_string();
    assert!(
        plain.contains("is not a bit string of 13 characters"),
        "{plain}"
    );
    assert!(
        plain.contains("rule `other_departments.departments`"),
        "{plain}"
    );
    assert!(plain.contains("column 33"), "{plain}");
    assert!(!plain.contains("10000000000019"), "{plain}");
    let told = e.for_sender().to_string();
    assert!(told.contains("`10000000000019`"), "{told}");
    assert!(told.contains("it has 14"), "{told}");
}

#[test]
fn a_character_outside_the_allowed_set_is_refused() {
    let rows = sample_rows();
    let bad = with_field(&rows[0], 106, "30010000000");
    let e = translate(&mappings(), format!("{bad}\r\n").as_bytes()).unwrap_err();
    let plain = e.to_string();
    assert!(
        plain.contains("has a character other than `012` at position 1"),
        "{plain}"
    );
    assert!(
        plain.contains("rule `living_function.medical_management.services[+]`"),
        "{plain}"
    );
}

#[test]
fn the_schema_names_the_options_and_the_category() {
    let kind = DocKind::parse("PhysicianOpinion").expect("a known document");
    assert_eq!(kind.name(), "PhysicianOpinion@1");
    assert_eq!(kind.category(), "certification");
    let schema = kind.schema().to_string();
    for word in [
        "主治医意見書",
        "internal_medicine",
        "nurse_visit_consultation",
        "看護職員の訪問による相談・支援",
        "同意欄",
        "approximate",
    ] {
        assert!(schema.contains(word), "{word}");
    }
}

#[test]
fn a_utf8_file_with_a_header_row_and_lf_gives_the_same_documents() {
    let set = mappings();
    let plain = translate(&set, &read(MS932_CRLF)).expect("MS932, CRLF, no header");
    let headed = translate(&set, &read("samples/certification/ikensho-header-lf.csv"))
        .expect("UTF-8, LF, a header row");
    assert_eq!(headed.len(), 2, "the header row makes no document");
    assert_eq!(plain, headed);
}

#[test]
fn a_file_of_another_shape_is_not_taken_for_an_opinion() {
    let set = mappings();
    let rows = sample_rows();
    // 120 fields: the count is part of the match.
    let short = rows[0]
        .rsplit_once(",\"")
        .expect("a last field")
        .0
        .to_string();
    let e = set
        .translate(
            Input {
                bytes: format!("{short}\r\n").as_bytes(),
                file_name: Some("upload-0002.dat"),
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("record 1 has 120 fields, expected 121"), "{e}");
    // Field 1 another version: not this layout.
    let other = with_field(&rows[0], 1, "2.0");
    let e = set
        .translate(
            Input {
                bytes: format!("{other}\r\n").as_bytes(),
                file_name: Some("upload-0003.dat"),
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("jma-ikensho-physician-opinion"), "{e}");
    assert!(e.contains("`1` has another value"), "{e}");
    // Field 3 not 被保険者番号 + 8 digits.
    let other = with_field(&rows[0], 3, "0000012345-1509");
    let e = set
        .translate(
            Input {
                bytes: format!("{other}\r\n").as_bytes(),
                file_name: Some("upload-0004.dat"),
            },
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`3` has another value, expected text matching"),
        "{e}"
    );
    assert!(!e.contains("0000012345"), "{e}");
}

#[test]
fn only_a_row_without_a_version_is_a_header_and_no_row_is_dropped_unseen() {
    let set = mappings();
    let rows = sample_rows();
    // A later row of another version is read, not dropped without a word.
    let later = with_field(&rows[1], 1, "1.3");
    let docs = translate(&set, format!("{}\r\n{later}\r\n", rows[0]).as_bytes()).expect("reads");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["subject"]["insured_number"], "0000012346");
}
