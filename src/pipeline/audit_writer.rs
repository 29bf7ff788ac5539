//! Where the pipeline's audit events go: one writer thread owning the hub's keyed audit chain
//! (`audit::chains`, a JSON Lines log), fed through a channel so no hop blocks on disk; it fsyncs
//! at least every 100 ms and on shutdown. A second thread records the fsynced head in the store as
//! the chain's checkpoint, at most once a second and at every [`AuditWriter::flush`] (which
//! `Running::stop` calls), so a store round trip never holds up an event; `/metrics` shows the
//! checkpoints ([`AuditWriter::render_metrics`]). An in-memory chain serves tests. Events hold
//! ids and keyed hashes only.

use crate::audit::chains::{Checkpointer, OpenOptions, Writer, open_chain};
use crate::audit::jsonl::{JsonlAuditStore, SyncPolicy};
use crate::audit::{
    AuditChain, AuditDraft, AuditEvent, AuditKey, ChainKey, Checkpoint, Timestamp, key,
};
use crate::config::Config;
use crate::pipeline::clock;
use crate::store::Store;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// Least time between two checkpoints of the hub's chain (a flush records one at once).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often the checkpoints of the store's other chain of this key (the CLI's) are read for
/// `/metrics`.
const OTHERS_EVERY: Duration = Duration::from_secs(10);
/// Least time between two log lines about failing checkpoints.
const COMPLAIN_EVERY: Duration = Duration::from_secs(60);

/// A message to the writer thread.
pub enum Cmd {
    /// Append this event.
    Event(Box<AuditDraft>),
    /// Sync to disk, record the checkpoint, then signal.
    Flush(mpsc::Sender<()>),
}

/// A message to the checkpoint thread.
enum Ckpt {
    /// This head is fsynced.
    Durable(Checkpoint),
    /// This head is fsynced: record it now, then signal.
    Now(Checkpoint, Vec<mpsc::Sender<()>>),
}

/// The audit sink of a running hub.
#[derive(Clone)]
pub enum AuditWriter {
    /// A writer thread appending to the hub's chain.
    File {
        /// To the writer thread.
        tx: mpsc::Sender<Cmd>,
        /// What the checkpoint thread recorded, for `/metrics`.
        gauges: Arc<ChainGauges>,
    },
    /// An in-memory chain (tests, `--ephemeral`).
    Memory(Arc<Mutex<AuditChain>>),
}

impl AuditWriter {
    /// Opens (or continues) the hub's chain in the log at `path`, keyed by `key`, checked against
    /// its checkpoint in `store` (`audit::chains::open_chain`: a torn last line is set aside, a
    /// log an earlier kaigo-hub wrote without a key is closed and a keyed chain starts after it,
    /// a checkpoint the log does not hold is recorded as a break — each said on stderr and in the
    /// log), then starts the writer and checkpoint threads.
    pub fn open(path: &Path, key: &AuditKey, store: Arc<dyn Store>) -> Result<AuditWriter, String> {
        let now = Timestamp::parse(&clock::now_rfc3339()).map_err(|e| e.to_string())?;
        let opened = open_chain(&OpenOptions {
            writer: Writer::Hub,
            path,
            key,
            checkpoints: store.audit_checkpoints(),
            sync: SyncPolicy::Manual,
            wait_for_lock: Duration::ZERO,
            now,
        })
        .map_err(|e| e.to_string())?;
        for said in &opened.said {
            if said.alarm {
                tracing::error!("{}", said.text);
            } else {
                tracing::warn!("{}", said.text);
            }
            eprintln!("kaigo-hub: {}", said.text);
        }
        if store.audit_checkpoints().is_none() {
            tracing::warn!(
                "this store keeps no audit checkpoints: events cut from the end of {} would not show",
                path.display()
            );
        }
        let checkpointer = Checkpointer::new(&opened.log, opened.stored.as_ref());
        let gauges = Arc::new(ChainGauges::default());
        if let Some(row) = &opened.stored {
            gauges.set(&row.chain, row.seq, &row.hash);
        }
        let (ckpt_tx, ckpt_rx) = mpsc::channel::<Ckpt>();
        let cli_chain = key.chain(Writer::Cli.as_str()).id().to_string();
        {
            let gauges = gauges.clone();
            std::thread::Builder::new()
                .name("kaigo-audit-checkpoint".into())
                .spawn(move || checkpoints(ckpt_rx, checkpointer, store, gauges, cli_chain))
                .map_err(|e| e.to_string())?;
        }
        let (tx, rx) = mpsc::channel::<Cmd>();
        std::thread::Builder::new()
            .name("kaigo-audit".into())
            .spawn(move || write_events(rx, opened.log, ckpt_tx))
            .map_err(|e| e.to_string())?;
        Ok(AuditWriter::File { tx, gauges })
    }

