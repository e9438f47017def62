//! `copyLogSegmentData`: a segment into the table, exactly once (see the crate docs).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use calving_layout::convert::{ChunkLimits, ConvertStats, SegmentConverter, SideFiles};
use calving_layout::parquet_props::writer_properties;
use calving_layout::rows::RowsView;
use calving_layout::schema::TargetColumns;
use calving_layout::sidecar::DataFileRef;
use calving_layout::LayoutError;
use calving_segment::LogReader;
use calving_storage::BlockingObjectWriter;
use calving_table::SegmentCommit;
use iceberg::arrow::{schema_to_arrow_schema, PartitionValueCalculator, RecordBatchPartitionSplitter};
use iceberg::spec::{DataFile, PartitionKey, Struct};
use iceberg::table::Table;
use parquet::arrow::ArrowWriter;

use crate::error::{Result, RsmError};
use crate::metadata::{LogSegmentFiles, SegmentMetadata};
use crate::Inner;

/// What a copy did.
#[derive(Clone, Debug, Default)]
pub struct CopyOutcome {
    /// KIP-917 custom metadata for the broker to keep (one byte: the layout version).
    pub custom_metadata: Vec<u8>,
    pub stats: ConvertStats,
    /// Data files this copy added.
    pub data_files: Vec<String>,
    /// The snapshot holding the segment's rows (`None` when every row was already committed).
    pub snapshot_id: Option<i64>,
    /// Rows the table already held, served from earlier segments' files.
    pub reused_rows: u64,
    pub sidecar_location: String,
}

/// Lets the Parquet writer own a handle to the upload while the copy keeps another, so the
/// upload can be finished after `ArrowWriter::close` (which keeps its writer).
#[derive(Clone)]
struct SharedUpload(Arc<std::sync::Mutex<Option<BlockingObjectWriter>>>);

impl std::io::Write for SharedUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().expect("upload").as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("upload already finished")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().expect("upload").as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl SharedUpload {
    fn take(&self) -> Option<BlockingObjectWriter> {
        self.0.lock().expect("upload").take()
    }
}

/// What the open data files of one copy may buffer in all (encoded row groups in progress and
/// upload buffers): past it, the largest is finished and its table partition's later rows go to
/// a new file. Rows of one segment spread over several day partitions (a backfill, a producer
/// replaying history) would otherwise hold one row group of up to 48 MiB per day; one row
/// group's worth in all keeps such a copy within what a one-day copy holds.
const OPEN_FILES_BUDGET_BYTES: usize = 48 << 20;

/// Table partitions a copy writes at once. Each open data file costs about a megabyte before
/// it holds a row (a Parquet writer's encoders and compression contexts per column) besides its
/// row group, so a segment whose rows spread over more partitions (a backfill: batches of many
/// days, interleaved) is read again for each further group of partitions instead of opening a
/// file for every one: memory stays bounded, and each partition's rows still land in one file
/// (or a few, past the budget above) rather than in a new file whenever the budget closes one.
const MAX_OPEN_PARTITIONS: usize = 16;

struct PartWriter {
    writer: ArrowWriter<SharedUpload>,
    upload: SharedUpload,
    location: String,
    partition: Struct,
    rows: u64,
    min_offset: i64,
    max_offset: i64,
}

/// Errors inside the conversion sink, to keep their kind.
enum SinkError {
    Layout(LayoutError),
    Rsm(RsmError),
}

impl From<LayoutError> for SinkError {
    fn from(e: LayoutError) -> Self {
        SinkError::Layout(e)
    }
}

