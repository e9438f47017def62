//! # calving-rsm: the RemoteStorageManager operations in plain Rust
//!
//! Kafka's KIP-405 contract (`copyLogSegmentData`, `fetchLogSegment`, `fetchIndex`,
//! `deleteLogSegmentData`) over the table and the warehouse, with no JVM involved: the JNI
//! bridge, the CLI and the tests all call [`RemoteStorage`].
//!
//! ## Copy ([`RemoteStorage::copy_log_segment`])
//! Parse the segment (streaming, one batch in memory at a time) → rows in chunks
//! (`calving_layout::convert`) → drop rows of offsets the table already holds → split by the
//! table's partition spec → Parquet data files (one per table partition) streamed to the
//! warehouse → the sidecar → one fast-append commit stamped with the segment's identity. When it
//! returns, the data is durable, committed and servable. On failure everything it wrote is
//! deleted before the error is returned.
//!
//! **Exactly once** (DESIGN.md invariant 4) without overwrite: before writing, the table's
//! ledger (`calving_table::ledger`: carried by every Calving snapshot, rebuilt from the rows when
//! the history was expired) says which offsets of this (topic id, partition) the table holds;
//! those rows are not written again, and the new sidecar points at the data files that hold them
//! (found by their bounds). The commit adds the segment's offsets to the ledger and is refused if
//! the ledger changed there since the plan (another copy or broker won): the copy plans again.
//! A retry of a segment whose offsets the ledger holds and whose sidecar exists commits nothing.
//! When a commit's outcome is unknown, nothing written is deleted (the orphan sweep takes it if
//! the commit never landed).
//!
//! **Schema modes** (`value.mode`, issue 4): before converting, the `typed` module resolves the
//! segment's writer schemas with the Schema Registry, evolves and commits the table's schema if
//! they add columns, and hands the converter a `calving_layout::typed::TypedValues`: values
//! become columns, or stay raw in `value`; the sidecar keeps the writer schemas.
//!
//! ## Fetch ([`RemoteStorage::fetch_log_segment`])
//! A [`SegmentStream`] (`std::io::Read`) over the served layout (`calving_layout::served`): each
//! step rebuilds about `fetch.chunk.bytes` of batches from the rows of just those offsets, read
//! by page from the data files (from a stream's third step on, the rows of several steps are read
//! at once and held until served: at most `fetch::READ_AHEAD_BYTES` decoded, so a page is not
//! decompressed and skipped into again for every step). A caller that stops after 1 MiB costs
//! about 1 MiB of work. Values
//! in columns are re-encoded with the writer schemas of the sidecar: no registry involved.
//!
//! ## Where things are
//! Data files: the table's data location (`write.data.path` or `<table>/data`), per partition,
//! with a UUID in the name. Sidecars: `<sidecar.location>/<namespace>/<topic>/<partition>/<start
//! offset>-<end offset>-<segment id>.sidecar` (offsets as 20 digits; `sidecar.location` defaults
//! to `<warehouse>/calving-sidecars`, outside every table's location, so Iceberg's
//! `remove_orphan_files` never reaches them), found from the segment metadata alone, so every
//! broker can serve every segment. Sidecars written before that, under
//! `<table>/calving/sidecars/`, are still read, listed and deleted there.

pub mod config;
pub mod error;
pub mod metadata;
pub mod parquet_io;

mod copy;
mod delete;
mod fetch;
mod maintain;
mod metrics;
mod sidecar_cache;
mod sweep;
mod typed;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use calving_layout::served;
use calving_layout::sidecar::Sidecar;
use calving_storage::{ObjectStorage, StorageConfig};
use calving_table::{CalvingCatalog, CatalogConfig};
use tokio::runtime::Runtime;

pub use calving_table::maintain::{MaintenanceOptions, MaintenanceReport};
pub use config::{RetentionMode, RsmConfig, ValueMode};
pub use copy::CopyOutcome;
pub use error::{Result, RsmError};
pub use fetch::SegmentStream;
pub use metadata::{IndexType, KafkaUuid, LogSegmentFiles, SegmentMetadata};
pub use sweep::SweepReport;

use crate::parquet_io::RowReader;

/// Calving's RemoteStorageManager. Thread-safe: the broker's copy, read, delete and follower
/// threads call it at once. Blocking methods: call them from plain threads (the broker's, the
/// CLI's), never from a tokio worker.
pub struct RemoteStorage {
    inner: Arc<Inner>,
    /// The background maintenance thread (`maintenance.interval.ms`), stopped on drop.
    maintenance: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RemoteStorage {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.inner.stop;
        *stopped.lock().expect("stop flag") = true;
        wake.notify_all();
        // Not joined: a maintenance run in progress finishes its current step on its own (every
        // step is an atomic commit) and then sees the flag.
        self.maintenance.take();
    }
}

