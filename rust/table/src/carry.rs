//! Carried appends: writers contending for one table commit each other's segments.
//!
//! Every broker that leads a partition of a topic commits into the topic's table, and a table's
//! commits are serialized by the catalog's compare-and-set: when several brokers commit at once,
//! one lands and the others conflict, wait and try again, each needing a commit of its own. With
//! W writers every round costs W catalog cycles, most of them lost (BENCHMARKS.md, "The commit
//! path at cluster scale"). Carrying turns a lost race into work for the winner of the next one:
//!
//! 1. **Post.** A group commit ([`crate::commit`]) whose attempt conflicts writes, before it
//!    backs off, an *intent* into the table's location
//!    (`<table location>/calving-intents/<posting time>-<id>.json`): its members' segment identities
//!    ([`SegmentCommit`]) and their data files (Iceberg's JSON form of a data file).
//! 2. **Carry.** Any writer planning a commit of a table it shares with others (a recent foreign
//!    commit, or its own conflict) lists the intents, reads the new ones (once: an intent never
//!    changes), and takes those whose every member passes its ledger check on the table it plans
//!    on (the owner's own check: the offsets held are exactly those the owner planned around) into
//!    its snapshot: their data files in its new manifest, their offsets in the ledger, their ids in
//!    the summary ([`CARRIED_PROP`]). Within the group bounds; intents posted more than
//!    `CARRY_FOR` (60 s) ago are left to their owner.
//! 3. **Wait in line.** Instead of coming back after a random backoff to race everyone again, an
//!    owner waits for its turn: the owner of the oldest intent commits next (carrying the
//!    others'), a carrier deletes the intents it carried once its snapshot landed (in one bulk
//!    request) and then its own, and an owner whose intent is gone plans again at once (and finds
//!    it carried). So the writers that lost a race take turns instead of colliding: one commit
//!    per round carries everyone waiting. Waiting is cheap in requests: a waiter lists the line
//!    ([`Line`]) once to learn its place, then watches the head's intent with HEAD requests (on S3
//!    a LIST costs what a dozen HEADs do, and listing at every poll was most of the requests of a
//!    contended table); when the head is gone it looks at its own intent — gone too means carried
//!    (the common round), with no listing — and lists again only when it is still there. Only the
//!    head reads the intents it carries (each once per process): a waiter reading ahead is
//!    usually carried instead, and its reads were wasted on a busy store. A writer that
//!    finds itself first in a line others were in a moment ago waits half a commit cycle before
//!    it plans, so that the owners a carrier just answered join its commit with their next
//!    segments instead of waiting a round behind its few. A new group of a table its process
//!    contended for in the last 30 s, or whose line is not empty, joins the line before its first
//!    attempt (`commit::GroupAppend::join_line`). A writer that never lost a race sees no
//!    line: it plans on the state it committed last (`crate::known`), needs no reload, and so
//!    wins every race against a head that must reload (measured on moto: a head lost 18 in a row).
//!    A head that loses writes the line's waiting marker (`calving-intents/waiting`,
//!    [`signal_waiting`]); a writer that plans on its own state looks at the marker beside each
//!    commit (no added latency) and, when it was written within 10 s, joins the line with its next
//!    group. Patience is bounded (a line whose head does not move for 32 of the lost attempt's
//!    cycles, 2–10 s, is left: its owner may have died).
//! 4. **Find.** The owner's next plan walks the snapshots committed since the parent of its lost
//!    attempt: one whose summary names its intent committed those members — they are done, with
//!    that snapshot, and the owner has nothing more to commit for them. Otherwise it plans them as
//!    before, and the compare-and-set orders its own commit and any carrier's: whichever lands
//!    second fails its ledger check on the rebase and drops them.
//!
//! The owner deletes its intent when its group is done, a carrier those it carried. Exactly once
//! holds because every carrier checks every carried member against the ledger of the state it
//! commits on, like the owner.
//! What a posted intent changes for the owner is certainty: once it was readable, a carrier may
//! land it until the owner has seen the outcome, so a group that gives up (or cannot walk back to
//! the parent: history expired meanwhile) reports those members' outcome as unknown (their files
//! are kept; Kafka's retry finds the offsets in the ledger; the orphan sweep takes the files if
//! nothing ever committed them) — never a certain failure that would delete files a carrier's
//! snapshot refers to. Intents whose owner died are deleted by carriers after `STALE_AFTER` (10 min)
//! (and by the orphan sweep). Carrying is an optimization: an intent that cannot be written or
//! read is left out, and the owner commits its own members as without it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use iceberg::spec::{deserialize_data_file_from_json, serialize_data_file_to_json, DataFile, FormatVersion};
use iceberg::table::Table;
use serde::{Deserialize, Serialize};

