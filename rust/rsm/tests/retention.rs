//! `deleteLogSegmentData` in both retention modes, with re-uploads in the picture: what Kafka can
//! still read, and what independent Iceberg readers (pyiceberg, DuckDB) see in the table.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use calving_rsm::{KafkaUuid, RemoteStorage, SegmentMetadata};
use calving_test_utils::{fixture_files, read_table};
use serde_json::Value;

mod common;
use common::{count_rows, fetch_all, segment};

fn open(dir: &Path, mode: &str) -> RemoteStorage {
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.display())),
        ("retention.mode".to_string(), mode.to_string()),
    ]);
    RemoteStorage::open(&props).unwrap()
}

/// Offsets of the table's rows as pyiceberg and DuckDB read them; both must agree and hold no
/// offset twice.
fn offsets_read_by_engines(dir: &Path, topic: &str) -> Vec<i64> {
    let warehouse = dir.join("warehouse");
    let mut seen: Option<Vec<i64>> = None;
    for engine in ["pyiceberg", "duckdb"] {
        let rows = read_table(engine, &warehouse, &format!("kafka.{topic}"));
        let offsets: Vec<i64> = rows.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
        let distinct: BTreeSet<i64> = offsets.iter().copied().collect();
        assert_eq!(distinct.len(), offsets.len(), "{engine} reads an offset twice");
        if let Some(s) = &seen {
            assert_eq!(s, &offsets, "pyiceberg and DuckDB disagree");
        }
        seen = Some(offsets);
    }
    seen.unwrap()
}

fn range(md: &SegmentMetadata) -> Vec<i64> {
    (md.start_offset..=md.end_offset).collect()
}

/// Kafka deletes a copy it believes failed (its commit had landed), then uploads the same offsets
/// again under a new id. In `keep` mode the new segment serves the rows the first copy committed.
#[test]
fn keep_mode_reupload_after_the_dangling_copy_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "keep");
    let log = &fixture_files("zstd", "log")[0];
    let (first, files) = segment("zstd", log);
    let a = rsm.copy_log_segment(&first, &files).unwrap();
    let served = fetch_all(&rsm, &first, 0, None);
    rsm.delete_log_segment(&first).unwrap();
    let second = SegmentMetadata { segment_id: KafkaUuid::random(), ..first.clone() };
    let b = rsm.copy_log_segment(&second, &files).unwrap();
    assert_eq!(b.reused_rows, a.stats.records, "the re-upload points at the committed rows");
    assert!(b.data_files.is_empty());
    assert_eq!(fetch_all(&rsm, &second, 0, None), served);
    assert_eq!(count_rows(&rsm, &first.topic), a.stats.records);
}

