//! What the hub must remember across messages and restarts: consents (the registry behind every
//! decision), the subject cross-reference (party + local id → 保険者番号 + 被保険者番号) and the
//! idempotency keys that keep a recipient from getting a document twice. SQLite is the embedded
//! default (`sqlite.rs`); PostgreSQL (`postgres.rs`) lets several hub processes share them. Every
//! method is blocking: async callers hand a call to `spawn_blocking`, unless the store says its
//! calls are local and take microseconds ([`Store::inline`]), as SQLite's are. The two calls the
//! deliver hop makes for every copy, the subject lookup ingress and translate make for every
//! message without a `subject`, and the consent read behind every decision also have async forms
//! ([`was_delivered`], [`mark_delivered_all`], [`resolve_first`], [`Store::consents_of_async`]),
//! which PostgreSQL answers on its async client directly. Where the store is comes from one
//! database URL ([`Location`]); `serve` creates a store that does not exist yet ([`open`]), every
//! other command refuses it ([`open_existing`]), so a command run from the wrong directory cannot
//! answer from an empty database. The registry of running hub processes is kept here too
//! ([`processes`]), and the audit chains' checkpoints ([`AuditCheckpoints`]), apart from the log
//! files they vouch for. The message archive's tables are here too ([`archive`]): bodies sealed
//! with a key kept apart from the store.

pub mod archive;
pub mod postgres;
pub mod processes;
pub mod sqlite;

use crate::consent::{Consent, ConsentError, ConsentRegistry, InMemoryRegistry, Subject};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// A store call made without the blocking pool, by a store whose client is async.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Opens the store a database URL names ([`Location::parse`]), creating it when it does not exist
/// yet (what `serve` does). Must run inside a tokio runtime.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    let location = Location::parse(url)?;
    let unavailable = |source| OpenError::Unavailable {
        place: location.describe(),
        source,
    };
    Ok(match &location {
        Location::Postgres(url) => Arc::new(
            postgres::PostgresStore::connect(url)
                .await
                .map_err(unavailable)?,
        ),
        Location::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path).map_err(unavailable)?),
    })
}

