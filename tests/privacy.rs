//! Personal values stay in the messages that carry them (DESIGN §5, issue 13 defects 3 and 4).
//! A real `kaigo-hub serve` process runs on RabbitMQ with `RUST_LOG=debug`, its stdout and stderr
//! captured. Marker values that occur nowhere else — a name `秘匿太郎`, a 被保険者番号
//! `00009999X9`, birth dates `19480405x` / `1948-04-05x`, a postal code `150-00Z1`, a phone
//! `03-9999-0001` — come in malformed and refused inputs through every door:
//!
//! - HTTP: FHIR Patients whose birth date or postal code fail their mapping (422), one the hub
//!   cannot place (403, quarantined), a body that is not JSON (400);
//! - MLLP: HL7 v2 ADTs whose PID-7 or PID-11.5 fail (AE), one with a broken segment (AE);
//! - AMQP: vendor XML cards on `<prefix>.vendor.in` with the broker-validated `user_id` of the
//!   municipality, whose 被保険者番号, birth date or postal code fail, one with an undefined entity
//!   named like the person, and one without a `user_id` whose own headers name the person
//!   (dead-lettered as unauthenticated);
//! - the file drop: ケアプラン CSVs with a bad 被保険者番号, and one saved as UTF-8 instead of MS932;
//! - the deliver hop: a consented ケアプラン whose text holds a 外字 (a private-use character, which
//!   MS932 reads but the provider's MS932 CSV must not write), dead-lettered for that recipient;
//!
//! then `kaigo-hub replay dead` sends every dead letter through the translate hop again, where it
//! fails the same way. Each refusal is checked to have happened (the sender of an HTTP or MLLP
//! message is told the value; the error file and the dead-letter header name where and why), so
//! the test cannot pass by nothing happening. Then none of the markers may appear in the hub's
//! log, the replay command's output, the headers and properties of any message left in any of
//! the topology's queues, `GET /metrics`, the audit log, or any file the hub wrote under its
//! data directory and the inboxes — except message bodies: the dead-lettered or quarantined copy
//! on the broker, and the file itself moved to `failed/`.

mod common;

use common::*;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, Props, Topology};
use kaigo_hub::formats::charset::{self, Charset};
use kaigo_hub::parties::Parties;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_kaigo-hub");

const NAME: &str = "秘匿太郎";
const INSURED: &str = "00009999X9";
const BIRTH_HL7: &str = "19480405x";
const BIRTH_ISO: &str = "1948-04-05x";
const POSTAL: &str = "150-00Z1";
const PHONE: &str = "03-9999-0001";
/// A 外字 in a person's record: MS932 bytes F0 41, read as U+E001.
const GAIJI: &str = "\u{E001}";
const MARKERS: [&str; 8] = [
    NAME, INSURED, BIRTH_HL7, BIRTH_ISO, POSTAL, PHONE, GAIJI, "U+E001",
];

// ------------------------------------------------------------------------------------------------
// The hub process
// ------------------------------------------------------------------------------------------------

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// `kaigo-hub.toml` for this scratch world.
fn write_config(s: &Scratch, http: SocketAddr, mllp: SocketAddr) -> PathBuf {
    let text = |v: String| toml::Value::String(v);
    let mut t = toml::Table::new();
    t.insert("http_addr".into(), text(http.to_string()));
    t.insert("mllp_addr".into(), text(mllp.to_string()));
    t.insert("amqp_url".into(), text(s.amqp.clone().expect("RabbitMQ")));
    t.insert("prefix".into(), text(s.prefix.clone()));
    t.insert(
        "data_dir".into(),
        text(s.dir.join("state").display().to_string()),
    );
    t.insert("parties".into(), text(s.parties.display().to_string()));
    t.insert(
        "mappings".into(),
        text(repo().join("mappings").display().to_string()),
    );
    t.insert("poll_ms".into(), toml::Value::Integer(50));
    if let Some(db) = database_url(&s.prefix) {
        t.insert("database_url".into(), text(db));
    }
    let path = s.dir.join("kaigo-hub.toml");
    std::fs::write(&path, toml::to_string(&t).expect("TOML")).expect("write kaigo-hub.toml");
    path
}

