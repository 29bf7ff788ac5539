//! `CertificationApplication@1` — 要介護認定 申請書: who applied for certification, when, of which
//! kind, and where the person lives or stays, with the attending physician named for the
//! 主治医意見書. Produced from the 認定支援ネットワーク「センター送信」 record (fields 1–27, one
//! record per application); category 要介護認定 (certification). The subject, 申請日 and 枝番
//! link it to the `CertificationSurvey` and `CertificationDecision` of the same application.

use super::certification_codes::InterfaceVersion;
use super::common::{Address, PersonName, Provenance, Sex, Subject};
use super::declare::{code_list, optional_record};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// 要介護認定申請.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificationApplication {
    /// Document type and version: always `CertificationApplication@1`.
    pub document: String,
    /// 被保険者 — 証記載保険者番号 + 被保険者番号.
    pub subject: Subject,
    /// 識別コード — the 認定 software version that wrote the record (codes depend on it).
    pub interface_version: InterfaceVersion,
    /// 認定申請日 — ISO date.
    pub application_date: String,
    /// 枝番 — the application's branch number (the municipal system's key, with 申請日).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_number: Option<u32>,
    /// 申請区分（法令） — the kind of application in law.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_kind: Option<ApplicationKind>,
    /// 申請区分（申請時） — the kind as filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_kind_filed: Option<ApplicationKindFiled>,
    /// 取下区分 — whether the application stands, was rejected or withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<Withdrawal>,
    /// 被保険者区分 — 第1号 / 第2号 / ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_class: Option<InsuredClass>,
    /// 申請代行区分 — who filed the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<FiledBy>,
    /// 申請者（被保険者） — the person the application is for.
    #[serde(default)]
    pub applicant: Applicant,
    /// 病院施設等 — the hospital or facility the person is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    /// 主治医 — the attending physician asked for the 主治医意見書.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician: Option<AttendingPhysician>,
    /// 出所 — file name (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

/// 被保険者 — the person as the application names them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// 氏名 — 漢字氏名 as written, カナ氏名 in full-width katakana.
    #[serde(default)]
    pub name: PersonName,
    /// 生年月日 — ISO date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 年齢 — age in years on the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    /// 性別.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// 郵便番号 and 住所.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// 電話番号.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

optional_record! {
    /// 病院施設等.
    pub struct Facility {
        /// 病院施設等の名称.
        pub name: String,
        /// 病院施設等の所在地.
        pub address: String,
    }
}

optional_record! {
    /// 主治医 — municipal codes (their format is the municipality's).
    pub struct AttendingPhysician {
        /// 主治医医療機関番号 — the physician's institution as the municipality numbers it.
        pub institution_id: String,
        /// 主治医番号 — the physician as the municipality numbers them.
        pub physician_id: String,
    }
}

code_list! {
    /// 申請区分（法令）.
    pub enum ApplicationKind {
        /// 新規申請
        "1" => New,
        /// 更新申請
        "2" => Renewal,
        /// 区分変更申請
        "3" => Change,
        /// 職権
        "4" => ExOfficio,
    }
}

code_list! {
    /// 申請区分（申請時）.
    pub enum ApplicationKindFiled {
        /// 新規
        "1" => New,
        /// 更新
        "2" => Renewal,
        /// 区分変更
        "3" => Change,
        /// 職権
        "4" => ExOfficio,
        /// 転入申請
        "5" => MovedIn,
        /// 資格喪失（死亡）
        "6" => Lost,
        /// 新規（事前）
        "A" => NewInAdvance,
        /// 更新（事前）
        "B" => RenewalInAdvance,
    }
}

code_list! {
    /// 取下区分.
    pub enum Withdrawal {
        /// 認定申請有効
        "1" => Valid,
        /// 却下
        "2" => Rejected,
        /// 取り下げ
        "3" => Withdrawn,
        /// 区分変更却下
        "4" => ChangeRejected,
    }
}

code_list! {
    /// 被保険者区分.
    pub enum InsuredClass {
        /// 第1号被保険者 (65 and over)
        "1" => First,
        /// 第2号被保険者 (40–64, with a 特定疾病)
        "2" => Second,
        /// 生活保護
        "8" => PublicAssistance,
        /// その他
        "9" => Other,
    }
}

code_list! {
    /// 申請代行区分.
    pub enum FiledBy {
        /// 本人
        "1" => Themselves,
        /// 家族
        "2" => Family,
        /// 委任
        "3" => Delegate,
        /// 代行
        "4" => Agent,
        /// その他
        "9" => Other,
    }
}

#[cfg(test)]
mod tests {
    use crate::canonical::DocKind;
    use serde_json::json;

    #[test]
    fn an_application_needs_its_subject_date_and_version_and_keeps_codes() {
        let ok = DocKind::CertificationApplication
            .validate(json!({
                "document": "CertificationApplication@1",
                "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
                "interface_version": "09B",
                "application_date": "2025-09-01",
                "application_kind_filed": "A",
                "insured_class": "2"
            }))
            .unwrap();
        assert!(ok.contains("\"application_kind_filed\":\"A\""), "{ok}");
        let err = DocKind::CertificationApplication
            .validate(json!({
                "document": "CertificationApplication@1",
                "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
                "interface_version": "09B",
                "application_date": "2025-09-01",
                "insured_class": "3"
            }))
            .unwrap_err();
        assert!(err.message.contains("unknown variant"), "{err}");
    }
}
