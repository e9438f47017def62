//! The Protobuf transcoder: Protobuf wire bytes ↔ the Avro binary datum of the mapped schema,
//! one pass each way over a compiled program (no value tree).
//!
//! `message_to_avro` reads a message in two passes over its bytes: the first checks every tag (known
//! field number, expected wire type, field numbers non-decreasing, a singular field once) and
//! notes where each field's bytes are (a span: they are contiguous, since numbers do not go
//! down); the second writes the fields in declaration order (the Avro record's) from their spans,
//! with the defaults of absent implicit-presence fields, and checks on the way that the bytes are
//! exactly what `avro_to_message` writes (minimal varints, no default written out, one non-empty
//! packed run, …: the lossless rule of the parent module), so the caller need not transcode
//! back ([`Transcoder::checks_canonical`]). `avro_to_message` writes the fields in
//! declaration order and, for a message whose declaration order is not its field-number order,
//! moves their bytes into field-number order afterwards.

use std::sync::Arc;

use prost_reflect::Kind;
use serde_json::{json, Value as Json};

use crate::decode::Fallback;
use crate::transcode::Transcoder;

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Protobuf's Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scalar {
    Int32,
    Sint32,
    Sfixed32,
    Int64,
    Sint64,
    Sfixed64,
    Uint32,
    Fixed32,
    Uint64,
    Fixed64,
    Float,
    Double,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    pub(super) fn of(kind: &Kind) -> Option<Scalar> {
        Some(match kind {
            Kind::Int32 => Scalar::Int32,
            Kind::Sint32 => Scalar::Sint32,
            Kind::Sfixed32 => Scalar::Sfixed32,
            Kind::Int64 => Scalar::Int64,
            Kind::Sint64 => Scalar::Sint64,
            Kind::Sfixed64 => Scalar::Sfixed64,
            Kind::Uint32 => Scalar::Uint32,
            Kind::Fixed32 => Scalar::Fixed32,
            Kind::Uint64 => Scalar::Uint64,
            Kind::Fixed64 => Scalar::Fixed64,
            Kind::Float => Scalar::Float,
            Kind::Double => Scalar::Double,
            Kind::Bool => Scalar::Bool,
            Kind::String => Scalar::String,
            Kind::Bytes => Scalar::Bytes,
            Kind::Message(_) | Kind::Enum(_) => return None,
        })
    }

    pub(super) fn avro(self) -> Json {
        match self {
            Scalar::Int32 | Scalar::Sint32 | Scalar::Sfixed32 => json!("int"),
            Scalar::Int64 | Scalar::Sint64 | Scalar::Sfixed64 | Scalar::Uint32 | Scalar::Fixed32 => json!("long"),
            Scalar::Uint64 | Scalar::Fixed64 => json!({"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}),
            Scalar::Float => json!("float"),
            Scalar::Double => json!("double"),
            Scalar::Bool => json!("boolean"),
            Scalar::String => json!("string"),
            Scalar::Bytes => json!("bytes"),
        }
    }

    fn wire(self) -> u8 {
        match self {
            Scalar::Int32 | Scalar::Sint32 | Scalar::Int64 | Scalar::Sint64 | Scalar::Uint32 | Scalar::Uint64 | Scalar::Bool => VARINT,
            Scalar::Sfixed32 | Scalar::Fixed32 | Scalar::Float => I32,
            Scalar::Sfixed64 | Scalar::Fixed64 | Scalar::Double => I64,
            Scalar::String | Scalar::Bytes => LEN,
        }
    }

    /// The Avro datum of the Protobuf default value (the only datum of the type with these
    /// bytes: a value whose datum they are is the default).
    fn avro_default(self) -> &'static [u8] {
        match self {
            Scalar::Uint64 | Scalar::Fixed64 => &[2, 0],
            Scalar::Float => &[0; 4],
            Scalar::Double => &[0; 8],
            _ => &[0],
        }
    }
}

/// An enum's numbers by symbol index, and the way back.
#[derive(Debug)]
pub(super) struct EnumInfo {
    numbers: Vec<i32>,
    /// (number, first symbol index with it), sorted by number.
    by_number: Vec<(i32, u32)>,
}

impl EnumInfo {
    pub(super) fn new(numbers: Vec<i32>) -> Self {
        let mut by_number: Vec<(i32, u32)> = Vec::with_capacity(numbers.len());
        for (i, &n) in numbers.iter().enumerate() {
            if !by_number.iter().any(|&(m, _)| m == n) {
                by_number.push((n, i as u32));
            }
        }
        by_number.sort_unstable();
        EnumInfo { numbers, by_number }
    }

