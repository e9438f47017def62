//! Removing Kafka offsets' rows from a topic's table (the `delete` retention mode), and finding
//! live data files by what they hold.
//!
//! [`remove_offsets`] takes the rows of some offset ranges of one (topic id, partition) out of the
//! table in one snapshot, found by what the data files hold — never by which commit added them,
//! which snapshot expiry forgets and compaction by any engine changes:
//!
//! - a live data file whose rows all lie in the ranges (its `kafka.partition` and `kafka.offset`
//!   bounds say so) is marked deleted;
//! - a file that also holds other rows (a file compacted by Calving's maintenance or another
//!   engine) is rewritten without the removed rows (copy-on-write: the new file replaces it in the
//!   same snapshot);
//! - the snapshot's ledger ([`crate::ledger`]) no longer holds the ranges, so a later re-upload of
//!   those offsets writes them again.
//!
//! Files are only dropped from the table's current snapshot, never deleted from storage: older
//! snapshots (time travel) and in-flight Kafka reads still use them; deleting them belongs to
//! snapshot expiry and the orphan sweep. Committed through the commit driver
//! ([`crate::publish`]): retried on conflicts, re-planned on the fresh table.

use std::collections::{HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{BooleanArray, RecordBatch};
use async_trait::async_trait;
use iceberg::spec::{
    DataFile, Datum, ManifestContentType, ManifestFile, Operation, PrimitiveLiteral,
};
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::error::{Error, Result};
use crate::ledger;
use crate::manifests;
use crate::publish::{self, Change, Step};
use crate::CalvingCatalog;

/// A live data file of the current snapshot.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub data_file: DataFile,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
    /// The partition spec of its manifest.
    pub spec_id: i32,
}

/// Every live data file of the table's current snapshot (reads all its manifests).
pub async fn live_files(table: &Table) -> Result<Vec<LiveFile>> {
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
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
            out.push(LiveFile { data_file: entry.data_file().clone(), snapshot_id, spec_id: manifest_file.partition_spec_id });
        }
    }
    Ok(out)
}

/// Every file the table's metadata refers to: the current and logged metadata files, and for
/// every snapshot still in the metadata its manifest list, manifests and data and delete files
/// (including files a later snapshot removed: time travel still reads them). Locations in
/// [`normalize`]d form.
pub async fn referenced_files(table: &Table) -> Result<std::collections::HashSet<String>> {
    Ok(referenced_locations(table, true).await?.iter().map(|l| normalize(l)).collect())
}

