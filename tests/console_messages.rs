//! The console's Messages page through real HTTP against a started hub (in-memory bus, archive on,
//! `--demo` accounts): the latest messages, a search POSTed by envelope id, sender and person
//! (the person's numbers never in a URL nor shown back, the search audited with the keyed hash),
//! the trace of a delivered message (each hop, each consent decision, each recipient), and the
//! body view: refused to a viewer (no form, POST 403), shown to a privacy officer who states a
//! reason, and audited naming the operator and the reason. A small cookie-keeping client is
//! written here, as in `console_auth.rs`.

mod common;

use common::*;
use kaigo_hub::config::Config;
use kaigo_hub::serve::{Running, StartOptions};
use kaigo_hub::store::archive::ArchiveKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

struct Browser {
    hub: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(hub: SocketAddr) -> Browser {
        Browser {
            hub,
            cookies: BTreeMap::new(),
        }
    }

    async fn request(&mut self, method: &str, path: &str, form: Option<String>) -> Page {
        let mut s = tokio::net::TcpStream::connect(self.hub)
            .await
            .expect("connect to the hub");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.hub
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        let body = form.unwrap_or_default();
        if method == "POST" {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, s.read_to_end(&mut raw))
            .await
            .expect("an answer in time")
            .expect("read");
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header end");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let mut location = None;
        for (name, value) in lines.filter_map(|l| l.split_once(':')) {
            let value = value.trim();
            if name.eq_ignore_ascii_case("location") {
                location = Some(value.to_string());
            }
            if name.eq_ignore_ascii_case("set-cookie") {
                let (pair, attrs) = value.split_once(';').unwrap_or((value, ""));
                let (k, v) = pair.split_once('=').expect("name=value");
                if v.is_empty() || attrs.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        Page {
            status,
            location,
            body: String::from_utf8_lossy(&raw[end + 4..]).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None).await
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.request("POST", path, Some(form)).await
    }

    async fn sign_in(hub: SocketAddr, name: &str) -> Browser {
        let mut b = Browser::new(hub);
        let form = b.get("/console/login").await;
        let csrf = form.csrf();
        let password = format!("{name}-password");
        let done = b
            .post(
                "/console/login",
                &[("csrf", &csrf), ("username", name), ("password", &password)],
            )
            .await;
        assert_eq!(
            (done.status, done.location.as_deref()),
            (303, Some("/console/flow")),
            "{name} signs in: {}",
            done.body
        );
        b
    }

    /// A search POSTed with the session's CSRF token (read from the Messages page).
    async fn search(&mut self, q: &str) -> Page {
        let page = self.get("/console/messages").await;
        let csrf = page.csrf();
        self.post(
            "/console/messages",
            &[("csrf", &csrf), ("q", q), ("from", ""), ("to", "")],
        )
        .await
    }
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
    let mut viewer = Browser::sign_in(running.http_addr, "demo-viewer").await;
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
        let found = viewer.search(q).await;
        assert_eq!(found.status, 200, "{q}: {}", found.body);
        assert!(found.body.contains(&row), "{q}: {}", found.body);
    }
    let nobody = viewer.search("sender:nobody-such").await;
    assert!(!nobody.body.contains(&row) && nobody.body.contains(r#"id="no-results""#));
    let bad = viewer.search("who:what").await;
    assert!(bad.body.contains(r#"id="search-error""#), "{}", bad.body);

    // By person: found, the numbers not shown back, the search audited with the keyed hash.
    let person = format!("{}:{}", PERSON_1.0, PERSON_1.1);
    let by_person = viewer.search(&person).await;
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
    let mut privacy = Browser::sign_in(running.http_addr, "demo-privacy").await;
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
