//! The TOML parser: builds the document from the lexer's items, with BurntSushi/toml v1.2.0's
//! key bookkeeping (implicit tables, the type and line recorded per key path) and its errors.

use std::collections::{HashMap, HashSet};

use super::lex::{lex, Item, Items, Kind};
use super::value::{Node, Table};
use super::{key_string, Release, TomlError};
use crate::go::quote;

/// A parsed document and the line recorded for each key path (`Key.String()` form): the last
/// definition's, which is what decoding errors name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    pub root: Table,
    pub lines: HashMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Scalar,
    Array,
    Hash,
    ArrayHash,
}

type R<T> = Result<T, TomlError>;

struct Parser<'a> {
    release: Release,
    items: Items<'a>,
    context: Vec<String>,
    current_key: String,
    pos_line: usize,
    info: HashMap<String, (Ty, usize)>,
    mapping: Table,
    implicits: HashSet<String>,
    last_line: usize,
    /// Arrays and inline tables being read, one inside the other.
    depth: usize,
}

/// Go reads any depth; this parser recurses, so absurd nesting is refused rather than allowed to
/// exhaust the stack. No real registries.conf comes near it.
const MAX_DEPTH: usize = 256;

fn current(context: &[String], key: &str) -> String {
    if key.is_empty() {
        return key_string(context);
    }
    if context.is_empty() {
        return key.to_owned();
    }
    format!("{}.{key}", key_string(context))
}

/// Parses a whole file.
pub(crate) fn parse(data: &[u8], release: Release) -> R<Doc> {
    let data = data
        .strip_prefix(b"\xff\xfe")
        .or_else(|| data.strip_prefix(b"\xfe\xff"))
        .unwrap_or(data);
    if data.iter().take(6).any(|&b| b == 0) {
        return Err(TomlError {
            line: Some(1),
            last_key: String::new(),
            message:
                "files cannot contain NULL bytes; probably using UTF-16; TOML files must be UTF-8"
                    .to_owned(),
        });
    }
    let mut p = Parser {
        release,
        items: lex(data, release),
        context: Vec::new(),
        current_key: String::new(),
        pos_line: 0,
        info: HashMap::new(),
        mapping: Table::default(),
        implicits: HashSet::new(),
        last_line: 1,
        depth: 0,
    };
    loop {
        let it = p.next()?;
        if it.kind == Kind::Eof {
            break;
        }
        p.top_level(it)?;
    }
    Ok(Doc {
        root: p.mapping,
        lines: p.info.into_iter().map(|(k, (_, l))| (k, l)).collect(),
    })
}

