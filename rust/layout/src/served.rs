//! The served layout, version 1: the bytes `fetchLogSegment` returns for a segment, as a pure
//! function of what was stored (DESIGN.md invariant 2), and the offset and time indexes that
//! describe exactly those bytes (invariant 3).
//!
//! ## Layout version 1
//! - Batches are served in their original order, one served batch per original batch, back to
//!   back from position 0.
//! - A batch whose records are rows ([`BatchKind::Rows`]) is rebuilt from its rows and the
//!   sidecar's batch facts and record exceptions, with a fresh CRC-32C. Originally uncompressed
//!   batches are served uncompressed and come back byte-identical. Originally compressed batches
//!   (any codec) are served as lz4 (Kafka's LZ4 frame, 64 KiB independent blocks) by the pinned,
//!   deterministic encoder of `calving-segment`: only the compression bytes differ from the
//!   original.
//! - Control batches and legacy (v0/v1) entries are served verbatim from the sidecar.
//! - The offset index has one entry per batch after the first: (the batch's base offset, its
//!   served position). A broker lookup (largest entry ≤ the fetch offset) therefore lands on the
//!   very batch holding the offset, never on an earlier one. That matters beyond speed: Kafka
//!   4.1's remote read computes the `read_committed` aborted-transaction bound from the *lookup*
//!   position plus the bytes it returns (`RemoteLogManager.addAbortedTransactions`); with a
//!   sparse index the returned bytes start later than the lookup position, the bound falls short,
//!   and a `read_committed` consumer can be handed aborted records as committed
//!   (`rust/rsm/tests/broker_read.rs` catches exactly that). Later Kafka versions add the skipped
//!   bytes; an exact index is right for both.
//! - The time index follows Kafka's own rule (`LogSegment.append`): before each batch, when more
//!   than 4096 bytes were served since the last entry, an entry (max timestamp so far, the last
//!   offset of the batch holding it) if that timestamp grew, and a last entry at the end
//!   (`onBecomeInactiveSegment`).
//!
//! - Schema modes do not change the layout: a row whose value is in columns
//!   (`kafka.value_schema_id` set, `value` null) gets its value re-encoded from the columns with
//!   the writer schema the sidecar keeps (with the Confluent header for [`Framing::Prefixed`]),
//!   which gives back the original bytes (the lossless check at conversion guarantees it); a row
//!   with a `value` cell (raw mode, raw fallback) serves it as it is. Keys in columns (the top-level
//!   `key` struct, `kafka.key_schema_id` set) are re-encoded the same way with the sidecar's key
//!   schemas.
//!
//! Brokers cache fetched indexes on disk across restarts, so a layout version never changes once
//! released: the golden tests in `tests/golden.rs` fail if a served byte of version 1 changes.

use std::ops::Range;

use calving_segment::index::offset::{self, OffsetIndexEntry};
use calving_segment::index::time::{self, TimeIndexEntry};
use calving_segment::record::record::{write_record, Header};
use calving_segment::{BatchEncoder, Compression, TimestampType};

use crate::error::LayoutError;
use crate::rows::RowsView;
use crate::sidecar::{BatchEntry, BatchKind, RecordException, Sidecar};
use crate::typed::{Part, WriterCache};

/// The layout version this module serves.
pub const LAYOUT_VERSION: u16 = 1;
/// Kafka's default `index.interval.bytes`, applied to the served bytes.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// The codec a batch is served with in layout version 1.
pub fn served_codec(original: Compression) -> Compression {
    match original {
        Compression::None => Compression::None,
        _ => Compression::Lz4,
    }
}

/// Total size of the served segment.
pub fn served_size(batches: &[BatchEntry]) -> u64 {
    batches.last().map_or(0, |b| b.served_position + u64::from(b.served_size))
}

/// The batch whose served bytes contain `position`.
pub fn batch_at(batches: &[BatchEntry], position: u64) -> Option<usize> {
    let i = batches.partition_point(|b| b.served_position <= position);
    (i > 0 && position < batches[i - 1].served_position + u64::from(batches[i - 1].served_size)).then(|| i - 1)
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
pub fn time_index(batches: &[BatchEntry], base_offset: i64) -> Vec<u8> {
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
        since += u64::from(b.served_size);
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
            if out.len() - start != batch.served_size as usize {
                return Err(LayoutError::RowsMismatch {
                    base_offset: batch.header.base_offset,
                    reason: format!("rebuilt {} bytes, the sidecar says {}", out.len() - start, batch.served_size),
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

/// The range of batches whose served bytes overlap `start..end` (served positions).
pub fn batches_overlapping(batches: &[BatchEntry], start: u64, end: u64) -> Range<usize> {
    let first = batch_at(batches, start).unwrap_or(batches.len());
    let last = batches.partition_point(|b| b.served_position < end);
    first..last.max(first)
}
