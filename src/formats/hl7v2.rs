//! HL7 v2.5 reader for SS-MIX2 messages and writer for their acknowledgements.
//! In: the raw bytes of one message as a hospital system sends or stores it
//! (ISO-2022-JP per `MSH-18 = ~ISO IR87` in SS-MIX2, or UTF-8, Shift_JIS, ASCII;
//! CR, LF or CRLF segment ends; an optional UTF-8 BOM or MLLP framing bytes).
//! Out: a [`Message`] holding the text decoded to UTF-8 once, with flat `u32`
//! offset indexes of its segments and fields, navigated through compiled
//! [`Path`]s (`PID-5[8=P].1`) into [`Node`]s whose values are escape-decoded on
//! demand (borrowed when there is nothing to decode); plus [`build_ack`] to
//! answer a message and [`encode`] to turn that answer back into bytes.
//! It must never panic on any bytes, never split the text before decoding it
//! (ISO-2022-JP and Shift_JIS double-byte characters contain the bytes of
//! `|^~\&`), never silently substitute characters (no `?`, no `&#NNNN;`),
//! and never let one message use more memory than its size calls for (structural
//! bounds [`MAX_SEGMENTS`], [`MAX_FIELDS`]; the size itself is bounded by the door
//! the message came through, `body_limit`). Every error names where it happened.

use crate::redact::{Disclose, Quoted};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use super::charset::{self, CharsetError};

/// Largest number of (non-empty) segments in one message.
pub const MAX_SEGMENTS: usize = 100_000;
/// Largest number of field separators in one message.
pub const MAX_FIELDS: usize = 2_000_000;

const ESC: u8 = 0x1B;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
const MLLP_START: u8 = 0x0B;
const MLLP_END: u8 = 0x1C;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Everything that can go wrong; each variant says where. `Display` leaves out the text of the
/// message (a value, a fragment, a character); [`Disclose::for_sender`] puts it back.
#[derive(Debug, thiserror::Error)]
pub enum Hl7Error {
    /// Decoded text beyond what the `u32` offsets of the index can address (4 GiB).
    #[error("message: {size} bytes is more than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error(
        "line 1: an HL7 v2 message must start with `MSH` (after an optional UTF-8 BOM or MLLP start byte)"
    )]
    NotHl7 { found: Quoted },
    #[error("MSH-1: {detail}")]
    BadFieldSeparator { detail: String },
    #[error("MSH-2: {detail}")]
    BadEncodingCharacters {
        detail: String,
        /// The text found instead (for the sender only).
        found: Option<Quoted>,
    },
    #[error(
        "MSH-18: unknown character set (known: ISO IR87, ISO IR14, ISO IR6, UNICODE UTF-8, SHIFT_JIS)"
    )]
    UnknownCharset {
        /// The field's value (for the sender only).
        value: Quoted,
    },
    #[error(
        "MSH-18: empty, and the bytes are neither ISO-2022-JP nor valid UTF-8 (first invalid byte at offset {offset}, line {line})"
    )]
    UndetectableCharset { offset: usize, line: usize },
    #[error("byte {offset} (line {line}): malformed {charset} byte sequence")]
    Malformed {
        charset: Charset,
        offset: usize,
        line: usize,
    },
    #[error(
        "segment {index} (line {line}): a segment must start with a 3-letter/digit name followed by the field separator"
    )]
    BadSegmentName {
        index: usize,
        line: usize,
        found: Quoted,
    },
    #[error("segment {index} (line {line}): more than {max} segments in one message")]
    TooManySegments {
        index: usize,
        line: usize,
        max: usize,
    },
    #[error("segment {index} ({name}), line {line}: more than {max} fields in one message")]
    TooManyFields {
        index: usize,
        name: String,
        line: usize,
        max: usize,
    },
    #[error("byte {offset} of the text: a character cannot be represented in {charset}")]
    Unencodable {
        charset: Charset,
        /// The character (for the sender only).
        ch: Quoted,
        offset: usize,
    },
}

impl Disclose for Hl7Error {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hl7Error::NotHl7 { found } => write!(f, "{self}, found {}", found.reveal()),
            Hl7Error::UnknownCharset { value } => {
                write!(f, "MSH-18: unknown character set `{}`", value.reveal())
            }
            Hl7Error::BadEncodingCharacters {
                found: Some(found), ..
            } => write!(f, "{self} ({:?})", found.reveal()),
            Hl7Error::BadSegmentName { found, .. } => {
                write!(f, "{self}, found `{}`", found.reveal())
            }
            Hl7Error::Unencodable {
                charset,
                ch,
                offset,
            } => {
                let ch = ch.reveal();
                let code = ch.chars().next().map(u32::from).unwrap_or(0xFFFD);
                write!(
                    f,
                    "byte {offset} of the text: `{ch}` (U+{code:04X}) cannot be represented in {charset}"
                )
            }
            other => fmt::Display::fmt(other, f),
        }
    }
}

/// Character set of the bytes on the wire (MSH-18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Iso2022Jp,
    ShiftJis,
    Ascii,
}

impl Charset {
    /// Conventional name, e.g. `ISO-2022-JP`.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Iso2022Jp => "ISO-2022-JP",
            Charset::ShiftJis => "Shift_JIS",
            Charset::Ascii => "ASCII",
        }
    }

    /// Reads one MSH-18 repetition (`ISO IR87`, `UNICODE UTF-8`, `SJIS`, ...);
    /// case, spaces, `-` and `_` are ignored. `None` when not recognised.
    pub fn from_msh18(value: &str) -> Option<Charset> {
        let norm: String = value
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match norm.as_str() {
            "ISOIR87" | "ISOIR14" | "ISO2022JP" | "ISO20221994" | "CSISO2022JP" => {
                Some(Charset::Iso2022Jp)
            }
            "UNICODEUTF8" | "UTF8" => Some(Charset::Utf8),
            "SHIFTJIS" | "SJIS" | "MS932" | "CP932" | "WINDOWS31J" => Some(Charset::ShiftJis),
            "ASCII" | "USASCII" | "ISOIR6" => Some(Charset::Ascii),
            _ => None,
        }
    }

    /// The character set [`charset`] reads and writes these bytes in (`Shift_JIS` is MS932).
    pub fn charset(self) -> charset::Charset {
        match self {
            Charset::Utf8 => charset::Charset::Utf8,
            Charset::Iso2022Jp => charset::Charset::Iso2022Jp,
            Charset::ShiftJis => charset::Charset::Ms932,
            Charset::Ascii => charset::Charset::Ascii,
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The delimiters of a message: MSH-1 and the characters of MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: u8,
    pub subcomponent: u8,
    /// v2.7 truncation character (5th character of MSH-2), if present.
    pub truncation: Option<u8>,
}

impl Default for Separators {
    /// `|^~\&`, what SS-MIX2 and nearly everyone uses.
    fn default() -> Self {
        Separators {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: b'\\',
            subcomponent: b'&',
            truncation: None,
        }
    }
}

impl Separators {
    /// MSH-2 as written, e.g. `^~\&`.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        for b in [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ] {
            s.push(char::from(b));
        }
        if let Some(t) = self.truncation {
            s.push(char::from(t));
        }
        s
    }

    fn same_delimiters(&self, other: &Separators) -> bool {
        self.field == other.field
            && self.component == other.component
            && self.repetition == other.repetition
            && self.escape == other.escape
            && self.subcomponent == other.subcomponent
    }
}

// ---------------------------------------------------------------------------
// Bytes -> text
// ---------------------------------------------------------------------------

/// Parses one message. See the module documentation for what is accepted.
pub fn parse(bytes: &[u8]) -> Result<Message, Hl7Error> {
    let (prefix, body) = strip_framing(bytes);
    if !body.starts_with(b"MSH") {
        return Err(Hl7Error::NotHl7 {
            found: Quoted::new(preview_bytes(body)),
        });
    }
    let seps = read_separators(body)?;
    let charset = detect_charset(body, &seps, prefix)?;
    let text = decode_body(body, charset, prefix)?;
    Message::from_text(text, charset, seps)
}

/// Drops a leading MLLP start byte / UTF-8 BOM and trailing MLLP end bytes and
/// segment terminators. Returns the number of leading bytes dropped.
fn strip_framing(bytes: &[u8]) -> (usize, &[u8]) {
    let mut body = bytes;
    let mut prefix = 0;
    if let Some(rest) = body.strip_prefix(&[MLLP_START]) {
        body = rest;
        prefix += 1;
    }
    if let Some(rest) = body.strip_prefix(BOM) {
        body = rest;
        prefix += BOM.len();
    }
    while let Some((&last, rest)) = body.split_last() {
        if matches!(last, MLLP_END | CR | LF) {
            body = rest;
        } else {
            break;
        }
    }
    (prefix, body)
}

fn preview_bytes(body: &[u8]) -> String {
    if body.is_empty() {
        return "nothing".to_string();
    }
    let head = body.get(..body.len().min(16)).unwrap_or(body);
    format!("{:?}", String::from_utf8_lossy(head))
}

fn is_delimiter_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

fn read_separators(body: &[u8]) -> Result<Separators, Hl7Error> {
    let Some(&fs) = body.get(3) else {
        return Err(Hl7Error::BadFieldSeparator {
            detail:
                "the message ends right after `MSH`; expected the field separator (usually `|`)"
                    .to_string(),
        });
    };
    if !is_delimiter_byte(fs) {
        return Err(Hl7Error::BadFieldSeparator {
            detail: format!(
                "the field separator must be a printable ASCII punctuation character (usually `|`), found byte 0x{fs:02X}"
            ),
        });
    }
    let rest = body.get(4..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&b| b == fs || b == CR || b == LF)
        .unwrap_or(rest.len());
    let enc = rest.get(..len).unwrap_or_default();
    let &[component, repetition, escape, subcomponent, ref more @ ..] = enc else {
        return Err(Hl7Error::BadEncodingCharacters {
            detail: format!(
                "expected 4 or 5 encoding characters (component, repetition, escape, subcomponent[, truncation]) such as `^~\\&`, found {}",
                enc.len(),
            ),
            found: Some(Quoted::new(String::from_utf8_lossy(enc))),
        });
    };
    if more.len() > 1 {
        return Err(Hl7Error::BadEncodingCharacters {
            detail: format!(
                "expected 4 or 5 encoding characters such as `^~\\&`, found {}",
                enc.len(),
            ),
            found: Some(Quoted::new(String::from_utf8_lossy(enc))),
        });
    }
    for (k, &c) in enc.iter().enumerate() {
        if !is_delimiter_byte(c) {
            return Err(Hl7Error::BadEncodingCharacters {
                detail: format!(
                    "encoding character {} must be printable ASCII punctuation, found byte 0x{c:02X}",
                    k + 1
                ),
                found: None,
            });
        }
        if c == fs || enc.get(..k).is_some_and(|before| before.contains(&c)) {
            return Err(Hl7Error::BadEncodingCharacters {
                detail: format!("`{}` is used for two different delimiters", char::from(c)),
                found: None,
            });
        }
    }
    Ok(Separators {
        field: fs,
        component,
        repetition,
        escape,
        subcomponent,
        truncation: more.first().copied(),
    })
}

