//! The PostgreSQL store (tokio-postgres) for several hub processes sharing consents, the subject
//! cross-reference and delivery keys: same tables and the same grant/revoke rules as the SQLite
//! store. The `Store` interface is blocking (hops call it from `spawn_blocking`); this file drives
//! its async client from there, except for the per-message calls (the deliver hop's delivery keys,
//! the subject lookup, the consent read behind a decision), which await the client directly
//! (`Store::was_delivered_async`, `Store::mark_delivered_all_async`, `Store::resolve_async`,
//! `Store::consents_of_async`). A lost connection makes decisions `Indeterminate` (retried by the
//! hops) and is re-established on the next call. Never a permit on doubt. The audit chains'
//! checkpoints have a table of their own (`audit_checkpoints`, at the foot of this file).

use super::archive::{self, ArchiveStore, Document, Original, Query, Sealed};
use super::processes::{ListedProcess, ProcessRecord, ProcessRegistry};
use super::{
    Advance, AuditCheckpoints, Existing, Store, StoreError, StoreFuture, StoredCheckpoint,
    apply_change, seq_to_i64,
};
use crate::consent::{
    Consent, ConsentError, ConsentRegistry, Decision, IndeterminateReason, Question, Subject,
    decide_from,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    url: String,
    client: Mutex<Option<Arc<Conn>>>,
    rt: tokio::runtime::Handle,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A PostgreSQL error with its cause ("db error" alone says nothing).
fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
        None => StoreError(match std::error::Error::source(&e) {
            Some(src) => format!("PostgreSQL: {e}: {src}"),
            None => format!("PostgreSQL: {e}"),
        }),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, insurer TEXT NOT NULL, insured TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS consents_subject ON consents(insurer, insured);
CREATE TABLE IF NOT EXISTS consent_changes (n BIGINT NOT NULL);
INSERT INTO consent_changes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM consent_changes);
CREATE TABLE IF NOT EXISTS xref (
    party TEXT NOT NULL, local_id TEXT NOT NULL, insurer TEXT NOT NULL, insured TEXT NOT NULL,
    PRIMARY KEY (party, local_id));
CREATE TABLE IF NOT EXISTS delivered (key TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now());";

const CONSENTS_OF: &str =
    "SELECT body FROM consents WHERE insurer = $1 AND insured = $2 ORDER BY id";
// Every linked id at once; the caller picks the first in its own order.
const RESOLVE: &str =
    "SELECT local_id, insurer, insured FROM xref WHERE party = $1 AND local_id = ANY($2)";
const FORGET_DELIVERED: &str = "DELETE FROM delivered WHERE key IN (SELECT key FROM delivered \
     WHERE at < now() - $1::bigint * interval '1 second' LIMIT $2)";
const WAS_DELIVERED: &str = "SELECT 1 FROM delivered WHERE key = $1";
// One statement: one round trip and one commit for the whole group.
const MARK_DELIVERED_ALL: &str =
    "INSERT INTO delivered(key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING";

/// How long connecting, or one statement, may take before the call fails (and its caller
/// retries, as for a refused connection): a server that stopped answering (a network partition, a
/// paused container) is reported in the hops' warnings instead of holding them silently.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn no_answer(what: &str) -> StoreError {
    StoreError(format!(
        "PostgreSQL did not answer within {} s ({what})",
        ANSWER_WITHIN.as_secs()
    ))
}

/// `call`, failing when the server does not answer within [`ANSWER_WITHIN`].
async fn within<T>(
    call: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(ANSWER_WITHIN, call).await {
        Ok(answer) => answer.map_err(pg),
        Err(_) => Err(no_answer("a statement")),
    }
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, conn) = tokio::time::timeout(ANSWER_WITHIN, tokio_postgres::connect(url, NoTls))
        .await
        .map_err(|_| no_answer("connecting"))?
        .map_err(pg)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A connection and the statements prepared on it. A query given as text is prepared by the
/// server on every call (its own round trip: parse and plan, then bind and execute); each
/// statement here is prepared once per connection, on first use, so a call is one round trip.
struct Conn {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: Mutex::default(),
        }
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn statement(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        let known = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sql)
            .cloned();
        if let Some(st) = known {
            return Ok(st);
        }
        let st = self.client.prepare(sql).await?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql, st.clone());
        Ok(st)
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let st = self.statement(sql).await?;
        self.client.query(&st, params).await
    }

    async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let st = self.statement(sql).await?;
        self.client.query_opt(&st, params).await
    }

    async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let st = self.statement(sql).await?;
        self.client.query_one(&st, params).await
    }

    async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let st = self.statement(sql).await?;
        self.client.execute(&st, params).await
    }
}

