//! Faults the hub must ride out without losing a message it accepted from a sender, on the real
//! RabbitMQ (amqp://guest:guest@127.0.0.1:5672/%2f or `KAIGO_TEST_AMQP_URL`) and, for the store
//! outage, the real PostgreSQL (postgres://postgres@127.0.0.1:5432/test):
//!
//! 1. the `kaigo-hub serve` process is SIGKILLed while HL7 ADT messages stream in over MLLP, and
//!    restarted: every message ACKed `AA` reaches the recipient's AMQP queue and directory, and
//!    the audit chain still verifies. A copy can repeat only for a delivery the dead process had
//!    not recorded: the de-dup key is written after the broker confirmed the recipient's copy,
//!    so a copy whose publish was in flight at the kill is published again. Exactly-once to a
//!    queue is NOT guaranteed across a crash (measured: 0–7 repeats per run of 60 messages);
//! 2. the broker drops the hub's connection (`rabbitmqctl close_connection`) twice while FHIR
//!    posts flow: lapin recovers, unsettled deliveries come back, every accepted envelope is
//!    delivered and the hub hands each copy to its sink once. The queue can still receive one
//!    copy twice when a publish's confirm is lost with the connection (the bus publishes it
//!    again: at-least-once); the test allows exactly that and nothing else. The same stream
//!    rides out a broker restart (`rabbitmqctl stop_app` + `start_app`: every connection drops,
//!    the quorum queues go down and come back from disk, the port is closed for seconds; senders
//!    hear 503 meanwhile and retry);
//! 3. the PostgreSQL store goes away for a few seconds (the hub's role may not log in, its
//!    backends are terminated) while a backlog waits at translate and deliver: decisions become
//!    indeterminate and are retried, store calls are retried, ingress answers 503, nothing is
//!    dead-lettered, and every accepted envelope is sent once to each recipient after the store
//!    is back.
//!
//! The tests of this file run one at a time (the restart touches every user of the broker).
//! Each test has its own topology prefix and temp dir (tests/common `Scratch`, which deletes the
//! prefix's queues and exchanges afterwards, also on failure); test 2 also runs in a virtual host
//! of its own so it can close exactly its hub's connections without touching anyone else's on
//! the shared broker (so it needs `rabbitmqctl` for the broker's node on this machine); test 3
//! uses a schema and a login role of its own, created and dropped as `postgres`. The
//! numbers each run measured are printed (`cargo test --test faults -- --nocapture`). A broker or
//! database that cannot be reached fails the test, saying so; none is skipped.

mod common;

use common::*;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, Topology};
use kaigo_hub::formats::mllp::{Event, MllpDecoder, MllpLimits, encode_frame};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_kaigo-hub");
const H_RECIPIENT: &str = "x-kaigo-recipient";
const H_DOC_INDEX: &str = "x-kaigo-doc-index";
/// Every scenario must finish within this (asserted at its end).
const BUDGET: Duration = Duration::from_secs(60);
/// Concurrent senders (each message on a connection of its own).
const SENDERS: usize = 4;
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The tests of this file run one at a time: one of them restarts the broker under everyone.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ------------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------------

/// A connection of the test's own to the broker, for taps and queue lengths (never closed by a
/// fault the test injects).
async fn test_bus(url: &str, name: &str) -> RabbitBus {
    RabbitBus::connect(url, name).await.unwrap_or_else(|e| {
        panic!(
            "these tests need RabbitMQ at {DEFAULT_URL} (or KAIGO_TEST_AMQP_URL): {e}\n\
             start it with `rabbitmq-server -detached` (`.ci/run` does)"
        )
    })
}

/// `(envelope, document index, recipient)` of a delivered copy.
type CopyKey = (String, String, String);

fn copy_key(m: &Msg) -> CopyKey {
    (
        m.envelope().to_string(),
        m.header(H_DOC_INDEX).unwrap_or("?").to_string(),
        m.header(H_RECIPIENT).unwrap_or("?").to_string(),
    )
}

/// How many copies of each (envelope, document, recipient) arrived.
fn copies(msgs: &[Msg]) -> BTreeMap<CopyKey, usize> {
    let mut n = BTreeMap::new();
    for m in msgs {
        *n.entry(copy_key(m)).or_insert(0) += 1;
    }
    n
}

fn repeated(msgs: &[Msg]) -> BTreeMap<CopyKey, usize> {
    copies(msgs).into_iter().filter(|(_, n)| *n > 1).collect()
}

/// The store's delivery key of a copy (`deliver.rs`: `<envelope>/<index>/<recipient>`).
fn store_key(k: &CopyKey) -> String {
    format!("{}/{}/{}", k.0, k.1, k.2)
}

