//! CSV as the ケアプランデータ連携標準仕様 uses it: bytes in (MS932 by the
//! specification, UTF-8 or ISO-2022-JP tolerated) are decoded once and split
//! into records of fields kept as offsets into that text; records go back out
//! through [`CsvWriter`] and [`to_bytes`]. The specification's file names
//! (`UPPLAN_201912_0300000100_43_…`) are parsed in `careplan_file_name.rs`
//! and re-exported here. Errors say where: physical line and column (both 1-based,
//! columns counted in characters) and the 1-based field number. The parser
//! must never panic or guess: no byte is replaced, no malformed quoting is
//! repaired, and nothing here interprets field values (layouts, codes and
//! validation live elsewhere).
//!
//! Rules decided here (RFC 4180, strict where it matters):
//! * records end at CRLF or LF; a lone CR outside quotes is field data;
//! * any field may be quoted; inside quotes, delimiters, CR, LF and CRLF are
//!   kept exactly and `""` stands for one `"`;
//! * after a closing quote only a delimiter, a line ending or the end of the
//!   input may follow (anything else is an error), and a `"` inside an
//!   unquoted field is an error;
//! * `skip` physical lines (LF-terminated) are passed over unread before the first record,
//!   and every line number stays the file's own;
//! * with `quote: Quote::None` there is no quoting at all: `"` is ordinary data, never
//!   un-quoted, and no field can hold the delimiter or a line ending;
//! * a final record without a line ending is fine; line endings at the very
//!   end of the input make no records, but a blank line between records is a
//!   record with one empty field (so that validators can point at it);
//! * the writer quotes a field when asked or when it holds the delimiter,
//!   `"`, CR or LF, and writes a record made of one empty field as `""` so
//!   that it survives a round trip.

use std::borrow::Cow;

use super::charset::{self, Charset, CharsetError};
use crate::redact::{Disclose, Quoted};

pub use super::careplan_file_name::{
    CareplanFileName, format_careplan_file_name, parse_careplan_file_name,
};

/// Default for [`CsvOptions::max_fields`].
pub const DEFAULT_MAX_FIELDS: usize = 1024;

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Character set of the bytes; `None` means [`charset::sniff`].
    pub charset: Option<Charset>,
    /// Whether the first record is a header (the specification's files have
    /// none).
    pub header: bool,
    /// Field delimiter: an ASCII byte other than `"`, CR and LF.
    pub delimiter: u8,
    /// Most fields accepted in one record (header included): a structural bound. The input's
    /// size is bounded by the door it came through (`body_limit`), not here.
    pub max_fields: usize,
    /// Physical lines skipped before the header or the first data record (a LIFE CSV's first
    /// line is its table name). Skipped lines are not read as CSV: a `"` there opens nothing.
    /// Line numbers stay the file's own.
    pub skip: usize,
    /// Whether `"` quotes fields (RFC 4180) or is ordinary data.
    pub quote: Quote,
}

/// How a file quotes its fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quote {
    /// RFC 4180: a field may be quoted with `"` (the module documentation's rules).
    #[default]
    Double,
    /// No quoting at all: `"` is ordinary data, kept as it is, and a field ends at the next
    /// delimiter or line ending (the 認定支援センター送信 file).
    None,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            charset: None,
            header: false,
            delimiter: b',',
            max_fields: DEFAULT_MAX_FIELDS,
            skip: 0,
            quote: Quote::Double,
        }
    }
}

/// Why a CSV file could not be read. Positions are 1-based; lines are the
/// physical lines of the file, columns count characters, `field` is the
/// field's number in its record.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// [`CsvOptions::delimiter`] cannot be used (no position: not the
    /// file's fault).
    #[error(
        "delimiter 0x{delimiter:02X} cannot be used: it must be an ASCII character other than '\"', CR and LF"
    )]
    BadDelimiter { delimiter: u8 },
    /// The bytes are not valid in the charset (the error carries line,
    /// column and byte offset).
    #[error(transparent)]
    Charset(#[from] CharsetError),
    /// The input ends inside a quoted field.
    #[error(
        "line {line}, column {column}: unterminated quoted field (opened at line {open_line}, column {open_column}, field {field})"
    )]
    UnterminatedQuote {
        line: usize,
        column: usize,
        open_line: usize,
        open_column: usize,
        field: usize,
    },
    /// Something other than a delimiter or line ending follows a closing
    /// quote.
    #[error(
        "line {line}, column {column}: text after closing quote in field {field} (expected the delimiter or the end of the line)"
    )]
    TextAfterQuote {
        line: usize,
        column: usize,
        field: usize,
        /// The character found (for the sender only).
        found: Quoted,
    },
    /// A `"` inside a field that does not start with one.
    #[error(
        "line {line}, column {column}: '\"' inside unquoted field {field} (quote the whole field and double the inner quote)"
    )]
    QuoteInUnquotedField {
        line: usize,
        column: usize,
        field: usize,
    },
    /// A record has more than [`CsvOptions::max_fields`] fields.
    #[error(
        "line {line}, column {column}: field {field} is over the limit of {max} fields per record"
    )]
    TooManyFields {
        line: usize,
        column: usize,
        field: usize,
        max: usize,
    },
    /// A data record has another number of fields than the layout's (the mapping's
    /// `source.columns`).
    #[error("line {line} has {found} fields, expected {expected}: {}", field_count_hint(*found, *expected))]
    FieldCount {
        line: usize,
        found: usize,
        expected: usize,
    },
}

/// What usually breaks a record's field count: more fields than expected come from a
/// delimiter written inside free text, fewer from a line break there.
fn field_count_hint(found: usize, expected: usize) -> &'static str {
    if found > expected {
        "a comma inside free text is the usual cause"
    } else {
        "a line break inside free text, or a missing field, is the usual cause"
    }
}

