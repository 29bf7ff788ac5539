//! The 主治医意見書 as a FHIR `document` Bundle (docs/fhir-physician-opinion.md), both ways:
//! - the example of the guide (samples/fhir/physician-opinion-document.json) is the Bundle the
//!   hub makes of the 2026 sample opinion with the test key (its contents checked by hand
//!   against the sample and the guide's tables; R4 schema and JP Core checks: tests/fhir_out.rs);
//! - FHIR → PhysicianOpinion → FHIR gives the same resources. "The same": the same resources in
//!   the same order with the same values, where ids, fullUrls and the references between them
//!   may be re-keyed (a hospital's Bundle has its own UUIDs; the hub's answer has keyed ones):
//!   every id and fullUrl is replaced by the resource's type and rank before comparing;
//! - PhysicianOpinion → FHIR → PhysicianOpinion is identical, for both opinions of the JMA
//!   医見書 sample (the pre-2026 form with its 同意欄, three diagnoses, partial onset dates, and
//!   the 2026 form).

use std::collections::BTreeMap;
use std::path::Path;

use kaigo_hub::fhir::{self, ResourceIds};
use kaigo_hub::mapping::{Input, MappingSet};
use serde_json::{Value, json};

const EXAMPLE: &str = "samples/fhir/physician-opinion-document.json";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The test key of tests/fhir_out.rs (32 bytes 00 01 … 1f).
fn ids() -> ResourceIds {
    ResourceIds::new(&(0..32u8).collect::<Vec<_>>()).expect("test key")
}

fn set() -> MappingSet {
    MappingSet::load_dir(&root().join("mappings")).expect("shipped mappings load")
}

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).expect(rel);
    serde_json::from_str(&text).expect(rel)
}

/// The canonical documents the shipped mappings make of a FHIR Bundle, as `POST /fhir` would.
fn opinions_of(set: &MappingSet, bundle: &Value) -> Vec<Value> {
    let bytes = bundle.to_string().into_bytes();
    let t = set
        .translate(
            Input {
                bytes: &bytes,
                file_name: None,
            },
            None,
        )
        .expect("the document Bundle translates");
    t.documents
        .iter()
        .map(|d| {
            assert_eq!(d.kind.name(), "PhysicianOpinion@1", "and nothing else");
            serde_json::from_str(&d.json).expect("JSON")
        })
        .collect()
}

/// The Bundle with every id and fullUrl (and so every reference) replaced by `Type#rank`, and
/// the Bundle's identifier dropped: what "the same resources" compares.
fn unkeyed(bundle: &Value) -> Value {
    let mut names = BTreeMap::<String, String>::new();
    let mut rank = BTreeMap::<String, usize>::new();
    for e in bundle["entry"].as_array().expect("entries") {
        let t = e["resource"]["resourceType"].as_str().expect("type");
        let n = rank.entry(t.to_string()).or_default();
        *n += 1;
        let name = format!("{t}#{n}");
        names.insert(e["fullUrl"].as_str().expect("fullUrl").into(), name.clone());
        names.insert(e["resource"]["id"].as_str().expect("id").into(), name);
    }
    fn walk(v: &Value, names: &BTreeMap<String, String>) -> Value {
        match v {
            Value::String(s) => Value::String(names.get(s).cloned().unwrap_or_else(|| s.clone())),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, names)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| {
                        *k != "identifier" || m.get("resourceType") != Some(&json!("Bundle"))
                    })
                    .map(|(k, x)| (k.clone(), walk(x, names)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(bundle, &names)
}

#[test]
fn the_example_is_the_document_the_hub_makes_of_the_2026_sample_opinion() {
    let opinion = read_json("samples/fhir/physician-opinion.json");
    let bundle = fhir::bundle_of(&set(), &opinion, None, &ids()).expect("bundle");
    assert_eq!(
        bundle,
        read_json(EXAMPLE),
        "the guide's example is the hub's Bundle"
    );
    assert_eq!(bundle["type"], "document");
    assert_eq!(
        bundle["timestamp"], "2026-04-15T00:00:00+09:00",
        "記入日, no send time"
    );
    let types: Vec<&str> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "Composition",
            "Patient",
            "Practitioner",
            "Organization",
            "Organization",
            "Coverage",
            "Condition",
            "Observation",
            "Observation",
            "Observation",
            "Observation",
            "QuestionnaireResponse",
            "Provenance"
        ]
    );
    let sections: Vec<&str> = bundle["entry"][0]["resource"]["section"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["code"]["coding"][0]["code"].as_str().expect("code"))
        .collect();
    assert_eq!(
        sections,
        ["author", "insurance", "illness", "mind-and-body", "form"]
    );
    let form = &bundle["entry"][11]["resource"];
    let item = |link: &str| {
        form["item"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["linkId"] == link)
            .map(|i| i["answer"].clone())
    };
    assert_eq!(item("patient.age"), Some(json!([{ "valueInteger": 88 }])));
    assert_eq!(
        item("mind_and_body.body.ataxia.trunk").map(|a| a.as_array().map(Vec::len)),
        Some(Some(2)),
        "右 and 左"
    );
    assert_eq!(item("consent"), None, "the 2026 form has no 同意欄");
    let height = &bundle["entry"][7]["resource"]["valueQuantity"];
    assert_eq!(height["value"], json!(148), "a number, as R4 wants");
}

