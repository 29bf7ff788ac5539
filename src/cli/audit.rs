//! `kaigo-hub audit verify|query|set-aside-torn-tail`: checks the hash chain of the audit log
//! (naming the first edited, deleted or reordered row), prints events matching a filter as JSON
//! lines, and moves a last line a crash cut short out of the log (`serve` does that itself when
//! it starts).

use super::Failure;
use kaigo_hub::audit::jsonl::{read_path, set_aside_torn_tail, verify_path};
use kaigo_hub::audit::{AuditFilter, Decision, Hop, SubjectHash, VerifyOptions};
use kaigo_hub::config::Config;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Verify the whole hash chain of the audit log.
    Verify {
        /// Audit log (default: <data_dir>/audit.jsonl).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print events matching every given filter, one JSON object per line.
    Query {
        /// Audit log (default: <data_dir>/audit.jsonl).
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
            let path = file.unwrap_or_else(|| cfg.audit_path());
            match verify_path(&path, &VerifyOptions::default()) {
                Ok(report) => {
                    super::out!("{}: chain intact, {report:?}", path.display());
                    Ok(0)
                }
                // The error names the file (and line) itself.
                Err(e) => Err(Failure::input(e.to_string())),
            }
        }
        Action::Query {
            file,
            envelope,
            party,
            subject,
            hop,
            decision,
        } => {
            let path = file.unwrap_or_else(|| cfg.audit_path());
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
            let mut lines = read_path(&path).map_err(|e| Failure::input(e.to_string()))?;
            while let Some(item) = lines.next_event() {
                let (_, ev) = item.map_err(|e| Failure::input(e.to_string()))?;
                if filter.matches(&ev) {
                    super::out!("{}", serde_json::to_string(&ev).unwrap_or_default());
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
