//! The plugin's own configuration keys (`rsm.config.*` with the prefix stripped by the broker).
//! Storage keys (`s3.*`, …) belong to `calving-storage`, catalog keys (`catalog.*`,
//! `namespace`, `commit.retry.*`) to `calving-table`; this module reads the rest.

use std::collections::HashMap;

use crate::error::{Result, RsmError};

/// `warehouse`: where data files, sidecars and (for the embedded catalog) the catalog live.
pub const WAREHOUSE: &str = "warehouse";
/// `retention.mode`: what `deleteLogSegmentData` does to rows, `keep` (default) or `delete`;
/// per topic as `topic.<name>.retention.mode`.
pub const RETENTION_MODE: &str = "retention.mode";
/// `fetch.chunk.bytes`: served bytes rebuilt per step of a fetch stream (default 1 MiB).
pub const FETCH_CHUNK_BYTES: &str = "fetch.chunk.bytes";
/// `sidecar.cache.entries`: parsed sidecars kept in memory (default 256).
pub const SIDECAR_CACHE_ENTRIES: &str = "sidecar.cache.entries";

/// What deleting a segment does to its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionMode {
    /// Rows stay in the table for analytics; only what Kafka needs (the sidecar) goes.
    Keep,
    /// Rows go too.
    Delete,
}

/// The plugin's settings.
#[derive(Clone, Debug)]
pub struct RsmConfig {
    pub warehouse: String,
    pub retention_mode: RetentionMode,
    pub topic_retention: HashMap<String, RetentionMode>,
    pub fetch_chunk_bytes: usize,
    pub sidecar_cache_entries: usize,
    /// Every property, for the storage and table crates.
    pub properties: HashMap<String, String>,
}

fn parse_mode(key: &str, v: &str) -> Result<RetentionMode> {
    match v {
        "keep" => Ok(RetentionMode::Keep),
        "delete" => Ok(RetentionMode::Delete),
        other => Err(RsmError::InvalidConfig { key: key.into(), reason: format!("{other:?} is not keep or delete") }),
    }
}

fn parse_usize(key: &str, v: &str) -> Result<usize> {
    v.parse().map_err(|_| RsmError::InvalidConfig { key: key.into(), reason: format!("{v:?} is not a number") })
}

impl RsmConfig {
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<RsmConfig> {
        let warehouse = properties.get(WAREHOUSE).cloned().ok_or_else(|| RsmError::InvalidConfig {
            key: WAREHOUSE.into(),
            reason: "required (for example file:///var/lib/kafka/calving-warehouse or s3://bucket/prefix)".into(),
        })?;
        let retention_mode = match properties.get(RETENTION_MODE) {
            Some(v) => parse_mode(RETENTION_MODE, v)?,
            None => RetentionMode::Keep,
        };
        let mut topic_retention = HashMap::new();
        for (k, v) in properties {
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".retention.mode")) {
                topic_retention.insert(topic.to_string(), parse_mode(k, v)?);
            }
        }
        let fetch_chunk_bytes = match properties.get(FETCH_CHUNK_BYTES) {
            Some(v) => parse_usize(FETCH_CHUNK_BYTES, v)?.max(1),
            None => 1 << 20,
        };
        let sidecar_cache_entries = match properties.get(SIDECAR_CACHE_ENTRIES) {
            Some(v) => parse_usize(SIDECAR_CACHE_ENTRIES, v)?,
            None => 256,
        };
        Ok(RsmConfig {
            warehouse,
            retention_mode,
            topic_retention,
            fetch_chunk_bytes,
            sidecar_cache_entries,
            properties: properties.clone(),
        })
    }

    /// The retention mode of a topic.
    pub fn retention_mode(&self, topic: &str) -> RetentionMode {
        self.topic_retention.get(topic).copied().unwrap_or(self.retention_mode)
    }
}
