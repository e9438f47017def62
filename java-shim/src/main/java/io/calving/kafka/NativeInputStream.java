package io.calving.kafka;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.lang.ref.Cleaner;
import java.util.Objects;

import org.apache.kafka.server.log.remote.storage.RemoteStorageException;

/**
 * The {@code InputStream} {@code fetchLogSegment} returns: the segment's served bytes, pulled from
 * native code as they are read ({@code rust/jni/src/fetch_stream.rs}). The broker reads about one
 * fetch's worth and closes it; the native side rebuilds about that much.
 *
 * <p><b>Releasing the native side.</b> {@link #close()} frees the native stream at once. A reader
 * thread that is interrupted (the broker cancels a remote read that exceeds
 * {@code remote.fetch.max.wait.ms} with {@code Future.cancel(true)}) gets an
 * {@link InterruptedIOException} from its next {@code read}, and the native stream is freed before
 * it is thrown; the interrupt status stays set. A stream that is dropped without being closed is
 * freed by a {@link Cleaner} once unreachable. Native code does not see Java interrupts: a read
 * already in native code finishes its step (about {@code fetch.chunk.bytes}; a step that reads ahead
 * for the next ones, up to 16 of them) first.
 *
 * <p>Reads and close are serialised on the stream's native state, so a close from another thread
 * waits for a read in progress; the handle is never used after it is freed.
 *
 * <p>Errors while reading are {@link IOException}s whose cause is the native side's
 * {@link RemoteStorageException} (or {@code RemoteResourceNotFoundException}, for a segment
 * deleted while being read).
 */
final class NativeInputStream extends InputStream {

    private static final Cleaner CLEANER = Cleaner.create();

    /** The native handle; shared with the cleaner, so it must not refer to the stream. */
    private static final class Native implements Runnable {
        private long handle;

        Native(long handle) {
            this.handle = handle;
        }

        @Override
        public synchronized void run() {
            long h = handle;
            handle = 0;
            if (h != 0) {
                try {
                    close(h);
                } catch (RemoteStorageException e) {
                    // Nothing to do about a failed free: the handle is gone either way.
                }
            }
        }
    }

    private final Native state;
    private final Cleaner.Cleanable cleanable;
    private final String segment;
    private final byte[] one = new byte[1];

    /**
     * @param handle from {@link NativeRsm#fetchLogSegment}; this stream owns it from now on
     * @param segment names the segment in error messages
     */
    NativeInputStream(long handle, String segment) {
        this.state = new Native(handle);
        this.cleanable = CLEANER.register(this, state);
        this.segment = segment;
    }

    @Override
    public int read() throws IOException {
        int n = read(one, 0, 1);
        return n <= 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, b.length);
        if (Thread.interrupted()) {
            cleanable.clean();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("remote fetch of " + segment + " interrupted; its native stream is released");
        }
        if (len == 0) {
            return 0;
        }
        synchronized (state) {
            if (state.handle == 0) {
                throw new IOException("remote fetch stream of " + segment + " is closed");
            }
            try {
                return read(state.handle, b, off, len);
            } catch (RemoteStorageException e) {
                throw new IOException(e.getMessage(), e);
            }
        }
    }

    /** Frees the native stream now; idempotent. */
    @Override
    public void close() {
        cleanable.clean();
    }

    /**
     * Copies up to {@code length} served bytes into {@code buffer[offset..]}.
     *
     * @param stream handle from {@link NativeRsm#fetchLogSegment}
     * @param buffer destination
     * @param offset first index of {@code buffer} to write
     * @param length most bytes to copy (more than 0); at most 1 MiB is copied per call
     * @return the number of bytes copied (at least 1), or -1 at the end of the stream
     */
    private static native int read(long stream, byte[] buffer, int offset, int length) throws RemoteStorageException;

    /**
     * Frees the native stream.
     *
     * @param stream handle from {@link NativeRsm#fetchLogSegment}; never used again afterwards
     */
    private static native void close(long stream) throws RemoteStorageException;
}
