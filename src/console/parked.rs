//! The Dead and quarantine page: what waits in `<prefix>.quarantine` and `<prefix>.dead`, grouped
//! by reason with the error's location; a dry-run preview of what replaying a selection would
//! do now; and the replay itself — one message, a selection, or all of a reason, to every
//! recipient or to chosen ones, in arrival order per person. The same library calls as
//! `kaigo-hub replay --list|--preview` and `replay` ([`crate::pipeline::replay`],
//! [`crate::pipeline::preview`]): a replay from the console is judged exactly as one from the
//! command line.
//!
//! In: a signed-in session (any role may look; previews and replays need the `replay` action,
//! [`Action::Replay`], else 403 and no buttons), the form's ticked `envelope`s, ticked
//! `recipient`s, or a section's `reason` (`quarantine/consent-denied`). Out: HTML of ids, reason
//! codes, locations, consent ids and decisions, never a body or a personal value. Every message a
//! replay puts back or keeps is an audit event (hop `replay`, actor `console:<account>`), with
//! the subject hashes the parked message carried.

use super::layout::escape;
use super::roles::Action;
use super::session::{Posted, Session};
use super::{Console, ConsoleError};
use crate::audit::{Decision, Hop};
use crate::bus::Props;
use crate::pipeline::preview::{Answer, Preview, Would};
use crate::pipeline::replay::{self, Parked, ParkedMessage, Selection, Step, Summary};
use actix_web::{HttpResponse, web};
use std::fmt::Write as _;

/// The two parking queues, as the page names them.
const QUEUES: [(Parked, &str); 2] = [(Parked::Quarantine, "quarantine"), (Parked::Dead, "dead")];

/// A reason's family: the code before its colon (`consent-denied:no-consent` →
/// `consent-denied`), what a section groups by.
fn family(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason)
}

/// `GET /console/parked`.
pub async fn page(
    session: Session,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    let hub = &console.hub;
    let mut body = String::from("<h1>Dead and quarantine</h1>\n");
    let may = session.may(Action::Replay);
    body.push_str(
        "<p class=\"note\">Messages the hub withheld (quarantine) or could not handle (dead), \
         grouped by reason. A replay judges each again exactly as a new message, with the \
         parties and consents in force now; a reason no later fact can cure is never released. \
         Released messages go back in arrival order.</p>\n",
    );
    body.push_str("<form id=\"parked-form\" method=\"post\" action=\"/console/parked/preview\">\n");
    body.push_str(&session.csrf_field());
    let mut total = 0;
    for (parked, queue) in QUEUES {
        let all = |_: &Props| true;
        let listed = replay::list(hub.bus.as_ref(), &hub.topology, parked, &all)
            .await
            .map_err(|e| ConsoleError::Internal(format!("listing {queue}: {e}")))?;
        total += listed.len();
        let _ = writeln!(
            body,
            "<h2 data-queue=\"{queue}\">{} ({})</h2>",
            if parked == Parked::Dead {
                "Dead letters"
            } else {
                "Quarantine"
            },
            listed.len()
        );
        sections(&mut body, queue, listed, may);
    }
    if total == 0 {
        body.push_str("<p id=\"nothing-parked\">Nothing is parked.</p>\n");
    }
    if may {
        recipients_choice(&mut body, console.get_ref());
        body.push_str(
            "<p class=\"actions\"><button id=\"preview\" type=\"submit\" formaction=\"/console/parked/preview\">Preview the ticked messages</button> \
             <button id=\"replay\" type=\"submit\" formaction=\"/console/parked/replay\">Replay the ticked messages</button></p>\n",
        );
    } else {
        body.push_str(
            "<p class=\"note\" id=\"no-replay\">Your role may look, not preview or replay.</p>\n",
        );
    }
    body.push_str("</form>\n");
    Ok(super::layout::page("Dead and quarantine", &session, &body))
}

