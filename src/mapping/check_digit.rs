//! Identifier rules of the 介護 domain (../shared/specs/identifiers-and-codes.md): 保険者番号 with
//! its modulus-10 (weights 2/1 from the right) check digit, 被保険者番号 (10 digits, or `H` + 9
//! digits for 生保単独), 事業所番号 and 医療機関コード (10 digits; their check digits are unverified,
//! so only the shape is checked). Pure functions; full-width digits must be normalised first.

use super::error::ValueError;

/// An identifier rule a mapping can ask for with `check:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRule {
    /// 保険者番号: 6 digits, the last a check digit (8-digit 医療 numbers are accepted too).
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

    /// Checks `v`; `Err` says what is wrong (the value itself for its sender only).
    pub fn check(self, v: &str) -> Result<(), ValueError> {
        match self {
            IdRule::InsurerNumber => check_insurer_number(v),
            IdRule::InsuredNumber => {
                let ok = v.len() == 10
                    && (v.bytes().all(|b| b.is_ascii_digit())
                        || (v.starts_with('H') && v[1..].bytes().all(|b| b.is_ascii_digit())));
                if ok {
                    Ok(())
                } else {
                    Err(ValueError::new(
                        v,
                        "is not a 被保険者番号: it must be 10 digits, or `H` and 9 digits",
                    ))
                }
            }
            IdRule::OfficeNumber | IdRule::MedicalInstitutionCode => {
                if v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(())
                } else {
                    let what = if self == IdRule::OfficeNumber {
                        "事業所番号"
                    } else {
                        "医療機関コード"
                    };
                    Err(ValueError::new(
                        v,
                        format!("is not a {what}: it must be 10 digits"),
                    ))
                }
            }
        }
    }
}

/// The check digit for the digits of `body` (modulus 10, weights 2,1,2,… from the right, products
/// replaced by their digit sums). `None` if `body` is not all ASCII digits.
pub fn insurer_check_digit(body: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, b) in body.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let p = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
        sum += p / 10 + p % 10;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// Checks a 保険者番号 (6 digits for 介護, 8 for 医療) including its check digit.
pub fn check_insurer_number(v: &str) -> Result<(), ValueError> {
    if !(v.len() == 6 || v.len() == 8) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new(
            v,
            "is not a 保険者番号: it must be 6 digits (介護) or 8 digits (医療)",
        ));
    }
    let (body, check) = v.split_at(v.len() - 1);
    let expected = insurer_check_digit(body).unwrap_or(255);
    if check.as_bytes()[0] - b'0' == expected {
        Ok(())
    } else {
        Err(ValueError::new(v, "fails the 保険者番号 check digit")
            .detail(format!("expected {expected}, found {check}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Disclose;

    #[test]
    fn worked_examples_from_the_spec_pass() {
        assert_eq!(insurer_check_digit("43507"), Some(3));
        assert!(check_insurer_number("435073").is_ok());
        assert!(check_insurer_number("33120015").is_ok());
        assert!(check_insurer_number("131011").is_ok());
    }

    #[test]
    fn a_wrong_check_digit_is_named() {
        let e = check_insurer_number("435074").unwrap_err();
        let told = e.for_sender().to_string();
        assert!(told.contains("expected 3, found 4"), "{told}");
        assert!(told.contains("`435074`"), "{told}");
        // Which digit was expected says something about the number: the sender's only.
        assert_eq!(e.to_string(), "the value fails the 保険者番号 check digit");
    }

    #[test]
    fn full_width_digits_are_refused_not_guessed() {
        assert!(check_insurer_number("４３５０７３").is_err());
    }

    #[test]
    fn insured_numbers_allow_the_h_form() {
        assert!(IdRule::InsuredNumber.check("0000012345").is_ok());
        assert!(IdRule::InsuredNumber.check("H123456789").is_ok());
        assert!(IdRule::InsuredNumber.check("H12345678X").is_err());
        assert!(IdRule::InsuredNumber.check("123").is_err());
    }
}
