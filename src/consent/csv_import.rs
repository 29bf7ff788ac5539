//! Consent CSV (UTF-8) → grants for the registry.
//!
//! In: a UTF-8 text (a leading BOM is skipped) whose first record is the header
//! `insurer_number,insured_number,grantee,categories,valid_from,valid_to,purpose` (columns in any order,
//! each exactly once, no others). Fields may be quoted RFC 4180 style (`"a, b"`, `""` for a quote, line
//! breaks inside quotes); values are trimmed; blank lines are skipped. `grantee` is a party kind
//! (`hospital`, `provider`, `municipality`, `platform`) or a party id; `categories` is `;`-separated;
//! `valid_to` and `purpose` may be empty. Out: one [`Consent`] per row, with a content-derived id
//! `csv-<16 hex>` (FNV-1a of the row's values), so importing the same file twice grants nothing new.
//! Or the first [`CsvImportError`], with the line (where the record starts) and the column.
//!
//! It must never grant on doubt: a malformed row is an error for the whole file, never skipped or repaired,
//! and nothing here guesses a column, a category or a date.

use thiserror::Error;

use super::{
    Category, Consent, ConsentId, Grantee, InsuredNumber, InsurerNumber, IsoDate, Subject,
    ValueError,
};

/// The header, in the order used when writing one.
pub const COLUMNS: [&str; 7] = [
    "insurer_number",
    "insured_number",
    "grantee",
    "categories",
    "valid_from",
    "valid_to",
    "purpose",
];

/// A consent CSV that could not be read: line (1-based; where the record starts), column and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}{}: {problem}", column_note(.column))]
pub struct CsvImportError {
    /// Line where the offending record starts (the header is line 1).
    pub line: usize,
    /// Column name, when the problem is in one field.
    pub column: Option<String>,
    /// What is wrong.
    pub problem: CsvProblem,
}

fn column_note(column: &Option<String>) -> String {
    column
        .as_ref()
        .map(|name| format!(", column {name}"))
        .unwrap_or_default()
}

/// What is wrong at a [`CsvImportError`]'s line and column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsvProblem {
    #[error("empty file; the first line must be the header {}", COLUMNS.join(","))]
    NoHeader,
    #[error("unknown column; the header is {}", COLUMNS.join(","))]
    UnknownColumn,
    #[error("column appears twice in the header")]
    DuplicateColumn,
    #[error("column missing from the header")]
    MissingColumn,
    #[error("quoted field is not closed; add the closing `\"`")]
    UnterminatedQuote,
    #[error(
        "`{found}` after a closing quote; a quoted field must be followed by `,` or the end of the line"
    )]
    CharacterAfterQuote { found: char },
    #[error("`\"` inside an unquoted field; quote the whole field and double the quote (`\"\"`)")]
    QuoteInUnquotedField,
    #[error("carriage return not followed by a line feed")]
    StrayCarriageReturn,
    #[error("{found} fields, the header has {expected}")]
    FieldCount { expected: usize, found: usize },
    #[error("empty; {hint}")]
    Required { hint: &'static str },
    #[error("empty category between `;`")]
    EmptyCategory,
    #[error("{0}")]
    Value(ValueError),
}

/// Reads a consent CSV; see the module documentation for the format.
pub fn consents_from_csv(text: &str) -> Result<Vec<Consent>, CsvImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = split_records(text)?.into_iter();
    let header = records.next().ok_or(CsvImportError {
        line: 1,
        column: None,
        problem: CsvProblem::NoHeader,
    })?;
    let positions = read_header(&header)?;
    records
        .map(|record| read_row(&record, &positions, header.fields.len()))
        .collect()
}

/// One CSV record: the line it starts on and its raw fields.
#[derive(Debug)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

