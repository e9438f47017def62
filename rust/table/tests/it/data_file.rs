//! `data_file_from_parquet` against the Parquet file read back with the parquet crate's reader.

use std::collections::HashMap;
use std::fs::File;

use calving_table::table::columns;
use calving_table::{
    data_file_from_parquet, day_partition_value, field_id, partition_value, Error,
};
use iceberg::spec::{DataContentType, DataFileFormat, Datum, Struct};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use parquet::arrow::ArrowWriter;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use crate::common::{local_path, rows, write_parquet, TempCatalog, DAY0_US, TOPIC_ID};

#[tokio::test]
async fn data_file_matches_the_parquet_file() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("orders").await.unwrap();
    let rows = rows(3, 100, 10);
    let (location, size, written) = write_parquet(&table, &rows, 4);
    let partition = day_partition_value(rows[0].timestamp_us);
    let df = data_file_from_parquet(&table, &location, size, &written, partition.clone()).unwrap();

    // Read the file back independently of the writer's footer object.
    let reader = SerializedFileReader::new(File::open(local_path(&location)).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.num_row_groups(), 3, "10 rows in row groups of 4");

    assert_eq!(df.content_type(), DataContentType::Data);
    assert_eq!(df.file_format(), DataFileFormat::Parquet);
    assert_eq!(df.file_path(), location);
    assert_eq!(
        df.file_size_in_bytes(),
        std::fs::metadata(local_path(&location)).unwrap().len()
    );
    assert_eq!(df.record_count(), meta.file_metadata().num_rows() as u64);
    assert_eq!(df.record_count(), 10);
    assert_eq!(df.partition(), &partition);
    // (DataFile has no public getter for its partition spec id in iceberg 0.10.1; append checks it.)
    let starts: Vec<i64> = meta
        .row_groups()
        .iter()
        .map(|rg| {
            rg.columns()
                .iter()
                .map(|c| c.dictionary_page_offset().unwrap_or(c.data_page_offset()))
                .min()
                .unwrap()
        })
        .collect();
    assert_eq!(df.split_offsets(), Some(starts.as_slice()));
    assert_eq!(
        starts[0], 4,
        "the first row group starts right after the magic bytes"
    );

    let id = |c: &str| field_id(&table, c).unwrap();
    let (topic, part, offset, ts, key, value) = (
        id(columns::TOPIC_ID),
        id(columns::PARTITION),
        id(columns::OFFSET),
        id(columns::TIMESTAMP),
        id(columns::KEY),
        id(columns::VALUE),
    );
    let header_key = id("kafka.headers.element.key");
    let header_value = id("kafka.headers.element.value");

    // Column sizes and value/null counts: per leaf field id, summed over row groups.
    let mut sizes: HashMap<i32, u64> = HashMap::new();
    let mut values: HashMap<i32, u64> = HashMap::new();
    let mut nulls: HashMap<i32, u64> = HashMap::new();
    for rg in meta.row_groups() {
        for c in rg.columns() {
            let fid = c.column_descr().self_type().get_basic_info().id();
            *sizes.entry(fid).or_default() += c.compressed_size() as u64;
            *values.entry(fid).or_default() += c.num_values() as u64;
            *nulls.entry(fid).or_default() += c
                .statistics()
                .and_then(Statistics::null_count_opt)
                .unwrap_or(0);
        }
    }
    assert_eq!(df.column_sizes(), &sizes);
    assert_eq!(df.value_counts(), &values);
    assert_eq!(df.null_value_counts(), &nulls);
    for fid in [
        topic,
        part,
        offset,
        ts,
        key,
        value,
        header_key,
        header_value,
    ] {
        assert!(
            df.column_sizes().contains_key(&fid),
            "field {fid} has a size"
        );
    }
    assert_eq!(df.value_counts()[&offset], 10);
    let key_nulls = rows.iter().filter(|r| r.key.is_none()).count() as u64;
    let value_nulls = rows.iter().filter(|r| r.value.is_none()).count() as u64;
    assert_eq!(df.null_value_counts()[&key], key_nulls);
    assert_eq!(df.null_value_counts()[&value], value_nulls);
    assert!(key_nulls > 0 && value_nulls > 0);

    // Bounds: nested struct primitives under their own ids; none for list elements.
    let lower = df.lower_bounds();
    let upper = df.upper_bounds();
    assert_eq!(lower[&part], Datum::int(3));
    assert_eq!(upper[&part], Datum::int(3));
    assert_eq!(lower[&offset], Datum::long(100));
    assert_eq!(upper[&offset], Datum::long(109));
    assert_eq!(lower[&ts], Datum::timestamptz_micros(DAY0_US + 100_000_000));
    assert_eq!(upper[&ts], Datum::timestamptz_micros(DAY0_US + 109_000_000));
    // Calving's tables keep the topic id's bounds whole (`write.metadata.metrics.column.
    // kafka.topic_id` = full): a file of one topic id shows it.
    assert_eq!(lower[&topic], Datum::string(TOPIC_ID));
    assert_eq!(upper[&topic], Datum::string(TOPIC_ID));
    assert!(lower.contains_key(&key) && upper.contains_key(&key));
    assert!(!lower.contains_key(&header_key) && !lower.contains_key(&header_value));

    // Without that property, truncate(16), Iceberg's default metrics mode: the 22-char topic
    // id's bounds are its first 16 chars, the upper one rounded up.
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .remove("write.metadata.metrics.column.kafka.topic_id".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let (location, size, written) = write_parquet(&table, &rows, 4);
    let truncated = data_file_from_parquet(&table, &location, size, &written, partition.clone()).unwrap();
    assert_eq!(truncated.lower_bounds()[&topic], Datum::string(&TOPIC_ID[..16]));
    let mut up: Vec<char> = TOPIC_ID[..16].chars().collect();
    *up.last_mut().unwrap() = char::from_u32(*up.last().unwrap() as u32 + 1).unwrap();
    assert_eq!(
        truncated.upper_bounds()[&topic],
        Datum::string(up.into_iter().collect::<String>())
    );

    // The same bounds against the statistics read back, for the offset column.
    let offset_stats: Vec<(i64, i64)> = meta
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns().iter())
        .filter(|c| c.column_descr().self_type().get_basic_info().id() == offset)
        .map(|c| match c.statistics().unwrap() {
            Statistics::Int64(s) => (*s.min_opt().unwrap(), *s.max_opt().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(offset_stats.iter().map(|s| s.0).min(), Some(100));
    assert_eq!(offset_stats.iter().map(|s| s.1).max(), Some(109));

    // The generic partition helper agrees with the day helper.
    let by_spec = partition_value(
        &table,
        &HashMap::from([(ts, Datum::timestamptz_micros(rows[0].timestamp_us))]),
    )
    .unwrap();
    assert_eq!(by_spec, partition);
}

#[tokio::test]
async fn metrics_modes_from_table_properties() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("metrics").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .set("write.metadata.metrics.default".into(), "counts".into())
        .set(
            "write.metadata.metrics.column.kafka.offset".into(),
            "full".into(),
        )
        .set("write.metadata.metrics.column.value".into(), "none".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let rows = rows(0, 0, 5);
    let (location, size, written) = write_parquet(&table, &rows, 100);
    let df = data_file_from_parquet(
        &table,
        &location,
        size,
        &written,
        day_partition_value(DAY0_US),
    )
    .unwrap();
    let id = |c: &str| field_id(&table, c).unwrap();
    // kafka.topic_id keeps the full bounds of Calving's default properties.
    let mut bounded: Vec<i32> = df.lower_bounds().keys().copied().collect();
    bounded.sort();
    assert_eq!(bounded, vec![id(columns::TOPIC_ID), id(columns::OFFSET)]);
    assert!(df.value_counts().contains_key(&id(columns::PARTITION)));
    assert!(
        !df.value_counts().contains_key(&id(columns::VALUE)),
        "mode none: no counts"
    );
    assert!(
        df.column_sizes().contains_key(&id(columns::VALUE)),
        "sizes are always kept"
    );
}

#[tokio::test]
async fn rejects_files_without_field_ids_and_wrong_partitions() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("bad").await.unwrap();
    let rows = rows(0, 0, 3);

    // A Parquet file written from an Arrow schema without PARQUET:field_id metadata.
    let path = cat.dir.path().join("no-ids.parquet");
    let flat = arrow_array::RecordBatch::try_from_iter([(
        "offset",
        std::sync::Arc::new(arrow_array::Int64Array::from(vec![1i64, 2])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), flat.schema(), None).unwrap();
    w.write(&flat).unwrap();
    let md = w.close().unwrap();
    let loc = format!("file://{}", path.display());
    let e = data_file_from_parquet(&table, &loc, 1, &md, day_partition_value(0)).unwrap_err();
    assert!(matches!(e, Error::InvalidDataFile { .. }), "{e}");
    assert!(e.to_string().contains("no field ids"), "{e}");

    let (location, size, written) = write_parquet(&table, &rows, 10);
    let e = data_file_from_parquet(&table, &location, size, &written, Struct::empty()).unwrap_err();
    assert!(matches!(e, Error::InvalidDataFile { .. }), "{e}");
}
