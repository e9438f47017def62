//! The magic v2 record batch (`DefaultRecordBatch`): a 61-byte header followed by the records,
//! compressed as one blob when the codec is not `none`.
//!
//! ```text
//! off size field
//!  0   8   baseOffset
//!  8   4   batchLength            bytes after this field
//! 12   4   partitionLeaderEpoch   not covered by the CRC
//! 16   1   magic (2)
//! 17   4   crc                    CRC-32C (Castagnoli) of bytes 21..end
//! 21   2   attributes             0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon
//! 23   4   lastOffsetDelta
//! 27   8   baseTimestamp          the delete horizon when attribute bit 6 is set
//! 35   8   maxTimestamp
//! 43   8   producerId
//! 51   2   producerEpoch
//! 53   4   baseSequence
//! 57   4   recordsCount
//! 61   ..  records
//! ```

use crate::compression::{self, Compression, CompressionLevels};
use crate::error::{EncodeError, ReadError, ReadErrorKind};
use crate::record::record::Records;
use crate::record::TimestampType;

/// Bytes before `batchLength`'s coverage starts: baseOffset + batchLength (`Records.LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header (`DefaultRecordBatch.RECORD_BATCH_OVERHEAD`).
pub const BATCH_HEADER_LEN: usize = 61;
/// Offset of the first byte covered by the CRC.
const CRC_COVERAGE_START: usize = 21;
/// Default bound on a batch's decompressed size (1 GiB); see [`crate::compression::decompress`].
pub const DEFAULT_MAX_UNCOMPRESSED: usize = 1 << 30;

/// The batch attributes word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes(pub u16);

impl Attributes {
    const COMPRESSION_MASK: u16 = 0x07;
    const TIMESTAMP_TYPE: u16 = 0x08;
    const TRANSACTIONAL: u16 = 0x10;
    const CONTROL: u16 = 0x20;
    const DELETE_HORIZON: u16 = 0x40;

    /// The raw codec id (bits 0–2).
    pub fn compression_id(self) -> u8 {
        (self.0 & Self::COMPRESSION_MASK) as u8
    }

    /// The codec, if the id is known.
    pub fn compression(self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    /// The same attributes with another codec.
    pub fn with_compression(self, codec: Compression) -> Attributes {
        Attributes((self.0 & !Self::COMPRESSION_MASK) | u16::from(codec.id()))
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }
}

/// Every field of a v2 batch header, in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after this field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: Attributes,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the 61 header bytes (no validation beyond reading).
    pub fn read(b: &[u8; BATCH_HEADER_LEN]) -> BatchHeader {
        let i64_at = |o: usize| i64::from_be_bytes(b[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_be_bytes(b[o..o + 4].try_into().unwrap());
        BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: b[16] as i8,
            crc: u32::from_be_bytes(b[17..21].try_into().unwrap()),
            attributes: Attributes(u16::from_be_bytes([b[21], b[22]])),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16::from_be_bytes([b[51], b[52]]),
            base_sequence: i32_at(53),
            records_count: i32_at(57),
        }
    }

    /// `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Size of the whole batch in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// The delete horizon (set by compaction), stored in `baseTimestamp` when attribute bit 6 is set.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.attributes.has_delete_horizon().then_some(self.base_timestamp)
    }

    /// Kafka's `DefaultRecordBatch.lastSequence`: `baseSequence + lastOffsetDelta`, wrapping at
    /// `i32::MAX`, or -1 without a sequence.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == -1 {
            return -1;
        }
        let delta = self.last_offset_delta;
        if self.base_sequence > i32::MAX - delta {
            delta - (i32::MAX - self.base_sequence) - 1
        } else {
            self.base_sequence + delta
        }
    }
}

