//! Avro binary values → Arrow columns, losslessly.
//!
//! [`ValueColumns`] holds one Arrow builder per value column of a table schema (the Arrow types
//! iceberg-rust's `schema_to_arrow_schema` gives, field ids included). A [`Decoder`] is a writer
//! schema planned against those columns; [`ValueColumns::append`] adds one row:
//!
//! 1. decode the Avro binary datum into column values (borrowing the input's bytes);
//! 2. **re-encode** those column values with the writer schema and compare with the input;
//! 3. only if the bytes are identical, append the values to the builders. Otherwise the row's
//!    columns are all null and the caller keeps the original bytes in the raw fallback column.
//!
//! A row is appended either way (every builder grows by one), so rows stay aligned with the
//! caller's other columns.
//!
//! # What the lossless check catches
//!
//! Avro's binary encoding is not canonical: the same value has many encodings. Serializers
//! (Java's `BinaryEncoder`, apache-avro, fastavro, confluent-kafka) write one of them; we re-encode
//! the same way, so anything else is caught by the comparison:
//!
//! - varints longer than needed (zig-zag ints, longs, lengths, counts, union and enum indexes);
//! - arrays and maps in several blocks, or in blocks with a negative count and a byte size;
//! - `boolean` bytes other than 0 and 1;
//! - decimals with redundant sign bytes (Java writes `BigInteger.toByteArray()`: minimal, and one
//!   byte for zero);
//! - uuid strings not in `UUID.toString()` form (upper case);
//! - trailing bytes after the datum.
//!
//! Some values round-trip byte for byte but are still kept out of the columns, because an engine
//! reading the column would not give them back (documented in [`Fallback`]): NaNs other than the
//! canonical quiet NaN (engines and the JVM canonicalise NaN payloads), maps with a repeated key
//! (an Iceberg map has unique keys), decimals beyond the declared precision, timestamps whose
//! microseconds overflow a `long`.
//!
//! Values that do not decode (truncated, bad UTF-8, union or enum index out of range, too many
//! items for the bytes left) are [`Fallback::Malformed`]. Nothing here panics on any input, and
//! memory is bounded by the input (an item count larger than the bytes left is malformed).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, TimeUnit};
use thiserror::Error;

use crate::avro::{has_column, Node, WriterSchema};

/// Why a value went to the raw fallback instead of the columns. Its row is still written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fallback {
    /// The writer schema cannot be columns of this table (see [`Decoder::conflict`]).
    #[error("the writer schema does not fit the table's columns")]
    Schema,
    /// The bytes are not a valid encoding of a value of the writer schema.
    #[error("not a valid Avro value at byte {position}: {kind}")]
    Malformed {
        /// Offset in the payload where decoding failed.
        position: usize,
        /// What was wrong.
        kind: Malformed,
    },
    /// The value decodes, but re-encoding it from the column values gives other bytes.
    #[error("re-encoding differs from byte {position} on")]
    NotCanonical {
        /// The first differing byte (or the end of the shorter of the two).
        position: usize,
    },
    /// A float or double NaN other than the canonical quiet NaN: engines do not keep payloads.
    #[error("NaN with a payload")]
    NanPayload,
    /// A map with a repeated key: an Iceberg map has unique keys.
    #[error("map key {0:?} repeated")]
    DuplicateMapKey(String),
    /// A decimal beyond its declared precision, or a timestamp whose microseconds overflow.
    #[error("value out of the column type's range")]
    OutOfRange,
}

/// How bytes failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    /// The value ends early.
    #[error("truncated")]
    Truncated,
    /// A varint longer than 10 bytes, or an `int` outside 32 bits.
    #[error("varint overflow")]
    VarintOverflow,
    /// A negative length of bytes or string.
    #[error("negative length")]
    NegativeLength,
    /// More items announced than bytes left.
    #[error("item count larger than the bytes left")]
    TooManyItems,
    /// A string that is not UTF-8.
    #[error("string is not UTF-8")]
    Utf8,
    /// A union branch index out of range.
    #[error("union index out of range")]
    UnionIndex,
    /// An enum symbol index out of range.
    #[error("enum index out of range")]
    EnumIndex,
    /// A uuid string that is not 36 characters of hex and hyphens.
    #[error("not a uuid")]
    Uuid,
}

