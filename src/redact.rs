//! What an error may say, and to whom (DESIGN §5). An error about a message keeps the offending
//! text of that message — a value, a fragment, a character, decoded bytes — in a [`Quoted`],
//! apart from where it was found and why it was refused. Two renderings follow:
//!
//! - `Display`, the default everywhere (`{e}`, `to_string()`, `tracing`'s `%e`, `anyhow`): the
//!   location and the reason only. Logs, metrics, audit events, AMQP headers (`x-kaigo-error`)
//!   and the files the hub writes beside messages get this and nothing else.
//! - [`Disclose::for_sender`]: the same words with the values, for the one party that sent the
//!   message (an HTTP `OperationOutcome`, an HL7 `ACK` ERR) and for a user running
//!   `kaigo-hub translate` on their own file. It has to be asked for by name, so a search for
//!   `for_sender` finds every place a value can leave the hub.
//!
//! A [`Quoted`] has no `Display`, and its `Debug` shows only its length: formatting one by
//! mistake cannot print it. [`ErrorText`] carries both renderings of an error that has already
//! been turned into words (a candidate mapping's reason for not fitting, a refusal handed from
//! ingress to a source).

use std::fmt;

/// Text taken from a message: shown to that message's sender only. `Debug` shows its length.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Quoted(String);

impl Quoted {
    /// Keeps `text` as quoted from a message.
    pub fn new(text: impl Into<String>) -> Quoted {
        Quoted(text.into())
    }

    /// The text, for the sender's rendering of an error (see [`Disclose`]).
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quoted(<{} characters>)", self.0.chars().count())
    }
}

/// An error whose `Display` leaves out the values it quotes, and that can say them to the
/// message's sender.
pub trait Disclose: fmt::Display {
    /// Writes the error as the message's sender may read it: the `Display` words with the
    /// values put back. The default is the `Display` words (an error that quotes nothing).
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }

    /// The rendering for the message's sender (and for `kaigo-hub translate`'s user): never for
    /// a log, a header, an audit event or a file the hub writes.
    fn for_sender(&self) -> ForSender<'_, Self> {
        ForSender(self)
    }
}

/// [`Disclose::for_sender`] as a `Display`.
pub struct ForSender<'a, T: ?Sized>(&'a T);

impl<T: Disclose + ?Sized> fmt::Display for ForSender<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_for_sender(f)
    }
}

impl<T: Disclose + ?Sized> Disclose for &T {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_for_sender(f)
    }
}

/// An error already put into words, both ways: `Display` gives the value-free words, and
/// [`Disclose::for_sender`] the sender's (with the values, when the error quoted any).
#[derive(Clone, PartialEq, Eq)]
pub struct ErrorText {
    plain: String,
    sender: Option<Quoted>,
}

impl ErrorText {
    /// Words that quote nothing from any message (a code, a count, a mapping's own text).
    pub fn plain(text: impl Into<String>) -> ErrorText {
        ErrorText {
            plain: text.into(),
            sender: None,
        }
    }

    /// `plain` for everyone, `sender` (the same with the values) for the message's sender.
    pub fn quoting(plain: impl Into<String>, sender: impl Into<String>) -> ErrorText {
        let (plain, sender) = (plain.into(), sender.into());
        let sender = (sender != plain).then(|| Quoted::new(sender));
        ErrorText { plain, sender }
    }

    /// Both renderings of `e`.
    pub fn of(e: &(impl Disclose + ?Sized)) -> ErrorText {
        ErrorText::quoting(e.to_string(), e.for_sender().to_string())
    }

    /// Both renderings changed alike (e.g. server paths taken out).
    pub fn map(self, f: impl Fn(&str) -> String) -> ErrorText {
        ErrorText {
            plain: f(&self.plain),
            sender: self.sender.map(|s| Quoted::new(f(s.reveal()))),
        }
    }

    /// Whether this quotes a message (the sender's words differ from everyone's).
    pub fn quotes(&self) -> bool {
        self.sender.is_some()
    }
}

impl fmt::Display for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.plain)
    }
}

impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorText")
            .field("plain", &self.plain)
            .field("sender", &self.sender)
            .finish()
    }
}

impl Disclose for ErrorText {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sender.as_ref().map_or(&self.plain, |s| &s.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("PID-7: the value is not a date")]
    struct NotADate {
        value: Quoted,
    }

    impl Disclose for NotADate {
        fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "PID-7: `{}` is not a date", self.value.reveal())
        }
    }

    #[test]
    fn the_value_is_said_only_when_asked_for_the_sender() {
        let e = NotADate {
            value: Quoted::new("19480405x"),
        };
        assert_eq!(e.to_string(), "PID-7: the value is not a date");
        assert!(!format!("{e:?}").contains("19480405x"), "{e:?}");
        assert_eq!(
            e.for_sender().to_string(),
            "PID-7: `19480405x` is not a date"
        );
        let t = ErrorText::of(&e);
        assert!(t.quotes());
        assert_eq!(t.to_string(), "PID-7: the value is not a date");
        assert!(!format!("{t:?}").contains("19480405x"), "{t:?}");
        assert_eq!(
            t.for_sender().to_string(),
            "PID-7: `19480405x` is not a date"
        );
        let t = t.map(|s| s.replace("PID-7", "PID-7.1"));
        assert_eq!(
            (t.to_string(), t.for_sender().to_string()),
            (
                "PID-7.1: the value is not a date".to_string(),
                "PID-7.1: `19480405x` is not a date".to_string()
            )
        );
    }

    #[test]
    fn plain_text_is_the_same_for_everyone() {
        let t = ErrorText::plain("no mapping fits");
        assert!(!t.quotes());
        assert_eq!(t.for_sender().to_string(), t.to_string());
        assert!(!ErrorText::quoting("same", "same").quotes());
    }
}
