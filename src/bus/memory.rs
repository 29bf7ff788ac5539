//! The in-process bus: exchanges (topic, direct, fanout), durable-in-memory queues with
//! dead-lettering and a delivery limit, prefetch-bounded consumers, and redelivery of anything
//! left unsettled when a delivery is dropped. It behaves like the RabbitMQ topology the hub
//! declares, so the same pipeline runs on both; it keeps nothing across restarts, which is why
//! production runs on RabbitMQ.

use super::topology::{ExchangeKind, QueueDecl, Topology};
use super::{Acker, BoxFut, Bus, BusError, Consumer, Delivery, Props};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
struct Msg {
    props: Props,
    body: Vec<u8>,
    exchange: String,
    routing_key: String,
    delivery_count: u32,
}

struct Queue {
    items: Mutex<VecDeque<Msg>>,
    notify: Notify,
    dead_letter_exchange: Option<String>,
    delivery_limit: Option<u32>,
    /// A waiting room's time ([`QueueDecl::message_ttl`]): messages wait in `wait_line`, not in
    /// `items`, and are dead-lettered when their time is up; `waiting` counts them for
    /// `queue_len`.
    message_ttl: Option<std::time::Duration>,
    waiting: std::sync::atomic::AtomicU64,
    /// The waiting room's line: one task per room takes the messages in the order they came and
    /// hands each on at its time (all wait the same time, so the order holds, as a broker's
    /// expiry at the head of a queue keeps it). Started by the first message.
    wait_line: std::sync::OnceLock<WaitLine>,
}

type WaitLine = tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, Msg)>;

#[derive(Default)]
struct State {
    exchanges: HashMap<String, (ExchangeKind, Vec<(String, String)>)>,
    queues: HashMap<String, Arc<Queue>>,
    /// Counter for the names of subscription queues.
    next_private: u64,
}

/// The in-process bus. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemoryBus {
    state: Arc<Mutex<State>>,
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update; the maps stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn declare_queue(&self, q: QueueDecl) {
        self.lock().queues.entry(q.name).or_insert_with(|| {
            Arc::new(Queue {
                items: Mutex::new(VecDeque::new()),
                notify: Notify::new(),
                dead_letter_exchange: q.dead_letter_exchange,
                delivery_limit: q.delivery_limit,
                message_ttl: q.message_ttl,
                waiting: Default::default(),
                wait_line: Default::default(),
            })
        });
    }

    fn bind(&self, queue: &str, exchange: &str, key: &str) {
        let mut s = self.lock();
        if let Some((_, bindings)) = s.exchanges.get_mut(exchange) {
            let b = (queue.to_string(), key.to_string());
            if !bindings.contains(&b) {
                bindings.push(b);
            }
        }
    }

    fn route(&self, m: Msg) -> Result<(), BusError> {
        let targets: Vec<Arc<Queue>> = {
            let s = self.lock();
            let (kind, bindings) = s
                .exchanges
                .get(&m.exchange)
                .ok_or_else(|| BusError::Refused(format!("no exchange `{}`", m.exchange)))?;
            bindings
                .iter()
                .filter(|(_, pattern)| kind.routes(pattern, &m.routing_key))
                .filter_map(|(q, _)| s.queues.get(q).cloned())
                .collect()
        };
        if targets.is_empty() {
            return Err(BusError::Unroutable(format!(
                "no queue is bound to exchange `{}` for key `{}`",
                m.exchange, m.routing_key
            )));
        }
        for q in targets {
            match (q.message_ttl, &q.dead_letter_exchange) {
                (Some(ttl), Some(dlx)) => self.wait_then_dead_letter(&q, ttl, dlx, m.clone()),
                _ => {
                    lock_items(&q).push_back(m.clone());
                    q.notify.notify_one();
                }
            }
        }
        Ok(())
    }

    /// A waiting room: `ttl` after arrival the message goes to `dlx` with `x-death-reason:
    /// expired`, as RabbitMQ does, in the order the messages came.
    fn wait_then_dead_letter(&self, q: &Arc<Queue>, ttl: std::time::Duration, dlx: &str, m: Msg) {
        use std::sync::atomic::Ordering;
        let line = q.wait_line.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Msg)>();
            // Weak: the task must not keep the bus (which holds the line's sender) alive.
            let (state, room, dlx) = (
                Arc::downgrade(&self.state),
                Arc::downgrade(q),
                dlx.to_string(),
            );
            tokio::spawn(async move {
                while let Some((due, m)) = rx.recv().await {
                    tokio::time::sleep_until(due).await;
                    let (Some(state), Some(room)) = (state.upgrade(), room.upgrade()) else {
                        return;
                    };
                    room.waiting.fetch_sub(1, Ordering::Relaxed);
                    if let Err(e) = (MemoryBus { state }).route(dead_lettered(m, &dlx, "expired")) {
                        tracing::error!(error = %e, "memory bus: a waiting message could not be handed on");
                    }
                }
            });
            tx
        });
        q.waiting.fetch_add(1, Ordering::Relaxed);
        if line.send((tokio::time::Instant::now() + ttl, m)).is_err() {
            q.waiting.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("memory bus: a waiting room's line is closed");
        }
    }
}

