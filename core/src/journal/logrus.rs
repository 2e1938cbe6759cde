//! logrus lines as CRI-O writes them: `TextFormatter` (`time="…" level=info msg="…" id=… name=…`)
//! and, with `--log-format json`, `JSONFormatter` (`{"id":"…","level":"info","msg":"…","time":"…"}`).

use std::borrow::Cow;

use super::gostr::read_quoted;
use super::GrammarError;

/// One parsed logrus line. Values are unescaped; they borrow from the input when possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogrusLine<'a> {
    /// The raw `time=` value (see [`super::timefmt::parse_logrus_time`]).
    pub time: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub msg: Cow<'a, str>,
    /// Every other key, in line order (`file`, `id`, `name`, …).
    pub fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl LogrusLine<'_> {
    /// The value of a data key such as `id` or `name`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}

/// The raw (still escaped) text of the message value, from its first character to the end of the
/// line, or `None` when the line has no `msg`. Costs one substring search and never allocates: the
/// hot path uses it to reject lines before parsing them.
pub fn raw_msg(line: &str) -> Option<&str> {
    if line.starts_with('{') {
        let at = line.find("\"msg\":\"")?;
        return line.get(at + 7..);
    }
    let at = line.find("msg=")?;
    let rest = line.get(at + 4..)?;
    Some(rest.strip_prefix('"').unwrap_or(rest))
}

/// Parses a logrus text or JSON line.
pub fn parse_logrus(line: &str) -> Result<LogrusLine<'_>, GrammarError> {
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.starts_with('{') {
        return parse_json(trimmed);
    }
    parse_text(trimmed)
}

fn parse_text(line: &str) -> Result<LogrusLine<'_>, GrammarError> {
    let mut time = None;
    let mut level = None;
    let mut msg = None;
    let mut fields = Vec::new();
    let mut rest = line.trim_start_matches(' ');
    while !rest.is_empty() {
        let eq = rest
            .find(['=', ' '])
            .filter(|&i| rest.as_bytes().get(i) == Some(&b'='))
            .ok_or_else(|| GrammarError::new("expected key=value"))?;
        let key = &rest[..eq];
        if key.is_empty() {
            return Err(GrammarError::new("empty key"));
        }
        let after = &rest[eq + 1..];
        let (value, used) = if after.starts_with('"') {
            read_quoted(after)?
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (Cow::Borrowed(&after[..end]), end)
        };
        match key {
            "time" => time = Some(value),
            "level" => level = Some(value),
            "msg" => msg = Some(value),
            _ => fields.push((Cow::Borrowed(key), value)),
        }
        let tail = &after[used..];
        if !tail.is_empty() && !tail.starts_with(' ') {
            return Err(GrammarError::new("expected space after value"));
        }
        rest = tail.trim_start_matches(' ');
    }
    Ok(LogrusLine {
        time,
        level,
        msg: msg.ok_or_else(|| GrammarError::new("no msg key"))?,
        fields,
    })
}

fn parse_json(line: &str) -> Result<LogrusLine<'_>, GrammarError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|_| GrammarError::new("bad JSON log line"))?;
    let mut time = None;
    let mut level = None;
    let mut msg = None;
    let mut fields = Vec::new();
    for (k, v) in map {
        let v = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        match k.as_str() {
            "time" => time = Some(Cow::Owned(v)),
            "level" => level = Some(Cow::Owned(v)),
            "msg" => msg = Some(Cow::Owned(v)),
            _ => fields.push((Cow::Owned(k), Cow::Owned(v))),
        }
    }
    Ok(LogrusLine {
        time,
        level,
        msg: msg.ok_or_else(|| GrammarError::new("no msg key"))?,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_line_with_escapes_and_bare_values() {
        let l = parse_logrus(
            r#"time="2026-03-10T09:14:02.10181Z" level=info msg="Trying to access \"m.example:5000/a/b:1\"" file="docker/docker_image_src.go:87" id=1f2e name=/runtime.v1.ImageService/PullImage"#,
        )
        .unwrap();
        assert_eq!(l.time.as_deref(), Some("2026-03-10T09:14:02.10181Z"));
        assert_eq!(l.level.as_deref(), Some("info"));
        assert_eq!(l.msg, "Trying to access \"m.example:5000/a/b:1\"");
        assert_eq!(l.field("file"), Some("docker/docker_image_src.go:87"));
        assert_eq!(l.field("id"), Some("1f2e"));
        assert_eq!(l.field("name"), Some("/runtime.v1.ImageService/PullImage"));
        assert_eq!(l.field("nope"), None);
    }

    #[test]
    fn bare_msg_and_empty_value() {
        let l = parse_logrus("time=\"x\" level=info msg=Started k=").unwrap();
        assert_eq!(l.msg, "Started");
        assert_eq!(l.field("k"), Some(""));
    }

    #[test]
    fn json_line() {
        let l = parse_logrus(
            r#"{"id":"u1","level":"info","msg":"Pulled image: a/b@sha256:00","name":"/runtime.v1.ImageService/PullImage","time":"2026-11-21T07:05:01Z"}"#,
        )
        .unwrap();
        assert_eq!(l.msg, "Pulled image: a/b@sha256:00");
        assert_eq!(l.field("id"), Some("u1"));
        assert_eq!(l.level.as_deref(), Some("info"));
    }

    #[test]
    fn raw_msg_finds_both_forms() {
        assert_eq!(
            raw_msg(r#"time="t" level=info msg="Pulling image: x" id=1"#),
            Some(r#"Pulling image: x" id=1"#)
        );
        assert_eq!(
            raw_msg(r#"{"level":"info","msg":"Pulled"}"#),
            Some(r#"Pulled"}"#)
        );
        assert_eq!(raw_msg("no message here"), None);
    }

    #[test]
    fn malformed() {
        for l in [
            "",
            "time=\"x\" level=info",
            "time=\"x\" level=info msg=\"unterminated",
            "time=\"x\"junk msg=a",
            "lonely words",
            "=v msg=a",
            "{not json",
            "{\"level\":\"info\"}",
        ] {
            assert!(parse_logrus(l).is_err(), "{l}");
        }
    }
}