/// [`referenced_files`], locations as the metadata writes them. With `deleted_entries` false, a
/// data file only some snapshot's manifest lists as deleted does not count (what snapshot expiry
/// may delete: a retained snapshot that still reads the file lists it as live).
pub async fn referenced_locations(table: &Table, deleted_entries: bool) -> Result<std::collections::HashSet<String>> {
    let metadata = table.metadata();
    let mut out = std::collections::HashSet::new();
    if let Some(l) = table.metadata_location() {
        out.insert(l.to_string());
    }
    for log in metadata.metadata_log() {
        out.insert(log.metadata_file.clone());
    }
    let mut manifests_seen = std::collections::HashSet::new();
    for snapshot in metadata.snapshots() {
        out.insert(snapshot.manifest_list().to_string());
        let list = table.manifest_list_reader(snapshot).load().await?;
        for manifest_file in list.entries() {
            if !manifests_seen.insert(manifest_file.manifest_path.clone()) {
                continue;
            }
            out.insert(manifest_file.manifest_path.clone());
            let manifest = manifest_file.load_manifest(table.file_io()).await?;
            for entry in manifest.entries().iter().filter(|e| deleted_entries || e.is_alive()) {
                out.insert(entry.data_file().file_path().to_string());
            }
        }
    }
    for stats in metadata.statistics_iter() {
        out.insert(stats.statistics_path.clone());
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


/// What a live data file holds of one (topic id, partition), by its column bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// None of its rows.
    Nothing,
    /// Rows of that partition only, with offsets from `.0` to `.1`.
    Only(i64, i64),
    /// Maybe rows of that partition, with offsets from `.0` to `.1`, beside rows of others.
    Some(i64, i64),
}

impl Holding {
    /// The offset bounds, unless it holds nothing.
    pub fn offsets(self) -> Option<(i64, i64)> {
        match self {
            Holding::Nothing => None,
            Holding::Only(lo, hi) | Holding::Some(lo, hi) => Some((lo, hi)),
        }
    }
}

/// The field ids of `kafka.topic_id`, `kafka.partition`, `kafka.offset`.
#[derive(Debug, Clone, Copy)]
pub struct KafkaFields {
    topic_id: i32,
    partition: i32,
    offset: i32,
}

impl KafkaFields {
    pub fn of(table: &Table) -> Result<KafkaFields> {
        Ok(KafkaFields {
            topic_id: crate::field_id(table, "kafka.topic_id")?,
            partition: crate::field_id(table, "kafka.partition")?,
            offset: crate::field_id(table, "kafka.offset")?,
        })
    }

    /// What `file` holds of `topic_id`/`partition`, from its bounds (missing bounds: anything).
    pub fn holding(&self, file: &DataFile, topic_id: &str, partition: i32) -> Holding {
        let (lo, hi) = (file.lower_bounds(), file.upper_bounds());
        let int = |d: Option<&Datum>| match d.map(Datum::literal) {
            Some(PrimitiveLiteral::Int(v)) => Some(*v),
            _ => None,
        };
        let long = |d: Option<&Datum>| match d.map(Datum::literal) {
            Some(PrimitiveLiteral::Long(v)) => Some(*v),
            _ => None,
        };
        let string = |d: Option<&Datum>| match d.map(Datum::literal) {
            Some(PrimitiveLiteral::String(v)) => Some(v.clone()),
            _ => None,
        };
        let (plo, phi) = (int(lo.get(&self.partition)), int(hi.get(&self.partition)));
        if plo.is_some_and(|v| v > partition) || phi.is_some_and(|v| v < partition) {
            return Holding::Nothing;
        }
        // String bounds may be truncated (Iceberg's default metrics mode): a lower bound is a
        // prefix-or-less, an upper bound a prefix-or-more.
        let (tlo, thi) = (string(lo.get(&self.topic_id)), string(hi.get(&self.topic_id)));
        if tlo.as_deref().is_some_and(|v| v > topic_id) || thi.as_deref().is_some_and(|v| v < topic_id && !topic_id.starts_with(v)) {
            return Holding::Nothing;
        }
        let (olo, ohi) = (long(lo.get(&self.offset)).unwrap_or(i64::MIN), long(hi.get(&self.offset)).unwrap_or(i64::MAX));
        let one_partition = plo == Some(partition) && phi == Some(partition);
        let one_topic = tlo.as_deref() == Some(topic_id) && thi.as_deref() == Some(topic_id);
        if one_partition && one_topic {
            Holding::Only(olo, ohi)
        } else {
            Holding::Some(olo, ohi)
        }
    }
}

/// The live data files that may hold offsets `start..=end` of `topic_id`/`partition`, with what
/// their bounds say they hold (reads every manifest of the current snapshot).
pub async fn files_holding(
    table: &Table,
    topic_id: &str,
    partition: i32,
    start: i64,
    end: i64,
) -> Result<Vec<(LiveFile, Holding)>> {
    let fields = KafkaFields::of(table)?;
    Ok(live_files(table)
        .await?
        .into_iter()
        .filter_map(|f| {
            let h = fields.holding(&f.data_file, topic_id, partition);
            let (lo, hi) = h.offsets()?;
            (lo <= end && start <= hi).then_some((f, h))
        })
        .collect())
}

/// What [`remove_offsets`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// The snapshot that removed the rows; `None` when the table held none of them.
    pub snapshot_id: Option<i64>,
    /// Data files dropped whole.
    pub files: usize,
    /// Data files rewritten without the removed rows.
    pub rewritten: usize,
    /// Rows removed.
    pub rows: u64,
}

