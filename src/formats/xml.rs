//! XML intake for kaigo-hub: turns the bytes of an XML file exchanged on Japan's
//! long-term-care platform (care-insurance cards, care plans, claims) into an
//! element tree that the mapping layer queries with small XPath-like paths.
//!
//! In: raw bytes plus [`XmlLimits`]. The encoding is taken from a byte-order mark
//! (UTF-8, UTF-16LE/BE) or from the XML declaration (UTF-8, US-ASCII, Shift_JIS /
//! Windows-31J / MS932 / CP932, EUC-JP, ISO-2022-JP) and the whole input is decoded
//! strictly to UTF-8 before parsing: a malformed byte sequence is an error naming
//! its byte offset, never a U+FFFD. Out: an [`XmlDoc`], an arena of elements in
//! document order, each with its expanded name (namespace URI + local name), its
//! attributes (namespace URI, local name, entity-expanded value), its children and
//! its direct text (text and CDATA children concatenated, entities expanded, kept
//! untrimmed), plus line and column (1-based; columns count characters) of every
//! element and attribute; or an [`XmlError`] that names the line, the column, what
//! is wrong and a hint.
//!
//! It must never: expand a DTD or any entity other than the five predefined ones
//! and numeric character references (a `<!DOCTYPE` anywhere is refused outright,
//! which shuts out XXE and billion-laughs attacks); fetch anything; recurse on the
//! nesting depth of the input (parsing, [`XmlDoc::select`], [`XmlDoc::walk`],
//! [`XmlDoc::location`] and dropping a document all use loops); or panic on any
//! bytes. Comments and processing instructions are ignored. Structural limits —
//! depth, node count (elements plus attributes) and attributes per element — are
//! enforced while parsing; the input's size is not limited here but at the hub's
//! doors (`body_limit`), so no second, smaller byte limit hides in this file.
//!
//! # Path grammar
//!
//! [`Path::compile`] takes a path and the prefix → namespace-URI table of the
//! mapping file (prefix `""` = namespace of unprefixed element names in paths; the
//! prefix `xml` is always bound to the XML namespace).
//!
//! ```text
//! path      := "/" steps            absolute: the first step must match the document element
//!            | steps                relative to the node passed to `select`
//! steps     := step ("/" step)* ["/" "text()"]
//! step      := "." | ".." | "@" qname | test predicate*
//! test      := qname | "*"
//! predicate := "[" integer "]"              1-based position among the siblings matched so far
//!            | "[" "@" qname "=" literal "]"  attribute value equals (exactly)
//!            | "[" qname "=" literal "]"      some child element's trimmed text equals
//! literal   := "'" chars "'" | '"' chars '"'
//! qname     := [prefix ":"] local            XML names, Japanese allowed (`hk:氏名`)
//! ```
//!
//! Examples: `/hk:card/hk:name`, `hk:name/hk:kana`, `*`, `hk:item[2]`,
//! `hk:item[@type='kana']`, `hk:item[hk:code='21']`, `@type`, `@xml:lang`, `.`,
//! `..`, `hk:name/text()`. An attribute step may only be the last step;
//! `text()` may only end a path and means the element itself. Unprefixed element
//! names mean the `""` namespace of the table if it has one, else no namespace;
//! unprefixed attribute names always mean no namespace. `//`, axes, functions
//! other than the trailing `text()`, and boolean operators are not supported and
//! are reported as errors.

use crate::redact::{Disclose, Quoted};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use super::charset::{self, Charset, CharsetError};
use quick_xml::errors::{Error as QxError, IllFormedError, SyntaxError};
use quick_xml::escape::EscapeError;
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, QName, ResolveResult};
use quick_xml::{Reader, XmlVersion};

/// The namespace the `xml` prefix is bound to by definition.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// How many characters of an input-derived name or detail go into a message.
const CLIP: usize = 80;

/// Structural bounds enforced while parsing untrusted input (its size in bytes is bounded by
/// the door it came through: `body_limit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// Deepest element nesting accepted; the document element is at depth 1. Default 64.
    pub max_depth: usize,
    /// Most elements plus attributes (namespace declarations excluded). Default 1,000,000.
    pub max_nodes: usize,
    /// Most attributes on one element, namespace declarations included. Default 256.
    pub max_attributes: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_depth: 64,
            max_nodes: 1_000_000,
            max_attributes: 256,
        }
    }
}