/// One `section.reason` per reason family of one queue.
fn sections(body: &mut String, queue: &str, listed: Vec<ParkedMessage>, may: bool) {
    let mut families: Vec<(String, Vec<ParkedMessage>)> = Vec::new();
    for g in replay::grouped(listed) {
        let f = family(&g.reason).to_string();
        match families.iter_mut().find(|(k, _)| *k == f) {
            Some((_, v)) => v.extend(g.messages),
            None => families.push((f, g.messages)),
        }
    }
    for (reason, messages) in families {
        let _ = writeln!(
            body,
            "<section class=\"reason\" data-queue=\"{q}\" data-reason=\"{r}\">\n<h3>{r} <span class=\"count\" data-count=\"{n}\">{n}</span></h3>",
            q = escape(queue),
            r = escape(&reason),
            n = messages.len()
        );
        if may {
            let _ = writeln!(
                body,
                "<p><button class=\"replay-reason\" type=\"submit\" name=\"reason\" value=\"{q}/{r}\" formaction=\"/console/parked/replay\">Replay all {r} in {q}</button> \
                 <button class=\"preview-reason\" type=\"submit\" name=\"reason\" value=\"{q}/{r}\" formaction=\"/console/parked/preview\">Preview all</button></p>",
                q = escape(queue),
                r = escape(&reason)
            );
        }
        body.push_str(
            "<table>\n<thead><tr><th></th><th>Envelope</th><th>Reason</th><th>From</th><th>Hop</th><th>Document</th><th>Recipient</th><th>Where and why</th></tr></thead>\n<tbody>\n",
        );
        for m in messages {
            let tick = if may {
                format!(
                    "<input type=\"checkbox\" name=\"envelope\" value=\"{}\">",
                    escape(&m.envelope)
                )
            } else {
                String::new()
            };
            let stays = match &m.stays {
                Some((code, _)) => format!(
                    " <span class=\"stays\" data-stays=\"{}\">replay keeps it</span>",
                    escape(code)
                ),
                None => String::new(),
            };
            let document = match &m.doc_index {
                Some(i) => format!(
                    "{} (document {})",
                    m.document,
                    i.parse::<usize>().map_or(0, |i| i + 1)
                ),
                None => m.document.clone(),
            };
            let _ = writeln!(
                body,
                "<tr data-envelope=\"{e}\"><td>{tick}</td><td><a href=\"/console/messages/{e}\">{e}</a></td><td class=\"code\">{reason}{stays}</td><td class=\"short\">{from}</td><td class=\"short\">{hop}</td><td>{document}</td><td>{recipient}</td><td class=\"location\">{location}</td></tr>",
                e = escape(&m.envelope),
                reason = escape(&m.reason),
                from = escape(&m.source),
                hop = escape(&m.hop),
                document = escape(&document),
                recipient = escape(&m.recipient),
                location = escape(&m.location),
            );
        }
        body.push_str("</tbody>\n</table>\n</section>\n");
    }
}

/// The recipient checkboxes: every party that receives some document.
fn recipients_choice(body: &mut String, console: &Console) {
    let parties = console.hub.parties.current();
    body.push_str(
        "<fieldset id=\"recipients\"><legend>Only to these recipients (none ticked: every recipient, each with its consent)</legend>\n",
    );
    for p in parties.all.iter().filter(|p| !p.receives.is_empty()) {
        let _ = writeln!(
            body,
            "<label><input type=\"checkbox\" name=\"recipient\" value=\"{id}\"> {id} {name}</label>",
            id = escape(&p.id),
            name = escape(&p.name)
        );
    }
    body.push_str("</fieldset>\n");
}

/// What a posted form selects: per queue the selection, and the chosen recipients.
struct Chosen {
    /// `(queue, selection)` for each queue to visit.
    queues: Vec<(Parked, &'static str, Selection)>,
    /// `None`: every recipient.
    to: Option<Vec<String>>,
}

/// Reads the ticked envelopes (both queues), or a section's `reason` (`queue/family`), and the
/// ticked recipients (each a party of the parties file).
fn chosen(post: &Posted, console: &Console) -> Result<Chosen, ConsoleError> {
    let ids: Vec<String> = post.all("envelope").into_iter().map(String::from).collect();
    let queues = match post.get("reason").filter(|r| !r.is_empty()) {
        Some(r) => {
            let (queue, reason) = r
                .split_once('/')
                .ok_or_else(|| ConsoleError::BadRequest(format!("`{r}` is not a queue/reason")))?;
            let (parked, name) = QUEUES
                .into_iter()
                .find(|(_, q)| *q == queue)
                .ok_or_else(|| ConsoleError::BadRequest(format!("no queue `{queue}`")))?;
            let selection = Selection {
                ids: Vec::new(),
                reason: Some(reason.to_string()),
            };
            vec![(parked, name, selection)]
        }
        None if ids.is_empty() => {
            return Err(ConsoleError::BadRequest(
                "Tick at least one message, or use a reason's own button.".into(),
            ));
        }
        None => QUEUES
            .into_iter()
            .map(|(p, q)| {
                (
                    p,
                    q,
                    Selection {
                        ids: ids.clone(),
                        reason: None,
                    },
                )
            })
            .collect(),
    };
    let to: Vec<String> = post
        .all("recipient")
        .into_iter()
        .map(String::from)
        .collect();
    let parties = console.hub.parties.current();
    if let Some(unknown) = to.iter().find(|p| parties.get(p).is_none()) {
        return Err(ConsoleError::BadRequest(format!(
            "{unknown} is not a party of the parties file"
        )));
    }
    Ok(Chosen {
        queues,
        to: (!to.is_empty()).then_some(to),
    })
}

/// Hidden fields that repeat a selection (for the preview page's replay button).
fn repeated(post: &Posted) -> String {
    let mut out = String::new();
    for (name, values) in [
        ("envelope", post.all("envelope")),
        ("recipient", post.all("recipient")),
        ("reason", post.get("reason").into_iter().collect()),
    ] {
        for v in values {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(v)
            );
        }
    }
    out
}

