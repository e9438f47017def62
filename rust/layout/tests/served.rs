//! The served layout on real broker segments (`tests/fixtures/segments`), through a real Parquet
//! round trip: convert → rows written with Calving's writer settings → read back → rebuild.
//!
//! Checked for every fixture segment: the sidecar's positions (layout version 2, what copies
//! write by default) are lower bounds of the rebuilt bytes' positions, exact for batches served
//! as stored; the same segment with version 1's exact positions (what earlier copies wrote:
//! positions of the rebuilt bytes, [`exact`]) serves the same bytes with exactly its sizes;
//! version 3 (`served.compression=none`) serves every batch of rows uncompressed with exactly its
//! size, its positions advancing by no more than the batch's bytes nor its original size;
//! originally uncompressed batches, control batches and legacy entries come back byte-identical
//! in every version; Kafka's own record parser reads the same batch facts and records (header
//! values included) from the served files of versions 2 and 3 as from the original
//! (`KafkaRecordsDump`, codec, size, CRC and position aside); Kafka's `DumpLogSegments` finds no
//! mismatch between a served `.log` and the served `.timeindex` of any version; and the served
//! bytes and every version's indexes still hash to the committed golden values
//! (`tests/golden/layout-v1.txt`, `layout-v2.txt`, `layout-v3.txt`; rewrite them with
//! `CALVING_BLESS=1` only when adding fixtures or a version, never to make a layout change pass).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use bytes::Bytes;
use calving_layout::convert::{ChunkLimits, SegmentConverter, SideFiles};
use calving_layout::parquet_props::writer_properties;
use calving_layout::rows::RowsView;
use calving_layout::schema::{default_arrow_schema, TargetColumns};
use calving_layout::served::{self, Layout, Rebuilder, RowRef};
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
    convert_stats(log, Layout::CURRENT).0
}

/// The segment copied with `served.compression=none`.
fn convert_v3(log: &Path) -> Converted {
    convert_stats(log, Layout::UNCOMPRESSED).0
}

fn convert_stats(log: &Path, layout: Layout) -> (Converted, calving_layout::convert::ConvertStats) {
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
    let mut conv = SegmentConverter::new(target, identity, limits).with_layout(layout).unwrap();
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
    assert_eq!(sidecar.layout_version, layout.version());
    (Converted { sidecar, parquet }, stats)
}

/// The same segment in layout version 1: positions and sizes of the bytes it serves, as copies
/// before version 2 wrote them.
fn exact(c: &Converted, served: &[u8]) -> Converted {
    let mut sidecar = c.sidecar.clone();
    sidecar.layout_version = 1;
    for (b, e) in sidecar.batches.iter_mut().zip(LogEntries::new(served)) {
        let e = e.unwrap();
        b.served_position = e.position();
        b.served_size = e.bytes().len() as u32;
    }
    let sidecar = Sidecar::decode(&sidecar.encode()).unwrap();
    Converted { sidecar, parquet: c.parquet.clone() }
}