/// Canonical documents in a directory sink, by `source.message_id` → envelopes (file names).
fn dir_deliveries(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, bytes) in files(dir) {
        let doc = json(&bytes);
        let id = doc["source"]["message_id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        by_id.entry(id).or_default().insert(name);
    }
    by_id
}

/// Waits (bounded by `limit`) until `done` holds.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A port nobody listens on right now (bound, then released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// `GET path` on its own connection: the status, or `None` when nothing answers.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        text.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// Sends one HL7 message over MLLP on a connection of its own: `MSA-1` of the answer, or why
/// there was none (the hub died, refused the connection, closed it first).
async fn try_mllp(addr: SocketAddr, payload: &[u8]) -> Result<String, String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut framed = Vec::new();
        encode_frame(payload, &mut framed);
        s.write_all(&framed)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut decoder = MllpDecoder::new(MllpLimits::default());
        let mut buf = [0u8; 4096];
        loop {
            match decoder.next_event() {
                Some(Event::Frame(f)) => return Ok(ack_code(&f)),
                Some(Event::Error(e)) => return Err(format!("framing: {e}")),
                None => {}
            }
            let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before the ACK".into());
            }
            decoder.push(&buf[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| Err("no ACK in time".into()))
}

/// Posts the JP Core Patient sample as the hospital: `Some(envelope)` on 202, `None` otherwise
/// (503 while the broker or store is away: nothing was kept, the sender tries again).
async fn post_patient(addr: SocketAddr) -> Option<String> {
    let reply = post_sample_patient_reply(addr).await;
    match reply.status {
        202 => Some(
            reply
                .header("x-kaigo-envelope")
                .expect("202 names the envelope")
                .to_string(),
        ),
        503 => None,
        other => panic!("unexpected answer {other}: {}", reply.text()),
    }
}

/// `bytes` with the single occurrence of `from` replaced by `to`.
fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        at.len(),
        1,
        "`{}` occurs once in the sample",
        String::from_utf8_lossy(from)
    );
    let mut out = bytes[..at[0]].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at[0] + from.len()..]);
    out
}

/// The SS-MIX2 A08 with its own MSH-10 (control id) and PID-3 (the hospital's 患者ID).
fn adt(control_id: &str, patient_id: &str) -> Vec<u8> {
    let b = replace_once(
        &adt_a08(),
        b"|MSG000001|",
        format!("|{control_id}|").as_bytes(),
    );
    replace_once(&b, b"|00012345^", format!("|{patient_id}^").as_bytes())
}

// ------------------------------------------------------------------------------------------------
// 1. SIGKILL mid-stream, restart
// ------------------------------------------------------------------------------------------------

/// Messages sent in the SIGKILL scenario, and people they are about.
const KILL_MESSAGES: usize = 60;
const KILL_PEOPLE: usize = 6;

/// `kaigo-hub.toml` for a hub process in this scratch world, listening on `http` and `mllp`.
fn write_config(s: &Scratch, http: SocketAddr, mllp: SocketAddr) -> PathBuf {
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: toml::Value| {
        t.insert(k.to_string(), v);
    };
    let text = |v: String| toml::Value::String(v);
    put("http_addr", text(http.to_string()));
    put("mllp_addr", text(mllp.to_string()));
    put(
        "amqp_url",
        text(s.amqp.clone().expect("a RabbitMQ scratch world")),
    );
    put("prefix", text(s.prefix.clone()));
    put("data_dir", text(s.dir.join("state").display().to_string()));
    put("parties", text(s.parties.display().to_string()));
    put(
        "mappings",
        text(repo().join("mappings").display().to_string()),
    );
    put("poll_ms", toml::Value::Integer(50));
    put(
        "retry_delays_ms",
        toml::Value::Array(
            TEST_RETRY_DELAYS_MS
                .iter()
                .map(|ms| toml::Value::Integer(*ms as i64))
                .collect(),
        ),
    );
    let path = s.dir.join("kaigo-hub.toml");
    std::fs::write(&path, toml::to_string(&t).expect("TOML")).expect("write kaigo-hub.toml");
    path
}

/// A `kaigo-hub` command run in the scratch dir, configured by its `--config` file only (no
/// `KAIGO_*` from the test's environment).
fn hub_command(s: &Scratch) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(&s.dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            c.env_remove(k);
        }
    }
    c
}