/// A decoded value, in the units of its column (microseconds for times and timestamps, the
/// unscaled `i128` for decimals, 16 bytes for uuids, the symbol index for enums).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(&'a [u8]),
    Str(&'a str),
    Enum(u32),
    Decimal(i128),
    Uuid([u8; 16]),
    List(Vec<Value<'a>>),
    Map(Vec<(&'a str, Value<'a>)>),
    Record(Vec<Value<'a>>),
    /// Union position and the value (`Null` for the null branch).
    Union(u32, Box<Value<'a>>),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, kind: Malformed) -> Fallback {
        Fallback::Malformed {
            position: self.pos,
            kind,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn long(&mut self) -> Result<i64, Fallback> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(Malformed::Truncated));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(Malformed::VarintOverflow));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(self.err(Malformed::VarintOverflow))
    }

    fn int(&mut self) -> Result<i32, Fallback> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.err(Malformed::VarintOverflow))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fallback> {
        if n > self.remaining() {
            return Err(self.err(Malformed::Truncated));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn len(&mut self) -> Result<usize, Fallback> {
        let n = self.long()?;
        if n < 0 {
            return Err(self.err(Malformed::NegativeLength));
        }
        usize::try_from(n).map_err(|_| self.err(Malformed::Truncated))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Fallback> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, Fallback> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| Fallback::Malformed {
            position: start,
            kind: Malformed::Utf8,
        })
    }

    /// The item count of the next array or map block (0 ends the sequence).
    fn block_count(&mut self) -> Result<usize, Fallback> {
        let n = self.long()?;
        let n = if n < 0 {
            // A negative count is followed by the block's size in bytes.
            self.long()?;
            n.checked_neg()
                .ok_or_else(|| self.err(Malformed::VarintOverflow))?
        } else {
            n
        };
        let n = usize::try_from(n).map_err(|_| self.err(Malformed::TooManyItems))?;
        if n > self.remaining() {
            return Err(self.err(Malformed::TooManyItems));
        }
        Ok(n)
    }
}

const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;

fn decode<'a>(node: &Node, r: &mut Reader<'a>) -> Result<Value<'a>, Fallback> {
    Ok(match node {
        Node::Null => Value::Null,
        Node::Boolean => {
            let b = r.take(1)?[0];
            // Anything but 0 reads as true (Java); re-encoding catches bytes other than 1.
            Value::Bool(b != 0)
        }
        Node::Int | Node::Date => Value::Int(r.int()?),
        Node::Long => Value::Long(r.long()?),
        Node::Float => {
            let v = f32::from_le_bytes(r.take(4)?.try_into().unwrap_or_default());
            if v.is_nan() && v.to_bits() != CANONICAL_NAN_F32 {
                return Err(Fallback::NanPayload);
            }
            Value::Float(v)
        }
        Node::Double => {
            let v = f64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default());
            if v.is_nan() && v.to_bits() != CANONICAL_NAN_F64 {
                return Err(Fallback::NanPayload);
            }
            Value::Double(v)
        }
        Node::Bytes => Value::Bytes(r.bytes()?),
        Node::String => Value::Str(r.str()?),
        Node::Time { millis: true } => Value::Long(i64::from(r.int()?) * 1000),
        Node::Time { millis: false } => Value::Long(r.long()?),
        Node::Timestamp { millis: true, .. } => {
            Value::Long(r.long()?.checked_mul(1000).ok_or(Fallback::OutOfRange)?)
        }
        Node::Timestamp { millis: false, .. } => Value::Long(r.long()?),
        Node::Uuid { fixed: true } => {
            let mut u = [0u8; 16];
            u.copy_from_slice(r.take(16)?);
            Value::Uuid(u)
        }
        Node::Uuid { fixed: false } => {
            let start = r.pos;
            let s = r.bytes()?;
            Value::Uuid(parse_uuid(s).ok_or(Fallback::Malformed {
                position: start,
                kind: Malformed::Uuid,
            })?)
        }
        Node::Decimal {
            precision, fixed, ..
        } => {
            let b = match fixed {
                Some(n) => r.take(*n)?,
                None => r.bytes()?,
            };
            let v = decimal_from_be(b).ok_or(Fallback::OutOfRange)?;
            if v.unsigned_abs() >= 10u128.pow(u32::from(*precision)) {
                return Err(Fallback::OutOfRange);
            }
            Value::Decimal(v)
        }
        Node::Fixed(n) => Value::Bytes(r.take(*n)?),
        Node::Enum(symbols) => {
            let i = r.int()?;
            if i < 0 || i as usize >= symbols.len() {
                return Err(r.err(Malformed::EnumIndex));
            }
            Value::Enum(i as u32)
        }
        Node::Array(item) => {
            let mut items = Vec::new();
            loop {
                let n = r.block_count()?;
                if n == 0 {
                    break;
                }
                items.reserve(n);
                for _ in 0..n {
                    items.push(decode(item, r)?);
                }
            }
            Value::List(items)
        }
        Node::Map(value) => {
            let mut entries: Vec<(&'a str, Value<'a>)> = Vec::new();
            loop {
                let n = r.block_count()?;
                if n == 0 {
                    break;
                }
                entries.reserve(n);
                for _ in 0..n {
                    let k = r.str()?;
                    entries.push((k, decode(value, r)?));
                }
            }
            if let Some(k) = repeated_key(&entries) {
                return Err(Fallback::DuplicateMapKey(k.to_string()));
            }
            Value::Map(entries)
        }
        Node::Record(fields) => {
            let mut vs = Vec::with_capacity(fields.len());
            for f in fields {
                vs.push(decode(&f.node, r)?);
            }
            Value::Record(vs)
        }
        Node::Union(u) => {
            let i = r.int()?;
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| u.by_index.get(i))
                .ok_or_else(|| r.err(Malformed::UnionIndex))?;
            match slot {
                None => Value::Union(i as u32, Box::new(Value::Null)),
                Some(b) => Value::Union(i as u32, Box::new(decode(&u.branches[*b].node, r)?)),
            }
        }
    })
}

