//! `deleteLogSegmentData`: the two retention modes.
//!
//! - `keep` (default): the rows stay in the table for analytics; only what Kafka needs to serve
//!   the segment (its sidecar) is deleted. The table keeps growing; its own retention is the
//!   table owner's business (snapshot expiry, row deletes by any engine).
//! - `delete`: the rows go too. Rows leave a whole segment commit at a time, once **no live
//!   segment refers to any data file of that commit**: a re-uploaded segment may point at rows an
//!   earlier copy committed (DESIGN.md invariant 4), and Kafka must go on reading them
//!   (invariant 9). Removed files leave the table's current snapshot only; the files stay in
//!   storage for older snapshots and in-flight reads until snapshot expiry and the orphan sweep.
//!
//! Both are idempotent, and crash-safe in this order: the table change first, then the sidecar. A
//! retry after a crash in between finds the sidecar, finds nothing left to remove, and deletes it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use calving_layout::sidecar::Sidecar;

use crate::config::{self, RetentionMode};
use crate::error::{Result, RsmError};
use crate::{Inner, SegmentMetadata};

pub(crate) fn delete(inner: &Inner, segment: &SegmentMetadata) -> Result<()> {
    let mode = inner.config.retention_mode(&segment.topic);
    let location = match inner.sidecar_location(segment) {
        Ok(l) => l,
        // No table: nothing of this segment can exist.
        Err(RsmError::Table { source, .. }) if !source.is_retriable() => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode == RetentionMode::Delete {
        match inner.sidecar(segment) {
            Ok(sidecar) => remove_rows(inner, segment, &sidecar)?,
            Err(e) if e.is_not_found() => {} // deleted before
            Err(e) => return Err(e),
        }
    }
    inner
        .runtime
        .block_on(inner.storage.delete(&location))
        .map_err(|source| RsmError::Storage { segment: segment.to_string(), source })?;
    inner.forget_sidecar(segment);
    match mode {
        RetentionMode::Keep => {
            tracing::info!(%segment, "deleted the segment's sidecar; its rows stay in the table ({}=keep)", config::RETENTION_MODE)
        }
        RetentionMode::Delete => tracing::info!(%segment, "deleted the segment ({}=delete)", config::RETENTION_MODE),
    }
    Ok(())
}

/// Removes from the table the segment commits whose files only this segment still refers to.
fn remove_rows(inner: &Inner, segment: &SegmentMetadata, sidecar: &Sidecar) -> Result<()> {
    let name = segment.to_string();
    let table_err = |source| RsmError::Table { segment: name.clone(), source: Box::new(source) };
    let rt = &inner.runtime;
    let table = rt.block_on(inner.catalog.load_table(&segment.topic)).map_err(table_err)?;
    let live = rt.block_on(calving_table::live_files(&table)).map_err(table_err)?;
    let referenced: HashSet<&str> = sidecar.files.iter().map(|f| f.location.as_str()).collect();

    // The commits holding rows this segment serves, with all their live files.
    let mut candidates: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let hit: BTreeSet<&str> = live
        .iter()
        .filter(|f| referenced.contains(f.data_file.file_path()))
        .filter_map(|f| f.segment_id.as_deref())
        .collect();
    for f in &live {
        if let Some(id) = f.segment_id.as_deref().filter(|id| hit.contains(id)) {
            candidates.entry(id.to_string()).or_default().push(f.data_file.file_path());
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }

    // Files other live segments of the partition refer to. Only segments overlapping the offsets
    // of the candidate commits can.
    let ranges: Vec<(i64, i64)> = calving_table::committed_ranges(&table, &segment.topic_id.to_string(), segment.partition)
        .into_iter()
        .filter(|r| candidates.contains_key(&r.segment_id))
        .map(|r| (r.start_offset, r.end_offset))
        .collect();
    let (lo, hi) = ranges
        .iter()
        .fold((segment.start_offset, segment.end_offset), |(lo, hi), &(s, e)| (lo.min(s), hi.max(e)));
    let table_location = table.metadata().location().trim_end_matches('/');
    let mut protected: HashSet<String> = HashSet::new();
    for other in inner.list_sidecars(table_location, Some(segment.partition), &name)? {
        if other.segment_id == segment.segment_id || other.end_offset < lo || other.start_offset > hi {
            continue;
        }
        let md = SegmentMetadata {
            segment_id: other.segment_id,
            start_offset: other.start_offset,
            end_offset: other.end_offset,
            ..segment.clone()
        };
        match inner.sidecar(&md) {
            Ok(s) => protected.extend(s.files.iter().map(|f| f.location.clone())),
            Err(e) if e.is_not_found() => {} // deleted meanwhile
            Err(e) => return Err(e),
        }
    }
    let doomed: BTreeSet<String> = candidates
        .into_iter()
        .filter(|(_, files)| files.iter().all(|f| !protected.contains(*f)))
        .map(|(id, _)| id)
        .collect();
    if doomed.is_empty() {
        tracing::info!(%segment, "every row of this segment is still served by another segment; the table keeps them");
        return Ok(());
    }
    let outcome = rt
        .block_on(calving_table::remove_segments(&inner.catalog, &segment.topic, &doomed))
        .map_err(table_err)?;
    tracing::info!(%segment, removed_commits = ?doomed, files = outcome.files, rows = outcome.rows, "removed the segment's rows from the table");
    Ok(())
}
