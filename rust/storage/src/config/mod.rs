//! Storage configuration: the warehouse location plus string properties, checked once.
//!
//! Owns [`StorageConfig`] (what the rest of Calving builds a store from), [`ConfigKey`] (every
//! property this crate understands, with its canonical Iceberg FileIO name, aliases, default and
//! whether it is a credential), [`Scheme`] and [`ClientSettings`] (the parsed retry, timeout and
//! multipart numbers). Properties come from the broker's `rsm.config.*` keys (Kafka strips the
//! prefix) or from a catalog (REST servers vend `s3.*` keys with a table), so the key names are
//! Iceberg's: `s3.*`, `gcs.*`, `adls.*`; Calving's own backend-neutral keys start with `storage.`.
//!
//! Rules: a key with one of the storage prefixes that this crate does not know is an error naming
//! the key (a typo must not silently fall back to a default); keys without those prefixes belong to
//! other parts of Calving and are ignored. Credential values never leave this module in text form:
//! `Debug`, `Display` and every error print `<redacted>` instead.

mod key;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

pub use self::key::{is_storage_key, ConfigKey, STORAGE_KEY_PREFIXES};
use crate::error::{Error, Result};

/// What `Debug`/`Display` print in place of a credential.
pub const REDACTED: &str = "<redacted>";

const MIB: u64 = 1024 * 1024;

/// The kind of store a location lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scheme {
    /// `file://` (or a bare absolute path): the local filesystem.
    File,
    /// `memory://`: a process-wide in-memory store per authority (tests).
    Memory,
    /// `s3://`, `s3a://`, `s3n://`: S3 and S3-compatible stores.
    S3,
    /// `gs://`, `gcs://`: Google Cloud Storage.
    Gcs,
    /// `abfss://`, `abfs://`, `wasbs://`, `wasb://`, `az://`, `adl://`, `azure://`: Azure Blob /
    /// ADLS Gen2.
    Azure,
}

impl Scheme {
    /// The scheme of a URL scheme string, if it is one this crate serves.
    pub fn from_url_scheme(scheme: &str) -> Option<Scheme> {
        match scheme.to_ascii_lowercase().as_str() {
            "file" => Some(Scheme::File),
            "memory" => Some(Scheme::Memory),
            "s3" | "s3a" | "s3n" => Some(Scheme::S3),
            "gs" | "gcs" => Some(Scheme::Gcs),
            "abfss" | "abfs" | "wasbs" | "wasb" | "az" | "adl" | "azure" => Some(Scheme::Azure),
            _ => None,
        }
    }

    /// A short name for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::File => "file",
            Scheme::Memory => "memory",
            Scheme::S3 => "s3",
            Scheme::Gcs => "gcs",
            Scheme::Azure => "azure",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry, timeout and multipart numbers, parsed from the `storage.*` keys (defaults in
/// [`ConfigKey::default_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    /// `storage.retry.num-retries`.
    pub max_retries: usize,
    /// `storage.retry.min-wait-ms`.
    pub min_backoff: Duration,
    /// `storage.retry.max-wait-ms`.
    pub max_backoff: Duration,
    /// `storage.retry.total-timeout-ms`.
    pub retry_timeout: Duration,
    /// `storage.connect-timeout-ms`.
    pub connect_timeout: Duration,
    /// `storage.request-timeout-ms`.
    pub request_timeout: Duration,
    /// `storage.multipart.part-size-bytes`.
    pub part_size: usize,
    /// `storage.multipart.max-concurrency`.
    pub max_concurrency: usize,
}

/// Where the warehouse is and how to reach it: built once from the warehouse location and the
/// storage properties, and checked then (unknown storage keys, malformed values).
///
/// Cheap to clone. `Debug` and `Display` never print credentials. `Serialize` writes the
/// warehouse and the properties **including credentials** (iceberg serializes its `Storage` to
/// rebuild it elsewhere); do not log the serialized form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StorageConfigRepr", into = "StorageConfigRepr")]
pub struct StorageConfig {
    warehouse: String,
    scheme: Scheme,
    values: BTreeMap<ConfigKey, String>,
    settings: ClientSettings,
}

/// The serialized form of [`StorageConfig`]: re-validated on deserialization.
#[derive(Serialize, Deserialize)]
struct StorageConfigRepr {
    warehouse: String,
    properties: BTreeMap<String, String>,
}

impl TryFrom<StorageConfigRepr> for StorageConfig {
    type Error = Error;

