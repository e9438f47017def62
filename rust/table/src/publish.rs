//! The commit driver: every snapshot Calving adds to a table (appends, removals, maintenance)
//! goes through [`publish`], one place for the commit policy.
//!
//! A change ([`Change`]) is planned on a freshly loaded table: it checks what it must (the ledger,
//! the files it replaces) and says which manifests the new snapshot lists and what its summary
//! says. The driver writes the manifest list, commits the snapshot with its requirements (`main`
//! still at the parent the plan was made on) through [`crate::snapshot_commit`] (SQL
//! compare-and-set or REST `CommitTableRequest`), and on a conflict plans again on the new table
//! state after a jittered exponential backoff. Manifests a change wrote once (an append's new data
//! manifest) are reused by every attempt: a rebase writes only a manifest list and a metadata file.
//!
//! - **Retry policy**: the table's `commit.retry.*` properties (or the configured defaults,
//!   Calving's otherwise: bounded by 2 minutes, not by a count): at most `num-retries` retries and `total-timeout-ms`, waits between
//!   `min-wait-ms` and `max-wait-ms`, doubled per attempt with full jitter so that brokers that
//!   collided do not collide again in step.
//! - **Serialized per table in the process**: commits of one table wait for each other on a lock
//!   of the [`CalvingCatalog`], so copies inside one broker never race each other for the same
//!   parent.
//! - **Unknown outcomes**: a commit request that failed after it was sent (a connection lost, a
//!   5xx, a timeout, an error from the SQL `UPDATE`) may have been applied. The snapshot id is the
//!   same on every attempt of a change, so a reload tells: the snapshot is in the table →
//!   committed; not there → planned and tried again (the requirement on the parent makes a late
//!   landing of the lost request and the retry exclude each other). What was written is **never
//!   deleted after an unknown outcome** (Iceberg's rule): if the driver gives up, the error is
//!   [`Error::CommitStateUnknown`] and the orphan sweep removes the files later if nothing refers
//!   to them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use iceberg::spec::{
    FormatVersion, ManifestFile, ManifestListWriter, Operation, Snapshot, SnapshotReference, SnapshotRef,
    SnapshotRetention, Summary, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::{ErrorKind, TableRequirement, TableUpdate};

use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::CalvingCatalog;

/// Doublings of the retry wait's ceiling at most ([`RetryPolicy::wait`]).
pub const MAX_DOUBLINGS: u32 = 6;

/// The `commit.retry.*` policy of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub num_retries: u32,
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub total_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Calving's defaults: contention between brokers committing to one table is normal, so the
    /// budget is a time (2 minutes), not Iceberg's count of 4 retries; waits from 10 ms, growing
    /// from the losing attempt's own duration up to 5 s (Iceberg: 100 ms to 60 s, whatever the
    /// catalog), keep a rebase prompt once the table is free — while one copy waits, the copies
    /// of its table queued behind it in the process wait too (group commit), so a long wait is
    /// paid many times over.
    fn default() -> Self {
        RetryPolicy {
            num_retries: 1_000_000,
            min_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(5000),
            total_timeout: Duration::from_millis(120_000),
        }
    }
}