pub(crate) fn copy(inner: &Inner, seg: &SegmentMetadata, files: &LogSegmentFiles) -> Result<CopyOutcome> {
    let started = Instant::now();
    // A concurrent copy of overlapping offsets may win the commit: then this attempt's rows are
    // duplicates, so it cleans up and runs once more, pointing at the winner's rows.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match copy_once(inner, seg, files) {
            Err(RsmError::Table { source, .. })
                if attempt < 3 && matches!(*source, calving_table::Error::OffsetsAlreadyCommitted { .. }) =>
            {
                tracing::info!(segment = %seg, "offsets were committed concurrently by another copy; converting again");
            }
            Ok(outcome) => {
                tracing::info!(
                    segment = %seg,
                    records = outcome.stats.records,
                    batches = outcome.stats.batches,
                    files = outcome.data_files.len(),
                    reused_rows = outcome.reused_rows,
                    values_in_columns = outcome.stats.values_in_columns,
                    values_raw_fallback = outcome.stats.values_raw_fallback,
                    keys_in_columns = outcome.stats.keys_in_columns,
                    keys_raw_fallback = outcome.stats.keys_raw_fallback,
                    snapshot = ?outcome.snapshot_id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "copied segment to the table"
                );
                return Ok(outcome);
            }
            Err(e) => return Err(e),
        }
    }
}

fn copy_once(inner: &Inner, seg: &SegmentMetadata, files: &LogSegmentFiles) -> Result<CopyOutcome> {
    let name = seg.to_string();
    let table_err = |source| RsmError::Table { segment: name.clone(), source: Box::new(source) };
    let storage_err = |source| RsmError::Storage { segment: name.clone(), source };
    let rt = &inner.runtime;
    // The state this process last committed while it is the table's only writer (the commit
    // checks the plan against the table it lands on), else a fresh load.
    let table = rt.block_on(inner.catalog.ensure_table_for_commit(&seg.topic)).map_err(table_err)?;
    inner.remember_table_location(&seg.topic, table.metadata().location());
    let topic_id = seg.topic_id.to_string();
    let sidecar_location = inner.sidecar_location(seg);

    // Plan from the ledger: the offsets of this segment the table already holds.
    let (ledger, _) = rt.block_on(calving_table::ledger::load(&table)).map_err(table_err)?;
    let mut held = ledger.overlapping(&topic_id, seg.partition, seg.start_offset, seg.end_offset);
    let table = if held.is_empty() {
        table
    } else {
        // A re-upload (rare): plan it on a fresh load, since it points at files the table holds
        // now, which another engine may have rewritten since the state this process knows.
        let table = rt.block_on(inner.catalog.load_table(&seg.topic)).map_err(table_err)?;
        let (ledger, _) = rt.block_on(calving_table::ledger::load(&table)).map_err(table_err)?;
        held = ledger.overlapping(&topic_id, seg.partition, seg.start_offset, seg.end_offset);
        table
    };
    let whole = held.iter().any(|&(s, e)| s <= seg.start_offset && seg.end_offset <= e);
    if whole {
        // A retry of a copy whose commit landed (its sidecar is there): nothing more to do.
        for location in inner.sidecar_locations(seg)? {
            if rt.block_on(inner.storage.exists(&location)).map_err(storage_err)? {
                tracing::info!(segment = %seg, %location, "segment already committed");
                return Ok(CopyOutcome {
                    custom_metadata: custom_metadata(inner.config.served_layout(&seg.topic)),
                    snapshot_id: table.metadata().current_snapshot_id(),
                    sidecar_location: location,
                    ..CopyOutcome::default()
                });
            }
        }
    }
    // The files holding them, found by their bounds in the table itself (not in earlier
    // segments' sidecars, which Kafka may have deleted).
    let reused = if held.is_empty() {
        Vec::new()
    } else {
        inner.files_holding(&table, &topic_id, seg.partition, (seg.start_offset, seg.end_offset), &name)?
    };

    // Schema modes: writer schemas resolved and the table's schema evolved before any write.
    let value_mode = inner.config.value_mode(&seg.topic);
    let key_mode = inner.config.key_mode(&seg.topic);
    let (table, typed) = if value_mode.is_schema() || key_mode.is_schema() {
        let reused_ids = reused_schema_ids(inner, seg, &reused)?;
        let (table, typed) = crate::typed::prepare(inner, seg, files, table, value_mode, key_mode, &reused_ids)?;
        (table, Some(typed))
    } else {
        (table, None)
    };

    let mut written: Vec<String> = Vec::new();
    let result = convert_and_commit(inner, seg, files, &table, &held, reused, &sidecar_location, typed, &mut written);
    if let Err(e) = &result {
        // The next attempt plans on a fresh load, whatever went wrong.
        inner.catalog.forget_table_state(&seg.topic);
        let unknown = matches!(e, RsmError::Table { source, .. } if matches!(**source, calving_table::Error::CommitStateUnknown { .. }));
        if unknown {
            // The commit may have landed with these files: keep them. A retry finds the offsets in
            // the ledger; the orphan sweep removes the files if the commit never landed.
            tracing::warn!(segment = %seg, error = %e, "commit outcome unknown; keeping written files");
        } else {
            for location in written.iter().chain(std::iter::once(&sidecar_location)) {
                if let Err(d) = rt.block_on(inner.storage.delete(location)) {
                    tracing::warn!(segment = %seg, %location, error = %d, "could not delete a file of a failed copy");
                }
            }
        }
    }
    result
}