/// `POST /console/parked/preview`: what a replay of the selection would do now.
pub async fn preview(
    post: Posted,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    post.session.require(Action::Replay)?;
    let chosen = chosen(&post, &console)?;
    let hub = &console.hub;
    let mut rows = String::new();
    let mut n = 0;
    for (parked, queue, selection) in &chosen.queues {
        let select = |p: &Props| selection.takes(p);
        let previewed = replay::preview_parked(hub, *parked, &select, chosen.to.as_deref())
            .await
            .map_err(|e| ConsoleError::Internal(format!("previewing {queue}: {e}")))?;
        for (m, p, props) in previewed {
            n += 1;
            audit(
                &console,
                Hop::Admin,
                &post.session,
                &m.envelope,
                &props,
                Decision::Accepted,
                replay::PREVIEW_REASON,
            );
            row(&mut rows, queue, &m, &p);
        }
    }
    let to = match &chosen.to {
        Some(to) => format!("only to {}", to.join(", ")),
        None => "to every recipient".to_string(),
    };
    let body = format!(
        "<h1>Preview</h1>\n<p class=\"note\">What a replay {to} would do now ({n} message(s)), computed by the hops' own checks; nothing was published or moved, and the preview is audited (it asks each person's consent). Rendering each recipient's format is not tried.</p>\n\
         <table id=\"preview\">\n<thead><tr><th>Envelope</th><th>Queue</th><th>Parked for</th><th>Would</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n\
         <form id=\"replay-form\" method=\"post\" action=\"/console/parked/replay\">{csrf}{again}<p><button id=\"replay\" type=\"submit\">Replay these now</button> <a href=\"/console/parked\">Back</a></p></form>\n",
        csrf = post.session.csrf_field(),
        again = repeated(&post),
    );
    Ok(super::layout::page("Preview", &post.session, &body))
}

/// One `tr[data-envelope]` of the preview table.
fn row(out: &mut String, queue: &str, m: &ParkedMessage, p: &Preview) {
    let would = match &p.would {
        Would::Stay { code, why } => format!(
            "<span class=\"stays\" data-stays=\"{}\">stays: {}</span>",
            escape(code),
            escape(why)
        ),
        Would::Dead { reason, error } => format!(
            "<span class=\"dead\" data-dead=\"{}\">dead again: {}</span>",
            escape(reason),
            escape(error)
        ),
        Would::Withheld { code, detail } => format!(
            "<span class=\"withheld\" data-withheld=\"{}\">quarantined again: {}</span>",
            escape(code),
            escape(detail)
        ),
        Would::Unknown(why) => format!(
            "<span class=\"decision\" data-decision=\"indeterminate\">cannot tell now: {}</span>",
            escape(why)
        ),
        Would::Documents(docs) => {
            let mut s = String::from("<ol class=\"documents\">");
            for d in docs {
                let platform = match &d.platform {
                    Some(a) => decision(a, "platform"),
                    None => "no person: no consent asked".to_string(),
                };
                let _ = write!(
                    s,
                    "<li data-document=\"{}\">{} ({}): platform {platform}",
                    d.index,
                    escape(&d.kind),
                    escape(d.category.code())
                );
                if let Some((code, detail)) = &d.withheld {
                    let _ = write!(
                        s,
                        " <span class=\"withheld\" data-withheld=\"{}\">quarantined again: {}</span>",
                        escape(code),
                        escape(detail)
                    );
                }
                if !d.recipients.is_empty() {
                    s.push_str("<ul class=\"recipients\">");
                    for r in &d.recipients {
                        let _ = write!(
                            s,
                            "<li data-recipient=\"{}\">{} {}</li>",
                            escape(&r.party),
                            escape(&r.party),
                            decision(&r.answer, &r.party)
                        );
                    }
                    s.push_str("</ul>");
                }
                s.push_str("</li>");
            }
            s.push_str("</ol>");
            s
        }
    };
    let _ = writeln!(
        out,
        "<tr data-envelope=\"{e}\"><td>{e}</td><td>{q}</td><td class=\"code\">{r}</td><td>{would}</td></tr>",
        e = escape(&p.envelope),
        q = escape(queue),
        r = escape(&m.reason),
    );
}