    /// [`AuditWriter::for_config`] from async code: opening reads the log's tail and the store's
    /// checkpoint, blocking work that goes to the blocking pool.
    pub async fn start(cfg: &Config, store: Arc<dyn Store>) -> Result<AuditWriter, String> {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || AuditWriter::for_config(&cfg, store))
            .await
            .map_err(|e| format!("opening the audit log: {e}"))?
    }

    /// [`AuditWriter::open`] on the hub's log (`cfg.audit_path()`) with the audit key the
    /// settings give (`audit_key`, or the file `audit_key_file`, made on first use and said so).
    pub fn for_config(cfg: &Config, store: Arc<dyn Store>) -> Result<AuditWriter, String> {
        let (key, made) = key::from_settings(cfg.audit_key.as_deref(), &cfg.audit_key_path(), true)
            .map_err(|e| e.to_string())?;
        if let Some(said) = made {
            tracing::warn!("{said}");
            eprintln!("kaigo-hub: {said}");
        }
        AuditWriter::open(&cfg.audit_path(), &key, store)
    }

    /// An in-memory audit chain.
    pub fn memory() -> AuditWriter {
        let key = AuditKey::generate()
            .map(|k| k.chain("memory"))
            .unwrap_or_else(|_| ChainKey::unkeyed());
        AuditWriter::Memory(Arc::new(Mutex::new(AuditChain::new(key))))
    }

    /// Records an event (never blocks on disk).
    pub fn record(&self, draft: AuditDraft) {
        match self {
            AuditWriter::File { tx, .. } => {
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

    /// Waits until every recorded event is on disk and the head is checkpointed in the store.
    pub fn flush(&self) {
        if let AuditWriter::File { tx, .. } = self {
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
            AuditWriter::File { .. } => Vec::new(),
        }
    }

    /// The checkpoint gauges in the Prometheus text format (empty for the memory sink).
    pub fn render_metrics(&self) -> String {
        match self {
            AuditWriter::File { gauges, .. } => gauges.render(),
            AuditWriter::Memory(_) => String::new(),
        }
    }
}

/// The checkpoint thread: records the latest durable head at most once per
/// [`CHECKPOINT_EVERY`], and at once when a flush asks; reads the CLI chain's checkpoint for
/// `/metrics` now and then. Ends when the writer thread does; records a last pending head then
/// only for a local store (a networked one needs the runtime, which may be gone by then).
fn checkpoints(
    rx: mpsc::Receiver<Ckpt>,
    mut checkpointer: Checkpointer,
    store: Arc<dyn Store>,
    gauges: Arc<ChainGauges>,
    cli_chain: String,
) {
    let mut pending: Option<Checkpoint> = None;
    let long_ago = |d: Duration| Instant::now().checked_sub(d).unwrap_or_else(Instant::now);
    let mut last_record = long_ago(CHECKPOINT_EVERY);
    let mut last_others = long_ago(OTHERS_EVERY);
    let mut last_complaint: Option<Instant> = None;
    let mut record = |head: &Checkpoint, checkpointer: &mut Checkpointer| {
        let Some(c) = store.audit_checkpoints() else {
            return;
        };
        match checkpointer.record(c, head, &clock::now_rfc3339()) {
            Ok(true) => gauges.set(checkpointer.chain(), head.seq, &head.hash),
            Ok(false) => {}
            Err(e) => {
                gauges.failures.fetch_add(1, Ordering::Relaxed);
                if last_complaint.is_none_or(|t| t.elapsed() >= COMPLAIN_EVERY) {
                    tracing::error!(error = %e, "audit checkpoint not recorded");
                    last_complaint = Some(Instant::now());
                }
            }
        }
    };
    loop {
        let wait = match &pending {
            Some(_) => CHECKPOINT_EVERY.saturating_sub(last_record.elapsed()),
            None => CHECKPOINT_EVERY,
        };
        match rx.recv_timeout(wait) {
            Ok(Ckpt::Durable(head)) => pending = Some(head),
            Ok(Ckpt::Now(head, flushes)) => {
                record(&head, &mut checkpointer);
                last_record = Instant::now();
                pending = None;
                for done in flushes {
                    let _ = done.send(());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(head) = pending.take()
                    && store.inline()
                {
                    record(&head, &mut checkpointer);
                }
                return;
            }
        }
        if pending.is_some() && last_record.elapsed() >= CHECKPOINT_EVERY {
            if let Some(head) = pending.take() {
                record(&head, &mut checkpointer);
            }
            last_record = Instant::now();
        }
        if last_others.elapsed() >= OTHERS_EVERY {
            last_others = Instant::now();
            if let Some(Ok(Some(row))) = store
                .audit_checkpoints()
                .map(|c| c.checkpoint_of(&cli_chain))
            {
                gauges.set(&row.chain, row.seq, &row.hash);
            }
        }
    }
}

/// The checkpoints `/metrics` shows: this hub's chain and the CLI's chain of the same key, as
/// last recorded or read.
#[derive(Default)]
pub struct ChainGauges {
    rows: Mutex<Vec<(String, u64, String)>>,
    failures: AtomicU64,
}

impl ChainGauges {
    fn set(&self, chain: &str, seq: u64, hash: &str) {
        let Ok(mut rows) = self.rows.lock() else {
            return;
        };
        match rows.iter_mut().find(|r| r.0 == chain) {
            Some(r) => (r.1, r.2) = (seq, hash.to_string()),
            None => {
                rows.push((chain.to_string(), seq, hash.to_string()));
                rows.sort();
            }
        }
    }

    /// Prometheus text: `kaigo_audit_checkpoint_seq{chain}`, `kaigo_audit_checkpoint_head{chain}`
    /// (the head hash's first 13 hex digits as a number: one series per chain, however often the
    /// head moves) and `kaigo_audit_checkpoint_failures_total`.
    pub fn render(&self) -> String {
        let rows = self.rows.lock().map(|r| r.clone()).unwrap_or_default();
        let mut out = String::from(
            "# HELP kaigo_audit_checkpoint_seq Seq of the audit event whose hash is the chain's checkpoint in the store (kaigo-hub audit verify checks the log against it).\n# TYPE kaigo_audit_checkpoint_seq gauge\n",
        );
        for (chain, seq, _) in &rows {
            out.push_str(&format!(
                "kaigo_audit_checkpoint_seq{{chain=\"{chain}\"}} {seq}\n"
            ));
        }
        out.push_str("# HELP kaigo_audit_checkpoint_head The checkpoint's hash: its first 13 hex digits as a number (printf '%013x' gives them back; audit verify prints them).\n# TYPE kaigo_audit_checkpoint_head gauge\n");
        for (chain, _, hash) in &rows {
            let head = hash
                .get(..13)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            out.push_str(&format!(
                "kaigo_audit_checkpoint_head{{chain=\"{chain}\"}} {head}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP kaigo_audit_checkpoint_failures_total Checkpoints of the hub's audit chain the store did not record.\n# TYPE kaigo_audit_checkpoint_failures_total counter\nkaigo_audit_checkpoint_failures_total {}\n",
            self.failures.load(Ordering::Relaxed)
        ));
        out
    }
}

/// The writer thread: appends the events as they come, in batches, fsyncs every
/// [`SYNC_EVERY`] or when asked to flush, and hands each durable head to the checkpoint thread.
fn write_events(rx: mpsc::Receiver<Cmd>, mut log: JsonlAuditStore, ckpt_tx: mpsc::Sender<Ckpt>) {
    let mut last_sync = Instant::now();
    let mut batch: Vec<AuditDraft> = Vec::new();
    loop {
        let first = match rx.recv_timeout(SYNC_EVERY) {
            Ok(cmd) => cmd,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if log.unsynced() > 0 {
                    synced(&mut log, Vec::new(), &ckpt_tx);
                }
                last_sync = Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Take what has gathered as one batch, written with one `write`. A sender wakes this
        // thread only while it waits in `recv`, and a wake-up (a thread switch each way) costs
        // more than an event; so while events keep coming, pause a moment between batches
        // instead of waiting for each.
        let mut flushes = Vec::new();
        for cmd in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH)) {
            match cmd {
                Cmd::Event(d) => batch.push(*d),
                Cmd::Flush(done) => flushes.push(done),
            }
        }
        let busy = batch.len() >= BUSY_BATCH;
        match log.append_batch(batch.drain(..)) {
            Ok(refused) => {
                for e in refused {
                    tracing::error!(error = %e, "audit event refused");
                }
            }
            Err(e) => tracing::error!(error = %e, "audit append failed"),
        }
        if !flushes.is_empty() || last_sync.elapsed() >= SYNC_EVERY {
            synced(&mut log, flushes, &ckpt_tx);
            last_sync = Instant::now();
        }
        if busy {
            std::thread::sleep(BATCH_PAUSE);
        }
    }
    if log.unsynced() > 0 {
        synced(&mut log, Vec::new(), &ckpt_tx);
    }
}

/// Fsyncs the log; after an fsync the head is durable, and the checkpoint thread may record it
/// (answering `flushes` once recorded). A head whose fsync failed is not durable: no checkpoint
/// for it, and the flushes are answered at once.
fn synced(log: &mut JsonlAuditStore, flushes: Vec<mpsc::Sender<()>>, ckpt_tx: &mpsc::Sender<Ckpt>) {
    let durable = log.sync().is_ok();
    let head = log.head().clone();
    let msg = if flushes.is_empty() {
        Ckpt::Durable(head)
    } else {
        Ckpt::Now(head, flushes)
    };
    match msg {
        Ckpt::Now(_, flushes) if !durable => {
            for done in flushes {
                let _ = done.send(());
            }
        }
        Ckpt::Durable(_) if !durable => {}
        msg => {
            let _ = ckpt_tx.send(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditCheckpoints;
    use crate::store::sqlite::SqliteStore;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kaigo-audit-writer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn key() -> AuditKey {
        AuditKey::new(b"audit key: thirty-two bytes long").expect("long enough")
    }

    #[test]
    fn a_log_a_crash_cut_short_is_continued_and_the_torn_bytes_are_kept() {
        let dir = scratch("torn");
        let path = dir.join("audit.jsonl");
        let torn = br#"{"seq":1,"at":"2026-12-04T00:00:00Z","hop":"ingr"#;
        std::fs::write(&path, torn).expect("a torn log");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));

        let writer = AuditWriter::open(&path, &key(), store).expect("serve starts on a torn log");
        writer.flush();
        assert_eq!(
            std::fs::read(dir.join("audit.jsonl.torn-0")).expect("kept"),
            torn
        );
        assert_eq!(std::fs::metadata(&path).expect("log").len(), 0);
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A SQLite store that counts the checkpoints written to it.
    struct Counting {
        inner: SqliteStore,
        advances: AtomicU64,
    }

    impl Store for Counting {
        fn consents(&self) -> &dyn crate::consent::ConsentRegistry {
            self.inner.consents()
        }
        fn link(
            &self,
            party: &str,
            local_id: &str,
            subject: &crate::consent::Subject,
        ) -> Result<(), crate::store::StoreError> {
            self.inner.link(party, local_id, subject)
        }
        fn resolve(
            &self,
            party: &str,
            local_id: &str,
        ) -> Result<Option<crate::consent::Subject>, crate::store::StoreError> {
            self.inner.resolve(party, local_id)
        }
        fn was_delivered(&self, key: &str) -> Result<bool, crate::store::StoreError> {
            self.inner.was_delivered(key)
        }
        fn mark_delivered(&self, key: &str) -> Result<(), crate::store::StoreError> {
            self.inner.mark_delivered(key)
        }
        fn forget_delivered(
            &self,
            older_than: Duration,
            at_most: usize,
        ) -> Result<usize, crate::store::StoreError> {
            self.inner.forget_delivered(older_than, at_most)
        }
        fn audit_checkpoints(&self) -> Option<&dyn crate::store::AuditCheckpoints> {
            Some(self)
        }
    }

    impl crate::store::AuditCheckpoints for Counting {
        fn checkpoint_of(
            &self,
            chain: &str,
        ) -> Result<Option<crate::store::StoredCheckpoint>, crate::store::StoreError> {
            self.inner.checkpoint_of(chain)
        }
        fn every_checkpoint(
            &self,
        ) -> Result<Vec<crate::store::StoredCheckpoint>, crate::store::StoreError> {
            self.inner.every_checkpoint()
        }
        fn advance_checkpoint(
            &self,
            new: &crate::store::StoredCheckpoint,
            expected: Option<(u64, &str)>,
        ) -> Result<crate::store::Advance, crate::store::StoreError> {
            self.advances.fetch_add(1, Ordering::Relaxed);
            self.inner.advance_checkpoint(new, expected)
        }
    }

    #[test]
    fn checkpoints_are_written_at_most_once_a_second_while_events_keep_coming() {
        let dir = scratch("rate");
        let path = dir.join("audit.jsonl");
        let store = Arc::new(Counting {
            inner: SqliteStore::in_memory().expect("store"),
            advances: AtomicU64::new(0),
        });
        let writer = AuditWriter::open(&path, &key(), store.clone()).expect("opens");
        let at = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid");
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            for _ in 0..100 {
                writer.record(
                    AuditDraft::new(at.clone(), crate::audit::Hop::Translate, "translate")
                        .envelope_id(format!("env-{n}")),
                );
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.flush();
        let writes = store.advances.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs() + 1;
        // One per second at most, plus the flush's.
        assert!(
            writes >= 1 && writes <= seconds + 1,
            "{writes} checkpoint writes for {n} events in {seconds} s"
        );
        let row = store
            .inner
            .checkpoint_of(key().chain("hub").id())
            .expect("reads")
            .expect("recorded");
        assert_eq!(row.seq, n);
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_flush_checkpoints_the_head_and_metrics_show_it() {
        let dir = scratch("checkpoint");
        let path = dir.join("audit.jsonl");
        let sqlite = Arc::new(SqliteStore::in_memory().expect("store"));
        let store: Arc<dyn Store> = sqlite.clone();
        let writer = AuditWriter::open(&path, &key(), store).expect("opens");
        let at = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid");
        for i in 0..500 {
            writer.record(
                AuditDraft::new(at.clone(), crate::audit::Hop::Ingress, "http")
                    .envelope_id(format!("env-{i}")),
            );
        }
        writer.flush();
        let chain = key().chain("hub");
        let row = sqlite
            .checkpoint_of(chain.id())
            .expect("reads")
            .expect("recorded at the flush");
        assert_eq!(row.seq, 500);
        let metrics = writer.render_metrics();
        assert!(
            metrics.contains(&format!(
                "kaigo_audit_checkpoint_seq{{chain=\"{}\"}} 500\n",
                chain.id()
            )),
            "{metrics}"
        );
        let head = u64::from_str_radix(&row.hash[..13], 16).expect("hex");
        assert!(
            metrics.contains(&format!(
                "kaigo_audit_checkpoint_head{{chain=\"{}\"}} {head}\n",
                chain.id()
            )),
            "{metrics}"
        );
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
