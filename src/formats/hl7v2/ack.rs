//! HL7 v2 acknowledgements: [`build_ack`] answers a message (MSH echoed and swapped, MSA, ERR
//! with HL7 table 0357 and the application's own code), every text escaped; [`encode`] turns it
//! into bytes with the hub's one strict encoder ([`charset::encode_in`]), refusing — never
//! replacing — a character the message's character set cannot carry.

use super::*;

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
    let errors: Vec<AckError> = error.cloned().into_iter().collect();
    build_ack_with(original, code, &errors, timestamp, control_id)
}

/// [`build_ack`] with any number of ERR segments, in order. MSA-3 is the first error's text
/// unless the code is `AA`; ERR-4 is `W` (warning) on an `AA` (the message was accepted, the
/// ERR segments say what of it was not) and `E` otherwise.
pub fn build_ack_with(
    original: Option<&Message>,
    code: AckCode,
    errors: &[AckError],
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
    if let Some(e) = errors.first()
        && code != AckCode::AA
        && !e.message.is_empty()
    {
        out.push('|');
        out.push_str(&escape(&e.message, &seps));
    }
    out.push('\r');

    let severity = if code == AckCode::AA { "W" } else { "E" };
    for e in errors {
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
            "ERR||{}|{}|{severity}|{}|||{}\r",
            location,
            hl7_code,
            application,
            escape(&e.message, &seps)
        );
    }
    out
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
    use crate::formats::hl7v2::test_support::*;

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
    fn an_accepted_message_may_carry_warnings_one_err_each_and_no_msa_3() {
        let refused = |n: &str| AckError {
            code: None,
            location: None,
            application: Some(Coded {
                code: "consent-denied".into(),
                text: "No consent".into(),
                system: "99KHB".into(),
            }),
            message: format!("document {n} refused"),
        };
        let ack = build_ack_with(
            Some(&adt00()),
            AckCode::AA,
            &[refused("2"), refused("3")],
            "20240101",
            "X1",
        );
        let m = parse(ack.as_bytes()).expect("parses");
        assert_eq!(v(&m, "MSA-1").as_deref(), Some("AA"));
        assert_eq!(v(&m, "MSA-3"), None, "{ack}");
        assert_eq!(ack.matches("\rERR|").count(), 2, "{ack}");
        assert!(
            ack.ends_with("ERR||||W|consent-denied^No consent^99KHB|||document 3 refused\r"),
            "{ack}"
        );
        assert_eq!(v(&m, "ERR-4").as_deref(), Some("W"));
        assert_eq!(v(&m, "ERR-8").as_deref(), Some("document 2 refused"));
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
}