/// `kaigo-hub consent --config <config> <args…>`, which must succeed.
fn consent_cli(s: &Scratch, config: &Path, args: &[&str]) {
    let out = hub_command(s)
        .arg("consent")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("kaigo-hub runs");
    assert!(
        out.status.success(),
        "kaigo-hub consent {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `kaigo-hub serve` child process; killed (SIGKILL) when dropped.
struct HubProcess {
    child: Child,
    mllp: SocketAddr,
    log: PathBuf,
}

impl HubProcess {
    /// Starts `kaigo-hub serve` on fresh ports and waits until `/health` answers 200.
    async fn start(s: &Scratch, life: u32) -> HubProcess {
        let (http, mllp) = (free_addr(), free_addr());
        let config = write_config(s, http, mllp);
        let log = s.dir.join(format!("hub-{life}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = hub_command(s)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "kaigo_hub=info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("kaigo-hub serve starts");
        let mut hub = HubProcess { child, mllp, log };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!(
                    "kaigo-hub serve exited ({status}) before it was healthy:\n{}",
                    hub.log_text()
                );
            }
            if http_status(http, "/health").await == Some(200) {
                return hub;
            }
            assert!(
                Instant::now() < deadline,
                "kaigo-hub serve not healthy within {PATIENCE:?}:\n{}",
                hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as an operator stops it: it finishes in-flight work and syncs the audit log.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(
                Instant::now() < deadline,
                "kaigo-hub serve did not stop on SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush, nothing settled.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the hub");
        let _ = self.child.wait();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The delivery keys in a (dead) hub's SQLite store.
fn delivered_keys(db: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    let mut st = conn
        .prepare("SELECT key FROM delivered")
        .expect("delivered table");
    st.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_killed_mid_stream_and_restarted_loses_no_accepted_message() {
    let _broker = BROKER.lock().await;
    let started = Instant::now();
    let s = Scratch::rabbit("fault-kill", |p| p);
    let url = s.amqp.clone().expect("RabbitMQ");
    let t = Topology::new(&s.prefix);

    // Seed the SQLite file `serve` will read, with the operator's commands: the people consent
    // to the platform and to providers for certification data; each message's 患者ID is linked.
    // The commands refuse a store that does not exist: it is created first, as `serve` does.
    let config = write_config(&s, free_addr(), free_addr());
    kaigo_hub::store::open(&s.dir.join("state/kaigo-hub.sqlite").display().to_string())
        .await
        .expect("the store, as serve creates it");
    let people: Vec<String> = (1..=KILL_PEOPLE)
        .map(|i| format!("131011:0000900{i:03}"))
        .collect();
    for (i, who) in people.iter().enumerate() {
        for to in ["platform", "provider"] {
            let id = format!("fault-kill-{i}-{to}");
            consent_cli(
                &s,
                &config,
                &[
                    "grant",
                    "--subject",
                    who,
                    "--to",
                    to,
                    "--categories",
                    "certification",
                    "--from",
                    "2000-01-01",
                    "--id",
                    &id,
                ],
            );
        }
    }
    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..KILL_MESSAGES {
        let (control, patient) = (format!("KILL{i:04}"), format!("7{i:07}"));
        consent_cli(
            &s,
            &config,
            &[
                "link",
                "--party",
                HOSPITAL,
                "--local-id",
                &patient,
                "--subject",
                &people[i % KILL_PEOPLE],
            ],
        );
        messages.push((control.clone(), adt(&control, &patient)));
    }
    let messages = Arc::new(messages);

    let mut hub = HubProcess::start(&s, 1).await;
    let bus = test_bus(&url, &format!("kaigo-faults-tap {}", s.prefix)).await;
    let out = Tap::new(&bus, &t.out_queue(PROVIDER)).await;
    let dead = Tap::new(&bus, &t.dead_queue()).await;
    let quarantine = Tap::new(&bus, &t.quarantine_queue()).await;

    // Phase 1: SENDERS connections stream messages in; SIGKILL once half of them were ACKed.
    let acked: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    let tried: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (acked, tried, next, stop, messages) = (
            acked.clone(),
            tried.clone(),
            next.clone(),
            stop.clone(),
            messages.clone(),
        );
        let addr = hub.mllp;
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= messages.len() {
                    break;
                }
                tried.lock().unwrap().insert(i);
                match try_mllp(addr, &messages[i].1).await {
                    Ok(code) if code == "AA" => {
                        acked.lock().unwrap().insert(i);
                    }
                    Ok(code) => panic!("message {i} answered {code}, not AA"),
                    Err(_) => {} // the hub died under it: not accepted, sent again below
                }
            }
        }));
    }
    until("half the messages ACKed", PATIENCE, || {
        acked.lock().unwrap().len() >= KILL_MESSAGES / 2
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    hub.kill();
    for task in senders {
        task.await.expect("sender");
    }
    let acked_before_kill = acked.lock().unwrap().clone();
    let tried_before_kill = tried.lock().unwrap().clone();
    // What the dead hub had recorded as delivered: no copy of these may ever repeat.
    let recorded_at_kill = delivered_keys(&s.dir.join("state/kaigo-hub.sqlite"));
    let seen_at_kill = out.all().len();

    // Phase 2: restart; send what was not ACKed (a sender retries those) and the rest.
    let hub = HubProcess::start(&s, 2).await;
    for (i, (control, payload)) in messages.iter().enumerate() {
        if acked_before_kill.contains(&i) {
            continue;
        }
        let code = try_mllp(hub.mllp, payload)
            .await
            .unwrap_or_else(|e| panic!("{control} after the restart: {e}\n{}", hub.log_text()));
        assert_eq!(code, "AA", "{control} after the restart");
        acked.lock().unwrap().insert(i);
    }
    let controls: BTreeSet<String> = messages.iter().map(|m| m.0.clone()).collect();
    let on_queue = |msgs: &[Msg]| -> BTreeSet<String> {
        msgs.iter()
            .filter_map(|m| m.props.correlation_id.clone())
            .collect()
    };
    let limit = BUDGET.saturating_sub(started.elapsed() + Duration::from_secs(8));
    until(
        "every accepted message on 0300000005's queue",
        limit,
        || on_queue(&out.all()).is_superset(&controls),
    )
    .await;
    until(
        "every accepted message in 0300000100's directory",
        PATIENCE,
        || {
            dir_deliveries(&s.out_dir(CARE_MANAGER))
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>()
                .is_superset(&controls)
        },
    )
    .await;
    tokio::time::sleep(QUIET * 2).await;
    hub.terminate();
    // Two lives, the first cut by SIGKILL, appended to one audit log: `audit verify` finds every
    // chain intact against the store's checkpoints (the one the killed life recorded last, too).
    let verify = hub_command(&s)
        .args(["audit", "--config"])
        .arg(&config)
        .arg("verify")
        .output()
        .expect("kaigo-hub runs");
    let verdict = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && verdict.contains("audit.jsonl: intact."),
        "the audit log does not verify after a SIGKILL:\n{verdict}{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Nothing lost, nothing refused.
    let got = out.all();
    assert_eq!(on_queue(&got), controls, "exactly the messages sent");
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    assert_eq!(quarantine.all().len(), 0, "{:#?}", quarantine.all());
    // A message sent before the kill without an ACK may have reached the broker anyway; the
    // sender's retry is then a second envelope with the same MSH-10 (a new submission, which the
    // hub cannot tell from a deliberate resend). Only those may have two envelopes.
    let mut envelopes_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &got {
        envelopes_of
            .entry(m.props.correlation_id.clone().unwrap_or_default())
            .or_default()
            .insert(m.envelope().to_string());
    }
    let resent: Vec<&String> = envelopes_of
        .iter()
        .filter(|(_, e)| e.len() > 1)
        .map(|(c, _)| c)
        .collect();
    for c in &resent {
        let i = messages.iter().position(|m| &m.0 == *c).expect("known");
        assert!(
            tried_before_kill.contains(&i) && !acked_before_kill.contains(&i),
            "{c} was ACKed, yet became two envelopes"
        );
    }
    // Copies per (envelope, document, recipient). The deliver hop records its key only after
    // the broker confirmed the recipient's copy, so a copy whose publish was in flight (or
    // confirmed but not yet recorded) when the process died is published again after the
    // restart: exactly-once to a queue is NOT guaranteed across a crash, only "no loss, and a
    // repeat only of what the store had not recorded". Assert precisely that.
    let repeats = repeated(&got);
    for (k, n) in &repeats {
        assert!(
            !recorded_at_kill.contains(&store_key(k)),
            "{k:?} arrived {n} times though the store had recorded it before the kill"
        );
        let c = got
            .iter()
            .find(|m| copy_key(m) == *k)
            .and_then(|m| m.props.correlation_id.clone())
            .unwrap_or_default();
        let i = messages.iter().position(|m| m.0 == c).expect("known");
        assert!(
            tried_before_kill.contains(&i),
            "{k:?} ({c}, sent after the restart) arrived {n} times"
        );
    }
    let extra: usize = repeats.values().map(|n| n - 1).sum();
    eprintln!(
        "faults/kill: {} messages, {} ACKed before the SIGKILL ({} sent), {} copies on the queue \
         and {} delivery keys recorded at the kill; after the restart {} copies for {} envelopes: \
         {} repeated copy(ies) of {} envelope(s), {} message(s) resent as a new envelope; {:?}",
        KILL_MESSAGES,
        acked_before_kill.len(),
        tried_before_kill.len(),
        seen_at_kill,
        recorded_at_kill.len(),
        got.len(),
        copies(&got).len(),
        extra,
        repeats.len(),
        resent.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}

// ------------------------------------------------------------------------------------------------
// 2. The broker drops the hub's connection
// ------------------------------------------------------------------------------------------------

/// Runs `rabbitmqctl`, which must succeed; its stdout.
fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test drives the broker with `rabbitmqctl`, which did not run: {e}")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A virtual host of the test's own (deleted when dropped, with everything in it).
struct Vhost {
    name: String,
    url: String,
}

impl Vhost {
    fn new(tag: &str) -> Vhost {
        let name = format!("kaigo-faults-{tag}-{}", std::process::id());
        let base = amqp_url();
        let user = base
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['@', ':']).next())
            .unwrap_or("guest")
            .to_string();
        let authority_end = base
            .find("://")
            .and_then(|s| base[s + 3..].find('/').map(|i| s + 3 + i))
            .unwrap_or(base.len());
        let url = format!("{}/{name}", &base[..authority_end]);
        rabbitmqctl(&["add_vhost", &name]);
        let v = Vhost { name, url };
        rabbitmqctl(&["set_permissions", "-p", &v.name, &user, ".*", ".*", ".*"]);
        v
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        if let Err(e) = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output()
        {
            eprintln!("deleting vhost `{}`: {e}", self.name);
        }
    }
}

/// The broker's ids of the hub's connections (connection name `kaigo-hub`) in `vhost`, once
/// there is one other than `except` (the one closed before; lapin reconnects under a new id).
fn hub_connections(vhost: &str, except: &[String]) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = rabbitmqctl(&[
            "list_connections",
            "--silent",
            "pid",
            "vhost",
            "client_properties",
        ]);
        let found: Vec<String> = listed
            .lines()
            .map(|l| l.split('\t').collect::<Vec<&str>>())
            .filter(|c| c.len() >= 3 && c[1] == vhost && c[2].contains("\"kaigo-hub\""))
            .map(|c| c[0].to_string())
            .filter(|pid| !except.contains(pid))
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no (new) `kaigo-hub` connection in vhost {vhost}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const CONN_MESSAGES: usize = 100;
/// The senders' hard stop, whatever the faults do.
const CONN_MESSAGES_MAX: usize = 2_000;
/// A sender's pause between two posts, so the stream outlasts `rabbitmqctl`'s start-up.
const CONN_PACE: Duration = Duration::from_millis(60);

/// What the broker does to the hub while messages stream in.
#[derive(Clone, Copy, Debug)]
enum BrokerFault {
    /// `rabbitmqctl close_connection` on each of the hub's connections.
    CloseConnections,
    /// `rabbitmqctl stop_app` then `start_app`: every connection drops, every queue goes down and
    /// comes back from disk, and for a few seconds nothing listens on the AMQP port.
    Restart,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_dropping_the_hubs_connection_loses_nothing_and_each_copy_is_sent_once() {
    let _broker = BROKER.lock().await;
    stream_through(
        "conn",
        &[
            (CONN_MESSAGES / 5, BrokerFault::CloseConnections),
            (CONN_MESSAGES / 2, BrokerFault::CloseConnections),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restarted_mid_stream_loses_nothing_and_each_copy_is_sent_once() {
    let _broker = BROKER.lock().await;
    stream_through("restart", &[(CONN_MESSAGES / 3, BrokerFault::Restart)]).await;
}

/// Streams [`CONN_MESSAGES`] FHIR posts through a hub in a virtual host of the test's own,
/// injects each fault once `after` messages were accepted, and checks that every accepted
/// envelope reaches both recipients, each copy handed to its sink once.
async fn stream_through(tag: &str, faults: &[(usize, BrokerFault)]) {
    let started = Instant::now();
    let vhost = Vhost::new(tag);
    let s = Scratch::rabbit_at(&format!("fault-{tag}"), &vhost.url, |p| p);
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let t = running.hub.topology.clone();
    let bus = test_bus(&vhost.url, &format!("kaigo-faults-tap {}", s.prefix)).await;
    let out = Tap::new(&bus, &t.out_queue(PROVIDER)).await;
    let dead = Tap::new(&bus, &t.dead_queue()).await;
    let quarantine = Tap::new(&bus, &t.quarantine_queue()).await;

    // SENDERS hospitals' clients post Patients; each retries a 503 until it gets its 202.
    // They go on past CONN_MESSAGES until every fault is over (at most CONN_MESSAGES_MAX), so
    // each fault hits a stream that is still flowing.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let faults_over = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (accepted, refused, next) = (accepted.clone(), refused.clone(), next.clone());
        let faults_over = faults_over.clone();
        let addr = running.http_addr;
        senders.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= CONN_MESSAGES_MAX
                    || (n >= CONN_MESSAGES && faults_over.load(Ordering::SeqCst))
                {
                    break;
                }
                loop {
                    match post_patient(addr).await {
                        Some(e) => {
                            accepted.lock().unwrap().push(e);
                            break;
                        }
                        None => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                tokio::time::sleep(CONN_PACE).await;
            }
        }));
    }
    // The faults, while messages are at every hop (the connection is looked up ahead:
    // `rabbitmqctl` takes a good part of a second to start).
    let mut closes = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for &(after, fault) in faults {
        let (v, except) = (vhost.name.clone(), gone.clone());
        let pids = tokio::task::spawn_blocking(move || hub_connections(&v, &except))
            .await
            .expect("rabbitmqctl");
        until("messages accepted before the fault", PATIENCE, || {
            accepted.lock().unwrap().len() >= after
        })
        .await;
        let at = accepted.lock().unwrap().len();
        let p = pids.clone();
        tokio::task::spawn_blocking(move || match fault {
            BrokerFault::CloseConnections => {
                for pid in &p {
                    rabbitmqctl(&["close_connection", pid, "faults test: forced close"]);
                }
            }
            BrokerFault::Restart => {
                rabbitmqctl(&["stop_app"]);
                rabbitmqctl(&["start_app"]);
            }
        })
        .await
        .expect("rabbitmqctl");
        if let BrokerFault::Restart = fault {
            let v = vhost.name.clone();
            let now = tokio::task::spawn_blocking(move || hub_connections(&v, &[]))
                .await
                .expect("rabbitmqctl");
            assert!(
                now.iter().all(|p| !pids.contains(p)),
                "after the restart the hub is connected anew ({pids:?} before, {now:?} after)"
            );
        }
        closes.push((fault, at, accepted.lock().unwrap().len()));
        gone.extend(pids);
    }
    // The stream must flow again after the last fault before the senders may stop.
    let last = accepted.lock().unwrap().len();
    until("messages accepted after the last fault", PATIENCE, || {
        accepted.lock().unwrap().len() >= last + SENDERS
    })
    .await;
    faults_over.store(true, Ordering::SeqCst);
    for task in senders {
        task.await.expect("sender");
    }
    let answers = accepted.lock().unwrap().len();
    let accepted: BTreeSet<String> = accepted.lock().unwrap().iter().cloned().collect();
    assert_eq!(accepted.len(), answers, "one envelope per 202");
    assert!(answers >= CONN_MESSAGES, "{answers} accepted");

    let limit = BUDGET.saturating_sub(started.elapsed() + Duration::from_secs(8));
    let envelopes = |msgs: &[Msg]| -> BTreeSet<String> {
        msgs.iter().map(|m| m.envelope().to_string()).collect()
    };
    until(
        "every accepted envelope on 0300000005's queue",
        limit,
        || envelopes(&out.all()).is_superset(&accepted),
    )
    .await;
    let dir = s.out_dir(CARE_MANAGER);
    until(
        "every accepted envelope in 0300000100's directory",
        PATIENCE,
        || files(&dir).len() >= accepted.len(),
    )
    .await;
    tokio::time::sleep(QUIET * 2).await;

    let got = out.all();
    let repeats = repeated(&got);
    let extra: usize = repeats.values().map(|n| n - 1).sum();
    eprintln!(
        "faults/{tag}: {} accepted ({} answers 503 retried), faults between \
         (accepted, accepted) {:?}; {} copies on the queue, {} repeated: {:?}; \
         metrics delivered {}; {:?}",
        accepted.len(),
        refused.load(Ordering::SeqCst),
        closes,
        got.len(),
        extra,
        repeats,
        running.hub.metrics.delivered.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(envelopes(&got), accepted, "exactly the accepted envelopes");
    let in_dir: BTreeSet<String> = files(&dir)
        .into_iter()
        .map(|(n, _)| n.trim_end_matches("-0.json").to_string())
        .collect();
    assert_eq!(in_dir, accepted, "each envelope once in the directory");
    // The hub handed each copy to its sink once: a message the broker redelivered after the
    // connection came back found its keys recorded, or waited for the handler still sending it.
    assert_eq!(
        running.hub.metrics.delivered.load(Ordering::Relaxed),
        2 * accepted.len() as u64,
        "each envelope sent once to each of its two recipients (a directory copy written twice \
         does not show in the directory, only here)"
    );
    // Yet a copy can reach the queue twice: when the connection dies after the broker took a
    // publish but before its confirm reached the hub, `RabbitBus::publish` publishes it again
    // on the recovered connection (at-least-once: it cannot tell whether the first one landed).
    // Measured: about one run in six has one such repeat. So no "none twice" here, but: a repeat
    // is that one publish made twice (two identical copies), and at most one per deliver task
    // holding an unconfirmed publish at a close.
    for (k, n) in &repeats {
        let same: Vec<&Msg> = got.iter().filter(|m| copy_key(m) == *k).collect();
        assert_eq!(*n, 2, "{k:?} arrived {n} times");
        assert!(
            same[0].body == same[1].body && same[0].props == same[1].props,
            "{k:?}: two different copies"
        );
    }
    assert!(
        extra <= closes.len() * usize::from(running.hub.prefetch),
        "{extra} repeated copies for {} forced closes",
        closes.len()
    );
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    assert_eq!(quarantine.all().len(), 0, "{:#?}", quarantine.all());
    running.stop().await;
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}

// ------------------------------------------------------------------------------------------------
// 3. The store goes away for a while
// ------------------------------------------------------------------------------------------------

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {PG_ADMIN} is required for this test: {e}"));
    tokio::spawn(conn);
    client
}

/// A schema and a login role of the test's own; the hub connects as that role with a unique
/// `application_name`. Dropped (schema, grant, role) when this is dropped, also on failure.
struct PgWorld {
    name: String,
    admin: tokio_postgres::Client,
}

impl PgWorld {
    async fn new(tag: &str) -> PgWorld {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kaigo_fault_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = pg_admin().await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN; GRANT CREATE ON DATABASE test TO {name};"
            ))
            .await
            .expect("create the test's role");
        PgWorld { name, admin }
    }

    /// The hub's database URL: role, schema and `application_name` all named after the test.
    fn url(&self) -> String {
        let n = &self.name;
        format!(
            "postgres://{n}@127.0.0.1:5432/test?options=-csearch_path%3D{n}&application_name={n}"
        )
    }

    /// Takes the store away from the hub (`up = false`: the role may not log in and its
    /// backends are terminated) or gives it back. Returns the backends terminated.
    async fn set_available(&self, up: bool) -> i64 {
        let (admin, n) = (&self.admin, &self.name);
        admin
            .batch_execute(&format!(
                "ALTER ROLE {n} {}",
                if up { "LOGIN" } else { "NOLOGIN" }
            ))
            .await
            .expect("alter role");
        if up {
            return 0;
        }
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[n],
            )
            .await
            .expect("terminate the hub's backends");
        rows.len() as i64
    }
}

impl Drop for PgWorld {
    fn drop(&mut self) {
        let n = self.name.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!(
                        "ALTER ROLE {n} NOLOGIN;
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{n}';
                         DROP SCHEMA IF EXISTS {n} CASCADE;
                         REVOKE CREATE ON DATABASE test FROM {n};
                         DROP ROLE {n};"
                    ))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup of PostgreSQL role/schema `{}`: {e}", self.name),
            Err(_) => eprintln!("cleanup of PostgreSQL role/schema `{}` panicked", self.name),
        }
    }
}

