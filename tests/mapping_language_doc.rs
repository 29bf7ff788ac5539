//! Every example in `docs/mapping-language.md` is run here, so the integrators' reference cannot
//! drift from what the engine does.
//!
//! An example is an HTML comment `<!-- example: NAME -->` followed by fenced blocks, in order:
//!
//! 1. ```` ```yaml mapping ```` — the mapping file;
//! 2. optionally ```` ```hl7 input ```` / `json input` / `xml input` / `csv input` — the input
//!    (HL7 segments one per line, joined here with `\r`; CSV as UTF-8 text). Outbound mappings
//!    (`target: { format: fhir|csv }`) take canonical JSON (`json input`: one document or an array);
//! 3. optionally ```` ```text file-name ```` — one line, the file name the input pretends to have;
//! 4. exactly one of ```` ```json expect ```` (the documents or FHIR resources made: one object or an
//!    array), ```` ```csv expect ```` (outbound CSV, one record per line, compared after decoding
//!    with the mapping's charset and with the mapping's line ending after every line), or
//!    ```` ```text error ```` (every non-empty line must occur in the error message). Without an
//!    input, `text error` is a compile error; with one, a translate/render error, as its sender
//!    reads it (with the values);
//! 5. optionally, after a translate/render `text error`, ```` ```text log ```` — the same error as
//!    the hub's log, dead-letter header and error files say it (`Display`, value-free): every
//!    non-empty line must occur in it.
//!
//! Inbound examples are translated twice: with the mapping named (`--mapping ID`) and chosen by its
//! `source.match` rule (as `kaigo-hub translate` does without `--mapping`); both must give the
//! expected documents. Error examples are translated the second way. A mapping with `tests:`
//! has its one golden test written to a temporary directory (input and expect blocks under the
//! names the test gives) and run through `kaigo-hub mappings test`'s code.
//!
//! The test fails loudly on a malformed example, on a `##` section without an example, and when
//! the document has fewer than [`MIN_EXAMPLES`] examples, so deleting examples cannot pass quietly.

use kaigo_hub::formats::charset;
use kaigo_hub::mapping::compile::compile_str;
use kaigo_hub::mapping::{Input, MappingSet, Rendered, Target, testing};
use kaigo_hub::redact::Disclose;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The document must keep at least this many tested examples.
const MIN_EXAMPLES: usize = 25;

const DOC: &str = "docs/mapping-language.md";

#[derive(Debug)]
struct Block {
    info: String,
    body: String,
    line: usize,
}

#[derive(Debug, Default)]
struct Example {
    name: String,
    line: usize,
    section: String,
    mapping: Option<Block>,
    input: Option<Block>,
    file_name: Option<Block>,
    expect: Option<Block>,
    error: Option<Block>,
    log: Option<Block>,
}

/// A `##` section and how many examples it holds.
struct Section {
    line: usize,
    heading: String,
    examples: usize,
}

enum Event {
    Heading(usize, String),
    Example(usize, String),
    Block(Block),
}

const ROLE_WORDS: &[&str] = &["mapping", "input", "expect", "error", "file-name", "log"];
const INPUT_LANGS: &[&str] = &["hl7", "json", "xml", "csv"];

/// Splits the markdown into headings, example markers and fenced blocks.
fn events(text: &str) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        let trimmed = line.trim_start();
        let fence_len = trimmed.chars().take_while(|c| *c == '`').count();
        if fence_len >= 3 {
            let info = trimmed[fence_len..].trim().to_string();
            let mut body = Vec::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                let t = l.trim();
                if t.len() >= fence_len && t.chars().all(|c| c == '`') {
                    closed = true;
                    break;
                }
                body.push(l);
            }
            if !closed {
                return Err(format!("{DOC}:{n}: fenced block `{info}` is never closed"));
            }
            let mut body = body.join("\n");
            body.push('\n');
            out.push(Event::Block(Block {
                info,
                body,
                line: n,
            }));
        } else if let Some(rest) = trimmed.strip_prefix("<!-- example:") {
            let name = rest
                .strip_suffix("-->")
                .ok_or_else(|| format!("{DOC}:{n}: `<!-- example: NAME -->` must be on one line"))?
                .trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("{DOC}:{n}: example name `{name}` must be one word"));
            }
            out.push(Event::Example(n, name.to_string()));
        } else if trimmed.contains("example:") && trimmed.contains("<!--") {
            return Err(format!("{DOC}:{n}: malformed example marker `{trimmed}`"));
        } else if let Some(h) = line.strip_prefix("## ") {
            out.push(Event::Heading(n, h.trim().to_string()));
        }
    }
    Ok(out)
}