pub(crate) struct Inner {
    pub(crate) runtime: Runtime,
    pub(crate) config: RsmConfig,
    pub(crate) storage: ObjectStorage,
    pub(crate) catalog: CalvingCatalog,
    pub(crate) rows: RowReader,
    table_locations: Mutex<HashMap<String, String>>,
    pub(crate) sidecars: sidecar_cache::SidecarCache,
    /// The Schema Registry of the schema modes.
    pub(crate) registry: Option<Arc<calving_schema::SchemaRegistry>>,
    /// (topic, schema id) pairs whose trouble was logged already.
    warned: Mutex<std::collections::HashSet<(String, &'static str, i32)>>,
    /// Set when the plugin closes (wakes the background maintenance).
    pub(crate) stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    /// What operators watch (see the `metrics` module).
    pub(crate) metrics: metrics::Metrics,
}

impl std::fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStorage").field("warehouse", &self.inner.config.warehouse).finish()
    }
}

impl RemoteStorage {
    /// Configures the plugin from its properties (`rsm.config.*`, prefix stripped). Builds the
    /// object store, connects to the catalog, and starts the plugin's tokio runtime.
    pub fn open(properties: &HashMap<String, String>) -> Result<RemoteStorage> {
        let config = RsmConfig::from_properties(properties)?;
        let threads = std::thread::available_parallelism().map_or(2, NonZeroUsize::get).clamp(2, 8);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("calving-io")
            .enable_all()
            .build()
            .map_err(|e| RsmError::InvalidConfig { key: "runtime".into(), reason: e.to_string() })?;
        let storage_config = StorageConfig::new(&config.warehouse, &config.properties)
            .map_err(|source| RsmError::Storage { segment: "configure".into(), source })?;
        let storage = runtime
            .block_on(async { ObjectStorage::new(storage_config) })
            .map_err(|source| RsmError::Storage { segment: "configure".into(), source })?;
        let mut catalog_props = config.properties.clone();
        catalog_props.entry(calving_table::config::WAREHOUSE.to_string()).or_insert_with(|| config.warehouse.clone());
        let catalog_config = CatalogConfig::from_props(catalog_props)
            .map_err(|source| RsmError::Table { segment: "configure".into(), source: Box::new(source) })?;
        let catalog = runtime
            .block_on(CalvingCatalog::connect(catalog_config))
            .map_err(|source| RsmError::Table { segment: "configure".into(), source: Box::new(source) })?
            .with_writer_properties(calving_layout::parquet_props::writer_properties(1));
        let rows = RowReader::new(storage.clone(), 1024);
        let registry = match &config.registry {
            Some(c) => Some(Arc::new(
                calving_schema::SchemaRegistry::new(c.clone())
                    .map_err(|e| RsmError::InvalidConfig { key: "schema.registry.*".into(), reason: e.to_string() })?,
            )),
            None => None,
        };
        let sidecars = sidecar_cache::SidecarCache::new(config.sidecar_cache_entries, config.sidecar_cache_bytes);
        let inner = Arc::new(Inner {
                runtime,
                config,
                storage,
                catalog,
                rows,
                table_locations: Mutex::default(),
                sidecars,
                registry,
                warned: Mutex::default(),
                stop: Arc::default(),
                metrics: metrics::Metrics::default(),
            });
        let maintenance = inner.config.maintenance_interval.map(|every| maintain::spawn_background(inner.clone(), every));
        Ok(RemoteStorage { inner, maintenance })
    }

    /// The object storage of the warehouse.
    pub fn storage(&self) -> &ObjectStorage {
        &self.inner.storage
    }

    /// The catalog.
    pub fn catalog(&self) -> &CalvingCatalog {
        &self.inner.catalog
    }

    /// `copyLogSegmentData`.
    pub fn copy_log_segment(&self, segment: &SegmentMetadata, files: &LogSegmentFiles) -> Result<CopyOutcome> {
        let m = &self.inner.metrics;
        let outcome = m.time(&m.copy, || copy::copy(&self.inner, segment, files))?;
        let count = |a: &std::sync::atomic::AtomicU64, n: u64| a.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        count(&m.copied_bytes, segment.segment_size);
        count(&m.copied_records, outcome.stats.records);
        count(&m.values_in_columns, outcome.stats.values_in_columns);
        count(&m.values_raw_fallback, outcome.stats.values_raw_fallback);
        count(&m.keys_in_columns, outcome.stats.keys_in_columns);
        count(&m.keys_raw_fallback, outcome.stats.keys_raw_fallback);
        if segment.max_timestamp_ms > 0 {
            let newest = std::time::UNIX_EPOCH + std::time::Duration::from_millis(segment.max_timestamp_ms as u64);
            m.tiering_lag(std::time::SystemTime::now().duration_since(newest).unwrap_or_default());
        }
        Ok(outcome)
    }

