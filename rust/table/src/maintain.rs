//! Table maintenance that Kafka reads survive: compaction of small data files, manifest
//! rewrites, snapshot expiry, and deletion of the files that expiry leaves unreferenced.
//!
//! Every step is an ordinary commit through the commit driver ([`crate::publish`]), so it is
//! safe with several brokers (or other engines) committing to the table at the same time: a step
//! is planned on the fresh table on every attempt, and a compaction whose input files are no
//! longer live abandons itself. Every snapshot a step adds carries the table's ledger forward
//! unchanged ([`crate::ledger`]): maintenance moves rows, it never changes which offsets the table
//! holds. Kafka reads do not depend on the files compaction replaces: a fetch whose file is gone
//! finds the rows by (topic id, partition, offsets) in the current table (calving-rsm's fetch).
//!
//! - [`compact`]: live data files smaller than `small_file_bytes`, per table partition and size
//!   class (a factor of 4; at least `min_input_files` of a class), read and written again into files of
//!   about `target_file_bytes`, rows sorted by (topic id, partition, offset); one `replace`
//!   snapshot. At most `max_input_bytes` of input per run (memory bound). Size tiers keep the
//!   rewrite cost of a row at about log4(table / segment) rewrites over its life.
//! - [`rewrite_manifests`]: when the current snapshot lists at least `min_manifests` data
//!   manifests, their live entries go into one manifest (a `replace` snapshot with no file
//!   change): what appends leave below `commit.manifest.min-count-to-merge`.
//! - [`expire_snapshots`]: snapshots older than the cutoff go, and the oldest beyond
//!   `max_snapshots` ([`MAX_SNAPSHOTS_PROP`]); the newest `min_to_keep` of the current ancestry
//!   and every branch/tag head stay (Iceberg's `history.expire.*` rules, plus a count bound).
//! - [`delete_unreferenced`]: after expiry, the files that the expired snapshots referenced and no
//!   retained snapshot does (manifest lists, manifests, data files, old metadata files) are
//!   deleted from storage. Files nothing ever referenced (a copy in flight, a commit that never
//!   landed) are not this function's: the orphan sweep takes them after a grace period.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use async_trait::async_trait;
use iceberg::spec::{
    DataFile, ManifestContentType, ManifestFile, Operation, SnapshotRef, Struct, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::{ErrorKind, TableRequirement, TableUpdate};

use crate::error::{Error, Result};
use crate::ledger;
use crate::publish::{self, Change, RetryPolicy, Step};
use crate::CalvingCatalog;

/// `history.expire.max-snapshot-age-ms` (Iceberg's default: 5 days).
pub const MAX_SNAPSHOT_AGE_PROP: &str = "history.expire.max-snapshot-age-ms";
/// `history.expire.min-snapshots-to-keep` (Iceberg's default: 1).
pub const MIN_SNAPSHOTS_TO_KEEP_PROP: &str = "history.expire.min-snapshots-to-keep";
/// `calving.history.expire.max-snapshots`: expiry also expires the oldest snapshots beyond this
/// many (Calving's own; Iceberg bounds history by age only, and a table that takes a commit per
/// segment gathers hundreds of thousands of snapshots in `history.expire.max-snapshot-age-ms`'s
/// default 5 days, all of them in the `metadata.json` every commit writes). Unset: no bound.
pub const MAX_SNAPSHOTS_PROP: &str = "calving.history.expire.max-snapshots";
/// `write.target-file-size-bytes` (Iceberg's default: 512 MiB).
pub const TARGET_FILE_SIZE_PROP: &str = "write.target-file-size-bytes";

/// What a maintenance run may do; see the module docs.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// Compact files smaller than this (0: no compaction).
    pub small_file_bytes: u64,
    /// Size of compacted files (the table's `write.target-file-size-bytes` if `None`).
    pub target_file_bytes: Option<u64>,
    /// Input bytes one compaction reads at most.
    pub max_input_bytes: u64,
    /// Files of one size class (a factor of 4) of one partition merged at once, at least (2 or more).
    pub min_input_files: usize,
    /// Merge the data manifests when there are at least this many (0: never).
    pub min_manifests: usize,
    /// Expire snapshots older than this (the table's `history.expire.max-snapshot-age-ms` if `None`).
    pub max_snapshot_age: Option<Duration>,
    /// Keep at least this many snapshots of the current ancestry (the table's
    /// `history.expire.min-snapshots-to-keep` if `None`).
    pub min_snapshots_to_keep: Option<usize>,
    /// Keep at most this many snapshots, expiring the oldest beyond (the table's
    /// `calving.history.expire.max-snapshots` if `None`; unset: no bound). The snapshots kept by
    /// `min_snapshots_to_keep` and every branch and tag head stay whatever this says.
    pub max_snapshots: Option<usize>,
    /// Plan and report only.
    pub dry_run: bool,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            small_file_bytes: 32 << 20,
            target_file_bytes: None,
            max_input_bytes: 256 << 20,
            min_input_files: 4,
            min_manifests: 16,
            max_snapshot_age: None,
            min_snapshots_to_keep: None,
            max_snapshots: None,
            dry_run: false,
        }
    }
}

