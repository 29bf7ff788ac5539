//! 和暦 ⇄ 西暦 for dates in Japanese forms and interfaces: 元号 codes 1–5 (明治, 大正, 昭和,
//! 平成, 令和) as in `GYYMMDD` (`3230405` = 昭和23年4月5日), kanji forms (`昭和23年4月5日`,
//! `平成元年1月8日`, full-width digits allowed) and letter forms (`S23.4.5`, `H01.01.08`). A date
//! outside its era (昭和64年1月8日, 平成31年5月1日) is an error, never silently shifted. Partial
//! dates as forms allow them for an onset (`令和05年06月`, `平成22年`, `不詳`) are read by
//! [`to_iso_partial`] into an ISO date of the same precision (`2023-06`, `2010`) or none. An ISO
//! 西暦 date (`1948-04-05`) is checked and passed through, so a field that a source fills in
//! either calendar (生年月日 with a 和暦/西暦 flag) needs one rule. In: text; out: ISO or 和暦 text,
//! or a [`DateError`] that names the rule broken and keeps the offending text apart (its
//! `Display` never says it; see `crate::redact`). The caller (the mapping's `wareki` and
//! `to_wareki` transforms) says where the text was found.

use super::{DateTimeKind, days_in_month, parse_date_only};
use crate::redact::{Disclose, Quoted};
use std::fmt;

/// The rule a date text breaks, as a predicate that quotes no part of it ("is not a real date").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateRule {
    /// The numbers name no day of the Gregorian calendar (month 13, 2023-02-29).
    #[error("is not a real date")]
    NotReal,
    /// None of the 和暦 forms, nor an ISO date.
    #[error("is not a 和暦 date (expected e.g. `3230405`, `昭和23年4月5日` or `S23.04.05`)")]
    NotWareki,
    /// An era year 0 (`昭和0年…`): the first year of an era is 元年, year 1.
    #[error("names era year 0: era years start at 1 (元年)")]
    EraYearZero,
    /// A real day, but not within the era named (昭和64年1月8日 is 平成元年1月8日).
    #[error("is outside the era it names")]
    OutsideEra,
    /// Not `YYYY-MM-DD`, or no such day.
    #[error("is not an ISO date YYYY-MM-DD")]
    NotIso,
    /// Before the first era this module knows.
    #[error("is before 明治 (1868-01-25)")]
    BeforeMeiji,
}

/// A date text the calendar refuses. `Display` is value-free ("the value is outside the era it
/// names"); [`Disclose::for_sender`] adds the text and any detail that quotes it ("`昭和64年1月8日`
/// is outside the era it names: 昭和64年1月8日 is outside 昭和 (元号 code 3)").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value {rule}")]
pub struct DateError {
    /// The offending text.
    pub value: Quoted,
    /// Which rule it breaks.
    pub rule: DateRule,
    /// Words that quote or derive from the text: for the sender only.
    pub detail: Option<Quoted>,
}

impl DateError {
    fn new(value: &str, rule: DateRule) -> DateError {
        DateError {
            value: Quoted::new(value),
            rule,
            detail: None,
        }
    }

    fn detail(mut self, detail: String) -> DateError {
        self.detail = Some(Quoted::new(detail));
        self
    }
}

impl Disclose for DateError {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.value.reveal(), self.rule)?;
        if let Some(d) = &self.detail {
            write!(f, ": {}", d.reveal())?;
        }
        Ok(())
    }
}

/// A Gregorian date as (year, month, day).
type Ymd = (i32, u32, u32);

/// (元号 code, kanji, letter, first day).
const ERAS: [(u8, &str, char, Ymd); 5] = [
    (1, "明治", 'M', (1868, 1, 25)),
    (2, "大正", 'T', (1912, 7, 30)),
    (3, "昭和", 'S', (1926, 12, 25)),
    (4, "平成", 'H', (1989, 1, 8)),
    (5, "令和", 'R', (2019, 5, 1)),
];

fn era_index_by_code(code: u8) -> Option<usize> {
    ERAS.iter().position(|e| e.0 == code)
}

/// The text trimmed, with full-width digits made ASCII.
fn normalize(input: &str) -> String {
    input
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// How precise a date must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// A whole date (year, month and day).
    Day,
    /// A whole date, a year and month, or a year; `不詳` (unknown) is no date.
    Partial,
}

