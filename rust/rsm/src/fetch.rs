//! `fetchLogSegment`: a lazy stream over the served layout.
//!
//! A stream starts at the batch whose served range holds the position it is opened at (in
//! layout version 1 at that very byte; in versions 2 and 3, whose positions are lower bounds, at
//! the batch's start: `calving_layout::served`), and ends with the batch holding the end position
//! (version 1: at that byte).
//!
//! Each step takes the next batches worth about `fetch.chunk.bytes` of served bytes, reads the
//! rows of exactly their offsets from the data files that hold them (merged by offset when a
//! segment's rows span several files), rebuilds the batches, and hands the bytes out. The broker
//! reads about one fetch (1 MiB by default) and closes the stream: the work done matches.
//!
//! **Steps are sized by what is read.** The broker reads the first batch or two, then asks for
//! the rest of its fetch in one `read`. A stream's first step is a whole `fetch.chunk.bytes`;
//! each later one serves what the read that needs it asks for (at most a chunk, at least one
//! batch), so the tail of a fetch that the first step fell short of costs a batch or two, not
//! another chunk. Before a batch re-compressed as lz4 is rebuilt its served size is only
//! estimated (its original size: `served::served_estimate`), and a zstd or gzip batch serves
//! ~1.5x its original size as lz4: steps therefore count in served bytes per estimated byte as
//! measured by the stream's steps so far, or, for its first step, by the segment's last stream
//! (kept beside the cached sidecar). Without that, a 1 MiB fetch of a zstd segment rebuilt
//! about 1.6 MiB (BENCHMARKS.md, "Session 17").
//!
//! **A stream that reads on reads ahead.** Each Parquet read starts afresh: it decompresses the
//! pages that hold its first rows and skips the rows before them, and a page holds up to 1,024
//! rows (a small column's, a typed table's leaf columns'), about what a step of 1 KiB records
//! serves and more than one of larger records. So from its third step on, a stream reads the
//! rows of several steps at once (2, 4, 8, then 16 steps' worth of served bytes, and never more
//! than [`READ_AHEAD_BYTES`] of decoded rows, as measured by its previous read) and serves the
//! next steps from them: a page is decompressed and skipped into once per read instead
//! of once per step. The first two steps read exactly their own rows, so a fetch of about 1 MiB
//! from any position costs what it did; the rows held are dropped as soon as the stream passes
//! them, reaches its end, or is dropped. The served bytes do not depend on how the rows were read.
//! For a segment copied in a schema mode (its sidecar has value schemas), every column is read
//! and values in columns are re-encoded by `calving_layout::served`.
//!
//! **Reads do not depend on file paths** (DESIGN.md invariant 9). The sidecar names the data
//! files its rows were in when it was written; when one of them is gone (compacted and expired by
//! Calving's maintenance or by any engine, or removed as an orphan), the stream finds the rows by
//! (topic id, partition, offsets) among the current table's live files
//! (`calving_table::files_holding`) and reads them from there: the served bytes are a function of
//! the rows and the sidecar only, so they are the same. Rows that are no longer in the table at
//! all (deleted by someone) make the read fail with [`RsmError::RowsMissing`], naming the topic,
//! partition and offsets: never other data, and never "not found" for a segment Kafka has.

use std::io::{self, Read};
use std::sync::Arc;

use arrow_array::RecordBatch;
use calving_layout::rows::RowsView;
use calving_layout::served::{self, Layout, Rebuilder, RowRef};
use calving_layout::sidecar::{BatchKind, DataFileRef, Sidecar};
use calving_layout::LayoutError;

use crate::error::{Result, RsmError};
use crate::metadata::{KafkaUuid, SegmentMetadata};
use crate::Inner;

