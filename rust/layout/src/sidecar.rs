//! The segment sidecar: everything Kafka needs back that is not a record (DESIGN.md invariant 7).
//!
//! One object per tiered segment, next to its data files. It holds the segment's identity, the
//! data files and their offset ranges, one entry per batch (every header fact, its position and
//! size in the original segment and in the served layout), record facts that the rows cannot
//! hold ([`RecordException`]), the bytes of batches served verbatim (control batches and legacy
//! v0/v1 entries), and the original side files: offset, time and transaction indexes, producer
//! snapshot, leader-epoch checkpoint.
//!
//! ## Format (version 1)
//! ```text
//! "CALVSIDE" | u16 format version | u16 layout version | u16 section count
//! | per section: u16 id, u64 offset, u64 length, u32 CRC-32C of the section
//! | sections...
//! ```
//! All integers little-endian; strings and byte strings are u32 length + bytes. Sections are
//! independent, each with its own checksum, so a reader can fetch only the part it needs (for
//! example the producer snapshot) with one range read after the directory. Unknown section ids are
//! skipped, so later versions can add sections; a higher format version is refused.
//!
//! Record timestamp deltas the rows cannot give back (LogAppendTime batches: the row holds the
//! append time, the batch the producer's deltas) are kept compactly, since a LogAppendTime
//! segment has one for every record: runs of consecutive offsets (at most
//! [`TimestampDeltas::MAX_RUN`] records), each record's delta as a zigzag varint of its difference
//! from the previous record's — about a byte per record where one entry per record took 17 on
//! disk and 40 in memory. In the exceptions section a run is kind 4: `i64 first offset, u32
//! count, bytes packed`; kind 2 (one record's delta, `i64 delta`) is what earlier versions wrote,
//! still read.
//!
//! ## Format version 2: value schemas
//! A sidecar of a segment copied in a schema mode has an 11th section, `value schemas`:
//! `u8 framing (1 prefixed, 2 plain) | u32 count | per schema: i32 id, string text` (ids
//! ascending): the writer schemas its rows' values in columns were decoded with, so serving
//! re-encodes them without a Schema Registry. Such a sidecar is written as format version 2, so
//! that a Calving that cannot re-encode refuses it instead of serving null values; a sidecar
//! without the section is written exactly as before (format version 1, ten sections).
//!
//! ## Format version 3: key schemas
//! A segment copied with a key schema mode (`key.mode`) adds a 12th section, `key schemas`, in the
//! same form as `value schemas`, for the keys in columns; it is written as format version 3 (a
//! Calving that only knows version 2 would otherwise serve null keys), with or without the value
//! schemas section.

use calving_segment::record::batch::{Attributes, BatchHeader};
use calving_segment::Compression;

use crate::error::LayoutError;
use crate::typed::{Framing, WriterSchemas};

pub const MAGIC: &[u8; 8] = b"CALVSIDE";
/// The highest format version this Calving reads (and writes, for sidecars with key schemas).
pub const FORMAT_VERSION: u16 = 3;
/// The format version of sidecars with value schemas and no key schemas.
pub const FORMAT_VERSION_VALUES: u16 = 2;
/// The format version of sidecars without value schemas.
pub const FORMAT_VERSION_RAW: u16 = 1;

/// Section ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum SectionId {
    Segment = 1,
    Files = 2,
    Batches = 3,
    Exceptions = 4,
    Verbatim = 5,
    OffsetIndex = 6,
    TimeIndex = 7,
    TxnIndex = 8,
    ProducerSnapshot = 9,
    LeaderEpoch = 10,
    /// Format version 2: the writer schemas of values in columns.
    ValueSchemas = 11,
    /// Format version 3: the writer schemas of keys in columns.
    KeySchemas = 12,
}

impl SectionId {
    fn name(self) -> &'static str {
        match self {
            SectionId::Segment => "segment",
            SectionId::Files => "files",
            SectionId::Batches => "batches",
            SectionId::Exceptions => "exceptions",
            SectionId::Verbatim => "verbatim batches",
            SectionId::OffsetIndex => "offset index",
            SectionId::TimeIndex => "time index",
            SectionId::TxnIndex => "transaction index",
            SectionId::ProducerSnapshot => "producer snapshot",
            SectionId::LeaderEpoch => "leader-epoch checkpoint",
            SectionId::ValueSchemas => "value schemas",
            SectionId::KeySchemas => "key schemas",
        }
    }

    const ALL: [SectionId; 10] = [
        SectionId::Segment,
        SectionId::Files,
        SectionId::Batches,
        SectionId::Exceptions,
        SectionId::Verbatim,
        SectionId::OffsetIndex,
        SectionId::TimeIndex,
        SectionId::TxnIndex,
        SectionId::ProducerSnapshot,
        SectionId::LeaderEpoch,
    ];
}