/// The size class of a data file: 0 below 64 KiB, then one class per factor of 4.
fn size_class(bytes: u64) -> u32 {
    let mut class = 0;
    let mut bound = 64u64 << 10;
    while bytes >= bound && class < 31 {
        class += 1;
        bound = bound.saturating_mul(4);
    }
    class
}

/// What [`compact`] did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    pub snapshot_id: Option<i64>,
    pub input_files: usize,
    pub input_bytes: u64,
    pub output_files: usize,
    pub output_bytes: u64,
    pub rows: u64,
}

/// Compacts small data files; see the module docs.
pub async fn compact(
    catalog: &CalvingCatalog,
    topic: &str,
    options: &MaintenanceOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<CompactOutcome> {
    if options.small_file_bytes == 0 {
        return Ok(CompactOutcome::default());
    }
    let table = catalog.load_table(topic).await?;
    let target = options.target_file_bytes.unwrap_or_else(|| {
        table.metadata().properties().get(TARGET_FILE_SIZE_PROP).and_then(|v| v.parse().ok()).unwrap_or(512 << 20)
    });
    // Groups of small live files of one partition (spec and value), smallest partitions first.
    let mut groups: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    let default_spec = table.metadata().default_partition_spec_id();
    for f in crate::live_files(&table).await? {
        let d = f.data_file;
        // Files of older partition specs stay as they are (their partition values differ in shape).
        if f.spec_id == default_spec && d.file_size_in_bytes() < options.small_file_bytes {
            groups.entry(format!("{:?}", d.partition())).or_default().push(d);
        }
    }
    // Size-tiered: within a partition, files of one size class (a factor of 4 apart) are merged
    // once there are `min_input_files` of them, so a row is rewritten about log4(table / segment)
    // times in its life, not at every run (a compacted file below `small_file_bytes` would
    // otherwise be read and written again each time).
    let mut chosen: Vec<Vec<DataFile>> = Vec::new();
    let mut budget = options.max_input_bytes;
    for (_, files) in groups {
        let mut classes: BTreeMap<u32, Vec<DataFile>> = BTreeMap::new();
        for f in files {
            classes.entry(size_class(f.file_size_in_bytes())).or_default().push(f);
        }
        for (_, mut files) in classes {
            if files.len() < options.min_input_files.max(2) {
                continue;
            }
            files.sort_by_key(|f| f.file_path().to_string());
            let mut take = Vec::new();
            for f in files {
                if f.file_size_in_bytes() > budget {
                    break;
                }
                budget -= f.file_size_in_bytes();
                take.push(f);
            }
            if take.len() >= 2 {
                chosen.push(take);
            }
        }
    }
    let input_files: usize = chosen.iter().map(Vec::len).sum();
    let input_bytes: u64 = chosen.iter().flatten().map(DataFile::file_size_in_bytes).sum();
    if input_files == 0 {
        return Ok(CompactOutcome::default());
    }
    progress(&format!("compact: {input_files} small files ({input_bytes} bytes) in {} partitions", chosen.len()));
    if options.dry_run {
        return Ok(CompactOutcome { input_files, input_bytes, ..CompactOutcome::default() });
    }
    // Write the compacted files once; the commit checks the inputs are still live.
    let mut outputs: Vec<DataFile> = Vec::new();
    let mut written: Vec<String> = Vec::new();
    let result: Result<()> = async {
        for group in &chosen {
            // Files written with different schemas (a table whose schema evolved, another engine's
            // files) are compacted apart: one output per schema.
            let mut by_schema: Vec<(arrow_schema::SchemaRef, Vec<RecordBatch>)> = Vec::new();
            for f in group {
                for b in read_data_file(&table, f).await? {
                    match by_schema.iter_mut().find(|(s, _)| *s == b.schema()) {
                        Some((_, batches)) => batches.push(b),
                        None => by_schema.push((b.schema(), vec![b])),
                    }
                }
            }
            for (_, batches) in by_schema {
                let sorted = sort_rows(&batches)?;
                for (location, file) in write_data_files(catalog, &table, group[0].partition(), &sorted, target).await? {
                    written.push(location);
                    outputs.push(file);
                }
            }
            progress(&format!("compact: {} files of partition {:?} read, {} files written so far", group.len(), group[0].partition(), outputs.len()));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for l in &written {
            let _ = table.file_io().delete(l).await;
        }
        return Err(e);
    }
    let output_files = outputs.len();
    let output_bytes = outputs.iter().map(DataFile::file_size_in_bytes).sum();
    let rows = outputs.iter().map(DataFile::record_count).sum();
    let inputs: HashSet<String> = chosen.iter().flatten().map(|f| f.file_path().to_string()).collect();
    let mut change = Replace { inputs, outputs, written, manifest: None, abandoned: false };
    let snapshot_id = publish::publish(catalog, topic, &mut change).await?;
    Ok(CompactOutcome { snapshot_id, input_files, input_bytes, output_files, output_bytes, rows })
}

/// Reads every row of a data file (all columns).
pub(crate) async fn read_data_file(table: &Table, file: &DataFile) -> Result<Vec<RecordBatch>> {
    let bytes = table.file_io().new_input(file.file_path())?.read().await?;
    let err = |e: String| Error::from(iceberg::Error::new(ErrorKind::Unexpected, format!("reading {}: {e}", file.file_path())));
    let reader = crate::data_file::data_file_reader(bytes)
        .map_err(|e| err(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| err(e.to_string()))?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))
}

/// The rows of `batches` (one schema) in one batch sorted by (topic id, partition, offset).
fn sort_rows(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let arrow = |e: arrow_schema::ArrowError| Error::from(iceberg::Error::new(ErrorKind::Unexpected, format!("compaction: {e}")));
    let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| arrow(arrow_schema::ArrowError::InvalidArgumentError("no rows".into())))?;
    let all = arrow_select::concat::concat_batches(&schema, batches).map_err(arrow)?;
    let kafka = all
        .column_by_name("kafka")
        .and_then(|c| c.as_struct_opt())
        .ok_or_else(|| arrow(arrow_schema::ArrowError::SchemaError("no kafka struct".into())))?;
    let key = |name: &str| {
        kafka.column_by_name(name).cloned().ok_or_else(|| arrow(arrow_schema::ArrowError::SchemaError(format!("no kafka.{name}"))))
    };
    let columns = [key("topic_id")?, key("partition")?, key("offset")?]
        .into_iter()
        .map(|values| arrow_ord::sort::SortColumn { values, options: None })
        .collect::<Vec<_>>();
    let indices = arrow_ord::sort::lexsort_to_indices(&columns, None).map_err(arrow)?;
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(arrow)?;
    RecordBatch::try_new(schema, columns).map_err(arrow)
}

