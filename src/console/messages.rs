//! The Messages page: a search (POSTed, so a person's numbers never enter a URL) over the archive
//! and the audit log (`crate::trace`), the trace of one message across every hop, and, for a
//! privacy officer or an administrator who states a reason, the message's bodies from the
//! encrypted archive. In: the operator's session and forms. Out: HTML pages (every value put
//! through `escape`). Every search by a person and every body view is an audit event naming the
//! operator (`console:<account>`), with the person's keyed hash only; a body view records the
//! stated reason. Must never: show a body to a role that does not allow it or before its audit
//! event was recorded, or echo a person's numbers back.

use super::layout::{escape, page as shell};
use super::roles::Action;
use super::session::{Posted, Session};
use super::{Console, ConsoleError};
use crate::audit::{Decision, Hop, SubjectHash};
use crate::store::archive::Archive;
use crate::trace::{self, Found, Search, Term, Trace};
use actix_web::{HttpResponse, web};

/// Messages listed at most.
const LIMIT: usize = 200;

/// Longest stated reason for a body view kept in the audit event, bytes.
const MAX_REASON: usize = 200;

/// The audit events of the console's logs, read off the request's thread.
async fn events(console: &Console) -> Result<Vec<crate::audit::AuditEvent>, ConsoleError> {
    let logs = console.audit_logs.clone();
    web::block(move || {
        let mut out = Vec::new();
        trace::read_events(&logs, |e| out.push(e)).map(|()| out)
    })
    .await
    .map_err(|e| ConsoleError::Internal(e.to_string()))?
    .map_err(ConsoleError::Internal)
}

/// `GET /console/messages`: the search form and the latest messages.
pub async fn page(
    session: Session,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    let found = run(&console, Search::default()).await?;
    Ok(render(&session, &console, "", None, &found))
}

/// `POST /console/messages`: a search. A person is hashed before anything is looked up, and the
/// search is audited (reason `search-person`, the keyed hash).
pub async fn search(
    post: Posted,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    let session = &post.session;
    let (q, from, to) = (
        post.get("q").unwrap_or(""),
        post.get("from").unwrap_or(""),
        post.get("to").unwrap_or(""),
    );
    let search = match Search::parse(q, from, to) {
        Ok(s) => s,
        Err(why) => return Ok(render(session, &console, "", Some(&why), &[])),
    };
    if let Term::Person(subject) = &search.term {
        session.require(Action::SearchPerson)?;
        let hash = console.hub.hasher.hash_subject(subject);
        console.audit(Hop::Admin, session, |d| {
            d.decision(Decision::Accepted)
                .reason("search-person")
                .subject(hash)
        });
    }
    // A person's numbers are not shown back in the box.
    let shown = if search.term.is_person() { "" } else { q };
    let found = run(&console, search).await?;
    Ok(render(session, &console, shown, None, &found))
}

async fn run(console: &Console, search: Search) -> Result<Vec<Found>, ConsoleError> {
    let events = events(console).await?;
    let hub = console.hub.clone();
    web::block(move || {
        let archive = hub.archive.as_ref().and_then(|a| a.store().archive());
        trace::search(&search, &hub.hasher, archive, events, LIMIT)
    })
    .await
    .map_err(|e| ConsoleError::Internal(e.to_string()))?
    .map_err(ConsoleError::Internal)
}

fn render(
    session: &Session,
    console: &Console,
    q: &str,
    error: Option<&str>,
    found: &[Found],
) -> HttpResponse {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"search-error\" role=\"alert\">{}</p>\n",
                escape(e)
            )
        })
        .unwrap_or_default();
    let archive = if console.hub.archive.is_some() {
        "The search reads the encrypted archive (messages within <code>archive_keep_days</code>); \
         a recipient is found in the audit log."
    } else {
        "The archive is off (no <code>archive_key_file</code>): the search reads the audit log, \
         and no body can be shown."
    };
    let mut rows = String::new();
    for f in found {
        let m = &f.meta;
        rows.push_str(&format!(
            "<tr data-envelope=\"{id}\"><td>{at}</td><td><a href=\"/console/messages/{id}\">{id}</a></td>\
             <td>{sender}</td><td>{format}</td><td>{kinds}</td><td>{outcome}</td><td>{archived}</td></tr>\n",
            id = escape(&m.envelope),
            at = escape(&m.at),
            sender = escape(&m.sender),
            format = escape(&m.format),
            kinds = escape(&m.kinds.join(", ")),
            outcome = escape(&m.outcome),
            archived = if f.archived { "yes" } else { "no" },
        ));
    }
    let empty = if found.is_empty() {
        "<p class=\"note\" id=\"no-results\">No message found.</p>\n"
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Messages</h1>
<form id="search-form" class="card" method="post" action="/console/messages">
{csrf}
<label for="q">Search</label>
<input type="search" name="q" id="q" value="{q}" placeholder="envelope id, sender:PARTY, recipient:PARTY, kind:InsuranceCard, 保険者番号:被保険者番号" autocomplete="off">
<label for="from">From (UTC)</label>
<input type="datetime-local" name="from" id="from">
<label for="to">To (UTC)</label>
<input type="datetime-local" name="to" id="to">
<p><button id="search" type="submit">Search</button></p>
<p class="note">A person (保険者番号:被保険者番号) is hashed with the hub's subject key before anything is looked up, and every search by a person is recorded in the audit log under your account. {archive}</p>
</form>
{error}<table id="results">
<thead><tr><th>kept at (UTC)</th><th>envelope</th><th>sender</th><th>format</th><th>documents</th><th>at ingress</th><th>archived</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
{empty}"#,
        csrf = session.csrf_field(),
        q = escape(q),
    );
    shell("Messages", session, &body)
}

