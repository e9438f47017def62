//! Manifests for the snapshots Calving commits (appends, removals, maintenance): the pieces every
//! `publish::Change` builds its snapshot from, written with iceberg-rust's public manifest
//! writer (format v2 data manifests). Each path written is recorded in `written`, so the commit
//! driver can delete what a change wrote when nothing of it landed.

use std::collections::HashSet;

use iceberg::spec::{DataFile, ManifestFile, ManifestStatus, ManifestWriter, ManifestWriterBuilder};
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::error::Result;

/// A writer of a new data manifest of snapshot `snapshot_id` in partition spec `spec_id`.
pub(crate) fn writer(table: &Table, snapshot_id: i64, spec_id: i32, written: &mut Vec<String>) -> Result<ManifestWriter> {
    let metadata = table.metadata();
    let spec = metadata.partition_spec_by_id(spec_id).ok_or_else(|| {
        iceberg::Error::new(ErrorKind::DataInvalid, format!("table {} has no partition spec {spec_id}", table.identifier()))
    })?;
    let path = format!("{}/metadata/{}-m{}.avro", metadata.location().trim_end_matches('/'), uuid::Uuid::new_v4(), written.len());
    written.push(path.clone());
    Ok(ManifestWriterBuilder::new(table.file_io().new_output(&path)?, Some(snapshot_id), metadata.current_schema().clone(), spec.as_ref().clone())
        .build_v2_data())
}

/// A new manifest of snapshot `snapshot_id` listing `files` as added (the default spec's files).
pub(crate) async fn added(table: &Table, snapshot_id: i64, files: &[DataFile], written: &mut Vec<String>) -> Result<ManifestFile> {
    let mut w = writer(table, snapshot_id, table.metadata().default_partition_spec_id(), written)?;
    for f in files {
        w.add_file(f.clone(), -1)?;
    }
    Ok(w.write_manifest_file().await?)
}

/// `manifest` rewritten for snapshot `snapshot_id`: its live entries whose file is in `dropped`
/// are marked deleted, the others carried over as existing (with their snapshot and sequence
/// numbers); deletions recorded by earlier snapshots are not carried over.
pub(crate) async fn without(
    table: &Table,
    manifest: &ManifestFile,
    snapshot_id: i64,
    dropped: &HashSet<String>,
    written: &mut Vec<String>,
) -> Result<ManifestFile> {
    let entries = manifest.load_manifest(table.file_io()).await?;
    let mut w = writer(table, snapshot_id, manifest.partition_spec_id, written)?;
    for entry in entries.entries() {
        if entry.status() == ManifestStatus::Deleted {
            continue;
        }
        let seq = entry.sequence_number().unwrap_or(manifest.sequence_number);
        let data_file = entry.data_file().clone();
        if dropped.contains(data_file.file_path()) {
            w.add_delete_file(data_file, seq, entry.file_sequence_number)?;
        } else {
            let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
            w.add_existing_file(data_file, added_by, seq, entry.file_sequence_number)?;
        }
    }
    Ok(w.write_manifest_file().await?)
}
