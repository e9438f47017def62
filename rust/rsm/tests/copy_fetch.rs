//! The RemoteStorageManager operations on real broker segments (`tests/fixtures/segments`), with
//! the embedded default: a local warehouse and the SQLite catalog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use calving_rsm::{IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, RsmError, SegmentMetadata};
use calving_segment::{Compression, LogEntries, LogEntry};
use calving_test_utils::{fixture_files, fixture_names, fixtures_dir};

mod common;
use common::{check_served, count_rows, fetch_all, segment, walk, Served};

fn open(dir: &Path) -> RemoteStorage {
    let props = HashMap::from([("warehouse".to_string(), format!("file://{}/warehouse", dir.display()))]);
    RemoteStorage::open(&props).unwrap()
}

/// Broker fixtures (legacy ones have no side files).
fn broker_logs() -> Vec<(String, PathBuf)> {
    fixture_names()
        .into_iter()
        .filter(|n| !n.starts_with("legacy"))
        .flat_map(|n| fixture_files(&n, "log").into_iter().map(move |l| (n.clone(), l)))
        .collect()
}

#[test]
fn copy_then_fetch_serves_every_record_back() {
    copy_then_fetch("lz4");
}

/// The same with `served.compression=none` (served layout version 3): compressed batches come
/// back uncompressed, with the same records, from every index position.
#[test]
fn copy_then_fetch_serves_every_record_back_uncompressed() {
    copy_then_fetch("none");
}

fn copy_then_fetch(served_compression: &str) {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display())),
        ("served.compression".to_string(), served_compression.to_string()),
    ]);
    let rsm = RemoteStorage::open(&props).unwrap();
    for (fixture, log) in broker_logs() {
        let (md, files) = segment(&fixture, &log);
        let outcome = rsm.copy_log_segment(&md, &files).unwrap();
        assert!(outcome.snapshot_id.is_some() && !outcome.data_files.is_empty(), "{}", log.display());
        let original = std::fs::read(&log).unwrap();
        let served = fetch_all(&rsm, &md, 0, None);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let served_entries: Vec<LogEntry> = LogEntries::new(&served).map(Result::unwrap).collect();
        let original_entries: Vec<LogEntry> = LogEntries::new(&original).map(Result::unwrap).collect();
        assert_eq!(served_entries.len(), original_entries.len());
        for (s, o) in served_entries.iter().zip(&original_entries) {
            let (LogEntry::Batch(s), LogEntry::Batch(o)) = (s, o) else { panic!("v2 fixtures") };
            s.verify_crc().unwrap();
            if o.compression() == Compression::None {
                assert_eq!(s.bytes(), o.bytes(), "{}: uncompressed batch at {} differs", log.display(), o.position);
            }
            let served_codec = match (served_compression, o.compression(), o.header.attributes.is_control()) {
                (_, Compression::None, _) | ("none", _, false) => Compression::None,
                (_, original, true) => original,
                _ => Compression::Lz4,
            };
            assert_eq!(s.compression(), served_codec, "{}: batch at {}", log.display(), o.position);
            let sr: Vec<_> = s.records(&mut a).unwrap().map(Result::unwrap).collect();
            let or: Vec<_> = o.records(&mut b).unwrap().map(Result::unwrap).collect();
            assert_eq!(sr, or);
        }
        // Indexes: the served offset index has one entry per batch after the first (positions:
        // lower bounds of the bytes, `Served`); the others come back as they were given.
        let map = Served::new(&rsm, &md, served);
        for (k, &p) in map.positions.iter().enumerate() {
            // A fetch from an index position yields exactly the tail of the whole segment.
            assert!(fetch_all(&rsm, &md, p, None) == map.whole[map.starts[k]..], "{}: fetch from {p}", log.display());
        }
        if let Some(&p) = map.positions.get(1) {
            assert!(fetch_all(&rsm, &md, p, Some(p + 99)) == map.expected(p, Some(p + 99)), "{}", log.display());
        }
        assert!(!rsm.fetch_index(&md, IndexType::Timestamp).unwrap().is_empty());
        assert_eq!(rsm.fetch_index(&md, IndexType::ProducerSnapshot).unwrap(), std::fs::read(&files.producer_snapshot).unwrap());
        assert_eq!(rsm.fetch_index(&md, IndexType::LeaderEpoch).unwrap(), files.leader_epoch);
        match &files.txn_index {
            Some(t) => assert_eq!(rsm.fetch_index(&md, IndexType::Transaction).unwrap(), std::fs::read(t).unwrap()),
            None => assert!(rsm.fetch_index(&md, IndexType::Transaction).unwrap_err().is_not_found()),
        }
    }
}

