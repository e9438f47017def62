//! A Confluent-compatible Schema Registry client, with a cache so the registry sees one request
//! per new schema id.
//!
//! Endpoints (the Confluent REST API; Apicurio serves it under `/apis/ccompat/v7`):
//! - `GET {url}/schemas/ids/{id}` → `{"schema": "...", "schemaType": "AVRO", "references": [...]}`
//!   (`schemaType` absent means Avro; `PROTOBUF` and `JSON` are kept as a
//!   [`crate::transcode::Envelope`] with the texts of their references, by name);
//! - `GET {url}/subjects/{subject}/versions/latest` → the same plus `subject`, `version`, `id`.
//!
//! # Errors say what the caller does
//!
//! | variant | meaning | the copy |
//! |---|---|---|
//! | [`RegistryError::NotFound`] | the registry answered that the id (or subject) does not exist | raw fallback for that record |
//! | [`RegistryError::Invalid`] | the schema exists but is not usable for columns (not valid, an unknown type, a type with no Iceberg equivalent) | raw fallback for that record |
//! | [`RegistryError::Unavailable`] | no answer in time, a connection error, 5xx, 429, 401/403, or an answer we cannot read | fails retriable: Kafka keeps its data and retries |
//! | [`RegistryError::Config`] | the configuration is wrong (bad URL, unreadable CA file) | fails at startup |
//!
//! A registry that does not answer never produces a degraded table: only an explicit "not
//! found" sends a record to the fallback.
//!
//! # Cache
//!
//! Schemas by id are immutable in a Schema Registry, so a fetched schema (and a "not found" or
//! "invalid" answer) is kept for the client's lifetime. Concurrent callers asking for the same id
//! share one request (a per-id `OnceCell`); a failure that may pass (`Unavailable`) is not cached,
//! so the next caller tries again. Every call is bounded by the configured timeout, waiting for
//! another caller's request included. `latest` always asks the registry (the latest version
//! changes); its answer fills the id cache. The cache is bounded: at most [`MAX_CACHED_SCHEMAS`]
//! schemas and [`MAX_CACHED_NOT_FOUND`] "no usable schema" answers (values that merely look
//! framed carry arbitrary ids); past either bound, answers are dropped (the "not found" ones
//! first) and asked again when needed.
//!
//! # Credentials
//!
//! Basic auth comes from `user:password` (`schema.registry.basic.auth.user.info`) or from the
//! URL's user info, which is removed from the URL. Neither appears in errors, logs or `Debug`
//! output: reqwest errors are stripped of their URL, and URLs are printed without user info.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::sync::OnceCell;
use url::Url;

use crate::avro::{SchemaError, WriterSchema};
use crate::transcode::Envelope;
use crate::wire::SchemaId;

/// Default bound on one call (connect, request, and waiting for another caller's request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of a [`SchemaRegistry`].
#[derive(Clone)]
pub struct RegistryConfig {
    /// Base URLs, tried in order when one is unavailable (`schema.registry.url`, comma-separated).
    pub urls: Vec<Url>,
    /// `(user, password)` for HTTP basic auth.
    pub basic_auth: Option<(String, String)>,
    /// Bound on one call.
    pub timeout: Duration,
    /// Extra PEM root certificates for HTTPS (`schema.registry.ssl.ca.location`), besides the
    /// system's.
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field(
                "urls",
                &self.urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|(u, _)| format!("{u}:<redacted>")),
            )
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .finish()
    }
}

