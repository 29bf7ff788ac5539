//! The calendar, in one place: the Gregorian month-length rule (leap years, the days of each
//! month) used by every part that checks a date (the audit log's timestamps, ケアプラン CSV file
//! names, the mapping's 和暦 and ISO dates, consent periods), so a day is real or not alike
//! everywhere; [`wareki`], 和暦 ⇄ 西暦; and `timestamp`, the one reader of ISO 8601 dates and
//! date-times (the audit log's strict UTC `Timestamp`, consent's dates and times). Formats with
//! a layout of their own (a ケアプラン file name's `YYYYMMDDhhmmss`) read their text and ask
//! this module whether the day is real.

mod timestamp;
pub mod wareki;
pub use timestamp::{
    DateTime, DateTimeError, DateTimeKind, TimeOfDay, Timestamp, TimestampError, Zone,
    parse_date_only, parse_date_time,
};

/// A Gregorian leap year: divisible by 4, except centuries not divisible by 400.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`; 0 for a month that does not exist, so that no day fits it.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The civil date (year, month 1–12, day 1–31) of a day counted from 1970-01-01 (Howard
/// Hinnant's algorithm), for writing a clock's time as a date.
pub fn date_of_day(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_1970_are_dated_right_around_leap_years() {
        assert_eq!(date_of_day(0), (1970, 1, 1));
        assert_eq!(date_of_day(11_016), (2000, 2, 29));
        assert_eq!(date_of_day(20_513), (2026, 3, 1));
        assert_eq!(date_of_day(-1), (1969, 12, 31));
    }

    #[test]
    fn february_has_29_days_in_leap_years_only() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(-4, 2), 29);
    }

    #[test]
    fn months_have_their_lengths_and_month_13_has_none() {
        let lengths: Vec<u32> = (1..=12).map(|m| days_in_month(2025, m)).collect();
        assert_eq!(lengths, [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
        assert_eq!(days_in_month(2025, 0), 0);
        assert_eq!(days_in_month(2025, 13), 0);
    }
}