    fn try_from(repr: StorageConfigRepr) -> Result<Self> {
        StorageConfig::new(&repr.warehouse, &repr.properties.into_iter().collect())
    }
}

impl From<StorageConfig> for StorageConfigRepr {
    fn from(config: StorageConfig) -> Self {
        StorageConfigRepr {
            warehouse: config.warehouse,
            properties: config
                .values
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect(),
        }
    }
}

impl StorageConfig {
    /// Builds the configuration of the warehouse at `warehouse` (`file:///abs/dir` or `/abs/dir`,
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `abfss://container@account.dfs.core.windows.net/prefix`,
    /// `az://container/prefix`, `memory://name/prefix`) from `properties`.
    ///
    /// Keys without a storage prefix ([`STORAGE_KEY_PREFIXES`]) are ignored: they belong to other
    /// parts of Calving. An unknown storage key, a malformed value or an unusable warehouse is
    /// [`Error::InvalidConfig`] naming the key (`warehouse` for the location).
    pub fn new(warehouse: &str, properties: &HashMap<String, String>) -> Result<Self> {
        let (warehouse, scheme) = normalize_warehouse(warehouse)?;
        let mut values = BTreeMap::new();
        // Sorted, so that the first error reported does not depend on hash order.
        let mut sorted: Vec<(&String, &String)> = properties.iter().collect();
        sorted.sort();
        for (name, value) in sorted {
            if !is_storage_key(name) {
                continue;
            }
            let key: ConfigKey = name.parse()?;
            if let Some(previous) = values.insert(key, value.clone()) {
                if previous != *value {
                    return Err(Error::invalid_config(
                        name,
                        format!(
                            "{} is set twice (by {} and an alias) with different values",
                            key, name
                        ),
                    ));
                }
            }
        }
        Self::from_values(warehouse, scheme, values)
    }

    /// The configuration of an in-memory warehouse named `name` (for tests): `memory://name`.
    pub fn memory(name: &str) -> Result<Self> {
        Self::new(&format!("memory://{name}"), &HashMap::new())
    }

    fn from_values(
        warehouse: String,
        scheme: Scheme,
        values: BTreeMap<ConfigKey, String>,
    ) -> Result<Self> {
        let mut config = StorageConfig {
            warehouse,
            scheme,
            values,
            settings: default_settings(),
        };
        config.settings = config.parse_settings()?;
        config.validate_backend()?;
        Ok(config)
    }

    /// This configuration with the storage properties among `properties` laid over it; other
    /// keys, unknown storage keys and refused keys are ignored (logged by name at debug level).
    ///
    /// This is how the properties a catalog hands to iceberg's FileIO (the catalog's own
    /// properties, and for a REST catalog the server's defaults and vended credentials) reach
    /// the store. Returns `None` when nothing changes, so the caller can keep its client.
    pub fn with_overrides(&self, properties: &HashMap<String, String>) -> Result<Option<Self>> {
        let mut values = self.values.clone();
        let mut sorted: Vec<(&String, &String)> = properties.iter().collect();
        sorted.sort();
        for (name, value) in sorted {
            if !is_storage_key(name) {
                continue;
            }
            match name.parse::<ConfigKey>() {
                Ok(key) => {
                    values.insert(key, value.clone());
                }
                Err(_) => {
                    tracing::debug!(key = %name, "ignoring a storage property this client does not use")
                }
            }
        }
        if values == self.values {
            return Ok(None);
        }
        Self::from_values(self.warehouse.clone(), self.scheme, values).map(Some)
    }

    /// The warehouse root location, normalized (no trailing `/`; `file://` for a bare path).
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    /// The kind of store the warehouse is in.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Retry, timeout and multipart settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The value of a property, or `None` if it is unset or a credential (see [`Self::is_set`]).
    pub fn get(&self, key: ConfigKey) -> Option<&str> {
        if key.is_secret() {
            return None;
        }
        self.values.get(&key).map(String::as_str)
    }

    /// Whether a property is set (credentials included).
    pub fn is_set(&self, key: ConfigKey) -> bool {
        self.values.contains_key(&key)
    }

