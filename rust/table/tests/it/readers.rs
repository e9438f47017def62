//! Independent readers (DESIGN.md invariant 8): pyiceberg (Python) and DuckDB (C++) read the
//! table iceberg-rust wrote, through the same SQLite catalog file and the metadata JSON.

use std::process::Command;

use calving_table::ledger::{self, LedgerSource};
use calving_table::{CommitOutcome, LEDGER_PROP, LEDGER_SNAPSHOT_PROP};
use serde_json::{json, Value};

use crate::common::{
    data_file, keys, require_python_modules, rows, scanned_keys, scripts_dir, segment, Row,
    TempCatalog, TOPIC_ID,
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn expected_rows(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "topic_id": r.topic_id,
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp_us": r.timestamp_us,
                    "key": r.key.as_deref().map(hex),
                    "headers": r.headers.as_ref().map(|hs| hs.iter().map(|(k, v)| json!([k, v.as_deref().map(hex)])).collect::<Vec<_>>()),
                    "value": r.value.as_deref().map(hex),
                })
            })
            .collect(),
    )
}

/// What pyiceberg 0.12.0 returns for `expected`: it reads a null list of structs as an empty list
/// (pyiceberg/io/pyarrow.py, `ArrowProjectionVisitor.list` rebuilds list-of-struct arrays with
/// `pa.LargeListArray.from_arrays(offsets, values)`, dropping the validity bitmap). The Parquet
/// file holds the null (DuckDB reads it back), so only pyiceberg's view is adjusted.
pub fn pyiceberg_view(expected: &Value) -> Value {
    let mut v = expected.clone();
    for row in v.as_array_mut().unwrap() {
        if row["headers"].is_null() {
            row["headers"] = json!([]);
        }
    }
    v
}

/// What both readers return once pyiceberg rewrote the rows `rewritten` (`read_table.py
/// --rewrite`: pyiceberg writes the null header lists it reads as empty lists, see
/// [`pyiceberg_view`]) and Calving appended `ours`; sorted by (partition, offset).
pub fn expected_after_rewrite(rewritten: &[Row], ours: &[Row]) -> Value {
    let mut all = pyiceberg_view(&expected_rows(rewritten)).as_array().unwrap().clone();
    all.extend(expected_rows(ours).as_array().unwrap().iter().cloned());
    all.sort_by_key(|r| (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap()));
    Value::Array(all)
}

/// Runs tests/readers/read_table.py with `args`; its JSON output.
pub fn read_table(args: &[String]) -> Value {
    let script = scripts_dir().join("readers/read_table.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3, then run tests/install-deps.sh")
        });
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from read_table.py ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The arguments of read_table.py for `kafka.<topic>` in the SQLite catalog of `cat`.
pub fn sql_args(cat: &TempCatalog, topic: &str) -> Vec<String> {
    vec![
        "--table".to_string(),
        format!("kafka.{topic}"),
        "--sql-uri".to_string(),
        format!("sqlite:///{}", cat.sqlite_file().display()),
        "--warehouse".to_string(),
        format!("file://{}", cat.warehouse_dir().display()),
        "--catalog-name".to_string(),
        "calving".to_string(),
    ]
}

