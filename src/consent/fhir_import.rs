//! FHIR R4 `Consent` resource (JSON) → grants for the registry.
//!
//! In: one `Consent` resource as JSON text or a `serde_json::Value`. Out: the [`Consent`]s it grants (one per
//! `provision.actor`), or a [`FhirImportError`] naming the JSON path (`$.provision.actor[0].role`) and what to
//! write instead. It must never widen what the person agreed to: anything that would restrict a grant and
//! that this importer does not model (nested provisions, `provision.data`, modifier extensions, …) is refused,
//! not skipped, and an unclear subject or recipient is an error, never a guess.
//!
//! # Convention (what the hub reads)
//!
//! - `resourceType` is `Consent`; `id` is required and becomes the consent id. With several actors the
//!   grants are `{id}#0`, `{id}#1`, … (by actor index); with one actor the id is used as is.
//! - `status`: `active` → grants; `inactive` → the same grants, revoked at `dateTime` (required then), so
//!   granting them revokes what an earlier `active` import stored; `rejected` → no grants. Any other status
//!   (`draft`, `proposed`, `entered-in-error`) is refused.
//! - Subject: two identifiers, 保険者番号 (`http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber` or
//!   `urn:oid:1.2.392.100495.20.3.61`) and 被保険者番号 (`http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber`,
//!   the JP Core extension URL `…/JP_Coverage_InsuredPersonNumber`, or `urn:oid:1.2.392.100495.20.3.63`).
//!   They are read from any of: the `contained` Patient that `patient.reference` (`"#id"`) points to,
//!   `patient.identifier`, and `Consent.identifier[]`. Each must be found, with one value only (the same
//!   value written twice is fine; two different values are an error naming both paths).
//! - `provision.type` must be `permit`. `provision.period.start` (required) and `.end` (optional) are dates
//!   `YYYY-MM-DD` — the hub decides by whole days, `end` inclusive — a time of day is refused.
//! - Categories: `provision.class[].code` or `provision.code[].coding[].code` (not both), codes from
//!   [`CATEGORY_SYSTEM`] or without a system: `certification`, `claims`, `life`, `care-plan`, `housing`.
//! - Purpose: at most one `provision.purpose[]` Coding; its `code` is the purpose a question must state.
//! - Recipients: `provision.actor[]`, at least one. An actor whose `role` has a coding in
//!   [`PARTY_KIND_SYSTEM`] (`hospital`, `provider`, `municipality`, `platform`) grants every party of that
//!   kind, and its `reference` must then carry no `identifier`. Otherwise `reference.identifier.value` is
//!   the one party granted (医療機関コード / 事業所番号 10 digits, 保険者番号 6 digits), with `system`
//!   either absent or one of [`PARTY_ID_SYSTEMS`].
//! - `provision.action`, if present, must include `disclose` (the hub discloses; it grants nothing else).
//! - Refused: `implicitRules`, `modifierExtension` (resource, provision, actor, contained Patient), nested
//!   `provision.provision`, `provision.data`, `provision.dataPeriod`, `provision.securityLabel`.
//! - Everything else (`scope`, `category`, `policy`, `verification`, `text`, `meta`, …) is not read.

use serde_json::{Map, Value};
use thiserror::Error;

use super::{
    Category, Consent, ConsentId, Grantee, InsuredNumber, InsurerNumber, IsoDate, PartyId,
    PartyKind, Subject, Timestamp, ValueError,
};

/// The hub's code system for consent categories (provisional until the platform publishes one).
pub const CATEGORY_SYSTEM: &str = "urn:kaigo-hub:consent-category";
/// The hub's code system for party kinds in `provision.actor.role` (provisional).
pub const PARTY_KIND_SYSTEM: &str = "urn:kaigo-hub:party-kind";
/// Identifier systems accepted for a granted party, with the number of digits each implies.
pub const PARTY_ID_SYSTEMS: [(&str, usize); 3] = [
    (
        "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no",
        10,
    ),
    ("http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber", 6),
    ("urn:oid:1.2.392.100495.20.3.61", 6),
];
const INSURER_SYSTEMS: [&str; 2] = [
    "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber",
    "urn:oid:1.2.392.100495.20.3.61",
];
const INSURED_SYSTEMS: [&str; 3] = [
    "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber",
    "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber",
    "urn:oid:1.2.392.100495.20.3.63",
];
const CONSENT_ACTION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentaction";

