//! `CarePlan@1` — 居宅サービス計画書 第1表 (the plan's header and policy), 第2表 (needs, goals and
//! the services that meet them) and 第3表 (the weekly schedule). ケアプラン CSV sends each table in
//! its own file, so a document carries the tables its source held; documents with the same subject
//! and 居宅サービス計画作成（変更）日 belong to one plan. Category ケアプラン (care-plan).

use super::common::{Provenance, Subject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 居宅サービス計画書.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CarePlan {
    /// Document type and version: always `CarePlan@1`.
    pub document: String,
    /// 被保険者 — 保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// CSVバージョン — e.g. `202407` (4.1), when the source was ケアプラン CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_version: Option<String>,
    /// 居宅サービス計画作成（変更）日 — ISO date; links 第1/2/3表 of one plan.
    pub plan_date: String,
    /// 第1表 居宅サービス計画書(1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table1: Option<Table1>,
    /// 第2表 居宅サービス計画書(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table2: Option<Table2>,
    /// 第3表 週間サービス計画表.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table3: Option<Table3>,
    /// 出所 — sending office, file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

/// 第1表 — the plan's header, the person's wishes and the overall policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table1 {
    /// 作成年月日 — ISO date.
    pub created_on: String,
    /// 利用者郵便番号.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// 利用者住所１.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    /// 利用者住所２.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    /// 居宅サービス計画作成者氏名 — the care manager.
    pub planner_name: String,
    /// 居宅介護支援事業者・事業所名.
    pub office_name: String,
    /// 居宅介護支援事業者・事業所郵便番号.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_postal_code: Option<String>,
    /// 居宅介護支援事業者・事業所住所１.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_address1: Option<String>,
    /// 居宅介護支援事業者・事業所住所２.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_address2: Option<String>,
    /// 介護支援事業者コード — 事業所番号, 10 digits.
    pub office_number: String,
    /// 初回居宅サービス計画作成日 — ISO date.
    pub first_plan_date: String,
    /// 計画書区分 — 11 初回, 12 紹介, 21 継続, 51–54 combinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_kind: Option<String>,
    /// 認定状況区分 — 1 申請中, 2 認定済.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification_status: Option<String>,
    /// 認定日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified_on: Option<String>,
    /// 認定の有効期間（開始） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// 認定の有効期間（終了） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// 要介護状態区分 — 06 事業対象者, 12/13 要支援１/２, 21–25 要介護１–５.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_level: Option<String>,
    /// 利用者及び家族の生活に対する意向を踏まえた課題分析の結果.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<String>,
    /// 介護認定審査会の意見及びサービスの種類の指定.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee_opinion: Option<String>,
    /// 総合的な援助の方針.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// 生活援助中心型の算定理由 — 1 一人暮らし, 2 家族等が障害、疾病等, 3 その他.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub living_support_reason: Option<String>,
    /// 生活援助中心型の算定理由（その他の内容）.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_reason: Option<String>,
    /// 更新業者コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updater_code: Option<String>,
}

/// 第2表 — needs, goals and the services chosen for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table2 {
    /// 居宅計画書作成年月日 — ISO date.
    pub created_on: String,
    /// One row per 援助内容, in 課題NO, 援助目標NO, 援助内容NO order.
    #[serde(default)]
    pub rows: Vec<Table2Row>,
}

/// 第2表の行 — one 援助内容 under its 課題 and 目標.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table2Row {
    /// 課題ＮＯ — 1–99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_no: Option<i64>,
    /// 生活全般の解決すべき課題（ニーズ）.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<String>,
    /// 援助目標ＮＯ — 1–99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_no: Option<i64>,
    /// 長期目標.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term_goal: Option<String>,
    /// 短期目標.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_term_goal: Option<String>,
    /// 長期目標の期間.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term_period: Option<String>,
    /// 短期目標の期間.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_term_period: Option<String>,
    /// 援助内容ＮＯ — 1–99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_no: Option<i64>,
    /// サービス内容.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_content: Option<String>,
    /// 保険給付の対象か — `Y` 対象 → true, `N` 対象外 → false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance_covered: Option<bool>,
    /// サービス種別.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_kind: Option<String>,
    /// サービス事業者コード — 事業所番号.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_number: Option<String>,
    /// サービス事業所名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// 頻度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// 期間 (実施期間).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// 更新業者コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updater_code: Option<String>,
}

/// 第3表 — the weekly schedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table3 {
    /// 週間サービス計画表作成年月日 — ISO date.
    pub created_on: String,
    /// Rows of the weekly table.
    #[serde(default)]
    pub rows: Vec<Table3Row>,
}

/// 第3表の行.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table3Row {
    /// 介護サービス内容.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_content: Option<String>,
    /// 曜日 — 1 月 … 7 日.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<i64>,
    /// 開始時間 — `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// 終了時間 — `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// 主な日常生活上の活動.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_activity: Option<String>,
    /// 活動の開始時間 — `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_start_time: Option<String>,
    /// 活動の終了時間 — `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_end_time: Option<String>,
    /// 週単位以外のサービス.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_weekly_services: Option<String>,
}