/// Which segment this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIdentity {
    pub topic: String,
    /// Kafka's topic id (a UUID).
    pub topic_id: [u8; 16],
    pub partition: i32,
    /// The `RemoteLogSegmentId`'s UUID.
    pub segment_id: [u8; 16],
    pub start_offset: i64,
    pub end_offset: i64,
    /// Size of the original `.log` file.
    pub segment_size: u64,
    pub max_timestamp_ms: i64,
}

/// A data file holding rows of the segment, each file sorted by offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFileRef {
    pub location: String,
    pub file_size: u64,
    /// Rows of this segment in the file.
    pub row_count: u64,
    pub min_offset: i64,
    pub max_offset: i64,
}

/// How a batch is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// Records from the table's rows, re-framed with the batch's facts.
    Rows,
    /// Bytes kept in the sidecar (control batches, legacy v0/v1 entries).
    Verbatim,
}

/// One batch of the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchEntry {
    pub kind: BatchKind,
    /// Every header fact; `batch_length` and `crc` are the original's.
    pub header: BatchHeader,
    pub original_position: u64,
    pub original_size: u32,
    /// Codec of the served batch ([`crate::served`] decides it).
    pub served_codec: Compression,
    pub served_position: u64,
    pub served_size: u32,
    /// For [`BatchKind::Verbatim`]: where its bytes are in the verbatim section.
    pub verbatim_offset: u64,
}

impl BatchEntry {
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }
}

/// A record fact the rows cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordException {
    /// Record attributes other than 0 (Kafka writes 0; the byte is unused).
    Attributes { offset: i64, attributes: i8 },
    /// A header key that is not UTF-8 (the row holds it lossily).
    HeaderKey { offset: i64, index: u32, key: Vec<u8> },
}

impl RecordException {
    pub fn offset(&self) -> i64 {
        match self {
            RecordException::Attributes { offset, .. } | RecordException::HeaderKey { offset, .. } => *offset,
        }
    }
}

/// The stored timestamp deltas of records whose row's timestamp does not give theirs back
/// (LogAppendTime batches, timestamps outside what a microsecond `timestamptz` holds), compact;
/// see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimestampDeltas {
    /// Per run of consecutive offsets: first offset, record count, end of its bytes in `packed`.
    runs: Vec<(i64, u32, usize)>,
    packed: Vec<u8>,
    /// The last record pushed: (offset, delta).
    last: Option<(i64, i64)>,
}

impl TimestampDeltas {
    /// About the bytes these deltas hold in memory.
    pub fn memory_size(&self) -> usize {
        self.runs.len() * std::mem::size_of::<(i64, u32, usize)>() + self.packed.len()
    }

    /// Records per run at most, so serving a batch decodes little more than its own records.
    pub const MAX_RUN: u32 = 1024;

    /// Adds a record's delta; offsets must ascend.
    pub fn push(&mut self, offset: i64, delta: i64) {
        let continues = matches!((self.last, self.runs.last()), (Some((o, _)), Some(&(_, n, _))) if offset == o + 1 && n < Self::MAX_RUN);
        let diff = match (continues, self.last) {
            (true, Some((_, previous))) => delta.wrapping_sub(previous),
            _ => {
                self.runs.push((offset, 0, self.packed.len()));
                delta
            }
        };
        put_varint(&mut self.packed, ((diff << 1) ^ (diff >> 63)) as u64);
        let run = self.runs.last_mut().expect("a run was started");
        run.1 += 1;
        run.2 = self.packed.len();
        self.last = Some((offset, delta));
    }

