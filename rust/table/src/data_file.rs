//! Data files from Parquet written elsewhere, and partition values.
//!
//! Calving writes Parquet itself (arrow-rs `ArrowWriter`, with the Arrow schema derived from the
//! table schema by `iceberg::arrow::schema_to_arrow_schema`, so every column carries its Iceberg
//! field id as `PARQUET:field_id`). [`data_file_from_parquet`] turns the writer's
//! `ParquetMetaData` into an Iceberg [`DataFile`] the way Iceberg Java's `ParquetUtil.footerMetrics`
//! does:
//!
//! - columns are matched to the table schema by the **field id stored in the Parquet schema**,
//!   not by name or position, so nested struct fields use their own ids;
//! - column sizes (compressed), value counts and null counts for every leaf with an id in the
//!   table schema, list elements included;
//! - lower/upper bounds only for leaves reached through structs alone (not inside a list or map),
//!   from the row-group statistics, honouring the table's metrics modes
//!   (`write.metadata.metrics.default`, default `truncate(16)`, and
//!   `write.metadata.metrics.column.<column>`): `none`, `counts`, `truncate(N)`, `full`. Truncated
//!   string/binary upper bounds are rounded up (last code point/byte incremented) so they stay
//!   upper bounds; when that is impossible the bound is left out;
//! - split offsets = the start of each row group;
//! - the table's default partition spec id and the given partition value.
//!
//! Partition values: [`day_partition_value`] for the default `day(kafka.timestamp)` spec, and
//! [`partition_value`] for any spec (each field's transform applied to its source value).

use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PrimitiveType,
    Struct, Type,
};
use iceberg::table::Table;
use iceberg::transform::create_transform_function;
use parquet::basic::{LogicalType, TimeUnit};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};

