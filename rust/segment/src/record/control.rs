//! Control records (`ControlRecordType`, `EndTransactionMarker`): the records of batches whose
//! control attribute is set. The key is `int16 version, int16 type`; for transaction markers
//! (ABORT, COMMIT) the value is `int16 version, int32 coordinatorEpoch`. The KRaft types (2–6)
//! appear only in metadata logs; their values are kept opaque.

use crate::record::record::Record;

/// Kafka's `ControlRecordType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    Abort,
    Commit,
    LeaderChange,
    SnapshotHeader,
    SnapshotFooter,
    KRaftVersion,
    KRaftVoters,
    /// A type id this codec does not know (Kafka's `UNKNOWN`).
    Unknown(i16),
}

impl ControlRecordType {
    pub fn from_id(id: i16) -> ControlRecordType {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KRaftVersion,
            6 => ControlRecordType::KRaftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }

    /// Kafka's enum constant name.
    pub fn name(self) -> &'static str {
        match self {
            ControlRecordType::Abort => "ABORT",
            ControlRecordType::Commit => "COMMIT",
            ControlRecordType::LeaderChange => "LEADER_CHANGE",
            ControlRecordType::SnapshotHeader => "SNAPSHOT_HEADER",
            ControlRecordType::SnapshotFooter => "SNAPSHOT_FOOTER",
            ControlRecordType::KRaftVersion => "KRAFT_VERSION",
            ControlRecordType::KRaftVoters => "KRAFT_VOTERS",
            ControlRecordType::Unknown(_) => "UNKNOWN",
        }
    }
}

/// A decoded control record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRecord {
    /// Version of the key.
    pub version: i16,
    pub kind: ControlRecordType,
    /// For ABORT/COMMIT markers: the transaction coordinator's epoch.
    pub coordinator_epoch: Option<i32>,
}

/// Decodes the key (and, for transaction markers, the value) of a control batch's record.
/// Returns a reason when the record does not have a control key.
pub fn parse_control_record(record: &Record<'_>) -> Result<ControlRecord, &'static str> {
    let key = record.key.ok_or("control record without a key")?;
    if key.len() < 4 {
        return Err("control record key shorter than 4 bytes");
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    let kind = ControlRecordType::from_id(i16::from_be_bytes([key[2], key[3]]));
    let coordinator_epoch = match kind {
        ControlRecordType::Abort | ControlRecordType::Commit => {
            let value = record.value.ok_or("transaction marker without a value")?;
            if value.len() < 6 {
                return Err("transaction marker value shorter than 6 bytes");
            }
            Some(i32::from_be_bytes(value[2..6].try_into().unwrap()))
        }
        _ => None,
    };
    Ok(ControlRecord { version, kind, coordinator_epoch })
}
