//! HTTP push sink: POSTs a delivery to the recipient's URL over HTTP/1.1 (one request per
//! connection, `Connection: close`, the envelope id in `X-Kaigo-Envelope`) and succeeds on a 2xx
//! status, all within 15 s. `http://` goes over plain TCP; `https://` over TLS (tokio-rustls) with
//! the client configuration [`super::push_tls`] built from `push_ca` (the recipient's certificate
//! must chain to one of those CAs and be valid for the URL's host, a DNS name or an IP address)
//! and, when set, the hub's own client certificate for recipients that ask for one (mTLS). An
//! `https://` URL without `push_ca` fails saying so. In: URL, TLS configuration, content type,
//! envelope properties, body; out: `Ok` or a [`PushError`] naming the URL and what failed
//! (connect, TLS handshake with rustls's reason, the status). A failure makes the deliver hop try
//! again and finally dead-letter the copy — never drop it — except an answer that refuses the
//! content itself ([`PushError::refuses_content`]: 400, 413, 415, 422), which another try would
//! send unchanged: that copy is dead-lettered at once. Must never log or echo the body, nor the
//! recipient's answer beyond its status code.

use super::push_tls::PushTlsFiles;
use crate::bus::Props;
use rustls::{AlertDescription, CertificateError, ClientConfig};
use rustls_pki_types::ServerName;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What the HTTP push sink is built from: the settings `push_ca`, `push_client_cert` and
/// `push_client_key` (`serve` makes it from them, in one place). The time a push may take
/// ([`TIMEOUT`]) is fixed, not a setting; `http://` push needs none of these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPushSinkConfig {
    /// `push_ca`: PEM bundle of the CAs trusted for recipients' certificates; `None` = an
    /// `https://` push fails saying that `push_ca` is needed.
    pub ca: Option<PathBuf>,
    /// `push_client_cert`: the hub's client certificate chain (PEM, leaf first) for recipients
    /// that ask for one; set together with `client_key`, and with `ca`.
    pub client_cert: Option<PathBuf>,
    /// `push_client_key`: the private key of `client_cert` (PEM, unencrypted).
    pub client_key: Option<PathBuf>,
}

impl HttpPushSinkConfig {
    /// Checks that the settings go together before any file is read; the error names the
    /// settings, their variables and what to do ([`PushTlsFiles::from_settings`]).
    pub fn validate(&self) -> Result<(), String> {
        self.tls().map(drop)
    }

    /// The HTTPS files, `None` without `push_ca`, or [`HttpPushSinkConfig::validate`]'s error.
    pub fn tls(&self) -> Result<Option<PushTlsFiles>, String> {
        PushTlsFiles::from_settings(&self.ca, &self.client_cert, &self.client_key)
    }
}

/// The whole POST, from connect to status line.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long a recipient that broke off the request is given to say why (a TLS alert).
const ALERT_WAIT: Duration = Duration::from_secs(1);
/// The most bytes of an answer read while looking for its status line.
const STATUS_LINE_MAX: usize = 8 * 1024;

/// Why a push did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The URL is not one this sink can POST to.
    #[error("{url}: {message}")]
    Url {
        /// The recipient's URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// An `https://` URL, but the hub has no CAs to check the recipient's certificate with.
    #[error(
        "{url}: https push needs push_ca (KAIGO_PUSH_CA), the PEM bundle of the CAs that issue \
         the recipients' certificates, and it is not set"
    )]
    NoPushCa {
        /// The recipient's URL.
        url: String,
    },
    /// The TCP connection was not made.
    #[error("{url}: cannot connect to {addr}: {source}")]
    Connect {
        /// The recipient's URL.
        url: String,
        /// `host:port` dialled.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The TLS handshake failed (unknown CA, name mismatch, refused client certificate, …).
    #[error("{url}: TLS handshake failed: {reason}")]
    Handshake {
        /// The recipient's URL.
        url: String,
        /// rustls's reason, with a hint at the setting concerned.
        reason: String,
    },
    /// The request could not be sent, or the answer not read, on an open connection.
    #[error("{url}: {step}: {reason}")]
    Exchange {
        /// The recipient's URL.
        url: String,
        /// `sending the request` or `reading the answer`.
        step: &'static str,
        /// Why (for TLS, rustls's reason, e.g. an alert the recipient sent).
        reason: String,
    },
    /// The recipient answered, but not with a 2xx status.
    #[error("{url}: answered HTTP status {status}, expected 2xx")]
    Status {
        /// The recipient's URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The recipient answered something that is not an HTTP/1.x status line.
    #[error("{url}: the answer does not start with an HTTP status line")]
    NoStatus {
        /// The recipient's URL.
        url: String,
    },
    /// No status line within the time allowed.
    #[error("{url}: no answer within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// The recipient's URL.
        url: String,
    },
}