/// 1-based line number of byte `offset` (CRLF counts as one line end).
fn line_of(bytes: &[u8], offset: usize) -> usize {
    let head = bytes.get(..offset.min(bytes.len())).unwrap_or(bytes);
    let mut line = 1;
    let mut it = head.iter().peekable();
    while let Some(&b) = it.next() {
        if b == LF || (b == CR && it.peek() != Some(&&LF)) {
            line += 1;
        }
    }
    line
}

/// Reads MSH-18 from the first line. ISO-2022-JP / Shift_JIS double-byte
/// characters before it could hide separator bytes, so when a byte that may
/// start one appears before MSH-18 ends, the line is decoded first.
fn read_msh18(line: &[u8], fs: u8) -> Cow<'_, str> {
    let mut count = 0;
    let mut start = None;
    let mut end = line.len();
    for (i, &b) in line.iter().enumerate() {
        if b == ESC || b >= 0x80 {
            return Cow::Owned(read_msh18_decoded(line, fs));
        }
        if b == fs {
            count += 1;
            if count == 17 {
                start = Some(i + 1);
            } else if count == 18 {
                end = i;
                break;
            }
        }
    }
    match start.and_then(|s| line.get(s..end)) {
        Some(v) => Cow::Borrowed(std::str::from_utf8(v).unwrap_or("")),
        None => Cow::Borrowed(""),
    }
}

/// MSH-18 of a first line that holds bytes beyond ASCII, decoded first in the charset its bytes
/// suggest (ESC: ISO-2022-JP; valid UTF-8; else Shift_JIS). When bad bytes come before MSH-18
/// ends, MSH-18 is not read (empty): the charset is then told from the bytes alone.
fn read_msh18_decoded(line: &[u8], fs: u8) -> String {
    let guess = if line.contains(&ESC) {
        Charset::Iso2022Jp
    } else if std::str::from_utf8(line).is_ok() {
        Charset::Utf8
    } else {
        Charset::ShiftJis
    };
    let (text, whole) = match charset::decode_exact(line, guess.charset()) {
        Ok(text) => (text, true),
        Err(e) => {
            let good = match e {
                CharsetError::Decode { offset, .. } => line.get(..offset).unwrap_or_default(),
                CharsetError::Unrepresentable { .. } => &[],
            };
            let text = charset::decode_exact(good, guess.charset()).unwrap_or_default();
            (text, false)
        }
    };
    let mut fields = text.split(char::from(fs));
    let value = fields.nth(17).unwrap_or("");
    if !whole && fields.next().is_none() {
        // The bad bytes may have cut the value short.
        return String::new();
    }
    value.to_string()
}

fn detect_charset(body: &[u8], seps: &Separators, prefix: usize) -> Result<Charset, Hl7Error> {
    let line_end = body
        .iter()
        .position(|&b| b == CR || b == LF)
        .unwrap_or(body.len());
    let line = body.get(..line_end).unwrap_or(body);
    let msh18 = read_msh18(line, seps.field);
    let reps = || {
        msh18
            .split(char::from(seps.repetition))
            .map(str::trim)
            .filter(|r| !r.is_empty())
    };
    // Any repetition naming ISO IR87 (JIS X 0208) means ISO-2022-JP.
    if reps().any(|r| Charset::from_msh18(r) == Some(Charset::Iso2022Jp)) {
        return Ok(Charset::Iso2022Jp);
    }
    let mut chosen: Option<Charset> = None;
    for r in reps() {
        match Charset::from_msh18(r) {
            None => {
                return Err(Hl7Error::UnknownCharset {
                    value: Quoted::new(r),
                });
            }
            Some(c) => {
                if chosen.is_none() || chosen == Some(Charset::Ascii) {
                    chosen = Some(c);
                }
            }
        }
    }
    if let Some(c) = chosen {
        return Ok(c);
    }
    // MSH-18 empty: ISO-2022-JP is 7-bit and so also valid UTF-8; look for its
    // escape sequences first.
    if body.contains(&ESC) {
        return Ok(Charset::Iso2022Jp);
    }
    match std::str::from_utf8(body) {
        Ok(_) => Ok(Charset::Utf8),
        Err(e) => Err(Hl7Error::UndetectableCharset {
            offset: prefix + e.valid_up_to(),
            line: line_of(body, e.valid_up_to()),
        }),
    }
}

fn decode_body(body: &[u8], charset: Charset, prefix: usize) -> Result<String, Hl7Error> {
    charset::decode_exact(body, charset.charset())
        .map(Cow::into_owned)
        .map_err(|e| {
            let offset = match e {
                CharsetError::Decode { offset, .. } => offset,
                CharsetError::Unrepresentable { .. } => 0,
            };
            Hl7Error::Malformed {
                charset,
                offset: prefix + offset,
                line: line_of(body, offset),
            }
        })
}

// ---------------------------------------------------------------------------
// The message and its indexes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Seg {
    /// Byte range of the segment in `text` (without terminator).
    start: u32,
    end: u32,
    /// Index into `bounds` of this segment's first field separator.
    first: u32,
    /// Number of field separators in this segment.
    parts: u32,
}

/// A decoded HL7 v2 message: UTF-8 text plus flat offset indexes.
#[derive(Clone, Debug)]
pub struct Message {
    text: String,
    charset: Charset,
    seps: Separators,
    segs: Vec<Seg>,
    /// Byte offsets of every field separator, segment after segment.
    bounds: Vec<u32>,
}

struct IndexBuilder {
    segs: Vec<Seg>,
    bounds: Vec<u32>,
    first: usize,
}

impl IndexBuilder {
    fn close(
        &mut self,
        text: &str,
        fs: u8,
        start: usize,
        end: usize,
        line: usize,
    ) -> Result<(), Hl7Error> {
        let seg = text.as_bytes().get(start..end).unwrap_or_default();
        let index = self.segs.len() + 1;
        let name_ok = match seg {
            [a, b, c, rest @ ..] => {
                a.is_ascii_alphanumeric()
                    && b.is_ascii_alphanumeric()
                    && c.is_ascii_alphanumeric()
                    && rest.first().is_none_or(|&d| d == fs)
            }
            _ => false,
        };
        if !name_ok {
            let shown: String = text
                .get(start..end)
                .unwrap_or("")
                .chars()
                .take(24)
                .collect();
            return Err(Hl7Error::BadSegmentName {
                index,
                line,
                found: Quoted::new(shown.escape_debug().to_string()),
            });
        }
        if self.segs.len() >= MAX_SEGMENTS {
            return Err(Hl7Error::TooManySegments {
                index,
                line,
                max: MAX_SEGMENTS,
            });
        }
        let parts = self.bounds.len() - self.first;
        self.segs.push(Seg {
            start: start as u32,
            end: end as u32,
            first: self.first as u32,
            parts: parts as u32,
        });
        self.first = self.bounds.len();
        Ok(())
    }

    /// One pass over the text: segment ranges, field separator offsets and
    /// name checks. Returns whether the text is already canonical (segments
    /// joined by single CRs, nothing empty).
    fn run(&mut self, text: &str, fs: u8) -> Result<bool, Hl7Error> {
        let b = text.as_bytes();
        let mut canonical = true;
        let mut line = 1usize;
        let mut seg_start = 0usize;
        let mut seg_line = 1usize;
        for (i, &c) in b.iter().enumerate() {
            if c == fs {
                if self.bounds.len() >= MAX_FIELDS {
                    let name = text.get(seg_start..seg_start + 3).unwrap_or("").to_string();
                    return Err(Hl7Error::TooManyFields {
                        index: self.segs.len() + 1,
                        name,
                        line: seg_line,
                        max: MAX_FIELDS,
                    });
                }
                self.bounds.push(i as u32);
            } else if c == CR || c == LF {
                if i > seg_start {
                    self.close(text, fs, seg_start, i, seg_line)?;
                } else {
                    canonical = false;
                }
                if c == LF {
                    canonical = false;
                    line += 1;
                } else if b.get(i + 1) == Some(&LF) {
                    canonical = false;
                } else {
                    line += 1;
                }
                seg_start = i + 1;
                seg_line = line;
            }
        }
        if b.len() > seg_start {
            self.close(text, fs, seg_start, b.len(), seg_line)?;
        } else if !b.is_empty() {
            canonical = false;
        }
        Ok(canonical)
    }
}

impl Message {
    fn from_text(text: String, charset: Charset, seps: Separators) -> Result<Message, Hl7Error> {
        if text.len() > u32::MAX as usize {
            return Err(Hl7Error::TooLarge {
                size: text.len(),
                max: u32::MAX as usize,
            });
        }
        let mut ix = IndexBuilder {
            segs: Vec::with_capacity(16),
            bounds: Vec::with_capacity(text.len() / 8 + 16),
            first: 0,
        };
        let canonical = ix.run(&text, seps.field)?;
        let text = if canonical {
            text
        } else {
            let mut joined = String::with_capacity(text.len());
            for (k, s) in ix.segs.iter().enumerate() {
                if k > 0 {
                    joined.push('\r');
                }
                joined.push_str(text.get(s.start as usize..s.end as usize).unwrap_or(""));
            }
            ix.segs.clear();
            ix.bounds.clear();
            ix.first = 0;
            ix.run(&joined, seps.field)?;
            joined
        };
        Ok(Message {
            text,
            charset,
            seps,
            segs: ix.segs,
            bounds: ix.bounds,
        })
    }

    /// Character set the bytes were decoded from.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// Delimiters from MSH-1 and MSH-2.
    pub fn separators(&self) -> &Separators {
        &self.seps
    }

    /// The whole decoded message, segments joined by `\r` (no trailing `\r`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of segments (empty lines are not segments).
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Name of segment `seg`, counted from 0 as in `0..segment_count()`;
    /// `""` when out of range.
    pub fn segment_name(&self, seg: usize) -> &str {
        self.segs
            .get(seg)
            .and_then(|s| self.text.get(s.start as usize..s.start as usize + 3))
            .unwrap_or("")
    }

    /// Node of segment `seg` (counted from 0).
    pub fn segment_node(&self, seg: usize) -> Option<Node> {
        (seg < self.segs.len()).then(|| Node {
            seg: seg as u32 + 1,
            ..Node::default()
        })
    }

    /// Number of fields of segment `seg` (counted from 0); for MSH this
    /// counts MSH-1, so `MSH|^~\&|A` has 3.
    pub fn field_count(&self, seg: usize) -> usize {
        let Some(s) = self.segs.get(seg) else {
            return 0;
        };
        let msh_extra = usize::from(self.is_msh(s) && s.end - s.start >= 4);
        s.parts as usize + msh_extra
    }

    /// MSH-9 as written, e.g. `ADT^A08^ADT_A01`; empty when absent.
    pub fn message_type(&self) -> String {
        self.field_range(0, 9)
            .and_then(|(s, e)| self.text.get(s..e))
            .unwrap_or("")
            .to_string()
    }

    /// MSH-10, escape-decoded; `None` when empty.
    pub fn control_id(&self) -> Option<String> {
        let node = Node {
            seg: 1,
            field: 10,
            ..Node::default()
        };
        self.value(node).map(Cow::into_owned)
    }

    /// The whole message.
    pub fn root(&self) -> Node {
        Node::default()
    }

    /// Pushes every node `path` selects, in document order. Absolute paths
    /// search the whole message whatever `from` is; relative ones start at
    /// `from` and select nothing from the wrong kind of node.
    pub fn select(&self, from: Node, path: &Path, out: &mut Vec<Node>) {
        self.visit(from, path, &mut |n| {
            out.push(n);
            true
        });
    }