/// The writer schema ids of the rows of `reused` files that hold offsets of `seg`.
fn reused_schema_ids(inner: &Inner, seg: &SegmentMetadata, reused: &[DataFileRef]) -> Result<crate::typed::ReusedIds> {
    let mut ids = crate::typed::ReusedIds::default();
    for f in reused {
        let range = f.min_offset.max(seg.start_offset)..=f.max_offset.min(seg.end_offset);
        let batches = inner
            .runtime
            .block_on(inner.rows.read(&f.location, f.file_size, range, false, Some((&seg.topic_id.to_string(), seg.partition))))
            .map_err(|source| RsmError::from_parquet(seg.to_string(), source))?;
        for b in &batches {
            let view = RowsView::new(b).map_err(|source| RsmError::Layout { segment: seg.to_string(), source })?;
            for row in 0..view.len() {
                ids.values.extend(view.value_schema_id(row));
                ids.keys.extend(view.key_schema_id(row));
            }
        }
    }
    Ok(ids)
}

/// `splitter.split(chunk)`, without its per-row work (a partition literal per row, hashed) when
/// the whole chunk lies in one table partition: the usual case, a chunk's rows span seconds and
/// partitions days. The partition values are computed column-wise to find out.
fn split(
    splitter: &RecordBatchPartitionSplitter,
    partition_values: &PartitionValueCalculator,
    chunk: &RecordBatch,
) -> iceberg::Result<Vec<(PartitionKey, RecordBatch)>> {
    let values = partition_values.calculate(chunk)?;
    let constant = |c: &arrow_array::ArrayRef| {
        arrow_ord::cmp::distinct(c, &arrow_array::Scalar::new(c.slice(0, 1))).is_ok_and(|d| d.true_count() == 0)
    };
    let one_partition = values.as_any().downcast_ref::<arrow_array::StructArray>().is_some_and(|s| s.columns().iter().all(constant));
    if !one_partition {
        return splitter.split(chunk);
    }
    let (key, _) = splitter.split(&chunk.slice(0, 1))?.pop().expect("a row is in one partition");
    Ok(vec![(key, chunk.clone())])
}

/// The `kafka.offset` column of rows the converter made (`(kafka index, offset index)`).
fn offsets_of(rows: &RecordBatch, (kafka, offset): (usize, usize)) -> arrow_array::Int64Array {
    rows.column(kafka)
        .as_any()
        .downcast_ref::<arrow_array::StructArray>()
        .and_then(|s| s.column(offset).as_any().downcast_ref::<arrow_array::Int64Array>().cloned())
        .expect("the converter writes kafka.offset as int64")
}