#[test]
fn reupload_and_retry_never_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let log = &fixture_files("lz4", "log")[0];
    let (first, files) = segment("lz4", log);
    let a = rsm.copy_log_segment(&first, &files).unwrap();
    assert_eq!(a.reused_rows, 0);
    // The same copy retried (same segment id): nothing is added.
    let again = rsm.copy_log_segment(&first, &files).unwrap();
    assert!(again.data_files.is_empty());
    assert_eq!(again.snapshot_id, a.snapshot_id);
    // A re-upload of the same offsets under a new segment id (Kafka after a failed copy or a
    // leader change): every row is served from the first copy's files, none is appended.
    let second = SegmentMetadata { segment_id: KafkaUuid::random(), ..first.clone() };
    let b = rsm.copy_log_segment(&second, &files).unwrap();
    assert_eq!(b.reused_rows, a.stats.records);
    assert!(b.data_files.is_empty() && b.snapshot_id.is_none());
    assert_eq!(fetch_all(&rsm, &second, 0, None), fetch_all(&rsm, &first, 0, None));
    // Partial overlap: a segment starting inside the first one adds only the new offsets.
    let table = rsm.storage().warehouse().to_string();
    assert!(table.starts_with("file://"));
    let rows = count_rows(&rsm, &first.topic);
    assert_eq!(rows, a.stats.records, "rows in the table");
}

/// A new leader's segment overlapping an earlier upload (segment boundaries differ per replica):
/// only the new offsets are appended, and the whole segment is served.
#[test]
fn partial_overlap_appends_only_new_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let logs = fixture_files("none", "log");
    let (a_md, a_files) = segment("none", &logs[0]);
    let a = rsm.copy_log_segment(&a_md, &a_files).unwrap();
    // Batches of the first segment from offset 200 on, then all of the second segment.
    let first = std::fs::read(&logs[0]).unwrap();
    let mut combined = Vec::new();
    let mut from = None;
    for e in LogEntries::new(&first) {
        let LogEntry::Batch(b) = e.unwrap() else { unreachable!() };
        if b.header.base_offset >= 200 {
            from.get_or_insert(b.header.base_offset);
            combined.extend_from_slice(b.bytes());
        }
    }
    let from = from.unwrap();
    combined.extend_from_slice(&std::fs::read(&logs[1]).unwrap());
    let sub = dir.path().join("leader2");
    std::fs::create_dir(&sub).unwrap();
    let log = sub.join(format!("{from:020}.log"));
    std::fs::write(&log, &combined).unwrap();
    let (b_second, b_files) = segment("none", &logs[1]);
    let b_md = SegmentMetadata { start_offset: from, segment_size: combined.len() as u64, ..b_second };
    let files = LogSegmentFiles { log: log.clone(), ..b_files };
    let b = rsm.copy_log_segment(&b_md, &files).unwrap();
    assert_eq!(b.reused_rows, (a_md.end_offset - from + 1) as u64);
    assert_eq!(b.stats.records - b.reused_rows, (b_md.end_offset - a_md.end_offset) as u64);
    assert_eq!(count_rows(&rsm, &a_md.topic), a.stats.records + b.stats.records - b.reused_rows);
    // Uncompressed fixture: the served segment is the combined file, byte for byte.
    assert_eq!(fetch_all(&rsm, &b_md, 0, None), combined);
}

