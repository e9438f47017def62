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
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use iceberg::spec::{DataFile, ManifestFile, Operation, SnapshotRef};
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::carry::{self, Foreign};
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Other writers' commit intents read so far ([`crate::carry`]).
    seen: std::sync::Mutex<carry::Seen>,
    /// How long this process's last attempt that landed took, in ms (0: none yet): the table's
    /// commit cycle as this process sees it.
    pub(crate) cycle_ms: AtomicU64,
    /// When (ms since the epoch) a listing of the line last showed other writers' intents.
    others_at_ms: AtomicI64,
}

impl TableCommits {
    /// The table's commit cycle as last measured here, else `fallback`.
    fn cycle(&self, fallback: Duration) -> Duration {
        match self.cycle_ms.load(Ordering::Relaxed) {
            0 => fallback,
            ms => Duration::from_millis(ms),
        }
    }

    /// Notes what a listing of the line showed.
    fn note_listing(&self, line: &carry::Line, own: Option<&str>) {
        if line.others(own) {
            self.others_at_ms.store(publish::now_ms(), Ordering::Relaxed);
        }
    }

    /// Whether other writers were in the line within `within`.
    fn others_within(&self, within: Duration) -> bool {
        publish::now_ms() - self.others_at_ms.load(Ordering::Relaxed) <= within.as_millis() as i64
    }
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
    let (shared, contended) = catalog.known(&catalog.table_ident(topic), |k| (k.shared(), k.contended()));
    let mut change = GroupAppend {
        members,
        manifest: None,
        listed: HashSet::new(),
        plans: 0,
        shared,
        written: Vec::new(),
        queue: queue.clone(),
        max_segments: catalog.config().group_max_segments(),
        storage: catalog.intent_storage().cloned(),
        posted: None,
        head: false,
        carrying: Vec::new(),
    };
    let known = catalog.known(&catalog.table_ident(topic), |k| k.latest());
    if let Some(known) = &known {
        change.join_line(known, contended).await;
    }
    // A writer that does not share the table in its view (it plans on the state it committed
    // last) looks, beside its commit, whether the line's head keeps losing races to it: then its
    // next group joins the line.
    let outsider = match (catalog.intent_storage(), &known) {
        (Some(storage), Some(known)) if !shared => Some((storage, known)),
        _ => None,
    };
    let look = async {
        match outsider {
            Some((storage, known)) => carry::someone_waiting(storage, known).await,
            None => false,
        }
    };
    let (result, waiting) = tokio::join!(publish::publish_locked(catalog, topic, &mut change), look);
    if waiting {
        tracing::debug!(table = %catalog.table_ident(topic), "the line's head is losing races to this writer: its next group joins the line");
        catalog.known(&catalog.table_ident(topic), |k| k.conflicted());
    }
    if let Some(storage) = &change.storage {
        // The carried intents first, the group's own last: the line watches its head's intent
        // (`wait_turn`), and when that is gone, what it carried is gone too. Their owners,
        // waiting in line, see them gone and find them in the snapshot.
        if matches!(result, Ok(Some(_))) && !change.carrying.is_empty() {
            let carried: Vec<String> = change.carrying.iter().map(|f| f.location.clone()).collect();
            carry::withdraw_all(storage, &carried).await;
        }
        if let Some(posted) = change.posted.as_ref().filter(|p| !p.gone) {
            carry::withdraw(storage, &posted.location).await;
        }
    }
    let table = catalog.table_ident(topic);
    if let Ok(Some((snapshot_id, _))) = &result {
        let carried: usize = change.carrying.iter().map(|f| f.intent.members.len()).sum();
        if carried > 0 {
            catalog.counters().carried(carried as u64);
            tracing::debug!(%table, snapshot_id, segments = carried, intents = change.carrying.len(), "carried other writers' segments");
        }
    }
    let size = change.members.len();
    for (i, member) in change.members.iter_mut().enumerate() {
        // (snapshot, table after it, whether another writer's commit carried it), or the error.
        let landed = match (&result, member.refused.take(), member.carried_in.take()) {
            (_, _, Some((snapshot_id, committed))) => Ok((snapshot_id, committed, true)),
            (_, Some(refused), None) => {
                catalog.counters().refused();
                Err(refused)
            }
            (Ok(Some((snapshot_id, committed))), None, None) => Ok((*snapshot_id, committed.clone(), false)),
            (Ok(None), None, None) => Err(Error::from(iceberg::Error::new(ErrorKind::Unexpected, "the group commit committed nothing"))),
            (Err(e), None, None) if member.posted && !matches!(e, Error::CommitStateUnknown { .. }) => {
                // Its intent was readable: a carrier may still land it.
                Err(Error::CommitStateUnknown {
                    table: table.to_string(),
                    what: format!("segment {} (posted for other writers to carry; then: {e})", member.commit.segment_id),
                    source: Box::new(iceberg::Error::new(ErrorKind::CatalogCommitConflicts, e.to_string())),
                })
            }
            (Err(e), None, None) => Err(e.for_another_caller()),
        };
        let outcome = landed.map(|(snapshot_id, committed, carried)| {
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
                carried_by_another_writer = carried,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "committed segment"
            );
            catalog.counters().segments(1);
            if carried {
                catalog.counters().carried_by_others(1);
            }
            CommitOutcome::Committed { snapshot_id, table: committed }
        });
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
    /// In a posted intent ([`crate::carry`]): from then on its outcome is never a certain failure.
    posted: bool,
    /// Committed by another writer's snapshot that carried it (and the table as it was found).
    carried_in: Option<(i64, Box<Table>)>,
    /// Where its caller waits for the outcome.
    reply: Option<tokio::sync::oneshot::Sender<Result<CommitOutcome>>>,
}

