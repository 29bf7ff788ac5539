//! The file names of the ケアプランデータ連携標準仕様: [`parse_careplan_file_name`] reads a name such
//! as `UPPLAN_201912_0300000100_43_0300000005_11_20191025200201.CSV` (v4.1, with 送信元/送信先
//! サービス種類コード) or `UP2KYO_0300000100_0300000005_20191025200201.CSV` (v3) into a
//! [`CareplanFileName`], checking each part — prefix, 年月 slot where the table has one, 事業所番号,
//! サービス種類コード, 日時 — and naming the wrong part in its error; [`format_careplan_file_name`]
//! writes one back. Knows nothing of the file's contents. The 日時 check is CSV's
//! (`csv::check_timestamp`, its month lengths from `crate::calendar`).

use super::csv::{all_digits, check_timestamp, digits_value};

/// The parts of a ケアプランデータ連携 CSV file name, e.g.
/// `UPPLAN_201912_0300000100_43_0300000005_11_20191025200201.CSV` (v4.1)
/// or `UP2KYO_0300000100_0300000005_20191025200201.CSV` (v3, no service
/// type codes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CareplanFileName {
    /// File kind, e.g. `UP2KYO`, `UPKIHON_SUB1`.
    pub prefix: String,
    /// The `YYYYMM` slot, for the prefixes that have one.
    pub month: Option<String>,
    /// 送信元事業所番号 (10 digits).
    pub from_office: String,
    /// 送信元サービス種類コード (2 characters; `None` in v3 names).
    pub from_service_type: Option<String>,
    /// 送信先事業所番号 (10 digits).
    pub to_office: String,
    /// 送信先サービス種類コード (2 characters; `None` in v3 names).
    pub to_service_type: Option<String>,
    /// `YYYYMMDDHHMMSS`, the file's 連番.
    pub timestamp: String,
    /// Extension without the dot: `CSV` or `csv`.
    pub extension: String,
}

/// Known prefixes and whether their names carry the `YYYYMM` slot.
const CAREPLAN_PREFIXES: &[(&str, bool)] = &[
    ("UPHOSOKU", true),
    ("UP1KYO", false),
    ("DLT1KYO", false),
    ("UP2KYO", false),
    ("UP3KYO", false),
    ("UPPLAN", true),
    ("DLTPLAN", true),
    ("UPJSK", true),
    ("DLTJSK", true),
    ("UPSIKYU", true),
    ("UPKIHON", false),
    ("UPKIHON_SUB1", false),
    ("UPKIHON_SUB2", false),
    ("DLTKIHON", false),
    ("UPYOBO", false),
    ("UPYOBO_SUB", false),
    ("DLTYOBO", false),
];

fn prefix_info(candidate: &str) -> Option<(&'static str, bool)> {
    CAREPLAN_PREFIXES
        .iter()
        .find(|(p, _)| *p == candidate)
        .copied()
}

fn check_month(prefix: &str, month: &str) -> Result<(), String> {
    if prefix == "UPHOSOKU" && month == "000000" {
        return Ok(());
    }
    let also = if prefix == "UPHOSOKU" {
        " (or 000000)"
    } else {
        ""
    };
    if !all_digits(month, 6) {
        return Err(format!("年月 `{month}` must be 6 digits YYYYMM{also}"));
    }
    let m = month.get(4..6).map_or(0, digits_value);
    if !(1..=12).contains(&m) {
        return Err(format!(
            "年月 `{month}` has month {m:02}; expected 01–12{also}"
        ));
    }
    Ok(())
}

fn check_office(label: &str, office: &str) -> Result<(), String> {
    if all_digits(office, 10) {
        Ok(())
    } else {
        Err(format!("{label} `{office}` must be 10 digits"))
    }
}

fn check_service_type(label: &str, code: &str) -> Result<(), String> {
    if code.len() == 2 && code.bytes().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "{label} `{code}` must be 2 ASCII letters or digits (e.g. 43, 11, 2A, A1)"
        ))
    }
}

