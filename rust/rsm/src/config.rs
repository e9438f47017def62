//! The plugin's own configuration keys (`rsm.config.*` with the prefix stripped by the broker).
//! Storage keys (`s3.*`, …) belong to `calving-storage`, catalog keys (`catalog.*`,
//! `namespace`, `commit.retry.*`) to `calving-table`, Schema Registry keys (`schema.registry.*`)
//! to `calving-schema`'s `RegistryConfig`; this module reads the rest.

use std::collections::HashMap;

use calving_layout::served::Layout;

use crate::error::{Result, RsmError};

/// `warehouse`: where data files, sidecars and (for the embedded catalog) the catalog live.
pub const WAREHOUSE: &str = "warehouse";
/// `retention.mode`: what `deleteLogSegmentData` does to rows, `keep` (default) or `delete`;
/// per topic as `topic.<name>.retention.mode`.
pub const RETENTION_MODE: &str = "retention.mode";
/// `fetch.chunk.bytes`: served bytes rebuilt per step of a fetch stream (default 1 MiB).
pub const FETCH_CHUNK_BYTES: &str = "fetch.chunk.bytes";
/// `sidecar.location`: where segments' sidecars live (default `<warehouse>/calving-sidecars`).
/// Outside every table's location, so that no engine's orphan-file removal reaches them.
pub const SIDECAR_LOCATION: &str = "sidecar.location";
/// `maintenance.interval.ms`: run the built-in table maintenance (compaction, manifest rewrite,
/// snapshot expiry per the tables' `history.expire.*`) in the background this often, on the
/// tables this broker writes; unset (default): never (run `calving maintain`, or Spark).
pub const MAINTENANCE_INTERVAL_MS: &str = "maintenance.interval.ms";
/// `sidecar.cache.entries`: parsed sidecars kept in memory, at most (default 256).
pub const SIDECAR_CACHE_ENTRIES: &str = "sidecar.cache.entries";
/// `sidecar.cache.bytes`: memory the parsed sidecars kept may take, at most (default 64 MiB).
pub const SIDECAR_CACHE_BYTES: &str = "sidecar.cache.bytes";

/// `served.compression`: how `fetchLogSegment` serves originally compressed batches of the
/// segments copied from now on, `lz4` (default: re-compressed as lz4, served layout version 2) or
/// `none` (uncompressed, version 3: a fetch of a given size rebuilds a third of the records, faster,
/// and sends the records' own bytes; BENCHMARKS.md has the trade-off on a real broker); per topic
/// as `topic.<name>.served.compression`. A segment keeps the layout it was copied in (brokers
/// cache its indexes).
pub const SERVED_COMPRESSION: &str = "served.compression";

/// `value.mode`: how values become rows, `key_value` (default: the raw `value` column),
/// `value_schema_id_prefix` or `value_schema_latest`; per topic as `topic.<name>.value.mode`.
pub const VALUE_MODE: &str = "value.mode";
/// `key.mode`: how keys become rows, `raw` (default: the `kafka.key` column),
/// `key_schema_id_prefix` or `key_schema_latest`; per topic as `topic.<name>.key.mode`.
pub const KEY_MODE: &str = "key.mode";
/// `schema.registry.url`: the Confluent-compatible Schema Registry (comma-separated URLs); needed
/// by the schema modes. Also `schema.registry.basic.auth.user.info`,
/// `schema.registry.request.timeout.ms`, `schema.registry.ssl.ca.location`.
pub const SCHEMA_REGISTRY_URL: &str = "schema.registry.url";

/// How a topic's values become rows (Redpanda's Iceberg-topic vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueMode {
    /// `key_value`: the value's bytes in the `value` column.
    KeyValue,
    /// `value_schema_id_prefix`: Confluent wire format, decoded with the writer schema of each
    /// value's id (Avro, Protobuf or JSON Schema, as the registry's `schemaType` says); the
    /// record's (message's, object's) fields become columns.
    SchemaIdPrefix,
    /// `value_schema_latest`: bare values (Avro binary, a Protobuf message without the
    /// message-index list, or a JSON document) decoded with the latest schema of the subject
    /// (`<topic>-value`, or `topic.<name>.value.subject`), whatever its `schemaType`.
    SchemaLatest,
}

