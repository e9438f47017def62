//! Building object_store clients from a [`StorageConfig`].
//!
//! Owns the translation of Iceberg property names into object_store builder calls, per backend:
//! `s3.*` → `AmazonS3Builder`, `gcs.*` → `GoogleCloudStorageBuilder`, `adls.*` →
//! `MicrosoftAzureBuilder` (an emulator or another endpoint through `adls.connection-string`;
//! `wasb[s]://` read as `abfs[s]://`), plus the shared `storage.*` retry and timeout settings
//! (`ClientOptions`, `RetryConfig`). `file` is one `LocalFileSystem` rooted at `/`; `memory` is a
//! process-wide registry of `InMemory` stores by name, so that every client built from the same
//! `memory://name` location (ours and iceberg's FileIO) sees the same objects while any is alive.
//!
//! Building a client does no I/O: credentials are fetched on the first request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider,
};
use url::Url;

use crate::config::{
    decode_gcs_credentials, parse_connection_string, ConfigKey, Scheme, StorageConfig,
};
use crate::error::{Error, Operation, Result};

/// Builds the client of the store `authority` (bucket, container, memory name) of kind `scheme`.
pub(crate) fn build_store(
    config: &StorageConfig,
    scheme: Scheme,
    scheme_str: &str,
    authority: &str,
) -> Result<Arc<dyn ObjectStore>> {
    let store: Arc<dyn ObjectStore> = match scheme {
        Scheme::File => Arc::new(LocalFileSystem::new()),
        Scheme::Memory => memory_store(authority),
        Scheme::S3 => Arc::new(
            s3_builder(config, authority)?
                .build()
                .map_err(|e| build_error(e, scheme_str, authority))?,
        ),
        Scheme::Gcs => Arc::new(
            gcs_builder(config, authority)?
                .build()
                .map_err(|e| build_error(e, scheme_str, authority))?,
        ),
        Scheme::Azure => Arc::new(
            azure_builder(config, scheme_str, authority)?
                .build()
                .map_err(|e| build_error(e, scheme_str, authority))?,
        ),
    };
    tracing::debug!(scheme = %scheme, authority, config = %config, "built object store client");
    Ok(store)
}

fn build_error(err: object_store::Error, scheme_str: &str, authority: &str) -> Error {
    match err {
        object_store::Error::UnknownConfigurationKey { .. } => crate::error::classify(
            err,
            Operation::Connect,
            &format!("{scheme_str}://{authority}"),
        ),
        other => Error::InvalidConfig {
            key: "warehouse".into(),
            reason: format!("cannot build a client for {scheme_str}://{authority}"),
            source: Some(Box::new(other)),
        },
    }
}

/// The process-wide in-memory store named `name`, created on first use and kept while in use.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Weak<InMemory>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(store) = stores.get(name).and_then(Weak::upgrade) {
        return store;
    }
    stores.retain(|_, weak| weak.strong_count() > 0);
    let store = Arc::new(InMemory::new());
    stores.insert(name.to_string(), Arc::downgrade(&store));
    store
}

/// HTTP client options shared by the cloud backends.
fn client_options(config: &StorageConfig, allow_http: bool) -> ClientOptions {
    let s = config.settings();
    ClientOptions::new()
        .with_connect_timeout(s.connect_timeout)
        .with_timeout(s.request_timeout)
        .with_allow_http(allow_http)
}

/// Retry policy shared by the cloud backends.
pub(crate) fn retry_config(config: &StorageConfig) -> RetryConfig {
    let s = config.settings();
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: s.min_backoff,
            max_backoff: s.max_backoff,
            base: 2.0,
        },
        max_retries: s.max_retries,
        retry_timeout: s.retry_timeout,
    }
}

fn endpoint_is_http(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("http://"))
}

