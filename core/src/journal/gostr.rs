//! Go string literal unquoting (`strconv.Quote` / `%q` output), as written by logrus and klog.

use std::borrow::Cow;

use super::GrammarError;

/// Reads a Go double-quoted literal at the start of `s` (which must begin with `"`).
///
/// Returns the unescaped value and the number of bytes consumed (both quotes included). Borrows
/// when the literal has no escapes, which is the common case for the lines we read.
pub fn read_quoted(s: &str) -> Result<(Cow<'_, str>, usize), GrammarError> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return Err(GrammarError::new("expected '\"'"));
    }
    // Fast path: scan for the closing quote; only build a String if a backslash shows up.
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok((Cow::Borrowed(&s[1..i]), i + 1)),
            b'\\' => break,
            _ => i += 1,
        }
    }
    if i >= bytes.len() {
        return Err(GrammarError::new("unterminated quoted value"));
    }
    // Sized for the text seen so far, not the rest of the line: a line can hold many values.
    let mut out = String::with_capacity(i + 32);
    out.push_str(&s[1..i]);
    let mut rest = &s[i..];
    loop {
        let Some(c) = rest.chars().next() else {
            return Err(GrammarError::new("unterminated quoted value"));
        };
        match c {
            '"' => {
                let consumed = s.len() - rest.len() + 1;
                return Ok((Cow::Owned(out), consumed));
            }
            '\\' => {
                let (decoded, used) = unescape_one(&rest[1..])?;
                push_decoded(&mut out, decoded);
                rest = &rest[1 + used..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
}

/// Unquotes a whole Go literal; the input must be exactly one quoted string.
pub fn unquote(s: &str) -> Result<Cow<'_, str>, GrammarError> {
    let (v, used) = read_quoted(s)?;
    if used != s.len() {
        return Err(GrammarError::new("trailing text after quoted value"));
    }
    Ok(v)
}

enum Decoded {
    Char(char),
    /// `\xNN` and octal escapes denote raw bytes; invalid UTF-8 is replaced, like our lossy
    /// MESSAGE decoding.
    Byte(u8),
}

fn push_decoded(out: &mut String, d: Decoded) {
    match d {
        Decoded::Char(c) => out.push(c),
        Decoded::Byte(b) if b.is_ascii() => out.push(char::from(b)),
        Decoded::Byte(_) => out.push(char::REPLACEMENT_CHARACTER),
    }
}

fn unescape_one(s: &str) -> Result<(Decoded, usize), GrammarError> {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return Err(GrammarError::new("dangling backslash"));
    };
    let simple = |c: char| Ok((Decoded::Char(c), 1));
    match first {
        b'a' => simple('\u{7}'),
        b'b' => simple('\u{8}'),
        b'f' => simple('\u{c}'),
        b'n' => simple('\n'),
        b'r' => simple('\r'),
        b't' => simple('\t'),
        b'v' => simple('\u{b}'),
        b'\\' => simple('\\'),
        b'"' => simple('"'),
        b'\'' => simple('\''),
        b'x' => {
            let v = hex(s.get(1..3))?;
            Ok((Decoded::Byte(v as u8), 3))
        }
        b'u' => {
            let v = hex(s.get(1..5))?;
            Ok((
                Decoded::Char(char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)),
                5,
            ))
        }
        b'U' => {
            let v = hex(s.get(1..9))?;
            Ok((
                Decoded::Char(char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)),
                9,
            ))
        }
        b'0'..=b'7' => {
            let digits = s
                .get(0..3)
                .ok_or_else(|| GrammarError::new("short octal escape"))?;
            let v = u32::from_str_radix(digits, 8)
                .map_err(|_| GrammarError::new("bad octal escape"))?;
            let byte = u8::try_from(v).map_err(|_| GrammarError::new("octal escape > 255"))?;
            Ok((Decoded::Byte(byte), 3))
        }
        _ => Err(GrammarError::new("unknown escape")),
    }
}

fn hex(digits: Option<&str>) -> Result<u32, GrammarError> {
    let d = digits.ok_or_else(|| GrammarError::new("short hex escape"))?;
    u32::from_str_radix(d, 16).map_err(|_| GrammarError::new("bad hex escape"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_without_escapes() {
        let (v, n) = read_quoted("\"Pulling image: a/b:1\" id=x").unwrap();
        assert!(matches!(v, Cow::Borrowed(_)));
        assert_eq!(v, "Pulling image: a/b:1");
        assert_eq!(n, 22);
    }

    #[test]
    fn go_escapes() {
        let v = unquote(r#""a\"b\\c\nd\te\x41\u00e9\U0001F600\101""#).unwrap();
        assert_eq!(v, "a\"b\\c\nd\teA\u{e9}\u{1F600}A");
    }

    #[test]
    fn errors() {
        assert!(unquote("\"abc").is_err());
        assert!(unquote("\"a\\").is_err());
        assert!(unquote("\"a\\q\"").is_err());
        assert!(unquote("\"a\\x4\"").is_err());
        assert!(unquote("abc").is_err());
        assert!(unquote("\"a\" b").is_err());
        assert!(unquote("\"\\é\"").is_err());
    }
}
