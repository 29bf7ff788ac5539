//! Declarative mappings (DESIGN §4): YAML files in `mappings/` that say how a wire format
//! becomes a canonical document and back. `spec` reads a file, `compile` checks it and builds a
//! plan, `run` executes the plan; transforms, kana, 和暦 (from `crate::calendar`) and check digits are built in. This file
//! is the front door: a `MappingSet` loaded from a directory picks the mapping whose match rule
//! fits an input, translates it, validates the result against the canonical schema, and renders
//! canonical documents into outbound formats. Knows nothing of brokers or HTTP.

pub mod check_digit;
mod columns;
pub mod compile;
mod csv_out;
pub mod error;
pub mod kana;
pub mod live;
pub mod plan;
pub mod run;
pub mod spec;
pub mod testing;
pub mod transform;

pub use error::{MapError, MappingError, Warning};
pub use plan::{Mapping, Target};
pub use run::Meta;

use crate::canonical::{DocKind, InvalidDocument};
use crate::formats::charset::CharsetError;
use crate::formats::csv::parse_careplan_file_name;
use crate::formats::tree::{FormatError, ParseOptions};
use crate::formats::{Format, Tree};
use crate::redact::{Disclose, ErrorText};
use plan::{CondTest, FileNameConvention, Src};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// All mappings of a directory, compiled.
#[derive(Debug, Default, Clone)]
pub struct MappingSet {
    /// The mappings, in file-name order.
    pub mappings: Vec<Arc<Mapping>>,
}

/// One input to translate.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The raw bytes.
    pub bytes: &'a [u8],
    /// The file name, when there is one (drives `$file.*` metadata).
    pub file_name: Option<&'a str>,
}

/// A canonical document produced by a translation.
#[derive(Clone, Debug)]
pub struct Document {
    /// Its kind.
    pub kind: DocKind,
    /// Validated JSON, fields in canonical order.
    pub json: String,
    /// The mapping that made it (one input may be read by several: see [`MappingSet::translate`]).
    pub mapping: Arc<Mapping>,
    /// Where in the input it came from, value-free, when the run knows: CSV `record 3, line 4`,
    /// FHIR `entry 2` (a Bundle entry, counted from 1), XML the element's place and path; `None`
    /// for a whole HL7 v2 message or a lone JSON resource. See [`Tree::origin`].
    pub origin: Option<String>,
}

/// The result of translating one input.
#[derive(Debug)]
pub struct Translation {
    /// The mapping used (the first, when several read the input).
    pub mapping: Arc<Mapping>,
    /// Every mapping that read the input, in the order they ran (file-name order).
    pub mappings: Vec<Arc<Mapping>>,
    /// The documents made (possibly none, e.g. a Bundle without a Patient), mapping by mapping.
    pub documents: Vec<Document>,
    /// What the mappings' `warn:` rules found (fields of a later interface revision, kept),
    /// each with the mapping's id: value-free, for logs and the command line.
    pub warnings: Vec<(String, Warning)>,
}

impl Translation {
    /// The mappings' ids, comma-separated: what `--mapping` takes to apply the same ones again.
    pub fn ids(&self) -> String {
        let ids: Vec<&str> = self.mappings.iter().map(|m| m.id.as_str()).collect();
        ids.join(",")
    }

    /// `id@version` of each mapping, comma-separated (the `x-kaigo-mapping` header).
    pub fn label(&self) -> String {
        let labels: Vec<String> = self
            .mappings
            .iter()
            .map(|m| format!("{}@{}", m.id, m.version))
            .collect();
        labels.join(",")
    }
}

/// An outbound rendering.
#[derive(Debug)]
pub enum Rendered {
    /// JSON texts (FHIR resources), one per document.
    Json(Vec<String>),
    /// One CSV file's bytes.
    Csv(Vec<u8>),
}

