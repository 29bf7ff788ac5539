//! The one reading of a date and time written `YYYY-MM-DD[Thh:mm:ss[.fraction](Z|±hh:mm)]`: each
//! part range-checked, the day checked against its month ([`days_in_month`]).
//!
//! In: text. Out: its [`DateTime`] parts, or a [`DateTimeError`] saying which part is wrong and what
//! was expected. Two kinds of value are made from it: the audit log's [`Timestamp`], a full UTC
//! instant (`Z` only, at most 9 fraction digits) ordered by the instant it names; and consent's
//! recorded time (`consent::Timestamp`), which may be a bare date or carry an offset and is never
//! compared. Neither echoes more than 40 characters of a time, and a time is not personal data.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::days_in_month;

/// A date and maybe a time of day, each part range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// 0001–9999.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1 to the last day of the month.
    pub day: u8,
    /// The time after `T`, if any.
    pub time: Option<TimeOfDay>,
}

/// `hh:mm:ss[.fraction]` and its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–60 (a leap second).
    pub second: u8,
    /// How many fraction digits were written (0 without a `.`).
    pub fraction_digits: usize,
    /// The fraction in nanoseconds, from its first 9 digits.
    pub nanos: u32,
    /// `Z` or an offset.
    pub zone: Zone,
}

/// The zone of a time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// `Z`.
    Utc,
    /// `±hh:mm` (hours up to 14), in minutes east of UTC.
    Offset(i16),
}

/// Which part of a date-time is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeKind {
    /// The date is not `YYYY-MM-DD` in ASCII digits.
    DateShape,
    /// The date is shaped right but is not a day of the calendar (year 0, month 13, 30 February).
    NotInCalendar,
    /// What follows the date is not `Thh:mm:ss[.fraction]` in range (or the text is too short).
    TimeShape,
    /// The zone is neither `Z` nor `±hh:mm`.
    Zone,
}

/// Text that is not a date-time: which part, and what was expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeError {
    /// Which part.
    pub kind: DateTimeKind,
    /// What was expected, e.g. `a 2-digit month`.
    pub expected: &'static str,
}

fn fail<T>(kind: DateTimeKind, expected: &'static str) -> Result<T, DateTimeError> {
    Err(DateTimeError { kind, expected })
}

/// The ASCII digits of `bytes` as a number, `None` if any is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Read `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`.
pub fn parse_date_time(text: &str) -> Result<DateTime, DateTimeError> {
    let b = text.as_bytes();
    if b.len() < 10 {
        return fail(
            DateTimeKind::TimeShape,
            "YYYY-MM-DD (at least 10 characters)",
        );
    }
    let (year, month, day) = parse_date(&b[..10])?;
    let time = if b.len() == 10 {
        None
    } else {
        Some(parse_time(&b[10..])?)
    };
    Ok(DateTime {
        year,
        month,
        day,
        time,
    })
}

/// Read `YYYY-MM-DD` (exactly) as year, month and day.
pub fn parse_date_only(text: &str) -> Result<(u16, u8, u8), DateTimeError> {
    if text.len() != 10 {
        return fail(DateTimeKind::DateShape, "YYYY-MM-DD");
    }
    parse_date(text.as_bytes())
}

fn parse_date(b: &[u8]) -> Result<(u16, u8, u8), DateTimeError> {
    let shape = DateTimeKind::DateShape;
    let year = digits(&b[0..4]).ok_or(DateTimeError {
        kind: shape,
        expected: "a 4-digit year",
    })?;
    let month = digits(&b[5..7]).ok_or(DateTimeError {
        kind: shape,
        expected: "a 2-digit month",
    })?;
    let day = digits(&b[8..10]).ok_or(DateTimeError {
        kind: shape,
        expected: "a 2-digit day",
    })?;
    if b[4] != b'-' || b[7] != b'-' {
        return fail(shape, "YYYY-MM-DDTHH:MM:SS with `-`, `T` and `:`");
    }
    if year == 0 || !(1..=12).contains(&month) {
        return fail(
            DateTimeKind::NotInCalendar,
            "a year from 0001 and a month 01-12",
        );
    }
    if day == 0 || day > days_in_month(i64::from(year), month) {
        return fail(
            DateTimeKind::NotInCalendar,
            "a day that exists in that month",
        );
    }
    // Each part is range-checked above, so these narrowings cannot truncate.
    Ok((year as u16, month as u8, day as u8))
}