    /// The first node `path` selects from `from`, if any.
    pub fn first(&self, from: Node, path: &Path) -> Option<Node> {
        let mut found = None;
        self.visit(from, path, &mut |n| {
            found = Some(n);
            false
        });
        found
    }

    /// Value of the first node an absolute `path` selects (`PID` = first
    /// PID, `PID-5` = its first repetition); `None` when absent or empty.
    pub fn value_at(&self, path: &Path) -> Option<Cow<'_, str>> {
        self.first(self.root(), path).and_then(|n| self.value(n))
    }

    /// The text of `node` exactly as written (no escape decoding).
    pub fn raw(&self, node: Node) -> Option<&str> {
        let (s, e) = self.span(node)?;
        self.text.get(s..e)
    }

    /// Escape-decoded text of exactly `node`'s span. Separators inside the
    /// span are kept as they are (`PID-5[1]` gives `患者^太郎^^^^^L^I`; use
    /// `.1` for parts). MSH-1 and MSH-2 are returned as written. `None` when
    /// the node is absent or its text is empty. Borrowed when nothing needed
    /// decoding.
    pub fn value(&self, node: Node) -> Option<Cow<'_, str>> {
        let raw = self.raw(node)?;
        if raw.is_empty() {
            return None;
        }
        let si = node.seg.checked_sub(1)? as usize;
        if node.field > 0 && self.is_atomic(si, node.field) {
            return Some(Cow::Borrowed(raw));
        }
        let v = unescape(raw, &self.seps);
        (!v.is_empty()).then_some(v)
    }

    /// Where `node` is, e.g. `PID-5[2].1 (segment 3)`.
    pub fn location(&self, node: Node) -> String {
        if node.seg == 0 {
            return "message".to_string();
        }
        let si = node.seg as usize - 1;
        let Some(seg) = self.segs.get(si) else {
            return format!("segment {} (not in this message)", node.seg);
        };
        let name = self.name_of(seg);
        let mut occurrence = 0;
        let mut total = 0;
        for (k, s) in self.segs.iter().enumerate() {
            if self.name_of(s) == name {
                total += 1;
                if k <= si {
                    occurrence += 1;
                }
            }
        }
        let mut out = String::new();
        out.push_str(self.segment_name(si));
        if total > 1 {
            let _ = write!(out, "[{occurrence}]");
        }
        if node.field > 0 {
            let _ = write!(out, "-{}", node.field);
            if node.rep > 0 {
                let reps = self
                    .field_range(si, node.field)
                    .map(|r| self.count_pieces(r, self.rep_sep(si, node.field)))
                    .unwrap_or(1);
                if reps > 1 || node.rep > 1 {
                    let _ = write!(out, "[{}]", node.rep);
                }
            }
            if node.comp > 0 {
                let _ = write!(out, ".{}", node.comp);
            }
            if node.sub > 0 {
                let _ = write!(out, ".{}", node.sub);
            }
        }
        let _ = write!(out, " (segment {})", node.seg);
        out
    }

    /// Calls `f(path, value)` for every non-empty leaf in document order.
    /// `path` is the shortest path that selects the leaf again, e.g.
    /// `PID-5[2].1`, `OBX[2]-5`, `PID-7`.
    pub fn walk(&self, f: &mut dyn FnMut(&str, &str)) {
        let b = self.text.as_bytes();
        let mut totals: HashMap<&[u8], u32> = HashMap::new();
        for s in &self.segs {
            *totals.entry(self.name_of(s)).or_insert(0) += 1;
        }
        let mut seen: HashMap<&[u8], u32> = HashMap::new();
        let mut path = String::with_capacity(32);
        for (si, seg) in self.segs.iter().enumerate() {
            let name = self.name_of(seg);
            let occurrence = {
                let n = seen.entry(name).or_insert(0);
                *n += 1;
                *n
            };
            let multi_seg = totals.get(name).copied().unwrap_or(1) > 1;
            for field in 1..=self.field_count(si) as u32 {
                let Some(fr) = self.field_range(si, field) else {
                    continue;
                };
                let atomic = self.is_atomic(si, field);
                let rsep = self.rep_sep(si, field);
                let csep = (!atomic).then_some(self.seps.component);
                let ssep = (!atomic).then_some(self.seps.subcomponent);
                let nreps = self.count_pieces(fr, rsep);
                for (r, rr) in Pieces::new(b, fr, rsep).enumerate() {
                    let ncomps = self.count_pieces(rr, csep);
                    for (c, cr) in Pieces::new(b, rr, csep).enumerate() {
                        let nsubs = self.count_pieces(cr, ssep);
                        for (s, sr) in Pieces::new(b, cr, ssep).enumerate() {
                            let Some(raw) = self.text.get(sr.0..sr.1) else {
                                continue;
                            };
                            if raw.is_empty() {
                                continue;
                            }
                            let v = if atomic {
                                Cow::Borrowed(raw)
                            } else {
                                unescape(raw, &self.seps)
                            };
                            if v.is_empty() {
                                continue;
                            }
                            path.clear();
                            path.push_str(self.segment_name(si));
                            if multi_seg {
                                let _ = write!(path, "[{occurrence}]");
                            }
                            let _ = write!(path, "-{field}");
                            if nreps > 1 {
                                let _ = write!(path, "[{}]", r + 1);
                            }
                            if ncomps > 1 || nsubs > 1 {
                                let _ = write!(path, ".{}", c + 1);
                            }
                            if nsubs > 1 {
                                let _ = write!(path, ".{}", s + 1);
                            }
                            f(&path, &v);
                        }
                    }
                }
            }
        }
    }

    // --- internals -------------------------------------------------------

    fn name_of(&self, seg: &Seg) -> &[u8] {
        let s = seg.start as usize;
        self.text.as_bytes().get(s..s + 3).unwrap_or_default()
    }

    fn is_msh(&self, seg: &Seg) -> bool {
        self.name_of(seg) == b"MSH"
    }

    /// MSH-1 and MSH-2 hold the delimiters themselves: never split, never
    /// escape-decoded.
    fn is_atomic(&self, si: usize, field: u32) -> bool {
        field <= 2 && self.segs.get(si).is_some_and(|s| self.is_msh(s))
    }

    fn rep_sep(&self, si: usize, field: u32) -> Option<u8> {
        (!self.is_atomic(si, field)).then_some(self.seps.repetition)
    }

    fn field_range(&self, si: usize, field: u32) -> Option<(usize, usize)> {
        let seg = self.segs.get(si)?;
        let (start, end) = (seg.start as usize, seg.end as usize);
        let part = if self.is_msh(seg) {
            if field == 1 {
                return (end >= start + 4).then_some((start + 3, start + 4));
            }
            field.checked_sub(1)?
        } else {
            field
        };
        if part == 0 || part > seg.parts {
            return None;
        }
        let at = seg.first as usize + part as usize - 1;
        let from = *self.bounds.get(at)? as usize + 1;
        let to = if part < seg.parts {
            *self.bounds.get(at + 1)? as usize
        } else {
            end
        };
        (from <= to).then_some((from, to))
    }

    fn count_pieces(&self, range: (usize, usize), sep: Option<u8>) -> usize {
        match (sep, self.text.as_bytes().get(range.0..range.1)) {
            (Some(sep), Some(bytes)) => 1 + bytes.iter().filter(|&&b| b == sep).count(),
            _ => 1,
        }
    }

    fn span(&self, n: Node) -> Option<(usize, usize)> {
        if n.seg == 0 {
            let whole = n.field == 0 && n.rep == 0 && n.comp == 0 && n.sub == 0;
            return whole.then_some((0, self.text.len()));
        }
        let si = n.seg as usize - 1;
        let seg = self.segs.get(si)?;
        if n.field == 0 {
            let whole = n.rep == 0 && n.comp == 0 && n.sub == 0;
            return whole.then_some((seg.start as usize, seg.end as usize));
        }
        let fr = self.field_range(si, n.field)?;
        if n.rep == 0 {
            return (n.comp == 0 && n.sub == 0).then_some(fr);
        }
        let b = self.text.as_bytes();
        let atomic = self.is_atomic(si, n.field);
        let rr = nth_piece(b, fr, self.rep_sep(si, n.field), n.rep)?;
        if n.comp == 0 {
            return (n.sub == 0).then_some(rr);
        }
        let cr = nth_piece(b, rr, (!atomic).then_some(self.seps.component), n.comp)?;
        if n.sub == 0 {
            return Some(cr);
        }
        nth_piece(b, cr, (!atomic).then_some(self.seps.subcomponent), n.sub)
    }

    /// Calls `f` for each node `path` selects, in document order, until `f` returns false.
    /// Returns false when stopped early. Allocates nothing.
    pub fn visit<F: FnMut(Node) -> bool>(&self, from: Node, path: &Path, f: &mut F) -> bool {
        match &path.start {
            Start::Segment { name, occurrence } => {
                let mut seen = 0u32;
                for (si, seg) in self.segs.iter().enumerate() {
                    if self.name_of(seg) != name.as_slice() {
                        continue;
                    }
                    seen += 1;
                    if let Some(n) = occurrence {
                        if seen < *n {
                            continue;
                        }
                        if seen > *n {
                            break;
                        }
                    }
                    if !self.visit_in_segment(si, path, f) {
                        return false;
                    }
                }
                true
            }
            Start::FromSegment => {
                if from.seg == 0 || from.field != 0 {
                    return true;
                }
                let si = from.seg as usize - 1;
                if si >= self.segs.len() {
                    return true;
                }
                self.visit_in_segment(si, path, f)
            }
            Start::FromField => {
                if from.seg == 0 || from.field == 0 || from.comp != 0 || from.sub != 0 {
                    return true;
                }
                let si = from.seg as usize - 1;
                let Some(fr) = self.field_range(si, from.field) else {
                    return true;
                };
                let only = (from.rep > 0).then_some(from.rep);
                self.visit_reps(si, from.field, fr, only, path, f)
            }
        }
    }

    fn visit_in_segment<F: FnMut(Node) -> bool>(&self, si: usize, path: &Path, f: &mut F) -> bool {
        if path.field == 0 {
            return f(Node {
                seg: si as u32 + 1,
                ..Node::default()
            });
        }
        match self.field_range(si, path.field) {
            Some(fr) => self.visit_reps(si, path.field, fr, None, path, f),
            None => true,
        }
    }

    fn visit_reps<F: FnMut(Node) -> bool>(
        &self,
        si: usize,
        field: u32,
        fr: (usize, usize),
        only: Option<u32>,
        path: &Path,
        f: &mut F,
    ) -> bool {
        let b = self.text.as_bytes();
        let atomic = self.is_atomic(si, field);
        let csep = (!atomic).then_some(self.seps.component);
        let ssep = (!atomic).then_some(self.seps.subcomponent);
        let mut r = 0u32;
        for rr in Pieces::new(b, fr, self.rep_sep(si, field)) {
            r += 1;
            if let Some(only) = only {
                if r < only {
                    continue;
                }
                if r > only {
                    break;
                }
            }
            let keep = match &path.reps {
                RepSel::All => true,
                RepSel::Nth(n) => r == *n,
                RepSel::Match { comp, sub, value } => {
                    let part = nth_piece(b, rr, csep, *comp).and_then(|cr| {
                        if *sub == 0 {
                            Some(cr)
                        } else {
                            nth_piece(b, cr, ssep, *sub)
                        }
                    });
                    let raw = part.and_then(|(s, e)| self.text.get(s..e)).unwrap_or("");
                    if atomic {
                        raw == value
                    } else {
                        unescape(raw, &self.seps) == value.as_str()
                    }
                }
            };
            if !keep {
                if matches!(path.reps, RepSel::Nth(n) if r > n) {
                    break;
                }
                continue;
            }
            let node = Node {
                seg: si as u32 + 1,
                field,
                rep: r,
                comp: 0,
                sub: 0,
            };
            if path.comp == 0 {
                if !f(node) {
                    return false;
                }
                continue;
            }
            let Some(cr) = nth_piece(b, rr, csep, path.comp) else {
                continue;
            };
            if path.sub == 0 {
                if !f(Node {
                    comp: path.comp,
                    ..node
                }) {
                    return false;
                }
                continue;
            }
            if nth_piece(b, cr, ssep, path.sub).is_some()
                && !f(Node {
                    comp: path.comp,
                    sub: path.sub,
                    ..node
                })
            {
                return false;
            }
        }
        true
    }
}

