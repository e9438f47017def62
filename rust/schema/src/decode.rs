//! Avro binary values → Arrow columns, losslessly.
//!
//! [`ValueColumns`] holds one column builder per value column of a table schema (the Arrow types
//! iceberg-rust's `schema_to_arrow_schema` gives, field ids included). A [`Decoder`] is a writer
//! schema planned against those columns (and compiled for decoding); [`ValueColumns::append`] adds
//! one row:
//!
//! 1. walk the Avro binary datum once, appending each value straight into its column builder
//!    (in column units: microseconds, unscaled decimals, 16-byte uuids, enum symbols), and check
//!    on the way that every part of it is in the **canonical encoding**: the bytes that encoding
//!    the decoded values again with the writer schema would give (see below);
//! 2. if the datum is malformed, out of the columns' range, or not canonical, cut every builder
//!    back to the rows before it: the row's columns are all null and the caller keeps the
//!    original bytes in the raw fallback column.
//!
//! A row is appended either way (every builder grows by one), so rows stay aligned with the
//! caller's other columns.
//!
//! # The lossless rule
//!
//! A value goes to the columns only if re-encoding its column values with the writer schema gives
//! back exactly its bytes. Avro's binary encoding is not canonical: the same value has many
//! encodings. Serializers (Java's `BinaryEncoder`, apache-avro, fastavro, confluent-kafka) write
//! one of them, the one this module's `encode` writes. A datum's bytes equal that re-encoding
//! exactly when each of its parts is in canonical form (Avro's decoding is deterministic, so the
//! re-encoding splits into the same parts), which the decoder checks inline instead of
//! re-encoding:
//!
//! - varints are minimal: a varint of several bytes whose last byte is 0 is not (zig-zag ints,
//!   longs, lengths, counts, union and enum indexes);
//! - arrays and maps are written as Java writes them: an empty one as a single 0 count, any other
//!   as one block with a positive count (not negated and followed by a byte size), then 0;
//! - `boolean` bytes are 0 or 1;
//! - decimals on `bytes` are minimal two's complement (Java writes `BigInteger.toByteArray()`, one
//!   byte for zero); any `fixed` is its value's only encoding;
//! - uuid strings are in `UUID.toString()` form (lower case);
//! - nothing follows the datum.
//!
//! Decoding goes on past a non-canonical part: a later malformed or out-of-range part is reported
//! as such ([`Fallback::NotCanonical`] only if the whole datum decodes), exactly the outcome of
//! the first implementation, which decoded a value tree, re-encoded it and compared the bytes.
//! That implementation is kept, compiled for tests only, as the oracle of property tests
//! (`decode/tests.rs`): on random writer schemas (every node kind and logical type) with
//! canonical, out-of-range, re-styled (padded varints, split and sized blocks), mutated,
//! truncated and random bytes, both give the same outcome (the same [`Fallback`], the position of
//! a `NotCanonical` aside) and equal arrays.
//!
//! Some values round-trip byte for byte but are still kept out of the columns, because an engine
//! reading the column would not give them back (documented in [`Fallback`]): NaNs other than the
//! canonical quiet NaN (engines and the JVM canonicalise NaN payloads), maps with a repeated key
//! (an Iceberg map has unique keys), decimals beyond the declared precision, timestamps whose
//! microseconds overflow a `long`.
//!
//! Values that do not decode (truncated, bad UTF-8, union or enum index out of range, too many
//! items for the bytes left) are [`Fallback::Malformed`]. Nothing here panics on any input, and
//! memory is bounded by the input (an item count larger than the bytes left is malformed, and
//! nothing is allocated from a count).

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, TimeUnit};
use thiserror::Error;

use crate::avro::{has_column, Node, WriterSchema};
use crate::transcode::{PayloadFraming, Transcoder, FIRST_MESSAGE_INDEXES};

mod columns;
mod direct;
#[cfg(test)]
mod oracle;

