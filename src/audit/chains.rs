//! The audit chains of one data directory and their checkpoints in the store: who appends where,
//! how a writer opens its chain (checking it against the store first), and how `audit verify`
//! judges every chain.
//!
//! In: the data directory's log files, the [`AuditKey`], the store's [`AuditCheckpoints`]. Out:
//! an [`OpenedChain`] to append to, a [`Checkpointer`] that records the durable head in the store,
//! and a [`DirReport`] whose `Display` is the verdict a person reads.
//!
//! One chain per writer ([`Writer`]): the running hub appends to `audit.jsonl` and holds it locked;
//! the CLI's consent commands append to `audit-cli.jsonl` (a command waits for another command's
//! lock, never for the hub's). So two processes never race on one chain, and each chain has its
//! own key ([`AuditKey::chain`]) and its own checkpoint row.
//!
//! Checkpoints: a writer stores the seq and hash of its last *fsynced* event in the store — the hub
//! about once a second while events come and when it stops (`Running::stop`), a CLI command
//! before it exits — never more than one store write per second and never one per event. A
//! checkpoint therefore never runs ahead of the file. On opening, a writer looks for the stored
//! checkpoint in its log; when the log ends before it or holds another hash there, the events of an
//! earlier run were cut or rewritten: the writer says so and records it as the next event
//! ([`ChainNotice::CheckpointNotInLog`]), which `verify` reports from then on.
//!
//! What this cannot show: events cut from the end *after* the last checkpoint (at most about a
//! second of a running hub's events, or those of a hub killed before its next checkpoint); and a
//! rewrite by someone who holds both the audit key and write access to the store. `/metrics`
//! shows each checkpoint too, so a scraper that keeps history is a third witness.
//!
//! This room writes only what [`AuditEvent`] holds; its messages name files, seqs, hashes and
//! chain ids, never an event's content.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::jsonl::{
    JsonlAuditStore, StoreError, StoreOptions, SyncPolicy, held_by_a_writer, read_path,
    set_aside_torn_tail, verify_lines_with,
};
use super::{
    AuditDraft, AuditEvent, AuditKey, ChainKey, Checkpoint, Hop, Timestamp, VerifyError,
    VerifyOptions, VerifyReport,
};
use crate::store::{Advance, AuditCheckpoints, StoreError as DbError, StoredCheckpoint};

/// `actor` of the events a chain records about itself.
pub const CHAIN_ACTOR: &str = "hub:audit";

// ---------------------------------------------------------------------------------------------
// Writers and what a chain says about itself
// ---------------------------------------------------------------------------------------------

/// Who appends to a chain. Each writer has a file and a chain of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Writer {
    /// `kaigo-hub serve`: every hop and consent decision, and the HTTP door's consent
    /// registrations.
    Hub,
    /// The command line's consent commands (`grant`, `revoke`, `import`, `link`).
    Cli,
}

impl Writer {
    /// Every writer, in the order `verify` reports them.
    pub const ALL: [Writer; 2] = [Writer::Hub, Writer::Cli];

    /// The writer's name, which its chain key and id derive from.
    pub fn as_str(self) -> &'static str {
        match self {
            Writer::Hub => "hub",
            Writer::Cli => "cli",
        }
    }

    /// Its log's file name in the data directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Writer::Hub => "audit.jsonl",
            Writer::Cli => "audit-cli.jsonl",
        }
    }

    /// Its log in `data_dir`.
    pub fn path_in(self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.file_name())
    }
}

/// An event a chain records about itself (`actor` [`CHAIN_ACTOR`], hop `admin`, the facts in
/// `reason` as `<code>:<seq>:<hash>[:<file>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainNotice {
    /// The chain starts after a log an earlier kaigo-hub wrote without a key, which ended at
    /// `head` and was renamed to `file` (a name beside the log).
    AfterUnkeyed {
        /// The old log's new file name.
        file: String,
        /// Its last event.
        head: Checkpoint,
    },
    /// On opening, the writer did not find the store's checkpoint in its log: events up to
    /// `checkpoint.seq` of an earlier run were cut or rewritten before this point.
    CheckpointNotInLog {
        /// The checkpoint the store held.
        checkpoint: Checkpoint,
    },
}

const AFTER_UNKEYED: &str = "after-unkeyed-log";
const NOT_IN_LOG: &str = "checkpoint-not-in-log";

impl ChainNotice {
    /// The event that records it.
    pub fn draft(&self, at: Timestamp) -> AuditDraft {
        let reason = match self {
            ChainNotice::AfterUnkeyed { file, head } => {
                format!("{AFTER_UNKEYED}:{}:{}:{file}", head.seq, head.hash)
            }
            ChainNotice::CheckpointNotInLog { checkpoint } => {
                format!("{NOT_IN_LOG}:{}:{}", checkpoint.seq, checkpoint.hash)
            }
        };
        AuditDraft::new(at, Hop::Admin, CHAIN_ACTOR).reason(reason)
    }

    /// The notice `event` records, if it is one.
    pub fn read(event: &AuditEvent) -> Option<ChainNotice> {
        if event.actor != CHAIN_ACTOR || event.hop != Hop::Admin {
            return None;
        }
        let (code, rest) = event.reason.as_deref()?.split_once(':')?;
        let mut parts = rest.splitn(3, ':');
        let seq = parts.next()?.parse().ok()?;
        let hash = parts.next()?.to_string();
        let point = Checkpoint { seq, hash };
        match code {
            AFTER_UNKEYED => Some(ChainNotice::AfterUnkeyed {
                file: parts.next()?.to_string(),
                head: point,
            }),
            NOT_IN_LOG => Some(ChainNotice::CheckpointNotInLog { checkpoint: point }),
            _ => None,
        }
    }
}