    /// The value of a property, credentials included: for building clients only.
    pub(crate) fn raw(&self, key: ConfigKey) -> Option<&str> {
        self.values.get(&key).map(String::as_str)
    }

    /// A boolean property (`true`/`t`/`1`/`on`/`yes` or `false`/`f`/`0`/`off`/`no`), or its default.
    pub(crate) fn flag(&self, key: ConfigKey) -> Result<bool> {
        match self
            .values
            .get(&key)
            .map(String::as_str)
            .or(key.default_value())
        {
            None => Ok(false),
            Some(v) => parse_bool(key, v),
        }
    }

    fn number(&self, key: ConfigKey) -> Result<u64> {
        let value = self
            .values
            .get(&key)
            .map(String::as_str)
            .or(key.default_value())
            .expect("numeric keys have defaults");
        value.trim().parse::<u64>().map_err(|_| {
            Error::invalid_config(
                key.as_str(),
                format!("expected a non-negative integer, got {value:?}"),
            )
        })
    }

    fn millis(&self, key: ConfigKey, allow_zero: bool) -> Result<Duration> {
        let ms = self.number(key)?;
        if ms == 0 && !allow_zero {
            return Err(Error::invalid_config(
                key.as_str(),
                "must be greater than 0",
            ));
        }
        Ok(Duration::from_millis(ms))
    }

    fn parse_settings(&self) -> Result<ClientSettings> {
        let max_retries = self.number(ConfigKey::RetryNumRetries)?;
        if max_retries > 100 {
            return Err(Error::invalid_config(
                ConfigKey::RetryNumRetries.as_str(),
                "at most 100",
            ));
        }
        let min_backoff = self.millis(ConfigKey::RetryMinWaitMs, true)?;
        let max_backoff = self.millis(ConfigKey::RetryMaxWaitMs, true)?;
        if min_backoff > max_backoff {
            return Err(Error::invalid_config(
                ConfigKey::RetryMinWaitMs.as_str(),
                format!("must not exceed {}", ConfigKey::RetryMaxWaitMs),
            ));
        }
        let part_size = self.number(ConfigKey::MultipartPartSizeBytes)?;
        if !(5 * MIB..=5 * 1024 * MIB).contains(&part_size) {
            return Err(Error::invalid_config(
                ConfigKey::MultipartPartSizeBytes.as_str(),
                format!("must be between 5 MiB and 5 GiB (S3's limits), got {part_size}"),
            ));
        }
        let max_concurrency = self.number(ConfigKey::MultipartMaxConcurrency)?;
        if !(1..=64).contains(&max_concurrency) {
            return Err(Error::invalid_config(
                ConfigKey::MultipartMaxConcurrency.as_str(),
                format!("must be between 1 and 64, got {max_concurrency}"),
            ));
        }
        Ok(ClientSettings {
            max_retries: max_retries as usize,
            min_backoff,
            max_backoff,
            retry_timeout: self.millis(ConfigKey::RetryTotalTimeoutMs, false)?,
            connect_timeout: self.millis(ConfigKey::ConnectTimeoutMs, false)?,
            request_timeout: self.millis(ConfigKey::RequestTimeoutMs, false)?,
            part_size: part_size as usize,
            max_concurrency: max_concurrency as usize,
        })
    }

