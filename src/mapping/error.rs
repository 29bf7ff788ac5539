//! The two kinds of mapping error. `MappingError`: the file itself is wrong (found at load time,
//! `file:line:column: what`). `MapError`: a message does not fit the mapping (found at run time:
//! where in the message, which rule, where the rule is written, and why) — with the offending
//! value kept apart in a [`ValueError`], so that `Display` (logs, headers, side files) says
//! everything but the value, and only [`Disclose::for_sender`] says it too.

use super::plan::Loc;
use crate::calendar::wareki::DateError;
use crate::redact::{Disclose, ErrorText, Quoted};
use std::fmt;
use std::path::PathBuf;

/// A mistake in a mapping file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct MappingError {
    /// Where.
    pub loc: Loc,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl MappingError {
    /// An error at `file:line:column`.
    pub fn at(file: &std::path::Path, line: u32, column: u32, message: impl Into<String>) -> Self {
        MappingError {
            loc: Loc {
                file: PathBuf::from(file),
                line,
                column,
            },
            message: message.into(),
        }
    }
}

/// An input that a mapping cannot translate. `Display`: "`PID-7` at PID-7 (segment 3): the value
/// is not an HL7 date (…) (transform `date`) (rule `birth_date` in mappings/x.yaml:12:5)"; for the
/// sender the value is said: "… : `19480405x` is not an HL7 date …".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{reason} (rule `{rule}` in {loc})", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct MapError {
    /// The source location, e.g. "`PID-7` at PID-7 (segment 3)", "`生年月日` at record 57 (line
    /// 58), column 5", or the record, entry, element or segment a rule read from when the value
    /// has no place of its own ("record 57 (line 58)"): paths and positions, never a value.
    pub at: Option<String>,
    /// The rule's target key as written.
    pub rule: String,
    /// Where the rule is written.
    pub loc: Loc,
    /// Why.
    pub reason: Reason,
}

/// Something a mapping found in an input it translated that does not stop it: a `warn:` rule's
/// values (fields of a later interface revision, kept), or a CSV file whose record numbers or
/// stated count are off (`source.record_number`, `source.count`). Value-free: where, which rule
/// and what, never a value of the input. `Display`: "record 9 (line 9), column 41: 1 value kept:
/// after the last item … (rule `totals[+].extra_fields` in mappings/claims-statement.yaml:156:7)".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{text} (rule `{rule}` in {loc})", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct Warning {
    /// Where, e.g. "record 9 (line 9), column 41".
    pub at: Option<String>,
    /// The rule as written (`totals[+].extra_fields`, `source.record_number`).
    pub rule: String,
    /// Where the rule is written.
    pub loc: Loc,
    /// What was found, value-free.
    pub text: String,
}

impl Disclose for MapError {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        write!(
            f,
            "{} (rule `{}` in {})",
            self.reason.for_sender(),
            self.rule,
            self.loc
        )
    }
}

/// Why a rule failed: a value it refused, or something it did not find.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Reason {
    /// A value was refused (by a transform, a lookup, a check, a pattern or the target's type).
    #[error("{0}")]
    Value(Box<ValueError>),
    /// Nothing to refuse: a required value or item is missing.
    #[error("{0}")]
    Missing(String),
    /// The input lacks what the rule names (a CSV column by header name). `Display` is the
    /// input's shape only; the sender also reads the names the input has.
    #[error("{0}")]
    Structure(Box<ErrorText>),
}

impl Disclose for Reason {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Value(e) => e.fmt_for_sender(f),
            Reason::Missing(m) => f.write_str(m),
            Reason::Structure(t) => t.fmt_for_sender(f),
        }
    }
}

impl From<ValueError> for Reason {
    fn from(e: ValueError) -> Reason {
        Reason::Value(Box::new(e))
    }
}