/// Something a chain could not do, naming the file or the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The log file.
    #[error(transparent)]
    Log(#[from] StoreError),
    /// The store's checkpoint could not be read or written.
    #[error("audit chain {chain}: the store could not {action} its checkpoint: {source}")]
    Store {
        /// The chain.
        chain: String,
        /// `read` or `record`.
        action: &'static str,
        /// The store's error.
        source: DbError,
    },
    /// The stored checkpoint is not the one this writer last recorded.
    #[error(
        "audit chain {chain}: the store's checkpoint moved under this writer (it holds {}): another process writes the same chain — give each hub process its own data_dir and audit key — or the row was changed in the store; this writer records no checkpoint until it restarts",
        describe_row(.row)
    )]
    Moved {
        /// The chain.
        chain: String,
        /// What the store holds.
        row: Box<Option<StoredCheckpoint>>,
    },
    /// The operating system refused.
    #[error("{}: could not {action}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn describe_row(row: &Option<StoredCheckpoint>) -> String {
    match row.as_ref() {
        Some(r) => format!("seq {} recorded {}", r.seq, r.at),
        None => "no row".into(),
    }
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> ChainError {
    let path = path.to_path_buf();
    move |source| ChainError::Io {
        path,
        action,
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Opening a chain to append
// ---------------------------------------------------------------------------------------------

/// How to open a chain for appending.
pub struct OpenOptions<'a> {
    /// Whose chain.
    pub writer: Writer,
    /// Its file.
    pub path: &'a Path,
    /// The audit key.
    pub key: &'a AuditKey,
    /// The store's checkpoints (`None`: a store that keeps none).
    pub checkpoints: Option<&'a dyn AuditCheckpoints>,
    /// When appended events are fsynced.
    pub sync: SyncPolicy,
    /// How long to wait while another process of the same writer holds the file (a CLI command
    /// waits for another; the hub does not wait).
    pub wait_for_lock: Duration,
    /// The time on the events the opening itself records.
    pub now: Timestamp,
}

/// A sentence about what opening a chain did, for stderr and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// True when it reports a cut or rewritten log (an error), false for a repair (a warning).
    pub alarm: bool,
    /// The sentence.
    pub text: String,
}

/// A chain open for appending.
#[derive(Debug)]
pub struct OpenedChain {
    /// The locked log.
    pub log: JsonlAuditStore,
    /// What was done on opening.
    pub said: Vec<Said>,
    /// The checkpoint the store held (the one the next must move from).
    pub stored: Option<StoredCheckpoint>,
}

/// Opens (or creates) a writer's chain: a torn last line is set aside, a log written before
/// chains were keyed is closed (renamed `<file>.unkeyed`) and the keyed chain starts with a
/// [`ChainNotice::AfterUnkeyed`]; then the store's checkpoint is looked for in the log, and a
/// [`ChainNotice::CheckpointNotInLog`] recorded when it is not there. Every step is in
/// [`OpenedChain::said`].
pub fn open_chain(o: &OpenOptions<'_>) -> Result<OpenedChain, ChainError> {
    let chain = o.key.chain(o.writer.as_str());
    if let Some(dir) = o.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir, "create the directory"))?;
    }
    let (mut said, mut notices) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + o.wait_for_lock;
    let options = || StoreOptions {
        sync: o.sync,
        start: Checkpoint::genesis(),
    };
    let mut log = loop {
        match JsonlAuditStore::open_with(o.path, chain.clone(), options()) {
            Ok(log) => break log,
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(StoreError::TornTail { .. }) => {
                if let Some(t) = set_aside_torn_tail(o.path)? {
                    said.push(Said {
                        alarm: false,
                        text: format!(
                            "audit log {}: line {} ({} bytes) was cut short by a crash; set aside in {}, the chain goes on from line {}",
                            o.path.display(),
                            t.line,
                            t.bytes,
                            t.moved_to.display(),
                            t.line
                        ),
                    });
                }
            }
            Err(StoreError::Unkeyed { head, .. }) => {
                if let Some(moved) = close_unkeyed(o.path)? {
                    let name = moved
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    said.push(Said {
                        alarm: false,
                        text: format!(
                            "audit log {} was written by an earlier kaigo-hub without a key (seq 1-{}); closed and renamed to {}; the keyed chain {} starts in {} with an event recording the old log's last seq and hash, which `kaigo-hub audit verify` checks it against",
                            o.path.display(),
                            head.seq,
                            moved.display(),
                            chain.id(),
                            o.path.display()
                        ),
                    });
                    notices.push(ChainNotice::AfterUnkeyed { file: name, head });
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let stored = match o.checkpoints {
        Some(c) => c
            .checkpoint_of(chain.id())
            .map_err(|source| ChainError::Store {
                chain: chain.id().to_string(),
                action: "read",
                source,
            })?,
        None => None,
    };
    if let Some(row) = stored.as_ref().filter(|r| r.seq > 0) {
        let head = log.head().clone();
        let found = if row.seq <= head.seq {
            log.find(row.seq)?.map(|e| e.hash)
        } else {
            None
        };
        if found.as_deref() != Some(row.hash.as_str()) {
            let what = match &found {
                None if row.seq > head.seq => format!("the log ends at seq {}", head.seq),
                None => format!("seq {} is not in it", row.seq),
                Some(h) => format!("seq {} has hash {}… there", row.seq, short(h)),
            };
            said.push(Said {
                alarm: true,
                text: format!(
                    "audit log {}: the store's checkpoint of chain {} (seq {}, hash {}…, recorded {}) is not in the log: {what}, so events of an earlier run were cut or rewritten. Recorded as the next event, which `kaigo-hub audit verify` reports from now on; keep the log and the store as they are for investigation",
                    o.path.display(),
                    chain.id(),
                    row.seq,
                    short(&row.hash),
                    row.at
                ),
            });
            notices.push(ChainNotice::CheckpointNotInLog {
                checkpoint: Checkpoint {
                    seq: row.seq,
                    hash: row.hash.clone(),
                },
            });
        }
    }
    for notice in notices {
        log.append(notice.draft(o.now.clone()))?;
    }
    log.sync()?;
    Ok(OpenedChain { log, said, stored })
}

/// Renames the unkeyed log at `path` to `<path>.unkeyed` (or `.unkeyed-<n>`, the first free
/// name), holding its lock, and makes the rename durable. `None` when `path` is no longer the
/// file that was locked (another process got there first): open it again.
fn close_unkeyed(path: &Path) -> Result<Option<PathBuf>, ChainError> {
    let file = File::open(path).map_err(io(path, "open"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                path: path.to_path_buf(),
            }
            .into());
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(path, "lock")(e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let locked = file.metadata().map_err(io(path, "read the metadata of"))?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => {}
            _ => return Ok(None),
        }
    }
    let mut target = PathBuf::from(format!("{}.unkeyed", path.display()));
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = PathBuf::from(format!("{}.unkeyed-{n}", path.display()));
    }
    std::fs::rename(path, &target).map_err(io(path, "rename"))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir, "fsync the directory"))?;
    }
    Ok(Some(target))
}

