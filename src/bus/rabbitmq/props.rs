//! `Props` ↔ AMQP basic properties, and AMQP short strings. Out: persistent messages with
//! headers as long strings and `user_id` only when set; in: `Props` with integer, boolean and
//! timestamp headers as decimal text (arrays and tables left out), the quorum queue's
//! `x-delivery-count` as the delivery count (not a header), and the broker's `x-death` array
//! summarised as `x-death-reason`, like `memory.rs`. Must never: panic on an overlong name or
//! value (it is refused with the field named).

use super::super::{BusError, Props};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::collections::BTreeMap;

/// The quorum queue's per-message delivery counter.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// An AMQP short string (names, routing keys, most properties: at most 255 bytes).
pub(super) fn short(what: &str, field: &str, s: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(s).map_err(|_| {
        BusError::Refused(format!(
            "{what}: the {field} is {} bytes long; AMQP allows at most 255",
            s.len()
        ))
    })
}

/// `Props` → AMQP basic properties: persistent, headers as long strings, `user_id` only when
/// set (the broker refuses one that is not the connection's user).
pub(super) fn basic_properties(what: &str, p: &Props) -> Result<BasicProperties, BusError> {
    let mut b = BasicProperties::default().with_delivery_mode(2);
    if let Some(v) = &p.message_id {
        b = b.with_message_id(short(what, "message_id", v)?);
    }
    if let Some(v) = &p.correlation_id {
        b = b.with_correlation_id(short(what, "correlation_id", v)?);
    }
    if let Some(v) = &p.content_type {
        b = b.with_content_type(short(what, "content_type", v)?);
    }
    if let Some(v) = &p.user_id {
        b = b.with_user_id(short(what, "user_id", v)?);
    }
    if !p.headers.is_empty() {
        let mut table = FieldTable::default();
        for (k, v) in &p.headers {
            // The error's wording is built only for a name that is too long.
            let name = match ShortString::try_new(k.as_str()) {
                Ok(name) => name,
                Err(_) => short(what, &format!("header name `{k}`"), k)?,
            };
            table.insert(name, AMQPValue::LongString(LongString::from(v.as_str())));
        }
        b = b.with_headers(table);
    }
    Ok(b)
}

/// AMQP basic properties → `Props` and the quorum queue's delivery count.
pub(super) fn props_from(b: &BasicProperties) -> (Props, u32) {
    let text = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    let mut headers = BTreeMap::new();
    let mut delivery_count = 0;
    if let Some(table) = b.headers() {
        for (k, v) in table.inner() {
            match k.as_str() {
                DELIVERY_COUNT_HEADER => {
                    delivery_count =
                        header_int(v).map_or(0, |n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
                }
                "x-death" => {
                    if let Some(reason) = last_death_reason(v) {
                        headers.insert("x-death-reason".to_string(), reason);
                    }
                }
                _ => {
                    if let Some(t) = header_text(v) {
                        headers.entry(k.as_str().to_string()).or_insert(t);
                    }
                }
            }
        }
    }
    let props = Props {
        message_id: text(b.message_id()),
        correlation_id: text(b.correlation_id()),
        content_type: text(b.content_type()),
        user_id: text(b.user_id()),
        headers,
    };
    (props, delivery_count)
}

/// The reason of the most recent death in an `x-death` array (the broker puts it first).
fn last_death_reason(v: &AMQPValue) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = v else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    latest.inner().get("reason").and_then(header_text)
}

fn header_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i128::from(*n),
        AMQPValue::ShortShortUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::LongLongInt(n) => i128::from(*n),
        AMQPValue::Timestamp(n) => i128::from(*n),
        _ => return None,
    })
}

fn header_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        other => header_int(other).map(|n| n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Props {
        let mut headers = BTreeMap::new();
        headers.insert("x-kaigo-hop".to_string(), "translate".to_string());
        headers.insert("x-kaigo-category".to_string(), "認定".to_string());
        Props {
            message_id: Some("env-1".into()),
            correlation_id: Some("corr-1".into()),
            content_type: Some("application/xml".into()),
            user_id: None,
            headers,
        }
    }

    #[test]
    fn props_survive_the_round_trip_through_amqp_properties() {
        let b = basic_properties("test", &props()).unwrap();
        assert_eq!(*b.delivery_mode(), Some(2));
        assert_eq!(*b.user_id(), None, "user_id must stay unset when None");
        let (back, count) = props_from(&b);
        assert_eq!(back, props());
        assert_eq!(count, 0);
    }

    #[test]
    fn delivery_count_comes_from_the_quorum_header_and_is_not_a_header() {
        let mut table = FieldTable::default();
        table.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        table.insert("x-retries".into(), AMQPValue::LongInt(2));
        let (p, count) = props_from(&BasicProperties::default().with_headers(table));
        assert_eq!(count, 3);
        assert_eq!(p.header(DELIVERY_COUNT_HEADER), None);
        assert_eq!(p.header("x-retries"), Some("2"));
    }

    #[test]
    fn the_latest_death_reason_is_summarised_like_the_memory_bus() {
        let death = |reason: &str| {
            let mut t = FieldTable::default();
            t.insert("reason".into(), AMQPValue::LongString(reason.into()));
            t.insert("count".into(), AMQPValue::LongLongInt(1));
            AMQPValue::FieldTable(t)
        };
        let mut table = FieldTable::default();
        table.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![death("delivery_limit"), death("rejected")].into()),
        );
        table.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("rejected".into()),
        );
        let (p, _) = props_from(&BasicProperties::default().with_headers(table));
        assert_eq!(p.header("x-death-reason"), Some("delivery_limit"));
        assert_eq!(p.header("x-first-death-reason"), Some("rejected"));
        assert_eq!(p.header("x-death"), None);
    }

    #[test]
    fn an_overlong_name_is_refused_with_the_field_not_a_panic() {
        let mut p = props();
        p.message_id = Some("x".repeat(300));
        let e = basic_properties("publishing to exchange `t.ingress`", &p).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("message_id") && text.contains("300") && text.contains("t.ingress"),
            "{text}"
        );
        let mut p = props();
        p.headers
            .insert(format!("x-{}", "n".repeat(260)), "v".into());
        let text = basic_properties("publishing to exchange `t.ingress`", &p)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("header name `x-nnn")
                && text.contains("262")
                && text.contains("t.ingress"),
            "{text}"
        );
    }
}
