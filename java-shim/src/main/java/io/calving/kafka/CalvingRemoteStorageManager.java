package io.calving.kafka;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.types.Password;
import org.apache.kafka.server.log.remote.storage.LogSegmentData;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata.CustomMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;

/**
 * Calving's KIP-405 {@link RemoteStorageManager}: the class a Kafka broker names in
 * {@code remote.log.storage.manager.class.name} and instantiates through its public no-arg
 * constructor.
 *
 * <p>It only delegates: every operation is one call into Calving's native library
 * ({@link NativeRsm}, loaded by {@link NativeLoader}), which converts segments into Iceberg rows,
 * serves fetches and indexes back from them, and deletes. Files cross as paths, never as bytes;
 * errors come back as {@link RemoteStorageException} or
 * {@code RemoteResourceNotFoundException}, thrown by the native side by kind, with a message
 * naming the operation, the segment and the reason.
 *
 * <p><b>Threads.</b> The broker calls it concurrently from its copy, reader, expiration and
 * replica-fetcher threads; the native storage is thread-safe. Operations hold a read lock on the
 * native handle and {@link #close()} takes the write lock, so close waits for calls in progress
 * and no call uses a freed handle; calls after close fail with {@link RemoteStorageException}.
 * Fetch streams already returned stay readable after close, until they are closed.
 */