impl PostgresStore {
    /// Connects to `url` (e.g. `postgres://postgres@127.0.0.1/test`) and creates the tables. Must
    /// be called inside a tokio runtime, which later drives the client.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let client = connect(url).await?;
        // A schema named by `options=-csearch_path=NAME` (one per deployment or test) is created.
        if let Some(schema) = search_path(url) {
            within(client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).await?;
        }
        Self::ready(url, client).await
    }

    /// Connects to `url` only if the hub's tables exist there (in the schema the URL's
    /// `search_path` names, or the default one): what every command but `serve` does. Nothing is
    /// created when they do not.
    pub async fn connect_existing(url: &str) -> Result<PostgresStore, Existing> {
        let client = connect(url).await.map_err(Existing::Unavailable)?;
        let row = within(client.query_one("SELECT to_regclass('consents') IS NOT NULL", &[]))
            .await
            .map_err(Existing::Unavailable)?;
        if !row.get::<_, bool>(0) {
            return Err(Existing::Missing(match search_path(url) {
                Some(schema) => format!(
                    "schema `{schema}` has no kaigo-hub tables (`kaigo-hub serve` creates them \
                     when it first starts)"
                ),
                None => "the database has no kaigo-hub tables in its search_path (`kaigo-hub \
                         serve` creates them when it first starts)"
                    .into(),
            }));
        }
        Self::ready(url, client)
            .await
            .map_err(Existing::Unavailable)
    }

    /// Creates the tables that are missing (a newer version's), and the store on `client`.
    async fn ready(url: &str, client: Client) -> Result<PostgresStore, StoreError> {
        within(client.batch_execute(SCHEMA)).await?;
        within(client.batch_execute(PROCESS_TABLES)).await?;
        within(client.batch_execute(AUDIT_CHECKPOINTS)).await?;
        within(client.batch_execute(ARCHIVE_TABLES)).await?;
        Ok(PostgresStore {
            url: url.to_string(),
            client: Mutex::new(Some(Arc::new(Conn::new(client)))),
            rt: tokio::runtime::Handle::current(),
        })
    }

    /// Runs `f` with a live client, reconnecting first if the connection was lost.
    fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let client = match self.current()? {
            Some(c) => c,
            None => self.install(Arc::new(Conn::new(self.block(connect(&self.url))?)))?,
        };
        self.block(within(f(client)))
    }

    /// A live connection, for async callers: the current one, or a new one when it was lost.
    async fn live(&self) -> Result<Arc<Conn>, StoreError> {
        match self.current()? {
            Some(c) => Ok(c),
            None => self.install(Arc::new(Conn::new(connect(&self.url).await?))),
        }
    }

    /// The connection in use, unless it was lost. The lock is held only to copy the slot, never
    /// while connecting: async callers take it on runtime workers, and a worker blocked on it
    /// while a blocking-pool thread connected under it would stop the very I/O driver that
    /// connection waits on (seen as a hang of every hop during a database outage).
    fn current(&self) -> Result<Option<Arc<Conn>>, StoreError> {
        Ok(self
            .client
            .lock()
            .map_err(|_| err("store lock poisoned"))?
            .clone()
            .filter(|c| !c.is_closed()))
    }

    /// Puts a new connection in the slot, unless another caller reconnected meanwhile: theirs
    /// stays and `fresh` is dropped.
    fn install(&self, fresh: Arc<Conn>) -> Result<Arc<Conn>, StoreError> {
        let mut slot = self.client.lock().map_err(|_| err("store lock poisoned"))?;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drives a future from blocking code: from a `spawn_blocking` thread (the hops) or, on a
    /// multi-thread runtime worker, by stepping aside with `block_in_place`.
    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(fut))
            }
            _ => self.rt.block_on(fut),
        }
    }

    fn rows(
        &self,
        sql: &'static str,
        a: Option<(String, String)>,
    ) -> Result<Vec<Consent>, StoreError> {
        let bodies: Vec<String> = self.with(|c| {
            let a = a.clone();
            async move {
                let rows = match &a {
                    Some((x, y)) => c.query(sql, &[x, y]).await?,
                    None => c.query(sql, &[]).await?,
                };
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            }
        })?;
        super::consents_from(bodies.iter().map(String::as_str))
    }

    fn put(&self, consent: &Consent) -> Result<(), StoreError> {
        let body = serde_json::to_string(consent).map_err(err)?;
        let (id, a, b) = (
            consent.id.as_str().to_string(),
            consent.subject.insurer_number.as_str().to_string(),
            consent.subject.insured_number.as_str().to_string(),
        );
        self.with(|c| {
            let (id, a, b, body) = (id.clone(), a.clone(), b.clone(), body.clone());
            async move {
                c.execute(
                    "INSERT INTO consents(id, insurer, insured, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                    &[&id, &a, &b, &body],
                )
                .await?;
                c.execute("UPDATE consent_changes SET n = n + 1", &[])
                    .await?;
                Ok(())
            }
        })
    }
}

