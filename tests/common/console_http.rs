//! The console over real HTTP, as a browser would speak it, for the console's HTTP-level tests
//! (tests/console_*.rs; the Chromium ones use `browser.rs`): a cookie jar, forms with the CSRF
//! field, optionally a client address of its own and TLS; one connection per request.

use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// An HTTP answer.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `value` of the first `name="csrf"` field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

/// A client as a browser would be: a cookie jar, connecting from `from` (loopback unless told otherwise), over TLS
/// when it has a connector.
pub struct Client {
    pub hub: SocketAddr,
    pub from: Option<IpAddr>,
    pub tls: Option<TlsConnector>,
    pub cookies: BTreeMap<String, String>,
}

/// Writes `request` and reads the answer until the server closes (a TLS stream that ends
/// without `close_notify` still counts, once something was read).
async fn exchange(mut s: impl AsyncRead + AsyncWrite + Unpin, request: &[u8]) -> Vec<u8> {
    s.write_all(request).await.expect("write");
    s.flush().await.expect("flush");
    let mut raw = Vec::new();
    let read = tokio::time::timeout(super::PATIENCE, s.read_to_end(&mut raw))
        .await
        .expect("an answer in time");
    if let Err(e) = read {
        assert!(!raw.is_empty(), "read: {e}");
    }
    raw
}

pub fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Client {
    pub fn new(hub: SocketAddr) -> Client {
        Client {
            hub,
            from: None,
            tls: None,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn request(&mut self, method: &str, path: &str, form: Option<&str>) -> Page {
        let socket = if self.hub.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        if let Some(ip) = self.from {
            socket
                .bind(SocketAddr::new(ip, 0))
                .expect("bind the client");
        }
        let tcp = socket.connect(self.hub).await.expect("connect to the hub");
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.hub
        );
        if !cookie.is_empty() {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let request = [head.as_bytes(), body.as_bytes()].concat();
        let raw = match &self.tls {
            None => exchange(tcp, &request).await,
            Some(tls) => {
                let name = ServerName::IpAddress(self.hub.ip().into());
                let stream = tls.connect(name, tcp).await.expect("TLS handshake");
                exchange(stream, &request).await
            }
        };
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header end");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let page = Page {
            status,
            headers,
            body: String::from_utf8_lossy(&raw[end + 4..]).into_owned(),
        };
        for c in page.set_cookies() {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').expect("name=value");
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(&encode(pairs))).await
    }

    /// Opens the sign-in page and sends the form with `name` and `password`.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("username", name), ("password", password)],
        )
        .await
    }
}

/// Writes an accounts file with `accounts` (name, role, password) into the scratch dir.
pub fn accounts_file(s: &super::Scratch, accounts: &[(&str, &str, &str)]) -> std::path::PathBuf {
    let mut text = String::from("accounts:\n");
    for (name, role, password) in accounts {
        let hash = kaigo_hub::console::accounts::hash_password(password).expect("hash");
        text.push_str(&format!(
            "  - name: {name}\n    role: {role}\n    password_hash: '{hash}'\n"
        ));
    }
    let path = s.dir.join("console-accounts.yaml");
    std::fs::write(&path, text).expect("write accounts");
    path
}

impl Page {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

impl Client {
    /// A client signed in as the demo account `name` (password `<name>-password`), checked to
    /// land on the Flow page.
    pub async fn signed_in_demo(hub: SocketAddr, name: &str) -> Client {
        let mut c = Client::new(hub);
        let done = c.sign_in(name, &format!("{name}-password")).await;
        assert_eq!(
            (done.status, done.location()),
            (303, Some("/console/flow")),
            "{name} signs in: {}",
            done.body
        );
        c
    }
}
