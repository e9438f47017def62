//! Column builders the decoder appends to directly, one per Arrow type iceberg-rust produces.
//!
//! Unlike Arrow's own builders, every one can be cut back to a number of rows
//! ([`Col::truncate`]): a value found malformed or non-canonical halfway has already appended
//! part of its row, and the row must end up all-null with every builder aligned. The lengths to
//! cut to follow from the structure (a list's offsets say how long its child was), so nothing is
//! saved per row.

use std::sync::Arc;

use arrow_array::builder::Decimal128Builder;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, FixedSizeBinaryArray, GenericBinaryArray,
    GenericStringArray, ListArray, MapArray, OffsetSizeTrait, PrimitiveArray, StructArray,
};
use arrow_buffer::{
    BooleanBufferBuilder, Buffer, NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, TimeUnit};

use super::ColumnsError;

/// Values of a primitive column and its validity.
pub(super) struct Prim<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    #[inline(always)]
    pub(super) fn push(&mut self, v: T::Native) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    fn push_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.nulls.truncate(len);
    }

    fn finish(&mut self) -> PrimitiveArray<T> {
        let n = self.values.len();
        PrimitiveArray::new(
            ScalarBuffer::from(std::mem::replace(&mut self.values, Vec::with_capacity(n))),
            self.nulls.finish(),
        )
    }
}

/// Variable-length values (strings, binary): offsets into one byte buffer.
pub(super) struct Var<O: OffsetSizeTrait> {
    offsets: Vec<O>,
    data: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl<O: OffsetSizeTrait> Var<O> {
    fn new() -> Self {
        Self {
            offsets: vec![O::zero()],
            data: Vec::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// Appends a value. For a string column the caller checked that `b` is UTF-8.
    #[inline(always)]
    pub(super) fn push(&mut self, b: &[u8]) {
        self.data.extend_from_slice(b);
        // Past i32::MAX bytes in one batch Arrow's own StringBuilder panics too.
        self.offsets
            .push(O::from_usize(self.data.len()).expect("byte array offset overflow"));
        self.nulls.append_non_null();
    }

    fn push_null(&mut self) {
        self.offsets.push(*self.offsets.last().unwrap_or(&O::zero()));
        self.nulls.append_null();
    }

    /// Values appended so far.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Value `i` (`i < len()`).
    #[inline]
    pub(super) fn get(&self, i: usize) -> &[u8] {
        let (a, b) = (self.offsets[i].as_usize(), self.offsets[i + 1].as_usize());
        &self.data[a..b]
    }

    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.offsets.truncate(len + 1);
            let end = self.offsets[len].as_usize();
            self.data.truncate(end);
            self.nulls.truncate(len);
        }
    }

    /// The finished parts; the builder starts over with room for as many values and bytes (the
    /// next batch is most likely alike: no growing and copying again).
    fn parts(&mut self) -> (OffsetBuffer<O>, Buffer, Option<NullBuffer>) {
        let mut next = Vec::with_capacity(self.offsets.len());
        next.push(O::zero());
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(&mut self.offsets, next)));
        let n = self.data.len();
        let data = Buffer::from_vec(std::mem::replace(&mut self.data, Vec::with_capacity(n)));
        (offsets, data, self.nulls.finish())
    }
}

/// Takes a list's offsets, leaving room for as many in the builder.
fn restart(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut next = Vec::with_capacity(offsets.len());
    next.push(0);
    std::mem::replace(offsets, next)
}

/// One column builder (or a nested one): mirrors the Arrow type.
pub(super) enum Col {
    Boolean {
        values: BooleanBufferBuilder,
        nulls: NullBufferBuilder,
    },
    Int(Prim<Int32Type>),
    Long(Prim<Int64Type>),
    Float(Prim<Float32Type>),
    Double(Prim<Float64Type>),
    Date(Prim<Date32Type>),
    Time(Prim<Time64MicrosecondType>),
    Timestamp(Prim<TimestampMicrosecondType>, Option<Arc<str>>),
    String(Var<i32>),
    Binary(Var<i64>),
    Fixed {
        size: usize,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    Decimal(Prim<Decimal128Type>, u8, i8),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Col>,
    },
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        keys: Var<i32>,
        values: Box<Col>,
    },
    Struct {
        fields: Fields,
        children: Vec<Col>,
        nulls: NullBufferBuilder,
    },
}

