package io.calving.kafka;

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Kafka's own remote log metadata manager (the {@code __remote_log_metadata} topic,
 * {@link TopicBasedRemoteLogMetadataManager}) with one repair: a remote segment Kafka's metadata
 * cache lost is still found for reads. Brokers name it in
 * {@code remote.log.metadata.manager.class.name}; everything but that lookup is Kafka's.
 *
 * <p><b>The hole it mends</b> (Apache Kafka 3.9 to 4.4, found by Calving's fault test and replayed
 * through Kafka's own cache in {@code RemoteLogMetadataCacheHoleTest}). A leader whose copy of a
 * segment is still running when the leadership moves publishes the segment's
 * {@code COPY_SEGMENT_FINISHED} anyway, after the new leader has already chosen where its own
 * copies start; the two leaders' segments then overlap. When both start a leader epoch at the
 * same offset and the shorter one finishes last, the cache's epoch map
 * ({@code RemoteLogLeaderEpochState.handleSegmentWithCopySegmentFinishedState}) replaces the
 * longer one by it, while the epoch's highest copied offset stays at the longer one's end: no
 * leader copies those offsets again, the replicas delete them locally, and every fetch of them gets
 * {@code OffsetOutOfRangeException} — for good, since the cache is rebuilt from the same events.
 * The records are in remote storage (for Calving, in the table), under a segment the cache still
 * holds but no longer maps.
 *
 * <p>So when Kafka's lookup finds no segment for an offset, this one looks through every segment
 * of the partition for a finished one that holds the offset in that leader epoch (the lookup's own
 * rule), and logs each segment it recovers this way once, at WARN. Segments of one epoch that hold
 * an offset hold the same record there (an epoch's records never diverge, and only committed
 * records are copied), so any of them serves it; the longest is taken. The scan runs only where
 * Kafka's answer was empty (offsets not in remote storage at all, e.g. past its end), at the cost
 * of one pass over the partition's cached segment metadata. Likewise such a segment is listed again
 * under its epoch ({@link #listRemoteLogSegments(TopicIdPartition, int)}: what the broker's
 * retention and timestamp lookups go through), so that retention deletes it in its turn; the
 * partition is scanned for it only when the epoch's listed segments end before the epoch's
 * highest copied offset.
 *
 * <p>Kafka 4.4's manager starts its initialisation when the broker tells it it is ready
 * ({@code BrokerReadyCallback}), but the wrapper a broker puts around a manager loaded from
 * {@code remote.log.metadata.manager.class.path} does not pass that call on: loaded that way, this
 * class starts it itself at {@link #configure}, as Kafka 4.3 and earlier do.
 */
public class CalvingRemoteLogMetadataManager extends TopicBasedRemoteLogMetadataManager {

    private static final Logger LOG = LoggerFactory.getLogger(CalvingRemoteLogMetadataManager.class);

    /** Segments already reported as recovered (each is logged once). */
    private final Set<RemoteLogSegmentId> recovered = ConcurrentHashMap.newKeySet();

    /** Public no-arg constructor, used by the broker (reflection). */
    public CalvingRemoteLogMetadataManager() {
    }

    @Override
    public void configure(Map<String, ?> configs) {
        super.configure(configs);
        Method onBrokerReady = brokerReadyCallback();
        if (onBrokerReady != null && loadedThroughPluginClassPath()) {
            try {
                onBrokerReady.invoke(this);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("Calving: cannot start Kafka's remote log metadata manager", e);
            }
        }
    }

    @Override
    public Optional<RemoteLogSegmentMetadata> remoteLogSegmentMetadata(TopicIdPartition topicIdPartition,
                                                                       int epochForOffset,
                                                                       long offset) throws RemoteStorageException {
        Optional<RemoteLogSegmentMetadata> found = super.remoteLogSegmentMetadata(topicIdPartition, epochForOffset, offset);
        if (found.isPresent()) {
            return found;
        }
        Optional<RemoteLogSegmentMetadata> lost =
            finishedSegmentHolding(listRemoteLogSegments(topicIdPartition), epochForOffset, offset);
        lost.ifPresent(m -> {
            if (recovered.add(m.remoteLogSegmentId())) {
                LOG.warn("Calving: offset {} of {} (leader epoch {}) is in remote segment {} (offsets {}..{}, copied by broker {}),"
                        + " which Kafka's remote log metadata cache no longer maps (an overlapping segment of the same epoch"
                        + " replaced it); serving it from that segment", offset, topicIdPartition, epochForOffset,
                    m.remoteLogSegmentId().id(), m.startOffset(), m.endOffset(), m.brokerId());
            }
        });
        return lost;
    }

    /**
     * Kafka's segments of the epoch, plus those its cache stopped mapping (see the class doc), in
     * order of start offset: the broker's retention (and its timestamp lookups) go through this
     * list, and would never see such a segment otherwise.
     */
    @Override
    public Iterator<RemoteLogSegmentMetadata> listRemoteLogSegments(TopicIdPartition topicIdPartition,
                                                                    int leaderEpoch) throws RemoteStorageException {
        List<RemoteLogSegmentMetadata> listed = new ArrayList<>();
        super.listRemoteLogSegments(topicIdPartition, leaderEpoch).forEachRemaining(listed::add);
        Optional<Long> highest = highestOffsetForEpoch(topicIdPartition, leaderEpoch);
        if (!missesTheEpochsEnd(listed, leaderEpoch, highest)) {
            return listed.iterator();
        }
        return withDroppedSegments(listed, listRemoteLogSegments(topicIdPartition), leaderEpoch).iterator();
    }

    /**
     * Whether the finished segments of {@code listed} end the epoch before its highest copied
     * offset: the mark of a segment the cache dropped (the one that held that offset). Cheap: the
     * whole partition is scanned only then.
     */
    public static boolean missesTheEpochsEnd(List<RemoteLogSegmentMetadata> listed, int epoch, Optional<Long> highest) {
        if (!highest.isPresent()) {
            return false;
        }
        long end = -1;
        for (RemoteLogSegmentMetadata m : listed) {
            if (m.state() == RemoteLogSegmentState.COPY_SEGMENT_FINISHED && m.segmentLeaderEpochs().containsKey(epoch)) {
                end = Math.max(end, epochRange(m, epoch)[1]);
            }
        }
        return end < highest.get();
    }

    /**
     * {@code listed} (the segments Kafka lists for {@code epoch}) with the finished segments of
     * {@code all} that hold part of the epoch and are not listed, in order of start offset.
     */
    public static List<RemoteLogSegmentMetadata> withDroppedSegments(List<RemoteLogSegmentMetadata> listed,
                                                                     Iterator<RemoteLogSegmentMetadata> all,
                                                                     int epoch) {
        Set<RemoteLogSegmentId> ids = new HashSet<>();
        listed.forEach(m -> ids.add(m.remoteLogSegmentId()));
        List<RemoteLogSegmentMetadata> merged = new ArrayList<>(listed);
        while (all.hasNext()) {
            RemoteLogSegmentMetadata m = all.next();
            if (m.state() == RemoteLogSegmentState.COPY_SEGMENT_FINISHED && m.segmentLeaderEpochs().containsKey(epoch)
                && !ids.contains(m.remoteLogSegmentId())) {
                merged.add(m);
            }
        }
        merged.sort(Comparator.comparingLong(RemoteLogSegmentMetadata::startOffset));
        return merged;
    }

    /** The offsets {@code [from, to]} a segment holds in {@code epoch} (which it must have). */
    private static long[] epochRange(RemoteLogSegmentMetadata m, int epoch) {
        NavigableMap<Integer, Long> epochs = m.segmentLeaderEpochs();
        long from = Math.max(epochs.get(epoch), m.startOffset());
        Map.Entry<Integer, Long> next = epochs.higherEntry(epoch);
        return new long[] {from, next != null ? next.getValue() - 1 : m.endOffset()};
    }

    /**
     * The finished segment among {@code segments} that holds {@code offset} in leader epoch
     * {@code epoch} (from where the epoch starts in the segment, or the segment's start, to where
     * the next epoch starts in it, or the segment's end: the rule of Kafka's own lookup); the
     * longest if several do.
     */
    public static Optional<RemoteLogSegmentMetadata> finishedSegmentHolding(Iterator<RemoteLogSegmentMetadata> segments,
                                                                           int epoch,
                                                                           long offset) {
        RemoteLogSegmentMetadata best = null;
        while (segments.hasNext()) {
            RemoteLogSegmentMetadata m = segments.next();
            if (m.state() != RemoteLogSegmentState.COPY_SEGMENT_FINISHED) {
                continue;
            }
            if (!m.segmentLeaderEpochs().containsKey(epoch)) {
                continue;
            }
            long[] range = epochRange(m, epoch);
            if (offset < range[0] || offset > range[1]) {
                continue;
            }
            if (best == null || m.endOffset() > best.endOffset()) {
                best = m;
            }
        }
        return Optional.ofNullable(best);
    }

    /** Kafka 4.4+'s {@code onBrokerReady()} of the manager, or null on older brokers. */
    private static Method brokerReadyCallback() {
        try {
            return TopicBasedRemoteLogMetadataManager.class.getMethod("onBrokerReady");
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    /** Whether the broker loaded this class through its plugin class path (Kafka's child-first loader). */
    private boolean loadedThroughPluginClassPath() {
        ClassLoader loader = getClass().getClassLoader();
        return loader != null && loader.getClass().getSimpleName().equals("ChildFirstClassLoader");
    }
}
