//! Exactly-once commits of a segment's data files, and reconciliation from snapshot summaries.
//!
//! [`append`] fast-appends the data files of one Kafka segment in one snapshot whose summary
//! carries the segment's identity ([`SEGMENT_ID_PROP`], [`TOPIC_ID_PROP`], [`PARTITION_PROP`],
//! [`START_OFFSET_PROP`], [`END_OFFSET_PROP`]). Before every attempt — including each of
//! iceberg's own conflict retries, which reload the table — it looks at the *fresh* table:
//!
//! - the segment id already in the current snapshot's ancestry → [`CommitOutcome::AlreadyCommitted`]
//!   (an earlier attempt of this very commit landed);
//! - a different segment already committed overlapping offsets of the same topic id and partition
//!   → [`Error::OffsetsAlreadyCommitted`] (a re-upload; the caller points at the existing rows).
//!
//! The check and the commit are tied together by the commit's own requirement: a fast append
//! requires the table's `main` branch to still be at the snapshot the check looked at, so a commit
//! that slipped in between makes ours conflict, reload and check again.
//!
//! A commit call that fails in a way that may have been applied (REST 5xx/timeout, a connection
//! lost after the request was sent) is reconciled: reload the table and look for the segment id
//! ([`CommitOutcome::Reconciled`] if found, a retriable error if not).
//!
//! Only the **current snapshot's ancestry** counts ([`ancestry`]): snapshots that were rolled back
//! or expired no longer describe rows of the table. (Expiring the snapshot that carried a segment's
//! summary therefore also forgets the segment's range; sidecars keep it for Kafka.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use iceberg::spec::{DataFile, SnapshotRef};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{
    Catalog, ErrorKind, Namespace, NamespaceIdent, Runtime, TableCommit, TableCreation, TableIdent,
};

use crate::error::{is_transient, Error, Result};

/// Snapshot summary key: the Kafka remote log segment id (as Kafka prints it).
pub const SEGMENT_ID_PROP: &str = "calving.segment-id";
/// Snapshot summary key: the Kafka topic id (as Kafka prints it).
pub const TOPIC_ID_PROP: &str = "calving.topic-id";
/// Snapshot summary key: the partition number.
pub const PARTITION_PROP: &str = "calving.partition";
/// Snapshot summary key: the segment's first offset.
pub const START_OFFSET_PROP: &str = "calving.start-offset";
/// Snapshot summary key: the segment's last offset (inclusive).
pub const END_OFFSET_PROP: &str = "calving.end-offset";

/// The identity of the segment whose data files a commit adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCommit {
    /// Kafka's topic id, as Kafka prints it.
    pub topic_id: String,
    /// Partition number.
    pub partition: i32,
    /// Kafka's remote log segment id, as Kafka prints it.
    pub segment_id: String,
    /// First offset of the segment.
    pub start_offset: i64,
    /// Last offset of the segment (inclusive).
    pub end_offset: i64,
    /// More snapshot summary properties. The five `calving.*` keys above are always Calving's own:
    /// entries here with the same keys are ignored.
    pub extra: BTreeMap<String, String>,
}

impl SegmentCommit {
    fn summary_properties(&self) -> HashMap<String, String> {
        let mut props: HashMap<String, String> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        props.insert(SEGMENT_ID_PROP.into(), self.segment_id.clone());
        props.insert(TOPIC_ID_PROP.into(), self.topic_id.clone());
        props.insert(PARTITION_PROP.into(), self.partition.to_string());
        props.insert(START_OFFSET_PROP.into(), self.start_offset.to_string());
        props.insert(END_OFFSET_PROP.into(), self.end_offset.to_string());
        props
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::from(iceberg::Error::new(
                ErrorKind::DataInvalid,
                msg,
            )))
        };
        if self.segment_id.is_empty() || self.topic_id.is_empty() {
            return bad("a segment commit needs a segment id and a topic id".into());
        }
        if self.partition < 0 || self.start_offset < 0 || self.end_offset < self.start_offset {
            return bad(format!(
                "invalid segment range: partition {} offsets {}..={}",
                self.partition, self.start_offset, self.end_offset
            ));
        }
        Ok(())
    }
}