const METRICS_DEFAULT_PROP: &str = "write.metadata.metrics.default";
const METRICS_COLUMN_PREFIX: &str = "write.metadata.metrics.column.";
const DEFAULT_TRUNCATE: usize = 16;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Builds the [`DataFile`] of a Parquet file written for `table`.
///
/// `location` is the file's full URI as the table's FileIO sees it, `file_size` its length in
/// bytes, `metadata` the footer (as returned by `ArrowWriter::close`/`finish` or read back), and
/// `partition` its value under the table's *default* partition spec (see [`partition_value`]).
pub fn data_file_from_parquet(
    table: &Table,
    location: &str,
    file_size: u64,
    metadata: &ParquetMetaData,
    partition: Struct,
) -> Result<DataFile> {
    let invalid = |reason: String| Error::InvalidDataFile {
        location: location.to_string(),
        reason,
    };
    let table_metadata = table.metadata();
    let schema = table_metadata.current_schema();
    let spec = table_metadata.default_partition_spec();
    let partition_type = spec.partition_type(schema)?;
    if partition.fields().len() != partition_type.fields().len() {
        return Err(invalid(format!(
            "the partition value has {} fields, the table's partition spec {} has {}",
            partition.fields().len(),
            spec.spec_id(),
            partition_type.fields().len()
        )));
    }
    let metrics = MetricsConfig::from_properties(table_metadata.properties());

    let mut column_sizes: HashMap<i32, u64> = HashMap::new();
    let mut value_counts: HashMap<i32, u64> = HashMap::new();
    let mut null_counts: HashMap<i32, u64> = HashMap::new();
    let mut bounds: HashMap<i32, (Option<Raw>, Option<Raw>)> = HashMap::new();
    let mut leaves_with_id = 0usize;

    for row_group in metadata.row_groups() {
        for chunk in row_group.columns() {
            let descr = chunk.column_descr();
            let info = descr.self_type().get_basic_info();
            if !info.has_id() {
                continue;
            }
            leaves_with_id += 1;
            let field_id = info.id();
            let Some(field) = schema.field_by_id(field_id) else {
                continue; // not in the table schema (Iceberg Java ignores these too)
            };
            let Type::Primitive(ptype) = field.field_type.as_ref() else {
                return Err(invalid(format!(
                    "Parquet leaf {} has field id {field_id}, which is not a primitive column of the table",
                    descr.path()
                )));
            };
            let mode = metrics.mode(schema.name_by_field_id(field_id).unwrap_or_default());
            *column_sizes.entry(field_id).or_default() += chunk.compressed_size().max(0) as u64;
            if mode == MetricsMode::None {
                continue;
            }
            *value_counts.entry(field_id).or_default() += chunk.num_values().max(0) as u64;
            let Some(stats) = chunk.statistics() else {
                continue;
            };
            if let Some(nulls) = stats.null_count_opt() {
                *null_counts.entry(field_id).or_default() += nulls;
            }
            if mode == MetricsMode::Counts || descr.max_rep_level() > 0 {
                continue;
            }
            let (min, max) = raw_min_max(ptype, descr.logical_type_ref(), stats);
            let entry = bounds.entry(field_id).or_insert((None, None));
            if let Some(min) = min {
                entry.0 = Some(match entry.0.take() {
                    Some(cur) if cur <= min => cur,
                    _ => min,
                });
            }
            if let Some(max) = max {
                entry.1 = Some(match entry.1.take() {
                    Some(cur) if cur >= max => cur,
                    _ => max,
                });
            }
        }
    }
    if leaves_with_id == 0 && metadata.file_metadata().schema_descr().num_columns() > 0 {
        return Err(invalid(
            "its Parquet schema has no field ids; write it with the Arrow schema from \
             iceberg::arrow::schema_to_arrow_schema(table schema)"
                .to_string(),
        ));
    }

    let mut lower_bounds = HashMap::new();
    let mut upper_bounds = HashMap::new();
    for (field_id, (min, max)) in bounds {
        let Some(Type::Primitive(ptype)) =
            schema.field_by_id(field_id).map(|f| f.field_type.as_ref())
        else {
            continue;
        };
        let mode = metrics.mode(schema.name_by_field_id(field_id).unwrap_or_default());
        let truncate = match mode {
            MetricsMode::Truncate(n) => Some(n),
            _ => None,
        };
        if let Some(d) = min.and_then(|m| m.into_lower_datum(ptype, truncate)) {
            lower_bounds.insert(field_id, d);
        }
        if let Some(d) = max.and_then(|m| m.into_upper_datum(ptype, truncate)) {
            upper_bounds.insert(field_id, d);
        }
    }

    let split_offsets: Vec<i64> = metadata
        .row_groups()
        .iter()
        .filter_map(|rg| {
            rg.columns()
                .iter()
                .map(|c| {
                    c.dictionary_page_offset()
                        .map_or(c.data_page_offset(), |d| d.min(c.data_page_offset()))
                })
                .min()
                .or(rg.file_offset())
        })
        .collect();

    let mut builder = DataFileBuilder::default();
    builder
        .content(DataContentType::Data)
        .file_path(location.to_string())
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(spec.spec_id())
        .record_count(metadata.file_metadata().num_rows().max(0) as u64)
        .file_size_in_bytes(file_size)
        .column_sizes(column_sizes)
        .value_counts(value_counts)
        .null_value_counts(null_counts)
        .lower_bounds(lower_bounds)
        .upper_bounds(upper_bounds)
        .split_offsets(Some(split_offsets));
    builder.build().map_err(|e| invalid(e.to_string()))
}

/// The partition value of the default spec, `day(kafka.timestamp)`, for a timestamp in µs since
/// the epoch (days since 1970-01-01, rounded down, as Iceberg's day transform).
pub fn day_partition_value(timestamp_us: i64) -> Struct {
    let days = timestamp_us.div_euclid(MICROS_PER_DAY) as i32;
    Struct::from_iter([Some(Literal::date(days))])
}

/// The partition value under the table's default spec: each partition field's transform applied
/// to the value of its source column, looked up by field id in `source_values` (a missing source
/// value gives a null partition field).
pub fn partition_value(table: &Table, source_values: &HashMap<i32, Datum>) -> Result<Struct> {
    let spec = table.metadata().default_partition_spec();
    let mut fields = Vec::with_capacity(spec.fields().len());
    for field in spec.fields() {
        let value = match source_values.get(&field.source_id) {
            None => None,
            Some(datum) => create_transform_function(&field.transform)?
                .transform_literal(datum)?
                .map(|d| Literal::Primitive(d.literal().clone())),
        };
        fields.push(value);
    }
    Ok(Struct::from_iter(fields))
}

