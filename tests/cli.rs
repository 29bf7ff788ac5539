//! The `kaigo-hub` binary as a user runs it: exit codes (0 ok, 1 bad input, 2 usage), one clear
//! error line with the location, `--dir` over the real SS-MIX2 storage, `inspect`, `schema`,
//! `mappings check|test`, a broken mapping file reported as file:line:column, and the store a
//! command works on: the usual SQLite URL forms, and a store that does not exist refused by name
//! (never created empty).

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

/// Counts of canonical documents by kind in JSON texts (a document or an array of them).
fn kinds_in(texts: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for t in texts {
        let v: serde_json::Value = serde_json::from_str(t).expect("JSON");
        let docs = match v {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for d in docs {
            if let Some(kind) = d["document"].as_str() {
                *counts.entry(kind.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[test]
fn translate_dir_converts_a_folder_mixing_every_shipped_format_by_content() {
    // Every shipped input sample that has golden files beside it (`<stem>.<what>.json` holding
    // canonical documents), copied into one folder. ケアプラン files keep their names (their
    // mappings read them); every other file gets a name that says nothing, so content decides.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let dir = tempdir();
    let mut goldens = Vec::new();
    let mut n = 0;
    for sub in std::fs::read_dir(&samples).expect("samples") {
        let sub = sub.expect("entry").path();
        let mut names: Vec<String> = std::fs::read_dir(&sub)
            .expect("sample dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            let golden: Vec<String> = names
                .iter()
                .filter(|g| {
                    g.starts_with(&format!("{stem}.")) && g.ends_with(".json") && *g != name
                })
                .map(|g| std::fs::read_to_string(sub.join(g)).expect("golden"))
                .filter(|t| !kinds_in(std::slice::from_ref(t)).is_empty())
                .collect();
            if golden.is_empty() {
                continue;
            }
            n += 1;
            let to = if name.starts_with("UP") {
                name.clone()
            } else {
                format!("incoming-{n:03}.dat")
            };
            std::fs::copy(sub.join(name), dir.join(to)).expect("copy");
            goldens.extend(golden);
        }
    }
    let expected = kinds_in(&goldens);
    for kind in [
        "CertificationApplication@1",
        "CertificationSurvey@1",
        "CertificationDecision@1",
        "InsuredPerson@1",
        "InsuranceCard@1",
        "CarePlan@1",
        "ServiceUsage@1",
        "PhysicianOpinion@1",
        "ClaimInvoice@1",
        "ClaimStatement@1",
        "RecipientChange@1",
        "BenefitManagement@1",
        "CareManagementStatement@1",
    ] {
        assert!(
            expected.contains_key(kind),
            "no sample makes {kind}: {expected:?}"
        );
    }
    let o = hub(&["translate", "--dir", dir.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(kinds_in(&lines), expected, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{n} file(s)")) && err.contains(&format!("{n} converted")),
        "{err}"
    );
    assert!(err.contains(" 0 failed, 0 skipped"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
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
    // A broken mapping is a configuration error: exit 2, as the README and docs/operating.md say.
    let o = hub(&["mappings", "check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("broken.yaml:6:3:"), "{err}");
    assert!(err.contains("famliy"), "{err}");
    let o = hub(&["mappings", "test", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.yaml:6:3:"), "{}", stderr(&o));
}

#[test]
fn golden_test_files_that_are_not_there_are_named_with_the_mapping_line() {
    let dir = tempdir();
    std::fs::write(
        dir.join("golden.yaml"),
        "id: golden\nversion: 1\nsource: { format: hl7v2 }\ntarget: InsuredPerson@1\nfields:\n  name.kanji.family: \"PID-5.1\"\ntests:\n  - { input: nope.hl7, expect: nope.json }\n  - { input: here.hl7, expect: gone.json }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("here.hl7"),
        "MSH|^~\\&|HIS|1318814790|KAIGO|HUB|20251024101500||ADT^A08^ADT_A01|MSG00001|P|2.5\rPID|1||00000010^^^^PI||介護^太郎^^^^^L^I\r",
    )
    .unwrap();
    let file = dir.join("golden.yaml");
    let file = file.display();

    let o = hub(&["mappings", "check", dir.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("3 golden test file(s) missing"), "{err}");
    for (line, role, name) in [
        (8, "input", "nope.hl7"),
        (8, "expect", "nope.json"),
        (9, "expect", "gone.json"),
    ] {
        let want = format!("{file}:{line}:");
        let named = err.lines().any(|l| {
            l.starts_with(&want)
                && l.contains("mapping `golden`")
                && l.contains(&format!("the test's {role} file "))
                && l.contains(name)
                && l.contains("does not exist")
        });
        assert!(named, "{want} {role} {name} not reported:\n{err}");
    }
    assert!(
        !err.contains("here.hl7"),
        "an existing file is not reported: {err}"
    );

    let o = hub(&["mappings", "test", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    assert!(out.contains("0 passed, 2 failed"), "{out}");
    assert!(
        out.contains("the test's input file ") && out.contains("nope.hl7 does not exist"),
        "{out}"
    );
    assert!(out.contains("gone.json does not exist"), "{out}");
    assert!(
        stderr(&o).contains("3 golden test file(s) missing"),
        "{}",
        stderr(&o)
    );
}

/// `kaigo-hub ARGS` run in `dir` with none of the test's `KAIGO_*` variables, but `env`.
fn hub_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaigo-hub"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("KAIGO_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied())
        .args(args)
        .output()
        .expect("binary runs")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_command_pointed_at_a_missing_sqlite_store_names_it_and_creates_nothing() {
    let dir = tempdir();
    let o = hub_in(&dir, &[], &["consent", "list"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let expected = dir.join("data").join("kaigo-hub.sqlite");
    assert!(
        err.contains(&format!(
            "no kaigo-hub store at SQLite file {}",
            expected.display()
        )),
        "{err}"
    );
    for hint in ["--config", "KAIGO_DATA_DIR", "KAIGO_DATABASE_URL"] {
        assert!(err.contains(hint), "hints at {hint}: {err}");
    }
    let o = hub_in(
        &dir,
        &[("KAIGO_DATABASE_URL", "sqlite:./x.db")],
        &["consent", "revoke", "c-1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("SQLite file {}", dir.join("x.db").display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(entries(&dir), Vec::<String>::new(), "nothing was created");
}

#[test]
fn the_usual_sqlite_url_forms_reach_the_same_store_and_an_in_memory_one_is_refused() {
    let dir = tempdir();
    // The store as `serve` creates it.
    kaigo_hub::store::sqlite::SqliteStore::open(&dir.join("x.db")).expect("store");
    let abs = format!("sqlite://{}", dir.join("x.db").display());
    let o = hub_in(
        &dir,
        &[("KAIGO_DATABASE_URL", "sqlite:./x.db")],
        &[
            "consent",
            "grant",
            "--id",
            "forms-1",
            "--subject",
            "131011:0000100001",
            "--to",
            "provider",
            "--categories",
            "care-plan",
            "--from",
            "2025-04-01",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for url in [
        "sqlite://x.db",
        abs.as_str(),
        "file:x.db",
        "x.db",
        "sqlite:x.db",
    ] {
        let o = hub_in(&dir, &[("KAIGO_DATABASE_URL", url)], &["consent", "list"]);
        assert_eq!(o.status.code(), Some(0), "{url}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("forms-1"),
            "{url} reaches the store the grant went to: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(
            stderr(&o).contains(&format!("SQLite file {}", dir.join("x.db").display())),
            "{url}: names the store: {}",
            stderr(&o)
        );
    }
    let o = hub_in(
        &dir,
        &[("KAIGO_DATABASE_URL", "sqlite::memory:")],
        &["consent", "list"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in-memory"), "{}", stderr(&o));
    assert!(
        // `data/` holds the CLI's audit chain and key (data_dir), not a store.
        entries(&dir)
            .iter()
            .all(|n| n.starts_with("x.db") || n == "data"),
        "no file named after the URL: {:?}",
        entries(&dir)
    );
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