/// A FHIR `Consent` that could not be turned into grants: where (a JSON path from `$`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct FhirImportError {
    /// JSON path of the offending element, e.g. `$.provision.period.start`.
    pub path: String,
    /// What is wrong there.
    pub problem: FhirProblem,
}

/// What is wrong at a [`FhirImportError`]'s path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FhirProblem {
    #[error("not JSON: {detail}")]
    NotJson { detail: String },
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("missing; {hint}")]
    Missing { hint: &'static str },
    #[error("resourceType is `{found}`, expected `Consent`")]
    NotConsent { found: String },
    #[error(
        "status `{found}` grants nothing the hub can act on; send `active`, `inactive` or `rejected`"
    )]
    UnsupportedStatus { found: String },
    #[error("provision.type is `{found}`; only `permit` provisions are imported")]
    NotPermit { found: String },
    #[error(
        "{what} is not supported: ignoring it could widen the grant, so the consent is refused"
    )]
    Unsupported { what: &'static str },
    #[error("{0}")]
    Value(ValueError),
    #[error("a different value is already given at {other_path}; write the subject once")]
    SubjectConflict { other_path: String },
    #[error(
        "no {what} identifier; put it in a contained Patient referenced as \"#id\" from patient.reference, \
         in patient.identifier, or in Consent.identifier"
    )]
    SubjectMissing { what: &'static str },
    #[error("points to `{reference}`, but no contained Patient has that id")]
    ContainedPatientNotFound { reference: String },
    #[error("no actor: a consent without a recipient would grant to everyone, so it is refused")]
    NoActor,
    #[error(
        "names a party kind in role and a party in reference.identifier; write one \
         (a kind grants every party of that kind)"
    )]
    ActorAmbiguous,
    #[error("several party kinds in role; write one actor per kind")]
    SeveralPartyKinds,
    #[error(
        "unknown identifier system `{system}` for a party; use one of the documented systems or omit it"
    )]
    UnknownIdentifierSystem { system: String },
    #[error(
        "a {expected_digits}-digit party id is expected for this system, found {found_digits} digits"
    )]
    PartyIdDoesNotFitSystem {
        expected_digits: usize,
        found_digits: usize,
    },
    #[error("code system `{system}` is not read here; use `{expected}` or no system")]
    UnknownCodeSystem {
        system: String,
        expected: &'static str,
    },
    #[error("categories are given in both provision.class and provision.code; use one")]
    CategoriesTwice,
    #[error("no category; list at least one in provision.class or provision.code")]
    NoCategories,
    #[error(
        "several purposes; the hub binds a consent to one purpose, send one Consent per purpose"
    )]
    SeveralPurposes,
    #[error(
        "provision.action does not include `disclose`; the hub only imports consents to disclose"
    )]
    NoDisclose,
    #[error(
        "`{value}` has a time of day; write the date only (YYYY-MM-DD): consents hold for whole days"
    )]
    TimeOfDay { value: String },
}

/// A JSON path being walked, rendered like `$.provision.actor[0]`.
#[derive(Debug, Clone)]
struct At(String);

impl At {
    fn root() -> At {
        At("$".to_owned())
    }

    fn key(&self, key: &str) -> At {
        At(format!("{}.{key}", self.0))
    }

    fn index(&self, index: usize) -> At {
        At(format!("{}[{index}]", self.0))
    }

    fn error(&self, problem: FhirProblem) -> FhirImportError {
        FhirImportError {
            path: self.0.clone(),
            problem,
        }
    }

    fn value_error(&self, problem: ValueError) -> FhirImportError {
        self.error(FhirProblem::Value(problem))
    }
}

