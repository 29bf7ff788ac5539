//! Documents and small helpers shared by the XML unit tests (compiled for tests only).

use super::*;

pub(crate) fn doc(xml: &str) -> XmlDoc {
    match parse(xml.as_bytes(), &XmlLimits::default()) {
        Ok(d) => d,
        Err(e) => panic!("expected {xml:?} to parse, got: {e}"),
    }
}

pub(crate) fn err(bytes: &[u8]) -> XmlError {
    match parse(bytes, &XmlLimits::default()) {
        Ok(_) => panic!("expected an error for {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => e,
    }
}

pub(crate) fn ns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(p, u)| (p.to_string(), u.to_string()))
        .collect()
}

pub(crate) fn path(s: &str, namespaces: &[(String, String)]) -> Path {
    match Path::compile(s, namespaces) {
        Ok(p) => p,
        Err(e) => panic!("expected {s:?} to compile: {e}"),
    }
}

/// Values selected by `p` from `from`.
pub(crate) fn values(d: &XmlDoc, from: Node, p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    d.select(from, p, &mut out);
    out.iter()
        .map(|&n| d.value(n).map(|v| v.into_owned()).unwrap_or_default())
        .collect()
}

pub(crate) fn sel(d: &XmlDoc, s: &str, namespaces: &[(String, String)]) -> Vec<String> {
    values(d, d.root(), &path(s, namespaces))
}

pub(crate) const CARD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
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

pub(crate) fn card_ns() -> Vec<(String, String)> {
    ns(&[("hk", "urn:kaigo:card"), ("x", "urn:other")])
}

/// Every walked path must compile under `namespaces()` and select exactly
/// one node with the walked value.
pub(crate) fn assert_walk_round_trips(d: &XmlDoc) -> usize {
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

pub(crate) fn exercise(d: &XmlDoc) {
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

pub(crate) const SEED: &str = "<?xml version=\"1.0\"?>\n<hk:a xmlns:hk=\"urn:hk\" xmlns=\"urn:d\" k=\"v&amp;\"><b>1</b><b>2<![CDATA[x]]></b><hk:c t='z'>&#x3042;</hk:c><!-- c --></hk:a>";

pub(crate) const FRAGMENTS: &[&str] = &[
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
pub(crate) struct Rng(pub(crate) u64);

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
pub(crate) fn random_tree(
    r: &mut Rng,
    depth: usize,
    scope: &mut Vec<&'static str>,
    out: &mut String,
) {
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
