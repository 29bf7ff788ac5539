//! `CertificationSurvey@1` — 認定調査票: who surveyed the person and when, the 概況調査 (current
//! services and their monthly use), the 74 基本調査 items, the two 日常生活自立度 judgements and
//! 特記事項, with the previous certification's survey nested as `previous` in the same shape.
//! Produced from the 認定支援ネットワーク「センター送信」 record (fields 35–40, 73–187, 188–263,
//! 287–326); category 要介護認定 (certification). Counts are kept as written.

use super::basic_survey::BasicSurvey;
use super::certification_codes::{
    CurrentServiceClass, CurrentSituation, DementiaScale, DisabilityScale, InterfaceVersion,
};
use super::common::{Provenance, Subject};
use super::declare::{code_list, optional_record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 認定調査票.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificationSurvey {
    /// Document type and version: always `CertificationSurvey@1`.
    pub document: String,
    /// 被保険者 — 証記載保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// 識別コード — the 認定 software version that wrote the record (the answer codes are those
    /// of 09A/09B).
    pub interface_version: InterfaceVersion,
    /// 認定申請日 — ISO date; with the subject and 枝番, the application this survey belongs to.
    pub application_date: String,
    /// 枝番 — the application's branch number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_number: Option<u32>,
    /// 調査依頼日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_on: Option<String>,
    /// 調査実施日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surveyed_on: Option<String>,
    /// 指定居宅介護支援事業者等番号 — the contracted office's 事業所番号 (10 digits), when 委託.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contractor_number: Option<String>,
    /// 委託区分 — who carried out the survey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Commission>,
    /// 認定調査員番号 — the surveyor, as the municipality numbers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surveyor_id: Option<String>,
    /// 認定調査員資格コード — the surveyor's qualification (code list not known: kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surveyor_qualification: Option<String>,
    /// 概況調査 — current services and their use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overview: Option<Overview>,
    /// 基本調査 — the 74 items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_survey: Option<BasicSurvey>,
    /// 日常生活自立度 — the surveyor's two judgements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub independence: Option<Independence>,
    /// 特記事項 — the surveyor's notes per item, when the source carries them (the センター送信
    /// record does not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special_notes: Vec<SpecialNote>,
    /// 前回結果 — the survey of the previous certification, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSurvey>,
    /// 出所 — file name (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

optional_record! {
    /// 前回結果 — the previous certification's survey, in the shape of the current one.
    pub struct PreviousSurvey {
        /// 前回識別コード — the software version of the previous record.
        pub interface_version: InterfaceVersion,
        /// 前回 概況調査.
        pub overview: Overview,
        /// 前回 基本調査.
        pub basic_survey: BasicSurvey,
        /// 前回 日常生活自立度.
        pub independence: Independence,
    }
}

optional_record! {
    /// 日常生活自立度 — as judged by the surveyor.
    pub struct Independence {
        /// 障害高齢者の日常生活自立度（寝たきり度）.
        pub disability: DisabilityScale,
        /// 認知症高齢者の日常生活自立度.
        pub dementia: DementiaScale,
    }
}

optional_record! {
    /// 概況調査 — the services the person uses now.
    pub struct Overview {
        /// 現在のサービス区分.
        pub service_class: CurrentServiceClass,
        /// 現在の状況 — where the person lives.
        pub situation: CurrentSituation,
        /// 現在受けているサービスの状況 — use per month.
        pub service_use: ServiceUse,
    }
}

optional_record! {
    /// 現在受けているサービス — 介護給付 and 予防給付 (the source writes the block of the current
    /// service class, and `0` in the other).
    pub struct ServiceUse {
        /// 介護給付 (21 services).
        pub care: CareBenefitUse,
        /// 予防給付 (16 services).
        pub prevention: PreventionBenefitUse,
    }
}

optional_record! {
    /// 介護給付 service use. Units (from the form, unverified): 回/月 for visits and day services,
    /// 日/月 for stays and residential services, 品目 for equipment.
    pub struct CareBenefitUse {
        /// 訪問介護（ホームヘルプサービス） — 回/月.
        pub home_help: u32,
        /// 訪問入浴介護 — 回/月.
        pub home_bathing: u32,
        /// 訪問看護 — 回/月.
        pub home_nursing: u32,
        /// 訪問リハビリテーション — 回/月.
        pub home_rehabilitation: u32,
        /// 居宅療養管理指導 — 回/月.
        pub home_medical_management: u32,
        /// 通所介護（デイサービス） — 回/月.
        pub day_care: u32,
        /// 通所リハビリテーション — 回/月.
        pub day_rehabilitation: u32,
        /// 短期入所生活介護（ショートステイ） — 日/月.
        pub short_stay_welfare: u32,
        /// 短期入所療養介護 — 日/月.
        pub short_stay_medical: u32,
        /// 特定施設入居者生活介護 — 日/月.
        pub specified_facility: u32,
        /// 福祉用具貸与 — 品目.
        pub equipment_rental: u32,
        /// 特定福祉用具販売 — 品目.
        pub equipment_sales: u32,
        /// 住宅改修 — あり / なし.
        pub home_modification: HomeModification,
        /// 夜間対応型訪問介護 — 日/月.
        pub night_home_help: u32,
        /// 認知症対応型通所介護 — 日/月.
        pub dementia_day_care: u32,
        /// 小規模多機能型居宅介護 — 日/月.
        pub small_multifunction: u32,
        /// 認知症対応型共同生活介護（グループホーム） — 日/月.
        pub dementia_group_home: u32,
        /// 地域密着型特定施設入居者生活介護 — 日/月.
        pub community_specified_facility: u32,
        /// 地域密着型介護老人福祉施設入所者生活介護 — 日/月.
        pub community_nursing_home: u32,
        /// 定期巡回・随時対応型訪問介護看護 — 日/月 (識別コード 09B only).
        pub regular_visits_on_call: u32,
        /// 複合型サービス — 日/月 (識別コード 09B only).
        pub combined_service: u32,
    }
}

optional_record! {
    /// 予防給付 service use (units as for 介護給付).
    pub struct PreventionBenefitUse {
        /// 介護予防訪問介護（ホームヘルプサービス） — 回/月.
        pub home_help: u32,
        /// 介護予防訪問入浴介護 — 回/月.
        pub home_bathing: u32,
        /// 介護予防訪問看護 — 回/月.
        pub home_nursing: u32,
        /// 介護予防訪問リハビリテーション — 回/月.
        pub home_rehabilitation: u32,
        /// 介護予防居宅療養管理指導 — 回/月.
        pub home_medical_management: u32,
        /// 介護予防通所介護（デイサービス） — 回/月.
        pub day_care: u32,
        /// 介護予防通所リハビリテーション — 回/月.
        pub day_rehabilitation: u32,
        /// 介護予防短期入所生活介護（ショートステイ） — 日/月.
        pub short_stay_welfare: u32,
        /// 介護予防短期入所療養介護 — 日/月.
        pub short_stay_medical: u32,
        /// 介護予防特定施設入居者生活介護 — 日/月.
        pub specified_facility: u32,
        /// 介護予防福祉用具貸与 — 品目.
        pub equipment_rental: u32,
        /// 特定介護予防福祉用具販売 — 品目.
        pub equipment_sales: u32,
        /// 住宅改修（予防給付） — あり / なし.
        pub home_modification: HomeModification,
        /// 介護予防認知症対応型通所介護 — 日/月.
        pub dementia_day_care: u32,
        /// 介護予防小規模多機能型居宅介護 — 日/月.
        pub small_multifunction: u32,
        /// 介護予防認知症対応型共同生活介護（グループホーム） — 日/月.
        pub dementia_group_home: u32,
    }
}

/// 特記事項 — a surveyor's note on one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialNote {
    /// 表示番号 — the item the note is about, e.g. `2-1`.
    pub item: String,
    /// 特記事項の本文.
    pub text: String,
}

code_list! {
    /// 住宅改修 — whether the home was modified.
    pub enum HomeModification {
        /// あり
        "1" => Yes,
        /// なし
        "2" => No,
    }
}

code_list! {
    /// 委託区分 — who carried out the survey.
    pub enum Commission {
        /// 保険者（市町村等）
        "1" => Insurer,
        /// 指定市町村事務受託法人
        "2" => DesignatedContractor,
        /// 指定居宅介護支援事業者
        "3" => CareManagementOffice,
        /// 介護保険施設
        "4" => CareFacility,
        /// 介護支援専門員
        "5" => CareManager,
        /// 他市町村
        "6" => OtherMunicipality,
        /// その他
        "9" => Other,
    }
}

#[cfg(test)]
mod tests {
    use crate::canonical::DocKind;
    use serde_json::json;

    #[test]
    fn the_previous_survey_has_the_shape_of_the_current_one() {
        let survey = json!({
            "overview": { "service_class": "2", "service_use": { "care": { "day_care": 8 } } },
            "basic_survey": { "group2": { "transfer": "2" } },
            "independence": { "disability": "4", "dementia": "3" }
        });
        let mut doc = json!({
            "document": "CertificationSurvey@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "interface_version": "09B",
            "application_date": "2025-09-01",
            "previous": survey.clone()
        });
        for (k, v) in survey.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let ok = DocKind::CertificationSurvey.validate(doc.clone()).unwrap();
        assert!(ok.contains("\"day_care\":8"), "{ok}");
        doc["previous"]["basic_survey"]["group2"]["transfer"] = json!("5");
        let err = DocKind::CertificationSurvey.validate(doc).unwrap_err();
        assert!(err.message.contains("unknown variant"), "{err}");
    }
}
