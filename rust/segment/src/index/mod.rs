//! The segment's index files: offset index (`.index`), time index (`.timeindex`) and transaction
//! index (`.txnindex`).
//!
//! Offset and time index files are preallocated (`segment.index.bytes`) and trimmed when the
//! segment rolls; a file that was not trimmed ends in zero-filled slots. Parsing stops at the
//! first all-zero slot after the first entry, as Kafka's own `AbstractIndex` does by tracking its
//! entry count, and rejects entries that go backwards (a corrupt index would otherwise send a
//! fetch to the wrong position). Entries are also encoded back, byte-identical.

pub mod offset;
pub mod time;
pub mod txn;

use crate::error::{ReadError, ReadErrorKind};

/// Checks that `len` is a whole number of `entry` sized slots.
pub(crate) fn check_slots(len: usize, entry: usize, what: &'static str) -> Result<(), ReadError> {
    if !len.is_multiple_of(entry) {
        return Err(ReadError::new(
            (len - len % entry) as u64,
            ReadErrorKind::Malformed(format!("{what} size {len} is not a multiple of its {entry}-byte entry")),
        ));
    }
    Ok(())
}
