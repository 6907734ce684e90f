//! When a `delay` step ends (Knock §5.2, dynamic windows).
//!
//! ```text
//!   delay_for only                     now + delay_for
//!   delay_until_field_path only        the value at the path:
//!                                        ISO timestamp (or relative text, Unix s/ms)  -> that instant
//!                                        {unit, value} duration                       -> now + duration
//!   both                               the resolved instant + delay_for (an offset; may be negative)
//! ```
//!
//! A value that is missing or not one of those (Knock's window rules `{frequency, ...}` included,
//! which this Herald version does not evaluate) is an error: the planner skips the step and records
//! why, as Knock does. Months are calendar months in UTC, the day clamped to the month's end
//! (Jan 31 + 1 month = Feb 28/29). Pure: "now" is the caller's `now_ms`.

use serde_json::Value;
use time::{Date, Month, OffsetDateTime};

use super::conditions::lookup;
use super::definition::{DelayStep, TimeSpan, TimeUnit};
use super::timestamp::timestamp_ms;

/// Roots a `delay_until_field_path` may start with; any other path is read from `data`.
const PATH_ROOTS: [&str; 5] = ["data", "recipient", "actor", "tenant", "vars"];

/// The values a field path can read during one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DelayRoots<'a> {
    pub data: &'a Value,
    pub recipient: &'a Value,
    pub actor: Option<&'a Value>,
    pub tenant: Option<&'a Value>,
    pub vars: &'a Value,
}

/// Why a field path cannot be used, for validation.
pub(crate) fn check_field_path(path: &str) -> Result<(), String> {
    let (_, rest) = split_field_path(path);
    let segments_ok = !rest.is_empty()
        && rest
            .replace('[', ".")
            .replace(']', "")
            .split('.')
            .all(|s| !s.is_empty() && !s.chars().any(char::is_whitespace));
    if segments_ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is not a field path like data.send_at or recipient.trial_ends_at"
        ))
    }
}

/// `("recipient", "trial_ends_at")` for `recipient.trial_ends_at`; `("data", "x")` for `x`.
fn split_field_path(path: &str) -> (&'static str, &str) {
    let path = path.trim();
    for root in PATH_ROOTS {
        if path == root {
            return (root, "");
        }
        if let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('.')) {
            return (root, rest);
        }
    }
    ("data", path)
}

/// The instant (Unix ms, possibly not in the future) `step` waits until, or why it cannot be told.
pub(crate) fn delay_until(
    step: &DelayStep,
    roots: &DelayRoots,
    now_ms: u64,
) -> Result<i128, String> {
    let now = i128::from(now_ms);
    let base = match &step.delay_until_field_path {
        Some(path) => resolve_field(path, roots, now_ms)?,
        None => now,
    };
    match &step.delay_for {
        Some(span) => add_span(base, span),
        None if step.delay_until_field_path.is_some() => Ok(base),
        None => Err("the delay has neither delay_for nor delay_until_field_path".into()),
    }
}

fn resolve_field(path: &str, roots: &DelayRoots, now_ms: u64) -> Result<i128, String> {
    let (root, rest) = split_field_path(path);
    let root_value = match root {
        "recipient" => Some(roots.recipient),
        "actor" => roots.actor,
        "tenant" => roots.tenant,
        "vars" => Some(roots.vars),
        _ => Some(roots.data),
    };
    let value = root_value
        .and_then(|r| lookup(r, rest))
        .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
        .ok_or_else(|| format!("`{path}` is missing"))?;
    if let Value::Object(obj) = value {
        if obj.contains_key("frequency") {
            return Err(format!(
                "`{path}` is a window rule, which this Herald version does not support"
            ));
        }
        let span = TimeSpan::from_json(value)
            .map_err(|e| format!("`{path}` is not a valid duration: {e}"))?;
        return add_span(i128::from(now_ms), &span);
    }
    timestamp_ms(value, now_ms)
        .ok_or_else(|| format!("`{path}` is not an ISO timestamp or a duration: {value}"))
}

/// `ms + span`, or an error when the result leaves the supported calendar (years ±9999).
fn add_span(ms: i128, span: &TimeSpan) -> Result<i128, String> {
    let value = i128::from(span.value);
    let unit_ms: i128 = match span.unit {
        TimeUnit::Seconds => 1_000,
        TimeUnit::Minutes => 60_000,
        TimeUnit::Hours => 3_600_000,
        TimeUnit::Days => 86_400_000,
        TimeUnit::Weeks => 7 * 86_400_000,
        TimeUnit::Months => return add_months(ms, span.value),
    };
    let out = value
        .checked_mul(unit_ms)
        .and_then(|d| ms.checked_add(d))
        .ok_or_else(out_of_range)?;
    // Same bounds as the calendar arithmetic, so every accepted instant is a real date.
    OffsetDateTime::from_unix_timestamp_nanos(out.checked_mul(1_000_000).ok_or_else(out_of_range)?)
        .map_err(|_| out_of_range())?;
    Ok(out)
}

