//! XML bytes to an [`XmlDoc`]: decodes (see `encoding`), then walks quick-xml's events with
//! namespaces resolved, entities expanded (the five predefined and numeric references only),
//! structural limits enforced and every element's position kept. Refuses any `<!DOCTYPE`, never
//! fetches anything, never recurses on the input's depth, never panics.

use super::*;
use super::{chars::*, encoding::*, model::*};

/// Parses `bytes` into a document, enforcing `limits`.
pub fn parse(bytes: &[u8], limits: &XmlLimits) -> Result<XmlDoc, XmlError> {
    let decoded = decode(bytes)?;
    let text: &str = &decoded.text;
    if let Some((offset, ch)) = text.char_indices().find(|&(_, c)| !is_xml_char(c)) {
        let (line, column) = LineCursor::new(text).at(offset);
        return Err(XmlError::InvalidCharacter {
            line,
            column,
            code: u32::from(ch),
        });
    }
    let builder = Builder::new(text, limits);
    builder.run(decoded.encoding)
}

pub(super) struct RawAttr {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: usize,
    pub(super) column: usize,
}

pub(super) struct Builder<'a> {
    pub(super) text: &'a str,
    pub(super) limits: &'a XmlLimits,
    pub(super) cursor: LineCursor<'a>,
    pub(super) version: XmlVersion,
    pub(super) resolver: NamespaceResolver,
    pub(super) elements: Vec<Element>,
    pub(super) attrs: Vec<Attribute>,
    pub(super) uris: Vec<String>,
    pub(super) uri_ids: HashMap<String, usize>,
    /// Namespace declarations in document order, each (prefix, URI index) once.
    pub(super) decls: Vec<(String, usize)>,
    pub(super) decl_seen: HashSet<(String, usize)>,
    pub(super) stack: Vec<usize>,
    pub(super) nodes: usize,
}

impl<'a> Builder<'a> {
    pub(super) fn new(text: &'a str, limits: &'a XmlLimits) -> Self {
        Builder {
            text,
            limits,
            cursor: LineCursor::new(text),
            version: XmlVersion::Implicit1_0,
            resolver: NamespaceResolver::default(),
            elements: Vec::new(),
            attrs: Vec::new(),
            uris: vec![String::new()],
            uri_ids: HashMap::new(),
            decls: Vec::new(),
            decl_seen: HashSet::new(),
            stack: Vec::new(),
            nodes: 0,
        }
    }

