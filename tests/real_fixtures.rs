//! The real public messages in ../shared/fixtures (SS-MIX2 HL7 v2 in ISO-2022-JP, JP-CLINS FHIR
//! JSON) through the library: every one parses, FHIR JSON round-trips byte for byte (modulo
//! insignificant white space), and the ones with a patient translate to InsuredPerson. The
//! fixtures are never edited; a missing fixture directory fails the test.

use kaigo_hub::formats::{hl7v2, json};
use kaigo_hub::mapping::{Input, MappingSet};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        p.is_dir(),
        "fixtures not found at {} (CI clones shared/ beside the repo)",
        p.display()
    );
    p
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("fixture dir readable")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mappings() -> MappingSet {
    MappingSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings"))
        .unwrap_or_else(|e| panic!("shipped mappings must load: {e:?}"))
}

#[test]
fn all_ssmix2_messages_parse_as_iso_2022_jp_and_the_broken_file_is_refused() {
    let all = files(&fixtures().join("ssmix2/sampleData"));
    assert_eq!(all.len(), 22, "expected the 22 SS-MIX2 sample files");
    let mut parsed = 0;
    for f in &all {
        let bytes = std::fs::read(f).expect("readable");
        if bytes.len() < 8 {
            // One file of the public sample set is two stray bytes (0xFB 0xFC), not a message.
            assert!(
                hl7v2::parse(&bytes).is_err(),
                "{} must be refused",
                f.display()
            );
            continue;
        }
        let m = hl7v2::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(m.charset(), hl7v2::Charset::Iso2022Jp, "{}", f.display());
        assert!(!m.message_type().is_empty(), "{}", f.display());
        assert!(m.segment_count() >= 2, "{}", f.display());
        parsed += 1;
    }
    assert_eq!(parsed, 21);
}

#[test]
fn ssmix2_adt_fixtures_translate_to_insured_person_with_kanji_and_kana() {
    let set = mappings();
    let mut translated = 0;
    for f in files(&fixtures().join("ssmix2/sampleData")) {
        let bytes = std::fs::read(&f).expect("readable");
        let name = f.display().to_string();
        let Ok(t) = set.translate(
            Input {
                bytes: &bytes,
                file_name: Some(&name),
            },
            None,
        ) else {
            continue;
        };
        assert_eq!(t.mapping.id, "ssmix2-adt-insured-person", "{name}");
        let doc: serde_json::Value =
            serde_json::from_str(&t.documents[0].json).expect("valid JSON");
        assert!(
            doc["name"]["kanji"]["family"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}: {doc}"
        );
        assert!(
            doc["name"]["kana"]["family"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}: {doc}"
        );
        if name.contains("ADT-00") {
            assert_eq!(doc["name"]["kanji"]["family"], "患者", "{name}");
            assert_eq!(doc["name"]["kana"]["family"], "カンジャ", "{name}");
            assert_eq!(doc["birth_date"], "1948-04-05", "{name}");
            assert_eq!(doc["sex"], "male", "{name}");
            assert_eq!(doc["addresses"][0]["postal_code"], "422-8033", "{name}");
        }
        assert!(
            doc["birth_date"].as_str().is_some_and(|d| d.len() == 10),
            "{name}"
        );
        translated += 1;
    }
    // ADT-00, -22, -31(which holds an OMP message), -42, -52, -61: the ADT ones with a PID.
    assert!(translated >= 5, "only {translated} ADT fixtures translated");
}

/// Removes white space outside JSON strings, so a parsed-and-reprinted document can be compared
/// with the original text byte for byte.
fn strip_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut in_str, mut esc) = (false, false);
    for c in s.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[test]
fn all_61_jp_clins_examples_load_and_round_trip_exactly() {
    let all = files(&fixtures().join("jp-clins/ExampleJson"));
    assert_eq!(all.len(), 61, "expected the 61 JP-CLINS examples");
    for f in &all {
        let text = std::fs::read_to_string(f).expect("UTF-8");
        let v = json::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let again = serde_json::to_string(&v).expect("serializable");
        assert_eq!(
            again,
            strip_ws(&text),
            "{} did not round-trip exactly",
            f.display()
        );
    }
}

#[test]
fn jp_clins_patients_translate_alone_and_inside_bundles() {
    let set = mappings();
    let mut people = 0;
    for f in files(&fixtures().join("jp-clins/ExampleJson")) {
        let bytes = std::fs::read(&f).expect("readable");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let has_patient = v["resourceType"] == "Patient"
            || v["entry"].as_array().is_some_and(|es| {
                es.iter()
                    .any(|e| e["resource"]["resourceType"] == "Patient")
            });
        let name = f.display().to_string();
        match set.translate(
            Input {
                bytes: &bytes,
                file_name: Some(&name),
            },
            None,
        ) {
            Ok(t) => {
                for d in &t.documents {
                    let doc: serde_json::Value = serde_json::from_str(&d.json).expect("valid");
                    // Every JP-CLINS patient carries identifiers; most also a kanji name.
                    assert!(doc["identifiers"][0]["value"].is_string(), "{name}: {doc}");
                    if v["resourceType"] == "Bundle" || name.contains("MAKINO") {
                        assert!(doc["name"]["kanji"]["family"].is_string(), "{name}: {doc}");
                        assert!(doc["name"]["kana"]["family"].is_string(), "{name}: {doc}");
                    }
                    people += 1;
                }
            }
            Err(e) => assert!(!has_patient || name.contains("ErrorExample"), "{name}: {e}"),
        }
    }
    // 3 Patient examples + the Patients inside 4 Bundles.
    assert!(people >= 7, "only {people} patients translated");
}
