//! `ServiceUsage@1` — 第6表 サービス利用票: the services planned (予定, from the care manager) or
//! delivered (実績, from the provider) for one person in one service month. Category ケアプラン.

use super::common::{Provenance, Subject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// サービス利用票（第6表）.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceUsage {
    /// Document type and version: always `ServiceUsage@1`.
    pub document: String,
    /// 被保険者 — 保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// 予定 (`planned`, UPPLAN) or 実績 (`actual`, UPJSK).
    pub kind: UsageKind,
    /// CSVバージョン, when the source was ケアプラン CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_version: Option<String>,
    /// 作成年月日 — ISO date.
    pub created_on: String,
    /// 対象年月 — the service month, `YYYY-MM`.
    pub service_month: String,
    /// One entry per service line.
    #[serde(default)]
    pub items: Vec<ServiceItem>,
    /// 出所 — sending office, file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

/// 予定 or 実績.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageKind {
    /// 予定
    Planned,
    /// 実績
    Actual,
}

/// サービス利用票の明細行.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceItem {
    /// プラン担当業者コード — 居宅介護支援事業所番号.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_office_number: Option<String>,
    /// プラン担当者名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner_name: Option<String>,
    /// 単位数 — after discounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    /// 前月までの短期入所利用日数.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_stay_days_before: Option<i64>,
    /// サービス利用日 — ISO date.
    pub service_date: String,
    /// 日割対象日 — 31 characters, `1` for each 日割 day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prorated_days: Option<String>,
    /// サービス開始時刻 — `HH:MM`; absent when the CSV says `9999` (no time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// サービス終了時刻 — `HH:MM`; absent when the CSV says `9999`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// サービス回数.
    pub count: i64,
    /// サービスコード — 6 characters (種類 2 + 項目 4).
    pub service_code: String,
    /// TAISコード (福祉用具).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tais_code: Option<String>,
    /// 福祉用具届出コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equipment_notice_code: Option<String>,
    /// 用具名称（機種名）.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equipment_name: Option<String>,
    /// 明細判別コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_code: Option<String>,
    /// サービス事業者コード — 事業所番号.
    pub provider_number: String,
    /// サービス事業所名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// サテライト枝番.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellite_branch: Option<String>,
    /// ３０日超区分 — true when 該当.
    pub over_30_days: bool,
    /// 更新業者コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updater_code: Option<String>,
}
