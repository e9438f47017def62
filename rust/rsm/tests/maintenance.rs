//! The table outlives its history (DESIGN.md invariants 4 and 9): another engine maintains the
//! table — rewrites every data file (pyiceberg's overwrite with the same rows, sorted by
//! (partition, offset), files holding two Kafka partitions and many segments), expires every
//! snapshot but its own (so no snapshot with Calving's ledger is left), and deletes every file the
//! metadata no longer reaches, as `remove_orphan_files` does — and then:
//!
//! - Kafka's reads serve exactly the bytes they served before (fetched from a broker that never
//!   saw the old files, and checked against Kafka's own parser);
//! - re-uploads and retries of already-tiered offsets add no row (pyiceberg and DuckDB);
//! - the `delete` retention mode still removes rows (the rewritten files are rewritten again
//!   without them), and a re-upload of removed offsets writes them once;
//! - rows the other engine deleted make the fetch fail with a clear, non-retriable error naming
//!   the offsets — never other bytes, never "not found".
//!
//! The maintenance is `tests/oracle/foreign_maintenance.py` (pyiceberg, not Calving's code).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use calving_rsm::{IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_test_utils::{fixture_files, read_table, repo_root};
use common::{check_served, fetch_all, segment};

fn open(dir: &Path, mode: &str) -> RemoteStorage {
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.display())),
        ("retention.mode".to_string(), mode.to_string()),
    ]);
    RemoteStorage::open(&props).unwrap()
}