    /// Records with a stored delta.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.1 as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// (offset, delta) of the records in `first..=last` that have one, ascending.
    pub fn in_range(&self, first: i64, last: i64) -> Result<Vec<(i64, i64)>, LayoutError> {
        let mut out = Vec::new();
        let from = self.runs.partition_point(|&(start, n, _)| start + i64::from(n) <= first);
        for (i, &(start, n, end)) in self.runs.iter().enumerate().skip(from) {
            if start > last {
                break;
            }
            let begin = if i == 0 { 0 } else { self.runs[i - 1].2 };
            let mut r = R { b: &self.packed[begin..end], pos: 0, section: "exceptions" };
            decode_run(&mut r, start, n, |offset, delta| {
                if offset >= first && offset <= last {
                    out.push((offset, delta));
                }
            })?;
        }
        Ok(out)
    }

    fn encode(&self, w: &mut W) {
        let mut begin = 0;
        for &(start, n, end) in &self.runs {
            w.u8(4);
            w.i64(start);
            w.u32(n);
            w.bytes(&self.packed[begin..end]);
            begin = end;
        }
    }

    /// Appends a decoded run (`packed` as [`Self::encode`] wrote it).
    fn push_run(&mut self, start: i64, n: u32, packed: &[u8]) -> Result<(), LayoutError> {
        let mut r = R { b: packed, pos: 0, section: "exceptions" };
        decode_run(&mut r, start, n, |offset, delta| self.push(offset, delta))?;
        r.end()
    }
}

/// Reads a run of `n` packed deltas from `r` (see [`TimestampDeltas::push`]), giving each
/// record's offset (from `start`) and delta to `f`.
fn decode_run(r: &mut R<'_>, start: i64, n: u32, mut f: impl FnMut(i64, i64)) -> Result<(), LayoutError> {
    let mut delta = 0i64;
    for k in 0..i64::from(n) {
        let z = r.varint()?;
        let diff = ((z >> 1) as i64) ^ -((z & 1) as i64);
        delta = if k == 0 { diff } else { delta.wrapping_add(diff) };
        f(start + k, delta);
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The whole sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sidecar {
    /// The served layout its positions follow ([`crate::served::Layout`]).
    pub layout_version: u16,
    pub segment: SegmentIdentity,
    pub files: Vec<DataFileRef>,
    pub batches: Vec<BatchEntry>,
    /// Sorted by offset.
    pub exceptions: Vec<RecordException>,
    pub timestamp_deltas: TimestampDeltas,
    pub verbatim: Vec<u8>,
    pub offset_index: Vec<u8>,
    pub time_index: Vec<u8>,
    /// `None` when the segment had no transaction index.
    pub txn_index: Option<Vec<u8>>,
    pub producer_snapshot: Vec<u8>,
    pub leader_epoch: Vec<u8>,
    /// Schema modes: the writer schemas of the values in columns (format version 2).
    pub value_schemas: Option<WriterSchemas>,
    /// Key schema modes: the writer schemas of the keys in columns (format version 3).
    pub key_schemas: Option<WriterSchemas>,
}

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }
    fn i32(&mut self, v: i32) {
        self.u32(v as u32);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).expect("sidecar strings are below 4 GiB"));
        self.0.extend_from_slice(b);
    }
}

struct R<'a> {
    b: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> R<'a> {
    fn err(&self, what: &str) -> LayoutError {
        LayoutError::Sidecar { section: self.section, reason: format!("{what} at byte {}", self.pos) }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], LayoutError> {
        let s = self.b.get(self.pos..self.pos.saturating_add(n)).ok_or_else(|| self.err("truncated"))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LayoutError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LayoutError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, LayoutError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, LayoutError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, LayoutError> {
        Ok(self.u64()? as i64)
    }
    fn i32(&mut self) -> Result<i32, LayoutError> {
        Ok(self.u32()? as i32)
    }
    fn bytes(&mut self) -> Result<&'a [u8], LayoutError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, LayoutError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    fn count(&mut self, min_item: usize) -> Result<usize, LayoutError> {
        let n = self.u32()? as usize;
        // A forged count cannot make us allocate more than the section could hold.
        if n.saturating_mul(min_item) > self.b.len() - self.pos {
            return Err(self.err("count larger than the section"));
        }
        Ok(n)
    }
    fn varint(&mut self) -> Result<u64, LayoutError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }
    fn end(&self) -> Result<(), LayoutError> {
        if self.pos != self.b.len() {
            return Err(self.err("trailing bytes"));
        }
        Ok(())
    }
}