/// The served bytes of a segment from a position, produced as they are read.
pub struct SegmentStream {
    inner: Arc<Inner>,
    segment: String,
    sidecar: Arc<Sidecar>,
    layout: Layout,
    /// Next served position to produce.
    position: u64,
    /// End of the stream (exclusive).
    end: u64,
    chunk: Vec<u8>,
    chunk_pos: usize,
    rebuilder: Rebuilder,
    /// Rows read ahead for the steps to come.
    ahead: Option<ReadAhead>,
    /// Steps produced so far.
    steps: u32,
    /// Decoded bytes of rows per served byte, as measured by the last read of rows.
    decoded_per_served: Option<f64>,
    /// Served bytes produced and their estimates (`served::served_estimate`), over the steps so
    /// far.
    produced: (u64, u64),
    /// Where the rows are: the sidecar's files, or, once one of them was gone, the table's.
    files: Vec<DataFileRef>,
    resolved: bool,
    topic: String,
    topic_id: String,
    partition: i32,
    segment_id: KafkaUuid,
}

impl std::fmt::Debug for SegmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentStream").field("segment", &self.segment).field("position", &self.position).finish()
    }
}

pub(crate) fn open(inner: &Arc<Inner>, seg: &SegmentMetadata, start: u64, end: Option<u64>) -> Result<SegmentStream> {
    let sidecar = inner.sidecar(seg)?;
    let layout = sidecar.layout().map_err(|source| RsmError::Layout { segment: seg.to_string(), source })?;
    let size = served::served_size(layout, &sidecar.batches);
    if start > size {
        return Err(RsmError::BadPosition { segment: seg.to_string(), position: start, size });
    }
    let end = end.map_or(size, |e| e.saturating_add(1).min(size)).max(start);
    Ok(SegmentStream {
        inner: inner.clone(),
        segment: seg.to_string(),
        files: sidecar.files.clone(),
        resolved: false,
        topic: seg.topic.clone(),
        topic_id: KafkaUuid(sidecar.segment.topic_id).to_string(),
        partition: sidecar.segment.partition,
        segment_id: seg.segment_id,
        sidecar,
        layout,
        position: start,
        end,
        chunk: Vec::new(),
        chunk_pos: 0,
        rebuilder: Rebuilder::default(),
        ahead: None,
        steps: 0,
        decoded_per_served: None,
        produced: (0, 0),
    })
}

/// Decoded rows a stream holds at most ahead of what it served (about: the bound is set from the
/// previous read's decoded bytes per served byte).
pub const READ_AHEAD_BYTES: u64 = 16 << 20;

/// Most steps a read of rows covers.
const READ_AHEAD_STEPS: u64 = 16;

/// The rows of batches `first..=last` (indices in the sidecar's batches), one view per batch
/// read, each sorted by offset.
struct ReadAhead {
    first: usize,
    last: usize,
    views: Vec<RowsView>,
}

/// Served bytes the read of rows for step `step` (0-based) covers, from its first batch: one step
/// for the first two, then 2, 4, 8 and at most [`READ_AHEAD_STEPS`] steps, and no more than
/// [`READ_AHEAD_BYTES`] of decoded rows at `decoded_per_served`; never less than one step.
fn read_span(step: u32, chunk: u64, decoded_per_served: Option<f64>) -> u64 {
    let steps = if step < 2 { 1 } else { 1u64 << (step - 1).min(READ_AHEAD_STEPS.trailing_zeros()) };
    let mut span = chunk.saturating_mul(steps);
    if let Some(ratio) = decoded_per_served.filter(|r| r.is_finite() && *r > 0.0) {
        span = span.min((READ_AHEAD_BYTES as f64 / ratio) as u64);
    }
    span.max(chunk)
}

/// Estimated served bytes of a step (see the module docs): the first step (`step` 0) is a whole
/// `chunk`, a later one what the read asks for (`want`, at least 1, at most `chunk`); both
/// converted from served bytes into estimated ones by `served_per_estimate` (1 when unknown).
fn step_span(step: u32, want: u64, chunk: u64, served_per_estimate: Option<f64>) -> u64 {
    let served = if step == 0 { chunk } else { want.clamp(1, chunk.max(1)) };
    let ratio = served_per_estimate.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(1.0).clamp(1.0 / 64.0, 64.0);
    ((served as f64 / ratio).ceil() as u64).max(1)
}

impl SegmentStream {
    /// Produces the next chunk of served bytes into `self.chunk` for a read of `want` bytes,
    /// counted in the metrics (the bytes served, or the error by kind).
    fn fill(&mut self, want: u64) -> Result<()> {
        match self.produce(want) {
            Ok(()) => {
                let n = (self.chunk.len() - self.chunk_pos) as u64;
                self.inner.metrics.served_bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.inner.metrics.error(&e);
                Err(e)
            }
        }
    }

