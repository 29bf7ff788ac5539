//! Consent: may this person's data of this category go to this recipient, for this purpose, on this day?
//!
//! In: grants and revocations ([`Consent`], from the CLI, [`fhir_import`] or [`csv_import`]) and questions
//! ([`Question`]) asked at every hop of the pipeline (DESIGN §1: consent #1, #2, #3). Out: a three-valued
//! [`Decision`] — `Permit` with the consent id that allows it, `Deny` with the most specific reason, or
//! `Indeterminate` when the registry cannot answer (retry later, never deliver). The registry also exposes a
//! change counter so that a cache can tell when its copy is stale.
//!
//! This room must never permit on doubt: an unknown subject, an unreadable registry, a purpose the question
//! does not state, a revoked consent or a date outside the period all end in `Deny` or `Indeterminate`.
//! Identifiers are validated when they are built (the newtypes of [`crate::identifiers`], the one home of their
//! rules), so a malformed 保険者番号 cannot reach a decision.
//!
//! Time model: validity is judged by whole days for the question's `on` date (`valid_from ≤ on ≤ valid_to`,
//! both inclusive, ISO dates compared as strings). Revocation is judged by the registry's present: once a
//! consent is revoked it permits nothing any more, whatever `on` date a later question names.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calendar::DateTimeKind;
pub use crate::identifiers::{IdError, InsuredNumber, InsurerNumber, PartyId, Subject};
use crate::validated::validated_string;

pub mod cache;
pub mod csv_import;
pub mod fhir_import;

/// Why a value could not become one of this module's validated types. The variant names the kind of value;
/// the caller's error (consent field, CSV line and column, FHIR JSON path) says where it was found.
/// Messages never echo a 被保険者番号 (it identifies a person); they give its length or the bad position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// A 保険者番号, 被保険者番号 or party id that breaks its rule ([`crate::identifiers`]).
    #[error(transparent)]
    Identifier(#[from] IdError),
    #[error("`{value}` is not a date: write YYYY-MM-DD")]
    DateFormat { value: String },
    #[error("`{value}` is not a day of the calendar")]
    DateNotInCalendar { value: String },
    #[error(
        "`{value}` is not a timestamp: write YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with `Z` or `±hh:mm`"
    )]
    TimestampFormat { value: String },
    #[error("consent id `{value}` must be 1 to 128 characters from A-Z a-z 0-9 - . _ : #")]
    ConsentIdFormat { value: String },
    #[error(
        "unknown category `{value}`; expected one of certification, claims, life, care-plan, housing"
    )]
    UnknownCategory { value: String },
    #[error(
        "unknown party kind `{value}`; expected one of hospital, provider, municipality, platform"
    )]
    UnknownPartyKind { value: String },
    #[error("purpose must not be empty nor start or end with spaces")]
    PurposeFormat,
    #[error("a consent must cover at least one category")]
    NoCategories,
    #[error("valid_to {valid_to} is before valid_from {valid_from}")]
    PeriodReversed {
        valid_from: String,
        valid_to: String,
    },
}

/// What went wrong in the registry. Each variant carries the consent id it is about.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsentError {
    #[error("consent `{id}`: field `{field}`: {problem}")]
    Invalid {
        id: String,
        field: &'static str,
        problem: ValueError,
    },
    #[error(
        "consent `{id}` already exists with different content; revoke it and grant the new terms \
         under a new id"
    )]
    IdInUse { id: String },
    #[error("consent `{id}` is revoked; a revoked consent cannot be granted again, use a new id")]
    AlreadyRevoked { id: String },
    #[error("no consent with id `{id}`")]
    UnknownConsent { id: String },
    #[error("consent registry unavailable ({detail}); nothing was changed, try again")]
    Unavailable { detail: String },
}

validated_string!(
    /// A calendar date written `YYYY-MM-DD`. Ordering is the string order, which is the date order.
    IsoDate,
    check_date,
    ValueError
);
validated_string!(
    /// A point in time: `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`. Only recorded, never
    /// compared: a revoked consent is revoked, whenever that was.
    Timestamp,
    check_timestamp,
    ValueError
);
validated_string!(
    /// A consent's id: 1 to 128 characters from `A-Z a-z 0-9 - . _ : #` (a FHIR id fits).
    ConsentId,
    check_consent_id,
    ValueError
);

fn check_date(text: &str) -> Result<&str, ValueError> {
    crate::calendar::parse_date_only(text)
        .map(|_| text)
        .map_err(|e| date_error(e.kind, text))
}

/// The date's own error when the date part is at fault, else [`ValueError::TimestampFormat`].
fn date_error(kind: DateTimeKind, date: &str) -> ValueError {
    let value = date.to_owned();
    match kind {
        DateTimeKind::NotInCalendar => ValueError::DateNotInCalendar { value },
        DateTimeKind::DateShape => ValueError::DateFormat { value },
        DateTimeKind::TimeShape | DateTimeKind::Zone => ValueError::TimestampFormat { value },
    }
}

