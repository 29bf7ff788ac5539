//! The HTTP push sink, end to end on the real RabbitMQ: a recipient whose parties entry says
//! `delivery: { http: URL }` receives its documents as HTTP POSTs to a real listener of the test's
//! own, with the envelope id in `X-Kaigo-Envelope`. A recipient that answers an error at first is
//! tried again (its copy waits in one of the deliver hop's waiting rooms) and the document arrives
//! once it answers 2xx: nothing is dropped, and the other recipients get their copies regardless;
//! one that never answers 2xx holds up no one, and each of its copies is dead-lettered after
//! `retry_delays_ms` + 1 tries; one that refuses the content itself (422) is asked once, and the
//! copy is dead-lettered at once.
//!
//! Over HTTPS (`https://` URLs): a recipient of the test's own behind tokio-rustls, with a
//! certificate for 127.0.0.1 from a throwaway CA (`common::pki`, the `openssl` command line) and
//! requiring a client certificate from that CA, receives the document from a hub configured with
//! `push_ca`, `push_client_cert` and `push_client_key`; a recipient whose certificate comes from
//! another CA never receives it: the copy is tried once per attempt (`retry_delays_ms` + 1) and then
//! dead-lettered with `x-kaigo-error` naming the TLS failure, unless that CA is added to
//! `push_ca` and the files reloaded (`Running::reload_tls`, SIGHUP) while the copy waits. The
//! sink's errors (unknown CA, name mismatch, no client certificate, status) and the start-up
//! checks of the settings are tested against the same PKI.

mod common;

use common::pki::{self, Identity};
use common::*;
use kaigo_hub::bus::Props;
use kaigo_hub::config::Config;
use kaigo_hub::serve::{self, Running};
use kaigo_hub::sinks::http;
use kaigo_hub::sinks::push_tls::{self, PushTlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// One POST the recipient's listener received.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// How a recipient that is down for a moment answers.
const UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A recipient's HTTP endpoint: answers the first `fail_first` requests 503, then 200, and
/// records every request.
async fn recipient(fail_first: usize) -> (String, Arc<Mutex<Vec<Request>>>) {
    recipient_answering(fail_first, UNAVAILABLE).await
}

/// A recipient's HTTP endpoint: answers the first `fail_first` requests with `failure`, then
/// 200, and records every request.
async fn recipient_answering(
    fail_first: usize,
    failure: &'static [u8],
) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            answer(s, &log, fail_first, failure).await;
        }
    });
    (format!("http://{addr}/kaigo/inbox/{CARE_MANAGER}"), seen)
}

/// Reads one request from `s`, records it, and answers `failure` while no more than
/// `fail_first` requests have been recorded, 200 after.
async fn answer(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    log: &Mutex<Vec<Request>>,
    fail_first: usize,
    failure: &[u8],
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(i);
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let Some(head_end) = head_end else { return };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut req = Request {
        head,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while req.body.len() < length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => req.body.extend_from_slice(&chunk[..n]),
        }
    }
    let n = {
        let mut l = log.lock().unwrap();
        l.push(req);
        l.len()
    };
    let answer: &[u8] = if n <= fail_first {
        failure
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    };
    let _ = s.write_all(answer).await;
    let _ = s.shutdown().await;
}

/// The parties file with the care manager delivering over HTTP to `url`.
fn push_to(url: &str) -> impl FnOnce(String) -> String + '_ {
    move |parties: String| {
        let mut found = false;
        let out: Vec<String> = parties
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("delivery: { dir:")
                    && l.contains(&format!("out/{CARE_MANAGER}"))
                {
                    found = true;
                    format!("    delivery: {{ http: \"{url}\" }}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(
            found,
            "the demo parties deliver {CARE_MANAGER} to a directory"
        );
        out.join("\n") + "\n"
    }
}