/// Removes the rows of `ranges` (inclusive) of `topic_id`/`partition` from the topic's table, in
/// one snapshot; see the module docs. Idempotent: ranges without rows and not in the ledger are a
/// no-op.
pub async fn remove_offsets(
    catalog: &CalvingCatalog,
    topic: &str,
    topic_id: &str,
    partition: i32,
    ranges: &[(i64, i64)],
) -> Result<RemoveOutcome> {
    let mut change = Remove {
        writer_properties: catalog.writer_properties(),
        target: Target { topic_id: topic_id.to_string(), partition, ranges: ranges.to_vec() },
        written: Vec::new(),
        plan_start: 0,
        outcome: RemoveOutcome { snapshot_id: None, files: 0, rewritten: 0, rows: 0 },
    };
    let outcome = publish::publish(catalog, topic, &mut change).await?;
    if outcome.snapshot_id.is_some() {
        tracing::info!(
            table = %catalog.table_ident(topic),
            snapshot_id = ?outcome.snapshot_id,
            partition,
            ranges = ?ranges,
            files = outcome.files,
            rewritten = outcome.rewritten,
            rows = outcome.rows,
            "removed rows of deleted segments"
        );
    }
    Ok(outcome)
}

struct Remove {
    target: Target,
    writer_properties: parquet::file::properties::WriterProperties,
    /// Files written by attempts (rewritten data files, manifests).
    written: Vec<String>,
    /// Where the last plan's files start in `written`.
    plan_start: usize,
    outcome: RemoveOutcome,
}

/// The offsets a removal takes out.
struct Target {
    topic_id: String,
    partition: i32,
    ranges: Vec<(i64, i64)>,
}

impl Target {
    fn doomed(&self, offset: i64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= offset && offset <= e)
    }

    fn within(&self, lo: i64, hi: i64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= lo && hi <= e)
    }

    fn touches(&self, lo: i64, hi: i64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= hi && lo <= e)
    }
}

#[async_trait]
impl Change for Remove {
    type Output = RemoveOutcome;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<RemoveOutcome>> {
        self.plan_start = self.written.len();
        let metadata = table.metadata();
        let Some(parent) = metadata.current_snapshot().cloned() else {
            return Ok(Step::Finish(self.outcome.clone()));
        };
        let (mut ledger, _) = ledger::load(table).await?;
        let target = &self.target;
        let written = &mut self.written;
        let in_ledger = target.ranges.iter().any(|&(s, e)| !ledger.overlapping(&target.topic_id, target.partition, s, e).is_empty());
        for &(s, e) in &target.ranges {
            ledger.remove(&target.topic_id, target.partition, s, e);
        }
        let fields = KafkaFields::of(table)?;
        let file_io = table.file_io();
        let list = table.manifest_list_reader(&parent).load().await?;
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let (mut files, mut rewritten, mut rows, mut bytes) = (0usize, 0usize, 0u64, 0u64);
        let (mut added_files, mut added_rows, mut added_bytes) = (0u64, 0u64, 0u64);
        let mut replacements: Vec<DataFile> = Vec::new();
        let hit = |f: &DataFile| match fields.holding(f, &target.topic_id, target.partition) {
            Holding::Nothing => None,
            Holding::Only(lo, hi) if target.within(lo, hi) => Some(true),
            Holding::Only(lo, hi) | Holding::Some(lo, hi) => target.touches(lo, hi).then_some(false),
        };
        for manifest_file in list.entries() {
            if manifest_file.content != ManifestContentType::Data {
                manifests.push(manifest_file.clone());
                continue;
            }
            let manifest = manifest_file.load_manifest(file_io).await?;
            let mut dropped: HashSet<String> = HashSet::new();
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                let data_file = entry.data_file();
                let Some(whole) = hit(data_file) else { continue };
                let replacement = if whole {
                    None
                } else {
                    rewrite_without(table, data_file, target, self.writer_properties.clone()).await?
                };
                match replacement {
                    Some((new_file, kept)) if kept == data_file.record_count() => {
                        // Nothing of the ranges in it after all.
                        let _ = file_io.delete(new_file.file_path()).await;
                        continue;
                    }
                    Some((new_file, kept)) => {
                        written.push(new_file.file_path().to_string());
                        rewritten += 1;
                        rows += data_file.record_count() - kept;
                        added_files += 1;
                        added_rows += new_file.record_count();
                        added_bytes += new_file.file_size_in_bytes();
                        replacements.push(new_file);
                    }
                    None => {
                        files += 1;
                        rows += data_file.record_count();
                    }
                }
                bytes += data_file.file_size_in_bytes();
                dropped.insert(data_file.file_path().to_string());
            }
            if dropped.is_empty() {
                manifests.push(manifest_file.clone());
            } else {
                manifests.push(manifests::without(table, manifest_file, snapshot_id, &dropped, written).await?);
            }
        }
        if !replacements.is_empty() {
            manifests.insert(0, manifests::added(table, snapshot_id, &replacements, written).await?);
        }
        if files + rewritten == 0 && !in_ledger {
            return Ok(Step::Finish(self.outcome.clone()));
        }
        self.outcome = RemoveOutcome { snapshot_id: Some(snapshot_id), files, rewritten, rows };
        let mut summary = HashMap::new();
        publish::totals(
            Some(&parent),
            (added_files, added_rows, added_bytes),
            ((files + rewritten) as u64, rows + added_rows, bytes),
            &mut summary,
        );
        let operation = if rewritten > 0 { Operation::Overwrite } else { Operation::Delete };
        Ok(Step::Commit { manifests, operation, summary, ledger })
    }

    fn committed(&mut self, _table: &Table, snapshot_id: i64) -> RemoveOutcome {
        RemoveOutcome { snapshot_id: Some(snapshot_id), ..self.outcome.clone() }
    }

    fn written(&self) -> Vec<String> {
        self.written.clone()
    }

    fn superseded(&self) -> Vec<String> {
        self.written[..self.plan_start].to_vec()
    }
}