/// Where a new data file of `table` with this partition value goes:
/// `<write.data.path or <location>/data>/<partition path>/<uuid v7>.parquet`.
pub fn new_data_file_location(table: &Table, partition: &Struct) -> String {
    let metadata = table.metadata();
    let base = metadata
        .properties()
        .get("write.data.path")
        .cloned()
        .unwrap_or_else(|| format!("{}/data", metadata.location().trim_end_matches('/')));
    let spec = metadata.default_partition_spec();
    let name = format!("{}.parquet", uuid::Uuid::now_v7());
    if spec.fields().is_empty() {
        format!("{base}/{name}")
    } else {
        let path = spec.partition_to_path(partition, metadata.current_schema().clone());
        format!("{base}/{path}/{name}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricsMode {
    None,
    Counts,
    Truncate(usize),
    Full,
}

impl MetricsMode {
    fn parse(s: &str) -> Option<MetricsMode> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "none" => Some(MetricsMode::None),
            "counts" => Some(MetricsMode::Counts),
            "full" => Some(MetricsMode::Full),
            _ => {
                let n = s
                    .strip_prefix("truncate(")?
                    .strip_suffix(')')?
                    .parse::<usize>()
                    .ok()?;
                (n > 0).then_some(MetricsMode::Truncate(n))
            }
        }
    }
}

struct MetricsConfig {
    default: MetricsMode,
    columns: HashMap<String, MetricsMode>,
}

impl MetricsConfig {
    fn from_properties(props: &HashMap<String, String>) -> Self {
        let default = props
            .get(METRICS_DEFAULT_PROP)
            .and_then(|v| MetricsMode::parse(v))
            .unwrap_or(MetricsMode::Truncate(DEFAULT_TRUNCATE));
        let columns = props
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix(METRICS_COLUMN_PREFIX)?.to_string(),
                    MetricsMode::parse(v)?,
                ))
            })
            .collect();
        MetricsConfig { default, columns }
    }

    fn mode(&self, column: &str) -> MetricsMode {
        self.columns.get(column).copied().unwrap_or(self.default)
    }
}

/// A statistic value before it becomes a typed `Datum`.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Raw {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Bytes(Vec<u8>),
}

/// Row-group min/max as raw values, when the statistic type matches the Iceberg type.
fn raw_min_max(
    ptype: &PrimitiveType,
    logical: Option<&LogicalType>,
    stats: &Statistics,
) -> (Option<Raw>, Option<Raw>) {
    use PrimitiveType as P;
    let unit_ok = |want: fn(&TimeUnit) -> bool| match logical {
        Some(LogicalType::Timestamp { unit, .. }) => want(unit),
        _ => false,
    };
    match (ptype, stats) {
        (P::Boolean, Statistics::Boolean(s)) => (
            s.min_opt().map(|v| Raw::Bool(*v)),
            s.max_opt().map(|v| Raw::Bool(*v)),
        ),
        (P::Int | P::Date, Statistics::Int32(s)) => (
            s.min_opt().map(|v| Raw::I32(*v)),
            s.max_opt().map(|v| Raw::I32(*v)),
        ),
        (P::Long, Statistics::Int64(s)) => (
            s.min_opt().map(|v| Raw::I64(*v)),
            s.max_opt().map(|v| Raw::I64(*v)),
        ),
        (P::Timestamp | P::Timestamptz, Statistics::Int64(s))
            if unit_ok(|u| matches!(u, TimeUnit::MICROS)) =>
        {
            (
                s.min_opt().map(|v| Raw::I64(*v)),
                s.max_opt().map(|v| Raw::I64(*v)),
            )
        }
        (P::TimestampNs | P::TimestamptzNs, Statistics::Int64(s))
            if unit_ok(|u| matches!(u, TimeUnit::NANOS)) =>
        {
            (
                s.min_opt().map(|v| Raw::I64(*v)),
                s.max_opt().map(|v| Raw::I64(*v)),
            )
        }
        (P::Float, Statistics::Float(s)) => (
            s.min_opt().filter(|v| !v.is_nan()).map(|v| Raw::F32(*v)),
            s.max_opt().filter(|v| !v.is_nan()).map(|v| Raw::F32(*v)),
        ),
        (P::Double, Statistics::Double(s)) => (
            s.min_opt().filter(|v| !v.is_nan()).map(|v| Raw::F64(*v)),
            s.max_opt().filter(|v| !v.is_nan()).map(|v| Raw::F64(*v)),
        ),
        // A truncated Parquet min is still a lower bound and its (rounded-up) max an upper bound.
        (P::String | P::Binary, Statistics::ByteArray(s)) => (
            s.min_opt().map(|v| Raw::Bytes(v.data().to_vec())),
            s.max_opt().map(|v| Raw::Bytes(v.data().to_vec())),
        ),
        _ => (None, None),
    }
}