impl RetryPolicy {
    /// The table's `commit.retry.*` properties, else `defaults`, else Calving's ([`Default`]).
    pub fn for_table(table: &Table, defaults: &BTreeMap<String, String>) -> RetryPolicy {
        let props = table.metadata().properties();
        let get = |key: &str, fallback: u64| {
            props
                .get(key)
                .or_else(|| defaults.get(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(fallback)
        };
        let d = RetryPolicy::default();
        RetryPolicy {
            num_retries: get("commit.retry.num-retries", d.num_retries as u64).min(u32::MAX as u64) as u32,
            min_wait: Duration::from_millis(get("commit.retry.min-wait-ms", d.min_wait.as_millis() as u64)),
            max_wait: Duration::from_millis(get("commit.retry.max-wait-ms", d.max_wait.as_millis() as u64)),
            total_timeout: Duration::from_millis(get("commit.retry.total-timeout-ms", d.total_timeout.as_millis() as u64)),
        }
    }

    /// The wait before retry `retry` (1-based) after an attempt that took `slot`: a random
    /// duration between `min_wait` and `min(max_wait, max(min_wait, slot) * 2^min(retry,
    /// MAX_DOUBLINGS))` (full jitter, from the first retry on: brokers whose commits collided
    /// must not all come back after the same wait). Scaling by the attempt's own duration makes
    /// the backoff fit the catalog: writers contending for a REST catalog whose commit cycle
    /// takes 200 ms spread over slots of that length, as on PostgreSQL over slots of its few
    /// milliseconds; waits of a fixed scale made 12 REST writers retry so often that most of the
    /// catalog's work went into attempts bound to lose (34 -> 65 segments/s in `calving bench
    /// commit`). The ceiling stops growing after [`MAX_DOUBLINGS`] doublings, at 64 cycles: a
    /// commit that keeps losing is one of many writers, not a catalog that is down (errors take
    /// another path), and waits of seconds on a catalog of 10 ms cycles left it idle while the
    /// copies queued behind the waiting groups grew (PostgreSQL, 12 writers offered 200
    /// segments/s: 136 -> 174 committed, p99 21 -> 9 s; a REST cycle of 80 ms or more reaches
    /// `max_wait` first, as before).
    pub fn wait(&self, retry: u32, slot: Duration) -> Duration {
        let ceiling = self
            .min_wait
            .max(slot)
            .saturating_mul(1u32 << retry.min(MAX_DOUBLINGS))
            .min(self.max_wait)
            .max(self.min_wait);
        let span = (ceiling - self.min_wait).as_micros() as u64;
        let r = (uuid::Uuid::new_v4().as_u128() as u64) % (span + 1);
        self.min_wait + Duration::from_micros(r)
    }
}

/// What a change wants on a given table state.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// Nothing to commit (already done, or nothing to change): the driver returns this.
    Finish(T),
    /// Commit a snapshot listing these manifests, with this operation and summary, and the ledger
    /// of the table after it (recorded in the same commit: `ledger::properties`).
    Commit { manifests: Vec<ManifestFile>, operation: Operation, summary: HashMap<String, String>, ledger: Ledger },
}

/// A table change the driver plans and commits; see the module docs.
#[async_trait]
pub(crate) trait Change: Send {
    /// What [`publish`] returns.
    type Output: Send;
    /// Plans the change on `table` (freshly loaded; `snapshot_id` is the id of the new snapshot,
    /// the same on every attempt).
    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<Self::Output>>;
    /// The result once the snapshot `snapshot_id` is committed (`table` is the table after it, as
    /// far as the driver knows it).
    fn committed(&mut self, table: &Table, snapshot_id: i64) -> Self::Output;
    /// Files the change wrote that no table refers to when nothing was committed (deleted by the
    /// driver after a certain failure, never after an unknown outcome).
    fn written(&self) -> Vec<String>;
    /// Files earlier plans wrote that the last plan does not use (deleted by the driver once the
    /// change is done, unless an outcome was unknown on the way).
    fn superseded(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called before each attempt after a conflict while no attempt's outcome is unknown (so none
    /// of the change can have landed): a change may take in more work for the next plan (group
    /// commit: appends queued meanwhile join the retrying group).
    fn rebasing(&mut self) {}
    /// Called after an attempt planned on `table` lost to another writer's commit, before the
    /// backoff (group commit: the members are posted for others to carry, `crate::carry`).
    async fn lost(&mut self, _table: &Table) {}
    /// Waits before the next attempt; `backoff` is the retry policy's wait, `slot` the duration of
    /// the attempt that lost (group commit: a group that posted its members waits for its turn).
    async fn wait(&mut self, _table: &Table, backoff: Duration, _slot: Duration) {
        tokio::time::sleep(backoff).await;
    }
}

/// Commits `change` to the topic's table; see the module docs.
pub(crate) async fn publish<C: Change>(catalog: &CalvingCatalog, topic: &str, change: &mut C) -> Result<C::Output> {
    let table = catalog.table_commits(&catalog.table_ident(topic));
    let _serialized = table.lock.lock().await;
    publish_locked(catalog, topic, change).await
}

/// [`publish`] for a caller that holds the table's commit lock.
pub(crate) async fn publish_locked<C: Change>(catalog: &CalvingCatalog, topic: &str, change: &mut C) -> Result<C::Output> {
    let ident = catalog.table_ident(topic);
    let started = Instant::now();
    // The first attempt plans on the state this process knows when it is the table's only
    // writer (a stale one conflicts, and the retry loads); see the `known` module.
    let (mut table, mut fresh) = match catalog.known(&ident, |k| k.reusable()) {
        Some(known) => (known, false),
        None => (catalog.load_table(topic).await?, true),
    };
    let policy = RetryPolicy::for_table(&table, catalog.config().commit_retry());
    let snapshot_id = new_snapshot_id(&table);
    let mut written: Vec<String> = Vec::new();
    // Set once an attempt's outcome was unknown: from then on nothing written may be deleted.
    let mut unknown: Option<Error> = None;
    let mut retry = 0u32;
    let err = loop {
        if table.metadata().snapshot_by_id(snapshot_id).is_some() {
            tracing::info!(table = %ident, snapshot_id, "a commit whose outcome was unknown had landed");
            catalog.counters().commit();
            return Ok(change.committed(&table, snapshot_id));
        }
        let before = written.len();
        let attempt_started = Instant::now();
        let err = match attempt(catalog, &table, snapshot_id, change, retry, &mut written).await {
            Ok(output) => {
                if unknown.is_none() {
                    // The earlier attempts certainly did not land: their manifest lists (and
                    // what earlier plans wrote) are referenced by nothing.
                    for path in written[..before].iter().cloned().chain(change.superseded()) {
                        if let Err(e) = table.file_io().delete(&path).await {
                            tracing::debug!(%path, error = %e, "could not delete a file of an attempt that did not land");
                        }
                    }
                }
                return Ok(output);
            }
            Err(e) => e,
        };
        let lost = matches!(err, Error::CommitConflict { .. });
        match err {
            Error::CommitStateUnknown { .. } => {
                catalog.counters().unknown_outcome();
                tracing::warn!(table = %ident, snapshot_id, error = %err, "commit outcome unknown; reloading the table to find out");
                unknown = Some(err);
            }
            Error::CommitConflict { .. } | Error::CatalogUnavailable { .. } => {
                catalog.counters().conflict();
                tracing::debug!(table = %ident, snapshot_id, retry, error = %err, "commit did not land; rebasing on the fresh table");
            }
            other if !fresh && unknown.is_none() => {
                // Planned on the state this process knew, which may be stale in ways a commit's
                // requirements do not catch first (files another engine rewrote and deleted):
                // plan again once on a fresh load before calling it a failure.
                tracing::debug!(table = %ident, snapshot_id, error = %other, "planning on the known table state failed; loading the table");
                catalog.forget_table_state(topic);
                table = catalog.load_table(topic).await?;
                fresh = true;
                continue;
            }
            other => break other,
        }
        retry += 1;
        let wait = policy.wait(retry, attempt_started.elapsed());
        if retry > policy.num_retries || started.elapsed() + wait > policy.total_timeout {
            break match unknown.take() {
                Some(e) => e,
                None => Error::CommitConflict {
                    table: ident.to_string(),
                    source: Box::new(iceberg::Error::new(
                        ErrorKind::CatalogCommitConflicts,
                        format!(
                            "the commit did not land in {retry} attempts over {} ms (commit.retry.num-retries {}, commit.retry.total-timeout-ms {})",
                            started.elapsed().as_millis(),
                            policy.num_retries,
                            policy.total_timeout.as_millis()
                        ),
                    )),
                },
            };
        }
        if lost && unknown.is_none() {
            change.lost(&table).await;
        }
        change.wait(&table, wait, attempt_started.elapsed()).await;
        match catalog.load_table(topic).await {
            Ok(t) => (table, fresh) = (t, true),
            Err(e) => break unknown.take().unwrap_or(e),
        }
        if unknown.is_none() {
            change.rebasing();
        }
    };
    let err = match (err, unknown) {
        (Error::CommitStateUnknown { table, source, .. }, _) => {
            Error::CommitStateUnknown { table, what: format!("snapshot {snapshot_id}"), source }
        }
        (other, Some(Error::CommitStateUnknown { table, source, .. })) => Error::CommitStateUnknown {
            table,
            what: format!("snapshot {snapshot_id} (then: {other})"),
            source,
        },
        (other, _) => other,
    };
    catalog.counters().failed();
    if !matches!(err, Error::CommitStateUnknown { .. }) {
        // Nothing of this change landed: what it wrote is referenced by nothing.
        for path in written.iter().cloned().chain(change.written()) {
            if let Err(e) = table.file_io().delete(&path).await {
                tracing::debug!(%path, error = %e, "could not delete a file of a commit that did not land");
            }
        }
    }
    Err(err)
}

/// One attempt: plan on `table`, write the manifest list, commit.
async fn attempt<C: Change>(
    catalog: &CalvingCatalog,
    table: &Table,
    snapshot_id: i64,
    change: &mut C,
    retry: u32,
    written: &mut Vec<String>,
) -> Result<C::Output> {
    let attempt_started = Instant::now();
    let metadata = table.metadata();
    let (manifests, operation, summary, ledger) = match change.plan(table, snapshot_id).await? {
        Step::Finish(output) => return Ok(output),
        Step::Commit { manifests, operation, summary, ledger } => (manifests, operation, summary, ledger),
    };
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::UnsupportedOperation {
            table: table.identifier().to_string(),
            operation: "Calving's commits",
            reason: format!("Calving commits to Iceberg format v2 tables only; this one is {:?}", metadata.format_version()),
        });
    }
    let parent: Option<SnapshotRef> = metadata.current_snapshot().cloned();
    let sequence_number = metadata.next_sequence_number();
    let location = metadata.location().trim_end_matches('/');
    let list_path = format!("{location}/metadata/snap-{snapshot_id}-{}-{}.avro", retry + 1, uuid::Uuid::new_v4());
    written.push(list_path.clone());
    let mut list_writer = ManifestListWriter::v2(
        table.file_io().new_output(&list_path)?.writer().await?,
        snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        sequence_number,
    );
    list_writer.add_manifests(manifests.into_iter())?;
    list_writer.close().await?;
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(now_ms().max(metadata.last_updated_ms() + 1))
        .with_manifest_list(list_path)
        .with_summary(Summary { operation, additional_properties: summary })
        .with_schema_id(metadata.current_schema_id())
        .build();
    let requirements = vec![
        TableRequirement::UuidMatch { uuid: metadata.uuid() },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: parent.as_ref().map(|p| p.snapshot_id()),
        },
    ];
    let updates = vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_string(),
            reference: SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
        },
        TableUpdate::SetProperties { updates: crate::ledger::properties(&ledger, snapshot_id) },
    ];
    let planned_ms = attempt_started.elapsed().as_millis() as u64;
    let committed = crate::snapshot_commit::commit(catalog, table, requirements, updates).await?;
    let total_ms = attempt_started.elapsed().as_millis() as u64;
    tracing::debug!(planned_ms, total_ms, "attempt committed");
    catalog.table_commits(table.identifier()).cycle_ms.store(total_ms.max(1), std::sync::atomic::Ordering::Relaxed);
    catalog.counters().commit();
    Ok(change.committed(&committed, snapshot_id))
}

