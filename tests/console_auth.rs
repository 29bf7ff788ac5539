//! The web console's foundation through real HTTP against a started hub (in-memory bus): sign-in
//! with a right and a wrong password, the session cookie's flags, CSRF refusals, the loopback-only
//! rule over plain HTTP, per-account sign-in throttling, idle expiry, demo accounts only under
//! `--demo`, sign-in audit events without the password, the Flow page's counts after a sample
//! was sent, and over HTTPS a `Secure` cookie and clients from anywhere. The client is
//! `common::console_http` (cookie jar, forms, optionally TLS and an address of its own).

mod common;

use common::console_http::{Client, accounts_file};
use common::pki;
use common::{Scratch, post_sample_patient};
use kaigo_hub::config::Config;
use kaigo_hub::serve::{Running, StartOptions};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

const OPS: (&str, &str) = ("ops-1", "operator password 1");
const VIEWER: (&str, &str) = ("view-1", "viewer password 1");

/// A hub on the in-memory bus with the accounts ops-1 (operator) and view-1 (viewer).
async fn hub(tag: &str, edit: impl FnOnce(&mut Config)) -> (Scratch, Config, Running) {
    let s = Scratch::memory(tag, |p| p);
    let mut cfg = s.config();
    cfg.console_accounts = Some(accounts_file(
        &s,
        &[(OPS.0, "operator", OPS.1), (VIEWER.0, "viewer", VIEWER.1)],
    ));
    edit(&mut cfg);
    let running = s.start_with(&cfg).await;
    (s, cfg, running)
}