fn check_timestamp(text: &str) -> Result<&str, ValueError> {
    crate::calendar::parse_date_time(text)
        .map(|_| text)
        .map_err(|e| match (e.kind, text.get(..10)) {
            (DateTimeKind::DateShape | DateTimeKind::NotInCalendar, Some(date)) => {
                date_error(e.kind, date)
            }
            _ => ValueError::TimestampFormat {
                value: text.to_owned(),
            },
        })
}

fn check_consent_id(text: &str) -> Result<&str, ValueError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '#');
    if text.is_empty() || text.len() > 128 || !text.chars().all(allowed) {
        return Err(ValueError::ConsentIdFormat {
            value: text.chars().take(140).collect(),
        });
    }
    Ok(text)
}

/// The five categories of data on the platform (DESIGN §7). A consent names the categories it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// 要介護認定 — certification: application, survey, physician opinion, 被保険者証.
    Certification,
    /// 請求・給付 — claims and benefits: 給付管理票, 給付費明細書, 請求書.
    Claims,
    /// LIFE — 科学的介護情報システム feedback.
    Life,
    /// ケアプラン — care plans and service usage (第1–7表).
    CarePlan,
    /// 住宅改修・福祉用具 — home modification and welfare equipment purchases.
    Housing,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 5] = [
        Category::Certification,
        Category::Claims,
        Category::Life,
        Category::CarePlan,
        Category::Housing,
    ];

    /// The code used in JSON, CSV and FHIR (`care-plan`, …).
    pub fn code(self) -> &'static str {
        match self {
            Category::Certification => "certification",
            Category::Claims => "claims",
            Category::Life => "life",
            Category::CarePlan => "care-plan",
            Category::Housing => "housing",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Category {
    type Err = ValueError;
    fn from_str(code: &str) -> Result<Self, ValueError> {
        Category::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or_else(|| ValueError::UnknownCategory {
                value: code.to_owned(),
            })
    }
}

/// What kind of party a recipient is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartyKind {
    /// 医療機関 — a hospital or clinic (医療機関コード).
    Hospital,
    /// 介護事業所 — a care provider (事業所番号).
    Provider,
    /// 保険者 / 市町村 — a municipality or insurer (保険者番号).
    Municipality,
    /// 介護情報基盤 — the platform itself.
    Platform,
}

impl PartyKind {
    /// Every kind, in declaration order.
    pub const ALL: [PartyKind; 4] = [
        PartyKind::Hospital,
        PartyKind::Provider,
        PartyKind::Municipality,
        PartyKind::Platform,
    ];

    /// The code used in JSON, CSV and FHIR.
    pub fn code(self) -> &'static str {
        match self {
            PartyKind::Hospital => "hospital",
            PartyKind::Provider => "provider",
            PartyKind::Municipality => "municipality",
            PartyKind::Platform => "platform",
        }
    }
}

impl fmt::Display for PartyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for PartyKind {
    type Err = ValueError;
    fn from_str(code: &str) -> Result<Self, ValueError> {
        PartyKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .ok_or_else(|| ValueError::UnknownPartyKind {
                value: code.to_owned(),
            })
    }
}

/// Who a consent lets receive the data. JSON: `{"party": "1312345678"}` or `{"kind": "hospital"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grantee {
    /// One party, by its own code; covers a recipient with exactly this id, whatever its kind.
    Party(PartyId),
    /// Every party of a kind; covers a recipient of exactly this kind.
    Kind(PartyKind),
}

impl Grantee {
    /// Reads a party kind code (`hospital`, …) or else a party id (`1312345678`, `131011`).
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        if let Ok(kind) = text.parse::<PartyKind>() {
            return Ok(Grantee::Kind(kind));
        }
        Ok(Grantee::Party(PartyId::parse(text)?))
    }

    /// Whether this grantee includes `recipient`.
    pub fn covers(&self, recipient: &Recipient) -> bool {
        match self {
            Grantee::Party(id) => *id == recipient.id,
            Grantee::Kind(kind) => *kind == recipient.kind,
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Party(id) => write!(f, "party {id}"),
            Grantee::Kind(kind) => write!(f, "every {kind}"),
        }
    }
}

/// One grant: the subject lets the grantee receive these categories in this period, for this purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Registry-wide unique id; a decision that permits names it.
    pub id: ConsentId,
    /// The person whose data it is.
    pub subject: Subject,
    /// Who may receive the data.
    pub grantee: Grantee,
    /// Which categories of data; at least one.
    pub categories: Vec<Category>,
    /// First day the consent holds (inclusive).
    pub valid_from: IsoDate,
    /// Last day the consent holds (inclusive); `None` = until revoked.
    pub valid_to: Option<IsoDate>,
    /// The one purpose the data may be used for; `None` = not restricted by purpose. A question must state
    /// this exact purpose to be permitted.
    pub purpose: Option<String>,
    /// When the person withdrew the consent; `Some` = it permits nothing any more.
    pub revoked_at: Option<Timestamp>,
}

