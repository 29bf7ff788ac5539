//! The web console used as a person would, in a real headless Chromium (tests/common/browser.rs),
//! against a running hub fed with the shipped samples the way `serve --demo` feeds them (the demo
//! consents: the second sample person has not consented to the municipality, one person of the
//! センター送信 file not at all), once on the embedded memory bus and once on RabbitMQ. The demo
//! accounts (`demo-viewer`, `demo-operator`, `demo-privacy`, `demo-admin`) sign in; every page
//! is checked by the element ids of the console's contract and photographed to
//! `target/screenshots/<test>/<step>.png`.
//!
//! Issue 18's list: sign in; the flow with counts after the samples are sent (and refreshed while
//! you look); a message found by envelope id and by 被保険者番号, its trace with each consent
//! decision; a quarantined message previewed and replayed after consent is granted, then
//! delivered; a viewer who cannot see bodies or replay; an audit event for each body view.

mod common;

use common::browser::Browser;
use common::{MUNICIPALITY, PERSON_2, Scratch, files, repo};
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::pipeline::Hub;
use kaigo_hub::serve::{Running, StartOptions};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A console hub: the demo accounts, an archive key apart from the store, the demo consents and
/// links, every sample fed in, and the hops settled.
struct Console {
    s: Scratch,
    running: Running,
    base: String,
}