/// An envelope id from the path, or 400 (it is shown back, so only id characters pass).
fn envelope_of(path: &str) -> Result<String, ConsoleError> {
    if path.is_empty()
        || path.len() > crate::audit::MAX_ID_BYTES
        || !path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConsoleError::BadRequest(
            "An envelope id is letters, digits, `-` and `_`.".into(),
        ));
    }
    Ok(path.to_string())
}

async fn trace_of(console: &Console, envelope: &str) -> Result<Trace, ConsoleError> {
    let events = events(console).await?;
    let hub = console.hub.clone();
    let envelope = envelope.to_string();
    web::block(move || {
        let archive = hub.archive.as_ref().and_then(|a| a.store().archive());
        trace::trace(&envelope, events, archive)
    })
    .await
    .map_err(|e| ConsoleError::Internal(e.to_string()))?
    .map_err(ConsoleError::Internal)
}

/// `; person 3f2a9c01…`: the first eight hex digits of a step's keyed subject hash, so that the
/// steps of a file of several people can be told apart (never a number of the person).
fn person(subject: &Option<String>) -> String {
    match subject.as_deref() {
        Some(h) if h.len() >= 8 => format!("; person {}…", escape(&h[..8])),
        _ => String::new(),
    }
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(escape).unwrap_or_else(|| "—".into())
}

