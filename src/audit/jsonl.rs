//! The audit log as an append-only JSON Lines file: one sealed [`AuditEvent`] per line, oldest first.
//!
//! In: drafts to append ([`JsonlAuditStore::append`]); a path to read or verify. Out: the sealed
//! events, streamed back with their line numbers ([`AuditLines`]), a [`VerifyReport`], or a
//! [`StoreError`] that names the file, the line and, for chain breaks, the seq.
//!
//! Opening a file reads only its tail to continue the chain, and refuses to append after a last
//! line that does not parse or is not sealed by the chain's key ([`super::ChainKey`]); a log
//! written before chains were keyed is told apart ([`StoreError::Unkeyed`]), so that its owner
//! can close it and start a keyed chain after it (`super::chains`). A crash in the middle of a
//! write leaves a last line without its newline (a *torn tail*): that is reported, with its line and byte offset,
//! by [`JsonlAuditStore::open`] and by [`read_path`]; it is never dropped silently. The event in it
//! was never acknowledged (an append returns only after the line is written and, by default,
//! fsynced), so [`set_aside_torn_tail`] may move those bytes to a `.torn-<offset>` file beside the
//! log, on an operator's explicit request, after which the chain continues.
//!
//! One process appends to a file at a time (an exclusive advisory lock is taken on open). Lines hold
//! what [`AuditEvent`] holds and nothing more: never a message body, never a name, birth date or
//! raw 被保険者番号.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use super::{
    AuditDraft, AuditEvent, AuditFilter, ChainKey, Checkpoint, DraftError, Verifier, VerifyError,
    VerifyOptions, VerifyReport,
};

/// Longest line accepted when reading, in bytes. A sealed event is at most about 1.5 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// When appended lines are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync after every append: an `Ok` from `append` means the event survives a power cut.
    #[default]
    EveryAppend,
    /// fsync after every N appends; call [`JsonlAuditStore::sync`] before acknowledging the input
    /// whose events must be durable. Faster; a power cut may lose up to N-1 unsynced events.
    EveryN(NonZeroU32),
    /// fsync only on [`JsonlAuditStore::sync`] (and, best effort, on drop).
    Manual,
}

/// How to open a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// When to fsync.
    pub sync: SyncPolicy,
    /// Where the chain starts if the file is empty: genesis, or the last event of the previous
    /// (rotated) file. Ignored for a non-empty file, whose last line decides.
    pub start: Checkpoint,
}

/// A torn tail that [`set_aside_torn_tail`] moved out of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Its line number in the log.
    pub line: u64,
    /// Its byte offset in the log (the log's new length).
    pub offset: u64,
    /// How many bytes it had.
    pub bytes: u64,
    /// Where its bytes are now.
    pub moved_to: PathBuf,
}

/// Something wrong with an audit file, with where: path, line, and for chain breaks the seq.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused.
    #[error("{}{}: could not {action}: {source}", .path.display(), line_suffix(*.line))]
    Io {
        /// The file.
        path: PathBuf,
        /// The line being read, if reading.
        line: Option<u64>,
        /// What was being done (`open`, `append to`, `fsync`, …).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Another process (or handle) is appending to this file.
    #[error(
        "{}: another kaigo-hub process holds this audit log open for appending; one writer per file",
        .path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The last line has no newline: a write was interrupted.
    #[error(
        "{}:{line}: the last line ({bytes} bytes from byte {offset}) has no newline: a write was interrupted (crash or full disk), so the event in it was never acknowledged. Nothing was changed; to continue the log, set those bytes aside with `kaigo-hub audit set-aside-torn-tail` (they are kept in a .torn-{offset} file)",
        .path.display()
    )]
    TornTail {
        /// The file.
        path: PathBuf,
        /// The torn line's number.
        line: u64,
        /// Its byte offset.
        offset: u64,
        /// Its length.
        bytes: u64,
    },
    /// A line is not an audit event.
    #[error("{}:{line}: not an audit event: {source}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The JSON error, with its column.
        source: serde_json::Error,
    },
    /// A line is longer than any event can be.
    #[error(
        "{}:{line}: line is longer than {max} bytes, which no audit event is; the file is damaged or not an audit log",
        .path.display()
    )]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The limit ([`MAX_LINE_BYTES`]).
        max: usize,
    },
    /// The chain is broken at this line.
    #[error("{}:{line}: {source}", .path.display())]
    Chain {
        /// The file.
        path: PathBuf,
        /// The line where the break shows.
        line: u64,
        /// Which break, naming the seq.
        source: VerifyError,
    },
    /// The draft cannot become an event.
    #[error("{}: {source}", .path.display())]
    Draft {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: DraftError,
    },
    /// The last line is not sealed by this chain's key (and not by the unkeyed chain either).
    #[error(
        "{}:{line}: the last event (seq {seq}) is not sealed by the key of audit chain {chain}: either the audit key (audit_key / audit_key_file) is not the one this log was written with, or the line was edited. Nothing was appended; `kaigo-hub audit verify` tells which",
        .path.display()
    )]
    NotSealed {
        /// The file.
        path: PathBuf,
        /// The last line.
        line: u64,
        /// Its seq.
        seq: u64,
        /// The chain whose key was tried.
        chain: String,
    },
    /// The log was written by a kaigo-hub before audit chains were keyed.
    #[error(
        "{}: written by a kaigo-hub before audit chains were keyed (unkeyed SHA-256 chain, last seq {}); `kaigo-hub serve` closes such a log and starts a keyed chain after it",
        .path.display(), .head.seq
    )]
    Unkeyed {
        /// The file.
        path: PathBuf,
        /// Its last event.
        head: Checkpoint,
    },
    /// An earlier write or fsync failed and could not be undone, so the file's end is unknown.
    #[error(
        "{}: an earlier write or fsync failed, so this handle no longer appends; reopen the log (which checks its tail)",
        .path.display()
    )]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

