//! The RemoteStorageManager operations with the real remote parts DESIGN.md asks for instead of
//! the embedded default (`copy_fetch.rs`: local warehouse + SQLite catalog):
//!
//! - object store: moto's S3 server on loopback, bucket `calving`, reached exactly as AWS S3 is
//!   (explicit endpoint, path-style, static credentials, SigV4), by calving-storage;
//! - catalog: Apache Iceberg's REST catalog fixture 1.10.1 (rust/table/tests/rest-fixture), whose
//!   server-side FileIO is Iceberg's own S3FileIO on the **same bucket**: all of it is in S3 —
//!   table metadata (written by the Java server and by iceberg-rust), manifests, Calving's Parquet
//!   data files and sidecars, under `s3://calving/wh/kafka/<topic>/`. Only the fixture's JDBC
//!   catalog database (SQLite) is a local file.
//!
//! And what happens when those parts fail: an object store or a catalog nobody listens on, and
//! one that stops answering in the middle of a copy (a loopback proxy cutting the sidecar upload,
//! the multipart parts of a large data file, or the table commit) or of a fetch (the data file
//! reads): the operation fails retriable, naming the segment and the location, within seconds;
//! a failed copy leaves no data file, no sidecar and no incomplete upload behind — except after
//! an unknown commit outcome, where nothing may be deleted (the orphan sweep removes it later) —
//! and its retry succeeds once.
//!
//! | test | object store | catalog |
//! |---|---|---|
//! | `rest_catalog_and_s3_warehouse` | moto | REST fixture (S3FileIO, same bucket) |
//! | `unreachable_object_store_is_retriable` | closed port | SQLite file |
//! | `object_store_failing_mid_copy_leaves_nothing` | moto behind a proxy (sidecar PUT, then data file GETs cut) | SQLite file |
//! | `large_data_file_upload_failing_is_retriable` | moto behind a proxy (multipart parts cut) | SQLite file |
//! | `unreachable_catalog_is_retriable` | moto | closed port |
//! | `catalog_failing_mid_copy_leaves_nothing` | moto | REST fixture behind a proxy (commit cut), then killed |
//!
//! A missing tool (moto, java, the fixture jars) fails these tests, naming tests/install-deps.sh.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use calving_rsm::{CopyOutcome, IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_test_utils::fixture_files;
use common::{
    check_copied_to_the_store, check_served, closed_port, count_rows, fetch_all, segment, CutProxy, ListObjects, RestFixture,
    S3Server,
};

const BUCKET: &str = "calving";
const WAREHOUSE: &str = "s3://calving/wh";

/// Object-store retries and timeouts short enough for a dead endpoint to fail in seconds.
const FAST_STORAGE: &[(&str, &str)] = &[
    ("storage.retry.num-retries", "1"),
    ("storage.retry.min-wait-ms", "10"),
    ("storage.retry.max-wait-ms", "100"),
    ("storage.retry.total-timeout-ms", "5000"),
    ("storage.connect-timeout-ms", "1000"),
    ("storage.request-timeout-ms", "5000"),
];