/// Splits a byte range on `sep` (or yields it whole when `sep` is `None`).
/// An empty range yields one empty piece.
struct Pieces<'a> {
    b: &'a [u8],
    pos: usize,
    end: usize,
    sep: Option<u8>,
    done: bool,
}

impl<'a> Pieces<'a> {
    fn new(b: &'a [u8], range: (usize, usize), sep: Option<u8>) -> Self {
        Pieces {
            b,
            pos: range.0,
            end: range.1,
            sep,
            done: range.0 > range.1,
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let start = self.pos;
        let found = match self.sep {
            Some(sep) => self
                .b
                .get(start..self.end)
                .and_then(|s| s.iter().position(|&c| c == sep)),
            None => None,
        };
        match found {
            Some(k) => {
                self.pos = start + k + 1;
                Some((start, start + k))
            }
            None => {
                self.done = true;
                Some((start, self.end))
            }
        }
    }
}

/// The `n`th (1-based) piece of `range`.
fn nth_piece(b: &[u8], range: (usize, usize), sep: Option<u8>, n: u32) -> Option<(usize, usize)> {
    let k = n.checked_sub(1)? as usize;
    Pieces::new(b, range, sep).nth(k)
}

// ---------------------------------------------------------------------------
// Nodes and paths
// ---------------------------------------------------------------------------

/// A place in a message: segment, field, repetition, component and
/// subcomponent numbers, each 1-based, 0 meaning "the whole thing".
/// `Node::default()` is the whole message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    seg: u32,
    field: u32,
    rep: u32,
    comp: u32,
    sub: u32,
}

impl Node {
    /// Segment index counted from 0 (as for [`Message::segment_name`]);
    /// `None` for the whole message.
    pub fn segment(&self) -> Option<usize> {
        self.seg.checked_sub(1).map(|s| s as usize)
    }
    /// Field number (MSH-1 is the field separator); 0 = whole segment.
    pub fn field(&self) -> u32 {
        self.field
    }
    /// Repetition number; 0 = whole field.
    pub fn repetition(&self) -> u32 {
        self.rep
    }
    /// Component number; 0 = whole repetition.
    pub fn component(&self) -> u32 {
        self.comp
    }
    /// Subcomponent number; 0 = whole component.
    pub fn subcomponent(&self) -> u32 {
        self.sub
    }
    /// The whole field this node is in (all repetitions); unchanged for
    /// segment and message nodes.
    pub fn whole_field(self) -> Node {
        if self.field == 0 {
            return self;
        }
        Node {
            rep: 0,
            comp: 0,
            sub: 0,
            ..self
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Start {
    Segment {
        name: [u8; 3],
        occurrence: Option<u32>,
    },
    FromSegment,
    FromField,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RepSel {
    All,
    Nth(u32),
    Match { comp: u32, sub: u32, value: String },
}

/// A compiled navigation path. Grammar (numbers are 1-based):
///
/// ```text
/// path     := SEG occ? ('-' field)?        absolute: PID, OBX[2], OBX[*]-5, PID-5[8=P].1
///           | '-' field                    relative to a segment node: -5, -5[2].1
///           | reps comps? | comps          relative to a field/repetition node: .1, .1.2, [8=P].1
/// SEG      := 3 letters/digits
/// occ      := '[' (N | '*') ']'            which occurrence(s) of the segment; default all
/// field    := N reps? comps?
/// reps     := '[' (N | '*' | N ('.' N)? '=' TEXT) ']'
///                                          one repetition, all, or those whose
///                                          component N (subcomponent N.M) equals TEXT
///                                          (escape-decoded compare; TEXT has no `]`)
/// comps    := '.' N ('.' N)?               component, subcomponent
/// ```
///
/// A field without `[..]` selects every repetition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    start: Start,
    field: u32,
    reps: RepSel,
    comp: u32,
    sub: u32,
}

impl Path {
    /// Compiles `s`; the error says what is wrong and shows valid paths.
    pub fn compile(s: &str) -> Result<Path, String> {
        let src = s.trim();
        let mut p = PathParser { src, pos: 0 };
        p.path()
    }

    /// Whether this path starts from a node (`-5`, `.1`, `[8=P].1`) rather
    /// than from the message.
    pub fn is_relative(&self) -> bool {
        !matches!(self.start, Start::Segment { .. })
    }
}

impl std::str::FromStr for Path {
    type Err = String;
    fn from_str(s: &str) -> Result<Path, String> {
        Path::compile(s)
    }
}

struct PathParser<'a> {
    src: &'a str,
    pos: usize,
}

impl PathParser<'_> {
    fn err(&self, what: &str) -> String {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let at = if rest.is_empty() {
            "at the end".to_string()
        } else {
            format!("at `{rest}`")
        };
        format!(
            "invalid HL7 path `{}`: {what} ({at}); valid paths look like `PID-5`, `PID-5[2].1`, `PID-5[*]`, `PID-5[8=P].1`, `PID-11.5`, `PID-5.1.2`, `OBX[2]-5`, `OBX[*]-3.2`, or relative: `-5.1` (from a segment), `.1` or `[8=P].1` (from a field)",
            self.src
        )
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self, what: &str) -> Result<u32, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.src.get(start..self.pos).unwrap_or("");
        if digits.is_empty() {
            return Err(self.err(&format!("expected a {what}")));
        }
        match digits.parse::<u32>() {
            Ok(0) => {
                self.pos = start;
                Err(self.err(&format!("{what}s are counted from 1, not 0")))
            }
            Ok(n) if n <= 1_000_000 => Ok(n),
            _ => {
                self.pos = start;
                Err(self.err(&format!("{what} `{digits}` is too large")))
            }
        }
    }

    fn path(&mut self) -> Result<Path, String> {
        if self.src.is_empty() {
            return Err(self.err("the path is empty"));
        }
        let mut path = Path {
            start: Start::FromField,
            field: 0,
            reps: RepSel::All,
            comp: 0,
            sub: 0,
        };
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                path.start = Start::FromSegment;
                self.field_part(&mut path)?;
            }
            Some(b'[' | b'.') => {
                self.reps_and_components(&mut path)?;
            }
            _ => {
                let name = match self.src.as_bytes() {
                    [a, b, c, ..]
                        if a.is_ascii_alphanumeric()
                            && b.is_ascii_alphanumeric()
                            && c.is_ascii_alphanumeric() =>
                    {
                        [*a, *b, *c]
                    }
                    _ => {
                        return Err(self.err(
                            "a path starts with a 3-letter/digit segment name such as `PID`, or with `-`, `.` or `[` when relative",
                        ));
                    }
                };
                self.pos = 3;
                if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.pos = 0;
                    return Err(self.err("segment names are exactly 3 letters or digits"));
                }
                let mut occurrence = None;
                if self.eat(b'[') {
                    if !self.eat(b'*') {
                        occurrence = Some(self.number("segment occurrence number")?);
                    }
                    if !self.eat(b']') {
                        return Err(self.err("expected `]` after the segment occurrence"));
                    }
                }
                path.start = Start::Segment { name, occurrence };
                if self.eat(b'-') {
                    self.field_part(&mut path)?;
                } else if self.peek() == Some(b'.') {
                    return Err(self.err(
                        "put `-` between the segment and the field number: `PID-5.1`, not `PID.5.1`",
                    ));
                }
            }
        }
        if self.pos != self.src.len() {
            return Err(self.err("unexpected text"));
        }
        Ok(path)
    }

    fn field_part(&mut self, path: &mut Path) -> Result<(), String> {
        path.field = self.number("field number")?;
        self.reps_and_components(path)
    }

    fn reps_and_components(&mut self, path: &mut Path) -> Result<(), String> {
        if self.eat(b'[') {
            path.reps = self.rep_selector()?;
        }
        if self.eat(b'.') {
            path.comp = self.number("component number")?;
            if self.eat(b'.') {
                path.sub = self.number("subcomponent number")?;
            }
        }
        Ok(())
    }

    fn rep_selector(&mut self) -> Result<RepSel, String> {
        if self.eat(b'*') {
            if !self.eat(b']') {
                return Err(self.err("expected `]` after `[*`"));
            }
            return Ok(RepSel::All);
        }
        let n = self.number("repetition number (or component number before `=`)")?;
        if self.eat(b']') {
            return Ok(RepSel::Nth(n));
        }
        let mut sub = 0;
        if self.eat(b'.') {
            sub = self.number("subcomponent number")?;
        }
        if !self.eat(b'=') {
            return Err(
                self.err("expected `]` or `=`: a repetition selector is `[2]`, `[*]` or `[8=P]`")
            );
        }
        let rest = self.src.get(self.pos..).unwrap_or("");
        let Some(close) = rest.find(']') else {
            return Err(self.err("missing `]` after the value to match"));
        };
        let value = rest.get(..close).unwrap_or("").to_string();
        self.pos += close + 1;
        Ok(RepSel::Match {
            comp: n,
            sub,
            value,
        })
    }
}

// ---------------------------------------------------------------------------
// Escape sequences
// ---------------------------------------------------------------------------

