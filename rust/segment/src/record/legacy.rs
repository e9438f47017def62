//! Legacy message sets, magic v0 and v1 (`LegacyRecord`, `AbstractLegacyRecordBatch`), found in
//! segments written before Kafka 0.11 or under an old `log.message.format.version`.
//!
//! ```text
//! offset int64 | size int32 | crc uint32 (CRC-32 IEEE of magic..end) | magic int8 | attributes int8
//! | timestamp int64 (v1 only) | keyLength int32 (-1 = null) + key | valueLength int32 (-1 = null) + value
//! ```
//!
//! A compressed message (codec in attribute bits 0–2: gzip, snappy or lz4) is a wrapper whose
//! value is a compressed message set of inner messages. v1 inner offsets are relative (absolute =
//! wrapper offset − last inner offset + inner offset); v0 inner offsets are absolute. Under
//! `LogAppendTime` the wrapper's timestamp applies to every inner message.

use crate::compression::{self, Compression};
use crate::error::{ReadError, ReadErrorKind};
use crate::record::{TimestampType, NO_TIMESTAMP};

const CRC_AT: usize = 12;
const MAGIC_AT: usize = 16;
const TIMESTAMP_TYPE_BIT: i8 = 0x08;

/// One shallow message (entry) of a legacy message set, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct LegacyEntry<'a> {
    /// Byte position in the file or buffer.
    pub position: u64,
    pub offset: i64,
    pub crc: u32,
    pub magic: i8,
    pub attributes: i8,
    /// [`NO_TIMESTAMP`] for v0.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    bytes: &'a [u8],
}

/// A record of a legacy message set, with its absolute offset and effective timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyRecord<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub magic: i8,
    pub attributes: i8,
    pub crc: u32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl<'a> LegacyEntry<'a> {
    /// Parses one entry from exactly its bytes (`size + 12`).
    pub fn parse(bytes: &'a [u8], position: u64) -> Result<LegacyEntry<'a>, ReadError> {
        let err = |kind| ReadError::new(position, kind);
        let truncated = |needed: usize| {
            err(ReadErrorKind::Truncated {
                what: "legacy message",
                needed: needed as u64,
                available: bytes.len() as u64,
            })
        };
        if bytes.len() < MAGIC_AT + 2 {
            return Err(truncated(MAGIC_AT + 2));
        }
        let offset = i64::from_be_bytes(bytes[0..8].try_into().unwrap());
        let crc = u32::from_be_bytes(bytes[CRC_AT..CRC_AT + 4].try_into().unwrap());
        let magic = bytes[MAGIC_AT] as i8;
        let attributes = bytes[MAGIC_AT + 1] as i8;
        let mut pos = MAGIC_AT + 2;
        let timestamp = match magic {
            0 => NO_TIMESTAMP,
            1 => {
                let t = bytes.get(pos..pos + 8).ok_or_else(|| truncated(pos + 8))?;
                pos += 8;
                i64::from_be_bytes(t.try_into().unwrap())
            }
            other => return Err(err(ReadErrorKind::UnsupportedMagic(other))),
        };
        let read_bytes = |pos: &mut usize| -> Result<Option<&'a [u8]>, ReadError> {
            let l = bytes.get(*pos..*pos + 4).ok_or_else(|| truncated(*pos + 4))?;
            *pos += 4;
            let len = i32::from_be_bytes(l.try_into().unwrap());
            if len == -1 {
                return Ok(None);
            }
            if len < 0 {
                return Err(err(ReadErrorKind::InvalidLength { what: "legacy key/value", length: len.into() }));
            }
            let end = *pos + len as usize;
            let b = bytes.get(*pos..end).ok_or_else(|| truncated(end))?;
            *pos = end;
            Ok(Some(b))
        };
        let key = read_bytes(&mut pos)?;
        let value = read_bytes(&mut pos)?;
        if pos != bytes.len() {
            return Err(err(ReadErrorKind::Malformed(format!(
                "legacy message size says {} bytes, fields end at {pos}",
                bytes.len()
            ))));
        }
        let entry = LegacyEntry { position, offset, crc, magic, attributes, timestamp, key, value, bytes };
        if entry.compression().is_none() {
            return Err(err(ReadErrorKind::UnknownCompression((attributes & 0x07) as u8)));
        }
        Ok(entry)
    }

    /// The entry's bytes (offset and size fields included).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The codec of a wrapper message (`None` codec for a plain message). zstd is not valid here.
    pub fn compression(&self) -> Option<Compression> {
        match Compression::from_id((self.attributes & 0x07) as u8)? {
            Compression::Zstd => None,
            c => Some(c),
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        match (self.magic, self.attributes & TIMESTAMP_TYPE_BIT != 0) {
            (0, _) => TimestampType::NoTimestampType,
            (_, true) => TimestampType::LogAppendTime,
            (_, false) => TimestampType::CreateTime,
        }
    }

    /// CRC-32 (IEEE) of the bytes the stored `crc` covers.
    pub fn computed_crc(&self) -> u32 {
        crc32fast::hash(&self.bytes[MAGIC_AT..])
    }

    pub fn verify_crc(&self) -> Result<(), ReadError> {
        let computed = self.computed_crc();
        if computed != self.crc {
            return Err(ReadError::new(
                self.position,
                ReadErrorKind::ChecksumMismatch { algorithm: "CRC-32", stored: self.crc, computed },
            ));
        }
        Ok(())
    }

    fn as_record(&self) -> LegacyRecord<'a> {
        LegacyRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type(),
            magic: self.magic,
            attributes: self.attributes,
            crc: self.crc,
            key: self.key,
            value: self.value,
        }
    }

    /// The records: the message itself, or a wrapper's inner messages (decompressed into
    /// `scratch`, bounded by `limit` bytes) with absolute offsets and effective timestamps.
    pub fn records<'s>(&'s self, scratch: &'s mut Vec<u8>, limit: usize) -> Result<Vec<LegacyRecord<'s>>, ReadError> {
        let codec = self.compression().expect("checked in parse");
        if codec == Compression::None {
            return Ok(vec![self.as_record()]);
        }
        let err = |kind| ReadError::new(self.position, kind);
        let value = self
            .value
            .ok_or_else(|| err(ReadErrorKind::Malformed("compressed wrapper message with a null value".into())))?;
        compression::decompress(codec, value, scratch, limit)
            .map_err(|source| err(ReadErrorKind::Decompression { codec, source }))?;
        let scratch: &'s Vec<u8> = scratch;
        let mut inner = Vec::new();
        let mut pos = 0usize;
        while pos < scratch.len() {
            let size_bytes = scratch.get(pos + 8..pos + 12).ok_or_else(|| {
                err(ReadErrorKind::Malformed(format!("inner message set truncated at inner byte {pos}")))
            })?;
            let size = i32::from_be_bytes(size_bytes.try_into().unwrap());
            let end = usize::try_from(size).ok().and_then(|s| (pos + 12).checked_add(s)).filter(|&e| e <= scratch.len());
            let end = end.ok_or_else(|| {
                err(ReadErrorKind::Malformed(format!("inner message at inner byte {pos} has invalid size {size}")))
            })?;
            let entry = LegacyEntry::parse(&scratch[pos..end], self.position).map_err(|e| {
                err(ReadErrorKind::Malformed(format!("inner message at inner byte {pos}: {}", e.kind)))
            })?;
            if entry.compression() != Some(Compression::None) {
                return Err(err(ReadErrorKind::Malformed("compressed message inside a compressed wrapper".into())));
            }
            entry.verify_crc().map_err(|e| err(ReadErrorKind::Malformed(format!("inner message at inner byte {pos}: {}", e.kind))))?;
            inner.push(entry.as_record());
            pos = end;
        }
        let last = inner
            .last()
            .ok_or_else(|| err(ReadErrorKind::Malformed("compressed wrapper with no inner messages".into())))?
            .offset;
        for r in &mut inner {
            if self.magic == 1 {
                r.offset += self.offset - last;
                if self.timestamp_type() == TimestampType::LogAppendTime {
                    r.timestamp = self.timestamp;
                    r.timestamp_type = TimestampType::LogAppendTime;
                }
            }
        }
        Ok(inner)
    }
}