#[test]
fn corrupt_segment_fails_cleanly_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let log = &fixture_files("zstd", "log")[0];
    let (md, mut files) = segment("zstd", log);
    let mut bytes = std::fs::read(log).unwrap();
    let cut = bytes.len() / 2;
    bytes.truncate(cut);
    let broken = dir.path().join(log.file_name().unwrap());
    std::fs::write(&broken, &bytes).unwrap();
    files.log = broken.clone();
    let err = rsm.copy_log_segment(&md, &files).unwrap_err();
    assert!(matches!(err, RsmError::SegmentRead { .. }), "{err}");
    assert!(!err.is_retriable());
    let msg = err.to_string();
    assert!(msg.contains(&broken.display().to_string()) && msg.contains("truncated"), "{msg}");
    // Nothing visible: no snapshot, no data file, no sidecar.
    assert_eq!(count_rows(&rsm, &md.topic), 0);
    let data: Vec<_> = walk(&dir.path().join("warehouse")).into_iter().filter(|p| {
        let s = p.display().to_string();
        s.ends_with(".parquet") || s.ends_with(".sidecar")
    }).collect();
    assert!(data.is_empty(), "left behind: {data:?}");
    assert!(rsm.fetch_log_segment(&md, 0, None).unwrap_err().is_not_found());
}

#[test]
fn delete_keeps_rows_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let log = &fixture_files("txn", "log")[0];
    let (md, files) = segment("txn", log);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    rsm.delete_log_segment(&md).unwrap();
    rsm.delete_log_segment(&md).unwrap();
    assert!(rsm.fetch_log_segment(&md, 0, None).unwrap_err().is_not_found());
    assert!(rsm.fetch_index(&md, IndexType::Offset).unwrap_err().is_not_found());
    assert_eq!(count_rows(&rsm, &md.topic), outcome.stats.records);
    // Deleting a segment of a topic that never had a table is fine too.
    let other = SegmentMetadata { topic: "never-copied".into(), ..md };
    rsm.delete_log_segment(&other).unwrap();
    let _ = fixtures_dir();
}

/// A synthetic segment of `spec` (about `bytes` long) written to `dir` with empty side files, as
/// the broker would hand it over: (metadata, files, the segment's bytes, record count).
fn synthetic_segment(
    dir: &Path,
    topic: &str,
    spec: &calving_segment::synth::SynthSpec,
    bytes: u64,
    max_timestamp_ms: i64,
) -> (SegmentMetadata, LogSegmentFiles, Vec<u8>, u64) {
    let log = dir.join(format!("{:020}.log", 0));
    let mut data = Vec::new();
    let stats = calving_segment::synth::write_segment(spec, 0, bytes, &mut data).unwrap();
    std::fs::write(&log, &data).unwrap();
    for ext in ["index", "timeindex", "snapshot"] {
        std::fs::write(log.with_extension(ext), b"").unwrap();
    }
    let md = SegmentMetadata {
        topic: topic.into(),
        topic_id: KafkaUuid([topic.len() as u8; 16]),
        partition: 0,
        segment_id: KafkaUuid::random(),
        start_offset: 0,
        end_offset: stats.records as i64 - 1,
        max_timestamp_ms,
        segment_size: data.len() as u64,
        leader_epochs: Default::default(),
    };
    let files = LogSegmentFiles {
        log: log.clone(),
        offset_index: log.with_extension("index"),
        time_index: log.with_extension("timeindex"),
        txn_index: None,
        producer_snapshot: log.with_extension("snapshot"),
        leader_epoch: Vec::new(),
    };
    (md, files, data, stats.records)
}

