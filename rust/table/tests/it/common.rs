//! Helpers of the integration tests: a temporary SQLite catalog with a local warehouse, rows of
//! the default table, Parquet files written like Calving writes them (arrow-rs `ArrowWriter`,
//! Arrow schema from the table schema), and the external tools the tests run.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int32Array, Int64Array, LargeBinaryArray, ListArray, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray,
};
use arrow_schema::DataType;
use calving_table::table::columns;
use calving_table::{
    data_file_from_parquet, field_id, new_data_file_location, normalize, partition_value,
    referenced_files, CalvingCatalog, CatalogConfig, SegmentCommit,
};
use futures::TryStreamExt;
use iceberg::spec::{DataFile, Datum, Struct};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;

/// Kafka-style topic id (base64 of a UUID, as Kafka prints it).
pub const TOPIC_ID: &str = "q8mJ8C5xR3yqzQ0dWcXbvA";

/// One record as a row of the default table.
#[derive(Debug, Clone)]
pub struct Row {
    pub topic_id: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_us: i64,
    pub key: Option<Vec<u8>>,
    /// `None`: no headers list (null); `Some(vec![])`: an empty list.
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
    pub value: Option<Vec<u8>>,
}

/// 2024-03-01T00:00:00Z in µs.
pub const DAY0_US: i64 = 1_709_251_200_000_000;

/// `n` rows of partition `partition` from `first_offset`, one second apart from `DAY0_US`, with
/// keys, headers (including a null header value and a null/empty list) and values.
pub fn rows(partition: i32, first_offset: i64, n: usize) -> Vec<Row> {
    (0..n as i64)
        .map(|i| {
            let offset = first_offset + i;
            Row {
                topic_id: TOPIC_ID.to_string(),
                partition,
                offset,
                timestamp_us: DAY0_US + offset * 1_000_000,
                key: (offset % 5 != 0).then(|| format!("key-{offset}").into_bytes()),
                headers: match offset % 4 {
                    0 => None,
                    1 => Some(vec![]),
                    _ => Some(vec![
                        ("h1".to_string(), Some(format!("v{offset}").into_bytes())),
                        ("h1".to_string(), None),
                    ]),
                },
                value: (offset % 7 != 0).then(|| format!("value-{offset}").repeat(3).into_bytes()),
            }
        })
        .collect()
}

/// A temporary SQLite catalog + local warehouse.
pub struct TempCatalog {
    pub dir: tempfile::TempDir,
    pub calving: CalvingCatalog,
}

impl TempCatalog {
    pub async fn new() -> Self {
        Self::with_props(&[]).await
    }

