//! `PhysicianOpinion@1` — 主治医意見書, the attending physician's opinion for 要介護認定, as of the
//! 2026-04 form (the 同意欄 is gone; files of the older form still carry it, so `consent` is
//! optional). Header, patient, physician and institution, then the form's five sections: 1 傷病,
//! 2 特別な医療, 3 心身の状態, 4 生活機能とサービス, 5 特記すべき事項. Category 要介護認定
//! (certification). Types only.
//!
//! Conventions: multi-selects are lists of stable codes (snake_case English, the Japanese label in
//! each variant's doc comment), in form order; single choices are named the same way (never the
//! 1-based codes of a particular file format); 0/1 check boxes are booleans; dates are ISO
//! (`YYYY-MM-DD`; 発症年月日 may be `YYYY-MM` or `YYYY`); free text keeps its line breaks as `\n`.

use super::common::{Address, PersonName, Provenance, Sex, Subject};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 主治医意見書.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhysicianOpinion {
    /// Document type and version: always `PhysicianOpinion@1`.
    pub document: String,
    /// 被保険者 — 保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// 保険者名称 — the insurer's name (e.g. 〇〇市).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurer_name: Option<String>,
    /// 依頼・記入の情報 — dates, numbers and the setting of this opinion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    /// 申請者 — the patient as written on the form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    /// 医師 — the physician who wrote the opinion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician: Option<Physician>,
    /// 医療機関 — the physician's institution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<Institution>,
    /// 同意欄 — the physician's consent to the opinion's use for care planning. Only on forms
    /// before 2026-04 (令和8年4月 removed it); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<PhysicianConsent>,
    /// (1) 最終診察日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_examined_on: Option<String>,
    /// (2) 意見書作成回数.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_written: Option<TimesWritten>,
    /// (3) 他科受診の有無.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_departments: Option<OtherDepartments>,
    /// 1. 傷病に関する意見.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub illness: Option<Illness>,
    /// 2. 特別な医療 — received within the past 14 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_medical_care: Option<SpecialMedicalCare>,
    /// 3. 心身の状態に関する意見.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mind_and_body: Option<MindAndBody>,
    /// 4. 生活機能とサービスに関する意見.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub living_function: Option<LivingFunction>,
    /// 5. 特記すべき事項 — free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// 出所 — the sending institution, file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

/// Dates, numbers and setting of the request and the writing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// 記入日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_on: Option<String>,
    /// 申請日 — the 要介護認定 application's date, ISO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_on: Option<String>,
    /// 作成依頼日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_on: Option<String>,
    /// 送付日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_on: Option<String>,
    /// 依頼番号 — the insurer's request number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_number: Option<String>,
    /// 医師番号 — the physician's number at the insurer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician_number: Option<String>,
    /// 種別 — where the patient lives (a municipal item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<Setting>,
}

/// 種別 (施設/在宅).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// 在宅
    Home,
    /// 施設
    Facility,
}

/// 申請者 — the patient.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// 氏名 — kanji and kana (ふりがな, held as full-width katakana).
    #[serde(default)]
    pub name: PersonName,
    /// 生年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 年齢 — age in years as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<i64>,
    /// 性別.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// 住所 — postcode and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// 連絡先 — phone number as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// 医師.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Physician {
    /// 医師氏名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// 医療機関.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// 事業所番号 — the institution's number assigned by the insurer, 10 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_number: Option<String>,
    /// 医療機関名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 医療機関所在地 — postcode and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// 電話.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// FAX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
}

/// 同意欄 (forms before 2026-04).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhysicianConsent {
    /// 同意する
    Agrees,
    /// 同意しない
    Declines,
}

/// 意見書作成回数.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimesWritten {
    /// 初回
    First,
    /// 2回目以上
    Repeat,
}

/// 他科受診の有無.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtherDepartments {
    /// 有/無 — whether the patient sees other departments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visits: Option<bool>,
    /// 受診科 — the departments, in form order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<Department>,
    /// その他 — the other department, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// 受診科.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    /// 内科
    InternalMedicine,
    /// 精神科
    Psychiatry,
    /// 外科
    Surgery,
    /// 整形外科
    Orthopedics,
    /// 脳神経外科
    Neurosurgery,
    /// 皮膚科
    Dermatology,
    /// 泌尿器科
    Urology,
    /// 婦人科
    Gynecology,
    /// 眼科
    Ophthalmology,
    /// 耳鼻咽喉科
    Otorhinolaryngology,
    /// リハビリテーション科
    Rehabilitation,
    /// 歯科
    Dentistry,
    /// その他
    Other,
}

