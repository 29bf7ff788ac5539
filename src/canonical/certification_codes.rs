//! Code lists shared by the 要介護認定 documents (`CertificationApplication`,
//! `CertificationSurvey`, `CertificationDecision`), as the 認定支援ネットワーク「センター送信」
//! interface writes them (../shared/specs/certification.md §1.2, §1.6). Codes stay codes: a
//! document holds `"21"`, and the schema says it means 要介護1. These lists are those of the 2009
//! software (識別コード 09A/09B); a code outside a list is refused, never guessed. Types only.

use super::declare::code_list;

code_list! {
    /// 識別コード — 厚労省IF識別コード, the version of the 認定 software that wrote the record.
    /// The meaning of several fields (意見書 items, service use, 基本調査) depends on it.
    pub enum InterfaceVersion {
        /// 認定ソフト99
        "99A" => Software99,
        /// 認定ソフト2002
        "02A" => Software2002,
        /// 認定ソフト2006 (新要介護認定適用区分 未適用)
        "06A" => Software2006,
        /// 認定ソフト2009
        "09A" => Software2009,
        /// 認定ソフト2009 SP3
        "09B" => Software2009Sp3,
    }
}

code_list! {
    /// 要介護状態区分 — the general list (前回の認定審査会結果).
    pub enum CareLevel {
        /// 非該当（自立）
        "01" => NotEligible,
        /// 事業対象者
        "06" => ProgramTarget,
        /// みなし非該当
        "09" => DeemedNotEligible,
        /// 経過的要介護
        "11" => Transitional,
        /// 要支援1
        "12" => Support1,
        /// 要支援2
        "13" => Support2,
        /// みなし要支援
        "19" => DeemedSupport,
        /// 要介護1
        "21" => Care1,
        /// 要介護2
        "22" => Care2,
        /// 要介護3
        "23" => Care3,
        /// 要介護4
        "24" => Care4,
        /// 要介護5
        "25" => Care5,
        /// 再調査
        "31" => Resurvey,
        /// 照会
        "32" => Inquiry,
        /// 取消
        "88" => Cancelled,
        /// 保留
        "98" => Pending,
        /// なし
        "99" => NoResult,
    }
}

code_list! {
    /// 一次判定結果 — the computer's first-stage result (2009 list).
    pub enum FirstStageResult {
        /// 非該当
        "01" => NotEligible,
        /// 要支援1
        "12" => Support1,
        /// 要支援2
        "13" => Support2,
        /// 要介護1
        "21" => Care1,
        /// 要介護2
        "22" => Care2,
        /// 要介護3
        "23" => Care3,
        /// 要介護4
        "24" => Care4,
        /// 要介護5
        "25" => Care5,
    }
}

code_list! {
    /// 二次判定結果 — the board's certified care level (2009 list).
    pub enum SecondStageResult {
        /// 非該当
        "01" => NotEligible,
        /// 要支援1
        "12" => Support1,
        /// 要支援2
        "13" => Support2,
        /// 要介護1
        "21" => Care1,
        /// 要介護2
        "22" => Care2,
        /// 要介護3
        "23" => Care3,
        /// 要介護4
        "24" => Care4,
        /// 要介護5
        "25" => Care5,
        /// 再調査
        "31" => Resurvey,
        /// 取消
        "88" => Cancelled,
        /// なし
        "99" => NoResult,
    }
}

code_list! {
    /// 障害高齢者の日常生活自立度（寝たきり度）.
    pub enum DisabilityScale {
        /// 自立
        "1" => Independent,
        /// J1
        "2" => J1,
        /// J2
        "3" => J2,
        /// A1
        "4" => A1,
        /// A2
        "5" => A2,
        /// B1
        "6" => B1,
        /// B2
        "7" => B2,
        /// C1
        "8" => C1,
        /// C2
        "9" => C2,
        /// 記載無し
        "10" => NotStated,
    }
}

code_list! {
    /// 認知症高齢者の日常生活自立度.
    pub enum DementiaScale {
        /// 自立
        "1" => Independent,
        /// Ⅰ
        "2" => I,
        /// Ⅱa
        "3" => IIa,
        /// Ⅱb
        "4" => IIb,
        /// Ⅲa
        "5" => IIIa,
        /// Ⅲb
        "6" => IIIb,
        /// Ⅳ
        "7" => IV,
        /// M
        "8" => M,
        /// 記載無し
        "9" => NotStated,
    }
}

code_list! {
    /// 現在のサービス区分 — the services the person uses now.
    pub enum CurrentServiceClass {
        /// 予防給付
        "1" => Prevention,
        /// 介護給付
        "2" => Care,
        /// なし
        "9" => NoService,
    }
}

code_list! {
    /// 現在の状況 — where the person lives now.
    pub enum CurrentSituation {
        /// 居宅（施設利用なし）
        "1" => Home,
        /// 指定介護老人福祉施設
        "2" => NursingHomeWelfare,
        /// 介護老人保健施設
        "3" => GeriatricHealthFacility,
        /// 指定介護療養型医療施設
        "4" => LongTermCareMedicalFacility,
        /// 認知症対応型共同生活介護適用施設（グループホーム）
        "5" => DementiaGroupHome,
        /// 特定施設入居者生活介護適用施設（ケアハウス等）
        "6" => SpecifiedFacility,
        /// 医療機関（医療保険適用療養病床）
        "7" => HospitalLongTermBeds,
        /// 医療機関（療養病棟以外）
        "8" => HospitalOtherWards,
        /// その他の施設
        "9" => OtherFacility,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn care_level_21_is_care_1_and_scales_keep_their_codes() {
        let level: SecondStageResult = serde_json::from_str("\"21\"").unwrap();
        assert_eq!(level, SecondStageResult::Care1);
        assert_eq!(DisabilityScale::NotStated.code(), "10");
        assert_eq!(DementiaScale::IIa.code(), "3");
        assert!(serde_json::from_str::<FirstStageResult>("\"31\"").is_err());
        assert_eq!(InterfaceVersion::Software2009Sp3.code(), "09B");
    }
}
