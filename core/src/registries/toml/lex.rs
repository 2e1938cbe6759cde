//! The TOML lexer, as a state machine whose states, look-ahead and error positions follow
//! BurntSushi/toml v1.2.0 (what containers/image 5.22–5.23 vendor), so that a malformed file fails
//! with the same text and line number as it does in CRI-O and skopeo.
//!
//! Lines are counted the way that lexer counts them: a newline is counted when it is consumed and
//! uncounted when it is backed over, and an item's line is the line reached when it is emitted (a
//! multi-line string has the line of its end). An error raised after the end of input was seen is
//! reported on the line before.

use super::Release;
use crate::go::quote;

/// Go's `0` rune: the lexer's end-of-input marker (a NUL byte in the input is a control-character
/// error before it could be confused with it).
const EOF: char = '\0';
/// What Go's UTF-8 decoder returns for a byte that starts no valid sequence.
const RUNE_ERROR: char = '\u{fffd}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Eof,
    Text,
    String,
    RawString,
    MultilineString,
    RawMultilineString,
    Bool,
    Integer,
    Float,
    Datetime,
    Array,
    ArrayEnd,
    TableStart,
    TableEnd,
    ArrayTableStart,
    ArrayTableEnd,
    KeyStart,
    KeyEnd,
    CommentStart,
    InlineTableStart,
    InlineTableEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Item {
    pub kind: Kind,
    pub val: String,
    pub line: usize,
}

/// A lexing error: where the lexer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LexError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Top,
    TopEnd,
    TableStart,
    TableEnd,
    ArrayTableEnd,
    TableNameStart,
    TableNameEnd,
    BareName,
    QuotedName,
    KeyStart,
    KeyNameStart,
    KeyEnd,
    Value,
    ArrayValue,
    ArrayValueEnd,
    ArrayEnd,
    InlineTableValue,
    InlineTableValueEnd,
    InlineTableEnd,
    Str,
    MultilineStr,
    RawStr,
    MultilineRawStr,
    MultilineStrEscape,
    StrEscape,
    ShortUnicode,
    LongUnicode,
    NumberOrDateStart,
    NumberOrDate,
    Datetime,
    HexInteger,
    OctalInteger,
    BinaryInteger,
    DecimalNumber,
    DecimalNumberStart,
    BaseNumberOrDate,
    Float,
    Bool,
    CommentStart,
    Comment,
}

struct Lexer<'a> {
    release: Release,
    input: &'a [u8],
    start: usize,
    pos: usize,
    line: usize,
    widths: [usize; 4],
    nprev: usize,
    at_eof: bool,
    stack: Vec<St>,
    /// Emitted and not yet taken by the parser: a step emits at most a few.
    items: std::collections::VecDeque<Item>,
    error: Option<LexError>,
}

/// Go's `%q` of a rune.
pub(super) fn quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".to_owned(),
        '"' => "'\"'".to_owned(),
        c => {
            let q = quote(c.encode_utf8(&mut [0; 4]));
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// The items of `input`, in the order the parser reads them, lexed as the parser asks for them
/// (a whole document of items at once costs more memory than its tree), up to the end of input
/// or the first error (which the parser meets only if no earlier item made it fail).
pub(super) struct Items<'a> {
    lx: Lexer<'a>,
    state: Option<St>,
    /// Every state consumes input or moves to one that does; the bound only guards against a
    /// mistake here turning into a hang.
    budget: usize,
}

pub(super) fn lex(input: &[u8], release: Release) -> Items<'_> {
    Items {
        lx: Lexer {
            release,
            input,
            start: 0,
            pos: 0,
            line: 1,
            widths: [0; 4],
            nprev: 0,
            at_eof: false,
            stack: Vec::new(),
            items: std::collections::VecDeque::new(),
            error: None,
        },
        state: Some(St::Top),
        budget: input.len().saturating_mul(8).saturating_add(64),
    }
}