fn s3_builder(config: &StorageConfig, bucket: &str) -> Result<AmazonS3Builder> {
    let mut b = if config.flag(ConfigKey::S3DisableConfigLoad)? {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    b = b.with_bucket_name(bucket);
    let endpoint = config.raw(ConfigKey::S3Endpoint);
    let path_style = config.flag(ConfigKey::S3PathStyleAccess)?;
    if let Some(endpoint) = endpoint {
        // object_store sends requests to a custom endpoint as given when virtual-hosted style is
        // on; Iceberg (and the AWS SDKs) put the bucket in front of the host. Do that here.
        let endpoint = if path_style {
            endpoint.trim_end_matches('/').to_string()
        } else {
            virtual_hosted_endpoint(endpoint, bucket)?
        };
        b = b.with_endpoint(endpoint);
    }
    b = b.with_virtual_hosted_style_request(!path_style);
    if let Some(region) = config.raw(ConfigKey::S3Region) {
        b = b.with_region(region);
    }
    if let (Some(id), Some(secret)) = (
        config.raw(ConfigKey::S3AccessKeyId),
        config.raw(ConfigKey::S3SecretAccessKey),
    ) {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(token) = config.raw(ConfigKey::S3SessionToken) {
            b = b.with_token(token);
        }
    }
    if config.flag(ConfigKey::S3AllowAnonymous)? {
        b = b.with_skip_signature(true);
    }
    let allow_http = match config.raw(ConfigKey::S3AllowHttp) {
        Some(_) => config.flag(ConfigKey::S3AllowHttp)?,
        None => endpoint_is_http(endpoint),
    };
    match config
        .raw(ConfigKey::S3SseType)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => {}
        Some("s3") => {
            // object_store 0.14 does not export `S3EncryptionConfigKey`; its string form parses.
            let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                .parse()
                .expect("a key object_store knows");
            b = b.with_config(key, "AES256");
        }
        Some("kms") => {
            let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                .parse()
                .expect("a key object_store knows");
            b = b.with_config(key, "aws:kms");
            if let Some(key_id) = config.raw(ConfigKey::S3SseKey) {
                b = b.with_sse_kms_encryption(key_id);
            }
        }
        Some("custom") => {
            let key = config
                .raw(ConfigKey::S3SseKey)
                .expect("validated: s3.sse.key is set for custom");
            b = b.with_ssec_encryption(key);
        }
        Some(_) => unreachable!("validated in StorageConfig"),
    }
    if config.flag(ConfigKey::S3DisableEc2Metadata)? && !config.flag(ConfigKey::S3AllowAnonymous)? {
        let has = |k| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let has_credentials = has(AmazonS3ConfigKey::AccessKeyId)
            || has(AmazonS3ConfigKey::WebIdentityTokenFile)
            || has(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
            || has(AmazonS3ConfigKey::ContainerCredentialsFullUri);
        if !has_credentials {
            return Err(Error::invalid_config(
                ConfigKey::S3DisableEc2Metadata.as_str(),
                "no credentials configured (s3.access-key-id/s3.secret-access-key, web identity or container \
                 credentials) and instance metadata is disabled; set s3.allow-anonymous=true for public buckets",
            ));
        }
    }
    Ok(b.with_client_options(client_options(config, allow_http))
        .with_retry(retry_config(config)))
}

/// `https://host:port/path` → `https://bucket.host:port/path`.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> Result<String> {
    let mut url = Url::parse(endpoint).map_err(|e| {
        Error::invalid_config(ConfigKey::S3Endpoint.as_str(), format!("not a URL: {e}"))
    })?;
    let host = url
        .host_str()
        .ok_or_else(|| Error::invalid_config(ConfigKey::S3Endpoint.as_str(), "has no host"))?
        .to_string();
    if !host.starts_with(&format!("{bucket}.")) {
        url.set_host(Some(&format!("{bucket}.{host}")))
            .map_err(|e| {
                Error::invalid_config(
                    ConfigKey::S3Endpoint.as_str(),
                    format!("cannot prefix the bucket: {e}"),
                )
            })?;
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn gcs_builder(config: &StorageConfig, bucket: &str) -> Result<GoogleCloudStorageBuilder> {
    let mut b = if config.flag(ConfigKey::GcsDisableConfigLoad)? {
        GoogleCloudStorageBuilder::new()
    } else {
        GoogleCloudStorageBuilder::from_env()
    };
    b = b.with_bucket_name(bucket);
    let endpoint = config.raw(ConfigKey::GcsServiceHost);
    if let Some(endpoint) = endpoint {
        b = b.with_base_url(endpoint.trim_end_matches('/'));
    }
    if let Some(json) = config.raw(ConfigKey::GcsCredentialsJson) {
        b = b.with_service_account_key(decode_gcs_credentials(json)?);
    }
    if let Some(token) = config.raw(ConfigKey::GcsOauth2Token) {
        b = b.with_bearer_token(token);
    }
    let anonymous = config.flag(ConfigKey::GcsNoAuth)?;
    if anonymous {
        // Reads and listings honour `skip_signature`; object_store 0.14's writes (PUT, DELETE,
        // multipart) still fetch a token, from the metadata server by default. An empty static
        // token keeps them from asking anyone.
        b = b
            .with_skip_signature(true)
            .with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
                bearer: String::new(),
            })));
    }
    if config.flag(ConfigKey::GcsDisableVmMetadata)? && !anonymous {
        let has = |k| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let has_credentials = config.is_set(ConfigKey::GcsOauth2Token)
            || has(GoogleConfigKey::ServiceAccount)
            || has(GoogleConfigKey::ServiceAccountKey)
            || has(GoogleConfigKey::ApplicationCredentials);
        if !has_credentials {
            return Err(Error::invalid_config(
                ConfigKey::GcsDisableVmMetadata.as_str(),
                "no credentials configured (gcs.credentials-json, gcs.oauth2.token or application credentials) \
                 and the metadata server is disabled; set gcs.no-auth=true for public buckets",
            ));
        }
    }
    Ok(
        b.with_client_options(client_options(config, endpoint_is_http(endpoint)))
            .with_retry(retry_config(config)),
    )
}

