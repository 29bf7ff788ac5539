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
use serde_json::{Value, json};
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
const CARE_OFFICE_NUMBER: &str = "urn:kaigo-hub:care-office-number";
const SURVEYOR_NUMBER: &str = "urn:kaigo-hub:surveyor-number:";
const SURVEY_QUESTIONNAIRE: &str = "urn:kaigo-hub:Questionnaire:basic-survey-2009";
const SURVEY_ANSWERS: &str = "urn:kaigo-hub:CodeSystem:basic-survey-answer-2009";
const OPINION_QUESTIONNAIRE: &str = "urn:kaigo-hub:Questionnaire:physician-opinion-2026";

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
                "Organization",
                "identifier",
                CARE_OFFICE_NUMBER,
                "0170000011"
            ]),
            expected_id(&[
                "Provenance",
                "document",
                &fhir::bundle::canonical_text(&doc)
            ]),
        ]
    );
    // 区分支給限度基準額 36217 単位 is a number, and the office is the care-office entry.
    let coverage = &golden["entry"][2]["resource"];
    let ext = |url: &str| {
        coverage["extension"]
            .as_array()
            .and_then(|x| x.iter().find(|x| x["url"] == url))
            .cloned()
            .unwrap_or_else(|| panic!("no extension {url}"))
    };
    let limit = ext("urn:kaigo-hub:StructureDefinition:ltc-benefit-limit");
    assert_eq!(limit["extension"][0]["valueInteger"], 36217);
    let office = ext("urn:kaigo-hub:StructureDefinition:ltc-care-management-office");
    assert_eq!(
        office["extension"][0]["valueReference"]["reference"],
        golden["entry"][3]["request"]["url"]
    );
}

/// The 申請書 and the 認定結果 of the センター送信 sample, one Bundle per document: the person's
/// Patient, Coverage and insurer have the ids the 被保険者証's rule gives them, each application
/// is its own Task (keyed by 申請日 and 枝番), and the decision's Observations name that Task.
#[test]
fn the_application_and_the_decision_name_the_same_person_coverage_insurer_and_task() {
    let (set, ids) = (set(), ids());
    let mut bundles = Vec::new();
    for (kind, golden) in [
        (
            "application",
            "samples/certification/center-transmission-09b.application.fhir-transaction.json",
        ),
        (
            "decision",
            "samples/certification/center-transmission-09b.decision.fhir-transaction.json",
        ),
    ] {
        let docs = read_json(&format!(
            "samples/certification/center-transmission-09b.{kind}.json"
        ));
        let docs = docs.as_array().expect("three documents").clone();
        let made = fhir::bundles(&set, &docs, None, &ids).expect("bundles");
        assert_eq!(
            Value::Array(made.clone()),
            read_json(golden),
            "differs from {golden}"
        );
        bundles.push((docs, made));
    }
    let url = |t: &str, parts: &[&str]| format!("{t}/{}", expected_id(parts));
    let (applications, decisions) = (&bundles[0], &bundles[1]);
    let people = read_json("samples/certification/center-transmission-09b.insured-person.json");
    for (i, ((app, a), (dec, d))) in applications
        .0
        .iter()
        .zip(&applications.1)
        .zip(decisions.0.iter().zip(&decisions.1))
        .enumerate()
    {
        assert_eq!(people[i]["subject"], app["subject"], "the same person");
        let insurer = app["subject"]["insurer_number"].as_str().expect("insurer");
        let insured = app["subject"]["insured_number"].as_str().expect("insured");
        assert_eq!(
            dec["subject"], app["subject"],
            "the files list the same people"
        );
        let task_label = format!(
            "application-{}-{}",
            app["application_date"].as_str().expect("date"),
            app["branch_number"]
        );
        let patient = url(
            "Patient",
            &["Patient", "subject", insurer, insured, "patient"],
        );
        let coverage = url(
            "Coverage",
            &["Coverage", "subject", insurer, insured, "coverage"],
        );
        let task = url("Task", &["Task", "subject", insurer, insured, &task_label]);
        let payor = url(
            "Organization",
            &["Organization", "identifier", INSURER_NUMBER, insurer],
        );
        let a = entries(a);
        assert_eq!(a[0]["request"]["url"], patient.as_str());
        assert_eq!(a[1]["request"]["url"], task.as_str());
        let t = &a[1]["resource"];
        assert_eq!(t["for"]["reference"], patient.as_str());
        assert_eq!(t["owner"]["reference"], payor.as_str());
        assert_eq!(
            t["insurance"][0]["reference"],
            coverage.as_str(),
            "the card's Coverage"
        );
        assert_eq!(t["authoredOn"], app["application_date"]);
        assert_eq!(
            a.len(),
            3,
            "Patient, Task, Provenance: no Coverage PUT from an application"
        );
        let person = fhir::bundle_of(&set, &people[i], None, &ids).expect("person");
        assert_eq!(
            a[0]["resource"],
            entries(&person)[0]["resource"],
            "the InsuredPerson of the same record PUTs the same Patient"
        );
        let d = entries(d);
        let types: Vec<&str> = d
            .iter()
            .filter_map(|e| e["resource"]["resourceType"].as_str())
            .collect();
        assert_eq!(
            types,
            ["Coverage", "Observation", "Observation", "Provenance"]
        );
        assert_eq!(d[0]["request"]["url"], coverage.as_str());
        let c = &d[0]["resource"];
        assert_eq!(c["beneficiary"]["reference"], patient.as_str());
        assert_eq!(c["payor"][0]["reference"], payor.as_str());
        assert_eq!(c["class"][0]["value"], dec["second_stage"]["care_level"]);
        assert_eq!(c["period"]["start"], dec["second_stage"]["valid_from"]);
        assert_eq!(c["period"]["end"], dec["second_stage"]["valid_to"]);
        for (o, stage) in [(&d[1], "first-stage"), (&d[2], "second-stage")] {
            let label = task_label.replacen("application", stage, 1);
            assert_eq!(
                o["request"]["url"],
                url(
                    "Observation",
                    &["Observation", "subject", insurer, insured, &label]
                )
                .as_str()
            );
            assert_eq!(o["resource"]["subject"]["reference"], patient.as_str());
            let application = &o["resource"]["extension"][0];
            assert_eq!(
                application["url"],
                "urn:kaigo-hub:StructureDefinition:ltc-application"
            );
            assert_eq!(application["valueReference"]["reference"], task.as_str());
        }
    }
    // 一次判定 of 0000012345: 要介護1, 基準時間 568 as written, 蓋然性 35 %.
    let first = &entries(&decisions.1[0])[1]["resource"];
    assert_eq!(first["valueCodeableConcept"]["coding"][0]["code"], "21");
    assert_eq!(first["component"][0]["valueInteger"], 568);
    let probability = first["component"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["code"]["coding"][0]["code"] == "dementia-probability")
        })
        .expect("蓋然性");
    assert_eq!(probability["valueQuantity"]["value"], 35);
}