impl RegistryConfig {
    /// A configuration for one or more comma-separated URLs. User info in a URL becomes basic
    /// auth and is removed from the URL.
    pub fn new(urls: &str) -> Result<Self, RegistryError> {
        let mut basic_auth = None;
        let mut parsed = Vec::new();
        for raw in urls.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut url = Url::parse(raw).map_err(|e| RegistryError::Config {
                reason: format!("schema registry URL is not a URL: {e}"),
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(RegistryError::Config {
                    reason: format!(
                        "schema registry URL scheme {:?} is not http or https",
                        url.scheme()
                    ),
                });
            }
            if !url.username().is_empty() {
                let user = percent_decode(url.username());
                let password = url.password().map(percent_decode).unwrap_or_default();
                basic_auth = Some((user, password));
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            // Join relative paths onto the base: it must end with '/'.
            if !url.path().ends_with('/') {
                let p = format!("{}/", url.path());
                url.set_path(&p);
            }
            parsed.push(url);
        }
        if parsed.is_empty() {
            return Err(RegistryError::Config {
                reason: "no schema registry URL".into(),
            });
        }
        Ok(Self {
            urls: parsed,
            basic_auth,
            timeout: DEFAULT_TIMEOUT,
            ca_pem: None,
        })
    }

    /// Reads the Confluent-style properties: `schema.registry.url`,
    /// `schema.registry.basic.auth.user.info` (`user:password`),
    /// `schema.registry.request.timeout.ms`, `schema.registry.ssl.ca.location` (a PEM file).
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, RegistryError> {
        let props: HashMap<&str, &str> = props.into_iter().collect();
        let url = props
            .get("schema.registry.url")
            .ok_or_else(|| RegistryError::Config {
                reason: "schema.registry.url is not set".into(),
            })?;
        let mut config = Self::new(url)?;
        if let Some(info) = props.get("schema.registry.basic.auth.user.info") {
            config = config.with_user_info(info)?;
        }
        if let Some(ms) = props.get("schema.registry.request.timeout.ms") {
            let ms: u64 = ms.trim().parse().map_err(|_| RegistryError::Config {
                reason: format!("schema.registry.request.timeout.ms is not a number: {ms:?}"),
            })?;
            config.timeout = Duration::from_millis(ms);
        }
        if let Some(path) = props.get("schema.registry.ssl.ca.location") {
            let pem = std::fs::read(path).map_err(|e| RegistryError::Config {
                reason: format!("cannot read schema.registry.ssl.ca.location {path}: {e}"),
            })?;
            config.ca_pem = Some(pem);
        }
        Ok(config)
    }

    /// Sets basic auth from `user:password` (the password may contain ':').
    pub fn with_user_info(mut self, info: &str) -> Result<Self, RegistryError> {
        let (user, password) = info.split_once(':').ok_or_else(|| RegistryError::Config {
            reason: "schema.registry.basic.auth.user.info is not user:password".into(),
        })?;
        self.basic_auth = Some((user.to_string(), password.to_string()));
        Ok(self)
    }

    /// Sets the bound on one call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a registry call failed with; variants by what the caller does (see the module doc).
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry says this schema id or subject does not exist: the record goes raw.
    #[error("schema {what} not found in the registry")]
    NotFound {
        /// `id 42` or `subject orders-value`.
        what: String,
    },
    /// The schema exists but cannot be used for columns: the record goes raw.
    #[error("schema id {id} is not usable: {reason}")]
    Invalid {
        /// The schema id.
        id: SchemaId,
        /// Why (not Avro, does not parse, has references we do not resolve).
        reason: String,
    },
    /// The registry did not answer usefully in time: retriable, never a degraded table.
    #[error("schema registry {url} unavailable: {reason}")]
    Unavailable {
        /// The registry URL (no credentials).
        url: String,
        /// What happened (no credentials).
        reason: String,
        /// The HTTP status, if there was an answer.
        status: Option<u16>,
    },
    /// The client's configuration is wrong.
    #[error("schema registry configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl RegistryError {
    /// Whether trying again later may succeed (the copy must fail retriable).
    pub fn is_retriable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }

    /// Whether the record should be kept in the raw fallback (the registry answered: no usable
    /// schema for that id).
    pub fn is_fallback(&self) -> bool {
        matches!(
            self,
            RegistryError::NotFound { .. } | RegistryError::Invalid { .. }
        )
    }
}

/// The schema types a registry may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Avro (the default when `schemaType` is absent).
    Avro,
    /// Protobuf.
    Protobuf,
    /// JSON Schema.
    Json,
}

