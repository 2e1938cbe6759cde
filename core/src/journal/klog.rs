//! klog lines as the kubelet writes them, and re-assembly of multi-line values that journald
//! stores as several entries.
//!
//! Header: `Lmmdd hh:mm:ss.uuuuuu PPPPPPP file.go:LINE] `, then a quoted message (structured
//! logging) and `key=value` pairs; values are Go-quoted strings, bare tokens, or the multi-line form
//! `key=<` NL TAB line NL TAB line NL ` >`.

use std::borrow::Cow;

use super::gostr::read_quoted;
use super::GrammarError;

/// One parsed klog line (after re-assembly, a multi-line value holds its newlines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlogLine<'a> {
    /// `I`, `W`, `E` or `F`.
    pub severity: char,
    /// `mmdd hh:mm:ss.uuuuuu`, local time of the node without year or zone.
    pub time: &'a str,
    pub pid: u32,
    /// `file.go:123`; varies across releases, so never match on it.
    pub source: &'a str,
    /// The message: unquoted for structured lines, raw text otherwise.
    pub msg: Cow<'a, str>,
    /// `key=value` pairs in line order (empty for unstructured lines).
    pub pairs: Vec<(&'a str, Cow<'a, str>)>,
}

impl KlogLine<'_> {
    pub fn value(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }
}

/// Byte offset of the message (just after `] `) when `line` starts with a klog header; cheap
/// enough for the hot path (bounded scan, no allocation).
pub fn message_offset(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    if !matches!(b.first(), Some(b'I' | b'W' | b'E' | b'F')) {
        return None;
    }
    if !b.get(1..5)?.iter().all(u8::is_ascii_digit) || b.get(5) != Some(&b' ') {
        return None;
    }
    // `] ` ends the header within a short distance (time, pid, file:line).
    let window = &b[..b.len().min(200)];
    let close = window.windows(2).position(|w| w == b"] ")?;
    Some(close + 2)
}

/// Parses one klog line.
pub fn parse_klog(line: &str) -> Result<KlogLine<'_>, GrammarError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let off = message_offset(line).ok_or_else(|| GrammarError::new("no klog header"))?;
    let header = line.get(1..off - 2).unwrap_or("");
    let severity = line.chars().next().unwrap_or('I');
    let mut parts = header.split_ascii_whitespace();
    let date = parts.next().ok_or_else(|| GrammarError::new("no date"))?;
    let clock = parts.next().ok_or_else(|| GrammarError::new("no time"))?;
    let pid = parts
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| GrammarError::new("bad pid"))?;
    let source = parts.next().ok_or_else(|| GrammarError::new("no source"))?;
    if parts.next().is_some() || clock.len() != 15 || date.len() != 4 {
        return Err(GrammarError::new("bad klog header"));
    }
    let time_start = 1;
    let time_end = time_start + date.len() + 1 + clock.len();
    let time = line
        .get(time_start..time_end)
        .ok_or_else(|| GrammarError::new("bad time"))?;
    let body = &line[off..];
    if !body.starts_with('"') {
        return Ok(KlogLine {
            severity,
            time,
            pid,
            source,
            msg: Cow::Borrowed(body),
            pairs: Vec::new(),
        });
    }
    let (msg, used) = read_quoted(body)?;
    let pairs = parse_pairs(&body[used..])?;
    Ok(KlogLine {
        severity,
        time,
        pid,
        source,
        msg,
        pairs,
    })
}

fn parse_pairs(mut rest: &str) -> Result<Vec<(&str, Cow<'_, str>)>, GrammarError> {
    let mut pairs = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return Ok(pairs);
        }
        let token_end = rest.find([' ', '\n']).unwrap_or(rest.len());
        let Some(eq) = rest[..token_end].find('=') else {
            // A bare word (e.g. the tail of a struct printed with %+v): not a pair, skip it.
            rest = rest[token_end..].trim_start_matches('\n');
            continue;
        };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        if after.starts_with('"') {
            let (v, used) = read_quoted(after)?;
            pairs.push((key, v));
            rest = &after[used..];
        } else if let Some(ml) = after.strip_prefix("<\n") {
            let (v, used) = read_multiline(ml)?;
            pairs.push((key, Cow::Owned(v)));
            rest = &ml[used..];
        } else {
            let end = after.find([' ', '\n']).unwrap_or(after.len());
            pairs.push((key, Cow::Borrowed(&after[..end])));
            rest = &after[end..];
        }
    }
}