/// A data file with many offset pages (the writer puts up to `DATA_PAGE_ROWS` rows in a page): a
/// fetch reads only the rows of its offsets (`parquet_io`'s row filter) and serves exactly the
/// original bytes, from any batch, across page boundaries.
#[test]
fn fetches_within_multi_page_files_serve_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = calving_segment::synth::SynthSpec { value_size: 100, ..Default::default() };
    let (md, files, data, records) = synthetic_segment(dir.path(), "pages", &spec, 10 << 20, 1_700_000_300_000);
    assert!(records > 40_000, "{records} rows: too few for several offset pages");
    let rsm = open(dir.path());
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    // Every column's pages hold at most DATA_PAGE_ROWS rows (the page index says so).
    for location in &outcome.data_files {
        let path = location.strip_prefix("file://").unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new_with_options(
            std::fs::File::open(path).unwrap(),
            parquet::file::serialized_reader::ReadOptionsBuilder::new().with_page_index().build(),
        )
        .unwrap();
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        let (mut pages, mut largest) = (0, 0);
        for (rg, columns) in meta.offset_index().unwrap().iter().enumerate() {
            let rows = meta.row_group(rg).num_rows();
            for column in columns {
                let locs = column.page_locations();
                for (p, loc) in locs.iter().enumerate() {
                    let end = locs.get(p + 1).map_or(rows, |n| n.first_row_index);
                    largest = largest.max(end - loc.first_row_index);
                    pages += 1;
                }
            }
        }
        let cap = calving_layout::parquet_props::DATA_PAGE_ROWS;
        assert!(largest <= cap as i64, "{path}: a page of {largest} rows");
        assert!(pages as u64 > records / cap as u64, "{path}: {pages} pages");
    }
    let whole = fetch_all(&rsm, &md, 0, None);
    assert!(whole == data, "the uncompressed segment comes back byte for byte");
    let map = Served::new(&rsm, &md, whole);
    for &start in map.positions.iter().step_by(37) {
        let end = start + (1 << 20);
        assert!(fetch_all(&rsm, &md, start, Some(end)) == map.expected(start, Some(end)), "fetch from {start}");
    }
}

