//! The PostgreSQL store against the real server on 127.0.0.1:5432 (database `test`, trust auth):
//! consents, revocation and the cross-reference shared by two store instances (two hub
//! processes), delivery keys, and an unreachable database making decisions indeterminate — never
//! a permit; a command other than `serve` pointed at a schema without the hub's tables refuses
//! it, naming it, and creates nothing. Each test works in its own schema and drops it. A server
//! that cannot be reached fails the test loudly.

use kaigo_hub::consent::{
    Category, Consent, Decision, Grantee, IsoDate, PartyId, PartyKind, Question, Recipient, Subject,
};
use kaigo_hub::store::Store;
use kaigo_hub::store::postgres::PostgresStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const BASE: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn schema() -> (String, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "kaigo_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {BASE} is required for this test: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .expect("create schema");
    (
        name.clone(),
        format!("{BASE}?options=-csearch_path%3D{name}&application_name={name}"),
    )
}

async fn drop_schema(name: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(BASE, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
            .await;
    }
}

fn consent(id: &str) -> Consent {
    Consent {
        id: id.parse().unwrap(),
        subject: Subject::new("131011", "0000100001").unwrap(),
        grantee: Grantee::Party(PartyId::parse("0300000005").unwrap()),
        categories: vec![Category::CarePlan],
        valid_from: IsoDate::parse("2025-01-01").unwrap(),
        valid_to: None,
        purpose: None,
        revoked_at: None,
    }
}