/// `m` on its way to `dlx`, marked as RabbitMQ marks it (`x-death-reason`, the summary the
/// RabbitMQ bus makes of `x-death`, and `x-first-death-exchange`), its delivery count reset.
fn dead_lettered(mut m: Msg, dlx: &str, reason: &str) -> Msg {
    m.props
        .headers
        .insert("x-death-reason".into(), reason.into());
    m.props
        .headers
        .insert("x-first-death-exchange".into(), m.exchange.clone());
    m.exchange = dlx.to_string();
    m.delivery_count = 0;
    m
}

fn lock_items(q: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Msg>> {
    q.items.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bus for MemoryBus {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn declare<'a>(
        &'a self,
        t: &'a Topology,
        recipients: &'a [String],
    ) -> BoxFut<'a, Result<(), BusError>> {
        Box::pin(async move {
            {
                let mut s = self.lock();
                for e in t.exchanges() {
                    s.exchanges
                        .entry(e.name)
                        .or_insert_with(|| (e.kind, Vec::new()));
                }
            }
            for q in t.queues() {
                self.declare_queue(q);
            }
            for b in t.bindings() {
                self.bind(&b.queue, &b.exchange, &b.key);
            }
            for r in recipients {
                let (q, b) = t.out_decl(r);
                self.declare_queue(q);
                self.bind(&b.queue, &b.exchange, &b.key);
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
            self.route(Msg {
                props: props.clone(),
                body: body.to_vec(),
                exchange: exchange.to_string(),
                routing_key: key.to_string(),
                delivery_count: 0,
            })
        })
    }

    fn consume<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let q = self
                .lock()
                .queues
                .get(queue)
                .cloned()
                .ok_or_else(|| BusError::Refused(format!("no queue `{queue}`")))?;
            Ok(Box::new(MemoryConsumer {
                bus: self.clone(),
                queue: q,
                permits: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
            }) as Box<dyn Consumer>)
        })
    }

    fn queue_len<'a>(&'a self, queue: &'a str) -> BoxFut<'a, Result<u64, BusError>> {
        Box::pin(async move {
            let q = self.lock().queues.get(queue).cloned();
            Ok(q.map(|q| {
                lock_items(&q).len() as u64 + q.waiting.load(std::sync::atomic::Ordering::Relaxed)
            })
            .unwrap_or(0))
        })
    }

    fn subscribe<'a>(
        &'a self,
        exchange: &'a str,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        Box::pin(async move {
            let name = {
                let mut s = self.lock();
                if !s.exchanges.contains_key(exchange) {
                    return Err(BusError::Refused(format!("no exchange `{exchange}`")));
                }
                s.next_private += 1;
                format!("amq.gen-memory-{}", s.next_private)
            };
            self.declare_queue(QueueDecl {
                name: name.clone(),
                quorum: false,
                dead_letter_exchange: None,
                delivery_limit: None,
                message_ttl: None,
            });
            self.bind(&name, exchange, "");
            let inner = self.consume(&name, u16::MAX).await?;
            Ok(Box::new(PrivateConsumer {
                bus: self.clone(),
                name,
                inner,
            }) as Box<dyn Consumer>)
        })
    }
}

/// A subscription's consumer: its queue and bindings go when it is dropped.
struct PrivateConsumer {
    bus: MemoryBus,
    name: String,
    inner: Box<dyn Consumer>,
}

impl Consumer for PrivateConsumer {
    fn next(&mut self) -> BoxFut<'_, Option<Result<Delivery, BusError>>> {
        self.inner.next()
    }
}

impl Drop for PrivateConsumer {
    fn drop(&mut self) {
        let mut s = self.bus.lock();
        s.queues.remove(&self.name);
        for (_, bindings) in s.exchanges.values_mut() {
            bindings.retain(|(q, _)| *q != self.name);
        }
    }
}

struct MemoryConsumer {
    bus: MemoryBus,
    queue: Arc<Queue>,
    permits: Arc<Semaphore>,
}

