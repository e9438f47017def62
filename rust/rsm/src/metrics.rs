//! What the plugin counts for operators: every call the broker makes (count, failures, latency),
//! what it moves (bytes and records copied, bytes served), how values land (columns or the raw
//! fallback), how fresh the table is (tiering lag: from a segment's newest record to its commit),
//! errors by kind, and the commit path's counters (commits, segments per commit, conflicts).
//!
//! Cheap atomics, bumped on the calls' paths in `lib.rs` and the fetch stream. [`Metrics::read`]
//! gives a flat list of named values — the JMX attributes the Java shim's MBean shows
//! (`io.calving:type=RemoteStorageManager,…`, see the README) — so the names live here, once.
//! Counters only grow (scrapers take rates); latencies are histograms since the plugin started,
//! read as mean, p50, p99 and max.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::error::RsmError;

/// Buckets of [`Histogram`]: bucket `i` holds durations below 2^i µs (the last: everything
/// longer), so a percentile is at most twice the true value.
const BUCKETS: usize = 40;

/// A latency histogram (power-of-two microsecond buckets), its sum and its maximum.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// Recorded values so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The `p` quantile in milliseconds: the upper bound of the bucket it falls in, never above
    /// the maximum recorded (0 when empty).
    pub(crate) fn quantile_ms(&self, p: f64) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        let rank = ((count as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                let upper_us = if i == 0 { 1 } else { 1u64 << i };
                return (upper_us.min(self.max_us.load(Relaxed).max(1))) as f64 / 1e3;
            }
        }
        self.max_ms()
    }

    pub(crate) fn mean_ms(&self) -> f64 {
        let count = self.count();
        if count == 0 {
            0.0
        } else {
            self.sum_us.load(Relaxed) as f64 / count as f64 / 1e3
        }
    }

    pub(crate) fn max_ms(&self) -> f64 {
        self.max_us.load(Relaxed) as f64 / 1e3
    }
}

/// One kind of broker call: successes, failures and the latency of both.
#[derive(Debug, Default)]
pub(crate) struct Call {
    failures: AtomicU64,
    latency: Histogram,
}

impl Call {
    fn read(&self, name: &str, out: &mut Vec<(String, f64)>) {
        let total = self.latency.count();
        let failures = self.failures.load(Relaxed);
        out.push((format!("{name}Count"), total.saturating_sub(failures) as f64));
        out.push((format!("{name}Failures"), failures as f64));
        out.push((format!("{name}LatencyAvgMs"), self.latency.mean_ms()));
        out.push((format!("{name}LatencyP50Ms"), self.latency.quantile_ms(0.5)));
        out.push((format!("{name}LatencyP99Ms"), self.latency.quantile_ms(0.99)));
        out.push((format!("{name}LatencyMaxMs"), self.latency.max_ms()));
    }
}

/// The plugin's counters; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) copy: Call,
    pub(crate) fetch: Call,
    pub(crate) fetch_index: Call,
    pub(crate) delete: Call,
    pub(crate) copied_bytes: AtomicU64,
    pub(crate) copied_records: AtomicU64,
    pub(crate) served_bytes: AtomicU64,
    pub(crate) values_in_columns: AtomicU64,
    pub(crate) values_raw_fallback: AtomicU64,
    pub(crate) keys_in_columns: AtomicU64,
    pub(crate) keys_raw_fallback: AtomicU64,
    /// From a segment's newest record (its max timestamp) to its commit.
    pub(crate) tiering_lag: Histogram,
    last_tiering_lag_ms: AtomicU64,
    /// Failed calls by [`RsmError::kind_index`].
    errors: [AtomicU64; RsmError::KIND_NAMES.len()],
}

impl Metrics {
    /// Times `f` as a call of `call`; a failure counts as one and by its kind.
    pub(crate) fn time<T>(&self, call: &Call, f: impl FnOnce() -> Result<T, RsmError>) -> Result<T, RsmError> {
        let started = std::time::Instant::now();
        let result = f();
        call.latency.record(started.elapsed());
        if let Err(e) = &result {
            call.failures.fetch_add(1, Relaxed);
            self.error(e);
        }
        result
    }