/// Statuses by which a recipient refuses the content itself (malformed, too large, a media type
/// it does not take, failed validation): the same bytes sent again get the same answer.
pub const CONTENT_REFUSED: [u16; 4] = [400, 413, 415, 422];

impl PushError {
    /// The recipient refused the content itself ([`CONTENT_REFUSED`]): trying again would send
    /// the same bytes to the same answer. Every other failure (down, busy, 5xx, 408, 429, a
    /// certificate or an address being changed, 401/403/404 while its configuration is fixed)
    /// may pass on a later try.
    pub fn refuses_content(&self) -> bool {
        matches!(self, PushError::Status { status, .. } if CONTENT_REFUSED.contains(status))
    }
}

/// POSTs `body` to `url`; `tls` is the HTTPS client configuration (`None`: no `push_ca`).
pub async fn post(
    url: &str,
    tls: Option<&Arc<ClientConfig>>,
    content_type: &str,
    props: &Props,
    body: &[u8],
) -> Result<(), PushError> {
    let target = Target::parse(url).map_err(|message| PushError::Url {
        url: without_userinfo(url),
        message,
    })?;
    let connector = match (target.tls, tls) {
        (false, _) => None,
        (true, Some(config)) => Some(TlsConnector::from(config.clone())),
        (true, None) => return Err(PushError::NoPushCa { url: url.into() }),
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        target.path,
        target.authority,
        body.len()
    );
    if let Some(id) = &props.message_id {
        head.push_str(&format!("X-Kaigo-Envelope: {id}\r\n"));
    }
    head.push_str("\r\n");
    let fut = async {
        let addr = format!("{}:{}", target.authority_host(), target.port);
        let tcp = TcpStream::connect((target.host, target.port))
            .await
            .map_err(|source| PushError::Connect {
                url: url.into(),
                addr,
                source,
            })?;
        let status = match connector {
            None => exchange(tcp, head.as_bytes(), body).await,
            Some(connector) => {
                let name =
                    ServerName::try_from(target.host.to_string()).map_err(|e| PushError::Url {
                        url: url.into(),
                        message: format!("`{}` is not a TLS server name: {e}", target.host),
                    })?;
                let stream =
                    connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| PushError::Handshake {
                            url: url.into(),
                            reason: reason(&e),
                        })?;
                exchange(stream, head.as_bytes(), body).await
            }
        };
        match status {
            Ok(Some(code)) if (200..300).contains(&code) => Ok(()),
            Ok(Some(status)) => Err(PushError::Status {
                url: url.into(),
                status,
            }),
            Ok(None) => Err(PushError::NoStatus { url: url.into() }),
            Err((step, reason)) => Err(PushError::Exchange {
                url: url.into(),
                step,
                reason,
            }),
        }
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .map_err(|_| PushError::Timeout { url: url.into() })?
}

