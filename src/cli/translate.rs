//! `kaigo-hub translate`: one file (or stdin) → canonical JSON or an outbound format; or a whole
//! directory → JSON Lines with a progress line and a summary, on every core. `--to fhir` writes
//! one Bundle per document (`kaigo_hub::fhir::bundle_of`: a transaction, a 主治医意見書 a
//! document), its resource ids keyed with the deployment's subject key
//! (the `subject_key` setting, or `<data_dir>/subject.key`, made on first use as `serve` makes it).

use super::{Failure, load_mappings};
use kaigo_hub::mapping::{Input, MappingSet, Rendered, TranslateError, testing};
// The user's own file: errors say its values (`for_sender`), as they would to its sender.
use kaigo_hub::redact::Disclose;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub mappings: super::mappings::Dir,
    /// Input file, or `-` for stdin. Omit with --dir.
    pub file: Option<PathBuf>,
    /// Use this mapping (or several that each make another document: `a,b`) instead of choosing
    /// by match rule (for canonical JSON input with --to: the outbound mapping).
    #[arg(long)]
    pub mapping: Option<String>,
    /// Render the canonical documents as this format: `fhir` (one Bundle per document, a
    /// transaction or, for a 主治医意見書, a document; ids keyed with the subject key of --config)
    /// or `csv` (MS932 bytes; all documents of the input in one file, a 国保連 claims file with
    /// its control and end records).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<String>,
    #[command(flatten)]
    pub config: super::ConfigFile,
    /// The file name to assume for stdin (ケアプラン CSV mappings read metadata from it).
    #[arg(long)]
    pub file_name: Option<String>,
    /// Translate every file under this directory to JSON Lines (one document per line).
    #[arg(long, conflicts_with = "file")]
    pub dir: Option<PathBuf>,
    /// Write output here instead of stdout.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Worker threads for --dir (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// One JSON document per line instead of pretty JSON.
    #[arg(long)]
    pub compact: bool,
}

pub fn read_input(file: &Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::input(format!("stdin: {e}")))?;
    } else {
        bytes =
            std::fs::read(file).map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    }
    Ok(bytes)
}