impl Consumer for MemoryConsumer {
    fn next(&mut self) -> BoxFut<'_, Option<Result<Delivery, BusError>>> {
        Box::pin(async move {
            let permit = self.permits.clone().acquire_owned().await.ok()?;
            loop {
                let notified = self.queue.notify.notified();
                let popped = lock_items(&self.queue).pop_front();
                if let Some(m) = popped {
                    // Wake another waiting consumer if more is queued.
                    if !lock_items(&self.queue).is_empty() {
                        self.queue.notify.notify_one();
                    }
                    let acker = MemoryAcker {
                        bus: self.bus.clone(),
                        queue: self.queue.clone(),
                        msg: Some(m.clone()),
                        _permit: permit,
                    };
                    return Some(Ok(Delivery::new(
                        m.props,
                        m.body,
                        m.exchange,
                        m.routing_key,
                        m.delivery_count > 0,
                        m.delivery_count,
                        Box::new(acker),
                    )));
                }
                notified.await;
            }
        })
    }
}

struct MemoryAcker {
    bus: MemoryBus,
    queue: Arc<Queue>,
    msg: Option<Msg>,
    _permit: OwnedSemaphorePermit,
}

impl MemoryAcker {
    fn dead_letter(&self, m: Msg, reason: &str) -> Result<(), BusError> {
        match &self.queue.dead_letter_exchange {
            Some(dlx) => self.bus.route(dead_lettered(m, dlx, reason)),
            // Without a dead-letter exchange RabbitMQ drops it; the hub never configures that.
            None => Ok(()),
        }
    }

    fn requeue_msg(&self, mut m: Msg) -> Result<(), BusError> {
        m.delivery_count += 1;
        if self
            .queue
            .delivery_limit
            .is_some_and(|l| m.delivery_count >= l)
        {
            return self.dead_letter(m, "delivery_limit");
        }
        lock_items(&self.queue).push_front(m);
        self.queue.notify.notify_one();
        Ok(())
    }
}

impl Acker for MemoryAcker {
    fn ack(mut self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        self.msg = None;
        Box::pin(async { Ok(()) })
    }

    fn reject(mut self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        let r = match self.msg.take() {
            Some(m) => self.dead_letter(m, "rejected"),
            None => Ok(()),
        };
        Box::pin(async move { r })
    }