/// A schema as the registry returned it, compiled for columns.
#[derive(Debug)]
pub struct RegisteredSchema {
    /// The schema id.
    pub id: SchemaId,
    /// The schema's text: Avro's verbatim (references inlined), Protobuf's and JSON Schema's
    /// in an [`Envelope`].
    pub text: String,
    /// The compiled writer schema (Avro, or another format seen as Avro).
    pub writer: Arc<WriterSchema>,
    /// For `latest`: the subject and its version.
    pub version: Option<(String, i32)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaResponse {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
    #[serde(default)]
    id: Option<SchemaId>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    /// Protobuf and JSON Schema: the texts of the references (and theirs), by the name the
    /// schema refers to them with, once [`SchemaRegistry::resolve_references`] fetched them.
    #[serde(skip)]
    resolved: BTreeMap<String, String>,
}

/// Whether a registry's `schemaType` is Avro's (absent means Avro).
fn is_avro(schema_type: Option<&str>) -> bool {
    schema_type.is_none_or(|t| t.eq_ignore_ascii_case("AVRO"))
}

/// How deep references may refer to further references.
const MAX_REFERENCE_DEPTH: usize = 16;

type CacheEntry = Arc<OnceCell<Result<Arc<RegisteredSchema>, Arc<RegistryError>>>>;

/// Schemas the id cache keeps, at most.
pub const MAX_CACHED_SCHEMAS: usize = 10_000;
/// "Not found" / "invalid" answers the id cache keeps, at most.
pub const MAX_CACHED_NOT_FOUND: usize = 1_000;

/// Drops answers from `cache` until it holds at most `max_not_found` "no usable schema" answers
/// and `max_schemas + max_not_found` entries in all; requests in flight are kept.
fn trim(cache: &mut HashMap<SchemaId, CacheEntry>, max_schemas: usize, max_not_found: usize) {
    if cache.len() <= max_schemas + max_not_found {
        return;
    }
    let not_found: Vec<SchemaId> = cache
        .iter()
        .filter(|(_, c)| matches!(c.get(), Some(Err(_))))
        .map(|(&id, _)| id)
        .collect();
    for id in not_found.iter().skip(max_not_found) {
        cache.remove(id);
    }
    let over = cache.len().saturating_sub(max_schemas + max_not_found);
    let done: Vec<SchemaId> = cache
        .iter()
        .filter(|(_, c)| c.get().is_some())
        .map(|(&id, _)| id)
        .take(over)
        .collect();
    for id in done {
        cache.remove(&id);
    }
}

/// A Schema Registry client. Cheap to share (`Arc`); all methods take `&self`.
pub struct SchemaRegistry {
    config: RegistryConfig,
    http: reqwest::Client,
    cache: Mutex<HashMap<SchemaId, CacheEntry>>,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A cached answer: the schema, or a permanent "no usable schema".
pub type Lookup = Result<Arc<RegisteredSchema>, Arc<RegistryError>>;

impl SchemaRegistry {
    /// A client for `config`. Needs a tokio runtime when called, not when built.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("calving-schema/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Config {
                    reason: format!("CA certificates: {}", e.without_url()),
                })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::Config {
            reason: format!("HTTP client: {}", e.without_url()),
        })?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The schema with this id: from the cache, or one request shared by concurrent callers.
    ///
    /// `Ok(Err(_))` is the registry's permanent answer (not found, or invalid): the record goes
    /// raw. `Err(_)` is [`RegistryError::Unavailable`] (retriable) or a configuration error.
    pub async fn schema_by_id(&self, id: SchemaId) -> Result<Lookup, RegistryError> {
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entry(id).or_default().clone()
        };
        if let Some(done) = cell.get() {
            return Ok(done.clone());
        }
        let fetch = cell.get_or_try_init(|| async {
            match self.fetch_by_id(id).await {
                Ok(s) => Ok(Ok(Arc::new(s))),
                Err(e) if e.is_fallback() => Ok(Err(Arc::new(e))),
                Err(e) => Err(e),
            }
        });
        match tokio::time::timeout(self.config.timeout, fetch).await {
            Ok(Ok(done)) => {
                let done = done.clone();
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                trim(&mut cache, MAX_CACHED_SCHEMAS, MAX_CACHED_NOT_FOUND);
                Ok(done)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RegistryError::Unavailable {
                url: self.display_url(0),
                reason: format!(
                    "no answer for schema id {id} within {:?}",
                    self.config.timeout
                ),
                status: None,
            }),
        }
    }

    /// The latest version of a subject (`value_schema_latest`). Always asks the registry; the
    /// schema also fills the id cache.
    pub async fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let path = format!("subjects/{}/versions/latest", encode_segment(subject));
        let what = format!("subject {subject}");
        let resp = tokio::time::timeout(self.config.timeout, self.get(&path, &what))
            .await
            .map_err(|_| RegistryError::Unavailable {
                url: self.display_url(0),
                reason: format!("no answer for {what} within {:?}", self.config.timeout),
                status: None,
            })??;
        let id = resp.id.ok_or_else(|| RegistryError::Unavailable {
            url: self.display_url(0),
            reason: format!("answer for {what} has no id"),
            status: None,
        })?;
        let version = match (resp.subject.clone(), resp.version) {
            (Some(s), Some(v)) => Some((s, v)),
            (None, Some(v)) => Some((subject.to_string(), v)),
            _ => None,
        };
        let mut resp = resp;
        self.resolve_references(id, &mut resp).await?;
        let schema = Arc::new(to_registered(id, resp, version)?);
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            trim(&mut cache, MAX_CACHED_SCHEMAS, MAX_CACHED_NOT_FOUND);
            cache.entry(id).or_default().clone()
        };
        let _ = cell.set(Ok(schema.clone()));
        Ok(schema)
    }

    async fn fetch_by_id(&self, id: SchemaId) -> Result<RegisteredSchema, RegistryError> {
        let what = format!("id {id}");
        let mut resp = self.get(&format!("schemas/ids/{id}"), &what).await?;
        self.resolve_references(id, &mut resp).await?;
        to_registered(id, resp, None)
    }

    /// Replaces a schema that refers to other subjects' schemas (Confluent schema references,
    /// what Apicurio's serdes register by default for nested types) by one self-contained schema:
    /// each referenced named type is inlined where it is first used. The text kept for the
    /// sidecar then parses on its own, so serving never needs the registry.
    async fn resolve_references(&self, id: SchemaId, resp: &mut SchemaResponse) -> Result<(), RegistryError> {
        if resp.references.is_empty() {
            return Ok(());
        }
        let invalid = |reason: String| RegistryError::Invalid { id, reason };
        let mut definitions: HashMap<String, serde_json::Value> = HashMap::new();
        let mut pending: Vec<(serde_json::Value, usize)> =
            resp.references.drain(..).map(|r| (r, 0)).collect();
        let mut seen: HashSet<(String, i64)> = HashSet::new();
        while let Some((reference, depth)) = pending.pop() {
            let name = reference.get("name").and_then(|v| v.as_str());
            let subject = reference.get("subject").and_then(|v| v.as_str());
            let version = reference.get("version").and_then(|v| v.as_i64());
            let (Some(name), Some(subject), Some(version)) = (name, subject, version) else {
                return Err(invalid(format!("malformed schema reference {reference}")));
            };
            if depth > MAX_REFERENCE_DEPTH {
                return Err(invalid(format!("schema references nested deeper than {MAX_REFERENCE_DEPTH}")));
            }
            if !seen.insert((subject.to_string(), version)) {
                continue;
            }
            let path = format!("subjects/{}/versions/{version}", encode_segment(subject));
            let what = format!("reference {name} (subject {subject} version {version}) of schema id {id}");
            let referenced = match self.get(&path, &what).await {
                Ok(r) => r,
                Err(RegistryError::NotFound { .. }) => {
                    return Err(invalid(format!("{what} does not exist")))
                }
                Err(e) => return Err(e),
            };
            if !is_avro(resp.schema_type.as_deref()) {
                // A Protobuf import or JSON Schema `$ref`: kept by name, compiled with the schema.
                resp.resolved.insert(name.to_string(), referenced.schema);
                pending.extend(referenced.references.into_iter().map(|r| (r, depth + 1)));
                continue;
            }
            let json: serde_json::Value = serde_json::from_str(&referenced.schema)
                .map_err(|e| invalid(format!("{what}: {e}")))?;
            definitions.insert(name.to_string(), json);
            pending.extend(referenced.references.into_iter().map(|r| (r, depth + 1)));
        }
        if !is_avro(resp.schema_type.as_deref()) {
            return Ok(());
        }
        let root: serde_json::Value =
            serde_json::from_str(&resp.schema).map_err(|e| invalid(e.to_string()))?;
        let mut defined = HashSet::new();
        let inlined = crate::avro::inline_references(root, &definitions, &mut defined, None);
        resp.schema = inlined.to_string();
        Ok(())
    }

    fn display_url(&self, i: usize) -> String {
        self.config
            .urls
            .get(i)
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// GET a path from the first URL that answers; 404 is `NotFound`.
    async fn get(&self, path: &str, what: &str) -> Result<SchemaResponse, RegistryError> {
        let mut last = None;
        for (i, base) in self.config.urls.iter().enumerate() {
            let url = base.join(path).map_err(|e| RegistryError::Config {
                reason: format!("cannot build a URL for {what}: {e}"),
            })?;
            let unavailable = |reason: String, status: Option<u16>| RegistryError::Unavailable {
                url: self.display_url(i),
                reason,
                status,
            };
            let mut req = self.http.get(url).header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
            if let Some((user, password)) = &self.config.basic_auth {
                req = req.basic_auth(user, Some(password));
            }
            tracing::debug!(target: "calving::schema", url = %self.display_url(i), what, "schema registry request");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(unavailable(error_chain(e), None));
                    continue;
                }
            };
            let status = resp.status();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = Some(unavailable(error_chain(e), Some(status.as_u16())));
                    continue;
                }
            };
            if status == reqwest::StatusCode::NOT_FOUND {
                // Confluent: 40401 subject not found, 40402 version not found, 40403 schema
                // not found. Only those say the registry does not know it; any other 404 (a
                // wrong base path, a proxy) is an error, never a cached "not found" that would
                // silently turn a typed table's values raw.
                if let Some(code) = confluent_not_found(&body) {
                    tracing::debug!(target: "calving::schema", what, code, "schema registry: not found");
                    return Err(RegistryError::NotFound {
                        what: what.to_string(),
                    });
                }
                last = Some(unavailable(
                    format!("HTTP 404 without a Schema Registry error code (40401/40402/40403), is the URL right? {}", snippet(&body)),
                    Some(404),
                ));
                continue;
            }
            if !status.is_success() {
                let reason = match status.as_u16() {
                    401 | 403 => {
                        format!("HTTP {status}: check schema.registry.basic.auth.user.info")
                    }
                    _ => format!("HTTP {status}: {}", snippet(&body)),
                };
                last = Some(unavailable(reason, Some(status.as_u16())));
                continue;
            }
            return serde_json::from_slice(&body).map_err(|e| {
                unavailable(
                    format!("unreadable answer for {what}: {e}"),
                    Some(status.as_u16()),
                )
            });
        }
        Err(last.unwrap_or_else(|| RegistryError::Config {
            reason: "no schema registry URL".into(),
        }))
    }
}

