//! snappy as Kafka's Java client writes it: the xerial `snappy-java` stream framing, not the
//! snappy frame format. A stream starts with the 8-byte magic `\x82SNAPPY\0`, a 4-byte version and
//! a 4-byte minimum compatible version, then blocks of `[int32 big-endian length][raw snappy]`.
//! Input without the magic is read as one raw snappy block, as `SnappyInputStream` does (some
//! non-Java clients wrote that). The writer uses 32 KiB blocks like `SnappyOutputStream`.

use std::io;

use super::{check_limit, invalid};

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
const BLOCK_SIZE: usize = 32 * 1024;

pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    if input.len() >= XERIAL_HEADER_LEN && input[..8] == XERIAL_MAGIC {
        let mut pos = XERIAL_HEADER_LEN;
        while pos < input.len() {
            let len_bytes = input
                .get(pos..pos + 4)
                .ok_or_else(|| invalid("snappy: truncated block length"))?;
            let len = u32::from_be_bytes(len_bytes.try_into().unwrap()) as usize;
            pos += 4;
            let block = input
                .get(pos..pos.saturating_add(len))
                .ok_or_else(|| invalid("snappy: truncated block"))?;
            pos += len;
            raw_block(block, out, limit)?;
        }
        Ok(())
    } else {
        raw_block(input, out, limit)
    }
}

fn raw_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let len = snap::raw::decompress_len(block).map_err(|e| invalid(format!("snappy: {e}")))?;
    check_limit(out.len().saturating_add(len), limit)?;
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| invalid(format!("snappy: {e}")))?;
    out.truncate(start + written);
    Ok(())
}

pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(BLOCK_SIZE) {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
        let written = encoder
            .compress(chunk, &mut out[start..])
            .map_err(|e| invalid(format!("snappy: {e}")))?;
        out.truncate(start + written);
        out[len_at..len_at + 4].copy_from_slice(&(written as u32).to_be_bytes());
    }
    Ok(())
}