/// The first key that repeats an earlier one among a map's entries, if any. Small maps (most) are compared
/// pairwise, which is cheaper than hashing every key.
fn repeated_key<'a, T>(entries: &[(&'a str, T)]) -> Option<&'a str> {
    if entries.len() <= 16 {
        return entries
            .iter()
            .enumerate()
            .find(|(j, (k, _))| entries[..*j].iter().any(|(o, _)| o == k))
            .map(|(_, (k, _))| *k);
    }
    let mut seen = HashSet::with_capacity(entries.len());
    entries.iter().map(|(k, _)| *k).find(|k| !seen.insert(*k))
}

/// Big-endian two's complement → i128 (any length, if the value fits).
fn decimal_from_be(b: &[u8]) -> Option<i128> {
    if b.is_empty() {
        return Some(0);
    }
    let negative = b[0] & 0x80 != 0;
    let sign = if negative { 0xff } else { 0 };
    let skip = b.len().saturating_sub(16);
    if b[..skip].iter().any(|&x| x != sign) {
        return None;
    }
    let rest = &b[skip..];
    let mut buf = [sign; 16];
    buf[16 - rest.len()..].copy_from_slice(rest);
    let v = i128::from_be_bytes(buf);
    // A 16-byte tail whose sign differs from the dropped bytes does not fit.
    if skip > 0 && (v < 0) != negative {
        return None;
    }
    Some(v)
}

fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    if s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if s[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hi = (s[i] as char).to_digit(16)?;
        let lo = (s[i + 1] as char).to_digit(16)?;
        out[n] = (hi * 16 + lo) as u8;
        n += 1;
        i += 2;
    }
    Some(out)
}

/// How to encode: canonical (what serializers write), or one of the non-canonical forms tests
/// feed back to the decoder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Style {
    /// Pad every varint with one redundant continuation byte.
    pub(crate) pad_varints: bool,
    /// Write arrays and maps one item per block.
    pub(crate) split_blocks: bool,
    /// Write block counts negated, followed by the block's byte size.
    pub(crate) sized_blocks: bool,
}

fn write_long(v: i64, out: &mut Vec<u8>, style: Style) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    if z < 0x80 && !style.pad_varints {
        // Most lengths, counts, indexes and small numbers: one byte.
        out.push(z as u8);
        return;
    }
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            if style.pad_varints && out.len() < usize::MAX {
                out.push(b | 0x80);
                out.push(0);
            } else {
                out.push(b);
            }
            return;
        }
        out.push(b | 0x80);
    }
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>, style: Style) {
    write_long(b.len() as i64, out, style);
    out.extend_from_slice(b);
}