/// Streams that read on (many steps: a 16 KiB `fetch.chunk.bytes`) read the rows of several
/// steps at once and serve the next steps from them: the bytes are those of the segment from any
/// position to the end or to any end, for rows in one data file and for rows spread over several
/// (batches cycling over day partitions, merged by offset).
#[test]
fn streams_that_read_ahead_serve_exact_bytes() {
    use calving_segment::synth::SynthSpec;
    let one_file = SynthSpec { value_size: 100, ..SynthSpec::default() };
    let many_files = SynthSpec { value_size: 100, records_per_batch: 16, distinct_batches: 32, batch_interval_ms: 6 * 3_600_000, ..SynthSpec::default() };
    // An lz4 segment served uncompressed (`served.compression=none`): the steps are sized by
    // the exact sizes of version 3, the positions fall short of the bytes.
    let lz4_uncompressed = SynthSpec { value_size: 100, compression: Compression::Lz4, ..SynthSpec::default() };
    for (name, spec, served_compression) in
        [("ahead", one_file, "lz4"), ("ahead-days", many_files, "lz4"), ("ahead-v3", lz4_uncompressed, "none")]
    {
        let dir = tempfile::tempdir().unwrap();
        let (md, files, data, _) = synthetic_segment(dir.path(), name, &spec, 3 << 20, 1_700_000_000_000 + 8 * 86_400_000);
        let props = HashMap::from([
            ("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display())),
            ("fetch.chunk.bytes".to_string(), "16384".to_string()),
            ("served.compression".to_string(), served_compression.to_string()),
        ]);
        let rsm = RemoteStorage::open(&props).unwrap();
        let outcome = rsm.copy_log_segment(&md, &files).unwrap();
        assert!(name != "ahead-days" || outcome.data_files.len() > 1, "{name}: {} data files", outcome.data_files.len());
        let whole = fetch_all(&rsm, &md, 0, None);
        if spec.compression == Compression::None {
            assert!(whole == data, "{name}: the whole segment");
        } else {
            // Each original batch's base offset, record count and records section (decompressed
            // into `scratch` by `records`) against the served batch's, uncompressed and CRC-valid
            // (the other batch facts are checked by `copy_then_fetch`).
            let mut scratch = Vec::new();
            let expected: Vec<(i64, i32, Vec<u8>)> = LogEntries::new(&data)
                .map(|e| match e.unwrap() {
                    LogEntry::Batch(b) => (b.header.base_offset, b.header.records_count, { b.records(&mut scratch).unwrap(); scratch.clone() }),
                    LogEntry::Legacy(_) => unreachable!(),
                })
                .collect();
            let got: Vec<(i64, i32, Vec<u8>)> = LogEntries::new(&whole)
                .map(|e| match e.unwrap() {
                    LogEntry::Batch(b) => {
                        assert_eq!(b.compression(), Compression::None, "{name}");
                        b.verify_crc().unwrap();
                        (b.header.base_offset, b.header.records_count, b.payload().to_vec())
                    }
                    LogEntry::Legacy(_) => unreachable!(),
                })
                .collect();
            assert!(got == expected, "{name}: the whole segment, uncompressed");
            assert!(whole.len() > data.len() * 2, "{name}: {} bytes served of a {}-byte lz4 segment", whole.len(), data.len());
        }
        let map = Served::new(&rsm, &md, whole);
        for (i, &start) in map.positions.iter().enumerate().step_by(29) {
            assert!(fetch_all(&rsm, &md, start, None) == map.expected(start, None), "{name}: from {start} to the end");
            let end = start + 100_000 + 7919 * i as u64;
            assert!(fetch_all(&rsm, &md, start, Some(end)) == map.expected(start, Some(end)), "{name}: {start}..={end}");
            // Read in small pieces, as the broker does.
            let mut stream = rsm.fetch_log_segment(&md, start, None).unwrap();
            let mut served = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                served.extend_from_slice(&buf[..n]);
            }
            assert!(served == map.expected(start, None), "{name}: from {start}, in pieces");
        }
    }
}

/// Steps are sized by what is read (`fetch`'s module docs). A zstd batch serves ~1.5x its
/// original size as lz4; once a stream over the segment has measured that, a fetch read as the
/// broker reads it (a batch header, the rest of the batch, then the rest of the fetch in one
/// `read`) rebuilds about what it reads: no step of the original's size that serves half as much
/// again, and no whole second chunk for the few bytes the first step fell short of. The bytes are
/// those of the whole segment's read.
#[test]
fn fetches_rebuild_about_what_is_read() {
    use calving_segment::synth::SynthSpec;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { compression: Compression::Zstd, ..SynthSpec::default() };
    let (md, files, data, _) = synthetic_segment(dir.path(), "sized", &spec, 8 << 20, 1_700_000_000_000);
    let chunk: u64 = 256 << 10;
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/warehouse", dir.path().display())),
        ("fetch.chunk.bytes".to_string(), chunk.to_string()),
    ]);
    let rsm = RemoteStorage::open(&props).unwrap();
    rsm.copy_log_segment(&md, &files).unwrap();
    let whole = fetch_all(&rsm, &md, 0, None);
    assert!(whole.len() as f64 > data.len() as f64 * 1.3, "{} served bytes of a {}-byte zstd segment", whole.len(), data.len());
    let largest = LogEntries::new(&whole).map(|e| e.unwrap().bytes().len() as u64).max().unwrap();
    let map = Served::new(&rsm, &md, whole);
    let served = || rsm.metrics().into_iter().find(|(k, _)| k == "ServedBytes").unwrap().1 as u64;
    let mut reads = 0;
    for (i, &start) in map.positions.iter().enumerate().step_by(3) {
        let expected = map.expected(start, None);
        // Between one and two chunks: the first step alone falls short of some.
        let want = (chunk + 7919 * i as u64 % chunk).min(expected.len() as u64) as usize;
        if want < chunk as usize {
            break; // too near the end
        }
        let before = served();
        let mut stream = rsm.fetch_log_segment(&md, start, None).unwrap();
        let mut got = vec![0u8; want];
        stream.read_exact(&mut got[..17]).unwrap();
        let first = 12 + i32::from_be_bytes(got[8..12].try_into().unwrap()) as usize;
        stream.read_exact(&mut got[17..first]).unwrap();
        stream.read_exact(&mut got[first..]).unwrap();
        drop(stream);
        let rebuilt = served() - before;
        assert!(got == expected[..want], "fetch of {want} bytes from {start}");
        // Each of the (at most two) steps ends with the batch that reaches its aim; the first
        // step's aim is off by how far these batches' lz4 sizes stray from the segment's mean.
        let bound = want as u64 + 2 * largest + want as u64 / 8;
        assert!(rebuilt <= bound, "fetch of {want} bytes from {start} rebuilt {rebuilt} (largest batch {largest}, bound {bound})");
        reads += 1;
    }
    assert!(reads >= 5, "{reads} fetches checked");
}