/// Read `Thh:mm:ss[.fraction](Z|±hh:mm)`.
fn parse_time(b: &[u8]) -> Result<TimeOfDay, DateTimeError> {
    let shape = DateTimeKind::TimeShape;
    if b.len() < 9 {
        return fail(shape, "YYYY-MM-DDTHH:MM:SS after the date");
    }
    let part = |range: std::ops::Range<usize>, expected| {
        digits(&b[range]).ok_or(DateTimeError {
            kind: shape,
            expected,
        })
    };
    let hour = part(1..3, "a 2-digit hour")?;
    let minute = part(4..6, "a 2-digit minute")?;
    let second = part(7..9, "2-digit seconds")?;
    if b[0] != b'T' || b[3] != b':' || b[6] != b':' {
        return fail(shape, "YYYY-MM-DDTHH:MM:SS with `-`, `T` and `:`");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return fail(shape, "a time from 00:00:00 to 23:59:60");
    }
    let (fraction_digits, nanos, zone) = match b[9..].split_first() {
        Some((b'.', rest)) => {
            let count = rest.iter().take_while(|d| d.is_ascii_digit()).count();
            if count == 0 {
                return fail(shape, "1 to 9 digits of fraction after `.`");
            }
            let first = count.min(9);
            let nanos = digits(&rest[..first]).unwrap_or(0) * 10u32.pow(9 - first as u32);
            (count, nanos, &rest[count..])
        }
        _ => (0, 0, &b[9..]),
    };
    Ok(TimeOfDay {
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        fraction_digits,
        nanos,
        zone: parse_zone(zone)?,
    })
}

/// Read `Z` or `±hh:mm` (hh up to 14, mm up to 59).
fn parse_zone(b: &[u8]) -> Result<Zone, DateTimeError> {
    let two = |bytes: &[u8], max: u32| digits(bytes).filter(|v| *v <= max);
    match b {
        b"Z" => Ok(Zone::Utc),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            match (two(&[*h1, *h2], 14), two(&[*m1, *m2], 59)) {
                (Some(h), Some(m)) => {
                    // At most 14 * 60 + 59, so it fits.
                    let minutes = (h * 60 + m) as i16;
                    Ok(Zone::Offset(if *sign == b'-' { -minutes } else { minutes }))
                }
                _ => fail(DateTimeKind::Zone, "`Z` or an offset ±hh:mm"),
            }
        }
        _ => fail(DateTimeKind::Zone, "`Z` or an offset ±hh:mm"),
    }
}

/// An RFC 3339 instant in UTC (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`), kept as given and ordered by the
/// instant it names (so `…:00.5Z` sorts after `…:00Z`, which plain string order gets wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    text: String,
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
        if text.len() < 20 {
            return Err(err("YYYY-MM-DDTHH:MM:SSZ (at least 20 characters)"));
        }
        let parts = parse_date_time(text).map_err(|e| match e.kind {
            DateTimeKind::Zone => err(UTC_ONLY),
            _ => err(e.expected),
        })?;
        let time = parts.time.ok_or(err(UTC_ONLY))?;
        if time.fraction_digits > 9 {
            return Err(err("1 to 9 digits of fraction after `.`"));
        }
        if time.zone != Zone::Utc {
            return Err(err(UTC_ONLY));
        }
        let key = (
            parts.year,
            parts.month,
            parts.day,
            time.hour,
            time.minute,
            time.second,
            time.nanos,
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

    /// The text as given, owned.
    pub fn into_string(self) -> String {
        self.text
    }
}

const UTC_ONLY: &str = "UTC, written as a final `Z` (convert offsets before auditing)";

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
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("test timestamp is valid")
    }

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

    #[test]
    fn each_fault_names_what_was_expected_there() {
        let expected = |text: &str| Timestamp::parse(text).map(|_| ()).map_err(|e| e.expected);
        assert_eq!(expected("2025-0a-01T09:30:00Z"), Err("a 2-digit month"));
        assert_eq!(
            expected("2025-02-30T09:30:00Z"),
            Err("a day that exists in that month")
        );
        assert_eq!(expected("2025-04-01T09:3x:00Z"), Err("a 2-digit minute"));
        assert_eq!(expected("2025-04-01T09:30:00+09:00"), Err(UTC_ONLY));
        assert_eq!(
            expected("2025-04-01T09:30:00.Z"),
            Err("1 to 9 digits of fraction after `.`")
        );
    }

    #[test]
    fn a_date_time_may_be_a_bare_date_or_carry_an_offset() {
        let parts = parse_date_time("2024-04-01").expect("a bare date");
        assert_eq!(
            (parts.year, parts.month, parts.day, parts.time),
            (2024, 4, 1, None)
        );
        let time = parse_date_time("2024-04-01T09:30:00.1234567891-09:30")
            .expect("offset and long fraction")
            .time
            .expect("has a time");
        assert_eq!(time.zone, Zone::Offset(-570));
        assert_eq!((time.fraction_digits, time.nanos), (10, 123_456_789));
        let kind = |text: &str| parse_date_time(text).map(|_| ()).map_err(|e| e.kind);
        assert_eq!(kind("2024/04/01"), Err(DateTimeKind::DateShape));
        assert_eq!(kind("2024-4-01"), Err(DateTimeKind::TimeShape));
        assert_eq!(
            parse_date_only("2024-4-01").map_err(|e| e.kind),
            Err(DateTimeKind::DateShape)
        );
        assert_eq!(kind("2023-02-29"), Err(DateTimeKind::NotInCalendar));
        assert_eq!(kind("2024-04-01T09:30+09:00"), Err(DateTimeKind::TimeShape));
        assert_eq!(kind("2024-04-01T09:30:00"), Err(DateTimeKind::Zone));
        assert_eq!(kind("2024-04-01T09:30:00+15:00"), Err(DateTimeKind::Zone));
    }
}
