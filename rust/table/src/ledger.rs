//! The ledger: which offsets of which (topic id, partition) the table holds, carried forward by
//! every Calving commit.
//!
//! Exactly once (DESIGN.md invariant 4) needs to know, before each commit, which offsets the table
//! already holds. That knowledge must survive whatever anyone does to the table's history —
//! snapshots expired down to the current one, data files rewritten by another engine, rollbacks —
//! so it cannot be derived from the list of past commits. Instead every Calving commit (append,
//! removal, maintenance) writes the **whole** ledger, as the ledger it was based on plus (or
//! minus) its own ranges, into the table property [`LEDGER_PROP`], stamped with the snapshot it
//! describes in [`LEDGER_SNAPSHOT_PROP`] — in the same commit as the snapshot, so atomically with
//! the data; the Iceberg Kafka Connect sink carries its offsets forward the same way. A table
//! property, not the snapshot summary: `metadata.json` holds it once instead of once per retained
//! snapshot (with 3,000 partitions a ledger is ~50 KB; every commit writes or parses
//! `metadata.json`). The ledger is compact: per partition a list of disjoint offset ranges,
//! adjacent ranges merged, so a partition tiered in order is one range whatever the number of
//! segments.
//!
//! [`load`] finds the ledger of a table's state by walking the current ancestry from the current
//! snapshot: the snapshot the property is stamped with, or (tables written before the property)
//! a snapshot whose summary carries a ledger under the same key. Snapshots of other engines
//! passed on the way (compaction, manifest rewrites) move rows between files but do not add Kafka
//! offsets. A stamp outside the ancestry (a rollback, or a property copied to another table) is
//! ignored. When nothing of the current ancestry carries one (the stamped snapshot was expired
//! under a foreign commit, a rollback, a table that predates the ledger), the ledger is **rebuilt
//! from the rows**: a scan of the `kafka` column of the live data files (delete files applied),
//! one range per (topic id, partition) from its smallest to its largest offset. Gaps inside that range are
//! offsets without rows (control records, compacted-away records): no copy can bring rows for them
//! later, because Kafka tiers a partition's offsets in order.
//!
//! Rows deleted by another engine stay in the ledger: a re-upload does not bring them back, and a
//! Kafka read of them fails naming the offsets (see calving-rsm's fetch).

use std::collections::{BTreeMap, HashMap};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::Array;
use futures::TryStreamExt;
use iceberg::table::Table;
use iceberg::ErrorKind;

use crate::error::{Error, Result};

/// Table property of the ledger (JSON: `{"<topic id>": {"<partition>": [[start, end], ...]}}`,
/// offsets inclusive); tables written before it carry it in snapshot summaries, same key.
pub const LEDGER_PROP: &str = "calving.ledger";
/// Table property: the id of the snapshot whose state [`LEDGER_PROP`] describes.
pub const LEDGER_SNAPSHOT_PROP: &str = "calving.ledger.snapshot-id";

/// Disjoint, sorted offset ranges (inclusive) per topic id and partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    topics: BTreeMap<String, BTreeMap<i32, Vec<(i64, i64)>>>,
}

/// Where [`load`] found the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerSource {
    /// The table has no current snapshot: nothing is committed.
    Empty,
    /// Describes this snapshot (the current one or its nearest ancestor carrying one): the table
    /// property stamped with it, or its summary.
    Snapshot(i64),
    /// Rebuilt from the rows of the live data files (no snapshot of the ancestry carries one).
    Rebuilt,
}

impl Ledger {
    /// The ranges of one partition, sorted and disjoint.
    pub fn ranges(&self, topic_id: &str, partition: i32) -> &[(i64, i64)] {
        self.topics
            .get(topic_id)
            .and_then(|p| p.get(&partition))
            .map_or(&[], Vec::as_slice)
    }

    /// The stored ranges of one partition that share an offset with `start..=end`.
    pub fn overlapping(&self, topic_id: &str, partition: i32, start: i64, end: i64) -> Vec<(i64, i64)> {
        self.ranges(topic_id, partition)
            .iter()
            .copied()
            .filter(|&(s, e)| s <= end && start <= e)
            .collect()
    }

