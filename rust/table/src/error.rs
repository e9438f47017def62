//! The one error type of calving-table, with variants named by what the caller can do about them.
//!
//! - Retry later ([`Error::is_retriable`] is true): [`Error::CatalogUnavailable`] (the catalog or
//!   the storage behind it did not answer), [`Error::CommitConflict`] (other writers kept winning
//!   until iceberg's own retries ran out) and [`Error::CommitStateUnknown`] (the commit may or may
//!   not have landed and the table could not be reloaded to tell). Retrying [`crate::append`] is
//!   always safe: it looks for the segment's earlier commit before committing again.
//! - Fix something first: [`Error::InvalidConfig`], [`Error::IncompatibleTable`],
//!   [`Error::UnsupportedOperation`],
//!   [`Error::InvalidDataFile`].
//! - Reconcile: [`Error::OffsetsAlreadyCommitted`] says another segment (another copy attempt of
//!   the same offsets) already committed rows in the range; appending again would duplicate them.
//! - Anything else from iceberg-rust: [`Error::Iceberg`], retriable when iceberg marks it so.

use std::error::Error as StdError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of calving-table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration key is missing or has a value Calving cannot use.
    #[error("invalid configuration `{key}`: {reason}")]
    InvalidConfig { key: String, reason: String },

    /// The catalog (or the storage it writes to) failed in a way that may pass: connection
    /// refused, timeout, pool exhausted, 5xx. Retriable.
    #[error("catalog unavailable during {operation}: {source}")]
    CatalogUnavailable {
        operation: &'static str,
        #[source]
        source: Box<iceberg::Error>,
    },

    /// Other writers committed first on every attempt, until the table's `commit.retry.*` budget
    /// ran out. Nothing of this commit landed. Retriable.
    #[error("commit to {table} kept conflicting with other writers: {source}")]
    CommitConflict {
        table: String,
        #[source]
        source: Box<iceberg::Error>,
    },

    /// The commit request failed in a way that may have been applied (e.g. REST 5xx/timeout after
    /// the request was sent, an error from the SQL catalog's `UPDATE`) and no reload could tell.
    /// Retriable: a later [`crate::append`] of the same offsets finds them in the ledger if the
    /// commit landed. Nothing written for it may be deleted (the orphan sweep does that later).
    #[error("state of the commit of {what} to {table} is unknown: {source}")]
    CommitStateUnknown {
        table: String,
        /// What was being committed (a segment, a snapshot).
        what: String,
        #[source]
        source: Box<iceberg::Error>,
    },

    /// The table's ledger already holds some of these offsets (an earlier copy attempt of the same
    /// offsets, another broker). Appending would duplicate them; point at those rows instead.
    #[error(
        "offsets {start_offset}..={end_offset} of topic id {topic_id} partition {partition} in {table} \
         are already committed (the table holds {})",
        existing.iter().map(|(s, e)| format!("{s}..={e}")).collect::<Vec<_>>().join(", ")
    )]
    OffsetsAlreadyCommitted {
        table: String,
        topic_id: String,
        partition: i32,
        start_offset: i64,
        end_offset: i64,
        /// The ranges of the table's ledger that overlap.
        existing: Vec<(i64, i64)>,
    },

    /// An existing table lacks a column Calving writes, or has it with an incompatible type.
    #[error("table {table} is incompatible with Calving: column `{column}` {reason}")]
    IncompatibleTable {
        table: String,
        column: String,
        reason: String,
    },

    /// The table cannot take this operation (e.g. removing rows from a format v1 table).
    #[error("table {table} does not support {operation}: {reason}")]
    UnsupportedOperation {
        table: String,
        operation: &'static str,
        reason: String,
    },

    /// A Parquet file cannot become a data file of this table.
    #[error("cannot register {location} as a data file: {reason}")]
    InvalidDataFile { location: String, reason: String },

    /// Any other iceberg-rust error.
    #[error(transparent)]
    Iceberg(Box<iceberg::Error>),
}

impl From<iceberg::Error> for Error {
    fn from(e: iceberg::Error) -> Self {
        Error::Iceberg(Box::new(e))
    }
}