// ---------------------------------------------------------------------------------------------
// Recording checkpoints
// ---------------------------------------------------------------------------------------------

/// Records a chain's durable head in the store, each time moving the row on from the one it
/// recorded (or found on opening) before.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    chain: String,
    file: String,
    stored: Option<Checkpoint>,
}

impl Checkpointer {
    /// For the chain `log` belongs to, moving on from `stored` (what [`open_chain`] found).
    pub fn new(log: &JsonlAuditStore, stored: Option<&StoredCheckpoint>) -> Checkpointer {
        Checkpointer {
            chain: log.key().id().to_string(),
            file: log.path().display().to_string(),
            stored: stored.map(|r| Checkpoint {
                seq: r.seq,
                hash: r.hash.clone(),
            }),
        }
    }

    /// The chain's id.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The checkpoint last recorded (or found on opening).
    pub fn recorded(&self) -> Option<&Checkpoint> {
        self.stored.as_ref()
    }

    /// Records `head`, which must be fsynced, at time `at`; `Ok(false)` when there is nothing new.
    pub fn record(
        &mut self,
        checkpoints: &dyn AuditCheckpoints,
        head: &Checkpoint,
        at: &str,
    ) -> Result<bool, ChainError> {
        if head.is_genesis() || self.stored.as_ref() == Some(head) {
            return Ok(false);
        }
        let row = StoredCheckpoint {
            chain: self.chain.clone(),
            seq: head.seq,
            hash: head.hash.clone(),
            file: self.file.clone(),
            at: at.to_string(),
        };
        let expected = self.stored.as_ref().map(|c| (c.seq, c.hash.as_str()));
        match checkpoints.advance_checkpoint(&row, expected) {
            Ok(Advance::Stored) => {
                self.stored = Some(head.clone());
                Ok(true)
            }
            Ok(Advance::Moved(row)) => Err(ChainError::Moved {
                chain: self.chain.clone(),
                row: Box::new(row),
            }),
            Err(source) => Err(ChainError::Store {
                chain: self.chain.clone(),
                action: "record",
                source,
            }),
        }
    }
}

/// A chain appended to by one short-lived process (a CLI command): [`Appender::finish`] fsyncs
/// and records the head in the store before the command reports success.
#[derive(Debug)]
pub struct Appender {
    log: JsonlAuditStore,
    checkpointer: Checkpointer,
}

impl Appender {
    /// Opens the chain as [`open_chain`] does; the sentences say what opening did.
    pub fn open(o: &OpenOptions<'_>) -> Result<(Appender, Vec<Said>), ChainError> {
        let opened = open_chain(o)?;
        let checkpointer = Checkpointer::new(&opened.log, opened.stored.as_ref());
        Ok((
            Appender {
                log: opened.log,
                checkpointer,
            },
            opened.said,
        ))
    }

    /// Appends one event (fsynced per the chain's [`SyncPolicy`]).
    pub fn append(&mut self, draft: AuditDraft) -> Result<AuditEvent, ChainError> {
        Ok(self.log.append(draft)?)
    }

    /// The chain's id.
    pub fn chain(&self) -> &str {
        self.checkpointer.chain()
    }

    /// Fsyncs every event and records the head in `checkpoints` at time `at`.
    pub fn finish(
        mut self,
        checkpoints: Option<&dyn AuditCheckpoints>,
        at: &str,
    ) -> Result<Checkpoint, ChainError> {
        self.log.sync()?;
        let head = self.log.head().clone();
        if let Some(c) = checkpoints {
            self.checkpointer.record(c, &head, at)?;
        }
        Ok(head)
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying
// ---------------------------------------------------------------------------------------------

/// What `verify` found in one chain.
#[derive(Debug, Clone)]
pub struct ChainReport {
    /// Whose chain (`None`: a file given by name that no writer's key seals).
    pub writer: Option<Writer>,
    /// The chain's id.
    pub chain: String,
    /// The log.
    pub file: PathBuf,
    /// The verdict.
    pub verdict: Verdict,
}

/// The verdict on one chain.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// No log and no checkpoint: nothing was written yet.
    Empty,
    /// Every event sealed and linked, and the store's checkpoint in the log.
    Intact {
        /// Events checked.
        events: u64,
        /// The log's last event.
        head: Checkpoint,
        /// The store's checkpoint.
        checkpoint: StoredCheckpoint,
        /// A hub was appending while it was read.
        writing: bool,
        /// The unkeyed log this chain started after, and whether it was found and matched.
        predecessor: Option<Predecessor>,
    },
    /// The events are sealed and linked, but the store holds no checkpoint for the chain.
    Unanchored {
        /// Events checked.
        events: u64,
        /// The log's last event.
        head: Checkpoint,
    },
    /// The log is not what its writer wrote.
    Tampered(Finding),
}

/// The unkeyed log a keyed chain started after ([`ChainNotice::AfterUnkeyed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predecessor {
    /// Its file, beside the chain's.
    pub file: PathBuf,
    /// Its last event, as the keyed chain recorded it.
    pub head: Checkpoint,
    /// Found beside the log and ending exactly at `head` (`None`: not there any more).
    pub matches: Option<bool>,
}

