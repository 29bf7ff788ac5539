//! Building blocks shared by several canonical documents: the subject (保険者番号 + 被保険者番号),
//! names in kanji and kana, addresses, phones, identifiers and provenance. Types only: no parsing
//! and no I/O (the subject's numbers are validated by their own types, [`crate::identifiers`]).
//! A published shape never changes in place; a change is a new document version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 被保険者 — whom a document is about: the one validated type of [`crate::identifiers`], so a
/// document holds only numbers that the consent registry accepts too.
pub use crate::identifiers::Subject;

/// 氏名 — a person's name written in kanji (漢字) and in kana (カナ, full width).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// 漢字氏名 — the name in kanji (FHIR `IDE` representation, HL7 v2 `I`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kanji: Option<NameParts>,
    /// カナ氏名 — the name in full-width katakana (FHIR `SYL` representation, HL7 v2 `P`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kana: Option<NameParts>,
}

/// One written form of a name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameParts {
    /// 姓 — family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// 名 — given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
    /// 氏名 — the whole name as written, when the source gives it undivided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// 性別.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// 男性
    Male,
    /// 女性
    Female,
    /// その他
    Other,
    /// 不明
    Unknown,
}

/// 住所.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// 郵便番号 — `NNN-NNNN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// 住所 — the address as one line of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// 住所（続き） — a second address line, when the source splits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// 国 — ISO 3166 country code, e.g. `JPN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// 連絡先 — a phone, fax or e-mail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Telecom {
    /// 種別 — `phone`, `fax` or `email`.
    pub system: TelecomSystem,
    /// 用途 — `home` (自宅), `work` (勤務先), `mobile` (携帯), `emergency` (緊急連絡先).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<TelecomUse>,
    /// 番号またはアドレス.
    pub value: String,
}

/// 連絡先の種別.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TelecomSystem {
    /// 電話
    Phone,
    /// FAX
    Fax,
    /// 電子メール
    Email,
}

/// 連絡先の用途.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TelecomUse {
    /// 自宅
    Home,
    /// 勤務先
    Work,
    /// 携帯
    Mobile,
    /// 緊急連絡先
    Emergency,
}

/// 識別子 — an identifier with the system that issued it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// 発番体系 — a URI (JP Core IdSystem / `urn:oid:…`) or a local kind such as `patient-id`.
    pub system: String,
    /// 値.
    pub value: String,
    /// 発番者 — e.g. the 医療機関コード of the facility that issued a 患者ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigner: Option<String>,
}

/// 出所 — where the document came from (ids only, never personal data).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// 送信元 — 医療機関コード, 事業所番号 or application id of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// 送信先 — the addressed receiver, when the source names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// メッセージID — e.g. HL7 `MSH-10`, FHIR `Bundle.identifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// 送信日時 — ISO 8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    /// ファイル名 — for file based sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// 送信元サービス種類コード — 2 characters (ケアプラン CSV file names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_service_type: Option<String>,
    /// 送信先サービス種類コード — 2 characters (ケアプラン CSV file names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_service_type: Option<String>,
}