#[test]
fn a_decision_that_certifies_no_care_level_leaves_the_coverage_alone() {
    let docs = read_json("samples/certification/center-transmission-09b.decision.json");
    let mut doc = docs[0].clone();
    doc["second_stage"]["care_level"] = Value::from("31");
    let b = fhir::bundle_of(&set(), &doc, None, &ids()).expect("bundle");
    let types: Vec<&str> = entries(&b)
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert_eq!(
        types,
        ["Observation", "Observation", "Provenance"],
        "再調査: no Coverage PUT"
    );
    assert_eq!(
        entries(&b)[1]["resource"]["valueCodeableConcept"]["coding"][0]["display"],
        "再調査"
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

/// The first document of each sample with a survey, a ケアプラン table or a サービス利用票, and the
/// golden Bundle written for it (docs/fhir.md, "Documents and resources").
const CARE_GOLDENS: &[(&str, &str)] = &[
    (
        "samples/certification/center-transmission-09b.survey.json",
        "samples/certification/center-transmission-09b.survey.fhir-transaction.json",
    ),
    (
        "samples/careplan/UP1KYO_0300000100_43_0300000005_11_20251025200201.careplan.json",
        "samples/careplan/UP1KYO_0300000100_43_0300000005_11_20251025200201.fhir-transaction.json",
    ),
    (
        "samples/careplan/UP2KYO_0300000100_43_0300000005_11_20251025200201.careplan.json",
        "samples/careplan/UP2KYO_0300000100_43_0300000005_11_20251025200201.fhir-transaction.json",
    ),
    (
        "samples/careplan/UP3KYO_0300000100_43_0300000005_11_20251025200201.careplan.json",
        "samples/careplan/UP3KYO_0300000100_43_0300000005_11_20251025200201.fhir-transaction.json",
    ),
    (
        "samples/careplan/UPPLAN_202511_0300000100_43_0300000005_11_20251025200202.service-usage.json",
        "samples/careplan/UPPLAN_202511_0300000100_43_0300000005_11_20251025200202.fhir-transaction.json",
    ),
    (
        "samples/careplan/UPJSK_202511_0300000005_11_0300000100_43_20251203090000.service-usage.json",
        "samples/careplan/UPJSK_202511_0300000005_11_0300000100_43_20251203090000.fhir-transaction.json",
    ),
    (
        "samples/claims/d0711a.claim-invoice.json",
        "samples/claims/d0711a.fhir-transaction.json",
    ),
    (
        "samples/claims/10_531131011202510.recipient-change.json",
        "samples/claims/10_531131011202510.fhir-transaction.json",
    ),
    (
        "samples/claims/d0821a.benefit-management.json",
        "samples/claims/d0821a.fhir-transaction.json",
    ),
    (
        "samples/claims/d0812a.care-management-statement.json",
        "samples/claims/d0812a.fhir-transaction.json",
    ),
];

#[test]
fn the_recipient_change_is_the_cards_coverage_and_names_its_person_insurer_and_office() {
    let bundle = read_json("samples/claims/10_531131011202510.fhir-transaction.json");
    let (insurer, insured) = ("131011", "0000012345");
    // The Coverage the 被保険者証 and the 認定結果 write (subject + `coverage`), and its Provenance.
    let coverage = expected_id(&["Coverage", "subject", insurer, insured, "coverage"]);
    assert_eq!(resource_ids(&bundle)[0], coverage);
    assert_eq!(
        entries(&bundle).len(),
        2,
        "the Coverage and its Provenance only"
    );
    let c = &entries(&bundle)[0]["resource"];
    let url = |t: &str, parts: &[&str]| format!("{t}/{}", expected_id(parts));
    // Named, not PUT: the Patient, the insurer and the office keep what the card filled.
    assert_eq!(
        c["beneficiary"]["reference"],
        url(
            "Patient",
            &["Patient", "subject", insurer, insured, "patient"]
        )
    );
    assert_eq!(
        c["payor"][0]["reference"],
        url(
            "Organization",
            &["Organization", "identifier", INSURER_NUMBER, insurer]
        )
    );
    let office = c["extension"]
        .as_array()
        .and_then(|x| {
            x.iter().find(|x| {
                x["url"] == "urn:kaigo-hub:StructureDefinition:ltc-care-management-office"
            })
        })
        .expect("the office");
    assert_eq!(
        office["extension"][0]["valueReference"]["reference"],
        url(
            "Organization",
            &[
                "Organization",
                "identifier",
                CARE_OFFICE_NUMBER,
                "0300000100"
            ]
        )
    );
    assert_eq!(c["class"][0]["value"], "21");
    assert_eq!(c["period"]["start"], "2025-10-01");
    // The card's Coverage has the same id: one Coverage per person, whichever document wrote it.
    let card = read_json("samples/xml/card-sjis.insurance-card.json");
    let (ci, cn) = (
        card["subject"]["insurer_number"].as_str().expect("insurer"),
        card["subject"]["insured_number"].as_str().expect("insured"),
    );
    let card_bundle = read_json("samples/xml/card-sjis.fhir-transaction.json");
    assert!(
        resource_ids(&card_bundle)
            .contains(&expected_id(&["Coverage", "subject", ci, cn, "coverage"]))
    );
}

#[test]
fn the_invoice_is_issued_by_its_office_to_the_kokuhoren_with_its_totals_in_yen() {
    let bundle = read_json("samples/claims/d0711a.fhir-transaction.json");
    let office = expected_id(&[
        "Organization",
        "identifier",
        CARE_OFFICE_NUMBER,
        "0300000005",
    ]);
    assert_eq!(resource_ids(&bundle)[0], office);
    let invoice = &resources_of(&bundle, "Invoice")[0];
    assert_eq!(
        invoice["issuer"]["reference"],
        format!("Organization/{office}")
    );
    assert!(invoice.get("subject").is_none(), "no person");
    assert!(invoice["recipient"]["display"].is_string());
    assert_eq!(invoice["date"], "2025-11");
    let yen = |v: &Value| {
        (
            v["value"].as_i64(),
            v["currency"].as_str().map(String::from),
        )
    };
    assert_eq!(
        yen(&invoice["totalGross"]),
        (Some(150000), Some("JPY".into()))
    );
    assert_eq!(
        yen(&invoice["totalNet"]),
        (Some(135000), Some("JPY".into()))
    );
    let parts = invoice["lineItem"][0]["priceComponent"]
        .as_array()
        .expect("parts");
    let amounts: Vec<Option<i64>> = parts
        .iter()
        .map(|p| p["amount"]["value"].as_i64())
        .collect();
    assert_eq!(
        amounts,
        [
            Some(150000),
            Some(135000),
            Some(3000),
            Some(12000),
            None,
            None
        ]
    );
    // No person, no subject: the Invoice is keyed by its business key, 事業所番号, 請求年月,
    // サービス提供年月, 交換情報識別番号, 保険・公費等区分, 法別番号 and 請求情報区分.
    let key = "0300000005:2025-11:2025-10:7111:1:00:01";
    assert_eq!(
        invoice["identifier"],
        json!([{ "system": "urn:kaigo-hub:ltc-claim-invoice", "value": key }])
    );
    let invoice_id = expected_id(&[
        "Invoice",
        "identifier",
        "urn:kaigo-hub:ltc-claim-invoice",
        key,
    ]);
    assert_eq!(resource_ids(&bundle)[1], invoice_id);
    // The same line sent again corrected updates that Invoice; the 公費 line is another one.
    let (set, ids) = (set(), ids());
    let mut doc = first_document("samples/claims/d0711a.claim-invoice.json");
    doc["services"]["user_share"] = json!(12001);
    let corrected = fhir::bundle_of(&set, &doc, None, &ids).expect("renders");
    assert_eq!(resource_ids(&corrected)[1], invoice_id);
    assert_ne!(corrected, bundle, "its contents are the correction's");
    let public = match read_json("samples/claims/d0711a.claim-invoice.json") {
        Value::Array(docs) => docs[1].clone(),
        one => panic!("two lines expected, got {one}"),
    };
    let other = fhir::bundle_of(&set, &public, None, &ids).expect("renders");
    assert_ne!(resource_ids(&other)[1], invoice_id);
}

/// The 明細書 samples (file, which document of it, golden Bundle): a 様式第二 with a 12 軽減 and a
/// 様式第八 with its 11 特定入所者 records.
const STATEMENT_GOLDENS: &[(&str, usize, &str)] = &[
    (
        "samples/claims/d0711b.claim-statement.json",
        1,
        "samples/claims/d0711b.claim-statement-2.fhir-transaction.json",
    ),
    (
        "samples/claims/d0711c.claim-statement.json",
        0,
        "samples/claims/d0711c.claim-statement.fhir-transaction.json",
    ),
];

/// The sub-extensions of the hub extension `url` on `r`, each as (its url, its value), in order.
fn hub_extension(r: &Value, url: &str) -> Vec<Vec<(String, Value)>> {
    r["extension"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|x| x["url"] == url)
        .map(|x| {
            x["extension"]
                .as_array()
                .expect("a complex extension")
                .iter()
                .map(|part| {
                    let (k, v) = part
                        .as_object()
                        .expect("part")
                        .iter()
                        .find(|(k, _)| k.starts_with("value"))
                        .expect("a value");
                    let v = match v.get("value") {
                        Some(money) if k == "valueMoney" => money.clone(),
                        _ => v.clone(),
                    };
                    (part["url"].as_str().expect("url").to_string(), v)
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_statement_is_a_claim_of_its_person_month_and_office_with_one_item_per_line() {
    let (set, ids) = (set(), ids());
    for (sample, at, golden) in STATEMENT_GOLDENS {
        let doc = match read_json(sample) {
            Value::Array(docs) => docs[*at].clone(),
            one => one,
        };
        let bundle = fhir::bundle_of(&set, &doc, None, &ids).expect(sample);
        assert_eq!(bundle, read_json(golden), "{sample}: differs from {golden}");
    }
    // d0711b's second 明細書: 被保険者 131011/0000012399, 様式第二, one 02 line 11 1111 (244 × 4 =
    // 976 単位), one 10 集計 (976 単位 × 11.40, 請求額 8900, 利用者負担 2226) and a 12 軽減 of 556
    // (2226 − 556 = 1670): claims-csv §5.
    let bundle = read_json(STATEMENT_GOLDENS[0].2);
    let (insurer, insured) = ("131011", "0000012399");
    let office = expected_id(&[
        "Organization",
        "identifier",
        CARE_OFFICE_NUMBER,
        "0300000005",
    ]);
    let claim_id = expected_id(&[
        "Claim",
        "subject",
        insurer,
        insured,
        "claim-7131-2025-10-0300000005",
    ]);
    assert_eq!(resource_ids(&bundle)[..2], [office.clone(), claim_id]);
    let claim = resources_of(&bundle, "Claim")[0];
    // The person, the card and the insurer are referenced, not PUT.
    assert_eq!(
        resources_of(&bundle, "Patient").len() + resources_of(&bundle, "Coverage").len(),
        0
    );
    let patient = expected_id(&["Patient", "subject", insurer, insured, "patient"]);
    let coverage = expected_id(&["Coverage", "subject", insurer, insured, "coverage"]);
    let insurer_org = expected_id(&["Organization", "identifier", INSURER_NUMBER, insurer]);
    assert_eq!(claim["patient"]["reference"], format!("Patient/{patient}"));
    assert_eq!(
        claim["insurance"][0]["coverage"]["reference"],
        format!("Coverage/{coverage}")
    );
    assert_eq!(
        claim["insurer"]["reference"],
        format!("Organization/{insurer_org}")
    );
    assert_eq!(
        claim["provider"]["reference"],
        format!("Organization/{office}")
    );
    assert_eq!(claim["type"]["coding"][0]["code"], "professional");
    assert_eq!(claim["subType"]["coding"][0]["code"], "7131");
    assert_eq!(claim["billablePeriod"]["start"], "2025-10");
    assert_eq!(claim["created"], "2025-11");
    assert!(
        claim.get("total").is_none(),
        "the 明細書 writes no 費用合計"
    );
    let item = &claim["item"][0];
    assert_eq!(
        (
            &item["sequence"],
            &item["productOrService"]["coding"][0]["code"],
            &item["quantity"]["value"]
        ),
        (&Value::from(1), &Value::from("111111"), &Value::from(4))
    );
    let units: Vec<&Value> = item["extension"]
        .as_array()
        .expect("units")
        .iter()
        .map(|x| &x["valueInteger"])
        .collect();
    assert_eq!(units, [&Value::from(244), &Value::from(976)]);
    let values = |parts: &[(String, Value)]| -> Vec<String> {
        parts.iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    let totals = hub_extension(claim, "urn:kaigo-hub:StructureDefinition:ltc-claim-totals");
    assert_eq!(
        values(&totals[0]),
        [
            "service-type=\"11\"",
            "units=976",
            "unit-price=11.40",
            "insurance-claim=8900",
            "user-share=2226"
        ]
    );
    let reduction = hub_extension(claim, "urn:kaigo-hub:StructureDefinition:ltc-reduction");
    assert_eq!(
        values(&reduction[0]),
        [
            "rate=\"250\"",
            "service-type=\"11\"",
            "user-share-due=2226",
            "reduction=556",
            "user-share-after=1670"
        ]
    );
    // d0711c, 様式第八: a 施設's claim; 11 records 食費 1445 × 31 = 44795 (限度 650 × 31 = 20150,
    // 保険分 24645) and 居住費 915 × 31 = 28365 (430 × 31 = 13330, 保険分 15035): claims-csv §5.6.
    let claim = resources_of(&read_json(STATEMENT_GOLDENS[1].2), "Claim")[0].clone();
    assert_eq!(claim["type"]["coding"][0]["code"], "institutional");
    let resident = hub_extension(
        &claim,
        "urn:kaigo-hub:StructureDefinition:ltc-specified-resident",
    );
    let resident: Vec<Vec<String>> = resident.iter().map(|r| values(r)).collect();
    assert_eq!(
        resident,
        [
            [
                "service-code={\"system\":\"urn:kaigo-hub:care-service-code\",\"code\":\"595511\"}",
                "unit-cost=1445",
                "limit=650",
                "days=31",
                "cost=44795",
                "insurance-claim=24645",
                "user-share=20150"
            ],
            [
                "service-code={\"system\":\"urn:kaigo-hub:care-service-code\",\"code\":\"595521\"}",
                "unit-cost=915",
                "limit=430",
                "days=31",
                "cost=28365",
                "insurance-claim=15035",
                "user-share=13330"
            ]
        ]
    );
    // d0711b's first 明細書 has two 02 lines: items 1 and 2, in file order.
    let doc = first_document("samples/claims/d0711b.claim-statement.json");
    let bundle = fhir::bundle_of(&set, &doc, None, &ids).expect("d0711b 1");
    let items: Vec<(i64, String, i64)> = resources_of(&bundle, "Claim")[0]["item"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["sequence"].as_i64().expect("sequence"),
                i["productOrService"]["coding"][0]["code"]
                    .as_str()
                    .expect("code")
                    .to_string(),
                i["quantity"]["value"].as_i64().expect("quantity"),
            )
        })
        .collect();
    assert_eq!(items, [(1, "111111".into(), 8), (2, "112111".into(), 4)]);
}

/// The first document of a sample file (one document or a list of them).
fn first_document(rel: &str) -> Value {
    match read_json(rel) {
        Value::Array(mut docs) => docs.remove(0),
        one => one,
    }
}

fn resources_of<'a>(bundle: &'a Value, rtype: &str) -> Vec<&'a Value> {
    entries(bundle)
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == rtype)
        .collect()
}

#[test]
fn the_survey_care_plan_and_service_usage_samples_become_their_golden_bundles() {
    let (set, ids) = (set(), ids());
    for (sample, golden) in CARE_GOLDENS {
        let doc = first_document(sample);
        let bundle = fhir::bundle_of(&set, &doc, None, &ids).expect(sample);
        assert_eq!(bundle, read_json(golden), "{sample}: differs from {golden}");
    }
}

#[test]
fn the_survey_is_a_questionnaire_response_of_the_74_items_with_its_scales_and_surveyor() {
    let doc = first_document(CARE_GOLDENS[0].0);
    let bundle = read_json(CARE_GOLDENS[0].1);
    let (insurer, insured) = ("131011", "0000012345");
    // One QuestionnaireResponse per application (申請日 2025-09-01, 枝番 1), the surveyor by the
    // municipality's number, the Patient the subject's one.
    let qr_id = expected_id(&[
        "QuestionnaireResponse",
        "subject",
        insurer,
        insured,
        "survey-2025-09-01-1",
    ]);
    let surveyor = expected_id(&[
        "Practitioner",
        "identifier",
        "urn:kaigo-hub:surveyor-number:131011",
        "000123",
    ]);
    let patient = expected_id(&["Patient", "subject", insurer, insured, "patient"]);
    assert_eq!(
        resource_ids(&bundle),
        [
            qr_id.clone(),
            expected_id(&[
                "Observation",
                "subject",
                insurer,
                insured,
                "disability-2025-09-01-1"
            ]),
            expected_id(&[
                "Observation",
                "subject",
                insurer,
                insured,
                "dementia-2025-09-01-1"
            ]),
            surveyor.clone(),
            expected_id(&[
                "Provenance",
                "document",
                &fhir::bundle::canonical_text(&doc)
            ]),
        ]
    );
    let qr = resources_of(&bundle, "QuestionnaireResponse")[0];
    assert_eq!(qr["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(
        qr["author"]["reference"],
        format!("Practitioner/{surveyor}")
    );
    let items = qr["item"].as_array().expect("items");
    assert_eq!(
        items.len(),
        74,
        "every item of the 2009 form, answered in the sample"
    );
    // By hand from ../shared/specs/certification.md §1.3 and §2 (and its worked reading): 2-1 移乗
    // is pattern 10 and the sample answers 2 (見守り等); 5-1 薬の内服 pattern 12, 2 (一部介助);
    // 4-5 同じ話をする pattern 16, 3 (ある); 1-12 視力 pattern 08, 2; 特医-12 カテーテル pattern 01, 2.
    let answer = |link: &str| {
        let i = items
            .iter()
            .find(|i| i["linkId"] == link)
            .unwrap_or_else(|| panic!("no item {link}"));
        let c = &i["answer"][0]["valueCoding"];
        assert_eq!(
            c["system"],
            "urn:kaigo-hub:CodeSystem:basic-survey-answer-2009"
        );
        (
            c["code"].as_str().unwrap_or("").to_string(),
            c["display"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(answer("2-1"), ("10-2".into(), "見守り等".into()));
    assert_eq!(answer("5-1"), ("12-2".into(), "一部介助".into()));
    assert_eq!(answer("4-5"), ("16-3".into(), "ある".into()));
    assert_eq!(
        answer("1-12"),
        ("08-2".into(), "約1m離れた視力確認表の図が見える".into())
    );
    assert_eq!(answer("特医-12"), ("01-2".into(), "ある".into()));
    assert_eq!(items[0]["linkId"], "1-1-1");
    assert_eq!(items[73]["linkId"], "特医-12");
    // 障害高齢者 4 = A1, 認知症高齢者 3 = Ⅱa (spec §1.6), from the QuestionnaireResponse.
    let scales: Vec<(&Value, &Value, &Value)> = resources_of(&bundle, "Observation")
        .iter()
        .map(|o| {
            assert_eq!(
                o["derivedFrom"][0]["reference"],
                format!("QuestionnaireResponse/{qr_id}")
            );
            (
                &o["code"]["coding"][0]["code"],
                &o["valueCodeableConcept"]["coding"][0]["code"],
                &o["valueCodeableConcept"]["coding"][0]["display"],
            )
        })
        .collect();
    assert_eq!(
        scales,
        [
            (
                &Value::from("disability"),
                &Value::from("4"),
                &Value::from("A1")
            ),
            (
                &Value::from("dementia"),
                &Value::from("3"),
                &Value::from("Ⅱa")
            ),
        ]
    );
}

/// The 74 items against the canonical schema, which names each item by its 表示番号 ("2-1 移乗.")
/// and each answer pattern's codes with their labels, written apart from the mapping: every
/// item of the schema is in the QuestionnaireResponse once, with the code the document holds,
/// the pattern the schema's type has and that code's label.
#[test]
fn every_basic_survey_item_has_the_pattern_code_and_label_the_canonical_schema_gives() {
    let schema = kaigo_hub::canonical::DocKind::CertificationSurvey.schema();
    let defs = &schema["$defs"];
    let def = |r: &Value| {
        let name = r["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/"));
        &defs[name.unwrap_or("")]
    };
    let doc = first_document(CARE_GOLDENS[0].0);
    let bundle = read_json(CARE_GOLDENS[0].1);
    let items = resources_of(&bundle, "QuestionnaireResponse")[0]["item"]
        .as_array()
        .expect("items")
        .clone();
    // (表示番号, the value in the document, the pattern type's definition), walking
    // basic_survey's groups and 1-1/1-2's sub-items in schema order.
    fn walk<'a>(
        defs: &'a Value,
        props: &'a Value,
        value: &'a Value,
        out: &mut Vec<(String, &'a Value, &'a Value)>,
    ) {
        for (key, p) in props.as_object().expect("properties") {
            let target = p["anyOf"][0]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(|n| &defs[n])
                .expect("a typed item");
            if target.get("properties").is_some() {
                walk(defs, &target["properties"], &value[key], out);
            } else {
                let number = p["description"].as_str().unwrap_or("");
                let number = number.split(' ').next().unwrap_or("").to_string();
                out.push((number, &value[key], target));
            }
        }
    }
    let mut leaves = Vec::new();
    let groups = defs["BasicSurvey"]["properties"]
        .as_object()
        .expect("groups");
    for (group, p) in groups {
        let g = def(&p["anyOf"][0]);
        walk(
            defs,
            &g["properties"],
            &doc["basic_survey"][group],
            &mut leaves,
        );
    }
    assert_eq!(leaves.len(), 74);
    for (i, (number, value, pattern)) in leaves.iter().enumerate() {
        // 特別な医療's items say 処置内容 etc., not their number: the form numbers them 特医-1 … 12.
        let number = if number.contains('-') {
            number.clone()
        } else {
            format!("特医-{}", i + 1 - 62)
        };
        let item = &items[i];
        assert_eq!(item["linkId"], number.as_str(), "item {i}");
        let code = value.as_str().expect("answered");
        let c = &item["answer"][0]["valueCoding"];
        let (p, n) = c["code"]
            .as_str()
            .and_then(|c| c.split_once('-'))
            .expect("code");
        assert_eq!(n, code, "{number}");
        let about = pattern["description"].as_str().unwrap_or("");
        assert!(
            about.contains(&format!(" {p}")),
            "{number}: pattern {p}, the schema says {about:?}"
        );
        let label = pattern["oneOf"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["const"] == code))
            .and_then(|o| o["description"].as_str())
            .expect("the code's label");
        let display = c["display"].as_str().unwrap_or("");
        assert!(
            label.starts_with(display) && !display.is_empty(),
            "{number}: {display:?} is not {label:?}"
        );
    }
    assert_eq!(items.len(), 74);
}

#[test]
fn the_surveyors_notes_follow_the_items_as_a_group_of_one_item_per_note() {
    // The センター送信 file has no 特記事項: the sample document with two invented ones.
    let mut doc = first_document(CARE_GOLDENS[0].0);
    doc["special_notes"] = serde_json::json!([
        { "item": "2-1", "text": "車いすへの移乗時に見守りが必要。" },
        { "item": "特医-12", "text": "留置カテーテルを使用。" }
    ]);
    let bundle = fhir::bundle_of(&set(), &doc, None, &ids()).expect("bundle");
    let mut schema = Schema::load();
    schema.check("Bundle", &bundle).expect("R4 schema");
    let qr = resources_of(&bundle, "QuestionnaireResponse")[0];
    schema
        .check("QuestionnaireResponse", qr)
        .expect("R4 schema");
    jp_core(qr).expect("hub rules");
    let dir = scratch("notes");
    let files = write_all(&dir, &[("notes".to_string(), bundle.clone())]);
    let v = &independent_check(&files)[&files[0]];
    assert!(v.valid && v.issues.is_empty(), "{:?}", v.issues);
    let _ = std::fs::remove_dir_all(&dir);
    let items = qr["item"].as_array().expect("items");
    assert_eq!(items.len(), 75, "74 answers and the notes");
    assert_eq!(
        items[74],
        serde_json::json!({ "linkId": "特記事項", "text": "特記事項", "item": [
            { "linkId": "特記事項-2-1", "answer": [{ "valueString": "車いすへの移乗時に見守りが必要。" }] },
            { "linkId": "特記事項-特医-12", "answer": [{ "valueString": "留置カテーテルを使用。" }] }
        ] })
    );
}

#[test]
fn the_care_plan_tables_are_one_plan_and_its_parts_and_a_shared_goal_is_one_entry() {
    let (insurer, insured) = ("131011", "0000100001");
    let plan = expected_id(&["CarePlan", "subject", insurer, insured, "plan-2025-10-20"]);
    let office = expected_id(&[
        "Organization",
        "identifier",
        "urn:kaigo-hub:care-office-number",
        "0300000100",
    ]);
    let table1 = read_json(CARE_GOLDENS[1].1);
    assert_eq!(resource_ids(&table1)[..2], [plan.clone(), office.clone()]);
    assert_eq!(
        resources_of(&table1, "CarePlan")[0]["author"]["reference"],
        format!("Organization/{office}")
    );
    // 第2表 and 第3表 arrive in other files: their CarePlans are parts of the 第1表's.
    for golden in [CARE_GOLDENS[2].1, CARE_GOLDENS[3].1] {
        let b = read_json(golden);
        let part = resources_of(&b, "CarePlan")[0];
        assert_eq!(
            part["partOf"][0]["reference"],
            format!("CarePlan/{plan}"),
            "{golden}"
        );
    }
    // 第2表's four rows have two needs with one goal each: two 長期目標 and two 短期目標, each once,
    // every activity naming its two.
    let table2 = read_json(CARE_GOLDENS[2].1);
    let goals = resources_of(&table2, "Goal");
    assert_eq!(goals.len(), 4);
    let long = expected_id(&[
        "Goal",
        "subject",
        insurer,
        insured,
        "goal-2025-10-20-1-1-long",
    ]);
    assert!(goals.iter().any(|g| g["id"] == long.as_str()));
    let activities = resources_of(&table2, "CarePlan")[0]["activity"]
        .as_array()
        .expect("activities");
    assert_eq!(activities.len(), 4);
    assert_eq!(
        activities[1]["detail"]["goal"][0]["reference"],
        format!("Goal/{long}")
    );
    // The provider of row 1 by its 事業所番号, the family (row 2) by name only.
    let provider = expected_id(&[
        "Organization",
        "identifier",
        "urn:kaigo-hub:care-office-number",
        "0300000005",
    ]);
    assert_eq!(
        activities[0]["detail"]["performer"][0]["reference"],
        format!("Organization/{provider}")
    );
    assert_eq!(
        activities[1]["detail"]["performer"][0],
        serde_json::json!({ "display": "長男（架空）" })
    );
}

#[test]
fn a_benefit_management_sheet_is_a_care_plan_of_the_month_with_a_line_per_provider() {
    // d0821a's first 給付管理票: 131011/0000012345, 2025-10, plan office 0300000100; lines
    // 11 (0300000005) 2684, 15 (0300000200) 3000, 13 (0300000300) 1200 単位; 99 line: 支給限度額
    // 19705 (要介護2), 給付計画合計 6884 = 2684 + 3000 + 1200 (claims-csv.md §7).
    let golden = CARE_GOLDENS
        .iter()
        .find(|(s, _)| s.ends_with("d0821a.benefit-management.json"))
        .expect("the 給付管理票 golden");
    let bundle = read_json(golden.1);
    let plans = resources_of(&bundle, "CarePlan");
    assert_eq!(plans.len(), 1);
    let plan = plans[0];
    let (insurer, insured) = ("131011", "0000012345");
    assert_eq!(
        plan["id"],
        expected_id(&[
            "CarePlan",
            "subject",
            insurer,
            insured,
            "benefit-management-2025-10-0300000100"
        ])
    );
    assert_eq!(
        plan["subject"]["reference"],
        format!(
            "Patient/{}",
            expected_id(&["Patient", "subject", insurer, insured, "patient"])
        )
    );
    assert_eq!(
        plan["author"]["reference"],
        format!(
            "Organization/{}",
            expected_id(&[
                "Organization",
                "identifier",
                "urn:kaigo-hub:care-office-number",
                "0300000100"
            ])
        )
    );
    assert_eq!(
        (
            &plan["status"],
            &plan["period"]["start"],
            &plan["period"]["end"]
        ),
        (&"active".into(), &"2025-10".into(), &"2025-10".into())
    );
    assert_eq!(plan["extension"][0]["valueInteger"], 19705);
    assert_eq!(plan["extension"][1]["valueInteger"], 6884);
    let lines: Vec<(String, f64)> = plan["activity"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|a| {
            (
                a["detail"]["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                a["detail"]["quantity"]["value"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("11".into(), 2684.0),
            ("15".into(), 3000.0),
            ("13".into(), 1200.0)
        ]
    );
    let sum: f64 = lines.iter().map(|l| l.1).sum();
    assert_eq!(sum, 6884.0, "the 99 line's 給付計画合計");
}

/// d0812a's first 居宅介護支援 明細書 (様式第七 8124): 131011/0000012345, 2025-10, office
/// 0300000100; lines 01 431111 (1086 × 1) and 99 434001 (300 × 1); the 99 line's 合計 1386 単位
/// × 11.40 = 15,800.4 → 請求金額 15,800 円 (10割, claims-csv.md §6), the Claim's `total`.
#[test]
fn a_care_management_statement_is_a_claim_with_its_total_and_one_item_per_line() {
    let golden = CARE_GOLDENS
        .iter()
        .find(|(s, _)| s.ends_with("d0812a.care-management-statement.json"))
        .expect("the 様式第七 golden");
    let bundle = read_json(golden.1);
    let claims = resources_of(&bundle, "Claim");
    assert_eq!(claims.len(), 1);
    let claim = claims[0];
    let (insurer, insured) = ("131011", "0000012345");
    assert_eq!(
        claim["id"],
        expected_id(&[
            "Claim",
            "subject",
            insurer,
            insured,
            "claim-8124-2025-10-0300000100"
        ])
    );
    assert_eq!(
        claim["provider"]["reference"],
        format!(
            "Organization/{}",
            expected_id(&[
                "Organization",
                "identifier",
                "urn:kaigo-hub:care-office-number",
                "0300000100"
            ])
        )
    );
    assert_eq!(claim["subType"]["coding"][0]["code"], "8124");
    assert_eq!(claim["type"]["coding"][0]["code"], "professional");
    let items: Vec<(String, i64, i64)> = claim["item"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let ext = |url: &str| {
                i["extension"]
                    .as_array()
                    .and_then(|e| e.iter().find(|x| x["url"] == url))
                    .and_then(|x| x["valueInteger"].as_i64())
                    .unwrap_or(-1)
            };
            (
                i["productOrService"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                ext("urn:kaigo-hub:StructureDefinition:ltc-unit-value"),
                ext("urn:kaigo-hub:StructureDefinition:ltc-service-units"),
            )
        })
        .collect();
    assert_eq!(
        items,
        [("431111".into(), 1086, 1086), ("434001".into(), 300, 300)]
    );
    let units: i64 = items.iter().map(|i| i.2).sum();
    let totals = hub_extension(claim, "urn:kaigo-hub:StructureDefinition:ltc-claim-totals");
    assert_eq!(totals.len(), 1);
    let get = |k: &str| {
        totals[0]
            .iter()
            .find(|(u, _)| u == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(get("units"), units, "Σ サービス単位数 = the 99 line's 合計");
    // ⌊1386 × 11.40⌋, in hundredths of a yen to stay exact.
    let price = get("unit-price").to_string();
    assert_eq!(price, "11.40");
    let by_hand = units * 1140 / 100;
    assert_eq!(by_hand, 15_800);
    assert_eq!(get("insurance-claim"), by_hand);
    assert_eq!(claim["total"]["value"], by_hand);
    assert_eq!(claim["total"]["currency"], "JPY");
}

#[test]
fn planned_usage_is_a_care_plan_of_the_month_and_actual_usage_a_charge_item_per_line() {
    let planned = read_json(CARE_GOLDENS[4].1);
    let plans = resources_of(&planned, "CarePlan");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["activity"].as_array().map(Vec::len), Some(4));
    // 2025-11-04 10:00–10:45 111211, Japan time; 114001 without a time on its day.
    assert_eq!(
        plans[0]["activity"][0]["detail"]["scheduledPeriod"],
        serde_json::json!({ "start": "2025-11-04T10:00:00+09:00", "end": "2025-11-04T10:45:00+09:00" })
    );
    assert_eq!(
        plans[0]["activity"][1]["detail"]["scheduledTiming"]["event"][0],
        "2025-11-04"
    );
    let actual = read_json(CARE_GOLDENS[5].1);
    let charges = resources_of(&actual, "ChargeItem");
    assert_eq!(charges.len(), 4, "one per line of the 実績");
    assert!(resources_of(&actual, "CarePlan").is_empty());
    assert_eq!(
        charges[2]["occurrencePeriod"]["start"],
        "2025-11-05T15:10:00+09:00"
    );
    assert_eq!(charges[2]["code"]["coding"][0]["code"], "112311");
    // サービス回数 1, a FHIR decimal (a JSON number, not text).
    assert_eq!(charges[2]["quantity"]["value"], serde_json::json!(1));
    assert_eq!(
        plans[0]["activity"][0]["detail"]["quantity"]["value"],
        serde_json::json!(1)
    );
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

/// Every JSON file in `samples/`, parsed, in path order.
fn sample_json_files() -> Vec<(PathBuf, Value)> {
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
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("read");
            let v = serde_json::from_str(&text).expect("sample is JSON");
            (f, v)
        })
        .collect()
}

/// Every canonical document in `samples/` (a JSON file holding one document or a list of them).
fn sample_documents() -> Vec<(PathBuf, Value)> {
    let mut docs = Vec::new();
    for (f, v) in sample_json_files() {
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

/// The Bundle of every document of [`sample_documents`] that has an outbound FHIR mapping, named
/// `FILE (KIND)`, and the kinds that have none yet. A new mapping's samples join by themselves.
fn sample_bundles() -> (Vec<(String, Value)>, std::collections::BTreeSet<String>) {
    let (set, ids) = (set(), ids());
    let mut bundles = Vec::new();
    let mut not_yet = std::collections::BTreeSet::<String>::new();
    for (file, doc) in sample_documents() {
        let kind = doc["document"].as_str().unwrap_or("?").to_string();
        match fhir::bundle_of(&set, &doc, None, &ids) {
            Ok(b) => bundles.push((format!("{} ({kind})", file.display()), b)),
            Err(FhirOutError::Render(TranslateError::NoOutbound { .. })) => {
                not_yet.insert(kind);
            }
            Err(e) => panic!("{}: {kind}: {e}", file.display()),
        }
    }
    (bundles, not_yet)
}

#[test]
fn every_resource_for_the_shipped_samples_passes_the_r4_schema_and_jp_core_rules() {
    let mut schema = Schema::load();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let (bundles, not_yet) = sample_bundles();
    for (at, bundle) in &bundles {
        schema
            .check("Bundle", bundle)
            .unwrap_or_else(|e| panic!("{at}: Bundle: {e}"));
        for e in entries(bundle) {
            let r = &e["resource"];
            let t = r["resourceType"].as_str().expect("resourceType");
            schema
                .check(t, r)
                .unwrap_or_else(|e| panic!("{at}: {t}: {e}"));
            jp_core(r).unwrap_or_else(|e| panic!("{at}: {t}: {e}"));
            *checked.entry(t.to_string()).or_default() += 1;
        }
        links_resolve(bundle).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    // Samples hold 5 InsuredPerson (2 ADT, 3 センター送信) and 3 InsuranceCard documents.
    assert!(checked["Patient"] >= 8, "{checked:?}");
    assert!(checked["Coverage"] >= 3, "{checked:?}");
    assert!(checked["Provenance"] >= 8, "{checked:?}");
    // And 3 PhysicianOpinion documents (2 医見書 CSV, 1 FHIR), each a document Bundle.
    assert!(checked["Composition"] >= 3, "{checked:?}");
    assert!(!not_yet.contains("InsuredPerson@1") && !not_yet.contains("InsuranceCard@1"));
    // 3 surveys; 6 ケアプラン table documents (2 each of 第1表 and 第2表, 1 第3表 … as shipped),
    // 3 サービス利用票 (2 予定, 1 実績 of 4 lines).
    assert!(checked["QuestionnaireResponse"] >= 3, "{checked:?}");
    assert!(checked["Observation"] >= 6, "{checked:?}");
    assert!(checked["Practitioner"] >= 3, "{checked:?}");
    assert!(
        checked["Goal"] >= 4 && checked["ChargeItem"] >= 4,
        "{checked:?}"
    );
    assert!(checked["CarePlan"] >= 7, "{checked:?}");
    for kind in ["CertificationSurvey@1", "CarePlan@1", "ServiceUsage@1"] {
        assert!(!not_yet.contains(kind), "{kind} has no FHIR mapping");
    }
    // And 3 CertificationApplication (a Task each) and 3 CertificationDecision (two Observations
    // each) from the センター送信 sample, besides the surveys' 6.
    assert!(
        checked["Task"] >= 3 && checked["Observation"] >= 12,
        "{checked:?}"
    );
    assert!(
        !not_yet.contains("CertificationApplication@1")
            && !not_yet.contains("CertificationDecision@1")
    );
    // And 2 請求書 (an Invoice each) and 3 受給者異動連絡票 (a Coverage each).
    assert!(
        checked["Invoice"] >= 2 && checked["Coverage"] >= 6,
        "{checked:?}"
    );
    assert!(!not_yet.contains("ClaimInvoice@1") && !not_yet.contains("RecipientChange@1"));
    // And 3 明細書 (a Claim each: d0711b's two 様式第二, d0711c's 様式第八).
    assert!(checked["Claim"] >= 3, "{checked:?}");
    assert!(!not_yet.contains("ClaimStatement@1"));
    // Every canonical kind: a shipped sample holds one, and an outbound mapping makes its FHIR.
    let sampled: std::collections::BTreeSet<String> = sample_documents()
        .into_iter()
        .filter_map(|(_, d)| d["document"].as_str().map(str::to_string))
        .collect();
    for kind in kaigo_hub::canonical::ALL {
        let kind = kind.name();
        assert!(sampled.contains(kind), "no shipped sample of {kind}");
        assert!(!not_yet.contains(kind), "{kind} has no FHIR mapping");
    }
    eprintln!("checked {checked:?}");
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
    let profile = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Organization";
    let office = serde_json::json!({ "resourceType": "Organization", "meta": { "profile": [profile] },
        "identifier": [{ "system": CARE_OFFICE_NUMBER, "value": "017000001" }] });
    assert!(jp_core(&office).is_err(), "a 事業所番号 has 10 digits");
    let task = serde_json::json!({ "resourceType": "Task", "for": { "reference": "Patient/a" },
        "owner": { "reference": "Organization/b" },
        "code": { "coding": [{ "system": "http://example.org/codes", "code": "x" }] } });
    let e = jp_core(&task).expect_err("a stray code system");
    assert!(e.contains("http://example.org/codes"), "{e}");
    let observation = serde_json::json!({ "resourceType": "Observation", "status": "final",
        "code": { "coding": [{ "code": "x" }] }, "subject": { "reference": "Group/a" } });
    assert!(jp_core(&observation).is_err(), "about a Patient");
    let uncoded = serde_json::json!({ "resourceType": "QuestionnaireResponse",
        "questionnaire": SURVEY_QUESTIONNAIRE, "subject": { "reference": "Patient/p" },
        "item": [{ "linkId": "2-1", "answer": [{ "valueCoding": { "system": SURVEY_ANSWERS, "code": "2" } }] }] });
    assert!(jp_core(&uncoded).is_err(), "an answer without its pattern");
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
                    // 介護保険事業所番号: JP Core has no system for it (docs/fhir.md).
                    CARE_OFFICE_NUMBER => {
                        kaigo_hub::identifiers::ProviderNumber::parse(value)
                            .map_err(|e| format!("Organization.identifier care office: {e}"))?;
                    }
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
        "Practitioner" => {
            profile("JP_Practitioner")?;
            for (system, value) in &identifiers {
                // 認定調査員番号, numbered by the municipality its system names.
                let insurer = system.strip_prefix(SURVEYOR_NUMBER).ok_or(format!(
                    "Practitioner.identifier system {system} is not one the hub writes"
                ))?;
                kaigo_hub::identifiers::InsurerNumber::parse(insurer)
                    .map_err(|e| format!("Practitioner.identifier system's 保険者番号: {e}"))?;
                if value.is_empty() {
                    return Err("Practitioner.identifier without a value".into());
                }
            }
            Ok(())
        }
        "QuestionnaireResponse" if r["questionnaire"] == OPINION_QUESTIONNAIRE => {
            hub_profile(r)?;
            let items = r["item"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            match items
                .iter()
                .find(|i| !i["linkId"].is_string() || !i["answer"][0].is_object())
            {
                Some(i) => Err(format!("item {i}: a linkId and an answer")),
                None => Ok(()),
            }
        }
        "QuestionnaireResponse" => {
            if r["questionnaire"] != SURVEY_QUESTIONNAIRE {
                return Err(format!("questionnaire is not {SURVEY_QUESTIONNAIRE}"));
            }
            patient_subject(r)?;
            let mut seen = std::collections::BTreeSet::new();
            for i in r["item"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let link = i["linkId"].as_str().unwrap_or("");
                if !seen.insert(link) {
                    return Err(format!("item {link} twice"));
                }
                // 特記事項: a group of the notes, one child per note, named by its item.
                if link == "特記事項" {
                    let notes = i["item"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    let ok = |n: &Value| {
                        n["linkId"]
                            .as_str()
                            .is_some_and(|l| l.starts_with("特記事項-"))
                            && n["answer"][0]["valueString"].is_string()
                    };
                    if notes.is_empty() || !notes.iter().all(ok) {
                        return Err("特記事項 is a group of one 特記事項-<item> note each".into());
                    }
                    continue;
                }
                let c = &i["answer"][0]["valueCoding"];
                let code = c["code"].as_str().unwrap_or("");
                let pattern_and_code = code.split_once('-').is_some_and(|(p, n)| {
                    p.len() == 2
                        && !n.is_empty()
                        && (p.to_string() + n).bytes().all(|b| b.is_ascii_digit())
                });
                if c["system"] != SURVEY_ANSWERS
                    || !pattern_and_code
                    || c["display"].as_str().is_none()
                {
                    return Err(format!(
                        "item {link}: answer {c} is not a coded answer of {SURVEY_ANSWERS}"
                    ));
                }
            }
            Ok(())
        }
        "Condition" => profile("JP_Condition"),
        // No JP Core profile for a 主治医意見書 (docs/fhir-physician-opinion.md): the hub's own.
        "Composition" => hub_profile(r),
        // 身長 and 体重 of a 主治医意見書.
        "Observation" if r["category"][0]["coding"][0]["code"] == "vital-signs" => {
            profile("JP_Observation_BodyMeasurement")
        }
        // No JP Core profile for these (docs/fhir.md): base R4, about the subject's Patient.
        "Observation" | "CarePlan" | "Goal" | "ChargeItem" => {
            if r.get("meta").and_then(|m| m.get("profile")).is_some() {
                return Err(format!("{t} claims a profile the hub does not follow"));
            }
            patient_subject(r)?;
            hub_codes(r)
        }
        "Provenance" => {
            let recorded = r.get("recorded").is_some() || r.get("_recorded").is_some();
            if recorded && r["agent"][0]["who"].is_object() && r["target"].is_array() {
                Ok(())
            } else {
                Err("Provenance needs recorded, agent.who and target".into())
            }
        }
        // No JP Core profile: a 事業所's totals, no person; issued by an Organization.
        "Invoice" => {
            if r.get("meta").and_then(|m| m.get("profile")).is_some() {
                return Err("Invoice claims a profile the hub does not follow".into());
            }
            if r.get("subject").is_some() {
                return Err("a 請求書 carries no person".into());
            }
            refers_to(r, "issuer", "Organization")?;
            hub_codes(r)
        }
        // No JP Core profile: a 明細書 of the person, claimed by its 事業所 from the insurer.
        "Claim" => {
            if r.get("meta").and_then(|m| m.get("profile")).is_some() {
                return Err("Claim claims a profile the hub does not follow".into());
            }
            refers_to(r, "patient", "Patient")?;
            refers_to(r, "provider", "Organization")?;
            refers_to(r, "insurer", "Organization")?;
            refers_to(&r["insurance"][0], "coverage", "Coverage")?;
            hub_codes(r)
        }
        // No JP Core profile: the person it is about, and codes from a known code system.
        "Task" => {
            refers_to(r, "for", "Patient")?;
            refers_to(r, "owner", "Organization")?;
            hub_codes(r)
        }
        other => Err(format!("{other}: no JP Core check written for it yet")),
    }
}

/// Every text value of a member named `key`, anywhere in `v` (`reference`, `system`).
fn strings_named<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k == key => out.push(s),
                    _ => strings_named(v, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| strings_named(v, key, out)),
        _ => {}
    }
}

/// `r[element]` is a reference to a resource of type `rtype`.
fn refers_to(r: &Value, element: &str, rtype: &str) -> Result<(), String> {
    match r[element]["reference"].as_str() {
        Some(to) if to.starts_with(&format!("{rtype}/")) => Ok(()),
        _ => Err(format!("{element} must refer to a {rtype}")),
    }
}

/// Every `system` of a coding or identifier is HL7's, JP Core's, UCUM, LOINC or the hub's own
/// (`urn:kaigo-hub:…`, docs/fhir.md), never a stray one.
fn hub_codes(r: &Value) -> Result<(), String> {
    let mut found = Vec::new();
    strings_named(r, "system", &mut found);
    let known = |s: &str| {
        s.starts_with("urn:kaigo-hub:")
            || s.starts_with("http://terminology.hl7.org/CodeSystem/")
            || s.starts_with("http://jpfhir.jp/fhir/core/")
            || s == "http://unitsofmeasure.org"
            || s == "http://loinc.org"
    };
    match found.into_iter().find(|s| !known(s)) {
        Some(s) => Err(format!(
            "code system {s} is neither the hub's nor a known one"
        )),
        None => Ok(()),
    }
}

/// `subject` is a Patient of the Bundle or the subject's keyed one.
fn patient_subject(r: &Value) -> Result<(), String> {
    match r["subject"]["reference"].as_str() {
        // `urn:uuid:` in a document Bundle: document_links_resolve checks it is an entry.
        Some(p) if p.starts_with("Patient/") || p.starts_with("urn:uuid:") => Ok(()),
        _ => Err("subject is not a Patient".into()),
    }
}

/// The hub's own profile, where JP Core has none (docs/fhir-physician-opinion.md).
fn hub_profile(r: &Value) -> Result<(), String> {
    let own = r["meta"]["profile"][0].as_str().unwrap_or("");
    match own.starts_with("urn:kaigo-hub:StructureDefinition:") {
        true => Ok(()),
        false => Err(format!("meta.profile {own} is not the hub's")),
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
    let mut found = Vec::new();
    strings_named(v, "reference", &mut found);
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

/// What the independent validator said of one file: valid or not, and every issue it raised,
/// warnings too (`error Bundle.entry[2].resource.beneficiary: Missing required property`).
#[derive(Debug)]
struct Verdict {
    valid: bool,
    issues: Vec<String>,
}

/// Runs the independent FHIR R4 validator, `tests/fhir-validate/validate.sh` (Medplum's
/// `validateResource` with the R4 StructureDefinitions; docs/decisions.md says why), on `files`.
/// The script installs its pinned npm packages under target/tmp the first time; without node, npm
/// or the registry the test fails, saying so: it is never skipped.
fn independent_check(files: &[PathBuf]) -> std::collections::BTreeMap<PathBuf, Verdict> {
    let out = Command::new("bash")
        .arg(root().join("tests/fhir-validate/validate.sh"))
        .args(files)
        .env(
            "FHIR_VALIDATOR_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("fhir-validate"),
        )
        .output()
        .expect("bash runs tests/fhir-validate/validate.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the independent FHIR validator did not run ({}): {}{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut verdicts = std::collections::BTreeMap::new();
    let mut current = None;
    for line in stdout.lines() {
        if let Some(issue) = line.strip_prefix("  ") {
            let file = current.as_ref().expect("an issue after its file's line");
            let v: &mut Verdict = verdicts.get_mut(file).expect("file seen");
            v.issues.push(issue.to_string());
        } else if let Some((verdict, file)) = line.split_once(' ') {
            let file = PathBuf::from(file);
            let valid = verdict == "ok";
            assert!(valid || verdict == "invalid", "validator said {line:?}");
            verdicts.insert(
                file.clone(),
                Verdict {
                    valid,
                    issues: vec![],
                },
            );
            current = Some(file);
        }
    }
    for f in files {
        assert!(
            verdicts.contains_key(f),
            "no verdict for {}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(out.status.success(), verdicts.values().all(|v| v.valid));
    verdicts
}

/// Writes each value as `<dir>/<name>.json` and returns the files.
fn write_all(dir: &Path, values: &[(String, Value)]) -> Vec<PathBuf> {
    values
        .iter()
        .map(|(name, v)| {
            let f = dir.join(format!("{name}.json"));
            std::fs::write(&f, serde_json::to_vec_pretty(v).expect("JSON")).expect("write");
            f
        })
        .collect()
}

#[test]
fn every_bundle_for_the_shipped_samples_passes_an_independent_r4_validator() {
    let dir = scratch("independent");
    let (bundles, not_yet) = sample_bundles();
    let numbered: Vec<(String, Value)> = bundles
        .iter()
        .enumerate()
        .map(|(i, (_, b))| (format!("bundle-{i:03}"), b.clone()))
        .collect();
    let mut files = write_all(&dir, &numbered);
    let mut at: Vec<String> = bundles.into_iter().map(|(at, _)| at).collect();
    // The FHIR the samples ship as it is: the inputs (samples/fhir) and the golden Bundles.
    for (f, v) in sample_json_files() {
        if v.get("resourceType").is_some() {
            at.push(f.display().to_string());
            files.push(f);
        }
    }
    let verdicts = independent_check(&files);
    let mut failed = Vec::new();
    for (f, at) in files.iter().zip(&at) {
        let v = &verdicts[f];
        // A document Bundle's references are `urn:uuid:` fullUrls, as JP-CLINS writes them,
        // whose type the validator does not resolve: the one warning it may have (as the
        // JP-CLINS examples below); document_links_resolve checks each is an entry.
        let issues: Vec<&String> = v
            .issues
            .iter()
            .filter(|w| {
                !(w.starts_with("warning ") && w.contains("Invalid reference: got \"urn:uuid:"))
            })
            .collect();
        if !v.valid || !issues.is_empty() {
            failed.push(format!("{at}:\n{}", v.issues.join("\n")));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // 5 InsuredPerson and 3 InsuranceCard documents at least, and 2 golden Bundles.
    assert!(numbered.len() >= 8, "{} Bundles", numbered.len());
    assert!(files.len() >= numbered.len() + 2);
    eprintln!(
        "independent R4 validator: {} Bundles and {} shipped FHIR files valid, no issue; no FHIR mapping yet for {not_yet:?}",
        numbered.len(),
        files.len() - numbered.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_independent_validator_rejects_what_r4_forbids_and_accepts_the_golden() {
    let golden = read_json("samples/xml/card-sjis.fhir-transaction.json");
    // (name, the change to the golden Bundle, what the validator must say of it)
    type Change = fn(&mut Value);
    let cases: [(&str, Change, &str); 8] = [
        ("golden", |_| {}, ""),
        (
            "unknown-element",
            |b| b["entry"][0]["resource"]["bogus"] = true.into(),
            "error Bundle.entry[0].resource.bogus: Invalid additional property",
        ),
        (
            "required-missing",
            |b| {
                drop(
                    b["entry"][2]["resource"]
                        .as_object_mut()
                        .map(|r| r.remove("beneficiary")),
                )
            },
            "error Bundle.entry[2].resource.beneficiary: Missing required property",
        ),
        (
            "at-least-one",
            // The Provenance: after the Patient, the insurer, the Coverage and the care office.
            |b| b["entry"][4]["resource"]["target"] = serde_json::json!([]),
            "error Bundle.entry[4].resource.target: Missing required property",
        ),
        (
            "at-most-one",
            |b| b["entry"][0]["resource"]["gender"] = serde_json::json!(["female", "male"]),
            "error Bundle.entry.resource.gender: Expected single value for property",
        ),
        (
            "transaction-entry-without-request",
            |b| drop(b["entry"][1].as_object_mut().map(|e| e.remove("request"))),
            "error Bundle: Constraint bdl-3 not met",
        ),
        (
            "instant-without-offset",
            |b| b["timestamp"] = "2025-09-01T17:45:12".into(),
            "error Bundle.timestamp: Invalid instant format",
        ),
        (
            // A warning; the samples' test fails on warnings too.
            "beneficiary-an-organization",
            |b| {
                b["entry"][2]["resource"]["beneficiary"]["reference"] =
                    b["entry"][1]["request"]["url"].clone()
            },
            "warning Bundle.entry[2].resource.beneficiary: Invalid reference",
        ),
    ];
    let dir = scratch("independent-fails");
    let values: Vec<(String, Value)> = cases
        .iter()
        .map(|(name, change, _)| {
            let mut b = golden.clone();
            change(&mut b);
            (name.to_string(), b)
        })
        .collect();
    let files = write_all(&dir, &values);
    let verdicts = independent_check(&files);
    for ((name, _, must_say), f) in cases.iter().zip(&files) {
        let v = &verdicts[f];
        if must_say.is_empty() {
            assert!(v.valid && v.issues.is_empty(), "{name}: {v:?}");
            continue;
        }
        assert_eq!(v.valid, must_say.starts_with("warning"), "{name}: {v:?}");
        assert!(
            v.issues.iter().any(|x| x.starts_with(must_say)),
            "{name}: {v:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_jp_clins_examples_pass_the_independent_validator() {
    let dir = root().join("../shared/fixtures/jp-clins/ExampleJson");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("../shared/fixtures/jp-clins/ExampleJson")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 61, "the 61 JP-CLINS examples");
    let verdicts = independent_check(&files);
    let invalid: Vec<_> = verdicts
        .iter()
        .filter(|(_, v)| !v.valid)
        .map(|(f, v)| format!("{}: {:?}", f.display(), v.issues))
        .collect();
    // Base R4 only: JP Core and JP-CLINS profiles, their extensions' definitions and the errors
    // the three *ErrorExample* files carry (missing JP-CLINS codes) are beyond it.
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    // Its one warning on them: a `urn:uuid:` reference (to a Bundle entry's fullUrl), whose
    // target type it does not look up.
    let warnings: Vec<&String> = verdicts.values().flat_map(|v| &v.issues).collect();
    let other: Vec<_> = warnings
        .iter()
        .filter(|w| {
            !(w.starts_with("warning ") && w.contains("Invalid reference: got \"urn:uuid:"))
        })
        .collect();
    assert!(other.is_empty(), "{other:?}");
    eprintln!(
        "61 JP-CLINS examples valid R4; {} warnings, all on urn:uuid references",
        warnings.len()
    );
}
