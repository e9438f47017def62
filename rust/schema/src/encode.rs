//! Arrow columns → Avro binary: the way back for values [`crate::decode`] put in columns.
//!
//! A [`RowEncoder`] is a writer schema resolved against one batch of value columns (as read back
//! from a data file: any Arrow encoding of the column types, e.g. `Binary` or `LargeBinary`,
//! `Int32` or a promoted `Int64`): every column is looked up by name and downcast once, into a
//! tree of typed accessors that mirrors the writer schema. [`RowEncoder::encode`] then writes a
//! row's Avro binary datum straight from the arrays, with no per-row lookup, allocation or value
//! tree. For a row that [`crate::decode::ValueColumns::append`] accepted, the result is
//! byte-identical to the original payload: the decoder appended exactly the values whose
//! canonical re-encoding equals the input, and this module writes that canonical encoding (the
//! same `write_long`, decimal and uuid forms as the decoder's check, `decode::encode`).
//!
//! Columns are found by name path (writer field names): a data file keeps the names it was
//! written with, and Calving never renames value columns. A column a writer field needs that is
//! missing, a null where the writer has no null branch, or a value out of the writer type's range
//! (a promoted `long` holding more than an `int`) is an [`EncodeError`]: the stored row does not
//! describe a value of that writer schema, and the caller must not serve made-up bytes. Problems
//! of a column as a whole (missing, of another type) are found when the encoder is built but
//! reported, like the others, by the first row that needs the column, so a row whose value never
//! reaches it (a union branch it does not take) encodes as before.
//!
//! The first implementation (a value tree per row, columns looked up by name for every value) is
//! kept for tests only (`encode/tree.rs`) as the oracle of property tests: same bytes, same
//! errors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int32Array, Int64Array, LargeBinaryArray,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::DataType;
use thiserror::Error;

use crate::avro::{has_column, Node, WriterSchema};
use crate::transcode::Transcoder;
use crate::decode::{format_uuid, write_decimal, write_long, Style};

#[cfg(test)]
mod tree;
#[cfg(test)]
pub(crate) use tree::encode_row_tree;

/// Why a stored row cannot be re-encoded with a writer schema.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {path}: {reason}")]
pub struct EncodeError {
    /// The field's name path.
    pub path: String,
    /// What does not fit.
    pub reason: String,
}

fn err(path: &str, reason: impl Into<String>) -> EncodeError {
    EncodeError {
        path: if path.is_empty() {
            "<root>".into()
        } else {
            path.to_string()
        },
        reason: reason.into(),
    }
}

/// A writer schema resolved against the value columns of one batch.
#[derive(Debug)]
pub struct RowEncoder {
    /// The batch's columns, held so that [`RowEncoder::is_for`] can tell the batch by identity
    /// (an array held here cannot be freed and its address reused by another).
    columns: Vec<ArrayRef>,
    fields: Vec<Enc>,
    /// A Protobuf or JSON Schema writer: the datum is transcoded to its format, after the
    /// message-index list (Protobuf in the Confluent wire format; empty otherwise).
    transcoder: Option<(Arc<dyn Transcoder>, Vec<u8>)>,
}

impl RowEncoder {
    /// Resolves `writer`'s fields against `batch`'s top-level columns (by name).
    pub fn new(writer: &WriterSchema, batch: &RecordBatch) -> Self {
        let fields = writer
            .fields
            .iter()
            .map(|f| {
                if !has_column(&f.node) {
                    return Enc::Nothing;
                }
                match batch.column_by_name(&f.name) {
                    Some(column) => compile(&f.node, column, &f.name),
                    None => Enc::Broken { nulls: Nulls::NONE, error: err(&f.name, "not in the data file") },
                }
            })
            .collect();
        let transcoder = writer.transcoder.clone().map(|t| {
            let indexes = if t.message_indexes() { writer.message_indexes.clone() } else { Vec::new() };
            (t, indexes)
        });
        RowEncoder { columns: batch.columns().to_vec(), fields, transcoder }
    }