/// Appends one uncompressed legacy message (size and CRC computed); used by tests and fuzz seeds.
pub fn write_legacy_message(
    out: &mut Vec<u8>,
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let start = out.len();
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&[0; 8]); // size + crc, filled below
    out.push(magic as u8);
    out.push(attributes as u8);
    if magic == 1 {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    for b in [key, value] {
        match b {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    let size = (out.len() - start - 12) as i32;
    out[start + 8..start + 12].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&out[start + MAGIC_AT..]);
    out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogEntries, LogEntry};

    #[test]
    fn v0_and_v1_messages_roundtrip() {
        let mut log = Vec::new();
        write_legacy_message(&mut log, 5, 0, 0, NO_TIMESTAMP, Some(b"k"), None);
        write_legacy_message(&mut log, 6, 1, TIMESTAMP_TYPE_BIT, 1234, None, Some(b""));
        let entries: Vec<_> = LogEntries::new(&log).map(Result::unwrap).collect();
        let (LogEntry::Legacy(a), LogEntry::Legacy(b)) = (&entries[0], &entries[1]) else { panic!("legacy expected") };
        a.verify_crc().unwrap();
        b.verify_crc().unwrap();
        assert_eq!((a.offset, a.key, a.value, a.timestamp_type()), (5, Some(&b"k"[..]), None, TimestampType::NoTimestampType));
        assert_eq!((b.offset, b.key, b.value, b.timestamp), (6, None, Some(&b""[..]), 1234));
        assert_eq!(b.timestamp_type(), TimestampType::LogAppendTime);
        let mut scratch = Vec::new();
        assert_eq!(b.records(&mut scratch, 1 << 20).unwrap().len(), 1);
    }

    #[test]
    fn compressed_wrapper_assigns_v1_offsets_and_log_append_time() {
        let mut inner = Vec::new();
        for (rel, ts) in [(0i64, 10i64), (1, 11), (2, 12)] {
            write_legacy_message(&mut inner, rel, 1, 0, ts, None, Some(b"value"));
        }
        let mut compressed = Vec::new();
        compression::compress(Compression::Gzip, Default::default(), &inner, &mut compressed).unwrap();
        let mut log = Vec::new();
        write_legacy_message(&mut log, 102, 1, 1 | TIMESTAMP_TYPE_BIT, 999, None, Some(&compressed));
        let entry = LogEntries::new(&log).next().unwrap().unwrap();
        let LogEntry::Legacy(w) = entry else { panic!("legacy expected") };
        let mut scratch = Vec::new();
        let records = w.records(&mut scratch, 1 << 20).unwrap();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![100, 101, 102]);
        assert!(records.iter().all(|r| r.timestamp == 999 && r.timestamp_type == TimestampType::LogAppendTime));
    }
}