/// `delete` mode: rows leave the table once no live segment serves them, and only then; Kafka
/// reads of the remaining segments never break; offsets deleted and uploaded again come back once.
#[test]
fn delete_mode_removes_rows_once_no_segment_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "delete");
    let logs = fixture_files("lz4", "log");
    let (a_md, a_files) = segment("lz4", &logs[0]);
    let (c_md, c_files) = segment("lz4", &logs[1]);
    let topic = a_md.topic.clone();
    let a = rsm.copy_log_segment(&a_md, &a_files).unwrap();
    // A re-upload of A's offsets (B serves A's rows) and the next segment C.
    let b_md = SegmentMetadata { segment_id: KafkaUuid::random(), ..a_md.clone() };
    let b = rsm.copy_log_segment(&b_md, &a_files).unwrap();
    assert_eq!(b.reused_rows, a.stats.records);
    rsm.copy_log_segment(&c_md, &c_files).unwrap();
    let b_served = fetch_all(&rsm, &b_md, 0, None);
    let both: Vec<i64> = range(&a_md).into_iter().chain(range(&c_md)).collect();
    assert_eq!(offsets_read_by_engines(dir.path(), &topic), both);

    // A goes: B still serves its rows, so they stay.
    rsm.delete_log_segment(&a_md).unwrap();
    assert!(rsm.fetch_log_segment(&a_md, 0, None).unwrap_err().is_not_found());
    assert_eq!(fetch_all(&rsm, &b_md, 0, None), b_served);
    assert_eq!(offsets_read_by_engines(dir.path(), &topic), both);

    // B goes: nothing serves A's commit any more; its rows leave the table. Idempotent.
    rsm.delete_log_segment(&b_md).unwrap();
    rsm.delete_log_segment(&b_md).unwrap();
    assert_eq!(offsets_read_by_engines(dir.path(), &topic), range(&c_md));
    assert_eq!(count_rows(&rsm, &topic), range(&c_md).len() as u64);
    let c_served = fetch_all(&rsm, &c_md, 0, None);
    assert!(!c_served.is_empty());

    // The removal is a `delete` snapshot whose ledger no longer holds A's offsets; the files stay
    // in storage (older snapshots still reference them).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = rt.block_on(rsm.catalog().load_table(&topic)).unwrap();
    let current = table.metadata().current_snapshot().unwrap();
    assert_eq!(current.summary().operation, iceberg::spec::Operation::Delete);
    let (ledger, source) = rt.block_on(calving_table::ledger::load(&table)).unwrap();
    assert_eq!(source, calving_table::LedgerSource::Snapshot(current.snapshot_id()));
    let topic_id = a_md.topic_id.to_string();
    assert_eq!(ledger.overlapping(&topic_id, a_md.partition, a_md.start_offset, a_md.end_offset), vec![]);
    assert_eq!(ledger.ranges(&topic_id, c_md.partition), &[(c_md.start_offset, c_md.end_offset)]);
    for f in &a.data_files {
        assert!(rt.block_on(rsm.storage().exists(f)).unwrap(), "{f} must stay in storage");
    }

    // The orphan sweep keeps every file an older snapshot still refers to; a stray file (a copy
    // that died before cleaning up) goes once it is older than the grace period.
    let report = rsm.sweep_orphans(&topic, Duration::ZERO, false).unwrap();
    assert!(report.orphans.is_empty() && report.scanned > 0, "{report:?}");
    let location = table.metadata().location().trim_end_matches('/').to_string();
    let stray = format!("{location}/data/stray-00000.parquet");
    rt.block_on(rsm.storage().put(&stray, bytes::Bytes::from_static(b"PAR1 died mid-copy"))).unwrap();
    let young = rsm.sweep_orphans(&topic, Duration::from_secs(3600), false).unwrap();
    assert!(young.orphans.is_empty() && young.too_young == 1, "{young:?}");
    let dry = rsm.sweep_orphans(&topic, Duration::ZERO, true).unwrap();
    assert_eq!(dry.orphans, vec![stray.clone()]);
    assert!(rt.block_on(rsm.storage().exists(&stray)).unwrap(), "a dry run deletes nothing");
    let swept = rsm.sweep_orphans(&topic, Duration::ZERO, false).unwrap();
    assert_eq!(swept.orphans, vec![stray.clone()]);
    assert!(!rt.block_on(rsm.storage().exists(&stray)).unwrap());
    assert_eq!(fetch_all(&rsm, &c_md, 0, None), c_served);

    // A's offsets uploaded again (say, by a replica that still had them): written afresh, once.
    let d_md = SegmentMetadata { segment_id: KafkaUuid::random(), ..a_md.clone() };
    let d = rsm.copy_log_segment(&d_md, &a_files).unwrap();
    assert_eq!(d.reused_rows, 0, "removed rows are not reused");
    assert_eq!(fetch_all(&rsm, &d_md, 0, None), b_served);
    assert_eq!(offsets_read_by_engines(dir.path(), &topic), both);
    assert_eq!(fetch_all(&rsm, &c_md, 0, None), c_served);
}

/// Deleting every segment in `delete` mode empties the table; in `keep` mode it keeps every row.
#[test]
fn per_topic_modes() {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display())),
        ("topic.fx-none.retention.mode".to_string(), "delete".to_string()),
    ]);
    let rsm = RemoteStorage::open(&props).unwrap();
    for fixture in ["none", "gzip"] {
        let mut total = 0;
        let mut segments = Vec::new();
        for log in fixture_files(fixture, "log") {
            let (md, files) = segment(fixture, &log);
            total += rsm.copy_log_segment(&md, &files).unwrap().stats.records;
            segments.push(md);
        }
        for md in &segments {
            rsm.delete_log_segment(md).unwrap();
        }
        let rows: Vec<Value> = read_table("pyiceberg", &dir.path().join("warehouse"), &format!("kafka.fx-{fixture}"));
        let expected = if fixture == "none" { 0 } else { total as usize };
        assert_eq!(rows.len(), expected, "fx-{fixture}");
        assert!(rsm.list_segments(&format!("fx-{fixture}")).unwrap().is_empty());
    }
}
