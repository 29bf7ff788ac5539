//! The audit log's time: an RFC 3339 instant in UTC, kept as given and ordered by the instant it
//! names.
//!
//! In: text such as `2025-04-01T09:30:00.123Z`. Out: a [`Timestamp`], or a [`TimestampError`]
//! saying what was expected (it quotes at most 40 characters of a time, which is not personal data).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// An RFC 3339 instant in UTC (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`), kept as given and ordered by the
/// instant it names (so `…:00.5Z` sorts after `…:00Z`, which plain string order gets wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub(super) text: String,
    key: (u16, u8, u8, u8, u8, u8, u32),
}

impl Timestamp {
    /// Parse `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`; uppercase `T` and `Z` only, so one instant has one
    /// spelling per precision and the value is a valid FHIR `instant`.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let err = |expected: &'static str| TimestampError {
            value: text.chars().take(40).collect(),
            expected,
        };
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(err("YYYY-MM-DDTHH:MM:SSZ (at least 20 characters)"));
        }
        let num = |range: std::ops::Range<usize>, what: &'static str| -> Result<u32, _> {
            let digits = &b[range];
            if digits.iter().all(u8::is_ascii_digit) {
                Ok(digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
            } else {
                Err(err(what))
            }
        };
        let year = num(0..4, "a 4-digit year")?;
        let month = num(5..7, "a 2-digit month")?;
        let day = num(8..10, "a 2-digit day")?;
        let hour = num(11..13, "a 2-digit hour")?;
        let minute = num(14..16, "a 2-digit minute")?;
        let second = num(17..19, "2-digit seconds")?;
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(err("YYYY-MM-DDTHH:MM:SS with `-`, `T` and `:`"));
        }
        if year == 0 || !(1..=12).contains(&month) {
            return Err(err("a year from 0001 and a month 01-12"));
        }
        if day == 0 || day > crate::calendar::days_in_month(i64::from(year), month) {
            return Err(err("a day that exists in that month"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(err("a time from 00:00:00 to 23:59:60"));
        }
        let rest = &b[19..];
        let (fraction, zone) = match rest.first() {
            Some(b'.') => {
                let digits = rest[1..].iter().take_while(|d| d.is_ascii_digit()).count();
                if digits == 0 || digits > 9 {
                    return Err(err("1 to 9 digits of fraction after `.`"));
                }
                let mut nanos = num(20..20 + digits, "fraction digits")?;
                for _ in digits..9 {
                    nanos *= 10;
                }
                (nanos, &rest[1 + digits..])
            }
            _ => (0, rest),
        };
        if zone != b"Z" {
            return Err(err(
                "UTC, written as a final `Z` (convert offsets before auditing)",
            ));
        }
        // Each component is range-checked above, so these narrowings cannot truncate.
        let key = (
            year as u16,
            month as u8,
            day as u8,
            hour as u8,
            minute as u8,
            second as u8,
            fraction,
        );
        Ok(Timestamp {
            text: text.to_string(),
            key,
        })
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

/// A time that is not an RFC 3339 UTC instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an RFC 3339 UTC time: expected {expected}, e.g. 2025-04-01T09:30:00Z")]
pub struct TimestampError {
    /// The value given (first 40 characters).
    pub value: String,
    /// What was expected at the first point of difference.
    pub expected: &'static str,
}

#[cfg(test)]
mod tests {
    use super::super::tests::ts;
    use super::*;

    #[test]
    fn timestamps_parse_strictly_and_order_by_instant() {
        for good in [
            "2025-04-01T09:30:00Z",
            "2024-02-29T23:59:60Z",
            "2025-04-01T09:30:00.123456789Z",
        ] {
            assert!(Timestamp::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "2025-04-01T09:30:00+09:00",
            "2025-04-01 09:30:00Z",
            "2025-04-01t09:30:00z",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-04-01T24:00:00Z",
            "2025-04-01T09:30:00.Z",
            "2025-04-01T09:30:00.1234567890Z",
            "2025-04-01",
            "２０２５-04-01T09:30:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert!(ts("2025-04-01T09:30:00.5Z") > ts("2025-04-01T09:30:00Z"));
        assert!(ts("2025-04-01T09:30:00.5Z") < ts("2025-04-01T09:30:01Z"));
        assert_eq!(
            ts("2025-04-01T09:30:00.5Z").cmp(&ts("2025-04-01T09:30:00.500Z")),
            Ordering::Equal
        );
    }
}