/// 1. 傷病に関する意見.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Illness {
    /// (1) 診断名 — up to three; the first is the 特定疾病 or the disease most directly causing
    /// the loss of function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Diagnosis>,
    /// (2) 症状としての安定性.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<Stability>,
    /// (2) 不安定の具体的状況 — free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instability_detail: Option<String>,
    /// (3) 生活機能低下の直接の原因となっている傷病または特定疾病の経過及び投薬内容を含む治療内容.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_and_treatment: Option<String>,
}

/// 診断名 and 発症年月日.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// 診断名.
    pub name: String,
    /// 発症年月日 — absent when 不詳 or not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<Onset>,
}

/// 発症年月日 — a date the form prints with 頃 (approximate) and allows to be partial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Onset {
    /// ISO date of the precision written: `2023-06-12`, `2023-06` or `2010`.
    pub date: String,
    /// 頃 — `true`: an approximate date, as the form states for every 発症年月日.
    pub approximate: bool,
}

/// 症状としての安定性.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// 安定
    Stable,
    /// 不安定
    Unstable,
    /// 不明
    Unknown,
}

/// 2. 特別な医療 (past 14 days).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialMedicalCare {
    /// 処置内容.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub treatments: Vec<Treatment>,
    /// 特別な対応.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special_responses: Vec<SpecialResponse>,
    /// 失禁への対応.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incontinence_care: Vec<IncontinenceCare>,
}

/// 処置内容.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// 点滴の管理
    IvDripManagement,
    /// 中心静脈栄養
    CentralVenousNutrition,
    /// 透析
    Dialysis,
    /// ストーマの処置
    StomaCare,
    /// 酸素療法
    OxygenTherapy,
    /// レスピレーター
    Respirator,
    /// 気管切開の処置
    TracheostomyCare,
    /// 疼痛の看護
    PainNursing,
    /// 経管栄養
    TubeFeeding,
}

/// 特別な対応.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpecialResponse {
    /// モニター測定（血圧、心拍、酸素飽和度等）
    VitalSignMonitoring,
    /// 褥瘡の処置
    PressureUlcerCare,
}

/// 失禁への対応.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncontinenceCare {
    /// カテーテル（コンドームカテーテル、留置カテーテル等）
    Catheter,
}

/// 3. 心身の状態に関する意見.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MindAndBody {
    /// (1) 障害高齢者の日常生活自立度（寝たきり度）.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disability_independence: Option<DisabilityIndependence>,
    /// (1) 認知症高齢者の日常生活自立度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dementia_independence: Option<DementiaIndependence>,
    /// (2) 認知症の中核症状.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_symptoms: Option<CoreSymptoms>,
    /// (3) 認知症の周辺症状 (行動・心理症状).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavioural_symptoms: Option<BehaviouralSymptoms>,
    /// (4) その他の精神・神経症状.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_psychiatric: Option<OtherPsychiatric>,
    /// (5) 身体の状態.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// 障害高齢者の日常生活自立度（寝たきり度）.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabilityIndependence {
    /// 自立
    Independent,
    /// J1
    J1,
    /// J2
    J2,
    /// A1
    A1,
    /// A2
    A2,
    /// B1
    B1,
    /// B2
    B2,
    /// C1
    C1,
    /// C2
    C2,
}

/// 認知症高齢者の日常生活自立度.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DementiaIndependence {
    /// 自立
    Independent,
    /// Ⅰ
    I,
    /// Ⅱa
    IiA,
    /// Ⅱb
    IiB,
    /// Ⅲa
    IiiA,
    /// Ⅲb
    IiiB,
    /// Ⅳ
    Iv,
    /// M
    M,
}

/// 認知症の中核症状.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CoreSymptoms {
    /// 短期記憶.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_term_memory: Option<ShortTermMemory>,
    /// 日常の意思決定を行うための認知能力.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_making: Option<DecisionMaking>,
    /// 自分の意思の伝達能力.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<Communication>,
}

/// 短期記憶.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShortTermMemory {
    /// 問題なし
    NoProblem,
    /// 問題あり
    Problem,
}

/// 日常の意思決定を行うための認知能力.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMaking {
    /// 自立
    Independent,
    /// いくらか困難
    SomewhatDifficult,
    /// 見守りが必要
    NeedsSupervision,
    /// 判断できない
    Unable,
}

