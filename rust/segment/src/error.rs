//! Read errors: every failure names the file (when known), the byte position and the reason.
//!
//! The parsers work on byte slices and know positions relative to the start of what they were
//! given; the file readers attach the path. Nothing in this crate panics on malformed input: each
//! malformed shape has its own [`ReadErrorKind`] variant so callers (the plugin, the CLI) can tell a
//! truncated segment from a checksum mismatch without parsing messages.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::compression::Compression;

/// A read failure at a byte position of a segment file (or of an in-memory buffer).
#[derive(Debug, thiserror::Error)]
pub struct ReadError {
    /// The file being read, when the bytes came from a file.
    pub file: Option<PathBuf>,
    /// Byte position in the file of the batch, entry or index slot that failed.
    pub position: u64,
    /// What is wrong.
    #[source]
    pub kind: ReadErrorKind,
}

impl ReadError {
    pub(crate) fn new(position: u64, kind: ReadErrorKind) -> Self {
        ReadError { file: None, position, kind }
    }

    /// Attaches the file path (kept if one is already set).
    pub fn in_file(mut self, file: &Path) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: at byte {}: {}", file.display(), self.position, self.kind),
            None => write!(f, "at byte {}: {}", self.position, self.kind),
        }
    }
}

/// The reason a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The input ends inside a structure.
    #[error("truncated {what}: needs {needed} bytes, {available} available")]
    Truncated { what: &'static str, needed: u64, available: u64 },
    /// A batch or message length field that cannot be right.
    #[error("invalid {what} length {length}")]
    InvalidLength { what: &'static str, length: i64 },
    /// A magic byte this codec does not know (Kafka knows 0, 1 and 2).
    #[error("unsupported magic byte {0}")]
    UnsupportedMagic(i8),
    /// A stored checksum that does not match the bytes.
    #[error("{algorithm} mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { algorithm: &'static str, stored: u32, computed: u32 },
    /// A compression id outside 0..=4.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// The codec rejected the compressed payload.
    #[error("{codec} decompression failed: {source}")]
    Decompression {
        codec: Compression,
        #[source]
        source: std::io::Error,
    },
    /// A record inside a batch is malformed.
    #[error("record {index} of the batch: {reason}")]
    MalformedRecord { index: u32, reason: &'static str },
    /// The batch header's record count disagrees with the records present.
    #[error("batch header says {declared} records, payload holds {actual}")]
    RecordCountMismatch { declared: i32, actual: u64 },
    /// Any other structural problem, named.
    #[error("{0}")]
    Malformed(String),
    /// The file could not be read.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An encode failure (only inputs that cannot be represented in Kafka's format).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{what} is too large for Kafka's format: {size}")]
    TooLarge { what: &'static str, size: usize },
    #[error("{codec} compression failed: {source}")]
    Compression {
        codec: Compression,
        #[source]
        source: std::io::Error,
    },
}
