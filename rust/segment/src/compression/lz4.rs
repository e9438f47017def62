//! LZ4 frames (the LZ4 frame format, magic `0x184D2204`) as Kafka's `Lz4BlockOutputStream` writes
//! them: 64 KiB independent blocks, no block or content checksum, and a header checksum byte.
//!
//! Reading accepts any valid frame: linked blocks, block and content checksums (skipped: the batch
//! CRC32C already covers the bytes), content size. The header checksum is not verified, because
//! Kafka computed it wrongly for magic-0 messages (over the magic number too) and its own reader
//! ignores it there.

use std::io;

use super::{check_limit, invalid};

const MAGIC: u32 = 0x184D_2204;
const BLOCK_SIZE: usize = 64 * 1024;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_BLOCK_INDEPENDENCE: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_DICT_ID: u8 = 0b0000_0001;
const BD_64KB: u8 = 4 << 4;

pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> io::Result<&[u8]> {
        let s = input
            .get(*pos..pos.saturating_add(n))
            .ok_or_else(|| invalid("lz4: truncated frame"))?;
        *pos += n;
        Ok(s)
    };
    let magic = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap());
    if magic != MAGIC {
        return Err(invalid(format!("lz4: bad frame magic {magic:#010x}")));
    }
    let flg = take(&mut pos, 1)?[0];
    let bd = take(&mut pos, 1)?[0];
    if flg & 0b1100_0000 != FLG_VERSION_01 {
        return Err(invalid("lz4: unsupported frame version"));
    }
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(invalid("lz4: invalid block maximum size")),
    };
    if flg & FLG_CONTENT_SIZE != 0 {
        take(&mut pos, 8)?;
    }
    if flg & FLG_DICT_ID != 0 {
        take(&mut pos, 4)?;
    }
    take(&mut pos, 1)?; // header checksum, deliberately not verified (see module doc)
    let linked = flg & FLG_BLOCK_INDEPENDENCE == 0;
    loop {
        let word = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap());
        if word == 0 {
            break; // end mark
        }
        let uncompressed = word & 0x8000_0000 != 0;
        let len = (word & 0x7fff_ffff) as usize;
        if len > max_block {
            return Err(invalid("lz4: block larger than the frame's maximum"));
        }
        let block = take(&mut pos, len)?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            take(&mut pos, 4)?;
        }
        let start = out.len();
        if uncompressed {
            check_limit(start + len, limit)?;
            out.extend_from_slice(block);
            continue;
        }
        check_limit(start, limit)?;
        // Room for what this block can produce: an LZ4 block expands at most 255-fold (a match
        // length grows by 255 per byte), so a frame of tiny blocks never makes us zero-fill its
        // maximum block size (up to 4 MiB) per block.
        out.resize(start + max_block.min(len.saturating_mul(255).saturating_add(64)), 0);
        let result = if linked && start > 0 {
            let (dict_all, dest) = out.split_at_mut(start);
            let dict = &dict_all[start.saturating_sub(64 << 10)..];
            lz4_flex::block::decompress_into_with_dict(block, dest, dict)
        } else {
            lz4_flex::block::decompress_into(block, &mut out[start..])
        };
        let written = result.map_err(|e| invalid(format!("lz4: {e}")))?;
        out.truncate(start + written);
        check_limit(out.len(), limit)?;
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        take(&mut pos, 4)?;
    }
    Ok(())
}

pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let flg = FLG_VERSION_01 | FLG_BLOCK_INDEPENDENCE;
    let bd = BD_64KB;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(flg);
    out.push(bd);
    out.push((xxhash_rust::xxh32::xxh32(&[flg, bd], 0) >> 8) as u8);
    for chunk in input.chunks(BLOCK_SIZE) {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + lz4_flex::block::get_maximum_output_size(chunk.len()), 0);
        let written = lz4_flex::block::compress_into(chunk, &mut out[start..])
            .map_err(|e| invalid(format!("lz4: {e}")))?;
        let word = if written >= chunk.len() {
            out.truncate(start);
            out.extend_from_slice(chunk);
            chunk.len() as u32 | 0x8000_0000
        } else {
            out.truncate(start + written);
            written as u32
        };
        out[len_at..len_at + 4].copy_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder alone, pinned: served layout v1 serves compressed batches as this encoder's
    /// output, and brokers keep the positions and sizes it gave in their index caches for ever,
    /// so its bytes must never change (`lz4_flex` is pinned to an exact version for this). The
    /// hashes were taken from `lz4_flex` 0.13.1; a change here is a change of the served layout:
    /// never update them to make an upgrade pass.
    #[test]
    fn encoder_output_is_pinned() {
        let mut lcg = 0x2545_f491_u32;
        let mut noise = || {
            lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (lcg >> 24) as u8
        };
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{{\"id\":{i},\"kind\":\"order\"}}").into_bytes()).collect();
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("one byte", vec![7]),
            ("repeated", vec![b'a'; 150_000]),
            ("text", text),
            ("noise", (0..100_000).map(|_| noise()).collect()),
            ("mixed", (0..300_000u32).map(|i| if i % 7 == 0 { noise() } else { (i % 13) as u8 }).collect()),
        ];
        let got: Vec<(String, usize, u32)> = inputs
            .iter()
            .map(|(name, input)| {
                let mut out = Vec::new();
                compress(input, &mut out).unwrap();
                let mut back = Vec::new();
                decompress(&out, &mut back, usize::MAX).unwrap();
                assert_eq!(&back, input, "{name} round trip");
                (name.to_string(), out.len(), xxhash_rust::xxh32::xxh32(&out, 0))
            })
            .collect();
        let expected: Vec<(String, usize, u32)> = GOLDEN.iter().map(|&(n, l, h)| (n.to_string(), l, h)).collect();
        assert_eq!(got, expected, "the lz4 encoder's output changed: served layout v1 would change");
    }

    /// (input, frame length, xxh32 of the frame) from `lz4_flex` 0.13.1.
    const GOLDEN: [(&str, usize, u32); 6] = [
        ("empty", 11, 4266315151),
        ("one byte", 16, 2208599239),
        ("repeated", 645, 3835055287),
        ("text", 1034887, 550586620),
        ("noise", 100019, 4026974359),
        ("mixed", 154077, 3604593316),
    ];

    /// A frame declaring 4 MiB blocks made of thousands of 2-byte blocks (each one literal byte):
    /// decoding reserves room for what each block can produce, not 4 MiB per block.
    #[test]
    fn tiny_blocks_do_not_reserve_the_frame_maximum_each() {
        let flg = FLG_VERSION_01 | FLG_BLOCK_INDEPENDENCE;
        let bd = 7 << 4; // 4 MiB maximum block size
        let mut frame = MAGIC.to_le_bytes().to_vec();
        frame.extend_from_slice(&[flg, bd, (xxhash_rust::xxh32::xxh32(&[flg, bd], 0) >> 8) as u8]);
        let blocks = 20_000;
        for i in 0..blocks {
            frame.extend_from_slice(&2u32.to_le_bytes());
            frame.extend_from_slice(&[0x10, b'a' + (i % 26) as u8]); // token: 1 literal, no match
        }
        frame.extend_from_slice(&0u32.to_le_bytes());
        let mut out = Vec::new();
        decompress(&frame, &mut out, 1 << 30).unwrap();
        assert_eq!(out.len(), blocks as usize);
        assert_eq!(&out[..3], b"abc");
        assert!(out.capacity() < 1 << 20, "capacity {} for {} bytes: a 4 MiB zero-fill per block", out.capacity(), out.len());
    }

    #[test]
    fn full_blocks_still_decode() {
        let input: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut frame = Vec::new();
        compress(&input, &mut frame).unwrap();
        let mut out = Vec::new();
        decompress(&frame, &mut out, 1 << 30).unwrap();
        assert_eq!(out, input);
        // Highly compressible: blocks that expand far more than their compressed size.
        let zeros = vec![0u8; 1 << 20];
        let mut frame = Vec::new();
        compress(&zeros, &mut frame).unwrap();
        let mut out = Vec::new();
        decompress(&frame, &mut out, 1 << 30).unwrap();
        assert_eq!(out, zeros);
    }
}
