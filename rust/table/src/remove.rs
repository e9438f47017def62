//! Removing segments' rows from a topic's table (the `delete` retention mode), and finding the
//! live data files of segment commits.
//!
//! Rows leave the table a whole segment commit at a time: [`remove_segments`] commits one snapshot
//! (operation `delete`) in which every live data file added by the given segments' commits is
//! marked deleted, and whose summary lists the segment ids in [`REMOVED_SEGMENT_IDS_PROP`]. From
//! then on those commits no longer count as committed offsets ([`crate::committed_ranges`] skips
//! them), so a later re-upload of the offsets writes them again instead of pointing at removed
//! files. Files are only dropped from the table's current snapshot, never deleted from storage:
//! older snapshots (time travel) and in-flight Kafka reads still use them; deleting them belongs to
//! snapshot expiry and the orphan sweep.
//!
//! iceberg-rust 0.10.1 has no delete action, so the snapshot is built here with its public
//! manifest and manifest-list writers (affected manifests are rewritten: removed entries
//! `DELETED`, the others `EXISTING` with their sequence numbers; untouched manifests are carried
//! over) and committed through [`crate::snapshot_commit`]. Format v2 tables only.

use std::collections::{BTreeSet, HashMap};

use iceberg::spec::{
    DataFile, FormatVersion, ManifestContentType, ManifestFile, ManifestListWriter,
    ManifestStatus, ManifestWriterBuilder, Operation, Snapshot, SnapshotReference,
    SnapshotRetention, Summary, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::{ErrorKind, TableRequirement, TableUpdate};

use crate::commit::{ancestry, SEGMENT_ID_PROP};
use crate::error::{Error, Result};
use crate::CalvingCatalog;

/// Snapshot summary key of a removal: the ids of the segments whose rows it removed, comma-separated.
pub const REMOVED_SEGMENT_IDS_PROP: &str = "calving.removed-segment-ids";

/// How many times [`remove_segments`] rebuilds its snapshot after losing a race to another writer.
const CONFLICT_ATTEMPTS: usize = 8;

/// A live data file of the current snapshot and the segment whose commit added it.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub data_file: DataFile,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
    /// The segment id in that snapshot's summary, when the snapshot is still in the metadata and
    /// was a Calving commit.
    pub segment_id: Option<String>,
}

/// Every live data file of the table's current snapshot (reads all its manifests).
pub async fn live_files(table: &Table) -> Result<Vec<LiveFile>> {
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
    let segment_of: HashMap<i64, String> = metadata
        .snapshots()
        .filter_map(|s| {
            let id = s.summary().additional_properties.get(SEGMENT_ID_PROP)?;
            Some((s.snapshot_id(), id.clone()))
        })
        .collect();
    let list = table.manifest_list_reader(snapshot).load().await?;
    let mut out = Vec::new();
    for manifest_file in list.entries() {
        if manifest_file.content != ManifestContentType::Data {
            continue;
        }
        let manifest = manifest_file.load_manifest(table.file_io()).await?;
        for entry in manifest.entries() {
            if !entry.is_alive() {
                continue;
            }
            let snapshot_id = entry.snapshot_id().unwrap_or(manifest_file.added_snapshot_id);
            out.push(LiveFile {
                data_file: entry.data_file().clone(),
                snapshot_id,
                segment_id: segment_of.get(&snapshot_id).cloned(),
            });
        }
    }
    Ok(out)
}

/// Every file the table's metadata refers to: the current and logged metadata files, and for
/// every snapshot still in the metadata its manifest list, manifests and data and delete files
/// (including files a later snapshot removed: time travel still reads them). Locations as the
/// metadata writes them, in [`normalize`]d form.
pub async fn referenced_files(table: &Table) -> Result<std::collections::HashSet<String>> {
    let metadata = table.metadata();
    let mut out = std::collections::HashSet::new();
    if let Some(l) = table.metadata_location() {
        out.insert(normalize(l));
    }
    for log in metadata.metadata_log() {
        out.insert(normalize(&log.metadata_file));
    }
    let mut manifests_seen = std::collections::HashSet::new();
    for snapshot in metadata.snapshots() {
        out.insert(normalize(snapshot.manifest_list()));
        let list = table.manifest_list_reader(snapshot).load().await?;
        for manifest_file in list.entries() {
            if !manifests_seen.insert(manifest_file.manifest_path.clone()) {
                continue;
            }
            out.insert(normalize(&manifest_file.manifest_path));
            let manifest = manifest_file.load_manifest(table.file_io()).await?;
            for entry in manifest.entries() {
                out.insert(normalize(entry.data_file().file_path()));
            }
        }
    }
    for stats in metadata.statistics_iter() {
        out.insert(normalize(&stats.statistics_path));
    }
    Ok(out)
}

