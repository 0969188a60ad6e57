//! PHP's JSON, byte for byte, for the voice dialect's frame signature.
//!
//! A voice frame's `sign` is the lowercase hex md5 of exactly what PHP (≥ 7.1) writes with
//! `json_encode($frame, JSON_UNESCAPED_UNICODE)` for the frame decoded by
//! `json_decode($text, true)`, without `sign`, its top-level keys sorted (`ksort`). Matching
//! that needs PHP's model of the data, not JSON's:
//! - a JSON object decodes into a PHP array: keys that are canonical integers (`"5"`, `"-3"`,
//!   not `"05"` or `"-0"`) become integer keys, a repeated key keeps its first position and
//!   its last value, and an array whose keys are exactly `0, 1, …` in order encodes as a JSON
//!   list — so `{}` encodes as `[]` and `{"0":1,"1":2}` as `[1,2]`;
//! - an integer literal outside the 64-bit range decodes as a float;
//! - strings escape `/` as `\/`, U+2028 and U+2029 as `\u2028`/`\u2029`, control characters
//!   as `\b \f \n \r \t` or `\u00xx` (lowercase hex), and leave every other character raw;
//! - floats are the shortest text that reads back the same, in PHP's layout: `1` for `1.0`,
//!   `0.0001`, `1.0e-5`, `1.0e+17`, `-0` for negative zero.
//!
//! Both the driver (signing what it sends) and the reference server (checking what it gets)
//! use this crate; the tests hold it to PHP itself.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use md5::{Digest, Md5};

/// A PHP array key.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Int(i64),
    Str(String),
}

/// A value as `json_decode(…, true)` gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum PhpValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// An ordered map: JSON lists (keys 0..n) and objects alike.
    Array(Vec<(Key, PhpValue)>),
}

/// Why a text is not a JSON document PHP would decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not JSON at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// PHP's default `json_decode` depth.
const MAX_DEPTH: usize = 512;

impl Key {
    /// The key PHP makes of an object member's name (`ZEND_HANDLE_NUMERIC_STR`).
    pub fn from_name(name: &str) -> Key {
        match canonical_int(name) {
            Some(i) => Key::Int(i),
            None => Key::Str(name.to_owned()),
        }
    }
}

/// `name` as an integer if PHP would use it as an integer array key.
fn canonical_int(name: &str) -> Option<i64> {
    let digits = name.strip_prefix('-').unwrap_or(name);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && name != "-0";
    if canonical {
        name.parse().ok()
    } else {
        None
    }
}

/// Inserts like a PHP array assignment: a present key keeps its place and takes the value.
fn php_insert(entries: &mut Vec<(Key, PhpValue)>, key: Key, value: PhpValue) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key, value)),
    }
}

impl PhpValue {
    /// The top-level entry under `name`, for a decoded object.
    pub fn get(&self, name: &str) -> Option<&PhpValue> {
        let key = Key::from_name(name);
        match self {
            PhpValue::Array(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value PHP decodes from the JSON text serde_json writes for `v`.
    pub fn from_json(v: &serde_json::Value) -> PhpValue {
        use serde_json::Value as J;
        match v {
            J::Null => PhpValue::Null,
            J::Bool(b) => PhpValue::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => PhpValue::Int(i),
                None => PhpValue::Float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => PhpValue::Str(s.clone()),
            J::Array(items) => PhpValue::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Key::Int(i as i64), PhpValue::from_json(v)))
                    .collect(),
            ),
            J::Object(fields) => {
                let mut entries = Vec::with_capacity(fields.len());
                for (k, v) in fields {
                    php_insert(&mut entries, Key::from_name(k), PhpValue::from_json(v));
                }
                PhpValue::Array(entries)
            }
        }
    }
}

