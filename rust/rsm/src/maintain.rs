//! Table maintenance from the plugin: `calving maintain` and the opt-in background task.
//!
//! The work itself is `calving_table::maintain` (compaction, manifest rewrite, snapshot expiry,
//! deletion of what expiry frees), every step an ordinary commit through the commit driver, so
//! several brokers may run it on one table at once. Kafka reads need nothing from it: a fetch
//! whose data file was compacted away finds the rows in the current table and remembers where
//! (`fetch`), so sidecars are never rewritten.
//!
//! The background task (`maintenance.interval.ms`, off by default) wakes at that interval, with
//! ±10% jitter so brokers spread out, and maintains the tables of the topics this broker copied
//! to or read from since it started, with the tables' own `history.expire.*` and
//! `write.target-file-size-bytes`. A failure is logged at WARN and retried at the next wake-up.

use std::sync::Arc;
use std::time::Duration;

use calving_table::maintain::{MaintenanceOptions, MaintenanceReport};

use crate::error::{Result, RsmError};
use crate::Inner;

pub(crate) fn run(
    inner: &Inner,
    topic: &str,
    options: &MaintenanceOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<MaintenanceReport> {
    inner
        .runtime
        .block_on(calving_table::maintain::maintain(&inner.catalog, topic, options, progress))
        .map_err(|source| RsmError::Table { segment: format!("maintenance of topic {topic}"), source: Box::new(source) })
}

/// Starts the background maintenance thread.
pub(crate) fn spawn_background(inner: Arc<Inner>, every: Duration) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("calving-maintenance".into())
        .spawn(move || loop {
            let jitter = (uuid::Uuid::new_v4().as_u128() % 2001) as i64 - 1000; // per mille
            let wait = every.mul_f64(1.0 + jitter as f64 / 10_000.0);
            let (stopped, wake) = &*inner.stop;
            let guard = stopped.lock().expect("stop flag");
            let (guard, _) = wake.wait_timeout_while(guard, wait, |stop| !*stop).expect("stop flag");
            if *guard {
                return;
            }
            drop(guard);
            for topic in inner.known_topics() {
                let log = |line: &str| tracing::debug!(%topic, "maintenance: {line}");
                match run(&inner, &topic, &MaintenanceOptions::default(), &log) {
                    Ok(r) => tracing::info!(
                        %topic,
                        compacted_files = r.compact.input_files,
                        compacted_into = r.compact.output_files,
                        manifests_merged = r.manifests_merged,
                        snapshots_expired = r.expire.expired.len(),
                        files_deleted = r.expire.deleted_files.len(),
                        "table maintenance"
                    ),
                    Err(e) => tracing::warn!(%topic, error = %e, "table maintenance failed; retried at the next run"),
                }
            }
        })
        .expect("spawning the maintenance thread")
}
