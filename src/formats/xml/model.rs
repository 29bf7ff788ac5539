//! The parsed XML document: an arena of elements in document order, each with its expanded
//! name, attributes, children, direct text and line/column. What the parser builds and the
//! queries read; nothing here parses or selects.

#[derive(Clone, Debug)]
pub(super) struct Element {
    /// Index into `XmlDoc::uris`; 0 = no namespace.
    pub(super) ns: usize,
    /// The name as written in the document, prefix included.
    pub(super) qname: Box<str>,
    /// Byte index in `qname` where the local name starts.
    pub(super) local_start: usize,
    pub(super) parent: Option<usize>,
    pub(super) children: Vec<usize>,
    /// Range into `XmlDoc::attrs`.
    pub(super) attr_start: usize,
    pub(super) attr_end: usize,
    /// Direct text: text and CDATA children concatenated, entities expanded, untrimmed.
    pub(super) text: String,
    pub(super) line: usize,
    pub(super) column: usize,
    /// 1-based position among siblings with the same expanded name.
    pub(super) sibling_index: usize,
    /// Number of siblings (self included) with the same expanded name.
    pub(super) sibling_count: usize,
}

impl Element {
    pub(super) fn local(&self) -> &str {
        self.qname.get(self.local_start..).unwrap_or(&self.qname)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Attribute {
    pub(super) ns: usize,
    pub(super) qname: Box<str>,
    pub(super) local_start: usize,
    pub(super) value: Box<str>,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Attribute {
    pub(super) fn local(&self) -> &str {
        self.qname.get(self.local_start..).unwrap_or(&self.qname)
    }
}

/// An element, or one attribute of an element, of an [`XmlDoc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub(super) element: usize,
    pub(super) attribute: Option<usize>,
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
    pub(super) elements: Vec<Element>,
    pub(super) attrs: Vec<Attribute>,
    /// Interned namespace URIs; index 0 is "" (no namespace).
    pub(super) uris: Vec<String>,
    /// Per URI index: the prefix `walk` writes for it (`""` = unprefixed).
    pub(super) path_prefix: Vec<String>,
    /// The table `namespaces()` returns.
    pub(super) declared: Vec<(String, String)>,
    pub(super) encoding: &'static str,
}