    pub async fn with_props(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut props = BTreeMap::from([(
            "warehouse".to_string(),
            format!("file://{}/warehouse", dir.path().display()),
        )]);
        for (k, v) in extra {
            props.insert(k.to_string(), v.to_string());
        }
        let config = CatalogConfig::from_props(props).unwrap();
        let calving = CalvingCatalog::connect(config).await.unwrap();
        TempCatalog { dir, calving }
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    pub fn sqlite_file(&self) -> PathBuf {
        self.warehouse_dir().join("calving-catalog.db")
    }

    /// Another catalog instance (another "broker") on the same SQLite file.
    pub async fn second_instance(&self) -> CalvingCatalog {
        CalvingCatalog::connect(self.calving.config().clone())
            .await
            .unwrap()
    }
}

/// Local path of a `file:` URI or absolute path.
pub fn local_path(uri: &str) -> PathBuf {
    let p = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    PathBuf::from(p)
}

/// The Arrow batch of `rows` in the table's Arrow schema (from its current Iceberg schema).
pub fn record_batch(table: &Table, rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()).unwrap(),
    );
    let kafka_field = schema.field_with_name("kafka").unwrap();
    let DataType::Struct(kafka_fields) = kafka_field.data_type() else {
        panic!("kafka is not a struct")
    };
    let headers_field = kafka_fields.iter().find(|f| f.name() == "headers").unwrap();
    let DataType::List(element_field) = headers_field.data_type() else {
        panic!("headers is not a list")
    };
    let DataType::Struct(header_fields) = element_field.data_type() else {
        panic!("element is not a struct")
    };

    let mut offsets = vec![0i32];
    let mut h_keys: Vec<String> = vec![];
    let mut h_values: Vec<Option<Vec<u8>>> = vec![];
    let mut list_valid = vec![];
    for r in rows {
        if let Some(hs) = &r.headers {
            for (k, v) in hs {
                h_keys.push(k.clone());
                h_values.push(v.clone());
            }
        }
        list_valid.push(r.headers.is_some());
        offsets.push(h_keys.len() as i32);
    }
    let header_struct = StructArray::try_new(
        header_fields.clone(),
        vec![
            Arc::new(StringArray::from(h_keys)) as ArrayRef,
            Arc::new(LargeBinaryArray::from(
                h_values.iter().map(|v| v.as_deref()).collect::<Vec<_>>(),
            )),
        ],
        None,
    )
    .unwrap();
    let headers = ListArray::try_new(
        element_field.clone(),
        arrow_buffer_offsets(offsets),
        Arc::new(header_struct),
        Some(list_valid.into()),
    )
    .unwrap();

    let by_name = |name: &str| -> ArrayRef {
        match name {
            "topic_id" => Arc::new(StringArray::from(
                rows.iter().map(|r| r.topic_id.clone()).collect::<Vec<_>>(),
            )),
            "partition" => Arc::new(Int32Array::from(
                rows.iter().map(|r| r.partition).collect::<Vec<_>>(),
            )),
            "offset" => Arc::new(Int64Array::from(
                rows.iter().map(|r| r.offset).collect::<Vec<_>>(),
            )),
            "timestamp" => Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter().map(|r| r.timestamp_us).collect::<Vec<_>>(),
                )
                .with_timezone("+00:00"),
            ),
            "key" => Arc::new(LargeBinaryArray::from(
                rows.iter().map(|r| r.key.as_deref()).collect::<Vec<_>>(),
            )),
            "headers" => Arc::new(headers.clone()),
            other => panic!("unexpected kafka field {other}"),
        }
    };
    let kafka = StructArray::try_new(
        kafka_fields.clone(),
        kafka_fields.iter().map(|f| by_name(f.name())).collect(),
        None,
    )
    .unwrap();
    let value: ArrayRef = Arc::new(LargeBinaryArray::from(
        rows.iter().map(|r| r.value.as_deref()).collect::<Vec<_>>(),
    ));
    let columns = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "kafka" => Arc::new(kafka.clone()) as ArrayRef,
            "value" => value.clone(),
            // Extra (optional) columns of an adopted table: nulls.
            _ => arrow_array::new_null_array(f.data_type(), rows.len()),
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn arrow_buffer_offsets(offsets: Vec<i32>) -> arrow_buffer::OffsetBuffer<i32> {
    arrow_buffer::OffsetBuffer::new(offsets.into())
}

/// The partition value of a row under the table's default spec (whatever the spec is), from the
/// values of the row's `kafka` columns.
pub fn partition_of(table: &Table, row: &Row) -> Struct {
    let id = |c: &str| field_id(table, c).unwrap();
    let values = HashMap::from([
        (id(columns::TOPIC_ID), Datum::string(&row.topic_id)),
        (id(columns::PARTITION), Datum::int(row.partition)),
        (id(columns::OFFSET), Datum::long(row.offset)),
        (
            id(columns::TIMESTAMP),
            Datum::timestamptz_micros(row.timestamp_us),
        ),
    ]);
    partition_value(table, &values).unwrap()
}

/// Writes `rows` (all of one table partition) as a Parquet data file of `table` with row groups of
/// `row_group_rows` rows, like Calving does, and returns its path, size and footer.
pub fn write_parquet(
    table: &Table,
    rows: &[Row],
    row_group_rows: usize,
) -> (String, u64, ParquetMetaData) {
    let partition = partition_of(table, &rows[0]);
    let location = new_data_file_location(table, &partition);
    let path = local_path(&location);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = record_batch(table, rows);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer =
        ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    let metadata = writer.close().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    (location, size, metadata)
}