/// How a log differs from what its writer wrote.
#[derive(Debug, Clone)]
pub enum Finding {
    /// An event was edited, removed, reordered or re-sealed (the error names the seq).
    Broken {
        /// The line where it shows.
        line: u64,
        /// The break.
        error: VerifyError,
    },
    /// The log ends before the store's checkpoint.
    CutTail {
        /// The log's last seq.
        ends_at: u64,
        /// The checkpoint.
        checkpoint: StoredCheckpoint,
    },
    /// The log holds another hash at the checkpoint's seq.
    Rewritten {
        /// The hash found there.
        found: String,
        /// The checkpoint.
        checkpoint: StoredCheckpoint,
    },
    /// The log is gone, but the store has its checkpoint.
    Missing {
        /// The checkpoint.
        checkpoint: StoredCheckpoint,
    },
    /// The writer found, when it started, that its log did not hold the store's checkpoint.
    RecordedBreak {
        /// The event that records it.
        seq: u64,
        /// Its time.
        at: String,
        /// The checkpoint the store held then.
        checkpoint: Checkpoint,
        /// How many such events the log holds.
        count: usize,
    },
    /// The first event is not sealed by this writer's key.
    NotSealed {
        /// The writer whose key does seal it, if any.
        other: Option<Writer>,
        /// It is an unkeyed log of an earlier kaigo-hub.
        unkeyed: bool,
    },
    /// The unkeyed log the chain started after does not end where the chain recorded.
    PredecessorChanged {
        /// The old log.
        file: PathBuf,
        /// What the chain recorded.
        head: Checkpoint,
        /// What is wrong with it.
        problem: String,
    },
    /// The log cannot be read as audit events (the error names the line).
    Unreadable {
        /// What is wrong.
        error: String,
    },
}

impl Verdict {
    /// Intact, or nothing written yet.
    pub fn is_good(&self) -> bool {
        matches!(self, Verdict::Empty | Verdict::Intact { .. })
    }
}

/// The verdicts on a data directory's chains, and the store's other chains.
#[derive(Debug, Clone)]
pub struct DirReport {
    /// One per chain checked.
    pub chains: Vec<ChainReport>,
    /// Checkpoints in the store of chains not checked here (other hub processes, other keys).
    pub others: Vec<StoredCheckpoint>,
    /// The store, for messages (without credentials).
    pub store: String,
}

impl DirReport {
    /// Every chain intact (or empty).
    pub fn intact(&self) -> bool {
        self.chains.iter().all(|c| c.verdict.is_good())
    }
}

/// Verifies every writer's chain in `data_dir` (the hub's log at `hub_log`) against the
/// checkpoints in `checkpoints`; `store` names the store in the verdict.
pub fn verify_dir(
    hub_log: &Path,
    key: &AuditKey,
    checkpoints: &dyn AuditCheckpoints,
    store: &str,
) -> Result<DirReport, ChainError> {
    let dir = hub_log.parent().unwrap_or(Path::new(""));
    let mut chains = Vec::new();
    for writer in Writer::ALL {
        let path = match writer {
            Writer::Hub => hub_log.to_path_buf(),
            other => other.path_in(dir),
        };
        chains.push(verify_chain(writer, &path, key, checkpoints)?);
    }
    others(chains, checkpoints, store)
}

/// Verifies one log file, as the chain of whichever writer's key seals its first event.
pub fn verify_file(
    path: &Path,
    key: &AuditKey,
    checkpoints: &dyn AuditCheckpoints,
    store: &str,
) -> Result<DirReport, ChainError> {
    let first = first_event(path);
    let writer = Writer::ALL
        .into_iter()
        .find(|w| {
            first
                .as_ref()
                .is_some_and(|e| e.compute_hash(&key.chain(w.as_str())) == e.hash)
        })
        .unwrap_or(Writer::Hub);
    let report = verify_chain(writer, path, key, checkpoints)?;
    others(vec![report], checkpoints, store)
}

fn others(
    chains: Vec<ChainReport>,
    checkpoints: &dyn AuditCheckpoints,
    store: &str,
) -> Result<DirReport, ChainError> {
    let others = checkpoints
        .every_checkpoint()
        .map_err(|source| ChainError::Store {
            chain: "*".into(),
            action: "read",
            source,
        })?
        .into_iter()
        .filter(|row| chains.iter().all(|c| c.chain != row.chain))
        .collect();
    Ok(DirReport {
        chains,
        others,
        store: store.to_string(),
    })
}

fn first_event(path: &Path) -> Option<AuditEvent> {
    read_path(path).ok()?.next()?.ok()
}

