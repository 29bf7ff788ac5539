//! Backpressure (`max_backlog`) on the in-memory bus and on the real RabbitMQ: while the
//! `translate` and `deliver` queues hold the bound, ingress refuses new messages as unavailable
//! and keeps nothing of them; once the hops have worked the queues down it admits again. The hub
//! is built without its hops first, so the backlog builds up deterministically.

mod common;

use common::*;
use kaigo_hub::pipeline::backlog;
use kaigo_hub::pipeline::ingress::{Refusal, Submission, accept};
use kaigo_hub::pipeline::{deliver, translate};
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn refuses_at_the_bound_and_admits_once_drained(s: Scratch) {
    let mut cfg = s.config();
    cfg.max_backlog = 3;
    let hub = match kaigo_hub::serve::build(&cfg).await {
        Ok(h) => h,
        Err(e) => panic!(
            "the hub did not build (RabbitMQ at {DEFAULT_URL} is needed for the RabbitMQ case): {e}"
        ),
    };
    kaigo_hub::demo::seed(&hub).expect("demo consents");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(backlog::watch(
        hub.clone(),
        Duration::from_millis(20),
        rx.clone(),
    ));
    let parties = hub.parties.current();
    let hospital = parties.get(HOSPITAL).expect("the hospital party");
    let patient = sample("fhir/patient-jpcore.json");
    let submit = || {
        accept(
            &hub,
            Submission {
                party: hospital,
                bytes: &patient,
                file_name: None,
                correlation_id: None,
                via: "http",
            },
        )
    };
    for i in 0..3 {
        if let Err(r) = submit().await {
            panic!("message {i} refused below the bound: {r:?}");
        }
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub.backlog.waiting() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never saw the 3 waiting messages (saw {})",
            hub.backlog.waiting()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match submit().await {
        Err(Refusal::Unavailable { message }) => {
            assert!(message.contains("max_backlog 3"), "{message}")
        }
        other => panic!("a message over the bound must be refused as unavailable: {other:?}"),
    }
    assert_eq!(hub.metrics.busy.load(Ordering::Relaxed), 1);
    assert_eq!(hub.metrics.accepted.load(Ordering::Relaxed), 3);
    let translate_queue = hub.topology.translate_queue();
    assert_eq!(
        hub.bus.queue_len(&translate_queue).await.expect("depth"),
        3,
        "nothing of the refused message was kept"
    );

    // The hops work the queues down; ingress admits again.
    let hops = [
        tokio::spawn(translate::run(hub.clone(), rx.clone())),
        tokio::spawn(deliver::run(hub.clone(), rx.clone())),
    ];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match submit().await {
            Ok(_) => break,
            Err(Refusal::Unavailable { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("not admitted again after the queues drained: {other:?}"),
        }
    }
    assert_eq!(hub.metrics.accepted.load(Ordering::Relaxed), 4);
    stop.send(true).expect("stop");
    for h in hops {
        let _ = tokio::time::timeout(PATIENCE, h)
            .await
            .expect("a hop stops");
    }
    tokio::time::timeout(PATIENCE, watcher)
        .await
        .expect("the watcher stops")
        .expect("watcher");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_memory_bus_refuses_at_the_bound_and_admits_once_drained() {
    refuses_at_the_bound_and_admits_once_drained(Scratch::memory("backlog", |p| p)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_refuses_at_the_bound_and_admits_once_drained() {
    refuses_at_the_bound_and_admits_once_drained(Scratch::rabbit("backlog", |p| p)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_watches_the_backlog_only_when_bounded() {
    let s = Scratch::memory("backlog-serve", |p| p);
    let mut cfg = s.config();
    cfg.max_backlog = 10;
    let running = s.start_with(&cfg).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while running.hub.backlog.reads() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not start the backlog watcher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    let unbounded = s.start().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(unbounded.hub.backlog.reads(), 0, "no bound, no watcher");
    unbounded.stop().await;
}