    /// `fetchLogSegment(metadata, start[, end])`: the served bytes from `start` to `end`
    /// (inclusive) or to the end of the segment.
    pub fn fetch_log_segment(&self, segment: &SegmentMetadata, start: u64, end: Option<u64>) -> Result<SegmentStream> {
        let m = &self.inner.metrics;
        m.time(&m.fetch, || fetch::open(&self.inner, segment, start, end))
    }

    /// `fetchIndex`.
    pub fn fetch_index(&self, segment: &SegmentMetadata, index: IndexType) -> Result<Vec<u8>> {
        let m = &self.inner.metrics;
        m.time(&m.fetch_index, || self.fetch_index_untimed(segment, index))
    }

    /// The plugin's metrics, by their JMX attribute names (see the `metrics` module and the
    /// README): calls, latencies, bytes, typed values, tiering lag, commits, errors by kind, the
    /// sidecar cache's size.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut out = self.inner.metrics.read(self.inner.catalog.commit_stats());
        let (entries, bytes) = self.inner.sidecars.usage();
        out.push(("SidecarCacheEntries".into(), entries as f64));
        out.push(("SidecarCacheBytes".into(), bytes as f64));
        out
    }

    fn fetch_index_untimed(&self, segment: &SegmentMetadata, index: IndexType) -> Result<Vec<u8>> {
        let sidecar = self.inner.sidecar(segment)?;
        let base = sidecar.segment.start_offset;
        Ok(match index {
            IndexType::Offset => served::offset_index(&sidecar.batches, base),
            IndexType::Timestamp => {
                let layout = sidecar.layout().map_err(|source| RsmError::Layout { segment: segment.to_string(), source })?;
                served::time_index(layout, &sidecar.batches, base)
            }
            IndexType::Transaction => sidecar.txn_index.clone().ok_or_else(|| RsmError::NotFound {
                segment: segment.to_string(),
                what: "transaction index (the segment has no aborted transactions)".into(),
            })?,
            IndexType::ProducerSnapshot => sidecar.producer_snapshot.clone(),
            IndexType::LeaderEpoch => sidecar.leader_epoch.clone(),
        })
    }

    /// `deleteLogSegmentData`: idempotent; what goes depends on the topic's retention mode (see
    /// the `delete` module: `keep` deletes the sidecar only, `delete` the rows too).
    pub fn delete_log_segment(&self, segment: &SegmentMetadata) -> Result<()> {
        let m = &self.inner.metrics;
        m.time(&m.delete, || delete::delete(&self.inner, segment))
    }
}

/// Metadata naming only a topic and partition (to find a table's location).
fn probe(topic: &str, partition: i32) -> SegmentMetadata {
    SegmentMetadata {
        topic: topic.to_string(),
        topic_id: KafkaUuid([0; 16]),
        partition,
        segment_id: KafkaUuid([0; 16]),
        start_offset: 0,
        end_offset: 0,
        max_timestamp_ms: 0,
        segment_size: 0,
        leader_epochs: Default::default(),
    }
}

/// A segment whose sidecar is in the warehouse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSegment {
    pub partition: i32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub segment_id: KafkaUuid,
    pub sidecar_location: String,
}

impl RemoteStorage {
    /// The segments of a topic that have a sidecar, by partition and start offset.
    pub fn list_segments(&self, topic: &str) -> Result<Vec<StoredSegment>> {
        self.inner.list_sidecars(topic, None, &format!("topic {topic}"))
    }

    /// Deletes the objects under the topic's table location that nothing refers to and that are
    /// older than `older_than` (see the `sweep` module); with `dry_run`, only reports them.
    pub fn sweep_orphans(&self, topic: &str, older_than: std::time::Duration, dry_run: bool) -> Result<SweepReport> {
        sweep::sweep(&self.inner, topic, older_than, dry_run)
    }

