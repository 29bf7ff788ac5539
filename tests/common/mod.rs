//! A whole hub for the end-to-end tests, on the real RabbitMQ (amqp://guest:guest@127.0.0.1:5672/%2f
//! or `KAIGO_TEST_AMQP_URL`) or, for the wide property runs, the in-memory bus. A [`Scratch`] is
//! one test's world: a temp directory (state, inboxes, out dirs), a parties file derived from the
//! shipped `parties.yaml` with every `data/` path moved into it, and a topology prefix of its own
//! (`<tag>-<pid>-<n>`); dropping it deletes exactly the queues and exchanges of that prefix, also
//! when the test failed. The rest is how a test talks to the hub and watches what comes out of
//! it: a tiny HTTP/1.1 client, an MLLP client, queue taps and out-dir listings, bounded waits.
//! A test that cannot reach the broker fails, saying how to start one; none is skipped.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod browser;
pub mod console_http;
pub mod pki;

use kaigo_hub::bus::{Bus, Consumer, Props};
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyKind, Subject};
use kaigo_hub::formats::mllp::{Event, MllpDecoder, MllpLimits, encode_frame};
use kaigo_hub::parties::Parties;
use kaigo_hub::pipeline::Hub;
use kaigo_hub::serve::{self, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How long a test waits for something that should arrive (quorum queues commit through Raft).
pub const PATIENCE: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(800);

/// 被保険者 of the samples: the FHIR Patient, SS-MIX2 A08 and the first ケアプラン row set.
pub const PERSON_1: (&str, &str) = ("131011", "0000100001");
/// The UTF-8 A01's patient and the second ケアプラン row set (not consented to 131011 in the demo).
pub const PERSON_2: (&str, &str) = ("435073", "0000200002");
/// The 被保険者証 of `card-wareki.xml`.
pub const CARD_PERSON: (&str, &str) = ("131011", "0000123456");

pub const HOSPITAL: &str = "1311234567";
pub const HOSPITAL_2: &str = "2710000015";
/// The waiting rooms of every test hub ([`Scratch::config`]): a recipient whose sink fails is
/// tried five times within 1.5 s (the default takes 12½ minutes).
pub const TEST_RETRY_DELAYS_MS: &[u64] = &[100, 200, 400, 800];
pub const CARE_MANAGER: &str = "0300000100";
pub const PROVIDER: &str = "0300000005";
pub const MUNICIPALITY: &str = "131011";
pub const UP2KYO: &str = "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV";
pub const UPJSK: &str = "UPJSK_202511_0300000005_11_0300000100_43_20251203090000.CSV";

pub fn amqp_url() -> String {
    std::env::var("KAIGO_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(rel: &str) -> Vec<u8> {
    let p = repo().join("samples").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The SS-MIX2 sample as an MLLP payload (without a block terminator, should the file keep one).
pub fn adt_a08() -> Vec<u8> {
    let mut b = sample("hl7v2/adt-a08.hl7");
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

pub fn subject(p: (&str, &str)) -> Subject {
    Subject::new(p.0, p.1).expect("a valid sample subject")
}

/// Grants `id`: `subject` lets `grantee` receive `categories`, from 2000-01-01, no end, no purpose.
/// Goes through [`Hub::grant_consent`], so a hub process's cached copy is dropped as in production.
pub async fn grant(
    hub: &Hub,
    id: &str,
    who: (&str, &str),
    grantee: Grantee,
    categories: &[Category],
) {
    hub.grant_consent(Consent {
        id: id.parse().expect("a valid consent id"),
        subject: subject(who),
        grantee,
        categories: categories.to_vec(),
        valid_from: IsoDate::parse("2000-01-01").expect("literal date"),
        valid_to: None,
        purpose: None,
        revoked_at: None,
    })
    .await
    .unwrap_or_else(|e| panic!("granting {id}: {e}"));
}

/// Links the hospitals' patient ids of the samples to their subjects (what the demo seed does).
pub fn link_sample_patients(hub: &Hub) {
    hub.store
        .link(HOSPITAL, "00012345", &subject(PERSON_1))
        .expect("link");
    hub.store
        .link(HOSPITAL_2, "A-778", &subject(PERSON_2))
        .expect("link");
}

/// One test's world on the broker and on disk.
pub struct Scratch {
    pub dir: PathBuf,
    pub prefix: String,
    pub parties: PathBuf,
    /// RabbitMQ URL; `None` = in-memory bus (nothing to clean on a broker).
    pub amqp: Option<String>,
    amqp_recipients: Vec<String>,
}

impl Scratch {
    /// A scratch world on the real RabbitMQ; `edit` changes the derived parties text.
    pub fn rabbit(tag: &str, edit: impl FnOnce(String) -> String) -> Scratch {
        Self::new(tag, Some(amqp_url()), edit)
    }

    /// A scratch world on the RabbitMQ at `url` (e.g. a virtual host of the test's own).
    pub fn rabbit_at(tag: &str, url: &str, edit: impl FnOnce(String) -> String) -> Scratch {
        Self::new(tag, Some(url.to_string()), edit)
    }

    /// A scratch world on the in-memory bus.
    pub fn memory(tag: &str, edit: impl FnOnce(String) -> String) -> Scratch {
        Self::new(tag, None, edit)
    }

    fn new(tag: &str, amqp: Option<String>, edit: impl FnOnce(String) -> String) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!(
            "kaigo-{prefix}-{}",
            kaigo_hub::pipeline::clock::envelope_id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let text = std::fs::read_to_string(repo().join("parties.yaml")).expect("parties.yaml");
        assert!(
            !text.contains("amqp_user: guest"),
            "the shipped parties.yaml must never name the broker's guest user"
        );
        let moved = text.replace(": data/", &format!(": {}/", dir.join("data").display()));
        assert_ne!(
            text, moved,
            "the demo parties have inboxes and out dirs under data/"
        );
        let parties = dir.join("parties.yaml");
        std::fs::write(&parties, edit(moved)).expect("write parties");
        let amqp_recipients = Parties::load(&parties)
            .unwrap_or_else(|e| panic!("the derived parties file does not load: {e}"))
            .amqp_recipients();
        Scratch {
            dir,
            prefix,
            parties,
            amqp,
            amqp_recipients,
        }
    }

    pub fn config(&self) -> Config {
        Config {
            http_addr: "127.0.0.1:0".into(),
            mllp_addr: "127.0.0.1:0".into(),
            amqp_url: self.amqp.clone(),
            data_dir: self.dir.join("state"),
            prefix: self.prefix.clone(),
            mappings: repo().join("mappings"),
            parties: self.parties.clone(),
            poll_ms: 50,
            database_url: database_url(&self.prefix),
            retry_delays_ms: TEST_RETRY_DELAYS_MS.to_vec(),
            ..Default::default()
        }
    }

    /// Starts the whole hub (hops and sources).
    pub async fn start(&self) -> Running {
        self.start_with(&self.config()).await
    }

    /// Starts the hub with `cfg` (this world's [`Scratch::config`], changed by the test).
    pub async fn start_with(&self, cfg: &Config) -> Running {
        match serve::start(cfg).await {
            Ok(r) => r,
            Err(e) => self.cannot_start(e),
        }
    }

    /// Builds the hub context without running anything.
    pub async fn build(&self) -> Arc<Hub> {
        match serve::build(&self.config()).await {
            Ok(h) => h,
            Err(e) => self.cannot_start(e),
        }
    }

    fn cannot_start(&self, e: String) -> ! {
        if self.amqp.is_some() {
            panic!(
                "the hub did not start: {e}\n\
                 these tests need RabbitMQ at {DEFAULT_URL} (or KAIGO_TEST_AMQP_URL); \
                 start it with `rabbitmq-server -detached` (`.ci/run` does)"
            )
        }
        panic!("the hub did not start: {e}")
    }

    /// A party's out directory in this world.
    pub fn out_dir(&self, party: &str) -> PathBuf {
        self.dir.join("data/out").join(party)
    }

    /// Deletes `party`'s out queue with the rest of this world (a recipient the test added to
    /// the parties file after the world was made).
    pub fn clean_out_queue_too(&mut self, party: &str) {
        self.amqp_recipients.push(party.to_string());
    }

    /// A party's inbox in this world (created, as a sender would).
    pub fn inbox(&self, party: &str) -> PathBuf {
        let d = self.dir.join("data/inbox").join(party);
        std::fs::create_dir_all(&d).expect("inbox");
        d
    }

    fn queues(&self) -> Vec<String> {
        // The waiting rooms of the default `retry_delays_ms` too, for a hub a test configured
        // otherwise (deleting a queue that was never declared is a no-op).
        let t = kaigo_hub::bus::Topology::new(&self.prefix);
        let mut q: Vec<String> = t.queues().into_iter().map(|q| q.name).collect();
        q.extend(
            TEST_RETRY_DELAYS_MS
                .iter()
                .map(|ms| t.wait_queue(Duration::from_millis(*ms))),
        );
        q.extend(self.amqp_recipients.iter().map(|r| t.out_queue(r)));
        q
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(url) = self.amqp.clone() {
            let queues = self.queues();
            let exchanges: Vec<String> = kaigo_hub::bus::Topology::new(&self.prefix)
                .exchanges()
                .into_iter()
                .map(|e| e.name)
                .collect();
            // Drop cannot await: a thread with its own runtime deletes what the hub declared.
            let cleaned = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(delete(&url, queues, exchanges))
            })
            .join();
            match cleaned {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("cleanup of `{}`.* failed: {e}", self.prefix),
                Err(_) => eprintln!("cleanup of `{}`.* panicked", self.prefix),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deletes one queue behind the hub's back, as an operator might in the management UI.
pub async fn delete_queue(queue: &str) {
    delete(&amqp_url(), vec![queue.to_string()], Vec::new())
        .await
        .unwrap_or_else(|e| panic!("deleting `{queue}`: {e}"));
}

async fn delete(url: &str, queues: Vec<String>, exchanges: Vec<String>) -> Result<(), String> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .map_err(|e| e.to_string())?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    for q in queues {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("queue `{q}`: {e}"))?;
    }
    for x in exchanges {
        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| format!("exchange `{x}`: {e}"))?;
    }
    let _ = ch.close(200, "OK".into()).await;
    conn.close(200, "OK".into())
        .await
        .map_err(|e| e.to_string())
}

// ------------------------------------------------------------------------------------------------
// Watching what comes out
// ------------------------------------------------------------------------------------------------

/// One message taken off a queue.
#[derive(Clone, Debug)]
pub struct Msg {
    pub props: Props,
    pub body: Vec<u8>,
}

impl Msg {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.props.header(k)
    }
    pub fn envelope(&self) -> &str {
        self.props.message_id.as_deref().unwrap_or("")
    }
}

/// Everything a queue receives, consumed (and acked) in the background.
pub struct Tap {
    queue: String,
    got: Arc<Mutex<Vec<Msg>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub async fn new(bus: &dyn Bus, queue: &str) -> Tap {
        let consumer: Box<dyn Consumer> = bus
            .consume(queue, 100)
            .await
            .unwrap_or_else(|e| panic!("consuming `{queue}`: {e}"));
        Self::on(consumer, queue)
    }

    /// A copy of everything published to the fanout `exchange` from now on, through a private
    /// queue of the tap's own: the hub's queue behind the exchange keeps its messages (for a
    /// replay to find).
    pub async fn subscribed(bus: &dyn Bus, exchange: &str) -> Tap {
        let consumer = bus
            .subscribe(exchange)
            .await
            .unwrap_or_else(|e| panic!("subscribing to `{exchange}`: {e}"));
        Self::on(consumer, exchange)
    }

    fn on(mut consumer: Box<dyn Consumer>, queue: &str) -> Tap {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            // A lost connection shows as errors until the consumer has subscribed again; a
            // delivery whose ack did not reach the broker comes back, and is recorded then.
            loop {
                match consumer.next().await {
                    Some(Ok(d)) => {
                        let m = Msg {
                            props: d.props.clone(),
                            body: d.body.clone(),
                        };
                        if d.ack().await.is_ok() {
                            sink.lock().expect("tap lock").push(m);
                        }
                    }
                    Some(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    None => break,
                }
            }
        });
        Tap {
            queue: queue.to_string(),
            got,
            task,
        }
    }

    pub fn all(&self) -> Vec<Msg> {
        self.got.lock().expect("tap lock").clone()
    }

    /// Messages of one envelope.
    pub fn of(&self, envelope: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.envelope() == envelope)
            .collect()
    }

    /// Waits (bounded) until `done` holds for what arrived so far, and returns it.
    pub async fn wait(&self, what: &str, done: impl Fn(&[Msg]) -> bool) -> Vec<Msg> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {PATIENCE:?} on `{}`: {what}; got {} message(s): {:#?}",
                    self.queue,
                    all.len(),
                    all.iter().map(|m| &m.props).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes `bytes` to `path` the way a careful sender does: under a dot-name beside it, then one
/// rename. A watcher (the file drop, the mapping poll) never sees the file half written; a plain
/// `fs::write` into a watched directory lets it read an empty or partial file now and then.
pub fn put_atomically(path: &Path, bytes: &[u8]) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let part = path.with_file_name(format!(".{name}.part"));
    std::fs::write(&part, bytes).expect("write the part file");
    std::fs::rename(&part, path).expect("rename into place");
}

/// The finished files in `dir` (names not starting with `.`), sorted, with their bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        return None;
                    }
                    std::fs::read(e.path()).ok().map(|b| (name, b))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Waits (bounded) until `dir` holds a file `done` accepts.
