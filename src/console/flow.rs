//! The Flow page, the console's first page: the hub's topology drawn as an inline SVG — the
//! sources that are on (HTTP/FHIR, MLLP, file-drop inboxes, the AMQP vendor queue), the three hops
//! (ingress → translate → deliver), the recipients the parties file delivers to, and the two
//! parking places (quarantine, dead) — with counts from the hub's metrics, and
//! `GET /console/flow.json`, which the page's script reads every few seconds to refresh them.
//! In: the running hub (its parties in force, metrics, bus). Out: HTML and JSON of counts and
//! party ids and names only: never a message or a person.
//!
//! The counts (`<text data-count="…">`) are the metrics of this process since it started:
//! `accepted` (messages admitted at a source), `translated` (canonical documents published),
//! `delivered` (copies a recipient received), `quarantine` and `dead` (messages or copies put
//! there). `<text data-queued="dead|quarantine">` is what waits in those queues now (all hub
//! processes on the bus together).

use super::layout::escape;
use super::session::Session;
use super::{Console, ConsoleError};
use crate::parties::DeliveryTarget;
use actix_web::{HttpResponse, web};
use std::sync::atomic::Ordering::Relaxed;

/// How often the page refreshes its counts, milliseconds.
pub const REFRESH_MS: u64 = 3000;

/// Most recipients drawn one by one; the rest are summed up in one box.
const MAX_SINKS: usize = 10;

/// The counts shown on the page and in `flow.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Messages accepted by a source.
    pub accepted: u64,
    /// Messages refused at a source.
    pub rejected: u64,
    /// Canonical documents published by the translate hop.
    pub translated: u64,
    /// Copies delivered to a recipient.
    pub delivered: u64,
    /// Messages or copies sent to the dead-letter queue.
    pub dead: u64,
    /// Messages or copies sent to quarantine.
    pub quarantine: u64,
}

/// What waits in the parking queues now (`None`: the bus could not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Queued {
    /// In the dead-letter queue.
    pub dead: Option<u64>,
    /// In the quarantine queue.
    pub quarantine: Option<u64>,
}

/// The counts of `console`'s hub, now.
pub fn counts(console: &Console) -> Counts {
    let m = &console.hub.metrics;
    Counts {
        accepted: m.accepted.load(Relaxed),
        rejected: m.rejected.load(Relaxed),
        translated: m.translated.load(Relaxed),
        delivered: m.delivered.load(Relaxed),
        dead: m.dead.load(Relaxed),
        quarantine: m.quarantined.load(Relaxed),
    }
}

async fn queued(console: &Console) -> Queued {
    let hub = &console.hub;
    let (dead, quarantine) = (hub.topology.dead_queue(), hub.topology.quarantine_queue());
    Queued {
        dead: hub.bus.queue_len(&dead).await.ok(),
        quarantine: hub.bus.queue_len(&quarantine).await.ok(),
    }
}

/// A box of the picture: a label and a note under it.
struct Node {
    label: String,
    note: String,
}

/// The sources that are on, and who may use each.
fn sources(console: &Console) -> Vec<Node> {
    let parties = console.hub.parties.current();
    let count =
        |f: &dyn Fn(&crate::parties::Party) -> bool| parties.all.iter().filter(|p| f(p)).count();
    let http = count(&|p| !p.api_keys_sha256.is_empty() || !p.client_certs_sha256.is_empty());
    let mllp = count(&|p| !p.mllp_peers.is_empty() || !p.client_certs_sha256.is_empty());
    let inbox = count(&|p| p.inbox.is_some());
    let vendor = count(&|p| p.amqp_user.is_some());
    let scheme = if console.tls { "HTTPS" } else { "HTTP" };
    let parties = |n: usize| {
        if n == 1 {
            "1 party".to_string()
        } else {
            format!("{n} parties")
        }
    };
    let mut out = vec![
        Node {
            label: format!("FHIR over {scheme}"),
            note: format!("{} may send", parties(http)),
        },
        Node {
            label: if console.mllp_tls {
                "HL7 v2 MLLP/TLS"
            } else {
                "HL7 v2 MLLP"
            }
            .into(),
            note: format!("{} may send", parties(mllp)),
        },
    ];
    if inbox > 0 {
        out.push(Node {
            label: "File drop".into(),
            note: if inbox == 1 {
                "1 inbox".into()
            } else {
                format!("{inbox} inboxes")
            },
        });
    }
    if vendor > 0 && console.hub.bus.name() == "rabbitmq" {
        out.push(Node {
            label: "AMQP vendor queue".into(),
            note: format!("{} may send", parties(vendor)),
        });
    }
    out
}

