//! `CertificationDecision@1` — 要介護認定の判定: the computer's 一次判定 (result, 要介護認定等基準
//! 時間 and its parts, 中間評価項目得点, warnings), the 認定審査会 and its 二次判定 (the certified
//! 要介護状態区分 and its validity), 特定疾病, the board's opinion, the 主治医意見書 items the
//! judgement used, and the previous certification's result nested as `previous`. Produced from
//! the 認定支援ネットワーク「センター送信」 record (fields 23–34, 41–72, 264–286, 326–328);
//! category 要介護認定 (certification). Numbers are kept as written.

use super::certification_codes::{
    CareLevel, DementiaScale, FirstStageResult, InterfaceVersion, SecondStageResult,
};
use super::common::{Provenance, Subject};
use super::declare::{code_list, optional_record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 要介護認定の一次判定・二次判定.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificationDecision {
    /// Document type and version: always `CertificationDecision@1`.
    pub document: String,
    /// 被保険者 — 証記載保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// 識別コード — the 認定 software version that wrote the record (codes depend on it).
    pub interface_version: InterfaceVersion,
    /// 認定申請日 — ISO date; with the subject and 枝番, the application decided.
    pub application_date: String,
    /// 枝番 — the application's branch number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_number: Option<u32>,
    /// 一次判定.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stage: Option<FirstStage>,
    /// 認定審査会.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<Board>,
    /// 二次判定 — the certification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_stage: Option<SecondStage>,
    /// 特定疾病コード — the 特定疾病 of a 第2号被保険者 (2 digits; code list unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specified_disease: Option<String>,
    /// 要介護1の場合の状態像.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_level1_state: Option<CareLevel1State>,
    /// 認定審査会意見等 — the board's opinion (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_opinion: Option<String>,
    /// コメント等 — comments (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// 主治医意見書 — the opinion's dates and the items copied into the judgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician_opinion: Option<OpinionItems>,
    /// 前回結果 — the previous certification, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousDecision>,
    /// 出所 — file name (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

optional_record! {
    /// 一次判定 — the computer's judgement from the survey and the opinion.
    pub struct FirstStage {
        /// 一次判定日 — ISO date.
        pub date: String,
        /// 一次判定結果.
        pub result: FirstStageResult,
        /// 一次判定結果（認知症加算） — an 06A-era item, normally empty for 09A/09B.
        pub result_with_dementia: FirstStageResult,
        /// 要介護認定等基準時間.
        pub care_time: CareTime,
        /// 中間評価項目得点 — interim scores of 第1群 … 第5群, as written (scale unverified).
        pub interim_scores: InterimScores,
        /// 一次判定警告（配列）コード — warning flags as written (layout unverified).
        pub warnings: String,
        /// 状態の安定性.
        pub stability: Stability,
        /// 認知症自立度Ⅱ以上の蓋然性 — percent, an integer.
        pub dementia_probability: u32,
        /// 認知機能及び状態安定性から推定される給付区分.
        pub estimated_benefit: EstimatedBenefit,
    }
}

optional_record! {
    /// 要介護認定等基準時間 — the standard care time and its parts. Each is the integer as written;
    /// the unit is believed to be 0.1 分 (`568` = 56.8 minutes), unverified.
    pub struct CareTime {
        /// 合計 — total.
        pub total: i64,
        /// 食事 — meals.
        pub meals: i64,
        /// 排泄 — excretion.
        pub excretion: i64,
        /// 移動 — moving.
        pub moving: i64,
        /// 清潔保持 — hygiene.
        pub hygiene: i64,
        /// 間接ケア — indirect care.
        pub indirect_care: i64,
        /// BPSD関連 — behavioural and psychological symptoms.
        pub bpsd: i64,
        /// 機能訓練 — functional training.
        pub training: i64,
        /// 医療関連 — medical.
        pub medical: i64,
        /// 認知症加算 — the dementia add-on (empty for 09A/09B, unverified).
        pub dementia_addition: i64,
    }
}

optional_record! {
    /// 中間評価項目得点 — one score per 群 (integers as written).
    pub struct InterimScores {
        /// 第1群 身体機能・起居動作.
        pub group1: i64,
        /// 第2群 生活機能.
        pub group2: i64,
        /// 第3群 認知機能.
        pub group3: i64,
        /// 第4群 精神・行動障害.
        pub group4: i64,
        /// 第5群 社会生活への適応.
        pub group5: i64,
    }
}

optional_record! {
    /// 認定審査会.
    pub struct Board {
        /// 認定審査会資料作成日 — ISO date.
        pub papers_made_on: String,
        /// 認定審査会予定日 — ISO date.
        pub scheduled_on: String,
        /// 合議体番号 — the panel, 6 digits.
        pub panel_number: String,
        /// 審査会資料番号 — the papers' number.
        pub papers_number: String,
    }
}

optional_record! {
    /// 二次判定 — the board's certification.
    pub struct SecondStage {
        /// 二次判定日 — ISO date.
        pub date: String,
        /// 二次判定結果 — the certified 要介護状態区分.
        pub care_level: SecondStageResult,
        /// 認定有効期間（開始） — ISO date.
        pub valid_from: String,
        /// 認定有効期間（終了） — ISO date.
        pub valid_to: String,
    }
}

optional_record! {
    /// 主治医意見書 — its dates and the items the judgement copies from it (code lists follow the
    /// form's order; unverified against an interface text).
    pub struct OpinionItems {
        /// 意見書依頼日 — ISO date.
        pub requested_on: String,
        /// 意見書入手日 — ISO date.
        pub received_on: String,
        /// 短期記憶.
        pub short_term_memory: MemoryProblem,
        /// 日常の意思決定を行うための認知能力.
        pub cognitive_ability: CognitiveAbility,
        /// 自分の意思の伝達能力.
        pub communication: CommunicationAbility,
        /// 食事行為.
        pub eating: Eating,
        /// 認知症高齢者の日常生活自立度.
        pub dementia_scale: DementiaScale,
    }
}

optional_record! {
    /// 前回結果 — the previous certification's judgement.
    pub struct PreviousDecision {
        /// 前回識別コード — the software version of the previous record.
        pub interface_version: InterfaceVersion,
        /// 前回結果申請日 — ISO date.
        pub application_date: String,
        /// 前回の一次判定 (no date in the source).
        pub first_stage: FirstStage,
        /// 前回結果二次判定日 — ISO date.
        pub second_stage_date: String,
        /// 前回の認定審査会結果 — 要介護状態区分 (`99` なし when none).
        pub care_level: CareLevel,
        /// 前回の認定有効期間（開始） — ISO date.
        pub valid_from: String,
        /// 前回の認定有効期間（終了） — ISO date.
        pub valid_to: String,
    }
}

code_list! {
    /// 状態の安定性.
    pub enum Stability {
        /// 安定
        "1" => Stable,
        /// 不安定
        "2" => Unstable,
    }
}

code_list! {
    /// 認知機能及び状態安定性から推定される給付区分.
    pub enum EstimatedBenefit {
        /// 予防給付相当
        "1" => Prevention,
        /// 介護給付相当
        "2" => Care,
    }
}

code_list! {
    /// 要介護1の場合の状態像.
    pub enum CareLevel1State {
        /// 認知機能の低下等
        "01" => CognitiveDecline,
        /// 不安定な状態
        "02" => Unstable,
        /// その他
        "99" => Other,
    }
}

code_list! {
    /// 意見書「短期記憶」.
    pub enum MemoryProblem {
        /// 問題なし
        "1" => NoProblem,
        /// 問題あり
        "2" => Problem,
    }
}

code_list! {
    /// 意見書「日常の意思決定を行うための認知能力」.
    pub enum CognitiveAbility {
        /// 自立
        "1" => Independent,
        /// いくらか困難
        "2" => SomewhatDifficult,
        /// 見守りが必要
        "3" => NeedsWatching,
        /// 判断できない
        "4" => Unable,
    }
}

code_list! {
    /// 意見書「自分の意思の伝達能力」.
    pub enum CommunicationAbility {
        /// 伝えられる
        "1" => Able,
        /// いくらか困難
        "2" => SomewhatDifficult,
        /// 具体的要求に限られる
        "3" => ConcreteRequestsOnly,
        /// 伝えられない
        "4" => Unable,
    }
}

code_list! {
    /// 意見書「食事行為」.
    pub enum Eating {
        /// 自立ないし何とか自分で食べられる
        "1" => Independent,
        /// 全面介助
        "2" => FullyAssisted,
    }
}

#[cfg(test)]
mod tests {
    use crate::canonical::DocKind;
    use serde_json::json;

    #[test]
    fn a_decision_keeps_times_as_written_and_levels_as_codes() {
        let ok = DocKind::CertificationDecision
            .validate(json!({
                "document": "CertificationDecision@1",
                "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
                "interface_version": "09B",
                "application_date": "2025-09-01",
                "first_stage": { "result": "21", "care_time": { "total": 568 } },
                "second_stage": { "care_level": "21", "valid_from": "2025-10-01" },
                "previous": { "care_level": "13", "first_stage": { "result": "13" } }
            }))
            .unwrap();
        assert!(ok.contains("\"total\":568"), "{ok}");
        let err = DocKind::CertificationDecision
            .validate(json!({
                "document": "CertificationDecision@1",
                "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
                "interface_version": "09B",
                "application_date": "2025-09-01",
                "second_stage": { "care_level": "06" }
            }))
            .unwrap_err();
        assert!(err.message.contains("unknown variant"), "{err}");
    }
}