/// Writes the request and reads up to the status line: the status code (`None` when the answer
/// is not HTTP), or which step failed and why.
async fn exchange(
    mut s: impl AsyncRead + AsyncWrite + Unpin,
    head: &[u8],
    body: &[u8],
) -> Result<Option<u16>, (&'static str, String)> {
    let sent = async {
        s.write_all(head).await?;
        s.write_all(body).await?;
        s.flush().await
    }
    .await;
    if let Err(e) = sent {
        // A recipient that ends the connection says why first when it speaks TLS (an alert, e.g.
        // refusing the hub's client certificate, which in TLS 1.3 comes after the handshake):
        // that reason beats "broken pipe".
        let mut probe = [0u8; 512];
        let said = match tokio::time::timeout(ALERT_WAIT, s.read(&mut probe)).await {
            Ok(Err(r)) if tls_error(&r).is_some() => r,
            _ => e,
        };
        return Err(("sending the request", reason(&said)));
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < STATUS_LINE_MAX {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| ("reading the answer", reason(&e)))?;
        if n == 0 {
            if answer.is_empty() {
                return Err((
                    "reading the answer",
                    "the connection was closed without an answer".into(),
                ));
            }
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    Ok(status_code(&answer))
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 204 No Content`).
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    (code.len() == 3)
        .then(|| code.parse::<u16>().ok())
        .flatten()
        .filter(|c| (100..600).contains(c))
}

/// An I/O error as a reason: rustls's own error (inside tokio-rustls's `io::Error`) with a hint
/// at the setting concerned, or the error as it is.
fn reason(e: &io::Error) -> String {
    let Some(tls) = tls_error(e) else {
        return e.to_string();
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "unknown CA: the recipient's certificate does not chain to a CA in push_ca ({tls})"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            format!("name mismatch: the recipient's certificate is not for the URL's host ({tls})")
        }
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied,
        ) => format!(
            "the recipient refused the hub's client certificate (push_client_cert) or wants \
             one ({tls})"
        ),
        other => other.to_string(),
    }
}

/// `url` with any `user:password@` replaced by `***@`, for an error that is logged and kept in
/// `x-kaigo-error`.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// rustls's error inside an I/O error of a TLS stream.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// The parts of a push URL the sink uses.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// `https://` (else `http://`).
    tls: bool,
    /// `host[:port]` as written, for the `Host` header.
    authority: &'a str,
    /// The host without brackets: a DNS name, an IPv4 or an IPv6 address.
    host: &'a str,
    /// The port, 80 or 443 when the URL names none.
    port: u16,
    /// Path and query, at least `/`.
    path: &'a str,
}

impl<'a> Target<'a> {
    fn parse(url: &'a str) -> Result<Target<'a>, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("only http:// and https:// URLs can be pushed to".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.starts_with('?') {
            return Err("the URL has a query but no path; write `/?…`".into());
        }
        if authority.contains('@') {
            return Err("user information in the URL is not supported".into());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address opened with `[` is not closed with `]`")?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the URL names no host".into());
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a port number"))?,
        };
        Ok(Target {
            tls,
            authority,
            host,
            port,
            path,
        })
    }

    /// The host as it goes before `:port` (IPv6 in brackets), for messages.
    fn authority_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_push_setting_is_refused_naming_the_setting_its_variable_and_why() {
        let pem = |f: &str| Some(PathBuf::from(f));
        let cases = [
            (
                HttpPushSinkConfig {
                    ca: pem("ca.pem"),
                    client_cert: pem("hub.pem"),
                    ..Default::default()
                },
                "push_client_cert is set but push_client_key is not",
                "KAIGO_PUSH_CLIENT_KEY",
            ),
            (
                HttpPushSinkConfig {
                    ca: pem("ca.pem"),
                    client_key: pem("hub.key"),
                    ..Default::default()
                },
                "push_client_key is set but push_client_cert is not",
                "KAIGO_PUSH_CLIENT_CERT",
            ),
            (
                HttpPushSinkConfig {
                    client_cert: pem("hub.pem"),
                    client_key: pem("hub.key"),
                    ..Default::default()
                },
                "push_client_cert and push_client_key are set but push_ca is not",
                "set push_ca (KAIGO_PUSH_CA)",
            ),
        ];
        for (cfg, what, variable) in cases {
            let e = cfg.validate().expect_err(what);
            assert!(e.starts_with(what) && e.contains(variable), "{e}");
            assert!(e.contains("needs"), "says why: {e}");
        }
        assert_eq!(
            HttpPushSinkConfig::default().tls(),
            Ok(None),
            "http:// only"
        );
        let whole = HttpPushSinkConfig {
            ca: pem("ca.pem"),
            client_cert: pem("hub.pem"),
            client_key: pem("hub.key"),
        };
        assert_eq!(
            whole.tls(),
            Ok(Some(PushTlsFiles {
                ca: "ca.pem".into(),
                client: Some(("hub.pem".into(), "hub.key".into())),
            }))
        );
    }

    #[test]
    fn urls_give_host_port_and_path_with_the_scheme_default_port() {
        let t = Target::parse("https://recipient.example/kaigo/inbox").expect("https URL");
        assert_eq!(
            (t.tls, t.authority, t.host, t.port, t.path),
            (
                true,
                "recipient.example",
                "recipient.example",
                443,
                "/kaigo/inbox"
            )
        );
        let t = Target::parse("http://127.0.0.1:8081").expect("http URL without path");
        assert_eq!(
            (t.tls, t.host, t.port, t.path),
            (false, "127.0.0.1", 8081, "/")
        );
        let t = Target::parse("https://[::1]:8443/in?x=1").expect("IPv6 URL");
        assert_eq!(
            (t.authority, t.host, t.port, t.path, t.authority_host()),
            ("[::1]:8443", "::1", 8443, "/in?x=1", "[::1]".to_string())
        );
        let t = Target::parse("https://[::1]/in").expect("IPv6 URL without port");
        assert_eq!((t.host, t.port), ("::1", 443));
    }

    #[test]
    fn urls_the_sink_cannot_post_to_are_refused_saying_why() {
        for (url, says) in [
            ("ftp://host/x", "http:// and https://"),
            ("https:///x", "no host"),
            ("https://host:https/x", "not a port number"),
            ("https://host:0/x", "not a port number"),
            ("https://[::1/x", "not closed"),
            ("https://user:pw@host/x", "user information"),
        ] {
            let e = Target::parse(url).expect_err(url);
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn a_password_in_a_refused_url_is_not_repeated() {
        let e = post(
            "https://user:secret@host/x",
            None,
            "application/json",
            &Props::default(),
            b"{}",
        )
        .await
        .expect_err("user information")
        .to_string();
        assert!(e.starts_with("https://***@host/x: "), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn only_a_refusal_of_the_content_itself_is_final() {
        let status = |status| PushError::Status {
            url: "http://127.0.0.1:9/in".into(),
            status,
        };
        for code in [400, 413, 415, 422] {
            assert!(status(code).refuses_content(), "{code}");
        }
        // Down, busy, timing out, throttling, or a configuration being fixed (credentials, path,
        // redirect): a later try may pass.
        for code in [
            301, 307, 401, 403, 404, 408, 409, 425, 429, 500, 502, 503, 504,
        ] {
            assert!(!status(code).refuses_content(), "{code}");
        }
        let url = || "http://127.0.0.1:9/in".to_string();
        for e in [
            PushError::Timeout { url: url() },
            PushError::NoStatus { url: url() },
            PushError::Handshake {
                url: url(),
                reason: "unknown issuer".into(),
            },
            PushError::Exchange {
                url: url(),
                step: "reading the answer",
                reason: "reset".into(),
            },
        ] {
            assert!(!e.refuses_content(), "{e}");
        }
    }

    #[test]
    fn only_an_http_status_line_gives_a_status() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 200"), Some(200));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[tokio::test]
    async fn https_without_push_ca_fails_naming_push_ca_before_connecting() {
        // Port 9 on 127.0.0.1 is not dialled: the error comes before any connection.
        let url = "https://127.0.0.1:9/kaigo/inbox";
        let e = post(url, None, "application/json", &Props::default(), b"{}")
            .await
            .expect_err("no trust anchors")
            .to_string();
        assert!(e.starts_with(url), "{e}");
        assert!(e.contains("push_ca") && e.contains("KAIGO_PUSH_CA"), "{e}");
    }

    #[test]
    fn a_rustls_reason_gets_a_hint_and_other_errors_stay_as_they_are() {
        let unknown = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let r = reason(&unknown);
        assert!(r.starts_with("unknown CA") && r.contains("push_ca"), "{r}");
        let mismatch = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
        );
        assert!(reason(&mismatch).starts_with("name mismatch"));
        let refused = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        );
        assert!(reason(&refused).contains("push_client_cert"));
        let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(reason(&plain), "reset by peer");
    }
}