/// The recipients of the parties in force (at most [`MAX_SINKS`] boxes).
fn sinks(console: &Console) -> Vec<Node> {
    let parties = console.hub.parties.current();
    let all: Vec<Node> = parties
        .all
        .iter()
        .filter_map(|p| {
            let how = match p.delivery.as_ref()? {
                DeliveryTarget::Amqp => "AMQP",
                DeliveryTarget::Dir(_) => "file drop",
                DeliveryTarget::Http(_) => "HTTP push",
            };
            let label = if p.name.is_empty() {
                p.id.clone()
            } else {
                p.name.clone()
            };
            Some(Node {
                label,
                note: format!("{} · {how}", p.id),
            })
        })
        .collect();
    if all.len() <= MAX_SINKS {
        return all;
    }
    let rest = all.len() - (MAX_SINKS - 1);
    let mut shown: Vec<Node> = all.into_iter().take(MAX_SINKS - 1).collect();
    shown.push(Node {
        label: format!("{rest} more recipients"),
        note: "see the parties file".into(),
    });
    shown
}

fn node_svg(class: &str, x: u32, y: u32, w: u32, n: &Node) -> String {
    format!(
        r#"<g class="node {class}"><rect x="{x}" y="{y}" width="{w}" height="44" rx="6"/><text x="{tx}" y="{ly}">{label}</text><text class="label" x="{tx}" y="{ny}">{note}</text></g>"#,
        tx = x + 10,
        ly = y + 19,
        ny = y + 35,
        label = escape(&n.label),
        note = escape(&n.note),
    )
}

fn queued_text(q: Option<u64>) -> String {
    q.map_or_else(|| "?".into(), |n| n.to_string())
}

