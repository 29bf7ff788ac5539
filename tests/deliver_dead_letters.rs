//! The deliver hop's own dead letters (a copy that is not a canonical document, or names no
//! category) lose nothing: while the dead-letter exchange refuses them the copy stays on the
//! deliver queue and comes back; once it takes them, each is kept there and audited as translate
//! audits its dead letters (hop, decision `dead`, reason code, envelope, sender, and the category
//! and kind as far as the copy names them). On the in-memory bus (deterministic, and no load on
//! the broker other tests share), behind a bus that refuses each copy's first dead letters.

mod common;

use common::*;
use kaigo_hub::bus::{BoxFut, Bus, BusError, Consumer, Props, Topology};
use kaigo_hub::pipeline::{Hub, deliver, headers as h};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Times each copy's dead letter is refused before one is taken: the copy comes back once,
/// and is refused again, well below the deliver queue's delivery limit (whose dead-lettering by
/// the bus itself would not show the hop's requeue).
const REFUSALS: usize = 2;

/// The hub's bus, refusing the first [`REFUSALS`] publishes of each envelope to `dead`, as a
/// broker would while the dead-letter exchange is missing; counts them per envelope.
struct RefusingDead {
    inner: Arc<dyn Bus>,
    dead: String,
    refused: Mutex<BTreeMap<String, usize>>,
}

impl RefusingDead {
    /// Counts a publish of `props`'s envelope to the dead exchange; is it to be refused?
    fn refuses(&self, props: &Props) -> bool {
        let envelope = props.message_id.clone().unwrap_or_default();
        let mut refused = self.refused.lock().expect("lock");
        let n = refused.entry(envelope).or_default();
        *n += 1;
        *n <= REFUSALS
    }
}

impl Bus for RefusingDead {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn declare<'a>(
        &'a self,
        t: &'a Topology,
        recipients: &'a [String],
    ) -> BoxFut<'a, Result<(), BusError>> {
        self.inner.declare(t, recipients)
    }
    fn publish<'a>(
        &'a self,
        exchange: &'a str,
        key: &'a str,
        props: &'a Props,
        body: &'a [u8],
    ) -> BoxFut<'a, Result<(), BusError>> {
        if exchange == self.dead && self.refuses(props) {
            return Box::pin(async move {
                Err(BusError::Refused(format!(
                    "NOT_FOUND - no exchange '{exchange}'"
                )))
            });
        }
        self.inner.publish(exchange, key, props, body)
    }
    fn consume<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        self.inner.consume(queue, prefetch)
    }
    fn queue_len<'a>(&'a self, queue: &'a str) -> BoxFut<'a, Result<u64, BusError>> {
        self.inner.queue_len(queue)
    }
    fn subscribe<'a>(
        &'a self,
        exchange: &'a str,
    ) -> BoxFut<'a, Result<Box<dyn Consumer>, BusError>> {
        self.inner.subscribe(exchange)
    }
}

/// A copy on the canonical exchange with the headers translate gives it.
fn copy(envelope: &str, category: Option<&str>) -> Props {
    let mut p = Props {
        message_id: Some(envelope.into()),
        ..Props::default()
    };
    p.headers.insert(h::HOP.into(), "translate".into());
    p.headers.insert(h::SOURCE.into(), PROVIDER.into());
    p.headers.insert(h::DOC_INDEX.into(), "0".into());
    p.headers.insert(h::FORMAT.into(), "csv".into());
    if let Some(c) = category {
        p.headers.insert(h::CATEGORY.into(), c.into());
    }
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_the_broker_refuses_stays_on_the_deliver_queue_then_is_kept_and_audited() {
    let s = Scratch::memory("deliver-dead", |p| p);
    let mut hub = Arc::into_inner(s.build().await).expect("nothing else holds the built hub");
    let refusing = Arc::new(RefusingDead {
        inner: hub.bus.clone(),
        dead: hub.topology.dead(),
        refused: Mutex::default(),
    });
    hub.bus = refusing.clone();
    let hub: Arc<Hub> = Arc::new(hub);
    let t = hub.topology.clone();
    let dead = Tap::new(hub.bus.as_ref(), &t.dead_queue()).await;

    let canonical = t.canonical();
    let not_json = copy("dead-not-canonical", Some("care-plan"));
    let bus = hub.bus.clone();
    bus.publish(
        &canonical,
        "care-plan.careplan",
        &not_json,
        b"UP2KYO,not,json\r\n",
    )
    .await
    .expect("published");
    let no_category = copy("dead-no-category", None);
    let doc = br#"{"document": "CarePlan@1"}"#;
    bus.publish(&canonical, "care-plan.careplan", &no_category, doc)
        .await
        .expect("published");

    let (stop, rx) = tokio::sync::watch::channel(false);
    let hop = tokio::spawn(deliver::run(hub.clone(), rx));
    // Each copy is refused, requeued, refused again, then kept: once, by the hop.
    let kept = dead
        .wait("both copies dead-lettered", |m| m.len() >= 2)
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(dead.all().len(), 2, "each copy kept once: {kept:#?}");
    let attempts = refusing.refused.lock().expect("lock").clone();
    let expected = ["dead-no-category", "dead-not-canonical"].map(|e| (e.into(), REFUSALS + 1));
    assert_eq!(
        attempts,
        BTreeMap::from(expected),
        "each copy came back after each refused dead letter"
    );
    assert_eq!(hub.metrics.dead.load(Ordering::SeqCst), 2);
    let of = |envelope: &str| dead.of(envelope).pop().expect(envelope);
    let m = of("dead-not-canonical");
    assert_eq!(
        m.header("x-death-reason"),
        None,
        "kept by the hop, not the bus"
    );
    assert_eq!(m.body, b"UP2KYO,not,json\r\n");
    let error = m.header(h::ERROR).expect("x-kaigo-error");
    assert!(error.contains("not a JSON object"), "{error}");
    let m = of("dead-no-category");
    assert_eq!(m.body, doc);
    assert_eq!(m.header(h::ERROR), Some("message has no x-kaigo-category"));
    assert_eq!(
        hub.bus.queue_len(&t.deliver_queue()).await.expect("depth"),
        0,
        "nothing left on the deliver queue"
    );

    stop.send(true).expect("stop");
    tokio::time::timeout(PATIENCE, hop)
        .await
        .expect("the hop stops")
        .expect("no panic")
        .expect("the hop ran");
    assert_audited(&s, &hub);
}

/// One audit event per dead letter, with the fields translate gives its own, as far as known.
fn assert_audited(s: &Scratch, hub: &Hub) {
    hub.audit.flush();
    let log = std::fs::read_to_string(s.dir.join("state/audit.jsonl")).expect("audit log");
    let dead: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|e| e["hop"] == "deliver" && e["decision"] == "dead")
        .collect();
    assert_eq!(dead.len(), 2, "one event per dead letter, once kept: {log}");
    let event = |envelope: &str| {
        dead.iter()
            .find(|e| e["envelope_id"] == envelope)
            .unwrap_or_else(|| panic!("no event for {envelope}: {log}"))
    };
    let e = event("dead-not-canonical");
    assert_eq!(
        (&e["reason"], &e["party"], &e["category"], &e["document"]),
        (
            &"not-canonical".into(),
            &PROVIDER.into(),
            &"care-plan".into(),
            &serde_json::Value::Null
        )
    );
    let e = event("dead-no-category");
    assert_eq!(
        (&e["reason"], &e["party"], &e["category"], &e["document"]),
        (
            &"no-category".into(),
            &PROVIDER.into(),
            &serde_json::Value::Null,
            &"CarePlan@1".into()
        )
    );
}
