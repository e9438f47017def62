//! Exactly-once appends of a segment's data files, checked against the ledger.
//!
//! [`append`] adds the data files of one Kafka segment in one snapshot whose summary carries the
//! segment's identity ([`SEGMENT_ID_PROP`], [`TOPIC_ID_PROP`], [`PARTITION_PROP`],
//! [`START_OFFSET_PROP`], [`END_OFFSET_PROP`]: for people and tools reading the history; nothing
//! depends on them) and the table's whole ledger with the segment's offsets added
//! ([`crate::ledger`]). It goes through the commit driver ([`crate::publish`]), which plans every
//! attempt on the freshly loaded table:
//!
//! - the ledger's ranges overlapping the segment's offsets must be exactly those the caller
//!   planned around ([`SegmentCommit::already_held`]: the rows it did not write again because the
//!   table held them). Anything else — another copy or broker committed some of the offsets
//!   meanwhile, or a removal took rows the caller meant to point at — is
//!   [`Error::OffsetsAlreadyCommitted`]: the caller plans again;
//! - the new data manifest is written once and reused by every attempt.
//!
//! The commit requires `main` to still be at the snapshot the check looked at, so a commit that
//! slipped in between makes ours conflict, reload and check again. An unknown outcome is
//! reconciled by the snapshot id (see [`crate::publish`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use iceberg::spec::{DataFile, ManifestFile, Operation, SnapshotRef};
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::error::{Error, Result};
use crate::ledger::{self, Ledger};
use crate::publish::{self, Change, Step};
use crate::CalvingCatalog;

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
/// Snapshot summary key of a group commit: how many segments it committed (the `calving.*`
/// segment keys above name the first).
pub const SEGMENTS_PROP: &str = "calving.segments";

/// The identity of the segment whose data files a commit adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The ledger's ranges overlapping `start_offset..=end_offset` when the caller planned the
    /// commit (rows it did not write because the table held them); empty for new offsets.
    pub already_held: Vec<(i64, i64)>,
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

/// What [`append`] did.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// The files are committed in this snapshot; `table` is the table after the commit.
    Committed { snapshot_id: i64, table: Box<Table> },
}