/// Writes `rows` (sorted) as data files of `partition`, each about `target` bytes.
pub(crate) async fn write_data_files(
    catalog: &CalvingCatalog,
    table: &Table,
    partition: &Struct,
    rows: &RecordBatch,
    target: u64,
) -> Result<Vec<(String, DataFile)>> {
    use parquet::arrow::ArrowWriter;
    let err = |e: String| Error::from(iceberg::Error::new(ErrorKind::Unexpected, format!("compaction: {e}")));
    let mut out = Vec::new();
    let mut start = 0usize;
    let per_row = (rows.get_array_memory_size() as u64 / rows.num_rows().max(1) as u64).max(1);
    // Compressed Parquet is a fraction of Arrow's memory: aim rows per file at target / (per row / 4).
    let rows_per_file = ((target * 4) / per_row).max(1) as usize;
    while start < rows.num_rows() {
        let len = rows_per_file.min(rows.num_rows() - start);
        let slice = rows.slice(start, len);
        start += len;
        let mut buf = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut buf, rows.schema(), Some(catalog.writer_properties())).map_err(|e| err(e.to_string()))?;
        writer.write(&slice).map_err(|e| err(e.to_string()))?;
        let metadata = writer.close().map_err(|e| err(e.to_string()))?;
        let location = crate::new_data_file_location(table, partition);
        let size = buf.len() as u64;
        table.file_io().new_output(&location)?.write(bytes::Bytes::from(buf)).await?;
        let file = crate::data_file_from_parquet(table, &location, size, &metadata, partition.clone())?;
        out.push((location, file));
    }
    Ok(out)
}