/// Encodes column values back into Avro binary with the writer's node.
pub(crate) fn encode(node: &Node, v: &Value<'_>, out: &mut Vec<u8>, style: Style) {
    match (node, v) {
        (Node::Null, Value::Null) => {}
        (Node::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (Node::Int | Node::Date, Value::Int(i)) => write_long(i64::from(*i), out, style),
        (Node::Long, Value::Long(l)) => write_long(*l, out, style),
        (Node::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Node::Double, Value::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
        (Node::Bytes, Value::Bytes(b)) => write_bytes(b, out, style),
        (Node::String, Value::Str(s)) => write_bytes(s.as_bytes(), out, style),
        (Node::Time { millis: true } | Node::Timestamp { millis: true, .. }, Value::Long(us)) => {
            write_long(us / 1000, out, style)
        }
        (Node::Time { millis: false } | Node::Timestamp { millis: false, .. }, Value::Long(us)) => {
            write_long(*us, out, style)
        }
        (Node::Uuid { fixed: true }, Value::Uuid(u)) => out.extend_from_slice(u),
        (Node::Uuid { fixed: false }, Value::Uuid(u)) => {
            write_bytes(format_uuid(u).as_bytes(), out, style)
        }
        (Node::Decimal { fixed, .. }, Value::Decimal(d)) => {
            let be = d.to_be_bytes();
            match fixed {
                Some(n) => {
                    let sign = if *d < 0 { 0xff } else { 0 };
                    let n = *n;
                    if n >= 16 {
                        out.extend(std::iter::repeat_n(sign, n - 16));
                        out.extend_from_slice(&be);
                    } else {
                        out.extend_from_slice(&be[16 - n..]);
                    }
                }
                None => {
                    // Minimal two's complement, at least one byte (BigInteger.toByteArray()).
                    let sign = if *d < 0 { 0xff } else { 0 };
                    let mut start = 0;
                    while start < 15 && be[start] == sign && (be[start + 1] & 0x80) == (sign & 0x80)
                    {
                        start += 1;
                    }
                    write_bytes(&be[start..], out, style);
                }
            }
        }
        (Node::Fixed(_), Value::Bytes(b)) => out.extend_from_slice(b),
        (Node::Enum(_), Value::Enum(i)) => write_long(i64::from(*i), out, style),
        (Node::Array(item), Value::List(items)) => {
            write_blocks(items, out, style, |x, out| encode(item, x, out, style))
        }
        (Node::Map(value), Value::Map(entries)) => {
            write_blocks(entries, out, style, |(k, x), out| {
                write_bytes(k.as_bytes(), out, style);
                encode(value, x, out, style);
            })
        }
        (Node::Record(fields), Value::Record(vs)) => {
            for (f, x) in fields.iter().zip(vs) {
                encode(&f.node, x, out, style);
            }
        }
        (Node::Union(u), Value::Union(i, x)) => {
            write_long(i64::from(*i), out, style);
            if let Some(Some(b)) = u.by_index.get(*i as usize) {
                encode(&u.branches[*b].node, x, out, style);
            }
        }
        // Values always come from decoding the same node; a mismatch writes nothing, and the
        // comparison then sends the value to the fallback.
        _ => debug_assert!(false, "value {v:?} does not match {node:?}"),
    }
}

fn write_blocks<T>(
    items: &[T],
    out: &mut Vec<u8>,
    style: Style,
    mut each: impl FnMut(&T, &mut Vec<u8>),
) {
    let chunk = if style.split_blocks {
        1
    } else {
        items.len().max(1)
    };
    for block in items.chunks(chunk) {
        if style.sized_blocks {
            let mut body = Vec::new();
            for x in block {
                each(x, &mut body);
            }
            write_long(-(block.len() as i64), out, style);
            write_long(body.len() as i64, out, style);
            out.extend_from_slice(&body);
        } else {
            write_long(block.len() as i64, out, style);
            for x in block {
                each(x, out);
            }
        }
    }
    write_long(0, out, style);
}

fn format_uuid(u: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Decodes one payload with a writer schema: the top-level column values.
pub(crate) fn decode_payload<'a>(
    writer: &WriterSchema,
    payload: &'a [u8],
) -> Result<Vec<Value<'a>>, Fallback> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let mut values = Vec::with_capacity(writer.fields.len());
    for f in &writer.fields {
        values.push(decode(&f.node, &mut r)?);
    }
    if r.pos != payload.len() {
        return Err(Fallback::NotCanonical { position: r.pos });
    }
    Ok(values)
}

/// Re-encodes top-level column values with the writer schema.
pub(crate) fn encode_payload(
    writer: &WriterSchema,
    values: &[Value<'_>],
    out: &mut Vec<u8>,
    style: Style,
) {
    for (f, v) in writer.fields.iter().zip(values) {
        encode(&f.node, v, out, style);
    }
}

/// How a writer node lands in a column: mirrors [`Node`], with struct child indexes resolved.
#[derive(Debug, Clone)]
enum Plan {
    Leaf,
    List(Box<Plan>),
    Map(Box<Plan>),
    /// Per writer field: the struct child it fills (`None`: no column).
    Struct(Vec<Option<(usize, Plan)>>, Vec<usize>),
    /// A union of 2+ non-null branches: per branch (in `Union::branches` order), its child.
    UnionStruct(Vec<(usize, Plan)>),
    /// A union with one non-null branch: its plan.
    Single(Box<Plan>),
}

fn plan(node: &Node, dt: &DataType, path: &str) -> Result<Plan, String> {
    let mismatch = || {
        format!(
            "{path}: Avro {} does not fit column type {dt}",
            node_name(node)
        )
    };
    match (node, dt) {
        (Node::Boolean, DataType::Boolean)
        | (Node::Int, DataType::Int32 | DataType::Int64)
        | (Node::Long, DataType::Int64)
        | (Node::Float, DataType::Float32 | DataType::Float64)
        | (Node::Double, DataType::Float64)
        | (Node::Bytes, DataType::LargeBinary)
        | (Node::String | Node::Enum(_), DataType::Utf8)
        | (Node::Date, DataType::Date32)
        | (Node::Time { .. }, DataType::Time64(TimeUnit::Microsecond))
        | (Node::Uuid { .. }, DataType::FixedSizeBinary(16)) => Ok(Plan::Leaf),
        (Node::Timestamp { utc, .. }, DataType::Timestamp(TimeUnit::Microsecond, tz))
            if *utc == tz.is_some() =>
        {
            Ok(Plan::Leaf)
        }
        (Node::Fixed(n), DataType::FixedSizeBinary(m)) if *n as i64 == i64::from(*m) => {
            Ok(Plan::Leaf)
        }
        (
            Node::Decimal {
                precision, scale, ..
            },
            DataType::Decimal128(p, s),
        ) if i16::from(*scale) == i16::from(*s) && precision <= p => Ok(Plan::Leaf),
        (Node::Array(item), DataType::List(f)) => Ok(Plan::List(Box::new(plan(
            item,
            f.data_type(),
            &format!("{path}.element"),
        )?))),
        (Node::Map(value), DataType::Map(entries, _)) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => {
                Ok(Plan::Map(Box::new(plan(
                    value,
                    kv[1].data_type(),
                    &format!("{path}.value"),
                )?)))
            }
            _ => Err(mismatch()),
        },
        (Node::Record(fields), DataType::Struct(children)) => {
            let named: Vec<(&str, &Node)> =
                fields.iter().map(|f| (f.name.as_str(), &f.node)).collect();
            let (per_field, missing) = plan_struct(&named, children, path)?;
            Ok(Plan::Struct(per_field, missing))
        }
        (Node::Union(u), _) if u.single().is_some() => {
            let b = u.single().map(|b| &b.node).unwrap_or(&Node::Null);
            Ok(Plan::Single(Box::new(plan(b, dt, path)?)))
        }
        (Node::Union(u), DataType::Struct(children)) => {
            let named: Vec<(&str, &Node)> = u
                .branches
                .iter()
                .map(|b| (b.name.as_str(), &b.node))
                .collect();
            let (per_branch, _) = plan_struct(&named, children, path)?;
            Ok(Plan::UnionStruct(
                per_branch
                    .into_iter()
                    .map(|p| p.ok_or_else(mismatch))
                    .collect::<Result<_, _>>()?,
            ))
        }
        _ => Err(mismatch()),
    }
}

/// Per writer field, the child it fills and how; and the children no field fills.
type FieldPlans = (Vec<Option<(usize, Plan)>>, Vec<usize>);

/// Plans named writer fields against struct children; also returns the children no field fills.
fn plan_struct(
    named: &[(&str, &Node)],
    children: &Fields,
    path: &str,
) -> Result<FieldPlans, String> {
    let mut filled = vec![false; children.len()];
    let mut per = Vec::with_capacity(named.len());
    for (name, node) in named {
        if !has_column(node) {
            per.push(None);
            continue;
        }
        let p = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        let Some(i) = children.iter().position(|c| c.name() == name) else {
            return Err(format!("{p}: no such column"));
        };
        filled[i] = true;
        per.push(Some((i, plan(node, children[i].data_type(), &p)?)));
    }
    let missing: Vec<usize> = (0..children.len()).filter(|&i| !filled[i]).collect();
    if let Some(&i) = missing.iter().find(|&&i| !children[i].is_nullable()) {
        return Err(format!(
            "{path}.{}: required column the writer does not write",
            children[i].name()
        ));
    }
    Ok((per, missing))
}

fn node_name(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Boolean => "boolean",
        Node::Int => "int",
        Node::Long => "long",
        Node::Float => "float",
        Node::Double => "double",
        Node::Bytes => "bytes",
        Node::String => "string",
        Node::Date => "date",
        Node::Time { .. } => "time",
        Node::Timestamp { .. } => "timestamp",
        Node::Uuid { .. } => "uuid",
        Node::Decimal { .. } => "decimal",
        Node::Fixed(_) => "fixed",
        Node::Enum(_) => "enum",
        Node::Array(_) => "array",
        Node::Map(_) => "map",
        Node::Record(_) => "record",
        Node::Union(_) => "union",
    }
}

