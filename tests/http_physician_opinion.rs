//! A hospital's EHR posts a 主治医意見書 as the FHIR document of docs/fhir-physician-opinion.md
//! to `POST /fhir` of a running hub (in-memory bus). The hub reads it into `PhysicianOpinion@1`
//! by content, takes it only from the party whose 医療機関コード the document names, asks consent
//! as for any document of the certification category, and delivers it: to the care manager as
//! the canonical document, to a visiting-nurse station that subscribes in format `fhir` as the
//! document Bundle again — with the test key, the guide's example itself.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use serde_json::Value;

/// The clinic of the sample opinion (its 医療機関コード), with its API key `test-clinic-key`.
const CLINIC: &str = "1320000017";
const CLINIC_KEY: &str = "test-clinic-key";
/// A visiting-nurse station that wants the opinion as FHIR, into its directory.
const NURSES: &str = "0300000200";
/// The person of the example (the 2026 sample opinion).
const PERSON: (&str, &str) = ("131011", "0000012346");
/// The test key of tests/fhir_out.rs, the one the example was made with.
const TEST_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The demo parties, with the clinic (an API key, no inbox) and the nurses (a FHIR subscriber).
fn with_clinic_and_nurses(text: String) -> String {
    let base = text
        .split("delivery: { dir: ")
        .nth(1)
        .and_then(|rest| rest.split("/data/out/").next())
        .expect("a delivery dir in the demo parties")
        .to_string();
    let added = format!(
        "parties:\n  - id: \"{CLINIC}\"\n    name: 試験内科クリニック\n    kind: hospital\n    \
         api_keys_sha256: [\"10ddc58b191e3ec181a3d1acd56e3be92e424f5dd9885c51f75f227245d06813\"]\n  \
         - id: \"{NURSES}\"\n    name: 試験訪問看護ステーション\n    kind: provider\n    receives:\n      \
         - {{ document: PhysicianOpinion@1, format: fhir }}\n    delivery: {{ dir: {base}/data/out/{NURSES} }}\n"
    );
    text.replacen("parties:\n", &added, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_opinion_document_is_delivered_as_the_opinion_and_as_the_same_document() {
    let s = Scratch::memory("http-opinion", with_clinic_and_nurses);
    let mut cfg = s.config();
    cfg.subject_key = Some(TEST_KEY_HEX.into());
    let running = s.start_with(&cfg).await;
    let hub = running.hub.clone();
    let example = sample("fhir/physician-opinion-document.json");

    // Another hospital may not send the clinic's opinion: a party sends only as itself.
    let r = post_fhir(running.http_addr, "/fhir", "demo-hospital-key", &example).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("sender-mismatch"), "{}", r.text());

    // The clinic, before the person consented: kept in quarantine, nothing delivered.
    let r = post_fhir(running.http_addr, "/fhir", CLINIC_KEY, &example).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("consent-denied"), "{}", r.text());
    for personal in ["0000012346", "花子", "1938"] {
        assert!(!r.text().contains(personal), "{}", r.text());
    }

    let cert = [Category::Certification];
    grant(
        &hub,
        "po-platform",
        PERSON,
        Grantee::Kind(PartyKind::Platform),
        &cert,
    )
    .await;
    grant(
        &hub,
        "po-providers",
        PERSON,
        Grantee::Kind(PartyKind::Provider),
        &cert,
    )
    .await;
    let r = post_fhir(running.http_addr, "/fhir", CLINIC_KEY, &example).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let envelope = r
        .header("x-kaigo-envelope")
        .expect("202 names the envelope");
    let name = format!("{envelope}-0.json");

    let (_, body) = wait_for_file(&s.out_dir(CARE_MANAGER), "the opinion", |n| n == name).await;
    let opinion = json(&body);
    let expected: Value = json(&sample("fhir/physician-opinion.json"));
    assert_eq!(
        opinion, expected,
        "the canonical opinion, source.sender the clinic"
    );

    let (_, body) = wait_for_file(&s.out_dir(NURSES), "the FHIR document", |n| n == name).await;
    assert_eq!(json(&body), json(&example), "the same document back");
    running.stop().await;
}