impl Parser<'_> {
    fn current(&self) -> String {
        current(&self.context, &self.current_key)
    }

    fn next(&mut self) -> R<Item> {
        match self.items.next() {
            Some(Ok(it)) => {
                self.last_line = it.line;
                Ok(it)
            }
            Some(Err(e)) => Err(TomlError {
                line: Some(e.line),
                last_key: self.current(),
                message: e.message,
            }),
            None => Ok(Item {
                kind: Kind::Eof,
                val: String::new(),
                line: self.last_line,
            }),
        }
    }

    fn next_pos(&mut self) -> R<Item> {
        let it = self.next()?;
        self.pos_line = it.line;
        Ok(it)
    }

    fn at_item(&self, it: &Item, message: String) -> TomlError {
        TomlError {
            line: Some(it.line),
            last_key: self.current(),
            message,
        }
    }

    fn at_pos(&self, message: String) -> TomlError {
        TomlError {
            line: Some(self.pos_line),
            last_key: self.current(),
            message,
        }
    }

    fn bug(&self, what: &str) -> TomlError {
        self.at_pos(format!("BUG: {what}"))
    }

    fn key_parts(&mut self, first: Item, end: Kind) -> R<Vec<String>> {
        let mut key = Vec::new();
        let mut it = first;
        while it.kind != end && it.kind != Kind::Eof {
            key.push(self.key_string(&it)?);
            it = self.next()?;
        }
        if it.kind != end {
            return Err(self.bug("unexpected end of key"));
        }
        Ok(key)
    }

    fn top_level(&mut self, item: Item) -> R<()> {
        match item.kind {
            Kind::CommentStart => {
                self.next()?;
            }
            Kind::TableStart | Kind::ArrayTableStart => {
                let array = item.kind == Kind::ArrayTableStart;
                let first = self.next_pos()?;
                let end = if array {
                    Kind::ArrayTableEnd
                } else {
                    Kind::TableEnd
                };
                let key = self.key_parts(first, end)?;
                self.add_context(&key, array)?;
                let ty = if array { Ty::ArrayHash } else { Ty::Hash };
                self.set_type("", ty, item.line);
            }
            Kind::KeyStart => {
                let outer = self.context.clone();
                let first = self.next_pos()?;
                let key = self.key_parts(first, Kind::KeyEnd)?;
                self.key_value(key, None)?;
                self.context = outer;
                self.current_key.clear();
            }
            _ => return Err(self.bug("unexpected type at top level")),
        }
        Ok(())
    }

    /// `a.b.c = value` in the current context; `pos` overrides the line recorded for the key
    /// (inline tables record the key's line, top-level pairs the value's).
    fn key_value(&mut self, key: Vec<String>, pos: Option<usize>) -> R<Node> {
        let Some((last, prefix)) = key.split_last() else {
            return Err(self.bug("empty key"));
        };
        self.current_key = last.clone();
        for part in prefix {
            let mut k = self.context.clone();
            k.push(part.clone());
            self.add_implicit_context(&k)?;
        }
        let v_item = self.next()?;
        let line = pos.unwrap_or(v_item.line);
        let (val, ty) = self.value(&v_item, false)?;
        let key = self.current_key.clone();
        self.set(&key, val.clone(), ty, line)?;
        Ok(val)
    }

    fn key_string(&mut self, it: &Item) -> R<String> {
        match it.kind {
            Kind::Text => Ok(it.val.clone()),
            Kind::String | Kind::MultilineString | Kind::RawString | Kind::RawMultilineString => {
                match self.value(it, false)? {
                    (Node::Str(s), _) => Ok(s),
                    _ => Err(self.bug("key is not a string")),
                }
            }
            _ => Err(self.bug("unexpected key type")),
        }
    }

    fn value(&mut self, it: &Item, parent_is_array: bool) -> R<(Node, Ty)> {
        let s = |v: String| Ok((Node::Str(v), Ty::Scalar));
        match it.kind {
            Kind::String => s(self.replace_escapes(it, &it.val)?),
            Kind::MultilineString => {
                let v = if self.release >= Release::V1_3 {
                    strip_line_ending_backslashes(strip_first_newline(&it.val))
                } else {
                    let joined = self.strip_escaped_newlines(&it.val)?;
                    strip_first_newline(&joined).to_owned()
                };
                s(self.replace_escapes(it, &v)?)
            }
            Kind::RawString => s(it.val.clone()),
            Kind::RawMultilineString => s(strip_first_newline(&it.val).to_owned()),
            Kind::Integer => self.value_integer(it),
            Kind::Float => self.value_float(it),
            Kind::Bool => Ok((Node::Bool(it.val == "true"), Ty::Scalar)),
            Kind::Datetime => {
                let v: String = it
                    .val
                    .chars()
                    .map(|c| match c {
                        'z' => 'Z',
                        't' | ' ' => 'T',
                        c => c,
                    })
                    .collect();
                let layout = datetime_layout(&v);
                if self.release >= Release::V1_4 {
                    if layout.is_none_or(|l| missing_leading_zero(&v, l)) {
                        return Err(self.at_item(it, format!("invalid datetime: {}", quote(&v))));
                    }
                } else if layout.is_none() {
                    return Err(self.at_item(it, format!("Invalid TOML Datetime: {}.", quote(&v))));
                }
                Ok((Node::Datetime, Ty::Scalar))
            }
            Kind::Array | Kind::InlineTableStart => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.at_item(
                        it,
                        format!("arrays and inline tables nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                self.depth += 1;
                let v = if it.kind == Kind::Array {
                    self.value_array(it)
                } else {
                    self.value_inline_table(parent_is_array)
                };
                self.depth -= 1;
                v
            }
            _ => Err(self.bug("unexpected value type")),
        }
    }

    fn value_integer(&self, it: &Item) -> R<(Node, Ty)> {
        let v = &it.val;
        if !num_underscores_ok(v) {
            return Err(self.at_item(
                it,
                format!(
                    "Invalid integer {}: underscores must be surrounded by digits",
                    quote(v)
                ),
            ));
        }
        if num_has_leading_zero(v) {
            return Err(self.at_item(
                it,
                format!("Invalid integer {}: cannot have leading zeroes", quote(v)),
            ));
        }
        match parse_go_int(v) {
            Some(Ok(n)) => Ok((Node::Int(n), Ty::Scalar)),
            Some(Err(())) => Err(self.at_item(it, format!("{v} is out of range for int64"))),
            None => Err(self.bug("integer the lexer accepted does not parse")),
        }
    }

    fn value_float(&self, it: &Item) -> R<(Node, Ty)> {
        let v = &it.val;
        let parts: Vec<&str> = v.split(['.', 'e', 'E']).filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| !num_underscores_ok(p)) {
            return Err(self.at_item(
                it,
                format!(
                    "Invalid float {}: underscores must be surrounded by digits",
                    quote(v)
                ),
            ));
        }
        if parts.first().is_some_and(|p| num_has_leading_zero(p)) {
            return Err(self.at_item(
                it,
                format!("Invalid float {}: cannot have leading zeroes", quote(v)),
            ));
        }
        if !num_periods_ok(v) {
            return Err(self.at_item(
                it,
                format!(
                    "Invalid float {}: '.' must be followed by one or more digits",
                    quote(v)
                ),
            ));
        }
        let mut clean = v.replace('_', "");
        if clean == "+nan" || clean == "-nan" {
            clean = "nan".to_owned();
        }
        match clean.parse::<f64>() {
            Ok(f) if f.is_infinite() && !clean.contains("inf") => {
                Err(self.at_item(it, format!("{v} is out of range for float64")))
            }
            Ok(f) => Ok((Node::Float(f), Ty::Scalar)),
            Err(_) => Err(self.at_item(it, format!("Invalid float value: {}", quote(v)))),
        }
    }

    fn value_array(&mut self, it: &Item) -> R<(Node, Ty)> {
        let key = self.current_key.clone();
        self.set_type(&key, Ty::Array, it.line);
        let mut out = Vec::new();
        loop {
            let it = self.next()?;
            match it.kind {
                Kind::ArrayEnd => break,
                Kind::CommentStart => {
                    self.next()?;
                }
                Kind::Eof => return Err(self.bug("unexpected end of array")),
                _ => out.push(self.value(&it, true)?.0),
            }
        }
        Ok((Node::Array(out), Ty::Array))
    }

    fn value_inline_table(&mut self, parent_is_array: bool) -> R<(Node, Ty)> {
        let outer_context = self.context.clone();
        let outer_key = std::mem::take(&mut self.current_key);
        self.context.push(outer_key.clone());
        let prev_context = self.context.clone();
        self.add_implicit(&prev_context);
        self.add_context(&prev_context, parent_is_array)?;
        let mut hash = Table::default();
        loop {
            let it = self.next()?;
            match it.kind {
                Kind::InlineTableEnd => break,
                Kind::CommentStart => {
                    self.next()?;
                    continue;
                }
                Kind::Eof => return Err(self.bug("unexpected end of inline table")),
                _ => {}
            }
            let first = self.next_pos()?;
            let key = self.key_parts(first, Kind::KeyEnd)?;
            let val = self.key_value(key, Some(it.line))?;
            hash.insert(self.current_key.clone(), val);
            self.context = prev_context.clone();
        }
        self.context = outer_context;
        self.current_key = outer_key;
        Ok((Node::Table(hash), Ty::Hash))
    }

    fn add_implicit(&mut self, key: &[String]) {
        self.implicits.insert(key_string(key));
    }

    fn add_implicit_context(&mut self, key: &[String]) -> R<()> {
        self.add_implicit(key);
        self.add_context(key, false)
    }

    /// Opens the table (or a new element of the array of tables) `key`, creating implicit
    /// tables on the way, and makes it the context.
    fn add_context(&mut self, key: &[String], array: bool) -> R<()> {
        let Some((last, prefix)) = key.split_last() else {
            return Err(self.bug("empty table name"));
        };
        let mut key_context: Vec<String> = Vec::new();
        {
            let implicits = &mut self.implicits;
            let mut hash = &mut self.mapping;
            for k in prefix {
                key_context.push(k.clone());
                if !hash.contains(k) {
                    implicits.insert(key_string(&key_context));
                    hash.insert(k.clone(), Node::Table(Table::default()));
                }
                hash = match hash.get_mut(k) {
                    Some(Node::Tables(t)) if !t.is_empty() => match t.last_mut() {
                        Some(last) => last,
                        None => return Err(empty_tables(self.pos_line)),
                    },
                    Some(Node::Table(t)) => t,
                    _ => {
                        return Err(TomlError {
                            line: Some(self.pos_line),
                            last_key: current(&self.context, &self.current_key),
                            message: format!(
                                "Key '{}' was already created as a hash.",
                                key_string(&key_context)
                            ),
                        })
                    }
                };
            }
            self.context = key_context.clone();
            if array {
                if !hash.contains(last) {
                    hash.insert(last.clone(), Node::Tables(Vec::new()));
                }
                match hash.get_mut(last) {
                    Some(Node::Tables(t)) => t.push(Table::default()),
                    _ => {
                        return Err(TomlError {
                            line: Some(self.pos_line),
                            last_key: current(&self.context, &self.current_key),
                            message: format!(
                                "Key '{}' was already created and cannot be used as an array.",
                                key_string(key)
                            ),
                        })
                    }
                }
            }
        }
        if !array {
            self.set_value(last, Node::Table(Table::default()))?;
        }
        self.context.push(last.clone());
        Ok(())
    }

    fn set(&mut self, key: &str, val: Node, ty: Ty, line: usize) -> R<()> {
        self.set_value(key, val)?;
        self.set_type(key, ty, line);
        Ok(())
    }

    fn set_value(&mut self, key: &str, value: Node) -> R<()> {
        let line = self.pos_line;
        let (context, current_key) = (&self.context, &self.current_key);
        let defined = |kc: &[String]| TomlError {
            line: Some(line),
            last_key: current(context, current_key),
            message: format!("Key '{}' has already been defined.", key_string(kc)),
        };
        let mut key_context: Vec<String> = Vec::new();
        let mut hash = &mut self.mapping;
        for k in context {
            key_context.push(k.clone());
            hash = match hash.get_mut(k) {
                None => {
                    return Err(TomlError {
                        line: Some(line),
                        last_key: current(context, current_key),
                        message: "BUG: context for key has not been established".to_owned(),
                    })
                }
                Some(Node::Tables(t)) if !t.is_empty() => match t.last_mut() {
                    Some(last) => last,
                    None => return Err(empty_tables(line)),
                },
                Some(Node::Table(t)) => t,
                Some(_) => return Err(defined(&key_context)),
            };
        }
        key_context.push(key.to_owned());
        if hash.contains(key) {
            let path = key_string(&key_context);
            let is_array = self.info.get(&path).is_some_and(|(t, _)| *t == Ty::Array);
            if is_array {
                self.implicits.remove(&path);
                hash.insert(key.to_owned(), value);
                return Ok(());
            }
            if self.implicits.remove(&path) {
                return Ok(());
            }
            return Err(defined(&key_context));
        }
        hash.insert(key.to_owned(), value);
        Ok(())
    }

    fn set_type(&mut self, key: &str, ty: Ty, line: usize) {
        let mut kc = self.context.clone();
        if !key.is_empty() {
            kc.push(key.to_owned());
        }
        if kc.is_empty() {
            kc.push(String::new());
        }
        self.info.insert(key_string(&kc), (ty, line));
    }

    fn replace_escapes(&self, it: &Item, s: &str) -> R<String> {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = chars.next() else {
                return Err(self.bug("escape sequence at end of string"));
            };
            match e {
                ' ' | '\t' => {
                    return Err(self.at_item(it, format!("invalid escape: '\\{e}'")));
                }
                'b' => out.push('\u{8}'),
                't' => out.push('\t'),
                'n' => out.push('\n'),
                'f' => out.push('\u{c}'),
                'r' => out.push('\r'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' | 'U' => {
                    let n = if e == 'u' { 4 } else { 8 };
                    let hex: String = chars.by_ref().take(n).collect();
                    let code = u32::from_str_radix(&hex, 16).ok();
                    match code.and_then(char::from_u32) {
                        Some(c) => out.push(c),
                        None => {
                            return Err(self.at_item(
                                it,
                                format!("Escaped character '\\u{hex}' is not valid UTF-8."),
                            ))
                        }
                    }
                }
                _ => return Err(self.bug("invalid escape code")),
            }
        }
        Ok(out)
    }

    /// Joins the lines of a `"""` string that end in an odd number of backslashes with the next
    /// non-blank text.
    fn strip_escaped_newlines(&self, s: &str) -> R<String> {
        let mut split: Vec<String> = s.split('\n').map(str::to_owned).collect();
        let n = split.len();
        let ws: &[char] = &[' ', '\t', '\r'];
        let mut esc_nl = false;
        for i in 0..n {
            let mut line = split[i].trim_end_matches(ws).to_owned();
            if !line.ends_with('\\') {
                split[i] = split[i].trim_end_matches('\r').to_owned();
                if !esc_nl && i != n - 1 {
                    split[i].push('\n');
                }
                continue;
            }
            let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
            let esc_bs = trailing % 2 == 0;
            if esc_nl {
                line = line.trim_start_matches(ws).to_owned();
            }
            esc_nl = !esc_bs;
            if esc_bs {
                split[i].push('\n');
                continue;
            }
            if i == n - 1 {
                return Err(self.at_pos("invalid escape: '\\ '".to_owned()));
            }
            line.pop();
            split[i] = line;
            if n - 1 > i {
                split[i + 1] = split[i + 1].trim_start_matches(ws).to_owned();
            }
        }
        Ok(split.concat())
    }
}