/// A JSON object and where it is.
#[derive(Debug, Clone)]
struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: At,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, at: At) -> Result<Self, FhirImportError> {
        match value {
            Value::Object(map) => Ok(Obj { map, at }),
            _ => Err(at.error(FhirProblem::WrongType {
                expected: "an object",
            })),
        }
    }

    fn str_opt(&self, key: &str) -> Result<Option<(&'a str, At)>, FhirImportError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some((text.as_str(), self.at.key(key)))),
            Some(_) => Err(self.at.key(key).error(FhirProblem::WrongType {
                expected: "a string",
            })),
        }
    }

    fn str_req(&self, key: &str, hint: &'static str) -> Result<(&'a str, At), FhirImportError> {
        self.str_opt(key)?
            .ok_or_else(|| self.at.key(key).error(FhirProblem::Missing { hint }))
    }

    fn obj_opt(&self, key: &str) -> Result<Option<Obj<'a>>, FhirImportError> {
        self.map
            .get(key)
            .map(|value| Obj::new(value, self.at.key(key)))
            .transpose()
    }

    fn obj_req(&self, key: &str, hint: &'static str) -> Result<Obj<'a>, FhirImportError> {
        self.obj_opt(key)?
            .ok_or_else(|| self.at.key(key).error(FhirProblem::Missing { hint }))
    }

    /// The elements of array `key` with their paths; empty when absent.
    fn array(&self, key: &str) -> Result<Vec<(&'a Value, At)>, FhirImportError> {
        let at = self.at.key(key);
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, at.index(i)))
                .collect()),
            Some(_) => Err(at.error(FhirProblem::WrongType {
                expected: "an array",
            })),
        }
    }

    /// The objects of array `key`; empty when absent.
    fn objects(&self, key: &str) -> Result<Vec<Obj<'a>>, FhirImportError> {
        self.array(key)?
            .into_iter()
            .map(|(value, at)| Obj::new(value, at))
            .collect()
    }

    /// Refuses `key` when present, because ignoring it could widen the grant.
    fn refuse(&self, key: &str, what: &'static str) -> Result<(), FhirImportError> {
        match self.map.get(key) {
            Some(_) => Err(self.at.key(key).error(FhirProblem::Unsupported { what })),
            None => Ok(()),
        }
    }
}

/// Reads a FHIR `Consent` from JSON text; see the module documentation for the convention.
pub fn consents_from_fhir_json(text: &str) -> Result<Vec<Consent>, FhirImportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        At::root().error(FhirProblem::NotJson {
            detail: e.to_string(),
        })
    })?;
    consents_from_fhir(&value)
}

/// Reads a parsed FHIR `Consent`; see the module documentation for the convention.
pub fn consents_from_fhir(resource: &Value) -> Result<Vec<Consent>, FhirImportError> {
    let root = Obj::new(resource, At::root())?;
    let (resource_type, at) = root.str_req("resourceType", "write \"Consent\"")?;
    if resource_type != "Consent" {
        return Err(at.error(FhirProblem::NotConsent {
            found: resource_type.to_owned(),
        }));
    }
    root.refuse("implicitRules", "implicitRules")?;
    root.refuse("modifierExtension", "a modifierExtension")?;
    let (id, id_at) = root.str_req("id", "the resource id becomes the consent id")?;
    ConsentId::parse(id).map_err(|e| id_at.value_error(e))?;

    let (status, status_at) = root.str_req("status", "write active, inactive or rejected")?;
    let revoked_at = match status {
        "active" => None,
        "inactive" => {
            let (when, at) = root.str_req(
                "dateTime",
                "an inactive (withdrawn) consent needs dateTime, the time it was withdrawn",
            )?;
            Some(Timestamp::parse(when).map_err(|e| at.value_error(e))?)
        }
        "rejected" => return Ok(Vec::new()),
        other => {
            return Err(status_at.error(FhirProblem::UnsupportedStatus {
                found: other.to_owned(),
            }));
        }
    };

    let subject = read_subject(&root)?;

    let provision = root.obj_req(
        "provision",
        "the provision says who may receive what, and when",
    )?;
    read_provision_guards(&provision)?;
    let (valid_from, valid_to) = read_period(&provision)?;
    let categories = read_categories(&provision)?;
    let purpose = read_purpose(&provision)?;
    let grantees = read_actors(&provision)?;

    let several = grantees.len() > 1;
    grantees
        .into_iter()
        .enumerate()
        .map(|(index, grantee)| {
            let consent_id = if several {
                format!("{id}#{index}")
            } else {
                id.to_owned()
            };
            let consent_id = ConsentId::parse(&consent_id).map_err(|e| id_at.value_error(e))?;
            Ok(Consent {
                id: consent_id,
                subject: subject.clone(),
                grantee,
                categories: categories.clone(),
                valid_from: valid_from.clone(),
                valid_to: valid_to.clone(),
                purpose: purpose.clone(),
                revoked_at: revoked_at.clone(),
            })
        })
        .collect()
}

/// One subject identifier found so far: its value and where.
struct Found<'a> {
    value: &'a str,
    at: At,
}

