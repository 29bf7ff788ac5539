//! `BenefitManagement@1` — 給付管理票: the monthly plan a 居宅介護支援事業所 (or 介護予防支援事業所)
//! reports to the 国保連 for one person: which 事業所 give which サービス種類 and how many units
//! (or days) are planned, against the person's 支給限度額. One document is one 給付管理票: the
//! 8222 records sharing 対象年月, 証記載保険者番号, plan 事業所 and 被保険者番号 — its detail
//! lines `01`… and its `99` total line. Category 請求・給付 (claims); it is about a person, so
//! it goes only with that person's consent.
//!
//! Spec: shared/specs/claims-csv.md §7 (order and lengths from QKAN, unverified), §8. The
//! person's items (2–16) are the same on every line; the document takes them from the `99`
//! line, which alone carries the 支給限度額 and the totals. Items QKAN leaves empty (21–23) are
//! kept when written.

use super::certification_codes::CareLevel;
use super::claim_statement::PlanAuthor;
use super::common::{Provenance, Sex, Subject};
use super::declare::code_list;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 給付管理票 — one person's plan for one month, from one plan 事業所.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitManagement {
    /// Document type and version: always `BenefitManagement@1`.
    pub document: String,
    /// 対象年月 — item 2, `YYYY-MM`.
    pub service_month: String,
    /// 事業所番号（居宅介護支援事業所／介護予防支援事業所） — item 4: the office that made the plan.
    pub plan_office: String,
    /// 被保険者 — 保険者番号 (6 digits, from the 証記載保険者番号) and 被保険者番号 (item 9).
    pub subject: Subject,
    /// 証記載保険者番号 — item 3 as written (8 digits: `00` + the 6-digit 保険者番号).
    pub card_insurer_number: String,
    /// 給付管理票情報作成区分コード — item 5.
    pub creation: Creation,
    /// 給付管理票作成年月日 — item 6, `YYYY-MM-DD`.
    pub created_on: String,
    /// 給付管理票種別区分コード — item 7.
    pub sheet_kind: SheetKind,
    /// 被保険者生年月日 — item 10, `YYYY-MM-DD`.
    pub birth_date: String,
    /// 性別コード — item 11.
    pub sex: Sex,
    /// 要介護状態区分コード — item 12 (the heaviest of the month).
    pub care_level: CareLevel,
    /// 限度額適用期間（開始） — item 13, `YYYY-MM`.
    pub cap_from: String,
    /// 限度額適用期間（終了） — item 14, `YYYY-MM`.
    pub cap_to: String,
    /// 居宅・介護予防支給限度額 — item 15 of the `99` line, units per month.
    pub cap_units: i64,
    /// 居宅サービス計画作成区分コード — item 16.
    pub plan_author: PlanAuthor,
    /// The detail lines `01`…, one per (サービス事業所, サービス種類), in file order.
    pub lines: Vec<BenefitLine>,
    /// The `99` total line's own items (24–27).
    pub total: BenefitTotal,
    /// The claims file's control record (レコード種別 1) the 給付管理票 came in.
    pub file: super::claim_invoice::ClaimFile,
    /// 出所 — the sending 事業所 (the control record's 事業所番号) and the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

code_list! {
    /// 給付管理票情報作成区分コード.
    pub enum Creation {
        /// 新規.
        "1" => New,
        /// 修正.
        "2" => Correction,
        /// 取消.
        "3" => Cancellation,
    }
}

code_list! {
    /// 給付管理票種別区分コード.
    pub enum SheetKind {
        /// 訪問通所.
        "1" => HomeAndDayServices,
        /// 短期入所.
        "2" => ShortStay,
        /// 居宅サービス区分 (QKAN always writes it).
        "3" => HomeServices,
    }
}

/// A detail line (明細行番号 `01`…): what one サービス事業所 gives of one サービス種類.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitLine {
    /// 給付管理票明細行番号 — item 8, `01`…`98`.
    #[schemars(regex(pattern = r"^(0[1-9]|[1-8][0-9]|9[0-8])$"))]
    pub line: String,
    /// 事業所番号（サービス事業所） — item 17.
    pub provider_number: String,
    /// 指定/基準該当等事業所区分コード — item 18 (1 指定 … 5 地域密着型; the list is unverified: as written).
    pub provider_class: String,
    /// サービス種類コード — item 19.
    pub service_type: String,
    /// 給付計画単位数／日数 — item 20.
    pub planned_units: i64,
    /// 限度額管理期間における前月までの給付計画日数 — item 21 (QKAN leaves it empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_days: Option<i64>,
    /// 指定サービス分小計 — item 22 (QKAN leaves it empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designated_subtotal: Option<i64>,
    /// 基準該当サービス分小計 — item 23 (QKAN leaves it empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_subtotal: Option<i64>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// The `99` total line: 給付計画合計 and who is in charge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitTotal {
    /// 給付計画合計単位数／日数 — item 24 (= Σ item 20 of the detail lines).
    pub planned_units: i64,
    /// 担当介護支援専門員番号 — item 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_manager: Option<String>,
    /// 委託先の居宅介護支援事業所番号 — item 26 (介護予防 delegated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_office: Option<String>,
    /// 委託先の担当介護支援専門員番号 — item 27.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_care_manager: Option<String>,
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

    fn sheet() -> serde_json::Value {
        json!({
            "document": "BenefitManagement@1",
            "service_month": "2025-10",
            "plan_office": "0300000100",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "card_insurer_number": "00131011",
            "creation": "1", "created_on": "2025-11-01", "sheet_kind": "3",
            "birth_date": "1940-04-05", "sex": "male", "care_level": "22",
            "cap_from": "2025-04", "cap_to": "2026-03", "cap_units": 19705, "plan_author": "1",
            "lines": [{ "line": "01", "provider_number": "0300000005", "provider_class": "1",
                        "service_type": "11", "planned_units": 2684 }],
            "total": { "planned_units": 2684, "care_manager": "03100001" },
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        })
    }

    #[test]
    fn a_sheet_validates_and_is_about_a_person() {
        let text = DocKind::BenefitManagement.validate(sheet()).expect("valid");
        let back: BenefitManagement = serde_json::from_str(&text).expect("typed");
        assert_eq!(back.creation, Creation::New);
        assert_eq!(back.sheet_kind, SheetKind::HomeServices);
        assert_eq!(back.care_level, CareLevel::Care2);
        assert!(DocKind::BenefitManagement.carries_subject());
        assert_eq!(DocKind::BenefitManagement.category(), "claims");
    }

    #[test]
    fn codes_and_the_line_number_are_checked() {
        let schema = DocKind::BenefitManagement.schema().to_string();
        assert!(schema.contains("9[0-8]"), "{schema}");
        let mut doc = sheet();
        doc["creation"] = json!("4");
        assert!(DocKind::BenefitManagement.validate(doc).is_err());
        let mut doc = sheet();
        doc["total"]["planned_units"] = json!("2684");
        assert!(
            DocKind::BenefitManagement.validate(doc).is_err(),
            "a number"
        );
    }
}
