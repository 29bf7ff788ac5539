//! The identifiers of the 介護 domain, each a validated newtype with the one implementation of its
//! rule (../shared/specs/identifiers-and-codes.md §1–4): [`InsurerNumber`] 保険者番号 (6 digits with
//! a modulus-10 check digit), [`InsuredNumber`] 被保険者番号 (10 digits, or `H` + 9), [`ProviderNumber`]
//! 事業所番号 and [`MedicalInstitutionCode`] 医療機関コード (10 digits each), [`PartyId`], a party's
//! own code (one of those), and [`Subject`], the person as the platform knows them (保険者番号 +
//! 被保険者番号; one type for canonical documents and consents). Every door uses these: the mapping's `check:` rules, the canonical
//! documents' `subject`, the consent registry and its CSV and FHIR imports, and the audit log's
//! subject hash — so a value is accepted or refused alike wherever it arrives.
//!
//! In: text. Out: the value as it is carried (a `00`-padded 8-digit 保険者番号 becomes its 6 digits),
//! or an [`IdError`] that names the identifier and the rule it breaks. Never guesses: full-width
//! digits are refused (convert them before), and an error never echoes a 被保険者番号.

use crate::validated::validated_string;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a text is not one of this module's identifiers. The variant names the identifier and the
/// rule; the caller says where the text was found. `Display` never echoes a 被保険者番号.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("保険者番号 (insurer number) must be 6 ASCII digits, found {found_chars} characters")]
    InsurerNumberLength { found_chars: usize },
    #[error(
        "保険者番号 (insurer number) character {position} is not an ASCII digit 0-9 \
         (convert full-width digits before sending)"
    )]
    InsurerNumberNotDigit { position: usize },
    #[error(
        "保険者番号 (insurer number) has 8 digits but does not start with `00`: a 介護 保険者番号 is \
         6 digits, and 8 digits are accepted only as the `00`-padded 証記載保険者番号 (an 8-digit \
         医療 保険者番号 names no 介護 insurer)"
    )]
    InsurerNumberNotPadded,
    #[error(
        "保険者番号 (insurer number) `{value}` fails its check digit: the last digit is {found}, \
         the first five digits give {expected}"
    )]
    InsurerNumberCheckDigit {
        value: String,
        found: u8,
        expected: u8,
    },
    #[error(
        "被保険者番号 (insured number) must be 10 characters (10 digits, or `H` and 9 digits), \
         found {found_chars}"
    )]
    InsuredNumberLength { found_chars: usize },
    #[error(
        "被保険者番号 (insured number) character {position} is not an ASCII digit 0-9 \
         (only the first may be `H`; convert full-width digits before sending)"
    )]
    InsuredNumberNotDigit { position: usize },
    #[error("事業所番号 (provider number) must be 10 ASCII digits, found {found_chars} characters")]
    ProviderNumberLength { found_chars: usize },
    #[error("事業所番号 (provider number) character {position} is not an ASCII digit 0-9")]
    ProviderNumberNotDigit { position: usize },
    #[error(
        "医療機関コード (medical institution code) must be 10 ASCII digits, found {found_chars} \
         characters"
    )]
    MedicalInstitutionCodeLength { found_chars: usize },
    #[error(
        "医療機関コード (medical institution code) character {position} is not an ASCII digit 0-9"
    )]
    MedicalInstitutionCodeNotDigit { position: usize },
    #[error(
        "party id must be a 10-digit 医療機関コード / 事業所番号 or a 6-digit 保険者番号, \
         found {found_chars} characters"
    )]
    PartyIdLength { found_chars: usize },
    #[error("party id character {position} is not an ASCII digit 0-9")]
    PartyIdNotDigit { position: usize },
}

impl IdError {
    /// What is wrong, as a predicate that quotes no part of the value ("fails the 保険者番号 check
    /// digit"), for errors whose value is kept apart (the mapping's).
    pub fn predicate(&self) -> String {
        match self {
            IdError::InsurerNumberCheckDigit { .. } => "fails the 保険者番号 check digit".into(),
            other => format!("is refused: {other}"),
        }
    }

