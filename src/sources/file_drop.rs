//! The file-drop source: parties that exchange files (ケアプラン CSV, MS932) drop them into their
//! own `inbox` directory; owning the inbox is what authenticates them. Every `poll`, each regular
//! file directly in an inbox whose name does not start with `.` (senders write under a dot-name
//! and rename when done) is claimed by renaming it into `<inbox>/processing/` — a rename either
//! succeeds for exactly one hub process or fails, so a file is never ingested twice — then read
//! and handed to `ingress::accept` with its original name. Where it goes next says what
//! happened: `done/` once the broker confirmed (with `<name>.report.txt` beside it when some of
//! its documents were refused: which, and why, in ids and codes; the others go on); `failed/` with `<name>.error.txt` beside it (ids
//! and the error, nothing else) when it was malformed or refused (ingress kept a copy in the
//! dead-letter or quarantine queue), or unread when it is larger than `body_limit` (the limit of
//! every door: its length is looked at before a byte is read); back into the inbox, for the next
//! poll, when the bus or the registry was unavailable. Files found in `processing/` at start were
//! claimed by a process that crashed and go back to the inbox first. Sub-directories are made when
//! first needed; an inbox that does not exist is skipped. On shutdown the file in hand is
//! finished, then the task ends. Must never ingest a file twice, lose one, or write personal data
//! into an error file.

use crate::audit::{Decision as AuditDecision, Hop};
use crate::parties::Party;
use crate::pipeline::body_limit::{BodyLimit, TooLarge};
use crate::pipeline::ingress::{self, Refusal, Submission};
use crate::pipeline::metrics::Metrics;
use crate::pipeline::{Hub, clock};
use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PROCESSING: &str = "processing";
const DONE: &str = "done";
const FAILED: &str = "failed";

/// What the file-drop source is built from: the settings `poll_ms` and `body_limit` (the inboxes
/// are the parties'). Nothing in it can be wrong on its own: a `poll` under 10 ms is taken as
/// 10 ms.
#[derive(Debug, Clone, Copy)]
pub struct FileDropConfig {
    /// `poll_ms`: how often every inbox is scanned.
    pub poll: Duration,
    /// `body_limit`: a larger file goes to `failed/` unread.
    pub body_limit: BodyLimit,
}

/// Scans every party's inbox every `cfg.poll` until `shutdown` turns true.
pub fn start(
    hub: Arc<Hub>,
    cfg: FileDropConfig,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(hub, cfg.poll, cfg.body_limit, shutdown))
}