    /// Whether `offset` of the partition is held.
    pub fn covers(&self, topic_id: &str, partition: i32, offset: i64) -> bool {
        let ranges = self.ranges(topic_id, partition);
        let i = ranges.partition_point(|&(_, e)| e < offset);
        ranges.get(i).is_some_and(|&(s, _)| s <= offset)
    }

    /// Records `start..=end` as held (merged with what touches it).
    pub fn add(&mut self, topic_id: &str, partition: i32, start: i64, end: i64) {
        if end < start {
            return;
        }
        let ranges = self.topics.entry(topic_id.to_string()).or_default().entry(partition).or_default();
        ranges.push((start, end));
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for &(s, e) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ranges = merged;
    }

    /// Forgets `start..=end` (ranges are cut where they overlap it).
    pub fn remove(&mut self, topic_id: &str, partition: i32, start: i64, end: i64) {
        let Some(partitions) = self.topics.get_mut(topic_id) else {
            return;
        };
        let Some(ranges) = partitions.get_mut(&partition) else {
            return;
        };
        let mut kept = Vec::with_capacity(ranges.len() + 1);
        for &(s, e) in ranges.iter() {
            if e < start || s > end {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start - 1));
            }
            if e > end {
                kept.push((end + 1, e));
            }
        }
        *ranges = kept;
        if ranges.is_empty() {
            partitions.remove(&partition);
        }
        if partitions.is_empty() {
            self.topics.remove(topic_id);
        }
    }

    /// Every (topic id, partition, ranges).
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &[(i64, i64)])> {
        self.topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, r)| (t.as_str(), *p, r.as_slice())))
    }

    /// The property value.
    pub fn encode(&self) -> String {
        let json: BTreeMap<&str, PartitionsJson<'_>> = self
            .topics
            .iter()
            .map(|(t, ps)| (t.as_str(), ps.iter().map(|(p, r)| (p.to_string(), r.as_slice())).collect()))
            .collect();
        serde_json::to_string(&json).expect("a map of numbers serialises")
    }

    /// Parses a property (or legacy summary) value; ranges are normalised (sorted, merged).
    pub fn decode(text: &str) -> Result<Ledger> {
        let json: BTreeMap<String, BTreeMap<String, Vec<(i64, i64)>>> = serde_json::from_str(text)
            .map_err(|e| invalid(format!("{LEDGER_PROP} is not a Calving ledger: {e}")))?;
        let mut ledger = Ledger::default();
        for (topic, partitions) in json {
            for (p, ranges) in partitions {
                let p: i32 = p
                    .parse()
                    .map_err(|_| invalid(format!("{LEDGER_PROP}: partition {p:?} is not a number")))?;
                for (s, e) in ranges {
                    ledger.add(&topic, p, s, e);
                }
            }
        }
        Ok(ledger)
    }
}

/// One topic's partitions in the summary's JSON: `{"<partition>": [[start, end], ...]}`.
type PartitionsJson<'a> = BTreeMap<String, &'a [(i64, i64)]>;

fn invalid(message: String) -> Error {
    Error::from(iceberg::Error::new(ErrorKind::DataInvalid, message))
}

/// The ledger of the table's current state; see the module docs.
pub async fn load(table: &Table) -> Result<(Ledger, LedgerSource)> {
    if table.metadata().current_snapshot().is_none() {
        return Ok((Ledger::default(), LedgerSource::Empty));
    }
    let props = table.metadata().properties();
    let stamped = props.get(LEDGER_SNAPSHOT_PROP).and_then(|v| v.trim().parse::<i64>().ok());
    for snapshot in crate::commit::ancestry(table) {
        if stamped == Some(snapshot.snapshot_id()) {
            if let Some(text) = props.get(LEDGER_PROP) {
                return Ok((Ledger::decode(text)?, LedgerSource::Snapshot(snapshot.snapshot_id())));
            }
        }
        if let Some(text) = snapshot.summary().additional_properties.get(LEDGER_PROP) {
            return Ok((Ledger::decode(text)?, LedgerSource::Snapshot(snapshot.snapshot_id())));
        }
    }
    let ledger = rebuild(table).await?;
    tracing::info!(
        table = %table.identifier(),
        partitions = ledger.iter().count(),
        "no snapshot of the current ancestry carries a ledger (expired, or written before the ledger): rebuilt it from the rows"
    );
    Ok((ledger, LedgerSource::Rebuilt))
}

