//! What the MLLP source answers: one `ACK` per frame, with MSA-1 `AA`, `AE` (not kept, or kept
//! in the dead-letter queue: the sender may correct and resend) or `AR` (refused: not kept, or
//! kept in quarantine), and for every refusal an ERR segment. ERR-3 carries a code of HL7 table
//! 0357 only where one fits — `100` segment sequence (no `MSH` first, an empty block, a segment
//! without a name), `102` data type (delimiters, bytes the character set cannot read), `103` table
//! value (an `MSH-18` character set HL7 table 0211 does not name), `200` unsupported message type
//! (no mapping takes it), `207` only for the hub's own internal errors. What no code of that
//! table says — consent and insurer refusals, a sender that may not send, a frame over
//! `body_limit` — is ERR-5, the hub's own code ([`LocalCode`], coding system `99KHB`; the table in
//! `docs/mllp.md` lists them, and a test holds the two together), with ERR-3 left empty rather
//! than filled with a code that says something else. ERR-8 (and MSA-3) is the text for the sender.
//! A message some of whose documents were refused (the others go on) is `AA` with one ERR per
//! refused document, ERR-4 `W`, ERR-5 the document's refusal code and ERR-8 which document and
//! why ([`Verdict::accepted_with`]).
//! In: one frame's [`Verdict`]; out: the framed `ACK`, in the character set of the message it
//! answers. Must never put into an `ACK` anything but the answered message's own fields, reason
//! codes and the hub's own words: no value the hub looked up (such as the 被保険者番号 a patient
//! id is linked to), nothing of another message.

use crate::formats::hl7v2::{self, AckCode, AckError, Charset, Coded, Hl7Error, Message};
use crate::formats::mllp::encode_frame;
use crate::formats::tree::FormatError;
use crate::mapping::{Input, MappingSet, TranslateError};
use crate::pipeline::clock;
use std::sync::atomic::{AtomicU64, Ordering};

/// CWE.3 of ERR-5: the hub's own, locally defined coding system (HL7's `99zzz` form).
pub const LOCAL_SYSTEM: &str = "99KHB";

/// Longest error text put in `MSA-3` / `ERR-8` (characters).
const MAX_ERROR_CHARS: usize = 400;

/// The hub's own error codes, sent in ERR-5 where HL7 table 0357 has no code that fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalCode {
    /// The frame is larger than `body_limit`. `AR`, not kept.
    BodyTooLarge,
    /// MLLP over TLS, and the peer presented no client certificate. `AR`, not kept.
    CertificateRequired,
    /// MLLP over TLS, and no party lists the verified client certificate. `AR`, not kept.
    CertificateNotRegistered,
    /// The peer (its address, or its certificate) may not send as the party MSH-4 names.
    /// `AR`, not kept.
    SenderNotAllowed,
    /// A document in the message names another party as its sender. `AR`, kept in quarantine.
    SenderMismatch,
    /// The person could not be identified (the patient id is linked to no 被保険者).
    /// `AR`, kept in quarantine until the link exists.
    UnknownSubject,
    /// A municipality sent data of a person another insurer insures. `AR`, kept in quarantine.
    InsurerMismatch,
    /// The person has not consented to the platform receiving this category. `AR`, kept in
    /// quarantine until consent is registered.
    ConsentDenied,
    /// Any other refusal of the sender's right to send it. `AR`, kept in quarantine.
    Refused,
    /// A rule of the mapping refused a value (missing, not a date, not in a code table, …).
    /// `AE`, kept in the dead-letter queue.
    MappingFailed,
    /// The mapping found no document in the message. `AE`, kept in the dead-letter queue.
    NoDocument,
    /// More segments or fields than one message may have. `AE` or `AR`.
    StructureLimit,
    /// The bus or the consent registry is unreachable, or too many messages wait. `AE`, not
    /// kept: resend later.
    HubUnavailable,
}

