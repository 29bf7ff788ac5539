//! The mapping file as written: the YAML document deserialized (serde-saphyr) into plain
//! structs that keep each rule's line and column. Nothing is checked here beyond YAML shape and
//! unknown keys; `compile.rs` turns a spec into a runnable plan and reports meaning errors.
//!
//! Scalars that are codes (`06`, `202407`, `Y`) are read as raw text wherever the field is
//! text-only (`const`, `default`, `tables`, `lookup`, `sep`), so YAML never turns `06` into `6`.
//! Where a field may be text *or* a list (`from`, `match`, `when`), a bare `06` reaches us as a
//! YAML number: quote such codes there.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// Unique id, e.g. `ssmix2-adt-insured-person`.
    pub id: Spanned<String>,
    /// The mapping's own version; bump it when its output changes.
    pub version: u32,
    /// What the mapping is for, in a sentence.
    #[serde(default)]
    pub description: Option<String>,
    /// Input format and the rule that says which inputs this mapping takes.
    pub source: Spanned<SourceSpec>,
    /// `Document@version` for inbound mappings, or an outbound format block.
    pub target: Spanned<TargetSpec>,
    /// Platform category (certification, claims, life, care-plan, housing).
    #[serde(default)]
    pub category: Option<Spanned<String>>,
    /// `none`: the documents carry no person (a 請求書). Allowed, and required, exactly when the
    /// target kind has no subject.
    #[serde(default)]
    pub subject: Option<Spanned<String>>,
    /// How one input becomes several documents (default: one document per input).
    #[serde(default)]
    pub documents: Option<Spanned<DocumentsSpec>>,
    /// Outbound CSV: the file frame around the documents' records (a control record before them,
    /// an end record after them), and which documents share one file.
    #[serde(default)]
    pub file: Option<Spanned<FileSpec>>,
    /// Target path → rule, in order.
    pub fields: Pairs<Spanned<RuleSpec>>,
    /// Lookup tables: name → (code → value).
    #[serde(default)]
    pub tables: Pairs<Pairs<String>>,
    /// Golden tests: input file → expected output file, paths relative to the mapping file.
    #[serde(default)]
    pub tests: Vec<Spanned<TestSpec>>,
}

/// `source:` — input format, options and match rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `hl7v2`, `fhir`, `xml`, `csv` or `canonical`.
    pub format: Spanned<String>,
    /// Conditions that must all hold for this mapping to take an input.
    #[serde(default, rename = "match")]
    pub match_: Pairs<CondSpec>,
    /// CSV/XML character set when not sniffed: `ms932`, `utf-8`.
    #[serde(default)]
    pub charset: Option<String>,
    /// CSV: the first record is a header row.
    #[serde(default)]
    pub header: Option<bool>,
    /// CSV: physical lines skipped before the header or the first data record.
    #[serde(default)]
    pub skip: Option<usize>,
    /// CSV: every data record has exactly this many fields.
    #[serde(default)]
    pub columns: Option<usize>,
    /// CSV: `"` (the default, RFC 4180 quoting) or `none` (`"` is ordinary data).
    #[serde(default)]
    pub quote: Option<Spanned<String>>,
    /// CSV: this column of every record holds the record's number in the file, from 1; a file
    /// numbered otherwise is read all the same, with a warning.
    #[serde(default)]
    pub record_number: Option<Spanned<usize>>,
    /// CSV: where the file says how many of its records meet `of` (a control record's 件数); a
    /// count that differs is a warning.
    #[serde(default)]
    pub count: Option<Spanned<CountSpec>>,
    /// CSV: conditions the file's last record must meet (an end record); a file whose last record
    /// does not is refused as cut short.
    #[serde(default)]
    pub last: Pairs<CondSpec>,
    /// XML: prefix → namespace URI used in this file's paths.
    #[serde(default)]
    pub namespaces: Pairs<String>,
    /// File-name convention to parse into `$file.*` metadata: `careplan`.
    #[serde(default)]
    pub file_name: Option<String>,
}

/// `source.count:` — a count the file states, and what it counts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountSpec {
    /// The path of the stated count (`/4`: column 4 of the first record).
    pub from: String,
    /// Conditions a counted record meets (`{ "1": "2" }`: data records).
    #[serde(default)]
    pub of: Pairs<CondSpec>,
}

