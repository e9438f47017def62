//! The commit path through `RemoteStorage`, with the real catalogs several brokers share:
//!
//! - a copy whose commit the REST catalog applied but whose answer was lost on the way back (a
//!   loopback proxy forwards the commit and drops the connection before the answer): the copy
//!   reconciles (its snapshot is in the table), the table holds every row once, and pyiceberg
//!   reads it through the same REST catalog and S3 bucket;
//! - concurrent copies of many partitions of one topic, from threads of one broker (serialized
//!   per table) and from several brokers at once (two `RemoteStorage`s: conflicts rebased by the
//!   commit driver), on the embedded SQL catalog and on the REST catalog: every copy lands, no
//!   (partition, offset) twice, every partition in the ledger.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use calving_rsm::{KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_test_utils::{fixture_files, read_table};
use common::{check_served, count_rows, segment, CutProxy, RestFixture, S3Server};

const BUCKET: &str = "calving";
const WAREHOUSE: &str = "s3://calving/wh";

fn rest_props(s3: &S3Server, catalog_uri: &str) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = S3Server::s3_props(&s3.endpoint).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    p.insert("warehouse".into(), WAREHOUSE.into());
    p.insert("catalog.type".into(), "rest".into());
    p.insert("catalog.uri".into(), catalog_uri.into());
    p
}

/// (partition, offset) of every row, read by pyiceberg through the REST catalog and S3.
fn rows_via_rest(rest_uri: &str, s3: &S3Server, table: &str) -> Vec<(i64, i64)> {
    let props: HashMap<String, String> = S3Server::s3_props(&s3.endpoint).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let script = format!(
        r#"
import json
from pyiceberg.catalog.rest import RestCatalog
import pyarrow.compute as pc
c = RestCatalog("rest", uri="{rest_uri}", **{{"s3.endpoint": "{endpoint}", "s3.access-key-id": "{key}", "s3.secret-access-key": "{secret}", "s3.region": "us-east-1", "s3.force-virtual-addressing": "false"}})
rows = c.load_table("{table}").scan().to_arrow()
print(json.dumps(list(zip(pc.struct_field(rows["kafka"], "partition").to_pylist(), pc.struct_field(rows["kafka"], "offset").to_pylist()))))
"#,
        endpoint = s3.endpoint,
        key = props["s3.access-key-id"],
        secret = props["s3.secret-access-key"],
    );
    let out = Command::new("python3").arg("-c").arg(script).output().expect("python3");
    assert!(out.status.success(), "pyiceberg could not read {table}:\n{}", String::from_utf8_lossy(&out.stderr));
    let mut rows: Vec<(i64, i64)> = serde_json::from_slice(&out.stdout).unwrap();
    rows.sort();
    rows
}

fn no_duplicates(rows: &[(i64, i64)]) {
    let distinct: BTreeSet<&(i64, i64)> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "a (partition, offset) twice");
}

/// The lz4 fixture's segments as partitions `0..n` of one topic.
fn partitions(n: i32) -> Vec<(SegmentMetadata, LogSegmentFiles)> {
    let mut out = Vec::new();
    for partition in 0..n {
        for log in fixture_files("lz4", "log") {
            let (md, files) = segment("lz4", &log);
            out.push((SegmentMetadata { partition, ..md }, files));
        }
    }
    out
}

#[test]
fn commit_applied_but_answer_lost_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let rest = RestFixture::start(dir.path(), &s3, WAREHOUSE);
    let proxy = CutProxy::start(rest.port, |line| line.starts_with("POST ") && line.contains("/tables/"));
    let rsm = RemoteStorage::open(&rest_props(&s3, &proxy.endpoint)).unwrap();
    let segs = partitions(1);
    let (a, a_files) = &segs[0];
    let (b, b_files) = &segs[1];
    let first = rsm.copy_log_segment(a, a_files).unwrap();

    proxy.set_losing_answers(true);
    let second = rsm.copy_log_segment(b, b_files).unwrap_or_else(|e| panic!("{e}\nREST fixture log:\n{}", rest.log_text()));
    proxy.set_losing_answers(false);
    assert_eq!(proxy.cut_count(), 1, "the commit was sent once, applied, and its answer lost");
    assert!(second.snapshot_id.is_some() && !second.data_files.is_empty(), "{second:?}");
    let total = first.stats.records + second.stats.records;
    assert_eq!(count_rows(&rsm, &b.topic), total);
    check_served(&rsm, b, b_files);

    // Kafka, had it seen an error, would copy again under a new id: nothing is added.
    let again = SegmentMetadata { segment_id: KafkaUuid::random(), ..b.clone() };
    let o = rsm.copy_log_segment(&again, b_files).unwrap();
    assert!(o.data_files.is_empty() && o.reused_rows == second.stats.records, "{o:?}");
    let rows = rows_via_rest(&rest.uri, &s3, &format!("kafka.{}", b.topic));
    assert_eq!(rows.len() as u64, total);
    no_duplicates(&rows);
}

