//! Kafka records as Arrow rows of the table, and back.
//!
//! [`RowsBuilder`] appends records and produces `RecordBatch`es in the target schema (the table's,
//! located by [`TargetColumns`]). [`RowsView`] reads the columns of rows read back from Parquet
//! (any projection that keeps `kafka.offset`, `kafka.timestamp`, `kafka.key`, `kafka.headers` and
//! `value`). Both work column-wise with no per-row allocation.
//!
//! In the schema modes a builder also holds [`TypedValues`]: each value goes either to the value
//! columns (its `value` cell null, `kafka.value_schema_id` set) or to the raw `value` column (see
//! [`crate::typed`]). Keys do the same with the key schema modes: to the top-level `key` struct
//! (`kafka.key` null, `kafka.key_schema_id` set) or to the raw `kafka.key`. A view exposes the
//! schema id columns, the whole batch and the `key` struct, from which [`crate::served`]
//! re-encodes values and keys in columns.

use std::sync::Arc;

use arrow_array::builder::{LargeBinaryBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{
    new_null_array, Array, ArrayRef, Int32Array, Int64Array, LargeBinaryArray, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::DataType;

use crate::error::LayoutError;
use crate::schema::{names, TargetColumns, UTC};
use crate::typed::TypedValues;

/// Accumulates records as columns.
#[derive(Debug)]
pub struct RowsBuilder {
    target: TargetColumns,
    topic_id: String,
    partition: i32,
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
    key: LargeBinaryBuilder,
    value: LargeBinaryBuilder,
    header_offsets: Vec<i32>,
    header_keys: StringBuilder,
    header_values: LargeBinaryBuilder,
    bytes: usize,
    typed: Option<TypedValues>,
    typed_keys: Option<TypedValues>,
}

impl RowsBuilder {
    pub fn new(target: TargetColumns, topic_id: &str, partition: i32) -> RowsBuilder {
        RowsBuilder {
            target,
            topic_id: topic_id.to_string(),
            partition,
            offsets: Vec::new(),
            timestamps: Vec::new(),
            key: LargeBinaryBuilder::new(),
            value: LargeBinaryBuilder::new(),
            header_offsets: vec![0],
            header_keys: StringBuilder::new(),
            header_values: LargeBinaryBuilder::new(),
            bytes: 0,
            typed: None,
            typed_keys: None,
        }
    }

    /// Values go through `typed` (schema modes): to the value columns, or to the raw fallback.
    /// The target must have `kafka.value_schema_id` and the value columns.
    pub fn with_typed(mut self, typed: TypedValues) -> Result<RowsBuilder, LayoutError> {
        if self.target.value_schema_id.is_none() {
            return Err(LayoutError::IncompatibleSchema {
                column: "kafka.value_schema_id".into(),
                reason: "missing (the schema modes need it)".into(),
            });
        }
        self.typed = Some(typed);
        Ok(self)
    }

    /// Keys go through `typed` (key schema modes): to the `key` struct, or to the raw
    /// `kafka.key`. The target must have `kafka.key_schema_id` and the `key` struct.
    pub fn with_typed_keys(mut self, typed: TypedValues) -> Result<RowsBuilder, LayoutError> {
        for (present, column) in [(self.target.key_schema_id.is_some(), "kafka.key_schema_id"), (self.target.key_columns.is_some(), "key")]
        {
            if !present {
                return Err(LayoutError::IncompatibleSchema {
                    column: column.into(),
                    reason: "missing (the key schema modes need it)".into(),
                });
            }
        }
        self.typed_keys = Some(typed);
        Ok(self)
    }

    /// The typed values, in the schema modes.
    pub fn typed(&self) -> Option<&TypedValues> {
        self.typed.as_ref()
    }

    /// The typed keys, in the key schema modes.
    pub fn typed_keys(&self) -> Option<&TypedValues> {
        self.typed_keys.as_ref()
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Approximate bytes buffered (keys, values, headers).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Appends one record. Header keys that are not UTF-8 are stored lossily here; the caller
    /// keeps their bytes elsewhere (the sidecar).
    pub fn append<'h>(
        &mut self,
        offset: i64,
        timestamp_micros: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) {
        self.offsets.push(offset);
        self.timestamps.push(timestamp_micros);
        let stored_key = match &mut self.typed_keys {
            Some(t) => t.append(key),
            None => key,
        };
        self.key.append_option(stored_key);
        let stored = match &mut self.typed {
            Some(t) => t.append(value),
            None => value,
        };
        self.value.append_option(stored);
        self.bytes += 16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let mut n = *self.header_offsets.last().expect("starts with 0");
        for (k, v) in headers {
            match std::str::from_utf8(k) {
                Ok(s) => self.header_keys.append_value(s),
                Err(_) => self.header_keys.append_value(String::from_utf8_lossy(k)),
            }
            self.header_values.append_option(v);
            self.bytes += k.len() + v.map_or(0, <[u8]>::len);
            n += 1;
        }
        self.header_offsets.push(n);
    }

    /// The buffered rows as a batch of the target schema; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, LayoutError> {
        let (mut value_columns, mut schema_ids) = match &mut self.typed {
            Some(t) => {
                let (columns, ids) = t.finish()?;
                (columns, Some(ids))
            }
            None => (Vec::new(), None),
        };
        let (mut key_columns, mut key_schema_ids) = match &mut self.typed_keys {
            Some(t) => {
                let (columns, ids) = t.finish()?;
                (Some(columns), Some(ids))
            }
            None => (None, None),
        };
        let t = &self.target;
        let n = self.offsets.len();
        let headers_struct = StructArray::try_new(
            t.header_fields.clone(),
            vec![Arc::new(self.header_keys.finish()) as ArrayRef, Arc::new(self.header_values.finish())],
            None,
        )?;
        let header_offsets = std::mem::replace(&mut self.header_offsets, vec![0]);
        let headers = ListArray::try_new(
            t.header_element.clone(),
            OffsetBuffer::new(ScalarBuffer::from(header_offsets)),
            Arc::new(headers_struct),
            None,
        )?;
        let mut kafka_columns: Vec<ArrayRef> = Vec::with_capacity(t.kafka_fields.len());
        // The `key` struct is valid exactly where `kafka.key_schema_id` is set.
        let mut key_nulls = None;
        for (i, field) in t.kafka_fields.iter().enumerate() {
            let column: ArrayRef = if i == t.topic_id {
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(self.topic_id.as_str(), n)))
            } else if i == t.partition {
                Arc::new(Int32Array::from(vec![self.partition; n]))
            } else if i == t.offset {
                Arc::new(Int64Array::from(std::mem::take(&mut self.offsets)))
            } else if i == t.timestamp {
                Arc::new(TimestampMicrosecondArray::from(std::mem::take(&mut self.timestamps)).with_timezone(UTC))
            } else if i == t.key {
                Arc::new(self.key.finish())
            } else if i == t.headers {
                Arc::new(headers.clone())
            } else if Some(i) == t.value_schema_id && schema_ids.is_some() {
                Arc::new(schema_ids.take().expect("checked"))
            } else if Some(i) == t.key_schema_id && key_schema_ids.is_some() {
                let ids = key_schema_ids.take().expect("checked");
                key_nulls = ids.nulls().cloned();
                Arc::new(ids)
            } else {
                new_null_array(field.data_type(), n)
            };
            kafka_columns.push(column);
        }
        let kafka = StructArray::try_new(t.kafka_fields.clone(), kafka_columns, None)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(t.schema.fields().len());
        for (i, field) in t.schema.fields().iter().enumerate() {
            columns.push(if i == t.kafka {
                Arc::new(kafka.clone())
            } else if i == t.value {
                Arc::new(self.value.finish())
            } else if Some(i) == t.key_columns && key_columns.is_some() {
                let DataType::Struct(fields) = field.data_type() else { unreachable!("checked by TargetColumns") };
                let mut by_name = key_columns.take().expect("checked");
                let children = fields
                    .iter()
                    .map(|f| match by_name.iter().position(|(k, _)| k.name() == f.name()) {
                        Some(j) => by_name.swap_remove(j).1,
                        None => new_null_array(f.data_type(), n),
                    })
                    .collect();
                Arc::new(StructArray::try_new(fields.clone(), children, key_nulls.take())?)
            } else if let Some(j) = value_columns.iter().position(|(f, _)| f.name() == field.name()) {
                value_columns.swap_remove(j).1
            } else {
                new_null_array(field.data_type(), n)
            });
        }
        self.offsets.clear();
        self.timestamps.clear();
        self.bytes = 0;
        Ok(RecordBatch::try_new(t.schema.clone(), columns)?)
    }
}

