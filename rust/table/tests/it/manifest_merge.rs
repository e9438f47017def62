//! Appends merge small manifests as Iceberg's own appends do (`commit.manifest-merge.enabled`,
//! `commit.manifest.min-count-to-merge`): the manifest list of a table that takes one commit per
//! segment stays bounded between maintenance runs, and merging changes nothing a reader sees.

use std::collections::BTreeMap;

use calving_table::{CalvingCatalog, MERGE_ENABLED_PROP, MIN_COUNT_TO_MERGE_PROP};
use iceberg::spec::ManifestStatus;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::common::{
    data_file, keys, require_python_modules, rows, scanned_keys, segment, unreferenced_metadata_files,
    TempCatalog,
};
use crate::readers::{expected_rows, pyiceberg_view, read_table, sql_args};

async fn set_property(cat: &TempCatalog, topic: &str, key: &str, value: &str) {
    let table = cat.calving.load_table(topic).await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx.update_table_properties().set(key.into(), value.into()).apply(tx).unwrap();
    tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
}

/// Every live entry of the current snapshot: data file path → (status, snapshot id that added
/// it, data sequence number, file sequence number); and the number of manifests listed.
async fn entries(table: &Table) -> (BTreeMap<String, (ManifestStatus, i64, i64, i64)>, usize) {
    let snapshot = table.metadata().current_snapshot().unwrap();
    let list = table.manifest_list_reader(snapshot).load().await.unwrap();
    let mut out = BTreeMap::new();
    for m in list.entries() {
        for e in m.load_manifest(table.file_io()).await.unwrap().entries() {
            if e.status() != ManifestStatus::Deleted {
                let key = e.data_file().file_path().to_string();
                let value = (e.status(), e.snapshot_id().unwrap(), e.sequence_number().unwrap(), e.file_sequence_number.unwrap());
                assert!(out.insert(key, value).is_none(), "a data file listed twice");
            }
        }
    }
    (out, list.entries().len())
}

/// Appends segments `seg-<i>` of three rows each to `partition` of table `merging`, from offset
/// 15 on (after what the first part appended), one commit each.
async fn append_three_rows(calving: &CalvingCatalog, segments: std::ops::Range<i64>, partition: i32) {
    for i in segments.clone() {
        let rs = rows(partition, 15 + (i - segments.start) * 3, 3);
        let table = calving.load_table("merging").await.unwrap();
        calving
            .append("merging", vec![data_file(&table, &rs)], segment(&format!("seg-{i}"), partition, rs[0].offset, rs[2].offset))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn appends_merge_small_manifests_and_every_file_keeps_its_numbers() {
    let cat = TempCatalog::new().await;
    cat.calving.ensure_table("merging").await.unwrap();
    set_property(&cat, "merging", MIN_COUNT_TO_MERGE_PROP, "4").await;
    // A writer that has not seen that other commit (a table someone else committed to lately
    // is contended, and its appends leave merging to maintenance: see the last part).
    let writer = cat.second_instance().await;
    let mut all = vec![];
    // What each file was committed with, from the snapshot that added it.
    let mut first_seen: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut counts = vec![];
    for i in 0..10i64 {
        let (p, first) = ((i % 2) as i32, (i / 2) * 3);
        let rs = rows(p, first, 3);
        let table = cat.calving.load_table("merging").await.unwrap();
        let out = writer
            .append("merging", vec![data_file(&table, &rs)], segment(&format!("seg-{i}"), p, first, first + 2))
            .await
            .unwrap();
        all.extend(rs);
        let table = cat.calving.load_table("merging").await.unwrap();
        let (live, listed) = entries(&table).await;
        counts.push(listed);
        assert_eq!(live.len(), i as usize + 1, "after seg-{i}: every file live once");
        let seq = table.metadata().current_snapshot().unwrap().sequence_number();
        for (path, &(status, snapshot, data_seq, file_seq)) in &live {
            let was = *first_seen.entry(path.clone()).or_insert_with(|| {
                assert_eq!(status, ManifestStatus::Added, "a new file is added");
                (out.snapshot_id(), seq, seq)
            });
            assert_eq!((snapshot, data_seq, file_seq), was, "after seg-{i}: {path} keeps its numbers");
        }
        // Nothing written for the commit is left unreferenced (the new manifest that a merge
        // took in is deleted once the commit landed).
        assert_eq!(unreferenced_metadata_files(&table).await, Vec::<String>::new(), "after seg-{i}");
    }
    // Listed manifests: 1, 2, 3, then the 4th append merges the four into one, and so on.
    assert_eq!(counts, vec![1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
    let table = cat.calving.load_table("merging").await.unwrap();
    let mut expected = keys(0, 0..15);
    expected.extend(keys(1, 0..15));
    expected.sort();
    assert_eq!(scanned_keys(&table).await, expected);

    // Independent readers see every row once through the merged manifests.
    require_python_modules(&["pyiceberg", "pyarrow", "sqlalchemy", "duckdb", "duckdb_extensions"]);
    all.sort_by_key(|r| (r.partition, r.offset));
    let got = read_table(&sql_args(&cat, "merging"));
    let want = expected_rows(&all);
    assert_eq!(got["pyiceberg"]["rows"], pyiceberg_view(&want), "pyiceberg rows");
    assert_eq!(got["duckdb"]["rows"], want, "duckdb rows");

    // A writer that saw another writer's commit lately (the property change) is contended:
    // below ten times the count it does not merge.
    append_three_rows(&cat.calving, 10..13, 1).await;
    let (_, listed) = entries(&cat.calving.load_table("merging").await.unwrap()).await;
    assert_eq!(listed, 4, "1 + 3 appends, not merged at 4 (a sole writer would have: 1)");

    // Merging off: every append adds one manifest to the list.
    set_property(&cat, "merging", MERGE_ENABLED_PROP, "false").await;
    append_three_rows(&cat.calving, 13..17, 0).await;
    let (live, listed) = entries(&cat.calving.load_table("merging").await.unwrap()).await;
    assert_eq!((live.len(), listed), (17, 8));
}