impl Disclose for CsvError {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsvError::TextAfterQuote {
                line,
                column,
                field,
                found,
            } => {
                let found = found.reveal().chars().next().unwrap_or('\u{FFFD}');
                write!(
                    f,
                    "line {line}, column {column}: text after closing quote in field {field} (found {found:?}; expected the delimiter or the end of the line)"
                )
            }
            CsvError::Charset(e) => e.fmt_for_sender(f),
            other => std::fmt::Display::fmt(other, f),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Field {
    /// Byte range of the content (inside the quotes when quoted).
    start: usize,
    end: usize,
    quoted: bool,
    /// Holds `""` that must be unescaped.
    escaped: bool,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    first_field: usize,
    /// Physical line where the record starts.
    line: usize,
    /// Byte offset where the record starts (always the start of a line).
    offset: usize,
}

/// A parsed CSV file: the decoded text, kept once, and the records as
/// offsets into it.
#[derive(Clone, Debug)]
pub struct CsvFile {
    text: String,
    charset: Charset,
    line_ending: &'static str,
    header: Option<Vec<String>>,
    fields: Vec<Field>,
    /// All records, the header (if any) first.
    records: Vec<Record>,
    /// Index in `records` of the first data record.
    data_start: usize,
}

/// Reads CSV `bytes`: decodes (strictly) and splits into records. See the module
/// documentation for the rules.
pub fn parse(bytes: &[u8], opts: &CsvOptions) -> Result<CsvFile, CsvError> {
    let d = opts.delimiter;
    if !d.is_ascii() || d == b'"' || d == b'\r' || d == b'\n' {
        return Err(CsvError::BadDelimiter { delimiter: d });
    }
    let charset = opts.charset.unwrap_or_else(|| charset::sniff(bytes));
    let text = charset::decode(bytes, charset)?.into_owned();
    let parsed = split(&text, opts)?;
    let mut file = CsvFile {
        text,
        charset,
        line_ending: parsed.line_ending.unwrap_or("\r\n"),
        header: None,
        fields: parsed.fields,
        records: parsed.records,
        data_start: 0,
    };
    if opts.header && !file.records.is_empty() {
        let names = (0..file.raw_field_count(0))
            .map(|c| {
                file.raw_field(0, c)
                    .map(Cow::into_owned)
                    .unwrap_or_default()
            })
            .collect();
        file.header = Some(names);
        file.data_start = 1;
    }
    Ok(file)
}

struct Split {
    fields: Vec<Field>,
    records: Vec<Record>,
    line_ending: Option<&'static str>,
}

/// Start of the run of line endings (LF or CRLF) that ends `b`.
fn trailing_line_endings_start(b: &[u8]) -> usize {
    let mut i = b.len();
    while i > 0 && b.get(i - 1) == Some(&b'\n') {
        i -= 1;
        if i > 0 && b.get(i - 1) == Some(&b'\r') {
            i -= 1;
        }
    }
    i
}

fn column_of(text: &str, line_start: usize, pos: usize) -> usize {
    text.get(line_start..pos).map_or(0, |s| s.chars().count()) + 1
}

/// Byte offset and 1-based line number just after the first `n` physical lines of `b` (the
/// end of `b` when it has fewer).
fn skip_lines(b: &[u8], n: usize) -> (usize, usize) {
    let mut pos = 0usize;
    let mut line = 1usize;
    while line <= n {
        match b
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        {
            Some(off) => {
                pos += off + 1;
                line += 1;
            }
            None => return (b.len(), line),
        }
    }
    (pos, line)
}

fn split(text: &str, opts: &CsvOptions) -> Result<Split, CsvError> {
    let (delim, max_fields) = (opts.delimiter, opts.max_fields);
    let quoting = opts.quote == Quote::Double;
    let b = text.as_bytes();
    let n = b.len();
    let stop = trailing_line_endings_start(b);
    let mut fields = Vec::new();
    let mut records = Vec::new();
    let mut line_ending = None;
    let (mut pos, mut line) = skip_lines(b, opts.skip);
    let mut line_start = pos;

    while pos < stop {
        records.push(Record {
            first_field: fields.len(),
            line,
            offset: pos,
        });
        let mut field_no = 0usize;
        // One iteration per field; `break` ends the record.
        loop {
            field_no += 1;
            if field_no > max_fields {
                return Err(CsvError::TooManyFields {
                    line,
                    column: column_of(text, line_start, pos),
                    field: field_no,
                    max: max_fields,
                });
            }
            if quoting && b.get(pos) == Some(&b'"') {
                let (open_pos, open_line, open_line_start) = (pos, line, line_start);
                pos += 1;
                let start = pos;
                let mut escaped = false;
                loop {
                    let rest = b.get(pos..).unwrap_or(&[]);
                    let Some(off) = rest.iter().position(|&c| c == b'"' || c == b'\n') else {
                        return Err(CsvError::UnterminatedQuote {
                            line,
                            column: column_of(text, line_start, n),
                            open_line,
                            open_column: column_of(text, open_line_start, open_pos),
                            field: field_no,
                        });
                    };
                    pos += off;
                    if b.get(pos) == Some(&b'\n') {
                        pos += 1;
                        line += 1;
                        line_start = pos;
                    } else if b.get(pos + 1) == Some(&b'"') {
                        escaped = true;
                        pos += 2;
                    } else {
                        break;
                    }
                }
                fields.push(Field {
                    start,
                    end: pos,
                    quoted: true,
                    escaped,
                });
                pos += 1; // the closing quote
                match b.get(pos) {
                    None => break,
                    Some(&c) if c == delim => pos += 1,
                    Some(b'\n') => {
                        line_ending.get_or_insert("\n");
                        pos += 1;
                        line += 1;
                        line_start = pos;
                        break;
                    }
                    Some(b'\r') if b.get(pos + 1) == Some(&b'\n') => {
                        line_ending.get_or_insert("\r\n");
                        pos += 2;
                        line += 1;
                        line_start = pos;
                        break;
                    }
                    Some(_) => {
                        return Err(CsvError::TextAfterQuote {
                            line,
                            column: column_of(text, line_start, pos),
                            field: field_no,
                            found: Quoted::new(
                                text.get(pos..)
                                    .and_then(|s| s.chars().next())
                                    .unwrap_or('\u{FFFD}'),
                            ),
                        });
                    }
                }
            } else {
                let start = pos;
                let rest = b.get(pos..).unwrap_or(&[]);
                let hit = rest
                    .iter()
                    .position(|&c| c == delim || c == b'\n' || (quoting && c == b'"'));
                let Some(off) = hit else {
                    fields.push(Field {
                        start,
                        end: n,
                        quoted: false,
                        escaped: false,
                    });
                    pos = n;
                    break;
                };
                pos += off;
                match b.get(pos) {
                    Some(b'"') => {
                        return Err(CsvError::QuoteInUnquotedField {
                            line,
                            column: column_of(text, line_start, pos),
                            field: field_no,
                        });
                    }
                    Some(b'\n') => {
                        let crlf = pos > start && b.get(pos - 1) == Some(&b'\r');
                        line_ending.get_or_insert(if crlf { "\r\n" } else { "\n" });
                        fields.push(Field {
                            start,
                            end: if crlf { pos - 1 } else { pos },
                            quoted: false,
                            escaped: false,
                        });
                        pos += 1;
                        line += 1;
                        line_start = pos;
                        break;
                    }
                    _ => {
                        // the delimiter
                        fields.push(Field {
                            start,
                            end: pos,
                            quoted: false,
                            escaped: false,
                        });
                        pos += 1;
                    }
                }
            }
        }
    }
    Ok(Split {
        fields,
        records,
        line_ending,
    })
}

impl CsvFile {
    /// The charset the bytes were decoded with (given or sniffed).
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The header names, when parsed with `header: true` and the file has at
    /// least one record.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// 0-based index of the first header column named exactly `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.header.as_ref()?.iter().position(|h| h == name)
    }

