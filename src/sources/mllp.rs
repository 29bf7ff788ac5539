//! The MLLP source: hospitals send HL7 v2 (SS-MIX2, usually ISO-2022-JP) over TCP. In: a listener,
//! one task per connection, socket reads fed to the sans-IO [`MllpDecoder`]. Each frame is answered
//! by exactly one `ACK`, strictly in the order the frames arrived, and only after `ingress::accept`
//! returned: `AA` once the broker confirmed (with one `ERR` per document refused when only some of
//! the message's documents may go on), `AE`/`AR` with an `ERR` segment otherwise (which codes
//! say what: `mllp/ack.rs`, docs/mllp.md). Completed blocks the codec could not deliver (too large,
//! empty) get an `AR` in their position; other stream damage (garbage, truncation) is logged, not
//! answered.
//!
//! Who is sending: over plain TCP the peer's IP address picks the party (`mllp_peers`; the parties
//! file may give an address to one party only), and MSH-4 (sending facility) must name it. Over TLS
//! (`mllp_tls_*`, the same rustls code as the HTTP source, `sources/tls.rs`) the client certificate
//! the handshake verified names the party (`client_certs_sha256`; its `mllp_peers`, when listed,
//! narrow the addresses), and MSH-4 must name that party. A frame from an unknown address, without
//! a certificate or with one no party lists, or naming a party this connection may not send as, is
//! refused with `AR` and never ingested. The `ACK` is written in the charset of the message it
//! answers (MSH-18 kept). Memory is bounded by the frame limit (the codec), by reading only when
//! the previous frames were answered, and by a cap on open connections. On shutdown the listener
//! stops accepting; each connection finishes the frame it is processing, answers it and closes.
//! Must never trust MSH-4 alone, ingest a frame from a sender it could not identify, or acknowledge
//! `AA` before the broker confirmed. A TLS handshake has `HANDSHAKE_TIMEOUT` to finish.

pub mod ack;

use crate::audit::{Decision as AuditDecision, Hop};
use crate::formats::hl7v2::{self, Message, Path};
use crate::formats::mllp::{Event, MllpDecoder, MllpError, MllpLimits};
use crate::parties::{Parties, Party};
use crate::pipeline::Hub;
use crate::pipeline::body_limit::{BodyLimit, TooLarge};
use crate::pipeline::clock;
use crate::pipeline::ingress::{self, Refusal, Submission};
use crate::redact::Disclose;
use crate::sources::tls::{ClientCert, client_cert};
use ack::{Cause, LocalCode, Verdict};
use rustls::ServerConfig;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Connections served at once; further peers wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Bytes asked for per socket read.
const READ_CHUNK: usize = 64 * 1024;
/// How long writing one `ACK` may take before the connection is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// `ERR-8` text for a sender that is not allowed (nothing more is said to it).
const NOT_ALLOWED: &str = "sender not allowed";

/// MSH-4.1: the sending facility's id, which must be the party's id.
static MSH4: LazyLock<Path> =
    LazyLock::new(|| Path::compile("MSH-4.1").expect("a literal, valid HL7 path"));

/// Who is at the other end of a connection, as far as the connection itself proves it.
#[derive(Clone, Debug)]
enum Peer {
    /// Plain TCP: the address, and nothing else. MSH-4 must name the party listing it.
    Address(IpAddr),
    /// TLS: the address, and the client certificate the handshake verified (if any).
    Certified {
        /// The peer's address.
        ip: IpAddr,
        /// The verified certificate; `None` when the client presented none.
        cert: Option<ClientCert>,
    },
}

impl Peer {
    fn ip(&self) -> IpAddr {
        match self {
            Peer::Address(ip) | Peer::Certified { ip, .. } => *ip,
        }
    }
}

/// What the MLLP source is built from: the settings `mllp_addr`, `body_limit`, and
/// `mllp_tls_cert` / `mllp_tls_key` / `mllp_tls_client_ca` as a rustls server configuration
/// (checked together by `TlsFiles::from_settings`, loaded by `sources::tls::server_config`).
#[derive(Debug, Clone)]
pub struct MllpSourceConfig {
    /// `mllp_addr`: `HOST:PORT` to listen on (port 0 picks a free one).
    pub addr: String,
    /// `body_limit`: bounds a frame's payload.
    pub body_limit: BodyLimit,
    /// MLLP over TLS (client certificates verified by it name the parties); `None` = plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
}

impl MllpSourceConfig {
    /// Checks what can be checked before anything is bound; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        crate::sources::check_listen_addr("mllp_addr", &self.addr)
    }
}