/// One answer as `.decision[data-decision]` (permit, deny, indeterminate, or why none was asked).
fn decision(a: &Answer, to: &str) -> String {
    let consent = match a {
        Answer::Permit(Some(c)) => format!(" data-consent=\"{}\"", escape(c)),
        _ => String::new(),
    };
    format!(
        "<span class=\"decision\" data-decision=\"{}\" data-to=\"{}\"{consent}>{}</span>",
        a.code(),
        escape(to),
        escape(&a.to_string())
    )
}

/// `POST /console/parked/replay`: replays the selection; each message put back or kept is
/// audited with the operator as actor.
pub async fn replay(
    post: Posted,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    post.session.require(Action::Replay)?;
    let chosen = chosen(&post, &console)?;
    let hub = &console.hub;
    let session = &post.session;
    let mut total = Summary::default();
    let mut lines = String::new();
    let for_whom = chosen
        .to
        .as_ref()
        .map(|to| format!(";for:{}", to.join(",")))
        .unwrap_or_default();
    for (parked, queue, selection) in &chosen.queues {
        let select = |p: &Props| selection.takes(p);
        let mut tell = |s: &Step, props: &Props| {
            let (envelope, decision, reason, said) = match s {
                Step::Replayed { envelope, exchange } => (
                    envelope,
                    Decision::Accepted,
                    format!("to:{exchange}{for_whom}"),
                    format!("replayed → {exchange}"),
                ),
                Step::Kept {
                    envelope,
                    code,
                    why,
                } => (
                    envelope,
                    Decision::Rejected,
                    code.clone(),
                    format!("kept: {why}"),
                ),
            };
            audit(
                &console,
                Hop::Replay,
                session,
                envelope,
                props,
                decision,
                &reason,
            );
            let _ = writeln!(
                lines,
                "<li data-envelope=\"{}\">{} ({}): {}</li>",
                escape(envelope),
                escape(envelope),
                escape(queue),
                escape(&said)
            );
        };
        let summary = replay::replay_to(
            hub.bus.as_ref(),
            &hub.topology,
            *parked,
            &select,
            chosen.to.as_deref(),
            &mut tell,
        )
        .await
        .map_err(|e| ConsoleError::Internal(format!("replaying {queue}: {e}")))?;
        total.replayed += summary.replayed;
        total.held += summary.held;
    }
    let body = format!(
        "<h1>Replay</h1>\n<div id=\"replay-result\"><p><span data-count=\"replayed\">{}</span> replayed, <span data-count=\"kept\">{}</span> kept for a reason below.</p>\n<ul>\n{lines}</ul></div>\n<p><a href=\"/console/parked\">Back to dead and quarantine</a></p>\n",
        total.replayed, total.held
    );
    Ok(super::layout::page("Replay", session, &body))
}

/// One audit event at `hop` per subject hash the parked message carried (one without a subject
/// when it carried none), as the command line records a replay or a preview.
fn audit(
    console: &Console,
    hop: Hop,
    session: &Session,
    envelope: &str,
    props: &Props,
    decision: Decision,
    reason: &str,
) {
    for subject in crate::pipeline::replay::parked_subjects(props) {
        console.audit(hop, session, |d| {
            crate::pipeline::replay::audit_event(d, props, envelope, decision, reason, subject)
        });
    }
}
