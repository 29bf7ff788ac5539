//! The HTTP source over HTTPS with optional client certificates (mTLS), as a hospital meets it: a
//! throwaway PKI made at test time with the `openssl` command line (a CA, a server certificate for
//! 127.0.0.1/localhost, a client certificate registered to the hospital, one the CA issued but no
//! party lists, and one from a CA the hub does not trust), a hub started in-process on the
//! in-memory bus (`common::Scratch`) with `tls_cert`/`tls_key`/`tls_client_ca`, and a rustls
//! client speaking raw HTTP/1.1. Fingerprints are taken with `openssl x509 -fingerprint`, not with
//! the hub's own code, so a wrong fingerprint calculation in the hub fails here. A renewed
//! certificate is served after `Running::reload_tls` (a broken one is refused and the one in
//! force stays), and `kaigo-hub serve` itself does that reload on SIGHUP and goes on serving. A
//! CA added to `tls_client_ca` admits its clients after a reload, and once taken out again
//! admits none, not even one resuming an earlier TLS session.
//!
//! The PKI helpers live in `common::pki` (shared with the HTTPS push sink's tests).

mod common;

use common::pki::{self, Identity, fingerprint, issue};
use common::{HOSPITAL, PATIENCE, PERSON_1, Reply, Scratch};
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::serve::{self, Running};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The municipality's demo key (another party than the hospital).
const MUNICIPALITY_KEY: &str = "demo-municipality-key";
const HOSPITAL_KEY: &str = "demo-hospital-key";

// ------------------------------------------------------------------------------------------------
// A throwaway PKI (common::pki)
// ------------------------------------------------------------------------------------------------

struct Pki {
    ca: Identity,
    server: Identity,
    /// Issued by `ca`, registered to the hospital.
    hospital: Identity,
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
            stranger: issue(dir, &ca, "stranger", "test_client", "4"),
            foreign: issue(dir, &other_ca, "foreign", "test_client", "5"),
            ca,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// A hub serving HTTPS
// ------------------------------------------------------------------------------------------------

struct World {
    scratch: Scratch,
    pki: Pki,
    running: Running,
}

/// A hub whose parties file registers the hospital's client certificate, with the sample patient
/// linked and consented to so that a Patient from the hospital is accepted (202).
async fn world(tag: &str) -> World {
    let scratch = Scratch::memory(tag, |text| text);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let hospital_fp = fingerprint(&pki.hospital.cert);
    let text = std::fs::read_to_string(&scratch.parties).expect("scratch parties");
    let anchor = format!("  - id: \"{HOSPITAL}\"\n");
    assert!(text.contains(&anchor), "the hospital is in parties.yaml");
    let text = text.replacen(
        &anchor,
        &format!("{anchor}    client_certs_sha256: [\"{hospital_fp}\"]\n"),
        1,
    );
    std::fs::write(&scratch.parties, text).expect("write scratch parties");
    let running = match serve::start(&tls_config(&scratch, &pki)).await {
        Ok(r) => r,
        Err(e) => panic!("the hub did not start over HTTPS: {e}"),
    };
    common::link_sample_patients(&running.hub);
    common::grant(
        &running.hub,
        "mtls-consent-1",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &[Category::Certification],
    )
    .await;
    World {
        scratch,
        pki,
        running,
    }
}

fn tls_config(scratch: &Scratch, pki: &Pki) -> Config {
    Config {
        tls_cert: Some(pki.server.cert.clone()),
        tls_key: Some(pki.server.key.clone()),
        tls_client_ca: Some(pki.ca.cert.clone()),
        ..scratch.config()
    }
}

// ------------------------------------------------------------------------------------------------
// A rustls client speaking raw HTTP/1.1
// ------------------------------------------------------------------------------------------------

fn connector(pki: &Pki, identity: Option<&Identity>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca.cert).expect("ca.pem") {
        roots
            .add(c.expect("ca certificate"))
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
                .expect("client cert")
                .collect::<Result<_, _>>()
                .expect("client cert PEM");
            let key = PrivateKeyDer::from_pem_file(&id.key).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client identity")
        }
    };
    TlsConnector::from(Arc::new(config))
}