/// `target:` — either `Document@version` or an outbound format block.
#[derive(Debug)]
pub enum TargetSpec {
    /// A canonical document, e.g. `InsuredPerson@1`.
    Document(String),
    /// An outbound wire format.
    Format(OutboundSpec),
}

/// An outbound target format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSpec {
    /// `fhir` (JSON) or `csv`.
    pub format: String,
    /// CSV: number of columns per record.
    #[serde(default)]
    pub columns: Option<usize>,
    /// CSV: 1-based columns that are always quoted (free text in ケアプラン CSV).
    #[serde(default)]
    pub quoted: Vec<usize>,
    /// CSV: output character set, default `ms932`.
    #[serde(default)]
    pub charset: Option<String>,
    /// CSV: `crlf` (default) or `lf`.
    #[serde(default)]
    pub line_ending: Option<String>,
    /// CSV: every column from this one (1-based) on is always quoted in a data record (the QKAN
    /// style of the 国保連 files: `2,<n>,` bare, every inner field in `"…"`). The frame's
    /// records (`file.head`, `file.tail`) are quoted only where a field needs it.
    #[serde(default)]
    pub quoted_from: Option<usize>,
    /// CSV: this column (1-based) of every record, frame records included, is the record's
    /// number in the file, from 1 (computed when the file is written; no rule writes it).
    #[serde(default)]
    pub record_number: Option<usize>,
}

