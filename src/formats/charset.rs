//! Character sets for Japanese interchange files: strict decoding of bytes in
//! UTF-8, MS932 (Windows-31J, the Shift_JIS that ケアプランデータ連携 CSV uses),
//! ISO-2022-JP (SS-MIX2 HL7 v2), EUC-JP, UTF-16 or US-ASCII into Rust text, and
//! strict encoding of text back into those bytes. The only user of encoding_rs:
//! CSV, HL7 v2 and XML all decode with [`decode`] / [`decode_exact`] and encode
//! with [`encode`] and its kin, so one rule holds at every door. What comes in is raw bytes (decode, sniff) or `&str` plus a
//! caller-given context string (encode); what goes out is text, a guessed
//! [`Charset`], or bytes — or a [`CharsetError`] that says where: line,
//! column and byte offset for bad input bytes, the offending character, its
//! code point and the caller's context for text the target cannot carry.
//! This module must never substitute anything: no U+FFFD on decode, no `?`
//! or `&#NNNN;` on encode, no silent lossy mapping (a character is only
//! encoded if decoding its bytes gives the same character back), and it must
//! never panic, whatever the bytes.
//!
//! Decisions worth knowing:
//! * MS932 is encoding_rs's WHATWG `Shift_JIS`, which is Microsoft's table
//!   (NEC row 13, NEC-selected and IBM extensions included). 0x8160 is
//!   U+FF5E FULLWIDTH TILDE `～`; U+301C WAVE DASH `〜` has no MS932 byte
//!   sequence and is refused by [`encode`] (callers that want it must map it
//!   to U+FF5E before encoding). Likewise U+2212 `−` (encoding_rs would write
//!   the bytes of U+FF0D `－`), U+00A5 `¥` and U+203E `‾` (they would become
//!   `\` and `~`) are refused as lossy, as are U+2014, U+2016, U+00A2, U+00A3
//!   and U+00AC, which MS932 does not have at all (nor U+3094 `ゔ`, nor
//!   anything outside the BMP).
//! * MS932 encode also refuses private-use characters (U+E000–U+F8FF): they
//!   would land in the 外字 area, which the care-plan specification forbids.
//!   Decode accepts those bytes (they are well-formed MS932).
//! * ISO-2022-JP encode refuses half-width katakana (encoding_rs would widen
//!   them to full-width).
//! * [`sniff`] only picks ISO-2022-JP for 7-bit input containing one of its
//!   escape sequences, because such input is also valid UTF-8.

use crate::redact::{Disclose, Quoted};
use std::borrow::Cow;
use std::fmt;

use encoding_rs::{
    DecoderResult, EUC_JP, EncoderResult, Encoding, ISO_2022_JP, SHIFT_JIS, UTF_16BE, UTF_16LE,
};

/// A character set the hub reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (a leading BOM is stripped on decode, never written on encode).
    Utf8,
    /// MS932 / Windows-31J / CP932 (Shift_JIS with the Microsoft extensions).
    Ms932,
    /// ISO-2022-JP (JIS X 0208 via escape sequences, 7-bit).
    Iso2022Jp,
    /// EUC-JP (XML files may declare it).
    EucJp,
    /// UTF-16 little-endian, without its byte-order mark (XML files that start with `FF FE`).
    Utf16Le,
    /// UTF-16 big-endian, without its byte-order mark (XML files that start with `FE FF`).
    Utf16Be,
    /// US-ASCII: 7-bit bytes only (HL7 `MSH-18 = ISO IR6`, XML `encoding="US-ASCII"`).
    Ascii,
}

impl Charset {
    /// Parses a charset label a mapping or the command line may name (UTF-8, MS932 or
    /// ISO-2022-JP), case-insensitively, ignoring surrounding blanks. `shift_jis` and `sjis` are taken to mean MS932, because that is
    /// what Japanese software writes under those names.
    pub fn parse(name: &str) -> Option<Charset> {
        let n = name.trim().to_ascii_lowercase();
        match n.as_str() {
            "utf-8" | "utf8" => Some(Charset::Utf8),
            "ms932" | "cp932" | "windows-31j" | "windows-932" | "shift_jis" | "shift-jis"
            | "sjis" | "x-sjis" => Some(Charset::Ms932),
            "iso-2022-jp" | "iso2022jp" | "jis" => Some(Charset::Iso2022Jp),
            _ => None,
        }
    }

    /// The canonical name used in messages: `UTF-8`, `MS932`, `ISO-2022-JP`, `EUC-JP`,
    /// `UTF-16LE`, `UTF-16BE`, `US-ASCII`.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Ms932 => "MS932",
            Charset::Iso2022Jp => "ISO-2022-JP",
            Charset::EucJp => "EUC-JP",
            Charset::Utf16Le => "UTF-16LE",
            Charset::Utf16Be => "UTF-16BE",
            Charset::Ascii => "US-ASCII",
        }
    }
}

