//! The compiled form of a mapping file: paths compiled in the source format's grammar, target
//! paths checked against the canonical schema, transforms and tables resolved. `compile.rs`
//! builds it once; `run.rs` executes it for every message without re-reading the file.

use super::check_digit::IdRule;
use super::transform::Transform;
use crate::canonical::DocKind;
use crate::formats::charset::Charset;
use crate::formats::tree::ParseOptions;
use crate::formats::{Format, Path};
use serde_json::Value;
use std::path::PathBuf;

/// Where in a mapping file something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The mapping file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A compiled mapping.
#[derive(Debug)]
pub struct Mapping {
    /// Unique id.
    pub id: String,
    /// The mapping's version.
    pub version: u32,
    /// One sentence on what it does.
    pub description: String,
    /// Where the `id:` was written.
    pub loc: Loc,
    /// Input side.
    pub source: Source,
    /// Output side.
    pub target: Target,
    /// Platform category of the documents it makes.
    pub category: Option<String>,
    /// How an input splits into documents.
    pub documents: Option<Documents>,
    /// Outbound CSV: the frame around one file's records.
    pub file: Option<FileFrame>,
    /// The rules, in file order.
    pub steps: Vec<Step>,
    /// Lookup tables, indexed by `ValueRule::lookup`.
    pub tables: Vec<Table>,
    /// Golden tests.
    pub tests: Vec<TestCase>,
}

impl Mapping {
    /// Which top-level rule writes `target` (`source.sender`) and from where, for a message that
    /// must say where a value was read: "rule `source.sender` from `/8`
    /// (claims-invoice.yaml:58:3)". Paths and places only, never a value.
    pub fn rule_reading(&self, target: &str) -> Option<String> {
        let step = self.steps.iter().find(|s| s.name == target)?;
        let from: Vec<&str> = match &step.kind {
            StepKind::Value(v) => v
                .sources
                .iter()
                .map(|s| match s {
                    Src::Path(_, text) | Src::Meta(text) | Src::Sum(_, text) => text.as_str(),
                    Src::Group => "@group",
                })
                .collect(),
            StepKind::Each { .. } => Vec::new(),
        };
        let from = match from.as_slice() {
            [] => String::new(),
            paths => format!(" from `{}`", paths.join("`, `")),
        };
        // The file's own name only: the sender may read this, the server's directories are not
        // theirs to know.
        let loc = &step.loc;
        let file = loc.file.file_name().map_or_else(
            || loc.file.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        Some(format!(
            "rule `{target}`{from} ({file}:{}:{})",
            loc.line, loc.column
        ))
    }
}

/// The input side of a mapping.
#[derive(Debug)]
pub struct Source {
    /// Wire format.
    pub format: Format,
    /// Parser options (CSV charset/header, XML limits).
    pub parse: ParseOptions,
    /// Parse the file name by this convention into `$file.*`.
    pub file_name: Option<FileNameConvention>,
    /// All must hold for the mapping to take an input.
    pub matches: Vec<Cond>,
    /// CSV: every data record has exactly this many fields (`source.columns`).
    pub columns: Option<usize>,
    /// CSV: what the file says of itself, checked before it is read ([`super::run::check_file`]).
    pub file_checks: FileChecks,
    /// Where `source:` is written.
    pub loc: Loc,
}

/// `source.record_number`, `source.count` and `source.last`: a CSV file's own account of itself
/// (record numbers, a count, an end record), checked before it is read.
#[derive(Debug, Default)]
pub struct FileChecks {
    /// The 0-based column that holds each record's number in the file, from 1.
    pub record_number: Option<usize>,
    /// The stated count (its path and text) and the conditions a counted record meets.
    pub count: Option<(Path, String, Vec<Cond>)>,
    /// The file's last record meets all of these.
    pub last: Vec<Cond>,
}

/// Known file-name conventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileNameConvention {
    /// ケアプラン標準仕様 CSV (`UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV`).
    Careplan,
}