/// Collects the 保険者番号 and 被保険者番号 identifiers from the places the convention allows.
#[derive(Default)]
struct SubjectIdentifiers<'a> {
    insurer: Option<Found<'a>>,
    insured: Option<Found<'a>>,
}

impl<'a> SubjectIdentifiers<'a> {
    fn consider(&mut self, identifier: &Obj<'a>) -> Result<(), FhirImportError> {
        let Some((system, _)) = identifier.str_opt("system")? else {
            return Ok(());
        };
        let slot = if INSURER_SYSTEMS.contains(&system) {
            &mut self.insurer
        } else if INSURED_SYSTEMS.contains(&system) {
            &mut self.insured
        } else {
            return Ok(());
        };
        let (value, at) = identifier.str_req("value", "the identifier's number")?;
        match slot {
            Some(previous) if previous.value != value => {
                Err(at.error(FhirProblem::SubjectConflict {
                    other_path: previous.at.0.clone(),
                }))
            }
            Some(_) => Ok(()),
            None => {
                *slot = Some(Found { value, at });
                Ok(())
            }
        }
    }
}

fn read_subject(root: &Obj<'_>) -> Result<Subject, FhirImportError> {
    let mut found = SubjectIdentifiers::default();
    let patient = root.obj_opt("patient")?;
    if let Some(patient) = &patient {
        if let Some((reference, at)) = patient.str_opt("reference")?
            && let Some(local_id) = reference.strip_prefix('#')
        {
            let contained = find_contained_patient(root, local_id)?.ok_or_else(|| {
                at.error(FhirProblem::ContainedPatientNotFound {
                    reference: reference.to_owned(),
                })
            })?;
            contained.refuse("modifierExtension", "a modifierExtension")?;
            for identifier in contained.objects("identifier")? {
                found.consider(&identifier)?;
            }
        }
        if let Some(identifier) = patient.obj_opt("identifier")? {
            found.consider(&identifier)?;
        }
    }
    for identifier in root.objects("identifier")? {
        found.consider(&identifier)?;
    }
    let missing_at = root.at.key("patient");
    let insurer = found.insurer.ok_or_else(|| {
        missing_at.error(FhirProblem::SubjectMissing {
            what: "保険者番号 (InsurerNumber)",
        })
    })?;
    let insured = found.insured.ok_or_else(|| {
        missing_at.error(FhirProblem::SubjectMissing {
            what: "被保険者番号 (InsuredPersonNumber)",
        })
    })?;
    Ok(Subject {
        insurer_number: InsurerNumber::parse(insurer.value)
            .map_err(|e| insurer.at.value_error(e.into()))?,
        insured_number: InsuredNumber::parse(insured.value)
            .map_err(|e| insured.at.value_error(e.into()))?,
    })
}

fn find_contained_patient<'a>(
    root: &Obj<'a>,
    local_id: &str,
) -> Result<Option<Obj<'a>>, FhirImportError> {
    for resource in root.objects("contained")? {
        let is_patient = resource.str_opt("resourceType")?.map(|(t, _)| t) == Some("Patient");
        let has_id = resource.str_opt("id")?.map(|(i, _)| i) == Some(local_id);
        if is_patient && has_id {
            return Ok(Some(resource));
        }
    }
    Ok(None)
}

fn read_provision_guards(provision: &Obj<'_>) -> Result<(), FhirImportError> {
    let (kind, at) = provision.str_req(
        "type",
        "write \"permit\"; the hub imports permit provisions only",
    )?;
    if kind != "permit" {
        return Err(at.error(FhirProblem::NotPermit {
            found: kind.to_owned(),
        }));
    }
    provision.refuse("modifierExtension", "a modifierExtension")?;
    provision.refuse("provision", "a nested provision (exception)")?;
    provision.refuse(
        "data",
        "provision.data (a grant limited to named resources)",
    )?;
    provision.refuse(
        "dataPeriod",
        "provision.dataPeriod (a grant limited by data date)",
    )?;
    provision.refuse("securityLabel", "provision.securityLabel")?;
    let actions = provision.objects("action")?;
    if actions.is_empty() {
        return Ok(());
    }
    for action in &actions {
        for coding in action.objects("coding")? {
            let system = coding.str_opt("system")?.map(|(s, _)| s);
            let code = coding.str_opt("code")?.map(|(c, _)| c);
            if code == Some("disclose") && system.is_none_or(|s| s == CONSENT_ACTION_SYSTEM) {
                return Ok(());
            }
        }
    }
    Err(provision.at.key("action").error(FhirProblem::NoDisclose))
}