impl std::fmt::Display for Charset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be decoded or text could not be encoded. `Display` says where and why;
/// the offending bytes or character are quoted only for the sender ([`Disclose`]).
#[derive(Debug, thiserror::Error)]
pub enum CharsetError {
    /// The input holds a byte sequence that is not valid in `charset`.
    /// `line` and `column` are 1-based and counted in the text decoded before
    /// the bad bytes (lines end at LF; columns count characters).
    #[error(
        "line {line}, column {column} (byte offset {offset}): not valid {charset}, the encoding expected{}",
        found_note(*.found, *.charset)
    )]
    Decode {
        charset: Charset,
        line: usize,
        column: usize,
        /// Byte offset of the first bad byte in the input given to [`decode`].
        offset: usize,
        /// The offending bytes (at most a few), in hex (`0x85 0xA8`).
        bytes: Quoted,
        /// What the whole input looks like instead, when that can be told.
        found: Option<Found>,
    },
    /// `ch` has no exact representation in `charset`.
    #[error("a character cannot be represented in {charset} at {context}")]
    Unrepresentable {
        charset: Charset,
        /// The character.
        ch: Quoted,
        /// Where the character came from, as the caller described it.
        context: String,
    },
}

impl Disclose for CharsetError {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CharsetError::Decode {
                charset,
                line,
                column,
                offset,
                bytes,
                found,
            } => write!(
                f,
                "line {line}, column {column} (byte offset {offset}): invalid byte sequence {} in {charset}, the encoding expected{}",
                bytes.reveal(),
                found_note(*found, *charset)
            ),
            CharsetError::Unrepresentable {
                charset,
                ch,
                context,
            } => {
                let ch = ch.reveal();
                let code = ch.chars().next().map(code_point).unwrap_or_default();
                write!(
                    f,
                    "character '{ch}' ({code}) cannot be represented in {charset} at {context}"
                )
            }
        }
    }
}

/// What bytes that are not the expected encoding look like instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Starts with the UTF-8 byte-order mark `EF BB BF`.
    Utf8Bom,
    /// Valid UTF-8 with characters beyond ASCII, no byte-order mark.
    Utf8,
    /// Starts with the UTF-16 little-endian byte-order mark `FF FE`.
    Utf16Le,
    /// Starts with the UTF-16 big-endian byte-order mark `FE FF`.
    Utf16Be,
    /// 7-bit text with ISO-2022-JP (JIS) escape sequences.
    Iso2022Jp,
    /// Valid MS932 (Shift_JIS).
    Ms932,
}

impl Found {
    /// What `bytes`, which are not valid `expected`, look like (`None`: cannot tell).
    pub fn of(bytes: &[u8], expected: Charset) -> Option<Found> {
        let found = if bytes.starts_with(UTF8_BOM) {
            Found::Utf8Bom
        } else if bytes.starts_with(b"\xFF\xFE") {
            Found::Utf16Le
        } else if bytes.starts_with(b"\xFE\xFF") {
            Found::Utf16Be
        } else if has_iso2022jp_escape(bytes) {
            Found::Iso2022Jp
        } else if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
            Found::Utf8
        } else if !bytes.is_ascii() && decode_with(bytes, SHIFT_JIS, Charset::Ms932).is_ok() {
            Found::Ms932
        } else {
            return None;
        };
        let same = matches!(
            (found, expected),
            (Found::Utf8 | Found::Utf8Bom, Charset::Utf8)
                | (Found::Iso2022Jp, Charset::Iso2022Jp)
                | (Found::Ms932, Charset::Ms932)
        );
        (!same).then_some(found)
    }

    /// The encoding, as a user would look for it in a save dialog.
    pub fn name(self) -> &'static str {
        match self {
            Found::Utf8Bom => "UTF-8 with a byte-order mark (BOM)",
            Found::Utf8 => "UTF-8 (without a byte-order mark)",
            Found::Utf16Le => "UTF-16 little-endian (byte-order mark FF FE)",
            Found::Utf16Be => "UTF-16 big-endian (byte-order mark FE FF)",
            Found::Iso2022Jp => "ISO-2022-JP (JIS escape sequences)",
            Found::Ms932 => "MS932 (Shift_JIS)",
        }
    }
}

fn found_note(found: Option<Found>, expected: Charset) -> String {
    match found {
        Some(found) => format!(
            "; the input looks like {}: save or export it as {expected}",
            found.name()
        ),
        None => String::new(),
    }
}

fn hex_bytes(bytes: &[u8]) -> Quoted {
    let parts: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
    Quoted::new(if parts.is_empty() {
        "(truncated at end of input)".to_string()
    } else {
        parts.join(" ")
    })
}

