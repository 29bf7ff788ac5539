//! Which encoding an XML file is in — a byte-order mark, else the XML declaration's `encoding`
//! (UTF-8, US-ASCII, Shift_JIS/Windows-31J, EUC-JP, ISO-2022-JP, UTF-16) — and its strict decoding
//! with the hub's one decoder ([`charset::decode_exact`]): a malformed byte is an error at its line,
//! column and byte offset, never a U+FFFD; a declaration that disagrees with the bytes is refused.

use super::chars::*;
use super::*;

pub(super) struct Decoded<'a> {
    pub(super) text: Cow<'a, str>,
    pub(super) encoding: &'static str,
}

pub(super) enum Label {
    Utf8,
    Ascii,
    Utf16,
    Other(Charset),
}

pub(super) fn classify_label(label: &str) -> Option<Label> {
    let lower = label.trim().to_ascii_lowercase();
    Some(match lower.as_str() {
        "utf-8" | "utf8" => Label::Utf8,
        "us-ascii" | "ascii" => Label::Ascii,
        "utf-16" | "utf-16le" | "utf-16be" => Label::Utf16,
        "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "windows-31j" | "ms932" | "cp932"
        | "ms_kanji" | "csshiftjis" => Label::Other(Charset::Ms932),
        "euc-jp" | "eucjp" | "x-euc-jp" | "cseucpkdfmtjapanese" => Label::Other(Charset::EucJp),
        "iso-2022-jp" | "csiso2022jp" => Label::Other(Charset::Iso2022Jp),
        _ => return None,
    })
}

/// The name of `charset` as XML declarations write it (`Shift_JIS` for MS932).
pub(super) fn declared_name(charset: Charset) -> &'static str {
    match charset {
        Charset::Ms932 => "Shift_JIS",
        other => other.name(),
    }
}

pub(super) fn unsupported(label: &str) -> XmlError {
    XmlError::UnsupportedEncoding {
        line: 1,
        column: 1,
        label: clip(label),
    }
}

pub(super) fn mismatch(label: &str, detected: &'static str) -> XmlError {
    XmlError::EncodingMismatch {
        line: 1,
        column: 1,
        declared: clip(label),
        detected,
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, XmlError> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        if let Some(label) = declared_encoding(rest) {
            match classify_label(&label) {
                Some(Label::Utf8) => {}
                Some(_) => return Err(mismatch(&label, "UTF-8 (byte-order mark)")),
                None => return Err(unsupported(&label)),
            }
        }
        return decode_in(rest, Charset::Utf8, 3);
    }
    let utf16 = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        Some((Charset::Utf16Le, rest, 2))
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some((Charset::Utf16Be, rest, 2))
    } else if bytes.starts_with(&[0x3C, 0x00, 0x3F, 0x00]) {
        Some((Charset::Utf16Le, bytes, 0))
    } else if bytes.starts_with(&[0x00, 0x3C, 0x00, 0x3F]) {
        Some((Charset::Utf16Be, bytes, 0))
    } else {
        None
    };
    if let Some((charset, rest, skip)) = utf16 {
        let decoded = decode_in(rest, charset, skip)?;
        if let Some(label) = declared_encoding(decoded.text.as_bytes()) {
            match classify_label(&label) {
                Some(Label::Utf16) => {}
                Some(_) => return Err(mismatch(&label, declared_name(charset))),
                None => return Err(unsupported(&label)),
            }
        }
        return Ok(decoded);
    }
    match declared_encoding(bytes) {
        None => decode_in(bytes, Charset::Utf8, 0),
        Some(label) => match classify_label(&label) {
            Some(Label::Utf8) => decode_in(bytes, Charset::Utf8, 0),
            Some(Label::Ascii) => decode_in(bytes, Charset::Ascii, 0),
            Some(Label::Utf16) => Err(mismatch(&label, "not UTF-16 (no byte-order mark)")),
            Some(Label::Other(charset)) => decode_in(bytes, charset, 0),
            None => Err(unsupported(&label)),
        },
    }
}