impl From<Pending> for Member {
    fn from(p: Pending) -> Self {
        Member { commit: p.commit, data_files: p.data_files, refused: None, posted: false, carried_in: None, reply: Some(p.reply) }
    }
}

/// What a group's data manifest lists: its members (by index) and carried intents (by id).
type ManifestKey = (Vec<usize>, Vec<String>);

/// The intent a group posted after losing a race ([`crate::carry`]).
struct Posted {
    id: String,
    location: String,
    /// The members it lists.
    members: Vec<usize>,
    /// The parent of the attempt that lost: a carrier's snapshot comes after it.
    parent: Option<i64>,
    /// Seen gone from the line (a carrier deleted it): nothing left to withdraw.
    gone: bool,
}

/// Several segments' appends in one snapshot, as the commit driver plans it.
struct GroupAppend {
    members: Vec<Member>,
    /// The data manifest of the members and carried intents it lists (reused while the same go in).
    manifest: Option<(ManifestKey, ManifestFile)>,
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
    /// Where intents go (`None`: carrying is off).
    storage: Option<calving_storage::ObjectStorage>,
    /// This group's intent, once posted.
    posted: Option<Posted>,
    /// Its intent was the line's head when the group last waited: it commits for the line.
    head: bool,
    /// Other writers' intents the last plan carries.
    carrying: Vec<Arc<Foreign>>,
}

impl GroupAppend {
    /// Whether `c`'s offsets held in `ledger` are exactly those its caller planned around; else
    /// the refusal.
    fn check(table: &Table, ledger: &Ledger, c: &SegmentCommit) -> Option<Error> {
        let held = ledger.overlapping(&c.topic_id, c.partition, c.start_offset, c.end_offset);
        (clipped(&held, c.start_offset, c.end_offset) != clipped(&c.already_held, c.start_offset, c.end_offset)).then(|| {
            Error::OffsetsAlreadyCommitted {
                table: table.identifier().to_string(),
                topic_id: c.topic_id.clone(),
                partition: c.partition,
                start_offset: c.start_offset,
                end_offset: c.end_offset,
                existing: held,
            }
        })
    }

    /// The posted intent's members that a snapshot since the lost attempt carried are done;
    /// returns whether it cannot tell (history gone), which makes their refusals unknown.
    fn find_carried(&mut self, table: &Table) -> bool {
        let Some(posted) = &self.posted else { return false };
        match carry::find(table, &posted.id, posted.parent) {
            carry::Found::In(snapshot_id) => {
                for &i in &posted.members {
                    self.members[i].carried_in = Some((snapshot_id, Box::new(table.clone())));
                }
                false
            }
            carry::Found::No => false,
            carry::Found::CannotTell => true,
        }
    }
}

