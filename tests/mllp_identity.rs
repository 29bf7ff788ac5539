//! Who is sending over MLLP, on the real RabbitMQ. Over plain TCP a hospital is known by the
//! address it connects from, and MSH-4 must name the party of that address: with the shipped
//! parties file the two demo hospitals have their own addresses (127.0.0.1 and 127.0.0.2; on
//! Linux a client binds its source address anywhere in 127.0.0.0/8), each is accepted from its
//! own and refused from the other's. A parties file in which one address serves two parties
//! does not start a hub, and is not put in force by a reload, naming the address and both
//! parties. `kaigo-hub serve --demo` starts with the shipped file.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::formats::hl7v2::{self, Message};
use kaigo_hub::formats::mllp::{Event, MllpDecoder, MllpLimits, encode_frame};
use kaigo_hub::serve;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FIRST: &str = "127.0.0.1";
const SECOND: &str = "127.0.0.2";

fn field(m: &Message, path: &str) -> String {
    m.value_at(&hl7v2::Path::compile(path).expect("a valid path"))
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// The UTF-8 A01 of the second hospital (MSH-4 2710000015), without a trailing block end.
fn adt_a01() -> Vec<u8> {
    let mut b = sample("hl7v2/adt-a01-utf8.hl7");
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

/// A TCP connection to `to` from the local address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    let source: IpAddr = from.parse().expect("an address");
    socket
        .bind(SocketAddr::new(source, 0))
        .unwrap_or_else(|e| panic!("binding the source address {from}: {e}"));
    socket
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connecting from {from}: {e}"))
}

/// Sends one frame on `stream` and reads its `ACK`.
async fn exchange(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), payload: &[u8]) -> Message {
    let mut framed = Vec::new();
    encode_frame(payload, &mut framed);
    stream.write_all(&framed).await.expect("write the frame");
    let mut decoder = MllpDecoder::new(MllpLimits::default());
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_event() {
            Some(Event::Frame(f)) => {
                return hl7v2::parse(&f).unwrap_or_else(|e| panic!("the ACK does not parse: {e}"));
            }
            Some(Event::Error(e)) => panic!("bad framing from the hub: {e}"),
            None => {}
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an ACK in time")
            .expect("read the ACK");
        assert!(n > 0, "the hub closed the connection before answering");
        decoder.push(&buf[..n]);
    }
}

async fn ack_from(from: &str, to: SocketAddr, payload: &[u8]) -> Message {
    exchange(&mut connect_from(from, to).await, payload).await
}

/// Both sample patients linked and consented to the platform.
async fn link_and_consent(hub: &kaigo_hub::pipeline::Hub) {
    link_sample_patients(hub);
    for (id, who) in [("mi-1", PERSON_1), ("mi-2", PERSON_2)] {
        grant(
            hub,
            id,
            who,
            Grantee::Kind(PartyKind::Platform),
            &[Category::Certification],
        )
        .await;
    }
}

/// The shipped parties text with both hospitals at the first address again.
fn shared_address(text: String) -> String {
    let moved = text.replace(
        &format!("mllp_peers: [\"{SECOND}\"]"),
        &format!("mllp_peers: [\"{FIRST}\"]"),
    );
    assert_ne!(moved, text, "the second hospital has its own address");
    moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_hospital_is_accepted_from_its_own_address_and_refused_from_the_others() {
    let s = Scratch::rabbit("mllp-addr", |t| t);
    let running = s.start().await;
    link_and_consent(&running.hub).await;
    let at = running.mllp_addr;

    let ack = ack_from(FIRST, at, &adt_a08()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    let ack = ack_from(SECOND, at, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());

    // Each one's MSH-4 from the other's address: refused, nothing kept.
    for (from, payload) in [(FIRST, adt_a01()), (SECOND, adt_a08())] {
        let ack = ack_from(from, at, &payload).await;
        assert_eq!(field(&ack, "MSA-1"), "AR", "from {from}: {}", ack.text());
        assert_eq!(field(&ack, "ERR-8"), "sender not allowed", "{}", ack.text());
    }
    let m = &running.hub.metrics;
    assert_eq!(m.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(m.rejected.load(Ordering::Relaxed), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_serving_two_parties_stops_the_start_and_a_reload_naming_both() {
    let s = Scratch::rabbit("mllp-shared", |t| t);
    let shipped = std::fs::read_to_string(&s.parties).expect("the parties file");
    let shared = shared_address(shipped.clone());
    put_atomically(&s.parties, shared.as_bytes());
    let e = serve::start(&s.config())
        .await
        .err()
        .expect("two hospitals behind one address without certificates");
    for part in [
        FIRST,
        HOSPITAL,
        HOSPITAL_2,
        &s.parties.display().to_string(),
    ] {
        assert!(e.contains(part), "`{part}` missing from: {e}");
    }

    // A running hub is not talked into it by a reload either: the parties in force stay.
    put_atomically(&s.parties, shipped.as_bytes());
    let running = s.start().await;
    link_and_consent(&running.hub).await;
    put_atomically(&s.parties, shared.as_bytes());
    let e = running
        .reload_parties(&s.config())
        .await
        .expect_err("a shared address is not put in force");
    assert!(
        e.contains(FIRST)
            && e.contains(HOSPITAL)
            && e.contains(HOSPITAL_2)
            && e.ends_with("the parties in force stay"),
        "{e}"
    );
    let ack = ack_from(FIRST, running.mllp_addr, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    let ack = ack_from(SECOND, running.mllp_addr, &adt_a01()).await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kaigo_hub_serve_demo_starts_with_the_shipped_parties_file() {
    use std::process::{Command, Stdio};
    let scratch = Scratch::memory("mllp-demo", |t| t);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
    };
    let (http, mllp) = (free(), free());
    // The demo reads ./samples, as it does in the repository.
    std::os::unix::fs::symlink(repo().join("samples"), scratch.dir.join("samples"))
        .expect("link the samples");
    let log = scratch.dir.join("serve.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            cmd.env_remove(k);
        }
    }
    let path = |p: &Path| p.display().to_string();
    let mut child = cmd
        .args(["serve", "--demo"])
        .current_dir(&scratch.dir)
        .env("KAIGO_HTTP_ADDR", http.to_string())
        .env("KAIGO_MLLP_ADDR", mllp.to_string())
        .env("KAIGO_DATA_DIR", path(&scratch.dir.join("serve-data")))
        .env("KAIGO_PARTIES", path(&scratch.parties))
        .env("KAIGO_MAPPINGS", path(&repo().join("mappings")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("kaigo-hub serve --demo starts");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !log_text().contains("kaigo-hub demo: accepted") {
        assert!(
            child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline,
            "kaigo-hub serve --demo did not run its demo:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Over MLLP the second hospital is at its own address.
    let ack = ack_from(SECOND, mllp, &adt_a01()).await;
    assert_ne!(field(&ack, "ERR-8"), "sender not allowed", "{}", ack.text());
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop:\n{}",
            log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}:\n{}", log_text());
}
