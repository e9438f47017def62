//! The table's columns as Calving writes them, by name.
//!
//! The default table (DESIGN.md, "Table layout") is a `kafka` struct (topic_id, partition, offset,
//! timestamp, key, headers) and a top-level `value`. Tables created ahead of time are adopted, so
//! field ids, column order and extra columns come from the table: Calving finds its columns by
//! name in whatever Arrow schema the table gives ([`TargetColumns::locate`]), checks their types,
//! and fills extra nullable columns with nulls. [`default_arrow_schema`] is the Arrow form of the
//! default Iceberg schema (field ids in `PARQUET:field_id`), for tools and tests that have no
//! catalog.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::LayoutError;

/// Arrow metadata key holding the Iceberg field id (`parquet::arrow::PARQUET_FIELD_ID_META_KEY`).
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";
/// Iceberg `timestamptz` as Arrow: microseconds, UTC.
pub const UTC: &str = "+00:00";

/// Column names, as dotted paths.
pub mod names {
    pub const KAFKA: &str = "kafka";
    pub const TOPIC_ID: &str = "topic_id";
    pub const PARTITION: &str = "partition";
    pub const OFFSET: &str = "offset";
    pub const TIMESTAMP: &str = "timestamp";
    pub const KEY: &str = "key";
    pub const HEADERS: &str = "headers";
    pub const HEADER_KEY: &str = "key";
    pub const HEADER_VALUE: &str = "value";
    pub const VALUE: &str = "value";
    /// `kafka.value_schema_id` (schema modes): the writer schema id of a value in columns.
    pub const VALUE_SCHEMA_ID: &str = "value_schema_id";
    /// `kafka.key_schema_id` (key schema modes): the writer schema id of a key in columns.
    pub const KEY_SCHEMA_ID: &str = "key_schema_id";
    /// The top-level struct holding a decoded key's fields (key schema modes).
    pub const KEY_COLUMNS: &str = "key";
}

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata(HashMap::from([(FIELD_ID_KEY.to_string(), id.to_string())]))
}

/// The Arrow form of the default Iceberg schema (ids as in the table crate's default schema).
pub fn default_arrow_schema() -> SchemaRef {
    let header = Fields::from(vec![
        with_id(Field::new(names::HEADER_KEY, DataType::Utf8, false), 10),
        with_id(Field::new(names::HEADER_VALUE, DataType::LargeBinary, true), 11),
    ]);
    let element = with_id(Field::new("element", DataType::Struct(header), false), 9);
    let kafka = Fields::from(vec![
        with_id(Field::new(names::TOPIC_ID, DataType::Utf8, false), 3),
        with_id(Field::new(names::PARTITION, DataType::Int32, false), 4),
        with_id(Field::new(names::OFFSET, DataType::Int64, false), 5),
        with_id(Field::new(names::TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), false), 6),
        with_id(Field::new(names::KEY, DataType::LargeBinary, true), 7),
        with_id(Field::new(names::HEADERS, DataType::List(Arc::new(element)), true), 8),
    ]);
    Arc::new(Schema::new(vec![
        with_id(Field::new(names::KAFKA, DataType::Struct(kafka), false), 1),
        with_id(Field::new(names::VALUE, DataType::LargeBinary, true), 2),
    ]))
}

/// Where Calving's columns are in a target schema.
#[derive(Debug, Clone)]
pub struct TargetColumns {
    pub schema: SchemaRef,
    /// Index of the `kafka` struct among the top-level columns.
    pub kafka: usize,
    /// The `kafka` struct's fields, as the table declares them.
    pub kafka_fields: Fields,
    /// Indexes inside the `kafka` struct.
    pub topic_id: usize,
    pub partition: usize,
    pub offset: usize,
    pub timestamp: usize,
    pub key: usize,
    pub headers: usize,
    /// The list's element field and the header struct's fields.
    pub header_element: FieldRef,
    pub header_fields: Fields,
    /// Index of `value` among the top-level columns.
    pub value: usize,
    /// Index of `value_schema_id` inside the `kafka` struct (tables of the schema modes).
    pub value_schema_id: Option<usize>,
    /// Index of `key_schema_id` inside the `kafka` struct (tables of the key schema modes).
    pub key_schema_id: Option<usize>,
    /// Index of the top-level `key` struct (the decoded key's fields; key schema modes).
    pub key_columns: Option<usize>,
}

fn find(fields: &Fields, name: &str, path: &str) -> Result<usize, LayoutError> {
    fields
        .iter()
        .position(|f| f.name() == name)
        .ok_or_else(|| LayoutError::IncompatibleSchema { column: path.to_string(), reason: "missing".into() })
}

fn expect_type(field: &Field, path: &str, ok: impl Fn(&DataType) -> bool, want: &str) -> Result<(), LayoutError> {
    if ok(field.data_type()) {
        Ok(())
    } else {
        Err(LayoutError::IncompatibleSchema {
            column: path.to_string(),
            reason: format!("type {} where Calving needs {want}", field.data_type()),
        })
    }
}

