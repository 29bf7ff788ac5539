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
use common::{MUNICIPALITY, PERSON_1, PERSON_2, Scratch, files, repo};
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
    /// `demo::feed`'s report: one line per sample (`<file> from <party>: accepted as <envelope> …`).
    fed: Vec<String>,
}

impl Console {
    async fn start(tag: &str, rabbit: bool) -> Console {
        let s = if rabbit {
            Scratch::rabbit(tag, |p| p)
        } else {
            Scratch::memory(tag, |p| p)
        };
        let mut cfg = s.config();
        let key = s.dir.join("keys/archive.key");
        std::fs::create_dir_all(key.parent().expect("a folder")).expect("keys folder");
        // 32 bytes as hex; synthetic, for this test's archive only.
        std::fs::write(&key, "4b".repeat(32)).expect("write the archive key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A key others may read is refused (key_file::check_private).
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("the key is the hub's alone");
        }
        cfg.archive_key_file = Some(key);
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
        Console {
            s,
            running,
            base,
            fed: report,
        }
    }

    /// The envelope id `demo::feed` reported for `sample`.
    fn envelope_of(&self, sample: &str) -> String {
        self.fed
            .iter()
            .find(|l| l.starts_with(&format!("{sample} from ")))
            .and_then(|l| l.split("accepted as ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no envelope for {sample} in {:#?}", self.fed))
            .to_string()
    }

    /// The audit log's text (flushed first).
    fn audit_text(&self) -> String {
        self.hub().audit.flush();
        std::fs::read_to_string(self.s.config().audit_path()).unwrap_or_default()
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
    // The message's trace shows the delivery to the municipality.
    let found = search(&b, &held).await;
    assert_eq!(found, vec![held.clone()]);
    open_trace(&b, &held).await;
    // First the refusal, then the delivery the replay brought.
    b.find(&format!(
        r#".delivery[data-recipient="{MUNICIPALITY}"][data-outcome="quarantined"]"#
    ))
    .await;
    let delivery = b
        .text(&format!(
            r#".delivery[data-recipient="{MUNICIPALITY}"][data-outcome="delivered"]"#
        ))
        .await;
    assert!(delivery.contains(MUNICIPALITY), "{delivery}");
    b.screenshot("07-trace-delivered").await;
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

/// Searches the Messages page for `q`; the envelopes of the result rows.
async fn search(b: &Browser, q: &str) -> Vec<String> {
    b.click("a#nav-messages").await;
    b.wait_url("the Messages page", |u| u.ends_with("/console/messages"))
        .await;
    assert_eq!(
        b.attribute("form#search-form input#q", "type")
            .await
            .as_deref(),
        Some("search")
    );
    b.type_into("input#q", q).await;
    b.submit("form#search-form").await;
    b.find("table#results").await;
    let url = b.url().await;
    assert!(
        url.ends_with("/console/messages"),
        "the query is posted, never in the URL: {url}"
    );
    let mut envelopes = Vec::new();
    for row in b.find_all("table#results tr[data-envelope]").await {
        envelopes.push(
            b.attribute_of(&row, "data-envelope")
                .await
                .expect("a row names its envelope"),
        );
    }
    envelopes
}

/// Opens the trace of `envelope` from the result rows on the page.
async fn open_trace(b: &Browser, envelope: &str) {
    b.click(&format!(
        r#"table#results tr[data-envelope="{envelope}"] a[href="/console/messages/{envelope}"]"#
    ))
    .await;
    b.wait_url("the trace page", |u| {
        u.ends_with(&format!("/console/messages/{envelope}"))
    })
    .await;
    b.find("ol#trace").await;
}

/// The consent decisions of `envelope` in the audit log: (decision, reason, party).
fn audited_decisions(c: &Console, envelope: &str) -> Vec<(String, String, String)> {
    c.audit()
        .into_iter()
        .filter(|e| e["envelope_id"] == envelope)
        .filter(|e| {
            matches!(
                e["decision"].as_str(),
                Some("permit" | "deny" | "indeterminate")
            )
        })
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("decision"), s("reason"), s("party"))
        })
        .collect()
}