fn code_point(ch: char) -> String {
    format!("U+{:04X}", u32::from(ch))
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// 1-based line and column of the end of `prefix` (lines end at LF,
/// columns count characters).
fn position_after(prefix: &str) -> (usize, usize) {
    let line = prefix.bytes().filter(|&b| b == b'\n').count() + 1;
    let last_line = match prefix.rfind('\n') {
        Some(i) => prefix.get(i + 1..).unwrap_or(""),
        None => prefix,
    };
    (line, last_line.chars().count() + 1)
}

/// Decodes `bytes` strictly. A UTF-8 BOM is stripped (for UTF-8 only); any
/// malformed sequence is an error that gives its line, column and byte
/// offset, and what the input looks like instead when that can be told.
/// Valid UTF-8 is returned borrowed.
pub fn decode(bytes: &[u8], charset: Charset) -> Result<Cow<'_, str>, CharsetError> {
    let (body, skipped) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) if charset == Charset::Utf8 => (rest, UTF8_BOM.len()),
        _ => (bytes, 0),
    };
    decode_exact(body, charset).map_err(|e| match e {
        CharsetError::Decode {
            charset,
            line,
            column,
            offset,
            bytes: bad,
            found: None,
        } => CharsetError::Decode {
            charset,
            line,
            column,
            offset: skipped + offset,
            bytes: bad,
            found: Found::of(bytes, charset),
        },
        other => other,
    })
}

/// Decodes exactly `bytes`, strictly: no byte-order mark is looked for (a caller that reads
/// one, like the XML and HL7 v2 readers, has taken it off), and no guess is made at what the
/// bytes are instead (`found` is `None`). The one strict decoder of the hub: the first malformed
/// sequence is an error with its line, column and byte offset in `bytes`. ISO-2022-JP in the
/// shape SS-MIX2 writes (ASCII and JIS X 0208 only) takes a fast path that gives the same text.
/// ASCII and valid UTF-8 are returned borrowed.
pub fn decode_exact(bytes: &[u8], charset: Charset) -> Result<Cow<'_, str>, CharsetError> {
    let decode_error = |before: &str, offset: usize, bad: &[u8]| {
        let (line, column) = position_after(before);
        CharsetError::Decode {
            charset,
            line,
            column,
            offset,
            bytes: hex_bytes(bad),
            found: None,
        }
    };
    match charset {
        Charset::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
            let good = e.valid_up_to();
            let prefix = std::str::from_utf8(bytes.get(..good).unwrap_or(&[])).unwrap_or("");
            let bad_len = e.error_len().unwrap_or(bytes.len().saturating_sub(good));
            decode_error(prefix, good, bytes.get(good..good + bad_len).unwrap_or(&[]))
        }),
        Charset::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(at) => {
                let prefix = std::str::from_utf8(bytes.get(..at).unwrap_or(&[])).unwrap_or("");
                Err(decode_error(prefix, at, bytes.get(at..=at).unwrap_or(&[])))
            }
            None => Ok(Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or(""))),
        },
        Charset::Iso2022Jp => match iso2022jp_fast(bytes) {
            Some(text) => Ok(Cow::Owned(text)),
            None => decode_with(bytes, ISO_2022_JP, charset).map(Cow::Owned),
        },
        Charset::Ms932 => match iso2022jp_escape_at(bytes) {
            // ESC is a valid MS932 byte: JIS text would decode without an error, as garbage.
            Some(at) => {
                let before = decode_with(bytes.get(..at).unwrap_or(&[]), SHIFT_JIS, charset)?;
                Err(decode_error(
                    &before,
                    at,
                    bytes.get(at..at + 3).unwrap_or(&[]),
                ))
            }
            None => decode_with(bytes, SHIFT_JIS, charset).map(Cow::Owned),
        },
        Charset::EucJp => decode_with(bytes, EUC_JP, charset).map(Cow::Owned),
        Charset::Utf16Le => decode_with(bytes, UTF_16LE, charset).map(Cow::Owned),
        Charset::Utf16Be => decode_with(bytes, UTF_16BE, charset).map(Cow::Owned),
    }
}

fn decode_with(
    bytes: &[u8],
    encoding: &'static Encoding,
    charset: Charset,
) -> Result<String, CharsetError> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len());
    let mut out = String::with_capacity(capacity);
    let mut pos = 0usize;
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let (result, read) = decoder.decode_to_string_without_replacement(rest, &mut out, true);
        pos = pos.saturating_add(read);
        match result {
            DecoderResult::InputEmpty => {
                // The capacity was sized for the worst case (up to 3x).
                out.shrink_to_fit();
                return Ok(out);
            }
            DecoderResult::OutputFull => {
                let remaining = bytes.len().saturating_sub(pos);
                let more = decoder
                    .max_utf8_buffer_length_without_replacement(remaining)
                    .unwrap_or(remaining);
                out.reserve(more.saturating_add(16));
            }
            DecoderResult::Malformed(bad, extra) => {
                let end = pos.saturating_sub(usize::from(extra));
                let start = end.saturating_sub(usize::from(bad));
                let (line, column) = position_after(&out);
                return Err(CharsetError::Decode {
                    charset,
                    line,
                    column,
                    offset: start,
                    bytes: hex_bytes(bytes.get(start..end).unwrap_or(&[])),
                    found: None,
                });
            }
        }
    }
}

/// JIS X 0208 row/cell -> code point (0 = unassigned), built once from
/// encoding_rs's own EUC-JP mapping so it cannot disagree with it.
fn jis0208_table() -> &'static [u16] {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![0u16; 94 * 94];
        for (pointer, slot) in table.iter_mut().enumerate() {
            let lead = (pointer / 94) as u8 + 0xA1;
            let trail = (pointer % 94) as u8 + 0xA1;
            let pair = [lead, trail];
            let decoded = EUC_JP.decode_without_bom_handling_and_without_replacement(&pair);
            let mut chars = decoded.as_deref().unwrap_or("").chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                *slot = u16::try_from(u32::from(c)).unwrap_or(0);
            }
        }
        table
    })
}

