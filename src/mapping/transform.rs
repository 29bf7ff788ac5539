//! Built-in transforms a mapping rule lists under `then:`. Each takes text and returns text (or
//! nothing, e.g. `null_if`), and fails with a sentence that says what was expected. Dates come in
//! as patterns (`yyyyMMdd`, `yyyyMM`, `HHmm`, `yyyyMMddHHmmss`, or `hl7` for HL7 DTM) and go out
//! as ISO 8601; `format_date` goes the other way; `{ wareki: partial }` keeps the precision of a
//! partial 和暦 date; `replace` swaps text (the 医見書 CSV's VT for a line break). Kana and 和暦
//! helpers live in their own files.

use super::error::ValueError;
use super::kana;
use super::spec::TransformSpec;
use crate::calendar::wareki;

/// A compiled transform.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// Trim white space (ASCII and U+3000).
    Trim,
    /// Half-width katakana → full width.
    FullwidthKana,
    /// Full-width katakana → half width.
    HalfwidthKana,
    /// Hiragana → katakana.
    Katakana,
    /// Katakana → hiragana.
    Hiragana,
    /// Full-width ASCII → ASCII, half-width kana → full width.
    NormalizeWidth,
    /// ASCII upper case.
    Upper,
    /// ASCII lower case.
    Lower,
    /// Keep only ASCII digits.
    Digits,
    /// `4228033` or `422-8033` → `422-8033`.
    PostalCode,
    /// Parse by pattern, emit ISO 8601.
    Date(DatePattern),
    /// ISO 8601 in, pattern out.
    FormatDate(DatePattern),
    /// 和暦 (or an ISO 西暦 date, checked) in, ISO date out; `partial` also reads year-month and
    /// year-only dates (`令和05年06月` → `2023-06`) and `不詳` (no value).
    Wareki(wareki::Precision),
    /// ISO date in, 和暦 out.
    ToWareki(wareki::Style),
    /// No value when the text equals this.
    NullIf(String),
    /// Prepend text.
    Prefix(String),
    /// Append text.
    Suffix(String),
    /// The text without this prefix when it starts with it, else unchanged: `{ strip_prefix: "00" }`.
    StripPrefix(String),
    /// The n-th (0-based) part when split by a separator: `{ part: "1 " }` (index, then separator).
    Part(usize, String),
    /// Characters [start, start+len) (0-based, by character): `{ substr: "0,3" }`.
    Substr(usize, usize),
    /// Every occurrence of the first text replaced by the second: `{ replace: ["\v", "\n"] }`.
    Replace(String, String),
    Decimal(usize),
}

/// A date/time pattern: `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and literal characters, or HL7 DTM.
#[derive(Clone, Debug, PartialEq)]
pub enum DatePattern {
    /// Tokens in order.
    Tokens(Vec<Tok>),
    /// HL7 v2 DTM `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`, read as a date.
    Hl7,
    /// An ISO 8601 / FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, checked and kept as is.
    Iso,
}

/// One token of a date pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// 4-digit year.
    Year,
    /// 2-digit month.
    Month,
    /// 2-digit day.
    Day,
    /// 2-digit hour.
    Hour,
    /// 2-digit minute.
    Minute,
    /// 2-digit second.
    Second,
    /// A literal character.
    Lit(char),
}

const NAMES: &[&str] = &[
    "trim",
    "fullwidth_kana",
    "halfwidth_kana",
    "katakana",
    "hiragana",
    "normalize_width",
    "upper",
    "lower",
    "digits",
    "postal_code",
    "date",
    "time",
    "format_date",
    "wareki",
    "to_wareki",
    "null_if",
    "prefix",
    "suffix",
    "strip_prefix",
    "part",
    "substr",
    "replace",
    "decimal",
];

