//! The served layouts: the bytes `fetchLogSegment` returns for a segment, as a pure function of
//! what was stored (DESIGN.md invariant 2), and the offset and time indexes the broker gets for
//! them (invariant 3). Three versions; a sidecar says which one it follows.
//!
//! ## The served bytes (all versions)
//! - Batches are served in their original order, one served batch per original batch, back to
//!   back.
//! - A batch whose records are rows ([`BatchKind::Rows`]) is rebuilt from its rows and the
//!   sidecar's batch facts and record exceptions, with a fresh CRC-32C. Originally uncompressed
//!   batches are served uncompressed and come back byte-identical. Originally compressed batches
//!   (any codec) are served as lz4 (Kafka's LZ4 frame, 64 KiB independent blocks) by the pinned,
//!   deterministic encoder of `calving-segment` in versions 1 and 2: only the compression bytes
//!   differ from the original. Version 3 (`served.compression=none`) serves them uncompressed:
//!   the batch's codec bits and compression bytes differ, nothing else (its records, facts and
//!   every other attribute bit are the original's).
//! - Control batches and legacy (v0/v1) entries are served verbatim from the sidecar.
//! - Schema modes do not change the bytes: a row whose value is in columns
//!   (`kafka.value_schema_id` set, `value` null) gets its value re-encoded from the columns with
//!   the writer schema the sidecar keeps (with the Confluent header for [`Framing::Prefixed`]),
//!   which gives back the original bytes (the lossless check at conversion guarantees it); a row
//!   with a `value` cell (raw mode, raw fallback) serves it as it is. Keys in columns (the top-level
//!   `key` struct, `kafka.key_schema_id` set) are re-encoded the same way with the sidecar's key
//!   schemas.
//!
//! ## Positions: what the versions differ in
//! Each batch has a served position and size in the sidecar ([`BatchEntry::served_position`],
//! [`BatchEntry::served_size`]); the offset index has one entry per batch after the first: (the
//! batch's base offset, its position). A broker lookup (largest entry ≤ the fetch offset)
//! therefore lands on the very batch holding the offset, and `fetchLogSegment` from that
//! position starts with that batch.
//!
//! - **Version 1: byte positions.** Position and size are those of the served bytes, exactly.
//!   Knowing the size of a batch served as lz4 means compressing it when the segment is copied,
//!   a quarter of a compressed segment's copy (BENCHMARKS.md), for data most of which Kafka never
//!   reads back.
//! - **Version 2: positions that are lower bounds** ([`Layout::V2`], what copies write since
//!   layout v2). A batch served as it is stored (uncompressed rows, verbatim) has its exact size;
//!   a batch re-compressed as lz4 has `61 + min(records / 256, original size − 61)` (`records`:
//!   the uncompressed length of its records section, known without compressing), which never
//!   exceeds what it serves: a valid LZ4 block never holds more than 256 bytes of output per byte
//!   ([`lz4_lower_bound`] gives the proof), and the header is 61 bytes. Positions are the running
//!   sum, so the difference between two batches' positions never exceeds the bytes served between
//!   them, and every position stays below the segment's own size (each size is at most the
//!   original batch's): within Kafka's `int` positions. `fetchLogSegment` maps a position to the
//!   batch whose range holds it and serves from that batch's start.
//!
//! - **Version 3: every batch of rows served uncompressed** ([`Layout::V3`], copies of topics
//!   with `served.compression=none`: no compression when serving either, for operators who would
//!   rather send the records' bytes than spend CPU on them). A batch's size is exact (header +
//!   records); its *span*, what it advances the positions by ([`Layout::span`]), is
//!   `min(size, original size)`: a lower bound of its bytes, as in version 2, and never above the
//!   original size, so positions stay below the segment's own size (uncompressed, a compressed
//!   segment's records can far outgrow Kafka's 2 GiB `int` positions). Exact sizes let a fetch size
//!   its steps by what they really serve.
//!
//! **Why lower bounds are safe.** The broker uses a remote segment's index positions for two
//! things only (apache/kafka 3.9.2, 4.0.2, 4.1.2, 4.2.2, 4.3.2, 4.4.0, `RemoteLogManager.read`,
//! `findOffsetByTimestamp`, `RemoteIndexCache`; nothing compares them with the segment's size):
//! to come back to us with `fetchLogSegment(startPosition)` (an index entry's position, or 0
//! when the fetch offset is below the first entry), and, for `read_committed`, the
//! aborted-transaction upper bound: the offset of the first index entry positioned at or after
//! (lookup position + the bytes skipped to reach the fetch offset + the bytes returned), else the
//! segment's end + 1 (`OffsetIndex.fetchUpperBoundOffset`). Skipped and returned bytes are real
//! bytes, and a position step never exceeds the bytes between the batches, so an entry at or
//! after that target names a batch at or after the end of the bytes returned: the bound covers
//! every returned record. It may cover more, which only collects aborted transactions (and
//! searches later segments' transaction indexes) the consumer does not need: it applies an
//! aborted transaction only to returned batches at or past its first offset. Two conditions
//! make this hold, and both do: the first batch is at position 0, and a segment's positions
//! never change (its sidecar records its layout; brokers keep fetched indexes on disk across
//! restarts). Exact positions are right too, which is why version 1 segments stay as they are.
//!
//! - One entry per batch: a lookup lands on the batch holding the offset, so nothing is skipped.
//!   A bound computed without the skipped bytes (as an earlier reading of Kafka's code assumed)
//!   would fall short with a sparse index and hand aborted records to a `read_committed`
//!   consumer as committed; `rust/rsm/tests/broker_read.rs` checks both formulas.
//! - The time index follows Kafka's own rule (`LogSegment.append`): before each batch, when more
//!   than 4096 bytes were appended since the last entry, an entry (max timestamp so far, the last
//!   offset of the batch holding it) if that timestamp grew, and a last entry at the end
//!   (`onBecomeInactiveSegment`). Version 1 counts served bytes, versions 2 and 3 the original
//!   batches' bytes (as the broker did when it wrote the segment).
//!
//! Brokers cache fetched indexes on disk across restarts, so a layout version never changes once
//! released: the golden tests in `tests/served.rs` fail if a served byte or an index byte of
//! any version changes.

