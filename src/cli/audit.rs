//! `kaigo-hub audit verify|query`: checks the hash chain of the audit log (naming the first
//! edited, deleted or reordered row) and prints events matching a filter as JSON lines.

use super::Failure;
use kaigo_hub::audit::jsonl::{read_path, verify_path};
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
                Err(e) => Err(Failure::input(format!("{}: {e}", path.display()))),
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
    }
}