    /// Served bytes per estimated byte: the stream's own measure, else the segment's last
    /// stream's; exact layouts need none.
    fn served_per_estimate(&self) -> Option<f64> {
        match self.produced {
            _ if self.layout.exact() => None,
            (served, estimated) if estimated > 0 => Some(served as f64 / estimated as f64),
            _ => self.inner.sidecars.served_per_estimate(&self.segment_id),
        }
    }

    fn produce(&mut self, want: u64) -> Result<()> {
        let sidecar = self.sidecar.clone();
        let batches = &sidecar.batches;
        let first = served::batch_at(self.layout, batches, self.position).ok_or_else(|| RsmError::BadPosition {
            segment: self.segment.clone(),
            position: self.position,
            size: served::served_size(self.layout, batches),
        })?;
        let (chunk, end, layout) = (self.inner.config.fetch_chunk_bytes as u64, self.end, self.layout);
        let estimate = |b| served::served_estimate(layout, b);
        // The batches from `first` worth under `span` served bytes (at least one), up to `end`.
        let through = |span: u64| {
            let (mut last, mut bytes) = (first, estimate(&batches[first]));
            while last + 1 < batches.len() && batches[last + 1].served_position < end && bytes < span {
                last += 1;
                bytes += estimate(&batches[last]);
            }
            last
        };
        let ratio = self.served_per_estimate();
        let mut last = through(step_span(self.steps, want, chunk, ratio));
        let held = self.ahead.as_ref().filter(|a| a.first <= first && first <= a.last).map(|a| a.last);
        match held {
            Some(held_last) => last = last.min(held_last),
            None => {
                self.ahead = None; // rows passed: dropped before the next read
                // The first two steps read exactly their own rows; later ones read ahead.
                let read_last = match self.steps {
                    0 | 1 => last,
                    _ => through(read_span(self.steps, step_span(0, 0, chunk, ratio), self.decoded_per_served)).max(last),
                };
                let needs_rows = batches[first..=read_last].iter().any(|b| b.kind == BatchKind::Rows);
                let (lo, hi) = (batches[first].header.base_offset, batches[read_last].last_offset());
                let views = if needs_rows {
                    let (views, decoded) = self.read_rows(lo, hi)?;
                    let served: u64 = batches[first..=read_last].iter().map(estimate).sum();
                    if decoded > 0 && served > 0 {
                        self.decoded_per_served = Some(decoded as f64 / served as f64);
                    }
                    views
                } else {
                    Vec::new()
                };
                self.ahead = Some(ReadAhead { first, last: read_last, views });
            }
        }
        self.steps = self.steps.saturating_add(1);
        let range = first..last + 1;
        let lo = batches[first].header.base_offset;
        let hi = batches[last].last_offset();
        let needs_rows = batches[range.clone()].iter().any(|b| b.kind == BatchKind::Rows);
        let views = match &self.ahead {
            Some(ahead) if needs_rows => &ahead.views[..],
            _ => &[][..],
        };
        let mut rows = merged_rows(views, lo, hi);
        self.chunk.clear();
        self.rebuilder.rebuild_range(&self.sidecar, range, &mut rows, &mut self.chunk).map_err(|source| match source {
            LayoutError::RowsMismatch { .. } if needs_rows => RsmError::RowsMissing {
                segment: self.segment.clone(),
                start_offset: lo,
                end_offset: hi,
                reason: format!("{source} (were rows deleted from the table?)"),
            },
            source => RsmError::Layout { segment: self.segment.clone(), source },
        })?;
        drop(rows);
        if !self.layout.exact() {
            let estimated: u64 = batches[first..=last].iter().map(estimate).sum();
            self.produced = (self.produced.0 + self.chunk.len() as u64, self.produced.1 + estimated);
            if let Some(ratio) = self.served_per_estimate() {
                self.inner.sidecars.learn_served_per_estimate(&self.segment_id, ratio);
            }
        }
        let chunk_start = batches[first].served_position;
        if self.layout.exact() {
            // Byte positions: from the very byte asked for, to the end asked for.
            let skip = (self.position - chunk_start) as usize;
            let take = ((self.end - chunk_start) as usize).min(self.chunk.len());
            self.chunk.truncate(take);
            self.chunk_pos = skip;
            self.position = chunk_start + take as u64;
        } else {
            // Lower-bound positions: whole batches.
            self.chunk_pos = 0;
            self.position = batches[last].served_position + self.layout.span(&batches[last]);
        }
        if self.position >= self.end || self.ahead.as_ref().is_some_and(|a| last >= a.last) {
            self.ahead = None; // every row held is served
        }
        Ok(())
    }

