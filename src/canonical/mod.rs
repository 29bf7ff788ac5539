//! The platform's canonical documents: typed, versioned (`InsuredPerson@1`), each with a JSON
//! Schema generated from its Rust type. Mappings produce JSON that must deserialize into one of
//! these types; that is the validation. A published version never changes in place: a change of
//! shape is a new version beside the old one.

mod declare;

pub mod basic_survey;
pub mod benefit_management;
pub mod care_management_statement;
pub mod care_plan;
pub mod certification_application;
pub mod certification_codes;
pub mod certification_decision;
pub mod certification_survey;
pub mod claim_invoice;
pub mod claim_statement;
pub mod common;
pub mod insurance_card;
pub mod insured_person;
pub mod physician_opinion;
pub mod plan_check;
pub mod recipient_change;
pub mod schema_walk;
pub mod service_usage;

use crate::redact::{Disclose, Quoted};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every canonical document kind and version this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// `InsuredPerson@1`
    InsuredPerson,
    /// `InsuranceCard@1`
    InsuranceCard,
    /// `CarePlan@1`
    CarePlan,
    /// `ServiceUsage@1`
    ServiceUsage,
    /// `CertificationApplication@1`
    CertificationApplication,
    /// `CertificationSurvey@1`
    CertificationSurvey,
    /// `CertificationDecision@1`
    CertificationDecision,
    /// `PhysicianOpinion@1`
    PhysicianOpinion,
    /// `ClaimInvoice@1`
    ClaimInvoice,
    /// `ClaimStatement@1`
    ClaimStatement,
    /// `RecipientChange@1`
    RecipientChange,
    /// `BenefitManagement@1`
    BenefitManagement,
    /// `CareManagementStatement@1`
    CareManagementStatement,
}

/// All kinds, for listings and `--help`.
pub const ALL: [DocKind; 13] = [
    DocKind::InsuredPerson,
    DocKind::InsuranceCard,
    DocKind::CarePlan,
    DocKind::ServiceUsage,
    DocKind::CertificationApplication,
    DocKind::CertificationSurvey,
    DocKind::CertificationDecision,
    DocKind::PhysicianOpinion,
    DocKind::ClaimInvoice,
    DocKind::ClaimStatement,
    DocKind::RecipientChange,
    DocKind::BenefitManagement,
    DocKind::CareManagementStatement,
];

/// Why a JSON value is not a valid canonical document. `Display` says what is wrong without the
/// value (serde's words quote it: `invalid type: string "…"`); its sender reads serde's words.
#[derive(Debug, thiserror::Error)]
#[error("not a valid {kind}: {message}")]
pub struct InvalidDocument {
    /// The document kind and version, e.g. `CarePlan@1`.
    pub kind: &'static str,
    /// What is wrong, value-free.
    pub message: String,
    /// serde's own words, which may quote the value: for the sender only.
    pub detail: Option<Quoted>,
}

impl Disclose for InvalidDocument {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let said = self
            .detail
            .as_ref()
            .map_or(self.message.as_str(), Quoted::reveal);
        write!(f, "not a valid {}: {said}", self.kind)
    }
}

impl InvalidDocument {
    fn serde(kind: DocKind, e: &serde_json::Error) -> InvalidDocument {
        let said = e.to_string();
        InvalidDocument {
            kind: kind.name(),
            message: without_values(&said),
            detail: Some(Quoted::new(said)),
        }
    }
}

/// serde's data-error words with the value taken out: the kind of value found (`a string`),
/// what was expected, and field names (which the mapping wrote, not the message). Words serde
/// does not use for these errors are not repeated at all.
fn without_values(said: &str) -> String {
    /// serde's `Unexpected` words, longest first where one starts another.
    const KINDS: [&str; 18] = [
        "number",
        "null",
        "boolean",
        "integer",
        "floating point",
        "character",
        "string",
        "byte array",
        "unit value",
        "Option value",
        "newtype struct",
        "sequence",
        "map",
        "unit variant",
        "newtype variant",
        "tuple variant",
        "struct variant",
        "enum",
    ];
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = said.strip_prefix(lead)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            let kind = KINDS
                .iter()
                .find(|k| found.starts_with(*k))
                .copied()
                .unwrap_or("value");
            return format!("{lead}{kind}, expected {expected}");
        }
    }
    if let Some(rest) = said.strip_prefix("unknown variant `")
        && let Some((_, expected)) = rest.rsplit_once("`, expected ")
    {
        return format!("unknown variant, expected {expected}");
    }
    let keeps = [
        "invalid length ",
        "missing field `",
        "unknown field `",
        "duplicate field `",
    ];
    if keeps.iter().any(|k| said.starts_with(k)) {
        return said.to_string();
    }
    "the document does not fit its schema".to_string()
}

