//! `InsuredPerson@1` — who the subject is: names in kanji and kana, birth date, sex, address,
//! phones and the identifiers each source knows the person by. Produced from hospital ADT
//! messages and FHIR `Patient`s; rendered back out as a JP Core `Patient`.

use super::common::{Address, Identifier, PersonName, Provenance, Sex, Subject, Telecom};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 被保険者 (利用者) 基本情報 — the person a message is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuredPerson {
    /// Document type and version: always `InsuredPerson@1`.
    pub document: String,
    /// 被保険者 — 保険者番号 + 被保険者番号, when the source carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// 識別子 — 患者ID with its facility, 被保険者番号 and others, with their systems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// 氏名 — kanji and kana.
    #[serde(default)]
    pub name: PersonName,
    /// 生年月日 — ISO 8601 date `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 性別.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// 住所.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// 電話番号など.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<Telecom>,
    /// 出所 — sender, message id (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}