    /// The rows of offsets `lo..=hi`, one view per batch read, each sorted by offset, and their
    /// decoded bytes.
    fn read_rows(&mut self, lo: i64, hi: i64) -> Result<(Vec<RowsView>, usize)> {
        match self.read_files(lo, hi) {
            Err(e) if e.is_not_found() && !self.resolved => {
                tracing::info!(segment = %self.segment, error = %e, "a data file the sidecar names is gone; finding the rows in the current table");
                self.resolve(lo, hi)?;
                self.read_files(lo, hi)
            }
            other => other,
        }
    }

    /// Finds the files holding the segment's rows in the table's current snapshot.
    fn resolve(&mut self, lo: i64, hi: i64) -> Result<()> {
        let inner = &self.inner;
        let table_err = |source| RsmError::Table { segment: self.segment.clone(), source: Box::new(source) };
        let (start, end) = (self.sidecar.segment.start_offset, self.sidecar.segment.end_offset);
        let table = inner.runtime.block_on(inner.catalog.load_table(&self.topic)).map_err(table_err)?;
        let found = inner.files_holding(&table, &self.topic_id, self.partition, (start, end), &self.segment)?;
        if found.is_empty() {
            return Err(RsmError::RowsMissing {
                segment: self.segment.clone(),
                start_offset: lo,
                end_offset: hi,
                reason: format!(
                    "no live data file of table {} holds offsets {start}..={end} of topic id {} partition {} (were they deleted from the table?)",
                    table.identifier(),
                    self.topic_id,
                    self.partition
                ),
            });
        }
        self.files = found;
        self.resolved = true;
        inner.repoint_sidecar(self.segment_id, self.files.clone());
        Ok(())
    }

    fn read_files(&self, lo: i64, hi: i64) -> Result<(Vec<RowsView>, usize)> {
        let mut views = Vec::new();
        let mut decoded = 0;
        let all_columns = self.sidecar.value_schemas.is_some() || self.sidecar.key_schemas.is_some();
        for f in self.files.iter().filter(|f| f.max_offset >= lo && f.min_offset <= hi) {
            let batches = self
                .inner
                .runtime
                .block_on(self.inner.rows.read(&f.location, f.file_size, lo..=hi, all_columns, Some((&self.topic_id, self.partition))))
                .map_err(|source| RsmError::from_parquet(format!("{}: {}", self.segment, f.location), source))?;
            for b in batches {
                let b = sorted_by_offset(b).map_err(|source| RsmError::Layout { segment: self.segment.clone(), source })?;
                decoded += b.get_array_memory_size();
                views.push(RowsView::new(&b).map_err(|source| RsmError::Layout { segment: self.segment.clone(), source })?);
            }
        }
        Ok((views, decoded))
    }
}

/// `batch` sorted by `kafka.offset` (our files are; a file another engine compacted may not be).
fn sorted_by_offset(batch: RecordBatch) -> Result<RecordBatch, LayoutError> {
    use arrow_array::cast::AsArray;
    let offsets = batch
        .column_by_name("kafka")
        .and_then(|k| k.as_struct_opt())
        .and_then(|k| k.column_by_name("offset"))
        .and_then(|o| o.as_primitive_opt::<arrow_array::types::Int64Type>())
        .cloned();
    let Some(offsets) = offsets else {
        return Ok(batch); // RowsView reports the missing column
    };
    if offsets.values().windows(2).all(|w| w[0] <= w[1]) {
        return Ok(batch);
    }
    let indices = arrow_ord::sort::sort_to_indices(&offsets, None, None).map_err(LayoutError::Arrow)?;
    let columns = batch
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &indices, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(LayoutError::Arrow)?;
    RecordBatch::try_new(batch.schema(), columns).map_err(LayoutError::Arrow)
}

