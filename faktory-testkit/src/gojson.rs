//! JSON written the way Go's `encoding/json` writes it (docs/protocol.md#json-round-trip):
//! HTML-escaped strings, every number as a `float64` in Go's shortest round-trip form, map keys
//! sorted.
//!
//! The real server decodes `args` and `custom` into `interface{}` values, so every number there becomes
//! a `float64`: `9007199254740993` comes back as `9007199254740992`, `1.0` as `1`, `1.5e300` as
//! `1.5e+300` and `-0` as `-0`.

use serde_json::Value;

/// Appends `s` as a JSON string literal, escaped like Go with HTML escaping on.
pub(crate) fn write_str(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    // Copy runs of bytes that need no escape in one go.
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (escape, len): (Option<std::borrow::Cow<'static, str>>, usize) = match b {
            b'"' => (Some("\\\"".into()), 1),
            b'\\' => (Some("\\\\".into()), 1),
            0x08 => (Some("\\b".into()), 1),
            0x0c => (Some("\\f".into()), 1),
            b'\n' => (Some("\\n".into()), 1),
            b'\r' => (Some("\\r".into()), 1),
            b'\t' => (Some("\\t".into()), 1),
            b'<' | b'>' | b'&' | 0x00..=0x1f => (Some(format!("\\u{b:04x}").into()), 1),
            // U+2028 and U+2029 (E2 80 A8 / E2 80 A9).
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                let last = bytes.get(i + 2).copied().unwrap_or(0xa8);
                (
                    Some(if last == 0xa8 { "\\u2028" } else { "\\u2029" }.into()),
                    3,
                )
            }
            _ => (None, 1),
        };
        if let Some(e) = escape {
            out.push_str(s.get(run..i).unwrap_or_default());
            out.push_str(&e);
            run = i + len;
        }
        i += len;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// A `float64` formatted as Go's `encoding/json` does: `'f'` format for `1e-6 <= |f| < 1e21` (and 0),
/// `'e'` format otherwise, shortest digits that round-trip, exponent with a sign and no leading zero.
pub(crate) fn format_f64(f: f64) -> String {
    if !f.is_finite() {
        // Go refuses to encode these; the server never has them (JSON cannot express them).
        return "null".to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                // Go writes at least two exponent digits, then trims "e-0N" to "e-N".
                let digits = if digits.len() < 2 && sign == '+' {
                    format!("0{digits}")
                } else {
                    digits.to_owned()
                };
                format!("{mantissa}e{sign}{digits}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

/// Appends a JSON number as Go's `float64` would print it.
fn write_number(out: &mut String, n: &serde_json::Number) {
    let f = n.as_f64().unwrap_or(0.0);
    out.push_str(&format_f64(f));
}

/// Appends a JSON value as Go re-encodes an `interface{}`: numbers as `float64`, keys sorted.
pub(crate) fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_map(out, map.iter()),
    }
}

/// Appends a JSON object with its keys sorted by bytes, like a Go map.
pub(crate) fn write_map<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) {
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

/// A small writer for Go structs: fields in declaration order.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }
    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }
    pub(crate) fn str(&mut self, k: &str, v: &str) {
        let out = self.key(k);
        write_str(out, v);
    }
    pub(crate) fn int(&mut self, k: &str, v: i64) {
        let out = self.key(k);
        out.push_str(&v.to_string());
    }
    pub(crate) fn float(&mut self, k: &str, v: f64) {
        let out = self.key(k);
        out.push_str(&format_f64(v));
    }
    pub(crate) fn raw(&mut self, k: &str, raw_json: &str) {
        let out = self.key(k);
        out.push_str(raw_json);
    }
    pub(crate) fn value(&mut self, k: &str, v: &Value) {
        let out = self.key(k);
        write_value(out, v);
    }
    pub(crate) fn finish(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> String {
        let mut s = String::new();
        write_value(&mut s, v);
        s
    }

    #[test]
    fn numbers_become_go_float64() {
        let v: Value =
            serde_json::from_str("[9007199254740993,12345678901234567890,1.0,1.5e300,-0,0.000468158,1e21,1e-7,123456789e-20,0,2.5]")
                .unwrap();
        assert_eq!(
            enc(&v),
            "[9007199254740992,12345678901234567000,1,1.5e+300,-0,0.000468158,1e+21,1e-7,1.23456789e-12,0,2.5]"
        );
        assert_eq!(format_f64(1e20), "100000000000000000000");
        assert_eq!(format_f64(0.000001), "0.000001");
        assert_eq!(format_f64(-1e-10), "-1e-10");
        assert_eq!(format_f64(1e100), "1e+100");
    }

    #[test]
    fn strings_are_html_escaped_like_go() {
        let v = Value::String("<a&b>\"\\\n\r\t\u{8}\u{c}\u{1}\u{2028}\u{2029}é\u{fffd}".into());
        assert_eq!(
            enc(&v),
            "\"\\u003ca\\u0026b\\u003e\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u2028\\u2029é\u{fffd}\""
        );
    }

    #[test]
    fn maps_are_sorted_by_key_bytes() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":null,"y":[true,false]},"B":"x"}"#).unwrap();
        assert_eq!(
            enc(&v),
            r#"{"B":"x","a":{"y":[true,false],"z":null},"b":1}"#
        );
    }
}
