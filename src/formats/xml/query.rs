//! Reading an [`XmlDoc`]: selecting nodes by a compiled [`Path`], values, locations that name an
//! element by its path and line, and a walk of every value with a path that selects it again. All
//! loops, no recursion on the document's depth; a node from another document gives nothing.

use super::*;
use super::{chars::*, model::*, path::*};

impl XmlDoc {
    /// The document element.
    pub fn root(&self) -> Node {
        Node {
            element: 0,
            attribute: None,
        }
    }

    /// The encoding the input was decoded from (e.g. "UTF-8", "Shift_JIS").
    pub fn encoding(&self) -> &'static str {
        self.encoding
    }

    /// Number of elements in the document.
    pub fn element_count(&self) -> usize {
        self.elements.len()
    }

    /// The prefix → URI table under which every path from [`XmlDoc::walk`]
    /// compiles: the document's own prefixes where they are unambiguous, `""` for
    /// a default namespace when that is unambiguous, generated `nsN` otherwise.
    /// The `xml` prefix is implicit and not listed.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        self.declared.clone()
    }

    pub(super) fn element(&self, node: Node) -> Option<&Element> {
        self.elements.get(node.element)
    }

    pub(super) fn attribute(&self, node: Node) -> Option<&Attribute> {
        let el = self.element(node)?;
        let a = node.attribute?;
        if a < el.attr_start || a >= el.attr_end {
            return None;
        }
        self.attrs.get(a)
    }

    pub(super) fn cur(&self, node: Node) -> Option<Cur> {
        match node.attribute {
            None => self.element(node).map(|_| Cur::El(node.element)),
            Some(a) => self.attribute(node).map(|_| Cur::At(node.element, a)),
        }
    }

    /// (namespace URI, "" for none; local name) of an element or attribute.
    pub fn name(&self, node: Node) -> Option<(&str, &str)> {
        let (ns, local) = match node.attribute {
            None => {
                let el = self.element(node)?;
                (el.ns, el.local())
            }
            Some(_) => {
                let a = self.attribute(node)?;
                (a.ns, a.local())
            }
        };
        Some((self.uris.get(ns).map_or("", String::as_str), local))
    }

    /// The name as written in the document, prefix included.
    pub fn qname(&self, node: Node) -> Option<&str> {
        match node.attribute {
            None => self.element(node).map(|e| &*e.qname),
            Some(_) => self.attribute(node).map(|a| &*a.qname),
        }
    }

    /// The raw direct text of an element (untrimmed), or an attribute's value.
    pub fn text(&self, node: Node) -> Option<&str> {
        match node.attribute {
            None => self.element(node).map(|e| e.text.as_str()),
            Some(_) => self.attribute(node).map(|a| &*a.value),
        }
    }

    /// [`XmlDoc::text`] without surrounding XML whitespace (space, tab, CR, LF;
    /// an ideographic space U+3000 is kept).
    pub fn text_trimmed(&self, node: Node) -> Option<&str> {
        self.text(node).map(trim_xml)
    }

    /// An attribute's value, or an element's direct text trimmed of surrounding
    /// XML whitespace; `None` when that is empty or the node is unknown.
    pub fn value(&self, node: Node) -> Option<Cow<'_, str>> {
        let v = match node.attribute {
            None => trim_xml(&self.element(node)?.text),
            Some(_) => &self.attribute(node)?.value,
        };
        (!v.is_empty()).then_some(Cow::Borrowed(v))
    }

    /// The parent element of an element, or the element owning an attribute.
    pub fn parent(&self, node: Node) -> Option<Node> {
        match node.attribute {
            Some(_) => self.attribute(node).map(|_| Node {
                element: node.element,
                attribute: None,
            }),
            None => self.element(node)?.parent.map(|p| Node {
                element: p,
                attribute: None,
            }),
        }
    }

    /// Child elements in document order.
    pub fn children(&self, node: Node) -> impl Iterator<Item = Node> + '_ {
        let kids: &[usize] = match node.attribute {
            None => self.element(node).map_or(&[], |e| e.children.as_slice()),
            Some(_) => &[],
        };
        kids.iter().map(|&c| Node {
            element: c,
            attribute: None,
        })
    }

    /// Attributes of an element in document order (namespace declarations excluded).
    pub fn attributes(&self, node: Node) -> impl Iterator<Item = Node> + '_ {
        let element = node.element;
        let range = match (node.attribute, self.element(node)) {
            (None, Some(e)) => e.attr_start..e.attr_end,
            _ => 0..0,
        };
        range.map(move |a| Node {
            element,
            attribute: Some(a),
        })
    }

    /// 1-based line and column where the element's start tag or the attribute's name begins.
    pub fn line_column(&self, node: Node) -> Option<(usize, usize)> {
        match node.attribute {
            None => self.element(node).map(|e| (e.line, e.column)),
            Some(_) => self.attribute(node).map(|a| (a.line, a.column)),
        }
    }

    pub(super) fn name_matches(&self, el: &Element, name: &ExpandedName) -> bool {
        el.local() == name.local && self.uris.get(el.ns).is_some_and(|u| *u == name.ns)
    }

    pub(super) fn test_matches(&self, el: &Element, test: &NameTest) -> bool {
        match test {
            NameTest::Any => true,
            NameTest::Name(name) => self.name_matches(el, name),
        }
    }

    pub(super) fn predicate_holds(&self, element: usize, predicate: &Predicate) -> bool {
        let Some(el) = self.elements.get(element) else {
            return false;
        };
        match predicate {
            Predicate::Position(_) => true,
            Predicate::AttrEquals(name, value) => self
                .attrs
                .get(el.attr_start..el.attr_end)
                .unwrap_or(&[])
                .iter()
                .any(|a| {
                    a.local() == name.local
                        && self.uris.get(a.ns).is_some_and(|u| *u == name.ns)
                        && *a.value == **value
                }),
            Predicate::ChildEquals(name, value) => el.children.iter().any(|&c| {
                self.elements
                    .get(c)
                    .is_some_and(|ch| self.name_matches(ch, name) && trim_xml(&ch.text) == value)
            }),
        }
    }

    /// Evaluates `path` from `from` (ignored for absolute paths). `out` is
    /// cleared first and receives the matches in document order, without duplicates.
    pub fn select(&self, from: Node, path: &Path, out: &mut Vec<Node>) {
        out.clear();
        let start = if path.absolute {
            Some(Cur::Doc)
        } else {
            self.cur(from)
        };
        let Some(start) = start else {
            return;
        };
        let mut current = vec![start];
        let mut next: Vec<Cur> = Vec::new();
        let mut candidates: Vec<usize> = Vec::new();
        for step in &path.steps {
            next.clear();
            for &c in &current {
                match step {
                    Step::SelfNode => next.push(c),
                    Step::Parent => match c {
                        Cur::Doc => {}
                        Cur::El(e) => next.push(
                            self.elements
                                .get(e)
                                .and_then(|el| el.parent)
                                .map_or(Cur::Doc, Cur::El),
                        ),
                        Cur::At(e, _) => next.push(Cur::El(e)),
                    },
                    Step::Attr(name) => {
                        if let Cur::El(e) = c
                            && let Some(el) = self.elements.get(e)
                        {
                            for a in el.attr_start..el.attr_end {
                                if self.attrs.get(a).is_some_and(|at| {
                                    at.local() == name.local
                                        && self.uris.get(at.ns).is_some_and(|u| *u == name.ns)
                                }) {
                                    next.push(Cur::At(e, a));
                                }
                            }
                        }
                    }
                    Step::Child(test, predicates) => {
                        candidates.clear();
                        match c {
                            Cur::Doc => {
                                if self
                                    .elements
                                    .first()
                                    .is_some_and(|r| self.test_matches(r, test))
                                {
                                    candidates.push(0);
                                }
                            }
                            Cur::El(e) => {
                                if let Some(el) = self.elements.get(e) {
                                    candidates.extend(el.children.iter().copied().filter(|&ch| {
                                        self.elements
                                            .get(ch)
                                            .is_some_and(|k| self.test_matches(k, test))
                                    }));
                                }
                            }
                            Cur::At(..) => {}
                        }
                        for predicate in predicates {
                            match predicate {
                                Predicate::Position(n) => {
                                    let kept =
                                        n.checked_sub(1).and_then(|i| candidates.get(i)).copied();
                                    candidates.clear();
                                    candidates.extend(kept);
                                }
                                other => candidates.retain(|&ch| self.predicate_holds(ch, other)),
                            }
                        }
                        next.extend(candidates.iter().map(|&ch| Cur::El(ch)));
                    }
                }
            }
            if current.len() > 1 || matches!(step, Step::Parent) {
                next.sort_by_key(|c| c.order_key());
                next.dedup();
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                return;
            }
        }
        out.extend(current.into_iter().filter_map(|c| match c {
            Cur::Doc => None,
            Cur::El(e) => Some(Node {
                element: e,
                attribute: None,
            }),
            Cur::At(e, a) => Some(Node {
                element: e,
                attribute: Some(a),
            }),
        }));
    }

    /// "line 12, column 5 (/hk:被保険者証/hk:氏名)" with the document's own
    /// prefixes; `[n]` is added where same-named siblings exist.
    pub fn location(&self, node: Node) -> String {
        let Some(el) = self.element(node) else {
            return "(node not in this document)".to_string();
        };
        let mut chain = Vec::new();
        let mut cur = Some(node.element);
        while let Some(i) = cur {
            let Some(e) = self.elements.get(i) else { break };
            chain.push(e);
            cur = e.parent;
        }
        let mut path = String::new();
        for e in chain.iter().rev() {
            path.push('/');
            path.push_str(&e.qname);
            if e.sibling_count > 1 {
                path.push_str(&format!("[{}]", e.sibling_index));
            }
        }
        let (line, column) = match node.attribute {
            None => (el.line, el.column),
            Some(_) => match self.attribute(node) {
                Some(a) => {
                    path.push_str("/@");
                    path.push_str(&a.qname);
                    (a.line, a.column)
                }
                None => return "(node not in this document)".to_string(),
            },
        };
        format!("line {line}, column {column} ({path})")
    }

    pub(super) fn path_name(&self, ns: usize, local: &str, out: &mut String) {
        let prefix = self.path_prefix.get(ns).map_or("", String::as_str);
        if ns != 0 && !prefix.is_empty() {
            out.push_str(prefix);
            out.push(':');
        }
        out.push_str(local);
    }

    /// Calls `f(path, value)` for every element with non-empty trimmed text and
    /// every non-empty attribute, in document order. Each path is absolute, names
    /// one node (`[n]` where same-named siblings exist) and compiles with
    /// [`Path::compile`] under [`XmlDoc::namespaces`].
    pub fn walk(&self, f: &mut dyn FnMut(&str, &str)) {
        if self.elements.is_empty() {
            return;
        }
        let mut path = String::new();
        // (element, next child position, path length before this element)
        let mut stack: Vec<(usize, usize, usize)> = Vec::new();
        self.enter(0, &mut path, f);
        stack.push((0, 0, 0));
        while let Some(top) = stack.last_mut() {
            let (element, next_child, before) = *top;
            let child = self
                .elements
                .get(element)
                .and_then(|e| e.children.get(next_child))
                .copied();
            match child {
                Some(child) => {
                    top.1 += 1;
                    let len = path.len();
                    self.enter(child, &mut path, f);
                    stack.push((child, 0, len));
                }
                None => {
                    path.truncate(before);
                    stack.pop();
                }
            }
        }
    }

    /// Appends the element's step to `path` and reports its text and attributes.
    pub(super) fn enter(&self, element: usize, path: &mut String, f: &mut dyn FnMut(&str, &str)) {
        let Some(el) = self.elements.get(element) else {
            return;
        };
        path.push('/');
        self.path_name(el.ns, el.local(), path);
        if el.sibling_count > 1 {
            path.push_str(&format!("[{}]", el.sibling_index));
        }
        let text = trim_xml(&el.text);
        if !text.is_empty() {
            f(path, text);
        }
        let len = path.len();
        for a in self.attrs.get(el.attr_start..el.attr_end).unwrap_or(&[]) {
            if a.value.is_empty() {
                continue;
            }
            path.push_str("/@");
            self.path_name(a.ns, a.local(), path);
            f(path, &a.value);
            path.truncate(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::xml::test_support::Rng;
    use crate::formats::xml::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn japanese_element_names_and_text_work_in_paths_and_locations() {
        let xml = "<hk:被保険者証 xmlns:hk=\"urn:hk\">\n  <hk:氏名 種別=\"漢字\">介護 花子</hk:氏名>\n</hk:被保険者証>";
        let d = doc(xml);
        let n = ns(&[("hk", "urn:hk")]);
        assert_eq!(sel(&d, "/hk:被保険者証/hk:氏名", &n), ["介護 花子"]);
        assert_eq!(sel(&d, "/hk:被保険者証/hk:氏名/@種別", &n), ["漢字"]);
        let mut out = Vec::new();
        d.select(d.root(), &path("hk:氏名", &n), &mut out);
        assert_eq!(
            d.location(out[0]),
            "line 2, column 3 (/hk:被保険者証/hk:氏名)"
        );
        d.select(d.root(), &path("hk:氏名/@種別", &n), &mut out);
        assert_eq!(
            d.location(out[0]),
            "line 2, column 10 (/hk:被保険者証/hk:氏名/@種別)"
        );
    }

    #[test]
    fn deep_documents_within_a_raised_limit_are_walked_without_recursion() {
        let depth = 10_000;
        let xml = format!("{}x{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let limits = XmlLimits {
            max_depth: depth,
            ..XmlLimits::default()
        };
        let d = match parse(xml.as_bytes(), &limits) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let mut walked = Vec::new();
        d.walk(&mut |p, v| walked.push((p.len(), v.to_string())));
        assert_eq!(walked, [(depth * 2, "x".to_string())]);
        let deep = path(&"/a".repeat(depth), &[]);
        let mut out = Vec::new();
        d.select(d.root(), &deep, &mut out);
        assert_eq!(out.len(), 1);
        assert!(d.location(out[0]).ends_with("/a/a)"));
        assert!(
            d.location(out[0])
                .starts_with(&format!("line 1, column {}", 3 * (depth - 1) + 1))
        );
        drop(d);
    }

    #[test]
    fn relative_paths_wildcards_self_and_parent() {
        let d = doc(CARD);
        let n = card_ns();
        let mut items = Vec::new();
        d.select(d.root(), &path("hk:items/hk:item", &n), &mut items);
        assert_eq!(items.len(), 3);
        assert_eq!(values(&d, items[1], &path("hk:code", &n)), ["21"]);
        assert_eq!(
            values(&d, items[1], &path("./hk:label/text()", &n)),
            ["短期入所"]
        );
        assert_eq!(
            values(&d, items[1], &path("../hk:item[3]/hk:code", &n)),
            ["13"]
        );
        assert_eq!(values(&d, items[0], &path("*", &n)), ["11", "訪問介護"]);
        assert_eq!(values(&d, items[0], &path(".", &n)), [""]);
        let mut out = Vec::new();
        d.select(items[2], &path("..", &n), &mut out);
        assert_eq!(d.qname(out[0]), Some("hk:items"));
        // Union of parents is deduplicated.
        d.select(d.root(), &path("hk:items/hk:item/..", &n), &mut out);
        assert_eq!(out.len(), 1);
        // `*` at the start of an absolute path matches the document element.
        assert_eq!(sel(&d, "/*/x:name", &n), ["other namespace"]);
        assert_eq!(sel(&d, "/*/*/hk:item/hk:code", &n), ["11", "21", "13"]);
        // An attribute node's parent is its element.
        d.select(d.root(), &path("hk:name[2]/@type", &n), &mut out);
        assert_eq!(values(&d, out[0], &path("..", &n)), ["ヤマダ タロウ"]);
    }

    #[test]
    fn predicates_select_by_position_attribute_and_child_text() {
        let d = doc(CARD);
        let n = card_ns();
        assert_eq!(
            sel(&d, "/hk:card/hk:name[@type='kana']", &n),
            ["ヤマダ タロウ"]
        );
        assert_eq!(
            sel(&d, "/hk:card/hk:name[@type=\"kanji\"]", &n),
            ["山田 太郎"]
        );
        assert_eq!(
            sel(&d, "/hk:card/hk:name[ @x:script = 'katakana' ]", &n),
            ["ヤマダ タロウ"]
        );
        assert_eq!(
            sel(&d, "hk:items/hk:item[hk:code='21']/hk:label", &n),
            ["短期入所"]
        );
        assert_eq!(sel(&d, "hk:items/hk:item[2]/hk:label", &n), ["短期入所"]);
        assert!(sel(&d, "hk:items/hk:item[4]", &n).is_empty());
        assert!(sel(&d, "hk:items/hk:item[hk:code='99']", &n).is_empty());
        // Predicates apply in order: position counts among the already filtered.
        assert_eq!(sel(&d, "hk:name[@type='kana'][1]", &n), ["ヤマダ タロウ"]);
        assert!(sel(&d, "hk:name[@type='kana'][2]", &n).is_empty());
        // Position among matching siblings, not among all children.
        assert_eq!(sel(&d, "/hk:card/*[3]", &n), ["other namespace"]);
        assert_eq!(sel(&d, "/hk:card/hk:name[1]/@type", &n), ["kanji"]);
        // Values may contain '/', ']' and the other quote.
        let q = doc(r#"<a><b k="x/y]'">1</b></a>"#);
        assert_eq!(sel(&q, r#"/a/b[@k="x/y]'"]"#, &[]), ["1"]);
    }

    #[test]
    fn select_on_a_node_from_elsewhere_returns_nothing_instead_of_panicking() {
        let big = doc(CARD);
        let small = doc("<a/>");
        let n = card_ns();
        let mut foreign = Vec::new();
        big.select(
            big.root(),
            &path("hk:items/hk:item[3]/hk:code", &n),
            &mut foreign,
        );
        let mut out = vec![small.root()];
        small.select(foreign[0], &path(".", &n), &mut out);
        assert!(out.is_empty());
        assert_eq!(small.value(foreign[0]), None);
        assert_eq!(small.location(foreign[0]), "(node not in this document)");
    }

    #[test]
    fn walk_paths_compile_back_and_select_the_same_value() {
        let d = doc(CARD);
        let mut pairs = Vec::new();
        d.walk(&mut |p, v| pairs.push((p.to_string(), v.to_string())));
        assert!(pairs.contains(&("/hk:card/hk:name[2]/@type".to_string(), "kana".to_string())));
        assert!(pairs.contains(&(
            "/hk:card/hk:name[2]/@x:script".to_string(),
            "katakana".to_string()
        )));
        assert!(pairs.contains(&("/hk:card/x:name".to_string(), "other namespace".to_string())));
        assert!(pairs.contains(&(
            "/hk:card/hk:items/hk:item[2]/hk:code".to_string(),
            "21".to_string()
        )));
        assert_eq!(d.namespaces(), card_ns());
        assert_eq!(assert_walk_round_trips(&d), pairs.len());
    }

    #[test]
    fn walk_handles_default_namespaces_and_clashing_prefixes() {
        // Default namespace only: unprefixed paths with a "" entry.
        let d = doc(r#"<card xmlns="urn:a"><name>A</name></card>"#);
        assert_eq!(d.namespaces(), ns(&[("", "urn:a")]));
        assert_eq!(assert_walk_round_trips(&d), 1);
        // A default namespace plus no-namespace elements: the default gets a generated prefix.
        let d = doc(r#"<card xmlns="urn:a"><name>A</name><plain xmlns="">P</plain></card>"#);
        assert_eq!(d.namespaces(), ns(&[("ns1", "urn:a")]));
        assert_eq!(assert_walk_round_trips(&d), 2);
        // One prefix bound to two URIs in different scopes.
        let d = doc(r#"<r><p:a xmlns:p="urn:1">1</p:a><p:a xmlns:p="urn:2">2</p:a></r>"#);
        assert_eq!(d.namespaces(), ns(&[("p", "urn:1"), ("ns1", "urn:2")]));
        assert_eq!(assert_walk_round_trips(&d), 2);
    }

    #[test]
    fn location_uses_document_prefixes_and_sibling_positions() {
        let d = doc(CARD);
        let n = ns(&[("k", "urn:kaigo:card")]);
        let mut out = Vec::new();
        d.select(d.root(), &path("k:items/k:item[2]/k:label", &n), &mut out);
        assert_eq!(
            d.location(out[0]),
            "line 8, column 35 (/hk:card/hk:items/hk:item[2]/hk:label)"
        );
        assert_eq!(d.location(d.root()), "line 2, column 1 (/hk:card)");
        assert_eq!(d.line_column(out[0]), Some((8, 35)));
    }

    #[test]
    fn tree_accessors_expose_parent_children_and_attributes() {
        let d = doc(r#"<a x="1" y="2"><b/>t<c/></a>"#);
        let kids: Vec<Node> = d.children(d.root()).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(d.qname(kids[1]), Some("c"));
        assert_eq!(d.parent(kids[1]), Some(d.root()));
        assert_eq!(d.parent(d.root()), None);
        let attrs: Vec<Node> = d.attributes(d.root()).collect();
        assert_eq!(
            attrs.iter().map(|&a| d.text(a)).collect::<Vec<_>>(),
            [Some("1"), Some("2")]
        );
        assert_eq!(d.parent(attrs[0]), Some(d.root()));
        assert_eq!(d.children(attrs[0]).count(), 0);
        assert_eq!(d.text(d.root()), Some("t"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn generated_trees_walk_paths_round_trip(seed in 1u64..) {
            let mut xml = String::new();
            random_tree(&mut Rng(seed), 0, &mut Vec::new(), &mut xml);
            match parse(xml.as_bytes(), &XmlLimits::default()) {
                Ok(d) => exercise(&d),
                Err(e) => prop_assert!(false, "generated document refused: {e}\n{xml}"),
            }
        }
    }
}
