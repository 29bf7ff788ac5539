//! Every shell command shown in `README.md` and `docs/*.md` runs here, so the user's guide cannot
//! drift from what the binary does (as `mapping_language_doc.rs` does for the mapping examples).
//!
//! A command is a line of a fenced ```` ```sh ```` (or `bash`, `shell`) block, or a `$ ` line of a
//! ```` ```console ```` block, whose following lines up to the next `$ ` are output that must
//! appear, in order. Trailing `# comments` are dropped and `\` continuations joined. Each
//! document runs in a temporary directory holding a copy of `mappings/`, `samples/` and
//! `parties.yaml`, with the built `kaigo-hub` first on `PATH`, no `KAIGO_*` variables of the
//! caller's, and HTTP and MLLP on free ports (`127.0.0.1:8080` in a command means the hub's HTTP
//! address). Each command runs in `bash -c` (pipes work) and must exit 0, or the `(exit N)` its
//! comment names. `cargo run [--release] -- ARGS` is run as `kaigo-hub ARGS`; `cargo test` is this
//! suite and `cargo bench --bench NAME` must name a bench of `Cargo.toml` (neither is run).
//! `kaigo-hub serve` is started in the background and must answer `/health` (with `--demo`, also
//! print its summary); it is stopped with SIGTERM at the end of its `##` section and must exit 0.
//! While it runs, a command that fails is tried again for a few seconds (delivery is
//! asynchronous). Blocks marked ```` ```sh docker ```` are the only ones skipped: no Docker engine
//! runs here; a `docker` command in an unmarked block fails the test.
//!
//! Some documents show commands on files they set up in prose; [`setup`] writes those files from
//! the document itself (mapping-language.md's first example) or as the prose says (mllp.md's
//! hospital certificate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kaigo-hub");
/// How long a command may keep failing while a hub runs, before it counts as failed.
const SETTLE: Duration = Duration::from_secs(10);
/// How long `serve` may take to answer `/health` (and, with `--demo`, print its summary).
const START: Duration = Duration::from_secs(30);

/// A command of a document, where it is written and what it must do.
#[derive(Debug)]
struct Cmd {
    /// `file:line`, for messages.
    at: String,
    /// The `##` section it is in (a `serve` lives until its section ends).
    section: usize,
    text: String,
    exit: i32,
    /// Output lines that must appear, in order (console blocks).
    expect: Vec<String>,
}

/// A block's lines with their line numbers.
type Lines = Vec<(usize, String)>;

/// The commands of `doc`, and how many Docker blocks were skipped.
fn commands(doc: &Path) -> (Vec<Cmd>, usize) {
    let text = std::fs::read_to_string(doc).expect("read the document");
    let name = doc.display().to_string();
    let (mut cmds, mut docker, mut section) = (Vec::new(), 0, 0);
    let mut block: Option<(String, usize, Lines)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some((info, start, body)) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                let words: Vec<&str> = info.split_whitespace().collect();
                let at = format!("{name}:{start}");
                match words.first().copied() {
                    Some("sh" | "bash" | "shell") if words.get(1) == Some(&"docker") => docker += 1,
                    Some("sh" | "bash" | "shell") => cmds.extend(sh_block(&at, section, body)),
                    Some("console") => cmds.extend(console_block(&at, section, body)),
                    _ => {}
                }
                block = None;
            } else {
                body.push((n, line.to_string()));
            }
        } else if let Some(info) = line.trim_start().strip_prefix("```") {
            block = Some((info.trim().to_string(), n, Vec::new()));
        } else if line.starts_with("## ") {
            section += 1;
        }
    }
    assert!(block.is_none(), "{name}: a code block is not closed");
    for c in &cmds {
        assert!(
            !c.text.split_whitespace().any(|w| w == "docker"),
            "{}: `{}` needs Docker: put it in a ```sh docker block",
            c.at,
            c.text
        );
    }
    (cmds, docker)
}

