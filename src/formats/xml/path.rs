//! The path grammar of XML mappings (see the module documentation of `xml`): [`Path::compile`]
//! turns `/hk:card/hk:item[@type='kana']/text()` and a prefix table into compiled steps, or an
//! error saying which step is wrong and why. Knows nothing of a document.

use super::chars::*;
use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ExpandedName {
    /// "" = no namespace.
    pub(super) ns: String,
    pub(super) local: String,
}

#[derive(Clone, Debug)]
pub(super) enum NameTest {
    Any,
    Name(ExpandedName),
}

#[derive(Clone, Debug)]
pub(super) enum Predicate {
    Position(usize),
    AttrEquals(ExpandedName, String),
    ChildEquals(ExpandedName, String),
}

#[derive(Clone, Debug)]
pub(super) enum Step {
    SelfNode,
    Parent,
    Child(NameTest, Vec<Predicate>),
    Attr(ExpandedName),
}

/// A compiled path; see the module documentation for the grammar.
#[derive(Clone, Debug)]
pub struct Path {
    pub(super) source: String,
    pub(super) absolute: bool,
    pub(super) steps: Vec<Step>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

pub(super) struct PrefixTable<'n> {
    pub(super) entries: Vec<(&'n str, &'n str)>,
}

impl<'n> PrefixTable<'n> {
    pub(super) fn new(namespaces: &'n [(String, String)]) -> Result<Self, String> {
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

    pub(super) fn get(&self, prefix: &str) -> Option<&'n str> {
        self.entries
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, u)| *u)
    }

    pub(super) fn known(&self) -> String {
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
    pub(super) fn resolve(&self, qname: &str, element: bool) -> Result<ExpandedName, String> {
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
pub(super) fn split_steps(s: &str) -> Result<Vec<&str>, String> {
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

pub(super) fn parse_literal(s: &str) -> Result<String, String> {
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

pub(super) fn parse_predicate(inner: &str, table: &PrefixTable<'_>) -> Result<Predicate, String> {
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
pub(super) fn parse_step(raw: &str, table: &PrefixTable<'_>) -> Result<Option<Step>, String> {
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

    pub(super) fn compile_inner(s: &str, namespaces: &[(String, String)]) -> Result<Path, String> {
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
pub(super) enum Cur {
    Doc,
    El(usize),
    At(usize, usize),
}

impl Cur {
    pub(super) fn order_key(self) -> (usize, usize) {
        match self {
            Cur::Doc => (0, 0),
            Cur::El(e) => (e + 1, 0),
            Cur::At(e, a) => (e + 1, a + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::xml::test_support::*;

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
}
