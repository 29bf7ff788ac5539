//! The audit log as a security tester attacks it and an operator checks it: a hub writes its log,
//! then a row is edited and every later row re-hashed (all one can do without the audit key), or
//! the last rows are cut; `kaigo-hub audit verify` must say so, naming the seq, against the
//! checkpoints kept in the store (SQLite and PostgreSQL). The CLI's consent commands audit their
//! changes in a chain of their own while a hub holds its log; a log written before chains were
//! keyed is closed when `serve` starts and still checked; verify answers in sentences, with exit
//! codes 0 intact, 1 tampered, 2 no key.
//!
//! The tampering is done on the JSON lines with plain SHA-256, as an attacker with a text editor
//! and `sha256sum` would, not through the hub's own types.

mod common;

use common::*;
use kaigo_hub::config::Config;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Output;

const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A hub of `s` on the memory bus with `database_url`, fed a few messages, then stopped: its audit
/// log holds their events and its checkpoint.
async fn hub_writes_a_log(s: &Scratch, cfg: &Config) -> Vec<String> {
    let running = s.start_with(cfg).await;
    // Without consents the hub refuses them, which it audits like any other outcome.
    for _ in 0..8 {
        post_sample_patient_reply(running.http_addr).await;
    }
    running.stop().await;
    let lines = log_lines(&cfg.audit_path());
    assert!(lines.len() >= 6, "the hub audited the messages: {lines:?}");
    lines
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).expect("write the log");
}