/// Runs the other engine's maintenance steps on the topic's table.
fn maintain(dir: &Path, topic: &str, steps: &[&str]) {
    let warehouse = dir.join("warehouse");
    let out = Command::new("python3")
        .arg(repo_root().join("tests/oracle/foreign_maintenance.py"))
        .arg(warehouse.join("calving-catalog.db"))
        .arg(&warehouse)
        .arg(format!("kafka.{topic}"))
        .args(steps)
        .output()
        .expect("python3");
    assert!(out.status.success(), "foreign maintenance failed:\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

/// (partition, offset) of every row as pyiceberg and DuckDB read them; both agree, none twice.
fn rows_read_by_engines(dir: &Path, topic: &str) -> Vec<(i64, i64)> {
    let mut seen: Option<Vec<(i64, i64)>> = None;
    for engine in ["pyiceberg", "duckdb"] {
        let rows = read_table(engine, &dir.join("warehouse"), &format!("kafka.{topic}"));
        let keys: Vec<(i64, i64)> = rows.iter().map(|r| (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap())).collect();
        let distinct: BTreeSet<(i64, i64)> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "{engine} reads a (partition, offset) twice");
        if let Some(s) = &seen {
            assert_eq!(s, &keys, "pyiceberg and DuckDB disagree");
        }
        seen = Some(keys);
    }
    seen.unwrap()
}

/// Every lz4 fixture segment, as partitions 0 and 1 of one topic.
fn segments() -> Vec<(SegmentMetadata, LogSegmentFiles)> {
    let mut out = Vec::new();
    for partition in [0, 1] {
        for log in fixture_files("lz4", "log") {
            let (md, files) = segment("lz4", &log);
            out.push((SegmentMetadata { partition, ..md }, files));
        }
    }
    out
}

/// What Kafka reads of a segment: the served bytes and every index.
fn served(rsm: &RemoteStorage, md: &SegmentMetadata) -> (Vec<u8>, Vec<Vec<u8>>) {
    let indexes = [IndexType::Offset, IndexType::Timestamp, IndexType::ProducerSnapshot, IndexType::LeaderEpoch]
        .into_iter()
        .map(|i| rsm.fetch_index(md, i).unwrap())
        .collect();
    (fetch_all(rsm, md, 0, None), indexes)
}

/// What [`copy_all`] copied and what Kafka and the engines read of it.
struct Copied {
    segs: Vec<(SegmentMetadata, LogSegmentFiles)>,
    topic: String,
    /// Records of each segment, as the copies counted them.
    records: Vec<u64>,
    /// What Kafka reads of each segment.
    before: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// (partition, offset) of every row, read by pyiceberg and DuckDB.
    rows: Vec<(i64, i64)>,
}

/// Copies [`segments`] and records what is read of them before any maintenance (what the copies
/// wrote is proven by copy_fetch.rs).
fn copy_all(rsm: &RemoteStorage, dir: &Path) -> Copied {
    let segs = segments();
    let topic = segs[0].0.topic.clone();
    let records: Vec<u64> = segs.iter().map(|(md, files)| rsm.copy_log_segment(md, files).unwrap().stats.records).collect();
    let before = segs.iter().map(|(md, _)| served(rsm, md)).collect();
    let rows = rows_read_by_engines(dir, &topic);
    assert_eq!(rows.len() as u64, records.iter().sum::<u64>());
    Copied { segs, topic, records, before, rows }
}

#[test]
fn kafka_reads_and_exactly_once_survive_another_engines_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "keep");
    let Copied { segs, topic, records, before, rows } = copy_all(&rsm, dir.path());

    maintain(dir.path(), &topic, &["rewrite", "expire", "orphans"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = rt.block_on(rsm.catalog().load_table(&topic)).unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "one (foreign) snapshot left");
    assert_eq!(rsm.list_segments(&topic).unwrap().len(), segs.len(), "sidecars are out of the orphan removal's reach");

    // A broker that never saw the old files (nothing cached) serves the same bytes and indexes.
    let fresh = open(dir.path(), "keep");
    for ((md, files), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&fresh, md), want, "{md}");
        check_served(&fresh, md, files);
    }
    // And so does the broker that had cached the old files' footers and sidecars.
    for ((md, _), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&rsm, md), want, "{md}");
    }

    // Exactly once without the history: a retry, and a re-upload under a new id, add nothing.
    let (md0, files0) = &segs[0];
    let retry = fresh.copy_log_segment(md0, files0).unwrap();
    assert!(retry.data_files.is_empty(), "{retry:?}");
    let reupload = SegmentMetadata { segment_id: KafkaUuid::random(), ..md0.clone() };
    let again = fresh.copy_log_segment(&reupload, files0).unwrap();
    assert!(again.data_files.is_empty() && again.snapshot_id.is_none(), "{again:?}");
    assert_eq!(again.reused_rows, records[0]);
    assert_eq!(served(&fresh, &reupload), before[0]);
    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows, "no row duplicated");

    // The next segment after the maintenance lands once: the ledger was rebuilt from the rows.
    let (last_md, last_files) = segs.last().unwrap();
    let next = SegmentMetadata { segment_id: KafkaUuid::random(), partition: 2, ..last_md.clone() };
    let o = fresh.copy_log_segment(&next, last_files).unwrap();
    assert!(!o.data_files.is_empty());
    let mut with_next = rows.clone();
    with_next.extend(rows.iter().filter(|(p, _)| *p == 1).filter(|(_, off)| *off >= next.start_offset && *off <= next.end_offset).map(|(_, off)| (2, *off)));
    with_next.sort();
    assert_eq!(rows_read_by_engines(dir.path(), &topic), with_next);
    let table = rt.block_on(fresh.catalog().load_table(&topic)).unwrap();
    let (ledger, source) = rt.block_on(calving_table::ledger::load(&table)).unwrap();
    assert_eq!(source, calving_table::LedgerSource::Snapshot(table.metadata().current_snapshot_id().unwrap()));
    let topic_id = md0.topic_id.to_string();
    let first = segs.iter().filter(|(m, _)| m.partition == 0).map(|(m, _)| m.start_offset).min().unwrap();
    let last = segs.iter().filter(|(m, _)| m.partition == 0).map(|(m, _)| m.end_offset).max().unwrap();
    assert!(ledger.covers(&topic_id, 0, first) && ledger.covers(&topic_id, 0, last), "{}", ledger.encode());
}

#[test]
fn delete_mode_removes_rows_after_another_engines_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "delete");
    let Copied { segs, topic, before, rows, .. } = copy_all(&rsm, dir.path());
    maintain(dir.path(), &topic, &["rewrite", "expire", "orphans"]);

    // Kafka deletes partition 0's first segment: its rows leave the rewritten files.
    let (md0, files0) = &segs[0];
    rsm.delete_log_segment(md0).unwrap();
    rsm.delete_log_segment(md0).unwrap();
    let gone: Vec<(i64, i64)> = rows.iter().copied().filter(|&(p, o)| p == 0 && o >= md0.start_offset && o <= md0.end_offset).collect();
    assert!(!gone.is_empty());
    let left: Vec<(i64, i64)> = rows.iter().copied().filter(|r| !gone.contains(r)).collect();
    assert_eq!(rows_read_by_engines(dir.path(), &topic), left);
    for ((md, _), want) in segs.iter().zip(&before).skip(1) {
        assert_eq!(&served(&rsm, md), want, "{md}");
    }
    assert!(rsm.fetch_log_segment(md0, 0, None).unwrap_err().is_not_found());

    // The offsets uploaded again (a replica that still had them) are written afresh, once.
    let again = SegmentMetadata { segment_id: KafkaUuid::random(), ..md0.clone() };
    let o = rsm.copy_log_segment(&again, files0).unwrap();
    assert_eq!(o.reused_rows, 0, "removed rows are not reused");
    assert_eq!(served(&rsm, &again), before[0]);
    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows);

    // Every segment deleted: the table is empty.
    for (md, _) in segs.iter().skip(1) {
        rsm.delete_log_segment(md).unwrap();
    }
    rsm.delete_log_segment(&again).unwrap();
    assert_eq!(rows_read_by_engines(dir.path(), &topic), vec![]);
}

