//! zstd frames (magic v2 batches only), as `zstd-jni` writes them: frames may omit the content
//! size, so decoding streams.

use std::cell::RefCell;
use std::io;

use ::zstd::zstd_safe::DCtx;

thread_local! {
    /// One decompression context per thread, reset for each frame: creating one per batch cost
    /// a few percent of a zstd segment's conversion.
    static CONTEXT: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

pub(super) fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    CONTEXT.with_borrow_mut(|context| {
        let decoder = ::zstd::stream::read::Decoder::with_context(input, context);
        super::read_bounded(decoder, out, limit)
    })
}

pub(super) fn compress(input: &[u8], out: &mut Vec<u8>, level: i32) -> io::Result<()> {
    let compressed = ::zstd::bulk::compress(input, level)?;
    out.extend_from_slice(&compressed);
    Ok(())
}
