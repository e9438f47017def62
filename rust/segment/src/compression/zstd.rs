//! zstd frames (magic v2 batches only), as `zstd-jni` writes them: frames may omit the content
//! size, so decoding streams.

use std::io;

pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let decoder = ::zstd::stream::read::Decoder::with_buffer(input)?;
    super::read_bounded(decoder, out, limit)
}

pub(super) fn compress(input: &[u8], out: &mut Vec<u8>, level: i32) -> io::Result<()> {
    let compressed = ::zstd::bulk::compress(input, level)?;
    out.extend_from_slice(&compressed);
    Ok(())
}
