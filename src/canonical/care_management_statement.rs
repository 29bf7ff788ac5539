//! `CareManagementStatement@1` — 居宅介護支援介護給付費明細書 (様式第七, 8124) and 介護予防支援
//! 介護給付費明細書 (様式第七の二, 8125): what a 居宅介護支援事業所 (or 地域包括支援センター)
//! claims for one person's care management in one month. One document is one 明細書: the
//! 8124/8125 records sharing 様式, 事業所番号, サービス提供年月, 証記載保険者番号 and
//! 被保険者番号 — one record per サービスコード, the last numbered `99` and carrying the totals.
//! Category 請求・給付 (claims); it is about a person, so it goes only with that person's consent.
//!
//! Why a kind of its own and not `ClaimStatement@1`: docs/decisions.md. In short, the 様式第七
//! has no レコード種別 and none of the records `ClaimStatement@1` requires (01 基本 with its 保険
//! 給付率 and sums, 10 集計), and items of its own (事業所区分, 居宅サービス計画作成依頼届出年月日,
//! 担当介護支援専門員番号); the published schema refuses them, and filling its required items
//! would invent values the file does not hold.
//!
//! Spec: shared/specs/claims-csv.md §6 (order and lengths from QKAN, unverified against the IF).
//! Amounts and counts are the integers written; a field the spec lets be empty is absent when
//! empty. 単位数単価 is a decimal text (`"11.40"`), never a float. 請求金額 is the 10割 claim:
//! ⌊サービス単位数合計 × 単位数単価⌋ 円 (居宅介護支援 has no 利用者負担).

use super::certification_codes::CareLevel;
use super::claim_invoice::ClaimFile;
use super::common::{Provenance, Sex, Subject};
use super::declare::code_list;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 居宅介護支援・介護予防支援 介護給付費明細書 — one person, one month, one office.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CareManagementStatement {
    /// Document type and version: always `CareManagementStatement@1`.
    pub document: String,
    /// 交換情報識別番号 — item 1: the 様式.
    pub form: CareManagementForm,
    /// 事業所番号 — item 2: the claiming 居宅介護支援事業所 / 介護予防支援事業所 (10 characters).
    pub provider_number: String,
    /// 指定/基準該当等事業所区分コード — item 3 (1 指定, 2 基準該当, 3 相当サービス, 4 その他,
    /// 5 地域密着型), as written.
    pub provider_class: String,
    /// サービス提供年月 — item 4, `YYYY-MM`.
    pub service_month: String,
    /// 被保険者 — 保険者番号 (6 digits, from the 証記載保険者番号) and 被保険者番号 (item 7).
    pub subject: Subject,
    /// 証記載保険者番号 — item 5 as written: 8 digits (`00` + the 保険者番号) or, as QKAN writes
    /// it here, the 6 digits.
    pub card_insurer_number: String,
    /// 単位数単価 — item 6, 円 per unit as a decimal text: `1140` → `"11.40"`.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]{2}$"))]
    pub unit_price: String,
    /// 公費 — 公費負担者番号 and 公費受給者番号 (items 8, 9), when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicPayer>,
    /// 生年月日 — item 10, `YYYY-MM-DD`.
    pub birth_date: String,
    /// 性別コード — item 11.
    pub sex: Sex,
    /// 要介護状態区分コード — item 12.
    pub care_level: CareLevel,
    /// 認定有効期間 開始年月日 — item 13.
    pub certified_from: String,
    /// 認定有効期間 終了年月日 — item 14.
    pub certified_to: String,
    /// 居宅サービス計画作成依頼届出年月日 — item 15, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_notified_on: Option<String>,
    /// The records, one per サービスコード, in file order; the last is numbered `99`.
    pub lines: Vec<Line>,
    /// サービス単位数合計 and 請求金額 — items 21, 22 of the `99` line.
    pub total: Total,
    /// The claims file's control record (レコード種別 1) the 明細書 came in.
    pub file: ClaimFile,
    /// 出所 — the sending 事業所 (the control record's 事業所番号) and the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

code_list! {
    /// 交換情報識別番号 of a 居宅介護支援・介護予防支援 明細書.
    pub enum CareManagementForm {
        /// 様式第七 — 居宅介護支援介護給付費明細書.
        "8124" => CareManagement,
        /// 様式第七の二 — 介護予防支援介護給付費明細書.
        "8125" => PreventiveSupport,
    }
}

/// 公費負担者番号 and 公費受給者番号 (items 8, 9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicPayer {
    /// 公費負担者番号 — item 8.
    pub payer_number: String,
    /// 公費受給者番号 — item 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_number: Option<String>,
}

/// One record: a サービスコード and its units (items 16–20, 23, 24).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// サービス計画費明細行番号 — item 16: `01`…, the last line `99`.
    #[schemars(regex(pattern = r"^[0-9]{2}$"))]
    pub line: String,
    /// サービスコード — item 17 (6 characters, e.g. `431111`).
    pub service_code: String,
    /// 単位数 — item 18.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_value: Option<i64>,
    /// 回数 — item 19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// サービス単位数 — item 20 (= 単位数 × 回数).
    pub units: i64,
    /// 担当介護支援専門員番号 — item 23 (8 characters, unverified), when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_manager: Option<String>,
    /// 摘要 — item 24, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// Items 21 and 22 of the `99` line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Total {
    /// サービス単位数合計 — item 21: Σ サービス単位数 of the lines.
    pub units: i64,
    /// 請求金額 — item 22, 円: ⌊単位数合計 × 単位数単価⌋ (10割給付).
    pub claim: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::DocKind;
    use serde_json::json;

    fn statement() -> serde_json::Value {
        json!({
            "document": "CareManagementStatement@1",
            "form": "8124",
            "provider_number": "0300000100",
            "provider_class": "1",
            "service_month": "2025-10",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "card_insurer_number": "00131011",
            "unit_price": "11.40",
            "birth_date": "1940-04-05", "sex": "male", "care_level": "22",
            "certified_from": "2025-04-01", "certified_to": "2026-03-31",
            "lines": [{ "line": "99", "service_code": "431111", "unit_value": 1076,
                        "count": 1, "units": 1076 }],
            "total": { "units": 1076, "claim": 12266 },
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        })
    }

    #[test]
    fn a_care_management_statement_validates_and_is_about_a_person() {
        let text = DocKind::CareManagementStatement
            .validate(statement())
            .expect("valid");
        let back: CareManagementStatement = serde_json::from_str(&text).expect("typed");
        assert_eq!(back.form, CareManagementForm::CareManagement);
        assert_eq!(back.total.claim, 12_266);
        assert!(DocKind::CareManagementStatement.carries_subject());
        assert_eq!(DocKind::CareManagementStatement.category(), "claims");
    }

    #[test]
    fn a_7131_form_and_a_float_price_are_refused() {
        let mut doc = statement();
        doc["form"] = json!("7131");
        assert!(DocKind::CareManagementStatement.validate(doc).is_err());
        let mut doc = statement();
        doc["unit_price"] = json!(11.4);
        assert!(DocKind::CareManagementStatement.validate(doc).is_err());
        let mut doc = statement();
        doc["total"] = json!({ "units": 1076 });
        assert!(
            DocKind::CareManagementStatement.validate(doc).is_err(),
            "the 99 line's 請求金額 is required"
        );
    }
}
