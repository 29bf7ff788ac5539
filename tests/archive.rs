//! The encrypted message archive through a running hub: each accepted message's original and each
//! canonical document are kept sealed (the database's bytes do not hold the plaintext), open only
//! with the key that sealed them, are forgotten after `archive_keep_days`, and, with the audit
//! log, give the trace of a delivered message and of a quarantined one — on the in-memory bus and
//! on RabbitMQ, in SQLite and in PostgreSQL. A hub without `archive_key_file` archives nothing
//! and still traces from the audit log.

mod common;

use common::*;
use kaigo_hub::config::Config;
use kaigo_hub::serve::Running;
use kaigo_hub::store::archive::{Archive, ArchiveKey, KEY_BYTES, OpenError};
use kaigo_hub::trace::{Search, Trace};
use std::time::Duration;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `s`'s config with the archive on (a fresh key in the scratch dir), asking consent for the
/// purpose `care` (the demo consents name none, so they permit any).
fn archiving(s: &Scratch) -> Config {
    let path = s.dir.join("keys/archive.key");
    ArchiveKey::read_or_make(&path).expect("archive key");
    Config {
        archive_key_file: Some(path),
        purpose: Some("care".into()),
        ..s.config()
    }
}

/// Waits until the hub's audit events and archive rows so far are written.
async fn settle(running: &Running) {
    if let Some(a) = &running.hub.archive {
        a.settled(Duration::from_secs(10)).await;
    }
    let audit = running.hub.audit.clone();
    tokio::task::spawn_blocking(move || audit.flush())
        .await
        .expect("flush");
}

fn trace_of(running: &Running, cfg: &Config, envelope: &str) -> Trace {
    let mut events = Vec::new();
    kaigo_hub::trace::read_events(&[cfg.audit_path()], |e| events.push(e)).expect("audit log");
    kaigo_hub::trace::trace(
        envelope,
        events,
        running
            .hub
            .store
            .archive()
            .filter(|_| running.hub.archive.is_some()),
    )
    .expect("trace")
}

fn found(running: &Running, cfg: &Config, q: &str) -> Vec<String> {
    let mut events = Vec::new();
    kaigo_hub::trace::read_events(&[cfg.audit_path()], |e| events.push(e)).expect("audit log");
    let search = Search::parse(q, "", "").expect("search");
    let archive = running
        .hub
        .store
        .archive()
        .filter(|_| running.hub.archive.is_some());
    kaigo_hub::trace::search(&search, &running.hub.hasher, archive, events, 0)
        .expect("search")
        .into_iter()
        .map(|f| f.meta.envelope)
        .collect()
}

