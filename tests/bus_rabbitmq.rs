//! `RabbitBus` against a real RabbitMQ (amqp://guest:guest@127.0.0.1:5672/%2f, or the URL in
//! `KAIGO_TEST_AMQP_URL`): declaration, routing, confirms, acks, dead-lettering, the delivery
//! limit, redelivery, prefetch and broker-validated `user_id`. Each test declares its own
//! topology under the prefix `test-<pid>-<n>-<name>` and deletes exactly that afterwards, even
//! when it fails. Without a broker every test fails, saying how to start one; none is skipped.
//! The recovery test has the broker drop the connection with `rabbitmqctl close_connection`, so
//! it needs `rabbitmqctl` for the broker's node on this machine.

use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, BusError, Consumer, Delivery, Props, Topology};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Generous: quorum queues commit through Raft, and CI machines are slow.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(700);

fn url() -> String {
    std::env::var("KAIGO_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

async fn connect(name: &str) -> RabbitBus {
    match RabbitBus::connect(&url(), &format!("kaigo-hub-test-{name}")).await {
        Ok(bus) => bus,
        Err(e) => panic!(
            "these tests need RabbitMQ at {DEFAULT_URL} (or KAIGO_TEST_AMQP_URL): {e}\n\
             start it with `rabbitmq-server -detached` (`.ci/run` does)"
        ),
    }
}

/// A test's own topology on the broker, deleted when this is dropped (also on panic).
struct Scratch {
    t: Topology,
    recipients: Vec<String>,
}

impl Scratch {
    fn new(name: &str, recipients: &[&str]) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scratch {
            t: Topology::new(&format!("test-{}-{n}-{name}", std::process::id())),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn queues(&self) -> Vec<String> {
        let mut q: Vec<String> = self.t.queues().into_iter().map(|q| q.name).collect();
        q.extend(self.recipients.iter().map(|r| self.t.out_queue(r)));
        q
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let queues = self.queues();
        let exchanges: Vec<String> = self.t.exchanges().into_iter().map(|e| e.name).collect();
        // Drop cannot await; a thread with its own runtime deletes what the test declared.
        let cleaned = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(delete(queues, exchanges))
        })
        .join();
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup of `{}`.* failed: {e}", self.t.prefix),
            Err(_) => eprintln!("cleanup of `{}`.* panicked", self.t.prefix),
        }
    }
}

async fn delete(queues: Vec<String>, exchanges: Vec<String>) -> Result<(), String> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let conn = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    // Deleting what does not exist is fine for RabbitMQ, so any error is worth reporting.
    for q in queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("queue `{q}`: {e}"))?;
    }
    for x in exchanges {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| format!("exchange `{x}`: {e}"))?;
    }
    ch.close(200, "OK".into())
        .await
        .map_err(|e| e.to_string())?;
    conn.close(200, "OK".into())
        .await
        .map_err(|e| e.to_string())
}

/// A connected bus with the scratch topology declared.
async fn setup(name: &str, recipients: &[&str]) -> (RabbitBus, Scratch) {
    let s = Scratch::new(name, recipients);
    let bus = connect(name).await;
    bus.declare(&s.t, &s.recipients)
        .await
        .expect("declaring the topology");
    (bus, s)
}

fn props(id: &str) -> Props {
    let mut headers = BTreeMap::new();
    headers.insert(
        "x-kaigo-document".to_string(),
        "InsuredPerson@1".to_string(),
    );
    headers.insert("x-kaigo-source".to_string(), "1310000001".to_string());
    headers.insert("x-kaigo-hop".to_string(), "1".to_string());
    Props {
        message_id: Some(id.to_string()),
        correlation_id: Some(format!("corr-{id}")),
        content_type: Some("application/hl7-v2".to_string()),
        user_id: None,
        headers,
    }
}

async fn next(c: &mut Box<dyn Consumer>) -> Delivery {
    match tokio::time::timeout(PATIENCE, c.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(None) => panic!("consumer ended"),
        Err(_) => panic!("no delivery within {PATIENCE:?}"),
    }
}

async fn assert_quiet(c: &mut Box<dyn Consumer>, why: &str) {
    if let Ok(got) = tokio::time::timeout(QUIET, c.next()).await {
        let what = got.map(|r| r.map(|d| String::from_utf8_lossy(&d.body).into_owned()));
        panic!("{why}, yet the consumer yielded {what:?}");
    }
}

