//! A small model of Go's `encoding/json` decoder, used where the server's replies quote it.
//!
//! The real server decodes command payloads with `json.Unmarshal` into fixed Go structs and echoes
//! the decoder's error text (`invalid JSON: invalid character 'n' looking for beginning of object key
//! string`, `json: cannot unmarshal string into Go struct field Job.args of type []interface {}`).
//! This module reproduces the parts that matter:
//!
//! - [`parse`]: a strict RFC 8259 parser that reports the *first* syntax error with the text of Go's
//!   scanner (`invalid character 'x' after object key`, `unexpected end of JSON input`, …). Strings
//!   are decoded like Go does: invalid UTF-8 bytes and unpaired surrogate escapes become U+FFFD.
//!   Nesting deeper than [`MAX_DEPTH`] is refused (Go allows 10000; serde_json, which reads the
//!   server's replies on the client side, allows 128).
//! - [`check`]: Go's type rules for decoding a value into a [`Ty`] (a Go type): `null` fits anything,
//!   integers must be integer literals in range (`1800.0` and `1e3` do not fit an `int`), numbers
//!   into `interface {}` must fit a `float64`, struct keys match exactly first and then ASCII
//!   case-insensitively, unknown keys are skipped. The first mismatch in document order gives Go's
//!   `json: cannot unmarshal …` message, with the struct name and dotted field path Go reports.
//! - Accessors that read a checked value with Go's assignment rules (last duplicate key wins; `null`
//!   leaves a string or integer as it was).

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted.
pub(crate) const MAX_DEPTH: usize = 128;

/// A parsed JSON value that keeps object keys in document order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GVal {
    Null,
    Bool(bool),
    /// The number literal as written (validated against the JSON grammar).
    Num(String),
    Str(String),
    Arr(Vec<GVal>),
    Obj(Vec<(String, GVal)>),
}

/// A Go type, as far as decoding cares.
#[derive(Debug)]
pub(crate) enum Ty {
    /// A string type, with its Go name (`string`, `client.Structure`).
    Str(&'static str),
    /// A signed integer type (`int`, `int64`): any integer literal in `i64` range.
    Int(&'static str),
    /// `uint8`.
    U8,
    /// `interface {}`.
    Any,
    /// `[]T`.
    Slice(&'static Ty),
    /// `map[string]T`.
    Map(&'static Ty),
    /// A struct (always decoded through a pointer or by value; Go reports the element type).
    Struct(&'static StructTy),
}

/// A Go struct: its name (as `reflect.Type.Name()` gives it), its qualified name, and its fields
/// by JSON name.
#[derive(Debug)]
pub(crate) struct StructTy {
    pub(crate) name: &'static str,
    pub(crate) qualified: &'static str,
    pub(crate) fields: &'static [(&'static str, Ty)],
}

impl StructTy {
    /// The field a key selects: exact match first, then ASCII case-insensitive (Go's fold).
    pub(crate) fn field(&self, key: &str) -> Option<&'static (&'static str, Ty)> {
        self.fields
            .iter()
            .find(|(name, _)| *name == key)
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(key))
            })
    }
}