/// Converts a 和暦 date that may be partial, as forms allow for an onset (発症年月日, written
/// with 頃): `令和05年06月` → `2023-06`, `平成22年` → `2010`, `令和05年06月12日` → `2023-06-12`;
/// ISO `YYYY` and `YYYY-MM` pass checked. `不詳` (unknown) and empty text are `Ok(None)`. A
/// trailing 頃 (approximately) is read past: whether a date is approximate is the form's to say.
pub fn to_iso_partial(input: &str) -> Result<Option<String>, DateError> {
    let norm = normalize(input);
    let norm = norm.strip_suffix('頃').unwrap_or(&norm).trim_end();
    if norm.is_empty() || norm == "不詳" {
        return Ok(None);
    }
    if let Some(iso) = iso_partial(norm) {
        return iso.map(Some).map_err(|rule| DateError::new(input, rule));
    }
    match parse_partial_kanji(norm) {
        Some((era, y, m)) => era_partial(input, era, y, m).map(Some),
        None => to_iso(norm).map(Some).map_err(|e| DateError {
            value: Quoted::new(input),
            ..e
        }),
    }
}

/// `YYYY` or `YYYY-MM`: `None` when the text has neither shape.
fn iso_partial(s: &str) -> Option<Result<String, DateRule>> {
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        None if digits(s, 4) => Some(match s {
            "0000" => Err(DateRule::NotReal),
            _ => Ok(s.to_string()),
        }),
        Some((y, m)) if digits(y, 4) && digits(m, 2) => {
            let ok = y != "0000" && (1..=12).contains(&m.parse::<u32>().unwrap_or(0));
            Some(if ok {
                Ok(s.to_string())
            } else {
                Err(DateRule::NotReal)
            })
        }
        _ => None,
    }
}

/// `令和05年06月` or `平成22年` (no 日): era index, era year, month.
fn parse_partial_kanji(s: &str) -> Option<(usize, u32, Option<u32>)> {
    let (i, rest) = ERAS
        .iter()
        .enumerate()
        .find_map(|(i, e)| s.strip_prefix(e.1).map(|r| (i, r)))?;
    let (y, rest) = rest.split_once('年')?;
    let y = if y == "元" { 1 } else { y.parse().ok()? };
    if rest.is_empty() {
        return Some((i, y, None));
    }
    let m = rest.strip_suffix('月')?;
    Some((i, y, Some(m.parse().ok()?)))
}

/// A year or year-month of an era, checked to overlap the era: `平成31年` (1 Jan – 30 Apr 2019)
/// is 平成, `平成31年05月` is not.
fn era_partial(input: &str, era: usize, y: u32, m: Option<u32>) -> Result<String, DateError> {
    let (code, name, _, start) = ERAS[era];
    if y == 0 {
        return Err(DateError::new(input, DateRule::EraYearZero));
    }
    let year = start.0 + y as i32 - 1;
    if m.is_some_and(|m| !(1..=12).contains(&m)) {
        return Err(DateError::new(input, DateRule::NotReal));
    }
    let first = (year, m.unwrap_or(1), 1);
    let last_month = m.unwrap_or(12);
    let last = (year, last_month, days_in_month(i64::from(year), last_month));
    let end = ERAS.get(era + 1).map(|e| e.3);
    if last < start || end.is_some_and(|e| first >= e) {
        let what = m.map_or(format!("{name}{y}年"), |m| format!("{name}{y}年{m}月"));
        return Err(DateError::new(input, DateRule::OutsideEra)
            .detail(format!("{what} is outside {name} (元号 code {code})")));
    }
    Ok(match m {
        Some(m) => format!("{year:04}-{m:02}"),
        None => format!("{year:04}"),
    })
}

/// Converts a 和暦 date to ISO `YYYY-MM-DD`.
pub fn to_iso(input: &str) -> Result<String, DateError> {
    let norm = normalize(input);
    // 西暦 `YYYY-MM-DD` is read by the calendar's one ISO date reader; any other shape is tried
    // as 和暦.
    match parse_date_only(&norm) {
        Ok((y, m, d)) => return Ok(format!("{y:04}-{m:02}-{d:02}")),
        Err(e) if e.kind == DateTimeKind::NotInCalendar => {
            return Err(DateError::new(input, DateRule::NotReal));
        }
        Err(_) => {}
    }
    let (era, y, m, d) =
        parse_forms(&norm).ok_or_else(|| DateError::new(input, DateRule::NotWareki))?;
    let (code, name, _, start) = ERAS[era];
    if y == 0 {
        return Err(DateError::new(input, DateRule::EraYearZero));
    }
    let year = start.0 + y as i32 - 1;
    if !is_real(year, m, d) {
        return Err(DateError::new(input, DateRule::NotReal)
            .detail(format!("{name}{y}年{m}月{d}日 does not exist")));
    }
    let date = (year, m, d);
    let end = ERAS.get(era + 1).map(|e| e.3);
    if date < start || end.is_some_and(|e| date >= e) {
        return Err(DateError::new(input, DateRule::OutsideEra).detail(format!(
            "{name}{y}年{m}月{d}日 is outside {name} (元号 code {code})"
        )));
    }
    Ok(format!("{year:04}-{m:02}-{d:02}"))
}