use columns::Col;
#[cfg(test)]
pub(crate) use oracle::{decode_payload, encode_payload, OracleColumns, Reader};

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
    #[error("not the canonical encoding from byte {position} on")]
    NotCanonical {
        /// Where the first part that is not in canonical form starts (a varint, a length, an
        /// array or map block count, a boolean byte…), or the first byte after the datum. It
        /// can precede the first byte that differs from the re-encoding.
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
    /// A Protobuf or JSON value that does not decode with its writer schema, holds what its
    /// columns cannot (an unknown field, an unknown enum number), or whose bytes the columns do
    /// not give back (see [`crate::transcode`]).
    #[error("{format} value: {reason}")]
    Transcode {
        /// `protobuf` or `json`.
        format: &'static str,
        /// What was found, and where.
        reason: String,
    },
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
#[cfg(test)]
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
pub(crate) const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
pub(crate) const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;


/// Big-endian two's complement → i128 (any length, if the value fits).
pub(crate) fn decimal_from_be(b: &[u8]) -> Option<i128> {
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

pub(crate) fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
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
    #[cfg(test)]
    pub(crate) split_blocks: bool,
    /// Write block counts negated, followed by the block's byte size.
    #[cfg(test)]
    pub(crate) sized_blocks: bool,
}

impl Style {
    /// What serializers write.
    pub(crate) const CANONICAL: Style = Style {
        pad_varints: false,
        #[cfg(test)]
        split_blocks: false,
        #[cfg(test)]
        sized_blocks: false,
    };
}

pub(crate) fn write_long(v: i64, out: &mut Vec<u8>, style: Style) {
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

/// Encodes column values back into Avro binary with the writer's node (the oracles' way back;
/// serving uses [`crate::encode::RowEncoder`]).
#[cfg(test)]
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
        (Node::Decimal { fixed, .. }, Value::Decimal(d)) => write_decimal(*d, *fixed, out, style),
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

/// A decimal's unscaled value as Avro writes it: on a `fixed(n)`, n bytes of big-endian two's
/// complement; on `bytes`, the minimal two's complement, at least one byte (Java's
/// `BigInteger.toByteArray()`).
pub(crate) fn write_decimal(d: i128, fixed: Option<usize>, out: &mut Vec<u8>, style: Style) {
    let be = d.to_be_bytes();
    let sign = if d < 0 { 0xff } else { 0 };
    match fixed {
        Some(n) => {
            if n >= 16 {
                out.extend(std::iter::repeat_n(sign, n - 16));
                out.extend_from_slice(&be);
            } else {
                out.extend_from_slice(&be[16 - n..]);
            }
        }
        None => {
            let mut start = 0;
            while start < 15 && be[start] == sign && (be[start + 1] & 0x80) == (sign & 0x80) {
                start += 1;
            }
            write_bytes(&be[start..], out, style);
        }
    }
}

#[cfg(test)]
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

pub(crate) fn format_uuid(u: &[u8; 16]) -> String {
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

/// How a writer node lands in a column: mirrors [`Node`], with struct child indexes resolved.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
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
pub(crate) type FieldPlans = (Vec<Option<(usize, Plan)>>, Vec<usize>);

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

struct Column {
    field: FieldRef,
    builder: Col,
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
    /// The plan compiled for decoding (`None` if the schema does not fit).
    program: Option<direct::Program>,
    /// What precedes a transcoded writer's messages (Protobuf's message indexes, or nothing).
    framing: PayloadFraming,
    /// A transcoded writer's value as Avro, and transcoded back (reused between values).
    avro: Vec<u8>,
    back: Vec<u8>,
    /// Protobuf in the Confluent wire format: the message-index list of the first value (one
    /// of [`FIRST_MESSAGE_INDEXES`]); later values with the other spelling go raw.
    indexes: Option<Vec<u8>>,
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

    /// Payloads without the Confluent header (`value_schema_latest`): for Protobuf, no
    /// message-index list either. Avro payloads are the same either way.
    pub fn bare(mut self) -> Self {
        self.framing = PayloadFraming::Bare;
        self
    }

    /// Protobuf in the Confluent wire format: the message-index list this decoder's values use
    /// (learned from the first value that has one of [`FIRST_MESSAGE_INDEXES`]); the text the
    /// sidecar keeps records it ([`crate::transcode::Envelope::with_message_indexes`]).
    pub fn message_indexes(&self) -> Option<&[u8]> {
        self.indexes.as_deref()
    }

    /// Fixes the message-index list this decoder's values must use (the spelling most of a
    /// segment's values use, or what a first pass over it learned, so that every pass takes the
    /// same values to columns). Nothing for a writer whose values have no such list.
    pub fn set_message_indexes(&mut self, indexes: Option<&[u8]>) {
        if self.writer.transcoder.as_ref().is_some_and(|t| t.message_indexes()) && self.framing == PayloadFraming::Confluent {
            self.indexes = indexes.map(<[u8]>::to_vec);
        }
    }
}

/// A transcoded payload's message, after its message-index list if the format has one in this
/// framing; `Err` if the list is not the spelling of `[0]` that `learned` holds (or learns now).
fn message_of<'p>(
    t: &dyn Transcoder,
    framing: PayloadFraming,
    learned: &mut Option<Vec<u8>>,
    payload: &'p [u8],
) -> Result<&'p [u8], Fallback> {
    if framing == PayloadFraming::Bare || !t.message_indexes() {
        return Ok(payload);
    }
    let Some(list) = FIRST_MESSAGE_INDEXES.into_iter().find(|l| payload.starts_with(l)) else {
        return Err(Fallback::Transcode {
            format: t.format(),
            reason: format!("message indexes {:02x?}…: not the schema's first message", &payload[..payload.len().min(4)]),
        });
    };
    match learned {
        None => *learned = Some(list.to_vec()),
        Some(l) if l.as_slice() == list => {}
        Some(l) => {
            return Err(Fallback::Transcode {
                format: t.format(),
                reason: format!("message indexes spelled {list:02x?}, this segment's values {l:02x?}"),
            })
        }
    }
    Ok(&payload[list.len()..])
}

/// Transcodes `message` into its Avro datum (`avro`). The value may go to columns only if
/// `avro_to_message` gives the message back: checked here by transcoding back into `back`, or,
/// for a transcoder that checks the canonical form inline, only in debug builds, as an assertion.
fn transcode_in(t: &dyn Transcoder, message: &[u8], avro: &mut Vec<u8>, back: &mut Vec<u8>) -> Result<(), Fallback> {
    avro.clear();
    t.message_to_avro(message, avro)?;
    if t.checks_canonical() && !cfg!(debug_assertions) {
        return Ok(());
    }
    back.clear();
    let again = t.avro_to_message(avro, back);
    if t.checks_canonical() {
        assert!(
            again.is_ok() && back.as_slice() == message,
            "{} transcoder accepted a message it does not give back: {message:02x?}",
            t.format()
        );
    }
    again.map_err(|reason| Fallback::Transcode { format: t.format(), reason })?;
    if back.as_slice() == message {
        return Ok(());
    }
    let at = back.iter().zip(message).position(|(a, b)| a != b).unwrap_or(back.len().min(message.len()));
    Err(Fallback::Transcode { format: t.format(), reason: format!("the columns give other bytes back from byte {at} of the message on") })
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
                    builder: Col::new(f.data_type(), f.name())?,
                })
            })
            .collect::<Result<_, ColumnsError>>()?;
        Ok(Self { columns, rows: 0 })
    }

    /// Empty builders for the same columns (a conversion that reads its segment again).
    pub fn fresh(&self) -> Result<Self, ColumnsError> {
        let columns = self
            .columns
            .iter()
            .map(|c| Ok(Column { field: c.field.clone(), builder: Col::new(c.field.data_type(), c.field.name())? }))
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
        let mut plan = plan_struct(&named, &children, "");
        let program = match &plan {
            Ok(p) => match direct::compile(&writer, p) {
                Ok(program) => Some(program),
                Err(e) => {
                    plan = Err(e);
                    None
                }
            },
            Err(_) => None,
        };
        Decoder {
            writer,
            plan,
            program,
            framing: PayloadFraming::Confluent,
            avro: Vec::new(),
            back: Vec::new(),
            indexes: None,
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
        let Some(program) = &decoder.program else {
            self.append_null();
            return Err(Fallback::Schema);
        };
        let read = match &decoder.writer.transcoder {
            None => self.read(program, payload, false),
            Some(t) => message_of(t.as_ref(), decoder.framing, &mut decoder.indexes, payload)
                .and_then(|message| transcode_in(t.as_ref(), message, &mut decoder.avro, &mut decoder.back))
                .and_then(|()| self.read(program, &decoder.avro, t.checks_utf8())),
        };
        match read {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                // Cut every column back to the rows before this one, then a null row.
                for c in &mut self.columns {
                    c.builder.truncate(self.rows);
                }
                self.append_null();
                Err(e)
            }
        }
    }

    /// `utf8_checked`: the datum's strings are known to be UTF-8 (see [`direct::Cursor`]).
    fn read(&mut self, program: &direct::Program, payload: &[u8], utf8_checked: bool) -> Result<(), Fallback> {
        let mut r = direct::Cursor::new(payload, utf8_checked);
        for (i, op) in &program.fields {
            let c = self.columns.get_mut(*i).ok_or(Fallback::Schema)?;
            direct::read(op, &mut c.builder, &mut r)?;
        }
        if r.not_canonical != usize::MAX {
            return Err(Fallback::NotCanonical {
                position: r.not_canonical,
            });
        }
        if !r.at_end() {
            return Err(Fallback::NotCanonical { position: r.pos });
        }
        for &i in &program.missing {
            self.columns
                .get_mut(i)
                .ok_or(Fallback::Schema)?
                .builder
                .append_null();
        }
        Ok(())
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
