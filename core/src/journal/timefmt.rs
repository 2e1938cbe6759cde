//! Timestamps: RFC 3339 formatting of journal times and parsing of the logrus `time=` value.
//!
//! Written by hand because the crate stays free of date libraries; only the proleptic Gregorian
//! calendar in UTC is needed.

use super::GrammarError;

/// Formats microseconds since the Unix epoch as RFC 3339 UTC with microsecond precision,
/// e.g. `2026-11-21T07:05:01.123456Z`. The fixed width makes the strings sort like the times.
pub fn format_rfc3339_usec(usec: u64) -> String {
    let secs = usec / 1_000_000;
    let micros = usec % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a logrus `time=` value into microseconds since the epoch (UTC).
///
/// Accepts both CRI-O formats: `2006-01-02 15:04:05.000000000Z07:00` (up to 1.31, space
/// separator, nine fraction digits) and RFC3339Nano (from 1.32, `T`, trimmed fraction, possibly
/// none). The zone is `Z` or `±hh:mm`.
pub fn parse_logrus_time(s: &str) -> Result<i64, GrammarError> {
    let b = s.as_bytes();
    let err = || GrammarError::new("bad time value");
    if b.len() < 20 {
        return Err(err());
    }
    let num = |from: usize, to: usize| -> Result<i64, GrammarError> {
        let part = s.get(from..to).ok_or_else(err)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        part.parse::<i64>().map_err(|_| err())
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(13) != Some(&b':') {
        return Err(err());
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(16) != Some(&b':') {
        return Err(err());
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(err());
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(err());
        }
        let mut frac = num(start, i)?;
        for _ in (i - start)..9 {
            frac *= 10;
        }
        micros = frac / 1000;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let v = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Ok(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(format_rfc3339_usec(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:59.999999Z
        assert_eq!(
            format_rfc3339_usec(1_709_251_199_999_999),
            "2024-02-29T23:59:59.999999Z"
        );
    }

    #[test]
    fn round_trips_days() {
        for d in [-800_000i64, -1, 0, 1, 59, 365, 11_016, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn parses_both_crio_formats() {
        let old = parse_logrus_time("2022-05-05 06:58:46.895169892+02:00").unwrap();
        let new = parse_logrus_time("2022-05-05T04:58:46.895169Z").unwrap();
        assert_eq!(old, new);
        assert_eq!(
            format_rfc3339_usec(new as u64),
            "2022-05-05T04:58:46.895169Z"
        );
        let trimmed = parse_logrus_time("2026-03-10T09:14:02.10181Z").unwrap();
        assert_eq!(trimmed % 1_000_000, 101_810);
        let no_frac = parse_logrus_time("2026-11-21T07:05:01Z").unwrap();
        assert_eq!(
            format_rfc3339_usec(no_frac as u64),
            "2026-11-21T07:05:01.000000Z"
        );
        let west = parse_logrus_time("2026-11-21T02:05:01-05:00").unwrap();
        assert_eq!(west, no_frac);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2022-05-05",
            "2022-05-05 06:58:46.",
            "2022-13-05T06:58:46Z",
            "2022-05-05T06:58:46",
            "2022-05-05T06:58:46+0200",
            "2022-05-05T06:58:46.1234567890Z",
            "2022-05-05T06:5é:46Z",
        ] {
            assert!(parse_logrus_time(s).is_err(), "{s}");
        }
    }
}
