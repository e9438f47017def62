//! Calving's own commit path: table updates that iceberg-rust 0.10.1's transactions cannot
//! express (a snapshot that removes data files), committed straight to the catalog with the
//! catalog's own protocol. iceberg-rust keeps `TableCommit` construction private, so this module
//! speaks the two protocols itself:
//!
//! - **SQL catalog** (the JDBC layout): check the requirements against the current metadata,
//!   apply the updates with iceberg's `TableMetadataBuilder`, write the next metadata file, then
//!   swap `metadata_location` in `iceberg_tables` with a compare-and-set on the old location —
//!   what iceberg's own `SqlCatalog::update_table` does, so both writers exclude each other.
//! - **REST catalog**: `POST /v1/{prefix}/namespaces/{namespace}/tables/{table}` with the spec's
//!   `CommitTableRequest` (requirements and updates as iceberg-rust serialises them); the server
//!   checks and applies them. Authentication: `token`, `credential` (OAuth2 client credentials
//!   against `oauth2-server-uri` or `<uri>/v1/oauth/tokens`) and `header.*`, as iceberg-rust's
//!   REST client reads them.
//!
//! A failed requirement or a lost compare-and-set is [`Error::CommitConflict`]: nothing landed;
//! the caller rebuilds its snapshot on the fresh table and tries again. A failure after the
//! request went out (the SQL `UPDATE` sent and no answer, a REST timeout or 5xx) is
//! [`Error::CommitStateUnknown`]: it may have been applied. Both paths return the table as
//! committed.

use std::collections::HashMap;
use std::time::Duration;

use iceberg::spec::TableMetadataBuilder;
use iceberg::table::Table;
use iceberg::{ErrorKind, MetadataLocation, TableRequirement, TableUpdate};
use serde::Serialize;

use crate::config::{CatalogConfig, CatalogKind};
use crate::error::{Error, Result};

/// The own commit path's connections to the catalog, made on first use and kept for the
/// catalog's lifetime (one per [`crate::CalvingCatalog`]): building an HTTP client and asking
/// `/v1/config`, or opening a SQL connection, cost more than the commit itself.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    http: tokio::sync::OnceCell<reqwest::Client>,
    /// The REST prefix (configured, or from `/v1/config`).
    prefix: tokio::sync::OnceCell<Option<String>>,
    sql: tokio::sync::OnceCell<sqlx::AnyPool>,
}