    /// Maintains the topic's table (compaction, manifest rewrite, snapshot expiry, deletion of the
    /// files expiry frees; see `calving_table::maintain`); `progress` gets a line per step.
    pub fn maintain(
        &self,
        topic: &str,
        options: &calving_table::maintain::MaintenanceOptions,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<calving_table::maintain::MaintenanceReport> {
        maintain::run(&self.inner, topic, options, progress)
    }

    /// The metadata needed to fetch a stored segment (what the broker would pass).
    pub fn stored_segment_metadata(&self, topic: &str, stored: &StoredSegment) -> Result<SegmentMetadata> {
        let mut md = SegmentMetadata {
            topic: topic.to_string(),
            topic_id: KafkaUuid([0; 16]),
            partition: stored.partition,
            segment_id: stored.segment_id,
            start_offset: stored.start_offset,
            end_offset: stored.end_offset,
            max_timestamp_ms: 0,
            segment_size: 0,
            leader_epochs: Default::default(),
        };
        let sidecar = self.inner.sidecar(&md)?;
        md.topic_id = KafkaUuid(sidecar.segment.topic_id);
        md.end_offset = sidecar.segment.end_offset;
        md.max_timestamp_ms = sidecar.segment.max_timestamp_ms;
        md.segment_size = sidecar.segment.segment_size;
        Ok(md)
    }
}

impl Inner {
    /// Logs a writer schema's trouble (`id` -1: the subject's) once per topic for the plugin's
    /// lifetime: a topic's records keep arriving with the same id.
    pub(crate) fn warn_once(&self, topic: &str, part: &'static str, id: i32, message: &str) {
        if self.warned.lock().expect("warned").insert((topic.to_string(), part, id)) {
            tracing::warn!(topic, part, schema_id = id, "writer schema {id} of topic {topic} ({part}s): {message}");
        }
    }

    /// The table's location, cached per topic.
    pub(crate) fn table_location(&self, segment: &SegmentMetadata) -> Result<String> {
        if let Some(l) = self.table_locations.lock().expect("locations").get(&segment.topic) {
            return Ok(l.clone());
        }
        let table = self
            .runtime
            .block_on(self.catalog.load_table(&segment.topic))
            .map_err(|source| RsmError::Table { segment: segment.to_string(), source: Box::new(source) })?;
        let location = table.metadata().location().trim_end_matches('/').to_string();
        self.table_locations.lock().expect("locations").insert(segment.topic.clone(), location.clone());
        Ok(location)
    }

    pub(crate) fn remember_table_location(&self, topic: &str, location: &str) {
        self.table_locations.lock().expect("locations").insert(topic.to_string(), location.trim_end_matches('/').to_string());
    }

    /// `<sidecar.location>/<namespace>/<topic>/<partition>/<start offset>-<end offset>-<segment
    /// id>.sidecar` (offsets as 20 digits, so names sort by offset; the end offset lets a listing
    /// tell which segments overlap which offsets without reading them). Found from the segment
    /// metadata alone, without the catalog.
    pub(crate) fn sidecar_location(&self, segment: &SegmentMetadata) -> String {
        format!(
            "{}{:020}-{:020}-{}.sidecar",
            self.sidecar_prefix(&segment.topic, segment.partition),
            segment.start_offset,
            segment.end_offset,
            segment.segment_id
        )
    }

    /// Where the sidecars of a topic live.
    pub(crate) fn sidecars_root(&self, topic: &str) -> String {
        format!("{}/{}/{topic}/", self.config.sidecar_location, self.catalog.config().namespace().join("."))
    }

    fn sidecar_prefix(&self, topic: &str, partition: i32) -> String {
        format!("{}{partition}/", self.sidecars_root(topic))
    }

    /// Where sidecars lived before `sidecar.location` (inside the table's location, where other
    /// engines' orphan removal reaches): still read, listed and deleted there.
    pub(crate) fn legacy_sidecars_root(table_location: &str) -> String {
        format!("{table_location}/calving/sidecars/")
    }