fn is_role(info: &str) -> bool {
    let words: Vec<&str> = info.split_whitespace().collect();
    match words.as_slice() {
        ["yaml", "mapping"] | ["text", "file-name"] | ["json", "expect"] | ["csv", "expect"] => {
            true
        }
        ["text", "error"] | ["text", "log"] => true,
        [lang, "input"] => INPUT_LANGS.contains(lang),
        _ => false,
    }
}

/// A misspelt role (`yaml maping`, `json expected`) must not pass for an illustration.
fn looks_like_role(info: &str) -> bool {
    info.split_whitespace().skip(1).any(|w| {
        let w = w.to_ascii_lowercase();
        ROLE_WORDS
            .iter()
            .any(|r| w.get(..3).is_some_and(|p| r.starts_with(p)))
    })
}

/// Groups the events into examples, refusing anything malformed.
fn examples(text: &str) -> Result<(Vec<Example>, Vec<Section>), String> {
    let mut done: Vec<Example> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<Example> = None;
    let mut section = String::from("(before the first section)");

    fn finish(ex: Example, done: &mut Vec<Example>) -> Result<(), String> {
        let at = format!("{DOC}:{} (example `{}`)", ex.line, ex.name);
        if ex.mapping.is_none() {
            return Err(format!("{at}: no ```yaml mapping block"));
        }
        if ex.expect.is_none() && ex.error.is_none() {
            return Err(format!(
                "{at}: ends without a ```json expect, ```csv expect or ```text error block"
            ));
        }
        if ex.expect.is_some() && ex.input.is_none() {
            return Err(format!("{at}: an expect block needs an input block"));
        }
        if ex.file_name.is_some() && ex.input.is_none() {
            return Err(format!("{at}: a file-name block needs an input block"));
        }
        if done.iter().any(|d| d.name == ex.name) {
            return Err(format!("{at}: the name is used twice"));
        }
        done.push(ex);
        Ok(())
    }

    for ev in events(text)? {
        match ev {
            Event::Heading(n, h) => {
                if let Some(ex) = current.take() {
                    finish(ex, &mut done)?;
                }
                section = h.clone();
                sections.push(Section {
                    line: n,
                    heading: h,
                    examples: 0,
                });
            }
            Event::Example(n, name) => {
                if let Some(ex) = current.take() {
                    finish(ex, &mut done)?;
                }
                if let Some(s) = sections.last_mut() {
                    s.examples += 1;
                }
                current = Some(Example {
                    name,
                    line: n,
                    section: section.clone(),
                    ..Example::default()
                });
            }
            Event::Block(b) => {
                if !is_role(&b.info) {
                    if looks_like_role(&b.info) {
                        return Err(format!(
                            "{DOC}:{}: block info string `{}` looks like an example block but is not one of `yaml mapping`, `hl7|json|xml|csv input`, `text file-name`, `json expect`, `csv expect`, `text error`, `text log`",
                            b.line, b.info
                        ));
                    }
                    // An illustration that is not part of an example closes the open one.
                    if let Some(ex) = current.take() {
                        finish(ex, &mut done)?;
                    }
                    continue;
                }
                let Some(ex) = current.as_mut() else {
                    return Err(format!(
                        "{DOC}:{}: ```{} block is not under an `<!-- example: NAME -->` comment",
                        b.line, b.info
                    ));
                };
                let at = format!("{DOC}:{} (example `{}`)", b.line, ex.name);
                let role = b.info.split_whitespace().nth(1).unwrap_or("");
                let slot_taken = |taken: bool, what: &str| -> Result<(), String> {
                    if taken {
                        Err(format!("{at}: a second {what} block"))
                    } else {
                        Ok(())
                    }
                };
                match role {
                    "mapping" => {
                        slot_taken(ex.mapping.is_some(), "mapping")?;
                        ex.mapping = Some(b);
                    }
                    "input" => {
                        slot_taken(ex.input.is_some(), "input")?;
                        if ex.mapping.is_none() {
                            return Err(format!("{at}: the input comes before the mapping"));
                        }
                        ex.input = Some(b);
                    }
                    "file-name" => {
                        slot_taken(ex.file_name.is_some(), "file-name")?;
                        if ex.input.is_none() {
                            return Err(format!("{at}: file-name must follow the input"));
                        }
                        ex.file_name = Some(b);
                    }
                    "expect" | "error" => {
                        slot_taken(ex.expect.is_some() || ex.error.is_some(), "expect/error")?;
                        if ex.mapping.is_none() {
                            return Err(format!("{at}: the {role} block comes before the mapping"));
                        }
                        if role == "expect" {
                            ex.expect = Some(b);
                        } else {
                            ex.error = Some(b);
                        }
                    }
                    "log" => {
                        slot_taken(ex.log.is_some(), "log")?;
                        if ex.error.is_none() || ex.input.is_none() {
                            return Err(format!(
                                "{at}: a log block follows the text error block of an example with an input"
                            ));
                        }
                        ex.log = Some(b);
                    }
                    _ => unreachable!("is_role accepted it"),
                }
            }
        }
    }
    if let Some(ex) = current.take() {
        finish(ex, &mut done)?;
    }
    Ok((done, sections))
}