/// Commits `updates` under `requirements` to `table` in `catalog`.
pub(crate) async fn commit(
    catalog: &crate::CalvingCatalog,
    table: &Table,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<Table> {
    let (config, connections) = (catalog.config(), catalog.connections());
    let result = match config.kind() {
        CatalogKind::Sql => commit_sql(config, connections, table, requirements, updates).await,
        CatalogKind::Rest => commit_rest(config, connections, table, requirements, updates).await,
    };
    catalog.known(table.identifier(), |known| match &result {
        Ok(committed) => known.committed(committed),
        Err(Error::CommitConflict { .. }) => known.conflicted(),
        Err(_) => known.forget(),
    });
    result
}

fn conflict(table: &Table, why: impl Into<String>) -> Error {
    Error::CommitConflict {
        table: table.identifier().to_string(),
        source: Box::new(iceberg::Error::new(ErrorKind::CatalogCommitConflicts, why.into())),
    }
}

fn unavailable(operation: &'static str, message: String) -> Error {
    Error::CatalogUnavailable {
        operation,
        source: Box::new(iceberg::Error::new(ErrorKind::Unexpected, message)),
    }
}

fn unknown(table: &Table, message: String) -> Error {
    Error::CommitStateUnknown {
        table: table.identifier().to_string(),
        what: "a snapshot".into(),
        source: Box::new(iceberg::Error::new(ErrorKind::Unexpected, message)),
    }
}

/// The committed table: `metadata` at `location`.
fn committed(table: &Table, metadata: iceberg::spec::TableMetadata, location: String) -> Result<Table> {
    Ok(Table::builder()
        .metadata(metadata)
        .metadata_location(location)
        .identifier(table.identifier().clone())
        .file_io(table.file_io().clone())
        .runtime(iceberg::Runtime::try_current()?)
        .build()?)
}

async fn commit_sql(
    config: &CatalogConfig,
    connections: &Connections,
    table: &Table,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<Table> {
    let current_location = table
        .metadata_location()
        .ok_or_else(|| conflict(table, "the table has no metadata location"))?
        .to_string();
    for requirement in &requirements {
        requirement
            .check(Some(table.metadata()))
            .map_err(|e| conflict(table, e.to_string()))?;
    }
    let mut builder = TableMetadataBuilder::new_from_metadata(
        table.metadata().clone(),
        Some(current_location.clone()),
    );
    for update in updates {
        builder = update.apply(builder)?;
    }
    let metadata = builder.build()?.metadata;
    // The next version under a new name, as iceberg's own catalogs do: the compare-and-set below
    // only excludes concurrent commits if each writes a metadata file of its own.
    let next_location = current_location
        .parse::<MetadataLocation>()?
        .with_next_version()
        .with_new_metadata(&metadata);
    metadata.write_to(table.file_io(), &next_location).await?;
    let next = next_location.to_string();

    let pool = connections
        .sql
        .get_or_try_init(|| async {
            sqlx::any::install_default_drivers();
            sqlx::any::AnyPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(30))
                .connect(config.uri())
                .await
        })
        .await
        .map_err(|e| unavailable("commit", format!("cannot connect to the sql catalog: {e}")))?;
    let sql = if config.uri().starts_with("sqlite:") {
        "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
         WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?"
    } else {
        "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
         WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5 \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = $6"
    };
    let ident = table.identifier();
    let result = sqlx::query(sql)
        .bind(&next)
        .bind(&current_location)
        .bind(config.name())
        .bind(ident.namespace().join("."))
        .bind(ident.name())
        .bind(&current_location)
        .execute(pool)
        .await;
    match result {
        Ok(r) if r.rows_affected() == 1 => {
            delete_superseded_metadata(table, &metadata, &current_location, &next).await;
            committed(table, metadata, next)
        }
        Ok(_) => {
            // Lost the race: the metadata file written above is referenced by nothing.
            let _ = table.file_io().delete(&next).await;
            Err(conflict(table, "the table's metadata location changed during the commit"))
        }
        // The UPDATE went out: it may have been applied.
        Err(e) => Err(unknown(table, format!("the sql catalog update failed: {e}"))),
    }
}

/// With `write.metadata.delete-after-commit.enabled=true`, deletes the metadata files the new
/// metadata's log no longer lists (it keeps `write.metadata.previous-versions-max`), as Iceberg's
/// own catalogs do after a commit. Best effort: a file left over is an orphan for the sweep.
async fn delete_superseded_metadata(table: &Table, metadata: &iceberg::spec::TableMetadata, previous: &str, next: &str) {
    let enabled = metadata
        .properties()
        .get("write.metadata.delete-after-commit.enabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !enabled {
        return;
    }
    let kept: std::collections::HashSet<&str> =
        metadata.metadata_log().iter().map(|l| l.metadata_file.as_str()).chain([next]).collect();
    let superseded = table.metadata().metadata_log().iter().map(|l| l.metadata_file.as_str()).chain([previous]);
    for f in superseded.filter(|f| !kept.contains(f)) {
        if let Err(e) = table.file_io().delete(f).await {
            tracing::debug!(file = f, error = %e, "could not delete a superseded metadata file");
        }
    }
}

#[derive(Serialize)]
struct CommitTableRequest<'a> {
    identifier: TableIdentJson<'a>,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
}

#[derive(Serialize)]
struct TableIdentJson<'a> {
    namespace: &'a [String],
    name: &'a str,
}