/// `kaigo-hub consent grant` of `category` to `to` for `who`, which must succeed.
fn grant_cli(s: &Scratch, config: &Path, who: (&str, &str), to: &str, category: &str) {
    let subject = format!("{}:{}", who.0, who.1);
    let out = hub_command(s)
        .args(["consent", "--config"])
        .arg(config)
        .args([
            "grant",
            "--subject",
            &subject,
            "--to",
            to,
            "--categories",
            category,
        ])
        .args(["--from", "2000-01-01"])
        .output()
        .expect("kaigo-hub consent runs");
    assert!(
        out.status.success(),
        "kaigo-hub consent grant {subject} to {to}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kaigo-hub` run in the scratch dir, configured by its `--config` file only.
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

/// `kaigo-hub serve`, its stdout and stderr in one file; killed when dropped.
struct HubProcess {
    child: Child,
    http: SocketAddr,
    mllp: SocketAddr,
    config: PathBuf,
    log: PathBuf,
}

impl HubProcess {
    async fn start(s: &Scratch) -> HubProcess {
        let (http, mllp) = (free_addr(), free_addr());
        let config = write_config(s, http, mllp);
        let log = s.dir.join("hub.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = hub_command(s)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("kaigo-hub serve starts");
        let mut hub = HubProcess {
            child,
            http,
            mllp,
            config,
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = hub.child.try_wait() {
                panic!(
                    "kaigo-hub serve exited ({status}) before it was healthy:\n{}",
                    hub.log_text()
                );
            }
            if get(http, "/health")
                .await
                .is_some_and(|(code, _)| code == 200)
            {
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

    /// SIGTERM, and waits until it has stopped (the audit log is synced).
    fn terminate(&mut self) {
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
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path`: the status and the body, or `None` when nothing answers.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let ask = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let code = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

// ------------------------------------------------------------------------------------------------
// The inputs: samples copied and altered
// ------------------------------------------------------------------------------------------------

/// `text` with every occurrence of `from` replaced, which must occur.
fn altered(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is in the sample");
    text.replace(from, to)
}

/// The JP Core Patient sample, named like the person of the markers, with `edit` applied.
fn patient(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    let text = String::from_utf8(sample("fhir/patient-jpcore.json")).expect("UTF-8 sample");
    let text = altered(&text, "\"試験 花子\"", &format!("\"{NAME}\""));
    let text = altered(&text, "\"054-000-1234\"", &format!("\"{PHONE}\""));
    edit(text).into_bytes()
}

/// An SS-MIX2 ADT from the demo hospital in UTF-8 about the person of the markers: the UTF-8
/// sample with the first hospital's MSH-4, `pid7` as the birth date and `postal` in PID-11.5.
fn adt(control_id: &str, pid7: &str, postal: &str) -> Vec<u8> {
    let text = String::from_utf8(sample("hl7v2/adt-a01-utf8.hl7")).expect("UTF-8 sample");
    let text = altered(&text, "|2710000015|", &format!("|{HOSPITAL}|"));
    let text = altered(&text, "|MSG000002|", &format!("|{control_id}|"));
    let text = altered(&text, "|A-778^", "|P-PRIV-1^");
    let text = altered(&text, "架空^一郎^", &format!("{NAME}^^"));
    let text = altered(&text, "|19380704|", &format!("|{pid7}|"));
    let text = altered(&text, "^5300001^", &format!("^{postal}^"));
    let text = altered(&text, "06-0000-0001", PHONE);
    let mut b = text.into_bytes();
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

/// The vendor's 被保険者証 about the person of the markers, with `edit` applied.
fn card(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    let text = String::from_utf8(sample("xml/card-wareki.xml")).expect("UTF-8 sample");
    let text = altered(
        &text,
        "<hk:姓>試験</hk:姓>",
        &format!("<hk:姓>{NAME}</hk:姓>"),
    );
    edit(text).into_bytes()
}

/// The UP2KYO ケアプラン CSV (MS932) with the first person's 被保険者番号 as the marker.
fn careplan_csv_text() -> String {
    let bytes = sample(&format!("careplan/{UP2KYO}"));
    let text = charset::decode(&bytes, Charset::Ms932)
        .expect("the sample is MS932")
        .into_owned();
    altered(&text, PERSON_1.1, INSURED)
}

/// The UP2KYO ケアプラン CSV (MS932) whose first person's family support row names a 外字.
fn careplan_with_gaiji() -> Vec<u8> {
    let bytes = sample(&format!("careplan/{UP2KYO}"));
    let from = charset::encode("長男（架空）", Charset::Ms932, "test").expect("MS932");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_slice())
        .expect("the sample names 長男（架空）");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[0xF0, 0x41]);
    out.extend_from_slice(&bytes[at..]);
    assert_eq!(
        charset::decode(&out, Charset::Ms932)
            .expect("外字 bytes are MS932")
            .matches(GAIJI)
            .count(),
        1
    );
    out
}

/// `UP2KYO` with another timestamp, so several files can wait in one inbox.
fn up2kyo_named(seconds: u32) -> String {
    altered(
        UP2KYO,
        "20251025200201",
        &format!("202510252002{seconds:02}"),
    )
}

// ------------------------------------------------------------------------------------------------
// What the hub wrote
// ------------------------------------------------------------------------------------------------

/// The ways a marker can be written down: as UTF-8, escaped as Rust's `Debug` writes it (a
/// private-use character becomes `\u{e001}`), and as MS932 (what a CSV error could copy).
fn marker_forms() -> Vec<(String, Vec<u8>)> {
    let mut forms = Vec::new();
    for m in MARKERS {
        forms.push((m.to_string(), m.as_bytes().to_vec()));
        let escaped = m.escape_debug().to_string();
        if escaped != m {
            forms.push((format!("{m:?} (escaped)"), escaped.into_bytes()));
        }
        if let Ok(b) = charset::encode(m, Charset::Ms932, "marker")
            && b != m.as_bytes()
        {
            forms.push((format!("{m} (MS932)"), b));
        }
    }
    // Half the name is still the person's.
    forms.push(("秘匿".to_string(), "秘匿".as_bytes().to_vec()));
    forms
}

/// Which markers `bytes` holds.
fn markers_in(bytes: &[u8]) -> Vec<String> {
    marker_forms()
        .into_iter()
        .filter(|(_, b)| bytes.windows(b.len()).any(|w| w == b.as_slice()))
        .map(|(name, _)| name)
        .collect()
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The message bodies among the files: a file moved as it came (`failed/`, `done/`) or a
/// delivered copy (`out/`). Error files beside them are the hub's own words.
fn is_message_body(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = p
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let under_out = p.components().any(|c| c.as_os_str() == "out");
    ((parent == "failed" || parent == "done") && !name.ends_with(".error.txt")) || under_out
}

/// A message's properties and headers as they are, one per line (not `Debug`, which escapes).
fn props_text(p: &Props) -> String {
    let mut out = String::new();
    for v in [
        &p.message_id,
        &p.correlation_id,
        &p.content_type,
        &p.user_id,
    ]
    .into_iter()
    .flatten()
    {
        out.push_str(v);
        out.push('\n');
    }
    for (k, v) in &p.headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

/// Every message in `queue`, taken off it (the hub is stopped by then).
async fn drain(bus: &RabbitBus, queue: &str) -> Vec<Props> {
    let n = bus
        .queue_len(queue)
        .await
        .unwrap_or_else(|e| panic!("length of `{queue}`: {e}"));
    if n == 0 {
        return Vec::new();
    }
    let mut c = bus
        .consume(queue, 100)
        .await
        .unwrap_or_else(|e| panic!("consuming `{queue}`: {e}"));
    let mut out = Vec::new();
    for _ in 0..n {
        match tokio::time::timeout(PATIENCE, c.next()).await {
            Ok(Some(Ok(d))) => {
                out.push(d.props.clone());
                d.ack().await.expect("ack");
            }
            _ => panic!("`{queue}`: expected {n} messages, stopped at {}", out.len()),
        }
    }
    out
}

/// The decisions in the audit log, as `hop/decision/reason`.
fn audit_decisions(audit: &Path) -> Vec<String> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| {
            format!(
                "{}/{}/{}",
                e["hop"].as_str().unwrap_or(""),
                e["decision"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn personal_values_in_refused_inputs_reach_only_their_senders() {
    // The municipality's vendor publishes as the broker user the test has: `guest`.
    let s = Scratch::rabbit("privacy", |p| {
        p.replace("amqp_user: kaigo-vendor-131011", "amqp_user: guest")
    });
    let t = Topology::new(&s.prefix);
    let mut hub = HubProcess::start(&s).await;
    // Both people of the UP2KYO sample may come to the platform; the first one's care plan may
    // go to providers (the municipality has no consent: its copies wait in quarantine).
    for who in [PERSON_1, PERSON_2] {
        grant_cli(&s, &hub.config, who, "platform", "care-plan");
    }
    grant_cli(&s, &hub.config, PERSON_1, "provider", "care-plan");

    // --- HTTP (FHIR) -----------------------------------------------------------------------
    let key = "demo-hospital-key";
    let r = post_fhir(
        hub.http,
        "/fhir/Patient",
        key,
        &patient(|p| altered(&p, "\"1941-03-15\"", &format!("\"{BIRTH_ISO}\""))),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains(BIRTH_ISO),
        "the sender is told: {}",
        r.text()
    );
    let r = post_fhir(
        hub.http,
        "/fhir/Patient",
        key,
        &patient(|p| altered(&p, "\"4200853\"", &format!("\"{POSTAL}\""))),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains(POSTAL),
        "the sender is told: {}",
        r.text()
    );
    // Nobody links the hospital's patient id to a 被保険者: held in quarantine.
    let r = post_fhir(hub.http, "/fhir/Patient", key, &patient(|p| p)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_fhir(
        hub.http,
        "/fhir/Patient",
        key,
        format!("{{\"resourceType\": \"Patient\", \"name\": \"{NAME}\"").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // --- MLLP (HL7 v2) ---------------------------------------------------------------------
    let ack = mllp_send(hub.mllp, &adt("PRIV-M1", BIRTH_HL7, "1500001")).await;
    let text = String::from_utf8_lossy(&ack).into_owned();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(text.contains(BIRTH_HL7), "the sender is told: {text}");
    let ack = mllp_send(hub.mllp, &adt("PRIV-M2", "19480405", POSTAL)).await;
    let text = String::from_utf8_lossy(&ack).into_owned();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(text.contains(POSTAL), "the sender is told: {text}");
    let mut broken = adt("PRIV-M3", "19480405", "1500001");
    broken.extend_from_slice(format!("\r{PHONE}|{NAME}|1\r").as_bytes());
    let ack = mllp_send(hub.mllp, &broken).await;
    let text = String::from_utf8_lossy(&ack).into_owned();
    assert_eq!(ack_code(&ack), "AE", "{text}");
    assert!(text.contains(NAME), "the sender is told: {text}");

    // --- AMQP (vendor XML) -----------------------------------------------------------------
    let vendor = RabbitBus::connect(&amqp_url(), "privacy-test-vendor")
        .await
        .expect("RabbitMQ for the vendor");
    let cards = [
        card(|c| {
            altered(
                &c,
                "number=\"0000123456\"",
                &format!("number=\"{INSURED}\""),
            )
        }),
        card(|c| {
            altered(
                &c,
                "calendar=\"wareki\">3160405<",
                &format!("calendar=\"seireki\">{BIRTH_ISO}<"),
            )
        }),
        card(|c| altered(&c, ">100-0099<", &format!(">{POSTAL}<"))),
        card(|c| altered(&c, &format!(">{NAME}<"), &format!(">&{NAME};<"))),
    ];
    for (i, body) in cards.iter().enumerate() {
        let props = Props {
            message_id: Some(format!("PRIV-A{}", i + 1)),
            content_type: Some("application/xml".into()),
            user_id: Some("guest".into()),
            ..Default::default()
        };
        vendor
            .publish(&t.vendor_in(), "xml.insurance-card", &props, body)
            .await
            .expect("the vendor publishes");
    }
    // No user_id: nobody is proven to have sent it. Its own headers name the person.
    let mut props = Props {
        message_id: Some("PRIV-A5".into()),
        ..Default::default()
    };
    props.headers.insert("patient-name".into(), NAME.into());
    vendor
        .publish(&t.vendor_in(), "xml.insurance-card", &props, &cards[0])
        .await
        .expect("the vendor publishes");

    // --- File drop (ケアプラン CSV) ----------------------------------------------------------
    let inbox = s.inbox(CARE_MANAGER);
    let bad_number = charset::encode(&careplan_csv_text(), Charset::Ms932, "test").expect("MS932");
    let utf8_name = up2kyo_named(2);
    let gaiji_name = up2kyo_named(3);
    put_atomically(&inbox.join(UP2KYO), &bad_number);
    put_atomically(&inbox.join(&utf8_name), careplan_csv_text().as_bytes());
    put_atomically(&inbox.join(&gaiji_name), &careplan_with_gaiji());

    // --- Each refusal happened ---------------------------------------------------------------
    let failed = inbox.join("failed");
    let error_file = |name: &str| failed.join(format!("{name}.error.txt"));
    eventually("both files failed", async || {
        error_file(UP2KYO).is_file() && error_file(&utf8_name).is_file()
    })
    .await;
    let report = std::fs::read_to_string(error_file(UP2KYO)).expect("error file");
    assert!(
        report.contains("outcome: malformed")
            && report.contains("subject.insured_number")
            && report.contains("record "),
        "the error file says where and why: {report}"
    );
    // What went wrong that is not a leak (said at the end, with the leaks).
    let mut wrong: Vec<String> = Vec::new();
    let report = std::fs::read_to_string(error_file(&utf8_name)).expect("error file");
    assert!(report.contains("MS932"), "{report}");
    if !report.contains("looks like UTF-8") {
        wrong.push(format!(
            "the error file of a UTF-8 CSV does not say the file looks like UTF-8: {report}"
        ));
    }

    // The 外字 care plan was accepted; its provider's copy could not be written in MS932.
    let done = inbox.join("done").join(&gaiji_name);
    eventually("the care plan with a 外字 accepted", async || {
        done.is_file()
    })
    .await;

    // HTTP 2, MLLP 3, AMQP 4 + 1, file 2, deliver 1.
    let dead_letters = 13;
    let reader = RabbitBus::connect(&amqp_url(), "privacy-test-reader")
        .await
        .expect("RabbitMQ for the test");
    let dead = t.dead_queue();
    eventually("every malformed input dead-lettered", async || {
        reader.queue_len(&dead).await.unwrap_or(0) == dead_letters
    })
    .await;

    // Each refusal is audited (as a code, without the error).
    let audit = s.dir.join("state").join("audit.jsonl");
    let refusals = |audit: &Path| {
        audit_decisions(audit)
            .iter()
            .filter(|d| d.contains("/dead/") || d.contains("/rejected/"))
            .count() as u64
    };
    eventually("the refusals audited", async || {
        let d = audit_decisions(&audit);
        d.iter()
            .filter(|d| *d == "ingress/rejected/malformed")
            .count() as u64
            == dead_letters - 2
            && d.iter().any(|d| d == "ingress/rejected/unauthenticated")
            && d.iter().any(|d| d == "deliver/dead/render-failed")
    })
    .await;
    let before = refusals(&audit);

    // --- The translate hop: every dead letter replayed, failing again -------------------------
    let replay = hub_command(&s)
        .arg("replay")
        .arg("dead")
        .arg("--config")
        .arg(&hub.config)
        .env("RUST_LOG", "debug")
        .output()
        .expect("kaigo-hub replay runs");
    let replay_out = [replay.stdout.as_slice(), replay.stderr.as_slice()].concat();
    assert!(
        replay.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&replay_out)
    );
    // The unauthenticated one stays where it is; the others are mapped or rendered again and
    // fail again.
    let replayed = dead_letters - 1;
    let translate = t.translate_queue();
    eventually(
        "every replayed message failed its mapping again",
        async || {
            refusals(&audit) >= before + replayed
                && reader.queue_len(&dead).await.unwrap_or(0) == dead_letters
                && reader.queue_len(&translate).await.unwrap_or(1) == 0
        },
    )
    .await;

    let (code, metrics) = get(hub.http, "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains("kaigo_"), "{metrics}");
    hub.terminate();

    // --- Nothing but the bodies holds a marker ---------------------------------------------
    let mut leaks: Vec<String> = Vec::new();
    let log = hub.log_text();
    assert!(
        log.contains("DEBUG") && log.contains("dead-lettered"),
        "the log is the debug log of this run:\n{log}"
    );
    for (what, bytes) in [
        ("the hub's log", log.as_bytes()),
        ("replay's output", replay_out.as_slice()),
        ("GET /metrics", metrics.as_bytes()),
    ] {
        for m in markers_in(bytes) {
            leaks.push(format!("{what} holds {m}"));
        }
    }

    let mut queues: Vec<String> = t.queues().into_iter().map(|q| q.name).collect();
    let parties = Parties::load(&s.parties).expect("the parties file loads");
    queues.extend(parties.amqp_recipients().iter().map(|r| t.out_queue(r)));
    let (mut letters, mut rendered_for_provider) = (0, false);
    for q in &queues {
        for props in drain(&reader, q).await {
            letters += 1;
            let said = props_text(&props);
            for m in markers_in(said.as_bytes()) {
                leaks.push(format!(
                    "a message in `{q}` holds {m} in its properties: {said}"
                ));
            }
            if q == &dead {
                let error = props.header("x-kaigo-error").unwrap_or("");
                assert!(!error.is_empty(), "a dead letter says why: {said}");
                if props.header("x-kaigo-recipient") == Some(PROVIDER) {
                    rendered_for_provider = true;
                    assert!(
                        error.contains("cannot be represented in MS932 at record"),
                        "where the character is, not which: {said}"
                    );
                }
            }
        }
    }
    assert!(
        rendered_for_provider,
        "the provider's copy was dead-lettered"
    );
    assert!(
        letters > dead_letters,
        "dead letters and the quarantined copy: {letters}"
    );

    let audit_text = std::fs::read(&audit).expect("the audit log");
    for m in markers_in(&audit_text) {
        leaks.push(format!("the audit log holds {m}"));
    }

    let mut written = Vec::new();
    walk(&s.dir.join("state"), &mut written);
    walk(&s.dir.join("data"), &mut written);
    assert!(
        written.iter().any(|p| p.ends_with("audit.jsonl")),
        "{written:?}"
    );
    for p in written.iter().filter(|p| !is_message_body(p)) {
        let bytes = std::fs::read(p).unwrap_or_default();
        for m in markers_in(&bytes) {
            leaks.push(format!("{} holds {m}", p.display()));
        }
    }

    wrong.extend(leaks);
    assert!(
        wrong.is_empty(),
        "personal values outside the messages:\n{}\n\nthe hub's log:\n{log}",
        wrong.join("\n")
    );
}
