//! JSON values ⇄ Avro binary datums of the compiled schema (the conversion's hot path).
//!
//! `message_to_avro` scans the JSON bytes once, straight into the datum (no value tree), refusing on the
//! way everything `avro_to_message` would not write the same way (whitespace, a property out of
//! the schema's order, an unknown or repeated key, an escape Jackson does not write, a number not
//! in its writer's form, a date-time with another fraction): it checks the canonical form inline
//! ([`Transcoder::checks_canonical`]). `avro_to_message` writes the canonical text (see the module
//! doc of [`crate::json`]).

use std::sync::Arc;

use super::MAX_DEPTH;
use crate::decode::Fallback;
use crate::transcode::Transcoder;

/// A non-null type of a schema.
#[derive(Debug)]
pub(crate) enum Ty {
    Bool,
    Long,
    Double,
    /// A string, or one of these symbols (`enum`).
    Str(Option<Arc<Vec<String>>>),
    Uuid,
    DateTime,
    Date,
    /// Any JSON value, kept as its text.
    Json,
    Array(Box<Slot>),
    Map(Box<Slot>),
    Record(Box<Record>),
}

/// A place for a value: whether it may be null, and its non-null branches (at most one per JSON
/// kind). Avro: `"null"`, `T`, or the union `["null"?, branches…]`.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) null: bool,
    pub(crate) branches: Vec<Ty>,
}

impl Slot {
    fn union(&self) -> bool {
        usize::from(self.null) + self.branches.len() > 1
    }
    fn offset(&self) -> usize {
        usize::from(self.null)
    }
}

#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) props: Vec<Prop>,
    /// The Avro field names, by property.
    pub(crate) names: Vec<String>,
    /// Makes the record's Avro name unique.
    pub(crate) id: usize,
}

/// A property: Avro `["null", branches…]` (or `"null"`).
#[derive(Debug)]
pub(crate) struct Prop {
    /// The key as Jackson writes it (escaped, without quotes).
    pub(crate) key: Box<[u8]>,
    /// Whether a null column value is an explicit `null` (else: the property is absent).
    pub(crate) explicit_null: bool,
    /// `null` is always true here.
    pub(crate) slot: Slot,
}

/// The transcoder of a compiled JSON Schema.
#[derive(Debug)]
pub(crate) struct JsonTranscoder {
    root: Slot,
}

impl JsonTranscoder {
    pub(crate) fn new(root: Slot) -> Self {
        JsonTranscoder { root }
    }
}

impl Transcoder for JsonTranscoder {
    fn format(&self) -> &'static str {
        "json"
    }

    fn checks_canonical(&self) -> bool {
        true
    }

    fn message_to_avro(&self, payload: &[u8], avro: &mut Vec<u8>) -> Result<(), Fallback> {
        let mut s = Scan { b: payload, i: 0 };
        s.slot(&self.root, self.root.null, avro)?;
        if s.i != payload.len() {
            return Err(s.unexpected("the end of the value"));
        }
        Ok(())
    }

    fn avro_to_message(&self, avro: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut r = Rd { b: avro, i: 0 };
        if r.slot(&self.root, out)? {
            out.extend_from_slice(b"null");
        }
        if r.i != avro.len() {
            return Err(format!("{} bytes after the Avro datum", avro.len() - r.i));
        }
        Ok(())
    }
}

fn fallback(reason: String) -> Fallback {
    Fallback::Transcode { format: "json", reason }
}

/// Appends a zig-zag varint (Avro `int` and `long`).
fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends Avro bytes/string: the length, then `b`.
fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// The bytes of a string's content the canonical scan stops at (`STOP`): the quote, the
/// backslash, control characters, and the lead bytes of 4-byte UTF-8 sequences (Jackson escapes
/// those); other non-ASCII bytes are `WIDE` (the content needs a UTF-8 check), ASCII `0`.
static SPECIAL: [u8; 256] = {
    let mut t = [0; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = if c < 0x20 || c == b'"' as usize || c == b'\\' as usize || c >= 0xF0 {
            STOP
        } else if c >= 0x80 {
            WIDE
        } else {
            0
        };
        c += 1;
    }
    t
};
const STOP: u8 = 2;
const WIDE: u8 = 1;

