//! What the broker tells a RemoteStorageManager about a segment, in Rust types: the
//! `RemoteLogSegmentMetadata` facts Calving uses and the `LogSegmentData` files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A Kafka UUID (topic id, segment id) as 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaUuid(pub [u8; 16]);

impl KafkaUuid {
    /// From Java's `getMostSignificantBits`/`getLeastSignificantBits`.
    pub fn from_bits(most: i64, least: i64) -> KafkaUuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&most.to_be_bytes());
        b[8..].copy_from_slice(&least.to_be_bytes());
        KafkaUuid(b)
    }

    /// Parses Kafka's text form (22 characters of URL-safe base64, no padding).
    pub fn parse(s: &str) -> Option<KafkaUuid> {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        if s.len() != 22 {
            return None;
        }
        let mut bits: u128 = 0;
        for (i, c) in s.bytes().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u128;
            if i < 21 {
                bits = (bits << 6) | v;
            } else {
                // 21 × 6 = 126 bits; the last character holds 2 more and 4 zero bits of padding.
                if v & 0xf != 0 {
                    return None;
                }
                bits = (bits << 2) | (v >> 4);
            }
        }
        Some(KafkaUuid(bits.to_be_bytes()))
    }

    /// A random (v4) id, for tools and tests.
    pub fn random() -> KafkaUuid {
        KafkaUuid(*uuid::Uuid::new_v4().as_bytes())
    }
}

/// Kafka's text form: URL-safe base64 without padding (`Uuid.toString()`).
impl fmt::Display for KafkaUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&calving_layout::topic_id_string(&self.0))
    }
}

impl fmt::Debug for KafkaUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_roundtrip() {
        for _ in 0..100 {
            let u = KafkaUuid::random();
            assert_eq!(KafkaUuid::parse(&u.to_string()), Some(u));
        }
        assert_eq!(KafkaUuid(*b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01").to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(KafkaUuid::parse("short"), None);
    }
}

/// The facts of a `RemoteLogSegmentMetadata` Calving needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMetadata {
    pub topic: String,
    pub topic_id: KafkaUuid,
    pub partition: i32,
    pub segment_id: KafkaUuid,
    pub start_offset: i64,
    pub end_offset: i64,
    pub max_timestamp_ms: i64,
    pub segment_size: u64,
    /// Leader epoch → first offset.
    pub leader_epochs: BTreeMap<i32, i64>,
}

impl SegmentMetadata {
    /// The segment's identity as its sidecar records it.
    pub fn identity(&self) -> calving_layout::sidecar::SegmentIdentity {
        calving_layout::sidecar::SegmentIdentity {
            topic: self.topic.clone(),
            topic_id: self.topic_id.0,
            partition: self.partition,
            segment_id: self.segment_id.0,
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            segment_size: self.segment_size,
            max_timestamp_ms: self.max_timestamp_ms,
        }
    }
}

impl fmt::Display for SegmentMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment {} of {}-{} (topic id {}, offsets {}..={})",
            self.segment_id, self.topic, self.partition, self.topic_id, self.start_offset, self.end_offset
        )
    }
}

/// The files of a `LogSegmentData`, valid only during the copy call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSegmentFiles {
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
    pub txn_index: Option<PathBuf>,
    pub producer_snapshot: PathBuf,
    /// The leader-epoch checkpoint bytes (`LogSegmentData.leaderEpochIndex`).
    pub leader_epoch: Vec<u8>,
}

/// Kafka's `RemoteStorageManager.IndexType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexType {
    Offset,
    Timestamp,
    ProducerSnapshot,
    Transaction,
    LeaderEpoch,
}

impl IndexType {
    /// From the Java enum's ordinal.
    pub fn from_ordinal(n: i32) -> Option<IndexType> {
        Some(match n {
            0 => IndexType::Offset,
            1 => IndexType::Timestamp,
            2 => IndexType::ProducerSnapshot,
            3 => IndexType::Transaction,
            4 => IndexType::LeaderEpoch,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            IndexType::Offset => "OFFSET",
            IndexType::Timestamp => "TIMESTAMP",
            IndexType::ProducerSnapshot => "PRODUCER_SNAPSHOT",
            IndexType::Transaction => "TRANSACTION",
            IndexType::LeaderEpoch => "LEADER_EPOCH",
        }
    }
}
