//! The one size limit of every door: `body_limit` (`KAIGO_BODY_LIMIT`) bounds an HTTP body, an
//! MLLP frame, an AMQP vendor message and a dropped file alike, and the translate hop asks it
//! again of every raw message it maps, so that a replayed dead letter is held to it as a new
//! message would be. Each door checks it before it
//! holds the input whole wherever it can tell the size first: HTTP by `Content-Length` (and by
//! reading no further than the limit), MLLP by the codec, which stops buffering a frame at the
//! limit and only counts the rest, the file drop by the file's length. In: a size; out: nothing,
//! or a [`TooLarge`] that names the setting, its variable, the size and the limit in the same words
//! at every door. The formats behind the doors keep no byte limit of their own, so no smaller
//! hidden limit contradicts this one; they keep only structural bounds (XML depth, nodes and
//! attributes per element, HL7 segments and fields, CSV fields per record), which say so. Must
//! never let a door read past the limit to find out that an input is too large.

/// Largest `body_limit` the hub takes: RabbitMQ refuses larger messages whatever its
/// `max_message_size` says (its default is 128 MiB; keep `body_limit` at or below the broker's).
pub const MAX_BODY_LIMIT: usize = 512 * 1024 * 1024;

/// The size limit of every door, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit {
    bytes: usize,
}

impl BodyLimit {
    /// `bytes` as the limit, or an error naming the setting when it is 0 or more than
    /// [`MAX_BODY_LIMIT`].
    pub fn new(bytes: usize) -> Result<BodyLimit, String> {
        if bytes == 0 || bytes > MAX_BODY_LIMIT {
            return Err(format!(
                "body_limit (KAIGO_BODY_LIMIT) is {bytes} bytes; it must be between 1 and \
                 {MAX_BODY_LIMIT} (512 MiB, the most RabbitMQ carries in one message), and at most \
                 the broker's max_message_size (128 MiB unless raised)"
            ));
        }
        Ok(BodyLimit { bytes })
    }

    /// The limit in bytes.
    pub fn bytes(self) -> usize {
        self.bytes
    }

    /// Whether `size` bytes of `what` (`the body`, `the file`, …) fit; the refusal otherwise.
    pub fn check(self, what: &'static str, size: u64) -> Result<(), TooLarge> {
        if size > self.bytes as u64 {
            return Err(self.exceeded(what, Some(size)));
        }
        Ok(())
    }

    /// The refusal for `what`, of `size` bytes when the door knows it (a door that stopped
    /// reading at the limit knows only that it is larger).
    pub fn exceeded(self, what: &'static str, size: Option<u64>) -> TooLarge {
        TooLarge {
            what,
            size,
            limit: self.bytes,
        }
    }
}

/// An input larger than `body_limit`, refused at its door.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} is {}, more than the {limit} bytes body_limit (KAIGO_BODY_LIMIT) allows at every door of this hub; split it, or ask the hub's operator to raise body_limit",
    size.map(|n| format!("{n} bytes")).unwrap_or_else(|| "larger than that".into())
)]
pub struct TooLarge {
    /// What was too large: `the body`, `the frame`, `the message`, `the file`.
    pub what: &'static str,
    /// Its size in bytes, when the door knows it.
    pub size: Option<u64>,
    /// `body_limit` in bytes.
    pub limit: usize,
}

impl TooLarge {
    /// The reason code of audit events and metrics for an input refused for its size.
    pub const REASON: &'static str = "body-too-large";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_inclusive_and_the_refusal_names_the_setting_and_the_size() {
        let limit = BodyLimit::new(4096).expect("a valid limit");
        assert_eq!(limit.check("the file", 4096), Ok(()));
        let e = limit
            .check("the file", 4097)
            .expect_err("one byte over")
            .to_string();
        for part in [
            "the file is 4097 bytes",
            "4096",
            "body_limit",
            "KAIGO_BODY_LIMIT",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let e = limit.exceeded("the body", None).to_string();
        assert!(
            e.starts_with("the body is larger than that, more than the 4096"),
            "{e}"
        );
    }

    #[test]
    fn zero_and_more_than_rabbitmq_carries_are_refused_naming_the_setting() {
        for bad in [0, MAX_BODY_LIMIT + 1] {
            let e = BodyLimit::new(bad).expect_err("out of range");
            assert!(
                e.contains("body_limit") && e.contains("KAIGO_BODY_LIMIT"),
                "{e}"
            );
        }
        assert!(BodyLimit::new(MAX_BODY_LIMIT).is_ok());
    }
}
