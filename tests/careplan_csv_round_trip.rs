//! ケアプラン CSV through the library, the way the hub runs it: every shipped sample under
//! `samples/careplan/` is translated by the mappings in `mappings/`, and those with an outbound
//! CSV mapping (UP1KYO, UP2KYO, UP3KYO) are rendered back and must give the very same MS932 bytes.
//! Also: text MS932 cannot carry is refused by `render` with the character named, and a
//! 保険者番号 with a wrong check digit fails `translate` with the rule, record, line and value.

use kaigo_hub::formats::charset::{self, Charset};
use kaigo_hub::mapping::{Input, MappingSet, Rendered, TranslateError, testing};
use kaigo_hub::redact::Disclose;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mappings() -> MappingSet {
    match MappingSet::load_dir(&root().join("mappings")) {
        Ok(set) => set,
        Err(errors) => panic!(
            "mappings do not load:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn samples() -> Vec<PathBuf> {
    let dir = root().join("samples/careplan");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("CSV"))
        .collect();
    out.sort();
    out
}

fn translate(set: &MappingSet, bytes: &[u8], name: &str) -> Result<Vec<Value>, TranslateError> {
    let tr = set.translate(
        Input {
            bytes,
            file_name: Some(name),
        },
        None,
    )?;
    Ok(tr
        .documents
        .iter()
        .map(|d| serde_json::from_str(&d.json).expect("translate returns JSON"))
        .collect())
}

fn render_csv(set: &MappingSet, docs: &[Value]) -> Result<Vec<u8>, TranslateError> {
    match set.render(docs, "csv", None)? {
        Rendered::Csv(bytes) => Ok(bytes),
        Rendered::Json(_) => panic!("`--to csv` rendered JSON"),
    }
}

/// Prefixes whose samples must come back byte for byte (they have outbound CSV mappings).
const ROUND_TRIP: &[&str] = &["UP1KYO", "UP2KYO", "UP3KYO"];

#[test]
fn every_careplan_sample_translates_and_round_trips_where_an_outbound_mapping_exists() {
    let set = mappings();
    let all = samples();
    assert!(
        all.len() >= 5,
        "expected the shipped samples, found {all:?}"
    );
    let mut round_tripped = Vec::new();
    for path in &all {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        let prefix = name.split('_').next().unwrap_or_default();
        let original = std::fs::read(path).expect("read sample");
        let docs =
            translate(&set, &original, name).unwrap_or_else(|e| panic!("{name}: translate: {e}"));
        assert!(!docs.is_empty(), "{name}: no documents");
        // Every document carries the file it came from.
        for d in &docs {
            assert_eq!(d["source"]["file_name"], name, "{name}");
        }
        match render_csv(&set, &docs) {
            Ok(again) => {
                assert!(
                    again == original,
                    "{name}: CSV → canonical → CSV differs:\n got: {:?}\nwant: {:?}",
                    charset::decode(&again, Charset::Ms932).ok(),
                    charset::decode(&original, Charset::Ms932).ok()
                );
                round_tripped.push(prefix.to_string());
            }
            Err(TranslateError::NoOutbound { .. }) if !ROUND_TRIP.contains(&prefix) => {}
            Err(e) => panic!("{name}: render: {e}"),
        }
    }
    for p in ROUND_TRIP {
        assert!(
            round_tripped.iter().any(|r| r == p),
            "no {p} sample was round-tripped (round-tripped: {round_tripped:?})"
        );
    }
}

#[test]
fn careplan_golden_tests_pass() {
    let set = mappings();
    let outcomes: Vec<_> = testing::run_all(&set)
        .into_iter()
        .filter(|o| o.mapping.starts_with("careplan-"))
        .collect();
    assert!(outcomes.len() >= 8, "careplan golden tests: {outcomes:?}");
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.failure
                .as_ref()
                .map(|f| format!("{} {}: {f}", o.mapping, o.input))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn render_refuses_text_that_ms932_cannot_carry_and_names_the_character() {
    let set = mappings();
    let golden = root()
        .join("samples/careplan/UP2KYO_0300000100_43_0300000005_11_20251025200201.careplan.json");
    let mut docs =
        testing::json_docs(&std::fs::read(&golden).expect("read golden")).expect("golden JSON");
    // 𠮷 (U+20BB7, つちよし) is outside JIS X 0208 and every MS932 extension. The second
    // document's second row is record 6 of the output file (the first document has 4 rows).
    assert_eq!(docs[0]["table2"]["rows"].as_array().map(Vec::len), Some(4));
    docs[1]["table2"]["rows"][1]["need"] = Value::String("𠮷野家（架空）で食事をしたい".into());
    let e = render_csv(&set, &docs).expect_err("𠮷 must not be written as MS932");
    // The character is part of a person's record: a log or a dead-letter header says where
    // only; the user of `kaigo-hub translate` reads which character.
    assert!(!e.to_string().contains('𠮷'), "{e}");
    assert!(e.to_string().contains("record 6, column 7"), "{e}");
    let msg = e.for_sender().to_string();
    assert!(matches!(e, TranslateError::Encode(_)), "{msg}");
    assert!(msg.contains("'𠮷'"), "{msg}");
    assert!(msg.contains("U+20BB7"), "{msg}");
    assert!(msg.contains("MS932"), "{msg}");
    assert!(msg.contains("record 6, column 7"), "{msg}");
}

#[test]
fn a_wrong_insurer_check_digit_fails_translate_naming_rule_record_line_and_value() {
    let set = mappings();
    // Two UP1KYO records; the first has a line break inside 課題分析の結果 (column 22), so the
    // second record starts on physical line 3. Its 保険者番号 131012 should end in 1.
    let good = "202407,131011,0000100001,20251020,100-0001,\"東京都千代田区試験町１\",\"\",\
                \"試験 花子\",\"試験居宅介護支援センター\",100-0002,\"東京都千代田区架空町２\",\"\",\
                0300000100,20251020,20230401,21,2,20250315,20250401,20260331,22,\
                \"本人：自宅で暮らしたい。\r\n家族：転倒が心配。\",\"\",\"試験の方針\",,\"\",9000000001,\r\n";
    let bad = "202407,131012,0000100002,20251020,100-0001,\"東京都千代田区試験町３\",\"\",\
               \"試験 花子\",\"試験居宅介護支援センター\",100-0002,\"東京都千代田区架空町２\",\"\",\
               0300000100,20251020,20251020,11,1,,,,,\"\",\"\",\"\",,\"\",9000000001,\r\n";
    let bytes = charset::encode(&format!("{good}{bad}"), Charset::Ms932, "test input")
        .expect("test text is MS932");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the test input should really be MS932"
    );
    let name = "UP1KYO_0300000100_43_0300000005_11_20251025200201.CSV";
    let e = translate(&set, &bytes, name).expect_err("131012 fails its check digit");
    assert!(
        !e.to_string().contains("131012"),
        "the value is the sender's: {e}"
    );
    let msg = e.for_sender().to_string();
    assert!(matches!(e, TranslateError::Map(_)), "{msg}");
    assert!(msg.contains("subject.insurer_number"), "rule: {msg}");
    assert!(
        msg.contains("careplan-up1kyo-care-plan.yaml"),
        "rule file: {msg}"
    );
    assert!(msg.contains("record 2 (line 3), column 2"), "where: {msg}");
    assert!(msg.contains("131012"), "value: {msg}");
    assert!(msg.contains("check digit"), "why: {msg}");

    // The same file with the right digit translates.
    let fixed = charset::encode(
        &format!("{good}{}", bad.replacen("131012", "131011", 1)),
        Charset::Ms932,
        "test input",
    )
    .expect("MS932");
    let docs = translate(&set, &fixed, name).expect("valid input translates");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["subject"]["insurer_number"], "131011");
}