/// Reads a whole-day date; a FHIR dateTime with a time of day is refused with a hint.
fn read_day(value: &str, at: &At) -> Result<IsoDate, FhirImportError> {
    if value.len() > 10 && value.contains('T') {
        return Err(at.error(FhirProblem::TimeOfDay {
            value: value.to_owned(),
        }));
    }
    IsoDate::parse(value).map_err(|e| at.value_error(e))
}

fn read_period(provision: &Obj<'_>) -> Result<(IsoDate, Option<IsoDate>), FhirImportError> {
    let period = provision.obj_req(
        "period",
        "write period.start, the first day the consent holds",
    )?;
    let (start, start_at) =
        period.str_req("start", "the first day the consent holds, YYYY-MM-DD")?;
    let valid_from = read_day(start, &start_at)?;
    let valid_to = match period.str_opt("end")? {
        None => None,
        Some((end, end_at)) => {
            let valid_to = read_day(end, &end_at)?;
            if valid_to < valid_from {
                return Err(end_at.value_error(ValueError::PeriodReversed {
                    valid_from: valid_from.to_string(),
                    valid_to: valid_to.to_string(),
                }));
            }
            Some(valid_to)
        }
    };
    Ok((valid_from, valid_to))
}

/// A category from one Coding: system absent or [`CATEGORY_SYSTEM`], code a category code.
fn category_of(coding: &Obj<'_>) -> Result<Category, FhirImportError> {
    if let Some((system, at)) = coding.str_opt("system")?
        && system != CATEGORY_SYSTEM
    {
        return Err(at.error(FhirProblem::UnknownCodeSystem {
            system: system.to_owned(),
            expected: CATEGORY_SYSTEM,
        }));
    }
    let (code, at) = coding.str_req("code", "the category code, e.g. care-plan")?;
    code.parse().map_err(|e| at.value_error(e))
}

fn read_categories(provision: &Obj<'_>) -> Result<Vec<Category>, FhirImportError> {
    let classes = provision.objects("class")?;
    let codes = provision.objects("code")?;
    if !classes.is_empty() && !codes.is_empty() {
        return Err(provision.at.key("code").error(FhirProblem::CategoriesTwice));
    }
    let mut categories: Vec<Category> = Vec::new();
    let mut add = |category: Category| {
        if !categories.contains(&category) {
            categories.push(category);
        }
    };
    for coding in &classes {
        add(category_of(coding)?);
    }
    for concept in &codes {
        let codings = concept.objects("coding")?;
        if codings.is_empty() {
            return Err(concept.at.key("coding").error(FhirProblem::Missing {
                hint: "a coding with the category code",
            }));
        }
        for coding in &codings {
            add(category_of(coding)?);
        }
    }
    if categories.is_empty() {
        return Err(provision.at.key("class").error(FhirProblem::NoCategories));
    }
    Ok(categories)
}

fn read_purpose(provision: &Obj<'_>) -> Result<Option<String>, FhirImportError> {
    let purposes = provision.objects("purpose")?;
    match purposes.as_slice() {
        [] => Ok(None),
        [coding] => {
            let (code, at) = coding.str_req("code", "the purpose code")?;
            if code.is_empty() || code.trim() != code {
                return Err(at.value_error(ValueError::PurposeFormat));
            }
            Ok(Some(code.to_owned()))
        }
        [_, second, ..] => Err(second.at.error(FhirProblem::SeveralPurposes)),
    }
}

fn read_actors(provision: &Obj<'_>) -> Result<Vec<Grantee>, FhirImportError> {
    let actors = provision.objects("actor")?;
    if actors.is_empty() {
        return Err(provision.at.key("actor").error(FhirProblem::NoActor));
    }
    actors.iter().map(read_actor).collect()
}