/// Checks the trace page of `envelope` against the audit log: a step per hop it went through,
/// one `.decision` per consent decision (its verdict and its consent id or reason shown), one
/// `.delivery` per recipient that received it.
async fn check_trace(b: &Browser, c: &Console, envelope: &str) {
    for hop in ["ingress", "translate", "deliver"] {
        b.find(&format!(r#"ol#trace li.step[data-hop="{hop}"]"#))
            .await;
    }
    let audited = audited_decisions(c, envelope);
    assert!(!audited.is_empty(), "{envelope} had consent decisions");
    let shown = b.find_all(".decision[data-decision]").await;
    assert_eq!(
        shown.len(),
        audited.len(),
        "one .decision per audited consent decision of {envelope}: {audited:?}"
    );
    let mut texts = Vec::new();
    for d in &shown {
        let verdict = b.attribute_of(d, "data-decision").await.unwrap_or_default();
        texts.push((verdict, b.text_of(d).await));
    }
    for (decision, reason, _) in &audited {
        assert!(
            texts
                .iter()
                .any(|(v, t)| v == decision && t.contains(reason.as_str())),
            "the {decision} decision ({reason}) is shown: {texts:?}"
        );
    }
    let delivered: Vec<String> = c
        .audit()
        .into_iter()
        .filter(|e| e["envelope_id"] == envelope && e["decision"] == "delivered")
        .filter_map(|e| e["party"].as_str().map(str::to_string))
        .collect();
    for party in &delivered {
        b.find(&format!(r#".delivery[data-recipient="{party}"]"#))
            .await;
    }
}

// ------------------------------------------------------------------------------------------------
// Messages: search by envelope and by person, the trace, the body with its audit event
// ------------------------------------------------------------------------------------------------

async fn find_trace_and_view_bodies(tag: &str, rabbit: bool) {
    let c = Console::start(tag, rabbit).await;
    let b = Browser::open(tag).await;
    sign_in(&b, &c, "demo-privacy").await;
    let adt = c.envelope_of("hl7v2/adt-a08.hl7");
    let patient = c.envelope_of("fhir/patient-jpcore.json");
    let other_person = c.envelope_of("hl7v2/adt-a01-utf8.hl7");

    // By envelope id: that message alone.
    let found = search(&b, &adt).await;
    assert_eq!(found, vec![adt.clone()], "searching {adt}");
    b.screenshot("01-search-envelope").await;

    // By 保険者番号:被保険者番号: that person's messages, nobody else's; the number is hashed
    // before lookup, so it reaches neither the URL nor the audit log.
    let person = format!("{}:{}", PERSON_1.0, PERSON_1.1);
    let found = search(&b, &person).await;
    assert!(
        found.contains(&adt) && found.contains(&patient),
        "{person}'s HL7 and FHIR messages are found: {found:?}"
    );
    assert!(
        !found.contains(&other_person),
        "another person's message is not: {found:?}"
    );
    b.screenshot("02-search-person").await;
    // Audited naming the operator, with the person's keyed hash (the one ingress recorded).
    let person_hash = c
        .audit()
        .into_iter()
        .find(|e| e["envelope_id"] == adt.as_str() && e["subject"].is_string())
        .map(|e| e["subject"].clone())
        .expect("ingress recorded the person's hash");
    let searches = c
        .audit()
        .into_iter()
        .filter(|e| e["actor"] == "console:demo-privacy" && e["reason"] == "search-person")
        .filter(|e| e["subject"] == person_hash)
        .count();
    assert_eq!(
        searches, 1,
        "the search by person is audited once, naming the operator"
    );
    assert!(
        !c.audit_text().contains(PERSON_1.1),
        "no raw 被保険者番号 in the audit log"
    );

    // The trace with each consent decision.
    open_trace(&b, &adt).await;
    check_trace(&b, &c, &adt).await;
    b.find(r#".decision[data-decision="permit"]"#).await;
    b.screenshot("03-trace-permit").await;

    // A person's copy refused for a recipient shows its deny decision.
    let denied: Vec<(String, String)> = c
        .audit()
        .into_iter()
        .filter(|e| e["decision"] == "deny" && e["party"] == MUNICIPALITY)
        .filter_map(|e| {
            Some((
                e["envelope_id"].as_str()?.to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let (held, _) = denied
        .first()
        .unwrap_or_else(|| panic!("the demo's refusal for {MUNICIPALITY} is audited"))
        .clone();
    let found = search(&b, &format!("{}:{}", PERSON_2.0, PERSON_2.1)).await;
    assert!(found.contains(&held), "{held} among {found:?}");
    open_trace(&b, &held).await;
    check_trace(&b, &c, &held).await;
    let deny = b.text(r#".decision[data-decision="deny"]"#).await;
    assert!(
        deny.contains(MUNICIPALITY),
        "the recipient is named: {deny}"
    );
    b.screenshot("04-trace-deny").await;

    // The body, with a stated reason; each view is one audit event.
    search(&b, &adt).await;
    open_trace(&b, &adt).await;
    let reasons = ["e2e check of a complaint", "e2e second look"];
    for (i, reason) in reasons.iter().enumerate() {
        b.type_into("form#body-form input#reason", reason).await;
        b.click("button#view-body").await;
        let original = b.text("pre#body").await;
        assert!(
            original.starts_with("MSH|"),
            "the original HL7 message is shown: {original}"
        );
        assert!(
            !b.find_all("pre.canonical").await.is_empty(),
            "the canonical documents are shown"
        );
        let canonical = b.text("pre.canonical").await;
        serde_json::from_str::<serde_json::Value>(&canonical)
            .unwrap_or_else(|e| panic!("a canonical document is JSON ({e}): {canonical}"));
        assert!(
            !b.url().await.contains(PERSON_1.1),
            "no personal value in the URL"
        );
        b.screenshot(&format!("05-body-{}", i + 1)).await;
        if i == 0 {
            b.goto(&c.url(&format!("/console/messages/{adt}"))).await;
        }
    }
    let views: Vec<serde_json::Value> = c
        .audit()
        .into_iter()
        .filter(|e| e["actor"] == "console:demo-privacy" && e["envelope_id"] == adt.as_str())
        .collect();
    assert_eq!(views.len(), 2, "two views, two audit events: {views:#?}");
    for reason in reasons {
        assert_eq!(
            views
                .iter()
                .filter(|e| e["reason"].as_str().is_some_and(|r| r.contains(reason)))
                .count(),
            1,
            "one audit event for the view with reason `{reason}`: {views:#?}"
        );
    }
    let text = c.audit_text();
    assert!(!text.contains("MSH|"), "no body in the audit log");
    drop(b);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_a_message_trace_it_and_view_its_body_on_the_memory_bus() {
    find_trace_and_view_bodies("e2e-msg-mem", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_a_message_trace_it_and_view_its_body_on_rabbitmq() {
    find_trace_and_view_bodies("e2e-msg-amqp", true).await;
}

// ------------------------------------------------------------------------------------------------
// A viewer: the trace, never a body
// ------------------------------------------------------------------------------------------------

async fn a_viewer_cannot_see_bodies(tag: &str, rabbit: bool) {
    let c = Console::start(tag, rabbit).await;
    let b = Browser::open(tag).await;
    sign_in(&b, &c, "demo-viewer").await;
    let adt = c.envelope_of("hl7v2/adt-a08.hl7");
    let found = search(&b, &adt).await;
    assert_eq!(found, vec![adt.clone()]);
    open_trace(&b, &adt).await;
    check_trace(&b, &c, &adt).await;
    b.assert_absent("form#body-form", "a viewer may not see bodies")
        .await;
    b.assert_absent("button#view-body", "a viewer may not see bodies")
        .await;
    b.screenshot("01-trace-without-body").await;
    let status = post_from_page(
        &b,
        &format!("/console/messages/{adt}/body"),
        &[("reason", "trying anyway")],
    )
    .await;
    assert_eq!(status, 403, "a crafted body request is refused");
    assert!(
        !c.audit().iter().any(|e| e["actor"] == "console:demo-viewer"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("trying anyway"))),
        "no body view by the viewer"
    );
    drop(b);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_cannot_see_bodies_on_the_memory_bus() {
    a_viewer_cannot_see_bodies("e2e-body-viewer-mem", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_cannot_see_bodies_on_rabbitmq() {
    a_viewer_cannot_see_bodies("e2e-body-viewer-amqp", true).await;
}
