//! Reading served segments the way the broker does (`RemoteLogManager.read`, apache/kafka
//! 3.9–4.4): look the fetch offset up in the served offset index (largest entry ≤ offset, else
//! position 0), open `fetchLogSegment` there, walk batch headers sequentially
//! (`RemoteLogInputStream`), skip batches that end before the offset, take up to `maxBytes`, and
//! for `read_committed` compute the aborted-transaction upper bound from the served index
//! (`OffsetIndex.fetchUpperBoundOffset`: the first entry positioned at or after the fetch
//! position + the bytes returned, else the segment's end + 1; the fetch position is the lookup
//! position, plus the bytes skipped in later versions: both are checked) and collect aborted
//! transactions from the served transaction index. Positions are the broker's to pass around
//! only: nothing here assumes they are byte positions (layout versions 2 and 3's are lower bounds).
//!
//! For every offset of the transactional fixture (lz4 batches: re-compressed in version 2 and
//! served uncompressed in version 3, `served.compression=none`; in both the positions fall short
//! of the bytes), in both versions, and several fetch sizes: a fetch from a position starts at
//! the batch the index entry names, the first record the consumer gets is the first record at
//! or after the fetch offset (nothing skipped), and every record of an aborted transaction in
//! the returned batches is covered by a collected aborted transaction (no aborted record handed
//! to a `read_committed` consumer as committed).

use std::collections::HashMap;
use std::io::Read;

use calving_rsm::{IndexType, RemoteStorage};
use calving_segment::index::{offset, txn};
use calving_segment::{LogEntries, LogEntry};
use calving_test_utils::{fixture_files, fixtures_dir};

mod common;

struct Batch {
    base: i64,
    producer_id: i64,
    transactional: bool,
    control: bool,
    offsets: Vec<i64>,
}

/// `RemoteLogInputStream`: complete batches from the stream, in order.
fn walk(bytes: &[u8]) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for e in LogEntries::new(bytes) {
        let Ok(LogEntry::Batch(b)) = e else { break }; // a trailing partial batch ends the walk
        let offsets = b.records(&mut scratch).unwrap().map(|r| b.header.base_offset + i64::from(r.unwrap().offset_delta)).collect();
        out.push(Batch {
            base: b.header.base_offset,
            producer_id: b.header.producer_id,
            transactional: b.header.attributes.is_transactional(),
            control: b.header.attributes.is_control(),
            offsets,
        });
    }
    out
}

#[test]
fn broker_reads_find_every_offset_and_bound_aborted_transactions() {
    broker_reads("lz4");
}

#[test]
fn broker_reads_of_batches_served_uncompressed() {
    broker_reads("none");
}

