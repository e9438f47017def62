//! The crate's one public error, and the one place object_store errors are classified.
//!
//! Variants are chosen by what the caller can do about them (object_store's own style): a missing
//! object, an object that already exists, a failed precondition, refused credentials, a
//! **transient** failure worth retrying (the plugin turns it into a retriable
//! `RemoteStorageException`), a bad configuration or location, or anything else.
//! [`classify`] maps an [`object_store::Error`] to a variant, and is the only code that looks
//! inside object_store errors. [`From<Error> for iceberg::Error`](Error) carries the variant over
//! to iceberg's `ErrorKind` and `retryable` flag.
//!
//! No message built here contains a credential: configuration errors never echo secret values,
//! and object_store keeps credentials out of its own messages (signatures go in headers; SAS
//! requests are marked sensitive, so their URLs are not printed).

use std::error::Error as StdError;
use std::fmt;

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operation that failed, for messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Building a client.
    Connect,
    /// A single-request upload.
    Put,
    /// A streaming (possibly multipart) upload.
    Write,
    /// A whole-object read.
    Get,
    /// A byte-range read.
    GetRange,
    /// Metadata (size) of an object.
    Head,
    /// Deleting an object.
    Delete,
    /// Listing a prefix.
    List,
    /// Copying an object.
    Copy,
}