/// Why an input could not be translated. `Display` names where and why but never a value of the
/// input (logs, dead-letter headers and error files use it); [`Disclose::for_sender`] adds the
/// values, for the input's sender and for `kaigo-hub translate`.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The bytes are not the format the mapping reads.
    #[error("{0}")]
    Format(#[from] FormatError),
    /// No mapping's match rule fits.
    #[error("no mapping fits this {format} input{}", tried.iter().map(|(id, why)| format!("\n  - {id}: {why}")).collect::<String>())]
    NoMapping {
        /// The sniffed format.
        format: &'static str,
        /// Each candidate and why it did not fit.
        tried: Vec<(String, ErrorText)>,
    },
    /// More than one mapping fits (inbound: more than one that makes the same document).
    #[error("several mappings fit this input: {}; choose one with --mapping", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// `--mapping` names no loaded mapping.
    #[error("no mapping has id `{0}` (see `kaigo-hub mappings list`)")]
    UnknownMapping(String),
    /// The mapping reads another format than the input has.
    #[error("mapping `{id}` reads {expected}, but the input looks like {found}")]
    WrongFormat {
        /// Mapping id.
        id: String,
        /// What it reads.
        expected: &'static str,
        /// What the input looks like.
        found: &'static str,
    },
    /// A file name that the mapping needs is malformed.
    #[error("{0}")]
    FileName(String),
    /// A rule failed.
    #[error("{0}")]
    Map(#[from] MapError),
    /// The mapping's output is not a valid canonical document.
    #[error(
        "mapping `{id}` ({loc}) produced an invalid document{}: {error}",
        from(origin)
    )]
    Invalid {
        /// Mapping id.
        id: String,
        /// Where the mapping is.
        loc: plan::Loc,
        /// Where in the input the document comes from ([`Document::origin`]).
        origin: Option<String>,
        /// What is wrong (boxed: the error stays small on the happy path).
        error: Box<InvalidDocument>,
    },
    /// Outbound text cannot be written in the target character set.
    #[error("{0}")]
    Encode(#[from] CharsetError),
    /// No outbound mapping renders this document as the requested format.
    #[error("no outbound mapping renders {doc} as {to}{}", tried.iter().map(|(id, why)| format!("\n  - {id}: {why}")).collect::<String>())]
    NoOutbound {
        /// Document kind.
        doc: String,
        /// Requested format.
        to: String,
        /// Candidates tried and why they did not fit.
        tried: Vec<(String, ErrorText)>,
    },
    /// Documents rendered together belong in different outbound CSV files.
    #[error(
        "the documents rendered together belong in {0} CSV files (their `file.group_by` values differ, or two mappings frame a file each); render each file's documents apart"
    )]
    SeveralFiles(usize),
}

impl Disclose for TranslateError {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tried = |f: &mut std::fmt::Formatter<'_>, tried: &[(String, ErrorText)]| {
            tried
                .iter()
                .try_for_each(|(id, why)| write!(f, "\n  - {id}: {}", why.for_sender()))
        };
        match self {
            TranslateError::Format(e) => e.fmt_for_sender(f),
            TranslateError::Map(e) => e.fmt_for_sender(f),
            TranslateError::Encode(e) => e.fmt_for_sender(f),
            TranslateError::Invalid {
                id,
                loc,
                origin,
                error,
            } => write!(
                f,
                "mapping `{id}` ({loc}) produced an invalid document{}: {}",
                from(origin),
                error.for_sender()
            ),
            TranslateError::NoMapping { format, tried: t } => {
                write!(f, "no mapping fits this {format} input")?;
                tried(f, t)
            }
            TranslateError::NoOutbound { doc, to, tried: t } => {
                write!(f, "no outbound mapping renders {doc} as {to}")?;
                tried(f, t)
            }
            other => std::fmt::Display::fmt(other, f),
        }
    }
}

/// " from record 57, line 58" for a document whose origin is known.
fn from(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" from {o}"))
        .unwrap_or_default()
}