    /// The segment's sidecar in the legacy place, when its table exists.
    fn legacy_sidecar_location(&self, segment: &SegmentMetadata) -> Result<Option<String>> {
        match self.table_location(segment) {
            Ok(table) => Ok(Some(format!(
                "{}{}/{:020}-{:020}-{}.sidecar",
                Self::legacy_sidecars_root(&table),
                segment.partition,
                segment.start_offset,
                segment.end_offset,
                segment.segment_id
            ))),
            Err(RsmError::Table { source, .. }) if !source.is_retriable() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every place the segment's sidecar may be: the configured one, then the legacy one.
    pub(crate) fn sidecar_locations(&self, segment: &SegmentMetadata) -> Result<Vec<String>> {
        let mut out = vec![self.sidecar_location(segment)];
        out.extend(self.legacy_sidecar_location(segment)?);
        Ok(out)
    }

    /// The sidecars of a topic, or of one of its partitions, in both places.
    pub(crate) fn list_sidecars(&self, topic: &str, partition: Option<i32>, what: &str) -> Result<Vec<StoredSegment>> {
        let mut roots = vec![self.sidecars_root(topic)];
        match self.table_location(&probe(topic, 0)) {
            Ok(table) => roots.push(Self::legacy_sidecars_root(&table)),
            Err(RsmError::Table { source, .. }) if !source.is_retriable() => {}
            Err(e) => return Err(e),
        }
        let mut out: Vec<StoredSegment> = Vec::new();
        for root in roots {
            let prefix = match partition {
                Some(p) => format!("{root}{p}/"),
                None => root.clone(),
            };
            let objects = self
                .runtime
                .block_on(self.storage.list(&prefix))
                .map_err(|source| RsmError::Storage { segment: what.to_string(), source })?;
            out.extend(objects.into_iter().filter_map(|o| {
                let rest = o.location.strip_prefix(&root)?;
                let (partition, file) = rest.split_once('/')?;
                let mut parts = file.strip_suffix(".sidecar")?.splitn(3, '-');
                let start_offset = parts.next()?.parse().ok()?;
                let end_offset = parts.next()?.parse().ok()?;
                let segment_id = KafkaUuid::parse(parts.next()?)?;
                Some(StoredSegment {
                    partition: partition.parse().ok()?,
                    start_offset,
                    end_offset,
                    segment_id,
                    sidecar_location: o.location.clone(),
                })
            }));
        }
        out.sort_by_key(|s| (s.partition, s.start_offset, s.end_offset, s.segment_id));
        out.dedup_by_key(|s| s.segment_id);
        Ok(out)
    }

    /// Remembers where a cached sidecar's rows are now (after the files it named were compacted
    /// away), so the next fetches of the segment read them there at once.
    pub(crate) fn repoint_sidecar(&self, segment_id: KafkaUuid, files: Vec<calving_layout::sidecar::DataFileRef>) {
        self.sidecars.repoint(segment_id, files);
    }

    /// The live data files of `table` that hold offsets `start..=end` of `topic_id`/`partition`,
    /// as a sidecar names them (offset bounds from the files' metrics).
    pub(crate) fn files_holding(
        &self,
        table: &iceberg::table::Table,
        topic_id: &str,
        partition: i32,
        (start, end): (i64, i64),
        what: &str,
    ) -> Result<Vec<calving_layout::sidecar::DataFileRef>> {
        let found = self
            .runtime
            .block_on(calving_table::files_holding(table, topic_id, partition, start, end))
            .map_err(|source| RsmError::Table { segment: what.to_string(), source: Box::new(source) })?;
        Ok(found
            .into_iter()
            .map(|(f, holding)| {
                let (min_offset, max_offset) = holding.offsets().unwrap_or((i64::MIN, i64::MAX));
                calving_layout::sidecar::DataFileRef {
                    location: f.data_file.file_path().to_string(),
                    file_size: f.data_file.file_size_in_bytes(),
                    row_count: f.data_file.record_count(),
                    min_offset,
                    max_offset,
                }
            })
            .collect())
    }

    /// The topics whose tables this plugin wrote or read since it started.
    pub(crate) fn known_topics(&self) -> Vec<String> {
        self.table_locations.lock().expect("locations").keys().cloned().collect()
    }

    pub(crate) fn forget_sidecar(&self, segment: &SegmentMetadata) {
        self.sidecars.remove(&segment.segment_id);
    }

    /// The segment's sidecar, cached.
    pub(crate) fn sidecar(&self, segment: &SegmentMetadata) -> Result<Arc<Sidecar>> {
        if let Some(s) = self.sidecars.get(&segment.segment_id) {
            return Ok(s);
        }
        let mut bytes = None;
        let mut tried = Vec::new();
        let primary = self.sidecar_location(segment);
        for location in std::iter::once(Ok(Some(primary))).chain(std::iter::once_with(|| self.legacy_sidecar_location(segment))) {
            let Some(location) = location? else { continue };
            match self.runtime.block_on(self.storage.get(&location)) {
                Ok(b) => {
                    bytes = Some(b);
                    break;
                }
                Err(source) if source.is_not_found() => tried.push(location),
                Err(source) => return Err(RsmError::Storage { segment: segment.to_string(), source }),
            }
        }
        let Some(bytes) = bytes else {
            return Err(RsmError::NotFound { segment: segment.to_string(), what: format!("sidecar {}", tried.join(" or ")) });
        };
        let sidecar = Arc::new(Sidecar::decode(&bytes).map_err(|source| RsmError::Layout { segment: segment.to_string(), source })?);
        self.sidecars.insert(segment.segment_id, Arc::clone(&sidecar));
        Ok(sidecar)
    }
}