fn layout(c: &Converted) -> Layout {
    Layout::of(c.sidecar.layout_version).unwrap()
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

/// `served` is `original` served with `codec`: the same batch facts (the codec bits, the CRC and
/// the length aside) and the same records.
fn assert_same_but_codec(served: &calving_segment::RecordBatch<'_>, original: &calving_segment::RecordBatch<'_>, codec: Compression) {
    assert_eq!(served.compression(), codec, "batch at {}", original.position);
    let mut h = served.header.clone();
    h.attributes = h.attributes.with_compression(original.compression());
    h.crc = original.header.crc;
    h.batch_length = original.header.batch_length;
    assert_eq!(h, original.header);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let a: Vec<_> = served.records(&mut x).unwrap().map(Result::unwrap).collect();
    let b: Vec<_> = original.records(&mut y).unwrap().map(Result::unwrap).collect();
    assert_eq!(a, b, "batch at {}", original.position);
}

#[test]
fn served_bytes_match_sidecar_and_originals() {
    let (mut identical, mut relayered) = (0, 0);
    for log in all_logs() {
        let original = std::fs::read(&log).unwrap();
        let c = convert(&log);
        let served = serve(&c);
        let entries: Vec<LogEntry> = LogEntries::new(&served).map(Result::unwrap).collect();
        let originals: Vec<LogEntry> = LogEntries::new(&original).map(Result::unwrap).collect();
        assert_eq!(entries.len(), originals.len(), "{}", log.display());
        // Version 1's exact twin serves the same bytes (its rebuild checks every size).
        let v1 = exact(&c, &served);
        assert_eq!(serve(&v1), served, "{}", log.display());
        assert_eq!(served.len() as u64, served::served_size(Layout::V1, &v1.sidecar.batches), "{}", log.display());
        let mut position = 0;
        for ((s, o), b) in entries.iter().zip(&originals).zip(&c.sidecar.batches) {
            // Version 2: positions are the running sum of sizes that never exceed the served
            // batch's, exact for batches served as stored, and within the original's size.
            assert_eq!(b.served_position, position, "{}", log.display());
            position += u64::from(b.served_size);
            assert!(b.served_position <= s.position() && b.served_size as usize <= s.bytes().len(), "{}", log.display());
            assert!(b.served_size <= b.original_size, "{}", log.display());
            s.verify_crc().unwrap();
            let same_bytes = match o {
                LogEntry::Batch(ob) => ob.compression() == Compression::None || ob.header.attributes.is_control(),
                LogEntry::Legacy(_) => true,
            };
            if same_bytes {
                assert_eq!(b.served_size as usize, s.bytes().len(), "{}: a batch served as stored has its exact size", log.display());
                assert_eq!(s.bytes(), o.bytes(), "{} batch at {} differs", log.display(), o.position());
                identical += 1;
            } else {
                let (LogEntry::Batch(sb), LogEntry::Batch(ob)) = (s, o) else { unreachable!() };
                assert_same_but_codec(sb, ob, Compression::Lz4);
                relayered += 1;
            }
        }
        // Invariant 3: every served offset-index entry is (a batch's base offset, that batch's
        // position), for every batch after the first, so a lookup lands on the batch holding
        // the offset, and the position leads back to that batch (version 1: its first byte).
        let base = c.sidecar.segment.start_offset;
        for c in [&c, &v1] {
            let index = offset::parse(&served::offset_index(&c.sidecar.batches, base)).unwrap();
            assert_eq!(index.len(), entries.len().saturating_sub(1), "{}", log.display());
            for (k, (e, s)) in index.iter().zip(entries.iter().skip(1)).enumerate() {
                assert_eq!(served::batch_at(layout(c), &c.sidecar.batches, e.position as u64), Some(k + 1));
                if layout(c).exact() {
                    assert_eq!(e.position as u64, s.position());
                }
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
    }
    assert!(identical > 60 && relayered > 50, "{identical} identical, {relayered} re-encoded batches");
}

/// Version 3: every batch of rows served uncompressed, holding the original's records and
/// batch facts (codec bits, CRC and length aside), with its exact size in the sidecar; positions
/// are the running sum of spans that exceed neither the batch's served bytes nor its original
/// size; batches served as stored in version 2 are served the same in version 3; and every
/// offset-index entry leads back to its batch.
#[test]
fn version_3_serves_every_batch_uncompressed() {
    let (mut same, mut decompressed, mut smaller) = (0, 0, 0);
    for log in all_logs() {
        let original = std::fs::read(&log).unwrap();
        let c = convert_v3(&log);
        let v2 = convert(&log);
        let served = serve(&c);
        let served_v2 = serve(&v2);
        let entries: Vec<LogEntry> = LogEntries::new(&served).map(Result::unwrap).collect();
        let entries_v2: Vec<LogEntry> = LogEntries::new(&served_v2).map(Result::unwrap).collect();
        let originals: Vec<LogEntry> = LogEntries::new(&original).map(Result::unwrap).collect();
        assert_eq!(entries.len(), originals.len(), "{}", log.display());
        let mut position = 0;
        for (((s, o), s2), b) in entries.iter().zip(&originals).zip(&entries_v2).zip(&c.sidecar.batches) {
            assert_eq!(b.served_position, position, "{}", log.display());
            let span = Layout::V3.span(b);
            position += span;
            assert_eq!(b.served_size as usize, s.bytes().len(), "{}: version 3 sizes are exact", log.display());
            assert!(span <= s.bytes().len() as u64 && span <= u64::from(b.original_size), "{}", log.display());
            assert!(b.served_position <= o.position(), "{}: positions stay within the segment's", log.display());
            s.verify_crc().unwrap();
            match (s, o) {
                (LogEntry::Batch(sb), LogEntry::Batch(ob)) if ob.compression() != Compression::None && !ob.header.attributes.is_control() => {
                    assert_same_but_codec(sb, ob, Compression::None);
                    decompressed += 1;
                    if (span as usize) < s.bytes().len() {
                        smaller += 1;
                    }
                }
                _ => {
                    assert_eq!(s.bytes(), o.bytes(), "{} batch at {} differs", log.display(), o.position());
                    assert_eq!(s.bytes(), s2.bytes());
                    same += 1;
                }
            }
        }
        assert_eq!(served::served_size(Layout::V3, &c.sidecar.batches), position);
        let base = c.sidecar.segment.start_offset;
        let index = offset::parse(&served::offset_index(&c.sidecar.batches, base)).unwrap();
        assert_eq!(index.len(), entries.len().saturating_sub(1), "{}", log.display());
        for (k, e) in index.iter().enumerate() {
            assert_eq!(served::batch_at(Layout::V3, &c.sidecar.batches, e.position as u64), Some(k + 1));
        }
    }
    // The fixtures' compressed batches shrank when compressed: their spans are their original
    // sizes, below what version 3 serves.
    assert!(same > 60 && decompressed > 50 && smaller > 50, "{same} as stored, {decompressed} served uncompressed, {smaller} spans below the bytes");
}

/// Kafka's record parser sees the same batches and records in the served files, and Kafka's
/// index checks accept every version's indexes.
#[test]
fn kafka_reads_served_segments_like_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let (mut sanity, mut timeindexes) = (Vec::new(), Vec::new());
    for (i, log) in all_logs().iter().enumerate() {
        let c = convert(log);
        let served = serve(&c);
        let v1 = exact(&c, &served);
        let base = c.sidecar.segment.start_offset;
        let name = log.file_name().unwrap();
        // One directory per version: the served log, version 1's offset index (DumpLogSegments
        // finds a time-index entry's batch through the offset index, so it must hold byte
        // positions) and the version's time index; and the version's own offset index beside the
        // log in another, for the sanity check.
        for (v, c) in [("v1", &v1), ("v2", &c)] {
            let sub = dir.path().join(format!("{i}-{v}"));
            std::fs::create_dir(&sub).unwrap();
            let path = sub.join(name);
            std::fs::write(&path, &served).unwrap();
            std::fs::write(path.with_extension("index"), served::offset_index(&v1.sidecar.batches, base)).unwrap();
            std::fs::write(path.with_extension("timeindex"), served::time_index(layout(c), &c.sidecar.batches, base)).unwrap();
            sanity.push(path.with_extension("timeindex"));
            timeindexes.push(path.with_extension("timeindex"));
            if v == "v1" {
                files.push(log.clone());
                files.push(path.clone());
            }
            let only = dir.path().join(format!("{i}-{v}-index"));
            std::fs::create_dir(&only).unwrap();
            std::fs::write(only.join(name), &served).unwrap();
            std::fs::write(only.join(name).with_extension("index"), served::offset_index(&c.sidecar.batches, base)).unwrap();
            sanity.push(only.join(name).with_extension("index"));
        }
        // Version 3's own served bytes, the same way.
        let c3 = convert_v3(log);
        let served3 = serve(&c3);
        let exact3 = exact(&c3, &served3);
        let sub = dir.path().join(format!("{i}-v3"));
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join(name);
        std::fs::write(&path, &served3).unwrap();
        std::fs::write(path.with_extension("index"), served::offset_index(&exact3.sidecar.batches, base)).unwrap();
        std::fs::write(path.with_extension("timeindex"), served::time_index(Layout::V3, &c3.sidecar.batches, base)).unwrap();
        sanity.push(path.with_extension("timeindex"));
        timeindexes.push(path.with_extension("timeindex"));
        files.push(path);
        let only = dir.path().join(format!("{i}-v3-index"));
        std::fs::create_dir(&only).unwrap();
        std::fs::write(only.join(name), &served3).unwrap();
        std::fs::write(only.join(name).with_extension("index"), served::offset_index(&c3.sidecar.batches, base)).unwrap();
        sanity.push(only.join(name).with_extension("index"));
    }
    let by_file = kafka_reads(&files);
    for (reads, log) in by_file.chunks(3).zip(all_logs()) {
        for (version, served) in [(2, &reads[1]), (3, &reads[2])] {
            assert!(served.iter().all(|v| v["type"] != "batch" || v["valid"] == true), "{}", log.display());
            assert_eq!(&reads[0], served, "{}: Kafka reads the served segment of layout v{version} differently", log.display());
        }
    }
    // Kafka's own checks on the served indexes: the sanity check a broker runs when it loads them,
    // and DumpLogSegments' time-index verification against the served log (its offset-index
    // verification expects Kafka's sparse "last offset of an append" entries, which the served
    // layouts deliberately do not use: see calving_layout::served).
    let out = calving_test_utils::dump_log_segments_output(&sanity, &["--index-sanity-check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passed = String::from_utf8_lossy(&out.stdout).matches("passed sanity check").count();
    let empty = String::from_utf8_lossy(&out.stdout).matches("is empty").count();
    assert_eq!(passed + empty, sanity.len(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = calving_test_utils::dump_log_segments_output(&timeindexes, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("mismatch") && !stderr.contains("not found") && !stderr.contains("out of order"), "{stderr}");
}

/// The served bytes and indexes of every layout version, pinned: a broker's cached indexes of a
/// segment copied by any release must keep matching what later releases serve.
#[test]
fn golden_layouts() {
    for version in [1u16, 2, 3] {
        let mut text = String::new();
        for log in all_logs() {
            let c = if version == 3 { convert_v3(&log) } else { convert(&log) };
            let served = serve(&c);
            let c = if version == 1 { exact(&c, &served) } else { c };
            let base = c.sidecar.segment.start_offset;
            let rel = log.strip_prefix(calving_test_utils::fixtures_dir()).unwrap();
            writeln!(
                text,
                "{} served={} crc={:08x} index={:08x} timeindex={:08x}",
                rel.display(),
                served.len(),
                crc32c::crc32c(&served),
                crc32c::crc32c(&served::offset_index(&c.sidecar.batches, base)),
                crc32c::crc32c(&served::time_index(layout(&c), &c.sidecar.batches, base)),
            )
            .unwrap();
        }
        let golden = calving_test_utils::package_dir().join(format!("tests/golden/layout-v{version}.txt"));
        if std::env::var_os("CALVING_BLESS").is_some() {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(text, expected, "served layout v{version} changed: a broker's cached indexes would no longer match");
    }
}