/// Escapes `value` for use as one field/component/subcomponent text:
/// the delimiters become `\F\ \S\ \R\ \E\ \T\` (and `\P\` for a v2.7
/// truncation character), CR and LF become `\X0D\` / `\X0A\`.
/// [`unescape`] gives `value` back.
pub fn escape(value: &str, enc: &Separators) -> String {
    let special = |c: u8| {
        c == enc.field
            || c == enc.component
            || c == enc.repetition
            || c == enc.escape
            || c == enc.subcomponent
            || Some(c) == enc.truncation
            || c == CR
            || c == LF
    };
    if !value.bytes().any(special) {
        return value.to_string();
    }
    let esc = char::from(enc.escape);
    let mut out = String::with_capacity(value.len() + 8);
    for ch in value.chars() {
        let code = match u8::try_from(ch) {
            Ok(b) if b.is_ascii() && special(b) => {
                if b == enc.escape {
                    "E"
                } else if b == enc.field {
                    "F"
                } else if b == enc.component {
                    "S"
                } else if b == enc.repetition {
                    "R"
                } else if b == enc.subcomponent {
                    "T"
                } else if b == CR {
                    "X0D"
                } else if b == LF {
                    "X0A"
                } else {
                    "P"
                }
            }
            _ => {
                out.push(ch);
                continue;
            }
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    out
}

/// Decodes HL7 escape sequences: `\F\ \S\ \T\ \R\ \E\ \P\` -> delimiters,
/// `\Xhh..\` -> those bytes (UTF-8 if valid, else Latin-1), `\.br\` -> `\n`,
/// `\H\ \N\`, `\Cxxyy\`, `\Mxxyy[zz]\`, `\Z..\` -> removed. An unknown or
/// unterminated sequence is kept as written. Borrowed when `value` has no
/// escape character.
pub fn unescape<'a>(value: &'a str, enc: &Separators) -> Cow<'a, str> {
    let esc = enc.escape;
    let b = value.as_bytes();
    let Some(first) = b.iter().position(|&c| c == esc) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len());
    let mut literal_from = 0;
    let mut i = first;
    while i < b.len() {
        if b.get(i) != Some(&esc) {
            i += 1;
            continue;
        }
        let Some(rel) = b
            .get(i + 1..)
            .and_then(|rest| rest.iter().position(|&c| c == esc))
        else {
            break;
        };
        let close = i + 1 + rel;
        // `i` and `close` index the ASCII escape character, so both are
        // char boundaries even in multibyte text.
        let content = value.get(i + 1..close).unwrap_or("");
        let before = value.get(literal_from..i).unwrap_or("");
        let mark = out.len();
        out.push_str(before);
        if apply_escape(content, enc, &mut out) {
            literal_from = close + 1;
            i = close + 1;
        } else {
            out.truncate(mark);
            i += 1;
        }
    }
    out.push_str(value.get(literal_from..).unwrap_or(""));
    Cow::Owned(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_bytes(h: &str) -> Option<Vec<u8>> {
    if h.is_empty() || !h.len().is_multiple_of(2) {
        return None;
    }
    h.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [a, b] => Some(hex_value(*a)? << 4 | hex_value(*b)?),
            _ => None,
        })
        .collect()
}

fn all_hex(h: &str) -> bool {
    h.bytes().all(|c| hex_value(c).is_some())
}

/// Writes what the escape sequence `content` stands for; false if unknown.
fn apply_escape(content: &str, enc: &Separators, out: &mut String) -> bool {
    let delimiter = match content {
        "F" => Some(enc.field),
        "S" => Some(enc.component),
        "T" => Some(enc.subcomponent),
        "R" => Some(enc.repetition),
        "E" => Some(enc.escape),
        "P" => match enc.truncation {
            Some(t) => Some(t),
            None => return false,
        },
        _ => None,
    };
    if let Some(d) = delimiter {
        out.push(char::from(d));
        return true;
    }
    match content {
        "H" | "N" => return true,
        ".br" => {
            out.push('\n');
            return true;
        }
        _ => {}
    }
    if let Some(h) = content.strip_prefix('X') {
        let Some(bytes) = hex_bytes(h) else {
            return false;
        };
        match String::from_utf8(bytes) {
            Ok(s) => out.push_str(&s),
            Err(e) => out.extend(e.into_bytes().into_iter().map(char::from)),
        }
        return true;
    }
    if let Some(h) = content.strip_prefix('C') {
        return h.len() == 4 && all_hex(h);
    }
    if let Some(h) = content.strip_prefix('M') {
        return (h.len() == 4 || h.len() == 6) && all_hex(h);
    }
    content.starts_with('Z')
}

// ---------------------------------------------------------------------------
// ACK building and encoding
// ---------------------------------------------------------------------------

/// MSA-1 acknowledgement code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]

pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// What to report in ERR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    /// ERR-3: the HL7 table 0357 code, e.g. `101` required field missing,
    /// `102` data type error, `207` application internal error; `None` when
    /// no code of the table fits (ERR-3 stays empty and ERR-5 says what
    /// happened).
    pub code: Option<String>,
    /// ERR-2 error location (ERL, components joined by `^`), e.g. `PID^1^7`.
    pub location: Option<String>,
    /// ERR-5: the application's own error code (HL7 user-defined table
    /// 0533), e.g. `consent-denied^Consent denied^99KHB`.
    pub application: Option<Coded>,
    /// ERR-8 user message (also MSA-3).
    pub message: String,
}

/// A coded value (CWE): identifier, text and the coding system they come
/// from (`99zzz` for a locally defined one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coded {
    /// CWE.1, e.g. `consent-denied`.
    pub code: String,
    /// CWE.2, e.g. `Consent denied`.
    pub text: String,
    /// CWE.3, e.g. `99KHB`.
    pub system: String,
}

/// HL7 table 0357 text for `code`, empty when unknown.
pub fn table_0357_text(code: &str) -> &'static str {
    match code {
        "0" => "Message accepted",
        "100" => "Segment sequence error",
        "101" => "Required field missing",
        "102" => "Data type error",
        "103" => "Table value not found",
        "200" => "Unsupported message type",
        "201" => "Unsupported event code",
        "202" => "Unsupported processing id",
        "203" => "Unsupported version id",
        "204" => "Unknown key identifier",
        "205" => "Duplicate key identifier",
        "206" => "Application record locked",
        "207" => "Application internal error",
        _ => "",
    }
}

