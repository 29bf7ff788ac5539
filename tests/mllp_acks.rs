//! What the hub answers over MLLP, on the real RabbitMQ: for each kind of outcome a frame is sent
//! as a hospital (or a municipality) would, and its `ACK` is read off the socket. `ERR-3` holds a
//! code of HL7 table 0357 only where one fits (`100`, `103`, `200`); consent, subject, insurer
//! and sender refusals, and a rule of the mapping that refused a value, leave it empty and carry
//! the hub's own code in `ERR-5` (`code^text^99KHB`, as docs/mllp.md lists them); `207` is never
//! sent for any of them. The `ACK`s of frames sent together on one connection each carry only
//! their own message's data — never another frame's, never the 被保険者番号 the hub looked up.

mod common;

use common::*;
use kaigo_hub::consent::{Category, Grantee, PartyKind};
use kaigo_hub::formats::hl7v2::{self, Message};

/// The municipality's MLLP address in this test's parties file.
const MUNICIPALITY_AT: &str = "127.0.0.3";

fn field(m: &Message, path: &str) -> String {
    m.value_at(&hl7v2::Path::compile(path).expect("a valid path"))
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

/// `bytes` with the first `from` replaced by `to`.
fn replaced(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` is in the sample"));
    let mut b = bytes.to_vec();
    b.splice(at..at + from.len(), to.bytes());
    b
}

/// The first hospital's A08 with its own control id (MSH-10).
fn a08(control_id: &str) -> Vec<u8> {
    replaced(&adt_a08(), "|MSG000001|", &format!("|{control_id}|"))
}

fn a01() -> Vec<u8> {
    let mut b = sample("hl7v2/adt-a01-utf8.hl7");
    if b.last() == Some(&0x1C) {
        b.pop();
    }
    b
}

/// One expected answer: MSA-1, ERR-3.1, ERR-5.1.
struct Expect {
    frame: Vec<u8>,
    msa: &'static str,
    err3: &'static str,
    err5: &'static str,
}

fn expect(frame: Vec<u8>, msa: &'static str, err3: &'static str, err5: &'static str) -> Expect {
    Expect {
        frame,
        msa,
        err3,
        err5,
    }
}

fn check(ack: &Message, e: &Expect) {
    let t = ack.text();
    assert_eq!(field(ack, "MSA-1"), e.msa, "{t}");
    assert_eq!(field(ack, "ERR-3.1"), e.err3, "{t}");
    assert_eq!(field(ack, "ERR-5.1"), e.err5, "{t}");
    if !e.err3.is_empty() {
        assert_eq!(field(ack, "ERR-3.3"), "HL70357", "{t}");
    }
    if !e.err5.is_empty() {
        assert_eq!(field(ack, "ERR-5.3"), "99KHB", "{t}");
        assert!(!field(ack, "ERR-5.2").is_empty(), "{t}");
    }
    if e.msa != "AA" {
        assert_eq!(field(ack, "ERR-4"), "E", "{t}");
        assert!(!field(ack, "ERR-8").is_empty(), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_outcome_is_answered_with_its_table_0357_or_local_code() {
    let s = Scratch::rabbit("mllp-acks", |t| {
        let anchor = "    amqp_user: kaigo-vendor-131011\n";
        assert!(t.contains(anchor));
        t.replace(
            anchor,
            &format!("{anchor}    mllp_peers: [\"{MUNICIPALITY_AT}\"]\n"),
        )
    });
    let running = s.start().await;
    let hub = running.hub.clone();
    link_sample_patients(&hub);
    // The municipality's patient id names a person another insurer (435073) insures.
    hub.store
        .link(MUNICIPALITY, "00012345", &subject(PERSON_2))
        .expect("link");
    // Person 1 consented to the platform; person 2 did not.
    grant(
        &hub,
        "acks-1",
        PERSON_1,
        Grantee::Kind(PartyKind::Platform),
        &[Category::Certification],
    )
    .await;
    let at = running.mllp_addr;

    // From the first hospital's address, all on one connection.
    let bad_date = replaced(&a08("C-DATE"), "|19410315|", "|1941-3-1|");
    let first = [
        expect(a08("C-OK"), "AA", "", ""),
        expect(
            replaced(&a08("C-TYPE"), "ADT^A08^ADT_A01", "ORU^R01^ORU_R01"),
            "AE",
            "200",
            "",
        ),
        expect(bad_date, "AE", "", "mapping-failed"),
        expect(
            b"MSH|^~\\&|HIS|1311234567|HUB|P|20251120||ADT^A08|C-SEG|P|2.5\rX|bad\r".to_vec(),
            "AE",
            "100",
            "",
        ),
        expect(
            replaced(&a08("C-CHARSET"), "|~ISO IR87|", "|KLINGON|"),
            "AE",
            "103",
            "",
        ),
        expect(
            replaced(&a08("C-WHO"), "|00012345^^^^PI|", "|99999999^^^^PI|"),
            "AR",
            "",
            "unknown-subject",
        ),
        expect(a01(), "AR", "", "sender-not-allowed"),
        expect(b"hello, is this MLLP?".to_vec(), "AR", "100", ""),
    ];
    let frames: Vec<&[u8]> = first.iter().map(|e| e.frame.as_slice()).collect();
    let acks: Vec<Vec<u8>> = mllp_send_from("127.0.0.1", at, &frames).await;
    let parsed: Vec<Message> = acks
        .iter()
        .map(|a| hl7v2::parse(a).unwrap_or_else(|e| panic!("the ACK does not parse: {e}")))
        .collect();
    for (ack, e) in parsed.iter().zip(&first) {
        check(ack, e);
    }
    // The offending value goes back to the sender of that message, and to no other answer.
    assert!(
        parsed[2].text().contains("1941-3-1"),
        "{}",
        parsed[2].text()
    );
    for (i, ack) in parsed.iter().enumerate() {
        let t = ack.text();
        if i != 2 {
            assert!(!t.contains("1941-3-1"), "answer {i} echoes frame 2: {t}");
        }
        for (j, other) in ["C-OK", "C-TYPE", "C-DATE", "C-SEG", "C-CHARSET", "C-WHO"]
            .iter()
            .enumerate()
        {
            if i != j {
                assert!(!t.contains(other), "answer {i} names frame {j}: {t}");
            }
        }
    }

    // The second hospital, whose patient has not consented; the municipality, for a person of
    // another insurer.
    let second = expect(a01(), "AR", "", "consent-denied");
    let ack = mllp_send_from("127.0.0.2", at, &[&second.frame]).await;
    let ack = hl7v2::parse(&ack[0]).expect("the ACK parses");
    check(&ack, &second);
    assert!(
        field(&ack, "ERR-8").starts_with("consent-denied:"),
        "{}",
        ack.text()
    );
    parsed.iter().for_each(|a| {
        assert!(!a.text().contains("A-778"), "{}", a.text());
    });
    assert!(!ack.text().contains("00012345"), "{}", ack.text());

    let municipal = expect(
        replaced(&a08("C-INSURER"), "|HIS|1311234567|", "|HIS|131011|"),
        "AR",
        "",
        "insurer-mismatch",
    );
    let ack3 = mllp_send_from(MUNICIPALITY_AT, at, &[&municipal.frame]).await;
    let ack3 = hl7v2::parse(&ack3[0]).expect("the ACK parses");
    check(&ack3, &municipal);

    // No answer carries a 被保険者番号 the hub looked up, nor calls a refusal an internal error.
    for a in parsed.iter().chain([&ack, &ack3]) {
        let t = a.text();
        for looked_up in [PERSON_1.1, PERSON_2.1, PERSON_2.0] {
            assert!(!t.contains(looked_up), "`{looked_up}` in {t}");
        }
        assert_ne!(field(a, "ERR-3.1"), "207", "{t}");
    }
    running.stop().await;
}