/// Why a document was refused. Every variant carries the 1-based line and column
/// (in characters) where the problem was found; problems with the input as a whole
/// (size, encoding declaration) point at line 1, column 1.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error(
        "line {line}, column {column}: the input is not valid {encoding}: {detail} at byte offset {byte_offset}; hint: re-export the file in the encoding its XML declaration names, or correct the declaration"
    )]
    Encoding {
        line: usize,
        column: usize,
        encoding: &'static str,
        byte_offset: usize,
        detail: &'static str,
        /// The offending bytes in hex (for the sender only).
        bytes: Quoted,
    },
    #[error(
        "line {line}, column {column}: the XML declaration names encoding {label:?}, which kaigo-hub does not read; hint: use UTF-8, UTF-16 with a byte-order mark, Shift_JIS (Windows-31J), EUC-JP or ISO-2022-JP"
    )]
    UnsupportedEncoding {
        line: usize,
        column: usize,
        label: String,
    },
    #[error(
        "line {line}, column {column}: the XML declaration names encoding {declared:?} but the bytes are {detected}; hint: make the declaration match the encoding the file was saved in"
    )]
    EncodingMismatch {
        line: usize,
        column: usize,
        declared: String,
        detected: &'static str,
    },
    #[error(
        "line {line}, column {column}: character U+{code:04X} is not allowed in XML; hint: remove control characters, which usually come from a wrong export encoding or a binary field"
    )]
    InvalidCharacter {
        line: usize,
        column: usize,
        code: u32,
    },
    #[error(
        "line {line}, column {column}: DOCTYPE declarations are refused: kaigo-hub does not expand DTDs or entities (XXE / billion-laughs protection); hint: remove the <!DOCTYPE ...> declaration and use only &lt; &gt; &amp; &apos; &quot; and numeric character references"
    )]
    DoctypeRefused { line: usize, column: usize },
    #[error(
        "line {line}, column {column}: undefined entity reference (only &lt; &gt; &amp; &apos; &quot; and numeric character references are expanded); hint: write a literal '&' as &amp; or put the character itself in the text"
    )]
    UndefinedEntity {
        line: usize,
        column: usize,
        /// The entity's name, from the text (for the sender only).
        name: Quoted,
    },
    #[error(
        "line {line}, column {column}: invalid character reference; hint: use &#NNNN; (decimal) or &#xHHHH; (hexadecimal) naming a character XML allows"
    )]
    InvalidCharRef {
        line: usize,
        column: usize,
        /// The reference as written, from the text (for the sender only).
        reference: Quoted,
        /// What is wrong with it (it names the character: for the sender only).
        detail: Quoted,
    },
    #[error(
        "line {line}, column {column}: element <{name}> is nested {depth} levels deep, more than the limit of {limit}; hint: check the producer for runaway nesting, or raise XmlLimits::max_depth if this structure is legitimate"
    )]
    TooDeep {
        line: usize,
        column: usize,
        name: String,
        depth: usize,
        limit: usize,
    },
    #[error(
        "line {line}, column {column}: the document has more than {limit} nodes (elements plus attributes); hint: split the export, or raise XmlLimits::max_nodes if documents this large are expected"
    )]
    TooManyNodes {
        line: usize,
        column: usize,
        limit: usize,
    },
    #[error(
        "line {line}, column {column}: element <{name}> has more than {limit} attributes; hint: check the producer, or raise XmlLimits::max_attributes if this is legitimate"
    )]
    TooManyAttributes {
        line: usize,
        column: usize,
        name: String,
        limit: usize,
    },
    #[error(
        "line {line}, column {column}: end tag </{found}> does not match start tag <{expected}> opened at line {open_line}, column {open_column}; hint: close elements in the reverse order they were opened"
    )]
    MismatchedEndTag {
        line: usize,
        column: usize,
        expected: String,
        found: String,
        open_line: usize,
        open_column: usize,
    },
    #[error(
        "line {line}, column {column}: element <{name}> opened here is still open at the end of the input; hint: the file may be truncated, check that the transfer completed"
    )]
    UnclosedElement {
        line: usize,
        column: usize,
        name: String,
    },
    #[error(
        "line {line}, column {column}: namespace prefix '{prefix}' in '{name}' is not declared; hint: add xmlns:{prefix}=\"...\" to this element or an ancestor"
    )]
    UndeclaredPrefix {
        line: usize,
        column: usize,
        prefix: String,
        name: String,
    },
    #[error(
        "line {line}, column {column}: invalid namespace declaration: {detail}; hint: xml and xmlns are reserved prefixes with fixed URIs, other prefixes may not be bound to those URIs, and at most 128 bindings may be in scope at once"
    )]
    InvalidNamespace {
        line: usize,
        column: usize,
        detail: String,
    },
    #[error("line {line}, column {column}: malformed XML: {detail}; hint: {hint}")]
    Malformed {
        line: usize,
        column: usize,
        detail: String,
        hint: &'static str,
    },
}

impl Disclose for XmlError {
    fn fmt_for_sender(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlError::Encoding {
                line,
                column,
                encoding,
                byte_offset,
                detail,
                bytes,
            } => write!(
                f,
                "line {line}, column {column}: the input is not valid {encoding}: {detail} {} at byte offset {byte_offset}; hint: re-export the file in the encoding its XML declaration names, or correct the declaration",
                bytes.reveal()
            ),
            XmlError::UndefinedEntity { line, column, name } => write!(
                f,
                "line {line}, column {column}: undefined entity reference &{}; (only &lt; &gt; &amp; &apos; &quot; and numeric character references are expanded); hint: write a literal '&' as &amp; or put the character itself in the text",
                name.reveal()
            ),
            XmlError::InvalidCharRef {
                line,
                column,
                reference,
                detail,
            } => write!(
                f,
                "line {line}, column {column}: invalid character reference &{};: {}; hint: use &#NNNN; (decimal) or &#xHHHH; (hexadecimal) naming a character XML allows",
                reference.reveal(),
                detail.reveal()
            ),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl XmlError {
    /// The 1-based line and column the error points at.
    pub fn position(&self) -> (usize, usize) {
        match self {
            XmlError::Encoding { line, column, .. }
            | XmlError::UnsupportedEncoding { line, column, .. }
            | XmlError::EncodingMismatch { line, column, .. }
            | XmlError::InvalidCharacter { line, column, .. }
            | XmlError::DoctypeRefused { line, column }
            | XmlError::UndefinedEntity { line, column, .. }
            | XmlError::InvalidCharRef { line, column, .. }
            | XmlError::TooDeep { line, column, .. }
            | XmlError::TooManyNodes { line, column, .. }
            | XmlError::TooManyAttributes { line, column, .. }
            | XmlError::MismatchedEndTag { line, column, .. }
            | XmlError::UnclosedElement { line, column, .. }
            | XmlError::UndeclaredPrefix { line, column, .. }
            | XmlError::InvalidNamespace { line, column, .. }
            | XmlError::Malformed { line, column, .. } => (*line, *column),
        }
    }
}

const HINT_WELL_FORMED: &str = "check that the file is complete, well-formed XML";
const HINT_NAME: &str = "element and attribute names must be XML names such as hk:氏名 or code";
const HINT_AMP: &str = "write a literal ampersand as &amp;";

// ---------------------------------------------------------------------------
// Document model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Element {
    /// Index into `XmlDoc::uris`; 0 = no namespace.
    ns: usize,
    /// The name as written in the document, prefix included.
    qname: Box<str>,
    /// Byte index in `qname` where the local name starts.
    local_start: usize,
    parent: Option<usize>,
    children: Vec<usize>,
    /// Range into `XmlDoc::attrs`.
    attr_start: usize,
    attr_end: usize,
    /// Direct text: text and CDATA children concatenated, entities expanded, untrimmed.
    text: String,
    line: usize,
    column: usize,
    /// 1-based position among siblings with the same expanded name.
    sibling_index: usize,
    /// Number of siblings (self included) with the same expanded name.
    sibling_count: usize,
}

impl Element {
    fn local(&self) -> &str {
        self.qname.get(self.local_start..).unwrap_or(&self.qname)
    }
}

#[derive(Clone, Debug)]
struct Attribute {
    ns: usize,
    qname: Box<str>,
    local_start: usize,
    value: Box<str>,
    line: usize,
    column: usize,
}

impl Attribute {
    fn local(&self) -> &str {
        self.qname.get(self.local_start..).unwrap_or(&self.qname)
    }
}

/// An element, or one attribute of an element, of an [`XmlDoc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    element: usize,
    attribute: Option<usize>,
}

