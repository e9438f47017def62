//! LZ4 block encoders on the record sections of `calving bench convert`'s synthetic segments
//! (`calving_segment::synth::distinct_batches`: 256 batches of 64 records, ~1 KiB JSON-like
//! values, 16-byte keys, two headers), cut into Kafka's 64 KiB LZ4 blocks: the pinned `lz4_flex`
//! 0.13.1 that serves compressed batches today, and the C liblz4 (`lz4-sys`) at rising
//! acceleration. Prints record MiB/s on one thread and the compressed/record ratio, best of `RUNS`.

use std::time::Instant;

use calving_segment::record::batch::BATCH_HEADER_LEN;
use calving_segment::synth::{distinct_batches, SynthSpec};
use calving_segment::Compression;

const REPEAT: usize = 8;
const RUNS: usize = 3;

/// The record sections of `bench convert`'s distinct synthetic batches (its default spec,
/// uncompressed): what the served batches' lz4 compresses.
fn record_sections() -> Vec<Vec<u8>> {
    let spec = SynthSpec { compression: Compression::None, ..SynthSpec::default() };
    distinct_batches(&spec).0.into_iter().map(|batch| batch[BATCH_HEADER_LEN..].to_vec()).collect()
}

/// Best MiB/s of record input over `RUNS`, and the ratio, of `encode` (a block in, its size out).
fn measure(sections: &[Vec<u8>], mut encode: impl FnMut(&[u8]) -> usize) -> (f64, f64) {
    let input: usize = sections.iter().map(Vec::len).sum::<usize>() * REPEAT;
    let mut best = 0f64;
    let mut output = 0;
    for _ in 0..RUNS {
        output = 0;
        let t = Instant::now();
        for _ in 0..REPEAT {
            for s in sections {
                for block in s.chunks(64 * 1024) {
                    output += encode(block);
                }
            }
        }
        best = best.max(input as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64());
    }
    (best, output as f64 / input as f64)
}

fn main() {
    let sections = record_sections();
    let mut dst = vec![0u8; lz4_flex::block::get_maximum_output_size(64 * 1024)];
    let (mibs, ratio) = measure(&sections, |b| lz4_flex::block::compress_into(b, &mut dst).expect("fits"));
    println!("lz4_flex 0.13.1 (pinned)   {mibs:6.0} record MiB/s   ratio {ratio:.3}");
    for accel in [1, 2, 4, 8, 16, 32] {
        let (mibs, ratio) = measure(&sections, |b| {
            // SAFETY: both buffers are valid for the lengths given; dst holds any block's bound.
            let n = unsafe {
                lz4_sys::LZ4_compress_fast(b.as_ptr().cast(), dst.as_mut_ptr().cast(), b.len() as i32, dst.len() as i32, accel)
            };
            assert!(n > 0, "liblz4 failed");
            n as usize
        });
        println!("liblz4, acceleration {accel:2}   {mibs:6.0} record MiB/s   ratio {ratio:.3}");
    }
}