impl ValueMode {
    pub fn is_schema(self) -> bool {
        self != ValueMode::KeyValue
    }
}

fn parse_value_mode(key: &str, v: &str) -> Result<ValueMode> {
    match v {
        "key_value" => Ok(ValueMode::KeyValue),
        "value_schema_id_prefix" => Ok(ValueMode::SchemaIdPrefix),
        "value_schema_latest" => Ok(ValueMode::SchemaLatest),
        other => Err(RsmError::InvalidConfig {
            key: key.into(),
            reason: format!("{other:?} is not key_value, value_schema_id_prefix or value_schema_latest"),
        }),
    }
}

/// How a topic's keys become rows: the value modes' counterparts for keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// `raw`: the key's bytes in `kafka.key`.
    Raw,
    /// `key_schema_id_prefix`: Confluent wire format, decoded with the writer schema of each
    /// key's id; the key's fields become the top-level `key` struct.
    SchemaIdPrefix,
    /// `key_schema_latest`: bare keys (Avro, Protobuf or JSON, as for values) decoded with the
    /// latest schema of the subject (`<topic>-key`, or `topic.<name>.key.subject`).
    SchemaLatest,
}

impl KeyMode {
    pub fn is_schema(self) -> bool {
        self != KeyMode::Raw
    }
}

fn parse_key_mode(key: &str, v: &str) -> Result<KeyMode> {
    match v {
        "raw" => Ok(KeyMode::Raw),
        "key_schema_id_prefix" => Ok(KeyMode::SchemaIdPrefix),
        "key_schema_latest" => Ok(KeyMode::SchemaLatest),
        other => Err(RsmError::InvalidConfig {
            key: key.into(),
            reason: format!("{other:?} is not raw, key_schema_id_prefix or key_schema_latest"),
        }),
    }
}

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
    /// `sidecar.location`, without a trailing `/`.
    pub sidecar_location: String,
    /// `maintenance.interval.ms`.
    pub maintenance_interval: Option<std::time::Duration>,
    pub retention_mode: RetentionMode,
    pub topic_retention: HashMap<String, RetentionMode>,
    pub fetch_chunk_bytes: usize,
    pub sidecar_cache_entries: usize,
    pub sidecar_cache_bytes: usize,
    pub value_mode: ValueMode,
    pub topic_value_mode: HashMap<String, ValueMode>,
    /// `topic.<name>.value.subject`: the subject of `value_schema_latest` (default `<topic>-value`).
    pub topic_value_subject: HashMap<String, String>,
    pub key_mode: KeyMode,
    pub topic_key_mode: HashMap<String, KeyMode>,
    /// `topic.<name>.key.subject`: the subject of `key_schema_latest` (default `<topic>-key`).
    pub topic_key_subject: HashMap<String, String>,
    /// The Schema Registry, when `schema.registry.url` is set.
    pub registry: Option<calving_schema::RegistryConfig>,
    /// `served.compression`, as the served layout copies write.
    pub served_layout: Layout,
    pub topic_served_layout: HashMap<String, Layout>,
    /// Every property, for the storage and table crates.
    pub properties: HashMap<String, String>,
}

