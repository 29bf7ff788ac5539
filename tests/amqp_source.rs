//! The AMQP vendor source of a hub running in-process on the in-memory bus: a vendor publishes
//! its XML 被保険者証 to `<prefix>.vendor.in`. With the broker-validated `user_id` of a party
//! (`kaigo-vendor-131011`) and a consent for the card's subject, the message is consumed and
//! goes on through ingress to translate; without a `user_id`, or with one no party publishes as,
//! it ends in the dead-letter queue with `x-kaigo-error` saying why — and a header claiming a
//! source is never believed.

use kaigo_hub::bus::{Consumer, Props};
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyKind, Subject};
use kaigo_hub::serve::{self, Running};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn hub(tag: &str) -> (Running, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "kaigo-amqp-{tag}-{}-{}",
        std::process::id(),
        kaigo_hub::pipeline::clock::envelope_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join("parties.yaml")).unwrap();
    let moved = text.replace(": data/", &format!(": {}/", dir.join("data").display()));
    std::fs::write(dir.join("parties.yaml"), moved).unwrap();
    let cfg = Config {
        http_addr: "127.0.0.1:0".into(),
        mllp_addr: "127.0.0.1:0".into(),
        data_dir: dir.join("state"),
        parties: dir.join("parties.yaml"),
        mappings: repo().join("mappings"),
        ..Default::default()
    };
    (serve::start(&cfg).await.expect("hub starts"), dir)
}

fn card() -> Vec<u8> {
    std::fs::read(repo().join("samples/xml/card-wareki.xml")).unwrap()
}

/// The subject of the card, as its golden canonical document states it.
fn card_subject() -> Subject {
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("samples/xml/card-wareki.insurance-card.json")).unwrap(),
    )
    .unwrap();
    let s = &golden["subject"];
    Subject::new(
        s["insurer_number"].as_str().unwrap(),
        s["insured_number"].as_str().unwrap(),
    )
    .unwrap()
}

async fn publish(running: &Running, user_id: Option<&str>, message_id: &str) {
    let mut props = Props {
        message_id: Some(message_id.into()),
        content_type: Some("application/xml".into()),
        user_id: user_id.map(String::from),
        ..Default::default()
    };
    // A forged claim in a header must change nothing.
    props
        .headers
        .insert("x-kaigo-source".into(), "0300000005".into());
    running
        .hub
        .bus
        .publish(
            &running.hub.topology.vendor_in(),
            "xml.insurance-card",
            &props,
            &card(),
        )
        .await
        .unwrap();
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next(c: &mut Box<dyn Consumer>) -> kaigo_hub::bus::Delivery {
    tokio::time::timeout(PATIENCE, c.next())
        .await
        .expect("a message in time")
        .expect("consumer open")
        .expect("delivery")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vendor_card_with_its_broker_user_and_consent_goes_on() {
    let (running, dir) = hub("accepted").await;
    running
        .hub
        .store
        .consents()
        .grant(Consent {
            id: "amqp-test-1".parse().unwrap(),
            subject: card_subject(),
            grantee: Grantee::Kind(PartyKind::Platform),
            categories: vec![Category::Certification],
            valid_from: IsoDate::parse("2000-01-01").unwrap(),
            valid_to: None,
            purpose: None,
            revoked_at: None,
        })
        .unwrap();
    publish(&running, Some("kaigo-vendor-131011"), "vendor-msg-1").await;

    let hub = running.hub.clone();
    eventually("accepted and translated", async || {
        hub.metrics.accepted.load(Ordering::Relaxed) == 1
            && hub.metrics.translated.load(Ordering::Relaxed) >= 1
    })
    .await;
    // Ingress mapped it; the translate hop of the same process took that result.
    assert_eq!(hub.metrics.mapped_once.load(Ordering::Relaxed), 1);
    assert_eq!(hub.handoff.held(), (0, 0));
    let t = &running.hub.topology;
    assert_eq!(
        running.hub.bus.queue_len(&t.vendor_queue()).await.unwrap(),
        0
    );
    assert_eq!(running.hub.bus.queue_len(&t.dead_queue()).await.unwrap(), 0);
    assert_eq!(
        running
            .hub
            .bus
            .queue_len(&t.quarantine_queue())
            .await
            .unwrap(),
        0
    );

    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vendor_card_without_consent_is_quarantined_and_consumed() {
    let (running, dir) = hub("no-consent").await;
    publish(&running, Some("kaigo-vendor-131011"), "vendor-msg-2").await;
    let t = running.hub.topology.clone();
    let mut q = running
        .hub
        .bus
        .consume(&t.quarantine_queue(), 1)
        .await
        .unwrap();
    let d = next(&mut q).await;
    assert_eq!(
        d.props.header("x-kaigo-source"),
        Some("131011"),
        "the broker user's party"
    );
    assert_eq!(d.props.correlation_id.as_deref(), Some("vendor-msg-2"));
    assert!(
        d.props
            .header("x-kaigo-reason")
            .is_some_and(|r| r.starts_with("consent-denied")),
        "{:?}",
        d.props.headers
    );
    assert_eq!(
        running.hub.bus.queue_len(&t.vendor_queue()).await.unwrap(),
        0
    );
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 0);
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_without_a_known_broker_user_are_dead_lettered_with_the_reason() {
    let (running, dir) = hub("unauthenticated").await;
    let t = running.hub.topology.clone();
    let mut dead = running.hub.bus.consume(&t.dead_queue(), 1).await.unwrap();

    publish(&running, None, "no-user").await;
    let d = next(&mut dead).await;
    let error = d
        .props
        .header("x-kaigo-error")
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("no user_id"), "{error}");
    assert_eq!(d.props.correlation_id.as_deref(), Some("no-user"));
    assert_eq!(
        d.props.header("x-kaigo-source"),
        None,
        "the forged header is gone"
    );
    assert_eq!(
        d.props.user_id, None,
        "a republish never carries the vendor's user_id"
    );
    assert_eq!(d.body, card());
    d.ack().await.unwrap();

    publish(&running, Some("kaigo-vendor-999999"), "unknown-user").await;
    let d = next(&mut dead).await;
    let error = d
        .props
        .header("x-kaigo-error")
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("kaigo-vendor-999999"), "{error}");
    assert_eq!(d.props.correlation_id.as_deref(), Some("unknown-user"));
    d.ack().await.unwrap();

    let hub = running.hub.clone();
    let vendor = t.vendor_queue();
    eventually("vendor queue drained", async || {
        hub.bus.queue_len(&vendor).await.unwrap() == 0
    })
    .await;
    // A message handed to the source is not "ready" any more, so the queue looks drained
    // before the source has counted and acked it.
    let metrics = running.hub.metrics.clone();
    eventually("both refusals counted", async || {
        metrics.rejected.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 0);
    assert_eq!(running.hub.metrics.rejected.load(Ordering::Relaxed), 2);
    assert_eq!(
        running
            .hub
            .bus
            .queue_len(&t.translate_queue())
            .await
            .unwrap(),
        0
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