const BATCH_LEN: usize = 1 + 8 + 4 + 4 + 1 + 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4 + 8 + 4 + 4 + 1 + 8 + 4 + 8;

impl Sidecar {
    /// The served layout its positions follow.
    pub fn layout(&self) -> Result<crate::served::Layout, LayoutError> {
        crate::served::Layout::of(self.layout_version)
    }

    /// About the bytes this sidecar holds in memory, parsed (what a cache of sidecars counts).
    pub fn memory_size(&self) -> usize {
        use std::mem::size_of;
        let schemas = |w: &Option<WriterSchemas>| w.as_ref().map_or(0, |w| w.schemas.values().map(|t| t.len() + 64).sum());
        size_of::<Sidecar>()
            + self.files.iter().map(|f| size_of::<DataFileRef>() + f.location.len()).sum::<usize>()
            + self.batches.len() * size_of::<BatchEntry>()
            + self
                .exceptions
                .iter()
                .map(|e| size_of::<RecordException>() + if let RecordException::HeaderKey { key, .. } = e { key.len() } else { 0 })
                .sum::<usize>()
            + self.timestamp_deltas.memory_size()
            + self.verbatim.len()
            + self.offset_index.len()
            + self.time_index.len()
            + self.txn_index.as_ref().map_or(0, Vec::len)
            + self.producer_snapshot.len()
            + self.leader_epoch.len()
            + schemas(&self.value_schemas)
            + schemas(&self.key_schemas)
    }

    fn section(&self, id: SectionId) -> Vec<u8> {
        let mut w = W::default();
        match id {
            SectionId::Segment => {
                let s = &self.segment;
                w.bytes(s.topic.as_bytes());
                w.0.extend_from_slice(&s.topic_id);
                w.i32(s.partition);
                w.0.extend_from_slice(&s.segment_id);
                w.i64(s.start_offset);
                w.i64(s.end_offset);
                w.u64(s.segment_size);
                w.i64(s.max_timestamp_ms);
            }
            SectionId::Files => {
                w.u32(self.files.len() as u32);
                for f in &self.files {
                    w.bytes(f.location.as_bytes());
                    w.u64(f.file_size);
                    w.u64(f.row_count);
                    w.i64(f.min_offset);
                    w.i64(f.max_offset);
                }
            }
            SectionId::Batches => {
                w.u32(self.batches.len() as u32);
                for b in &self.batches {
                    let h = &b.header;
                    w.u8(match b.kind {
                        BatchKind::Rows => 0,
                        BatchKind::Verbatim => 1,
                    });
                    w.i64(h.base_offset);
                    w.i32(h.batch_length);
                    w.i32(h.partition_leader_epoch);
                    w.u8(h.magic as u8);
                    w.u16(h.attributes.0);
                    w.i32(h.last_offset_delta);
                    w.i64(h.base_timestamp);
                    w.i64(h.max_timestamp);
                    w.i64(h.producer_id);
                    w.u16(h.producer_epoch as u16);
                    w.i32(h.base_sequence);
                    w.i32(h.records_count);
                    w.u64(b.original_position);
                    w.u32(b.original_size);
                    w.u32(h.crc);
                    w.u8(b.served_codec.id());
                    w.u64(b.served_position);
                    w.u32(b.served_size);
                    w.u64(b.verbatim_offset);
                }
            }
            SectionId::Exceptions => {
                w.u32((self.exceptions.len() + self.timestamp_deltas.runs.len()) as u32);
                for e in &self.exceptions {
                    match e {
                        RecordException::Attributes { offset, attributes } => {
                            w.u8(1);
                            w.i64(*offset);
                            w.u8(*attributes as u8);
                        }
                        RecordException::HeaderKey { offset, index, key } => {
                            w.u8(3);
                            w.i64(*offset);
                            w.u32(*index);
                            w.bytes(key);
                        }
                    }
                }
                self.timestamp_deltas.encode(&mut w);
            }
            SectionId::Verbatim => w.0.extend_from_slice(&self.verbatim),
            SectionId::OffsetIndex => w.0.extend_from_slice(&self.offset_index),
            SectionId::TimeIndex => w.0.extend_from_slice(&self.time_index),
            SectionId::TxnIndex => {
                if let Some(t) = &self.txn_index {
                    w.u8(1);
                    w.0.extend_from_slice(t);
                } else {
                    w.u8(0);
                }
            }
            SectionId::ProducerSnapshot => w.0.extend_from_slice(&self.producer_snapshot),
            SectionId::LeaderEpoch => w.0.extend_from_slice(&self.leader_epoch),
            SectionId::ValueSchemas | SectionId::KeySchemas => {
                let schemas = if id == SectionId::ValueSchemas { &self.value_schemas } else { &self.key_schemas };
                if let Some(v) = schemas {
                    w.u8(v.framing.id());
                    w.u32(v.schemas.len() as u32);
                    for (id, text) in &v.schemas {
                        w.i32(*id);
                        w.bytes(text.as_bytes());
                    }
                }
            }
        }
        w.0
    }

