//! The HTTP source as a hospital, a municipality and an operator meet it: a hub started in-process
//! (`serve::start`, in-memory bus, a temporary data directory) and spoken to over a real TCP
//! socket by a small HTTP/1.1 client below. Covers the refusals (401, 415, 413, 400, 422, 403 with
//! the message held in quarantine), consent registration, a Patient accepted with 202 once consent
//! exists and then translated, the audit search, and the metadata/health/metrics shapes.

use kaigo_hub::config::Config;
use kaigo_hub::consent::Subject;
use kaigo_hub::serve::{self, Running};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOSPITAL_KEY: &str = "demo-hospital-key";
const MUNICIPALITY_KEY: &str = "demo-municipality-key";
const FHIR: &str = "application/fhir+json";

// ------------------------------------------------------------------------------------------------
// A hub in a temporary directory
// ------------------------------------------------------------------------------------------------

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "kaigo-http-source-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository's parties file, its relative `data/` inboxes and outboxes moved into `dir`.
fn moved_parties(dir: &TempDir) -> PathBuf {
    let parties = std::fs::read_to_string(repo("parties.yaml"))
        .expect("parties.yaml")
        .replace("data/", &format!("{}/", dir.0.display()));
    let path = dir.0.join("parties.yaml");
    std::fs::write(&path, parties).expect("write parties");
    path
}

/// Starts a hub on port 0 with the repository's parties and mappings. The parties file is the
/// repository's, with its relative `data/` inboxes and outboxes moved into the temp dir so a test
/// never writes into the working tree.
async fn start_hub(dir: &TempDir, body_limit: Option<usize>) -> Running {
    let parties_path = moved_parties(dir);
    let mut cfg = Config {
        http_addr: "127.0.0.1:0".into(),
        mllp_addr: "127.0.0.1:0".into(),
        data_dir: dir.0.join("data"),
        parties: parties_path,
        mappings: repo("mappings"),
        prefix: "test".into(),
        ..Default::default()
    };
    if let Some(l) = body_limit {
        cfg.body_limit = l;
    }
    serve::start(&cfg).await.expect("hub starts")
}

// ------------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ------------------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `issue[0]` of an OperationOutcome answer, with the content type checked.
    fn issue(&self) -> Value {
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with(FHIR)),
            "content type {:?}",
            self.header("content-type")
        );
        let v = self.json();
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        v["issue"][0].clone()
    }

    fn diagnostics(&self) -> String {
        self.issue()["diagnostics"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One request on its own connection (`Connection: close`).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if method == "POST" && !framed {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer (413) without reading the body and close; that is not our failure.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("answer within 20 s")
        .expect("read answer");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

async fn post(addr: SocketAddr, path: &str, key: Option<&str>, body: &[u8]) -> Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", FHIR)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(addr, "POST", path, &headers, body).await
}

async fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, b"").await
}

// ------------------------------------------------------------------------------------------------
// Test data
// ------------------------------------------------------------------------------------------------

fn patient() -> Vec<u8> {
    std::fs::read(repo("samples/fhir/patient-jpcore.json")).expect("sample patient")
}

/// The person the hospital knows as patient 00012345.
fn subject() -> Subject {
    Subject::new("131011", "0000100001").expect("valid subject")
}