#[async_trait]
impl Change for GroupAppend {
    type Output = Option<(i64, Box<Table>)>;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<Self::Output>> {
        let (mut ledger, _) = ledger::load(table).await?;
        let cannot_tell = self.find_carried(table);
        let mut accepted = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.carried_in.is_some() {
                continue;
            }
            m.refused = Self::check(table, &ledger, &m.commit).map(|refused| {
                if m.posted && cannot_tell {
                    Error::CommitStateUnknown {
                        table: table.identifier().to_string(),
                        what: format!("segment {}", m.commit.segment_id),
                        source: Box::new(iceberg::Error::new(
                            ErrorKind::Unexpected,
                            format!("its offsets are committed, and the snapshots since it was posted for other writers to carry are gone ({refused})"),
                        )),
                    }
                } else {
                    refused
                }
            });
            if m.refused.is_none() {
                // Members after this one see its offsets as held (a retry and a re-upload of the
                // same offsets in one group).
                ledger.add(&m.commit.topic_id, m.commit.partition, m.commit.start_offset, m.commit.end_offset);
                accepted.push(i);
            }
        }
        // Other writers' intents, while the table is contended: each whole or not at all, within
        // the group bounds. A group in the line carries only as its head: the others wait for it
        // (and one whose members were carried is done).
        self.carrying.clear();
        let carries = (self.shared || self.plans > 0) && (self.posted.is_none() || self.head);
        if let Some(storage) = self.storage.as_ref().filter(|_| carries) {
            let own = self.posted.as_ref().map(|p| p.location.as_str());
            let spec_id = table.metadata().default_partition_spec_id();
            let mut segments = accepted.len();
            let mut bytes: u64 = accepted.iter().flat_map(|&i| &self.members[i].data_files).map(DataFile::file_size_in_bytes).sum();
            let collecting = Instant::now();
            let collected = match carry::line(storage, table).await {
                Some(line) => {
                    self.queue.note_listing(&line, own);
                    carry::collect(storage, table, &line, own, &self.queue.seen).await
                }
                None => Vec::new(),
            };
            tracing::debug!(intents = collected.len(), elapsed_ms = collecting.elapsed().as_millis() as u64, "read the line of commit intents");
            for foreign in collected {
                let intent = &foreign.intent;
                if intent.spec_id != spec_id
                    || segments + intent.members.len() > self.max_segments.max(1)
                    || (segments > 0 && bytes + foreign.bytes() > GROUP_MAX_BYTES)
                {
                    continue;
                }
                let mut trial = ledger.clone();
                let fits = intent.members.iter().all(|c| {
                    let ok = Self::check(table, &trial, c).is_none();
                    trial.add(&c.topic_id, c.partition, c.start_offset, c.end_offset);
                    ok
                });
                if fits {
                    ledger = trial;
                    segments += intent.members.len();
                    bytes += foreign.bytes();
                    self.carrying.push(foreign);
                }
            }
        }
        if accepted.is_empty() && self.carrying.is_empty() {
            self.manifest = None; // what earlier plans wrote is superseded
            self.listed.clear();
            return Ok(Step::Finish(None));
        }
        let key = (accepted.clone(), self.carrying.iter().map(|f| f.intent.id.clone()).collect::<Vec<_>>());
        let files: Vec<&DataFile> = accepted
            .iter()
            .flat_map(|&i| self.members[i].data_files.iter())
            .chain(self.carrying.iter().flat_map(|f| f.data_files.iter()))
            .collect();
        if self.manifest.as_ref().is_none_or(|(k, _)| *k != key) {
            let owned: Vec<DataFile> = files.iter().map(|&f| f.clone()).collect();
            let manifest = crate::manifests::added(table, snapshot_id, &owned, &mut self.written).await?;
            self.manifest = Some((key, manifest));
        }
        let metadata = table.metadata();
        let parent = metadata.current_snapshot();
        let parent_manifests = match parent {
            Some(parent) => table.manifest_list_reader(parent).load().await?.entries().to_vec(),
            None => Vec::new(),
        };
        let added = self.manifest.as_ref().expect("written above").1.clone();
        let contended = self.shared || self.plans > 0;
        self.plans += 1;
        let manifests = crate::manifests::for_append(table, snapshot_id, added, &files, parent_manifests, contended, &mut self.written).await?;
        self.listed = manifests.iter().map(|m| m.manifest_path.clone()).collect();
        // The summary names the first segment (one segment: the common case) and how many went
        // in, and the intents carried; the ledger holds them all.
        let first = match accepted.first() {
            Some(&i) => &self.members[i].commit,
            None => &self.carrying[0].intent.members[0],
        };
        let mut summary = first.summary_properties();
        let count = accepted.len() + self.carrying.iter().map(|f| f.intent.members.len()).sum::<usize>();
        if count > 1 {
            summary.insert(SEGMENTS_PROP.to_string(), count.to_string());
        }
        if !self.carrying.is_empty() {
            let ids: Vec<&str> = self.carrying.iter().map(|f| f.intent.id.as_str()).collect();
            summary.insert(carry::CARRIED_PROP.to_string(), ids.join(","));
        }
        let added = files.iter().fold((0, 0, 0), |(f, r, b), d| (f + 1, r + d.record_count(), b + d.file_size_in_bytes()));
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
    /// of conflicts. Their files go into the rebased plan's new manifest. In the line of intents
    /// (`crate::carry`), only its head takes them in.
    fn rebasing(&mut self) {
        if self.posted.is_some() && !self.head {
            // In line but not its head: appends queued meanwhile form the next group (and its
            // intent), so that an owner whose intent was carried does not race the line with
            // them. The head commits for the line anyway, and takes them in.
            return;
        }
        let bytes = self.members.iter().flat_map(|m| &m.data_files).map(DataFile::file_size_in_bytes).sum();
        let joined = take_group(&self.queue.queue, self.max_segments, self.members.len(), bytes);
        self.members.extend(joined.into_iter().map(Member::from));
    }