/// Builds an ACK with `|^~\&`, each segment ended by `\r`:
/// MSH (sending/receiving application and facility swapped from the
/// original, MSH-9 `ACK^<trigger>^ACK`, MSH-11/12/18/20 as the original,
/// MSH-11 `P` and MSH-12 `2.5` when there is none), MSA (code, original
/// MSH-10, error text) and, when `error` is given, ERR (ERR-2 location,
/// ERR-3 `code^text^HL70357` when there is a code, ERR-4 `E`, ERR-5 the
/// application's code, ERR-8 message). All text is escaped.
pub fn build_ack(
    original: Option<&Message>,
    code: AckCode,
    error: Option<&AckError>,
    timestamp: &str,
    control_id: &str,
) -> String {
    let seps = Separators::default();
    let orig = |field: u32| -> String {
        original
            .map(|m| m.field_as(0, field, &seps))
            .unwrap_or_default()
    };
    let trigger = original
        .and_then(|m| {
            m.value(Node {
                seg: 1,
                field: 9,
                rep: 1,
                comp: 2,
                sub: 0,
            })
        })
        .map(|t| escape(&t, &seps))
        .unwrap_or_default();
    let msh9 = if trigger.is_empty() {
        "ACK".to_string()
    } else {
        format!("ACK^{trigger}^ACK")
    };
    let non_empty_or = |s: String, default: &str| {
        if s.is_empty() { default.to_string() } else { s }
    };
    // MSH-3 .. MSH-20
    let fields: [String; 18] = [
        orig(5),
        orig(6),
        orig(3),
        orig(4),
        escape(timestamp, &seps),
        String::new(),
        msh9,
        escape(control_id, &seps),
        non_empty_or(orig(11), "P"),
        non_empty_or(orig(12), "2.5"),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        orig(18),
        String::new(),
        orig(20),
    ];
    let mut out = String::with_capacity(256);
    out.push_str("MSH|^~\\&");
    let last = fields.iter().rposition(|f| !f.is_empty()).unwrap_or(0);
    for f in fields.iter().take(last + 1) {
        out.push('|');
        out.push_str(f);
    }
    out.push('\r');

    let original_id = original
        .and_then(Message::control_id)
        .map(|id| escape(&id, &seps))
        .unwrap_or_default();
    let _ = write!(out, "MSA|{}|{}", code.as_str(), original_id);
    if let Some(e) = error
        && !e.message.is_empty()
    {
        out.push('|');
        out.push_str(&escape(&e.message, &seps));
    }
    out.push('\r');

    if let Some(e) = error {
        let location = e
            .location
            .as_deref()
            .map(|l| {
                l.split('^')
                    .map(|part| escape(part, &seps))
                    .collect::<Vec<_>>()
                    .join("^")
            })
            .unwrap_or_default();
        let hl7_code = e
            .code
            .as_deref()
            .map(|c| {
                format!(
                    "{}^{}^HL70357",
                    escape(c, &seps),
                    escape(table_0357_text(c), &seps)
                )
            })
            .unwrap_or_default();
        let application = e
            .application
            .as_ref()
            .map(|a| {
                format!(
                    "{}^{}^{}",
                    escape(&a.code, &seps),
                    escape(&a.text, &seps),
                    escape(&a.system, &seps)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "ERR||{}|{}|E|{}|||{}\r",
            location,
            hl7_code,
            application,
            escape(&e.message, &seps)
        );
    }
    out
}

impl Message {
    /// A field of segment `si` (from 0) rewritten for delimiters `target`.
    fn field_as(&self, si: usize, field: u32, target: &Separators) -> String {
        let Some(fr) = self.field_range(si, field) else {
            return String::new();
        };
        let raw = self.text.get(fr.0..fr.1).unwrap_or("");
        if self.seps.same_delimiters(target) || self.is_atomic(si, field) {
            return raw.to_string();
        }
        let b = self.text.as_bytes();
        let mut out = String::with_capacity(raw.len());
        for (r, rr) in Pieces::new(b, fr, Some(self.seps.repetition)).enumerate() {
            if r > 0 {
                out.push(char::from(target.repetition));
            }
            for (c, cr) in Pieces::new(b, rr, Some(self.seps.component)).enumerate() {
                if c > 0 {
                    out.push(char::from(target.component));
                }
                for (s, sr) in Pieces::new(b, cr, Some(self.seps.subcomponent)).enumerate() {
                    if s > 0 {
                        out.push(char::from(target.subcomponent));
                    }
                    let part = self.text.get(sr.0..sr.1).unwrap_or("");
                    out.push_str(&escape(&unescape(part, &self.seps), target));
                }
            }
        }
        out
    }
}

/// Encodes `text` (e.g. from [`build_ack`]) for the wire with [`charset::encode_in`], the hub's
/// one strict encoder: a character the charset cannot represent exactly is refused with an error
/// naming it and its byte offset in `text`, never replaced — half-width katakana in ISO-2022-JP
/// (which encoding_rs would widen to full-width), `¥` and `‾` in Shift_JIS (which would become
/// the bytes of `\` and `~`), private-use characters in Shift_JIS (外字).
pub fn encode(text: &str, charset: Charset) -> Result<Vec<u8>, Hl7Error> {
    charset::encode_in(text, charset.charset(), String::new).map_err(|e| {
        let ch = match e {
            CharsetError::Unrepresentable { ch, .. } => ch.reveal().chars().next(),
            CharsetError::Decode { .. } => None,
        }
        .unwrap_or('\u{FFFD}');
        Hl7Error::Unencodable {
            charset,
            ch: Quoted::new(ch),
            offset: text.find(ch).unwrap_or(0),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::path::PathBuf;

    const FIXTURES: &str = "/work/shared/fixtures/ssmix2/sampleData";
    const ADT00: &str = "/work/shared/fixtures/ssmix2/sampleData/999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447339_-_1";
    /// The one fixture file that is not a message: two bytes, 0xFB 0xFC.
    const ADT31_STUB: &str = "/work/shared/fixtures/ssmix2/sampleData/000/000/0000001/20000401/ADT-31/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1";

    fn fixture_files() -> Vec<PathBuf> {
        fn walk_dir(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                .expect("fixture dir readable")
                .map(|e| e.expect("dir entry").path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk_dir(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk_dir(std::path::Path::new(FIXTURES), &mut out);
        out
    }

    fn adt00() -> Message {
        parse(&std::fs::read(ADT00).expect("ADT-00 fixture")).expect("ADT-00 parses")
    }

    fn p(s: &str) -> Path {
        Path::compile(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn v(m: &Message, path: &str) -> Option<String> {
        m.value_at(&p(path)).map(Cow::into_owned)
    }

    /// Values of every selected node ("" for empty ones).
    fn all(m: &Message, from: Node, path: &str) -> Vec<String> {
        let mut nodes = Vec::new();
        m.select(from, &p(path), &mut nodes);
        nodes
            .into_iter()
            .map(|n| m.value(n).map(Cow::into_owned).unwrap_or_default())
            .collect()
    }

    /// SS-MIX2 data kind (folder name) -> message type it is stored as.
    fn expected_type(kind: &str) -> &'static str {
        match kind {
            k if k.starts_with("ADT") => "ADT",
            "OMP-01" | "OMP-02" => "RDE",
            "OMP-11" | "OMP-12" => "RAS",
            "OMD" => "OMD",
            "OMG-01" | "OMG-02" | "OMG-03" => "OMG",
            "OMG-11" | "OMG-12" => "OMI",
            "OMG-13" => "ORU",
            "OML-01" => "OML",
            "OML-11" => "OUL",
            "PPR-01" => "PPR",
            _ => "?",
        }
    }

    fn utf8_msg(segments: &[&str], sep: &str) -> Vec<u8> {
        segments.join(sep).into_bytes()
    }

    const MSH_UTF8: &str =
        "MSH|^~\\&|SEND|FAC|RCV|RFAC|20240101||ADT^A08^ADT_A01|C1|P|2.5||||||UNICODE UTF-8";

    #[test]
    fn every_fixture_message_parses_as_iso2022jp_with_its_kinds_message_type() {
        let files = fixture_files();
        assert_eq!(files.len(), 22);
        let mut parsed = 0;
        for f in &files {
            let bytes = std::fs::read(f).expect("readable");
            let kind = f
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            match parse(&bytes) {
                Ok(m) => {
                    parsed += 1;
                    assert_eq!(m.charset(), Charset::Iso2022Jp, "{}", f.display());
                    assert_eq!(m.segment_name(0), "MSH");
                    let want = expected_type(kind);
                    assert!(
                        m.message_type().starts_with(want),
                        "{}: MSH-9 {} for kind {kind}",
                        f.display(),
                        m.message_type()
                    );
                    assert_eq!(v(&m, "MSH-9.1").as_deref(), Some(want));
                    assert!(!m.text().contains(['\u{1b}', '\u{fffd}', '\n']));
                    assert!(!m.text().ends_with('\r'));
                    assert!(m.control_id().is_some());
                }
                Err(e) => {
                    // The only non-message in the set is a 2-byte stub.
                    assert_eq!(f.to_str(), Some(ADT31_STUB), "{}: {e}", f.display());
                    assert!(matches!(e, Hl7Error::NotHl7 { .. }), "{e}");
                }
            }
        }
        assert_eq!(parsed, 21);
    }

    #[test]
    fn adt00_patient_fields_are_reachable_by_path() {
        let m = adt00();
        assert_eq!(m.segment_count(), 11);
        assert_eq!(m.segment_name(2), "PID");
        assert_eq!(m.segment_name(99), "");
        // XPN-7 is the name type (L), XPN-8 the representation (I/P).
        assert_eq!(v(&m, "PID-5[8=I].1").as_deref(), Some("患者"));
        assert_eq!(v(&m, "PID-5[8=I].2").as_deref(), Some("太郎"));
        assert_eq!(v(&m, "PID-5[8=P].1").as_deref(), Some("カンジャ"));
        assert_eq!(v(&m, "PID-5[8=P].2").as_deref(), Some("タロウ"));
        assert!(all(&m, m.root(), "PID-5[7=I].1").is_empty());
        assert_eq!(all(&m, m.root(), "PID-5[7=L].1"), ["患者", "カンジャ"]);
        assert_eq!(all(&m, m.root(), "PID-5.1"), ["患者", "カンジャ"]);
        assert_eq!(v(&m, "PID-5[2].1").as_deref(), Some("カンジャ"));
        assert_eq!(v(&m, "PID-5").as_deref(), Some("患者^太郎^^^^^L^I"));
        assert_eq!(v(&m, "PID-7").as_deref(), Some("19480405"));
        assert_eq!(v(&m, "PID-8").as_deref(), Some("M"));
        assert_eq!(v(&m, "PID-11.5").as_deref(), Some("422-8033"));
        // JIS 0x215D decodes to U+FF0D (WHATWG / Windows mapping), not U+2212.
        assert_eq!(
            v(&m, "PID-11.8").as_deref(),
            Some("静岡県静岡市登呂１\u{ff0d}３\u{ff0d}５")
        );
        assert_eq!(v(&m, "PID-4"), None);
        assert_eq!(v(&m, "PID-99"), None);
        assert_eq!(all(&m, m.root(), "PID-13").len(), 2);
        assert_eq!(v(&m, "PID-13[1].2").as_deref(), Some("PRN"));
        assert_eq!(v(&m, "PID-13[2].2").as_deref(), Some("EMR"));
        assert_eq!(
            all(&m, m.root(), "PID-13.12"),
            ["054-000-0000", "03-5999-9999"]
        );
        assert_eq!(all(&m, m.root(), "PID-13[*].3"), ["PH", "PH"]);
        assert_eq!(v(&m, "PID-14.12").as_deref(), Some("03-3599-9993"));
        // MSH numbering: MSH-1 is the separator itself.
        assert_eq!(v(&m, "MSH-1").as_deref(), Some("|"));
        assert_eq!(v(&m, "MSH-2").as_deref(), Some("^~\\&"));
        assert_eq!(v(&m, "MSH-3").as_deref(), Some("HIS123"));
        assert_eq!(v(&m, "MSH-9").as_deref(), Some("ADT^A08^ADT_A01"));
        assert_eq!(v(&m, "MSH-9.1").as_deref(), Some("ADT"));
        assert_eq!(m.message_type(), "ADT^A08^ADT_A01");
        assert_eq!(m.control_id().as_deref(), Some("20111220000001"));
        assert_eq!(
            v(&m, "MSH-18"),
            None,
            "first repetition of `~ISO IR87` is empty"
        );
        assert_eq!(v(&m, "MSH-18[2]").as_deref(), Some("ISO IR87"));
        // Repeating segments.
        assert_eq!(all(&m, m.root(), "OBX").len(), 3);
        assert_eq!(v(&m, "OBX[2]-5").as_deref(), Some("63.5"));
        assert_eq!(
            all(&m, m.root(), "OBX-3.2"),
            ["身長", "体重", "血液型-ABO式"]
        );
        assert_eq!(all(&m, m.root(), "OBX[*]-6.1"), ["cm", "kg", ""]);
        assert_eq!(v(&m, "AL1-3.2").as_deref(), Some("ペニシリン"));
        assert!(v(&m, "PID").is_some_and(|s| s.starts_with("PID|0001||9999013")));
    }

    #[test]
    fn location_names_the_path_and_segment_number() {
        let m = adt00();
        let loc = |path: &str| m.first(m.root(), &p(path)).map(|n| m.location(n));
        assert_eq!(loc("PID-5[2].1").as_deref(), Some("PID-5[2].1 (segment 3)"));
        assert_eq!(loc("PID-11.5").as_deref(), Some("PID-11.5 (segment 3)"));
        assert_eq!(loc("PID-7").as_deref(), Some("PID-7 (segment 3)"));
        assert_eq!(loc("OBX[2]-5").as_deref(), Some("OBX[2]-5 (segment 8)"));
        assert_eq!(loc("PID").as_deref(), Some("PID (segment 3)"));
        assert_eq!(m.location(m.root()), "message");
    }

    #[test]
    fn walk_paths_select_the_same_values_again() {
        for f in fixture_files() {
            let Ok(m) = parse(&std::fs::read(&f).expect("readable")) else {
                continue;
            };
            let mut leaves = Vec::new();
            m.walk(&mut |path, value| leaves.push((path.to_string(), value.to_string())));
            assert!(leaves.len() > 10, "{}", f.display());
            for (path, value) in &leaves {
                assert_eq!(
                    v(&m, path).as_deref(),
                    Some(value.as_str()),
                    "{path} in {}",
                    f.display()
                );
            }
        }
        let m = adt00();
        let mut leaves = Vec::new();
        m.walk(&mut |path, value| leaves.push(format!("{path}={value}")));
        for want in [
            "MSH-1=|",
            "MSH-9.2=A08",
            "PID-5[2].1=カンジャ",
            "PID-7=19480405",
            "OBX[3]-3.2=血液型-ABO式",
        ] {
            assert!(leaves.iter().any(|l| l == want), "missing {want}");
        }
    }

    #[test]
    fn relative_paths_navigate_from_segment_and_repetition_nodes() {
        let m = adt00();
        let mut obx = Vec::new();
        m.select(m.root(), &p("OBX"), &mut obx);
        let values: Vec<String> = obx
            .iter()
            .filter_map(|&n| {
                m.first(n, &p("-5"))
                    .and_then(|x| m.value(x))
                    .map(Cow::into_owned)
            })
            .collect();
        assert_eq!(values, ["167.8", "63.5", "A^A^JSHR002"]);
        assert_eq!(all(&m, obx[2], "-5.2"), ["A"]);

        let mut names = Vec::new();
        m.select(m.root(), &p("PID-5"), &mut names);
        assert_eq!(names.len(), 2);
        assert!(all(&m, names[0], "[8=P].1").is_empty());
        assert_eq!(all(&m, names[1], "[8=P].1"), ["カンジャ"]);
        assert_eq!(all(&m, names[0], ".2"), ["太郎"]);
        assert_eq!(all(&m, names[1], "[2]"), ["カンジャ^タロウ^^^^^L^P"]);
        // From the whole field, a repetition selector chooses among repetitions.
        assert_eq!(all(&m, names[0].whole_field(), "[8=P].1"), ["カンジャ"]);
        assert_eq!(all(&m, names[0].whole_field(), ".1"), ["患者", "カンジャ"]);

        // The wrong kind of node selects nothing.
        assert!(all(&m, m.root(), "-5").is_empty());
        assert!(all(&m, m.root(), ".1").is_empty());
        assert!(all(&m, obx[0], ".1").is_empty());
        assert!(all(&m, names[0], "-5").is_empty());
        let comp = m.first(m.root(), &p("PID-5.1")).expect("component");
        assert!(all(&m, comp, ".1").is_empty());
        // Absolute paths ignore `from`.
        assert_eq!(all(&m, obx[0], "PID-7"), ["19480405"]);

        assert!(p("-5").is_relative());
        assert!(p(".1").is_relative());
        assert!(p("[8=P].1").is_relative());
        assert!(!p("PID-5").is_relative());
    }

    #[test]
    fn bad_path_syntax_is_explained() {
        for bad in [
            "",
            "PID.5.1",
            "PID-0",
            "PID-",
            "PI",
            "PIDX-1",
            "PID-5[",
            "PID-5[x]",
            "PID-5[7=P",
            "PID-5]",
            "-",
            ".",
            "PID-5.1.2.3",
            "PID-99999999999",
            "OBX[0]",
            "PID-5[*",
            "患者",
        ] {
            let err = Path::compile(bad).expect_err(bad);
            assert!(err.contains("valid paths look like"), "{bad}: {err}");
        }
        assert!(Path::compile("PID.5.1").is_err_and(|e| e.contains("`PID-5.1`, not `PID.5.1`")));
        assert!(Path::compile("PID-0").is_err_and(|e| e.contains("counted from 1")));
        for good in [
            "PID",
            "OBX[2]",
            "OBX[*]",
            "PID-5[7=P].1",
            "PID-5[8.1=x]",
            " PID-5 ",
            "Z01-1",
            "[7=]",
        ] {
            assert!(Path::compile(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn escapes_decode_right_after_multibyte_text() {
        let s = Separators::default();
        assert_eq!(unescape("患者\\F\\テスト\\.br\\次", &s), "患者|テスト\n次");
        assert_eq!(unescape("\\S\\\\T\\\\R\\\\E\\", &s), "^&~\\");
        assert_eq!(unescape("\\X41\\", &s), "A");
        assert_eq!(unescape("漢\\XE682A3\\字", &s), "漢患字");
        assert_eq!(
            unescape("\\XE9\\", &s),
            "é",
            "invalid UTF-8 falls back to Latin-1"
        );
        assert_eq!(unescape("a\\H\\b\\N\\c", &s), "abc");
        assert_eq!(unescape("\\C2842\\x\\M244200\\y\\Zfoo\\", &s), "xy");
        assert_eq!(unescape("\\Q\\", &s), "\\Q\\", "unknown kept");
        assert_eq!(unescape("abc\\F", &s), "abc\\F", "unterminated kept");
        assert_eq!(unescape("患者\\", &s), "患者\\");
        assert_eq!(unescape("\\X4\\", &s), "\\X4\\");
        assert_eq!(unescape("\\P\\", &s), "\\P\\", "no truncation character");
        assert_eq!(unescape("a\\b\\F\\", &s), "a\\b|");
        assert!(matches!(unescape("患者", &s), Cow::Borrowed("患者")));

        let msg = utf8_msg(
            &[MSH_UTF8, "PID|1||123||患者\\F\\テスト\\.br\\次^太郎"],
            "\r",
        );
        let m = parse(&msg).expect("parses");
        assert_eq!(v(&m, "PID-5.1").as_deref(), Some("患者|テスト\n次"));
        let plain = m.first(m.root(), &p("PID-5.2")).expect("node");
        assert!(matches!(m.value(plain), Some(Cow::Borrowed("太郎"))));
    }

    #[test]
    fn escape_protects_every_delimiter() {
        let s = Separators::default();
        assert_eq!(
            escape("a|b^c~d\\e&f", &s),
            "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"
        );
        assert_eq!(escape("1\r\n2", &s), "1\\X0D\\\\X0A\\2");
        assert_eq!(escape("患者", &s), "患者");
    }

    #[test]
    fn cr_lf_and_crlf_endings_give_the_same_message() {
        let segs = [MSH_UTF8, "PID|1||123||患者^太郎", "OBX|1|NM|x||5"];
        let reference = parse(&utf8_msg(&segs, "\r")).expect("CR");
        for sep in ["\n", "\r\n", "\r\r", "\r\n\r\n"] {
            let mut bytes = utf8_msg(&segs, sep);
            bytes.extend_from_slice(sep.as_bytes());
            let m = parse(&bytes).unwrap_or_else(|e| panic!("{sep:?}: {e}"));
            assert_eq!(m.text(), reference.text(), "{sep:?}");
            assert_eq!(m.segment_count(), 3);
            assert_eq!(v(&m, "PID-5.2").as_deref(), Some("太郎"));
            assert_eq!(v(&m, "OBX-5").as_deref(), Some("5"));
        }
        assert_eq!(reference.text(), segs.join("\r"));
    }

    #[test]
    fn utf8_messages_parse_with_or_without_msh18_bom_and_mllp_framing() {
        let m = parse(&utf8_msg(&[MSH_UTF8, "PID|1||1||山田^花子"], "\r")).expect("utf8");
        assert_eq!(m.charset(), Charset::Utf8);
        assert_eq!(v(&m, "PID-5.1").as_deref(), Some("山田"));

        let mut framed = vec![MLLP_START];
        framed.extend_from_slice(BOM);
        framed.extend_from_slice("MSH|^~\\&|送信\rPID|1||1||山田".as_bytes());
        framed.extend_from_slice(&[CR, MLLP_END, CR]);
        let m = parse(&framed).expect("empty MSH-18, UTF-8");
        assert_eq!(m.charset(), Charset::Utf8);
        assert_eq!(v(&m, "MSH-3").as_deref(), Some("送信"));
        assert_eq!(v(&m, "PID-5").as_deref(), Some("山田"));
    }

    #[test]
    fn shift_jis_trail_bytes_that_look_like_delimiters_do_not_split_fields() {
        // ポ = 0x83 0x7C (`|`), 表 = 0x95 0x5C (`\`), ソ = 0x83 0x5C.
        let text = "MSH|^~\\&|ポ病院|表|R|F|20240101||ADT^A08|1|P|2.5||||||SHIFT_JIS\rPID|1||1||表示ソフト^ポチ";
        let bytes = encode(text, Charset::ShiftJis).expect("encodable");
        assert!(bytes.windows(2).any(|w| w == [0x83, 0x7C]));
        let m = parse(&bytes).expect("parses");
        assert_eq!(m.charset(), Charset::ShiftJis);
        assert_eq!(m.text(), text);
        assert_eq!(v(&m, "MSH-3").as_deref(), Some("ポ病院"));
        assert_eq!(v(&m, "PID-5.1").as_deref(), Some("表示ソフト"));
        assert_eq!(v(&m, "PID-5.2").as_deref(), Some("ポチ"));
    }

    #[test]
    fn iso2022jp_is_detected_when_msh18_is_empty_and_decoded_before_splitting() {
        let text = "MSH|^~\\&|病院|F\rPID|1||1||患者^太郎~カンジャ";
        let bytes = encode(text, Charset::Iso2022Jp).expect("encodable");
        assert!(bytes.contains(&ESC));
        let m = parse(&bytes).expect("parses");
        assert_eq!(m.charset(), Charset::Iso2022Jp);
        assert_eq!(m.text(), text);
        assert_eq!(all(&m, m.root(), "PID-5.1"), ["患者", "カンジャ"]);
    }

    #[test]
    fn msh18_values_and_repetitions_choose_the_charset() {
        let cases = [
            ("~ISO IR87", Charset::Iso2022Jp),
            ("ISO IR87", Charset::Iso2022Jp),
            ("~ISOIR87", Charset::Iso2022Jp),
            ("ISO 2022-1994", Charset::Iso2022Jp),
            ("ISO-2022-JP", Charset::Iso2022Jp),
            ("ISO IR6~ISO IR87", Charset::Iso2022Jp),
            ("UNICODE UTF-8", Charset::Utf8),
            ("UTF-8", Charset::Utf8),
            ("SHIFT_JIS", Charset::ShiftJis),
            ("SJIS", Charset::ShiftJis),
            ("MS932", Charset::ShiftJis),
            ("ASCII", Charset::Ascii),
        ];
        for (msh18, want) in cases {
            let text = format!("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||{msh18}\rPID|1");
            let m = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{msh18}: {e}"));
            assert_eq!(m.charset(), want, "{msh18}");
        }
        let text = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||EBCDIC\rPID|1";
        let err = parse(text.as_bytes()).expect_err("unknown charset");
        assert_eq!(
            err.for_sender().to_string(),
            "MSH-18: unknown character set `EBCDIC`"
        );
        assert!(
            !err.to_string().contains("EBCDIC"),
            "a field's value: {err}"
        );
    }

    #[test]
    fn malformed_bytes_are_reported_with_offset_and_line() {
        let mut bytes = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||~ISO IR87\rPID|1||".to_vec();
        let bad_at = bytes.len() + 3;
        bytes.extend_from_slice(b"\x1b$B\x80\x80\x1b(B");
        match parse(&bytes) {
            Err(Hl7Error::Malformed {
                charset,
                offset,
                line,
            }) => {
                assert_eq!(charset, Charset::Iso2022Jp);
                assert_eq!(offset, bad_at);
                assert_eq!(line, 2);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        let mut bytes = MSH_UTF8.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\nPID|1||\xff");
        let err = parse(&bytes).expect_err("invalid UTF-8");
        assert_eq!(
            err.to_string(),
            format!(
                "byte {} (line 2): malformed UTF-8 byte sequence",
                bytes.len() - 1
            )
        );
        let err = parse(b"MSH|^~\\&|A\rPID|\xff\xfe").expect_err("undetectable");
        assert!(
            matches!(
                err,
                Hl7Error::UndetectableCharset {
                    offset: 15,
                    line: 2
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn broken_messages_return_errors_that_say_where() {
        let err = parse(b"MSH|^~\\&|A\r\nPID|1\r\n\r\n\x01garbage|x\r\n").expect_err("bad segment");
        assert!(
            matches!(
                err,
                Hl7Error::BadSegmentName {
                    index: 3,
                    line: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("segment 3 (line 4):"), "{err}");
        let err = parse(b"MSH|^~\\&|A\rPIDX|1").expect_err("4-letter name");
        assert!(err.for_sender().to_string().contains("`PIDX|1`"), "{err}");
        assert!(
            !err.to_string().contains("PIDX"),
            "the text is the sender's: {err}"
        );
        let err = parse(b"MSH|^~\\&|A\rPI").expect_err("short name");
        assert!(
            matches!(
                err,
                Hl7Error::BadSegmentName {
                    index: 2,
                    line: 2,
                    ..
                }
            ),
            "{err}"
        );

        assert!(matches!(parse(b""), Err(Hl7Error::NotHl7 { .. })));
        assert!(matches!(parse(b"PID|1"), Err(Hl7Error::NotHl7 { .. })));
        assert!(matches!(
            parse(b"MSH"),
            Err(Hl7Error::BadFieldSeparator { .. })
        ));
        assert!(matches!(
            parse(b"MSHA^~\\&"),
            Err(Hl7Error::BadFieldSeparator { .. })
        ));
        for bad in [
            &b"MSH|^~\r"[..],
            b"MSH|^~\\&#!|",
            b"MSH|^^\\&|",
            b"MSH|^~\\A|",
            b"MSH||",
        ] {
            let err = parse(bad).expect_err("bad MSH-2");
            assert!(err.to_string().starts_with("MSH-2: "), "{err}");
        }
        assert!(parse(b"MSH|^~\\&#|A").is_ok(), "v2.7 truncation character");
        assert!(parse(b"MSH|^~\\&").is_ok());

        let mut many = b"MSH|^~\\&".to_vec();
        for _ in 0..MAX_SEGMENTS {
            many.extend_from_slice(b"\rZZZ");
        }
        let err = parse(&many).expect_err("too many segments");
        assert!(
            matches!(err, Hl7Error::TooManySegments { index, .. } if index == MAX_SEGMENTS + 1),
            "{err}"
        );
    }

    #[test]
    fn ack_round_trips_through_iso2022jp() {
        let orig = adt00();
        let err = AckError {
            code: Some("101".into()),
            location: Some("PID^1^7".into()),
            application: None,
            message: "生年月日がありません | ^~\\& 確認".into(),
        };
        let ack = build_ack(
            Some(&orig),
            AckCode::AE,
            Some(&err),
            "20240101120000",
            "ACK0001",
        );
        assert!(ack.ends_with('\r'));
        assert_eq!(ack.matches('\r').count(), 3);
        let bytes = encode(&ack, orig.charset()).expect("encodable");
        assert!(bytes.contains(&ESC));
        let m = parse(&bytes).expect("ACK parses");
        assert_eq!(m.charset(), Charset::Iso2022Jp);
        assert_eq!(m.text(), ack.trim_end_matches('\r'));
        let expect = [
            ("MSH-3", "GW"),
            ("MSH-4", "RCV"),
            ("MSH-5", "HIS123"),
            ("MSH-6", "SEND"),
            ("MSH-7", "20240101120000"),
            ("MSH-9", "ACK^A08^ACK"),
            ("MSH-10", "ACK0001"),
            ("MSH-11", "P"),
            ("MSH-12", "2.5"),
            ("MSH-18[2]", "ISO IR87"),
            ("MSH-20", "ISO 2022-1994"),
            ("MSA-1", "AE"),
            ("MSA-2", "20111220000001"),
            ("MSA-3", err.message.as_str()),
            ("ERR-2.1", "PID"),
            ("ERR-2.2", "1"),
            ("ERR-2.3", "7"),
            ("ERR-3.1", "101"),
            ("ERR-3.2", "Required field missing"),
            ("ERR-3.3", "HL70357"),
            ("ERR-4", "E"),
            ("ERR-8", err.message.as_str()),
        ];
        for (path, want) in expect {
            assert_eq!(v(&m, path).as_deref(), Some(want), "{path}");
        }
        assert_eq!(v(&m, "ERR-1"), None);
        assert_eq!(v(&m, "ERR-5"), None);
    }

    #[test]
    fn an_ack_error_without_a_table_0357_code_carries_the_applications_own_in_err_5() {
        let err = AckError {
            code: None,
            location: None,
            application: Some(Coded {
                code: "consent-denied".into(),
                text: "Consent denied".into(),
                system: "99KHB".into(),
            }),
            message: "consent-denied:no-consent".into(),
        };
        let ack = build_ack(Some(&adt00()), AckCode::AR, Some(&err), "20240101", "X1");
        assert!(
            ack.ends_with(
                "ERR||||E|consent-denied^Consent denied^99KHB|||consent-denied:no-consent\r"
            ),
            "{ack}"
        );
        let m = parse(ack.as_bytes()).expect("parses");
        assert_eq!(v(&m, "ERR-3"), None);
        assert_eq!(v(&m, "ERR-4").as_deref(), Some("E"));
        assert_eq!(v(&m, "ERR-5.1").as_deref(), Some("consent-denied"));
        assert_eq!(v(&m, "ERR-5.3").as_deref(), Some("99KHB"));
        assert_eq!(v(&m, "ERR-8").as_deref(), Some("consent-denied:no-consent"));
    }

    #[test]
    fn ack_without_an_original_is_minimal() {
        let ack = build_ack(None, AckCode::AR, None, "20240101", "X1");
        assert_eq!(ack, "MSH|^~\\&|||||20240101||ACK|X1|P|2.5\rMSA|AR|\r");
        let m = parse(ack.as_bytes()).expect("parses");
        assert_eq!(v(&m, "MSA-1").as_deref(), Some("AR"));
        assert_eq!(AckCode::AA.as_str(), "AA");
    }

    #[test]
    fn ack_rewrites_fields_of_a_message_with_other_delimiters() {
        let orig =
            parse(b"MSH#$%*@#APP^1$X#FAC#ME#MYFAC#2024##ADT$A04#C*F*9#P#2.5").expect("parses");
        assert_eq!(v(&orig, "MSH-3.1").as_deref(), Some("APP^1"));
        assert_eq!(orig.control_id().as_deref(), Some("C#9"));
        let ack = build_ack(Some(&orig), AckCode::AA, None, "2025", "A1");
        assert_eq!(
            ack,
            "MSH|^~\\&|ME|MYFAC|APP\\S\\1^X|FAC|2025||ACK^A04^ACK|A1|P|2.5\rMSA|AA|C#9\r"
        );
    }

    #[test]
    fn encode_refuses_unrepresentable_characters_instead_of_substituting() {
        let err = encode("患者😀", Charset::Iso2022Jp).expect_err("emoji");
        assert!(
            matches!(
                err,
                Hl7Error::Unencodable {
                    ref ch,
                    offset: 6,
                    ..
                } if ch.reveal() == "😀"
            ),
            "{err:?}"
        );
        assert!(err.for_sender().to_string().contains("U+1F600"), "{err}");
        assert!(!err.to_string().contains("U+1F600"), "{err}");
        assert!(encode("髙😀", Charset::ShiftJis).is_err());
        assert!(
            encode("¥100", Charset::ShiftJis).is_err(),
            "would become `\\`"
        );
        assert!(matches!(
            encode("é", Charset::Ascii),
            Err(Hl7Error::Unencodable { ch, .. }) if ch.reveal() == "é"
        ));
        // encoding_rs's ISO-2022-JP encoder would write カナ for ｶﾅ without a word.
        assert!(matches!(
            encode("ｶﾅ", Charset::Iso2022Jp),
            Err(Hl7Error::Unencodable { ch, offset: 0, .. }) if ch.reveal() == "ｶ"
        ));
        let jis = encode("患者|1", Charset::Iso2022Jp).expect("encodable");
        assert!(!jis.contains(&b'?'));
        assert!(jis.ends_with(b"|1"));
        assert_eq!(
            encode("患者", Charset::Utf8).expect("utf8"),
            "患者".as_bytes()
        );
    }

    #[test]
    fn fixtures_have_the_same_fields_as_hl7_parser_finds() {
        for f in fixture_files() {
            let bytes = std::fs::read(&f).expect("readable");
            let Ok(m) = parse(&bytes) else {
                continue;
            };
            let text = charset::decode_exact(&bytes, charset::Charset::Iso2022Jp)
                .expect("every fixture that parses is ISO-2022-JP");
            let text = text.trim_end_matches(['\r', '\u{1c}']);
            let theirs = hl7_parser::parse_message_with_lenient_newlines(text).expect("hl7-parser");
            let their_segs: Vec<_> = theirs.segments().collect();
            // hl7-parser silently stops at the first segment that has no
            // field separator (`AL1` alone); this module keeps them.
            assert!(their_segs.len() <= m.segment_count(), "{}", f.display());
            if their_segs.len() < m.segment_count() {
                assert_eq!(m.field_count(their_segs.len()), 0, "{}", f.display());
            }
            for (si, seg) in their_segs.iter().enumerate() {
                assert_eq!(seg.name, m.segment_name(si));
                let first_field = if seg.name == "MSH" { 3 } else { 1 };
                for field in first_field..=m.field_count(si) {
                    let node = Node {
                        seg: si as u32 + 1,
                        field: field as u32,
                        ..Node::default()
                    };
                    let theirs = seg.field(field).map(|x| x.raw_value()).unwrap_or("");
                    assert_eq!(
                        m.raw(node).unwrap_or(""),
                        theirs,
                        "{} in {}",
                        m.location(node),
                        f.display()
                    );
                }
            }
        }
    }

    /// Runs everything that takes input-derived positions.
    fn exercise(bytes: &[u8]) {
        let m = match parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        let paths = [
            "MSH",
            "MSH-1",
            "MSH-2.1",
            "MSH-9.2",
            "MSH-18",
            "PID-5[8=P].1",
            "PID-5.1.2",
            "PID-3[*]",
            "OBX[2]-5",
            "OBX[*]-3.2",
            "ZZZ-1[2]",
            "PID-11.5",
        ];
        let rel = ["-5", "-1[2].1", ".1", ".1.2", "[8=P].1", "[2]"];
        let mut nodes = Vec::new();
        for path in paths {
            nodes.clear();
            m.select(m.root(), &p(path), &mut nodes);
            for &n in &nodes {
                let _ = m.value(n);
                let _ = m.location(n);
                for r in rel {
                    let mut inner = Vec::new();
                    m.select(n, &p(r), &mut inner);
                    m.select(n.whole_field(), &p(r), &mut inner);
                    for x in inner {
                        let _ = m.value(x);
                    }
                }
            }
        }
        for si in 0..m.segment_count().min(64) {
            let _ = m.segment_name(si);
            if let Some(n) = m.segment_node(si) {
                let _ = m.value(n);
            }
        }
        let mut count = 0usize;
        m.walk(&mut |_, _| count += 1);
        let _ = m.message_type();
        let _ = m.control_id();
        let ack = build_ack(Some(&m), AckCode::AE, None, "2024", "1");
        assert!(parse(ack.as_bytes()).is_ok(), "{ack:?}");
    }

    #[test]
    fn nodes_out_of_range_give_none_not_panics() {
        let m = adt00();
        for seg in [0, 1, 3, 11, 12, u32::MAX] {
            for field in [0, 1, 2, 5, 40, u32::MAX] {
                for rep in [0, 1, 3] {
                    for comp in [0, 1, 9, u32::MAX] {
                        for sub in [0, 1, 2] {
                            let n = Node {
                                seg,
                                field,
                                rep,
                                comp,
                                sub,
                            };
                            let _ = m.value(n);
                            let _ = m.location(n);
                            let _ = m.raw(n);
                        }
                    }
                }
            }
        }
        let n = Node {
            seg: 99,
            ..Node::default()
        };
        assert_eq!(m.value(n), None);
        assert_eq!(m.location(n), "segment 99 (not in this message)");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn parse_and_navigation_never_panic_on_random_bytes(
            body in vec(any::<u8>(), 0..600),
            header in 0usize..3,
        ) {
            let mut input = match header {
                0 => Vec::new(),
                1 => b"MSH|^~\\&|".to_vec(),
                _ => b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|1|P|2.5||||||~ISO IR87\rPID|".to_vec(),
            };
            input.extend_from_slice(&body);
            exercise(&input);
        }

        #[test]
        fn parse_and_navigation_never_panic_on_mutated_fixtures(
            which in 0usize..22,
            edits in vec((any::<usize>(), any::<u8>(), 0u8..4), 1..12),
        ) {
            let files = fixture_files();
            let mut bytes = std::fs::read(&files[which % files.len()]).expect("readable");
            for (at, byte, op) in edits {
                let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
                match op {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if !bytes.is_empty() => { bytes.remove(at); }
                    _ => bytes.insert(at, [b'|', b'^', b'~', b'\\', b'&', CR, ESC][usize::from(byte) % 7]),
                }
            }
            exercise(&bytes);
        }

        #[test]
        fn unescape_inverts_escape(s in any::<String>(), trunc in any::<bool>()) {
            let mut seps = Separators::default();
            if trunc {
                seps.truncation = Some(b'#');
            }
            let escaped = escape(&s, &seps);
            prop_assert_eq!(unescape(&escaped, &seps), s.as_str());
        }

        #[test]
        fn path_compile_never_panics(s in any::<String>()) {
            let _ = Path::compile(&s);
        }
    }
}
