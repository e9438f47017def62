//! `fetchLogSegment`: a lazy stream over the served layout.
//!
//! Each step takes the next batches worth about `fetch.chunk.bytes` of served bytes, reads the
//! rows of exactly their offsets from the data files that hold them (merged by offset when a
//! segment's rows span several files), rebuilds the batches, and hands the bytes out. The broker
//! reads about one fetch (1 MiB by default) and closes the stream: the work done matches.
//! For a segment copied in a schema mode (its sidecar has value schemas), every column is read
//! and values in columns are re-encoded by `calving_layout::served`.

use std::io::{self, Read};
use std::sync::Arc;

use calving_layout::rows::RowsView;
use calving_layout::served::{self, Rebuilder, RowRef};
use calving_layout::sidecar::{BatchKind, Sidecar};

use crate::error::{Result, RsmError};
use crate::metadata::SegmentMetadata;
use crate::Inner;

/// The served bytes of a segment from a position, produced as they are read.
pub struct SegmentStream {
    inner: Arc<Inner>,
    segment: String,
    sidecar: Arc<Sidecar>,
    /// Next served position to produce.
    position: u64,
    /// End of the stream (exclusive).
    end: u64,
    chunk: Vec<u8>,
    chunk_pos: usize,
    rebuilder: Rebuilder,
}

impl std::fmt::Debug for SegmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentStream").field("segment", &self.segment).field("position", &self.position).finish()
    }
}

pub(crate) fn open(inner: &Arc<Inner>, seg: &SegmentMetadata, start: u64, end: Option<u64>) -> Result<SegmentStream> {
    let sidecar = inner.sidecar(seg)?;
    let size = served::served_size(&sidecar.batches);
    if start > size {
        return Err(RsmError::BadPosition { segment: seg.to_string(), position: start, size });
    }
    let end = end.map_or(size, |e| e.saturating_add(1).min(size)).max(start);
    Ok(SegmentStream {
        inner: inner.clone(),
        segment: seg.to_string(),
        sidecar,
        position: start,
        end,
        chunk: Vec::new(),
        chunk_pos: 0,
        rebuilder: Rebuilder::default(),
    })
}

impl SegmentStream {
    /// Total bytes this stream yields.
    pub fn len(&self) -> u64 {
        self.end - self.position + (self.chunk.len() - self.chunk_pos) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Produces the next chunk of served bytes into `self.chunk`.
    fn fill(&mut self) -> Result<()> {
        let batches = &self.sidecar.batches;
        let first = served::batch_at(batches, self.position).ok_or_else(|| RsmError::BadPosition {
            segment: self.segment.clone(),
            position: self.position,
            size: served::served_size(batches),
        })?;
        let want = self.inner.config.fetch_chunk_bytes as u64;
        let mut last = first;
        while last + 1 < batches.len()
            && batches[last + 1].served_position < self.end
            && batches[last + 1].served_position - batches[first].served_position < want
        {
            last += 1;
        }
        let range = first..last + 1;
        let lo = batches[first].header.base_offset;
        let hi = batches[last].last_offset();
        let needs_rows = batches[range.clone()].iter().any(|b| b.kind == BatchKind::Rows);
        let views = if needs_rows { self.read_rows(lo, hi)? } else { Vec::new() };
        let mut rows = merged_rows(&views, lo, hi);
        self.chunk.clear();
        self.rebuilder
            .rebuild_range(&self.sidecar, range, &mut rows, &mut self.chunk)
            .map_err(|source| RsmError::Layout { segment: self.segment.clone(), source })?;
        let chunk_start = batches[first].served_position;
        let skip = (self.position - chunk_start) as usize;
        let take = ((self.end - chunk_start) as usize).min(self.chunk.len());
        self.chunk.truncate(take);
        self.chunk_pos = skip;
        self.position = chunk_start + take as u64;
        Ok(())
    }

    fn read_rows(&self, lo: i64, hi: i64) -> Result<Vec<RowsView>> {
        let mut views = Vec::new();
        for f in self.sidecar.files.iter().filter(|f| f.max_offset >= lo && f.min_offset <= hi) {
            let batches = self
                .inner
                .runtime
                .block_on(self.inner.rows.read(
                    &f.location,
                    f.file_size,
                    lo..=hi,
                    self.sidecar.value_schemas.is_some() || self.sidecar.key_schemas.is_some(),
                ))
                .map_err(|source| RsmError::from_parquet(format!("{}: {}", self.segment, f.location), source))?;
            for b in batches {
                views.push(RowsView::new(&b).map_err(|source| RsmError::Layout { segment: self.segment.clone(), source })?);
            }
        }
        Ok(views)
    }
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
        if self.chunk_pos >= self.chunk.len() {
            if self.position >= self.end {
                return Ok(0);
            }
            self.fill().map_err(io::Error::other)?;
        }
        let n = buf.len().min(self.chunk.len() - self.chunk_pos);
        buf[..n].copy_from_slice(&self.chunk[self.chunk_pos..self.chunk_pos + n]);
        self.chunk_pos += n;
        Ok(n)
    }
}

impl SegmentStream {
    /// Like `read`, but with the typed error.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.chunk_pos >= self.chunk.len() {
            if self.position >= self.end {
                return Ok(None);
            }
            self.fill()?;
        }
        let out = &self.chunk[self.chunk_pos..];
        self.chunk_pos = self.chunk.len();
        Ok(Some(out))
    }
}