/// Binds `cfg.addr` and serves MLLP until `shutdown` turns true. Returns the bound address (port
/// 0 picks one) and the listener's task, which ends after every connection closed.
pub async fn start(
    hub: Arc<Hub>,
    cfg: MllpSourceConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), String> {
    cfg.validate()?;
    let MllpSourceConfig {
        addr,
        body_limit: limit,
        tls,
    } = cfg;
    let listener = TcpListener::bind(&addr).await.map_err(|e| {
        format!("MLLP source cannot listen on {addr} (mllp_addr / KAIGO_MLLP_ADDR): {e}")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("MLLP: address of the listener on {addr}: {e}"))?;
    let scheme = if tls.is_some() { "tls" } else { "tcp" };
    tracing::info!(addr = %bound, scheme, max_frame_bytes = limit.bytes(), "MLLP listening");
    let tls = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(serve(hub, listener, limit, tls, shutdown));
    Ok((bound, task))
}

/// Accepts connections until shutdown, then waits for the open ones to finish.
async fn serve(
    hub: Arc<Hub>,
    listener: TcpListener,
    limit: BodyLimit,
    tls: Option<TlsAcceptor>,
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
                let (hub, sd, tls) = (hub.clone(), shutdown.clone(), tls.clone());
                connections.spawn(async move {
                    let ip = peer.ip().to_canonical();
                    match tls {
                        None => connection(&hub, stream, peer, Peer::Address(ip), limit, sd).await,
                        Some(acceptor) => {
                            if let Some(stream) = handshake(&acceptor, stream, peer).await {
                                let cert = client_cert(stream.get_ref().1);
                                let who = Peer::Certified { ip, cert };
                                connection(&hub, stream, peer, who, limit, sd).await;
                            }
                        }
                    }
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

/// The TLS handshake of a new connection, bounded in time; `None` (logged) when it failed: a
/// certificate that does not chain to `mllp_tls_client_ca`, a client that does not speak TLS.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "MLLP: TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "MLLP: TLS handshake timed out");
            None
        }
    }
}

/// Serves one connection, then closes it (over TLS with `close_notify`).
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    mut stream: S,
    peer: SocketAddr,
    who: Peer,
    limit: BodyLimit,
    shutdown: watch::Receiver<bool>,
) {
    frames(hub, &mut stream, peer, &who, limit, shutdown).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
}

/// Answers every frame of a connection in order, until EOF, an I/O error or shutdown.
async fn frames<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    stream: &mut S,
    peer: SocketAddr,
    who: &Peer,
    limit: BodyLimit,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::debug!(%peer, "MLLP: connection opened");
    let mut decoder = MllpDecoder::new(MllpLimits {
        max_frame_bytes: limit.bytes(),
    });
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // Answer everything complete before reading more: this bounds what is buffered.
        while let Some(event) = decoder.next_event() {
            let reply = match event {
                Event::Frame(payload) => answer(hub, who, payload).await,
                Event::Error(e) if e.awaits_reply() => {
                    tracing::warn!(%peer, error = %e, "MLLP: block refused");
                    reject_block(hub, who.ip(), limit, &e)
                }
                Event::Error(e) => {
                    tracing::warn!(%peer, error = %e, "MLLP: stream damage");
                    continue;
                }
            };
            if let Err(e) = write(stream, &reply).await {
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

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer does not read its ACKs",
        )),
    }
}

/// The parties this connection may send as: over plain TCP those listing its address; over TLS
/// the party of its certificate (if it lists `mllp_peers`, only from one of them). `Err` is the
/// answer to a TLS peer whose certificate names no party.
fn candidates<'p>(parties: &'p Parties, who: &Peer) -> Result<Vec<&'p Party>, (LocalCode, String)> {
    match who {
        Peer::Address(ip) => Ok(parties.mllp_peers_at(*ip)),
        Peer::Certified { cert: None, .. } => Err((
            LocalCode::CertificateRequired,
            "no client certificate: this MLLP port knows senders by the TLS client certificate \
             registered for their party (client_certs_sha256); connect with it"
                .into(),
        )),
        Peer::Certified {
            ip,
            cert: Some(cert),
        } => match parties.by_client_cert(&cert.sha256) {
            None => Err((
                LocalCode::CertificateNotRegistered,
                format!(
                    "client certificate {} is not registered for any party \
                     (client_certs_sha256); ask the hub's operator to list it",
                    cert.sha256
                ),
            )),
            Some(p) if p.mllp_peers.is_empty() || p.is_mllp_peer(*ip) => Ok(vec![p]),
            Some(_) => Ok(Vec::new()),
        },
    }
}