fn expected_forms(prefix: &str, has_month: bool) -> String {
    let m = if has_month { "_YYYYMM" } else { "" };
    format!(
        "`{prefix}{m}_送信元事業所番号_送信元サービス種類コード_送信先事業所番号_送信先サービス種類コード_YYYYMMDDHHMMSS.CSV` (v4.1) \
         or `{prefix}{m}_送信元事業所番号_送信先事業所番号_YYYYMMDDHHMMSS.CSV` (v3)"
    )
}

/// Parses a ケアプラン CSV file name (directories are stripped). Every error
/// names the file, the part that is wrong and what was expected.
/// `UPKIHON_IMAGE_…jpg` (the 家族構成 image) is refused: it is not CSV and
/// its 枝番 has no place in [`CareplanFileName`].
pub fn parse_careplan_file_name(name: &str) -> Result<CareplanFileName, String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let fail = |msg: String| Err(format!("file name `{base}`: {msg}"));

    if base.starts_with("UPKIHON_IMAGE") {
        return fail(
            "UPKIHON_IMAGE is the 家族構成 image (JPEG with a 4-digit 枝番), not a CSV file; it is not handled here"
                .to_string(),
        );
    }
    let Some((stem, extension)) = base.rsplit_once('.') else {
        return fail("no extension; expected `.CSV`".to_string());
    };
    let parts: Vec<&str> = stem.split('_').collect();
    let two = match parts.as_slice() {
        [a, b, ..] => prefix_info(&format!("{a}_{b}")),
        _ => None,
    };
    let (prefix, has_month, rest) = match (two, parts.split_first()) {
        (Some((p, m)), _) => (p, m, parts.get(2..).unwrap_or(&[])),
        (None, Some((first, rest))) => match prefix_info(first) {
            Some((p, m)) => (p, m, rest),
            None => {
                let known: Vec<&str> = CAREPLAN_PREFIXES.iter().map(|(p, _)| *p).collect();
                return fail(format!(
                    "unknown prefix `{first}`; expected one of {}",
                    known.join(", ")
                ));
            }
        },
        (None, None) => return fail("empty name".to_string()),
    };
    if extension != "CSV" && extension != "csv" {
        return fail(format!("extension `.{extension}` must be `.CSV` or `.csv`"));
    }
    let (month, rest) = if has_month {
        match rest.split_first() {
            Some((m, r)) if matches!(r.len(), 3 | 5) => (Some(*m), r),
            _ => {
                return fail(format!(
                    "has {} `_`-separated parts after {prefix}; expected {}",
                    rest.len(),
                    expected_forms(prefix, true)
                ));
            }
        }
    } else {
        if rest.len() == 6 && rest.first().is_some_and(|m| all_digits(m, 6)) {
            return fail(format!(
                "{prefix} has no YYYYMM slot, but `{}` follows the prefix; expected {}",
                rest.first().copied().unwrap_or_default(),
                expected_forms(prefix, false)
            ));
        }
        (None, rest)
    };
    let (from_office, from_type, to_office, to_type, timestamp) = match rest {
        [fo, ft, to, tt, ts] => (*fo, Some(*ft), *to, Some(*tt), *ts),
        [fo, to, ts] => (*fo, None, *to, None, *ts),
        _ => {
            return fail(format!(
                "has {} `_`-separated parts after {prefix}; expected {}",
                rest.len(),
                expected_forms(prefix, has_month)
            ));
        }
    };
    let checks = [
        month.map_or(Ok(()), |m| check_month(prefix, m)),
        check_office("送信元事業所番号", from_office),
        from_type.map_or(Ok(()), |t| {
            check_service_type("送信元サービス種類コード", t)
        }),
        check_office("送信先事業所番号", to_office),
        to_type.map_or(Ok(()), |t| {
            check_service_type("送信先サービス種類コード", t)
        }),
        check_timestamp(timestamp),
    ];
    for check in checks {
        if let Err(msg) = check {
            return fail(msg);
        }
    }
    Ok(CareplanFileName {
        prefix: prefix.to_string(),
        month: month.map(str::to_string),
        from_office: from_office.to_string(),
        from_service_type: from_type.map(str::to_string),
        to_office: to_office.to_string(),
        to_service_type: to_type.map(str::to_string),
        timestamp: timestamp.to_string(),
        extension: extension.to_string(),
    })
}