fn parse_served_compression(key: &str, v: &str) -> Result<Layout> {
    match v {
        "lz4" => Ok(Layout::CURRENT),
        "none" => Ok(Layout::UNCOMPRESSED),
        other => Err(RsmError::InvalidConfig { key: key.into(), reason: format!("{other:?} is not lz4 or none") }),
    }
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
        let mut topic_value_mode = HashMap::new();
        let mut topic_value_subject = HashMap::new();
        let mut topic_key_mode = HashMap::new();
        let mut topic_key_subject = HashMap::new();
        let mut topic_served_layout = HashMap::new();
        for (k, v) in properties {
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".served.compression")) {
                topic_served_layout.insert(topic.to_string(), parse_served_compression(k, v)?);
            }
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".retention.mode")) {
                topic_retention.insert(topic.to_string(), parse_mode(k, v)?);
            }
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".value.mode")) {
                topic_value_mode.insert(topic.to_string(), parse_value_mode(k, v)?);
            }
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".value.subject")) {
                topic_value_subject.insert(topic.to_string(), v.clone());
            }
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".key.mode")) {
                topic_key_mode.insert(topic.to_string(), parse_key_mode(k, v)?);
            }
            if let Some(topic) = k.strip_prefix("topic.").and_then(|r| r.strip_suffix(".key.subject")) {
                topic_key_subject.insert(topic.to_string(), v.clone());
            }
        }
        let served_layout = match properties.get(SERVED_COMPRESSION) {
            Some(v) => parse_served_compression(SERVED_COMPRESSION, v)?,
            None => Layout::CURRENT,
        };
        let key_mode = match properties.get(KEY_MODE) {
            Some(v) => parse_key_mode(KEY_MODE, v)?,
            None => KeyMode::Raw,
        };
        let value_mode = match properties.get(VALUE_MODE) {
            Some(v) => parse_value_mode(VALUE_MODE, v)?,
            None => ValueMode::KeyValue,
        };
        let registry = if properties.contains_key(SCHEMA_REGISTRY_URL) {
            Some(
                calving_schema::RegistryConfig::from_properties(properties.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(|e| RsmError::InvalidConfig { key: "schema.registry.*".into(), reason: e.to_string() })?,
            )
        } else {
            None
        };
        if registry.is_none() && (value_mode.is_schema() || topic_value_mode.values().any(|m| m.is_schema())) {
            return Err(RsmError::InvalidConfig {
                key: SCHEMA_REGISTRY_URL.into(),
                reason: "required by value.mode value_schema_id_prefix and value_schema_latest".into(),
            });
        }
        if registry.is_none() && (key_mode.is_schema() || topic_key_mode.values().any(|m| m.is_schema())) {
            return Err(RsmError::InvalidConfig {
                key: SCHEMA_REGISTRY_URL.into(),
                reason: "required by key.mode key_schema_id_prefix and key_schema_latest".into(),
            });
        }
        let fetch_chunk_bytes = match properties.get(FETCH_CHUNK_BYTES) {
            Some(v) => parse_usize(FETCH_CHUNK_BYTES, v)?.max(1),
            None => 1 << 20,
        };
        let sidecar_cache_entries = match properties.get(SIDECAR_CACHE_ENTRIES) {
            Some(v) => parse_usize(SIDECAR_CACHE_ENTRIES, v)?,
            None => 256,
        };
        let sidecar_cache_bytes = match properties.get(SIDECAR_CACHE_BYTES) {
            Some(v) => parse_usize(SIDECAR_CACHE_BYTES, v)?,
            None => 64 << 20,
        };
        let sidecar_location = properties
            .get(SIDECAR_LOCATION)
            .cloned()
            .unwrap_or_else(|| format!("{}/calving-sidecars", warehouse.trim_end_matches('/')))
            .trim_end_matches('/')
            .to_string();
        let maintenance_interval = match properties.get(MAINTENANCE_INTERVAL_MS) {
            Some(v) => Some(std::time::Duration::from_millis(parse_usize(MAINTENANCE_INTERVAL_MS, v)?.max(1000) as u64)),
            None => None,
        };
        Ok(RsmConfig {
            warehouse,
            sidecar_location,
            maintenance_interval,
            retention_mode,
            topic_retention,
            fetch_chunk_bytes,
            sidecar_cache_entries,
            sidecar_cache_bytes,
            value_mode,
            topic_value_mode,
            topic_value_subject,
            key_mode,
            topic_key_mode,
            topic_key_subject,
            registry,
            served_layout,
            topic_served_layout,
            properties: properties.clone(),
        })
    }

    /// The retention mode of a topic.
    pub fn retention_mode(&self, topic: &str) -> RetentionMode {
        self.topic_retention.get(topic).copied().unwrap_or(self.retention_mode)
    }

    /// The value mode of a topic.
    pub fn value_mode(&self, topic: &str) -> ValueMode {
        self.topic_value_mode.get(topic).copied().unwrap_or(self.value_mode)
    }

    /// The subject whose latest schema `value_schema_latest` decodes a topic's values with.
    pub fn value_subject(&self, topic: &str) -> String {
        self.topic_value_subject.get(topic).cloned().unwrap_or_else(|| format!("{topic}-value"))
    }

    /// The key mode of a topic.
    pub fn key_mode(&self, topic: &str) -> KeyMode {
        self.topic_key_mode.get(topic).copied().unwrap_or(self.key_mode)
    }

    /// The served layout a topic's segments are copied in (`served.compression`).
    pub fn served_layout(&self, topic: &str) -> Layout {
        self.topic_served_layout.get(topic).copied().unwrap_or(self.served_layout)
    }

    /// The subject whose latest schema `key_schema_latest` decodes a topic's keys with.
    pub fn key_subject(&self, topic: &str) -> String {
        self.topic_key_subject.get(topic).cloned().unwrap_or_else(|| format!("{topic}-key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain([("warehouse".to_string(), "file:///w".to_string())]).collect()
    }

    #[test]
    fn value_modes_per_topic() {
        let c = RsmConfig::from_properties(&props(&[
            ("schema.registry.url", "http://127.0.0.1:1/apis/ccompat/v7"),
            ("value.mode", "value_schema_id_prefix"),
            ("topic.raw.value.mode", "key_value"),
            ("topic.l.value.mode", "value_schema_latest"),
            ("topic.l.value.subject", "shop.Order"),
        ]))
        .unwrap();
        assert_eq!(c.value_mode("orders"), ValueMode::SchemaIdPrefix);
        assert_eq!(c.value_mode("raw"), ValueMode::KeyValue);
        assert_eq!(c.value_mode("l"), ValueMode::SchemaLatest);
        assert_eq!(c.value_subject("l"), "shop.Order");
        assert_eq!(c.value_subject("orders"), "orders-value");
        assert_eq!(c.key_mode("orders"), KeyMode::Raw);
        // Defaults: raw, no registry needed.
        let c = RsmConfig::from_properties(&props(&[])).unwrap();
        assert_eq!(c.value_mode("t"), ValueMode::KeyValue);
        assert!(c.registry.is_none());
        // Key modes, per topic.
        let c = RsmConfig::from_properties(&props(&[
            ("schema.registry.url", "http://127.0.0.1:1/apis/ccompat/v7"),
            ("key.mode", "key_schema_id_prefix"),
            ("topic.k.key.mode", "key_schema_latest"),
            ("topic.k.key.subject", "shop.OrderKey"),
            ("topic.r.key.mode", "raw"),
        ]))
        .unwrap();
        assert_eq!(
            (c.key_mode("orders"), c.key_mode("k"), c.key_mode("r")),
            (KeyMode::SchemaIdPrefix, KeyMode::SchemaLatest, KeyMode::Raw)
        );
        assert_eq!((c.key_subject("k"), c.key_subject("orders")), ("shop.OrderKey".to_string(), "orders-key".to_string()));
        let e = RsmConfig::from_properties(&props(&[("topic.t.key.mode", "key_schema_id_prefix")])).unwrap_err();
        assert!(e.to_string().contains("schema.registry.url"), "{e}");
        let e = RsmConfig::from_properties(&props(&[("key.mode", "avro")])).unwrap_err();
        assert!(e.to_string().contains("key.mode"), "{e}");
        // A schema mode without a registry, or an unknown mode, is refused at configure.
        let e = RsmConfig::from_properties(&props(&[("topic.t.value.mode", "value_schema_latest")])).unwrap_err();
        assert!(e.to_string().contains("schema.registry.url"), "{e}");
        let e = RsmConfig::from_properties(&props(&[("value.mode", "avro")])).unwrap_err();
        assert!(e.to_string().contains("value.mode"), "{e}");
    }

    #[test]
    fn served_compression_per_topic() {
        let c = RsmConfig::from_properties(&props(&[("topic.cold.served.compression", "none")])).unwrap();
        assert_eq!((c.served_layout("cold"), c.served_layout("t")), (Layout::V3, Layout::V2));
        let c = RsmConfig::from_properties(&props(&[("served.compression", "none"), ("topic.t.served.compression", "lz4")])).unwrap();
        assert_eq!((c.served_layout("cold"), c.served_layout("t")), (Layout::V3, Layout::V2));
        let e = RsmConfig::from_properties(&props(&[("served.compression", "zstd")])).unwrap_err();
        assert!(e.to_string().contains("served.compression") && e.to_string().contains("zstd"), "{e}");
    }
}
