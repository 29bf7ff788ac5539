//! `translate` never panics, whatever the bytes: arbitrary input, and every shipped sample
//! mutated (bytes flipped, cut, spliced) go through format sniffing, every parser, match rules,
//! mappings, validation and outbound rendering, and must come back as `Ok` or a typed error.
//! Deeply nested inputs are refused without exhausting the stack; large ones are read for their
//! structure (their size is bounded at the hub's doors, `body_limit`).

use kaigo_hub::mapping::{Input, MappingSet};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn set() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        MappingSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings"))
            .unwrap_or_else(|e| panic!("shipped mappings load: {e:?}"))
    })
}

fn samples() -> &'static Vec<(PathBuf, Vec<u8>)> {
    static S: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let mut out = Vec::new();
        let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("samples dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
        out.sort();
        assert!(
            out.len() >= 20,
            "expected the shipped samples, found {}",
            out.len()
        );
        out
    })
}

/// Runs everything a user can reach from `translate`, including `--to` rendering.
fn exercise(bytes: &[u8], name: Option<&str>) {
    let set = set();
    if let Ok(t) = set.translate(
        Input {
            bytes,
            file_name: name,
        },
        None,
    ) {
        let docs: Vec<serde_json::Value> = t
            .documents
            .iter()
            .map(|d| serde_json::from_str(&d.json).expect("valid JSON"))
            .collect();
        let _ = set.render(&docs, "fhir", None);
        let _ = set.render(&docs, "csv", None);
    }
    for m in &set.mappings {
        let _ = set.translate(
            Input {
                bytes,
                file_name: name,
            },
            Some(&m.id),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes, None);
        exercise(&bytes, Some("UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV"));
    }

    #[test]
    fn arbitrary_text_with_format_heads_never_panics(
        head in prop::sample::select(vec!["MSH|^~\\&|", "{\"resourceType\":\"Bundle\",", "<?xml version=\"1.0\"?>", "202407,131011,", "{\"document\":\"CarePlan@1\","]),
        tail in "\\PC{0,400}",
    ) {
        exercise(format!("{head}{tail}").as_bytes(), Some("UP1KYO_0300000100_43_0300000005_11_20251025200201.CSV"));
    }

    #[test]
    fn mutated_samples_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..12),
    ) {
        let (path, original) = which.get(samples());
        let mut bytes = original.clone();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                2 => bytes.insert(i, byte),
                _ => { let chunk: Vec<u8> = bytes[i..].iter().take(16).copied().collect(); bytes.splice(i..i, chunk); }
            }
        }
        let name = path.file_name().and_then(|n| n.to_str());
        exercise(&bytes, name);
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep_json = format!(
        "{{\"resourceType\":\"Bundle\",\"entry\":{}",
        "[".repeat(200_000)
    );
    let deep_xml = format!("<?xml version=\"1.0\"?>{}", "<a>".repeat(200_000));
    for bytes in [deep_json.into_bytes(), deep_xml.into_bytes()] {
        let e = set().translate(
            Input {
                bytes: &bytes,
                file_name: None,
            },
            None,
        );
        assert!(e.is_err(), "deeply nested input must be refused");
    }
}

/// Size is refused at the doors (`body_limit`, tests/body_limit.rs), not by a smaller limit of
/// the formats: a 17 MiB input is read for what it is, and its error says where it is wrong.
#[test]
fn large_inputs_are_judged_by_their_structure_not_their_size() {
    let mut huge = b"MSH|^~\\&|A|B|C|D|20250101||ADT^A08|1|P|2.5\r".to_vec();
    huge.resize(17 * 1024 * 1024, b'X');
    let err = set()
        .translate(
            Input {
                bytes: &huge,
                file_name: None,
            },
            None,
        )
        .expect_err("a segment without a name");
    assert!(err.to_string().contains("segment 2"), "{err}");
}
