//! The served layout on real broker segments (`tests/fixtures/segments`), through a real Parquet
//! round trip: convert → rows written with Calving's writer settings → read back → rebuild.
//!
//! Checked for every fixture segment: the rebuilt bytes have exactly the sidecar's positions and
//! sizes; originally uncompressed batches, control batches and legacy entries come back
//! byte-identical; Kafka's own record parser reads the same batch facts and records (header
//! values included) from the served file as from the original (`KafkaRecordsDump`, codec, size,
//! CRC and position aside); Kafka's `DumpLogSegments` finds no mismatch between the served
//! `.log` and the served `.index`/`.timeindex`; and the served bytes and indexes of layout
//! version 1 still hash to the committed golden values (`tests/golden/layout-v1.txt`; rewrite it
//! with `CALVING_BLESS=1` only when adding fixtures, never to make a layout change pass).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use bytes::Bytes;
use calving_layout::convert::{ChunkLimits, SegmentConverter, SideFiles};
use calving_layout::parquet_props::writer_properties;
use calving_layout::rows::RowsView;
use calving_layout::schema::{default_arrow_schema, TargetColumns};
use calving_layout::served::{self, Rebuilder, RowRef};
use calving_layout::sidecar::{SegmentIdentity, Sidecar};
use calving_layout::LayoutError;
use calving_segment::index::offset;
use calving_segment::{Compression, LogEntries, LogEntry};
use calving_test_utils::{fixture_files, fixture_names, kafka_reads};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

struct Converted {
    sidecar: Sidecar,
    parquet: Bytes,
}

fn read_opt(path: PathBuf) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn convert(log: &Path) -> Converted {
    convert_within(log, None).0
}

/// [`convert`], with the served layout limited to `limit` bytes when given.
fn convert_within(log: &Path, limit: Option<u64>) -> (Converted, calving_layout::convert::ConvertStats) {
    let data = std::fs::read(log).unwrap();
    let base: i64 = log.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let identity = SegmentIdentity {
        topic: "fixture".into(),
        topic_id: [3; 16],
        partition: 0,
        segment_id: [4; 16],
        start_offset: base,
        end_offset: base,
        segment_size: data.len() as u64,
        max_timestamp_ms: 0,
    };
    let target = TargetColumns::locate(default_arrow_schema()).unwrap();
    // Small chunks so rows of one batch span several chunks and files' row groups.
    let limits = ChunkLimits { max_rows: 37, max_bytes: 64 * 1024 };
    let mut conv = SegmentConverter::new(target, identity, limits);
    if let Some(limit) = limit {
        conv = conv.with_served_limit(limit);
    }
    let mut writer = ArrowWriter::try_new(Vec::new(), default_arrow_schema(), Some(writer_properties(1))).unwrap();
    let mut sink = |chunk: RecordBatch| -> Result<(), LayoutError> {
        writer.write(&chunk).unwrap();
        Ok(())
    };
    for entry in LogEntries::new(&data) {
        conv.push(&entry.unwrap(), &mut sink).unwrap();
    }
    let side = SideFiles {
        offset_index: read_opt(log.with_extension("index")).unwrap_or_default(),
        time_index: read_opt(log.with_extension("timeindex")).unwrap_or_default(),
        txn_index: read_opt(log.with_extension("txnindex")),
        producer_snapshot: Vec::new(),
        leader_epoch: Vec::new(),
    };
    let (sidecar, stats) = conv.finish(side, &mut sink).unwrap();
    assert_eq!(stats.batches as usize, sidecar.batches.len());
    let parquet = Bytes::from(writer.into_inner().unwrap());
    // The sidecar survives its own encoding.
    let sidecar = Sidecar::decode(&sidecar.encode()).unwrap();
    (Converted { sidecar, parquet }, stats)
}

fn serve(c: &Converted) -> Vec<u8> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(c.parquet.clone()).unwrap().build().unwrap();
    let views: Vec<RowsView> = reader.map(|b| RowsView::new(&b.unwrap()).unwrap()).collect();
    let mut rows = views.iter().flat_map(|view| (0..view.len()).map(move |row| RowRef { view, row }));
    let mut out = Vec::new();
    Rebuilder::default().rebuild_range(&c.sidecar, 0..c.sidecar.batches.len(), &mut rows, &mut out).unwrap();
    assert!(rows.next().is_none(), "rows left over");
    out
}

