package org.apache.kafka.server.log.remote.metadata.storage;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

import io.calving.kafka.CalvingRemoteLogMetadataManager;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadataUpdate;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;
import org.junit.Test;

/**
 * The hole {@link CalvingRemoteLogMetadataManager} mends, in Kafka's own metadata cache (this test
 * sits in the cache's package to drive it as the topic-based manager does): the events of one
 * partition of a real fault-test run (Kafka 4.1.2, partition 9 of {@code faults_orders}), in the
 * order the {@code __remote_log_metadata} topic held them.
 *
 * <ol>
 * <li>broker 2, leader in epoch 1 (which started at 210), starts copying its segment 196..262;</li>
 * <li>a preferred leader election makes broker 1 leader (epoch 2 from 297); its metadata does not
 *     show 196..262 as finished yet, so it copies its own segment 193..249;</li>
 * <li>broker 2's copy finishes (its task was cancelled, but the event is published): epoch 1 now
 *     maps 210 → 196..262 and its highest copied offset is 262;</li>
 * <li>broker 1's copy finishes: same epoch, same start (210), so the cache maps 210 → 193..249,
 *     while the highest copied offset stays 262. Offsets 250..262 are in no mapped segment.</li>
 * </ol>
 *
 * If this test starts failing on its "Kafka's cache" assertions, Kafka fixed the cache: the
 * repair can go.
 */
public class RemoteLogMetadataCacheHoleTest {

    private static final TopicIdPartition TP = new TopicIdPartition(Uuid.randomUuid(), new TopicPartition("faults_orders", 9));

    private static RemoteLogSegmentMetadata segment(long start, long end, int broker, Map<Integer, Long> epochs) {
        return new RemoteLogSegmentMetadata(new RemoteLogSegmentId(TP, Uuid.randomUuid()), start, end, 0L, broker, 0L, 1000,
            new TreeMap<>(epochs));
    }

    private static RemoteLogSegmentMetadata finish(RemoteLogMetadataCache cache, RemoteLogSegmentMetadata m) throws Exception {
        RemoteLogSegmentMetadataUpdate done = new RemoteLogSegmentMetadataUpdate(m.remoteLogSegmentId(), 1L, Optional.empty(),
            RemoteLogSegmentState.COPY_SEGMENT_FINISHED, m.brokerId());
        cache.updateRemoteLogSegmentMetadata(done);
        return m.createWithUpdates(done);
    }

    /** A cache as the topic-based manager holds it once it has caught up, with `segment` copied. */
    private static RemoteLogMetadataCache cacheWith(RemoteLogSegmentMetadata segment) throws Exception {
        RemoteLogMetadataCache cache = new RemoteLogMetadataCache();
        cache.markInitialized();
        cache.addCopyInProgressSegment(segment);
        finish(cache, segment);
        return cache;
    }

    private static List<RemoteLogSegmentMetadata> listed(RemoteLogMetadataCache cache, int epoch) throws Exception {
        List<RemoteLogSegmentMetadata> out = new ArrayList<>();
        cache.listRemoteLogSegments(epoch).forEachRemaining(out::add);
        return out;
    }

    private static Optional<RemoteLogSegmentMetadata> calving(RemoteLogMetadataCache cache, int epoch, long offset) {
        return CalvingRemoteLogMetadataManager.finishedSegmentHolding(cache.listAllRemoteLogSegments(), epoch, offset);
    }

