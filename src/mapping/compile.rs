//! Turns a mapping file into a plan: YAML → `spec` structs → checked, compiled `plan::Mapping`.
//! Every mistake is reported once, as `file:line:column: what is wrong`: unknown target field
//! (with the fields that exist there), unknown transform, missing table, type mismatch between a
//! constant/table/transform and the target field, bad path syntax, unknown `$` metadata.

use super::check_digit::IdRule;
use super::error::MappingError;
use super::plan::*;
use super::spec::{self, CondSpec, FileSpec, MappingSpec, Pairs, RuleSpec, SourceSpec, TargetSpec};
use super::transform::Transform;
use crate::canonical::{DocKind, schema_walk as sw};
use crate::formats::charset::Charset;
use crate::formats::csv::Quote;
use crate::formats::tree::{CsvPath, ParseOptions};
use crate::formats::{Format, Path};
use serde_json::Value;
use serde_saphyr::Spanned;
use std::path::Path as FsPath;

/// Metadata keys every source has.
const COMMON_META: &[&str] = &[
    "$file.name",
    "$file.stem",
    "$mapping.id",
    "$mapping.version",
];
/// Metadata of an item of an `each` with `bits`: the option's code and its character.
const BIT_META: &[&str] = &["$bit.option", "$bit.char"];
/// Metadata of an item of any `each`: its position among the items the `each` made, from 1.
const EACH_META: &[&str] = &["$each.position"];
/// Metadata of an outbound CSV file's frame records (`file.head`, `file.tail`): how many data
/// records and documents the file holds.
const FRAME_META: &[&str] = &["$file.records", "$file.documents"];
/// The most columns a record of an outbound CSV target without `columns: N` may have.
const MAX_CSV_COLUMNS: usize = 1024;
/// Metadata keys from a ケアプラン CSV file name.
const CAREPLAN_META: &[&str] = &[
    "$file.prefix",
    "$file.month",
    "$file.from_office",
    "$file.from_service_type",
    "$file.to_office",
    "$file.to_service_type",
    "$file.timestamp",
];

/// Reads and compiles one mapping file.
pub fn load_file(path: &FsPath) -> Result<Mapping, MappingError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MappingError::at(path, 0, 0, format!("cannot read the mapping file: {e}")))?;
    compile_str(&text, path)
}

/// Compiles mapping text; `file` names it in errors and anchors relative test paths.
pub fn compile_str(text: &str, file: &FsPath) -> Result<Mapping, MappingError> {
    let spec: MappingSpec = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((0, 0));
        MappingError::at(file, line, column, yaml_message(&e.to_string()))
    })?;
    Compiler { file }.mapping(spec)
}

fn yaml_message(full: &str) -> String {
    let first = full.lines().next().unwrap_or(full);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // serde-saphyr's hint names a Rust option; integrators need the YAML fix instead.
    let first = first
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(first);
    if let Some(key) = first.split("duplicate mapping key: ").nth(1) {
        return format!(
            "`{key}` appears twice in the same map; each target, table and code may appear once (use `[+label]` to append to an array from two rules)"
        );
    }
    // Drop serde-saphyr's own "line N column M: " prefix; we print file:line:column.
    match first.find(": ") {
        Some(i) if first.starts_with("line ") => first[i + 2..].to_string(),
        _ => first.to_string(),
    }
}

struct Compiler<'f> {
    file: &'f FsPath,
}

/// What a rule's target resolves to.
enum Slot<'s> {
    /// A canonical schema node.
    Schema(&'s Value, &'s Value),
    /// An outbound FHIR JSON tree: anything goes.
    Free,
    /// An outbound CSV record: numbered columns.
    CsvRecord(usize),
    /// The top of an outbound CSV mapping: only `records[+]`; whether every record has the
    /// target's `columns` (else each is as wide as the highest column its rules name).
    CsvTop(usize, bool),
}

impl<'f> Compiler<'f> {
    fn err<T>(&self, s: &Spanned<T>, msg: impl Into<String>) -> MappingError {
        MappingError::at(
            self.file,
            s.referenced.line() as u32,
            s.referenced.column() as u32,
            msg,
        )
    }

    fn loc<T>(&self, s: &Spanned<T>) -> Loc {
        Loc {
            file: self.file.to_path_buf(),
            line: s.referenced.line() as u32,
            column: s.referenced.column() as u32,
        }
    }

