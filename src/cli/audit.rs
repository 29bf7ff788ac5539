//! `kaigo-hub audit verify|query|trace|search|set-aside-torn-tail`: checks every audit chain of
//! the data directory (the hub's and the CLI's) with the audit key and against the checkpoints in the store,
//! and prints the verdict as sentences (exit 0 intact, 1 tampered or not verifiable, 2 usage: no
//! key, no store); prints events matching a filter as JSON lines; prints one message's trace or
//! the messages a search finds (`kaigo_hub::trace`); moves a last line a crash cut
//! short out of a log (`serve` does that itself when it starts).

use super::Failure;
use kaigo_hub::audit::chains::{Writer, verify_dir, verify_file};
use kaigo_hub::audit::jsonl::{StoreError, read_path, set_aside_torn_tail};
use kaigo_hub::audit::{AuditFilter, Decision, Hop, SubjectHash, key};
use kaigo_hub::config::Config;
use kaigo_hub::store::without_password as redact;
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
    /// The journey of one message: each hop's step and time, each consent decision (permit,
    /// deny or indeterminate, with consent id, category, purpose, recipient and reason), what
    /// each recipient received, and, with the archive on, its sender, format and mapping
    /// id@version. Ids, codes and keyed hashes only: never a body.
    Trace {
        /// The envelope id (`x-kaigo` message id, as the sender's answer gave it).
        envelope: String,
    },
    /// Find messages, newest first: an envelope id, `sender:PARTY`, `recipient:PARTY`,
    /// `kind:KIND` (`InsuranceCard` or `InsuranceCard@1`), or a person as
    /// `保険者番号:被保険者番号` — give `-` to read the search from stdin, so a person's numbers
    /// stay out of the shell's history. A person is hashed with the subject key before any lookup,
    /// and the search is audited (reason `search-person`, the keyed hash).
    Search {
        /// What to look for (`-`: read one line from stdin; empty: every message).
        #[arg(default_value = "")]
        q: String,
        /// Kept at or after, UTC: `YYYY-MM-DDTHH:MM[:SS]`.
        #[arg(long)]
        from: Option<String>,
        /// Kept before, UTC.
        #[arg(long)]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
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
        Action::Trace { envelope } => trace(&cfg, &envelope),
        Action::Search { q, from, to, limit } => search(&cfg, &q, from, to, limit),
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

/// The logs a trace or search reads: the hub's and the CLI's.
fn logs(cfg: &Config) -> Vec<PathBuf> {
    vec![cfg.audit_path(), Writer::Cli.path_in(&cfg.data_dir)]
}

/// The store, and whether its archive tables are to be read (`archive_key_file` set).
fn store(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
) -> Result<std::sync::Arc<dyn kaigo_hub::store::Store>, Failure> {
    rt.block_on(super::open_store(cfg)).map(|(s, _)| s)
}

fn trace(cfg: &Config, envelope: &str) -> Result<u8, Failure> {
    let rt = super::serve::runtime()?;
    let store = store(cfg, &rt)?;
    let archive = cfg.archive_key_file.as_ref().and_then(|_| store.archive());
    let mut events = Vec::new();
    kaigo_hub::trace::read_events(&logs(cfg), |e| {
        if e.envelope_id.as_deref() == Some(envelope) {
            events.push(e);
        }
    })
    .map_err(Failure::input)?;
    let t = kaigo_hub::trace::trace(envelope, events, archive).map_err(Failure::input)?;
    if t.is_empty() {
        return Err(Failure::input(format!(
            "no event and no archived copy of envelope {envelope} (in {} and {})",
            cfg.audit_path().display(),
            Writer::Cli.path_in(&cfg.data_dir).display()
        )));
    }
    super::out!("envelope {}", t.envelope);
    if let Some(o) = &t.original {
        super::out!(
            "  original: {} from {} ({}), kept {}, {}",
            o.at,
            o.sender,
            o.format,
            o.outcome,
            if o.kinds.is_empty() {
                "no document".to_string()
            } else {
                o.kinds.join(", ")
            }
        );
    }
    let mappings = t.mappings();
    if !mappings.is_empty() {
        super::out!("  mapping: {}", mappings.join(", "));
    }
    for d in &t.documents {
        super::out!(
            "  document {}: {}{} ({})",
            d.index,
            d.kind,
            d.subject
                .as_deref()
                .map(|s| format!(", subject {s}"))
                .unwrap_or_default(),
            d.mapping
        );
    }
    super::out!("steps:");
    for s in &t.steps {
        let mut line = format!("  {} {:<9} {:<11} by {}", s.at, s.hop, s.outcome, s.actor);
        for (name, v) in [
            ("party", &s.party),
            ("document", &s.document),
            ("reason", &s.reason),
        ] {
            if let Some(v) = v {
                line.push_str(&format!(" {name}={v}"));
            }
        }
        super::out!("{line}");
    }
    super::out!("consent decisions:");
    for d in &t.decisions {
        let mut line = format!("  {} {:<9} {:<13}", d.at, d.point, d.decision);
        for (name, v) in [
            ("consent", &d.consent_id),
            ("category", &d.category),
            ("purpose", &d.purpose),
            ("recipient", &d.recipient),
            ("reason", &d.reason),
        ] {
            if let Some(v) = v {
                line.push_str(&format!(" {name}={v}"));
            }
        }
        super::out!("{line}");
    }
    super::out!("deliveries:");
    for s in t.deliveries() {
        super::out!(
            "  {} {} {}{}",
            s.at,
            s.party.as_deref().unwrap_or(""),
            s.outcome,
            s.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

fn search(
    cfg: &Config,
    q: &str,
    from: Option<String>,
    to: Option<String>,
    limit: usize,
) -> Result<u8, Failure> {
    let q = if q == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::input(format!("reading the search from stdin: {e}")))?;
        line
    } else {
        q.to_string()
    };
    let search = kaigo_hub::trace::Search::parse(
        &q,
        from.as_deref().unwrap_or(""),
        to.as_deref().unwrap_or(""),
    )
    .map_err(Failure::usage)?;
    let rt = super::serve::runtime()?;
    let store = store(cfg, &rt)?;
    let hasher = kaigo_hub::audit::SubjectHasher::new(
        &kaigo_hub::serve::subject_key(cfg).map_err(Failure::usage)?,
    )
    .map_err(|e| Failure::usage(e.to_string()))?;
    if let kaigo_hub::trace::Term::Person(subject) = &search.term {
        let mut trail = super::audit_trail::Trail::open(cfg, store.clone(), true)?;
        trail.searched(subject)?;
        trail.finish()?;
    }
    let archive = cfg.archive_key_file.as_ref().and_then(|_| store.archive());
    let mut events = Vec::new();
    kaigo_hub::trace::read_events(&logs(cfg), |e| events.push(e)).map_err(Failure::input)?;
    let found = kaigo_hub::trace::search(&search, &hasher, archive, events, limit)
        .map_err(Failure::input)?;
    for f in &found {
        let m = &f.meta;
        super::out!(
            "{} {} from {} {} {}{}",
            m.envelope,
            m.at,
            m.sender,
            m.outcome,
            m.kinds.join(","),
            if f.archived { "" } else { " (not archived)" }
        );
    }
    if found.is_empty() {
        eprintln!("kaigo-hub: no message found");
    }
    Ok(0)
}
