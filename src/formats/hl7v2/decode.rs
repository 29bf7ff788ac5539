//! Bytes to text for HL7 v2: strips MLLP framing and a BOM, reads the delimiters of MSH-1/MSH-2
//! and the character set of MSH-18 (or tells it from the bytes), and decodes the whole message
//! with the hub's one strict decoder ([`charset::decode_exact`]) before anything is split — double-
//! byte characters may hold the bytes of `|^~\&`. Out: a [`Message`], or an [`Hl7Error`] naming the
//! byte offset and line. Never substitutes a character, never panics.

use super::*;

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
pub(super) fn strip_framing(bytes: &[u8]) -> (usize, &[u8]) {
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

pub(super) fn preview_bytes(body: &[u8]) -> String {
    if body.is_empty() {
        return "nothing".to_string();
    }
    let head = body.get(..body.len().min(16)).unwrap_or(body);
    format!("{:?}", String::from_utf8_lossy(head))
}

pub(super) fn is_delimiter_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

pub(super) fn read_separators(body: &[u8]) -> Result<Separators, Hl7Error> {
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
pub(super) fn line_of(bytes: &[u8], offset: usize) -> usize {
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
pub(super) fn read_msh18(line: &[u8], fs: u8) -> Cow<'_, str> {
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
pub(super) fn read_msh18_decoded(line: &[u8], fs: u8) -> String {
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

pub(super) fn detect_charset(
    body: &[u8],
    seps: &Separators,
    prefix: usize,
) -> Result<Charset, Hl7Error> {
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

pub(super) fn decode_body(
    body: &[u8],
    charset: Charset,
    prefix: usize,
) -> Result<String, Hl7Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hl7v2::test_support::*;

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
}