impl Node {
    /// True when the node is an attribute rather than an element.
    pub fn is_attribute(&self) -> bool {
        self.attribute.is_some()
    }
}

/// A parsed document: an arena of elements in document order (index 0 is the
/// document element) and their attributes.
#[derive(Clone, Debug)]
pub struct XmlDoc {
    elements: Vec<Element>,
    attrs: Vec<Attribute>,
    /// Interned namespace URIs; index 0 is "" (no namespace).
    uris: Vec<String>,
    /// Per URI index: the prefix `walk` writes for it (`""` = unprefixed).
    path_prefix: Vec<String>,
    /// The table `namespaces()` returns.
    declared: Vec<(String, String)>,
    encoding: &'static str,
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

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

struct RawAttr {
    key: String,
    value: String,
    line: usize,
    column: usize,
}

struct Builder<'a> {
    text: &'a str,
    limits: &'a XmlLimits,
    cursor: LineCursor<'a>,
    version: XmlVersion,
    resolver: NamespaceResolver,
    elements: Vec<Element>,
    attrs: Vec<Attribute>,
    uris: Vec<String>,
    uri_ids: HashMap<String, usize>,
    /// Namespace declarations in document order, each (prefix, URI index) once.
    decls: Vec<(String, usize)>,
    decl_seen: HashSet<(String, usize)>,
    stack: Vec<usize>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str, limits: &'a XmlLimits) -> Self {
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

