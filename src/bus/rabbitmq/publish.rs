//! Publishing: every message on a shared channel in confirm mode, `mandatory = true`, retried
//! on a new connection while the broker is away (up to `RECOVERY_WAIT`), and a message the
//! broker returns (`basic.return`, no queue bound) handled here: published again once the
//! topology is declared again if the hub's declarations route it, else reported as
//! [`BusError::Unroutable`]. In: exchange, key, `Props`, body. Out: `Ok` only once the broker
//! confirmed. Must never: report a publish as done before the broker confirmed it, or drop a
//! returned message another publish was already told was confirmed (it is dead-lettered).

use super::super::{BusError, Props};
use super::RabbitBus;
use super::broker_errors::classify;
use super::props::{basic_properties, short};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use std::time::Duration;

/// How long a publish keeps trying (reconnecting as needed) before it reports the broker
/// unavailable to its caller (who answers 503 / AE, or leaves its input to be redelivered).
const RECOVERY_WAIT: Duration = Duration::from_secs(15);
/// Pauses between a publish's attempts while the broker is away: the first, and the longest.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

impl RabbitBus {
    /// Publishes `body` to `exchange` with `key` and returns once the broker confirmed it
    /// (the `Bus::publish` of this bus).
    pub(super) async fn publish_message(
        &self,
        exchange: &str,
        key: &str,
        props: &Props,
        body: &[u8],
    ) -> Result<(), BusError> {
        let what = format!("publishing to exchange `{exchange}` with key `{key}`");
        let msg = Outgoing {
            exchange: short(&what, "exchange", exchange)?,
            key: short(&what, "routing key", key)?,
            properties: basic_properties(&what, props)?,
            body,
        };
        let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
        let mut pause = RETRY_MIN_DELAY;
        loop {
            let err = match self.publisher(&what).await {
                Ok(ch) => match publish_confirmed(&ch, &msg).await {
                    Ok(c) => return self.settle(&what, &msg, c).await,
                    Err(e) if e.is_amqp_soft_error() => {
                        // The broker closed the shared channel: because of this message, or
                        // of another publish in flight on it. Only a try on its own channel
                        // tells.
                        return self.publish_alone(&what, &msg).await;
                    }
                    Err(e) => classify(&what, e),
                },
                Err(e) => e,
            };
            // The connection dropped (or cannot be opened yet): try again on a new one until
            // the deadline. The first copy may have reached the queue before its confirm was
            // lost: at-least-once, deduplicated downstream by message id.
            if tokio::time::Instant::now() + pause > deadline {
                return Err(BusError::Unavailable(format!(
                    "{err}; RabbitMQ at {} was not back within {} s",
                    self.link.broker,
                    RECOVERY_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX_DELAY);
        }
    }

    /// The shared publishing channel, reopened when it closed (a refused publish closes the
    /// channel it came on; a lost connection closes them all).
    async fn publisher(&self, what: &str) -> Result<Channel, BusError> {
        let mut slot = self.link.publisher.lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = self.confirm_channel(what).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes on a channel of its own. Used to find out whether a publish that failed with
    /// a channel error was itself refused or merely shared the channel with one that was.
    async fn publish_alone(&self, what: &str, msg: &Outgoing<'_>) -> Result<(), BusError> {
        let ch = self.confirm_channel(what).await?;
        let r = publish_confirmed(&ch, msg).await;
        if ch.status().connected() {
            let _ = ch.close(200, "OK".into()).await;
        }
        confirmation(what, r)
    }

    /// The outcome of a publish on the shared channel, given its confirm.
    ///
    /// The broker sends an unroutable message back (`basic.return`) just before confirming it,
    /// and lapin hands the returned message to a confirm of the same channel: when the broker
    /// confirms several publishes at once (`multiple`), not always to the publish it belongs to.
    /// So a returned message is handled by whichever publish holds it: if the declarations say
    /// it should have been routed (a queue or binding was deleted under the hub), the topology is
    /// declared again and the returned copy published again, alone on a channel of its own,
    /// where its confirm cannot be mixed up. The publish it belongs to, told `Ok` or not, thus
    /// either reached a queue or, if it still cannot, is reported: to its own caller when the
    /// holder is the owner ([`BusError::Unroutable`]), or, when not, dead-lettered with the
    /// reason and logged as an error, since its owner was already told it was confirmed.
    async fn settle(
        &self,
        what: &str,
        msg: &Outgoing<'_>,
        c: Confirmation,
    ) -> Result<(), BusError> {
        let (outcome, returned) = match c {
            Confirmation::Ack(returned) => (Ok(()), returned),
            Confirmation::Nack(returned) => {
                (confirmation(what, Ok(Confirmation::Nack(None))), returned)
            }
            c @ Confirmation::NotRequested => (confirmation(what, Ok(c)), None),
        };
        let Some(returned) = returned else {
            return outcome;
        };
        let d = &returned.delivery;
        let own = d.exchange == msg.exchange
            && d.routing_key == msg.key
            && d.properties.message_id() == msg.properties.message_id()
            && d.data == msg.body;
        let again = Outgoing {
            exchange: d.exchange.clone(),
            key: d.routing_key.clone(),
            properties: d.properties.clone(),
            body: &d.data,
        };
        let what_again = format!(
            "publishing to exchange `{}` with key `{}`",
            again.exchange, again.key
        );
        let unbound = || {
            BusError::Unroutable(format!(
                "{what_again}: no queue is bound for it ({} {})",
                returned.reply_code, returned.reply_text
            ))
        };
        let (expected, again_outcome) = match self.repair(&again).await {
            Ok(Expected::Routed) => (
                Expected::Routed,
                self.publish_alone(&what_again, &again).await,
            ),
            Ok(other) => (other, Err(unbound())),
            Err(e) => (Expected::Routed, Err(e)),
        };
        if own {
            return outcome.and(again_outcome);
        }
        match (again_outcome, expected) {
            (Ok(()), _) => {}
            // A fanout only hub processes subscribe to, with none listening: nobody to tell.
            (Err(_), Expected::Subscribers) => {}
            (Err(e), _) => self.dead_letter_orphan(&again, &e).await,
        }
        outcome
    }

    /// Declares the topology again if it should have routed `m`, and says what it expected.
    async fn repair(&self, m: &Outgoing<'_>) -> Result<Expected, BusError> {
        let layout = self
            .layout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((t, recipients)) = layout else {
            return Ok(Expected::Nowhere);
        };
        if !t.routes(m.exchange.as_str(), m.key.as_str(), &recipients) {
            return Ok(if t.subscription_only(m.exchange.as_str()) {
                Expected::Subscribers
            } else {
                Expected::Nowhere
            });
        }
        let _turn = self.repairing.lock().await;
        tracing::warn!(exchange = %m.exchange, key = %m.key, "RabbitMQ returned a message the hub's topology routes: a queue or binding was deleted; declaring the topology again");
        self.declare_topology(&t, &recipients).await?;
        Ok(Expected::Routed)
    }

    /// A returned message whose publisher was told it was confirmed, and that could not be
    /// published again: to the dead-letter exchange, with the reason.
    async fn dead_letter_orphan(&self, m: &Outgoing<'_>, e: &BusError) {
        let dead = self
            .layout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(t, _)| t.dead());
        let mut properties = m.properties.clone();
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(
            "x-kaigo-error".into(),
            AMQPValue::LongString(LongString::from(e.to_string())),
        );
        properties = properties.with_headers(headers);
        let sent = match dead
            .as_deref()
            .map(|x| short("dead-lettering", "exchange", x))
        {
            Some(Ok(exchange)) => {
                let out = Outgoing {
                    exchange,
                    key: m.key.clone(),
                    properties,
                    body: m.body,
                };
                self.publish_alone("dead-lettering a returned message", &out)
                    .await
            }
            Some(Err(e)) => Err(e),
            None => Err(BusError::Unroutable("no topology was declared".into())),
        };
        tracing::error!(exchange = %m.exchange, key = %m.key, message_id = ?m.properties.message_id(), error = %e, dead_lettered = sent.is_ok(), "a returned message of another publish could not be published again");
    }
}

/// What the declared topology says about a message the broker returned.
enum Expected {
    /// A declared binding routes it: a queue or binding was deleted, and is declared again.
    Routed,
    /// A fanout only hub processes subscribe to.
    Subscribers,
    /// Nothing declared routes it.
    Nowhere,
}

/// A message ready for the wire.
struct Outgoing<'a> {
    exchange: ShortString,
    key: ShortString,
    properties: BasicProperties,
    body: &'a [u8],
}

async fn publish_confirmed(ch: &Channel, m: &Outgoing<'_>) -> lapin::Result<Confirmation> {
    ch.basic_publish(
        m.exchange.clone(),
        m.key.clone(),
        BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        },
        m.body,
        m.properties.clone(),
    )
    .await?
    .await
}

fn confirmation(what: &str, r: lapin::Result<Confirmation>) -> Result<(), BusError> {
    match r {
        Ok(Confirmation::Ack(None)) => Ok(()),
        // Alone on its channel (`publish_alone`), a publish gets its own message back.
        Ok(Confirmation::Ack(Some(returned))) => Err(BusError::Unroutable(format!(
            "{what}: no queue is bound for it ({} {})",
            returned.reply_code, returned.reply_text
        ))),
        Ok(Confirmation::Nack(_)) => Err(BusError::Refused(format!(
            "{what}: the broker nacked the message (a queue could not take it)"
        ))),
        // Every publishing channel is put in confirm mode before use.
        Ok(Confirmation::NotRequested) => Err(BusError::Unavailable(format!(
            "{what}: the channel was not in confirm mode"
        ))),
        Err(e) => Err(classify(what, e)),
    }
}