/// Opens the store a database URL names only when it exists and is a kaigo-hub store (what every
/// command but `serve` does): a SQLite file that is not there, or a PostgreSQL schema without the
/// hub's tables, is [`OpenError::Missing`], and nothing is created.
pub async fn open_existing(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    let location = Location::parse(url)?;
    match &location {
        Location::Postgres(url) => postgres::PostgresStore::connect_existing(url)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        Location::Sqlite(path) => {
            sqlite::SqliteStore::open_existing(path).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
    }
    .map_err(|e| match e {
        Existing::Missing(why) => OpenError::Missing {
            place: location.describe(),
            why,
        },
        Existing::Unavailable(source) => OpenError::Unavailable {
            place: location.describe(),
            source,
        },
    })
}

/// Why [`open_existing`] did not open a store, as a database reports it.
#[derive(Debug)]
pub enum Existing {
    /// There is no kaigo-hub store there (what is missing).
    Missing(String),
    /// It could not be reached or read.
    Unavailable(StoreError),
}

/// Where a store is, from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A PostgreSQL URL (`postgres://…`, `postgresql://…`), kept as given.
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl Location {
    /// Reads a database URL: `postgres://user@host/db` (or `postgresql://`), a SQLite URL —
    /// `sqlite:PATH`, `sqlite://PATH` (relative), `sqlite:///ABSOLUTE/PATH`, `file:PATH`,
    /// `file:///ABSOLUTE/PATH` (`%XX` escapes decoded) — or a plain file path. Refused, saying
    /// what to write instead: an in-memory SQLite database (`sqlite::memory:`: it would keep
    /// nothing, and no other process could see it), URL options (`?mode=…`), a `file://` URL
    /// naming another host, a PostgreSQL `key=value` connection string, any other scheme.
    pub fn parse(url: &str) -> Result<Location, OpenError> {
        let refuse = |reason: &str| OpenError::Url {
            url: without_password(url),
            reason: reason.to_string(),
        };
        const FORMS: &str = "give postgres://user@host/db, or a SQLite file as a path, \
                             sqlite:PATH or sqlite:///ABSOLUTE/PATH";
        if url.is_empty() {
            return Err(refuse(&format!("it is empty; {FORMS}")));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_string()));
        }
        let url_form = ["sqlite:", "file:"]
            .into_iter()
            .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (scheme, rest)));
        if let Some((scheme, rest)) = url_form {
            if rest.contains(":memory:") || rest.contains("mode=memory") {
                return Err(refuse(
                    "an in-memory SQLite database keeps nothing after the process ends, and no \
                     other process (a consent command, a second hub) can see it; name a file",
                ));
            }
            if rest.contains('?') || rest.contains('#') {
                return Err(refuse(&format!(
                    "options after `?` are not supported in a {scheme} URL; give the file alone"
                )));
            }
            let path = match rest.strip_prefix("//") {
                // `file://` is followed by a host, which may only be empty or this machine.
                Some(after) if scheme == "file:" => match after.find('/') {
                    Some(0) => after,
                    Some(i) if &after[..i] == "localhost" => &after[i..],
                    _ => {
                        return Err(refuse(
                            "a file:// URL names a host before the path; use file:///ABSOLUTE/PATH \
                             or file:RELATIVE/PATH",
                        ));
                    }
                },
                // `sqlite:///abs` is `/abs`, `sqlite://rel` is `rel`.
                Some(after) => after,
                None => rest,
            };
            let path = percent_decode(path).map_err(|e| refuse(&e))?;
            if path.is_empty() {
                return Err(refuse(&format!("it names no file; {FORMS}")));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(refuse(&format!(
                "kaigo-hub keeps its store in PostgreSQL or SQLite, not `{scheme}`; {FORMS}"
            )));
        }
        if let Some((key, _)) = url.split_once('=')
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            // Shown by its keys alone: its values may hold a password.
            let keys: Vec<String> = url
                .split_whitespace()
                .map(|kv| format!("{}=…", kv.split('=').next().unwrap_or("")))
                .collect();
            return Err(OpenError::Url {
                url: keys.join(" "),
                reason: "a PostgreSQL key=value connection string is not supported; write it as \
                         postgres://user:password@host:port/db"
                    .into(),
            });
        }
        if url == ":memory:" {
            return Err(refuse(
                "an in-memory SQLite database keeps nothing after the process ends; name a file",
            ));
        }
        Ok(Location::Sqlite(PathBuf::from(url)))
    }

    /// What the store is, for messages: `SQLite file /absolute/path` or `PostgreSQL
    /// postgres://user:***@host/db…` (never a password).
    pub fn describe(&self) -> String {
        match self {
            Location::Postgres(url) => format!("PostgreSQL {}", without_password(url)),
            Location::Sqlite(path) => format!("SQLite file {}", absolute(path).display()),
        }
    }
}

