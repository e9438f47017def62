//! [`ConfigKey`]: every storage property this crate understands.
//!
//! One table (the `config_keys!` invocation) gives each key its canonical Iceberg FileIO name,
//! the aliases Iceberg Java and pyiceberg use for the same setting, its default and whether its
//! value is a credential; parsing, documentation and redaction all read that table.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Key prefixes that belong to storage: an unknown key with one of these prefixes is an error.
pub const STORAGE_KEY_PREFIXES: &[&str] =
    &["s3.", "gcs.", "adls.", "storage.", "client.assume-role."];

macro_rules! config_keys {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident => $name:literal, aliases [$($alias:literal),*], default $default:expr, secret $secret:literal;
    )*) => {
        /// A storage property this crate understands, parsed from its Iceberg FileIO name.
        ///
        /// [`FromStr`] accepts the canonical name ([`ConfigKey::as_str`]) and the aliases listed on
        /// each variant (names used by Iceberg Java/pyiceberg for the same setting), ignoring ASCII
        /// case. An unknown name is [`Error::InvalidConfig`] naming it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ConfigKey {
            $(
                $(#[doc = $doc])*
                #[doc = concat!("\n\nName: `", $name, "`", $(", alias `", $alias, "`",)* ".")]
                $variant,
            )*
        }

        impl ConfigKey {
            /// Every key, in declaration order.
            pub const ALL: &'static [ConfigKey] = &[$(ConfigKey::$variant),*];

            /// The canonical property name.
            pub fn as_str(self) -> &'static str {
                match self { $(ConfigKey::$variant => $name),* }
            }

            /// Other names accepted for this key.
            pub fn aliases(self) -> &'static [&'static str] {
                match self { $(ConfigKey::$variant => &[$($alias),*]),* }
            }

            /// The value used when the property is absent (`None`: no default, or derived).
            pub fn default_value(self) -> Option<&'static str> {
                match self { $(ConfigKey::$variant => $default),* }
            }

            /// Whether the value is a credential, never to be printed.
            pub fn is_secret(self) -> bool {
                match self { $(ConfigKey::$variant => $secret),* }
            }
        }
    };
}