    fn mapping(&self, spec: MappingSpec) -> Result<Mapping, MappingError> {
        let src = &spec.source.value;
        let format = Format::parse(&src.format.value).ok_or_else(|| {
            self.err(
                &src.format,
                format!(
                    "unknown source format `{}`: use hl7v2, fhir, xml, csv or canonical",
                    src.format.value
                ),
            )
        })?;
        let namespaces: Vec<(String, String)> = src
            .namespaces
            .0
            .iter()
            .map(|(k, v)| (k.value.clone(), v.clone()))
            .collect();
        let mut parse = ParseOptions::default();
        if let Some(cs) = &src.charset {
            let charset = Charset::parse(cs).ok_or_else(|| {
                self.err(
                    &spec.source,
                    format!("unknown charset `{cs}`: use ms932, utf-8 or iso-2022-jp"),
                )
            })?;
            parse.csv.charset = Some(charset);
        }
        if let Some(h) = src.header {
            parse.csv.header = h;
        }
        if let Some(n) = src.skip {
            parse.csv.skip = n;
        }
        let columns = src.columns;
        if columns == Some(0) {
            return Err(self.err(
                &spec.source,
                "`columns: 0`: a record has at least one field; give the layout's number of fields",
            ));
        }
        if let Some(q) = &src.quote {
            parse.csv.quote = match q.value.as_str() {
                "\"" => Quote::Double,
                "none" => Quote::None,
                other => {
                    return Err(self.err(
                        q,
                        format!("quote `{other}`: use '\"' (the default, RFC 4180 quoting) or none (no quoting: `\"` is data)"),
                    ));
                }
            };
        }
        let file_name = match src.file_name.as_deref() {
            None => None,
            Some("careplan") => Some(FileNameConvention::Careplan),
            Some(other) => {
                return Err(self.err(
                    &spec.source,
                    format!("unknown file_name convention `{other}`: the known one is `careplan`"),
                ));
            }
        };
        let ctx = Ctx {
            format,
            namespaces: &namespaces,
            careplan_meta: file_name.is_some(),
            bit_meta: false,
            each_meta: false,
            frame_meta: false,
            record_number: 0,
            inbound: false,
        };
        let mut matches = Vec::new();
        for (key, values) in &src.match_.0 {
            matches.push(self.cond(&ctx, key, values)?);
        }
        let file_checks = self.file_checks(&ctx, src)?;

        let target = match &spec.target.value {
            TargetSpec::Document(name) => {
                Target::Document(DocKind::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = crate::canonical::ALL.iter().map(|k| k.name()).collect();
                    self.err(
                        &spec.target,
                        format!(
                            "unknown target document `{name}`; known: {}",
                            known.join(", ")
                        ),
                    )
                })?)
            }
            TargetSpec::Format(out) => match out.format.as_str() {
                "fhir" => Target::Fhir,
                "csv" => {
                    let fixed = out.columns.is_some();
                    let columns = out.columns.unwrap_or(MAX_CSV_COLUMNS);
                    let within =
                        |what: &str, c: Option<usize>| match c {
                            Some(c) if c == 0 || c > columns => Err(self
                                .err(&spec.target, format!("{what} {c} is outside 1..={columns}"))),
                            c => Ok(c.map(|c| c - 1)),
                        };
                    let quoted_from = within("quoted_from column", out.quoted_from)?;
                    let record_number = within("record_number column", out.record_number)?;
                    let mut quoted = vec![false; columns];
                    for &q in &out.quoted {
                        if q == 0 || q > columns {
                            return Err(self.err(
                                &spec.target,
                                format!("quoted column {q} is outside 1..={columns}"),
                            ));
                        }
                        quoted[q - 1] = true;
                    }
                    let charset = match &out.charset {
                        None => Charset::Ms932,
                        Some(c) => Charset::parse(c).ok_or_else(|| {
                            self.err(&spec.target, format!("unknown charset `{c}`"))
                        })?,
                    };
                    let line_ending = match out.line_ending.as_deref() {
                        None | Some("crlf") => "\r\n",
                        Some("lf") => "\n",
                        Some(o) => {
                            return Err(self
                                .err(&spec.target, format!("line_ending `{o}`: use crlf or lf")));
                        }
                    };
                    Target::Csv(CsvTarget {
                        columns,
                        fixed,
                        quoted,
                        quoted_from,
                        record_number,
                        charset,
                        line_ending,
                    })
                }
                other => {
                    return Err(self.err(
                        &spec.target,
                        format!("unknown outbound format `{other}`: use fhir or csv"),
                    ));
                }
            },
        };

        self.subject_rule(&spec, &target)?;

        let mut tables = Vec::new();
        for (name, entries) in &spec.tables.0 {
            let mut t = Table {
                name: name.value.clone(),
                entries: Vec::new(),
                fallback: None,
            };
            for (k, v) in &entries.0 {
                if k.value == "_default" {
                    t.fallback = Some(v.clone());
                } else if t.entries.iter().any(|(e, _)| *e == k.value) {
                    return Err(self.err(
                        k,
                        format!("code `{}` appears twice in table `{}`", k.value, name.value),
                    ));
                } else {
                    t.entries.push((k.value.clone(), v.clone()));
                }
            }
            if tables.iter().any(|x: &Table| x.name == t.name) {
                return Err(self.err(name, format!("table `{}` is defined twice", name.value)));
            }
            tables.push(t);
        }

        let documents = match &spec.documents {
            None => None,
            Some(d) => {
                let each = d
                    .value
                    .each
                    .0
                    .iter()
                    .map(|p| compile_path(&ctx, p).map_err(|e| self.err(d, e)))
                    .collect::<Result<Vec<_>, _>>()?;
                let group_by = d
                    .value
                    .group_by
                    .iter()
                    .map(|p| compile_path(&ctx, p).map_err(|e| self.err(d, e)))
                    .collect::<Result<Vec<_>, _>>()?;
                let when = self.conds(&ctx, Some(&d.value.when))?;
                let head = self.conds(&ctx, Some(&d.value.head))?;
                let members = self.conds(&ctx, Some(&d.value.members))?;
                let frame = self.conds(&ctx, Some(&d.value.frame))?;
                Some(Documents {
                    each,
                    group_by,
                    when,
                    head,
                    members,
                    frame,
                    loc: self.loc(d),
                })
            }
        };

        let schema = match &target {
            Target::Document(k) => Some(k.schema()),
            _ => None,
        };
        let top = match (&target, &schema) {
            (Target::Document(_), Some(s)) => Slot::Schema(s, s),
            (Target::Csv(c), _) => Slot::CsvTop(c.columns, c.fixed),
            _ => Slot::Free,
        };
        let ctx = Ctx {
            record_number: match &target {
                Target::Csv(c) => c.record_number.map_or(0, |n| n + 1),
                _ => 0,
            },
            inbound: matches!(target, Target::Document(_)),
            ..ctx
        };
        let steps = self.steps(&ctx, &tables, &spec.fields, &top, "")?;
        let file = match (&spec.file, &target) {
            (None, _) => None,
            (Some(f), Target::Csv(c)) => Some(self.frame(&ctx, &tables, f, c.columns)?),
            (Some(f), _) => {
                return Err(self.err(
                    f,
                    "`file:` frames an outbound CSV file; this mapping does not write CSV",
                ));
            }
        };

        let dir = self.file.parent().unwrap_or(FsPath::new("."));
        let tests = spec
            .tests
            .iter()
            .map(|t| TestCase {
                input: dir.join(&t.value.input),
                expect: dir.join(&t.value.expect),
                file_name: t.value.file_name.clone(),
                loc: self.loc(t),
            })
            .collect();

        let source_loc = self.loc(&spec.source);
        let m =
            Mapping {
                id: spec.id.value.clone(),
                version: spec.version,
                description: spec.description.clone().unwrap_or_default(),
                loc: self.loc(&spec.id),
                source: Source {
                    format,
                    parse,
                    file_name,
                    matches,
                    columns,
                    file_checks,
                    loc: source_loc.clone(),
                },
                category: spec.category.as_ref().map(|c| c.value.clone()).or_else(
                    || match &target {
                        Target::Document(k) => Some(k.category().to_string()),
                        _ => None,
                    },
                ),
                target,
                documents,
                file,
                steps,
                tables,
                tests,
            };
        super::columns::check_header_is_read(&m, &source_loc)?;
        Ok(m)
    }

    /// `source.record_number`, `source.count` and `source.last`: CSV only.
    fn file_checks(&self, ctx: &Ctx, src: &SourceSpec) -> Result<FileChecks, MappingError> {
        let csv_only = |what: &str| {
            format!(
                "`source.{what}` checks a CSV file's account of itself; this mapping reads {}",
                ctx.format.name()
            )
        };
        let mut checks = FileChecks::default();
        if let Some(n) = &src.record_number {
            if ctx.format != Format::Csv {
                return Err(self.err(n, csv_only("record_number")));
            }
            if n.value == 0 {
                return Err(self.err(n, "`source.record_number`: CSV columns are numbered from 1"));
            }
            checks.record_number = Some(n.value - 1);
        }
        if let Some(c) = &src.count {
            if ctx.format != Format::Csv {
                return Err(self.err(c, csv_only("count")));
            }
            let path = compile_path(ctx, &c.value.from)
                .map_err(|e| self.err(c, format!("source.count: {e}")))?;
            let of = self.conds(ctx, Some(&c.value.of))?;
            checks.count = Some((path, c.value.from.clone(), of));
        }
        if !src.last.0.is_empty() {
            if ctx.format != Format::Csv {
                let (k, _) = &src.last.0[0];
                return Err(self.err(k, csv_only("last")));
            }
            checks.last = self.conds(ctx, Some(&src.last))?;
        }
        Ok(checks)
    }

    /// `subject: none` says the documents carry no person. A mapping may say it only of a kind
    /// that has no subject (so it can never switch consent off for a person's document), and
    /// must say it of such a kind (explicit beats implicit).
    fn subject_rule(&self, spec: &MappingSpec, target: &Target) -> Result<(), MappingError> {
        let kind = match target {
            Target::Document(k) => Some(*k),
            _ => None,
        };
        match (&spec.subject, kind) {
            (Some(s), _) if s.value != "none" => Err(self.err(
                s,
                format!(
                    "subject `{}`: the only value is `none` (the documents carry no person); a document's person is written with `subject.*` rules",
                    s.value
                ),
            )),
            (Some(s), None) => Err(self.err(
                s,
                "`subject: none` is for inbound mappings: an outbound mapping renders the documents it is given",
            )),
            (Some(s), Some(k)) if k.carries_subject() => Err(self.err(
                s,
                format!(
                    "`subject: none`, but {} is about a person: its documents are admitted and delivered only with that person's consent, which no mapping can switch off; remove `subject: none`",
                    k.name()
                ),
            )),
            (None, Some(k)) if !k.carries_subject() => Err(self.err(
                &spec.target,
                format!(
                    "{} carries no person: say so with `subject: none` at the top of the mapping (its documents then go without subject or consent checks)",
                    k.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn cond(
        &self,
        ctx: &Ctx,
        key: &Spanned<String>,
        values: &CondSpec,
    ) -> Result<Cond, MappingError> {
        let src = compile_src(ctx, &key.value).map_err(|e| self.err(key, e))?;
        let test = match values {
            CondSpec::Pattern(p) => CondTest::Pattern(regex_lite::Regex::new(p).map_err(|e| {
                self.err(
                    key,
                    format!("pattern `{p}` is not a valid regular expression: {e}"),
                )
            })?),
            CondSpec::Values(v) => match v.0.as_slice() {
                [v] if v == "*" => CondTest::Present(true),
                [v] if v.is_empty() => CondTest::Present(false),
                vs => CondTest::AnyOf(vs.to_vec()),
            },
        };
        Ok(Cond { src, test })
    }

    fn steps(
        &self,
        ctx: &Ctx,
        tables: &[Table],
        fields: &Pairs<Spanned<RuleSpec>>,
        slot: &Slot,
        prefix: &str,
    ) -> Result<Vec<Step>, MappingError> {
        let mut steps: Vec<Step> = Vec::new();
        // CSV columns written so far in this record, by number ("1" and "01" are one column).
        let mut columns: Vec<(usize, &str)> = Vec::new();
        for (key, rule) in &fields.0 {
            let full = format!("{prefix}{}", key.value);
            if steps.iter().any(|s| s.name == full) {
                return Err(self.err(key, format!("target `{}` is mapped twice", key.value)));
            }
            if let (Slot::CsvRecord(_), Some(_)) = (slot, rest_column(&key.value)) {
                steps.push(self.rest_step(ctx, tables, &full, key, rule)?);
                continue;
            }
            let target = parse_target(&key.value).map_err(|e| self.err(key, e))?;
            let resolved = self
                .resolve_target(slot, &target, &key.value)
                .map_err(|e| self.err(key, e))?;
            if let (Slot::CsvRecord(_), Ok(n)) = (slot, key.value.parse::<usize>()) {
                if let Some((_, first)) = columns.iter().find(|(c, _)| *c == n) {
                    return Err(self.err(
                        key,
                        format!(
                            "csv column {n} is mapped twice (`{first}` and `{}`)",
                            key.value
                        ),
                    ));
                }
                columns.push((n, key.value.as_str()));
            }
            let r = &rule.value;
            let kind = if let Some(each) = &r.each {
                let Resolved::Array(item_slot) = resolved else {
                    return Err(self.err(
                        key,
                        format!("`{}` repeats (`each`), so its target must end in `[+]` on an array field", key.value),
                    ));
                };
                if r.from.is_some() || r.constant.is_some() || r.join.is_some() {
                    return Err(self.err(
                        rule,
                        "a rule with `each` takes `fields`, not from/const/join",
                    ));
                }
                let select = each
                    .0
                    .iter()
                    .map(|p| {
                        compile_src(ctx, p)
                            .map_err(|e| self.err(rule, format!("rule `{}`: {e}", key.value)))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let when = self.conds(ctx, r.when.as_ref())?;
                let Some(fields) = &r.fields else {
                    return Err(self.err(rule, "a rule with `each` needs `fields:` for each item"));
                };
                let bits = match &r.bits {
                    None => None,
                    Some(b) => Some(
                        bits(b, r, &Leaf::String, true)
                            .map_err(|e| self.err(rule, format!("rule `{}`: {e}", key.value)))?,
                    ),
                };
                let inner = Ctx {
                    bit_meta: bits.is_some(),
                    each_meta: true,
                    ..*ctx
                };
                let mut steps =
                    self.steps(&inner, tables, fields, &item_slot, &format!("{full}."))?;
                if let (Slot::CsvTop(cols, true), Some((at, _))) = (slot, rest_of(&steps)) {
                    return Err(self.err(
                        rule,
                        format!("rule `{full}`: `\"{at}..\"` writes columns after the last, but every record of this target has `columns: {cols}`; drop `columns` from the target to let records grow"),
                    ));
                }
                match (slot, r.columns) {
                    (Slot::CsvTop(cols, false), Some(n)) if n == 0 || n > *cols => {
                        return Err(self.err(
                            rule,
                            format!("rule `{full}`: `columns: {n}` is outside 1..={cols}"),
                        ));
                    }
                    (Slot::CsvTop(_, false), n) => {
                        let named = widest(&steps).max(ctx.record_number);
                        if let Some(n) = n.filter(|n| *n < named) {
                            return Err(self.err(
                                rule,
                                format!("rule `{full}`: `columns: {n}`, but its rules write column {named}"),
                            ));
                        }
                        let width = n.unwrap_or(named);
                        if let Some((at, _)) = rest_of(&steps).filter(|(at, _)| *at != width + 1) {
                            return Err(self.err(
                                rule,
                                format!("rule `{full}`: `\"{at}..\"` must follow the record's last column, {width}: write it as `\"{}..\"`", width + 1),
                            ));
                        }
                        steps.push(width_step(&full, self.loc(rule), width));
                    }
                    (_, Some(_)) => {
                        return Err(self.err(
                            rule,
                            format!("rule `{full}`: `columns` is for the `records[+]` rules of a csv target without `columns: N`"),
                        ));
                    }
                    _ => {}
                }
                StepKind::Each {
                    select,
                    when,
                    steps,
                    required: r.required,
                    bits,
                }
            } else {
                if target.contains(&TSeg::Append) {
                    return Err(self.err(
                        key,
                        format!("`{}`: `[+]` appends an item, so it belongs on an `each` rule's target (e.g. `identifiers[+]: {{ each: …, fields: {{ … }} }}`)", key.value),
                    ));
                }
                let mut unpack = false;
                let mut list = false;
                if let Some(t) = &r.as_type
                    && !matches!((slot, &resolved), (Slot::Free, Resolved::Leaf(_)))
                {
                    return Err(self.err(
                        rule,
                        format!("rule `{full}`: `as: {t}` is for outbound FHIR fields, which have no schema; here the target's type comes from the schema"),
                    ));
                }
                let leaf = match resolved {
                    Resolved::Leaf(_) if r.as_type.is_some() => match r.as_type.as_deref() {
                        Some("number") => Leaf::Number,
                        Some("integer") => Leaf::Integer,
                        Some("boolean") => Leaf::Boolean,
                        Some("text") => Leaf::String,
                        Some(other) => {
                            return Err(self.err(
                                    rule,
                                    format!("rule `{full}`: `as: {other}` is not a type; write `number`, `integer`, `boolean` or `text`"),
                                ));
                        }
                        None => Leaf::String,
                    },
                    // Outbound FHIR has no schema here: `const: "true"`/`"false"` are booleans.
                    Resolved::Leaf(_)
                        if matches!(slot, Slot::Free)
                            && matches!(r.constant.as_deref(), Some("true" | "false")) =>
                    {
                        Leaf::Boolean
                    }
                    Resolved::Leaf(l) => l,
                    Resolved::Array(Slot::Schema(root, items)) if r.bits.is_some() => {
                        unpack = true;
                        match sw::shape(root, items) {
                            sw::Shape::String(None) | sw::Shape::Any => Leaf::String,
                            sw::Shape::String(Some(v)) => Leaf::Enum(v),
                            other => {
                                return Err(self.err(
                                    key,
                                    format!(
                                        "`{}`: `bits` fills a list of codes, but its items are {}",
                                        key.value,
                                        other.describe()
                                    ),
                                ));
                            }
                        }
                    }
                    // A list of plain values (codes, texts, numbers): every value the rule's
                    // source selects, one item each.
                    Resolved::Array(Slot::Schema(root, items))
                        if r.constant.is_none()
                            && r.join.is_none()
                            && r.default.is_none()
                            && sw::shape(root, items).is_scalar() =>
                    {
                        list = true;
                        match sw::shape(root, items) {
                            sw::Shape::String(Some(v)) => Leaf::Enum(v),
                            sw::Shape::Integer => Leaf::Integer,
                            sw::Shape::Number => Leaf::Number,
                            sw::Shape::Boolean => Leaf::Boolean,
                            _ => Leaf::String,
                        }
                    }
                    Resolved::Array(_) => {
                        return Err(self.err(
                            key,
                            format!(
                                "`{}` is an array: map its items with `each:` and `fields:`",
                                key.value
                            ),
                        ));
                    }
                    Resolved::Object(names) => {
                        return Err(self.err(
                            key,
                            format!(
                                "`{}` is an object: map its fields ({}) instead",
                                key.value,
                                names.join(", ")
                            ),
                        ));
                    }
                };
                let mut value = self.value_rule(ctx, tables, &full, rule, leaf, unpack)?;
                value.list = list;
                StepKind::Value(Box::new(value))
            };
            steps.push(Step {
                name: full,
                loc: self.loc(key),
                target,
                kind,
            });
        }
        Ok(steps)
    }

    /// `file:` of an outbound CSV target: its grouping paths and its head and tail records.
    fn frame(
        &self,
        ctx: &Ctx,
        tables: &[Table],
        f: &Spanned<FileSpec>,
        columns: usize,
    ) -> Result<FileFrame, MappingError> {
        let frame_ctx = Ctx {
            frame_meta: true,
            ..*ctx
        };
        let group_by = f
            .value
            .group_by
            .iter()
            .map(|p| compile_path(ctx, p).map_err(|e| self.err(f, format!("file.group_by: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let slot = Slot::CsvRecord(columns);
        let head = self.steps(&frame_ctx, tables, &f.value.head, &slot, "file.head.")?;
        let tail = self.steps(&frame_ctx, tables, &f.value.tail, &slot, "file.tail.")?;
        if let Some((at, _)) = rest_of(&head).or(rest_of(&tail)) {
            return Err(self.err(
                f,
                format!("file: `\"{at}..\"` is for the records of the documents (`records[+]`), not the frame's"),
            ));
        }
        Ok(FileFrame {
            group_by,
            head_width: widest(&head).max(ctx.record_number),
            tail_width: widest(&tail).max(ctx.record_number),
            head,
            tail,
            order: f.value.order.clone(),
            loc: self.loc(f),
        })
    }

    /// A `when:`-style map of conditions compiled; none when it is absent.
    fn conds(&self, ctx: &Ctx, when: Option<&Pairs<CondSpec>>) -> Result<Vec<Cond>, MappingError> {
        when.map(|w| w.0.iter().map(|(k, v)| self.cond(ctx, k, v)).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    fn value_rule(
        &self,
        ctx: &Ctx,
        tables: &[Table],
        name: &str,
        rule: &Spanned<RuleSpec>,
        leaf: Leaf,
        unpack: bool,
    ) -> Result<ValueRule, MappingError> {
        let r = &rule.value;
        let bad = |msg: String| self.err(rule, format!("rule `{name}`: {msg}"));
        let bits = match &r.bits {
            None => None,
            Some(b) => Some(bits(b, r, &leaf, unpack).map_err(bad)?),
        };
        if r.fields.is_some() {
            return Err(bad("`fields` needs `each`".into()));
        }
        if r.columns.is_some() {
            return Err(bad(
                "`columns` says how wide the records of a `records[+]` rule are; a value has none"
                    .into(),
            ));
        }
        let mut sources = match &r.from {
            Some(list) => list
                .0
                .iter()
                .map(|p| compile_src(ctx, p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?,
            None => Vec::new(),
        };
        if let Some(p) = &r.sum {
            sources.push(Src::Sum(compile_path(ctx, p).map_err(bad)?, p.clone()));
        }
        let join = match &r.join {
            Some(list) => Some((
                list.0
                    .iter()
                    .map(|p| compile_src(ctx, p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?,
                r.sep.clone().unwrap_or_else(|| " ".into()),
            )),
            None => None,
        };
        let given = [!sources.is_empty() || join.is_some(), r.constant.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given == 0 && r.default.is_none() {
            return Err(bad(
                "no value: give `from`, `join`, `const` or `default`".into()
            ));
        }
        if given > 1 {
            return Err(bad(
                "`const` cannot be combined with `from` or `join`".into()
            ));
        }
        let transforms = r
            .then
            .iter()
            .map(Transform::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let lookup = match &r.lookup {
            None => None,
            Some(t) => {
                let idx = tables.iter().position(|x| x.name == *t).ok_or_else(|| {
                    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
                    bad(format!(
                        "lookup table `{t}` is not defined under `tables:` (defined: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })?;
                let fallback = tables[idx]
                    .fallback
                    .as_ref()
                    .map(|f| ("_default".to_string(), f.clone()));
                for (code, v) in tables[idx].entries.iter().chain(fallback.iter()) {
                    coerce(v, &leaf).map_err(|e| {
                        bad(format!(
                            "table `{t}` maps `{code}` to `{v}`, but the target {e}"
                        ))
                    })?;
                }
                Some(idx)
            }
        };
        let non_text = matches!(
            leaf,
            Leaf::Integer | Leaf::Number | Leaf::Boolean | Leaf::Enum(_)
        );
        if let Some(t) = transforms
            .iter()
            .rev()
            .find(|t| t.makes_temporal())
            .filter(|_| lookup.is_none() && non_text)
        {
            return Err(bad(format!(
                "transform `{}` makes a date or time, but the target is {}",
                t.name(),
                leaf_name(&leaf)
            )));
        }
        let constant = match &r.constant {
            Some(c) => {
                Some(coerce(c, &leaf).map_err(|e| bad(format!("const `{c}`: the target {e}")))?)
            }
            None => None,
        };
        let default = match &r.default {
            Some(c) => {
                Some(coerce(c, &leaf).map_err(|e| bad(format!("default `{c}`: the target {e}")))?)
            }
            None => None,
        };
        let pattern = match &r.pattern {
            Some(p) => Some(regex_lite::Regex::new(p).map_err(|e| {
                bad(format!(
                    "pattern `{p}` is not a valid regular expression: {e}"
                ))
            })?),
            None => None,
        };
        let check = match &r.check {
            Some(c) => Some(IdRule::parse(c).map_err(bad)?),
            None => None,
        };
        let when = self.conds(ctx, r.when.as_ref())?;
        if r.warn.is_some() && !ctx.inbound {
            return Err(bad(
                "`warn` reports what an inbound mapping finds in its input; an outbound mapping has only canonical documents".into(),
            ));
        }
        let keep_empty = sources
            .iter()
            .any(|s| matches!(s, Src::Path(Path::Csv(CsvPath::From(_)), _)));
        Ok(ValueRule {
            sources,
            join,
            constant,
            transforms,
            lookup,
            bits,
            default,
            required: r.required,
            pattern,
            check,
            when,
            leaf,
            list: false,
            keep_empty,
            warn: r.warn.clone(),
        })
    }

    /// `"59..": path` in a CSV record: the texts `path` selects, one column each from 59 on,
    /// empty ones kept in their places (the fields of a later interface revision, written back
    /// where they were read).
    fn rest_step(
        &self,
        ctx: &Ctx,
        tables: &[Table],
        full: &str,
        key: &Spanned<String>,
        rule: &Spanned<RuleSpec>,
    ) -> Result<Step, MappingError> {
        let r = &rule.value;
        if r.each.is_some() || r.constant.is_some() || r.join.is_some() || r.sum.is_some() {
            return Err(self.err(
                rule,
                format!("rule `{full}`: a `\"N..\"` column takes `from` (a list of texts), not each/const/join/sum"),
            ));
        }
        let mut value = self.value_rule(ctx, tables, full, rule, Leaf::String, false)?;
        value.list = true;
        value.keep_empty = true;
        Ok(Step {
            name: full.to_string(),
            loc: self.loc(key),
            target: vec![TSeg::Key(key.value.clone())],
            kind: StepKind::Value(Box::new(value)),
        })
    }

    fn resolve_target<'s>(
        &self,
        slot: &Slot<'s>,
        target: &[TSeg],
        written: &str,
    ) -> Result<Resolved<'s>, String> {
        match slot {
            Slot::Free => Ok(match target.last() {
                Some(TSeg::Append) => Resolved::Array(Slot::Free),
                _ => Resolved::Leaf(Leaf::String),
            }),
            Slot::CsvTop(cols, _) => match target {
                [TSeg::Key(k), TSeg::Append] if k == "records" => {
                    Ok(Resolved::Array(Slot::CsvRecord(*cols)))
                }
                _ => Err(format!(
                    "a csv target is written as `records[+]: {{ each: …, fields: {{ \"1\": …, \"2\": … }} }}`; `{written}` is not that"
                )),
            },
            Slot::CsvRecord(cols) => match target {
                [TSeg::Key(k)] => match k.parse::<usize>() {
                    Ok(n) if n >= 1 && n <= *cols => Ok(Resolved::Leaf(Leaf::String)),
                    _ => Err(format!(
                        "csv column `{k}` must be a number from 1 to {cols}"
                    )),
                },
                _ => Err(format!("csv column `{written}` must be a plain number")),
            },
            Slot::Schema(root, start) => {
                let mut node: &Value = start;
                let mut walked = String::new();
                let mut i = 0;
                while i < target.len() {
                    match &target[i] {
                        TSeg::Key(k) => {
                            if walked.is_empty() && k == "document" {
                                return Err("`document` is set by kaigo-hub from `target:`".into());
                            }
                            node = sw::property(root, node, k).ok_or_else(|| {
                                let names = sw::property_names(root, node);
                                let under = if walked.is_empty() { String::new() } else { format!(" under `{walked}`") };
                                format!(
                                    "unknown field `{k}`{under} in the target document (fields there: {})",
                                    names.join(", ")
                                )
                            })?;
                            if !walked.is_empty() {
                                walked.push('.');
                            }
                            walked.push_str(k);
                        }
                        TSeg::Index(_) | TSeg::Append => {
                            if sw::shape(root, node) != sw::Shape::Array {
                                return Err(format!("`{walked}` is not an array; drop the `[..]`"));
                            }
                            let items = sw::items(root, node)
                                .ok_or_else(|| format!("`{walked}` has no item schema"))?;
                            if matches!(target[i], TSeg::Append) && i == target.len() - 1 {
                                return Ok(Resolved::Array(Slot::Schema(root, items)));
                            }
                            node = items;
                        }
                    }
                    i += 1;
                }
                Ok(match sw::shape(root, node) {
                    sw::Shape::Object => Resolved::Object(sw::property_names(root, node)),
                    sw::Shape::Array => Resolved::Array(Slot::Schema(
                        root,
                        sw::items(root, node)
                            .ok_or_else(|| format!("`{walked}` has no item schema"))?,
                    )),
                    sw::Shape::String(None) | sw::Shape::Any => Resolved::Leaf(Leaf::String),
                    sw::Shape::String(Some(v)) => Resolved::Leaf(Leaf::Enum(v)),
                    sw::Shape::Integer => Resolved::Leaf(Leaf::Integer),
                    sw::Shape::Number => Resolved::Leaf(Leaf::Number),
                    sw::Shape::Boolean => Resolved::Leaf(Leaf::Boolean),
                })
            }
        }
    }
}

enum Resolved<'s> {
    Leaf(Leaf),
    Array(Slot<'s>),
    Object(Vec<String>),
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    format: Format,
    namespaces: &'a [(String, String)],
    careplan_meta: bool,
    /// Inside an `each` with `bits`: `$bit.option` and `$bit.char` name the item.
    bit_meta: bool,
    /// Inside any `each`: `$each.position` numbers the item.
    each_meta: bool,
    /// In an outbound CSV file's frame records: `$file.records`, `$file.documents`.
    frame_meta: bool,
    /// Outbound CSV: the 1-based column that holds the record number (0: none), which makes a
    /// record at least that wide.
    record_number: usize,
    /// The mapping makes canonical documents (`warn:` is for those).
    inbound: bool,
}

/// `59` of a CSV record's `"59.."` key (the columns from 59 on).
pub(crate) fn rest_column(key: &str) -> Option<usize> {
    key.strip_suffix("..")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
}

/// The `"N.."` rule of a record's steps, with its N.
fn rest_of(steps: &[Step]) -> Option<(usize, &Step)> {
    steps.iter().find_map(|s| match s.target.as_slice() {
        [TSeg::Key(k)] => rest_column(k).map(|n| (n, s)),
        _ => None,
    })
}

/// The highest CSV column (1-based) a record's rules name.
fn widest(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter_map(|s| match s.target.as_slice() {
            [TSeg::Key(k)] => k.parse::<usize>().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The hidden member of a CSV record that says how wide it is ([`WIDTH_KEY`]): a constant.
fn width_step(record: &str, loc: Loc, width: usize) -> Step {
    Step {
        name: format!("{record}.(width)"),
        loc,
        target: vec![TSeg::Key(WIDTH_KEY.to_string())],
        kind: StepKind::Value(Box::new(ValueRule {
            sources: Vec::new(),
            join: None,
            constant: Some(Value::String(width.to_string())),
            transforms: Vec::new(),
            lookup: None,
            bits: None,
            default: None,
            required: false,
            pattern: None,
            check: None,
            when: Vec::new(),
            leaf: Leaf::String,
            list: false,
            keep_empty: false,
            warn: None,
        })),
    }
}

fn compile_path(ctx: &Ctx, p: &str) -> Result<Path, String> {
    Path::compile(ctx.format, p, ctx.namespaces).map_err(|e| format!("path `{p}`: {e}"))
}

fn compile_src(ctx: &Ctx, p: &str) -> Result<Src, String> {
    if p == "@group" {
        return Ok(Src::Group);
    }
    if p.starts_with('$') {
        let known = COMMON_META.contains(&p)
            || (ctx.careplan_meta && CAREPLAN_META.contains(&p))
            || (ctx.bit_meta && BIT_META.contains(&p))
            || (ctx.each_meta && EACH_META.contains(&p))
            || (ctx.frame_meta && FRAME_META.contains(&p));
        if !known {
            let mut all: Vec<&str> = COMMON_META.to_vec();
            if ctx.careplan_meta {
                all.extend(CAREPLAN_META);
            }
            if ctx.bit_meta {
                all.extend(BIT_META);
            }
            if ctx.each_meta {
                all.extend(EACH_META);
            }
            if ctx.frame_meta {
                all.extend(FRAME_META);
            }
            let hint = if CAREPLAN_META.contains(&p) {
                " (set `source.file_name: careplan` to parse ケアプラン file names)"
            } else if BIT_META.contains(&p) {
                " (only inside an `each` with `bits`)"
            } else if EACH_META.contains(&p) {
                " (only inside an `each`)"
            } else if FRAME_META.contains(&p) {
                " (only in `file.head` and `file.tail`)"
            } else {
                ""
            };
            return Err(format!(
                "unknown metadata `{p}`{hint}; known here: {}",
                all.join(", ")
            ));
        }
        return Ok(Src::Meta(p.to_string()));
    }
    Ok(Src::Path(compile_path(ctx, p)?, p.to_string()))
}

/// Parses a target key: `a.b`, `a[0].b`, `a[]`, `a[+]`, `a[+label]`.
fn parse_target(s: &str) -> Result<Vec<TSeg>, String> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Err("empty target".into());
    }
    for part in s.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(format!("target `{s}` has an empty step"));
        }
        out.push(TSeg::Key(key.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("target `{s}`: unclosed `[`"))?;
            let inner = &r[..end];
            if inner.is_empty() || inner.starts_with('+') {
                out.push(TSeg::Append);
            } else {
                let n = inner.parse::<usize>().map_err(|_| {
                    format!("target `{s}`: `[{inner}]` must be an index, `[]` or `[+label]`")
                })?;
                out.push(TSeg::Index(n));
            }
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("target `{s}`: unexpected `{rest}`"));
        }
    }
    Ok(out)
}

/// Compiles `bits:` for a target of type `leaf`: the items of a list (`unpack`) or text.
fn bits(b: &spec::BitsSpec, r: &RuleSpec, leaf: &Leaf, unpack: bool) -> Result<Bits, String> {
    if !unpack && *leaf != Leaf::String {
        return Err(format!(
            "`bits` makes a list of codes (for an array field) or a bit string (for text), but the target is {}",
            leaf_name(leaf)
        ));
    }
    let clash = [
        ("const", r.constant.is_some()),
        ("lookup", r.lookup.is_some()),
        ("default", r.default.is_some()),
        ("check", r.check.is_some()),
        ("pattern", r.pattern.is_some()),
        ("join", r.join.is_some()),
    ];
    if let Some((k, _)) = clash.iter().find(|(_, given)| *given) {
        return Err(format!("`bits` cannot be combined with `{k}`"));
    }
    if !unpack && !r.then.is_empty() {
        return Err("`bits` writing a bit string takes the codes as they are: drop `then`".into());
    }
    if b.options.is_empty() {
        return Err("`bits` needs its options, one per character: `bits: [a, b, c]`".into());
    }
    for (i, o) in b.options.iter().enumerate() {
        if b.options[..i].contains(o) {
            return Err(format!("`bits` lists option `{o}` twice"));
        }
        coerce(o, leaf).map_err(|e| format!("`bits` option `{o}`: the target {e}"))?;
    }
    let chars: Vec<char> = b.chars.as_deref().unwrap_or("01").chars().collect();
    let pick: Vec<char> = b.pick.as_deref().unwrap_or("1").chars().collect();
    if chars.len() < 2
        || chars
            .iter()
            .enumerate()
            .any(|(i, c)| chars[..i].contains(c))
    {
        return Err("`bits` chars: write at least two different characters, e.g. \"01\"".into());
    }
    if pick.is_empty() || pick.iter().any(|c| !chars.contains(c)) {
        return Err(format!(
            "`bits` pick: write characters out of chars `{}`",
            chars.iter().collect::<String>()
        ));
    }
    Ok(Bits {
        options: b.options.clone(),
        chars,
        pick,
        pack: !unpack,
    })
}

fn leaf_name(leaf: &Leaf) -> String {
    match leaf {
        Leaf::String => "text".into(),
        Leaf::Enum(v) => format!("one of {}", v.join(", ")),
        Leaf::Integer => "an integer".into(),
        Leaf::Number => "a number".into(),
        Leaf::Boolean => "a boolean".into(),
    }
}

/// Converts text to the JSON value a leaf expects; `Err` completes "the target …".
pub fn coerce(text: &str, leaf: &Leaf) -> Result<Value, String> {
    match leaf {
        Leaf::String => Ok(Value::String(text.to_string())),
        Leaf::Enum(allowed) => {
            if allowed.iter().any(|a| a == text) {
                Ok(Value::String(text.to_string()))
            } else {
                Err(format!("takes one of {}", allowed.join(", ")))
            }
        }
        Leaf::Integer => text
            .trim()
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .map_err(|_| "is an integer".to_string()),
        Leaf::Number => text
            .trim()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| "is a number".to_string()),
        Leaf::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("is a boolean (`true` or `false`)".to_string()),
        },
    }
}

#[allow(dead_code)]
fn _assert_spec_used(_: spec::TestSpec) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(y: &str) -> Result<Mapping, MappingError> {
        compile_str(y, FsPath::new("mappings/t.yaml"))
    }

    const HEAD: &str = "id: t\nversion: 1\nsource: { format: fhir }\ntarget: InsuredPerson@1\n";

    #[test]
    fn subject_none_on_a_personal_kind_is_an_error_naming_its_line() {
        let yaml = format!("{HEAD}subject: none\nfields:\n  birth_date: birthDate\n");
        let s = compile(&yaml).unwrap_err().to_string();
        assert!(s.starts_with("mappings/t.yaml:5:10: "), "{s}");
        assert!(s.contains("InsuredPerson@1 is about a person"), "{s}");
        assert!(s.contains("remove `subject: none`"), "{s}");
    }

    #[test]
    fn a_kind_without_a_person_needs_subject_none_and_takes_no_other_value() {
        let head = "id: t\nversion: 1\nsource: { format: csv }\ntarget: ClaimInvoice@1\n";
        let fields = "fields:\n  provider_number: \"3\"\n";
        let s = compile(&format!("{head}{fields}")).unwrap_err().to_string();
        assert!(s.starts_with("mappings/t.yaml:4:9: "), "{s}");
        assert!(s.contains("say so with `subject: none`"), "{s}");
        let m = compile(&format!("{head}subject: none\n{fields}")).expect("declared");
        assert!(matches!(m.target, Target::Document(DocKind::ClaimInvoice)));
        let s = compile(&format!("{head}subject: nobody\n{fields}"))
            .unwrap_err()
            .to_string();
        assert!(s.contains("the only value is `none`"), "{s}");
        let outbound = "id: t\nversion: 1\nsource: { format: canonical }\ntarget: { format: fhir }\nsubject: none\nfields: {}\n";
        let s = compile(outbound).unwrap_err().to_string();
        assert!(s.contains("is for inbound mappings"), "{s}");
    }

    #[test]
    fn unknown_target_field_names_file_line_column_and_alternatives() {
        let e = compile(&format!("{HEAD}fields:\n  name.kana.famliy: name.family\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("mappings/t.yaml:6:3: "), "{s}");
        assert!(
            s.contains("unknown field `famliy` under `name.kana`"),
            "{s}"
        );
        assert!(s.contains("family, given, text"), "{s}");
    }

    #[test]
    fn a_csv_column_written_twice_is_named_with_both_spellings() {
        let text = "id: t\nversion: 1\nsource: { format: canonical }\n\
                    target: { format: csv, columns: 3 }\nfields:\n  records[+]:\n    each: rows\n\
                    \x20   fields:\n      \"1\": a\n      \"01\": b\n";
        let e = compile(text).unwrap_err().to_string();
        assert!(e.starts_with("mappings/t.yaml:10:7: "), "{e}");
        assert!(
            e.contains("csv column 1 is mapped twice (`1` and `01`)"),
            "{e}"
        );
        // Distinct columns compile.
        compile(&text.replace("\"01\": b", "\"2\": b")).expect("two columns");
    }

    /// `"N.."` writes a list after a record's last column: it must come right after it, on a
    /// target whose records may grow, and never in the file's frame; `warn` is inbound only.
    #[test]
    fn a_rest_column_follows_the_last_and_warn_is_inbound_only() {
        let out = |target: &str, fields: &str| {
            format!(
                "id: t\nversion: 1\nsource: {{ format: canonical }}\ntarget: {target}\nfields:\n  records[+]:\n    each: rows\n    fields:\n{fields}"
            )
        };
        let grow = "{ format: csv }";
        compile(&out(
            grow,
            "      \"1\": a\n      \"2\": b\n      \"3..\": rest\n",
        ))
        .expect("right after");
        let e = compile(&out(
            grow,
            "      \"1\": a\n      \"2\": b\n      \"5..\": rest\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`\"5..\"` must follow the record's last column, 2: write it as `\"3..\"`"),
            "{e}"
        );
        let e = compile(&out(
            "{ format: csv, columns: 2 }",
            "      \"1\": a\n      \"3..\": rest\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("every record of this target has `columns: 2`"),
            "{e}"
        );
        let e = compile(&out(grow, "      \"1\": a\n      \"2..\": { const: x }\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes `from` (a list of texts)"), "{e}");
        let framed = "id: t\nversion: 1\nsource: { format: canonical }\ntarget: { format: csv }\nfile:\n  head: { \"1\": { const: \"1\" }, \"2..\": rest }\nfields: {}\n";
        let e = compile(framed).unwrap_err().to_string();
        assert!(e.contains("not the frame's"), "{e}");
        let e = compile(&out(grow, "      \"1\": { from: a, warn: why }\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`warn` reports what an inbound mapping finds"),
            "{e}"
        );
    }

    #[test]
    fn unknown_transform_is_reported_at_the_rule() {
        let e = compile(&format!(
            "{HEAD}fields:\n  birth_date: {{ from: birthDate, then: [frobnicate] }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("mappings/t.yaml:6:15"), "{e}");
        assert!(
            e.to_string().contains("unknown transform `frobnicate`"),
            "{e}"
        );
    }

    #[test]
    fn a_csv_frame_and_its_options_are_checked_where_written() {
        let out = "id: t\nversion: 1\nsource: { format: canonical }\n";
        let records = "fields:\n  records[+]:\n    each: rows\n    fields:\n      \"3\": a\n";
        let err = |y: String| compile(&y).unwrap_err().to_string();
        // The record number makes a record at least that wide; `columns` widens it.
        let m = compile(&format!(
            "{out}target: {{ format: csv, record_number: 2 }}\nfile:\n  tail: {{ \"1\": {{ const: \"3\" }} }}\n{records}"
        ))
        .expect("compiles");
        let frame = m.file.as_ref().expect("file");
        assert_eq!((frame.head_width, frame.tail_width), (2, 2));
        let width = |m: &Mapping| match &m.steps[0].kind {
            StepKind::Each { steps, .. } => steps
                .iter()
                .find(|s| s.target == [TSeg::Key(WIDTH_KEY.into())])
                .map(|s| s.name.clone()),
            _ => None,
        };
        assert_eq!(width(&m).as_deref(), Some("records[+].(width)"));
        let fixed = compile(&format!(
            "{out}target: {{ format: csv, columns: 3 }}\n{records}"
        ))
        .expect("compiles");
        assert_eq!(width(&fixed), None, "fixed columns need no width");

        let e = err(format!(
            "{out}target: {{ format: csv, quoted_from: 0 }}\n{records}"
        ));
        assert!(e.contains("quoted_from column 0 is outside 1..="), "{e}");
        let e = err(format!(
            "{out}target: {{ format: csv }}\nfields:\n  records[+]:\n    each: rows\n    columns: 2\n    fields:\n      \"3\": a\n"
        ));
        assert!(
            e.contains("`columns: 2`, but its rules write column 3"),
            "{e}"
        );
        let e = err(format!(
            "{out}target: {{ format: csv }}\nfields:\n  records[+]:\n    each: rows\n    fields:\n      \"3\": {{ from: a, columns: 4 }}\n"
        ));
        assert!(e.contains("a value has none"), "{e}");
        let e = err(format!(
            "{out}target: {{ format: csv }}\nfields:\n  records[+]:\n    each: rows\n    fields:\n      \"3\": $file.records\n"
        ));
        assert!(
            e.contains("unknown metadata `$file.records` (only in `file.head` and `file.tail`)"),
            "{e}"
        );
        let e = err(format!(
            "{out}target: {{ format: fhir }}\nfile: {{ group_by: [a] }}\nfields:\n  resourceType: {{ const: Patient }}\n"
        ));
        assert!(e.starts_with("mappings/t.yaml:5:7: "), "{e}");
        assert!(e.contains("`file:` frames an outbound CSV file"), "{e}");
    }

    #[test]
    fn missing_table_is_reported() {
        let e = compile(&format!(
            "{HEAD}fields:\n  sex: {{ from: gender, lookup: sexes }}\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("lookup table `sexes` is not defined"),
            "{e}"
        );
    }

    #[test]
    fn table_values_must_fit_the_target_type() {
        let e = compile(&format!(
            "{HEAD}fields:\n  sex: {{ from: gender, lookup: s }}\ntables:\n  s: {{ M: man }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("maps `M` to `man`"), "{e}");
        assert!(e.to_string().contains("male"), "{e}");
    }

    #[test]
    fn date_into_an_enum_is_a_type_mismatch() {
        let e = compile(&format!(
            "{HEAD}fields:\n  sex: {{ from: x, then: [{{ date: yyyyMMdd }}] }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("makes a date or time"), "{e}");
    }

    #[test]
    fn yaml_typos_in_keys_are_errors_with_location() {
        let e = compile(&format!(
            "{HEAD}fields:\n  birth_date: {{ form: birthDate }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().starts_with("mappings/t.yaml:6:"), "{e}");
        assert!(e.to_string().contains("form"), "{e}");
    }

    #[test]
    fn arrays_need_each() {
        let e = compile(&format!("{HEAD}fields:\n  identifiers: x\n")).unwrap_err();
        assert!(e.to_string().contains("is an array"), "{e}");
        let ok = compile(&format!(
            "{HEAD}fields:\n  identifiers[+]:\n    each: identifier\n    fields:\n      system: system\n      value: value\n"
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn unknown_metadata_is_refused_with_hint() {
        let e = compile(&format!("{HEAD}fields:\n  birth_date: $file.prefix\n")).unwrap_err();
        assert!(e.to_string().contains("file_name: careplan"), "{e}");
    }

    const OPINION: &str =
        "id: t\nversion: 1\nsource: { format: csv }\ntarget: PhysicianOpinion@1\nfields:\n";

    #[test]
    fn bits_options_are_checked_against_the_target_items() {
        let ok = compile(&format!(
            "{OPINION}  other_departments.departments: {{ from: \"3\", bits: [internal_medicine, other] }}\n"
        ));
        let m = ok.expect("compiles");
        let StepKind::Value(rule) = &m.steps[0].kind else {
            panic!("a value rule")
        };
        let bits = rule.bits.as_ref().expect("bits");
        assert!(!bits.pack);
        assert_eq!(bits.chars, vec!['0', '1']);
        assert_eq!(bits.pick, vec!['1']);
        let e = compile(&format!(
            "{OPINION}  other_departments.departments: {{ from: \"3\", bits: [internal_medicine, cardiology] }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("mappings/t.yaml:6:34: "), "{e}");
        assert!(e.contains("`bits` option `cardiology`"), "{e}");
    }

    #[test]
    fn bits_settings_that_cannot_work_are_refused_at_load() {
        for (rule, said) in [
            ("{ from: \"3\", bits: [] }", "needs its options"),
            ("{ from: \"3\", bits: [other, other] }", "twice"),
            (
                "{ from: \"3\", bits: { options: [other], pick: \"2\" } }",
                "pick",
            ),
            (
                "{ from: \"3\", bits: { options: [other], chars: \"1\" } }",
                "chars",
            ),
            ("{ from: \"3\", bits: [other], lookup: x }", "`lookup`"),
            (
                "{ from: \"3\", bits: [other], default: other }",
                "`default`",
            ),
        ] {
            let e = compile(&format!(
                "{OPINION}  other_departments.departments: {rule}\ntables:\n  x: {{ a: b }}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(said), "{rule}: {e}");
        }
        // A non-array, non-text target takes no bits.
        let e = compile(&format!(
            "{OPINION}  patient.age: {{ from: \"3\", bits: [a, b] }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("the target is an integer"), "{e}");
        // Without bits a list of codes takes every value of its path; a list of objects still
        // needs `each`, and a list takes no `default`.
        let m = compile(&format!(
            "{OPINION}  other_departments.departments: \"3\"\n"
        ))
        .expect("a list of codes");
        assert!(matches!(&m.steps[0].kind, StepKind::Value(r) if r.list));
        for rule in [
            "illness.diagnoses: \"3\"",
            "other_departments.departments: { from: \"3\", default: other }",
        ] {
            let e = compile(&format!("{OPINION}  {rule}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("is an array"), "{rule}: {e}");
        }
    }

    #[test]
    fn as_types_an_outbound_fhir_value_and_nothing_else() {
        const FHIR_OUT: &str = "id: t\nversion: 1\nsource: { format: canonical, match: { document: PhysicianOpinion@1 } }\ntarget: { format: fhir }\nfields:\n";
        let m = compile(&format!(
            "{FHIR_OUT}  valueQuantity.value: {{ from: mind_and_body.body.height_cm, as: number }}\n"
        ))
        .expect("a number");
        assert!(matches!(&m.steps[0].kind, StepKind::Value(r) if r.leaf == Leaf::Number));
        let e = compile(&format!(
            "{FHIR_OUT}  valueQuantity.value: {{ from: x, as: decimal }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`as: decimal` is not a type"), "{e}");
        let e = compile(&format!(
            "{OPINION}  remarks: {{ from: \"3\", as: number }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("is for outbound FHIR fields"), "{e}");
    }

    #[test]
    fn bit_metadata_is_known_only_inside_an_each_with_bits() {
        let each = "  living_function.medical_management.services[+]:\n    each: \"106\"\n\
                    \x20   bits: { options: [home_visit_medical], chars: \"012\", pick: \"12\" }\n\
                    \x20   fields:\n      service: $bit.option\n";
        let m = compile(&format!("{OPINION}{each}")).expect("compiles");
        assert!(
            matches!(&m.steps[0].kind, StepKind::Each { bits: Some(b), .. } if b.pick == vec!['1', '2'])
        );
        let e = compile(&format!("{OPINION}  remarks: $bit.option\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("only inside an `each` with `bits`"), "{e}");
        let e = compile(&format!("{OPINION}{}", each.replace("\"012\"", "\"01\"")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pick"), "{e}");
    }

    #[test]
    fn a_condition_pattern_is_compiled_at_load() {
        let m = compile(&format!(
            "{OPINION}  remarks: {{ from: \"5\", when: {{ \"5\": {{ pattern: \"^a+$\" }} }} }}\n"
        ))
        .expect("compiles");
        let StepKind::Value(rule) = &m.steps[0].kind else {
            panic!("a value rule")
        };
        assert!(matches!(&rule.when[0].test, CondTest::Pattern(re) if re.is_match("aa")));
        let e = compile(&format!(
            "{OPINION}  remarks: {{ from: \"5\", when: {{ \"5\": {{ pattern: \"(\" }} }} }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pattern `(` is not a valid regular expression"),
            "{e}"
        );
        let e = compile(&format!(
            "{OPINION}  remarks: {{ from: \"5\", when: {{ \"5\": {{ patern: x }} }} }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("patern"), "{e}");
    }

    #[test]
    fn bad_source_path_is_reported() {
        let e = compile(&format!("{HEAD}fields:\n  birth_date: \"name[\"\n")).unwrap_err();
        assert!(e.to_string().contains("path `name[`"), "{e}");
    }

    #[test]
    fn csv_source_options_reach_the_parser_and_a_bad_quote_is_named() {
        let m = compile(
            "id: t\nversion: 1\nsource: { format: csv, skip: 2, quote: none }\ntarget: InsuredPerson@1\nfields:\n  birth_date: \"1\"\n",
        )
        .unwrap();
        assert_eq!(m.source.parse.csv.skip, 2);
        assert_eq!(m.source.parse.csv.quote, Quote::None);
        let m = compile(
            "id: t\nversion: 1\nsource: { format: csv, quote: '\"' }\ntarget: InsuredPerson@1\nfields:\n  birth_date: \"1\"\n",
        )
        .unwrap();
        assert_eq!(m.source.parse.csv.quote, Quote::Double);
        let e = compile(
            "id: t\nversion: 1\nsource: { format: csv, quote: \"'\" }\ntarget: InsuredPerson@1\nfields:\n  birth_date: \"1\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "mappings/t.yaml:3:31: quote `'`: use '\"' (the default, RFC 4180 quoting) or none"
            ),
            "{e}"
        );
    }
}