/// Arrays of tables are never empty once created (the guard above makes this unreachable).
fn empty_tables(line: usize) -> TomlError {
    TomlError {
        line: Some(line),
        last_key: String::new(),
        message: "BUG: empty array of tables".to_owned(),
    }
}

fn strip_first_newline(s: &str) -> &str {
    s.strip_prefix('\n')
        .or_else(|| s.strip_prefix("\r\n"))
        .unwrap_or(s)
}

fn num_has_leading_zero(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 1 && b[0] == b'0' && !matches!(b[1], b'b' | b'o' | b'x') {
        return true;
    }
    b.len() > 2 && (b[0] == b'-' || b[0] == b'+') && b[1] == b'0'
}

fn num_underscores_ok(s: &str) -> bool {
    if matches!(s, "nan" | "+nan" | "-nan" | "inf" | "-inf" | "+inf") {
        return true;
    }
    let mut accept = false;
    for c in s.chars() {
        if c == '_' && !accept {
            return false;
        }
        accept = c.is_ascii_hexdigit();
    }
    accept
}

fn num_periods_ok(s: &str) -> bool {
    let mut period = false;
    for c in s.chars() {
        if period && !c.is_ascii_digit() {
            return false;
        }
        period = c == '.';
    }
    !period
}

/// `strconv.ParseInt(s, 0, 64)` for what the lexer lets through: `None` when it does not parse,
/// `Some(Err)` when it is out of range.
fn parse_go_int(s: &str) -> Option<Result<i64, ()>> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else {
        (10, body)
    };
    let clean = digits.replace('_', "");
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let Ok(mag) = u128::from_str_radix(&clean, radix) else {
        return Some(Err(()));
    };
    let v = if neg {
        i128::try_from(mag).map(|m| -m).ok()
    } else {
        i128::try_from(mag).ok()
    };
    Some(v.and_then(|v| i64::try_from(v).ok()).ok_or(()))
}

