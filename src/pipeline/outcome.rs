//! How a hop's journey with one message ends, in the words every hop shares. Each hop
//! (ingress, translate, deliver) is a short sequence of named steps; a step either hands the next
//! step what it needs or ends the journey with an [`Outcome`], and the hop's own `settle` alone
//! acts on it: publishes, audits, and acks, requeues or answers the sender. Steps never touch the
//! bus or the delivery; `settle` never decides. What each outcome costs a hop (which audit
//! event, ack or answer) stays in that hop's file: this room holds only the vocabulary and the
//! one translation every hop made by hand, from admission's [`Refused`].

use super::admission::{Refused, Withheld};
use crate::redact::ErrorText;

/// Where a message's journey through one hop ends.
#[derive(Debug)]
pub enum Outcome<F> {
    /// Go on: what the hop hands on (publishes or delivers) and audits as accepted.
    Forward(F),
    /// Keep the message in the dead-letter queue with `error` (its `Display` is value-free, for
    /// the header and logs; ingress answers the sender with its sender's rendering); the hop
    /// audits it with `reason` where it audits dead letters.
    Dead {
        /// Where and why.
        error: ErrorText,
        /// Reason code for the audit event (`mapping-failed`, `body-too-large`, …).
        reason: &'static str,
    },
    /// Keep the message in quarantine for the reason admission gave.
    Quarantine(Withheld),
    /// The store, registry or broker could not answer now: try again later (a consumer hop
    /// requeues the delivery; ingress tells the sender to retry).
    Retry(String),
    /// Shutdown was asked for while waiting: a consumer hop leaves the delivery unsettled, to be
    /// redelivered later.
    Stop,
}

/// A step's result: what the next step needs, or the outcome that ends the journey here.
pub type Step<T, F> = Result<T, Outcome<F>>;

impl<F> Outcome<F> {
    /// The outcome of a hop's steps: forward what the last one made, or where one stopped.
    pub fn of(steps: Step<F, F>) -> Outcome<F> {
        steps.map_or_else(|stop| stop, Outcome::Forward)
    }

    /// A dead letter whose words quote nothing from the message.
    pub fn dead(error: impl Into<String>, reason: &'static str) -> Outcome<F> {
        Outcome::Dead {
            error: ErrorText::plain(error),
            reason,
        }
    }
}

impl<F> From<Refused> for Outcome<F> {
    fn from(refused: Refused) -> Outcome<F> {
        match refused {
            Refused::Withheld(w) => Outcome::Quarantine(w),
            Refused::Unavailable(message) => Outcome::Retry(message),
            Refused::Stopped => Outcome::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_that_ran_through_forward_and_a_refusal_becomes_its_outcome() {
        assert!(matches!(
            Outcome::of(Ok::<_, Outcome<u8>>(7)),
            Outcome::Forward(7)
        ));
        let stopped: Step<u8, u8> = Err(Outcome::dead("no category", "mapping-failed"));
        let Outcome::Dead { error, reason } = Outcome::of(stopped) else {
            panic!("a dead letter stays one");
        };
        assert_eq!(
            (error.to_string().as_str(), reason),
            ("no category", "mapping-failed")
        );

        let w = Withheld::UnknownSender {
            source: "0300000005".into(),
        };
        let o: Outcome<()> = Refused::Withheld(w.clone()).into();
        assert!(matches!(o, Outcome::Quarantine(q) if q == w));
        let o: Outcome<()> = Refused::Unavailable("store down".into()).into();
        assert!(matches!(o, Outcome::Retry(m) if m == "store down"));
        let o: Outcome<()> = Refused::Stopped.into();
        assert!(matches!(o, Outcome::Stop));
    }
}