    /// Number of data records (the header excluded).
    pub fn record_count(&self) -> usize {
        self.records.len().saturating_sub(self.data_start)
    }

    /// Number of fields of data record `rec` (0 if out of range).
    pub fn field_count(&self, rec: usize) -> usize {
        self.raw_field_count(rec.saturating_add(self.data_start))
    }

    /// Field `col` of data record `rec` (both 0-based), unquoted and with
    /// `""` unescaped; `None` if out of range, `Some("")` for an empty field.
    pub fn field(&self, rec: usize, col: usize) -> Option<Cow<'_, str>> {
        self.raw_field(rec.checked_add(self.data_start)?, col)
    }

    /// Checks that every data record has exactly `expected` fields; the first that has not is
    /// named by its physical line.
    pub fn check_field_count(&self, expected: usize) -> Result<(), CsvError> {
        match (0..self.record_count()).find(|&r| self.field_count(r) != expected) {
            None => Ok(()),
            Some(r) => Err(CsvError::FieldCount {
                line: self.line_of(r),
                found: self.field_count(r),
                expected,
            }),
        }
    }

    /// Whether field `col` of data record `rec` was quoted (false if out of
    /// range).
    pub fn was_quoted(&self, rec: usize, col: usize) -> bool {
        rec.checked_add(self.data_start)
            .and_then(|r| self.field_ref(r, col))
            .is_some_and(|f| f.quoted)
    }

    /// Physical line (1-based) where data record `rec` starts; 0 if out of
    /// range.
    pub fn line_of(&self, rec: usize) -> usize {
        rec.checked_add(self.data_start)
            .and_then(|r| self.records.get(r))
            .map_or(0, |r| r.line)
    }

    /// Physical line and column (1-based, columns in characters) where field
    /// `col` of data record `rec` starts (at its opening quote if quoted).
    pub fn field_location(&self, rec: usize, col: usize) -> Option<(usize, usize)> {
        let r = rec.checked_add(self.data_start)?;
        let record = self.records.get(r)?;
        let f = self.field_ref(r, col)?;
        let begin = if f.quoted {
            f.start.checked_sub(1)?
        } else {
            f.start
        };
        let between = self.text.get(record.offset..begin)?;
        let newlines = between.bytes().filter(|&c| c == b'\n').count();
        let line_text = match between.rfind('\n') {
            Some(i) => between.get(i + 1..)?,
            None => between,
        };
        Some((record.line + newlines, line_text.chars().count() + 1))
    }

    /// The line ending of the first record that had one: `"\r\n"` or
    /// `"\n"` (`"\r\n"` when none was seen).
    pub fn line_ending(&self) -> &'static str {
        self.line_ending
    }

    /// The whole decoded text (without a UTF-8 BOM).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn raw_field_count(&self, r: usize) -> usize {
        let Some(record) = self.records.get(r) else {
            return 0;
        };
        let end = self
            .records
            .get(r + 1)
            .map_or(self.fields.len(), |next| next.first_field);
        end.saturating_sub(record.first_field)
    }

    fn field_ref(&self, r: usize, col: usize) -> Option<&Field> {
        if col >= self.raw_field_count(r) {
            return None;
        }
        let record = self.records.get(r)?;
        self.fields.get(record.first_field.checked_add(col)?)
    }

    fn raw_field(&self, r: usize, col: usize) -> Option<Cow<'_, str>> {
        let f = self.field_ref(r, col)?;
        let s = self.text.get(f.start..f.end)?;
        if f.escaped {
            Some(Cow::Owned(s.replace("\"\"", "\"")))
        } else {
            Some(Cow::Borrowed(s))
        }
    }
}

