//! Catalog configuration from string properties (the broker's `rsm.config.*` keys, prefix already
//! stripped by Kafka), and the catalog built from it.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `catalog.type` | `sql` | `sql` (SQLite file or PostgreSQL through sqlx) or `rest` (Iceberg REST catalog) |
//! | `catalog.name` | `calving` | catalog name; for `sql` the `catalog_name` column shared with pyiceberg/Java readers |
//! | `catalog.uri` | sql: `sqlite:<warehouse dir>/calving-catalog.db?mode=rwc` when the warehouse is local; rest: required | `sqlite:…`, `postgres://…`, or `http://…` |
//! | `warehouse` | required | storage location of the warehouse: `file:///abs/dir`, `s3://bucket/prefix`, `gs://…`, `abfss://…` |
//! | `namespace` | `kafka` | namespace of the topic tables (dots separate levels) |
//! | `commit.retry.num-retries`, `.min-wait-ms`, `.max-wait-ms`, `.total-timeout-ms` | Calving's (1000000, 10, 500, 120000: bounded by time, since brokers contending for one table is normal; Iceberg's are 4, 100, 60000, 1800000) | used for tables that do not set these properties themselves |
//! | `commit.group.max-segments` | 64 | most segments one group commit takes (1: a commit per segment) |
//! | `commit.carry.enabled` | `true` | brokers contending for one table carry each other's segments in their commits (`calving_table::carry`); `false`: every broker commits only its own |
//! | `catalog.pool.max-connections`, `catalog.pool.idle-timeout` (s), `catalog.pool.test-before-acquire` | iceberg's (10, 10, false) | sql connection pool |
//! | `catalog.token`, `catalog.credential`, `catalog.oauth2-server-uri`, `catalog.scope`, `catalog.audience`, `catalog.resource`, `catalog.prefix`, `catalog.header.<name>`, `catalog.disable-header-redaction` | — | rest: passed to iceberg-catalog-rest without the `catalog.` prefix |
//! | `catalog.warehouse` | `warehouse` | rest: the warehouse the REST server is asked for, when it names warehouses otherwise than by location |
//! | `s3.*`, `gcs.*`, `adls.*`, `storage.*`, `client.*` (calving-storage's keys) | — | storage: validated by calving-storage, also handed to the catalog so a REST server's defaults do not override them |
//!
//! Keys this crate does not know are ignored: Kafka hands every `rsm.config.*` key to every
//! component. Storage (data files and Iceberg metadata alike) is calving-storage's object_store
//! client, built from `warehouse` and the storage keys. Values that the iceberg crates would `unwrap()` (the pool numbers) are validated
//! here, so a typo in a broker property is an [`Error::InvalidConfig`], not a panic.
//!
//! The SQL bind style follows the URI: `QMark` for SQLite, `DollarNumeric` for PostgreSQL.
//! `https://` REST URIs are refused: iceberg-catalog-rest 0.10.1 is built without a TLS backend.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use iceberg::io::StorageFactory;
use iceberg::spec::TableProperties;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};

use crate::error::{Error, Result};

/// `commit.carry.enabled`
pub const CARRY_ENABLED: &str = "commit.carry.enabled";
/// `catalog.type`
pub const CATALOG_TYPE: &str = "catalog.type";
/// `catalog.name`
pub const CATALOG_NAME: &str = "catalog.name";
/// `catalog.uri`
pub const CATALOG_URI: &str = "catalog.uri";
/// `warehouse`
pub const WAREHOUSE: &str = "warehouse";
/// `namespace`
pub const NAMESPACE: &str = "namespace";

/// `catalog.request-timeout-ms`: the longest one REST catalog request may take (loads, creates;
/// commits have their own 60 s). Without it a catalog that accepts connections and never answers
/// holds every copy (and the broker's copier threads) for as long as it does.
pub const REST_REQUEST_TIMEOUT_MS: &str = "catalog.request-timeout-ms";
/// Default of [`REST_REQUEST_TIMEOUT_MS`].
pub const DEFAULT_REST_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default `catalog.name`.
pub const DEFAULT_CATALOG_NAME: &str = "calving";
/// Default `namespace`.
pub const DEFAULT_NAMESPACE: &str = "kafka";
/// File name of the default SQLite catalog inside a local warehouse.
pub const DEFAULT_SQLITE_FILE: &str = "calving-catalog.db";

