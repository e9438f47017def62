//! Transaction index (`.txnindex`, `AbortedTxn.java`): 34-byte entries `{int16 version (0), int64
//! producerId, int64 firstOffset, int64 lastOffset, int64 lastStableOffset}`, one per aborted
//! transaction whose ABORT marker is in the segment. Offsets are absolute, so the file does not
//! depend on the byte layout of the segment. It is not preallocated.

use crate::error::{ReadError, ReadErrorKind};
use crate::index::check_slots;

pub const ENTRY_LEN: usize = 34;

/// One aborted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub version: i16,
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Parses a transaction index.
pub fn parse(bytes: &[u8]) -> Result<Vec<AbortedTxn>, ReadError> {
    check_slots(bytes.len(), ENTRY_LEN, "transaction index")?;
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (i, slot) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let i64_at = |o: usize| i64::from_be_bytes(slot[o..o + 8].try_into().unwrap());
        let e = AbortedTxn {
            version: i16::from_be_bytes([slot[0], slot[1]]),
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if e.version != 0 {
            return Err(ReadError::new(
                (i * ENTRY_LEN) as u64,
                ReadErrorKind::Malformed(format!("transaction index entry {i} has unknown version {}", e.version)),
            ));
        }
        if e.first_offset > e.last_offset {
            return Err(ReadError::new(
                (i * ENTRY_LEN) as u64,
                ReadErrorKind::Malformed(format!("transaction index entry {i} ends before it starts: {e:?}")),
            ));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Encodes entries as Kafka stores them.
pub fn encode(entries: &[AbortedTxn], out: &mut Vec<u8>) {
    for e in entries {
        out.extend_from_slice(&e.version.to_be_bytes());
        for v in [e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}