impl ConsentRegistry for PostgresStore {
    fn decide(&self, q: &Question) -> Decision {
        let key = (
            q.subject.insurer_number.as_str().to_string(),
            q.subject.insured_number.as_str().to_string(),
        );
        match self.rows(
            "SELECT body FROM consents WHERE insurer = $1 AND insured = $2",
            Some(key),
        ) {
            Ok(consents) => decide_from(consents.iter(), q),
            Err(e) => Decision::Indeterminate {
                reason: IndeterminateReason::RegistryUnavailable { detail: e.0 },
            },
        }
    }

    fn grant(&self, consent: Consent) -> Result<(), ConsentError> {
        let id = consent.id.as_str().to_string();
        apply_change(
            || self.rows_by_id(&id),
            |c| self.put(c),
            |m| m.grant(consent),
        )
    }

    fn revoke(&self, id: &str, at: &str) -> Result<(), ConsentError> {
        apply_change(
            || self.rows_by_id(id),
            |c| self.put(c),
            |m| m.revoke(id, at),
        )
    }

    fn list(&self, subject: Option<&Subject>) -> Vec<Consent> {
        match subject {
            Some(s) => self.rows(
                "SELECT body FROM consents WHERE insurer = $1 AND insured = $2 ORDER BY id",
                Some((
                    s.insurer_number.as_str().to_string(),
                    s.insured_number.as_str().to_string(),
                )),
            ),
            None => self.rows("SELECT body FROM consents ORDER BY id", None),
        }
        .unwrap_or_default()
    }

    fn consents_of(&self, s: &Subject) -> Result<Vec<Consent>, ConsentError> {
        self.rows(
            CONSENTS_OF,
            Some((
                s.insurer_number.as_str().to_string(),
                s.insured_number.as_str().to_string(),
            )),
        )
        .map_err(|e| ConsentError::Unavailable { detail: e.0 })
    }

