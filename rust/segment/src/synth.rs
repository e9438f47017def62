//! Synthetic segments for benchmarks and tests: realistic records (JSON-like values of about
//! 1 KiB with repeated field names and vocabularies, or values from a caller's generator such as
//! Avro in the Confluent wire format; 16-byte keys, a few headers) framed into v2 batches with
//! any codec.
//!
//! Generation is fast enough for 1 GiB files: a set of distinct batches is encoded once and then
//! repeated with fresh base offsets. The base offset is outside the CRC-32C's coverage, so every
//! repeated batch stays valid, and a reader does exactly the work a real segment would cost.

use std::io::{self, Write};

use crate::compression::{Compression, CompressionLevels};
use crate::record::batch::{Attributes, BatchEncoder, BatchHeader};
use crate::record::record::{write_record, Header};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub compression: Compression,
    /// Records per batch.
    pub records_per_batch: usize,
    /// Distinct batches before repeating.
    pub distinct_batches: usize,
    /// Approximate value size in bytes.
    pub value_size: usize,
    /// Milliseconds between the base timestamps of consecutive distinct batches (batches repeat,
    /// so their timestamps cycle over `distinct_batches` of these steps).
    pub batch_interval_ms: i64,
    /// Batches with `LogAppendTime` (the broker's time): record timestamp deltas are not the
    /// batch's, as when a broker stamps a producer's batch.
    pub log_append_time: bool,
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            compression: Compression::None,
            records_per_batch: 64,
            distinct_batches: 256,
            value_size: 1024,
            batch_interval_ms: 1000,
            log_append_time: false,
            seed: 42,
        }
    }
}

/// A small deterministic PRNG (xorshift64*), so the same spec gives the same bytes everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "checkout", "payment", "refund", "login", "logout", "search", "view", "cart", "shipping", "invoice", "mobile",
    "desktop", "tablet", "berlin", "paris", "tokyo", "lima", "oslo", "accepted", "declined", "pending", "premium",
    "basic", "trial", "en-US", "de-DE", "fr-FR", "ja-JP",
];

/// A JSON-like event of about `size` bytes.
pub fn json_value(rng: &mut Rng, size: usize, out: &mut Vec<u8>) {
    out.clear();
    let start = out.len();
    let _ = write!(
        out,
        "{{\"event_id\":\"{:016x}\",\"ts\":{},\"user\":{{\"id\":{},\"segment\":\"{}\",\"locale\":\"{}\"}},\"items\":[",
        rng.next_u64(),
        1_700_000_000_000u64 + rng.below(10_000_000),
        rng.below(1_000_000),
        WORDS[rng.below(WORDS.len() as u64) as usize],
        WORDS[24 + rng.below(4) as usize],
    );
    let mut i = 0;
    while out.len() - start + 120 < size {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            "{{\"sku\":\"SKU-{:05}\",\"qty\":{},\"price\":{}.{:02},\"tag\":\"{}\"}}",
            rng.below(5000),
            1 + rng.below(5),
            rng.below(500),
            rng.below(100),
            WORDS[rng.below(WORDS.len() as u64) as usize]
        );
        i += 1;
    }
    let _ = write!(out, "],\"status\":\"{}\"}}", WORDS[18 + rng.below(3) as usize]);
}

/// Writes one value of about `size` bytes into the (cleared) buffer, drawing from the generator.
pub type ValueFn<'a> = dyn FnMut(&mut Rng, usize, &mut Vec<u8>) + 'a;

/// Encodes the distinct batches of `spec`, each with base offset 0 (rewritten when written out).
/// Returns the batch bytes and, per batch, (record count, uncompressed record bytes).
pub fn distinct_batches(spec: &SynthSpec) -> (Vec<Vec<u8>>, Vec<(usize, usize)>) {
    distinct_batches_with(spec, &mut json_value)
}

/// [`distinct_batches`] with values from `value` (e.g. Avro in the Confluent wire format)
/// instead of JSON-like text; keys, headers and timestamps as there.
pub fn distinct_batches_with(spec: &SynthSpec, value_fn: &mut ValueFn<'_>) -> (Vec<Vec<u8>>, Vec<(usize, usize)>) {
    let mut rng = Rng::new(spec.seed);
    let mut encoder = BatchEncoder::new(CompressionLevels::default());
    let mut batches = Vec::with_capacity(spec.distinct_batches);
    let mut facts = Vec::with_capacity(spec.distinct_batches);
    let mut records = Vec::new();
    let mut value = Vec::new();
    for b in 0..spec.distinct_batches {
        records.clear();
        let base_ts = 1_700_000_000_000i64 + (b as i64) * spec.batch_interval_ms;
        for i in 0..spec.records_per_batch {
            value.clear();
            value_fn(&mut rng, spec.value_size, &mut value);
            let key = format!("{:016x}", rng.next_u64() % 100_000);
            let trace = format!("{:032x}", rng.next_u64());
            let headers = [
                Header { key: b"trace-id", value: Some(trace.as_bytes()) },
                Header { key: b"source", value: Some(WORDS[rng.below(3) as usize].as_bytes()) },
            ];
            write_record(&mut records, 0, i as i64 * 3, i as i32, Some(key.as_bytes()), Some(&value), headers);
        }
        let n = spec.records_per_batch as i32;
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: Attributes(if spec.log_append_time { 0x08 } else { 0 }),
            last_offset_delta: n - 1,
            base_timestamp: base_ts,
            max_timestamp: base_ts + (n as i64 - 1) * 3,
            producer_id: 1000,
            producer_epoch: 0,
            base_sequence: (b * spec.records_per_batch) as i32,
            records_count: n,
        };
        let mut out = Vec::new();
        encoder.encode(&header, spec.compression, &records, &mut out).expect("synthetic batch encodes");
        facts.push((spec.records_per_batch, records.len()));
        batches.push(out);
    }
    (batches, facts)
}

/// What [`write_segment`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynthStats {
    pub segment_bytes: u64,
    pub batches: u64,
    pub records: u64,
    /// Bytes of the uncompressed record sections.
    pub record_bytes: u64,
}

/// Writes at least `target_bytes` of segment to `out`: the distinct batches of `spec`, repeated,
/// with consecutive offsets starting at `base_offset`.
pub fn write_segment(spec: &SynthSpec, base_offset: i64, target_bytes: u64, out: &mut impl Write) -> io::Result<SynthStats> {
    write_segment_with(spec, base_offset, target_bytes, out, &mut json_value)
}

/// [`write_segment`] with values from `value_fn` (see [`distinct_batches_with`]).
pub fn write_segment_with(
    spec: &SynthSpec,
    base_offset: i64,
    target_bytes: u64,
    out: &mut impl Write,
    value_fn: &mut ValueFn<'_>,
) -> io::Result<SynthStats> {
    let (batches, facts) = distinct_batches_with(spec, value_fn);
    let mut stats = SynthStats::default();
    let mut offset = base_offset;
    let mut i = 0;
    while stats.segment_bytes < target_bytes {
        let k = i % batches.len();
        let batch = &batches[k];
        out.write_all(&offset.to_be_bytes())?;
        out.write_all(&batch[8..])?;
        offset += facts[k].0 as i64;
        stats.segment_bytes += batch.len() as u64;
        stats.batches += 1;
        stats.records += facts[k].0 as u64;
        stats.record_bytes += facts[k].1 as u64;
        i += 1;
    }
    Ok(stats)
}