impl Transform {
    /// Compiles `name` or `{ name: arg }`.
    pub fn compile(spec: &TransformSpec) -> Result<Transform, String> {
        let arg = spec.arg.as_deref();
        let need = |what: &str| -> Result<&str, String> {
            arg.ok_or_else(|| {
                format!(
                    "transform `{}` needs an argument: `{{ {}: {what} }}`",
                    spec.name, spec.name
                )
            })
        };
        let none = |t: Transform| -> Result<Transform, String> {
            match arg {
                None => Ok(t),
                Some(a) => Err(format!(
                    "transform `{}` takes no argument (got `{a}`)",
                    spec.name
                )),
            }
        };
        match spec.name.as_str() {
            "trim" => none(Transform::Trim),
            "fullwidth_kana" => none(Transform::FullwidthKana),
            "halfwidth_kana" => none(Transform::HalfwidthKana),
            "katakana" => none(Transform::Katakana),
            "hiragana" => none(Transform::Hiragana),
            "normalize_width" => none(Transform::NormalizeWidth),
            "upper" => none(Transform::Upper),
            "lower" => none(Transform::Lower),
            "digits" => none(Transform::Digits),
            "postal_code" => none(Transform::PostalCode),
            "wareki" => match arg {
                None => Ok(Transform::Wareki(wareki::Precision::Day)),
                Some("partial") => Ok(Transform::Wareki(wareki::Precision::Partial)),
                Some(o) => Err(format!(
                    "wareki takes no argument, or `partial` for year-month and year-only dates (got `{o}`)"
                )),
            },
            "replace" => match spec.list.as_deref() {
                Some([from, to]) if !from.is_empty() => {
                    Ok(Transform::Replace(from.clone(), to.clone()))
                }
                _ => Err(
                    "transform `replace` takes two texts, what to find and what to put instead: `{ replace: [\"\\v\", \"\\n\"] }`"
                        .into(),
                ),
            },
            "date" | "time" => Ok(Transform::Date(DatePattern::parse(need("yyyyMMdd")?)?)),
            "format_date" => {
                let p = DatePattern::parse(need("yyyyMMdd")?)?;
                if p == DatePattern::Hl7 {
                    return Err("format_date takes an explicit pattern such as yyyyMMdd".into());
                }
                Ok(Transform::FormatDate(p))
            }
            "to_wareki" => match need("kanji|code")? {
                "kanji" => Ok(Transform::ToWareki(wareki::Style::Kanji)),
                "code" => Ok(Transform::ToWareki(wareki::Style::Code)),
                o => Err(format!("to_wareki takes `kanji` or `code`, not `{o}`")),
            },
            "null_if" => Ok(Transform::NullIf(need("9999")?.to_string())),
            "prefix" => Ok(Transform::Prefix(need("text")?.to_string())),
            "suffix" => Ok(Transform::Suffix(need("text")?.to_string())),
            "strip_prefix" => Ok(Transform::StripPrefix(need("text")?.to_string())),
            "part" => {
                let a = need("\"0 \" (index, then separator)")?;
                let digits: String = a.chars().take_while(|c| c.is_ascii_digit()).collect();
                let sep = &a[digits.len()..];
                match (digits.parse::<usize>(), sep.is_empty()) {
                    (Ok(n), false) => Ok(Transform::Part(n, sep.to_string())),
                    _ => Err(format!(
                        "part `{a}`: write the 0-based index then the separator, e.g. \"1 \" or \"0^\""
                    )),
                }
            }
            "decimal" => match need("2")?.parse::<usize>() {
                Ok(n) if (1..=9).contains(&n) => Ok(Transform::Decimal(n)),
                _ => Err("decimal takes the number of decimal places, 1 to 9 (e.g. `{ decimal: 2 }`)".into()),
            },
            "substr" => {
                let a = need("\"start,len\"")?;
                let (s, l) = a
                    .split_once(',')
                    .ok_or_else(|| format!("substr `{a}`: write \"start,len\""))?;
                match (s.trim().parse(), l.trim().parse()) {
                    (Ok(s), Ok(l)) => Ok(Transform::Substr(s, l)),
                    _ => Err(format!("substr `{a}`: write \"start,len\" with numbers")),
                }
            }
            other => Err(format!(
                "unknown transform `{other}`; known: {}",
                NAMES.join(", ")
            )),
        }
    }