/// Whether (year, month, day) is a day of the Gregorian calendar: a month that does not exist
/// has no days (`days_in_month` gives 0), so one test covers month and day.
fn is_real(year: i32, month: u32, day: u32) -> bool {
    (1..=days_in_month(i64::from(year), month)).contains(&day)
}

fn parse_forms(s: &str) -> Option<(usize, u32, u32, u32)> {
    // GYYMMDD
    if s.len() == 7 && s.bytes().all(|b| b.is_ascii_digit()) {
        let era = era_index_by_code(s.as_bytes()[0] - b'0')?;
        let n = |a: usize| s[a..a + 2].parse::<u32>().ok();
        return Some((era, n(1)?, n(3)?, n(5)?));
    }
    // Kanji: 昭和23年4月5日 / 平成元年1月8日
    for (i, e) in ERAS.iter().enumerate() {
        if let Some(rest) = s.strip_prefix(e.1) {
            let (y, rest) = rest.split_once('年')?;
            let y = if y == "元" { 1 } else { y.parse().ok()? };
            let (m, rest) = rest.split_once('月')?;
            let d = rest.strip_suffix('日')?;
            return Some((i, y, m.parse().ok()?, d.parse().ok()?));
        }
    }
    // Letter: S23.4.5, S23/04/05, S230405
    let first = s.chars().next()?.to_ascii_uppercase();
    let era = ERAS.iter().position(|e| e.2 == first)?;
    let rest = &s[1..];
    let parts: Vec<&str> = rest.split(['.', '/', '-']).collect();
    let nums = if parts.len() == 3 {
        (
            parts[0].parse().ok()?,
            parts[1].parse().ok()?,
            parts[2].parse().ok()?,
        )
    } else if rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_digit()) {
        (
            rest[0..2].parse().ok()?,
            rest[2..4].parse().ok()?,
            rest[4..6].parse().ok()?,
        )
    } else {
        return None;
    };
    Some((era, nums.0, nums.1, nums.2))
}

/// How to write a 和暦 date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `昭和23年4月5日` (元年 for year 1).
    Kanji,
    /// `3230405`.
    Code,
}