/// A location in one canonical form: `file:/x`, `file:///x` and `/x` are the same local file.
pub fn normalize(location: &str) -> String {
    if let Some(rest) = location.strip_prefix("file://") {
        rest.to_string()
    } else if let Some(rest) = location.strip_prefix("file:") {
        rest.to_string()
    } else {
        location.to_string()
    }
}

/// The ids of segments whose rows a removal in the current ancestry took out of the table.
pub fn removed_segment_ids(table: &Table) -> BTreeSet<String> {
    ancestry(table)
        .filter_map(|s| s.summary().additional_properties.get(REMOVED_SEGMENT_IDS_PROP))
        .flat_map(|ids| ids.split(',').filter(|s| !s.is_empty()).map(str::to_string))
        .collect()
}

/// What [`remove_segments`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// The snapshot that removed the files; `None` when none of the segments had live files.
    pub snapshot_id: Option<i64>,
    pub files: usize,
    pub rows: u64,
}

/// Removes every live data file added by the commits of `segment_ids` from the topic's table, in
/// one snapshot; see the module docs. Idempotent: segments without live files are a no-op.
pub async fn remove_segments(
    catalog: &CalvingCatalog,
    topic: &str,
    segment_ids: &BTreeSet<String>,
) -> Result<RemoveOutcome> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = catalog.load_table(topic).await?;
        match remove_once(catalog, &table, segment_ids).await {
            Err(Error::CommitConflict { .. }) if attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!(table = %table.identifier(), attempt, "removal lost a race; retrying on the fresh table");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            other => return other,
        }
    }
}

