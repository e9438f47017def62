//! The five compression codecs of Kafka record batches, one module each.
//!
//! Decompression is bounded: a payload that would expand past the caller's limit fails with an
//! error instead of allocating without end (a forged batch must not take the broker's memory).
//! Compression is deterministic for a given crate version and level: the same input always gives
//! the same bytes, which the served layout (see DESIGN.md, invariant 2) relies on.

mod gzip;
mod lz4;
mod snappy;
mod zstd;

use std::fmt;
use std::io;

/// A record-batch compression codec, with Kafka's attribute ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec for attribute bits 0–2, if known.
    pub fn from_id(id: u8) -> Option<Compression> {
        Self::ALL.get(usize::from(id)).copied()
    }

    /// Kafka's id of the codec (attribute bits 0–2).
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Kafka's name for the codec, as in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses a `compression.type` name.
    pub fn from_name(name: &str) -> Option<Compression> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Levels used when compressing. Defaults follow Kafka's producer defaults where the codec has
/// levels (gzip 6 as `Deflater.DEFAULT_COMPRESSION`, zstd 3); lz4 and snappy have none here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionLevels {
    pub gzip: u32,
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels { gzip: 6, zstd: 3 }
    }
}

/// Decompresses `input` into `out` (cleared first), failing when the output would exceed `limit`
/// bytes.
pub fn decompress(codec: Compression, input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    out.clear();
    match codec {
        Compression::None => {
            check_limit(input.len(), limit)?;
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::decompress(input, out, limit),
        Compression::Snappy => snappy::decompress(input, out, limit),
        Compression::Lz4 => lz4::decompress(input, out, limit),
        Compression::Zstd => zstd::decompress(input, out, limit),
    }
}

/// Compresses `input`, appending to `out`, in the stream format Kafka's Java client writes for
/// the codec (xerial framing for snappy, an LZ4 frame with 64 KiB independent blocks for lz4).
pub fn compress(codec: Compression, levels: CompressionLevels, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::compress(input, out, levels.gzip),
        Compression::Snappy => snappy::compress(input, out),
        Compression::Lz4 => lz4::compress(input, out),
        Compression::Zstd => zstd::compress(input, out, levels.zstd),
    }
}

pub(crate) fn check_limit(size: usize, limit: usize) -> io::Result<()> {
    if size > limit {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decompressed size exceeds the limit of {limit} bytes"),
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads `reader` to its end into `out`, failing past `limit` bytes.
pub(crate) fn read_bounded(reader: impl io::Read, out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    use io::Read;
    let read = reader.take((limit as u64).saturating_add(1)).read_to_end(out)?;
    check_limit(read, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..200_000u32 {
            v.extend_from_slice(format!("{{\"id\":{i},\"name\":\"user-{}\"}}", i % 97).as_bytes());
        }
        v
    }

    #[test]
    fn every_codec_roundtrips_large_input() {
        let input = sample();
        for codec in Compression::ALL {
            let mut compressed = Vec::new();
            compress(codec, CompressionLevels::default(), &input, &mut compressed).unwrap();
            if codec != Compression::None {
                assert!(compressed.len() < input.len() / 2, "{codec} should compress");
            }
            let mut out = Vec::new();
            decompress(codec, &compressed, &mut out, usize::MAX).unwrap();
            assert_eq!(out, input, "{codec}");
        }
    }

    #[test]
    fn decompression_respects_limit() {
        let input = vec![7u8; 1 << 20];
        for codec in Compression::ALL {
            let mut compressed = Vec::new();
            compress(codec, CompressionLevels::default(), &input, &mut compressed).unwrap();
            let mut out = Vec::new();
            assert!(decompress(codec, &compressed, &mut out, 1000).is_err(), "{codec}");
        }
    }

    #[test]
    fn compression_is_deterministic() {
        let input = sample();
        for codec in Compression::ALL {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            compress(codec, CompressionLevels::default(), &input, &mut a).unwrap();
            compress(codec, CompressionLevels::default(), &input, &mut b).unwrap();
            assert_eq!(a, b, "{codec}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(input in proptest::collection::vec(any::<u8>(), 0..5000), id in 0u8..5) {
            let codec = Compression::from_id(id).unwrap();
            let mut compressed = Vec::new();
            compress(codec, CompressionLevels::default(), &input, &mut compressed).unwrap();
            let mut out = Vec::new();
            decompress(codec, &compressed, &mut out, usize::MAX).unwrap();
            prop_assert_eq!(out, input);
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300), id in 0u8..5) {
            let mut out = Vec::new();
            let _ = decompress(Compression::from_id(id).unwrap(), &input, &mut out, 1 << 20);
        }
    }
}