    /// The transform's name as written.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Trim => "trim",
            Transform::FullwidthKana => "fullwidth_kana",
            Transform::HalfwidthKana => "halfwidth_kana",
            Transform::Katakana => "katakana",
            Transform::Hiragana => "hiragana",
            Transform::NormalizeWidth => "normalize_width",
            Transform::Upper => "upper",
            Transform::Lower => "lower",
            Transform::Digits => "digits",
            Transform::PostalCode => "postal_code",
            Transform::Date(_) => "date",
            Transform::FormatDate(_) => "format_date",
            Transform::Wareki(_) => "wareki",
            Transform::ToWareki(_) => "to_wareki",
            Transform::NullIf(_) => "null_if",
            Transform::Prefix(_) => "prefix",
            Transform::Suffix(_) => "suffix",
            Transform::StripPrefix(_) => "strip_prefix",
            Transform::Part(..) => "part",
            Transform::Substr(..) => "substr",
            Transform::Replace(..) => "replace",
            Transform::Decimal(_) => "decimal",
        }
    }

    /// True when the output is an ISO date or time (cannot feed an integer, boolean or enum).
    pub fn makes_temporal(&self) -> bool {
        matches!(self, Transform::Date(_) | Transform::Wareki(_))
    }

    /// Applies the transform. `Ok(None)` means "no value".
    pub fn apply(&self, v: &str) -> Result<Option<String>, ValueError> {
        Ok(Some(match self {
            Transform::Trim => v.trim_matches(|c: char| c.is_whitespace()).to_string(),
            Transform::FullwidthKana => kana::to_fullwidth_kana(v),
            Transform::HalfwidthKana => kana::to_halfwidth_kana(v),
            Transform::Katakana => kana::to_katakana(v),
            Transform::Hiragana => kana::to_hiragana(v),
            Transform::NormalizeWidth => kana::normalize_width(v),
            Transform::Upper => v.to_ascii_uppercase(),
            Transform::Lower => v.to_ascii_lowercase(),
            Transform::Digits => v.chars().filter(char::is_ascii_digit).collect(),
            Transform::PostalCode => {
                let d: String = kana::normalize_width(v)
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                if d.len() != 7 {
                    return Err(ValueError::new(
                        v,
                        "is not a postal code (7 digits, e.g. 422-8033)",
                    ));
                }
                format!("{}-{}", &d[..3], &d[3..])
            }
            Transform::Date(p) => p.to_iso(v)?,
            Transform::FormatDate(p) => p.from_iso(v)?,
            Transform::Wareki(wareki::Precision::Day) => wareki::to_iso(v)?,
            Transform::Wareki(wareki::Precision::Partial) => match wareki::to_iso_partial(v)? {
                Some(iso) => iso,
                None => return Ok(None),
            },
            Transform::ToWareki(style) => wareki::from_iso(v, *style)?,
            Transform::NullIf(x) => {
                if v == x {
                    return Ok(None);
                }
                v.to_string()
            }
            Transform::Prefix(p) => format!("{p}{v}"),
            Transform::Suffix(s) => format!("{v}{s}"),
            Transform::StripPrefix(p) => v.strip_prefix(p.as_str()).unwrap_or(v).to_string(),
            Transform::Part(n, sep) => match v.split(sep.as_str()).nth(*n) {
                Some(p) if !p.is_empty() => p.to_string(),
                _ => return Ok(None),
            },
            Transform::Substr(s, l) => v.chars().skip(*s).take(*l).collect(),
            Transform::Replace(from, to) => v.replace(from.as_str(), to),
            Transform::Decimal(n) => decimal(v, *n)?,
        }))
    }
}

/// Digits with an implied decimal point, `n` places from the right, as a decimal text: `1140`
/// with 2 places is `11.40`, `5` is `0.05`, `-1140` is `-11.40`. Exact (no float); anything but
/// ASCII digits with an optional leading `-` is refused.
fn decimal(v: &str, n: usize) -> Result<String, ValueError> {
    let (sign, digits) = v.strip_prefix('-').map_or(("", v), |d| ("-", d));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new(
            v,
            "is not a number of digits (transform `decimal`)",
        ));
    }
    let padded = format!("{digits:0>width$}", width = n + 1);
    let (int, frac) = padded.split_at(padded.len() - n);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Ok(format!("{sign}{int}.{frac}"))
}