    pub(super) fn run(mut self, encoding: &'static str) -> Result<XmlDoc, XmlError> {
        let mut reader = Reader::from_str(self.text);
        {
            let config = reader.config_mut();
            // End tags are matched against our own stack so that the error can name
            // both tags and where the open one started.
            config.check_end_names = false;
            config.allow_unmatched_ends = true;
            config.check_comments = true;
            config.allow_dangling_amp = false;
            config.expand_empty_elements = false;
            config.trim_text(false);
        }
        loop {
            let pos = to_usize(reader.buffer_position());
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(err) => {
                    let at = to_usize(reader.error_position()).max(pos);
                    return Err(self.reader_error(err, at));
                }
            };
            match event {
                Event::Decl(decl) => {
                    if pos != 0 {
                        return Err(self.malformed(
                            pos,
                            "an XML declaration <?xml ...?> appears after the start of the document"
                                .to_string(),
                            "the XML declaration may only be the very first thing in the file",
                        ));
                    }
                    self.version = decl
                        .xml_version()
                        .map_err(|e| self.malformed(pos, e.to_string(), HINT_WELL_FORMED))?;
                }
                Event::DocType(_) => {
                    let (line, column) = self.cursor.at(pos);
                    return Err(XmlError::DoctypeRefused { line, column });
                }
                Event::Start(tag) => self.start(&tag, pos, false)?,
                Event::Empty(tag) => self.start(&tag, pos, true)?,
                Event::End(tag) => self.end(tag.name().into_inner(), pos)?,
                Event::Text(text) => {
                    let content = text.xml_content(self.version);
                    self.add_text(&content, pos)?;
                }
                Event::CData(cdata) => {
                    let content = cdata.xml_content(self.version);
                    if self.stack.is_empty() {
                        return Err(self.outside_root(pos));
                    }
                    self.add_text(&content, pos)?;
                }
                Event::GeneralRef(reference) => {
                    let ch = self.resolve_reference(&reference, pos)?;
                    let mut buf = [0u8; 4];
                    let s: &str = ch.encode_utf8(&mut buf);
                    if self.stack.is_empty() {
                        return Err(self.outside_root(pos));
                    }
                    self.add_text(s, pos)?;
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(el) = self.stack.last().and_then(|&i| self.elements.get(i)) {
            return Err(XmlError::UnclosedElement {
                line: el.line,
                column: el.column,
                name: clip(&el.qname),
            });
        }
        if self.elements.is_empty() {
            return Err(self.malformed(
                self.text.len(),
                "the input has no document element".to_string(),
                "an XML document needs exactly one top-level element",
            ));
        }
        Ok(self.finish(encoding))
    }

    pub(super) fn malformed(&mut self, at: usize, detail: String, hint: &'static str) -> XmlError {
        let (line, column) = self.cursor.at(at);
        XmlError::Malformed {
            line,
            column,
            detail,
            hint,
        }
    }

    pub(super) fn outside_root(&mut self, at: usize) -> XmlError {
        self.malformed(
            at,
            "text outside the document element".to_string(),
            "only whitespace, comments and processing instructions may surround the top-level element",
        )
    }

    pub(super) fn reader_error(&mut self, err: QxError, at: usize) -> XmlError {
        match err {
            QxError::Syntax(SyntaxError::UnclosedDoctype)
            | QxError::IllFormed(IllFormedError::MissingDoctypeName) => {
                let (line, column) = self.cursor.at(at);
                XmlError::DoctypeRefused { line, column }
            }
            QxError::IllFormed(IllFormedError::UnclosedReference) => self.malformed(
                at,
                "'&' is not followed by an entity name and ';'".to_string(),
                HINT_AMP,
            ),
            // An escape error quotes the text around the '&': not for the log.
            QxError::Escape(_) => self.malformed(
                at,
                "malformed entity or character reference".to_string(),
                HINT_AMP,
            ),
            other => self.malformed(at, clip(&other.to_string()), HINT_WELL_FORMED),
        }
    }

    pub(super) fn resolve_reference(
        &mut self,
        reference: &BytesRef<'_>,
        pos: usize,
    ) -> Result<char, XmlError> {
        let name: &str = reference;
        if reference.is_char_ref() {
            let detail = match reference.resolve_char_ref() {
                Ok(Some(ch)) if is_xml_char(ch) => return Ok(ch),
                Ok(Some(ch)) => format!("U+{:04X} is not a character XML allows", u32::from(ch)),
                Ok(None) => "not a character reference".to_string(),
                Err(e) => clip(&e.to_string()),
            };
            let (line, column) = self.cursor.at(pos);
            return Err(XmlError::InvalidCharRef {
                line,
                column,
                reference: Quoted::new(clip(name)),
                detail: Quoted::new(detail),
            });
        }
        match predefined_entity(name) {
            Some(ch) => Ok(ch),
            None => {
                let (line, column) = self.cursor.at(pos);
                Err(XmlError::UndefinedEntity {
                    line,
                    column,
                    name: Quoted::new(clip(name)),
                })
            }
        }
    }

    pub(super) fn add_text(&mut self, content: &str, pos: usize) -> Result<(), XmlError> {
        match self.stack.last().copied() {
            Some(top) => {
                if let Some(el) = self.elements.get_mut(top) {
                    el.text.push_str(content);
                }
                Ok(())
            }
            None if content.chars().all(is_xml_whitespace) => Ok(()),
            None => Err(self.outside_root(pos)),
        }
    }

    pub(super) fn bump_nodes(&mut self, line: usize, column: usize) -> Result<(), XmlError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(XmlError::TooManyNodes {
                line,
                column,
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    /// Refuses two attributes of one element with the same namespace URI and
    /// local name (e.g. `p:k` and `q:k` with p and q bound to one URI). Sorting
    /// keeps this O(k log k) for elements with many attributes.
    pub(super) fn check_duplicate_attributes(&self, attr_start: usize) -> Result<(), XmlError> {
        let Some(own) = self.attrs.get(attr_start..) else {
            return Ok(());
        };
        if own.len() < 2 {
            return Ok(());
        }
        let mut keys: Vec<(usize, &str, usize)> = own
            .iter()
            .enumerate()
            .map(|(i, a)| (a.ns, a.local(), i))
            .collect();
        keys.sort_unstable();
        // Report the repeat that comes first in the document.
        let repeat = keys
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
            .map(|w| (w[1].2, w[0].2))
            .min();
        let Some((later, earlier)) = repeat else {
            return Ok(());
        };
        match (own.get(later), own.get(earlier)) {
            (Some(a), Some(previous)) => Err(XmlError::Malformed {
                line: a.line,
                column: a.column,
                detail: format!(
                    "attribute '{}' repeats '{}' (same namespace and local name)",
                    clip(&a.qname),
                    clip(&previous.qname)
                ),
                hint: "an element may carry each attribute only once",
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn intern(&mut self, uri: &str) -> usize {
        if uri.is_empty() {
            return 0;
        }
        if let Some(&id) = self.uri_ids.get(uri) {
            return id;
        }
        let id = self.uris.len();
        self.uris.push(uri.to_string());
        self.uri_ids.insert(uri.to_string(), id);
        id
    }

    pub(super) fn resolve_ns(
        &mut self,
        qname: &str,
        element: bool,
        line: usize,
        column: usize,
    ) -> Result<usize, XmlError> {
        let resolved = if element {
            self.resolver.resolve_element(QName(qname)).0
        } else {
            self.resolver.resolve_attribute(QName(qname)).0
        };
        match resolved {
            ResolveResult::Bound(Namespace(uri)) => {
                let uri = uri.to_string();
                Ok(self.intern(&uri))
            }
            ResolveResult::Unbound => Ok(0),
            ResolveResult::Unknown(prefix) => Err(XmlError::UndeclaredPrefix {
                line,
                column,
                prefix: clip(&prefix),
                name: clip(qname),
            }),
        }
    }

    pub(super) fn start(
        &mut self,
        tag: &BytesStart<'_>,
        pos: usize,
        empty: bool,
    ) -> Result<(), XmlError> {
        let (line, column) = self.cursor.at(pos);
        let qname: &str = tag.name().into_inner();
        let Some((prefix, local)) = split_qname(qname) else {
            return Err(XmlError::Malformed {
                line,
                column,
                detail: format!("'{}' is not a valid element name", clip(qname)),
                hint: HINT_NAME,
            });
        };
        let depth = self.stack.len() + 1;
        let level = match u16::try_from(depth) {
            Ok(level) if depth <= self.limits.max_depth => level,
            _ => {
                return Err(XmlError::TooDeep {
                    line,
                    column,
                    name: clip(qname),
                    depth,
                    limit: self.limits.max_depth.min(usize::from(u16::MAX)),
                });
            }
        };
        if self.stack.is_empty() && !self.elements.is_empty() {
            return Err(XmlError::Malformed {
                line,
                column,
                detail: format!(
                    "a second top-level element <{}> follows the first",
                    clip(qname)
                ),
                hint: "an XML document has exactly one top-level element; wrap repeated records in one",
            });
        }
        self.bump_nodes(line, column)?;

        // Pass 1: read every attribute (declarations may follow the names they bind).
        let mut raw: Vec<RawAttr> = Vec::new();
        for item in tag.attributes() {
            let attr = match item {
                Ok(attr) => attr,
                Err(e) => return Err(self.attr_syntax_error(&e, pos)),
            };
            if raw.len() >= self.limits.max_attributes {
                return Err(XmlError::TooManyAttributes {
                    line,
                    column,
                    name: clip(qname),
                    limit: self.limits.max_attributes,
                });
            }
            let key: &str = attr.key.into_inner();
            let key_pos = offset_in(self.text, key).unwrap_or(pos);
            let (key_line, key_column) = self.cursor.at(key_pos);
            if split_qname(key).is_none() {
                return Err(XmlError::Malformed {
                    line: key_line,
                    column: key_column,
                    detail: format!("'{}' is not a valid attribute name", clip(key)),
                    hint: HINT_NAME,
                });
            }
            let value_pos = match &attr.value {
                Cow::Borrowed(v) => offset_in(self.text, v).unwrap_or(key_pos),
                Cow::Owned(_) => key_pos,
            };
            if let Some(lt) = attr.value.find('<') {
                return Err(self.malformed(
                    value_pos + lt,
                    format!("'<' inside the value of attribute '{}'", clip(key)),
                    "write '<' in attribute values as &lt;",
                ));
            }
            let value = match attr.normalized_value(self.version) {
                Ok(v) => v.into_owned(),
                Err(e) => return Err(self.attr_value_error(e, &attr.value, value_pos)),
            };
            if let Some(bad) = value.chars().find(|&c| !is_xml_char(c)) {
                let (l, c) = self.cursor.at(value_pos);
                return Err(XmlError::InvalidCharRef {
                    line: l,
                    column: c,
                    reference: Quoted::new(format!("#x{:X}", u32::from(bad))),
                    detail: Quoted::new(format!(
                        "attribute '{}' refers to U+{:04X}, which XML does not allow",
                        clip(key),
                        u32::from(bad)
                    )),
                });
            }
            raw.push(RawAttr {
                key: key.to_string(),
                value,
                line: key_line,
                column: key_column,
            });
        }

        // Pass 2: namespace declarations open a new scope.
        self.resolver.set_level(level);
        for a in &raw {
            let Some(decl) = QName(&a.key).as_namespace_binding() else {
                continue;
            };
            let declared_prefix = match decl {
                PrefixDeclaration::Default => "",
                PrefixDeclaration::Named(p) => p,
            };
            if let Err(e) = self.resolver.add(decl, Namespace(&a.value)) {
                return Err(XmlError::InvalidNamespace {
                    line: a.line,
                    column: a.column,
                    detail: clip(&e.to_string()),
                });
            }
            if declared_prefix != "xml" && !a.value.is_empty() {
                let uri_id = self.intern(&a.value);
                let key = (declared_prefix.to_string(), uri_id);
                if !self.decl_seen.contains(&key) {
                    self.decl_seen.insert(key.clone());
                    self.decls.push(key);
                }
            }
        }

        // Pass 3: resolve the element name and the ordinary attributes.
        if prefix == Some("xmlns") {
            return Err(XmlError::InvalidNamespace {
                line,
                column,
                detail: format!("element <{}> uses the reserved prefix 'xmlns'", clip(qname)),
            });
        }
        let ns = self.resolve_ns(qname, true, line, column)?;
        let local_start = qname.len() - local.len();
        let attr_start = self.attrs.len();
        for a in raw {
            if QName(&a.key).as_namespace_binding().is_some() {
                continue;
            }
            let attr_ns = self.resolve_ns(&a.key, false, a.line, a.column)?;
            self.bump_nodes(a.line, a.column)?;
            let attr_local_start = a.key.rfind(':').map_or(0, |i| i + 1);
            self.attrs.push(Attribute {
                ns: attr_ns,
                local_start: attr_local_start,
                qname: a.key.into_boxed_str(),
                value: a.value.into_boxed_str(),
                line: a.line,
                column: a.column,
            });
        }

        self.check_duplicate_attributes(attr_start)?;

        let index = self.elements.len();
        let parent = self.stack.last().copied();
        if let Some(p) = parent.and_then(|p| self.elements.get_mut(p)) {
            p.children.push(index);
        }
        self.elements.push(Element {
            ns,
            qname: qname.into(),
            local_start,
            parent,
            children: Vec::new(),
            attr_start,
            attr_end: self.attrs.len(),
            text: String::new(),
            line,
            column,
            sibling_index: 1,
            sibling_count: 1,
        });
        if empty {
            self.resolver.set_level(level.saturating_sub(1));
        } else {
            self.stack.push(index);
        }
        Ok(())
    }

    pub(super) fn end(&mut self, name: &str, pos: usize) -> Result<(), XmlError> {
        let (line, column) = self.cursor.at(pos);
        let open = self.stack.pop();
        let Some(el) = open.and_then(|i| self.elements.get(i)) else {
            return Err(XmlError::Malformed {
                line,
                column,
                detail: format!("end tag </{}> has no matching start tag", clip(name)),
                hint: "remove the stray end tag or add the missing start tag",
            });
        };
        if &*el.qname != name {
            return Err(XmlError::MismatchedEndTag {
                line,
                column,
                expected: clip(&el.qname),
                found: clip(name),
                open_line: el.line,
                open_column: el.column,
            });
        }
        self.resolver
            .set_level(u16::try_from(self.stack.len()).unwrap_or(u16::MAX));
        Ok(())
    }

    pub(super) fn attr_syntax_error(&mut self, e: &AttrError, tag_pos: usize) -> XmlError {
        let relative = match e {
            AttrError::ExpectedEq(p)
            | AttrError::ExpectedValue(p)
            | AttrError::UnquotedValue(p)
            | AttrError::ExpectedQuote(p, _)
            | AttrError::Duplicated(p, _) => *p,
        };
        // Positions are relative to the tag content, which starts after '<'.
        let at = tag_pos.saturating_add(1).saturating_add(relative);
        let detail = match e {
            AttrError::Duplicated(..) => {
                "an attribute appears twice on the same element".to_string()
            }
            other => clip(&other.to_string()),
        };
        self.malformed(
            at,
            detail,
            "attributes are written name=\"value\", each once per element",
        )
    }

    pub(super) fn attr_value_error(&mut self, e: QxError, raw: &str, value_pos: usize) -> XmlError {
        match e {
            QxError::Escape(EscapeError::UnrecognizedEntity(range, name)) => {
                // The range starts after '&'.
                let at = value_pos + range.start.saturating_sub(1);
                let (line, column) = self.cursor.at(at);
                XmlError::UndefinedEntity {
                    line,
                    column,
                    name: Quoted::new(clip(&name)),
                }
            }
            QxError::Escape(EscapeError::InvalidCharRef(detail)) => {
                let (line, column) = self.cursor.at(value_pos);
                let reference = raw
                    .find("&#")
                    .and_then(|i| raw.get(i + 1..))
                    .and_then(|rest| rest.split(';').next())
                    .unwrap_or("");
                XmlError::InvalidCharRef {
                    line,
                    column,
                    reference: Quoted::new(clip(reference)),
                    detail: Quoted::new(clip(&detail.to_string())),
                }
            }
            QxError::Escape(EscapeError::UnterminatedEntity(range)) => self.malformed(
                value_pos + range.start,
                "'&' in an attribute value is not followed by an entity name and ';'".to_string(),
                HINT_AMP,
            ),
            other => self.malformed(value_pos, clip(&other.to_string()), HINT_WELL_FORMED),
        }
    }

    pub(super) fn finish(mut self, encoding: &'static str) -> XmlDoc {
        // Positions among same-named siblings, for `[n]` in walk and location.
        let mut sibling: Vec<(usize, usize)> = vec![(1, 1); self.elements.len()];
        let mut counts: HashMap<(usize, &str), usize> = HashMap::new();
        for el in &self.elements {
            counts.clear();
            for &child in &el.children {
                if let Some(c) = self.elements.get(child) {
                    let n = counts.entry((c.ns, c.local())).or_insert(0);
                    *n += 1;
                    if let Some(slot) = sibling.get_mut(child) {
                        slot.0 = *n;
                    }
                }
            }
            for &child in &el.children {
                if let (Some(c), Some(slot)) = (self.elements.get(child), sibling.get_mut(child)) {
                    slot.1 = counts.get(&(c.ns, c.local())).copied().unwrap_or(1);
                }
            }
        }
        drop(counts);
        for (el, (index, count)) in self.elements.iter_mut().zip(sibling) {
            el.sibling_index = index;
            el.sibling_count = count;
        }

        let (path_prefix, declared) = self.choose_prefixes();
        XmlDoc {
            elements: self.elements,
            attrs: self.attrs,
            uris: self.uris,
            path_prefix,
            declared,
            encoding,
        }
    }

    /// Gives every namespace URI one unique prefix for paths written by `walk`:
    /// the first prefix the document declared for it when still free, `""` for a
    /// default-namespace URI when no element is in no namespace and no attribute
    /// needs a prefix for it, otherwise a generated `nsN`.
    pub(super) fn choose_prefixes(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut path_prefix = vec![String::new(); self.uris.len()];
        let mut declared = Vec::new();
        let mut taken: HashSet<String> = ["xml".to_string(), "xmlns".to_string()].into();
        let has_unqualified = self.elements.iter().any(|e| e.ns == 0);
        let attr_uris: HashSet<usize> = self.attrs.iter().map(|a| a.ns).collect();
        let xml_id = self.uri_ids.get(XML_NS).copied();
        if let Some(id) = xml_id
            && let Some(slot) = path_prefix.get_mut(id)
        {
            *slot = "xml".to_string();
        }
        // One pass over the declarations: per URI, its named prefixes in
        // document order and whether it was ever the default namespace.
        let count = self.uris.len();
        let mut named_for: Vec<Vec<&str>> = vec![Vec::new(); count];
        let mut is_default = vec![false; count];
        let mut seen = vec![false; count];
        let mut order: Vec<usize> = Vec::new();
        for (prefix, id) in &self.decls {
            if let Some(s) = seen.get_mut(*id)
                && !*s
            {
                *s = true;
                order.push(*id);
            }
            if prefix.is_empty() {
                if let Some(d) = is_default.get_mut(*id) {
                    *d = true;
                }
            } else if let Some(list) = named_for.get_mut(*id) {
                list.push(prefix);
            }
        }
        // URIs used without a recorded declaration cannot occur except `xml`;
        // cover them anyway so every URI gets a prefix.
        order.extend((1..count).filter(|&id| !seen.get(id).copied().unwrap_or(true)));
        let mut generated = 0usize;
        for id in order {
            if Some(id) == xml_id {
                continue;
            }
            let named = named_for
                .get(id)
                .and_then(|list| list.iter().copied().find(|p| !taken.contains(*p)));
            let has_default = is_default.get(id).copied().unwrap_or(false);
            let choice = match named {
                Some(p) => p.to_string(),
                None if has_default
                    && !has_unqualified
                    && !attr_uris.contains(&id)
                    && !taken.contains("") =>
                {
                    String::new()
                }
                None => loop {
                    generated += 1;
                    let candidate = format!("ns{generated}");
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                },
            };
            taken.insert(choice.clone());
            if let (Some(slot), Some(uri)) = (path_prefix.get_mut(id), self.uris.get(id)) {
                *slot = choice.clone();
                declared.push((choice, uri.clone()));
            }
        }
        (path_prefix, declared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::xml::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn prefixed_namespaces_distinguish_same_local_names() {
        let d = doc(CARD);
        let n = card_ns();
        assert_eq!(
            sel(&d, "/hk:card/hk:name", &n),
            ["山田 太郎", "ヤマダ タロウ"]
        );
        assert_eq!(sel(&d, "/hk:card/x:name", &n), ["other namespace"]);
        // The document's prefix does not matter, only the URI does.
        let other = ns(&[("k", "urn:kaigo:card")]);
        assert_eq!(sel(&d, "/k:card/k:name[2]", &other), ["ヤマダ タロウ"]);
        // Unprefixed names mean "no namespace" when no "" entry is given.
        assert!(sel(&d, "/hk:card/name", &n).is_empty());
        assert_eq!(d.name(d.root()), Some(("urn:kaigo:card", "card")));
    }

    #[test]
    fn default_namespace_applies_to_unprefixed_elements_not_attributes() {
        let d = doc(
            r#"<card xmlns="urn:a" id="7"><name>A</name><b:name xmlns:b="urn:b">B</b:name><plain xmlns="">P</plain></card>"#,
        );
        let n = ns(&[("", "urn:a"), ("b", "urn:b")]);
        assert_eq!(sel(&d, "/card/name", &n), ["A"]);
        assert_eq!(sel(&d, "/card/b:name", &n), ["B"]);
        assert_eq!(sel(&d, "/card/@id", &n), ["7"]);
        // <plain xmlns=""> is in no namespace, so the "" entry cannot reach it...
        assert!(sel(&d, "/card/plain", &n).is_empty());
        // ...but a table without "" can.
        let a = ns(&[("a", "urn:a")]);
        assert_eq!(sel(&d, "/a:card/plain", &a), ["P"]);
        assert_eq!(d.name(d.root()), Some(("urn:a", "card")));
    }

    #[test]
    fn attributes_with_and_without_prefix_are_resolved() {
        let d = doc(CARD);
        let n = card_ns();
        assert_eq!(sel(&d, "/hk:card/hk:name/@type", &n), ["kanji", "kana"]);
        assert_eq!(sel(&d, "/hk:card/hk:name/@x:script", &n), ["katakana"]);
        // An unprefixed attribute is in no namespace even under a prefix mapping.
        assert!(sel(&d, "/hk:card/hk:name/@hk:type", &n).is_empty());
        let mut out = Vec::new();
        d.select(
            d.root(),
            &path("/hk:card/hk:name[2]/@x:script", &n),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].is_attribute());
        assert_eq!(d.name(out[0]), Some(("urn:other", "script")));
        assert_eq!(d.qname(out[0]), Some("x:script"));
    }

    #[test]
    fn xml_lang_attribute_resolves_without_declaration() {
        let d = doc(r#"<a xml:lang="ja"><b/></a>"#);
        assert_eq!(sel(&d, "/a/@xml:lang", &[]), ["ja"]);
        let mut seen = Vec::new();
        d.walk(&mut |p, v| seen.push((p.to_string(), v.to_string())));
        assert_eq!(seen, [("/a/@xml:lang".to_string(), "ja".to_string())]);
    }

    #[test]
    fn entities_and_numeric_references_are_expanded_in_text_and_attributes() {
        let d = doc(
            r#"<a t="x &lt;&amp;&quot;&apos;&gt; &#x3042;&#12354;">1 &lt; 2 &amp;&amp; &#x5C71;&#23665; &gt;</a>"#,
        );
        assert_eq!(d.text(d.root()), Some("1 < 2 && 山山 >"));
        assert_eq!(sel(&d, "/a/@t", &[]), ["x <&\"'> ああ"]);
    }

    #[test]
    fn cdata_is_kept_literally_and_joined_with_text() {
        let d = doc("<a>x<![CDATA[<b>&amp;</b>]]>y<!-- gone --><?pi ignored?>z</a>");
        assert_eq!(d.text(d.root()), Some("x<b>&amp;</b>yz"));
        assert_eq!(d.element_count(), 1);
    }

    #[test]
    fn text_is_kept_raw_and_trimmed_only_of_xml_whitespace() {
        let d = doc("<a>\n  \u{3000}山田\u{3000} \r\n</a>");
        assert_eq!(d.text(d.root()), Some("\n  \u{3000}山田\u{3000} \n"));
        assert_eq!(d.text_trimmed(d.root()), Some("\u{3000}山田\u{3000}"));
        assert_eq!(d.value(d.root()).as_deref(), Some("\u{3000}山田\u{3000}"));
        let blank = doc("<a> \n <b/> </a>");
        assert_eq!(blank.value(blank.root()), None);
    }

    #[test]
    fn billion_laughs_doctype_is_refused_with_its_line() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"#;
        let e = err(xml.as_bytes());
        assert!(
            matches!(e, XmlError::DoctypeRefused { line: 2, column: 1 }),
            "{e}"
        );
        let message = e.to_string();
        assert!(message.contains("DOCTYPE declarations are refused: kaigo-hub does not expand DTDs or entities (XXE / billion-laughs protection)"), "{message}");
        assert!(message.starts_with("line 2, column 1:"), "{message}");
    }

    #[test]
    fn external_entity_doctype_is_refused() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE foo [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n<foo>&xxe;</foo>";
        assert!(matches!(
            err(xml.as_bytes()),
            XmlError::DoctypeRefused { line: 2, .. }
        ));
        let external = "<!DOCTYPE foo SYSTEM \"http://example.invalid/x.dtd\"><foo/>";
        assert!(matches!(
            err(external.as_bytes()),
            XmlError::DoctypeRefused { line: 1, column: 1 }
        ));
    }

    #[test]
    fn doctype_inside_the_element_or_unclosed_is_refused() {
        let inside = "<a>\n  <!DOCTYPE a></a>";
        assert!(matches!(
            err(inside.as_bytes()),
            XmlError::DoctypeRefused { line: 2, column: 3 }
        ));
        let unclosed = "<!DOCTYPE a [ <!ENTITY x \"y\">";
        assert!(matches!(
            err(unclosed.as_bytes()),
            XmlError::DoctypeRefused { .. }
        ));
    }

    #[test]
    fn undefined_entity_is_refused_in_text_and_attributes() {
        let e = err("<a>\n  x &nbsp; y</a>".as_bytes());
        assert!(
            matches!(e, XmlError::UndefinedEntity { line: 2, column: 5, ref name } if name.reveal() == "nbsp"),
            "{e}"
        );
        let e = err("<a t=\"a&xxe;\"/>".as_bytes());
        assert!(
            matches!(e, XmlError::UndefinedEntity { line: 1, column: 8, ref name } if name.reveal() == "xxe"),
            "{e}"
        );
    }

    #[test]
    fn bad_character_references_and_bare_ampersands_are_refused() {
        assert!(matches!(
            err(b"<a>&#0;</a>"),
            XmlError::InvalidCharRef { .. }
        ));
        assert!(matches!(
            err(b"<a>&#1;</a>"),
            XmlError::InvalidCharRef { .. }
        ));
        assert!(matches!(
            err(b"<a>&#xZZ;</a>"),
            XmlError::InvalidCharRef { .. }
        ));
        assert!(matches!(
            err(b"<a t='&#1;'/>"),
            XmlError::InvalidCharRef { .. }
        ));
        assert!(matches!(err(b"<a>AT&T</a>"), XmlError::Malformed { .. }));
        assert!(matches!(err(b"<a t='AT&T'/>"), XmlError::Malformed { .. }));
    }

    #[test]
    fn raw_control_characters_are_refused_with_position() {
        let e = err(b"<a>\nok\x01</a>");
        assert!(
            matches!(
                e,
                XmlError::InvalidCharacter {
                    line: 2,
                    column: 3,
                    code: 1
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn ten_thousand_nested_elements_hit_the_depth_limit_without_overflow() {
        let depth = 10_000;
        let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let e = err(xml.as_bytes());
        assert!(
            matches!(
                e,
                XmlError::TooDeep {
                    depth: 65,
                    limit: 64,
                    line: 1,
                    column: 193,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn node_and_attribute_limits_are_enforced_and_size_is_left_to_the_door() {
        // 17 MiB of text in one element: more than the 16 MiB this file once refused on its own.
        let mut big = b"<a>".to_vec();
        big.resize(17 * 1024 * 1024, b'x');
        big.extend_from_slice(b"</a>");
        assert!(parse(&big, &XmlLimits::default()).is_ok());
        let limits = XmlLimits {
            max_nodes: 3,
            ..XmlLimits::default()
        };
        assert!(parse(b"<a><b/><c/></a>", &limits).is_ok());
        assert!(matches!(
            parse(b"<a><b/><c/><d/></a>", &limits),
            Err(XmlError::TooManyNodes {
                limit: 3,
                column: 12,
                ..
            })
        ));
        assert!(matches!(
            parse(b"<a><b x='1'/><c/></a>", &limits),
            Err(XmlError::TooManyNodes { .. })
        ));
        let limits = XmlLimits {
            max_attributes: 2,
            ..XmlLimits::default()
        };
        assert!(parse(b"<a x='1' y='2'/>", &limits).is_ok());
        assert!(matches!(
            parse(b"<a x='1' y='2' z='3'/>", &limits),
            Err(XmlError::TooManyAttributes { limit: 2, .. })
        ));
    }

    #[test]
    fn mismatched_end_tag_names_both_tags_and_positions() {
        let e = err(b"<root>\n  <a>\n    <b>text</a>\n</root>");
        match &e {
            XmlError::MismatchedEndTag {
                line,
                column,
                expected,
                found,
                open_line,
                open_column,
            } => {
                assert_eq!((*line, *column), (3, 12));
                assert_eq!((expected.as_str(), found.as_str()), ("b", "a"));
                assert_eq!((*open_line, *open_column), (3, 5));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(
            e.to_string()
                .starts_with("line 3, column 12: end tag </a> does not match start tag <b>")
        );
    }

    #[test]
    fn unclosed_element_at_end_of_input_is_reported_where_it_opened() {
        let e = err(b"<root>\n  <open>text");
        assert!(
            matches!(e, XmlError::UnclosedElement { line: 2, column: 3, ref name } if name == "open"),
            "{e}"
        );
    }

    #[test]
    fn structural_errors_are_malformed_with_position() {
        for (xml, pos) in [
            ("<a></a><b/>", (1, 8)),
            ("<a/>text", (1, 5)),
            ("</a>", (1, 1)),
            ("", (1, 1)),
            ("<a x='1' x='2'/>", (1, 10)),
            ("<a><1b/></a>", (1, 4)),
            ("<a x='<'/>", (1, 7)),
            ("<a>\n<?xml version='1.0'?></a>", (2, 1)),
        ] {
            let e = err(xml.as_bytes());
            assert!(matches!(e, XmlError::Malformed { .. }), "{xml:?}: {e}");
            assert_eq!(e.position(), pos, "{xml:?}: {e}");
        }
    }

    #[test]
    fn undeclared_prefix_is_refused() {
        let e = err(b"<a>\n <p:b/></a>");
        assert!(
            matches!(e, XmlError::UndeclaredPrefix { line: 2, column: 2, ref prefix, .. } if prefix == "p"),
            "{e}"
        );
        let e = err(b"<a p:x='1'/>");
        assert!(matches!(e, XmlError::UndeclaredPrefix { .. }), "{e}");
        let e = err(b"<r><a xmlns:p='urn:p'/><p:b/></r>");
        assert!(matches!(e, XmlError::UndeclaredPrefix { .. }), "{e}");
        assert!(matches!(
            err(b"<a xmlns:xml='urn:wrong'/>"),
            XmlError::InvalidNamespace { .. }
        ));
    }

    #[test]
    fn attributes_repeated_through_two_prefixes_of_one_namespace_are_refused() {
        let e = err(b"<a xmlns:p='urn:x' xmlns:q='urn:x' p:k='1' q:k='2'/>");
        assert!(
            matches!(
                e,
                XmlError::Malformed {
                    line: 1,
                    column: 44,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("'q:k' repeats 'p:k'"), "{e}");
    }

    #[test]
    fn seed_document_parses() {
        let d = doc(SEED);
        assert!(assert_walk_round_trips(&d) >= 5);
    }

    #[test]
    fn text_from_the_document_is_quoted_for_its_sender_only() {
        let e = err("<a>山田&秘匿太郎;</a>".as_bytes());
        let plain = e.to_string();
        assert!(
            plain.starts_with("line 1, column 6: undefined entity reference"),
            "{plain}"
        );
        assert!(!plain.contains("秘匿太郎"), "{plain}");
        assert!(!format!("{e:?}").contains("秘匿太郎"), "{e:?}");
        assert!(
            e.for_sender().to_string().contains("&秘匿太郎;"),
            "{}",
            e.for_sender()
        );
        let mut sjis = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<a>".to_vec();
        sjis.extend_from_slice(&[0x82, 0x20, b'<', b'/', b'a', b'>']);
        let e = err(&sjis);
        assert!(!e.to_string().contains("0x82"), "{e}");
        assert!(
            e.for_sender().to_string().contains("sequence 0x82 at"),
            "{}",
            e.for_sender()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let limits = XmlLimits { max_depth: 8, max_nodes: 200, ..XmlLimits::default() };
            if let Ok(d) = parse(&bytes, &limits) {
                exercise(&d);
            }
        }

        #[test]
        fn token_soup_never_panics(picks in proptest::collection::vec(any::<usize>(), 0..40)) {
            let xml: String = picks.iter().map(|&i| FRAGMENTS[i % FRAGMENTS.len()]).collect();
            let limits = XmlLimits { max_depth: 6, ..XmlLimits::default() };
            match parse(xml.as_bytes(), &limits) {
                Ok(d) => exercise(&d),
                Err(e) => prop_assert!(e.position().0 >= 1 && e.position().1 >= 1),
            }
        }

        #[test]
        fn mutated_documents_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)
        ) {
            let mut bytes = SEED.as_bytes().to_vec();
            for (at, byte, kind) in edits {
                let i = at % (bytes.len() + 1);
                match kind {
                    0 => bytes.insert(i, byte),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ if i < bytes.len() => bytes[i] = byte,
                    _ => bytes.push(byte),
                }
            }
            match parse(&bytes, &XmlLimits::default()) {
                Ok(d) => exercise(&d),
                Err(e) => {
                    let (line, column) = e.position();
                    prop_assert!(line >= 1 && column >= 1);
                    prop_assert!(e.to_string().contains("hint"));
                }
            }
        }
    }
}
