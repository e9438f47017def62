package io.calving.kafka;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.record.FileRecords;
import org.apache.kafka.common.record.MemoryRecords;
import org.apache.kafka.common.record.Record;
import org.apache.kafka.common.record.RecordBatch;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.server.log.remote.storage.LogSegmentData;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;

/**
 * The real segment fixtures (tests/fixtures/segments, written by a Kafka 4.1.2 broker) as the
 * broker hands them to a RemoteStorageManager, and Kafka's own parsers to check what comes back.
 */
final class Fixtures {

    /** Fixtures with the broker's side files (the legacy ones have a .log only). */
    static final List<String> BROKER = Arrays.asList("none", "gzip", "snappy", "lz4", "zstd", "txn", "log-append-time");

    private Fixtures() {
    }

    static Path dir(String fixture) {
        return Paths.get(System.getProperty("calving.test.fixtures", "tests/fixtures/segments")).resolve(fixture);
    }

    /** The fixture's .log files, by base offset. */
    static List<Path> logs(String fixture) throws IOException {
        try (Stream<Path> s = Files.list(dir(fixture))) {
            return s.filter(p -> p.toString().endsWith(".log")).sorted().collect(Collectors.toList());
        }
    }

    static long baseOffset(Path log) {
        String name = log.getFileName().toString();
        return Long.parseLong(name.substring(0, name.indexOf('.')));
    }

    /** What the broker passes for one segment: its metadata and its files. */
    static final class Segment {
        final RemoteLogSegmentMetadata metadata;
        final LogSegmentData data;
        final Path log;

        Segment(RemoteLogSegmentMetadata metadata, LogSegmentData data, Path log) {
            this.metadata = metadata;
            this.data = data;
            this.log = log;
        }
    }

    /** A topic id per fixture, stable across runs. */
    static Uuid topicId(String topic) {
        return new Uuid(topic.hashCode() | 1L, 0x5EED_0000_0000_0000L ^ topic.length());
    }

    static Segment segment(String fixture, Path log, String topic) throws IOException {
        long base = baseOffset(log);
        long last = base;
        long maxTimestamp = -1;
        try (FileRecords records = FileRecords.open(log.toFile(), false)) {
            for (RecordBatch b : records.batches()) {
                last = b.lastOffset();
                maxTimestamp = Math.max(maxTimestamp, b.maxTimestamp());
            }
        }
        Path dir = log.getParent();
        Path snapshot;
        try (Stream<Path> s = Files.list(dir)) {
            snapshot = s.filter(p -> p.toString().endsWith(".snapshot") && baseOffset(p) > base)
                    .sorted().findFirst().orElseThrow(() -> new IOException("no snapshot after " + log));
        }
        Path txn = Paths.get(log.toString().replace(".log", ".txnindex"));
        Path checkpoint = dir.resolve("leader-epoch-checkpoint");
        ByteBuffer epochs = ByteBuffer.wrap(Files.readAllBytes(checkpoint));
        TopicIdPartition tp = new TopicIdPartition(topicId(topic), new TopicPartition(topic, 0));
        RemoteLogSegmentMetadata md = new RemoteLogSegmentMetadata(
                new RemoteLogSegmentId(tp, Uuid.randomUuid()), base, last, maxTimestamp, 0,
                System.currentTimeMillis(), (int) Files.size(log), Optional.empty(),
                RemoteLogSegmentState.COPY_SEGMENT_STARTED, Collections.singletonMap(0, base));
        LogSegmentData data = new LogSegmentData(log, Paths.get(log.toString().replace(".log", ".index")),
                Paths.get(log.toString().replace(".log", ".timeindex")),
                Files.exists(txn) ? Optional.of(txn) : Optional.empty(), snapshot, epochs);
        return new Segment(md, data, log);
    }

    /** The plugin's configuration on a fresh local warehouse (embedded SQLite catalog). */
    static Map<String, Object> config(Path dir) {
        Map<String, Object> c = new HashMap<>();
        c.put("warehouse", dir.resolve("warehouse").toUri().toString());
        c.put("broker.id", 1);
        return c;
    }

    static byte[] readAll(InputStream in) throws IOException {
        try (InputStream s = in) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[7919];
            int n;
            while ((n = s.read(buf, 0, buf.length)) >= 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    static byte[] fetch(RemoteStorageManager rsm, RemoteLogSegmentMetadata md, int start) throws Exception {
        return readAll(rsm.fetchLogSegment(md, start));
    }

    /** One batch as Kafka's parser sees it: every batch fact and every record. */
    static String describe(RecordBatch b) {
        StringBuilder s = new StringBuilder();
        s.append("batch base=").append(b.baseOffset()).append(" last=").append(b.lastOffset())
                .append(" magic=").append(b.magic()).append(" epoch=").append(b.partitionLeaderEpoch())
                .append(" pid=").append(b.producerId()).append(" pepoch=").append(b.producerEpoch())
                .append(" seq=").append(b.baseSequence()).append(" txn=").append(b.isTransactional())
                .append(" control=").append(b.isControlBatch()).append(" tstype=").append(b.timestampType())
                .append(" maxts=").append(b.maxTimestamp()).append('\n');
        for (Record r : b) {
            s.append("  ").append(r.offset()).append(" ts=").append(r.timestamp())
                    .append(" key=").append(r.hasKey() ? Utils.toArray(r.key()).length + ":" + Arrays.hashCode(Utils.toArray(r.key())) : "null")
                    .append(" value=").append(r.hasValue() ? Utils.toArray(r.value()).length + ":" + Arrays.hashCode(Utils.toArray(r.value())) : "null");
            for (Header h : r.headers()) {
                s.append(" h[").append(h.key()).append('=')
                        .append(h.value() == null ? "null" : Arrays.toString(h.value())).append(']');
            }
            s.append('\n');
        }
        return s.toString();
    }

    /** The batches Kafka's MemoryRecords parses from served bytes, each checked with ensureValid(). */
    static List<String> servedBatches(byte[] served) {
        List<String> out = new ArrayList<>();
        for (RecordBatch b : MemoryRecords.readableRecords(ByteBuffer.wrap(served)).batches()) {
            b.ensureValid();
            out.add(describe(b));
        }
        return out;
    }

    /** The batches of the original segment file from base offset {@code from} on, read by Kafka's FileRecords. */
    static List<String> originalBatches(Path log, long from) throws IOException {
        List<String> out = new ArrayList<>();
        try (FileRecords records = FileRecords.open(log.toFile(), false)) {
            for (RecordBatch b : records.batches()) {
                if (b.baseOffset() >= from) {
                    b.ensureValid();
                    out.add(describe(b));
                }
            }
        }
        return out;
    }

    /** Reads the served offset index: (relative offset, position) pairs. */
    static List<int[]> offsetIndex(byte[] index) {
        assertEquals("offset index entries are 8 bytes", 0, index.length % 8);
        ByteBuffer b = ByteBuffer.wrap(index);
        List<int[]> out = new ArrayList<>();
        while (b.hasRemaining()) {
            out.add(new int[] {b.getInt(), b.getInt()});
        }
        assertTrue(out.size() > 0);
        return out;
    }

    static File tempDir(String name) throws IOException {
        return Files.createTempDirectory("calving-" + name + "-").toFile();
    }
}