impl Consent {
    /// Checks what the field types cannot: at least one category, `valid_to ≥ valid_from`, and a purpose
    /// that is not blank. The registry refuses a consent that fails this.
    pub fn validate(&self) -> Result<(), ConsentError> {
        let invalid = |field, problem| ConsentError::Invalid {
            id: self.id.to_string(),
            field,
            problem,
        };
        if self.categories.is_empty() {
            return Err(invalid("categories", ValueError::NoCategories));
        }
        if let Some(valid_to) = &self.valid_to
            && *valid_to < self.valid_from
        {
            return Err(invalid(
                "valid_to",
                ValueError::PeriodReversed {
                    valid_from: self.valid_from.to_string(),
                    valid_to: valid_to.to_string(),
                },
            ));
        }
        if let Some(purpose) = &self.purpose
            && (purpose.is_empty() || purpose.trim() != purpose)
        {
            return Err(invalid("purpose", ValueError::PurposeFormat));
        }
        Ok(())
    }

    /// Judges this one consent against `question`, subject aside: `Ok` if it permits, else why not.
    /// Checks run from the coarsest (recipient) to the finest (revocation), so the reason tells how close
    /// the consent came to permitting.
    pub fn judge(&self, question: &Question) -> Result<(), DenyReason> {
        if !self.grantee.covers(&question.recipient) {
            return Err(DenyReason::RecipientNotCovered);
        }
        if !self.categories.contains(&question.category) {
            return Err(DenyReason::CategoryNotCovered);
        }
        if let Some(purpose) = &self.purpose
            && question.purpose.as_deref() != Some(purpose.as_str())
        {
            return Err(DenyReason::PurposeMismatch);
        }
        if question.on < self.valid_from {
            return Err(DenyReason::NotYetValid);
        }
        if let Some(valid_to) = &self.valid_to
            && question.on > *valid_to
        {
            return Err(DenyReason::Expired);
        }
        if self.revoked_at.is_some() {
            return Err(DenyReason::Revoked);
        }
        Ok(())
    }
}

/// The party that would receive the data: its authenticated id and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The recipient's own code (医療機関コード / 事業所番号 / 保険者番号).
    pub id: PartyId,
    /// What kind of party it is.
    pub kind: PartyKind,
}

/// What a hop asks before data moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Whose data.
    pub subject: Subject,
    /// Who would receive it.
    pub recipient: Recipient,
    /// Which category the data is.
    pub category: Category,
    /// What it is for; `None` is permitted only by consents without a purpose.
    pub purpose: Option<String>,
    /// The day the decision is for (normally today, 日本時間).
    pub on: IsoDate,
}

/// Why data may not move. Declared from least to most specific; `Ord` follows the declaration and a
/// decision reports the most specific reason any of the subject's consents gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyReason {
    /// The subject has no consent at all.
    NoConsent,
    /// No consent names this recipient or its kind.
    RecipientNotCovered,
    /// A consent names the recipient, but not this category.
    CategoryNotCovered,
    /// A consent covers recipient and category, but for another purpose (or the question stated none).
    PurposeMismatch,
    /// A consent would cover it, but its period ended before the question's day.
    Expired,
    /// A consent would cover it, but its period starts after the question's day.
    NotYetValid,
    /// A consent would cover it, but the person revoked it.
    Revoked,
}

impl DenyReason {
    /// The reason's code in audit events and quarantine headers.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::NoConsent => "no-consent",
            DenyReason::RecipientNotCovered => "recipient-not-covered",
            DenyReason::CategoryNotCovered => "category-not-covered",
            DenyReason::PurposeMismatch => "purpose-mismatch",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not-yet-valid",
            DenyReason::Revoked => "revoked",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why no decision could be made. The message must wait and be asked again; it is never delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndeterminateReason {
    /// The registry could not be read.
    RegistryUnavailable { detail: String },
}

impl fmt::Display for IndeterminateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndeterminateReason::RegistryUnavailable { detail } => {
                write!(f, "registry-unavailable: {detail}")
            }
        }
    }
}

/// The answer to a [`Question`]. Only `Permit` lets data move.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "decision")]
pub enum Decision {
    /// Allowed by this consent.
    Permit { consent_id: ConsentId },
    /// Not allowed; quarantine with this reason.
    Deny { reason: DenyReason },
    /// Unknown; retry later, never deliver.
    Indeterminate { reason: IndeterminateReason },
}

impl Decision {
    /// True only for `Permit`.
    pub fn is_permit(&self) -> bool {
        matches!(self, Decision::Permit { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Permit { consent_id } => write!(f, "permit (consent {consent_id})"),
            Decision::Deny { reason } => write!(f, "deny ({reason})"),
            Decision::Indeterminate { reason } => write!(f, "indeterminate ({reason})"),
        }
    }
}

/// Decides `question` against a set of consents (any subjects; others are skipped): `Permit` with the first
/// consent, in iteration order, that permits; otherwise `Deny` with the most specific reason. A cache
/// holding a snapshot of consents decides with this, exactly as the registry does.
pub fn decide_from<'a>(
    consents: impl IntoIterator<Item = &'a Consent>,
    question: &Question,
) -> Decision {
    let mut reason = DenyReason::NoConsent;
    for consent in consents {
        if consent.subject != question.subject {
            continue;
        }
        match consent.judge(question) {
            Ok(()) => {
                return Decision::Permit {
                    consent_id: consent.id.clone(),
                };
            }
            Err(why) => reason = reason.max(why),
        }
    }
    Decision::Deny { reason }
}

