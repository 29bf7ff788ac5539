//! `kaigo-hub inspect FILE`: parses a file in its (sniffed or given) format and prints every
//! value with the path a mapping would use to read it.

use super::Failure;
use kaigo_hub::formats::tree::ParseOptions;
use kaigo_hub::formats::{Format, Tree, charset::Charset};
use kaigo_hub::redact::Disclose;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to inspect (`-` for stdin).
    pub file: PathBuf,
    /// Format, when sniffing is not enough: hl7v2, fhir, xml, csv.
    #[arg(long)]
    pub format: Option<String>,
    /// CSV: the first record is a header.
    #[arg(long)]
    pub header: bool,
    /// CSV: character set (ms932, utf-8); sniffed when omitted.
    #[arg(long)]
    pub charset: Option<String>,
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let bytes = super::translate::read_input(&a.file)?;
    let format = match &a.format {
        Some(f) => {
            Format::parse(f).ok_or_else(|| Failure::usage(format!("unknown format `{f}`")))?
        }
        None => Format::sniff(&bytes),
    };
    let mut opts = ParseOptions::default();
    opts.csv.header = a.header;
    if let Some(c) = &a.charset {
        opts.csv.charset = Some(
            Charset::parse(c).ok_or_else(|| Failure::usage(format!("unknown charset `{c}`")))?,
        );
    }
    let tree = Tree::parse(format, &bytes, &opts)
        .map_err(|e| Failure::input(format!("{}: {}", a.file.display(), e.for_sender())))?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let header = match &tree {
        Tree::Hl7(m) => format!(
            "hl7v2, charset {}, {} segments, MSH-9 {}",
            m.charset().name(),
            m.segment_count(),
            m.message_type()
        ),
        Tree::Json(_) => "json (paths: dot-separated keys, 0-based [n])".into(),
        Tree::Xml(d) => {
            let ns: Vec<String> = d
                .namespaces()
                .iter()
                .map(|(p, u)| format!("{p}: {u}"))
                .collect();
            format!("xml, namespaces {{ {} }}", ns.join(", "))
        }
        Tree::Csv(c) => format!(
            "csv, charset {}, {} records",
            c.charset().name(),
            c.record_count()
        ),
    };
    let _ = writeln!(out, "# {}: {header}", a.file.display());
    tree.walk(&mut |path, value| {
        let _ = writeln!(out, "{path} = {value}");
    });
    Ok(0)
}