impl Raw {
    fn into_lower_datum(self, ptype: &PrimitiveType, truncate: Option<usize>) -> Option<Datum> {
        match (ptype, self) {
            (PrimitiveType::String, Raw::Bytes(b)) => {
                let s = String::from_utf8(b).ok()?;
                Some(Datum::string(match truncate {
                    Some(n) => s.chars().take(n).collect::<String>(),
                    None => s,
                }))
            }
            (PrimitiveType::Binary, Raw::Bytes(mut b)) => {
                if let Some(n) = truncate {
                    b.truncate(n);
                }
                Some(Datum::binary(b))
            }
            (p, raw) => raw.into_datum(p),
        }
    }

    fn into_upper_datum(self, ptype: &PrimitiveType, truncate: Option<usize>) -> Option<Datum> {
        match (ptype, self) {
            (PrimitiveType::String, Raw::Bytes(b)) => {
                let s = String::from_utf8(b).ok()?;
                match truncate {
                    Some(n) if s.chars().count() > n => {
                        truncate_string_max(&s, n).map(Datum::string)
                    }
                    _ => Some(Datum::string(s)),
                }
            }
            (PrimitiveType::Binary, Raw::Bytes(b)) => match truncate {
                Some(n) if b.len() > n => truncate_binary_max(&b, n).map(Datum::binary),
                _ => Some(Datum::binary(b)),
            },
            (p, raw) => raw.into_datum(p),
        }
    }

    fn into_datum(self, ptype: &PrimitiveType) -> Option<Datum> {
        use PrimitiveType as P;
        Some(match (ptype, self) {
            (P::Boolean, Raw::Bool(v)) => Datum::bool(v),
            (P::Int, Raw::I32(v)) => Datum::int(v),
            (P::Date, Raw::I32(v)) => Datum::date(v),
            (P::Long, Raw::I64(v)) => Datum::long(v),
            (P::Timestamp, Raw::I64(v)) => Datum::timestamp_micros(v),
            (P::Timestamptz, Raw::I64(v)) => Datum::timestamptz_micros(v),
            (P::TimestampNs, Raw::I64(v)) => Datum::timestamp_nanos(v),
            (P::TimestamptzNs, Raw::I64(v)) => Datum::timestamptz_nanos(v),
            (P::Float, Raw::F32(v)) => Datum::float(v),
            (P::Double, Raw::F64(v)) => Datum::double(v),
            _ => return None,
        })
    }
}

