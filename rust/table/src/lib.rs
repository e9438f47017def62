//! # calving-table: Calving's Iceberg tables
//!
//! One Iceberg table per Kafka topic, `<namespace>.<topic>`; this crate deals in catalogs, tables,
//! data files and commits, not in records (rows and Parquet are `calving-layout`'s business).
//!
//! - [`config`]: [`CatalogConfig`] from the broker's string properties, and the catalog it builds
//!   (SQL catalog on SQLite or PostgreSQL, or an Iceberg REST catalog).
//! - [`table`]: the default table (schema, `day(kafka.timestamp)` spec, (partition, offset) sort
//!   order, properties) and [`ensure_table`], which adopts a table created ahead of time.
//! - [`data_file`]: [`data_file_from_parquet`] registers Parquet written elsewhere (counts,
//!   bounds, split offsets from the footer), and partition values.
//! - [`ledger`]: which offsets of which (topic id, partition) the table holds, carried forward by
//!   every Calving commit in a table property stamped with its snapshot, and rebuilt from the
//!   rows when history was expired.
//! - [`commit`]: [`append`] commits one segment's files exactly once against the ledger.
//! - [`remove`]: [`remove_offsets`] takes offsets' rows out (the `delete` retention mode), found by
//!   the files' bounds; [`files_holding`] finds the live files that hold given offsets.
//! - [`carry`]: writers contending for a table commit each other's segments (intents posted
//!   after a lost race, carried by the next commit, found by their owner).
//! - [`publish`]: the commit driver every Calving snapshot goes through (retry policy with
//!   jitter, per-table serialization in the process, unknown outcomes reconciled by snapshot id).
//! - `manifests`: the manifests snapshots list; appends merge small ones as Iceberg's appends do
//!   (`commit.manifest.min-count-to-merge`), so the manifest list stays bounded.
//! - [`maintain`]: compaction, manifest rewrite, snapshot expiry and deletion of the files expiry
//!   frees, all through the commit driver and carrying the ledger forward.
//! - [`schema_update`]: [`commit_schema`] makes an evolved schema (field ids chosen by the
//!   caller) current, through the same own commit path.
//! - `known`: the newest table state the process knows, planned on while it is the only writer.
//! - [`stats`]: counters of the process's commits (commits, segments, conflicts, unknown
//!   outcomes, failures), for metrics and benchmarks.
//! - [`error`]: one [`Error`] whose variants say what the caller can do; [`Error::is_retriable`].
//!
//! ## Exactly once without overwrite, whatever happens to the history
//!
//! DESIGN.md invariant 4: a (topic id, partition, offset) appears at most once in the table's
//! current snapshot. Duplicates could only come from retries: a copy retried after its commit
//! landed, a commit whose answer was lost, a re-upload of a segment under a new segment id after a
//! failed copy, two brokers racing after a leader change. None of these needs to replace files —
//! each needs *not appending again*. So every commit is an append checked against the **ledger**
//! of the table state it is based on ([`ledger`]): offsets the ledger holds are never appended
//! again, and the caller (the RemoteStorageManager) points a re-uploaded segment at the rows
//! already there. Every Calving commit records the ledger in the same commit as its snapshot (a
//! table property stamped with the snapshot id), so it is atomic with the data, and it does not depend on the length of the history: expiring snapshots
//! (by anyone, down to the current one), rewriting data files or rolling back leaves a ledger that
//! describes the current rows.

//! ## Catalogs and storage
//!
//! The default catalog is the SQL catalog on a SQLite file inside a local warehouse
//! (`calving-catalog.db`), readable by pyiceberg's `SqlCatalog` and Java's `JdbcCatalog` with the
//! same catalog name. Several brokers need the SQL catalog on PostgreSQL or a REST catalog.
//! The catalogs' FileIO (metadata, manifests) goes through calving-storage's object_store client
//! built from the same configuration ([`CatalogConfig::storage`]), chosen in one private function
//! of [`config`].

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod carry;
pub mod commit;
pub mod config;
pub mod data_file;
pub mod error;
pub mod ledger;
pub mod maintain;
mod known;
mod manifests;
pub mod publish;
pub mod remove;
pub mod schema_update;
mod snapshot_commit;
pub mod stats;
pub mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceberg::spec::DataFile;
use iceberg::{Catalog, TableIdent};

pub use commit::{
    ancestry, append, CommitOutcome, SegmentCommit, END_OFFSET_PROP, PARTITION_PROP, SEGMENTS_PROP, SEGMENT_ID_PROP,
    START_OFFSET_PROP, TOPIC_ID_PROP,
};
pub use config::{CatalogConfig, CatalogKind};
pub use data_file::{
    calving_arrow_schema, data_file_from_parquet, day_partition_value, new_data_file_location, partition_value,
};
pub use error::{Error, Result};
pub use ledger::{Ledger, LedgerSource, LEDGER_PROP, LEDGER_SNAPSHOT_PROP};
pub use manifests::{MERGE_ENABLED_PROP, MIN_COUNT_TO_MERGE_PROP, TARGET_SIZE_PROP};
pub use publish::RetryPolicy;
pub use remove::{
    files_holding, live_files, normalize, referenced_files, remove_offsets, Holding, KafkaFields, LiveFile,
    RemoveOutcome,
};
pub use schema_update::commit_schema;
pub use stats::CommitStats;
pub use table::{
    check_compatible, default_schema, ensure_table, field_id, LAYOUT_VERSION, LAYOUT_VERSION_PROP,
};