/// A copy of `file` without the rows of the target's ranges, and how many
/// rows it kept; `None` when it keeps none.
async fn rewrite_without(
    table: &Table,
    file: &DataFile,
    target: &Target,
    props: parquet::file::properties::WriterProperties,
) -> Result<Option<(DataFile, u64)>> {
    let (topic_id, partition) = (target.topic_id.as_str(), target.partition);
    use parquet::arrow::ArrowWriter;

    let bytes = table.file_io().new_input(file.file_path())?.read().await?;
    let parquet_err = |e: parquet::errors::ParquetError| {
        Error::from(iceberg::Error::new(ErrorKind::Unexpected, format!("rewriting {}: {e}", file.file_path())))
    };
    let arrow_err = |e: arrow_schema::ArrowError| {
        Error::from(iceberg::Error::new(ErrorKind::Unexpected, format!("rewriting {}: {e}", file.file_path())))
    };
    let reader = crate::data_file::data_file_reader(bytes).map_err(parquet_err)?;
    let schema = reader.schema().clone();
    let reader = reader.with_batch_size(8192).build().map_err(parquet_err)?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).map_err(parquet_err)?;
    let mut kept = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(arrow_err)?;
        let kafka = batch
            .column_by_name("kafka")
            .and_then(|c| c.as_struct_opt())
            .ok_or_else(|| Error::InvalidDataFile { location: file.file_path().to_string(), reason: "no kafka struct".into() })?;
        let (Some(t), Some(p), Some(o)) = (
            kafka.column_by_name("topic_id").and_then(|c| c.as_string_opt::<i32>()),
            kafka.column_by_name("partition").and_then(|c| c.as_primitive_opt::<Int32Type>()),
            kafka.column_by_name("offset").and_then(|c| c.as_primitive_opt::<Int64Type>()),
        ) else {
            return Err(Error::InvalidDataFile {
                location: file.file_path().to_string(),
                reason: "kafka.topic_id, kafka.partition or kafka.offset missing or of another type".into(),
            });
        };
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(!(t.value(i) == topic_id && p.value(i) == partition && target.doomed(o.value(i)))))
            .collect();
        let filtered = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(arrow_err)?;
        kept += filtered.num_rows() as u64;
        if filtered.num_rows() > 0 {
            writer.write(&filtered).map_err(parquet_err)?;
        }
    }
    let metadata = writer.close().map_err(parquet_err)?;
    if kept == 0 {
        return Ok(None);
    }
    let location = crate::new_data_file_location(table, file.partition());
    let size = out.len() as u64;
    let output = table.file_io().new_output(&location)?;
    output.write(bytes::Bytes::from(out)).await?;
    let data_file = crate::data_file_from_parquet(table, &location, size, &metadata, file.partition().clone())?;
    Ok(Some((data_file, kept)))
}