fn input_bytes(b: &Block) -> Vec<u8> {
    if b.info.starts_with("hl7") {
        let segments: Vec<&str> = b.body.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut s = segments.join("\r");
        s.push('\r');
        s.into_bytes()
    } else {
        b.body.clone().into_bytes()
    }
}

fn expected_json(b: &Block) -> Result<Vec<Value>, String> {
    match serde_json::from_str::<Value>(&b.body) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(v) => Ok(vec![v]),
        Err(e) => Err(format!("the json expect block is not JSON: {e}")),
    }
}

fn pretty(v: &[Value]) -> String {
    if v.len() == 1 {
        serde_json::to_string_pretty(&v[0]).unwrap_or_default()
    } else {
        serde_json::to_string_pretty(v).unwrap_or_default()
    }
}

fn check_error(err: &str, block: &Block) -> Result<(), String> {
    for want in block.body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !err.contains(want) {
            return Err(format!(
                "the error does not contain `{want}`; the error is:\n{err}"
            ));
        }
    }
    Ok(())
}

/// The sender's words against the error block, and the log's (value-free) against the log block.
fn check_errors(e: &impl Disclose, error: &Block, log: Option<&Block>) -> Result<(), String> {
    check_error(&e.for_sender().to_string(), error)?;
    match log {
        Some(log) => check_error(&e.to_string(), log).map_err(|m| format!("log: {m}")),
        None => Ok(()),
    }
}

fn run_example(ex: &Example) -> Result<(), String> {
    let mapping_text = &ex.mapping.as_ref().expect("checked by finish").body;
    let file = format!("{DOC}#{}", ex.name);
    let compiled = compile_str(mapping_text, Path::new(&file));
    let m = match compiled {
        Err(e) => {
            let msg = e.to_string();
            return match (&ex.input, &ex.error) {
                (None, Some(err)) => check_error(&msg, err),
                _ => Err(format!("the mapping does not compile: {msg}")),
            };
        }
        Ok(m) => m,
    };
    if ex.input.is_none() {
        return Err(format!(
            "expected a compile error containing {:?}, but the mapping compiled",
            ex.error.as_ref().map(|b| b.body.trim())
        ));
    }
    if !m.tests.is_empty() {
        run_golden(ex, mapping_text)?;
    }
    let id = m.id.clone();
    let outbound = matches!(m.target, Target::Fhir | Target::Csv(_));
    let csv_target = match &m.target {
        Target::Csv(t) => Some(t.clone()),
        _ => None,
    };
    let set = MappingSet {
        mappings: vec![Arc::new(m)],
    };
    let input = ex.input.as_ref().expect("checked above");
    let bytes = input_bytes(input);
    let file_name = ex
        .file_name
        .as_ref()
        .map(|b| b.body.trim().to_string())
        .filter(|s| !s.is_empty());

    if outbound {
        if !input.info.starts_with("json") {
            return Err(
                "an outbound mapping reads canonical JSON: use a ```json input block".into(),
            );
        }
        let docs = testing::json_docs(&bytes).map_err(|e| format!("json input: {e}"))?;
        let to = set.mappings[0].target.name();
        let result = set.render(&docs, to, Some(&id));
        if let Some(err) = &ex.error {
            return match result {
                Err(e) => check_errors(&e, err, ex.log.as_ref()),
                Ok(_) => Err("expected a render error, but rendering succeeded".into()),
            };
        }
        let rendered = result.map_err(|e| format!("render failed: {e}"))?;
        let expect = ex.expect.as_ref().expect("finish checked expect or error");
        return match (rendered, csv_target) {
            (Rendered::Json(texts), _) => {
                if !expect.info.starts_with("json") {
                    return Err("a fhir target is compared with a ```json expect block".into());
                }
                let got: Vec<Value> = texts
                    .iter()
                    .map(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let want = expected_json(expect)?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("rendered FHIR differs; got:\n{}", pretty(&got)))
                }
            }
            (Rendered::Csv(bytes), Some(t)) => {
                if !expect.info.starts_with("csv") {
                    return Err("a csv target is compared with a ```csv expect block".into());
                }
                let text = charset::decode(&bytes, t.charset)
                    .map_err(|e| format!("output is not {}: {e}", t.charset.name()))?;
                let mut want = String::new();
                for line in expect.body.lines() {
                    want.push_str(line);
                    want.push_str(t.line_ending);
                }
                if text == want {
                    Ok(())
                } else {
                    Err(format!(
                        "rendered CSV differs;\n got: {text:?}\nwant: {want:?}"
                    ))
                }
            }
            (Rendered::Csv(_), None) => Err("CSV output from a non-CSV target".into()),
        };
    }

    let inp = Input {
        bytes: &bytes,
        file_name: file_name.as_deref(),
    };
    if let Some(err) = &ex.error {
        return match set.translate(inp, None) {
            // As `kaigo-hub translate` prints it: with the value; the log without.
            Err(e) => check_errors(&e, err, ex.log.as_ref()),
            Ok(t) => Err(format!(
                "expected a translate error, but it made {} document(s)",
                t.documents.len()
            )),
        };
    }
    let expect = ex.expect.as_ref().expect("finish checked expect or error");
    if !expect.info.starts_with("json") {
        return Err("an inbound mapping is compared with a ```json expect block".into());
    }
    let want = expected_json(expect)?;
    for (how, chosen) in [("--mapping", Some(id.as_str())), ("match rule", None)] {
        let t = set
            .translate(inp, chosen)
            .map_err(|e| format!("translate ({how}) failed: {e}"))?;
        let got: Vec<Value> = t
            .documents
            .iter()
            .map(|d| serde_json::from_str(&d.json).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        if got != want {
            return Err(format!(
                "translate ({how}) made different documents; got:\n{}",
                pretty(&got)
            ));
        }
    }
    Ok(())
}