/// Decodes `bytes` (which start `skip` bytes into the input) strictly with the hub's one
/// decoder, [`charset::decode_exact`]; the first malformed sequence is an
/// [`XmlError::Encoding`] at the line and column the XML parser would count.
pub(super) fn decode_in(
    bytes: &[u8],
    charset: Charset,
    skip: usize,
) -> Result<Decoded<'_>, XmlError> {
    let encoding = declared_name(charset);
    match charset::decode_exact(bytes, charset) {
        Ok(text) => Ok(Decoded { text, encoding }),
        Err(e) => {
            let (offset, bad) = match e {
                CharsetError::Decode { offset, bytes, .. } => (offset, bytes),
                CharsetError::Unrepresentable { ch, .. } => (0, ch),
            };
            let before = bytes.get(..offset).unwrap_or(&[]);
            let before = charset::decode_exact(before, charset).unwrap_or_default();
            let (line, column) = LineCursor::new(&before).at(before.len());
            Err(XmlError::Encoding {
                line,
                column,
                encoding,
                byte_offset: skip + offset,
                detail: if charset == Charset::Ascii {
                    "a byte outside ASCII"
                } else {
                    "malformed byte sequence"
                },
                bytes: bad,
            })
        }
    }
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>`, read as ASCII.
/// `None` when there is no declaration or it has no readable encoding; the XML
/// parser reports a broken declaration later.
pub(super) fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    if !matches!(rest.first(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        return None;
    }
    let window = rest.get(..rest.len().min(1024))?;
    let end = window.windows(2).position(|w| w == b"?>")?;
    let mut s = window.get(..end)?;
    loop {
        s = trim_ascii_ws(s);
        if s.is_empty() {
            return None;
        }
        let name_len = s
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')))
            .unwrap_or(s.len());
        if name_len == 0 {
            return None;
        }
        let name = s.get(..name_len)?;
        s = trim_ascii_ws(s.get(name_len..)?);
        s = s.strip_prefix(b"=")?;
        s = trim_ascii_ws(s);
        let quote = *s.first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let body = s.get(1..)?;
        let close = body.iter().position(|&b| b == quote)?;
        if name == b"encoding" {
            return Some(String::from_utf8_lossy(body.get(..close)?).into_owned());
        }
        s = body.get(close + 1..)?;
    }
}

pub(super) fn trim_ascii_ws(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    s.get(start..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::xml::test_support::*;

    #[test]
    fn shift_jis_declared_document_is_decoded() {
        let xml = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<利用者><氏名>介護 太郎</氏名><住所>東京都～港区</住所></利用者>";
        let bytes = charset::encode(xml, Charset::Ms932, "test").expect("MS932 text");
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "test input must not be UTF-8"
        );
        let d = match parse(&bytes, &XmlLimits::default()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(d.encoding(), "Shift_JIS");
        assert_eq!(sel(&d, "/利用者/氏名", &[]), ["介護 太郎"]);
        assert_eq!(sel(&d, "/利用者/住所", &[]), ["東京都～港区"]);
    }

    #[test]
    fn windows_31j_euc_jp_and_iso_2022_jp_documents_are_decoded() {
        // 髙 (IBM extension) exists in Windows-31J but not in JIS X 0208.
        for (label, enc, decoded_as, name) in [
            ("Windows-31J", Charset::Ms932, "Shift_JIS", "髙橋"),
            ("MS932", Charset::Ms932, "Shift_JIS", "髙橋"),
            ("EUC-JP", Charset::EucJp, "EUC-JP", "高橋"),
            ("ISO-2022-JP", Charset::Iso2022Jp, "ISO-2022-JP", "高橋"),
        ] {
            let xml = format!("<?xml version='1.0' encoding='{label}'?><a>{name}</a>");
            let bytes = charset::encode(&xml, enc, "test")
                .unwrap_or_else(|e| panic!("{label} cannot encode the test text: {e}"));
            assert!(!bytes.windows(2).any(|w| w == b"&#"), "{label}");
            let d = match parse(&bytes, &XmlLimits::default()) {
                Ok(d) => d,
                Err(e) => panic!("{label}: {e}"),
            };
            assert_eq!(d.encoding(), decoded_as, "{label}");
            assert_eq!(d.text(d.root()), Some(name), "{label}");
        }
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>介護</a>";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in xml.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        for (bytes, name) in [(le, "UTF-16LE"), (be, "UTF-16BE")] {
            let d = match parse(&bytes, &XmlLimits::default()) {
                Ok(d) => d,
                Err(e) => panic!("{name}: {e}"),
            };
            assert_eq!(d.encoding(), name);
            assert_eq!(d.text(d.root()), Some("介護"));
        }
    }

    #[test]
    fn malformed_shift_jis_bytes_are_an_error_with_offset_not_replacement() {
        let mut bytes = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<a>".to_vec();
        let offset = bytes.len();
        bytes.extend_from_slice(&[0x82, 0x20, b'<', b'/', b'a', b'>']);
        match err(&bytes) {
            XmlError::Encoding {
                byte_offset,
                line,
                column,
                encoding,
                ..
            } => {
                assert_eq!(byte_offset, offset);
                assert_eq!((line, column), (2, 4));
                assert_eq!(encoding, "Shift_JIS");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_with_offset() {
        let e = err(b"<a>ok\xFFno</a>");
        assert!(
            matches!(
                e,
                XmlError::Encoding {
                    byte_offset: 5,
                    line: 1,
                    column: 6,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_or_mismatched_encoding_is_refused() {
        let e = err(b"<?xml version=\"1.0\" encoding=\"KOI8-R\"?><a/>");
        assert!(
            matches!(e, XmlError::UnsupportedEncoding { ref label, .. } if label == "KOI8-R"),
            "{e}"
        );
        let e = err(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>");
        assert!(matches!(e, XmlError::EncodingMismatch { .. }), "{e}");
        let e = err(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a/>");
        assert!(matches!(e, XmlError::EncodingMismatch { .. }), "{e}");
    }

    #[test]
    fn utf8_bom_is_skipped() {
        let d = doc("\u{FEFF}<?xml version=\"1.0\"?><a>x</a>");
        assert_eq!(d.text(d.root()), Some("x"));
    }
}