fn all_logs() -> Vec<PathBuf> {
    fixture_names().iter().flat_map(|n| fixture_files(n, "log")).collect()
}

#[test]
fn served_bytes_match_sidecar_and_originals() {
    let (mut identical, mut relayered) = (0, 0);
    for log in all_logs() {
        let original = std::fs::read(&log).unwrap();
        let c = convert(&log);
        let served = serve(&c);
        assert_eq!(served.len() as u64, served::served_size(&c.sidecar.batches), "{}", log.display());
        let entries: Vec<LogEntry> = LogEntries::new(&served).map(Result::unwrap).collect();
        let originals: Vec<LogEntry> = LogEntries::new(&original).map(Result::unwrap).collect();
        assert_eq!(entries.len(), originals.len(), "{}", log.display());
        for ((s, o), b) in entries.iter().zip(&originals).zip(&c.sidecar.batches) {
            assert_eq!(s.position(), b.served_position);
            s.verify_crc().unwrap();
            let same_bytes = match o {
                LogEntry::Batch(ob) => ob.compression() == Compression::None || ob.header.attributes.is_control(),
                LogEntry::Legacy(_) => true,
            };
            if same_bytes {
                assert_eq!(s.bytes(), o.bytes(), "{} batch at {} differs", log.display(), o.position());
                identical += 1;
            } else {
                let (LogEntry::Batch(sb), LogEntry::Batch(ob)) = (s, o) else { unreachable!() };
                assert_eq!(sb.compression(), Compression::Lz4);
                let mut h = sb.header.clone();
                h.attributes = h.attributes.with_compression(ob.compression());
                h.crc = ob.header.crc;
                h.batch_length = ob.header.batch_length;
                assert_eq!(h, ob.header);
                let (mut x, mut y) = (Vec::new(), Vec::new());
                let a: Vec<_> = sb.records(&mut x).unwrap().map(Result::unwrap).collect();
                let b: Vec<_> = ob.records(&mut y).unwrap().map(Result::unwrap).collect();
                assert_eq!(a, b);
                relayered += 1;
            }
        }
        // Invariant 3, exactly: every served offset-index entry is (a batch's base offset, that
        // batch's served position), for every batch after the first, so a lookup lands on the
        // batch holding the offset.
        let base = c.sidecar.segment.start_offset;
        let index = offset::parse(&served::offset_index(&c.sidecar.batches, base)).unwrap();
        assert_eq!(index.len(), entries.len().saturating_sub(1), "{}", log.display());
        for (e, s) in index.iter().zip(entries.iter().skip(1)) {
            assert_eq!(e.position as u64, s.position());
            let first_offset = match s {
                LogEntry::Batch(b) => b.header.base_offset,
                LogEntry::Legacy(l) => {
                    let mut scratch = Vec::new();
                    l.records(&mut scratch, 1 << 30).unwrap()[0].offset
                }
            };
            assert_eq!(base + i64::from(e.relative_offset), first_offset, "{}", log.display());
        }
    }
    assert!(identical > 60 && relayered > 50, "{identical} identical, {relayered} re-encoded batches");
}

