//! The MLLP source of a hub running in-process (in-memory bus, port 0): SS-MIX2 ADT in ISO-2022-JP
//! over a real TCP connection. Without consent the answer is `AR` and the message is in quarantine;
//! once the hospital's patient id is linked and the platform holds a consent, the same message is
//! answered `AA` and travels on. Several frames on one connection get one `ACK` each, in order,
//! with each MSA-2 the frame's MSH-10. A frame that cannot be parsed or mapped is answered
//! `AE`/`AR` with the error; a sender whose MSH-4 is not allowed from 127.0.0.1 gets `AR` and
//! nothing is ingested (who may send from which address, and over TLS with which certificate:
//! `tests/mllp_identity.rs`). An `ACK` for an ISO-2022-JP message is ISO-2022-JP, MSH-18 kept.
//! Shutdown closes open connections and stops accepting.

use kaigo_hub::bus::Delivery;
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, PartyKind, Subject};
use kaigo_hub::formats::hl7v2::{self, Charset, Message};
use kaigo_hub::formats::mllp::{Event, MllpDecoder, MllpLimits, encode_frame};
use kaigo_hub::serve::{self, Running};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory; the parties file is the repo's, with every `data/` path moved into it.
fn scratch(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "kaigo-mllp-{tag}-{}-{}",
        std::process::id(),
        kaigo_hub::pipeline::clock::envelope_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join("parties.yaml")).unwrap();
    let moved = text.replace(": data/", &format!(": {}/", dir.join("data").display()));
    let parties = dir.join("parties.yaml");
    std::fs::write(&parties, moved).unwrap();
    (dir, parties)
}

async fn hub(tag: &str, body_limit: usize) -> (Running, PathBuf) {
    let (dir, parties) = scratch(tag);
    let cfg = Config {
        http_addr: "127.0.0.1:0".into(),
        mllp_addr: "127.0.0.1:0".into(),
        data_dir: dir.join("state"),
        parties,
        mappings: repo().join("mappings"),
        body_limit,
        poll_ms: 50,
        ..Default::default()
    };
    let running = serve::start(&cfg).await.expect("hub starts");
    (running, dir)
}

/// The SS-MIX2 sample without the block terminator stored in the file.
fn adt_a08() -> Vec<u8> {
    let mut b = std::fs::read(repo().join("samples/hl7v2/adt-a08.hl7")).unwrap();
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

/// `adt_a08` with MSH-10 (and, when given, MSH-4) replaced: both are ASCII in the sample.
fn variant(control_id: &str, msh4: Option<&str>) -> Vec<u8> {
    let mut text = adt_a08();
    let replace = |b: &mut Vec<u8>, from: &[u8], to: &[u8]| {
        let at = b.windows(from.len()).position(|w| w == from).unwrap();
        b.splice(at..at + from.len(), to.iter().copied());
    };
    replace(
        &mut text,
        b"|MSG000001|",
        format!("|{control_id}|").as_bytes(),
    );
    if let Some(m) = msh4 {
        replace(
            &mut text,
            b"|HIS|1311234567|",
            format!("|HIS|{m}|").as_bytes(),
        );
    }
    text
}

/// `variant(control_id, None)` about a patient id (PID-3) no one linked to a 被保険者.
fn unlinked_patient(control_id: &str) -> Vec<u8> {
    let mut b = variant(control_id, None);
    let at = b
        .windows(16)
        .position(|w| w == b"|00012345^^^^PI|")
        .unwrap();
    b.splice(at + 1..at + 9, b"99999999".iter().copied());
    b
}

struct Client {
    stream: TcpStream,
    decoder: MllpDecoder,
}

impl Client {
    async fn connect(running: &Running) -> Client {
        Client {
            stream: TcpStream::connect(running.mllp_addr).await.unwrap(),
            decoder: MllpDecoder::new(MllpLimits::default()),
        }
    }

    async fn send(&mut self, payloads: &[&[u8]]) {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(p, &mut out);
        }
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next ACK frame, raw.
    async fn ack_bytes(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        loop {
            match self.decoder.next_event() {
                Some(Event::Frame(f)) => return f,
                Some(Event::Error(e)) => panic!("bad framing from the hub: {e}"),
                None => {}
            }
            let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut buf))
                .await
                .expect("an ACK in time")
                .unwrap();
            assert!(n > 0, "the hub closed the connection before answering");
            self.decoder.push(&buf[..n]);
        }
    }

    async fn ack(&mut self) -> Message {
        let b = self.ack_bytes().await;
        hl7v2::parse(&b).unwrap_or_else(|e| panic!("ACK does not parse: {e}"))
    }
}

fn field(m: &Message, path: &str) -> String {
    m.value_at(&hl7v2::Path::compile(path).unwrap())
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

async fn queue_len(running: &Running, queue: &str) -> u64 {
    running.hub.bus.queue_len(queue).await.unwrap()
}

/// The messages ingress put into `queue` (later hops add copies of their own), taken out.
async fn from_ingress(running: &Running, queue: &str) -> Vec<Delivery> {
    let mut consumer = running.hub.bus.consume(queue, 100).await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(Ok(d))) =
        tokio::time::timeout(Duration::from_millis(300), consumer.next()).await
    {
        if d.props.header("x-kaigo-hop") == Some("ingress") {
            out.push(d);
        } else {
            d.ack().await.unwrap();
        }
    }
    out
}