fn summaries(reader: &Value) -> Vec<Value> {
    reader["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["summary"].clone())
        .collect()
}

#[tokio::test]
async fn pyiceberg_and_duckdb_read_what_we_committed() {
    require_python_modules(&[
        "pyiceberg",
        "pyarrow",
        "sqlalchemy",
        "duckdb",
        "duckdb_extensions",
        "duckdb_extension_iceberg",
        "duckdb_extension_avro",
    ]);
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("events").await.unwrap();
    let a = rows(0, 0, 6);
    let b = rows(0, 6, 5);
    let out = cat
        .calving
        .append("events", vec![data_file(&table, &a)], segment("seg-a", 0, 0, 5))
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_a,
        table,
    } = out;
    let out = cat
        .calving
        .append("events", vec![data_file(&table, &b)], segment("seg-b", 0, 6, 10))
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_b,
        table,
    } = out;

    let base_args = sql_args(&cat, "events");
    let mut args = base_args.clone();
    args.extend([
        "--metadata".to_string(),
        table.metadata_location().unwrap().to_string(),
    ]);
    let got = read_table(&args);

    let all: Vec<Row> = a.iter().chain(b.iter()).cloned().collect();
    let expected = expected_rows(&all);
    let py = &got["pyiceberg"];
    let duck = &got["duckdb"];
    assert_eq!(py["rows"], pyiceberg_view(&expected), "pyiceberg rows");
    assert_eq!(duck["rows"], expected, "duckdb rows");
    assert_eq!(duck["count"], json!(11));
    // Null vs empty header lists and null header values survive.
    assert!(expected
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["headers"].is_null()));
    assert!(expected
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["headers"] == json!([])));

    assert_eq!(py["current_snapshot_id"], json!(snap_b));
    assert_eq!(py["format_version"], json!(2));
    assert_eq!(
        py["partition_fields"],
        json!([["kafka_timestamp_day", "day", 6]])
    );
    assert_eq!(py["properties"]["calving.layout-version"], json!("1"));
    let s = summaries(py);
    assert_eq!(s.len(), 2);
    for (summary, (seg, start, end)) in s.iter().zip([("seg-a", "0", "5"), ("seg-b", "6", "10")]) {
        assert_eq!(summary["calving.segment-id"], json!(seg));
        assert_eq!(summary["calving.topic-id"], json!(TOPIC_ID));
        assert_eq!(summary["calving.partition"], json!("0"));
        assert_eq!(summary["calving.start-offset"], json!(start));
        assert_eq!(summary["calving.end-offset"], json!(end));
    }
    // pyiceberg reads the ledger Calving carries in a table property, stamped with its snapshot.
    assert_eq!(py["properties"][LEDGER_PROP], json!(format!(r#"{{"{TOPIC_ID}":{{"0":[[0,10]]}}}}"#)));
    assert_eq!(py["properties"][LEDGER_SNAPSHOT_PROP], json!(snap_b.to_string()));
    let duck_ids: Vec<i64> = duck["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot_id"].as_i64().unwrap())
        .collect();
    assert_eq!(duck_ids, vec![snap_a, snap_b]);
    // DuckDB 1.5.5's iceberg_snapshots has no summary properties, only the operation.
    assert!(duck["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["operation"] == json!("append")));

    // Another engine rolls main back to the first snapshot. The ledger follows the current
    // ancestry: seg-b's offsets are no longer in the table, so committing them again is right,
    // and lands once.
    let mut rollback = base_args.clone();
    rollback.extend(["--rollback-to".to_string(), snap_a.to_string()]);
    read_table(&rollback);
    let table = cat.calving.load_table("events").await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), Some(snap_a));
    let (ledger, source) = ledger::load(&table).await.unwrap();
    // The property is stamped with seg-b's snapshot, no longer in the ancestry: not trusted, the
    // ledger is rebuilt from the rows.
    assert_eq!(source, LedgerSource::Rebuilt, "a rolled-back snapshot does not count");
    assert_eq!(ledger.ranges(TOPIC_ID, 0), &[(0, 5)]);
    assert_eq!(scanned_keys(&table).await, keys(0, 0..6));
    let out = cat
        .calving
        .append("events", vec![data_file(&table, &b)], segment("seg-b", 0, 6, 10))
        .await
        .unwrap();
    let table = cat.calving.load_table("events").await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), Some(out.snapshot_id()));
    assert_eq!(ledger::load(&table).await.unwrap().0.ranges(TOPIC_ID, 0), &[(0, 10)]);

    let mut args = base_args.clone();
    args.extend(["--reader".to_string(), "pyiceberg".to_string()]);
    let got = read_table(&args);
    assert_eq!(
        got["pyiceberg"]["rows"],
        pyiceberg_view(&expected),
        "pyiceberg after re-commit"
    );
}