#[test]
fn rows_deleted_by_another_engine_fail_the_fetch_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "keep");
    let segs = segments();
    let topic = segs[0].0.topic.clone();
    for (md, files) in &segs {
        rsm.copy_log_segment(md, files).unwrap();
    }
    let (md0, _) = &segs[0];
    let keep = served(&rsm, &segs[1].0);
    maintain(dir.path(), &topic, &[&format!("drop:{}-{}", md0.start_offset, md0.end_offset), "expire", "orphans"]);
    let fresh = open(dir.path(), "keep");
    let err = fresh.fetch_log_segment(md0, 0, None).and_then(|mut s| {
        let mut out = Vec::new();
        while let Some(c) = s.next_chunk()? {
            out.extend_from_slice(c);
        }
        Ok(out)
    });
    let err = err.expect_err("the rows are gone");
    let msg = err.to_string();
    assert!(!err.is_not_found() && !err.is_retriable(), "{msg}");
    assert!(msg.contains("no longer in the table") && msg.contains(&format!("{}-0", topic)), "{msg}");
    assert!(msg.contains(&md0.start_offset.to_string()), "{msg}");
    // The other segments still serve the same bytes.
    assert_eq!(served(&fresh, &segs[1].0), keep);
}

/// Calving's own maintenance (`calving maintain`, the background task): a dry run changes
/// nothing; then small files are compacted (rows sorted by partition and offset), manifests
/// merged, every older snapshot expired and the files only they referenced deleted from storage;
/// Kafka reads serve the same bytes from the compacted files, exactly once still holds, and the
/// ledger travelled with every maintenance snapshot.
#[test]
fn calvings_own_maintenance_keeps_kafka_reads_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "keep");
    let segs = segments();
    let topic = segs[0].0.topic.clone();
    let mut written = Vec::new();
    for (md, files) in &segs {
        written.extend(rsm.copy_log_segment(md, files).unwrap().data_files);
    }
    let before: Vec<_> = segs.iter().map(|(md, _)| served(&rsm, md)).collect();
    let rows = rows_read_by_engines(dir.path(), &topic);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let load = || rt.block_on(rsm.catalog().load_table(&topic)).unwrap();
    let live = |t: &iceberg::table::Table| rt.block_on(calving_table::live_files(t)).unwrap().len();
    let table = load();
    let (files_before, snapshots_before) = (live(&table), table.metadata().snapshots().count());
    assert!(files_before >= 4, "{files_before}");

    let options = calving_rsm::MaintenanceOptions {
        small_file_bytes: 1 << 30,
        min_input_files: 2,
        min_manifests: 2,
        max_snapshot_age: Some(std::time::Duration::ZERO),
        min_snapshots_to_keep: Some(1),
        dry_run: true,
        ..Default::default()
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
    let dry = rsm.maintain(&topic, &options, &progress).unwrap();
    assert_eq!(dry.compact.input_files, files_before, "{dry:?}");
    assert!(dry.compact.snapshot_id.is_none() && dry.expire.deleted_files.is_empty());
    let table = load();
    assert_eq!((live(&table), table.metadata().snapshots().count()), (files_before, snapshots_before), "a dry run changes nothing");
    assert!(!lines.lock().unwrap().is_empty(), "progress is reported");

    let report = rsm.maintain(&topic, &calving_rsm::MaintenanceOptions { dry_run: false, ..options.clone() }, &progress).unwrap();
    assert_eq!(report.compact.input_files, files_before, "{report:?}");
    assert!(report.compact.output_files < files_before, "{report:?}");
    assert_eq!(report.compact.rows, rows.len() as u64);
    assert!(report.manifests_merged >= 2, "{report:?}");
    assert_eq!(report.expire.retained, 1, "{report:?}");
    let table = load();
    assert_eq!(live(&table), report.compact.output_files);
    assert_eq!(table.metadata().snapshots().count(), 1);
    for f in &written {
        assert!(!rt.block_on(rsm.storage().exists(f)).unwrap(), "{f}: compacted away and expired, so deleted");
        assert!(report.expire.deleted_files.iter().any(|d| calving_table::normalize(d) == calving_table::normalize(f)), "{f}");
    }
    let (ledger, source) = rt.block_on(calving_table::ledger::load(&table)).unwrap();
    assert!(matches!(source, calving_table::LedgerSource::Snapshot(_)), "the maintenance snapshots carry the ledger: {source:?}");
    for (md, _) in &segs {
        assert!(ledger.covers(&md.topic_id.to_string(), md.partition, md.start_offset), "{md}: {}", ledger.encode());
    }

    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows);
    for ((md, _), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&rsm, md), want, "{md} (the broker that had cached the old files)");
    }
    let fresh = open(dir.path(), "keep");
    for ((md, files), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&fresh, md), want, "{md}");
        check_served(&fresh, md, files);
    }
    let again = SegmentMetadata { segment_id: KafkaUuid::random(), ..segs[1].0.clone() };
    let o = fresh.copy_log_segment(&again, &segs[1].1).unwrap();
    assert!(o.data_files.is_empty() && o.reused_rows > 0, "{o:?}");
    assert_eq!(served(&fresh, &again), before[1]);
    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows);
    // Nothing left to do.
    let idle = rsm.maintain(&topic, &calving_rsm::MaintenanceOptions { dry_run: false, ..options }, &progress).unwrap();
    assert_eq!((idle.compact.input_files, idle.manifests_merged), (0, 0), "{idle:?}");
}