/// Files replaced by others (compaction): a `replace` snapshot.
struct Replace {
    inputs: HashSet<String>,
    outputs: Vec<DataFile>,
    written: Vec<String>,
    manifest: Option<ManifestFile>,
    abandoned: bool,
}

#[async_trait]
impl Change for Replace {
    type Output = Option<i64>;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<Option<i64>>> {
        let metadata = table.metadata();
        let Some(parent) = metadata.current_snapshot().cloned() else {
            self.abandoned = true;
            return Ok(Step::Finish(None));
        };
        let list = table.manifest_list_reader(&parent).load().await?;
        let mut manifests = Vec::new();
        let mut found = 0usize;
        let (mut rfiles, mut rrows, mut rbytes) = (0u64, 0u64, 0u64);
        for manifest_file in list.entries() {
            if manifest_file.content != ManifestContentType::Data {
                manifests.push(manifest_file.clone());
                continue;
            }
            let manifest = manifest_file.load_manifest(table.file_io()).await?;
            let mut hit = false;
            for d in manifest.entries().iter().filter(|e| e.is_alive()).map(|e| e.data_file()) {
                if self.inputs.contains(d.file_path()) {
                    hit = true;
                    found += 1;
                    rfiles += 1;
                    rrows += d.record_count();
                    rbytes += d.file_size_in_bytes();
                }
            }
            if hit {
                manifests.push(crate::manifests::without(table, manifest_file, snapshot_id, &self.inputs, &mut self.written).await?);
            } else {
                manifests.push(manifest_file.clone());
            }
        }
        if found != self.inputs.len() {
            // Another writer removed or replaced some inputs meanwhile: give up this compaction.
            tracing::info!(table = %table.identifier(), "compaction inputs changed meanwhile; abandoned");
            self.abandoned = true;
            return Ok(Step::Finish(None));
        }
        if self.manifest.is_none() {
            let mut written = Vec::new();
            self.manifest = Some(crate::manifests::added(table, snapshot_id, &self.outputs, &mut written).await?);
        }
        manifests.insert(0, self.manifest.clone().expect("written above"));
        let added = self.outputs.iter().fold((0, 0, 0), |(f, r, b), d| (f + 1, r + d.record_count(), b + d.file_size_in_bytes()));
        let (ledger, _) = ledger::load(table).await?;
        let mut summary = HashMap::new();
        publish::totals(Some(&parent), added, (rfiles, rrows, rbytes), &mut summary);
        summary.insert("calving.maintenance".into(), "compact".into());
        Ok(Step::Commit { manifests, operation: Operation::Replace, summary, ledger })
    }

    fn committed(&mut self, _table: &Table, snapshot_id: i64) -> Option<i64> {
        Some(snapshot_id)
    }

    fn written(&self) -> Vec<String> {
        self.written.iter().cloned().chain(self.manifest.iter().map(|m| m.manifest_path.clone())).collect()
    }
}

/// Merges the data manifests of the current snapshot into one when there are at least
/// `min_manifests`; returns the new snapshot and how many manifests were merged.
pub async fn rewrite_manifests(catalog: &CalvingCatalog, topic: &str, options: &MaintenanceOptions) -> Result<(Option<i64>, usize)> {
    if options.min_manifests == 0 {
        return Ok((None, 0));
    }
    let table = catalog.load_table(topic).await?;
    let Some(current) = table.metadata().current_snapshot() else {
        return Ok((None, 0));
    };
    let count = table.manifest_list_reader(current).load().await?.entries().iter().filter(|m| m.content == ManifestContentType::Data).count();
    if count < options.min_manifests || options.dry_run {
        return Ok((None, if count >= options.min_manifests { count } else { 0 }));
    }
    let mut change = MergeManifests { min_manifests: options.min_manifests, merged: 0, written: Vec::new() };
    let snapshot = publish::publish(catalog, topic, &mut change).await?;
    Ok((snapshot, change.merged))
}