/// The plugin's properties (`rsm.config.*` without the prefix): the warehouse in the bucket on
/// `s3_endpoint`, then `extra` (the catalog keys).
fn rsm_props(s3_endpoint: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut p: HashMap<String, String> =
        S3Server::s3_props(s3_endpoint).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    p.insert("warehouse".into(), WAREHOUSE.into());
    for (k, v) in FAST_STORAGE.iter().chain(extra) {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

/// Both segments of each fixture (lz4: compressed; txn: uncompressed, transactional, with
/// aborts and a transaction index).
fn fixture_segments(fixtures: &[&str]) -> Vec<(SegmentMetadata, LogSegmentFiles)> {
    fixtures
        .iter()
        .flat_map(|f| fixture_files(f, "log").into_iter().map(move |l| segment(f, &l)))
        .collect()
}

fn is_data_or_sidecar(location: &str) -> bool {
    location.ends_with(".parquet") || location.ends_with(".sidecar")
}

#[test]
fn rest_catalog_and_s3_warehouse() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let rest = RestFixture::start(dir.path(), &s3, WAREHOUSE);
    eprintln!("moto and the REST fixture up after {:?}", started.elapsed());
    // fx-txn in the `delete` retention mode: its rows leave the table through Calving's own commit
    // path (a REST `CommitTableRequest` the Java server checks and applies).
    let props = rsm_props(
        &s3.endpoint,
        &[("catalog.type", "rest"), ("catalog.uri", &rest.uri), ("topic.fx-txn.retention.mode", "delete")],
    );
    let rsm = RemoteStorage::open(&props).unwrap();

    // Copy: every segment lands in the bucket, data files and sidecar, committed.
    let segments = fixture_segments(&["lz4", "txn"]);
    let mut outcomes: Vec<CopyOutcome> = Vec::new();
    for (md, files) in &segments {
        let outcome = rsm.copy_log_segment(md, files).unwrap_or_else(|e| panic!("{e}\nREST fixture log:\n{}", rest.log_text()));
        assert!(outcome.snapshot_id.is_some() && !outcome.data_files.is_empty(), "{md}");
        assert_eq!(outcome.reused_rows, 0);
        outcomes.push(outcome);
    }
    let copied = started.elapsed();
    check_copied_to_the_store(WAREHOUSE, &segments, &outcomes, &s3.list(BUCKET, "wh"), dir.path());

    // Fetch: records, batch facts and every index type, from this broker and from another one
    // that finds the segment from its metadata alone (REST catalog -> table location -> sidecar).
    for (md, files) in &segments {
        check_served(&rsm, md, files);
    }
    let other = RemoteStorage::open(&props).unwrap();
    for (md, _) in &segments {
        assert_eq!(fetch_all(&other, md, 0, None), fetch_all(&rsm, md, 0, None), "{md}");
    }
    let fetched = started.elapsed();

    // Exactly once: the same copy retried adds nothing; a re-upload of the same offsets under a
    // new segment id serves the first copy's rows and appends none.
    let lz4_records: u64 = segments.iter().zip(&outcomes).filter(|((m, _), _)| m.topic == "fx-lz4").map(|(_, o)| o.stats.records).sum();
    let txn_records: u64 = segments.iter().zip(&outcomes).filter(|((m, _), _)| m.topic == "fx-txn").map(|(_, o)| o.stats.records).sum();
    assert_eq!(count_rows(&rsm, "fx-lz4"), lz4_records);
    let (first, files) = &segments[0];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let snapshots = |topic: &str| rt.block_on(rsm.catalog().load_table(topic)).unwrap().metadata().snapshots().count();
    let before_again = snapshots(&first.topic);
    let again = rsm.copy_log_segment(first, files).unwrap();
    assert!(again.data_files.is_empty());
    assert_eq!(snapshots(&first.topic), before_again, "a retry of a committed copy commits nothing");
    let reupload = SegmentMetadata { segment_id: KafkaUuid::random(), ..first.clone() };
    let b = rsm.copy_log_segment(&reupload, files).unwrap();
    assert_eq!(b.reused_rows, outcomes[0].stats.records);
    assert!(b.data_files.is_empty() && b.snapshot_id.is_none(), "{b:?}");
    assert_eq!(fetch_all(&rsm, &reupload, 0, None), fetch_all(&rsm, first, 0, None));
    check_served(&rsm, &reupload, files);
    assert_eq!(count_rows(&rsm, "fx-lz4"), lz4_records, "no row duplicated by the re-upload");
    assert_eq!(count_rows(&rsm, "fx-txn"), txn_records);
    assert!(s3.list(BUCKET, "wh").contains(&b.sidecar_location));

    // Delete: Kafka's view is gone (NotFound everywhere); fx-lz4's rows stay (retention.mode=keep),
    // fx-txn's go (delete); the data files of both stay in storage (older snapshots use them); no
    // sidecar is left in the bucket.
    let all: Vec<&SegmentMetadata> = segments.iter().map(|(m, _)| m).chain([&reupload]).collect();
    for md in &all {
        rsm.delete_log_segment(md).unwrap();
        rsm.delete_log_segment(md).unwrap();
    }
    // `other` may still serve what it cached before the delete (segments are immutable, and Kafka
    // never fetches a deleted segment); a broker that had not cached it finds nothing.
    let third = RemoteStorage::open(&props).unwrap();
    for md in &all {
        for r in [&rsm, &third] {
            assert!(r.fetch_log_segment(md, 0, None).unwrap_err().is_not_found(), "{md}");
            for index in [IndexType::Offset, IndexType::Timestamp, IndexType::ProducerSnapshot, IndexType::LeaderEpoch] {
                assert!(r.fetch_index(md, index).unwrap_err().is_not_found(), "{md} {index:?}");
            }
        }
    }
    let objects = s3.list(BUCKET, "wh");
    assert!(!objects.iter().any(|l| l.ends_with(".sidecar")), "{objects:#?}");
    for o in &outcomes {
        for l in &o.data_files {
            assert!(objects.contains(l), "data file {l} kept in storage");
        }
    }
    assert_eq!(count_rows(&rsm, "fx-lz4"), lz4_records);
    assert_eq!(count_rows(&rsm, "fx-txn"), 0, "retention.mode=delete removed the rows");
    eprintln!(
        "rest_catalog_and_s3_warehouse: {} segments copied by {copied:?}, fetched by {fetched:?}, done in {:?}",
        segments.len(),
        started.elapsed()
    );
    drop(rest);
}

/// Asserts a failed copy is retriable, names the segment and `location`, and took less than 20 s.
fn assert_retriable_failure(result: calving_rsm::Result<CopyOutcome>, md: &SegmentMetadata, location: &str, took: Duration) -> String {
    let err = match result {
        Ok(o) => panic!("copy of {md} succeeded: {o:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(err.is_retriable(), "not retriable: {msg}");
    assert!(!err.is_not_found(), "{msg}");
    assert!(msg.contains(&md.segment_id.to_string()) && msg.contains(&md.topic), "the message names the segment: {msg}");
    assert!(msg.contains(location), "the message names {location}: {msg}");
    assert!(took < Duration::from_secs(20), "the failure took {took:?}: {msg}");
    msg
}

/// S3 endpoint on a closed port, SQLite catalog in a local directory: the copy fails (writing
/// the new table's metadata) retriable within seconds, naming the segment and the location.
#[test]
fn unreachable_object_store_is_retriable() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let catalog = format!("sqlite:{}/catalog.db", dir.path().display());
    let rsm = RemoteStorage::open(&rsm_props(&endpoint, &[("catalog.uri", &catalog)])).unwrap();
    for (md, files) in fixture_segments(&["lz4"]).iter().take(1) {
        let started = Instant::now();
        let result = rsm.copy_log_segment(md, files);
        let took = started.elapsed();
        let msg = assert_retriable_failure(result, md, &format!("{WAREHOUSE}/kafka/{}/", md.topic), took);
        eprintln!("unreachable object store: failed after {took:?}: {msg}");
    }
}

/// The object store stops answering in the middle of a copy (a proxy cuts the sidecar upload,
/// after the data files were written): the copy fails retriable naming the sidecar, deletes the
/// data files it wrote, commits nothing; the retry succeeds once.
#[test]
fn object_store_failing_mid_copy_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let proxy = CutProxy::start(s3.port, |line| line.starts_with("PUT ") && line.contains(".sidecar"));
    let catalog = format!("sqlite:{}/catalog.db", dir.path().display());
    let rsm = RemoteStorage::open(&rsm_props(&proxy.endpoint, &[("catalog.uri", &catalog)])).unwrap();
    let (md, files) = &fixture_segments(&["txn"])[0];
    proxy.set_cutting(true);
    let started = Instant::now();
    let result = rsm.copy_log_segment(md, files);
    let took = started.elapsed();
    let sidecar = format!("{WAREHOUSE}/calving-sidecars/kafka/{}/0/{:020}-{:020}-{}.sidecar", md.topic, md.start_offset, md.end_offset, md.segment_id);
    let msg = assert_retriable_failure(result, md, &sidecar, took);
    assert!(proxy.cut_count() >= 1);
    eprintln!("object store failing mid-copy: failed after {took:?} ({} requests cut): {msg}", proxy.cut_count());
    let left: Vec<String> = s3.list(BUCKET, "wh").into_iter().filter(|l| is_data_or_sidecar(l)).collect();
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(count_rows(&rsm, &md.topic), 0);
    assert!(rsm.fetch_log_segment(md, 0, None).unwrap_err().is_not_found());

    proxy.set_cutting(false);
    let outcome = rsm.copy_log_segment(md, files).unwrap();
    assert_eq!(outcome.sidecar_location, sidecar);
    assert_eq!(count_rows(&rsm, &md.topic), outcome.stats.records);
    check_served(&rsm, md, files);
    let objects = s3.list(BUCKET, "wh");
    for l in outcome.data_files.iter().chain([&outcome.sidecar_location]) {
        assert!(objects.contains(l), "{l}");
    }
    assert_eq!(objects.iter().filter(|l| is_data_or_sidecar(l)).count(), outcome.data_files.len() + 1, "{objects:#?}");

    // Reads fail too (another broker, whose reads of the data files are cut): the fetch fails
    // retriable, naming the segment and the data file, through the typed API and through Read.
    let reads = CutProxy::start(s3.port, |line| line.starts_with("GET ") && line.contains(".parquet"));
    let other = RemoteStorage::open(&rsm_props(&reads.endpoint, &[("catalog.uri", &catalog)])).unwrap();
    reads.set_cutting(true);
    let started = Instant::now();
    let err = other.fetch_log_segment(md, 0, None).unwrap().next_chunk().map(|c| c.map(<[u8]>::len)).unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(err.is_retriable(), "not retriable: {msg}");
    assert!(msg.contains(&md.segment_id.to_string()) && msg.contains(&outcome.data_files[0]), "{msg}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    eprintln!("object store failing during a fetch: failed after {took:?}: {msg}");
    let mut sink = Vec::new();
    let io = std::io::Read::read_to_end(&mut other.fetch_log_segment(md, 0, None).unwrap(), &mut sink).unwrap_err();
    let inner = io.get_ref().and_then(|e| e.downcast_ref::<calving_rsm::RsmError>()).expect("the typed error inside");
    assert!(inner.is_retriable(), "{inner}");
    reads.set_cutting(false);
    assert_eq!(fetch_all(&other, md, 0, None), fetch_all(&rsm, md, 0, None));
}

/// REST catalog URI on a closed port (the REST catalog connects lazily, so `open` succeeds as a
/// broker must start while its catalog is down): the copy fails retriable within seconds, naming
/// the segment and the catalog's address, and puts nothing in the bucket.
#[test]
fn unreachable_catalog_is_retriable() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let catalog = format!("http://127.0.0.1:{}", closed_port());
    let rsm = RemoteStorage::open(&rsm_props(&s3.endpoint, &[("catalog.type", "rest"), ("catalog.uri", &catalog)])).unwrap();
    let (md, files) = &fixture_segments(&["lz4"])[0];
    let started = Instant::now();
    let result = rsm.copy_log_segment(md, files);
    let took = started.elapsed();
    let msg = assert_retriable_failure(result, md, &catalog, took);
    eprintln!("unreachable catalog: failed after {took:?}: {msg}");
    assert_eq!(s3.list(BUCKET, ""), Vec::<String>::new(), "nothing in the bucket");
}

/// The catalog fails in the middle of a copy: (1) every table commit is cut after the request
/// went out (the client cannot tell whether it was applied); (2) the REST server is killed
/// between copies. (1) fails retriable as an unknown outcome and, by Iceberg's rule, deletes
/// nothing it wrote (the commit might land late); Kafka then deletes the segment and copies it
/// again under a new id, which lands once, and the orphan sweep removes exactly what the cut
/// attempts left. (2) fails retriable and writes nothing.
#[test]
fn catalog_failing_mid_copy_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let rest = RestFixture::start(dir.path(), &s3, WAREHOUSE);
    // Commits are `POST /v1/namespaces/kafka/tables/<table>` (creation has no table name).
    let proxy = CutProxy::start(rest.port, |line| line.starts_with("POST ") && line.contains("/tables/"));
    let props = rsm_props(
        &s3.endpoint,
        &[("catalog.type", "rest"), ("catalog.uri", &proxy.endpoint), ("commit.retry.num-retries", "2")],
    );
    let rsm = RemoteStorage::open(&props).unwrap();
    let segments = fixture_segments(&["lz4", "txn"]);
    let (a, a_files) = &segments[0];
    let (b, b_files) = &segments[1];
    let first = rsm.copy_log_segment(a, a_files).unwrap();
    let before = s3.list(BUCKET, "wh");

    proxy.set_cutting(true);
    let started = Instant::now();
    let result = rsm.copy_log_segment(b, b_files);
    let took = started.elapsed();
    let msg = assert_retriable_failure(result, b, &proxy.endpoint, took);
    assert!(msg.contains("unknown"), "an unknown outcome: {msg}");
    assert_eq!(proxy.cut_count(), 3, "one commit and its two retries sent and cut");
    eprintln!("commit cut: failed after {took:?}: {msg}");
    let after = s3.list(BUCKET, "wh");
    let new: Vec<String> = after.iter().filter(|l| !before.contains(l)).cloned().collect();
    // Nothing deleted: the data files and the sidecar of the attempt are still there.
    assert!(new.iter().any(|l| l.ends_with(".parquet")) && new.iter().any(|l| l.ends_with(".sidecar")), "{new:#?}");
    assert_eq!(count_rows(&rsm, &b.topic), first.stats.records, "nothing landed");

    // Kafka deletes the failed segment and copies it again under a new segment id.
    proxy.set_cutting(false);
    rsm.delete_log_segment(b).unwrap();
    assert!(rsm.fetch_log_segment(b, 0, None).unwrap_err().is_not_found());
    let b2 = SegmentMetadata { segment_id: KafkaUuid::random(), ..b.clone() };
    let second = rsm.copy_log_segment(&b2, b_files).unwrap();
    assert!(second.snapshot_id.is_some());
    assert_eq!(count_rows(&rsm, &b.topic), first.stats.records + second.stats.records);
    check_served(&rsm, &b2, b_files);

    // The orphan sweep deletes exactly what the cut attempts left (data files, manifests,
    // manifest lists: no sidecar, those belong to Kafka's deletes), and nothing the table or a
    // sidecar refers to — nor the commit line's waiting marker, state that brokers rewrite in
    // ordinary operation; a second sweep finds nothing.
    let table_dir = new.iter().find_map(|l| l.split_once("/metadata/")).map(|(dir, _)| dir.to_string()).expect("a manifest of the cut attempts");
    let marker = calving_table::carry::waiting_marker(&table_dir);
    let (status, body) = s3.request("PUT", marker.trim_start_matches("s3:/"), "").unwrap();
    assert_eq!(status, 200, "{body}");
    let report = rsm.sweep_orphans(&b.topic, Duration::ZERO, false).unwrap();
    assert!(s3.list(BUCKET, "wh").contains(&marker), "the waiting marker is left alone");
    let mut left: Vec<String> = new.iter().filter(|l| !l.ends_with(".sidecar")).cloned().collect();
    left.sort();
    assert_eq!(report.orphans, left, "{report:?}");
    let swept = s3.list(BUCKET, "wh");
    assert!(left.iter().all(|l| !swept.contains(l)), "{swept:#?}");
    assert_eq!(count_rows(&rsm, &b.topic), first.stats.records + second.stats.records);
    check_served(&rsm, a, a_files);
    check_served(&rsm, &b2, b_files);
    assert!(rsm.sweep_orphans(&b.topic, Duration::ZERO, false).unwrap().orphans.is_empty());

    // The REST server dies: the next copy (of a topic whose table does not exist yet) fails
    // retriable and writes nothing of its own.
    let before = s3.list(BUCKET, "wh");
    drop(rest);
    let (c, c_files) = segments.iter().find(|(m, _)| m.topic == "fx-txn").unwrap();
    let started = Instant::now();
    let result = rsm.copy_log_segment(c, c_files);
    let took = started.elapsed();
    let msg = assert_retriable_failure(result, c, &proxy.endpoint, took);
    eprintln!("REST server killed: failed after {took:?}: {msg}");
    assert_eq!(s3.list(BUCKET, "wh"), before, "nothing written");
    // Kafka's reads of what was copied do not need the catalog once the table location is known.
    check_served(&rsm, a, a_files);
}

