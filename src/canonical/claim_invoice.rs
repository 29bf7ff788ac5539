//! `ClaimInvoice@1` — 介護給付費請求書: a 事業所's totals for one service month and one 保険/公費
//! line (交換情報識別番号 7111 of the 国保連 claims file), with the file's control-record items
//! (媒体区分, 処理対象年月, ファイル管理番号) it must travel with for the later write-back.
//! Category 請求・給付 (claims).
//!
//! It carries **no person**: no `subject`, no name, no 被保険者番号 — the provider's own totals. The
//! hub routes it by its category to the parties that receive the kind, without a consent check
//! (there is nobody whose consent it would be), and a mapping that makes it must say so
//! (`subject: none`, docs/mapping-language.md). Spec: shared/specs/claims-csv.md §2.1, §4.
//! Amounts and counts are the integers written (※S items are signed); a field the spec lets be
//! empty is absent when empty, and a `0` written is kept as `0`.

use super::common::Provenance;
use super::declare::{code_list, optional_record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 介護給付費請求書 — one 7111 record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimInvoice {
    /// Document type and version: always `ClaimInvoice@1`.
    pub document: String,
    /// 交換情報識別番号 — which 請求書 this is (7111; the 総合事業 7112 is to come).
    pub form: InvoiceForm,
    /// サービス提供年月 — the service month, `YYYY-MM`.
    pub service_month: String,
    /// 事業所番号 — the claiming 事業所 (10 characters).
    pub provider_number: String,
    /// 保険・公費等区分コード.
    pub payer: Payer,
    /// 法別番号 — `00` (or `0`) on a 保険 line, the 公費's 法別番号 otherwise; as written.
    pub law_number: String,
    /// 請求情報区分コード.
    pub claim_class: ClaimClass,
    /// サービス費用 — items 7–12.
    pub services: ServiceTotals,
    /// 特定入所者介護サービス費等 — items 13–18; absent when all are empty (居宅介護支援, 訪問).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specified_resident: Option<SpecifiedResidentTotals>,
    /// The claims file's control record (レコード種別 1) the record came in.
    pub file: ClaimFile,
    /// 出所 — the sending 事業所 (the control record's 事業所番号) and the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

code_list! {
    /// 交換情報識別番号 of a 請求書 record.
    pub enum InvoiceForm {
        /// 介護給付費請求書.
        "7111" => CareBenefits,
    }
}

code_list! {
    /// 保険・公費等区分コード.
    pub enum Payer {
        /// 保険請求.
        "1" => Insurance,
        /// 公費請求.
        "2" => PublicExpense,
    }
}

code_list! {
    /// 請求情報区分コード.
    pub enum ClaimClass {
        /// 居宅・施設サービス.
        "01" => Services,
        /// 居宅介護支援 (保険, or 公費 法別 12 生保).
        "02" => CareManagement,
        /// `0` — written on the line of a 公費 other than 生保 (QKAN; no class applies).
        "0" => NotClassified,
    }
}

/// サービス費用 — items 7–12 (※S: signed integers). 費用合計 = 保険請求額 + 公費請求額 + 利用者負担.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTotals {
    /// 件数 — the number of 明細書.
    pub count: i64,
    /// 単位数.
    pub units: i64,
    /// 費用合計 — total cost, 円.
    pub total_cost: i64,
    /// 保険請求額 — 円.
    pub insurance_claim: i64,
    /// 公費請求額 — 円.
    pub public_claim: i64,
    /// 利用者負担 — 円.
    pub user_share: i64,
}

optional_record! {
    /// 特定入所者介護サービス費等 — items 13–18 (※S); each may be empty.
    pub struct SpecifiedResidentTotals {
        /// 件数.
        pub count: i64,
        /// 延べ日数 — not set since 平成17年10月 (empty).
        pub days: i64,
        /// 費用合計 — 円.
        pub total_cost: i64,
        /// 利用者負担 — 円.
        pub user_share: i64,
        /// 公費請求額 — 円.
        pub public_claim: i64,
        /// 保険請求額 — 円.
        pub insurance_claim: i64,
    }
}

/// The control record (レコード種別 1) items a 請求書 travels with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimFile {
    /// 媒体区分.
    pub medium: Medium,
    /// 処理対象年月 — the month of submission (請求年月), `YYYY-MM`.
    pub processing_month: String,
    /// ファイル管理番号 — as written (`0` from QKAN).
    pub control_number: String,
    /// データ種別 — as written (`711` for a 請求書 and 明細書 file, `812` for QKAN's file of
    /// 様式第七 only), so that the file is written back with the same control record; absent,
    /// the writer of claims-711-csv uses `711`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

code_list! {
    /// 媒体区分 (the codes QKAN writes; others unverified).
    pub enum Medium {
        /// 伝送.
        "1" => Transmission,
        /// MO.
        "2" => MagnetoOptical,
        /// FD.
        "4" => FloppyDisk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::DocKind;
    use serde_json::json;

    fn invoice() -> serde_json::Value {
        json!({
            "document": "ClaimInvoice@1",
            "form": "7111",
            "service_month": "2025-10",
            "provider_number": "0300000005",
            "payer": "1",
            "law_number": "00",
            "claim_class": "01",
            "services": { "count": 2, "units": 15000, "total_cost": 150000,
                          "insurance_claim": 135000, "public_claim": 3000, "user_share": 12000 },
            "specified_resident": { "count": 1, "total_cost": 40000, "user_share": 20000,
                                    "public_claim": 0, "insurance_claim": 20000 },
            "file": { "medium": "1", "processing_month": "2025-11", "control_number": "0" }
        })
    }

    #[test]
    fn an_invoice_validates_with_the_empty_days_left_out() {
        let text = DocKind::ClaimInvoice.validate(invoice()).expect("valid");
        let back: ClaimInvoice = serde_json::from_str(&text).expect("typed");
        let resident = back.specified_resident.expect("block");
        assert_eq!((resident.count, resident.days), (Some(1), None));
        assert_eq!(back.claim_class, ClaimClass::Services);
        assert_eq!(back.file.medium.code(), "1");
    }

    #[test]
    fn an_invoice_has_no_place_for_a_person() {
        let mut doc = invoice();
        doc["subject"] = json!({ "insurer_number": "131011", "insured_number": "0000012345" });
        let err = DocKind::ClaimInvoice.validate(doc).unwrap_err();
        assert!(err.message.contains("unknown field `subject`"), "{err}");
        let schema = DocKind::ClaimInvoice.schema();
        assert!(schema["properties"].get("subject").is_none());
    }

    #[test]
    fn a_code_outside_the_lists_is_refused() {
        let mut doc = invoice();
        doc["payer"] = json!("3");
        assert!(DocKind::ClaimInvoice.validate(doc).is_err());
    }
}