/// The account and key of the Azure Storage emulators (Azurite), as Microsoft documents them: what
/// `UseDevelopmentStorage=true` stands for.
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azure_builder(
    config: &StorageConfig,
    scheme_str: &str,
    authority: &str,
) -> Result<MicrosoftAzureBuilder> {
    // `with_url` understands `abfs[s]://container@account.(dfs|blob).core.windows.net` and
    // `az://container`; Hadoop's `wasb[s]://container@account.blob.core.windows.net` names the
    // same container and account.
    let url_scheme = match scheme_str {
        "wasb" => "abfs",
        "wasbs" => "abfss",
        other => other,
    };
    let mut b = MicrosoftAzureBuilder::from_env().with_url(format!("{url_scheme}://{authority}"));
    let (mut endpoint, mut emulator) = (None, false);
    if let Some(cs) = config.raw(ConfigKey::AdlsConnectionString) {
        let cs = parse_connection_string(cs)?;
        emulator = cs.use_emulator;
        if let Some(v) = cs.account_name {
            b = b.with_account(v);
        }
        if let Some(v) = cs.account_key {
            b = b.with_access_key(v);
        }
        if let Some(v) = cs.sas {
            b = b.with_config(AzureConfigKey::SasKey, v);
        }
        endpoint = cs.blob_endpoint;
    }
    if let Some(v) = config.raw(ConfigKey::AdlsAccountName) {
        b = b.with_account(v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsAccountKey) {
        b = b.with_access_key(v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsSasToken) {
        b = b.with_config(AzureConfigKey::SasKey, v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsTenantId) {
        b = b.with_tenant_id(v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsClientId) {
        b = b.with_client_id(v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsClientSecret) {
        b = b.with_client_secret(v);
    }
    if let Some(v) = config.raw(ConfigKey::AdlsAuthorityHost) {
        b = b.with_authority_host(v);
    }
    let allow_http = endpoint_is_http(endpoint.as_deref());
    match endpoint {
        // An emulator on its own address (`BlobEndpoint=http://127.0.0.1:PORT/devstoreaccount1`):
        // requests go to `<endpoint>/<container>/<path>`, signed like any account's.
        Some(endpoint) => {
            if emulator {
                let unset = |b: &MicrosoftAzureBuilder, k| b.get_config_value(&k).is_none();
                if unset(&b, AzureConfigKey::AccountName) {
                    b = b.with_account(EMULATOR_ACCOUNT);
                }
                if unset(&b, AzureConfigKey::AccessKey) && unset(&b, AzureConfigKey::SasKey) {
                    b = b.with_access_key(EMULATOR_ACCOUNT_KEY);
                }
            }
            b = b.with_endpoint(endpoint);
        }
        // `UseDevelopmentStorage=true` alone: object_store's emulator mode (127.0.0.1:10000, or
        // `AZURITE_BLOB_STORAGE_URL`), plain HTTP.
        None if emulator => b = b.with_use_emulator(true),
        None => {}
    }
    Ok(b.with_client_options(client_options(config, allow_http))
        .with_retry(retry_config(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(warehouse: &str, pairs: &[(&str, &str)]) -> StorageConfig {
        StorageConfig::new(
            warehouse,
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn s3_endpoint_styles() {
        let c = config(
            "s3://bkt/p",
            &[
                ("s3.endpoint", "http://127.0.0.1:9000/"),
                ("s3.path-style-access", "true"),
                ("s3.disable-config-load", "true"),
            ],
        );
        let b = s3_builder(&c, "bkt").unwrap();
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
                .as_deref(),
            Some("false")
        );
        let c = config(
            "s3://bkt/p",
            &[
                ("s3.endpoint", "https://minio.example:9000"),
                ("s3.disable-config-load", "true"),
            ],
        );
        let b = s3_builder(&c, "bkt").unwrap();
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("https://bkt.minio.example:9000")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
                .as_deref(),
            Some("true")
        );
    }

    #[test]
    fn every_backend_builds_without_network() {
        let s3 = config(
            "s3://b",
            &[
                ("s3.access-key-id", "AK"),
                ("s3.secret-access-key", "SK"),
                ("s3.region", "eu-west-1"),
            ],
        );
        build_store(&s3, Scheme::S3, "s3", "b").unwrap();
        let gcs = config(
            "gs://b",
            &[
                ("gcs.oauth2.token", "tok"),
                ("gcs.service.path", "http://127.0.0.1:4443"),
            ],
        );
        build_store(&gcs, Scheme::Gcs, "gs", "b").unwrap();
        let az = config(
            "abfss://c@acct.dfs.core.windows.net",
            &[("adls.account-key", "a2V5")],
        );
        build_store(&az, Scheme::Azure, "abfss", "c@acct.dfs.core.windows.net").unwrap();
        let az = config(
            "az://c",
            &[(
                "adls.connection-string",
                "AccountName=acct;SharedAccessSignature=sv=2020&sig=x",
            )],
        );
        build_store(&az, Scheme::Azure, "az", "c").unwrap();
    }

    #[test]
    fn azure_endpoints_from_either_connection_string_form() {
        let endpoint = |az: &MicrosoftAzureBuilder| az.get_config_value(&AzureConfigKey::Endpoint);
        // Iceberg Java: the per-account key holds the Blob endpoint URL.
        let c = config(
            "abfs://c@devstoreaccount1.dfs.core.windows.net/wh",
            &[(
                "adls.connection-string.devstoreaccount1.dfs.core.windows.net",
                "http://127.0.0.1:10000/devstoreaccount1/",
            )],
        );
        let b = azure_builder(&c, "abfs", "c@devstoreaccount1.dfs.core.windows.net").unwrap();
        assert_eq!(
            endpoint(&b).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        // An emulator connection string with its own endpoint: the emulator's account and key.
        let c = config(
            "az://c/wh",
            &[(
                "adls.connection-string",
                "UseDevelopmentStorage=true;BlobEndpoint=http://127.0.0.1:4000/devstoreaccount1",
            )],
        );
        let b = azure_builder(&c, "az", "c").unwrap();
        assert_eq!(
            endpoint(&b).as_deref(),
            Some("http://127.0.0.1:4000/devstoreaccount1")
        );
        assert_eq!(
            b.get_config_value(&AzureConfigKey::AccountName).as_deref(),
            Some(EMULATOR_ACCOUNT)
        );
        assert!(b.get_config_value(&AzureConfigKey::AccessKey).is_some());
        // `UseDevelopmentStorage=true` alone: object_store's emulator mode.
        let c = config(
            "az://c/wh",
            &[("adls.connection-string", "UseDevelopmentStorage=true")],
        );
        let b = azure_builder(&c, "az", "c").unwrap();
        assert_eq!(
            b.get_config_value(&AzureConfigKey::UseEmulator).as_deref(),
            Some("true")
        );
        assert_eq!(endpoint(&b), None);
        // Hadoop's wasbs:// names a container and account as abfss:// does.
        let c = config(
            "wasbs://c@acct.blob.core.windows.net/wh",
            &[("adls.account-key", "a2V5")],
        );
        build_store(&c, Scheme::Azure, "wasbs", "c@acct.blob.core.windows.net").unwrap();
    }

    #[test]
    fn disabled_metadata_without_credentials_is_refused() {
        let c = config(
            "s3://b",
            &[
                ("s3.disable-ec2-metadata", "true"),
                ("s3.disable-config-load", "true"),
            ],
        );
        let err = build_store(&c, Scheme::S3, "s3", "b").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { key, .. } if key == "s3.disable-ec2-metadata"),
            "{err:?}"
        );
        let c = config(
            "gs://b",
            &[
                ("gcs.disable-vm-metadata", "true"),
                ("gcs.disable-config-load", "true"),
            ],
        );
        assert!(build_store(&c, Scheme::Gcs, "gs", "b").is_err());
    }

    #[test]
    fn memory_stores_are_shared_by_name_while_alive() {
        let a = memory_store("client-test-shared");
        let b = memory_store("client-test-shared");
        assert!(Arc::ptr_eq(&a, &b));
        let c = memory_store("client-test-other");
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
