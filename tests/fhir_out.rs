//! FHIR out (docs/fhir.md): every canonical document the shipped samples hold that has an outbound
//! FHIR mapping becomes a `transaction` Bundle (the 主治医意見書 a `document` Bundle) that
//! - matches its golden file (written for the test key below; the ids were checked against an
//!   HMAC-SHA256 computed apart from the hub, by the rule docs/fhir.md gives, and are recomputed
//!   here from that rule),
//! - comes out byte for byte the same from `kaigo-hub translate --to fhir` run twice,
//! - passes the official FHIR R4 JSON schema (../shared/fhir/fhir.schema.json, draft-06, checked
//!   with `boon`: docs/decisions.md says why that crate), the Bundle and every resource alone,
//! - and follows JP Core: its identifier systems, its IDE/SYL names, its profiles.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use kaigo_hub::fhir::{self, FhirOutError, ResourceIds};
use kaigo_hub::mapping::{MappingSet, TranslateError};
use serde_json::Value;
use sha2::Sha256;

/// The key the goldens were made with (32 bytes 00 01 … 1f): a test key, never a deployment's.
const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SCHEMA_ID: &str = "http://hl7.org/fhir/json-schema/4.0";
const REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
const INSURER_NUMBER: &str = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber";
const INSURED_NUMBER: &str = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber";
const INSURED_NUMBER_EXT: &str =
    "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber";
const PATIENT_ID_PREFIX: &str = "urn:oid:1.2.392.100495.20.3.51.1";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn test_key() -> Vec<u8> {
    (0..32u8).collect()
}

fn ids() -> ResourceIds {
    ResourceIds::new(&test_key()).expect("test key")
}

fn set() -> MappingSet {
    MappingSet::load_dir(&root().join("mappings")).expect("shipped mappings load")
}

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).expect(rel);
    serde_json::from_str(&text).expect(rel)
}

/// The id rule of docs/fhir.md, written out again apart from `kaigo_hub::fhir::ids`.
fn expected_id(parts: &[&str]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&test_key()).expect("key");
    mac.update(b"kaigo-hub/fhir-id/v1\0");
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p.as_bytes());
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn resource_ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|e| e["resource"]["id"].as_str().expect("id").to_string())
        .collect()
}

fn entries(bundle: &Value) -> &Vec<Value> {
    bundle["entry"].as_array().expect("entries")
}

#[test]
fn the_insurance_card_becomes_patient_insurer_coverage_and_provenance_as_the_golden_says() {
    let doc = read_json("samples/xml/card-sjis.insurance-card.json");
    let bundle = fhir::bundle_of(&set(), &doc, None, &ids()).expect("bundle");
    let golden = read_json("samples/xml/card-sjis.fhir-transaction.json");
    assert_eq!(
        bundle, golden,
        "differs from samples/xml/card-sjis.fhir-transaction.json"
    );
    let (insurer, insured) = ("019992", "0100000099");
    assert_eq!(
        resource_ids(&golden),
        [
            expected_id(&["Patient", "subject", insurer, insured, "patient"]),
            expected_id(&["Organization", "identifier", INSURER_NUMBER, insurer]),
            expected_id(&["Coverage", "subject", insurer, insured, "coverage"]),
            expected_id(&[
                "Provenance",
                "document",
                &fhir::bundle::canonical_text(&doc)
            ]),
        ]
    );
}