fn line_suffix(line: Option<u64>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn io_error(
    path: &Path,
    line: Option<u64>,
    action: &'static str,
) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        path,
        line,
        action,
        source,
    }
}

/// An open, locked audit log that appends.
#[derive(Debug)]
pub struct JsonlAuditStore {
    path: PathBuf,
    file: File,
    key: ChainKey,
    head: Checkpoint,
    /// Bytes known to hold whole lines; the file's length unless a write just failed.
    len: u64,
    sync: SyncPolicy,
    unsynced: u32,
    poisoned: bool,
}

impl JsonlAuditStore {
    /// Open (or create) the log at `path` of the chain `key` seals, fsync after every append,
    /// chain from genesis if empty.
    pub fn open(path: impl AsRef<Path>, key: ChainKey) -> Result<Self, StoreError> {
        Self::open_with(path, key, StoreOptions::default())
    }

    /// Open (or create) the log at `path` of the chain `key` seals, with `options`.
    pub fn open_with(
        path: impl AsRef<Path>,
        key: ChainKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(&path, None, "open"))?;
        lock(&file, &path)?;
        let len = file
            .metadata()
            .map_err(io_error(&path, None, "read the length of"))?
            .len();
        let head = if len == 0 {
            sync_parent_dir(&path)?;
            options.start
        } else {
            Checkpoint::after(&read_tail(&file, len, &path, &key)?)
        };
        Ok(JsonlAuditStore {
            path,
            file,
            key,
            head,
            len,
            sync: options.sync,
            unsynced: 0,
            poisoned: false,
        })
    }

    /// Seal `draft` as the next event, write it as one line and (per the [`SyncPolicy`]) fsync.
    ///
    /// On `Err` the event may or may not be on disk: treat the hop as not audited and retry it
    /// (the log may then hold the event twice, each with its own seq; it never holds a gap).
    pub fn append(&mut self, draft: AuditDraft) -> Result<AuditEvent, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        let event = self
            .head
            .seal(draft, &self.key)
            .map_err(|source| StoreError::Draft {
                path: self.path.clone(),
                source,
            })?;
        let mut line = serde_json::to_vec(&event)
            .expect("a struct of strings, options and an integer always serialises");
        line.push(b'\n');
        if let Err(source) = (&self.file).write_all(&line) {
            // Take back a partly written line so the file still ends on a whole one.
            if self.file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(io_error(&self.path, None, "append to")(source));
        }
        self.len += line.len() as u64;
        self.head = Checkpoint::after(&event);
        self.appended(1)?;
        Ok(event)
    }

    /// Counts `n` lines just written and fsyncs when the [`SyncPolicy`] says it is time.
    fn appended(&mut self, n: u32) -> Result<(), StoreError> {
        self.unsynced = self.unsynced.saturating_add(n);
        let due = match self.sync {
            SyncPolicy::EveryAppend => true,
            SyncPolicy::EveryN(k) => self.unsynced >= k.get(),
            SyncPolicy::Manual => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// [`JsonlAuditStore::append`] for several events with one write: sealed in order, written
    /// as one run of lines, synced per the [`SyncPolicy`] once at the end. A draft that cannot be
    /// sealed is left out and its error returned in the list; the rest go in. All or none on
    /// disk: on `Err` the file is cut back to where it was and the chain does not move.
    pub fn append_batch(
        &mut self,
        drafts: impl IntoIterator<Item = AuditDraft>,
    ) -> Result<Vec<StoreError>, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        let (mut head, mut buf, mut n, mut refused) = (self.head.clone(), Vec::new(), 0u32, vec![]);
        for draft in drafts {
            let event = match head.seal(draft, &self.key) {
                Ok(e) => e,
                Err(source) => {
                    refused.push(StoreError::Draft {
                        path: self.path.clone(),
                        source,
                    });
                    continue;
                }
            };
            serde_json::to_writer(&mut buf, &event)
                .expect("a struct of strings, options and an integer always serialises");
            buf.push(b'\n');
            head = Checkpoint::after(&event);
            n += 1;
        }
        if n == 0 {
            return Ok(refused);
        }
        if let Err(source) = (&self.file).write_all(&buf) {
            if self.file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(io_error(&self.path, None, "append to")(source));
        }
        self.len += buf.len() as u64;
        self.head = head;
        self.appended(n)?;
        Ok(refused)
    }

    /// Force every appended line to disk. After a failed fsync the kernel may have dropped the
    /// data, so this handle stops appending ([`StoreError::Poisoned`]); reopen to go on.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.unsynced == 0 {
            return Ok(());
        }
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io_error(&self.path, None, "fsync")(source));
        }
        self.unsynced = 0;
        Ok(())
    }

    /// How many appended events are not yet fsynced.
    pub fn unsynced(&self) -> u32 {
        self.unsynced
    }

    /// The point the next event will follow.
    pub fn head(&self) -> &Checkpoint {
        &self.head
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chain's key.
    pub fn key(&self) -> &ChainKey {
        &self.key
    }

    /// The event with this `seq`, looked for from the end of the file backwards (reading only the
    /// lines after it): what a writer compares with the checkpoint the store holds. `None` when
    /// no whole, parseable line from the end back to it has that seq.
    pub fn find(&self, seq: u64) -> Result<Option<AuditEvent>, StoreError> {
        find_backwards(&self.file, self.len, seq).map_err(io_error(&self.path, None, "read"))
    }

    /// Stream every event written so far, oldest first (only whole lines this handle knows of).
    pub fn read_all(&self) -> Result<AuditLines<BufReader<io::Take<File>>>, StoreError> {
        let file = File::open(&self.path).map_err(io_error(&self.path, None, "open"))?;
        Ok(AuditLines::new(
            self.path.clone(),
            BufReader::new(file.take(self.len)),
        ))
    }

    /// Verify the whole file against `options`.
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport, StoreError> {
        verify_lines(self.read_all()?, &self.key, options)
    }

    /// Stream the events that match `filter`; errors pass through and end the stream.
    pub fn query<'f>(
        &self,
        filter: &'f AuditFilter,
    ) -> Result<impl Iterator<Item = Result<AuditEvent, StoreError>> + 'f, StoreError> {
        Ok(self
            .read_all()?
            .filter(move |item| item.as_ref().map_or(true, |e| filter.matches(e))))
    }
}

