//! One pass over a segment: rows for the table and the sidecar for everything else.
//!
//! [`SegmentConverter`] takes the segment's entries in order. Records of v2 data batches become
//! rows (emitted in chunks to a sink, in offset order); each batch gets a sidecar entry with its
//! facts and its position and size in the served layout it is copied in, version 2 by default or
//! version 3 ([`SegmentConverter::with_layout`]; [`crate::served`]: computed from the records'
//! lengths, nothing is compressed here); record facts the rows cannot hold become
//! [`RecordException`]s. Control batches are kept verbatim; legacy v0/v1 entries are kept
//! verbatim too (they are rare: pre-0.11 data) and their records also become rows, so the table
//! holds every record.
//!
//! **Kafka's 2 GiB positions.** Served positions are Java `int`s (`fetchLogSegment`'s
//! `startPosition`, the offset index). In layout versions 2 and 3 no batch advances the positions
//! by more than its original size, so positions stay below the segment's own size, which Kafka keeps below 2 GiB
//! (`segment.bytes` is an `int`). (Version 1's exact positions of lz4 re-encodes could outgrow
//! the segment; its copies kept such batches verbatim.)

use calving_segment::record::batch::DEFAULT_MAX_UNCOMPRESSED;
use calving_segment::{Compression, LogEntry, RecordBatch as KafkaBatch};

use arrow_array::RecordBatch;

use crate::error::LayoutError;
use crate::rows::RowsBuilder;
use crate::schema::TargetColumns;
use crate::served::{row_timestamp, Layout};
use crate::sidecar::{BatchEntry, BatchKind, RecordException, SegmentIdentity, Sidecar, TimestampDeltas};
use crate::typed::TypedValues;

/// The largest served position: served positions are Java `int`s.
pub const MAX_SERVED_SIZE: u64 = i32::MAX as u64;

/// When to hand a chunk of rows to the sink.
#[derive(Clone, Copy, Debug)]
pub struct ChunkLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits { max_rows: 64 * 1024, max_bytes: 16 << 20 }
    }
}

/// Counters of a conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    pub batches: u64,
    pub records: u64,
    pub control_batches: u64,
    pub legacy_entries: u64,
    /// Uncompressed bytes of all records sections.
    pub record_bytes: u64,
    /// Batches whose served bytes equal the original bytes.
    pub byte_identical_batches: u64,
    /// Schema modes: values in columns, and values kept in the raw fallback.
    pub values_in_columns: u64,
    pub values_raw_fallback: u64,
    /// Key schema modes: keys in columns, and keys kept raw in `kafka.key`.
    pub keys_in_columns: u64,
    pub keys_raw_fallback: u64,
}

/// The side files of a segment, kept in the sidecar as they came.
#[derive(Clone, Debug, Default)]
pub struct SideFiles {
    pub offset_index: Vec<u8>,
    pub time_index: Vec<u8>,
    pub txn_index: Option<Vec<u8>>,
    pub producer_snapshot: Vec<u8>,
    pub leader_epoch: Vec<u8>,
}

/// Converts one segment.
#[derive(Debug)]
pub struct SegmentConverter {
    identity: SegmentIdentity,
    rows: RowsBuilder,
    limits: ChunkLimits,
    batches: Vec<BatchEntry>,
    exceptions: Vec<RecordException>,
    timestamp_deltas: TimestampDeltas,
    verbatim: Vec<u8>,
    layout: Layout,
    served_position: u64,
    scratch: Vec<u8>,
    stats: ConvertStats,
}

impl SegmentConverter {
    pub fn new(target: TargetColumns, identity: SegmentIdentity, limits: ChunkLimits) -> SegmentConverter {
        let topic_id = crate::topic_id_string(&identity.topic_id);
        SegmentConverter {
            rows: RowsBuilder::new(target, &topic_id, identity.partition),
            identity,
            limits,
            batches: Vec::new(),
            exceptions: Vec::new(),
            timestamp_deltas: TimestampDeltas::default(),
            verbatim: Vec::new(),
            layout: Layout::CURRENT,
            served_position: 0,
            scratch: Vec::new(),
            stats: ConvertStats::default(),
        }
    }