    /// Encodes the sidecar.
    pub fn encode(&self) -> Vec<u8> {
        let mut sections: Vec<(SectionId, Vec<u8>)> = SectionId::ALL.iter().map(|&id| (id, self.section(id))).collect();
        let mut version = FORMAT_VERSION_RAW;
        if self.value_schemas.is_some() {
            sections.push((SectionId::ValueSchemas, self.section(SectionId::ValueSchemas)));
            version = FORMAT_VERSION_VALUES;
        }
        if self.key_schemas.is_some() {
            sections.push((SectionId::KeySchemas, self.section(SectionId::KeySchemas)));
            version = FORMAT_VERSION;
        }
        let mut w = W::default();
        w.0.extend_from_slice(MAGIC);
        w.u16(version);
        w.u16(self.layout_version);
        w.u16(sections.len() as u16);
        let mut at = (w.0.len() + sections.len() * (2 + 8 + 8 + 4)) as u64;
        for (id, body) in &sections {
            w.u16(*id as u16);
            w.u64(at);
            w.u64(body.len() as u64);
            w.u32(crc32c::crc32c(body));
            at += body.len() as u64;
        }
        for (_, body) in sections {
            w.0.extend_from_slice(&body);
        }
        w.0
    }

    /// Decodes a whole sidecar, checking every section's checksum.
    pub fn decode(bytes: &[u8]) -> Result<Sidecar, LayoutError> {
        let dir = Directory::decode(bytes)?;
        let get = |id: SectionId| dir.section(bytes, id);
        let mut r = R { b: get(SectionId::Segment)?, pos: 0, section: "segment" };
        let uuid = |r: &mut R| -> Result<[u8; 16], LayoutError> { Ok(r.take(16)?.try_into().unwrap()) };
        let segment = SegmentIdentity {
            topic: r.string()?,
            topic_id: uuid(&mut r)?,
            partition: r.i32()?,
            segment_id: uuid(&mut r)?,
            start_offset: r.i64()?,
            end_offset: r.i64()?,
            segment_size: r.u64()?,
            max_timestamp_ms: r.i64()?,
        };
        r.end()?;
        let mut r = R { b: get(SectionId::Files)?, pos: 0, section: "files" };
        let n = r.count(36)?;
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            files.push(DataFileRef {
                location: r.string()?,
                file_size: r.u64()?,
                row_count: r.u64()?,
                min_offset: r.i64()?,
                max_offset: r.i64()?,
            });
        }
        r.end()?;
        let batches = decode_batches(get(SectionId::Batches)?)?;
        let mut r = R { b: get(SectionId::Exceptions)?, pos: 0, section: "exceptions" };
        let n = r.count(10)?;
        let mut exceptions = Vec::new();
        let mut timestamp_deltas = TimestampDeltas::default();
        for _ in 0..n {
            let kind = r.u8()?;
            let offset = r.i64()?;
            match kind {
                1 => exceptions.push(RecordException::Attributes { offset, attributes: r.u8()? as i8 }),
                2 => timestamp_deltas.push(offset, r.i64()?),
                3 => exceptions.push(RecordException::HeaderKey { offset, index: r.u32()?, key: r.bytes()?.to_vec() }),
                4 => {
                    let count = r.u32()?;
                    timestamp_deltas.push_run(offset, count, r.bytes()?)?;
                }
                _ => return Err(r.err("unknown record exception kind")),
            }
        }
        r.end()?;
        let txn = get(SectionId::TxnIndex)?;
        let txn_index = match txn.first() {
            Some(1) => Some(txn[1..].to_vec()),
            Some(0) if txn.len() == 1 => None,
            _ => return Err(LayoutError::Sidecar { section: "transaction index", reason: "bad presence flag".into() }),
        };
        let writer_schemas = |id: SectionId, since: u16| -> Result<Option<WriterSchemas>, LayoutError> {
            if dir.format_version < since || dir.range(id).is_err() {
                return Ok(None);
            }
            let mut r = R { b: get(id)?, pos: 0, section: id.name() };
            let framing = Framing::from_id(r.u8()?).ok_or_else(|| r.err("unknown framing"))?;
            let n = r.count(8)?;
            let mut schemas = std::collections::BTreeMap::new();
            for _ in 0..n {
                let id = r.i32()?;
                schemas.insert(id, r.string()?);
            }
            r.end()?;
            Ok(Some(WriterSchemas { framing, schemas }))
        };
        let value_schemas = writer_schemas(SectionId::ValueSchemas, FORMAT_VERSION_VALUES)?;
        let key_schemas = writer_schemas(SectionId::KeySchemas, FORMAT_VERSION)?;
        Ok(Sidecar {
            value_schemas,
            key_schemas,
            layout_version: dir.layout_version,
            segment,
            files,
            batches,
            exceptions,
            timestamp_deltas,
            verbatim: get(SectionId::Verbatim)?.to_vec(),
            offset_index: get(SectionId::OffsetIndex)?.to_vec(),
            time_index: get(SectionId::TimeIndex)?.to_vec(),
            txn_index,
            producer_snapshot: get(SectionId::ProducerSnapshot)?.to_vec(),
            leader_epoch: get(SectionId::LeaderEpoch)?.to_vec(),
        })
    }

    /// The exceptions of records with offsets in `first..=last`.
    pub fn exceptions_in(&self, first: i64, last: i64) -> &[RecordException] {
        let lo = self.exceptions.partition_point(|e| e.offset() < first);
        let hi = self.exceptions.partition_point(|e| e.offset() <= last);
        &self.exceptions[lo..hi]
    }

    /// The verbatim bytes of a [`BatchKind::Verbatim`] batch.
    pub fn verbatim_bytes(&self, b: &BatchEntry) -> Result<&[u8], LayoutError> {
        let start = b.verbatim_offset as usize;
        self.verbatim.get(start..start + b.served_size as usize).ok_or_else(|| LayoutError::Sidecar {
            section: "verbatim batches",
            reason: format!("batch at offset {} points outside the section", b.header.base_offset),
        })
    }
}