    fn run(mut self, encoding: &'static str) -> Result<XmlDoc, XmlError> {
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

    fn malformed(&mut self, at: usize, detail: String, hint: &'static str) -> XmlError {
        let (line, column) = self.cursor.at(at);
        XmlError::Malformed {
            line,
            column,
            detail,
            hint,
        }
    }

    fn outside_root(&mut self, at: usize) -> XmlError {
        self.malformed(
            at,
            "text outside the document element".to_string(),
            "only whitespace, comments and processing instructions may surround the top-level element",
        )
    }

    fn reader_error(&mut self, err: QxError, at: usize) -> XmlError {
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

    fn resolve_reference(
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

    fn add_text(&mut self, content: &str, pos: usize) -> Result<(), XmlError> {
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

    fn bump_nodes(&mut self, line: usize, column: usize) -> Result<(), XmlError> {
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
    fn check_duplicate_attributes(&self, attr_start: usize) -> Result<(), XmlError> {
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

    fn intern(&mut self, uri: &str) -> usize {
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

    fn resolve_ns(
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

    fn start(&mut self, tag: &BytesStart<'_>, pos: usize, empty: bool) -> Result<(), XmlError> {
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

    fn end(&mut self, name: &str, pos: usize) -> Result<(), XmlError> {
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

    fn attr_syntax_error(&mut self, e: &AttrError, tag_pos: usize) -> XmlError {
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

    fn attr_value_error(&mut self, e: QxError, raw: &str, value_pos: usize) -> XmlError {
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

    fn finish(mut self, encoding: &'static str) -> XmlDoc {
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
    fn choose_prefixes(&self) -> (Vec<String>, Vec<(String, String)>) {
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

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

struct Decoded<'a> {
    text: Cow<'a, str>,
    encoding: &'static str,
}

enum Label {
    Utf8,
    Ascii,
    Utf16,
    Other(Charset),
}

fn classify_label(label: &str) -> Option<Label> {
    let lower = label.trim().to_ascii_lowercase();
    Some(match lower.as_str() {
        "utf-8" | "utf8" => Label::Utf8,
        "us-ascii" | "ascii" => Label::Ascii,
        "utf-16" | "utf-16le" | "utf-16be" => Label::Utf16,
        "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "windows-31j" | "ms932" | "cp932"
        | "ms_kanji" | "csshiftjis" => Label::Other(Charset::Ms932),
        "euc-jp" | "eucjp" | "x-euc-jp" | "cseucpkdfmtjapanese" => Label::Other(Charset::EucJp),
        "iso-2022-jp" | "csiso2022jp" => Label::Other(Charset::Iso2022Jp),
        _ => return None,
    })
}

/// The name of `charset` as XML declarations write it (`Shift_JIS` for MS932).
fn declared_name(charset: Charset) -> &'static str {
    match charset {
        Charset::Ms932 => "Shift_JIS",
        other => other.name(),
    }
}

fn unsupported(label: &str) -> XmlError {
    XmlError::UnsupportedEncoding {
        line: 1,
        column: 1,
        label: clip(label),
    }
}

fn mismatch(label: &str, detected: &'static str) -> XmlError {
    XmlError::EncodingMismatch {
        line: 1,
        column: 1,
        declared: clip(label),
        detected,
    }
}

fn decode(bytes: &[u8]) -> Result<Decoded<'_>, XmlError> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        if let Some(label) = declared_encoding(rest) {
            match classify_label(&label) {
                Some(Label::Utf8) => {}
                Some(_) => return Err(mismatch(&label, "UTF-8 (byte-order mark)")),
                None => return Err(unsupported(&label)),
            }
        }
        return decode_in(rest, Charset::Utf8, 3);
    }
    let utf16 = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        Some((Charset::Utf16Le, rest, 2))
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some((Charset::Utf16Be, rest, 2))
    } else if bytes.starts_with(&[0x3C, 0x00, 0x3F, 0x00]) {
        Some((Charset::Utf16Le, bytes, 0))
    } else if bytes.starts_with(&[0x00, 0x3C, 0x00, 0x3F]) {
        Some((Charset::Utf16Be, bytes, 0))
    } else {
        None
    };
    if let Some((charset, rest, skip)) = utf16 {
        let decoded = decode_in(rest, charset, skip)?;
        if let Some(label) = declared_encoding(decoded.text.as_bytes()) {
            match classify_label(&label) {
                Some(Label::Utf16) => {}
                Some(_) => return Err(mismatch(&label, declared_name(charset))),
                None => return Err(unsupported(&label)),
            }
        }
        return Ok(decoded);
    }
    match declared_encoding(bytes) {
        None => decode_in(bytes, Charset::Utf8, 0),
        Some(label) => match classify_label(&label) {
            Some(Label::Utf8) => decode_in(bytes, Charset::Utf8, 0),
            Some(Label::Ascii) => decode_in(bytes, Charset::Ascii, 0),
            Some(Label::Utf16) => Err(mismatch(&label, "not UTF-16 (no byte-order mark)")),
            Some(Label::Other(charset)) => decode_in(bytes, charset, 0),
            None => Err(unsupported(&label)),
        },
    }
}

/// Decodes `bytes` (which start `skip` bytes into the input) strictly with the hub's one
/// decoder, [`charset::decode_exact`]; the first malformed sequence is an
/// [`XmlError::Encoding`] at the line and column the XML parser would count.
fn decode_in(bytes: &[u8], charset: Charset, skip: usize) -> Result<Decoded<'_>, XmlError> {
    let encoding = declared_name(charset);
    match charset::decode_exact(bytes, charset) {
        Ok(text) => Ok(Decoded { text, encoding }),
        Err(e) => {
            let (offset, bad) = match e {
                CharsetError::Decode { offset, bytes, .. } => (offset, bytes),
                CharsetError::Unrepresentable { ch, .. } => (0, ch),
            };
            let before = bytes.get(..offset).unwrap_or(&[]);
            let before = charset::decode_exact(before, charset).unwrap_or_default();
            let (line, column) = LineCursor::new(&before).at(before.len());
            Err(XmlError::Encoding {
                line,
                column,
                encoding,
                byte_offset: skip + offset,
                detail: if charset == Charset::Ascii {
                    "a byte outside ASCII"
                } else {
                    "malformed byte sequence"
                },
                bytes: bad,
            })
        }
    }
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>`, read as ASCII.
/// `None` when there is no declaration or it has no readable encoding; the XML
/// parser reports a broken declaration later.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"<?xml")?;
    if !matches!(rest.first(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        return None;
    }
    let window = rest.get(..rest.len().min(1024))?;
    let end = window.windows(2).position(|w| w == b"?>")?;
    let mut s = window.get(..end)?;
    loop {
        s = trim_ascii_ws(s);
        if s.is_empty() {
            return None;
        }
        let name_len = s
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')))
            .unwrap_or(s.len());
        if name_len == 0 {
            return None;
        }
        let name = s.get(..name_len)?;
        s = trim_ascii_ws(s.get(name_len..)?);
        s = s.strip_prefix(b"=")?;
        s = trim_ascii_ws(s);
        let quote = *s.first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let body = s.get(1..)?;
        let close = body.iter().position(|&b| b == quote)?;
        if name == b"encoding" {
            return Some(String::from_utf8_lossy(body.get(..close)?).into_owned());
        }
        s = body.get(close + 1..)?;
    }
}

fn trim_ascii_ws(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    s.get(start..).unwrap_or(&[])
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Maps byte offsets of a text to 1-based (line, column in characters). Cheap
/// for increasing offsets; a smaller offset restarts from the top.
struct LineCursor<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
    after_cr: bool,
}

impl<'a> LineCursor<'a> {
    fn new(text: &'a str) -> Self {
        LineCursor {
            text,
            offset: 0,
            line: 1,
            column: 1,
            after_cr: false,
        }
    }

    fn at(&mut self, target: usize) -> (usize, usize) {
        let mut target = target.min(self.text.len());
        while target > 0 && !self.text.is_char_boundary(target) {
            target -= 1;
        }
        if target < self.offset {
            *self = LineCursor::new(self.text);
        }
        if let Some(slice) = self.text.get(self.offset..target) {
            for ch in slice.chars() {
                match ch {
                    '\r' => {
                        self.line += 1;
                        self.column = 1;
                        self.after_cr = true;
                    }
                    '\n' => {
                        if !self.after_cr {
                            self.line += 1;
                            self.column = 1;
                        }
                        self.after_cr = false;
                    }
                    _ => {
                        self.column += 1;
                        self.after_cr = false;
                    }
                }
            }
            self.offset = target;
        }
        (self.line, self.column)
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Byte offset of `part` inside `base`, when `part` is a sub-slice of it.
fn offset_in(base: &str, part: &str) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (offset.checked_add(part.len())? <= base.len()).then_some(offset)
}

/// At most `CLIP` characters of an input-derived string, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or("")),
        None => s.to_string(),
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn trim_xml(s: &str) -> &str {
    s.trim_matches(is_xml_whitespace)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// An XML name without colons.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if is_name_start(c)) && chars.all(is_name_char)
}

/// Splits `prefix:local` or `local`; `None` when it is not a qualified name.
fn split_qname(s: &str) -> Option<(Option<&str>, &str)> {
    match s.split_once(':') {
        Some((prefix, local)) => {
            (is_ncname(prefix) && is_ncname(local)).then_some((Some(prefix), local))
        }
        None => is_ncname(s).then_some((None, s)),
    }
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct ExpandedName {
    /// "" = no namespace.
    ns: String,
    local: String,
}

#[derive(Clone, Debug)]
enum NameTest {
    Any,
    Name(ExpandedName),
}

#[derive(Clone, Debug)]
enum Predicate {
    Position(usize),
    AttrEquals(ExpandedName, String),
    ChildEquals(ExpandedName, String),
}

#[derive(Clone, Debug)]
enum Step {
    SelfNode,
    Parent,
    Child(NameTest, Vec<Predicate>),
    Attr(ExpandedName),
}

/// A compiled path; see the module documentation for the grammar.
#[derive(Clone, Debug)]
pub struct Path {
    source: String,
    absolute: bool,
    steps: Vec<Step>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct PrefixTable<'n> {
    entries: Vec<(&'n str, &'n str)>,
}

impl<'n> PrefixTable<'n> {
    fn new(namespaces: &'n [(String, String)]) -> Result<Self, String> {
        let mut entries: Vec<(&'n str, &'n str)> = vec![("xml", XML_NS)];
        for (prefix, uri) in namespaces {
            if !prefix.is_empty() && !is_ncname(prefix) {
                return Err(format!(
                    "namespace prefix '{prefix}' is not a valid XML name"
                ));
            }
            match entries.iter().find(|(p, _)| p == prefix) {
                Some((_, existing)) if existing == uri => {}
                Some((_, existing)) => {
                    return Err(format!(
                        "namespace prefix '{prefix}' is bound twice, to '{existing}' and to '{uri}'"
                    ));
                }
                None => entries.push((prefix.as_str(), uri.as_str())),
            }
        }
        Ok(PrefixTable { entries })
    }

    fn get(&self, prefix: &str) -> Option<&'n str> {
        self.entries
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, u)| *u)
    }

    fn known(&self) -> String {
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|(p, _)| {
                if p.is_empty() {
                    "\"\"".to_string()
                } else {
                    (*p).to_string()
                }
            })
            .collect();
        names.join(", ")
    }

    /// Resolves a qualified name; unprefixed element names take the `""` entry.
    fn resolve(&self, qname: &str, element: bool) -> Result<ExpandedName, String> {
        let Some((prefix, local)) = split_qname(qname) else {
            return Err(format!("'{qname}' is not a valid XML name"));
        };
        let ns = match prefix {
            Some(p) => self.get(p).ok_or_else(|| {
                format!(
                    "prefix '{p}' in '{qname}' is not declared in the namespaces (declared: {})",
                    self.known()
                )
            })?,
            None if element => self.get("").unwrap_or(""),
            None => "",
        };
        Ok(ExpandedName {
            ns: ns.to_string(),
            local: local.to_string(),
        })
    }
}

/// Splits a path at top-level '/', keeping predicates (which may hold '/') whole.
fn split_steps(s: &str) -> Result<Vec<&str>, String> {
    let mut steps = Vec::new();
    let mut start = 0usize;
    let mut quote: Option<char> = None;
    let mut in_bracket = false;
    for (i, ch) in s.char_indices() {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '\'' | '"' if in_bracket => quote = Some(ch),
            '[' if in_bracket => return Err("nested '[' inside a predicate".to_string()),
            '[' => in_bracket = true,
            ']' if !in_bracket => return Err(format!("']' at byte {i} has no matching '['")),
            ']' => in_bracket = false,
            '/' if !in_bracket => {
                steps.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("a quoted value in a predicate is not closed".to_string());
    }
    if in_bracket {
        return Err("a '[' is not closed by ']'".to_string());
    }
    steps.push(s.get(start..).unwrap_or(""));
    Ok(steps)
}

fn parse_literal(s: &str) -> Result<String, String> {
    let s = s.trim();
    let mut chars = s.chars();
    match (chars.next(), chars.next_back()) {
        (Some(open @ ('\'' | '"')), Some(close)) if open == close && s.len() >= 2 => {
            let inner = s.get(1..s.len() - 1).unwrap_or("");
            if inner.contains(open) {
                return Err(format!("value {s} has a stray quote"));
            }
            Ok(inner.to_string())
        }
        _ => Err(format!("value {s} must be quoted, e.g. '21'")),
    }
}

fn parse_predicate(inner: &str, table: &PrefixTable<'_>) -> Result<Predicate, String> {
    let inner = inner.trim();
    if inner.is_empty() {
        return Err("empty predicate []".to_string());
    }
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        let n: usize = inner
            .parse()
            .map_err(|_| format!("position [{inner}] is too large"))?;
        if n == 0 {
            return Err(
                "positions are 1-based: [0] selects nothing; use [1] for the first".to_string(),
            );
        }
        return Ok(Predicate::Position(n));
    }
    let Some((lhs, rhs)) = inner.split_once('=') else {
        return Err(format!(
            "predicate [{inner}] must be a position [2], an attribute test [@type='kana'] or a child test [hk:code='21']"
        ));
    };
    let value = parse_literal(rhs)?;
    let lhs = lhs.trim();
    match lhs.strip_prefix('@') {
        Some(attr) => Ok(Predicate::AttrEquals(
            table.resolve(attr.trim(), false)?,
            value,
        )),
        None => Ok(Predicate::ChildEquals(table.resolve(lhs, true)?, value)),
    }
}

/// Parses one step; `Ok(None)` is a trailing `text()`.
fn parse_step(raw: &str, table: &PrefixTable<'_>) -> Result<Option<Step>, String> {
    let step = raw.trim();
    match step {
        "." => return Ok(Some(Step::SelfNode)),
        ".." => return Ok(Some(Step::Parent)),
        "text()" => return Ok(None),
        _ => {}
    }
    if let Some(attr) = step.strip_prefix('@') {
        return Ok(Some(Step::Attr(table.resolve(attr.trim(), false)?)));
    }
    let name_end = step.find('[').unwrap_or(step.len());
    let name = step.get(..name_end).unwrap_or("").trim();
    let test = match name {
        "*" => NameTest::Any,
        "" => {
            return Err("a step needs an element name, '*', '.', '..' or '@attribute'".to_string());
        }
        _ if name.contains('(') => {
            return Err(format!(
                "'{name}' is not supported: the only function is a trailing text()"
            ));
        }
        _ => NameTest::Name(table.resolve(name, true)?),
    };
    let mut predicates = Vec::new();
    let mut rest = step.get(name_end..).unwrap_or("");
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix('[') else {
            return Err(format!("unexpected '{rest}' after a predicate"));
        };
        let mut quote: Option<char> = None;
        let mut close = None;
        for (i, ch) in body.char_indices() {
            match quote {
                Some(q) if ch == q => quote = None,
                Some(_) => {}
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                None if ch == ']' => {
                    close = Some(i);
                    break;
                }
                None => {}
            }
        }
        let Some(close) = close else {
            return Err("a '[' is not closed by ']'".to_string());
        };
        predicates.push(parse_predicate(body.get(..close).unwrap_or(""), table)?);
        rest = body.get(close + 1..).unwrap_or("").trim_start();
    }
    Ok(Some(Step::Child(test, predicates)))
}

impl Path {
    /// Compiles `s` against the mapping file's prefix → URI table.
    pub fn compile(s: &str, namespaces: &[(String, String)]) -> Result<Path, String> {
        Path::compile_inner(s, namespaces).map_err(|e| format!("path '{s}': {e}"))
    }

    fn compile_inner(s: &str, namespaces: &[(String, String)]) -> Result<Path, String> {
        let table = PrefixTable::new(namespaces)?;
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err("the path is empty".to_string());
        }
        let (absolute, body) = match trimmed.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if absolute && body.trim().is_empty() {
            return Err("'/' alone is the document, not an element; name the document element, e.g. /hk:card".to_string());
        }
        let raw_steps = split_steps(body)?;
        let last = raw_steps.len().saturating_sub(1);
        let mut steps = Vec::with_capacity(raw_steps.len());
        for (i, raw) in raw_steps.iter().enumerate() {
            let n = i + 1;
            if raw.trim().is_empty() {
                return Err(if i == last {
                    "the path ends with '/'".to_string()
                } else {
                    "'//' (search at any depth) is not supported; write every step".to_string()
                });
            }
            let parsed =
                parse_step(raw, &table).map_err(|e| format!("step {n} '{}': {e}", raw.trim()))?;
            match parsed {
                None if i != last => {
                    return Err(format!("step {n}: text() may only end the path"));
                }
                None => {
                    if matches!(steps.last(), Some(Step::Attr(_))) {
                        return Err("text() cannot follow an attribute step".to_string());
                    }
                    if absolute && i == 0 {
                        return Err(
                            "an absolute path must start with the document element".to_string()
                        );
                    }
                }
                Some(step) => {
                    if matches!(step, Step::Attr(_)) && i != last {
                        return Err(format!(
                            "step {n}: an attribute step may only be the last step"
                        ));
                    }
                    if absolute && i == 0 && !matches!(step, Step::Child(..)) {
                        return Err(
                            "an absolute path must start with the document element (a name or '*')"
                                .to_string(),
                        );
                    }
                    steps.push(step);
                }
            }
        }
        Ok(Path {
            source: trimmed.to_string(),
            absolute,
            steps,
        })
    }

    /// True for paths starting with '/'.
    pub fn is_absolute(&self) -> bool {
        self.absolute
    }

    /// The path as written (surrounding whitespace removed).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A node during path evaluation: the document node above the document
/// element, an element, or an attribute (element, attribute arena index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cur {
    Doc,
    El(usize),
    At(usize, usize),
}

impl Cur {
    fn order_key(self) -> (usize, usize) {
        match self {
            Cur::Doc => (0, 0),
            Cur::El(e) => (e + 1, 0),
            Cur::At(e, a) => (e + 1, a + 1),
        }
    }
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

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

    fn element(&self, node: Node) -> Option<&Element> {
        self.elements.get(node.element)
    }

    fn attribute(&self, node: Node) -> Option<&Attribute> {
        let el = self.element(node)?;
        let a = node.attribute?;
        if a < el.attr_start || a >= el.attr_end {
            return None;
        }
        self.attrs.get(a)
    }

    fn cur(&self, node: Node) -> Option<Cur> {
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

    fn name_matches(&self, el: &Element, name: &ExpandedName) -> bool {
        el.local() == name.local && self.uris.get(el.ns).is_some_and(|u| *u == name.ns)
    }

    fn test_matches(&self, el: &Element, test: &NameTest) -> bool {
        match test {
            NameTest::Any => true,
            NameTest::Name(name) => self.name_matches(el, name),
        }
    }

    fn predicate_holds(&self, element: usize, predicate: &Predicate) -> bool {
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

    fn path_name(&self, ns: usize, local: &str, out: &mut String) {
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
    fn enter(&self, element: usize, path: &mut String, f: &mut dyn FnMut(&str, &str)) {
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
    use proptest::prelude::*;

    fn doc(xml: &str) -> XmlDoc {
        match parse(xml.as_bytes(), &XmlLimits::default()) {
            Ok(d) => d,
            Err(e) => panic!("expected {xml:?} to parse, got: {e}"),
        }
    }

    fn err(bytes: &[u8]) -> XmlError {
        match parse(bytes, &XmlLimits::default()) {
            Ok(_) => panic!("expected an error for {:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e,
        }
    }

    fn ns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(p, u)| (p.to_string(), u.to_string()))
            .collect()
    }

    fn path(s: &str, namespaces: &[(String, String)]) -> Path {
        match Path::compile(s, namespaces) {
            Ok(p) => p,
            Err(e) => panic!("expected {s:?} to compile: {e}"),
        }
    }

    /// Values selected by `p` from `from`.
    fn values(d: &XmlDoc, from: Node, p: &Path) -> Vec<String> {
        let mut out = Vec::new();
        d.select(from, p, &mut out);
        out.iter()
            .map(|&n| d.value(n).map(|v| v.into_owned()).unwrap_or_default())
            .collect()
    }

    fn sel(d: &XmlDoc, s: &str, namespaces: &[(String, String)]) -> Vec<String> {
        values(d, d.root(), &path(s, namespaces))
    }

    const CARD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<hk:card xmlns:hk="urn:kaigo:card" xmlns:x="urn:other">
  <hk:name type="kanji">山田 太郎</hk:name>
  <hk:name type="kana" x:script="katakana">ヤマダ タロウ</hk:name>
  <x:name>other namespace</x:name>
  <hk:items>
    <hk:item><hk:code>11</hk:code><hk:label>訪問介護</hk:label></hk:item>
    <hk:item><hk:code>21</hk:code><hk:label>短期入所</hk:label></hk:item>
    <hk:item><hk:code>13</hk:code><hk:label>訪問看護</hk:label></hk:item>
  </hk:items>
</hk:card>"#;

    fn card_ns() -> Vec<(String, String)> {
        ns(&[("hk", "urn:kaigo:card"), ("x", "urn:other")])
    }

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
    fn shift_jis_declared_document_is_decoded() {
        let xml = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<利用者><氏名>介護 太郎</氏名><住所>東京都～港区</住所></利用者>";
        let bytes = charset::encode(xml, Charset::Ms932, "test").expect("MS932 text");
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "test input must not be UTF-8"
        );
        let d = match parse(&bytes, &XmlLimits::default()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(d.encoding(), "Shift_JIS");
        assert_eq!(sel(&d, "/利用者/氏名", &[]), ["介護 太郎"]);
        assert_eq!(sel(&d, "/利用者/住所", &[]), ["東京都～港区"]);
    }

    #[test]
    fn windows_31j_euc_jp_and_iso_2022_jp_documents_are_decoded() {
        // 髙 (IBM extension) exists in Windows-31J but not in JIS X 0208.
        for (label, enc, decoded_as, name) in [
            ("Windows-31J", Charset::Ms932, "Shift_JIS", "髙橋"),
            ("MS932", Charset::Ms932, "Shift_JIS", "髙橋"),
            ("EUC-JP", Charset::EucJp, "EUC-JP", "高橋"),
            ("ISO-2022-JP", Charset::Iso2022Jp, "ISO-2022-JP", "高橋"),
        ] {
            let xml = format!("<?xml version='1.0' encoding='{label}'?><a>{name}</a>");
            let bytes = charset::encode(&xml, enc, "test")
                .unwrap_or_else(|e| panic!("{label} cannot encode the test text: {e}"));
            assert!(!bytes.windows(2).any(|w| w == b"&#"), "{label}");
            let d = match parse(&bytes, &XmlLimits::default()) {
                Ok(d) => d,
                Err(e) => panic!("{label}: {e}"),
            };
            assert_eq!(d.encoding(), decoded_as, "{label}");
            assert_eq!(d.text(d.root()), Some(name), "{label}");
        }
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>介護</a>";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in xml.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        for (bytes, name) in [(le, "UTF-16LE"), (be, "UTF-16BE")] {
            let d = match parse(&bytes, &XmlLimits::default()) {
                Ok(d) => d,
                Err(e) => panic!("{name}: {e}"),
            };
            assert_eq!(d.encoding(), name);
            assert_eq!(d.text(d.root()), Some("介護"));
        }
    }

    #[test]
    fn malformed_shift_jis_bytes_are_an_error_with_offset_not_replacement() {
        let mut bytes = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<a>".to_vec();
        let offset = bytes.len();
        bytes.extend_from_slice(&[0x82, 0x20, b'<', b'/', b'a', b'>']);
        match err(&bytes) {
            XmlError::Encoding {
                byte_offset,
                line,
                column,
                encoding,
                ..
            } => {
                assert_eq!(byte_offset, offset);
                assert_eq!((line, column), (2, 4));
                assert_eq!(encoding, "Shift_JIS");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_with_offset() {
        let e = err(b"<a>ok\xFFno</a>");
        assert!(
            matches!(
                e,
                XmlError::Encoding {
                    byte_offset: 5,
                    line: 1,
                    column: 6,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_or_mismatched_encoding_is_refused() {
        let e = err(b"<?xml version=\"1.0\" encoding=\"KOI8-R\"?><a/>");
        assert!(
            matches!(e, XmlError::UnsupportedEncoding { ref label, .. } if label == "KOI8-R"),
            "{e}"
        );
        let e = err(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>");
        assert!(matches!(e, XmlError::EncodingMismatch { .. }), "{e}");
        let e = err(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><a/>");
        assert!(matches!(e, XmlError::EncodingMismatch { .. }), "{e}");
    }

    #[test]
    fn utf8_bom_is_skipped() {
        let d = doc("\u{FEFF}<?xml version=\"1.0\"?><a>x</a>");
        assert_eq!(d.text(d.root()), Some("x"));
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
    fn absolute_path_must_match_the_document_element() {
        let d = doc(CARD);
        let n = card_ns();
        assert!(sel(&d, "/hk:name", &n).is_empty());
        assert!(sel(&d, "/x:card/hk:name", &n).is_empty());
        // Absolute paths ignore the starting node.
        let mut items = Vec::new();
        d.select(d.root(), &path("hk:items/hk:item", &n), &mut items);
        assert_eq!(
            values(&d, items[0], &path("/hk:card/hk:name[1]", &n)),
            ["山田 太郎"]
        );
        assert!(path("/hk:card", &n).is_absolute());
        assert!(!path("hk:card", &n).is_absolute());
    }

    #[test]
    fn bad_paths_are_rejected_with_a_reason() {
        let n = card_ns();
        for (bad, needle) in [
            ("", "empty"),
            ("/", "document element"),
            ("//hk:name", "'//'"),
            ("/hk:card//hk:name", "'//'"),
            ("hk:card/", "ends with '/'"),
            ("zz:card", "prefix 'zz'"),
            ("hk:item[0]", "1-based"),
            ("hk:item[", "not closed"),
            ("hk:item]", "no matching"),
            ("hk:item[@type=kana]", "quoted"),
            ("hk:item[@type='kana]", "not closed"),
            ("hk:item[last()]", "predicate"),
            ("@type/hk:x", "last step"),
            ("hk:a/text()/hk:b", "text()"),
            ("@type/text()", "attribute"),
            ("/..", "document element"),
            ("/@x", "document element"),
            ("hk:1bad", "not a valid XML name"),
            ("count(hk:a)", "not supported"),
            ("hk:item[@zz:t='1']", "prefix 'zz'"),
            ("hk:item[[1]]", "nested"),
            ("hk:item[1]x", "unexpected"),
        ] {
            match Path::compile(bad, &n) {
                Ok(p) => panic!("{bad:?} compiled to {p:?}"),
                Err(e) => assert!(e.contains(needle), "{bad:?}: {e}"),
            }
        }
        let clash = ns(&[("a", "urn:1"), ("a", "urn:2")]);
        assert!(Path::compile("a:x", &clash).is_err());
        assert!(Path::compile("a:x", &ns(&[("1a", "urn:1")])).is_err());
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

    /// Every walked path must compile under `namespaces()` and select exactly
    /// one node with the walked value.
    fn assert_walk_round_trips(d: &XmlDoc) -> usize {
        let table = d.namespaces();
        let mut pairs = Vec::new();
        d.walk(&mut |p, v| pairs.push((p.to_string(), v.to_string())));
        for (p, v) in &pairs {
            let compiled = match Path::compile(p, &table) {
                Ok(c) => c,
                Err(e) => panic!("walked path {p:?} does not compile under {table:?}: {e}"),
            };
            assert_eq!(
                values(d, d.root(), &compiled),
                std::slice::from_ref(v),
                "path {p}"
            );
        }
        pairs.len()
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

    fn exercise(d: &XmlDoc) {
        let table = d.namespaces();
        let mut out = Vec::new();
        for p in [
            "*",
            "..",
            ".",
            "*/*[2]",
            "*[@a='1']",
            "*/..",
            "/*/*/text()",
            "@*x",
        ] {
            if let Ok(compiled) = Path::compile(p, &table) {
                d.select(d.root(), &compiled, &mut out);
                for &n in &out {
                    let _ = d.value(n);
                    let _ = d.location(n);
                }
            }
        }
        assert_walk_round_trips(d);
    }

    const SEED: &str = "<?xml version=\"1.0\"?>\n<hk:a xmlns:hk=\"urn:hk\" xmlns=\"urn:d\" k=\"v&amp;\"><b>1</b><b>2<![CDATA[x]]></b><hk:c t='z'>&#x3042;</hk:c><!-- c --></hk:a>";

    const FRAGMENTS: &[&str] = &[
        "<a>",
        "</a>",
        "<b>",
        "</b>",
        "<a/>",
        "<p:a xmlns:p='urn:p'>",
        "</p:a>",
        "<p:b/>",
        "<a xmlns='urn:d'>",
        "<c xmlns=''>",
        "</c>",
        " x='1'",
        " p:y='2'",
        "&amp;",
        "&lt;",
        "&#x41;",
        "&#0;",
        "&bogus;",
        "&",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?pi x?>",
        "<?xml version='1.0'?>",
        "<!DOCTYPE a>",
        "text",
        "山田",
        " ",
        "\r\n",
        "'",
        "\"",
        "=",
        "/>",
        ">",
        "<",
        "[",
        "]",
        "<a x='1' y='2'>",
        "<a x='1' x='1'>",
        "\u{3000}",
    ];

    /// xorshift, so a proptest seed reproduces a generated document.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, m: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % m as u64).unwrap_or(0)
        }
    }

    /// Appends a well-formed element with random namespace declarations (prefixes
    /// rebound to other URIs, default namespace set and undeclared), prefixed and
    /// unprefixed attributes, text and same-named siblings.
    fn random_tree(r: &mut Rng, depth: usize, scope: &mut Vec<&'static str>, out: &mut String) {
        const PREFIXES: [&str; 3] = ["p", "q", "r"];
        const URIS: [&str; 3] = ["urn:1", "urn:2", "urn:3"];
        let mut declared: Vec<&'static str> = Vec::new();
        let mut decls = String::new();
        if r.below(3) == 0 {
            let uri = if r.below(4) == 0 {
                ""
            } else {
                URIS[r.below(3)]
            };
            decls.push_str(&format!(" xmlns='{uri}'"));
        }
        for _ in 0..r.below(3) {
            let p = PREFIXES[r.below(3)];
            if !declared.contains(&p) {
                decls.push_str(&format!(" xmlns:{p}='{}'", URIS[r.below(3)]));
                declared.push(p);
            }
        }
        let before = scope.len();
        scope.extend(declared.iter().copied());
        let prefix = match scope.len() {
            0 => "",
            n if r.below(2) == 0 => scope[r.below(n)],
            _ => "",
        };
        let local = ["a", "b", "名"][r.below(3)];
        let name = if prefix.is_empty() {
            local.to_string()
        } else {
            format!("{prefix}:{local}")
        };
        let mut attrs = String::new();
        if r.below(2) == 0 {
            attrs.push_str(&format!(" t='v{}'", r.below(3)));
        }
        if !scope.is_empty() && r.below(2) == 0 {
            attrs.push_str(&format!(
                " {}:t='w{}'",
                scope[r.below(scope.len())],
                r.below(3)
            ));
        }
        out.push_str(&format!("<{name}{decls}{attrs}>"));
        if r.below(2) == 0 {
            out.push_str(&format!(" t{} ", r.below(5)));
        }
        if depth < 4 {
            for _ in 0..r.below(4) {
                random_tree(r, depth + 1, scope, out);
            }
        }
        scope.truncate(before);
        out.push_str(&format!("</{name}>"));
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
        fn generated_trees_walk_paths_round_trip(seed in 1u64..) {
            let mut xml = String::new();
            random_tree(&mut Rng(seed), 0, &mut Vec::new(), &mut xml);
            match parse(xml.as_bytes(), &XmlLimits::default()) {
                Ok(d) => exercise(&d),
                Err(e) => prop_assert!(false, "generated document refused: {e}\n{xml}"),
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
}