use std::ops::Range;

use calving_segment::index::offset::{self, OffsetIndexEntry};
use calving_segment::index::time::{self, TimeIndexEntry};
use calving_segment::record::record::{write_record, Header};
use calving_segment::record::batch::BATCH_HEADER_LEN;
use calving_segment::{BatchEncoder, Compression, TimestampType};

use crate::error::LayoutError;
use crate::rows::RowsView;
use crate::sidecar::{BatchEntry, BatchKind, RecordException, Sidecar};
use crate::typed::{Part, WriterCache};

/// Kafka's default `index.interval.bytes`, applied to the served bytes.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// A served layout version: what a sidecar's positions mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Positions are byte positions of the served bytes.
    V1,
    /// Positions are lower bounds of them (exact for batches served as stored); compressed
    /// batches are served as lz4.
    V2,
    /// Every batch of rows is served uncompressed, with its exact size; positions advance by
    /// lower bounds of the sizes ([`Layout::span`]).
    V3,
}

impl Layout {
    /// What copies write by default (`served.compression=lz4`).
    pub const CURRENT: Layout = Layout::V2;

    /// What copies of topics with `served.compression=none` write.
    pub const UNCOMPRESSED: Layout = Layout::V3;

    pub const fn version(self) -> u16 {
        match self {
            Layout::V1 => 1,
            Layout::V2 => 2,
            Layout::V3 => 3,
        }
    }

    /// The layout of a sidecar's `layout_version`; a newer one than this Calving serves is an
    /// error (a sidecar written by a later release).
    pub fn of(version: u16) -> Result<Layout, LayoutError> {
        match version {
            1 => Ok(Layout::V1),
            2 => Ok(Layout::V2),
            3 => Ok(Layout::V3),
            v => Err(LayoutError::Sidecar {
                section: "directory",
                reason: format!("served layout version {v} is newer than this Calving serves (1 to 3)"),
            }),
        }
    }