/// A hub on RabbitMQ (the world `s`, started with `cfg`) whose care manager is pushed to over
/// HTTP, seeded with the demo data, and taps on the provider's out queue and the dead letters.
async fn pushing_hub(s: &Scratch, cfg: &Config) -> (Running, Tap, Tap) {
    let running = s.start_with(cfg).await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let t = running.hub.topology.clone();
    let provider = Tap::new(running.hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let dead = Tap::new(running.hub.bus.as_ref(), &t.dead_queue()).await;
    (running, provider, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_on_http_push_gets_its_document_after_answering_503_once() {
    let (url, seen) = recipient(1).await;
    let s = Scratch::rabbit("push", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &s.config()).await;

    let envelope = post_sample_patient(running.http_addr).await;

    eventually("the recipient answered 200 to a second POST", async || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    provider
        .wait("the FHIR copy for 0300000005", |m| m.len() == 1)
        .await;
    tokio::time::sleep(QUIET).await;

    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one refused POST, one accepted; no more");
    for r in &got {
        assert!(
            r.head
                .starts_with(&format!("POST /kaigo/inbox/{CARE_MANAGER} HTTP/1.1")),
            "{}",
            r.head
        );
        assert_eq!(r.header("x-kaigo-envelope"), Some(envelope.as_str()));
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{}",
            r.head
        );
    }
    assert_eq!(
        got[0].body, got[1].body,
        "the retry sends the same document"
    );
    let doc = json(&got[1].body);
    assert_eq!(doc["document"], "InsuredPerson@1");
    let golden = json(&sample("fhir/patient-jpcore.insured-person.json"));
    for field in ["birth_date", "name", "identifiers"] {
        assert_eq!(
            doc[field], golden[field],
            "{field} as the mapping computes it"
        );
    }
    assert_eq!(provider.all()[0].envelope(), envelope);
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    assert_eq!(
        running.hub.metrics.delivered.load(Ordering::Relaxed),
        2,
        "one copy to each recipient"
    );
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)),
        vec![],
        "no directory any more"
    );
    running.stop().await;
}

/// Posts the sample patient `n` times; the envelope ids.
async fn post_patients(running: &Running, n: usize) -> Vec<String> {
    let mut envelopes = Vec::new();
    for _ in 0..n {
        envelopes.push(post_sample_patient(running.http_addr).await);
    }
    envelopes
}

/// Exactly one of `letters` for each of `envelopes`.
fn assert_one_dead_letter_each(letters: &[Msg], envelopes: &[String]) {
    let mut dead: Vec<&str> = letters.iter().map(Msg::envelope).collect();
    let mut sent: Vec<&str> = envelopes.iter().map(String::as_str).collect();
    dead.sort();
    sent.sort();
    assert_eq!(dead, sent, "one dead letter per message");
}

