//! FHIR R4 JSON (and canonical JSON) as a navigable tree. The raw JSON is the record: it is held
//! as a `serde_json::Value` built with `preserve_order` and `arbitrary_precision`, so decimals keep
//! their digits (`1.50` stays `1.50`), unknown elements, extensions and primitive `_field`
//! extensions survive a round trip. Paths select values; nothing here knows FHIR profiles.
//!
//! Path grammar (0-based indexes, like FHIRPath and JSON):
//! - `name.family` — keys separated by dots; arrays are flattened, so this selects the family
//!   of every `name`;
//! - `name[0]`, `name[*]` — one item or all items of an array;
//! - `name[extension.valueCode=IDE]` — items whose relative path has that value (quote values
//!   holding `]` or `=` with `'…'`); `identifier[system]` — items where the path has any value;
//! - `[resourceType=Patient]` — a filter on the current node itself;
//! - a leading `/` starts from the document root instead of the current node.
//!
//! Must never: lose digits or fields, recurse without bound (serde_json stops at depth 128).

use serde_json::Value;
use std::borrow::Cow;

/// A JSON document that failed to parse.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Malformed JSON, with serde_json's line and column.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json said.
        message: String,
    },
}

/// Parses UTF-8 JSON bytes (a UTF-8 BOM is skipped). The size is bounded by the door the bytes
/// came through (`body_limit`), the nesting by serde_json (128 levels).
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// A compiled path.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    absolute: bool,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
struct Step {
    key: Option<String>,
    selectors: Vec<Selector>,
}

#[derive(Clone, Debug, PartialEq)]
enum Selector {
    All,
    Index(usize),
    Filter(Box<Path>, Option<String>),
}

impl Path {
    /// Compiles a path, or says what is wrong with it.
    pub fn compile(s: &str) -> Result<Path, String> {
        let (absolute, rest) = match s.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let mut steps = Vec::new();
        for part in split_top(rest, '.')? {
            if part.is_empty() {
                if rest.is_empty() {
                    break;
                }
                return Err(format!(
                    "path `{s}` has an empty step (two dots or a trailing dot)"
                ));
            }
            steps.push(parse_step(part).map_err(|e| format!("path `{s}`: {e}"))?);
        }
        Ok(Path { absolute, steps })
    }

    /// True when the path starts at the document root.
    pub fn is_absolute(&self) -> bool {
        self.absolute
    }
}