fn question() -> Question {
    Question {
        subject: Subject::new("131011", "0000100001").unwrap(),
        recipient: Recipient {
            id: PartyId::parse("0300000005").unwrap(),
            kind: PartyKind::Provider,
        },
        category: Category::CarePlan,
        purpose: None,
        on: IsoDate::parse("2025-11-20").unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hub_processes_share_consents_revocations_and_links() {
    let (name, url) = schema().await;
    let a = PostgresStore::connect(&url).await.expect("connect a");
    let b = PostgresStore::connect(&url).await.expect("connect b");
    assert!(
        !b.consents().decide(&question()).is_permit(),
        "no consent yet"
    );
    a.consents().grant(consent("pg-1")).unwrap();
    assert!(
        b.consents().decide(&question()).is_permit(),
        "b sees a's grant"
    );
    b.consents().revoke("pg-1", "2025-11-21T00:00:00Z").unwrap();
    match a.consents().decide(&question()) {
        Decision::Deny { reason } => assert_eq!(reason.code(), "revoked"),
        other => panic!("a must see b's revoke: {other:?}"),
    }
    let mut conflicting = consent("pg-1");
    conflicting.categories = vec![Category::Claims];
    assert!(
        a.consents().grant(conflicting).is_err(),
        "same rules as the in-memory model"
    );
    let s = Subject::new("131011", "0000100001").unwrap();
    a.link("1311234567", "00012345", &s).unwrap();
    assert_eq!(b.resolve("1311234567", "00012345").unwrap(), Some(s));
    assert!(!b.was_delivered("e/0/r").unwrap());
    a.mark_delivered("e/0/r").unwrap();
    a.mark_delivered("e/0/r").unwrap();
    assert!(b.was_delivered("e/0/r").unwrap());
    // A group in one statement; keys already recorded (or twice in the group) are no error.
    let keys: Vec<String> = ["e/0/r", "f/0/r", "f/1/r", "f/1/r"]
        .map(String::from)
        .into();
    a.mark_delivered_all(&keys).unwrap();
    for k in &keys {
        assert!(b.was_delivered(k).unwrap(), "{k}");
    }
    assert!(!b.was_delivered("f/2/r").unwrap());
    assert_eq!(a.consents().list(None).len(), 1);
    drop_schema(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_pointed_at_a_schema_without_a_store_refuses_it_and_creates_nothing() {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "kaigo_test_absent_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let url = format!("{BASE}?options=-csearch_path%3D{name}");
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KAIGO_") {
                c.env_remove(k);
            }
        }
        c.current_dir(std::env::temp_dir())
            .env("KAIGO_DATABASE_URL", &url)
            .args(["consent", "list"]);
        c.output().expect("kaigo-hub runs")
    };
    let o = command();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("no kaigo-hub store at PostgreSQL {url}"))
            && err.contains(&format!("schema `{name}` has no kaigo-hub tables")),
        "{err}"
    );
    assert!(err.contains("KAIGO_DATABASE_URL"), "{err}");
    let (admin, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {BASE} is required for this test: {e}"));
    tokio::spawn(conn);
    let made = admin
        .query(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
            &[&name],
        )
        .await
        .expect("schemata");
    assert!(made.is_empty(), "the command created schema {name}");
    // Once `serve` (here its store) made it, the command works on it.
    let store = PostgresStore::connect(&url)
        .await
        .expect("create the store");
    store.consents().grant(consent("pg-absent-1")).unwrap();
    let o = command();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("pg-absent-1"));
    drop_schema(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_indeterminate_never_permit() {
    let (name, url) = schema().await;
    let store = PostgresStore::connect(&url).await.expect("connect");
    store.consents().grant(consent("pg-2")).unwrap();
    assert!(store.consents().decide(&question()).is_permit());
    // Kill this store's server connection: the next decision cannot be trusted to be fresh.
    let (admin, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
        ))
        .await
        .unwrap();
    // Either the first call fails (indeterminate) and the store reconnects, or it reconnects at
    // once; it must never answer permit from a failed query, and must recover.
    let mut saw = Vec::new();
    for _ in 0..3 {
        saw.push(store.consents().decide(&question()));
    }
    assert!(
        saw.iter()
            .all(|d| matches!(d, Decision::Permit { .. } | Decision::Indeterminate { .. }))
    );
    assert!(
        saw.last().is_some_and(|d| d.is_permit()),
        "reconnects: {saw:?}"
    );
    // A database that is not there at all: indeterminate.
    let gone = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test").await;
    assert!(gone.is_err(), "connecting to a closed port fails at start");
    drop_schema(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_keys_from_async_callers_agree_with_the_blocking_calls_and_survive_a_lost_connection()
 {
    let (name, url) = schema().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.expect("connect"));
    // Another process, under another application name so only `store`'s connection is killed.
    let other_url = url.replace("application_name=", "application_name=other_");
    let other = PostgresStore::connect(&other_url)
        .await
        .expect("connect other");
    assert!(
        store.was_delivered_async("a/0/r").is_some(),
        "PostgreSQL answers async callers without the blocking pool"
    );
    assert!(
        !kaigo_hub::store::was_delivered(&store, "a/0/r")
            .await
            .unwrap()
    );
    let keys: Vec<String> = ["a/0/r", "a/1/r", "a/1/r"].map(String::from).into();
    kaigo_hub::store::mark_delivered_all(&store, keys.clone())
        .await
        .unwrap();
    for k in &keys {
        assert!(
            other.was_delivered(k).unwrap(),
            "{k} seen by another process"
        );
    }
    other.mark_delivered("b/0/r").unwrap();
    assert!(
        kaigo_hub::store::was_delivered(&store, "b/0/r")
            .await
            .unwrap()
    );

    // Kill the store's server connection: an async call may fail once (the caller retries), then
    // the store connects again by itself and the answers are the same.
    let (admin, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let killed: i64 = admin
        .query_one(
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the store's one connection");
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(kaigo_hub::store::was_delivered(&store, "b/0/r").await);
    }
    assert!(
        answers.iter().all(|a| matches!(a, Ok(true) | Err(_))),
        "never a wrong answer: {answers:?}"
    );
    assert!(
        matches!(answers.last(), Some(Ok(true))),
        "reconnects: {answers:?}"
    );
    kaigo_hub::store::mark_delivered_all(&store, vec!["c/0/r".into()])
        .await
        .unwrap();
    assert!(other.was_delivered("c/0/r").unwrap());
    drop_schema(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_linked_local_id_resolves_the_same_on_postgresql_and_sqlite() {
    let (name, url) = schema().await;
    let pg: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.expect("connect"));
    assert!(
        pg.resolve_async("1310000001", &["x".to_string()]).is_some(),
        "PostgreSQL resolves without the blocking pool"
    );
    let lite: Arc<dyn Store> =
        Arc::new(kaigo_hub::store::sqlite::SqliteStore::in_memory().expect("sqlite"));
    let first = Subject::new("131011", "0000100001").unwrap();
    let second = Subject::new("131011", "0000100002").unwrap();
    for store in [&pg, &lite] {
        store.link("1310000001", "P-2", &second).unwrap();
        store.link("1310000001", "P-1", &first).unwrap();
        // Another party's link for the same local id must not count.
        store.link("1310000002", "P-3", &first).unwrap();
    }
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (asked, expected) in [
        (ids(&["P-1", "P-2"]), Some(&first)),
        (ids(&["P-2", "P-1"]), Some(&second)),
        (ids(&["unknown", "P-2"]), Some(&second)),
        (ids(&["P-3"]), None),
        (ids(&["unknown"]), None),
        (ids(&[]), None),
    ] {
        for (kind, store) in [("postgres", &pg), ("sqlite", &lite)] {
            let got = kaigo_hub::store::resolve_first(store, "1310000001", asked.clone())
                .await
                .unwrap();
            assert_eq!(got.as_ref(), expected, "{kind}: {asked:?}");
        }
    }
    drop_schema(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_async_consent_read_agrees_with_the_registry_and_is_never_a_permit_on_failure() {
    let (name, url) = schema().await;
    let store = Arc::new(PostgresStore::connect(&url).await.expect("connect"));
    let subject = question().subject;
    let read = |store: Arc<PostgresStore>| async move {
        let subject = question().subject;
        store
            .consents_of_async(&subject)
            .expect("PostgreSQL reads consents without the blocking pool")
            .await
    };
    assert_eq!(read(store.clone()).await.unwrap(), vec![], "none yet");
    store.consents().grant(consent("pg-b")).unwrap();
    store.consents().grant(consent("pg-a")).unwrap();
    store
        .consents()
        .revoke("pg-b", "2025-06-01T00:00:00Z")
        .unwrap();
    let got = read(store.clone()).await.unwrap();
    assert_eq!(got, store.consents().consents_of(&subject).unwrap());
    assert_eq!(
        got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["pg-a", "pg-b"],
        "ordered by id, the revoked one too"
    );
    assert_eq!(
        kaigo_hub::consent::decide_from(got.iter(), &question()),
        store.consents().decide(&question())
    );
    // The consents cannot be read (here: their table is gone): the read fails, so the caller
    // decides indeterminate; it never answers an empty list.
    let gone = Arc::new(PostgresStore::connect(&url).await.expect("connect"));
    let (admin, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await
        .unwrap();
    assert!(read(gone).await.is_err(), "a failed read is an error");
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_keys_older_than_the_bound_are_forgotten_in_batches_the_rest_kept() {
    let (name, url) = schema().await;
    let store = PostgresStore::connect(&url).await.expect("connect");
    let keys: Vec<String> = (0..5).map(|i| format!("old{i}/0/r")).collect();
    store.mark_delivered_all(&keys).unwrap();
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute("UPDATE delivered SET at = now() - interval '10 days' WHERE key LIKE 'old%'")
        .await
        .unwrap();
    store.mark_delivered("new/0/r").unwrap();
    let week = std::time::Duration::from_secs(7 * 86_400);
    assert_eq!(store.forget_delivered(week, 3).unwrap(), 3, "a full batch");
    assert_eq!(store.forget_delivered(week, 3).unwrap(), 2, "the rest");
    assert_eq!(store.forget_delivered(week, 3).unwrap(), 0, "none left");
    for k in &keys {
        assert!(!store.was_delivered(k).unwrap(), "{k} forgotten");
    }
    assert!(
        store.was_delivered("new/0/r").unwrap(),
        "a recent key is kept"
    );
    drop_schema(&name).await;
}

/// A TCP relay to the real server that can stop passing bytes on: a server that stopped
/// answering (a network partition, a paused container), not one that refuses.
struct Relay {
    port: u16,
    held: Arc<AtomicBool>,
}

async fn relay() -> Relay {
    use tokio::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = Arc::new(AtomicBool::new(false));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect("127.0.0.1:5432")
                .await
                .expect("PostgreSQL on 127.0.0.1:5432");
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, h.clone()));
            tokio::spawn(pump(sr, cw, h.clone()));
        }
    });
    Relay { port, held }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    held: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while held.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while held.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stops_answering_fails_calls_in_bounded_time_and_they_work_again_after() {
    let (name, _) = schema().await;
    let relay = relay().await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/test?options=-csearch_path%3D{name}",
        relay.port
    );
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.expect("connect"));
    kaigo_hub::store::mark_delivered_all(&store, vec!["h/0/r".into()])
        .await
        .unwrap();

    relay.held.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let blocking = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.was_delivered("h/0/r"))
    };
    let asynchronous = kaigo_hub::store::was_delivered(&store, "h/0/r");
    let connecting = PostgresStore::connect(&url);
    let (blocking, asynchronous, connecting) =
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            tokio::join!(blocking, asynchronous, connecting)
        })
        .await
        .expect("calls to a server that stopped answering must fail within 30 s, not wait for it");
    let waited = started.elapsed();
    for (what, outcome) in [
        ("blocking call", blocking.expect("task").map(|_| ())),
        ("async call", asynchronous.map(|_| ())),
        ("new connection", connecting.map(|_| ())),
    ] {
        let e = outcome.expect_err(what).to_string();
        assert!(e.contains("did not answer within 10 s"), "{what}: {e}");
    }
    assert!(
        waited < std::time::Duration::from_secs(30),
        "failed after {waited:?}"
    );

    relay.held.store(false, Ordering::SeqCst);
    // The late answers are told apart from the next ones: the same connection answers right.
    assert!(
        kaigo_hub::store::was_delivered(&store, "h/0/r")
            .await
            .unwrap()
    );
    assert!(
        !kaigo_hub::store::was_delivered(&store, "h/1/r")
            .await
            .unwrap()
    );
    let store2 = store.clone();
    assert!(
        tokio::task::spawn_blocking(move || store2.was_delivered("h/0/r"))
            .await
            .unwrap()
            .unwrap()
    );
    drop_schema(&name).await;
}