const OFFSET_DATETIME: &str = "2006-01-02T15:04:05.999999999Z07:00";
const LOCAL_DATETIME: &str = "2006-01-02T15:04:05.999999999";
const LOCAL_DATE: &str = "2006-01-02";
const LOCAL_TIME: &str = "15:04:05.999999999";

/// The first of BurntSushi's four Go layouts (offset date-time, local date-time, local date,
/// local time) in which `time.ParseInLocation` accepts `s` (`t`, `z` and the space already made
/// `T` and `Z`).
fn datetime_layout(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if let Some(rest) = date(b) {
        if rest.is_empty() {
            return Some(LOCAL_DATE);
        }
        let rest = time(rest.strip_prefix(b"T")?)?;
        if rest.is_empty() {
            return Some(LOCAL_DATETIME);
        }
        return zone(rest).then_some(OFFSET_DATETIME);
    }
    time(b).is_some_and(<[u8]>::is_empty).then_some(LOCAL_TIME)
}

/// BurntSushi ≥ 1.4 rejects what Go parsed with a one-digit hour: the separators of the layout,
/// up to the fraction or zone, must sit at the same offsets in the text.
fn missing_leading_zero(d: &str, layout: &str) -> bool {
    let d = d.as_bytes();
    for (i, c) in layout.bytes().enumerate() {
        if c == b'.' || c == b'Z' {
            return false;
        }
        if !c.is_ascii_digit() && d.get(i) != Some(&c) {
            return true;
        }
    }
    false
}