impl Drop for JsonlAuditStore {
    fn drop(&mut self) {
        if self.unsynced > 0 {
            // Best effort: call `sync` before dropping to see its error.
            let _ = self.file.sync_data();
        }
    }
}

fn lock(file: &File, path: &Path) -> Result<(), StoreError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(io_error(path, None, "lock")(source)),
    }
}

/// Make a new file's directory entry durable, so a crash does not lose the whole log.
fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(path, None, "fsync the directory of"))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Read `len` bytes' worth of file backwards to its last line, which must be whole, parse and
/// be sealed by `key` (or by the unkeyed chain: [`StoreError::Unkeyed`]).
fn read_tail(file: &File, len: u64, path: &Path, key: &ChainKey) -> Result<AuditEvent, StoreError> {
    let io = |action| io_error(path, None, action);
    let mut last = [0u8; 1];
    read_at(file, len - 1, &mut last).map_err(io("read the tail of"))?;
    if last[0] != b'\n' {
        let start = match rfind_newline(file, len, None).map_err(io("read the tail of"))? {
            Backwards::Found(at) => at + 1,
            Backwards::Start | Backwards::Limit => 0,
        };
        let line = count_newlines(file, start).map_err(io("count the lines of"))? + 1;
        return Err(StoreError::TornTail {
            path: path.to_path_buf(),
            line,
            offset: start,
            bytes: len - start,
        });
    }
    let start = match rfind_newline(file, len - 1, Some(MAX_LINE_BYTES as u64))
        .map_err(io("read the tail of"))?
    {
        Backwards::Found(at) => at + 1,
        Backwards::Start => 0,
        Backwards::Limit => {
            let line = count_newlines(file, len - 1).map_err(io("count the lines of"))? + 1;
            return Err(StoreError::LineTooLong {
                path: path.to_path_buf(),
                line,
                max: MAX_LINE_BYTES,
            });
        }
    };
    let mut bytes = vec![0u8; usize::try_from(len - 1 - start).unwrap_or(0)];
    read_at(file, start, &mut bytes).map_err(io("read the tail of"))?;
    let line_number = || count_newlines(file, start).map(|n| n + 1);
    let event = match serde_json::from_slice::<AuditEvent>(&bytes) {
        Ok(event) => event,
        Err(source) => {
            return Err(StoreError::Parse {
                path: path.to_path_buf(),
                line: line_number().map_err(io("count the lines of"))?,
                source,
            });
        }
    };
    if event.compute_hash(key) != event.hash {
        if key.is_keyed() && event.compute_hash(&ChainKey::unkeyed()) == event.hash {
            return Err(StoreError::Unkeyed {
                path: path.to_path_buf(),
                head: Checkpoint::after(&event),
            });
        }
        return Err(StoreError::NotSealed {
            path: path.to_path_buf(),
            line: line_number().map_err(io("count the lines of"))?,
            seq: event.seq,
            chain: key.id().to_string(),
        });
    }
    Ok(event)
}

fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

enum Backwards {
    /// A newline at this offset.
    Found(u64),
    /// No newline before the start of the file.
    Start,
    /// No newline within the limit.
    Limit,
}

/// The offset of the last `\n` before `end`, looking back at most `limit` bytes.
fn rfind_newline(file: &File, end: u64, limit: Option<u64>) -> io::Result<Backwards> {
    const CHUNK: u64 = 8 * 1024;
    let floor = limit.map_or(0, |l| end.saturating_sub(l));
    let mut hi = end;
    let mut buf = vec![0u8; CHUNK as usize];
    while hi > floor {
        let lo = hi.saturating_sub(CHUNK).max(floor);
        let chunk = &mut buf[..usize::try_from(hi - lo).unwrap_or(0)];
        read_at(file, lo, chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(Backwards::Found(lo + i as u64));
        }
        hi = lo;
    }
    Ok(if floor == 0 {
        Backwards::Start
    } else {
        Backwards::Limit
    })
}

/// How many `\n` lie before `end`: the line number of the line at `end`, less one. Used only to
/// name a line in an error, so the happy path never reads the whole file.
fn count_newlines(file: &File, end: u64) -> io::Result<u64> {
    let mut f = file;
    f.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(f.take(end));
    let mut count = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Events read back from a log, oldest first, each error naming its line. Stops after an error.
#[derive(Debug)]
pub struct AuditLines<R> {
    path: PathBuf,
    reader: R,
    line: u64,
    offset: u64,
    done: bool,
    partial_is_end: bool,
}

/// Stream the events of the log at `path`, as it is now; a torn last line is an error.
pub fn read_path(path: impl AsRef<Path>) -> Result<AuditLines<BufReader<File>>, StoreError> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(io_error(&path, None, "open"))?;
    Ok(AuditLines::new(path, BufReader::new(file)))
}

