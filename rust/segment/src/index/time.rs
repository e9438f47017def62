//! Time index (`.timeindex`, `TimeIndex.java`): 12-byte entries `{int64 timestamp, int32
//! relativeOffset}`: the max timestamp seen so far and the offset of the batch carrying it.
//! Kafka appends an extra entry when the segment becomes inactive.

use crate::error::{ReadError, ReadErrorKind};
use crate::index::check_slots;

pub const ENTRY_LEN: usize = 12;

/// One time-index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeIndexEntry {
    pub timestamp: i64,
    pub relative_offset: i32,
}

/// Parses a time index, stopping at preallocated zero slots.
pub fn parse(bytes: &[u8]) -> Result<Vec<TimeIndexEntry>, ReadError> {
    check_slots(bytes.len(), ENTRY_LEN, "time index")?;
    let mut entries: Vec<TimeIndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (i, slot) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let e = TimeIndexEntry {
            timestamp: i64::from_be_bytes(slot[0..8].try_into().unwrap()),
            relative_offset: i32::from_be_bytes(slot[8..12].try_into().unwrap()),
        };
        if i > 0 && e.timestamp == 0 && e.relative_offset == 0 {
            break; // preallocated, never written
        }
        if e.relative_offset < 0 {
            return Err(ReadError::new(
                (i * ENTRY_LEN) as u64,
                ReadErrorKind::Malformed(format!("time index entry {i} has a negative offset: {e:?}")),
            ));
        }
        if let Some(prev) = entries.last() {
            if e.timestamp < prev.timestamp || e.relative_offset < prev.relative_offset {
                return Err(ReadError::new(
                    (i * ENTRY_LEN) as u64,
                    ReadErrorKind::Malformed(format!("time index entry {i} goes backwards: {prev:?} then {e:?}")),
                ));
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Encodes entries as Kafka stores them.
pub fn encode(entries: &[TimeIndexEntry], out: &mut Vec<u8>) {
    for e in entries {
        out.extend_from_slice(&e.timestamp.to_be_bytes());
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
    }
}
