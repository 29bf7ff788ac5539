//! `ClaimStatement@1` — 介護給付費明細書: what a 事業所 claims for one person and one service
//! month under one 様式 (交換情報識別番号), from the 国保連 claims file. One document is one
//! 明細書: its 01 基本情報 record, its 02 明細情報 lines, its 10 集計情報 records (one per
//! サービス種類), its 11 特定入所者介護サービス費用情報 records (様式第八) and its 12
//! 社会福祉法人軽減額情報 records. Category 請求・給付 (claims); it is about a person, so it
//! goes only with that person's consent.
//!
//! Spec: shared/specs/claims-csv.md §5 (5.1 header, 5.3 01, 5.4 02, 5.5 10, 5.6 11, 5.7 12),
//! §8. The 様式 are told apart by `form`; a record kind another 様式 adds (04 特定診療費 …) is
//! a further optional list beside these. Amounts and counts are the integers
//! written (※S items are signed); a field the spec lets be empty is absent when empty, and a `0`
//! written is kept as `0`. 単位数単価 is a decimal text (`"11.40"`), never a float.

use super::certification_codes::CareLevel;
use super::common::{Provenance, Sex, Subject};
use super::declare::{code_list, optional_record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 介護給付費明細書 — one 明細書 (records sharing 様式, 年月, 事業所, 保険者 and 被保険者).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimStatement {
    /// Document type and version: always `ClaimStatement@1`.
    pub document: String,
    /// 交換情報識別番号 — the 様式 of the 明細書.
    pub form: StatementForm,
    /// サービス提供年月 — the service month, `YYYY-MM`.
    pub service_month: String,
    /// 事業所番号 — the claiming 事業所 (10 characters).
    pub provider_number: String,
    /// 被保険者 — 保険者番号 (6 digits, from the 証記載保険者番号) and 被保険者番号.
    pub subject: Subject,
    /// 証記載保険者番号 — as written in the file (8 digits: `00` + the 6-digit 保険者番号).
    pub card_insurer_number: String,
    /// 基本情報 — the 01 record.
    pub basic: Basic,
    /// 明細情報 — the 02 records, one per サービスコード, in file order.
    pub details: Vec<Detail>,
    /// 集計情報 — the 10 records, one per サービス種類.
    pub totals: Vec<Totals>,
    /// 特定入所者介護サービス費用情報 — the 11 records (施設 様式 such as 7183), when claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specified_resident: Vec<SpecifiedResident>,
    /// 社会福祉法人軽減額情報 — the 12 records, when the 軽減 is claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reductions: Vec<Reduction>,
    /// The claims file's control record (レコード種別 1) the 明細書 came in.
    pub file: super::claim_invoice::ClaimFile,
    /// 出所 — the sending 事業所 (the control record's 事業所番号) and the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

code_list! {
    /// 交換情報識別番号 of a 明細書 (records 01, 02, 10, 12).
    pub enum StatementForm {
        /// 様式第二 — 居宅サービス.
        "7131" => HomeServices,
        /// 様式第二の二 — 介護予防サービス (the 7131 layout).
        "7132" => PreventiveServices,
        /// 様式第八 — 介護老人福祉施設・地域密着型介護老人福祉施設 (adds 11 特定入所者).
        "7183" => WelfareFacility,
    }
}

code_list! {
    /// 居宅サービス計画作成区分コード.
    pub enum PlanAuthor {
        /// 居宅介護支援事業所作成.
        "1" => CareManagementOffice,
        /// 自己作成.
        "2" => SelfMade,
        /// 介護予防支援事業所作成.
        "3" => PreventiveSupportOffice,
    }
}

/// 基本情報 — the 01 record, items 7–56.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Basic {
    /// 生年月日 — item 13, `YYYY-MM-DD`.
    pub birth_date: String,
    /// 性別コード — item 14 (1 男, 2 女).
    pub sex: Sex,
    /// 要介護状態区分コード — item 15.
    pub care_level: CareLevel,
    /// 旧措置入所者特例コード — item 16 (様式第八 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_measure: Option<String>,
    /// 認定有効期間 開始年月日 — item 17.
    pub certified_from: String,
    /// 認定有効期間 終了年月日 — item 18.
    pub certified_to: String,
    /// 居宅サービス計画作成区分コード — item 19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_author: Option<PlanAuthor>,
    /// 事業所番号（居宅介護支援事業所） — item 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_manager_office: Option<String>,
    /// 開始年月日 — item 21.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    /// 中止年月日 — item 22.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_on: Option<String>,
    /// 中止理由・入所（院）前の状況コード — item 23 (code list unverified: as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// 入所（院）年月日 — item 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_on: Option<String>,
    /// 退所（院）年月日 — item 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharged_on: Option<String>,
    /// 入所（院）実日数 — item 26.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_in: Option<i64>,
    /// 外泊日数 — item 27.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nights_out: Option<i64>,
    /// 退所（院）後の状態コード — item 28 (as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_discharge: Option<String>,
    /// 保険 — 保険給付率 (item 29) and the 保険 amounts (items 33–38).
    pub insurance: BasicInsurance,
    /// 公費1 — 負担者番号/受給者番号 (items 7, 8), 給付率 (30), amounts (39–44).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_1: Option<BasicPublic>,
    /// 公費2 — items 9, 10, 31, 45–50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_2: Option<BasicPublic>,
    /// 公費3 — items 11, 12, 32, 51–56.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_3: Option<BasicPublic>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// 保険 on the 01 record: 給付率 and 請求額 (※S integers, 円 unless units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicInsurance {
    /// 保険給付率 — percent (item 29), e.g. `90`.
    pub rate: i64,
    /// サービス単位数 — item 33.
    pub units: i64,
    /// 請求額 — item 34.
    pub claim: i64,
    /// 利用者負担額 — item 35.
    pub user_share: i64,
    /// 緊急時施設療養費請求額 — item 36.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_care_claim: Option<i64>,
    /// 特定診療費請求額 (特別療養費) — item 37.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_medical_claim: Option<i64>,
    /// 特定入所者介護サービス費等請求額 — item 38.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specified_resident_claim: Option<i64>,
}

optional_record! {
    /// 公費 n on the 01 record; each item may be empty.
    pub struct BasicPublic {
        /// 負担者番号.
        pub payer_number: String,
        /// 受給者番号.
        pub recipient_number: String,
        /// 給付率 — percent.
        pub rate: i64,
        /// サービス単位数.
        pub units: i64,
        /// 請求額.
        pub claim: i64,
        /// 本人負担額.
        pub own_share: i64,
        /// 緊急時施設療養費請求額.
        pub emergency_care_claim: i64,
        /// 特定診療費請求額.
        pub special_medical_claim: i64,
        /// 特定入所者介護サービス費等請求額.
        pub specified_resident_claim: i64,
    }
}

/// 明細情報 — one 02 record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    /// サービス種類コード — item 7.
    pub service_type: String,
    /// サービス項目コード — item 8 (サービスコード = 種類 + 項目).
    pub service_item: String,
    /// 単位数 — item 9; empty for 福祉用具貸与 and some monthly codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_value: Option<i64>,
    /// 日数・回数 — item 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// 公費1–3 対象日数・回数 — items 11–13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_counts: Option<PublicThree>,
    /// サービス単位数 — item 14 (= 単位数 × 日数・回数 normally).
    pub units: i64,
    /// 公費1–3 対象サービス単位数 — items 15–17.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_units: Option<PublicThree>,
    /// 摘要 — item 18 (福祉用具貸与: TAIS code or 届出コード).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

optional_record! {
    /// A value for each of 公費1–3; each may be empty.
    pub struct PublicThree {
        /// 公費1.
        pub public_1: i64,
        /// 公費2.
        pub public_2: i64,
        /// 公費3.
        pub public_3: i64,
    }
}

/// 集計情報 — one 10 record (one per サービス種類).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// サービス種類コード — item 7.
    pub service_type: String,
    /// サービス実日数 — item 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_days: Option<i64>,
    /// 計画単位数 — item 9 (from the 給付管理票).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_units: Option<i64>,
    /// 限度額管理対象単位数 — item 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_units: Option<i64>,
    /// 限度額管理対象外単位数 — item 11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncapped_units: Option<i64>,
    /// 短期入所計画日数 — item 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_stay_planned_days: Option<i64>,
    /// 短期入所実日数 — item 13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_stay_days: Option<i64>,
    /// 保険 — items 14–17.
    pub insurance: InsuranceTotals,
    /// 公費1 — items 18–20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_1: Option<PublicTotals>,
    /// 公費2 — items 21–23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_2: Option<PublicTotals>,
    /// 公費3 — items 24–26.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_3: Option<PublicTotals>,
    /// 保険分出来高医療費 — items 27–29.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_medical: Option<PublicTotals>,
    /// 公費1分出来高医療費 — items 30–32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_1_medical: Option<PublicTotals>,
    /// 公費2分出来高医療費 — items 33–35.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_2_medical: Option<PublicTotals>,
    /// 公費3分出来高医療費 — items 36–38.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_3_medical: Option<PublicTotals>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// 保険 on a 10 record. 費用 = ⌊単位数合計 × 単位数単価⌋ 円; 請求額 = ⌊費用 × 保険給付率 / 100⌋.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuranceTotals {
    /// 単位数合計 — item 14.
    pub units: i64,
    /// 単位数単価 — item 15, 円 per unit as a decimal text: `1140` → `"11.40"`.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]{2}$"))]
    pub unit_price: String,
    /// 請求額 — item 16, 円.
    pub claim: i64,
    /// 利用者負担額 — item 17, 円.
    pub user_share: i64,
}