/// Tables created ahead by their owners are adopted as they are: an unpartitioned one, and one
/// partitioned by identity(kafka.partition) with an extra column Calving leaves null. Copies land
/// in them and Kafka's reads come back byte for byte.
#[test]
fn copies_into_tables_created_ahead() {
    use calving_table::table::default_schema;
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
    use iceberg::{NamespaceIdent, TableCreation};

    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let catalog = rsm.catalog().catalog().clone();
    let ns = NamespaceIdent::new("kafka".into());
    rt.block_on(catalog.create_namespace(&ns, HashMap::new())).unwrap();
    let mut fields: Vec<_> = default_schema().as_struct().fields().to_vec();
    fields.push(NestedField::optional(100, "note", Type::Primitive(PrimitiveType::String)).into());
    let with_note = Schema::builder().with_fields(fields).build().unwrap();
    let by_partition = UnboundPartitionSpec::builder().add_partition_field(4, "by_partition", Transform::Identity).unwrap().build();
    let cases = [
        ("fx-none", default_schema(), UnboundPartitionSpec::builder().build()),
        ("fx-snappy", with_note, by_partition),
    ];
    for (topic, schema, spec) in cases {
        let creation = TableCreation::builder().name(topic.to_string()).schema(schema).partition_spec(spec).build();
        rt.block_on(catalog.create_table(&ns, creation)).unwrap();
        let fixture = topic.strip_prefix("fx-").unwrap();
        let mut records = 0;
        for log in fixture_files(fixture, "log") {
            let (md, files) = segment(fixture, &log);
            let outcome = rsm.copy_log_segment(&md, &files).unwrap_or_else(|e| panic!("{topic}: {e}"));
            assert_eq!(outcome.data_files.len(), 1, "{topic}: one table partition, one file");
            records += outcome.stats.records;
            common::check_served(&rsm, &md, &files);
        }
        assert_eq!(count_rows(&rsm, topic), records, "{topic}");
        let table = rt.block_on(rsm.catalog().load_table(topic)).unwrap();
        assert!(!table.metadata().properties().contains_key("calving.layout-version"), "{topic} adopted as is");
    }
}