/// The SVG of the flow with `c` and `q` filled in.
fn svg(console: &Console, c: &Counts, q: &Queued) -> String {
    let (sources, sinks) = (sources(console), sinks(console));
    let rows = sources.len().max(sinks.len()).max(3) as u32;
    let top = 40;
    let height_of_rows = rows * 60;
    let mid = top + height_of_rows / 2;
    let park_y = top + height_of_rows + 50;
    let height = park_y + 110;
    let mut s = format!(
        r##"<svg id="flow" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 980 {height}" role="img" aria-label="Message flow with counts" data-refresh-ms="{REFRESH_MS}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8a99ab"/></marker></defs>
<text class="label" x="20" y="22">SOURCES</text><text class="label" x="260" y="22">HOPS</text><text class="label" x="775" y="22">RECIPIENTS</text>
"##
    );
    let (hop_w, hop_h) = (140u32, 84u32);
    let hop_y = mid - hop_h / 2;
    let hops = [
        (
            "ingress",
            "ingress",
            "consent #1 · decode",
            "accepted",
            c.accepted,
            250u32,
        ),
        (
            "translate",
            "translate",
            "consent #2 · mapping",
            "translated",
            c.translated,
            425,
        ),
        (
            "deliver",
            "deliver",
            "consent #3 · render",
            "delivered",
            c.delivered,
            600,
        ),
    ];
    for (i, n) in sources.iter().enumerate() {
        let y = top + i as u32 * 60 + (height_of_rows - sources.len() as u32 * 60) / 2;
        s.push_str(&node_svg("source", 20, y, 190, n));
        s.push_str(&format!(
            r#"<path class="edge" d="M 210 {a} C 230 {a}, 230 {b}, 250 {b}"/>"#,
            a = y + 22,
            b = mid
        ));
        s.push('\n');
    }
    for (i, (hop, title, what, count_name, value, x)) in hops.iter().enumerate() {
        s.push_str(&format!(
            r#"<g class="node hop" data-hop="{hop}"><rect x="{x}" y="{hop_y}" width="{hop_w}" height="{hop_h}" rx="8"/><text x="{tx}" y="{t1}">{title}</text><text class="label" x="{tx}" y="{t2}">{what}</text><text class="count" x="{tx}" y="{t3}" data-count="{count_name}">{value}</text><text class="label" x="{tx2}" y="{t3}">{count_name}</text></g>"#,
            tx = x + 10,
            tx2 = x + 80,
            t1 = hop_y + 20,
            t2 = hop_y + 38,
            t3 = hop_y + 68,
        ));
        if i < 2 {
            s.push_str(&format!(
                r#"<path class="edge" d="M {a} {mid} L {b} {mid}"/>"#,
                a = x + hop_w,
                b = x + hop_w + 35
            ));
        }
        s.push('\n');
    }
    for (i, n) in sinks.iter().enumerate() {
        let y = top + i as u32 * 60 + (height_of_rows - sinks.len() as u32 * 60) / 2;
        s.push_str(&format!(
            r#"<path class="edge" d="M 740 {mid} C 757 {mid}, 757 {b}, 775 {b}"/>"#,
            b = y + 22
        ));
        s.push_str(&node_svg("sink", 775, y, 195, n));
        s.push('\n');
    }
    if sinks.is_empty() {
        s.push_str(&node_svg(
            "sink",
            775,
            mid - 22,
            195,
            &Node {
                label: "no recipient".into(),
                note: "no party has a delivery".into(),
            },
        ));
    }
    // The parking places under the hops: every hop may send there.
    let parked = [
        (
            "quarantine",
            "quarantine",
            "no consent · unknown person",
            c.quarantine,
            q.quarantine,
            320u32,
        ),
        (
            "dead",
            "dead",
            "cannot parse · map · deliver",
            c.dead,
            q.dead,
            530,
        ),
    ];
    for (name, title, why, value, waiting, x) in parked {
        s.push_str(&format!(
            r#"<path class="edge parking" d="M {x0} {y0} L {x1} {park_y}"/><g class="node parked {name}" data-queue="{name}"><rect x="{x}" y="{park_y}" width="190" height="90" rx="8"/><text x="{tx}" y="{t1}">{title}</text><text class="label" x="{tx}" y="{t2}">{why}</text><text class="count" x="{tx}" y="{t3}" data-count="{name}">{value}</text><text class="label" x="{tx2}" y="{t3}">sent here</text><text class="label" x="{tx}" y="{t4}">waiting now: <tspan data-queued="{name}">{w}</tspan></text></g>"#,
            x0 = x + 95,
            y0 = hop_y + hop_h,
            x1 = x + 95,
            tx = x + 10,
            tx2 = x + 90,
            t1 = park_y + 20,
            t2 = park_y + 37,
            t3 = park_y + 64,
            t4 = park_y + 82,
            w = queued_text(waiting),
        ));
        s.push('\n');
    }
    s.push_str("</svg>");
    s
}

/// `GET /console/flow`.
pub async fn page(session: Session, console: web::Data<Console>) -> HttpResponse {
    let (c, q) = (counts(&console), queued(&console).await);
    let body = format!(
        r#"<h1>Flow</h1>
{svg}
<p class="note">Counts since this hub process started (refused at a source: <span id="rejected">{rejected}</span>); refreshed every {secs} s, last at <span id="flow-updated">{at}</span>. Bus: {bus}, prefix <code>{prefix}</code>.</p>
<script src="/console/assets/flow.js" defer></script>"#,
        svg = svg(&console, &c, &q),
        rejected = c.rejected,
        secs = REFRESH_MS / 1000,
        at = escape(&crate::pipeline::clock::now_rfc3339()),
        bus = escape(console.hub.bus.name()),
        prefix = escape(&console.hub.topology.prefix),
    );
    super::layout::page("Flow", &session, &body)
}

/// `GET /console/flow.json`: `{"at", "counts": {accepted, rejected, translated, delivered,
/// dead, quarantine}, "queued": {dead, quarantine}}`.
pub async fn json(
    _session: Session,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    let body = serde_json::json!({
        "at": crate::pipeline::clock::now_rfc3339(),
        "counts": counts(&console),
        "queued": queued(&console).await,
    });
    Ok(super::layout::secure_headers(HttpResponse::Ok().json(body)))
}