/// The Confluent error code of a 404 answer that means "no such subject, version or schema".
fn confluent_not_found(body: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error_code: i64,
    }
    let code = serde_json::from_slice::<ErrorBody>(body).ok()?.error_code;
    matches!(code, 40401..=40403).then_some(code)
}

fn to_registered(
    id: SchemaId,
    resp: SchemaResponse,
    version: Option<(String, i32)>,
) -> Result<RegisteredSchema, RegistryError> {
    let kind = match resp
        .schema_type
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("AVRO") => SchemaType::Avro,
        Some("PROTOBUF") => SchemaType::Protobuf,
        Some("JSON") => SchemaType::Json,
        Some(other) => {
            return Err(RegistryError::Invalid {
                id,
                reason: format!("unknown schema type {other}"),
            })
        }
    };
    if !resp.references.is_empty() {
        return Err(RegistryError::Invalid {
            id,
            reason: "schema references were not resolved".into(),
        });
    }
    // Protobuf and JSON Schema are kept as an envelope: type, text and references in one
    // self-contained text (the sidecar's), which WriterSchema::parse compiles.
    let text = match kind {
        SchemaType::Avro => resp.schema,
        SchemaType::Protobuf | SchemaType::Json => {
            Envelope::new(if kind == SchemaType::Protobuf { "PROTOBUF" } else { "JSON" }, resp.schema, resp.resolved).to_text()
        }
    };
    let writer =
        WriterSchema::parse(&text).map_err(|e: SchemaError| RegistryError::Invalid {
            id,
            reason: format!("{kind:?} schema: {e}"),
        })?;
    Ok(RegisteredSchema {
        id,
        text,
        writer: Arc::new(writer),
        version,
    })
}

