//! Executes a compiled mapping over a parsed tree: splits the input into documents, evaluates
//! every rule (sources, transforms, lookups, checks), builds the output JSON and reports a
//! failing value with its source location and the rule that failed. Never panics on any input;
//! never touches the file system or a network.

use super::error::{MapError, Reason, ValueError, Warning};
use super::plan::*;
use crate::formats::tree::CsvPath;
use crate::formats::{Node, Path, Tree};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Envelope metadata (`$file.name`, `$file.prefix`, …) for one input.
#[derive(Debug, Default, Clone)]
pub struct Meta {
    pairs: Vec<(&'static str, String)>,
}

impl Meta {
    /// Sets a key.
    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        let value = value.into();
        match self.pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.pairs.push((key, value)),
        }
    }

    /// Reads a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Copy)]
struct Scope<'a, 'g> {
    node: Node<'a>,
    group: &'g [Node<'a>],
    /// Inside an `each` with `bits`: the option of this item and its character.
    bit: Option<(&'a str, char)>,
    /// Inside an `each`: the item's position among the items it made so far, from 1.
    position: Option<usize>,
}

struct Runner<'a> {
    m: &'a Mapping,
    tree: &'a Tree,
    meta: &'a Meta,
    /// What the `warn:` rules found, in the order they found it.
    warnings: std::cell::RefCell<Vec<Warning>>,
}

/// The documents of one run, each with where in the input it comes from, and the warnings.
pub(crate) type Run<'a> = (Vec<(Out<'a>, Option<String>)>, Vec<Warning>);

/// Runs `m` over `tree`, returning one JSON object per document (not yet validated).
pub fn run(m: &Mapping, tree: &Tree, meta: &Meta) -> Result<Vec<Value>, MapError> {
    Ok(run_out(m, tree, meta)?
        .0
        .into_iter()
        .map(|(out, _)| out.into_value())
        .collect())
}

/// [`run`], with where in the input each document comes from ([`Tree::origin`] of its root:
/// `record 3, line 4`, `entry 2`, …), value-free, and what the `warn:` rules found.
#[allow(clippy::type_complexity)]
pub fn run_with_origins(
    m: &Mapping,
    tree: &Tree,
    meta: &Meta,
) -> Result<(Vec<(Value, Option<String>)>, Vec<Warning>), MapError> {
    let (docs, warnings) = run_out(m, tree, meta)?;
    Ok((
        docs.into_iter()
            .map(|(out, origin)| (out.into_value(), origin))
            .collect(),
        warnings,
    ))
}

/// [`run_with_origins`], leaving each document as the engine built it: a CSV render writes its
/// records straight from it, with no `Value` (keys copied and hashed) made in between. A CSV
/// column named by a header the file lacks stops the run before any record is read.
pub(crate) fn run_out<'a>(
    m: &'a Mapping,
    tree: &'a Tree,
    meta: &'a Meta,
) -> Result<Run<'a>, MapError> {
    if let Tree::Csv(f) = tree {
        super::columns::check(m, f)?;
    }
    let r = Runner {
        m,
        tree,
        meta,
        warnings: Default::default(),
    };
    let root = tree.root();
    let groups: Vec<Vec<Node>> = match &m.documents {
        None => vec![vec![root]],
        Some(d) => {
            let mut selected = Vec::new();
            for p in &d.each {
                tree.select(root, p, &mut selected);
                if !selected.is_empty() {
                    break;
                }
            }
            selected.retain(|&n| {
                r.conds_hold(
                    &d.when,
                    Scope {
                        node: n,
                        group: &[n],
                        bit: None,
                        position: None,
                    },
                )
            });
            if d.group_by.is_empty() {
                selected.into_iter().map(|n| vec![n]).collect()
            } else {
                let mut groups: Vec<(Vec<Option<String>>, Vec<Node>)> = Vec::new();
                for n in selected {
                    let key: Vec<Option<String>> = d
                        .group_by
                        .iter()
                        .map(|p| {
                            let mut out = Vec::new();
                            tree.select(n, p, &mut out);
                            out.iter().find_map(|x| tree.value(*x)).map(Cow::into_owned)
                        })
                        .collect();
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, members)) => members.push(n),
                        None => groups.push((key, vec![n])),
                    }
                }
                groups.into_iter().map(|(_, g)| g).collect()
            }
        }
    };
    let mut docs = Vec::with_capacity(groups.len());
    for g in &groups {
        let Some(first) = g.first() else { continue };
        if let Some(d) = m.documents.as_ref().filter(|d| !d.members.is_empty()) {
            r.members(d, g)?;
        }
        let first = match m.documents.as_ref().filter(|d| !d.head.is_empty()) {
            Some(d) => r.head(d, g)?,
            None => first,
        };
        let scope = Scope {
            node: *first,
            group: g,
            bit: None,
            position: None,
        };
        let mut out = Out::Obj(Vec::with_capacity(m.steps.len() + 1));
        if let (Target::Document(k), Out::Obj(fields)) = (&m.target, &mut out) {
            fields.push(("document", Out::Val(Value::String(k.name().to_string()))));
        }
        r.exec(&m.steps, scope, &mut out)?;
        docs.push((out, tree.origin(*first)));
    }
    Ok((docs, r.warnings.into_inner()))
}

