//! Time, in one place: instants are microseconds since the Unix epoch (UTC) in journal and wire
//! types, RFC 3339 UTC in text; durations are `std::time::Duration`. Parsing and formatting go
//! through `jiff`; only the journal's hot path (`journal::timefmt`) keeps a hand-written parser,
//! and it shares [`days_from_civil`] with nothing else.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Microseconds since the Unix epoch as RFC 3339 UTC with six fraction digits, e.g.
/// `2026-11-21T07:05:01.123456Z`. The fixed width makes the strings sort like the times.
pub fn format_usec(usec: u64) -> String {
    let secs = i64::try_from(usec / 1_000_000).unwrap_or(i64::MAX);
    let nanos = i32::try_from((usec % 1_000_000) * 1000).unwrap_or(0);
    match Timestamp::new(secs, nanos) {
        Ok(t) => format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")),
        // Past jiff's range (year 9999): clamp rather than print garbage.
        Err(_) => "9999-12-31T23:59:59.999999Z".to_string(),
    }
}

/// Seconds since the epoch as RFC 3339 UTC with millisecond precision (the collector's views).
pub fn format_secs(secs: f64) -> String {
    let ms = (secs * 1000.0).round();
    let ms = if ms.is_finite() { ms as i64 } else { 0 };
    match Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{}", t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
        Err(_) => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

/// An RFC 3339 time (`Z` or a numeric offset, optional fraction) as seconds since the epoch.
pub fn parse_rfc3339_secs(s: &str) -> Option<f64> {
    // jiff also accepts forms RFC 3339 does not (a space, no seconds): the API server's
    // timestamps are strict, and anything else is not a time we were given.
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b.get(10), Some(b'T' | b't')) || b.get(16) != Some(&b':') {
        return None;
    }
    let t: Timestamp = s.parse().ok()?;
    Some(t.as_second() as f64 + f64::from(t.subsec_nanosecond()) / 1e9)
}

/// Why a `--since` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--since {input:?}: {reason} (use 2026-11-21T07:00:00Z, 2026-11-21 07:00:00 (UTC), 2026-11-21 or @SECONDS)")]
pub struct SinceError {
    input: String,
    reason: &'static str,
}

/// `--since TIME` as microseconds since the epoch: RFC 3339 (`T` or a space), a UTC date and
/// time without zone (`2026-11-21 07:00[:00]`), a UTC date, or `@SECONDS`. Times without a zone
/// are UTC, not local time: nodes and the people reading records disagree on local time, never
/// on UTC.
pub fn parse_since(input: &str) -> Result<u64, SinceError> {
    let err = |reason| SinceError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if let Some(secs) = s.strip_prefix('@') {
        let secs: u64 = secs.parse().map_err(|_| err("not a number of seconds"))?;
        return secs
            .checked_mul(1_000_000)
            .ok_or_else(|| err("out of range"));
    }
    let has_zone = s.len() > 10 && (s.ends_with(['Z', 'z']) || s[10..].contains(['+', '-']));
    let t: Timestamp = if has_zone {
        s.parse().map_err(|_| err("bad time of day or zone"))?
    } else {
        let dt: DateTime = match s.len() {
            10 => s
                .parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight())),
            _ => s.parse(),
        }
        .map_err(|_| {
            err(if s.len() <= 10 {
                "bad date"
            } else {
                "bad time of day or zone"
            })
        })?;
        dt.to_zoned(TimeZone::UTC)
            .map_err(|_| err("out of range"))?
            .timestamp()
    };
    u64::try_from(t.as_microsecond()).map_err(|_| err("before 1970"))
}

/// Why a duration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {input:?}: {reason} (e.g. 90s, 5m, 1h30m, 250ms; a plain number is seconds)"
)]
pub struct DurationError {
    input: String,
    reason: String,
}

/// The longest duration accepted anywhere (a hundred years): larger values are typos, and
/// bounding them keeps every `Instant + d` in range.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration as people type it: `90s`, `5m`, `1h30m`, `250ms`, `2 minutes`, or plain seconds
/// (`30`, `0.5`). Negative and absurdly large values are refused, never panicked on.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason: String| DurationError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty".into()));
    }
    let d = if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s.parse().map_err(|_| err("not a number".into()))?;
        if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
            return Err(err("too large".into()));
        }
        Duration::from_secs_f64(secs)
    } else {
        let sd: SignedDuration = s.parse().map_err(|e: jiff::Error| err(e.to_string()))?;
        if sd.is_negative() {
            return Err(err("negative".into()));
        }
        Duration::try_from(sd).map_err(|e| err(e.to_string()))?
    };
    if d > MAX_DURATION {
        return Err(err("too large".into()));
    }
    Ok(d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), for the
/// journal's allocation-free time parser.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_usec(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_usec(1_795_244_400_123_456),
            "2026-11-21T07:00:00.123456Z"
        );
        assert_eq!(format_usec(u64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(format_secs(1.25), "1970-01-01T00:00:01.250Z");
        assert_eq!(format_secs(f64::NAN), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_secs("1970-01-01T00:00:01Z"), Some(1.0));
        assert_eq!(
            parse_rfc3339_secs("2026-11-21T08:00:00+01:00"),
            parse_rfc3339_secs("2026-11-21T07:00:00Z")
        );
        assert_eq!(
            format_secs(parse_rfc3339_secs("2026-02-28T23:59:59.250Z").unwrap_or(0.0)),
            "2026-02-28T23:59:59.250Z"
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21 07:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-21T00:00:00",
            "2026-11-21T00:00:00.Z",
            "２０２６-11-21T00:00:00Z",
            "x",
        ] {
            assert_eq!(parse_rfc3339_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn since_forms() {
        let base = 1_795_244_400u64 * 1_000_000;
        assert_eq!(parse_since("2026-11-21T07:00:00Z"), Ok(base));
        assert_eq!(parse_since("2026-11-21 07:00:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21 07:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21T08:00:00+01:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21T06:30:00-00:30"), Ok(base));
        assert_eq!(parse_since("2026-11-21T07:00:00.25Z"), Ok(base + 250_000));
        assert_eq!(parse_since("2026-11-21"), Ok(base - 7 * 3600 * 1_000_000));
        assert_eq!(parse_since("@1795244400"), Ok(base));
        assert_eq!(
            parse_since("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000_000)
        );
        for bad in [
            "2026-02-30",
            "2026-11-21T25:00:00Z",
            "yesterday",
            "1969-12-31T23:59:59Z",
            "@x",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        for bad in [
            "",
            "-5s",
            "5 parsecs",
            "99999999999999999999999h",
            "1e400",
            "nan",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }
}
