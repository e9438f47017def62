//! Errors of the layout: a schema Calving cannot write into, input the layout cannot hold, a
//! sidecar that is damaged or of an unknown version, rows that do not match the sidecar.

use calving_segment::{EncodeError, ReadError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The table's schema lacks a column Calving writes, or has it with another type.
    #[error("table column {column}: {reason}")]
    IncompatibleSchema { column: String, reason: String },
    /// The segment could not be read.
    #[error(transparent)]
    Segment(#[from] ReadError),
    /// A batch could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Arrow rejected the arrays (a bug if it happens: the arrays follow the target schema).
    #[error("building Arrow arrays: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A sidecar that cannot be read: damaged, truncated, or written by a newer Calving.
    #[error("sidecar {section}: {reason}")]
    Sidecar { section: &'static str, reason: String },
    /// Value columns (schema modes) could not be built or re-encoded.
    #[error("value columns: {0}")]
    Typed(String),
    /// Rows read from the table do not match what the sidecar says the batch holds.
    #[error("batch at offset {base_offset}: {reason}")]
    RowsMismatch { base_offset: i64, reason: String },
}