impl LocalCode {
    /// Every code, in the order docs/mllp.md lists them.
    pub const ALL: [LocalCode; 13] = [
        LocalCode::BodyTooLarge,
        LocalCode::CertificateRequired,
        LocalCode::CertificateNotRegistered,
        LocalCode::SenderNotAllowed,
        LocalCode::SenderMismatch,
        LocalCode::UnknownSubject,
        LocalCode::InsurerMismatch,
        LocalCode::ConsentDenied,
        LocalCode::Refused,
        LocalCode::MappingFailed,
        LocalCode::NoDocument,
        LocalCode::StructureLimit,
        LocalCode::HubUnavailable,
    ];

    /// ERR-5.1 (at most 20 characters, the length of CWE.1 in HL7 v2.5).
    pub fn code(self) -> &'static str {
        match self {
            LocalCode::BodyTooLarge => "body-too-large",
            LocalCode::CertificateRequired => "cert-required",
            LocalCode::CertificateNotRegistered => "cert-not-registered",
            LocalCode::SenderNotAllowed => "sender-not-allowed",
            LocalCode::SenderMismatch => "sender-mismatch",
            LocalCode::UnknownSubject => "unknown-subject",
            LocalCode::InsurerMismatch => "insurer-mismatch",
            LocalCode::ConsentDenied => "consent-denied",
            LocalCode::Refused => "refused",
            LocalCode::MappingFailed => "mapping-failed",
            LocalCode::NoDocument => "no-document",
            LocalCode::StructureLimit => "structure-limit",
            LocalCode::HubUnavailable => "hub-unavailable",
        }
    }

    /// ERR-5.2.
    pub fn text(self) -> &'static str {
        match self {
            LocalCode::BodyTooLarge => "Message larger than body_limit",
            LocalCode::CertificateRequired => "Client certificate required",
            LocalCode::CertificateNotRegistered => "Client certificate not registered",
            LocalCode::SenderNotAllowed => "Sender not allowed",
            LocalCode::SenderMismatch => "Sender is another party",
            LocalCode::UnknownSubject => "Person not identified",
            LocalCode::InsurerMismatch => "Person of another insurer",
            LocalCode::ConsentDenied => "No consent",
            LocalCode::Refused => "Refused",
            LocalCode::MappingFailed => "Mapping rule failed",
            LocalCode::NoDocument => "No document in the message",
            LocalCode::StructureLimit => "Too many segments or fields",
            LocalCode::HubUnavailable => "Hub temporarily unavailable",
        }
    }

    /// The code of an ingress refusal's reason (`consent-denied:<why>`, `unknown-subject`,
    /// `insurer-mismatch`, `sender-mismatch`; any other reason is [`LocalCode::Refused`]).
    pub fn of_refusal(reason: &str) -> LocalCode {
        match reason.split(':').next().unwrap_or(reason) {
            "consent-denied" => LocalCode::ConsentDenied,
            "unknown-subject" => LocalCode::UnknownSubject,
            "insurer-mismatch" => LocalCode::InsurerMismatch,
            "sender-mismatch" => LocalCode::SenderMismatch,
            _ => LocalCode::Refused,
        }
    }
}

/// How an ERR segment codes a refusal: a code of HL7 table 0357 (ERR-3), the hub's own (ERR-5),
/// or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cause {
    /// ERR-3.
    pub hl7: Option<&'static str>,
    /// ERR-5.
    pub local: Option<LocalCode>,
}

impl Cause {
    /// A code of HL7 table 0357.
    pub fn hl7(code: &'static str) -> Cause {
        Cause {
            hl7: Some(code),
            local: None,
        }
    }

    /// The hub's own code, where no code of table 0357 fits.
    pub fn local(code: LocalCode) -> Cause {
        Cause {
            hl7: None,
            local: Some(code),
        }
    }

    /// Why a frame does not read as HL7 v2.
    pub fn of_parse_error(e: &Hl7Error) -> Cause {
        match e {
            Hl7Error::NotHl7 { .. } | Hl7Error::BadSegmentName { .. } => Cause::hl7("100"),
            Hl7Error::UnknownCharset { .. } => Cause::hl7("103"),
            Hl7Error::BadFieldSeparator { .. }
            | Hl7Error::BadEncodingCharacters { .. }
            | Hl7Error::UndetectableCharset { .. }
            | Hl7Error::Malformed { .. }
            | Hl7Error::Unencodable { .. } => Cause::hl7("102"),
            Hl7Error::TooManySegments { .. }
            | Hl7Error::TooManyFields { .. }
            | Hl7Error::TooLarge { .. } => Cause::local(LocalCode::StructureLimit),
        }
    }