    /// Words that derive from the value ("expected 3, found 4"): for its sender only.
    pub fn detail(&self) -> Option<String> {
        match self {
            IdError::InsurerNumberCheckDigit {
                found, expected, ..
            } => Some(format!("expected {expected}, found {found}")),
            _ => None,
        }
    }
}

validated_string!(
    /// 保険者番号 — the 介護保険 insurer (a municipality or a 広域連合): 6 ASCII digits, the last a
    /// modulus-10 check digit (identifiers-and-codes §1; that the 医療 rule is the 介護 rule is
    /// unverified, but it reproduces real 介護 numbers). 8 digits are accepted only as the
    /// `00`-padded 証記載保険者番号 of the claims files, and carried as its 6 digits; any other
    /// 8-digit value (an 医療 保険者番号 such as `06132013`) is refused.
    InsurerNumber,
    check_insurer_number,
    IdError
);
validated_string!(
    /// 被保険者番号 — the insured person's number: 10 ASCII digits, or `H` and 9 digits for a
    /// 生活保護-only recipient. No check digit is published for it (unverified), so none is tested.
    InsuredNumber,
    check_insured_number,
    IdError
);
validated_string!(
    /// 介護保険事業所番号 — a care provider's number: 10 ASCII digits. Its check digit is described
    /// only by third parties (unverified, never tested against real numbers), so only the shape is
    /// checked, as before.
    ProviderNumber,
    check_provider_number,
    IdError
);
validated_string!(
    /// 医療機関コード — 都道府県番号 (2) + 点数表番号 (1) + 7 digits, 10 ASCII digits in all. The
    /// check digit of the 7-digit part is unverified, so only the shape is checked, as before.
    MedicalInstitutionCode,
    check_medical_institution_code,
    IdError
);
validated_string!(
    /// A party's own code: 医療機関コード or 事業所番号 (10 digits) or 保険者番号 (6 digits with its
    /// check digit; a party id is never padded).
    PartyId,
    check_party_id,
    IdError
);

/// 被保険者 — whom a document is about, as the platform knows the person.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// 保険者番号 — the insurer (municipality) number, 6 digits with a check digit.
    pub insurer_number: InsurerNumber,
    /// 被保険者番号 — the insured person's number, 10 characters (`H` + 9 digits for 生保単独).
    pub insured_number: InsuredNumber,
}

impl Subject {
    /// Validates both numbers; the error names which one is wrong and why.
    pub fn new(insurer_number: &str, insured_number: &str) -> Result<Self, IdError> {
        Ok(Self {
            insurer_number: InsurerNumber::parse(insurer_number)?,
            insured_number: InsuredNumber::parse(insured_number)?,
        })
    }
}

/// Modulus-10 check digit of a 保険者番号 body: weights 2, 1, 2, … from the rightmost body digit,
/// each product replaced by the sum of its digits, check = (10 − sum mod 10) mod 10. `None` if
/// `body` is not all ASCII digits.
pub fn insurer_check_digit(body: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, byte) in body.bytes().rev().enumerate() {
        if !byte.is_ascii_digit() {
            return None;
        }
        let digit = u32::from(byte - b'0');
        let product = if i % 2 == 0 { digit * 2 } else { digit };
        sum += product / 10 + product % 10;
    }
    Some(((10 - sum % 10) % 10) as u8)
}

/// 1-based position of the first character that is not an ASCII digit.
fn first_non_digit(text: &str) -> Option<usize> {
    text.chars()
        .position(|c| !c.is_ascii_digit())
        .map(|i| i + 1)
}