    /// The served layout the sidecar describes: [`Layout::CURRENT`] (the default) or
    /// [`Layout::UNCOMPRESSED`]; never version 1, which no copy writes any more.
    pub fn with_layout(mut self, layout: Layout) -> Result<SegmentConverter, LayoutError> {
        if layout == Layout::V1 {
            return Err(LayoutError::Sidecar { section: "directory", reason: "copies no longer write served layout version 1".into() });
        }
        self.layout = layout;
        Ok(self)
    }

    /// Values go to columns (schema modes): see [`crate::typed`].
    pub fn with_typed(mut self, typed: TypedValues) -> Result<SegmentConverter, LayoutError> {
        self.rows = self.rows.with_typed(typed)?;
        Ok(self)
    }

    /// Keys go to columns (key schema modes): see [`crate::typed`].
    pub fn with_typed_keys(mut self, typed: TypedValues) -> Result<SegmentConverter, LayoutError> {
        self.rows = self.rows.with_typed_keys(typed)?;
        Ok(self)
    }

    pub fn stats(&self) -> ConvertStats {
        self.stats
    }

    fn maybe_flush<E: From<LayoutError>>(&mut self, sink: &mut impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        if self.rows.len() >= self.limits.max_rows || self.rows.buffered_bytes() >= self.limits.max_bytes {
            let chunk = self.rows.finish()?;
            sink(chunk)?;
        }
        Ok(())
    }

    fn push_entry(
        &mut self,
        kind: BatchKind,
        header: calving_segment::BatchHeader,
        position: u64,
        bytes: &[u8],
        codec: Compression,
        served_size: u32,
    ) {
        let verbatim_offset = if kind == BatchKind::Verbatim {
            let at = self.verbatim.len() as u64;
            self.verbatim.extend_from_slice(bytes);
            at
        } else {
            0
        };
        if served_size as usize == bytes.len() && (kind == BatchKind::Verbatim || codec == Compression::None) {
            self.stats.byte_identical_batches += 1;
        }
        let entry = BatchEntry {
            kind,
            header,
            original_position: position,
            original_size: bytes.len() as u32,
            served_codec: codec,
            served_position: self.served_position,
            served_size,
            verbatim_offset,
        };
        self.served_position += self.layout.span(&entry);
        self.batches.push(entry);
    }