    /// Whether positions are exact byte positions.
    pub fn exact(self) -> bool {
        self == Layout::V1
    }

    /// The codec a batch of rows whose original codec is `original` is served with.
    pub fn served_codec(self, original: Compression) -> Compression {
        match (self, original) {
            (Layout::V3, _) | (_, Compression::None) => Compression::None,
            _ => Compression::Lz4,
        }
    }

    /// The size a copy in this layout gives a batch of rows whose records section is
    /// `records_len` bytes uncompressed, served with `codec`, `original_size` bytes in the
    /// segment: version 3's exact size, else version 2's ([`v2_rows_size`]; version 1 is never
    /// written any more).
    pub fn rows_size(self, codec: Compression, records_len: u64, original_size: u32) -> u64 {
        match self {
            Layout::V3 => BATCH_HEADER_LEN as u64 + records_len,
            Layout::V1 | Layout::V2 => v2_rows_size(codec, records_len, original_size),
        }
    }

    /// How far batch `b` advances the positions: its size, but in version 3 no more than its
    /// original size (a lower bound of its bytes that keeps positions within the segment's).
    pub fn span(self, b: &BatchEntry) -> u64 {
        match self {
            Layout::V3 => u64::from(b.served_size.min(b.original_size)),
            Layout::V1 | Layout::V2 => u64::from(b.served_size),
        }
    }
}

/// A lower bound of the size of Kafka's LZ4 frame holding `len` bytes, whatever the encoder
/// chose: `len / 256`.
///
/// Proof, per block of the frame (the frame adds a header, block lengths and an end mark on
/// top): a block stored uncompressed holds its input. A compressed block is a run of sequences;
/// a sequence with `l` literals and a match of `m` bytes costs a token, `l` literal bytes and,
/// but for the last sequence, a 2-byte match offset plus, when `m ≥ 19`, `⌊(m − 19) / 255⌋ + 1`
/// length bytes (more than `(m − 19) / 255`). If `m ≤ 18`: `3 + l ≥ (l + m) / 256`. Otherwise
/// `3 + l + (m − 19) / 255 ≥ (l + m) / 256`, since `3 > 19 / 255` and `1/255 > 1/256`. The last
/// sequence costs `1 + l ≥ l / 256`. Summed: a block is at least its input over 256.
pub const fn lz4_lower_bound(len: u64) -> u64 {
    len / 256
}

/// The size layout version 2 gives a batch of rows whose records section is `records_len` bytes
/// uncompressed, served with `codec`, `original_size` bytes in the segment: exact when served
/// uncompressed, else a lower bound of the lz4 batch (header + [`lz4_lower_bound`]), never above
/// the original size.
pub fn v2_rows_size(codec: Compression, records_len: u64, original_size: u32) -> u64 {
    let header = BATCH_HEADER_LEN as u64;
    match codec {
        Compression::None => header + records_len,
        _ => header + lz4_lower_bound(records_len).min(u64::from(original_size).saturating_sub(header)),
    }
}

/// The end of the served segment's positions: its size in version 1, a lower bound of it since.
pub fn served_size(layout: Layout, batches: &[BatchEntry]) -> u64 {
    batches.last().map_or(0, |b| b.served_position + layout.span(b))
}

/// About how many bytes batch `b` serves, for sizing reads: its size where positions are exact
/// or it is served as stored; else its original size (an lz4 re-encode of a compressed batch is
/// about as large).
pub fn served_estimate(layout: Layout, b: &BatchEntry) -> u64 {
    if layout.exact() || b.kind == BatchKind::Verbatim || b.served_codec == Compression::None {
        u64::from(b.served_size)
    } else {
        u64::from(b.original_size).max(u64::from(b.served_size))
    }
}