    /// Checks the values the backend builders would only check later (or not at all).
    fn validate_backend(&self) -> Result<()> {
        for key in ConfigKey::ALL.iter().copied().filter(|k| is_bool_key(*k)) {
            self.flag(key)?;
        }
        if let Some(endpoint) = self.raw(ConfigKey::S3Endpoint) {
            check_endpoint(ConfigKey::S3Endpoint, endpoint)?;
        }
        if let Some(endpoint) = self.raw(ConfigKey::GcsServiceHost) {
            check_endpoint(ConfigKey::GcsServiceHost, endpoint)?;
        }
        match self
            .raw(ConfigKey::S3SseType)
            .map(|s| s.to_ascii_lowercase())
        {
            None => {}
            Some(t) if t == "none" || t == "s3" || t == "kms" => {}
            Some(t) if t == "custom" && !self.is_set(ConfigKey::S3SseKey) => {
                return Err(Error::invalid_config(
                    ConfigKey::S3SseKey.as_str(),
                    "required when s3.sse.type=custom",
                ));
            }
            Some(t) if t == "custom" => {}
            Some(t) => {
                return Err(Error::invalid_config(
                    ConfigKey::S3SseType.as_str(),
                    format!("expected one of none, s3, kms, custom; got {t:?}"),
                ))
            }
        }
        if self.is_set(ConfigKey::S3AccessKeyId) != self.is_set(ConfigKey::S3SecretAccessKey) {
            let missing = if self.is_set(ConfigKey::S3AccessKeyId) {
                ConfigKey::S3SecretAccessKey
            } else {
                ConfigKey::S3AccessKeyId
            };
            return Err(Error::invalid_config(
                missing.as_str(),
                "s3.access-key-id and s3.secret-access-key must be set together",
            ));
        }
        if let Some(cs) = self.raw(ConfigKey::AdlsConnectionString) {
            parse_connection_string(cs)?;
        }
        if let Some(json) = self.raw(ConfigKey::GcsCredentialsJson) {
            decode_gcs_credentials(json)?;
        }
        Ok(())
    }
}

fn default_settings() -> ClientSettings {
    ClientSettings {
        max_retries: 0,
        min_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        retry_timeout: Duration::ZERO,
        connect_timeout: Duration::ZERO,
        request_timeout: Duration::ZERO,
        part_size: 0,
        max_concurrency: 0,
    }
}

fn is_bool_key(key: ConfigKey) -> bool {
    matches!(
        key,
        ConfigKey::S3PathStyleAccess
            | ConfigKey::S3AllowHttp
            | ConfigKey::S3AllowAnonymous
            | ConfigKey::S3DisableEc2Metadata
            | ConfigKey::S3DisableConfigLoad
            | ConfigKey::GcsNoAuth
            | ConfigKey::GcsDisableVmMetadata
            | ConfigKey::GcsDisableConfigLoad
    )
}

fn parse_bool(key: ConfigKey, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "on" | "yes" => Ok(true),
        "false" | "f" | "0" | "off" | "no" => Ok(false),
        _ => Err(Error::invalid_config(
            key.as_str(),
            format!("expected true or false, got {value:?}"),
        )),
    }
}

fn check_endpoint(key: ConfigKey, endpoint: &str) -> Result<()> {
    let url = Url::parse(endpoint).map_err(|e| {
        Error::invalid_config(key.as_str(), format!("not a URL ({e}): {endpoint:?}"))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::invalid_config(
            key.as_str(),
            format!("expected an http:// or https:// URL, got {endpoint:?}"),
        ));
    }
    if url.password().is_some() {
        return Err(Error::invalid_config(
            key.as_str(),
            "must not contain credentials",
        ));
    }
    Ok(())
}

/// Normalizes the warehouse location: scheme known, no credentials, no trailing `/`.
fn normalize_warehouse(warehouse: &str) -> Result<(String, Scheme)> {
    let trimmed = warehouse.trim();
    if trimmed.starts_with('/') {
        let path = trimmed.trim_end_matches('/');
        return Ok((
            format!("file://{}", if path.is_empty() { "/" } else { path }),
            Scheme::File,
        ));
    }
    let (scheme_str, rest) = trimmed.split_once("://").ok_or_else(|| {
        Error::invalid_config("warehouse", format!("expected scheme://…, got {trimmed:?}"))
    })?;
    let scheme = Scheme::from_url_scheme(scheme_str).ok_or_else(|| {
        Error::invalid_config(
            "warehouse",
            format!(
                "unsupported scheme {scheme_str:?} (file, s3, s3a, gs, abfss, abfs, wasbs, az, memory)"
            ),
        )
    })?;
    let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains(':') && authority.contains('@') {
        // user:password@host: never keep (or print) such a location.
        return Err(Error::invalid_config(
            "warehouse",
            "must not contain credentials",
        ));
    }
    match scheme {
        Scheme::File => {
            if !(authority.is_empty() || authority == "localhost") {
                return Err(Error::invalid_config(
                    "warehouse",
                    format!("file locations need an absolute path (file:///dir), got {trimmed:?}"),
                ));
            }
        }
        Scheme::S3 | Scheme::Gcs | Scheme::Azure => {
            if authority.is_empty() {
                return Err(Error::invalid_config(
                    "warehouse",
                    format!("missing bucket in {trimmed:?}"),
                ));
            }
        }
        Scheme::Memory => {}
    }
    let mut normalized = trimmed.trim_end_matches('/').to_string();
    if normalized.ends_with(':')
        || normalized.ends_with("://")
        || normalized == format!("{scheme_str}:/")
    {
        normalized = format!("{scheme_str}://");
    }
    if scheme == Scheme::File && normalized == "file://" {
        normalized = "file:///".to_string();
    }
    Ok((normalized, scheme))
}

