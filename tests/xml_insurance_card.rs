//! Vendor XML 介護保険被保険者証 exports through the library, the way the hub runs them: the
//! mappings in `mappings/` choose `vendor-xml-insurance-card` by its match rule, and each good
//! sample under `samples/xml/` (UTF-8 and Shift_JIS, 和暦 and 西暦 birth dates, half-width kana)
//! becomes exactly its golden `InsuranceCard@1`. The attacks under `tests/data/xml-attacks/` (billion
//! laughs, XXE, an undefined entity) are refused before any mapping runs, with the line named. A
//! wrong 保険者番号 check digit and a 和暦 date outside its era fail with the rule, the mapping's
//! file:line:column, the source line and the value.
//!
//! Run from the package root (cargo does), since mapping locations are printed relative to it.

use kaigo_hub::mapping::{Input, MappingSet, TranslateError};
use kaigo_hub::redact::Disclose;
use serde_json::Value;
use std::path::Path;

const MAPPING_FILE: &str = "mappings/vendor-xml-insurance-card.yaml";

const GOOD: [&str; 3] = [
    "samples/xml/card-wareki.xml",
    "samples/xml/card-seireki-hankaku.xml",
    "samples/xml/card-sjis.xml",
];

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

/// Translates with the mapping chosen by match rule, as the translate hop does.
fn translate(set: &MappingSet, bytes: &[u8], name: &str) -> Result<Vec<Value>, TranslateError> {
    let tr = set.translate(
        Input {
            bytes,
            file_name: Some(name),
        },
        None,
    )?;
    assert_eq!(tr.mapping.id, "vendor-xml-insurance-card");
    Ok(tr
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("validated document is JSON"))
        .collect())
}

/// The card of `card-wareki.xml` with one piece of text replaced (the replaced text must occur).
fn edited_card(from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(read("samples/xml/card-wareki.xml")).expect("UTF-8 sample");
    assert!(text.contains(from), "card-wareki.xml has no `{from}`");
    text.replacen(from, to, 1).into_bytes()
}

/// `file:line:column` of the rule for `target` in the mapping file (a key at column 3).
fn rule_location(target: &str) -> String {
    let yaml = String::from_utf8(read(MAPPING_FILE)).expect("UTF-8 mapping");
    let key = format!("  {target}:");
    let line = yaml
        .lines()
        .position(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("{MAPPING_FILE} has no rule `{target}`"));
    format!("{MAPPING_FILE}:{}:3", line + 1)
}

/// 1-based line of the first line of `bytes` (UTF-8) containing `needle`.
fn line_of(bytes: &[u8], needle: &str) -> usize {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line contains `{needle}`"))
        + 1
}

#[test]
fn each_good_sample_translates_to_its_golden_card() {
    let set = mappings();
    for input in GOOD {
        let golden = input.replace(".xml", ".insurance-card.json");
        let name = Path::new(input).file_name().and_then(|n| n.to_str());
        let got = translate(&set, &read(input), name.expect("file name"))
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        let want: Value =
            serde_json::from_slice(&read(&golden)).unwrap_or_else(|e| panic!("{golden}: {e}"));
        assert_eq!(got, vec![want], "{input} differs from {golden}");
    }
}

#[test]
fn the_shift_jis_sample_really_is_shift_jis() {
    let bytes = read("samples/xml/card-sjis.xml");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "card-sjis.xml must hold Shift_JIS bytes, not UTF-8"
    );
    assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>"));
    let card = &translate(&mappings(), &bytes, "card-sjis.xml").expect("translates")[0];
    assert_eq!(
        card["care_management_office"]["name"],
        "㈱試験ケア 居宅介護支援事業所"
    );
    assert_eq!(card["birth_date"], "1926-12-28", "昭和元年12月28日");
    assert_eq!(card["subject"]["insurer_number"], "019992");
}

#[test]
fn each_bad_sample_is_refused_naming_the_doctype_or_entity_and_its_line() {
    let set = mappings();
    for (input, needle, what) in [
        (
            "tests/data/xml-attacks/billion-laughs.xml",
            "<!DOCTYPE",
            "DOCTYPE",
        ),
        (
            "tests/data/xml-attacks/xxe-file.xml",
            "<!DOCTYPE",
            "DOCTYPE",
        ),
        (
            "tests/data/xml-attacks/undefined-entity.xml",
            "花子&nbsp;",
            "undefined entity reference &nbsp;",
        ),
    ] {
        let bytes = read(input);
        let err = match translate(&set, &bytes, "bad.xml") {
            Ok(docs) => panic!("{input} was accepted: {docs:?}"),
            Err(e) => e,
        };
        assert!(
            matches!(err, TranslateError::Format(_)),
            "{input}: refused by the XML reader, not by a mapping: {err:?}"
        );
        let msg = err.for_sender().to_string();
        let line = line_of(&bytes, needle);
        assert!(msg.contains(what), "{input}: {msg}");
        assert!(
            msg.contains(&format!("line {line}, column ")),
            "{input}: {msg}"
        );
        assert!(!msg.contains("root:"), "{input}: nothing was read: {msg}");
    }
}