const ESC: u8 = 0x1B;

/// Fast path for the SS-MIX2 case: ISO-2022-JP using only ASCII (`ESC ( B`)
/// and JIS X 0208 (`ESC $ B`, `ESC $ @`): ASCII runs are copied, kanji looked
/// up in [`jis0208_table`]. Several times faster than the byte-at-a-time
/// ISO-2022-JP state machine. Returns `None` for anything else (other
/// escapes, stray bytes, an escape sequence right after another, unassigned
/// characters): the caller then runs the strict ISO-2022-JP decoder, which
/// also reports where it broke. When it returns text, the text is what
/// encoding_rs's ISO-2022-JP decoder gives.
fn iso2022jp_fast(body: &[u8]) -> Option<String> {
    let table = jis0208_table();
    let mut out = String::with_capacity(body.len() + body.len() / 2);
    let mut rest = body;
    let mut double_byte = false;
    let mut just_escaped = false;
    loop {
        let run_len = rest.iter().position(|&b| b == ESC).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(run_len);
        if double_byte {
            for pair in run.chunks(2) {
                let &[lead, trail] = pair else {
                    return None;
                };
                if !(0x21..=0x7E).contains(&lead) || !(0x21..=0x7E).contains(&trail) {
                    return None;
                }
                let pointer = usize::from(lead - 0x21) * 94 + usize::from(trail - 0x21);
                let code = *table.get(pointer)?;
                out.push(char::from_u32(u32::from(code)).filter(|_| code != 0)?);
            }
        } else {
            if !run.is_ascii() || run.contains(&0x0E) || run.contains(&0x0F) {
                return None;
            }
            out.push_str(std::str::from_utf8(run).ok()?);
        }
        if tail.is_empty() {
            return Some(out);
        }
        // Two escape sequences in a row are an error for the WHATWG decoder.
        if just_escaped && run.is_empty() {
            return None;
        }
        double_byte = match tail {
            [ESC, b'(', b'B', ..] => false,
            [ESC, b'$', b'B' | b'@', ..] => true,
            _ => return None,
        };
        just_escaped = true;
        rest = tail.get(3..)?;
    }
}

/// Guesses the charset of `bytes`: a UTF-8 BOM means UTF-8; 7-bit input
/// with an ISO-2022-JP escape sequence (`ESC $ @`, `ESC $ B`, `ESC ( B`,
/// `ESC ( J`) means ISO-2022-JP; other valid UTF-8 (including plain ASCII)
/// means UTF-8; anything else is taken as MS932. Short MS932 text can happen
/// to be valid UTF-8, so callers that know the charset should say so.
pub fn sniff(bytes: &[u8]) -> Charset {
    if bytes.starts_with(UTF8_BOM) {
        return Charset::Utf8;
    }
    if bytes.is_ascii() && has_iso2022jp_escape(bytes) {
        return Charset::Iso2022Jp;
    }
    if std::str::from_utf8(bytes).is_ok() {
        Charset::Utf8
    } else {
        Charset::Ms932
    }
}

fn has_iso2022jp_escape(bytes: &[u8]) -> bool {
    iso2022jp_escape_at(bytes).is_some()
}

/// Where the first ISO-2022-JP escape sequence starts.
fn iso2022jp_escape_at(bytes: &[u8]) -> Option<usize> {
    if !bytes.contains(&ESC) {
        return None;
    }
    bytes.windows(3).position(|w| {
        matches!(
            w,
            [0x1B, b'$', b'@'] | [0x1B, b'$', b'B'] | [0x1B, b'(', b'B'] | [0x1B, b'(', b'J']
        )
    })
}

/// Encodes `text` strictly into `charset`. A character the target cannot
/// represent exactly is an error naming the character, its code point and
/// `context` (e.g. `UP2KYO row 3, column 14 (サービス内容)`). See the module
/// documentation for the characters refused although encoding_rs would
/// write something for them.
pub fn encode(text: &str, charset: Charset, context: &str) -> Result<Vec<u8>, CharsetError> {
    encode_in(text, charset, || context.to_string())
}

/// [`encode`] with the context described only when there is an error (a caller checking many
/// fields pays no formatting for the ones that encode).
pub fn encode_in(
    text: &str,
    charset: Charset,
    context: impl Fn() -> String,
) -> Result<Vec<u8>, CharsetError> {
    let mut out = Vec::new();
    encode_into(&mut out, text, charset, context)?;
    Ok(out)
}