    fn change_counter(&self) -> Result<u64, ConsentError> {
        self.with(|c| async move {
            let row = c.query_one("SELECT n FROM consent_changes", &[]).await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .map_err(|e| ConsentError::Unavailable { detail: e.0 })
    }
}

impl PostgresStore {
    fn rows_by_id(&self, id: &str) -> Result<Vec<Consent>, StoreError> {
        let id = id.to_string();
        let bodies: Vec<String> = self.with(|c| {
            let id = id.clone();
            async move {
                let rows = c
                    .query("SELECT body FROM consents WHERE id = $1", &[&id])
                    .await?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            }
        })?;
        super::consents_from(bodies.iter().map(String::as_str))
    }
}

impl Store for PostgresStore {
    fn consents(&self) -> &dyn ConsentRegistry {
        self
    }

    fn link(&self, party: &str, local_id: &str, subject: &Subject) -> Result<(), StoreError> {
        let v = [
            party.to_string(),
            local_id.to_string(),
            subject.insurer_number.as_str().to_string(),
            subject.insured_number.as_str().to_string(),
        ];
        self.with(|c| {
            let v = v.clone();
            async move {
                c.execute(
                    "INSERT INTO xref(party, local_id, insurer, insured) VALUES ($1, $2, $3, $4)
                     ON CONFLICT(party, local_id) DO UPDATE SET insurer = excluded.insurer, insured = excluded.insured",
                    &[&v[0], &v[1], &v[2], &v[3]],
                )
                .await
                .map(|_| ())
            }
        })
    }

    fn resolve(&self, party: &str, local_id: &str) -> Result<Option<Subject>, StoreError> {
        let (p, l) = (party.to_string(), local_id.to_string());
        let row: Option<(String, String)> = self.with(|c| {
            let (p, l) = (p.clone(), l.clone());
            async move {
                let r = c
                    .query_opt(
                        "SELECT insurer, insured FROM xref WHERE party = $1 AND local_id = $2",
                        &[&p, &l],
                    )
                    .await?;
                Ok(r.map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))))
            }
        })?;
        match row {
            None => Ok(None),
            Some((a, b)) => Subject::new(&a, &b).map(Some).map_err(err),
        }
    }

    fn was_delivered(&self, key: &str) -> Result<bool, StoreError> {
        let k = key.to_string();
        self.with(|c| {
            let k = k.clone();
            async move { Ok(c.query_opt(WAS_DELIVERED, &[&k]).await?.is_some()) }
        })
    }

    fn mark_delivered_all(&self, keys: &[String]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.with(|c| {
            let keys = keys.clone();
            async move { c.execute(MARK_DELIVERED_ALL, &[&keys]).await.map(|_| ()) }
        })
    }

    fn consents_of_async<'a>(
        &'a self,
        subject: &'a Subject,
    ) -> Option<StoreFuture<'a, Vec<Consent>>> {
        Some(Box::pin(async move {
            let c = self.live().await?;
            let (insurer, insured) = (
                subject.insurer_number.as_str(),
                subject.insured_number.as_str(),
            );
            let rows = within(c.query(CONSENTS_OF, &[&insurer, &insured])).await?;
            super::consents_from(rows.iter().map(|r| r.get::<_, &str>(0)))
        }))
    }

    fn resolve_async<'a>(
        &'a self,
        party: &'a str,
        local_ids: &'a [String],
    ) -> Option<StoreFuture<'a, Option<Subject>>> {
        Some(Box::pin(async move {
            let c = self.live().await?;
            let rows = within(c.query(RESOLVE, &[&party, &local_ids])).await?;
            let linked = |id: &String| {
                rows.iter()
                    .find(|r| r.get::<_, &str>(0) == id.as_str())
                    .map(|r| (r.get::<_, String>(1), r.get::<_, String>(2)))
            };
            match local_ids.iter().find_map(linked) {
                None => Ok(None),
                Some((a, b)) => Subject::new(&a, &b).map(Some).map_err(err),
            }
        }))
    }

    fn was_delivered_async<'a>(&'a self, key: &'a str) -> Option<StoreFuture<'a, bool>> {
        Some(Box::pin(async move {
            let c = self.live().await?;
            within(c.query_opt(WAS_DELIVERED, &[&key]))
                .await
                .map(|row| row.is_some())
        }))
    }

    fn mark_delivered_all_async<'a>(&'a self, keys: &'a [String]) -> Option<StoreFuture<'a, ()>> {
        Some(Box::pin(async move {
            let c = self.live().await?;
            within(c.execute(MARK_DELIVERED_ALL, &[&keys]))
                .await
                .map(|_| ())
        }))
    }

    fn forget_delivered(
        &self,
        older_than: std::time::Duration,
        at_most: usize,
    ) -> Result<usize, StoreError> {
        let (secs, limit) = (older_than.as_secs() as i64, at_most as i64);
        self.with(|c| async move {
            c.execute(FORGET_DELIVERED, &[&secs, &limit])
                .await
                .map(|n| n as usize)
        })
    }

    fn mark_delivered(&self, key: &str) -> Result<(), StoreError> {
        let k = key.to_string();
        self.with(|c| {
            let k = k.clone();
            async move {
                c.execute(
                    "INSERT INTO delivered(key) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&k],
                )
                .await
                .map(|_| ())
            }
        })
    }

    fn processes(&self) -> &dyn ProcessRegistry {
        self
    }

    fn archive(&self) -> Option<&dyn ArchiveStore> {
        Some(self)
    }

    fn audit_checkpoints(&self) -> Option<&dyn AuditCheckpoints> {
        Some(self)
    }
}

// --- The registry of running hub processes ------------------------------------------------------