    /// A group that posted its members waits for its turn in the table's line (`crate::carry`);
    /// without an intent, the policy's backoff.
    async fn wait(&mut self, table: &Table, backoff: Duration, slot: Duration) {
        self.wait_turn(table, backoff, slot).await
    }

    /// After the first lost race, the members still to commit are posted for the writers that
    /// commit next to carry ([`crate::carry`]), before the group backs off.
    async fn lost(&mut self, table: &Table) {
        tracing::debug!(table = %table.identifier(), head = self.head, in_line = self.posted.is_some(), plans = self.plans, carrying = self.carrying.len(), "the group's attempt lost a race");
        if let Some(storage) = self.storage.as_ref().filter(|_| self.head) {
            carry::signal_waiting(storage, table).await;
        }
        self.post(table).await
    }
}

/// A writer first in an empty line gathers when other writers were in it this recently.
const GATHER_IF_OTHERS_WITHIN: Duration = Duration::from_secs(5);

/// The commit cycle a group that joined a line before its first attempt assumes when this
/// process has not measured the table's yet.
const JOIN_POLL_SLOT: Duration = Duration::from_millis(100);

impl GroupAppend {
    /// Posts the members still to commit as an intent (once per group).
    async fn post(&mut self, table: &Table) {
        let parent = table.metadata().current_snapshot_id();
        let Some(storage) = self.storage.as_ref().filter(|_| self.posted.is_none()) else { return };
        let members: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].refused.is_none() && self.members[i].carried_in.is_none())
            .collect();
        if members.is_empty() {
            return;
        }
        let files: Vec<DataFile> = members.iter().flat_map(|&i| self.members[i].data_files.iter().cloned()).collect();
        let data_files = match carry::data_files_json(table, &files) {
            Ok(json) => json,
            Err(e) => {
                tracing::debug!(table = %table.identifier(), error = %e, "could not describe a commit intent's data files; committing alone");
                return;
            }
        };
        let intent = carry::Intent {
            id: uuid::Uuid::new_v4().to_string(),
            posted_ms: publish::now_ms(),
            spec_id: table.metadata().default_partition_spec_id(),
            members: members.iter().map(|&i| self.members[i].commit.clone()).collect(),
            data_files,
        };
        if let Some(location) = carry::post(storage, table, &intent).await {
            for &i in &members {
                self.members[i].posted = true;
            }
            self.posted = Some(Posted { id: intent.id, location, members, parent, gone: false });
        }
    }

    /// Before its first attempt, a group of a table this process contended for lately, or whose
    /// line is not empty (other writers wait to commit), joins the line instead of racing: it
    /// posts its members and waits for its turn. `table`: the newest state this process knows.
    async fn join_line(&mut self, table: &Table, contended: bool) {
        let Some(storage) = &self.storage else { return };
        if !self.shared || !(contended || carry::line(storage, table).await.is_some_and(|l| l.others(None))) {
            return;
        }
        self.post(table).await;
        let slot = self.queue.cycle(JOIN_POLL_SLOT);
        self.wait_turn(table, Duration::ZERO, slot).await;
    }

    /// Waits until the posted intent is the oldest (this group commits next, carrying the
    /// others), or gone (a carrier committed it). The line changes when its head's commit is
    /// done (a carrier deletes what it carried, then its own intent), so between listings a
    /// waiter watches the head's intent with a HEAD request (a LIST, the dearest request of an
    /// object store, costs as much as a dozen on S3 and twice the time on moto). Once the head is
    /// gone it looks at its own intent: gone too means carried (the common round: the head
    /// carries everyone waiting), with no listing; else it lists the line again. Polls once per
    /// lost attempt's cycle (100–300 ms); the next in line, which commits next when the head
    /// could not carry it, every quarter (25–100 ms). It does not read the intents ahead: it is
    /// usually carried instead (measured on moto: a third of the intent reads saved, 63 → 90
    /// segments/s at W = 12). At most 32 cycles (2–10 s), then it tries anyway. First in a line
    /// that others were in within `GATHER_IF_OTHERS_WITHIN`, it waits half a commit cycle
    /// (5–500 ms) before it plans (the module docs of `crate::carry`). Without an intent:
    /// `backoff`.
    async fn wait_turn(&mut self, table: &Table, backoff: Duration, slot: Duration) {
        self.head = false;
        let (Some(storage), Some(posted)) = (&self.storage, &mut self.posted) else {
            tokio::time::sleep(backoff).await;
            return;
        };
        let poll = slot.clamp(Duration::from_millis(100), Duration::from_millis(300));
        let next_poll = (slot / 4).clamp(Duration::from_millis(25), Duration::from_millis(100));
        let patience = (slot * 32).clamp(Duration::from_secs(2), Duration::from_secs(10));
        let started = Instant::now();
        // The head of the line as last listed, and how often to look at it.
        let mut watching: Option<(String, Duration)> = None;
        loop {
            if let Some((head, every)) = &watching {
                if started.elapsed() < patience {
                    if storage.exists(head).await.unwrap_or(false) {
                        tokio::time::sleep(*every).await;
                        continue;
                    }
                    // The head is gone, and what it carried went before it.
                    if let Ok(false) = storage.exists(&posted.location).await {
                        tracing::debug!(intent = %posted.location, waited_ms = started.elapsed().as_millis() as u64, "own commit intent gone with the head's: carried");
                        posted.gone = true;
                        return;
                    }
                }
            }
            let Some(line) = carry::line(storage, table).await else {
                tokio::time::sleep(backoff.saturating_sub(started.elapsed())).await;
                return;
            };
            self.queue.note_listing(&line, Some(&posted.location));
            let turn = line.turn(&posted.location);
            let waiting = matches!(turn, carry::Turn::Behind(_)) && started.elapsed() < patience;
            if !waiting {
                tracing::debug!(intent = %posted.location, ?turn, waited_ms = started.elapsed().as_millis() as u64, "turn in the line of commit intents");
            }
            match turn {
                carry::Turn::First => {
                    self.head = true;
                    if !line.others(Some(&posted.location)) && self.queue.others_within(GATHER_IF_OTHERS_WITHIN) {
                        // Alone in a line others left a moment ago: the writers a carrier just
                        // answered are coming back with their next segments. Committing at once
                        // would take this group's few and keep them waiting a whole cycle for
                        // it; half a cycle's wait lets one commit take everyone's.
                        let gather = (self.queue.cycle(slot) / 2).clamp(Duration::from_millis(5), Duration::from_millis(500));
                        tracing::debug!(intent = %posted.location, gather_ms = gather.as_millis() as u64, "first in an empty line: gathering");
                        tokio::time::sleep(gather).await;
                    }
                    return;
                }
                carry::Turn::Behind(n) if waiting => {
                    let every = if n == 1 { next_poll } else { poll };
                    watching = line.head().map(|head| (head.to_string(), every));
                    tokio::time::sleep(every).await;
                }
                carry::Turn::Gone => {
                    posted.gone = true;
                    return;
                }
                carry::Turn::Behind(_) => return,
            }
        }
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