    fn requeue(mut self: Box<Self>) -> BoxFut<'static, Result<(), BusError>> {
        let r = match self.msg.take() {
            Some(m) => self.requeue_msg(m),
            None => Ok(()),
        };
        Box::pin(async move { r })
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        // Unsettled when dropped (a crashed hop): deliver it again, as a broker would.
        if let Some(m) = self.msg.take() {
            let _ = self.requeue_msg(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn setup() -> (MemoryBus, Topology) {
        let bus = MemoryBus::new();
        let t = Topology::new("t");
        bus.declare(&t, &["0300000005".into()]).await.unwrap();
        (bus, t)
    }

    #[tokio::test]
    async fn topic_routing_reaches_the_bound_queue_and_ack_removes() {
        let (bus, t) = setup().await;
        bus.publish(&t.ingress(), "hl7v2.adt", &Props::default(), b"m1")
            .await
            .unwrap();
        assert_eq!(bus.queue_len(&t.translate_queue()).await.unwrap(), 1);
        let mut c = bus.consume(&t.translate_queue(), 1).await.unwrap();
        let d = c.next().await.unwrap().unwrap();
        assert_eq!(d.body, b"m1");
        assert_eq!(d.routing_key, "hl7v2.adt");
        d.ack().await.unwrap();
        assert_eq!(bus.queue_len(&t.translate_queue()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_message_no_queue_is_bound_for_is_unroutable_not_confirmed() {
        let (bus, t) = setup().await;
        let e = bus
            .publish(&t.egress(), "nobody", &Props::default(), b"m")
            .await
            .expect_err("nothing is bound for `nobody`");
        assert!(matches!(e, BusError::Unroutable(_)), "{e}");
        assert!(e.to_string().contains("`nobody`"), "{e}");
    }

    #[tokio::test]
    async fn reject_dead_letters_with_a_reason() {
        let (bus, t) = setup().await;
        bus.publish(&t.ingress(), "x", &Props::default(), b"bad")
            .await
            .unwrap();
        let mut c = bus.consume(&t.translate_queue(), 1).await.unwrap();
        c.next().await.unwrap().unwrap().reject().await.unwrap();
        let mut dead = bus.consume(&t.dead_queue(), 1).await.unwrap();
        let d = dead.next().await.unwrap().unwrap();
        assert_eq!(d.props.header("x-death-reason"), Some("rejected"));
        assert_eq!(d.body, b"bad");
    }

    #[tokio::test]
    async fn a_waiting_room_hands_each_message_to_deliver_after_its_time_in_order() {
        let bus = MemoryBus::new();
        let mut t = Topology::new("t");
        let (short, long) = (Duration::from_millis(50), Duration::from_millis(400));
        t.retry_delays = vec![short, long];
        bus.declare(&t, &[]).await.unwrap();
        let mut c = bus.consume(&t.deliver_queue(), 8).await.unwrap();
        let started = tokio::time::Instant::now();
        bus.publish(
            &t.wait(),
            &Topology::wait_key(long),
            &Props::default(),
            b"long",
        )
        .await
        .unwrap();
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| format!("m{i}").into_bytes()).collect();
        for body in &bodies {
            bus.publish(
                &t.wait(),
                &Topology::wait_key(short),
                &Props::default(),
                body,
            )
            .await
            .unwrap();
        }
        assert_eq!(bus.queue_len(&t.wait_queue(short)).await.unwrap(), 20);
        assert_eq!(bus.queue_len(&t.wait_queue(long)).await.unwrap(), 1);
        assert_eq!(bus.queue_len(&t.deliver_queue()).await.unwrap(), 0);
        let first = c.next().await.unwrap().unwrap();
        assert!(started.elapsed() >= short, "not before its time");
        assert_eq!(first.props.header("x-death-reason"), Some("expired"));
        let mut got = vec![first.body.clone()];
        first.ack().await.unwrap();
        for _ in 1..bodies.len() {
            let d = c.next().await.unwrap().unwrap();
            got.push(d.body.clone());
            d.ack().await.unwrap();
        }
        assert_eq!(
            got, bodies,
            "in the order they came; the shorter room does not wait for the longer"
        );
        assert_eq!(bus.queue_len(&t.wait_queue(short)).await.unwrap(), 0);
        let last = c.next().await.unwrap().unwrap();
        assert_eq!(last.body, b"long");
        assert!(started.elapsed() >= long);
        last.ack().await.unwrap();
        assert_eq!(bus.queue_len(&t.wait_queue(long)).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn requeue_past_the_delivery_limit_dead_letters() {
        let (bus, t) = setup().await;
        bus.publish(&t.ingress(), "x", &Props::default(), b"poison")
            .await
            .unwrap();
        let mut c = bus.consume(&t.translate_queue(), 1).await.unwrap();
        for i in 0..t.delivery_limit {
            let d = c.next().await.unwrap().unwrap();
            assert_eq!(d.delivery_count, i);
            d.requeue().await.unwrap();
        }
        assert_eq!(bus.queue_len(&t.translate_queue()).await.unwrap(), 0);
        assert_eq!(bus.queue_len(&t.dead_queue()).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn dropped_deliveries_come_back_and_prefetch_bounds_in_flight() {
        let (bus, t) = setup().await;
        for i in 0..3u8 {
            bus.publish(&t.egress(), "0300000005", &Props::default(), &[i])
                .await
                .unwrap();
        }
        let mut c = bus.consume(&t.out_queue("0300000005"), 2).await.unwrap();
        let a = c.next().await.unwrap().unwrap();
        let _b = c.next().await.unwrap().unwrap();
        // Third waits for a permit.
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), c.next()).await;
        assert!(third.is_err(), "prefetch 2 must hold the third back");
        drop(a);
        let again = c.next().await.unwrap().unwrap();
        assert_eq!(again.body, vec![0]);
        assert!(again.redelivered);
    }

    #[tokio::test]
    async fn each_subscriber_gets_every_fanout_message_and_its_queue_goes_with_it() {
        let (bus, t) = setup().await;
        let before = bus
            .publish(&t.consent(), "", &Props::default(), b"before")
            .await;
        assert!(
            matches!(before, Err(BusError::Unroutable(_))),
            "nobody listens yet: {before:?}"
        );
        let mut a = bus.subscribe(&t.consent()).await.unwrap();
        let mut b = bus.subscribe(&t.consent()).await.unwrap();
        bus.publish(&t.consent(), "", &Props::default(), b"change")
            .await
            .unwrap();
        for c in [&mut a, &mut b] {
            let d = c.next().await.unwrap().unwrap();
            assert_eq!(
                d.body, b"change",
                "a subscriber sees only what came after it"
            );
            d.ack().await.unwrap();
        }
        drop(a);
        drop(b);
        let s = bus.lock();
        assert!(!s.queues.keys().any(|q| q.starts_with("amq.gen-memory-")));
        assert!(s.exchanges[&t.consent()].1.is_empty());
    }

    #[tokio::test]
    async fn unknown_exchange_is_refused() {
        let bus = MemoryBus::new();
        let e = bus
            .publish("nope", "k", &Props::default(), b"")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nope"));
    }
}
