//! `--since TIME`: a point in time as microseconds since the Unix epoch.
//!
//! Accepted: RFC 3339 (`2026-11-21T07:00:00Z`, `…T07:00:00.5+01:00`, a space for `T`), a UTC date
//! and time without zone (`2026-11-21 07:00[:00]`), a UTC date (`2026-11-21`), and `@SECONDS`.
//! Times without a zone are UTC, not local time: nodes and the people reading records disagree
//! on local time, never on UTC.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--since {input:?}: {reason} (use 2026-11-21T07:00:00Z, 2026-11-21 07:00:00 (UTC), 2026-11-21 or @SECONDS)")]
pub struct SinceError {
    input: String,
    reason: &'static str,
}

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
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let days = parse_date(date).ok_or_else(|| err("bad date"))?;
    let (secs_of_day, micros, offset) = match rest {
        None => (0, 0, 0),
        Some(t) => parse_time(t).ok_or_else(|| err("bad time of day or zone"))?,
    };
    let total = days * 86_400 + secs_of_day - offset;
    let total = u64::try_from(total).map_err(|_| err("before 1970"))?;
    Ok(total * 1_000_000 + micros)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn parse_date(d: &str) -> Option<i64> {
    let mut it = d.split('-');
    let y: i64 = num(it.next()?, 4)?;
    let m: i64 = num(it.next()?, 2)?;
    let day: i64 = num(it.next()?, 2)?;
    if it.next().is_some() || !(1..=12).contains(&m) || day < 1 || day > days_in_month(y, m) {
        return None;
    }
    // Civil-from-days inverse (proleptic Gregorian), shifted so the year starts in March.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `HH:MM[:SS[.frac]][Z|±HH:MM]` as (seconds of day, microseconds, zone offset in seconds).
fn parse_time(t: &str) -> Option<(i64, u64, i64)> {
    let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = t.rfind(['+', '-']) {
        let (c, z) = t.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z.get(1..)?.split_once(':')?;
        (
            c,
            sign * (num::<i64>(h, 2)? * 3600 + num::<i64>(m, 2)? * 60),
        )
    } else {
        (t, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let mut it = hms.split(':');
    let h: i64 = num(it.next()?, 2)?;
    let m: i64 = num(it.next()?, 2)?;
    let s: i64 = match it.next() {
        Some(s) => num(s, 2)?,
        None => 0,
    };
    if it.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<6}");
            padded.get(..6)?.parse().ok()?
        }
        Some(_) => return None,
    };
    Some((h * 3600 + m * 60 + s, micros, offset))
}

fn num<T: std::str::FromStr>(s: &str, width: usize) -> Option<T> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        // 2026-11-21T07:00:00Z = 1795244400
        let base = 1_795_244_400u64 * 1_000_000;
        assert_eq!(parse_since("2026-11-21T07:00:00Z"), Ok(base));
        assert_eq!(parse_since("2026-11-21 07:00:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21 07:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21T08:00:00+01:00"), Ok(base));
        assert_eq!(parse_since("2026-11-21T06:30:00-00:30"), Ok(base));
        assert_eq!(parse_since("2026-11-21T07:00:00.25Z"), Ok(base + 250_000));
        assert_eq!(
            parse_since("2026-11-21T07:00:00.123456789Z"),
            Ok(base + 123_456)
        );
        assert_eq!(parse_since("2026-11-21"), Ok(base - 7 * 3600 * 1_000_000));
        assert_eq!(parse_since("@1795244400"), Ok(base));
        assert_eq!(parse_since("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_since("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000_000)
        );
    }

    #[test]
    fn rejected_forms_name_the_input() {
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-21T25:00:00Z",
            "2026-11-21T07:00:00.Z",
            "1969-12-31T23:59:59Z",
            "@-5",
            "",
        ] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