/// Verifies `writer`'s chain in the log at `path` against its checkpoint.
pub fn verify_chain(
    writer: Writer,
    path: &Path,
    key: &AuditKey,
    checkpoints: &dyn AuditCheckpoints,
) -> Result<ChainReport, ChainError> {
    let chain = key.chain(writer.as_str());
    // The checkpoint first: it is recorded only after its events are fsynced, so every event it
    // vouches for is in the file read after it, even while a hub appends.
    let row = checkpoints
        .checkpoint_of(chain.id())
        .map_err(|source| ChainError::Store {
            chain: chain.id().to_string(),
            action: "read",
            source,
        })?;
    let report = |verdict| ChainReport {
        writer: Some(writer),
        chain: chain.id().to_string(),
        file: path.to_path_buf(),
        verdict,
    };
    let writing = held_by_a_writer(path);
    let mut lines = match read_path(path) {
        Ok(lines) => lines,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(report(match row {
                Some(checkpoint) => Verdict::Tampered(Finding::Missing { checkpoint }),
                None => Verdict::Empty,
            }));
        }
        Err(e) => {
            return Ok(report(Verdict::Tampered(Finding::Unreadable {
                error: e.to_string(),
            })));
        }
    };
    if writing {
        lines = lines.partial_last_line_is_end();
    }
    let options = VerifyOptions {
        start: Checkpoint::genesis(),
        anchor: row.as_ref().map(|r| Checkpoint {
            seq: r.seq,
            hash: r.hash.clone(),
        }),
    };
    let mut notices = Vec::new();
    let outcome = verify_lines_with(lines, &chain, &options, |_, event| {
        if let Some(n) = ChainNotice::read(event) {
            notices.push((event.seq, event.at.clone(), n));
        }
    });
    let verdict = match outcome {
        Ok(done) => judge(path, done, row, writing, &notices),
        Err(StoreError::Chain { line, source, .. }) => {
            Verdict::Tampered(finding(path, key, writer, line, source, row))
        }
        Err(e) => Verdict::Tampered(Finding::Unreadable {
            error: e.to_string(),
        }),
    };
    Ok(report(verdict))
}

/// The verdict on a log whose events all verified.
fn judge(
    path: &Path,
    done: VerifyReport,
    row: Option<StoredCheckpoint>,
    writing: bool,
    notices: &[(u64, String, ChainNotice)],
) -> Verdict {
    let breaks: Vec<_> = notices
        .iter()
        .filter_map(|(seq, at, n)| match n {
            ChainNotice::CheckpointNotInLog { checkpoint } => Some((seq, at, checkpoint)),
            ChainNotice::AfterUnkeyed { .. } => None,
        })
        .collect();
    if let Some((seq, at, checkpoint)) = breaks.first() {
        return Verdict::Tampered(Finding::RecordedBreak {
            seq: **seq,
            at: at.to_string(),
            checkpoint: (*checkpoint).clone(),
            count: breaks.len(),
        });
    }
    let predecessor = notices.iter().find_map(|(_, _, n)| match n {
        ChainNotice::AfterUnkeyed { file, head } => Some(check_predecessor(path, file, head)),
        ChainNotice::CheckpointNotInLog { .. } => None,
    });
    if let Some(Predecessor {
        file,
        head,
        matches: Some(false),
    }) = &predecessor
    {
        let problem = match super::jsonl::verify_path(
            file,
            &ChainKey::unkeyed(),
            &VerifyOptions {
                start: Checkpoint::genesis(),
                anchor: Some(head.clone()),
            },
        ) {
            Ok(r) => format!(
                "it goes on to seq {} after the recorded end (events were added to it)",
                r.head.seq
            ),
            Err(e) => e.to_string(),
        };
        return Verdict::Tampered(Finding::PredecessorChanged {
            file: file.clone(),
            head: head.clone(),
            problem,
        });
    }
    match row {
        None if done.events == 0 => Verdict::Empty,
        None => Verdict::Unanchored {
            events: done.events,
            head: done.head,
        },
        Some(checkpoint) => Verdict::Intact {
            events: done.events,
            head: done.head,
            checkpoint,
            writing,
            predecessor,
        },
    }
}

fn check_predecessor(path: &Path, file: &str, head: &Checkpoint) -> Predecessor {
    let old = path.with_file_name(file);
    let matches = if old.exists() {
        let options = VerifyOptions {
            start: Checkpoint::genesis(),
            anchor: Some(head.clone()),
        };
        Some(
            super::jsonl::verify_path(&old, &ChainKey::unkeyed(), &options)
                .is_ok_and(|r| r.head == *head),
        )
    } else {
        None
    };
    Predecessor {
        file: old,
        head: head.clone(),
        matches,
    }
}

/// What a chain break found while reading means.
fn finding(
    path: &Path,
    key: &AuditKey,
    writer: Writer,
    line: u64,
    error: VerifyError,
    row: Option<StoredCheckpoint>,
) -> Finding {
    match (error, row) {
        (VerifyError::TruncatedTail { expected, .. }, Some(checkpoint)) => Finding::CutTail {
            ends_at: expected.saturating_sub(1),
            checkpoint,
        },
        (VerifyError::AnchorMismatch { found, .. }, Some(checkpoint)) => {
            Finding::Rewritten { found, checkpoint }
        }
        (error @ VerifyError::HashMismatch { seq: 1, .. }, _) => {
            // Not even the first event verifies: most likely the wrong key, or another's log.
            match first_event(path) {
                Some(first) => {
                    let other = Writer::ALL.into_iter().find(|w| {
                        *w != writer && first.compute_hash(&key.chain(w.as_str())) == first.hash
                    });
                    let unkeyed = first.compute_hash(&ChainKey::unkeyed()) == first.hash;
                    if other.is_some() || unkeyed || !sealed_later(path, key, writer) {
                        Finding::NotSealed { other, unkeyed }
                    } else {
                        Finding::Broken { line, error }
                    }
                }
                None => Finding::Broken { line, error },
            }
        }
        (error, _) => Finding::Broken { line, error },
    }
}