/// The table properties that record `ledger` as the state of snapshot `snapshot_id`.
pub(crate) fn properties(ledger: &Ledger, snapshot_id: i64) -> HashMap<String, String> {
    HashMap::from([
        (LEDGER_PROP.to_string(), ledger.encode()),
        (LEDGER_SNAPSHOT_PROP.to_string(), snapshot_id.to_string()),
    ])
}

/// One range per (topic id, partition) of the live rows, smallest to largest offset.
pub async fn rebuild(table: &Table) -> Result<Ledger> {
    let scan = table.scan().select(["kafka"]).build()?;
    let mut batches = scan.to_arrow().await?;
    let mut bounds: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    while let Some(batch) = batches.try_next().await? {
        let kafka = batch
            .column_by_name("kafka")
            .and_then(|c| c.as_struct_opt())
            .ok_or_else(|| invalid(format!("table {}: no kafka struct in the rows", table.identifier())))?;
        let column = |name: &str| {
            kafka
                .column_by_name(name)
                .ok_or_else(|| invalid(format!("table {}: no kafka.{name} column", table.identifier())))
        };
        let topic_ids = column("topic_id")?;
        let topic_ids = topic_ids
            .as_string_opt::<i32>()
            .ok_or_else(|| invalid("kafka.topic_id is not a string column".into()))?;
        let partitions = column("partition")?;
        let partitions = partitions
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| invalid("kafka.partition is not an int column".into()))?;
        let offsets = column("offset")?;
        let offsets = offsets
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| invalid("kafka.offset is not a long column".into()))?;
        let mut current: Option<((String, i32), (i64, i64))> = None;
        for row in 0..batch.num_rows() {
            if topic_ids.is_null(row) || partitions.is_null(row) || offsets.is_null(row) {
                continue;
            }
            let (t, p, o) = (topic_ids.value(row), partitions.value(row), offsets.value(row));
            // Rows come in runs of one partition: keep the run's bounds, fold them in at its end.
            match &mut current {
                Some(((ct, cp), (lo, hi))) if ct == t && *cp == p => {
                    *lo = (*lo).min(o);
                    *hi = (*hi).max(o);
                }
                _ => {
                    if let Some((key, run)) = current.take() {
                        fold(&mut bounds, key, run);
                    }
                    current = Some(((t.to_string(), p), (o, o)));
                }
            }
        }
        if let Some((key, run)) = current.take() {
            fold(&mut bounds, key, run);
        }
    }
    let mut ledger = Ledger::default();
    for ((t, p), (lo, hi)) in bounds {
        ledger.add(&t, p, lo, hi);
    }
    Ok(ledger)
}

fn fold(bounds: &mut BTreeMap<(String, i32), (i64, i64)>, key: (String, i32), (lo, hi): (i64, i64)) {
    let b = bounds.entry(key).or_insert((lo, hi));
    b.0 = b.0.min(lo);
    b.1 = b.1.max(hi);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_split_and_round_trip() {
        let mut l = Ledger::default();
        l.add("t", 0, 0, 99);
        l.add("t", 0, 100, 199);
        l.add("t", 0, 300, 399);
        l.add("t", 1, 5, 5);
        assert_eq!(l.ranges("t", 0), &[(0, 199), (300, 399)]);
        assert!(l.covers("t", 0, 150) && !l.covers("t", 0, 250) && l.covers("t", 0, 300));
        assert!(!l.covers("u", 0, 0));
        assert_eq!(l.overlapping("t", 0, 190, 310), vec![(0, 199), (300, 399)]);
        l.remove("t", 0, 50, 349);
        assert_eq!(l.ranges("t", 0), &[(0, 49), (350, 399)]);
        let text = l.encode();
        assert_eq!(text, r#"{"t":{"0":[[0,49],[350,399]],"1":[[5,5]]}}"#);
        assert_eq!(Ledger::decode(&text).unwrap(), l);
        l.remove("t", 1, 0, 10);
        assert_eq!(l.iter().count(), 1);
        assert!(Ledger::decode("not json").is_err());
        assert!(Ledger::decode(r#"{"t":{"x":[[0,1]]}}"#).is_err());
    }
}
