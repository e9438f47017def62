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
//! - [`commit`]: [`append`] commits one segment's files exactly once; [`find_segment_commit`] and
//!   [`committed_ranges`] reconcile from snapshot summaries.
//! - [`schema_update`]: [`commit_schema`] makes an evolved schema (field ids chosen by the
//!   caller) current, through the same own commit path as `remove`.
//! - [`error`]: one [`Error`] whose variants say what the caller can do; [`Error::is_retriable`].
//!
//! ## Why appends are enough for exactly-once
//!
//! DESIGN.md invariant 4: a (topic id, partition, offset) appears at most once in the table's
//! current snapshot. Kafka never asks to tier the same offsets twice *successfully*; duplicates
//! could only come from retries: a copy retried after its commit landed, a commit whose answer was
//! lost, a re-upload of a segment under a new segment id after a failed copy, two brokers racing
//! after a leader change. None of these needs to replace or delete files — each needs *not
//! appending again*. So every commit is a plain fast append of one segment's files in one
//! snapshot, and that snapshot's summary records the segment: `calving.segment-id`,
//! `calving.topic-id`, `calving.partition`, `calving.start-offset`, `calving.end-offset`. The
//! table's history is then also the ledger of what was tiered, in the same atomic commit as the
//! data: no separate state to keep consistent.
//!
//! ## How reconciliation works
//!
//! Before each commit attempt — including each of iceberg-rust's own optimistic-concurrency
//! retries, which reload the table — [`append`] walks the *current* snapshot's ancestry (rolled
//! back or expired snapshots do not count: they are not rows of the table any more):
//!
//! - the segment id is there → [`CommitOutcome::AlreadyCommitted`], nothing appended;
//! - another segment id covers overlapping offsets of the same topic id and partition →
//!   [`Error::OffsetsAlreadyCommitted`]; the caller (the RemoteStorageManager) points the new
//!   segment's sidecar at the rows already there instead of appending them again.
//!
//! The fast append requires `main` to still be at the snapshot that was checked, so a concurrent
//! commit makes ours conflict and re-check. When the commit call fails in a way that may have
//! been applied ("commit state unknown": REST 5xx or timeout, a connection lost after the request
//! went out), the table is reloaded and searched for the segment id: found → committed
//! ([`CommitOutcome::Reconciled`]); not found → a retriable error, and retrying is safe for the
//! same reason.
//!
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

pub mod commit;
pub mod config;
pub mod data_file;
pub mod error;
pub mod remove;
pub mod schema_update;
mod snapshot_commit;
pub mod table;

use std::sync::Arc;

use iceberg::spec::DataFile;
use iceberg::{Catalog, TableIdent};

pub use commit::{
    ancestry, append, committed_ranges, find_segment_commit, live_commits, CommitOutcome, CommittedRange,
    SegmentCommit, END_OFFSET_PROP, PARTITION_PROP, SEGMENT_ID_PROP, START_OFFSET_PROP,
    TOPIC_ID_PROP,
};
pub use config::{CatalogConfig, CatalogKind};
pub use data_file::{
    data_file_from_parquet, day_partition_value, new_data_file_location, partition_value,
};
pub use error::{Error, Result};
pub use remove::{
    live_files, normalize, referenced_files, remove_segments, removed_segment_ids, LiveFile,
    RemoveOutcome,
    REMOVED_SEGMENT_IDS_PROP,
};
pub use schema_update::commit_schema;
pub use table::{
    check_compatible, default_schema, ensure_table, field_id, LAYOUT_VERSION, LAYOUT_VERSION_PROP,
};

/// A catalog with Calving's configuration: the namespace of the topic tables and the
/// `commit.retry.*` defaults. A thin convenience over the free functions of this crate.
#[derive(Debug, Clone)]
pub struct CalvingCatalog {
    catalog: Arc<dyn Catalog>,
    config: CatalogConfig,
}

impl CalvingCatalog {
    /// Builds the catalog described by `config`.
    pub async fn connect(config: CatalogConfig) -> Result<Self> {
        let catalog = config.build().await?;
        Ok(CalvingCatalog { catalog, config })
    }

    /// Wraps a catalog built elsewhere.
    pub fn new(catalog: Arc<dyn Catalog>, config: CatalogConfig) -> Self {
        CalvingCatalog { catalog, config }
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
        ensure_table(self.catalog.as_ref(), self.config.namespace(), topic).await
    }

    /// Loads the topic's table.
    pub async fn load_table(&self, topic: &str) -> Result<iceberg::table::Table> {
        self.catalog
            .load_table(&self.table_ident(topic))
            .await
            .map_err(|e| Error::from_catalog("load table", e))
    }

    /// [`append`], with the configured `commit.retry.*` values for tables that do not set them.
    pub async fn append(
        &self,
        table: &iceberg::table::Table,
        data_files: Vec<DataFile>,
        commit: SegmentCommit,
    ) -> Result<CommitOutcome> {
        commit::append_with_retry_defaults(
            self.catalog.as_ref(),
            table,
            data_files,
            commit,
            self.config.commit_retry(),
        )
        .await
    }
}