impl Iterator for Items<'_> {
    type Item = Result<Item, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(it) = self.lx.items.pop_front() {
                if it.kind == Kind::Eof {
                    self.state = None;
                }
                return Some(Ok(it));
            }
            if self.lx.error.is_some() {
                self.state = None;
                return self.lx.error.take().map(Err);
            }
            let s = self.state.take()?;
            if self.budget == 0 {
                self.lx.fail("BUG in lexer: no progress".to_owned());
                continue;
            }
            self.budget -= 1;
            self.state = self.lx.step(s);
        }
    }
}

fn is_whitespace(r: char) -> bool {
    r == '\t' || r == ' '
}
fn is_nl(r: char) -> bool {
    r == '\n' || r == '\r'
}
fn is_control(r: char) -> bool {
    !matches!(r, '\t' | '\r' | '\n') && (r <= '\u{1f}' || r == '\u{7f}')
}
fn is_digit(r: char) -> bool {
    r.is_ascii_digit()
}
fn is_hex(r: char) -> bool {
    r.is_ascii_hexdigit()
}
fn is_octal(r: char) -> bool {
    ('0'..='7').contains(&r)
}
fn is_binary(r: char) -> bool {
    r == '0' || r == '1'
}
pub(super) fn is_bare_key_char(r: char) -> bool {
    r.is_ascii_alphanumeric() || r == '_' || r == '-'
}

fn rune_or_eof(r: char) -> String {
    if r == EOF {
        "end of file".to_owned()
    } else {
        format!("'{r}'")
    }
}

