//! Where the pipeline's audit events go: one writer thread owning the hash-chained JSON Lines log
//! (`audit::jsonl`), fed through a channel so no hop blocks on disk; it fsyncs at least every
//! 100 ms and on shutdown. An in-memory chain serves tests. Events hold ids and keyed hashes only.

use crate::audit::jsonl::{JsonlAuditStore, StoreOptions, SyncPolicy};
use crate::audit::{AuditChain, AuditDraft, AuditEvent};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A batch at least this long means events keep coming: pause [`BATCH_PAUSE`] before the next.
const BUSY_BATCH: usize = 4;
/// The most events written at once.
const MAX_BATCH: usize = 4096;
/// Longest an appended event waits for its fsync, busy or idle.
const SYNC_EVERY: Duration = Duration::from_millis(100);
/// How long the writer lets events gather while busy (a flush waits at most this much longer).
const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// A message to the writer thread.
pub enum Cmd {
    /// Append this event.
    Event(Box<AuditDraft>),
    /// Sync to disk, then signal.
    Flush(mpsc::Sender<()>),
}

/// The audit sink of a running hub.
#[derive(Clone)]
pub enum AuditWriter {
    /// A writer thread appending to a JSON Lines file.
    File(mpsc::Sender<Cmd>),
    /// An in-memory chain (tests, `--ephemeral`).
    Memory(Arc<Mutex<AuditChain>>),
}

impl AuditWriter {
    /// Opens (or continues) the log at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<AuditWriter, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut store = JsonlAuditStore::open_with(
            path,
            StoreOptions {
                sync: SyncPolicy::Manual,
                ..StoreOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<Cmd>();
        std::thread::Builder::new()
            .name("kaigo-audit".into())
            .spawn(move || {
                let mut last_sync = Instant::now();
                let mut batch: Vec<AuditDraft> = Vec::new();
                loop {
                    let first = match rx.recv_timeout(SYNC_EVERY) {
                        Ok(cmd) => cmd,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            let _ = store.sync();
                            last_sync = Instant::now();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    // Take what has gathered as one batch, written with one `write`. A sender
                    // wakes this thread only while it waits in `recv`, and a wake-up (a thread
                    // switch each way) costs more than an event; so while events keep coming,
                    // pause a moment between batches instead of waiting for each.
                    let mut flushes = Vec::new();
                    for cmd in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH)) {
                        match cmd {
                            Cmd::Event(d) => batch.push(*d),
                            Cmd::Flush(done) => flushes.push(done),
                        }
                    }
                    let busy = batch.len() >= BUSY_BATCH;
                    match store.append_batch(batch.drain(..)) {
                        Ok(refused) => {
                            for e in refused {
                                tracing::error!(error = %e, "audit event refused");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "audit append failed"),
                    }
                    if !flushes.is_empty() || last_sync.elapsed() >= SYNC_EVERY {
                        let _ = store.sync();
                        last_sync = Instant::now();
                        for done in flushes {
                            let _ = done.send(());
                        }
                    }
                    if busy {
                        std::thread::sleep(BATCH_PAUSE);
                    }
                }
                let _ = store.sync();
            })
            .map_err(|e| e.to_string())?;
        Ok(AuditWriter::File(tx))
    }

    /// An in-memory audit chain.
    pub fn memory() -> AuditWriter {
        AuditWriter::Memory(Arc::new(Mutex::new(AuditChain::new())))
    }

    /// Records an event (never blocks on disk).
    pub fn record(&self, draft: AuditDraft) {
        match self {
            AuditWriter::File(tx) => {
                if tx.send(Cmd::Event(Box::new(draft))).is_err() {
                    tracing::error!("audit writer stopped; event lost");
                }
            }
            AuditWriter::Memory(chain) => {
                if let Ok(mut c) = chain.lock()
                    && let Err(e) = c.append(draft)
                {
                    tracing::error!(error = %e, "audit event refused");
                }
            }
        }
    }

    /// Waits until every recorded event is on disk.
    pub fn flush(&self) {
        if let AuditWriter::File(tx) = self {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Cmd::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(Duration::from_secs(5));
            }
        }
    }

    /// The events so far (memory sink only; empty for the file sink, read the file instead).
    pub fn events(&self) -> Vec<AuditEvent> {
        match self {
            AuditWriter::Memory(c) => c.lock().map(|c| c.events().to_vec()).unwrap_or_default(),
            AuditWriter::File(_) => Vec::new(),
        }
    }
}