struct MergeManifests {
    min_manifests: usize,
    merged: usize,
    written: Vec<String>,
}

#[async_trait]
impl Change for MergeManifests {
    type Output = Option<i64>;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<Option<i64>>> {
        let metadata = table.metadata();
        let Some(parent) = metadata.current_snapshot().cloned() else {
            return Ok(Step::Finish(None));
        };
        let list = table.manifest_list_reader(&parent).load().await?;
        let (data, other): (Vec<&ManifestFile>, Vec<&ManifestFile>) =
            list.entries().iter().partition(|m| m.content == ManifestContentType::Data);
        if data.len() < self.min_manifests {
            return Ok(Step::Finish(None));
        }
        // One merged manifest per partition spec.
        let mut by_spec: BTreeMap<i32, Vec<ManifestFile>> = BTreeMap::new();
        for m in &data {
            by_spec.entry(m.partition_spec_id).or_default().push((*m).clone());
        }
        let mut manifests: Vec<ManifestFile> = Vec::new();
        for (spec_id, group) in by_spec {
            let mut writer = crate::manifests::writer(table, snapshot_id, spec_id, &mut self.written)?;
            crate::manifests::carry_existing(table, &mut writer, &group).await?;
            manifests.push(writer.write_manifest_file().await?);
        }
        manifests.extend(other.into_iter().cloned());
        self.merged = data.len();
        let (ledger, _) = ledger::load(table).await?;
        let mut summary = HashMap::new();
        publish::totals(Some(&parent), (0, 0, 0), (0, 0, 0), &mut summary);
        summary.insert("calving.maintenance".into(), "rewrite-manifests".into());
        summary.insert("manifests-replaced".into(), data.len().to_string());
        Ok(Step::Commit { manifests, operation: Operation::Replace, summary, ledger })
    }

    fn committed(&mut self, _table: &Table, snapshot_id: i64) -> Option<i64> {
        Some(snapshot_id)
    }

    fn written(&self) -> Vec<String> {
        self.written.clone()
    }
}

/// What [`expire_snapshots`] did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireOutcome {
    pub expired: Vec<i64>,
    pub retained: usize,
    /// Files deleted because only expired snapshots referenced them.
    pub deleted_files: Vec<String>,
}

