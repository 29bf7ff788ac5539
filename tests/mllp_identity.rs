//! Who is sending over MLLP, on the real RabbitMQ. Over plain TCP a hospital is known by the
//! address it connects from, and MSH-4 must name the party of that address: with the shipped
//! parties file the two demo hospitals have their own addresses (127.0.0.1 and 127.0.0.2; on
//! Linux a client binds its source address anywhere in 127.0.0.0/8), each is accepted from its
//! own and refused from the other's. A parties file in which one address serves two parties
//! does not start a hub, and is not put in force by a reload, naming the address and both
//! parties. `kaigo-hub serve --demo` starts with the shipped file.
//!
//! Over TLS (`mllp_tls_cert`, `mllp_tls_key`, `mllp_tls_client_ca`; a throwaway PKI made with the
//! `openssl` command, `common::pki`) a hospital is its client certificate: both hospitals behind
//! one address are told apart by theirs, each may send only as itself, a connection without a
//! certificate or with one no party lists is answered `AR` and nothing is kept, one from a CA the
//! hub does not trust fails the handshake, and plain TCP gets no answer. The parties file must
//! give every MLLP party a certificate then. A renewed certificate is served after a reload.

mod common;

use common::pki::{self, Identity, fingerprint, issue};
use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::formats::hl7v2::{self, Message};
use kaigo_hub::formats::mllp::{Event, MllpDecoder, MllpLimits, encode_frame};
use kaigo_hub::serve;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FIRST: &str = "127.0.0.1";
const SECOND: &str = "127.0.0.2";

fn field(m: &Message, path: &str) -> String {
    m.value_at(&hl7v2::Path::compile(path).expect("a valid path"))
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// The UTF-8 A01 of the second hospital (MSH-4 2710000015), without a trailing block end.
fn adt_a01() -> Vec<u8> {
    let mut b = sample("hl7v2/adt-a01-utf8.hl7");
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

/// A TCP connection to `to` from the local address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    let source: IpAddr = from.parse().expect("an address");
    socket
        .bind(SocketAddr::new(source, 0))
        .unwrap_or_else(|e| panic!("binding the source address {from}: {e}"));
    socket
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connecting from {from}: {e}"))
}

/// Sends one frame on `stream` and reads its `ACK`.
async fn exchange(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), payload: &[u8]) -> Message {
    let mut framed = Vec::new();
    encode_frame(payload, &mut framed);
    stream.write_all(&framed).await.expect("write the frame");
    let mut decoder = MllpDecoder::new(MllpLimits::default());
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_event() {
            Some(Event::Frame(f)) => {
                return hl7v2::parse(&f).unwrap_or_else(|e| panic!("the ACK does not parse: {e}"));
            }
            Some(Event::Error(e)) => panic!("bad framing from the hub: {e}"),
            None => {}
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an ACK in time")
            .expect("read the ACK");
        assert!(n > 0, "the hub closed the connection before answering");
        decoder.push(&buf[..n]);
    }
}

async fn ack_from(from: &str, to: SocketAddr, payload: &[u8]) -> Message {
    exchange(&mut connect_from(from, to).await, payload).await
}

/// Both sample patients linked and consented to the platform.
async fn link_and_consent(hub: &kaigo_hub::pipeline::Hub) {
    link_sample_patients(hub);
    for (id, who) in [("mi-1", PERSON_1), ("mi-2", PERSON_2)] {
        grant(
            hub,
            id,
            who,
            Grantee::Kind(PartyKind::Platform),
            &[Category::Certification],
        )
        .await;
    }
}