use crate::commit::SegmentCommit;
use crate::publish::now_ms;

/// Snapshot summary key: the ids of the intents (other writers' segments) this snapshot carried,
/// comma-separated.
pub const CARRIED_PROP: &str = "calving.carried";
/// Intents posted longer ago are not carried (their owner commits them itself or gives up).
pub(crate) const CARRY_FOR: Duration = Duration::from_secs(60);
/// Intents posted longer ago are deleted by the writers that list them (their owner died).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(600);
/// Where a table's intents are, under its location.
const INTENTS_DIR: &str = "calving-intents";
/// The line's "someone waits" marker, in the intents' directory (not an intent: no `.json`).
const WAITING_MARKER: &str = "waiting";
/// A marker rewritten this recently says the line's head is losing races to a writer outside
/// the line.
const WAITING_FRESH_FOR: Duration = Duration::from_secs(10);

/// What a writer asks others to commit for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Intent {
    pub(crate) id: String,
    /// When it was posted (the owner's clock, ms since the epoch).
    pub(crate) posted_ms: i64,
    /// The partition spec of its data files.
    pub(crate) spec_id: i32,
    pub(crate) members: Vec<SegmentCommit>,
    /// The members' data files, in Iceberg's JSON form of a data file (one read per intent).
    pub(crate) data_files: Vec<String>,
}

impl Intent {
    /// Where it is posted: named by the owner's clock first, so that the line's order ([`turn`])
    /// is the order of posting (the store's modification times have whole seconds only).
    pub(crate) fn location(&self, table: &Table) -> String {
        format!("{}{:013}-{}.json", dir(table), self.posted_ms.max(0), self.id)
    }
}

/// The JSON form of `files` (of `table`'s default spec) an intent carries.
pub(crate) fn data_files_json(table: &Table, files: &[DataFile]) -> iceberg::Result<Vec<String>> {
    let metadata = table.metadata();
    let partition_type = metadata.default_partition_spec().partition_type(metadata.current_schema())?;
    files
        .iter()
        .map(|f| serialize_data_file_to_json(f.clone(), &partition_type, FormatVersion::V2))
        .collect()
}

/// Another writer's intent, read with its data files: what a plan may carry.
#[derive(Debug)]
pub(crate) struct Foreign {
    /// Where it is posted.
    pub(crate) location: String,
    pub(crate) intent: Intent,
    pub(crate) data_files: Vec<DataFile>,
}

impl Foreign {
    pub(crate) fn bytes(&self) -> u64 {
        self.data_files.iter().map(DataFile::file_size_in_bytes).sum()
    }
}

/// The directory of `table`'s intents (with a trailing `/`).
pub(crate) fn dir(table: &Table) -> String {
    dir_at(table.metadata().location())
}

/// The directory of the intents of the table at `table_location` (with a trailing `/`).
fn dir_at(table_location: &str) -> String {
    format!("{}/{INTENTS_DIR}/", table_location.trim_end_matches('/'))
}

/// Writes `intent` where carriers of `table` look; returns its location.
pub(crate) async fn post(storage: &calving_storage::ObjectStorage, table: &Table, intent: &Intent) -> Option<String> {
    let location = intent.location(table);
    let bytes = serde_json::to_vec(intent).expect("an intent serialises");
    match storage.put(&location, bytes.into()).await {
        Ok(()) => Some(location),
        Err(e) => {
            tracing::debug!(%location, error = %e, "could not post a commit intent; committing alone");
            None
        }
    }
}

/// Where `table_location`'s line keeps its waiting marker ([`signal_waiting`]): the line's own
/// state, rewritten in ordinary operation, which the orphan sweep leaves alone.
pub fn waiting_marker(table_location: &str) -> String {
    format!("{}{WAITING_MARKER}", dir_at(table_location))
}

