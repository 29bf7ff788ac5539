//! Quarantine keeps personal data only as long as it must (issue 13): a quarantined copy older
//! than `quarantine_keep_days` is dropped by the hub's retention pass with an audit event
//! (`admin`, decision `expired`, the reason it was held for), counted in
//! `kaigo_quarantine_expired_total`; younger copies stay, in order, unchanged; a copy an older
//! hub quarantined without `x-kaigo-quarantined-at` is stamped and kept. Dead letters likewise,
//! after `dead_keep_days`, from `x-kaigo-dead-at` (which the hub writes on every dead letter; one
//! the broker dead-lettered itself is stamped at the first pass). On the real RabbitMQ, under a
//! topology prefix of the test's own.

mod common;

use common::*;
use kaigo_hub::bus::Props;
use kaigo_hub::pipeline::replay::Parked;
use kaigo_hub::pipeline::retention::{self, Pruned};
use kaigo_hub::pipeline::{Hub, clock};
use std::sync::atomic::Ordering;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

fn parked(envelope: &str, quarantined_at: Option<String>, subject: &str) -> Props {
    let mut p = Props {
        message_id: Some(envelope.into()),
        ..Props::default()
    };
    for (k, v) in [
        ("x-kaigo-source", CARE_MANAGER),
        ("x-kaigo-reason", "consent-denied:no-consent"),
        ("x-kaigo-document", "CarePlan@1"),
        ("x-kaigo-category", "care-plan"),
        ("x-kaigo-subject", subject),
    ] {
        p.headers.insert(k.into(), v.into());
    }
    if let Some(at) = quarantined_at {
        p.headers.insert("x-kaigo-quarantined-at".into(), at);
    }
    p
}

/// The hub's audit log, and its `expired` events.
fn expired_events(s: &Scratch, hub: &Hub) -> (String, Vec<serde_json::Value>) {
    hub.audit.flush();
    let log = std::fs::read_to_string(s.dir.join("state/audit.jsonl")).expect("audit log");
    let expired = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["decision"] == "expired")
        .collect();
    (log, expired)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_older_than_quarantine_keep_days_is_dropped_with_an_audit_event_and_the_rest_stay() {
    let s = Scratch::rabbit("retention", |p| p);
    let hub = s.build().await;
    let t = hub.topology.clone();
    let hash = hub.subject_hash(&subject(PERSON_1));
    for (envelope, at) in [
        ("old", Some(clock::rfc3339_before(40 * DAY))),
        ("young", Some(clock::rfc3339_before(2 * DAY))),
        ("unstamped", None),
    ] {
        hub.bus
            .publish(
                &t.quarantine(),
                "CarePlan@1",
                &parked(envelope, at, &hash),
                b"{}",
            )
            .await
            .expect("quarantined");
    }

    let done = retention::prune(&hub, Parked::Quarantine, 30 * DAY)
        .await
        .expect("prune");
    assert_eq!(
        done,
        Pruned {
            expired: 1,
            kept: 1,
            stamped: 1
        }
    );
    assert_eq!(hub.metrics.quarantine_expired.load(Ordering::Relaxed), 1);
    assert!(
        hub.metrics
            .render()
            .contains("kaigo_quarantine_expired_total 1"),
        "{}",
        hub.metrics.render()
    );

    // What is left, in the order it was: the young copy unchanged, the other stamped now.
    let mut c = hub
        .bus
        .consume(&t.quarantine_queue(), 10)
        .await
        .expect("consume");
    let mut left = Vec::new();
    for _ in 0..2 {
        let d = tokio::time::timeout(PATIENCE, c.next())
            .await
            .expect("in time")
            .expect("a message")
            .expect("ok");
        left.push(d.props.clone());
        d.ack().await.expect("ack");
    }
    assert_eq!(hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(), 0);
    assert_eq!(left[0].message_id.as_deref(), Some("young"));
    assert_eq!(
        left[0],
        parked(
            "young",
            left[0].header("x-kaigo-quarantined-at").map(String::from),
            &hash
        )
    );
    assert_eq!(left[1].message_id.as_deref(), Some("unstamped"));
    let stamped = left[1]
        .header("x-kaigo-quarantined-at")
        .expect("stamped")
        .to_string();
    assert!(clock::is_rfc3339(&stamped), "{stamped}");
    assert!(stamped.as_str() > clock::rfc3339_before(Duration::from_secs(600)).as_str());

    // The drop is in the audit log, with the reason and the subject's hash, no number.
    let (log, expired) = expired_events(&s, &hub);
    assert_eq!(expired.len(), 1, "{log}");
    let e = &expired[0];
    assert_eq!(e["envelope_id"], "old");
    assert_eq!(e["hop"], "admin");
    assert_eq!(e["reason"], "consent-denied:no-consent");
    assert_eq!(e["subject"], hash.as_str());
    assert_eq!(e["party"], CARE_MANAGER);
    assert!(
        !log.contains(PERSON_1.1),
        "a raw 被保険者番号 in the audit log"
    );

    // Nothing older than the retention is left: a second pass drops nothing.
    let again = retention::prune(&hub, Parked::Quarantine, 30 * DAY)
        .await
        .expect("prune");
    assert_eq!(again.expired, 0);
}