/// Edits line `i` (0-based) with `edit`, then hashes it and every later line again as the
/// unkeyed chain did: `hash = SHA-256(prev_hash || the line without hash)`, each linking to the one
/// before.
fn edit_and_reseal(lines: &mut [String], i: usize, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut edit = Some(edit);
    let mut prev: Option<String> = i.checked_sub(1).map(|j| {
        let v: serde_json::Value = serde_json::from_str(&lines[j]).expect("a JSON event");
        v["hash"].as_str().expect("hash").to_string()
    });
    for (n, line) in lines.iter_mut().enumerate().skip(i) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("a JSON event");
        if let Some(edit) = edit.take().filter(|_| n == i) {
            edit(&mut v);
        }
        let map = v.as_object_mut().expect("an object");
        if let Some(p) = &prev {
            map.insert("prev_hash".into(), p.clone().into());
        }
        map.remove("hash");
        let canonical = serde_json::to_string(map).expect("serialises");
        let prev_hash = map["prev_hash"].as_str().expect("prev_hash").to_string();
        let mut d = Sha256::new();
        d.update(prev_hash.as_bytes());
        d.update(canonical.as_bytes());
        let hash: String = d.finalize().iter().map(|b| format!("{b:02x}")).collect();
        map.insert("hash".into(), hash.clone().into());
        *line = serde_json::to_string(map).expect("serialises");
        prev = Some(hash);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn said(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A PostgreSQL schema of this test's own, dropped when the guard is.
struct PgSchema {
    name: String,
    url: String,
}

impl PgSchema {
    fn new(prefix: &str) -> PgSchema {
        let name: String = format!("kaigo_test_{prefix}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let url = format!("{PG_BASE}?options=-csearch_path%3D{name}");
        PgSchema { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(PG_BASE, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_edited_and_resealed_without_the_key_is_found_by_audit_verify() {
    let s = Scratch::memory("audit-edit", |p| p);
    let cfg = s.config();
    let mut lines = hub_writes_a_log(&s, &cfg).await;
    let config = config_file(&s, &cfg);
    let intact = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(intact.status.code(), Some(0), "{}", said(&intact));

    // Row 3 says another decision; rows 3… are re-hashed so every link holds again.
    edit_and_reseal(&mut lines, 2, |v| v["reason"] = "consent-forged".into());
    write_lines(&cfg.audit_path(), &lines);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        text.contains("audit.jsonl:3: TAMPERED. seq 3: "),
        "{}",
        said(&out)
    );
    assert!(text.contains("Verdict: NOT INTACT"), "{}", said(&out));
}

/// A hub writes its log into the store `database_url` names; its last three rows are cut; verify
/// finds that against the checkpoint.
async fn a_cut_tail_is_found(tag: &str, database_url: impl FnOnce(&Scratch) -> Option<String>) {
    let s = Scratch::memory(tag, |p| p);
    let mut cfg = s.config();
    cfg.database_url = database_url(&s);
    let lines = hub_writes_a_log(&s, &cfg).await;
    let n = lines.len();
    write_lines(&cfg.audit_path(), &lines[..n - 3]);
    let config = config_file(&s, &cfg);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "TAMPERED. The log ends at seq {}, but the store's checkpoint of chain hub-",
            n - 3
        )),
        "{}",
        said(&out)
    );
    assert!(
        text.contains(&format!(
            "is at seq {n}: at least 3 events were cut from its end"
        )),
        "{}",
        said(&out)
    );

    // The hub starts again on the cut log: it says so, records it, and verify keeps saying it.
    let running = s.start_with(&cfg).await;
    running.stop().await;
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        stdout(&out).contains(&format!("BROKEN. At seq {}", n - 2)),
        "{}",
        said(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_is_found_against_the_checkpoint_in_sqlite() {
    a_cut_tail_is_found("audit-cut-sqlite", |_| None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_is_found_against_the_checkpoint_in_postgresql() {
    let mut schema = None;
    a_cut_tail_is_found("audit-cut-pg", |s| {
        let pg = PgSchema::new(&s.prefix);
        let url = pg.url.clone();
        schema = Some(pg);
        Some(url)
    })
    .await;
    drop(schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_commands_audit_in_their_own_chain_while_a_hub_holds_its_log() {
    let s = Scratch::memory("audit-cli", |p| p);
    let cfg = s.config();
    let running = s.start_with(&cfg).await;
    let config = config_file(&s, &cfg);
    let ok = |o: Output| {
        assert_eq!(o.status.code(), Some(0), "{}", said(&o));
        o
    };
    ok(kaigo(
        &s,
        &config,
        &[
            "consent",
            "grant",
            "--subject",
            "131011:0000300003",
            "--to",
            "provider",
            "--categories",
            "care-plan",
            "--from",
            "2025-01-01",
            "--id",
            "cli-audit-1",
        ],
    ));
    ok(kaigo(
        &s,
        &config,
        &[
            "consent",
            "link",
            "--party",
            HOSPITAL,
            "--local-id",
            "P-3003",
            "--subject",
            "131011:0000300003",
        ],
    ));
    ok(kaigo(&s, &config, &["consent", "revoke", "cli-audit-1"]));
    let csv = s.dir.join("consents.csv");
    std::fs::write(
        &csv,
        "insurer_number,insured_number,grantee,categories,valid_from,valid_to,purpose\n\
         131011,0000300004,provider,care-plan,2025-01-01,,\n",
    )
    .expect("write the CSV");
    ok(kaigo(
        &s,
        &config,
        &["consent", "import", csv.to_str().expect("UTF-8 path")],
    ));
    // A refused change is audited too: the id is taken by another consent.
    let refused = kaigo(
        &s,
        &config,
        &[
            "consent",
            "grant",
            "--subject",
            "131011:0000300005",
            "--to",
            "provider",
            "--categories",
            "life",
            "--from",
            "2025-01-01",
            "--id",
            "cli-audit-1",
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));

    // While the hub still holds its log: both chains verify, the CLI's with its checkpoint.
    let out = ok(kaigo(&s, &config, &["audit", "verify"]));
    let text = stdout(&out);
    assert!(
        text.contains("audit-cli.jsonl: intact. Chain cli-"),
        "{text}"
    );
    assert!(text.contains("5 events (seq 1-5)"), "{text}");

    let events: Vec<serde_json::Value> = log_lines(&cfg.data_dir.join("audit-cli.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons[0], "cli-audit-1", "{events:#?}");
    assert_eq!(reasons[1], "link");
    assert_eq!(reasons[2], "revoke:cli-audit-1");
    assert_eq!(reasons[4], "consent-id-in-use");
    let decisions: Vec<&str> = events
        .iter()
        .map(|e| e["decision"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        decisions,
        ["accepted", "accepted", "accepted", "accepted", "rejected"]
    );
    for e in &events {
        assert_eq!(e["hop"], "admin");
        assert!(
            e["actor"].as_str().is_some_and(|a| a.starts_with("cli")),
            "{e}"
        );
    }
    assert_eq!(events[1]["party"], HOSPITAL);
    // The subject as its keyed hash, never the numbers; the local id is not recorded.
    let text = log_lines(&cfg.data_dir.join("audit-cli.jsonl")).join("\n");
    for raw in ["0000300003", "0000300004", "P-3003"] {
        assert!(!text.contains(raw), "`{raw}` in the CLI's audit log");
    }
    assert!(
        events[0]["subject"].as_str().is_some_and(|h| h.len() == 64),
        "{:?}",
        events[0]
    );
    // `audit query` finds them beside the hub's.
    let q = ok(kaigo(&s, &config, &["audit", "query", "--hop", "admin"]));
    assert!(stdout(&q).contains("revoke:cli-audit-1"), "{}", said(&q));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_answers_in_sentences_and_exit_2_without_the_key() {
    let s = Scratch::memory("audit-say", |p| p);
    let cfg = s.config();
    hub_writes_a_log(&s, &cfg).await;
    let config = config_file(&s, &cfg);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('{') && !text.contains("VerifyReport"),
        "{text}"
    );
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.contains("audit.jsonl: intact. Chain hub-")
            && first.contains("each sealed with the audit key and linked to the one before; the store's checkpoint (seq")
            && first.ends_with('.'),
        "{text}"
    );
    assert!(text.contains("Verdict: intact."), "{text}");

    // Without the key nothing can be said: a usage error that names the file, and no key made.
    let key = cfg.data_dir.join("audit.key");
    std::fs::remove_file(&key).expect("the hub made its key");
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot verify the audit log") && err.contains("audit.key"),
        "{}",
        said(&out)
    );
    assert!(!key.exists(), "verify never makes a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_log_written_before_keyed_chains_closes_it_and_verify_checks_it() {
    let s = Scratch::memory("audit-old", |p| p);
    let cfg = s.config();
    // The log an earlier kaigo-hub wrote: the unkeyed SHA-256 chain.
    let genesis = "0".repeat(64);
    let mut lines: Vec<String> = (1..=4)
        .map(|seq| {
            serde_json::json!({
                "seq": seq, "at": "2025-04-01T09:00:00Z", "hop": "ingress", "actor": "http",
                "party": null, "subject": null, "category": null, "document": null,
                "decision": "accepted", "reason": null, "envelope_id": format!("old-{seq}"),
                "prev_hash": genesis, "hash": genesis,
            })
            .to_string()
        })
        .collect();
    edit_and_reseal(&mut lines, 0, |_| {});
    std::fs::create_dir_all(&cfg.data_dir).expect("data dir");
    write_lines(&cfg.audit_path(), &lines);

    let running = s.start_with(&cfg).await;
    post_sample_patient_reply(running.http_addr).await;
    running.stop().await;
    let old = cfg.data_dir.join("audit.jsonl.unkeyed");
    assert_eq!(log_lines(&old), lines, "the old log is kept as it was");
    let config = config_file(&s, &cfg);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        stdout(&out).contains("It follows ")
            && stdout(&out).contains("(seq 1-4), which ends exactly where this chain recorded"),
        "{}",
        said(&out)
    );

    // An event slipped into the old log afterwards shows.
    let mut more = lines.clone();
    more.push(more[3].clone());
    edit_and_reseal(&mut more, 4, |v| v["seq"] = 5.into());
    write_lines(&old, &more);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        stdout(&out).contains("audit.jsonl.unkeyed: TAMPERED."),
        "{}",
        said(&out)
    );
}

/// `GET path` on its own connection; the body.
async fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_checkpoint_that_verify_checks_while_the_hub_runs() {
    let s = Scratch::memory("audit-metrics", |p| p);
    let cfg = s.config();
    let running = s.start_with(&cfg).await;
    for _ in 0..4 {
        post_sample_patient_reply(running.http_addr).await;
    }
    running.hub.audit.flush();
    let n = log_lines(&cfg.audit_path()).len();
    let metrics = get_text(running.http_addr, "/metrics").await;
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{chain=\"hub-")))
            .unwrap_or_else(|| panic!("no {name} of the hub's chain in\n{metrics}"))
            .to_string()
    };
    assert!(
        line("kaigo_audit_checkpoint_seq").ends_with(&format!("}} {n}")),
        "{metrics}"
    );
    let head: u64 = line("kaigo_audit_checkpoint_head")
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    let config = config_file(&s, &cfg);
    let out = kaigo(&s, &config, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        stdout(&out).contains(&format!("checkpoint (seq {n}, hash {head:013x}…")),
        "{}",
        said(&out)
    );
    assert!(
        stdout(&out).contains("A hub is appending to it now."),
        "{}",
        said(&out)
    );
    running.stop().await;
}

#[tokio::test]
async fn a_hub_on_a_current_thread_runtime_opens_its_chain_against_postgresql() {
    // Opening the chain reads the store's checkpoint, a blocking call: it must not run on the
    // runtime's only thread (PostgreSQL's client would then be driven from inside the runtime).
    let s = Scratch::memory("audit-ct", |p| p);
    let pg = PgSchema::new(&s.prefix);
    let mut cfg = s.config();
    cfg.database_url = Some(pg.url.clone());
    let running = s.start_with(&cfg).await;
    for _ in 0..3 {
        post_sample_patient_reply(running.http_addr).await;
    }
    let started = std::time::Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "stop waited {:?}",
        started.elapsed()
    );
    // The stop's checkpoint is recorded before `stop` returns: the last event is checkpointed.
    let out = kaigo(&s, &config_file(&s, &cfg), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        stdout(&out).contains("audit.jsonl: intact.")
            && !stdout(&out).contains("not checkpointed yet"),
        "{}",
        said(&out)
    );
}