impl Col {
    pub(super) fn new(dt: &DataType, column: &str) -> Result<Self, ColumnsError> {
        let unsupported = || ColumnsError::Unsupported {
            column: column.into(),
            data_type: dt.clone(),
        };
        Ok(match dt {
            DataType::Boolean => Col::Boolean {
                values: BooleanBufferBuilder::new(0),
                nulls: NullBufferBuilder::new(0),
            },
            DataType::Int32 => Col::Int(Prim::new()),
            DataType::Int64 => Col::Long(Prim::new()),
            DataType::Float32 => Col::Float(Prim::new()),
            DataType::Float64 => Col::Double(Prim::new()),
            DataType::Date32 => Col::Date(Prim::new()),
            DataType::Time64(TimeUnit::Microsecond) => Col::Time(Prim::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Col::Timestamp(Prim::new(), tz.clone()),
            DataType::Utf8 => Col::String(Var::new()),
            DataType::LargeBinary => Col::Binary(Var::new()),
            DataType::FixedSizeBinary(n) if *n >= 0 => Col::Fixed {
                size: *n as usize,
                data: Vec::new(),
                nulls: NullBufferBuilder::new(0),
            },
            DataType::Decimal128(p, s) => {
                // The same check (and error) as Arrow's builder.
                Decimal128Builder::new().with_precision_and_scale(*p, *s)?;
                Col::Decimal(Prim::new(), *p, *s)
            }
            DataType::List(f) => Col::List {
                field: f.clone(),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                child: Box::new(Col::new(f.data_type(), column)?),
            },
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 && kv[0].data_type() == &DataType::Utf8 => {
                    Col::Map {
                        entries: entries.clone(),
                        offsets: vec![0],
                        nulls: NullBufferBuilder::new(0),
                        keys: Var::new(),
                        values: Box::new(Col::new(kv[1].data_type(), column)?),
                    }
                }
                _ => return Err(unsupported()),
            },
            DataType::Struct(fields) => Col::Struct {
                fields: fields.clone(),
                children: fields
                    .iter()
                    .map(|f| Col::new(f.data_type(), column))
                    .collect::<Result<_, _>>()?,
                nulls: NullBufferBuilder::new(0),
            },
            _ => return Err(unsupported()),
        })
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Col::Boolean { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Col::Int(b) => b.push_null(),
            Col::Long(b) => b.push_null(),
            Col::Float(b) => b.push_null(),
            Col::Double(b) => b.push_null(),
            Col::Date(b) => b.push_null(),
            Col::Time(b) => b.push_null(),
            Col::Timestamp(b, _) => b.push_null(),
            Col::String(b) => b.push_null(),
            Col::Binary(b) => b.push_null(),
            Col::Fixed { size, data, nulls } => {
                data.resize(data.len() + *size, 0);
                nulls.append_null();
            }
            Col::Decimal(b, ..) => b.push_null(),
            Col::List { offsets, nulls, .. } | Col::Map { offsets, nulls, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
            Col::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(Col::append_null);
                nulls.append_null();
            }
        }
    }

    /// Cuts the column back to its first `len` values (no effect if it has no more).
    pub(super) fn truncate(&mut self, len: usize) {
        match self {
            Col::Boolean { values, nulls } => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Col::Int(b) => b.truncate(len),
            Col::Long(b) => b.truncate(len),
            Col::Float(b) => b.truncate(len),
            Col::Double(b) => b.truncate(len),
            Col::Date(b) => b.truncate(len),
            Col::Time(b) => b.truncate(len),
            Col::Timestamp(b, _) => b.truncate(len),
            Col::String(b) => b.truncate(len),
            Col::Binary(b) => b.truncate(len),
            Col::Fixed { size, data, nulls } => {
                data.truncate(len.saturating_mul(*size));
                nulls.truncate(len);
            }
            Col::Decimal(b, ..) => b.truncate(len),
            Col::List {
                offsets,
                nulls,
                child,
                ..
            } => {
                // The child may hold items of an unfinished row (its offset not pushed yet).
                if len < offsets.len() {
                    offsets.truncate(len + 1);
                    nulls.truncate(len);
                    child.truncate(offsets[len] as usize);
                }
            }
            Col::Map {
                offsets,
                nulls,
                keys,
                values,
                ..
            } => {
                if len < offsets.len() {
                    offsets.truncate(len + 1);
                    nulls.truncate(len);
                    let n = offsets[len] as usize;
                    keys.truncate(n);
                    values.truncate(n);
                }
            }
            Col::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(|c| c.truncate(len));
                nulls.truncate(len);
            }
        }
    }

    /// The array of the values so far; the builder starts over empty.
    pub(super) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Col::Boolean { values, nulls } => {
                let n = values.len();
                let values = std::mem::replace(values, BooleanBufferBuilder::new(n)).finish();
                Arc::new(BooleanArray::new(values, nulls.finish()))
            }
            Col::Int(b) => Arc::new(b.finish()),
            Col::Long(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Double(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Col::String(b) => {
                let (offsets, data, nulls) = b.parts();
                Arc::new(GenericStringArray::<i32>::try_new(offsets, data, nulls)?)
            }
            Col::Binary(b) => {
                let (offsets, data, nulls) = b.parts();
                Arc::new(GenericBinaryArray::<i64>::try_new(offsets, data, nulls)?)
            }
            Col::Fixed { size, data, nulls } => {
                let len = nulls.len();
                let mut n = nulls.finish();
                if *size == 0 {
                    // No bytes to count the values by: the validity gives the length.
                    n = Some(n.unwrap_or_else(|| NullBuffer::new_valid(len)));
                }
                let size = i32::try_from(*size)
                    .map_err(|_| ArrowError::InvalidArgumentError("fixed size too large".into()))?;
                Arc::new(FixedSizeBinaryArray::try_new(
                    size,
                    Buffer::from_vec(std::mem::replace(data, Vec::with_capacity(data.len()))),
                    n,
                )?)
            }
            Col::Decimal(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Col::List {
                field,
                offsets,
                nulls,
                child,
            } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(restart(offsets)));
                Arc::new(ListArray::try_new(
                    field.clone(),
                    offsets,
                    child.finish()?,
                    nulls.finish(),
                )?)
            }
            Col::Map {
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
                let (ko, kd, kn) = keys.parts();
                let keys: ArrayRef = Arc::new(GenericStringArray::<i32>::try_new(ko, kd, kn)?);
                let entry_array =
                    StructArray::try_new(kv.clone(), vec![keys, values.finish()?], None)?;
                let offsets = OffsetBuffer::new(ScalarBuffer::from(restart(offsets)));
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    offsets,
                    entry_array,
                    nulls.finish(),
                    false,
                )?)
            }
            Col::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Col::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                if arrays.is_empty() {
                    let n = nulls.len();
                    let nulls = nulls.finish();
                    let n = nulls.as_ref().map(|b| b.len()).unwrap_or(n);
                    Arc::new(StructArray::new_empty_fields(n, nulls))
                } else {
                    Arc::new(StructArray::try_new(fields.clone(), arrays, nulls.finish())?)
                }
            }
        })
    }
}