/// Verify the log at `path` of the chain `key` seals against `options` (genesis and no anchor
/// by default).
pub fn verify_path(
    path: impl AsRef<Path>,
    key: &ChainKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, StoreError> {
    verify_lines(read_path(path)?, key, options)
}

/// [`verify_path`] over lines already opened; `on_event` sees each event that verified.
pub fn verify_lines_with<R: BufRead>(
    mut lines: AuditLines<R>,
    key: &ChainKey,
    options: &VerifyOptions,
    mut on_event: impl FnMut(u64, &AuditEvent),
) -> Result<VerifyReport, StoreError> {
    let mut verifier = Verifier::new(key.clone(), options.clone());
    let mut last_line = 0;
    let path = lines.path.clone();
    let chain = |line, source| StoreError::Chain {
        path: path.clone(),
        line,
        source,
    };
    while let Some(item) = lines.next_event() {
        let (line, event) = item?;
        last_line = line;
        if let Err(err) = verifier.push(&event) {
            // A hash mismatch is only reported once its successor is seen: it belongs one line up.
            let at = match err {
                VerifyError::HashMismatch { .. } => line - 1,
                _ => line,
            };
            return Err(chain(at, err));
        }
        on_event(line, &event);
    }
    verifier.finish().map_err(|err| chain(last_line, err))
}

fn verify_lines<R: BufRead>(
    lines: AuditLines<R>,
    key: &ChainKey,
    options: &VerifyOptions,
) -> Result<VerifyReport, StoreError> {
    verify_lines_with(lines, key, options, |_, _| {})
}

/// Is another process appending to the log at `path` now (holding its lock)? A reader then
/// takes a last line without its newline for an append in progress, not a torn tail.
pub fn held_by_a_writer(path: impl AsRef<Path>) -> bool {
    let Ok(file) = File::open(path.as_ref()) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// The event with `seq` among the whole lines of `file[..len]`, read backwards from the end a
/// chunk at a time; stops at the first line with a smaller seq. A line that does not parse ends
/// the search (`None`): the caller then verifies the file forwards, which names it.
fn find_backwards(file: &File, len: u64, seq: u64) -> io::Result<Option<AuditEvent>> {
    const CHUNK: u64 = 64 * 1024;
    let (mut hi, mut carry) = (len, Vec::new());
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        let mut buf = vec![0u8; usize::try_from(hi - lo).unwrap_or(0)];
        read_at(file, lo, &mut buf)?;
        buf.extend_from_slice(&carry);
        let mut pieces: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        // The first piece may be the end of a line that began before `lo`.
        let first = if lo > 0 { pieces.remove(0) } else { &[][..] };
        for line in pieces.iter().rev().filter(|l| !l.is_empty()) {
            let Ok(event) = serde_json::from_slice::<AuditEvent>(line) else {
                return Ok(None);
            };
            match event.seq.cmp(&seq) {
                std::cmp::Ordering::Equal => return Ok(Some(event)),
                std::cmp::Ordering::Less => return Ok(None),
                std::cmp::Ordering::Greater => {}
            }
        }
        if first.len() > MAX_LINE_BYTES {
            return Ok(None);
        }
        carry = first.to_vec();
        hi = lo;
    }
    Ok(None)
}

enum LineRead {
    Eof,
    Line { bytes: Vec<u8>, terminated: bool },
    TooLong,
}

impl<R: BufRead> AuditLines<R> {
    fn new(path: PathBuf, reader: R) -> Self {
        AuditLines {
            path,
            reader,
            line: 0,
            offset: 0,
            done: false,
            partial_is_end: false,
        }
    }

    /// Take a last line without its newline for an append in progress (a writer holds the log,
    /// [`held_by_a_writer`]): the events end before it, instead of a [`StoreError::TornTail`].
    pub fn partial_last_line_is_end(mut self) -> Self {
        self.partial_is_end = true;
        self
    }

    /// The number of the line last read (0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next event with its line number.
    pub fn next_event(&mut self) -> Option<Result<(u64, AuditEvent), StoreError>> {
        if self.done {
            return None;
        }
        let start = self.offset;
        let read = self.read_line();
        let line = self.line + 1;
        let path = || self.path.clone();
        let result = match read {
            Err(source) => Err(io_error(&self.path, Some(line), "read")(source)),
            Ok(LineRead::Eof) => {
                self.done = true;
                return None;
            }
            Ok(LineRead::TooLong) => Err(StoreError::LineTooLong {
                path: path(),
                line,
                max: MAX_LINE_BYTES,
            }),
            Ok(LineRead::Line {
                terminated: false, ..
            }) if self.partial_is_end => {
                self.done = true;
                return None;
            }
            Ok(LineRead::Line {
                bytes,
                terminated: false,
            }) => Err(StoreError::TornTail {
                path: path(),
                line,
                offset: start,
                bytes: bytes.len() as u64,
            }),
            Ok(LineRead::Line { bytes, .. }) => {
                self.offset += bytes.len() as u64 + 1;
                serde_json::from_slice::<AuditEvent>(&bytes)
                    .map(|event| (line, event))
                    .map_err(|source| StoreError::Parse {
                        path: path(),
                        line,
                        source,
                    })
            }
        };
        self.line = line;
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }

    /// One line without its `\n`, never more than [`MAX_LINE_BYTES`] held in memory.
    fn read_line(&mut self) -> io::Result<LineRead> {
        let mut bytes = Vec::new();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(if bytes.is_empty() {
                    LineRead::Eof
                } else {
                    LineRead::Line {
                        bytes,
                        terminated: false,
                    }
                });
            }
            let (take, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if bytes.len() + take > MAX_LINE_BYTES {
                return Ok(LineRead::TooLong);
            }
            bytes.extend_from_slice(&buf[..take]);
            self.reader.consume(take + usize::from(found));
            if found {
                return Ok(LineRead::Line {
                    bytes,
                    terminated: true,
                });
            }
        }
    }
}

impl<R: BufRead> Iterator for AuditLines<R> {
    type Item = Result<AuditEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().map(|item| item.map(|(_, event)| event))
    }
}