/// Writes the batches of `logs` whose base offsets `keep` accepts into one segment file under
/// `dir` (named by its first offset); returns its metadata and files, as the broker sees them.
fn cut_segment(dir: &Path, fixture: &str, logs: &[PathBuf], keep: impl Fn(i64) -> bool) -> (SegmentMetadata, LogSegmentFiles, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut from = None;
    for log in logs {
        let data = std::fs::read(log).unwrap();
        for e in LogEntries::new(&data) {
            let LogEntry::Batch(b) = e.unwrap() else { unreachable!() };
            if keep(b.header.base_offset) {
                from.get_or_insert(b.header.base_offset);
                bytes.extend_from_slice(b.bytes());
            }
        }
    }
    let from = from.expect("some batch kept");
    let sub = dir.join(format!("cut-{from}-{}", bytes.len()));
    std::fs::create_dir_all(&sub).unwrap();
    let log = sub.join(format!("{from:020}.log"));
    std::fs::write(&log, &bytes).unwrap();
    let (_, proto_files) = segment(fixture, &logs[0]);
    let (md, _) = segment(fixture, &log);
    let files = LogSegmentFiles { log, ..proto_files };
    (md, files, bytes)
}

/// A segment whose offsets the table holds in two separate ranges (two earlier leaders' uploads
/// with a gap between them, say): the copy appends only the gap, serves the whole segment, and
/// the table holds every offset once.
#[test]
fn a_segment_over_two_held_ranges_appends_only_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let logs = fixture_files("none", "log");
    let (low, low_files, _) = cut_segment(dir.path(), "none", &logs[..1], |o| o < 100);
    let (high, high_files, _) = cut_segment(dir.path(), "none", &logs[..1], |o| o >= 200);
    let a = rsm.copy_log_segment(&low, &low_files).unwrap();
    let b = rsm.copy_log_segment(&high, &high_files).unwrap();
    let (all, all_files, bytes) = cut_segment(dir.path(), "none", &logs, |_| true);
    let c = rsm.copy_log_segment(&all, &all_files).unwrap();
    let held = (low.end_offset - low.start_offset + 1) + (high.end_offset - high.start_offset + 1);
    assert_eq!(c.reused_rows, held as u64, "rows of both held ranges reused");
    assert_eq!(c.stats.records - c.reused_rows, (all.end_offset - all.start_offset + 1 - held) as u64);
    assert_eq!(count_rows(&rsm, &all.topic), a.stats.records + b.stats.records + c.stats.records - c.reused_rows);
    assert_eq!(count_rows(&rsm, &all.topic), (all.end_offset + 1) as u64, "every offset once");
    assert!(fetch_all(&rsm, &all, 0, None) == bytes, "the uncompressed segment comes back byte for byte");
}

/// A retried copy of a segment the table holds whole, whose sidecar is gone (deleted by hand, or
/// lost with its bucket's lifecycle rules): the copy writes the sidecar again over the rows the
/// table holds instead of failing on every attempt, and Kafka reads the segment back.
#[test]
fn a_committed_segment_without_its_sidecar_gets_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let log = &fixture_files("lz4", "log")[0];
    let (md, files) = segment("lz4", log);
    let first = rsm.copy_log_segment(&md, &files).unwrap();
    let served = fetch_all(&rsm, &md, 0, None);
    let sidecars: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.extension().is_some_and(|e| e == "sidecar")).collect();
    assert_eq!(sidecars.len(), 1, "{sidecars:?}");
    std::fs::remove_file(&sidecars[0]).unwrap();
    // A fresh process (no cached sidecar) retries the same segment id.
    drop(rsm);
    let rsm = open(dir.path());
    assert!(rsm.fetch_log_segment(&md, 0, None).unwrap_err().is_not_found());
    let again = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!(again.reused_rows, first.stats.records);
    assert!(again.data_files.is_empty(), "no row appended twice");
    assert_eq!(count_rows(&rsm, &md.topic), first.stats.records);
    assert!(fetch_all(&rsm, &md, 0, None) == served, "served as before");
}