fn split_top(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, false, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '[' if !quote => depth += 1,
            ']' if !quote => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced `]` in `{s}`"))?
            }
            c if c == sep && depth == 0 && !quote => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quote {
        return Err(format!("unclosed `[` or quote in `{s}`"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_step(part: &str) -> Result<Step, String> {
    let bracket = part.find('[').unwrap_or(part.len());
    let key = &part[..bracket];
    if key.contains(']') || key.contains('=') {
        return Err(format!("`{part}` is not a key"));
    }
    let mut selectors = Vec::new();
    let mut rest = &part[bracket..];
    while !rest.is_empty() {
        let inner_end =
            matching_bracket(rest).ok_or_else(|| format!("unclosed `[` in `{part}`"))?;
        let inner = &rest[1..inner_end];
        selectors.push(parse_selector(inner)?);
        rest = &rest[inner_end + 1..];
        if !rest.is_empty() && !rest.starts_with('[') {
            return Err(format!("unexpected `{rest}` after `]` in `{part}`"));
        }
    }
    Ok(Step {
        key: (!key.is_empty()).then(|| key.to_string()),
        selectors,
    })
}

fn matching_bracket(s: &str) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, false);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '[' if !quote => depth += 1,
            ']' if !quote => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_selector(inner: &str) -> Result<Selector, String> {
    let inner = inner.trim();
    if inner == "*" {
        return Ok(Selector::All);
    }
    if let Ok(n) = inner.parse::<usize>() {
        return Ok(Selector::Index(n));
    }
    if inner.is_empty() {
        return Err("empty `[]`: write an index, `*` or a filter like `[system=…]`".into());
    }
    let parts = split_top(inner, '=')?;
    match parts.as_slice() {
        [p] => Ok(Selector::Filter(Box::new(Path::compile(p.trim())?), None)),
        [p, v] => {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .unwrap_or(v);
            Ok(Selector::Filter(
                Box::new(Path::compile(p.trim())?),
                Some(v.to_string()),
            ))
        }
        _ => Err(format!(
            "filter `[{inner}]` has more than one `=`; quote the value"
        )),
    }
}

/// Pushes every value `path` selects from `from` (or from `root` when the path is absolute).
/// What [`select`] gives when that is at most one node, found without allocating: for a path
/// of plain keys (no selectors) that meets no array on its way or at its end. `Some(None)`:
/// nothing there; `None`: use [`select`] (the path has selectors or meets an array).
pub fn select_one<'a>(root: &'a Value, from: &'a Value, path: &Path) -> Option<Option<&'a Value>> {
    let mut node = if path.absolute { root } else { from };
    if matches!(node, Value::Array(_)) {
        return None;
    }
    for step in &path.steps {
        if !step.selectors.is_empty() {
            return None;
        }
        let Some(key) = &step.key else {
            return None;
        };
        node = match node {
            Value::Object(m) => match m.get(key) {
                Some(v) => v,
                None => return Some(None),
            },
            _ => return Some(None),
        };
        if matches!(node, Value::Array(_)) {
            return None;
        }
    }
    Some(Some(node))
}

pub fn select<'a>(root: &'a Value, from: &'a Value, path: &Path, out: &mut Vec<&'a Value>) {
    let start = if path.absolute { root } else { from };
    let mut current = vec![start];
    let mut next = Vec::new();
    for step in &path.steps {
        for node in current.drain(..) {
            apply_step(root, node, step, &mut next);
        }
        std::mem::swap(&mut current, &mut next);
        if current.is_empty() {
            return;
        }
    }
    out.extend(current);
}

fn apply_step<'a>(root: &'a Value, node: &'a Value, step: &Step, out: &mut Vec<&'a Value>) {
    let target = match &step.key {
        Some(k) => match node {
            Value::Object(m) => match m.get(k) {
                Some(v) => v,
                None => return,
            },
            Value::Array(items) => {
                // Flatten: apply the step to each item.
                for item in items {
                    apply_step(root, item, step, out);
                }
                return;
            }
            _ => return,
        },
        None => node,
    };
    let mut items: Vec<&Value> = match target {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    for sel in &step.selectors {
        items = match sel {
            Selector::All => items,
            Selector::Index(n) => items.get(*n).map(|v| vec![*v]).unwrap_or_default(),
            Selector::Filter(p, expected) => items
                .into_iter()
                .filter(|item| {
                    let mut found = Vec::new();
                    select(root, item, p, &mut found);
                    match expected {
                        None => found.iter().any(|v| !v.is_null()),
                        Some(e) => found.iter().any(|v| text(v).as_deref() == Some(e.as_str())),
                    }
                })
                .collect(),
        };
    }
    out.extend(items);
}

/// The text of a scalar value: strings as they are, numbers with their original digits,
/// booleans as `true`/`false`. `None` for null, empty strings, objects and arrays.
pub fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// Calls `f(path, value)` for every scalar in the document, in document order, with paths
/// that [`Path::compile`] accepts (used by `kaigo-hub inspect`).
pub fn walk(v: &Value, f: &mut dyn FnMut(&str, &str)) {
    let mut path = String::new();
    walk_inner(v, &mut path, f);
}

fn walk_inner(v: &Value, path: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk_inner(child, path, f);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_inner(child, path, f);
                path.truncate(len);
            }
        }
        other => {
            if let Some(t) = text(other) {
                f(path, &t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(doc: &Value, p: &str) -> Vec<String> {
        let path = Path::compile(p).unwrap();
        let mut out = Vec::new();
        select(doc, doc, &path, &mut out);
        out.iter()
            .filter_map(|v| text(v).map(|t| t.into_owned()))
            .collect()
    }

    #[test]
    fn select_one_agrees_with_select_wherever_it_answers() {
        let doc = json!({
            "a": {"b": "x", "n": 1.50, "e": "", "z": null, "o": {"p": "deep"}},
            "list": [{"b": "i0"}, {"b": "i1"}],
            "s": "top",
        });
        let mut answered = 0;
        for p in [
            "a.b",
            "a.n",
            "a.e",
            "a.z",
            "a.o",
            "a.o.p",
            "a.missing",
            "a.b.c",
            "s",
            "s.x",
            "list",
            "list.b",
            "list[0].b",
            "/a.b",
            "a.o.p.q",
            "nothing.at.all",
        ] {
            let path = Path::compile(p).unwrap();
            let mut all = Vec::new();
            select(&doc, &doc["a"], &path, &mut all);
            let mut from_root = Vec::new();
            select(&doc, &doc, &path, &mut from_root);
            for (from, want) in [(&doc["a"], &all), (&doc, &from_root)] {
                if let Some(one) = select_one(&doc, from, &path) {
                    answered += 1;
                    assert_eq!(one.into_iter().collect::<Vec<_>>(), *want, "{p}");
                }
            }
        }
        // Arrays and selectors are left to `select`.
        assert_eq!(
            select_one(&doc, &doc, &Path::compile("list").unwrap()),
            None
        );
        assert_eq!(
            select_one(&doc, &doc, &Path::compile("list.b").unwrap()),
            None
        );
        assert_eq!(
            select_one(&doc, &doc, &Path::compile("list[0].b").unwrap()),
            None
        );
        assert!(answered > 15, "{answered}");
    }

    #[test]
    fn decimals_keep_their_digits_through_a_round_trip() {
        let raw = br#"{"valueQuantity":{"value":1.50,"unit":"mg"},"big":12345678901234567890.000}"#;
        let v = parse(raw).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            std::str::from_utf8(raw).unwrap()
        );
        assert_eq!(sel(&v, "valueQuantity.value"), ["1.50"]);
    }

    #[test]
    fn unknown_fields_and_primitive_extensions_survive() {
        let raw = r#"{"resourceType":"Patient","birthDate":"1948-04-05","_birthDate":{"extension":[{"url":"x","valueString":"y"}]},"zzUnknown":[1,2]}"#;
        let v = parse(raw.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), raw);
    }

    #[test]
    fn filters_select_the_kana_name() {
        let v = json!({"name": [
            {"extension": [{"url": "r", "valueCode": "IDE"}], "family": "牧野"},
            {"extension": [{"url": "r", "valueCode": "SYL"}], "family": "マキノ"}
        ]});
        assert_eq!(sel(&v, "name[extension.valueCode=SYL].family"), ["マキノ"]);
        assert_eq!(sel(&v, "name.family"), ["牧野", "マキノ"]);
        assert_eq!(sel(&v, "name[1].family"), ["マキノ"]);
        assert_eq!(sel(&v, "name[*].family"), ["牧野", "マキノ"]);
    }

    #[test]
    fn quoted_filter_values_may_hold_dots_and_colons() {
        let v = json!({"identifier": [
            {"system": "urn:oid:1.2.392.100495.20.3.51.11318814790", "value": "00000010"},
            {"system": "other", "value": "x"}
        ]});
        assert_eq!(
            sel(
                &v,
                "identifier[system='urn:oid:1.2.392.100495.20.3.51.11318814790'].value"
            ),
            ["00000010"]
        );
    }

    #[test]
    fn self_filter_and_absolute_paths() {
        let v = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]});
        assert_eq!(sel(&v, "[resourceType=Bundle].entry.resource.id"), ["p"]);
        assert!(sel(&v, "[resourceType=Patient].id").is_empty());
        let path = Path::compile("/resourceType").unwrap();
        let inner = &v["entry"][0];
        let mut out = Vec::new();
        select(&v, inner, &path, &mut out);
        assert_eq!(text(out[0]).unwrap(), "Bundle");
    }

    #[test]
    fn bad_paths_are_explained() {
        assert!(Path::compile("name[").unwrap_err().contains("unclosed"));
        assert!(Path::compile("a..b").unwrap_err().contains("empty step"));
        assert!(Path::compile("a[]").unwrap_err().contains("empty `[]`"));
    }

    #[test]
    fn walk_paths_compile_and_select_their_values() {
        let v = json!({"a": [{"b": "x"}, {"c": 1.0}], "d": true});
        let mut seen = Vec::new();
        walk(&v, &mut |p, val| {
            seen.push((p.to_string(), val.to_string()))
        });
        assert_eq!(seen.len(), 3);
        for (p, val) in seen {
            assert_eq!(sel(&v, &p), [val]);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