/// The opt-in background maintenance (`maintenance.interval.ms`): with it on, the broker's own
/// copies get compacted and their manifests merged without anyone asking, and Kafka reads the
/// same bytes; closing the plugin stops it.
#[test]
fn background_maintenance_compacts_what_the_broker_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display())),
        ("maintenance.interval.ms".to_string(), "1000".to_string()),
    ]);
    let rsm = RemoteStorage::open(&props).unwrap();
    let mut segs = Vec::new();
    for partition in 0..9 {
        for log in fixture_files("lz4", "log") {
            let (md, files) = segment("lz4", &log);
            segs.push((SegmentMetadata { partition, ..md }, files));
        }
    }
    let topic = segs[0].0.topic.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (md, files) in &segs {
        rsm.copy_log_segment(md, files).unwrap();
    }
    let before: Vec<_> = segs.iter().map(|(md, _)| served(&rsm, md)).collect();
    let rows = rows_read_by_engines(dir.path(), &topic);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let compacted = loop {
        let table = rt.block_on(rsm.catalog().load_table(&topic)).unwrap();
        let maintained = table.metadata().snapshots().any(|s| s.summary().additional_properties.get("calving.maintenance").is_some_and(|m| m == "compact"));
        if maintained {
            break rt.block_on(calving_table::live_files(&table)).unwrap().len();
        }
        assert!(std::time::Instant::now() < deadline, "no background compaction within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(compacted < segs.len(), "{compacted} files left of {}", segs.len());
    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows);
    drop(rsm);
    let fresh = open(dir.path(), "keep");
    for ((md, _), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&fresh, md), want, "{md}");
    }
}


/// Expiry deletes the files compaction replaced even when the kept snapshot is the compaction
/// itself (whose manifest lists them as deleted, no manifest merge after it); Kafka then reads
/// the compacted files.
#[test]
fn compacted_files_are_deleted_by_the_expiry_that_follows() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path(), "keep");
    let Copied { segs, topic, before, rows, .. } = copy_all(&rsm, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = rt.block_on(rsm.catalog().load_table(&topic)).unwrap();
    let old: Vec<String> = rt.block_on(calving_table::live_files(&table)).unwrap().into_iter().map(|f| f.data_file.file_path().to_string()).collect();
    let options = calving_rsm::MaintenanceOptions {
        small_file_bytes: 1 << 30,
        min_input_files: 2,
        min_manifests: 0,
        max_snapshot_age: Some(std::time::Duration::ZERO),
        min_snapshots_to_keep: Some(1),
        ..Default::default()
    };
    let report = rsm.maintain(&topic, &options, &|_| {}).unwrap();
    assert_eq!((report.compact.input_files, report.manifests_merged), (old.len(), 0), "{report:?}");
    for f in &old {
        assert!(!rt.block_on(rsm.storage().exists(f)).unwrap(), "{f} was replaced and its snapshots expired: deleted");
    }
    assert_eq!(rows_read_by_engines(dir.path(), &topic), rows);
    for ((md, _), want) in segs.iter().zip(&before) {
        assert_eq!(&served(&rsm, md), want, "{md}");
    }
}