/// The registry's tables. Heartbeats and applied-change times are the server's `now()`, so the
/// clocks of the hub hosts do not matter.
const PROCESS_TABLES: &str = "
CREATE TABLE IF NOT EXISTS hub_processes (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL, started_at TEXT NOT NULL,
    bus TEXT NOT NULL, bus_url TEXT, prefix TEXT NOT NULL, consent_cache_secs BIGINT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS consent_applied (
    change TEXT NOT NULL, process TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (change, process));";

impl ProcessRegistry for PostgresStore {
    fn register(&self, p: &ProcessRecord) -> Result<(), StoreError> {
        let p = p.clone();
        self.with(|c| async move {
            c.execute(
                "INSERT INTO hub_processes(id, host, pid, started_at, bus, bus_url, prefix, \
                 consent_cache_secs, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) \
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 started_at = excluded.started_at, bus = excluded.bus, bus_url = excluded.bus_url, \
                 prefix = excluded.prefix, consent_cache_secs = excluded.consent_cache_secs, \
                 heartbeat_at = now()",
                &[
                    &p.id,
                    &p.host,
                    &i64::from(p.pid),
                    &p.started_at,
                    &p.bus,
                    &p.bus_url,
                    &p.prefix,
                    &(p.consent_cache_secs.min(i64::MAX as u64) as i64),
                ],
            )
            .await
            .map(|_| ())
        })
    }

    fn heartbeat(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(|c| async move {
            c.execute(
                "UPDATE hub_processes SET heartbeat_at = now() WHERE id = $1",
                &[&id],
            )
            .await
            .map(|n| n > 0)
        })
    }

    fn deregister(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(|c| async move {
            c.execute("DELETE FROM consent_applied WHERE process = $1", &[&id])
                .await?;
            c.execute("DELETE FROM hub_processes WHERE id = $1", &[&id])
                .await
                .map(|_| ())
        })
    }

    fn registered(&self) -> Result<Vec<ListedProcess>, StoreError> {
        let rows = self.with(|c| async move {
            c.query(
                "SELECT id, host, pid, started_at, bus, bus_url, prefix, consent_cache_secs, \
                 (EXTRACT(EPOCH FROM (now() - heartbeat_at)) * 1000)::BIGINT \
                 FROM hub_processes ORDER BY started_at, id",
                &[],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| ListedProcess {
                record: ProcessRecord {
                    id: r.get(0),
                    host: r.get(1),
                    pid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    started_at: r.get(3),
                    bus: r.get(4),
                    bus_url: r.get(5),
                    prefix: r.get(6),
                    consent_cache_secs: r.get::<_, i64>(7).max(0) as u64,
                },
                heartbeat_age: Duration::from_millis(r.get::<_, i64>(8).max(0) as u64),
            })
            .collect())
    }

    fn record_applied(&self, process: &str, change: &str) -> Result<(), StoreError> {
        let (process, change) = (process.to_string(), change.to_string());
        self.with(|c| async move {
            c.execute(
                "INSERT INTO consent_applied(change, process) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&change, &process],
            )
            .await
            .map(|_| ())
        })
    }

    fn applied_by(&self, change: &str) -> Result<Vec<String>, StoreError> {
        let change = change.to_string();
        self.with(|c| async move {
            let rows = c
                .query(
                    "SELECT process FROM consent_applied WHERE change = $1",
                    &[&change],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn forget_changes(&self, changes: &[String]) -> Result<(), StoreError> {
        let changes = changes.to_vec();
        self.with(|c| async move {
            c.execute(
                "DELETE FROM consent_applied WHERE change = ANY($1)",
                &[&changes],
            )
            .await
            .map(|_| ())
        })
    }

    fn prune(&self, older_than: Duration) -> Result<usize, StoreError> {
        let secs = older_than.as_secs_f64();
        self.with(|c| async move {
            c.execute(
                "DELETE FROM consent_applied WHERE at < now() - $1::float8 * interval '1 second'",
                &[&secs],
            )
            .await?;
            c.execute(
                "DELETE FROM hub_processes WHERE heartbeat_at < now() - $1::float8 * interval '1 second'",
                &[&secs],
            )
            .await
            .map(|n| n as usize)
        })
    }
}

// ----- audit checkpoints -----

const AUDIT_CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, file TEXT NOT NULL,
    at TEXT NOT NULL);";
const CHECKPOINT_OF: &str =
    "SELECT chain, seq, hash, file, at FROM audit_checkpoints WHERE chain = $1";
const EVERY_CHECKPOINT: &str =
    "SELECT chain, seq, hash, file, at FROM audit_checkpoints ORDER BY chain";
const FIRST_CHECKPOINT: &str = "INSERT INTO audit_checkpoints(chain, seq, hash, file, at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chain) DO NOTHING";
const NEXT_CHECKPOINT: &str = "UPDATE audit_checkpoints SET seq = $2, hash = $3, file = $4, \
     at = $5 WHERE chain = $1 AND seq = $6 AND hash = $7";

fn checkpoint_row(r: &Row) -> StoredCheckpoint {
    StoredCheckpoint {
        chain: r.get(0),
        seq: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
        hash: r.get(2),
        file: r.get(3),
        at: r.get(4),
    }
}

impl AuditCheckpoints for PostgresStore {
    fn checkpoint_of(&self, chain: &str) -> Result<Option<StoredCheckpoint>, StoreError> {
        let chain = chain.to_string();
        self.with(|c| async move {
            Ok(c.query_opt(CHECKPOINT_OF, &[&chain])
                .await?
                .as_ref()
                .map(checkpoint_row))
        })
    }

    fn every_checkpoint(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.with(|c| async move {
            Ok(c.query(EVERY_CHECKPOINT, &[])
                .await?
                .iter()
                .map(checkpoint_row)
                .collect())
        })
    }

    fn advance_checkpoint(
        &self,
        new: &StoredCheckpoint,
        expected: Option<(u64, &str)>,
    ) -> Result<Advance, StoreError> {
        let seq = seq_to_i64(new.seq)?;
        let was = match expected {
            Some((s, h)) => Some((seq_to_i64(s)?, h.to_string())),
            None => None,
        };
        let changed = self.with(|c| {
            let (new, was) = (new.clone(), was.clone());
            async move {
                match &was {
                    None => {
                        c.execute(
                            FIRST_CHECKPOINT,
                            &[&new.chain, &seq, &new.hash, &new.file, &new.at],
                        )
                        .await
                    }
                    Some((was_seq, was_hash)) => {
                        c.execute(
                            NEXT_CHECKPOINT,
                            &[
                                &new.chain, &seq, &new.hash, &new.file, &new.at, was_seq, was_hash,
                            ],
                        )
                        .await
                    }
                }
            }
        })?;
        if changed == 1 {
            Ok(Advance::Stored)
        } else {
            Ok(Advance::Moved(self.checkpoint_of(&new.chain)?))
        }
    }
}

/// The schema a URL selects with `options=-csearch_path=NAME` (`%3D` for `=`), if it is a plain
/// identifier.
fn search_path(url: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    let opt = q.split('&').find_map(|kv| kv.strip_prefix("options="))?;
    let opt = opt.replace("%3D", "=").replace("%3d", "=");
    let name = opt
        .strip_prefix("-csearch_path=")?
        .split([',', ' ', '%'])
        .next()?
        .to_string();
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

// ---------------------------------------------------------------------------------------------
// The message archive (`archive.rs`): metadata in clear, bodies sealed. Each write is one
// statement per table (`unnest` of arrays): atomic without a transaction on the shared client.
// ---------------------------------------------------------------------------------------------

const ARCHIVE_TABLES: &str = "CREATE TABLE IF NOT EXISTS archive_originals (
    envelope TEXT PRIMARY KEY, at TEXT NOT NULL, sender TEXT NOT NULL, format TEXT NOT NULL,
    mapping TEXT NOT NULL, outcome TEXT NOT NULL, kinds TEXT NOT NULL, subjects TEXT NOT NULL,
    key_id TEXT NOT NULL, body BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS archive_originals_at ON archive_originals(at);
CREATE INDEX IF NOT EXISTS archive_originals_sender ON archive_originals(sender, at);
CREATE TABLE IF NOT EXISTS archive_documents (
    envelope TEXT NOT NULL, idx INTEGER NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT, mapping TEXT NOT NULL, key_id TEXT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (envelope, idx));
CREATE INDEX IF NOT EXISTS archive_documents_subject ON archive_documents(subject);
CREATE INDEX IF NOT EXISTS archive_documents_at ON archive_documents(at);";

const ARCHIVE_PUT_ORIGINALS: &str = "INSERT INTO archive_originals(envelope, at, sender, format,
    mapping, outcome, kinds, subjects, key_id, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::bytea[])
    ON CONFLICT (envelope) DO UPDATE SET at = excluded.at, sender = excluded.sender,
        format = excluded.format, mapping = excluded.mapping, outcome = excluded.outcome,
        kinds = excluded.kinds, subjects = excluded.subjects, key_id = excluded.key_id,
        body = excluded.body";

const ARCHIVE_PUT_DOCUMENTS: &str = "INSERT INTO archive_documents(envelope, idx, at, kind,
    subject, mapping, key_id, body)
    SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::bytea[])
    ON CONFLICT (envelope, idx) DO UPDATE SET at = excluded.at, kind = excluded.kind,
        subject = excluded.subject, mapping = excluded.mapping, key_id = excluded.key_id,
        body = excluded.body";

const ARCHIVED_ORIGINAL: &str = "SELECT envelope, at, sender, format, mapping, outcome, kinds,
    subjects, key_id, body FROM archive_originals WHERE envelope = $1";

const ARCHIVED_DOCUMENTS: &str = "SELECT envelope, idx, at, kind, subject, mapping, key_id, body
    FROM archive_documents WHERE envelope = $1 ORDER BY idx";

const ARCHIVE_SEARCH: &str =
    "SELECT envelope, at, sender, format, mapping, outcome, kinds, subjects
    FROM archive_originals o
    WHERE ($1::text IS NULL OR o.envelope = $1)
      AND ($2::text IS NULL OR o.sender = $2)
      AND ($3::text IS NULL OR o.kinds LIKE $3 OR EXISTS (SELECT 1 FROM archive_documents d
           WHERE d.envelope = o.envelope AND (',' || d.kind || ',') LIKE $3))
      AND ($4::text IS NULL OR o.subjects LIKE '%,' || $4 || ',%' OR EXISTS (SELECT 1
           FROM archive_documents d WHERE d.envelope = o.envelope AND d.subject = $4))
      AND ($5::text IS NULL OR o.at >= $5)
      AND ($6::text IS NULL OR o.at < $6)
      AND ($7::text[] IS NULL OR o.envelope = ANY($7))
    ORDER BY o.at DESC, o.envelope DESC LIMIT $8";

const ARCHIVE_PRUNE_ORIGINALS: &str = "DELETE FROM archive_originals WHERE envelope IN
    (SELECT envelope FROM archive_originals WHERE at < $1 LIMIT $2)";

const ARCHIVE_PRUNE_DOCUMENTS: &str = "DELETE FROM archive_documents WHERE (envelope, idx) IN
    (SELECT envelope, idx FROM archive_documents WHERE at < $1 LIMIT $2)";

fn archived_row(r: &Row) -> Original {
    Original {
        envelope: r.get(0),
        at: r.get(1),
        sender: r.get(2),
        format: r.get(3),
        mapping: r.get(4),
        outcome: r.get(5),
        kinds: archive::split(r.get(6)),
        subjects: archive::split(r.get(7)),
    }
}

impl ArchiveStore for PostgresStore {
    fn archive_put(&self, rows: &[archive::Row]) -> Result<(), StoreError> {
        type Originals = (
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<Vec<u8>>,
        );
        let mut o: Originals = Default::default();
        type Documents = (
            Vec<String>,
            Vec<i32>,
            Vec<String>,
            Vec<String>,
            Vec<Option<String>>,
            Vec<String>,
            Vec<String>,
            Vec<Vec<u8>>,
        );
        let mut d: Documents = Default::default();
        for row in rows {
            match row {
                archive::Row::Original(m, s) => {
                    o.0.push(m.envelope.clone());
                    o.1.push(m.at.clone());
                    o.2.push(m.sender.clone());
                    o.3.push(m.format.clone());
                    o.4.push(m.mapping.clone());
                    o.5.push(m.outcome.clone());
                    o.6.push(archive::joined(&m.kinds));
                    o.7.push(archive::joined(&m.subjects));
                    o.8.push(s.key_id.clone());
                    o.9.push(s.bytes.clone());
                }
                archive::Row::Document(m, s) => {
                    d.0.push(m.envelope.clone());
                    d.1.push(i32::try_from(m.index).map_err(err)?);
                    d.2.push(m.at.clone());
                    d.3.push(m.kind.clone());
                    d.4.push(m.subject.clone());
                    d.5.push(m.mapping.clone());
                    d.6.push(s.key_id.clone());
                    d.7.push(s.bytes.clone());
                }
            }
        }
        self.with(|c| async move {
            if !o.0.is_empty() {
                c.execute(
                    ARCHIVE_PUT_ORIGINALS,
                    &[&o.0, &o.1, &o.2, &o.3, &o.4, &o.5, &o.6, &o.7, &o.8, &o.9],
                )
                .await?;
            }
            if !d.0.is_empty() {
                c.execute(
                    ARCHIVE_PUT_DOCUMENTS,
                    &[&d.0, &d.1, &d.2, &d.3, &d.4, &d.5, &d.6, &d.7],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn archived_original(&self, envelope: &str) -> Result<Option<(Original, Sealed)>, StoreError> {
        let envelope = envelope.to_string();
        self.with(|c| async move {
            Ok(c.query_opt(ARCHIVED_ORIGINAL, &[&envelope])
                .await?
                .map(|r| {
                    (
                        archived_row(&r),
                        Sealed {
                            key_id: r.get(8),
                            bytes: r.get(9),
                        },
                    )
                }))
        })
    }

    fn archived_documents(&self, envelope: &str) -> Result<Vec<(Document, Sealed)>, StoreError> {
        let envelope = envelope.to_string();
        let rows = self.with(|c| async move { c.query(ARCHIVED_DOCUMENTS, &[&envelope]).await })?;
        rows.iter()
            .map(|r| {
                Ok((
                    Document {
                        envelope: r.get(0),
                        index: u32::try_from(r.get::<_, i32>(1)).map_err(err)?,
                        at: r.get(2),
                        kind: r.get(3),
                        subject: r.get(4),
                        mapping: r.get(5),
                    },
                    Sealed {
                        key_id: r.get(6),
                        bytes: r.get(7),
                    },
                ))
            })
            .collect()
    }

    fn archive_search(&self, q: &Query) -> Result<Vec<Original>, StoreError> {
        let kind = q.kind.as_deref().map(Query::kind_pattern);
        let limit = i64::try_from(q.limit()).unwrap_or(i64::MAX);
        let q = q.clone();
        let rows = self.with(|c| async move {
            c.query(
                ARCHIVE_SEARCH,
                &[
                    &q.envelope,
                    &q.sender,
                    &kind,
                    &q.subject,
                    &q.since,
                    &q.until,
                    &q.among,
                    &limit,
                ],
            )
            .await
        })?;
        Ok(rows.iter().map(archived_row).collect())
    }

    fn archive_prune(&self, before: &str, at_most: usize) -> Result<usize, StoreError> {
        let before = before.to_string();
        let n = i64::try_from(at_most).unwrap_or(i64::MAX);
        let gone = self.with(|c| async move {
            let a = c.execute(ARCHIVE_PRUNE_ORIGINALS, &[&before, &n]).await?;
            let b = c.execute(ARCHIVE_PRUNE_DOCUMENTS, &[&before, &n]).await?;
            Ok(a + b)
        })?;
        Ok(usize::try_from(gone).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::{Conn, connect, search_path};

    #[tokio::test]
    async fn a_statement_is_prepared_once_per_connection() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        let client = connect(url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e}"));
        let conn = Conn::new(client);
        let one = conn.statement("SELECT 1").await.expect("prepare");
        let again = conn.statement("SELECT 1").await.expect("prepared");
        let other = conn.statement("SELECT 2").await.expect("prepare");
        let row = conn.query_one("SELECT 1", &[]).await.expect("query");
        assert_eq!(row.get::<_, i32>(0), 1);
        // The server's own list of this session's prepared statements, all three handles alive:
        // preparing on every use would show three.
        let on_server = conn
            .client
            .query(
                "SELECT statement FROM pg_prepared_statements WHERE statement IN ('SELECT 1', 'SELECT 2')",
                &[],
            )
            .await
            .expect("pg_prepared_statements");
        assert_eq!(on_server.len(), 2, "{on_server:?}");
        drop((one, again, other));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_process_registry_holds_its_contract() {
        let base = "postgres://postgres@127.0.0.1:5432/test";
        let schema = format!(
            "kaigo_test_registry_{}",
            crate::pipeline::clock::envelope_id().to_ascii_lowercase()
        );
        let admin = connect(base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test: {e}"));
        let url = format!("{base}?options=-csearch_path%3D{schema}");
        let store = super::PostgresStore::connect(&url).await.expect("store");
        let handle = tokio::runtime::Handle::current();
        let age = |id: &str, by: std::time::Duration| {
            let secs = by.as_secs_f64();
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    for table in [
                        "hub_processes SET heartbeat_at = heartbeat_at",
                        "consent_applied SET at = at",
                    ] {
                        let column = if table.starts_with("hub") {
                            "id"
                        } else {
                            "process"
                        };
                        admin
                            .execute(
                                &format!(
                                    "UPDATE {schema}.{table} - $1::float8 * interval '1 second' \
                                     WHERE {column} = $2"
                                ),
                                &[&secs, &id],
                            )
                            .await
                            .expect("age a row");
                    }
                })
            })
        };
        super::super::processes::contract::holds(&store, &age);
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop the schema");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_archive_holds_its_contract() {
        let base = "postgres://postgres@127.0.0.1:5432/test";
        let schema = format!(
            "kaigo_test_archive_{}",
            crate::pipeline::clock::envelope_id().to_ascii_lowercase()
        );
        let admin = connect(base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test: {e}"));
        let url = format!("{base}?options=-csearch_path%3D{schema}");
        let store = super::PostgresStore::connect(&url).await.expect("store");
        tokio::task::block_in_place(|| super::super::archive::check_contract(&store, "pg"));
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop the schema");
    }

    #[test]
    fn search_path_is_read_from_the_url_options() {
        assert_eq!(
            search_path("postgres://u@h/db?options=-csearch_path%3Dkaigo_a&application_name=x")
                .as_deref(),
            Some("kaigo_a")
        );
        assert_eq!(search_path("postgres://u@h/db"), None);
        assert_eq!(
            search_path("postgres://u@h/db?options=-csearch_path%3Dx;drop"),
            None
        );
    }
}