/// Offsets of one partition committed by one snapshot of the current ancestry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRange {
    /// First offset (inclusive).
    pub start_offset: i64,
    /// Last offset (inclusive).
    pub end_offset: i64,
    /// The segment that committed them.
    pub segment_id: String,
    /// The snapshot that committed them.
    pub snapshot_id: i64,
}

/// What [`append`] did.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// This call committed the files in a new snapshot; `table` is the table after the commit.
    Committed { snapshot_id: i64, table: Box<Table> },
    /// The segment was already committed (by an earlier attempt) in this snapshot of the current
    /// ancestry; nothing was added.
    AlreadyCommitted { snapshot_id: i64 },
    /// The commit call failed in a way that may have been applied, and reloading the table showed
    /// that it was, in this snapshot.
    Reconciled { snapshot_id: i64 },
}

impl CommitOutcome {
    /// The snapshot holding the segment's files.
    pub fn snapshot_id(&self) -> i64 {
        match self {
            CommitOutcome::Committed { snapshot_id, .. }
            | CommitOutcome::AlreadyCommitted { snapshot_id }
            | CommitOutcome::Reconciled { snapshot_id } => *snapshot_id,
        }
    }
}

/// The current snapshot and its ancestors, newest first, as far as they are still in the
/// table metadata.
pub fn ancestry(table: &Table) -> impl Iterator<Item = &SnapshotRef> {
    let metadata = table.metadata();
    let mut next = metadata.current_snapshot();
    let mut budget = metadata.snapshots().count();
    std::iter::from_fn(move || {
        let snapshot = next?;
        if budget == 0 {
            return None; // a parent cycle in broken metadata
        }
        budget -= 1;
        next = snapshot
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id));
        Some(snapshot)
    })
}

/// The Calving commits of the current ancestry whose rows are still in the table, newest first:
/// commits whose segment a newer removal ([`crate::remove`]) lists are skipped.
pub fn live_commits(table: &Table) -> impl Iterator<Item = &SnapshotRef> {
    let mut removed: HashSet<String> = HashSet::new();
    ancestry(table).filter(move |s| {
        let props = &s.summary().additional_properties;
        let live = props
            .get(SEGMENT_ID_PROP)
            .is_some_and(|id| !removed.contains(id));
        if let Some(ids) = props.get(crate::remove::REMOVED_SEGMENT_IDS_PROP) {
            removed.extend(ids.split(',').filter(|i| !i.is_empty()).map(str::to_string));
        }
        live
    })
}

/// The snapshot of the current ancestry that committed `segment_id`, if its rows are still in
/// the table.
pub fn find_segment_commit(table: &Table, segment_id: &str) -> Option<SnapshotRef> {
    live_commits(table)
        .find(|s| {
            s.summary()
                .additional_properties
                .get(SEGMENT_ID_PROP)
                .map(String::as_str)
                == Some(segment_id)
        })
        .cloned()
}

/// The offset ranges of `topic_id`/`partition` committed in the current ancestry and not removed
/// since, by start offset.
pub fn committed_ranges(table: &Table, topic_id: &str, partition: i32) -> Vec<CommittedRange> {
    let partition = partition.to_string();
    let mut ranges: Vec<CommittedRange> = live_commits(table)
        .filter_map(|s| {
            let p = &s.summary().additional_properties;
            if p.get(TOPIC_ID_PROP)? != topic_id || p.get(PARTITION_PROP)? != &partition {
                return None;
            }
            let parsed = (|| {
                Some(CommittedRange {
                    start_offset: p.get(START_OFFSET_PROP)?.parse().ok()?,
                    end_offset: p.get(END_OFFSET_PROP)?.parse().ok()?,
                    segment_id: p.get(SEGMENT_ID_PROP)?.clone(),
                    snapshot_id: s.snapshot_id(),
                })
            })();
            if parsed.is_none() {
                tracing::warn!(
                    snapshot_id = s.snapshot_id(),
                    "snapshot summary has malformed calving.* properties; ignored"
                );
            }
            parsed
        })
        .collect();
    ranges.sort_by_key(|r| (r.start_offset, r.end_offset, r.snapshot_id));
    ranges
}

/// Ranges of *other* segments overlapping the commit's offsets.
fn overlapping(table: &Table, commit: &SegmentCommit) -> Vec<CommittedRange> {
    committed_ranges(table, &commit.topic_id, commit.partition)
        .into_iter()
        .filter(|r| {
            r.segment_id != commit.segment_id
                && r.start_offset <= commit.end_offset
                && commit.start_offset <= r.end_offset
        })
        .collect()
}