/// 自分の意思の伝達能力.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Communication {
    /// 伝えられる
    Able,
    /// いくらか困難
    SomewhatDifficult,
    /// 具体的要求に限られる
    LimitedToSpecificRequests,
    /// 伝えられない
    Unable,
}

/// 認知症の周辺症状.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviouralSymptoms {
    /// 有/無.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// 症状 — in form order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symptoms: Vec<BehaviouralSymptom>,
    /// その他 — as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// 周辺症状.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BehaviouralSymptom {
    /// 幻視・幻聴
    Hallucinations,
    /// 妄想
    Delusions,
    /// 昼夜逆転
    DayNightReversal,
    /// 暴言
    VerbalAggression,
    /// 暴行
    PhysicalAggression,
    /// 介護への抵抗
    ResistanceToCare,
    /// 徘徊
    Wandering,
    /// 火の不始末
    CarelessWithFire,
    /// 不潔行為
    UncleanBehaviour,
    /// 異食行動
    Pica,
    /// 性的問題行動
    SexualMisconduct,
    /// その他
    Other,
}

/// その他の精神・神経症状.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtherPsychiatric {
    /// 有/無.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// 症状名.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    /// 専門医受診の有無.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialist_seen: Option<bool>,
    /// 専門医受診の詳細 — e.g. the department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialist: Option<String>,
}

/// 身体の状態.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// 利き腕.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_hand: Option<Side>,
    /// 身長 — cm, as written (`148`, `152.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_cm: Option<String>,
    /// 体重 — kg, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<String>,
    /// 過去6ヶ月の体重の変化.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_change: Option<WeightChange>,
    /// 四肢欠損 — with 部位.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limb_loss: Option<Finding>,
    /// 麻痺 — per limb, with 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paralysis: Option<Paralysis>,
    /// 筋力の低下 — 部位, 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muscle_weakness: Option<Finding>,
    /// 関節の拘縮 — 部位, 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint_contracture: Option<Finding>,
    /// 関節の痛み — 部位, 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint_pain: Option<Finding>,
    /// 失調・不随意運動 — sides per body part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ataxia: Option<Ataxia>,
    /// 褥瘡 — 部位, 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_ulcer: Option<Finding>,
    /// その他の皮膚疾患 — 部位, 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_skin_disease: Option<Finding>,
}

/// 右/左.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// 右
    Right,
    /// 左
    Left,
}

/// 過去6ヶ月の体重の変化.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightChange {
    /// 増加
    Increased,
    /// 維持
    Maintained,
    /// 減少
    Decreased,
}

/// A checked row of 身体の状態: whether it applies, where, and how severe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The check box: `true` checked, `false` unchecked (absent: not answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// 部位 — as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// 程度.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// 程度.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 軽
    Mild,
    /// 中
    Moderate,
    /// 重
    Severe,
}

/// 麻痺.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Paralysis {
    /// Any paralysis checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// 右上肢.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_arm: Option<Finding>,
    /// 左上肢.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_arm: Option<Finding>,
    /// 右下肢.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_leg: Option<Finding>,
    /// 左下肢.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_leg: Option<Finding>,
    /// その他 — with 部位.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<Finding>,
}

/// 失調・不随意運動.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ataxia {
    /// Any ataxia or involuntary movement checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// 上肢 — sides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upper_limbs: Vec<Side>,
    /// 下肢 — sides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lower_limbs: Vec<Side>,
    /// 体幹 — sides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunk: Vec<Side>,
}

/// 4. 生活機能とサービスに関する意見.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LivingFunction {
    /// (1) 移動.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobility: Option<Mobility>,
    /// (2) 栄養・食生活.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nutrition: Option<Nutrition>,
    /// (3) 現在あるかまたは今後発生の可能性の高い状態とその対処方針.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likely_conditions: Option<LikelyConditions>,
    /// (4) サービス利用による生活機能の維持・改善の見通し.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlook: Option<Outlook>,
    /// (5) 医学的管理の必要性.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medical_management: Option<MedicalManagement>,
    /// (6) サービス提供時における医学的観点からの留意事項.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_notes: Option<CareNotes>,
    /// (7) 感染症の有無.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infection: Option<Infection>,
}

/// 移動.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mobility {
    /// 屋外歩行.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outdoor_walking: Option<OutdoorWalking>,
    /// 車いすの使用.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheelchair: Option<Wheelchair>,
    /// 歩行補助具・装具の使用.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub walking_aids: Vec<WalkingAid>,
}

