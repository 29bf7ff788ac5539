//! The console's Messages page through real HTTP against a started hub (in-memory bus, archive on,
//! `--demo` accounts): the latest messages, a search POSTed by envelope id, sender and person
//! (the person's numbers never in a URL nor shown back, the search audited with the keyed hash),
//! the trace of a delivered message (each hop, each consent decision, each recipient), and the
//! body view: refused to a viewer (no form, POST 403), shown to a privacy officer who states a
//! reason, and audited naming the operator and the reason. The client is
//! `common::console_http`.

mod common;

use common::console_http::{Client, Page};
use common::*;
use kaigo_hub::config::Config;
use kaigo_hub::serve::{Running, StartOptions};
use kaigo_hub::store::archive::ArchiveKey;
use std::time::Duration;

/// A search POSTed with the session's CSRF token (read from the Messages page).
async fn search(c: &mut Client, q: &str) -> Page {
    let page = c.get("/console/messages").await;
    let csrf = page.csrf();
    c.post(
        "/console/messages",
        &[("csrf", &csrf), ("q", q), ("from", ""), ("to", "")],
    )
    .await
}

fn audit_events(cfg: &Config) -> Vec<serde_json::Value> {
    std::fs::read_to_string(cfg.audit_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn settle(running: &Running) {
    if let Some(a) = &running.hub.archive {
        a.settled(Duration::from_secs(10)).await;
    }
    let audit = running.hub.audit.clone();
    tokio::task::spawn_blocking(move || audit.flush())
        .await
        .expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_are_found_traced_and_their_bodies_shown_only_to_a_privacy_officer_with_a_reason()
{
    let s = Scratch::memory("console-messages", |p| p);
    let key = s.dir.join("keys/archive.key");
    ArchiveKey::read_or_make(&key).expect("archive key");
    let cfg = Config {
        archive_key_file: Some(key),
        ..s.config()
    };
    let running = kaigo_hub::serve::start_with(&cfg, StartOptions { demo: true })
        .await
        .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let envelope = post_sample_patient(running.http_addr).await;
    wait_for_file(&s.out_dir(CARE_MANAGER), "the care manager's copy", |n| {
        n.starts_with(&envelope)
    })
    .await;
    eventually("both copies audited", async || {
        settle(&running).await;
        audit_events(&cfg)
            .iter()
            .filter(|e| e["envelope_id"] == envelope.as_str() && e["decision"] == "delivered")
            .count()
            == 2
    })
    .await;
    let row = format!(r#"<tr data-envelope="{envelope}">"#);

    // A viewer: the latest messages, and searches.
    let mut viewer = Client::signed_in_demo(running.http_addr, "demo-viewer").await;
    let list = viewer.get("/console/messages").await;
    assert_eq!(list.status, 200, "{}", list.body);
    for id in [
        r#"<form id="search-form" class="card" method="post" action="/console/messages">"#,
        r#"<input type="search" name="q" id="q""#,
        r#"<table id="results">"#,
    ] {
        assert!(list.body.contains(id), "{id} in {}", list.body);
    }
    assert!(list.body.contains(&row), "{}", list.body);
    assert!(
        list.body
            .contains(&format!(r#"href="/console/messages/{envelope}""#))
    );
    for q in [
        envelope.as_str(),
        &format!("sender:{HOSPITAL}"),
        "kind:InsuredPerson",
    ] {
        let found = search(&mut viewer, q).await;
        assert_eq!(found.status, 200, "{q}: {}", found.body);
        assert!(found.body.contains(&row), "{q}: {}", found.body);
    }
    let nobody = search(&mut viewer, "sender:nobody-such").await;
    assert!(!nobody.body.contains(&row) && nobody.body.contains(r#"id="no-results""#));
    let bad = search(&mut viewer, "who:what").await;
    assert!(bad.body.contains(r#"id="search-error""#), "{}", bad.body);

    // By person: found, the numbers not shown back, the search audited with the keyed hash.
    let person = format!("{}:{}", PERSON_1.0, PERSON_1.1);
    let by_person = search(&mut viewer, &person).await;
    assert!(by_person.body.contains(&row), "{}", by_person.body);
    assert!(
        !by_person.body.contains(PERSON_1.1),
        "the 被保険者番号 is not shown back"
    );
    let hash = running
        .hub
        .hasher
        .hash(PERSON_1.0, PERSON_1.1)
        .into_string();
    settle(&running).await;
    let searched: Vec<_> = audit_events(&cfg)
        .into_iter()
        .filter(|e| e["reason"] == "search-person")
        .collect();
    assert_eq!(searched.len(), 1, "{searched:?}");
    assert_eq!(searched[0]["actor"], "console:demo-viewer");
    assert_eq!(searched[0]["subject"], hash.as_str());
    assert!(
        !std::fs::read_to_string(cfg.audit_path())
            .unwrap()
            .contains(PERSON_1.1)
    );

    // A search without the CSRF token is refused.
    let forged = viewer
        .post("/console/messages", &[("q", envelope.as_str())])
        .await;
    assert_eq!(forged.status, 403);

    // The trace: each hop, each consent decision, each recipient; no body form for a viewer.
    let trace = viewer.get(&format!("/console/messages/{envelope}")).await;
    assert_eq!(trace.status, 200, "{}", trace.body);
    for part in [
        r#"<ol id="trace">"#.to_string(),
        r#"<li class="step" data-hop="ingress" data-outcome="accepted">"#.into(),
        r#"<li class="step" data-hop="translate" data-outcome="accepted">"#.into(),
        r#"data-hop="consent" data-point="ingress" data-decision="permit""#.into(),
        r#"data-hop="consent" data-point="deliver" data-decision="permit""#.into(),
        format!(
            r#"<li class="delivery" data-recipient="{CARE_MANAGER}" data-outcome="delivered">"#
        ),
        format!(r#"<li class="delivery" data-recipient="{PROVIDER}" data-outcome="delivered">"#),
        r#"<span class="consent-id">demo-"#.into(),
        format!(r#"<dd id="sender">{HOSPITAL}</dd>"#),
    ] {
        assert!(trace.body.contains(&part), "{part} in {}", trace.body);
    }
    assert!(trace.body.contains(r#"<dd id="mapping">"#) && trace.body.contains('@'));
    assert!(!trace.body.contains("body-form"), "{}", trace.body);
    assert!(
        !trace.body.contains("試験"),
        "no personal value in the trace"
    );
    let refused = viewer
        .post(
            &format!("/console/messages/{envelope}/body"),
            &[("csrf", &trace.csrf()), ("reason", "curious")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // A privacy officer: the form, a reason required, then the bodies, audited.
    let mut privacy = Client::signed_in_demo(running.http_addr, "demo-privacy").await;
    let trace = privacy.get(&format!("/console/messages/{envelope}")).await;
    for id in [
        r#"<form id="body-form""#,
        r#"id="reason""#,
        r#"<button id="view-body""#,
    ] {
        assert!(trace.body.contains(id), "{id} in {}", trace.body);
    }
    let csrf = trace.csrf();
    let path = format!("/console/messages/{envelope}/body");
    let no_reason = privacy
        .post(&path, &[("csrf", &csrf), ("reason", "  ")])
        .await;
    assert_eq!(no_reason.status, 400);
    let shown = privacy
        .post(
            &path,
            &[("csrf", &csrf), ("reason", "ticket 42: sender asks")],
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains(r#"<pre id="body">"#));
    assert!(
        shown.body.contains("試験"),
        "the original as sent: {}",
        shown.body
    );
    assert!(
        shown
            .body
            .contains(r#"<pre class="canonical" data-index="0">"#)
    );
    assert!(shown.body.contains("InsuredPerson@1"));
    settle(&running).await;
    let views: Vec<_> = audit_events(&cfg)
        .into_iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("view-body:"))
        })
        .collect();
    assert_eq!(views.len(), 1, "one person named, one event: {views:?}");
    assert_eq!(views[0]["actor"], "console:demo-privacy");
    assert_eq!(views[0]["reason"], "view-body: ticket 42: sender asks");
    assert_eq!(views[0]["envelope_id"], envelope.as_str());
    assert_eq!(views[0]["subject"], hash.as_str());
    assert_eq!(views[0]["hop"], "admin");
    running.stop().await;
}