#[tokio::test]
async fn the_right_password_opens_the_flow_and_a_wrong_one_is_refused_and_both_are_audited() {
    let (s, _cfg, running) = hub("console-sign-in", |_| {}).await;
    let mut b = Client::new(running.http_addr);

    let home = b.get("/console").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/console/login"));
    let flow = b.get("/console/flow").await;
    assert_eq!(
        (flow.status, flow.header("location")),
        (303, Some("/console/login"))
    );

    let form = b.get("/console/login").await;
    for id in [
        r#"<form id="sign-in-form""#,
        r#"id="username""#,
        r#"id="password""#,
        r#"<button id="sign-in""#,
    ] {
        assert!(form.body.contains(id), "{id} in {}", form.body);
    }
    assert!(!form.body.contains("sign-in-error"));

    let wrong = b.sign_in(OPS.0, "not the password").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        wrong.body.contains(r#"id="sign-in-error""#),
        "{}",
        wrong.body
    );
    assert!(!b.cookies.contains_key("kaigo_console"), "no session");
    let nobody = b.sign_in("nobody-such", "x").await;
    assert_eq!(nobody.status, 401);

    let right = b.sign_in(OPS.0, OPS.1).await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.header("location"), Some("/console/flow"));
    let session = right
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kaigo_console="))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.split("; ").any(|a| a == flag), "{flag}: {session}");
    }
    assert!(
        !session.contains("Secure"),
        "over plain loopback HTTP a Secure cookie would not come back: {session}"
    );

    let flow = b.get("/console/flow").await;
    assert_eq!(flow.status, 200, "{}", flow.body);
    for id in [
        r#"id="nav-flow""#,
        r#"id="nav-messages""#,
        r#"id="nav-parked""#,
        r#"<form id="sign-out-form""#,
        r#"id="sign-out""#,
        r#"<svg id="flow""#,
    ] {
        assert!(flow.body.contains(id), "{id}");
    }
    assert!(
        flow.body
            .contains(r#"<span id="operator">ops-1 <span class="role">(operator)</span>"#)
    );
    assert_eq!(flow.header("cache-control"), Some("no-store"));
    assert!(
        flow.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'"))
    );
    assert_eq!(
        b.get("/console").await.header("location"),
        Some("/console/flow")
    );

    running.hub.audit.flush();
    let events: Vec<serde_json::Value> = common::audit_events(&s)
        .into_iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("console-"))
        })
        .collect();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["decision"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "console:ops-1",
                "rejected",
                "console-sign-in-wrong-password"
            ),
            ("console", "rejected", "console-sign-in-unknown-account"),
            ("console:ops-1", "accepted", "console-sign-in"),
        ]
    );
    let log = std::fs::read_to_string(s.config().audit_path()).expect("audit log");
    for secret in [OPS.1, "not the password", "nobody-such"] {
        assert!(!log.contains(secret), "the audit log holds `{secret}`");
    }
    running.stop().await;
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_is_refused() {
    let (_s, _cfg, running) = hub("console-csrf", |_| {}).await;
    let mut b = Client::new(running.http_addr);

    // The sign-in form without its token, or with a made-up one.
    b.get("/console/login").await;
    let none = b
        .post(
            "/console/login",
            &[("username", OPS.0), ("password", OPS.1)],
        )
        .await;
    assert_eq!(none.status, 403, "{}", none.body);
    let forged = b
        .post(
            "/console/login",
            &[("csrf", "00ff"), ("username", OPS.0), ("password", OPS.1)],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!b.cookies.contains_key("kaigo_console"));

    assert_eq!(b.sign_in(OPS.0, OPS.1).await.status, 303);
    let flow = b.get("/console/flow").await;
    let csrf = flow.csrf();
    let no_token = b.post("/console/logout", &[]).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    assert!(no_token.body.contains("csrf"), "{}", no_token.body);
    let other = b
        .post("/console/logout", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(other.status, 403);
    assert_eq!(b.get("/console/flow").await.status, 200, "still signed in");

    let out = b.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/console/login"))
    );
    assert_eq!(b.get("/console/flow").await.status, 303, "signed out");
    running.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time() {
    let (_s, _cfg, running) = hub("console-idle", |c| c.console_idle_secs = 1).await;
    let mut b = Client::new(running.http_addr);
    assert_eq!(b.sign_in(VIEWER.0, VIEWER.1).await.status, 303);
    assert_eq!(b.get("/console/flow").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = b.get("/console/flow").await;
    assert_eq!(
        (after.status, after.header("location")),
        (303, Some("/console/login"))
    );
    assert_eq!(b.get("/console/flow.json").await.status, 303);
    running.stop().await;
}

#[tokio::test]
async fn after_five_wrong_passwords_even_the_right_one_must_wait() {
    let (_s, _cfg, running) = hub("console-throttle", |_| {}).await;
    let mut b = Client::new(running.http_addr);
    for _ in 0..5 {
        assert_eq!(b.sign_in(OPS.0, "guess").await.status, 401);
    }
    let waits = b.sign_in(OPS.0, OPS.1).await;
    assert_eq!(waits.status, 429, "{}", waits.body);
    assert!(waits.body.contains(r#"id="sign-in-error""#));
    assert!(
        waits
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().unwrap_or(0) >= 1)
    );
    assert!(!b.cookies.contains_key("kaigo_console"));
    assert_eq!(
        b.sign_in(VIEWER.0, VIEWER.1).await.status,
        303,
        "another account is not held back"
    );
    running.stop().await;
}

#[tokio::test]
async fn demo_accounts_exist_only_under_demo() {
    let (s, cfg, running) = hub("console-demo", |_| {}).await;
    let mut b = Client::new(running.http_addr);
    for (name, _) in kaigo_hub::console::accounts::DEMO_ACCOUNTS {
        let page = b.sign_in(name, &format!("{name}-password")).await;
        assert_eq!(page.status, 401, "{name} must not exist without --demo");
    }
    running.stop().await;

    let running = kaigo_hub::serve::start_with(&cfg, StartOptions { demo: true })
        .await
        .expect("a demo hub starts");
    let mut b = Client::new(running.http_addr);
    for (name, role) in kaigo_hub::console::accounts::DEMO_ACCOUNTS {
        let mut b2 = Client::new(running.http_addr);
        assert_eq!(
            b2.sign_in(name, &format!("{name}-password")).await.status,
            303,
            "{name}"
        );
        let flow = b2.get("/console/flow").await;
        assert!(
            flow.body
                .contains(&format!("{name} <span class=\"role\">({role})</span>"))
        );
    }
    assert_eq!(
        b.sign_in(OPS.0, OPS.1).await.status,
        303,
        "the file's accounts too"
    );
    running.stop().await;
    drop(s);
}

/// This machine's address on its way out (no packet is sent), when it has one.
fn non_loopback_address() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    socket
        .connect("192.0.2.200:9")
        .and_then(|_| socket.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .expect(
            "this test needs a network interface with a non-loopback IPv4 address (the hub is \
             reached through it to prove that plain HTTP refuses non-loopback clients)",
        )
}

#[tokio::test]
async fn over_plain_http_only_loopback_clients_reach_the_console() {
    let (_s, _cfg, running) = hub("console-loopback", |c| c.http_addr = "0.0.0.0:0".into()).await;
    let port = running.http_addr.port();
    let ip = non_loopback_address();
    let mut far = Client::new(SocketAddr::new(ip, port));
    far.from = Some(ip);
    for path in [
        "/console/login",
        "/console/flow",
        "/console/assets/console.css",
    ] {
        let page = far.get(path).await;
        assert_eq!(page.status, 403, "{path} from {ip}: {}", page.body);
        assert!(
            page.body.contains("loopback") && page.body.contains("tls_cert"),
            "{}",
            page.body
        );
    }
    let posted = far
        .post(
            "/console/login",
            &[("username", OPS.0), ("password", OPS.1)],
        )
        .await;
    assert_eq!(posted.status, 403);
    // To 127.0.0.1 from the other address (as the HTTPS test connects): still not loopback.
    let mut sideways = Client::new(SocketAddr::new("127.0.0.1".parse().expect("ip"), port));
    sideways.from = Some(ip);
    assert_eq!(sideways.get("/console/login").await.status, 403);
    // The FHIR API on the same listener is not the console's business.
    assert_eq!(far.get("/health").await.status, 200);
    let mut near = Client::new(SocketAddr::new("127.0.0.1".parse().expect("ip"), port));
    assert_eq!(near.sign_in(OPS.0, OPS.1).await.status, 303);
    running.stop().await;
}

#[tokio::test]
async fn flow_json_counts_what_the_hub_did_with_a_sample() {
    let (_s, _cfg, running) = hub("console-flow", |_| {}).await;
    kaigo_hub::demo::seed(&running.hub).expect("demo consents");
    let mut b = Client::new(running.http_addr);
    assert_eq!(b.sign_in(VIEWER.0, VIEWER.1).await.status, 303);
    let before = b.get("/console/flow.json").await;
    assert_eq!(before.status, 200, "{}", before.body);
    let j: serde_json::Value = serde_json::from_str(&before.body).expect("JSON");
    assert_eq!(j["counts"]["accepted"], 0);

    post_sample_patient(running.http_addr).await;
    let m = &running.hub.metrics;
    use std::sync::atomic::Ordering::Relaxed;
    common::eventually("the patient delivered", async || {
        m.delivered.load(Relaxed) > 0
    })
    .await;
    tokio::time::sleep(common::QUIET).await;
    let after: serde_json::Value =
        serde_json::from_str(&b.get("/console/flow.json").await.body).expect("JSON");
    let c = &after["counts"];
    assert_eq!(c["accepted"], 1);
    assert_eq!(c["translated"], m.translated.load(Relaxed));
    assert_eq!(c["delivered"], m.delivered.load(Relaxed));
    assert_eq!(c["quarantine"], m.quarantined.load(Relaxed));
    assert_eq!(c["dead"], 0);
    assert!(c["translated"].as_u64() >= Some(1), "{after}");
    assert_eq!(after["queued"]["dead"], 0);

    let page = b.get("/console/flow").await;
    for (hop, name) in [
        ("ingress", "accepted"),
        ("translate", "translated"),
        ("deliver", "delivered"),
    ] {
        assert!(page.body.contains(&format!(r#"data-hop="{hop}""#)), "{hop}");
        let text = format!(r#"data-count="{name}">{}</text>"#, c[name]);
        assert!(page.body.contains(&text), "{text} in the page");
    }
    for name in ["dead", "quarantine"] {
        assert!(
            page.body
                .contains(&format!(r#"data-count="{name}">{}</text>"#, c[name]))
        );
    }
    assert!(
        page.body
            .contains(r#"<script src="/console/assets/flow.js""#)
    );
    let js = b.get("/console/assets/flow.js").await;
    assert_eq!(js.status, 200);
    assert!(js.body.contains("/console/flow.json"));
    running.stop().await;
}

/// A client that trusts `ca` (no client certificate).
fn connector(ca: &std::path::Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca.pem") {
        roots
            .add(c.expect("ca certificate"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_any_client_may_sign_in() {
    let dir = std::env::temp_dir().join(format!(
        "kaigo-console-pki-{}-{}",
        std::process::id(),
        kaigo_hub::pipeline::clock::envelope_id()
    ));
    pki::prepare(&dir);
    let ca = pki::ca(&dir, "ca");
    // For IP:127.0.0.1 and localhost.
    let server = pki::issue(&dir, &ca, "localhost", "test_server", "2");
    let (_s, _cfg, running) = hub("console-https", |c| {
        c.http_addr = "0.0.0.0:0".into();
        c.tls_cert = Some(server.cert.clone());
        c.tls_key = Some(server.key.clone());
    })
    .await;
    let port = running.http_addr.port();
    // To 127.0.0.1 (what the certificate names) from this machine's other address: the hub sees
    // a client that is not loopback.
    let mut b = Client::new(SocketAddr::new("127.0.0.1".parse().expect("ip"), port));
    b.from = Some(non_loopback_address());
    b.tls = Some(connector(&ca.cert));
    let right = b.sign_in(OPS.0, OPS.1).await;
    assert_eq!(right.status, 303, "{}", right.body);
    let session = right
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kaigo_console="))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(session.split("; ").any(|a| a == flag), "{flag}: {session}");
    }
    let flow = b.get("/console/flow").await;
    assert_eq!(flow.status, 200, "{}", flow.body);
    assert!(flow.body.contains("FHIR over HTTPS"));
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
