//! Removing offsets' rows (the `delete` retention mode) by what the live files hold: a file with
//! rows of other partitions (compacted by another engine) is rewritten without the removed rows,
//! a file entirely inside the removed ranges is dropped, and the ledger forgets the ranges.

use calving_table::ledger::{self, LedgerSource};
use calving_table::{files_holding, live_files, remove_offsets, Holding, LEDGER_PROP};

use crate::common::{
    data_file, keys, local_path, require_python_modules, rows, scanned_keys, segment, Row,
    TempCatalog, TOPIC_ID,
};
use crate::readers::{expected_after_rewrite, pyiceberg_view, read_table, sql_args};
use crate::sql_catalog::ledger_entries;

#[tokio::test]
async fn remove_offsets_rewrites_shared_files_and_drops_whole_ones() {
    require_python_modules(&["pyiceberg", "pyarrow", "sqlalchemy", "duckdb", "duckdb_extensions"]);
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("retention").await.unwrap();
    let (p0a, p1a) = (rows(0, 0, 6), rows(1, 0, 6));
    cat.calving
        .append("retention", vec![data_file(&table, &p0a)], segment("p0-a", 0, 0, 5))
        .await
        .unwrap();
    cat.calving
        .append("retention", vec![data_file(&table, &p1a)], segment("p1-a", 1, 0, 5))
        .await
        .unwrap();
    // Another engine compacts both partitions' rows into one file (same day).
    let mut args = sql_args(&cat, "retention");
    args.push("--rewrite".into());
    let rewrite = read_table(&args);
    let compacted = rewrite["files"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(rewrite["files"].as_array().unwrap().len(), 1, "{rewrite}");
    assert_eq!(rewrite["files"][0]["records"], 12);
    // Then Calving appends two more segments of partition 0, a file each.
    let (p0b, p0c) = (rows(0, 6, 4), rows(0, 10, 5));
    let whole = data_file(&table, &p0b);
    cat.calving
        .append("retention", vec![whole.clone()], segment("p0-b", 0, 6, 9))
        .await
        .unwrap();
    let untouched = data_file(&table, &p0c);
    cat.calving
        .append("retention", vec![untouched.clone()], segment("p0-c", 0, 10, 14))
        .await
        .unwrap();
    let table = cat.calving.load_table("retention").await.unwrap();
    let snapshots = table.metadata().snapshots().count();

    // The files that may hold offsets, by their bounds.
    let holding = |found: Vec<(calving_table::LiveFile, Holding)>| {
        let mut v: Vec<(String, Holding)> = found
            .into_iter()
            .map(|(f, h)| (f.data_file.file_path().to_string(), h))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let found = holding(files_holding(&table, TOPIC_ID, 0, 0, 9).await.unwrap());
    assert_eq!(found.len(), 2, "{found:?}");
    let shared = found.iter().find(|(p, _)| *p == compacted).expect("the compacted file").1;
    assert!(
        matches!(shared, Holding::Some(lo, hi) if lo <= 0 && hi >= 5),
        "rows of two partitions: {shared:?}"
    );
    let own = found.iter().find(|(p, _)| p == whole.file_path()).expect("p0-b's file").1;
    assert_eq!(own, Holding::Only(6, 9));
    assert_eq!(
        holding(files_holding(&table, TOPIC_ID, 1, 0, 100).await.unwrap())
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>(),
        vec![compacted.clone()]
    );
    // pyiceberg 0.12 writes no bounds for fields inside the kafka struct: the compacted file may
    // hold anything, for any partition or topic id; Calving's own files are told apart.
    for (topic_id, partition) in [(TOPIC_ID, 2), ("another-topic-id", 0)] {
        assert_eq!(
            holding(files_holding(&table, topic_id, partition, 0, 100).await.unwrap()),
            vec![(compacted.clone(), Holding::Some(i64::MIN, i64::MAX))],
            "{topic_id} {partition}"
        );
    }

    // Remove 0..=3 and 6..=9 of partition 0.
    let out = remove_offsets(&cat.calving, "retention", TOPIC_ID, 0, &[(0, 3), (6, 9)])
        .await
        .unwrap();
    assert_eq!((out.files, out.rewritten, out.rows), (1, 1, 8), "{out:?}");
    let table = cat.calving.load_table("retention").await.unwrap();
    assert_eq!(out.snapshot_id, table.metadata().current_snapshot_id());
    assert_eq!(table.metadata().snapshots().count(), snapshots + 1);

    // The live files: the compacted file's replacement (p0 4..=5, p1 0..=5) and p0-c's file.
    let live = live_files(&table).await.unwrap();
    let mut paths: Vec<&str> = live.iter().map(|f| f.data_file.file_path()).collect();
    paths.sort();
    assert_eq!(live.len(), 2, "{paths:?}");
    assert!(paths.contains(&untouched.file_path()));
    assert!(!paths.contains(&compacted.as_str()) && !paths.contains(&whole.file_path()));
    let replacement = live.iter().find(|f| f.data_file.file_path() != untouched.file_path()).unwrap();
    assert_eq!(replacement.data_file.record_count(), 8);
    assert_eq!(replacement.snapshot_id, out.snapshot_id.unwrap());
    // The replacement was written by Calving, with bounds: it holds nothing of partition 2.
    assert!(files_holding(&table, TOPIC_ID, 2, 0, 100).await.unwrap().is_empty());
    assert_eq!(
        holding(files_holding(&table, TOPIC_ID, 1, 0, 100).await.unwrap()),
        vec![(replacement.data_file.file_path().to_string(), Holding::Some(0, 5))]
    );
    // Dropped from the table, not from storage (time travel, in-flight reads).
    assert!(local_path(&compacted).exists() && local_path(whole.file_path()).exists());

    // The ledger no longer holds the removed ranges; the summary totals follow.
    let (ledger, source) = ledger::load(&table).await.unwrap();
    assert_eq!(source, LedgerSource::Snapshot(out.snapshot_id.unwrap()));
    assert_eq!(
        ledger_entries(&ledger),
        vec![
            (TOPIC_ID.to_string(), 0, vec![(4, 5), (10, 14)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 5)]),
        ]
    );
    let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
    assert_eq!(table.metadata().properties()[LEDGER_PROP], ledger.encode());
    assert_eq!(summary["total-records"], "13");
    assert_eq!(summary["total-data-files"], "2");

    // What is left, for iceberg-rust, pyiceberg and DuckDB.
    let mut expected_keys = keys(0, [4, 5, 10, 11, 12, 13, 14]);
    expected_keys.extend(keys(1, 0..6));
    assert_eq!(scanned_keys(&table).await, expected_keys);
    let compacted_left: Vec<Row> = p0a[4..].iter().chain(p1a.iter()).cloned().collect();
    let expected = expected_after_rewrite(&compacted_left, &p0c);
    let got = read_table(&sql_args(&cat, "retention"));
    assert_eq!(got["pyiceberg"]["rows"], pyiceberg_view(&expected), "pyiceberg rows");
    assert_eq!(got["duckdb"]["rows"], expected, "duckdb rows");
    assert_eq!(got["duckdb"]["count"], 13);

    // Idempotent: the same removal again, or of offsets the table never held, commits nothing.
    for ranges in [vec![(0, 3), (6, 9)], vec![(20, 30)]] {
        let again = remove_offsets(&cat.calving, "retention", TOPIC_ID, 0, &ranges).await.unwrap();
        assert_eq!((again.snapshot_id, again.files, again.rewritten, again.rows), (None, 0, 0, 0));
    }
    let table = cat.calving.load_table("retention").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), snapshots + 1);

    // The removed offsets are no longer committed: a re-upload writes them again, once.
    cat.calving
        .append("retention", vec![data_file(&table, &p0b)], segment("p0-b2", 0, 6, 9))
        .await
        .unwrap();
    let table = cat.calving.load_table("retention").await.unwrap();
    let mut expected_keys = keys(0, [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expected_keys.extend(keys(1, 0..6));
    assert_eq!(scanned_keys(&table).await, expected_keys);
    assert_eq!(ledger::load(&table).await.unwrap().0.ranges(TOPIC_ID, 0), &[(4, 14)]);
}
