//! The ledger of committed offsets (DESIGN.md invariant 4): compact, carried forward by every
//! Calving snapshot, unaffected by snapshot expiry, and rebuilt from the rows when no snapshot of
//! the current ancestry carries it (another engine rewrote the files, then the history expired).

use calving_table::ledger::{self, Ledger, LedgerSource};
use calving_table::{Error, LEDGER_PROP, LEDGER_SNAPSHOT_PROP};
use serde_json::json;

use crate::common::{
    data_file, expire_all_but_current, keys, require_python_modules, rows, scanned_keys,
    segment, Row, TempCatalog, TOPIC_ID,
};
use crate::readers::{expected_after_rewrite, expected_rows, pyiceberg_view, read_table, sql_args};
use crate::sql_catalog::ledger_entries;

/// Another Kafka topic id (a topic re-created under the same name).
const OTHER_TOPIC_ID: &str = "Zm9vYmFyYmF6cXV4cXV1eA";

fn refused_with(e: &Error, held: &[(i64, i64)]) -> bool {
    matches!(e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == held)
}

/// Both readers see exactly `expected` (sorted by partition and offset), each row once.
fn readers_see(cat: &TempCatalog, topic: &str, expected: &[Row]) {
    require_python_modules(&["pyiceberg", "pyarrow", "sqlalchemy", "duckdb", "duckdb_extensions"]);
    let got = read_table(&sql_args(cat, topic));
    let mut sorted = expected.to_vec();
    sorted.sort_by_key(|r| (r.topic_id.clone(), r.partition, r.offset));
    // read_table.py sorts by (partition, offset); keep one topic id per call.
    assert!(sorted.iter().all(|r| r.topic_id == sorted[0].topic_id));
    let expected = expected_rows(&sorted);
    assert_eq!(got["pyiceberg"]["rows"], pyiceberg_view(&expected), "pyiceberg rows");
    assert_eq!(got["duckdb"]["rows"], expected, "duckdb rows");
    assert_eq!(got["duckdb"]["count"], json!(sorted.len()));
}

#[tokio::test]
async fn the_ledger_is_one_range_per_partition_and_survives_expiry() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("expiring").await.unwrap();
    // Segments of two partitions, interleaved: (partition, first offset, rows).
    let segments = [(0, 0, 3), (1, 0, 5), (0, 3, 3), (1, 5, 5), (0, 6, 3)];
    let mut all = vec![];
    for (i, &(p, first, n)) in segments.iter().enumerate() {
        let rs = rows(p, first, n);
        let out = cat
            .calving
            .append(
                "expiring",
                vec![data_file(&table, &rs)],
                segment(&format!("seg-{i}"), p, first, first + n as i64 - 1),
            )
            .await
            .unwrap();
        all.extend(rs);
        let (ledger, source) = ledger::load(&cat.calving.load_table("expiring").await.unwrap())
            .await
            .unwrap();
        assert_eq!(source, LedgerSource::Snapshot(out.snapshot_id()));
        assert_eq!(ledger.ranges(TOPIC_ID, p), &[(0, first + n as i64 - 1)], "after seg-{i}");
    }
    let table = cat.calving.load_table("expiring").await.unwrap();
    let current = table.metadata().current_snapshot_id().unwrap();
    let (ledger, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&ledger),
        vec![
            (TOPIC_ID.to_string(), 0, vec![(0, 8)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 9)]),
        ]
    );
    // A table property stamped with the snapshot it describes, not in every snapshot's summary.
    let props = table.metadata().properties();
    assert_eq!(props[LEDGER_PROP], format!(r#"{{"{TOPIC_ID}":{{"0":[[0,8]],"1":[[0,9]]}}}}"#));
    assert_eq!(props[LEDGER_SNAPSHOT_PROP], current.to_string());
    assert!(table.metadata().snapshots().all(|s| !s.summary().additional_properties.contains_key(LEDGER_PROP)));

    // Another engine expires every snapshot but the current one.
    let table = expire_all_but_current(&cat.calving, "expiring").await;
    assert_eq!(table.metadata().current_snapshot_id(), Some(current));
    assert_eq!(
        ledger::load(&table).await.unwrap(),
        (ledger.clone(), LedgerSource::Snapshot(current))
    );

    // Re-uploads of expired segments' offsets, under their old or new segment ids, are refused.
    for (id, p, start, end, held) in [
        ("seg-2", 0, 3, 5, (0, 8)),
        ("seg-1", 1, 0, 4, (0, 9)),
        ("seg-retry", 0, 2, 9, (0, 8)),
    ] {
        let rs = rows(p, start, (end - start + 1) as usize);
        let e = cat
            .calving
            .append("expiring", vec![data_file(&table, &rs)], segment(id, p, start, end))
            .await
            .unwrap_err();
        assert!(refused_with(&e, &[held]), "{id}: {e}");
    }
    let table = cat.calving.load_table("expiring").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "nothing committed");
    let mut expected_keys = keys(0, 0..9);
    expected_keys.extend(keys(1, 0..10));
    assert_eq!(scanned_keys(&table).await, expected_keys);
    readers_see(&cat, "expiring", &all);

    // New offsets still land, and the ledger grows from the one carried forward.
    let rs = rows(0, 9, 2);
    let out = cat
        .calving
        .append("expiring", vec![data_file(&table, &rs)], segment("seg-5", 0, 9, 10))
        .await
        .unwrap();
    let (ledger, source) = ledger::load(&cat.calving.load_table("expiring").await.unwrap())
        .await
        .unwrap();
    assert_eq!(source, LedgerSource::Snapshot(out.snapshot_id()));
    assert_eq!(
        ledger_entries(&ledger),
        vec![
            (TOPIC_ID.to_string(), 0, vec![(0, 10)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 9)]),
        ]
    );
}