/// `path` made absolute against the working directory, for messages (as given when that fails).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A URL with its password replaced by `***` (user, host and the rest kept).
pub fn without_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[start + at..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// `%XX` escapes of a URL path decoded (as UTF-8).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`%` at byte {i} is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "its %-escapes do not decode to UTF-8".to_string())
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database URL is not one kaigo-hub reads.
    #[error("database URL `{url}`: {reason}")]
    Url {
        /// The URL as given, without its password.
        url: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// No kaigo-hub store exists there (only [`open_existing`] says this).
    #[error("no kaigo-hub store at {place}: {why}")]
    Missing {
        /// [`Location::describe`].
        place: String,
        /// What is missing.
        why: String,
    },
    /// It exists (or should be created) but cannot be reached or read.
    #[error("{place}: {source}")]
    Unavailable {
        /// [`Location::describe`].
        place: String,
        /// The database's error.
        source: StoreError,
    },
}

/// Applies a grant or revoke with the registry's own rules (`InMemoryRegistry` decides what the
/// change means) to the stored copies of one consent id, then writes back what changed. Shared by
/// every database so they cannot disagree with the model.
pub fn apply_change(
    load: impl FnOnce() -> Result<Vec<Consent>, StoreError>,
    put: impl Fn(&Consent) -> Result<(), StoreError>,
    change: impl FnOnce(&InMemoryRegistry) -> Result<(), ConsentError>,
) -> Result<(), ConsentError> {
    let unavailable = |e: StoreError| ConsentError::Unavailable { detail: e.0 };
    let model = InMemoryRegistry::new();
    for c in load().map_err(unavailable)? {
        model.grant(c)?;
    }
    let before = model.change_counter()?;
    change(&model)?;
    if model.change_counter()? != before {
        for c in model.list(None) {
            put(&c).map_err(unavailable)?;
        }
    }
    Ok(())
}

/// The consents stored as JSON in the `body` column of `consents`, or which one is unreadable.
fn consents_from<'a>(
    bodies: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Consent>, StoreError> {
    bodies
        .into_iter()
        .map(|b| {
            serde_json::from_str(b)
                .map_err(|e| StoreError(format!("stored consent is unreadable: {e}")))
        })
        .collect()
}

/// A store failure (the database is unreachable or refused the statement).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// The hub's persistent state.
pub trait Store: Send + Sync {
    /// The consent registry kept in this store.
    fn consents(&self) -> &dyn ConsentRegistry;
    /// Records that `party` knows `subject` under `local_id` (e.g. a hospital 患者ID).
    fn link(&self, party: &str, local_id: &str, subject: &Subject) -> Result<(), StoreError>;
    /// The subject `party` knows as `local_id`, if linked.
    fn resolve(&self, party: &str, local_id: &str) -> Result<Option<Subject>, StoreError>;
    /// True when `key` (envelope, document, recipient) was already delivered.
    fn was_delivered(&self, key: &str) -> Result<bool, StoreError>;
    /// Records a completed delivery.
    fn mark_delivered(&self, key: &str) -> Result<(), StoreError>;
    /// Records several completed deliveries in one transaction: all of them or, on error, none
    /// (a key already recorded is no error). The deliver hop's group commit
    /// ([`crate::pipeline::keys`]) calls this. The default records them one by one.
    fn mark_delivered_all(&self, keys: &[String]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.mark_delivered(k))
    }
    /// Forgets at most `at_most` delivery keys recorded more than `older_than` ago; returns how
    /// many it forgot (fewer than `at_most`: none of that age is left). A copy redelivered after
    /// its key was forgotten would be sent again, so keys are kept forever unless
    /// `delivered_keep_days` says otherwise ([`crate::pipeline::keys::expire`]).
    fn forget_delivered(
        &self,
        older_than: std::time::Duration,
        at_most: usize,
    ) -> Result<usize, StoreError>;
    /// [`Store::was_delivered`] for an async caller, when the store's client is async
    /// (PostgreSQL): the call then waits on the network without a blocking-pool thread. `None`
    /// (the default): use the blocking call. The deliver hop asks this once per copy.
    fn was_delivered_async<'a>(&'a self, _key: &'a str) -> Option<StoreFuture<'a, bool>> {
        None
    }
    /// [`Store::mark_delivered_all`] for an async caller, as [`Store::was_delivered_async`].
    fn mark_delivered_all_async<'a>(&'a self, _keys: &'a [String]) -> Option<StoreFuture<'a, ()>> {
        None
    }
    /// The subject `party` knows under the first of `local_ids` that is linked, for an async
    /// caller, as [`Store::was_delivered_async`]: one round trip for all of them. `None` (the
    /// default): [`resolve_first`] asks [`Store::resolve`] for each id in turn.
    fn resolve_async<'a>(
        &'a self,
        _party: &'a str,
        _local_ids: &'a [String],
    ) -> Option<StoreFuture<'a, Option<Subject>>> {
        None
    }
    /// The consents of one subject (revoked ones too, ordered by id), as the registry's
    /// `consents_of`, for an async caller, as [`Store::was_delivered_async`]. The hub decides
    /// from them itself (`consent::decide_from`, the rule every registry shares). `None` (the
    /// default): the decision is made by the blocking registry.
    fn consents_of_async<'a>(
        &'a self,
        _subject: &'a Subject,
    ) -> Option<StoreFuture<'a, Vec<Consent>>> {
        None
    }
    /// True when every call is local and takes microseconds (no network, no wait but a file
    /// lock), so an async caller may make it on its own thread: a hand-off to the blocking pool
    /// costs two thread switches, more than such a call. False (the default) hands calls off.
    fn inline(&self) -> bool {
        false
    }

    // --- The registry of running hub processes (`processes.rs`) ---------------------------------

    /// The running hub processes registered in this store, and the consent changes each applied.
    /// The default (a test double's) keeps none: every call fails.
    fn processes(&self) -> &dyn processes::ProcessRegistry {
        &processes::NoRegistry
    }

    // ----- audit checkpoints (see `AuditCheckpoints` below) -----

    /// The audit chains' checkpoints kept in this store; `None` (the default) for a store that
    /// keeps none (a test double): its hub's audit log then cannot show a cut tail.
    fn audit_checkpoints(&self) -> Option<&dyn AuditCheckpoints> {
        None
    }

    // ----- the message archive (`archive.rs`) -----

    /// The archive tables kept in this store; `None` (the default) for a store that keeps none
    /// (a test double): its hub archives nothing, as without `archive_key_file`.
    fn archive(&self) -> Option<&dyn archive::ArchiveStore> {
        None
    }
}

