//! The HTTP push sink, end to end on the real RabbitMQ: a recipient whose parties entry says
//! `delivery: { http: URL }` receives its documents as HTTP POSTs to a real listener of the test's
//! own, with the envelope id in `X-Kaigo-Envelope`. A recipient that answers an error at first is
//! tried again (the deliver hop requeues the copy) and the document arrives once it answers 2xx:
//! nothing is dropped, and the other recipients get their copies regardless.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One POST the recipient's listener received.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A recipient's HTTP endpoint: answers the first `fail_first` requests 503, then 200, and
/// records every request.
async fn recipient(fail_first: usize) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i);
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut req = Request {
                head,
                body: buf[head_end + 4..].to_vec(),
            };
            let length: usize = req
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while req.body.len() < length {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.body.extend_from_slice(&chunk[..n]),
                }
            }
            let n = {
                let mut l = log.lock().unwrap();
                l.push(req);
                l.len()
            };
            let answer: &[u8] = if n <= fail_first {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = s.write_all(answer).await;
        }
    });
    (format!("http://{addr}/kaigo/inbox/{CARE_MANAGER}"), seen)
}

/// The parties file with the care manager delivering over HTTP to `url`.
fn push_to(url: &str) -> impl FnOnce(String) -> String + '_ {
    move |parties: String| {
        let mut found = false;
        let out: Vec<String> = parties
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("delivery: { dir:")
                    && l.contains(&format!("out/{CARE_MANAGER}"))
                {
                    found = true;
                    format!("    delivery: {{ http: \"{url}\" }}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(
            found,
            "the demo parties deliver {CARE_MANAGER} to a directory"
        );
        out.join("\n") + "\n"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recipient_on_http_push_gets_its_document_after_answering_503_once() {
    let (url, seen) = recipient(1).await;
    let s = Scratch::rabbit("push", push_to(&url));
    let running = s.start().await;
    kaigo_hub::demo::seed(&running.hub).expect("demo seed");
    let t = running.hub.topology.clone();
    let provider = Tap::new(running.hub.bus.as_ref(), &t.out_queue(PROVIDER)).await;
    let dead = Tap::new(running.hub.bus.as_ref(), &t.dead_queue()).await;

    let reply = post_fhir(
        running.http_addr,
        "/fhir/Patient",
        "demo-hospital-key",
        &sample("fhir/patient-jpcore.json"),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let envelope = reply
        .header("x-kaigo-envelope")
        .expect("202 names the envelope")
        .to_string();

    eventually("the recipient answered 200 to a second POST", async || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    provider
        .wait("the FHIR copy for 0300000005", |m| m.len() == 1)
        .await;
    tokio::time::sleep(QUIET).await;

    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one refused POST, one accepted; no more");
    for r in &got {
        assert!(
            r.head
                .starts_with(&format!("POST /kaigo/inbox/{CARE_MANAGER} HTTP/1.1")),
            "{}",
            r.head
        );
        assert_eq!(r.header("x-kaigo-envelope"), Some(envelope.as_str()));
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{}",
            r.head
        );
    }
    assert_eq!(
        got[0].body, got[1].body,
        "the retry sends the same document"
    );
    let doc = json(&got[1].body);
    assert_eq!(doc["document"], "InsuredPerson@1");
    let golden = json(&sample("fhir/patient-jpcore.insured-person.json"));
    for field in ["birth_date", "name", "identifiers"] {
        assert_eq!(
            doc[field], golden[field],
            "{field} as the mapping computes it"
        );
    }
    assert_eq!(provider.all()[0].envelope(), envelope);
    assert_eq!(dead.all().len(), 0, "{:#?}", dead.all());
    assert_eq!(
        running.hub.metrics.delivered.load(Ordering::Relaxed),
        2,
        "one copy to each recipient"
    );
    assert_eq!(
        files(&s.out_dir(CARE_MANAGER)),
        vec![],
        "no directory any more"
    );
    running.stop().await;
}
