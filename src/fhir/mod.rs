//! FHIR out: what the hub adds around the resources an outbound FHIR mapping renders. The YAML
//! mappings say what each resource holds; this module makes one Bundle per canonical document,
//! a `transaction` ([`bundle`]) or, when the mapping's container Bundle says `type: document`,
//! a `document` ([`document`]), with private, deterministic resource ids ([`ids`]) and a
//! Provenance. [`render`] is the one place deliver and `translate --to` render a format, and
//! [`bundle_of`] the one that chooses a document's Bundle. In: canonical documents, the mapping set, the deployment's key. Out: Bundles, one
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
    /// `fhir` was asked for without the deployment's id key.
    #[error("FHIR needs the deployment's id key (the subject key) to make resource ids")]
    NoKey,
}

impl Disclose for FhirOutError {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FhirOutError::Render(e) => e.fmt_for_sender(f),
            FhirOutError::Bundle(e) => std::fmt::Display::fmt(e, f),
            FhirOutError::NoKey => std::fmt::Display::fmt(self, f),
        }
    }
}

/// What a recipient of format `to` receives for `docs`: the outbound mapping's rendering, and for
/// `fhir` one Bundle per document ([`bundle_of`]), each a JSON text. The one place deliver and
/// `translate --to` render; `ids` is needed for `fhir` only.
pub fn render(
    set: &MappingSet,
    docs: Vec<Value>,
    to: &str,
    mapping: Option<&str>,
    ids: Option<&ResourceIds>,
) -> Result<Rendered, FhirOutError> {
    if to != "fhir" {
        return Ok(set.render_owned(docs, to, mapping)?);
    }
    let ids = ids.ok_or(FhirOutError::NoKey)?;
    let bundles = bundles(set, &docs, mapping, ids)?;
    Ok(Rendered::Json(
        bundles.iter().map(Value::to_string).collect(),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_makes_the_bundle_for_fhir_and_needs_the_key_for_it_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let set = MappingSet::load_dir(&root.join("mappings")).expect("shipped mappings");
        let doc: Value =
            serde_json::from_str(include_str!("../../samples/fhir/physician-opinion.json"))
                .expect("sample");
        let e = render(&set, vec![doc.clone()], "fhir", None, None).expect_err("no key");
        assert!(matches!(e, FhirOutError::NoKey), "{e}");
        let ids = ResourceIds::new(&[7u8; 32]).expect("key");
        let Rendered::Json(texts) =
            render(&set, vec![doc.clone()], "fhir", None, Some(&ids)).expect("fhir")
        else {
            panic!("JSON");
        };
        let bundle: Value = serde_json::from_str(&texts[0]).expect("JSON");
        assert_eq!(texts.len(), 1);
        assert_eq!(bundle["type"], "document");
        assert_eq!(bundle, bundle_of(&set, &doc, None, &ids).expect("bundle"));
        let e = render(&set, vec![doc], "csv", None, None).expect_err("no CSV mapping");
        assert!(matches!(e, FhirOutError::Render(_)), "{e}");
    }
}