fn sh_block(at: &str, section: usize, body: &[(usize, String)]) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for (n, line) in body {
        let (code, comment) = split_comment(line);
        let piece = code.trim();
        pending.push_str(piece.trim_end_matches('\\').trim_end());
        if piece.ends_with('\\') {
            pending.push(' ');
            continue;
        }
        let text = std::mem::take(&mut pending).trim().to_string();
        if !text.is_empty() {
            let file = at.rsplit_once(':').map_or(at, |(f, _)| f);
            out.push(Cmd {
                at: format!("{file}:{n}"),
                section,
                exit: exit_named(comment),
                text,
                expect: Vec::new(),
            });
        }
    }
    out
}

fn console_block(at: &str, section: usize, body: &[(usize, String)]) -> Vec<Cmd> {
    let file = at.rsplit_once(':').map_or(at, |(f, _)| f);
    let mut out: Vec<Cmd> = Vec::new();
    for (n, line) in body {
        if let Some(cmd) = line.strip_prefix("$ ") {
            let (code, comment) = split_comment(cmd);
            out.push(Cmd {
                at: format!("{file}:{n}"),
                section,
                text: code.trim().to_string(),
                exit: exit_named(comment),
                expect: Vec::new(),
            });
        } else if let Some(last) = out.last_mut()
            && !line.trim().is_empty()
        {
            last.expect.push(line.trim().to_string());
        }
    }
    out
}

/// `line` split at its first `#` that starts a comment (after white space, outside quotes).
fn split_comment(line: &str) -> (&str, &str) {
    let (mut quote, mut prev_space) = (None, true);
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev_space => return (&line[..i], &line[i..]),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    (line, "")
}