fn broker_reads(served_compression: &str) {
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([
        ("warehouse".to_string(), format!("file://{}/w", dir.path().display())),
        ("served.compression".to_string(), served_compression.to_string()),
    ]);
    let rsm = RemoteStorage::open(&props).unwrap();
    let logs = fixture_files("txn", "log");
    let (mut checked, mut checked_aborted) = (0, 0);
    for log in &logs {
        let (md, files) = common::segment("txn", log);
        rsm.copy_log_segment(&md, &files).unwrap();
        let index = offset::parse(&rsm.fetch_index(&md, IndexType::Offset).unwrap()).unwrap();
        let aborted = match rsm.fetch_index(&md, IndexType::Transaction) {
            Ok(b) => txn::parse(&b).unwrap(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => panic!("{e}"),
        };
        // The original's records, and which of them belong to aborted transactions.
        let original = walk(&std::fs::read(log).unwrap());
        let all_offsets: Vec<i64> = original.iter().filter(|b| !b.control).flat_map(|b| b.offsets.clone()).collect();
        let is_aborted = |pid: i64, o: i64| aborted.iter().any(|t| t.producer_id == pid && t.first_offset <= o && o <= t.last_offset);
        let mut whole = Vec::new();
        rsm.fetch_log_segment(&md, 0, None).unwrap().read_to_end(&mut whole).unwrap();
        let served_batches = walk(&whole);
        assert_eq!(index.len() + 1, served_batches.len());
        for (e, b) in index.iter().zip(&served_batches[1..]) {
            assert_eq!(md.start_offset + i64::from(e.relative_offset), b.base, "one entry per batch after the first");
        }
        let is_compressed = |bytes: &[u8]| {
            LogEntries::new(bytes).any(|e| matches!(e, Ok(LogEntry::Batch(b)) if b.compression() != calving_segment::Compression::None))
        };
        let original_bytes = std::fs::read(log).unwrap();
        // Version 3 serves nothing compressed, version 2 re-compresses what was.
        assert_eq!(is_compressed(&whole), served_compression == "lz4" && is_compressed(&original_bytes), "{}", log.display());
        if is_compressed(&original_bytes) {
            // Versions 2 and 3: some position falls short of its batch's byte position.
            let mut byte_positions = LogEntries::new(&whole).skip(1).map(|e| e.unwrap().position());
            assert!(index.iter().any(|e| byte_positions.next() != Some(e.position as u64)), "{}: positions are exact", log.display());
        }
        for max_bytes in [100usize, 700, 4096, 1 << 20] {
            for target in md.start_offset..=md.end_offset {
                // RemoteIndexCache.lookupOffset: the position to start reading at.
                let entry = offset::lookup(&index, (target - md.start_offset) as i32);
                let start = entry.position as usize;
                let mut tail = Vec::new();
                rsm.fetch_log_segment(&md, start as u64, None).unwrap().read_to_end(&mut tail).unwrap();
                assert!(whole.ends_with(&tail), "a fetch from {start} is a tail of the segment");
                let tail_at = whole.len() - tail.len();
                // It starts with the batch the entry names (position 0: the first batch).
                let first_base = LogEntries::new(&tail).next().map(|e| match e.unwrap() {
                    LogEntry::Batch(b) => b.header.base_offset,
                    LogEntry::Legacy(_) => unreachable!(),
                });
                assert_eq!(first_base, Some(md.start_offset + i64::from(entry.relative_offset)), "offset {target}: fetch from {start}");
                // Skip batches that end before the fetch offset.
                let mut first_pos = tail_at;
                let mut found = false;
                for e in LogEntries::new(&tail) {
                    let LogEntry::Batch(b) = e.unwrap() else { unreachable!() };
                    if b.header.last_offset() >= target {
                        found = true;
                        break;
                    }
                    first_pos += b.bytes().len();
                }
                let skipped = first_pos - tail_at;
                let expected = all_offsets.iter().copied().find(|&o| o >= target);
                if !found {
                    assert_eq!(expected, None, "offset {target}: the served segment ends before a record that follows");
                    continue;
                }
                // The first batch whole (min-one-message), then raw bytes up to maxBytes.
                let first_len = LogEntries::new(&whole[first_pos..]).next().unwrap().unwrap().bytes().len();
                let returned = &whole[first_pos..(first_pos + max_bytes.max(first_len)).min(whole.len())];
                let got = walk(returned);
                assert!(!got.is_empty());
                let consumer = got.iter().filter(|b| !b.control).flat_map(|b| b.offsets.iter().copied()).find(|&o| o >= target);
                if consumer.is_some() || got.iter().all(|b| b.control) {
                    let in_returned = got.iter().filter(|b| !b.control).flat_map(|b| b.offsets.iter().copied()).any(|o| o >= target);
                    if in_returned {
                        assert_eq!(consumer, expected, "offset {target}, maxBytes {max_bytes}: a record was skipped");
                    }
                }
                // read_committed (RemoteLogManager.addAbortedTransactions): the upper bound is the
                // first served-index entry positioned at or after the fetch position + the bytes
                // returned; the fetch position is the lookup position, or (later Kafka versions)
                // that plus the bytes skipped.
                for fetch_position in [start, start + skipped] {
                    let end = (fetch_position + returned.len()) as i32;
                    let upper = index
                        .iter()
                        .find(|e| e.position >= end)
                        .map_or(md.end_offset + 1, |e| md.start_offset + i64::from(e.relative_offset));
                    let first_base = got[0].base;
                    let collected: Vec<_> = aborted.iter().filter(|t| t.last_offset >= first_base && t.first_offset < upper).collect();
                    for b in got.iter().filter(|b| b.transactional && !b.control) {
                        for &o in b.offsets.iter().filter(|&&o| is_aborted(b.producer_id, o)) {
                            assert!(
                                collected.iter().any(|t| t.producer_id == b.producer_id && t.first_offset <= o && o <= t.last_offset),
                                "offset {target}, maxBytes {max_bytes}: aborted record {o} not covered (upper bound {upper})"
                            );
                            checked_aborted += 1;
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 300 && checked_aborted > 50, "{checked} reads, {checked_aborted} aborted records checked");
    let _ = fixtures_dir();
}