async fn commit_rest(
    config: &CatalogConfig,
    connections: &Connections,
    table: &Table,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<Table> {
    let props = config.catalog_props();
    let base = config.uri().trim_end_matches('/').to_string();
    let client = connections
        .http
        .get_or_try_init(|| async { reqwest::Client::builder().timeout(Duration::from_secs(60)).build() })
        .await
        .map_err(|e| unavailable("commit", format!("cannot build an http client: {e}")))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in props.iter().filter_map(|(k, v)| Some((k.strip_prefix("header.")?, v))) {
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            reqwest::header::HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    let token = match (props.get("token"), props.get("credential")) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(credential)) => Some(oauth_token(client, &base, props, credential).await?),
        (None, None) => None,
    };
    if let Some(t) = token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| Error::config("catalog.token", "not a valid http header value"))?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }

    // The prefix: configured, or the server's answer to GET /v1/config (asked once).
    let prefix = connections
        .prefix
        .get_or_try_init(|| async {
            if let Some(p) = props.get("prefix") {
                return Ok(Some(p.clone()));
            }
            let mut request = client.get(format!("{base}/v1/config")).headers(headers.clone());
            if let Some(w) = config.rest_warehouse() {
                request = request.query(&[("warehouse", w)]);
            }
            let response = request
                .send()
                .await
                .map_err(|e| unavailable("commit", format!("GET {base}/v1/config: {e}")))?;
            if !response.status().is_success() {
                return Err(unavailable("commit", format!("GET {base}/v1/config: {}", response.status())));
            }
            #[derive(serde::Deserialize, Default)]
            struct ConfigResponse {
                #[serde(default)]
                overrides: HashMap<String, String>,
                #[serde(default)]
                defaults: HashMap<String, String>,
            }
            let c: ConfigResponse = response
                .json()
                .await
                .map_err(|e| unavailable("commit", format!("GET {base}/v1/config: {e}")))?;
            Ok(c.overrides.get("prefix").or(c.defaults.get("prefix")).cloned())
        })
        .await?
        .clone();
    let ident = table.identifier();
    let namespace = ident.namespace().clone().inner();
    let url = format!(
        "{base}/v1/{}namespaces/{}/tables/{}",
        prefix.map(|p| format!("{}/", encode(&p))).unwrap_or_default(),
        encode(&namespace.join("\u{1f}")),
        encode(ident.name()),
    );
    let body = CommitTableRequest {
        identifier: TableIdentJson { namespace: &namespace, name: ident.name() },
        requirements,
        updates,
    };
    let response = client
        .post(&url)
        .headers(headers)
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                unavailable("commit", format!("POST {url}: {e}")) // never reached the server
            } else {
                unknown(table, format!("POST {url}: {e}"))
            }
        })?;
    let status = response.status();
    if status.is_success() {
        #[derive(serde::Deserialize)]
        struct CommitTableResponse {
            #[serde(rename = "metadata-location")]
            metadata_location: String,
            metadata: iceberg::spec::TableMetadata,
        }
        let body: CommitTableResponse = response
            .json()
            .await
            .map_err(|e| unknown(table, format!("POST {url}: the answer cannot be read: {e}")))?;
        return committed(table, body.metadata, body.metadata_location);
    }
    let text = response.text().await.unwrap_or_default();
    match status.as_u16() {
        409 => Err(conflict(table, format!("the REST catalog refused the commit: {text}"))),
        500 | 502 | 504 => Err(unknown(table, format!("POST {url}: {status}: {text}"))),
        503 => Err(unavailable("commit", format!("POST {url}: {status}: {text}"))),
        _ => Err(Error::Iceberg(Box::new(iceberg::Error::new(
            ErrorKind::Unexpected,
            format!("POST {url}: {status}: {text}"),
        )))),
    }
}

/// The OAuth2 client-credentials exchange of the REST catalog spec.
async fn oauth_token(
    client: &reqwest::Client,
    base: &str,
    props: &std::collections::BTreeMap<String, String>,
    credential: &str,
) -> Result<String> {
    let (id, secret) = match credential.split_once(':') {
        Some((id, secret)) => (Some(id), secret),
        None => (None, credential),
    };
    let url = props.get("oauth2-server-uri").cloned().unwrap_or_else(|| format!("{base}/v1/oauth/tokens"));
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials"), ("client_secret", secret)];
    if let Some(id) = id {
        form.push(("client_id", id));
    }
    form.push(("scope", props.get("scope").map_or("catalog", String::as_str)));
    for key in ["audience", "resource"] {
        if let Some(v) = props.get(key) {
            form.push((key, v));
        }
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: String,
    }
    let response = client
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| unavailable("authenticate", format!("POST {url}: {e}")))?;
    if !response.status().is_success() {
        // The response may echo the credential: never show it.
        return Err(unavailable("authenticate", format!("POST {url}: {}", response.status())));
    }
    let token: TokenResponse = response
        .json()
        .await
        .map_err(|e| unavailable("authenticate", format!("POST {url}: {e}")))?;
    Ok(token.access_token)
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters.
fn encode(segment: &str) -> String {
    const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(super::encode("kafka\u{1f}x y"), "kafka%1Fx%20y");
        assert_eq!(super::encode("a-b_c.d~"), "a-b_c.d~");
    }
}
