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

#[cfg(test)]
mod tests {
    use super::offset::{self, OffsetIndexEntry};
    use super::time::{self, TimeIndexEntry};
    use super::txn::{self, AbortedTxn};
    use crate::ReadErrorKind;

    #[test]
    fn offset_index_stops_at_preallocated_zeros() {
        let entries = vec![
            OffsetIndexEntry { relative_offset: 3, position: 4100 },
            OffsetIndexEntry { relative_offset: 9, position: 8300 },
        ];
        let mut bytes = Vec::new();
        offset::encode(&entries, &mut bytes);
        let exact = bytes.clone();
        bytes.resize(bytes.len() + 8 * 100, 0);
        assert_eq!(offset::parse(&bytes).unwrap(), entries);
        assert_eq!(offset::parse(&exact).unwrap(), entries);
        assert_eq!(offset::lookup(&entries, 2), OffsetIndexEntry { relative_offset: 0, position: 0 });
        assert_eq!(offset::lookup(&entries, 3), entries[0]);
        assert_eq!(offset::lookup(&entries, 8), entries[0]);
        assert_eq!(offset::lookup(&entries, 1000), entries[1]);
    }

    #[test]
    fn offset_index_rejects_backwards_and_ragged() {
        let mut bytes = Vec::new();
        offset::encode(
            &[OffsetIndexEntry { relative_offset: 9, position: 100 }, OffsetIndexEntry { relative_offset: 5, position: 200 }],
            &mut bytes,
        );
        let e = offset::parse(&bytes).unwrap_err();
        assert_eq!(e.position, 8);
        assert!(matches!(e.kind, ReadErrorKind::Malformed(_)));
        assert!(offset::parse(&bytes[..12]).is_err());
    }

    #[test]
    fn time_index_roundtrip_with_zeros() {
        let entries = vec![
            TimeIndexEntry { timestamp: 1_700_000_000_000, relative_offset: 4 },
            TimeIndexEntry { timestamp: 1_700_000_000_500, relative_offset: 20 },
        ];
        let mut bytes = Vec::new();
        time::encode(&entries, &mut bytes);
        bytes.resize(bytes.len() + 12 * 10, 0);
        assert_eq!(time::parse(&bytes).unwrap(), entries);
        let mut back = Vec::new();
        time::encode(&[entries[1], entries[0]], &mut back);
        assert!(time::parse(&back).is_err());
    }

    #[test]
    fn txn_index_roundtrip_and_version_check() {
        let entries =
            vec![AbortedTxn { version: 0, producer_id: 7, first_offset: 10, last_offset: 20, last_stable_offset: 21 }];
        let mut bytes = Vec::new();
        txn::encode(&entries, &mut bytes);
        assert_eq!(bytes.len(), txn::ENTRY_LEN);
        assert_eq!(txn::parse(&bytes).unwrap(), entries);
        bytes[1] = 3;
        assert!(txn::parse(&bytes).is_err());
    }
}