/// Builds CSV text record by record: as UTF-8 ([`CsvWriter::write_record`]) or with each field
/// encoded as it is written ([`CsvWriter::write_record_with`]).
#[derive(Clone, Debug)]
pub struct CsvWriter {
    out: Vec<u8>,
    delimiter: char,
    line_ending: &'static str,
}

impl CsvWriter {
    /// A writer using `delimiter` (an ASCII byte other than `"`, CR and LF;
    /// others give text that [`parse`] refuses) and `line_ending` after
    /// every record.
    pub fn new(delimiter: u8, line_ending: &'static str) -> Self {
        CsvWriter {
            out: Vec::new(),
            delimiter: char::from(delimiter),
            line_ending,
        }
    }

    /// Appends one record. Each field is quoted when its flag says so or
    /// when it holds the delimiter, `"`, CR or LF; inner quotes are doubled.
    /// A record of one unquoted empty field is written as `""` (a bare blank
    /// line at the end of a file would not read back as a record). A record
    /// of no fields is written as a blank line.
    pub fn write_record<'a>(&mut self, fields: impl IntoIterator<Item = (&'a str, bool)>) {
        let utf8 = |out: &mut Vec<u8>, text: &str, _: usize| {
            out.extend_from_slice(text.as_bytes());
            Ok::<(), std::convert::Infallible>(())
        };
        match self.write_record_with(fields, utf8) {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// [`CsvWriter::write_record`] with the fields' text written by `put(out, text, column)`
    /// (column from 0), e.g. encoded into the file's charset. Quotes, delimiters and line
    /// endings are written as ASCII, so `put` must write a charset in which ASCII is itself and
    /// a piece of text encodes the same alone as within the field (UTF-8, MS932; not
    /// ISO-2022-JP). A field with inner quotes is put in pieces split after each quote. On
    /// error the record is left half written: discard the writer.
    pub fn write_record_with<'a, E>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a str, bool)>,
        mut put: impl FnMut(&mut Vec<u8>, &'a str, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut delimiter = [0u8; 4];
        let delimiter = self.delimiter.encode_utf8(&mut delimiter).as_bytes();
        let mut count = 0usize;
        let mut last_bare_empty = false;
        for (value, quote) in fields {
            if count > 0 {
                self.out.extend_from_slice(delimiter);
            }
            let column = count;
            count += 1;
            // A leading U+FEFF would read back as a UTF-8 BOM and vanish.
            let bom_like = self.out.is_empty() && count == 1 && value.starts_with('\u{FEFF}');
            let needs = quote
                || bom_like
                || value
                    .chars()
                    .any(|c| c == self.delimiter || c == '"' || c == '\r' || c == '\n');
            if needs {
                self.out.push(b'"');
                for part in value.split_inclusive('"') {
                    put(&mut self.out, part, column)?;
                    if part.ends_with('"') {
                        self.out.push(b'"');
                    }
                }
                self.out.push(b'"');
            } else {
                put(&mut self.out, value, column)?;
            }
            last_bare_empty = !needs && value.is_empty();
        }
        if count == 1 && last_bare_empty {
            self.out.extend_from_slice(b"\"\"");
        }
        self.out.extend_from_slice(self.line_ending.as_bytes());
        Ok(())
    }

    /// The text written so far by [`CsvWriter::write_record`].
    pub fn finish(self) -> String {
        String::from_utf8(self.out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The bytes written so far (by [`CsvWriter::write_record_with`]: in its charset).
    pub fn finish_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Encodes CSV text for output (thin wrapper over [`charset::encode`]);
/// `context` says where the text comes from, for the error message.
pub fn to_bytes(text: &str, charset: Charset, context: &str) -> Result<Vec<u8>, CharsetError> {
    charset::encode(text, charset, context)
}

// ---------------------------------------------------------------------------
// Dates in file names (the rules themselves: careplan_file_name.rs)
// ---------------------------------------------------------------------------

pub(super) fn all_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| c.is_ascii_digit())
}
/// Value of an all-ASCII-digit string (callers check the digits first).
pub(super) fn digits_value(s: &str) -> u32 {
    s.bytes().fold(0u32, |acc, c| {
        acc.saturating_mul(10)
            .saturating_add(u32::from(c.wrapping_sub(b'0')))
    })
}

pub(super) fn check_timestamp(ts: &str) -> Result<(), String> {
    if !all_digits(ts, 14) {
        return Err(format!("日時 `{ts}` must be 14 digits YYYYMMDDHHMMSS"));
    }
    let part = |from: usize, to: usize| ts.get(from..to).map_or(0, digits_value);
    let (year, month, day) = (part(0, 4), part(4, 6), part(6, 8));
    let (hour, minute, second) = (part(8, 10), part(10, 12), part(12, 14));
    if !(1..=12).contains(&month) {
        return Err(format!("日時 `{ts}` has month {month:02}; expected 01–12"));
    }
    let last_day = crate::calendar::days_in_month(i64::from(year), month);
    if day < 1 || day > last_day {
        return Err(format!(
            "日時 `{ts}` has day {day:02}; {year:04}-{month:02} has days 01–{last_day}"
        ));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "日時 `{ts}` has time {hour:02}:{minute:02}:{second:02}; expected hour 00–23, minute and second 00–59"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms932(text: &str) -> Vec<u8> {
        match to_bytes(text, Charset::Ms932, "test") {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_ok(bytes: &[u8], opts: &CsvOptions) -> CsvFile {
        match parse(bytes, opts) {
            Ok(f) => f,
            Err(e) => panic!("parse failed: {e}"),
        }
    }

    fn parse_err(bytes: &[u8], opts: &CsvOptions) -> CsvError {
        match parse(bytes, opts) {
            Ok(f) => panic!("expected an error, parsed {} records", f.record_count()),
            Err(e) => e,
        }
    }

    fn rows(f: &CsvFile) -> Vec<Vec<String>> {
        (0..f.record_count())
            .map(|r| {
                (0..f.field_count(r))
                    .map(|c| f.field(r, c).map(Cow::into_owned).unwrap_or_default())
                    .collect()
            })
            .collect()
    }

    fn write(records: &[Vec<(&str, bool)>]) -> String {
        let mut w = CsvWriter::new(b',', "\r\n");
        for rec in records {
            w.write_record(rec.iter().copied());
        }
        w.finish()
    }

    #[test]
    fn ms932_kanji_kana_embedded_newline_and_doubled_quote_parse() {
        let text = "202407,131044,\"介護\r\n計画\",ｶﾅｶﾞ,\"彼は\"\"元気\"\"\",\r\n髙﨑,①\r\n";
        let bytes = ms932(text);
        let f = parse_ok(&bytes, &CsvOptions::default());
        assert_eq!(f.charset(), Charset::Ms932);
        assert_eq!(f.record_count(), 2);
        assert_eq!(f.field_count(0), 6);
        assert_eq!(f.field(0, 0).as_deref(), Some("202407"));
        assert_eq!(f.field(0, 2).as_deref(), Some("介護\r\n計画"));
        assert_eq!(f.field(0, 3).as_deref(), Some("ｶﾅｶﾞ"));
        assert_eq!(f.field(0, 4).as_deref(), Some("彼は\"元気\""));
        assert_eq!(f.field(0, 5).as_deref(), Some(""));
        assert_eq!(f.field(0, 6), None);
        assert!(f.was_quoted(0, 2) && f.was_quoted(0, 4));
        assert!(!f.was_quoted(0, 0) && !f.was_quoted(0, 5) && !f.was_quoted(9, 0));
        assert_eq!(f.field(1, 0).as_deref(), Some("髙﨑"));
        assert_eq!((f.line_of(0), f.line_of(1), f.line_of(2)), (1, 3, 0));
        assert_eq!(f.line_ending(), "\r\n");
        assert!(matches!(f.field(0, 0), Some(Cow::Borrowed(_))));
        assert!(matches!(f.field(0, 4), Some(Cow::Owned(_))));
    }

    #[test]
    fn field_locations_follow_physical_lines_and_characters() {
        let f = parse_ok(
            "a,\"x\ny\",介護,z\nq,r\n".as_bytes(),
            &CsvOptions::default(),
        );
        assert_eq!(f.field_location(0, 0), Some((1, 1)));
        assert_eq!(f.field_location(0, 1), Some((1, 3)));
        assert_eq!(f.field_location(0, 2), Some((2, 4)));
        assert_eq!(f.field_location(0, 3), Some((2, 7)));
        assert_eq!(f.field_location(1, 1), Some((3, 3)));
        assert_eq!(f.field_location(1, 2), None);
        assert_eq!(f.line_ending(), "\n");
    }

    #[test]
    fn unterminated_quote_names_where_it_opened() {
        let err = parse_err(b"a,b\r\nc,\"open\r\nmore\r\n", &CsvOptions::default());
        assert_eq!(
            err.to_string(),
            "line 4, column 1: unterminated quoted field (opened at line 2, column 3, field 2)"
        );
        let err = parse_err("x\n\"介護".as_bytes(), &CsvOptions::default());
        assert!(matches!(
            err,
            CsvError::UnterminatedQuote {
                line: 2,
                column: 4,
                open_line: 2,
                open_column: 1,
                field: 1
            }
        ));
    }

    #[test]
    fn text_after_closing_quote_is_an_error() {
        let err = parse_err(b"1,2\n3,\"ab\"c,d\n", &CsvOptions::default());
        assert_eq!(
            err.for_sender().to_string(),
            "line 2, column 7: text after closing quote in field 2 (found 'c'; expected the delimiter or the end of the line)"
        );
        // The character is the sender's data: everyone else reads where, not what.
        assert_eq!(
            err.to_string(),
            "line 2, column 7: text after closing quote in field 2 (expected the delimiter or the end of the line)"
        );
        // A lone CR after the closing quote is not a line ending.
        assert!(matches!(
            parse_err(b"\"a\"\rb", &CsvOptions::default()),
            CsvError::TextAfterQuote { found, .. } if found.reveal() == "\r"
        ));
    }

    #[test]
    fn quote_inside_unquoted_field_is_an_error() {
        let err = parse_err("介護,ab\"c\n".as_bytes(), &CsvOptions::default());
        assert!(matches!(
            err,
            CsvError::QuoteInUnquotedField {
                line: 1,
                column: 6,
                field: 2
            }
        ));
    }

    #[test]
    fn invalid_ms932_bytes_report_line_and_column() {
        let mut bytes = ms932("a,b\r\n介,");
        bytes.extend_from_slice(&[0x81, 0x20, b'\r', b'\n']);
        let opts = CsvOptions {
            charset: Some(Charset::Ms932),
            ..CsvOptions::default()
        };
        let err = parse_err(&bytes, &opts);
        assert!(matches!(
            err,
            CsvError::Charset(CharsetError::Decode {
                line: 2,
                column: 3,
                offset: 8,
                ..
            })
        ));
        assert!(
            err.to_string()
                .contains("line 2, column 3 (byte offset 8): not valid MS932"),
            "{err}"
        );
    }

    #[test]
    fn utf8_with_bom_is_sniffed_and_stripped() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice("名前,値\n介護,1\n".as_bytes());
        let f = parse_ok(&bytes, &CsvOptions::default());
        assert_eq!(f.charset(), Charset::Utf8);
        assert_eq!(f.field(0, 0).as_deref(), Some("名前"));
        assert_eq!(f.record_count(), 2);
        assert_eq!(f.line_ending(), "\n");
    }

    #[test]
    fn header_mode_excludes_header_and_indexes_columns() {
        let opts = CsvOptions {
            header: true,
            ..CsvOptions::default()
        };
        let f = parse_ok(b"id,\"na\"\"me\",x\r\n1,a,b\r\n2,c,d\r\n", &opts);
        let header: Vec<&str> = f
            .header()
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(header, ["id", "na\"me", "x"]);
        assert_eq!(f.column_index("x"), Some(2));
        assert_eq!(f.column_index("na\"me"), Some(1));
        assert_eq!(f.column_index("missing"), None);
        assert_eq!(f.record_count(), 2);
        assert_eq!(f.field(0, 0).as_deref(), Some("1"));
        assert_eq!(f.field(1, 2).as_deref(), Some("d"));
        assert_eq!((f.line_of(0), f.line_of(1)), (2, 3));

        let empty = parse_ok(b"", &opts);
        assert!(empty.header().is_none());
        assert_eq!(empty.record_count(), 0);
        let plain = parse_ok(b"id\n", &CsvOptions::default());
        assert_eq!((plain.header(), plain.column_index("id")), (None, None));
    }

    #[test]
    fn record_boundaries_trailing_blank_lines_and_lone_cr() {
        let opts = CsvOptions::default();
        assert_eq!(rows(&parse_ok(b"a,b", &opts)), [["a", "b"]]);
        assert_eq!(rows(&parse_ok(b"a,b\r\n\r\n\n", &opts)), [["a", "b"]]);
        assert_eq!(rows(&parse_ok(b"a\n\nb\n", &opts)), [["a"], [""], ["b"]]);
        assert_eq!(rows(&parse_ok(b"a\rb,c\r", &opts)), [["a\rb", "c\r"]]);
        assert_eq!(rows(&parse_ok(b"a,\n", &opts)), [["a", ""]]);
        assert_eq!(rows(&parse_ok(b"\"\"", &opts)), [[""]]);
        assert_eq!(
            rows(&parse_ok(b"\"a\r\n\r\n\"\r\n", &opts)),
            [["a\r\n\r\n"]]
        );
        assert_eq!(parse_ok(b"", &opts).record_count(), 0);
        assert_eq!(parse_ok(b"\r\n", &opts).line_ending(), "\r\n");
        let f = parse_ok(b"a\n\nb\n", &opts);
        assert_eq!((f.line_of(1), f.line_of(2)), (2, 3));
    }

    #[test]
    fn skipped_lines_are_not_read_and_lines_keep_their_numbers() {
        // A LIFE CSV: table name, header, data; the table name may hold anything, even a `"`.
        let opts = CsvOptions {
            skip: 1,
            header: true,
            ..CsvOptions::default()
        };
        let f = parse_ok(
            "利用者情報\"\r\nID,氏名\r\n1,介護 太郎\r\n2,\"介護\r\n花子\"\r\n3,x\r\n".as_bytes(),
            &opts,
        );
        assert_eq!(f.header().map(<[String]>::len), Some(2));
        assert_eq!(f.column_index("氏名"), Some(1));
        assert_eq!(
            rows(&f),
            [["1", "介護 太郎"], ["2", "介護\r\n花子"], ["3", "x"]]
        );
        assert_eq!((f.line_of(0), f.line_of(1), f.line_of(2)), (3, 4, 6));
        assert_eq!(f.field_location(2, 1), Some((6, 3)));
        // Errors name the file's physical lines.
        let err = parse_err(
            b"title\na,b\nc,d\"e\n",
            &CsvOptions {
                skip: 1,
                ..CsvOptions::default()
            },
        );
        assert!(
            matches!(
                err,
                CsvError::QuoteInUnquotedField {
                    line: 3,
                    column: 4,
                    field: 2
                }
            ),
            "{err}"
        );
        // More lines skipped than the file has: no records.
        let f = parse_ok(
            b"a\nb",
            &CsvOptions {
                skip: 5,
                ..CsvOptions::default()
            },
        );
        assert_eq!(f.record_count(), 0);
        let f = parse_ok(
            b"a\nb",
            &CsvOptions {
                skip: 1,
                ..CsvOptions::default()
            },
        );
        assert_eq!((rows(&f), f.line_of(0)), (vec![vec!["b".to_string()]], 2));
    }

    #[test]
    fn without_quoting_a_quote_is_ordinary_data() {
        let opts = CsvOptions {
            quote: Quote::None,
            ..CsvOptions::default()
        };
        let f = parse_ok(
            "131011,\"介護\",a\"b\"\"c,\"\r\n\"x,y\"\r\n".as_bytes(),
            &opts,
        );
        assert_eq!(
            rows(&f),
            [
                vec!["131011", "\"介護\"", "a\"b\"\"c", "\""],
                vec!["\"x", "y\""]
            ]
        );
        assert!(!f.was_quoted(0, 1));
        assert_eq!(f.line_of(1), 2);
        // A line ending always ends the record: a `"` opens nothing that could span it.
        let f = parse_ok(b"\"a\nb\"\n", &opts);
        assert_eq!(rows(&f), [["\"a"], ["b\""]]);
        // The same bytes under RFC 4180 are one quoted field.
        let f = parse_ok(b"\"a\nb\"\n", &CsvOptions::default());
        assert_eq!(rows(&f), [["a\nb"]]);
    }

    #[test]
    fn a_record_with_another_field_count_is_named_by_its_line() {
        let opts = CsvOptions {
            skip: 1,
            header: true,
            ..CsvOptions::default()
        };
        let f = parse_ok(
            "title\na,b,c\n1,2,3\n\"x\ny\",2,3\n4,5\n6,7,8,9\n".as_bytes(),
            &opts,
        );
        let err = f.check_field_count(3).expect_err("line 6 has 2 fields");
        assert_eq!(
            err.to_string(),
            "line 6 has 2 fields, expected 3: a line break inside free text, or a missing field, is the usual cause"
        );
        assert_eq!(err.for_sender().to_string(), err.to_string());
        let f = parse_ok(b"1,2,3\n4,5,6,7\n", &CsvOptions::default());
        assert_eq!(
            f.check_field_count(3).map_err(|e| e.to_string()),
            Err(
                "line 2 has 4 fields, expected 3: a comma inside free text is the usual cause"
                    .into()
            )
        );
        assert!(f.check_field_count(4).is_err());
        assert!(
            parse_ok(b"1,2,3\n4,5,6\n", &CsvOptions::default())
                .check_field_count(3)
                .is_ok()
        );
        assert!(
            parse_ok(b"", &CsvOptions::default())
                .check_field_count(3)
                .is_ok()
        );
    }

    #[test]
    fn tab_delimiter_and_bad_delimiter() {
        let opts = CsvOptions {
            delimiter: b'\t',
            ..CsvOptions::default()
        };
        assert_eq!(rows(&parse_ok(b"a,b\tc\n", &opts)), [["a,b", "c"]]);
        for d in [b'"', b'\n', b'\r', 0x82] {
            let opts = CsvOptions {
                delimiter: d,
                ..CsvOptions::default()
            };
            assert!(
                matches!(parse_err(b"a", &opts), CsvError::BadDelimiter { delimiter } if delimiter == d)
            );
        }
    }

    #[test]
    fn the_limit_on_fields_per_record_is_enforced() {
        let opts = CsvOptions {
            max_fields: 2,
            ..CsvOptions::default()
        };
        assert!(parse(b"a,b\nc,d\n", &opts).is_ok());
        let err = parse_err(b"a,b\nc,d,e\n", &opts);
        assert_eq!(
            err.to_string(),
            "line 2, column 5: field 3 is over the limit of 2 fields per record"
        );
    }

    #[test]
    fn writer_quotes_when_asked_or_needed_and_round_trips() {
        let records: Vec<Vec<(&str, bool)>> = vec![
            vec![("202407", false), ("介護", true), ("", false), ("", true)],
            vec![
                ("a,b", false),
                ("say \"hi\"", false),
                ("x\r\ny", false),
                ("cr\r", false),
            ],
            vec![("", false)],
            vec![(" spaced ", false), ("\"", false), ("\"\"", true)],
        ];
        let text = write(&records);
        assert!(text.starts_with(
            "202407,\"介護\",,\"\"\r\n\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\",\"cr\r\"\r\n\"\"\r\n"
        ));
        let f = parse_ok(text.as_bytes(), &CsvOptions::default());
        let want: Vec<Vec<&str>> = records
            .iter()
            .map(|r| r.iter().map(|(v, _)| *v).collect())
            .collect();
        assert_eq!(rows(&f), want);
        assert!(f.was_quoted(0, 1) && f.was_quoted(0, 3) && !f.was_quoted(0, 2));
    }

    #[test]
    fn writer_quotes_a_leading_bom_character_so_it_survives() {
        let mut w = CsvWriter::new(b',', "\n");
        w.write_record([("\u{FEFF}x", false), ("\u{FEFF}", false)]);
        let text = w.finish();
        assert_eq!(text, "\"\u{FEFF}x\",\u{FEFF}\n");
        let f = parse_ok(text.as_bytes(), &CsvOptions::default());
        assert_eq!(rows(&f), [["\u{FEFF}x", "\u{FEFF}"]]);
    }

    #[test]
    fn realistic_up2kyo_ms932_round_trips_byte_for_byte() {
        let records: Vec<Vec<(&str, bool)>> = vec![
            vec![
                ("202407", false),
                ("131044", false),
                ("0000012345", false),
                ("20250401", false),
                ("20250401", false),
                ("1", false),
                ("自宅で入浴したい\r\n（転倒が怖い）", true),
                ("1", false),
                ("安心して入浴できる", true),
                ("週2回入浴する", true),
                ("R7.4.1～R8.3.31", true),
                ("R7.4.1～R7.9.30", true),
                ("1", false),
                ("入浴介助、\"見守り\"", true),
                ("Y", false),
                ("訪問介護", true),
                ("1310400001", false),
                ("ﾍﾙﾊﾟｰｽﾃｰｼｮﾝ髙﨑", true),
                ("週2回", true),
                ("", true),
                ("1310400099", false),
                ("", false),
            ],
            vec![
                ("202407", false),
                ("131044", false),
                ("0000012345", false),
                ("20250401", false),
                ("20250401", false),
                ("2", false),
                ("", true),
                ("1", false),
                ("①外出の機会を増やす，㈱デイ", true),
                ("", true),
                ("", true),
                ("", true),
                ("1", false),
                ("通所介護", true),
                ("N", false),
                ("", true),
                ("", false),
                ("", true),
                ("", true),
                ("", true),
                ("", false),
                ("", false),
            ],
        ];
        let original = ms932(&write(&records));
        let opts = CsvOptions {
            charset: Some(Charset::Ms932),
            ..CsvOptions::default()
        };
        let f = parse_ok(&original, &opts);
        assert_eq!(f.record_count(), 2);
        assert_eq!(f.field_count(0), 22);
        assert_eq!(f.line_of(1), 3);
        assert_eq!(f.field(0, 13).as_deref(), Some("入浴介助、\"見守り\""));
        let mut w = CsvWriter::new(b',', f.line_ending());
        for r in 0..f.record_count() {
            let fields: Vec<(Cow<'_, str>, bool)> = (0..f.field_count(r))
                .map(|c| (f.field(r, c).unwrap_or_default(), f.was_quoted(r, c)))
                .collect();
            w.write_record(fields.iter().map(|(v, q)| (v.as_ref(), *q)));
        }
        let again = to_bytes(&w.finish(), f.charset(), "UP2KYO round trip");
        assert_eq!(again.ok(), Some(original));
    }

    #[test]
    fn to_bytes_refuses_unmappable_characters_by_name() {
        for (text, ch) in [("吉𠮷家", "'𠮷' (U+20BB7)"), ("笑顔😀", "'😀' (U+1F600)")] {
            match to_bytes(
                text,
                Charset::Ms932,
                "UP2KYO row 3, column 14 (サービス内容)",
            ) {
                Err(e) => {
                    assert!(!e.to_string().contains(ch), "{e}");
                    let msg = e.for_sender().to_string();
                    assert!(msg.contains(ch), "{msg}");
                    assert!(
                        msg.ends_with("in MS932 at UP2KYO row 3, column 14 (サービス内容)"),
                        "{msg}"
                    );
                }
                Ok(b) => panic!("encoded {text} as {b:?}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn parse_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            which in 0usize..4,
            header in any::<bool>(),
            skip in 0usize..3,
            unquoted in any::<bool>(),
        ) {
            let charset = [None, Some(Charset::Utf8), Some(Charset::Ms932), Some(Charset::Iso2022Jp)][which];
            let quote = if unquoted { Quote::None } else { Quote::Double };
            let opts = CsvOptions { charset, header, max_fields: 16, skip, quote, ..CsvOptions::default() };
            if let Ok(f) = parse(&bytes, &opts) {
                for r in 0..=f.record_count() {
                    for c in 0..=f.field_count(r) {
                        let _ = f.field(r, c);
                        let _ = f.field_location(r, c);
                        let _ = f.was_quoted(r, c);
                    }
                    let _ = f.line_of(r);
                }
            }
        }

        #[test]
        fn parse_never_panics_on_csv_like_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b','), Just(b'\r'), Just(b'\n'), Just(b'a'), Just(0x82u8), Just(0xA0u8)],
                0..64,
            ),
        ) {
            let opts = CsvOptions { charset: Some(Charset::Ms932), ..CsvOptions::default() };
            let _ = parse(&bytes, &opts);
        }

        #[test]
        fn writer_then_parser_round_trips(
            records in proptest::collection::vec(
                proptest::collection::vec(("[a,\"\r\n 介ｶ]{0,6}|.{0,8}", any::<bool>()), 1..6),
                0..6,
            ),
            crlf in any::<bool>(),
        ) {
            let mut w = CsvWriter::new(b',', if crlf { "\r\n" } else { "\n" });
            for rec in &records {
                w.write_record(rec.iter().map(|(v, q)| (v.as_str(), *q)));
            }
            let text = w.finish();
            let opts = CsvOptions { charset: Some(Charset::Utf8), ..CsvOptions::default() };
            let f = parse(text.as_bytes(), &opts);
            prop_assert!(f.is_ok(), "{:?}", f.err());
            let f = f.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: Vec<Vec<String>> = records.iter().map(|r| r.iter().map(|(v, _)| v.clone()).collect()).collect();
            prop_assert_eq!(rows(&f), want);
            for (r, rec) in records.iter().enumerate() {
                for (c, (_, quoted)) in rec.iter().enumerate() {
                    if *quoted {
                        prop_assert!(f.was_quoted(r, c));
                    }
                }
            }
        }

        #[test]
        fn fields_encoded_one_by_one_are_the_whole_file_encoded(
            records in proptest::collection::vec(
                proptest::collection::vec(("[a,\"\r\n 介ｶ①]{0,6}", any::<bool>()), 1..6),
                0..6,
            ),
        ) {
            // What MappingSet::render writes for an MS932 target (each field encoded as it is
            // written) against encoding the UTF-8 text afterwards (as for ISO-2022-JP).
            let mut text = CsvWriter::new(b',', "\r\n");
            let mut bytes = CsvWriter::new(b',', "\r\n");
            for rec in &records {
                text.write_record(rec.iter().map(|(v, q)| (v.as_str(), *q)));
                let put = |out: &mut Vec<u8>, s: &str, column: usize| {
                    charset::encode_into(out, s, Charset::Ms932, || format!("column {column}"))
                };
                let written = bytes.write_record_with(rec.iter().map(|(v, q)| (v.as_str(), *q)), put);
                prop_assert!(written.is_ok(), "{:?}", written.err());
            }
            let whole = charset::encode(&text.finish(), Charset::Ms932, "file");
            prop_assert!(whole.is_ok());
            prop_assert_eq!(bytes.finish_bytes(), whole.unwrap_or_default());
        }
    }

    #[test]
    fn a_field_put_fails_with_its_column_and_the_charset_error() {
        let mut w = CsvWriter::new(b',', "\r\n");
        let put = |out: &mut Vec<u8>, s: &str, column: usize| {
            charset::encode_into(out, s, Charset::Ms932, || format!("column {}", column + 1))
        };
        w.write_record_with([("ok", false), ("介護", true)], put)
            .expect("MS932 text");
        let e = w
            .write_record_with([("a", false), ("b\"𠮷", true)], put)
            .expect_err("𠮷 is not MS932");
        let msg = e.for_sender().to_string();
        assert!(msg.contains("U+20BB7") && msg.contains("column 2"), "{msg}");
    }
}