    @Test
    public void aShorterSegmentOfTheSameEpochStartReplacesALongerOneAndCalvingStillFindsIt() throws Exception {
        RemoteLogSegmentMetadata earlier = segment(144, 195, 2, Map.of(0, 144L));
        RemoteLogMetadataCache cache = cacheWith(earlier);
        RemoteLogSegmentMetadata deposed = segment(196, 262, 2, Map.of(0, 196L, 1, 210L));
        RemoteLogSegmentMetadata leader = segment(193, 249, 1, Map.of(0, 193L, 1, 210L));
        cache.addCopyInProgressSegment(deposed);
        cache.addCopyInProgressSegment(leader);

        // Nothing finished yet in epoch 1: no lookup finds a started segment.
        assertFalse(cache.remoteLogSegmentMetadata(1, 250).isPresent());
        assertFalse(calving(cache, 1, 250).isPresent());

        finish(cache, deposed);
        assertEquals(deposed.remoteLogSegmentId(), cache.remoteLogSegmentMetadata(1, 250).get().remoteLogSegmentId());

        finish(cache, leader);
        // Kafka's cache: the hole.
        assertEquals(Optional.of(262L), cache.highestOffsetForEpoch(1));
        for (long offset = 250; offset <= 262; offset++) {
            assertFalse("Kafka's cache maps offset " + offset, cache.remoteLogSegmentMetadata(1, offset).isPresent());
        }
        List<RemoteLogSegmentId> mapped = new ArrayList<>();
        listed(cache, 1).forEach(m -> mapped.add(m.remoteLogSegmentId()));
        assertEquals("Kafka lists only the shorter segment for the epoch", List.of(leader.remoteLogSegmentId()), mapped);

        // Calving's listing of epoch 1 has it again, in order of start offset; epoch 0's, where
        // nothing was dropped, is Kafka's as it is.
        assertTrue(CalvingRemoteLogMetadataManager.missesTheEpochsEnd(listed(cache, 1), 1, cache.highestOffsetForEpoch(1)));
        List<RemoteLogSegmentId> relisted = new ArrayList<>();
        CalvingRemoteLogMetadataManager.withDroppedSegments(listed(cache, 1), cache.listAllRemoteLogSegments(), 1)
            .forEach(m -> relisted.add(m.remoteLogSegmentId()));
        assertEquals(List.of(leader.remoteLogSegmentId(), deposed.remoteLogSegmentId()), relisted);
        assertFalse(CalvingRemoteLogMetadataManager.missesTheEpochsEnd(listed(cache, 0), 0, cache.highestOffsetForEpoch(0)));

        // Calving's lookup: every offset of both segments, from the longest that holds it.
        for (long offset = 210; offset <= 262; offset++) {
            Optional<RemoteLogSegmentMetadata> found = calving(cache, 1, offset);
            assertTrue("offset " + offset, found.isPresent());
            assertEquals("offset " + offset, deposed.remoteLogSegmentId(), found.get().remoteLogSegmentId());
        }
        // In epoch 0, each segment's part of it (the longest again where they overlap).
        assertEquals(earlier.remoteLogSegmentId(), calving(cache, 0, 190).get().remoteLogSegmentId());
        assertEquals(deposed.remoteLogSegmentId(), calving(cache, 0, 200).get().remoteLogSegmentId());
        assertEquals(leader.remoteLogSegmentId(), calving(cache, 0, 193).get().remoteLogSegmentId());
        // Not held in that epoch by any segment: still nothing.
        assertFalse(calving(cache, 0, 210).isPresent());
        assertFalse(calving(cache, 1, 263).isPresent());
        assertFalse(calving(cache, 1, 209).isPresent());
        assertFalse(calving(cache, 2, 250).isPresent());
        assertFalse(calving(cache, 0, 143).isPresent());
    }

    @Test
    public void aSegmentBeingDeletedIsNotServed() throws Exception {
        RemoteLogSegmentMetadata s = segment(0, 99, 1, Map.of(0, 0L));
        RemoteLogMetadataCache cache = cacheWith(s);
        assertTrue(calving(cache, 0, 50).isPresent());
        cache.updateRemoteLogSegmentMetadata(new RemoteLogSegmentMetadataUpdate(s.remoteLogSegmentId(), 2L, Optional.empty(),
            RemoteLogSegmentState.DELETE_SEGMENT_STARTED, 1));
        assertFalse(calving(cache, 0, 50).isPresent());
    }
}
