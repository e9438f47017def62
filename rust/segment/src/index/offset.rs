//! Offset index (`.index`, `OffsetIndex.java`): 8-byte entries `{int32 relativeOffset, int32
//! position}`, relative to the segment's base offset. Kafka writes one every
//! `index.interval.bytes` of appended data: (last offset of an append, position of the append's
//! first batch). A lookup takes the largest entry with offset ≤ target, else position 0.

use crate::error::{ReadError, ReadErrorKind};
use crate::index::check_slots;

pub const ENTRY_LEN: usize = 8;

/// One offset-index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OffsetIndexEntry {
    pub relative_offset: i32,
    pub position: i32,
}

/// Parses an offset index, stopping at preallocated zero slots.
pub fn parse(bytes: &[u8]) -> Result<Vec<OffsetIndexEntry>, ReadError> {
    check_slots(bytes.len(), ENTRY_LEN, "offset index")?;
    let mut entries: Vec<OffsetIndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (i, slot) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let e = OffsetIndexEntry {
            relative_offset: i32::from_be_bytes(slot[0..4].try_into().unwrap()),
            position: i32::from_be_bytes(slot[4..8].try_into().unwrap()),
        };
        if i > 0 && e.relative_offset == 0 && e.position == 0 {
            break; // preallocated, never written
        }
        if e.relative_offset < 0 || e.position < 0 {
            return Err(ReadError::new(
                (i * ENTRY_LEN) as u64,
                ReadErrorKind::Malformed(format!("offset index entry {i} is negative: {e:?}")),
            ));
        }
        if let Some(prev) = entries.last() {
            if e.relative_offset <= prev.relative_offset || e.position < prev.position {
                return Err(ReadError::new(
                    (i * ENTRY_LEN) as u64,
                    ReadErrorKind::Malformed(format!("offset index entry {i} goes backwards: {prev:?} then {e:?}")),
                ));
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Encodes entries as Kafka stores them.
pub fn encode(entries: &[OffsetIndexEntry], out: &mut Vec<u8>) {
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
}

/// Kafka's lookup: the entry with the largest offset ≤ `relative_offset`, else `(0, 0)`.
pub fn lookup(entries: &[OffsetIndexEntry], relative_offset: i32) -> OffsetIndexEntry {
    match entries.partition_point(|e| e.relative_offset <= relative_offset) {
        0 => OffsetIndexEntry { relative_offset: 0, position: 0 },
        n => entries[n - 1],
    }
}
