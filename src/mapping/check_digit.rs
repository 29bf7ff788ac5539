//! The identifier checks a mapping rule can ask for with `check:` (`insurer_number`,
//! `insured_number`, `office_number`, `medical_institution_code`). Each is a thin call into
//! [`crate::identifiers`], which holds the one implementation of every rule (保険者番号 with its
//! check digit, 被保険者番号, 事業所番号, 医療機関コード), so a value passes or fails the mapping
//! exactly as it would the consent registry or a canonical document. In: a rule's text. Out: the
//! text the document carries (a `00`-padded 8-digit 保険者番号 becomes its 6 digits) or a
//! [`ValueError`] that keeps the value for its sender only.

use super::error::ValueError;
use crate::identifiers::{
    IdError, InsuredNumber, InsurerNumber, MedicalInstitutionCode, ProviderNumber,
};
use std::borrow::Cow;

/// An identifier rule a mapping can ask for with `check:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRule {
    /// 保険者番号: 6 digits, the last a check digit (or `00` + those 6: 証記載保険者番号).
    InsurerNumber,
    /// 被保険者番号: 10 digits or `H` + 9 digits.
    InsuredNumber,
    /// 介護保険事業所番号: 10 digits.
    OfficeNumber,
    /// 医療機関コード: 10 digits.
    MedicalInstitutionCode,
}

impl IdRule {
    /// Parses the name used in mapping files.
    pub fn parse(s: &str) -> Result<IdRule, String> {
        Ok(match s {
            "insurer_number" => IdRule::InsurerNumber,
            "insured_number" => IdRule::InsuredNumber,
            "office_number" => IdRule::OfficeNumber,
            "medical_institution_code" => IdRule::MedicalInstitutionCode,
            _ => {
                return Err(format!(
                    "unknown check `{s}`: use insurer_number, insured_number, office_number or medical_institution_code"
                ));
            }
        })
    }

    /// The name used in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            IdRule::InsurerNumber => "insurer_number",
            IdRule::InsuredNumber => "insured_number",
            IdRule::OfficeNumber => "office_number",
            IdRule::MedicalInstitutionCode => "medical_institution_code",
        }
    }

    /// Checks `v` and returns what the document carries; `Err` says what is wrong and names the
    /// check (the value itself for its sender only).
    pub fn check(self, v: &str) -> Result<Cow<'_, str>, ValueError> {
        let carried = match self {
            IdRule::InsurerNumber => InsurerNumber::parse(v).map(String::from),
            IdRule::InsuredNumber => InsuredNumber::parse(v).map(String::from),
            IdRule::OfficeNumber => ProviderNumber::parse(v).map(String::from),
            IdRule::MedicalInstitutionCode => MedicalInstitutionCode::parse(v).map(String::from),
        };
        match carried {
            Ok(text) if text == v => Ok(Cow::Borrowed(v)),
            Ok(text) => Ok(Cow::Owned(text)),
            Err(e) => Err(self.refusal(v, &e)),
        }
    }

    fn refusal(self, v: &str, e: &IdError) -> ValueError {
        let refused = ValueError::new(v, e.predicate()).and(&format!(" (check `{}`)", self.name()));
        match e.detail() {
            Some(detail) => refused.detail(detail),
            None => refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Disclose;

    #[test]
    fn a_wrong_check_digit_is_named() {
        let e = IdRule::InsurerNumber.check("435074").unwrap_err();
        let told = e.for_sender().to_string();
        assert!(told.contains("expected 3, found 4"), "{told}");
        assert!(told.contains("`435074`"), "{told}");
        // Which digit was expected says something about the number: the sender's only.
        assert_eq!(
            e.to_string(),
            "the value fails the 保険者番号 check digit (check `insurer_number`)"
        );
    }

    #[test]
    fn an_8_digit_medical_insurer_number_is_refused_naming_the_rule() {
        let e = IdRule::InsurerNumber.check("06132013").unwrap_err();
        let said = e.to_string();
        assert!(!said.contains("06132013"), "{said}");
        assert!(said.contains("`00`-padded 証記載保険者番号"), "{said}");
        assert!(said.contains("check `insurer_number`"), "{said}");
        assert_eq!(IdRule::InsurerNumber.check("00132019").unwrap(), "132019");
        assert!(matches!(
            IdRule::InsurerNumber.check("131011"),
            Ok(Cow::Borrowed("131011"))
        ));
    }

    #[test]
    fn full_width_digits_are_refused_not_guessed() {
        assert!(IdRule::InsurerNumber.check("４３５０７３").is_err());
    }

    #[test]
    fn insured_numbers_allow_the_h_form() {
        assert!(IdRule::InsuredNumber.check("0000012345").is_ok());
        assert!(IdRule::InsuredNumber.check("H123456789").is_ok());
        assert!(IdRule::InsuredNumber.check("H12345678X").is_err());
        assert!(IdRule::InsuredNumber.check("123").is_err());
    }

    #[test]
    fn every_rule_name_parses_back() {
        for rule in [
            IdRule::InsurerNumber,
            IdRule::InsuredNumber,
            IdRule::OfficeNumber,
            IdRule::MedicalInstitutionCode,
        ] {
            assert_eq!(IdRule::parse(rule.name()), Ok(rule));
        }
    }
}