impl TargetColumns {
    /// Finds and checks Calving's columns in `schema`. Every other top-level column must be
    /// nullable (it is written as null).
    pub fn locate(schema: SchemaRef) -> Result<TargetColumns, LayoutError> {
        let top = schema.fields();
        let kafka = find(top, names::KAFKA, "kafka")?;
        let value = find(top, names::VALUE, "value")?;
        let DataType::Struct(kafka_fields) = top[kafka].data_type() else {
            return Err(LayoutError::IncompatibleSchema { column: "kafka".into(), reason: "not a struct".into() });
        };
        let kafka_fields = kafka_fields.clone();
        let binary = |t: &DataType| matches!(t, DataType::LargeBinary);
        expect_type(&top[value], "value", binary, "binary")?;
        let topic_id = find(&kafka_fields, names::TOPIC_ID, "kafka.topic_id")?;
        let partition = find(&kafka_fields, names::PARTITION, "kafka.partition")?;
        let offset = find(&kafka_fields, names::OFFSET, "kafka.offset")?;
        let timestamp = find(&kafka_fields, names::TIMESTAMP, "kafka.timestamp")?;
        let key = find(&kafka_fields, names::KEY, "kafka.key")?;
        let headers = find(&kafka_fields, names::HEADERS, "kafka.headers")?;
        expect_type(&kafka_fields[topic_id], "kafka.topic_id", |t| matches!(t, DataType::Utf8), "string")?;
        expect_type(&kafka_fields[partition], "kafka.partition", |t| matches!(t, DataType::Int32), "int")?;
        expect_type(&kafka_fields[offset], "kafka.offset", |t| matches!(t, DataType::Int64), "long")?;
        expect_type(
            &kafka_fields[timestamp],
            "kafka.timestamp",
            |t| matches!(t, DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == UTC),
            "timestamptz",
        )?;
        expect_type(&kafka_fields[key], "kafka.key", binary, "binary")?;
        let DataType::List(element) = kafka_fields[headers].data_type() else {
            return Err(LayoutError::IncompatibleSchema { column: "kafka.headers".into(), reason: "not a list".into() });
        };
        let DataType::Struct(header_fields) = element.data_type() else {
            return Err(LayoutError::IncompatibleSchema { column: "kafka.headers.element".into(), reason: "not a struct".into() });
        };
        let hk = find(header_fields, names::HEADER_KEY, "kafka.headers.element.key")?;
        let hv = find(header_fields, names::HEADER_VALUE, "kafka.headers.element.value")?;
        if (hk, hv) != (0, 1) || header_fields.len() != 2 {
            return Err(LayoutError::IncompatibleSchema {
                column: "kafka.headers.element".into(),
                reason: "must be struct<key string, value binary> in that order".into(),
            });
        }
        expect_type(&header_fields[0], "kafka.headers.element.key", |t| matches!(t, DataType::Utf8), "string")?;
        expect_type(&header_fields[1], "kafka.headers.element.value", binary, "binary")?;
        let value_schema_id = kafka_fields.iter().position(|f| f.name() == names::VALUE_SCHEMA_ID);
        if let Some(i) = value_schema_id {
            expect_type(&kafka_fields[i], "kafka.value_schema_id", |t| matches!(t, DataType::Int32), "int")?;
        }
        let key_schema_id = kafka_fields.iter().position(|f| f.name() == names::KEY_SCHEMA_ID);
        if let Some(i) = key_schema_id {
            expect_type(&kafka_fields[i], "kafka.key_schema_id", |t| matches!(t, DataType::Int32), "int")?;
        }
        let key_columns = top.iter().position(|f| f.name() == names::KEY_COLUMNS);
        if let Some(i) = key_columns {
            expect_type(&top[i], "key", |t| matches!(t, DataType::Struct(_)), "struct")?;
        }
        for (i, f) in kafka_fields.iter().enumerate() {
            if ![topic_id, partition, offset, timestamp, key, headers].contains(&i) && !f.is_nullable() {
                return Err(LayoutError::IncompatibleSchema {
                    column: format!("kafka.{}", f.name()),
                    reason: "required column Calving cannot fill".into(),
                });
            }
        }
        for (i, f) in top.iter().enumerate() {
            if i != kafka && i != value && !f.is_nullable() {
                return Err(LayoutError::IncompatibleSchema {
                    column: f.name().clone(),
                    reason: "required column Calving cannot fill".into(),
                });
            }
        }
        Ok(TargetColumns {
            header_element: element.clone(),
            header_fields: header_fields.clone(),
            schema,
            kafka,
            kafka_fields,
            topic_id,
            partition,
            offset,
            timestamp,
            key,
            headers,
            value,
            value_schema_id,
            key_schema_id,
            key_columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_is_a_valid_target() {
        let t = TargetColumns::locate(default_arrow_schema()).unwrap();
        assert_eq!((t.kafka, t.value, t.offset), (0, 1, 2));
    }

    #[test]
    fn missing_or_mistyped_columns_are_named() {
        let s = Arc::new(Schema::new(vec![Field::new("value", DataType::LargeBinary, true)]));
        let e = TargetColumns::locate(s).unwrap_err();
        assert!(e.to_string().contains("kafka"), "{e}");
        let s = Arc::new(Schema::new(vec![
            Field::new("kafka", DataType::Struct(Fields::empty()), false),
            Field::new("value", DataType::Utf8, true),
        ]));
        let e = TargetColumns::locate(s).unwrap_err();
        assert!(e.to_string().contains("value") && e.to_string().contains("binary"), "{e}");
    }
}