    /// Adds the next entry of the segment; full chunks of rows go to `sink`.
    pub fn push<E: From<LayoutError>>(
        &mut self,
        entry: &LogEntry<'_>,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        match entry {
            LogEntry::Batch(batch) => self.push_batch(batch, sink),
            LogEntry::Legacy(legacy) => {
                self.stats.legacy_entries += 1;
                let records = legacy.records(&mut self.scratch, DEFAULT_MAX_UNCOMPRESSED).map_err(LayoutError::from)?;
                for r in &records {
                    let micros = r.timestamp.checked_mul(1000).unwrap_or(if r.timestamp < 0 { i64::MIN } else { i64::MAX });
                    self.rows.append(r.offset, micros, r.key, r.value, std::iter::empty());
                    self.stats.records += 1;
                }
                let first = records.first().map_or(legacy.offset, |r| r.offset);
                // A legacy entry's facts in v2 words, for the sidecar and the served indexes.
                let header = calving_segment::BatchHeader {
                    base_offset: first,
                    batch_length: (legacy.bytes().len() - 12) as i32,
                    partition_leader_epoch: -1,
                    magic: legacy.magic,
                    crc: legacy.crc,
                    attributes: calving_segment::Attributes(legacy.attributes as u8 as u16),
                    last_offset_delta: (legacy.offset - first) as i32,
                    base_timestamp: legacy.timestamp,
                    max_timestamp: legacy.timestamp,
                    producer_id: -1,
                    producer_epoch: -1,
                    base_sequence: -1,
                    records_count: records.len() as i32,
                };
                let bytes = legacy.bytes();
                let codec = legacy.compression().unwrap_or(Compression::None);
                self.push_entry(BatchKind::Verbatim, header, legacy.position, bytes, codec, bytes.len() as u32);
                self.stats.batches += 1;
                self.maybe_flush(sink)
            }
        }
    }

    fn push_batch<E: From<LayoutError>>(
        &mut self,
        batch: &KafkaBatch<'_>,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        batch.verify_crc().map_err(LayoutError::from)?;
        let h = batch.header.clone();
        self.stats.batches += 1;
        if h.attributes.is_control() {
            self.stats.control_batches += 1;
            let bytes = batch.bytes();
            self.push_entry(BatchKind::Verbatim, h, batch.position, bytes, batch.compression(), bytes.len() as u32);
            return Ok(());
        }
        let ts_type = h.attributes.timestamp_type();
        let codec = self.layout.served_codec(batch.compression());
        // The served records section's length: all layout versions 2 and 3 need.
        let mut records_len = 0usize;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = (|| -> Result<(), LayoutError> {
            let records = batch.records(&mut scratch)?;
            let mut count = 0u64;
            for r in records {
                let r = r?;
                let offset = h.base_offset + i64::from(r.offset_delta);
                let (micros, delta_exception) = row_timestamp(ts_type, h.base_timestamp, h.max_timestamp, r.timestamp_delta);
                if let Some(delta) = delta_exception {
                    self.timestamp_deltas.push(offset, delta);
                }
                if r.attributes != 0 {
                    self.exceptions.push(RecordException::Attributes { offset, attributes: r.attributes });
                }
                for (index, header) in r.headers.iter().enumerate() {
                    if std::str::from_utf8(header.key).is_err() {
                        self.exceptions.push(RecordException::HeaderKey { offset, index: index as u32, key: header.key.to_vec() });
                    }
                }
                self.rows.append(offset, micros, r.key, r.value, r.headers.iter().map(|h| (h.key, h.value)));
                records_len += r.encoded_len();
                count += 1;
            }
            self.stats.records += count;
            Ok(())
        })();
        self.scratch = scratch;
        result?;
        self.stats.record_bytes += records_len as u64;
        let original = batch.bytes();
        let served_size = self.layout.rows_size(codec, records_len as u64, original.len() as u32);
        let served_size = u32::try_from(served_size)
            .map_err(|_| LayoutError::RowsMismatch { base_offset: h.base_offset, reason: "served batch larger than 4 GiB".into() })?;
        self.push_entry(BatchKind::Rows, h, batch.position, original, codec, served_size);
        self.maybe_flush(sink)
    }

    /// Hands the rows buffered so far to `sink` ([`finish`](Self::finish) does too).
    pub fn flush<E: From<LayoutError>>(&mut self, sink: &mut impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        if !self.rows.is_empty() {
            let chunk = self.rows.finish()?;
            sink(chunk)?;
        }
        Ok(())
    }

    /// The schema-mode parts (values, keys) of this converter started afresh over the same
    /// columns and writer schemas ([`TypedValues::restart`]): for converting the same segment
    /// again, for rows only.
    pub fn restart_typed(&self) -> Result<(Option<TypedValues>, Option<TypedValues>), LayoutError> {
        Ok((self.rows.typed().map(TypedValues::restart).transpose()?, self.rows.typed_keys().map(TypedValues::restart).transpose()?))
    }

    /// Ends the segment: the last rows go to `sink`; returns the sidecar (its `files` empty, for
    /// the caller to fill once the data files are written).
    pub fn finish<E: From<LayoutError>>(
        mut self,
        side: SideFiles,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(Sidecar, ConvertStats), E> {
        self.flush(sink)?;
        if self.served_position > MAX_SERVED_SIZE {
            // Only for a segment larger than Kafka writes: no span exceeds the original's size.
            return Err(LayoutError::RowsMismatch {
                base_offset: self.identity.start_offset,
                reason: format!("served positions up to {} exceed Kafka's 2 GiB segment positions", self.served_position),
            }
            .into());
        }
        self.exceptions.sort_by_key(RecordException::offset);
        if let Some(t) = self.rows.typed() {
            self.stats.values_in_columns = t.stats().in_columns;
            self.stats.values_raw_fallback = t.stats().raw;
        }
        if let Some(t) = self.rows.typed_keys() {
            self.stats.keys_in_columns = t.stats().in_columns;
            self.stats.keys_raw_fallback = t.stats().raw;
        }
        let sidecar = Sidecar {
            layout_version: self.layout.version(),
            segment: self.identity,
            files: Vec::new(),
            batches: self.batches,
            exceptions: self.exceptions,
            timestamp_deltas: self.timestamp_deltas,
            verbatim: self.verbatim,
            offset_index: side.offset_index,
            time_index: side.time_index,
            txn_index: side.txn_index,
            producer_snapshot: side.producer_snapshot,
            leader_epoch: side.leader_epoch,
            value_schemas: self.rows.typed().map(TypedValues::writer_schemas),
            key_schemas: self.rows.typed_keys().map(TypedValues::writer_schemas),
        };
        Ok((sidecar, self.stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::RowsView;
    use crate::schema::default_arrow_schema;
    use crate::served::{Rebuilder, RowRef};
    use calving_segment::record::record::{write_record, Header};
    use calving_segment::{Attributes, BatchEncoder, BatchHeader, LogEntries};

    /// Record facts the rows cannot hold come back through the sidecar's exceptions: a header
    /// key that is not UTF-8, record attributes other than 0, the producer's timestamp deltas of
    /// a LogAppendTime batch, and a timestamp beyond what microseconds can hold.
    #[test]
    fn exceptions_make_rebuilt_batches_byte_identical() {
        let mut records = Vec::new();
        let bad_key: &[u8] = &[0xff, 0xfe, b'k'];
        write_record(&mut records, 0, 5, 0, Some(b"a"), Some(b"x"), [Header { key: bad_key, value: Some(b"v") }]);
        write_record(&mut records, 3, -7, 1, None, None, [Header { key: b"ok", value: None }]);
        write_record(&mut records, 0, i64::MAX / 2, 2, Some(b""), Some(b"y"), []);
        let mut log = Vec::new();
        for (attributes, base_ts) in [(0x08u16, 1_700_000_000_000i64), (0x00, 1_700_000_000_000)] {
            let header = BatchHeader {
                base_offset: log.len() as i64, // distinct, increasing
                batch_length: 0,
                partition_leader_epoch: 4,
                magic: 2,
                crc: 0,
                attributes: Attributes(attributes),
                last_offset_delta: 2,
                base_timestamp: base_ts,
                max_timestamp: base_ts + 99,
                producer_id: 9,
                producer_epoch: 1,
                base_sequence: 0,
                records_count: 3,
            };
            BatchEncoder::default().encode(&header, Compression::None, &records, &mut log).unwrap();
        }
        let identity = SegmentIdentity {
            topic: "t".into(),
            topic_id: [1; 16],
            partition: 0,
            segment_id: [2; 16],
            start_offset: 0,
            end_offset: 1000,
            segment_size: log.len() as u64,
            max_timestamp_ms: 0,
        };
        let target = TargetColumns::locate(default_arrow_schema()).unwrap();
        let mut conv = SegmentConverter::new(target, identity, ChunkLimits::default());
        let mut chunks = Vec::new();
        let mut sink = |c: RecordBatch| -> Result<(), LayoutError> {
            chunks.push(c);
            Ok(())
        };
        for e in LogEntries::new(&log) {
            conv.push(&e.unwrap(), &mut sink).unwrap();
        }
        let (sidecar, stats) = conv.finish(SideFiles::default(), &mut sink).unwrap();
        assert_eq!(stats.records, 6);
        assert!(sidecar.exceptions.len() + sidecar.timestamp_deltas.len() >= 5, "{:?} {:?}", sidecar.exceptions, sidecar.timestamp_deltas);
        assert!(!sidecar.timestamp_deltas.is_empty());
        let views: Vec<RowsView> = chunks.iter().map(|c| RowsView::new(c).unwrap()).collect();
        let mut rows = views.iter().flat_map(|view| (0..view.len()).map(move |row| RowRef { view, row }));
        let mut out = Vec::new();
        Rebuilder::default().rebuild_range(&sidecar, 0..sidecar.batches.len(), &mut rows, &mut out).unwrap();
        assert_eq!(out, log);
        // The LogAppendTime batch's rows carry the append time, as consumers see it.
        assert_eq!(views[0].timestamp_micros(0), (1_700_000_000_000 + 99) * 1000);
    }
}
