package io.calving.kafka;

import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;

/**
 * The natives of Calving's storage ({@code rust/jni/src/rsm.rs}). Only
 * {@link CalvingRemoteStorageManager} calls them; it makes sure a handle is never used after
 * {@link #close(long)} (see its read-write lock).
 *
 * <p><b>A segment</b> crosses as four arguments: {@code topic} (the topic name), {@code partition},
 * {@code segment} (a {@code long[SEGMENT_FIELDS]} indexed by the {@code SEGMENT_*} constants) and
 * {@code leaderEpochs} ({@code (epoch, start offset)} pairs of
 * {@code RemoteLogSegmentMetadata.segmentLeaderEpochs()}, in any order).
 *
 * <p><b>Errors</b> are thrown by the native side by kind: {@link RemoteResourceNotFoundException}
 * when what is asked for does not exist (never copied, deleted, or a transaction index the segment
 * does not have), {@link RemoteStorageException} otherwise, including a panic in native code (a
 * bug; the JVM carries on). Messages name the operation, the segment and the reason.
 */
final class NativeRsm {

    /** {@code segment[0]}: the topic id's most significant 64 bits ({@code Uuid.getMostSignificantBits}). */
    static final int SEGMENT_TOPIC_ID_HIGH = 0;
    /** {@code segment[1]}: the topic id's least significant 64 bits. */
    static final int SEGMENT_TOPIC_ID_LOW = 1;
    /** {@code segment[2]}: the segment id's ({@code RemoteLogSegmentId.id()}) most significant 64 bits. */
    static final int SEGMENT_ID_HIGH = 2;
    /** {@code segment[3]}: the segment id's least significant 64 bits. */
    static final int SEGMENT_ID_LOW = 3;
    /** {@code segment[4]}: the segment's first offset (inclusive). */
    static final int SEGMENT_START_OFFSET = 4;
    /** {@code segment[5]}: the segment's last offset (inclusive). */
    static final int SEGMENT_END_OFFSET = 5;
    /** {@code segment[6]}: the largest record timestamp, epoch milliseconds. */
    static final int SEGMENT_MAX_TIMESTAMP_MS = 6;
    /** {@code segment[7]}: the size of the original {@code .log} file, in bytes. */
    static final int SEGMENT_SIZE_BYTES = 7;
    /** Length of the {@code segment} array. */
    static final int SEGMENT_FIELDS = 8;

    /** {@code endPosition} of {@link #fetchLogSegment}: to the end of the segment. */
    static final long TO_END = -1L;

    private NativeRsm() {
    }

    /**
     * Opens Calving's storage: parses the configuration, connects to the object store and the
     * catalog, starts the plugin's I/O runtime.
     *
     * @param properties the plugin configuration as {@code key, value, key, value, ...} strings
     *     ({@code rsm.config.*} keys with the prefix stripped, plus {@code broker.id})
     * @return a handle (never 0) to pass to the other methods and, once, to {@link #close(long)}
     */
    static native long open(String[] properties) throws RemoteStorageException;

    /**
     * Closes the storage behind {@code handle} and frees it. Fetch streams still open keep what
     * they need and stay readable until closed.
     *
     * @param handle from {@link #open}; never used again afterwards
     */
    static native void close(long handle) throws RemoteStorageException;

    /**
     * @param handle from {@link #open}
     * @return the number of fetch streams of this storage not yet closed (for tests and leak checks)
     */
    static native long openStreams(long handle) throws RemoteStorageException;

    /**
     * @param handle from {@link #open}
     * @return the plugin's metrics as {@code Name=value} lines (see {@link CalvingMetrics})
     */
    static native String metrics(long handle) throws RemoteStorageException;

    /**
     * {@code copyLogSegmentData}: converts the segment into table rows and its sidecar and commits
     * them; when it returns the segment is durable and servable. Files are read during the call
     * only. Idempotent for a retried segment id; re-uploaded offsets are never duplicated.
     *
     * @param handle from {@link #open}
     * @param logSegment absolute path of the {@code .log} file
     * @param offsetIndex absolute path of the {@code .index} file
     * @param timeIndex absolute path of the {@code .timeindex} file
     * @param transactionIndex absolute path of the {@code .txnindex} file, or null if the segment has none
     * @param producerSnapshot absolute path of the producer snapshot ({@code <next base offset>.snapshot})
     * @param leaderEpochCheckpoint the bytes of {@code LogSegmentData.leaderEpochIndex()} (the
     *     leader-epoch checkpoint text), stored verbatim
     */
    static native void copyLogSegmentData(long handle, String topic, int partition, long[] segment, long[] leaderEpochs,
                                          String logSegment, String offsetIndex, String timeIndex,
                                          String transactionIndex, String producerSnapshot,
                                          byte[] leaderEpochCheckpoint) throws RemoteStorageException;

    /**
     * {@code fetchLogSegment}: opens a lazy stream of the segment's served bytes (the byte layout
     * the served indexes describe).
     *
     * @param handle from {@link #open}
     * @param startPosition first byte, inclusive (a position from the served offset index, or 0)
     * @param endPosition last byte, inclusive, or {@link #TO_END}; past the end means to the end
     * @return a stream handle for {@link NativeInputStream}, to be closed exactly once
     */
    static native long fetchLogSegment(long handle, String topic, int partition, long[] segment, long[] leaderEpochs,
                                       long startPosition, long endPosition) throws RemoteStorageException;

    /**
     * {@code fetchIndex}.
     *
     * @param handle from {@link #open}
     * @param indexType {@code RemoteStorageManager.IndexType.ordinal()}: OFFSET 0, TIMESTAMP 1,
     *     PRODUCER_SNAPSHOT 2, TRANSACTION 3, LEADER_EPOCH 4
     * @return the whole index file; a missing transaction index throws
     *     {@link RemoteResourceNotFoundException}
     */
    static native byte[] fetchIndex(long handle, String topic, int partition, long[] segment, long[] leaderEpochs,
                                    int indexType) throws RemoteStorageException;

    /**
     * {@code deleteLogSegmentData}: idempotent; deleting what is already gone succeeds.
     *
     * @param handle from {@link #open}
     */
    static native void deleteLogSegmentData(long handle, String topic, int partition, long[] segment,
                                            long[] leaderEpochs) throws RemoteStorageException;

    /**
     * Panics in native code, inside the same wrapper as every other native: for tests that prove
     * a panic becomes a {@link RemoteStorageException} and the JVM carries on.
     *
     * @param message the panic message
     */
    static native void panicForTest(String message) throws RemoteStorageException;
}
