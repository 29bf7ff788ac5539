//! The 認定支援ネットワーク「センター送信」file through the shipped mappings, as the hub reads it:
//! one MS932 file of three people becomes, per person, a `CertificationApplication`, a
//! `CertificationSurvey`, a `CertificationDecision` and an `InsuredPerson`, chosen by content (no
//! file name needed). Values are checked by hand against ../shared/specs/certification.md (the
//! golden files in `samples/certification/` check every value): field 132 `2` is 2-1 移乗 見守り等,
//! field 68 `21` is 要介護1, ｶｲｺﾞ becomes カイゴ. Refusals: a record of software older than 09A,
//! and a line that lost a field.

use kaigo_hub::canonical::DocKind;
use kaigo_hub::formats::charset::{self, Charset};
use kaigo_hub::mapping::{Input, MappingSet, TranslateError};
use kaigo_hub::redact::Disclose;
use serde_json::Value;
use std::path::Path;

const SAMPLE: &str = "samples/certification/center-transmission-09b.csv";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> MappingSet {
    MappingSet::load_dir(&root().join("mappings"))
        .unwrap_or_else(|e| panic!("mappings do not load: {e:?}"))
}

fn sample() -> Vec<u8> {
    std::fs::read(root().join(SAMPLE)).expect("the sample")
}

/// The documents of each kind, in record order, from translating `bytes` without naming a mapping
/// and under a file name that says nothing.
fn translate(set: &MappingSet, bytes: &[u8]) -> Result<Vec<(DocKind, Value)>, TranslateError> {
    let tr = set.translate(
        Input {
            bytes,
            file_name: Some("upload.dat"),
        },
        None,
    )?;
    Ok(tr
        .documents
        .iter()
        .map(|d| (d.kind, serde_json::from_str(&d.json).expect("JSON")))
        .collect())
}

fn of(docs: &[(DocKind, Value)], kind: DocKind) -> Vec<&Value> {
    docs.iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, v)| v)
        .collect()
}

/// The meaning the canonical schema gives to `code` of the code list `list`.
fn meaning(kind: DocKind, list: &str, code: &str) -> String {
    let schema = kind.schema();
    let options = schema["$defs"][list]["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is a code list in {}", kind.name()));
    options
        .iter()
        .find(|o| o["const"] == code)
        .and_then(|o| o["description"].as_str())
        .unwrap_or_else(|| panic!("{list} has no code {code}"))
        .to_string()
}

/// Field `n` (1-based) of record `r` (0-based) of the sample, read without any mapping.
fn raw_field(r: usize, n: usize) -> String {
    let bytes = sample();
    let text = charset::decode(&bytes, Charset::Ms932).expect("MS932");
    let line = text.split("\r\n").nth(r).expect("record");
    line.split(',').nth(n - 1).expect("field").to_string()
}

#[test]
fn one_file_becomes_four_documents_per_person_by_content() {
    let docs = translate(&mappings(), &sample()).expect("translates");
    for kind in [
        DocKind::CertificationApplication,
        DocKind::CertificationSurvey,
        DocKind::CertificationDecision,
        DocKind::InsuredPerson,
    ] {
        let these = of(&docs, kind);
        assert_eq!(these.len(), 3, "{}", kind.name());
        let insured: Vec<&str> = these
            .iter()
            .map(|d| d["subject"]["insured_number"].as_str().unwrap())
            .collect();
        assert_eq!(insured, ["0000012345", "0000012346", "0000012347"]);
        assert_eq!(kind.category(), "certification");
    }
    assert_eq!(docs.len(), 12);
}