/// Kafka's record parser sees the same batches and records in the served file.
#[test]
fn kafka_reads_served_segments_like_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut dumps = Vec::new();
    for (i, log) in all_logs().iter().enumerate() {
        let c = convert(log);
        let served = serve(&c);
        let sub = dir.path().join(format!("{i}"));
        std::fs::create_dir(&sub).unwrap();
        let name = log.file_name().unwrap();
        let path = sub.join(name);
        std::fs::write(&path, &served).unwrap();
        let base = c.sidecar.segment.start_offset;
        std::fs::write(path.with_extension("index"), served::offset_index(&c.sidecar.batches, base)).unwrap();
        std::fs::write(path.with_extension("timeindex"), served::time_index(&c.sidecar.batches, base)).unwrap();
        files.push(log.clone());
        files.push(path.clone());
        dumps.push(path.with_extension("index"));
        dumps.push(path.with_extension("timeindex"));
    }
    let by_file = kafka_reads(&files);
    for (pair, log) in by_file.chunks(2).zip(all_logs()) {
        assert!(pair[1].iter().all(|v| v["type"] != "batch" || v["valid"] == true), "{}", log.display());
        assert_eq!(pair[0], pair[1], "{}: Kafka reads the served segment differently", log.display());
    }
    // Kafka's own checks on the served indexes: the sanity check a broker runs when it loads them,
    // and DumpLogSegments' time-index verification against the served log (its offset-index
    // verification expects Kafka's sparse "last offset of an append" entries, which layout v1
    // deliberately does not use: see calving_layout::served).
    let out = calving_test_utils::dump_log_segments_output(&dumps, &["--index-sanity-check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passed = String::from_utf8_lossy(&out.stdout).matches("passed sanity check").count();
    let empty = String::from_utf8_lossy(&out.stdout).matches("is empty").count();
    assert_eq!(passed + empty, dumps.len(), "{}", String::from_utf8_lossy(&out.stdout));
    let timeindexes: Vec<_> = dumps.iter().filter(|p| p.extension().unwrap() == "timeindex").cloned().collect();
    let out = calving_test_utils::dump_log_segments_output(&timeindexes, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("mismatch") && !stderr.contains("not found") && !stderr.contains("out of order"), "{stderr}");
}

#[test]
fn golden_layout_v1() {
    let mut text = String::new();
    for log in all_logs() {
        let c = convert(&log);
        let served = serve(&c);
        let base = c.sidecar.segment.start_offset;
        let rel = log.strip_prefix(calving_test_utils::fixtures_dir()).unwrap();
        writeln!(
            text,
            "{} served={} crc={:08x} index={:08x} timeindex={:08x}",
            rel.display(),
            served.len(),
            crc32c::crc32c(&served),
            crc32c::crc32c(&served::offset_index(&c.sidecar.batches, base)),
            crc32c::crc32c(&served::time_index(&c.sidecar.batches, base)),
        )
        .unwrap();
    }
    let golden = calving_test_utils::package_dir().join("tests/golden/layout-v1.txt");
    if std::env::var_os("CALVING_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("tests/golden/layout-v1.txt");
    assert_eq!(text, expected, "served layout v1 changed: a broker's cached indexes would no longer match");
}

/// A segment whose lz4 re-encode would pass the served-size limit (Kafka's 2 GiB positions;
/// lowered here to just above the segment's own size): the batches that would take it past are
/// kept verbatim, the served layout stays within the limit, every record is still a row, and
/// Kafka's parser reads the same records from it as from the original.
#[test]
fn served_layout_stays_within_kafkas_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for fixture in ["zstd", "gzip"] {
        for log in fixture_files(fixture, "log") {
            let original = std::fs::read(&log).unwrap();
            let (_, free_stats) = convert_within(&log, None);
            let grows = free_stats.served_bytes as i64 - original.len() as i64;
            if grows <= 64 {
                continue; // lz4 is not larger than the original here: nothing to limit
            }
            let limit = original.len() as u64 + (grows / 2) as u64;
            let (c, stats) = convert_within(&log, Some(limit));
            assert!(stats.served_bytes <= limit, "{}: {} > {limit}", log.display(), stats.served_bytes);
            assert!(stats.verbatim_for_size > 0 && stats.verbatim_for_size < stats.batches, "{stats:?}");
            assert_eq!(stats.records, free_stats.records, "every record is a row");
            let served = serve(&c);
            assert_eq!(served.len() as u64, stats.served_bytes);
            let path = dir.path().join(format!("{checked}-{}", log.file_name().unwrap().to_str().unwrap()));
            std::fs::write(&path, &served).unwrap();
            let reads = kafka_reads(&[log.clone(), path]);
            assert!(reads[1].iter().all(|v| v["type"] != "batch" || v["valid"] == true), "{}", log.display());
            assert_eq!(reads[0], reads[1], "{}: Kafka reads the limited served segment differently", log.display());
            checked += 1;
        }
    }
    assert!(checked > 0, "no fixture segment grows when served as lz4");
}