fn decode_batches(b: &[u8]) -> Result<Vec<BatchEntry>, LayoutError> {
    let mut r = R { b, pos: 0, section: "batches" };
    let n = r.count(BATCH_LEN)?;
    let mut batches = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => BatchKind::Rows,
            1 => BatchKind::Verbatim,
            _ => return Err(r.err("unknown batch kind")),
        };
        let base_offset = r.i64()?;
        let batch_length = r.i32()?;
        let partition_leader_epoch = r.i32()?;
        let magic = r.u8()? as i8;
        let attributes = Attributes(r.u16()?);
        let last_offset_delta = r.i32()?;
        let base_timestamp = r.i64()?;
        let max_timestamp = r.i64()?;
        let producer_id = r.i64()?;
        let producer_epoch = r.u16()? as i16;
        let base_sequence = r.i32()?;
        let records_count = r.i32()?;
        let original_position = r.u64()?;
        let original_size = r.u32()?;
        let crc = r.u32()?;
        let served_codec = Compression::from_id(r.u8()?).ok_or_else(|| r.err("unknown served codec"))?;
        batches.push(BatchEntry {
            kind,
            header: BatchHeader {
                base_offset,
                batch_length,
                partition_leader_epoch,
                magic,
                crc,
                attributes,
                last_offset_delta,
                base_timestamp,
                max_timestamp,
                producer_id,
                producer_epoch,
                base_sequence,
                records_count,
            },
            original_position,
            original_size,
            served_codec,
            served_position: r.u64()?,
            served_size: r.u32()?,
            verbatim_offset: r.u64()?,
        });
    }
    r.end()?;
    Ok(batches)
}

/// The sidecar's section directory: lets a reader fetch one section by range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    pub format_version: u16,
    pub layout_version: u16,
    /// (id, offset, length, crc) per section.
    pub sections: Vec<(u16, u64, u64, u32)>,
}