/// Writes the example's input and expected output under the names its one golden test gives and
/// runs the golden test as `kaigo-hub mappings test` would.
fn run_golden(ex: &Example, mapping_text: &str) -> Result<(), String> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kaigo-hub-doc-{}-{}", std::process::id(), ex.name));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let path = dir.join("mapping.yaml");
        let m = compile_str(mapping_text, &path).map_err(|e| e.to_string())?;
        let [test] = m.tests.as_slice() else {
            return Err("a documented golden test example has exactly one test".to_string());
        };
        let (Some(input), Some(expect)) = (&ex.input, &ex.expect) else {
            return Err("a golden test example needs input and expect blocks".to_string());
        };
        std::fs::write(&test.input, input_bytes(input)).map_err(|e| e.to_string())?;
        std::fs::write(&test.expect, &expect.body).map_err(|e| e.to_string())?;
        let set = MappingSet {
            mappings: vec![Arc::new(m)],
        };
        let outcomes = testing::run_all(&set);
        match outcomes.as_slice() {
            [o] => match &o.failure {
                None => Ok(()),
                Some(f) => Err(format!("golden test failed: {f}")),
            },
            _ => Err(format!("{} golden outcomes, expected 1", outcomes.len())),
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn every_example_in_the_mapping_language_reference_holds() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (examples, sections) = examples(&text).unwrap_or_else(|e| panic!("{e}"));

    let empty: Vec<String> = sections
        .iter()
        .filter(|s| s.examples == 0)
        .map(|s| {
            format!(
                "{DOC}:{}: section `{}` has no tested example",
                s.line, s.heading
            )
        })
        .collect();
    assert!(empty.is_empty(), "{}", empty.join("\n"));
    assert!(
        examples.len() >= MIN_EXAMPLES,
        "{DOC} has {} examples; it must keep at least {MIN_EXAMPLES}",
        examples.len()
    );

    let mut failures = Vec::new();
    for ex in &examples {
        if let Err(e) = run_example(ex) {
            failures.push(format!(
                "{DOC}:{} example `{}` (section `{}`): {e}",
                ex.line, ex.name, ex.section
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n\n")
    );
    eprintln!("{} examples in {DOC} hold", examples.len());
}

#[test]
fn malformed_examples_are_refused() {
    let ok = "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```text error\nx\n```\n";
    assert!(examples(ok).is_ok());
    for (bad, why) in [
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n",
            "ends without",
        ),
        (
            "## A\n<!-- example: a -->\n```yaml maping\nid: a\n```\n",
            "looks like an example block",
        ),
        ("## A\n```yaml mapping\nid: a\n```\n", "not under"),
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```json expect\n{}\n```\n",
            "needs an input",
        ),
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```text error\nx\n```\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```text error\nx\n```\n",
            "used twice",
        ),
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n",
            "never closed",
        ),
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```rust\n```\n```text error\nx\n```\n",
            "ends without",
        ),
        (
            "## A\n<!-- example: a -->\n```yaml mapping\nid: a\n```\n```text error\nx\n```\n```text log\nx\n```\n",
            "a log block follows",
        ),
    ] {
        let e = examples(bad).err().unwrap_or_default();
        assert!(e.contains(why), "{bad:?}: expected `{why}`, got `{e}`");
    }
}