/// Does any event after the first verify under `writer`'s key? (Then the key is right and the
/// first event was edited.)
fn sealed_later(path: &Path, key: &AuditKey, writer: Writer) -> bool {
    let chain = key.chain(writer.as_str());
    read_path(path).is_ok_and(|lines| {
        lines
            .skip(1)
            .take(1000)
            .filter_map(Result::ok)
            .any(|e| e.compute_hash(&chain) == e.hash)
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The hash's first 13 hex digits: what `/metrics` shows as `kaigo_audit_checkpoint_head`.
fn metric_head(hash: &str) -> &str {
    hash.get(..13).unwrap_or(hash)
}

// ---------------------------------------------------------------------------------------------
// The verdict as sentences
// ---------------------------------------------------------------------------------------------

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        let chain = &self.chain;
        match &self.verdict {
            Verdict::Empty => write!(
                f,
                "{file}: no events yet, and the store holds no checkpoint of chain {chain}; nothing to verify."
            ),
            Verdict::Intact {
                events,
                head,
                checkpoint,
                writing,
                predecessor,
            } => {
                write!(
                    f,
                    "{file}: intact. Chain {chain}: {events} event{} (seq 1-{}), each sealed with the audit key and linked to the one before; the store's checkpoint (seq {}, hash {}…, recorded {}) is in it",
                    plural(*events),
                    head.seq,
                    checkpoint.seq,
                    metric_head(&checkpoint.hash),
                    checkpoint.at
                )?;
                let after = head.seq.saturating_sub(checkpoint.seq);
                if after > 0 {
                    write!(
                        f,
                        ", and the {after} event{} after it {} not checkpointed yet (a cut there would not show)",
                        plural(after),
                        if after == 1 { "is" } else { "are" }
                    )?;
                }
                f.write_str(".")?;
                if *writing {
                    f.write_str(" A hub is appending to it now.")?;
                }
                if let Some(p) = predecessor {
                    match p.matches {
                        Some(_) => write!(
                            f,
                            " It follows {}, a log an earlier kaigo-hub wrote without a key (seq 1-{}), which ends exactly where this chain recorded.",
                            p.file.display(),
                            p.head.seq
                        )?,
                        None => write!(
                            f,
                            " It follows {}, a log an earlier kaigo-hub wrote without a key (seq 1-{}), which is no longer beside it (not checked).",
                            p.file.display(),
                            p.head.seq
                        )?,
                    }
                }
                Ok(())
            }
            Verdict::Unanchored { events, head } => write!(
                f,
                "{file}: NOT VERIFIED against the store. Its {events} event{} (seq 1-{}) are sealed and linked, but the store holds no checkpoint of chain {chain}, so events cut from its end would not show. Writers record one within a second of writing and when they stop: if this is the store the hub uses, this log was not written with this audit key, or the checkpoint was removed.",
                plural(*events),
                head.seq
            ),
            Verdict::Tampered(finding) => match finding {
                Finding::Broken { line, error } => {
                    write!(f, "{file}:{line}: TAMPERED. {error}.")
                }
                Finding::CutTail {
                    ends_at,
                    checkpoint,
                } => write!(
                    f,
                    "{file}: TAMPERED. The log ends at seq {ends_at}, but the store's checkpoint of chain {chain} (recorded {}) is at seq {}: at least {} event{} cut from its end.",
                    checkpoint.at,
                    checkpoint.seq,
                    checkpoint.seq - ends_at,
                    if checkpoint.seq - ends_at == 1 {
                        " was"
                    } else {
                        "s were"
                    }
                ),
                Finding::Rewritten { found, checkpoint } => write!(
                    f,
                    "{file}: TAMPERED. Seq {} has hash {}… but the store's checkpoint of chain {chain} (recorded {}) holds {}…: the log was rewritten at or before seq {}.",
                    checkpoint.seq,
                    short(found),
                    checkpoint.at,
                    short(&checkpoint.hash),
                    checkpoint.seq
                ),
                Finding::Missing { checkpoint } => write!(
                    f,
                    "{file}: TAMPERED. The log is gone, but the store's checkpoint of chain {chain} (recorded {}) vouches for {} event{} in it.",
                    checkpoint.at,
                    checkpoint.seq,
                    plural(checkpoint.seq)
                ),
                Finding::RecordedBreak {
                    seq,
                    at,
                    checkpoint,
                    count,
                } => {
                    write!(
                        f,
                        "{file}: BROKEN. At seq {seq} ({at}) its writer recorded on starting that the store's checkpoint (seq {}, hash {}…) was not in the log: events of an earlier run were cut or rewritten before then.",
                        checkpoint.seq,
                        short(&checkpoint.hash)
                    )?;
                    if *count > 1 {
                        write!(f, " It recorded {count} such breaks in all.")?;
                    }
                    Ok(())
                }
                Finding::NotSealed { other, unkeyed } => match (other, unkeyed) {
                    (Some(w), _) => write!(
                        f,
                        "{file}: NOT THIS CHAIN. Its events are sealed by the {} writer's chain, not chain {chain}: it is the other writer's log.",
                        w.as_str()
                    ),
                    (None, true) => write!(
                        f,
                        "{file}: CANNOT BE VERIFIED. It was written by an earlier kaigo-hub without a key, so anyone who can write it could have rewritten it. `kaigo-hub serve` closes such a log and starts a keyed chain that records where it ended."
                    ),
                    (None, false) => write!(
                        f,
                        "{file}: NOT SEALED by this audit key. Its first event does not verify as chain {chain}: the audit key given (audit_key / audit_key_file) is not the one this log was written with, or every event was rewritten."
                    ),
                },
                Finding::PredecessorChanged {
                    file: old,
                    head,
                    problem,
                } => write!(
                    f,
                    "{}: TAMPERED. This unkeyed log of an earlier kaigo-hub should end at seq {} with hash {}…, as chain {chain} in {file} recorded when it replaced it, but: {problem}.",
                    old.display(),
                    head.seq,
                    short(&head.hash)
                ),
                Finding::Unreadable { error } => write!(f, "UNREADABLE. {error}."),
            },
        }
    }
}

impl std::fmt::Display for DirReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.chains {
            writeln!(f, "{c}")?;
        }
        for o in &self.others {
            writeln!(
                f,
                "The store also holds a checkpoint of chain {} (seq {}, recorded {}, file {}), not checked here: another hub process or another audit key; verify it where it was written.",
                o.chain, o.seq, o.at, o.file
            )?;
        }
        let n = self.chains.len();
        if self.intact() {
            write!(
                f,
                "Verdict: intact. {n} chain{} checked against the checkpoints in {}.",
                plural(n as u64),
                self.store
            )
        } else {
            let bad = self.chains.iter().filter(|c| !c.verdict.is_good()).count();
            write!(
                f,
                "Verdict: NOT INTACT ({bad} of {n} chain{} above). Keep the log files and the store as they are (copy them aside) for investigation; `kaigo-hub audit query` shows the events around a seq. A hub may go on running: it appends after the break, and verify keeps reporting it.",
                plural(n as u64)
            )
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Scratch, sample_draft, ts};
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn key() -> AuditKey {
        AuditKey::new(b"audit key: thirty-two bytes long").expect("long enough")
    }

    fn open<'a>(
        writer: Writer,
        path: &'a Path,
        key: &'a AuditKey,
        store: &'a SqliteStore,
    ) -> OpenedChain {
        open_chain(&OpenOptions {
            writer,
            path,
            key,
            checkpoints: Some(store),
            sync: SyncPolicy::EveryAppend,
            wait_for_lock: Duration::ZERO,
            now: ts("2026-01-01T00:00:00Z"),
        })
        .expect("opens")
    }

    /// `n` events appended by `writer` and checkpointed.
    fn write(writer: Writer, path: &Path, store: &SqliteStore, n: u64) -> Checkpoint {
        let key = key();
        let (mut a, _) = Appender::open(&OpenOptions {
            writer,
            path,
            key: &key,
            checkpoints: Some(store),
            sync: SyncPolicy::Manual,
            wait_for_lock: Duration::ZERO,
            now: ts("2026-01-01T00:00:00Z"),
        })
        .expect("opens");
        for i in 0..n {
            a.append(sample_draft(i)).expect("appends");
        }
        a.finish(Some(store), "2026-01-01T00:00:01Z")
            .expect("finishes")
    }

    #[test]
    fn a_written_and_checkpointed_chain_verifies_intact() {
        let dir = Scratch::new("intact");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        let head = write(Writer::Hub, &hub, &store, 5);
        write(Writer::Cli, &Writer::Cli.path_in(&dir.0), &store, 2);
        assert_eq!(head.seq, 5);
        let report = verify_dir(&hub, &key(), &store, "test").expect("verifies");
        assert!(report.intact(), "{report}");
        let text = report.to_string();
        assert!(text.contains("audit.jsonl: intact. Chain hub-"), "{text}");
        assert!(
            text.contains("audit-cli.jsonl: intact. Chain cli-"),
            "{text}"
        );
        assert!(
            text.ends_with("2 chains checked against the checkpoints in test."),
            "{text}"
        );
    }

    #[test]
    fn a_cut_tail_shows_against_the_checkpoint_and_is_recorded_when_the_writer_starts_again() {
        let dir = Scratch::new("cut");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        write(Writer::Hub, &hub, &store, 6);
        let text = std::fs::read_to_string(&hub).expect("log");
        let kept: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        std::fs::write(&hub, kept).expect("cut");

        let report = verify_dir(&hub, &key(), &store, "test").expect("verifies");
        assert!(!report.intact());
        assert!(
            matches!(
                &report.chains[0].verdict,
                Verdict::Tampered(Finding::CutTail { ends_at: 4, .. })
            ),
            "{report}"
        );
        assert!(
            report
                .to_string()
                .contains("The log ends at seq 4, but the store's checkpoint of chain hub-"),
            "{report}"
        );

        // The writer starts again on the cut log: it says so and records it; verify keeps
        // reporting it even after new checkpoints.
        let key = key();
        let opened = open(Writer::Hub, &hub, &key, &store);
        assert!(opened.said.iter().any(|s| s.alarm), "{:?}", opened.said);
        assert_eq!(opened.log.head().seq, 5, "the notice is seq 5");
        let mut c = Checkpointer::new(&opened.log, opened.stored.as_ref());
        c.record(&store, opened.log.head(), "2026-01-02T00:00:00Z")
            .expect("moves on from the row it found");
        drop(opened);
        let report = verify_dir(&hub, &key, &store, "test").expect("verifies");
        assert!(
            matches!(
                &report.chains[0].verdict,
                Verdict::Tampered(Finding::RecordedBreak { seq: 5, .. })
            ),
            "{report}"
        );
    }

    #[test]
    fn a_missing_log_with_a_checkpoint_is_tampered_and_without_one_is_empty() {
        let dir = Scratch::new("missing");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        let report = verify_dir(&hub, &key(), &store, "test").expect("verifies");
        assert!(report.intact(), "{report}");
        write(Writer::Hub, &hub, &store, 3);
        std::fs::remove_file(&hub).expect("removed");
        let report = verify_dir(&hub, &key(), &store, "test").expect("verifies");
        assert!(
            matches!(
                &report.chains[0].verdict,
                Verdict::Tampered(Finding::Missing { .. })
            ),
            "{report}"
        );
    }

    #[test]
    fn a_log_without_a_checkpoint_is_not_called_intact() {
        let dir = Scratch::new("unanchored");
        let written = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        write(Writer::Hub, &hub, &written, 3);
        let other = SqliteStore::in_memory().expect("another store");
        let report = verify_dir(&hub, &key(), &other, "another").expect("verifies");
        assert!(!report.intact());
        assert!(
            report
                .to_string()
                .contains("NOT VERIFIED against the store"),
            "{report}"
        );
    }

    #[test]
    fn the_wrong_key_and_the_other_writers_log_are_named_as_such() {
        let dir = Scratch::new("wrong-key");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        write(Writer::Hub, &hub, &store, 3);
        let wrong = AuditKey::new(b"some other key, thirty-two bytes").expect("long enough");
        let report = verify_dir(&hub, &wrong, &store, "test").expect("verifies");
        assert!(
            report.to_string().contains("NOT SEALED by this audit key"),
            "{report}"
        );
        // The CLI's log put where the hub's belongs.
        let cli = dir.0.join("elsewhere.jsonl");
        write(Writer::Cli, &cli, &store, 1);
        let report = verify_chain(Writer::Hub, &cli, &key(), &store).expect("verifies");
        assert!(report.to_string().contains("NOT THIS CHAIN"), "{report}");
        // Verifying the file by name finds its writer.
        let report = verify_file(&cli, &key(), &store, "test").expect("verifies");
        assert!(report.intact(), "{report}");
    }

    #[test]
    fn an_unkeyed_log_is_closed_and_the_keyed_chain_records_and_checks_its_end() {
        let dir = Scratch::new("unkeyed");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        {
            let mut old = JsonlAuditStore::open(&hub, ChainKey::unkeyed()).expect("opens");
            for i in 0..3 {
                old.append(sample_draft(i)).expect("appends");
            }
        }
        let old_head = Checkpoint::after(
            &read_path(&hub)
                .expect("reads")
                .last()
                .expect("three")
                .expect("parses"),
        );
        let key = key();
        let opened = open(Writer::Hub, &hub, &key, &store);
        assert!(
            opened.said[0].text.contains("without a key") && !opened.said[0].alarm,
            "{:?}",
            opened.said
        );
        let first = opened.log.find(1).expect("reads").expect("a notice");
        assert_eq!(
            ChainNotice::read(&first),
            Some(ChainNotice::AfterUnkeyed {
                file: "audit.jsonl.unkeyed".into(),
                head: old_head,
            })
        );
        let mut c = Checkpointer::new(&opened.log, None);
        c.record(&store, opened.log.head(), "2026-01-01T00:00:02Z")
            .expect("records");
        drop(opened);
        let report = verify_dir(&hub, &key, &store, "test").expect("verifies");
        assert!(report.intact(), "{report}");
        assert!(
            report
                .to_string()
                .contains("which ends exactly where this chain recorded"),
            "{report}"
        );
        // An event added to the old log afterwards shows.
        let mut old = JsonlAuditStore::open(dir.0.join("audit.jsonl.unkeyed"), ChainKey::unkeyed())
            .expect("opens");
        old.append(sample_draft(9)).expect("appends");
        drop(old);
        let report = verify_dir(&hub, &key, &store, "test").expect("verifies");
        assert!(
            matches!(
                &report.chains[0].verdict,
                Verdict::Tampered(Finding::PredecessorChanged { .. })
            ),
            "{report}"
        );
    }

    #[test]
    fn a_second_writer_on_one_chain_is_noticed_not_overwritten() {
        let dir = Scratch::new("two-writers");
        let store = SqliteStore::in_memory().expect("store");
        let hub = Writer::Hub.path_in(&dir.0);
        let key = key();
        let mut opened = open(Writer::Hub, &hub, &key, &store);
        let mut mine = Checkpointer::new(&opened.log, None);
        let mut theirs = Checkpointer::new(&opened.log, None);
        opened.log.append(sample_draft(0)).expect("appends");
        mine.record(&store, opened.log.head(), "t1")
            .expect("records");
        opened.log.append(sample_draft(1)).expect("appends");
        let err = theirs
            .record(&store, opened.log.head(), "t2")
            .expect_err("moved");
        assert!(
            err.to_string()
                .contains("another process writes the same chain"),
            "{err}"
        );
        assert_eq!(
            store
                .checkpoint_of(mine.chain())
                .expect("reads")
                .map(|r| r.seq),
            Some(1)
        );
    }

    #[test]
    fn notices_round_trip_through_their_event() {
        let key = key();
        for notice in [
            ChainNotice::AfterUnkeyed {
                file: "audit.jsonl.unkeyed-2".into(),
                head: Checkpoint {
                    seq: 42,
                    hash: "ab".repeat(32),
                },
            },
            ChainNotice::CheckpointNotInLog {
                checkpoint: Checkpoint {
                    seq: 7,
                    hash: "cd".repeat(32),
                },
            },
        ] {
            let event = Checkpoint::genesis()
                .seal(notice.draft(ts("2026-01-01T00:00:00Z")), &key.chain("hub"))
                .expect("fits a reason");
            assert_eq!(ChainNotice::read(&event), Some(notice));
        }
        let event = Checkpoint::genesis()
            .seal(sample_draft(0), &key.chain("hub"))
            .expect("valid");
        assert_eq!(ChainNotice::read(&event), None);
    }
}