/// The 保険者番号 rule; returns the 6 digits it carries.
fn check_insurer_number(text: &str) -> Result<&str, IdError> {
    if let Some(position) = first_non_digit(text) {
        return Err(IdError::InsurerNumberNotDigit { position });
    }
    let six = match text.len() {
        6 => text,
        8 => text
            .strip_prefix("00")
            .ok_or(IdError::InsurerNumberNotPadded)?,
        found_chars => return Err(IdError::InsurerNumberLength { found_chars }),
    };
    let (body, last) = six.split_at(5);
    let expected = insurer_check_digit(body).unwrap_or(u8::MAX);
    let found = last.as_bytes()[0] - b'0';
    if expected != found {
        return Err(IdError::InsurerNumberCheckDigit {
            value: six.to_owned(),
            found,
            expected,
        });
    }
    Ok(six)
}

fn check_insured_number(text: &str) -> Result<&str, IdError> {
    let found_chars = text.chars().count();
    let digits = text.strip_prefix('H').unwrap_or(text);
    let offset = text.len() - digits.len();
    if let Some(position) = first_non_digit(digits) {
        return Err(IdError::InsuredNumberNotDigit {
            position: position + offset,
        });
    }
    if found_chars != 10 {
        return Err(IdError::InsuredNumberLength { found_chars });
    }
    Ok(text)
}

/// Ten ASCII digits, or the error `not_digit` / `length` makes.
fn ten_digits(
    text: &str,
    not_digit: fn(usize) -> IdError,
    length: fn(usize) -> IdError,
) -> Result<&str, IdError> {
    if let Some(position) = first_non_digit(text) {
        return Err(not_digit(position));
    }
    if text.len() != 10 {
        return Err(length(text.len()));
    }
    Ok(text)
}

fn check_provider_number(text: &str) -> Result<&str, IdError> {
    ten_digits(
        text,
        |position| IdError::ProviderNumberNotDigit { position },
        |found_chars| IdError::ProviderNumberLength { found_chars },
    )
}

fn check_medical_institution_code(text: &str) -> Result<&str, IdError> {
    ten_digits(
        text,
        |position| IdError::MedicalInstitutionCodeNotDigit { position },
        |found_chars| IdError::MedicalInstitutionCodeLength { found_chars },
    )
}

