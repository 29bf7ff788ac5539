//! Consuming: one channel per consumer with `basic.qos(prefetch)`, deliveries queued in broker
//! order and handed out with their properties and a per-delivery acker (ack / reject to the
//! dead-letter exchange / requeue). After a lost connection a queue consumer subscribes again
//! on the link's next connection by itself; a subscription (an exclusive queue bound to a
//! fanout) ends instead, so its owner hears of what it missed. In: a queue or an exchange.
//! Out: [`Delivery`]s. Must never: settle a delivery for the caller.

use super::super::{Acker, BoxFut, BusError, Consumer, Delivery};
use super::broker_errors::classify;
use super::link::Link;
use super::props::{props_from, short};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ConsumerDelegate};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiting consumer checks that its channel is still alive.
const HEALTH_TICK: Duration = Duration::from_secs(1);

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
pub(super) struct RabbitConsumer {
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

impl RabbitConsumer {
    /// A consumer of `queue` with `prefetch` deliveries in flight (the `Bus::consume` of this
    /// bus).
    pub(super) async fn of_queue(
        link: &Arc<Link>,
        queue: &str,
        prefetch: u16,
    ) -> Result<RabbitConsumer, BusError> {
        let what = format!("consuming queue `{queue}`");
        short(&what, "queue", queue)?;
        let (generation, ch, consumer, inbox) = open_consumer(link, queue, prefetch).await?;
        Ok(RabbitConsumer {
            link: link.clone(),
            queue: queue.to_string(),
            prefetch,
            resubscribe: true,
            generation,
            inbox,
            ended: false,
            _consumer: consumer,
            channel: ch,
        })
    }

    /// A subscription to the fanout `exchange` through an exclusive, auto-deleted queue (the
    /// `Bus::subscribe` of this bus).
    pub(super) async fn of_exchange(
        link: &Arc<Link>,
        exchange: &str,
    ) -> Result<RabbitConsumer, BusError> {
        let what = format!("subscribing to exchange `{exchange}`");
        let exchange_name = short(&what, "exchange", exchange)?;
        let (generation, ch) = link.channel(&what).await?;
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
        Ok(RabbitConsumer {
            link: link.clone(),
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
        })
    }

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

impl Consumer for RabbitConsumer {
    fn close(self: Box<Self>) -> BoxFut<'static, ()> {
        Box::pin(async move {
            let ch = self.channel.clone();
            if ch.status().connected()
                && let Err(e) = ch.close(200, "OK".into()).await
            {
                tracing::debug!(error = %e, "closing a consumer's channel");
            }
            drop(self);
        })
    }

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