/// Says, with the marker, that the line's head lost a race: a writer outside the line keeps
/// committing ahead of it (one that plans on the state it committed last, which needs no reload,
/// wins every race against a head that must reload). Such a writer looks at the marker
/// ([`someone_waiting`]) and joins the line. Best effort.
pub(crate) async fn signal_waiting(storage: &calving_storage::ObjectStorage, table: &Table) {
    let location = waiting_marker(table.metadata().location());
    if let Err(e) = storage.put(&location, bytes::Bytes::new()).await {
        tracing::debug!(%location, error = %e, "could not write the line's waiting marker");
    }
}

/// Whether the line's head lost a race within [`WAITING_FRESH_FOR`] (see [`signal_waiting`]).
pub(crate) async fn someone_waiting(storage: &calving_storage::ObjectStorage, table: &Table) -> bool {
    match storage.head(&waiting_marker(table.metadata().location())).await {
        Ok(info) => std::time::SystemTime::now().duration_since(info.last_modified).unwrap_or_default() <= WAITING_FRESH_FOR,
        Err(_) => false,
    }
}

/// Deletes a posted intent (best effort: carriers skip stale ones, the orphan sweep takes it).
pub(crate) async fn withdraw(storage: &calving_storage::ObjectStorage, location: &str) {
    if let Err(e) = storage.delete(location).await {
        tracing::debug!(%location, error = %e, "could not delete a commit intent");
    }
}

/// Deletes intents that were carried, in one bulk request where the store has it.
pub(crate) async fn withdraw_all(storage: &calving_storage::ObjectStorage, locations: &[String]) {
    if let Err(e) = storage.delete_many(locations).await {
        tracing::debug!(intents = locations.len(), error = %e, "could not delete carried commit intents");
    }
}

/// Intents read so far, by location (an intent never changes once posted; `None`: unreadable).
pub(crate) type Seen = HashMap<String, Option<Arc<Foreign>>>;

/// One listing of a table's intents: a waiter's turn and a planner's intents to carry both come
/// from it (a LIST is the dearest request of an object store, and the line is listed often).
#[derive(Debug)]
pub(crate) struct Line {
    listed: Vec<calving_storage::ObjectInfo>,
    at: std::time::SystemTime,
}

/// Lists `table`'s line of intents; `None` when it cannot be listed (carrying is left out).
pub(crate) async fn line(storage: &calving_storage::ObjectStorage, table: &Table) -> Option<Line> {
    match storage.list(&dir(table)).await {
        Ok(listed) => Some(Line { listed, at: std::time::SystemTime::now() }),
        Err(e) => {
            tracing::debug!(table = %table.identifier(), error = %e, "could not list commit intents");
            None
        }
    }
}

impl Line {
    fn age(&self, info: &calving_storage::ObjectInfo) -> Duration {
        self.at.duration_since(info.last_modified).unwrap_or_default()
    }

    /// Whether a listed object is an intent posted within `CARRY_FOR` (one in the line).
    fn live(&self, info: &calving_storage::ObjectInfo) -> bool {
        info.location.ends_with(".json") && self.age(info) <= CARRY_FOR
    }

    /// Whether the line holds live intents other than `own` (with `None`: whether anyone waits).
    pub(crate) fn others(&self, own: Option<&str>) -> bool {
        self.listed.iter().any(|i| self.live(i) && Some(i.location.as_str()) != own)
    }

    /// The oldest live intent: the one whose owner commits now (the line's head).
    pub(crate) fn head(&self) -> Option<&str> {
        self.listed.iter().filter(|i| self.live(i)).map(|i| i.location.as_str()).min()
    }

    /// The place of the intent posted at `own` among the live intents (oldest first: names begin
    /// with the time of posting; every writer orders the same listing the same way).
    pub(crate) fn turn(&self, own: &str) -> Turn {
        if !self.listed.iter().any(|i| i.location == own) {
            return Turn::Gone;
        }
        match self.listed.iter().filter(|i| self.live(i) && i.location.as_str() < own).count() {
            0 => Turn::First,
            n => Turn::Behind(n),
        }
    }
}

