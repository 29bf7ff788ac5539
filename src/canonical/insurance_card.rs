//! `InsuranceCard@1` — 介護保険被保険者証: the insured person's certification (要介護状態区分 and
//! its validity), the benefit limit, the care-management office and the card's history number.
//! Produced from vendor XML exports; category 要介護認定 (certification).

use super::common::{Address, PersonName, Provenance, Sex, Subject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 介護保険被保険者証.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuranceCard {
    /// Document type and version: always `InsuranceCard@1`.
    pub document: String,
    /// 被保険者 — 保険者番号 + 被保険者番号 (required on a card).
    pub subject: Subject,
    /// 履歴番号 — the card's revision number, when the issuing system keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_number: Option<String>,
    /// 保険者名称 — the insurer's name (e.g. 〇〇市).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurer_name: Option<String>,
    /// 交付年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<String>,
    /// 氏名.
    #[serde(default)]
    pub name: PersonName,
    /// 生年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 性別.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// 住所.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// 要介護認定 — the certification printed on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification: Option<Certification>,
    /// 区分支給限度基準額 — the monthly benefit limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefit_limit: Option<BenefitLimit>,
    /// 認定審査会の意見及びサービスの種類の指定.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee_opinion: Option<String>,
    /// 居宅介護支援事業者 — the notified care-management office.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_management_office: Option<CareManagementOffice>,
    /// 出所.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

/// 要介護認定.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// 要介護状態区分 — code: 01 非該当, 06 事業対象者, 12 要支援１, 13 要支援２, 21–25 要介護１–５.
    pub care_level: String,
    /// 認定状況区分 — 1 申請中, 2 認定済.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// 認定年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified_on: Option<String>,
    /// 認定の有効期間（開始） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// 認定の有効期間（終了） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// 区分支給限度基準額.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitLimit {
    /// 単位数 — units per month.
    pub units: i64,
    /// 有効期間（開始） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// 有効期間（終了） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// 居宅介護支援事業者又は介護予防支援事業者及びその事業所の名称.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CareManagementOffice {
    /// 事業所番号 — 10 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_number: Option<String>,
    /// 事業所名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 届出年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_on: Option<String>,
}
