//! The MLLP source: hospitals send HL7 v2 (SS-MIX2, usually ISO-2022-JP) over TCP. In: a
//! listener, one task per connection, socket reads fed to the sans-IO [`MllpDecoder`]. Each
//! frame is answered by exactly one `ACK`, strictly in the order the frames arrived, and only
//! after `ingress::accept` returned: `AA` once the broker confirmed, `AE`/`AR` with an `ERR`
//! segment otherwise. Completed blocks the codec could not deliver (too large, empty) get an
//! `AR` in their position; other stream damage (garbage, truncation) is logged, not answered.
//!
//! Who is sending: the peer's IP address picks the candidate parties (`mllp_peers`), and MSH-4
//! (sending facility) must name one of them. A frame from an unknown address, or naming a party
//! not allowed from that address, is refused with `AR` and never ingested. The `ACK` is written
//! in the charset of the message it answers (MSH-18 kept). Memory is bounded by the frame limit
//! (the codec), by reading only when the previous frames were answered, and by a cap on open
//! connections. On shutdown the listener stops accepting; each connection finishes the frame it
//! is processing, answers it and closes. Must never trust MSH-4 alone, ingest a frame from a
//! sender it could not identify, or acknowledge `AA` before the broker confirmed.

use crate::audit::{Decision as AuditDecision, Hop};
use crate::formats::hl7v2::{self, AckCode, AckError, Charset, Message, Path};
use crate::formats::mllp::{Event, MllpDecoder, MllpError, MllpLimits, encode_frame};
use crate::parties::Party;
use crate::pipeline::Hub;
use crate::pipeline::clock;
use crate::pipeline::ingress::{self, Refusal, Submission};
use crate::redact::Disclose;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Connections served at once; further peers wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Bytes asked for per socket read.
const READ_CHUNK: usize = 64 * 1024;
/// How long writing one `ACK` may take before the connection is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest error text put in `MSA-3` / `ERR-8` (characters).
const MAX_ERROR_CHARS: usize = 400;
/// `ERR-8` text for a sender that is not allowed (nothing more is said to it).
const NOT_ALLOWED: &str = "sender not allowed";

/// MSH-4.1: the sending facility's id, which must be the party's id.
static MSH4: LazyLock<Path> =
    LazyLock::new(|| Path::compile("MSH-4.1").expect("a literal, valid HL7 path"));

/// Binds `addr` and serves MLLP until `shutdown` turns true. `limit` is the largest frame
/// payload in bytes. Returns the bound address (port 0 picks one) and the listener's task, which
/// ends after every connection closed.
pub async fn start(
    hub: Arc<Hub>,
    addr: &str,
    limit: usize,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("MLLP: cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("MLLP: address of the listener on {addr}: {e}"))?;
    tracing::info!(addr = %bound, max_frame_bytes = limit, "MLLP listening");
    let task = tokio::spawn(serve(hub, listener, limit, shutdown));
    Ok((bound, task))
}

/// Accepts connections until shutdown, then waits for the open ones to finish.
async fn serve(
    hub: Arc<Hub>,
    listener: TcpListener,
    limit: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (hub, sd) = (hub.clone(), shutdown.clone());
                connections.spawn(async move {
                    connection(&hub, stream, peer, limit, sd).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "MLLP: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!("MLLP: no longer accepting; finishing open connections");
    while connections.join_next().await.is_some() {}
}

/// Serves one connection: answers every frame in order, until EOF, an I/O error or shutdown.
async fn connection(
    hub: &Hub,
    mut stream: TcpStream,
    peer: SocketAddr,
    limit: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let ip = peer.ip().to_canonical();
    tracing::debug!(%peer, "MLLP: connection opened");
    let mut decoder = MllpDecoder::new(MllpLimits {
        max_frame_bytes: limit,
    });
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // Answer everything complete before reading more: this bounds what is buffered.
        while let Some(event) = decoder.next_event() {
            let reply = match event {
                Event::Frame(payload) => answer(hub, ip, payload).await,
                Event::Error(e) if e.awaits_reply() => {
                    tracing::warn!(%peer, error = %e, "MLLP: block refused");
                    reject_block(&e)
                }
                Event::Error(e) => {
                    tracing::warn!(%peer, error = %e, "MLLP: stream damage");
                    continue;
                }
            };
            if let Err(e) = write(&mut stream, &reply).await {
                tracing::warn!(%peer, error = %e, "MLLP: cannot send the ACK; closing");
                return;
            }
            if *shutdown.borrow() {
                tracing::debug!(%peer, "MLLP: shutting down after the frame in progress");
                return;
            }
        }
        let read = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            r = stream.read(&mut buf) => r,
        };
        match read {
            Ok(0) => {
                if let Some(e) = decoder.finish() {
                    tracing::warn!(%peer, error = %e, "MLLP: stream ended badly");
                }
                tracing::debug!(%peer, "MLLP: connection closed by the peer");
                return;
            }
            Ok(n) => decoder.push(buf.get(..n).unwrap_or(&[])),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "MLLP: read failed; closing");
                return;
            }
        }
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer does not read its ACKs",
        )),
    }
}