/// Read access to rows read back from the table.
#[derive(Debug, Clone)]
pub struct RowsView {
    offsets: ScalarBuffer<i64>,
    timestamps: ScalarBuffer<i64>,
    key: LargeBinaryArray,
    value: LargeBinaryArray,
    headers: ListArray,
    header_keys: StringArray,
    header_values: LargeBinaryArray,
    value_schema_ids: Option<Int32Array>,
    key_schema_ids: Option<Int32Array>,
    batch: RecordBatch,
    /// The top-level `key` struct's fields as a batch (key schema modes).
    key_batch: Option<RecordBatch>,
}

/// A struct column's children as a batch (every field nullable: the children of null rows may
/// hold nulls where the struct declares a required field).
fn struct_as_batch(s: &StructArray) -> Result<RecordBatch, LayoutError> {
    let fields: Vec<_> = s.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(s.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(arrow_schema::Schema::new(fields)), s.columns().to_vec(), &options)?)
}

fn column<'a>(s: &'a StructArray, name: &str) -> Result<&'a ArrayRef, LayoutError> {
    s.column_by_name(name)
        .ok_or_else(|| LayoutError::IncompatibleSchema { column: format!("kafka.{name}"), reason: "not read back".into() })
}

impl RowsView {
    /// Views a batch holding at least the columns Calving reads.
    pub fn new(batch: &RecordBatch) -> Result<RowsView, LayoutError> {
        let missing = |c: &str| LayoutError::IncompatibleSchema { column: c.into(), reason: "not read back".into() };
        let kafka = batch.column_by_name(names::KAFKA).ok_or_else(|| missing("kafka"))?;
        let kafka = kafka.as_struct_opt().ok_or_else(|| missing("kafka (struct)"))?;
        let value = batch.column_by_name(names::VALUE).ok_or_else(|| missing("value"))?;
        let headers = column(kafka, names::HEADERS)?.as_list_opt::<i32>().ok_or_else(|| missing("kafka.headers"))?;
        let entries = headers.values().as_struct_opt().ok_or_else(|| missing("kafka.headers.element"))?;
        let offsets = column(kafka, names::OFFSET)?.as_primitive_opt::<Int64Type>().ok_or_else(|| missing("kafka.offset"))?;
        let timestamps =
            column(kafka, names::TIMESTAMP)?.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| missing("kafka.timestamp"))?;
        if offsets.null_count() > 0 || timestamps.null_count() > 0 {
            return Err(missing("kafka.offset/timestamp without nulls"));
        }
        let binary = |a: &ArrayRef, c: &str| -> Result<LargeBinaryArray, LayoutError> {
            match a.data_type() {
                DataType::LargeBinary => Ok(a.as_binary::<i64>().clone()),
                _ => Err(missing(c)),
            }
        };
        let ids = |name: &str, what: &str| -> Result<Option<Int32Array>, LayoutError> {
            kafka
                .column_by_name(name)
                .map(|c| c.as_primitive_opt::<arrow_array::types::Int32Type>().cloned().ok_or_else(|| missing(what)))
                .transpose()
        };
        let value_schema_ids = ids(names::VALUE_SCHEMA_ID, "kafka.value_schema_id (int)")?;
        let key_schema_ids = ids(names::KEY_SCHEMA_ID, "kafka.key_schema_id (int)")?;
        let key_batch = match batch.column_by_name(names::KEY_COLUMNS) {
            Some(c) => Some(struct_as_batch(c.as_struct_opt().ok_or_else(|| missing("key (struct)"))?)?),
            None => None,
        };
        Ok(RowsView {
            value_schema_ids,
            key_schema_ids,
            key_batch,
            batch: batch.clone(),
            offsets: offsets.values().clone(),
            timestamps: timestamps.values().clone(),
            key: binary(column(kafka, names::KEY)?, "kafka.key")?,
            value: binary(value, "value")?,
            header_keys: entries.column(0).as_string_opt::<i32>().ok_or_else(|| missing("kafka.headers.key"))?.clone(),
            header_values: binary(entries.column(1), "kafka.headers.value")?,
            headers: headers.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn offset(&self, row: usize) -> i64 {
        self.offsets[row]
    }

    /// All offsets, in row order.
    pub fn offsets(&self) -> &[i64] {
        &self.offsets
    }

    pub fn timestamp_micros(&self, row: usize) -> i64 {
        self.timestamps[row]
    }

    pub fn key(&self, row: usize) -> Option<&[u8]> {
        self.key.is_valid(row).then(|| self.key.value(row))
    }

    /// The raw `value` cell: the value's bytes in raw mode, the raw fallback in schema modes.
    pub fn value(&self, row: usize) -> Option<&[u8]> {
        self.value.is_valid(row).then(|| self.value.value(row))
    }

    /// `kafka.value_schema_id`: the writer schema of a value in columns (schema modes).
    pub fn value_schema_id(&self, row: usize) -> Option<i32> {
        self.value_schema_ids.as_ref().and_then(|a| a.is_valid(row).then(|| a.value(row)))
    }

    /// `kafka.key_schema_id`: the writer schema of a key in columns (key schema modes).
    pub fn key_schema_id(&self, row: usize) -> Option<i32> {
        self.key_schema_ids.as_ref().and_then(|a| a.is_valid(row).then(|| a.value(row)))
    }

    /// The batch the view reads (value columns included).
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The `key` struct's fields as a batch, if the view reads it (key schema modes).
    pub fn key_batch(&self) -> Option<&RecordBatch> {
        self.key_batch.as_ref()
    }

    /// The row's headers as (key, value); a null header list reads as no headers.
    pub fn headers(&self, row: usize) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone + '_ {
        let range = if self.headers.is_valid(row) {
            let o = self.headers.value_offsets();
            o[row] as usize..o[row + 1] as usize
        } else {
            0..0
        };
        range.map(move |h| {
            let v = self.header_values.is_valid(h).then(|| self.header_values.value(h));
            (self.header_keys.value(h).as_bytes(), v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::default_arrow_schema;

    #[test]
    fn rows_roundtrip_through_arrow() {
        let target = TargetColumns::locate(default_arrow_schema()).unwrap();
        let mut b = RowsBuilder::new(target, "Ab3xTopicId", 7);
        let hv: &[u8] = b"v";
        b.append(10, 1_000, Some(b"k"), None, [(&b"h1"[..], Some(hv)), (&b"h1"[..], None)].into_iter());
        b.append(11, 2_000, None, Some(b""), std::iter::empty());
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert!(b.is_empty());
        let v = RowsView::new(&batch).unwrap();
        assert_eq!(v.offsets(), &[10, 11]);
        assert_eq!((v.key(0), v.value(0)), (Some(&b"k"[..]), None));
        assert_eq!((v.key(1), v.value(1)), (None, Some(&b""[..])));
        assert_eq!(v.headers(0).collect::<Vec<_>>(), vec![(&b"h1"[..], Some(hv)), (&b"h1"[..], None)]);
        assert_eq!(v.headers(1).count(), 0);
        assert_eq!(v.timestamp_micros(1), 2_000);
        // The builder is reusable.
        b.append(12, 3_000, None, None, std::iter::empty());
        assert_eq!(RowsView::new(&b.finish().unwrap()).unwrap().offsets(), &[12]);
    }
}