/// The object store fails while a large data file is uploaded in several multipart parts (a
/// proxy cuts every part): the copy fails retriable, naming the segment and the data file, and
/// leaves no data file, no sidecar and no snapshot; the retry succeeds once.
#[test]
fn large_data_file_upload_failing_is_retriable() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let proxy = CutProxy::start(s3.port, |line| line.starts_with("PUT ") && line.contains(".parquet"));
    let catalog = format!("sqlite:{}/catalog.db", dir.path().display());
    let extra = [
        ("catalog.uri", catalog.as_str()),
        ("storage.multipart.part-size-bytes", "5242880"),
        ("storage.multipart.max-concurrency", "1"),
    ];
    let rsm = RemoteStorage::open(&rsm_props(&proxy.endpoint, &extra)).unwrap();
    let (md, files) = common::large_segment(dir.path(), "large", 18 << 20);
    proxy.set_cutting(true);
    let started = Instant::now();
    let result = rsm.copy_log_segment(&md, &files);
    let took = started.elapsed();
    let msg = assert_retriable_failure(result, &md, &format!("{WAREHOUSE}/kafka/large/data/"), took);
    assert!(msg.contains(".parquet"), "{msg}");
    assert!(proxy.cut_requests().iter().any(|l| l.contains("partNumber=")), "a multipart part was cut: {:?}", proxy.cut_requests());
    eprintln!("large upload cut: failed after {took:?} ({} requests cut): {msg}", proxy.cut_count());
    let left: Vec<String> = s3.list(BUCKET, "wh").into_iter().filter(|l| is_data_or_sidecar(l)).collect();
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(count_rows(&rsm, &md.topic), 0);
    // The dropped upload is aborted (in the background): no incomplete multipart upload stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, uploads) = s3.request("GET", &format!("/{BUCKET}?uploads"), "").unwrap();
        if !uploads.contains("<Upload>") {
            break;
        }
        assert!(Instant::now() < deadline, "incomplete multipart uploads left: {uploads}");
        std::thread::sleep(Duration::from_millis(50));
    }

    proxy.set_cutting(false);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!(count_rows(&rsm, &md.topic), outcome.stats.records);
    assert_eq!(fetch_all(&rsm, &md, 0, None), std::fs::read(&files.log).unwrap(), "uncompressed: served byte for byte");
}