/// `commit.retry.*` keys, all unsigned integers (iceberg's `TableProperties` names).
pub const COMMIT_RETRY_KEYS: [&str; 4] = [
    TableProperties::PROPERTY_COMMIT_NUM_RETRIES,
    TableProperties::PROPERTY_COMMIT_MIN_RETRY_WAIT_MS,
    TableProperties::PROPERTY_COMMIT_MAX_RETRY_WAIT_MS,
    TableProperties::PROPERTY_COMMIT_TOTAL_RETRY_TIME_MS,
];

const SQL_POOL_NUMBER_KEYS: [&str; 2] = ["pool.max-connections", "pool.idle-timeout"];
const SQL_POOL_BOOL_KEYS: [&str; 1] = ["pool.test-before-acquire"];
const REST_KEYS: [&str; 8] = [
    "token",
    "credential",
    "oauth2-server-uri",
    "scope",
    "audience",
    "resource",
    "prefix",
    "disable-header-redaction",
];

/// Which catalog implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// JDBC-layout SQL catalog (iceberg-catalog-sql) on SQLite or PostgreSQL.
    Sql,
    /// Iceberg REST catalog (iceberg-catalog-rest).
    Rest,
}

/// Parsed, validated catalog configuration.
#[derive(Clone)]
pub struct CatalogConfig {
    kind: CatalogKind,
    name: String,
    uri: String,
    warehouse: Option<String>,
    namespace: NamespaceIdent,
    /// Catalog-specific keys, without the `catalog.` prefix (pool.*, token, header.*, …).
    catalog_props: BTreeMap<String, String>,
    /// Storage keys (s3.* …), as given.
    storage_props: BTreeMap<String, String>,
    /// The storage of the warehouse (calving-storage), validated.
    storage: calving_storage::StorageConfig,
    /// The warehouse the REST server is asked for (`catalog.warehouse`, default `warehouse`).
    rest_warehouse: Option<String>,
    /// `commit.retry.*` defaults for tables that do not set them.
    commit_retry: BTreeMap<String, String>,
    /// `commit.group.max-segments`: most segments one group commit takes.
    group_max_segments: usize,
    /// `commit.carry.enabled`: contending writers carry each other's segments.
    carry: bool,
    /// `catalog.request-timeout-ms` (REST): the longest a catalog request may take.
    rest_request_timeout: std::time::Duration,
}

impl CatalogConfig {
    /// Parses and validates the properties; unknown keys are ignored.
    pub fn from_props<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let props: BTreeMap<String, String> = props
            .into_iter()
            .map(|(k, v)| (k.into(), v.into().trim().to_string()))
            .collect();
        let get = |k: &str| props.get(k).filter(|v| !v.is_empty()).cloned();