/// The sample Patient over HTTP, delivered to the provider and the care manager: its trace, its
/// archived original and document, and the search that finds it.
async fn a_delivered_message_is_archived_and_traced(
    s: &Scratch,
    cfg: &Config,
) -> (Running, String) {
    let running = s.start_with(cfg).await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let envelope = post_sample_patient(running.http_addr).await;
    wait_for_file(&s.out_dir(CARE_MANAGER), "the care manager's copy", |n| {
        n.starts_with(&envelope)
    })
    .await;
    eventually("both copies audited as delivered", async || {
        settle(&running).await;
        trace_of(&running, cfg, &envelope)
            .deliveries()
            .filter(|d| d.outcome == "delivered")
            .count()
            == 2
    })
    .await;
    let t = trace_of(&running, cfg, &envelope);
    let hops: Vec<(&str, &str)> = t
        .steps
        .iter()
        .map(|s| (s.hop.as_str(), s.outcome.as_str()))
        .collect();
    assert!(hops.contains(&("ingress", "accepted")), "{hops:?}");
    assert!(hops.contains(&("translate", "accepted")), "{hops:?}");
    let mut recipients: Vec<&str> = t.deliveries().filter_map(|d| d.party.as_deref()).collect();
    recipients.sort();
    assert_eq!(recipients, [PROVIDER, CARE_MANAGER]);
    let permits: Vec<_> = t
        .decisions
        .iter()
        .filter(|d| d.decision == "permit")
        .collect();
    assert!(
        permits.len() >= 3,
        "consent at ingress, translate and per recipient: {:?}",
        t.decisions
    );
    assert!(permits.iter().all(|d| {
        d.consent_id
            .as_deref()
            .is_some_and(|c| c.starts_with("demo-"))
    }));
    assert!(
        permits
            .iter()
            .all(|d| d.category.as_deref() == Some("certification"))
    );
    // Each decision shows the purpose its question stated, as its audit event records it.
    assert!(
        permits.iter().all(|d| d.purpose == cfg.purpose),
        "{:?}",
        t.decisions
    );
    let original = t.original.as_ref().expect("archived");
    assert_eq!(
        (original.sender.as_str(), original.format.as_str()),
        (HOSPITAL, "fhir")
    );
    assert_eq!(original.kinds, ["InsuredPerson@1"]);
    assert_eq!(t.documents.len(), 1);
    assert_eq!(t.documents[0].kind, "InsuredPerson@1");
    let hash = running
        .hub
        .hasher
        .hash(PERSON_1.0, PERSON_1.1)
        .into_string();
    assert_eq!(t.documents[0].subject.as_deref(), Some(hash.as_str()));
    assert!(
        t.mappings().iter().any(|m| m.contains('@')),
        "mapping id@version: {:?}",
        t.mappings()
    );

    // The bodies, opened with the key: the original as sent, the canonical document.
    let key = running.hub.archive.as_ref().expect("archive on").key();
    let archive = Archive {
        store: running.hub.store.archive().expect("tables"),
        key,
    };
    let (_, body) = archive.original(&envelope).expect("opens").expect("kept");
    assert_eq!(body, sample("fhir/patient-jpcore.json"));
    let docs = archive.documents(&envelope).expect("opens");
    assert_eq!(json(&docs[0].json)["document"], "InsuredPerson@1");
    // Another key is refused, saying which key sealed it.
    let other = ArchiveKey::from_bytes(&[0x5a; KEY_BYTES]);
    let refused = Archive {
        store: archive.store,
        key: &other,
    }
    .original(&envelope)
    .expect_err("another key");
    assert!(matches!(refused, OpenError::OtherKey { .. }), "{refused}");
    assert!(refused.to_string().contains(key.id()), "{refused}");
    // The sealed bytes do not hold the body.
    let (_, sealed) = archive
        .store
        .archived_original(&envelope)
        .expect("read")
        .expect("kept");
    assert!(!contains(&sealed.bytes, "試験 花子".as_bytes()));

    // The searches that find it.
    for q in [
        envelope.clone(),
        format!("sender:{HOSPITAL}"),
        format!("recipient:{PROVIDER}"),
        "kind:InsuredPerson".to_string(),
        format!("{}:{}", PERSON_1.0, PERSON_1.1),
    ] {
        assert!(found(&running, cfg, &q).contains(&envelope), "{q}");
    }
    assert!(!found(&running, cfg, "recipient:nobody").contains(&envelope));
    (running, envelope)
}