/// Move a torn last line (see the module documentation) out of the log at `path` into
/// `<path>.torn-<offset>`, fsynced, then cut the log back to its last whole line. Returns what was
/// moved, or `None` if the log ends on a whole line. Refuses while a store holds the log open.
pub fn set_aside_torn_tail(path: impl AsRef<Path>) -> Result<Option<TornTail>, StoreError> {
    let path = path.as_ref();
    let io = |action| io_error(path, None, action);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    lock(&file, path)?;
    let len = file.metadata().map_err(io("read the length of"))?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    read_at(&file, len - 1, &mut last).map_err(io("read the tail of"))?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let offset = match rfind_newline(&file, len, None).map_err(io("read the tail of"))? {
        Backwards::Found(at) => at + 1,
        Backwards::Start | Backwards::Limit => 0,
    };
    let line = count_newlines(&file, offset).map_err(io("count the lines of"))? + 1;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".torn-{offset}"));
    let moved_to = PathBuf::from(name);
    let mut sidecar = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&moved_to)
        .map_err(io_error(&moved_to, None, "create"))?;
    let mut reader = &file;
    reader.seek(SeekFrom::Start(offset)).map_err(io("read"))?;
    io::copy(&mut reader.take(len - offset), &mut sidecar)
        .map_err(io_error(&moved_to, None, "write"))?;
    sidecar
        .sync_all()
        .map_err(io_error(&moved_to, None, "fsync"))?;
    sync_parent_dir(&moved_to)?;
    file.set_len(offset).map_err(io("cut the torn tail from"))?;
    file.sync_all().map_err(io("fsync"))?;
    Ok(Some(TornTail {
        line,
        offset,
        bytes: len - offset,
        moved_to,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Scratch, chain_key, sample_draft, ts};
    use super::super::{AuditChain, Hop};
    use super::*;

    fn append_n(store: &mut JsonlAuditStore, from: u64, n: u64) -> Vec<AuditEvent> {
        (from..from + n)
            .map(|i| store.append(sample_draft(i)).expect("append succeeds"))
            .collect()
    }

    fn read_events(path: &Path) -> Vec<AuditEvent> {
        read_path(path)
            .expect("opens")
            .collect::<Result<_, _>>()
            .expect("all lines parse")
    }

    fn write_lines(path: &Path, events: &[AuditEvent]) {
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).expect("serialises") + "\n")
            .collect();
        std::fs::write(path, text).expect("writes");
    }

    #[test]
    fn appended_events_read_back_identical_and_verify() {
        let dir = Scratch::new("round-trip");
        let path = dir.file("audit.jsonl");
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
        let written = append_n(&mut store, 0, 5);
        let read: Vec<AuditEvent> = store
            .read_all()
            .expect("opens")
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(read, written);
        let report = store.verify(&VerifyOptions::default()).expect("verifies");
        assert_eq!(report.events, 5);
        assert_eq!(&report.head, store.head());
        let text = std::fs::read_to_string(&path).expect("reads");
        assert_eq!(text.lines().count(), 5);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_batch_is_one_run_of_lines_that_continues_the_chain_and_leaves_out_a_bad_draft() {
        let dir = Scratch::new("batch");
        let path = dir.file("audit.jsonl");
        let manual = StoreOptions {
            sync: SyncPolicy::Manual,
            ..StoreOptions::default()
        };
        let mut store = JsonlAuditStore::open_with(&path, chain_key(), manual).expect("opens");
        let first = append_n(&mut store, 0, 2);
        let bad = sample_draft(9).party("");
        let refused = store
            .append_batch([sample_draft(2), bad, sample_draft(3), sample_draft(4)])
            .expect("the batch is written");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].to_string().contains("party"), "{}", refused[0]);
        assert_eq!(store.unsynced(), 5);
        let events = read_events(&path);
        assert_eq!(events.len(), 5);
        assert_eq!(&events[..2], &first[..]);
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(events[2].prev_hash, first[1].hash);
        assert_eq!(store.head(), &Checkpoint::after(&events[4]));
        // Written one by one, the same drafts make the same chain.
        let other = dir.file("one-by-one.jsonl");
        let mut single = JsonlAuditStore::open(&other, chain_key()).expect("opens");
        append_n(&mut single, 0, 5);
        assert_eq!(read_events(&other), events);
        assert!(
            store
                .append_batch(Vec::new())
                .expect("nothing to write")
                .is_empty()
        );
        assert_eq!(
            verify_path(&path, &chain_key(), &VerifyOptions::default())
                .expect("verifies")
                .events,
            5
        );
    }

    #[test]
    fn reopen_continues_the_chain() {
        let dir = Scratch::new("reopen");
        let path = dir.file("audit.jsonl");
        let first = {
            let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
            append_n(&mut store, 0, 3)
        };
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("reopens");
        assert_eq!(store.head(), &Checkpoint::after(&first[2]));
        let next = store.append(sample_draft(3)).expect("appends");
        assert_eq!(next.seq, 4);
        assert_eq!(next.prev_hash, first[2].hash);
        drop(store);
        let report = verify_path(&path, &chain_key(), &VerifyOptions::default()).expect("verifies");
        assert_eq!(report.events, 4);
    }

    #[test]
    fn torn_last_line_is_reported_on_open_and_read_then_set_aside_on_request() {
        let dir = Scratch::new("torn");
        let path = dir.file("audit.jsonl");
        let events = sample_chain_events(3);
        write_lines(&path, &events);
        let whole = std::fs::metadata(&path).expect("exists").len();
        let next = AuditChain::resume(chain_key(), Checkpoint::after(&events[2]))
            .append(sample_draft(3))
            .expect("valid");
        let line = serde_json::to_string(&next).expect("serialises");
        let torn = &line.as_bytes()[..line.len() / 2];
        let mut file = OpenOptions::new().append(true).open(&path).expect("opens");
        file.write_all(torn).expect("writes");
        drop(file);

        let err = JsonlAuditStore::open(&path, chain_key()).expect_err("torn tail refuses open");
        match &err {
            StoreError::TornTail {
                line,
                offset,
                bytes,
                ..
            } => {
                assert_eq!((*line, *offset, *bytes), (4, whole, torn.len() as u64));
            }
            other => panic!("expected a torn tail, got {other}"),
        }
        assert!(err.to_string().contains("audit.jsonl:4: "), "{err}");
        let mut lines = read_path(&path).expect("opens");
        for _ in 0..3 {
            assert!(matches!(lines.next(), Some(Ok(_))));
        }
        assert!(matches!(
            lines.next(),
            Some(Err(StoreError::TornTail { line: 4, .. }))
        ));
        assert!(lines.next().is_none());
        assert!(matches!(
            verify_path(&path, &chain_key(), &VerifyOptions::default()),
            Err(StoreError::TornTail { line: 4, .. })
        ));

        let moved = set_aside_torn_tail(&path)
            .expect("sets aside")
            .expect("there was a torn tail");
        assert_eq!((moved.line, moved.offset), (4, whole));
        assert_eq!(std::fs::read(&moved.moved_to).expect("kept"), torn);
        assert_eq!(set_aside_torn_tail(&path).expect("nothing left"), None);
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens after set-aside");
        assert_eq!(store.append(sample_draft(3)).expect("appends").seq, 4);
        assert_eq!(
            store
                .verify(&VerifyOptions::default())
                .map(|r| r.events)
                .ok(),
            Some(4)
        );
    }

    #[test]
    fn torn_first_line_is_reported_as_line_one() {
        let dir = Scratch::new("torn-first");
        let path = dir.file("audit.jsonl");
        std::fs::write(&path, b"{\"seq\":1,\"at\":").expect("writes");
        assert!(matches!(
            JsonlAuditStore::open(&path, chain_key()),
            Err(StoreError::TornTail {
                line: 1,
                offset: 0,
                ..
            })
        ));
    }

    #[test]
    fn edited_line_is_reported_with_its_line_and_seq() {
        let dir = Scratch::new("edited");
        let path = dir.file("audit.jsonl");
        let mut events = sample_chain_events(4);
        events[1].envelope_id = Some("env-forged".into());
        write_lines(&path, &events);
        let err =
            verify_path(&path, &chain_key(), &VerifyOptions::default()).expect_err("edit found");
        match &err {
            StoreError::Chain { line, source, .. } => {
                assert_eq!((*line, source.seq()), (2, 2));
            }
            other => panic!("expected a chain error, got {other}"),
        }
        assert!(err.to_string().contains("audit.jsonl:2: seq 2: "), "{err}");
    }

    #[test]
    fn edited_last_line_refuses_open() {
        let dir = Scratch::new("edited-tail");
        let path = dir.file("audit.jsonl");
        let mut events = sample_chain_events(3);
        events[2].decision = Some("permit".into());
        write_lines(&path, &events);
        let err = JsonlAuditStore::open(&path, chain_key()).expect_err("broken tail refuses open");
        assert!(
            matches!(
                &err,
                StoreError::NotSealed {
                    line: 3,
                    seq: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("audit_key"), "{err}");
    }

    #[test]
    fn unparseable_line_names_its_line() {
        let dir = Scratch::new("unparseable");
        let path = dir.file("audit.jsonl");
        let events = sample_chain_events(2);
        write_lines(&path, &events);
        let mut text = std::fs::read_to_string(&path).expect("reads");
        text = text.replacen("\"hop\":", "\"note\":\"x\",\"hop\":", 1);
        std::fs::write(&path, text).expect("writes");
        let err =
            verify_path(&path, &chain_key(), &VerifyOptions::default()).expect_err("bad line");
        assert!(matches!(err, StoreError::Parse { line: 1, .. }), "{err}");
        assert!(err.to_string().contains("unknown field `note`"), "{err}");
    }

    #[test]
    fn overlong_line_is_refused() {
        let dir = Scratch::new("overlong");
        let path = dir.file("audit.jsonl");
        let events = sample_chain_events(1);
        write_lines(&path, &events);
        let mut file = OpenOptions::new().append(true).open(&path).expect("opens");
        file.write_all(&vec![b' '; MAX_LINE_BYTES + 1])
            .and_then(|()| file.write_all(b"\n"))
            .expect("writes");
        drop(file);
        assert!(matches!(
            verify_path(&path, &chain_key(), &VerifyOptions::default()),
            Err(StoreError::LineTooLong { line: 2, .. })
        ));
        assert!(matches!(
            JsonlAuditStore::open(&path, chain_key()),
            Err(StoreError::LineTooLong { line: 2, .. })
        ));
    }

    #[test]
    fn second_writer_is_refused_while_the_first_is_open() {
        let dir = Scratch::new("locked");
        let path = dir.file("audit.jsonl");
        let store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
        assert!(matches!(
            JsonlAuditStore::open(&path, chain_key()),
            Err(StoreError::Locked { .. })
        ));
        drop(store);
        assert!(JsonlAuditStore::open(&path, chain_key()).is_ok());
    }

    #[test]
    fn batched_sync_counts_unsynced_events() {
        let dir = Scratch::new("batched");
        let path = dir.file("audit.jsonl");
        let options = StoreOptions {
            sync: SyncPolicy::EveryN(NonZeroU32::new(3).expect("non-zero")),
            start: Checkpoint::genesis(),
        };
        let mut store = JsonlAuditStore::open_with(&path, chain_key(), options).expect("opens");
        append_n(&mut store, 0, 2);
        assert_eq!(store.unsynced(), 2);
        append_n(&mut store, 2, 1);
        assert_eq!(store.unsynced(), 0);
        append_n(&mut store, 3, 1);
        store.sync().expect("syncs");
        assert_eq!(store.unsynced(), 0);
    }

    #[test]
    fn rotated_file_continues_from_the_previous_files_checkpoint() {
        let dir = Scratch::new("rotated");
        let (old, new) = (dir.file("audit-1.jsonl"), dir.file("audit-2.jsonl"));
        let head = {
            let mut store = JsonlAuditStore::open(&old, chain_key()).expect("opens");
            append_n(&mut store, 0, 3);
            store.head().clone()
        };
        let options = StoreOptions {
            sync: SyncPolicy::EveryAppend,
            start: head.clone(),
        };
        let mut store = JsonlAuditStore::open_with(&new, chain_key(), options).expect("opens");
        assert_eq!(store.append(sample_draft(3)).expect("appends").seq, 4);
        drop(store);
        let from_head = VerifyOptions {
            start: head,
            anchor: None,
        };
        assert_eq!(
            verify_path(&new, &chain_key(), &from_head)
                .map(|r| r.events)
                .ok(),
            Some(1)
        );
        let err = verify_path(&new, &chain_key(), &VerifyOptions::default())
            .expect_err("not from genesis");
        assert!(matches!(
            err,
            StoreError::Chain {
                line: 1,
                source: VerifyError::TruncatedHead {
                    expected: 1,
                    found: 4
                },
                ..
            }
        ));
    }

    #[test]
    fn invalid_draft_is_not_written() {
        let dir = Scratch::new("invalid-draft");
        let path = dir.file("audit.jsonl");
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
        let err = store
            .append(AuditDraft::new(ts("2025-04-01T00:00:00Z"), Hop::Admin, ""))
            .expect_err("empty actor");
        assert!(matches!(err, StoreError::Draft { .. }));
        assert_eq!(std::fs::metadata(&path).expect("exists").len(), 0);
        assert!(store.head().is_genesis());
    }

    #[test]
    fn query_streams_matching_events() {
        let dir = Scratch::new("query");
        let path = dir.file("audit.jsonl");
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
        append_n(&mut store, 0, 8);
        let filter = AuditFilter {
            envelope_id: Some("env-3".into()),
            ..Default::default()
        };
        let seqs: Vec<u64> = store
            .query(&filter)
            .expect("opens")
            .map(|r| r.map(|e| e.seq))
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(seqs, vec![7, 8]);
        assert_eq!(read_events(&path).len(), 8);
    }

    #[test]
    fn a_log_written_before_chains_were_keyed_is_told_apart_from_an_edited_one() {
        let dir = Scratch::new("unkeyed");
        let path = dir.file("audit.jsonl");
        {
            let mut old = JsonlAuditStore::open(&path, ChainKey::unkeyed()).expect("opens");
            append_n(&mut old, 0, 3);
        }
        match JsonlAuditStore::open(&path, chain_key()) {
            Err(StoreError::Unkeyed { head, .. }) => assert_eq!(head.seq, 3),
            other => panic!("expected an unkeyed log, got {other:?}"),
        }
    }

    #[test]
    fn find_looks_back_from_the_end_for_a_seq() {
        let dir = Scratch::new("find");
        let path = dir.file("audit.jsonl");
        let mut store = JsonlAuditStore::open(&path, chain_key()).expect("opens");
        // Enough lines to span several 64 KiB chunks read backwards.
        let written = append_n(&mut store, 0, 600);
        for seq in [1, 2, 299, 599, 600] {
            assert_eq!(
                store.find(seq).expect("reads").as_ref(),
                Some(&written[seq as usize - 1]),
                "seq {seq}"
            );
        }
        assert_eq!(store.find(601).expect("reads"), None);
        assert_eq!(store.find(0).expect("reads"), None);
    }

    fn sample_chain_events(n: u64) -> Vec<AuditEvent> {
        super::super::tests::sample_chain(n).into_events()
    }
}