/// The exit status a comment names as `(exit N)`; 0 when it names none.
fn exit_named(comment: &str) -> i32 {
    comment
        .split("(exit ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// What a command line is to this test.
enum Kind {
    /// `kaigo-hub serve …` (as written, or from `cargo run`), with or without `--demo`.
    Serve {
        demo: bool,
        text: String,
    },
    Run(String),
    /// `cargo test` / `cargo bench --bench NAME`: checked, not run.
    Cargo,
}

fn kind(text: &str) -> Kind {
    let text = match text
        .strip_prefix("cargo run --release -- ")
        .or_else(|| text.strip_prefix("cargo run -- "))
    {
        Some(args) => format!("kaigo-hub {args}"),
        None => text.to_string(),
    };
    if text.starts_with("cargo test") {
        return Kind::Cargo;
    }
    if let Some(rest) = text.strip_prefix("cargo bench") {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
        let bench = rest
            .split("--bench")
            .nth(1)
            .and_then(|r| r.split_whitespace().next());
        let bench = bench.unwrap_or_else(|| panic!("`{text}` names no --bench"));
        assert!(
            manifest.contains(&format!("name = \"{bench}\"")),
            "`{text}`: Cargo.toml has no bench `{bench}`"
        );
        return Kind::Cargo;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let program = words.iter().find(|w| !w.contains('='));
    if program == Some(&"kaigo-hub") && words.contains(&"serve") && !text.contains('|') {
        return Kind::Serve {
            demo: words.contains(&"--demo"),
            text,
        };
    }
    Kind::Run(text)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A directory for one document, its ports, and the hub it may be running.
struct Stage {
    dir: PathBuf,
    http: String,
    mllp: String,
    hub: Option<(String, usize, Child)>,
}

impl Stage {
    fn new(doc: &str) -> Stage {
        let tag = doc.replace(['/', '.'], "-");
        let dir = std::env::temp_dir().join(format!(
            "kaigo-docs-{}-{}-{tag}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(&root().join("mappings"), &dir.join("mappings"));
        copy_tree(&root().join("samples"), &dir.join("samples"));
        std::fs::copy(root().join("parties.yaml"), dir.join("parties.yaml")).expect("parties");
        Stage {
            dir,
            http: format!("127.0.0.1:{}", free_port()),
            mllp: format!("127.0.0.1:{}", free_port()),
            hub: None,
        }
    }

    fn bash(&self, script: &str) -> Command {
        let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg("-c").arg(script).current_dir(&self.dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("KAIGO_") {
                c.env_remove(k);
            }
        }
        c.env("PATH", path)
            .env("KAIGO_HTTP_ADDR", &self.http)
            .env("KAIGO_MLLP_ADDR", &self.mllp)
            .env("NO_COLOR", "1");
        c
    }

    fn localise(&self, text: &str) -> String {
        text.replace("127.0.0.1:8080", &self.http)
            .replace("localhost:8080", &self.http)
    }

    fn start(&mut self, c: &Cmd, text: &str, demo: bool) {
        assert!(self.hub.is_none(), "{}: a hub is already running", c.at);
        let log = self.dir.join(format!("serve-{}.log", c.section));
        let file = std::fs::File::create(&log).expect("serve log");
        let child = self
            .bash(&format!("exec {}", self.localise(text)))
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start serve");
        self.hub = Some((c.at.clone(), c.section, child));
        let deadline = Instant::now() + START;
        loop {
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            if health(&self.http) && (!demo || out.contains("kaigo-hub demo:")) {
                return;
            }
            let exited = self
                .hub
                .as_mut()
                .and_then(|(_, _, ch)| ch.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{}: `{}` did not come up ({exited:?}):\n{out}",
                c.at,
                c.text
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the hub started in a section before `section`, and checks it stopped cleanly.
    fn stop_before(&mut self, section: usize) {
        if !matches!(&self.hub, Some((_, s, _)) if *s < section) {
            return;
        }
        let (at, s, mut child) = self.hub.take().expect("a hub");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("serve exits");
        let log = std::fs::read_to_string(self.dir.join(format!("serve-{s}.log")));
        assert!(
            status.success(),
            "{at}: serve exited with {status} after SIGTERM:\n{}",
            log.unwrap_or_default()
        );
    }

    fn run(&self, c: &Cmd, script: &str) {
        let deadline = Instant::now()
            + if self.hub.is_some() {
                SETTLE
            } else {
                Duration::ZERO
            };
        let script = format!("set -o pipefail; {}", self.localise(script));
        loop {
            let out = self.bash(&script).output().expect("bash runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let code = out.status.code().unwrap_or(-1);
            let missing = missing_output(&text, &c.expect);
            if code == c.exit && missing.is_none() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: `{}` exited {code} (expected {}){}:\n{text}",
                    c.at,
                    c.text,
                    c.exit,
                    missing.map_or(String::new(), |m| format!(", without `{m}` in its output"))
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some((_, _, mut child)) = self.hub.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first expected line not found (in order) in `output`.
fn missing_output<'a>(output: &str, expect: &'a [String]) -> Option<&'a str> {
    let mut rest = output;
    for e in expect {
        match rest.find(e.as_str()) {
            Some(i) => rest = &rest[i + e.len()..],
            None => return Some(e),
        }
    }
    None
}

/// Does the hub at `addr` answer `GET /health` with 200?
fn health(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// Files a document's commands use that its prose sets up.
fn setup(doc: &str, stage: &Stage) {
    match doc {
        // "Here is a complete, small one": the first example's mapping and message, alone in
        // `mappings/` as they would be for a reader starting out, with the golden test its
        // "Golden tests" section has the reader add (the example's own expected document).
        "docs/mapping-language.md" => {
            let text = std::fs::read_to_string(root().join(doc)).expect("read");
            let mapping = format!(
                "{}\ntests:\n  - {{ input: ../adt-a08.hl7, expect: ../adt-a08.insured-person.json }}\n",
                fenced(&text, "yaml mapping")
            );
            let message = fenced(&text, "hl7 input").replace('\n', "\r");
            let expected = fenced(&text, "json expect");
            std::fs::write(stage.dir.join("adt-a08.insured-person.json"), expected)
                .expect("expected document");
            let mappings = stage.dir.join("mappings");
            std::fs::remove_dir_all(&mappings).expect("clear mappings");
            std::fs::create_dir_all(&mappings).expect("mappings");
            std::fs::write(mappings.join("first-adt.yaml"), mapping).expect("mapping");
            std::fs::write(stage.dir.join("adt-a08.hl7"), message).expect("message");
        }
        // "Your party is the one whose client_certs_sha256 lists … your certificate".
        "docs/mllp.md" => {
            let ok = stage
                .bash(
                    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                     -keyout hospital.key -out hospital.pem -subj /CN=hospital -days 2",
                )
                .output()
                .expect("openssl runs");
            assert!(ok.status.success(), "openssl: {ok:?}");
        }
        _ => {}
    }
}

/// The body of the first block fenced with `info`.
fn fenced(text: &str, info: &str) -> String {
    let start = text
        .find(&format!("```{info}\n"))
        .unwrap_or_else(|| panic!("no ```{info} block"));
    let body = &text[start + info.len() + 4..];
    body[..body.find("\n```").expect("closed block")].to_string()
}

fn documents() -> Vec<String> {
    let mut docs = vec!["README.md".to_string()];
    let mut more: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// Runs one document's commands; returns how many ran and how many Docker blocks it skipped.
fn run_document(doc: &str) -> (usize, usize) {
    let (cmds, docker) = commands(&root().join(doc));
    let mut stage = Stage::new(doc);
    setup(doc, &stage);
    let mut ran = 0;
    for c in &cmds {
        stage.stop_before(c.section);
        match kind(&c.text) {
            Kind::Serve { demo, text } => stage.start(c, &text, demo),
            Kind::Run(script) => stage.run(c, &script),
            Kind::Cargo => continue,
        }
        ran += 1;
    }
    stage.stop_before(usize::MAX);
    (ran, docker)
}

#[test]
fn every_command_in_the_readme_and_the_docs_runs() {
    let began = Instant::now();
    let mut total = 0;
    let mut docker = 0;
    for doc in documents() {
        let (ran, skipped) = run_document(&doc);
        eprintln!("{doc}: {ran} command(s) run, {skipped} Docker block(s) skipped");
        total += ran;
        docker += skipped;
    }
    // README alone shows more than this; a parser that finds nothing must not pass.
    assert!(total >= 20, "only {total} commands found");
    assert_eq!(docker, 1, "exactly the container block is skipped");
    eprintln!("{total} commands in {:.1} s", began.elapsed().as_secs_f64());
}

#[test]
fn comments_continuations_and_exit_codes_are_read_from_a_block() {
    let body: Vec<(usize, String)> = [
        "kaigo-hub audit verify   # intact (exit 0)",
        "kaigo-hub translate bad.csv  # refused (exit 1)",
        "curl -H 'X: a # b' \\",
        "  http://127.0.0.1:8080/health",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (i + 1, l.to_string()))
    .collect();
    let cmds = sh_block("README.md:1", 0, &body);
    let texts: Vec<(&str, i32)> = cmds.iter().map(|c| (c.text.as_str(), c.exit)).collect();
    assert_eq!(
        texts,
        [
            ("kaigo-hub audit verify", 0),
            ("kaigo-hub translate bad.csv", 1),
            ("curl -H 'X: a # b' http://127.0.0.1:8080/health", 0),
        ]
    );
    assert!(matches!(
        kind("cargo run --release -- serve --demo"),
        Kind::Serve { demo: true, .. }
    ));
    assert!(matches!(kind("cargo test"), Kind::Cargo));
    assert!(matches!(
        kind("kaigo-hub serve --help | head"),
        Kind::Run(_)
    ));
}