/// [`Store::was_delivered`] from async code: the store's async path if it has one, otherwise as
/// [`call`] makes it.
pub async fn was_delivered(store: &Arc<dyn Store>, key: &str) -> Result<bool, StoreError> {
    if let Some(answer) = store.was_delivered_async(key) {
        return answer.await;
    }
    let key = key.to_string();
    call(store, move |s| s.was_delivered(&key)).await
}

/// [`Store::mark_delivered_all`] from async code, as [`was_delivered`].
pub async fn mark_delivered_all(
    store: &Arc<dyn Store>,
    keys: Vec<String>,
) -> Result<(), StoreError> {
    if let Some(done) = store.mark_delivered_all_async(&keys) {
        return done.await;
    }
    call(store, move |s| s.mark_delivered_all(&keys)).await
}

/// The subject `party` knows under the first of `local_ids` (in their order) that is linked:
/// the store's async path if it has one, otherwise one [`call`] that tries them in turn.
pub async fn resolve_first(
    store: &Arc<dyn Store>,
    party: &str,
    local_ids: Vec<String>,
) -> Result<Option<Subject>, StoreError> {
    if local_ids.is_empty() {
        return Ok(None);
    }
    if let Some(answer) = store.resolve_async(party, &local_ids) {
        return answer.await;
    }
    let party = party.to_string();
    call(store, move |s| {
        for id in &local_ids {
            if let Some(subject) = s.resolve(&party, id)? {
                return Ok(Some(subject));
            }
        }
        Ok(None)
    })
    .await
}

/// Runs a store call from async code: on the caller's thread when the store is [`Store::inline`],
/// otherwise on the blocking pool.
pub async fn call<T: Send + 'static>(
    store: &std::sync::Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if store.inline() {
        return f(store.as_ref());
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .unwrap_or_else(|e| Err(StoreError(e.to_string())))
}

// ---------------------------------------------------------------------------------------------
// Audit checkpoints
// ---------------------------------------------------------------------------------------------

/// One audit chain's checkpoint as the store keeps it (table `audit_checkpoints`, one row per
/// chain): the seq and hash of an event its writer had made durable, and when and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The chain's id (`hub-3f2a9c1b7d4e`, `cli-…`: `audit::ChainKey::id`).
    pub chain: String,
    /// The seq of the event.
    pub seq: u64,
    /// Its hash (64 hex).
    pub hash: String,
    /// The log file, as its writer named it (for messages).
    pub file: String,
    /// When it was recorded (RFC 3339 UTC, the writer's clock).
    pub at: String,
}

/// What [`AuditCheckpoints::advance_checkpoint`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The new checkpoint is stored.
    Stored,
    /// Not stored: the row is not the one the caller expected (another writer keeps this chain,
    /// or the row was changed); here is what it holds (`None`: no row).
    Moved(Option<StoredCheckpoint>),
}