fn read_actor(actor: &Obj<'_>) -> Result<Grantee, FhirImportError> {
    actor.refuse("modifierExtension", "a modifierExtension")?;
    let mut kind: Option<PartyKind> = None;
    if let Some(role) = actor.obj_opt("role")? {
        for coding in role.objects("coding")? {
            if coding.str_opt("system")?.map(|(s, _)| s) != Some(PARTY_KIND_SYSTEM) {
                continue;
            }
            let (code, at) = coding.str_req("code", "a party kind: hospital, provider, ...")?;
            if kind.is_some() {
                return Err(at.error(FhirProblem::SeveralPartyKinds));
            }
            kind = Some(code.parse().map_err(|e| at.value_error(e))?);
        }
    }
    let identifier = match actor.obj_opt("reference")? {
        Some(reference) => reference.obj_opt("identifier")?,
        None => None,
    };
    match (kind, identifier) {
        (Some(_), Some(identifier)) => Err(identifier.at.error(FhirProblem::ActorAmbiguous)),
        (Some(kind), None) => Ok(Grantee::Kind(kind)),
        (None, Some(identifier)) => read_party(&identifier).map(Grantee::Party),
        (None, None) => {
            Err(actor
                .at
                .key("reference")
                .key("identifier")
                .error(FhirProblem::Missing {
                    hint: "the recipient's code in reference.identifier, or a party kind in role \
                       (system urn:kaigo-hub:party-kind)",
                }))
        }
    }
}

