//! Outbound CSV files: the records an outbound CSV mapping makes of each document, gathered
//! into files and written out. In: canonical documents, each with the outbound mapping chosen for
//! it. Out: one file's bytes. A mapping with a `file:` frame puts the documents that share its
//! `file.group_by` values into one file, between a head record (a 国保連 file's control record)
//! and a tail record (its end record), both read from the file's first document, with
//! `$file.records` counting the data records; `record_number` numbers every record of the file
//! from 1, and `quoted`/`quoted_from` quote the data records' columns (the QKAN style). What a
//! record holds is the mapping's business, never coded here per format. Never writes a
//! character the charset cannot hold (the error names the record and column), and never
//! silently joins documents that belong in different files.

use super::compile;
use super::plan::{self, CsvTarget, FileFrame, Mapping, WIDTH_KEY};
use super::run::{self, Meta, Out};
use super::{TranslateError, metadata};
use crate::formats::Tree;
use crate::formats::charset;
use crate::formats::csv::CsvWriter;
use serde_json::Value;
use std::borrow::Cow;

/// The CSV files a rendering is making, in the order their first documents came.
#[derive(Default)]
pub(crate) struct Files<'m> {
    files: Vec<File<'m>>,
}

/// One file: its mapping's settings, the frame's grouping values, the first document (which the
/// frame's records read) and the data records so far, each a list of field texts.
struct File<'m> {
    mapping: &'m Mapping,
    target: &'m CsvTarget,
    /// `file.group_by` values; `None` for a mapping without a frame (all such documents share
    /// one file, as they always have).
    key: Option<Vec<Option<String>>>,
    /// The first document in written order, and its place in `file.order`.
    first: Option<(usize, Value)>,
    documents: usize,
    /// Each document's records, with its kind's place in `file.order` (the write order).
    records: Vec<(usize, Vec<Vec<String>>)>,
}

impl<'m> Files<'m> {
    /// Renders `doc` with `m` (whose target is `t`) and files its records.
    pub(crate) fn add(
        &mut self,
        m: &'m Mapping,
        t: &'m CsvTarget,
        doc: Value,
        meta: &Meta,
    ) -> Result<(), TranslateError> {
        let tree = Tree::Json(doc);
        let key = m.file.as_ref().map(|f| group_key(f, &tree));
        let rank = m.file.as_ref().map_or(0, |f| rank(f, &tree));
        let mut records = Vec::new();
        {
            let (outs, _) = run::run_out(m, &tree, meta)?;
            for (out, _) in &outs {
                records_of(t, out, &mut records);
            }
        }
        let at = self.files.iter().position(|f| match (&key, &f.key) {
            (None, None) => true,
            (Some(k), Some(fk)) => f.mapping.id == m.id && fk == k,
            _ => false,
        });
        let file = match at {
            Some(i) => &mut self.files[i],
            None => {
                self.files.push(File {
                    mapping: m,
                    target: t,
                    key,
                    first: None,
                    documents: 0,
                    records: Vec::new(),
                });
                let last = self.files.len() - 1;
                &mut self.files[last]
            }
        };
        file.documents += 1;
        file.records.push((rank, records));
        if file.first.as_ref().is_none_or(|(r, _)| rank < *r)
            && m.file.is_some()
            && let Tree::Json(v) = tree
        {
            file.first = Some((rank, v));
        }
        Ok(())
    }

    /// The file's bytes; `None` when no document went to CSV. Documents that belong in two
    /// files (different `file.group_by` values, or two mappings with a frame) are an error.
    pub(crate) fn finish(self) -> Result<Option<Vec<u8>>, TranslateError> {
        let mut files = self.files.into_iter();
        let Some(file) = files.next() else {
            return Ok(None);
        };
        let more = files.count();
        if more > 0 {
            return Err(TranslateError::SeveralFiles(more + 1));
        }
        file.write().map(Some)
    }
}

impl File<'_> {
    fn write(self) -> Result<Vec<u8>, TranslateError> {
        let t = self.target;
        let mut w = CsvWriter::new(b',', t.line_ending);
        let mut n = 0usize;
        let frame = match (&self.mapping.file, self.first) {
            (Some(frame), Some((_, first))) => Some((frame, Tree::Json(first))),
            _ => None,
        };
        let mut meta = metadata(self.mapping, None).unwrap_or_default();
        let count: usize = self.records.iter().map(|(_, r)| r.len()).sum();
        meta.set("$file.records", count.to_string());
        meta.set("$file.documents", self.documents.to_string());
        let frame_record = |steps: &[plan::Step], width: usize, tree: &Tree| {
            let out = run::run_record(self.mapping, steps, tree, &meta)?;
            let width = if t.fixed { t.columns } else { width };
            Ok::<_, TranslateError>(fields_of(&out, width))
        };
        if let Some((f, tree)) = &frame {
            let head: &FileFrame = f;
            let fields = frame_record(&head.head, head.head_width, tree)?;
            emit(&mut w, t, fields, false, &mut n)?;
        }
        let mut records = self.records;
        records.sort_by_key(|(rank, _)| *rank); // stable: each kind in the order it came
        for fields in records.into_iter().flat_map(|(_, r)| r) {
            emit(&mut w, t, fields, true, &mut n)?;
        }
        if let Some((f, tree)) = &frame {
            let fields = frame_record(&f.tail, f.tail_width, tree)?;
            emit(&mut w, t, fields, false, &mut n)?;
        }
        if encodes_per_field(t.charset) {
            Ok(w.finish_bytes())
        } else {
            Ok(charset::encode(&w.finish(), t.charset, "CSV output")?)
        }
    }
}