/// Checks that every record of a CSV `tree` is read by one of `readers` (the mappings with
/// `documents` that fit this input, each with its metadata): it is one of a reader's
/// `documents.frame` records, or its `documents.each` selects it and `documents.when` keeps it. The first record
/// none reads is the error, naming it and what each reader takes, value-free: a record of a kind
/// no mapping knows (an unknown 交換情報識別番号) stops the input rather than being passed over.
pub(crate) fn unread(readers: &[(&Mapping, &Meta)], tree: &Tree) -> Result<(), MapError> {
    let (Tree::Csv(f), Some(loc)) = (
        tree,
        readers.iter().find_map(|(m, _)| {
            m.documents
                .as_ref()
                .filter(|d| !d.frame.is_empty())
                .map(|d| d.loc.clone())
        }),
    ) else {
        return Ok(());
    };
    let mut read = vec![false; f.record_count()];
    for (m, meta) in readers {
        let Some(d) = &m.documents else { continue };
        let r = Runner {
            m,
            tree,
            meta,
            warnings: Default::default(),
        };
        let holds = |conds: &[Cond], n: Node<'_>| r.hold_alone(conds, n);
        let mut selected = Vec::new();
        for p in &d.each {
            tree.select(tree.root(), p, &mut selected);
            if !selected.is_empty() {
                break;
            }
        }
        for n in selected {
            if let Node::CsvRow(i) = n
                && !read[i]
                && holds(&d.when, n)
            {
                read[i] = true;
            }
        }
        if !d.frame.is_empty() {
            for (i, done) in read.iter_mut().enumerate() {
                if !*done && holds(&d.frame, Node::CsvRow(i)) {
                    *done = true;
                }
            }
        }
    }
    let Some(i) = read.iter().position(|done| !done) else {
        return Ok(());
    };
    let takes: Vec<String> = readers
        .iter()
        .filter_map(|(m, _)| {
            let d = m.documents.as_ref()?;
            Some(format!(
                "`{}` takes records where {}",
                m.id,
                described(&d.when)
            ))
        })
        .collect();
    Err(MapError {
        at: tree.location(Node::CsvRow(i)),
        rule: "documents.frame".into(),
        loc,
        reason: Reason::Missing(format!(
            "no mapping that reads this input takes this record ({}), and it is not the input's frame; the input is refused rather than the record passed over",
            takes.join("; ")
        )),
    })
}

/// A CSV file's account of itself (`source.last`, `source.record_number`, `source.count`),
/// checked before any record is read: a last record that is no end record is an error (the file
/// may be cut short); record numbers other than 1, 2, 3 … and a stated count that differs from
/// the records it counts are warnings (REAMS numbers every data record `2` and counts `1`:
/// claims-csv.md §2.4 says warn, do not refuse). Value-free.
pub(crate) fn check_file(m: &Mapping, tree: &Tree, meta: &Meta) -> Result<Vec<Warning>, MapError> {
    let Tree::Csv(f) = tree else {
        return Ok(Vec::new());
    };
    let checks = &m.source.file_checks;
    let n = f.record_count();
    let r = Runner {
        m,
        tree,
        meta,
        warnings: Default::default(),
    };
    let holds = |conds: &[Cond], row: usize| r.hold_alone(conds, Node::CsvRow(row));
    if n > 0 && !checks.last.is_empty() && !holds(&checks.last, n - 1) {
        return Err(MapError {
            at: tree.location(Node::CsvRow(n - 1)),
            rule: "source.last".into(),
            loc: m.source.loc.clone(),
            reason: Reason::Missing(format!(
                "the input's last record is not what `source.last` wants ({}): the file may be cut short, so it is refused rather than read in part",
                described(&checks.last)
            )),
        });
    }
    let mut warnings = Vec::new();
    if let Some(c) = checks.record_number {
        let off: Vec<usize> = (0..n)
            .filter(|&i| f.field(i, c).and_then(|v| v.trim().parse::<usize>().ok()) != Some(i + 1))
            .collect();
        if let Some(&first) = off.first() {
            warnings.push(Warning {
                at: tree.location(Node::CsvCell(first, c)),
                rule: "source.record_number".into(),
                loc: m.source.loc.clone(),
                text: format!(
                    "{} of the {n} records do not hold their number in the file (1, 2, 3 …) in column {}; read all the same",
                    off.len(),
                    c + 1
                ),
            });
        }
    }
    if let Some((path, text, of)) = &checks.count {
        let counted = (0..n).filter(|&i| holds(of, i)).count();
        let stated = tree
            .first_value(tree.root(), path)
            .map(|(v, node)| (v.trim().parse::<usize>().ok(), node));
        if stated.as_ref().and_then(|(v, _)| *v) != Some(counted) {
            warnings.push(Warning {
                at: stated.as_ref().and_then(|(_, node)| tree.location(*node)),
                rule: "source.count".into(),
                loc: m.source.loc.clone(),
                text: format!(
                    "the count `{text}` states is not the input's {counted} records where {}; read all the same",
                    described(of)
                ),
            });
        }
    }
    Ok(warnings)
}

/// Conditions in words: "`1` is `2` and `3` is one of `7131`, `7132`".
fn described(conds: &[Cond]) -> String {
    if conds.is_empty() {
        return "any".into();
    }
    let each: Vec<String> = conds
        .iter()
        .map(|c| {
            let what = src_label(&c.src);
            match &c.test {
                CondTest::AnyOf(opts) if opts.len() == 1 => format!("`{what}` is `{}`", opts[0]),
                CondTest::AnyOf(opts) => {
                    format!("`{what}` is one of `{}`", opts.join("`, `"))
                }
                CondTest::Pattern(re) => format!("`{what}` matches `{}`", re.as_str()),
                CondTest::Present(true) => format!("`{what}` has a value"),
                CondTest::Present(false) => format!("`{what}` is empty"),
            }
        })
        .collect();
    each.join(" and ")
}

/// One record of an outbound CSV file's frame (`file.head`, `file.tail`): `steps` read from the
/// root of `tree` (the file's first document), with `meta` (`$file.records`, …).
pub(crate) fn run_record<'a>(
    m: &'a Mapping,
    steps: &'a [Step],
    tree: &'a Tree,
    meta: &'a Meta,
) -> Result<Out<'a>, MapError> {
    let r = Runner {
        m,
        tree,
        meta,
        warnings: Default::default(),
    };
    let root = tree.root();
    let one = [root];
    let scope = Scope {
        node: root,
        group: &one,
        bit: None,
        position: None,
    };
    let mut out = Out::Obj(Vec::new());
    r.exec(steps, scope, &mut out)?;
    Ok(out)
}