impl Console {
    async fn start(tag: &str, rabbit: bool) -> Console {
        let s = if rabbit {
            Scratch::rabbit(tag, |p| p)
        } else {
            Scratch::memory(tag, |p| p)
        };
        let cfg = s.config();
        let running = match kaigo_hub::serve::start_with(&cfg, StartOptions { demo: true }).await {
            Ok(r) => r,
            Err(e) => panic!(
                "the console hub did not start: {e}{}",
                if rabbit {
                    " (RabbitMQ must listen on 127.0.0.1:5672: `rabbitmq-server -detached`)"
                } else {
                    ""
                }
            ),
        };
        kaigo_hub::demo::seed(&running.hub).expect("the demo consents and links");
        let report = kaigo_hub::demo::feed(&running.hub, &repo().join("samples")).await;
        assert!(
            report.iter().all(|l| !l.contains("refused:")
                && !l.contains("not found")
                && !l.contains("could not")),
            "every sample goes in: {report:#?}"
        );
        settle(&running.hub, 12).await;
        let base = format!("http://{}", running.http_addr);
        Console { s, running, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hub(&self) -> &Hub {
        &self.running.hub
    }

    /// The audit events so far (flushed first).
    fn audit(&self) -> Vec<serde_json::Value> {
        self.hub().audit.flush();
        common::audit_events(&self.s)
    }

    async fn stop(self) {
        self.running.stop().await;
        drop(self.s);
    }
}

/// The hub's counts as the Flow page names them.
fn counts(hub: &Hub) -> [(&'static str, u64); 5] {
    let m = &hub.metrics;
    [
        ("accepted", m.accepted.load(Relaxed)),
        ("translated", m.translated.load(Relaxed)),
        ("delivered", m.delivered.load(Relaxed)),
        ("quarantine", m.quarantined.load(Relaxed)),
        ("dead", m.dead.load(Relaxed)),
    ]
}

/// Waits (bounded) until at least `accepted` messages were accepted and nothing has moved for
/// two seconds.
async fn settle(hub: &Hub, accepted: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = counts(hub);
    let mut still_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counts(hub);
        if now != last {
            last = now;
            still_since = tokio::time::Instant::now();
        } else if now[0].1 >= accepted && still_since.elapsed() >= Duration::from_secs(2) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub did not settle within 60 s: {now:?}"
        );
    }
}

/// Signs `who` (a demo account) in through the sign-in form; lands on the Flow page.
async fn sign_in(b: &Browser, c: &Console, who: &str) {
    b.goto(&c.url("/console/login")).await;
    b.type_into("input#username", who).await;
    b.type_into("input#password", &format!("{who}-password"))
        .await;
    b.click("button#sign-in").await;
    b.wait_url("signed in, the Flow page", |u| u.ends_with("/console/flow"))
        .await;
    let operator = b.text("#operator").await;
    assert!(operator.contains(who), "#operator names {who}: {operator}");
}

/// The number shown in `css` (waited for).
async fn number(b: &Browser, css: &str) -> u64 {
    let t = b.text(css).await;
    t.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{css}` shows `{t}`, not a number"))
}

// ------------------------------------------------------------------------------------------------
// Sign in, and the flow with its counts
// ------------------------------------------------------------------------------------------------

async fn sign_in_and_watch_the_flow(tag: &str, rabbit: bool) {
    let c = Console::start(tag, rabbit).await;
    let b = Browser::open(tag).await;

    // Not signed in: every page leads to the sign-in form.
    b.goto(&c.url("/console")).await;
    b.wait_url("to the sign-in page", |u| u.ends_with("/console/login"))
        .await;
    b.goto(&c.url("/console/flow")).await;
    b.wait_url("to the sign-in page", |u| u.ends_with("/console/login"))
        .await;
    b.find("form#sign-in-form").await;
    b.screenshot("01-sign-in").await;

    // A wrong password: an error, no session.
    b.type_into("input#username", "demo-operator").await;
    b.type_into("input#password", "not-the-password").await;
    b.click("button#sign-in").await;
    let error = b.text("#sign-in-error").await;
    assert!(!error.is_empty(), "the error says something");
    assert!(
        !error.contains("not-the-password"),
        "the error does not echo the password: {error}"
    );
    assert!(b.url().await.ends_with("/console/login"));
    b.screenshot("02-wrong-password").await;

    sign_in(&b, &c, "demo-operator").await;
    let operator = b.text("#operator").await;
    assert!(
        operator.contains("operator"),
        "the role is shown: {operator}"
    );
    let cookies = b.cookies().await;
    let session = cookies
        .iter()
        .find(|k| k["name"] == "kaigo_console")
        .unwrap_or_else(|| panic!("the session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    for nav in ["a#nav-flow", "a#nav-messages", "a#nav-parked"] {
        b.find(nav).await;
    }

    // The flow with the counts of the samples just sent.
    b.find("svg#flow").await;
    for hop in ["ingress", "translate", "deliver"] {
        b.find(&format!(r#"svg#flow g[data-hop="{hop}"]"#)).await;
    }
    let hub_counts = counts(c.hub());
    let place = |name: &str| match name {
        "accepted" => r#"g[data-hop="ingress"] text[data-count="accepted"]"#.to_string(),
        "translated" => r#"g[data-hop="translate"] text[data-count="translated"]"#.to_string(),
        "delivered" => r#"g[data-hop="deliver"] text[data-count="delivered"]"#.to_string(),
        other => format!(r#"svg#flow text[data-count="{other}"]"#),
    };
    for (name, value) in hub_counts {
        assert_eq!(
            number(&b, &place(name)).await,
            value,
            "{name}: the page shows the hub's count"
        );
    }
    let [
        (_, accepted),
        (_, translated),
        (_, delivered),
        (_, quarantined),
        _,
    ] = hub_counts;
    assert!(accepted >= 12, "every sample was accepted: {accepted}");
    assert!(translated > 0 && delivered > 0, "{hub_counts:?}");
    assert!(
        quarantined >= 2,
        "the demo's refusals are in quarantine: {hub_counts:?}"
    );
    b.screenshot("03-flow").await;

    // Refreshed while you look: one more message, and the page shows it without a reload.
    common::post_sample_patient(c.running.http_addr).await;
    let shown = b
        .wait_text(&place("accepted"), "the new message counted", |t| {
            t.trim().parse::<u64>().is_ok_and(|n| n == accepted + 1)
        })
        .await;
    assert_eq!(shown.trim(), (accepted + 1).to_string());
    assert!(b.url().await.ends_with("/console/flow"), "no navigation");
    b.screenshot("04-flow-refreshed").await;

    // Signing out ends the session.
    b.click("button#sign-out").await;
    b.wait_url("signed out", |u| u.ends_with("/console/login"))
        .await;
    b.goto(&c.url("/console/flow")).await;
    b.wait_url("signed out for good", |u| u.ends_with("/console/login"))
        .await;
    b.screenshot("05-signed-out").await;
    drop(b);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_and_watch_the_flow_on_the_memory_bus() {
    sign_in_and_watch_the_flow("e2e-flow-mem", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_and_watch_the_flow_on_rabbitmq() {
    sign_in_and_watch_the_flow("e2e-flow-amqp", true).await;
}

/// `POST path` with `fields` from inside the signed-in page (its cookie; the page's own CSRF
/// token from the sign-out form added), as a crafted form would; the answer's status.
async fn post_from_page(b: &Browser, path: &str, fields: &[(&str, &str)]) -> u64 {
    let script = r#"
        const csrf = document.querySelector('#sign-out-form input[name=csrf]');
        const body = new URLSearchParams(arguments[1]);
        if (csrf) body.append('csrf', csrf.value);
        const x = new XMLHttpRequest();
        x.open('POST', arguments[0], false);
        x.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');
        x.send(body.toString());
        return x.status;"#;
    let pairs: Vec<serde_json::Value> = fields
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    let status = b
        .execute(
            script,
            vec![serde_json::json!(path), serde_json::json!(pairs)],
        )
        .await;
    status
        .as_u64()
        .unwrap_or_else(|| panic!("POST {path}: no status ({status})"))
}

/// Goes to the Dead and quarantine page through the nav.
async fn open_parked(b: &Browser) {
    b.click("a#nav-parked").await;
    b.wait_url("the Dead and quarantine page", |u| {
        u.ends_with("/console/parked")
    })
    .await;
}

// ------------------------------------------------------------------------------------------------
// A viewer: metadata only, no replay
// ------------------------------------------------------------------------------------------------

async fn a_viewer_cannot_replay(tag: &str, rabbit: bool) {
    let c = Console::start(tag, rabbit).await;
    let b = Browser::open(tag).await;
    sign_in(&b, &c, "demo-viewer").await;
    open_parked(&b).await;
    // The viewer sees what is parked and why…
    b.find(r#"section.reason[data-queue="quarantine"][data-reason="consent-denied"]"#)
        .await;
    let held = b
        .attribute("tr[data-envelope]", "data-envelope")
        .await
        .expect("a parked row names its envelope");
    // …but has nothing to replay with.
    for css in [
        "#replay",
        "#preview",
        "button.replay-reason",
        "input[type=checkbox][name=envelope]",
    ] {
        b.assert_absent(css, "a viewer may not replay").await;
    }
    b.screenshot("01-parked-without-replay").await;
    let parked_before = c.hub().metrics.quarantined.load(Relaxed);
    // A crafted form with a valid CSRF token is refused all the same.
    for path in ["/console/parked/preview", "/console/parked/replay"] {
        let status = post_from_page(&b, path, &[("envelope", held.as_str())]).await;
        assert_eq!(status, 403, "{path} is refused to a viewer");
    }
    let status = post_from_page(
        &b,
        "/console/parked/replay",
        &[("reason", "quarantine/consent-denied")],
    )
    .await;
    assert_eq!(
        status, 403,
        "replaying a whole reason is refused to a viewer"
    );
    tokio::time::sleep(common::QUIET).await;
    assert!(
        !c.audit().iter().any(|e| e["hop"] == "replay"
            || (e["actor"] == "console:demo-viewer" && e["envelope_id"].is_string())),
        "nothing was replayed, and the viewer touched no message"
    );
    assert_eq!(
        c.hub().metrics.quarantined.load(Relaxed),
        parked_before,
        "nothing moved"
    );
    // The same page for an operator has the buttons (the check above is the role's).
    drop(b);
    let b = Browser::open(&format!("{tag}-operator")).await;
    sign_in(&b, &c, "demo-operator").await;
    open_parked(&b).await;
    for css in ["#replay", "#preview", "button.replay-reason"] {
        b.find(css).await;
    }
    drop(b);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_cannot_replay_on_the_memory_bus() {
    a_viewer_cannot_replay("e2e-viewer-mem", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_cannot_replay_on_rabbitmq() {
    a_viewer_cannot_replay("e2e-viewer-amqp", true).await;
}

// ------------------------------------------------------------------------------------------------
// Dead and quarantine: preview, then replay after consent is granted, and see it delivered
// ------------------------------------------------------------------------------------------------

/// Ticks `envelope` and the municipality as the only recipient, and asks for a preview.
async fn preview(b: &Browser, envelope: &str) {
    open_parked(b).await;
    b.click(&format!(
        r#"tr[data-envelope="{envelope}"] input[type=checkbox][name=envelope][value="{envelope}"]"#
    ))
    .await;
    b.click(&format!(
        r#"input[type=checkbox][name=recipient][value="{MUNICIPALITY}"]"#
    ))
    .await;
    b.click("#preview").await;
    b.wait_url("the preview", |u| u.ends_with("/console/parked/preview"))
        .await;
    b.find(&format!(r#"table#preview tr[data-envelope="{envelope}"]"#))
        .await;
}

async fn preview_and_replay_after_consent(tag: &str, rabbit: bool) {
    let c = Console::start(tag, rabbit).await;
    // The demo's refusal: the second person's care plan copies for the municipality.
    let denied: Vec<String> = c
        .audit()
        .into_iter()
        .filter(|e| e["decision"] == "deny" && e["party"] == MUNICIPALITY)
        .filter_map(|e| e["envelope_id"].as_str().map(str::to_string))
        .collect();
    let held = denied
        .first()
        .unwrap_or_else(|| panic!("the demo's refusal for {MUNICIPALITY} is audited"))
        .clone();
    let out = c.s.out_dir(MUNICIPALITY);
    let before = files(&out).len();

    let b = Browser::open(tag).await;
    sign_in(&b, &c, "demo-operator").await;
    open_parked(&b).await;
    let row = format!(r#"section.reason[data-reason="consent-denied"] tr[data-envelope="{held}"]"#);
    b.find(&row).await;
    let copies = b.find_all(&row).await.len();
    assert!(copies >= 1);
    let location = b.text(&format!("{row} td.location")).await;
    assert!(!location.is_empty(), "the row says where and why");
    b.screenshot("01-parked").await;

    // Before consent: the preview says the municipality would still be refused.
    preview(&b, &held).await;
    let refused = format!(
        r#"table#preview tr[data-envelope="{held}"] .decision[data-decision="deny"][data-to="{MUNICIPALITY}"]"#
    );
    b.find(&refused).await;
    b.screenshot("02-preview-denied").await;

    // The person consents; the preview now permits, naming the consent.
    common::grant(
        c.hub(),
        "e2e-p2-municipality",
        PERSON_2,
        Grantee::Kind(PartyKind::Municipality),
        &[Category::CarePlan],
    )
    .await;
    preview(&b, &held).await;
    b.find(&format!(
        r#"table#preview tr[data-envelope="{held}"] .decision[data-decision="permit"][data-to="{MUNICIPALITY}"][data-consent="e2e-p2-municipality"]"#
    ))
    .await;
    b.assert_absent(&refused, "the consent now permits").await;
    b.screenshot("03-preview-permitted").await;
    assert_eq!(
        files(&out).len(),
        before,
        "a preview delivers nothing (it is a dry run)"
    );

    // Replay what was previewed, and see it delivered.
    let delivered_before = c.hub().metrics.delivered.load(Relaxed);
    b.click("#replay").await;
    let result = b.find("#replay-result").await;
    assert!(!b.text_of(&result).await.is_empty());
    assert!(
        number(&b, r#"#replay-result [data-count="replayed"]"#).await >= 1,
        "the replay put the message back"
    );
    b.screenshot("04-replayed").await;
    common::eventually("the replayed copies delivered", async || {
        files(&out).len() >= before + copies
    })
    .await;
    tokio::time::sleep(common::QUIET).await;
    assert_eq!(
        files(&out).len(),
        before + copies,
        "each held copy delivered once to {MUNICIPALITY}"
    );
    assert!(
        c.audit().iter().any(|e| e["envelope_id"] == held.as_str()
            && e["decision"] == "delivered"
            && e["party"] == MUNICIPALITY),
        "the delivery is audited"
    );
    assert!(
        c.audit()
            .iter()
            .any(|e| e["hop"] == "replay" && e["actor"] == "console:demo-operator"),
        "the replay is audited naming the operator"
    );
    // The Flow page counts the delivery; the parked page no longer lists the copy.
    let delivered = c.hub().metrics.delivered.load(Relaxed);
    assert!(delivered >= delivered_before + copies as u64);
    b.click("a#nav-flow").await;
    let shown = b
        .wait_text(
            r#"g[data-hop="deliver"] text[data-count="delivered"]"#,
            "the delivery counted",
            |t| t.trim() == delivered.to_string(),
        )
        .await;
    assert_eq!(shown.trim(), delivered.to_string());
    b.screenshot("05-flow-after-replay").await;
    open_parked(&b).await;
    b.find("section.reason").await;
    b.assert_absent(&row, "the replayed copy left quarantine")
        .await;
    b.screenshot("06-parked-after-replay").await;
    drop(b);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preview_and_replay_a_quarantined_message_on_the_memory_bus() {
    preview_and_replay_after_consent("e2e-replay-mem", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preview_and_replay_a_quarantined_message_on_rabbitmq() {
    preview_and_replay_after_consent("e2e-replay-amqp", true).await;
}
