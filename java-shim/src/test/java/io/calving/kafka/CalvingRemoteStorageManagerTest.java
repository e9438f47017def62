package io.calving.kafka;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.config.types.Password;
import org.apache.kafka.common.record.FileRecords;
import org.apache.kafka.common.record.RecordBatch;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager.IndexType;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * The plugin with its real native library, on the real broker fixtures and a local warehouse
 * (embedded SQLite catalog): every RemoteStorageManager method, errors, stream release, threads.
 */
public class CalvingRemoteStorageManagerTest {

    private static final String CLASS_NAME = "io.calving.kafka.CalvingRemoteStorageManager";

    private File dir;
    private CalvingRemoteStorageManager rsm;

    @Before
    public void open() throws Exception {
        dir = Fixtures.tempDir("rsm");
        rsm = (CalvingRemoteStorageManager) newAsBrokerDoes();
        rsm.configure(Fixtures.config(dir.toPath()));
    }

    @After
    public void close() throws IOException {
        rsm.close();
        deleteTree(dir.toPath());
    }

    /** The way the broker creates the plugin: class name from config, public no-arg constructor. */
    private static RemoteStorageManager newAsBrokerDoes() throws Exception {
        Object instance = Class.forName(CLASS_NAME).getDeclaredConstructor().newInstance();
        assertTrue("must implement RemoteStorageManager", instance instanceof RemoteStorageManager);
        return (RemoteStorageManager) instance;
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (java.util.stream.Stream<Path> s = Files.walk(root)) {
            s.sorted(Collections.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @Test
    public void everyMethodOnEveryBrokerFixture() throws Exception {
        for (String fixture : Fixtures.BROKER) {
            for (Path log : Fixtures.logs(fixture)) {
                Fixtures.Segment s = Fixtures.segment(fixture, log, "fx-" + fixture);
                checkSegment(s);
            }
        }
    }

    private void checkSegment(Fixtures.Segment s) throws Exception {
        RemoteLogSegmentMetadata md = s.metadata;
        String where = s.log.toString();
        int epochPosition = s.data.leaderEpochIndex().position();
        assertEquals(where, Optional.empty(), rsm.copyLogSegmentData(md, s.data));
        assertEquals("the broker's leader-epoch buffer is left as it was", epochPosition, s.data.leaderEpochIndex().position());

        // Indexes: the served ones by their entry sizes; the others exactly as the broker gave them.
        byte[] offsetIndex = Fixtures.readAll(rsm.fetchIndex(md, IndexType.OFFSET));
        byte[] timeIndex = Fixtures.readAll(rsm.fetchIndex(md, IndexType.TIMESTAMP));
        assertTrue(where, timeIndex.length > 0 && timeIndex.length % 12 == 0);
        assertArrayEquals(where, Files.readAllBytes(s.data.producerSnapshotIndex()),
                Fixtures.readAll(rsm.fetchIndex(md, IndexType.PRODUCER_SNAPSHOT)));
        byte[] checkpoint = new byte[s.data.leaderEpochIndex().remaining()];
        s.data.leaderEpochIndex().duplicate().get(checkpoint);
        assertArrayEquals(where, checkpoint, Fixtures.readAll(rsm.fetchIndex(md, IndexType.LEADER_EPOCH)));
        if (s.data.transactionIndex().isPresent()) {
            assertArrayEquals(where, Files.readAllBytes(s.data.transactionIndex().get()),
                    Fixtures.readAll(rsm.fetchIndex(md, IndexType.TRANSACTION)));
        } else {
            try {
                rsm.fetchIndex(md, IndexType.TRANSACTION);
                fail(where + ": no transaction index must be RemoteResourceNotFoundException");
            } catch (RemoteResourceNotFoundException e) {
                assertTrue(e.getMessage(), e.getMessage().startsWith("fetchIndex: "));
                assertTrue(e.getMessage(), e.getMessage().contains(md.remoteLogSegmentId().id().toString()));
                assertTrue(e.getMessage(), e.getMessage().contains("transaction index"));
            }
        }

        // The whole segment: Kafka's parser accepts every batch (CRC included) and reads the same
        // batch facts and records as from the original file.
        byte[] served = Fixtures.fetch(rsm, md, 0);
        List<String> original = Fixtures.originalBatches(s.log, md.startOffset());
        assertEquals(where, original, Fixtures.servedBatches(served));
        // Uncompressed batches come back byte-identical.
        try (FileRecords records = FileRecords.open(s.log.toFile(), false)) {
            boolean allUncompressed = true;
            for (RecordBatch b : records.batches()) {
                allUncompressed &= b.compressionType().name.equals("none");
            }
            if (allUncompressed) {
                assertArrayEquals(where, Files.readAllBytes(s.log), served);
            }
        }

        // From a batch in the middle (a position of the served offset index), as the broker does.
        // Positions are the broker's to pass back (served layout v2: lower bounds of the bytes);
        // the index has one entry per batch after the first, so entry k names batch k + 1.
        List<int[]> entries = Fixtures.offsetIndex(offsetIndex);
        List<Integer> starts = new java.util.ArrayList<>();
        int at = 0;
        for (RecordBatch b : org.apache.kafka.common.record.MemoryRecords.readableRecords(ByteBuffer.wrap(served)).batches()) {
            starts.add(at);
            at += b.sizeInBytes();
        }
        assertEquals(where + ": one index entry per batch after the first", starts.size() - 1, entries.size());
        int k = entries.size() / 2;
        int[] middle = entries.get(k);
        long targetOffset = md.startOffset() + middle[0];
        int position = middle[1];
        byte[] tail = Fixtures.fetch(rsm, md, position);
        assertArrayEquals(where, Arrays.copyOfRange(served, starts.get(k + 1), served.length), tail);
        List<String> tailBatches = Fixtures.servedBatches(tail);
        RecordBatch first = org.apache.kafka.common.record.MemoryRecords.readableRecords(ByteBuffer.wrap(tail))
                .batches().iterator().next();
        assertEquals(where + ": the index entry's batch starts at its offset", targetOffset, first.baseOffset());
        assertEquals(where, Fixtures.originalBatches(s.log, first.baseOffset()), tailBatches);
        // The bounded form: from the batch holding the start through the batch holding the end.
        int last = k + 1;
        while (last + 1 < starts.size() && entries.get(last)[1] <= position + 99) {
            last++;
        }
        int endByte = last + 1 < starts.size() ? starts.get(last + 1) : served.length;
        byte[] expected = Arrays.copyOfRange(served, starts.get(k + 1), endByte);
        byte[] bounded = Fixtures.readAll(rsm.fetchLogSegment(md, position, position + 99));
        assertArrayEquals(where, expected, bounded);
        // Single-byte reads give the same bytes.
        try (InputStream in = rsm.fetchLogSegment(md, position, position + 99)) {
            for (byte b : expected) {
                assertEquals(b & 0xff, in.read());
            }
            assertEquals(-1, in.read());
        }
        assertEquals(0, rsm.openStreams());

        // Delete: what Kafka needs goes; deleting again succeeds (idempotent).
        rsm.deleteLogSegmentData(md);
        rsm.deleteLogSegmentData(md);
        try {
            rsm.fetchLogSegment(md, 0);
            fail(where + ": a deleted segment must be RemoteResourceNotFoundException");
        } catch (RemoteResourceNotFoundException e) {
            assertTrue(e.getMessage(), e.getMessage().contains(md.remoteLogSegmentId().id().toString()));
        }
        try {
            rsm.fetchIndex(md, IndexType.OFFSET);
            fail(where + ": a deleted segment's index must be RemoteResourceNotFoundException");
        } catch (RemoteResourceNotFoundException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith("fetchIndex: "));
        }
    }

    /** The JMX metrics, read as a JMX client would (attributes by name on the platform server). */
    @Test
    public void metricsAreAnMBeanThatMovesWithTheCallsAndGoesAtClose() throws Exception {
        javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
        javax.management.ObjectName name = rsm.metricsName();
        assertTrue(String.valueOf(name), name != null && name.toString().startsWith("io.calving:type=RemoteStorageManager,broker="));
        assertTrue(server.isRegistered(name));
        assertEquals(0.0, (Double) server.getAttribute(name, "CopyCount"), 0.0);

        String fixture = Fixtures.BROKER.get(0);
        Fixtures.Segment s = Fixtures.segment(fixture, Fixtures.logs(fixture).get(0), "jmx-" + fixture);
        rsm.copyLogSegmentData(s.metadata, s.data);
        byte[] served = Fixtures.fetch(rsm, s.metadata, 0);
        rsm.deleteLogSegmentData(s.metadata);
        try {
            rsm.fetchIndex(s.metadata, IndexType.OFFSET);
            fail("deleted");
        } catch (RemoteResourceNotFoundException expected) {
            // counted as a failed fetchIndex, by kind
        }
        Thread.sleep(1100); // the MBean reads the native side at most once a second
        assertEquals(1.0, (Double) server.getAttribute(name, "CopyCount"), 0.0);
        assertEquals(1.0, (Double) server.getAttribute(name, "DeleteCount"), 0.0);
        assertEquals(1.0, (Double) server.getAttribute(name, "FetchIndexFailures"), 0.0);
        assertEquals(1.0, (Double) server.getAttribute(name, "ErrorsNotFound"), 0.0);
        assertEquals((double) served.length, (Double) server.getAttribute(name, "ServedBytes"), 0.0);
        assertEquals((double) Files.size(s.log), (Double) server.getAttribute(name, "CopiedBytes"), 0.0);
        assertEquals(1.0, (Double) server.getAttribute(name, "Commits"), 0.0);
        assertEquals(1.0, (Double) server.getAttribute(name, "CommittedSegments"), 0.0);
        assertTrue((Double) server.getAttribute(name, "CopyLatencyP99Ms") > 0.0);
        javax.management.MBeanAttributeInfo[] infos = server.getMBeanInfo(name).getAttributes();
        assertTrue("lists its attributes: " + infos.length, infos.length > 40);

        rsm.close();
        assertTrue("unregistered at close", !server.isRegistered(name));
    }

    @Test
    public void corruptSegmentFailsWithAMessageNamingTheSegment() throws Exception {
        Path log = Fixtures.logs("zstd").get(0);
        Fixtures.Segment s = Fixtures.segment("zstd", log, "fx-corrupt");
        byte[] bytes = Files.readAllBytes(log);
        Path broken = dir.toPath().resolve(log.getFileName());
        Files.write(broken, Arrays.copyOf(bytes, bytes.length / 2));
        Fixtures.Segment cut = new Fixtures.Segment(s.metadata, new org.apache.kafka.server.log.remote.storage.LogSegmentData(
                broken, s.data.offsetIndex(), s.data.timeIndex(), s.data.transactionIndex(),
                s.data.producerSnapshotIndex(), s.data.leaderEpochIndex()), broken);
        try {
            rsm.copyLogSegmentData(cut.metadata, cut.data);
            fail("a truncated segment must not be stored");
        } catch (RemoteStorageException e) {
            assertFalse("not a missing resource", e instanceof RemoteResourceNotFoundException);
            String m = e.getMessage();
            assertTrue(m, m.startsWith("copyLogSegmentData: segment " + s.metadata.remoteLogSegmentId().id() + " of fx-corrupt-0"));
            assertTrue(m, m.contains("cannot read the segment"));
            assertTrue(m, m.contains(broken.toString()));
        }
        // Nothing is visible afterwards.
        try {
            rsm.fetchLogSegment(s.metadata, 0);
            fail("a failed copy leaves nothing to fetch");
        } catch (RemoteResourceNotFoundException expected) {
            // ok
        }
        // A position outside the segment is an error of its own kind.
        rsm.copyLogSegmentData(s.metadata, s.data);
        try {
            rsm.fetchLogSegment(s.metadata, Integer.MAX_VALUE);
            fail("position past the end");
        } catch (RemoteStorageException e) {
            assertFalse(e instanceof RemoteResourceNotFoundException);
            assertTrue(e.getMessage(), e.getMessage().contains("outside the segment"));
        }
        try {
            rsm.fetchLogSegment(s.metadata, -1);
            fail("negative position");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("startPosition"));
        }
    }

    @Test
    public void configureFailuresAndCallsOutsideTheOpenWindow() throws Exception {
        CalvingRemoteStorageManager fresh = new CalvingRemoteStorageManager();
        Fixtures.Segment s = Fixtures.segment("none", Fixtures.logs("none").get(0), "fx-window");
        try {
            fresh.fetchIndex(s.metadata, IndexType.OFFSET);
            fail("not configured yet");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("not configured"));
            assertTrue(e.getMessage(), e.getMessage().contains(s.metadata.remoteLogSegmentId().toString()));
        }
        Map<String, Object> noWarehouse = new HashMap<>();
        noWarehouse.put("broker.id", 3);
        try {
            fresh.configure(noWarehouse);
            fail("warehouse is required");
        } catch (KafkaException e) {
            assertTrue(e.getCause() instanceof RemoteStorageException);
            assertTrue(e.getMessage(), e.getMessage().contains("configure: invalid configuration warehouse: required"));
        }
        // A Password value reaches native code as its secret, not as "[hidden]".
        Map<String, Object> withPassword = new HashMap<>(Fixtures.config(dir.toPath().resolve("pw")));
        withPassword.put("warehouse", new Password(dir.toPath().resolve("pw").toUri().toString()));
        withPassword.put("nullable", null);
        fresh.configure(withPassword);
        fresh.copyLogSegmentData(s.metadata, s.data);
        assertTrue(Files.exists(dir.toPath().resolve("pw")));
        assertNull(fresh.configs().get("nullable"));
        fresh.close();
        fresh.close();
        try {
            fresh.fetchIndex(s.metadata, IndexType.OFFSET);
            fail("closed");
        } catch (RemoteStorageException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("closed"));
        }
    }

    @Test
    public void closeInterruptAndAbandonReleaseTheNativeStream() throws Exception {
        Fixtures.Segment s = Fixtures.segment("lz4", Fixtures.logs("lz4").get(0), "fx-release");
        rsm.copyLogSegmentData(s.metadata, s.data);
        byte[] served = Fixtures.fetch(rsm, s.metadata, 0);
        assertEquals(0, rsm.openStreams());

        // close() releases at once; a read after close fails.
        InputStream in = rsm.fetchLogSegment(s.metadata, 0);
        byte[] head = new byte[17];
        assertEquals(17, in.read(head, 0, 17));
        assertArrayEquals(Arrays.copyOf(served, 17), head);
        assertEquals(1, rsm.openStreams());
        in.close();
        assertEquals(0, rsm.openStreams());
        in.close();
        try {
            in.read(head, 0, 17);
            fail("read after close");
        } catch (IOException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("closed"));
        }

        // An interrupted reader (the broker's remote.fetch.max.wait.ms cancel) releases it.
        InputStream interrupted = rsm.fetchLogSegment(s.metadata, 0);
        assertEquals(1, rsm.openStreams());
        Thread.currentThread().interrupt();
        try {
            interrupted.read(head, 0, 17);
            fail("interrupted read");
        } catch (InterruptedIOException e) {
            assertTrue("the interrupt status stays set", Thread.interrupted());
            assertTrue(e.getMessage(), e.getMessage().contains(s.metadata.remoteLogSegmentId().toString()));
        }
        assertEquals(0, rsm.openStreams());
        interrupted.close();

        // The same from a reader thread cancelled by another thread, as Future.cancel(true) does.
        ExecutorService pool = Executors.newSingleThreadExecutor();
        CountDownLatch reading = new CountDownLatch(1);
        AtomicReference<Throwable> outcome = new AtomicReference<>();
        Future<?> reader = pool.submit(() -> {
            try (InputStream slow = rsm.fetchLogSegment(s.metadata, 0)) {
                byte[] b = new byte[64];
                reading.countDown();
                while (slow.read(b, 0, b.length) >= 0) {
                    Thread.sleep(1);
                }
            } catch (Throwable t) {
                outcome.set(t);
            }
            return null;
        });
        assertTrue(reading.await(30, TimeUnit.SECONDS));
        reader.cancel(true);
        pool.shutdown();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        Throwable t = outcome.get();
        assertTrue(String.valueOf(t), t instanceof InterruptedIOException || t instanceof InterruptedException);
        assertEquals(0, rsm.openStreams());

        // A stream dropped without close is freed once unreachable.
        dropAStream(s.metadata);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (rsm.openStreams() > 0 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        assertEquals(0, rsm.openStreams());
    }

    private void dropAStream(RemoteLogSegmentMetadata md) throws Exception {
        InputStream abandoned = rsm.fetchLogSegment(md, 0);
        assertTrue(abandoned.read() >= 0);
        assertEquals(1, rsm.openStreams());
    }

    @Test
    public void concurrentCopiesFetchesAndClose() throws Exception {
        List<Fixtures.Segment> segments = new ArrayList<>();
        for (String fixture : Arrays.asList("none", "gzip", "snappy", "zstd")) {
            for (Path log : Fixtures.logs(fixture)) {
                segments.add(Fixtures.segment(fixture, log, "fx-concurrent-" + fixture));
            }
        }
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            // Copies from four threads at once: one partition per thread, its segments in order
            // (the broker copies one segment at a time per partition, partitions in parallel).
            List<Future<List<byte[]>>> copied = new ArrayList<>();
            for (int t = 0; t < segments.size(); t += 2) {
                List<Fixtures.Segment> partition = segments.subList(t, t + 2);
                copied.add(pool.submit(() -> {
                    List<byte[]> out = new ArrayList<>();
                    for (Fixtures.Segment s : partition) {
                        rsm.copyLogSegmentData(s.metadata, s.data);
                        out.add(Fixtures.fetch(rsm, s.metadata, 0));
                    }
                    return out;
                }));
            }
            List<byte[]> served = new ArrayList<>();
            for (Future<List<byte[]>> f : copied) {
                served.addAll(f.get(300, TimeUnit.SECONDS));
            }
            for (int i = 0; i < segments.size(); i++) {
                Fixtures.Segment s = segments.get(i);
                assertEquals(Fixtures.originalBatches(s.log, s.metadata.startOffset()), Fixtures.servedBatches(served.get(i)));
            }
            // Many concurrent fetches and index reads of the same segments give the same bytes.
            List<Future<Boolean>> reads = new ArrayList<>();
            for (int round = 0; round < 4; round++) {
                for (int i = 0; i < segments.size(); i++) {
                    Fixtures.Segment s = segments.get(i);
                    byte[] expected = served.get(i);
                    reads.add(pool.submit(() -> Arrays.equals(expected, Fixtures.fetch(rsm, s.metadata, 0))
                            && Fixtures.readAll(rsm.fetchIndex(s.metadata, IndexType.OFFSET)).length > 0));
                }
            }
            for (Future<Boolean> r : reads) {
                assertTrue(r.get(300, TimeUnit.SECONDS));
            }
            assertEquals(0, rsm.openStreams());

            // Close while streams are open and calls are racing: calls after close fail cleanly,
            // streams opened before stay readable to their end.
            Fixtures.Segment s0 = segments.get(0);
            InputStream open = rsm.fetchLogSegment(s0.metadata, 0);
            List<Future<String>> racing = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                racing.add(pool.submit(() -> {
                    try {
                        Fixtures.fetch(rsm, s0.metadata, 0);
                        return "ok";
                    } catch (RemoteStorageException e) {
                        return e.getMessage();
                    }
                }));
            }
            rsm.close();
            for (Future<String> r : racing) {
                String m = r.get(300, TimeUnit.SECONDS);
                assertTrue(m, m.equals("ok") || m.contains("Calving remote storage manager is closed"));
            }
            assertArrayEquals(served.get(0), Fixtures.readAll(open));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    public void aPanicInNativeCodeBecomesRemoteStorageException() throws Exception {
        try {
            NativeRsm.panicForTest("deliberate test panic");
            fail("panicForTest must throw");
        } catch (RemoteStorageException e) {
            String m = e.getMessage();
            assertTrue(m, m.startsWith("panicForTest: internal error in Calving's native library"));
            assertTrue(m, m.contains("deliberate test panic"));
            assertTrue(m, m.contains("rsm.rs:"));
        }
        // The panic hook logged it with a backtrace that names the native entry point.
        java.nio.file.Path logFile = java.nio.file.Paths.get(System.getProperty("org.slf4j.simpleLogger.logFile", "build/test-native.log"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        String log = "";
        while (!log.contains("Java_io_calving_kafka_NativeRsm_panicForTest") && System.nanoTime() < deadline) {
            Thread.sleep(20);
            log = Files.exists(logFile) ? new String(Files.readAllBytes(logFile), java.nio.charset.StandardCharsets.UTF_8) : "";
        }
        assertTrue(log, log.contains("ERROR io.calving.calving_jni.panic - panic at rust/jni/src/rsm.rs:"));
        assertTrue("backtrace with symbols", log.contains("Java_io_calving_kafka_NativeRsm_panicForTest"));
        // The JVM and the plugin carry on.
        Fixtures.Segment s = Fixtures.segment("none", Fixtures.logs("none").get(0), "fx-after-panic");
        rsm.copyLogSegmentData(s.metadata, s.data);
        assertNotEquals(0, Fixtures.fetch(rsm, s.metadata, 0).length);
    }

    /**
     * A Java {@code Error} in a call (here a real {@link OutOfMemoryError}: an allocation past
     * the VM's array limit, inside the call as a copy's allocations are) reaches the broker as a
     * {@link RemoteStorageException} naming the operation and the segment, never as an error that
     * would cancel Kafka's periodic copy task; the plugin carries on.
     */
    @Test
    public void aJavaErrorInACallBecomesRemoteStorageException() throws Exception {
        Fixtures.Segment s = Fixtures.segment("none", Fixtures.logs("none").get(0), "fx-error");
        try {
            rsm.call("copyLogSegmentData", s.metadata, h -> new long[Integer.MAX_VALUE].length);
            fail("the allocation must fail");
        } catch (RemoteStorageException e) {
            assertTrue(e.getCause() instanceof OutOfMemoryError);
            String m = e.getMessage();
            assertTrue(m, m.startsWith("copyLogSegmentData of segment " + s.metadata.remoteLogSegmentId() + " failed: java.lang.OutOfMemoryError"));
        }
        rsm.copyLogSegmentData(s.metadata, s.data);
        assertNotEquals(0, Fixtures.fetch(rsm, s.metadata, 0).length);
    }

    @Test
    public void nativeLibraryIsLoadedFromTheJarResource() {
        assertTrue(NativeLoader.isLoaded());
        assertTrue(NativeLoader.class.getResource(NativeLoader.RESOURCE) != null);
    }
}