/// The audit chains' checkpoints (`audit::chains`): kept in the store, apart from the log
/// files, so that a log cut short or re-sealed no longer matches what its writer recorded. One
/// row per chain; a writer moves its row forward only from the row it last saw, so two writers on
/// one chain are noticed instead of overwriting each other.
pub trait AuditCheckpoints: Send + Sync {
    /// The checkpoint of `chain`, if one was recorded.
    fn checkpoint_of(&self, chain: &str) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Every chain's checkpoint, ordered by chain.
    fn every_checkpoint(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;
    /// Stores `new` for `new.chain` if the row holds `expected` (seq, hash) now, or, with
    /// `expected` `None`, if there is no row yet.
    fn advance_checkpoint(
        &self,
        new: &StoredCheckpoint,
        expected: Option<(u64, &str)>,
    ) -> Result<Advance, StoreError>;
}

/// A seq as the databases' signed 64-bit integer.
fn seq_to_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError(format!("audit seq {seq} is beyond 2^63")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> PathBuf {
        match Location::parse(url) {
            Ok(Location::Sqlite(p)) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn refused(url: &str) -> String {
        match Location::parse(url) {
            Err(e @ OpenError::Url { .. }) => e.to_string(),
            other => panic!("{url} should be refused: {other:?}"),
        }
    }

    #[test]
    fn the_usual_sqlite_url_forms_name_the_file_they_mean() {
        assert_eq!(sqlite("sqlite:./x.db"), Path::new("./x.db"));
        assert_eq!(sqlite("sqlite:x.db"), Path::new("x.db"));
        assert_eq!(sqlite("sqlite://x.db"), Path::new("x.db"));
        assert_eq!(sqlite("sqlite://./data/x.db"), Path::new("./data/x.db"));
        assert_eq!(
            sqlite("sqlite:///var/lib/kaigo/x.db"),
            Path::new("/var/lib/kaigo/x.db")
        );
        assert_eq!(
            sqlite("sqlite:/var/lib/kaigo/x.db"),
            Path::new("/var/lib/kaigo/x.db")
        );
        assert_eq!(sqlite("file:x.db"), Path::new("x.db"));
        assert_eq!(sqlite("file:///var/lib/x.db"), Path::new("/var/lib/x.db"));
        assert_eq!(
            sqlite("file://localhost/var/lib/x.db"),
            Path::new("/var/lib/x.db")
        );
        assert_eq!(
            sqlite("sqlite:///tmp/my%20hub.db"),
            Path::new("/tmp/my hub.db")
        );
        assert_eq!(
            sqlite("data/kaigo-hub.sqlite"),
            Path::new("data/kaigo-hub.sqlite")
        );
        assert_eq!(sqlite("/srv/hub.sqlite"), Path::new("/srv/hub.sqlite"));
        assert_eq!(
            Location::parse("postgresql://u:pw@db/kaigo").expect("postgres"),
            Location::Postgres("postgresql://u:pw@db/kaigo".into())
        );
    }

    #[test]
    fn forms_that_cannot_work_are_refused_saying_what_to_write() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            ":memory:",
            "file::memory:",
        ] {
            assert!(refused(url).contains("in-memory"), "{url}");
        }
        assert!(refused("sqlite:x.db?mode=rwc").contains("options"));
        assert!(refused("file://otherhost/x.db").contains("host"));
        assert!(refused("mysql://u@h/db").contains("not `mysql`"));
        assert!(refused("host=db user=kaigo password=pw").contains("postgres://"));
        assert!(
            !refused("host=db user=kaigo password=pw").contains("pw"),
            "a refused URL is shown without its password only when it is a URL; a key=value \
             string is not echoed"
        );
        assert!(refused("sqlite:").contains("names no file"));
        assert!(refused("").contains("empty"));
        assert!(refused("sqlite:%zz").contains("hex"));
    }

    #[test]
    fn a_store_is_described_without_its_password() {
        let pg = Location::parse("postgres://kaigo:s3cret@db:5432/hub").expect("postgres");
        assert_eq!(pg.describe(), "PostgreSQL postgres://kaigo:***@db:5432/hub");
        let file = Location::parse("sqlite:rel/hub.db").expect("sqlite");
        let shown = file.describe();
        assert!(shown.starts_with("SQLite file /"), "absolute: {shown}");
        assert!(shown.ends_with("rel/hub.db"), "{shown}");
        assert_eq!(without_password("amqp://u@h/v"), "amqp://u@h/v");
    }
}