/// Where consents are kept. Implementations are shared between the hops (`&self`, `Send + Sync`).
pub trait ConsentRegistry: Send + Sync {
    /// Answers a question. Never `Permit` unless a stored, unrevoked consent covers it; `Indeterminate`
    /// when the store cannot be read.
    fn decide(&self, question: &Question) -> Decision;

    /// Stores a consent. Granting the same consent again is a no-op; granting it again with `revoked_at`
    /// set revokes it; any other change under an existing id is refused (`IdInUse`).
    fn grant(&self, consent: Consent) -> Result<(), ConsentError>;

    /// Revokes consent `id` as of `at` (a [`Timestamp`]). Revoking a revoked consent keeps the first time
    /// and is not an error.
    fn revoke(&self, id: &str, at: &str) -> Result<(), ConsentError>;

    /// The stored consents (revoked ones too), of one subject or of all, in the order they were granted.
    fn list(&self, subject: Option<&Subject>) -> Vec<Consent>;

    /// Every stored consent of `subject` (revoked ones too), or why the store cannot say: what a
    /// cache keeps, so that a read error never looks like "no consent".
    fn consents_of(&self, subject: &Subject) -> Result<Vec<Consent>, ConsentError>;

    /// A number that grows with every change that can alter a decision; a cache whose copy was taken at
    /// another number is stale. An error means the cache cannot know and must not answer from its copy.
    fn change_counter(&self) -> Result<u64, ConsentError>;
}

/// The registry's contents behind the lock.
#[derive(Debug, Default)]
struct Store {
    /// In grant order.
    consents: Vec<Consent>,
    /// Consent id → index in `consents`.
    by_id: HashMap<ConsentId, usize>,
    /// Subject → indexes in `consents`, in grant order.
    by_subject: HashMap<Subject, Vec<usize>>,
    /// Bumped on every effective change.
    version: u64,
}

/// A registry in memory: for tests, the embedded default, and as the cache's snapshot.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    store: RwLock<Store>,
}

impl InMemoryRegistry {
    /// An empty registry at change counter 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn unavailable<T>(_: PoisonError<T>) -> ConsentError {
        ConsentError::Unavailable {
            detail: "a writer panicked while holding the registry lock".to_owned(),
        }
    }
}

impl ConsentRegistry for InMemoryRegistry {
    fn decide(&self, question: &Question) -> Decision {
        let Ok(store) = self.store.read() else {
            return Decision::Indeterminate {
                reason: IndeterminateReason::RegistryUnavailable {
                    detail: "the registry lock is poisoned".to_owned(),
                },
            };
        };
        let Some(indexes) = store.by_subject.get(&question.subject) else {
            return Decision::Deny {
                reason: DenyReason::NoConsent,
            };
        };
        decide_from(
            indexes.iter().filter_map(|&i| store.consents.get(i)),
            question,
        )
    }

    fn grant(&self, consent: Consent) -> Result<(), ConsentError> {
        consent.validate()?;
        let mut store = self.store.write().map_err(Self::unavailable)?;
        if let Some(&index) = store.by_id.get(&consent.id) {
            // `by_id` only holds indexes into `consents`, which never shrinks.
            let existing = &mut store.consents[index];
            let same_terms = Consent {
                revoked_at: existing.revoked_at.clone(),
                ..consent.clone()
            } == *existing;
            return match (same_terms, &existing.revoked_at, consent.revoked_at) {
                (false, _, _) => Err(ConsentError::IdInUse {
                    id: consent.id.to_string(),
                }),
                (true, Some(_), None) => Err(ConsentError::AlreadyRevoked {
                    id: consent.id.to_string(),
                }),
                (true, None, Some(at)) => {
                    existing.revoked_at = Some(at);
                    store.version += 1;
                    Ok(())
                }
                (true, _, _) => Ok(()),
            };
        }
        let index = store.consents.len();
        store.by_id.insert(consent.id.clone(), index);
        store
            .by_subject
            .entry(consent.subject.clone())
            .or_default()
            .push(index);
        store.consents.push(consent);
        store.version += 1;
        Ok(())
    }

    fn revoke(&self, id: &str, at: &str) -> Result<(), ConsentError> {
        let invalid = |field, problem| ConsentError::Invalid {
            id: id.to_owned(),
            field,
            problem,
        };
        let consent_id = ConsentId::parse(id).map_err(|problem| invalid("id", problem))?;
        let at = Timestamp::parse(at).map_err(|problem| invalid("revoked_at", problem))?;
        let mut store = self.store.write().map_err(Self::unavailable)?;
        let Some(&index) = store.by_id.get(&consent_id) else {
            return Err(ConsentError::UnknownConsent { id: id.to_owned() });
        };
        // `by_id` only holds indexes into `consents`, which never shrinks.
        let consent = &mut store.consents[index];
        if consent.revoked_at.is_none() {
            consent.revoked_at = Some(at);
            store.version += 1;
        }
        Ok(())
    }

