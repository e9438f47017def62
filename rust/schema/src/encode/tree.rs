//! The first implementation of the way back ([`super::RowEncoder`]), kept for tests only as the oracle of
//! the compiled encoder: it builds a value tree of each row (every column looked up by name for
//! every row) and encodes the tree with `decode::encode`. Property tests check that both give
//! the same bytes and the same errors.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::{err, EncodeError};
use crate::avro::{has_column, Node, WriterSchema};
use crate::decode::{encode, Style, Value};

/// Appends to `out` the Avro binary datum of row `row` of `batch`'s value columns, written with
/// `writer` (no wire-format header).
pub(crate) fn encode_row_tree(
    writer: &WriterSchema,
    batch: &RecordBatch,
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut values = Vec::with_capacity(writer.fields.len());
    for f in &writer.fields {
        if !has_column(&f.node) {
            values.push(no_column_value(&f.node));
            continue;
        }
        let column = batch
            .column_by_name(&f.name)
            .ok_or_else(|| err(&f.name, "not in the data file"))?;
        values.push(value_of(&f.node, column, row, &Path::Root(&f.name))?);
    }
    for (f, v) in writer.fields.iter().zip(&values) {
        encode(&f.node, v, out, Style::default());
    }
    Ok(())
}

/// The value of a node that has no column (a `null`, or a record of such fields): it encodes to
/// no bytes.
fn no_column_value(node: &Node) -> Value<'static> {
    match node {
        Node::Record(fields) => Value::Record(fields.iter().map(|f| no_column_value(&f.node)).collect()),
        _ => Value::Null,
    }
}

