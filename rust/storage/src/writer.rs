//! Streaming writers with bounded memory: [`ObjectWriter`] (async) and
//! [`BlockingObjectWriter`] ([`std::io::Write`], for synchronous encoders such as Parquet's
//! `ArrowWriter`).
//!
//! Both sit on object_store's `BufWriter`: the first `part-size` bytes are buffered; a smaller
//! object is written with one PUT at `finish`, a larger one becomes a multipart upload whose
//! parts go up in the background, at most `max-concurrency` at a time (a write waits for a free
//! slot), so a writer holds at most `part-size × (max-concurrency + 1)` bytes. Nothing is
//! visible at the location until `finish` succeeds. A writer dropped without `finish` aborts its
//! multipart upload in the background (best effort, on the runtime it was created in); a
//! failed `finish` may leave an incomplete upload behind, which an S3 lifecycle rule
//! (`AbortIncompleteMultipartUpload`) removes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;

use crate::error::{classify, classify_io, Error, Operation, Result};
use crate::storage::log_done;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `poll_shutdown` started (through [`AsyncWrite`]): the upload is completing or completed.
    ShuttingDown,
    Done,
}

/// An async streaming writer to one location (see the module doc). Also implements tokio's
/// [`AsyncWrite`], so it can be handed to Parquet's `AsyncArrowWriter`; then `shutdown` completes
/// the upload.
pub struct ObjectWriter {
    inner: Option<BufWriter>,
    location: String,
    written: u64,
    started: Instant,
    state: State,
    runtime: Option<Handle>,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("location", &self.location)
            .field("written", &self.written)
            .field("state", &self.state)
            .finish()
    }
}

impl ObjectWriter {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        location: String,
        part_size: usize,
        max_concurrency: usize,
        runtime: Option<Handle>,
    ) -> Self {
        ObjectWriter {
            inner: Some(
                BufWriter::with_capacity(store, path, part_size)
                    .with_max_concurrency(max_concurrency),
            ),
            location,
            written: 0,
            started: Instant::now(),
            state: State::Open,
            runtime,
        }
    }

    /// The location being written.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn open_inner(&mut self) -> Result<&mut BufWriter> {
        match (self.state, self.inner.as_mut()) {
            (State::Open, Some(inner)) => Ok(inner),
            _ => Err(Error::Other {
                operation: Operation::Write,
                location: self.location.clone(),
                source: "writer already finished or aborted".into(),
            }),
        }
    }

    /// Appends `bytes` without copying them. Waits while `max-concurrency` parts are in flight.
    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        let location = self.location.clone();
        let inner = self.open_inner()?;
        if let Err(e) = inner.put(bytes).await {
            return Err(self.fail(classify(e, Operation::Write, &location)).await);
        }
        self.written += len;
        Ok(())
    }

    /// Appends a copy of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let location = self.location.clone();
        let inner = self.open_inner()?;
        if let Err(e) = AsyncWriteExt::write_all(inner, buf).await {
            return Err(self.fail(classify_io(e, Operation::Write, &location)).await);
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Aborts the upload after a failed write, so no part is left behind; returns `err`.
    async fn fail(&mut self, err: Error) -> Error {
        if let Some(mut inner) = self.inner.take() {
            self.state = State::Done;
            if let Err(abort) = inner.abort().await {
                tracing::debug!(location = %self.location, error = %abort, "aborting a failed upload failed");
            }
        }
        err
    }

    /// Completes the upload: the object is at the location when this returns `Ok` (its size).
    pub async fn finish(mut self) -> Result<u64> {
        let location = self.location.clone();
        let inner = self.open_inner()?;
        let result = inner.shutdown().await;
        self.state = State::Done;
        self.inner = None;
        match result {
            Ok(()) => {
                log_done(Operation::Write, &location, self.written, self.started);
                Ok(self.written)
            }
            Err(e) => Err(classify_io(e, Operation::Write, &location)),
        }
    }

    /// Abandons the upload and removes any part already uploaded. Nothing appears at the location.
    pub async fn abort(mut self) -> Result<()> {
        let location = self.location.clone();
        let Some(mut inner) = self.inner.take() else {
            return Ok(());
        };
        let was_open = self.state == State::Open;
        self.state = State::Done;
        if was_open {
            inner
                .abort()
                .await
                .map_err(|e| classify(e, Operation::Write, &location))?;
        }
        tracing::debug!(location = %location, "upload aborted");
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if self.state != State::Open {
            return;
        }
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        let location = std::mem::take(&mut self.location);
        let runtime = self.runtime.clone().or_else(|| Handle::try_current().ok());
        match runtime {
            Some(rt) => {
                rt.spawn(async move {
                    if let Err(e) = inner.abort().await {
                        tracing::debug!(location = %location, error = %e, "aborting a dropped upload failed");
                    } else {
                        tracing::debug!(location = %location, "dropped upload aborted");
                    }
                });
            }
            None => {
                tracing::debug!(location = %location, "upload dropped outside a runtime: not aborted")
            }
        }
    }
}

