//! The first decoder, kept as the oracle of the property tests (compiled for tests only): decode
//! the Avro datum into a [`Value`] tree, **re-encode** the tree with the writer schema and compare
//! with the input (the lossless check by definition), then append the tree to Arrow's own
//! builders. `decode/tests.rs` checks that [`ValueColumns::append`](super::ValueColumns::append)
//! gives the same outcome and the same arrays for every input.

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

use super::{
    decimal_from_be, encode, parse_uuid, ColumnsError, Decoder, Fallback, Malformed, Plan, Style,
    Value, CANONICAL_NAN_F32, CANONICAL_NAN_F64,
};
use crate::avro::{Node, WriterSchema};

/// The old `ValueColumns`: Arrow builders filled from a decoded tree after the re-encode check.
pub(crate) struct OracleColumns {
    columns: Vec<Builder>,
}

impl OracleColumns {
    /// Builders for every column of `schema` not in `reserved` (as `ValueColumns::new`).
    pub(crate) fn new(schema: &iceberg::spec::Schema, reserved: &[&str]) -> Result<Self, ColumnsError> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema)?;
        let columns = arrow
            .fields()
            .iter()
            .filter(|f| !reserved.contains(&f.name().as_str()))
            .map(|f| Builder::new(f.data_type(), f.name()))
            .collect::<Result<_, ColumnsError>>()?;
        Ok(Self { columns })
    }

    pub(crate) fn append_null(&mut self) {
        for c in &mut self.columns {
            c.append_null();
        }
    }

    /// The first `ValueColumns::append`, verbatim: decode, re-encode and compare, append.
    pub(crate) fn append(&mut self, decoder: &Decoder, payload: &[u8]) -> Result<(), Fallback> {
        let result = check(decoder, payload);
        match result {
            Ok(values) => {
                let Ok((per_field, missing)) = &decoder.plan else {
                    self.append_null();
                    return Err(Fallback::Schema);
                };
                for ((f, p), v) in decoder.writer.fields.iter().zip(per_field).zip(&values) {
                    if let Some((i, p)) = p {
                        self.columns[*i].append(&f.node, p, v);
                    }
                }
                for &i in missing {
                    self.columns[i].append_null();
                }
                Ok(())
            }
            Err(e) => {
                self.append_null();
                Err(e)
            }
        }
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<ArrayRef>, ColumnsError> {
        Ok(self
            .columns
            .iter_mut()
            .map(Builder::finish)
            .collect::<Result<_, _>>()?)
    }
}

fn check<'a>(decoder: &Decoder, payload: &'a [u8]) -> Result<Vec<Value<'a>>, Fallback> {
    if decoder.plan.is_err() {
        return Err(Fallback::Schema);
    }
    let values = decode_payload(&decoder.writer, payload)?;
    let mut scratch = Vec::new();
    encode_payload(&decoder.writer, &values, &mut scratch, Style::default());
    if scratch != payload {
        let position = scratch
            .iter()
            .zip(payload)
            .position(|(a, b)| a != b)
            .unwrap_or(scratch.len().min(payload.len()));
        return Err(Fallback::NotCanonical { position });
    }
    Ok(values)
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
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

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Fallback> {
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

/// One Arrow builder per column type iceberg-rust produces.
pub(crate) enum Builder {
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