#[test]
fn fhir_to_opinion_to_fhir_gives_the_same_resources() {
    let (set, ids) = (set(), ids());
    let example = read_json(EXAMPLE);
    let opinions = opinions_of(&set, &example);
    assert_eq!(opinions.len(), 1);
    assert_eq!(
        opinions[0],
        read_json("samples/fhir/physician-opinion.json"),
        "the mapping's golden"
    );
    let again = fhir::bundle_of(&set, &opinions[0], None, &ids).expect("bundle");
    assert_eq!(unkeyed(&again), unkeyed(&example));

    // A hospital's Bundle with UUIDs of its own reads the same and comes back the same.
    let mut text = example.to_string();
    for (n, e) in example["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .enumerate()
    {
        let full = e["fullUrl"].as_str().expect("fullUrl");
        text = text.replace(full, &format!("urn:uuid:00000000-0000-4000-8000-{n:012}"));
        let id = e["resource"]["id"].as_str().expect("id");
        text = text.replace(id, &format!("hospital-{n}"));
    }
    let theirs: Value = serde_json::from_str(&text).expect("JSON");
    assert_ne!(theirs, example);
    let opinions = opinions_of(&set, &theirs);
    let again = fhir::bundle_of(&set, &opinions[0], None, &ids).expect("bundle");
    assert_eq!(unkeyed(&again), unkeyed(&theirs));
    assert_eq!(again, example, "re-keyed by the hub: the example itself");
}

#[test]
fn every_opinion_of_the_jma_sample_goes_to_fhir_and_back_unchanged() {
    let (set, ids) = (set(), ids());
    let sample = read_json("samples/certification/ikensho-ms932-crlf.physician-opinion.json");
    let opinions = sample.as_array().expect("two opinions");
    assert_eq!(opinions.len(), 2);
    for opinion in opinions {
        let bundle = fhir::bundle_of(&set, opinion, None, &ids).expect("bundle");
        let back = opinions_of(&set, &bundle);
        assert_eq!(back, std::slice::from_ref(opinion));
    }
}

#[test]
fn a_hospitals_document_without_the_hubs_extras_still_reads() {
    // No onset-approximate extension (the form prints 頃 on every 発症年月日: approximate), the
    // 被保険者番号 only in the JP_Coverage extension, the 診断名 only as a coding's display.
    let mut b = read_json(EXAMPLE);
    for e in b["entry"].as_array_mut().expect("entries") {
        let r = e["resource"].as_object_mut().expect("resource");
        match r["resourceType"].as_str() {
            Some("Condition") => {
                r.shift_remove("extension");
                r["code"] = json!({ "coding": [{ "system": "urn:oid:1.2.392.200119.4.101.6", "code": "20061234", "display": "脳梗塞後遺症" }] });
            }
            Some("Coverage") => {
                r.shift_remove("identifier");
            }
            _ => {}
        }
    }
    let opinion = &opinions_of(&set(), &b)[0];
    assert_eq!(
        opinion["illness"]["diagnoses"],
        json!([{ "name": "脳梗塞後遺症", "onset": { "date": "2023-06-12", "approximate": true } }])
    );
    assert_eq!(opinion["subject"]["insured_number"], "0000012346");

    // Without a Coverage nobody knows whose opinion it is: the mapping names what is missing.
    b["entry"]
        .as_array_mut()
        .expect("entries")
        .retain(|e| e["resource"]["resourceType"] != "Coverage");
    let bytes = b.to_string().into_bytes();
    let e = set()
        .translate(
            Input {
                bytes: &bytes,
                file_name: None,
            },
            None,
        )
        .expect_err("no 被保険者番号");
    let text = e.to_string();
    assert!(text.contains("subject.insured_number"), "{text}");
    assert!(!text.contains("0000012346"), "{text}");
}