fn type_name(ty: &Ty) -> String {
    match ty {
        Ty::Str(name) | Ty::Int(name) => (*name).to_owned(),
        Ty::U8 => "uint8".to_owned(),
        Ty::Any => "interface {}".to_owned(),
        Ty::Slice(el) => format!("[]{}", type_name(el)),
        Ty::Map(el) => format!("map[string]{}", type_name(el)),
        Ty::Struct(st) => st.qualified.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------
// syntax

const EOF_MSG: &str = "unexpected end of JSON input";

/// Go's `quoteChar`: the offending byte as Go prints it in scanner errors.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\\' => "'\\\\'".to_owned(),
        0x07 => "'\\a'".to_owned(),
        0x08 => "'\\b'".to_owned(),
        0x0c => "'\\f'".to_owned(),
        b'\n' => "'\\n'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        0x0b => "'\\v'".to_owned(),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        // Go converts the byte to the rune U+00XX; these are not printable for strconv.Quote.
        0x80..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        _ => format!("'{}'", char::from(c)),
    }
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<GVal, String> {
        self.skip_ws();
        match self.peek() {
            None => Err(EOF_MSG.to_owned()),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(GVal::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", GVal::Bool(true)),
            Some(b'f') => self.literal("false", GVal::Bool(false)),
            Some(b'n') => self.literal("null", GVal::Null),
            Some(c) => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: GVal) -> Result<GVal, String> {
        // The first byte matched already.
        self.i += 1;
        for expected in word.bytes().skip(1) {
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(c) if c == expected => self.i += 1,
                Some(c) => {
                    return Err(format!(
                        "invalid character {} in literal {word} (expecting {})",
                        quote_char(c),
                        quote_char(expected)
                    ));
                }
            }
        }
        Ok(v)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn number(&mut self) -> Result<GVal, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            None => return Err(EOF_MSG.to_owned()),
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            Some(c) => return Err(invalid(c, "in numeric literal")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => return Err(invalid(c, "after decimal point in numeric literal")),
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => return Err(invalid(c, "in exponent of numeric literal")),
            }
        }
        let lit = self.s.get(start..self.i).unwrap_or_default();
        Ok(GVal::Num(String::from_utf8_lossy(lit).into_owned()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(c) = self.peek() else {
                return Err(EOF_MSG.to_owned());
            };
            let d = char::from(c)
                .to_digit(16)
                .ok_or_else(|| invalid(c, "in \\u hexadecimal character escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    /// Reads `\uXXXX` after the backslash and `u`, pairing surrogates as Go does.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let first = self.hex4()?;
        let ch = if (0xd800..0xdc00).contains(&first) {
            // A high surrogate pairs only with an immediately following `\u` low surrogate.
            let save = self.i;
            let low = if self.s.get(self.i..self.i + 2) == Some(b"\\u".as_slice()) {
                self.i += 2;
                Some(self.hex4()?)
            } else {
                None
            };
            match low {
                Some(low) if (0xdc00..0xe000).contains(&low) => {
                    char::from_u32(0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00))
                }
                _ => {
                    // Not a pair: the second escape is decoded on its own.
                    self.i = save;
                    None
                }
            }
        } else {
            char::from_u32(first)
        };
        let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        Ok(())
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let rest = self.s.get(self.i..).unwrap_or_default();
            let run = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            out.extend_from_slice(rest.get(..run).unwrap_or_default());
            self.i += run;
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(go_string(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return Err(EOF_MSG.to_owned());
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => self.unicode_escape(&mut out)?,
                        c => return Err(invalid(c, "in string escape code")),
                    }
                }
                Some(c) => return Err(invalid(c, "in string literal")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<GVal, String> {
        if depth > MAX_DEPTH {
            return Err("exceeded max depth".to_owned());
        }
        self.i += 1;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(GVal::Obj(fields));
        }
        loop {
            self.skip_ws();
            let key = match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b'"') => self.string()?,
                Some(c) => return Err(invalid(c, "looking for beginning of object key string")),
            };
            self.skip_ws();
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b':') => self.i += 1,
                Some(c) => return Err(invalid(c, "after object key")),
            }
            let v = self.value(depth)?;
            fields.push((key, v));
            self.skip_ws();
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(GVal::Obj(fields));
                }
                Some(c) => return Err(invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<GVal, String> {
        if depth > MAX_DEPTH {
            return Err("exceeded max depth".to_owned());
        }
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(GVal::Arr(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                None => return Err(EOF_MSG.to_owned()),
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(GVal::Arr(items));
                }
                Some(c) => return Err(invalid(c, "after array element")),
            }
        }
    }
}

/// Go's string conversion: every byte that does not start a valid UTF-8 sequence becomes U+FFFD.
fn go_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            let mut out = String::with_capacity(bytes.len() + 8);
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        out.push_str(s);
                        break;
                    }
                    Err(e) => {
                        let (valid, after) = rest.split_at(e.valid_up_to());
                        out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = after.get(1..).unwrap_or_default();
                    }
                }
            }
            out
        }
    }
}