/// The rows with offsets in `lo..=hi` from views that are each sorted by offset, merged by
/// offset (one file is the common case: then it is a plain walk).
fn merged_rows(views: &[RowsView], lo: i64, hi: i64) -> impl Iterator<Item = RowRef<'_>> {
    let mut cursors: Vec<(usize, usize)> =
        views.iter().enumerate().map(|(v, view)| (v, view.offsets().partition_point(|&o| o < lo))).collect();
    std::iter::from_fn(move || {
        let mut best: Option<(usize, i64)> = None;
        for (c, &(v, row)) in cursors.iter().enumerate() {
            if let Some(&o) = views[v].offsets().get(row) {
                if o <= hi && best.is_none_or(|(_, b)| o < b) {
                    best = Some((c, o));
                }
            }
        }
        let (c, _) = best?;
        let (v, row) = cursors[c];
        cursors[c].1 += 1;
        Some(RowRef { view: &views[v], row })
    })
}

impl Read for SegmentStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.chunk_pos >= self.chunk.len() {
            if self.position >= self.end {
                return Ok(0);
            }
            self.fill(buf.len() as u64).map_err(io::Error::other)?;
        }
        let n = buf.len().min(self.chunk.len() - self.chunk_pos);
        buf[..n].copy_from_slice(&self.chunk[self.chunk_pos..self.chunk_pos + n]);
        self.chunk_pos += n;
        Ok(n)
    }
}

impl SegmentStream {
    /// Like `read` with a chunk-sized buffer, but with the typed error.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.chunk_pos >= self.chunk.len() {
            if self.position >= self.end {
                return Ok(None);
            }
            self.fill(self.inner.config.fetch_chunk_bytes as u64)?;
        }
        let out = &self.chunk[self.chunk_pos..];
        self.chunk_pos = self.chunk.len();
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ahead_from_the_third_step_within_the_bound() {
        let mib = 1u64 << 20;
        let spans: Vec<u64> = (0..8).map(|step| read_span(step, mib, None)).collect();
        assert_eq!(spans, [1, 1, 2, 4, 8, 16, 16, 16].map(|n| n * mib));
        // Rows decoding to 4 bytes per served byte: at most READ_AHEAD_BYTES / 4 served.
        assert_eq!(read_span(7, mib, Some(4.0)), READ_AHEAD_BYTES / 4);
        // Never less than one step, whatever the rows decode to.
        assert_eq!(read_span(7, mib, Some(1000.0)), mib);
        assert_eq!(read_span(7, mib, Some(0.0)), 16 * mib);
        assert_eq!(read_span(u32::MAX, u64::MAX, None), u64::MAX);
    }

    #[test]
    fn a_first_step_is_a_chunk_later_ones_what_is_read() {
        let mib = 1u64 << 20;
        // The broker's first read is a 17-byte batch header: the first step is a chunk anyway.
        assert_eq!(step_span(0, 17, mib, None), mib);
        // The tail of a fetch: what the read asks for, never more than a chunk, never nothing.
        assert_eq!(step_span(1, 5000, mib, None), 5000);
        assert_eq!(step_span(3, 8 * mib, mib, None), mib);
        assert_eq!(step_span(1, 0, mib, None), 1);
        // zstd batches serving 1.6x their size as lz4: 1 MiB served is 1/1.6 MiB estimated.
        assert_eq!(step_span(0, 0, 1600, Some(1.6)), 1000);
        assert_eq!(step_span(2, 800, 1600, Some(1.6)), 500);
        // Nonsense measures fall back to 1 or stay within bounds.
        assert_eq!(step_span(0, 0, mib, Some(f64::NAN)), mib);
        assert_eq!(step_span(0, 0, mib, Some(0.0)), mib);
        assert_eq!(step_span(0, 0, 64 * mib, Some(1e9)), mib);
    }
}