/// [`encode_in`] appending to `out`; on error `out` is as it was.
pub fn encode_into(
    out: &mut Vec<u8>,
    text: &str,
    charset: Charset,
    context: impl Fn() -> String,
) -> Result<(), CharsetError> {
    let unrepresentable = |ch: char| CharsetError::Unrepresentable {
        charset,
        ch: Quoted::new(ch),
        context: context(),
    };
    let encoding = match charset {
        Charset::Utf8 => {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        Charset::Ascii => {
            if let Some(ch) = text.chars().find(|c| !c.is_ascii()) {
                return Err(unrepresentable(ch));
            }
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        // encoding_rs writes UTF-8 for UTF-16 (the WHATWG rule); every character has UTF-16.
        Charset::Utf16Le => {
            out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            return Ok(());
        }
        Charset::Utf16Be => {
            out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            return Ok(());
        }
        Charset::Ms932 => SHIFT_JIS,
        Charset::Iso2022Jp => ISO_2022_JP,
        Charset::EucJp => EUC_JP,
    };
    // MS932 writes every ASCII character as its own byte and reads it back as itself (WHATWG
    // Shift_JIS), so ASCII text needs neither the encoder nor the check below. (Not so in
    // ISO-2022-JP, which cannot carry ESC, SO or SI.)
    if charset == Charset::Ms932 && text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    if charset == Charset::Ms932
        && let Some(ch) = text.chars().find(|c| ('\u{E000}'..='\u{F8FF}').contains(c))
    {
        return Err(unrepresentable(ch));
    }
    let start = out.len();
    let mut encoder = encoding.new_encoder();
    let capacity = encoder
        .max_buffer_length_from_utf8_without_replacement(text.len())
        .unwrap_or(text.len());
    out.reserve(capacity);
    let mut pos = 0usize;
    loop {
        let rest = text.get(pos..).unwrap_or("");
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, out, true);
        pos = pos.saturating_add(read);
        match result {
            EncoderResult::InputEmpty => break,
            EncoderResult::OutputFull => {
                let remaining = text.len().saturating_sub(pos);
                let more = encoder
                    .max_buffer_length_from_utf8_without_replacement(remaining)
                    .unwrap_or(remaining);
                out.reserve(more.saturating_add(16));
            }
            EncoderResult::Unmappable(ch) => {
                out.truncate(start);
                return Err(unrepresentable(ch));
            }
        }
    }
    // Refuse lossy mappings: the bytes must decode to exactly the input.
    // Every mapping of these encoders is one character to one character, so
    // the first differing character is the culprit.
    let back = decode_with(out.get(start..).unwrap_or(&[]), encoding, charset).ok();
    if back.as_deref() != Some(text) {
        out.truncate(start);
        let back = back.unwrap_or_default();
        let mut decoded = back.chars();
        let culprit = text
            .chars()
            .find(|&c| decoded.next() != Some(c))
            .or_else(|| text.chars().last())
            .unwrap_or('\u{FFFD}');
        return Err(unrepresentable(culprit));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn ms932(text: &str) -> Vec<u8> {
        match encode(text, Charset::Ms932, "test") {
            Ok(b) => b,
            Err(e) => panic!("encoding {text:?}: {e}"),
        }
    }

    #[test]
    fn encode_into_appends_and_leaves_the_buffer_as_it_was_on_error() {
        let mut out = b"head,".to_vec();
        encode_into(&mut out, "介護", Charset::Ms932, || "f".into()).expect("MS932 text");
        assert_eq!(out, [b"head,".as_slice(), &ms932("介護")].concat());
        let before = out.clone();
        for bad in ["介護𠮷", "\u{E000}", "x\u{FEFF}"] {
            let e = encode_into(&mut out, bad, Charset::Ms932, || {
                "record 2, column 3".into()
            })
            .expect_err("not MS932");
            assert!(e.to_string().contains("record 2, column 3"), "{e}");
            assert_eq!(out, before, "{bad:?} left nothing behind");
        }
        encode_into(&mut out, "abc", Charset::Ms932, || "f".into()).expect("ASCII");
        assert!(out.ends_with(b"abc"));
    }

    #[test]
    fn ascii_in_ms932_is_itself_both_ways() {
        let all: String = (0u8..=0x7F).map(char::from).collect();
        let bytes = ms932(&all);
        assert_eq!(bytes, all.as_bytes());
        // The same bytes the encoder itself writes, and they read back as the text.
        let encoder = encoding_rs::SHIFT_JIS.encode(&all).0;
        assert_eq!(&bytes[..], &encoder[..]);
        let (back, _, lossy) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!lossy);
        assert_eq!(back, all);
        // The context is described only for an error.
        let e = encode_in("ab〜", Charset::Ms932, || "record 2, column 3".into()).unwrap_err();
        assert!(e.to_string().ends_with("at record 2, column 3"), "{e}");
    }

    #[test]
    fn parse_accepts_common_labels_in_any_case() {
        for (label, want) in [
            ("utf-8", Charset::Utf8),
            ("UTF8", Charset::Utf8),
            ("ms932", Charset::Ms932),
            ("CP932", Charset::Ms932),
            ("Windows-31J", Charset::Ms932),
            ("shift_jis", Charset::Ms932),
            ("SJIS", Charset::Ms932),
            (" iso-2022-jp ", Charset::Iso2022Jp),
        ] {
            assert_eq!(Charset::parse(label), Some(want), "{label}");
        }
        assert_eq!(Charset::parse("euc-jp"), None);
        assert_eq!(Charset::parse(""), None);
    }

    #[test]
    fn name_is_canonical_and_parses_back() {
        for cs in [Charset::Utf8, Charset::Ms932, Charset::Iso2022Jp] {
            assert_eq!(Charset::parse(cs.name()), Some(cs));
        }
        assert_eq!(Charset::Ms932.name(), "MS932");
    }

    #[test]
    fn decode_valid_utf8_borrows_and_strips_bom() {
        let plain = "居宅,ｶﾅ\r\n".as_bytes();
        assert!(matches!(
            decode(plain, Charset::Utf8),
            Ok(Cow::Borrowed("居宅,ｶﾅ\r\n"))
        ));
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(plain);
        match decode(&with_bom, Charset::Utf8) {
            Ok(Cow::Borrowed(s)) => assert_eq!(s, "居宅,ｶﾅ\r\n"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decode_invalid_utf8_reports_line_column_and_offset() {
        let bytes = b"ab\ncd\xFFef";
        match decode(bytes, Charset::Utf8) {
            Err(CharsetError::Decode {
                line,
                column,
                offset,
                bytes,
                ..
            }) => {
                assert_eq!((line, column, offset), (2, 3, 5));
                assert_eq!(bytes.reveal(), "0xFF");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decode_ms932_kanji_and_half_width_kana() {
        // 介護 = 89 EE 8C EC; ｶﾅ = B6 C5
        let bytes = [0x89, 0xEE, 0x8C, 0xEC, b',', 0xB6, 0xC5];
        assert_eq!(
            decode(&bytes, Charset::Ms932).ok().as_deref(),
            Some("介護,ｶﾅ")
        );
    }

    #[test]
    fn decode_invalid_ms932_reports_position_in_decoded_text() {
        // line 2: "介護" then a lead byte followed by an invalid trail byte.
        let mut bytes = b"x\r\n".to_vec();
        bytes.extend_from_slice(&[0x89, 0xEE, 0x8C, 0xEC, 0x81, 0x7F]);
        let err = decode(&bytes, Charset::Ms932).err();
        match &err {
            Some(CharsetError::Decode {
                line,
                column,
                offset,
                charset,
                ..
            }) => {
                assert_eq!((*line, *column, *offset), (2, 3, 7));
                assert_eq!(*charset, Charset::Ms932);
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = err.expect("an error");
        let msg = e.to_string();
        assert!(
            msg.contains("line 2, column 3 (byte offset 7): not valid MS932"),
            "{msg}"
        );
        assert!(
            !msg.contains("0x81"),
            "the bytes are for the sender only: {msg}"
        );
        let told = e.for_sender().to_string();
        assert!(
            told.contains("invalid byte sequence 0x81 in MS932"),
            "{told}"
        );
    }

    #[test]
    fn decode_never_yields_replacement_character() {
        for bad in [
            &[0xA0u8][..],
            &[0xFF],
            &[0x81],
            &[0x82, 0x20],
            &[0xFD, 0xFE],
        ] {
            assert!(decode(bad, Charset::Ms932).is_err(), "{bad:?}");
        }
        assert!(decode(b"\x1B$B\xFF", Charset::Iso2022Jp).is_err());
    }

    #[test]
    fn decode_iso2022jp() {
        // "介護" in ISO-2022-JP: ESC $ B 32 70 38 6E ESC ( B
        let bytes = b"\x1B$B2p8n\x1B(B!";
        assert_eq!(
            decode(bytes, Charset::Iso2022Jp).ok().as_deref(),
            Some("介護!")
        );
    }

    #[test]
    fn sniff_distinguishes_bom_utf8_iso2022jp_and_ms932() {
        assert_eq!(sniff(b"\xEF\xBB\xBFabc"), Charset::Utf8);
        assert_eq!(sniff("介護".as_bytes()), Charset::Utf8);
        assert_eq!(sniff(b"plain,ascii\r\n"), Charset::Utf8);
        assert_eq!(sniff(b"\x1B$B2p8n\x1B(B"), Charset::Iso2022Jp);
        assert_eq!(sniff(&[0x89, 0xEE, 0x8C, 0xEC]), Charset::Ms932);
        assert_eq!(sniff(&[0xB6, 0xC5]), Charset::Ms932);
    }

    #[test]
    fn encode_ms932_known_code_points() {
        assert_eq!(ms932("～"), vec![0x81, 0x60]); // U+FF5E
        assert_eq!(ms932("①"), vec![0x87, 0x40]);
        assert_eq!(ms932("㈱"), vec![0x87, 0x8A]);
        assert_eq!(ms932("髙"), vec![0xFB, 0xFC]); // IBM extension, not NEC-selected 0xEEE0
        assert_eq!(ms932("﨑"), vec![0xFA, 0xB1]);
        assert_eq!(ms932("ｱ"), vec![0xB1]);
        assert_eq!(ms932("－"), vec![0x81, 0x7C]); // U+FF0D
    }

    #[test]
    fn encode_refuses_wave_dash_and_names_it() {
        let err = encode(
            "期間〜",
            Charset::Ms932,
            "UP2KYO row 3, column 14 (サービス内容)",
        );
        match err {
            Err(e @ CharsetError::Unrepresentable { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "a character cannot be represented in MS932 at UP2KYO row 3, column 14 (サービス内容)"
                );
                assert_eq!(
                    e.for_sender().to_string(),
                    "character '〜' (U+301C) cannot be represented in MS932 at UP2KYO row 3, column 14 (サービス内容)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn encode_refuses_lossy_minus_yen_and_overline() {
        for ch in ['\u{2212}', '\u{00A5}', '\u{203E}'] {
            match encode(&format!("a{ch}b"), Charset::Ms932, "ctx") {
                Err(CharsetError::Unrepresentable { ch: got, .. }) => {
                    assert_eq!(got.reveal(), ch.to_string())
                }
                other => panic!("U+{:04X}: unexpected {other:?}", u32::from(ch)),
            }
        }
    }

    #[test]
    fn encode_refuses_non_bmp_and_emoji_and_private_use() {
        for (text, ch) in [("吉𠮷野", '𠮷'), ("😀", '😀'), ("x\u{E000}", '\u{E000}')] {
            let err = encode(text, Charset::Ms932, "ctx").err();
            match &err {
                Some(CharsetError::Unrepresentable { ch: got, .. }) => {
                    assert_eq!(got.reveal(), ch.to_string())
                }
                other => panic!("{text}: unexpected {other:?}"),
            }
            let msg = err.map(|e| e.for_sender().to_string()).unwrap_or_default();
            assert!(msg.contains(&format!("U+{:04X}", u32::from(ch))), "{msg}");
        }
    }

    #[test]
    fn encode_never_writes_question_mark_or_numeric_reference() {
        assert!(encode("𠮷", Charset::Iso2022Jp, "ctx").is_err());
        assert!(encode("😀", Charset::Ms932, "ctx").is_err());
        // A literal '?' or '&#' in the input is of course kept as is.
        assert_eq!(ms932("?&#1;"), b"?&#1;".to_vec());
    }

    #[test]
    fn encode_iso2022jp_round_trips_and_refuses_half_width_kana() {
        let bytes = encode("介護!", Charset::Iso2022Jp, "ctx").ok();
        assert_eq!(bytes.as_deref(), Some(&b"\x1B$B2p8n\x1B(B!"[..]));
        assert!(matches!(
            encode("ｶ", Charset::Iso2022Jp, "ctx"),
            Err(CharsetError::Unrepresentable { ch, .. }) if ch.reveal() == "ｶ"
        ));
    }

    #[test]
    fn encode_utf8_is_identity_without_bom() {
        assert_eq!(
            encode("〜𠮷", Charset::Utf8, "ctx").ok(),
            Some("〜𠮷".as_bytes().to_vec())
        );
    }

    #[test]
    fn representative_japanese_text_round_trips_or_is_refused() {
        let sample = "居宅サービス計画書介護支援専門員課題長期目標短期目標援助内容頻度期間\
                      髙﨑德濵彅隆神祇福祉用具貸与訪問看護通所介護\
                      あいうえおがぱゃゎをんゔ\
                      アイウエオガパャヮヲンヴヵヶー・\
                      ｱｲｳｴｵｶﾞﾊﾟｬｰ｡｢｣､\
                      ０１２３４５６７８９ＡＢＣＸＹＺａｂｃｘｙｚ\
                      ①②⑳ⅠⅡⅰⅱ㈱㈲№℡㍉㌔∵≒≡∫∮√⊥∠∟⊿∩∪¬\
                      ～〜−－ー―‐…‥「」『』【】〒※○●◎△▲□■☆★\
                      ￥¥\\~‾＼￣｜‖∥¢£￠￡￢—\
                      𠮷😀";
        let mut refused = Vec::new();
        for ch in sample.chars() {
            let s = ch.to_string();
            match encode(&s, Charset::Ms932, "sample") {
                Ok(bytes) => {
                    let back = decode(&bytes, Charset::Ms932).map(|c| c.into_owned()).ok();
                    assert_eq!(back.as_deref(), Some(s.as_str()), "U+{:04X}", u32::from(ch));
                }
                Err(CharsetError::Unrepresentable {
                    ch: got, charset, ..
                }) => {
                    assert_eq!(got.reveal(), s);
                    assert_eq!(charset, Charset::Ms932);
                    refused.push(ch);
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
        // Exactly these are refused; everything else round-tripped above.
        let expected: Vec<char> = "ゔ〜−¥‾‖¢£¬—𠮷😀".chars().collect();
        let mut refused_sorted = refused.clone();
        refused_sorted.sort_unstable();
        let mut expected_sorted = expected;
        expected_sorted.sort_unstable();
        assert_eq!(refused_sorted, expected_sorted, "refused: {refused:?}");
    }

    #[test]
    fn whole_text_encode_matches_per_character_encode() {
        let text = "ＡＢＣ髙﨑①㈱ｶﾅ,\"x\"\r\n長期目標～";
        let whole = ms932(text);
        let pieces: Vec<u8> = text.chars().flat_map(|c| ms932(&c.to_string())).collect();
        assert_eq!(whole, pieces);
        assert_eq!(decode(&whole, Charset::Ms932).ok().as_deref(), Some(text));
    }

    #[test]
    fn an_encoding_error_names_the_encoding_expected_and_the_one_found() {
        let text = "保険者番号,被保険者番号\r\n131011,秘匿太郎\r\n";
        let utf8 = text.as_bytes().to_vec();
        let bom = [UTF8_BOM, text.as_bytes()].concat();
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        let jis = encode(text, Charset::Iso2022Jp, "test").expect("JIS text");
        for (bytes, found) in [
            (&utf8, "UTF-8 (without a byte-order mark)"),
            (&bom, "UTF-8 with a byte-order mark"),
            (&utf16le, "UTF-16 little-endian"),
            (&utf16be, "UTF-16 big-endian"),
            (&jis, "ISO-2022-JP"),
        ] {
            let e = decode(bytes, Charset::Ms932).expect_err(found);
            let msg = e.to_string();
            assert!(
                msg.contains("not valid MS932, the encoding expected")
                    && msg.contains(&format!("the input looks like {found}")),
                "{msg}"
            );
            assert!(!msg.contains("0x"), "no bytes: {msg}");
        }
        // MS932 where UTF-8 was expected; bytes that look like nothing known say only that.
        let ms932 = encode(text, Charset::Ms932, "test").expect("MS932 text");
        let msg = decode(&ms932, Charset::Utf8)
            .expect_err("not UTF-8")
            .to_string();
        assert!(msg.contains("looks like MS932"), "{msg}");
        let msg = decode(&[b'a', 0x80, 0xFF], Charset::Ms932)
            .expect_err("not MS932")
            .to_string();
        assert!(!msg.contains("looks like"), "{msg}");
    }

    /// Every file under the SS-MIX2 fixtures, in a stable order.
    fn ssmix2_fixtures() -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(
            "/work/shared/fixtures/ssmix2/sampleData",
        )];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("fixture dir readable") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn iso2022jp_fast_path_handles_every_fixture_like_encoding_rs() {
        let mut fast = 0;
        for f in ssmix2_fixtures() {
            let bytes = std::fs::read(&f).expect("readable");
            let reference = decode_with(&bytes, ISO_2022_JP, Charset::Iso2022Jp).ok();
            if let Some(text) = iso2022jp_fast(&bytes) {
                fast += 1;
                assert_eq!(Some(text), reference, "{}", f.display());
            }
        }
        assert_eq!(fast, 21, "every real message takes the fast path");
    }

    proptest::proptest! {
    #[test]
    fn iso2022jp_fast_path_agrees_with_encoding_rs(
        pieces in vec(
            prop_oneof![
                6 => vec(0x20u8..0x7F, 0..6),
                6 => vec(0x21u8..0x7F, 1..4).prop_map(|v| {
                    let mut out = b"\x1b$B".to_vec();
                    for b in v {
                        out.extend_from_slice(&[0x30 + b % 0x1F, 0x21 + b % 0x5E]);
                    }
                    out.extend_from_slice(b"\x1b(B");
                    out
                }),
                1 => Just(b"\x1b$B".to_vec()),
                1 => Just(b"\x1b(B".to_vec()),
                1 => Just(b"\x1b$@".to_vec()),
                1 => Just(b"\x1b(J\\~".to_vec()),
                1 => Just(b"\x1b(I!".to_vec()),
                1 => Just(vec![0x0E]),
                1 => Just(vec![0x80]),
                1 => Just(b"\r\n".to_vec()),
                1 => any::<u8>().prop_map(|b| vec![b]),
            ],
            0..24,
        )
    ) {
        let bytes: Vec<u8> = pieces.concat();
        let reference = decode_with(&bytes, ISO_2022_JP, Charset::Iso2022Jp).ok();
        if let Some(fast) = iso2022jp_fast(&bytes) {
            prop_assert_eq!(Some(fast), reference);
        }
    }

    #[test]
    fn iso2022jp_fast_path_takes_well_formed_ascii_and_kanji(
        pieces in vec((vec(0x20u8..0x7F, 1..6), vec(any::<u8>(), 0..4)), 0..12)
    ) {
        // Rows 0x30..=0x4E of JIS X 0208 (level-1 kanji) are fully assigned.
        let mut bytes = Vec::new();
        for (ascii, kanji) in pieces {
            bytes.extend_from_slice(&ascii);
            if !kanji.is_empty() {
                bytes.extend_from_slice(b"\x1b$B");
                for b in kanji {
                    bytes.extend_from_slice(&[0x30 + b % 0x1F, 0x21 + b % 0x5E]);
                }
                bytes.extend_from_slice(b"\x1b(B");
            }
        }
        let reference = decode_with(&bytes, ISO_2022_JP, Charset::Iso2022Jp).ok();
        prop_assert!(reference.is_some());
        prop_assert_eq!(iso2022jp_fast(&bytes), reference);
    }

    }
}