    /// Writes values without the Confluent header (`value_schema_latest`): for Protobuf, no
    /// message-index list either.
    pub fn bare(mut self) -> Self {
        if let Some((_, indexes)) = &mut self.transcoder {
            indexes.clear();
        }
        self
    }

    /// Whether this encoder was built on `batch` (the same arrays, not equal ones).
    pub fn is_for(&self, batch: &RecordBatch) -> bool {
        self.columns.len() == batch.num_columns()
            && self.columns.iter().zip(batch.columns()).all(|(a, b)| std::sync::Arc::ptr_eq(a, b))
    }

    /// Appends row `row`'s value to `out`: its Avro binary datum, or for a Protobuf or JSON
    /// Schema writer that datum transcoded to the writer's format; on an error, `out` is left as
    /// it was.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let Some((transcoder, indexes)) = &self.transcoder else {
            return self.encode_avro(row, out);
        };
        let mut avro = Vec::with_capacity(256);
        self.encode_avro(row, &mut avro)?;
        let start = out.len();
        out.extend_from_slice(indexes);
        transcoder.avro_to_message(&avro, out).map_err(|reason| {
            out.truncate(start);
            err("", format!("{}: {reason}", transcoder.format()))
        })
    }

    fn encode_avro(&self, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        for f in &self.fields {
            if let Err(e) = f.encode(row, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// One writer node over its column.
#[derive(Debug)]
enum Enc {
    /// A node without a column (a `null`, or a record of such fields): no bytes.
    Nothing,
    /// A column that is missing (no nulls) or that this node cannot be read from: `error` for
    /// any row that reaches it (after the null check, as for any column).
    Broken { nulls: Nulls, error: EncodeError },
    /// A non-union node: an error on a null, else its bytes.
    Value { nulls: Nulls, path: String, value: Val },
    /// A union: a null selects the null branch, else one of the others.
    Union { nulls: Nulls, path: String, null_index: Option<u32>, branches: Branches },
}

/// A column's validity, taken out of the array once: `Array::is_null` through an `ArrayRef`
/// costs a dynamic call per value, a fifth of the whole encode of an Avro order.
#[derive(Debug, Clone)]
struct Nulls(Option<NullBuffer>);

impl Nulls {
    const NONE: Nulls = Nulls(None);

    /// The same answer as `array.is_null(row)`: the array's own validity bitmap.
    fn of(array: &ArrayRef) -> Nulls {
        Nulls(array.nulls().cloned())
    }

    #[inline]
    fn is_null(&self, row: usize) -> bool {
        self.0.as_ref().is_some_and(|n| n.is_null(row))
    }
}

#[derive(Debug)]
enum Branches {
    /// One non-null branch: the column holds its values.
    Single(u32, Box<Enc>),
    /// Several: a struct with a child per branch (in union order); the first child set is the
    /// branch. Branches whose child is missing from the struct are skipped.
    Struct(Vec<(u32, Nulls, Enc)>),
    /// Several branches over a column that is not a struct.
    NotStruct(EncodeError),
}

#[derive(Debug)]
enum Val {
    Null,
    Bool(BooleanArray),
    Int(Int32Array),
    /// An `int` from a promoted `long` column: must fit.
    IntOfLong(Int64Array),
    Long(Int64Array),
    Float(Float32Array),
    /// A `float` from a promoted `double` column: must be a float exactly.
    FloatOfDouble(Float64Array),
    Double(Float64Array),
    Bytes(Bin),
    Str(Str),
    Date(Date32Array),
    Time { millis: bool, array: Time64MicrosecondArray },
    Timestamp { millis: bool, array: TimestampMicrosecondArray },
    Uuid { fixed: bool, array: FixedSizeBinaryArray },
    Decimal { fixed: Option<usize>, array: Decimal128Array },
    Fixed { size: usize, array: Bin },
    Enum { symbols: HashMap<String, u32>, array: Str },
    List { offsets: Offsets, item: Box<Enc> },
    Map { offsets: OffsetBuffer<i32>, keys: Option<Str>, value: Box<Enc> },
    Record(Vec<Enc>),
}

#[derive(Debug)]
enum Bin {
    Binary(BinaryArray),
    Large(LargeBinaryArray),
    View(BinaryViewArray),
    Fixed(FixedSizeBinaryArray),
}

impl Bin {
    /// Variable-length binary of any offset width (and, with `fixed`, fixed-size binary).
    fn of(array: &ArrayRef, fixed: bool) -> Option<Bin> {
        Some(match array.data_type() {
            DataType::Binary => Bin::Binary(array.as_binary::<i32>().clone()),
            DataType::LargeBinary => Bin::Large(array.as_binary::<i64>().clone()),
            DataType::BinaryView => Bin::View(array.as_binary_view().clone()),
            DataType::FixedSizeBinary(_) if fixed => Bin::Fixed(array.as_fixed_size_binary().clone()),
            _ => return None,
        })
    }

    fn value(&self, row: usize) -> &[u8] {
        match self {
            Bin::Binary(a) => a.value(row),
            Bin::Large(a) => a.value(row),
            Bin::View(a) => a.value(row),
            Bin::Fixed(a) => a.value(row),
        }
    }
}

#[derive(Debug)]
enum Str {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl Str {
    fn of(array: &ArrayRef) -> Option<Str> {
        Some(match array.data_type() {
            DataType::Utf8 => Str::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Str::Large(array.as_string::<i64>().clone()),
            DataType::Utf8View => Str::View(array.as_string_view().clone()),
            _ => return None,
        })
    }

    fn value(&self, row: usize) -> &str {
        match self {
            Str::Utf8(a) => a.value(row),
            Str::Large(a) => a.value(row),
            Str::View(a) => a.value(row),
        }
    }
}

#[derive(Debug)]
enum Offsets {
    Small(OffsetBuffer<i32>),
    Large(OffsetBuffer<i64>),
}

impl Offsets {
    fn range(&self, row: usize) -> std::ops::Range<usize> {
        match self {
            Offsets::Small(o) => o[row] as usize..o[row + 1] as usize,
            Offsets::Large(o) => o[row] as usize..o[row + 1] as usize,
        }
    }
}

fn child_path(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// Resolves `node` against `array` (whose name path is `path`).
fn compile(node: &Node, array: &ArrayRef, path: &str) -> Enc {
    if let Node::Union(u) = node {
        let branches = if let Some(b) = u.single() {
            Branches::Single(b.index, Box::new(compile(&b.node, array, path)))
        } else if let Some(s) = array.as_struct_opt() {
            Branches::Struct(
                u.branches
                    .iter()
                    .filter_map(|b| {
                        let child = s.column_by_name(&b.name)?;
                        Some((b.index, Nulls::of(child), compile(&b.node, child, &child_path(path, &b.name))))
                    })
                    .collect(),
            )
        } else {
            Branches::NotStruct(err(
                path,
                format!("a union of several branches needs a struct, found {}", array.data_type()),
            ))
        };
        return Enc::Union { nulls: Nulls::of(array), path: path.to_string(), null_index: u.null_index, branches };
    }
    match value_of(node, array, path) {
        Some(value) => Enc::Value { nulls: Nulls::of(array), path: path.to_string(), value },
        None => Enc::Broken {
            nulls: Nulls::of(array),
            error: err(path, format!("Avro {node:?} cannot be read from a {} column", array.data_type())),
        },
    }
}

/// The typed accessor of a non-union `node` over `array`, `None` if the column's type does not
/// fit.
fn value_of(node: &Node, array: &ArrayRef, path: &str) -> Option<Val> {
    Some(match node {
        Node::Null => Val::Null,
        Node::Boolean => Val::Bool(array.as_boolean_opt()?.clone()),
        Node::Int => match array.data_type() {
            DataType::Int32 => Val::Int(array.as_primitive::<Int32Type>().clone()),
            DataType::Int64 => Val::IntOfLong(array.as_primitive::<Int64Type>().clone()),
            _ => return None,
        },
        Node::Long => Val::Long(array.as_primitive_opt::<Int64Type>()?.clone()),
        Node::Float => match array.data_type() {
            DataType::Float32 => Val::Float(array.as_primitive::<Float32Type>().clone()),
            DataType::Float64 => Val::FloatOfDouble(array.as_primitive::<Float64Type>().clone()),
            _ => return None,
        },
        Node::Double => Val::Double(array.as_primitive_opt::<Float64Type>()?.clone()),
        Node::Bytes => Val::Bytes(Bin::of(array, false)?),
        Node::String => Val::Str(Str::of(array)?),
        Node::Date => Val::Date(array.as_primitive_opt::<Date32Type>()?.clone()),
        Node::Time { millis } => match array.data_type() {
            DataType::Time64(_) => {
                Val::Time { millis: *millis, array: array.as_primitive_opt::<Time64MicrosecondType>()?.clone() }
            }
            _ => return None,
        },
        Node::Timestamp { millis, .. } => Val::Timestamp {
            millis: *millis,
            array: array.as_primitive_opt::<TimestampMicrosecondType>()?.clone(),
        },
        Node::Uuid { fixed } => match array.data_type() {
            DataType::FixedSizeBinary(_) => Val::Uuid { fixed: *fixed, array: array.as_fixed_size_binary().clone() },
            _ => return None,
        },
        Node::Decimal { fixed, .. } => {
            Val::Decimal { fixed: *fixed, array: array.as_primitive_opt::<Decimal128Type>()?.clone() }
        }
        Node::Fixed(n) => Val::Fixed { size: *n, array: Bin::of(array, true)? },
        Node::Enum(symbols) => Val::Enum {
            // Reversed, so that a repeated symbol maps to its first index, as a search would.
            symbols: symbols.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).rev().collect(),
            array: Str::of(array)?,
        },
        Node::Array(item) => {
            let p = child_path(path, "element");
            match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    Val::List { offsets: Offsets::Small(l.offsets().clone()), item: Box::new(compile(item, l.values(), &p)) }
                }
                DataType::LargeList(_) => {
                    let l = array.as_list::<i64>();
                    Val::List { offsets: Offsets::Large(l.offsets().clone()), item: Box::new(compile(item, l.values(), &p)) }
                }
                _ => return None,
            }
        }
        Node::Map(value) => {
            let m = array.as_map_opt()?;
            Val::Map {
                offsets: m.offsets().clone(),
                keys: Str::of(m.keys()),
                value: Box::new(compile(value, m.values(), &child_path(path, "value"))),
            }
        }
        Node::Record(fields) => {
            let s = array.as_struct_opt()?;
            Val::Record(
                fields
                    .iter()
                    .map(|f| {
                        if !has_column(&f.node) {
                            return Enc::Nothing;
                        }
                        let p = child_path(path, &f.name);
                        match s.column_by_name(&f.name) {
                            Some(child) => compile(&f.node, child, &p),
                            None => Enc::Broken { nulls: Nulls::NONE, error: err(&p, "not in the data file") },
                        }
                    })
                    .collect(),
            )
        }
        Node::Union(_) => unreachable!("compile handles unions"),
    })
}

const CANONICAL: Style = Style::CANONICAL;

fn long(v: i64, out: &mut Vec<u8>) {
    write_long(v, out, CANONICAL);
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    long(b.len() as i64, out);
    out.extend_from_slice(b);
}

impl Enc {
    fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Enc::Nothing => Ok(()),
            Enc::Broken { nulls, error } if nulls.is_null(row) => Err(err(&error.path, "null where the writer needs a value")),
            Enc::Broken { error, .. } => Err(error.clone()),
            Enc::Value { nulls, path, value } => {
                if nulls.is_null(row) {
                    return Err(err(path, "null where the writer needs a value"));
                }
                value.encode(row, path, out)
            }
            Enc::Union { nulls, path, null_index, branches } => {
                if nulls.is_null(row) {
                    let i = null_index.ok_or_else(|| err(path, "null where the writer's union has no null branch"))?;
                    long(i64::from(i), out);
                    return Ok(());
                }
                match branches {
                    Branches::Single(index, inner) => {
                        long(i64::from(*index), out);
                        inner.encode(row, out)
                    }
                    Branches::Struct(children) => {
                        for (index, child, inner) in children {
                            if !child.is_null(row) {
                                long(i64::from(*index), out);
                                return inner.encode(row, out);
                            }
                        }
                        Err(err(path, "no union branch is set"))
                    }
                    Branches::NotStruct(e) => Err(e.clone()),
                }
            }
        }
    }
}

