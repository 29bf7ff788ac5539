//! One enum over every format's tree, node and compiled path, so the mapping engine selects
//! values without knowing whether it reads HL7 v2, FHIR JSON, XML or CSV. Each arm delegates to
//! its format file; this file adds only the CSV path grammar (`*` = every record, `3` = the third
//! column, `被保険者番号` = a header column) and the dispatch.

use super::{Format, csv, hl7v2, json, xml};
use crate::redact::Disclose;
use serde_json::Value;
use std::borrow::Cow;

/// Options a mapping gives the parser of its source format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// CSV character set, header and limits.
    pub csv: csv::CsvOptions,
    /// XML limits.
    pub xml: xml::XmlLimits,
}

/// Bytes that do not parse in the expected format. `Display` says where and why; the text of
/// the input it quotes is for its sender ([`Disclose`]).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// HL7 v2.
    #[error("HL7 v2: {0}")]
    Hl7(#[from] hl7v2::Hl7Error),
    /// FHIR/canonical JSON.
    #[error("JSON: {0}")]
    Json(#[from] json::JsonError),
    /// XML.
    #[error("XML: {0}")]
    Xml(#[from] xml::XmlError),
    /// CSV.
    #[error("CSV: {0}")]
    Csv(#[from] csv::CsvError),
}

impl Disclose for FormatError {
    fn fmt_for_sender(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Hl7(e) => write!(f, "HL7 v2: {}", e.for_sender()),
            FormatError::Json(e) => write!(f, "JSON: {e}"),
            FormatError::Xml(e) => write!(f, "XML: {}", e.for_sender()),
            FormatError::Csv(e) => write!(f, "CSV: {}", e.for_sender()),
        }
    }
}

/// A parsed input.
pub enum Tree {
    /// An HL7 v2 message.
    Hl7(hl7v2::Message),
    /// A JSON document (FHIR or canonical).
    Json(Value),
    /// An XML document.
    Xml(xml::XmlDoc),
    /// A CSV file.
    Csv(csv::CsvFile),
}

/// A position in a tree.
#[derive(Clone, Copy, Debug)]
pub enum Node<'a> {
    /// HL7 v2 segment, field, repetition, component or subcomponent.
    Hl7(hl7v2::Node),
    /// A JSON value.
    Json(&'a Value),
    /// An XML element or attribute.
    Xml(xml::Node),
    /// The whole CSV file.
    CsvFile,
    /// A CSV record (0-based).
    CsvRow(usize),
    /// A CSV field: record and column (0-based).
    CsvCell(usize, usize),
}

/// A compiled path in one format's grammar.
#[derive(Clone, Debug)]
pub enum Path {
    /// HL7 v2 (`PID-5[7=P].1`).
    Hl7(hl7v2::Path),
    /// JSON (`name[extension.valueCode=SYL].family`).
    Json(json::Path),
    /// XML (`/hk:card/hk:name/@type`).
    Xml(xml::Path),
    /// CSV.
    Csv(CsvPath),
}

/// CSV path grammar.
#[derive(Clone, Debug, PartialEq)]
pub enum CsvPath {
    /// `*` — every record of the file.
    Records,
    /// `3` — a 1-based column number (stored 0-based).
    Column(usize),
    /// A header name.
    Named(String),
}

impl Path {
    /// Compiles `s` in the grammar of `format`; XML paths resolve prefixes with `namespaces`.
    pub fn compile(
        format: Format,
        s: &str,
        namespaces: &[(String, String)],
    ) -> Result<Path, String> {
        match format {
            Format::Hl7v2 => hl7v2::Path::compile(s).map(Path::Hl7),
            Format::Fhir | Format::Canonical => json::Path::compile(s).map(Path::Json),
            Format::Xml => xml::Path::compile(s, namespaces).map(Path::Xml),
            Format::Csv => {
                let s = s.trim();
                if s == "*" {
                    Ok(Path::Csv(CsvPath::Records))
                } else if let Ok(n) = s.parse::<usize>() {
                    if n == 0 {
                        Err("CSV columns are numbered from 1".into())
                    } else {
                        Ok(Path::Csv(CsvPath::Column(n - 1)))
                    }
                } else if s.is_empty() {
                    Err("empty CSV path: write `*`, a column number or a header name".into())
                } else {
                    Ok(Path::Csv(CsvPath::Named(s.to_string())))
                }
            }
        }
    }
}

impl Tree {
    /// Parses `bytes` as `format`.
    pub fn parse(format: Format, bytes: &[u8], opts: &ParseOptions) -> Result<Tree, FormatError> {
        Ok(match format {
            Format::Hl7v2 => Tree::Hl7(hl7v2::parse(bytes)?),
            Format::Fhir | Format::Canonical => Tree::Json(json::parse(bytes)?),
            Format::Xml => Tree::Xml(xml::parse(bytes, &opts.xml)?),
            Format::Csv => Tree::Csv(csv::parse(bytes, &opts.csv)?),
        })
    }

    /// The node a whole-document path starts from.
    pub fn root(&self) -> Node<'_> {
        match self {
            Tree::Hl7(m) => Node::Hl7(m.root()),
            Tree::Json(v) => Node::Json(v),
            Tree::Xml(d) => Node::Xml(d.root()),
            Tree::Csv(_) => Node::CsvFile,
        }
    }

    /// Pushes the nodes `path` selects from `from`, in document order.
    pub fn select<'a>(&'a self, from: Node<'a>, path: &Path, out: &mut Vec<Node<'a>>) {
        match (self, from, path) {
            (Tree::Hl7(m), Node::Hl7(n), Path::Hl7(p)) => {
                m.visit(n, p, &mut |node| {
                    out.push(Node::Hl7(node));
                    true
                });
            }
            (Tree::Json(root), Node::Json(n), Path::Json(p)) => {
                let mut tmp = Vec::new();
                json::select(root, n, p, &mut tmp);
                out.extend(tmp.into_iter().map(Node::Json));
            }
            (Tree::Xml(d), Node::Xml(n), Path::Xml(p)) => {
                let mut tmp = Vec::new();
                d.select(n, p, &mut tmp);
                out.extend(tmp.into_iter().map(Node::Xml));
            }
            (Tree::Csv(f), node, Path::Csv(p)) => select_csv(f, node, p, out),
            _ => {}
        }
    }

    /// The first non-empty value `path` selects from `from`, with its node. Allocation-free for
    /// HL7 v2 (the hot path of SS-MIX2 translation).
    pub fn first_value<'a>(
        &'a self,
        from: Node<'a>,
        path: &Path,
    ) -> Option<(Cow<'a, str>, Node<'a>)> {
        if let (Tree::Hl7(m), Node::Hl7(n), Path::Hl7(p)) = (self, from, path) {
            let mut found = None;
            m.visit(n, p, &mut |node| match m.value(node) {
                Some(v) => {
                    found = Some((v, Node::Hl7(node)));
                    false
                }
                None => true,
            });
            return found;
        }
        if let (Tree::Json(root), Node::Json(n), Path::Json(p)) = (self, from, path)
            && let Some(one) = json::select_one(root, n, p)
        {
            let node = Node::Json(one?);
            return self.value(node).map(|v| (v, node));
        }
        let mut nodes = Vec::new();
        self.select(from, path, &mut nodes);
        nodes
            .into_iter()
            .find_map(|n| self.value(n).map(|v| (v, n)))
    }

    /// True when `path` selects a non-empty value, or (JSON) a non-empty object or array:
    /// what a `"*"` condition asks.
    pub fn exists(&self, from: Node<'_>, path: &Path) -> bool {
        if let (Tree::Json(root), Node::Json(n), Path::Json(p)) = (self, from, path)
            && let Some(one) = json::select_one(root, n, p)
        {
            return match one {
                None => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(v) => self.value(Node::Json(v)).is_some(),
            };
        }
        let mut nodes = Vec::new();
        self.select(from, path, &mut nodes);
        nodes.into_iter().any(|n| match n {
            Node::Json(Value::Object(m)) => !m.is_empty(),
            Node::Json(Value::Array(a)) => !a.is_empty(),
            n => self.value(n).is_some(),
        })
    }

    /// True when a node holds nothing at all (an empty HL7 field or CSV cell, JSON null or an
    /// empty string/object/array, an XML element with no text, attributes or children): such a
    /// node is not an item for `each`.
    pub fn is_empty_node(&self, node: Node<'_>) -> bool {
        match (self, node) {
            (Tree::Json(_), Node::Json(v)) => match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            },
            (Tree::Xml(d), Node::Xml(n)) => {
                d.value(n).is_none()
                    && d.children(n).next().is_none()
                    && d.attributes(n).next().is_none()
            }
            (_, Node::CsvFile | Node::CsvRow(_)) => false,
            (t, n) => t.value(n).is_none(),
        }
    }

    /// The text at a node, or `None` when absent or empty.
    pub fn value<'a>(&'a self, node: Node<'a>) -> Option<Cow<'a, str>> {
        match (self, node) {
            (Tree::Hl7(m), Node::Hl7(n)) => m.value(n),
            (Tree::Json(_), Node::Json(v)) => json::text(v),
            (Tree::Xml(d), Node::Xml(n)) => d.value(n),
            (Tree::Csv(f), Node::CsvCell(r, c)) => f.field(r, c).filter(|v| !v.is_empty()),
            _ => None,
        }
    }

    /// Where a node is, for error messages (`PID-7 (segment 3)`, `line 4, column 14`).
    pub fn location(&self, node: Node<'_>) -> Option<String> {
        match (self, node) {
            (Tree::Hl7(m), Node::Hl7(n)) => Some(m.location(n)),
            (Tree::Xml(d), Node::Xml(n)) => Some(d.location(n)),
            (Tree::Csv(f), Node::CsvCell(r, c)) => Some(format!(
                "record {}, column {} (line {})",
                r + 1,
                c + 1,
                f.line_of(r)
            )),
            (Tree::Csv(f), Node::CsvRow(r)) => {
                Some(format!("record {} (line {})", r + 1, f.line_of(r)))
            }
            _ => None,
        }
    }

    /// Every value with a path a mapping can use (for `kaigo-hub inspect`).
    pub fn walk(&self, f: &mut dyn FnMut(&str, &str)) {
        match self {
            Tree::Hl7(m) => m.walk(f),
            Tree::Json(v) => json::walk(v, f),
            Tree::Xml(d) => d.walk(f),
            Tree::Csv(file) => {
                let header = file.header().map(|h| h.to_vec());
                for r in 0..file.record_count() {
                    for c in 0..file.field_count(r) {
                        if let Some(v) = file.field(r, c).filter(|v| !v.is_empty()) {
                            let name = header
                                .as_ref()
                                .and_then(|h| h.get(c))
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default();
                            f(
                                &format!(
                                    "record {} line {} column {}{}",
                                    r + 1,
                                    file.line_of(r),
                                    c + 1,
                                    name
                                ),
                                &v,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn select_csv<'a>(f: &csv::CsvFile, from: Node<'a>, p: &CsvPath, out: &mut Vec<Node<'a>>) {
    let column = match p {
        CsvPath::Records => {
            if let Node::CsvFile = from {
                out.extend((0..f.record_count()).map(Node::CsvRow));
            }
            return;
        }
        CsvPath::Column(c) => *c,
        CsvPath::Named(n) => match f.column_index(n) {
            Some(c) => c,
            None => return,
        },
    };
    let row = match from {
        // Inside an `each` over a column, columns are read from the same record.
        Node::CsvRow(r) | Node::CsvCell(r, _) => r,
        Node::CsvFile if f.record_count() > 0 => 0,
        _ => return,
    };
    if column < f.field_count(row) {
        out.push(Node::CsvCell(row, column));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exists` and `first_value` as they were before their no-allocation path for plain JSON
    /// keys: through `select`, for every path.
    fn by_select(tree: &Tree, path: &Path) -> (bool, Option<String>) {
        let mut nodes = Vec::new();
        tree.select(tree.root(), path, &mut nodes);
        let exists = nodes.iter().any(|n| match n {
            Node::Json(Value::Object(m)) => !m.is_empty(),
            Node::Json(Value::Array(a)) => !a.is_empty(),
            n => tree.value(*n).is_some(),
        });
        let first = nodes
            .into_iter()
            .find_map(|n| tree.value(n))
            .map(|v| v.into_owned());
        (exists, first)
    }

    #[test]
    fn json_exists_and_first_value_agree_with_select_for_every_kind_of_path() {
        let doc = br#"{"document":"CarePlan@1","subject":{"insurer_number":"131011","insured_number":""},
            "empty":{},"none":null,"n":0,"flag":false,"rows":[{"need":"a"},{"need":""},{"need":"c"}],
            "table2":{"created_on":"2025-10-20","rows":[]}}"#;
        let tree = Tree::parse(Format::Canonical, doc, &ParseOptions::default()).unwrap();
        for p in [
            "document",
            "subject",
            "subject.insurer_number",
            "subject.insured_number",
            "empty",
            "none",
            "n",
            "flag",
            "rows",
            "rows.need",
            "rows[1].need",
            "table2.created_on",
            "table2.rows",
            "missing",
            "document.x",
            "subject.insurer_number.x",
        ] {
            let path = Path::compile(Format::Canonical, p, &[]).unwrap();
            let (exists, first) = by_select(&tree, &path);
            assert_eq!(tree.exists(tree.root(), &path), exists, "exists {p}");
            let got = tree
                .first_value(tree.root(), &path)
                .map(|(v, _)| v.into_owned());
            assert_eq!(got, first, "first_value {p}");
        }
    }
}