/// Finishes one data file: closes its Parquet writer and upload, describes it to the table.
fn close_part(w: PartWriter, table: &Table, name: &str) -> Result<(DataFile, DataFileRef)> {
    let metadata = w.writer.close().map_err(|source| RsmError::from_parquet(name.to_string(), source))?;
    let out = w.upload.take().expect("the upload is taken once");
    let size = out.finish().map_err(|source| RsmError::Storage { segment: name.to_string(), source })?;
    let data_file = calving_table::data_file_from_parquet(table, &w.location, size, &metadata, w.partition)
        .map_err(|source| RsmError::Table { segment: name.to_string(), source: Box::new(source) })?;
    let file = DataFileRef { location: w.location, file_size: size, row_count: w.rows, min_offset: w.min_offset, max_offset: w.max_offset };
    Ok((data_file, file))
}

/// The served layout version the segment is copied in, as Kafka keeps it with the segment's
/// metadata (for operators reading it with Kafka's tools; the sidecar is what serving follows).
fn custom_metadata(layout: calving_layout::served::Layout) -> Vec<u8> {
    vec![layout.version() as u8]
}

#[allow(clippy::too_many_arguments)]
fn convert_and_commit(
    inner: &Inner,
    seg: &SegmentMetadata,
    files: &LogSegmentFiles,
    table: &Table,
    held: &[(i64, i64)],
    reused: Vec<DataFileRef>,
    sidecar_location: &str,
    typed: Option<crate::typed::Typed>,
    written: &mut Vec<String>,
) -> Result<CopyOutcome> {
    let name = seg.to_string();
    let rt = &inner.runtime;
    let iceberg_err = |source| RsmError::Iceberg { segment: name.clone(), source: Box::new(source) };
    let schema = table.metadata().current_schema().clone();
    let spec = table.metadata().default_partition_spec().clone();
    let arrow_schema = Arc::new(schema_to_arrow_schema(&schema).map_err(iceberg_err)?);
    let target = TargetColumns::locate(arrow_schema.clone()).map_err(|source| RsmError::Layout { segment: name.clone(), source })?;
    let offset_col = (target.kafka, target.offset);
    // iceberg's splitter refuses an unpartitioned spec (an adopted table may have one): every row
    // then goes to the one partition.
    let by_spec = if spec.is_unpartitioned() {
        None
    } else {
        Some((
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone()).map_err(iceberg_err)?,
            PartitionValueCalculator::try_new(&spec, &schema).map_err(iceberg_err)?,
        ))
    };
    let unpartitioned = PartitionKey::new(spec.as_ref().clone(), schema.clone(), Struct::empty());
    let zstd_level = table.metadata().properties().get("write.parquet.compression-level").and_then(|v| v.parse().ok()).unwrap_or(1);
    let props = writer_properties(zstd_level);
    let layout_err = |source| RsmError::Layout { segment: name.clone(), source };
    let layout = inner.config.served_layout(&seg.topic);
    // Schema modes: pass 0 converts with the prepared parts (they also carry the writer schemas
    // of reused rows, for the sidecar); a later pass, for rows only, with the parts of the pass
    // before it started afresh.
    let (mut values, mut keys) = typed.map_or((None, None), |t| (t.values, t.keys));
    // Files finished early (the budget above), then every other at the end of its pass.
    let mut closed: Vec<(DataFile, DataFileRef)> = Vec::new();
    let part_size = inner.storage.config().settings().part_size;
    let mut reused_rows = 0u64;
    let covered = |o: i64| held.iter().any(|&(s, e)| s <= o && o <= e);
    let sink_err = |e: SinkError| match e {
        SinkError::Layout(source) => RsmError::Layout { segment: name.clone(), source },
        SinkError::Rsm(e) => e,
    };
    let read_err = |source| RsmError::SegmentRead { segment: name.clone(), source };

    // Pass 0 converts the whole segment (rows, sidecar, stats) and writes the rows of the first
    // MAX_OPEN_PARTITIONS table partitions it meets; each later pass reads the segment again for
    // the rows of the next ones (see MAX_OPEN_PARTITIONS).
    let mut pass = 0usize;
    let mut first: Option<(calving_layout::sidecar::Sidecar, calving_layout::convert::ConvertStats)> = None;
    let mut pending: Vec<String> = Vec::new();
    loop {
        let only: Option<HashSet<String>> = (pass > 0).then(|| pending.drain(..pending.len().min(MAX_OPEN_PARTITIONS)).collect());
        let mut converter = SegmentConverter::new(target.clone(), seg.identity(), ChunkLimits::default())
            .with_layout(layout)
            .map_err(layout_err)?;
        if let Some(v) = values.take() {
            converter = converter.with_typed(v).map_err(layout_err)?;
        }
        if let Some(k) = keys.take() {
            converter = converter.with_typed_keys(k).map_err(layout_err)?;
        }
        let mut writers: HashMap<String, PartWriter> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut sink = |chunk: RecordBatch| -> Result<(), SinkError> {
            let offsets = offsets_of(&chunk, offset_col);
            let chunk = if held.is_empty() {
                chunk
            } else {
                let keep: BooleanArray = offsets.iter().map(|o| Some(!covered(o.unwrap_or(-1)))).collect();
                if pass == 0 {
                    reused_rows += (keep.len() - keep.true_count()) as u64;
                }
                filter_record_batch(&chunk, &keep).map_err(|e| SinkError::Layout(LayoutError::Arrow(e)))?
            };
            if chunk.num_rows() == 0 {
                return Ok(());
            }
            let parts = match &by_spec {
                Some((splitter, values)) => split(splitter, values, &chunk)
                    .map_err(|source| SinkError::Rsm(RsmError::Iceberg { segment: name.clone(), source: Box::new(source) }))?,
                None => vec![(unpartitioned.clone(), chunk)],
            };
            for (key, part) in parts {
                let id = format!("{:?}", key.data());
                let admitted = match &only {
                    Some(only) => only.contains(&id),
                    // Pass 0: the first partitions met; the others wait for a later pass.
                    None => seen.contains(&id) || (seen.len() < MAX_OPEN_PARTITIONS && seen.insert(id.clone())),
                };
                if !admitted {
                    if only.is_none() && !pending.contains(&id) {
                        pending.push(id);
                    }
                    continue;
                }
                let part_offsets = offsets_of(&part, offset_col);
                if !writers.contains_key(&id) {
                    let location = calving_table::new_data_file_location(table, key.data());
                    let out = inner
                        .storage
                        .blocking_writer(&location, rt.handle().clone())
                        .map_err(|source| SinkError::Rsm(RsmError::Storage { segment: name.clone(), source }))?;
                    let upload = SharedUpload(Arc::new(std::sync::Mutex::new(Some(out))));
                    let writer = ArrowWriter::try_new(upload.clone(), arrow_schema.clone(), Some(props.clone()))
                        .map_err(|source| SinkError::Rsm(RsmError::from_parquet(name.clone(), source)))?;
                    writers.insert(
                        id.clone(),
                        PartWriter {
                            writer,
                            upload,
                            location,
                            partition: key.data().clone(),
                            rows: 0,
                            min_offset: i64::MAX,
                            max_offset: i64::MIN,
                        },
                    );
                }
                let w = writers.get_mut(&id).expect("inserted above");
                w.writer.write(&part).map_err(|source| SinkError::Rsm(RsmError::from_parquet(name.clone(), source)))?;
                w.rows += part.num_rows() as u64;
                let values = part_offsets.values();
                w.min_offset = w.min_offset.min(values.iter().copied().min().unwrap_or(i64::MAX));
                w.max_offset = w.max_offset.max(values.iter().copied().max().unwrap_or(i64::MIN));
            }
            let buffered = |w: &PartWriter| w.writer.memory_size() + w.writer.bytes_written().min(part_size);
            while writers.len() > 1 && writers.values().map(buffered).sum::<usize>() > OPEN_FILES_BUDGET_BYTES {
                let largest = writers.iter().max_by_key(|(_, w)| buffered(w)).map(|(id, _)| id.clone()).expect("writers");
                let w = writers.remove(&largest).expect("found above");
                written.push(w.location.clone());
                closed.push(close_part(w, table, &name).map_err(SinkError::Rsm)?);
            }
            Ok(())
        };

        let mut reader = LogReader::open(&files.log).map_err(read_err)?;
        while let Some(entry) = reader.next_entry().map_err(read_err)? {
            converter.push(&entry, &mut sink).map_err(|e| match e {
                SinkError::Layout(LayoutError::Segment(source)) => RsmError::SegmentRead { segment: name.clone(), source },
                other => sink_err(other),
            })?;
        }
        converter.flush(&mut sink).map_err(sink_err)?;
        if !pending.is_empty() {
            (values, keys) = converter.restart_typed().map_err(layout_err)?;
        }
        let side = if pass == 0 {
            let read_side = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| RsmError::SegmentRead { segment: name.clone(), source: calving_segment::ReadError::from(e).in_file(p) })
            };
            SideFiles {
                offset_index: read_side(&files.offset_index)?,
                time_index: read_side(&files.time_index)?,
                txn_index: files.txn_index.as_deref().map(read_side).transpose()?,
                producer_snapshot: read_side(&files.producer_snapshot)?,
                leader_epoch: files.leader_epoch.clone(),
            }
        } else {
            SideFiles::default()
        };
        // Every row went to `sink` above: finishing only builds the sidecar.
        let converted = converter
            .finish(side, &mut |_: RecordBatch| -> Result<(), SinkError> { unreachable!("rows were flushed before finish") })
            .map_err(sink_err)?;
        // Close this pass's data files and describe them to the table.
        for (_, w) in writers {
            written.push(w.location.clone());
            closed.push(close_part(w, table, &name)?);
        }
        if pass == 0 {
            first = Some(converted);
        }
        if pending.is_empty() {
            break;
        }
        pass += 1;
    }
    let (mut sidecar, stats) = first.expect("pass 0 ran");
    if pass > 0 {
        tracing::info!(segment = %seg, passes = pass + 1, "rows spread over many table partitions: the segment was read once per group of partitions");
    }
    let (data_files, mut refs): (Vec<DataFile>, Vec<DataFileRef>) = closed.into_iter().unzip();
    refs.sort_by_key(|r| r.min_offset);
    let new_files: Vec<String> = refs.iter().map(|r| r.location.clone()).collect();
    refs.extend(reused);
    sidecar.files = refs;

    // The sidecar first: once the commit is visible, the segment is servable.
    written.push(sidecar_location.to_string());
    rt.block_on(inner.storage.put(sidecar_location, sidecar.encode().into()))
        .map_err(|source| RsmError::Storage { segment: name.clone(), source })?;

    let snapshot_id = if data_files.is_empty() {
        None
    } else {
        // The commit records the segment's offsets in the ledger; the ranges it planned around
        // (rows held already) must still be exactly what the table holds there.
        let commit = SegmentCommit {
            topic_id: seg.topic_id.to_string(),
            partition: seg.partition,
            segment_id: seg.segment_id.to_string(),
            start_offset: seg.start_offset,
            end_offset: seg.end_offset,
            already_held: held.to_vec(),
            extra: BTreeMap::from([
                ("calving.layout-version".to_string(), layout.version().to_string()),
                ("calving.topic".to_string(), seg.topic.clone()),
            ]),
        };
        let outcome = rt
            .block_on(inner.catalog.append(&seg.topic, data_files, commit))
            .map_err(|source| RsmError::Table { segment: name.clone(), source: Box::new(source) })?;
        Some(outcome.snapshot_id())
    };
    Ok(CopyOutcome {
        custom_metadata: custom_metadata(layout),
        stats,
        data_files: new_files,
        snapshot_id,
        reused_rows,
        sidecar_location: sidecar_location.to_string(),
    })
}