/// Expires snapshots per the options (or the table's `history.expire.*`), then deletes the files
/// only they referenced; see the module docs.
pub async fn expire_snapshots(catalog: &CalvingCatalog, topic: &str, options: &MaintenanceOptions) -> Result<ExpireOutcome> {
    let mut table = catalog.load_table(topic).await?;
    let policy = RetryPolicy::for_table(&table, catalog.config().commit_retry());
    let mut retry = 0;
    loop {
        let metadata = table.metadata();
        let props = metadata.properties();
        let max_age = options.max_snapshot_age.unwrap_or_else(|| {
            Duration::from_millis(props.get(MAX_SNAPSHOT_AGE_PROP).and_then(|v| v.parse().ok()).unwrap_or(5 * 24 * 3_600_000))
        });
        let keep_min = options
            .min_snapshots_to_keep
            .unwrap_or_else(|| props.get(MIN_SNAPSHOTS_TO_KEEP_PROP).and_then(|v| v.parse().ok()).unwrap_or(1))
            .max(1);
        let cutoff = publish::now_ms() - max_age.as_millis() as i64;
        let mut keep: HashSet<i64> = crate::ancestry(&table).take(keep_min).map(|s| s.snapshot_id()).collect();
        // Every branch and tag head stays (TableMetadata has no accessor for its refs: read their
        // names from its JSON form).
        let refs: Vec<String> = serde_json::to_value(metadata)
            .ok()
            .and_then(|v| v.get("refs").and_then(|r| r.as_object()).map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        keep.extend(refs.iter().filter_map(|r| metadata.snapshot_for_ref(r)).map(|s| s.snapshot_id()));
        let max_snapshots = options
            .max_snapshots
            .or_else(|| props.get(MAX_SNAPSHOTS_PROP).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(usize::MAX);
        // Oldest first: past the age cutoff, or beyond the count bound.
        let mut candidates: Vec<&SnapshotRef> = metadata.snapshots().filter(|s| !keep.contains(&s.snapshot_id())).collect();
        candidates.sort_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
        let over = metadata.snapshots().count().saturating_sub(max_snapshots);
        let expired: Vec<i64> = candidates
            .iter()
            .enumerate()
            .filter(|&(i, s)| i < over || s.timestamp_ms() < cutoff)
            .map(|(_, s)| s.snapshot_id())
            .collect();
        let retained = metadata.snapshots().count() - expired.len();
        if expired.is_empty() || options.dry_run {
            return Ok(ExpireOutcome { expired, retained, deleted_files: Vec::new() });
        }
        let before = crate::remove::referenced_locations(&table, true).await?;
        let requirements = vec![
            TableRequirement::UuidMatch { uuid: metadata.uuid() },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_string(),
                snapshot_id: metadata.current_snapshot_id(),
            },
        ];
        let updates = vec![TableUpdate::RemoveSnapshots { snapshot_ids: expired.clone() }];
        let attempt_started = std::time::Instant::now();
        match crate::snapshot_commit::commit(catalog, &table, requirements, updates).await {
            Ok(after) => {
                let deleted_files = delete_unreferenced(&after, &before).await?;
                tracing::info!(table = %after.identifier(), expired = expired.len(), retained, deleted = deleted_files.len(), "expired snapshots");
                return Ok(ExpireOutcome { expired, retained, deleted_files });
            }
            Err(Error::CommitConflict { .. } | Error::CatalogUnavailable { .. }) if retry < policy.num_retries => {
                retry += 1;
                tokio::time::sleep(policy.wait(retry, attempt_started.elapsed())).await;
                table = catalog.load_table(topic).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the files `before` (what a table state referenced, [`crate::remove::referenced_locations`])
/// holds and `table` (a later state) no longer references. Returns them.
pub async fn delete_unreferenced(table: &Table, before: &HashSet<String>) -> Result<Vec<String>> {
    // Live entries only: a file the kept snapshots list as deleted is needed by none of them.
    let now = crate::remove::referenced_locations(table, false).await?;
    let mut gone: Vec<String> = before.iter().filter(|f| !now.contains(*f)).cloned().collect();
    gone.sort();
    for f in &gone {
        if let Err(e) = table.file_io().delete(f).await {
            tracing::warn!(file = %f, error = %e, "could not delete a file no snapshot refers to any more");
        }
    }
    Ok(gone)
}

/// What [`maintain`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub compact: CompactOutcome,
    pub manifests_merged: usize,
    pub expire: ExpireOutcome,
}

/// Compaction, manifest rewrite, snapshot expiry and deletion of what expiry freed, in that order
/// (compaction and the rewrite add snapshots that the expiry may then take the old ones of).
/// `progress` gets one line per step.
pub async fn maintain(
    catalog: &CalvingCatalog,
    topic: &str,
    options: &MaintenanceOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<MaintenanceReport> {
    let compact = compact(catalog, topic, options, progress).await?;
    progress(&format!(
        "compact: {} files ({} bytes) -> {} files ({} bytes){}",
        compact.input_files,
        compact.input_bytes,
        compact.output_files,
        compact.output_bytes,
        if options.dry_run { " (dry run)" } else { "" }
    ));
    let (_, manifests_merged) = rewrite_manifests(catalog, topic, options).await?;
    progress(&format!("rewrite manifests: {manifests_merged} data manifests merged{}", if options.dry_run { " (dry run)" } else { "" }));
    let expire = expire_snapshots(catalog, topic, options).await?;
    progress(&format!(
        "expire snapshots: {} expired, {} retained, {} files deleted{}",
        expire.expired.len(),
        expire.retained,
        expire.deleted_files.len(),
        if options.dry_run { " (dry run)" } else { "" }
    ));
    Ok(MaintenanceReport { compact, manifests_merged, expire })
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_are_factors_of_four() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class((64 << 10) - 1), 0);
        assert_eq!(size_class(64 << 10), 1);
        assert_eq!(size_class((256 << 10) - 1), 1);
        assert_eq!(size_class(256 << 10), 2);
        assert_eq!(size_class(u64::MAX), 31, "capped");
    }
}