impl DatePattern {
    /// Parses `yyyyMMdd`-style patterns, or `hl7`.
    pub fn parse(p: &str) -> Result<DatePattern, String> {
        if p.eq_ignore_ascii_case("hl7") {
            return Ok(DatePattern::Hl7);
        }
        if p.eq_ignore_ascii_case("iso") {
            return Ok(DatePattern::Iso);
        }
        let mut toks = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            let (tok, len) = if rest.starts_with("yyyy") {
                (Tok::Year, 4)
            } else if rest.starts_with("MM") {
                (Tok::Month, 2)
            } else if rest.starts_with("dd") {
                (Tok::Day, 2)
            } else if rest.starts_with("HH") {
                (Tok::Hour, 2)
            } else if rest.starts_with("mm") {
                (Tok::Minute, 2)
            } else if rest.starts_with("ss") {
                (Tok::Second, 2)
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                if c.is_ascii_alphabetic() {
                    return Err(format!(
                        "date pattern `{p}`: `{c}` is not a pattern letter (use yyyy, MM, dd, HH, mm, ss)"
                    ));
                }
                (Tok::Lit(c), c.len_utf8())
            };
            toks.push(tok);
            rest = &rest[len..];
        }
        let has = |t: Tok| toks.contains(&t);
        let date_ok = (has(Tok::Year) && has(Tok::Month))
            || !(has(Tok::Year) || has(Tok::Month) || has(Tok::Day));
        let time_ok = has(Tok::Hour) == has(Tok::Minute);
        if !date_ok || !time_ok || toks.iter().all(|t| matches!(t, Tok::Lit(_))) {
            return Err(format!(
                "date pattern `{p}` must have yyyy and MM (with optional dd), and/or HH and mm"
            ));
        }
        Ok(DatePattern::Tokens(toks))
    }

    /// Reads `v` by the pattern and writes ISO 8601.
    pub fn to_iso(&self, v: &str) -> Result<String, ValueError> {
        let toks = match self {
            DatePattern::Hl7 => return hl7_date(v),
            DatePattern::Iso => return iso_date(v),
            DatePattern::Tokens(t) => t,
        };
        let mut f = Fields::default();
        let mut rest = v;
        for t in toks {
            let (slot, len) = match t {
                Tok::Lit(c) => {
                    rest = rest.strip_prefix(*c).ok_or_else(|| expected(v, toks))?;
                    continue;
                }
                Tok::Year => (&mut f.y, 4),
                Tok::Month => (&mut f.mo, 2),
                Tok::Day => (&mut f.d, 2),
                Tok::Hour => (&mut f.h, 2),
                Tok::Minute => (&mut f.mi, 2),
                Tok::Second => (&mut f.s, 2),
            };
            let digits = rest
                .get(..len)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            let d = digits.ok_or_else(|| expected(v, toks))?;
            *slot = d.parse().ok();
            rest = &rest[len..];
        }
        if !rest.is_empty() {
            return Err(expected(v, toks));
        }
        f.iso(v)
    }

    /// Reads ISO 8601 (`YYYY-MM-DD`, `YYYY-MM`, `HH:MM`, `YYYY-MM-DDTHH:MM[:SS]`) and writes the pattern.
    pub fn from_iso(&self, v: &str) -> Result<String, ValueError> {
        let toks = match self {
            DatePattern::Hl7 | DatePattern::Iso => {
                return Err(ValueError::new(
                    v,
                    "cannot be written: format_date needs a pattern",
                ));
            }
            DatePattern::Tokens(t) => t,
        };
        let digits: Vec<u32> = v
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(u32::MAX))
            .collect();
        let bad = || ValueError::new(v, "is not an ISO 8601 date or time");
        let mut f = Fields::default();
        let has_date = v.len() >= 7 && v.as_bytes().get(4) == Some(&b'-');
        let mut it = digits.into_iter();
        if has_date {
            f.y = it.next();
            f.mo = it.next();
            f.d = it.next();
        }
        f.h = it.next();
        f.mi = it.next();
        f.s = it.next();
        let mut out = String::new();
        for t in toks {
            let (val, width) = match t {
                Tok::Lit(c) => {
                    out.push(*c);
                    continue;
                }
                Tok::Year => (f.y, 4),
                Tok::Month => (f.mo, 2),
                Tok::Day => (f.d, 2),
                Tok::Hour => (f.h, 2),
                Tok::Minute => (f.mi, 2),
                Tok::Second => (f.s.or(Some(0)), 2),
            };
            let val = val.filter(|x| *x != u32::MAX).ok_or_else(bad)?;
            out.push_str(&format!("{val:0width$}"));
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Fields {
    y: Option<u32>,
    mo: Option<u32>,
    d: Option<u32>,
    h: Option<u32>,
    mi: Option<u32>,
    s: Option<u32>,
}

impl Fields {
    fn iso(&self, v: &str) -> Result<String, ValueError> {
        let mut out = String::new();
        if let (Some(y), Some(m)) = (self.y, self.mo) {
            if !(1..=12).contains(&m) {
                return Err(ValueError::new(v, "is not a real date: no such month")
                    .detail(format!("month {m} does not exist")));
            }
            out.push_str(&format!("{y:04}-{m:02}"));
            if let Some(d) = self.d {
                if d == 0 || d > crate::calendar::days_in_month(i64::from(y), m) {
                    return Err(
                        ValueError::new(v, "is not a real date: no such day in its month")
                            .detail(format!("{y:04}-{m:02} has no day {d}")),
                    );
                }
                out.push_str(&format!("-{d:02}"));
            }
        }
        if let (Some(h), Some(mi)) = (self.h, self.mi) {
            if h > 23 || mi > 59 || self.s.is_some_and(|s| s > 59) {
                return Err(ValueError::new(v, "is not a time of day"));
            }
            if !out.is_empty() {
                out.push('T');
            }
            out.push_str(&format!("{h:02}:{mi:02}"));
            if let Some(s) = self.s {
                out.push_str(&format!(":{s:02}"));
            }
        }
        Ok(out)
    }
}

fn expected(v: &str, toks: &[Tok]) -> ValueError {
    let p: String = toks
        .iter()
        .map(|t| match t {
            Tok::Year => "yyyy".to_string(),
            Tok::Month => "MM".into(),
            Tok::Day => "dd".into(),
            Tok::Hour => "HH".into(),
            Tok::Minute => "mm".into(),
            Tok::Second => "ss".into(),
            Tok::Lit(c) => c.to_string(),
        })
        .collect();
    ValueError::new(v, format!("does not match the date pattern `{p}`"))
}

fn iso_date(v: &str) -> Result<String, ValueError> {
    let bad = || ValueError::new(v, "is not a date (YYYY, YYYY-MM or YYYY-MM-DD)");
    let parts: Vec<&str> = v.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2),
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    };
    if !ok {
        return Err(bad());
    }
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    let f = Fields {
        y: num(0),
        mo: num(1),
        d: num(2),
        ..Fields::default()
    };
    if parts.len() == 1 {
        Ok(v.to_string())
    } else {
        f.iso(v)
    }
}