/// Writes the varint of `n` (already zig-zagged) into `buf`; returns its length.
fn varint(mut n: u64, buf: &mut [u8; 10]) -> usize {
    let mut k = 0;
    while n >= 0x80 {
        buf[k] = (n as u8) | 0x80;
        n >>= 7;
        k += 1;
    }
    buf[k] = n as u8;
    k + 1
}

/// The raw bytes of a JSON string whose content starts at `start` (after the quote): the
/// content, whether it has escapes, and the position after the closing quote. Errors give a
/// position and what.
pub(crate) fn string_span(b: &[u8], start: usize) -> Result<(&[u8], bool, usize), (usize, &'static str)> {
    let mut i = start;
    let mut escaped = false;
    loop {
        match b.get(i) {
            None => return Err((i.min(b.len()), "unterminated string")),
            Some(b'"') => return Ok((&b[start..i], escaped, i + 1)),
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(&c) if c < 0x20 => return Err((i, "control character in a string")),
            Some(_) => i += 1,
        }
    }
}

fn hex4(h: Option<&[u8]>) -> Result<u32, &'static str> {
    let h = h.ok_or("truncated \\u escape")?;
    let mut v = 0;
    for &c in h {
        let d = (c as char).to_digit(16).ok_or("bad \\u escape")?;
        v = v * 16 + d;
    }
    Ok(v)
}