/// Formats a file name from its parts (the inverse of
/// [`parse_careplan_file_name`]; no validation).
pub fn format_careplan_file_name(f: &CareplanFileName) -> String {
    let mut out = f.prefix.clone();
    let parts = [
        f.month.as_deref(),
        Some(f.from_office.as_str()),
        f.from_service_type.as_deref(),
        Some(f.to_office.as_str()),
        f.to_service_type.as_deref(),
        Some(f.timestamp.as_str()),
    ];
    for part in parts.into_iter().flatten() {
        out.push('_');
        out.push_str(part);
    }
    out.push('.');
    out.push_str(&f.extension);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_ok(name: &str) -> CareplanFileName {
        match parse_careplan_file_name(name) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    fn name_err(name: &str) -> String {
        match parse_careplan_file_name(name) {
            Ok(f) => panic!("accepted {name}: {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn file_name_v41_with_month_parses_and_formats_back() {
        let name = "UPPLAN_201912_0300000100_43_0300000005_11_20191025200201.CSV";
        let f = name_ok(name);
        assert_eq!(
            f,
            CareplanFileName {
                prefix: "UPPLAN".into(),
                month: Some("201912".into()),
                from_office: "0300000100".into(),
                from_service_type: Some("43".into()),
                to_office: "0300000005".into(),
                to_service_type: Some("11".into()),
                timestamp: "20191025200201".into(),
                extension: "CSV".into(),
            }
        );
        assert_eq!(format_careplan_file_name(&f), name);
    }

    #[test]
    fn file_name_v41_without_month_and_directories_stripped() {
        let f = name_ok("/in/box\\UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV");
        assert_eq!(f.prefix, "UP2KYO");
        assert_eq!(f.month, None);
        assert_eq!(f.to_service_type.as_deref(), Some("11"));
        assert_eq!(
            format_careplan_file_name(&f),
            "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV"
        );
    }

    #[test]
    fn file_name_v3_form_has_no_service_types() {
        let name = "UPSIKYU_202303_0300000100_0300000005_20230410093000.csv";
        let f = name_ok(name);
        assert_eq!(f.month.as_deref(), Some("202303"));
        assert_eq!(
            (f.from_service_type.as_deref(), f.to_service_type.as_deref()),
            (None, None)
        );
        assert_eq!(f.extension, "csv");
        assert_eq!(format_careplan_file_name(&f), name);
        assert_eq!(
            name_ok("UP1KYO_0300000100_0300000005_20230410093000.CSV").month,
            None
        );
    }

    #[test]
    fn file_name_underscored_prefixes_and_alphanumeric_types() {
        let f = name_ok("UPKIHON_SUB1_0300000100_2A_0300000005_A1_20240229235959.CSV");
        assert_eq!(f.prefix, "UPKIHON_SUB1");
        assert_eq!(f.from_service_type.as_deref(), Some("2A"));
        assert_eq!(
            name_ok("UPYOBO_SUB_0300000100_46_0300000005_A1_20240101000000.CSV").prefix,
            "UPYOBO_SUB"
        );
        assert_eq!(
            name_ok("UPKIHON_0300000100_46_0300000005_A1_20240101000000.CSV").prefix,
            "UPKIHON"
        );
    }

    #[test]
    fn file_name_uphosoku_accepts_zero_month_others_do_not() {
        assert_eq!(
            name_ok("UPHOSOKU_000000_0300000100_43_0300000005_11_20251025200201.CSV")
                .month
                .as_deref(),
            Some("000000")
        );
        let e = name_err("UPPLAN_000000_0300000100_43_0300000005_11_20251025200201.CSV");
        assert!(
            e.contains("年月 `000000` has month 00; expected 01–12"),
            "{e}"
        );
        let e = name_err("UPJSK_202513_0300000100_43_0300000005_11_20251025200201.CSV");
        assert!(e.contains("month 13"), "{e}");
    }

    #[test]
    fn file_name_month_slot_required_exactly_where_the_table_says() {
        let e = name_err("UPPLAN_0300000100_43_0300000005_11_20191025200201.CSV");
        assert!(e.contains("expected `UPPLAN_YYYYMM_"), "{e}");
        let e = name_err("UP2KYO_201912_0300000100_43_0300000005_11_20191025200201.CSV");
        assert!(e.contains("UP2KYO has no YYYYMM slot"), "{e}");
        let e = name_err("UPKIHON_000000_0300000100_43_0300000005_11_20191025200201.CSV");
        assert!(e.contains("UPKIHON has no YYYYMM slot"), "{e}");
    }

    #[test]
    fn file_name_errors_name_the_wrong_part() {
        let cases = [
            (
                "UP2KYO_03000001_43_0300000005_11_20251025200201.CSV",
                "file name `UP2KYO_03000001_43_0300000005_11_20251025200201.CSV`: 送信元事業所番号 `03000001` must be 10 digits",
            ),
            (
                "UP2KYO_0300000100_43_03000000X5_11_20251025200201.CSV",
                "送信先事業所番号 `03000000X5` must be 10 digits",
            ),
            (
                "UP2KYO_0300000100_431_0300000005_11_20251025200201.CSV",
                "送信元サービス種類コード `431` must be 2",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_1-_20251025200201.CSV",
                "送信先サービス種類コード `1-` must be 2",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_2025102520020.CSV",
                "日時 `2025102520020` must be 14 digits",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20250230120000.CSV",
                "has day 30; 2025-02 has days 01–28",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20230229120000.CSV",
                "has day 29; 2023-02 has days 01–28",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_21000229120000.CSV",
                "has day 29; 2100-02 has days 01–28",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251131120000.CSV",
                "has day 31; 2025-11 has days 01–30",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251301120000.CSV",
                "has month 13",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251025240000.CSV",
                "has time 24:00:00",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251025236000.CSV",
                "has time 23:60:00",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251025235960.CSV",
                "has time 23:59:60",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251025200201.TXT",
                "extension `.TXT` must be `.CSV` or `.csv`",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_11_20251025200201",
                "no extension",
            ),
            (
                "UP9KYO_0300000100_43_0300000005_11_20251025200201.CSV",
                "unknown prefix `UP9KYO`; expected one of UPHOSOKU",
            ),
            (
                "UP2KYO_0300000100_43_0300000005_20251025200201.CSV",
                "has 4 `_`-separated parts after UP2KYO",
            ),
            (
                "UPKIHON_IMAGE_0300000100_46_0300000005_A1_20240101000000_0001.jpg",
                "UPKIHON_IMAGE is the 家族構成 image",
            ),
        ];
        for (name, want) in cases {
            let e = name_err(name);
            assert!(e.contains(want), "{name}: {e}");
            assert!(e.starts_with("file name `"), "{e}");
        }
        assert!(
            name_ok("UP2KYO_0300000100_43_0300000005_11_20240229000000.CSV").timestamp
                == "20240229000000"
        );
        assert!(
            name_ok("UP2KYO_0300000100_43_0300000005_11_20000229000000.CSV").timestamp
                == "20000229000000"
        );
    }

    #[test]
    fn file_name_serializes_to_json() {
        let f = name_ok("UP2KYO_0300000100_0300000005_20251025200201.CSV");
        let json = serde_json::to_string(&f).unwrap_or_default();
        assert!(json.contains("\"from_service_type\":null"), "{json}");
        assert!(json.contains("\"timestamp\":\"20251025200201\""), "{json}");
    }
}