/// A Consent by which that person lets certification data come to the platform.
fn consent() -> Value {
    json!({
        "resourceType": "Consent",
        "id": "http-test-consent-1",
        "status": "active",
        "contained": [{
            "resourceType": "Patient",
            "id": "subject",
            "identifier": [
                {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber", "value": "131011"},
                {"system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber", "value": "0000100001"}
            ]
        }],
        "patient": {"reference": "#subject"},
        "dateTime": "2025-04-01T10:00:00+09:00",
        "provision": {
            "type": "permit",
            "period": {"start": "2024-04-01"},
            "actor": [{
                "role": {"coding": [{"system": "urn:kaigo-hub:party-kind", "code": "platform"}]},
                "reference": {"display": "介護情報基盤"}
            }],
            "class": [{"code": "certification"}]
        }
    })
}

async fn queue_len(running: &Running, queue: &str) -> u64 {
    running
        .hub
        .bus
        .queue_len(queue)
        .await
        .expect("queue length")
}

async fn link_hospital_patient(running: &Running) {
    let store = running.hub.store.clone();
    tokio::task::spawn_blocking(move || store.link("1311234567", "00012345", &subject()))
        .await
        .expect("link task")
        .expect("link stored");
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn refusals_before_the_pipeline_are_operation_outcomes() {
    let dir = TempDir::new();
    let running = start_hub(&dir, None).await;
    let addr = running.http_addr;

    // 401 without a key, with an unknown key, with another scheme — each with a Bearer challenge.
    for key in [None, Some("not-a-key")] {
        let r = post(addr, "/fhir/Patient", key, &patient()).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        );
        assert_eq!(r.issue()["code"], "login");
        assert!(
            !r.diagnostics().contains("not-a-key"),
            "the key is never echoed"
        );
    }
    let r = request(
        addr,
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", FHIR),
            ("Authorization", "Basic aGk6dGhlcmU="),
        ],
        &patient(),
    )
    .await;
    assert_eq!(r.status, 401);

    // 415 for a type that is not FHIR JSON.
    let auth = format!("Bearer {HOSPITAL_KEY}");
    let r = request(
        addr,
        "POST",
        "/fhir/Patient",
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        &patient(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.issue()["code"], "not-supported");
    // application/json is taken as well (the answer is about consent, not the media type).
    let r = request(
        addr,
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        &patient(),
    )
    .await;
    assert_ne!(r.status, 415, "{}", r.text());

    // 400 for a body that is not JSON (HL7 v2 belongs on MLLP), with the parse position.
    let r = post(
        addr,
        "/fhir/Patient",
        Some(HOSPITAL_KEY),
        b"MSH|^~\\&|HIS|1311234567\r",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.issue()["code"], "structure");
    assert!(r.diagnostics().contains("not JSON"), "{}", r.diagnostics());
    assert!(r.header("x-kaigo-envelope").is_none(), "nothing was kept");
    let r = post(
        addr,
        "/fhir/Patient",
        Some(HOSPITAL_KEY),
        b"{\"resourceType\": \"Patient\",",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.diagnostics().contains("line 1"), "{}", r.diagnostics());

    // 400 when the resource is not what the URL names.
    let r = post(addr, "/fhir/Observation", Some(HOSPITAL_KEY), &patient()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.issue()["code"], "invalid");
    assert!(
        r.diagnostics().contains("/fhir/Patient"),
        "{}",
        r.diagnostics()
    );
    let r = post(addr, "/fhir", Some(HOSPITAL_KEY), &patient()).await;
    assert_eq!(r.status, 400, "POST /fhir takes a Bundle: {}", r.text());

    // Unknown paths and methods are OperationOutcomes too.
    let r = get(addr, "/nowhere", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.issue()["code"], "not-found");
    let r = get(addr, "/fhir/Patient", Some(HOSPITAL_KEY)).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    // None of this reached the bus.
    let t = &running.hub.topology;
    assert_eq!(queue_len(&running, &t.translate_queue()).await, 0);
    assert_eq!(queue_len(&running, &t.dead_queue()).await, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_413() {
    let dir = TempDir::new();
    let running = start_hub(&dir, Some(4096)).await;
    let addr = running.http_addr;
    let mut big = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
    big["entry"] = json!([{ "resource": { "resourceType": "Binary", "contentType": "text/plain", "data": "QUFB".repeat(2000) } }]);
    let body = big.to_string().into_bytes();
    assert!(body.len() > 4096);

    let r = post(addr, "/fhir", Some(HOSPITAL_KEY), &body).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.issue()["code"], "too-long");
    assert!(r.diagnostics().contains("4096"), "{}", r.diagnostics());

    // Without a Content-Length (chunked), the limit holds while reading.
    let auth = format!("Bearer {HOSPITAL_KEY}");
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = request(
        addr,
        "POST",
        "/fhir",
        &[
            ("Content-Type", FHIR),
            ("Authorization", &auth),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());

    // The key is checked before the size: a stranger learns nothing about the limit.
    let r = post(addr, "/fhir", None, &body).await;
    assert_eq!(r.status, 401);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_is_quarantined_without_consent_and_accepted_with_it() {
    let dir = TempDir::new();
    let running = start_hub(&dir, None).await;
    let addr = running.http_addr;
    let hub = running.hub.clone();
    let t = hub.topology.clone();

    // 422: JSON that fails its mapping (birthDate must be YYYY-MM-DD), kept in the dead-letter queue.
    let mut bad: Value = serde_json::from_slice(&patient()).expect("sample is JSON");
    bad["birthDate"] = json!("1941/03/15");
    let r = post(
        addr,
        "/fhir/Patient",
        Some(HOSPITAL_KEY),
        bad.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.issue()["code"], "processing");
    assert!(
        r.diagnostics().contains("birth"),
        "the mapping rule is named: {}",
        r.diagnostics()
    );
    let dead_envelope = r
        .header("x-kaigo-envelope")
        .expect("kept: envelope header")
        .to_string();
    assert!(r.diagnostics().contains(&dead_envelope));
    assert_eq!(queue_len(&running, &t.dead_queue()).await, 1);

    // 403 while nobody knows whose data this is (the Patient carries only the hospital's id).
    let r = post(addr, "/fhir/Patient", Some(HOSPITAL_KEY), &patient()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.diagnostics().contains("unknown-subject"),
        "{}",
        r.diagnostics()
    );
    assert_eq!(queue_len(&running, &t.quarantine_queue()).await, 1);

    // 403 once linked but without consent (a fresh store has none): held in quarantine.
    link_hospital_patient(&running).await;
    let r = post(addr, "/fhir/Patient", Some(HOSPITAL_KEY), &patient()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.issue()["code"], "forbidden");
    let d = r.diagnostics();
    assert!(d.contains("consent-denied"), "{d}");
    let envelope = r.header("x-kaigo-envelope").expect("envelope header");
    assert!(d.contains(envelope), "{d}");
    for personal in ["0000100001", "00012345", "試験", "1941"] {
        assert!(!d.contains(personal), "no personal data in the answer: {d}");
    }
    assert_eq!(queue_len(&running, &t.quarantine_queue()).await, 2);
    assert_eq!(queue_len(&running, &t.translate_queue()).await, 0);

    // Only a municipality or the platform registers consents.
    let body = consent().to_string();
    let r = post(addr, "/fhir/Consent", Some(HOSPITAL_KEY), body.as_bytes()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // An unusable Consent is a 422 naming the JSON path.
    let mut broken = consent();
    broken["provision"]["period"]["start"] = json!("2024-04-01T00:00:00+09:00");
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        broken.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.diagnostics().contains("$.provision.period.start"),
        "{}",
        r.diagnostics()
    );
    // A municipality registers consents of its own insured only.
    let mut other = consent();
    other["contained"][0]["identifier"][0]["value"] = json!("435073");
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        other.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.diagnostics().contains("own insured"),
        "{}",
        r.diagnostics()
    );
    // The municipality registers it: 201 with the grant id.
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-kaigo-consent"), Some("http-test-consent-1"));
    assert!(r.diagnostics().contains("http-test-consent-1"));
    assert_eq!(r.issue()["severity"], "information");
    // Registering the same consent again is harmless; a different one under that id is a 409.
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut changed = consent();
    changed["provision"]["period"]["start"] = json!("2024-05-01");
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        changed.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // Now the hospital's Patient is accepted: 202 only after it is on the bus.
    let r = request(
        addr,
        "POST",
        "/fhir/Patient",
        &[
            ("Content-Type", FHIR),
            ("Authorization", &format!("Bearer {HOSPITAL_KEY}")),
            ("X-Request-Id", "his-msg-0001"),
        ],
        &patient(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.issue()["severity"], "information");
    let accepted = r
        .header("x-kaigo-envelope")
        .expect("envelope header")
        .to_string();
    assert!(r.diagnostics().contains(&accepted), "{}", r.diagnostics());
    assert!(r.diagnostics().contains("jpcore-patient-insured-person"));
    assert_eq!(r.header("x-request-id"), Some("his-msg-0001"));
    assert_eq!(
        hub.metrics.accepted.load(Ordering::Relaxed),
        1,
        "counted as accepted"
    );
    // … and the translate hop takes it from there.
    let translated = async {
        while hub.metrics.translated.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), translated)
        .await
        .expect("the accepted Patient is translated");

    // A Bundle larger than actix's 256 KiB default passes under the configured limit.
    let mut bundle: Value = serde_json::from_slice(
        &std::fs::read(repo("samples/fhir/bundle-collection.json")).expect("sample bundle"),
    )
    .expect("JSON");
    let mut entries =
        vec![json!({ "resource": serde_json::from_slice::<Value>(&patient()).expect("JSON") })];
    entries.push(json!({ "resource": { "resourceType": "Binary", "contentType": "text/plain", "data": "QUFB".repeat(100_000) } }));
    bundle["entry"] = Value::Array(entries);
    let body = bundle.to_string();
    assert!(body.len() > 256 * 1024);
    let r = post(addr, "/fhir", Some(HOSPITAL_KEY), body.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text());

    // The audit trail: events for the accepted envelope, searchable by the municipality.
    let r = get(
        addr,
        &format!("/fhir/AuditEvent?envelope={accepted}"),
        Some(MUNICIPALITY_KEY),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(
        (b["resourceType"].as_str(), b["type"].as_str()),
        (Some("Bundle"), Some("searchset"))
    );
    let entries = b["entry"].as_array().expect("entries");
    assert!(!entries.is_empty(), "{b}");
    assert_eq!(b["total"].as_u64(), Some(entries.len() as u64));
    for e in entries {
        assert_eq!(e["resource"]["resourceType"], "AuditEvent", "{e}");
        assert!(e["resource"].to_string().contains(&accepted), "{e}");
    }
    let hops: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["resource"]["type"]["code"].as_str())
        .collect();
    assert!(
        hops.contains(&"ingress") && hops.contains(&"consent"),
        "{hops:?}"
    );
    // By subject: the keyed hash, never the raw number.
    let hash = hub.subject_hash(&subject());
    let r = get(
        addr,
        &format!("/fhir/AuditEvent?subject={hash}&_count=2"),
        Some(MUNICIPALITY_KEY),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["entry"].as_array().map(Vec::len), Some(2), "{b}");
    assert!(b["total"].as_u64().unwrap_or(0) > 2, "{b}");
    let r = get(
        addr,
        "/fhir/AuditEvent?subject=0000100001",
        Some(MUNICIPALITY_KEY),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.diagnostics().contains("0000100001"));
    let r = get(addr, "/fhir/AuditEvent?subjet=x", Some(MUNICIPALITY_KEY)).await;
    assert_eq!(r.status, 400);
    // The dead-lettered message's envelope is there too; hospitals cannot search.
    let r = get(
        addr,
        &format!("/fhir/AuditEvent?envelope={dead_envelope}"),
        Some(MUNICIPALITY_KEY),
    )
    .await;
    assert!(r.json()["total"].as_u64().unwrap_or(0) >= 1, "{}", r.text());
    let r = get(addr, "/fhir/AuditEvent", Some(HOSPITAL_KEY)).await;
    assert_eq!(r.status, 403);
    let r = get(addr, "/fhir/AuditEvent", None).await;
    assert_eq!(r.status, 401);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_with_one_unknown_person_is_202_for_the_others_and_names_the_refused_one() {
    let dir = TempDir::new();
    let running = start_hub(&dir, None).await;
    let (addr, hub) = (running.http_addr, running.hub.clone());
    let t = hub.topology.clone();
    link_hospital_patient(&running).await;
    let body = consent().to_string();
    let r = post(
        addr,
        "/fhir/Consent",
        Some(MUNICIPALITY_KEY),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // Two Patients: the linked, consented one, and one whose hospital id is linked to nobody.
    let known: Value = serde_json::from_slice(&patient()).expect("JSON");
    let mut unknown = known.clone();
    unknown["identifier"][0]["value"] = json!("99999999");
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{ "resource": known }, { "resource": unknown }],
    });
    let r = post(
        addr,
        "/fhir",
        Some(HOSPITAL_KEY),
        bundle.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let envelope = r.header("x-kaigo-envelope").expect("envelope").to_string();
    let v = r.json();
    let issues = v["issue"].as_array().expect("issues");
    assert_eq!(issues.len(), 2, "{v}");
    assert_eq!(issues[0]["severity"], "information");
    let first = issues[0]["diagnostics"].as_str().unwrap_or_default();
    assert!(
        first.contains("2 documents") && first.contains("1 document refused"),
        "{first}"
    );
    assert_eq!(issues[1]["severity"], "warning");
    assert_eq!(issues[1]["code"], "forbidden");
    let refused = issues[1]["diagnostics"].as_str().unwrap_or_default();
    for part in [
        "unknown-subject",
        "document 2",
        "InsuredPerson@1",
        envelope.as_str(),
        "quarantine",
    ] {
        assert!(refused.contains(part), "`{part}` missing: {refused}");
    }
    for personal in ["99999999", "00012345", "0000100001", "試験", "1941"] {
        assert!(
            !v.to_string().contains(personal),
            "`{personal}` in the answer: {v}"
        );
    }

    // The translate hop publishes document 1 and keeps document 2 in quarantine.
    let settled = async {
        while hub.metrics.translated.load(Ordering::Relaxed) == 0
            || queue_len(&running, &t.quarantine_queue()).await == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .expect("document 1 translated, document 2 kept");
    let mut kept = hub
        .bus
        .consume(&t.quarantine_queue(), 10)
        .await
        .expect("consume quarantine");
    let k = tokio::time::timeout(Duration::from_secs(10), kept.next())
        .await
        .expect("a kept copy")
        .expect("a delivery")
        .expect("no bus error");
    assert_eq!(k.props.message_id.as_deref(), Some(envelope.as_str()));
    assert_eq!(k.props.header("x-kaigo-doc-index"), Some("1"));
    assert_eq!(k.props.header("x-kaigo-reason"), Some("unknown-subject"));
    assert_eq!(k.props.header("x-kaigo-refused-at"), Some("translate"));
    assert_eq!(k.props.header("x-kaigo-subject"), None, "nobody known");
    assert_eq!(hub.metrics.translated.load(Ordering::Relaxed), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_health_and_metrics_have_their_shapes_and_stop_closes_the_port() {
    let dir = TempDir::new();
    let running = start_hub(&dir, None).await;
    let addr = running.http_addr;

    let r = get(addr, "/fhir/metadata", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with(FHIR))
    );
    let cs = r.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert!(
        cs["format"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("json")))
    );
    assert_eq!(cs["rest"][0]["mode"], "server");
    let resources = cs["rest"][0]["resource"].as_array().expect("resources");
    let find = |t: &str| {
        resources
            .iter()
            .find(|r| r["type"] == t)
            .unwrap_or_else(|| panic!("{t} listed"))
            .clone()
    };
    for t in ["Bundle", "Patient", "Consent"] {
        assert_eq!(find(t)["interaction"][0]["code"], "create", "{t}");
    }
    let audit = find("AuditEvent");
    assert_eq!(audit["interaction"][0]["code"], "search-type");
    let params: Vec<&str> = audit["searchParam"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["envelope", "subject", "party"]);

    let r = get(addr, "/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok", "bus": "memory"}));

    // A copy waiting in the longest of the default waiting rooms (10 minutes).
    let t = running.hub.topology.clone();
    running
        .hub
        .bus
        .publish(
            &t.wait(),
            "600000",
            &kaigo_hub::bus::Props::default(),
            b"{}",
        )
        .await
        .expect("published");
    let r = get(addr, "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    for line in [
        "kaigo_messages_accepted_total 0",
        "# TYPE kaigo_queue_depth gauge",
        "kaigo_queue_depth{queue=\"translate\"} 0",
        "kaigo_queue_depth{queue=\"deliver\"} 0",
        "kaigo_queue_depth{queue=\"dead\"} 0",
        "kaigo_queue_depth{queue=\"quarantine\"} 0",
        "kaigo_queue_depth{queue=\"deliver.wait.1000\"} 0",
        "kaigo_queue_depth{queue=\"deliver.wait.600000\"} 1",
        "kaigo_bus_up 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }

    running.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed after stop"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_forgets_delivery_keys_older_than_delivered_keep_days() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // A store from an earlier run: one key recorded ten days ago, one just now.
    {
        let store = kaigo_hub::store::sqlite::SqliteStore::open(&data.join("kaigo-hub.sqlite"))
            .expect("sqlite");
        use kaigo_hub::store::Store;
        store.mark_delivered("old/0/r").unwrap();
        store.mark_delivered("new/0/r").unwrap();
    }
    rusqlite::Connection::open(data.join("kaigo-hub.sqlite"))
        .and_then(|c| {
            c.execute(
                "UPDATE delivered SET at = datetime('now', '-10 days') WHERE key = 'old/0/r'",
                [],
            )
        })
        .expect("backdate");
    let parties_path = moved_parties(&dir);
    let mut cfg = Config {
        http_addr: "127.0.0.1:0".into(),
        mllp_addr: "127.0.0.1:0".into(),
        data_dir: data,
        parties: parties_path,
        mappings: repo("mappings"),
        prefix: "test".into(),
        delivered_keep_days: 7,
        ..Default::default()
    };
    cfg.poll_ms = 60_000;
    let running = serve::start(&cfg).await.expect("hub starts");
    let addr = running.http_addr;
    let mut text = String::new();
    for _ in 0..200 {
        text = get(addr, "/metrics", None).await.text();
        if text
            .lines()
            .any(|l| l == "kaigo_delivery_keys_forgotten_total 1")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        text.lines()
            .any(|l| l == "kaigo_delivery_keys_forgotten_total 1"),
        "{text}"
    );
    assert!(!running.hub.store.was_delivered("old/0/r").unwrap());
    assert!(running.hub.store.was_delivered("new/0/r").unwrap());
    running.stop().await;
}
