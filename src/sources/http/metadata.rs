//! `GET /fhir/metadata`: the FHIR R4 `CapabilityStatement` of this server — what a client may do
//! here, served without a key as FHIR requires. It states only what the routes in `http.rs`
//! implement: create Bundle and Patient (through the mappings), create Consent, search AuditEvent.

use super::audit_search::SEARCH_PARAMS;
use super::outcome::resource;
use crate::pipeline::clock;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};

/// The statement.
pub fn statement() -> Value {
    let create = || json!([{ "code": "create" }]);
    let search_params: Vec<Value> = SEARCH_PARAMS
        .iter()
        .map(|(name, doc)| json!({ "name": name, "type": "token", "documentation": doc }))
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": clock::now_rfc3339(),
        "publisher": "kaigo-hub",
        "kind": "instance",
        "software": { "name": "kaigo-hub", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "kaigo-hub: interoperability hub for Japan's long-term-care information platform (介護情報基盤)"
        },
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "POST /fhir takes a Bundle, POST /fhir/{type} one resource of that type; both answer 202 with an OperationOutcome and X-Kaigo-Envelope once the message is on the hub's bus. Every answer about a submission is an OperationOutcome.",
            "security": {
                "cors": false,
                "description": "Send `Authorization: Bearer <API key>`, or, where the hub serves HTTPS with client certificates, present the client certificate registered to your organisation (its SHA-256 fingerprint); the key or certificate names the sending party. A certificate and a key sent together must belong to the same party. Consent registration and AuditEvent search are for municipalities and the platform."
            },
            "resource": [
                {
                    "type": "Bundle",
                    "interaction": create(),
                    "documentation": "POST /fhir (or /fhir/Bundle): a Bundle whose Patient entries are mapped to InsuredPerson"
                },
                {
                    "type": "Patient",
                    "profile": "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient",
                    "interaction": create(),
                    "documentation": "POST /fhir/Patient: a JP Core Patient, mapped to InsuredPerson"
                },
                {
                    "type": "Consent",
                    "interaction": create(),
                    "documentation": "POST /fhir/Consent: registers the grants of a Consent (municipality or platform only); 201 with X-Kaigo-Consent"
                },
                {
                    "type": "AuditEvent",
                    "interaction": [{ "code": "search-type" }],
                    "searchParam": search_params,
                    "documentation": "GET /fhir/AuditEvent (municipality or platform only); _count defaults to 100, at most 1000"
                }
            ]
        }]
    })
}

/// `GET /fhir/metadata`.
pub async fn capability_statement() -> HttpResponse {
    resource(StatusCode::OK, &statement())
}
