//! `deleteLogSegmentData`: the two retention modes.
//!
//! - `keep` (default): the rows stay in the table for analytics; only what Kafka needs to serve
//!   the segment (its sidecar) is deleted. The table keeps growing; its own retention is the
//!   table owner's business (snapshot expiry, row deletes by any engine).
//! - `delete`: the rows go too: the offsets of this segment that **no other live segment of the
//!   partition covers** (a re-uploaded segment may point at rows an earlier copy committed,
//!   DESIGN.md invariant 4, and Kafka must go on reading them, invariant 9). The rows are found by
//!   (topic id, partition, offsets) in the current table (`calving_table::remove_offsets`: whole
//!   files dropped, compacted files rewritten without them), and the ledger forgets the offsets,
//!   whatever happened to the table's history or files since the copy. Removed files leave the
//!   table's current snapshot only; the files stay in storage for older snapshots and in-flight
//!   reads until snapshot expiry and the orphan sweep.
//!
//! Both are idempotent, and crash-safe in this order: the table change first, then the sidecar. A
//! retry after a crash in between finds the sidecar, finds nothing left to remove, and deletes it.

use crate::config::{self, RetentionMode};
use crate::error::{Result, RsmError};
use crate::{Inner, SegmentMetadata};

pub(crate) fn delete(inner: &Inner, segment: &SegmentMetadata) -> Result<()> {
    let mode = inner.config.retention_mode(&segment.topic);
    let locations = inner.sidecar_locations(segment)?;
    if mode == RetentionMode::Delete {
        remove_rows(inner, segment)?;
    }
    for location in &locations {
        inner
            .runtime
            .block_on(inner.storage.delete(location))
            .map_err(|source| RsmError::Storage { segment: segment.to_string(), source })?;
    }
    inner.forget_sidecar(segment);
    match mode {
        RetentionMode::Keep => {
            tracing::info!(%segment, "deleted the segment's sidecar; its rows stay in the table ({}=keep)", config::RETENTION_MODE)
        }
        RetentionMode::Delete => tracing::info!(%segment, "deleted the segment ({}=delete)", config::RETENTION_MODE),
    }
    Ok(())
}

/// Removes from the table the rows of the segment's offsets that no other live segment covers.
fn remove_rows(inner: &Inner, segment: &SegmentMetadata) -> Result<()> {
    let name = segment.to_string();
    match inner.table_location(segment) {
        Ok(_) => {}
        // The catalog says there is no table: nothing of this segment can exist. Any other
        // failure (catalog unreachable, an incompatible table) is the broker's to see: success
        // means the rows are gone or were never there.
        Err(RsmError::Table { source, .. }) if source.is_table_not_found() => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut doomed = calving_table::Ledger::default();
    let topic_id = segment.topic_id.to_string();
    doomed.add(&topic_id, segment.partition, segment.start_offset, segment.end_offset);
    for other in inner.list_sidecars(&segment.topic, Some(segment.partition), &name)? {
        if other.segment_id != segment.segment_id {
            doomed.remove(&topic_id, segment.partition, other.start_offset, other.end_offset);
        }
    }
    let ranges = doomed.ranges(&topic_id, segment.partition).to_vec();
    if ranges.is_empty() {
        tracing::info!(%segment, "every offset of this segment is still served by another segment; the table keeps its rows");
        return Ok(());
    }
    let outcome = inner
        .runtime
        .block_on(calving_table::remove_offsets(&inner.catalog, &segment.topic, &topic_id, segment.partition, &ranges))
        .map_err(|source| RsmError::Table { segment: name, source: Box::new(source) })?;
    tracing::info!(%segment, ?ranges, files = outcome.files, rewritten = outcome.rewritten, rows = outcome.rows, "removed the segment's rows from the table");
    Ok(())
}