/// A column's name path, rendered only for an error (formatting it for every value was a good
/// part of serving's CPU).
#[derive(Clone, Copy)]
enum Path<'p> {
    Root(&'p str),
    Child(&'p Path<'p>, &'p str),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Child(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

fn value_of<'a>(node: &Node, array: &'a ArrayRef, row: usize, path: &Path<'_>) -> Result<Value<'a>, EncodeError> {
    let err = |path: &Path<'_>, reason: String| err(&path.to_string(), reason);
    if let Node::Union(u) = node {
        if array.is_null(row) {
            let i = u
                .null_index
                .ok_or_else(|| err(path, "null where the writer's union has no null branch".into()))?;
            return Ok(Value::Union(i, Box::new(Value::Null)));
        }
        if let Some(b) = u.single() {
            return Ok(Value::Union(b.index, Box::new(value_of(&b.node, array, row, path)?)));
        }
        let s = array
            .as_struct_opt()
            .ok_or_else(|| err(path, format!("a union of several branches needs a struct, found {}", array.data_type())))?;
        for b in &u.branches {
            let Some(child) = s.column_by_name(&b.name) else { continue };
            if child.is_valid(row) {
                let p = Path::Child(path, &b.name);
                return Ok(Value::Union(b.index, Box::new(value_of(&b.node, child, row, &p)?)));
            }
        }
        return Err(err(path, "no union branch is set".into()));
    }
    if array.is_null(row) {
        return Err(err(path, "null where the writer needs a value".into()));
    }
    let mismatch = || err(path, format!("Avro {node:?} cannot be read from a {} column", array.data_type()));
    Ok(match node {
        Node::Null => Value::Null,
        Node::Boolean => Value::Bool(array.as_boolean_opt().ok_or_else(mismatch)?.value(row)),
        Node::Int => Value::Int(match array.data_type() {
            DataType::Int32 => array.as_primitive::<Int32Type>().value(row),
            DataType::Int64 => i32::try_from(array.as_primitive::<Int64Type>().value(row))
                .map_err(|_| err(path, "a long beyond the writer's int".into()))?,
            _ => return Err(mismatch()),
        }),
        Node::Long => Value::Long(array.as_primitive_opt::<Int64Type>().ok_or_else(mismatch)?.value(row)),
        Node::Float => Value::Float(match array.data_type() {
            DataType::Float32 => array.as_primitive::<Float32Type>().value(row),
            DataType::Float64 => {
                let d = array.as_primitive::<Float64Type>().value(row);
                let f = d as f32;
                if f64::from(f).to_bits() != d.to_bits() {
                    return Err(err(path, "a double that is not a float".into()));
                }
                f
            }
            _ => return Err(mismatch()),
        }),
        Node::Double => Value::Double(array.as_primitive_opt::<Float64Type>().ok_or_else(mismatch)?.value(row)),
        Node::Bytes => Value::Bytes(binary(array, row).ok_or_else(mismatch)?),
        Node::String => Value::Str(string(array, row).ok_or_else(mismatch)?),
        Node::Date => Value::Int(array.as_primitive_opt::<Date32Type>().ok_or_else(mismatch)?.value(row)),
        Node::Time { .. } => Value::Long(match array.data_type() {
            DataType::Time64(_) => array.as_primitive_opt::<Time64MicrosecondType>().ok_or_else(mismatch)?.value(row),
            _ => return Err(mismatch()),
        }),
        Node::Timestamp { .. } => {
            Value::Long(array.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(mismatch)?.value(row))
        }
        Node::Uuid { .. } => {
            let b = fixed(array, row).ok_or_else(mismatch)?;
            Value::Uuid(b.try_into().map_err(|_| err(path, "a uuid of other than 16 bytes".into()))?)
        }
        Node::Decimal { .. } => Value::Decimal(array.as_primitive_opt::<Decimal128Type>().ok_or_else(mismatch)?.value(row)),
        Node::Fixed(n) => {
            let b = fixed(array, row).or_else(|| binary(array, row)).ok_or_else(mismatch)?;
            if b.len() != *n {
                return Err(err(path, format!("{} bytes for a fixed({n})", b.len())));
            }
            Value::Bytes(b)
        }
        Node::Enum(symbols) => {
            let s = string(array, row).ok_or_else(mismatch)?;
            let i = symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| err(path, format!("{s:?} is not a symbol of the writer's enum")))?;
            Value::Enum(i as u32)
        }
        Node::Array(item) => {
            let p = Path::Child(path, "element");
            let (values, range) = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    let o = l.value_offsets();
                    (l.values(), o[row] as usize..o[row + 1] as usize)
                }
                DataType::LargeList(_) => {
                    let l = array.as_list::<i64>();
                    let o = l.value_offsets();
                    (l.values(), o[row] as usize..o[row + 1] as usize)
                }
                _ => return Err(mismatch()),
            };
            Value::List(range.map(|i| value_of(item, values, i, &p)).collect::<Result<_, _>>()?)
        }
        Node::Map(value) => {
            let m = array.as_map_opt().ok_or_else(mismatch)?;
            let o = m.value_offsets();
            let keys = m.keys();
            let vals = m.values();
            let p = Path::Child(path, "value");
            let mut entries = Vec::with_capacity((o[row + 1] - o[row]) as usize);
            for i in o[row] as usize..o[row + 1] as usize {
                let k = string(keys, i).ok_or_else(|| err(path, "map keys are not strings".into()))?;
                entries.push((k, value_of(value, vals, i, &p)?));
            }
            Value::Map(entries)
        }
        Node::Record(fields) => {
            let s = array.as_struct_opt().ok_or_else(mismatch)?;
            let mut vs = Vec::with_capacity(fields.len());
            for f in fields {
                if !has_column(&f.node) {
                    vs.push(no_column_value(&f.node));
                    continue;
                }
                let p = Path::Child(path, &f.name);
                let child = s.column_by_name(&f.name).ok_or_else(|| err(&p, "not in the data file".into()))?;
                vs.push(value_of(&f.node, child, row, &p)?);
            }
            Value::Record(vs)
        }
        Node::Union(_) => unreachable!("handled above"),
    })
}

fn binary(array: &ArrayRef, row: usize) -> Option<&[u8]> {
    match array.data_type() {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => Some(array.as_binary_view().value(row)),
        _ => None,
    }
}

fn fixed(array: &ArrayRef, row: usize) -> Option<&[u8]> {
    match array.data_type() {
        DataType::FixedSizeBinary(_) => Some(array.as_fixed_size_binary().value(row)),
        _ => None,
    }
}

fn string(array: &ArrayRef, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}