const STORE_MESSAGES: usize = 80;
/// How long the store stays away.
const OUTAGE: Duration = Duration::from_secs(3);

/// Audit events of consent decisions that came out indeterminate, per point (ingress,
/// translate, deliver).
fn indeterminate_by_point(audit: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for line in std::fs::read_to_string(audit).unwrap_or_default().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if e["decision"] == "indeterminate" {
            *n.entry(e["actor"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outage_makes_decisions_indeterminate_and_loses_or_repeats_nothing() {
    let _broker = BROKER.lock().await;
    let started = Instant::now();
    let pg = PgWorld::new("store").await;
    let s = Scratch::rabbit("fault-store", |p| p);
    let mut cfg = s.config();
    cfg.database_url = Some(pg.url());
    // Few deliveries in hand per hop: the rest of the backlog waits in the queues.
    cfg.prefetch = 8;
    // Every decision reads the store, so the outage reaches the consent checks. (With the cache
    // on, a person decided on before the outage is decided from the copy: right, since no change
    // can be written while the store is away, but then the outage tests less.)
    cfg.consent_cache_secs = 0;

    // A backlog: STORE_MESSAGES Patients accepted by hop 1 (consent #1, confirmed publish) of a
    // hub context whose translate and deliver hops are not running yet.
    let front = kaigo_hub::serve::build(&cfg)
        .await
        .unwrap_or_else(|e| panic!("the hub did not build on RabbitMQ and PostgreSQL: {e}"));
    kaigo_hub::demo::seed(&front).expect("demo seed");
    let parties = front.parties.current();
    let hospital = parties.get(HOSPITAL).expect("the hospital party");
    let patient = sample("fhir/patient-jpcore.json");
    let mut accepted = BTreeSet::new();
    for _ in 0..STORE_MESSAGES {
        let a = kaigo_hub::pipeline::ingress::accept(
            &front,
            kaigo_hub::pipeline::ingress::Submission {
                party: hospital,
                bytes: &patient,
                file_name: None,
                correlation_id: None,
                via: "http",
            },
        )
        .await
        .unwrap_or_else(|r| panic!("ingress refused a Patient: {r:?}"));
        accepted.insert(a.envelope_id);
    }
    front.audit.flush();
    drop(front);

    let t = Topology::new(&s.prefix);
    let bus = test_bus(
        s.amqp.as_deref().expect("RabbitMQ"),
        &format!("kaigo-faults-tap {}", s.prefix),
    )
    .await;
    let out = Tap::new(&bus, &t.out_queue(PROVIDER)).await;
    let dead = Tap::new(&bus, &t.dead_queue()).await;
    let quarantine = Tap::new(&bus, &t.quarantine_queue()).await;

    // The whole hub starts on the backlog; once a few copies are out, the store goes away.
    let running = kaigo_hub::serve::start(&cfg)
        .await
        .unwrap_or_else(|e| panic!("the hub did not start on RabbitMQ and PostgreSQL: {e}"));
    until("the first delivery", PATIENCE, || !out.all().is_empty()).await;
    let terminated = pg.set_available(false).await;
    let delivered_at_outage = out.all().len();
    let waiting = (
        bus.queue_len(&t.translate_queue()).await.unwrap_or(0),
        bus.queue_len(&t.deliver_queue()).await.unwrap_or(0),
    );
    // Meanwhile a sender is told 503 (consent #1 cannot be decided) and nothing is kept.
    let during = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &patient,
    )
    .await;
    assert_eq!(during.status, 503, "{}", during.text());
    tokio::time::sleep(OUTAGE.saturating_sub(Duration::from_millis(200))).await;
    let delivered_by_end = out.all().len();
    let delivered_during = delivered_by_end - delivered_at_outage;
    pg.set_available(true).await;

    let limit = BUDGET.saturating_sub(started.elapsed() + Duration::from_secs(8));
    let envelopes = |msgs: &[Msg]| -> BTreeSet<String> {
        msgs.iter().map(|m| m.envelope().to_string()).collect()
    };
    until(
        "every accepted envelope on 0300000005's queue",
        limit,
        || envelopes(&out.all()).is_superset(&accepted),
    )
    .await;
    let dir = s.out_dir(CARE_MANAGER);
    until(
        "every accepted envelope in 0300000100's directory",
        PATIENCE,
        || files(&dir).len() >= accepted.len(),
    )
    .await;
    tokio::time::sleep(QUIET * 2).await;
    let indeterminate_metric = running.hub.metrics.indeterminate.load(Ordering::Relaxed);
    let delivered_metric = running.hub.metrics.delivered.load(Ordering::Relaxed);
    running.stop().await;

    let got = out.all();
    let repeats = repeated(&got);
    let indeterminate = indeterminate_by_point(&s.dir.join("state/audit.jsonl"));
    eprintln!(
        "faults/store: {} accepted; outage of {:?} ({} backend(s) terminated) with {} copies \
         out and translate/deliver queues holding {:?} (plus what the hops had in hand); {} \
         copies delivered during it; indeterminate decisions (metric {}) audited per point {:?}; \
         {} copies on the queue, repeated {:?}; {} sent to a sink; {:?}",
        accepted.len(),
        OUTAGE,
        terminated,
        delivered_at_outage,
        waiting,
        delivered_during,
        indeterminate_metric,
        indeterminate,
        got.len(),
        repeats,
        delivered_metric,
        started.elapsed()
    );
    assert_eq!(envelopes(&got), accepted, "exactly the accepted envelopes");
    assert_eq!(repeats, BTreeMap::new(), "a copy delivered twice");
    let in_dir: BTreeSet<String> = files(&dir)
        .into_iter()
        .map(|(n, _)| n.trim_end_matches("-0.json").to_string())
        .collect();
    assert_eq!(in_dir, accepted, "each envelope once in the directory");
    assert_eq!(dead.all().len(), 0, "dead-lettered: {:#?}", dead.all());
    assert_eq!(quarantine.all().len(), 0, "{:#?}", quarantine.all());
    // The outage held the pipeline: messages waited across it (as indeterminate decisions
    // retried, or in subject look-ups and delivery-key calls retried: which one depends on where
    // each handler was when the store went away) and went on once it was back.
    assert!(
        delivered_by_end < STORE_MESSAGES,
        "the pipeline finished before the outage began; nothing waited for the store"
    );
    assert_eq!(
        delivered_metric,
        2 * STORE_MESSAGES as u64,
        "each envelope sent once to each of its two recipients (a directory copy written twice \
         does not show in the directory, only here)"
    );
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}