optional_record! {
    /// 単位数合計, 請求額, 本人負担額 of a 公費 or a 出来高医療費 block; each may be empty.
    pub struct PublicTotals {
        /// 単位数合計.
        pub units: i64,
        /// 請求額 — 円.
        pub claim: i64,
        /// 本人負担額 (利用者負担額) — 円.
        pub own_share: i64,
    }
}

/// 特定入所者介護サービス費用情報 — one 11 record (食費・居住費 beyond the 負担限度額). 費用額 =
/// 費用単価 × 日数; 利用者負担額 = 負担限度額 × 日数; 保険分請求額 = 費用額 − 利用者負担額 (less 公費).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecifiedResident {
    /// レコード順次番号 — item 7: `01`…`98`, the only or last record `99`.
    pub sequence: String,
    /// サービス種類コード — item 8.
    pub service_type: String,
    /// サービス項目コード — item 9.
    pub service_item: String,
    /// 費用単価 — item 10, 円 per day.
    pub unit_cost: i64,
    /// 負担限度額 — item 11, 円 per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// 日数 — item 12.
    pub days: i64,
    /// 公費1–3 日数 — items 13–15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_days: Option<PublicThree>,
    /// 費用額 — item 16, 円.
    pub cost: i64,
    /// 保険分請求額 — item 17, 円.
    pub insurance_claim: i64,
    /// 公費1–3 負担額（明細） — items 18–20, 円.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_shares: Option<PublicThree>,
    /// 利用者負担額 — item 21, 円.
    pub user_share: i64,
    /// The 明細書's totals — items 22–33, on the `99` record only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<SpecifiedResidentSums>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// Items 22–33 of the `99` 11 record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecifiedResidentSums {
    /// 費用額合計 — item 22.
    pub total_cost: i64,
    /// 保険分請求額合計 — item 23.
    pub insurance_claim: i64,
    /// 利用者負担額合計 — item 24.
    pub user_share: i64,
    /// 公費1 — items 25–27.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_1: Option<PublicResidentSums>,
    /// 公費2 — items 28–30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_2: Option<PublicResidentSums>,
    /// 公費3 — items 31–33.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_3: Option<PublicResidentSums>,
}

