//! What the CLI's commands write to the audit log — `consent …`: one event per change they make
//! to the store; `replay`: one per parked message it put back or kept — in the CLI's own chain (`<data_dir>/audit-cli.jsonl`, `audit::chains::Writer::Cli`),
//! never in the hub's (a running hub holds that one locked). The chain is opened before the first
//! change (a command waits up to [`LOCK_WAIT`] for another command's lock), and [`Trail::finish`]
//! fsyncs it and records its checkpoint in the store before the command reports success (a
//! command that fails part-way does the same for what it did, when the trail is dropped).
//!
//! The events have the HTTP door's shape (`sources/http/audit_trail.rs`): hop `admin`, decision
//! `accepted` or `rejected`, the subject as its keyed hash, the consent id in `reason`; the actor
//! is `cli:uid-<n>` (the operating-system user id, not a name). A revoke's reason is
//! `revoke:<consent id>`, a link's is `link` with the party as counterpart; the local id a party
//! knows a person by is not recorded. A replay's events have hop `replay`, the envelope id, the
//! sender and the subject hashes the parked message carried: decision `accepted` with
//! `to:<exchange>` for one put back, `rejected` with the code it was kept for. Never a name, a raw
//! 保険者番号/被保険者番号 or an error text. `audit search` by a person: one event (hop `admin`,
//! reason `search-person`, the subject's keyed hash) before the search runs.

use super::Failure;
use kaigo_hub::audit::chains::{Appender, OpenOptions, Writer};
use kaigo_hub::audit::jsonl::SyncPolicy;
use kaigo_hub::audit::{AuditDraft, Decision, Hop, SubjectHasher, Timestamp, key};
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Consent, ConsentError, Subject};
use kaigo_hub::pipeline::clock;
use kaigo_hub::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How long a command waits while another command appends to the CLI's chain.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The audit events of one consent command.
pub struct Trail {
    /// `None` for a command that changes nothing (`consent list`): it opens no log, makes no key.
    open: Option<(Appender, SubjectHasher)>,
    actor: String,
    store: Arc<dyn Store>,
}

impl Trail {
    /// The trail of a command that changes the store (`changes`), opened on the CLI's chain in
    /// `cfg`'s data directory; otherwise an empty one.
    pub fn open(cfg: &Config, store: Arc<dyn Store>, changes: bool) -> Result<Trail, Failure> {
        let actor = actor();
        if !changes {
            return Ok(Trail {
                open: None,
                actor,
                store,
            });
        }
        let cannot = |e: String| {
            Failure::usage(format!(
                "nothing was changed: the audit log cannot be written: {e}"
            ))
        };
        let (key, made) = key::from_settings(cfg.audit_key.as_deref(), &cfg.audit_key_path(), true)
            .map_err(|e| cannot(e.to_string()))?;
        if let Some(said) = made {
            eprintln!("kaigo-hub: {said}");
        }
        let path = Writer::Cli.path_in(&cfg.data_dir);
        let (appender, said) = Appender::open(&OpenOptions {
            writer: Writer::Cli,
            path: &path,
            key: &key,
            checkpoints: store.audit_checkpoints(),
            sync: SyncPolicy::Manual,
            wait_for_lock: LOCK_WAIT,
            now: now().map_err(cannot)?,
        })
        .map_err(|e| cannot(e.to_string()))?;
        for s in said {
            eprintln!("kaigo-hub: {}", s.text);
        }
        let hasher = SubjectHasher::new(&kaigo_hub::serve::subject_key(cfg).map_err(cannot)?)
            .map_err(|e| cannot(e.to_string()))?;
        Ok(Trail {
            open: Some((appender, hasher)),
            actor,
            store,
        })
    }

    /// `consent` was granted (or, imported with a revocation, stored revoked).
    pub fn granted(&mut self, consent: &Consent) -> Result<(), Failure> {
        let Some((_, hasher)) = &self.open else {
            return Ok(());
        };
        let hash = hasher.hash_subject(&consent.subject);
        self.record(|d| {
            d.subject(hash)
                .decision(Decision::Accepted)
                .reason(consent.id.as_str())
        })
    }

    /// Consent `id` was revoked.
    pub fn revoked(&mut self, id: &str) -> Result<(), Failure> {
        self.record(|d| {
            d.decision(Decision::Accepted)
                .reason(format!("revoke:{id}"))
        })
    }

    /// `party`'s local id for `subject` was linked.
    pub fn linked(&mut self, party: &str, subject: &Subject) -> Result<(), Failure> {
        let Some((_, hasher)) = &self.open else {
            return Ok(());
        };
        let hash = hasher.hash_subject(subject);
        self.record(|d| {
            d.party(party)
                .subject(hash)
                .decision(Decision::Accepted)
                .reason("link")
        })
    }

    /// `kaigo-hub replay` put the parked message `envelope` back on `exchange` (`props` as it was
    /// parked: its sender and subject hashes are recorded).
    pub fn replayed(
        &mut self,
        envelope: &str,
        props: &kaigo_hub::bus::Props,
        exchange: &str,
    ) -> Result<(), Failure> {
        self.parked(
            envelope,
            props,
            Decision::Accepted,
            &format!("to:{exchange}"),
        )
    }