impl Lexer<'_> {
    fn current(&self) -> String {
        let (a, b) = (self.start.min(self.pos), self.pos);
        String::from_utf8_lossy(self.input.get(a..b).unwrap_or_default()).into_owned()
    }

    fn emit(&mut self, kind: Kind) {
        let val = self.current();
        self.items.push_back(Item {
            kind,
            val,
            line: self.line,
        });
        self.start = self.pos;
    }

    fn emit_trim(&mut self, kind: Kind) {
        let val = self.current().trim().to_owned();
        self.items.push_back(Item {
            kind,
            val,
            line: self.line,
        });
        self.start = self.pos;
    }

    fn decode(&self) -> (char, usize) {
        let end = self.input.len().min(self.pos + 4);
        let chunk = self.input.get(self.pos..end).unwrap_or_default();
        let valid = match std::str::from_utf8(chunk) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or_default(),
        };
        match valid.chars().next() {
            Some(c) => (c, c.len_utf8()),
            None => (RUNE_ERROR, 1),
        }
    }

    fn next(&mut self) -> char {
        if self.error.is_some() || self.at_eof {
            return EOF;
        }
        if self.pos >= self.input.len() {
            self.at_eof = true;
            return EOF;
        }
        if self.input[self.pos] == b'\n' {
            self.line += 1;
        }
        self.widths[3] = self.widths[2];
        self.widths[2] = self.widths[1];
        self.widths[1] = self.widths[0];
        if self.nprev < 4 {
            self.nprev += 1;
        }
        let (r, w) = self.decode();
        if r == RUNE_ERROR && (w == 1 || self.release < Release::V1_4) {
            let b = self.input[self.pos];
            self.fail(format!("invalid UTF-8 byte: 0x{b:02x}"));
            return RUNE_ERROR;
        }
        let lone_cr = r == '\r' && self.input.get(self.pos + 1) != Some(&b'\n');
        if is_control(r) || lone_cr {
            self.error = Some(LexError {
                line: self.line,
                message: format!(
                    "TOML files cannot contain control characters: '0x{:02x}'",
                    r as u32
                ),
            });
            return RUNE_ERROR;
        }
        self.widths[0] = w;
        self.pos += w;
        r
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn backup(&mut self) {
        if self.at_eof {
            self.at_eof = false;
            return;
        }
        if self.nprev < 1 {
            return;
        }
        let w = self.widths[0];
        self.widths[0] = self.widths[1];
        self.widths[1] = self.widths[2];
        self.widths[2] = self.widths[3];
        self.nprev -= 1;
        self.pos = self.pos.saturating_sub(w);
        if self.input.get(self.pos) == Some(&b'\n') {
            self.line -= 1;
        }
    }

    fn accept(&mut self, valid: char) -> bool {
        if self.next() == valid {
            return true;
        }
        self.backup();
        false
    }

    fn peek(&mut self) -> char {
        let r = self.next();
        self.backup();
        r
    }

    fn skip_whitespace(&mut self) {
        loop {
            let r = self.next();
            if is_whitespace(r) {
                continue;
            }
            self.backup();
            self.ignore();
            return;
        }
    }

    /// An error at the current position, or on the line before once the end of input was seen.
    fn fail(&mut self, message: String) -> Option<St> {
        if self.error.is_none() {
            let after_newline = self.pos >= 1 && self.input.get(self.pos - 1) == Some(&b'\n');
            let line = if self.at_eof && (self.release < Release::V1_5 || after_newline) {
                self.line.saturating_sub(1)
            } else {
                self.line
            };
            self.error = Some(LexError { line, message });
        }
        None
    }

    fn fail_prev_line(&mut self, message: &str) -> Option<St> {
        if self.error.is_none() {
            self.error = Some(LexError {
                line: self.line.saturating_sub(1),
                message: message.to_owned(),
            });
        }
        None
    }

    fn push(&mut self, s: St) {
        self.stack.push(s);
    }

    fn pop(&mut self) -> Option<St> {
        match self.stack.pop() {
            Some(s) => Some(s),
            None => self.fail("BUG in lexer: no states to pop".to_owned()),
        }
    }

    fn step(&mut self, s: St) -> Option<St> {
        match s {
            St::Top => {
                let r = self.next();
                if is_whitespace(r) || is_nl(r) {
                    self.ignore();
                    return Some(St::Top);
                }
                match r {
                    '#' => {
                        self.push(St::Top);
                        Some(St::CommentStart)
                    }
                    '[' => Some(St::TableStart),
                    EOF => {
                        if self.pos > self.start {
                            return self.fail("unexpected EOF".to_owned());
                        }
                        self.emit(Kind::Eof);
                        None
                    }
                    _ => {
                        self.backup();
                        self.push(St::TopEnd);
                        Some(St::KeyStart)
                    }
                }
            }
            St::TopEnd => {
                let r = self.next();
                match r {
                    '#' => {
                        self.push(St::Top);
                        Some(St::CommentStart)
                    }
                    r if is_whitespace(r) => Some(St::TopEnd),
                    r if is_nl(r) => {
                        self.ignore();
                        Some(St::Top)
                    }
                    EOF => {
                        self.emit(Kind::Eof);
                        None
                    }
                    r => self.fail(format!(
                        "expected a top-level item to end with a newline, comment, or EOF, but got {} instead",
                        quote_rune(r)
                    )),
                }
            }
            St::TableStart => {
                if self.peek() == '[' {
                    self.next();
                    self.emit(Kind::ArrayTableStart);
                    self.push(St::ArrayTableEnd);
                } else {
                    self.emit(Kind::TableStart);
                    self.push(St::TableEnd);
                }
                Some(St::TableNameStart)
            }
            St::TableEnd => {
                self.emit(Kind::TableEnd);
                Some(St::TopEnd)
            }
            St::ArrayTableEnd => {
                let r = self.next();
                if r != ']' {
                    return self.fail(format!(
                        "expected end of table array name delimiter ']', but got {} instead",
                        quote_rune(r)
                    ));
                }
                self.emit(Kind::ArrayTableEnd);
                Some(St::TopEnd)
            }
            St::TableNameStart => {
                self.skip_whitespace();
                match self.peek() {
                    ']' | EOF => self.fail(
                        "unexpected end of table name (table names cannot be empty)".to_owned(),
                    ),
                    '.' => self.fail(
                        "unexpected table separator (table names cannot be empty)".to_owned(),
                    ),
                    '"' | '\'' => {
                        self.ignore();
                        self.push(St::TableNameEnd);
                        Some(St::QuotedName)
                    }
                    _ => {
                        self.push(St::TableNameEnd);
                        Some(St::BareName)
                    }
                }
            }
            St::TableNameEnd => {
                self.skip_whitespace();
                match self.next() {
                    r if is_whitespace(r) => Some(St::TableNameEnd),
                    '.' => {
                        self.ignore();
                        Some(St::TableNameStart)
                    }
                    ']' => self.pop(),
                    r => self.fail(format!(
                        "expected '.' or ']' to end table name, but got {} instead",
                        quote_rune(r)
                    )),
                }
            }
            St::BareName => {
                let r = self.next();
                if is_bare_key_char(r) {
                    return Some(St::BareName);
                }
                self.backup();
                self.emit(Kind::Text);
                self.pop()
            }
            St::QuotedName => match self.next() {
                r if is_whitespace(r) => {
                    self.ignore();
                    Some(St::Value)
                }
                '"' => {
                    self.ignore();
                    Some(St::Str)
                }
                '\'' => {
                    self.ignore();
                    Some(St::RawStr)
                }
                EOF => self.fail("unexpected EOF; expected value".to_owned()),
                r => self.fail(format!(
                    "expected value but found {} instead",
                    quote_rune(r)
                )),
            },
            St::KeyStart => {
                self.skip_whitespace();
                match self.peek() {
                    '=' | EOF => self.fail("unexpected '=': key name appears blank".to_owned()),
                    '.' => self.fail("unexpected '.': keys cannot start with a '.'".to_owned()),
                    r => {
                        if r == '"' || r == '\'' {
                            self.ignore();
                        }
                        self.emit(Kind::KeyStart);
                        Some(St::KeyNameStart)
                    }
                }
            }
            St::KeyNameStart => {
                self.skip_whitespace();
                match self.peek() {
                    '=' | EOF => self.fail("unexpected '='".to_owned()),
                    '.' => self.fail("unexpected '.'".to_owned()),
                    '"' | '\'' => {
                        self.ignore();
                        self.push(St::KeyEnd);
                        Some(St::QuotedName)
                    }
                    _ => {
                        self.push(St::KeyEnd);
                        Some(St::BareName)
                    }
                }
            }
            St::KeyEnd => {
                self.skip_whitespace();
                match self.next() {
                    r if is_whitespace(r) => {
                        self.ignore();
                        Some(St::KeyEnd)
                    }
                    EOF => self.fail("unexpected EOF; expected key separator '='".to_owned()),
                    '.' => {
                        self.ignore();
                        Some(St::KeyNameStart)
                    }
                    '=' => {
                        self.emit(Kind::KeyEnd);
                        self.ignore();
                        Some(St::Value)
                    }
                    r => {
                        let message =
                            format!("expected '.' or '=', but got {} instead", quote_rune(r));
                        if r == '\n' && self.release >= Release::V1_5 {
                            return self.fail_prev_line(&message);
                        }
                        self.fail(message)
                    }
                }
            }
            St::Value => self.value(),
            St::ArrayValue => {
                let r = self.next();
                match r {
                    r if is_whitespace(r) || is_nl(r) => {
                        self.ignore();
                        Some(St::ArrayValue)
                    }
                    '#' => {
                        self.push(St::ArrayValue);
                        Some(St::CommentStart)
                    }
                    ',' => self.fail("unexpected comma".to_owned()),
                    ']' => Some(St::ArrayEnd),
                    _ => {
                        self.backup();
                        self.push(St::ArrayValueEnd);
                        Some(St::Value)
                    }
                }
            }
            St::ArrayValueEnd => match self.next() {
                r if is_whitespace(r) || is_nl(r) => {
                    self.ignore();
                    Some(St::ArrayValueEnd)
                }
                '#' => {
                    self.push(St::ArrayValueEnd);
                    Some(St::CommentStart)
                }
                ',' => {
                    self.ignore();
                    Some(St::ArrayValue)
                }
                ']' => Some(St::ArrayEnd),
                r => self.fail(format!(
                    "expected a comma (',') or array terminator (']'), but got {}",
                    rune_or_eof(r)
                )),
            },
            St::ArrayEnd => {
                self.ignore();
                self.emit(Kind::ArrayEnd);
                self.pop()
            }
            St::InlineTableValue => match self.next() {
                r if is_whitespace(r) => {
                    self.ignore();
                    Some(St::InlineTableValue)
                }
                r if is_nl(r) => self.fail_prev_line("newlines not allowed within inline tables"),
                '#' => {
                    self.push(St::InlineTableValue);
                    Some(St::CommentStart)
                }
                ',' => self.fail("unexpected comma".to_owned()),
                '}' => Some(St::InlineTableEnd),
                _ => {
                    self.backup();
                    self.push(St::InlineTableValueEnd);
                    Some(St::KeyStart)
                }
            },
            St::InlineTableValueEnd => match self.next() {
                r if is_whitespace(r) => {
                    self.ignore();
                    Some(St::InlineTableValueEnd)
                }
                r if is_nl(r) => self.fail_prev_line("newlines not allowed within inline tables"),
                '#' => {
                    self.push(St::InlineTableValueEnd);
                    Some(St::CommentStart)
                }
                ',' => {
                    self.ignore();
                    self.skip_whitespace();
                    if self.peek() == '}' {
                        return self.fail("trailing comma not allowed in inline tables".to_owned());
                    }
                    Some(St::InlineTableValue)
                }
                '}' => Some(St::InlineTableEnd),
                r => self.fail(format!(
                    "expected a comma or an inline table terminator '}}', but got {} instead",
                    rune_or_eof(r)
                )),
            },
            St::InlineTableEnd => {
                self.ignore();
                self.emit(Kind::InlineTableEnd);
                self.pop()
            }
            St::Str => match self.next() {
                EOF => self.fail("unexpected EOF; expected '\"'".to_owned()),
                r if is_nl(r) => self.fail_prev_line("strings cannot contain newlines"),
                '\\' => {
                    self.push(St::Str);
                    Some(St::StrEscape)
                }
                '"' => {
                    self.backup();
                    self.emit(Kind::String);
                    self.next();
                    self.ignore();
                    self.pop()
                }
                _ => Some(St::Str),
            },
            St::MultilineStr => self.multiline('"', Kind::MultilineString, St::MultilineStr),
            St::RawStr => match self.next() {
                EOF => self.fail("unexpected EOF; expected \"'\"".to_owned()),
                r if is_nl(r) => self.fail_prev_line("strings cannot contain newlines"),
                '\'' => {
                    self.backup();
                    self.emit(Kind::RawString);
                    self.next();
                    self.ignore();
                    self.pop()
                }
                _ => Some(St::RawStr),
            },
            St::MultilineRawStr => {
                self.multiline('\'', Kind::RawMultilineString, St::MultilineRawStr)
            }
            St::MultilineStrEscape => {
                if is_nl(self.next()) {
                    return Some(St::MultilineStr);
                }
                self.backup();
                self.push(St::MultilineStr);
                self.step(St::StrEscape)
            }
            St::StrEscape => match self.next() {
                'b' | 't' | 'n' | 'f' | 'r' | '"' | ' ' | '\t' | '\\' => self.pop(),
                'u' => Some(St::ShortUnicode),
                'U' => Some(St::LongUnicode),
                r => {
                    let line = if self.at_eof {
                        self.line.saturating_sub(1)
                    } else {
                        self.line
                    };
                    if self.error.is_none() {
                        self.error = Some(LexError {
                            line,
                            message: format!("invalid escape in string '\\{r}'"),
                        });
                    }
                    None
                }
            },
            St::ShortUnicode => self.unicode_escape(4, "four", 'u'),
            St::LongUnicode => self.unicode_escape(8, "eight", 'U'),
            St::NumberOrDateStart => {
                let r = self.next();
                if r == '0' {
                    return Some(St::BaseNumberOrDate);
                }
                if !is_digit(r) {
                    return self.fail(format!("expected a digit but got {}", quote_rune(r)));
                }
                Some(St::NumberOrDate)
            }
            St::NumberOrDate => {
                let r = self.next();
                if is_digit(r) {
                    return Some(St::NumberOrDate);
                }
                match r {
                    '-' | ':' => Some(St::Datetime),
                    '_' => Some(St::DecimalNumber),
                    '.' | 'e' | 'E' => Some(St::Float),
                    _ => {
                        self.backup();
                        self.emit(Kind::Integer);
                        self.pop()
                    }
                }
            }
            St::Datetime => {
                let r = self.next();
                if is_digit(r) || matches!(r, '-' | ':' | 'T' | 't' | ' ' | '.' | 'Z' | 'z' | '+') {
                    return Some(St::Datetime);
                }
                self.backup();
                self.emit_trim(Kind::Datetime);
                self.pop()
            }
            St::HexInteger => self.integer_digits(is_hex, St::HexInteger),
            St::OctalInteger => self.integer_digits(is_octal, St::OctalInteger),
            St::BinaryInteger => self.integer_digits(is_binary, St::BinaryInteger),
            St::DecimalNumber => {
                let r = self.next();
                if is_digit(r) || r == '_' {
                    return Some(St::DecimalNumber);
                }
                if matches!(r, '.' | 'e' | 'E') {
                    return Some(St::Float);
                }
                self.backup();
                self.emit(Kind::Integer);
                self.pop()
            }
            St::DecimalNumberStart => {
                let r = self.next();
                match r {
                    'i' => {
                        if !self.accept('n') || !self.accept('f') {
                            let c = self.current();
                            return self.fail(format!("invalid float: '{c}'"));
                        }
                        self.emit(Kind::Float);
                        return self.pop();
                    }
                    'n' => {
                        if !self.accept('a') || !self.accept('n') {
                            let c = self.current();
                            return self.fail(format!("invalid float: '{c}'"));
                        }
                        self.emit(Kind::Float);
                        return self.pop();
                    }
                    '0' => {
                        let p = self.peek();
                        if matches!(p, 'b' | 'o' | 'x') {
                            let c = self.current();
                            return self.fail(format!(
                                "cannot use sign with non-decimal numbers: '{c}{p}'"
                            ));
                        }
                    }
                    '.' => {
                        return self.fail("floats must start with a digit, not '.'".to_owned());
                    }
                    _ => {}
                }
                if is_digit(r) {
                    return Some(St::DecimalNumber);
                }
                self.fail(format!("expected a digit but got {}", quote_rune(r)))
            }
            St::BaseNumberOrDate => {
                let r = self.next();
                if is_digit(r) {
                    return Some(St::NumberOrDate);
                }
                match r {
                    '_' => Some(St::DecimalNumber),
                    '.' | 'e' | 'E' => Some(St::Float),
                    'b' => self.base_prefix(is_binary, "not a binary number", St::BinaryInteger),
                    'o' => self.base_prefix(is_octal, "not an octal number", St::OctalInteger),
                    'x' => {
                        let what = if self.release >= Release::V1_5 {
                            "not a hexadecimal number"
                        } else {
                            "not a hexidecimal number"
                        };
                        self.base_prefix(is_hex, what, St::HexInteger)
                    }
                    _ => {
                        self.backup();
                        self.emit(Kind::Integer);
                        self.pop()
                    }
                }
            }
            St::Float => {
                let r = self.next();
                if is_digit(r) || matches!(r, '_' | '.' | '-' | '+' | 'e' | 'E') {
                    return Some(St::Float);
                }
                self.backup();
                self.emit(Kind::Float);
                self.pop()
            }
            St::Bool => {
                let mut word = String::new();
                loop {
                    let r = self.next();
                    if !r.is_alphabetic() {
                        self.backup();
                        break;
                    }
                    word.push(r);
                }
                if word == "true" || word == "false" {
                    self.emit(Kind::Bool);
                    return self.pop();
                }
                self.fail(format!("expected value but found {} instead", quote(&word)))
            }
            St::CommentStart => {
                self.ignore();
                self.emit(Kind::CommentStart);
                Some(St::Comment)
            }
            St::Comment => {
                let r = self.next();
                if is_nl(r) || r == EOF {
                    self.backup();
                    self.emit(Kind::Text);
                    return self.pop();
                }
                Some(St::Comment)
            }
        }
    }

    fn value(&mut self) -> Option<St> {
        let r = self.next();
        if is_whitespace(r) {
            self.ignore();
            return Some(St::Value);
        }
        if is_digit(r) {
            self.backup();
            return Some(St::NumberOrDateStart);
        }
        match r {
            '[' => {
                self.ignore();
                self.emit(Kind::Array);
                return Some(St::ArrayValue);
            }
            '{' => {
                self.ignore();
                self.emit(Kind::InlineTableStart);
                return Some(St::InlineTableValue);
            }
            '"' => {
                if self.accept('"') {
                    if self.accept('"') {
                        self.ignore();
                        return Some(St::MultilineStr);
                    }
                    self.backup();
                }
                self.ignore();
                return Some(St::Str);
            }
            '\'' => {
                if self.accept('\'') {
                    if self.accept('\'') {
                        self.ignore();
                        return Some(St::MultilineRawStr);
                    }
                    self.backup();
                }
                self.ignore();
                return Some(St::RawStr);
            }
            '.' => return self.fail("floats must start with a digit, not '.'".to_owned()),
            'i' | 'n'
                if (self.accept('n') && self.accept('f'))
                    || (self.accept('a') && self.accept('n')) =>
            {
                self.emit(Kind::Float);
                return self.pop();
            }
            '-' | '+' => return Some(St::DecimalNumberStart),
            _ => {}
        }
        if r.is_alphabetic() {
            self.backup();
            return Some(St::Bool);
        }
        if r == EOF {
            return self.fail("unexpected EOF; expected value".to_owned());
        }
        let message = format!("expected value but found {} instead", quote_rune(r));
        if r == '\n' && self.release >= Release::V1_5 {
            return self.fail_prev_line(&message);
        }
        self.fail(message)
    }

    /// The body of a `"""` or `'''` string: up to three closing quotes (plus up to two more that
    /// belong to the content); six in a row is an error.
    fn multiline(&mut self, q: char, kind: Kind, again: St) -> Option<St> {
        let r = self.next();
        if r == EOF {
            let close: String = std::iter::repeat_n(q, 3).collect();
            let shown = if q == '"' {
                format!("'{close}'")
            } else {
                format!("\"{close}\"")
            };
            return self.fail(format!("unexpected EOF; expected {shown}"));
        }
        if q == '"' && r == '\\' {
            return Some(St::MultilineStrEscape);
        }
        if r != q {
            return Some(again);
        }
        if self.accept(q) {
            if self.accept(q) {
                if self.peek() == q {
                    let cur = self.current();
                    let five: String = std::iter::repeat_n(q, 5).collect();
                    let too_many = if q == '"' {
                        cur.ends_with(&five) && !cur.ends_with(&format!("\\{five}"))
                    } else {
                        cur.ends_with(&five)
                    };
                    if too_many {
                        let six: String = std::iter::repeat_n(q, 6).collect();
                        let shown = if q == '"' {
                            format!("'{six}'")
                        } else {
                            format!("\"{six}\"")
                        };
                        return self.fail(format!("unexpected {shown}"));
                    }
                    self.backup();
                    self.backup();
                    return Some(again);
                }
                self.backup();
                self.backup();
                self.backup();
                self.emit(kind);
                self.next();
                self.next();
                self.next();
                self.ignore();
                return self.pop();
            }
            self.backup();
        }
        Some(again)
    }

    fn unicode_escape(&mut self, n: usize, word: &str, letter: char) -> Option<St> {
        for _ in 0..n {
            let r = self.next();
            if !is_hex(r) {
                let cur = self.current();
                return self.fail(format!(
                    "expected {word} hexadecimal digits after '\\{letter}', but got {} instead",
                    quote(&cur)
                ));
            }
        }
        self.pop()
    }

    fn integer_digits(&mut self, ok: fn(char) -> bool, again: St) -> Option<St> {
        let r = self.next();
        if ok(r) || r == '_' {
            return Some(again);
        }
        self.backup();
        self.emit(Kind::Integer);
        self.pop()
    }

    /// After `0b`/`0o`/`0x`: a digit of that base must follow. The error does not stop the
    /// state machine, but the parser meets it before anything lexed after it.
    fn base_prefix(&mut self, ok: fn(char) -> bool, what: &str, then: St) -> Option<St> {
        let r = self.peek();
        if !ok(r) {
            let c = self.current();
            let shown = if r == EOF {
                String::new()
            } else {
                r.to_string()
            };
            self.fail(format!("{what}: '{c}{shown}'"));
            return None;
        }
        Some(then)
    }
}