/// The batch whose positions contain `position`.
pub fn batch_at(layout: Layout, batches: &[BatchEntry], position: u64) -> Option<usize> {
    let i = batches.partition_point(|b| b.served_position <= position);
    (i > 0 && position < batches[i - 1].served_position + layout.span(&batches[i - 1])).then(|| i - 1)
}

fn relative(offset: i64, base: i64) -> i32 {
    i32::try_from(offset - base).expect("offsets of a segment are within i32 of its base")
}

/// The served offset index (`.index` bytes) of a segment starting at `base_offset`: one entry
/// per batch after the first, (base offset, served position).
pub fn offset_index(batches: &[BatchEntry], base_offset: i64) -> Vec<u8> {
    let entries: Vec<OffsetIndexEntry> = batches
        .iter()
        .skip(1)
        .map(|b| OffsetIndexEntry { relative_offset: relative(b.header.base_offset, base_offset), position: b.served_position as i32 })
        .collect();
    let mut out = Vec::with_capacity(entries.len() * offset::ENTRY_LEN);
    offset::encode(&entries, &mut out);
    out
}

/// The served time index (`.timeindex` bytes) of a segment starting at `base_offset`.
pub fn time_index(layout: Layout, batches: &[BatchEntry], base_offset: i64) -> Vec<u8> {
    let mut entries: Vec<TimeIndexEntry> = Vec::new();
    let mut max_so_far = -1i64;
    let mut offset_of_max = base_offset;
    let mut since = 0u64;
    let maybe_append = |entries: &mut Vec<TimeIndexEntry>, ts: i64, off: i64| {
        let last_ts = entries.last().map_or(-1, |e| e.timestamp);
        if ts > last_ts {
            entries.push(TimeIndexEntry { timestamp: ts, relative_offset: relative(off, base_offset) });
        }
    };
    for b in batches {
        if b.header.max_timestamp > max_so_far {
            max_so_far = b.header.max_timestamp;
            offset_of_max = b.last_offset();
        }
        if since > INDEX_INTERVAL_BYTES {
            maybe_append(&mut entries, max_so_far, offset_of_max);
            since = 0;
        }
        since += u64::from(match layout {
            Layout::V1 => b.served_size,
            Layout::V2 | Layout::V3 => b.original_size,
        });
    }
    maybe_append(&mut entries, max_so_far, offset_of_max);
    let mut out = Vec::with_capacity(entries.len() * time::ENTRY_LEN);
    time::encode(&entries, &mut out);
    out
}

/// One row of the table, wherever it was read from.
#[derive(Clone, Copy, Debug)]
pub struct RowRef<'a> {
    pub view: &'a RowsView,
    pub row: usize,
}

/// Rebuilds served batches. Holds reusable buffers: one per thread.
#[derive(Debug, Default)]
pub struct Rebuilder {
    encoder: BatchEncoder,
    records: Vec<u8>,
    value: Vec<u8>,
    key: Vec<u8>,
    writers: WriterCache,
}