/// One request over TLS on its own connection; `Err` says where the exchange broke.
async fn exchange(
    addr: SocketAddr,
    tls: &TlsConnector,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut s = tokio::time::timeout(PATIENCE, tls.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.write_all(body).await.map_err(|e| format!("write: {e}"))?;
    s.flush().await.map_err(|e| format!("flush: {e}"))?;
    read_reply(&mut s).await
}

/// Reads until one whole `Content-Length` answer is in (not until EOF: whether the server
/// sends `close_notify` is not what these tests are about).
async fn read_reply(s: &mut (impl AsyncRead + Unpin)) -> Result<Reply, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(reply) = complete(&raw) {
            return Ok(reply);
        }
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .map_err(|_| "no answer in time".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed after {} bytes: {:?}",
                raw.len(),
                String::from_utf8_lossy(&raw)
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn complete(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = raw.get(end + 4..end + 4 + len)?.to_vec();
    Some(Reply {
        status,
        headers,
        body,
    })
}

fn patient() -> Vec<u8> {
    common::sample("fhir/patient-jpcore.json")
}

async fn post_patient(
    w: &World,
    identity: Option<&Identity>,
    key: Option<&str>,
) -> Result<Reply, String> {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/fhir+json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    exchange(
        w.running.http_addr,
        &connector(&w.pki, identity),
        "POST",
        "/fhir/Patient",
        &headers,
        &patient(),
    )
    .await
}

fn diagnostics(r: &Reply) -> String {
    let v: Value = common::json(&r.body);
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn health_is_served_over_tls_and_plain_http_gets_no_answer() {
    let w = world("mtls-health").await;
    let addr = w.running.http_addr;
    for identity in [None, Some(&w.pki.hospital)] {
        let r = exchange(
            addr,
            &connector(&w.pki, identity),
            "GET",
            "/health",
            &[],
            b"",
        )
        .await
        .unwrap_or_else(|e| panic!("GET /health over TLS: {e}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(common::json(&r.body)["status"], "ok", "{}", r.text());
    }

    // The port speaks TLS only: a plain HTTP request gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut raw)).await;
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&raw)
    );
    w.running.stop().await;
    drop(w.scratch);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_client_certificate_is_the_party_without_an_api_key() {
    let w = world("mtls-cert").await;
    let r = post_patient(&w, Some(&w.pki.hospital), None)
        .await
        .unwrap_or_else(|e| panic!("hospital cert, no key: {e}"));
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.header("x-kaigo-envelope").is_some());

    // Its own key along with it is fine too.
    let r = post_patient(&w, Some(&w.pki.hospital), Some(HOSPITAL_KEY))
        .await
        .unwrap_or_else(|e| panic!("hospital cert and key: {e}"));
    assert_eq!(r.status, 202, "{}", r.text());

    // Without a certificate the API key works as over plain HTTP, and nothing at all is a 401.
    let r = post_patient(&w, None, Some(HOSPITAL_KEY))
        .await
        .unwrap_or_else(|e| panic!("no cert, hospital key: {e}"));
    assert_eq!(r.status, 202, "{}", r.text());
    let r = post_patient(&w, None, None)
        .await
        .unwrap_or_else(|e| panic!("no credentials: {e}"));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        w.running
            .hub
            .metrics
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    w.running.stop().await;
    drop(w.scratch);
}

#[tokio::test(flavor = "multi_thread")]
async fn unregistered_certificates_and_another_partys_key_are_refused() {
    let w = world("mtls-refuse").await;

    // Issued by the trusted CA, but no party lists it: 401 saying so, even with a good key.
    let stranger_fp = fingerprint(&w.pki.stranger.cert);
    for key in [None, Some(HOSPITAL_KEY)] {
        let r = post_patient(&w, Some(&w.pki.stranger), key)
            .await
            .unwrap_or_else(|e| panic!("stranger cert: {e}"));
        assert_eq!(r.status, 401, "{key:?}: {}", r.text());
        assert!(r.header("www-authenticate").is_some());
        let d = diagnostics(&r);
        assert!(
            d.contains("client_certs_sha256") && d.contains(&stranger_fp),
            "{d}"
        );
    }

    // The hospital's certificate with the municipality's key: a party acts only as itself.
    let r = post_patient(&w, Some(&w.pki.hospital), Some(MUNICIPALITY_KEY))
        .await
        .unwrap_or_else(|e| panic!("hospital cert, municipality key: {e}"));
    assert_eq!(r.status, 403, "{}", r.text());
    let d = diagnostics(&r);
    assert!(d.contains(HOSPITAL) && d.contains("another party"), "{d}");
    assert!(
        !d.contains(MUNICIPALITY_KEY),
        "the key is never echoed: {d}"
    );

    assert_eq!(
        w.running
            .hub
            .metrics
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing refused was accepted"
    );
    w.running.stop().await;
    drop(w.scratch);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let w = world("mtls-foreign").await;
    let addr = w.running.http_addr;

    // In TLS 1.3 the server judges the client's certificate after the client's side of the
    // handshake is done, so the verdict arrives as an alert on the first read.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    let verdict = match connector(&w.pki, Some(&w.pki.foreign))
        .connect(name, tcp)
        .await
    {
        Err(e) => format!("handshake: {e}"),
        Ok(mut s) => {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
                Err(_) => panic!("the server neither refused nor closed the connection"),
                Ok(Ok(n)) => panic!("the server sent {n} bytes to an untrusted client certificate"),
                Ok(Err(e)) => e.to_string(),
            }
        }
    };
    assert!(
        verdict.to_lowercase().contains("alert"),
        "the server ends the handshake with an alert: {verdict}"
    );

    // A whole request gets no HTTP answer (the write may already meet the closed connection).
    if let Ok(r) = post_patient(&w, Some(&w.pki.foreign), Some(HOSPITAL_KEY)).await {
        panic!(
            "a certificate from an untrusted CA got an HTTP answer: {} {}",
            r.status,
            r.text()
        );
    }

    // The same request with the hospital's own certificate goes through (the setup is sound).
    let r = post_patient(&w, Some(&w.pki.hospital), Some(HOSPITAL_KEY))
        .await
        .unwrap_or_else(|e| panic!("hospital cert: {e}"));
    assert_eq!(r.status, 202, "{}", r.text());
    w.running.stop().await;
    drop(w.scratch);
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_tls_settings_stop_the_start_naming_the_setting_and_file() {
    let scratch = Scratch::memory("mtls-config", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));

    // A certificate where the key belongs.
    let mut cfg = tls_config(&scratch, &pki);
    cfg.tls_key = Some(pki.ca.cert.clone());
    let e = serve::start(&cfg).await.err().expect("no usable key");
    assert!(
        e.contains("tls_key") && e.contains(&pki.ca.cert.display().to_string()),
        "{e}"
    );

    // The key of another certificate.
    let mut cfg = tls_config(&scratch, &pki);
    cfg.tls_key = Some(pki.hospital.key.clone());
    let e = serve::start(&cfg).await.err().expect("key and cert differ");
    assert!(e.contains("tls_cert") && e.contains("tls_key"), "{e}");

    // A CA bundle that is not PEM.
    let junk = scratch.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write junk");
    let mut cfg = tls_config(&scratch, &pki);
    cfg.tls_client_ca = Some(junk.clone());
    let e = serve::start(&cfg).await.err().expect("no CA certificates");
    assert!(
        e.contains("tls_client_ca") && e.contains(&junk.display().to_string()),
        "{e}"
    );

    // Client CAs without a server certificate.
    let cfg = Config {
        tls_client_ca: Some(pki.ca.cert.clone()),
        ..scratch.config()
    };
    let e = serve::start(&cfg).await.err().expect("half-set TLS");
    assert!(e.contains("tls_client_ca") && e.contains("tls_cert"), "{e}");
}

/// The leaf certificate (DER) the hub serves to a new connection.
async fn served_leaf(addr: SocketAddr, tls: &TlsConnector) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    let s = tokio::time::timeout(PATIENCE, tls.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    s.get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec()
}

fn der(pem_file: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem_file)
        .expect("PEM file")
        .next()
        .expect("a certificate")
        .expect("PEM certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_after_a_reload_and_a_broken_one_is_not() {
    let w = world("mtls-reload").await;
    let addr = w.running.http_addr;
    let cfg = tls_config(&w.scratch, &w.pki);
    let tls = connector(&w.pki, None);
    let first = der(&w.pki.server.cert);
    assert_eq!(served_leaf(addr, &tls).await, first);

    // The certificate is renewed in place (same files, a new key and serial), as an ACME client
    // or an operator would, then SIGHUP's reload runs.
    let dir = w.scratch.dir.join("pki");
    let renewed = issue(&dir, &w.pki.ca, "localhost-renewed", "test_server", "9");
    std::fs::copy(&renewed.cert, &w.pki.server.cert).expect("renewed certificate");
    std::fs::copy(&renewed.key, &w.pki.server.key).expect("renewed key");
    let outcomes = w.running.reload_tls(&cfg);
    let expected = format!(
        "HTTP source: tls_cert {} (leaf SHA-256 {})",
        w.pki.server.cert.display(),
        fingerprint(&renewed.cert)
    );
    let cas = format!(
        "HTTP source: tls_client_ca {} (1 CAs, unchanged)",
        w.pki.ca.cert.display()
    );
    assert_eq!(outcomes, vec![Ok(expected), Ok(cas)]);
    assert_ne!(der(&renewed.cert), first);
    assert_eq!(served_leaf(addr, &tls).await, der(&renewed.cert));
    let r = exchange(addr, &tls, "GET", "/health", &[], b"")
        .await
        .unwrap_or_else(|e| panic!("GET /health after the reload: {e}"));
    assert_eq!(r.status, 200, "{}", r.text());

    // A key that is not the certificate's own: refused, naming both files; the renewed pair
    // stays in force.
    std::fs::copy(&w.pki.hospital.key, &w.pki.server.key).expect("a mismatched key");
    let outcomes = w.running.reload_tls(&cfg);
    assert_eq!(outcomes.len(), 2);
    let e = outcomes[0]
        .clone()
        .expect_err("a key of another certificate");
    assert!(
        e.contains("tls_cert")
            && e.contains("tls_key")
            && e.contains(&w.pki.server.key.display().to_string())
            && e.ends_with("the certificate in force stays"),
        "{e}"
    );
    assert_eq!(served_leaf(addr, &tls).await, der(&renewed.cert));
    w.running.stop().await;
    drop(w.scratch);
}

/// Whether the hub at `addr` lets a client through the handshake: the status of its answer to
/// `GET /health`, or the TLS error that ended the connection.
async fn health_over(addr: SocketAddr, tls: &TlsConnector) -> Result<u16, String> {
    exchange(addr, tls, "GET", "/health", &[], b"")
        .await
        .map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_added_to_tls_client_ca_by_a_reload_admits_its_clients_and_a_broken_file_changes_nothing()
 {
    let w = world("mtls-ca-reload").await;
    let cfg = tls_config(&w.scratch, &w.pki);
    let addr = w.running.http_addr;
    // Made while the CA file is intact (the clients trust the hub's certificate through it).
    let (foreign, hospital) = (
        connector(&w.pki, Some(&w.pki.foreign)),
        connector(&w.pki, Some(&w.pki.hospital)),
    );
    let ca_file = &w.pki.ca.cert;
    let original = std::fs::read(ca_file).expect("ca.pem");
    assert!(
        health_over(addr, &foreign).await.is_err(),
        "the other CA is not trusted yet"
    );

    // The operator appends the other CA to the bundle (a CA rotation) and sends SIGHUP.
    let other_ca = w.scratch.dir.join("pki").join("other-ca.pem");
    let mut bundle = original.clone();
    bundle.extend(std::fs::read(&other_ca).expect("other-ca.pem"));
    std::fs::write(ca_file, &bundle).expect("the new bundle");
    let outcomes = w.running.reload_tls(&cfg);
    assert_eq!(
        outcomes[1],
        Ok(format!(
            "HTTP source: tls_client_ca {} (2 CAs)",
            ca_file.display()
        )),
        "{outcomes:?}"
    );
    assert_eq!(
        health_over(addr, &foreign).await,
        Ok(200),
        "a client of the added CA passes the handshake"
    );
    assert_eq!(health_over(addr, &hospital).await, Ok(200));

    // A file that is not PEM: refused, naming the setting and file; both CAs stay in force.
    std::fs::write(ca_file, b"not a certificate\n").expect("a broken bundle");
    let outcomes = w.running.reload_tls(&cfg);
    let e = outcomes[1].clone().expect_err("a broken CA file");
    assert!(
        e.contains("tls_client_ca")
            && e.contains(&ca_file.display().to_string())
            && e.ends_with("the CAs in force stay"),
        "{e}"
    );
    assert_eq!(health_over(addr, &foreign).await, Ok(200));

    // The other CA taken out again: its clients no longer get through, not even by resuming the
    // session the foreign client's connector remembers (a resumed session skips the check).
    std::fs::write(ca_file, &original).expect("the first bundle");
    let outcomes = w.running.reload_tls(&cfg);
    assert!(
        outcomes[1].as_ref().is_ok_and(|l| l.contains("(1 CAs)")),
        "{outcomes:?}"
    );
    assert!(health_over(addr, &foreign).await.is_err());
    assert_eq!(health_over(addr, &hospital).await, Ok(200));
    w.running.stop().await;
    drop(w.scratch);
}

/// The leaf the hub at `addr` serves, or `None` while nothing completes a handshake there.
async fn try_served_leaf(addr: SocketAddr, tls: &TlsConnector) -> Option<Vec<u8>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let name = ServerName::IpAddress(addr.ip().into());
    let s = tokio::time::timeout(PATIENCE, tls.connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    Some(s.get_ref().1.peer_certificates()?.first()?.to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn kaigo_hub_serve_reloads_its_certificate_on_sighup_and_keeps_serving() {
    use std::process::{Command, Stdio};
    let scratch = Scratch::memory("mtls-sighup", |t| t);
    let pki = Pki::new(&scratch.dir.join("pki"));
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
    };
    let (http, mllp) = (free(), free());
    let log = scratch.dir.join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            cmd.env_remove(k);
        }
    }
    let path = |p: &Path| p.display().to_string();
    let mut child = cmd
        .arg("serve")
        .current_dir(&scratch.dir)
        .env("KAIGO_HTTP_ADDR", http.to_string())
        .env("KAIGO_MLLP_ADDR", mllp.to_string())
        .env("KAIGO_DATA_DIR", path(&scratch.dir.join("serve-data")))
        .env("KAIGO_PARTIES", path(&scratch.parties))
        .env("KAIGO_MAPPINGS", path(&common::repo().join("mappings")))
        .env("KAIGO_TLS_CERT", path(&pki.server.cert))
        .env("KAIGO_TLS_KEY", path(&pki.server.key))
        .env("KAIGO_TLS_CLIENT_CA", path(&pki.ca.cert))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("kaigo-hub serve starts");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let tls = connector(&pki, None);
    let deadline = std::time::Instant::now() + PATIENCE;
    let first = loop {
        if let Some(leaf) = try_served_leaf(http, &tls).await {
            break leaf;
        }
        assert!(
            child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline,
            "kaigo-hub serve did not serve HTTPS:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(first, der(&pki.server.cert));

    let renewed = issue(
        &scratch.dir.join("pki"),
        &pki.ca,
        "localhost-renewed",
        "test_server",
        "9",
    );
    std::fs::copy(&renewed.cert, &pki.server.cert).expect("renewed certificate");
    std::fs::copy(&renewed.key, &pki.server.key).expect("renewed key");
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        let sent = Command::new("kill").args([sig, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig} {pid}");
    };
    signal("-HUP");
    common::eventually("the renewed certificate is served", async || {
        try_served_leaf(http, &tls).await == Some(der(&renewed.cert))
    })
    .await;
    assert!(
        child.try_wait().expect("child status").is_none(),
        "SIGHUP must not stop the hub:\n{}",
        log_text()
    );
    assert!(
        log_text().contains(&format!(
            "SIGHUP: reloaded HTTP source: tls_cert {}",
            pki.server.cert.display()
        )),
        "{}",
        log_text()
    );

    signal("-TERM");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kaigo-hub serve did not stop on SIGTERM:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}:\n{}", log_text());
    assert!(log_text().contains("kaigo-hub: stopped"), "{}", log_text());
}