/// 屋外歩行.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutdoorWalking {
    /// 自立
    Independent,
    /// 介助があればしている
    WithAssistance,
    /// していない
    NotWalking,
}

/// 車いすの使用.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Wheelchair {
    /// 用いていない
    NotUsed,
    /// 主に自分で操作している
    SelfPropelled,
    /// 主に他人が操作している
    PropelledByOthers,
}

/// 歩行補助具・装具の使用.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalkingAid {
    /// 用いていない
    NotUsed,
    /// 屋外で使用
    Outdoors,
    /// 屋内で使用
    Indoors,
}

/// 栄養・食生活.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nutrition {
    /// 食事行為.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eating: Option<Eating>,
    /// 現在の栄養状態.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NutritionStatus>,
    /// 栄養・食生活上の留意点 — free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// 食事行為.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Eating {
    /// 自立ないし何とか自分で食べられる
    Independent,
    /// 全面介助
    FullAssistance,
}

/// 現在の栄養状態.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NutritionStatus {
    /// 良好
    Good,
    /// 不良
    Poor,
}

/// 現在あるかまたは今後発生の可能性の高い状態とその対処方針.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LikelyConditions {
    /// 状態 — in form order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<LikelyCondition>,
    /// その他 — as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// 対処方針 — free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// 現在あるかまたは今後発生の可能性の高い状態.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LikelyCondition {
    /// 尿失禁
    UrinaryIncontinence,
    /// 転倒・骨折
    FallsAndFractures,
    /// 移動能力の低下
    ReducedMobility,
    /// 褥瘡
    PressureUlcers,
    /// 心肺機能の低下
    CardiopulmonaryDecline,
    /// 閉じこもり
    Housebound,
    /// 意欲低下
    LossOfMotivation,
    /// 徘徊
    Wandering,
    /// 低栄養
    Malnutrition,
    /// 摂食・嚥下機能低下
    EatingAndSwallowingDecline,
    /// 脱水
    Dehydration,
    /// 易感染性
    SusceptibilityToInfection,
    /// がん等による疼痛
    CancerPain,
    /// その他
    Other,
}

/// サービス利用による生活機能の維持・改善の見通し.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outlook {
    /// 期待できる
    Expected,
    /// 期待できない
    NotExpected,
    /// 不明
    Unknown,
}

/// 医学的管理の必要性.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MedicalManagement {
    /// The services checked, in the order of the source, each with its emphasis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<MedicalNeed>,
    /// その他の医療系サービス — as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// One checked service of 医学的管理の必要性.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MedicalNeed {
    /// The service.
    pub service: MedicalService,
    /// 下線 — `true`: underlined on the form as especially needed.
    pub underlined: bool,
}

/// 医学的管理の必要性 — the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MedicalService {
    /// 訪問診療
    HomeVisitMedical,
    /// 訪問看護
    HomeVisitNursing,
    /// 訪問リハビリテーション
    HomeVisitRehabilitation,
    /// 通所リハビリテーション
    OutpatientRehabilitation,
    /// 短期入所療養介護
    ShortStayMedicalCare,
    /// 訪問歯科診療
    HomeVisitDental,
    /// 訪問歯科衛生指導
    HomeVisitDentalHygiene,
    /// 訪問薬剤管理指導
    HomeVisitPharmacy,
    /// 訪問栄養食事指導
    HomeVisitNutrition,
    /// その他の医療系サービス
    OtherMedicalService,
    /// 看護職員の訪問による相談・支援
    NurseVisitConsultation,
}

/// サービス提供時における医学的観点からの留意事項.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CareNotes {
    /// 血圧.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blood_pressure: Option<CareNote>,
    /// 摂食.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eating: Option<CareNote>,
    /// 嚥下.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swallowing: Option<CareNote>,
    /// 移動.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<CareNote>,
    /// 運動.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exercise: Option<CareNote>,
    /// その他 — free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// One 留意事項: 特になし (`noted: false`) or あり with its text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CareNote {
    /// `false` 特になし, `true` あり.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noted: Option<bool>,
    /// あり — what to watch, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// 感染症の有無.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Infection {
    /// 有/無/不明.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InfectionStatus>,
    /// 有 — the infection, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// 感染症の有無.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InfectionStatus {
    /// 有
    Present,
    /// 無
    Absent,
    /// 不明
    Unknown,
}
