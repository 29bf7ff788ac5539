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

use super::topology::{ExchangeKind, QueueDecl, Topology};
use super::{Acker, BoxFut, Bus, BusError, Consumer, Delivery, Props};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConsumerDelegate,
    ErrorKind,
};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long `connect` may take to reach the broker's TCP port.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect` may take for the AMQP handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a publish keeps trying (reconnecting as needed) before it reports the broker
/// unavailable to its caller (who answers 503 / AE, or leaves its input to be redelivered).
const RECOVERY_WAIT: Duration = Duration::from_secs(15);
/// Pauses between a publish's attempts while the broker is away: the first, and the longest.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// After a failed attempt to reconnect, callers within this time get its error at once
/// instead of starting another (no connect storm from every task at once).
const RECONNECT_THROTTLE: Duration = Duration::from_millis(500);
/// How often a waiting consumer checks that its channel is still alive.
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// The quorum queue's per-message delivery counter.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// The RabbitMQ bus. Share it behind an `Arc`; every method takes `&self`.
pub struct RabbitBus {
    link: Arc<Link>,
    /// What `declare` was given (the topology and every recipient named so far): what a
    /// returned message is checked against, and what is declared again to repair it.
    layout: Mutex<Option<(Topology, Vec<String>)>>,
    /// Held while a repair declares the topology again, so a burst of returns repairs in turn.
    repairing: tokio::sync::Mutex<()>,
}

/// The connection to the broker and what replaces it when it dies (the bus's supervisor).
///
/// lapin's own auto-recovery is not used: after a broker restart its reconnect was seen to hang
/// for good (a TCP connection the stopping broker accepted and never answered, and no timeout on
/// the handshake of a recovery), leaving the hub connected to nothing while it looked alive.
/// Instead every user of the link asks [`Link::current`] for a live connection; a dead one is
/// replaced by a new one opened with the same timeouts as the first, consumers subscribe again
/// on it (their unsettled deliveries go back to the queue, as they would with lapin's
/// recovery), and publishes that failed are retried on it.
struct Link {
    /// The parsed URL, with its password: used to reconnect, never printed (it is `Debug`).
    uri: AMQPUri,
    /// The connection's name in the management UI.
    name: String,
    /// Where the broker is, e.g. ``127.0.0.1:5672 (vhost `/`)``, for messages (never the credentials).
    broker: String,
    /// The connection in use, with its generation (bumped by every replacement).
    current: Mutex<(u64, Arc<Connection>)>,
    /// Held while a replacement is being opened.
    reconnecting: tokio::sync::Mutex<Option<(tokio::time::Instant, BusError)>>,
    /// The confirm-mode channel publishes go through; replaced when it closed.
    publisher: tokio::sync::Mutex<Option<Channel>>,
    /// Set by `close`: nothing reconnects any more.
    closed: AtomicBool,
}

