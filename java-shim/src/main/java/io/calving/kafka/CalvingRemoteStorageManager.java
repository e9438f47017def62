package io.calving.kafka;

import java.io.InputStream;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

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
 * <p>This class owns only what must live on the Java side: the broker-facing contract (method
 * signatures, checked {@link RemoteStorageException}s) and the plugin configuration the broker hands
 * to {@link #configure(Map)} (the {@code rsm.config.*} properties, prefix already stripped). It does
 * no storage work itself: every operation only delegates to Calving's Rust core (segment parsing,
 * Parquet, Iceberg commits, sidecars, fetches), which it will load over JNI.
 *
 * <p><b>Skeleton.</b> The JNI bridge is not wired yet: every storage operation throws a
 * non-retriable {@link RemoteStorageException} naming the operation and the segment, so a broker
 * configured with this build fails loudly instead of losing or inventing data.
 */
public class CalvingRemoteStorageManager implements RemoteStorageManager {

    private volatile Map<String, Object> configs = Collections.emptyMap();

    /** Public no-arg constructor, used by the broker (reflection) to instantiate the plugin. */
    public CalvingRemoteStorageManager() {
    }

    /**
     * Keeps an immutable copy of the broker's plugin configuration (later changes to the broker's
     * map are not seen). Values may be null.
     */
    @Override
    public void configure(Map<String, ?> configs) {
        Map<String, Object> copy = new HashMap<>();
        if (configs != null) {
            copy.putAll(configs);
        }
        this.configs = Collections.unmodifiableMap(copy);
    }

    /** The configuration last passed to {@link #configure(Map)} (immutable; empty before). */
    Map<String, Object> configs() {
        return configs;
    }

    @Override
    public Optional<CustomMetadata> copyLogSegmentData(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                                       LogSegmentData logSegmentData)
            throws RemoteStorageException {
        throw notWired("copyLogSegmentData", remoteLogSegmentMetadata);
    }

    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                       int startPosition) throws RemoteStorageException {
        throw notWired("fetchLogSegment", remoteLogSegmentMetadata);
    }

    @Override
    public InputStream fetchLogSegment(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                       int startPosition,
                                       int endPosition) throws RemoteStorageException {
        throw notWired("fetchLogSegment", remoteLogSegmentMetadata);
    }

    @Override
    public InputStream fetchIndex(RemoteLogSegmentMetadata remoteLogSegmentMetadata,
                                  IndexType indexType) throws RemoteStorageException {
        throw notWired("fetchIndex(" + indexType + ")", remoteLogSegmentMetadata);
    }

    @Override
    public void deleteLogSegmentData(RemoteLogSegmentMetadata remoteLogSegmentMetadata)
            throws RemoteStorageException {
        throw notWired("deleteLogSegmentData", remoteLogSegmentMetadata);
    }

    /** Nothing to release yet (no native core loaded). */
    @Override
    public void close() {
    }

    private static RemoteStorageException notWired(String method, RemoteLogSegmentMetadata metadata) {
        Object segment = metadata == null ? null : metadata.remoteLogSegmentId();
        return new RemoteStorageException(
                "Calving native core not wired yet: " + method + " for segment " + segment);
    }
}
