//! A consent change reaches every running hub process, or says which it did not reach, on the real
//! RabbitMQ (amqp://guest:guest@127.0.0.1:5672/%2f or `KAIGO_TEST_AMQP_URL`) and the real
//! PostgreSQL (postgres://postgres@127.0.0.1:5432/test) for the store-backed registry:
//!
//! 1. `kaigo-hub serve` runs on RabbitMQ with a consent cache; `kaigo-hub consent revoke`, run
//!    with nothing but the store's location (no `KAIGO_AMQP_URL`, no `KAIGO_PREFIX`, no config
//!    file), finds it in the store's process registry, announces on its bus and prefix, waits for
//!    its acknowledgement, exits 0 naming the store, bus and prefix; the next document for the
//!    revoked recipient is quarantined, not delivered, although the hub's cached copy had not
//!    expired;
//! 2. the same hub paused (SIGSTOP) does not acknowledge: the command exits 3 naming its host,
//!    pid and id, and the time by which the change is in force there anyway (its cache expiry);
//! 3. registrations that cannot hear (a broker refusing this command's login, a process that
//!    never answers) make it exit 3 saying why; those that need no word (the in-memory bus,
//!    `consent_cache_secs = 0`) and stale ones (no heartbeat) are named and do not hold it up —
//!    on SQLite and on PostgreSQL;
//! 4. `POST /fhir/Consent` answers 201 with a warning and `X-Kaigo-Consent-In-Force-By` when a
//!    registered process did not acknowledge.
//!
//! Each test has its own topology prefix and temp dir (tests/common `Scratch`); the PostgreSQL
//! case a schema of its own, dropped afterwards. A broker or database that cannot be reached fails
//! the test, saying so.

mod common;

use common::*;
use kaigo_hub::bus::rabbitmq::{RabbitBus, without_credentials};
use kaigo_hub::bus::{Bus, Topology};
use kaigo_hub::store::Store;
use kaigo_hub::store::processes::ProcessRecord;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_kaigo-hub");
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const H_REASON: &str = "x-kaigo-reason";
const H_RECIPIENT: &str = "x-kaigo-recipient";

/// A port nobody listens on right now.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

async fn healthy(addr: SocketAddr) -> bool {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let head = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        Some(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A `kaigo-hub` command run in `dir` with none of the test's `KAIGO_*` variables.
fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            c.env_remove(k);
        }
    }
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `kaigo-hub consent ARGS` as an operator on the hub's machine runs it: from the scratch dir,
/// told only where the store is (`KAIGO_DATA_DIR`) plus `env`.
fn consent(s: &Scratch, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = command(&s.dir);
    c.env("KAIGO_DATA_DIR", s.dir.join("state")).arg("consent");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().expect("kaigo-hub consent runs")
}

/// A `kaigo-hub serve` child on RabbitMQ, configured by a file that is not `kaigo-hub.toml` (so
/// the consent commands of the test do not read it); killed when dropped.
struct HubProcess {
    child: Child,
    http: SocketAddr,
    log: PathBuf,
}