public class CalvingRemoteStorageManager implements RemoteStorageManager {

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Guarded by {@link #lock}: 0 before {@link #configure}, after {@link #close()} or after a failed configure. */
    private long handle;
    private boolean closed;
    private volatile Map<String, Object> configs = Collections.emptyMap();
    /** Guarded by {@link #lock}: the JMX metrics of the open storage. */
    private CalvingMetrics metrics;

    /** Public no-arg constructor, used by the broker (reflection) to instantiate the plugin. */
    public CalvingRemoteStorageManager() {
    }

    /**
     * Opens Calving's storage with the broker's plugin configuration: the {@code rsm.config.*}
     * properties with the prefix already stripped by the broker, plus {@code broker.id}. Values
     * are passed to native code as strings ({@link Password} values as their secret); null values
     * are left out.
     *
     * @throws KafkaException (unchecked, as {@code Configurable.configure} declares nothing) whose
     *     cause is a {@link RemoteStorageException} when the native library cannot be loaded or the
     *     configuration is invalid (for example no {@code warehouse}); the broker then fails to start
     *     with that message
     */
    @Override
    public void configure(Map<String, ?> configs) {
        Map<String, Object> copy = new HashMap<>();
        if (configs != null) {
            copy.putAll(configs);
        }
        this.configs = Collections.unmodifiableMap(copy);
        List<String> properties = new ArrayList<>();
        for (Map.Entry<String, Object> e : copy.entrySet()) {
            Object v = e.getValue();
            if (e.getKey() == null || v == null) {
                continue;
            }
            properties.add(e.getKey());
            properties.add(v instanceof Password ? ((Password) v).value() : String.valueOf(v));
        }
        lock.writeLock().lock();
        try {
            if (closed) {
                throw new KafkaException("Calving remote storage manager is closed");
            }
            NativeLoader.ensureLoaded();
            long previous = handle;
            handle = 0;
            if (previous != 0) {
                NativeRsm.close(previous);
            }
            handle = NativeRsm.open(properties.toArray(new String[0]));
            if (metrics == null) {
                metrics = CalvingMetrics.register(() -> call("metrics", null, NativeRsm::metrics),
                        copy.getOrDefault("broker.id", copy.getOrDefault("node.id", "unknown")));
            }
        } catch (RemoteStorageException e) {
            throw new KafkaException("Calving could not start: " + e.getMessage(), e);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** The configuration last passed to {@link #configure(Map)} (immutable; empty before). */
    Map<String, Object> configs() {
        return configs;
    }

    /** One native call; the handle is the open storage's. */
    interface Call<T> {
        T apply(long handle) throws RemoteStorageException;
    }

    /**
     * Runs {@code call} under the read lock. A Java {@link Error} on the way (an
     * {@link OutOfMemoryError} while the broker's heap is short, a {@link StackOverflowError}, one
     * thrown by a JNI call) becomes a {@link RemoteStorageException} naming the operation and the
     * segment: Kafka's copy and expiration tasks catch exceptions, not errors, and an error
     * escaping one cancels the partition's periodic task in its executor, silently and for good.
     * As an exception the broker logs it, keeps its local data and tries again.
     */
    <T> T call(String operation, RemoteLogSegmentMetadata metadata, Call<T> call) throws RemoteStorageException {
        lock.readLock().lock();
        try {
            if (handle == 0) {
                throw new RemoteStorageException(operation + ": Calving remote storage manager is "
                        + (closed ? "closed" : "not configured") + " (segment " + segmentName(metadata) + ")");
            }
            return call.apply(handle);
        } catch (Error e) {
            throw new RemoteStorageException(operation + " of segment " + segmentName(metadata) + " failed: " + e, e);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** {@code long[NativeRsm.SEGMENT_FIELDS]} for a segment. */
    static long[] segmentFields(RemoteLogSegmentMetadata md) {
        TopicIdPartition tp = md.remoteLogSegmentId().topicIdPartition();
        long[] f = new long[NativeRsm.SEGMENT_FIELDS];
        f[NativeRsm.SEGMENT_TOPIC_ID_HIGH] = tp.topicId().getMostSignificantBits();
        f[NativeRsm.SEGMENT_TOPIC_ID_LOW] = tp.topicId().getLeastSignificantBits();
        f[NativeRsm.SEGMENT_ID_HIGH] = md.remoteLogSegmentId().id().getMostSignificantBits();
        f[NativeRsm.SEGMENT_ID_LOW] = md.remoteLogSegmentId().id().getLeastSignificantBits();
        f[NativeRsm.SEGMENT_START_OFFSET] = md.startOffset();
        f[NativeRsm.SEGMENT_END_OFFSET] = md.endOffset();
        f[NativeRsm.SEGMENT_MAX_TIMESTAMP_MS] = md.maxTimestampMs();
        f[NativeRsm.SEGMENT_SIZE_BYTES] = md.segmentSizeInBytes();
        return f;
    }

    /** {@code (epoch, start offset)} pairs of the segment's leader epochs. */
    static long[] leaderEpochs(RemoteLogSegmentMetadata md) {
        Map<Integer, Long> epochs = md.segmentLeaderEpochs();
        long[] out = new long[epochs.size() * 2];
        int i = 0;
        for (Map.Entry<Integer, Long> e : epochs.entrySet()) {
            out[i++] = e.getKey();
            out[i++] = e.getValue();
        }
        return out;
    }

    private static String segmentName(RemoteLogSegmentMetadata md) {
        return md == null ? "null" : md.remoteLogSegmentId().toString();
    }

    private static String path(Path p) {
        return p.toAbsolutePath().toString();
    }

    /**
     * Converts the segment into rows of the topic's table plus its sidecar and commits them.
     * Returns no custom metadata: any broker finds the segment from its metadata alone.
     */
    @Override
    public Optional<CustomMetadata> copyLogSegmentData(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                                       LogSegmentData logSegmentData)
            throws RemoteStorageException {
        RemoteLogSegmentMetadata md = remoteLogSegmentMetadata;
        TopicIdPartition tp = md.remoteLogSegmentId().topicIdPartition();
        // The broker's buffer is left as it was (position included).
        ByteBuffer epochs = logSegmentData.leaderEpochIndex().duplicate();
        byte[] checkpoint = new byte[epochs.remaining()];
        epochs.get(checkpoint);
        String txn = logSegmentData.transactionIndex().map(CalvingRemoteStorageManager::path).orElse(null);
        return call("copyLogSegmentData", md, h -> {
            NativeRsm.copyLogSegmentData(h, tp.topic(), tp.partition(), segmentFields(md), leaderEpochs(md),
                    path(logSegmentData.logSegment()), path(logSegmentData.offsetIndex()),
                    path(logSegmentData.timeIndex()), txn, path(logSegmentData.producerSnapshotIndex()), checkpoint);
            return Optional.empty();
        });
    }

    /** The served bytes from {@code startPosition} to the end, read lazily. */
    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                       int startPosition) throws RemoteStorageException {
        return fetch(remoteLogSegmentMetadata, startPosition, NativeRsm.TO_END);
    }

    /** The served bytes from {@code startPosition} to {@code endPosition}, both inclusive, read lazily. */
    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                       int startPosition,
                                       int endPosition) throws RemoteStorageException {
        if (endPosition < 0) {
            throw new RemoteStorageException("fetchLogSegment: endPosition " + endPosition + " < 0 for segment "
                    + segmentName(remoteLogSegmentMetadata));
        }
        return fetch(remoteLogSegmentMetadata, startPosition, endPosition);
    }

    private InputStream fetch(RemoteLogSegmentMetadata md, int start, long end) throws RemoteStorageException {
        TopicIdPartition tp = md.remoteLogSegmentId().topicIdPartition();
        long stream = call("fetchLogSegment", md, h -> NativeRsm.fetchLogSegment(h, tp.topic(), tp.partition(),
                segmentFields(md), leaderEpochs(md), start, end));
        return new NativeInputStream(stream, segmentName(md));
    }

    @Override
    public InputStream fetchIndex(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                  IndexType indexType) throws RemoteStorageException {
        RemoteLogSegmentMetadata md = remoteLogSegmentMetadata;
        TopicIdPartition tp = md.remoteLogSegmentId().topicIdPartition();
        byte[] bytes = call("fetchIndex", md, h -> NativeRsm.fetchIndex(h, tp.topic(), tp.partition(),
                segmentFields(md), leaderEpochs(md), indexType.ordinal()));
        return new ByteArrayInputStream(bytes);
    }

    @Override
    public void deleteLogSegmentData(RemoteLogSegmentMetadata remoteLogSegmentMetadata)
            throws RemoteStorageException {
        RemoteLogSegmentMetadata md = remoteLogSegmentMetadata;
        TopicIdPartition tp = md.remoteLogSegmentId().topicIdPartition();
        call("deleteLogSegmentData", md, h -> {
            NativeRsm.deleteLogSegmentData(h, tp.topic(), tp.partition(), segmentFields(md), leaderEpochs(md));
            return null;
        });
    }

    /** The JMX name of this instance's metrics (null before configure and after close). */
    javax.management.ObjectName metricsName() {
        lock.readLock().lock();
        try {
            return metrics == null ? null : metrics.name();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Fetch streams of this instance not yet closed (for tests and leak checks). */
    long openStreams() throws RemoteStorageException {
        return call("openStreams", null, NativeRsm::openStreams);
    }

    /** Closes the native storage once calls in progress are done; idempotent. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            long h = handle;
            handle = 0;
            closed = true;
            if (metrics != null) {
                metrics.unregister();
                metrics = null;
            }
            if (h != 0) {
                NativeRsm.close(h);
            }
        } catch (RemoteStorageException e) {
            throw new KafkaException("Calving: closing the remote storage failed: " + e.getMessage(), e);
        } finally {
            lock.writeLock().unlock();
        }
    }
}
