//! The SQLite store (rusqlite, bundled SQLite): consents as JSON rows indexed by subject, the
//! subject cross-reference and delivered keys. Grant/revoke rules are the registry's own
//! (`consent::InMemoryRegistry` decides what a change means; this file persists the result), so
//! the embedded store and the in-memory model cannot disagree. A database error is never a
//! permit: `decide` answers `Indeterminate` and the hop retries. The audit chains' checkpoints
//! have a table of their own (`audit_checkpoints`, at the foot of this file).

use super::archive::{self, ArchiveStore, Document, Original, Query, Row, Sealed};
use super::processes::{ListedProcess, ProcessRecord, ProcessRegistry};
use super::{
    Advance, AuditCheckpoints, Existing, Store, StoreError, StoredCheckpoint, apply_change,
    seq_to_i64,
};
use crate::consent::{
    Consent, ConsentError, ConsentRegistry, Decision, IndeterminateReason, Question, Subject,
    decide_from,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// Opens the database at `path` only if it exists and is a kaigo-hub store (what every
    /// command but `serve` does): nothing is created.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, Existing> {
        if !path.exists() {
            return Err(Existing::Missing(
                "the file does not exist (`kaigo-hub serve` creates it when it first starts)"
                    .into(),
            ));
        }
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Existing::Unavailable(err(format!("{}: {e}", path.display()))))?;
        let ours: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'consents'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| Existing::Unavailable(err(format!("{}: {e}", path.display()))))?;
        if ours.is_none() {
            return Err(Existing::Missing(
                "the file is there but is not a kaigo-hub store (it has no consents table)".into(),
            ));
        }
        Self::init(conn).map_err(Existing::Unavailable)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(err)?)
    }

    fn init(conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             -- WAL + NORMAL: a commit survives a crash of the process (SIGKILL); only a power cut
             -- can lose the last commits, which for delivery keys means a repeat, never a loss.
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS consents (
                 id TEXT PRIMARY KEY, insurer TEXT NOT NULL, insured TEXT NOT NULL, body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS consents_subject ON consents(insurer, insured);
             CREATE TABLE IF NOT EXISTS changes (n INTEGER NOT NULL);
             INSERT INTO changes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM changes);
             CREATE TABLE IF NOT EXISTS xref (
                 party TEXT NOT NULL, local_id TEXT NOT NULL, insurer TEXT NOT NULL, insured TEXT NOT NULL,
                 PRIMARY KEY (party, local_id));
             CREATE TABLE IF NOT EXISTS delivered (key TEXT PRIMARY KEY, at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
        )
        .map_err(err)?;
        conn.execute_batch(PROCESS_TABLES).map_err(err)?;
        conn.execute_batch(AUDIT_CHECKPOINTS).map_err(err)?;
        conn.execute_batch(ARCHIVE_TABLES).map_err(err)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| err("store lock poisoned"))
    }

    fn rows(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Consent>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(sql).map_err(err)?;
        let bodies: Vec<String> = st
            .query_map(args, |r| r.get::<_, String>(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        super::consents_from(bodies.iter().map(String::as_str))
    }

    fn put(&self, c: &Consent) -> Result<(), StoreError> {
        let body = serde_json::to_string(c).map_err(err)?;
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO consents(id, insurer, insured, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            params![
                c.id.as_str(),
                c.subject.insurer_number.as_str(),
                c.subject.insured_number.as_str(),
                body
            ],
        )
        .map_err(err)?;
        conn.execute("UPDATE changes SET n = n + 1", [])
            .map_err(err)?;
        Ok(())
    }
}

impl ConsentRegistry for SqliteStore {
    fn decide(&self, q: &Question) -> Decision {
        match self.rows(
            "SELECT body FROM consents WHERE insurer = ?1 AND insured = ?2",
            &[
                &q.subject.insurer_number.as_str(),
                &q.subject.insured_number.as_str(),
            ],
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
            || self.rows("SELECT body FROM consents WHERE id = ?1", &[&id]),
            |c| self.put(c),
            |m| m.grant(consent),
        )
    }

    fn revoke(&self, id: &str, at: &str) -> Result<(), ConsentError> {
        apply_change(
            || self.rows("SELECT body FROM consents WHERE id = ?1", &[&id]),
            |c| self.put(c),
            |m| m.revoke(id, at),
        )
    }

    fn list(&self, subject: Option<&Subject>) -> Vec<Consent> {
        let r = match subject {
            Some(s) => self.rows(
                "SELECT body FROM consents WHERE insurer = ?1 AND insured = ?2 ORDER BY id",
                &[&s.insurer_number.as_str(), &s.insured_number.as_str()],
            ),
            None => self.rows("SELECT body FROM consents ORDER BY id", &[]),
        };
        r.unwrap_or_default()
    }

    fn consents_of(&self, s: &Subject) -> Result<Vec<Consent>, ConsentError> {
        self.rows(
            "SELECT body FROM consents WHERE insurer = ?1 AND insured = ?2 ORDER BY id",
            &[&s.insurer_number.as_str(), &s.insured_number.as_str()],
        )
        .map_err(|e| ConsentError::Unavailable { detail: e.0 })
    }

    fn change_counter(&self) -> Result<u64, ConsentError> {
        let conn = self
            .conn()
            .map_err(|e| ConsentError::Unavailable { detail: e.0 })?;
        conn.query_row("SELECT n FROM changes", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| ConsentError::Unavailable {
                detail: e.to_string(),
            })
    }
}

impl Store for SqliteStore {
    fn consents(&self) -> &dyn ConsentRegistry {
        self
    }

    fn link(&self, party: &str, local_id: &str, subject: &Subject) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT INTO xref(party, local_id, insurer, insured) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(party, local_id) DO UPDATE SET insurer = excluded.insurer, insured = excluded.insured",
                params![party, local_id, subject.insurer_number.as_str(), subject.insured_number.as_str()],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn resolve(&self, party: &str, local_id: &str) -> Result<Option<Subject>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()?
            .prepare_cached("SELECT insurer, insured FROM xref WHERE party = ?1 AND local_id = ?2")
            .and_then(|mut st| {
                st.query_row(params![party, local_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(err)?;
        match row {
            None => Ok(None),
            Some((a, b)) => Subject::new(&a, &b).map(Some).map_err(err),
        }
    }

    fn was_delivered(&self, key: &str) -> Result<bool, StoreError> {
        self.conn()?
            .prepare_cached("SELECT 1 FROM delivered WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |_| Ok(())).optional())
            .map(|r| r.is_some())
            .map_err(err)
    }

    fn mark_delivered(&self, key: &str) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached("INSERT OR IGNORE INTO delivered(key) VALUES (?1)")
            .and_then(|mut st| st.execute(params![key]))
            .map(|_| ())
            .map_err(err)
    }

    fn mark_delivered_all(&self, keys: &[String]) -> Result<(), StoreError> {
        // A group of one (a lone delivery when the hub is not busy) needs no explicit
        // transaction: the INSERT commits by itself.
        if let [key] = keys {
            return self.mark_delivered(key);
        }
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO delivered(key) VALUES (?1)")
                .map_err(err)?;
            for k in keys {
                st.execute(params![k]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn forget_delivered(
        &self,
        older_than: std::time::Duration,
        at_most: usize,
    ) -> Result<usize, StoreError> {
        // `at` is SQLite's CURRENT_TIMESTAMP (UTC, `YYYY-MM-DD HH:MM:SS`), which `datetime`
        // writes the same way, so the text compares as the time does. Oldest rows first
        // (rowid order is insertion order), a bounded batch per call.
        self.conn()?
            .prepare_cached(
                "DELETE FROM delivered WHERE rowid IN (SELECT rowid FROM delivered \
                 WHERE at < datetime('now', '-' || ?1 || ' seconds') ORDER BY rowid LIMIT ?2)",
            )
            .and_then(|mut st| st.execute(params![older_than.as_secs() as i64, at_most as i64]))
            .map_err(err)
    }

    /// A local file: every call is a few µs (a WAL commit is ~30 µs), waiting only when another
    /// process holds the write lock (`consent grant` from the CLI, for a moment).
    fn inline(&self) -> bool {
        true
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

/// The registry's tables. Times are milliseconds since 1970 of this machine's clock: a SQLite
/// file is shared only by processes on one machine.
const PROCESS_TABLES: &str = "
CREATE TABLE IF NOT EXISTS hub_processes (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at TEXT NOT NULL,
    bus TEXT NOT NULL, bus_url TEXT, prefix TEXT NOT NULL, consent_cache_secs INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS consent_applied (
    change TEXT NOT NULL, process TEXT NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (change, process));";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ProcessRegistry for SqliteStore {
    fn register(&self, p: &ProcessRecord) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO hub_processes(id, host, pid, started_at, bus, bus_url, \
                 prefix, consent_cache_secs, heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.id,
                    p.host,
                    p.pid,
                    p.started_at,
                    p.bus,
                    p.bus_url,
                    p.prefix,
                    p.consent_cache_secs as i64,
                    now_ms()
                ],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn heartbeat(&self, id: &str) -> Result<bool, StoreError> {
        self.conn()?
            .execute(
                "UPDATE hub_processes SET heartbeat_ms = ?1 WHERE id = ?2",
                params![now_ms(), id],
            )
            .map(|n| n > 0)
            .map_err(err)
    }

    fn deregister(&self, id: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM consent_applied WHERE process = ?1",
            params![id],
        )
        .map_err(err)?;
        conn.execute("DELETE FROM hub_processes WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(err)
    }

    fn registered(&self) -> Result<Vec<ListedProcess>, StoreError> {
        let now = now_ms();
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT id, host, pid, started_at, bus, bus_url, prefix, consent_cache_secs, \
                 heartbeat_ms FROM hub_processes ORDER BY started_at, id",
            )
            .map_err(err)?;
        st.query_map([], |r| {
            Ok(ListedProcess {
                record: ProcessRecord {
                    id: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    started_at: r.get(3)?,
                    bus: r.get(4)?,
                    bus_url: r.get(5)?,
                    prefix: r.get(6)?,
                    consent_cache_secs: r.get::<_, i64>(7)?.max(0) as u64,
                },
                heartbeat_age: std::time::Duration::from_millis(
                    (now - r.get::<_, i64>(8)?).max(0) as u64
                ),
            })
        })
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)
    }

    fn record_applied(&self, process: &str, change: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT OR IGNORE INTO consent_applied(change, process, at_ms) VALUES (?1, ?2, ?3)",
                params![change, process, now_ms()],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn applied_by(&self, change: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached("SELECT process FROM consent_applied WHERE change = ?1")
            .map_err(err)?;
        st.query_map(params![change], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn forget_changes(&self, changes: &[String]) -> Result<(), StoreError> {
        let conn = self.conn()?;
        for c in changes {
            conn.execute("DELETE FROM consent_applied WHERE change = ?1", params![c])
                .map_err(err)?;
        }
        Ok(())
    }

    fn prune(&self, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let before = now_ms() - older_than.as_millis() as i64;
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM consent_applied WHERE at_ms < ?1",
            params![before],
        )
        .map_err(err)?;
        conn.execute(
            "DELETE FROM hub_processes WHERE heartbeat_ms < ?1",
            params![before],
        )
        .map_err(err)
    }
}

// ----- audit checkpoints -----

const AUDIT_CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, file TEXT NOT NULL,
    at TEXT NOT NULL);";

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        chain: r.get(0)?,
        seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        hash: r.get(2)?,
        file: r.get(3)?,
        at: r.get(4)?,
    })
}

impl AuditCheckpoints for SqliteStore {
    fn checkpoint_of(&self, chain: &str) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.conn()?
            .prepare_cached(
                "SELECT chain, seq, hash, file, at FROM audit_checkpoints WHERE chain = ?1",
            )
            .and_then(|mut st| st.query_row(params![chain], checkpoint_row).optional())
            .map_err(err)
    }

    fn every_checkpoint(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT chain, seq, hash, file, at FROM audit_checkpoints ORDER BY chain",
            )
            .map_err(err)?;
        st.query_map([], checkpoint_row)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    fn advance_checkpoint(
        &self,
        new: &StoredCheckpoint,
        expected: Option<(u64, &str)>,
    ) -> Result<Advance, StoreError> {
        let seq = seq_to_i64(new.seq)?;
        let changed = {
            let conn = self.conn()?;
            match expected {
                None => conn.execute(
                    "INSERT INTO audit_checkpoints(chain, seq, hash, file, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(chain) DO NOTHING",
                    params![new.chain, seq, new.hash, new.file, new.at],
                ),
                Some((was_seq, was_hash)) => conn.execute(
                    "UPDATE audit_checkpoints SET seq = ?2, hash = ?3, file = ?4, at = ?5 \
                     WHERE chain = ?1 AND seq = ?6 AND hash = ?7",
                    params![
                        new.chain,
                        seq,
                        new.hash,
                        new.file,
                        new.at,
                        seq_to_i64(was_seq)?,
                        was_hash
                    ],
                ),
            }
            .map_err(err)?
        };
        if changed == 1 {
            Ok(Advance::Stored)
        } else {
            Ok(Advance::Moved(self.checkpoint_of(&new.chain)?))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The message archive (`archive.rs`): metadata in clear, bodies sealed.
// ---------------------------------------------------------------------------------------------

const ARCHIVE_TABLES: &str = "CREATE TABLE IF NOT EXISTS archive_originals (
    envelope TEXT PRIMARY KEY, at TEXT NOT NULL, sender TEXT NOT NULL, format TEXT NOT NULL,
    mapping TEXT NOT NULL, outcome TEXT NOT NULL, kinds TEXT NOT NULL, subjects TEXT NOT NULL,
    key_id TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS archive_originals_at ON archive_originals(at);
CREATE INDEX IF NOT EXISTS archive_originals_sender ON archive_originals(sender, at);
CREATE TABLE IF NOT EXISTS archive_documents (
    envelope TEXT NOT NULL, idx INTEGER NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT, mapping TEXT NOT NULL, key_id TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (envelope, idx));
CREATE INDEX IF NOT EXISTS archive_documents_subject ON archive_documents(subject);
CREATE INDEX IF NOT EXISTS archive_documents_at ON archive_documents(at);";

const ARCHIVE_SEARCH: &str =
    "SELECT envelope, at, sender, format, mapping, outcome, kinds, subjects
    FROM archive_originals o
    WHERE (?1 IS NULL OR o.envelope = ?1)
      AND (?2 IS NULL OR o.sender = ?2)
      AND (?3 IS NULL OR o.kinds LIKE ?3 OR EXISTS (SELECT 1 FROM archive_documents d
           WHERE d.envelope = o.envelope AND (',' || d.kind || ',') LIKE ?3))
      AND (?4 IS NULL OR o.subjects LIKE '%,' || ?4 || ',%' OR EXISTS (SELECT 1
           FROM archive_documents d WHERE d.envelope = o.envelope AND d.subject = ?4))
      AND (?5 IS NULL OR o.at >= ?5)
      AND (?6 IS NULL OR o.at < ?6)
      AND (?7 IS NULL OR o.envelope IN (SELECT value FROM json_each(?7)))
    ORDER BY o.at DESC, o.envelope DESC LIMIT ?8";

fn original_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Original> {
    Ok(Original {
        envelope: r.get(0)?,
        at: r.get(1)?,
        sender: r.get(2)?,
        format: r.get(3)?,
        mapping: r.get(4)?,
        outcome: r.get(5)?,
        kinds: archive::split(&r.get::<_, String>(6)?),
        subjects: archive::split(&r.get::<_, String>(7)?),
    })
}

impl ArchiveStore for SqliteStore {
    fn archive_put(&self, rows: &[Row]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(err)?;
        for row in rows {
            match row {
                Row::Original(o, sealed) => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO archive_originals(envelope, at, sender, format,
                         mapping, outcome, kinds, subjects, key_id, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            o.envelope,
                            o.at,
                            o.sender,
                            o.format,
                            o.mapping,
                            o.outcome,
                            archive::joined(&o.kinds),
                            archive::joined(&o.subjects),
                            sealed.key_id,
                            sealed.bytes
                        ])
                    }),
                Row::Document(d, sealed) => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO archive_documents(envelope, idx, at, kind,
                         subject, mapping, key_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            d.envelope,
                            d.index,
                            d.at,
                            d.kind,
                            d.subject,
                            d.mapping,
                            sealed.key_id,
                            sealed.bytes
                        ])
                    }),
            }
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn archived_original(&self, envelope: &str) -> Result<Option<(Original, Sealed)>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT envelope, at, sender, format, mapping, outcome, kinds, subjects, key_id, body
             FROM archive_originals WHERE envelope = ?1",
            [envelope],
            |r| {
                Ok((
                    original_row(r)?,
                    Sealed {
                        key_id: r.get(8)?,
                        bytes: r.get(9)?,
                    },
                ))
            },
        )
        .optional()
        .map_err(err)
    }

    fn archived_documents(&self, envelope: &str) -> Result<Vec<(Document, Sealed)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare_cached(
                "SELECT envelope, idx, at, kind, subject, mapping, key_id, body
                 FROM archive_documents WHERE envelope = ?1 ORDER BY idx",
            )
            .map_err(err)?;
        st.query_map([envelope], |r| {
            Ok((
                Document {
                    envelope: r.get(0)?,
                    index: r.get(1)?,
                    at: r.get(2)?,
                    kind: r.get(3)?,
                    subject: r.get(4)?,
                    mapping: r.get(5)?,
                },
                Sealed {
                    key_id: r.get(6)?,
                    bytes: r.get(7)?,
                },
            ))
        })
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)
    }

    fn archive_search(&self, q: &Query) -> Result<Vec<Original>, StoreError> {
        let among = q
            .among
            .as_ref()
            .map(|a| serde_json::to_string(a).map_err(err))
            .transpose()?;
        let kind = q.kind.as_deref().map(Query::kind_pattern);
        let limit = i64::try_from(q.limit()).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(ARCHIVE_SEARCH).map_err(err)?;
        st.query_map(
            params![
                q.envelope, q.sender, kind, q.subject, q.since, q.until, among, limit
            ],
            original_row,
        )
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)
    }

    fn archive_prune(&self, before: &str, at_most: usize) -> Result<usize, StoreError> {
        let n = i64::try_from(at_most).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let originals = conn
            .execute(
                "DELETE FROM archive_originals WHERE envelope IN (SELECT envelope
                 FROM archive_originals WHERE at < ?1 LIMIT ?2)",
                params![before, n],
            )
            .map_err(err)?;
        let documents = conn
            .execute(
                "DELETE FROM archive_documents WHERE rowid IN (SELECT rowid
                 FROM archive_documents WHERE at < ?1 LIMIT ?2)",
                params![before, n],
            )
            .map_err(err)?;
        Ok(originals + documents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{Category, Grantee, IsoDate, PartyId, PartyKind, Recipient};

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

    #[test]
    fn grants_persist_and_decide_like_the_model() {
        let dir = std::env::temp_dir().join(format!("kaigo-store-{}", std::process::id()));
        let path = dir.join("t.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.grant(consent("c1")).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.decide(&question()).is_permit());
        s.revoke("c1", "2025-11-21T00:00:00Z").unwrap();
        assert!(!s.decide(&question()).is_permit());
        assert_eq!(s.list(None).len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn conflicting_regrant_is_refused_like_the_model() {
        let s = SqliteStore::in_memory().unwrap();
        s.grant(consent("c1")).unwrap();
        let mut other = consent("c1");
        other.categories = vec![Category::Claims];
        assert!(s.grant(other).is_err());
        assert!(s.change_counter().unwrap() >= 1);
    }

    #[test]
    fn xref_and_delivery_keys_round_trip() {
        let s = SqliteStore::in_memory().unwrap();
        let subj = Subject::new("131011", "0000100001").unwrap();
        assert_eq!(s.resolve("1311234567", "00012345").unwrap(), None);
        s.link("1311234567", "00012345", &subj).unwrap();
        assert_eq!(s.resolve("1311234567", "00012345").unwrap(), Some(subj));
        assert!(!s.was_delivered("e1/0/r").unwrap());
        s.mark_delivered("e1/0/r").unwrap();
        s.mark_delivered("e1/0/r").unwrap();
        assert!(s.was_delivered("e1/0/r").unwrap());
        // Several in one transaction; a key already recorded (here twice over) is no error.
        let keys: Vec<String> = ["e1/0/r", "e2/0/r", "e2/1/r", "e2/1/r"]
            .map(String::from)
            .into();
        s.mark_delivered_all(&keys).unwrap();
        for k in &keys {
            assert!(s.was_delivered(k).unwrap(), "{k}");
        }
        assert!(!s.was_delivered("e2/2/r").unwrap());
        s.mark_delivered_all(&[]).unwrap();
        s.mark_delivered_all(&["solo/0/r".to_string()]).unwrap();
        assert!(s.was_delivered("solo/0/r").unwrap());
    }

    #[test]
    fn the_process_registry_holds_its_contract() {
        let s = SqliteStore::in_memory().unwrap();
        crate::store::processes::contract::holds(&s, &|id, age| {
            s.conn()
                .unwrap()
                .execute(
                    "UPDATE hub_processes SET heartbeat_ms = heartbeat_ms - ?1 WHERE id = ?2",
                    params![age.as_millis() as i64, id],
                )
                .unwrap();
            s.conn()
                .unwrap()
                .execute(
                    "UPDATE consent_applied SET at_ms = at_ms - ?1 WHERE process = ?2",
                    params![age.as_millis() as i64, id],
                )
                .unwrap();
        });
    }

    #[test]
    fn an_existing_store_is_opened_and_a_missing_one_is_not_created() {
        let dir = std::env::temp_dir().join(format!(
            "kaigo-store-existing-{}",
            crate::pipeline::clock::envelope_id()
        ));
        let path = dir.join("sub").join("hub.sqlite");
        match SqliteStore::open_existing(&path) {
            Err(Existing::Missing(why)) => assert!(why.contains("does not exist"), "{why}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(!dir.exists(), "nothing was created");
        std::fs::create_dir_all(&dir).unwrap();
        let stranger = dir.join("other.sqlite");
        Connection::open(&stranger)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        match SqliteStore::open_existing(&stranger) {
            Err(Existing::Missing(why)) => assert!(why.contains("not a kaigo-hub store"), "{why}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        SqliteStore::open(&path)
            .unwrap()
            .grant(consent("c1"))
            .unwrap();
        let s = SqliteStore::open_existing(&path).expect("an existing store opens");
        assert_eq!(s.list(None).len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn delivery_keys_older_than_the_bound_are_forgotten_in_batches_the_rest_kept() {
        let s = SqliteStore::in_memory().unwrap();
        let keys: Vec<String> = (0..5).map(|i| format!("old{i}/0/r")).collect();
        s.mark_delivered_all(&keys).unwrap();
        // Recorded ten days ago, as SQLite itself writes the time.
        s.conn()
            .unwrap()
            .execute(
                "UPDATE delivered SET at = datetime('now', '-10 days') WHERE key LIKE 'old%'",
                [],
            )
            .unwrap();
        s.mark_delivered("new/0/r").unwrap();
        let week = std::time::Duration::from_secs(7 * 86_400);
        assert_eq!(s.forget_delivered(week, 3).unwrap(), 3, "a full batch");
        assert_eq!(s.forget_delivered(week, 3).unwrap(), 2, "the rest");
        assert_eq!(s.forget_delivered(week, 3).unwrap(), 0, "none left");
        for k in &keys {
            assert!(!s.was_delivered(k).unwrap(), "{k} forgotten");
        }
        assert!(s.was_delivered("new/0/r").unwrap(), "a recent key is kept");
        let eleven_days = std::time::Duration::from_secs(11 * 86_400);
        s.mark_delivered("old9/0/r").unwrap();
        assert_eq!(s.forget_delivered(eleven_days, 10).unwrap(), 0);
    }

    #[test]
    fn an_audit_checkpoint_moves_only_from_the_row_its_writer_saw() {
        let s = SqliteStore::in_memory().unwrap();
        let cp = |seq: u64, hash: &str| StoredCheckpoint {
            chain: "hub-0123456789ab".into(),
            seq,
            hash: hash.into(),
            file: "data/audit.jsonl".into(),
            at: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(s.checkpoint_of("hub-0123456789ab").unwrap(), None);
        assert_eq!(
            s.advance_checkpoint(&cp(5, "a"), None).unwrap(),
            Advance::Stored
        );
        // A second writer that saw no row, or an older one, is told what the row holds.
        assert_eq!(
            s.advance_checkpoint(&cp(6, "x"), None).unwrap(),
            Advance::Moved(Some(cp(5, "a")))
        );
        assert_eq!(
            s.advance_checkpoint(&cp(6, "x"), Some((4, "z"))).unwrap(),
            Advance::Moved(Some(cp(5, "a")))
        );
        assert_eq!(
            s.advance_checkpoint(&cp(9, "b"), Some((5, "a"))).unwrap(),
            Advance::Stored
        );
        assert_eq!(
            s.checkpoint_of("hub-0123456789ab").unwrap(),
            Some(cp(9, "b"))
        );
        assert_eq!(s.every_checkpoint().unwrap(), vec![cp(9, "b")]);
    }
}