        let kind = match get(CATALOG_TYPE).as_deref() {
            None | Some("sql") => CatalogKind::Sql,
            Some("rest") => CatalogKind::Rest,
            Some(other) => {
                return Err(Error::config(
                    CATALOG_TYPE,
                    format!("`{other}` is not a catalog type; use `sql` or `rest`"),
                ))
            }
        };
        let name = get(CATALOG_NAME).unwrap_or_else(|| DEFAULT_CATALOG_NAME.to_string());
        let warehouse = get(WAREHOUSE).map(|w| w.trim_end_matches('/').to_string());
        let namespace_str = get(NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let levels: Vec<&str> = namespace_str.split('.').collect();
        if levels.iter().any(|l| l.is_empty()) {
            return Err(Error::config(
                NAMESPACE,
                format!("`{namespace_str}` has an empty level"),
            ));
        }
        let namespace = NamespaceIdent::from_strs(levels)
            .map_err(|e| Error::config(NAMESPACE, e.to_string()))?;

        let uri = match (kind, get(CATALOG_URI)) {
            (CatalogKind::Sql, Some(uri)) => sql_uri(uri)?,
            (CatalogKind::Sql, None) => {
                let warehouse = warehouse.as_deref().ok_or_else(|| {
                    Error::config(
                        WAREHOUSE,
                        "required for the sql catalog (e.g. file:///var/lib/calving/warehouse)",
                    )
                })?;
                let dir = local_dir(warehouse).ok_or_else(|| {
                    Error::config(
                        CATALOG_URI,
                        format!("required: the warehouse `{warehouse}` is not a local directory, so there is no default SQLite file"),
                    )
                })?;
                format!("sqlite:{}/{DEFAULT_SQLITE_FILE}?mode=rwc", dir.display())
            }
            (CatalogKind::Rest, Some(uri)) => {
                if uri.starts_with("https://") {
                    return Err(Error::config(
                        CATALOG_URI,
                        "https is not supported: iceberg-catalog-rest 0.10.1 is built without TLS; use http:// (e.g. through a local proxy)",
                    ));
                }
                if !uri.starts_with("http://") {
                    return Err(Error::config(
                        CATALOG_URI,
                        format!("`{uri}` is not an http:// URI"),
                    ));
                }
                uri.trim_end_matches('/').to_string()
            }
            (CatalogKind::Rest, None) => {
                return Err(Error::config(
                    CATALOG_URI,
                    "required for the rest catalog (http://host:port)",
                ))
            }
        };
        let Some(warehouse_location) = warehouse.clone() else {
            return Err(Error::config(
                WAREHOUSE,
                "required: the storage location of the warehouse (e.g. file:///var/lib/calving/warehouse, s3://bucket/prefix)",
            ));
        };

        let mut catalog_props = BTreeMap::new();
        let mut storage_props = BTreeMap::new();
        let mut commit_retry = BTreeMap::new();
        let mut group_max_segments = 64;
        let mut carry = true;
        let mut rest_request_timeout = DEFAULT_REST_REQUEST_TIMEOUT;
        for (key, value) in &props {
            if key == REST_REQUEST_TIMEOUT_MS {
                rest_request_timeout = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(std::time::Duration::from_millis)
                    .ok_or_else(|| Error::config(key, format!("`{value}` is not a positive integer")))?;
            } else if key == "commit.group.max-segments" {
                group_max_segments = value.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::config(key, format!("`{value}` is not a positive integer"))
                })?;
            } else if key == CARRY_ENABLED {
                carry = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::config(key, format!("`{value}` is not true or false"))),
                };
            } else if COMMIT_RETRY_KEYS.contains(&key.as_str()) {
                value.parse::<u64>().map_err(|_| {
                    Error::config(key, format!("`{value}` is not a non-negative integer"))
                })?;
                commit_retry.insert(key.clone(), value.clone());
            } else if calving_storage::is_storage_key(key) {
                storage_props.insert(key.clone(), value.clone());
            } else if let Some(inner) = key.strip_prefix("catalog.") {
                let known = match kind {
                    CatalogKind::Sql => {
                        if SQL_POOL_NUMBER_KEYS.contains(&inner) {
                            value.parse::<u32>().map_err(|_| {
                                Error::config(
                                    key,
                                    format!("`{value}` is not a non-negative integer"),
                                )
                            })?;
                            true
                        } else if SQL_POOL_BOOL_KEYS.contains(&inner) {
                            value.parse::<bool>().map_err(|_| {
                                Error::config(key, format!("`{value}` is not `true` or `false`"))
                            })?;
                            true
                        } else {
                            false
                        }
                    }
                    CatalogKind::Rest => {
                        REST_KEYS.contains(&inner)
                            || inner.starts_with("header.")
                            || inner == "warehouse"
                    }
                };
                if known {
                    catalog_props.insert(inner.to_string(), value.clone());
                }
            }
        }

        let rest_warehouse = catalog_props
            .remove("warehouse")
            .or_else(|| warehouse.clone());
        let storage_map: HashMap<String, String> = storage_props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let storage = calving_storage::StorageConfig::new(&warehouse_location, &storage_map)
            .map_err(|e| match e {
                calving_storage::Error::InvalidConfig { key, reason, .. } => {
                    Error::InvalidConfig { key, reason }
                }
                other => Error::config(WAREHOUSE, other.report()),
            })?;

        Ok(CatalogConfig {
            kind,
            name,
            uri,
            warehouse,
            namespace,
            catalog_props,
            storage_props,
            storage,
            rest_warehouse,
            commit_retry,
            group_max_segments,
            carry,
            rest_request_timeout,
        })
    }

    /// The catalog implementation.
    pub fn kind(&self) -> CatalogKind {
        self.kind
    }

    /// The catalog name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The catalog URI (for `sql`, the sqlx URI, defaulted from the warehouse).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The warehouse location, if configured.
    pub fn warehouse(&self) -> Option<&str> {
        self.warehouse.as_deref()
    }

    /// The namespace of the topic tables.
    pub fn namespace(&self) -> &NamespaceIdent {
        &self.namespace
    }

    /// Most segments one group commit takes (`commit.group.max-segments`, default 64; 1: every
    /// segment its own commit).
    pub fn group_max_segments(&self) -> usize {
        self.group_max_segments
    }

    /// Whether writers contending for a table carry each other's segments in their commits
    /// (`commit.carry.enabled`, default true).
    pub fn carry(&self) -> bool {
        self.carry
    }

    /// The `commit.retry.*` defaults given in the configuration.
    pub fn commit_retry(&self) -> &BTreeMap<String, String> {
        &self.commit_retry
    }

    /// Catalog-specific keys without the `catalog.` prefix (pool.*, token, credential, header.*, …).
    pub(crate) fn catalog_props(&self) -> &BTreeMap<String, String> {
        &self.catalog_props
    }

    /// The warehouse the REST server is asked for.
    pub(crate) fn rest_warehouse(&self) -> Option<&str> {
        self.rest_warehouse.as_deref()
    }

    /// The storage keys (`s3.*` …) given in the configuration.
    pub fn storage_props(&self) -> &BTreeMap<String, String> {
        &self.storage_props
    }

    /// The warehouse's storage configuration (calving-storage), for writing data files to the
    /// same store the catalog's FileIO uses.
    pub fn storage(&self) -> &calving_storage::StorageConfig {
        &self.storage
    }

    /// Builds the catalog. The SQL catalog connects (and creates its tables) now; the REST
    /// catalog connects on first use, so a REST server that is down does not stop a broker from
    /// starting.
    pub async fn build(&self) -> Result<Arc<dyn Catalog>> {
        let factory = storage_factory(self);
        let mut props: HashMap<String, String> = self
            .catalog_props
            .iter()
            .chain(self.storage_props.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match self.kind {
            CatalogKind::Sql => {
                let warehouse = self.warehouse.clone().unwrap_or_default();
                if let Some(dir) = local_dir(&warehouse) {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        Error::config(WAREHOUSE, format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                if let Some(dir) = sqlite_parent_dir(&self.uri) {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        Error::config(CATALOG_URI, format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let bind_style = if self.uri.starts_with("sqlite:") {
                    SqlBindStyle::QMark
                } else {
                    SqlBindStyle::DollarNumeric
                };
                props.insert(
                    iceberg_catalog_sql::SQL_CATALOG_PROP_URI.into(),
                    self.uri.clone(),
                );
                props.insert(
                    iceberg_catalog_sql::SQL_CATALOG_PROP_WAREHOUSE.into(),
                    warehouse,
                );
                props.insert(
                    iceberg_catalog_sql::SQL_CATALOG_PROP_BIND_STYLE.into(),
                    bind_style.to_string(),
                );
                // Opening creates the catalog's tables (`CREATE TABLE IF NOT EXISTS`). On
                // PostgreSQL two brokers starting at once can both try, and the loser fails
                // ("duplicate key value violates unique constraint pg_type_typname_nsp_index",
                // or "already exists") although the tables are there: open again.
                let mut attempt = 1;
                let catalog = loop {
                    match SqlCatalogBuilder::default()
                        .with_storage_factory(factory.clone())
                        .load(self.name.clone(), props.clone())
                        .await
                    {
                        Ok(catalog) => break catalog,
                        Err(e) if attempt < SQL_OPEN_ATTEMPTS && lost_create_race(&e) => {
                            tracing::debug!(attempt, error = %e, "sql catalog: another client created its tables at the same time; opening again");
                            tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
                            attempt += 1;
                        }
                        Err(e) => return Err(Error::from_catalog("connect to the sql catalog", e)),
                    }
                };
                tracing::info!(catalog = %self.name, uri = %redact_uri(&self.uri), "sql catalog ready");
                Ok(Arc::new(catalog))
            }
            CatalogKind::Rest => {
                props.insert(
                    iceberg_catalog_rest::REST_CATALOG_PROP_URI.into(),
                    self.uri.clone(),
                );
                if let Some(w) = &self.warehouse {
                    props.insert(
                        iceberg_catalog_rest::REST_CATALOG_PROP_WAREHOUSE.into(),
                        w.clone(),
                    );
                }
                let client = reqwest::Client::builder()
                    .connect_timeout(self.rest_request_timeout.min(std::time::Duration::from_secs(10)))
                    .timeout(self.rest_request_timeout)
                    .build()
                    .map_err(|e| Error::config(REST_REQUEST_TIMEOUT_MS, format!("cannot build the HTTP client: {e}")))?;
                let catalog = RestCatalogBuilder::default()
                    .with_client(client)
                    .with_storage_factory(factory)
                    .load(self.name.clone(), props)
                    .await
                    .map_err(|e| Error::from_catalog("configure the rest catalog", e))?;
                tracing::info!(catalog = %self.name, uri = %self.uri, "rest catalog configured");
                Ok(Arc::new(catalog))
            }
        }
    }
}

impl fmt::Debug for CatalogConfig {
    /// Secrets (tokens, credentials, keys, passwords in URIs) are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .map(|(k, v)| {
                    let secret = ["secret", "token", "credential", "password", "key"]
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s));
                    (
                        k.clone(),
                        if secret {
                            "<redacted>".into()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect()
        };
        f.debug_struct("CatalogConfig")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("uri", &redact_uri(&self.uri))
            .field("warehouse", &self.warehouse)
            .field("namespace", &self.namespace)
            .field("catalog_props", &redact(&self.catalog_props))
            .field("storage_props", &redact(&self.storage_props))
            .field("rest_warehouse", &self.rest_warehouse)
            .field("commit_retry", &self.commit_retry)
            .field("group_max_segments", &self.group_max_segments)
            .field("carry", &self.carry)
            .finish()
    }
}

/// How many times the SQL catalog is opened when it lost a race creating its tables.
const SQL_OPEN_ATTEMPTS: u32 = 5;

/// Whether opening the SQL catalog failed only because another client created the catalog's
/// tables at the same moment (PostgreSQL does not serialize concurrent `CREATE TABLE IF NOT
/// EXISTS`: the loser hits the unique index of `pg_type`, or reports the relation as existing).
fn lost_create_race(e: &iceberg::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("duplicate key value violates unique constraint") || text.contains("already exists")
}

/// The storage behind the catalogs' FileIO. The one place to switch storage implementations:
/// calving-storage's object_store client, the same one Calving writes data files with.
fn storage_factory(config: &CatalogConfig) -> Arc<dyn StorageFactory> {
    calving_storage::iceberg_storage_factory(&config.storage)
}

/// Validates a SQL catalog URI; SQLite URIs get `mode=rwc` unless they choose a mode.
fn sql_uri(uri: String) -> Result<String> {
    if uri.starts_with("sqlite:") {
        if uri.contains("mode=") {
            Ok(uri)
        } else if uri.contains('?') {
            Ok(format!("{uri}&mode=rwc"))
        } else {
            Ok(format!("{uri}?mode=rwc"))
        }
    } else if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
        Ok(uri)
    } else {
        Err(Error::config(
            CATALOG_URI,
            format!(
                "`{}` is neither a sqlite: nor a postgres:// URI",
                redact_uri(&uri)
            ),
        ))
    }
}

/// The local directory of a `file:` or absolute-path warehouse.
fn local_dir(warehouse: &str) -> Option<PathBuf> {
    let path = if let Some(rest) = warehouse.strip_prefix("file://") {
        rest
    } else if let Some(rest) = warehouse.strip_prefix("file:") {
        rest
    } else if warehouse.contains("://") {
        return None;
    } else {
        warehouse
    };
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The directory holding a file-backed SQLite database (`sqlite:/abs/x.db?…`, `sqlite:///abs/x.db`).
fn sqlite_parent_dir(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" || !path.starts_with('/') {
        return None;
    }
    PathBuf::from(path).parent().map(PathBuf::from)
}

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`.
fn redact_uri(uri: &str) -> String {
    if let Some((scheme, rest)) = uri.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:<redacted>@{host}");
            }
        }
    }
    uri.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_create_race_is_told_from_other_failures() {
        let wrap = |db: &str| {
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, "operation failed for hitting sqlx error")
                .with_source(std::io::Error::other(db.to_string()))
        };
        assert!(lost_create_race(&wrap(
            "error returned from database: duplicate key value violates unique constraint \"pg_type_typname_nsp_index\""
        )));
        assert!(lost_create_race(&wrap("error returned from database: relation \"iceberg_tables\" already exists")));
        assert!(!lost_create_race(&wrap("error returned from database: password authentication failed for user \"calving\"")));
        assert!(!lost_create_race(&wrap("pool timed out while waiting for an open connection")));
    }

    #[test]
    fn sql_defaults_from_local_warehouse() {
        let c = CatalogConfig::from_props([("warehouse", "file:///data/wh/")]).unwrap();
        assert_eq!(c.kind(), CatalogKind::Sql);
        assert_eq!(c.name(), "calving");
        assert_eq!(c.uri(), "sqlite:/data/wh/calving-catalog.db?mode=rwc");
        assert_eq!(c.warehouse(), Some("file:///data/wh"));
        assert_eq!(c.namespace(), &NamespaceIdent::new("kafka".into()));
    }

    #[test]
    fn sql_needs_warehouse_and_local_default() {
        let e = CatalogConfig::from_props(Vec::<(String, String)>::new()).unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "warehouse"),
            "{e}"
        );
        let e = CatalogConfig::from_props([("warehouse", "s3://bucket/wh")]).unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "catalog.uri"),
            "{e}"
        );
        let c = CatalogConfig::from_props([
            ("warehouse", "s3://bucket/wh"),
            ("catalog.uri", "postgres://calving:pw@db/iceberg"),
        ])
        .unwrap();
        assert_eq!(c.uri(), "postgres://calving:pw@db/iceberg");
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn sqlite_uri_gets_rwc() {
        let c =
            CatalogConfig::from_props([("warehouse", "/wh"), ("catalog.uri", "sqlite:/x/c.db")])
                .unwrap();
        assert_eq!(c.uri(), "sqlite:/x/c.db?mode=rwc");
        assert_eq!(sqlite_parent_dir(c.uri()), Some(PathBuf::from("/x")));
        let e = CatalogConfig::from_props([("warehouse", "/wh"), ("catalog.uri", "mysql://x")])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }));
    }

    #[test]
    fn rest_keys_and_validation() {
        let c = CatalogConfig::from_props([
            ("catalog.type", "rest"),
            ("catalog.uri", "http://127.0.0.1:8181/"),
            ("warehouse", "s3://bucket/wh"),
            ("catalog.warehouse", "lake"),
            ("catalog.token", "t0k"),
            ("catalog.header.x-tenant", "a"),
            ("catalog.unknown", "ignored"),
            ("s3.endpoint", "http://127.0.0.1:9000"),
            ("s3.access-key-id", "ak"),
            ("s3.secret-access-key", "sk"),
            ("namespace", "lake.kafka"),
            ("commit.retry.num-retries", "7"),
            ("commit.group.max-segments", "1"),
            ("segment.bytes", "ignored"),
        ])
        .unwrap();
        assert_eq!(c.kind(), CatalogKind::Rest);
        assert_eq!(c.group_max_segments(), 1);
        let e = CatalogConfig::from_props([("warehouse", "file:///wh"), ("commit.group.max-segments", "0")]).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { ref key, .. } if key == "commit.group.max-segments"), "{e}");
        assert_eq!(CatalogConfig::from_props([("warehouse", "file:///wh")]).unwrap().group_max_segments(), 64);
        assert_eq!(c.uri(), "http://127.0.0.1:8181");
        assert_eq!(
            c.catalog_props.get("token").map(String::as_str),
            Some("t0k")
        );
        assert_eq!(
            c.catalog_props.get("header.x-tenant").map(String::as_str),
            Some("a")
        );
        assert!(!c.catalog_props.contains_key("unknown"));
        assert_eq!(c.storage_props().len(), 3);
        assert_eq!(c.rest_warehouse.as_deref(), Some("lake"));
        assert_eq!(c.storage().warehouse(), "s3://bucket/wh");
        assert_eq!(
            c.namespace(),
            &NamespaceIdent::from_strs(["lake", "kafka"]).unwrap()
        );
        assert_eq!(
            c.commit_retry()
                .get("commit.retry.num-retries")
                .map(String::as_str),
            Some("7")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("t0k") && !dbg.contains("\"sk\""), "{dbg}");

        for (k, v) in [
            ("catalog.uri", "https://x"),
            ("catalog.uri", "ftp://x"),
            ("commit.retry.num-retries", "-1"),
            ("catalog.type", "glue"),
            ("namespace", "a..b"),
        ] {
            let mut props = BTreeMap::from([
                ("catalog.type".to_string(), "rest".to_string()),
                ("catalog.uri".to_string(), "http://x".to_string()),
                ("warehouse".to_string(), "file:///wh".to_string()),
            ]);
            props.insert(k.to_string(), v.to_string());
            let e = CatalogConfig::from_props(props).unwrap_err();
            assert!(
                matches!(e, Error::InvalidConfig { ref key, .. } if key == k),
                "{k}={v}: {e}"
            );
        }
        let e = CatalogConfig::from_props([("catalog.type", "rest"), ("warehouse", "/wh")])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { ref key, .. } if key == "catalog.uri"));
        let e = CatalogConfig::from_props([("catalog.type", "rest"), ("catalog.uri", "http://x")])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { ref key, .. } if key == "warehouse"));
    }

    #[test]
    fn storage_keys_are_validated_by_calving_storage() {
        let e = CatalogConfig::from_props([("warehouse", "/wh"), ("s3.endpiont", "http://x")])
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "s3.endpiont"),
            "{e}"
        );
        let e = CatalogConfig::from_props([
            ("warehouse", "ftp://host/wh"),
            ("catalog.uri", "sqlite:/x.db"),
        ])
        .unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "warehouse"),
            "{e}"
        );
    }

    #[test]
    fn sql_pool_values_are_validated_not_unwrapped() {
        let e = CatalogConfig::from_props([
            ("warehouse", "/wh"),
            ("catalog.pool.max-connections", "ten"),
        ])
        .unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { ref key, .. } if key == "catalog.pool.max-connections")
        );
        let c = CatalogConfig::from_props([
            ("warehouse", "/wh"),
            ("catalog.pool.max-connections", "4"),
        ])
        .unwrap();
        assert_eq!(
            c.catalog_props
                .get("pool.max-connections")
                .map(String::as_str),
            Some("4")
        );
    }
}
