//! The newest state of each table this process knows, so a copy does not parse the table's
//! metadata again and again.
//!
//! A copy needs the table twice before its commit — to plan from the ledger, and as the base of
//! the commit — and every load parses the whole `metadata.json` (REST: the server's answer; SQL:
//! the file). The commit's own answer is the table as committed. When this process is the table's
//! only writer, that answer *is* the current table: the next copy plans and commits on it without
//! a load, and a copy parses the metadata once (the commit's answer on REST, nothing on SQL,
//! which writes the metadata it commits).
//!
//! Reusing it is safe whatever happened meanwhile: every commit requires `main` to still be at
//! the snapshot it was planned on (and the table's uuid), so a commit planned on a stale state
//! conflicts, and the commit driver then loads the table and plans again (the ledger check is
//! redone on the fresh table). It only costs: a stale base means a wasted attempt. So the state
//! is reused only while the table looks single-writer: a load or a conflict that shows a state
//! this process did not commit (another broker, Spark, `calving maintain` elsewhere) marks the
//! table **shared** for [`SHARED_FOR`], during which every plan starts from a fresh load, as
//! before. An error other than a conflict forgets the state (the table may have been dropped).

use std::time::{Duration, Instant};

use iceberg::table::Table;

/// How long a table stays "shared" (every plan loads it) after this process last saw a state it
/// did not commit.
pub(crate) const SHARED_FOR: Duration = Duration::from_secs(30);

/// One table's newest known state.
#[derive(Debug, Default)]
pub(crate) struct Known {
    table: Option<Table>,
    /// When a state this process did not commit was last seen.
    foreign_at: Option<Instant>,
    /// When a commit of this process last conflicted with another writer's.
    conflict_at: Option<Instant>,
}

impl Known {
    /// The state to plan on without a load: the newest known, unless the table is shared.
    pub(crate) fn reusable(&self) -> Option<Table> {
        if self.shared() {
            None
        } else {
            self.table.clone()
        }
    }

    /// The newest known state, shared or not (where the table is, which spec it has).
    pub(crate) fn latest(&self) -> Option<Table> {
        self.table.clone()
    }

    /// Whether another writer committed to the table lately (within [`SHARED_FOR`]).
    pub(crate) fn shared(&self) -> bool {
        self.foreign_at.is_some_and(|at| at.elapsed() < SHARED_FOR)
    }

    /// Whether a commit of this process conflicted lately (within [`SHARED_FOR`]): writers
    /// contend for the table, and a new group joins the line of commit intents
    /// (`crate::carry`) instead of racing.
    pub(crate) fn contended(&self) -> bool {
        self.conflict_at.is_some_and(|at| at.elapsed() < SHARED_FOR)
    }

    /// This process committed `table`.
    pub(crate) fn committed(&mut self, table: &Table) {
        self.table = Some(table.clone());
    }

    /// A load returned `table`: newer than what this process knows means another writer
    /// committed (older is a load that raced one of our commits, and tells nothing).
    pub(crate) fn loaded(&mut self, table: &Table) {
        let newer = match &self.table {
            None => {
                self.table = Some(table.clone());
                return;
            }
            Some(known) => {
                known.metadata_location() != table.metadata_location()
                    && version(table) >= version(known)
            }
        };
        if newer {
            self.foreign_at = Some(Instant::now());
            self.table = Some(table.clone());
        }
    }

    /// A commit planned on the known state conflicted: someone else committed.
    pub(crate) fn conflicted(&mut self) {
        self.foreign_at = Some(Instant::now());
        self.conflict_at = self.foreign_at;
    }

    /// Forgets the state (after an error that is not a conflict).
    pub(crate) fn forget(&mut self) {
        self.table = None;
    }
}

/// Orders states of one table: data changes bump the sequence number, others the update time.
fn version(table: &Table) -> (i64, i64) {
    let m = table.metadata();
    (m.last_sequence_number(), m.last_updated_ms())
}