pub async fn wait_for_file(
    dir: &Path,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(f) = files(dir).into_iter().find(|(n, _)| done(n)) {
            return f;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {PATIENCE:?}: {what}; {} holds {:?}",
                dir.display(),
                files(dir).iter().map(|f| &f.0).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `check` is true.
/// Drops `bytes` as `file` into `inbox` (as a sender would) and waits until the file is in
/// `done/` with its report of refused documents beside it; checks that the report holds every
/// one of `parts` and none of `personal`, and gives the report and the envelope it names.
pub async fn drop_and_read_report(
    inbox: &Path,
    file: &str,
    bytes: &[u8],
    parts: &[&str],
    personal: &[&str],
) -> (String, String) {
    put_atomically(&inbox.join(file), bytes);
    let done = inbox.join("done");
    let (_, report) = wait_for_file(&done, "the file's report", |n| {
        n == format!("{file}.report.txt")
    })
    .await;
    let report = String::from_utf8(report).expect("a UTF-8 report");
    assert!(done.join(file).is_file(), "the file is done: {report}");
    assert!(!inbox.join("failed").exists(), "nothing failed");
    for part in parts {
        assert!(report.contains(part), "`{part}` missing from: {report}");
    }
    for value in personal {
        assert!(!report.contains(value), "`{value}` in: {report}");
    }
    let envelope = report
        .lines()
        .find_map(|l| l.strip_prefix("envelope: "))
        .expect("the report names the envelope")
        .to_string();
    (report, envelope)
}

/// Drops `bytes` as `file` into `inbox` and waits for the file to be refused: its error file
/// (in `failed/`) holds every one of `parts` and none of `personal`. Returns the error text.
pub async fn drop_and_read_error(
    inbox: &Path,
    file: &str,
    bytes: &[u8],
    parts: &[&str],
    personal: &[&str],
) -> String {
    put_atomically(&inbox.join(file), bytes);
    let (_, error) = wait_for_file(&inbox.join("failed"), "the error file", |n| {
        n.ends_with(".error.txt")
    })
    .await;
    let error = String::from_utf8(error).expect("a UTF-8 error file");
    for part in parts {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    for value in personal {
        assert!(!error.contains(value), "`{value}` in: {error}");
    }
    error
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The documents of a JSON sample (`samples/<rel>`): an array's items, or the one document.
pub fn sample_docs(rel: &str) -> Vec<serde_json::Value> {
    match json(&sample(rel)) {
        serde_json::Value::Array(docs) => docs,
        one => vec![one],
    }
}

/// A JSON integer, or a panic naming what was there.
pub fn int(v: &serde_json::Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("an integer: {v}"))
}

/// `"11.40"` → 1140 (hundredths of a yen), exactly: a 単位数単価 as the claims documents write it.
pub fn hundredths(price: &serde_json::Value) -> i64 {
    let text = price.as_str().expect("a decimal text");
    let (yen, sen) = text.split_once('.').expect("a point");
    assert_eq!(sen.len(), 2, "{text}");
    yen.parse::<i64>().expect("yen") * 100 + sen.parse::<i64>().expect("sen")
}

/// `kaigo-hub translate --mapping MAPPING` of `text`, written to a file named `file` in a temp
/// directory of `tag`'s own, run from the repository (its `mappings/`).
pub fn translate_as_file(text: &str, file: &str, mapping: &str, tag: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("kaigo-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(file);
    std::fs::write(&path, text).expect("written");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kaigo-hub"))
        .current_dir(repo())
        .args(["translate", "--mapping", mapping])
        .arg(&path)
        .output()
        .expect("kaigo-hub runs");
    let _ = std::fs::remove_dir_all(&dir);
    o
}

// ------------------------------------------------------------------------------------------------
// Talking to the hub
// ------------------------------------------------------------------------------------------------

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Posts the sample JP Core Patient as the demo hospital over HTTP; the answer as it came.
pub async fn post_sample_patient_reply(addr: SocketAddr) -> Reply {
    post_fhir(
        addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &sample("fhir/patient-jpcore.json"),
    )
    .await
}

/// Posts the sample JP Core Patient as the demo hospital over HTTP, expects `202`, and returns
/// the envelope id the answer names.
pub async fn post_sample_patient(addr: SocketAddr) -> String {
    let reply = post_sample_patient_reply(addr).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply
        .header("x-kaigo-envelope")
        .expect("202 names the envelope")
        .to_string()
}

/// `POST path` with a bearer key and a FHIR JSON body, on its own connection.
pub async fn post_fhir(addr: SocketAddr, path: &str, key: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the HTTP source");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {key}\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut raw))
        .await
        .expect("an HTTP answer in time")
        .expect("read the answer");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    }) {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// A chunked HTTP body (`Transfer-Encoding: chunked`) joined (the HTTP and WebDriver clients
/// of the tests both read one).
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
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Sends one HL7 v2 message over MLLP and returns the raw `ACK` payload.
pub async fn mllp_send(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the MLLP source");
    let mut framed = Vec::new();
    encode_frame(payload, &mut framed);
    stream.write_all(&framed).await.expect("write frame");
    let mut decoder = MllpDecoder::new(MllpLimits::default());
    let mut buf = [0u8; 4096];
    loop {
        if let Some(e) = decoder.next_event() {
            match e {
                Event::Frame(f) => return f,
                Event::Error(e) => panic!("bad framing from the hub: {e}"),
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an ACK in time")
            .expect("read the ACK");
        assert!(n > 0, "the hub closed the connection before answering");
        decoder.push(&buf[..n]);
    }
}

/// Sends HL7 v2 messages over MLLP on one connection from the local address `from` (on Linux
/// any of 127.0.0.0/8) and returns the raw `ACK` payloads, one per message, in order.
pub async fn mllp_send_from(from: &str, addr: SocketAddr, payloads: &[&[u8]]) -> Vec<Vec<u8>> {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    let source: std::net::IpAddr = from.parse().expect("an address");
    socket
        .bind(SocketAddr::new(source, 0))
        .unwrap_or_else(|e| panic!("binding the source address {from}: {e}"));
    let mut stream = socket
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting from {from}: {e}"));
    let mut framed = Vec::new();
    for p in payloads {
        encode_frame(p, &mut framed);
    }
    stream.write_all(&framed).await.expect("write the frames");
    let mut decoder = MllpDecoder::new(MllpLimits::default());
    let mut acks = Vec::new();
    let mut buf = [0u8; 4096];
    while acks.len() < payloads.len() {
        match decoder.next_event() {
            Some(Event::Frame(f)) => {
                acks.push(f);
                continue;
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
    acks
}

/// `MSA-1` of an `ACK` (`AA`, `AE`, `AR`).
pub fn ack_code(ack: &[u8]) -> String {
    use kaigo_hub::formats::hl7v2;
    let m = hl7v2::parse(ack).unwrap_or_else(|e| panic!("the ACK does not parse: {e}"));
    m.value_at(&hl7v2::Path::compile("MSA-1").expect("literal path"))
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// With `KAIGO_TEST_DATABASE_URL=postgres://…` set, every scratch hub uses PostgreSQL in a schema
/// of its own (created by the store); otherwise the embedded SQLite file. `.ci/run` runs the hub
/// suites both ways.
pub fn database_url(prefix: &str) -> Option<String> {
    let base = std::env::var("KAIGO_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let schema: String = format!("kaigo_t_{prefix}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

/// A TOML file for the `kaigo-hub` commands naming `cfg`'s data directory and store.
pub fn config_file(s: &Scratch, cfg: &Config) -> PathBuf {
    let mut t = toml::Table::new();
    let text = |v: String| toml::Value::String(v);
    t.insert("data_dir".into(), text(cfg.data_dir.display().to_string()));
    if let Some(url) = &cfg.database_url {
        t.insert("database_url".into(), text(url.clone()));
    }
    t.insert("parties".into(), text(cfg.parties.display().to_string()));
    t.insert("mappings".into(), text(cfg.mappings.display().to_string()));
    let path = s.dir.join("kaigo-hub.toml");
    std::fs::write(&path, toml::to_string(&t).expect("TOML")).expect("write the config");
    path
}

/// `kaigo-hub <args…> --config <config>` run in the scratch dir without `KAIGO_*` from the
/// test's environment.
pub fn kaigo(s: &Scratch, config: &Path, args: &[&str]) -> std::process::Output {
    let (group, rest) = args.split_first().expect("a command");
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    c.current_dir(&s.dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            c.env_remove(k);
        }
    }
    c.arg(group)
        .arg("--config")
        .arg(config)
        .args(rest)
        .output()
        .expect("kaigo-hub runs")
}

/// The shipped mappings (less `leave_out`) plus `extra` as `name`, in the scratch directory.
pub fn mappings_dir_with(s: &Scratch, name: &str, extra: &str, leave_out: Option<&str>) -> PathBuf {
    let dir = s.dir.join("mappings");
    std::fs::create_dir_all(&dir).expect("mappings dir");
    for entry in std::fs::read_dir(repo().join("mappings")).expect("shipped mappings") {
        let path = entry.expect("entry").path();
        let file = path.file_name().expect("a file name");
        if path.is_file() && leave_out.is_none_or(|l| file != l) {
            std::fs::copy(&path, dir.join(file)).expect("copy a mapping");
        }
    }
    std::fs::write(dir.join(name), extra).expect("the test's mapping");
    dir
}

/// The events of the hub's audit log (`audit.jsonl` of this world's state), as JSON.
/// The audit events of one envelope, after the hub's audit writer has flushed.
pub fn envelope_events(s: &Scratch, hub: &Hub, envelope: &str) -> Vec<serde_json::Value> {
    hub.audit.flush();
    audit_events(s)
        .into_iter()
        .filter(|e| e["envelope_id"] == envelope)
        .collect()
}

pub fn audit_events(s: &Scratch) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.config().audit_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The recipient (a demo hospital, given an out dir) that a test adds to take documents as FHIR.
pub const FHIR_RECIPIENT: &str = "1311234567";
/// The recipient (the other demo hospital) that a test adds to take documents as CSV.
pub const CSV_RECIPIENT: &str = "2710000015";

/// The derived parties text with [`FHIR_RECIPIENT`] receiving `kinds` as `fhir` and
/// [`CSV_RECIPIENT`] as `csv`, each into an out dir beside 131011's (`Scratch::out_dir`): with a
/// canonical subscriber, one run delivers each document in all three formats.
pub fn also_receive(parties: String, kinds: &[&str]) -> String {
    let marker = "/out/131011 }";
    let at = parties.find(marker).expect("131011 delivers into a dir");
    let start = parties[..at].rfind("dir: ").expect("dir") + "dir: ".len();
    let out = parties[start..at].to_string();
    let mut p = parties;
    for (party, format) in [(FHIR_RECIPIENT, "fhir"), (CSV_RECIPIENT, "csv")] {
        let peers = p
            .find(&format!("id: \"{party}\""))
            .and_then(|i| p[i..].find("mllp_peers:").map(|j| i + j))
            .expect("the demo hospital");
        let eol = peers + p[peers..].find('\n').expect("line");
        let mut add = String::from("\n    receives:");
        for kind in kinds {
            add.push_str(&format!(
                "\n      - {{ document: {kind}, format: {format} }}"
            ));
        }
        add.push_str(&format!("\n    delivery: {{ dir: {out}/out/{party} }}"));
        p.insert_str(eol, &add);
    }
    p
}

/// `kaigo-hub translate DOC.json --to FORMAT` of one canonical document alone, with the scratch
/// world's configuration (so FHIR ids are keyed with the hub's subject key): what a recipient
/// in that format must receive of it.
pub fn translated_alone(s: &Scratch, doc: &serde_json::Value, to: &str) -> Vec<u8> {
    let file = s.dir.join("document.json");
    std::fs::write(&file, serde_json::to_vec(doc).expect("JSON")).expect("written");
    let config = config_file(s, &s.config());
    let path = file.display().to_string();
    let mappings = repo().join("mappings").display().to_string();
    let o = kaigo(
        s,
        &config,
        &["translate", &path, "--to", to, "--mappings", &mappings],
    );
    assert!(
        o.status.success(),
        "translate --to {to}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Grants `who`'s consent to category claims to the platform, to 131011 and to the two recipients
/// [`also_receive`] adds, each under its own consent id (`claims-platform`, `claims-insurer`,
/// `claims-fhir`, `claims-csv`).
pub async fn grant_claims_to_every_recipient(hub: &Hub, who: (&str, &str)) {
    for (id, grantee) in [
        ("claims-platform", Grantee::Kind(PartyKind::Platform)),
        (
            "claims-insurer",
            Grantee::Party(MUNICIPALITY.parse().expect("id")),
        ),
        (
            "claims-fhir",
            Grantee::Party(FHIR_RECIPIENT.parse().expect("id")),
        ),
        (
            "claims-csv",
            Grantee::Party(CSV_RECIPIENT.parse().expect("id")),
        ),
    ] {
        grant(hub, id, who, grantee, &[Category::Claims]).await;
    }
}

/// Waits for document `index` of `envelope` at [`FHIR_RECIPIENT`] and [`CSV_RECIPIENT`] and checks
/// each is exactly what `kaigo-hub translate --to fhir|csv` makes of `want` alone.
pub async fn delivered_as_fhir_and_csv(
    s: &Scratch,
    envelope: &str,
    index: usize,
    want: &serde_json::Value,
) {
    let name = format!("{envelope}-{index}.json");
    let fhir = s.out_dir(FHIR_RECIPIENT);
    let (_, body) = wait_for_file(&fhir, "a FHIR delivery", |n| n == name).await;
    assert_eq!(
        json(&body),
        json(&translated_alone(s, want, "fhir")),
        "document {index} as FHIR"
    );
    let name = format!("{envelope}-{index}.csv");
    let csv = s.out_dir(CSV_RECIPIENT);
    let (_, body) = wait_for_file(&csv, "a CSV delivery", |n| n == name).await;
    assert_eq!(
        body,
        translated_alone(s, want, "csv"),
        "document {index} as CSV:\n{}",
        String::from_utf8_lossy(&body)
    );
}
