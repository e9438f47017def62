//! The codec against Apache Kafka itself, on real segments written by a real Kafka 4.1.2 broker
//! (`tests/fixtures/segments/`):
//!
//! - `dump_log_segments_agrees`: our parse of every fixture file (`.log`, `.index`, `.timeindex`,
//!   `.txnindex`, `.snapshot`), rendered in `DumpLogSegments`' format, equals what
//!   `kafka.tools.DumpLogSegments --deep-iteration --print-data-log` prints for the same file:
//!   offsets, positions, sizes, timestamps, keys and payloads, header keys, producer fields,
//!   control markers, CRCs and their validity.
//! - `reencoding_is_exact_or_accepted_by_kafka`: every v2 batch re-encoded from its parsed records
//!   is byte-identical when uncompressed; re-encoded with each of the five codecs, Kafka's own
//!   record parser (`FileRecords`, `ensureValid()`) accepts every batch and reads the same batch
//!   facts and records (header values included) as from the original file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use calving_segment::index::{offset, time, txn};
use calving_segment::record::batch::DEFAULT_MAX_UNCOMPRESSED;
use calving_segment::record::control::{parse_control_record, ControlRecordType};
use calving_segment::{producer_snapshot, BatchEncoder, Compression, LogEntries, LogEntry, TimestampType};
use calving_test_utils::{dump_log_segments, fixture_files, fixture_names, kafka_records_dump};
use serde_json::Value;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn optional_long(v: Option<i64>) -> String {
    v.map_or_else(|| "OptionalLong.empty".to_string(), |v| format!("OptionalLong[{v}]"))
}

fn size_of(b: Option<&[u8]>) -> i64 {
    b.map_or(-1, |b| b.len() as i64)
}

fn base_offset(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Our parse of a `.log` file, in `DumpLogSegments`' words.
fn render_log(path: &Path, out: &mut String) {
    let data = std::fs::read(path).unwrap();
    writeln!(out, "Dumping {}", path.display()).unwrap();
    writeln!(out, "Log starting offset: {}", base_offset(path)).unwrap();
    let mut scratch = Vec::new();
    for entry in LogEntries::new(&data) {
        match entry.unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            LogEntry::Batch(b) => {
                let h = &b.header;
                let ts_type = h.attributes.timestamp_type();
                writeln!(
                    out,
                    "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
                     producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {} \
                     position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {}",
                    h.base_offset,
                    h.last_offset(),
                    h.records_count,
                    h.base_sequence,
                    h.last_sequence(),
                    h.producer_id,
                    h.producer_epoch,
                    h.partition_leader_epoch,
                    h.attributes.is_transactional(),
                    h.attributes.is_control(),
                    optional_long(h.delete_horizon_ms()),
                    b.position,
                    ts_type.name(),
                    h.max_timestamp,
                    h.size_in_bytes(),
                    h.magic,
                    b.compression().name(),
                    h.crc,
                    b.computed_crc() == h.crc,
                )
                .unwrap();
                for r in b.records(&mut scratch).unwrap() {
                    let r = r.unwrap();
                    let ts = if ts_type == TimestampType::LogAppendTime {
                        h.max_timestamp
                    } else {
                        h.base_timestamp + r.timestamp_delta
                    };
                    let seq = if h.base_sequence < 0 { -1 } else { h.base_sequence.wrapping_add(r.offset_delta) };
                    let keys: Vec<String> = r.headers.iter().map(|hd| lossy(hd.key)).collect();
                    write!(
                        out,
                        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
                        h.base_offset + i64::from(r.offset_delta),
                        ts_type.name(),
                        ts,
                        size_of(r.key),
                        size_of(r.value),
                        seq,
                        keys.join(",")
                    )
                    .unwrap();
                    if h.attributes.is_control() {
                        let c = parse_control_record(&r).unwrap();
                        match c.kind {
                            ControlRecordType::Abort | ControlRecordType::Commit => write!(
                                out,
                                " endTxnMarker: {} coordinatorEpoch: {}",
                                c.kind.name(),
                                c.coordinator_epoch.unwrap()
                            )
                            .unwrap(),
                            other => panic!("unexpected control record {other:?} in a data segment"),
                        }
                    } else {
                        if let Some(k) = r.key {
                            write!(out, " key: {}", lossy(k)).unwrap();
                        }
                        if let Some(v) = r.value {
                            write!(out, " payload: {}", lossy(v)).unwrap();
                        }
                    }
                    out.push('\n');
                }
            }
            LogEntry::Legacy(l) => {
                let ts_type = l.timestamp_type();
                writeln!(
                    out,
                    "offset: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {}",
                    l.offset,
                    l.position,
                    ts_type.name(),
                    l.timestamp,
                    l.bytes().len(),
                    l.magic,
                    l.compression().unwrap().name(),
                    l.crc,
                    l.computed_crc() == l.crc,
                )
                .unwrap();
                for r in l.records(&mut scratch, DEFAULT_MAX_UNCOMPRESSED).unwrap() {
                    write!(
                        out,
                        "| offset: {} {}: {} keySize: {} valueSize: {} isValid: true crc: {}}}",
                        r.offset,
                        ts_type.name(),
                        r.timestamp,
                        size_of(r.key),
                        size_of(r.value),
                        r.crc
                    )
                    .unwrap();
                    if let Some(k) = r.key {
                        write!(out, " key: {}", lossy(k)).unwrap();
                    }
                    if let Some(v) = r.value {
                        write!(out, " payload: {}", lossy(v)).unwrap();
                    }
                    out.push('\n');
                }
            }
        }
    }
}