    /// Why a message that reads as HL7 v2 could not be mapped: asks `set` again, on this error
    /// path only, because ingress hands the source only its error's text (`Refusal::Malformed`).
    /// No mapping for the message type is `200`; two mappings for it, or a mapping that names no
    /// category, are the hub's own mistakes (`207`); a rule that refused a value is
    /// [`LocalCode::MappingFailed`] (HL7 table 0357 would tell `101`, `102` and `103` apart, but
    /// the mapping's error does not say which kind of rule failed).
    pub fn of_unmappable(set: &MappingSet, bytes: &[u8]) -> Cause {
        let input = Input {
            bytes,
            file_name: None,
        };
        match set.translate(input, None) {
            Err(TranslateError::NoMapping { .. }) => Cause::hl7("200"),
            Err(TranslateError::Format(FormatError::Hl7(e))) => Cause::of_parse_error(&e),
            Err(TranslateError::Ambiguous(_)) => Cause::hl7("207"),
            Err(_) => Cause::local(LocalCode::MappingFailed),
            Ok(t) if t.documents.is_empty() => Cause::local(LocalCode::NoDocument),
            Ok(_) => Cause::hl7("207"),
        }
    }
}

/// One frame's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// MSA-1.
    pub code: AckCode,
    /// ERR-3 and ERR-5; `None` for `AA`.
    pub cause: Option<Cause>,
    /// ERR-8 and MSA-3, for the sender.
    pub text: String,
    /// The same without the sender's values (the error's value-free rendering), sent instead of
    /// `text` when the message's character set cannot carry `text`; `None` when `text` quotes
    /// no value.
    pub value_free: Option<String>,
    /// On an `AA`: the documents of the message that were refused (the others go on), each
    /// its own ERR segment with its code and a value-free text.
    pub refused: Vec<(LocalCode, String)>,
}

impl Verdict {
    /// `AA`.
    pub fn accepted() -> Verdict {
        Verdict {
            code: AckCode::AA,
            cause: None,
            text: String::new(),
            value_free: None,
            refused: Vec::new(),
        }
    }

    /// `AA` for a message some of whose documents were refused: one ERR segment per refused
    /// document (its code, and a text of ids and codes only).
    pub fn accepted_with(refused: Vec<(LocalCode, String)>) -> Verdict {
        Verdict {
            refused,
            ..Verdict::accepted()
        }
    }

    /// `AE`: the sender may correct and resend.
    pub fn error(cause: Cause, text: impl Into<String>) -> Verdict {
        Verdict {
            code: AckCode::AE,
            cause: Some(cause),
            text: text.into(),
            value_free: None,
            refused: Vec::new(),
        }
    }

    /// `AR`: refused.
    pub fn reject(cause: Cause, text: impl Into<String>) -> Verdict {
        Verdict {
            code: AckCode::AR,
            cause: Some(cause),
            text: text.into(),
            value_free: None,
            refused: Vec::new(),
        }
    }

    /// This verdict with an ERR segment for each of `refused` documents after its own (on an
    /// `AR`: the documents of a message none of which may go on).
    pub fn with_refused(mut self, refused: Vec<(LocalCode, String)>) -> Verdict {
        self.refused = refused;
        self
    }

    /// This verdict with `text`, the value-free rendering of its text, to send when the message's
    /// character set cannot carry the text itself.
    pub fn or_value_free(mut self, text: impl Into<String>) -> Verdict {
        self.value_free = Some(text.into());
        self
    }

    /// The ERR segment with the text for the sender.
    fn err_segment(&self) -> Option<AckError> {
        self.err_segment_saying(&self.text)
    }

