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
use common::{Scratch, repo};
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