/// Our parse of an index, snapshot or transaction-index file, in `DumpLogSegments`' words.
fn render_side_file(path: &Path, out: &mut String) {
    let bytes = std::fs::read(path).unwrap();
    let base = base_offset(path);
    writeln!(out, "Dumping {}", path.display()).unwrap();
    let fail = |e: calving_segment::ReadError| -> ! { panic!("{}: {e}", path.display()) };
    match path.extension().unwrap().to_str().unwrap() {
        "index" => {
            let entries = offset::parse(&bytes).unwrap_or_else(|e| fail(e));
            if entries.is_empty() {
                writeln!(out, "{} is empty.", path.display()).unwrap();
            }
            for e in entries {
                writeln!(out, "offset: {} position: {}", base + i64::from(e.relative_offset), e.position).unwrap();
            }
        }
        "timeindex" => {
            for e in time::parse(&bytes).unwrap_or_else(|e| fail(e)) {
                writeln!(out, "timestamp: {} offset: {}", e.timestamp, base + i64::from(e.relative_offset)).unwrap();
            }
        }
        "txnindex" => {
            for e in txn::parse(&bytes).unwrap_or_else(|e| fail(e)) {
                writeln!(
                    out,
                    "version: {} producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
                    e.version, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
                )
                .unwrap();
            }
        }
        "snapshot" => {
            // Kafka keeps batch metadata only for entries with a last offset (`readSnapshot`); the
            // line then ends after "lastTimestamp: …" and its trailing space.
            for e in producer_snapshot::parse(&bytes).unwrap_or_else(|e| fail(e)).entries {
                let txn = (e.current_txn_first_offset >= 0).then_some(e.current_txn_first_offset);
                write!(
                    out,
                    "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} lastTimestamp: {} ",
                    e.producer_id,
                    e.producer_epoch,
                    e.coordinator_epoch,
                    optional_long(txn),
                    e.timestamp,
                )
                .unwrap();
                if e.last_offset >= 0 {
                    let first_seq = if e.last_sequence < 0 { -1 } else { e.last_sequence - e.offset_delta };
                    write!(
                        out,
                        "firstSequence: {} lastSequence: {} lastOffset: {} offsetDelta: {} timestamp: {}",
                        first_seq, e.last_sequence, e.last_offset, e.offset_delta, e.timestamp
                    )
                    .unwrap();
                }
                out.push('\n');
            }
        }
        other => panic!("no rendering for .{other}"),
    }
}

/// Splits `DumpLogSegments` output into one chunk per "Dumping <file>".
fn per_file(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("Dumping ") || chunks.is_empty() {
            chunks.push(String::new());
        }
        chunks.last_mut().unwrap().push_str(line);
    }
    chunks
}

