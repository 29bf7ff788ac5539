//! The RabbitMQ bus (lapin 4): one AMQP connection at a time, supervised by the bus itself
//! (`Link`: a connection that dies is replaced by a new one on next use, with bounded connect
//! and handshake times), a dedicated publishing channel in confirm mode, and one channel per
//! consumer with `basic.qos(prefetch)`. In: the topology of `topology.rs`, messages to publish,
//! queues to consume. Out: deliveries with their properties and a per-delivery acker (ack /
//! reject to the dead-letter exchange / requeue). It behaves like `memory.rs` so the pipeline
//! cannot tell the two apart, with one documented difference: a [`Delivery`] dropped without
//! being settled keeps its prefetch slot until its consumer is dropped; closing the consumer's
//! channel makes the broker redeliver it (`redelivered = true`, and the quorum queue counts it as
//! a delivery attempt). After a lost connection, queue consumers subscribe again by themselves;
//! deliveries handed out before cannot be settled any more and come back from the broker.
//! Must never: report a publish as done before the broker confirmed it, settle a delivery for
//! the caller, or print the broker password.
//!
//! Mapping to the broker:
//! - exchanges durable; queues durable, `x-queue-type: quorum`, `x-dead-letter-exchange` and
//!   `x-delivery-limit` as the [`QueueDecl`] says. [`Topology::delivery_limit`] counts
//!   *deliveries* (5 = delivered five times, then dead-lettered, like `memory.rs`), whereas
//!   RabbitMQ's `x-delivery-limit` counts *returns* it tolerates (5 = six deliveries), so the
//!   queue is declared with `x-delivery-limit = delivery_limit - 1`. A queue with a
//!   [`QueueDecl::message_ttl`] (the deliver hop's waiting rooms) gets `x-message-ttl`. Every
//!   quorum queue with a dead-letter exchange (the hops' queues, the waiting rooms) gets
//!   `x-dead-letter-strategy: at-least-once` with `x-overflow: reject-publish` (RabbitMQ ≥
//!   3.10). A hop queue an older kaigo-hub declared without them (the broker refuses the new
//!   arguments as inequivalent) is used as it is, with a warning.
//! - [`Delivery::delivery_count`] is the quorum queue's `x-delivery-count` header (absent on a
//!   first delivery, so 0); that header is not copied into [`Props::headers`], so a republished
//!   message starts afresh. On a dead-lettered message the broker's `x-death` array (not a
//!   string, so not in `headers`) is summarised as `x-death-reason` (`rejected`,
//!   `delivery_limit`, …), the header `memory.rs` sets; `x-first-death-*` arrive as sent.
//! - Headers are published as AMQP long strings; received integer, boolean and timestamp
//!   headers are rendered as decimal text, arrays and tables are left out.
//! - `publish` is `mandatory = true`: a message no binding matches comes back with its confirm
//!   (`basic.return`) and is reported as [`BusError::Unroutable`], as `memory.rs` does, instead
//!   of being confirmed and dropped (a deleted recipient queue would otherwise swallow copies
//!   the hub records as delivered).
//!
//! The rooms: `link.rs` (the connection and its replacement), `publish.rs` (confirmed
//! publishes and returned messages), `declare.rs` (exchanges, queues, bindings and their
//! arguments), `consumer.rs` (consumers and their ackers), `props.rs` (`Props` ↔ AMQP
//! properties), `broker_errors.rs` (lapin's errors as [`BusError`]) and `credentials.rs` (the
//! user and password in a RabbitMQ URL). This file holds the bus itself and its `Bus` methods.

mod broker_errors;
mod consumer;
mod credentials;
mod declare;
mod link;
mod props;
mod publish;

pub use credentials::{user_of, with_credentials_of, without_credentials};

use super::topology::Topology;
use super::{BoxFut, Bus, BusError, Consumer, Props};
use broker_errors::{classify, soft_error};
use consumer::RabbitConsumer;
use lapin::Channel;
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::protocol::AMQPSoftError;
use lapin::types::FieldTable;
use link::Link;
use props::short;
use std::sync::{Arc, Mutex};

/// The RabbitMQ bus. Share it behind an `Arc`; every method takes `&self`.
pub struct RabbitBus {
    link: Arc<Link>,
    /// What `declare` was given (the topology and every recipient named so far): what a
    /// returned message is checked against, and what is declared again to repair it.
    layout: Mutex<Option<(Topology, Vec<String>)>>,
    /// Held while a repair declares the topology again, so a burst of returns repairs in turn.
    repairing: tokio::sync::Mutex<()>,
}

impl RabbitBus {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`), naming the connection
    /// `connection_name` in the management UI. An unreachable broker fails within seconds with
    /// [`BusError::Unavailable`]. Later, a connection that dies is replaced on the next use
    /// (see `Link`): publishes retry for up to `RECOVERY_WAIT`, consumers subscribe again.
    pub async fn connect(url: &str, connection_name: &str) -> Result<RabbitBus, BusError> {
        Ok(RabbitBus {
            link: Arc::new(Link::connect(url, connection_name).await?),
            layout: Mutex::new(None),
            repairing: tokio::sync::Mutex::new(()),
        })
    }

    /// Graceful shutdown: closes the publishing channel and the connection. Deliveries not yet
    /// settled go back to their queues (redelivered to the next consumer).
    pub async fn close(&self) {
        self.link.close().await;
    }

    pub(super) async fn channel(&self, what: &str) -> Result<Channel, BusError> {
        self.link.channel(what).await.map(|(_, ch)| ch)
    }

    pub(super) async fn confirm_channel(&self, what: &str) -> Result<Channel, BusError> {
        let ch = self.channel(what).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| classify(what, e))?;
        Ok(ch)
    }
}

impl Bus for RabbitBus {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn declare<'a>(
        &'a self,
        t: &'a Topology,
        recipients: &'a [String],
    ) -> BoxFut<'a, Result<(), BusError>> {
        Box::pin(self.declare_topology(t, recipients))
    }

    fn publish<'a>(
        &'a self,
        exchange: &'a str,
        key: &'a str,
        props: &'a Props,
        body: &'a [u8],
    ) -> BoxFut<'a, Result<(), BusError>> {
        Box::pin(self.publish_message(exchange, key, props, body))
    }

    fn consume<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let c = RabbitConsumer::of_queue(&self.link, queue, prefetch).await?;
            Ok(Box::new(c) as Box<dyn Consumer>)
        })
    }

    fn subscribe<'a>(
        &'a self,
        exchange: &'a str,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let c = RabbitConsumer::of_exchange(&self.link, exchange).await?;
            Ok(Box::new(c) as Box<dyn Consumer>)
        })
    }

    fn queue_len<'a>(&'a self, queue: &'a str) -> BoxFut<'a, Result<u64, BusError>> {
        Box::pin(async move {
            let what = format!("counting queue `{queue}`");
            let name = short(&what, "queue", queue)?;
            // A channel of its own: a missing queue makes the broker close it.
            let ch = self.channel(&what).await?;
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            match ch.queue_declare(name, options, FieldTable::default()).await {
                Ok(q) => {
                    let _ = ch.close(200, "OK".into()).await;
                    Ok(u64::from(q.message_count()))
                }
                // Like the memory bus: a queue that does not exist holds nothing.
                Err(e) if soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => Ok(0),
                Err(e) => Err(classify(&what, e)),
            }
        })
    }
}
