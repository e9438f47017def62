//! Entry points of `io.calving.kafka.NativeInputStream`: read the served bytes of a fetch
//! ([`calving_rsm::SegmentStream`], opened by `NativeRsm.fetchLogSegment`) into a Java `byte[]`,
//! and close it.
//!
//! The stream is lazy: each step rebuilds about `fetch.chunk.bytes` of batches, so a broker that
//! reads one fetch's worth and closes costs about that much work. A read copies at most
//! [`MAX_READ`] bytes, straight from the stream's current chunk into the caller's array (through
//! one reused buffer). Closing frees the stream, its chunk and its rows at once.

use std::io::Read;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use calving_rsm::{RsmError, SegmentStream};
use jni::objects::{JByteArray, JClass};
use jni::sys::{jint, jlong};
use jni::EnvUnowned;

use crate::error::{self, BridgeError};
use crate::handle::{self, HandleKind};

/// Most bytes one `read` call copies.
pub const MAX_READ: usize = 1 << 20;

/// The native state behind a `NativeInputStream` handle.
pub(crate) struct StreamHandle {
    /// `None` once a read failed or panicked: the stream's position is then unknown.
    state: Mutex<Option<StreamState>>,
    open_streams: Arc<AtomicI64>,
}

struct StreamState {
    stream: SegmentStream,
    buffer: Vec<u8>,
}

impl HandleKind for StreamHandle {
    const TAG: u64 = 0xCA1F_0002_5354_524D;
    const NAME: &'static str = "fetch stream";
}

impl StreamHandle {
    pub(crate) fn new(stream: SegmentStream, open_streams: Arc<AtomicI64>) -> StreamHandle {
        open_streams.fetch_add(1, Ordering::SeqCst);
        StreamHandle { state: Mutex::new(Some(StreamState { stream, buffer: Vec::new() })), open_streams }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads up to `len` bytes; `Ok(None)` at the end of the stream.
fn read_into(state: &mut StreamState, len: usize) -> Result<Option<&[u8]>, BridgeError> {
    let want = len.min(MAX_READ);
    if state.buffer.len() < want {
        state.buffer.resize(want, 0);
    }
    loop {
        match state.stream.read(&mut state.buffer[..want]) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some(&state.buffer[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // SegmentStream's errors are RsmErrors inside io::Error: keep their kind.
            Err(e) => {
                return Err(match e.into_inner().map(|inner| inner.downcast::<RsmError>()) {
                    Some(Ok(rsm)) => BridgeError::Rsm(*rsm),
                    Some(Err(other)) => BridgeError::InvalidArgument { name: "stream", reason: other.to_string() },
                    None => BridgeError::StreamBroken,
                });
            }
        }
    }
}

/// `static native int read(long stream, byte[] buffer, int offset, int length)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeInputStream_read<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    stream: jlong,
    buffer: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jint {
    error::run(&mut env, "fetchLogSegment (read)", |env| {
        if length <= 0 {
            return Ok(0);
        }
        // SAFETY: NativeInputStream passes its handle only while holding its monitor, and closes
        // it (under the same monitor) exactly once.
        let h = unsafe { handle::borrow::<StreamHandle>(stream)? };
        let mut guard = h.state.lock().map_err(|_| BridgeError::StreamBroken)?;
        let state = guard.as_mut().ok_or(BridgeError::StreamBroken)?;
        match read_into(state, length as usize) {
            Ok(None) => Ok(-1),
            Ok(Some(bytes)) => {
                buffer.set_region(env, offset, handle::as_jbytes(bytes))?;
                Ok(bytes.len() as jint)
            }
            Err(e) => {
                // Free the stream's memory now; later reads fail fast.
                *guard = None;
                Err(e)
            }
        }
    })
}

/// `static native void close(long stream)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeInputStream_close<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, stream: jlong) {
    error::run(&mut env, "fetchLogSegment (close)", |_env| {
        // SAFETY: see `read`; Java zeroes its copy of the handle before this call.
        drop(unsafe { handle::release::<StreamHandle>(stream)? });
        Ok(())
    })
}
