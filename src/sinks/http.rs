//! HTTP push sink: POSTs a delivery to the recipient's URL over HTTP/1.1 and succeeds on a 2xx
//! status. Plain `http://` only in this build (TLS push is not implemented: a party configured
//! with `https://` fails at delivery with that reason and the message is retried, then
//! dead-lettered — never dropped).

use crate::bus::Props;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POSTs `body` to `url`.
pub async fn post(url: &str, content_type: &str, props: &Props, body: &[u8]) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// push is supported in this build"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(id) = &props.message_id {
            head.push_str(&format!("X-Kaigo-Envelope: {id}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        s.write_all(body).await.map_err(|e| format!("{url}: {e}"))?;
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.map_err(|e| format!("{url}: {e}"))?;
        let line = String::from_utf8_lossy(&buf[..n]);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0);
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("{url}: HTTP status {status}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .map_err(|_| format!("{url}: no answer within 15 s"))?
}