/// The framed `ACK` for one frame: identify the sender, ingest, answer.
async fn answer(hub: &Hub, ip: IpAddr, payload: Vec<u8>) -> Vec<u8> {
    // Parsing a large frame is blocking work; the bytes travel there and back, uncopied.
    let (parsed, payload) = match tokio::task::spawn_blocking(move || {
        // Told to the sender in the ACK only, so with the values it quotes.
        let parsed = hl7v2::parse(&payload).map_err(|e| e.for_sender().to_string());
        (parsed, payload)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "MLLP: the parser stopped");
            return ack(
                None,
                AckCode::AE,
                Some(error("207", "internal error; please resend")),
            );
        }
    };
    let payload = payload.as_slice();
    let ip_text = ip.to_string();
    let parties = hub.parties.current();
    let candidates: Vec<&Party> = parties
        .all
        .iter()
        .filter(|p| p.mllp_peers.iter().any(|a| same_address(a, ip)))
        .collect();
    let msg = parsed.as_ref().ok();
    // The claimed sender: MSH-4.1, read leniently from the raw bytes when the message does not
    // parse (so that its party still gets it dead-lettered with the precise error).
    let claimed: Option<String> = match msg {
        Some(m) => m.value_at(&MSH4).map(|v| v.trim().to_string()),
        None => raw_msh4(payload),
    };
    let party = claimed
        .as_deref()
        .and_then(|id| candidates.iter().copied().find(|p| p.id == id));
    let Some(party) = party else {
        if let (Err(parse_error), None, false) = (&parsed, &claimed, candidates.is_empty()) {
            // An allowed address sent something whose sender cannot even be read: say why.
            refused_sender(hub, &ip_text, "unidentified");
            return ack(
                None,
                AckCode::AR,
                Some(error(
                    "102",
                    &format!("{parse_error}; MSH-4 unreadable, not kept"),
                )),
            );
        }
        refused_sender(hub, &ip_text, "sender-not-allowed");
        return ack(msg, AckCode::AR, Some(error("207", NOT_ALLOWED)));
    };
    let control_id = msg.and_then(Message::control_id);
    let result = ingress::accept(
        hub,
        Submission {
            party,
            bytes: payload,
            file_name: None,
            correlation_id: control_id.as_deref(),
            via: "mllp",
        },
    )
    .await;
    match result {
        Ok(accepted) => {
            tracing::debug!(envelope = %accepted.envelope_id, party = %party.id, "MLLP: AA");
            ack(msg, AckCode::AA, None)
        }
        Err(Refusal::Malformed {
            envelope_id,
            message,
        }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, "MLLP: AE (dead-lettered)");
            ack(
                msg,
                AckCode::AE,
                Some(error("102", &message.for_sender().to_string())),
            )
        }
        Err(Refusal::Forbidden {
            envelope_id,
            reason,
        }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, reason = %reason, "MLLP: AR (quarantined)");
            ack(msg, AckCode::AR, Some(error("207", &reason)))
        }
        Err(Refusal::Unavailable { message }) => {
            tracing::warn!(party = %party.id, error = %message, "MLLP: AE (unavailable; the sender should resend)");
            ack(
                msg,
                AckCode::AE,
                Some(error(
                    "207",
                    "the hub is temporarily unavailable; nothing was kept, please resend",
                )),
            )
        }
    }
}

/// Does an `mllp_peers` entry name this address? Compared as addresses (`::1` = `0:0::1`).
fn same_address(entry: &str, ip: IpAddr) -> bool {
    match entry.trim().parse::<IpAddr>() {
        Ok(a) => a.to_canonical() == ip,
        Err(_) => entry.trim() == ip.to_string(),
    }
}

/// `AR` for a completed block the codec discarded (too large, empty).
fn reject_block(e: &MllpError) -> Vec<u8> {
    ack(None, AckCode::AR, Some(error("207", &e.to_string())))
}

/// Audits and counts a frame refused before ingress (no party is named: it is unproven).
fn refused_sender(hub: &Hub, ip: &str, reason: &str) {
    crate::pipeline::metrics::Metrics::inc(&hub.metrics.rejected);
    let envelope = clock::envelope_id();
    tracing::warn!(peer = ip, reason, "MLLP: sender refused");
    hub.audit(Hop::Ingress, "mllp", &envelope, |d| {
        d.decision(AuditDecision::Rejected).reason(reason)
    });
}

fn error(code: &str, message: &str) -> AckError {
    let mut text: String = message.chars().take(MAX_ERROR_CHARS).collect();
    if text.len() < message.len() {
        text.push('…');
    }
    AckError {
        code: code.into(),
        location: None,
        message: text,
    }
}

