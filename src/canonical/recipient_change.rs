//! `RecipientChange@1` — 受給者異動連絡票 (交換情報識別番号 5311): the record an insurer (保険者)
//! sends the 国保連 when a person's benefit entitlement changes — the 証 data of the 被保険者証, the
//! 負担割合証 and the 負担限度額認定証 in one record, as it stands after the change: 認定 (要介護状態区分
//! and its validity), 支給限度基準額, the 居宅介護支援事業者 of the care plan, 給付制限 (償還払,
//! 給付率引下げ), 利用者負担 reductions, 特定入所者 負担限度額, 社会福祉法人軽減, 住所地特例 and the
//! 二割負担 period. Category 要介護認定 (certification), like `InsuranceCard@1`: the same 証 data.
//!
//! Why a kind of its own and not `InsuranceCard@2`: docs/decisions.md. In short, the record is an
//! event of the insurer's 受給者台帳 (異動年月日, 異動区分, 異動事由), holds far more than a card and
//! lacks what a card has (漢字氏名, 住所, 保険者名称, 交付年月日, 履歴番号).
//!
//! Spec: shared/specs/certification.md §4 (field names and order from REAMS, byte lengths unknown).
//! Not carried, on purpose: 老人保健 (14, 15; abolished 2008), the flags 34, 50 and 62 (their codes
//! are unverified), 後期高齢者医療 and 国民健康保険 numbers (63–67, incl. a 個人番号: not needed by
//! the certification category, DESIGN §7), 二次予防事業 (68–70; abolished 2015). Dates are ISO; a
//! field left empty in the record is absent here, and a group whose every field is empty is absent.

use super::certification_application::ApplicationKind;
use super::certification_codes::CareLevel;
use super::common::{PersonName, Provenance, Sex, Subject};
use super::declare::{code_list, optional_record};
use super::insurance_card::BenefitLimit;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 受給者異動連絡票 — one 5311 record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientChange {
    /// Document type and version: always `RecipientChange@1`.
    pub document: String,
    /// 被保険者 — 証記載保険者番号 (7) + 被保険者番号 (8).
    pub subject: Subject,
    /// 異動 — what changed, when and why (4–6).
    pub change: Change,
    /// 被保険者氏名（カナ） (9) — full-width katakana, kept whole (`kana.text`): the record has no
    /// kanji name.
    #[serde(default)]
    pub name: PersonName,
    /// 生年月日 (10) — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 性別コード (11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// 資格取得年月日 / 資格喪失年月日 (12, 13) — the person's eligibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility: Option<Period>,
    /// 広域連合（政令市）保険者番号 (16) — as written, when the insurer is part of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide_area_insurer_number: Option<String>,
    /// 申請 — the pending or last application (17–19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
    /// 認定 — the certification in force (20–23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification: Option<Certification>,
    /// 居宅サービス計画 — who makes the care plan, and from when (24–27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_plan: Option<CarePlanAuthor>,
    /// 訪問通所サービス 支給限度基準額 and its 上限管理適用期間 (28–30), as the card holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefit_limit: Option<BenefitLimit>,
    /// 短期入所サービス 支給限度基準額 and its period (31–33; obsolete since 2006, usually empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_stay_limit: Option<BenefitLimit>,
    /// 償還払化 — benefits paid only as refunds (35, 36; a 給付制限).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_only: Option<Period>,
    /// 給付率引下げ — a reduced benefit rate (37, 38; a 給付制限).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduced_benefit_rate: Option<Period>,
    /// 利用者負担減免・旧措置入所者 (39–43).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burden_reduction: Option<BurdenReduction>,
    /// 標準負担・特定標準負担 (44–47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_burden: Option<StandardBurden>,
    /// 特定入所者介護サービス — the 負担限度額認定 (48, 49, 51–58, 75–77).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specified_resident: Option<SpecifiedResident>,
    /// 社会福祉法人軽減 (59–61).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welfare_corporation_reduction: Option<WelfareCorporationReduction>,
    /// 住所地特例 (71–74).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_residence: Option<SpecialResidence>,
    /// 二割負担 適用期間 (78, 79) — the 負担割合 is 2割 in this period (the 3割 items of the 2018+
    /// interface are unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twenty_percent_share: Option<Period>,
    /// The 国保連 file's control record (レコード種別 1) the record came in: 媒体区分,
    /// 処理対象年月 and ファイル管理番号, so that the file can be written back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<super::claim_invoice::ClaimFile>,
    /// 出所 — the insurer (the control record's 保険者番号) and the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
    /// 後続項目 — the fields after the last item of this record's layout (a later revision of
    /// the interface), verbatim and in order: kept so that the record is written back as it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<String>,
}