fn hl7_date(v: &str) -> Result<String, ValueError> {
    // HL7 DTM allows year or year-month precision: 1948 → 1948, 194804 → 1948-04.
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    let rest = &v[digits.len()..];
    // After the digits only a fraction of a second or a time zone may follow, and only after a
    // full date: `1941-03-15` is not an HL7 date.
    let tail_ok = rest.is_empty() || (digits.len() >= 8 && rest.starts_with(['.', '+', '-']));
    if !tail_ok {
        return Err(ValueError::new(
            v,
            "is not an HL7 date (YYYY[MM[DD[HHMM[SS[.S]]]]][+/-ZZZZ])",
        ));
    }
    match digits.len() {
        4 => return Ok(digits),
        6 => {
            let f = Fields {
                y: digits[0..4].parse().ok(),
                mo: digits[4..6].parse().ok(),
                ..Fields::default()
            };
            return f.iso(v);
        }
        n if n >= 8 => {}
        _ => {
            return Err(ValueError::new(
                v,
                "is not an HL7 date (YYYY[MM[DD[HHMM[SS[.S]]]]][+/-ZZZZ])",
            ));
        }
    }
    let f = Fields {
        y: digits[0..4].parse().ok(),
        mo: digits[4..6].parse().ok(),
        d: digits[6..8].parse().ok(),
        ..Fields::default()
    };
    f.iso(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Disclose;

    fn t(name: &str, arg: Option<&str>) -> Transform {
        Transform::compile(&TransformSpec {
            name: name.into(),
            arg: arg.map(String::from),
            list: None,
        })
        .unwrap()
    }

    #[test]
    fn decimal_puts_the_implied_point_in_exactly() {
        let two = t("decimal", Some("2"));
        let cases = [
            ("1140", "11.40"),
            ("1084", "10.84"),
            ("1000", "10.00"),
            ("0950", "9.50"),
        ];
        for (input, want) in cases
            .into_iter()
            .chain([("5", "0.05"), ("-1140", "-11.40")])
        {
            assert_eq!(two.apply(input).unwrap().unwrap(), want, "{input}");
        }
        for bad in ["11.40", "", "-", "１１４０", "11 40"] {
            let e = two.apply(bad).unwrap_err();
            assert!(e.to_string().contains("transform `decimal`"), "{e}");
            assert!(
                !e.to_string().contains(bad) || bad.is_empty(),
                "value-free: {e}"
            );
        }
        for arg in ["0", "x", "10"] {
            let spec = TransformSpec {
                name: "decimal".into(),
                arg: Some(arg.into()),
                list: None,
            };
            assert!(Transform::compile(&spec).is_err(), "{arg}");
        }
    }

    #[test]
    fn dates_by_pattern_become_iso() {
        assert_eq!(
            t("date", Some("yyyyMMdd"))
                .apply("19480405")
                .unwrap()
                .unwrap(),
            "1948-04-05"
        );
        assert_eq!(
            t("date", Some("yyyyMM")).apply("202511").unwrap().unwrap(),
            "2025-11"
        );
        assert_eq!(
            t("time", Some("HHmm")).apply("0930").unwrap().unwrap(),
            "09:30"
        );
        assert_eq!(
            t("date", Some("yyyyMMddHHmmss"))
                .apply("20251025200201")
                .unwrap()
                .unwrap(),
            "2025-10-25T20:02:01"
        );
        assert_eq!(
            t("date", Some("hl7"))
                .apply("20111220224447.3399")
                .unwrap()
                .unwrap(),
            "2011-12-20"
        );
    }

    #[test]
    fn iso_dates_are_checked_and_may_be_partial() {
        let d = t("date", Some("iso"));
        assert_eq!(d.apply("1941-03-15").unwrap().unwrap(), "1941-03-15");
        assert_eq!(d.apply("1941-03").unwrap().unwrap(), "1941-03");
        assert_eq!(d.apply("1941").unwrap().unwrap(), "1941");
        assert!(d.apply("1941-13-45").is_err());
        assert!(d.apply("1941-02-29").is_err());
        assert!(d.apply("19410315").is_err());
    }

    #[test]
    fn hl7_dates_may_have_year_or_month_precision() {
        let d = t("date", Some("hl7"));
        assert_eq!(d.apply("194804").unwrap().unwrap(), "1948-04");
        assert_eq!(d.apply("1948").unwrap().unwrap(), "1948");
        assert!(d.apply("19481").is_err());
        assert!(d.apply("194813").is_err());
        assert!(d.apply("1941-03-15").is_err());
        assert_eq!(
            d.apply("20251024101500.0000+0900").unwrap().unwrap(),
            "2025-10-24"
        );
    }

    #[test]
    fn wrong_dates_say_what_was_expected() {
        let e = t("date", Some("yyyyMMdd")).apply("1948-04-05").unwrap_err();
        let told = e.for_sender().to_string();
        assert!(
            told.contains("`1948-04-05` does not match the date pattern `yyyyMMdd`"),
            "{told}"
        );
        let e = t("date", Some("yyyyMMdd")).apply("20230229").unwrap_err();
        assert!(e.for_sender().to_string().contains("no day 29"), "{e}");
        // Everyone else reads what was expected, never the date (or its year and month).
        assert_eq!(
            e.to_string(),
            "the value is not a real date: no such day in its month"
        );
        assert!(t("date", Some("yyyyMMdd")).apply("20240229").is_ok());
        assert!(t("time", Some("HHmm")).apply("2460").is_err());
    }

    #[test]
    fn format_date_inverts_date() {
        let f = t("format_date", Some("yyyyMMdd"));
        assert_eq!(f.apply("1948-04-05").unwrap().unwrap(), "19480405");
        assert_eq!(
            t("format_date", Some("HHmm"))
                .apply("09:30")
                .unwrap()
                .unwrap(),
            "0930"
        );
        assert_eq!(
            t("format_date", Some("yyyyMM"))
                .apply("2025-11")
                .unwrap()
                .unwrap(),
            "202511"
        );
    }

    #[test]
    fn null_if_part_and_postal_code() {
        assert_eq!(t("null_if", Some("9999")).apply("9999").unwrap(), None);
        assert_eq!(
            t("part", Some("1 ")).apply("牧野 爛漫").unwrap().unwrap(),
            "爛漫"
        );
        assert_eq!(
            t("postal_code", None)
                .apply("４２２８０３３")
                .unwrap()
                .unwrap(),
            "422-8033"
        );
        assert!(t("postal_code", None).apply("12").is_err());
    }

    /// The 証記載保険者番号 written as 8 digits or (QKAN's 様式第七) as the 6: both give the 6.
    #[test]
    fn strip_prefix_takes_the_prefix_off_once_and_only_at_the_start() {
        let strip = t("strip_prefix", Some("00"));
        assert_eq!(strip.apply("00131011").unwrap().unwrap(), "131011");
        assert_eq!(strip.apply("131011").unwrap().unwrap(), "131011");
        assert_eq!(strip.apply("000013").unwrap().unwrap(), "0013");
        assert_eq!(strip.apply("130011").unwrap().unwrap(), "130011");
    }

    #[test]
    fn replace_swaps_every_occurrence_and_takes_two_texts() {
        let r = Transform::compile(&TransformSpec {
            name: "replace".into(),
            list: Some(vec!["\u{b}".into(), "\n".into()]),
            ..TransformSpec::default()
        })
        .unwrap();
        assert_eq!(
            r.apply("一行目\u{b}二行目\u{b}三行目").unwrap().unwrap(),
            "一行目\n二行目\n三行目"
        );
        assert_eq!(r.apply("そのまま").unwrap().unwrap(), "そのまま");
        for list in [
            None,
            Some(vec!["a".to_string()]),
            Some(vec![String::new(), "x".into()]),
        ] {
            let e = Transform::compile(&TransformSpec {
                name: "replace".into(),
                list,
                ..TransformSpec::default()
            })
            .unwrap_err();
            assert!(e.contains("takes two texts"), "{e}");
        }
    }

    #[test]
    fn wareki_partial_keeps_the_precision_and_unknown_is_no_value() {
        let p = t("wareki", Some("partial"));
        assert_eq!(p.apply("令和05年06月").unwrap().unwrap(), "2023-06");
        assert_eq!(p.apply("平成22年").unwrap().unwrap(), "2010");
        assert_eq!(p.apply("令和05年06月12日").unwrap().unwrap(), "2023-06-12");
        assert_eq!(p.apply("不詳").unwrap(), None);
        // Plain `wareki` still wants a whole date.
        assert!(t("wareki", None).apply("令和05年06月").is_err());
        let e = Transform::compile(&TransformSpec {
            name: "wareki".into(),
            arg: Some("month".into()),
            ..TransformSpec::default()
        })
        .unwrap_err();
        assert!(e.contains("`partial`"), "{e}");
    }

    #[test]
    fn unknown_transforms_and_missing_arguments_are_explained() {
        let e = Transform::compile(&TransformSpec {
            name: "dat".into(),
            arg: None,
            list: None,
        })
        .unwrap_err();
        assert!(e.contains("unknown transform `dat`"), "{e}");
        let e = Transform::compile(&TransformSpec {
            name: "date".into(),
            arg: None,
            list: None,
        })
        .unwrap_err();
        assert!(e.contains("needs an argument"), "{e}");
        let e = Transform::compile(&TransformSpec {
            name: "date".into(),
            arg: Some("yyyyMMxx".into()),
            list: None,
        })
        .unwrap_err();
        assert!(e.contains("not a pattern letter"), "{e}");
    }
}
