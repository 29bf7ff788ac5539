//! Each identifier rule gives the same answer from every door: the mapping's `check:`, a
//! canonical document's validation, the consent CSV import and the FHIR `Consent` import accept
//! the same 保険者番号 and 被保険者番号 (carrying the same text) and refuse the same ones — a
//! `00`-padded 8-digit 保険者番号 as its 6 digits everywhere, an 8-digit 医療 number, a wrong check
//! digit, 5 or 7 digits and full-width digits nowhere. A value one door accepted can therefore never
//! be refused by the next as an unknown person.

use kaigo_hub::canonical::DocKind;
use kaigo_hub::consent::csv_import::consents_from_csv;
use kaigo_hub::consent::fhir_import::consents_from_fhir;
use kaigo_hub::mapping::check_digit::IdRule;
use serde_json::{Value, json};

/// A valid pair to go with the value under test.
const INSURER: &str = "131011";
const INSURED: &str = "0000100001";

/// 保険者番号 → what every door must carry (`None`: refused).
const INSURER_NUMBERS: [(&str, Option<&str>); 10] = [
    ("131011", Some("131011")),
    ("435073", Some("435073")),
    ("00132019", Some("132019")),
    ("00435073", Some("435073")),
    ("06132013", None),
    ("00132018", None),
    ("435074", None),
    ("13101", None),
    ("1310111", None),
    ("４３５０７３", None),
];

/// 被保険者番号 → what every door must carry (`None`: refused).
const INSURED_NUMBERS: [(&str, Option<&str>); 7] = [
    ("0000100001", Some("0000100001")),
    ("H123456789", Some("H123456789")),
    ("h123456789", None),
    ("000010001", None),
    ("00001000011", None),
    ("000010000１", None),
    ("", None),
];

/// What each door made of a subject: (保険者番号, 被保険者番号) as carried, or refused.
type Answer = Option<(String, String)>;

fn by_mapping(insurer: &str, insured: &str) -> Answer {
    let a = IdRule::InsurerNumber.check(insurer).ok()?;
    let b = IdRule::InsuredNumber.check(insured).ok()?;
    Some((a.into_owned(), b.into_owned()))
}

fn by_canonical(insurer: &str, insured: &str) -> Answer {
    let doc = json!({
        "document": "CarePlan@1",
        "subject": {"insurer_number": insurer, "insured_number": insured},
        "plan_date": "2025-10-01"
    });
    let text = DocKind::CarePlan.validate(doc).ok()?;
    let back: Value = serde_json::from_str(&text).expect("validate writes JSON");
    subject_of(&back["subject"])
}

fn by_consent_csv(insurer: &str, insured: &str) -> Answer {
    let text = format!(
        "insurer_number,insured_number,grantee,categories,valid_from,valid_to,purpose\n\
         {insurer},{insured},platform,care-plan,2024-04-01,,\n"
    );
    let consents = consents_from_csv(&text).ok()?;
    let s = &consents[0].subject;
    Some((s.insurer_number.to_string(), s.insured_number.to_string()))
}

fn by_fhir_consent(insurer: &str, insured: &str) -> Answer {
    let resource = json!({
        "resourceType": "Consent",
        "id": "rules-1",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "contained": [{
            "resourceType": "Patient",
            "id": "subject",
            "identifier": [
                {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber", "value": insurer},
                {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber", "value": insured}
            ]
        }],
        "patient": {"reference": "#subject"},
        "dateTime": "2024-04-01T10:00:00+09:00",
        "provision": {
            "type": "permit",
            "period": {"start": "2024-04-01"},
            "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"identifier": {
                    "system": "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no",
                    "value": "1312345678"
                }}
            }],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}],
            "class": [{"system": "urn:kaigo-hub:consent-category", "code": "care-plan"}]
        }
    });
    let consents = consents_from_fhir(&resource).ok()?;
    let s = &consents[0].subject;
    Some((s.insurer_number.to_string(), s.insured_number.to_string()))
}

fn subject_of(v: &Value) -> Answer {
    Some((
        v["insurer_number"].as_str()?.to_owned(),
        v["insured_number"].as_str()?.to_owned(),
    ))
}

/// Every door's answer for one subject, named.
fn answers(insurer: &str, insured: &str) -> [(&'static str, Answer); 4] {
    [
        ("mapping check", by_mapping(insurer, insured)),
        ("canonical validation", by_canonical(insurer, insured)),
        ("consent CSV import", by_consent_csv(insurer, insured)),
        ("FHIR Consent import", by_fhir_consent(insurer, insured)),
    ]
}

#[test]
fn every_door_accepts_and_refuses_the_same_insurer_numbers() {
    for (value, carried) in INSURER_NUMBERS {
        let expected = carried.map(|c| (c.to_owned(), INSURED.to_owned()));
        for (door, answer) in answers(value, INSURED) {
            assert_eq!(answer, expected, "保険者番号 `{value}` at the {door}");
        }
    }
}

#[test]
fn every_door_accepts_and_refuses_the_same_insured_numbers() {
    for (value, carried) in INSURED_NUMBERS {
        let expected = carried.map(|c| (INSURER.to_owned(), c.to_owned()));
        for (door, answer) in answers(INSURER, value) {
            assert_eq!(answer, expected, "被保険者番号 `{value}` at the {door}");
        }
    }
}