fn split_records(text: &str) -> Result<Vec<Record>, CsvImportError> {
    let structural = |line, problem| CsvImportError {
        line,
        column: None,
        problem,
    };
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut records = Vec::new();
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        loop {
            let mut field = String::new();
            if chars.next_if_eq(&'"').is_some() {
                let opened_on = line;
                loop {
                    match chars.next() {
                        None => return Err(structural(opened_on, CsvProblem::UnterminatedQuote)),
                        Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                if let Some(&found) = chars.peek()
                    && !matches!(found, ',' | '\n' | '\r')
                {
                    return Err(structural(line, CsvProblem::CharacterAfterQuote { found }));
                }
            } else {
                while let Some(c) = chars.next_if(|c| !matches!(c, ',' | '\n' | '\r')) {
                    if c == '"' {
                        return Err(structural(line, CsvProblem::QuoteInUnquotedField));
                    }
                    field.push(c);
                }
            }
            fields.push(field);
            match chars.next() {
                Some(',') => {}
                Some('\r') if chars.next_if_eq(&'\n').is_some() => {
                    line += 1;
                    break;
                }
                Some('\r') => return Err(structural(line, CsvProblem::StrayCarriageReturn)),
                // Only a line feed can be left here: the field loops stop at `,`, `\r` or `\n`.
                Some(_) => {
                    line += 1;
                    break;
                }
                None => break,
            }
        }
        let blank = matches!(fields.as_slice(), [only] if only.trim().is_empty());
        if !blank {
            records.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(records)
}

/// For each of [`COLUMNS`], its index in a record.
fn read_header(header: &Record) -> Result<[usize; 7], CsvImportError> {
    let error = |column: &str, problem| CsvImportError {
        line: header.line,
        column: Some(column.to_owned()),
        problem,
    };
    let mut positions: [Option<usize>; 7] = [None; 7];
    for (index, name) in header.fields.iter().enumerate() {
        let name = name.trim();
        let Some(k) = COLUMNS.iter().position(|c| *c == name) else {
            return Err(error(name, CsvProblem::UnknownColumn));
        };
        if positions[k].replace(index).is_some() {
            return Err(error(name, CsvProblem::DuplicateColumn));
        }
    }
    let mut found = [0; 7];
    for (k, position) in positions.iter().enumerate() {
        found[k] = position.ok_or_else(|| error(COLUMNS[k], CsvProblem::MissingColumn))?;
    }
    Ok(found)
}

fn read_row(
    record: &Record,
    positions: &[usize; 7],
    expected: usize,
) -> Result<Consent, CsvImportError> {
    if record.fields.len() != expected {
        return Err(CsvImportError {
            line: record.line,
            column: None,
            problem: CsvProblem::FieldCount {
                expected,
                found: record.fields.len(),
            },
        });
    }
    let error = |k: usize, problem| CsvImportError {
        line: record.line,
        column: Some(COLUMNS[k].to_owned()),
        problem,
    };
    // `positions` holds indexes below `expected`, which is `record.fields.len()`.
    let field = |k: usize| record.fields[positions[k]].trim();
    let required = |k: usize, hint| {
        let value = field(k);
        if value.is_empty() {
            Err(error(k, CsvProblem::Required { hint }))
        } else {
            Ok(value)
        }
    };
    let value = |k: usize| move |problem| error(k, CsvProblem::Value(problem));

    let insurer = required(0, "the 6-digit 保険者番号")?;
    let insured = required(1, "the 10-character 被保険者番号")?;
    let subject = Subject {
        insurer_number: InsurerNumber::parse(insurer).map_err(|e| value(0)(e.into()))?,
        insured_number: InsuredNumber::parse(insured).map_err(|e| value(1)(e.into()))?,
    };
    let grantee_text = required(
        2,
        "a party id or a kind: hospital, provider, municipality, platform",
    )?;
    let grantee = Grantee::parse(grantee_text).map_err(value(2))?;

    let mut categories: Vec<Category> = Vec::new();
    for code in required(3, "one or more categories separated by `;`")?.split(';') {
        let code = code.trim();
        if code.is_empty() {
            return Err(error(3, CsvProblem::EmptyCategory));
        }
        let category: Category = code.parse().map_err(value(3))?;
        if !categories.contains(&category) {
            categories.push(category);
        }
    }

    let valid_from = IsoDate::parse(required(4, "the first day, YYYY-MM-DD")?).map_err(value(4))?;
    let valid_to = match field(5) {
        "" => None,
        text => Some(IsoDate::parse(text).map_err(value(5))?),
    };
    if let Some(to) = &valid_to
        && *to < valid_from
    {
        return Err(error(
            5,
            CsvProblem::Value(ValueError::PeriodReversed {
                valid_from: valid_from.to_string(),
                valid_to: to.to_string(),
            }),
        ));
    }
    let purpose = match field(6) {
        "" => None,
        text => Some(text.to_owned()),
    };

    let canonical = [
        subject.insurer_number.as_str(),
        subject.insured_number.as_str(),
        grantee_text,
        &categories
            .iter()
            .map(|c| c.code())
            .collect::<Vec<_>>()
            .join(";"),
        valid_from.as_str(),
        valid_to.as_ref().map_or("", IsoDate::as_str),
        purpose.as_deref().unwrap_or(""),
    ]
    .join("\u{1f}");
    let id = ConsentId::parse(&format!("csv-{:016x}", fnv1a_64(canonical.as_bytes())))
        .map_err(|problem| error(0, CsvProblem::Value(problem)))?;

    Ok(Consent {
        id,
        subject,
        grantee,
        categories,
        valid_from,
        valid_to,
        purpose,
        revoked_at: None,
    })
}

/// FNV-1a, 64 bits: a stable, dependency-free digest for content-derived ids (not for security).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::PartyKind;
    use super::*;

    const HEADER: &str =
        "insurer_number,insured_number,grantee,categories,valid_from,valid_to,purpose";

    fn csv(rows: &[&str]) -> String {
        let mut text = String::from(HEADER);
        for row in rows {
            text.push('\n');
            text.push_str(row);
        }
        text.push('\n');
        text
    }

    fn error_of(text: &str) -> CsvImportError {
        consents_from_csv(text).expect_err("the file is refused")
    }

    #[test]
    fn rows_become_consents_with_kind_and_party_grantees() {
        let text = csv(&[
            "131011,0000000001,1312345678,care-plan;certification,2024-04-01,2025-03-31,",
            "435073,H123456789,municipality,claims,2024-04-01,,\"care, coordination\"",
        ]);
        let consents = consents_from_csv(&text).expect("valid file");
        assert_eq!(consents.len(), 2);
        assert_eq!(
            consents[0].subject,
            Subject::new("131011", "0000000001").expect("valid")
        );
        assert_eq!(
            consents[0].grantee,
            Grantee::parse("1312345678").expect("valid")
        );
        assert_eq!(
            consents[0].categories,
            vec![Category::CarePlan, Category::Certification]
        );
        assert_eq!(
            consents[0].valid_to.as_ref().map(IsoDate::as_str),
            Some("2025-03-31")
        );
        assert_eq!(consents[0].purpose, None);
        assert_eq!(consents[1].grantee, Grantee::Kind(PartyKind::Municipality));
        assert_eq!(consents[1].valid_to, None);
        assert_eq!(consents[1].purpose.as_deref(), Some("care, coordination"));
        assert!(consents.iter().all(|c| c.validate().is_ok()));
    }

    #[test]
    fn bom_crlf_reordered_columns_quotes_and_blank_lines_are_accepted() {
        let text = "\u{feff}purpose,grantee,insurer_number,insured_number,categories,valid_from,valid_to\r\n\
                    \"say \"\"hi\"\"\", hospital ,131011,0000000001, life ; housing ,2024-04-01,2024-04-30\r\n\
                    \r\n";
        let consents = consents_from_csv(text).expect("valid file");
        assert_eq!(consents.len(), 1);
        assert_eq!(consents[0].purpose.as_deref(), Some("say \"hi\""));
        assert_eq!(consents[0].grantee, Grantee::Kind(PartyKind::Hospital));
        assert_eq!(
            consents[0].categories,
            vec![Category::Life, Category::Housing]
        );
    }

    #[test]
    fn a_header_only_file_grants_nothing_and_an_empty_file_is_refused() {
        assert_eq!(consents_from_csv(HEADER), Ok(Vec::new()));
        assert_eq!(error_of("").problem, CsvProblem::NoHeader);
    }

    #[test]
    fn ids_are_derived_from_content_so_reimport_is_idempotent() {
        let row = "131011,0000000001,hospital,life,2024-04-01,,";
        let once = consents_from_csv(&csv(&[row])).expect("valid");
        let again = consents_from_csv(&csv(&[row, row])).expect("valid");
        assert_eq!(once[0].id, again[0].id);
        assert_eq!(again[0].id, again[1].id);
        let other = consents_from_csv(&csv(&["131011,0000000001,hospital,life,2024-04-02,,"]))
            .expect("valid");
        assert_ne!(once[0].id, other[0].id);
        assert!(once[0].id.as_str().starts_with("csv-"));
        assert_eq!(once[0].id.as_str().len(), 20);
    }

    #[test]
    fn a_bad_check_digit_names_line_and_column() {
        let text = csv(&[
            "131011,0000000001,hospital,life,2024-04-01,,",
            "435074,0000000001,hospital,life,2024-04-01,,",
        ]);
        let err = error_of(&text);
        assert_eq!(
            (err.line, err.column.as_deref()),
            (3, Some("insurer_number"))
        );
        assert!(matches!(
            err.problem,
            CsvProblem::Value(ValueError::Identifier(
                crate::identifiers::IdError::InsurerNumberCheckDigit { .. }
            ))
        ));
        assert!(
            err.to_string()
                .starts_with("line 3, column insurer_number: "),
            "{err}"
        );
    }

    #[test]
    fn line_numbers_count_line_breaks_inside_quoted_fields() {
        let text = csv(&[
            "131011,0000000001,hospital,life,2024-04-01,,\"two\nlines\"",
            "131011,0000000001,hospital,lives,2024-04-01,,",
        ]);
        let err = error_of(&text);
        assert_eq!((err.line, err.column.as_deref()), (4, Some("categories")));
        assert_eq!(
            err.problem,
            CsvProblem::Value(ValueError::UnknownCategory {
                value: "lives".into()
            })
        );
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_is_refused() {
        let err = error_of(&csv(&["131011,0000000001,hospital,life,2024-04-01"]));
        assert_eq!(err.line, 2);
        assert_eq!(
            err.problem,
            CsvProblem::FieldCount {
                expected: 7,
                found: 5
            }
        );
    }

    #[test]
    fn header_problems_name_the_column() {
        let unknown = error_of(
            "insurer_number,insured_number,grantee,categories,valid_from,valid_to,purpose,note\n",
        );
        assert_eq!(
            (unknown.line, unknown.column.as_deref(), unknown.problem),
            (1, Some("note"), CsvProblem::UnknownColumn)
        );
        let missing =
            error_of("insurer_number,insured_number,grantee,categories,valid_from,valid_to\n");
        assert_eq!(
            (missing.column.as_deref(), missing.problem),
            (Some("purpose"), CsvProblem::MissingColumn)
        );
        let twice = error_of("insurer_number,insurer_number\n");
        assert_eq!(twice.problem, CsvProblem::DuplicateColumn);
    }

    #[test]
    fn quoting_errors_name_the_line() {
        let open = error_of(&csv(&[
            "131011,0000000001,hospital,life,2024-04-01,,\"never closed",
        ]));
        assert_eq!(
            (open.line, open.problem),
            (2, CsvProblem::UnterminatedQuote)
        );
        let after = error_of(&csv(&["131011,0000000001,\"hospital\"x,life,2024-04-01,,"]));
        assert_eq!(
            (after.line, after.problem),
            (2, CsvProblem::CharacterAfterQuote { found: 'x' })
        );
        let stray = error_of(&csv(&["131011,0000000001,hos\"pital,life,2024-04-01,,"]));
        assert_eq!(stray.problem, CsvProblem::QuoteInUnquotedField);
    }

    #[test]
    fn empty_required_fields_and_empty_categories_are_refused() {
        let err = error_of(&csv(&["131011,0000000001,,life,2024-04-01,,"]));
        assert_eq!(err.column.as_deref(), Some("grantee"));
        assert!(matches!(err.problem, CsvProblem::Required { .. }));
        let err = error_of(&csv(&[
            "131011,0000000001,hospital,life;;claims,2024-04-01,,",
        ]));
        assert_eq!(
            (err.column.as_deref(), err.problem),
            (Some("categories"), CsvProblem::EmptyCategory)
        );
    }

    #[test]
    fn bad_dates_and_reversed_periods_are_refused_at_their_column() {
        let err = error_of(&csv(&["131011,0000000001,hospital,life,2024/04/01,,"]));
        assert_eq!(err.column.as_deref(), Some("valid_from"));
        let err = error_of(&csv(&[
            "131011,0000000001,hospital,life,2024-04-01,2024-02-30,",
        ]));
        assert_eq!(err.column.as_deref(), Some("valid_to"));
        let err = error_of(&csv(&[
            "131011,0000000001,hospital,life,2024-04-01,2024-03-31,",
        ]));
        assert_eq!(err.column.as_deref(), Some("valid_to"));
        assert!(matches!(
            err.problem,
            CsvProblem::Value(ValueError::PeriodReversed { .. })
        ));
    }

    #[test]
    fn full_width_digits_in_the_insured_number_are_refused_without_echoing_it() {
        let err = error_of(&csv(&[
            "131011,０００００００００１,hospital,life,2024-04-01,,",
        ]));
        assert_eq!(err.column.as_deref(), Some("insured_number"));
        assert!(!err.to_string().contains('０'), "{err}");
    }
}
