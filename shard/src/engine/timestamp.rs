//! Reading timestamps out of condition operands, for the `is_timestamp_*` operators.
//!
//! Accepted forms (all resolved to Unix milliseconds, UTC):
//! - RFC 3339 / ISO 8601 date-times (`2024-05-01T10:00:00Z`, `2024-05-01T10:00:00.123+02:00`);
//! - ISO date-times without an offset (`2024-05-01T10:00:00`, read as UTC) and bare dates
//!   (`2024-05-01`, midnight UTC);
//! - relative expressions against the run's `now_ms`: `now`, `7 days ago`, `in 3 hours`,
//!   `2 weeks from now`; units second, minute, hour, day, week, month (30 days), year (365 days);
//! - JSON numbers: Unix seconds, or milliseconds when larger than 10^11 (a date after 5138 in seconds).
//!
//! Pure: "now" is always the caller's `now_ms`.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

const MS_PER_DAY: i128 = 86_400_000;

/// The instant `value` denotes, in Unix milliseconds, or `None` when it is not a timestamp.
pub(crate) fn timestamp_ms(value: &Value, now_ms: u64) -> Option<i128> {
    match value {
        Value::String(s) => parse_str(s.trim(), now_ms),
        Value::Number(n) => {
            let v = n.as_f64()?;
            if !v.is_finite() {
                return None;
            }
            let v = v as i128;
            Some(if v.abs() > 100_000_000_000 {
                v
            } else {
                v * 1000
            })
        }
        _ => None,
    }
}

/// The UTC calendar day of a Unix-milliseconds instant, as days since the epoch.
pub(crate) fn day_of(ms: i128) -> i128 {
    ms.div_euclid(MS_PER_DAY)
}

fn parse_str(s: &str, now_ms: u64) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos() / 1_000_000);
    }
    let naive_fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let naive_frac_fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    for fmt in [naive_fmt, naive_frac_fmt] {
        if let Ok(t) = PrimitiveDateTime::parse(s, fmt) {
            return Some(t.assume_utc().unix_timestamp_nanos() / 1_000_000);
        }
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000);
    }
    parse_relative(s, i128::from(now_ms))
}

fn parse_relative(s: &str, now: i128) -> Option<i128> {
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["now"] => Some(now),
        [n, unit, "ago"] => Some(now - amount_ms(n, unit)?),
        ["in", n, unit] | [n, unit, "from", "now"] => Some(now + amount_ms(n, unit)?),
        _ => None,
    }
}

fn amount_ms(n: &str, unit: &str) -> Option<i128> {
    let n: i128 = n.parse().ok()?;
    let unit_ms: i128 = match unit.strip_suffix('s').unwrap_or(unit) {
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => MS_PER_DAY,
        "week" => 7 * MS_PER_DAY,
        "month" => 30 * MS_PER_DAY,
        "year" => 365 * MS_PER_DAY,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn absolute_forms() {
        let z = timestamp_ms(&json!("2023-11-14T22:13:20Z"), 0);
        assert_eq!(z, Some(NOW as i128));
        assert_eq!(timestamp_ms(&json!("2023-11-14T23:13:20+01:00"), 0), z);
        assert_eq!(timestamp_ms(&json!("2023-11-14T22:13:20"), 0), z);
        assert_eq!(
            timestamp_ms(&json!("2023-11-14"), 0),
            Some(1_699_920_000_000)
        );
        assert_eq!(timestamp_ms(&json!(1_700_000_000), 0), z);
        assert_eq!(timestamp_ms(&json!(1_700_000_000_000u64), 0), z);
    }

    #[test]
    fn relative_forms() {
        let now = NOW as i128;
        assert_eq!(timestamp_ms(&json!("now"), NOW), Some(now));
        assert_eq!(
            timestamp_ms(&json!("7 days ago"), NOW),
            Some(now - 7 * MS_PER_DAY)
        );
        assert_eq!(
            timestamp_ms(&json!("1 hour ago"), NOW),
            Some(now - 3_600_000)
        );
        assert_eq!(
            timestamp_ms(&json!("in 2 weeks"), NOW),
            Some(now + 14 * MS_PER_DAY)
        );
        assert_eq!(
            timestamp_ms(&json!("3 minutes from now"), NOW),
            Some(now + 180_000)
        );
    }

    #[test]
    fn non_timestamps() {
        for v in [
            json!(""),
            json!("hello"),
            json!("7 parsecs ago"),
            json!(true),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(timestamp_ms(&v, NOW), None, "{v}");
        }
    }

    #[test]
    fn days_floor_before_the_epoch() {
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(MS_PER_DAY), 1);
    }
}