async fn run(hub: Arc<Hub>, poll: Duration, limit: BodyLimit, mut shutdown: watch::Receiver<bool>) {
    // Inboxes seen so far: each is recovered when first seen, at start or after a reload of the
    // parties file added it.
    let mut known: HashSet<PathBuf> = HashSet::new();
    let poll = poll.max(Duration::from_millis(10));
    loop {
        let parties = hub.parties.current();
        let inboxes: Vec<(&Party, &PathBuf)> = parties
            .all
            .iter()
            .filter_map(|p| Some((p, p.inbox.as_ref()?)))
            .collect();
        for (_, inbox) in &inboxes {
            if known.insert(inbox.to_path_buf()) {
                recover(inbox).await;
            }
        }
        'scan: for (party, inbox) in inboxes {
            for name in waiting(inbox).await {
                if *shutdown.borrow() {
                    return;
                }
                if ingest(&hub, party, inbox, &name, limit).await == Outcome::Unavailable {
                    // Everything else would be refused the same way: retry at the next poll.
                    break 'scan;
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Moves files a crashed process left in `processing/` back into the inbox.
async fn recover(inbox: &Path) {
    let processing = inbox.join(PROCESSING);
    for name in regular_files(&processing).await {
        let back = inbox.join(&name);
        if tokio::fs::try_exists(&back).await.unwrap_or(true) {
            tracing::warn!(inbox = %inbox.display(), file = %name, "file drop: a claimed file and a new one share a name; left in processing/");
            continue;
        }
        match tokio::fs::rename(processing.join(&name), &back).await {
            Ok(()) => {
                tracing::warn!(inbox = %inbox.display(), file = %name, "file drop: unfinished file put back into the inbox")
            }
            Err(e) => {
                tracing::warn!(inbox = %inbox.display(), file = %name, error = %e, "file drop: cannot put an unfinished file back")
            }
        }
    }
}

/// Names of the files waiting in an inbox, oldest name first (names carry timestamps).
async fn waiting(inbox: &Path) -> Vec<String> {
    let mut names = regular_files(inbox).await;
    names.sort();
    names
}

/// Regular files directly in `dir` whose names are UTF-8 and do not start with `.`.
async fn regular_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return out,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "file drop: cannot list");
            return out;
        }
    };
    loop {
        match entries.next_entry().await {
            Ok(Some(entry)) => {
                let is_file = entry
                    .file_type()
                    .await
                    .map(|t| t.is_file())
                    .unwrap_or(false);
                let name = entry.file_name();
                match name.to_str() {
                    Some(n) if is_file && !n.starts_with('.') => out.push(n.to_string()),
                    Some(_) => {}
                    None if is_file => {
                        tracing::warn!(dir = %dir.display(), file = ?name, "file drop: file name is not UTF-8; skipped")
                    }
                    None => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "file drop: cannot list");
                break;
            }
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Accepted, refused or left alone: go on with the next file.
    Settled,
    /// The bus or registry is unreachable: the file is back in the inbox.
    Unavailable,
}

/// Claims, reads, ingests and files away one file.
async fn ingest(hub: &Hub, party: &Party, inbox: &Path, name: &str, limit: BodyLimit) -> Outcome {
    let processing = inbox.join(PROCESSING);
    let claimed = processing.join(name);
    if let Err(e) = tokio::fs::create_dir_all(&processing).await {
        tracing::warn!(inbox = %inbox.display(), error = %e, "file drop: cannot make processing/");
        return Outcome::Settled;
    }
    if tokio::fs::try_exists(&claimed).await.unwrap_or(true) {
        // Still being processed (here or by another hub): leave the new one for later.
        return Outcome::Settled;
    }
    match tokio::fs::rename(inbox.join(name), &claimed).await {
        Ok(()) => {}
        // Another hub process claimed it first.
        Err(e) if e.kind() == ErrorKind::NotFound => return Outcome::Settled,
        Err(e) => {
            tracing::warn!(inbox = %inbox.display(), file = name, error = %e, "file drop: cannot claim");
            return Outcome::Settled;
        }
    }

    let bytes = match read_limited(&claimed, limit).await {
        Ok(Ok(b)) => b,
        Ok(Err(too_large)) => {
            // Not read: nothing of it reaches the bus. The size is no personal data.
            Metrics::inc(&hub.metrics.rejected);
            let envelope = clock::envelope_id();
            hub.audit(Hop::Ingress, "file", &envelope, |d| {
                d.party(party.id.as_str())
                    .decision(AuditDecision::Rejected)
                    .reason(TooLarge::REASON)
            });
            let reason = format!("{too_large}; the file was not read");
            fail(party, inbox, name, None, TooLarge::REASON, &reason).await;
            return Outcome::Settled;
        }
        Err(e) => {
            tracing::warn!(inbox = %inbox.display(), file = name, error = %e, "file drop: cannot read; put back");
            put_back(inbox, name).await;
            return Outcome::Settled;
        }
    };
    let result = ingress::accept(
        hub,
        Submission {
            party,
            bytes: &bytes,
            file_name: Some(name),
            correlation_id: None,
            via: "file",
        },
    )
    .await;
    match result {
        Ok(accepted) => {
            match settle(inbox, name, DONE).await {
                Ok(to) => {
                    if !accepted.refused.is_empty() || !accepted.warnings.is_empty() {
                        report_refused(party, &to, name, &accepted).await;
                    }
                    tracing::info!(envelope = %accepted.envelope_id, party = %party.id, file = name, to = %to.display(), refused = accepted.refused.len(), "file drop: accepted")
                }
                Err(e) => {
                    tracing::error!(envelope = %accepted.envelope_id, party = %party.id, file = name, error = %e, "file drop: accepted, but cannot move it to done/ (it would be ingested again after a restart)")
                }
            }
            Outcome::Settled
        }
        Err(Refusal::Malformed {
            envelope_id,
            message,
        }) => {
            // The error file is the hub's, beside the message: where and why, never a value.
            fail(
                party,
                inbox,
                name,
                Some(&envelope_id),
                "malformed",
                &message.to_string(),
            )
            .await;
            Outcome::Settled
        }
        Err(Refusal::Forbidden {
            envelope_id,
            reason,
            detail,
            documents,
        }) => {
            let mut why = format!("{reason}: {detail}");
            if documents.len() > 1 {
                for r in &documents {
                    why.push('\n');
                    why.push_str(&document_line(r));
                }
            }
            fail(party, inbox, name, Some(&envelope_id), "refused", &why).await;
            Outcome::Settled
        }
        Err(Refusal::Unavailable { message }) => {
            tracing::warn!(party = %party.id, file = name, error = %message, "file drop: unavailable; retried at the next poll");
            put_back(inbox, name).await;
            Outcome::Unavailable
        }
    }
}

/// The bytes of the claimed file at `path`, or, when it is larger than `limit`, its refusal: the
/// length is looked at first, and the read stops one byte past the limit, should the file have
/// grown since (a sender still writing into a name it should not have used yet).
async fn read_limited(path: &Path, limit: BodyLimit) -> std::io::Result<Result<Vec<u8>, TooLarge>> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    if let Err(too_large) = limit.check("the file", len) {
        return Ok(Err(too_large));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let cap = limit.bytes() as u64 + 1;
    (&mut file).take(cap).read_to_end(&mut bytes).await?;
    if bytes.len() > limit.bytes() {
        return Ok(Err(limit.exceeded("the file", None)));
    }
    Ok(Ok(bytes))
}

/// Moves a claimed file to `failed/` and writes the reason beside it.
async fn fail(
    party: &Party,
    inbox: &Path,
    name: &str,
    envelope: Option<&str>,
    outcome: &str,
    error: &str,
) {
    let to = match settle(inbox, name, FAILED).await {
        Ok(to) => to,
        Err(e) => {
            tracing::error!(party = %party.id, file = name, error = %e, "file drop: cannot move to failed/");
            return;
        }
    };
    let moved_as = file_name_of(&to, name);
    let report = format!(
        "file: {name}\nparty: {}\nenvelope: {}\noutcome: {outcome}\nerror: {error}\n",
        party.id,
        envelope.unwrap_or("-"),
    );
    let report_path = to.with_file_name(format!("{moved_as}.error.txt"));
    if let Err(e) = tokio::fs::write(&report_path, report).await {
        tracing::error!(file = %report_path.display(), error = %e, "file drop: cannot write the error file");
    }
    tracing::info!(envelope = envelope.unwrap_or("-"), party = %party.id, file = name, outcome, "file drop: failed");
}

/// Writes `<name>.report.txt` beside a file in `done/` some of whose documents were refused, or
/// that a mapping warned of: the file, party, envelope, one line per refused document (number,
/// kind, reason code, what clears it) and one per warning (where, what, the rule): ids, codes
/// and locations only, like an error file.
async fn report_refused(party: &Party, to: &Path, name: &str, accepted: &ingress::Accepted) {
    let path = to.with_file_name(format!("{}.report.txt", file_name_of(to, name)));
    if let Err(e) = tokio::fs::write(&path, refused_report(party, name, accepted)).await {
        tracing::error!(file = %path.display(), error = %e, "file drop: cannot write the report of refused documents");
    }
}

fn refused_report(party: &Party, name: &str, a: &ingress::Accepted) -> String {
    let mut report = if a.refused.is_empty() {
        format!(
            "file: {name}\nparty: {}\nenvelope: {}\noutcome: accepted\ndocuments: {}\n",
            party.id, a.envelope_id, a.documents
        )
    } else {
        format!(
            "file: {name}\nparty: {}\nenvelope: {}\noutcome: accepted-in-part\ndocuments: {}\nrefused: {} (kept in quarantine; the others go on)\n",
            party.id,
            a.envelope_id,
            a.documents,
            a.refused.len()
        )
    };
    for r in &a.refused {
        report.push_str(&document_line(r));
        report.push('\n');
    }
    for w in &a.warnings {
        report.push_str(&format!("warning: {w}\n"));
    }
    report
}

/// One refused document as the report and the error file write it: number, kind, reason code,
/// what clears it and, when the mapping run knows, where in the file (` (at record 3, line 4)`).
fn document_line(r: &ingress::RefusedDocument) -> String {
    let at = r
        .origin
        .as_deref()
        .map_or_else(String::new, |o| format!(" (at {o})"));
    format!(
        "document {} ({}): {}: {}{at}",
        r.number, r.kind, r.reason, r.detail
    )
}

/// The name a file got where it was moved (`<name>.1` when `<name>` was taken).
fn file_name_of(to: &Path, name: &str) -> String {
    to.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
        .to_string()
}

/// Moves `processing/<name>` into `<inbox>/<dir>/`, never over an existing file (a second file
/// of the same name becomes `<name>.1`, …). Returns where it went.
async fn settle(inbox: &Path, name: &str, dir: &str) -> std::io::Result<PathBuf> {
    let target_dir = inbox.join(dir);
    tokio::fs::create_dir_all(&target_dir).await?;
    let mut to = target_dir.join(name);
    let mut n = 0u32;
    while tokio::fs::try_exists(&to).await? {
        n += 1;
        to = target_dir.join(format!("{name}.{n}"));
    }
    tokio::fs::rename(inbox.join(PROCESSING).join(name), &to).await?;
    Ok(to)
}

/// Returns a claimed file to the inbox for a later poll.
async fn put_back(inbox: &Path, name: &str) {
    if let Err(e) = tokio::fs::rename(inbox.join(PROCESSING).join(name), inbox.join(name)).await {
        tracing::error!(inbox = %inbox.display(), file = name, error = %e, "file drop: cannot put the file back; it stays in processing/ until the next start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kaigo-file-drop-{tag}-{}-{}",
            std::process::id(),
            crate::pipeline::clock::envelope_id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_report_of_refused_documents_names_each_by_number_kind_and_reason() {
        let party: Party =
            serde_json::from_str(r#"{"id":"0300000005","kind":"provider"}"#).expect("a party");
        let a = ingress::Accepted {
            envelope_id: "k42".into(),
            mapping: "roster".into(),
            documents: 100,
            refused: vec![ingress::RefusedDocument {
                number: 7,
                kind: "InsuredPerson@1".into(),
                reason: "unknown-subject".into(),
                detail: "document 7 (InsuredPerson@1) carries no 保険者番号 + 被保険者番号".into(),
                origin: Some("record 7, line 8".into()),
            }],
            warnings: Vec::new(),
        };
        let report = refused_report(&party, "roster.csv", &a);
        for line in [
            "file: roster.csv",
            "party: 0300000005",
            "envelope: k42",
            "outcome: accepted-in-part",
            "documents: 100",
            "refused: 1 (kept in quarantine; the others go on)",
            "document 7 (InsuredPerson@1): unknown-subject: document 7 (InsuredPerson@1) carries no",
        ] {
            assert!(
                report.contains("被保険者番号 (at record 7, line 8)\n"),
                "where in the file: {report}"
            );
            assert!(
                report.lines().any(|l| l.starts_with(line)),
                "`{line}` missing: {report}"
            );
        }
        assert_eq!(report.lines().count(), 7, "{report}");

        // A file no document of which was refused, but that a mapping warned of, gets a report
        // too: accepted, with one line per warning.
        let warned = ingress::Accepted {
            refused: Vec::new(),
            warnings: vec!["record 9 (line 9), column 41: 1 value kept: a later revision's fields (rule `totals[+].extra_fields` in claims-statement.yaml:162:7)".into()],
            ..a
        };
        let report = refused_report(&party, "d0711b.csv", &warned);
        assert_eq!(
            report,
            "file: d0711b.csv\nparty: 0300000005\nenvelope: k42\noutcome: accepted\ndocuments: 100\nwarning: record 9 (line 9), column 41: 1 value kept: a later revision's fields (rule `totals[+].extra_fields` in claims-statement.yaml:162:7)\n"
        );
    }

    #[tokio::test]
    async fn only_visible_regular_files_are_waiting_in_name_order() {
        let d = temp("list");
        std::fs::write(d.join("b.csv"), "x").unwrap();
        std::fs::write(d.join("a.csv"), "x").unwrap();
        std::fs::write(d.join(".partial.csv"), "x").unwrap();
        std::fs::create_dir_all(d.join("done")).unwrap();
        assert_eq!(waiting(&d).await, vec!["a.csv", "b.csv"]);
        assert!(waiting(&d.join("missing")).await.is_empty());
        let _ = std::fs::remove_dir_all(d);
    }

    #[tokio::test]
    async fn settling_never_overwrites_and_recovery_puts_claimed_files_back() {
        let d = temp("settle");
        std::fs::create_dir_all(d.join(PROCESSING)).unwrap();
        std::fs::write(d.join(PROCESSING).join("f.csv"), "one").unwrap();
        assert_eq!(
            settle(&d, "f.csv", DONE).await.unwrap(),
            d.join(DONE).join("f.csv")
        );
        std::fs::write(d.join(PROCESSING).join("f.csv"), "two").unwrap();
        assert_eq!(
            settle(&d, "f.csv", DONE).await.unwrap(),
            d.join(DONE).join("f.csv.1")
        );
        assert_eq!(
            std::fs::read_to_string(d.join(DONE).join("f.csv")).unwrap(),
            "one"
        );

        std::fs::write(d.join(PROCESSING).join("g.csv"), "crashed").unwrap();
        recover(&d).await;
        assert_eq!(std::fs::read_to_string(d.join("g.csv")).unwrap(), "crashed");
        assert!(regular_files(&d.join(PROCESSING)).await.is_empty());
        let _ = std::fs::remove_dir_all(d);
    }
}