impl Directory {
    /// Bytes to read to decode the directory of a sidecar with `sections` sections.
    pub const fn len_for(sections: usize) -> usize {
        8 + 2 + 2 + 2 + sections * 22
    }

    /// Decodes the directory from the start of a sidecar.
    pub fn decode(bytes: &[u8]) -> Result<Directory, LayoutError> {
        let mut r = R { b: bytes, pos: 0, section: "directory" };
        if r.take(8)? != MAGIC {
            return Err(r.err("not a Calving sidecar (bad magic)"));
        }
        let format_version = r.u16()?;
        if format_version > FORMAT_VERSION {
            return Err(LayoutError::Sidecar {
                section: "directory",
                reason: format!("format version {format_version} is newer than this Calving reads ({FORMAT_VERSION})"),
            });
        }
        let layout_version = r.u16()?;
        crate::served::Layout::of(layout_version)?;
        let n = r.u16()? as usize;
        let mut sections = Vec::with_capacity(n);
        for _ in 0..n {
            sections.push((r.u16()?, r.u64()?, r.u64()?, r.u32()?));
        }
        Ok(Directory { format_version, layout_version, sections })
    }

    /// Byte range of a section in the sidecar.
    pub fn range(&self, id: SectionId) -> Result<(u64, u64, u32), LayoutError> {
        self.sections
            .iter()
            .find(|s| s.0 == id as u16)
            .map(|s| (s.1, s.2, s.3))
            .ok_or_else(|| LayoutError::Sidecar { section: id.name(), reason: "missing".into() })
    }

    /// A section's bytes from the whole sidecar, checksum verified.
    pub fn section<'a>(&self, bytes: &'a [u8], id: SectionId) -> Result<&'a [u8], LayoutError> {
        let (at, len, crc) = self.range(id)?;
        let body = usize::try_from(at)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(a, l)| bytes.get(a..a.checked_add(l)?))
            .ok_or_else(|| LayoutError::Sidecar { section: id.name(), reason: "truncated".into() })?;
        verify_section(id, body, crc)?;
        Ok(body)
    }
}