impl Rebuilder {
    /// Appends the served bytes of `batch` to `out`. For a [`BatchKind::Rows`] batch, `rows` are
    /// its records' rows in offset order (exactly `records_count` of them); for a verbatim
    /// batch they are ignored.
    pub fn rebuild<'a>(
        &mut self,
        sidecar: &Sidecar,
        batch: &BatchEntry,
        rows: impl IntoIterator<Item = RowRef<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(), LayoutError> {
        if batch.kind == BatchKind::Verbatim {
            out.extend_from_slice(sidecar.verbatim_bytes(batch)?);
            return Ok(());
        }
        let h = &batch.header;
        let mismatch = |reason: String| LayoutError::RowsMismatch { base_offset: h.base_offset, reason };
        let exceptions = sidecar.exceptions_in(h.base_offset, h.last_offset());
        let deltas = sidecar.timestamp_deltas.in_range(h.base_offset, h.last_offset())?;
        let mut next_delta = deltas.iter().peekable();
        self.records.clear();
        let mut count = 0i32;
        let mut substituted: Vec<Header<'_>> = Vec::new();
        for RowRef { view, row } in rows {
            let offset = view.offset(row);
            if offset < h.base_offset || offset > h.last_offset() {
                return Err(mismatch(format!("row offset {offset} is outside the batch")));
            }
            let mut attributes = 0i8;
            let mut has_key_exception = false;
            for e in exceptions.iter().filter(|e| e.offset() == offset) {
                match e {
                    RecordException::Attributes { attributes: a, .. } => attributes = *a,
                    RecordException::HeaderKey { .. } => has_key_exception = true,
                }
            }
            // Rows come in offset order: the deltas are consumed in step.
            while next_delta.next_if(|&&(o, _)| o < offset).is_some() {}
            let timestamp_delta = next_delta.next_if(|&&(o, _)| o == offset).map(|&(_, d)| d);
            let timestamp_delta = timestamp_delta.unwrap_or_else(|| (view.timestamp_micros(row) / 1000).wrapping_sub(h.base_timestamp));
            let offset_delta = (offset - h.base_offset) as i32;
            // Headers go through one reusable buffer, with any non-UTF-8 keys put back.
            substituted.clear();
            substituted.extend(view.headers(row).map(|(key, value)| Header { key, value }));
            if has_key_exception {
                for e in exceptions {
                    if let RecordException::HeaderKey { offset: o, index, key } = e {
                        if *o == offset {
                            let slot = substituted
                                .get_mut(*index as usize)
                                .ok_or_else(|| mismatch(format!("header exception for a missing header at {offset}")))?;
                            slot.key = key;
                        }
                    }
                }
            }
            let at_offset = |e: LayoutError| match e {
                LayoutError::Typed(reason) => mismatch(format!("{reason}, offset {offset}")),
                other => other,
            };
            let value = match (view.value(row), view.value_schema_id(row)) {
                (Some(raw), _) => Some(raw),
                (None, Some(id)) => {
                    let part = Part::Value(view.batch());
                    self.writers.encode(sidecar, part, id, row, &mut self.value).map_err(&at_offset)?;
                    Some(&self.value[..])
                }
                (None, None) => None,
            };
            let key = match (view.key(row), view.key_schema_id(row)) {
                (Some(raw), _) => Some(raw),
                (None, Some(id)) => {
                    let batch = view
                        .key_batch()
                        .ok_or_else(|| mismatch(format!("row at offset {offset} has its key in columns, none were read")))?;
                    self.writers.encode(sidecar, Part::Key(batch), id, row, &mut self.key).map_err(&at_offset)?;
                    Some(&self.key[..])
                }
                (None, None) => None,
            };
            write_record(&mut self.records, attributes, timestamp_delta, offset_delta, key, value, substituted.iter().copied());
            count += 1;
        }
        if count != h.records_count {
            return Err(mismatch(format!("{count} rows for {} records", h.records_count)));
        }
        self.encoder.encode(h, batch.served_codec, &self.records, out)?;
        Ok(())
    }
}