fn link_and_consent(running: &Running) {
    let subject = Subject::new("131011", "0000100001").unwrap();
    running
        .hub
        .store
        .link("1311234567", "00012345", &subject)
        .unwrap();
    running
        .hub
        .store
        .consents()
        .grant(Consent {
            id: "mllp-test-1".parse().unwrap(),
            subject,
            grantee: Grantee::Kind(PartyKind::Platform),
            categories: vec![Category::Certification],
            valid_from: IsoDate::parse("2000-01-01").unwrap(),
            valid_to: None,
            purpose: None,
            revoked_at: None,
        })
        .unwrap();
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adt_is_refused_without_consent_and_accepted_once_linked_and_consented() {
    let (running, dir) = hub("consent", 1024 * 1024).await;
    let quarantine = running.hub.topology.quarantine_queue();
    let mut c = Client::connect(&running).await;

    c.send(&[&adt_a08()]).await;
    let ack = c.ack().await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(field(&ack, "MSA-2"), "MSG000001");
    let why = field(&ack, "ERR-8");
    assert!(
        why.contains("unknown-subject") || why.contains("consent-denied"),
        "{why}"
    );
    assert_eq!(queue_len(&running, &quarantine).await, 1);
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 0);

    link_and_consent(&running);
    c.send(&[&adt_a08()]).await;
    let ack = c.ack().await;
    assert_eq!(field(&ack, "MSA-1"), "AA", "{}", ack.text());
    assert_eq!(field(&ack, "MSA-2"), "MSG000001");
    assert_eq!(field(&ack, "ERR-8"), "");
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 1);
    // It went on: the translate hop picked it up and published the canonical document.
    let hub = running.hub.clone();
    eventually("translated", async || {
        hub.metrics.translated.load(Ordering::Relaxed) >= 1
    })
    .await;
    // The deliver hop may quarantine copies for recipients without consent; ingress did not.
    assert_eq!(from_ingress(&running, &quarantine).await.len(), 1);

    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_frames_on_one_connection_get_one_ack_each_in_order() {
    let (running, dir) = hub("order", 1024 * 1024).await;
    link_and_consent(&running);
    let bad_date = {
        let mut b = variant("M-BAD", None);
        let at = b.windows(10).position(|w| w == b"|19410315|").unwrap();
        b.splice(at + 1..at + 9, b"1941-3-1".iter().copied());
        b
    };
    let frames = [
        variant("M-1", None),
        variant("M-2", Some("0300000100")), // a party, but not allowed over MLLP
        bad_date,
        variant("M-3", None),
        unlinked_patient("M-4"), // the hospital's, but its patient id is linked to nobody
    ];
    let mut c = Client::connect(&running).await;
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    c.send(&refs).await;
    let mut answers = Vec::new();
    for _ in 0..frames.len() {
        let ack = c.ack().await;
        answers.push((field(&ack, "MSA-1"), field(&ack, "MSA-2")));
    }
    let expected = [
        ("AA", "M-1"),
        ("AR", "M-2"),
        ("AE", "M-BAD"),
        ("AA", "M-3"),
        ("AR", "M-4"),
    ];
    let got: Vec<(&str, &str)> = answers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 2);
    // The bad date was dead-lettered by ingress; the unlinked one quarantined; M-2 not kept.
    let t = running.hub.topology.clone();
    let dead = from_ingress(&running, &t.dead_queue()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].props.correlation_id.as_deref(), Some("M-BAD"));
    let quarantined = from_ingress(&running, &t.quarantine_queue()).await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].props.correlation_id.as_deref(), Some("M-4"));
    assert_eq!(
        quarantined[0].props.header("x-kaigo-reason"),
        Some("unknown-subject")
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_frames_are_answered_with_the_error() {
    let (running, dir) = hub("malformed", 4096).await;
    let dead = running.hub.topology.dead_queue();
    let mut c = Client::connect(&running).await;

    // Not HL7 at all: the sender cannot be identified, nothing is kept.
    c.send(&[b"hello, is this MLLP?"]).await;
    let ack = c.ack().await;
    assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
    assert_eq!(field(&ack, "MSA-2"), "");
    assert!(field(&ack, "ERR-8").contains("MSH"), "{}", ack.text());
    assert_eq!(queue_len(&running, &dead).await, 0);

    // HL7 that does not parse, from an identifiable hospital: dead-lettered with the error.
    c.send(&[b"MSH|^~\\&|HIS|1311234567|HUB|P|20251120||ADT^A08|X-1|P|2.5\rX|bad\r"])
        .await;
    let ack = c.ack().await;
    assert_eq!(field(&ack, "MSA-1"), "AE", "{}", ack.text());
    assert_eq!(field(&ack, "ERR-3.1"), "100", "a segment without a name");
    assert!(field(&ack, "ERR-8").contains("segment 2"), "{}", ack.text());
    assert_eq!(queue_len(&running, &dead).await, 1);

    // An empty block and a block over the limit are refused in their place.
    let mut big = b"MSH|^~\\&|HIS|1311234567|".to_vec();
    big.resize(10_000, b'x');
    c.stream.write_all(b"\x0b\x1c\r").await.unwrap();
    c.send(&[&big, &variant("AFTER", None)]).await;
    let empty = c.ack().await;
    assert_eq!(field(&empty, "MSA-1"), "AR");
    assert!(field(&empty, "ERR-8").contains("empty"), "{}", empty.text());
    let too_big = c.ack().await;
    assert_eq!(field(&too_big, "MSA-1"), "AR");
    assert!(
        field(&too_big, "ERR-8").contains("limit"),
        "{}",
        too_big.text()
    );
    let after = c.ack().await;
    assert_eq!(field(&after, "MSA-2"), "AFTER", "the connection goes on");

    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_not_allowed_from_this_address_is_refused_and_nothing_is_kept() {
    let (running, dir) = hub("sender", 1024 * 1024).await;
    link_and_consent(&running);
    let mut c = Client::connect(&running).await;
    for (id, msh4) in [("N-1", "0300000100"), ("N-2", "9999999999")] {
        c.send(&[&variant(id, Some(msh4))]).await;
        let ack = c.ack().await;
        assert_eq!(field(&ack, "MSA-1"), "AR", "{}", ack.text());
        assert_eq!(field(&ack, "MSA-2"), id);
        assert_eq!(field(&ack, "ERR-8"), "sender not allowed");
    }
    let t = &running.hub.topology;
    for q in [t.translate_queue(), t.dead_queue(), t.quarantine_queue()] {
        assert_eq!(queue_len(&running, &q).await, 0, "{q}");
    }
    assert_eq!(running.hub.metrics.accepted.load(Ordering::Relaxed), 0);
    assert_eq!(running.hub.metrics.rejected.load(Ordering::Relaxed), 2);
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ack_of_an_iso_2022_jp_message_is_iso_2022_jp() {
    let (running, dir) = hub("charset", 1024 * 1024).await;
    link_and_consent(&running);
    let mut c = Client::connect(&running).await;

    c.send(&[&adt_a08()]).await;
    let raw = c.ack_bytes().await;
    let ack = hl7v2::parse(&raw).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AA");
    assert_eq!(ack.charset(), Charset::Iso2022Jp);
    assert!(
        ack.text().contains("|~ISO IR87"),
        "MSH-18 kept: {}",
        ack.text()
    );

    // An error quoting the message's own Japanese text comes back in JIS X 0208, not UTF-8.
    let mut wareki = variant("JP-1", None);
    let at = wareki.windows(10).position(|w| w == b"|19410315|").unwrap();
    let jis = b"\x1b$B><OB\x1b(B"; // 昭和 in ISO-2022-JP
    wareki.splice(at + 1..at + 9, jis.iter().copied());
    c.send(&[&wareki]).await;
    let raw = c.ack_bytes().await;
    assert!(
        raw.windows(3).any(|w| w == b"\x1b$B"),
        "JIS escape expected"
    );
    assert!(std::str::from_utf8(&raw).is_ok_and(|s| !s.contains('昭')));
    let ack = hl7v2::parse(&raw).unwrap();
    assert_eq!(field(&ack, "MSA-1"), "AE");
    assert_eq!(field(&ack, "MSA-2"), "JP-1");
    assert!(field(&ack, "ERR-8").contains("昭和"), "{}", ack.text());

    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_closes_connections_and_stops_accepting() {
    let (running, dir) = hub("shutdown", 1024 * 1024).await;
    let addr = running.mllp_addr;
    let mut c = Client::connect(&running).await;
    c.send(&[&variant("S-1", Some("0300000100"))]).await;
    assert_eq!(field(&c.ack().await, "MSA-2"), "S-1");
    tokio::time::timeout(PATIENCE, running.stop())
        .await
        .expect("stop does not wait for idle connections");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, c.stream.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the hub closed the connection");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_address_without_a_port_stops_the_hub_at_start_naming_the_setting() {
    let (dir, parties) = scratch("addr-no-port");
    let cfg = Config {
        http_addr: "127.0.0.1:0".into(),
        mllp_addr: "127.0.0.1:0".into(),
        data_dir: dir.join("state"),
        parties,
        mappings: repo().join("mappings"),
        ..Default::default()
    };
    let cases = [
        (
            "mllp_addr (KAIGO_MLLP_ADDR)",
            Config {
                mllp_addr: "127.0.0.1".into(),
                ..cfg.clone()
            },
        ),
        (
            "http_addr (KAIGO_HTTP_ADDR)",
            Config {
                http_addr: "localhost".into(),
                ..cfg
            },
        ),
    ];
    for (setting, cfg) in cases {
        let e = match serve::start(&cfg).await {
            Ok(_) => panic!("{setting}: a hub without a port to listen on started"),
            Err(e) => e,
        };
        assert!(e.contains(setting) && e.contains("HOST:PORT"), "{e}");
    }
}