/// Checks a section read on its own (by range) against the directory's checksum.
pub fn verify_section(id: SectionId, body: &[u8], crc: u32) -> Result<(), LayoutError> {
    let computed = crc32c::crc32c(body);
    if computed != crc {
        return Err(LayoutError::Sidecar {
            section: id.name(),
            reason: format!("checksum mismatch: stored {crc:#010x}, computed {computed:#010x}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Sidecar {
        Sidecar {
            layout_version: 1,
            segment: SegmentIdentity {
                topic: "orders".into(),
                topic_id: [7; 16],
                partition: 3,
                segment_id: [9; 16],
                start_offset: 100,
                end_offset: 199,
                segment_size: 4096,
                max_timestamp_ms: 1_700_000_000_000,
            },
            files: vec![DataFileRef {
                location: "file:///w/kafka/orders/data/x.parquet".into(),
                file_size: 1234,
                row_count: 100,
                min_offset: 100,
                max_offset: 199,
            }],
            batches: vec![BatchEntry {
                kind: BatchKind::Rows,
                header: BatchHeader {
                    base_offset: 100,
                    batch_length: 300,
                    partition_leader_epoch: 2,
                    magic: 2,
                    crc: 0xdead_beef,
                    attributes: Attributes(0x13),
                    last_offset_delta: 99,
                    base_timestamp: 1,
                    max_timestamp: 2,
                    producer_id: 5,
                    producer_epoch: -1,
                    base_sequence: 0,
                    records_count: 100,
                },
                original_position: 0,
                original_size: 312,
                served_codec: Compression::Lz4,
                served_position: 0,
                served_size: 290,
                verbatim_offset: 0,
            }],
            exceptions: vec![
                RecordException::Attributes { offset: 101, attributes: 4 },
                RecordException::HeaderKey { offset: 150, index: 2, key: vec![0xff, 0xfe] },
            ],
            timestamp_deltas: {
                let mut t = TimestampDeltas::default();
                t.push(150, -7);
                t
            },
            verbatim: vec![1, 2, 3],
            offset_index: vec![0; 16],
            time_index: vec![1; 24],
            txn_index: None,
            producer_snapshot: vec![0, 1, 2],
            leader_epoch: b"0\n1\n2 100\n".to_vec(),
            value_schemas: None,
            key_schemas: None,
        }
    }

    #[test]
    fn roundtrip() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(Sidecar::decode(&bytes).unwrap(), s);
        let mut with_txn = s.clone();
        with_txn.txn_index = Some(vec![]);
        assert_eq!(Sidecar::decode(&with_txn.encode()).unwrap(), with_txn);
        assert_eq!(s.exceptions_in(150, 150).len(), 1);
        assert_eq!(s.timestamp_deltas.in_range(150, 150).unwrap(), vec![(150, -7)]);
        assert_eq!(s.exceptions_in(0, 100).len(), 0);
        // Without value schemas: format version 1, ten sections, as before.
        assert_eq!(&bytes[8..10], &1u16.to_le_bytes());
        let mut typed = s.clone();
        typed.value_schemas = Some(WriterSchemas {
            framing: Framing::Prefixed,
            schemas: [(3, r#""string""#.to_string()), (7, "{}".to_string())].into_iter().collect(),
        });
        let bytes = typed.encode();
        assert_eq!(&bytes[8..10], &2u16.to_le_bytes());
        assert_eq!(Sidecar::decode(&bytes).unwrap(), typed);
        // Key schemas: format version 3, with or without value schemas.
        let keys = WriterSchemas { framing: Framing::Plain, schemas: [(5, r#""long""#.to_string())].into_iter().collect() };
        for mut keyed in [typed.clone(), s.clone()] {
            keyed.key_schemas = Some(keys.clone());
            let bytes = keyed.encode();
            assert_eq!(&bytes[8..10], &3u16.to_le_bytes());
            assert_eq!(Sidecar::decode(&bytes).unwrap(), keyed);
        }
    }

    #[test]
    fn damage_is_detected_and_named() {
        let bytes = sample().encode();
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Sidecar::decode(&b).is_err(), "flip at {i} went unnoticed");
        }
        for cut in [0, 10, 40, bytes.len() - 1] {
            assert!(Sidecar::decode(&bytes[..cut]).is_err());
        }
        let mut newer = bytes.clone();
        newer[8] = 9;
        let e = Sidecar::decode(&newer).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn directory_allows_reading_one_section() {
        let bytes = sample().encode();
        let dir = Directory::decode(&bytes[..Directory::len_for(10)]).unwrap();
        let (at, len, crc) = dir.range(SectionId::LeaderEpoch).unwrap();
        let body = &bytes[at as usize..(at + len) as usize];
        verify_section(SectionId::LeaderEpoch, body, crc).unwrap();
        assert_eq!(body, b"0\n1\n2 100\n");
    }

    #[test]
    fn timestamp_deltas_pack_runs_and_read_back_any_range() {
        let mut t = TimestampDeltas::default();
        let mut expected = Vec::new();
        // Three batches' worth: a long run (split at MAX_RUN), a gap, extreme values.
        for o in 0..2500i64 {
            let d = (o % 7) * 3 - 5;
            t.push(o, d);
            expected.push((o, d));
        }
        for (o, d) in [(3000, i64::MIN), (3001, i64::MAX), (3002, 0), (4000, -1)] {
            t.push(o, d);
            expected.push((o, d));
        }
        assert_eq!(t.len(), expected.len());
        assert_eq!(t.runs.len(), 5, "{:?}", t.runs);
        assert!(t.packed.len() < 2 * expected.len(), "about a byte per record: {}", t.packed.len());
        assert_eq!(t.in_range(i64::MIN, i64::MAX).unwrap(), expected);
        let within = |a: i64, b: i64| expected.iter().copied().filter(|&(o, _)| o >= a && o <= b).collect::<Vec<_>>();
        for (a, b) in [(0, 0), (1000, 1100), (1023, 1024), (2499, 3000), (3001, 3999), (3500, 3600), (4000, 4000)] {
            assert_eq!(t.in_range(a, b).unwrap(), within(a, b), "{a}..={b}");
        }
        // Through the sidecar: runs and an earlier version's single deltas read back alike.
        let mut s = tests::sample();
        s.timestamp_deltas = t.clone();
        assert_eq!(Sidecar::decode(&s.encode()).unwrap().timestamp_deltas, t);
    }
}