    fn index(&self, number: i32) -> Option<u32> {
        self.by_number.binary_search_by_key(&number, |&(n, _)| n).ok().map(|i| self.by_number[i].1)
    }
}

/// What one field, list item, map value holds.
#[derive(Clone, Debug)]
pub(super) enum Value {
    Scalar(Scalar),
    Enum(Arc<EnumInfo>),
    /// Index into the transcoder's messages.
    Message(usize),
    Timestamp,
    Wrapper(Scalar),
}

impl Value {
    pub(super) fn packable(&self) -> bool {
        match self {
            Value::Scalar(s) => !matches!(s, Scalar::String | Scalar::Bytes),
            Value::Enum(_) => true,
            _ => false,
        }
    }

    pub(super) fn always_present(&self) -> bool {
        matches!(self, Value::Message(_) | Value::Timestamp | Value::Wrapper(_))
    }

    fn wire(&self) -> u8 {
        match self {
            Value::Scalar(s) => s.wire(),
            Value::Enum(_) => VARINT,
            Value::Message(_) | Value::Timestamp | Value::Wrapper(_) => LEN,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Card {
    /// proto3 without presence: the plain type, absent = default.
    Implicit,
    /// `["null", T]`.
    Optional,
    Repeated { packed: bool },
    /// Entries: key (field 1) then value (field 2); Avro `map<V>` for string keys, else an array
    /// of `{key, value}` records (the same datum bytes per entry).
    Map { key: Scalar },
}

#[derive(Debug)]
pub(super) struct Field {
    name: String,
    number: u32,
    card: Card,
    value: Value,
    oneof: Option<usize>,
    /// The wire type of the field's tag.
    wire: u8,
    /// The tag's varint bytes.
    tag: Vec<u8>,
    /// Proto3 implicit presence: the Avro datum of the default value (what an absent field
    /// reads as, and what a field written out must not be), if the type has one (an enum
    /// without a value 0 does not).
    default: Option<Vec<u8>>,
}

impl Field {
    pub(super) fn new(name: String, number: u32, card: Card, value: Value, oneof: Option<usize>) -> Self {
        let wire = match card {
            Card::Repeated { packed: true } | Card::Map { .. } => LEN,
            _ => value.wire(),
        };
        let mut tag = Vec::new();
        put_varint(&mut tag, (u64::from(number) << 3) | u64::from(wire));
        let default = match (&card, &value) {
            (Card::Implicit, Value::Scalar(s)) => Some(s.avro_default().to_vec()),
            (Card::Implicit, Value::Enum(e)) => e.index(0).map(|i| {
                let mut d = Vec::new();
                put_long(&mut d, i64::from(i));
                d
            }),
            _ => None,
        };
        Field { name, number, card, value, oneof, wire, tag, default }
    }

    /// Whether the field may appear several times on the wire (one item or entry each).
    fn repeats(&self) -> bool {
        matches!(self.card, Card::Repeated { packed: false } | Card::Map { .. })
    }
}

#[derive(Debug)]
pub(super) struct Msg {
    full_name: String,
    fields: Vec<Field>,
    /// (number, declaration index), sorted by number.
    by_number: Vec<(u32, usize)>,
    /// Declaration order is field-number order.
    in_order: bool,
    /// Per oneof: its members' declaration indexes.
    oneofs: Vec<Vec<usize>>,
    /// By one-byte tag (field number and wire type): 1 + the declaration index of the field
    /// with that number and wire type, 0 if none (a tag of more bytes, an unknown number or
    /// another wire type take the slow path).
    by_tag: [u8; 128],
}

impl Msg {
    pub(super) fn new(full_name: String, fields: Vec<Field>, oneofs: usize) -> Self {
        let mut by_number: Vec<(u32, usize)> = fields.iter().enumerate().map(|(i, f)| (f.number, i)).collect();
        by_number.sort_unstable();
        let in_order = by_number.iter().enumerate().all(|(i, &(_, d))| i == d);
        let mut groups = vec![Vec::new(); oneofs];
        for (i, f) in fields.iter().enumerate() {
            if let Some(g) = f.oneof.and_then(|g| groups.get_mut(g)) {
                g.push(i);
            }
        }
        let mut by_tag = [0u8; 128];
        for (i, f) in fields.iter().enumerate() {
            if let (&[t], Ok(v)) = (f.tag.as_slice(), u8::try_from(i + 1)) {
                by_tag[usize::from(t & 0x7f)] = v;
            }
        }
        Msg { full_name, fields, by_number, in_order, oneofs: groups, by_tag }
    }
}

/// The compiled schema: messages by index, the root's.
#[derive(Debug)]
pub(super) struct ProtobufTranscoder {
    messages: Vec<Msg>,
    root: usize,
}

impl ProtobufTranscoder {
    pub(super) fn new(messages: Vec<Msg>, root: usize) -> Self {
        ProtobufTranscoder { messages, root }
    }
}

#[cold]
fn fail(reason: String) -> Fallback {
    Fallback::Transcode { format: "protobuf", reason }
}

/// Where a field's bytes are in a message (tags included), and how many times it appears.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    count: usize,
}

const ABSENT: Span = Span { start: 0, end: 0, count: 0 };

// ---------------------------------------------------------------------------------------------
// Protobuf wire reading (positions are offsets in the payload).

/// A varint; `S`: refused if not minimal. One byte (most tags and lengths, always minimal)
/// inline, longer ones in [`long_varint`].
#[inline(always)]
fn varint<const S: bool>(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, Fallback> {
    if let Some(&b) = buf.get(*pos).filter(|_| *pos < end) {
        if b < 0x80 {
            *pos += 1;
            return Ok(u64::from(b));
        }
    }
    long_varint::<S>(buf, pos, end)
}

fn long_varint<const S: bool>(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, Fallback> {
    let start = *pos;
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        if *pos >= end {
            return Err(fail(format!("truncated varint at byte {start}")));
        }
        let b = buf[*pos];
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(fail(format!("varint longer than 64 bits at byte {start}")));
        }
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            // Minimal: a last byte of 0 after others adds nothing (the encoder never writes it).
            if S && b == 0 && shift > 0 {
                return Err(fail(format!("varint at byte {start} not minimal ({} bytes)", *pos - start)));
            }
            return Ok(value);
        }
        shift += 7;
    }
}

#[inline]
fn take<'a>(buf: &'a [u8], pos: &mut usize, end: usize, n: usize, what: &str) -> Result<&'a [u8], Fallback> {
    if end - *pos < n {
        return Err(fail(format!("truncated {what} at byte {}", *pos)));
    }
    let s = &buf[*pos..*pos + n];
    *pos += n;
    Ok(s)
}