impl Rebuilder {
    /// Appends the served bytes of `sidecar.batches[range]` to `out`, taking each batch's rows
    /// from `rows` (all rows of those batches, in offset order).
    pub fn rebuild_range<'a>(
        &mut self,
        sidecar: &Sidecar,
        range: Range<usize>,
        rows: &mut impl Iterator<Item = RowRef<'a>>,
        out: &mut Vec<u8>,
    ) -> Result<(), LayoutError> {
        let layout = sidecar.layout()?;
        let mut rows = rows.peekable();
        for batch in &sidecar.batches[range] {
            if batch.kind == BatchKind::Verbatim {
                // Legacy entries have rows too (the table holds every record): skip them.
                while rows.next_if(|r| r.view.offset(r.row) <= batch.last_offset()).is_some() {}
                self.rebuild(sidecar, batch, std::iter::empty(), out)?;
                continue;
            }
            let n = usize::try_from(batch.header.records_count).unwrap_or(0);
            let start = out.len();
            self.rebuild(sidecar, batch, rows.by_ref().take(n), out)?;
            // The rows must give the batch the sidecar describes: its exact size (versions 1 and
            // 3), or in version 2 for a re-compressed batch, the lower bound of the records
            // rebuilt (which must hold: the index's safety rests on it).
            let served = (out.len() - start) as u64;
            let size = u64::from(batch.served_size);
            let fits = match layout {
                Layout::V1 | Layout::V3 => served == size,
                Layout::V2 => {
                    v2_rows_size(batch.served_codec, self.records.len() as u64, batch.original_size) == size && served >= size
                }
            };
            if !fits {
                return Err(LayoutError::RowsMismatch {
                    base_offset: batch.header.base_offset,
                    reason: format!(
                        "rebuilt {served} bytes ({} of records), the sidecar says {size} (layout version {})",
                        self.records.len(),
                        layout.version()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The row timestamp (µs, what consumers see) for a record of a v2 batch, and the exception that
/// keeps its stored delta when the row cannot give it back.
pub(crate) fn row_timestamp(timestamp_type: TimestampType, base_timestamp: i64, max_timestamp: i64, delta: i64) -> (i64, Option<i64>) {
    let ms = match timestamp_type {
        TimestampType::LogAppendTime => max_timestamp,
        _ => base_timestamp.wrapping_add(delta),
    };
    let micros = ms.checked_mul(1000).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX });
    let derived = (micros / 1000).wrapping_sub(base_timestamp);
    (micros, (derived != delta).then_some(delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calving_segment::{Attributes, BatchHeader};
    use proptest::prelude::*;

    fn lz4_batch(records: &[u8]) -> usize {
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: Attributes(0),
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        };
        let mut out = Vec::new();
        BatchEncoder::default().encode(&header, Compression::Lz4, records, &mut out).unwrap()
    }

    /// Layout version 2's size of a re-compressed batch never exceeds what the pinned encoder
    /// serves, also for the inputs LZ4 compresses best (long runs: zeros, a short pattern),
    /// across its 64 KiB blocks.
    #[test]
    fn v2_sizes_are_lower_bounds_of_the_lz4_batches() {
        for len in [0usize, 1, 18, 19, 255, 4096, 65_535, 65_536, 65_537, 300_000, 1 << 21] {
            for records in [vec![0u8; len], (0..len).map(|i| (i % 7) as u8).collect()] {
                let served = lz4_batch(&records) as u64;
                let bound = v2_rows_size(Compression::Lz4, len as u64, u32::MAX);
                assert!(bound <= served, "{len} bytes: bound {bound} > served {served}");
            }
        }
        // Zeros come within 10% of the bound: it is not loose where it matters.
        let served = lz4_batch(&vec![0u8; 1 << 21]) as u64;
        assert!(served < v2_rows_size(Compression::Lz4, 1 << 21, u32::MAX) * 11 / 10, "{served}");
    }

    proptest! {
        #[test]
        fn v2_sizes_are_lower_bounds_for_any_records(
            runs in prop::collection::vec((any::<u8>(), 1usize..5000, 0usize..40), 0..60),
        ) {
            // Runs of a byte, then a few arbitrary bytes: compressible and not.
            let mut records = Vec::new();
            for (byte, run, noise) in runs {
                records.extend(std::iter::repeat_n(byte, run));
                records.extend((0..noise).map(|i| byte.wrapping_mul(31).wrapping_add((i as u8).wrapping_mul(17))));
            }
            let served = lz4_batch(&records) as u64;
            prop_assert!(v2_rows_size(Compression::Lz4, records.len() as u64, u32::MAX) <= served);
        }
    }

    #[test]
    fn v2_sizes_stay_within_the_original_and_exact_uncompressed() {
        assert_eq!(v2_rows_size(Compression::None, 1000, 10), 1061);
        assert_eq!(v2_rows_size(Compression::Lz4, 1 << 30, 100), 100);
        assert_eq!(v2_rows_size(Compression::Lz4, 256 * 10, 1000), 71);
        assert!(Layout::of(4).is_err());
        assert_eq!(Layout::of(Layout::CURRENT.version()).unwrap(), Layout::CURRENT);
    }
}