/// Reads TAB-prefixed lines up to the ` >` line; returns the value and the bytes used, the ` >`
/// included.
fn read_multiline(s: &str) -> Result<(String, usize), GrammarError> {
    let mut value = String::new();
    let mut pos = 0;
    let mut first = true;
    loop {
        let rest = &s[pos..];
        if rest.starts_with(" >") {
            return Ok((value, pos + 2));
        }
        let line_end = rest.find('\n');
        let line = &rest[..line_end.unwrap_or(rest.len())];
        let Some(content) = line.strip_prefix('\t') else {
            return Err(GrammarError::new("multi-line value line without TAB"));
        };
        if !first {
            value.push('\n');
        }
        first = false;
        value.push_str(content);
        match line_end {
            Some(e) => pos += e + 1,
            None => return Err(GrammarError::new("multi-line value without ' >'")),
        }
    }
}

/// Whether a journal MESSAGE is a continuation of a klog multi-line value.
pub fn is_continuation(message: &str) -> bool {
    message.starts_with('\t') || message.starts_with(" >")
}

/// Whether a klog line (or an assembled prefix of one) ends inside a multi-line value.
pub fn opens_multiline(message: &str) -> bool {
    message.trim_end_matches(['\n', '\r']).ends_with("=<")
}

/// What [`KlogReassembler::feed`] did with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// Not a continuation of anything pending for that process: handle the entry on its own.
    Unrelated,
    /// Appended to a pending line, which still needs more entries.
    Absorbed,
    /// Appended, and the line is now complete.
    Complete(String),
}

/// Re-joins klog lines that journald split into several entries (one per output line).
///
/// Keyed by `_PID`, because a continuation entry carries nothing else tying it to its header;
/// klog writes a whole call in one write, so a process's continuation lines follow its header
/// without other lines of that process in between. Only headers the caller cares about are
/// started, so unrelated multi-line values cost nothing.
#[derive(Debug, Default)]
pub struct KlogReassembler {
    pending: Vec<(Option<u32>, String)>,
}

/// A line larger than this is given up on: journald splits at 48 KiB per line anyway, and an
/// unbounded buffer would let a broken stream grow memory.
const MAX_ASSEMBLED: usize = 1 << 20;