/// A reqwest error and its causes, without the URL.
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.replace(['\n', '\r'], " ")
}

/// Percent-encodes a path segment (subject names may hold '/', ':', spaces…): everything but
/// RFC 3986's unreserved characters.
fn encode_segment(s: &str) -> String {
    const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_cache_is_bounded_not_found_answers_first() {
        let mut cache: HashMap<SchemaId, CacheEntry> = HashMap::new();
        let not_found = |id| {
            let c = CacheEntry::default();
            let _ = c.set(Err(Arc::new(RegistryError::NotFound { what: format!("id {id}") })));
            c
        };
        let writer = Arc::new(WriterSchema::parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#).unwrap());
        let found = |id| {
            let c = CacheEntry::default();
            let _ = c.set(Ok(Arc::new(RegisteredSchema { id, text: String::new(), writer: writer.clone(), version: None })));
            c
        };
        for id in 0..50 {
            cache.insert(id, not_found(id));
        }
        for id in 100..120 {
            cache.insert(id, found(id));
        }
        cache.insert(999, CacheEntry::default()); // a request in flight
        trim(&mut cache, 30, 5);
        let count = |c: &HashMap<SchemaId, CacheEntry>| {
            (c.values().filter(|e| matches!(e.get(), Some(Err(_)))).count(), c.values().filter(|e| matches!(e.get(), Some(Ok(_)))).count())
        };
        assert_eq!(count(&cache), (5, 20), "not-found answers dropped first, schemas kept");
        assert!(cache.contains_key(&999), "in flight kept");
        for id in 200..240 {
            cache.insert(id, found(id));
        }
        trim(&mut cache, 30, 5);
        assert!(cache.len() <= 35 && cache.contains_key(&999), "{}", cache.len());
    }

    #[test]
    fn user_info_in_url_becomes_basic_auth_and_leaves_the_url() {
        let c = RegistryConfig::new("https://alice:p%40ss@registry.example:8081/ccompat").unwrap();
        assert_eq!(c.urls[0].as_str(), "https://registry.example:8081/ccompat/");
        assert_eq!(c.basic_auth, Some(("alice".into(), "p@ss".into())));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p@ss") && !dbg.contains("p%40ss"), "{dbg}");
    }

    #[test]
    fn properties() {
        let c = RegistryConfig::from_properties([
            ("schema.registry.url", "http://a:1, http://b:2/x/"),
            ("schema.registry.basic.auth.user.info", "bob:se:cret"),
            ("schema.registry.request.timeout.ms", "250"),
        ])
        .unwrap();
        assert_eq!(c.urls.len(), 2);
        assert_eq!(c.urls[1].as_str(), "http://b:2/x/");
        assert_eq!(c.basic_auth, Some(("bob".into(), "se:cret".into())));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(matches!(
            RegistryConfig::from_properties([("schema.registry.url", "ftp://x")]),
            Err(RegistryError::Config { .. })
        ));
        assert!(matches!(
            RegistryConfig::from_properties([("other", "x")]),
            Err(RegistryError::Config { .. })
        ));
    }

    #[test]
    fn subject_is_one_path_segment() {
        assert_eq!(encode_segment("a/b c:d-value"), "a%2Fb%20c%3Ad-value");
    }

    #[test]
    fn schema_types() {
        let resp = |t: Option<&str>| SchemaResponse {
            schema: r#""string""#.into(),
            schema_type: t.map(String::from),
            references: vec![],
            id: None,
            subject: None,
            version: None,
            resolved: BTreeMap::new(),
        };
        assert!(to_registered(1, resp(None), None).is_ok());
        assert!(to_registered(1, resp(Some("AVRO")), None).is_ok());
        // A Protobuf text that does not compile: a fallback (values raw), not retriable.
        let e = to_registered(1, resp(Some("PROTOBUF")), None).unwrap_err();
        assert!(e.is_fallback() && !e.is_retriable());
        let e = to_registered(1, resp(Some("XML")), None).unwrap_err();
        assert!(e.is_fallback() && !e.is_retriable());
    }
}