optional_record! {
    /// 公費 n 負担額合計, 請求額, 本人負担月額 of the `99` 11 record; each may be empty.
    pub struct PublicResidentSums {
        /// 負担額合計 — 円.
        pub share: i64,
        /// 請求額 — 円.
        pub claim: i64,
        /// 本人負担月額 — 円.
        pub own_monthly: i64,
    }
}

/// 社会福祉法人軽減額情報 — one 12 record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reduction {
    /// 軽減率 — item 7, as written (its format, 共通編 1.5, is unverified).
    pub rate: String,
    /// サービス種類コード — item 8.
    pub service_type: String,
    /// 受領すべき利用者負担の総額 — item 9, 円.
    pub user_share_due: i64,
    /// 軽減額 — item 10, 円.
    pub reduction: i64,
    /// 軽減後利用者負担額 — item 11, 円.
    pub user_share_after: i64,
    /// 備考 — item 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::DocKind;
    use serde_json::json;

    fn statement() -> serde_json::Value {
        json!({
            "document": "ClaimStatement@1",
            "form": "7131",
            "service_month": "2025-10",
            "provider_number": "0300000005",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "card_insurer_number": "00131011",
            "basic": {
                "birth_date": "1940-04-05", "sex": "male", "care_level": "22",
                "certified_from": "2025-04-01", "certified_to": "2026-03-31",
                "insurance": { "rate": 90, "units": 976, "claim": 10013, "user_share": 1113 }
            },
            "details": [{ "service_type": "11", "service_item": "1111", "unit_value": 244,
                          "count": 4, "units": 976 }],
            "totals": [{ "service_type": "11",
                         "insurance": { "units": 976, "unit_price": "11.40",
                                        "claim": 10013, "user_share": 1113 } }],
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        })
    }

    #[test]
    fn a_statement_validates_and_is_about_a_person() {
        let text = DocKind::ClaimStatement
            .validate(statement())
            .expect("valid");
        let back: ClaimStatement = serde_json::from_str(&text).expect("typed");
        assert_eq!(back.form, StatementForm::HomeServices);
        assert_eq!(back.basic.care_level, CareLevel::Care2);
        assert!(back.reductions.is_empty());
        assert!(DocKind::ClaimStatement.carries_subject());
        assert_eq!(DocKind::ClaimStatement.category(), "claims");
    }

    #[test]
    fn the_unit_price_is_a_decimal_text_and_codes_are_checked() {
        let schema = DocKind::ClaimStatement.schema().to_string();
        assert!(schema.contains(r#"^[0-9]+\\.[0-9]{2}$"#), "{schema}");
        let mut doc = statement();
        doc["totals"][0]["insurance"]["unit_price"] = json!(11.4);
        assert!(
            DocKind::ClaimStatement.validate(doc).is_err(),
            "a float is refused"
        );
        let mut doc = statement();
        doc["form"] = json!("7111");
        assert!(
            DocKind::ClaimStatement.validate(doc).is_err(),
            "a 請求書 is no 明細書"
        );
    }
}