/// Dead letters hold personal data too: one older than `dead_keep_days` is dropped with its
/// audit event (actor `dead-retention`), a young one stays, one without `x-kaigo-dead-at` (as the
/// broker dead-letters after too many deliveries) is stamped and kept; quarantine is not touched.
/// The hub stamps every dead letter it makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_older_than_dead_keep_days_is_dropped_with_an_audit_event() {
    let s = Scratch::rabbit("retention-dead", |p| p);
    let hub = s.build().await;
    let t = hub.topology.clone();
    let hash = hub.subject_hash(&subject(PERSON_1));
    let dead = |envelope: &str, at: Option<String>| {
        let mut p = parked(envelope, None, &hash);
        p.headers
            .insert("x-kaigo-reason".into(), "mapping-failed".into());
        if let Some(at) = at {
            p.headers.insert("x-kaigo-dead-at".into(), at);
        }
        p
    };
    for (envelope, at) in [
        ("old-dead", Some(clock::rfc3339_before(40 * DAY))),
        ("young-dead", Some(clock::rfc3339_before(2 * DAY))),
        ("broker-dead", None),
    ] {
        hub.bus
            .publish(&t.dead(), "csv", &dead(envelope, at), b"x")
            .await
            .expect("dead-lettered");
    }
    hub.bus
        .publish(
            &t.quarantine(),
            "CarePlan@1",
            &parked("held", Some(clock::rfc3339_before(40 * DAY)), &hash),
            b"{}",
        )
        .await
        .expect("quarantined");

    let done = retention::prune(&hub, Parked::Dead, 30 * DAY)
        .await
        .expect("prune");
    assert_eq!(
        done,
        Pruned {
            expired: 1,
            kept: 1,
            stamped: 1
        }
    );
    assert_eq!(hub.metrics.dead_expired.load(Ordering::Relaxed), 1);
    assert_eq!(hub.metrics.quarantine_expired.load(Ordering::Relaxed), 0);
    // The two kept ones are back once the pass's consumer has let go of them.
    eventually(
        "the young and the stamped dead letters back in the queue",
        async || hub.bus.queue_len(&t.dead_queue()).await.unwrap() == 2,
    )
    .await;
    assert_eq!(
        hub.bus.queue_len(&t.quarantine_queue()).await.unwrap(),
        1,
        "quarantine has its own setting"
    );
    let (log, expired) = expired_events(&s, &hub);
    assert_eq!(expired.len(), 1, "{log}");
    assert_eq!(expired[0]["envelope_id"], "old-dead");
    assert_eq!(expired[0]["actor"], "dead-retention");
    assert_eq!(expired[0]["reason"], "mapping-failed");
    assert_eq!(expired[0]["subject"], hash.as_str());

    // Every dead letter the hub makes says when.
    hub.dead(&Props::default(), b"y", "mapping-failed", "record 2: why")
        .await
        .expect("dead-lettered");
    let mut c = hub.bus.consume(&t.dead_queue(), 10).await.expect("consume");
    let mut stamps = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(PATIENCE, c.next())
            .await
            .expect("in time")
            .expect("a message")
            .expect("ok");
        stamps.push(d.props.header("x-kaigo-dead-at").map(String::from));
        d.ack().await.expect("ack");
    }
    assert!(
        stamps
            .iter()
            .all(|a| a.as_deref().is_some_and(clock::is_rfc3339)),
        "{stamps:?}"
    );
}