/// The output side of a mapping.
#[derive(Debug)]
pub enum Target {
    /// A canonical document.
    Document(DocKind),
    /// FHIR JSON (one resource or Bundle per document).
    Fhir,
    /// CSV records.
    Csv(CsvTarget),
}

/// Outbound CSV settings.
#[derive(Debug, Clone)]
pub struct CsvTarget {
    /// Columns per record (`columns: N`), or the most a record may have when each record is as
    /// wide as the highest column its rules name (`fixed` false).
    pub columns: usize,
    /// Whether every record has `columns` columns.
    pub fixed: bool,
    /// Which columns (0-based) are always quoted in a data record.
    pub quoted: Vec<bool>,
    /// Every column from this one (0-based) on is quoted in a data record.
    pub quoted_from: Option<usize>,
    /// The column (0-based) that holds each record's number in the file.
    pub record_number: Option<usize>,
    /// Output character set.
    pub charset: Charset,
    /// `\r\n` or `\n`.
    pub line_ending: &'static str,
}

impl Target {
    /// A short name: the document (`CarePlan@1`) or the format (`csv`).
    pub fn name(&self) -> &'static str {
        match self {
            Target::Document(k) => k.name(),
            Target::Fhir => "fhir",
            Target::Csv(_) => "csv",
        }
    }
}

/// The member of a CSV record (an `Out` object) that holds the record's width, when records
/// are as wide as the highest column their rules name: not a column (columns start at 1).
pub const WIDTH_KEY: &str = "0";

/// `file:` compiled: the frame of one outbound CSV file.
#[derive(Debug)]
pub struct FileFrame {
    /// Documents with the same values of these paths share one file.
    pub group_by: Vec<Path>,
    /// The record before the documents' records, and its width.
    pub head: Vec<Step>,
    /// Width of the head record (its highest column).
    pub head_width: usize,
    /// The record after them.
    pub tail: Vec<Step>,
    /// Width of the tail record.
    pub tail_width: usize,
    /// `file.order`: document kinds in the order their records are written.
    pub order: Vec<String>,
    /// Where `file:` was written.
    pub loc: Loc,
}

/// `documents:` compiled.
#[derive(Debug)]
pub struct Documents {
    /// Alternatives; the first that selects anything wins.
    pub each: Vec<Path>,
    /// Grouping keys, relative to each selected node.
    pub group_by: Vec<Path>,
    /// A selected node makes a document only when all hold (relative to it).
    pub when: Vec<Cond>,
    /// When set, the one member of each group meeting all of these is the document's head: the
    /// top-level rules read it (else the group's first member).
    pub head: Vec<Cond>,
    /// Every member of a group must meet all of these (relative to it); one that does not is an
    /// error naming it (a record kind the mapping does not read).
    pub members: Vec<Cond>,
    /// The input's frame records (control, end) meet all of these; non-empty, it also says that
    /// every other record must be read by some mapping with a frame (see [`super::run::unread`]).
    pub frame: Vec<Cond>,
    /// Where `documents:` was written.
    pub loc: Loc,
}

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum Src {
    /// A path in the source format, with its text for messages.
    Path(Path, String),
    /// Envelope metadata such as `$file.from_office`.
    Meta(String),
    /// `@group`: the members of the current document's group.
    Group,
    /// `sum:` the sum of the whole numbers a path selects, with its text for messages.
    Sum(Path, String),
}

/// A condition: the source's value is one of the listed values, or is present/absent.
#[derive(Debug, Clone)]
pub struct Cond {
    /// What is tested.
    pub src: Src,
    /// How.
    pub test: CondTest,
}