/// Converts ISO `YYYY-MM-DD` to 和暦.
pub fn from_iso(iso: &str, style: Style) -> Result<String, DateError> {
    let bad = || DateError::new(iso, DateRule::NotIso);
    let mut it = iso.split('-');
    let y: i32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let m: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let d: u32 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    if it.next().is_some() || !is_real(y, m, d) {
        return Err(bad());
    }
    let i = ERAS
        .iter()
        .rposition(|e| (y, m, d) >= e.3)
        .ok_or_else(|| DateError::new(iso, DateRule::BeforeMeiji))?;
    let (code, name, _, start) = ERAS[i];
    let ey = (y - start.0 + 1) as u32;
    Ok(match style {
        Style::Kanji if ey == 1 => format!("{name}元年{m}月{d}日"),
        Style::Kanji => format!("{name}{ey}年{m}月{d}日"),
        Style::Code => format!("{code}{ey:02}{m:02}{d:02}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_kanji_and_letter_forms_agree() {
        for s in [
            "3230405",
            "昭和23年4月5日",
            "昭和２３年４月５日",
            "S23.04.05",
            "s230405",
        ] {
            assert_eq!(to_iso(s).unwrap(), "1948-04-05", "{s}");
        }
    }

    #[test]
    fn gannen_and_era_boundaries() {
        assert_eq!(to_iso("平成元年1月8日").unwrap(), "1989-01-08");
        assert_eq!(to_iso("4010108").unwrap(), "1989-01-08");
        assert_eq!(to_iso("令和元年5月1日").unwrap(), "2019-05-01");
        assert!(
            to_iso("昭和64年1月8日")
                .unwrap_err()
                .for_sender()
                .to_string()
                .contains("outside 昭和")
        );
        assert!(
            to_iso("平成31年5月1日")
                .unwrap_err()
                .for_sender()
                .to_string()
                .contains("outside 平成")
        );
        assert!(
            to_iso("平成元年1月7日")
                .unwrap_err()
                .for_sender()
                .to_string()
                .contains("outside 平成")
        );
    }

    #[test]
    fn seireki_iso_dates_pass_through_checked() {
        assert_eq!(to_iso("1938-11-23").unwrap(), "1938-11-23");
        assert_eq!(to_iso("２０２４-０２-２９").unwrap(), "2024-02-29");
        assert!(
            to_iso("2023-02-29")
                .unwrap_err()
                .for_sender()
                .to_string()
                .contains("not a real date")
        );
        assert!(to_iso("19381123").is_err());
        // Year 0000 is no year of the calendar, as for the audit log's and consent's dates.
        assert_eq!(to_iso("0000-01-01").unwrap_err().rule, DateRule::NotReal);
        assert!(to_iso("1938-1-23").is_err());
    }

    #[test]
    fn impossible_dates_and_garbage_are_refused() {
        assert!(
            to_iso("3230230")
                .unwrap_err()
                .to_string()
                .contains("not a real date")
        );
        for no_such_month in ["3231305", "3230005", "1948-13-01", "1948-00-01"] {
            let e = to_iso(no_such_month).unwrap_err();
            assert_eq!(e.rule, DateRule::NotReal, "{no_such_month}");
        }
        assert_eq!(
            from_iso("1948-13-01", Style::Code).unwrap_err().rule,
            DateRule::NotIso
        );
        assert!(to_iso("6230405").is_err());
        assert!(to_iso("yesterday").is_err());
    }

    #[test]
    fn partial_dates_keep_the_precision_written() {
        let p = |s: &str| to_iso_partial(s).unwrap();
        assert_eq!(p("令和05年06月").as_deref(), Some("2023-06"));
        assert_eq!(p("平成22年").as_deref(), Some("2010"));
        assert_eq!(p("令和05年06月12日").as_deref(), Some("2023-06-12"));
        assert_eq!(p("昭和６０年頃").as_deref(), Some("1985"));
        assert_eq!(p("平成元年").as_deref(), Some("1989"));
        assert_eq!(p("令和元年05月").as_deref(), Some("2019-05"));
        assert_eq!(p("2010").as_deref(), Some("2010"));
        assert_eq!(p("2023-06").as_deref(), Some("2023-06"));
        assert_eq!(p("不詳"), None);
        assert_eq!(p(""), None);
        assert_eq!(p("  "), None);
    }

    #[test]
    fn partial_dates_are_checked_against_their_era() {
        // 平成 ran to 2019-04-30: its 31st year exists, its 31st year's May does not.
        assert_eq!(to_iso_partial("平成31年").unwrap().as_deref(), Some("2019"));
        assert_eq!(
            to_iso_partial("平成31年04月").unwrap().as_deref(),
            Some("2019-04")
        );
        let e = to_iso_partial("平成31年05月").unwrap_err();
        assert_eq!(e.rule, DateRule::OutsideEra);
        assert!(
            e.for_sender()
                .to_string()
                .contains("平成31年5月 is outside 平成")
        );
        assert!(!e.to_string().contains("31"), "{e}");
        assert_eq!(
            to_iso_partial("令和元年04月").unwrap_err().rule,
            DateRule::OutsideEra
        );
        assert_eq!(
            to_iso_partial("平成32年").unwrap_err().rule,
            DateRule::OutsideEra
        );
        assert_eq!(
            to_iso_partial("令和05年13月").unwrap_err().rule,
            DateRule::NotReal
        );
        assert_eq!(
            to_iso_partial("令和0年").unwrap_err().rule,
            DateRule::EraYearZero
        );
        assert_eq!(
            to_iso_partial("2023-13").unwrap_err().rule,
            DateRule::NotReal
        );
        let e = to_iso_partial("先月").unwrap_err();
        assert_eq!(e.rule, DateRule::NotWareki);
        assert!(e.for_sender().to_string().contains("`先月`"));
    }

    #[test]
    fn iso_to_wareki_round_trips() {
        assert_eq!(
            from_iso("1948-04-05", Style::Kanji).unwrap(),
            "昭和23年4月5日"
        );
        assert_eq!(
            from_iso("1989-01-08", Style::Kanji).unwrap(),
            "平成元年1月8日"
        );
        assert_eq!(from_iso("1989-01-07", Style::Code).unwrap(), "3640107");
        for iso in ["1926-12-25", "2019-04-30", "2019-05-01", "2026-11-24"] {
            let code = from_iso(iso, Style::Code).unwrap();
            assert_eq!(to_iso(&code).unwrap(), iso);
        }
    }
}