/// Parses one JSON document (surrounding whitespace allowed) with Go's syntax error messages.
pub(crate) fn parse(input: &[u8]) -> Result<GVal, String> {
    let mut p = Parser { s: input, i: 0 };
    let v = p.value(0)?;
    p.skip_ws();
    match p.peek() {
        None => Ok(v),
        Some(c) => Err(invalid(c, "after top-level value")),
    }
}

// ---------------------------------------------------------------------------------------------------
// types

/// Where in the Go value the decoder is, for error messages.
struct Ctx {
    strukt: Option<&'static str>,
    path: Vec<&'static str>,
}

impl Ctx {
    fn error(&self, what: &str, ty: &Ty) -> String {
        match self.strukt {
            Some(name) => format!(
                "json: cannot unmarshal {what} into Go struct field {name}.{} of type {}",
                self.path.join("."),
                type_name(ty)
            ),
            None => format!(
                "json: cannot unmarshal {what} into Go value of type {}",
                type_name(ty)
            ),
        }
    }
}

/// The integer a literal denotes, if it is an integer literal (no fraction, no exponent) in range.
pub(crate) fn parse_int(lit: &str) -> Option<i64> {
    lit.parse::<i64>().ok()
}

fn fits_float(lit: &str) -> bool {
    lit.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Checks that `v` decodes into `ty` under Go's rules; the error is Go's message.
pub(crate) fn check(v: &GVal, ty: &'static Ty) -> Result<(), String> {
    let mut ctx = Ctx {
        strukt: None,
        path: Vec::new(),
    };
    check_in(v, ty, &mut ctx)
}

fn check_in(v: &GVal, ty: &'static Ty, ctx: &mut Ctx) -> Result<(), String> {
    match (v, ty) {
        (GVal::Null, _) => Ok(()),
        (_, Ty::Any) => check_any(v, ctx),
        (GVal::Bool(_), _) => Err(ctx.error("bool", ty)),
        (GVal::Str(_), Ty::Str(_)) => Ok(()),
        (GVal::Str(_), _) => Err(ctx.error("string", ty)),
        (GVal::Num(n), Ty::Int(_)) => match parse_int(n) {
            Some(_) => Ok(()),
            None => Err(ctx.error(&format!("number {n}"), ty)),
        },
        (GVal::Num(n), Ty::U8) => match n.parse::<u8>() {
            Ok(_) if !n.starts_with('+') => Ok(()),
            _ => Err(ctx.error(&format!("number {n}"), ty)),
        },
        (GVal::Num(_), _) => Err(ctx.error("number", ty)),
        (GVal::Arr(items), Ty::Slice(el)) => items.iter().try_for_each(|i| check_in(i, el, ctx)),
        (GVal::Arr(_), _) => Err(ctx.error("array", ty)),
        (GVal::Obj(fields), Ty::Map(el)) => {
            fields.iter().try_for_each(|(_, v)| check_in(v, el, ctx))
        }
        (GVal::Obj(fields), Ty::Struct(st)) => {
            for (key, value) in fields {
                let Some((name, fty)) = st.field(key) else {
                    continue;
                };
                let saved = ctx.strukt.replace(st.name);
                ctx.path.push(name);
                let r = check_in(value, fty, ctx);
                ctx.path.pop();
                ctx.strukt = saved;
                r?;
            }
            Ok(())
        }
        (GVal::Obj(_), _) => Err(ctx.error("object", ty)),
    }
}

/// Into `interface {}` everything fits, except numbers beyond `float64`.
fn check_any(v: &GVal, ctx: &mut Ctx) -> Result<(), String> {
    static FLOAT64: Ty = Ty::Str("float64");
    match v {
        GVal::Num(n) if !fits_float(n) => Err(ctx.error(&format!("number {n}"), &FLOAT64)),
        GVal::Arr(items) => items.iter().try_for_each(|i| check_any(i, ctx)),
        GVal::Obj(fields) => fields.iter().try_for_each(|(_, v)| check_any(v, ctx)),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------------
// reading checked values

/// Converts to a `serde_json::Value` (objects: last duplicate wins, as in a Go map). Numbers that
/// serde_json cannot hold become `null` (only reachable for fields Go skips without decoding).
pub(crate) fn to_value(v: &GVal) -> Value {
    match v {
        GVal::Null => Value::Null,
        GVal::Bool(b) => Value::Bool(*b),
        GVal::Num(n) => n.parse::<Number>().map_or(Value::Null, Value::Number),
        GVal::Str(s) => Value::String(s.clone()),
        GVal::Arr(items) => Value::Array(items.iter().map(to_value).collect()),
        GVal::Obj(fields) => Value::Object(to_map(fields)),
    }
}

/// An object's fields as a map, merged into `into` (Go reuses a non-nil map).
pub(crate) fn merge_map(into: &mut Map<String, Value>, fields: &[(String, GVal)]) {
    for (k, v) in fields {
        into.insert(k.clone(), to_value(v));
    }
}

fn to_map(fields: &[(String, GVal)]) -> Map<String, Value> {
    let mut m = Map::new();
    merge_map(&mut m, fields);
    m
}

/// Assigns a checked string field: `null` leaves it unchanged.
pub(crate) fn set_string(slot: &mut String, v: &GVal) {
    if let GVal::Str(s) = v {
        slot.clone_from(s);
    }
}

/// Assigns a checked optional string field: `null` leaves it unchanged.
pub(crate) fn set_opt_string(slot: &mut Option<String>, v: &GVal) {
    if let GVal::Str(s) = v {
        *slot = Some(s.clone());
    }
}

/// Assigns a checked integer field: `null` leaves it unchanged.
pub(crate) fn set_int(slot: &mut Option<i64>, v: &GVal) {
    if let GVal::Num(n) = v {
        if let Some(n) = parse_int(n) {
            *slot = Some(n);
        }
    }
}

/// Reads a checked `[]string`: `null` is `None`.
pub(crate) fn strings(v: &GVal) -> Option<Vec<String>> {
    match v {
        GVal::Arr(items) => Some(
            items
                .iter()
                .map(|i| match i {
                    GVal::Str(s) => s.clone(),
                    _ => String::new(),
                })
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn syntax_errors_read_like_go() {
        assert_eq!(
            err("{not json}"),
            "invalid character 'n' looking for beginning of object key string"
        );
        assert_eq!(err(""), "unexpected end of JSON input");
        assert_eq!(err("   "), "unexpected end of JSON input");
        assert_eq!(
            err("{\"a\":1} trailing"),
            "invalid character 't' after top-level value"
        );
        assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            err("{\"a\":1 \"b\"}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            err("{\"a\":1,}"),
            "invalid character '}' looking for beginning of object key string"
        );
        assert_eq!(
            err("[1,]"),
            "invalid character ']' looking for beginning of value"
        );
        assert_eq!(err("[1 2]"), "invalid character '2' after array element");
        assert_eq!(err("[-x]"), "invalid character 'x' in numeric literal");
        assert_eq!(
            err("1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
        assert_eq!(
            err("1ex"),
            "invalid character 'x' in exponent of numeric literal"
        );
        assert_eq!(err("01"), "invalid character '1' after top-level value");
        assert_eq!(
            err("tru "),
            "invalid character ' ' in literal true (expecting 'e')"
        );
        assert_eq!(err("nul"), "unexpected end of JSON input");
        assert_eq!(err("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(
            err("\"\\x\""),
            "invalid character 'x' in string escape code"
        );
        assert_eq!(
            err("\"\\u12g4\""),
            "invalid character 'g' in \\u hexadecimal character escape"
        );
        assert_eq!(
            err("'a'"),
            "invalid character '\\'' looking for beginning of value"
        );
        assert_eq!(
            err("\u{1}"),
            "invalid character '\\x01' looking for beginning of value"
        );
        assert_eq!(
            parse(b"\xc3").unwrap_err(),
            "invalid character '\u{c3}' looking for beginning of value"
        );
        assert_eq!(
            parse(b"\xa0").unwrap_err(),
            "invalid character '\\u00a0' looking for beginning of value"
        );
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&deep), "exceeded max depth");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn strings_decode_like_go() {
        let v = parse(b"[\"\\u00e9\xc3\xa9\", \"\xff\xfe\", \"\\ud83d\\ude00\", \"\\ud800x\", \"\\ud800\\u0041\", \"\xe2\x82A\"]")
            .unwrap();
        assert_eq!(
            v,
            GVal::Arr(vec![
                GVal::Str("éé".into()),
                GVal::Str("\u{fffd}\u{fffd}".into()),
                GVal::Str("😀".into()),
                GVal::Str("\u{fffd}x".into()),
                GVal::Str("\u{fffd}A".into()),
                GVal::Str("\u{fffd}\u{fffd}A".into()),
            ])
        );
    }

    static FAILURE: StructTy = StructTy {
        name: "Failure",
        qualified: "client.Failure",
        fields: &[
            ("retry_count", Ty::Int("int")),
            ("backtrace", Ty::Slice(&Ty::Str("string"))),
        ],
    };
    static JOB: StructTy = StructTy {
        name: "Job",
        qualified: "client.Job",
        fields: &[
            ("jid", Ty::Str("string")),
            ("args", Ty::Slice(&Ty::Any)),
            ("retry", Ty::Int("int")),
            ("failure", Ty::Struct(&FAILURE)),
        ],
    };
    static JOB_TY: Ty = Ty::Struct(&JOB);
    static JOBS_TY: Ty = Ty::Slice(&JOB_TY);

    fn type_err(ty: &'static Ty, s: &str) -> String {
        check(&parse(s.as_bytes()).unwrap(), ty).unwrap_err()
    }

    #[test]
    fn type_errors_read_like_go() {
        assert_eq!(
            type_err(&JOB_TY, r#"{"args":"str"}"#),
            "json: cannot unmarshal string into Go struct field Job.args of type []interface {}"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"{"jid":1,"args":{}}"#),
            "json: cannot unmarshal number into Go struct field Job.jid of type string"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"{"RETRY":1800.0}"#),
            "json: cannot unmarshal number 1800.0 into Go struct field Job.retry of type int"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"[1]"#),
            "json: cannot unmarshal array into Go value of type client.Job"
        );
        assert_eq!(
            type_err(&JOBS_TY, r#"{}"#),
            "json: cannot unmarshal object into Go value of type []client.Job"
        );
        assert_eq!(
            type_err(&JOBS_TY, r#"[{"failure":{"retry_count":"x"}}]"#),
            "json: cannot unmarshal string into Go struct field Failure.failure.retry_count of type int"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"{"failure":{"backtrace":[1]}}"#),
            "json: cannot unmarshal number into Go struct field Failure.failure.backtrace of type string"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"{"args":[1e400]}"#),
            "json: cannot unmarshal number 1e400 into Go struct field Job.args of type float64"
        );
        assert_eq!(
            type_err(&JOB_TY, r#"{"retry":true}"#),
            "json: cannot unmarshal bool into Go struct field Job.retry of type int"
        );
        assert!(
            check(
                &parse(br#"{"jid":null,"retry":-0,"zzz":1e400,"args":null}"#).unwrap(),
                &JOB_TY
            )
            .is_ok()
        );
        static V: Ty = Ty::U8;
        assert!(check(&parse(b"255").unwrap(), &V).is_ok());
        assert_eq!(
            type_err(&V, "256"),
            "json: cannot unmarshal number 256 into Go value of type uint8"
        );
        assert_eq!(
            type_err(&V, "-1"),
            "json: cannot unmarshal number -1 into Go value of type uint8"
        );
    }
}
