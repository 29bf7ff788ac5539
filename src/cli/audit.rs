//! `kaigo-hub audit verify|query|set-aside-torn-tail`: checks every audit chain of the data
//! directory (the hub's and the CLI's) with the audit key and against the checkpoints in the store,
//! and prints the verdict as sentences (exit 0 intact, 1 tampered or not verifiable, 2 usage: no
//! key, no store); prints events matching a filter as JSON lines; moves a last line a crash cut
//! short out of a log (`serve` does that itself when it starts).

use super::Failure;
use kaigo_hub::audit::chains::{Writer, verify_dir, verify_file};
use kaigo_hub::audit::jsonl::{StoreError, read_path, set_aside_torn_tail};
use kaigo_hub::audit::{AuditFilter, Decision, Hop, SubjectHash, key};
use kaigo_hub::config::Config;
use kaigo_hub::serve::redact;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Verify every audit chain: each event sealed with the audit key and linked to the one
    /// before, and the store's checkpoint of each chain in its log (so a cut end shows). Exit 0
    /// intact, 1 tampered or not verifiable, 2 no key or no store.
    Verify {
        /// One log file to verify (default: the hub's <data_dir>/audit.jsonl and the CLI's
        /// <data_dir>/audit-cli.jsonl).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print events matching every given filter, one JSON object per line.
    Query {
        /// Audit log (default: the hub's <data_dir>/audit.jsonl, then the CLI's audit-cli.jsonl).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Envelope id.
        #[arg(long)]
        envelope: Option<String>,
        /// Party id (actor or counterpart).
        #[arg(long)]
        party: Option<String>,
        /// Subject hash (64 hex digits, as in message headers and logs).
        #[arg(long)]
        subject: Option<String>,
        /// Hop: ingress, translate, deliver, consent, replay, admin.
        #[arg(long)]
        hop: Option<String>,
        /// Decision: permit, deny, indeterminate, accepted, rejected, delivered, dead, quarantined, retrying.
        #[arg(long)]
        decision: Option<String>,
    },
    /// Move a last line that a crash cut short (no newline) into `<log>.torn-<offset>`, so that
    /// verify and query read the log again; `serve` does this itself when it starts. Refused
    /// while a hub holds the log open.
    SetAsideTornTail {
        /// Audit log (default: <data_dir>/audit.jsonl).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

pub fn run(config: Option<PathBuf>, action: Action) -> Result<u8, Failure> {
    let cfg = Config::load(config.as_deref()).map_err(Failure::usage)?;
    match action {
        Action::Verify { file } => {
            let cannot = |e: String| Failure::usage(format!("cannot verify the audit log: {e}"));
            // Never made here: a key created now could only fail to verify the log.
            let (key, _) =
                key::from_settings(cfg.audit_key.as_deref(), &cfg.audit_key_path(), false)
                    .map_err(|e| cannot(e.to_string()))?;
            let url = cfg.store_url();
            let rt = super::serve::runtime()?;
            let store = rt
                .block_on(kaigo_hub::store::open(&url))
                .map_err(|e| cannot(format!("store {}: {e}", redact(&url))))?;
            let checkpoints = store
                .audit_checkpoints()
                .ok_or_else(|| cannot(format!("store {} keeps no checkpoints", redact(&url))))?;
            let report = match file {
                Some(f) => verify_file(&f, &key, checkpoints, &redact(&url)),
                None => verify_dir(&cfg.audit_path(), &key, checkpoints, &redact(&url)),
            }
            .map_err(|e| cannot(e.to_string()))?;
            super::out!("{report}");
            Ok(if report.intact() { 0 } else { 1 })
        }
        Action::Query {
            file,
            envelope,
            party,
            subject,
            hop,
            decision,
        } => {
            let paths = match file {
                Some(f) => vec![f],
                None => vec![cfg.audit_path(), Writer::Cli.path_in(&cfg.data_dir)],
            };
            let filter = AuditFilter {
                envelope_id: envelope,
                subject: subject
                    .map(|s| SubjectHash::from_hex(&s))
                    .transpose()
                    .map_err(|e| Failure::usage(e.to_string()))?,
                party,
                hop: hop
                    .map(|h| h.parse::<Hop>())
                    .transpose()
                    .map_err(|e| Failure::usage(e.to_string()))?,
                decision: decision
                    .map(|d| d.parse::<Decision>())
                    .transpose()
                    .map_err(|e| Failure::usage(e.to_string()))?,
                ..AuditFilter::default()
            };
            for (i, path) in paths.iter().enumerate() {
                let mut lines = match read_path(path) {
                    // The CLI's log exists once a consent command ran.
                    Err(StoreError::Io { source, .. })
                        if i > 0 && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        continue;
                    }
                    other => other.map_err(|e| Failure::input(e.to_string()))?,
                };
                while let Some(item) = lines.next_event() {
                    let (_, ev) = item.map_err(|e| Failure::input(e.to_string()))?;
                    if filter.matches(&ev) {
                        super::out!("{}", serde_json::to_string(&ev).unwrap_or_default());
                    }
                }
            }
            Ok(0)
        }
        Action::SetAsideTornTail { file } => {
            let path = file.unwrap_or_else(|| cfg.audit_path());
            match set_aside_torn_tail(&path).map_err(|e| Failure::input(e.to_string()))? {
                Some(t) => super::out!(
                    "{}: line {} ({} bytes) set aside in {}",
                    path.display(),
                    t.line,
                    t.bytes,
                    t.moved_to.display()
                ),
                None => super::out!(
                    "{}: ends on a whole line; nothing to set aside",
                    path.display()
                ),
            }
            Ok(0)
        }
    }
}
