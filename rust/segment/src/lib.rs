//! # calving-segment: the Kafka log-segment codec
//!
//! Reads and writes what a Kafka broker keeps for one log segment: the `.log` file of record
//! batches ([`record::batch`], magic v2; [`record::legacy`], magic v0/v1), the records in them
//! ([`record::record`], [`record::control`]), every compression codec ([`compression`]), and the
//! side files: offset, time and transaction indexes ([`index`]), the leader-epoch checkpoint
//! ([`leader_epoch`]) and the producer snapshot ([`producer_snapshot`]).
//!
//! ## Design
//! - **Synchronous, no Arrow, no unsafe.** Conversion to columns lives in other crates; this one is
//!   the byte format only, so it can be fuzzed and proven against Kafka's own tools in isolation.
//! - **Borrowing parsers.** A batch borrows its bytes; records borrow the batch (or one reusable
//!   decompression buffer); headers are validated once and iterated from their raw bytes. Reading
//!   allocates nothing per record.
//! - **Typed errors with a place.** Every failure is a [`ReadError`]: file, byte position and a
//!   [`ReadErrorKind`] saying what is wrong (truncated, checksum mismatch, bad length, unknown
//!   codec…). No input makes the parsers panic; `fuzz/` holds the targets that check it.
//! - **Re-encoding is exact.** Record and batch writers use minimal varints like Kafka, so an
//!   uncompressed batch re-encodes byte-identical; compressed batches re-encode deterministically
//!   (same input, same bytes) in the stream formats Kafka's Java client reads.
//!
//! ## Proof
//! The tests in `tests/` parse real segments written by a real Kafka broker (`tests/fixtures/`)
//! and compare every batch and record with what Kafka's own `DumpLogSegments` and record parser
//! print for the same files.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod compression;
pub mod error;
pub mod index;
pub mod leader_epoch;
pub mod log;
pub mod producer_snapshot;
pub mod record;
pub mod synth;
pub mod varint;

pub use compression::Compression;
pub use error::{EncodeError, ReadError, ReadErrorKind};
pub use log::{LogEntries, LogEntry, LogReader};
pub use record::batch::{Attributes, BatchEncoder, BatchHeader, RecordBatch};
pub use record::legacy::{LegacyEntry, LegacyRecord};
pub use record::record::{Header, Headers, Record};
pub use record::TimestampType;