#[tokio::test]
async fn the_ledger_is_rebuilt_from_the_rows_when_no_snapshot_carries_it() {
    require_python_modules(&["pyiceberg", "pyarrow", "sqlalchemy", "duckdb", "duckdb_extensions"]);
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("rebuilt").await.unwrap();
    let mut other_topic = rows(0, 0, 2);
    for r in &mut other_topic {
        r.topic_id = OTHER_TOPIC_ID.to_string();
    }
    // (segment, partition, offsets start..=end, rows): offsets without rows (control records,
    // records compacted away by Kafka) at the end of p0 and inside p1.
    let segments: Vec<(&str, i32, i64, i64, Vec<Row>)> = vec![
        ("p0-a", 0, 0, 5, rows(0, 0, 6)),
        ("p0-b", 0, 6, 14, rows(0, 6, 4)),
        ("p1-a", 1, 0, 3, rows(1, 0, 2)),
        ("p1-b", 1, 4, 7, rows(1, 5, 3)),
        ("other", 0, 0, 1, other_topic.clone()),
    ];
    let mut all = vec![];
    for (id, p, start, end, rs) in &segments {
        let mut s = segment(id, *p, *start, *end);
        s.topic_id = rs[0].topic_id.clone();
        cat.calving
            .append("rebuilt", vec![data_file(&table, rs)], s)
            .await
            .unwrap();
        all.extend(rs.iter().filter(|&r| r.topic_id == TOPIC_ID).cloned());
    }
    let table = cat.calving.load_table("rebuilt").await.unwrap();
    let last_calving = table.metadata().current_snapshot_id().unwrap();
    let (carried, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&carried),
        vec![
            (OTHER_TOPIC_ID.to_string(), 0, vec![(0, 1)]),
            (TOPIC_ID.to_string(), 0, vec![(0, 14)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 7)]),
        ]
    );

    // Another engine rewrites every row (pyiceberg's overwrite with the table's own rows, as a
    // compaction does): its snapshots carry no ledger, the nearest Calving ancestor's counts.
    let mut args = sql_args(&cat, "rebuilt");
    args.push("--rewrite".into());
    let rewrite = read_table(&args);
    let foreign: Vec<i64> = rewrite["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_i64().unwrap())
        .collect();
    let table = cat.calving.load_table("rebuilt").await.unwrap();
    let current = table.metadata().current_snapshot().unwrap();
    assert!(foreign.contains(&current.snapshot_id()), "{rewrite}");
    assert!(!current.summary().additional_properties.contains_key(LEDGER_PROP));
    assert_eq!(
        ledger::load(&table).await.unwrap(),
        (carried.clone(), LedgerSource::Snapshot(last_calving))
    );
    let paths: Vec<&str> = rewrite["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 1, "one compacted file for the day: {rewrite}");

    // Then the history is expired: only the foreign snapshot is left, no ledger anywhere. The
    // ledger is rebuilt from the rows, one range per (topic id, partition): offsets without
    // rows at the end of a partition are no longer held, gaps inside a range are.
    let table = expire_all_but_current(&cat.calving, "rebuilt").await;
    let (rebuilt, source) = ledger::load(&table).await.unwrap();
    assert_eq!(source, LedgerSource::Rebuilt);
    assert_eq!(
        ledger_entries(&rebuilt),
        vec![
            (OTHER_TOPIC_ID.to_string(), 0, vec![(0, 1)]),
            (TOPIC_ID.to_string(), 0, vec![(0, 9)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 7)]),
        ]
    );
    assert_eq!(ledger::rebuild(&table).await.unwrap(), rebuilt);

    // Exactly once holds against the rebuilt ledger.
    for (id, p, start, end, held) in [
        ("p0-b", 0, 6, 14, (0, 9)),
        ("p0-retry", 0, 3, 5, (0, 9)),
        ("p1-gap", 1, 2, 4, (0, 7)),
    ] {
        let rs = rows(p, start, (end - start + 1) as usize);
        let e = cat
            .calving
            .append("rebuilt", vec![data_file(&table, &rs)], segment(id, p, start, end))
            .await
            .unwrap_err();
        assert!(refused_with(&e, &[held]), "{id}: {e}");
    }
    let table = cat.calving.load_table("rebuilt").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "nothing committed");

    // New offsets land; their snapshot carries the rebuilt ledger forward with its own range.
    let rewritten = all.clone();
    let rs = rows(0, 15, 2);
    let out = cat
        .calving
        .append("rebuilt", vec![data_file(&table, &rs)], segment("p0-c", 0, 15, 16))
        .await
        .unwrap();
    all.extend(rs);
    let table = cat.calving.load_table("rebuilt").await.unwrap();
    let (ledger, source) = ledger::load(&table).await.unwrap();
    assert_eq!(source, LedgerSource::Snapshot(out.snapshot_id()));
    let mut expected = rebuilt.clone();
    expected.add(TOPIC_ID, 0, 15, 16);
    assert_eq!(ledger, expected);
    assert_eq!(ledger.ranges(TOPIC_ID, 0), &[(0, 9), (15, 16)]);
    assert_ne!(ledger, Ledger::default());

    // Every row once, for iceberg-rust, pyiceberg and DuckDB.
    let mut expected_keys: Vec<_> = other_topic
        .iter()
        .map(|r| (r.topic_id.clone(), r.partition, r.offset))
        .collect();
    expected_keys.extend(all.iter().map(|r| (r.topic_id.clone(), r.partition, r.offset)));
    expected_keys.sort();
    assert_eq!(scanned_keys(&table).await, expected_keys);
    let got = read_table(&sql_args(&cat, "rebuilt"));
    for reader in ["pyiceberg", "duckdb"] {
        let ours: Vec<_> = got[reader]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["topic_id"] == json!(TOPIC_ID))
            .cloned()
            .collect();
        let want = expected_after_rewrite(&rewritten, &all[rewritten.len()..]);
        let want = if reader == "pyiceberg" { pyiceberg_view(&want) } else { want };
        assert_eq!(serde_json::Value::Array(ours), want, "{reader}");
        assert_eq!(got[reader]["rows"].as_array().unwrap().len(), all.len() + 2, "{reader}");
    }
}

