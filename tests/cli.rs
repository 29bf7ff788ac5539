//! The `kaigo-hub` binary as a user runs it: exit codes (0 ok, 1 bad input, 2 usage), one clear
//! error line with the location, `--dir` over the real SS-MIX2 storage, `inspect`, `schema`,
//! `mappings check|test`, and a broken mapping file reported as file:line:column.

use std::path::Path;
use std::process::{Command, Output};

fn hub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaigo-hub"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn translate_prints_canonical_json_and_exits_0() {
    let o = hub(&["translate", "samples/hl7v2/adt-a08.hl7"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["document"], "InsuredPerson@1");
    assert!(
        stderr(&o).contains("ssmix2-adt-insured-person"),
        "says which mapping it chose"
    );
}

#[test]
fn bad_input_exits_1_with_the_location_on_one_line() {
    let dir = tempdir();
    let f = dir.join("bad-date.hl7");
    std::fs::write(&f, "MSH|^~\\&|HIS|1311234567|X|Y|20251120||ADT^A08|1|P|2.5\rPID|1||123||試験^花子^^^^^L^I||1941-03-15|F\r").unwrap();
    let o = hub(&["translate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("PID-7"), "{err}");
    assert!(err.contains("1941-03-15"), "{err}");
    assert!(err.contains("birth_date"), "{err}");
    assert!(
        err.contains("mappings/ssmix2-adt-insured-person.yaml:"),
        "{err}"
    );
}

#[test]
fn no_mapping_fits_says_what_was_tried() {
    let o = hub(&["translate", "-"]);
    // stdin is empty: that is CSV by sniffing, and no CSV mapping fits without a file name.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hub(&["translate"]).status.code(), Some(2));
    assert_eq!(hub(&["translate", "--frobnicate"]).status.code(), Some(2));
    assert_eq!(hub(&["schema", "NoSuchDocument"]).status.code(), Some(2));
    let o = hub(&[
        "translate",
        "--mapping",
        "no-such-mapping",
        "samples/hl7v2/adt-a08.hl7",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-mapping"));
}

#[test]
fn translate_dir_converts_an_ssmix2_storage_to_json_lines_with_a_summary() {
    let storage =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/ssmix2/sampleData");
    assert!(
        storage.is_dir(),
        "fixtures missing at {}",
        storage.display()
    );
    let o = hub(&[
        "translate",
        "--dir",
        storage.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(lines.len() >= 5, "{} documents", lines.len());
    assert!(lines.iter().all(|d| d["document"] == "InsuredPerson@1"));
    let err = stderr(&o);
    assert!(err.contains("22 file(s)"), "{err}");
    assert!(
        err.contains("converted") && err.contains("skipped"),
        "{err}"
    );
}

#[test]
fn inspect_shows_paths_a_mapping_can_use() {
    let o = hub(&["inspect", "samples/hl7v2/adt-a08.hl7"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("PID-5[1].1 = 試験"), "{out}");
    assert!(out.contains("PID-7 = 19410315"), "{out}");
}

#[test]
fn schema_prints_json_schema_with_japanese_descriptions() {
    let o = hub(&["schema", "InsuredPerson"]);
    assert_eq!(o.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["properties"]["document"]["const"], "InsuredPerson@1");
    assert!(s.to_string().contains("生年月日"));
}

#[test]
fn shipped_mappings_check_and_test_clean() {
    let o = hub(&["mappings", "check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let o = hub(&["mappings", "test"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn a_broken_mapping_is_reported_with_file_line_column() {
    let dir = tempdir();
    std::fs::write(
        dir.join("broken.yaml"),
        "id: broken\nversion: 1\nsource: { format: hl7v2 }\ntarget: InsuredPerson@1\nfields:\n  name.kanji.famliy: \"PID-5.1\"\n",
    )
    .unwrap();
    let o = hub(&["mappings", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("broken.yaml:6:3:"), "{err}");
    assert!(err.contains("famliy"), "{err}");
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "kaigo-hub-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