/// Builds, encodes (in the original's charset) and frames an `ACK`.
fn ack(original: Option<&Message>, code: AckCode, err: Option<AckError>) -> Vec<u8> {
    let charset = original.map(Message::charset).unwrap_or(Charset::Utf8);
    let text = hl7v2::build_ack(
        original,
        code,
        err.as_ref(),
        &clock::now_hl7_jst(),
        &ack_control_id(),
    );
    let bytes = match hl7v2::encode(&text, charset) {
        Ok(b) => b,
        Err(first) => {
            // An error text the charset cannot carry: spell those characters out, so MSH-18
            // still tells the truth; UTF-8 only if even that fails.
            let spelled = err.map(|mut e| {
                e.message = e
                    .message
                    .chars()
                    .map(|c| {
                        let one = c.to_string();
                        if hl7v2::encode(&one, charset).is_ok() {
                            one
                        } else {
                            format!("U+{:04X}", u32::from(c))
                        }
                    })
                    .collect();
                e
            });
            let text2 = hl7v2::build_ack(
                original,
                code,
                spelled.as_ref(),
                &clock::now_hl7_jst(),
                &ack_control_id(),
            );
            hl7v2::encode(&text2, charset).unwrap_or_else(|_| {
                tracing::warn!(error = %first, "MLLP: ACK sent as UTF-8");
                text.into_bytes()
            })
        }
    };
    let mut out = Vec::with_capacity(bytes.len() + 3);
    encode_frame(&bytes, &mut out);
    out
}

/// MSH-10 of an `ACK`: 20 characters (the HL7 v2.5 length), JST time + a process counter.
fn ack_control_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}{n:06}", clock::now_hl7_jst())
}

/// MSH-4.1 read from bytes that do not parse: `MSH` + field separator, the fourth field, up to
/// the component separator; printable ASCII only (party ids are digits).
fn raw_msh4(bytes: &[u8]) -> Option<String> {
    let start = bytes.windows(3).position(|w| w == b"MSH")?;
    if start > 4 {
        return None;
    }
    let rest = bytes.get(start + 3..)?;
    let (&field_sep, _) = rest.split_first()?;
    let component_sep = rest.get(1).copied().unwrap_or(b'^');
    let field = rest.split(|&b| b == field_sep).nth(3)?;
    let first = field.split(|&b| b == component_sep).next()?;
    let end = first
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(first.len());
    let id = first.get(..end)?;
    (!id.is_empty() && id.iter().all(|b| b.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(id).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msh_4_is_read_leniently_from_bytes_that_do_not_parse() {
        assert_eq!(
            raw_msh4(b"MSH|^~\\&|HIS|1311234567^x|A|B\rX|bad").as_deref(),
            Some("1311234567")
        );
        assert_eq!(
            raw_msh4(b"\xef\xbb\xbfMSH|^~\\&|HIS|2710000015|").as_deref(),
            Some("2710000015")
        );
        assert_eq!(raw_msh4(b"MSH|^~\\&|HIS|\rPID|1"), None);
        assert_eq!(raw_msh4(b"MSH|^~\\&|HIS"), None);
        assert_eq!(raw_msh4(b"garbage"), None);
        assert_eq!(
            raw_msh4(b"....................MSH|^~\\&|HIS|1311234567|"),
            None
        );
    }

    #[test]
    fn msh_4_component_one_names_the_party() {
        let m =
            hl7v2::parse(b"MSH|^~\\&|HIS|1311234567^1.2.3^ISO|HUB|P|20250101||ADT^A08|M1|P|2.5\r")
                .unwrap();
        assert_eq!(m.value_at(&MSH4).as_deref(), Some("1311234567"));
        let m =
            hl7v2::parse(b"MSH|^~\\&|HIS|1311234567|HUB|P|20250101||ADT^A08|M1|P|2.5\r").unwrap();
        assert_eq!(m.value_at(&MSH4).as_deref(), Some("1311234567"));
    }

    #[test]
    fn ack_control_ids_are_twenty_characters_and_distinct() {
        let (a, b) = (ack_control_id(), ack_control_id());
        assert_eq!(a.len(), 20, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn long_errors_are_cut_and_marked() {
        let e = error("102", &"x".repeat(5000));
        assert_eq!(e.message.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(e.message.ends_with('…'));
        assert_eq!(error("102", "short").message, "short");
    }

    #[test]
    fn an_ack_keeps_the_charset_of_the_message_and_spells_out_what_it_cannot_carry() {
        let m = hl7v2::parse(
            b"MSH|^~\\&|HIS|1311234567|HUB|P|20250101||ADT^A08|M1|P|2.5||||||~ISO IR87\r",
        )
        .unwrap();
        let framed = ack(Some(&m), AckCode::AE, Some(error("102", "値 `昭和` ☃")));
        let body = &framed[1..framed.len() - 2];
        assert!(
            body.windows(3).any(|w| w == b"\x1b$B"),
            "ISO-2022-JP expected"
        );
        let back = hl7v2::parse(body).unwrap();
        assert_eq!(back.charset(), Charset::Iso2022Jp);
        assert!(back.text().contains("昭和"), "{}", back.text());
        assert!(back.text().contains("U+2603"), "{}", back.text());
        assert!(back.text().contains("MSA|AE|M1"), "{}", back.text());
    }
}