impl Operation {
    /// Lower-case name (`get-range`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Put => "put",
            Operation::Write => "write",
            Operation::Get => "get",
            Operation::GetRange => "get-range",
            Operation::Head => "head",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Copy => "copy",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in object storage, by what the caller can do about it.
///
/// `location` is always the full location the caller used (`s3://bucket/key`), never an
/// object_store-internal path. The message does not repeat the source; [`Error::report`] gives
/// the whole chain on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object at `location`. Not retriable (for deletes this never surfaces: they are idempotent).
    #[error("{operation} {location}: not found")]
    NotFound {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A create-only write found an object already there.
    #[error("{operation} {location}: already exists")]
    AlreadyExists {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A conditional request's precondition failed (e.g. the object changed meanwhile).
    #[error("{operation} {location}: precondition failed")]
    Precondition {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// The credentials are valid but lack permission (HTTP 403, EACCES).
    #[error("{operation} {location}: permission denied")]
    PermissionDenied {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// The store did not accept the credentials (HTTP 401).
    #[error("{operation} {location}: unauthenticated (check the storage credentials)")]
    Unauthenticated {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A failure that may pass if the operation is tried again later: connection refused or
    /// reset, timeouts, HTTP 5xx/429/408, throttling. object_store already retried it (see the
    /// `storage.retry.*` keys) before it surfaced here.
    #[error("{operation} {location}: transient storage failure, retriable")]
    Transient {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
    /// A configuration property (or the warehouse location, key `warehouse`) is unusable.
    #[error("invalid storage configuration {key}: {reason}")]
    InvalidConfig {
        /// The property name as given (or `warehouse`).
        key: String,
        /// Why, without the value when the value is a credential.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A location this storage cannot address (unknown scheme, another kind of store than the
    /// warehouse's, or a key object_store cannot represent such as `a//b` or `..`).
    #[error("invalid location {location}: {reason}")]
    InvalidLocation {
        /// The location.
        location: String,
        /// Why.
        reason: String,
    },
    /// Anything else (a bad request, an unsupported operation, a local I/O error, …). Not retriable.
    #[error("{operation} {location}: storage error")]
    Other {
        /// What was attempted.
        operation: Operation,
        /// The location.
        location: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether trying the same operation again later may succeed (only [`Error::Transient`]).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The location the error is about, if it is about one.
    pub fn location(&self) -> Option<&str> {
        match self {
            Error::NotFound { location, .. }
            | Error::AlreadyExists { location, .. }
            | Error::Precondition { location, .. }
            | Error::PermissionDenied { location, .. }
            | Error::Unauthenticated { location, .. }
            | Error::Transient { location, .. }
            | Error::InvalidLocation { location, .. }
            | Error::Other { location, .. } => Some(location),
            Error::InvalidConfig { .. } => None,
        }
    }

    /// The message and every source, joined by `: ` (for an exception message or a log line).
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !out.ends_with(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = s.source();
        }
        out
    }

    pub(crate) fn invalid_config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            key: key.into(),
            reason: reason.into(),
            source: None,
        }
    }

    pub(crate) fn invalid_location(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidLocation {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// Maps an object_store error for `operation` on `location` to [`Error`]. The only place that
/// decides what an object_store error means.
pub(crate) fn classify(err: object_store::Error, operation: Operation, location: &str) -> Error {
    use object_store::Error as OsError;
    let location = location.to_string();
    match err {
        OsError::NotFound { .. } => Error::NotFound {
            operation,
            location,
            source: Box::new(err),
        },
        OsError::AlreadyExists { .. } => Error::AlreadyExists {
            operation,
            location,
            source: Box::new(err),
        },
        OsError::Precondition { .. } | OsError::NotModified { .. } => Error::Precondition {
            operation,
            location,
            source: Box::new(err),
        },
        OsError::PermissionDenied { .. } => Error::PermissionDenied {
            operation,
            location,
            source: Box::new(err),
        },
        OsError::Unauthenticated { .. } => Error::Unauthenticated {
            operation,
            location,
            source: Box::new(err),
        },
        OsError::InvalidPath { .. } => Error::InvalidLocation {
            reason: err.to_string(),
            location,
        },
        OsError::UnknownConfigurationKey { ref key, .. } => Error::InvalidConfig {
            key: key.clone(),
            reason: "rejected by the object_store client".into(),
            source: Some(Box::new(err)),
        },
        other => {
            by_chain(Box::new(other), operation, location)
        }
    }
}

/// Maps an `std::io::Error` raised by a writer (object_store's `BufWriter` wraps its errors in
/// `io::Error`) back to [`Error`].
pub(crate) fn classify_io(err: std::io::Error, operation: Operation, location: &str) -> Error {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<object_store::Error>())
    {
        let inner = err.into_inner().expect("checked above");
        let os = *inner
            .downcast::<object_store::Error>()
            .expect("checked above");
        return classify(os, operation, location);
    }
    by_chain(Box::new(err), operation, location.to_string())
}

/// The variant for an error whose kind is read from its source chain.
fn by_chain(source: BoxError, operation: Operation, location: String) -> Error {
    match chain_kind(source.as_ref()) {
        ChainKind::Transient => Error::Transient { operation, location, source },
        ChainKind::PermissionDenied => Error::PermissionDenied { operation, location, source },
        ChainKind::NotFound => Error::NotFound { operation, location, source },
        ChainKind::Other => Error::Other { operation, location, source },
    }
}

enum ChainKind {
    Transient,
    PermissionDenied,
    NotFound,
    Other,
}

/// Looks through a `Generic` error's source chain. object_store's `RetryError` (which carries the
/// HTTP status) is not public in 0.14, so statuses are read from its message; connection-level
/// failures are typed (`HttpError::kind`, `io::ErrorKind`).
fn chain_kind(err: &(dyn StdError + 'static)) -> ChainKind {
    use object_store::client::{HttpError, HttpErrorKind};
    use std::io::ErrorKind as Io;
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => return ChainKind::Transient,
                _ => {}
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::TimedOut
                | Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::BrokenPipe
                | Io::UnexpectedEof
                | Io::Interrupted
                | Io::WouldBlock
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::NetworkDown
                | Io::ResourceBusy => return ChainKind::Transient,
                Io::PermissionDenied => return ChainKind::PermissionDenied,
                Io::NotFound => return ChainKind::NotFound,
                _ => {}
            }
        }
        if message_is_transient(&e.to_string()) {
            return ChainKind::Transient;
        }
        current = e.source();
    }
    ChainKind::Other
}

/// Whether an object_store retry message reports a status worth retrying: 5xx, 429 Too Many
/// Requests, 408 Request Timeout, or an S3 error body (`InternalError`, `SlowDown`) in a 200.
fn message_is_transient(message: &str) -> bool {
    const MARKER: &str = "status code: ";
    if let Some(i) = message.find(MARKER) {
        let code = &message[i + MARKER.len()..];
        let code: String = code.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(code) = code.parse::<u16>() {
            return (500..600).contains(&code) || code == 429 || code == 408;
        }
    }
    message.starts_with("Server returned error response:")
        && (message.contains("InternalError")
            || message.contains("SlowDown")
            || message.contains("ServiceUnavailable"))
}

impl From<Error> for iceberg::Error {
    fn from(err: Error) -> Self {
        use iceberg::ErrorKind;
        let kind = match &err {
            Error::Precondition { .. } => ErrorKind::PreconditionFailed,
            Error::InvalidConfig { .. }
            | Error::InvalidLocation { .. }
            | Error::NotFound { .. } => ErrorKind::DataInvalid,
            _ => ErrorKind::Unexpected,
        };
        let retryable = err.is_retriable();
        let mut out = iceberg::Error::new(kind, err.to_string()).with_retryable(retryable);
        if let Some(location) = err.location() {
            out = out.with_context("location", location);
        }
        out.with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_in_retry_messages() {
        assert!(message_is_transient(
            "Error performing GET http://x/y in 1s, after 3 retries - Server returned non-2xx status code: 503 Service Unavailable: "
        ));
        assert!(message_is_transient(
            "Server returned non-2xx status code: 429 Too Many Requests: slow"
        ));
        assert!(!message_is_transient(
            "Server returned non-2xx status code: 400 Bad Request: <Error>"
        ));
        assert!(message_is_transient(
            "Server returned error response: <Error><Code>InternalError</Code></Error>"
        ));
        assert!(!message_is_transient(
            "Server returned error response: <Error><Code>InvalidPart</Code></Error>"
        ));
    }

    #[test]
    fn object_store_variants_map_by_what_the_caller_can_do() {
        let src = || -> BoxError { "x".into() };
        let nf = classify(
            object_store::Error::NotFound {
                path: "k".into(),
                source: src(),
            },
            Operation::Get,
            "s3://b/k",
        );
        assert!(nf.is_not_found() && !nf.is_retriable());
        assert_eq!(nf.location(), Some("s3://b/k"));
        assert_eq!(nf.to_string(), "get s3://b/k: not found");
        let generic_io = classify(
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            },
            Operation::Put,
            "s3://b/k",
        );
        assert!(generic_io.is_retriable(), "{generic_io:?}");
        let generic = classify(
            object_store::Error::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 400 Bad Request".into(),
            },
            Operation::Put,
            "s3://b/k",
        );
        assert!(matches!(generic, Error::Other { .. }));
        assert!(
            generic.report().contains("400 Bad Request"),
            "{}",
            generic.report()
        );
        let ice: iceberg::Error = classify(
            object_store::Error::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 502 Bad Gateway".into(),
            },
            Operation::Get,
            "s3://b/k",
        )
        .into();
        assert!(ice.retryable());
        assert!(ice.to_string().contains("s3://b/k"), "{ice}");
    }
}