impl Error {
    /// Whether the catalog answered that the table (or its namespace) does not exist.
    pub fn is_table_not_found(&self) -> bool {
        matches!(self, Error::Iceberg(e) if matches!(e.kind(), iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound))
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::CatalogUnavailable { .. }
            | Error::CommitConflict { .. }
            | Error::CommitStateUnknown { .. } => true,
            Error::InvalidConfig { .. }
            | Error::OffsetsAlreadyCommitted { .. }
            | Error::IncompatibleTable { .. }
            | Error::UnsupportedOperation { .. }
            | Error::InvalidDataFile { .. } => false,
            Error::Iceberg(e) => e.retryable(),
        }
    }

    /// The same failure for another caller that shared the operation (a member of a group
    /// commit): same variant and retriability, the message as text.
    pub(crate) fn for_another_caller(&self) -> Self {
        let text = |e: &dyn std::fmt::Display, kind| Box::new(iceberg::Error::new(kind, e.to_string()));
        match self {
            Error::CatalogUnavailable { operation, source } => Error::CatalogUnavailable { operation, source: text(source, source.kind()) },
            Error::CommitConflict { table, source } => Error::CommitConflict { table: table.clone(), source: text(source, source.kind()) },
            Error::CommitStateUnknown { table, what, source } => {
                Error::CommitStateUnknown { table: table.clone(), what: what.clone(), source: text(source, source.kind()) }
            }
            Error::InvalidConfig { key, reason } => Error::InvalidConfig { key: key.clone(), reason: reason.clone() },
            other => Error::Iceberg(Box::new(
                iceberg::Error::new(iceberg::ErrorKind::Unexpected, other.to_string()).with_retryable(other.is_retriable()),
            )),
        }
    }

    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Sorts an iceberg error from a catalog call: transient failures become
    /// [`Error::CatalogUnavailable`], the rest stay [`Error::Iceberg`].
    pub(crate) fn from_catalog(operation: &'static str, e: iceberg::Error) -> Self {
        if is_transient(&e) {
            Error::CatalogUnavailable {
                operation,
                source: Box::new(e),
            }
        } else {
            Error::Iceberg(Box::new(e))
        }
    }
}

/// Whether an iceberg error looks like a failure of the catalog or storage service that may pass
/// (as opposed to a rejected request or a bug). iceberg-rust reports all of these as
/// `ErrorKind::Unexpected`, so this looks at the message and at the source chain.
pub(crate) fn is_transient(e: &iceberg::Error) -> bool {
    if e.retryable() {
        return true;
    }
    if e.kind() != iceberg::ErrorKind::Unexpected {
        return false;
    }
    let msg = e.message();
    // REST: 500/502/504 on commit ("the commit state is unknown"), 503/5xx elsewhere, and any
    // failure of the HTTP request itself.
    if msg.contains("commit state is unknown")
        || msg.contains("Failed to execute http request")
        || msg.contains("server-side")
        || msg.contains("Service Unavailable")
    {
        return true;
    }
    let mut source: Option<&(dyn StdError + 'static)> = StdError::source(e);
    while let Some(s) = source {
        if let Some(sqlx_err) = s.downcast_ref::<sqlx::Error>() {
            return sqlx_transient(sqlx_err);
        }
        if s.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // SQLite "database is locked"/"busy" and Postgres serialization failures pass; constraint
        // violations and syntax errors do not.
        sqlx::Error::Database(db) => {
            let msg = db.message().to_ascii_lowercase();
            msg.contains("locked")
                || msg.contains("busy")
                || db
                    .code()
                    .is_some_and(|c| c == "40001" || c == "40P01" || c.starts_with("08"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use iceberg::ErrorKind;

    use super::*;

    #[test]
    fn retriable_by_variant() {
        let ice = || iceberg::Error::new(ErrorKind::Unexpected, "x");
        assert!(Error::CatalogUnavailable {
            operation: "load",
            source: Box::new(ice())
        }
        .is_retriable());
        assert!(Error::CommitConflict {
            table: "t".into(),
            source: Box::new(ice())
        }
        .is_retriable());
        assert!(Error::CommitStateUnknown {
            table: "t".into(),
            what: "s".into(),
            source: Box::new(ice())
        }
        .is_retriable());
        assert!(!Error::config("k", "r").is_retriable());
        assert!(!Error::IncompatibleTable {
            table: "t".into(),
            column: "c".into(),
            reason: "r".into()
        }
        .is_retriable());
        assert!(!Error::from(ice()).is_retriable());
        assert!(Error::from(ice().with_retryable(true)).is_retriable());
    }

    #[test]
    fn transient_classification() {
        let unknown = iceberg::Error::new(
            ErrorKind::Unexpected,
            "A server-side gateway timeout occurred; the commit state is unknown.",
        );
        assert!(is_transient(&unknown));
        let io = iceberg::Error::new(ErrorKind::Unexpected, "write failed")
            .with_source(std::io::Error::other("disk gone"));
        assert!(is_transient(&io));
        let pool = iceberg::Error::new(
            ErrorKind::Unexpected,
            "operation failed for hitting sqlx error",
        )
        .with_source(sqlx::Error::PoolTimedOut);
        assert!(is_transient(&pool));
        let row = iceberg::Error::new(
            ErrorKind::Unexpected,
            "operation failed for hitting sqlx error",
        )
        .with_source(sqlx::Error::RowNotFound);
        assert!(!is_transient(&row));
        assert!(!is_transient(&iceberg::Error::new(
            ErrorKind::DataInvalid,
            "bad"
        )));
        assert!(matches!(
            Error::from_catalog("load", unknown),
            Error::CatalogUnavailable {
                operation: "load",
                ..
            }
        ));
    }
}