/// The parts of an Azure connection string this crate uses (the endpoint alone for Iceberg
/// Java's form, a URL).
#[derive(Default)]
pub(crate) struct ConnectionString {
    pub(crate) account_name: Option<String>,
    pub(crate) account_key: Option<String>,
    pub(crate) sas: Option<String>,
    pub(crate) blob_endpoint: Option<String>,
    pub(crate) use_emulator: bool,
}

pub(crate) fn parse_connection_string(cs: &str) -> Result<ConnectionString> {
    let mut out = ConnectionString::default();
    let trimmed = cs.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        // Iceberg Java's `adls.connection-string.<account host>`: the Blob endpoint URL. It may
        // carry a SAS token in its query, so the value is never part of an error.
        let url = Url::parse(trimmed).map_err(|e| {
            Error::invalid_config(
                ConfigKey::AdlsConnectionString.as_str(),
                format!("not a valid endpoint URL: {e}"),
            )
        })?;
        if url.password().is_some() || !url.username().is_empty() {
            return Err(Error::invalid_config(
                ConfigKey::AdlsConnectionString.as_str(),
                "the endpoint URL must not contain user information",
            ));
        }
        out.blob_endpoint = Some(trimmed.trim_end_matches('/').to_string());
        return Ok(out);
    }
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(Error::invalid_config(
                ConfigKey::AdlsConnectionString.as_str(),
                "malformed: expected Key=Value pairs separated by ';'",
            ));
        };
        match k.to_ascii_lowercase().as_str() {
            "accountname" => out.account_name = Some(v.to_string()),
            "accountkey" => out.account_key = Some(v.to_string()),
            "sharedaccesssignature" => out.sas = Some(v.to_string()),
            "blobendpoint" => out.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
            "usedevelopmentstorage" => out.use_emulator = v.eq_ignore_ascii_case("true"),
            // Derived by the client from the account name.
            "defaultendpointsprotocol"
            | "endpointsuffix"
            | "dfsendpoint"
            | "queueendpoint"
            | "tableendpoint"
            | "fileendpoint" => {}
            _ => {
                return Err(Error::invalid_config(
                    ConfigKey::AdlsConnectionString.as_str(),
                    format!("unsupported part {k:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The service-account JSON of `gcs.credentials-json`, given raw or base64-encoded.
pub(crate) fn decode_gcs_credentials(value: &str) -> Result<String> {
    use base64::Engine as _;
    let trimmed = value.trim();
    if trimmed.starts_with('{') {
        return Ok(trimmed.to_string());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|_| {
            Error::invalid_config(
                ConfigKey::GcsCredentialsJson.as_str(),
                "neither JSON nor base64",
            )
        })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::invalid_config(
            ConfigKey::GcsCredentialsJson.as_str(),
            "base64 does not decode to UTF-8 JSON",
        )
    })
}

struct RedactedValues<'a>(&'a BTreeMap<ConfigKey, String>);

impl fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                (
                    k.as_str(),
                    if k.is_secret() { REDACTED } else { v.as_str() },
                )
            }))
            .finish()
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("warehouse", &self.warehouse)
            .field("scheme", &self.scheme)
            .field("properties", &RedactedValues(&self.values))
            .field("settings", &self.settings)
            .finish()
    }
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.warehouse)?;
        if !self.values.is_empty() {
            f.write_str(" {")?;
            for (i, (k, v)) in self.values.iter().enumerate() {
                let v = if k.is_secret() { REDACTED } else { v.as_str() };
                write!(f, "{}{}={}", if i == 0 { "" } else { ", " }, k, v)?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_name_and_alias_parses_back_to_its_key() {
        for key in ConfigKey::ALL {
            assert_eq!(key.as_str().parse::<ConfigKey>().unwrap(), *key);
            assert_eq!(
                key.as_str()
                    .to_ascii_uppercase()
                    .parse::<ConfigKey>()
                    .unwrap(),
                *key
            );
            for alias in key.aliases() {
                assert_eq!(alias.parse::<ConfigKey>().unwrap(), *key, "alias {alias}");
            }
            assert!(
                is_storage_key(key.as_str()),
                "{key} must carry a storage prefix"
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for key in ConfigKey::ALL {
            for name in std::iter::once(&key.as_str()).chain(key.aliases()) {
                assert!(seen.insert(*name), "{name} is used twice");
            }
        }
    }

    #[test]
    fn unknown_storage_key_is_an_error_naming_it() {
        let err =
            StorageConfig::new("s3://b/p", &props(&[("s3.endpiont", "http://x")])).unwrap_err();
        match &err {
            Error::InvalidConfig { key, reason, .. } => {
                assert_eq!(key, "s3.endpiont");
                assert!(reason.contains("unknown"), "{reason}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        assert!(err.to_string().contains("s3.endpiont"), "{err}");
        // Refused keys say why.
        let err = StorageConfig::new("s3://b", &props(&[("client.assume-role.arn", "arn:x")]))
            .unwrap_err();
        assert!(err.to_string().contains("assume-role"), "{err}");
    }

    #[test]
    fn keys_of_other_components_are_ignored() {
        let c = StorageConfig::new(
            "s3://b/p",
            &props(&[
                ("catalog.uri", "http://x"),
                ("write.parquet.compression-codec", "zstd"),
                ("uri", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.values.len(), 0);
    }

    #[test]
    fn aliases_set_the_same_key_and_conflicts_are_errors() {
        let c = StorageConfig::new("s3://b", &props(&[("client.region", "eu-west-1")])).unwrap();
        assert_eq!(c.get(ConfigKey::S3Region), Some("eu-west-1"));
        let err = StorageConfig::new(
            "s3://b",
            &props(&[("client.region", "eu-west-1"), ("s3.region", "us-east-2")]),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
        let c = StorageConfig::new(
            "s3://b",
            &props(&[("adls.sas-token.acct.dfs.core.windows.net", "sv=1")]),
        )
        .unwrap();
        assert!(c.is_set(ConfigKey::AdlsSasToken));
    }

    #[test]
    fn iceberg_java_and_pyiceberg_names_of_gcs_and_azure_settings() {
        for name in ["gcs.service.host", "gcs.service.path"] {
            let c =
                StorageConfig::new("gs://b", &props(&[(name, "http://127.0.0.1:4443")])).unwrap();
            assert_eq!(
                c.get(ConfigKey::GcsServiceHost),
                Some("http://127.0.0.1:4443"),
                "{name}"
            );
        }
        let c = StorageConfig::new(
            "abfs://c@devstoreaccount1.dfs.core.windows.net/wh",
            &props(&[
                ("adls.auth.shared-key.account.name", "devstoreaccount1"),
                ("adls.auth.shared-key.account.key", "a2V5"),
                (
                    "adls.connection-string.devstoreaccount1.dfs.core.windows.net",
                    "http://127.0.0.1:10000/devstoreaccount1",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.get(ConfigKey::AdlsAccountName), Some("devstoreaccount1"));
        assert!(c.is_set(ConfigKey::AdlsAccountKey));
        let endpoint = parse_connection_string(c.raw(ConfigKey::AdlsConnectionString).unwrap())
            .unwrap()
            .blob_endpoint;
        assert_eq!(
            endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        // A URL with user information is refused without printing it.
        let err = StorageConfig::new(
            "abfs://c@a.dfs.core.windows.net",
            &props(&[("adls.connection-string", "https://user:SECRETVALUE@host/a")]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { key, .. } if key == "adls.connection-string"),
            "{err:?}"
        );
        assert!(!format!("{err:?}").contains("SECRETVALUE"), "{err:?}");
    }

    #[test]
    fn defaults() {
        let c = StorageConfig::new("s3://bucket/prefix/", &HashMap::new()).unwrap();
        assert_eq!(c.warehouse(), "s3://bucket/prefix");
        assert_eq!(c.scheme(), Scheme::S3);
        let s = c.settings();
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.min_backoff, Duration::from_millis(100));
        assert_eq!(s.max_backoff, Duration::from_secs(5));
        assert_eq!(s.retry_timeout, Duration::from_secs(30));
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.part_size, 8 * 1024 * 1024);
        assert_eq!(s.max_concurrency, 4);
        assert!(!c.flag(ConfigKey::S3PathStyleAccess).unwrap());
        for key in ConfigKey::ALL
            .iter()
            .filter(|k| k.default_value().is_some())
        {
            // Every default is itself a valid value.
            StorageConfig::new(
                "s3://b",
                &props(&[(key.as_str(), key.default_value().unwrap())]),
            )
            .unwrap();
        }
    }

    #[test]
    fn malformed_values_name_their_key() {
        for (k, v) in [
            ("s3.path-style-access", "maybe"),
            ("storage.retry.num-retries", "-1"),
            ("storage.connect-timeout-ms", "0"),
            ("storage.multipart.part-size-bytes", "1024"),
            ("storage.multipart.max-concurrency", "0"),
            ("s3.endpoint", "localhost:9000"),
            ("s3.sse.type", "aes"),
            ("s3.access-key-id", "only-the-id"),
            ("gcs.credentials-json", "%%%"),
            ("adls.connection-string", "garbage"),
        ] {
            let err = StorageConfig::new("s3://b", &props(&[(k, v)])).unwrap_err();
            let Error::InvalidConfig { key, .. } = &err else {
                panic!("{k}: {err:?}")
            };
            assert!(key == k || key.starts_with("s3."), "{k}: error names {key}");
        }
    }

    #[test]
    fn warehouse_forms() {
        let ok = |w: &str, expect: &str, scheme| {
            let c = StorageConfig::new(w, &HashMap::new()).unwrap();
            assert_eq!(c.warehouse(), expect, "{w}");
            assert_eq!(c.scheme(), scheme, "{w}");
        };
        ok("/tmp/wh/", "file:///tmp/wh", Scheme::File);
        ok("file:///tmp/wh", "file:///tmp/wh", Scheme::File);
        ok("memory://", "memory://", Scheme::Memory);
        ok("memory://t1/wh", "memory://t1/wh", Scheme::Memory);
        ok("s3a://b", "s3a://b", Scheme::S3);
        ok("gs://b/x", "gs://b/x", Scheme::Gcs);
        ok(
            "abfss://c@acct.dfs.core.windows.net/x",
            "abfss://c@acct.dfs.core.windows.net/x",
            Scheme::Azure,
        );
        ok(
            "wasbs://c@acct.blob.core.windows.net/x",
            "wasbs://c@acct.blob.core.windows.net/x",
            Scheme::Azure,
        );
        for bad in [
            "relative/dir",
            "hdfs://nn/x",
            "s3://",
            "file://host/x",
            "s3://key:secret@bucket/x",
        ] {
            let err = StorageConfig::new(bad, &HashMap::new()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { key, .. } if key == "warehouse"),
                "{bad}: {err:?}"
            );
            assert!(!err.to_string().contains("secret@"), "{err}");
        }
    }

    #[test]
    fn overrides_keep_or_replace() {
        let base = StorageConfig::new("s3://b", &props(&[("s3.region", "us-east-1")])).unwrap();
        // Catalog keys and unknown storage keys: nothing changes.
        let same = base
            .with_overrides(&props(&[
                ("uri", "http://rest"),
                ("s3.region", "us-east-1"),
                ("s3.signer.uri", "x"),
                ("s3.foo", "y"),
            ]))
            .unwrap();
        assert!(same.is_none());
        let vended = base
            .with_overrides(&props(&[
                ("s3.access-key-id", "AK"),
                ("s3.secret-access-key", "SK"),
            ]))
            .unwrap()
            .unwrap();
        assert!(vended.is_set(ConfigKey::S3SecretAccessKey));
        assert_eq!(
            vended.get(ConfigKey::S3SecretAccessKey),
            None,
            "get never returns credentials"
        );
        assert_eq!(vended.raw(ConfigKey::S3SecretAccessKey), Some("SK"));
    }

    #[test]
    fn serde_round_trip_revalidates() {
        let c = StorageConfig::new(
            "s3://b/p",
            &props(&[
                ("s3.endpoint", "http://127.0.0.1:1"),
                ("s3.access-key-id", "AK"),
                ("s3.secret-access-key", "SK"),
            ]),
        )
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: StorageConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let bad = r#"{"warehouse":"s3://b","properties":{"s3.nope":"1"}}"#;
        assert!(serde_json::from_str::<StorageConfig>(bad).is_err());
    }
}