impl<'a> Runner<'a> {
    /// The one member of group `g` that meets `documents.head`: the node the top-level rules
    /// read. None is an error at the group's first member; several, at the second that meets it.
    fn head<'g>(&self, d: &Documents, g: &'g [Node<'a>]) -> Result<&'g Node<'a>, MapError> {
        let meets = |n: &&Node<'a>| {
            let scope = Scope {
                node: **n,
                group: g,
                bit: None,
                position: None,
            };
            self.conds_hold(&d.head, scope)
        };
        let mut heads = g.iter().filter(meets);
        let error = |n: &Node<'a>, why: &str| MapError {
            at: self.tree.location(*n).or_else(|| self.tree.origin(*n)),
            rule: "documents.head".into(),
            loc: d.loc.clone(),
            reason: Reason::Missing(why.into()),
        };
        match (heads.next(), heads.next()) {
            (Some(head), None) => Ok(head),
            (None, _) => Err(error(
                &g[0],
                "its document has no member that meets `documents.head` (the one the document's fields are read from)",
            )),
            (Some(_), Some(second)) => Err(error(
                second,
                "a second member of the same document meets `documents.head`; only one may",
            )),
        }
    }

    /// Every member of group `g` meets `documents.members`; the first that does not is an error
    /// at the field it failed on (its record and column), the value said to the sender only.
    fn members(&self, d: &Documents, g: &[Node<'a>]) -> Result<(), MapError> {
        for &n in g {
            let scope = Scope {
                node: n,
                group: g,
                bit: None,
                position: None,
            };
            let Some(c) = d
                .members
                .iter()
                .find(|c| !self.conds_hold(std::slice::from_ref(*c), scope))
            else {
                continue;
            };
            let what = match &c.src {
                Src::Path(_, text) => format!("`{text}`"),
                Src::Meta(text) => format!("`{text}`"),
                Src::Sum(_, text) => format!("`sum: {text}`"),
                Src::Group => "`@group`".into(),
            };
            let wanted = match &c.test {
                CondTest::AnyOf(opts) => format!("one of `{}`", opts.join("`, `")),
                CondTest::Pattern(re) => format!("a value matching `{}`", re.as_str()),
                CondTest::Present(true) => "a value".into(),
                CondTest::Present(false) => "no value".into(),
            };
            let found = match &c.src {
                Src::Path(p, _) => self.tree.first_value(n, p),
                _ => None,
            };
            let record = self.tree.location(n).or_else(|| self.tree.origin(n));
            let (at, reason) = match found {
                Some((v, field)) => (
                    self.tree.location(field).or(record),
                    ValueError::new(
                        &v,
                        format!(
                            "is not allowed: `documents.members` wants {what} to be {wanted}; no rule reads this record, so the input is refused rather than the record passed over"
                        ),
                    )
                    .into(),
                ),
                None => (
                    record,
                    Reason::Missing(format!(
                        "{what} has no value: `documents.members` wants it to be {wanted}; no rule reads this record, so the input is refused rather than the record passed over"
                    )),
                ),
            };
            return Err(MapError {
                at,
                rule: "documents.members".into(),
                loc: d.loc.clone(),
                reason,
            });
        }
        Ok(())
    }

    fn exec(
        &self,
        steps: &'a [Step],
        scope: Scope<'a, '_>,
        out: &mut Out<'a>,
    ) -> Result<(), MapError> {
        for step in steps {
            match &step.kind {
                StepKind::Value(rule) => {
                    if !self.conds_hold(&rule.when, scope) {
                        continue;
                    }
                    if let Some(v) = self.value(step, rule, scope)? {
                        *slot(out, &step.target) = Out::Val(v);
                    }
                }
                StepKind::Each {
                    select,
                    when,
                    steps: inner,
                    required,
                    bits,
                } => {
                    let mut items = Vec::new();
                    for src in select {
                        self.select(src, scope, &mut items);
                    }
                    let mut made = 0usize;
                    for item in items {
                        if self.tree.is_empty_node(item) {
                            continue;
                        }
                        let one = [item];
                        let picked = match bits {
                            None => vec![None],
                            Some(b) => self
                                .picked(step, b, item, scope)?
                                .into_iter()
                                .map(Some)
                                .collect(),
                        };
                        for bit in picked {
                            let item_scope = Scope {
                                node: item,
                                group: &one,
                                bit,
                                position: Some(made + 1),
                            };
                            if !self.conds_hold(when, item_scope) {
                                continue;
                            }
                            let mut obj = Out::Obj(Vec::new());
                            self.exec(inner, item_scope, &mut obj)?;
                            if matches!(&obj, Out::Obj(f) if !f.is_empty()) {
                                *slot(out, &step.target) = obj;
                                made += 1;
                            }
                        }
                    }
                    if *required && made == 0 {
                        return Err(self.error(
                            step,
                            scope,
                            None,
                            Reason::Missing("no item was found, but the rule is required".into()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The options a bit string at `item` picks, with their characters, for an `each` with `bits`.
    fn picked(
        &self,
        step: &Step,
        bits: &'a Bits,
        item: Node<'a>,
        scope: Scope<'a, '_>,
    ) -> Result<Vec<(&'a str, char)>, MapError> {
        let Some(text) = self.tree.value(item) else {
            return Ok(Vec::new());
        };
        unpack_bits(bits, &text).map_err(|e| {
            let at = self.tree.location(item);
            self.error(step, scope, at, e.into())
        })
    }

    fn select(&self, src: &Src, scope: Scope<'a, '_>, out: &mut Vec<Node<'a>>) {
        match src {
            Src::Path(p, _) => self.tree.select(scope.node, p, out),
            Src::Group => out.extend_from_slice(scope.group),
            Src::Meta(_) | Src::Sum(..) => {}
        }
    }

    /// The first non-empty value of a source, with the node it came from.
    fn first(&self, src: &Src, scope: Scope<'a, '_>) -> Option<(Cow<'a, str>, Option<Node<'a>>)> {
        match src {
            Src::Meta(k) => match (k.as_str(), scope.bit) {
                ("$bit.option", Some((option, _))) => Some((Cow::Borrowed(option), None)),
                ("$bit.char", Some((_, c))) => Some((Cow::Owned(c.to_string()), None)),
                ("$each.position", _) => scope.position.map(|n| (Cow::Owned(n.to_string()), None)),
                _ => self.meta.get(k).map(|v| (Cow::Owned(v.to_string()), None)),
            },
            Src::Group => None,
            Src::Sum(p, _) => self
                .sum(p, scope)
                .ok()
                .flatten()
                .map(|n| (Cow::Owned(n.to_string()), None)),
            Src::Path(p, _) => self
                .tree
                .first_value(scope.node, p)
                .map(|(v, n)| (v, Some(n))),
        }
    }

    /// `sum:` the sum of the whole numbers `p` selects; `None` when it selects none, `Err` when
    /// one is not a whole number (or the sum overflows).
    fn sum(&self, p: &Path, scope: Scope<'a, '_>) -> Result<Option<i64>, ()> {
        let mut nodes = Vec::new();
        self.tree.select(scope.node, p, &mut nodes);
        let mut total: Option<i64> = None;
        for n in nodes {
            let Some(v) = self.tree.value(n) else {
                continue;
            };
            let v: i64 = v.trim().parse().map_err(|_| ())?;
            total = Some(total.unwrap_or(0).checked_add(v).ok_or(())?);
        }
        Ok(total)
    }

    /// [`Self::conds_hold`] at `node`, read as a group of its own (a record of the input, outside
    /// any document).
    fn hold_alone(&self, conds: &[Cond], node: Node<'a>) -> bool {
        let one = [node];
        self.conds_hold(
            conds,
            Scope {
                node,
                group: &one,
                bit: None,
                position: None,
            },
        )
    }

    fn conds_hold(&self, conds: &[Cond], scope: Scope<'a, '_>) -> bool {
        conds.iter().all(|c| {
            if let (CondTest::Present(want), Src::Path(p, _)) = (&c.test, &c.src) {
                return self.tree.exists(scope.node, p) == *want;
            }
            let v = self.first(&c.src, scope).map(|(v, _)| v);
            match &c.test {
                CondTest::Present(want) => v.is_some() == *want,
                CondTest::AnyOf(opts) => v.is_some_and(|v| opts.iter().any(|o| *o == *v)),
                CondTest::Pattern(re) => v.is_some_and(|v| re.is_match(&v)),
            }
        })
    }

    fn value(
        &self,
        step: &Step,
        rule: &ValueRule,
        scope: Scope<'a, '_>,
    ) -> Result<Option<Value>, MapError> {
        if let Some(c) = &rule.constant {
            return Ok(Some(c.clone()));
        }
        if let Some(bits) = rule.bits.as_ref().filter(|b| b.pack) {
            return self.pack_bits(step, rule, bits, scope).map(Some);
        }
        if rule.list {
            return self.list(step, rule, scope);
        }
        // `sum:` the total of what it adds up: the value when `from` gives none, and the value
        // `from` gives must equal it.
        let mut total = None;
        for src in &rule.sources {
            if let Src::Sum(p, text) = src {
                let fail = |why: String| self.error(step, scope, None, Reason::Missing(why));
                total = Some((
                    self.sum(p, scope).map_err(|()| {
                        fail(format!("a value `sum: {text}` adds up is not a whole number, or the sum is too large"))
                    })?,
                    text,
                ));
            }
        }
        let mut node = None;
        let mut text: Option<Cow<str>> = None;
        let mut from_label = None;
        for src in &rule.sources {
            if let Some((v, n)) = self.first(src, scope) {
                node = n;
                from_label = Some(src);
                text = Some(v);
                break;
            }
        }
        if let (Some((Some(sum), label)), Some(Src::Path(..)), Some(v)) =
            (total, from_label, text.as_deref())
            && v.trim().parse::<i64>().ok() != Some(sum)
        {
            return Err(self.error(
                step,
                scope,
                node.and_then(|n| self.tree.location(n)),
                Reason::Missing(format!(
                    "the value differs from `sum: {label}`, the total of what it adds up; correct the total or its items"
                )),
            ));
        }
        if let Some((srcs, sep)) = rule.join.as_ref().filter(|_| text.is_none()) {
            let parts: Vec<Cow<str>> = srcs
                .iter()
                .filter_map(|s| self.first(s, scope).map(|(v, _)| v))
                .collect();
            if !parts.is_empty() {
                text = Some(Cow::Owned(parts.join(sep)));
            }
        }
        match self.shape(step, rule, scope, text, node, from_label)? {
            Some(v) => {
                self.warn(step, rule, node, 1);
                Ok(Some(v))
            }
            None => self.nothing(step, rule, scope),
        }
    }

    /// A list rule's value: every value of the first source that selects any, each shaped as
    /// a single rule's value is.
    fn list(
        &self,
        step: &Step,
        rule: &ValueRule,
        scope: Scope<'a, '_>,
    ) -> Result<Option<Value>, MapError> {
        for src in &rule.sources {
            self.short_record(step, rule, src, scope);
            let mut nodes = Vec::new();
            self.select(src, scope, &mut nodes);
            let mut items = Vec::new();
            for &n in &nodes {
                let text = match self.tree.value(n) {
                    None if rule.keep_empty => Some(Cow::Borrowed("")),
                    text => text,
                };
                if let Some(v) = self.shape(step, rule, scope, text, Some(n), Some(src))? {
                    items.push(v);
                }
            }
            if !items.is_empty() {
                self.warn(step, rule, nodes.first().copied(), items.len());
                return Ok(Some(Value::Array(items)));
            }
        }
        self.nothing(step, rule, scope)
    }

    /// A `warn:` rule reading `N..` says where a record's layout ends: a record with fewer than
    /// N − 1 fields lacks some of the layout's items (read as empty), which is noted too.
    fn short_record(&self, step: &Step, rule: &ValueRule, src: &Src, scope: Scope<'a, '_>) {
        let (Some(_), Src::Path(Path::Csv(CsvPath::From(c)), text), Tree::Csv(f)) =
            (&rule.warn, src, self.tree)
        else {
            return;
        };
        let row = match scope.node {
            Node::CsvRow(r) | Node::CsvCell(r, _) => r,
            Node::CsvFile if f.record_count() > 0 => 0,
            _ => return,
        };
        let fields = f.field_count(row);
        if fields < *c {
            self.warnings.borrow_mut().push(Warning {
                at: self.tree.location(Node::CsvRow(row)),
                rule: step.name.clone(),
                loc: step.loc.clone(),
                text: format!(
                    "the record has {fields} fields, fewer than the {c} before `{text}`: the missing ones are read as empty"
                ),
            });
        }
    }

    /// Notes what a `warn:` rule found: `values` values, the first at `node`.
    fn warn(&self, step: &Step, rule: &ValueRule, node: Option<Node<'a>>, values: usize) {
        if let Some(text) = &rule.warn {
            let plural = if values == 1 { "" } else { "s" };
            self.warnings.borrow_mut().push(Warning {
                at: node.and_then(|n| self.tree.location(n)),
                rule: step.name.clone(),
                loc: step.loc.clone(),
                text: format!("{values} value{plural} kept: {text}"),
            });
        }
    }

    /// A source's text through the rule's transforms, bits, lookup, check and pattern, as the
    /// target's type; `None` when nothing is left.
    fn shape(
        &self,
        step: &Step,
        rule: &ValueRule,
        scope: Scope<'a, '_>,
        mut text: Option<Cow<'a, str>>,
        node: Option<Node<'a>>,
        from_label: Option<&Src>,
    ) -> Result<Option<Value>, MapError> {
        let at = |node: Option<Node>| -> Option<String> {
            let label = from_label.map(src_label);
            match (label, node.and_then(|n| self.tree.location(n))) {
                (Some(l), Some(loc)) => Some(format!("`{l}` at {loc}")),
                (Some(l), None) => Some(format!("`{l}`")),
                (None, loc) => loc,
            }
        };
        for t in &rule.transforms {
            let Some(cur) = text.take() else { break };
            text = t
                .apply(&cur)
                .map_err(|e| {
                    let e = e.and(&format!(" (transform `{}`)", t.name()));
                    self.error(step, scope, at(node), e.into())
                })?
                .map(Cow::Owned);
        }
        if let Some(bits) = &rule.bits {
            let Some(cur) = text.as_deref() else {
                return Ok(None);
            };
            let codes =
                unpack_bits(bits, cur).map_err(|e| self.error(step, scope, at(node), e.into()))?;
            let codes: Vec<&str> = codes.into_iter().map(|(option, _)| option).collect();
            if codes.is_empty() {
                return Ok(None);
            }
            let items = codes
                .into_iter()
                .map(|c| super::compile::coerce(c, &rule.leaf))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    let e = ValueError::new(cur, format!("does not fit the target, which {e}"));
                    self.error(step, scope, at(node), e.into())
                })?;
            return Ok(Some(Value::Array(items)));
        }
        if let (Some(idx), Some(cur)) = (rule.lookup, text.as_deref()) {
            let table = &self.m.tables[idx];
            match table.get(cur) {
                Some(mapped) => text = Some(Cow::Borrowed(mapped)),
                None => {
                    let codes: Vec<&str> = table.entries.iter().map(|(k, _)| k.as_str()).collect();
                    return Err(self.error(
                        step,
                        scope,
                        at(node),
                        ValueError::new(
                            cur,
                            format!(
                                "is not in table `{}` (codes: {})",
                                table.name,
                                codes.join(", ")
                            ),
                        )
                        .into(),
                    ));
                }
            }
        }
        let Some(text) = text else {
            return Ok(None);
        };
        let text = match rule.check {
            Some(check) => match check.check(&text) {
                Ok(Cow::Borrowed(_)) => text,
                Ok(Cow::Owned(carried)) => Cow::Owned(carried),
                Err(e) => return Err(self.error(step, scope, at(node), e.into())),
            },
            None => text,
        };
        if let Some(p) = rule.pattern.as_ref().filter(|p| !p.is_match(&text)) {
            return Err(self.error(
                step,
                scope,
                at(node),
                ValueError::new(
                    &text,
                    format!("does not match the pattern `{}`", p.as_str()),
                )
                .into(),
            ));
        }
        if rule.leaf == Leaf::String {
            return Ok(Some(Value::String(text.into_owned())));
        }
        super::compile::coerce(&text, &rule.leaf)
            .map(Some)
            .map_err(|e| {
                let e = ValueError::new(&text, format!("does not fit the target, which {e}"));
                self.error(step, scope, at(node), e.into())
            })
    }

    /// What a rule gives when it found no value: its `default`, a `required` error, or nothing.
    fn nothing(
        &self,
        step: &Step,
        rule: &ValueRule,
        scope: Scope<'a, '_>,
    ) -> Result<Option<Value>, MapError> {
        if let Some(d) = &rule.default {
            return Ok(Some(d.clone()));
        }
        if rule.required {
            let tried: Vec<String> = rule
                .sources
                .iter()
                .chain(rule.join.iter().flat_map(|(s, _)| s))
                .map(src_label)
                .collect();
            return Err(self.error(
                step,
                scope,
                None,
                Reason::Missing(format!(
                    "required value is missing (looked in {})",
                    tried.join(", ")
                )),
            ));
        }
        Ok(None)
    }

    /// `bits` writing: the codes every source selects (all of them, not the first) set their
    /// option's character; an absent or empty list gives a string of "not selected".
    fn pack_bits(
        &self,
        step: &Step,
        rule: &ValueRule,
        bits: &Bits,
        scope: Scope<'a, '_>,
    ) -> Result<Value, MapError> {
        let mut out = vec![bits.chars[0]; bits.options.len()];
        for src in &rule.sources {
            let mut found: Vec<(Cow<str>, Option<Node>)> = Vec::new();
            match src {
                Src::Meta(k) => {
                    found.extend(self.meta.get(k).map(|v| (Cow::Owned(v.into()), None)))
                }
                _ => {
                    let mut nodes = Vec::new();
                    self.select(src, scope, &mut nodes);
                    found.extend(
                        nodes
                            .into_iter()
                            .filter_map(|n| self.tree.value(n).map(|v| (v, Some(n)))),
                    );
                }
            }
            for (code, node) in found {
                let Some(i) = bits.options.iter().position(|o| *o == *code) else {
                    let at = match node.and_then(|n| self.tree.location(n)) {
                        Some(loc) => format!("`{}` at {loc}", src_label(src)),
                        None => format!("`{}`", src_label(src)),
                    };
                    let e = ValueError::new(
                        &code,
                        format!(
                            "is not one of the options of `bits` ({})",
                            bits.options.join(", ")
                        ),
                    );
                    return Err(self.error(step, scope, Some(at), e.into()));
                };
                out[i] = bits.pick[0];
            }
        }
        Ok(Value::String(out.into_iter().collect()))
    }

    /// A rule's error. Without a place of its own (a required value missing, a metadata value
    /// refused) it is placed at the record, entry, element or segment the rule read from.
    fn error(
        &self,
        step: &Step,
        scope: Scope<'_, '_>,
        at: Option<String>,
        reason: Reason,
    ) -> MapError {
        let within = |n: Node| match n {
            Node::CsvFile | Node::CsvRow(_) | Node::CsvCell(..) => self.tree.location(n),
            n => self.tree.origin(n),
        };
        MapError {
            at: at.or_else(|| within(scope.node)),
            rule: step.name.clone(),
            loc: step.loc.clone(),
            reason,
        }
    }
}

/// `bits` reading: the options whose character is one of `pick`, in option order, each with its
/// character. A text of another length, or with a character outside `chars`, is refused (the
/// value for its sender).
fn unpack_bits<'b>(bits: &'b Bits, text: &str) -> Result<Vec<(&'b str, char)>, ValueError> {
    let n = text.chars().count();
    if n != bits.options.len() {
        return Err(ValueError::new(
            text,
            format!(
                "is not a bit string of {} characters, one per option of `bits`",
                bits.options.len()
            ),
        )
        .detail(format!("it has {n}")));
    }
    let mut picked = Vec::new();
    for (i, (c, option)) in text.chars().zip(&bits.options).enumerate() {
        if !bits.chars.contains(&c) {
            let allowed: String = bits.chars.iter().collect();
            return Err(ValueError::new(
                text,
                format!(
                    "has a character other than `{allowed}` at position {} of the bit string",
                    i + 1
                ),
            ));
        }
        if bits.pick.contains(&c) {
            picked.push((option.as_str(), c));
        }
    }
    Ok(picked)
}

fn src_label(s: &Src) -> String {
    match s {
        Src::Path(_, text) => text.clone(),
        Src::Meta(k) => k.clone(),
        Src::Group => "@group".into(),
        Src::Sum(_, text) => format!("sum: {text}"),
    }
}

/// The document under construction: an ordered tree whose keys borrow from the plan, so building
/// it hashes and allocates nothing per key; it becomes a `serde_json::Value` once, at the end.
pub(crate) enum Out<'p> {
    Null,
    Obj(Vec<(&'p str, Out<'p>)>),
    Arr(Vec<Out<'p>>),
    Val(Value),
}

impl Out<'_> {
    /// The member `key` of an object (`None` for anything else), as `Value::get` would find it.
    pub(crate) fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Out::Obj(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value this becomes, leaving it as it is.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Out::Null => Value::Null,
            Out::Val(v) => v.clone(),
            Out::Arr(items) => Value::Array(items.iter().map(Out::to_value).collect()),
            Out::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Out::Null => Value::Null,
            Out::Val(v) => v,
            Out::Arr(items) => Value::Array(items.into_iter().map(Out::into_value).collect()),
            Out::Obj(fields) => {
                let mut m = Map::with_capacity(fields.len());
                for (k, v) in fields {
                    m.insert(k.to_string(), v.into_value());
                }
                Value::Object(m)
            }
        }
    }
}

/// The place a target path names inside `out`, creating objects and arrays on the way;
/// `[+]` appends a new item.
fn slot<'v, 'p>(out: &'v mut Out<'p>, path: &'p [TSeg]) -> &'v mut Out<'p> {
    let mut cur = out;
    for seg in path {
        cur = match seg {
            TSeg::Key(k) => {
                if !matches!(cur, Out::Obj(_)) {
                    *cur = Out::Obj(Vec::new());
                }
                let Out::Obj(fields) = cur else {
                    unreachable!("made an object above")
                };
                let i = match fields.iter().position(|(name, _)| *name == k.as_str()) {
                    Some(i) => i,
                    None => {
                        fields.push((k.as_str(), Out::Null));
                        fields.len() - 1
                    }
                };
                &mut fields[i].1
            }
            TSeg::Index(i) => {
                if !matches!(cur, Out::Arr(_)) {
                    *cur = Out::Arr(Vec::new());
                }
                let Out::Arr(items) = cur else {
                    unreachable!("made an array above")
                };
                while items.len() <= *i {
                    items.push(Out::Null);
                }
                &mut items[*i]
            }
            TSeg::Append => {
                if !matches!(cur, Out::Arr(_)) {
                    *cur = Out::Arr(Vec::new());
                }
                let Out::Arr(items) = cur else {
                    unreachable!("made an array above")
                };
                items.push(Out::Null);
                let last = items.len() - 1;
                &mut items[last]
            }
        };
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Format, Tree};
    use crate::redact::Disclose;

    fn bits(options: &[&str], chars: &str, pick: &str) -> Bits {
        Bits {
            options: options.iter().map(|o| o.to_string()).collect(),
            chars: chars.chars().collect(),
            pick: pick.chars().collect(),
            pack: false,
        }
    }

    #[test]
    fn unpacking_picks_the_options_whose_character_is_picked() {
        let departments = [
            "internal_medicine",
            "psychiatry",
            "surgery",
            "orthopedics",
            "neurosurgery",
            "dermatology",
            "urology",
            "gynecology",
            "ophthalmology",
            "otorhinolaryngology",
            "rehabilitation",
            "dentistry",
            "other",
        ];
        let b = bits(&departments, "01", "1");
        assert_eq!(
            unpack_bits(&b, "1000000000001").unwrap(),
            vec![("internal_medicine", '1'), ("other", '1')]
        );
        assert!(unpack_bits(&b, "0000000000000").unwrap().is_empty());
        let services = ["visit", "nursing", "rehab", "day_rehab", "short_stay"];
        let checked = bits(&services, "012", "12");
        let underlined = bits(&services, "012", "2");
        assert_eq!(
            unpack_bits(&checked, "20010").unwrap(),
            vec![("visit", '2'), ("day_rehab", '1')]
        );
        assert_eq!(
            unpack_bits(&underlined, "20010").unwrap(),
            vec![("visit", '2')]
        );
    }

    #[test]
    fn a_wrong_length_or_character_is_refused_without_the_value_in_display() {
        let b = bits(&["right", "left"], "01", "1");
        let e = unpack_bits(&b, "101").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value is not a bit string of 2 characters, one per option of `bits`"
        );
        assert!(e.for_sender().to_string().contains("`101`"), "{e:?}");
        assert!(e.for_sender().to_string().contains("it has 3"), "{e:?}");
        let e = unpack_bits(&b, "1x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value has a character other than `01` at position 2 of the bit string"
        );
        // Characters, not bytes: a full-width １ is one wrong character.
        let e = unpack_bits(&b, "1１").unwrap_err();
        assert!(e.to_string().contains("position 2"), "{e}");
    }

    /// `$each.position` numbers the items an `each` made, from 1: an item its `when` passes over
    /// takes no number; an inner `each` numbers its own items.
    #[test]
    fn each_position_counts_the_items_made() {
        let yaml = "id: t\nversion: 1\nsource: { format: csv, charset: utf-8 }\n\
            target: { format: fhir }\nfields:\n  resourceType: { const: Claim }\n  item[+]:\n    \
            each: \"*\"\n    when: { \"1\": \"02\" }\n    fields:\n      \
            sequence: { from: $each.position, as: integer }\n      code: \"3\"\n      \
            detail[+]:\n        each: \"3\"\n        fields:\n          \
            sequence: { from: $each.position, as: integer }\n";
        let m = super::super::compile::compile_str(yaml, std::path::Path::new("t.yaml"))
            .expect("compiles");
        let csv = "02,x,111111\n01,x,131011\n02,x,112111\n";
        let tree = Tree::parse(Format::Csv, csv.as_bytes(), &m.source.parse).expect("parses");
        let made = run(&m, &tree, &Meta::default()).expect("runs");
        assert_eq!(
            made[0]["item"],
            serde_json::json!([
                { "sequence": 1, "code": "111111", "detail": [{ "sequence": 1 }] },
                { "sequence": 2, "code": "112111", "detail": [{ "sequence": 1 }] }
            ])
        );
        let top = yaml.replace("  item[+]:", "  id: $each.position\n  item[+]:");
        let e = super::super::compile::compile_str(&top, std::path::Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`$each.position` (only inside an `each`)"),
            "{e}"
        );
    }

    /// A group's fields come from its `head` member, wherever it stands; its items from all.
    #[test]
    fn documents_head_picks_the_member_the_fields_read() {
        let yaml = "id: t\nversion: 1\nsource: { format: csv, charset: utf-8 }\n\
            documents: { each: \"*\", group_by: [\"2\"], head: { \"1\": \"01\" } }\n\
            target: ServiceUsage@1\nfields:\n  subject.insurer_number: \"3\"\n  \
            subject.insured_number: \"2\"\n  kind: { const: actual }\n  items[+]:\n    \
            each: \"@group\"\n    when: { \"1\": \"02\" }\n    fields:\n      service_code: \"3\"\n";
        let m = super::super::compile::compile_str(yaml, std::path::Path::new("t.yaml"))
            .expect("compiles");
        let docs = |csv: &str| {
            let tree = Tree::parse(Format::Csv, csv.as_bytes(), &m.source.parse).expect("parses");
            run(&m, &tree, &Meta::default())
        };
        let made = docs("02,0000012345,111111\n01,0000012345,131011\n02,0000012345,112111\n")
            .expect("runs");
        assert_eq!(made.len(), 1);
        assert_eq!(
            made[0]["subject"]["insurer_number"], "131011",
            "from the 01 member"
        );
        let codes: Vec<&Value> = made[0]["items"].as_array().expect("items").iter().collect();
        assert_eq!(
            codes,
            [
                &serde_json::json!({"service_code": "111111"}),
                &serde_json::json!({"service_code": "112111"})
            ]
        );

        // A group without its head: the error names the group's first record, not a value.
        let e = docs("01,0000012345,131011\n02,0000012399,111111\n").unwrap_err();
        assert_eq!(e.at.as_deref(), Some("record 2 (line 2)"), "{e}");
        assert_eq!(e.rule, "documents.head");
        assert!(
            e.to_string()
                .contains("no member that meets `documents.head`"),
            "{e}"
        );
        assert!(!e.to_string().contains("0000012399"), "{e}");
        // Two heads in one group: named at the second.
        let e = docs("01,0000012345,131011\n02,0000012345,1\n01,0000012345,131011\n").unwrap_err();
        assert_eq!(e.at.as_deref(), Some("record 3 (line 3)"), "{e}");
        assert!(e.to_string().contains("a second member"), "{e}");
    }

    /// A member of a kind `documents.members` does not allow stops the input at its record and
    /// column; the value (the record kind) is said to the sender only.
    #[test]
    fn documents_members_refuses_a_record_no_rule_reads() {
        let yaml = "id: t\nversion: 1\nsource: { format: csv, charset: utf-8 }\n\
            documents: { each: \"*\", group_by: [\"2\"], head: { \"1\": \"01\" }, members: { \"1\": [\"01\", \"02\"] } }\n\
            target: ServiceUsage@1\nfields:\n  subject.insurer_number: \"3\"\n  \
            subject.insured_number: \"2\"\n  kind: { const: actual }\n  items[+]:\n    \
            each: \"@group\"\n    when: { \"1\": \"02\" }\n    fields:\n      service_code: \"3\"\n";
        let m = super::super::compile::compile_str(yaml, std::path::Path::new("t.yaml"))
            .expect("compiles");
        let docs = |csv: &str| {
            let tree = Tree::parse(Format::Csv, csv.as_bytes(), &m.source.parse).expect("parses");
            run(&m, &tree, &Meta::default())
        };
        let made = docs("01,0000012345,131011\n02,0000012345,111111\n").expect("runs");
        assert_eq!(made.len(), 1);
        let e = docs("01,0000012345,131011\n02,0000012345,111111\n04,0000012345,9\n").unwrap_err();
        assert_eq!(e.at.as_deref(), Some("record 3 (line 3), column 1"), "{e}");
        assert_eq!(e.rule, "documents.members");
        let plain = e.to_string();
        assert!(
            plain.contains("wants `1` to be one of `01`, `02`"),
            "{plain}"
        );
        assert!(
            !plain.contains("04"),
            "the value is for the sender: {plain}"
        );
        assert!(!plain.contains("0000012345"), "{plain}");
        use crate::redact::Disclose;
        let told = e.for_sender().to_string();
        assert!(
            told.starts_with("record 3 (line 3), column 1: `04` is not allowed"),
            "{told}"
        );
        // An empty kind is refused as well, naming the record.
        let e = docs("01,0000012345,131011\n,0000012345,9\n").unwrap_err();
        assert_eq!(e.at.as_deref(), Some("record 2 (line 2)"), "{e}");
        assert!(e.to_string().contains("has no value"), "{e}");
    }

    fn insured_numbers(documents: &str, csv: &str) -> Vec<String> {
        let yaml = format!(
            "id: t\nversion: 1\nsource: {{ format: csv, charset: utf-8 }}\ndocuments: {documents}\n\
             target: InsuredPerson@1\nfields:\n  subject.insurer_number: \"2\"\n  subject.insured_number: \"3\"\n"
        );
        let m = super::super::compile::compile_str(&yaml, std::path::Path::new("t.yaml"))
            .expect("compiles");
        let tree = Tree::parse(Format::Csv, csv.as_bytes(), &m.source.parse).expect("parses");
        run(&m, &tree, &Meta::default())
            .expect("runs")
            .iter()
            .map(|d| {
                d["subject"]["insured_number"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn documents_when_keeps_only_the_roots_that_meet_it() {
        let csv = "種別,保険者番号,被保険者番号\n1.1,131011,0000012345\n9,131011,0000012346\n1.2,131011,0000012347\n";
        // The header row and the `9` record fail the condition and make no document.
        assert_eq!(
            insured_numbers(r#"{ each: "*", when: { "1": ["1.1", "1.2"] } }"#, csv),
            ["0000012345", "0000012347"]
        );
        // Without `when` every record is a document, the header row too.
        assert_eq!(insured_numbers(r#"{ each: "*" }"#, csv).len(), 4);
        // `""` (no value) and `"*"` (a value) work as in a rule's `when`.
        let gaps = "x,131011,0000012345\n,131011,0000012346\n";
        assert_eq!(
            insured_numbers(r#"{ each: "*", when: { "1": "" } }"#, gaps),
            ["0000012346"]
        );
        assert_eq!(
            insured_numbers(r#"{ each: "*", when: { "1": "*" } }"#, gaps),
            ["0000012345"]
        );
        // Conditions are met before grouping: a group is made of the roots that meet them.
        let grouped = "a,131011,0000012345\nb,131011,0000012345\na,131011,0000012346\n";
        assert_eq!(
            insured_numbers(
                r#"{ each: "*", group_by: ["3"], when: { "1": b } }"#,
                grouped
            ),
            ["0000012345"]
        );
    }
}

#[cfg(test)]
mod places {
    use super::*;
    use crate::formats::{Format, Tree};
    use crate::redact::Disclose;

    fn compile(yaml: &str) -> Mapping {
        super::super::compile::compile_str(yaml, std::path::Path::new("m.yaml")).expect("compiles")
    }

    fn error(m: &Mapping, format: Format, input: &str) -> MapError {
        let tree = Tree::parse(format, input.as_bytes(), &m.source.parse).expect("parses");
        run(m, &tree, &Meta::default()).expect_err("a rule fails")
    }

    const ROSTER: &str = "id: t\nversion: 1\nsource: { format: csv, charset: utf-8, header: true }\n\
        documents: { each: \"*\" }\ntarget: InsuredPerson@1\nfields:\n  subject.insurer_number: 保険者番号\n  \
        subject.insured_number: { from: 被保険者番号, required: true }\n  \
        birth_date: { from: 生年月日, then: [{ date: yyyyMMdd }] }\n";

    #[test]
    fn a_bad_date_in_record_57_names_the_record_its_line_the_column_and_the_rule() {
        let mut csv = String::from("保険者番号,被保険者番号,生年月日\n");
        for i in 1..57 {
            csv.push_str(&format!("131011,{:010},19400101\n", 12344 + i));
        }
        csv.push_str("131011,0000099999,1948-04-05\n131011,0000099998,19400101\n");
        let e = error(&compile(ROSTER), Format::Csv, &csv);
        assert_eq!(
            e.to_string(),
            "`生年月日` at record 57 (line 58), column 3: the value does not match the date pattern \
             `yyyyMMdd` (transform `date`) (rule `birth_date` in m.yaml:9:3)"
        );
        assert!(!format!("{e:?}").contains("1948-04-05"), "{e:?}");
        assert!(
            e.for_sender().to_string().starts_with(
                "`生年月日` at record 57 (line 58), column 3: `1948-04-05` does not match"
            ),
            "{}",
            e.for_sender()
        );
    }

    #[test]
    fn a_missing_value_is_placed_at_the_record_or_segment_it_was_read_from() {
        // A record: the one whose 被保険者番号 is empty, with its physical line (a quoted line
        // break in record 1 makes record 2 start on line 4).
        let csv = "保険者番号,被保険者番号,生年月日\n131011,\"0000012345\n\",19400101\n131011,,19400101\n";
        let e = error(&compile(ROSTER), Format::Csv, csv);
        assert_eq!(
            e.to_string(),
            "record 2 (line 4): required value is missing (looked in 被保険者番号) (rule \
             `subject.insured_number` in m.yaml:8:3)"
        );
        // Without `documents`, the file's rules read its first record.
        let whole = compile(
            "id: t\nversion: 1\nsource: { format: csv, charset: utf-8 }\ntarget: InsuredPerson@1\n\
             fields:\n  birth_date: { from: \"3\", required: true }\n",
        );
        let e = error(&whole, Format::Csv, "131011,0000012345\n");
        assert!(
            e.to_string().starts_with("record 1 (line 1): required"),
            "{e}"
        );
        // An HL7 v2 `each` item: its segment. The whole message is no place worth naming.
        let hl7 = compile(
            "id: t\nversion: 1\nsource: { format: hl7v2 }\ntarget: InsuredPerson@1\nfields:\n  \
             birth_date: { from: PID-7, required: true }\n  identifiers[+]:\n    each: NK1\n    \
             fields:\n      system: { const: x }\n      value: { from: \"-2\", required: true }\n",
        );
        let msg = "MSH|^~\\&|A|B|C|D|20251024||ADT^A08|1|P|2.5\rPID|1||1||太郎||19480405\r\
                   NK1|1|花子\rNK1|2|\r";
        let e = error(&hl7, Format::Hl7v2, msg);
        assert!(
            e.to_string()
                .starts_with("NK1[2] (segment 4): required value is missing"),
            "{e}"
        );
        let e = error(
            &hl7,
            Format::Hl7v2,
            "MSH|^~\\&|A|B|C|D|20251024||ADT^A08|1|P|2.5\rPID|1\r",
        );
        assert!(
            e.to_string()
                .starts_with("required value is missing (looked in PID-7)"),
            "{e}"
        );
    }
}