/// BurntSushi ≥ 1.3: a backslash followed by whitespace that includes a newline is removed with
/// that whitespace; anything else is left for escape processing.
fn strip_line_ending_backslashes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'\\') {
            i += 2;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && matches!(b[j], b' ' | b'\t' | b'\r' | b'\n') {
            j += 1;
        }
        if j == i + 1 || !b[i + 1..j].contains(&b'\n') {
            i += 1;
            continue;
        }
        out.push_str(&s[from..i]);
        from = j;
        i = j;
    }
    out.push_str(&s[from..]);
    out
}

fn fixed2(b: &[u8]) -> Option<(u32, &[u8])> {
    match b {
        [x, y, rest @ ..] if x.is_ascii_digit() && y.is_ascii_digit() => {
            Some((u32::from(x - b'0') * 10 + u32::from(y - b'0'), rest))
        }
        _ => None,
    }
}

fn date(b: &[u8]) -> Option<&[u8]> {
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let year: u32 = std::str::from_utf8(&b[..4]).ok()?.parse().ok()?;
    let (month, rest) = fixed2(&b[5..])?;
    let rest = rest.strip_prefix(b"-")?;
    let (day, rest) = fixed2(rest)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=days).contains(&day).then_some(rest)
}

/// `15:04:05` with an optional fraction; the hour may have one digit.
fn time(b: &[u8]) -> Option<&[u8]> {
    let hour_digits = b.iter().take(2).take_while(|c| c.is_ascii_digit()).count();
    if hour_digits == 0 {
        return None;
    }
    let hour: u32 = std::str::from_utf8(&b[..hour_digits]).ok()?.parse().ok()?;
    let rest = b[hour_digits..].strip_prefix(b":")?;
    let (minute, rest) = fixed2(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (second, mut rest) = fixed2(rest)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if let [b'.', d, ..] = rest {
        if d.is_ascii_digit() {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            rest = &rest[1 + n..];
        }
    }
    Some(rest)
}

fn zone(b: &[u8]) -> bool {
    if b == b"Z" {
        return true;
    }
    match b {
        [s, h1, h2, b':', m1, m2] if (*s == b'+' || *s == b'-') => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(text.as_bytes(), Release::V1_2) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn syntax_errors_follow_burntsushi() {
        assert_eq!(
            err("invalid\n"),
            "toml: line 2: expected '.' or '=', but got '\\n' instead"
        );
        assert_eq!(
            err("[[registry]]\nlocation = \"a\"\nlocation = \"b\"\n"),
            "toml: line 3 (last key \"registry.location\"): Key 'registry.location' has already been defined."
        );
        assert_eq!(
            err("[[registry]]\ninsecure = yes\n"),
            "toml: line 2 (last key \"registry.insecure\"): expected value but found \"yes\" instead"
        );
        assert_eq!(err("a = [1, \"x\"]\nb = 1979-05-27T07:32:00Z\n"), "ok");
        assert_eq!(
            err("a = 2024-02-30\n"),
            "toml: line 1 (last key \"a\"): Invalid TOML Datetime: \"2024-02-30\"."
        );
        assert_eq!(err("a = [1]\na = 2\n"), "ok");
    }

    fn err_in(release: Release, text: &str) -> String {
        match parse(text.as_bytes(), release) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn later_releases_change_lines_and_words() {
        let key_nl = "toml: line 2: expected '.' or '=', but got '\\n' instead";
        assert_eq!(
            err_in(Release::V1_4, "x = 1\ninvalid\n"),
            format!("toml: line 3{}", &key_nl[12..])
        );
        assert_eq!(err_in(Release::V1_5, "x = 1\ninvalid\n"), key_nl);
        assert_eq!(
            err_in(Release::V1_5, "a =\n"),
            "toml: line 1 (last key \"a\"): expected value but found '\\n' instead"
        );
        assert_eq!(
            err_in(Release::V1_2, "a = [1, 2"),
            "toml: line 0 (last key \"a\"): expected a comma (',') or array terminator (']'), but got end of file"
        );
        assert_eq!(
            err_in(Release::V1_5, "a = [1, 2"),
            "toml: line 1 (last key \"a\"): expected a comma (',') or array terminator (']'), but got end of file"
        );
        assert_eq!(err_in(Release::V1_2, "a = 7:32:00\n"), "ok");
        assert_eq!(
            err_in(Release::V1_4, "a = 7:32:00\n"),
            "toml: line 1 (last key \"a\"): invalid datetime: \"7:32:00\""
        );
        assert_eq!(
            err_in(Release::V1_2, "a = 2024-13-01\n"),
            "toml: line 1 (last key \"a\"): Invalid TOML Datetime: \"2024-13-01\"."
        );
        assert_eq!(
            err_in(Release::V1_2, "a = \"\u{fffd}\"\n"),
            "toml: line 1 (last key \"a\"): invalid UTF-8 byte: 0xef"
        );
        assert_eq!(err_in(Release::V1_4, "a = \"\u{fffd}\"\n"), "ok");
        let deep = format!("a = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(err_in(Release::V1_2, &deep).contains("nested deeper than 256 levels"));
        let ml = "a = \"\"\"x \\\n  y\"\"\"\n";
        assert_eq!(err_in(Release::V1_2, ml), "ok");
        assert_eq!(err_in(Release::V1_3, ml), "ok");
    }
}