/// A document's place in `file.order`: the index of its kind, unlisted kinds after them all.
fn rank(f: &FileFrame, tree: &Tree) -> usize {
    let kind = match tree {
        Tree::Json(doc) => doc.get("document").and_then(Value::as_str),
        _ => None,
    };
    kind.and_then(|k| f.order.iter().position(|o| o == k))
        .unwrap_or(f.order.len())
}

/// The values of `file.group_by` in a document.
fn group_key(f: &FileFrame, tree: &Tree) -> Vec<Option<String>> {
    f.group_by
        .iter()
        .map(|p| {
            tree.first_value(tree.root(), p)
                .map(|(v, _)| v.into_owned())
        })
        .collect()
}

/// The data records of one rendered document: its `records` items, each as wide as the
/// target's `columns` or, without them, as its rules' highest column.
fn records_of(t: &CsvTarget, out: &Out<'_>, into: &mut Vec<Vec<String>>) {
    let records = match out.get("records") {
        Some(Out::Arr(items)) => items.as_slice(),
        _ => &[],
    };
    for rec in records {
        let width = if t.fixed {
            t.columns
        } else {
            match rec.get(WIDTH_KEY) {
                Some(Out::Val(Value::String(w))) => w.parse().unwrap_or(t.columns),
                _ => t.columns,
            }
        };
        into.push(fields_of(rec, width));
    }
}

/// A record's columns 1..=`width` as texts (empty where no rule wrote one), then the texts of
/// its `"N.."` rule (N is `width + 1`, as the compiler checked), one column each.
fn fields_of(rec: &Out<'_>, width: usize) -> Vec<String> {
    let mut fields = vec![String::new(); width];
    if let Out::Obj(members) = rec {
        for (key, v) in members {
            if let Some(c) = column_of(key, width) {
                fields[c - 1] = field_text(v).into_owned();
            } else if let (Some(_), Out::Val(Value::Array(items))) = (compile::rest_column(key), v)
            {
                fields.extend(items.iter().map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }));
            }
        }
    }
    fields
}

/// Writes one record as record number `n + 1`: its number in the `record_number` column, its
/// columns quoted as the target says for a data record (`data`) or only where needed (a frame
/// record), each encoded in the target's charset.
fn emit(
    w: &mut CsvWriter,
    t: &CsvTarget,
    mut fields: Vec<String>,
    data: bool,
    n: &mut usize,
) -> Result<(), TranslateError> {
    *n += 1;
    let number = *n;
    if let Some(c) = t.record_number
        && let Some(f) = fields.get_mut(c)
    {
        *f = number.to_string();
    }
    let quoted = |i: usize| {
        data && (t.quoted.get(i).copied().unwrap_or(false) || t.quoted_from.is_some_and(|q| i >= q))
    };
    // Unencodable characters are refused with the record and column named.
    let context = |column: usize| move || format!("record {number}, column {}", column + 1);
    if encodes_per_field(t.charset) {
        w.write_record_with(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.as_str(), quoted(i))),
            |out, text, column| charset::encode_into(out, text, t.charset, context(column)),
        )?;
    } else {
        for (i, f) in fields.iter().enumerate() {
            charset::encode_in(f, t.charset, context(i))?;
        }
        w.write_record(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.as_str(), quoted(i))),
        );
    }
    Ok(())
}

/// Whether a CSV target's fields are written already encoded (a charset in which ASCII is
/// itself and a field encodes the same alone as within the file), instead of encoding the whole
/// file at the end (ISO-2022-JP, whose escape sequences span fields).
fn encodes_per_field(c: charset::Charset) -> bool {
    matches!(c, charset::Charset::Utf8 | charset::Charset::Ms932)
}

/// The CSV column (1-based) a record member names: its key read as a number, as the compiler
/// accepted it (so `"01"` is column 1), within the record's columns.
fn column_of(key: &str, columns: usize) -> Option<usize> {
    key.parse::<usize>()
        .ok()
        .filter(|c| (1..=columns).contains(c))
}

/// The text a record member is written as: a string as it is, null or nothing as an empty
/// field, anything else as its JSON.
fn field_text<'o>(v: &'o Out<'_>) -> Cow<'o, str> {
    match v {
        Out::Val(Value::String(s)) => Cow::Borrowed(s.as_str()),
        Out::Null | Out::Val(Value::Null) => Cow::Borrowed(""),
        Out::Val(other) => Cow::Owned(other.to_string()),
        other => Cow::Owned(other.to_value().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_of_reads_the_number_within_the_columns() {
        assert_eq!(column_of("1", 3), Some(1));
        assert_eq!(column_of("03", 3), Some(3));
        assert_eq!(column_of("0", 3), None, "the width member is no column");
        assert_eq!(column_of(WIDTH_KEY, 3), None);
        assert_eq!(column_of("4", 3), None);
        assert_eq!(column_of("records", 3), None);
        assert_eq!(column_of("", 3), None);
    }
}
