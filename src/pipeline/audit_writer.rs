//! Where the pipeline's audit events go: one writer thread owning the hash-chained JSON Lines log
//! (`audit::jsonl`), fed through a channel so no hop blocks on disk; it fsyncs at least every
//! 100 ms and on shutdown. An in-memory chain serves tests. Events hold ids and keyed hashes only.

use crate::audit::jsonl::{
    JsonlAuditStore, StoreError, StoreOptions, SyncPolicy, set_aside_torn_tail,
};
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
    /// Opens (or continues) the log at `path` and starts the writer thread. A last line that a
    /// crash cut short (a *torn tail*: a batch this writer never finished writing, so no hop
    /// waited for it) is set aside in `<path>.torn-<offset>`, said on stderr and in the log, and
    /// the chain continues: a hub killed mid-write starts again by itself.
    pub fn open(path: &Path) -> Result<AuditWriter, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let options = || StoreOptions {
            sync: SyncPolicy::Manual,
            ..StoreOptions::default()
        };
        let mut store = match JsonlAuditStore::open_with(path, options()) {
            Err(StoreError::TornTail { .. }) => {
                if let Some(t) = set_aside_torn_tail(path).map_err(|e| e.to_string())? {
                    let said = format!(
                        "audit log {}: line {} ({} bytes) was cut short by a crash; set aside in {}, the chain goes on from line {}",
                        path.display(),
                        t.line,
                        t.bytes,
                        t.moved_to.display(),
                        t.line
                    );
                    tracing::warn!("{said}");
                    eprintln!("kaigo-hub: {said}");
                }
                JsonlAuditStore::open_with(path, options())
            }
            opened => opened,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_a_crash_cut_short_is_continued_and_the_torn_bytes_are_kept() {
        let dir = std::env::temp_dir().join(format!("kaigo-audit-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("audit.jsonl");
        let torn = br#"{"seq":1,"at":"2026-12-04T00:00:00Z","hop":"ingr"#;
        std::fs::write(&path, torn).expect("a torn log");

        let writer = AuditWriter::open(&path).expect("serve starts on a torn log");
        writer.flush();
        assert_eq!(
            std::fs::read(dir.join("audit.jsonl.torn-0")).expect("kept"),
            torn
        );
        assert_eq!(std::fs::metadata(&path).expect("log").len(), 0);
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