/// The first `n` code points of `s` with the last one incremented (skipping surrogates), so the
/// result is ≥ every string starting with that prefix; `None` when no code point can be
/// incremented.
fn truncate_string_max(s: &str, n: usize) -> Option<String> {
    let mut chars: Vec<char> = s.chars().take(n).collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The first `n` bytes of `b` with the last byte that is not 0xFF incremented (bytes after it
/// dropped); `None` when all are 0xFF.
fn truncate_binary_max(b: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut out = b[..n.min(b.len())].to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_partition_rounds_down() {
        let day = |us| match day_partition_value(us).fields()[0].clone() {
            Some(Literal::Primitive(iceberg::spec::PrimitiveLiteral::Int(d))) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(day(0), 0);
        assert_eq!(day(MICROS_PER_DAY - 1), 0);
        assert_eq!(day(MICROS_PER_DAY), 1);
        assert_eq!(day(-1), -1);
        // 2024-03-01T12:00:00Z
        assert_eq!(day(1_709_294_400_000_000), 19783);
    }

    #[test]
    fn metrics_modes() {
        assert_eq!(
            MetricsMode::parse("Truncate(8)"),
            Some(MetricsMode::Truncate(8))
        );
        assert_eq!(MetricsMode::parse("full"), Some(MetricsMode::Full));
        assert_eq!(MetricsMode::parse("counts"), Some(MetricsMode::Counts));
        assert_eq!(MetricsMode::parse("none"), Some(MetricsMode::None));
        assert_eq!(MetricsMode::parse("truncate(0)"), None);
        let cfg = MetricsConfig::from_properties(&HashMap::from([
            (
                "write.metadata.metrics.default".to_string(),
                "counts".to_string(),
            ),
            (
                "write.metadata.metrics.column.kafka.offset".to_string(),
                "full".to_string(),
            ),
        ]));
        assert_eq!(cfg.mode("kafka.offset"), MetricsMode::Full);
        assert_eq!(cfg.mode("value"), MetricsMode::Counts);
        assert_eq!(
            MetricsConfig::from_properties(&HashMap::new()).mode("x"),
            MetricsMode::Truncate(16)
        );
    }

    #[test]
    fn truncated_upper_bounds_stay_upper_bounds() {
        assert_eq!(truncate_binary_max(&[1, 2, 3, 4], 2), Some(vec![1, 3]));
        assert_eq!(truncate_binary_max(&[1, 0xFF, 3], 2), Some(vec![2]));
        assert_eq!(truncate_binary_max(&[0xFF, 0xFF, 3], 2), None);
        assert_eq!(truncate_string_max("abcdef", 3).as_deref(), Some("abd"));
        assert_eq!(truncate_string_max("a\u{10FFFF}z", 2).as_deref(), Some("b"));
        assert_eq!(
            truncate_string_max("a\u{D7FF}z", 2).as_deref(),
            Some("a\u{E000}")
        );
    }
}

/// The Arrow schema Calving reads data files in, from a file's own: byte arrays as
/// `LargeBinary`, strings as `Utf8`, lists as `List`, whatever the writer chose (Calving's files
/// carry their Arrow schema; Spark's and other Parquet writers' do not, or choose other widths),
/// so rows read the same from any engine's files. `None` when the schema is already so.
pub fn calving_arrow_schema(schema: &arrow_schema::Schema) -> Option<arrow_schema::Schema> {
    use arrow_schema::{DataType, Field};
    fn field(f: &Field) -> Field {
        f.clone().with_data_type(data_type(f.data_type()))
    }
    fn data_type(t: &DataType) -> DataType {
        match t {
            DataType::Binary | DataType::BinaryView => DataType::LargeBinary,
            DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
            DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
                DataType::List(std::sync::Arc::new(field(f)))
            }
            DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| field(f)).collect()),
            DataType::Map(f, sorted) => DataType::Map(std::sync::Arc::new(field(f)), *sorted),
            other => other.clone(),
        }
    }
    let mapped = arrow_schema::Schema::new_with_metadata(
        schema.fields().iter().map(|f| field(f)).collect::<Vec<_>>(),
        schema.metadata().clone(),
    );
    (mapped != *schema).then_some(mapped)
}

/// A Parquet reader over a data file's bytes that yields [`calving_arrow_schema`]'s types.
pub(crate) fn data_file_reader(
    bytes: bytes::Bytes,
) -> parquet::errors::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<bytes::Bytes>> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    let md = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())?;
    let md = match calving_arrow_schema(md.schema()) {
        Some(schema) => ArrowReaderMetadata::try_new(md.metadata().clone(), ArrowReaderOptions::new().with_schema(std::sync::Arc::new(schema)))?,
        None => md,
    };
    Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, md))
}

#[cfg(test)]
mod arrow_types {
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    use super::calving_arrow_schema;

    #[test]
    fn other_writers_types_read_as_calvings() {
        let header = Field::new("element", DataType::Struct(vec![Field::new("key", DataType::LargeUtf8, false), Field::new("value", DataType::Binary, true)].into()), true);
        let spark = Schema::new(vec![
            Field::new("kafka", DataType::Struct(vec![Field::new("key", DataType::Binary, true), Field::new("headers", DataType::LargeList(Arc::new(header)), true)].into()), false),
            Field::new("value", DataType::BinaryView, true),
        ]);
        let calving = calving_arrow_schema(&spark).expect("mapped");
        let header = Field::new("element", DataType::Struct(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::LargeBinary, true)].into()), true);
        let want = Schema::new(vec![
            Field::new("kafka", DataType::Struct(vec![Field::new("key", DataType::LargeBinary, true), Field::new("headers", DataType::List(Arc::new(header)), true)].into()), false),
            Field::new("value", DataType::LargeBinary, true),
        ]);
        assert_eq!(calving, want);
        assert_eq!(calving_arrow_schema(&want), None, "already Calving's types");
    }
}