    fn list(&self, subject: Option<&Subject>) -> Vec<Consent> {
        // Reading after a writer panicked is safe here: every write is a single step that leaves the
        // store whole, and `list` never decides anything.
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        match subject {
            None => store.consents.clone(),
            Some(subject) => store
                .by_subject
                .get(subject)
                .into_iter()
                .flatten()
                .filter_map(|&i| store.consents.get(i).cloned())
                .collect(),
        }
    }

    fn consents_of(&self, subject: &Subject) -> Result<Vec<Consent>, ConsentError> {
        let store = self.store.read().map_err(Self::unavailable)?;
        Ok(store
            .by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|&i| store.consents.get(i).cloned())
            .collect())
    }

    fn change_counter(&self) -> Result<u64, ConsentError> {
        self.store
            .read()
            .map(|store| store.version)
            .map_err(Self::unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use proptest::prelude::*;

    const HOSPITAL_A: &str = "1312345678";
    const HOSPITAL_B: &str = "1319876543";

    fn subject() -> Subject {
        Subject::new("131011", "0000000001").expect("fixed valid subject")
    }

    fn date(text: &str) -> IsoDate {
        IsoDate::parse(text).expect("fixed valid date")
    }

    fn recipient(id: &str, kind: PartyKind) -> Recipient {
        Recipient {
            id: PartyId::parse(id).expect("fixed valid party id"),
            kind,
        }
    }

    fn consent(id: &str, grantee: Grantee) -> Consent {
        Consent {
            id: ConsentId::parse(id).expect("fixed valid consent id"),
            subject: subject(),
            grantee,
            categories: vec![Category::CarePlan],
            valid_from: date("2024-04-01"),
            valid_to: Some(date("2025-03-31")),
            purpose: None,
            revoked_at: None,
        }
    }

    fn to_party(id: &str) -> Grantee {
        Grantee::Party(PartyId::parse(id).expect("fixed valid party id"))
    }

    fn question(on: &str) -> Question {
        Question {
            subject: subject(),
            recipient: recipient(HOSPITAL_A, PartyKind::Hospital),
            category: Category::CarePlan,
            purpose: None,
            on: date(on),
        }
    }

    fn denied(reason: DenyReason) -> Decision {
        Decision::Deny { reason }
    }

    fn permitted(id: &str) -> Decision {
        Decision::Permit {
            consent_id: ConsentId::parse(id).expect("fixed valid consent id"),
        }
    }

    fn registry_with(consents: Vec<Consent>) -> InMemoryRegistry {
        let registry = InMemoryRegistry::new();
        for c in consents {
            registry.grant(c).expect("test consent is valid");
        }
        registry
    }

    #[test]
    fn dates_and_timestamps_are_validated() {
        assert!(IsoDate::parse("2024-02-29").is_ok());
        assert!(IsoDate::parse("2023-02-29").is_err());
        assert!(IsoDate::parse("2024-4-01").is_err());
        assert!(IsoDate::parse("2024-13-01").is_err());
        assert!(Timestamp::parse("2024-04-01").is_ok());
        assert!(Timestamp::parse("2024-04-01T09:30:00+09:00").is_ok());
        assert!(Timestamp::parse("2024-04-01T00:30:00.123Z").is_ok());
        assert!(Timestamp::parse("2024-04-01T09:30+09:00").is_err());
        assert!(Timestamp::parse("2024-04-01T09:30:00").is_err());
        assert!(Timestamp::parse("2024-04-01T24:00:00Z").is_err());
    }

    #[test]
    fn timestamp_errors_name_the_part_at_fault_and_audit_instants_are_consent_times() {
        let err = |text: &str| Timestamp::parse(text).map(|_| ()).err();
        let value = |text: &str| text.to_string();
        assert_eq!(
            err("2023-02-29T00:00:00Z"),
            Some(ValueError::DateNotInCalendar {
                value: value("2023-02-29")
            })
        );
        assert_eq!(
            err("2024/04/01T00:00:00Z"),
            Some(ValueError::DateFormat {
                value: value("2024/04/01")
            })
        );
        for text in [
            "２０２４-04-01",
            "2024-4-01",
            "2024-04-01T09:30:00",
            "2024-04-01T9:30:00Z",
        ] {
            assert_eq!(
                err(text),
                Some(ValueError::TimestampFormat { value: value(text) })
            );
        }
        for text in ["2024-02-29T23:59:60Z", "2025-04-01T09:30:00.123456789Z"] {
            assert!(crate::calendar::Timestamp::parse(text).is_ok(), "{text}");
            assert_eq!(err(text), None, "{text}");
        }
    }

    #[test]
    fn a_matching_consent_permits_with_its_id() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        assert_eq!(registry.decide(&question("2024-06-01")), permitted("c1"));
    }

    #[test]
    fn a_subject_without_consents_is_denied_no_consent() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let mut q = question("2024-06-01");
        q.subject = Subject::new("435073", "0000000001").expect("valid");
        assert_eq!(registry.decide(&q), denied(DenyReason::NoConsent));
        assert_eq!(
            InMemoryRegistry::new().decide(&q),
            denied(DenyReason::NoConsent)
        );
    }

    #[test]
    fn a_grant_for_recipient_a_does_not_permit_recipient_b() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let mut q = question("2024-06-01");
        q.recipient = recipient(HOSPITAL_B, PartyKind::Hospital);
        assert_eq!(registry.decide(&q), denied(DenyReason::RecipientNotCovered));
    }

    #[test]
    fn a_party_kind_grant_covers_every_party_of_that_kind_and_no_other_kind() {
        let registry = registry_with(vec![consent("c1", Grantee::Kind(PartyKind::Hospital))]);
        let mut q = question("2024-06-01");
        assert_eq!(registry.decide(&q), permitted("c1"));
        q.recipient = recipient(HOSPITAL_B, PartyKind::Hospital);
        assert_eq!(registry.decide(&q), permitted("c1"));
        q.recipient = recipient(HOSPITAL_B, PartyKind::Provider);
        assert_eq!(registry.decide(&q), denied(DenyReason::RecipientNotCovered));
    }

    #[test]
    fn a_category_not_listed_is_denied_category_not_covered() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let mut q = question("2024-06-01");
        q.category = Category::Claims;
        assert_eq!(registry.decide(&q), denied(DenyReason::CategoryNotCovered));
    }

    #[test]
    fn a_purpose_bound_consent_needs_the_same_purpose_in_the_question() {
        let mut c = consent("c1", to_party(HOSPITAL_A));
        c.purpose = Some("care-coordination".into());
        let registry = registry_with(vec![c]);
        let mut q = question("2024-06-01");
        assert_eq!(registry.decide(&q), denied(DenyReason::PurposeMismatch));
        q.purpose = Some("research".into());
        assert_eq!(registry.decide(&q), denied(DenyReason::PurposeMismatch));
        q.purpose = Some("care-coordination".into());
        assert_eq!(registry.decide(&q), permitted("c1"));
    }

    #[test]
    fn a_consent_without_purpose_permits_any_stated_purpose() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let mut q = question("2024-06-01");
        q.purpose = Some("research".into());
        assert_eq!(registry.decide(&q), permitted("c1"));
    }

    #[test]
    fn validity_is_inclusive_at_both_ends_and_denied_just_outside() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        assert_eq!(
            registry.decide(&question("2024-03-31")),
            denied(DenyReason::NotYetValid)
        );
        assert_eq!(registry.decide(&question("2024-04-01")), permitted("c1"));
        assert_eq!(registry.decide(&question("2025-03-31")), permitted("c1"));
        assert_eq!(
            registry.decide(&question("2025-04-01")),
            denied(DenyReason::Expired)
        );
    }

    #[test]
    fn an_open_ended_consent_never_expires() {
        let mut c = consent("c1", to_party(HOSPITAL_A));
        c.valid_to = None;
        let registry = registry_with(vec![c]);
        assert_eq!(registry.decide(&question("2099-12-31")), permitted("c1"));
    }

    #[test]
    fn revocation_takes_effect_for_later_decisions() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let q = question("2024-06-01");
        assert!(registry.decide(&q).is_permit());
        let before = registry.change_counter().expect("readable");
        registry
            .revoke("c1", "2024-06-01T10:00:00+09:00")
            .expect("known id");
        assert_eq!(registry.decide(&q), denied(DenyReason::Revoked));
        // Also for questions about days before the revocation: data moving now needs consent now.
        assert_eq!(
            registry.decide(&question("2024-05-01")),
            denied(DenyReason::Revoked)
        );
        assert!(registry.change_counter().expect("readable") > before);
    }

    #[test]
    fn revoking_twice_keeps_the_first_time_and_does_not_count_as_a_change() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        registry.revoke("c1", "2024-06-01").expect("known id");
        let counter = registry.change_counter().expect("readable");
        registry.revoke("c1", "2024-07-01").expect("idempotent");
        assert_eq!(registry.change_counter().expect("readable"), counter);
        let listed = registry.list(None);
        assert_eq!(
            listed[0].revoked_at.as_ref().map(Timestamp::as_str),
            Some("2024-06-01")
        );
    }

    #[test]
    fn revoking_an_unknown_id_or_with_a_bad_time_is_an_error() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        assert_eq!(
            registry.revoke("c2", "2024-06-01"),
            Err(ConsentError::UnknownConsent { id: "c2".into() })
        );
        assert!(matches!(
            registry.revoke("c1", "yesterday"),
            Err(ConsentError::Invalid {
                field: "revoked_at",
                ..
            })
        ));
        assert!(registry.decide(&question("2024-06-01")).is_permit());
    }

    #[test]
    fn the_most_specific_reason_among_several_consents_is_reported() {
        let mut expired = consent("old", to_party(HOSPITAL_A));
        expired.valid_to = Some(date("2024-04-30"));
        let other_category = Consent {
            categories: vec![Category::Claims],
            ..consent("claims", to_party(HOSPITAL_A))
        };
        let other_party = consent("b", to_party(HOSPITAL_B));
        let registry = registry_with(vec![other_party, other_category, expired]);
        assert_eq!(
            registry.decide(&question("2024-06-01")),
            denied(DenyReason::Expired)
        );
    }

    #[test]
    fn a_revoked_consent_does_not_hide_another_that_permits() {
        let registry = registry_with(vec![
            consent("c1", to_party(HOSPITAL_A)),
            consent("c2", Grantee::Kind(PartyKind::Hospital)),
        ]);
        registry.revoke("c1", "2024-05-01").expect("known id");
        assert_eq!(registry.decide(&question("2024-06-01")), permitted("c2"));
    }

    #[test]
    fn grant_refuses_reversed_periods_empty_categories_and_blank_purposes() {
        let registry = InMemoryRegistry::new();
        let mut reversed = consent("c1", to_party(HOSPITAL_A));
        reversed.valid_to = Some(date("2024-03-01"));
        assert!(matches!(
            registry.grant(reversed),
            Err(ConsentError::Invalid {
                field: "valid_to",
                ..
            })
        ));
        let mut empty = consent("c2", to_party(HOSPITAL_A));
        empty.categories.clear();
        assert!(matches!(
            registry.grant(empty),
            Err(ConsentError::Invalid {
                field: "categories",
                problem: ValueError::NoCategories,
                ..
            })
        ));
        let mut blank = consent("c3", to_party(HOSPITAL_A));
        blank.purpose = Some(" ".into());
        assert!(registry.grant(blank).is_err());
        assert!(registry.list(None).is_empty());
        assert_eq!(registry.change_counter(), Ok(0));
    }

    #[test]
    fn regranting_under_an_existing_id_is_a_no_op_a_revocation_or_refused() {
        let registry = registry_with(vec![consent("c1", to_party(HOSPITAL_A))]);
        let counter = registry.change_counter().expect("readable");
        registry
            .grant(consent("c1", to_party(HOSPITAL_A)))
            .expect("identical grant is a no-op");
        assert_eq!(registry.change_counter(), Ok(counter));

        let widened = Consent {
            categories: Category::ALL.to_vec(),
            ..consent("c1", to_party(HOSPITAL_A))
        };
        assert_eq!(
            registry.grant(widened),
            Err(ConsentError::IdInUse { id: "c1".into() })
        );

        let revoked = Consent {
            revoked_at: Some(Timestamp::parse("2024-06-01").expect("valid")),
            ..consent("c1", to_party(HOSPITAL_A))
        };
        registry.grant(revoked).expect("revocation by re-grant");
        assert_eq!(
            registry.decide(&question("2024-06-02")),
            denied(DenyReason::Revoked)
        );
        assert_eq!(
            registry.grant(consent("c1", to_party(HOSPITAL_A))),
            Err(ConsentError::AlreadyRevoked { id: "c1".into() })
        );
        assert!(registry.decide(&question("2024-06-02")) == denied(DenyReason::Revoked));
    }

    #[test]
    fn list_filters_by_subject_in_grant_order() {
        let mut other = consent("x", to_party(HOSPITAL_A));
        other.subject = Subject::new("435073", "H123456789").expect("valid");
        let registry = registry_with(vec![
            consent("c2", to_party(HOSPITAL_A)),
            other.clone(),
            consent("c1", to_party(HOSPITAL_B)),
        ]);
        let ids: Vec<String> = registry
            .list(Some(&subject()))
            .into_iter()
            .map(|c| c.id.to_string())
            .collect();
        assert_eq!(ids, ["c2", "c1"]);
        assert_eq!(registry.list(Some(&other.subject)), vec![other]);
        assert_eq!(registry.list(None).len(), 3);
    }

    #[test]
    fn a_poisoned_registry_answers_indeterminate_and_refuses_changes() {
        let registry = Arc::new(registry_with(vec![consent("c1", to_party(HOSPITAL_A))]));
        let poisoner = Arc::clone(&registry);
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.store.write();
            panic!("poison the lock on purpose");
        })
        .join();
        assert!(joined.is_err());
        assert!(matches!(
            registry.decide(&question("2024-06-01")),
            Decision::Indeterminate {
                reason: IndeterminateReason::RegistryUnavailable { .. }
            }
        ));
        assert!(matches!(
            registry.revoke("c1", "2024-06-01"),
            Err(ConsentError::Unavailable { .. })
        ));
        assert!(registry.change_counter().is_err());
    }

    #[test]
    fn decisions_and_reasons_render_as_their_codes() {
        assert_eq!(DenyReason::NotYetValid.to_string(), "not-yet-valid");
        assert_eq!(
            serde_json::to_string(&Category::CarePlan).expect("serializable"),
            "\"care-plan\""
        );
        let json = serde_json::to_string(&denied(DenyReason::CategoryNotCovered)).expect("ok");
        assert_eq!(
            json,
            r#"{"decision":"deny","reason":"category-not-covered"}"#
        );
        assert_eq!(
            Grantee::parse("hospital"),
            Ok(Grantee::Kind(PartyKind::Hospital))
        );
        assert_eq!(Grantee::parse("131011"), Ok(to_party("131011")));
    }

    // ---- property: the registry permits exactly what a plain reading of the rules permits ----

    const DAYS: [&str; 5] = [
        "2024-04-01",
        "2024-04-02",
        "2024-04-03",
        "2024-04-04",
        "2024-04-05",
    ];
    const PARTIES: [&str; 3] = [HOSPITAL_A, HOSPITAL_B, "131011"];
    const PURPOSES: [Option<&str>; 3] = [None, Some("care"), Some("research")];

    fn subjects() -> [Subject; 2] {
        [
            subject(),
            Subject::new("435073", "H123456789").expect("valid"),
        ]
    }

    #[derive(Debug, Clone)]
    struct Op {
        subject: usize,
        grantee_kind: Option<usize>,
        party: usize,
        categories: Vec<usize>,
        from: usize,
        to: Option<usize>,
        purpose: usize,
        revoke: bool,
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0..2usize,
            prop::option::of(0..4usize),
            0..3usize,
            prop::collection::vec(0..5usize, 0..5),
            0..5usize,
            prop::option::of(0..5usize),
            prop_oneof![2 => Just(0usize), 1 => 1..3usize],
            any::<bool>(),
        )
            .prop_map(
                |(subject, grantee_kind, party, categories, from, to, purpose, revoke)| Op {
                    subject,
                    grantee_kind,
                    party,
                    categories,
                    from,
                    to,
                    purpose,
                    revoke,
                },
            )
    }

    fn question_strategy() -> impl Strategy<Value = Question> {
        (
            0..2usize,
            0..3usize,
            0..4usize,
            0..5usize,
            0..3usize,
            0..5usize,
        )
            .prop_map(|(s, party, kind, category, purpose, day)| Question {
                subject: subjects()[s].clone(),
                recipient: recipient(PARTIES[party], PartyKind::ALL[kind]),
                category: Category::ALL[category],
                purpose: PURPOSES[purpose].map(str::to_owned),
                on: date(DAYS[day]),
            })
    }

    /// The rules, read plainly: some live (stored, unrevoked) consent of this subject names the recipient
    /// or its kind, lists the category, has no purpose or the asked one, and spans the day.
    fn reference_permits(live: &[Consent], q: &Question) -> bool {
        live.iter().any(|c| {
            let recipient_ok = match &c.grantee {
                Grantee::Party(id) => id.as_str() == q.recipient.id.as_str(),
                Grantee::Kind(kind) => *kind == q.recipient.kind,
            };
            c.subject == q.subject
                && recipient_ok
                && c.categories.contains(&q.category)
                && (c.purpose.is_none() || c.purpose == q.purpose)
                && c.valid_from.as_str() <= q.on.as_str()
                && c.valid_to
                    .as_ref()
                    .is_none_or(|to| q.on.as_str() <= to.as_str())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn decide_permits_exactly_what_the_reference_predicate_permits(
            ops in prop::collection::vec(op(), 0..16),
            questions in prop::collection::vec(question_strategy(), 1..40),
        ) {
            let registry = InMemoryRegistry::new();
            let mut live: Vec<Consent> = Vec::new();
            for (n, op) in ops.iter().enumerate() {
                let c = Consent {
                    id: ConsentId::parse(&format!("c{n}")).expect("valid id"),
                    subject: subjects()[op.subject].clone(),
                    grantee: match op.grantee_kind {
                        Some(k) => Grantee::Kind(PartyKind::ALL[k]),
                        None => to_party(PARTIES[op.party]),
                    },
                    categories: op.categories.iter().map(|&i| Category::ALL[i]).collect(),
                    valid_from: date(DAYS[op.from]),
                    valid_to: op.to.map(|t| date(DAYS[t])),
                    purpose: PURPOSES[op.purpose].map(str::to_owned),
                    revoked_at: None,
                };
                // Invalid grants (no category, reversed period) must be refused and permit nothing.
                let valid = !c.categories.is_empty() && op.to.is_none_or(|t| t >= op.from);
                prop_assert_eq!(registry.grant(c.clone()).is_ok(), valid);
                if valid {
                    live.push(c);
                }
            }
            for (n, op) in ops.iter().enumerate() {
                if op.revoke {
                    let id = format!("c{n}");
                    let known = live.iter().any(|c| c.id.as_str() == id);
                    prop_assert_eq!(registry.revoke(&id, "2024-04-03T12:00:00+09:00").is_ok(), known);
                    live.retain(|c| c.id.as_str() != id);
                }
            }
            let delivered: BTreeSet<usize> = questions
                .iter()
                .enumerate()
                .filter(|(_, q)| registry.decide(q).is_permit())
                .map(|(i, _)| i)
                .collect();
            let permitted: BTreeSet<usize> = questions
                .iter()
                .enumerate()
                .filter(|(_, q)| reference_permits(&live, q))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(&delivered, &permitted);
            for q in &questions {
                match registry.decide(q) {
                    Decision::Permit { consent_id } => {
                        let c = live.iter().find(|c| c.id == consent_id);
                        prop_assert!(c.is_some_and(|c| reference_permits(std::slice::from_ref(c), q)));
                    }
                    Decision::Deny { reason } => {
                        let has_any = !registry.list(Some(&q.subject)).is_empty();
                        prop_assert_eq!(reason == DenyReason::NoConsent, !has_any);
                    }
                    Decision::Indeterminate { .. } => prop_assert!(false, "in-memory registry is readable"),
                }
            }
        }
    }
}