#[test]
fn a_wrong_insurer_check_digit_names_the_rule_the_mapping_location_and_the_value() {
    let bytes = edited_card("number=\"131011\"", "number=\"131012\"");
    let err = translate(&mappings(), &bytes, "card.xml").expect_err("131012 fails its check digit");
    // The number is said to its sender (and to `kaigo-hub translate`), never to a log.
    assert!(!err.to_string().contains("131012"), "{err}");
    let msg = err.for_sender().to_string();
    assert!(matches!(err, TranslateError::Map(_)), "{msg}");
    assert!(msg.contains("rule `subject.insurer_number`"), "{msg}");
    assert!(
        msg.contains(&rule_location("subject.insurer_number")),
        "{msg}"
    );
    assert!(msg.contains("`131012`"), "{msg}");
    assert!(msg.contains("expected 1, found 2"), "{msg}");
    let line = line_of(&bytes, "number=\"131012\"");
    assert!(msg.contains(&format!("line {line}, column ")), "{msg}");
}

#[test]
fn a_wareki_date_outside_its_era_names_the_rule() {
    let bytes = edited_card(">3160405<", ">昭和64年1月8日<");
    let err = translate(&mappings(), &bytes, "card.xml").expect_err("昭和64年1月8日 is 平成");
    assert!(!err.to_string().contains("昭和"), "{err}");
    let msg = err.for_sender().to_string();
    assert!(msg.contains("rule `birth_date`"), "{msg}");
    assert!(msg.contains(&rule_location("birth_date")), "{msg}");
    assert!(msg.contains("昭和64年1月8日"), "{msg}");
    assert!(msg.contains("outside 昭和"), "{msg}");
    let line = line_of(&bytes, "昭和64年1月8日");
    assert!(msg.contains(&format!("line {line}, column ")), "{msg}");
}

#[test]
fn care_level_names_map_to_codes_in_either_width() {
    let set = mappings();
    for (name, code) in [
        ("非該当", "01"),
        ("事業対象者", "06"),
        ("要支援１", "12"),
        ("要支援2", "13"),
        ("要介護１", "21"),
        (" 要介護３ ", "23"),
        ("要介護4", "24"),
        ("要介護５", "25"),
    ] {
        let bytes = edited_card(">要介護２<", &format!(">{name}<"));
        let card =
            &translate(&set, &bytes, "card.xml").unwrap_or_else(|e| panic!("{name}: {e}"))[0];
        assert_eq!(card["certification"]["care_level"], code, "{name}");
    }
    let err = translate(&set, &edited_card(">要介護２<", ">要介護６<"), "card.xml")
        .expect_err("要介護６ does not exist");
    let msg = err.for_sender().to_string();
    assert!(
        msg.contains("`要介護6` is not in table `care_level`"),
        "{msg}"
    );
    assert!(msg.contains("rule `certification.care_level`"), "{msg}");
}

#[test]
fn an_impossible_seireki_birth_date_is_refused() {
    let bytes = edited_card(
        "calendar=\"wareki\">3160405<",
        "calendar=\"seireki\">1941-02-29<",
    );
    let msg = translate(&mappings(), &bytes, "card.xml")
        .expect_err("1941 is no leap year")
        .for_sender()
        .to_string();
    assert!(msg.contains("rule `birth_date`"), "{msg}");
    assert!(msg.contains("1941-02-29"), "{msg}");
}

#[test]
fn another_document_version_is_not_taken() {
    let bytes = edited_card("version=\"1\" exportId", "version=\"2\" exportId");
    let msg = translate(&mappings(), &bytes, "card.xml")
        .expect_err("version 2 is not this mapping's")
        .to_string();
    assert!(msg.contains("vendor-xml-insurance-card"), "{msg}");
    assert!(msg.contains("expected 1"), "{msg}");
}

#[test]
fn paths_match_by_namespace_not_by_prefix() {
    let set = mappings();
    let text = String::from_utf8(read("samples/xml/card-wareki.xml")).expect("UTF-8 sample");
    let want = translate(&set, text.as_bytes(), "card.xml").expect("translates");
    let default_ns = text
        .replace("xmlns:hk=", "xmlns=")
        .replace("<hk:", "<")
        .replace("</hk:", "</");
    let other_prefix = text
        .replace("xmlns:hk=", "xmlns:kaigo=")
        .replace("<hk:", "<kaigo:")
        .replace("</hk:", "</kaigo:");
    for variant in [default_ns, other_prefix] {
        let got = translate(&set, variant.as_bytes(), "card.xml").expect("translates");
        assert_eq!(got, want);
    }
    let foreign = text.replacen("hihokenshasho:1\"", "hihokenshasho:9\"", 1);
    assert!(translate(&set, foreign.as_bytes(), "card.xml").is_err());
}