#[tokio::test]
async fn a_ledger_stamped_with_a_snapshot_outside_the_ancestry_is_not_trusted() {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("stamped").await.unwrap();
    let rs = rows(0, 0, 4);
    cat.calving.append("stamped", vec![data_file(&table, &rs)], segment("seg-0", 0, 0, 3)).await.unwrap();
    // Someone copies another table's ledger properties (or the table was rolled back past the
    // stamped snapshot): the stamp names no snapshot of the current ancestry.
    let table = cat.calving.load_table("stamped").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .set(LEDGER_PROP.into(), format!(r#"{{"{TOPIC_ID}":{{"0":[[0,99]]}}}}"#))
        .set(LEDGER_SNAPSHOT_PROP.into(), "12345".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let (ledger, source) = ledger::load(&table).await.unwrap();
    assert_eq!((ledger.ranges(TOPIC_ID, 0), source), (&[(0, 3)][..], LedgerSource::Rebuilt));
    // The next commit stamps its own snapshot again.
    let rs = rows(0, 4, 2);
    let out = cat.calving.append("stamped", vec![data_file(&table, &rs)], segment("seg-1", 0, 4, 5)).await.unwrap();
    let table = cat.calving.load_table("stamped").await.unwrap();
    let (ledger, source) = ledger::load(&table).await.unwrap();
    assert_eq!((ledger.ranges(TOPIC_ID, 0), source), (&[(0, 5)][..], LedgerSource::Snapshot(out.snapshot_id())));
}