    /// Counts an error by its kind.
    pub(crate) fn error(&self, e: &RsmError) {
        self.errors[e.kind_index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn tiering_lag(&self, lag: Duration) {
        self.tiering_lag.record(lag);
        self.last_tiering_lag_ms.store(u64::try_from(lag.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Every value by its JMX attribute name; `commits` are the catalog's commit counters.
    pub(crate) fn read(&self, commits: calving_table::CommitStats) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        self.copy.read("Copy", &mut out);
        self.fetch.read("Fetch", &mut out);
        self.fetch_index.read("FetchIndex", &mut out);
        self.delete.read("Delete", &mut out);
        for (name, v) in [
            ("CopiedBytes", &self.copied_bytes),
            ("CopiedRecords", &self.copied_records),
            ("ServedBytes", &self.served_bytes),
            ("ValuesInColumns", &self.values_in_columns),
            ("ValuesRawFallback", &self.values_raw_fallback),
            ("KeysInColumns", &self.keys_in_columns),
            ("KeysRawFallback", &self.keys_raw_fallback),
        ] {
            out.push((name.to_string(), v.load(Relaxed) as f64));
        }
        out.push(("TieringLagLastMs".into(), self.last_tiering_lag_ms.load(Relaxed) as f64));
        out.push(("TieringLagP50Ms".into(), self.tiering_lag.quantile_ms(0.5)));
        out.push(("TieringLagP99Ms".into(), self.tiering_lag.quantile_ms(0.99)));
        out.push(("TieringLagMaxMs".into(), self.tiering_lag.max_ms()));
        out.push(("Commits".into(), commits.commits as f64));
        out.push(("CommittedSegments".into(), commits.segments as f64));
        // Segments in this broker's snapshots: its own that no other broker carried, and the
        // others' it carried.
        let in_own_commits = (commits.segments - commits.carried_by_others.min(commits.segments)) + commits.carried;
        out.push((
            "SegmentsPerCommit".into(),
            if commits.commits == 0 { 0.0 } else { in_own_commits as f64 / commits.commits as f64 },
        ));
        out.push(("CarriedSegments".into(), commits.carried as f64));
        out.push(("SegmentsCarriedByOthers".into(), commits.carried_by_others as f64));
        out.push(("CommitConflicts".into(), commits.conflicts as f64));
        out.push(("CommitUnknownOutcomes".into(), commits.unknown_outcomes as f64));
        out.push(("CommitFailures".into(), commits.failed as f64));
        out.push(("CommitRefusedSegments".into(), commits.refused as f64));
        for (kind, n) in RsmError::KIND_NAMES.iter().zip(&self.errors) {
            out.push((format!("Errors{kind}"), n.load(Relaxed) as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds_within_a_factor_of_two() {
        let h = Histogram::default();
        assert_eq!(h.quantile_ms(0.99), 0.0, "empty");
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let (p50, p99) = (h.quantile_ms(0.5), h.quantile_ms(0.99));
        assert!((50.0..=100.0).contains(&p50), "p50 {p50}");
        assert!((99.0..=100.0).contains(&p99), "p99 {p99} (capped at the maximum)");
        assert_eq!(h.max_ms(), 100.0);
        assert!((h.mean_ms() - 50.5).abs() < 1e-9);
        h.record(Duration::from_secs(3600 * 24 * 365));
        assert_eq!(h.count(), 101, "a huge value lands in the last bucket");
    }

    #[test]
    fn calls_count_failures_by_kind() {
        let m = Metrics::default();
        let _ = m.time(&m.copy, || Ok(()));
        let _ = m.time(&m.copy, || -> Result<(), RsmError> {
            Err(RsmError::InvalidConfig { key: "k".into(), reason: "r".into() })
        });
        let values: BTreeMap<String, f64> = m.read(Default::default()).into_iter().collect();
        assert_eq!(values["CopyCount"], 1.0);
        assert_eq!(values["CopyFailures"], 1.0);
        assert_eq!(values["ErrorsInvalidConfig"], 1.0);
        assert_eq!(values["ErrorsStorage"], 0.0);
        assert_eq!(values["FetchCount"], 0.0);
        // Each kind's name is its variant's (the index and the names cannot drift apart).
        for e in [
            RsmError::InvalidConfig { key: "k".into(), reason: "r".into() },
            RsmError::NotFound { segment: "s".into(), what: "w".into() },
            RsmError::RowsMissing { segment: "s".into(), start_offset: 0, end_offset: 1, reason: "r".into() },
            RsmError::BadPosition { segment: "s".into(), position: 1, size: 0 },
        ] {
            assert!(format!("{e:?}").starts_with(e.kind_name()), "{e:?} is {}", e.kind_name());
        }
    }
}