/// `GET /console/messages/{envelope}`: the trace; the body form for privacy and admin.
pub async fn trace(
    session: Session,
    console: web::Data<Console>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let envelope = envelope_of(&path)?;
    let t = trace_of(&console, &envelope).await?;
    if t.is_empty() {
        return Ok(shell(
            "Message",
            &session,
            &format!(
                "<h1>Message {}</h1>\n<p class=\"error\" id=\"not-found\">Nothing is known of this \
                 envelope: no audit event and no archived copy.</p>\n<p><a href=\"/console/messages\">Back to the search</a></p>",
                escape(&envelope)
            ),
        ));
    }
    let mappings = t.mappings();
    let mapping = if mappings.is_empty() {
        "unknown (not archived)".to_string()
    } else {
        escape(&mappings.join(", "))
    };
    let summary = match &t.original {
        Some(o) => format!(
            "<dl class=\"card\" id=\"summary\"><dt>sender</dt><dd id=\"sender\">{}</dd><dt>format</dt><dd>{}</dd>\
             <dt>kept at</dt><dd>{}</dd><dt>at ingress</dt><dd>{}</dd><dt>documents</dt><dd>{}</dd>\
             <dt>mapping</dt><dd id=\"mapping\">{mapping}</dd></dl>",
            escape(&o.sender),
            escape(&o.format),
            escape(&o.at),
            escape(&o.outcome),
            escape(&o.kinds.join(", ")),
        ),
        None => format!(
            "<dl class=\"card\" id=\"summary\"><dt>archive</dt><dd>no archived copy (archive off, or older than archive_keep_days)</dd>\
             <dt>mapping</dt><dd id=\"mapping\">{mapping}</dd></dl>"
        ),
    };
    // Steps and consent decisions in the log's (time) order.
    let mut items: Vec<(String, String)> = Vec::new();
    for s in &t.steps {
        let mapping = if s.hop == "translate" && !mappings.is_empty() {
            format!(
                " <span class=\"mapping\">{}</span>",
                escape(&mappings.join(", "))
            )
        } else {
            String::new()
        };
        items.push((
            s.at.clone(),
            format!(
                "<li class=\"step\" data-hop=\"{hop}\" data-outcome=\"{outcome}\"><time>{at}</time> \
                 <b>{hop}</b> {outcome} <span class=\"note\">by {actor}; party {party}; document {doc}; reason {reason}{person}</span>{mapping}</li>",
                person = person(&s.subject),
                hop = escape(&s.hop),
                outcome = escape(&s.outcome),
                at = escape(&s.at),
                actor = escape(&s.actor),
                party = opt(&s.party),
                doc = opt(&s.document),
                reason = opt(&s.reason),
            ),
        ));
    }
    for d in &t.decisions {
        items.push((
            d.at.clone(),
            format!(
                "<li class=\"step decision\" data-hop=\"consent\" data-point=\"{point}\" data-decision=\"{decision}\"><time>{at}</time> \
                 <b>consent at {point}</b>: {decision} <span class=\"note\">consent id <span class=\"consent-id\">{id}</span>; \
                 category {category}; purpose {purpose}; recipient <span class=\"recipient\">{recipient}</span>; reason {reason}; document {doc}{person}</span></li>",
                person = person(&d.subject),
                point = escape(&d.point),
                decision = escape(&d.decision),
                at = escape(&d.at),
                id = opt(&d.consent_id),
                category = opt(&d.category),
                purpose = d.purpose.as_deref().map(escape).unwrap_or_else(|| "none stated".into()),
                recipient = opt(&d.recipient),
                reason = opt(&d.reason),
                doc = opt(&d.document),
            ),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let steps: String = items.into_iter().map(|(_, li)| li + "\n").collect();
    let deliveries: String = t
        .deliveries()
        .map(|s| {
            format!(
                "<li class=\"delivery\" data-recipient=\"{r}\" data-outcome=\"{o}\"><time>{at}</time> {r}: <b>{o}</b>{reason}</li>\n",
                r = escape(s.party.as_deref().unwrap_or("")),
                o = escape(&s.outcome),
                at = escape(&s.at),
                reason = s
                    .reason
                    .as_deref()
                    .map(|r| format!(" <span class=\"note\">({})</span>", escape(r)))
                    .unwrap_or_default(),
            )
        })
        .collect();
    let documents: String = t
        .documents
        .iter()
        .map(|d| {
            format!(
                "<tr data-index=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                d.index,
                d.index,
                escape(&d.kind),
                escape(d.subject.as_deref().map_or("—", |s| &s[..s.len().min(16)])),
                escape(&d.mapping)
            )
        })
        .collect();
    let bodies = if !session.may(Action::ViewBody) {
        "<p class=\"note\" id=\"no-body\">Your role shows metadata only; a privacy officer or an administrator can view the bodies.</p>".to_string()
    } else if console.hub.archive.is_none() || t.original.is_none() {
        "<p class=\"note\" id=\"no-body\">No archived body to show (the archive is off, or this message is older than archive_keep_days).</p>".to_string()
    } else {
        format!(
            r#"<form id="body-form" class="card" method="post" action="/console/messages/{id}/body">
{csrf}
<label for="reason">Why do you need to see this message's content?</label>
<input type="text" name="reason" id="reason" required maxlength="{MAX_REASON}" placeholder="e.g. ticket 1234: the sender asks why it was quarantined">
<p class="note">The view is recorded in the audit log with your account and this reason; do not write personal data in it.</p>
<p><button id="view-body" type="submit">View the body</button></p>
</form>"#,
            id = escape(&envelope),
            csrf = session.csrf_field(),
        )
    };
    let body = format!(
        r#"<h1>Message <code id="envelope">{id}</code></h1>
{summary}
<h2>Journey</h2>
<ol id="trace">
{steps}</ol>
<h2>Deliveries</h2>
<ul id="deliveries">
{deliveries}</ul>
<h2>Documents</h2>
<table id="documents"><thead><tr><th>index</th><th>kind</th><th>subject (keyed hash)</th><th>mapping</th></tr></thead>
<tbody>
{documents}</tbody></table>
<h2>Content</h2>
{bodies}
<p><a href="/console/messages">Back to the search</a></p>"#,
        id = escape(&envelope),
    );
    Ok(shell("Message", &session, &body))
}

/// The stated reason as the audit event keeps it: control characters made spaces, cut to
/// [`MAX_REASON`] bytes on a character boundary; `None` when nothing is left.
fn stated(reason: &str) -> Option<String> {
    let clean: String = reason
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut cut = clean.len().min(MAX_REASON);
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    let out = clean[..cut].trim().to_string();
    (!out.is_empty()).then_some(out)
}

/// `POST /console/messages/{envelope}/body`: the original and its canonical documents, opened
/// from the archive, for a role that may view bodies and with a stated reason; recorded in the
/// audit log (reason `view-body: <stated reason>`, one event per person it names) before
/// anything is shown.
pub async fn body(
    post: Posted,
    console: web::Data<Console>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let session = &post.session;
    session.require(Action::ViewBody)?;
    let envelope = envelope_of(&path)?;
    let reason = stated(post.get("reason").unwrap_or("")).ok_or_else(|| {
        ConsoleError::BadRequest("State why you need to see this message's content.".into())
    })?;
    let Some(archiver) = console.hub.archive.clone() else {
        return Err(ConsoleError::BadRequest(
            "The archive is off (no archive_key_file): there is no body to show.".into(),
        ));
    };
    let env = envelope.clone();
    let opened = web::block(move || {
        let store = archiver
            .store()
            .archive()
            .ok_or_else(|| "this store keeps no archive".to_string())?;
        let archive = Archive {
            store,
            key: archiver.key(),
        };
        let original = archive.original(&env).map_err(|e| e.to_string())?;
        let documents = archive.documents(&env).map_err(|e| e.to_string())?;
        Ok::<_, String>((original, documents))
    })
    .await
    .map_err(|e| ConsoleError::Internal(e.to_string()))?
    .map_err(ConsoleError::Internal)?;
    let (Some((meta, original)), documents) = opened else {
        return Err(ConsoleError::BadRequest(
            "No archived body of this message (older than archive_keep_days, or never archived)."
                .into(),
        ));
    };
    // Audited first, one event per person the message names (none named: one without).
    let mut hashes: Vec<SubjectHash> = Vec::new();
    let named = meta
        .subjects
        .iter()
        .chain(documents.iter().filter_map(|d| d.meta.subject.as_ref()));
    for h in named {
        if let Ok(h) = SubjectHash::from_hex(h)
            && !hashes.contains(&h)
        {
            hashes.push(h);
        }
    }
    let what = format!("view-body: {reason}");
    let record = |subject: Option<SubjectHash>| {
        console.audit(Hop::Admin, session, |d| {
            let d = d
                .decision(Decision::Accepted)
                .envelope_id(envelope.as_str())
                .reason(what.as_str());
            match subject {
                Some(s) => d.subject(s),
                None => d,
            }
        })
    };
    if hashes.is_empty() {
        record(None);
    }
    for h in hashes {
        record(Some(h));
    }
    let charset = crate::formats::charset::sniff(&original);
    let text = crate::formats::charset::decode(&original, charset)
        .map(|t| t.into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&original).into_owned());
    let canonical: String = documents
        .iter()
        .map(|d| {
            let pretty = serde_json::from_slice::<serde_json::Value>(&d.json)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&d.json).into_owned());
            format!(
                "<h3>Document {} — {}</h3>\n<pre class=\"canonical\" data-index=\"{}\">{}</pre>\n",
                d.meta.index,
                escape(&d.meta.kind),
                d.meta.index,
                escape(&pretty)
            )
        })
        .collect();
    let body = format!(
        r#"<h1>Content of <code id="envelope">{id}</code></h1>
<p class="note" id="viewed">Shown to {account} for “{reason}”; this view is recorded in the audit log.</p>
<h2>Original ({format}, {charset})</h2>
<pre id="body">{text}</pre>
<h2>Canonical documents</h2>
{canonical}
<p><a href="/console/messages/{id}">Back to the trace</a></p>"#,
        id = escape(&envelope),
        account = escape(&session.account),
        reason = escape(&reason),
        format = escape(&meta.format),
        charset = escape(charset.name()),
        text = escape(&text),
    );
    Ok(shell("Message content", session, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stated_reason_is_kept_on_one_line_within_its_bound() {
        assert_eq!(
            stated("  ticket 12\nfrom the sender "),
            Some("ticket 12 from the sender".into())
        );
        assert_eq!(stated(" \t "), None);
        let long = "理".repeat(100);
        let kept = stated(&long).expect("kept");
        assert!(kept.len() <= MAX_REASON && kept.chars().all(|c| c == '理'));
    }

    #[test]
    fn only_id_characters_pass_as_an_envelope() {
        assert!(envelope_of("k0192af3c-1").is_ok());
        for bad in ["", "a/b", "<x>", "131011:0000100001"] {
            assert!(envelope_of(bad).is_err(), "{bad}");
        }
    }
}