/// A parsed v2 batch borrowing its bytes.
#[derive(Clone, Debug)]
pub struct RecordBatch<'a> {
    /// Byte position of the batch in its file (or buffer).
    pub position: u64,
    pub header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Parses a batch from exactly its bytes (`batch_length + 12` of them). Checks the framing,
    /// not the CRC: call [`RecordBatch::verify_crc`] for that.
    pub fn parse(bytes: &'a [u8], position: u64) -> Result<RecordBatch<'a>, ReadError> {
        let err = |kind| ReadError::new(position, kind);
        let head: &[u8; BATCH_HEADER_LEN] = bytes
            .get(..BATCH_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                err(ReadErrorKind::Truncated {
                    what: "record batch header",
                    needed: BATCH_HEADER_LEN as u64,
                    available: bytes.len() as u64,
                })
            })?;
        let header = BatchHeader::read(head);
        if header.magic != 2 {
            return Err(err(ReadErrorKind::UnsupportedMagic(header.magic)));
        }
        let length = i64::from(header.batch_length);
        if length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(err(ReadErrorKind::InvalidLength { what: "record batch", length }));
        }
        if header.size_in_bytes() != bytes.len() {
            return Err(err(ReadErrorKind::Truncated {
                what: "record batch",
                needed: header.size_in_bytes() as u64,
                available: bytes.len() as u64,
            }));
        }
        if header.attributes.compression().is_none() {
            return Err(err(ReadErrorKind::UnknownCompression(header.attributes.compression_id())));
        }
        if header.records_count < 0 {
            return Err(err(ReadErrorKind::Malformed(format!(
                "negative record count {}",
                header.records_count
            ))));
        }
        Ok(RecordBatch { position, header, bytes })
    }

    /// The batch's bytes, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records section as stored (compressed unless the codec is `none`).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_LEN..]
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Compression {
        self.header.attributes.compression().expect("checked in parse")
    }

    /// CRC-32C of the bytes the stored `crc` covers.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_COVERAGE_START..])
    }

    /// Fails with [`ReadErrorKind::ChecksumMismatch`] when the stored CRC is wrong.
    pub fn verify_crc(&self) -> Result<(), ReadError> {
        let computed = self.computed_crc();
        if computed != self.header.crc {
            return Err(ReadError::new(
                self.position,
                ReadErrorKind::ChecksumMismatch { algorithm: "CRC-32C", stored: self.header.crc, computed },
            ));
        }
        Ok(())
    }

    /// The records, decompressing into `scratch` when needed (bounded by
    /// [`DEFAULT_MAX_UNCOMPRESSED`]). Uncompressed records borrow the batch's bytes.
    pub fn records<'s>(&'s self, scratch: &'s mut Vec<u8>) -> Result<Records<'s>, ReadError> {
        self.records_with_limit(scratch, DEFAULT_MAX_UNCOMPRESSED)
    }

    /// [`RecordBatch::records`] with an explicit bound on the decompressed size.
    pub fn records_with_limit<'s>(&'s self, scratch: &'s mut Vec<u8>, limit: usize) -> Result<Records<'s>, ReadError> {
        let data: &'s [u8] = match self.compression() {
            Compression::None => self.payload(),
            codec => {
                compression::decompress(codec, self.payload(), scratch, limit)
                    .map_err(|source| ReadError::new(self.position, ReadErrorKind::Decompression { codec, source }))?;
                let scratch: &'s Vec<u8> = scratch;
                scratch.as_slice()
            }
        };
        Ok(Records::new(data, self.header.records_count, self.position))
    }
}

/// Frames record bytes into v2 batches: header, optional compression, length and CRC-32C.
/// Holds a reusable compression buffer; one encoder per thread.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    levels: CompressionLevels,
    compressed: Vec<u8>,
}

impl BatchEncoder {
    pub fn new(levels: CompressionLevels) -> BatchEncoder {
        BatchEncoder { levels, compressed: Vec::new() }
    }