/// The intents of the `line` of `table` that other writers posted within `CARRY_FOR` (60 s) (not
/// `own`), oldest first, with their data files; `seen` keeps those read before (pruned to what is
/// still listed). Intents whose owner died (posted `STALE_AFTER` ago) are deleted. Errors leave
/// intents out: carrying is an optimization.
pub(crate) async fn collect(
    storage: &calving_storage::ObjectStorage,
    table: &Table,
    line: &Line,
    own: Option<&str>,
    seen: &std::sync::Mutex<Seen>,
) -> Vec<Arc<Foreign>> {
    let mut fresh = Vec::new();
    for info in &line.listed {
        if Some(info.location.as_str()) == own || !info.location.ends_with(".json") {
            continue;
        }
        if line.age(info) > STALE_AFTER {
            withdraw(storage, &info.location).await; // an intent whose owner died
        } else if line.live(info) {
            fresh.push(info.location.clone());
        }
    }
    let unread: Vec<String> = {
        let mut seen = seen.lock().expect("seen intents");
        let live: HashSet<&str> = line.listed.iter().map(|i| i.location.as_str()).collect();
        seen.retain(|location, _| live.contains(location.as_str()));
        fresh.iter().filter(|l| !seen.contains_key(*l)).cloned().collect()
    };
    let read = join_all(unread.iter().map(|location| read(storage, table, location))).await;
    let mut seen = seen.lock().expect("seen intents");
    for (location, foreign) in unread.into_iter().zip(read) {
        seen.insert(location, foreign.map(Arc::new));
    }
    let cutoff = now_ms() - CARRY_FOR.as_millis() as i64;
    let mut out: Vec<Arc<Foreign>> = fresh
        .iter()
        .filter_map(|l| seen.get(l).cloned().flatten())
        .filter(|f| f.intent.posted_ms >= cutoff)
        .collect();
    out.sort_by_key(|f| f.intent.posted_ms);
    out
}

/// One intent and its data files; `None` when it cannot be read (deleted meanwhile: its owner
/// is done with it) or its files do not fit `table` (a partition spec it does not have).
async fn read(storage: &calving_storage::ObjectStorage, table: &Table, location: &str) -> Option<Foreign> {
    let metadata = table.metadata();
    let parsed = storage
        .get(location)
        .await
        .map_err(|e| format!("could not read it: {e}"))
        .and_then(|b| serde_json::from_slice::<Intent>(&b).map_err(|e| format!("it does not parse: {e}")))
        .and_then(|intent| {
            let spec = metadata
                .partition_spec_by_id(intent.spec_id)
                .ok_or_else(|| format!("the table has no partition spec {}", intent.spec_id))?;
            let partition_type = spec.partition_type(metadata.current_schema()).map_err(|e| e.to_string())?;
            let files = intent
                .data_files
                .iter()
                .map(|json| deserialize_data_file_from_json(json, intent.spec_id, &partition_type, metadata.current_schema()))
                .collect::<iceberg::Result<Vec<DataFile>>>()
                .map_err(|e| format!("its data files do not parse: {e}"))?;
            Ok((intent, files))
        });
    match parsed {
        Ok((intent, data_files)) => Some(Foreign { location: location.to_string(), intent, data_files }),
        Err(reason) => {
            tracing::debug!(%location, %reason, "a commit intent left out");
            None
        }
    }
}

/// Where a posted intent stands in its table's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// It is the oldest live intent: its owner commits next, carrying the others.
    First,
    /// This many older intents wait: their owners commit first (and carry this one).
    Behind(usize),
    /// It is gone: a carrier deleted it after committing it.
    Gone,
}

/// Whether a snapshot committed since `parent` carried intent `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// In this snapshot.
    In(i64),
    /// Not since `parent`.
    No,
    /// `parent` is not among the current snapshot's ancestors any more (expired or rolled back):
    /// cannot tell.
    CannotTell,
}

/// Walks from the current snapshot back to `parent` looking for intent `id` in the summaries.
pub(crate) fn find(table: &Table, id: &str, parent: Option<i64>) -> Found {
    for snapshot in crate::commit::ancestry(table) {
        if Some(snapshot.snapshot_id()) == parent {
            return Found::No;
        }
        let carried = snapshot.summary().additional_properties.get(CARRIED_PROP);
        if carried.is_some_and(|ids| ids.split(',').any(|c| c == id)) {
            return Found::In(snapshot.snapshot_id());
        }
    }
    if parent.is_none() {
        Found::No
    } else {
        Found::CannotTell
    }
}