impl DocKind {
    /// The versioned name, e.g. `InsuredPerson@1`.
    pub fn name(self) -> &'static str {
        match self {
            DocKind::InsuredPerson => "InsuredPerson@1",
            DocKind::InsuranceCard => "InsuranceCard@1",
            DocKind::CarePlan => "CarePlan@1",
            DocKind::ServiceUsage => "ServiceUsage@1",
            DocKind::CertificationApplication => "CertificationApplication@1",
            DocKind::CertificationSurvey => "CertificationSurvey@1",
            DocKind::CertificationDecision => "CertificationDecision@1",
            DocKind::PhysicianOpinion => "PhysicianOpinion@1",
            DocKind::ClaimInvoice => "ClaimInvoice@1",
            DocKind::ClaimStatement => "ClaimStatement@1",
            DocKind::RecipientChange => "RecipientChange@1",
            DocKind::BenefitManagement => "BenefitManagement@1",
            DocKind::CareManagementStatement => "CareManagementStatement@1",
        }
    }

    /// The platform category the document belongs to (DESIGN §7).
    pub fn category(self) -> &'static str {
        match self {
            DocKind::InsuredPerson
            | DocKind::InsuranceCard
            | DocKind::CertificationApplication
            | DocKind::CertificationSurvey
            | DocKind::CertificationDecision
            | DocKind::PhysicianOpinion
            | DocKind::RecipientChange => "certification",
            DocKind::CarePlan | DocKind::ServiceUsage => "care-plan",
            DocKind::ClaimInvoice
            | DocKind::ClaimStatement
            | DocKind::BenefitManagement
            | DocKind::CareManagementStatement => "claims",
        }
    }

    /// Does a document of this kind carry a person (a `subject` in its schema)? One that does not
    /// (a 請求書: the provider's own totals) is admitted and delivered without subject resolution
    /// and without consent, and only a mapping that says `subject: none` may make it. The kind
    /// decides, never the document: a mapping cannot turn consent off for a person's document.
    pub fn carries_subject(self) -> bool {
        !matches!(self, DocKind::ClaimInvoice)
    }

    /// Looks a kind up by `Name@version`, or by bare name meaning the latest version.
    pub fn parse(s: &str) -> Option<DocKind> {
        ALL.into_iter()
            .find(|k| k.name() == s || k.name().split('@').next() == Some(s))
    }

    /// The JSON Schema of this document (draft 2020-12), with Japanese terms in descriptions.
    pub fn schema(self) -> Value {
        let mut schema = match self {
            DocKind::InsuredPerson => schemars::schema_for!(insured_person::InsuredPerson),
            DocKind::InsuranceCard => schemars::schema_for!(insurance_card::InsuranceCard),
            DocKind::CarePlan => schemars::schema_for!(care_plan::CarePlan),
            DocKind::ServiceUsage => schemars::schema_for!(service_usage::ServiceUsage),
            DocKind::CertificationApplication => {
                schemars::schema_for!(certification_application::CertificationApplication)
            }
            DocKind::CertificationSurvey => {
                schemars::schema_for!(certification_survey::CertificationSurvey)
            }
            DocKind::CertificationDecision => {
                schemars::schema_for!(certification_decision::CertificationDecision)
            }
            DocKind::PhysicianOpinion => {
                schemars::schema_for!(physician_opinion::PhysicianOpinion)
            }
            DocKind::ClaimInvoice => schemars::schema_for!(claim_invoice::ClaimInvoice),
            DocKind::ClaimStatement => schemars::schema_for!(claim_statement::ClaimStatement),
            DocKind::RecipientChange => {
                schemars::schema_for!(recipient_change::RecipientChange)
            }
            DocKind::BenefitManagement => {
                schemars::schema_for!(benefit_management::BenefitManagement)
            }
            DocKind::CareManagementStatement => {
                schemars::schema_for!(care_management_statement::CareManagementStatement)
            }
        }
        .to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String(format!("urn:kaigo-hub:{}", self.name())),
            );
            if let Some(doc) = obj
                .get_mut("properties")
                .and_then(|p| p.get_mut("document"))
                .and_then(Value::as_object_mut)
            {
                doc.insert("const".into(), Value::String(self.name().into()));
            }
        }
        schema
    }

    /// Checks `value` against the typed model and returns it re-serialized in canonical field
    /// order. The `document` field must name this kind.
    pub fn validate(self, value: Value) -> Result<String, InvalidDocument> {
        match self {
            DocKind::InsuredPerson => check::<insured_person::InsuredPerson>(self, value),
            DocKind::InsuranceCard => check::<insurance_card::InsuranceCard>(self, value),
            DocKind::CarePlan => check::<care_plan::CarePlan>(self, value),
            DocKind::ServiceUsage => check::<service_usage::ServiceUsage>(self, value),
            DocKind::CertificationApplication => {
                check::<certification_application::CertificationApplication>(self, value)
            }
            DocKind::CertificationSurvey => {
                check::<certification_survey::CertificationSurvey>(self, value)
            }
            DocKind::CertificationDecision => {
                check::<certification_decision::CertificationDecision>(self, value)
            }
            DocKind::PhysicianOpinion => check::<physician_opinion::PhysicianOpinion>(self, value),
            DocKind::ClaimInvoice => check::<claim_invoice::ClaimInvoice>(self, value),
            DocKind::ClaimStatement => check::<claim_statement::ClaimStatement>(self, value),
            DocKind::RecipientChange => check::<recipient_change::RecipientChange>(self, value),
            DocKind::BenefitManagement => {
                check::<benefit_management::BenefitManagement>(self, value)
            }
            DocKind::CareManagementStatement => {
                check::<care_management_statement::CareManagementStatement>(self, value)
            }
        }
    }
}