/// A catalog with Calving's configuration: the namespace of the topic tables and the
/// `commit.retry.*` defaults. A thin convenience over the free functions of this crate.
#[derive(Debug, Clone)]
pub struct CalvingCatalog {
    catalog: Arc<dyn Catalog>,
    config: CatalogConfig,
    /// Per table: the lock that serializes its commits in this process, and the appends waiting
    /// for its next commit (group commit).
    table_commits: Arc<Mutex<HashMap<TableIdent, Arc<commit::TableCommits>>>>,
    /// How Calving writes the Parquet files it rewrites (removals, compaction).
    writer_properties: Option<parquet::file::properties::WriterProperties>,
    /// The own commit path's connections, kept between commits.
    connections: Arc<snapshot_commit::Connections>,
    /// Counters of this catalog's commits.
    counters: Arc<stats::CommitCounters>,
    /// Where commit intents go (`commit.carry.enabled`; `None`: off).
    intent_storage: Option<calving_storage::ObjectStorage>,
}

impl CalvingCatalog {
    /// Builds the catalog described by `config`.
    pub async fn connect(config: CatalogConfig) -> Result<Self> {
        let catalog = config.build().await?;
        Ok(CalvingCatalog::new(catalog, config))
    }

    /// Wraps a catalog built elsewhere.
    pub fn new(catalog: Arc<dyn Catalog>, config: CatalogConfig) -> Self {
        CalvingCatalog {
            catalog,
            table_commits: Arc::default(),
            writer_properties: None,
            connections: Arc::default(),
            counters: Arc::default(),
            intent_storage: config
                .carry()
                .then(|| calving_storage::ObjectStorage::new(config.storage().clone()).ok())
                .flatten(),
            config,
        }
    }

    /// Parquet writer settings for files Calving rewrites (the copy path's, from calving-layout).
    pub fn with_writer_properties(mut self, props: parquet::file::properties::WriterProperties) -> Self {
        self.writer_properties = Some(props);
        self
    }

    /// The Parquet writer settings of rewritten files (zstd otherwise).
    pub fn writer_properties(&self) -> parquet::file::properties::WriterProperties {
        self.writer_properties.clone().unwrap_or_else(|| {
            parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build()
        })
    }

    /// Counters of the commits made through this catalog (and its clones) so far.
    pub fn commit_stats(&self) -> CommitStats {
        self.counters.read()
    }

    pub(crate) fn counters(&self) -> &stats::CommitCounters {
        &self.counters
    }

    /// The storage commit intents go to, when carrying is on ([`carry`]).
    pub(crate) fn intent_storage(&self) -> Option<&calving_storage::ObjectStorage> {
        self.intent_storage.as_ref()
    }

    pub(crate) fn connections(&self) -> &snapshot_commit::Connections {
        &self.connections
    }

    /// The commit lock and append queue of `ident` in this process.
    pub(crate) fn table_commits(&self, ident: &TableIdent) -> Arc<commit::TableCommits> {
        self.table_commits.lock().expect("table commits").entry(ident.clone()).or_default().clone()
    }

    /// The iceberg catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// The configuration.
    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// `<namespace>.<topic>`.
    pub fn table_ident(&self, topic: &str) -> TableIdent {
        TableIdent::new(self.config.namespace().clone(), topic.to_string())
    }

    /// [`ensure_table`] in the configured namespace.
    pub async fn ensure_table(&self, topic: &str) -> Result<iceberg::table::Table> {
        let table = ensure_table(self.catalog.as_ref(), self.config.namespace(), topic).await?;
        self.known(&self.table_ident(topic), |k| k.loaded(&table));
        Ok(table)
    }

    /// Loads the topic's table.
    pub async fn load_table(&self, topic: &str) -> Result<iceberg::table::Table> {
        let ident = self.table_ident(topic);
        let table = self.catalog.load_table(&ident).await.map_err(|e| Error::from_catalog("load table", e))?;
        self.known(&ident, |k| k.loaded(&table));
        Ok(table)
    }

    /// The table a copy plans on: the state this process last committed or loaded while it is
    /// the table's only writer (no load, no metadata parse), otherwise [`Self::ensure_table`].
    /// A stale state only costs a conflicting attempt; see the `known` module.
    pub async fn ensure_table_for_commit(&self, topic: &str) -> Result<iceberg::table::Table> {
        match self.known(&self.table_ident(topic), |k| k.reusable()) {
            Some(table) => Ok(table),
            None => self.ensure_table(topic).await,
        }
    }

    /// Forgets the state of the topic's table this process knows: the next plan loads it (a
    /// caller's failure that may come from planning on a stale state).
    pub fn forget_table_state(&self, topic: &str) {
        self.known(&self.table_ident(topic), |k| k.forget());
    }

    /// Runs `f` on the newest state of `ident` this process knows (see the `known` module).
    pub(crate) fn known<T>(&self, ident: &TableIdent, f: impl FnOnce(&mut known::Known) -> T) -> T {
        f(&mut self.table_commits(ident).known.lock().expect("known table state"))
    }

    /// [`append`] to the topic's table.
    pub async fn append(&self, topic: &str, data_files: Vec<DataFile>, commit: SegmentCommit) -> Result<CommitOutcome> {
        append(self, topic, data_files, commit).await
    }
}