/// The test of a condition.
#[derive(Debug, Clone)]
pub enum CondTest {
    /// Equals one of these.
    AnyOf(Vec<String>),
    /// `true`: has a value; `false`: has none.
    Present(bool),
    /// Has a value that the regular expression matches (`{ pattern: REGEX }`).
    Pattern(regex_lite::Regex),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Step {
    /// The target key as written (for messages).
    pub name: String,
    /// Where it was written.
    pub loc: Loc,
    /// Where the value goes.
    pub target: Vec<TSeg>,
    /// What it does.
    pub kind: StepKind,
}

/// A target path segment.
#[derive(Debug, Clone, PartialEq)]
pub enum TSeg {
    /// An object key.
    Key(String),
    /// A fixed array index (0-based).
    Index(usize),
    /// Append a new array item (`[+]`, `[+label]`).
    Append,
}

/// The two kinds of rule.
#[derive(Debug)]
pub enum StepKind {
    /// Compute one value.
    Value(Box<ValueRule>),
    /// Repeat nested rules for each selected item.
    Each {
        /// Item selectors; results of all are concatenated.
        select: Vec<Src>,
        /// Conditions on each item.
        when: Vec<Cond>,
        /// Rules relative to the item.
        steps: Vec<Step>,
        /// At least one item must be produced.
        required: bool,
        /// `bits`: each selected value is a bit string, and each option it picks is one item
        /// (read by `$bit.option` and `$bit.char`).
        bits: Option<Bits>,
    },
}

/// How one value is computed.
#[derive(Debug)]
pub struct ValueRule {
    /// First source with a value wins.
    pub sources: Vec<Src>,
    /// When `sources` give nothing: join the values of these with `sep`.
    pub join: Option<(Vec<Src>, String)>,
    /// Or: a constant (already coerced to the leaf type).
    pub constant: Option<Value>,
    /// Applied in order to the text.
    pub transforms: Vec<Transform>,
    /// Table index.
    pub lookup: Option<usize>,
    /// A bit-string multi-select: text ⇄ list of option codes.
    pub bits: Option<Bits>,
    /// Used when nothing else produced a value (already coerced).
    pub default: Option<Value>,
    /// No value is an error.
    pub required: bool,
    /// The final text must match.
    pub pattern: Option<regex_lite::Regex>,
    /// Identifier rule.
    pub check: Option<IdRule>,
    /// The rule applies only when all hold.
    pub when: Vec<Cond>,
    /// The JSON type the target expects.
    pub leaf: Leaf,
    /// The target is a list of plain values: every value the first source that selects any
    /// gives becomes one item (each through `then` and `lookup`).
    pub list: bool,
    /// A list that keeps empty values as empty texts, so that every position stays where it
    /// was: the fields of a CSV `59..` path read, or written to a `"59.."` column.
    pub keep_empty: bool,
    /// `warn:` — a value found is reported ([`super::Warning`]) with this text.
    pub warn: Option<String>,
}

/// `bits:` compiled: one character per option, leftmost first.
#[derive(Debug, Clone, PartialEq)]
pub struct Bits {
    /// Option codes in character order (already checked against the target's type).
    pub options: Vec<String>,
    /// The characters a position may hold; the first means "not selected" when writing.
    pub chars: Vec<char>,
    /// The characters that select an option when reading; writing sets the first.
    pub pick: Vec<char>,
    /// `true`: codes found in the source → a bit string (the target is text); `false`: a bit
    /// string → the list of selected codes (the target is an array).
    pub pack: bool,
}

/// The JSON type of a target value.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// Text.
    String,
    /// One of a fixed list.
    Enum(Vec<String>),
    /// Integer.
    Integer,
    /// Decimal number (digits kept).
    Number,
    /// `true`/`false`.
    Boolean,
}

/// A lookup table.
#[derive(Debug)]
pub struct Table {
    /// Name used by `lookup:`.
    pub name: String,
    /// Code → text (coerced at run time to the leaf type).
    pub entries: Vec<(String, String)>,
    /// The `_default` entry: used for codes not in the table (otherwise an unknown code is an error).
    pub fallback: Option<String>,
}

impl Table {
    /// The entry for `code`.
    pub fn get(&self, code: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == code)
            .map(|(_, v)| v.as_str())
            .or(self.fallback.as_deref())
    }
}

/// A golden test.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Input file: as written when absolute, else joined to the mapping file's directory.
    pub input: PathBuf,
    /// Expected output file, resolved like `input`.
    pub expect: PathBuf,
    /// File name to pretend.
    pub file_name: Option<String>,
    /// Where the test was written.
    pub loc: Loc,
}