impl AsyncWrite for ObjectWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.state != State::Open {
            return Poll::Ready(Err(io::Error::other("writer already finished or aborted")));
        }
        let inner = self
            .inner
            .as_mut()
            .expect("open writers have an inner writer");
        let n = std::task::ready!(Pin::new(inner).poll_write(cx, buf))?;
        self.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let open = self.state == State::Open;
        match self.inner.as_mut() {
            Some(inner) if open => Pin::new(inner).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state == State::Done {
            return Poll::Ready(Ok(()));
        }
        self.state = State::ShuttingDown;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(Pin::new(inner).poll_shutdown(cx));
        self.state = State::Done;
        self.inner = None;
        if result.is_ok() {
            log_done(Operation::Write, &self.location, self.written, self.started);
        }
        Poll::Ready(result)
    }
}

/// A [`std::io::Write`] over an [`ObjectWriter`] whose upload runs on a tokio runtime.
///
/// Small writes are gathered into chunks (1 MiB) before they are handed over, so each `write`
/// is a memory copy and only a full chunk waits on the runtime. `flush` does nothing (an
/// object store has no partial objects); [`Self::finish`] completes the upload. Dropping it
/// without `finish` aborts the upload. Call it from a thread that is not one of the runtime's
/// workers: tokio panics when a worker blocks on the runtime.
pub struct BlockingObjectWriter {
    writer: Option<ObjectWriter>,
    runtime: Handle,
    buf: Vec<u8>,
}

const CHUNK: usize = 1024 * 1024;

impl std::fmt::Debug for BlockingObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingObjectWriter")
            .field("writer", &self.writer)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl BlockingObjectWriter {
    pub(crate) fn new(writer: ObjectWriter, runtime: Handle) -> Self {
        BlockingObjectWriter {
            writer: Some(writer),
            runtime,
            buf: Vec::new(),
        }
    }

    /// The location being written.
    pub fn location(&self) -> &str {
        self.writer
            .as_ref()
            .map(ObjectWriter::location)
            .unwrap_or_default()
    }

    /// Bytes accepted so far (including those still buffered here).
    pub fn bytes_written(&self) -> u64 {
        self.writer.as_ref().map_or(0, ObjectWriter::bytes_written) + self.buf.len() as u64
    }

    fn hand_over(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        let writer = self.writer.as_mut().ok_or_else(|| Error::Other {
            operation: Operation::Write,
            location: String::new(),
            source: "writer already finished".into(),
        })?;
        self.runtime.block_on(writer.write(chunk))
    }

    /// Completes the upload (see [`ObjectWriter::finish`]); returns the object's size.
    pub fn finish(mut self) -> Result<u64> {
        self.hand_over()?;
        let writer = self.writer.take().expect("finish consumes the writer");
        self.runtime.block_on(writer.finish())
    }

    /// Abandons the upload (see [`ObjectWriter::abort`]).
    pub fn abort(mut self) -> Result<()> {
        self.buf.clear();
        match self.writer.take() {
            Some(writer) => self.runtime.block_on(writer.abort()),
            None => Ok(()),
        }
    }
}

impl io::Write for BlockingObjectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.writer.is_none() {
            return Err(io::Error::other("writer already finished"));
        }
        if self.buf.capacity() == 0 {
            // Reserved on the first write after a hand-over, not ahead: a copy keeps one open
            // writer per table partition, most of which write only when they finish.
            self.buf.reserve(CHUNK.max(data.len()));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over().map_err(io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