async fn remove_once(
    catalog: &CalvingCatalog,
    table: &Table,
    segment_ids: &BTreeSet<String>,
) -> Result<RemoveOutcome> {
    let metadata = table.metadata();
    let ident = table.identifier().to_string();
    let none = RemoveOutcome { snapshot_id: None, files: 0, rows: 0 };
    let Some(parent) = metadata.current_snapshot().cloned() else {
        return Ok(none);
    };
    // The snapshots whose files go.
    let doomed: BTreeSet<i64> = metadata
        .snapshots()
        .filter(|s| {
            s.summary()
                .additional_properties
                .get(SEGMENT_ID_PROP)
                .is_some_and(|id| segment_ids.contains(id))
        })
        .map(|s| s.snapshot_id())
        .collect();
    if doomed.is_empty() {
        return Ok(none);
    }
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::UnsupportedOperation {
            table: ident,
            operation: "removing rows",
            reason: format!(
                "Calving removes rows from Iceberg format v2 tables only; this one is {:?}",
                metadata.format_version()
            ),
        });
    }

    let snapshot_id = new_snapshot_id(table);
    let sequence_number = metadata.next_sequence_number();
    let location = metadata.location().trim_end_matches('/');
    let file_io = table.file_io();
    let list = table.manifest_list_reader(&parent).load().await?;
    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut written: Vec<String> = Vec::new();
    let (mut files, mut rows, mut bytes) = (0usize, 0u64, 0u64);

    let result: Result<()> = async {
        for manifest_file in list.entries() {
            if manifest_file.content != ManifestContentType::Data {
                manifests.push(manifest_file.clone());
                continue;
            }
            let manifest = manifest_file.load_manifest(file_io).await?;
            let hit = manifest.entries().iter().any(|e| {
                e.is_alive()
                    && doomed.contains(&e.snapshot_id().unwrap_or(manifest_file.added_snapshot_id))
            });
            if !hit {
                manifests.push(manifest_file.clone());
                continue;
            }
            let spec = metadata
                .partition_spec_by_id(manifest_file.partition_spec_id)
                .ok_or_else(|| {
                    iceberg::Error::new(
                        ErrorKind::DataInvalid,
                        format!("manifest {} uses unknown partition spec {}", manifest_file.manifest_path, manifest_file.partition_spec_id),
                    )
                })?;
            let path = format!("{location}/metadata/{}-m{}.avro", uuid::Uuid::new_v4(), written.len());
            written.push(path.clone());
            let mut writer = ManifestWriterBuilder::new(
                file_io.new_output(&path)?,
                Some(snapshot_id),
                metadata.current_schema().clone(),
                spec.as_ref().clone(),
            )
            .build_v2_data();
            for entry in manifest.entries() {
                if entry.status() == ManifestStatus::Deleted {
                    continue; // deletions of earlier snapshots are not carried over
                }
                let added_by = entry.snapshot_id().unwrap_or(manifest_file.added_snapshot_id);
                let seq = entry.sequence_number().unwrap_or(manifest_file.sequence_number);
                let data_file = entry.data_file().clone();
                if doomed.contains(&added_by) {
                    files += 1;
                    rows += data_file.record_count();
                    bytes += data_file.file_size_in_bytes();
                    writer.add_delete_file(data_file, seq, entry.file_sequence_number)?;
                } else {
                    writer.add_existing_file(data_file, added_by, seq, entry.file_sequence_number)?;
                }
            }
            manifests.push(writer.write_manifest_file().await?);
        }
        Ok(())
    }
    .await;
    let cleanup = |written: Vec<String>| async move {
        for path in written {
            let _ = file_io.delete(&path).await;
        }
    };
    if let Err(e) = result {
        cleanup(written).await;
        return Err(e);
    }
    if files == 0 {
        cleanup(written).await;
        return Ok(none);
    }

    let list_path = format!("{location}/metadata/snap-{snapshot_id}-1-{}.avro", uuid::Uuid::new_v4());
    written.push(list_path.clone());
    let built: Result<Snapshot> = async {
        let mut list_writer = ManifestListWriter::v2(
            file_io.new_output(&list_path)?.writer().await?,
            snapshot_id,
            Some(parent.snapshot_id()),
            sequence_number,
        );
        list_writer.add_manifests(manifests.into_iter())?;
        list_writer.close().await?;
        let mut props = HashMap::from([
            (REMOVED_SEGMENT_IDS_PROP.to_string(), segment_ids.iter().cloned().collect::<Vec<_>>().join(",")),
            ("deleted-data-files".to_string(), files.to_string()),
            ("deleted-records".to_string(), rows.to_string()),
            ("removed-files-size".to_string(), bytes.to_string()),
        ]);
        let previous = &parent.summary().additional_properties;
        for (key, minus) in [("total-data-files", files as u64), ("total-records", rows), ("total-files-size", bytes)] {
            if let Some(total) = previous.get(key).and_then(|v| v.parse::<u64>().ok()) {
                props.insert(key.to_string(), total.saturating_sub(minus).to_string());
            }
        }
        for key in ["total-delete-files", "total-position-deletes", "total-equality-deletes"] {
            if let Some(v) = previous.get(key) {
                props.insert(key.to_string(), v.clone());
            }
        }
        Ok(Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(Some(parent.snapshot_id()))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(now_ms().max(metadata.last_updated_ms() + 1))
            .with_manifest_list(list_path.clone())
            .with_summary(Summary { operation: Operation::Delete, additional_properties: props })
            .with_schema_id(metadata.current_schema_id())
            .build())
    }
    .await;
    let snapshot = match built {
        Ok(s) => s,
        Err(e) => {
            cleanup(written).await;
            return Err(e);
        }
    };
    let requirements = vec![
        TableRequirement::UuidMatch { uuid: metadata.uuid() },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: Some(parent.snapshot_id()),
        },
    ];
    let updates = vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_string(),
            reference: SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
        },
    ];
    match crate::snapshot_commit::commit(catalog.config(), table, requirements, updates).await {
        Ok(()) => {
            tracing::info!(table = %ident, snapshot_id, files, rows, segments = ?segment_ids, "removed the rows of deleted segments");
            Ok(RemoveOutcome { snapshot_id: Some(snapshot_id), files, rows })
        }
        Err(e @ Error::CommitStateUnknown { .. }) => Err(e), // the files may be referenced now
        Err(e) => {
            cleanup(written).await;
            Err(e)
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A positive snapshot id the table does not use.
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
