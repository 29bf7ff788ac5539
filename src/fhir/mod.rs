//! FHIR out: what the hub adds around the resources an outbound FHIR mapping renders. The YAML
//! mappings say what each resource holds; this module makes one Bundle per canonical document,
//! a `transaction` ([`bundle`]) or, when the mapping's container Bundle says `type: document`,
//! a `document` ([`document`]), with private, deterministic resource ids ([`ids`]) and a
//! Provenance. [`bundle_of`] is the one place that chooses, for deliver and `translate --to
//! fhir` alike. In: canonical documents, the mapping set, the deployment's key. Out: Bundles, one
//! per document. It never reads the clock: the same document and key give the same bytes.
//! docs/fhir.md is the integrator's guide to what comes out.

pub mod bundle;
pub mod document;
pub mod ids;

pub use bundle::{BundleError, transaction};
pub use document::document;
pub use ids::{IdKeyError, ResourceId, ResourceIds};

use serde_json::Value;

use crate::mapping::{MappingSet, Rendered, TranslateError};
use crate::redact::Disclose;

/// Why a document could not go out as FHIR: its mapping failed, or its resources could not be
/// wrapped.
#[derive(Debug, thiserror::Error)]
pub enum FhirOutError {
    /// The outbound mapping failed (its `Display` is value-free; `for_sender` quotes values).
    #[error(transparent)]
    Render(#[from] TranslateError),
    /// The Bundle could not be made.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl Disclose for FhirOutError {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FhirOutError::Render(e) => e.fmt_for_sender(f),
            FhirOutError::Bundle(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

/// One Bundle per document of `docs` ([`bundle_of`]), each rendered by the named outbound FHIR
/// `mapping` or the one whose match rule fits it.
pub fn bundles(
    set: &MappingSet,
    docs: &[Value],
    mapping: Option<&str>,
    ids: &ResourceIds,
) -> Result<Vec<Value>, FhirOutError> {
    docs.iter()
        .map(|doc| bundle_of(set, doc, mapping, ids))
        .collect()
}

/// The Bundle of one document: a `document` Bundle when the mapping's container Bundle is
/// `type: document`, otherwise a `transaction` Bundle (docs/fhir.md).
pub fn bundle_of(
    set: &MappingSet,
    doc: &Value,
    mapping: Option<&str>,
    ids: &ResourceIds,
) -> Result<Value, FhirOutError> {
    let resources: Vec<Value> = match set.render(std::slice::from_ref(doc), "fhir", mapping)? {
        Rendered::Json(texts) => texts
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect(),
        Rendered::Csv(_) => Vec::new(),
    };
    if bundle::container_type(&resources) == Some("document") {
        return Ok(document::document(ids, doc, resources)?);
    }
    Ok(bundle::transaction(ids, doc, resources)?)
}