/// Summary totals (`total-*`) of a snapshot that adds and removes files, from its parent's.
pub(crate) fn totals(
    parent: Option<&SnapshotRef>,
    added: (u64, u64, u64),
    removed: (u64, u64, u64),
    summary: &mut HashMap<String, String>,
) {
    let previous = parent.map(|p| &p.summary().additional_properties);
    let total = |key: &str| previous.and_then(|p| p.get(key)).and_then(|v| v.parse::<u64>().ok());
    let (files, rows, bytes) = added;
    let (rfiles, rrows, rbytes) = removed;
    for (key, plus, minus) in [
        ("total-data-files", files, rfiles),
        ("total-records", rows, rrows),
        ("total-files-size", bytes, rbytes),
    ] {
        if parent.is_none() || total(key).is_some() {
            summary.insert(key.to_string(), (total(key).unwrap_or(0) + plus).saturating_sub(minus).to_string());
        }
    }
    for key in ["total-delete-files", "total-position-deletes", "total-equality-deletes"] {
        summary.insert(key.to_string(), total(key).unwrap_or(0).to_string());
    }
    if files > 0 {
        summary.insert("added-data-files".into(), files.to_string());
        summary.insert("added-records".into(), rows.to_string());
        summary.insert("added-files-size".into(), bytes.to_string());
    }
    if rfiles > 0 {
        summary.insert("deleted-data-files".into(), rfiles.to_string());
        summary.insert("deleted-records".into(), rrows.to_string());
        summary.insert("removed-files-size".into(), rbytes.to_string());
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A positive snapshot id the table does not use.
pub(crate) fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_with_jitter_within_bounds() {
        let p = RetryPolicy {
            num_retries: 10,
            min_wait: Duration::from_millis(100),
            max_wait: Duration::from_millis(1000),
            total_timeout: Duration::from_secs(60),
        };
        for retry in 1..12 {
            let ceiling = Duration::from_millis((100u64 << retry.min(20)).min(1000));
            let waits: Vec<Duration> = (0..200).map(|_| p.wait(retry, Duration::from_millis(3))).collect();
            assert!(waits.iter().all(|w| *w >= p.min_wait && *w <= ceiling), "retry {retry}: {waits:?}");
            assert!(waits.iter().any(|w| *w != waits[0]), "retry {retry} jittered");
        }
    }

    #[test]
    fn waits_scale_with_the_attempts_duration() {
        let p = RetryPolicy {
            num_retries: 10,
            min_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(5000),
            total_timeout: Duration::from_secs(60),
        };
        // A 200 ms commit cycle (a REST catalog): the first retry waits up to 400 ms, not 20.
        let waits: Vec<Duration> = (0..400).map(|_| p.wait(1, Duration::from_millis(200))).collect();
        assert!(waits.iter().all(|w| *w >= p.min_wait && *w <= Duration::from_millis(400)), "{waits:?}");
        assert!(waits.iter().any(|w| *w > Duration::from_millis(100)), "spread over the slot: {waits:?}");
        // Never past max_wait.
        assert!((0..200).all(|_| p.wait(8, Duration::from_secs(1)) <= p.max_wait));
        // Nor past 64 of the attempt's cycles, however many retries lost.
        let cap = Duration::from_millis(10) * (1 << MAX_DOUBLINGS);
        assert!((0..200).all(|_| p.wait(30, Duration::from_millis(10)) <= cap));
        assert!((0..200).any(|_| p.wait(30, Duration::from_millis(10)) > cap / 2), "it does grow to the cap");
    }
}