/// `file:` — outbound CSV: the frame of one file, written around its documents' records.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Paths into each document: documents with the same values go into one file (rendering
    /// documents of two files together is an error).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The record written before the documents' records (columns by number), read from the
    /// file's first document; `$file.records` is the number of data records.
    #[serde(default)]
    pub head: Pairs<Spanned<RuleSpec>>,
    /// The record written after them, read like `head`.
    #[serde(default)]
    pub tail: Pairs<Spanned<RuleSpec>>,
    /// Document kinds (`ClaimInvoice@1` …) in the order their records are written: a file's
    /// documents of the first kind, then of the second …, each kind in the order it came; kinds
    /// not listed after. Empty: the order the documents came.
    #[serde(default)]
    pub order: Vec<String>,
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`Document@version` or `{ format: fhir|csv, … }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetSpec, E> {
                Ok(TargetSpec::Document(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<TargetSpec, A::Error> {
                OutboundSpec::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(TargetSpec::Format)
            }
        }
        d.deserialize_any(V)
    }
}

/// `documents:` — split one input into several documents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsSpec {
    /// Paths selecting document roots; the first path that selects anything wins.
    pub each: StrOrList,
    /// Relative paths whose values group the selected nodes into one document each.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Conditions (as a rule's `when:`, paths relative to each selected root) that a root must
    /// meet to make a document.
    #[serde(default)]
    pub when: Pairs<CondSpec>,
    /// Conditions (relative to each member) that pick the one member of a group the top-level
    /// rules read (its head); a group with none or several is an error.
    #[serde(default)]
    pub head: Pairs<CondSpec>,
    /// Conditions (relative to each member) that every member of a group must meet: a record of
    /// a kind the mapping does not read is an error naming it, never passed over.
    #[serde(default)]
    pub members: Pairs<CondSpec>,
    /// Conditions a record meets when it is the input's frame (a control or end record), part of
    /// no document. Declaring them also says: every other record `each` selects must be read by
    /// this mapping or another one with a `frame` that fits the same input; a record none reads
    /// is an error naming it.
    #[serde(default)]
    pub frame: Pairs<CondSpec>,
}

/// One rule: a shorthand path string, or the full form.
#[derive(Debug, Default)]
pub struct RuleSpec {
    /// Source path(s); several = the first that has a value.
    pub from: Option<StrOrList>,
    /// A constant value (text, coerced to the target's type).
    pub constant: Option<String>,
    /// Paths whose values are joined with `sep`.
    pub join: Option<StrOrList>,
    /// Separator for `join` (default one space).
    pub sep: Option<String>,
    /// Transforms applied in order.
    pub then: Vec<TransformSpec>,
    /// Lookup table name.
    pub lookup: Option<String>,
    /// Bit-string multi-select: one character per option (inbound: text → list of options;
    /// outbound: list → text).
    pub bits: Option<BitsSpec>,
    /// Value when the source has none.
    pub default: Option<String>,
    /// Fail the document when no value results.
    pub required: bool,
    /// Regular expression the final text must match.
    pub pattern: Option<String>,
    /// Check-digit or identifier rule: `insurer_number`, `insured_number`, `office_number`.
    pub check: Option<String>,
    /// Conditions: all must hold for the rule to apply.
    pub when: Option<Pairs<CondSpec>>,
    /// Repetition: paths selecting the items to iterate.
    pub each: Option<StrOrList>,
    /// Rules for each item (with `each`), relative to the item.
    pub fields: Option<Pairs<Spanned<RuleSpec>>>,
    /// Outbound FHIR only (its fields have no schema): write the value as a JSON `number`,
    /// `integer` or `boolean` instead of a string.
    pub as_type: Option<String>,
    /// The sum of every whole number this path selects (a total computed, not read).
    pub sum: Option<String>,
    /// Outbound CSV, on a `records[+]` rule of a target without `columns: N`: how many
    /// columns its records have (default: the highest column its rules name).
    pub columns: Option<usize>,
    /// Inbound: a value this rule finds is reported as a warning (the input is still read),
    /// with this text saying why: fields of a later interface revision, kept verbatim.
    pub warn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    #[serde(default)]
    from: Option<StrOrList>,
    #[serde(default, rename = "const")]
    constant: Option<String>,
    #[serde(default)]
    join: Option<StrOrList>,
    #[serde(default)]
    sep: Option<String>,
    #[serde(default)]
    then: Vec<TransformSpec>,
    #[serde(default)]
    lookup: Option<String>,
    #[serde(default)]
    bits: Option<BitsSpec>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    when: Option<Pairs<CondSpec>>,
    #[serde(default)]
    each: Option<StrOrList>,
    #[serde(default)]
    fields: Option<Pairs<Spanned<RuleSpec>>>,
    #[serde(default, rename = "as")]
    as_type: Option<String>,
    #[serde(default)]
    sum: Option<String>,
    #[serde(default)]
    columns: Option<usize>,
    #[serde(default)]
    warn: Option<String>,
}

impl<'de> Deserialize<'de> for RuleSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a source path, or a rule like `{ from: PID-7, then: [...] }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleSpec, E> {
                Ok(RuleSpec {
                    from: Some(StrOrList(vec![v.to_string()])),
                    ..RuleSpec::default()
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RuleSpec, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RuleSpec, E> {
                Err(E::custom(yaml_number(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RuleSpec, A::Error> {
                let b = RuleBody::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(RuleSpec {
                    from: b.from,
                    constant: b.constant,
                    join: b.join,
                    sep: b.sep,
                    then: b.then,
                    lookup: b.lookup,
                    bits: b.bits,
                    default: b.default,
                    required: b.required,
                    pattern: b.pattern,
                    check: b.check,
                    when: b.when,
                    each: b.each,
                    fields: b.fields,
                    as_type: b.as_type,
                    sum: b.sum,
                    columns: b.columns,
                    warn: b.warn,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `bits:` — the options of a bit string, leftmost character first: a list of option codes, or
/// `{ options: [...], chars: "012", pick: "12" }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BitsSpec {
    /// Option codes in character order.
    pub options: Vec<String>,
    /// The characters a position may hold (default `01`).
    pub chars: Option<String>,
    /// The characters that select an option (default `1`); outbound writes the first.
    pub pick: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BitsBody {
    options: Vec<String>,
    #[serde(default)]
    chars: Option<String>,
    #[serde(default)]
    pick: Option<String>,
}

impl<'de> Deserialize<'de> for BitsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BitsSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a list of option codes, or `{ options: [...], chars: \"01\", pick: \"1\" }`",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<BitsSpec, A::Error> {
                let mut options = Vec::new();
                while let Some(x) = s.next_element::<String>()? {
                    options.push(x);
                }
                Ok(BitsSpec {
                    options,
                    ..BitsSpec::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<BitsSpec, A::Error> {
                let b = BitsBody::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(BitsSpec {
                    options: b.options,
                    chars: b.chars,
                    pick: b.pick,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A transform: `name`, `{ name: argument }` or `{ name: [argument, …] }`.
#[derive(Debug, Clone, Default)]
pub struct TransformSpec {
    /// Transform name, e.g. `fullwidth_kana`, `date`.
    pub name: String,
    /// Its argument, as text, e.g. `yyyyMMdd`.
    pub arg: Option<String>,
    /// Its arguments when written as a list, e.g. `{ replace: ["\v", "\n"] }`.
    pub list: Option<Vec<String>>,
}

/// Transforms whose argument is a list (`{ replace: ["\v", "\n"] }`); every other argument is
/// read as raw text, so `{ null_if: 0900 }` keeps its leading zero.
const LIST_ARGUMENTS: &[&str] = &["replace"];

impl<'de> Deserialize<'de> for TransformSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TransformSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a transform name or `{ name: argument }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TransformSpec, E> {
                Ok(TransformSpec {
                    name: v.to_string(),
                    arg: None,
                    list: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<TransformSpec, A::Error> {
                let Some(name) = m.next_key::<String>()? else {
                    return Err(de::Error::custom("empty transform `{}`"));
                };
                let spec = if LIST_ARGUMENTS.contains(&name.as_str()) {
                    TransformSpec {
                        list: Some(m.next_value::<Vec<String>>()?),
                        name,
                        arg: None,
                    }
                } else {
                    TransformSpec {
                        arg: Some(m.next_value::<String>()?),
                        name,
                        list: None,
                    }
                };
                if m.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a transform is `{ name: argument }` with exactly one key",
                    ));
                }
                Ok(spec)
            }
        }
        d.deserialize_any(V)
    }
}

/// A golden test of the mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Input file, relative to the mapping file.
    pub input: String,
    /// Expected output file (JSON for documents, exact bytes for CSV), relative to the mapping file.
    pub expect: String,
    /// Pretend the input had this file name (for `$file.*` metadata).
    #[serde(default)]
    pub file_name: Option<String>,
}

/// What a condition (`match`, `when`) tests: a value or a list of values (`"*"`: any value,
/// `""`: no value), or `{ pattern: REGEX }`: a value the regular expression matches.
#[derive(Debug, Clone, PartialEq)]
pub enum CondSpec {
    /// One of these values (or `"*"` / `""`).
    Values(StrOrList),
    /// A regular expression the value must match.
    Pattern(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternBody {
    pattern: String,
}

impl<'de> Deserialize<'de> for CondSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CondSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value, a list of values, or `{ pattern: REGEX }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CondSpec, E> {
                StrOrListVisitor.visit_str(v).map(CondSpec::Values)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CondSpec, E> {
                StrOrListVisitor.visit_u64(v).map(CondSpec::Values)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CondSpec, E> {
                StrOrListVisitor.visit_i64(v).map(CondSpec::Values)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CondSpec, E> {
                StrOrListVisitor.visit_f64(v).map(CondSpec::Values)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<CondSpec, E> {
                StrOrListVisitor.visit_bool(v).map(CondSpec::Values)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<CondSpec, A::Error> {
                StrOrListVisitor.visit_seq(s).map(CondSpec::Values)
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<CondSpec, A::Error> {
                let b = PatternBody::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(CondSpec::Pattern(b.pattern))
            }
        }
        d.deserialize_any(V)
    }
}

/// One text value or a list of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrOrList(pub Vec<String>);

struct StrOrListVisitor;

impl<'de> Visitor<'de> for StrOrListVisitor {
    type Value = StrOrList;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text value or a list of them")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrList, E> {
        Ok(StrOrList(vec![v.to_string()]))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrList, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrList, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrOrList, E> {
        Err(E::custom(yaml_number(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrOrList, E> {
        Err(E::custom(format!(
            "YAML read this as the boolean {v} (Y, N, yes, no, on, off and true/false all are); quote it, e.g. \"Y\""
        )))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<StrOrList, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = s.next_element::<String>()? {
            v.push(x);
        }
        Ok(StrOrList(v))
    }
}

impl<'de> Deserialize<'de> for StrOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrListVisitor)
    }
}

/// An ordered map that keeps each key's location (YAML keys may repeat only if the file says so
/// twice, which `compile.rs` reports).
#[derive(Debug)]
pub struct Pairs<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Pairs(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs<V>, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    v.push((k, m.next_value()?));
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

fn yaml_number(v: f64) -> String {
    format!(
        "YAML read this as the number {v}; quote paths, codes and decimals (e.g. \".1\", \"06\", \"1.50\")"
    )
}
