//! How lapin's errors become [`BusError`]s: a channel-level (soft) AMQP error is the broker
//! saying no to one operation (`Refused`, with its words); anything else — network, closed
//! connection, hard error — is `Unavailable`. Must never: turn a refusal into a retry, or a
//! lost connection into a refusal.

use super::super::BusError;
use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// The soft (channel-level) AMQP error in `e`, if that is what it is.
pub(super) fn soft_error(e: &lapin::Error) -> Option<AMQPSoftError> {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(s) => Some(s.clone()),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

/// The broker said no to this operation (channel-level error: unknown exchange or queue,
/// inequivalent declaration, forged `user_id`, no permission) → `Refused` with its words;
/// anything else (network, connection closed, hard error) → `Unavailable`.
pub(super) fn classify(what: &str, e: lapin::Error) -> BusError {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) if soft_error(&e).is_some() => {
            BusError::Refused(format!("{what}: {}", amqp.get_message()))
        }
        _ => BusError::Unavailable(format!("{what}: {e}")),
    }
}