/// Nothing waits in any of the deliver hop's waiting rooms.
async fn assert_waiting_rooms_empty(hub: &kaigo_hub::pipeline::Hub) {
    let t = &hub.topology;
    for delay in &t.retry_delays {
        assert_eq!(hub.bus.queue_len(&t.wait_queue(*delay)).await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_that_is_down_holds_up_no_one_and_each_copy_is_tried_then_dead_lettered() {
    const MESSAGES: usize = 3;
    let (url, seen) = recipient(usize::MAX).await;
    let s = Scratch::rabbit("push-down", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &s.config()).await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    let limit = t.delivery_attempts() as usize;
    assert_eq!(limit, TEST_RETRY_DELAYS_MS.len() + 1);
    // The failing recipient comes first in the parties file: a hop that waited for it before
    // going on would hand the provider nothing until the care manager's tries were used up.
    let order: Vec<String> = hub
        .parties
        .current()
        .recipients_of("InsuredPerson@1", "1311234567")
        .iter()
        .map(|(p, _)| p.id.to_string())
        .collect();
    assert_eq!(order, vec![CARE_MANAGER.to_string(), PROVIDER.to_string()]);

    let envelopes = post_patients(&running, MESSAGES).await;
    provider
        .wait("every copy for 0300000005", |m| m.len() == MESSAGES)
        .await;
    let tried = seen.lock().unwrap().len();
    assert!(
        tried < MESSAGES * limit,
        "the provider had its copies before the care manager's tries ran out ({tried} POSTs)"
    );

    let letters = dead
        .wait("each care manager copy dead-lettered", |m| {
            m.len() == MESSAGES
        })
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        MESSAGES * limit,
        "each copy tried delivery_attempts times, no more"
    );
    assert_one_dead_letter_each(&letters, &envelopes);
    for m in &letters {
        assert_eq!(m.header("x-kaigo-recipient"), Some(CARE_MANAGER));
        assert_eq!(
            m.header("x-kaigo-attempt"),
            Some(limit.to_string().as_str())
        );
        assert!(
            m.header("x-kaigo-error").is_some_and(|e| e.contains("503")),
            "{:?}",
            m.header("x-kaigo-error")
        );
        assert_eq!(m.header("x-death-reason"), None, "no waiting-room marks");
    }
    assert_eq!(dead.all().len(), MESSAGES);
    assert_eq!(provider.all().len(), MESSAGES, "the provider got each once");
    for m in provider.all() {
        assert_eq!(m.header("x-kaigo-attempt"), None);
        assert_eq!(m.header("x-kaigo-retry-for"), None);
    }
    assert_waiting_rooms_empty(&hub).await;
    assert_eq!(
        hub.metrics.delivery_retries.load(Ordering::Relaxed) as usize,
        MESSAGES * (limit - 1)
    );
    assert_eq!(hub.metrics.dead.load(Ordering::Relaxed) as usize, MESSAGES);
    running.stop().await;
    // Every failed try is in the audit log: "retrying" with its attempt, then "dead".
    let about_cm = care_manager_copies_audited(&s);
    let decisions = |d: &str| about_cm.iter().filter(|e| e["decision"] == d).count();
    assert_eq!(
        decisions("retrying"),
        MESSAGES * (limit - 1),
        "{about_cm:#?}"
    );
    assert_eq!(decisions("dead"), MESSAGES);
    assert_eq!(decisions("delivered"), 0);
    for attempt in 1..limit {
        let reason = format!("sink-failed:attempt-{attempt}");
        assert_eq!(
            about_cm
                .iter()
                .filter(|e| e["reason"] == reason.as_str())
                .count(),
            MESSAGES,
            "{reason}"
        );
    }
}

/// The deliver hop's audit events about the care manager's copies, from the stopped hub's log.
fn care_manager_copies_audited(s: &Scratch) -> Vec<serde_json::Value> {
    let audit = std::fs::read_to_string(s.dir.join("state/audit.jsonl")).expect("audit log");
    audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|e| e["party"] == CARE_MANAGER && e["hop"] == "deliver")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_that_refuses_the_content_is_not_asked_again_and_the_copy_is_dead_lettered_at_once()
 {
    const MESSAGES: usize = 2;
    const UNPROCESSABLE: &[u8] = b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/fhir+json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (url, seen) = recipient_answering(usize::MAX, UNPROCESSABLE).await;
    let s = Scratch::rabbit("push-refused", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &s.config()).await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    assert!(t.delivery_attempts() > 1, "a 503 would be tried again");

    let envelopes = post_patients(&running, MESSAGES).await;
    provider
        .wait("every copy for 0300000005", |m| m.len() == MESSAGES)
        .await;
    let letters = dead
        .wait("each care manager copy dead-lettered", |m| {
            m.len() == MESSAGES
        })
        .await;
    // The first waiting room is 100 ms: a copy put there would have been tried again by now.
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        MESSAGES,
        "one POST per copy: the same bytes would be refused again"
    );
    assert_one_dead_letter_each(&letters, &envelopes);
    for m in &letters {
        assert_eq!(m.header("x-kaigo-recipient"), Some(CARE_MANAGER));
        assert_eq!(m.header("x-kaigo-attempt"), None, "the first attempt");
        let error = m.header("x-kaigo-error").unwrap_or_default();
        assert!(
            error.starts_with(&url)
                && error.contains("status 422")
                && error.contains("not tried again"),
            "{error}"
        );
    }
    assert_eq!(dead.all().len(), MESSAGES);
    assert_eq!(provider.all().len(), MESSAGES, "the provider got each once");
    assert_waiting_rooms_empty(&hub).await;
    assert_eq!(hub.metrics.delivery_retries.load(Ordering::Relaxed), 0);
    assert_eq!(hub.metrics.dead.load(Ordering::Relaxed) as usize, MESSAGES);
    running.stop().await;
    let about_cm = care_manager_copies_audited(&s);
    let decisions = |d: &str| about_cm.iter().filter(|e| e["decision"] == d).count();
    assert_eq!(decisions("retrying"), 0, "{about_cm:#?}");
    assert_eq!(decisions("delivered"), 0);
    assert_eq!(
        about_cm
            .iter()
            .filter(|e| e["decision"] == "dead" && e["reason"] == "sink-refused")
            .count(),
        MESSAGES,
        "{about_cm:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_copy_whose_recipient_left_the_parties_file_is_dead_lettered_not_dropped() {
    let (url, seen) = recipient(0).await;
    let s = Scratch::rabbit("push-gone", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &s.config()).await;
    let hub = running.hub.clone();
    let t = hub.topology.clone();
    post_sample_patient(running.http_addr).await;
    let copy = provider
        .wait("the provider's copy", |m| m.len() == 1)
        .await
        .remove(0);
    eventually("the care manager's push", async || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    // The canonical document as the deliver hop had it, back from a waiting room for a party
    // the parties file (as the hub loaded it) does not list.
    let canonical = seen.lock().unwrap()[0].body.clone();
    let mut props: Props = copy.props.clone();
    props.headers.remove("x-kaigo-recipient");
    props
        .headers
        .insert("x-kaigo-hop".into(), "translate".into());
    props
        .headers
        .insert("x-kaigo-retry-for".into(), "0399999999".into());
    props.headers.insert("x-kaigo-attempt".into(), "2".into());
    hub.bus
        .publish(&t.again(), "", &props, &canonical)
        .await
        .expect("published");

    let letters = dead.wait("the orphaned copy", |m| m.len() == 1).await;
    let error = letters[0].header("x-kaigo-error").unwrap_or_default();
    assert!(
        error.contains("0399999999") && error.contains("no longer receives"),
        "{error}"
    );
    assert_eq!(letters[0].header("x-kaigo-recipient"), Some("0399999999"));
    assert_eq!(letters[0].body, canonical, "kept as it was");
    tokio::time::sleep(QUIET).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "nobody else got it again");
    assert_eq!(provider.all().len(), 1);
    running.stop().await;
}

// ------------------------------------------------------------------------------------------------
// HTTPS push: a recipient behind TLS that asks for the hub's client certificate
// ------------------------------------------------------------------------------------------------

/// The certificates of the HTTPS tests (`common::pki`).
struct Pki {
    /// The CA the hub trusts (`push_ca`) and the recipients trust for client certificates.
    ca: Identity,
    /// The recipient's server certificate for 127.0.0.1, issued by `ca`.
    recipient: Identity,
    /// A server certificate from `ca`, but for another name than 127.0.0.1.
    elsewhere: Identity,
    /// A server certificate for 127.0.0.1 from a CA the hub does not trust.
    foreign: Identity,
    /// The hub's client certificate (`push_client_cert`), issued by `ca`.
    hub: Identity,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        pki::prepare(dir);
        let ca = pki::ca(dir, "ca");
        let other_ca = pki::ca(dir, "other-ca");
        Pki {
            recipient: pki::issue(dir, &ca, "recipient", "test_server", "2"),
            elsewhere: pki::issue(dir, &ca, "elsewhere", "test_server_elsewhere", "3"),
            foreign: pki::issue(dir, &other_ca, "foreign", "test_server", "4"),
            hub: pki::issue(dir, &ca, "hub", "test_client", "5"),
            ca,
        }
    }

    /// The hub's push settings: trust `ca`, present `hub`.
    fn push_config(&self, base: Config) -> Config {
        Config {
            push_ca: Some(self.ca.cert.clone()),
            push_client_cert: Some(self.hub.cert.clone()),
            push_client_key: Some(self.hub.key.clone()),
            ..base
        }
    }
}

fn pem_certs(file: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// What an HTTPS recipient saw: TCP connections, handshakes that failed, the client certificate
/// of each completed handshake (DER), and the requests.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    failed_handshakes: AtomicUsize,
    client_certs: Mutex<Vec<Vec<u8>>>,
    requests: Mutex<Vec<Request>>,
}

impl Seen {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// A recipient serving HTTPS with `server`'s certificate and requiring a client certificate
/// issued by `client_ca`; answers the first `fail_first` requests 503, then 200.
async fn https_recipient(
    server: &Identity,
    client_ca: &Path,
    fail_first: usize,
) -> (String, Arc<Seen>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(client_ca) {
        roots.add(c).expect("a usable client CA");
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("client verifier");
    let key = PrivateKeyDer::from_pem_file(&server.key).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(&server.cert), key)
        .expect("server identity");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Seen> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            log.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(PATIENCE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    _ => {
                        log.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    log.client_certs.lock().unwrap().push(leaf.to_vec());
                }
                answer(tls, &log.requests, fail_first, UNAVAILABLE).await;
            });
        }
    });
    (format!("https://{addr}/kaigo/inbox/{CARE_MANAGER}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_on_https_push_with_client_certificates_gets_its_document() {
    let scratch = Scratch::memory("push-tls-pki", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let (url, seen) = https_recipient(&pki.recipient, &pki.ca.cert, 0).await;
    let s = Scratch::rabbit("push-tls", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &pki.push_config(s.config())).await;

    let envelope = post_sample_patient(running.http_addr).await;
    eventually("the recipient received a POST over HTTPS", async || {
        !seen.requests().is_empty()
    })
    .await;
    provider
        .wait("the FHIR copy for 0300000005", |m| m.len() == 1)
        .await;
    tokio::time::sleep(QUIET).await;

    let got = seen.requests();
    assert_eq!(got.len(), 1, "one POST, answered 200; no more");
    let r = &got[0];
    assert!(
        r.head
            .starts_with(&format!("POST /kaigo/inbox/{CARE_MANAGER} HTTP/1.1")),
        "{}",
        r.head
    );
    assert_eq!(r.header("x-kaigo-envelope"), Some(envelope.as_str()));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{}",
        r.head
    );
    let doc = json(&r.body);
    assert_eq!(doc["document"], "InsuredPerson@1");
    let golden = json(&sample("fhir/patient-jpcore.insured-person.json"));
    for field in ["birth_date", "name", "identifiers"] {
        assert_eq!(
            doc[field], golden[field],
            "{field} as the mapping computes it"
        );
    }
    // The hub presented push_client_cert (compared as DER, not through the hub's code).
    assert_eq!(
        *seen.client_certs.lock().unwrap(),
        vec![pem_certs(&pki.hub.cert)[0].to_vec()],
        "the hub's client certificate, once"
    );
    assert_eq!(seen.failed_handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    assert_eq!(running.hub.metrics.delivered.load(Ordering::Relaxed), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ca_added_to_push_ca_by_a_reload_lets_the_waiting_copy_through() {
    let scratch = Scratch::memory("push-tls-reload-pki", |t| t);
    let dir = scratch.dir.join("pki");
    let pki = Pki::new(&dir);
    // The recipient's certificate comes from a CA the hub does not trust yet.
    let (url, seen) = https_recipient(&pki.foreign, &pki.ca.cert, 0).await;
    let push_ca = scratch.dir.join("push-ca.pem");
    std::fs::copy(&pki.ca.cert, &push_ca).expect("push_ca");
    let s = Scratch::rabbit("push-tls-reload", push_to(&url));
    // Rooms of the default schedule (Scratch removes them): after the failed first try the copy
    // waits a second, time enough for the reload below.
    let cfg = Config {
        push_ca: Some(push_ca.clone()),
        retry_delays_ms: vec![1_000, 5_000, 30_000],
        ..pki.push_config(s.config())
    };
    let (running, provider, dead) = pushing_hub(&s, &cfg).await;

    post_sample_patient(running.http_addr).await;
    provider
        .wait("the FHIR copy for 0300000005", |m| m.len() == 1)
        .await;
    eventually("the first push failed the handshake", async || {
        seen.failed_handshakes.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(seen.requests().is_empty());

    // The recipient's CA is added to push_ca, as an operator would, and SIGHUP's reload read.
    let mut bundle = std::fs::read(&pki.ca.cert).expect("ca.pem");
    bundle.extend(std::fs::read(dir.join("other-ca.pem")).expect("other-ca.pem"));
    std::fs::write(&push_ca, bundle).expect("push_ca with both CAs");
    let outcomes = running.reload_tls(&cfg);
    assert_eq!(
        outcomes,
        vec![Ok(format!("HTTP push: push_ca {}", push_ca.display()))]
    );

    eventually("the waiting copy reached the recipient", async || {
        !seen.requests().is_empty()
    })
    .await;
    let got = seen.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(json(&got[0].body)["document"], "InsuredPerson@1");
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());

    // A push_ca that no longer parses is refused, naming the setting and file; pushes go on
    // with the CAs in force.
    std::fs::write(&push_ca, "not a certificate\n").expect("broken push_ca");
    let outcomes = running.reload_tls(&cfg);
    assert_eq!(outcomes.len(), 1);
    let e = outcomes[0]
        .clone()
        .expect_err("a broken push_ca does not load");
    assert!(
        e.starts_with("HTTP push: push_ca") && e.contains(&push_ca.display().to_string()),
        "{e}"
    );
    assert!(e.ends_with("the files in force stay"), "{e}");
    post_sample_patient(running.http_addr).await;
    eventually("the next copy reached the recipient too", async || {
        seen.requests().len() == 2
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_with_a_certificate_from_another_ca_never_gets_it_and_the_copy_is_dead_lettered()
 {
    let scratch = Scratch::memory("push-tls-pki", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let (url, seen) = https_recipient(&pki.foreign, &pki.ca.cert, 0).await;
    let s = Scratch::rabbit("push-tls-foreign", push_to(&url));
    let (running, provider, dead) = pushing_hub(&s, &pki.push_config(s.config())).await;

    let envelope = post_sample_patient(running.http_addr).await;
    let letters = dead
        .wait("the care manager's copy in the dead-letter queue", |m| {
            !m.is_empty()
        })
        .await;
    provider
        .wait("the FHIR copy for 0300000005 regardless", |m| m.len() == 1)
        .await;
    tokio::time::sleep(QUIET).await;

    let letter = &letters[0];
    assert_eq!(letter.envelope(), envelope);
    assert_eq!(letter.header("x-kaigo-recipient"), Some(CARE_MANAGER));
    let error = letter.header("x-kaigo-error").expect("x-kaigo-error");
    assert!(error.starts_with(&url), "names the URL: {error}");
    assert!(
        error.contains("TLS handshake failed") && error.contains("unknown CA"),
        "names the TLS failure: {error}"
    );
    assert!(
        json(&letter.body)["document"] == "InsuredPerson@1",
        "the dead letter keeps the canonical document"
    );
    assert_eq!(
        dead.all().len(),
        1,
        "one dead letter, not another from the broker: {:#?}",
        dead.all()
    );
    // Tried once per attempt, never reaching HTTP.
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        running.hub.topology.delivery_attempts() as usize,
        "one connection per attempt"
    );
    assert_eq!(
        seen.failed_handshakes.load(Ordering::SeqCst),
        running.hub.topology.delivery_attempts() as usize
    );
    assert!(seen.requests().is_empty(), "{:#?}", seen.requests());
    assert_eq!(running.hub.metrics.delivered.load(Ordering::Relaxed), 1);
    assert_eq!(running.hub.metrics.dead.load(Ordering::Relaxed), 1);
    running.stop().await;
}

/// One push straight to the sink (no hub), with the hub's TLS settings made from `files`.
async fn push(url: &str, files: &PushTlsFiles) -> Result<(), String> {
    let config = Arc::new(push_tls::client_config(files).map_err(|e| e.to_string())?);
    let props = Props {
        message_id: Some("env-1".into()),
        ..Props::default()
    };
    http::post(url, Some(&config), "application/json", &props, b"{}")
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_push_errors_name_the_url_and_what_failed() {
    let scratch = Scratch::memory("push-tls-errors", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let full = PushTlsFiles {
        ca: pki.ca.cert.clone(),
        client: Some((pki.hub.cert.clone(), pki.hub.key.clone())),
    };

    // All fit: 2xx.
    let (url, seen) = https_recipient(&pki.recipient, &pki.ca.cert, 0).await;
    push(&url, &full)
        .await
        .unwrap_or_else(|e| panic!("a recipient all is right with: {e}"));
    assert_eq!(seen.requests().len(), 1);

    // Over TLS, a non-2xx status is still a failure.
    let (url, _) = https_recipient(&pki.recipient, &pki.ca.cert, 1).await;
    let e = push(&url, &full).await.expect_err("503");
    assert!(e.starts_with(&url) && e.contains("status 503"), "{e}");

    // The recipient's certificate is from a CA not in push_ca.
    let (url, seen) = https_recipient(&pki.foreign, &pki.ca.cert, 0).await;
    let e = push(&url, &full).await.expect_err("unknown CA");
    assert!(
        e.starts_with(&url) && e.contains("TLS handshake failed: unknown CA"),
        "{e}"
    );
    assert!(seen.requests().is_empty());

    // The recipient's certificate is from the right CA but for another name.
    let (url, seen) = https_recipient(&pki.elsewhere, &pki.ca.cert, 0).await;
    let e = push(&url, &full).await.expect_err("name mismatch");
    assert!(
        e.starts_with(&url)
            && e.contains("TLS handshake failed: name mismatch")
            && e.contains("elsewhere.invalid"),
        "{e}"
    );
    assert!(seen.requests().is_empty());

    // Without a client certificate, a recipient that requires one refuses the connection (in
    // TLS 1.3 its verdict arrives after the client's side of the handshake).
    let (url, seen) = https_recipient(&pki.recipient, &pki.ca.cert, 0).await;
    let no_client = PushTlsFiles {
        client: None,
        ..full.clone()
    };
    let e = push(&url, &no_client).await.expect_err("no client cert");
    assert!(e.starts_with(&url) && e.contains("push_client_cert"), "{e}");
    assert!(seen.requests().is_empty());

    // Plain HTTP still works as before, TLS settings or not.
    let (url, plain) = recipient(0).await;
    push(&url, &full)
        .await
        .unwrap_or_else(|e| panic!("http:// push: {e}"));
    assert_eq!(plain.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_push_settings_stop_the_start_naming_the_setting_and_file() {
    let scratch = Scratch::memory("push-tls-config", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let with = |f: &dyn Fn(&mut Config)| {
        let mut cfg = pki.push_config(scratch.config());
        f(&mut cfg);
        cfg
    };

    // A CA bundle that is not PEM.
    let junk = scratch.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write junk");
    let e = serve::build(&with(&|c| c.push_ca = Some(junk.clone())))
        .await
        .err()
        .expect("no CA certificates");
    assert!(
        e.contains("push_ca") && e.contains(&junk.display().to_string()),
        "{e}"
    );

    // A certificate where the key belongs.
    let e = serve::build(&with(&|c| c.push_client_key = Some(pki.ca.cert.clone())))
        .await
        .err()
        .expect("no usable key");
    assert!(
        e.contains("push_client_key") && e.contains(&pki.ca.cert.display().to_string()),
        "{e}"
    );

    // The key of another certificate.
    let e = serve::build(&with(&|c| {
        c.push_client_key = Some(pki.recipient.key.clone())
    }))
    .await
    .err()
    .expect("key and certificate differ");
    assert!(
        e.contains("push_client_cert") && e.contains("push_client_key"),
        "{e}"
    );

    // Half a client identity.
    let e = serve::build(&with(&|c| c.push_client_key = None))
        .await
        .err()
        .expect("certificate without key");
    assert!(
        e.contains("push_client_cert") && e.contains("push_client_key"),
        "{e}"
    );

    // The whole set loads (the setup is sound).
    if let Err(e) = serve::build(&with(&|_| {})).await {
        panic!("the push settings of the test PKI: {e}");
    }
}

/// A copy waiting to be tried again is judged again when it comes back, as a new message would
/// be (issue 13: nothing is delivered without every check a new message would pass): the person
/// revoked the consent that let their data reach the platform while the care manager's endpoint
/// was down, so the retry is quarantined at the deliver hop, never POSTed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_copy_is_judged_again_and_a_consent_revoked_meanwhile_keeps_it_back() {
    let (url, seen) = recipient(1).await;
    let s = Scratch::rabbit("push-revoked", push_to(&url));
    let mut cfg = s.config();
    cfg.retry_delays_ms = vec![1500];
    let (running, _provider, _dead) = pushing_hub(&s, &cfg).await;
    let hub = running.hub.clone();
    let quarantine = Tap::new(hub.bus.as_ref(), &hub.topology.quarantine_queue()).await;

    let envelope = post_sample_patient(running.http_addr).await;
    eventually("the first POST was refused", async || {
        seen.lock().unwrap().len() == 1
    })
    .await;
    // demo-0-0: person 1's consent to the platform (kaigo_hub::demo::seed).
    hub.revoke_consent("demo-0-0", &kaigo_hub::pipeline::clock::now_rfc3339())
        .await
        .expect("revoked");
    let held = quarantine
        .wait("the retried copy withheld", |m| !m.is_empty())
        .await;
    assert_eq!(held[0].envelope(), envelope);
    assert_eq!(
        held[0].header("x-kaigo-reason"),
        Some("consent-denied:revoked")
    );
    assert_eq!(held[0].header("x-kaigo-refused-at"), Some("deliver"));
    assert_eq!(held[0].header("x-kaigo-hop"), Some("deliver"));
    let detail = held[0].header("x-kaigo-detail").unwrap_or_default();
    assert!(detail.contains("the platform (hub 9990000001)"), "{detail}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "the retry was POSTed");
    running.stop().await;
}