/// `json_decode($text, true)`.
pub fn decode(text: &str) -> Result<PhpValue, DecodeError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            offset: self.i,
            reason,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PhpValue, DecodeError> {
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                self.i += 1;
                let mut entries = Vec::new();
                self.ws();
                if self.eat(b"}") {
                    return Ok(PhpValue::Array(entries));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a member name"));
                    }
                    let name = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return Err(self.err("expected `:`"));
                    }
                    self.ws();
                    let v = self.value(depth + 1)?;
                    php_insert(&mut entries, Key::from_name(&name), v);
                    self.ws();
                    if self.eat(b"}") {
                        return Ok(PhpValue::Array(entries));
                    }
                    if !self.eat(b",") {
                        return Err(self.err("expected `,` or `}`"));
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                self.i += 1;
                let mut entries = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Ok(PhpValue::Array(entries));
                }
                loop {
                    self.ws();
                    let v = self.value(depth + 1)?;
                    entries.push((Key::Int(entries.len() as i64), v));
                    self.ws();
                    if self.eat(b"]") {
                        return Ok(PhpValue::Array(entries));
                    }
                    if !self.eat(b",") {
                        return Err(self.err("expected `,` or `]`"));
                    }
                }
            }
            Some(b'"') => Ok(PhpValue::Str(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(PhpValue::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(PhpValue::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(PhpValue::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<PhpValue, DecodeError> {
        let start = self.i;
        self.eat(b"-");
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err("expected a digit")),
        }
        let mut float = false;
        if self.eat(b".") {
            float = true;
            if digits(self) == 0 {
                return Err(self.err("expected a digit after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            float = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("expected an exponent"));
            }
        }
        // ASCII only: the slice is valid UTF-8.
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("0");
        if !float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(PhpValue::Int(i));
            }
        }
        // Out of range reads as INF, as in PHP (json_encode then refuses the value).
        text.parse::<f64>()
            .map(PhpValue::Float)
            .map_err(|_| self.err("bad number"))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let hex = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let text = std::str::from_utf8(hex).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("bad \\u escape"));
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.i += 1; // the opening quote
        let mut out = String::new();
        loop {
            let run = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // Runs end at ASCII bytes, so they are whole UTF-8 sequences.
            out.push_str(std::str::from_utf8(&self.s[run..self.i]).unwrap_or_default());
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.s.get(self.i).ok_or_else(|| self.err("bad escape"))?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("unpaired surrogate"));
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or_else(|| self.err("bad code"))?);
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }
}

/// `json_encode($v, JSON_UNESCAPED_UNICODE)`; `None` where PHP returns false (INF or NaN
/// inside).
pub fn encode(v: &PhpValue) -> Option<String> {
    let mut out = String::new();
    write_value(&mut out, v);
    (!has_non_finite(v)).then_some(out)
}

fn has_non_finite(v: &PhpValue) -> bool {
    match v {
        PhpValue::Float(f) => !f.is_finite(),
        PhpValue::Array(entries) => entries.iter().any(|(_, v)| has_non_finite(v)),
        _ => false,
    }
}