/// The ケアプラン CSV: the second person's copy for the municipality is withheld (no consent):
/// the trace shows the deny and the quarantined copy, with the reason.
async fn a_quarantined_copy_is_traced_with_its_decision(s: &Scratch, cfg: &Config) {
    let running = s.start_with(cfg).await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let inbox = s.inbox(CARE_MANAGER);
    put_atomically(&inbox.join(UP2KYO), &sample(&format!("careplan/{UP2KYO}")));
    let mut envelope = String::new();
    eventually(
        "the municipality's copy of person 2 quarantined",
        async || {
            settle(&running).await;
            let hits = found(&running, cfg, &format!("recipient:{MUNICIPALITY}"));
            if let Some(e) = hits.first() {
                envelope = e.clone();
                trace_of(&running, cfg, e)
                    .deliveries()
                    .any(|d| d.outcome == "quarantined")
            } else {
                false
            }
        },
    )
    .await;
    let t = trace_of(&running, cfg, &envelope);
    let withheld = t
        .deliveries()
        .find(|d| d.outcome == "quarantined")
        .expect("found above");
    assert_eq!(withheld.party.as_deref(), Some(MUNICIPALITY));
    assert_eq!(withheld.reason.as_deref(), Some("recipient-not-covered"));
    let deny = t
        .decisions
        .iter()
        .find(|d| d.decision == "deny")
        .expect("a deny decision");
    assert_eq!(deny.recipient.as_deref(), Some(MUNICIPALITY));
    assert_eq!(deny.point, "deliver");
    assert_eq!(deny.category.as_deref(), Some("care-plan"));
    assert_eq!(deny.reason.as_deref(), Some("recipient-not-covered"));
    assert_eq!(deny.consent_id, None);
    let person_2 = running
        .hub
        .hasher
        .hash(PERSON_2.0, PERSON_2.1)
        .into_string();
    assert_eq!(deny.subject.as_deref(), Some(person_2.as_str()));
    assert!(t.deliveries().any(|d| d.outcome == "delivered"));
    if running.hub.archive.is_some() {
        assert_eq!(t.documents.len(), 2, "both care plans archived");
        assert_eq!(t.original.as_ref().expect("archived").format, "csv");
        let p2 = format!("{}:{}", PERSON_2.0, PERSON_2.1);
        assert!(found(&running, cfg, &p2).contains(&envelope));
    }
    running.stop().await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_memory_bus_in_sqlite_the_archive_is_sealed_at_rest_traced_and_pruned() {
    let s = Scratch::memory("archive-mem", |p| p);
    let mut cfg = archiving(&s);
    cfg.database_url = None;
    let (running, envelope) = a_delivered_message_is_archived_and_traced(&s, &cfg).await;
    // The database file (and its write-ahead log) never holds the body in clear.
    let db = cfg.data_dir.join("kaigo-hub.sqlite");
    let mut bytes = std::fs::read(&db).expect("the SQLite file");
    bytes.extend(std::fs::read(db.with_extension("sqlite-wal")).unwrap_or_default());
    for plain in [
        "試験 花子".as_bytes(),
        b"example-kaigo-patient-01",
        b"\"resourceType\": \"Patient\"",
    ] {
        assert!(
            !contains(&bytes, plain),
            "{}",
            String::from_utf8_lossy(plain)
        );
    }
    assert!(
        contains(&bytes, envelope.as_bytes()),
        "the ids are in clear"
    );
    // Retention: everything kept before now is forgotten.
    let metrics = running.hub.metrics.clone();
    let gone = kaigo_hub::pipeline::archiver::forget_older_than(
        &running.hub.store,
        &metrics,
        Duration::ZERO,
    )
    .await
    .expect("prune");
    assert_eq!(gone, 2, "the original and its document");
    let tables = running.hub.store.archive().expect("tables");
    assert!(tables.archived_original(&envelope).unwrap().is_none());
    assert!(tables.archived_documents(&envelope).unwrap().is_empty());
    // The trace still has what the audit log says.
    let t = trace_of(&running, &cfg, &envelope);
    assert!(t.original.is_none() && t.deliveries().count() == 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_memory_bus_a_quarantined_copy_is_traced() {
    let s = Scratch::memory("archive-memq", |p| p);
    a_quarantined_copy_is_traced_with_its_decision(&s, &archiving(&s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_rabbitmq_a_delivered_message_is_archived_and_traced() {
    let s = Scratch::rabbit("archive-rmq", |p| p);
    let (running, _) = a_delivered_message_is_archived_and_traced(&s, &archiving(&s)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_rabbitmq_a_quarantined_copy_is_traced() {
    let s = Scratch::rabbit("archive-rmqq", |p| p);
    a_quarantined_copy_is_traced_with_its_decision(&s, &archiving(&s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_postgresql_the_archive_is_sealed_and_traced() {
    let s = Scratch::memory("archive-pg", |p| p);
    let schema = format!(
        "kaigo_t_archive_{}",
        kaigo_hub::pipeline::clock::envelope_id().to_ascii_lowercase()
    );
    let mut cfg = archiving(&s);
    cfg.database_url = Some(format!("{POSTGRES}?options=-csearch_path%3D{schema}"));
    let (running, envelope) = a_delivered_message_is_archived_and_traced(&s, &cfg).await;
    // What PostgreSQL holds of the original: the sealed bytes, not the body.
    let (client, conn) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {POSTGRES} is required for this test: {e}"));
    tokio::spawn(conn);
    let row = client
        .query_one(
            &format!("SELECT body FROM {schema}.archive_originals WHERE envelope = $1"),
            &[&envelope],
        )
        .await
        .expect("the archived row");
    let stored: Vec<u8> = row.get(0);
    assert!(!contains(&stored, b"example-kaigo-patient-01"));
    assert!(
        stored.len() > sample("fhir/patient-jpcore.json").len(),
        "nonce and tag added"
    );
    running.stop().await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_key_file_nothing_is_archived_and_the_trace_comes_from_the_audit_log() {
    let s = Scratch::memory("archive-off", |p| p);
    let cfg = s.config();
    let running = s.start_with(&cfg).await;
    assert!(running.hub.archive.is_none());
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let envelope = post_sample_patient(running.http_addr).await;
    eventually("both copies audited as delivered", async || {
        settle(&running).await;
        trace_of(&running, &cfg, &envelope).deliveries().count() == 2
    })
    .await;
    let tables = running.hub.store.archive().expect("the tables exist");
    assert!(tables.archived_original(&envelope).unwrap().is_none());
    let t = trace_of(&running, &cfg, &envelope);
    assert!(t.original.is_none() && t.documents.is_empty());
    assert_eq!(
        found(&running, &cfg, &format!("{}:{}", PERSON_1.0, PERSON_1.1)),
        std::slice::from_ref(&envelope)
    );
    assert_eq!(
        found(&running, &cfg, &format!("sender:{HOSPITAL}")),
        [envelope]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_key_file_that_is_set_but_missing_stops_the_hub_at_start_naming_it() {
    let s = Scratch::memory("archive-nokey", |p| p);
    let cfg = Config {
        archive_key_file: Some(s.dir.join("missing.key")),
        ..s.config()
    };
    let e = match kaigo_hub::serve::start(&cfg).await {
        Ok(_) => panic!("started without its archive key"),
        Err(e) => e,
    };
    assert!(
        e.contains("archive_key_file") && e.contains("missing.key"),
        "{e}"
    );
}

/// A key file other users of the machine may read (the archive key, the subject key, the audit
/// key) stops the hub at start, naming the file and how to mend it; made private again, it starts.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_file_others_may_read_stops_the_hub_at_start_naming_the_mend() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::memory("archive-loose-key", |p| p);
    let cfg = archiving(&s);
    s.start_with(&cfg).await.stop().await; // makes the subject and audit keys, 0600
    let keys = [
        cfg.archive_key_file.clone().expect("on"),
        cfg.data_dir.join("subject.key"),
        cfg.audit_key_path(),
    ];
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    for key in &keys {
        assert!(key.exists(), "{}", key.display());
        chmod(key, 0o644);
        let e = match kaigo_hub::serve::start(&cfg).await {
            Ok(_) => panic!("started with {} readable by others", key.display()),
            Err(e) => e,
        };
        assert!(
            e.contains(&format!("`chmod 600 {}`", key.display())) && e.contains("(mode 644)"),
            "{e}"
        );
        chmod(key, 0o600);
    }
    s.start_with(&cfg).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_command_line_prints_the_trace_and_finds_the_message_and_audits_a_person_search() {
    let s = Scratch::memory("archive-cli", |p| p);
    let mut cfg = archiving(&s);
    cfg.database_url = None;
    let running = s.start_with(&cfg).await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let envelope = post_sample_patient(running.http_addr).await;
    eventually("both copies audited as delivered", async || {
        settle(&running).await;
        trace_of(&running, &cfg, &envelope).deliveries().count() == 2
    })
    .await;
    running.stop().await;
    let config = config_file(&s, &cfg);
    let key = cfg
        .archive_key_file
        .as_ref()
        .expect("on")
        .display()
        .to_string();
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!("archive_key_file = {key:?}\n"));
    std::fs::write(&config, text).expect("config");
    let out = |args: &[&str]| {
        let o = kaigo(&s, &config, args);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout
    };
    let trace = out(&["audit", "trace", &envelope]);
    for part in [
        format!("envelope {envelope}"),
        format!("from {HOSPITAL} (fhir)"),
        "mapping: ".to_string(),
        "ingress   accepted".to_string(),
        format!("{CARE_MANAGER} delivered"),
        format!("{PROVIDER} delivered"),
        "permit        consent=demo-".to_string(),
    ] {
        assert!(trace.contains(&part), "{part} in\n{trace}");
    }
    assert!(!trace.contains("試験"), "no body: {trace}");
    assert!(out(&["audit", "search", &format!("sender:{HOSPITAL}")]).contains(&envelope));
    assert!(out(&["audit", "search", &format!("recipient:{PROVIDER}")]).contains(&envelope));
    let person = format!("{}:{}", PERSON_1.0, PERSON_1.1);
    assert!(out(&["audit", "search", &person]).contains(&envelope));
    let cli_log = std::fs::read_to_string(cfg.data_dir.join("audit-cli.jsonl")).expect("CLI log");
    assert!(cli_log.contains("search-person"), "{cli_log}");
    assert!(!cli_log.contains(PERSON_1.1), "the keyed hash only");
    let bad = kaigo(&s, &config, &["audit", "search", "13101:0000100001"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("0000100001"));
}