fn sink(out: &Option<PathBuf>) -> Result<Box<dyn Write>, Failure> {
    Ok(match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let set = load_mappings(&a.mappings.mappings)?;
    if let Some(dir) = &a.dir {
        if a.to.as_deref() == Some("csv") {
            return Err(Failure::usage(
                "--dir writes JSON Lines; --to csv works on one file",
            ));
        }
        return run_dir(&set, dir, &a);
    }
    let Some(file) = &a.file else {
        return Err(Failure::usage(
            "give a FILE (or `-` for stdin) or --dir DIR; see --help",
        ));
    };
    let bytes = read_input(file)?;
    let name = a
        .file_name
        .clone()
        .or_else(|| (file != Path::new("-")).then(|| file.display().to_string()));
    let label = name.clone().unwrap_or_else(|| "stdin".into());
    let fail = |e: TranslateError| Failure::input(format!("{label}: {}", e.for_sender()));

    let is_canonical =
        kaigo_hub::formats::Format::sniff(&bytes) == kaigo_hub::formats::Format::Canonical;
    let docs: Vec<serde_json::Value> = if is_canonical && a.to.is_some() {
        testing::json_docs(&bytes).map_err(|e| Failure::input(format!("{label}: {e}")))?
    } else {
        let inbound = if is_canonical {
            None
        } else {
            a.mapping.as_deref()
        };
        let tr = set
            .translate(
                Input {
                    bytes: &bytes,
                    file_name: name.as_deref(),
                },
                inbound,
            )
            .map_err(fail)?;
        eprintln!(
            "kaigo-hub: {label}: mapping{} `{}` → {} document(s)",
            if tr.mappings.len() == 1 { "" } else { "s" },
            tr.ids(),
            tr.documents.len()
        );
        for (id, w) in &tr.warnings {
            eprintln!("kaigo-hub: {label}: warning: {w} [{id}]");
        }
        tr.documents
            .iter()
            .map(|d| serde_json::from_str(&d.json).unwrap_or_default())
            .collect()
    };
    let mut out = sink(&a.out)?;
    let io = |e: std::io::Error| Failure::input(format!("writing output: {e}"));
    match &a.to {
        None => write_json(
            &mut out,
            docs.iter().map(|d| d.to_string()).collect(),
            a.compact,
        )
        .map_err(io)?,
        Some(to) => {
            let outbound = if is_canonical {
                a.mapping.as_deref()
            } else {
                None
            };
            let ids = if to == "fhir" {
                Some(fhir_ids(&a.config)?)
            } else {
                None
            };
            match kaigo_hub::fhir::render(&set, docs, to, outbound, ids.as_ref())
                .map_err(|e| Failure::input(format!("{label}: {}", e.for_sender())))?
            {
                Rendered::Json(texts) => write_json(&mut out, texts, a.compact).map_err(io)?,
                Rendered::Csv(bytes) => out.write_all(&bytes).map_err(io)?,
            }
        }
    }
    out.flush().map_err(io)?;
    Ok(0)
}

/// The deployment's FHIR id key: the subject key the configuration gives.
fn fhir_ids(config: &super::ConfigFile) -> Result<kaigo_hub::fhir::ResourceIds, Failure> {
    let cfg = kaigo_hub::config::Config::load(config.config.as_deref()).map_err(Failure::usage)?;
    let key = kaigo_hub::serve::subject_key(&cfg).map_err(Failure::usage)?;
    kaigo_hub::fhir::ResourceIds::new(&key).map_err(|e| Failure::usage(e.to_string()))
}

fn write_json(out: &mut dyn Write, texts: Vec<String>, compact: bool) -> std::io::Result<()> {
    if compact {
        for t in texts {
            writeln!(out, "{t}")?;
        }
        return Ok(());
    }
    let values: Vec<serde_json::Value> = texts
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect();
    let pretty = if values.len() == 1 {
        serde_json::to_string_pretty(&values[0])
    } else {
        serde_json::to_string_pretty(&values)
    };
    writeln!(out, "{}", pretty.unwrap_or_default())
}

enum Outcome {
    Converted(Vec<String>),
    Skipped,
    Failed(String),
}

fn run_dir(set: &MappingSet, dir: &Path, a: &Args) -> Result<u8, Failure> {
    let ids = match a.to.as_deref() {
        Some("fhir") => Some(fhir_ids(&a.config)?),
        _ => None,
    };
    let ids = ids.as_ref();
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
    files.sort();
    let total = files.len();
    let jobs = a
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, 64);
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let mut out = sink(&a.out)?;
    let tty = std::io::stderr().is_terminal();
    let (mut converted, mut documents, mut skipped) = (0usize, 0usize, 0usize);
    let mut failed: Vec<(PathBuf, String)> = Vec::new();
    let mut write_error = None;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (files, next) = (&files, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    if tx.send((i, convert(set, f, a, ids))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Write in input order whatever order the workers finish in.
        let mut pending: std::collections::BTreeMap<usize, Outcome> = Default::default();
        let mut written = 0usize;
        for (i, o) in rx {
            pending.insert(i, o);
            while let Some(o) = pending.remove(&written) {
                match o {
                    Outcome::Converted(lines) => {
                        converted += 1;
                        documents += lines.len();
                        for l in lines {
                            if let Err(e) = writeln!(out, "{l}") {
                                write_error.get_or_insert(e);
                            }
                        }
                    }
                    Outcome::Skipped => skipped += 1,
                    Outcome::Failed(why) => failed.push((files[written].clone(), why)),
                }
                written += 1;
                if tty && (written.is_multiple_of(64) || written == total) {
                    let width = 30;
                    let done = written * width / total.max(1);
                    eprint!(
                        "\r[{}{}] {written}/{total} files, {} failed",
                        "#".repeat(done),
                        "-".repeat(width - done),
                        failed.len()
                    );
                }
            }
        }
    });
    if tty {
        eprintln!();
    }
    if let Some(e) = write_error {
        return Err(Failure::input(format!("writing output: {e}")));
    }
    let _ = out.flush();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "kaigo-hub: {total} file(s) in {secs:.2}s on {jobs} thread(s): {converted} converted ({documents} document(s)), {} failed, {skipped} skipped (no mapping fits)",
        failed.len()
    );
    for (f, why) in failed.iter().take(50) {
        eprintln!("  failed {}: {}", f.display(), why.replace('\n', "\n    "));
    }
    if failed.len() > 50 {
        eprintln!("  … and {} more", failed.len() - 50);
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn convert(
    set: &MappingSet,
    f: &Path,
    a: &Args,
    ids: Option<&kaigo_hub::fhir::ResourceIds>,
) -> Outcome {
    let bytes = match std::fs::read(f) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let name = f.to_string_lossy();
    match set.translate(
        Input {
            bytes: &bytes,
            file_name: Some(&name),
        },
        a.mapping.as_deref(),
    ) {
        Ok(tr) => {
            let lines: Vec<String> = tr.documents.into_iter().map(|d| d.json).collect();
            match &a.to {
                None => Outcome::Converted(lines),
                Some(to) => {
                    let docs: Vec<serde_json::Value> = lines
                        .iter()
                        .filter_map(|l| serde_json::from_str(l).ok())
                        .collect();
                    match kaigo_hub::fhir::render(set, docs, to, None, ids) {
                        Ok(Rendered::Json(t)) => Outcome::Converted(t),
                        Ok(Rendered::Csv(_)) => {
                            Outcome::Failed("csv output is not supported with --dir".into())
                        }
                        Err(e) => Outcome::Failed(e.for_sender().to_string()),
                    }
                }
            }
        }
        Err(TranslateError::NoMapping { .. }) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e.for_sender().to_string()),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}
