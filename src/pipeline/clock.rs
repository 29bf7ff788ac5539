//! Time and identifiers for the pipeline: RFC 3339 UTC timestamps for audit events, today's date
//! in Japan (日本時間, UTC+9, no DST) for consent decisions, and unique envelope ids: the clock's
//! side of time, its dates from `crate::calendar`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The date and time of day (hours, minutes, seconds) of `s` seconds since 1970.
fn parts(s: i64) -> ((i64, u32, u32), (i64, i64, i64)) {
    let t = s.rem_euclid(86_400);
    (
        crate::calendar::date_of_day(s.div_euclid(86_400)),
        (t / 3600, (t / 60) % 60, t % 60),
    )
}

/// 日本時間 is UTC+9 all year (no DST).
const JST: i64 = 9 * 3600;

fn now_secs() -> (i64, u32) {
    secs(SystemTime::now())
}

fn secs(t: SystemTime) -> (i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() as i64, d.subsec_millis())
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// The moment `ago` before now, as [`now_rfc3339`] writes it: two such texts compare in time
/// order as strings.
pub fn rfc3339_before(ago: std::time::Duration) -> String {
    rfc3339(SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH))
}

/// Is `text` written as [`now_rfc3339`] writes (so that it compares with its results)?
pub fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let (s, ms) = secs(t);
    let ((y, m, d), (hh, mm, ss)) = parts(s);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// Now in Japan (日本時間): the date (year, month, day) and the time of day (hours, minutes,
/// seconds), for the formats that write local time (an HL7 ACK's MSH-7).
pub fn now_jst() -> ((i64, u32, u32), (i64, i64, i64)) {
    parts(now_secs().0 + JST)
}

/// Today's date in Japan, `YYYY-MM-DD`.
pub fn today_jst() -> String {
    let ((y, m, d), _) = now_jst();
    format!("{y:04}-{m:02}-{d:02}")
}

/// A new envelope id: time-ordered and unique across processes (`k` + 26 hex digits).
pub fn envelope_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    use std::hash::{BuildHasher, Hasher};
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (s, ms) = now_secs();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u32(std::process::id());
    format!(
        "k{:011x}{:015x}",
        (s as u64) * 1000 + u64::from(ms),
        h.finish() >> 4
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_before_now_is_written_as_now_is_and_compares_as_text() {
        let now = now_rfc3339();
        let day = std::time::Duration::from_secs(86_400);
        let earlier = rfc3339_before(40 * day);
        assert!(is_rfc3339(&now) && is_rfc3339(&earlier), "{now} {earlier}");
        assert!(earlier < now);
        assert!(rfc3339_before(41 * day) < earlier);
        let at = |ms| rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(ms));
        assert_eq!(at(5), "1970-01-01T00:00:00.005Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for not in ["2026-12-06T00:00:00Z", "2026-12-06 00:00:00.000Z", "", "x"] {
            assert!(!is_rfc3339(not), "{not}");
        }
    }

    #[test]
    fn formats_have_the_expected_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(today_jst().len(), 10);
        let ((y, m, d), (hh, mm, ss)) = now_jst();
        assert!(y >= 2026 && (1..=12).contains(&m) && (1..=31).contains(&d));
        assert!((0..24).contains(&hh) && (0..60).contains(&mm) && (0..60).contains(&ss));
        let (a, b) = (envelope_id(), envelope_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 27);
    }
}