    /// The ERR segment with a text that quotes none of the sender's values: the value-free
    /// rendering, or [`WITHHELD`] when there is none.
    fn err_segment_value_free(&self) -> Option<AckError> {
        self.err_segment_saying(self.value_free.as_deref().unwrap_or(WITHHELD))
    }

    fn err_segment_saying(&self, full: &str) -> Option<AckError> {
        Some(err(self.cause?, full))
    }

    /// Every ERR segment: the verdict's own, then one per refused document; `plain` sends
    /// the value-free texts (a refused document's text is [`WITHHELD`] then: it is value-free
    /// already, but may hold characters the message's character set cannot carry).
    fn err_segments(&self, plain: bool) -> Vec<AckError> {
        let own = match plain {
            false => self.err_segment(),
            true => self.err_segment_value_free(),
        };
        let refused = self.refused.iter().map(|(code, text)| {
            let text = if plain { WITHHELD } else { text.as_str() };
            err(Cause::local(*code), text)
        });
        own.into_iter().chain(refused).collect()
    }
}

/// One ERR segment: `cause` and `full` cut to [`MAX_ERROR_CHARS`].
fn err(cause: Cause, full: &str) -> AckError {
    let mut text: String = full.chars().take(MAX_ERROR_CHARS).collect();
    if text.len() < full.len() {
        text.push('…');
    }
    AckError {
        code: cause.hl7.map(String::from),
        location: None,
        application: cause.local.map(|l| Coded {
            code: l.code().into(),
            text: l.text().into(),
            system: LOCAL_SYSTEM.into(),
        }),
        message: text,
    }
}

/// ERR-8 when the error text quotes characters the message's character set cannot carry and no
/// value-free rendering of it exists (ASCII, so every character set carries it).
pub const WITHHELD: &str = "the error text quotes characters the message's character set cannot \
                            carry, so it is withheld; ERR-3 and ERR-5 give the reason";

/// The framed `ACK` of `verdict` for `original` (the message answered, when it parsed), encoded
/// in the original's character set by the hub's strict encoder: no character is ever replaced by
/// another (DESIGN §6; encoding_rs would write ｶﾅ as カナ in ISO-2022-JP). When the error text
/// holds a character that character set cannot carry (say a quoted half-width-kana value in an
/// ISO-2022-JP answer), MSA-3 and ERR-8 carry the verdict's value-free text instead, or
/// [`WITHHELD`]; MSH-18 stays true. If an echoed field of the original cannot be carried either,
/// the answer is the minimal `ACK` (no echoed field, no MSH-18, the text [`WITHHELD`]) in ASCII,
/// which reads the same in every character set.
pub fn frame(original: Option<&Message>, verdict: &Verdict) -> Vec<u8> {
    let charset = original.map(Message::charset).unwrap_or(Charset::Utf8);
    let ack = |original: Option<&Message>, errs: Vec<AckError>, charset: Charset| {
        let text = hl7v2::build_ack_with(original, verdict.code, &errs, &now_hl7(), &control_id());
        hl7v2::encode(&text, charset).map_err(|e| (e, text))
    };
    let bytes = ack(original, verdict.err_segments(false), charset)
        .or_else(|_| ack(original, verdict.err_segments(true), charset))
        .or_else(|(e, _)| {
            tracing::warn!(error = %e, "MLLP: an echoed field cannot be carried; minimal ACK in ASCII");
            let minimal = verdict.clone().or_value_free(WITHHELD);
            ack(None, minimal.err_segments(true), Charset::Ascii)
        })
        .unwrap_or_else(|(_, text)| text.into_bytes());
    let mut out = Vec::with_capacity(bytes.len() + 3);
    encode_frame(&bytes, &mut out);
    out
}

/// Now as an HL7 DTM in 日本時間, `YYYYMMDDHHMMSS` (MSH-7 of an `ACK`).
fn now_hl7() -> String {
    let ((y, m, d), (hh, mm, ss)) = clock::now_jst();
    format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}")
}

