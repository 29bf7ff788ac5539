//! Walks a canonical JSON Schema along a target path, so the mapping compiler can tell at load
//! time whether `name.kana.family` exists in `InsuredPerson@1` and which JSON type it holds. Reads
//! schemas only; never sees a message.

use serde_json::Value;

/// What a schema node holds, as far as a mapping needs to know.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A JSON object with named properties.
    Object,
    /// A JSON array.
    Array,
    /// A string, optionally restricted to a list of values.
    String(Option<Vec<String>>),
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
    /// Anything (no constraint known).
    Any,
}

impl Shape {
    /// A single plain value: text, a code, a number or a boolean.
    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            Shape::String(_) | Shape::Integer | Shape::Number | Shape::Boolean
        )
    }

    /// A short name for error messages.
    pub fn describe(&self) -> String {
        match self {
            Shape::Object => "an object".into(),
            Shape::Array => "an array".into(),
            Shape::String(None) => "a string".into(),
            Shape::String(Some(v)) => format!("one of {}", v.join(", ")),
            Shape::Integer => "an integer".into(),
            Shape::Number => "a number".into(),
            Shape::Boolean => "a boolean".into(),
            Shape::Any => "any value".into(),
        }
    }
}

/// Follows `$ref` and strips `null` alternatives until a concrete node is reached.
pub fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or("");
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(n) => node = n,
                None => return node,
            }
            continue;
        }
        let alts = node.get("anyOf").or_else(|| node.get("oneOf"));
        if let Some(Value::Array(alts)) = alts {
            let non_null: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 {
                node = non_null[0];
                continue;
            }
        }
        return node;
    }
    node
}

/// The shape of a (resolved) schema node.
pub fn shape(root: &Value, node: &Value) -> Shape {
    let node = resolve(root, node);
    if let Some(Value::Array(values)) = node.get("enum") {
        return Shape::String(Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        ));
    }
    if let Some(Value::String(c)) = node.get("const") {
        return Shape::String(Some(vec![c.clone()]));
    }
    let ty = match node.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => {
            if let Some(Value::Array(one)) = node.get("oneOf") {
                // schemars renders documented unit enums as oneOf of consts.
                let consts: Vec<String> = one
                    .iter()
                    .filter_map(|v| {
                        v.get("const")
                            .or_else(|| v.get("enum").and_then(|e| e.get(0)))
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect();
                if consts.len() == one.len() && !consts.is_empty() {
                    return Shape::String(Some(consts));
                }
            }
            return Shape::Any;
        }
    };
    match ty {
        "object" => Shape::Object,
        "array" => Shape::Array,
        "string" => Shape::String(None),
        "integer" => Shape::Integer,
        "number" => Shape::Number,
        "boolean" => Shape::Boolean,
        _ => Shape::Any,
    }
}

/// The schema of property `key` of an object node, if it has one.
pub fn property<'a>(root: &'a Value, node: &'a Value, key: &str) -> Option<&'a Value> {
    resolve(root, node).get("properties")?.get(key)
}

/// The schema of the items of an array node.
pub fn items<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    resolve(root, node).get("items")
}

/// The property names of an object node, for "did you mean" hints.
pub fn property_names(root: &Value, node: &Value) -> Vec<String> {
    resolve(root, node)
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::DocKind;

    #[test]
    fn nested_optional_properties_resolve_through_refs() {
        let root = DocKind::InsuredPerson.schema();
        let name = property(&root, &root, "name").unwrap();
        let kana = property(&root, name, "kana").unwrap();
        let family = property(&root, kana, "family").unwrap();
        assert_eq!(shape(&root, family), Shape::String(None));
        assert!(property(&root, kana, "famliy").is_none());
    }

    #[test]
    fn enums_and_integers_are_known() {
        let root = DocKind::InsuredPerson.schema();
        let sex = property(&root, &root, "sex").unwrap();
        match shape(&root, sex) {
            Shape::String(Some(v)) => assert!(v.contains(&"female".to_string()), "{v:?}"),
            other => panic!("sex is {other:?}"),
        }
        let root = DocKind::CarePlan.schema();
        let t2 = property(&root, &root, "table2").unwrap();
        let rows = property(&root, t2, "rows").unwrap();
        assert_eq!(shape(&root, rows), Shape::Array);
        let row = items(&root, rows).unwrap();
        assert_eq!(
            shape(&root, property(&root, row, "need_no").unwrap()),
            Shape::Integer
        );
        assert_eq!(
            shape(&root, property(&root, row, "insurance_covered").unwrap()),
            Shape::Boolean
        );
    }
}