/// 異動 — items 4–6.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// 異動年月日 — ISO date.
    pub date: String,
    /// 異動区分コード.
    pub kind: ChangeKind,
    /// 異動事由.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ChangeReason>,
}

code_list! {
    /// 異動区分コード.
    pub enum ChangeKind {
        /// 新規.
        "1" => New,
        /// 変更.
        "2" => Changed,
        /// 終了.
        "3" => Ended,
    }
}

code_list! {
    /// 異動事由.
    pub enum ChangeReason {
        /// 受給資格取得.
        "01" => Acquired,
        /// 受給資格喪失.
        "02" => Lost,
        /// 広域連合内の市町村間転居.
        "03" => MovedWithinWideArea,
        /// 合併による新規.
        "04" => Merger,
        /// その他異動.
        "99" => Other,
    }
}

optional_record! {
    /// A period of dates (ISO), either end open.
    pub struct Period {
        /// 開始年月日.
        pub start: String,
        /// 終了年月日.
        pub end: String,
    }
}

code_list! {
    /// 申請中区分 (変更申請中, 減免申請中, 特定入所者認定申請中): 1 申請なし, 2 申請中, 3 決定済み.
    pub enum Pending {
        /// 申請なし.
        "1" => NotApplied,
        /// 申請中.
        "2" => Applied,
        /// 決定済み.
        "3" => Decided,
    }
}

optional_record! {
    /// 申請 — items 17–19.
    pub struct Application {
        /// 申請種別コード — the 申請区分（法令） list: 1 新規, 2 更新, 3 変更, 4 職権.
        pub kind: ApplicationKind,
        /// 変更申請中区分コード.
        pub change_pending: Pending,
        /// 申請年月日 — ISO date.
        pub applied_on: String,
    }
}

code_list! {
    /// みなし要介護区分コード (REAMS `MinashiCode`; that this field holds it is unverified).
    pub enum DeemedCertification {
        /// 通常の認定.
        "1" => Regular,
        /// みなし認定（旧措置入所者）.
        "2" => FormerPlacement,
        /// やむを得ない事由.
        "3" => Unavoidable,
    }
}

/// 認定 — items 20–23.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// 要介護状態区分コード — 01 非該当, 11 経過的要介護, 12/13 要支援１/２, 21–25 要介護１–５.
    pub care_level: CareLevel,
    /// みなし要介護区分コード.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deemed: Option<DeemedCertification>,
    /// 認定有効期間（開始） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// 認定有効期間（終了） — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

code_list! {
    /// 居宅サービス計画作成区分コード, the REAMS 受給者IF list (whether the claims list 1/2/3 applies
    /// instead is unverified).
    pub enum PlanAuthor {
        /// 居宅介護支援事業所作成.
        "1" => CareManagementOffice,
        /// 基準該当居宅介護支援事業者作成.
        "2" => EquivalentOffice,
        /// 自己作成.
        "3" => SelfMade,
        /// 介護予防支援事業所・地域包括支援センター作成.
        "4" => PreventionSupportOffice,
    }
}

optional_record! {
    /// 居宅サービス計画 — items 24–27: the notified 居宅介護支援事業者.
    pub struct CarePlanAuthor {
        /// 居宅サービス計画作成区分コード.
        pub author: PlanAuthor,
        /// 居宅介護支援事業所番号 — 10 characters.
        pub office_number: String,
        /// 適用開始年月日 — ISO date.
        pub valid_from: String,
        /// 適用終了年月日 — ISO date.
        pub valid_to: String,
    }
}

code_list! {
    /// 利用者負担区分コード.
    pub enum BurdenClass {
        /// 利用者負担.
        "1" => User,
        /// 旧措置入所者利用者負担.
        "2" => FormerPlacement,
    }
}

optional_record! {
    /// 利用者負担減免・旧措置入所者 — items 39–43.
    pub struct BurdenReduction {
        /// 減免申請中区分コード.
        pub pending: Pending,
        /// 利用者負担区分コード.
        pub class: BurdenClass,
        /// 給付率 — percent.
        pub benefit_rate: i64,
        /// 適用開始年月日 — ISO date.
        pub valid_from: String,
        /// 適用終了年月日 — ISO date.
        pub valid_to: String,
    }
}

code_list! {
    /// 標準負担区分コード.
    pub enum StandardBurdenClass {
        /// 標準負担.
        "1" => Standard,
        /// 特定標準負担.
        "2" => SpecifiedStandard,
    }
}

optional_record! {
    /// 標準負担・特定標準負担 — items 44–47.
    pub struct StandardBurden {
        /// 標準負担区分コード.
        pub class: StandardBurdenClass,
        /// 標準負担額 — 円.
        pub amount: i64,
        /// 負担額適用開始年月日 — ISO date.
        pub valid_from: String,
        /// 負担額適用終了年月日 — ISO date.
        pub valid_to: String,
    }
}

