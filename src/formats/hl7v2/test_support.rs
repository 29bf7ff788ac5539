//! Fixtures and small helpers shared by the HL7 v2 unit tests (compiled for tests only).

use super::*;
use std::borrow::Cow;
use std::path::PathBuf;

pub(crate) const FIXTURES: &str = "/work/shared/fixtures/ssmix2/sampleData";
pub(crate) const ADT00: &str = "/work/shared/fixtures/ssmix2/sampleData/999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447339_-_1";
/// The one fixture file that is not a message: two bytes, 0xFB 0xFC.
pub(crate) const ADT31_STUB: &str = "/work/shared/fixtures/ssmix2/sampleData/000/000/0000001/20000401/ADT-31/9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1";

pub(crate) fn fixture_files() -> Vec<PathBuf> {
    fn walk_dir(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("fixture dir readable")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk_dir(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk_dir(std::path::Path::new(FIXTURES), &mut out);
    out
}

pub(crate) fn adt00() -> Message {
    parse(&std::fs::read(ADT00).expect("ADT-00 fixture")).expect("ADT-00 parses")
}

pub(crate) fn p(s: &str) -> Path {
    Path::compile(s).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn v(m: &Message, path: &str) -> Option<String> {
    m.value_at(&p(path)).map(Cow::into_owned)
}

/// Values of every selected node ("" for empty ones).
pub(crate) fn all(m: &Message, from: Node, path: &str) -> Vec<String> {
    let mut nodes = Vec::new();
    m.select(from, &p(path), &mut nodes);
    nodes
        .into_iter()
        .map(|n| m.value(n).map(Cow::into_owned).unwrap_or_default())
        .collect()
}

/// SS-MIX2 data kind (folder name) -> message type it is stored as.
pub(crate) fn expected_type(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("ADT") => "ADT",
        "OMP-01" | "OMP-02" => "RDE",
        "OMP-11" | "OMP-12" => "RAS",
        "OMD" => "OMD",
        "OMG-01" | "OMG-02" | "OMG-03" => "OMG",
        "OMG-11" | "OMG-12" => "OMI",
        "OMG-13" => "ORU",
        "OML-01" => "OML",
        "OML-11" => "OUL",
        "PPR-01" => "PPR",
        _ => "?",
    }
}

pub(crate) fn utf8_msg(segments: &[&str], sep: &str) -> Vec<u8> {
    segments.join(sep).into_bytes()
}

pub(crate) const MSH_UTF8: &str =
    "MSH|^~\\&|SEND|FAC|RCV|RFAC|20240101||ADT^A08^ADT_A01|C1|P|2.5||||||UNICODE UTF-8";

/// Runs everything that takes input-derived positions.
pub(crate) fn exercise(bytes: &[u8]) {
    let m = match parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let paths = [
        "MSH",
        "MSH-1",
        "MSH-2.1",
        "MSH-9.2",
        "MSH-18",
        "PID-5[8=P].1",
        "PID-5.1.2",
        "PID-3[*]",
        "OBX[2]-5",
        "OBX[*]-3.2",
        "ZZZ-1[2]",
        "PID-11.5",
        "MSH[2=^~\\&]-9",
        "MSH[1=|]-2",
        "PID[5.8.1=P]-5",
        "OBX[3.1=A]-5[2].1",
        "IN1[99=]-36",
    ];
    let rel = ["-5", "-1[2].1", ".1", ".1.2", "[8=P].1", "[2]"];
    let mut nodes = Vec::new();
    for path in paths {
        nodes.clear();
        m.select(m.root(), &p(path), &mut nodes);
        for &n in &nodes {
            let _ = m.value(n);
            let _ = m.location(n);
            for r in rel {
                let mut inner = Vec::new();
                m.select(n, &p(r), &mut inner);
                m.select(n.whole_field(), &p(r), &mut inner);
                for x in inner {
                    let _ = m.value(x);
                }
            }
        }
    }
    for si in 0..m.segment_count().min(64) {
        let _ = m.segment_name(si);
        if let Some(n) = m.segment_node(si) {
            let _ = m.value(n);
        }
    }
    let mut count = 0usize;
    m.walk(&mut |_, _| count += 1);
    let _ = m.message_type();
    let _ = m.control_id();
    let ack = build_ack(Some(&m), AckCode::AE, None, "2024", "1");
    assert!(parse(ack.as_bytes()).is_ok(), "{ack:?}");
}

/// The property tests' configuration: 256 cases, no failure files written.
pub(crate) fn proptest_config() -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}