/// A blocking call that reconnects (a hop on the blocking pool) while an async call on a runtime
/// worker needs the connection too: the blocking one must not hold anything the worker then waits
/// on, since the connection it waits for is driven by that worker. One worker, so a worker stuck
/// on a lock stops the runtime outright; the test watches from outside the runtime.
#[test]
fn a_reconnecting_blocking_call_does_not_stall_async_callers_on_the_runtime() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // Spawned, so the calls run on the one worker (`block_on`'s own future would run on
        // this thread, leaving the worker free to drive the connection).
        let outcome = rt.block_on(rt.spawn(async {
            let (name, _) = schema().await;
            let relay = relay().await;
            let url = format!(
                "postgres://postgres@127.0.0.1:{}/test?options=-csearch_path%3D{name}&application_name={name}",
                relay.port
            );
            let store: Arc<dyn Store> =
                Arc::new(PostgresStore::connect(&url).await.expect("connect"));
            kaigo_hub::store::mark_delivered_all(&store, vec!["s/0/r".into()])
                .await
                .unwrap();
            // The store's connection is lost, and new ones stall (a server coming back slowly).
            let (admin, conn) = tokio_postgres::connect(BASE, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            relay.held.store(true, Ordering::SeqCst);
            let blocking = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.was_delivered("s/0/r"))
            };
            // Let the blocking call start connecting before the async one asks.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let asynchronous = kaigo_hub::store::was_delivered(&store, "s/0/r").await;
            let blocking = blocking.await.expect("task");
            relay.held.store(false, Ordering::SeqCst);
            let after = kaigo_hub::store::was_delivered(&store, "s/0/r").await;
            drop_schema(&name).await;
            (blocking.is_err(), asynchronous.is_err(), after)
        }));
        let _ = done.send(outcome);
    });
    let (blocking_failed, async_failed, after) = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect(
            "the runtime stalled: an async call waited on a lock a reconnecting blocking call held",
        )
        .expect("the test task panicked");
    assert!(
        blocking_failed,
        "the stalled reconnect fails within its bound"
    );
    assert!(async_failed, "so does the async call's own reconnect");
    assert!(
        after.expect("works once the server answers"),
        "s/0/r was recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_checkpoint_moves_only_from_the_row_its_writer_saw() {
    use kaigo_hub::store::{Advance, StoredCheckpoint};
    let (name, url) = schema().await;
    let a = PostgresStore::connect(&url).await.expect("connect a");
    let b = PostgresStore::connect(&url).await.expect("connect b");
    let (a, b) = (
        a.audit_checkpoints().expect("kept"),
        b.audit_checkpoints().expect("kept"),
    );
    let cp = |seq: u64, hash: &str| StoredCheckpoint {
        chain: "hub-0123456789ab".into(),
        seq,
        hash: hash.into(),
        file: "/var/lib/kaigo/audit.jsonl".into(),
        at: "2026-01-01T00:00:00Z".into(),
    };
    assert_eq!(a.checkpoint_of("hub-0123456789ab").unwrap(), None);
    assert_eq!(
        a.advance_checkpoint(&cp(5, "a"), None).unwrap(),
        Advance::Stored
    );
    // Another process that saw no row, or an older one, is told what the row holds.
    assert_eq!(
        b.advance_checkpoint(&cp(6, "x"), None).unwrap(),
        Advance::Moved(Some(cp(5, "a")))
    );
    assert_eq!(
        b.advance_checkpoint(&cp(6, "x"), Some((4, "z"))).unwrap(),
        Advance::Moved(Some(cp(5, "a")))
    );
    assert_eq!(
        a.advance_checkpoint(&cp(9, "b"), Some((5, "a"))).unwrap(),
        Advance::Stored
    );
    assert_eq!(
        b.checkpoint_of("hub-0123456789ab").unwrap(),
        Some(cp(9, "b"))
    );
    let mut other = cp(1, "c");
    other.chain = "cli-0123456789ab".into();
    assert_eq!(b.advance_checkpoint(&other, None).unwrap(), Advance::Stored);
    assert_eq!(a.every_checkpoint().unwrap(), vec![other, cp(9, "b")]);
    drop_schema(&name).await;
}