/// A length prefix: the end of the bytes it announces.
#[inline]
fn length<const S: bool>(buf: &[u8], pos: &mut usize, end: usize) -> Result<usize, Fallback> {
    let at = *pos;
    let len = varint::<S>(buf, pos, end)?;
    if len > (end - *pos) as u64 {
        return Err(fail(format!("length {len} at byte {at} beyond the {} bytes left", end - *pos)));
    }
    Ok(*pos + len as usize)
}

/// Whether a value's datum is the default's (at most a few bytes: compared inline, not with a
/// `memcmp` call, as this runs for every implicit-presence field).
#[inline]
fn is_default(written: &[u8], default: &[u8]) -> bool {
    written.len() == default.len() && written.iter().zip(default).all(|(a, b)| a == b)
}

/// A varint that must fit in 32 bits (the encoder writes a `uint32`'s or `sint32`'s 32 bits).
#[inline]
fn u32_varint<const S: bool>(buf: &[u8], pos: &mut usize, end: usize, what: &str) -> Result<u32, Fallback> {
    let at = *pos;
    let v = varint::<S>(buf, pos, end)?;
    if !S {
        return Ok(v as u32);
    }
    u32::try_from(v).map_err(|_| fail(format!("{what} at byte {at} beyond 32 bits")))
}

fn skip<const S: bool>(buf: &[u8], pos: &mut usize, end: usize, wire: u8) -> Result<(), Fallback> {
    match wire {
        VARINT => varint::<S>(buf, pos, end).map(drop),
        I64 => take(buf, pos, end, 8, "fixed64").map(drop),
        I32 => take(buf, pos, end, 4, "fixed32").map(drop),
        _ => length::<S>(buf, pos, end).map(|e| *pos = e),
    }
}