fn read_party(identifier: &Obj<'_>) -> Result<PartyId, FhirImportError> {
    let (value, value_at) = identifier.str_req("value", "the party's 10- or 6-digit code")?;
    let party = PartyId::parse(value).map_err(|e| value_at.value_error(e.into()))?;
    if let Some((system, system_at)) = identifier.str_opt("system")? {
        let Some(&(_, digits)) = PARTY_ID_SYSTEMS.iter().find(|(s, _)| *s == system) else {
            return Err(system_at.error(FhirProblem::UnknownIdentifierSystem {
                system: system.to_owned(),
            }));
        };
        if party.as_str().len() != digits {
            return Err(value_at.error(FhirProblem::PartyIdDoesNotFitSystem {
                expected_digits: digits,
                found_digits: party.as_str().len(),
            }));
        }
    }
    Ok(party)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contained_patient_consent() -> Value {
        json!({
            "resourceType": "Consent",
            "id": "fc-001",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "contained": [{
                "resourceType": "Patient",
                "id": "subject",
                "identifier": [
                    {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber", "value": "131011"},
                    {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber", "value": "0000000001"}
                ]
            }],
            "patient": {"reference": "#subject"},
            "dateTime": "2024-04-01T10:00:00+09:00",
            "provision": {
                "type": "permit",
                "period": {"start": "2024-04-01", "end": "2025-03-31"},
                "actor": [{
                    "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                    "reference": {"identifier": {
                        "system": "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no",
                        "value": "1312345678"
                    }}
                }],
                "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}],
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
                "class": [
                    {"system": "urn:kaigo-hub:consent-category", "code": "care-plan"},
                    {"code": "certification"}
                ]
            }
        })
    }

    fn import(value: &Value) -> Result<Vec<Consent>, FhirImportError> {
        consents_from_fhir(value)
    }

    fn error_at(value: &Value) -> (String, FhirProblem) {
        let err = import(value).expect_err("the resource is refused");
        (err.path, err.problem)
    }

    #[test]
    fn a_contained_patient_consent_becomes_one_grant() {
        let consents = import(&contained_patient_consent()).expect("valid resource");
        assert_eq!(consents.len(), 1);
        let c = &consents[0];
        assert_eq!(c.id.as_str(), "fc-001");
        assert_eq!(
            c.subject,
            Subject::new("131011", "0000000001").expect("valid")
        );
        assert_eq!(c.grantee, Grantee::parse("1312345678").expect("valid"));
        assert_eq!(
            c.categories,
            vec![Category::CarePlan, Category::Certification]
        );
        assert_eq!(c.valid_from.as_str(), "2024-04-01");
        assert_eq!(c.valid_to.as_ref().map(IsoDate::as_str), Some("2025-03-31"));
        assert_eq!(c.purpose.as_deref(), Some("TREAT"));
        assert_eq!(c.revoked_at, None);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn subject_identifiers_on_consent_identifier_and_kind_actors_are_read() {
        let text = r#"{
          "resourceType": "Consent", "id": "fc-002", "status": "active",
          "identifier": [
            {"system": "urn:oid:1.2.392.100495.20.3.61", "value": "435073"},
            {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber", "value": "H123456789"}
          ],
          "provision": {
            "type": "permit",
            "period": {"start": "2024-04-01"},
            "code": [{"coding": [{"code": "claims"}]}],
            "actor": [
              {"role": {"coding": [{"system": "urn:kaigo-hub:party-kind", "code": "municipality"}]},
               "reference": {"display": "every municipality"}},
              {"role": {"coding": [{"system": "urn:kaigo-hub:party-kind", "code": "platform"}]},
               "reference": {"display": "介護情報基盤"}}
            ]
          }
        }"#;
        let consents = consents_from_fhir_json(text).expect("valid resource");
        let ids: Vec<&str> = consents.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["fc-002#0", "fc-002#1"]);
        assert_eq!(consents[0].grantee, Grantee::Kind(PartyKind::Municipality));
        assert_eq!(consents[1].grantee, Grantee::Kind(PartyKind::Platform));
        assert_eq!(consents[0].valid_to, None);
        assert_eq!(consents[0].categories, vec![Category::Claims]);
        assert_eq!(
            consents[0].subject,
            Subject::new("435073", "H123456789").expect("valid")
        );
    }

    #[test]
    fn inactive_imports_as_revoked_at_its_date_time_and_rejected_grants_nothing() {
        let mut value = contained_patient_consent();
        value["status"] = json!("inactive");
        let consents = import(&value).expect("valid resource");
        assert_eq!(
            consents[0].revoked_at.as_ref().map(Timestamp::as_str),
            Some("2024-04-01T10:00:00+09:00")
        );
        value["status"] = json!("rejected");
        assert_eq!(import(&value), Ok(Vec::new()));
    }

    #[test]
    fn inactive_without_date_time_is_refused_at_date_time() {
        let mut value = contained_patient_consent();
        value["status"] = json!("inactive");
        value.as_object_mut().expect("object").remove("dateTime");
        let (path, problem) = error_at(&value);
        assert_eq!(path, "$.dateTime");
        assert!(matches!(problem, FhirProblem::Missing { .. }));
    }

    #[test]
    fn draft_status_is_refused() {
        let mut value = contained_patient_consent();
        value["status"] = json!("draft");
        assert_eq!(error_at(&value).0, "$.status");
    }

    #[test]
    fn two_different_insured_numbers_are_refused_naming_both_paths() {
        let mut value = contained_patient_consent();
        value["identifier"] = json!([{
            "system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber",
            "value": "0000000002"
        }]);
        let (path, problem) = error_at(&value);
        assert_eq!(path, "$.identifier[0].value");
        assert_eq!(
            problem,
            FhirProblem::SubjectConflict {
                other_path: "$.contained[0].identifier[1].value".into()
            }
        );
        // The same value twice is fine.
        value["identifier"][0]["value"] = json!("0000000001");
        assert!(import(&value).is_ok());
    }

    #[test]
    fn a_missing_subject_identifier_is_refused_with_where_to_put_it() {
        let mut value = contained_patient_consent();
        value["contained"][0]["identifier"]
            .as_array_mut()
            .expect("array")
            .pop();
        let err = import(&value).expect_err("no insured number");
        assert_eq!(err.path, "$.patient");
        assert!(err.to_string().contains("InsuredPersonNumber"), "{err}");
    }

    #[test]
    fn a_bad_check_digit_in_the_subject_names_the_identifier_path() {
        let mut value = contained_patient_consent();
        value["contained"][0]["identifier"][0]["value"] = json!("435074");
        let (path, problem) = error_at(&value);
        assert_eq!(path, "$.contained[0].identifier[0].value");
        assert!(matches!(
            problem,
            FhirProblem::Value(ValueError::Identifier(
                crate::identifiers::IdError::InsurerNumberCheckDigit { .. }
            ))
        ));
    }

    #[test]
    fn a_dangling_contained_reference_is_refused() {
        let mut value = contained_patient_consent();
        value["patient"]["reference"] = json!("#nobody");
        assert_eq!(error_at(&value).0, "$.patient.reference");
    }

    #[test]
    fn a_consent_without_actors_is_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["actor"] = json!([]);
        assert_eq!(
            error_at(&value),
            ("$.provision.actor".to_owned(), FhirProblem::NoActor)
        );
    }

    #[test]
    fn an_actor_with_both_kind_and_party_is_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["actor"][0]["role"]["coding"][0] =
            json!({"system": PARTY_KIND_SYSTEM, "code": "hospital"});
        assert_eq!(
            error_at(&value),
            (
                "$.provision.actor[0].reference.identifier".to_owned(),
                FhirProblem::ActorAmbiguous
            )
        );
    }

    #[test]
    fn a_party_id_of_the_wrong_length_for_its_system_is_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["actor"][0]["reference"]["identifier"]["value"] = json!("131011");
        assert_eq!(
            error_at(&value),
            (
                "$.provision.actor[0].reference.identifier.value".to_owned(),
                FhirProblem::PartyIdDoesNotFitSystem {
                    expected_digits: 10,
                    found_digits: 6
                }
            )
        );
    }

    #[test]
    fn restrictions_the_hub_does_not_model_are_refused_not_ignored() {
        for (key, extra) in [
            ("provision", json!({"type": "deny"})),
            (
                "data",
                json!([{"meaning": "instance", "reference": {"reference": "CarePlan/1"}}]),
            ),
            ("dataPeriod", json!({"start": "2024-01-01"})),
        ] {
            let mut value = contained_patient_consent();
            value["provision"][key] = extra;
            let (path, problem) = error_at(&value);
            assert_eq!(path, format!("$.provision.{key}"));
            assert!(matches!(problem, FhirProblem::Unsupported { .. }));
        }
        let mut value = contained_patient_consent();
        value["modifierExtension"] = json!([{"url": "http://example.org/x", "valueBoolean": true}]);
        assert_eq!(error_at(&value).0, "$.modifierExtension");
    }

    #[test]
    fn a_deny_provision_is_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["type"] = json!("deny");
        assert_eq!(
            error_at(&value),
            (
                "$.provision.type".to_owned(),
                FhirProblem::NotPermit {
                    found: "deny".into()
                }
            )
        );
    }

    #[test]
    fn an_action_list_without_disclose_is_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["action"][0]["coding"][0]["code"] = json!("collect");
        assert_eq!(
            error_at(&value),
            ("$.provision.action".to_owned(), FhirProblem::NoDisclose)
        );
    }

    #[test]
    fn a_period_with_a_time_of_day_is_refused_with_a_hint() {
        let mut value = contained_patient_consent();
        value["provision"]["period"]["end"] = json!("2025-03-31T23:59:59+09:00");
        let err = import(&value).expect_err("time of day");
        assert_eq!(err.path, "$.provision.period.end");
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn a_reversed_period_is_refused_at_its_end() {
        let mut value = contained_patient_consent();
        value["provision"]["period"]["end"] = json!("2024-03-31");
        let (path, problem) = error_at(&value);
        assert_eq!(path, "$.provision.period.end");
        assert!(matches!(
            problem,
            FhirProblem::Value(ValueError::PeriodReversed { .. })
        ));
    }

    #[test]
    fn unknown_category_codes_and_systems_are_refused_at_their_path() {
        let mut value = contained_patient_consent();
        value["provision"]["class"][1]["code"] = json!("everything");
        assert_eq!(error_at(&value).0, "$.provision.class[1].code");
        let mut value = contained_patient_consent();
        value["provision"]["class"][0]["system"] = json!("http://hl7.org/fhir/resource-types");
        assert_eq!(error_at(&value).0, "$.provision.class[0].system");
        let mut value = contained_patient_consent();
        value["provision"]["code"] = json!([{"coding": [{"code": "life"}]}]);
        assert_eq!(
            error_at(&value),
            ("$.provision.code".to_owned(), FhirProblem::CategoriesTwice)
        );
    }

    #[test]
    fn several_purposes_are_refused() {
        let mut value = contained_patient_consent();
        value["provision"]["purpose"] = json!([{"code": "TREAT"}, {"code": "HRESCH"}]);
        assert_eq!(
            error_at(&value),
            (
                "$.provision.purpose[1]".to_owned(),
                FhirProblem::SeveralPurposes
            )
        );
    }

    #[test]
    fn wrong_json_types_and_resource_types_name_the_path() {
        assert_eq!(
            consents_from_fhir_json("{").expect_err("not JSON").path,
            "$"
        );
        let mut value = contained_patient_consent();
        value["resourceType"] = json!("Patient");
        assert_eq!(error_at(&value).0, "$.resourceType");
        let mut value = contained_patient_consent();
        value["provision"]["actor"] = json!({"role": {}});
        assert_eq!(
            error_at(&value),
            (
                "$.provision.actor".to_owned(),
                FhirProblem::WrongType {
                    expected: "an array"
                }
            )
        );
    }
}