/// The shipped parties text with both hospitals at the first address again.
fn shared_address(text: String) -> String {
    let moved = text.replace(
        &format!("mllp_peers: [\"{SECOND}\"]"),
        &format!("mllp_peers: [\"{FIRST}\"]"),
    );
    assert_ne!(moved, text, "the second hospital has its own address");
    moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_hospital_is_accepted_from_its_own_address_and_refused_from_the_others() {
    let s = Scratch::rabbit("mllp-addr", |t| t);
    let running = s.start().await;
    link_and_consent(&running.hub).await;
    let at = running.mllp_addr;

    let ack = ack_from(FIRST, at, &adt_a08()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    let ack = ack_from(SECOND, at, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());

    // Each one's MSH-4 from the other's address: refused, nothing kept.
    for (from, payload) in [(FIRST, adt_a01()), (SECOND, adt_a08())] {
        let ack = ack_from(from, at, &payload).await;
        assert_eq!(field(&ack, "MSA-1"), "AR", "from {from}: {}", ack.text());
        assert_eq!(field(&ack, "ERR-8"), "sender not allowed", "{}", ack.text());
    }
    let m = &running.hub.metrics;
    assert_eq!(m.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(m.rejected.load(Ordering::Relaxed), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_serving_two_parties_stops_the_start_and_a_reload_naming_both() {
    let s = Scratch::rabbit("mllp-shared", |t| t);
    let shipped = std::fs::read_to_string(&s.parties).expect("the parties file");
    let shared = shared_address(shipped.clone());
    put_atomically(&s.parties, shared.as_bytes());
    let e = serve::start(&s.config())
        .await
        .err()
        .expect("two hospitals behind one address without certificates");
    for part in [
        FIRST,
        HOSPITAL,
        HOSPITAL_2,
        &s.parties.display().to_string(),
    ] {
        assert!(e.contains(part), "`{part}` missing from: {e}");
    }

    // A running hub is not talked into it by a reload either: the parties in force stay.
    put_atomically(&s.parties, shipped.as_bytes());
    let running = s.start().await;
    link_and_consent(&running.hub).await;
    put_atomically(&s.parties, shared.as_bytes());
    let e = running
        .reload_parties(&s.config())
        .await
        .expect_err("a shared address is not put in force");
    assert!(
        e.contains(FIRST)
            && e.contains(HOSPITAL)
            && e.contains(HOSPITAL_2)
            && e.ends_with("the parties in force stay"),
        "{e}"
    );
    let ack = ack_from(FIRST, running.mllp_addr, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    let ack = ack_from(SECOND, running.mllp_addr, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kaigo_hub_serve_demo_starts_with_the_shipped_parties_file() {
    use std::process::{Command, Stdio};
    let scratch = Scratch::memory("mllp-demo", |t| t);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
    };
    let (http, mllp) = (free(), free());
    // The demo reads ./samples, as it does in the repository.
    std::os::unix::fs::symlink(repo().join("samples"), scratch.dir.join("samples"))
        .expect("link the samples");
    let log = scratch.dir.join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            cmd.env_remove(k);
        }
    }
    let path = |p: &Path| p.display().to_string();
    let mut child = cmd
        .args(["serve", "--demo"])
        .current_dir(&scratch.dir)
        .env("KAIGO_HTTP_ADDR", http.to_string())
        .env("KAIGO_MLLP_ADDR", mllp.to_string())
        .env("KAIGO_DATA_DIR", path(&scratch.dir.join("serve-data")))
        .env("KAIGO_PARTIES", path(&scratch.parties))
        .env("KAIGO_MAPPINGS", path(&repo().join("mappings")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("kaigo-hub serve --demo starts");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !log_text().contains("kaigo-hub demo: accepted") {
        assert!(
            child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline,
            "kaigo-hub serve --demo did not run its demo:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Over MLLP the second hospital is at its own address.
    let ack = ack_from(SECOND, mllp, &adt_a01()).await;
    assert_ne!(field(&ack, "ERR-8"), "sender not allowed", "{}", ack.text());
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}:\n{}", log_text());
}

// ------------------------------------------------------------------------------------------------
// MLLP over TLS
// ------------------------------------------------------------------------------------------------

struct Pki {
    ca: Identity,
    server: Identity,
    /// Registered to the first hospital.
    hospital: Identity,
    /// Registered to the second hospital.
    hospital_2: Identity,
    /// Issued by `ca`, registered to nobody.
    stranger: Identity,
    /// Issued by a CA the hub does not trust.
    foreign: Identity,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        pki::prepare(dir);
        let ca = pki::ca(dir, "ca");
        let other_ca = pki::ca(dir, "other-ca");
        Pki {
            server: issue(dir, &ca, "localhost", "test_server", "2"),
            hospital: issue(dir, &ca, "hospital", "test_client", "3"),
            hospital_2: issue(dir, &ca, "hospital-2", "test_client", "4"),
            stranger: issue(dir, &ca, "stranger", "test_client", "5"),
            foreign: issue(dir, &other_ca, "foreign", "test_client", "6"),
            ca,
        }
    }
}

/// The shipped parties text with each hospital's certificate registered and both hospitals at
/// the first address (over TLS their certificates tell them apart).
fn certified(text: String, pki: &Pki) -> String {
    let mut text = shared_address(text);
    for (id, who) in [(HOSPITAL, &pki.hospital), (HOSPITAL_2, &pki.hospital_2)] {
        let anchor = format!("  - id: \"{id}\"\n");
        assert!(text.contains(&anchor), "{id} is in parties.yaml");
        text = text.replacen(
            &anchor,
            &format!(
                "{anchor}    client_certs_sha256: [\"{}\"]\n",
                fingerprint(&who.cert)
            ),
            1,
        );
    }
    text
}

fn tls_config(s: &Scratch, pki: &Pki) -> kaigo_hub::config::Config {
    kaigo_hub::config::Config {
        mllp_tls_cert: Some(pki.server.cert.clone()),
        mllp_tls_key: Some(pki.server.key.clone()),
        mllp_tls_client_ca: Some(pki.ca.cert.clone()),
        ..s.config()
    }
}

/// A hub serving MLLP over TLS, both sample patients linked and consented.
async fn tls_world(tag: &str) -> (Scratch, Pki, serve::Running) {
    let s = Scratch::rabbit(tag, |t| t);
    let pki = Pki::new(&s.dir.join("pki"));
    let text = std::fs::read_to_string(&s.parties).expect("the parties file");
    put_atomically(&s.parties, certified(text, &pki).as_bytes());
    let running = s.start_with(&tls_config(&s, &pki)).await;
    link_and_consent(&running.hub).await;
    (s, pki, running)
}

fn connector(pki: &Pki, identity: Option<&Identity>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca.cert).expect("ca.pem") {
        roots
            .add(c.expect("a CA certificate"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&id.cert)
                .expect("client certificate")
                .collect::<Result<_, _>>()
                .expect("client certificate PEM");
            let key = PrivateKeyDer::from_pem_file(&id.key).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client identity")
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the hub's MLLP port with `identity` (or none).
async fn tls_connect(
    at: SocketAddr,
    pki: &Pki,
    identity: Option<&Identity>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(at)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tls_over(tcp, at, pki, identity).await
}

/// TLS over the connection `tcp` to `at`.
async fn tls_over(
    tcp: TcpStream,
    at: SocketAddr,
    pki: &Pki,
    identity: Option<&Identity>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = ServerName::IpAddress(at.ip().into());
    tokio::time::timeout(PATIENCE, connector(pki, identity).connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_a_hospital_is_its_certificate_and_may_send_only_as_itself() {
    let (_s, pki, running) = tls_world("mllp-tls").await;
    let at = running.mllp_addr;

    // Both hospitals connect from 127.0.0.1; each one's certificate says who it is.
    let mut first = tls_connect(at, &pki, Some(&pki.hospital))
        .await
        .expect("the first hospital's handshake");
    let ack = exchange(&mut first, &adt_a08()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    // The second hospital's MSH-4 over the first one's certificate: refused, nothing kept.
    let ack = exchange(&mut first, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(
        field(&ack, "ERR-5.1"),
        "sender-not-allowed",
        "{}",
        ack.text()
    );

    let mut second = tls_connect(at, &pki, Some(&pki.hospital_2))
        .await
        .expect("the second hospital's handshake");
    let ack = exchange(&mut second, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    let ack = exchange(&mut second, &adt_a08()).await;
    assert_eq!(
        field(&ack, "ERR-5.1"),
        "sender-not-allowed",
        "{}",
        ack.text()
    );

    // The first hospital lists mllp_peers: over TLS they still narrow where it may send from.
    let elsewhere = connect_from(SECOND, at).await;
    let mut elsewhere = tls_over(elsewhere, at, &pki, Some(&pki.hospital))
        .await
        .expect("the handshake itself succeeds");
    let ack = exchange(&mut elsewhere, &adt_a08()).await;
    assert_eq!(
        field(&ack, "ERR-5.1"),
        "sender-not-allowed",
        "{}",
        ack.text()
    );

    let m = &running.hub.metrics;
    assert_eq!(m.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(m.rejected.load(Ordering::Relaxed), 3);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_no_certificate_or_an_unregistered_one_is_refused_and_a_foreign_one_fails() {
    let (_s, pki, running) = tls_world("mllp-tls-refuse").await;
    let at = running.mllp_addr;

    let mut anonymous = tls_connect(at, &pki, None)
        .await
        .expect("a handshake without a client certificate");
    let ack = exchange(&mut anonymous, &adt_a08()).await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(field(&ack, "ERR-5.1"), "cert-required", "{}", ack.text());

    let mut stranger = tls_connect(at, &pki, Some(&pki.stranger))
        .await
        .expect("the stranger's certificate chains to the CA");
    let ack = exchange(&mut stranger, &adt_a08()).await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(
        field(&ack, "ERR-5.1"),
        "cert-not-registered",
        "{}",
        ack.text()
    );
    assert!(
        field(&ack, "ERR-8").contains(&fingerprint(&pki.stranger.cert)),
        "{}",
        ack.text()
    );

    // A certificate of a CA the hub does not trust: no frame is ever answered.
    let foreign = match tls_connect(at, &pki, Some(&pki.foreign)).await {
        Err(e) => e,
        Ok(mut s) => {
            let mut framed = Vec::new();
            encode_frame(&adt_a08(), &mut framed);
            let _ = s.write_all(&framed).await;
            let mut buf = [0u8; 64];
            match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
                Err(_) => panic!("the hub neither refused nor closed the connection"),
                Ok(Ok(0)) => "closed".to_string(),
                Ok(Ok(n)) => panic!("the hub sent {n} bytes to an untrusted certificate"),
                Ok(Err(e)) => e.to_string(),
            }
        }
    };
    assert!(
        foreign.to_lowercase().contains("alert") || foreign == "closed",
        "{foreign}"
    );

    // Plain TCP on the TLS port gets no ACK.
    let mut plain = TcpStream::connect(at).await.expect("connect");
    let mut framed = Vec::new();
    encode_frame(&adt_a08(), &mut framed);
    plain.write_all(&framed).await.expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut raw)).await;
    assert!(
        !raw.windows(3).any(|w| w == b"MSA"),
        "plain MLLP was answered: {:?}",
        String::from_utf8_lossy(&raw)
    );

    let m = &running.hub.metrics;
    assert_eq!(
        m.accepted.load(Ordering::Relaxed),
        0,
        "nothing refused was kept"
    );
    assert_eq!(m.rejected.load(Ordering::Relaxed), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_every_mllp_party_needs_a_certificate_and_a_renewed_one_is_served_after_a_reload()
{
    let s = Scratch::rabbit("mllp-tls-start", |t| t);
    let pki = Pki::new(&s.dir.join("pki"));
    // The shipped file: the hospitals list addresses but no certificates.
    let e = serve::start(&tls_config(&s, &pki))
        .await
        .err()
        .expect("MLLP parties without certificates over TLS");
    assert!(
        e.contains(HOSPITAL) && e.contains(HOSPITAL_2) && e.contains("client_certs_sha256"),
        "{e}"
    );

    let text = std::fs::read_to_string(&s.parties).expect("the parties file");
    put_atomically(&s.parties, certified(text, &pki).as_bytes());
    let cfg = tls_config(&s, &pki);
    let running = s.start_with(&cfg).await;
    let served = async || -> Vec<u8> {
        let s = tls_connect(running.mllp_addr, &pki, Some(&pki.hospital))
            .await
            .expect("handshake");
        s.get_ref()
            .1
            .peer_certificates()
            .expect("a server certificate")[0]
            .to_vec()
    };
    let first = served().await;

    let dir = s.dir.join("pki");
    let renewed = issue(&dir, &pki.ca, "localhost-renewed", "test_server", "9");
    std::fs::copy(&renewed.cert, &pki.server.cert).expect("renewed certificate");
    std::fs::copy(&renewed.key, &pki.server.key).expect("renewed key");
    let outcomes = running.reload_tls(&cfg);
    assert_eq!(
        outcomes,
        vec![
            Ok(format!(
                "MLLP source: mllp_tls_cert {} (leaf SHA-256 {})",
                pki.server.cert.display(),
                fingerprint(&renewed.cert)
            )),
            Ok(format!(
                "MLLP source: mllp_tls_client_ca {} (1 CAs, unchanged)",
                pki.ca.cert.display()
            )),
        ]
    );
    let now = served().await;
    assert_ne!(now, first);
    assert_eq!(
        fingerprint_of_der(&now),
        fingerprint(&renewed.cert),
        "the renewed certificate is served"
    );
    running.stop().await;
}

fn fingerprint_of_der(der: &[u8]) -> String {
    kaigo_hub::parties::cert_fingerprint(der)
}
