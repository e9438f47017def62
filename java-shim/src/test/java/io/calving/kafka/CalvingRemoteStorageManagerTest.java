package io.calving.kafka;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.LogSegmentData;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;
import org.junit.Test;

public class CalvingRemoteStorageManagerTest {

    private static final String CLASS_NAME = "io.calving.kafka.CalvingRemoteStorageManager";

    /** The way the broker creates the plugin: class name from config, public no-arg constructor. */
    private static RemoteStorageManager newAsBrokerDoes() throws Exception {
        Object instance = Class.forName(CLASS_NAME).getDeclaredConstructor().newInstance();
        assertTrue("must implement RemoteStorageManager", instance instanceof RemoteStorageManager);
        return (RemoteStorageManager) instance;
    }

    private static RemoteLogSegmentMetadata segment(Uuid segmentUuid) {
        TopicIdPartition tp = new TopicIdPartition(Uuid.randomUuid(), new TopicPartition("orders", 3));
        return new RemoteLogSegmentMetadata(
                new RemoteLogSegmentId(tp, segmentUuid),
                100L, 199L, 1_700_000_000_000L, 1, 1_700_000_000_500L, 4096,
                Optional.empty(), RemoteLogSegmentState.COPY_SEGMENT_STARTED,
                Collections.singletonMap(0, 100L));
    }

    @Test
    public void instantiableByReflectionAndImplementsTheKafkaInterface() throws Exception {
        RemoteStorageManager rsm = newAsBrokerDoes();
        assertEquals(CLASS_NAME, rsm.getClass().getName());
        assertTrue(RemoteStorageManager.class.isAssignableFrom(Class.forName(CLASS_NAME)));
        rsm.close();
    }

    @Test
    public void configureKeepsACopyOfTheBrokerMap() throws Exception {
        CalvingRemoteStorageManager rsm = (CalvingRemoteStorageManager) newAsBrokerDoes();
        // What the broker passes: rsm.config.* with the prefix stripped, plus values of any type.
        Map<String, Object> brokerMap = new HashMap<>();
        brokerMap.put("warehouse", "/var/lib/calving/warehouse");
        brokerMap.put("catalog.type", "sql");
        brokerMap.put("remote.log.metadata.manager.listener.name", "PLAINTEXT");
        brokerMap.put("broker.id", 1);
        brokerMap.put("nullable", null);
        rsm.configure(brokerMap);

        Map<String, Object> snapshot = new HashMap<>(brokerMap);
        brokerMap.put("warehouse", "changed-after-configure");
        brokerMap.remove("catalog.type");

        assertEquals(snapshot, rsm.configs());
        assertNull(rsm.configs().get("nullable"));
        try {
            rsm.configs().put("x", "y");
            fail("stored configuration must be immutable");
        } catch (UnsupportedOperationException expected) {
            // ok
        }
        rsm.close();
    }

    @Test
    public void operationsFailWithRemoteStorageExceptionNamingTheSegment() throws Exception {
        RemoteStorageManager rsm = newAsBrokerDoes();
        rsm.configure(Collections.singletonMap("warehouse", "/tmp/w"));
        Uuid segmentUuid = Uuid.randomUuid();
        RemoteLogSegmentMetadata metadata = segment(segmentUuid);

        Path dir = Paths.get("/var/lib/kafka/orders-3");
        LogSegmentData data = new LogSegmentData(
                dir.resolve("00000000000000000100.log"),
                dir.resolve("00000000000000000100.index"),
                dir.resolve("00000000000000000100.timeindex"),
                Optional.empty(),
                dir.resolve("00000000000000000200.snapshot"),
                ByteBuffer.allocate(0));
        try {
            rsm.copyLogSegmentData(metadata, data);
            fail("skeleton must not pretend to store a segment");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith(
                    "Calving native core not wired yet: copyLogSegmentData for segment "));
            assertTrue(e.getMessage(), e.getMessage().contains(segmentUuid.toString()));
        }
        try {
            rsm.fetchLogSegment(metadata, 0, 1024);
            fail("skeleton must not pretend to serve data");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("fetchLogSegment"));
            assertTrue(e.getMessage(), e.getMessage().contains(segmentUuid.toString()));
        }
        try {
            rsm.fetchLogSegment(metadata, 0);
            fail("skeleton must not pretend to serve data");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("fetchLogSegment"));
            assertTrue(e.getMessage(), e.getMessage().contains(segmentUuid.toString()));
        }
        try {
            rsm.fetchIndex(metadata, RemoteStorageManager.IndexType.OFFSET);
            fail("skeleton must not pretend to serve indexes");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("fetchIndex(OFFSET)"));
            assertTrue(e.getMessage(), e.getMessage().contains(segmentUuid.toString()));
        }
        try {
            rsm.deleteLogSegmentData(metadata);
            fail("skeleton must not pretend to delete");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("deleteLogSegmentData"));
            assertTrue(e.getMessage(), e.getMessage().contains(segmentUuid.toString()));
        }
        rsm.close();
    }
}
