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
//! The rooms: `encoding` (which encoding, strict decoding), `parse` (bytes to [`XmlDoc`]), `model`
//! (the document arena), `chars` (XML characters, names, positions), `path` (the grammar below),
//! `query` (select, values, locations, walk); this file holds [`XmlLimits`] and [`XmlError`].
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

mod chars;
mod encoding;
mod model;
mod parse;
mod path;
mod query;
#[cfg(test)]
mod test_support;

pub use model::{Node, XmlDoc};
pub use parse::parse;
pub use path::Path;

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