config_keys! {
    // ---- Calving's backend-neutral client settings (object_store's ClientOptions/RetryConfig).
    /// How many times a failed request is retried (5xx, connection errors, timeouts of idempotent
    /// requests). `0` disables retries.
    RetryNumRetries => "storage.retry.num-retries", aliases ["s3.retry.num-retries"], default Some("3"), secret false;
    /// First backoff between retries, in milliseconds; it grows exponentially with jitter.
    RetryMinWaitMs => "storage.retry.min-wait-ms", aliases ["s3.retry.min-wait-ms"], default Some("100"), secret false;
    /// Largest backoff between retries, in milliseconds.
    RetryMaxWaitMs => "storage.retry.max-wait-ms", aliases ["s3.retry.max-wait-ms"], default Some("5000"), secret false;
    /// No retry starts after this many milliseconds since the first attempt of a request.
    RetryTotalTimeoutMs => "storage.retry.total-timeout-ms", aliases [], default Some("30000"), secret false;
    /// Timeout for establishing a connection, in milliseconds.
    ConnectTimeoutMs => "storage.connect-timeout-ms", aliases [], default Some("5000"), secret false;
    /// Timeout for one whole request (including its body), in milliseconds.
    RequestTimeoutMs => "storage.request-timeout-ms", aliases [], default Some("60000"), secret false;
    /// Part size of multipart uploads, in bytes (at least 5 MiB, S3's minimum). A streaming writer
    /// holds at most `part-size × (max-concurrency + 1)` bytes.
    MultipartPartSizeBytes => "storage.multipart.part-size-bytes", aliases ["s3.multipart.size"], default Some("8388608"), secret false;
    /// Parts of one multipart upload in flight at once.
    MultipartMaxConcurrency => "storage.multipart.max-concurrency", aliases ["s3.multipart.num-threads"], default Some("4"), secret false;

    // ---- S3 and S3-compatible stores (Iceberg's S3FileIOProperties names).
    /// Endpoint URL of an S3-compatible store, e.g. `http://127.0.0.1:9000` (default: AWS).
    S3Endpoint => "s3.endpoint", aliases [], default None, secret false;
    /// AWS region (default `us-east-1`, or `AWS_REGION` unless `s3.disable-config-load`).
    S3Region => "s3.region", aliases ["client.region"], default None, secret false;
    /// Static access key id.
    S3AccessKeyId => "s3.access-key-id", aliases [], default None, secret true;
    /// Static secret access key.
    S3SecretAccessKey => "s3.secret-access-key", aliases [], default None, secret true;
    /// Session token of temporary credentials.
    S3SessionToken => "s3.session-token", aliases [], default None, secret true;
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`). Needed by most S3-compatible servers on loopback.
    S3PathStyleAccess => "s3.path-style-access", aliases [], default Some("false"), secret false;
    /// Allow plain `http://` endpoints. Default: true exactly when `s3.endpoint` starts with `http://`.
    S3AllowHttp => "s3.allow-http", aliases [], default None, secret false;
    /// Send unsigned requests (public buckets).
    S3AllowAnonymous => "s3.allow-anonymous", aliases ["s3.anonymous"], default Some("false"), secret false;
    /// Never ask the EC2 instance metadata service for credentials: without other credentials the
    /// configuration is rejected instead.
    S3DisableEc2Metadata => "s3.disable-ec2-metadata", aliases [], default Some("false"), secret false;
    /// Do not read `AWS_*` environment variables (by default they fill what the properties leave
    /// unset: credentials, region, web identity, container credentials).
    S3DisableConfigLoad => "s3.disable-config-load", aliases [], default Some("false"), secret false;
    /// Server-side encryption: `none`, `s3` (SSE-S3), `kms` (SSE-KMS, key id in `s3.sse.key`) or
    /// `custom` (SSE-C, base64 key in `s3.sse.key`).
    S3SseType => "s3.sse.type", aliases [], default Some("none"), secret false;
    /// KMS key id (`kms`) or base64 customer key (`custom`).
    S3SseKey => "s3.sse.key", aliases [], default None, secret true;
    /// MD5 of the SSE-C key: accepted for compatibility; object_store computes it from the key.
    S3SseMd5 => "s3.sse.md5", aliases [], default None, secret true;

    // ---- Google Cloud Storage (Iceberg's GCPProperties names).
    /// Project id: accepted for compatibility, object_store does not need it.
    GcsProjectId => "gcs.project-id", aliases [], default None, secret false;
    /// Endpoint (base URL) of the service, e.g. `http://127.0.0.1:4443` for an emulator (default
    /// `https://storage.googleapis.com`). Iceberg Java's and pyiceberg's name; iceberg-rust's
    /// `gcs.service.path` is an alias.
    GcsServiceHost => "gcs.service.host", aliases ["gcs.service.path"], default None, secret false;
    /// Service-account key: JSON, raw or base64-encoded (iceberg-rust's form).
    GcsCredentialsJson => "gcs.credentials-json", aliases [], default None, secret true;
    /// Static OAuth2 bearer token (not refreshed).
    GcsOauth2Token => "gcs.oauth2.token", aliases [], default None, secret true;
    /// Send unsigned requests (public buckets, emulators).
    GcsNoAuth => "gcs.no-auth", aliases ["gcs.allow-anonymous"], default Some("false"), secret false;
    /// Never ask the GCE metadata server for credentials.
    GcsDisableVmMetadata => "gcs.disable-vm-metadata", aliases [], default Some("false"), secret false;
    /// Do not read `GOOGLE_*` environment variables.
    GcsDisableConfigLoad => "gcs.disable-config-load", aliases [], default Some("false"), secret false;

    // ---- Azure Data Lake Storage / Blob (Iceberg's AzureProperties names).
    /// Storage account name (for `az://container/…`; `abfss://container@account.dfs.core.windows.net` names it).
    /// Iceberg Java's shared-key name is an alias.
    AdlsAccountName => "adls.account-name", aliases ["adls.auth.shared-key.account.name"], default None, secret false;
    /// Shared account key (base64). Iceberg Java's shared-key name is an alias.
    AdlsAccountKey => "adls.account-key", aliases ["adls.auth.shared-key.account.key"], default None, secret true;
    /// SAS token (Iceberg Java's per-account form `adls.sas-token.<account-host>` is accepted too).
    AdlsSasToken => "adls.sas-token", aliases [], default None, secret true;
    /// Tenant id of a service principal.
    AdlsTenantId => "adls.tenant-id", aliases [], default None, secret false;
    /// Client id of a service principal.
    AdlsClientId => "adls.client-id", aliases [], default None, secret false;
    /// Client secret of a service principal.
    AdlsClientSecret => "adls.client-secret", aliases [], default None, secret true;
    /// Authority host of the service principal (default `https://login.microsoftonline.com`).
    AdlsAuthorityHost => "adls.authority-host", aliases [], default None, secret false;
    /// Connection string (pyiceberg's form: `AccountName=…;AccountKey=…;SharedAccessSignature=…;BlobEndpoint=…`
    /// or `UseDevelopmentStorage=true`), or the Blob endpoint URL alone (Iceberg Java's per-account form
    /// `adls.connection-string.<account>.dfs.core.windows.net=http://127.0.0.1:10000/devstoreaccount1`);
    /// the other `adls.*` keys override its parts.
    AdlsConnectionString => "adls.connection-string", aliases [], default None, secret true;
}

impl ConfigKey {
    /// Why a key that names a real setting is nonetheless refused, if it is.
    fn unsupported_reason(name: &str) -> Option<&'static str> {
        if name.starts_with("client.assume-role.") {
            return Some(
                "assume-role is not supported by the object_store client: use web identity \
                 (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) or static credentials",
            );
        }
        match name {
            "gcs.user-project" => {
                Some("requester-pays (user project) is not supported by the object_store client")
            }
            "s3.remote-signing-enabled" | "s3.signer.uri" | "s3.signer" => {
                Some("remote request signing is not supported by the object_store client")
            }
            _ => None,
        }
    }

    fn parse_name(name: &str) -> Option<ConfigKey> {
        let lower = name.to_ascii_lowercase();
        if let Some(key) = ConfigKey::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == lower || k.aliases().contains(&lower.as_str()))
        {
            return Some(key);
        }
        // Iceberg Java's per-account ADLS keys: `adls.sas-token.<account>.dfs.core.windows.net`.
        if lower.starts_with("adls.sas-token.") {
            return Some(ConfigKey::AdlsSasToken);
        }
        if lower.starts_with("adls.connection-string.") {
            return Some(ConfigKey::AdlsConnectionString);
        }
        None
    }
}

impl FromStr for ConfigKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(reason) = ConfigKey::unsupported_reason(&s.to_ascii_lowercase()) {
            return Err(Error::invalid_config(s, reason));
        }
        ConfigKey::parse_name(s).ok_or_else(|| Error::invalid_config(s, "unknown storage property"))
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `key` is this crate's: it starts with one of [`STORAGE_KEY_PREFIXES`] or names a
/// [`ConfigKey`] (such as the alias `client.region`).
pub fn is_storage_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    STORAGE_KEY_PREFIXES.iter().any(|p| lower.starts_with(p))
        || ConfigKey::parse_name(&lower).is_some()
}
