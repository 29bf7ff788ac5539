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
    /// `/3` — that column of the file's first record, from wherever it is read (inside
    /// `documents.each: "*"`, the file's control or heading record).
    FirstRecord(usize),
    /// A header name.
    Named(String),
    /// `59..` — every field of the record from this 1-based column (stored 0-based) to its
    /// end: the trailing fields a later revision of a layout adds.
    From(usize),
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
                } else if let Some(n) = s.strip_prefix('/') {
                    match n.parse::<usize>() {
                        Ok(0) => Err("CSV columns are numbered from 1".into()),
                        Ok(n) => Ok(Path::Csv(CsvPath::FirstRecord(n - 1))),
                        Err(_) => Err(format!(
                            "`/{n}`: after `/` a CSV path takes a column number of the first record"
                        )),
                    }
                } else if let Ok(n) = s.parse::<usize>() {
                    if n == 0 {
                        Err("CSV columns are numbered from 1".into())
                    } else {
                        Ok(Path::Csv(CsvPath::Column(n - 1)))
                    }
                } else if let Some(n) = s
                    .strip_suffix("..")
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                {
                    match n.parse::<usize>() {
                        Ok(0) => Err("CSV columns are numbered from 1".into()),
                        Ok(n) => Ok(Path::Csv(CsvPath::From(n - 1))),
                        Err(_) => Err(format!("`{s}`: the column number is too large")),
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

    /// Where a node is, for error messages (`PID-7 (segment 3)`, `record 57 (line 58), column
    /// 5`, `line 4, column 14 (/hk:card/hk:name)`); the whole CSV file reads its first record.
    /// Value-free: positions and names of the format, never a field's text.
    pub fn location(&self, node: Node<'_>) -> Option<String> {
        let record =
            |f: &csv::CsvFile, r: usize| format!("record {} (line {})", r + 1, f.line_of(r));
        match (self, node) {
            (Tree::Hl7(m), Node::Hl7(n)) => Some(m.location(n)),
            (Tree::Xml(d), Node::Xml(n)) => Some(d.location(n)),
            (Tree::Csv(f), Node::CsvCell(r, c)) => {
                Some(format!("{}, column {}", record(f, r), c + 1))
            }
            (Tree::Csv(f), Node::CsvRow(r)) => Some(record(f, r)),
            (Tree::Csv(f), Node::CsvFile) if f.record_count() > 0 => Some(record(f, 0)),
            _ => None,
        }
    }

    /// Where a document made from `root` comes from, value-free, to tell a sender which part of
    /// its input was refused: CSV `record 3, line 4` (the root's first record; the whole file
    /// reads its first), FHIR `entry 2` (counted from 1) when the root is a Bundle entry or its
    /// resource, XML the element's place and path (`line 3, column 5 (/hk:cards/hk:card[2])`),
    /// HL7 v2 a segment's place; `None` for a whole HL7 message or a JSON root.
    pub fn origin(&self, root: Node<'_>) -> Option<String> {
        match (self, root) {
            (Tree::Csv(f), Node::CsvRow(r) | Node::CsvCell(r, _)) => {
                Some(format!("record {}, line {}", r + 1, f.line_of(r)))
            }
            (Tree::Csv(f), Node::CsvFile) if f.record_count() > 0 => {
                Some(format!("record 1, line {}", f.line_of(0)))
            }
            (Tree::Json(doc), Node::Json(v)) => {
                bundle_entry(doc, v).map(|i| format!("entry {}", i + 1))
            }
            (Tree::Xml(d), Node::Xml(n)) => Some(d.location(n)),
            (Tree::Hl7(m), Node::Hl7(n)) if n.segment().is_some() => Some(m.location(n)),
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

/// The index of the Bundle entry that is `v` or holds `v` as its `resource`.
fn bundle_entry(doc: &Value, v: &Value) -> Option<usize> {
    if doc.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return None;
    }
    doc.get("entry")?
        .as_array()?
        .iter()
        .position(|e| std::ptr::eq(e, v) || e.get("resource").is_some_and(|r| std::ptr::eq(r, v)))
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
        CsvPath::From(c) => {
            let row = match from {
                Node::CsvRow(r) | Node::CsvCell(r, _) => r,
                Node::CsvFile if f.record_count() > 0 => 0,
                _ => return,
            };
            out.extend((*c..f.field_count(row)).map(|c| Node::CsvCell(row, c)));
            return;
        }
        CsvPath::FirstRecord(c) => {
            if f.record_count() > 0 && *c < f.field_count(0) {
                out.push(Node::CsvCell(0, *c));
            }
            return;
        }
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

    /// `N..` selects every field of the record from column N to its end, empty ones included;
    /// none past the end.
    #[test]
    fn a_csv_rest_path_selects_the_fields_from_its_column_on() {
        let csv = "2,1,\"a\",\"\",\"c\"\r\n2,2\r\n";
        let tree = Tree::parse(Format::Csv, csv.as_bytes(), &ParseOptions::default()).unwrap();
        let path = Path::compile(Format::Csv, "3..", &[]).unwrap();
        let mut out = Vec::new();
        tree.select(Node::CsvRow(0), &path, &mut out);
        let at: Vec<Option<String>> = out.iter().map(|n| tree.location(*n)).collect();
        let column = |c: usize| Some(format!("record 1 (line 1), column {c}"));
        assert_eq!(at, [column(3), column(4), column(5)]);
        out.clear();
        tree.select(Node::CsvRow(1), &path, &mut out);
        assert!(out.is_empty());
        for bad in ["0..", "x.."] {
            let p = Path::compile(Format::Csv, bad, &[]);
            assert!(!matches!(p, Ok(Path::Csv(CsvPath::From(_)))), "{bad}");
        }
    }

    #[test]
    fn a_csv_path_with_a_slash_reads_the_first_record_from_any_record() {
        let csv = "1,1,0,2,711\r\n2,1,\"7111\",\"202510\"\r\n3,4\r\n";
        let tree = Tree::parse(Format::Csv, csv.as_bytes(), &ParseOptions::default()).unwrap();
        let path = Path::compile(Format::Csv, "/5", &[]).unwrap();
        let mut out = Vec::new();
        tree.select(Node::CsvRow(1), &path, &mut out);
        let values: Vec<String> = out
            .iter()
            .filter_map(|n| tree.value(*n))
            .map(|v| v.into_owned())
            .collect();
        assert_eq!(values, ["711"]);
        let past_the_end = Path::compile(Format::Csv, "/6", &[]).unwrap();
        out.clear();
        tree.select(Node::CsvRow(2), &past_the_end, &mut out);
        assert!(out.is_empty());
        for bad in ["/0", "/x"] {
            assert!(Path::compile(Format::Csv, bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_origin_names_the_record_entry_element_or_segment_a_document_comes_from() {
        let opts = ParseOptions {
            csv: csv::CsvOptions {
                header: true,
                ..csv::CsvOptions::default()
            },
            ..ParseOptions::default()
        };
        // Record 2 starts on line 4: record 1 holds a quoted line break.
        let csv = "番号,氏名\n1,\"介護\n太郎\"\n2,介護 花子\n";
        let tree = Tree::parse(Format::Csv, csv.as_bytes(), &opts).unwrap();
        let origins: Vec<Option<String>> = [
            Node::CsvFile,
            Node::CsvRow(0),
            Node::CsvRow(1),
            Node::CsvCell(1, 1),
        ]
        .into_iter()
        .map(|n| tree.origin(n))
        .collect();
        assert_eq!(
            origins,
            [
                Some("record 1, line 2".to_string()),
                Some("record 1, line 2".to_string()),
                Some("record 2, line 4".to_string()),
                Some("record 2, line 4".to_string()),
            ]
        );
        let empty = Tree::parse(Format::Csv, "番号,氏名\n".as_bytes(), &opts).unwrap();
        assert_eq!(empty.origin(Node::CsvFile), None);

        // A Bundle entry, or its resource, counted from 1; nothing else in JSON.
        let bundle =
            br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation"}},
            {"resource":{"resourceType":"Patient","name":[{"family":"Kaigo"}]}}]}"#;
        let tree = Tree::parse(Format::Fhir, bundle, &ParseOptions::default()).unwrap();
        let Tree::Json(doc) = &tree else {
            panic!("JSON")
        };
        let patient = &doc["entry"][1]["resource"];
        assert_eq!(tree.origin(Node::Json(patient)).as_deref(), Some("entry 2"));
        assert_eq!(
            tree.origin(Node::Json(&doc["entry"][0])).as_deref(),
            Some("entry 1")
        );
        assert_eq!(tree.origin(Node::Json(&patient["name"])), None);
        assert_eq!(tree.origin(tree.root()), None);
        let alone = Tree::parse(
            Format::Fhir,
            br#"{"resourceType":"Patient"}"#,
            &ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(alone.origin(alone.root()), None);

        // XML: the element's line, column and indexed path.
        let xml = b"<cards>\n  <card>a</card>\n  <card>b</card>\n</cards>";
        let tree = Tree::parse(Format::Xml, xml, &ParseOptions::default()).unwrap();
        let path = Path::compile(Format::Xml, "card", &[]).unwrap();
        let mut cards = Vec::new();
        tree.select(tree.root(), &path, &mut cards);
        assert_eq!(
            tree.origin(cards[1]).as_deref(),
            Some("line 3, column 3 (/cards/card[2])")
        );

        // HL7 v2: a segment, never the whole message.
        let hl7 = b"MSH|^~\\&|A|B|C|D|20251024||ADT^A08|1|P|2.5\rPID|1\rNK1|1\rNK1|2\r";
        let tree = Tree::parse(Format::Hl7v2, hl7, &ParseOptions::default()).unwrap();
        assert_eq!(tree.origin(tree.root()), None);
        let path = Path::compile(Format::Hl7v2, "NK1[*]", &[]).unwrap();
        let mut nk1 = Vec::new();
        tree.select(tree.root(), &path, &mut nk1);
        assert_eq!(tree.origin(nk1[1]).as_deref(), Some("NK1[2] (segment 4)"));
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