/// Appends the unescaped bytes of a string's content (any valid JSON escape).
pub(crate) fn unescape(span: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut i = 0;
    while i < span.len() {
        if span[i] != b'\\' {
            let end = span[i..].iter().position(|&c| c == b'\\').map_or(span.len(), |p| i + p);
            out.extend_from_slice(&span[i..end]);
            i = end;
            continue;
        }
        let e = *span.get(i + 1).ok_or("bad escape")?;
        i += 2;
        let c = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(span.get(i..i + 4))?;
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if span.get(i..i + 2) != Some(b"\\u") {
                        return Err("lone surrogate");
                    }
                    let lo = hex4(span.get(i + 2..i + 6))?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("lone surrogate");
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let ch = char::from_u32(cp).ok_or("lone surrogate")?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            _ => return Err("bad escape"),
        };
        out.push(c);
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` escaped as Jackson does (without quotes): a character outside the Basic
/// Multilingual Plane (a 4-byte UTF-8 sequence: emoji, …) as its UTF-16 surrogate pair
/// `\uD83D\uDE00`, as Jackson's UTF-8 generator writes it by default.
pub(crate) fn escape(s: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    let mut skip = 0;
    for (i, &c) in s.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if c >= 0xF0 {
            let Some(ch) = s.get(i..i + 4).and_then(|b| std::str::from_utf8(b).ok()).and_then(|t| t.chars().next()) else {
                continue;
            };
            out.extend_from_slice(&s[start..i]);
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                let u = usize::from(*u);
                out.extend_from_slice(&[b'\\', b'u', HEX[u >> 12], HEX[(u >> 8) & 15], HEX[(u >> 4) & 15], HEX[u & 15]]);
            }
            skip = 3;
            start = i + 4;
            continue;
        }
        let short: u8 = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            8 => b'b',
            12 => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if short == 0 {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// The JSON scanner of `message_to_avro`.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn err(&self, at: usize, what: &str) -> Fallback {
        fallback(format!("{what} at byte {at}"))
    }

    fn unexpected(&self, expected: &str) -> Fallback {
        match self.b.get(self.i) {
            None => self.err(self.i, &format!("value ends early, expected {expected}")),
            Some(b' ' | b'\t' | b'\n' | b'\r') => self.err(self.i, "whitespace (only compact JSON goes to columns)"),
            Some(_) => self.err(self.i, &format!("expected {expected}")),
        }
    }

    fn expect(&mut self, c: u8, expected: &str) -> Result<(), Fallback> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn lit(&mut self, word: &[u8]) -> Result<(), Fallback> {
        if self.b[self.i.min(self.b.len())..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.unexpected("true, false or null"))
        }
    }

    /// A string's raw content (after the opening quote, which is checked here).
    fn raw_string(&mut self) -> Result<(&'a [u8], bool), Fallback> {
        self.expect(b'"', "a string")?;
        let (span, escaped, end) = string_span(self.b, self.i).map_err(|(at, what)| self.err(at, what))?;
        self.i = end;
        Ok((span, escaped))
    }

    /// A string in Jackson's canonical escaping (see [`escape`]), as an Avro string; returns
    /// where its bytes start in `out`. One pass: the content is copied as it is checked, the
    /// length (a placeholder byte) set at the end.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<usize, Fallback> {
        let at = self.i;
        self.expect(b'"', "a string")?;
        let b = self.b;
        let mut i = self.i;
        let len_at = out.len();
        out.push(0);
        let mut wide = 0;
        loop {
            let chunk = i;
            while let Some(&c) = b.get(i) {
                let k = SPECIAL[usize::from(c)];
                if k == STOP {
                    break;
                }
                wide |= k;
                i += 1;
            }
            out.extend_from_slice(&b[chunk..i]);
            match b.get(i) {
                None => return Err(self.err(i, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => i = self.escape_at(i, out)?,
                Some(&c) if c < 0x20 => return Err(self.err(i, "control character in a string")),
                Some(_) => return Err(self.err(i, "a character outside the Basic Multilingual Plane as raw UTF-8 (Jackson escapes it)")),
            }
        }
        self.i = i + 1;
        let n = out.len() - len_at - 1;
        if wide != 0 && std::str::from_utf8(&out[len_at + 1..]).is_err() {
            return Err(self.err(at, "string is not UTF-8"));
        }
        if n < 64 {
            out[len_at] = (n as u8) << 1;
            Ok(len_at + 1)
        } else {
            let mut count = [0u8; 10];
            let k = varint(n as u64 * 2, &mut count);
            out.splice(len_at..len_at + 1, count[..k].iter().copied());
            Ok(len_at + k)
        }
    }

    /// The escape at `i` (a backslash), if it is the one Jackson writes: its character appended
    /// to `out`; returns the position after it.
    fn escape_at(&self, i: usize, out: &mut Vec<u8>) -> Result<usize, Fallback> {
        let b = self.b;
        let c = match b.get(i + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'b') => 8,
            Some(b'f') => 12,
            Some(b'u') => {
                let v = self.upper_hex4(i + 2)?;
                if v < 0x20 {
                    if matches!(v, 8 | 9 | 10 | 12 | 13) {
                        return Err(self.err(i, "a \\u escape of a character Jackson writes with a short escape (\\n, \\t, …)"));
                    }
                    out.push(v as u8);
                    return Ok(i + 6);
                }
                if !(0xD800..0xDC00).contains(&v) {
                    return Err(self.err(i, "a \\u escape of a character Jackson writes as itself"));
                }
                if b.get(i + 6..i + 8) != Some(b"\\u") {
                    return Err(self.err(i, "lone surrogate"));
                }
                let lo = self.upper_hex4(i + 8)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(self.err(i, "lone surrogate"));
                }
                let ch = char::from_u32(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)).ok_or_else(|| self.err(i, "lone surrogate"))?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(i + 12);
            }
            Some(b'/') => return Err(self.err(i, "escaped '/' (Jackson writes it as itself)")),
            _ => return Err(self.err(i, "bad escape")),
        };
        out.push(c);
        Ok(i + 2)
    }

    /// The four upper-case hex digits at `i` (of a `\u` escape).
    fn upper_hex4(&self, i: usize) -> Result<u32, Fallback> {
        let Some(h) = self.b.get(i..i + 4) else { return Err(self.err(i, "truncated \\u escape")) };
        let mut v = 0;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'A'..=b'F' => c - b'A' + 10,
                b'a'..=b'f' => return Err(self.err(i, "lower-case hex in a \\u escape (Jackson writes upper-case)")),
                _ => return Err(self.err(i, "bad \\u escape")),
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    /// The end of the number literal here, and whether it is an integer (no fraction, no exponent).
    fn number_span(&mut self) -> Result<(usize, bool), Fallback> {
        let start = self.i;
        let b = self.b;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while matches!(b.get(*i), Some(b'0'..=b'9')) {
                *i += 1;
            }
            *i - s
        };
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 {
            self.i = i;
            return Err(self.unexpected("a number"));
        }
        if n > 1 && b[int_start] == b'0' {
            return Err(self.err(int_start, "number with a leading zero"));
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if digits(&mut i) == 0 {
                return Err(self.err(i, "number without fraction digits"));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(self.err(i, "number without exponent digits"));
            }
        }
        Ok((i, integer))
    }

    fn integer(&mut self) -> Result<i64, Fallback> {
        let start = self.i;
        let (end, integer) = self.number_span()?;
        if !integer {
            return Err(self.err(start, "not an integer for an integer property"));
        }
        let neg = self.b[start] == b'-';
        let mut v: u64 = 0;
        for &d in &self.b[start + usize::from(neg)..end] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or_else(|| self.err(start, "integer out of the long range"))?;
        }
        let v = if neg {
            if v == 0 {
                return Err(self.err(start, "-0 for an integer (Jackson writes 0)"));
            }
            if v > 1 << 63 {
                return Err(self.err(start, "integer out of the long range"));
            }
            (v as i64).wrapping_neg()
        } else {
            i64::try_from(v).map_err(|_| self.err(start, "integer out of the long range"))?
        };
        self.i = end;
        Ok(v)
    }

    /// A number in Java's `Double.toString` form of its value: the token is compared with what
    /// [`write_double`] writes (appended to `out` past its end, then cut off again).
    fn double(&mut self, out: &mut Vec<u8>) -> Result<f64, Fallback> {
        let start = self.i;
        let (end, _) = self.number_span()?;
        let token = &self.b[start..end];
        let text = std::str::from_utf8(token).map_err(|_| self.err(start, "not a number"))?;
        let v: f64 = text.parse().map_err(|_| self.err(start, "not a number"))?;
        if !v.is_finite() {
            return Err(self.err(start, "number out of the double range"));
        }
        if !plain_decimal_is_java(token) {
            let mark = out.len();
            let same = write_double(v, out).is_ok() && &out[mark..] == token;
            out.truncate(mark);
            if !same {
                return Err(self.err(start, "number not as Java's Double.toString writes it (1.0, 0.001, 1.0E7, 1.234E-5)"));
            }
        }
        self.i = end;
        Ok(v)
    }

    /// The branch of `s` a value starting with `c` goes to.
    fn pick(&mut self, s: &Slot, c: u8) -> Result<usize, Fallback> {
        let found = match c {
            _ if matches!(s.branches.first(), Some(Ty::Json)) => Some(0),
            b'"' => s.branches.iter().position(|t| matches!(t, Ty::Str(_) | Ty::Uuid | Ty::DateTime | Ty::Date)),
            b'{' => s.branches.iter().position(|t| matches!(t, Ty::Map(_) | Ty::Record(_))),
            b'[' => s.branches.iter().position(|t| matches!(t, Ty::Array(_))),
            b't' | b'f' => s.branches.iter().position(|t| matches!(t, Ty::Bool)),
            b'-' | b'0'..=b'9' => {
                let long = s.branches.iter().position(|t| matches!(t, Ty::Long));
                let double = s.branches.iter().position(|t| matches!(t, Ty::Double));
                match (long, double) {
                    (Some(l), Some(d)) => {
                        let (_, integer) = self.number_span()?;
                        Some(if integer { l } else { d })
                    }
                    (l, d) => l.or(d),
                }
            }
            _ => None,
        };
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            return Err(self.unexpected("a value"));
        }
        found.ok_or_else(|| {
            let what = match c {
                b'"' => "a string",
                b'{' => "an object",
                b'[' => "an array",
                b't' | b'f' => "a boolean",
                b'n' => "null",
                b'-' | b'0'..=b'9' => "a number",
                _ => "not JSON",
            };
            self.err(self.i, &format!("{what} where the schema has no such value"))
        })
    }

    /// A value of `s`; `null` is taken as its null branch if `null_ok`.
    fn slot(&mut self, s: &Slot, null_ok: bool, out: &mut Vec<u8>) -> Result<(), Fallback> {
        let Some(&c) = self.b.get(self.i) else { return Err(self.unexpected("a value")) };
        if c == b'n' && null_ok {
            self.lit(b"null")?;
            if s.union() {
                out.push(0);
            }
            return Ok(());
        }
        let pick = self.pick(s, c)?;
        if s.union() {
            write_long((pick + s.offset()) as i64, out);
        }
        self.ty(&s.branches[pick], out)
    }

    fn ty(&mut self, t: &Ty, out: &mut Vec<u8>) -> Result<(), Fallback> {
        let at = self.i;
        match t {
            Ty::Bool => {
                if self.b.get(self.i) == Some(&b't') {
                    self.lit(b"true")?;
                    out.push(1);
                } else {
                    self.lit(b"false")?;
                    out.push(0);
                }
            }
            Ty::Long => write_long(self.integer()?, out),
            Ty::Double => {
                let v = self.double(out)?;
                out.extend_from_slice(&v.to_le_bytes());
            }
            Ty::Str(symbols) => {
                let start = self.string(out)?;
                if let Some(symbols) = symbols {
                    if !symbols.iter().any(|s| s.as_bytes() == &out[start..]) {
                        return Err(self.err(at, "a string not in the enum"));
                    }
                }
            }
            Ty::Uuid => {
                let start = self.string(out)?;
                if !is_canonical_uuid(&out[start..]) {
                    return Err(self.err(at, "not a lower-case hyphenated uuid"));
                }
            }
            Ty::DateTime | Ty::Date => {
                let (span, escaped) = self.raw_string()?;
                let v = if escaped {
                    None
                } else if matches!(t, Ty::Date) {
                    parse_date(span)
                } else {
                    parse_date_time(span)
                };
                match v {
                    Some(v) => write_long(v, out),
                    None if matches!(t, Ty::Date) => return Err(self.err(at, "not a date in the form 2024-05-01")),
                    None => return Err(self.err(at, "not a date-time as Instant.toString writes it (2024-05-01T12:00:00Z, .123Z, .123456Z)")),
                }
            }
            Ty::Json => {
                self.skip(0)?;
                let text = &self.b[at..self.i];
                if std::str::from_utf8(text).is_err() {
                    return Err(self.err(at, "value is not UTF-8"));
                }
                write_bytes(text, out);
            }
            Ty::Array(s) => {
                self.expect(b'[', "an array")?;
                let start = out.len();
                out.push(0);
                let mut n = 0u64;
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.slot(s, s.null, out)?;
                    n += 1;
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(self.unexpected("',' or ']'")),
                    }
                }
                end_block(out, start, n);
            }
            Ty::Map(s) => {
                self.expect(b'{', "an object")?;
                let start = out.len();
                out.push(0);
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(());
                }
                let b = self.b;
                let mut keys: Vec<&[u8]> = Vec::new();
                let mut many: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
                loop {
                    let key_at = self.i;
                    self.string(out)?;
                    // Escapes are canonical: the same raw bytes are the same key.
                    let span = &b[key_at + 1..self.i - 1];
                    let repeated = if keys.len() < 32 {
                        keys.contains(&span)
                    } else {
                        if many.is_empty() {
                            many.extend(keys.iter().copied());
                        }
                        !many.insert(span)
                    };
                    if repeated {
                        return Err(self.err(key_at, "a repeated key"));
                    }
                    keys.push(span);
                    self.expect(b':', "':'")?;
                    self.slot(s, s.null, out)?;
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(self.unexpected("',' or '}'")),
                    }
                }
                end_block(out, start, keys.len() as u64);
            }
            Ty::Record(r) => self.record(r, out)?,
        }
        Ok(())
    }

    fn record(&mut self, r: &Record, out: &mut Vec<u8>) -> Result<(), Fallback> {
        self.expect(b'{', "an object")?;
        let mut next = 0;
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
        } else {
            loop {
                let at = self.i;
                // The key as the schema spells it (escaped as Jackson does), then its quote.
                let rest = self.b.get(at + 1..).unwrap_or_default();
                let found = (self.b.get(at) == Some(&b'"'))
                    .then(|| r.props[next..].iter().position(|p| rest.get(p.key.len()) == Some(&b'"') && rest.starts_with(&p.key)))
                    .flatten();
                if let Some(j) = found {
                    self.i = at + 1 + r.props[next + j].key.len() + 1;
                }
                let Some(j) = found.map(|j| j + next) else {
                    let (key, _) = self.raw_string()?;
                    let what = if r.props[..next].iter().any(|p| &*p.key == key) {
                        "a property repeated or out of the schema's order"
                    } else {
                        "a property the schema does not have (or a key escaped otherwise)"
                    };
                    return Err(self.err(at, what));
                };
                self.absent(&r.props[next..j], at, out)?;
                self.expect(b':', "':'")?;
                let p = &r.props[j];
                self.slot(&p.slot, p.explicit_null, out)?;
                next = j + 1;
                match self.b.get(self.i) {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("',' or '}'")),
                }
            }
        }
        self.absent(&r.props[next..], self.i, out)
    }

    /// Properties not in the value.
    fn absent(&self, props: &[Prop], at: usize, out: &mut Vec<u8>) -> Result<(), Fallback> {
        for p in props {
            if p.explicit_null {
                let key = String::from_utf8_lossy(&p.key);
                return Err(self.err(at, &format!("property \"{key}\" absent (its schema admits null: a null column is an explicit null)")));
            }
            out.push(0);
        }
        Ok(())
    }

    /// Skips any JSON value (compact), checking it.
    fn skip(&mut self, depth: usize) -> Result<(), Fallback> {
        if depth > MAX_DEPTH {
            return Err(self.err(self.i, "nested too deep"));
        }
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip_string()?;
                    self.expect(b':', "':'")?;
                    self.skip(depth + 1)?;
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.unexpected("',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.unexpected("',' or ']'")),
                    }
                }
            }
            Some(b'"') => self.skip_string(),
            Some(b't') => self.lit(b"true"),
            Some(b'f') => self.lit(b"false"),
            Some(b'n') => self.lit(b"null"),
            _ => {
                let (end, _) = self.number_span()?;
                self.i = end;
                Ok(())
            }
        }
    }

    fn skip_string(&mut self) -> Result<(), Fallback> {
        let at = self.i;
        let (span, escaped) = self.raw_string()?;
        if escaped {
            unescape(span, &mut Vec::new()).map_err(|what| self.err(at, what))?;
        }
        Ok(())
    }
}

/// Ends an array or map block begun at `start` with a placeholder count byte: the count (one
/// block, as Java writes it; none for an empty one), then the end marker.
fn end_block(out: &mut Vec<u8>, start: usize, n: u64) {
    if n < 64 {
        out[start] = (n as u8) << 1;
    } else {
        let mut count = Vec::with_capacity(10);
        write_long(n as i64, &mut count);
        out.splice(start..start + 1, count);
    }
    out.push(0);
}

fn is_canonical_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

fn num(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, &d| v * 10 + i64::from(d - b'0')))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (y + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` (years 0000–9999) → days since the epoch.
fn parse_date(s: &[u8]) -> Option<i64> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&s[..4])?, num(&s[5..7])?, num(&s[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

const DAY_MICROS: i64 = 86_400_000_000;

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z` → microseconds since the epoch, in `Instant.toString`'s
/// form only: a fraction of 3 digits (not `000`) or 6 (not a whole millisecond), else none.
fn parse_date_time(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s[10] != b'T' || s[13] != b':' || s[16] != b':' || s.last() != Some(&b'Z') {
        return None;
    }
    let days = parse_date(&s[..10])?;
    let (h, mi, sec) = (num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?);
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let micros = match &s[19..s.len() - 1] {
        [] => 0,
        [b'.', f @ ..] if f.len() == 3 => Some(num(f)? * 1000).filter(|&m| m != 0)?,
        [b'.', f @ ..] if f.len() == 6 => num(f).filter(|&m| m % 1000 != 0)?,
        _ => return None,
    };
    Some(days * DAY_MICROS + ((h * 60 + mi) * 60 + sec) * 1_000_000 + micros)
}

fn write_date(days: i64, out: &mut Vec<u8>) -> Result<(), String> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(format!("date {days} outside years 0000-9999"));
    }
    write_digits(y, 4, out);
    out.push(b'-');
    write_digits(m, 2, out);
    out.push(b'-');
    write_digits(d, 2, out);
    Ok(())
}

fn write_digits(v: i64, n: u32, out: &mut Vec<u8>) {
    for k in (0..n).rev() {
        out.push(b'0' + (v / 10i64.pow(k) % 10) as u8);
    }
}

/// `Instant.toString()` of microseconds since the epoch.
fn write_date_time(micros: i64, out: &mut Vec<u8>) -> Result<(), String> {
    let (days, rem) = (micros.div_euclid(DAY_MICROS), micros.rem_euclid(DAY_MICROS));
    write_date(days, out)?;
    let (secs, frac) = (rem / 1_000_000, rem % 1_000_000);
    out.push(b'T');
    write_digits(secs / 3600, 2, out);
    out.push(b':');
    write_digits(secs / 60 % 60, 2, out);
    out.push(b':');
    write_digits(secs % 60, 2, out);
    if frac != 0 {
        out.push(b'.');
        if frac % 1000 == 0 {
            write_digits(frac / 1000, 3, out);
        } else {
            write_digits(frac, 6, out);
        }
    }
    out.push(b'Z');
    Ok(())
}

fn write_integer(v: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// A small stack buffer for `write!`.
struct Buf {
    b: [u8; 40],
    n: usize,
}

impl std::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.n + s.len();
        self.b.get_mut(self.n..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.n = end;
        Ok(())
    }
}

/// The digits and exponent of `x` (finite, not zero) in Rust's `{:e}` form with `precision`
/// digits after the point (`None`: the shortest that reads back).
fn sci(x: f64, precision: Option<usize>) -> Option<(Buf, usize, i32)> {
    use std::fmt::Write;
    let mut b = Buf { b: [0; 40], n: 0 };
    match precision {
        None => write!(b, "{:e}", x.abs()).ok()?,
        Some(p) => write!(b, "{:.*e}", p, x.abs()).ok()?,
    }
    let text = &b.b[..b.n];
    let e = text.iter().position(|&c| c == b'e')?;
    let exp: i32 = std::str::from_utf8(&text[e + 1..]).ok()?.parse().ok()?;
    // Digits without the point, in place.
    let mut digits = Buf { b: [0; 40], n: 0 };
    for &c in &text[..e] {
        if c != b'.' {
            digits.b[digits.n] = c;
            digits.n += 1;
        }
    }
    let n = digits.n;
    Some((digits, n, exp))
}

/// Whether a number token (as `number_span` admits it) is, without formatting anything, what
/// [`write_double`] writes of its value: plain decimal `int.frac` for 10⁻³ ≤ |x| < 10⁷, at most 15
/// significant digits (every such decimal is the only one of at most 15 digits that reads as its
/// double, so it is the shortest: Java's digits), no trailing zero but in `.0`. `false` says
/// nothing (the caller formats and compares).
pub(crate) fn plain_decimal_is_java(token: &[u8]) -> bool {
    let t = token.strip_prefix(b"-").unwrap_or(token);
    let Some(dot) = t.iter().position(|&c| c == b'.') else { return false };
    let (int, frac) = (&t[..dot], &t[dot + 1..]);
    if int.is_empty() || frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if int == b"0" {
        if frac == b"0" {
            return true;
        }
        let zeros = frac.iter().take_while(|&&c| c == b'0').count();
        zeros <= 2 && zeros < frac.len() && frac.len() <= 15 && frac.last() != Some(&b'0')
    } else {
        int.len() <= 7 && int.len() + frac.len() <= 15 && (frac == b"0" || frac.last() != Some(&b'0'))
    }
}

/// Java's `Double.toString` (JDK 19+) of a finite double.
pub(crate) fn write_double(x: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !x.is_finite() {
        return Err(format!("{x} has no JSON number"));
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    if x == 0.0 {
        out.extend_from_slice(b"0.0");
        return Ok(());
    }
    let (mut digits, mut n, mut exp) = sci(x, None).ok_or("unformattable double")?;
    if n == 1 {
        // Java picks, among the two-digit decimals that read back, the one closest to x.
        if let Some((d2, n2, e2)) = sci(x, Some(1)) {
            let mut check = Buf { b: [0; 40], n: 0 };
            use std::fmt::Write;
            let ok = write!(check, "{}.{}e{}", d2.b[0] as char, d2.b[1] as char, e2).is_ok()
                && std::str::from_utf8(&check.b[..check.n]).ok().and_then(|t| t.parse::<f64>().ok()) == Some(x.abs());
            if ok && d2.b[1] != b'0' {
                (digits, n, exp) = (d2, n2, e2);
            }
        }
    }
    let d = &digits.b[..n];
    if (-3..7).contains(&exp) {
        if exp >= 0 {
            let int = (exp + 1) as usize;
            if n <= int {
                out.extend_from_slice(d);
                out.extend(std::iter::repeat_n(b'0', int - n));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&d[..int]);
                out.push(b'.');
                out.extend_from_slice(&d[int..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(d);
        }
    } else {
        out.push(d[0]);
        out.push(b'.');
        if n > 1 {
            out.extend_from_slice(&d[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'E');
        write_integer(i64::from(exp), out);
    }
    Ok(())
}

/// The Avro reader of `avro_to_message`.
struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for k in 0..10 {
            let c = *self.b.get(self.i).ok_or("the Avro datum ends early")?;
            self.i += 1;
            v |= u64::from(c & 0x7f) << (7 * k);
            if c & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err("varint overflow in the Avro datum".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| "negative length in the Avro datum")?;
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("the Avro datum ends early")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn text(&mut self) -> Result<&'a [u8], String> {
        let s = self.bytes()?;
        std::str::from_utf8(s).map_err(|_| "a string that is not UTF-8")?;
        Ok(s)
    }

    /// A value of `s`; returns whether it is null (nothing written).
    fn slot(&mut self, s: &Slot, out: &mut Vec<u8>) -> Result<bool, String> {
        let index = if s.union() {
            let i = self.long()?;
            usize::try_from(i).ok().filter(|&i| i < s.offset() + s.branches.len()).ok_or_else(|| format!("union index {i} out of range"))?
        } else {
            s.offset()
        };
        if index < s.offset() || s.branches.is_empty() {
            return Ok(true);
        }
        self.ty(&s.branches[index - s.offset()], out)?;
        Ok(false)
    }

    /// Writes an array's or a map's items, block by block, comma-separated: `item` writes one.
    fn items(&mut self, out: &mut Vec<u8>, mut item: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<(), String>) -> Result<(), String> {
        let mut first = true;
        loop {
            let n = self.count()?;
            if n == 0 {
                return Ok(());
            }
            for _ in 0..n {
                if !first {
                    out.push(b',');
                }
                first = false;
                item(self, out)?;
            }
        }
    }

    /// A block count: items in this block (0 at the end).
    fn count(&mut self) -> Result<usize, String> {
        let mut n = self.long()?;
        if n < 0 {
            n = n.checked_neg().ok_or("bad block count")?;
            self.long()?;
        }
        let n = usize::try_from(n).map_err(|_| "bad block count")?;
        if n > self.b.len() - self.i {
            return Err("block count larger than the bytes left".into());
        }
        Ok(n)
    }

    fn ty(&mut self, t: &Ty, out: &mut Vec<u8>) -> Result<(), String> {
        match t {
            Ty::Bool => {
                let c = *self.b.get(self.i).ok_or("the Avro datum ends early")?;
                self.i += 1;
                out.extend_from_slice(match c {
                    0 => b"false",
                    1 => b"true",
                    _ => return Err(format!("boolean byte {c}")),
                });
            }
            Ty::Long => write_integer(self.long()?, out),
            Ty::Double => {
                let b = self.b.get(self.i..self.i + 8).ok_or("the Avro datum ends early")?;
                self.i += 8;
                let mut a = [0; 8];
                a.copy_from_slice(b);
                write_double(f64::from_le_bytes(a), out)?;
            }
            Ty::Str(_) | Ty::Uuid => {
                let s = self.text()?;
                out.push(b'"');
                escape(s, out);
                out.push(b'"');
            }
            Ty::DateTime => {
                let v = self.long()?;
                out.push(b'"');
                write_date_time(v, out)?;
                out.push(b'"');
            }
            Ty::Date => {
                let v = self.long()?;
                out.push(b'"');
                write_date(v, out)?;
                out.push(b'"');
            }
            Ty::Json => {
                let s = self.text()?;
                let mut check = Scan { b: s, i: 0 };
                check.skip(0).map_err(|e| format!("the verbatim text is not one JSON value: {e}"))?;
                if check.i != s.len() {
                    return Err("the verbatim text is not one JSON value".into());
                }
                out.extend_from_slice(s);
            }
            Ty::Array(s) => {
                out.push(b'[');
                self.items(out, |r, out| {
                    if r.slot(s, out)? {
                        out.extend_from_slice(b"null");
                    }
                    Ok(())
                })?;
                out.push(b']');
            }
            Ty::Map(s) => {
                out.push(b'{');
                self.items(out, |r, out| {
                    let k = r.text()?;
                    out.push(b'"');
                    escape(k, out);
                    out.extend_from_slice(b"\":");
                    if r.slot(s, out)? {
                        out.extend_from_slice(b"null");
                    }
                    Ok(())
                })?;
                out.push(b'}');
            }
            Ty::Record(r) => {
                out.push(b'{');
                let mut first = true;
                for p in &r.props {
                    let mark = out.len();
                    if !first {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(&p.key);
                    out.extend_from_slice(b"\":");
                    if self.slot(&p.slot, out)? {
                        if p.explicit_null {
                            out.extend_from_slice(b"null");
                        } else {
                            out.truncate(mark);
                            continue;
                        }
                    }
                    first = false;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }
}