impl MappingSet {
    /// Loads every `*.yaml`/`*.yml` under `dir` (recursively, in name order). All errors are
    /// collected so one run shows every broken file; duplicate ids are errors too.
    pub fn load_dir(dir: &Path) -> Result<MappingSet, Vec<MappingError>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        collect_yaml(dir, &mut files, &mut errors);
        files.sort();
        let mut set = MappingSet::default();
        for f in files {
            match compile::load_file(&f) {
                Ok(m) => {
                    if let Some(other) = set.mappings.iter().find(|o| o.id == m.id) {
                        errors.push(MappingError {
                            loc: m.loc.clone(),
                            message: format!(
                                "mapping id `{}` is already used by {}",
                                m.id, other.loc
                            ),
                        });
                    } else {
                        set.mappings.push(Arc::new(m));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The mapping with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Mapping>> {
        self.mappings.iter().find(|m| m.id == id)
    }

    /// Translates an input into canonical documents, with the named mapping(s) (`a` or `a,b`)
    /// or every inbound mapping whose match rule fits. Several fitting mappings all read the
    /// input when each makes a different document (one 認定支援センター file → application,
    /// survey and decision); two that make the same document are ambiguous.
    pub fn translate(
        &self,
        input: Input,
        mapping: Option<&str>,
    ) -> Result<Translation, TranslateError> {
        let found = Format::sniff(input.bytes);
        let candidates: Vec<&Arc<Mapping>> = match mapping {
            Some(ids) => {
                let mut named = Vec::new();
                for id in ids.split(',').map(str::trim) {
                    let m = self
                        .get(id)
                        .ok_or_else(|| TranslateError::UnknownMapping(id.to_string()))?;
                    if !compatible(m.source.format, found) {
                        return Err(TranslateError::WrongFormat {
                            id: id.to_string(),
                            expected: m.source.format.name(),
                            found: found.name(),
                        });
                    }
                    named.push(m);
                }
                named
            }
            None => self
                .mappings
                .iter()
                .filter(|m| {
                    compatible(m.source.format, found) && matches!(m.target, Target::Document(_))
                })
                .collect(),
        };
        // Candidates that read the bytes alike (same format and parser options: the ケアプラン
        // CSV mappings) share one parse; each match rule then looks at that tree.
        let mut reads: Vec<(Format, &ParseOptions, Result<Tree, ErrorText>)> = Vec::new();
        let mut first_format_error = None;
        let mut looked_at = Vec::new();
        for m in candidates {
            let meta = match metadata(m, input.file_name) {
                Ok(meta) => meta,
                Err(e) if mapping.is_some() => return Err(TranslateError::FileName(e)),
                Err(e) => {
                    looked_at.push((m, Err(e)));
                    continue;
                }
            };
            let (format, opts) = (m.source.format, &m.source.parse);
            let read = match reads
                .iter()
                .position(|(f, o, _)| *f == format && *o == opts)
            {
                Some(read) => read,
                None => {
                    let tree = Tree::parse(format, input.bytes, opts).map_err(|e| {
                        let text = ErrorText::of(&e);
                        first_format_error.get_or_insert(e);
                        text
                    });
                    reads.push((format, opts, tree));
                    reads.len() - 1
                }
            };
            looked_at.push((m, Ok((meta, read))));
        }
        let mut parsed: Vec<(&Arc<Mapping>, &Tree, Meta)> = Vec::new();
        let mut tried = Vec::new();
        for (m, looked) in looked_at {
            let (meta, tree) = match looked {
                Err(why) => {
                    // The file name's reason: names are the envelope's, not the content's.
                    tried.push((m.id.clone(), ErrorText::plain(why)));
                    continue;
                }
                Ok((meta, read)) => match &reads[read].2 {
                    Ok(tree) => (meta, tree),
                    Err(text) => {
                        tried.push((m.id.clone(), text.clone()));
                        continue;
                    }
                },
            };
            // A mapping named by the caller is used without consulting its match rule.
            let why = if mapping.is_some() {
                None
            } else {
                why_not(m, tree, &meta)
            };
            match why {
                None => parsed.push((m, tree, meta)),
                Some(why) => tried.push((m.id.clone(), why)),
            }
        }
        if mapping.is_some()
            && let Some(e) = first_format_error.take()
        {
            return Err(e.into());
        }
        if parsed.is_empty() {
            // A parse error is the clearer message when every candidate failed the same way.
            if let Some(e) =
                first_format_error.filter(|e| tried.iter().all(|(_, w)| *w == ErrorText::of(e)))
            {
                return Err(e.into());
            }
            return Err(TranslateError::NoMapping {
                format: found.name(),
                tried,
            });
        }
        let alike = same_target(&parsed);
        if !alike.is_empty() {
            return Err(TranslateError::Ambiguous(alike));
        }
        self.every_record_read(&parsed, input.file_name, mapping.is_some())?;
        let mut documents = Vec::new();
        let mut warnings: Vec<(String, Warning)> = Vec::new();
        // Several mappings reading one file check its frame alike: each finding is said once.
        for (m, tree, meta) in &parsed {
            for w in run::check_file(m, tree, meta)? {
                if !warnings
                    .iter()
                    .any(|(_, x)| x.at == w.at && x.rule == w.rule && x.text == w.text)
                {
                    warnings.push((m.id.clone(), w));
                }
            }
        }
        let mut mappings = Vec::with_capacity(parsed.len());
        for (m, tree, meta) in parsed {
            if let (Some(expected), Tree::Csv(f)) = (m.source.columns, tree) {
                f.check_field_count(expected)
                    .map_err(|e| TranslateError::Format(e.into()))?;
            }
            let Target::Document(kind) = m.target else {
                return Err(TranslateError::NoMapping {
                    format: found.name(),
                    tried: vec![(
                        m.id.clone(),
                        ErrorText::plain(format!(
                            "it is an outbound mapping (target {})",
                            m.target.name()
                        )),
                    )],
                });
            };
            let (docs, found) = run::run_with_origins(m, tree, &meta)?;
            warnings.extend(found.into_iter().map(|w| (m.id.clone(), w)));
            for (v, origin) in docs {
                let json = kind.validate(v).map_err(|error| TranslateError::Invalid {
                    id: m.id.clone(),
                    loc: m.loc.clone(),
                    origin: origin.clone(),
                    error: Box::new(error),
                })?;
                documents.push(Document {
                    kind,
                    json,
                    mapping: m.clone(),
                    origin,
                });
            }
            mappings.push(m.clone());
        }
        Ok(Translation {
            mapping: mappings[0].clone(),
            mappings,
            documents,
            warnings,
        })
    }

    /// For each CSV input a mapping with a `documents.frame` reads: every record is a frame
    /// record or read by a mapping with `documents` that fits the same input, whether or not it
    /// runs now (a golden test, `--mapping`, names one) — else the error names the first record
    /// none reads.
    fn every_record_read(
        &self,
        parsed: &[(&Arc<Mapping>, &Tree, Meta)],
        file_name: Option<&str>,
        named: bool,
    ) -> Result<(), MapError> {
        let framed = |m: &Mapping| m.documents.as_ref().is_some_and(|d| !d.frame.is_empty());
        let mut checked: Vec<&Tree> = Vec::new();
        for (m, tree, _) in parsed {
            if !framed(m) || checked.iter().any(|t| std::ptr::eq(*t, *tree)) {
                continue;
            }
            checked.push(tree);
            let on_this = |(p, t, _): &&(&Arc<Mapping>, &Tree, Meta)| {
                p.documents.is_some() && std::ptr::eq(*t, *tree)
            };
            // Chosen by match, every inbound mapping's match rule was asked already and `parsed`
            // holds each that fits; named by the caller, the others that fit are found here.
            let mut others: Vec<(&Mapping, Meta)> = Vec::new();
            if named {
                for other in &self.mappings {
                    let same_read = other.source.format == m.source.format
                        && other.source.parse == m.source.parse;
                    if other.documents.is_none()
                        || !same_read
                        || !matches!(other.target, Target::Document(_))
                        || parsed.iter().any(|(p, _, _)| p.id == other.id)
                    {
                        continue;
                    }
                    if let Ok(meta) = metadata(other, file_name)
                        && why_not(other, tree, &meta).is_none()
                    {
                        others.push((other, meta));
                    }
                }
            }
            let readers: Vec<(&Mapping, &Meta)> = parsed
                .iter()
                .filter(on_this)
                .map(|(p, _, meta)| (p.as_ref(), meta))
                .chain(others.iter().map(|(o, meta)| (*o, meta)))
                .collect();
            run::unread(&readers, tree)?;
        }
        Ok(())
    }

    /// Renders canonical documents (JSON values) as `to` (`fhir` or `csv`), each with the named
    /// outbound mapping or the one whose match rule fits it. CSV records of all documents are
    /// written to one file.
    pub fn render(
        &self,
        docs: &[Value],
        to: &str,
        mapping: Option<&str>,
    ) -> Result<Rendered, TranslateError> {
        self.render_owned(docs.to_vec(), to, mapping)
    }

    /// [`MappingSet::render`] of documents the caller no longer needs (no copy of each).
    pub fn render_owned(
        &self,
        docs: Vec<Value>,
        to: &str,
        mapping: Option<&str>,
    ) -> Result<Rendered, TranslateError> {
        let mut json_out = Vec::new();
        let mut csv_out = csv_out::Files::default();
        for doc in docs {
            let tree = Tree::Json(doc);
            let meta = Meta::default();
            let mut chosen = Vec::new();
            let mut tried = Vec::new();
            for m in &self.mappings {
                if m.source.format != Format::Canonical || m.target.name() != to {
                    continue;
                }
                if mapping.is_some_and(|id| id != m.id) {
                    continue;
                }
                match why_not(m, &tree, &meta) {
                    None => chosen.push(m),
                    Some(why) => tried.push((m.id.clone(), why)),
                }
            }
            let m = match chosen.as_slice() {
                [m] => *m,
                [] => {
                    if let Some(id) = mapping.filter(|id| self.get(id).is_none()) {
                        return Err(TranslateError::UnknownMapping(id.to_string()));
                    }
                    return Err(TranslateError::NoOutbound {
                        doc: match &tree {
                            Tree::Json(doc) => doc.get("document").and_then(Value::as_str),
                            _ => None,
                        }
                        .unwrap_or("a document")
                        .to_string(),
                        to: to.to_string(),
                        tried,
                    });
                }
                many => {
                    return Err(TranslateError::Ambiguous(
                        many.iter().map(|m| m.id.clone()).collect(),
                    ));
                }
            };
            let meta = metadata(m, None).unwrap_or_default();
            match &m.target {
                Target::Fhir => {
                    for (out, _) in run::run_out(m, &tree, &meta)?.0 {
                        let v = out.into_value();
                        json_out.push(serde_json::to_string(&v).unwrap_or_default());
                    }
                }
                Target::Csv(t) => {
                    let Tree::Json(doc) = tree else {
                        unreachable!("the document was made a JSON tree above")
                    };
                    csv_out.add(m, t, doc, &meta)?;
                }
                Target::Document(_) => {}
            }
        }
        match csv_out.finish()? {
            Some(bytes) => Ok(Rendered::Csv(bytes)),
            None => Ok(Rendered::Json(json_out)),
        }
    }
}

/// The fitting mappings that make the same document as another fitting one (in their order):
/// those cannot all read one input, and none is preferred.
fn same_target(parsed: &[(&Arc<Mapping>, &Tree, Meta)]) -> Vec<String> {
    let target = |m: &Mapping| match m.target {
        Target::Document(kind) => kind.name(),
        _ => m.target.name(),
    };
    parsed
        .iter()
        .filter(|(m, _, _)| {
            parsed
                .iter()
                .any(|(o, _, _)| o.id != m.id && target(o) == target(m))
        })
        .map(|(m, _, _)| m.id.clone())
        .collect()
}

fn compatible(reads: Format, found: Format) -> bool {
    reads == found
        || (reads == Format::Fhir && found == Format::Canonical)
        || (reads == Format::Canonical && found == Format::Fhir)
}

/// `$file.*` metadata for an input, parsing the file name by the mapping's convention.
pub fn metadata(m: &Mapping, file_name: Option<&str>) -> Result<Meta, String> {
    let mut meta = Meta::default();
    meta.set("$mapping.id", m.id.clone());
    meta.set("$mapping.version", m.version.to_string());
    let Some(name) = file_name else {
        return Ok(meta);
    };
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    meta.set("$file.name", base);
    meta.set(
        "$file.stem",
        base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base),
    );
    if m.source.file_name == Some(FileNameConvention::Careplan) {
        let f = parse_careplan_file_name(base)?;
        meta.set("$file.prefix", f.prefix);
        meta.set("$file.month", f.month.unwrap_or_default());
        meta.set("$file.from_office", f.from_office);
        meta.set(
            "$file.from_service_type",
            f.from_service_type.unwrap_or_default(),
        );
        meta.set("$file.to_office", f.to_office);
        meta.set(
            "$file.to_service_type",
            f.to_service_type.unwrap_or_default(),
        );
        meta.set("$file.timestamp", f.timestamp);
    }
    Ok(meta)
}

/// Why a mapping's match rule does not fit, or `None` when it does. The value found is said to
/// the sender only.
fn why_not(m: &Mapping, tree: &Tree, meta: &Meta) -> Option<ErrorText> {
    if let (Some(expected), Tree::Csv(f)) = (m.source.columns, tree)
        && f.record_count() > 0
        && f.field_count(0) != expected
    {
        return Some(ErrorText::plain(format!(
            "record 1 has {} fields, expected {expected}",
            f.field_count(0)
        )));
    }
    for c in &m.source.matches {
        // Borrowed: a match rule is checked against every message, and only a failed one says why.
        let (label, value): (&str, Option<std::borrow::Cow<'_, str>>) = match &c.src {
            Src::Meta(k) => (k.as_str(), meta.get(k).map(std::borrow::Cow::Borrowed)),
            Src::Path(p, text) => {
                if let (Tree::Csv(f), Some(name)) = (tree, columns::named(&c.src))
                    && let Some(why) = columns::why_missing(f, name)
                {
                    return Some(why);
                }
                if let CondTest::Present(want) = c.test
                    && tree.exists(tree.root(), p) == want
                {
                    continue;
                }
                (
                    text.as_str(),
                    tree.first_value(tree.root(), p).map(|(v, _)| v),
                )
            }
            Src::Group | Src::Sum(..) => continue,
        };
        let ok = match &c.test {
            CondTest::Present(want) => value.is_some() == *want,
            CondTest::AnyOf(opts) => value
                .as_deref()
                .is_some_and(|v| opts.iter().any(|o| o == v)),
            CondTest::Pattern(re) => value.as_deref().is_some_and(|v| re.is_match(v)),
        };
        if !ok {
            let expected = match &c.test {
                CondTest::Present(true) => "a value".to_string(),
                CondTest::Present(false) => "no value".to_string(),
                CondTest::AnyOf(o) => o.join(" or "),
                CondTest::Pattern(re) => format!("text matching `{}`", re.as_str()),
            };
            return Some(match value {
                Some(v) => ErrorText::quoting(
                    format!("`{label}` has another value, expected {expected}"),
                    format!("`{label}` is `{v}`, expected {expected}"),
                ),
                None if label.starts_with("$file") && meta.get("$file.name").is_none() => {
                    ErrorText::plain(format!(
                        "`{label}` needs the file name (use --file-name when reading stdin)"
                    ))
                }
                None => ErrorText::plain(format!("`{label}` is empty, expected {expected}")),
            });
        }
    }
    None
}

pub(crate) fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<MappingError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(MappingError::at(
                dir,
                0,
                0,
                format!("cannot read the mappings directory: {e}"),
            ));
            return;
        }
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_yaml(&p, out, errors);
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::charset;

    fn outbound(yaml: &str) -> MappingSet {
        let m = compile::compile_str(yaml, Path::new("test.yaml")).expect("compiles");
        MappingSet {
            mappings: vec![Arc::new(m)],
        }
    }

    /// A roster CSV mapping that makes `target`, with `category`.
    fn roster(id: &str, target: &str, category: &str) -> Arc<Mapping> {
        let yaml = format!(
            r#"
id: {id}
version: 2
source: {{ format: csv, charset: utf-8, header: true, match: {{ 保険者番号: "*" }} }}
documents: {{ each: "*" }}
target: {target}
category: {category}
fields:
  subject.insurer_number: 保険者番号
  subject.insured_number: 被保険者番号
"#
        );
        Arc::new(compile::compile_str(&yaml, Path::new("roster.yaml")).expect("compiles"))
    }

    #[test]
    fn every_fitting_mapping_reads_the_input_when_each_makes_another_document() {
        let person = roster("roster-person", "InsuredPerson@1", "certification");
        let card = roster("roster-card", "InsuranceCard@1", "certification");
        let set = MappingSet {
            mappings: vec![card.clone(), person.clone()],
        };
        let bytes = "保険者番号,被保険者番号\n131011,0000012345\n131011,0000012346\n".as_bytes();
        let input = Input {
            bytes,
            file_name: None,
        };
        let t = set.translate(input, None).expect("both fit");
        assert_eq!(t.ids(), "roster-card,roster-person");
        assert_eq!(t.label(), "roster-card@2,roster-person@2");
        let made: Vec<(&str, &str)> = t
            .documents
            .iter()
            .map(|d| (d.kind.name(), d.mapping.id.as_str()))
            .collect();
        assert_eq!(
            made,
            [
                ("InsuranceCard@1", "roster-card"),
                ("InsuranceCard@1", "roster-card"),
                ("InsuredPerson@1", "roster-person"),
                ("InsuredPerson@1", "roster-person"),
            ]
        );
        // Named, they are applied without their match rules, in the order named.
        let named = set
            .translate(input, Some("roster-person, roster-card"))
            .expect("named");
        assert_eq!(named.ids(), "roster-person,roster-card");
        assert_eq!(named.documents[0].kind.name(), "InsuredPerson@1");
        // One named alone is the only one applied.
        let one = set.translate(input, Some("roster-card")).expect("named");
        assert_eq!(
            (one.ids().as_str(), one.documents.len()),
            ("roster-card", 2)
        );
        // Two that make the same document: neither is preferred.
        let twin = roster("roster-person-2", "InsuredPerson@1", "certification");
        let set = MappingSet {
            mappings: vec![card, person, twin],
        };
        match set.translate(input, None) {
            Err(TranslateError::Ambiguous(ids)) => {
                assert_eq!(ids, ["roster-person", "roster-person-2"]);
            }
            other => panic!("expected Ambiguous, got {other:?}"),
        }
        assert!(matches!(
            set.translate(input, Some("roster-card,nope")),
            Err(TranslateError::UnknownMapping(id)) if id == "nope"
        ));
    }

    #[test]
    fn every_document_says_where_in_its_input_it_comes_from() {
        let origins = |set: &MappingSet, bytes: &[u8], name: Option<&str>| -> Vec<Option<String>> {
            let input = Input {
                bytes,
                file_name: name,
            };
            let t = set.translate(input, None).expect("translates");
            t.documents.into_iter().map(|d| d.origin).collect()
        };
        let some = |s: &[&str]| s.iter().map(|o| Some(o.to_string())).collect::<Vec<_>>();
        // CSV: each document's first record, with its line (the header is line 1).
        let roster = MappingSet {
            mappings: vec![roster("roster", "InsuredPerson@1", "certification")],
        };
        let csv = "保険者番号,被保険者番号\n131011,0000012345\n131011,0000012346\n";
        assert_eq!(
            origins(&roster, csv.as_bytes(), None),
            some(&["record 1, line 2", "record 2, line 3"])
        );
        // Grouped records: the group's first record. In this sample the first two records each
        // hold a quoted line break, so the second person's first record (5) starts on line 7.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let shipped = MappingSet::load_dir(&root.join("mappings")).expect("shipped mappings load");
        let name = "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV";
        let up2kyo = std::fs::read(root.join("samples/careplan").join(name)).expect("sample");
        assert_eq!(
            origins(&shipped, &up2kyo, Some(name)),
            some(&["record 1, line 1", "record 5, line 7"])
        );
        // FHIR: the Bundle entry, counted from 1 (the Patient moved behind the Observation).
        let bundle =
            std::fs::read(root.join("samples/fhir/bundle-collection.json")).expect("sample");
        let mut bundle: Value = serde_json::from_slice(&bundle).expect("JSON");
        if let Some(Value::Array(entries)) = bundle.get_mut("entry") {
            entries.reverse();
        }
        let bundle = serde_json::to_vec(&bundle).expect("JSON");
        assert_eq!(origins(&shipped, &bundle, None), some(&["entry 2"]));
        // A Patient alone and an HL7 v2 message are the whole input: no origin.
        let patient = std::fs::read(root.join("samples/fhir/patient-jpcore.json")).expect("sample");
        assert_eq!(origins(&shipped, &patient, None), [None]);
        let adt = std::fs::read(root.join("samples/hl7v2/adt-a08.hl7")).expect("sample");
        assert_eq!(origins(&shipped, &adt, None), [None]);
        // XML: the root element's place and path.
        let card = std::fs::read(root.join("samples/xml/card-wareki.xml")).expect("sample");
        assert_eq!(
            origins(&shipped, &card, None),
            some(&["line 19, column 1 (/hk:被保険者証)"])
        );
    }

    #[test]
    fn an_invalid_document_names_the_record_it_was_made_from() {
        // Without `required:`, an empty 被保険者番号 reaches the schema, which needs a subject.
        let set = MappingSet {
            mappings: vec![roster("roster", "InsuredPerson@1", "certification")],
        };
        let csv = "保険者番号,被保険者番号\n131011,0000012345\n131011,0000012346\n131011,\n";
        let e = set
            .translate(
                Input {
                    bytes: csv.as_bytes(),
                    file_name: None,
                },
                None,
            )
            .expect_err("record 3 has no 被保険者番号");
        assert!(matches!(e, TranslateError::Invalid { .. }), "{e}");
        assert!(
            e.for_sender()
                .to_string()
                .contains("produced an invalid document from record 3, line 4: "),
            "{}",
            e.for_sender()
        );
        assert!(
            e.to_string()
                .starts_with("mapping `roster` (roster.yaml:2:5) produced an invalid document from record 3, line 4: "),
            "{e}"
        );
    }

    fn csv_text(set: &MappingSet, doc: Value) -> String {
        match set.render_owned(vec![doc], "csv", None).expect("renders") {
            Rendered::Csv(bytes) => String::from_utf8(bytes).expect("utf-8"),
            Rendered::Json(_) => panic!("a csv target renders csv"),
        }
    }

    #[test]
    fn candidates_that_read_the_bytes_differently_get_their_own_parse() {
        // Both read the same CSV; only the one reading a header row can match it by name. Were
        // parses shared across different parser options, it would see the header-less tree.
        let compile = |yaml: &str| {
            Arc::new(compile::compile_str(yaml, Path::new("test.yaml")).expect("compiles"))
        };
        let no_header = compile(
            r#"
id: roster-no-header
version: 1
source: { format: csv, charset: utf-8, match: { "1": "999999" } }
documents: { each: "*" }
target: InsuredPerson@1
fields:
  subject.insurer_number: "1"
  subject.insured_number: "2"
"#,
        );
        // Reads the header row, and matches a file whose first 保険者番号 is `insurer`.
        let by_name = |id: &str, insurer: &str| {
            compile(&format!(
                r#"
id: {id}
version: 1
source: {{ format: csv, charset: utf-8, header: true, match: {{ 保険者番号: "{insurer}" }} }}
documents: {{ each: "*" }}
target: InsuredPerson@1
fields:
  subject.insurer_number: 保険者番号
  subject.insured_number: 被保険者番号
"#
            ))
        };
        let header = by_name("roster-header", "131011");
        let bytes = "保険者番号,被保険者番号\n131011,0000012345\n".as_bytes();
        let input = || Input {
            bytes,
            file_name: None,
        };
        for order in [
            vec![no_header.clone(), header.clone()],
            vec![header.clone(), no_header.clone()],
        ] {
            let set = MappingSet { mappings: order };
            let t = set
                .translate(input(), None)
                .expect("the header mapping matches");
            assert_eq!(t.mapping.id, "roster-header");
            let doc: Value = serde_json::from_str(&t.documents[0].json).expect("JSON");
            assert_eq!(doc["subject"]["insured_number"], "0000012345");
        }
        // Alike options share the parse, and each match rule is still asked.
        let twin = by_name("roster-twin", "131012");
        let set = MappingSet {
            mappings: vec![twin.clone(), header.clone()],
        };
        assert_eq!(
            set.translate(input(), None)
                .expect("one matches")
                .mapping
                .id,
            "roster-header"
        );
        let e = MappingSet {
            mappings: vec![twin, no_header],
        }
        .translate(input(), None)
        .expect_err("neither matches")
        .to_string();
        assert!(
            e.contains("roster-twin") && e.contains("131012") && e.contains("roster-no-header"),
            "{e}"
        );
    }

    #[test]
    fn csv_records_are_written_by_column_number_whatever_the_values_types() {
        let set = outbound(
            r#"
id: csv-columns-test
version: 1
source: { format: canonical, match: { document: CarePlan@1 } }
target: { format: csv, columns: 5, charset: utf-8, quoted: [4] }
fields:
  records[+]:
    each: table2.rows
    fields:
      "1": need_no
      "2": insurance_covered
      "4": need
      "5": /subject.insured_number
"#,
        );
        let doc = serde_json::json!({
            "document": "CarePlan@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "table2": { "rows": [
                { "need_no": 1, "need": "入浴", "insurance_covered": true },
                { "need_no": 2, "insurance_covered": false }
            ] }
        });
        // Column 3 is written by no rule, the second row has no `need`: both empty.
        assert_eq!(
            csv_text(&set, doc),
            "1,true,,\"入浴\",0000012345\r\n2,false,,\"\",0000012345\r\n"
        );
    }

    #[test]
    fn a_column_number_written_with_a_leading_zero_is_that_column() {
        // The compiler accepts "01" as column 1; the writer must put it there, not drop it.
        let set = outbound(
            r#"
id: csv-leading-zero-test
version: 1
source: { format: canonical, match: { document: CarePlan@1 } }
target: { format: csv, columns: 2, charset: utf-8 }
fields:
  records[+]:
    each: table2.rows
    fields:
      "01": need
      "2": /subject.insurer_number
"#,
        );
        let doc = serde_json::json!({
            "document": "CarePlan@1",
            "subject": { "insurer_number": "131011", "insured_number": "0000012345" },
            "table2": { "rows": [ { "need": "入浴" } ] }
        });
        assert_eq!(csv_text(&set, doc), "入浴,131011\r\n");
    }

    #[test]
    fn a_match_rule_that_does_not_fit_says_the_value_to_the_sender_only() {
        let m = compile::compile_str(
            r#"
id: roster
version: 1
source: { format: csv, charset: utf-8, header: true, match: { 保険者番号: "131012" } }
documents: { each: "*" }
target: InsuredPerson@1
fields:
  subject.insurer_number: 保険者番号
  subject.insured_number: 被保険者番号
"#,
            Path::new("test.yaml"),
        )
        .expect("compiles");
        let set = MappingSet {
            mappings: vec![Arc::new(m)],
        };
        let e = set
            .translate(
                Input {
                    bytes: "保険者番号,被保険者番号\n秘匿,0000012345\n".as_bytes(),
                    file_name: None,
                },
                None,
            )
            .expect_err("秘匿 is not 131012");
        assert!(matches!(e, TranslateError::NoMapping { .. }), "{e}");
        let plain = e.to_string();
        assert!(
            plain.contains("roster: `保険者番号` has another value, expected 131012"),
            "{plain}"
        );
        assert!(!plain.contains("秘匿"), "{plain}");
        let told = e.for_sender().to_string();
        assert!(
            told.contains("`保険者番号` is `秘匿`, expected 131012"),
            "{told}"
        );
    }

    #[test]
    fn a_care_plan_saved_as_utf8_names_the_encoding_expected_and_the_one_found() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let set = MappingSet::load_dir(&root.join("mappings")).expect("shipped mappings load");
        let name = "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV";
        let ms932 = std::fs::read(root.join("samples/careplan").join(name)).expect("sample");
        let text = charset::decode(&ms932, charset::Charset::Ms932).expect("MS932 sample");
        for (bytes, found) in [
            (
                text.as_bytes().to_vec(),
                "UTF-8 (without a byte-order mark)",
            ),
            (
                [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
                "UTF-8 with a byte-order mark",
            ),
        ] {
            let e = set
                .translate(
                    Input {
                        bytes: &bytes,
                        file_name: Some(name),
                    },
                    None,
                )
                .expect_err("not MS932");
            let plain = e.to_string();
            assert!(
                plain.contains("not valid MS932, the encoding expected")
                    && plain.contains(&format!("looks like {found}"))
                    && plain.contains("save or export it as MS932"),
                "{plain}"
            );
            assert!(!plain.contains("0x"), "the bytes are the sender's: {plain}");
        }
    }

    #[test]
    fn source_columns_chooses_by_the_first_record_and_checks_every_record() {
        let m = compile::compile_str(
            r#"
id: three-fields
version: 1
source: { format: csv, charset: utf-8, columns: 3 }
documents: { each: "*" }
target: InsuredPerson@1
fields:
  subject.insurer_number: "2"
  subject.insured_number: "3"
"#,
            Path::new("test.yaml"),
        )
        .expect("compiles");
        let set = MappingSet {
            mappings: vec![Arc::new(m)],
        };
        let translate = |text: &str, mapping: Option<&str>| {
            set.translate(
                Input {
                    bytes: text.as_bytes(),
                    file_name: None,
                },
                mapping,
            )
        };
        let t = translate("x,131011,0000012345\ny,131011,0000012346\n", None).expect("fits");
        assert_eq!(t.documents.len(), 2);
        // The first record decides whether the mapping fits.
        let e = translate("x,131011,0000012345,介護\n", None).expect_err("4 fields");
        assert_eq!(
            e.to_string(),
            "no mapping fits this csv input\n  - three-fields: record 1 has 4 fields, expected 3"
        );
        // Once chosen (by its match rule or by name), any record is checked, without its values.
        for mapping in [None, Some("three-fields")] {
            let e = translate("x,131011,0000012345\ny,131011,介護,太郎\n", mapping)
                .expect_err("line 2 has 4 fields");
            assert_eq!(
                e.to_string(),
                "CSV: line 2 has 4 fields, expected 3: a comma inside free text is the usual cause"
            );
            assert!(!e.for_sender().to_string().contains("介護"));
        }
    }
}
