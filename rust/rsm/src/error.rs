//! One error type for the RemoteStorageManager operations, with what the broker can do about
//! it: [`RsmError::is_retriable`] (Kafka keeps its local data and retries the copy on its next
//! run), [`RsmError::is_not_found`] (`RemoteResourceNotFoundException`), or neither. Every message
//! names the segment and says what failed; credentials never appear (the storage crate redacts
//! them).

use calving_layout::LayoutError;
use calving_segment::ReadError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RsmError {
    /// A `rsm.config.*` key is missing or wrong.
    #[error("invalid configuration {key}: {reason}")]
    InvalidConfig { key: String, reason: String },
    /// The segment's files cannot be read as a Kafka segment (corrupt or truncated).
    #[error("{segment}: cannot read the segment: {source}")]
    SegmentRead {
        segment: String,
        #[source]
        source: ReadError,
    },
    /// Something Kafka asked for does not exist (never copied, or deleted).
    #[error("{segment}: {what} not found")]
    NotFound { segment: String, what: String },
    /// Object storage failed.
    #[error("{segment}: object storage: {source}")]
    Storage {
        segment: String,
        #[source]
        source: calving_storage::Error,
    },
    /// The catalog or a table commit failed.
    #[error("{segment}: table: {source}")]
    Table {
        segment: String,
        #[source]
        source: Box<calving_table::Error>,
    },
    /// Rows, sidecar or Parquet did not fit together.
    #[error("{segment}: {source}")]
    Layout {
        segment: String,
        #[source]
        source: LayoutError,
    },
    /// Parquet encoding or decoding failed.
    #[error("{segment}: parquet: {source}")]
    Parquet {
        segment: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Iceberg library call failed outside catalog commits.
    #[error("{segment}: iceberg: {source}")]
    Iceberg {
        segment: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    /// The Schema Registry did not answer usefully (retriable: the broker keeps its data and
    /// retries), or its configuration is wrong.
    #[error("{segment}: {source}")]
    SchemaRegistry {
        segment: String,
        #[source]
        source: calving_schema::RegistryError,
    },
    /// Rows a segment needs are no longer in the table (someone deleted them): the segment cannot
    /// be served. Not retriable, and not "not found": Kafka still has the segment's metadata.
    #[error("{segment}: the rows of offsets {start_offset}..={end_offset} are no longer in the table: {reason}")]
    RowsMissing { segment: String, start_offset: i64, end_offset: i64, reason: String },
    /// A position outside the served segment.
    #[error("{segment}: position {position} is outside the segment's {size} bytes")]
    BadPosition { segment: String, position: u64, size: u64 },
}

impl RsmError {
    /// Every [`RsmError::kind_name`], indexed by [`RsmError::kind_index`] (the metrics count
    /// errors by them).
    pub const KIND_NAMES: [&'static str; 11] = [
        "InvalidConfig",
        "SegmentRead",
        "NotFound",
        "Storage",
        "Table",
        "Layout",
        "Parquet",
        "Iceberg",
        "SchemaRegistry",
        "RowsMissing",
        "BadPosition",
    ];

    /// The variant's position in [`RsmError::KIND_NAMES`].
    pub fn kind_index(&self) -> usize {
        match self {
            RsmError::InvalidConfig { .. } => 0,
            RsmError::SegmentRead { .. } => 1,
            RsmError::NotFound { .. } => 2,
            RsmError::Storage { .. } => 3,
            RsmError::Table { .. } => 4,
            RsmError::Layout { .. } => 5,
            RsmError::Parquet { .. } => 6,
            RsmError::Iceberg { .. } => 7,
            RsmError::SchemaRegistry { .. } => 8,
            RsmError::RowsMissing { .. } => 9,
            RsmError::BadPosition { .. } => 10,
        }
    }

    /// The variant's name (errors by kind in the metrics).
    pub fn kind_name(&self) -> &'static str {
        Self::KIND_NAMES[self.kind_index()]
    }

    /// Whether retrying the same call later can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            RsmError::Storage { source, .. } => source.is_retriable(),
            RsmError::Table { source, .. } => source.is_retriable(),
            RsmError::SchemaRegistry { source, .. } => source.is_retriable(),
            _ => false,
        }
    }

    /// A Parquet error of a data file's upload (the writer's sink) or read (ranged GETs): when
    /// its cause is an object-store error, that error as [`RsmError::Storage`], so its kind
    /// (retriable, not found) reaches the broker; otherwise [`RsmError::Parquet`].
    pub(crate) fn from_parquet(segment: String, source: parquet::errors::ParquetError) -> RsmError {
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        fn storage(e: BoxError) -> Result<calving_storage::Error, BoxError> {
            let e = match e.downcast::<calving_storage::Error>() {
                Ok(s) => return Ok(*s),
                Err(e) => e,
            };
            let io = e.downcast::<std::io::Error>()?;
            if !io.get_ref().is_some_and(|i| i.is::<calving_storage::Error>()) {
                return Err(io);
            }
            let inner = io.into_inner().expect("checked above");
            Ok(*inner.downcast::<calving_storage::Error>().expect("checked above"))
        }
        match source {
            parquet::errors::ParquetError::External(e) => match storage(e) {
                Ok(source) => RsmError::Storage { segment, source },
                Err(e) => RsmError::Parquet { segment, source: parquet::errors::ParquetError::External(e) },
            },
            source => RsmError::Parquet { segment, source },
        }
    }

    /// Whether this is Kafka's `RemoteResourceNotFoundException`.
    pub fn is_not_found(&self) -> bool {
        match self {
            RsmError::NotFound { .. } => true,
            RsmError::Storage { source, .. } => source.is_not_found(),
            _ => false,
        }
    }
}

pub type Result<T, E = RsmError> = std::result::Result<T, E>;