/// Commits `data_files` of one segment to `table` (fast append, in one snapshot stamped with the
/// segment's identity), exactly once; see the module docs. `table` may be stale: the commit is
/// based on the catalog's current version. Uses the table's `commit.retry.*` properties.
pub async fn append(
    catalog: &dyn Catalog,
    table: &Table,
    data_files: Vec<DataFile>,
    commit: SegmentCommit,
) -> Result<CommitOutcome> {
    append_with_retry_defaults(catalog, table, data_files, commit, &BTreeMap::new()).await
}

/// [`append`], with `commit.retry.*` values for tables that do not set them.
pub(crate) async fn append_with_retry_defaults(
    catalog: &dyn Catalog,
    table: &Table,
    data_files: Vec<DataFile>,
    commit: SegmentCommit,
    retry_defaults: &BTreeMap<String, String>,
) -> Result<CommitOutcome> {
    commit.validate()?;
    let started = Instant::now();
    let ident = table.identifier().clone();
    let files = data_files.len();
    let rows: u64 = data_files.iter().map(|f| f.record_count()).sum();

    // No decision is taken on `table` itself: it may be stale either way (missing a commit, or
    // still showing one that was rolled back since). The guard checks each freshly loaded base.
    let base = with_retry_defaults(table, retry_defaults)?;
    let tx = Transaction::new(&base);
    let tx = tx
        .fast_append()
        .with_check_duplicate(false)
        .add_data_files(data_files)
        .set_snapshot_properties(commit.summary_properties())
        .apply(tx)?;
    let guard = Guard {
        inner: catalog,
        commit: &commit,
        found: Mutex::new(None),
        update_sent: AtomicBool::new(false),
    };

    let err = match tx.commit(&guard).await {
        Ok(new_table) => {
            let snapshot_id = find_segment_commit(&new_table, &commit.segment_id)
                .map(|s| s.snapshot_id())
                .ok_or_else(|| {
                    Error::from(iceberg::Error::new(
                        ErrorKind::Unexpected,
                        format!(
                            "the committed table {ident} does not show segment {}",
                            commit.segment_id
                        ),
                    ))
                })?;
            tracing::info!(
                table = %ident,
                snapshot_id,
                segment_id = %commit.segment_id,
                partition = commit.partition,
                start_offset = commit.start_offset,
                end_offset = commit.end_offset,
                files,
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "committed segment"
            );
            return Ok(CommitOutcome::Committed {
                snapshot_id,
                table: Box::new(new_table),
            });
        }
        Err(e) => e,
    };

    if let Some(found) = guard.found.lock().expect("guard mutex").take() {
        return found.into_outcome(&ident, &commit, started);
    }
    if err.kind() == ErrorKind::CatalogCommitConflicts {
        tracing::warn!(table = %ident, segment_id = %commit.segment_id, "commit conflicts exhausted the retries");
        return Err(Error::CommitConflict {
            table: ident.to_string(),
            source: Box::new(err),
        });
    }
    if !guard.update_sent.load(Ordering::SeqCst) || err.kind() != ErrorKind::Unexpected {
        // Failed before anything was sent to the catalog, or rejected outright: not applied.
        return Err(Error::from_catalog("commit", err));
    }

    // The commit request went out and failed in a way that may have been applied.
    tracing::warn!(table = %ident, segment_id = %commit.segment_id, error = %err, "commit state unknown; reconciling");
    match catalog.load_table(&ident).await {
        Ok(reloaded) => match find_segment_commit(&reloaded, &commit.segment_id) {
            Some(snapshot) => {
                tracing::info!(
                    table = %ident,
                    snapshot_id = snapshot.snapshot_id(),
                    segment_id = %commit.segment_id,
                    files,
                    rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "commit with unknown state had landed"
                );
                Ok(CommitOutcome::Reconciled {
                    snapshot_id: snapshot.snapshot_id(),
                })
            }
            None if is_transient(&err) => Err(Error::CatalogUnavailable {
                operation: "commit",
                source: Box::new(err),
            }),
            None => Err(Error::from(err)),
        },
        Err(load_err) => {
            tracing::warn!(table = %ident, error = %load_err, "cannot reload the table to reconcile the commit");
            Err(Error::CommitStateUnknown {
                table: ident.to_string(),
                segment_id: commit.segment_id.clone(),
                source: Box::new(err),
            })
        }
    }
}

