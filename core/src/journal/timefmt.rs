//! The logrus `time=` value, parsed by hand: it is read for every CRI-O line, so it stays
//! allocation-free; everything else about time is in [`crate::time`].

use super::GrammarError;
use crate::time::days_from_civil;

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
    fn parses_both_crio_formats() {
        let old = parse_logrus_time("2022-05-05 06:58:46.895169892+02:00").unwrap();
        let new = parse_logrus_time("2022-05-05T04:58:46.895169Z").unwrap();
        assert_eq!(old, new);
        assert_eq!(
            crate::time::format_usec(new as u64),
            "2022-05-05T04:58:46.895169Z"
        );
        let trimmed = parse_logrus_time("2026-03-10T09:14:02.10181Z").unwrap();
        assert_eq!(trimmed % 1_000_000, 101_810);
        let no_frac = parse_logrus_time("2026-11-21T07:05:01Z").unwrap();
        assert_eq!(
            crate::time::format_usec(no_frac as u64),
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
