//! gzip (RFC 1952), as `java.util.zip.GZIPInputStream`/`GZIPOutputStream` read and write it.
//! Concatenated members are read, as Java does.

use std::io::{self, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    super::read_bounded(MultiGzDecoder::new(input), out, limit)
}

pub(super) fn compress(input: &[u8], out: &mut Vec<u8>, level: u32) -> io::Result<()> {
    let mut encoder = GzEncoder::new(out, flate2::Compression::new(level.min(9)));
    encoder.write_all(input)?;
    encoder.finish()?;
    Ok(())
}