#[test]
fn the_adt_patient_is_keyed_by_its_hospital_id_when_there_is_no_subject() {
    let doc = read_json("samples/hl7v2/adt-a08.insured-person.json");
    let bundle = fhir::bundle_of(&set(), &doc, None, &ids()).expect("bundle");
    let golden = read_json("samples/hl7v2/adt-a08.fhir-transaction.json");
    assert_eq!(
        bundle, golden,
        "differs from samples/hl7v2/adt-a08.fhir-transaction.json"
    );
    let system = format!("{PATIENT_ID_PREFIX}1311234567");
    assert_eq!(
        resource_ids(&golden),
        [
            expected_id(&["Patient", "identifier", &system, "00012345"]),
            expected_id(&[
                "Provenance",
                "document",
                &fhir::bundle::canonical_text(&doc)
            ]),
        ]
    );
    // MSH-7 20251120093000, Japan time.
    assert_eq!(golden["timestamp"], "2025-11-20T09:30:00+09:00");
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kaigo-fhir-out-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `kaigo-hub translate --to fhir FILE` in `dir` (no kaigo-hub.toml there), the key from `key`
/// (`None`: the key file the hub makes under `data/`).
fn translate(dir: &Path, file: &str, key: Option<&str>) -> Vec<u8> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    c.current_dir(dir)
        .env_remove("KAIGO_SUBJECT_KEY")
        .env_remove("KAIGO_DATA_DIR")
        .env_remove("KAIGO_MAPPINGS")
        .args(["translate", "--to", "fhir", "--mappings"])
        .arg(root().join("mappings"))
        .arg(root().join(file));
    if let Some(k) = key {
        c.env("KAIGO_SUBJECT_KEY", k);
    }
    let out = c.output().expect("kaigo-hub runs");
    assert!(
        out.status.success(),
        "translate --to fhir {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn translate_to_fhir_twice_gives_the_same_bytes_from_the_message_and_from_the_document() {
    let dir = scratch("twice");
    for file in [
        "samples/xml/card-sjis.xml",
        "samples/xml/card-sjis.insurance-card.json",
    ] {
        let first = translate(&dir, file, Some(TEST_KEY_HEX));
        assert_eq!(first, translate(&dir, file, Some(TEST_KEY_HEX)), "{file}");
        let parsed: Value = serde_json::from_slice(&first).expect("JSON");
        assert_eq!(
            parsed,
            read_json("samples/xml/card-sjis.fhir-transaction.json"),
            "{file}"
        );
    }
    assert!(
        !dir.join("data").exists(),
        "a configured key makes no key file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_configured_key_the_deployments_key_file_is_made_once_and_used() {
    let dir = scratch("keyfile");
    let file = "samples/hl7v2/adt-a08.insured-person.json";
    let first = translate(&dir, file, None);
    assert!(
        dir.join("data/subject.key").exists(),
        "the key file serve would use"
    );
    assert_eq!(first, translate(&dir, file, None));
    let with_test_key = translate(&dir, file, Some(TEST_KEY_HEX));
    assert_ne!(first, with_test_key, "another key, other ids");
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&first).expect("JSON"),
        serde_json::from_slice(&with_test_key).expect("JSON"),
    );
    assert_ne!(resource_ids(&a), resource_ids(&b));
    assert_eq!(entries(&a).len(), entries(&b).len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn translate_dir_to_fhir_writes_one_bundle_per_line_the_same_each_run() {
    let dir = scratch("dir");
    let inbox = dir.join("in");
    std::fs::create_dir_all(&inbox).expect("inbox");
    for name in [
        "card-seireki-hankaku.xml",
        "card-sjis.xml",
        "card-wareki.xml",
    ] {
        std::fs::copy(root().join("samples/xml").join(name), inbox.join(name)).expect("copy");
    }
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"))
            .current_dir(&dir)
            .env_remove("KAIGO_DATA_DIR")
            .env_remove("KAIGO_MAPPINGS")
            .env("KAIGO_SUBJECT_KEY", TEST_KEY_HEX)
            .args(["translate", "--to", "fhir", "--jobs", "2", "--mappings"])
            .arg(root().join("mappings"))
            .arg("--dir")
            .arg(&inbox)
            .output()
            .expect("kaigo-hub runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let first = run();
    assert_eq!(first, run(), "the same bytes again");
    let lines: Vec<Value> = String::from_utf8_lossy(&first)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one Bundle per line"))
        .collect();
    assert_eq!(lines.len(), 3, "one Bundle per card");
    assert!(lines.iter().all(|b| b["type"] == "transaction"));
    // In file-name order: card-sjis.xml is the second.
    assert_eq!(
        lines[1],
        read_json("samples/xml/card-sjis.fhir-transaction.json")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every canonical document in `samples/` (a JSON file holding one document or a list of them).
fn sample_documents() -> Vec<(PathBuf, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("samples") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("samples"), &mut files);
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).expect("read"))
            .expect("sample is JSON");
        let items = match v {
            Value::Array(items) => items,
            one => vec![one],
        };
        for d in items.into_iter().filter(|d| d.get("document").is_some()) {
            docs.push((f.clone(), d));
        }
    }
    docs
}

struct Schema {
    schemas: boon::Schemas,
    compiler: boon::Compiler,
    by_type: std::collections::HashMap<String, boon::SchemaIndex>,
}

impl Schema {
    fn load() -> Schema {
        let path = root().join("../shared/fhir/fhir.schema.json");
        let text = std::fs::read_to_string(&path).expect("../shared/fhir/fhir.schema.json");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource(SCHEMA_ID, schema)
            .expect("schema added");
        Schema {
            schemas: boon::Schemas::new(),
            compiler,
            by_type: Default::default(),
        }
    }

    /// Checks `v` against `#/definitions/<def>`: the schema's error list, or none.
    fn check(&mut self, def: &str, v: &Value) -> Result<(), String> {
        let at = match self.by_type.get(def) {
            Some(at) => *at,
            None => {
                let url = format!("{SCHEMA_ID}#/definitions/{def}");
                let at = self
                    .compiler
                    .compile(&url, &mut self.schemas)
                    .map_err(|e| format!("no definition {def}: {e}"))?;
                self.by_type.insert(def.to_string(), at);
                at
            }
        };
        self.schemas.validate(v, at).map_err(|e| format!("{e:#}"))
    }
}

#[test]
fn every_resource_for_the_shipped_samples_passes_the_r4_schema_and_jp_core_rules() {
    let (set, ids) = (set(), ids());
    let mut schema = Schema::load();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut not_yet = std::collections::BTreeSet::<String>::new();
    for (file, doc) in sample_documents() {
        let kind = doc["document"].as_str().unwrap_or("?").to_string();
        let bundle = match fhir::bundle_of(&set, &doc, None, &ids) {
            Ok(b) => b,
            Err(FhirOutError::Render(TranslateError::NoOutbound { .. })) => {
                not_yet.insert(kind);
                continue;
            }
            Err(e) => panic!("{}: {kind}: {e}", file.display()),
        };
        let at = format!("{} ({kind})", file.display());
        schema
            .check("Bundle", &bundle)
            .unwrap_or_else(|e| panic!("{at}: Bundle: {e}"));
        for e in entries(&bundle) {
            let r = &e["resource"];
            let t = r["resourceType"].as_str().expect("resourceType");
            schema
                .check(t, r)
                .unwrap_or_else(|e| panic!("{at}: {t}: {e}"));
            jp_core(r).unwrap_or_else(|e| panic!("{at}: {t}: {e}"));
            *checked.entry(t.to_string()).or_default() += 1;
        }
        links_resolve(&bundle).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    // Samples hold 5 InsuredPerson (2 ADT, 3 センター送信) and 3 InsuranceCard documents.
    assert!(checked["Patient"] >= 8, "{checked:?}");
    assert!(checked["Coverage"] >= 3, "{checked:?}");
    assert!(checked["Provenance"] >= 8, "{checked:?}");
    // And 3 PhysicianOpinion documents (2 医見書 CSV, 1 FHIR), each a document Bundle.
    assert!(checked["Composition"] >= 3, "{checked:?}");
    assert!(!not_yet.contains("InsuredPerson@1") && !not_yet.contains("InsuranceCard@1"));
    eprintln!("checked {checked:?}; no FHIR mapping yet for {not_yet:?}");
}

#[test]
fn the_schema_check_can_fail() {
    let mut schema = Schema::load();
    let bad = serde_json::json!({ "resourceType": "Patient", "id": "a_b", "gender": "f" });
    let e = schema
        .check("Patient", &bad)
        .expect_err("bad id and gender");
    assert!(e.contains("id") || e.contains("gender"), "{e}");
    let bad = serde_json::json!({ "resourceType": "Bundle", "type": "transaction", "timestamp": "2025-09-01T17:45:12" });
    assert!(
        schema.check("Bundle", &bad).is_err(),
        "an instant needs its offset"
    );
    assert!(
        jp_core(&serde_json::json!({ "resourceType": "Patient",
        "name": [{ "text": "介護 太郎" }] }))
        .is_err()
    );
}

/// JP Core's rules the schema does not know: profiles, identifier systems, IDE/SYL names.
fn jp_core(r: &Value) -> Result<(), String> {
    let t = r["resourceType"].as_str().unwrap_or("");
    let profile = |name: &str| {
        let want = format!("http://jpfhir.jp/fhir/core/StructureDefinition/{name}");
        let has = r["meta"]["profile"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == &Value::String(want.clone())));
        if has {
            Ok(())
        } else {
            Err(format!("meta.profile lacks {want}"))
        }
    };
    let identifiers: Vec<(&str, &str)> = r["identifier"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .map(|i| {
                    (
                        i["system"].as_str().unwrap_or(""),
                        i["value"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    match t {
        "Patient" => {
            profile("JP_Patient")?;
            for (system, value) in &identifiers {
                let code = system.strip_prefix(PATIENT_ID_PREFIX).ok_or(format!(
                    "Patient.identifier system {system} is not JP Core's 患者ID OID ({PATIENT_ID_PREFIX}+医療機関コード)"
                ))?;
                if code.len() != 10 || !code.bytes().all(|b| b.is_ascii_digit()) || value.is_empty()
                {
                    return Err(format!(
                        "Patient.identifier {system}: a 10-digit 医療機関コード and a value"
                    ));
                }
            }
            names(r)
        }
        "Organization" => {
            profile("JP_Organization")?;
            for (system, value) in &identifiers {
                match *system {
                    INSURER_NUMBER => {
                        kaigo_hub::identifiers::InsurerNumber::parse(value)
                            .map_err(|e| format!("Organization.identifier InsurerNumber: {e}"))?;
                    }
                    "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no" => {}
                    other => {
                        return Err(format!(
                            "Organization.identifier system {other} is not JP Core's"
                        ));
                    }
                }
            }
            Ok(())
        }
        "Coverage" => {
            profile("JP_Coverage")?;
            let ext = r["extension"]
                .as_array()
                .and_then(|x| x.iter().find(|x| x["url"] == INSURED_NUMBER_EXT))
                .ok_or("Coverage lacks the JP_Coverage_InsuredPersonNumber extension")?;
            let number = ext["valueString"].as_str().unwrap_or("");
            kaigo_hub::identifiers::InsuredNumber::parse(number)
                .map_err(|e| format!("JP_Coverage_InsuredPersonNumber: {e}"))?;
            if identifiers != [(INSURED_NUMBER, number)] {
                return Err(format!(
                    "Coverage.identifier must be {INSURED_NUMBER} with the extension's number"
                ));
            }
            Ok(())
        }
        "Practitioner" => profile("JP_Practitioner").and_then(|()| names(r)),
        "Condition" => profile("JP_Condition"),
        "Observation" => {
            profile("JP_Observation_BodyMeasurement").or_else(|_| profile("JP_Observation_Common"))
        }
        // No JP Core profile for a 主治医意見書: the hub's own (docs/fhir-physician-opinion.md).
        "Composition" | "QuestionnaireResponse" => {
            let own = r["meta"]["profile"][0].as_str().unwrap_or("");
            own.starts_with("urn:kaigo-hub:fhir:StructureDefinition:")
                .then_some(())
                .ok_or(format!("{t}: meta.profile {own} is not the hub's"))
        }
        "Provenance" => {
            let recorded = r.get("recorded").is_some() || r.get("_recorded").is_some();
            if recorded && r["agent"][0]["who"].is_object() && r["target"].is_array() {
                Ok(())
            } else {
                Err("Provenance needs recorded, agent.who and target".into())
            }
        }
        other => Err(format!("{other}: no JP Core check written for it yet")),
    }
}

/// Two HumanNames at most, one IDE (kanji) and one SYL (full-width katakana), as JP Core sends.
fn names(r: &Value) -> Result<(), String> {
    let mut seen = Vec::new();
    for n in r["name"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let code = n["extension"]
            .as_array()
            .and_then(|x| x.iter().find(|x| x["url"] == REPRESENTATION))
            .and_then(|x| x["valueCode"].as_str())
            .ok_or("a HumanName without the iso21090-EN-representation extension")?;
        if !["IDE", "SYL"].contains(&code) || seen.contains(&code) {
            return Err(format!(
                "HumanName representation {code}: one IDE and one SYL expected"
            ));
        }
        seen.push(code);
        let text = n["text"].as_str().unwrap_or("");
        let katakana =
            |c: char| ('\u{30A0}'..='\u{30FF}').contains(&c) || c == ' ' || c == '\u{3000}';
        if code == "SYL" && !text.chars().all(katakana) {
            return Err("the SYL name is not full-width katakana".into());
        }
    }
    Ok(())
}

/// Every entry is a PUT to its own `Type/id`, and every reference is keyed; in a `document`
/// Bundle, the Composition comes first and every reference is the `fullUrl` of an entry.
fn links_resolve(bundle: &Value) -> Result<(), String> {
    if bundle["type"] == "document" {
        return document_links_resolve(bundle);
    }
    let urls: Vec<String> = entries(bundle)
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    for (e, url) in entries(bundle).iter().zip(&urls) {
        if e["request"]["method"] != "PUT" || e["request"]["url"] != url.as_str() {
            return Err(format!("entry {url}: request must be PUT {url}"));
        }
    }
    let found = references(bundle);
    // An entry of the Bundle, or a resource of the subject or a shared one the document does not
    // carry (docs/fhir.md): then a keyed id all the same, never a mapping's local label.
    let keyed = |r: &str| {
        r.split_once('/').is_some_and(|(t, id)| {
            t.starts_with(|c: char| c.is_ascii_uppercase())
                && id.len() == 64
                && id.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    match found
        .iter()
        .find(|r| !urls.iter().any(|u| u == *r) && !keyed(r))
    {
        Some(r) => Err(format!("reference {r} is neither an entry nor a keyed id")),
        None => Ok(()),
    }
}

/// Every `reference` in `v`.
fn references(v: &Value) -> Vec<&str> {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("reference", Value::String(s)) => out.push(s),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(v, &mut found);
    found
}

fn document_links_resolve(bundle: &Value) -> Result<(), String> {
    let entries = entries(bundle);
    if entries.first().map(|e| &e["resource"]["resourceType"]) != Some(&Value::from("Composition"))
    {
        return Err("a document Bundle starts with its Composition".into());
    }
    let mut urls = Vec::new();
    for e in entries {
        let (full, id) = (
            e["fullUrl"].as_str().unwrap_or(""),
            e["resource"]["id"].as_str().unwrap_or(""),
        );
        let hex = full
            .strip_prefix("urn:uuid:")
            .unwrap_or("")
            .replace('-', "");
        if hex.len() != 32 || id.len() != 64 || hex[..12] != id[..12] || e.get("request").is_some()
        {
            return Err(format!(
                "entry {full}: a urn:uuid: fullUrl from its keyed id, no request"
            ));
        }
        urls.push(full);
    }
    match references(bundle).into_iter().find(|r| !urls.contains(r)) {
        Some(r) => Err(format!("reference {r} is not the fullUrl of an entry")),
        None => Ok(()),
    }
}