code_list! {
    /// 特定入所者介護サービス区分コード.
    pub enum ResidentClass {
        /// 通常の受給者.
        "1" => Regular,
        /// 旧措置入所者.
        "2" => FormerPlacement,
    }
}

optional_record! {
    /// 特定入所者介護サービス — the 負担限度額 (円/日) and their period.
    pub struct SpecifiedResident {
        /// 特定入所者認定申請中区分コード (48).
        pub pending: Pending,
        /// 特定入所者介護サービス区分コード (49).
        pub class: ResidentClass,
        /// 食費負担限度額 (51).
        pub food_cap: i64,
        /// 居住費負担限度額 — ユニット型個室 (52).
        pub unit_private_room_cap: i64,
        /// 居住費負担限度額 — ユニット型準個室 (53).
        pub unit_semi_private_room_cap: i64,
        /// 居住費負担限度額 — 従来型個室（特養等） (54).
        pub private_room_welfare_cap: i64,
        /// 居住費負担限度額 — 従来型個室（老健・療養等） (55).
        pub private_room_health_cap: i64,
        /// 居住費負担限度額 — 多床室 (56).
        pub shared_room_cap: i64,
        /// 居住費（新1）負担限度額 (75).
        pub new_cap_1: i64,
        /// 居住費（新2）負担限度額 (76).
        pub new_cap_2: i64,
        /// 居住費（新3）負担限度額 (77).
        pub new_cap_3: i64,
        /// 負担限度額適用開始年月日 (57) — ISO date.
        pub valid_from: String,
        /// 負担限度額適用終了年月日 (58) — ISO date.
        pub valid_to: String,
    }
}

optional_record! {
    /// 社会福祉法人軽減 — items 59–61.
    pub struct WelfareCorporationReduction {
        /// 軽減率 — as written (its unit is unverified).
        pub rate: String,
        /// 適用開始年月日 — ISO date.
        pub valid_from: String,
        /// 適用終了年月日 — ISO date.
        pub valid_to: String,
    }
}

code_list! {
    /// 住所地特例 対象者区分コード.
    pub enum SpecialResidenceClass {
        /// 非該当.
        "1" => NotApplicable,
        /// 該当.
        "2" => Applicable,
    }
}

optional_record! {
    /// 住所地特例 — items 71–74: the person lives in a facility of another insurer's area.
    pub struct SpecialResidence {
        /// 住所地特例 対象者区分コード.
        pub class: SpecialResidenceClass,
        /// 施設所在保険者番号 — 6 digits.
        pub facility_insurer_number: String,
        /// 適用開始年月日 — ISO date.
        pub valid_from: String,
        /// 適用終了年月日 — ISO date.
        pub valid_to: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::DocKind;
    use serde_json::json;

    fn change() -> serde_json::Value {
        json!({
            "document": "RecipientChange@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "change": { "date": "2025-10-01", "kind": "2", "reason": "99" },
            "name": { "kana": { "text": "カイゴ タロウ" } },
            "certification": { "care_level": "22", "valid_from": "2025-10-01", "valid_to": "2026-09-30" },
            "benefit_limit": { "units": 19705, "valid_from": "2025-10-01" },
            "twenty_percent_share": { "start": "2025-08-01", "end": "2026-07-31" }
        })
    }

    #[test]
    fn a_change_validates_and_keeps_its_groups() {
        let text = DocKind::RecipientChange.validate(change()).expect("valid");
        let back: RecipientChange = serde_json::from_str(&text).expect("typed");
        assert_eq!(back.change.kind, ChangeKind::Changed);
        assert_eq!(
            back.certification.expect("認定").care_level,
            CareLevel::Care2
        );
        assert_eq!(back.benefit_limit.expect("限度").units, 19705);
        assert!(back.special_residence.is_none());
        assert_eq!(DocKind::RecipientChange.category(), "certification");
        assert!(DocKind::RecipientChange.carries_subject());
    }

    #[test]
    fn a_change_needs_its_person_and_its_change_kind() {
        let mut doc = change();
        doc.as_object_mut().expect("object").remove("subject");
        let err = DocKind::RecipientChange.validate(doc).unwrap_err();
        assert!(err.message.contains("missing field `subject`"), "{err}");
        let mut doc = change();
        doc["change"]["kind"] = json!("4");
        assert!(DocKind::RecipientChange.validate(doc).is_err());
    }

    #[test]
    fn the_numbers_a_certification_does_not_need_have_no_place() {
        let mut doc = change();
        doc["national_health"] = json!({ "personal_number": "123456789012" });
        let err = DocKind::RecipientChange.validate(doc).unwrap_err();
        assert!(
            err.message.contains("unknown field `national_health`"),
            "{err}"
        );
    }
}