fn check_party_id(text: &str) -> Result<&str, IdError> {
    if let Some(position) = first_non_digit(text) {
        return Err(IdError::PartyIdNotDigit { position });
    }
    match text.len() {
        6 => check_insurer_number(text),
        10 => Ok(text),
        found_chars => Err(IdError::PartyIdLength { found_chars }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_the_spec_pass() {
        assert_eq!(insurer_check_digit("43507"), Some(3));
        assert_eq!(insurer_check_digit("3312001"), Some(5));
        assert_eq!(insurer_check_digit("43５07"), None);
        assert!(InsurerNumber::parse("435073").is_ok());
        assert!(InsurerNumber::parse("131011").is_ok());
        assert_eq!(
            InsurerNumber::parse("435074"),
            Err(IdError::InsurerNumberCheckDigit {
                value: "435074".into(),
                found: 4,
                expected: 3
            })
        );
    }

    #[test]
    fn an_8_digit_insurer_number_is_carried_as_its_6_digits_only_when_padded_with_00() {
        let padded = InsurerNumber::parse("00132019").expect("padded 証記載保険者番号");
        assert_eq!(padded.as_str(), "132019");
        let from_json: InsurerNumber = serde_json::from_str("\"00132019\"").expect("padded");
        assert_eq!(from_json, padded);
        // A valid 8-digit 医療 保険者番号 (its own check digit holds) names no 介護 insurer.
        assert_eq!(insurer_check_digit("0613201"), Some(3));
        assert_eq!(
            InsurerNumber::parse("06132013"),
            Err(IdError::InsurerNumberNotPadded)
        );
        assert!(matches!(
            InsurerNumber::parse("00132018"),
            Err(IdError::InsurerNumberCheckDigit { found: 8, .. })
        ));
        assert_eq!(
            InsurerNumber::parse("1310111"),
            Err(IdError::InsurerNumberLength { found_chars: 7 })
        );
    }

    #[test]
    fn full_width_digits_are_refused_not_guessed() {
        assert_eq!(
            InsurerNumber::parse("４３５０７３"),
            Err(IdError::InsurerNumberNotDigit { position: 1 })
        );
        assert_eq!(
            InsuredNumber::parse("000000000１"),
            Err(IdError::InsuredNumberNotDigit { position: 10 })
        );
    }

    #[test]
    fn insured_numbers_allow_the_h_form_and_errors_never_echo_them() {
        assert!(InsuredNumber::parse("0000012345").is_ok());
        assert!(InsuredNumber::parse("H123456789").is_ok());
        assert_eq!(
            InsuredNumber::parse("h123456789"),
            Err(IdError::InsuredNumberNotDigit { position: 1 })
        );
        let err = InsuredNumber::parse("98765X4321").expect_err("letter");
        assert!(!err.to_string().contains("98765"), "{err}");
        assert!(!err.predicate().contains("98765"), "{err}");
    }

    #[test]
    fn ten_digit_codes_check_their_shape_only() {
        assert!(ProviderNumber::parse("0300000100").is_ok());
        assert!(MedicalInstitutionCode::parse("1312345678").is_ok());
        assert_eq!(
            ProviderNumber::parse("030000010"),
            Err(IdError::ProviderNumberLength { found_chars: 9 })
        );
        assert_eq!(
            MedicalInstitutionCode::parse("13123X5678"),
            Err(IdError::MedicalInstitutionCodeNotDigit { position: 6 })
        );
    }

    #[test]
    fn a_party_id_is_a_10_digit_code_or_an_unpadded_insurer_number() {
        assert!(PartyId::parse("1312345678").is_ok());
        assert!(PartyId::parse("131011").is_ok());
        assert!(PartyId::parse("131012").is_err());
        assert_eq!(
            PartyId::parse("00131011"),
            Err(IdError::PartyIdLength { found_chars: 8 })
        );
    }

    #[test]
    fn the_check_digit_error_keeps_its_digits_for_the_sender() {
        let e = InsurerNumber::parse("435074").expect_err("wrong digit");
        assert_eq!(e.predicate(), "fails the 保険者番号 check digit");
        assert_eq!(e.detail().as_deref(), Some("expected 3, found 4"));
    }

    #[test]
    fn invalid_subjects_are_refused_at_construction_with_the_reason() {
        assert_eq!(
            Subject::new("13101", "0000000001"),
            Err(IdError::InsurerNumberLength { found_chars: 5 })
        );
        assert_eq!(
            Subject::new("１３１０１１", "0000000001"),
            Err(IdError::InsurerNumberNotDigit { position: 1 })
        );
        assert!(matches!(
            Subject::new("435074", "0000000001"),
            Err(IdError::InsurerNumberCheckDigit { .. })
        ));
        assert_eq!(
            Subject::new("131011", "000000001"),
            Err(IdError::InsuredNumberLength { found_chars: 9 })
        );
        assert_eq!(
            Subject::new("131011", "00000X0001"),
            Err(IdError::InsuredNumberNotDigit { position: 6 })
        );
        assert_eq!(
            Subject::new("131011", "h123456789"),
            Err(IdError::InsuredNumberNotDigit { position: 1 })
        );
        assert!(Subject::new("131011", "H123456789").is_ok());
    }

    #[test]
    fn subject_errors_do_not_echo_the_insured_number() {
        let err = Subject::new("131011", "98765X4321").expect_err("letter in number");
        assert!(!err.to_string().contains("98765"), "{err}");
    }

    #[test]
    fn subject_from_json_is_validated() {
        let bad = r#"{"insurer_number":"435074","insured_number":"0000000001"}"#;
        let err = serde_json::from_str::<Subject>(bad).expect_err("bad check digit");
        assert!(err.to_string().contains("check digit"), "{err}");
    }
}