impl Link {
    /// Opens a connection: a TCP probe first (lapin alone turns "nothing listens" into minutes
    /// of retries), then the AMQP handshake, each bounded in time.
    async fn open(uri: &AMQPUri, name: &str, broker: &str) -> Result<Connection, BusError> {
        let addr = (uri.authority.host.clone(), uri.authority.port);
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_probe)) => {}
            Ok(Err(e)) => {
                return Err(BusError::Unavailable(format!(
                    "cannot reach RabbitMQ at {broker}: {e}; is the broker running (`rabbitmq-server -detached`)?"
                )));
            }
            Err(_) => {
                return Err(BusError::Unavailable(format!(
                    "cannot reach RabbitMQ at {broker}: no answer within {} s",
                    REACH_TIMEOUT.as_secs()
                )));
            }
        }
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Connection::connect_uri(uri.clone(), properties),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(BusError::Unavailable(format!(
                "RabbitMQ at {broker} refused the connection: {e}"
            ))),
            Err(_) => Err(BusError::Unavailable(format!(
                "RabbitMQ at {broker} did not complete the AMQP handshake within {} s; check the user, password and vhost",
                HANDSHAKE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn snapshot(&self) -> (u64, Arc<Connection>) {
        // A poisoned lock only means a task panicked mid-swap of two plain values.
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A live connection and its generation: the current one, or a new one replacing it.
    async fn current(&self) -> Result<(u64, Arc<Connection>), BusError> {
        let (n, conn) = self.snapshot();
        if conn.status().connected() {
            return Ok((n, conn));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable(format!(
                "the connection to RabbitMQ at {} was closed by the hub",
                self.broker
            )));
        }
        let mut last_failure = self.reconnecting.lock().await;
        let (n2, conn2) = self.snapshot();
        if n2 != n && conn2.status().connected() {
            return Ok((n2, conn2));
        }
        if let Some((at, e)) = last_failure.as_ref()
            && at.elapsed() < RECONNECT_THROTTLE
        {
            return Err(e.clone());
        }
        match Link::open(&self.uri, &self.name, &self.broker).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *last_failure = None;
                let n = n2 + 1;
                let old = std::mem::replace(
                    &mut *self.current.lock().unwrap_or_else(|p| p.into_inner()),
                    (n, fresh.clone()),
                )
                .1;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        old.close(320, "replaced by a new connection".into()),
                    )
                    .await;
                });
                tracing::warn!(broker = %self.broker, generation = n, "reconnected to RabbitMQ");
                Ok((n, fresh))
            }
            Err(e) => {
                *last_failure = Some((tokio::time::Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    async fn channel(&self, what: &str) -> Result<(u64, Channel), BusError> {
        let (n, conn) = self.current().await?;
        conn.create_channel().await.map(|ch| (n, ch)).map_err(|e| {
            BusError::Unavailable(format!(
                "{what}: cannot open a channel to RabbitMQ at {}: {e}",
                self.broker
            ))
        })
    }
}

impl RabbitBus {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`), naming the connection
    /// `connection_name` in the management UI. An unreachable broker fails within seconds with
    /// [`BusError::Unavailable`]. Later, a connection that dies is replaced on the next use
    /// (see `Link`): publishes retry for up to `RECOVERY_WAIT`, consumers subscribe again.
    pub async fn connect(url: &str, connection_name: &str) -> Result<RabbitBus, BusError> {
        let uri: AMQPUri = url
            .parse()
            .map_err(|e| BusError::Unavailable(format!("the RabbitMQ URL is not an AMQP URL ({e}); expected amqp://user:password@host:5672/%2f")))?;
        let vhost = if uri.vhost.is_empty() {
            "/"
        } else {
            uri.vhost.as_str()
        };
        let broker = format!(
            "{}:{} (vhost `{vhost}`)",
            uri.authority.host, uri.authority.port
        );
        let conn = Link::open(&uri, connection_name, &broker).await?;
        Ok(RabbitBus {
            link: Arc::new(Link {
                uri,
                name: connection_name.to_string(),
                broker,
                current: Mutex::new((0, Arc::new(conn))),
                reconnecting: tokio::sync::Mutex::new(None),
                publisher: tokio::sync::Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
            layout: Mutex::new(None),
            repairing: tokio::sync::Mutex::new(()),
        })
    }

    /// Graceful shutdown: closes the publishing channel and the connection. Deliveries not yet
    /// settled go back to their queues (redelivered to the next consumer).
    pub async fn close(&self) {
        self.link.closed.store(true, Ordering::SeqCst);
        if let Some(ch) = self.link.publisher.lock().await.take()
            && ch.status().connected()
            && let Err(e) = ch.close(200, "OK".into()).await
        {
            tracing::debug!(error = %e, "closing the publishing channel");
        }
        let (_, conn) = self.link.snapshot();
        if conn.status().connected()
            && let Err(e) = conn.close(200, "kaigo-hub shutting down".into()).await
        {
            tracing::debug!(error = %e, broker = %self.link.broker, "closing the RabbitMQ connection");
        }
    }

    async fn channel(&self, what: &str) -> Result<Channel, BusError> {
        self.link.channel(what).await.map(|(_, ch)| ch)
    }

    async fn confirm_channel(&self, what: &str) -> Result<Channel, BusError> {
        let ch = self.channel(what).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| classify(what, e))?;
        Ok(ch)
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

    /// Adds a `declare` call's topology and recipients to what a repair declares.
    fn remember(&self, t: &Topology, recipients: &[String]) {
        let mut layout = self.layout.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = match layout.take() {
            Some((old, known)) if old.prefix == t.prefix => known,
            _ => Vec::new(),
        };
        for r in recipients {
            if !known.contains(r) {
                known.push(r.clone());
            }
        }
        *layout = Some((t.clone(), known));
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
        self.declare(&t, &recipients).await?;
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

    async fn declare_all(
        &self,
        ch: &Channel,
        t: &Topology,
        recipients: &[String],
        older: &[(String, BusError)],
    ) -> Result<(), Declared> {
        for e in t.exchanges() {
            let what = format!("declaring exchange `{}`", e.name);
            let kind = match e.kind {
                ExchangeKind::Topic => lapin::ExchangeKind::Topic,
                ExchangeKind::Direct => lapin::ExchangeKind::Direct,
                ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            };
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            ch.exchange_declare(
                short(&what, "name", &e.name)?,
                kind,
                options,
                FieldTable::default(),
            )
            .await
            .map_err(|err| classify(&what, err))?;
        }
        let (out_queues, out_bindings): (Vec<_>, Vec<_>) =
            recipients.iter().map(|r| t.out_decl(r)).unzip();
        for q in t.queues().iter().chain(&out_queues) {
            let what = format!("declaring queue `{}`", q.name);
            // A queue refused once as inequivalent is declared again with the arguments an
            // older kaigo-hub gave it (no at-least-once dead-lettering): if the broker accepts
            // those, it is that hub's queue, used as it is (the broker keeps a queue's
            // arguments for its life); if not, the first refusal says what really differs.
            let first_refusal = older.iter().find(|(n, _)| *n == q.name).map(|(_, e)| e);
            let as_older = first_refusal.is_some();
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let name = short(&what, "name", &q.name)?;
            match ch
                .queue_declare(name, options, queue_arguments(q, !as_older))
                .await
            {
                Ok(_) => {}
                Err(err)
                    if !as_older
                        && at_least_once(q)
                        && soft_error(&err) == Some(AMQPSoftError::PRECONDITIONFAILED) =>
                {
                    return Err(Declared::Older(q.name.clone(), classify(&what, err)));
                }
                Err(err) => {
                    let e = classify(&what, err);
                    return Err(match (first_refusal, &e) {
                        (Some(first), BusError::Refused(_)) => first.clone(),
                        _ => e,
                    }
                    .into());
                }
            }
        }
        for b in t.bindings().iter().chain(&out_bindings) {
            let what = format!(
                "binding queue `{}` to exchange `{}` with key `{}`",
                b.queue, b.exchange, b.key
            );
            ch.queue_bind(
                short(&what, "queue", &b.queue)?,
                short(&what, "exchange", &b.exchange)?,
                short(&what, "key", &b.key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|err| classify(&what, err))?;
        }
        Ok(())
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
        Box::pin(async move {
            let mut older: Vec<(String, BusError)> = Vec::new();
            loop {
                // A channel of its own: an inequivalent declaration makes the broker close it.
                let ch = self.channel("declaring the topology").await?;
                let r = self.declare_all(&ch, t, recipients, &older).await;
                if ch.status().connected() {
                    let _ = ch.close(200, "OK".into()).await;
                }
                match r {
                    Ok(()) => {
                        self.remember(t, recipients);
                        break;
                    }
                    Err(Declared::Failed(e)) => return Err(e),
                    Err(Declared::Older(queue, refusal)) => older.push((queue, refusal)),
                }
            }
            for (queue, _) in &older {
                tracing::warn!(queue = %queue, "an older kaigo-hub declared this queue without at-least-once dead-lettering; it is used as it is (what it dead-letters is at-most-once) until it is deleted, when empty, and declared again");
            }
            Ok(())
        })
    }

    fn publish<'a>(
        &'a self,
        exchange: &'a str,
        key: &'a str,
        props: &'a Props,
        body: &'a [u8],
    ) -> BoxFut<'a, Result<(), BusError>> {
        Box::pin(async move {
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
        })
    }

    fn consume<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let what = format!("consuming queue `{queue}`");
            short(&what, "queue", queue)?;
            let (generation, ch, consumer, inbox) =
                open_consumer(&self.link, queue, prefetch).await?;
            Ok(Box::new(RabbitConsumer {
                link: self.link.clone(),
                queue: queue.to_string(),
                prefetch,
                resubscribe: true,
                generation,
                inbox,
                ended: false,
                _consumer: consumer,
                channel: ch,
            }) as Box<dyn Consumer>)
        })
    }

    fn subscribe<'a>(
        &'a self,
        exchange: &'a str,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let what = format!("subscribing to exchange `{exchange}`");
            let exchange_name = short(&what, "exchange", exchange)?;
            let (generation, ch) = self.link.channel(&what).await?;
            // Exclusive + auto-delete: the queue is this connection's alone and goes with it.
            let options = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            let q = ch
                .queue_declare("".into(), options, FieldTable::default())
                .await
                .map_err(|e| classify(&what, e))?;
            let queue = q.name().clone();
            ch.queue_bind(
                queue.clone(),
                exchange_name,
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| classify(&what, e))?;
            let (consumer, inbox) = start_consuming(&ch, queue.as_str(), 256).await?;
            Ok(Box::new(RabbitConsumer {
                link: self.link.clone(),
                queue: queue.to_string(),
                prefetch: 256,
                // Its queue died with the connection: what was published meanwhile is lost, so
                // the subscriber must hear of it and subscribe again itself.
                resubscribe: false,
                generation,
                inbox,
                ended: false,
                _consumer: consumer,
                channel: ch,
            }) as Box<dyn Consumer>)
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

/// Sets `basic.qos(prefetch)` on `ch` and starts consuming `queue` into a new inbox.
async fn start_consuming(
    ch: &Channel,
    queue: &str,
    prefetch: u16,
) -> Result<(lapin::Consumer, Arc<Inbox>), BusError> {
    let what = format!("consuming queue `{queue}`");
    // Prefetch 0 would mean "unbounded" to the broker; the memory bus treats it as 1.
    ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(|e| classify(&what, e))?;
    let consumer = ch
        .basic_consume(
            short(&what, "queue", queue)?,
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| classify(&what, e))?;
    let inbox = Arc::new(Inbox::default());
    consumer.set_delegate(Forward(inbox.clone()));
    Ok((consumer, inbox))
}

/// A channel of its own on the link's live connection, consuming `queue`.
async fn open_consumer(
    link: &Link,
    queue: &str,
    prefetch: u16,
) -> Result<(u64, Channel, lapin::Consumer, Arc<Inbox>), BusError> {
    let (generation, ch) = link.channel(&format!("consuming queue `{queue}`")).await?;
    let (consumer, inbox) = start_consuming(&ch, queue, prefetch).await?;
    Ok((generation, ch, consumer, inbox))
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

/// The soft (channel-level) AMQP error in `e`, if that is what it is.
fn soft_error(e: &lapin::Error) -> Option<AMQPSoftError> {
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
fn classify(what: &str, e: lapin::Error) -> BusError {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) if soft_error(&e).is_some() => {
            BusError::Refused(format!("{what}: {}", amqp.get_message()))
        }
        _ => BusError::Unavailable(format!("{what}: {e}")),
    }
}

/// Why declaring the topology stopped.
enum Declared {
    /// The broker said no, or could not be reached.
    Failed(BusError),
    /// Declaring this queue with at-least-once dead-lettering was refused as inequivalent: it
    /// may be an older kaigo-hub's (declared again with that hub's arguments to find out; if
    /// those are refused too, this refusal is the one reported).
    Older(String, BusError),
}

impl From<BusError> for Declared {
    fn from(e: BusError) -> Declared {
        Declared::Failed(e)
    }
}

/// An AMQP short string (names, routing keys, most properties: at most 255 bytes).
fn short(what: &str, field: &str, s: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(s).map_err(|_| {
        BusError::Refused(format!(
            "{what}: the {field} is {} bytes long; AMQP allows at most 255",
            s.len()
        ))
    })
}

/// The arguments `q` is declared with; `current = false` gives those of a kaigo-hub before
/// at-least-once dead-lettering (2026-12-04), to recognise its queues.
fn queue_arguments(q: &QueueDecl, current: bool) -> FieldTable {
    let mut args = FieldTable::default();
    if q.quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    if let Some(dlx) = &q.dead_letter_exchange {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.as_str().into()),
        );
    }
    if let Some(limit) = q.delivery_limit {
        // Deliveries (ours) → tolerated returns (RabbitMQ's); see the file header.
        let returns = i64::from(limit.max(1)) - 1;
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(returns));
    }
    if let Some(ttl) = q.message_ttl {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms));
    }
    if current && at_least_once(q) {
        // Whatever a hop's queue or a waiting room dead-letters must arrive: a quorum queue
        // dead-letters at most once unless told otherwise (the message is gone from the source
        // whether or not the target took it), and at-least-once needs publishers refused, not
        // messages dropped, should the queue ever be full (none of the hub's has a length
        // limit, so `reject-publish` never fires).
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args
}

/// Does the hub declare `q` with at-least-once dead-lettering? Every quorum queue that
/// dead-letters does.
fn at_least_once(q: &QueueDecl) -> bool {
    q.quorum && q.dead_letter_exchange.is_some()
}

/// `Props` → AMQP basic properties: persistent, headers as long strings, `user_id` only when
/// set (the broker refuses one that is not the connection's user).
fn basic_properties(what: &str, p: &Props) -> Result<BasicProperties, BusError> {
    let mut b = BasicProperties::default().with_delivery_mode(2);
    if let Some(v) = &p.message_id {
        b = b.with_message_id(short(what, "message_id", v)?);
    }
    if let Some(v) = &p.correlation_id {
        b = b.with_correlation_id(short(what, "correlation_id", v)?);
    }
    if let Some(v) = &p.content_type {
        b = b.with_content_type(short(what, "content_type", v)?);
    }
    if let Some(v) = &p.user_id {
        b = b.with_user_id(short(what, "user_id", v)?);
    }
    if !p.headers.is_empty() {
        let mut table = FieldTable::default();
        for (k, v) in &p.headers {
            // The error's wording is built only for a name that is too long.
            let name = match ShortString::try_new(k.as_str()) {
                Ok(name) => name,
                Err(_) => short(what, &format!("header name `{k}`"), k)?,
            };
            table.insert(name, AMQPValue::LongString(LongString::from(v.as_str())));
        }
        b = b.with_headers(table);
    }
    Ok(b)
}

/// AMQP basic properties → `Props` and the quorum queue's delivery count.
fn props_from(b: &BasicProperties) -> (Props, u32) {
    let text = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    let mut headers = BTreeMap::new();
    let mut delivery_count = 0;
    if let Some(table) = b.headers() {
        for (k, v) in table.inner() {
            match k.as_str() {
                DELIVERY_COUNT_HEADER => {
                    delivery_count =
                        header_int(v).map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
                }
                "x-death" => {
                    if let Some(reason) = last_death_reason(v) {
                        headers.insert("x-death-reason".to_string(), reason);
                    }
                }
                _ => {
                    if let Some(t) = header_text(v) {
                        headers.entry(k.as_str().to_string()).or_insert(t);
                    }
                }
            }
        }
    }
    let props = Props {
        message_id: text(b.message_id()),
        correlation_id: text(b.correlation_id()),
        content_type: text(b.content_type()),
        user_id: text(b.user_id()),
        headers,
    };
    (props, delivery_count)
}

/// The reason of the most recent death in an `x-death` array (the broker puts it first).
fn last_death_reason(v: &AMQPValue) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = v else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    latest.inner().get("reason").and_then(header_text)
}

fn header_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i128::from(*n),
        AMQPValue::ShortShortUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::LongLongInt(n) => i128::from(*n),
        AMQPValue::Timestamp(n) => i128::from(*n),
        _ => return None,
    })
}

fn header_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        other => header_int(other).map(|n| n.to_string()),
    }
}

/// Deliveries handed over by lapin, in broker order, until `next()` takes them.
#[derive(Default)]
struct Inbox {
    items: Mutex<VecDeque<lapin::message::DeliveryResult>>,
    arrived: Notify,
}

impl Inbox {
    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<lapin::message::DeliveryResult>> {
        // A poisoned lock only means a task panicked mid-push; the queue stays usable.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// lapin's delegate hook. It spawns the returned future per delivery, so spawned futures
/// could run out of order: the delivery is queued here, synchronously, instead.
struct Forward(Arc<Inbox>);

impl ConsumerDelegate for Forward {
    fn on_new_delivery(
        &self,
        delivery: lapin::message::DeliveryResult,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.items().push_back(delivery);
        self.0.arrived.notify_one();
        Box::pin(std::future::ready(()))
    }

    fn drop_prefetched_messages(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // lapin calls this after `basic.recover` or an ack/nack of everything on the channel:
        // deliveries not yet handed out are no longer this consumer's to settle.
        self.0.items().retain(|d| !matches!(d, Ok(Some(_))));
        Box::pin(std::future::ready(()))
    }
}

/// One queue's consumer on a channel of its own. Dropping it closes the channel: the broker
/// requeues every delivery of it not yet settled. When its channel dies with the connection, a
/// queue consumer subscribes again on the link's next connection (deliveries handed out before
/// can no longer be settled; the broker delivers them again); a subscription ends instead.
struct RabbitConsumer {
    link: Arc<Link>,
    queue: String,
    prefetch: u16,
    /// Subscribe again after a lost connection (queue consumers), or end (subscriptions).
    resubscribe: bool,
    /// The link generation its channel belongs to.
    generation: u64,
    inbox: Arc<Inbox>,
    ended: bool,
    _consumer: lapin::Consumer,
    channel: Channel,
}

impl Drop for RabbitConsumer {
    fn drop(&mut self) {
        // lapin keeps a consumer that has a delegate, and so its channel, alive after the last
        // handle is gone (the delegate runs on its own); only closing the channel ends it.
        let ch = self.channel.clone();
        if !ch.status().connected() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = ch.close(200, "OK".into()).await {
                        tracing::debug!(error = %e, "closing a consumer's channel");
                    }
                });
            }
            Err(_) => tracing::warn!(
                queue = %self.queue,
                "consumer dropped outside a tokio runtime: its channel, and the deliveries it \
                 holds, stay until the connection closes"
            ),
        }
    }
}

impl RabbitConsumer {
    /// Replaces the dead channel with a new consumer on a live connection.
    async fn subscribe_again(&mut self) -> Result<(), BusError> {
        let (generation, ch, consumer, inbox) =
            open_consumer(&self.link, &self.queue, self.prefetch).await?;
        let old = std::mem::replace(&mut self.channel, ch);
        if old.status().connected() {
            let _ = old.close(200, "OK".into()).await;
        }
        tracing::info!(queue = %self.queue, generation, "consuming again after a lost connection");
        self.generation = generation;
        self._consumer = consumer;
        self.inbox = inbox;
        Ok(())
    }

    /// The channel died: subscribe again, or end a subscription. `Some` is what `next` returns.
    async fn lost(&mut self, why: BusError) -> Option<Result<Delivery, BusError>> {
        if !self.resubscribe || self.link.closed.load(Ordering::SeqCst) {
            self.ended = true;
            return Some(Err(why));
        }
        match self.subscribe_again().await {
            Ok(()) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl Consumer for RabbitConsumer {
    fn next(&mut self) -> BoxFut<'_, Option<Result<Delivery, BusError>>> {
        Box::pin(async move {
            loop {
                if self.ended {
                    return None;
                }
                if !self.channel.status().connected() {
                    let why = BusError::Unavailable(format!(
                        "consuming queue `{}`: the channel closed with the connection to RabbitMQ at {}",
                        self.queue, self.link.broker
                    ));
                    match self.lost(why).await {
                        None => continue,
                        Some(r) => return Some(r),
                    }
                }
                let item = loop {
                    let arrived = self.inbox.arrived.notified();
                    let popped = self.inbox.items().pop_front();
                    if let Some(item) = popped {
                        break Some(item);
                    }
                    tokio::select! {
                        _ = arrived => {}
                        _ = tokio::time::sleep(HEALTH_TICK) => {
                            if !self.channel.status().connected() {
                                break None;
                            }
                        }
                    }
                };
                match item {
                    // The health check found the channel dead: handled at the top of the loop.
                    None => continue,
                    Some(Ok(Some(d))) => {
                        let (props, delivery_count) = props_from(&d.properties);
                        let acker = RabbitAcker {
                            acker: d.acker,
                            queue: self.queue.clone(),
                        };
                        return Some(Ok(Delivery::new(
                            props,
                            d.data,
                            d.exchange.to_string(),
                            d.routing_key.to_string(),
                            d.redelivered,
                            delivery_count,
                            Box::new(acker),
                        )));
                    }
                    // Cancelled with the channel still open: the queue was deleted, or the bus
                    // shut down. With the channel gone: the connection died (top of the loop).
                    Some(Ok(None)) => {
                        if self.channel.status().connected()
                            || self.link.closed.load(Ordering::SeqCst)
                        {
                            self.ended = true;
                            return None;
                        }
                    }
                    Some(Err(e)) => {
                        let why = classify(&format!("consuming queue `{}`", self.queue), e);
                        if self.channel.status().connected() {
                            return Some(Err(why));
                        }
                        if let Some(r) = self.lost(why).await {
                            return Some(r);
                        }
                    }
                }
            }
        })
    }
}

struct RabbitAcker {
    acker: lapin::Acker,
    queue: String,
}

impl RabbitAcker {
    /// `Ok(false)` from lapin: the channel closed first, so the broker will redeliver.
    fn settled(self, verb: &'static str, r: lapin::Result<bool>) -> Result<(), BusError> {
        let what = || format!("{verb} of a delivery from queue `{}`", self.queue);
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(BusError::Unavailable(format!(
                "{}: its channel closed first; the broker will deliver it again",
                what()
            ))),
            Err(e) => Err(classify(&what(), e)),
        }
    }
}

impl Acker for RabbitAcker {
    fn ack(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        Box::pin(async move {
            let r = self.acker.ack(BasicAckOptions::default()).await;
            self.settled("ack", r)
        })
    }

    fn reject(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        Box::pin(async move {
            let r = self
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            self.settled("reject", r)
        })
    }

    fn requeue(self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        Box::pin(async move {
            let options = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            let r = self.acker.nack(options).await;
            self.settled("requeue", r)
        })
    }
}

// --- Credentials in RabbitMQ URLs -----------------------------------------------------------------

/// Where the user information of `url` (`amqp://user:password@host…`) is: its byte range, without
/// the `@`, if there is one.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    url[start..end].rfind('@').map(|at| (start, start + at))
}

/// `url` without user and password: what the process registry may record and messages may show.
pub fn without_credentials(url: &str) -> String {
    match userinfo(url) {
        Some((start, at)) => format!("{}{}", &url[..start], &url[at + 1..]),
        None => url.to_string(),
    }
}

/// `url` (recorded without credentials) with the user and password of `from` (this command's own
/// `amqp_url`); as it is when `from` has none, so the broker's default (`guest`) applies.
pub fn with_credentials_of(url: &str, from: Option<&str>) -> String {
    let bare = without_credentials(url);
    let creds = from.and_then(|f| userinfo(f).map(|(s, at)| f[s..at].to_string()));
    match (creds, bare.find("://")) {
        (Some(creds), Some(i)) => format!("{}{creds}@{}", &bare[..i + 3], &bare[i + 3..]),
        _ => bare,
    }
}

/// The user name `url` logs in as (`guest`, the AMQP default, when it names none).
pub fn user_of(url: &str) -> String {
    userinfo(url)
        .map(|(s, at)| url[s..at].split(':').next().unwrap_or("").to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_a_url_and_put_back_from_another() {
        let url = "amqp://hub:s3cret@mq.example:5672/%2f?heartbeat=10";
        assert_eq!(
            without_credentials(url),
            "amqp://mq.example:5672/%2f?heartbeat=10"
        );
        assert_eq!(without_credentials("amqp://mq:5672/v"), "amqp://mq:5672/v");
        assert_eq!(
            without_credentials("amqps://u@mq/a@b"),
            "amqps://mq/a@b",
            "an @ in the path is not user information"
        );
        assert_eq!(
            with_credentials_of("amqp://mq:5672/v", Some(url)),
            "amqp://hub:s3cret@mq:5672/v"
        );
        assert_eq!(
            with_credentials_of("amqp://mq:5672/v", Some("amqp://other:5672/%2f")),
            "amqp://mq:5672/v"
        );
        assert_eq!(with_credentials_of("amqp://mq/v", None), "amqp://mq/v");
        assert_eq!(user_of(url), "hub");
        assert_eq!(user_of("amqp://mq/v"), "guest");
    }

    fn props() -> Props {
        let mut headers = BTreeMap::new();
        headers.insert("x-kaigo-hop".to_string(), "translate".to_string());
        headers.insert("x-kaigo-category".to_string(), "認定".to_string());
        Props {
            message_id: Some("env-1".into()),
            correlation_id: Some("corr-1".into()),
            content_type: Some("application/xml".into()),
            user_id: None,
            headers,
        }
    }

    #[test]
    fn props_survive_the_round_trip_through_amqp_properties() {
        let b = basic_properties("test", &props()).unwrap();
        assert_eq!(*b.delivery_mode(), Some(2));
        assert_eq!(*b.user_id(), None, "user_id must stay unset when None");
        let (back, count) = props_from(&b);
        assert_eq!(back, props());
        assert_eq!(count, 0);
    }

    #[test]
    fn delivery_count_comes_from_the_quorum_header_and_is_not_a_header() {
        let mut table = FieldTable::default();
        table.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        table.insert("x-retries".into(), AMQPValue::LongInt(2));
        let (p, count) = props_from(&BasicProperties::default().with_headers(table));
        assert_eq!(count, 3);
        assert_eq!(p.header(DELIVERY_COUNT_HEADER), None);
        assert_eq!(p.header("x-retries"), Some("2"));
    }

    #[test]
    fn the_latest_death_reason_is_summarised_like_the_memory_bus() {
        let death = |reason: &str| {
            let mut t = FieldTable::default();
            t.insert("reason".into(), AMQPValue::LongString(reason.into()));
            t.insert("count".into(), AMQPValue::LongLongInt(1));
            AMQPValue::FieldTable(t)
        };
        let mut table = FieldTable::default();
        table.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![death("delivery_limit"), death("rejected")].into()),
        );
        table.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("rejected".into()),
        );
        let (p, _) = props_from(&BasicProperties::default().with_headers(table));
        assert_eq!(p.header("x-death-reason"), Some("delivery_limit"));
        assert_eq!(p.header("x-first-death-reason"), Some("rejected"));
        assert_eq!(p.header("x-death"), None);
    }

    #[test]
    fn delivery_limit_counts_deliveries_not_returns() {
        let q = |limit| QueueDecl {
            name: "q".into(),
            quorum: true,
            dead_letter_exchange: Some("t.dead".into()),
            delivery_limit: Some(limit),
            message_ttl: None,
        };
        let limit = |args: FieldTable| args.inner().get("x-delivery-limit").cloned();
        assert_eq!(
            limit(queue_arguments(&q(5), true)),
            Some(AMQPValue::LongLongInt(4))
        );
        assert_eq!(
            limit(queue_arguments(&q(1), true)),
            Some(AMQPValue::LongLongInt(0))
        );
        assert_eq!(
            limit(queue_arguments(&q(0), true)),
            Some(AMQPValue::LongLongInt(0))
        );
        let args = queue_arguments(&q(5), true);
        assert_eq!(
            args.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
    }

    #[test]
    fn queues_that_dead_letter_do_so_at_least_once_unless_recognising_an_older_hubs() {
        let t = Topology::new("t");
        let strategy = |args: &FieldTable| {
            args.inner()
                .get("x-dead-letter-strategy")
                .cloned()
                .zip(args.inner().get("x-overflow").cloned())
        };
        let at_least_once = Some((
            AMQPValue::LongString("at-least-once".into()),
            AMQPValue::LongString("reject-publish".into()),
        ));
        for q in t.queues() {
            let args = queue_arguments(&q, true);
            if q.dead_letter_exchange.is_some() {
                assert_eq!(strategy(&args), at_least_once, "{}", q.name);
                assert_eq!(strategy(&queue_arguments(&q, false)), None, "{}", q.name);
            } else {
                assert_eq!(strategy(&args), None, "{} dead-letters nothing", q.name);
            }
        }
    }

    #[test]
    fn an_overlong_name_is_refused_with_the_field_not_a_panic() {
        let mut p = props();
        p.message_id = Some("x".repeat(300));
        let e = basic_properties("publishing to exchange `t.ingress`", &p).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("message_id") && text.contains("300") && text.contains("t.ingress"),
            "{text}"
        );
        let mut p = props();
        p.headers
            .insert(format!("x-{}", "n".repeat(260)), "v".into());
        let text = basic_properties("publishing to exchange `t.ingress`", &p)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("header name `x-nnn")
                && text.contains("262")
                && text.contains("t.ingress"),
            "{text}"
        );
    }
}
