//! Counters of this process's commits (every table of one [`crate::CalvingCatalog`]): what an
//! operator watches to see commits, group sizes and contention, and what the commit benchmark
//! reports. Cheap atomics, bumped by the commit driver ([`crate::publish`]) and group commit
//! ([`crate::commit`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct CommitCounters {
    commits: AtomicU64,
    segments: AtomicU64,
    conflicts: AtomicU64,
    unknown_outcomes: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    carried: AtomicU64,
    carried_by_others: AtomicU64,
}

/// A reading of the counters; each only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Snapshots this process committed (appends, removals, maintenance).
    pub commits: u64,
    /// Segments committed by appends (a group commit counts each member).
    pub segments: u64,
    /// Attempts that conflicted with another writer (or found the catalog unreachable) and were
    /// planned again on the fresh table.
    pub conflicts: u64,
    /// Attempts whose outcome was unknown (reconciled by snapshot id).
    pub unknown_outcomes: u64,
    /// Changes that gave up (the caller got an error).
    pub failed: u64,
    /// Group members refused because the ledger held their offsets already.
    pub refused: u64,
    /// Other writers' segments this process's commits carried (`crate::carry`).
    pub carried: u64,
    /// Segments of this process committed by another writer's commit that carried them (also
    /// counted in `segments`).
    pub carried_by_others: u64,
}

impl CommitCounters {
    pub(crate) fn commit(&self) {
        self.commits.fetch_add(1, Relaxed);
    }
    pub(crate) fn segments(&self, n: u64) {
        self.segments.fetch_add(n, Relaxed);
    }
    pub(crate) fn conflict(&self) {
        self.conflicts.fetch_add(1, Relaxed);
    }
    pub(crate) fn unknown_outcome(&self) {
        self.unknown_outcomes.fetch_add(1, Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn carried(&self, n: u64) {
        self.carried.fetch_add(n, Relaxed);
    }

    pub(crate) fn carried_by_others(&self, n: u64) {
        self.carried_by_others.fetch_add(n, Relaxed);
    }

    pub(crate) fn read(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Relaxed),
            segments: self.segments.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
            unknown_outcomes: self.unknown_outcomes.load(Relaxed),
            failed: self.failed.load(Relaxed),
            refused: self.refused.load(Relaxed),
            carried: self.carried.load(Relaxed),
            carried_by_others: self.carried_by_others.load(Relaxed),
        }
    }
}