/// Binary keys and payloads are printed as text by both sides; Java's and Rust's UTF-8 decoders
/// disagree on how many U+FFFD replace one malformed sequence. Runs of U+FFFD are collapsed on both
/// sides; the bytes themselves are compared exactly by `rust/cli/tests/dump.rs` (hex, via Kafka's
/// record parser).
fn collapse_replacements(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    for c in s.chars() {
        if !(c == '\u{FFFD}' && prev == Some('\u{FFFD}')) {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

fn first_difference(ours: &str, kafka: &str) -> String {
    for (i, (a, b)) in ours.lines().zip(kafka.lines()).enumerate() {
        if a != b {
            return format!("line {}:\n  ours:  {a}\n  kafka: {b}", i + 1);
        }
    }
    format!("line counts differ: ours {}, kafka {}", ours.lines().count(), kafka.lines().count())
}

#[test]
fn dump_log_segments_agrees() {
    let mut files: Vec<PathBuf> = Vec::new();
    for name in fixture_names() {
        for ext in ["log", "index", "timeindex", "txnindex", "snapshot"] {
            files.extend(fixture_files(&name, ext));
        }
    }
    let kafka = String::from_utf8_lossy(&dump_log_segments(&files)).into_owned();
    let kafka = per_file(&kafka);
    assert_eq!(kafka.len(), files.len(), "DumpLogSegments dumped {} of {} files", kafka.len(), files.len());
    let (mut batches, mut records) = (0, 0);
    for (file, kafka) in files.iter().zip(&kafka) {
        let mut ours = String::new();
        if file.extension().unwrap() == "log" {
            render_log(file, &mut ours);
            batches += ours.lines().filter(|l| l.starts_with("baseOffset: ") || l.starts_with("offset: ")).count();
            records += ours.lines().filter(|l| l.starts_with('|')).count();
        } else {
            render_side_file(file, &mut ours);
        }
        let (ours, kafka) = (collapse_replacements(&ours), collapse_replacements(kafka));
        assert!(ours == kafka, "{}: differs from DumpLogSegments at {}", file.display(), first_difference(&ours, &kafka));
    }
    assert!(batches > 50 && records > 500, "fixtures too small: {batches} batches, {records} records");
    eprintln!("DumpLogSegments agrees on {} files: {batches} batches, {records} records", files.len());
}

/// Re-encodes every v2 batch of `data` from its parsed records; `None` keeps each batch's codec.
fn reencode(data: &[u8], codec: Option<Compression>) -> Vec<u8> {
    let mut encoder = BatchEncoder::default();
    let (mut scratch, mut records, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for entry in LogEntries::new(data) {
        let LogEntry::Batch(b) = entry.unwrap() else { panic!("legacy entries are not re-encoded") };
        records.clear();
        for r in b.records(&mut scratch).unwrap() {
            r.unwrap().write(&mut records);
        }
        encoder.encode(&b.header, codec.unwrap_or(b.compression()), &records, &mut out).unwrap();
    }
    out
}

/// Kafka's view of a batch minus what a re-encoding may change (codec bytes, so size and CRC).
fn stable(mut v: Value) -> Value {
    if v["type"] == "batch" {
        let o = v.as_object_mut().unwrap();
        for k in ["position", "sizeInBytes", "crc", "compression", "attributes"] {
            o.remove(k);
        }
    }
    v
}

#[test]
fn reencoding_is_exact_or_accepted_by_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let mut originals = Vec::new();
    let mut reencoded = Vec::new();
    let mut exact = 0;
    for name in fixture_names().into_iter().filter(|n| !n.starts_with("legacy")) {
        for log in fixture_files(&name, "log") {
            let data = std::fs::read(&log).unwrap();
            // Same codec: uncompressed batches must come back byte for byte.
            let same = reencode(&data, None);
            for (a, b) in LogEntries::new(&data).zip(LogEntries::new(&same)) {
                let (a, b) = (a.unwrap(), b.unwrap());
                if let LogEntry::Batch(ab) = &a {
                    if ab.compression() == Compression::None {
                        assert_eq!(a.bytes(), b.bytes(), "{}: batch at {} re-encodes differently", log.display(), a.position());
                        exact += 1;
                    }
                }
            }
            for codec in Compression::ALL {
                let path = dir.path().join(format!("{name}-{}-{}.log", log.file_stem().unwrap().to_str().unwrap(), codec.name()));
                std::fs::write(&path, reencode(&data, Some(codec))).unwrap();
                originals.push(log.clone());
                reencoded.push(path);
            }
        }
    }
    assert!(exact > 30, "only {exact} uncompressed batches were compared byte for byte");
    let mut all = originals.clone();
    all.extend(reencoded.iter().cloned());
    let lines = kafka_records_dump(&all);
    let mut by_file: Vec<Vec<Value>> = Vec::new();
    for v in lines {
        match v["type"].as_str() {
            Some("file") => by_file.push(Vec::new()),
            Some("batch" | "record") => by_file.last_mut().expect("file line first").push(v),
            _ => {}
        }
    }
    assert_eq!(by_file.len(), all.len());
    let (orig, re) = by_file.split_at(originals.len());
    for ((o, r), path) in orig.iter().zip(re).zip(&reencoded) {
        assert!(r.iter().all(|v| v["type"] != "batch" || v["valid"] == true), "{}: Kafka rejects a batch", path.display());
        assert_eq!(o.len(), r.len(), "{}: different number of batches+records", path.display());
        for (a, b) in o.iter().zip(r) {
            assert_eq!(stable(a.clone()), stable(b.clone()), "{}: Kafka reads a different batch or record", path.display());
        }
    }
}