/// Writes `rows` and builds their data file.
pub fn data_file(table: &Table, rows: &[Row]) -> DataFile {
    let (location, size, metadata) = write_parquet(table, rows, 4);
    data_file_from_parquet(
        table,
        &location,
        size,
        &metadata,
        partition_of(table, &rows[0]),
    )
    .unwrap()
}

/// Runs a tool and fails the test, naming tests/install-deps.sh, when it is missing.
pub fn require_python_modules(modules: &[&str]) {
    let probe = format!("import {}", modules.join(", "));
    let out = Command::new("python3").arg("-c").arg(&probe).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 lacks {modules:?} ({}): run tests/install-deps.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("python3 not found ({e}): install Python 3, then run tests/install-deps.sh")
        }
    }
}

/// The directory of this crate's test scripts, from the environment `cargo test` gives the test
/// process (a compile-time path would point at another checkout when CI reuses a target
/// directory across clones).
pub fn scripts_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests")
}

/// A segment commit of `TOPIC_ID` for new offsets (nothing already held), with one extra summary
/// property.
pub fn segment(id: &str, partition: i32, start: i64, end: i64) -> SegmentCommit {
    SegmentCommit {
        topic_id: TOPIC_ID.to_string(),
        partition,
        segment_id: id.to_string(),
        start_offset: start,
        end_offset: end,
        extra: BTreeMap::from([("calving.broker-id".to_string(), "1".to_string())]),
        ..Default::default()
    }
}

/// (topic id, partition, offset) of every row of the table's current snapshot, read with
/// iceberg-rust's scan, sorted (duplicates kept, so that a duplicate shows).
pub async fn scanned_keys(table: &Table) -> Vec<(String, i32, i64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    if table.metadata().current_snapshot().is_none() {
        return vec![];
    }
    let stream = table.scan().select(["kafka"]).build().unwrap().to_arrow().await.unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let mut keys = vec![];
    for b in &batches {
        let k = b.column_by_name("kafka").unwrap().as_struct();
        let t = k.column_by_name("topic_id").unwrap().as_string::<i32>().clone();
        let p = k.column_by_name("partition").unwrap().as_primitive::<Int32Type>().clone();
        let o = k.column_by_name("offset").unwrap().as_primitive::<Int64Type>().clone();
        for i in 0..b.num_rows() {
            keys.push((t.value(i).to_string(), p.value(i), o.value(i)));
        }
    }
    keys.sort();
    keys
}

/// The keys of `TOPIC_ID` rows of `partition` with these offsets.
pub fn keys(partition: i32, offsets: impl IntoIterator<Item = i64>) -> Vec<(String, i32, i64)> {
    offsets
        .into_iter()
        .map(|o| (TOPIC_ID.to_string(), partition, o))
        .collect()
}

/// Files under the table's `metadata/` directory that its metadata does not refer to (written
/// for commits that did not land, and not cleaned up).
pub async fn unreferenced_metadata_files(table: &Table) -> Vec<String> {
    let referenced = referenced_files(table).await.unwrap();
    let dir = local_path(table.metadata().location()).join("metadata");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| normalize(&e.unwrap().path().display().to_string()))
        .filter(|p| !referenced.contains(p))
        .collect();
    out.sort();
    out
}

/// Whether every file the table's metadata refers to is still in storage.
pub async fn all_referenced_files_exist(table: &Table) -> bool {
    referenced_files(table)
        .await
        .unwrap()
        .iter()
        .all(|p| local_path(p).exists())
}

/// Expires every snapshot but the current one, with iceberg-rust's `ExpireSnapshots` action
/// (metadata only, as an engine's `expire_snapshots` does before its file cleanup).
pub async fn expire_all_but_current(calving: &CalvingCatalog, topic: &str) -> Table {
    let table = calving.load_table(topic).await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .expire_snapshots()
        .expire_older_than_ms(i64::MAX)
        .retain_last(1)
        .apply(tx)
        .unwrap();
    let table = tx.commit(calving.catalog().as_ref()).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "only the current snapshot is left");
    table
}
