//! `kaigo-hub mappings test`: runs each mapping's golden tests (input file → expected output
//! file) and reports what differs, down to the first differing JSON path or CSV line. Inbound
//! mappings are compared as JSON values; outbound CSV byte for byte. [`missing_files`] is what
//! `mappings check` asks: which test files a mapping names that are not there.

use super::{Input, MappingSet, Rendered, Target};
// The integrator's own test files: errors say their values.
use crate::redact::Disclose;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The outcome of one golden test.
#[derive(Debug)]
pub struct TestOutcome {
    /// Mapping id.
    pub mapping: String,
    /// `file:line:column` of the test entry.
    pub at: String,
    /// Input file, as written.
    pub input: String,
    /// `None` = passed; otherwise what went wrong.
    pub failure: Option<String>,
}

/// Runs every test of every mapping in the set.
pub fn run_all(set: &MappingSet) -> Vec<TestOutcome> {
    let mut out = Vec::new();
    for m in &set.mappings {
        for t in &m.tests {
            let failure = run_one(set, m, t).err();
            out.push(TestOutcome {
                mapping: m.id.clone(),
                at: t.loc.to_string(),
                input: t.input.display().to_string(),
                failure,
            });
        }
    }
    out
}

/// A file that a golden test names and that is not there to read.
#[derive(Debug)]
pub struct MissingTestFile {
    /// Mapping id.
    pub mapping: String,
    /// `file:line:column` of the test entry.
    pub at: String,
    /// `input` or `expect`: which of the test's files.
    pub role: &'static str,
    /// The path as resolved (relative to the mapping file's directory).
    pub path: PathBuf,
    /// What is wrong with it: `does not exist`, `is not a file`, …
    pub why: String,
}

impl std::fmt::Display for MissingTestFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: mapping `{}`: the test's {} file {} {} (paths in `tests:` are relative to the mapping file; fix the path or add the file)",
            self.at,
            self.mapping,
            self.role,
            self.path.display(),
            self.why
        )
    }
}

/// Every golden test file (input or expect) of every mapping that cannot be read as a file, in
/// the order the mappings and their tests are written.
pub fn missing_files(set: &MappingSet) -> Vec<MissingTestFile> {
    let mut out = Vec::new();
    for m in &set.mappings {
        for t in &m.tests {
            for (role, path) in [("input", &t.input), ("expect", &t.expect)] {
                if let Some(why) = file_problem(path) {
                    out.push(MissingTestFile {
                        mapping: m.id.clone(),
                        at: t.loc.to_string(),
                        role,
                        path: path.clone(),
                        why,
                    });
                }
            }
        }
    }
    out
}

/// Why `p` is not a readable file, or `None` when it is one.
fn file_problem(p: &Path) -> Option<String> {
    match std::fs::metadata(p) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("is not a file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

fn read(p: &Path, role: &str) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| {
        let why = file_problem(p).unwrap_or_else(|| format!("cannot be read: {e}"));
        format!(
            "the test's {role} file {} {why} (paths in `tests:` are relative to the mapping file)",
            p.display()
        )
    })
}

fn run_one(set: &MappingSet, m: &super::Mapping, t: &super::plan::TestCase) -> Result<(), String> {
    let input = read(&t.input, "input")?;
    let expect = read(&t.expect, "expect")?;
    let name = t.file_name.clone().or_else(|| {
        t.input
            .file_name()
            .and_then(|n| n.to_str())
            .map(String::from)
    });
    match &m.target {
        Target::Document(_) => {
            let tr = set
                .translate(
                    Input {
                        bytes: &input,
                        file_name: name.as_deref(),
                    },
                    Some(&m.id),
                )
                .map_err(|e| e.for_sender().to_string())?;
            let got: Vec<Value> = tr
                .documents
                .iter()
                .map(|d| serde_json::from_str(&d.json).unwrap_or(Value::Null))
                .collect();
            compare_json(&got, &expect, t)
        }
        Target::Fhir | Target::Csv(_) => {
            let docs = json_docs(&input).map_err(|e| format!("{}: {e}", t.input.display()))?;
            match set
                .render(&docs, m.target.name(), Some(&m.id))
                .map_err(|e| e.for_sender().to_string())?
            {
                Rendered::Json(texts) => {
                    let got: Vec<Value> = texts
                        .iter()
                        .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
                        .collect();
                    compare_json(&got, &expect, t)
                }
                Rendered::Csv(bytes) => {
                    if bytes == expect {
                        Ok(())
                    } else {
                        Err(first_csv_difference(&bytes, &expect))
                    }
                }
            }
        }
    }
}

/// Reads a JSON file holding one document, an array of documents, or JSON Lines.
pub fn json_docs(bytes: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(v) => Ok(vec![v]),
        Err(first) => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            let lines: Result<Vec<Value>, _> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect();
            lines.map_err(|_| first.to_string())
        }
    }
}

fn compare_json(got: &[Value], expect: &[u8], t: &super::plan::TestCase) -> Result<(), String> {
    let want = json_docs(expect).map_err(|e| format!("{}: {e}", t.expect.display()))?;
    if got.len() != want.len() {
        return Err(format!(
            "made {} document(s), {} expects {}",
            got.len(),
            t.expect.display(),
            want.len()
        ));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(d) = first_json_difference(g, w, &format!("[{i}]")) {
            return Err(format!("differs from {}: {d}", t.expect.display()));
        }
    }
    Ok(())
}

/// The first path where two JSON values differ, with both sides.
pub fn first_json_difference(got: &Value, want: &Value, path: &str) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                match g.get(k) {
                    None => return Some(format!("{path}.{k}: missing (expected {wv})")),
                    Some(gv) => {
                        if let Some(d) = first_json_difference(gv, wv, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            g.iter()
                .find(|(k, _)| !w.contains_key(*k))
                .map(|(k, v)| format!("{path}.{k}: unexpected {v}"))
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Some(format!("{path}: {} items, expected {}", g.len(), w.len()));
            }
            g.iter()
                .zip(w)
                .enumerate()
                .find_map(|(i, (a, b))| first_json_difference(a, b, &format!("{path}[{i}]")))
        }
        (g, w) if g == w => None,
        (g, w) => Some(format!("{path}: got {g}, expected {w}")),
    }
}

fn first_csv_difference(got: &[u8], want: &[u8]) -> String {
    let line = |b: &[u8], n: usize| -> String {
        b.split(|c| *c == b'\n')
            .nth(n)
            .map(|l| format!("{:?}", String::from_utf8_lossy(l)))
            .unwrap_or_else(|| "(no line)".into())
    };
    let pos = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let n = got[..pos].iter().filter(|c| **c == b'\n').count();
    format!(
        "output differs at byte {pos} (line {}): got {} expected {} (bytes shown as UTF-8 lossily; the file is in its own charset)",
        n + 1,
        line(got, n),
        line(want, n)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_file_that_is_not_there_says_what_is_wrong_with_it() {
        let dir = std::env::temp_dir();
        assert_eq!(file_problem(&dir).as_deref(), Some("is not a file"));
        let gone = dir.join(format!(
            "kaigo-hub-no-such-test-{}.json",
            std::process::id()
        ));
        assert_eq!(file_problem(&gone).as_deref(), Some("does not exist"));
        assert_eq!(file_problem(Path::new("Cargo.toml")), None);
        let err = read(&gone, "expect").expect_err("no file");
        assert!(err.starts_with("the test's expect file "), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }
}