fn add_months(ms: i128, months: i64) -> Result<i128, String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(
        ms.checked_mul(1_000_000).ok_or_else(out_of_range)?,
    )
    .map_err(|_| out_of_range())?;
    let index = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1;
    let index = index.checked_add(months).ok_or_else(out_of_range)?;
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| out_of_range())?;
    let month = u8::try_from(index.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(out_of_range)?;
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day).map_err(|_| out_of_range())?;
    let moved = date.with_time(t.time()).assume_utc();
    Ok(moved.unix_timestamp_nanos() / 1_000_000)
}

fn out_of_range() -> String {
    "the delay ends outside the supported calendar".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn step(delay_for: Option<(TimeUnit, i64)>, path: Option<&str>) -> DelayStep {
        DelayStep {
            delay_for: delay_for.map(|(unit, value)| TimeSpan { unit, value }),
            delay_until_field_path: path.map(str::to_string),
        }
    }

    fn until(s: &DelayStep, data: Value) -> Result<i128, String> {
        let recipient = json!({"id": "u1", "trial_ends_at": "2023-12-01T00:00:00Z"});
        let roots = DelayRoots {
            data: &data,
            recipient: &recipient,
            actor: None,
            tenant: None,
            vars: &json!({}),
        };
        delay_until(s, &roots, NOW)
    }

    #[test]
    fn fixed_delays() {
        let now = i128::from(NOW);
        for (unit, ms) in [
            (TimeUnit::Seconds, 1_000),
            (TimeUnit::Minutes, 60_000),
            (TimeUnit::Hours, 3_600_000),
            (TimeUnit::Days, 86_400_000),
            (TimeUnit::Weeks, 604_800_000),
        ] {
            assert_eq!(
                until(&step(Some((unit, 3)), None), json!({})),
                Ok(now + 3 * ms)
            );
        }
        // 2023-11-14T22:13:20Z + 3 months = 2024-02-14T22:13:20Z.
        assert_eq!(
            until(&step(Some((TimeUnit::Months, 3)), None), json!({})),
            Ok(1_707_948_800_000)
        );
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        // 2024-01-31T00:00:00Z + 1 month = 2024-02-29 (leap year); - 2 months = 2023-11-30.
        let jan31 = 1_706_659_200_000;
        let m = |n| add_months(jan31, n);
        assert_eq!(m(1), Ok(1_709_164_800_000));
        assert_eq!(m(-2), Ok(1_701_302_400_000));
        assert!(add_months(jan31, i64::MAX).is_err());
        assert!(add_span(
            jan31,
            &TimeSpan {
                unit: TimeUnit::Weeks,
                value: i64::MAX
            }
        )
        .is_err());
    }

    #[test]
    fn field_paths_read_timestamps_and_durations() {
        let ts = step(None, Some("data.send_at"));
        assert_eq!(
            until(&ts, json!({"send_at": "2023-11-15T00:00:00Z"})),
            Ok(1_700_006_400_000)
        );
        // Unprefixed paths read data; the offset applies to the resolved time.
        let offset = step(Some((TimeUnit::Hours, -1)), Some("send_at"));
        assert_eq!(
            until(&offset, json!({"send_at": "2023-11-15T00:00:00Z"})),
            Ok(1_700_006_400_000 - 3_600_000)
        );
        let trial = step(None, Some("recipient.trial_ends_at"));
        assert_eq!(until(&trial, json!({})), Ok(1_701_388_800_000));
        let duration = step(Some((TimeUnit::Minutes, 5)), Some("data.wait"));
        assert_eq!(
            until(&duration, json!({"wait": {"unit": "hours", "value": 2}})),
            Ok(i128::from(NOW) + 7_200_000 + 300_000)
        );
    }

    #[test]
    fn invalid_values_are_errors() {
        let s = step(None, Some("data.when"));
        for data in [
            json!({}),
            json!({"when": null}),
            json!({"when": ""}),
            json!({"when": "soonish"}),
            json!({"when": true}),
            json!({"when": {"unit": "fortnights", "value": 1}}),
            json!({"when": {"frequency": "daily", "hours": 9}}),
        ] {
            let r = until(&s, data.clone());
            assert!(r.is_err(), "{data}: {r:?}");
        }
        let past_the_calendar = step(Some((TimeUnit::Days, 2)), Some("data.when"));
        assert!(until(&past_the_calendar, json!({"when": "9999-12-31T23:59:59Z"})).is_err());
        assert!(until(&s, json!({"when": {"frequency": "daily"}}))
            .is_err_and(|e| e.contains("window rule")));
        assert!(until(&step(None, None), json!({})).is_err());
    }

    #[test]
    fn field_path_checks() {
        for ok in ["data.send_at", "send_at", "recipient.a.b[0]", "tenant.x"] {
            assert_eq!(check_field_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "data", "data.", "a..b", "data.send at"] {
            assert!(check_field_path(bad).is_err(), "{bad}");
        }
    }
}