/// Waits until `queue` holds `n` ready messages (dead-lettering and counts are asynchronous).
async fn wait_len(bus: &RabbitBus, queue: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let len = bus.queue_len(queue).await.expect("queue_len");
        if len == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{queue}` holds {len} messages, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn declaring_twice_is_idempotent_and_a_conflicting_queue_is_refused_by_name() {
    let (bus, s) = setup("declare", &["0300000005"]).await;
    bus.declare(&s.t, &s.recipients)
        .await
        .expect("declaring the same topology again");
    assert_eq!(bus.queue_len(&s.t.translate_queue()).await.unwrap(), 0);
    assert_eq!(
        bus.queue_len(&s.t.out_queue("0300000005")).await.unwrap(),
        0
    );

    let mut stricter = s.t.clone();
    stricter.delivery_limit = 3;
    let e = bus.declare(&stricter, &s.recipients).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, BusError::Refused(_)), "{text}");
    assert!(
        text.contains(&s.t.translate_queue()),
        "names the queue: {text}"
    );
    assert!(
        text.contains("x-delivery-limit"),
        "says what differs: {text}"
    );

    // The refusal closed only the declaring channel; the bus carries on.
    bus.publish(&s.t.ingress(), "hl7v2.adt", &props("after-conflict"), b"m")
        .await
        .unwrap();
    wait_len(&bus, &s.t.translate_queue(), 1).await;
    bus.close().await;
}

/// Declares `queue` as a kaigo-hub before 2026-12-04 did a hop's queue: quorum, dead-letter
/// exchange, delivery limit, and no `x-dead-letter-strategy`. The broker's refusal, if any.
async fn declare_as_an_older_hub(queue: &str, dlx: &str) -> Result<(), String> {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable};
    let conn = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.into()),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(4));
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let r = ch
        .queue_declare(queue.into(), options, args)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let _ = conn.close(200, "OK".into()).await;
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_queues_dead_letter_at_least_once_and_an_older_hubs_queue_is_used_as_it_is() {
    let s = Scratch::new("older", &[]);
    // The translate queue as an older hub left it on the broker.
    declare_as_an_older_hub(&s.t.translate_queue(), &s.t.dead())
        .await
        .expect("a fresh queue");
    let bus = connect("older").await;
    bus.declare(&s.t, &[])
        .await
        .expect("the older hub's queue is taken as it is");
    bus.declare(&s.t, &[]).await.expect("and again");
    bus.publish(&s.t.ingress(), "hl7v2.adt", &props("env-older"), b"m")
        .await
        .unwrap();
    wait_len(&bus, &s.t.translate_queue(), 1).await;

    // The queues this hub declared itself carry the strategy: declared the older way, the
    // broker refuses them as different.
    let e = declare_as_an_older_hub(&s.t.deliver_queue(), &s.t.dead())
        .await
        .expect_err("the deliver queue dead-letters at least once");
    assert!(
        e.contains("PRECONDITION_FAILED") || e.contains("inequivalent"),
        "{e}"
    );
    assert!(
        e.contains("x-dead-letter-strategy") || e.contains("x-overflow"),
        "{e}"
    );
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_consume_ack_empties_the_queue() {
    let (bus, s) = setup("ack", &[]).await;
    let sent = props("env-ack");
    bus.publish(&s.t.ingress(), "hl7v2.adt", &sent, b"MSH|^~\\&|")
        .await
        .unwrap();
    bus.publish(
        &s.t.canonical(),
        "certification.InsuredPerson@1",
        &sent,
        b"elsewhere",
    )
    .await
    .unwrap();
    wait_len(&bus, &s.t.translate_queue(), 1).await;
    wait_len(&bus, &s.t.deliver_queue(), 1).await;

    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(d.body, b"MSH|^~\\&|");
    assert_eq!(d.exchange, s.t.ingress());
    assert_eq!(d.routing_key, "hl7v2.adt");
    assert_eq!(d.props, sent, "properties and headers arrive as sent");
    assert!(!d.redelivered);
    assert_eq!(d.delivery_count, 0);
    d.ack().await.unwrap();
    drop(c);

    // Had the ack not reached the broker, closing the consumer would have requeued it.
    let mut again = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    assert_quiet(&mut again, "the message was acknowledged").await;
    assert_eq!(bus.queue_len(&s.t.translate_queue()).await.unwrap(), 0);
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_dead_letters_with_the_original_body_headers_and_a_reason() {
    let (bus, s) = setup("reject", &[]).await;
    let sent = props("env-bad");
    bus.publish(&s.t.ingress(), "fhir.Patient", &sent, b"{not json")
        .await
        .unwrap();
    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    next(&mut c).await.reject().await.unwrap();

    wait_len(&bus, &s.t.dead_queue(), 1).await;
    let mut dead = bus.consume(&s.t.dead_queue(), 1).await.unwrap();
    let d = next(&mut dead).await;
    assert_eq!(d.body, b"{not json");
    for (k, v) in &sent.headers {
        assert_eq!(d.props.header(k), Some(v.as_str()), "header `{k}` kept");
    }
    assert_eq!(d.props.message_id, sent.message_id);
    assert_eq!(d.props.correlation_id, sent.correlation_id);
    assert_eq!(d.props.header("x-death-reason"), Some("rejected"));
    assert_eq!(
        d.props.header("x-first-death-exchange"),
        Some(s.t.ingress().as_str())
    );
    assert_eq!(d.exchange, s.t.dead());
    assert_eq!(d.routing_key, "fhir.Patient");
    d.ack().await.unwrap();
    assert_eq!(bus.queue_len(&s.t.translate_queue()).await.unwrap(), 0);
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requeue_past_the_delivery_limit_dead_letters() {
    let (bus, s) = setup("limit", &[]).await;
    assert_eq!(s.t.delivery_limit, 5);
    bus.publish(&s.t.ingress(), "x", &props("env-poison"), b"poison")
        .await
        .unwrap();
    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    for i in 0..s.t.delivery_limit {
        let d = next(&mut c).await;
        assert_eq!(d.body, b"poison");
        assert_eq!(d.delivery_count, i, "delivery {i}");
        assert_eq!(d.redelivered, i > 0, "delivery {i}");
        d.requeue().await.unwrap();
    }
    assert_quiet(&mut c, "the delivery limit was reached").await;
    wait_len(&bus, &s.t.dead_queue(), 1).await;
    assert_eq!(bus.queue_len(&s.t.translate_queue()).await.unwrap(), 0);

    let mut dead = bus.consume(&s.t.dead_queue(), 1).await.unwrap();
    let d = next(&mut dead).await;
    assert_eq!(d.body, b"poison");
    assert_eq!(d.props.header("x-death-reason"), Some("delivery_limit"));
    assert_eq!(
        d.delivery_count, 0,
        "a dead-lettered message starts afresh, as on the memory bus"
    );
    d.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_delivery_is_redelivered_once_its_consumer_closes() {
    let (bus, s) = setup("dropped", &[]).await;
    bus.publish(&s.t.ingress(), "x", &props("env-crash"), b"crash")
        .await
        .unwrap();
    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    let d = next(&mut c).await;
    assert!(!d.redelivered);
    drop(d); // a hop that died mid-message
    drop(c); // and its consumer with it: the broker requeues what was unsettled

    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(d.body, b"crash");
    assert!(d.redelivered);
    assert_eq!(
        d.delivery_count, 1,
        "the quorum queue counts the abandoned delivery"
    );
    d.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prefetch_bounds_unacked_deliveries() {
    let (bus, s) = setup("prefetch", &["0300000005"]).await;
    let queue = s.t.out_queue("0300000005");
    for i in 0..3u8 {
        bus.publish(
            &s.t.egress(),
            "0300000005",
            &props(&format!("env-{i}")),
            &[i],
        )
        .await
        .unwrap();
    }
    wait_len(&bus, &queue, 3).await;
    let mut c = bus.consume(&queue, 2).await.unwrap();
    let a = next(&mut c).await;
    let b = next(&mut c).await;
    assert_eq!(
        (a.body.clone(), b.body.clone()),
        (vec![0], vec![1]),
        "in order"
    );
    assert_quiet(&mut c, "prefetch 2 must hold the third back").await;
    assert_eq!(
        bus.queue_len(&queue).await.unwrap(),
        1,
        "the third waits in the queue"
    );
    a.ack().await.unwrap();
    let third = next(&mut c).await;
    assert_eq!(third.body, vec![2]);
    b.ack().await.unwrap();
    third.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_validates_user_id() {
    let (bus, s) = setup("user-id", &[]).await;
    let mut forged = props("env-forged");
    forged.user_id = Some("someone-else".to_string());
    let e = bus
        .publish(&s.t.ingress(), "vendor.xml", &forged, b"forged")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, BusError::Refused(_)), "{text}");
    assert!(
        text.contains(&s.t.ingress()) && text.contains("someone-else"),
        "{text}"
    );

    let mut honest = props("env-honest");
    honest.user_id = Some("guest".to_string());
    bus.publish(&s.t.ingress(), "vendor.xml", &honest, b"honest")
        .await
        .unwrap();
    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(
        d.body, b"honest",
        "the forged message never reached the queue"
    );
    assert_eq!(d.props.user_id.as_deref(), Some("guest"));
    d.ack().await.unwrap();
    assert_quiet(&mut c, "only the honest message was accepted").await;
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_publish_does_not_fail_the_publishes_sharing_its_channel() {
    let (bus, s) = setup("shared", &[]).await;
    let bus = std::sync::Arc::new(bus);
    let mut tasks = Vec::new();
    for i in 0..30u8 {
        let (bus, exchange) = (bus.clone(), s.t.ingress());
        tasks.push(tokio::spawn(async move {
            let mut p = props(&format!("env-{i}"));
            if i == 10 {
                p.user_id = Some("someone-else".to_string());
            }
            bus.publish(&exchange, "x", &p, &[i]).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let r = task.await.unwrap();
        assert_eq!(r.is_err(), i == 10, "publish {i}: {r:?}");
    }
    // Publishes in flight when the broker closed the shared channel were sent again, so some
    // may be there twice (at-least-once; the deliver hop deduplicates by envelope id).
    let mut c = bus.consume(&s.t.translate_queue(), 100).await.unwrap();
    let mut ids = std::collections::BTreeSet::new();
    loop {
        match tokio::time::timeout(QUIET, c.next()).await {
            Ok(Some(Ok(d))) => {
                ids.insert(d.props.message_id.clone().unwrap());
                d.ack().await.unwrap();
            }
            Ok(other) => panic!("consumer: {:?}", other.map(|r| r.err())),
            Err(_) => break,
        }
    }
    let expected: std::collections::BTreeSet<String> = (0..30)
        .filter(|i| *i != 10)
        .map(|i| format!("env-{i}"))
        .collect();
    assert_eq!(ids, expected);
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_reaches_only_the_addressed_party() {
    let (bus, s) = setup("egress", &["0300000005", "0400000006"]).await;
    bus.publish(&s.t.egress(), "0300000005", &props("env-out"), b"for 5")
        .await
        .unwrap();
    wait_len(&bus, &s.t.out_queue("0300000005"), 1).await;
    assert_eq!(
        bus.queue_len(&s.t.out_queue("0400000006")).await.unwrap(),
        0
    );
    let mut c = bus.consume(&s.t.out_queue("0300000005"), 1).await.unwrap();
    let d = next(&mut c).await;
    assert_eq!(d.body, b"for 5");
    assert_eq!(d.routing_key, "0300000005");
    d.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_exchanges_and_queues_are_refused_by_name() {
    let (bus, s) = setup("unknown", &[]).await;
    let missing = format!("{}.nope", s.t.prefix);
    let e = bus
        .publish(&missing, "k", &props("env-lost"), b"")
        .await
        .unwrap_err();
    assert!(
        matches!(e, BusError::Refused(_)) && e.to_string().contains(&missing),
        "{e}"
    );
    let e = bus
        .consume(&missing, 1)
        .await
        .err()
        .expect("consuming a missing queue fails");
    assert!(
        matches!(e, BusError::Refused(_)) && e.to_string().contains(&missing),
        "{e}"
    );
    // Like the memory bus, a missing queue holds nothing.
    assert_eq!(bus.queue_len(&missing).await.unwrap(), 0);
    bus.publish(&s.t.ingress(), "k", &props("env-fine"), b"fine")
        .await
        .unwrap();
    wait_len(&bus, &s.t.translate_queue(), 1).await;
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_unavailable_at_once() {
    let started = std::time::Instant::now();
    let e = RabbitBus::connect(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "kaigo-hub-test-unreachable",
    )
    .await
    .err()
    .expect("nothing listens on port 1");
    assert!(matches!(e, BusError::Unavailable(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("guest:guest"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Has the broker close the connection named `name` (as an operator or a node restart would).
fn force_close(name: &str) {
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("this test drives the broker with `rabbitmqctl`, which did not run: {e}")
            });
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let listed = ctl(&["list_connections", "--silent", "pid", "client_properties"]);
        let found = listed
            .lines()
            .find(|l| l.contains(name))
            .and_then(|l| l.split('\t').next());
        if let Some(pid) = found {
            ctl(&["close_connection", pid, "test: forced close"]);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection named `{name}` on the broker"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_and_consumer_recover_when_the_broker_drops_the_connection() {
    let s = Scratch::new("recovery", &[]);
    let name = format!("kaigo-hub-test-{}", s.t.prefix);
    let bus = connect(&s.t.prefix).await;
    bus.declare(&s.t, &s.recipients).await.unwrap();
    let mut c = bus.consume(&s.t.translate_queue(), 1).await.unwrap();
    bus.publish(&s.t.ingress(), "x", &props("env-held"), b"held")
        .await
        .unwrap();
    let held = next(&mut c).await;

    force_close(&name);
    // lapin reconnects (after its first backoff step) and reopens the channels.
    bus.publish(&s.t.ingress(), "x", &props("env-after"), b"after")
        .await
        .expect("publish once recovered");
    let e = held
        .ack()
        .await
        .expect_err("its channel died with the connection");
    assert!(matches!(e, BusError::Unavailable(_)), "{e}");

    let mut got = Vec::new();
    for _ in 0..2 {
        let d = next(&mut c).await;
        got.push((String::from_utf8_lossy(&d.body).into_owned(), d.redelivered));
        d.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(
        got,
        [("after".to_string(), false), ("held".to_string(), true)]
    );
    bus.close().await;
}

/// Deletes one queue behind the hub's back, as an operator might in the management UI.
async fn delete_queue(queue: &str) {
    delete(vec![queue.to_string()], Vec::new())
        .await
        .unwrap_or_else(|e| panic!("deleting `{queue}`: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_no_declared_queue_takes_is_an_error_not_a_confirmed_loss() {
    let (bus, s) = setup("unroutable", &["0300000005"]).await;
    // A recipient the hub declared no queue for.
    let e = bus
        .publish(&s.t.egress(), "0400000006", &props("env-nowhere"), b"x")
        .await
        .expect_err("a message nothing is bound for");
    assert!(matches!(e, BusError::Unroutable(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&s.t.egress()) && text.contains("0400000006"),
        "{text}"
    );
    // The consent fanout with no hub process listening: the same answer at the bus (the
    // announcer decides that this one is fine).
    let e = bus
        .publish(&s.t.consent(), "", &props("env-consent"), b"{}")
        .await
        .expect_err("a fanout nobody listens to");
    assert!(matches!(e, BusError::Unroutable(_)), "{e}");
    // Routed publishes are unaffected, and nothing went to the dead letters.
    bus.publish(&s.t.egress(), "0300000005", &props("env-routed"), b"y")
        .await
        .unwrap();
    wait_len(&bus, &s.t.out_queue("0300000005"), 1).await;
    assert_eq!(bus.queue_len(&s.t.dead_queue()).await.unwrap(), 0);
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_deleted_under_the_hub_is_declared_again_and_holds_every_confirmed_message() {
    let (bus, s) = setup("deleted", &["0300000005"]).await;
    let out = s.t.out_queue("0300000005");
    delete_queue(&out).await;
    // Many publishes in flight on the shared channel at once, half of them returned, half routed
    // to a quorum queue: the broker confirms several together, and lapin then may hand a
    // returned message to another publish's confirm (seen in 1 of 4 runs of 200). Every message
    // must still end in its queue, whichever publish held its return.
    let bus = std::sync::Arc::new(bus);
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let (bus, t) = (bus.clone(), s.t.clone());
        tasks.push(tokio::spawn(async move {
            let (exchange, key) = if i % 2 == 0 {
                (t.egress(), "0300000005")
            } else {
                (t.ingress(), "hl7v2.adt")
            };
            bus.publish(&exchange, key, &props(&format!("env-{i}")), &[i])
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("publish {i}: {e}"));
    }
    for queue in [&out, &s.t.translate_queue()] {
        let mut c = bus.consume(queue, 100).await.unwrap();
        let mut ids = std::collections::BTreeSet::new();
        while let Ok(got) = tokio::time::timeout(QUIET, c.next()).await {
            let d = got.expect("consumer ended").expect("delivery");
            assert!(ids.insert(d.props.message_id.clone().unwrap()), "twice");
            d.ack().await.unwrap();
        }
        let first = usize::from(queue == &s.t.translate_queue());
        let expected: std::collections::BTreeSet<String> = (first..200)
            .step_by(2)
            .map(|i| format!("env-{i}"))
            .collect();
        assert_eq!(ids, expected, "{queue}");
    }
    assert_eq!(bus.queue_len(&s.t.dead_queue()).await.unwrap(), 0);
    bus.close().await;
}
