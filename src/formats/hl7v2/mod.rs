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
//!
//! The rooms: `decode` (bytes to text, MSH-1/2/18), `message` (the indexes and navigation),
//! `path` ([`Node`], the [`Path`] grammar), `escape` (HL7 escape sequences), `ack` (answers and
//! their bytes); this file holds what they share: [`Hl7Error`], the MSH-18 [`Charset`] and the
//! [`Separators`].

use crate::redact::{Disclose, Quoted};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use super::charset::{self, CharsetError};

mod ack;
mod decode;
mod escape;
mod message;
mod path;
#[cfg(test)]
mod test_support;

pub use ack::{AckCode, AckError, Coded, build_ack, build_ack_with, encode, table_0357_text};
pub use decode::parse;
pub use escape::{escape, unescape};
pub use message::Message;
pub use path::{Node, Path};

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