/// One Arrow builder per column type iceberg-rust produces.
enum Builder {
    Boolean(BooleanBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    String(StringBuilder),
    Binary(LargeBinaryBuilder),
    Fixed(FixedSizeBinaryBuilder, usize),
    Decimal(Decimal128Builder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Builder>,
    },
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        keys: StringBuilder,
        values: Box<Builder>,
    },
    Struct {
        fields: Fields,
        children: Vec<Builder>,
        nulls: NullBufferBuilder,
    },
}

/// Error building column builders for a table schema.
#[derive(Debug, Error)]
pub enum ColumnsError {
    /// The table schema has no Arrow form (iceberg-rust refused it).
    #[error("table schema has no Arrow form: {0}")]
    Arrow(#[from] iceberg::Error),
    /// A column type this crate does not build (e.g. a nanosecond timestamp of format v3).
    #[error("column {column}: type {data_type} is not built by calving-schema")]
    Unsupported {
        /// The column's name.
        column: String,
        /// Its Arrow type.
        data_type: DataType,
    },
    /// Arrow refused the arrays (a bug: builders follow the schema's types).
    #[error("building arrays: {0}")]
    Finish(#[from] ArrowError),
}

impl Builder {
    fn new(dt: &DataType, column: &str) -> Result<Self, ColumnsError> {
        Ok(match dt {
            DataType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            DataType::Int32 => Builder::Int(Int32Builder::new()),
            DataType::Int64 => Builder::Long(Int64Builder::new()),
            DataType::Float32 => Builder::Float(Float32Builder::new()),
            DataType::Float64 => Builder::Double(Float64Builder::new()),
            DataType::Date32 => Builder::Date(Date32Builder::new()),
            DataType::Time64(TimeUnit::Microsecond) => {
                Builder::Time(Time64MicrosecondBuilder::new())
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone()))
            }
            DataType::Utf8 => Builder::String(StringBuilder::new()),
            DataType::LargeBinary => Builder::Binary(LargeBinaryBuilder::new()),
            DataType::FixedSizeBinary(n) if *n >= 0 => {
                Builder::Fixed(FixedSizeBinaryBuilder::new(*n), *n as usize)
            }
            DataType::Decimal128(p, s) => {
                Builder::Decimal(Decimal128Builder::new().with_precision_and_scale(*p, *s)?)
            }
            DataType::List(f) => Builder::List {
                field: f.clone(),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                child: Box::new(Builder::new(f.data_type(), column)?),
            },
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => {
                    Builder::Map {
                        entries: entries.clone(),
                        offsets: vec![0],
                        nulls: NullBufferBuilder::new(0),
                        keys: StringBuilder::new(),
                        values: Box::new(Builder::new(kv[1].data_type(), column)?),
                    }
                }
                _ => {
                    return Err(ColumnsError::Unsupported {
                        column: column.into(),
                        data_type: dt.clone(),
                    })
                }
            },
            DataType::Struct(fields) => Builder::Struct {
                fields: fields.clone(),
                children: fields
                    .iter()
                    .map(|f| Builder::new(f.data_type(), column))
                    .collect::<Result<_, _>>()?,
                nulls: NullBufferBuilder::new(0),
            },
            _ => {
                return Err(ColumnsError::Unsupported {
                    column: column.into(),
                    data_type: dt.clone(),
                })
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Long(b) => b.append_null(),
            Builder::Float(b) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::String(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Fixed(b, _) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::List { offsets, nulls, .. } | Builder::Map { offsets, nulls, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
            Builder::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(Builder::append_null);
                nulls.append_null();
            }
        }
    }

    /// Appends a decoded value. `plan` was checked against this builder's type, so the shapes
    /// match; a mismatch (impossible) appends a null rather than panicking.
    fn append(&mut self, node: &Node, plan: &Plan, v: &Value<'_>) {
        match (self, node, plan, v) {
            (b, _, _, Value::Null) => b.append_null(),
            (Builder::Boolean(b), _, _, Value::Bool(x)) => b.append_value(*x),
            (Builder::Int(b), _, _, Value::Int(x)) => b.append_value(*x),
            (Builder::Long(b), _, _, Value::Int(x)) => b.append_value(i64::from(*x)),
            (Builder::Long(b), _, _, Value::Long(x)) => b.append_value(*x),
            (Builder::Float(b), _, _, Value::Float(x)) => b.append_value(*x),
            (Builder::Double(b), _, _, Value::Float(x)) => b.append_value(f64::from(*x)),
            (Builder::Double(b), _, _, Value::Double(x)) => b.append_value(*x),
            (Builder::Date(b), _, _, Value::Int(x)) => b.append_value(*x),
            (Builder::Time(b), _, _, Value::Long(x)) => b.append_value(*x),
            (Builder::Timestamp(b), _, _, Value::Long(x)) => b.append_value(*x),
            (Builder::String(b), _, _, Value::Str(s)) => b.append_value(s),
            (Builder::String(b), Node::Enum(symbols), _, Value::Enum(i)) => {
                match symbols.get(*i as usize) {
                    Some(s) => b.append_value(s),
                    None => b.append_null(),
                }
            }
            (Builder::Binary(b), _, _, Value::Bytes(x)) => b.append_value(x),
            (Builder::Fixed(b, n), _, _, Value::Bytes(x)) if x.len() == *n => {
                let _ = b.append_value(x);
            }
            (Builder::Fixed(b, 16), _, _, Value::Uuid(u)) => {
                let _ = b.append_value(u);
            }
            (Builder::Decimal(b), _, _, Value::Decimal(d)) => b.append_value(*d),
            (
                Builder::List {
                    offsets,
                    nulls,
                    child,
                    ..
                },
                Node::Array(item),
                Plan::List(p),
                Value::List(items),
            ) => {
                for x in items {
                    child.append(item, p, x);
                }
                offsets.push(offsets.last().unwrap_or(&0) + items.len() as i32);
                nulls.append_non_null();
            }
            (
                Builder::Map {
                    offsets,
                    nulls,
                    keys,
                    values,
                    ..
                },
                Node::Map(value),
                Plan::Map(p),
                Value::Map(entries),
            ) => {
                for (k, x) in entries {
                    keys.append_value(k);
                    values.append(value, p, x);
                }
                offsets.push(offsets.last().unwrap_or(&0) + entries.len() as i32);
                nulls.append_non_null();
            }
            (
                Builder::Struct {
                    children, nulls, ..
                },
                Node::Record(fields),
                Plan::Struct(per_field, missing),
                Value::Record(vs),
            ) => {
                for ((f, p), x) in fields.iter().zip(per_field).zip(vs) {
                    if let Some((i, p)) = p {
                        children[*i].append(&f.node, p, x);
                    }
                }
                for &i in missing {
                    children[i].append_null();
                }
                nulls.append_non_null();
            }
            (b, Node::Union(u), Plan::Single(p), Value::Union(i, x)) => {
                match u.by_index.get(*i as usize) {
                    Some(Some(k)) => b.append(&u.branches[*k].node, p, x),
                    _ => b.append_null(),
                }
            }
            (
                Builder::Struct {
                    children, nulls, ..
                },
                Node::Union(u),
                Plan::UnionStruct(per_branch),
                Value::Union(i, x),
            ) => match u.by_index.get(*i as usize) {
                Some(Some(k)) => {
                    let (child, p) = &per_branch[*k];
                    for (j, c) in children.iter_mut().enumerate() {
                        if j == *child {
                            c.append(&u.branches[*k].node, p, x);
                        } else {
                            c.append_null();
                        }
                    }
                    nulls.append_non_null();
                }
                _ => {
                    children.iter_mut().for_each(Builder::append_null);
                    nulls.append_null();
                }
            },
            (b, _, _, _) => {
                debug_assert!(false, "value {v:?} does not fit its column");
                b.append_null();
            }
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Long(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::String(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Fixed(b, _) => Arc::new(b.finish()),
            Builder::Decimal(b) => Arc::new(b.finish()),
            Builder::List {
                field,
                offsets,
                nulls,
                child,
            } => {
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                Arc::new(ListArray::try_new(
                    field.clone(),
                    offsets,
                    child.finish()?,
                    nulls.finish(),
                )?)
            }
            Builder::Map {
                entries,
                offsets,
                nulls,
                keys,
                values,
            } => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(ArrowError::SchemaError(
                        "map entries are not a struct".into(),
                    ));
                };
                let keys: ArrayRef = Arc::new(keys.finish());
                let entry_array =
                    StructArray::try_new(kv.clone(), vec![keys, values.finish()?], None)?;
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    offsets,
                    entry_array,
                    nulls.finish(),
                    false,
                )?)
            }
            Builder::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Builder::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                let len = arrays.first().map(|a| a.len());
                match len {
                    Some(_) => Arc::new(StructArray::try_new(
                        fields.clone(),
                        arrays,
                        nulls.finish(),
                    )?),
                    None => {
                        let nulls = nulls.finish();
                        let n = nulls.as_ref().map(|n| n.len()).unwrap_or(0);
                        Arc::new(StructArray::new_empty_fields(n, nulls))
                    }
                }
            }
        })
    }
}

