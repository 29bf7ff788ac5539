//! One `Bus` interface over RabbitMQ (lapin, `rabbitmq.rs`) and an in-process implementation
//! (`memory.rs`, the embedded default for `serve` without a broker, and for unit tests). The
//! pipeline sees only this file: publish (returns once the broker confirmed), consume with
//! bounded prefetch, and per-delivery ack / reject (to the dead-letter exchange) / requeue.
//! Must never: acknowledge for the caller, or report a publish as done before it is confirmed.

pub mod memory;
pub mod rabbitmq;
pub mod topology;

pub use topology::Topology;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (keeps the traits object-safe without extra crates).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Message properties the hub uses (AMQP basic properties + headers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Props {
    /// Envelope id, stable across hops and retries.
    pub message_id: Option<String>,
    /// Correlation id (the id the sender gave, or the envelope id).
    pub correlation_id: Option<String>,
    /// MIME type of the body.
    pub content_type: Option<String>,
    /// Broker-validated publishing user (AMQP `user_id`); never trusted from a header.
    pub user_id: Option<String>,
    /// Application headers (`x-kaigo-*`): subject hash, category, document, source party, hop,
    /// mapping version, error or quarantine reason.
    pub headers: BTreeMap<String, String>,
}

impl Props {
    /// A header value.
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }

    /// Drops what a bus adds when it dead-letters a message (`x-death-reason`,
    /// `x-first-death-*`, `x-last-death-*`): they describe where the message was, not what it
    /// is, and must not travel on with it when it is published again.
    pub fn strip_dead_letter_marks(&mut self) {
        self.headers.retain(|k, _| {
            !(k.starts_with("x-death")
                || k.starts_with("x-first-death")
                || k.starts_with("x-last-death"))
        });
    }
}

/// A bus failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The broker is unreachable or the connection dropped.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused (nack, unknown exchange, precondition failed).
    #[error("broker refused: {0}")]
    Refused(String),
    /// The exchange has no queue bound for the routing key, so nothing took the message (it was
    /// not stored anywhere; RabbitMQ returned it to the publisher).
    #[error("not routed: {0}")]
    Unroutable(String),
}

/// A received message that must be settled exactly once.
pub struct Delivery {
    /// Properties.
    pub props: Props,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// True when delivered before and not acknowledged.
    pub redelivered: bool,
    /// How many times it was delivered before this one (quorum queues count it).
    pub delivery_count: u32,
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// Builds a delivery (for bus implementations).
    pub fn new(
        props: Props,
        body: Vec<u8>,
        exchange: String,
        routing_key: String,
        redelivered: bool,
        delivery_count: u32,
        acker: Box<dyn Acker>,
    ) -> Delivery {
        Delivery {
            props,
            body,
            exchange,
            routing_key,
            redelivered,
            delivery_count,
            acker,
        }
    }

    /// Done with it: remove it from the queue.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Reject without requeue: the queue's dead-letter exchange receives it.
    pub async fn reject(self) -> Result<(), BusError> {
        self.acker.reject().await
    }

    /// Put it back to be delivered again (counts towards the delivery limit).
    pub async fn requeue(self) -> Result<(), BusError> {
        self.acker.requeue().await
    }
}

/// Settles one delivery.
pub trait Acker: Send {
    /// Positive acknowledgement.
    fn ack(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>>;
    /// Reject, no requeue (dead-letters).
    fn reject(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>>;
    /// Negative acknowledgement with requeue.
    fn requeue(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>>;
}

/// A stream of deliveries from one queue.
pub trait Consumer: Send {
    /// The next delivery; `None` when the consumer was closed.
    fn next(&mut self) -> BoxFut<'_, Option<Result<Delivery, BusError>>>;
    /// Stops consuming and waits until every delivery handed to it and not settled is back in
    /// its queue (RabbitMQ: its channel is closed, and the broker returns what it had
    /// prefetched). Dropping a consumer does the same without waiting; a reader that must count
    /// the queue right after (`replay`'s listing and preview) closes it.
    fn close(self: Box<Self>) -> BoxFut<'static, ()> {
        drop(self);
        Box::pin(std::future::ready(()))
    }
}

/// A message bus.
pub trait Bus: Send + Sync {
    /// `memory` or `rabbitmq`.
    fn name(&self) -> &'static str;
    /// Declares the topology and the recipients' queues, idempotently.
    fn declare<'a>(
        &'a self,
        t: &'a Topology,
        recipients: &'a [String],
    ) -> BoxFut<'a, Result<(), BusError>>;
    /// Publishes a persistent message; resolves once the broker confirmed it. A message that no
    /// binding of `exchange` routes to a queue is an error ([`BusError::Unroutable`]), never a
    /// quiet success: the broker would confirm it and keep nothing.
    fn publish<'a>(
        &'a self,
        exchange: &'a str,
        key: &'a str,
        props: &'a Props,
        body: &'a [u8],
    ) -> BoxFut<'a, Result<(), BusError>>;
    /// Starts consuming a queue with at most `prefetch` unsettled deliveries.
    fn consume<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>>;
    /// Messages waiting in a queue (for metrics, replay and tests).
    fn queue_len<'a>(&'a self, queue: &'a str) -> BoxFut<'a, Result<u64, BusError>>;
    /// Subscribes to a fanout exchange through a private, transient queue of this process that
    /// exists only while the returned consumer does (RabbitMQ: exclusive, auto-delete, server-
    /// named). It sees only what is published after this call returned. A subscriber that loses
    /// its consumer (error or end) may have missed messages, and must subscribe again.
    fn subscribe<'a>(
        &'a self,
        exchange: &'a str,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>>;
}