// ---------------------------------------------------------------------------------------------
// Avro writing.

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn put_long(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A decimal's unscaled value as Avro writes it on `bytes`: minimal two's complement.
#[inline]
fn put_decimal(out: &mut Vec<u8>, v: u64) {
    // The value's bits and a sign bit (0), in whole bytes: 1 to 9.
    let n = (64 - v.leading_zeros() as usize + 1).div_ceil(8);
    put_long(out, n as i64);
    if n == 9 {
        out.push(0);
    }
    out.extend_from_slice(&v.to_be_bytes()[8 - n.min(8)..]);
}

impl Transcoder for ProtobufTranscoder {
    fn format(&self) -> &'static str {
        "protobuf"
    }

    fn message_indexes(&self) -> bool {
        true
    }

    /// `read_scalar` checks every string it writes (values, map keys, wrappers).
    fn checks_utf8(&self) -> bool {
        true
    }

    /// `message_to_avro` refuses every message `avro_to_message` does not write (see the module
    /// doc of `protobuf`, the lossless rule).
    fn checks_canonical(&self) -> bool {
        true
    }

    fn message_to_avro(&self, message: &[u8], avro: &mut Vec<u8>) -> Result<(), Fallback> {
        let mut spans = Vec::with_capacity(32);
        self.read_message::<true>(self.root, message, 0, message.len(), &mut spans, avro)
    }

    fn avro_to_message(&self, avro: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut r = AvroReader { b: avro, pos: 0 };
        let mut segments = Vec::with_capacity(32);
        self.write_message(self.root, &mut r, &mut segments, out)?;
        if r.pos != avro.len() {
            return Err(format!("{} bytes after the Avro datum", avro.len() - r.pos));
        }
        Ok(())
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ---------------------------------------------------------------------------------------------
// Protobuf -> Avro.

impl ProtobufTranscoder {
    /// `message_to_avro` without the canonical-form checks (what the decoder accepted before it
    /// checked them): the tests' oracle, whose datum is then transcoded back and compared.
    #[cfg(test)]
    pub(super) fn message_to_avro_lenient(&self, message: &[u8], avro: &mut Vec<u8>) -> Result<(), Fallback> {
        let mut spans = Vec::with_capacity(32);
        self.read_message::<false>(self.root, message, 0, message.len(), &mut spans, avro)
    }

    fn read_message<const S: bool>(&self, mi: usize, buf: &[u8], start: usize, end: usize, spans: &mut Vec<Span>, out: &mut Vec<u8>) -> Result<(), Fallback> {
        let Some(m) = self.messages.get(mi) else {
            return Err(fail(format!("no message {mi}")));
        };
        let base = spans.len();
        spans.resize(base + m.fields.len(), ABSENT);
        // Pass 1: tags, order, spans.
        let mut pos = start;
        let mut last = 0u64;
        while pos < end {
            let at = pos;
            let tag = varint::<S>(buf, &mut pos, end)?;
            let number = tag >> 3;
            let wire = (tag & 7) as u8;
            if number < last {
                return Err(fail(format!("field {number} after field {last} at byte {at}: not in field-number order ({})", m.full_name)));
            }
            // A one-byte tag of a known field with its wire type: one table look-up.
            let fi = match m.by_tag.get(tag as usize) {
                Some(&i) if i > 0 => usize::from(i) - 1,
                _ => match m.by_number.binary_search_by_key(&number, |&(n, _)| u64::from(n)) {
                    Ok(k) => m.by_number[k].1,
                    Err(_) => return Err(fail(format!("unknown field number {number} (wire type {wire}) at byte {at} in {}", m.full_name))),
                },
            };
            let f = &m.fields[fi];
            if wire != f.wire {
                return Err(fail(format!(
                    "field {} ({number}) with wire type {wire} at byte {at}, expected {}{}",
                    f.name,
                    f.wire,
                    if matches!(f.card, Card::Repeated { .. }) && f.value.packable() { " (packed or not, as declared)" } else { "" }
                )));
            }
            skip::<S>(buf, &mut pos, end, wire)?;
            let s = &mut spans[base + fi];
            if s.count == 0 {
                s.start = at;
            } else if !f.repeats() {
                return Err(fail(format!("field {} ({number}) written again at byte {at}", f.name)));
            }
            s.end = pos;
            s.count += 1;
            last = number;
        }
        for members in &m.oneofs {
            let mut set = members.iter().filter(|&&i| spans[base + i].count > 0);
            if let (Some(_), Some(&second)) = (set.next(), set.next()) {
                return Err(fail(format!(
                    "two members of a oneof set, the second {} at byte {}",
                    m.fields[second].name,
                    spans[base + second].start
                )));
            }
        }
        // Pass 2: the Avro record, in declaration order.
        for (fi, f) in m.fields.iter().enumerate() {
            let s = spans[base + fi];
            self.read_field::<S>(f, s, buf, spans, out)?;
        }
        spans.truncate(base);
        Ok(())
    }

    fn read_field<const S: bool>(&self, f: &Field, s: Span, buf: &[u8], spans: &mut Vec<Span>, out: &mut Vec<u8>) -> Result<(), Fallback> {
        let mut pos = s.start;
        let end = s.end;
        match &f.card {
            Card::Implicit => {
                let Some(default) = &f.default else {
                    return Err(fail(format!("field {} of a type without a default (an enum without a value 0)", f.name)));
                };
                if s.count == 0 {
                    out.extend_from_slice(default);
                    return Ok(());
                }
                pos += f.tag.len();
                let before = out.len();
                self.read_value::<S>(&f.value, buf, &mut pos, end, spans, out)?;
                if S && is_default(&out[before..], default) {
                    return Err(fail(format!("field {} written with its default value at byte {}", f.name, s.start)));
                }
                Ok(())
            }
            Card::Optional => {
                if s.count == 0 {
                    out.push(0);
                    return Ok(());
                }
                out.push(2);
                pos += f.tag.len();
                self.read_value::<S>(&f.value, buf, &mut pos, end, spans, out)
            }
            Card::Repeated { packed: true } => {
                if s.count == 0 {
                    out.push(0);
                    return Ok(());
                }
                pos += f.tag.len();
                let data_end = length::<S>(buf, &mut pos, end)?;
                if S && data_end == pos {
                    return Err(fail(format!("packed {} at byte {} without items", f.name, s.start)));
                }
                let count = self.packed_count(f, buf, pos, data_end)?;
                if count > 0 {
                    put_long(out, count as i64);
                    while pos < data_end {
                        self.read_value::<S>(&f.value, buf, &mut pos, data_end, spans, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            Card::Repeated { packed: false } => {
                if s.count > 0 {
                    put_long(out, s.count as i64);
                    for _ in 0..s.count {
                        pos += f.tag.len();
                        self.read_value::<S>(&f.value, buf, &mut pos, end, spans, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            Card::Map { key } => {
                if s.count > 0 {
                    put_long(out, s.count as i64);
                    let key_tag = 8 | key.wire();
                    let value_tag = 16 | f.value.wire();
                    // Where each key's datum is in `out`: a key repeated is a map whose columns
                    // would say something else than Protobuf (the last entry wins).
                    let mut keys: Vec<(usize, usize)> = Vec::with_capacity(s.count.min(1024));
                    for _ in 0..s.count {
                        pos += f.tag.len();
                        let entry_end = length::<S>(buf, &mut pos, end)?;
                        let at = pos;
                        if pos >= entry_end || buf[pos] != key_tag {
                            return Err(fail(format!("map {} entry at byte {at} does not start with its key", f.name)));
                        }
                        pos += 1;
                        let key_start = out.len();
                        self.read_scalar::<S>(*key, buf, &mut pos, entry_end, out)?;
                        keys.push((key_start, out.len()));
                        let at = pos;
                        if pos >= entry_end || buf[pos] != value_tag {
                            return Err(fail(format!("map {} entry: no value (field 2) at byte {at}", f.name)));
                        }
                        pos += 1;
                        self.read_value::<S>(&f.value, buf, &mut pos, entry_end, spans, out)?;
                        if pos != entry_end {
                            return Err(fail(format!("map {} entry: more after its value at byte {pos}", f.name)));
                        }
                    }
                    if keys.len() > 1 {
                        keys.sort_unstable_by(|a, b| out[a.0..a.1].cmp(&out[b.0..b.1]));
                        if keys.windows(2).any(|w| out[w[0].0..w[0].1] == out[w[1].0..w[1].1]) {
                            return Err(fail(format!("map {}: a key repeated", f.name)));
                        }
                    }
                }
                out.push(0);
                Ok(())
            }
        }
    }

    fn packed_count(&self, f: &Field, buf: &[u8], start: usize, end: usize) -> Result<usize, Fallback> {
        let data = &buf[start..end];
        let width = match f.value.wire() {
            I32 => 4,
            I64 => 8,
            _ => {
                if data.last().is_some_and(|b| b & 0x80 != 0) {
                    return Err(fail(format!("packed {} ends in a truncated varint at byte {}", f.name, end - 1)));
                }
                return Ok(data.iter().filter(|&&b| b < 0x80).count());
            }
        };
        if !data.len().is_multiple_of(width) {
            return Err(fail(format!("packed {} at byte {start}: {} bytes, not a multiple of {width}", f.name, data.len())));
        }
        Ok(data.len() / width)
    }

    #[inline]
    fn read_value<const S: bool>(&self, v: &Value, buf: &[u8], pos: &mut usize, end: usize, spans: &mut Vec<Span>, out: &mut Vec<u8>) -> Result<(), Fallback> {
        match v {
            Value::Scalar(s) => self.read_scalar::<S>(*s, buf, pos, end, out),
            Value::Enum(e) => {
                let at = *pos;
                let v = varint::<S>(buf, pos, end)?;
                let n = v as i32;
                if S && v != i64::from(n) as u64 {
                    return Err(fail(format!("enum number at byte {at} not an int32 sign-extended to 64 bits")));
                }
                match e.index(n) {
                    Some(i) => {
                        put_long(out, i64::from(i));
                        Ok(())
                    }
                    None => Err(fail(format!("unknown enum number {n} at byte {at}"))),
                }
            }
            Value::Message(mi) => {
                let sub_end = length::<S>(buf, pos, end)?;
                self.read_message::<S>(*mi, buf, *pos, sub_end, spans, out)?;
                *pos = sub_end;
                Ok(())
            }
            Value::Timestamp => {
                let sub_end = length::<S>(buf, pos, end)?;
                let at = *pos;
                let (mut seconds, mut nanos) = (0i64, 0i32);
                let mut last = 0;
                while *pos < sub_end {
                    let tag_at = *pos;
                    let tag = varint::<S>(buf, pos, sub_end)?;
                    if tag <= last || (tag != 8 && tag != 16) {
                        return Err(fail(format!("Timestamp: tag {tag} at byte {tag_at}")));
                    }
                    last = tag;
                    let v_at = *pos;
                    let v = varint::<S>(buf, pos, sub_end)?;
                    if S && v == 0 {
                        return Err(fail(format!("Timestamp: a zero written out at byte {v_at}")));
                    }
                    if tag == 8 {
                        seconds = v as i64;
                    } else if S && v >= 1_000_000_000 {
                        return Err(fail(format!("Timestamp: nanos {v} at byte {v_at} out of range")));
                    } else {
                        nanos = v as i32;
                    }
                }
                if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) || nanos % 1000 != 0 {
                    return Err(fail(format!(
                        "Timestamp at byte {at} (seconds {seconds}, nanos {nanos}) out of range or not whole microseconds"
                    )));
                }
                put_long(out, seconds * 1_000_000 + i64::from(nanos / 1000));
                Ok(())
            }
            Value::Wrapper(s) => {
                let sub_end = length::<S>(buf, pos, end)?;
                if *pos == sub_end {
                    out.extend_from_slice(s.avro_default());
                    return Ok(());
                }
                let at = *pos;
                if buf[*pos] != 8 | s.wire() {
                    return Err(fail(format!("wrapper: tag {} at byte {at}, expected field 1", buf[*pos])));
                }
                *pos += 1;
                let before = out.len();
                self.read_scalar::<S>(*s, buf, pos, sub_end, out)?;
                if *pos != sub_end {
                    return Err(fail(format!("wrapper: more after its value at byte {}", *pos)));
                }
                if S && is_default(&out[before..], s.avro_default()) {
                    return Err(fail(format!("wrapper: its default value written out at byte {at}")));
                }
                Ok(())
            }
        }
    }

    #[inline]
    fn read_scalar<const S: bool>(&self, s: Scalar, buf: &[u8], pos: &mut usize, end: usize, out: &mut Vec<u8>) -> Result<(), Fallback> {
        match s {
            Scalar::Int32 => {
                let at = *pos;
                let v = varint::<S>(buf, pos, end)?;
                if S && v != i64::from(v as i32) as u64 {
                    return Err(fail(format!("int32 at byte {at} not sign-extended to 64 bits")));
                }
                put_long(out, i64::from(v as i32));
            }
            Scalar::Sint32 => {
                let n = u32_varint::<S>(buf, pos, end, "sint32")?;
                put_long(out, i64::from(((n >> 1) as i32) ^ -((n & 1) as i32)));
            }
            Scalar::Sfixed32 => {
                let b = take(buf, pos, end, 4, "sfixed32")?;
                put_long(out, i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            }
            Scalar::Int64 => put_long(out, varint::<S>(buf, pos, end)? as i64),
            Scalar::Sint64 => put_long(out, zigzag(varint::<S>(buf, pos, end)?)),
            Scalar::Sfixed64 => {
                let b = take(buf, pos, end, 8, "sfixed64")?;
                put_long(out, i64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            }
            Scalar::Uint32 => put_long(out, i64::from(u32_varint::<S>(buf, pos, end, "uint32")?)),
            Scalar::Fixed32 => {
                let b = take(buf, pos, end, 4, "fixed32")?;
                put_long(out, i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            }
            Scalar::Uint64 => put_decimal(out, varint::<S>(buf, pos, end)?),
            Scalar::Fixed64 => {
                let b = take(buf, pos, end, 8, "fixed64")?;
                put_decimal(out, u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            }
            Scalar::Float => out.extend_from_slice(take(buf, pos, end, 4, "float")?),
            Scalar::Double => out.extend_from_slice(take(buf, pos, end, 8, "double")?),
            Scalar::Bool if !S => out.push(u8::from(varint::<S>(buf, pos, end)? != 0)),
            Scalar::Bool => match buf.get(*pos) {
                Some(&b) if *pos < end && b <= 1 => {
                    *pos += 1;
                    out.push(b);
                }
                _ => return Err(fail(format!("bool at byte {} not 0 or 1", *pos))),
            },
            Scalar::String | Scalar::Bytes => {
                let at = *pos;
                let e = length::<S>(buf, pos, end)?;
                let bytes = &buf[*pos..e];
                if s == Scalar::String && !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
                    return Err(fail(format!("string at byte {at} is not UTF-8")));
                }
                put_long(out, bytes.len() as i64);
                out.extend_from_slice(bytes);
                *pos = e;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Avro -> Protobuf.

struct AvroReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl AvroReader<'_> {
    fn long(&mut self) -> Result<i64, String> {
        let at = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&b) = self.b.get(self.pos) else {
                return Err(format!("Avro datum truncated at byte {at}"));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("Avro varint overflow at byte {at}"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(zigzag(v));
            }
            shift += 7;
        }
    }

    fn int(&mut self) -> Result<i32, String> {
        let at = self.pos;
        i32::try_from(self.long()?).map_err(|_| format!("Avro int out of range at byte {at}"))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.b.len() - self.pos < n {
            return Err(format!("Avro datum truncated at byte {}", self.pos));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let at = self.pos;
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative Avro length at byte {at}"))?;
        self.take(n)
    }

    /// The next block's item count (0 at the end), Avro's block form.
    fn block(&mut self) -> Result<usize, String> {
        let at = self.pos;
        let mut n = self.long()?;
        if n < 0 {
            n = n.checked_neg().ok_or_else(|| format!("Avro block count at byte {at}"))?;
            self.long()?;
        }
        let n = n as u64;
        if n > (self.b.len() - self.pos) as u64 {
            return Err(format!("Avro block count {n} at byte {at} beyond the bytes left"));
        }
        Ok(n as usize)
    }
}

/// Starts a length-delimited part: a one-byte length placeholder; returns where its bytes start.
#[inline]
fn open_len(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len()
}

/// Ends a length-delimited part: writes its length (moving its bytes if the length needs more
/// than one byte).
#[inline]
fn close_len(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, len as u64);
        out.splice(start - 1..start, prefix);
    }
}

impl ProtobufTranscoder {
    fn write_message(&self, mi: usize, r: &mut AvroReader, segments: &mut Vec<(u32, usize, usize)>, out: &mut Vec<u8>) -> Result<(), String> {
        let m = self.messages.get(mi).ok_or_else(|| format!("no message {mi}"))?;
        if m.in_order {
            for f in &m.fields {
                self.write_field(f, r, segments, out)?;
            }
            return Ok(());
        }
        let start = out.len();
        let base = segments.len();
        for f in &m.fields {
            let s = out.len();
            self.write_field(f, r, segments, out)?;
            segments.push((f.number, s - start, out.len() - start));
        }
        let written = out.split_off(start);
        segments[base..].sort_unstable_by_key(|&(n, _, _)| n);
        for &(_, s, e) in &segments[base..] {
            out.extend_from_slice(&written[s..e]);
        }
        segments.truncate(base);
        Ok(())
    }

    fn write_field(&self, f: &Field, r: &mut AvroReader, segments: &mut Vec<(u32, usize, usize)>, out: &mut Vec<u8>) -> Result<(), String> {
        match &f.card {
            Card::Implicit => {
                let before = out.len();
                out.extend_from_slice(&f.tag);
                if self.write_value(&f.value, r, segments, out)? {
                    out.truncate(before);
                }
            }
            Card::Optional => match r.long()? {
                0 => {}
                1 => {
                    out.extend_from_slice(&f.tag);
                    self.write_value(&f.value, r, segments, out)?;
                }
                i => return Err(format!("union index {i} for {}", f.name)),
            },
            Card::Repeated { packed: true } => {
                let before = out.len();
                out.extend_from_slice(&f.tag);
                let start = open_len(out);
                loop {
                    let n = r.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        self.write_value(&f.value, r, segments, out)?;
                    }
                }
                if out.len() == start {
                    out.truncate(before);
                } else {
                    close_len(out, start);
                }
            }
            Card::Repeated { packed: false } => loop {
                let n = r.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    out.extend_from_slice(&f.tag);
                    self.write_value(&f.value, r, segments, out)?;
                }
            },
            Card::Map { key } => loop {
                let n = r.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    out.extend_from_slice(&f.tag);
                    let start = open_len(out);
                    out.push(8 | key.wire());
                    self.write_scalar(*key, r, out)?;
                    out.push(16 | f.value.wire());
                    self.write_value(&f.value, r, segments, out)?;
                    close_len(out, start);
                }
            },
        }
        Ok(())
    }

    /// Writes one value (no tag); returns whether it is the type's default (for proto3 implicit
    /// presence, where a default is not written).
    fn write_value(&self, v: &Value, r: &mut AvroReader, segments: &mut Vec<(u32, usize, usize)>, out: &mut Vec<u8>) -> Result<bool, String> {
        match v {
            Value::Scalar(s) => self.write_scalar(*s, r, out),
            Value::Enum(e) => {
                let i = r.int()?;
                let n = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.numbers.get(i))
                    .ok_or_else(|| format!("enum index {i} out of range"))?;
                put_varint(out, i64::from(*n) as u64);
                Ok(*n == 0)
            }
            Value::Message(mi) => {
                let start = open_len(out);
                self.write_message(*mi, r, segments, out)?;
                close_len(out, start);
                Ok(false)
            }
            Value::Timestamp => {
                let micros = r.long()?;
                let seconds = micros.div_euclid(1_000_000);
                let nanos = micros.rem_euclid(1_000_000) * 1000;
                let start = open_len(out);
                if seconds != 0 {
                    out.push(8);
                    put_varint(out, seconds as u64);
                }
                if nanos != 0 {
                    out.push(16);
                    put_varint(out, nanos as u64);
                }
                close_len(out, start);
                Ok(false)
            }
            Value::Wrapper(s) => {
                let start = open_len(out);
                out.push(8 | s.wire());
                if self.write_scalar(*s, r, out)? {
                    out.truncate(start);
                }
                close_len(out, start);
                Ok(false)
            }
        }
    }

    fn write_scalar(&self, s: Scalar, r: &mut AvroReader, out: &mut Vec<u8>) -> Result<bool, String> {
        Ok(match s {
            Scalar::Int32 => {
                let v = r.int()?;
                put_varint(out, i64::from(v) as u64);
                v == 0
            }
            Scalar::Sint32 => {
                let v = r.int()?;
                put_varint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
                v == 0
            }
            Scalar::Sfixed32 => {
                let v = r.int()?;
                out.extend_from_slice(&v.to_le_bytes());
                v == 0
            }
            Scalar::Int64 => {
                let v = r.long()?;
                put_varint(out, v as u64);
                v == 0
            }
            Scalar::Sint64 => {
                let v = r.long()?;
                put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
                v == 0
            }
            Scalar::Sfixed64 => {
                let v = r.long()?;
                out.extend_from_slice(&v.to_le_bytes());
                v == 0
            }
            Scalar::Uint32 | Scalar::Fixed32 => {
                let v = r.long()?;
                let v = u32::try_from(v).map_err(|_| format!("{v} is not a uint32"))?;
                if s == Scalar::Uint32 {
                    put_varint(out, u64::from(v));
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                v == 0
            }
            Scalar::Uint64 | Scalar::Fixed64 => {
                let b = r.bytes()?;
                if b.is_empty() || b.len() > 16 {
                    return Err(format!("a decimal of {} bytes for a uint64", b.len()));
                }
                let mut be = [if b[0] & 0x80 != 0 { 0xff } else { 0 }; 16];
                be[16 - b.len()..].copy_from_slice(b);
                let v = i128::from_be_bytes(be);
                let v = u64::try_from(v).map_err(|_| format!("{v} is not a uint64"))?;
                if s == Scalar::Uint64 {
                    put_varint(out, v);
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                v == 0
            }
            Scalar::Float => {
                let b = r.take(4)?;
                out.extend_from_slice(b);
                b == [0; 4]
            }
            Scalar::Double => {
                let b = r.take(8)?;
                out.extend_from_slice(b);
                b == [0; 8]
            }
            Scalar::Bool => {
                let at = r.pos;
                let b = r.take(1)?[0];
                if b > 1 {
                    return Err(format!("boolean byte {b} at byte {at}"));
                }
                out.push(b);
                b == 0
            }
            Scalar::String | Scalar::Bytes => {
                let b = r.bytes()?;
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
                b.is_empty()
            }
        })
    }
}

#[cfg(test)]
mod decimal_tests {
    /// `put_decimal` writes what the byte-by-byte minimal two's complement of the `i128` does.
    #[test]
    fn put_decimal_is_minimal_twos_complement() {
        let mut vs = vec![0u64, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, u64::MAX, u64::MAX >> 1, (u64::MAX >> 1) + 1];
        for b in 0..64 {
            vs.extend([(1u64 << b) - 1, 1u64 << b, (1u64 << b) + 1]);
        }
        for v in vs {
            let be = (v as i128).to_be_bytes();
            let mut start = 0;
            while start < 15 && be[start] == 0 && be[start + 1] & 0x80 == 0 {
                start += 1;
            }
            let mut want = Vec::new();
            super::put_long(&mut want, (16 - start) as i64);
            want.extend_from_slice(&be[start..]);
            let mut got = Vec::new();
            super::put_decimal(&mut got, v);
            assert_eq!(got, want, "{v}");
        }
    }
}
