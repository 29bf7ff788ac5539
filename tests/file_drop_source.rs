//! The file-drop source against a hub context built from the repo's mappings and a parties file
//! whose inboxes live in a scratch directory (in-memory bus; the translate hop is not running,
//! so an accepted file stays visible in the translate queue). A ケアプラン CSV dropped without
//! consent ends in `failed/` with an error file naming the reason (and in quarantine); with
//! consents for both of its subjects it ends in `done/` and is ingested exactly once, however
//! many polls follow; a malformed CSV ends in `failed/` with the parse error (and in the
//! dead-letter queue). Dot-files are left alone, and a file a crashed hub left in
//! `processing/` is put back and ingested.

use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyKind, Subject};
use kaigo_hub::parties::Parties;
use kaigo_hub::pipeline::Hub;
use kaigo_hub::pipeline::body_limit::BodyLimit;
use kaigo_hub::serve;
use kaigo_hub::sources::file_drop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(30);
const PATIENCE: Duration = Duration::from_secs(10);
const UP2KYO: &str = "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Scratch {
    dir: PathBuf,
    hub: Arc<Hub>,
}

impl Scratch {
    /// A hub context whose parties are the repo's, with every `data/` path in a scratch dir.
    async fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "kaigo-file-drop-{tag}-{}-{}",
            std::process::id(),
            kaigo_hub::pipeline::clock::envelope_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(repo().join("parties.yaml")).unwrap();
        let moved = text.replace(": data/", &format!(": {}/", dir.join("data").display()));
        assert_ne!(text, moved, "the demo parties have inboxes under data/");
        std::fs::write(dir.join("parties.yaml"), moved).unwrap();
        let cfg = Config {
            data_dir: dir.join("state"),
            parties: dir.join("parties.yaml"),
            mappings: repo().join("mappings"),
            ..Default::default()
        };
        let hub = serve::build(&cfg).await.expect("hub context");
        Scratch { dir, hub }
    }

    /// The care manager's inbox (事業所番号 0300000100), created like a sender would.
    fn inbox(&self) -> PathBuf {
        let inbox = self.dir.join("data/inbox/0300000100");
        std::fs::create_dir_all(&inbox).unwrap();
        inbox
    }

    fn consent(&self, id: &str, insurer: &str, insured: &str) {
        self.hub
            .store
            .consents()
            .grant(Consent {
                id: id.parse().unwrap(),
                subject: Subject::new(insurer, insured).unwrap(),
                grantee: Grantee::Kind(PartyKind::Platform),
                categories: vec![Category::CarePlan],
                valid_from: IsoDate::parse("2000-01-01").unwrap(),
                valid_to: None,
                purpose: None,
                revoked_at: None,
            })
            .unwrap();
    }

    async fn queue_len(&self, queue: &str) -> u64 {
        self.hub.bus.queue_len(queue).await.unwrap()
    }

    fn accepted(&self) -> u64 {
        self.hub.metrics.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The file-drop source polling every `POLL`, with the default `body_limit`.
fn source_config() -> file_drop::FileDropConfig {
    file_drop::FileDropConfig {
        poll: POLL,
        body_limit: BodyLimit::new(Config::default().body_limit)
            .expect("the default limit is valid"),
    }
}

fn sample() -> Vec<u8> {
    std::fs::read(repo().join("samples/careplan").join(UP2KYO)).unwrap()
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_care_plan_without_consent_fails_with_the_reason() {
    let s = Scratch::new("no-consent").await;
    let inbox = s.inbox();
    std::fs::write(inbox.join(UP2KYO), sample()).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);

    let failed = inbox.join("failed");
    eventually("moved to failed/", || failed.join(UP2KYO).is_file()).await;
    let error_file = failed.join(format!("{UP2KYO}.error.txt"));
    eventually("error file written", || error_file.is_file()).await;
    let report = std::fs::read_to_string(&error_file).unwrap();
    assert!(report.contains("consent-denied"), "{report}");
    assert!(report.contains("party: 0300000100"), "{report}");
    assert!(report.contains("envelope: k"), "{report}");
    assert!(!report.contains("0000100001"), "no personal ids: {report}");
    assert_eq!(
        std::fs::read(failed.join(UP2KYO)).unwrap(),
        sample(),
        "kept as is"
    );
    assert_eq!(files(&inbox), Vec::<String>::new());
    assert_eq!(
        s.queue_len(&s.hub.topology.quarantine_queue()).await,
        1,
        "ingress kept it in quarantine"
    );
    assert_eq!(s.accepted(), 0);

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consented_care_plan_is_done_and_ingested_once() {
    let s = Scratch::new("consented").await;
    s.consent("fd-1", "131011", "0000100001");
    s.consent("fd-2", "435073", "0000200002");
    let inbox = s.inbox();
    std::fs::write(inbox.join(".UP2KYO_partial.CSV"), b"being written").unwrap();
    std::fs::write(inbox.join(UP2KYO), sample()).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);

    let done = inbox.join("done");
    eventually("moved to done/", || done.join(UP2KYO).is_file()).await;
    assert_eq!(std::fs::read(done.join(UP2KYO)).unwrap(), sample());
    // Several more polls: nothing is ingested again.
    tokio::time::sleep(POLL * 10).await;
    assert_eq!(s.accepted(), 1);
    assert_eq!(s.queue_len(&s.hub.topology.translate_queue()).await, 1);
    assert_eq!(files(&done), vec![UP2KYO.to_string()]);
    assert_eq!(files(&inbox), vec![".UP2KYO_partial.CSV".to_string()]);
    assert_eq!(files(&inbox.join("processing")), Vec::<String>::new());
    assert!(!inbox.join("failed").exists());

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_the_parties_file_gains_while_the_hub_runs_is_scanned_from_then_on() {
    let s = Scratch::new("reloaded").await;
    s.consent("fd-r1", "131011", "0000100001");
    s.consent("fd-r2", "435073", "0000200002");
    let file = s.dir.join("parties.yaml");
    let with_inbox = std::fs::read_to_string(&file).unwrap();
    let inbox_line = format!(
        "    inbox: {}\n",
        s.dir.join("data/inbox/0300000100").display()
    );
    assert!(with_inbox.contains(&inbox_line), "{with_inbox}");
    // The hub starts with parties in which the care manager has no inbox.
    std::fs::write(&file, with_inbox.replace(&inbox_line, "")).unwrap();
    s.hub
        .parties
        .replace(Parties::load(&file).unwrap())
        .unwrap();
    let inbox = s.inbox();
    std::fs::write(inbox.join(UP2KYO), sample()).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);
    tokio::time::sleep(POLL * 10).await;
    assert_eq!(files(&inbox), vec![UP2KYO.to_string()], "not an inbox yet");
    assert_eq!(s.accepted(), 0);

    // The file gains the inbox again (what SIGHUP's reload puts in force).
    std::fs::write(&file, &with_inbox).unwrap();
    s.hub
        .parties
        .replace(Parties::load(&file).unwrap())
        .unwrap();
    let done = inbox.join("done");
    eventually("moved to done/", || done.join(UP2KYO).is_file()).await;
    assert_eq!(s.accepted(), 1);

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_csv_fails_with_the_parse_error() {
    let s = Scratch::new("malformed").await;
    let inbox = s.inbox();
    std::fs::write(inbox.join(UP2KYO), b"202407,\"never closed\n").unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);

    let error_file = inbox.join("failed").join(format!("{UP2KYO}.error.txt"));
    eventually("error file written", || error_file.is_file()).await;
    let report = std::fs::read_to_string(&error_file).unwrap();
    assert!(report.contains("outcome: malformed"), "{report}");
    assert!(report.contains("unterminated"), "{report}");
    assert!(report.contains("line"), "the error says where: {report}");
    assert_eq!(s.queue_len(&s.hub.topology.dead_queue()).await, 1);
    assert_eq!(s.accepted(), 0);

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_digit_medical_insurer_number_fails_the_mapping_naming_column_and_rule() {
    // `06132013` is a valid 8-digit 医療 保険者番号 (its own check digit holds) but no 介護 insurer:
    // the sender is told at the mapping which column broke which rule, and the file is not
    // quarantined as `unknown-subject` (which it was, its real reason lost).
    let s = Scratch::new("medical-insurer").await;
    let inbox = s.inbox();
    let text = String::from_utf8_lossy(&sample()).into_owned();
    assert_eq!(
        text.matches(",131011,").count(),
        4,
        "the sample's 保険者番号"
    );
    let bad = sample()
        .split(|b| *b == b'\n')
        .map(|line| replace_once(line, b",131011,", b",06132013,"))
        .collect::<Vec<_>>()
        .join(&b'\n');
    std::fs::write(inbox.join(UP2KYO), &bad).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);

    let error_file = inbox.join("failed").join(format!("{UP2KYO}.error.txt"));
    eventually("error file written", || error_file.is_file()).await;
    let report = std::fs::read_to_string(&error_file).unwrap();
    assert!(report.contains("outcome: malformed"), "{report}");
    assert!(!report.contains("unknown-subject"), "{report}");
    assert!(report.contains("column 2"), "the column: {report}");
    assert!(report.contains("rule `subject.insurer_number`"), "{report}");
    assert!(report.contains("check `insurer_number`"), "{report}");
    assert!(report.contains("`00`-padded 証記載保険者番号"), "{report}");
    assert_eq!(s.queue_len(&s.hub.topology.dead_queue()).await, 1);
    assert_eq!(s.queue_len(&s.hub.topology.quarantine_queue()).await, 0);
    assert_eq!(s.accepted(), 0);

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

/// `line` with the first `from` replaced by `to`.
fn replace_once(line: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match line.windows(from.len()).position(|w| w == from) {
        Some(at) => [&line[..at], to, &line[at + from.len()..]].concat(),
        None => line.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_in_processing_by_a_crash_is_put_back_and_ingested() {
    let s = Scratch::new("crash").await;
    s.consent("fd-1", "131011", "0000100001");
    s.consent("fd-2", "435073", "0000200002");
    let inbox = s.inbox();
    std::fs::create_dir_all(inbox.join("processing")).unwrap();
    std::fs::write(inbox.join("processing").join(UP2KYO), sample()).unwrap();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);

    eventually("moved to done/", || {
        inbox.join("done").join(UP2KYO).is_file()
    })
    .await;
    assert_eq!(s.accepted(), 1);
    assert_eq!(files(&inbox.join("processing")), Vec::<String>::new());

    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_scan() {
    let s = Scratch::new("shutdown").await;
    let inbox = s.inbox();
    let (tx, rx) = watch::channel(false);
    let task = file_drop::start(s.hub.clone(), source_config(), rx);
    tokio::time::sleep(POLL * 2).await;
    tx.send(true).unwrap();
    tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    std::fs::write(inbox.join(UP2KYO), sample()).unwrap();
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(
        files(&inbox),
        vec![UP2KYO.to_string()],
        "untouched after shutdown"
    );
}
