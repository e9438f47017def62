//! The orphan sweep: removes what copies that never committed left in a topic's table location.
//!
//! A failed copy deletes what it wrote before returning, except when the commit's outcome is
//! unknown (its files may be in the table) or the process died mid-copy; and iceberg-rust leaves
//! the manifests of a commit that never landed. The sweep deletes every object under the table's
//! location that
//!
//! - no snapshot still in the table metadata refers to (metadata files, manifest lists,
//!   manifests, data and delete files: `calving_table::referenced_files`),
//! - no live segment's sidecar refers to (a Kafka read may need it although the table dropped it),
//! - is not a sidecar (sidecars belong to Kafka: they go with `deleteLogSegmentData`, which Kafka
//!   also calls for copies it saw fail),
//! - is not the line's waiting marker (`calving_table::carry::waiting_marker`: state of the commit
//!   line that brokers rewrite in ordinary operation; commit intents themselves are swept when old),
//! - and is older than `older_than`, so that a copy in flight (written, not yet committed) is
//!   never touched: give it well over the longest copy (the CLI's default is a day).
//!
//! Incomplete S3 multipart uploads are not objects and are not listed: let the bucket's
//! `AbortIncompleteMultipartUpload` lifecycle rule take them.

use std::time::{Duration, SystemTime};

use crate::error::{Result, RsmError};
use crate::Inner;

/// What [`crate::RemoteStorage::sweep_orphans`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects under the table location (sidecars excluded).
    pub scanned: usize,
    /// Unreferenced objects old enough to go: deleted (or, in a dry run, to be deleted).
    pub orphans: Vec<String>,
    pub orphan_bytes: u64,
    /// Unreferenced objects younger than the grace period: left alone.
    pub too_young: usize,
}

pub(crate) fn sweep(inner: &Inner, topic: &str, older_than: Duration, dry_run: bool) -> Result<SweepReport> {
    let what = format!("sweep of topic {topic}");
    let table_err = |source| RsmError::Table { segment: what.clone(), source: Box::new(source) };
    let storage_err = |source| RsmError::Storage { segment: what.clone(), source };
    let rt = &inner.runtime;
    let table = rt.block_on(inner.catalog.load_table(topic)).map_err(table_err)?;
    let location = table.metadata().location().trim_end_matches('/').to_string();
    let mut referenced = rt.block_on(calving_table::referenced_files(&table)).map_err(table_err)?;
    let sidecar_prefix = Inner::legacy_sidecars_root(&location);
    for stored in inner.list_sidecars(topic, None, &what)? {
        let bytes = match rt.block_on(inner.storage.get(&stored.sidecar_location)) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(storage_err(e)),
        };
        let sidecar = calving_layout::sidecar::Sidecar::decode(&bytes)
            .map_err(|source| RsmError::Layout { segment: stored.sidecar_location.clone(), source })?;
        referenced.extend(sidecar.files.iter().map(|f| calving_table::normalize(&f.location)));
    }
    let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = SweepReport::default();
    let objects = rt.block_on(inner.storage.list(&format!("{location}/"))).map_err(storage_err)?;
    let marker = calving_table::carry::waiting_marker(&location);
    for o in objects {
        if o.location.starts_with(&sidecar_prefix) || o.location == marker {
            continue;
        }
        report.scanned += 1;
        if referenced.contains(&calving_table::normalize(&o.location)) {
            continue;
        }
        if o.last_modified > cutoff {
            report.too_young += 1;
            continue;
        }
        report.orphan_bytes += o.size;
        report.orphans.push(o.location);
    }
    report.orphans.sort();
    if !dry_run {
        for location in &report.orphans {
            rt.block_on(inner.storage.delete(location)).map_err(storage_err)?;
        }
    }
    tracing::info!(
        topic,
        scanned = report.scanned,
        orphans = report.orphans.len(),
        orphan_bytes = report.orphan_bytes,
        too_young = report.too_young,
        dry_run,
        "orphan sweep"
    );
    Ok(report)
}