fn check<T: DeserializeOwned + Serialize>(
    kind: DocKind,
    value: Value,
) -> Result<String, InvalidDocument> {
    let declared = value.get("document").and_then(Value::as_str).unwrap_or("");
    if declared != kind.name() {
        return Err(InvalidDocument {
            kind: kind.name(),
            message: format!(
                "field `document` is `{declared}`, expected `{}`",
                kind.name()
            ),
            detail: None,
        });
    }
    let typed: T = serde_json::from_value(value).map_err(|e| InvalidDocument::serde(kind, &e))?;
    serde_json::to_string(&typed).map_err(|e| InvalidDocument::serde(kind, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_has_a_schema_with_its_const_document_name() {
        for kind in ALL {
            let schema = kind.schema();
            assert_eq!(schema["properties"]["document"]["const"], kind.name());
            assert!(
                schema["description"].is_string(),
                "{} has a description",
                kind.name()
            );
        }
    }

    #[test]
    fn a_kind_carries_a_subject_exactly_when_its_schema_has_one() {
        for kind in ALL {
            let schema = kind.schema();
            let has = schema["properties"].get("subject").is_some();
            assert_eq!(kind.carries_subject(), has, "{}", kind.name());
        }
        assert!(!DocKind::ClaimInvoice.carries_subject());
    }

    #[test]
    fn validate_rejects_a_wrong_document_name() {
        let err = DocKind::InsuredPerson
            .validate(json!({"document": "CarePlan@1"}))
            .unwrap_err();
        assert!(err.message.contains("expected `InsuredPerson@1`"), "{err}");
    }

    #[test]
    fn validate_rejects_unknown_fields_and_reports_them() {
        let err = DocKind::InsuredPerson
            .validate(json!({"document": "InsuredPerson@1", "nmae": {}}))
            .unwrap_err();
        assert!(err.message.contains("nmae"), "{err}");
    }

    #[test]
    fn parse_accepts_bare_names_and_versions() {
        assert_eq!(DocKind::parse("CarePlan"), Some(DocKind::CarePlan));
        assert_eq!(DocKind::parse("CarePlan@1"), Some(DocKind::CarePlan));
        assert_eq!(DocKind::parse("CarePlan@2"), None);
    }

    #[test]
    fn values_serde_quotes_are_left_for_the_sender() {
        let err = DocKind::InsuredPerson
            .validate(json!({"document": "InsuredPerson@1", "sex": "秘匿"}))
            .unwrap_err();
        let plain = err.to_string();
        assert!(!plain.contains("秘匿"), "{plain}");
        assert!(plain.contains("unknown variant, expected"), "{plain}");
        assert!(err.for_sender().to_string().contains("`秘匿`"), "{err:?}");
        let err = DocKind::InsuredPerson
            .validate(json!({"document": "InsuredPerson@1", "birth_date": 19480405}))
            .unwrap_err();
        let plain = err.to_string();
        assert!(!plain.contains("19480405"), "{plain}");
        assert!(plain.contains("invalid type: number, expected"), "{plain}");
        for said in [
            "invalid type: string \"a, expected b\", expected a date",
            "invalid value: integer `5`, expected a month",
        ] {
            let free = without_values(said);
            assert!(
                !free.contains('5') && !free.contains("a, expected b"),
                "{free}"
            );
        }
        assert_eq!(
            without_values("some custom words quoting 秘匿"),
            "the document does not fit its schema"
        );
    }
}