/// MSH-10 of an `ACK`: 20 characters (the HL7 v2.5 length), JST time + a process counter.
fn control_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}{n:06}", now_hl7())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unframed(framed: &[u8]) -> Message {
        hl7v2::parse(&framed[1..framed.len() - 2]).expect("the ACK parses")
    }

    fn field(m: &Message, path: &str) -> String {
        m.value_at(&hl7v2::Path::compile(path).expect("a valid path"))
            .map(|v| v.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn control_ids_are_twenty_characters_and_distinct() {
        let now = now_hl7();
        assert!(
            now.len() == 14 && now.bytes().all(|b| b.is_ascii_digit()),
            "{now}"
        );
        let (a, b) = (control_id(), control_id());
        assert_eq!(a.len(), 20, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn long_errors_are_cut_and_marked() {
        let v = Verdict::error(Cause::hl7("102"), "x".repeat(5000));
        let e = v.err_segment().expect("an ERR");
        assert_eq!(e.message.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(e.message.ends_with('…'));
        let v = Verdict::error(Cause::hl7("102"), "short");
        assert_eq!(v.err_segment().expect("an ERR").message, "short");
        assert_eq!(Verdict::accepted().err_segment(), None);
    }

    fn iso2022jp_message() -> Message {
        hl7v2::parse(b"MSH|^~\\&|HIS|1311234567|HUB|P|20250101||ADT^A08|M1|P|2.5||||||~ISO IR87\r")
            .expect("an ISO-2022-JP message")
    }

    #[test]
    fn an_ack_keeps_the_charset_of_the_message_and_withholds_a_text_it_cannot_carry() {
        let m = iso2022jp_message();
        let framed = frame(Some(&m), &Verdict::error(Cause::hl7("102"), "値 `昭和`"));
        let body = &framed[1..framed.len() - 2];
        assert!(
            body.windows(3).any(|w| w == b"\x1b$B"),
            "ISO-2022-JP expected"
        );
        assert_eq!(field(&unframed(&framed), "ERR-8"), "値 `昭和`");
        let framed = frame(Some(&m), &Verdict::error(Cause::hl7("102"), "値 `昭和` ☃"));
        let back = unframed(&framed);
        assert_eq!(back.charset(), Charset::Iso2022Jp);
        assert_eq!(field(&back, "ERR-8"), WITHHELD);
        assert_eq!(field(&back, "MSA-3"), WITHHELD);
        assert!(!back.text().contains("U+2603"), "{}", back.text());
        assert!(back.text().contains("MSA|AE|M1"), "{}", back.text());
    }

    #[test]
    fn half_width_kana_in_an_iso2022jp_ack_is_never_widened_but_answered_value_free() {
        // encoding_rs writes ｶﾅ as カナ in ISO-2022-JP; the ACK used to send that, without a word.
        let m = iso2022jp_message();
        let verdict = Verdict::error(
            Cause::local(LocalCode::MappingFailed),
            "PID-5 `ｶﾅ`: not a name",
        )
        .or_value_free("PID-5: not a name");
        let back = unframed(&frame(Some(&m), &verdict));
        assert_eq!(back.charset(), Charset::Iso2022Jp);
        assert!(!back.text().contains("カナ"), "{}", back.text());
        assert_eq!(field(&back, "ERR-8"), "PID-5: not a name");
        assert_eq!(field(&back, "ERR-5.1"), "mapping-failed");
        assert!(
            back.text().contains("MSA|AE|M1|PID-5: not a name"),
            "{}",
            back.text()
        );
        // A sender whose own fields the charset cannot carry gets the minimal ACK, in ASCII.
        let kana_sender = hl7v2::parse(
            b"MSH|^~\\&|\x1b(I6\x1b(B|1311234567|HUB|P|20250101||ADT^A08|M1|P|2.5||||||~ISO IR87\r",
        )
        .expect("half-width kana through ESC ( I");
        assert_eq!(field(&kana_sender, "MSH-3"), "ｶ");
        let framed = frame(Some(&kana_sender), &verdict);
        assert!(framed[1..framed.len() - 2].is_ascii());
        let back = unframed(&framed);
        assert_eq!(field(&back, "MSA-1"), "AE");
        assert_eq!(field(&back, "ERR-8"), WITHHELD);
    }

    #[test]
    fn refusals_carry_the_local_code_in_err_5_and_no_table_0357_code() {
        for reason in [
            "consent-denied:no-consent",
            "unknown-subject",
            "insurer-mismatch",
            "sender-mismatch",
        ] {
            let local = LocalCode::of_refusal(reason);
            assert_ne!(local, LocalCode::Refused, "{reason}");
            let back = unframed(&frame(None, &Verdict::reject(Cause::local(local), reason)));
            assert_eq!(field(&back, "MSA-1"), "AR");
            assert_eq!(field(&back, "ERR-3"), "", "{reason}: {}", back.text());
            assert_eq!(field(&back, "ERR-4"), "E");
            assert_eq!(
                field(&back, "ERR-5.1"),
                reason.split(':').next().unwrap_or("")
            );
            assert_eq!(field(&back, "ERR-5.3"), LOCAL_SYSTEM);
            assert_eq!(field(&back, "ERR-8"), reason);
        }
        assert_eq!(LocalCode::of_refusal("something-new"), LocalCode::Refused);
    }

    #[test]
    fn an_accepted_message_lists_its_refused_documents_as_warnings() {
        let m = iso2022jp_message();
        let verdict = Verdict::accepted_with(vec![
            (
                LocalCode::ConsentDenied,
                "consent-denied:no-consent; document 2 refused".into(),
            ),
            (
                LocalCode::UnknownSubject,
                "unknown-subject; document 3: 被保険者番号 の紐付けなし".into(),
            ),
        ]);
        let back = unframed(&frame(Some(&m), &verdict));
        assert_eq!(field(&back, "MSA-1"), "AA");
        assert_eq!(field(&back, "MSA-3"), "");
        assert_eq!(field(&back, "ERR-4"), "W");
        assert_eq!(field(&back, "ERR-5.1"), "consent-denied");
        let text = back.text();
        assert_eq!(text.matches("\rERR|").count(), 2, "{text}");
        assert!(text.contains("W|unknown-subject^Person not identified^99KHB|||unknown-subject; document 3: 被保険者番号"), "{text}");
        // A character set that cannot carry the Japanese words: each text is withheld, the codes stay.
        let ascii =
            hl7v2::parse(b"MSH|^~\\&|HIS|1311234567|HUB|P|20250101||ADT^A08|M2|P|2.5||||||ASCII\r")
                .expect("an ASCII message");
        let back = unframed(&frame(Some(&ascii), &verdict));
        let text = back.text();
        assert!(text.contains("MSA|AA|M2"), "{text}");
        assert_eq!(text.matches(WITHHELD).count(), 2, "{text}");
        assert!(
            text.contains("unknown-subject^Person not identified"),
            "{text}"
        );
    }

    #[test]
    fn parse_errors_map_to_table_0357_codes() {
        let code = |bytes: &[u8]| {
            let e = hl7v2::parse(bytes).expect_err("does not parse");
            Cause::of_parse_error(&e)
        };
        assert_eq!(code(b"hello"), Cause::hl7("100"));
        assert_eq!(code(b"MSH|^~\\&|A\rX|bad\r"), Cause::hl7("100"));
        assert_eq!(
            code(b"MSH|^~\\&|A|B|C|D|2025||ADT^A08|1|P|2.5||||||KLINGON\r"),
            Cause::hl7("103")
        );
        assert_eq!(code(b"MSH|^^\\&|A"), Cause::hl7("102"));
    }

    #[test]
    fn local_codes_are_short_distinct_and_documented_in_docs_mllp_md() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mllp.md"),
        )
        .expect("docs/mllp.md");
        for (i, c) in LocalCode::ALL.iter().enumerate() {
            assert!(c.code().len() <= 20, "{}", c.code());
            assert!(
                LocalCode::ALL[..i].iter().all(|d| d.code() != c.code()),
                "{} twice",
                c.code()
            );
            let row = format!("| `{}` | {} |", c.code(), c.text());
            assert!(doc.contains(&row), "docs/mllp.md lacks the row `{row}`");
        }
        assert!(doc.contains(LOCAL_SYSTEM));
    }
}