    /// Appends one batch to `out`. `records` are the uncompressed record bytes (see
    /// [`crate::record::record::write_record`]); `header` gives every fact except `batch_length`
    /// and `crc` (computed) and the codec bits of `attributes` (set from `compression`).
    /// Returns the batch's size in bytes.
    pub fn encode(
        &mut self,
        header: &BatchHeader,
        compression: Compression,
        records: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        let payload: &[u8] = if compression == Compression::None {
            records
        } else {
            self.compressed.clear();
            compression::compress(compression, self.levels, records, &mut self.compressed)
                .map_err(|source| EncodeError::Compression { codec: compression, source })?;
            &self.compressed
        };
        let size = BATCH_HEADER_LEN + payload.len();
        let batch_length = i32::try_from(size - LOG_OVERHEAD)
            .map_err(|_| EncodeError::TooLarge { what: "record batch", size })?;
        let start = out.len();
        out.reserve(size);
        out.extend_from_slice(&header.base_offset.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]); // crc, filled below
        out.extend_from_slice(&header.attributes.with_compression(compression).0.to_be_bytes());
        out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
        out.extend_from_slice(&header.base_timestamp.to_be_bytes());
        out.extend_from_slice(&header.max_timestamp.to_be_bytes());
        out.extend_from_slice(&header.producer_id.to_be_bytes());
        out.extend_from_slice(&header.producer_epoch.to_be_bytes());
        out.extend_from_slice(&header.base_sequence.to_be_bytes());
        out.extend_from_slice(&header.records_count.to_be_bytes());
        out.extend_from_slice(payload);
        let crc = crc32c::crc32c(&out[start + CRC_COVERAGE_START..]);
        out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::record::{write_record, Header};
    use proptest::prelude::*;

    fn header(count: i32, attributes: u16) -> BatchHeader {
        BatchHeader {
            base_offset: 1000,
            batch_length: 0,
            partition_leader_epoch: 7,
            magic: 2,
            crc: 0,
            attributes: Attributes(attributes),
            last_offset_delta: count - 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_999,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
            records_count: count,
        }
    }

    proptest! {
        #[test]
        fn batch_roundtrip(
            values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)), 1..20),
            codec in 0u8..5,
            flags in 0u16..8,
        ) {
            let codec = Compression::from_id(codec).unwrap();
            let attributes = (flags & 1) << 3 | (flags & 2) << 3 | (flags & 4) << 4; // timestamp type, transactional, delete horizon
            let mut records = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let h = [Header { key: b"h", value: v.as_deref() }];
                write_record(&mut records, 0, i as i64, i as i32, Some(b"key"), v.as_deref(), h);
            }
            let h = header(values.len() as i32, attributes);
            let mut out = Vec::new();
            let size = BatchEncoder::default().encode(&h, codec, &records, &mut out).unwrap();
            prop_assert_eq!(size, out.len());
            let batch = RecordBatch::parse(&out, 0).unwrap();
            batch.verify_crc().unwrap();
            prop_assert_eq!(batch.compression(), codec);
            let got = &batch.header;
            prop_assert_eq!((got.base_offset, got.partition_leader_epoch, got.producer_id, got.producer_epoch, got.base_sequence),
                (1000, 7, 42, 3, 17));
            prop_assert_eq!(got.attributes.with_compression(Compression::None), Attributes(attributes));
            let mut scratch = Vec::new();
            let parsed: Vec<_> = batch.records(&mut scratch).unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(parsed.len(), values.len());
            for (r, v) in parsed.iter().zip(&values) {
                prop_assert_eq!(r.value, v.as_deref());
                prop_assert_eq!(r.headers.iter().next().unwrap().value, v.as_deref());
            }
        }
    }

    #[test]
    fn crc_mismatch_and_bad_framing_are_typed() {
        let mut records = Vec::new();
        write_record(&mut records, 0, 0, 0, None, Some(b"v"), []);
        let mut out = Vec::new();
        BatchEncoder::default().encode(&header(1, 0), Compression::None, &records, &mut out).unwrap();
        let mut bad = out.clone();
        *bad.last_mut().unwrap() ^= 0xff;
        let e = RecordBatch::parse(&bad, 77).unwrap().verify_crc().unwrap_err();
        assert_eq!(e.position, 77);
        assert!(matches!(e.kind, ReadErrorKind::ChecksumMismatch { algorithm: "CRC-32C", .. }));
        assert!(matches!(RecordBatch::parse(&out[..40], 0).unwrap_err().kind, ReadErrorKind::Truncated { .. }));
        let mut codec7 = out.clone();
        codec7[22] |= 0x07;
        assert!(matches!(RecordBatch::parse(&codec7, 0).unwrap_err().kind, ReadErrorKind::UnknownCompression(7)));
        // The partition leader epoch is outside the CRC: changing it keeps the batch valid.
        let mut epoch = out.clone();
        epoch[12..16].copy_from_slice(&9i32.to_be_bytes());
        RecordBatch::parse(&epoch, 0).unwrap().verify_crc().unwrap();
    }
}