fn write_value(out: &mut String, v: &PhpValue) {
    match v {
        PhpValue::Null => out.push_str("null"),
        PhpValue::Bool(true) => out.push_str("true"),
        PhpValue::Bool(false) => out.push_str("false"),
        PhpValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        PhpValue::Float(f) => out.push_str(&php_float(*f)),
        PhpValue::Str(s) => write_str(out, s),
        PhpValue::Array(entries) => {
            let is_list = entries
                .iter()
                .enumerate()
                .all(|(i, (k, _))| *k == Key::Int(i as i64));
            if is_list {
                out.push('[');
                for (i, (_, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(out, v);
                }
                out.push(']');
            } else {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Key::Int(n) => {
                            let _ = write!(out, "\"{n}\"");
                        }
                        Key::Str(s) => write_str(out, s),
                    }
                    out.push(':');
                    write_value(out, v);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as PHP writes it with `serialize_precision = -1`: the shortest digits that read
/// back the same, fixed notation for decimal exponents -4..=16, else `d.ddde±x`.
pub fn php_float(f: f64) -> String {
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e-5".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if let Some(even) = even_tie(f.abs(), &digits, exp) {
        digits = even;
    }
    // Where the decimal point goes: value = 0.DIGITS × 10^decpt.
    let decpt = exp + 1;
    if !(-3..=17).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let e_sign = if decpt - 1 < 0 { '-' } else { '+' };
        format!("{sign}{first}.{rest}e{e_sign}{}", (decpt - 1).abs())
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else {
        let point = decpt as usize;
        if digits.len() <= point {
            format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        }
    }
}

/// PHP's dtoa breaks a tie between two shortest digit strings (the double lies exactly
/// half-way) towards the even last digit; Rust's formatter rounds the tie up. Returns the even
/// string when `digits` (exponent `exp`) is the odd side of such a tie.
fn even_tie(f: f64, digits: &str, exp: i32) -> Option<String> {
    let last = digits.bytes().last()? - b'0';
    if last % 2 == 0 || digits == "1" {
        return None;
    }
    let mut lower = digits.as_bytes().to_vec();
    *lower.last_mut()? -= 1;
    // The exact value (a double has at most ~770 significant decimal digits).
    let exact = format!("{f:.800e}");
    let (mantissa, exact_exp) = exact.split_once('e')?;
    if exact_exp.parse::<i32>().ok()? != exp {
        return None;
    }
    let exact_digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let midpoint = format!("{}5", String::from_utf8(lower.clone()).ok()?);
    (exact_digits.trim_end_matches('0') == midpoint).then(|| String::from_utf8(lower).ok())?
}

/// PHP 8's `ksort` order of two keys (`SORT_REGULAR`).
fn php_key_order(a: &Key, b: &Key) -> Ordering {
    fn numeric(s: &str) -> Option<f64> {
        let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']);
        let t = t.trim_end_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']);
        let body = t.strip_prefix(['+', '-']).unwrap_or(t);
        let ok = body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && body
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
        if ok {
            t.parse().ok()
        } else {
            None
        }
    }
    match (a, b) {
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Str(x), Key::Str(y)) => match (numeric(x), numeric(y)) {
            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            _ => x.as_bytes().cmp(y.as_bytes()),
        },
        (Key::Int(x), Key::Str(y)) => match numeric(y) {
            Some(q) => (*x as f64).partial_cmp(&q).unwrap_or(Ordering::Equal),
            None => x.to_string().as_bytes().cmp(y.as_bytes()),
        },
        (Key::Str(_), Key::Int(_)) => php_key_order(b, a).reverse(),
    }
}

/// The text the signature is the md5 of: `json_encode` of the frame without `sign_field`, its
/// top-level keys sorted. `None` when the frame is not an object (a PHP array) or PHP could
/// not encode it.
pub fn signed_text(frame: &PhpValue, sign_field: &str) -> Option<String> {
    let PhpValue::Array(entries) = frame else {
        return None;
    };
    let skip = Key::from_name(sign_field);
    let mut entries: Vec<(Key, PhpValue)> = entries
        .iter()
        .filter(|(k, _)| *k != skip)
        .cloned()
        .collect();
    entries.sort_by(|(a, _), (b, _)| php_key_order(a, b));
    encode(&PhpValue::Array(entries))
}

/// Lowercase hex md5 of `text`.
pub fn md5_hex(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The signature of a frame: md5 of [`signed_text`].
pub fn sign(frame: &PhpValue, sign_field: &str) -> Option<String> {
    signed_text(frame, sign_field).map(|t| md5_hex(&t))
}

/// The signature of an outgoing frame's fields (as serde_json will write them).
pub fn sign_json(fields: &serde_json::Map<String, serde_json::Value>, sign_field: &str) -> String {
    let frame = PhpValue::from_json(&serde_json::Value::Object(fields.clone()));
    sign(&frame, sign_field).unwrap_or_default()
}

/// Whether a received frame's text carries the right signature in `sign_field`.
pub fn verify_text(text: &str, sign_field: &str) -> Result<bool, DecodeError> {
    let frame = decode(text)?;
    let Some(PhpValue::Str(given)) = frame.get(sign_field) else {
        return Ok(false);
    };
    Ok(sign(&frame, sign_field).as_deref() == Some(given.as_str()))
}

#[cfg(test)]
mod tests;