/// The framed `ACK` for one frame: identify the sender, ingest, answer.
async fn answer(hub: &Hub, who: &Peer, payload: Vec<u8>) -> Vec<u8> {
    // Parsing a large frame is blocking work; the bytes travel there and back, uncopied.
    let (parsed, payload) =
        match tokio::task::spawn_blocking(move || (hl7v2::parse(&payload), payload)).await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "MLLP: the parser stopped");
                return ack::frame(
                    None,
                    &Verdict::error(Cause::hl7("207"), "internal error; please resend"),
                );
            }
        };
    let ip_text = who.ip().to_string();
    let parties = hub.parties.current();
    let msg = parsed.as_ref().ok();
    let candidates = match candidates(&parties, who) {
        Ok(c) => c,
        Err((code, text)) => {
            refused_sender(hub, &ip_text, code.code());
            return ack::frame(msg, &Verdict::reject(Cause::local(code), text));
        }
    };
    // The claimed sender: MSH-4.1, read leniently from the raw bytes when the message does not
    // parse (so that its party still gets it dead-lettered with the precise error).
    let claimed: Option<String> = match msg {
        Some(m) => m.value_at(&MSH4).map(|v| v.trim().to_string()),
        None => raw_msh4(&payload),
    };
    let party = claimed
        .as_deref()
        .and_then(|id| candidates.iter().copied().find(|p| p.id == id));
    let Some(party) = party else {
        if let (Err(parse_error), None, false) = (&parsed, &claimed, candidates.is_empty()) {
            // An allowed address sent something whose sender cannot even be read: say why.
            refused_sender(hub, &ip_text, "unidentified");
            return ack::frame(
                None,
                &Verdict::reject(
                    Cause::of_parse_error(parse_error),
                    format!("{}; MSH-4 unreadable, not kept", parse_error.for_sender()),
                ),
            );
        }
        refused_sender(hub, &ip_text, LocalCode::SenderNotAllowed.code());
        return ack::frame(
            msg,
            &Verdict::reject(Cause::local(LocalCode::SenderNotAllowed), NOT_ALLOWED),
        );
    };
    let control_id = msg.and_then(Message::control_id);
    let result = ingress::accept(
        hub,
        Submission {
            party,
            bytes: &payload,
            file_name: None,
            correlation_id: control_id.as_deref(),
            via: "mllp",
        },
    )
    .await;
    let verdict = match result {
        Ok(accepted) if accepted.refused.is_empty() => {
            tracing::debug!(envelope = %accepted.envelope_id, party = %party.id, "MLLP: AA");
            Verdict::accepted()
        }
        Ok(accepted) => {
            let envelope = &accepted.envelope_id;
            tracing::info!(envelope = %envelope, party = %party.id, refused = accepted.refused.len(), "MLLP: AA (some documents refused)");
            Verdict::accepted_with(document_errs(
                &accepted.refused,
                envelope,
                "kept in quarantine",
            ))
        }
        Err(Refusal::Malformed {
            envelope_id,
            message,
        }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, "MLLP: AE (dead-lettered)");
            let cause = match &parsed {
                Err(e) => Cause::of_parse_error(e),
                Ok(_) => {
                    let set = hub.mappings.current();
                    tokio::task::spawn_blocking(move || Cause::of_unmappable(&set, &payload))
                        .await
                        .unwrap_or(Cause::local(LocalCode::MappingFailed))
                }
            };
            Verdict::error(cause, message.for_sender().to_string())
                .or_value_free(message.to_string())
        }
        Err(Refusal::Forbidden {
            envelope_id,
            reason,
            detail,
            documents,
        }) => {
            tracing::info!(envelope = %envelope_id, party = %party.id, reason = %reason, documents = documents.len(), "MLLP: AR (quarantined)");
            let local = LocalCode::of_refusal(&reason);
            // Several documents, none of which may go on: one more ERR per document.
            let each = match documents.len() {
                0 | 1 => Vec::new(),
                _ => document_errs(
                    &documents,
                    &envelope_id,
                    "kept in quarantine with the message",
                ),
            };
            Verdict::reject(
                Cause::local(local),
                format!("{reason}; kept in quarantine as {envelope_id}: {detail}"),
            )
            .with_refused(each)
        }
        Err(Refusal::Unavailable { message }) => {
            tracing::warn!(party = %party.id, error = %message, "MLLP: AE (unavailable; the sender should resend)");
            Verdict::error(
                Cause::local(LocalCode::HubUnavailable),
                "the hub is temporarily unavailable; nothing was kept, please resend",
            )
        }
    };
    ack::frame(msg, &verdict)
}

/// One ERR (code, text) per refused document: its reason, number, place in the message and what
/// clears it; `kept` says where it is (ids and codes only, never a value).
fn document_errs(
    refused: &[ingress::RefusedDocument],
    envelope: &str,
    kept: &str,
) -> Vec<(LocalCode, String)> {
    refused
        .iter()
        .map(|r| {
            let text = format!(
                "{}; document {}{} of {envelope} {kept}: {}",
                r.reason,
                r.number,
                r.at(),
                r.detail
            );
            (LocalCode::of_refusal(&r.reason), text)
        })
        .collect()
}

/// `AR` for a completed block the codec discarded (too large: audited and counted; empty).
fn reject_block(hub: &Hub, ip: IpAddr, limit: BodyLimit, e: &MllpError) -> Vec<u8> {
    let verdict = match e {
        MllpError::FrameTooLarge { len, .. } => {
            refused_sender(hub, &ip.to_string(), TooLarge::REASON);
            Verdict::reject(
                Cause::local(LocalCode::BodyTooLarge),
                limit.exceeded("the frame", Some(*len)).to_string(),
            )
        }
        // An empty block: the required MSH segment is missing.
        other => Verdict::reject(Cause::hl7("100"), other.to_string()),
    };
    ack::frame(None, &verdict)
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
}