/// What the check of a table found.
#[derive(Debug)]
enum Found {
    Segment(i64),
    Overlap(Vec<CommittedRange>),
}

impl Found {
    fn into_outcome(
        self,
        ident: &TableIdent,
        commit: &SegmentCommit,
        started: Instant,
    ) -> Result<CommitOutcome> {
        match self {
            Found::Segment(snapshot_id) => {
                tracing::info!(
                    table = %ident,
                    snapshot_id,
                    segment_id = %commit.segment_id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "segment already committed"
                );
                Ok(CommitOutcome::AlreadyCommitted { snapshot_id })
            }
            Found::Overlap(existing) => Err(Error::OffsetsAlreadyCommitted {
                table: ident.to_string(),
                topic_id: commit.topic_id.clone(),
                partition: commit.partition,
                start_offset: commit.start_offset,
                end_offset: commit.end_offset,
                existing,
            }),
        }
    }
}

fn check(table: &Table, commit: &SegmentCommit) -> Option<Found> {
    if let Some(snapshot) = find_segment_commit(table, &commit.segment_id) {
        return Some(Found::Segment(snapshot.snapshot_id()));
    }
    let existing = overlapping(table, commit);
    (!existing.is_empty()).then_some(Found::Overlap(existing))
}

/// The table with `commit.retry.*` defaults filled in where its properties lack them. Only the
/// in-memory copy changes: iceberg reads its retry policy from the table it starts from, and bases
/// the commit itself on a freshly loaded table, so nothing of this reaches the catalog.
fn with_retry_defaults(table: &Table, defaults: &BTreeMap<String, String>) -> Result<Table> {
    let props = table.metadata().properties();
    let missing: HashMap<String, String> = defaults
        .iter()
        .filter(|(k, _)| !props.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if missing.is_empty() {
        return Ok(table.clone());
    }
    let metadata = table
        .metadata()
        .clone()
        .into_builder(None)
        .set_properties(missing)?
        .build()?
        .metadata;
    let mut builder = Table::builder()
        .metadata(metadata)
        .identifier(table.identifier().clone())
        .file_io(table.file_io().clone())
        .runtime(Runtime::try_current()?);
    if let Some(location) = table.metadata_location() {
        builder = builder.metadata_location(location);
    }
    Ok(builder.build()?)
}

/// The catalog as iceberg's `Transaction::commit` sees it during one [`append`]: every
/// `load_table` (one per attempt, the base of that attempt) checks the fresh table for the segment
/// and for overlapping offsets and stops the commit if found; `update_table` records that a request
/// went out.
#[derive(Debug)]
struct Guard<'a> {
    inner: &'a dyn Catalog,
    commit: &'a SegmentCommit,
    found: Mutex<Option<Found>>,
    update_sent: AtomicBool,
}

#[async_trait]
impl Catalog for Guard<'_> {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(namespace).await
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(namespace).await
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        self.inner.create_table(namespace, creation).await
    }

    async fn load_table(&self, ident: &TableIdent) -> iceberg::Result<Table> {
        // Each attempt of iceberg's retry loop starts here.
        self.update_sent.store(false, Ordering::SeqCst);
        let table = self.inner.load_table(ident).await?;
        if let Some(found) = check(&table, self.commit) {
            *self.found.lock().expect("guard mutex") = Some(found);
            return Err(iceberg::Error::new(
                ErrorKind::PreconditionFailed,
                "calving: the segment or its offsets are already committed",
            ));
        }
        Ok(table)
    }

    async fn drop_table(&self, ident: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(ident).await
    }

    async fn purge_table(&self, ident: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(ident).await
    }

    async fn table_exists(&self, ident: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(ident).await
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(src, dest).await
    }

    async fn register_table(
        &self,
        ident: &TableIdent,
        metadata_location: String,
    ) -> iceberg::Result<Table> {
        self.inner.register_table(ident, metadata_location).await
    }

    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        self.update_sent.store(true, Ordering::SeqCst);
        self.inner.update_table(commit).await
    }
}
