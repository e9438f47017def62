//! Producer-state snapshot (`<offset>.snapshot`, `ProducerStateManager`, schema
//! `storage/src/main/resources/message/ProducerSnapshot.json`): int16 version (1), uint32 CRC-32C
//! of everything after the CRC field, int32 entry count, then 46-byte entries. Followers load it
//! back through `fetchIndex(PRODUCER_SNAPSHOT)`, so Calving keeps the bytes as they came and only
//! parses them to check them and to show them.

use crate::error::{ReadError, ReadErrorKind};

const HEADER_LEN: usize = 10;
pub const ENTRY_LEN: usize = 46;

/// One producer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction, -1 when none.
    pub current_txn_first_offset: i64,
}

/// A parsed snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub version: i16,
    pub crc: u32,
    pub entries: Vec<ProducerEntry>,
}

/// Parses a snapshot and checks its CRC.
pub fn parse(bytes: &[u8]) -> Result<ProducerSnapshot, ReadError> {
    if bytes.len() < HEADER_LEN {
        return Err(ReadError::new(
            0,
            ReadErrorKind::Truncated { what: "producer snapshot", needed: HEADER_LEN as u64, available: bytes.len() as u64 },
        ));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != 1 {
        return Err(ReadError::new(0, ReadErrorKind::Malformed(format!("unsupported producer snapshot version {version}"))));
    }
    let crc = u32::from_be_bytes(bytes[2..6].try_into().unwrap());
    let computed = crc32c::crc32c(&bytes[6..]);
    if crc != computed {
        return Err(ReadError::new(2, ReadErrorKind::ChecksumMismatch { algorithm: "CRC-32C", stored: crc, computed }));
    }
    let count = i32::from_be_bytes(bytes[6..10].try_into().unwrap());
    let expected = usize::try_from(count).ok().and_then(|c| c.checked_mul(ENTRY_LEN)).and_then(|n| n.checked_add(HEADER_LEN));
    if expected != Some(bytes.len()) {
        return Err(ReadError::new(
            6,
            ReadErrorKind::Malformed(format!("producer snapshot declares {count} entries but is {} bytes", bytes.len())),
        ));
    }
    let entries = bytes[HEADER_LEN..]
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let i64_at = |o: usize| i64::from_be_bytes(e[o..o + 8].try_into().unwrap());
            let i32_at = |o: usize| i32::from_be_bytes(e[o..o + 4].try_into().unwrap());
            ProducerEntry {
                producer_id: i64_at(0),
                producer_epoch: i16::from_be_bytes([e[8], e[9]]),
                last_sequence: i32_at(10),
                last_offset: i64_at(14),
                offset_delta: i32_at(22),
                timestamp: i64_at(26),
                coordinator_epoch: i32_at(34),
                current_txn_first_offset: i64_at(38),
            }
        })
        .collect();
    Ok(ProducerSnapshot { version, crc, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(entries: u32) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0, 0, 0];
        b.extend_from_slice(&(entries as i32).to_be_bytes());
        for i in 0..entries {
            b.extend_from_slice(&i64::from(i).to_be_bytes()); // producerId
            b.extend_from_slice(&[0u8; ENTRY_LEN - 8]);
        }
        let crc = crc32c::crc32c(&b[6..]);
        b[2..6].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parses_and_checks_crc() {
        let s = parse(&snapshot(2)).unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[1].producer_id, 1);
        let mut bad = snapshot(2);
        bad[20] ^= 1;
        assert!(matches!(parse(&bad).unwrap_err().kind, ReadErrorKind::ChecksumMismatch { .. }));
        assert!(parse(&snapshot(2)[..30]).is_err());
    }
}