    /// `kaigo-hub replay --preview` asked what replaying the parked message `envelope` would do
    /// (each person's consent for each recipient among it): hop `admin`, one event per person.
    pub fn previewed(
        &mut self,
        envelope: &str,
        props: &kaigo_hub::bus::Props,
    ) -> Result<(), Failure> {
        use kaigo_hub::pipeline::replay::{PREVIEW_REASON, audit_event, parked_subjects};
        for subject in parked_subjects(props) {
            self.record_at(Hop::Admin, |d| {
                audit_event(
                    d,
                    props,
                    envelope,
                    Decision::Accepted,
                    PREVIEW_REASON,
                    subject,
                )
            })?;
        }
        Ok(())
    }

    /// `kaigo-hub replay` kept the parked message `envelope` where it is, for `code`.
    pub fn kept(
        &mut self,
        envelope: &str,
        props: &kaigo_hub::bus::Props,
        code: &str,
    ) -> Result<(), Failure> {
        self.parked(envelope, props, Decision::Rejected, code)
    }

    fn parked(
        &mut self,
        envelope: &str,
        props: &kaigo_hub::bus::Props,
        decision: Decision,
        reason: &str,
    ) -> Result<(), Failure> {
        use kaigo_hub::pipeline::replay::{audit_event, parked_subjects};
        for subject in parked_subjects(props) {
            self.record_at(Hop::Replay, |d| {
                audit_event(d, props, envelope, decision, reason, subject)
            })?;
        }
        Ok(())
    }

    /// The registry refused a change: recorded as the HTTP door records it (an unreachable
    /// registry changed nothing and is not recorded). Returns the command's failure.
    pub fn refused(&mut self, e: ConsentError) -> Failure {
        let code = match &e {
            ConsentError::IdInUse { .. } | ConsentError::AlreadyRevoked { .. } => {
                Some("consent-id-in-use")
            }
            ConsentError::Invalid { .. } | ConsentError::UnknownConsent { .. } => {
                Some("consent-invalid")
            }
            ConsentError::Unavailable { .. } => None,
        };
        let failure = Failure::input(e.to_string());
        if let Some(code) = code
            && let Err(f) = self.record(|d| d.decision(Decision::Rejected).reason(code))
        {
            return Failure::input(format!("{}; {}", failure.message, f.message));
        }
        failure
    }

    /// `kaigo-hub audit search` looked for `subject`: recorded before the search runs, as the
    /// subject's keyed hash (reason `search-person`), never the numbers.
    pub fn searched(&mut self, subject: &Subject) -> Result<(), Failure> {
        let Some((_, hasher)) = &self.open else {
            return Ok(());
        };
        let hash = hasher.hash_subject(subject);
        self.record(|d| {
            d.subject(hash)
                .decision(Decision::Accepted)
                .reason("search-person")
        })
    }

    /// Fsyncs the events and records the chain's checkpoint in the store.
    pub fn finish(mut self) -> Result<(), Failure> {
        let Some((appender, _)) = self.open.take() else {
            return Ok(());
        };
        let chain = appender.chain().to_string();
        appender
            .finish(self.store.audit_checkpoints(), &clock::now_rfc3339())
            .map(|_| ())
            .map_err(|e| {
                Failure::input(format!(
                    "the change is stored and audited in chain {chain}, but: {e}"
                ))
            })
    }

    fn record(&mut self, f: impl FnOnce(AuditDraft) -> AuditDraft) -> Result<(), Failure> {
        self.record_at(Hop::Admin, f)
    }

    fn record_at(
        &mut self,
        hop: Hop,
        f: impl FnOnce(AuditDraft) -> AuditDraft,
    ) -> Result<(), Failure> {
        let Some((appender, _)) = &mut self.open else {
            return Ok(());
        };
        let unwritten = |e: String| {
            Failure::input(format!(
                "the change is made, but its audit event could not be written: {e}"
            ))
        };
        let draft = f(AuditDraft::new(now().map_err(unwritten)?, hop, &self.actor));
        appender
            .append(draft)
            .map(|_| ())
            .map_err(|e| unwritten(e.to_string()))
    }
}

impl Drop for Trail {
    /// A command that failed part-way: what it did is fsynced and checkpointed all the same.
    fn drop(&mut self) {
        if let Some((appender, _)) = self.open.take()
            && let Err(e) = appender.finish(self.store.audit_checkpoints(), &clock::now_rfc3339())
        {
            eprintln!("kaigo-hub: the audit checkpoint was not recorded: {e}");
        }
    }
}

fn now() -> Result<Timestamp, String> {
    Timestamp::parse(&clock::now_rfc3339()).map_err(|e| e.to_string())
}

/// `cli:uid-<n>`: who ran the command, as the operating system numbers them (a login name may be
/// a person's name, which the audit log never holds).
fn actor() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata("/proc/self") {
            return format!("cli:uid-{}", m.uid());
        }
    }
    "cli".into()
}