impl HubProcess {
    async fn start(s: &Scratch) -> HubProcess {
        let http = free_addr();
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.to_string(), v);
        };
        let text = |v: String| toml::Value::String(v);
        put("http_addr", text(http.to_string()));
        put("mllp_addr", text(free_addr().to_string()));
        put("amqp_url", text(s.amqp.clone().expect("RabbitMQ world")));
        put("prefix", text(s.prefix.clone()));
        put("data_dir", text(s.dir.join("state").display().to_string()));
        put("parties", text(s.parties.display().to_string()));
        put(
            "mappings",
            text(repo().join("mappings").display().to_string()),
        );
        put("poll_ms", toml::Value::Integer(50));
        put("consent_cache_secs", toml::Value::Integer(30));
        let config = s.dir.join("serve.toml");
        std::fs::write(&config, toml::to_string(&t).expect("TOML")).expect("write serve.toml");
        let log = s.dir.join("serve.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = command(&s.dir)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "kaigo_hub=info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("kaigo-hub serve starts");
        let mut hub = HubProcess { child, http, log };
        let deadline = Instant::now() + PATIENCE;
        while !healthy(http).await {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!("kaigo-hub serve exited ({status}):\n{}", hub.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "kaigo-hub serve not healthy within {PATIENCE:?}:\n{}",
                hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hub
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        let sent = Command::new("kill").args([sig, &self.pid()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn test_bus(url: &str) -> RabbitBus {
    RabbitBus::connect(url, "consent-reach test")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "these tests need RabbitMQ at {DEFAULT_URL} (or KAIGO_TEST_AMQP_URL): {e}\n\
                 start it with `rabbitmq-server -detached`"
            )
        })
}

/// Grants the sample patient's platform, provider and care-manager consents and links the
/// hospital's 患者ID, through the CLI, which the running hub must acknowledge.
fn seed(s: &Scratch) {
    let grants: [(&str, &str); 3] = [
        ("reach-platform", "platform"),
        ("reach-provider", PROVIDER),
        ("reach-care-manager", CARE_MANAGER),
    ];
    for (id, to) in grants {
        let o = consent(
            s,
            &[],
            &[
                "grant",
                "--id",
                id,
                "--subject",
                "131011:0000100001",
                "--to",
                to,
                "--categories",
                "certification",
                "--from",
                "2000-01-01",
            ],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "grant {id}: {out}{err}");
    }
    let o = consent(
        s,
        &[],
        &[
            "link",
            "--party",
            HOSPITAL,
            "--local-id",
            "00012345",
            "--subject",
            "131011:0000100001",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_run_without_bus_settings_reaches_the_running_hub_and_stops_the_next_copy() {
    let s = Scratch::rabbit("reach-cli", |p| p);
    let hub = HubProcess::start(&s).await;
    seed(&s);
    let bus = test_bus(&amqp_url()).await;
    let t = Topology::new(&s.prefix);
    let provider = Tap::new(&bus, &t.out_queue(PROVIDER)).await;
    let quarantine = Tap::new(&bus, &t.quarantine_queue()).await;

    let first = post_sample_patient(hub.http).await;
    provider
        .wait("the first document reaches 0300000005", |m| m.len() == 1)
        .await;
    assert_eq!(provider.all()[0].envelope(), first);

    // The hub now holds the person's consents in its cache (30 s). The operator revokes with
    // nothing but the store's location: no KAIGO_AMQP_URL, no KAIGO_PREFIX.
    let o = consent(&s, &[], &["revoke", "reach-provider"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("revoked reach-provider"), "{out}");
    let state = s.dir.join("state").join("kaigo-hub.sqlite");
    assert!(
        err.contains(&format!("store: SQLite file {}", state.display())),
        "names the store: {err}"
    );
    let bus_line = format!(
        "announced on RabbitMQ {}, prefix `{}`",
        without_credentials(&amqp_url()),
        s.prefix
    );
    assert!(out.contains(&bus_line), "names bus and prefix: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  applied by ") && l.contains(&format!("pid {} ", hub.pid()))),
        "names the process that applied it: {out}"
    );
    assert!(!out.contains("guest:"), "no credentials shown: {out}");

    let second = post_sample_patient(hub.http).await;
    let q = quarantine
        .wait("the second document withheld from 0300000005", |m| {
            m.iter().any(|m| m.envelope() == second)
        })
        .await;
    let held = q
        .iter()
        .find(|m| m.envelope() == second)
        .expect("the second document");
    assert_eq!(held.header(H_RECIPIENT), Some(PROVIDER));
    assert_eq!(held.header(H_REASON), Some("consent-denied:revoked"));
    wait_for_file(
        &s.out_dir(CARE_MANAGER),
        "0300000100 still gets the second document",
        |n| n == format!("{second}-0.json"),
    )
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        provider.all().len(),
        1,
        "only the first document reached 0300000005:\n{}",
        hub.log_text()
    );
    bus.close().await;
}

/// The `YYYY-MM-DDTHH:MM:SS.mmmZ` after `marker` in `text`, as seconds since 1970.
fn time_after(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` in {text}"))
        + marker.len();
    let t = &text[at..at + 24];
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days since 1970 (civil from Howard Hinnant).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_hub_does_not_acknowledge_and_the_command_exits_3_naming_it_and_the_expiry() {
    let s = Scratch::rabbit("reach-stop", |p| p);
    let hub = HubProcess::start(&s).await;
    seed(&s);
    hub.signal("-STOP");
    let before = now_secs();
    let o = consent(
        &s,
        &[("KAIGO_CONSENT_ACK_SECS", "1")],
        &["revoke", "reach-provider"],
    );
    hub.signal("-CONT");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(out.contains("revoked reach-provider"), "stored: {out}");
    assert!(
        err.contains(&format!("pid {}", hub.pid())),
        "names the paused process: {err}"
    );
    assert!(err.contains("did not acknowledge"), "{err}");
    assert!(err.contains("no acknowledgement within 1 s"), "{err}");
    assert!(err.contains(&format!("prefix `{}`", s.prefix)), "{err}");
    let by = time_after(&err, "in force in every hub process by ");
    assert!(
        (before + 29..=now_secs() + 31).contains(&by),
        "in force by its cache expiry, 30 s after the change ({before} → {by}): {err}"
    );
    // The revoke is stored all the same.
    let o = consent(&s, &[], &["list"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let revoked = out
        .lines()
        .find(|l| l.contains("reach-provider"))
        .unwrap_or_else(|| panic!("listed: {out}"));
    assert!(revoked.contains("revoked_at"), "{revoked}");
}

/// A registration written as `serve` writes it, for a process that is not there.
fn fake(id: &str, bus_url: Option<&str>, prefix: &str, cache: u64) -> ProcessRecord {
    ProcessRecord {
        id: id.into(),
        host: "fake-host".into(),
        pid: 999_999,
        started_at: "2026-01-05T09:00:00.000Z".into(),
        bus: if bus_url.is_some() {
            "rabbitmq"
        } else {
            "memory"
        }
        .into(),
        bus_url: bus_url.map(str::to_string),
        prefix: prefix.into(),
        consent_cache_secs: cache,
    }
}

/// Registrations that cannot or do not acknowledge, those that need no word and a stale one,
/// against the store at `db` (`KAIGO_DATABASE_URL`); `age` puts a registration's heartbeat a
/// minute into the past.
async fn registrations_that_do_not_answer(
    s: &Scratch,
    db: &str,
    store: Arc<dyn Store>,
    age: impl Fn(&str),
) {
    let env = [("KAIGO_DATABASE_URL", db), ("KAIGO_CONSENT_ACK_SECS", "1")];
    let grant = |env: &[(&str, &str)], id: &str| {
        consent(
            s,
            env,
            &[
                "grant",
                "--id",
                id,
                "--subject",
                "131011:0000100001",
                "--to",
                "provider",
                "--categories",
                "care-plan",
                "--from",
                "2025-04-01",
            ],
        )
    };
    // Nobody registered: nothing to announce, exit 0.
    let o = grant(&env, "quiet-1");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("nothing to announce"), "{out}");

    // A process on the in-memory bus, one with consent_cache_secs = 0, a silent one.
    let bare = without_credentials(&amqp_url());
    let registry = store.processes();
    registry
        .register(&fake("fake-memory", None, &s.prefix, 0))
        .expect("register");
    registry
        .register(&fake("fake-nocache", Some(&bare), &s.prefix, 0))
        .expect("register");
    registry
        .register(&fake("fake-silent", Some(&bare), &s.prefix, 30))
        .expect("register");
    age("fake-silent");
    let o = grant(&env, "quiet-2");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("(id fake-memory) on the in-memory bus")
            && out.contains("reads the store at every decision (on the in-memory bus)"),
        "{out}"
    );
    assert!(
        out.contains("(id fake-nocache)") && out.contains("(consent_cache_secs = 0)"),
        "{out}"
    );
    assert!(
        out.contains("passed over fake-host pid 999999 (id fake-silent)"),
        "{out}"
    );

    // A live process with a cache on a bus whose exchange exists, that never answers.
    let bus = test_bus(&amqp_url()).await;
    bus.declare(&Topology::new(&s.prefix), &[])
        .await
        .expect("declare the prefix's topology");
    bus.close().await;
    registry
        .register(&fake("fake-deaf", Some(&bare), &s.prefix, 45))
        .expect("register");
    let before = now_secs();
    let o = grant(&env, "loud-1");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(out.contains("granted loud-1"), "{out}");
    assert!(
        err.contains("1 hub process did not acknowledge it: fake-host pid 999999 (id fake-deaf)"),
        "{err}"
    );
    assert!(err.contains("no acknowledgement within 1 s"), "{err}");
    let by = time_after(&err, "in force in every hub process by ");
    assert!(
        (before + 44..=now_secs() + 46).contains(&by),
        "45 s, its consent_cache_secs: {err}"
    );
    assert!(
        !err.contains("fake-memory") && !err.contains("fake-silent"),
        "only the deaf one holds it up: {err}"
    );

    // This command's own amqp_url lends the login; a broker that refuses it is named.
    let o = grant(
        &[
            env[0],
            env[1],
            (
                "KAIGO_AMQP_URL",
                "amqp://nobody:wrong-password@127.0.0.1:5672/%2f",
            ),
        ],
        "loud-2",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(err.contains("(id fake-deaf)"), "{err}");
    assert!(
        err.contains(&format!(
            "not told: cannot connect to RabbitMQ at {bare} logging in as `nobody`"
        )),
        "{err}"
    );
    assert!(!err.contains("wrong-password"), "no password shown: {err}");
    registry.deregister("fake-deaf").expect("deregister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_that_do_not_answer_are_named_on_sqlite() {
    let s = Scratch::rabbit("reach-fake", |p| p);
    let path = s.dir.join("hub.sqlite");
    let store: Arc<dyn Store> = kaigo_hub::store::open(path.to_str().expect("UTF-8"))
        .await
        .expect("store, as serve creates it");
    let db = format!("sqlite://{}", path.display());
    registrations_that_do_not_answer(&s, &db, store, |id| {
        rusqlite::Connection::open(&path)
            .expect("open")
            .execute(
                "UPDATE hub_processes SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = ?1",
                [id],
            )
            .expect("age");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_that_do_not_answer_are_named_on_postgresql() {
    let s = Scratch::rabbit("reach-fake-pg", |p| p);
    let schema = format!(
        "kaigo_test_reach_{}",
        kaigo_hub::pipeline::clock::envelope_id().to_ascii_lowercase()
    );
    let db = format!("{PG_ADMIN}?options=-csearch_path%3D{schema}");
    let store = kaigo_hub::store::open(&db)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {PG_ADMIN} is required for this test: {e}"));
    let (admin, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    let admin = Arc::new(admin);
    let handle = tokio::runtime::Handle::current();
    let aging = admin.clone();
    let sql = format!(
        "UPDATE {schema}.hub_processes SET heartbeat_at = now() - interval '1 minute' WHERE id = $1"
    );
    registrations_that_do_not_answer(&s, &db, store, move |id| {
        tokio::task::block_in_place(|| {
            handle.block_on(aging.execute(&sql, &[&id])).expect("age");
        });
    })
    .await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_consent_says_when_a_registered_process_did_not_acknowledge() {
    let s = Scratch::rabbit("reach-http", |p| p);
    let mut cfg = s.config();
    cfg.consent_ack_secs = 1;
    let running = s.start_with(&cfg).await;
    let body = serde_json::json!({
        "resourceType": "Consent",
        "id": "reach-http-1",
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
    });
    let post = |body: serde_json::Value| {
        let addr = running.http_addr;
        async move {
            post_fhir(
                addr,
                "/fhir/Consent",
                "demo-municipality-key",
                body.to_string().as_bytes(),
            )
            .await
        }
    };
    // Only this hub runs (registered, and not waited for): in force everywhere now.
    let r = post(body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("x-kaigo-consent-in-force-by"),
        None,
        "{}",
        r.text()
    );
    assert_eq!(json(&r.body)["issue"].as_array().map(Vec::len), Some(1));

    // A second process registered on the same bus and prefix that never answers.
    let bare = without_credentials(&amqp_url());
    running
        .hub
        .store
        .processes()
        .register(&fake("fake-deaf-http", Some(&bare), &s.prefix, 30))
        .expect("register");
    let mut second = body.clone();
    second["id"] = serde_json::json!("reach-http-2");
    let r = post(second).await;
    assert_eq!(r.status, 201, "stored all the same: {}", r.text());
    let by = r
        .header("x-kaigo-consent-in-force-by")
        .unwrap_or_else(|| panic!("the time it is in force everywhere: {}", r.text()))
        .to_string();
    let issues = json(&r.body)["issue"].clone();
    assert_eq!(issues[0]["severity"], "information", "{issues}");
    assert_eq!(issues[1]["severity"], "warning", "{issues}");
    let warning = issues[1]["diagnostics"].as_str().expect("diagnostics");
    assert!(
        warning.contains("1 running hub process did not acknowledge") && warning.contains(&by),
        "{warning}"
    );
    assert!(
        !warning.contains("fake-host"),
        "the sender is not told the hub's hosts: {warning}"
    );
    running.stop().await;
}
