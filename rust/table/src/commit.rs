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

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use async_trait::async_trait;
use iceberg::spec::{DataFile, ManifestFile, Operation, SnapshotRef};
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::error::{Error, Result};
use crate::ledger::{self, Ledger, LEDGER_PROP};
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

/// Commits `data_files` of one segment to the topic's table, exactly once against the ledger;
/// see the module docs.
pub async fn append(
    catalog: &CalvingCatalog,
    topic: &str,
    data_files: Vec<DataFile>,
    commit: SegmentCommit,
) -> Result<CommitOutcome> {
    commit.validate()?;
    let started = Instant::now();
    let files = data_files.len();
    let rows: u64 = data_files.iter().map(|f| f.record_count()).sum();
    let mut change = Append { commit, data_files, manifest: None };
    let outcome = publish::publish(catalog, topic, &mut change).await?;
    let c = &change.commit;
    tracing::info!(
        table = %catalog.table_ident(topic),
        snapshot_id = outcome.snapshot_id(),
        segment_id = %c.segment_id,
        partition = c.partition,
        start_offset = c.start_offset,
        end_offset = c.end_offset,
        files,
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "committed segment"
    );
    Ok(outcome)
}

/// One segment's append, as the commit driver plans it.
struct Append {
    commit: SegmentCommit,
    data_files: Vec<DataFile>,
    /// The data manifest, written on the first attempt and reused.
    manifest: Option<ManifestFile>,
}

#[async_trait]
impl Change for Append {
    type Output = CommitOutcome;

    async fn plan(&mut self, table: &Table, snapshot_id: i64) -> Result<Step<CommitOutcome>> {
        let c = &self.commit;
        let (mut ledger, _) = ledger::load(table).await?;
        let held = ledger.overlapping(&c.topic_id, c.partition, c.start_offset, c.end_offset);
        if clipped(&held, c.start_offset, c.end_offset) != clipped(&c.already_held, c.start_offset, c.end_offset) {
            return Err(Error::OffsetsAlreadyCommitted {
                table: table.identifier().to_string(),
                topic_id: c.topic_id.clone(),
                partition: c.partition,
                start_offset: c.start_offset,
                end_offset: c.end_offset,
                existing: held,
            });
        }
        ledger.add(&c.topic_id, c.partition, c.start_offset, c.end_offset);
        let metadata = table.metadata();
        if self.manifest.is_none() {
            let mut written = Vec::new();
            self.manifest = Some(crate::manifests::added(table, snapshot_id, &self.data_files, &mut written).await?);
        }
        let mut manifests = vec![self.manifest.clone().expect("written above")];
        let parent = metadata.current_snapshot();
        if let Some(parent) = parent {
            manifests.extend(table.manifest_list_reader(parent).load().await?.entries().iter().cloned());
        }
        let mut summary = c.summary_properties();
        summary.insert(LEDGER_PROP.to_string(), ledger.encode());
        let added = self.data_files.iter().fold((0, 0, 0), |(f, r, b), d| (f + 1, r + d.record_count(), b + d.file_size_in_bytes()));
        publish::totals(parent, added, (0, 0, 0), &mut summary);
        Ok(Step::Commit { manifests, operation: Operation::Append, summary })
    }

    fn committed(&mut self, table: &Table, snapshot_id: i64) -> CommitOutcome {
        CommitOutcome::Committed { snapshot_id, table: Box::new(table.clone()) }
    }

    fn written(&self) -> Vec<String> {
        self.manifest.iter().map(|m| m.manifest_path.clone()).collect()
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