impl Val {
    fn encode(&self, row: usize, path: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Val::Null => {}
            Val::Bool(a) => out.push(u8::from(a.value(row))),
            Val::Int(a) => long(i64::from(a.value(row)), out),
            Val::IntOfLong(a) => {
                let v = a.value(row);
                i32::try_from(v).map_err(|_| err(path, "a long beyond the writer's int"))?;
                long(v, out)
            }
            Val::Long(a) => long(a.value(row), out),
            Val::Float(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Val::FloatOfDouble(a) => {
                let d = a.value(row);
                let f = d as f32;
                if f64::from(f).to_bits() != d.to_bits() {
                    return Err(err(path, "a double that is not a float"));
                }
                out.extend_from_slice(&f.to_le_bytes())
            }
            Val::Double(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Val::Bytes(a) => bytes(a.value(row), out),
            Val::Str(a) => bytes(a.value(row).as_bytes(), out),
            Val::Date(a) => long(i64::from(a.value(row)), out),
            Val::Time { millis, array } => {
                let us = array.value(row);
                long(if *millis { us / 1000 } else { us }, out)
            }
            Val::Timestamp { millis, array } => {
                let us = array.value(row);
                long(if *millis { us / 1000 } else { us }, out)
            }
            Val::Uuid { fixed, array } => {
                let u: &[u8; 16] =
                    array.value(row).try_into().map_err(|_| err(path, "a uuid of other than 16 bytes"))?;
                if *fixed {
                    out.extend_from_slice(u)
                } else {
                    bytes(format_uuid(u).as_bytes(), out)
                }
            }
            Val::Decimal { fixed, array } => write_decimal(array.value(row), *fixed, out, CANONICAL),
            Val::Fixed { size, array } => {
                let b = array.value(row);
                if b.len() != *size {
                    return Err(err(path, format!("{} bytes for a fixed({size})", b.len())));
                }
                out.extend_from_slice(b)
            }
            Val::Enum { symbols, array } => {
                let s = array.value(row);
                let i = symbols
                    .get(s)
                    .ok_or_else(|| err(path, format!("{s:?} is not a symbol of the writer's enum")))?;
                long(i64::from(*i), out)
            }
            Val::List { offsets, item } => {
                let range = offsets.range(row);
                // One block with every item, then the 0 that ends the array (an empty one is
                // just the 0).
                if !range.is_empty() {
                    long(range.len() as i64, out);
                    for i in range {
                        item.encode(i, out)?;
                    }
                }
                long(0, out)
            }
            Val::Map { offsets, keys, value } => {
                let range = offsets[row] as usize..offsets[row + 1] as usize;
                if !range.is_empty() {
                    let keys = keys.as_ref().ok_or_else(|| err(path, "map keys are not strings"))?;
                    long(range.len() as i64, out);
                    for i in range {
                        bytes(keys.value(i).as_bytes(), out);
                        value.encode(i, out)?;
                    }
                }
                long(0, out)
            }
            Val::Record(fields) => {
                for f in fields {
                    f.encode(row, out)?;
                }
            }
        }
        Ok(())
    }
}