impl CommitOutcome {
    /// The snapshot holding the segment's files.
    pub fn snapshot_id(&self) -> i64 {
        match self {
            CommitOutcome::Committed { snapshot_id, .. } => *snapshot_id,
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

/// Most data file bytes one group commit takes (beyond its first member).
const GROUP_MAX_BYTES: u64 = 1 << 30;

/// One table's commits in this process: the lock that serializes them, the appends waiting for
/// the next one (group commit), and the newest table state it knows.
#[derive(Debug, Default)]
pub(crate) struct TableCommits {
    pub(crate) lock: tokio::sync::Mutex<()>,
    queue: std::sync::Mutex<Vec<Pending>>,
    /// The newest state of the table this process knows (see [`crate::known`]).
    pub(crate) known: std::sync::Mutex<crate::known::Known>,
}

/// An append waiting for its table's commit (group commit).
pub(crate) struct Pending {
    commit: SegmentCommit,
    data_files: Vec<DataFile>,
    reply: tokio::sync::oneshot::Sender<Result<CommitOutcome>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("commit", &self.commit).field("files", &self.data_files.len()).finish()
    }
}

/// Commits `data_files` of one segment to the topic's table, exactly once against the ledger;
/// see the module docs. Returns once the segment is durably committed.
///
/// **Group commit**: appends to one table that arrive while a commit of that table is in flight
/// in this process wait for it, then go together in the next commit — one snapshot, one
/// manifest, every member's ledger entries — taken by whichever of them gets the table's commit
/// lock first (at most `commit.group.max-segments`, default 64, segments and [`GROUP_MAX_BYTES`] of files). An
/// idle table commits the first append at once. A group whose commit meets another writer's
/// takes in, before it plans again, the appends that queued while it waited (within the same
/// bounds; never after an attempt whose outcome is unknown): under contention groups grow with
/// the wait instead of each conflicting on its own. Every member is checked against the ledger on
/// its own (and against the members before it): one that fails the check fails alone.
pub async fn append(
    catalog: &CalvingCatalog,
    topic: &str,
    data_files: Vec<DataFile>,
    commit: SegmentCommit,
) -> Result<CommitOutcome> {
    commit.validate()?;
    let ident = catalog.table_ident(topic);
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    let table = catalog.table_commits(&ident);
    table.queue.lock().expect("append queue").push(Pending { commit, data_files, reply });
    loop {
        let serialized = table.lock.lock().await;
        // A group committed while we waited may have taken this append.
        if let Ok(outcome) = answer.try_recv() {
            return outcome;
        }
        let group = take_group(&table.queue, catalog.config().group_max_segments(), 0, 0);
        commit_group(catalog, topic, &table, group).await;
        drop(serialized);
        if let Ok(outcome) = answer.try_recv() {
            return outcome;
        }
    }
}

/// The oldest waiting appends, within the group bounds (at least one, when any wait): a group
/// already holding `have` segments of `have_bytes` takes only what keeps it within them.
fn take_group(queue: &std::sync::Mutex<Vec<Pending>>, max_segments: usize, have: usize, have_bytes: u64) -> Vec<Pending> {
    let mut queue = queue.lock().expect("append queue");
    let (mut n, mut bytes) = (0usize, have_bytes);
    while n < queue.len() && have + n < max_segments.max(1) {
        let b: u64 = queue[n].data_files.iter().map(DataFile::file_size_in_bytes).sum();
        if have + n > 0 && bytes + b > GROUP_MAX_BYTES {
            break;
        }
        bytes += b;
        n += 1;
    }
    queue.drain(..n).collect()
}

/// Commits a group (the caller holds the table's commit lock) and answers every member,
/// including the appends that joined it while it retried after a conflict.
async fn commit_group(catalog: &CalvingCatalog, topic: &str, queue: &Arc<TableCommits>, group: Vec<Pending>) {
    if group.is_empty() {
        return;
    }
    let started = Instant::now();
    let members = group.into_iter().map(Member::from).collect();
    let shared = catalog.known(&catalog.table_ident(topic), |k| k.shared());
    let mut change = GroupAppend {
        members,
        manifest: None,
        listed: HashSet::new(),
        plans: 0,
        shared,
        written: Vec::new(),
        queue: queue.clone(),
        max_segments: catalog.config().group_max_segments(),
    };
    let result = publish::publish_locked(catalog, topic, &mut change).await;
    let table = catalog.table_ident(topic);
    let size = change.members.len();
    for (i, member) in change.members.iter_mut().enumerate() {
        let outcome = match (&result, member.refused.take()) {
            (_, Some(refused)) => {
                catalog.counters().refused();
                Err(refused)
            }
            (Ok(Some((snapshot_id, committed))), None) => {
                let c = &member.commit;
                tracing::info!(
                    %table,
                    snapshot_id,
                    segment_id = %c.segment_id,
                    partition = c.partition,
                    start_offset = c.start_offset,
                    end_offset = c.end_offset,
                    files = member.data_files.len(),
                    rows = member.data_files.iter().map(|f| f.record_count()).sum::<u64>(),
                    group = size,
                    member = i,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "committed segment"
                );
                catalog.counters().segments(1);
                Ok(CommitOutcome::Committed { snapshot_id: *snapshot_id, table: committed.clone() })
            }
            (Ok(None), None) => Err(Error::from(iceberg::Error::new(ErrorKind::Unexpected, "the group commit committed nothing"))),
            (Err(e), None) => Err(e.for_another_caller()),
        };
        if let Some(reply) = member.reply.take() {
            let _ = reply.send(outcome); // a caller that gave up (dropped) needs no answer
        }
    }
}

/// One member of a group commit.
struct Member {
    commit: SegmentCommit,
    data_files: Vec<DataFile>,
    /// Why the last plan left it out (offsets the ledger holds since its caller planned).
    refused: Option<Error>,
    /// Where its caller waits for the outcome.
    reply: Option<tokio::sync::oneshot::Sender<Result<CommitOutcome>>>,
}

impl From<Pending> for Member {
    fn from(p: Pending) -> Self {
        Member { commit: p.commit, data_files: p.data_files, refused: None, reply: Some(p.reply) }
    }
}

/// Several segments' appends in one snapshot, as the commit driver plans it.
struct GroupAppend {
    members: Vec<Member>,
    /// The data manifest of the members it lists (reused while the same members go in).
    manifest: Option<(Vec<usize>, ManifestFile)>,
    /// The manifests the last plan lists (the members' own, or merged: `manifests::for_append`).
    listed: HashSet<String>,
    /// Plans made so far (a later one is a rebase after a conflict).
    plans: u32,
    /// Other writers committed to the table lately (`known`).
    shared: bool,
    written: Vec<String>,
    /// The table's queue of appends: those waiting when the group rebases join it.
    queue: Arc<TableCommits>,
    max_segments: usize,
}

#[async_trait]
impl Change for GroupAppend {
    type Output = Option<(i64, Box<Table>)>;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<Self::Output>> {
        let (mut ledger, _) = ledger::load(table).await?;
        let mut accepted = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            let c = &m.commit;
            let held = ledger.overlapping(&c.topic_id, c.partition, c.start_offset, c.end_offset);
            m.refused = (clipped(&held, c.start_offset, c.end_offset) != clipped(&c.already_held, c.start_offset, c.end_offset))
                .then(|| Error::OffsetsAlreadyCommitted {
                    table: table.identifier().to_string(),
                    topic_id: c.topic_id.clone(),
                    partition: c.partition,
                    start_offset: c.start_offset,
                    end_offset: c.end_offset,
                    existing: held,
                });
            if m.refused.is_none() {
                // Members after this one see its offsets as held (a retry and a re-upload of the
                // same offsets in one group).
                ledger.add(&c.topic_id, c.partition, c.start_offset, c.end_offset);
                accepted.push(i);
            }
        }
        if accepted.is_empty() {
            self.manifest = None; // what earlier plans wrote is superseded
            self.listed.clear();
            return Ok(Step::Finish(None));
        }
        if self.manifest.as_ref().is_none_or(|(members, _)| *members != accepted) {
            let files: Vec<DataFile> = accepted.iter().flat_map(|&i| self.members[i].data_files.iter().cloned()).collect();
            let manifest = crate::manifests::added(table, snapshot_id, &files, &mut self.written).await?;
            self.manifest = Some((accepted.clone(), manifest));
        }
        let metadata = table.metadata();
        let parent = metadata.current_snapshot();
        let parent_manifests = match parent {
            Some(parent) => table.manifest_list_reader(parent).load().await?.entries().to_vec(),
            None => Vec::new(),
        };
        let files: Vec<&DataFile> = accepted.iter().flat_map(|&i| self.members[i].data_files.iter()).collect();
        let added = self.manifest.as_ref().expect("written above").1.clone();
        let contended = self.shared || self.plans > 0;
        self.plans += 1;
        let manifests = crate::manifests::for_append(table, snapshot_id, added, &files, parent_manifests, contended, &mut self.written).await?;
        self.listed = manifests.iter().map(|m| m.manifest_path.clone()).collect();
        // The summary names the first member's segment (one segment: the common case) and how
        // many went in; the ledger holds them all.
        let mut summary = self.members[accepted[0]].commit.summary_properties();
        if accepted.len() > 1 {
            summary.insert(SEGMENTS_PROP.to_string(), accepted.len().to_string());
        }
        let added = accepted
            .iter()
            .flat_map(|&i| self.members[i].data_files.iter())
            .fold((0, 0, 0), |(f, r, b), d| (f + 1, r + d.record_count(), b + d.file_size_in_bytes()));
        publish::totals(parent, added, (0, 0, 0), &mut summary);
        Ok(Step::Commit { manifests, operation: Operation::Append, summary, ledger })
    }

    fn committed(&mut self, table: &Table, snapshot_id: i64) -> Self::Output {
        Some((snapshot_id, Box::new(table.clone())))
    }

    fn written(&self) -> Vec<String> {
        self.written.clone()
    }

    fn superseded(&self) -> Vec<String> {
        self.written.iter().filter(|w| !self.listed.contains(w.as_str())).cloned().collect()
    }

    /// Appends queued while the group waited out a conflict join it (within the group bounds):
    /// under contention a group grows with the wait instead of leaving them for the next round
    /// of conflicts. Their files go into the rebased plan's new manifest.
    fn rebasing(&mut self) {
        let bytes = self.members.iter().flat_map(|m| &m.data_files).map(DataFile::file_size_in_bytes).sum();
        let joined = take_group(&self.queue.queue, self.max_segments, self.members.len(), bytes);
        self.members.extend(joined.into_iter().map(Member::from));
    }
}

/// `ranges` inside `start..=end`, sorted and merged.
fn clipped(ranges: &[(i64, i64)], start: i64, end: i64) -> Vec<(i64, i64)> {
    let mut l = Ledger::default();
    for &(s, e) in ranges {
        l.add("", 0, s.max(start), e.min(end));
    }
    l.ranges("", 0).to_vec()
}

#[cfg(test)]
mod tests {
    use super::clipped;

    #[test]
    fn planned_ranges_compare_inside_the_segment() {
        assert_eq!(clipped(&[(5, 9), (0, 4)], 0, 100), vec![(0, 9)]);
        // A held range that grew beyond the segment (a commit next to it) compares equal...
        assert_eq!(clipped(&[(0, 700)], 400, 600), clipped(&[(0, 650)], 400, 600));
        // ...one that grew into it does not.
        assert_ne!(clipped(&[(0, 500)], 400, 600), clipped(&[(0, 450)], 400, 600));
        assert_eq!(clipped(&[(0, 399)], 400, 600), Vec::<(i64, i64)>::new());
    }
}