struct Column {
    field: FieldRef,
    builder: Builder,
}

/// Builders for the value columns of a table schema, filled one row at a time.
pub struct ValueColumns {
    columns: Vec<Column>,
    rows: usize,
}

/// A writer schema planned against [`ValueColumns`]: decodes its values into those columns.
pub struct Decoder {
    writer: Arc<WriterSchema>,
    /// Per top-level writer field: the column it fills; or why the schema does not fit.
    plan: Result<FieldPlans, String>,
    scratch: Vec<u8>,
}

impl Decoder {
    /// Why this writer schema's values all go to the raw fallback, if they do.
    pub fn conflict(&self) -> Option<&str> {
        self.plan.as_ref().err().map(String::as_str)
    }

    /// The writer schema.
    pub fn writer(&self) -> &Arc<WriterSchema> {
        &self.writer
    }
}

impl ValueColumns {
    /// Builders for every top-level column of `schema` whose name is not in `reserved` (the
    /// columns the caller fills itself: the `kafka` struct, the raw fallback, …).
    pub fn new(schema: &iceberg::spec::Schema, reserved: &[&str]) -> Result<Self, ColumnsError> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema)?;
        let columns = arrow
            .fields()
            .iter()
            .filter(|f| !reserved.contains(&f.name().as_str()))
            .map(|f| {
                Ok(Column {
                    field: f.clone(),
                    builder: Builder::new(f.data_type(), f.name())?,
                })
            })
            .collect::<Result<_, ColumnsError>>()?;
        Ok(Self { columns, rows: 0 })
    }

    /// Builders for the columns of a table made from `writer` alone (field ids from 1, as
    /// [`WriterSchema::iceberg_fields`] numbers them): for measuring and testing the decoder
    /// without a table.
    pub fn for_writer(writer: &WriterSchema) -> Result<Self, ColumnsError> {
        let schema = iceberg::spec::Schema::builder().with_fields(writer.iceberg_fields(1)).build()?;
        Self::new(&schema, &[])
    }

    /// The Arrow fields of the value columns, in table order (field ids in their metadata).
    pub fn fields(&self) -> Vec<FieldRef> {
        self.columns.iter().map(|c| c.field.clone()).collect()
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Plans a writer schema against these columns.
    pub fn decoder(&self, writer: Arc<WriterSchema>) -> Decoder {
        let children: Fields = self.columns.iter().map(|c| c.field.clone()).collect();
        let named: Vec<(&str, &Node)> = writer
            .fields
            .iter()
            .map(|f| (f.name.as_str(), &f.node))
            .collect();
        let plan = plan_struct(&named, &children, "");
        Decoder {
            writer,
            plan,
            scratch: Vec::new(),
        }
    }

    /// Appends a row with every value column null (no value, or a value kept raw).
    pub fn append_null(&mut self) {
        for c in &mut self.columns {
            c.builder.append_null();
        }
        self.rows += 1;
    }

    /// Appends one row from an Avro binary payload (the datum after the 5-byte header). On
    /// `Err`, the row's value columns are null and the caller keeps the payload raw.
    pub fn append(&mut self, decoder: &mut Decoder, payload: &[u8]) -> Result<(), Fallback> {
        let result = Self::check(decoder, payload);
        match result {
            Ok(values) => {
                let Ok((per_field, missing)) = &decoder.plan else {
                    // `check` refuses values of a schema without a plan.
                    self.append_null();
                    return Err(Fallback::Schema);
                };
                for ((f, p), v) in decoder.writer.fields.iter().zip(per_field).zip(&values) {
                    if let Some((i, p)) = p {
                        self.columns[*i].builder.append(&f.node, p, v);
                    }
                }
                for &i in missing {
                    self.columns[i].builder.append_null();
                }
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                self.append_null();
                Err(e)
            }
        }
    }

    fn check<'a>(decoder: &mut Decoder, payload: &'a [u8]) -> Result<Vec<Value<'a>>, Fallback> {
        if decoder.plan.is_err() {
            return Err(Fallback::Schema);
        }
        let values = decode_payload(&decoder.writer, payload)?;
        decoder.scratch.clear();
        encode_payload(
            &decoder.writer,
            &values,
            &mut decoder.scratch,
            Style::default(),
        );
        if decoder.scratch != payload {
            let position = decoder
                .scratch
                .iter()
                .zip(payload)
                .position(|(a, b)| a != b)
                .unwrap_or(decoder.scratch.len().min(payload.len()));
            return Err(Fallback::NotCanonical { position });
        }
        Ok(values)
    }

    /// The arrays of the rows appended so far (one per value column, in [`fields`](Self::fields)
    /// order); the builders start over empty.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, ColumnsError> {
        self.rows = 0;
        Ok(self
            .columns
            .iter_mut()
            .map(|c| c.builder.finish())
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