fn copy_concurrently(brokers: &[&RemoteStorage], segs: &[(SegmentMetadata, LogSegmentFiles)]) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = segs
            .iter()
            .enumerate()
            .map(|(i, (md, files))| {
                let rsm = brokers[i % brokers.len()];
                scope.spawn(move || rsm.copy_log_segment(md, files).map_err(|e| format!("{md}: {e}")))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
}

fn ledger_covers_all(rsm: &RemoteStorage, segs: &[(SegmentMetadata, LogSegmentFiles)]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = rt.block_on(rsm.catalog().load_table(&segs[0].0.topic)).unwrap();
    let (ledger, _) = rt.block_on(calving_table::ledger::load(&table)).unwrap();
    for (md, _) in segs {
        let topic_id = md.topic_id.to_string();
        assert!(ledger.covers(&topic_id, md.partition, md.start_offset) && ledger.covers(&topic_id, md.partition, md.end_offset), "{md}: {}", ledger.encode());
    }
}

#[test]
fn concurrent_copies_of_many_partitions_on_the_sql_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display()))]);
    let one = RemoteStorage::open(&props).unwrap();
    let two = RemoteStorage::open(&props).unwrap();
    let segs = partitions(8);
    let (first, second) = segs.split_at(8);
    // One broker's copier threads, then two brokers at once.
    copy_concurrently(&[&one], first);
    copy_concurrently(&[&one, &two], second);
    let rows: Vec<(i64, i64)> = read_table_rows(dir.path(), &segs[0].0.topic);
    no_duplicates(&rows);
    let expected: u64 = segs.iter().map(|(md, files)| served_records(&one, md, files)).sum();
    assert_eq!(rows.len() as u64, expected);
    ledger_covers_all(&one, &segs);
}

#[test]
fn concurrent_copies_of_many_partitions_on_the_rest_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let rest = RestFixture::start(dir.path(), &s3, WAREHOUSE);
    let one = RemoteStorage::open(&rest_props(&s3, &rest.uri)).unwrap();
    let two = RemoteStorage::open(&rest_props(&s3, &rest.uri)).unwrap();
    let segs = partitions(6);
    // The table exists before the race (creating it is not what is raced here).
    one.copy_log_segment(&segs[0].0, &segs[0].1).unwrap();
    copy_concurrently(&[&one, &two], &segs[1..]);
    let rows = rows_via_rest(&rest.uri, &s3, &format!("kafka.{}", segs[0].0.topic));
    no_duplicates(&rows);
    assert_eq!(rows.len() as u64, count_rows(&one, &segs[0].0.topic));
    let expected: u64 = segs.iter().map(|(md, files)| served_records(&one, md, files)).sum();
    assert_eq!(rows.len() as u64, expected);
    ledger_covers_all(&two, &segs);
}

/// The data records of a segment as the table serves them (checked against Kafka's parser).
fn served_records(rsm: &RemoteStorage, md: &SegmentMetadata, files: &LogSegmentFiles) -> u64 {
    check_served(rsm, md, files);
    let bytes = common::fetch_all(rsm, md, 0, None);
    let mut n = 0u64;
    for e in calving_segment::LogEntries::new(&bytes) {
        if let calving_segment::LogEntry::Batch(b) = e.unwrap() {
            if !b.header.attributes.is_control() {
                n += b.header.records_count as u64;
            }
        }
    }
    n
}

fn read_table_rows(dir: &Path, topic: &str) -> Vec<(i64, i64)> {
    let mut seen: Option<Vec<(i64, i64)>> = None;
    for engine in ["pyiceberg", "duckdb"] {
        let rows = read_table(engine, &dir.join("warehouse"), &format!("kafka.{topic}"));
        let mut keys: Vec<(i64, i64)> = rows.iter().map(|r| (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap())).collect();
        keys.sort();
        if let Some(s) = &seen {
            assert_eq!(s, &keys, "pyiceberg and DuckDB disagree");
        }
        seen = Some(keys);
    }
    seen.unwrap()
}

/// Tables Calving creates keep 20 previous metadata files and delete older ones on commit
/// (`write.metadata.delete-after-commit.enabled`), so a topic's metadata does not grow one file
/// per copy; the table stays readable.
#[test]
fn superseded_metadata_files_are_deleted_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display()))]);
    let rsm = RemoteStorage::open(&props).unwrap();
    let segs = partitions(14);
    for (md, files) in &segs {
        rsm.copy_log_segment(md, files).unwrap();
    }
    let metadata_dir = dir.path().join("warehouse/kafka").join(&segs[0].0.topic).join("metadata");
    let json = std::fs::read_dir(&metadata_dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".metadata.json")).count();
    assert!(segs.len() + 1 > 21, "more commits than kept files");
    assert!(json <= 21, "{json} metadata files for {} commits", segs.len() + 1);
    let rows = read_table_rows(dir.path(), &segs[0].0.topic);
    no_duplicates(&rows);
    assert_eq!(rows.len() as u64, count_rows(&rsm, &segs[0].0.topic));
}
