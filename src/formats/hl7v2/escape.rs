//! HL7 v2 escape sequences (`\F\`, `\S\`, `\T\`, `\R\`, `\E\`, `\Xhh\`, `\.br\`): [`escape`] text
//! for a field and [`unescape`] a field's value for the given delimiters, borrowing when there is
//! nothing to do. Never drops text it does not understand: an unknown escape is kept as written.

use super::*;

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

pub(super) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(super) fn hex_bytes(h: &str) -> Option<Vec<u8>> {
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

pub(super) fn all_hex(h: &str) -> bool {
    h.bytes().all(|c| hex_value(c).is_some())
}

/// Writes what the escape sequence `content` stands for; false if unknown.
pub(super) fn apply_escape(content: &str, enc: &Separators, out: &mut String) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hl7v2::test_support::*;
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn unescape_inverts_escape(s in any::<String>(), trunc in any::<bool>()) {
            let mut seps = Separators::default();
            if trunc {
                seps.truncation = Some(b'#');
            }
            let escaped = escape(&s, &seps);
            prop_assert_eq!(unescape(&escaped, &seps), s.as_str());
        }
    }
}
