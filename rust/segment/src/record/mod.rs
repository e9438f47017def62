//! Kafka records: the v2 record batch ([`batch`]), the records inside it ([`record`]), control
//! records ([`control`]) and legacy v0/v1 message sets ([`legacy`]).
//!
//! Reference: `DefaultRecordBatch.java`, `DefaultRecord.java`, `LegacyRecord.java` and
//! `AbstractLegacyRecordBatch.java` in apache/kafka (`clients/src/main/java/org/apache/kafka/common/record/`),
//! KIP-32 (timestamps), KIP-98 (transactions, the v2 format). Field names follow Kafka's.

pub mod batch;
pub mod control;
pub mod legacy;
// `record::record` mirrors Kafka's naming (DefaultRecordBatch / DefaultRecord).
#[allow(clippy::module_inception)]
pub mod record;

/// How a record's timestamp was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Magic v0 has no timestamps.
    NoTimestampType,
    /// Set by the producer (`CreateTime`).
    CreateTime,
    /// Set by the broker on append (`LogAppendTime`); every record of the batch carries the batch's
    /// max timestamp.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's display name (`TimestampType.toString`).
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::NoTimestampType => "NoTimestampType",
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;