impl MapError {
    /// The value the rule refused, if it refused one.
    pub fn value(&self) -> Option<&ValueError> {
        match &self.reason {
            Reason::Value(v) => Some(v),
            Reason::Missing(_) | Reason::Structure(_) => None,
        }
    }
}

/// A value a transform, lookup, check, pattern or target type refused. `Display` is value-free
/// ("the value is not a postal code (7 digits, e.g. 422-8033)"); the sender reads the value
/// ("`150-00Z1` is not a postal code (…)") and any detail that quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value {reason}")]
pub struct ValueError {
    /// The offending value.
    pub value: Quoted,
    /// What is wrong with it, as a predicate that names no part of it: "is not an HL7 date".
    pub reason: String,
    /// Words that quote or derive from the value ("expected 1, found 2"): for the sender only.
    pub detail: Option<Quoted>,
}

impl ValueError {
    /// `value` refused because it `reason` (a predicate that names no part of the value).
    pub fn new(value: &str, reason: impl Into<String>) -> ValueError {
        ValueError {
            value: Quoted::new(value),
            reason: reason.into(),
            detail: None,
        }
    }

    /// Adds words for the sender that quote or derive from the value.
    pub fn detail(mut self, detail: impl Into<String>) -> ValueError {
        self.detail = Some(Quoted::new(detail));
        self
    }

    /// Appends value-free words to the reason (e.g. which transform refused it).
    pub fn and(mut self, more: &str) -> ValueError {
        self.reason.push_str(more);
        self
    }
}

/// A date the calendar refused (`wareki`, `to_wareki`): the same value, rule and detail, so the
/// mapping's words are the calendar's.
impl From<DateError> for ValueError {
    fn from(e: DateError) -> ValueError {
        ValueError {
            value: e.value,
            reason: e.rule.to_string(),
            detail: e.detail,
        }
    }
}

impl Disclose for ValueError {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.value.reveal(), self.reason)?;
        if let Some(d) = &self.detail {
            write!(f, ": {}", d.reveal())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_said_to_its_sender_only() {
        let e = MapError {
            at: Some("`PID-7` at PID-7 (segment 3)".into()),
            rule: "birth_date".into(),
            loc: Loc {
                file: PathBuf::from("mappings/adt.yaml"),
                line: 12,
                column: 5,
            },
            reason: ValueError::new("19480405x", "is not an HL7 date")
                .and(" (transform `date`)")
                .into(),
        };
        let plain = e.to_string();
        assert_eq!(
            plain,
            "`PID-7` at PID-7 (segment 3): the value is not an HL7 date (transform `date`) (rule `birth_date` in mappings/adt.yaml:12:5)"
        );
        assert!(!format!("{e:?}").contains("19480405x"), "{e:?}");
        assert_eq!(
            e.for_sender().to_string(),
            "`PID-7` at PID-7 (segment 3): `19480405x` is not an HL7 date (transform `date`) (rule `birth_date` in mappings/adt.yaml:12:5)"
        );
        let v = ValueError::new("131012", "fails the 保険者番号 check digit")
            .detail("expected 1, found 2");
        assert_eq!(v.to_string(), "the value fails the 保険者番号 check digit");
        assert_eq!(
            v.for_sender().to_string(),
            "`131012` fails the 保険者番号 check digit: expected 1, found 2"
        );
    }

    #[test]
    fn a_calendar_refusal_reads_the_same_as_a_mapping_refusal() {
        let date = crate::calendar::wareki::to_iso("昭和64年1月8日").unwrap_err();
        let v = ValueError::from(date.clone());
        assert_eq!(v.to_string(), date.to_string());
        assert_eq!(v.to_string(), "the value is outside the era it names");
        assert_eq!(v.for_sender().to_string(), date.for_sender().to_string());
        assert_eq!(
            v.for_sender().to_string(),
            "`昭和64年1月8日` is outside the era it names: 昭和64年1月8日 is outside 昭和 (元号 code 3)"
        );
    }
}