impl KlogReassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts assembling `header` (a klog line ending in `=<`) for process `pid`. Returns the
    /// line that was pending for that process, if any, which will never be completed.
    pub fn start(&mut self, pid: Option<u32>, header: &str) -> Option<String> {
        let old = self.take(pid);
        self.pending.push((pid, header.to_owned()));
        old
    }

    /// Offers an entry of process `pid`.
    pub fn feed(&mut self, pid: Option<u32>, message: &str) -> Fed {
        if !is_continuation(message) {
            return Fed::Unrelated;
        }
        let Some(i) = self.pending.iter().position(|(p, _)| *p == pid) else {
            return Fed::Unrelated;
        };
        let Some((_, text)) = self.pending.get_mut(i) else {
            return Fed::Unrelated;
        };
        text.push('\n');
        text.push_str(message.trim_end_matches(['\n', '\r']));
        let done = message.starts_with(" >") && !opens_multiline(message);
        if done || text.len() > MAX_ASSEMBLED {
            let (_, text) = self.pending.swap_remove(i);
            return Fed::Complete(text);
        }
        Fed::Absorbed
    }

    /// Whether a line is being assembled for `pid`.
    pub fn is_pending(&self, pid: Option<u32>) -> bool {
        self.pending.iter().any(|(p, _)| *p == pid)
    }

    /// Removes and returns the incomplete line of `pid`.
    pub fn take(&mut self, pid: Option<u32>) -> Option<String> {
        let i = self.pending.iter().position(|(p, _)| *p == pid)?;
        Some(self.pending.swap_remove(i).1)
    }

    /// Removes and returns every incomplete line (end of input).
    pub fn drain(&mut self) -> Vec<String> {
        self.pending.drain(..).map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_line() {
        let l = parse_klog(
            r#"E1121 07:05:01.123456   12345 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = x \"y\"" image="quay.io/a/b:1" podUID=59b2-aa"#,
        )
        .unwrap();
        assert_eq!(l.severity, 'E');
        assert_eq!(l.time, "1121 07:05:01.123456");
        assert_eq!(l.pid, 12345);
        assert_eq!(l.source, "log.go:32");
        assert_eq!(l.msg, "PullImage from image service failed");
        assert_eq!(
            l.value("err"),
            Some("rpc error: code = Unknown desc = x \"y\"")
        );
        assert_eq!(l.value("image"), Some("quay.io/a/b:1"));
        assert_eq!(l.value("podUID"), Some("59b2-aa"));
    }

    #[test]
    fn unstructured_line() {
        let l = parse_klog("I0102 03:04:05.000006       7 server.go:1] Starting kubelet").unwrap();
        assert_eq!(l.msg, "Starting kubelet");
        assert!(l.pairs.is_empty());
    }

    #[test]
    fn multiline_reassembled() {
        let mut r = KlogReassembler::new();
        let head = r#"E1121 07:05:01.123456    4242 log.go:32] "PullImage from image service failed" err=<"#;
        assert!(opens_multiline(head));
        assert_eq!(r.start(Some(4242), head), None);
        assert_eq!(r.feed(Some(4242), "\trpc error: first"), Fed::Absorbed);
        assert_eq!(r.feed(Some(99), "\tother process"), Fed::Unrelated);
        assert_eq!(r.feed(Some(4242), "\t[x: y]): z"), Fed::Absorbed);
        let Fed::Complete(text) = r.feed(Some(4242), r#" > image="a/b:1""#) else {
            panic!("not complete")
        };
        let l = parse_klog(&text).unwrap();
        assert_eq!(l.value("err"), Some("rpc error: first\n[x: y]): z"));
        assert_eq!(l.value("image"), Some("a/b:1"));
        assert!(!r.is_pending(Some(4242)));
    }

    #[test]
    fn two_multiline_values_in_a_row() {
        let mut r = KlogReassembler::new();
        r.start(None, r#"E0101 00:00:00.000000 1 f.go:1] "m" a=<"#);
        assert_eq!(r.feed(None, "\tl1"), Fed::Absorbed);
        assert_eq!(r.feed(None, " > b=<"), Fed::Absorbed);
        assert_eq!(r.feed(None, "\tl2"), Fed::Absorbed);
        let Fed::Complete(text) = r.feed(None, " > c=3") else {
            panic!()
        };
        let l = parse_klog(&text).unwrap();
        assert_eq!(l.value("a"), Some("l1"));
        assert_eq!(l.value("b"), Some("l2"));
        assert_eq!(l.value("c"), Some("3"));
    }

    #[test]
    fn malformed() {
        for l in [
            "",
            "X1121 07:05:01.123456 1 f.go:1] \"m\"",
            "I11 07:05:01.123456 1 f.go:1] \"m\"",
            "I1121 07:05:01.123456 abc f.go:1] \"m\"",
            "I1121 07:05:01.123456 1 f.go:1] \"unterminated",
            "I1121 07:05:01.123456 1 f.go:1] \"m\" err=<\n no tab",
            "I1121 07:05:01.123456 1 f.go:1] \"m\" err=<\n\tno end",
            "I1121 07:05 1 f.go:1] \"m\"",
        ] {
            assert!(parse_klog(l).is_err(), "{l:?}");
        }
    }
}