/// A segment whose batches cycle over 40 day partitions (a backfill replaying history), more
/// than a copy writes at once: the copy reads it again per group of partitions, and still every
/// record is in the table once, each partition's rows in one data file, and Kafka reads the
/// segment back as it was.
#[test]
fn a_segment_over_many_day_partitions_is_copied_in_passes() {
    use calving_segment::synth::SynthSpec;
    let dir = tempfile::tempdir().unwrap();
    let days = 40;
    let spec = SynthSpec {
        compression: Compression::Lz4,
        value_size: 200,
        records_per_batch: 16,
        distinct_batches: days * 4,
        batch_interval_ms: 6 * 3_600_000,
        ..SynthSpec::default()
    };
    let max_ts = 1_700_000_000_000 + (days as i64) * 86_400_000;
    let (md, files, _, records) = synthetic_segment(dir.path(), "backfill", &spec, 1 << 20, max_ts);
    let rsm = open(dir.path());
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!(outcome.stats.records, records);
    let day_dirs: std::collections::BTreeSet<_> =
        outcome.data_files.iter().map(|f| f.rsplit_once('/').unwrap().0.to_string()).collect();
    assert!(day_dirs.len() >= days - 1, "{} day partitions: {day_dirs:?}", day_dirs.len());
    assert_eq!(outcome.data_files.len(), day_dirs.len(), "one data file per day partition");
    assert_eq!(count_rows(&rsm, &md.topic), records, "every record once");
    check_served(&rsm, &md, &files);
}

/// Segments copied before layout version 2 keep their sidecars of version 1, whose positions
/// are the served bytes' own: they are served as they always were, from any byte and to any
/// byte (a compressed fixture, re-compressed as lz4, and an uncompressed one), and their offset
/// index names every batch's first byte.
#[test]
fn version_1_sidecars_serve_byte_ranges() {
    use calving_layout::sidecar::Sidecar;
    let dir = tempfile::tempdir().unwrap();
    let rsm = open(dir.path());
    let mut checked = 0;
    for fixture in ["lz4", "none"] {
        let log = fixture_files(fixture, "log").into_iter().next().unwrap();
        let (md, files) = segment(fixture, &log);
        let outcome = rsm.copy_log_segment(&md, &files).unwrap();
        let whole = fetch_all(&rsm, &md, 0, None);
        // Rewrite the sidecar as version 1 wrote it: positions and sizes of the served bytes.
        let path = outcome.sidecar_location.strip_prefix("file://").unwrap();
        let mut sidecar = Sidecar::decode(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(sidecar.layout_version, 2);
        let starts: Vec<u64> = LogEntries::new(&whole).map(|e| e.unwrap().position()).collect();
        let exact = starts.iter().zip(&sidecar.batches).all(|(&s, b)| s == b.served_position);
        assert_eq!(exact, fixture == "none", "{fixture}: version 2 positions are exact only for batches served as stored");
        sidecar.layout_version = 1;
        for (k, b) in sidecar.batches.iter_mut().enumerate() {
            b.served_position = starts[k];
            b.served_size = (starts.get(k + 1).copied().unwrap_or(whole.len() as u64) - starts[k]) as u32;
        }
        std::fs::write(path, sidecar.encode()).unwrap();
        let fresh = open(dir.path()); // no cached sidecar
        assert!(fetch_all(&fresh, &md, 0, None) == whole, "{fixture}");
        let index = calving_segment::index::offset::parse(&fresh.fetch_index(&md, IndexType::Offset).unwrap()).unwrap();
        assert!(index.iter().zip(&starts[1..]).all(|(e, &s)| e.position as u64 == s), "{fixture}: entries at batch starts");
        let len = whole.len() as u64;
        for start in (0..len).step_by(997) {
            assert!(fetch_all(&fresh, &md, start, None) == whole[start as usize..], "{fixture}: from byte {start}");
            let end = (start + 3001).min(len - 1);
            assert!(fetch_all(&fresh, &md, start, Some(end)) == whole[start as usize..=end as usize], "{fixture}: {start}..={end}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}
