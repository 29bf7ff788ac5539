//! kaigo-hub: an interoperability hub for Japan's long-term-care information platform
//! (介護情報基盤). Hospital EHRs (FHIR R4, HL7 v2 SS-MIX2) and care software (vendor XML,
//! ケアプラン CSV) are translated into the platform's canonical documents by declarative mapping
//! files, and back into each recipient's format. See `../shared/DESIGN.md` for the house plan.
//!
//! - [`formats`]: bytes ⇄ navigable trees (HL7 v2, FHIR JSON, XML, CSV, Japanese charsets)
//! - [`mapping`]: mapping files → compiled plans → canonical documents and outbound formats
//! - [`canonical`]: the canonical documents, typed and versioned, with JSON Schemas
//! - [`console`]: the operators' web console at `/console` (sign-in, roles, the flow picture)
//! - [`consent`]: consent grants, revocations and three-valued decisions (permit/deny/indeterminate)
//! - [`audit`]: the hash-chained, append-only audit log, its verification and FHIR export
//! - [`fhir`]: FHIR out: one transaction Bundle per document, keyed ids, Provenance
//! - [`redact`]: errors that keep a message's values apart, for its sender only
//! - [`trace`]: one message's journey from the audit log and the archive, and the search

pub mod audit;
pub mod bus;
pub mod calendar;
pub mod canonical;
pub mod config;
pub mod consent;
pub mod console;
pub mod demo;
pub mod fhir;
pub mod formats;
pub mod identifiers;
pub mod key_file;
pub mod mapping;
pub mod parties;
pub mod pem;
pub mod pipeline;
pub mod redact;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod trace;
pub(crate) mod validated;