#[test]
fn values_read_by_hand_from_the_spec() {
    let docs = translate(&mappings(), &sample()).expect("translates");
    let survey = of(&docs, DocKind::CertificationSurvey);
    let decision = of(&docs, DocKind::CertificationDecision);
    let application = of(&docs, DocKind::CertificationApplication);
    let person = of(&docs, DocKind::InsuredPerson);

    // Field 132 `2` → 2-1 移乗 (pattern 10) 見守り等; 168 `2` → 5-1 薬の内服 (pattern 12) 一部介助;
    // 157 `3` → 4-5 同じ話をする (pattern 16) ある (spec §2, worked reading).
    assert_eq!(raw_field(0, 132), "2");
    let basic = &survey[0]["basic_survey"];
    assert_eq!(basic["group2"]["transfer"], "2");
    let s = DocKind::CertificationSurvey;
    assert_eq!(meaning(s, "AssistanceWithWatching", "2"), "見守り等");
    assert_eq!(basic["group5"]["medication"], "2");
    assert_eq!(meaning(s, "Assistance", "2"), "一部介助");
    assert_eq!(basic["group4"]["repeats_stories"], "3");
    assert_eq!(meaning(s, "Occurrence", "3"), "ある");

    // Field 68 `21` → 要介護1; its validity 69–70 as ISO dates.
    let second = &decision[0]["second_stage"];
    assert_eq!(second["care_level"], "21");
    assert_eq!(
        meaning(DocKind::CertificationDecision, "SecondStageResult", "21"),
        "要介護1"
    );
    assert_eq!(second["valid_from"], "2025-10-01");
    assert_eq!(second["valid_to"], "2026-09-30");
    // 要介護認定等基準時間 kept as the integer written (568, believed 56.8 分).
    assert_eq!(decision[0]["first_stage"]["care_time"]["total"], 568);

    // Half-width kana → full width (ﾞ joined); the kanji name with its U+3000 kept as written.
    assert_eq!(raw_field(0, 16), "ｶｲｺﾞ ﾀﾛｳ");
    assert_eq!(
        application[0]["applicant"]["name"]["kana"]["text"],
        "カイゴ タロウ"
    );
    assert_eq!(
        application[0]["applicant"]["name"]["kanji"]["text"],
        "介護\u{3000}太郎"
    );
    assert_eq!(person[2]["name"]["kana"]["text"], "カクウ ジロウ");
    assert_eq!(person[0]["birth_date"], "1940-01-01");
    assert_eq!(person[1]["sex"], "female");
    // A postcode written without its hyphen (person 2) is made NNN-NNNN.
    assert_eq!(raw_field(1, 18), "4228033");
    assert_eq!(person[1]["addresses"][0]["postal_code"], "422-8033");

    // The 第2号 with a 特定疾病, in a facility.
    assert_eq!(application[2]["insured_class"], "2");
    assert_eq!(decision[2]["specified_disease"], "02");
    assert_eq!(
        application[2]["facility"]["name"],
        "介護老人保健施設しずおか"
    );

    // The 前回 block sits 76 fields after the current 基本調査 (188 = 112 + 76): 261 is the
    // previous 特医-12 カテーテル; 266 the previous 基準時間 (total); 326 its 識別コード.
    let previous = &survey[0]["previous"];
    assert_eq!(
        previous["basic_survey"]["special_medical"]["catheter"],
        raw_field(0, 261).as_str()
    );
    assert_eq!(previous["interface_version"], "09A");
    assert_eq!(
        decision[0]["previous"]["first_stage"]["care_time"]["total"],
        raw_field(0, 266).parse::<i64>().unwrap()
    );
    assert_eq!(decision[0]["previous"]["care_level"], "13");
    // No previous certification: no previous survey, and the decision's 前回結果 is `99` なし.
    assert!(survey[1].get("previous").is_none());
    assert_eq!(
        decision[1]["previous"],
        serde_json::json!({ "care_level": "99" })
    );

    // The other service class's block is written as zeros: counts stay, 住宅改修 `0` is no value.
    let use_ = &survey[1]["overview"]["service_use"];
    assert_eq!(use_["care"]["home_help"], 0);
    assert!(use_["care"].get("home_modification").is_none());
    assert_eq!(use_["prevention"]["home_modification"], "2");
}

#[test]
fn a_record_of_software_older_than_09a_is_refused_with_the_field_named() {
    let bytes = sample();
    let text = charset::decode(&bytes, Charset::Ms932).expect("MS932");
    let older = text.replacen(",09B,131011,0000012346,", ",06A,131011,0000012346,", 1);
    assert_ne!(older, text);
    let bytes = charset::encode(&older, Charset::Ms932, "test").expect("MS932");
    let err = translate(&mappings(), &bytes).expect_err("06A is refused");
    let plain = err.to_string();
    assert!(plain.contains("`3`"), "{plain}");
    assert!(plain.contains("record 2"), "{plain}");
    assert!(plain.contains("interface_version"), "{plain}");
    assert!(!plain.contains("0000012346"), "{plain}");
    assert!(err.for_sender().to_string().contains("06A"), "{err:?}");
}

/// The sample with `edit` applied to its decoded text, back in MS932.
fn edited(edit: impl Fn(&str) -> String) -> Vec<u8> {
    let bytes = sample();
    let text = charset::decode(&bytes, Charset::Ms932).expect("MS932");
    let changed = edit(&text);
    assert_ne!(changed, text, "the edit changed nothing");
    charset::encode(&changed, Charset::Ms932, "test").expect("MS932")
}

#[test]
fn a_line_that_lost_a_field_is_refused_with_its_line_and_count() {
    // Record 2 loses field 2 (the one-space 機能コード): 327 fields.
    let bytes = edited(|t| t.replacen("000002, ,09B,", "000002,09B,", 1));
    let err = translate(&mappings(), &bytes).expect_err("327 fields");
    let plain = err.to_string();
    assert!(
        plain.contains("line 2 has 327 fields, expected 328"),
        "{plain}"
    );
    for value in ["0000012346", "試験", "19450505"] {
        assert!(!plain.contains(value), "{plain}");
    }
    // The same loss on the first line: the file is not taken for a センター送信 file at all.
    let bytes = edited(|t| t.replacen("000001, ,09B,", "000001,09B,", 1));
    let err = translate(&mappings(), &bytes).expect_err("327 fields");
    let plain = err.to_string();
    assert!(
        plain.contains("center-transmission-survey: record 1 has 327 fields, expected 328"),
        "{plain}"
    );
}

#[test]
fn a_quote_in_free_text_is_data_not_quoting() {
    let bytes = edited(|t| t.replacen(",特になし,", ",\"特になし\",", 1));
    let docs = translate(&mappings(), &bytes).expect("translates");
    let decision = of(&docs, DocKind::CertificationDecision);
    assert_eq!(decision[0]["board_opinion"], "\"特になし\"");
}
