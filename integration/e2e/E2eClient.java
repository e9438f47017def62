// The client side of Calving's end-to-end run (integration/e2e/run.sh) and measurements
// (integration/e2e/measure.sh): Apache Kafka's own producer, consumer and admin clients against a
// real broker. Compiled once by the scripts (javac -cp "$LIBS/*") and run per step:
//
//   produce      --bootstrap B --oracle FILE --tiering on|off [--records N] [--segment-bytes N]
//                creates the e2e_* topics and produces the workload; writes every produced record
//                (offset and timestamp from the send callback) to the oracle file; ends with one
//                "end marker" record per partition that rolls the last data segment, so that every
//                data record can tier
//   wait-tiered  --bootstrap B --log-dir D --topics a,b --out FILE [--timeout-s N] [--tiering on|off]
//                [--partitions N] [--end-marker yes|no]
//                waits until every partition's rolled segments were copied to remote storage and
//                deleted locally (only the active segment, holding the end marker, stays local);
//                writes "topic partition earliest earliestLocal latestTiered latest" per partition
//   consume      --bootstrap B --topics a,b --isolation read_committed|read_uncommitted --out FILE
//                [--latency-out FILE] reads every partition from its beginning to its end offset
//                (--out -: only counts, for measurements)
//   offsets      --bootstrap B --queries FILE --out FILE   ListOffsets by timestamp (Admin)
//   delete-topic --bootstrap B --topic T
//   seek-bench   --bootstrap B --topic T --samples N --max-offset N --out FILE  (latency of
//                seek + first record at random offsets, one partition)
//
// File formats (tab separated, one record per line, sorted by topic, partition, offset):
//   topic partition offset timestamp tstype(C|L) status key value headers
//   status: N plain, C committed txn, A aborted txn, M end marker, - (consumed: unknown)
//   key/value: "-" for null, otherwise lowercase hex (empty string for empty bytes)
//   headers: comma separated keyhex=valuehex (valuehex "-" for null), in record order
//
// Exit status 0 on success, 1 on failure (message on stderr).

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class E2eClient {

    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final String TXN_TOPIC = "e2e_txn";
    static final String LAT_TOPIC = "e2e_lat";
    static final int PARTITIONS = 2;
    static final long DAY = 86_400_000L;
    /** segment.ms of the CreateTime topics: long, so that only size rolls them (and the end marker). */
    static final long SEGMENT_MS = 7 * DAY;
    /** segment.ms of the LogAppendTime topic (append time is wall-clock: its end marker waits this long). */
    static final long LAT_SEGMENT_MS = 8_000L;

    static Map<String, String> opts = new HashMap<>();

    public static void main(String[] args) {
        try {
            if (args.length == 0) throw new IllegalArgumentException("usage: E2eClient <command> [--key value]...");
            for (int i = 1; i + 1 < args.length; i += 2) {
                if (!args[i].startsWith("--")) throw new IllegalArgumentException("bad argument " + args[i]);
                opts.put(args[i].substring(2), args[i + 1]);
            }
            switch (args[0]) {
                case "produce": produce(); break;
                case "wait-tiered": waitTiered(); break;
                case "consume": consume(); break;
                case "offsets": offsets(); break;
                case "delete-topic": deleteTopic(); break;
                case "seek-bench": seekBench(); break;
                default: throw new IllegalArgumentException("unknown command " + args[0]);
            }
            System.exit(0);
        } catch (Throwable t) {
            System.err.println("E2eClient: FAILED: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }

    static String opt(String k) {
        String v = opts.get(k);
        if (v == null) throw new IllegalArgumentException("missing --" + k);
        return v;
    }

    static String opt(String k, String dflt) { return opts.getOrDefault(k, dflt); }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "120000");
        return Admin.create(p);
    }

    // ------------------------------------------------------------------------------------------
    // Encoding of the oracle/dump lines

    static final char[] HEX = "0123456789abcdef".toCharArray();

    static String hex(byte[] b) {
        if (b == null) return "-";
        char[] c = new char[b.length * 2];
        for (int i = 0; i < b.length; i++) {
            c[2 * i] = HEX[(b[i] >> 4) & 15];
            c[2 * i + 1] = HEX[b[i] & 15];
        }
        return new String(c);
    }

    static String headers(Iterable<Header> hs) {
        StringBuilder sb = new StringBuilder();
        for (Header h : hs) {
            if (sb.length() > 0) sb.append(',');
            sb.append(hex(h.key().getBytes(StandardCharsets.UTF_8))).append('=').append(hex(h.value()));
        }
        return sb.toString();
    }

    static final class Row {
        final String topic;
        int partition;
        long offset = -1;
        long timestamp;
        char tsType;
        char status;
        final String key, value, headers;

        Row(ProducerRecord<byte[], byte[]> r, char status, char tsType) {
            this.topic = r.topic();
            this.status = status;
            this.tsType = tsType;
            this.timestamp = r.timestamp() == null ? -1 : r.timestamp();
            this.key = hex(r.key());
            this.value = hex(r.value());
            this.headers = headers(r.headers());
        }

        /** Takes the producer's acknowledgement of this row's record. */
        void acknowledged(RecordMetadata md) {
            partition = md.partition();
            offset = md.offset();
            timestamp = acknowledgedTimestamp(md, tsType == 'L' || timestamp < 0 ? null : timestamp);
        }

        Row(ConsumerRecord<byte[], byte[]> r) {
            this.topic = r.topic();
            this.partition = r.partition();
            this.offset = r.offset();
            this.timestamp = r.timestamp();
            this.tsType = r.timestampType() == TimestampType.LOG_APPEND_TIME ? 'L'
                : r.timestampType() == TimestampType.CREATE_TIME ? 'C' : '?';
            this.status = '-';
            this.key = hex(r.key());
            this.value = hex(r.value());
            this.headers = headers(r.headers());
        }

        String line() {
            return topic + "\t" + partition + "\t" + offset + "\t" + timestamp + "\t" + tsType + "\t" + status
                + "\t" + key + "\t" + value + "\t" + headers;
        }
    }

    static void writeRows(Path out, List<Row> rows) throws IOException {
        rows.sort(Comparator.comparing((Row r) -> r.topic).thenComparingInt(r -> r.partition)
            .thenComparingLong(r -> r.offset));
        try (BufferedWriter w = Files.newBufferedWriter(out)) {
            for (Row r : rows) { w.write(r.line()); w.write('\n'); }
        }
    }

    // ------------------------------------------------------------------------------------------
    // produce

    static final class Gen {
        final Random rnd;
        final String tag;
        final long[] nextTs;
        int n;

        Gen(long seed, String tag, long t0) { this(seed, tag, t0, PARTITIONS); }

        /** For other workloads (integration/maintain/MaintainClient.java): any number of partitions. */
        Gen(long seed, String tag, long t0, int partitions) {
            rnd = new Random(seed);
            this.tag = tag;
            nextTs = new long[partitions];
            Arrays.fill(nextTs, t0);
        }

        byte[] bytes(int len) { byte[] b = new byte[len]; rnd.nextBytes(b); return b; }

        byte[] binary(int len) {
            byte[] b = bytes(Math.max(len, 4));
            b[0] = (byte) 0xff; b[1] = (byte) 0xfe; b[2] = (byte) 0xc3; b[3] = (byte) 0x28;
            return b;
        }

        byte[] text(int len) {
            StringBuilder sb = new StringBuilder(len + 64);
            sb.append("{\"tag\":\"").append(tag).append("\",\"n\":").append(n).append(",\"items\":[");
            String[] words = {"alpha", "beta", "gamma", "delta", "glacier", "calving", "iceberg", "floe"};
            while (sb.length() < len)
                sb.append("{\"w\":\"").append(words[rnd.nextInt(words.length)]).append("\",\"v\":")
                  .append(rnd.nextInt(100000)).append("},");
            sb.append("{}]}");
            return sb.toString().getBytes(StandardCharsets.UTF_8);
        }

        /** Non-decreasing per partition (every 4th repeats the previous one), so that ListOffsets by
         *  timestamp has exactly one right answer: the first offset whose timestamp is >= the target. */
        long timestamp(int partition) {
            long ts = nextTs[partition];
            if (n % 4 != 0) nextTs[partition] += 1 + rnd.nextInt(20);
            return ts;
        }

        ProducerRecord<byte[], byte[]> record(String topic, int partition) {
            n++;
            int dice = rnd.nextInt(100);
            long ts = timestamp(partition);
            byte[] key = (tag + "-key-" + n).getBytes(StandardCharsets.UTF_8);
            byte[] value;
            List<Header> headers = new ArrayList<>();
            if (dice < 38) {                       // JSON-like text
                value = text(20 + rnd.nextInt(1500));
            } else if (dice < 52) {                // headers: duplicate keys, null and empty values
                value = text(10 + rnd.nextInt(300));
                headers.add(new RecordHeader("trace-id", bytes(16)));
                headers.add(new RecordHeader("h", "1".getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("h", "2".getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("null-value", null));
                headers.add(new RecordHeader("empty-value", new byte[0]));
                headers.add(new RecordHeader("", "empty key".getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("ключ-🔑", binary(8)));
                headers.add(new RecordHeader("h", "3".getBytes(StandardCharsets.UTF_8)));
            } else if (dice < 62) {                // null key
                key = null;
                value = text(10 + rnd.nextInt(400));
            } else if (dice < 70) {                // tombstone
                value = null;
            } else if (dice < 73) {                // null key and value
                key = null;
                value = null;
            } else if (dice < 77) {                // empty key and value
                key = new byte[0];
                value = new byte[0];
            } else if (dice < 88) {                // binary (not UTF-8)
                key = binary(1 + rnd.nextInt(32));
                value = binary(1 + rnd.nextInt(3000));
            } else if (dice < 94) {                // larger than index.interval.bytes (4096): 10-50 KiB
                int len = 10_240 + rnd.nextInt(40_960);
                byte[] a = binary(len / 2);
                byte[] b = text(len - len / 2);
                value = Arrays.copyOf(a, a.length + b.length);
                System.arraycopy(b, 0, value, a.length, b.length);
            } else {                               // headers only
                key = null;
                value = null;
                headers.add(new RecordHeader("only", "headers".getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("only", null));
            }
            return new ProducerRecord<>(topic, partition, ts, key, value, headers);
        }
    }

    static Properties producerProps(String codec) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, "16384");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        return p;
    }

    static final List<Row> produced = Collections.synchronizedList(new ArrayList<>());
    static volatile Exception sendError;

    static void send(KafkaProducer<byte[], byte[]> producer, ProducerRecord<byte[], byte[]> rec, char status, char tsType) {
        Row row = new Row(rec, status, tsType);
        produced.add(row);
        producer.send(rec, (RecordMetadata md, Exception e) -> {
            if (e != null) { sendError = e; return; }
            row.acknowledged(md);
        });
    }

    /**
     * The timestamp a record has in the log, from its acknowledgement: the broker's append time for
     * a LogAppendTime topic (pass {@code createTime} null), else the record's own {@code createTime}.
     * Not {@code md.timestamp()} for CreateTime: when the broker finds a retried batch a duplicate
     * of one it already holds, its produce response carries that batch's max timestamp as if it
     * were a log append time (UnifiedLog's duplicate branch sets {@code logAppendTime} to the batch
     * metadata's timestamp), and the producer then acknowledges every record of the batch with it
     * (seen in integration/cluster/faults.sh: two records of a retried transactional batch both
     * acknowledged at the later one's timestamp).
     */
    static long acknowledgedTimestamp(RecordMetadata md, Long createTime) {
        return createTime == null ? md.timestamp() : createTime;
    }

    static void produce() throws Exception {
        boolean tiering = opt("tiering", "on").equals("on");
        int records = Integer.parseInt(opt("records", "300"));
        String segmentBytes = opt("segment-bytes", "131072");
        long t0 = (System.currentTimeMillis() - DAY) / 1000 * 1000;

        try (Admin admin = admin()) {
            createTopics(admin, tiering, segmentBytes);
        }

        // 1. LogAppendTime topic first: its end marker must wait LAT_SEGMENT_MS of wall-clock time.
        //    Not idempotent (acks=1): batches without producer id.
        Properties lp = producerProps("gzip");
        lp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        lp.put(ProducerConfig.ACKS_CONFIG, "1");
        long latDone;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(lp)) {
            Gen g = new Gen(7, "lat", t0);
            for (int i = 0; i < records; i++)
                for (int part = 0; part < PARTITIONS; part++) send(p, g.record(LAT_TOPIC, part), 'N', 'L');
            p.flush();
            latDone = System.currentTimeMillis();
        }
        check();
        System.err.println("produced " + LAT_TOPIC);

        // 2. One idempotent producer per codec.
        long[] lastTs = new long[PARTITIONS];
        for (int c = 0; c < CODECS.length; c++) {
            String topic = "e2e_" + CODECS[c];
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(CODECS[c]))) {
                Gen g = new Gen(100 + c, CODECS[c], t0);
                for (int i = 0; i < records; i++) {
                    for (int part = 0; part < PARTITIONS; part++) send(p, g.record(topic, part), 'N', 'C');
                    if (i % 50 == 49) p.flush();   // vary batch sizes
                }
                p.flush();
                for (int part = 0; part < PARTITIONS; part++) lastTs[part] = Math.max(lastTs[part], g.nextTs[part]);
            }
            check();
            System.err.println("produced " + topic);
        }

        // 3. Transactions: every third one aborted; some span both partitions, some one.
        Properties tp = producerProps("lz4");
        tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "calving-e2e-txn");
        int committed = 0, aborted = 0;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(tp)) {
            p.initTransactions();
            Gen g = new Gen(200, "txn", t0);
            int txns = Math.max(6, records / 10);
            for (int t = 0; t < txns; t++) {
                boolean abort = t % 3 == 1;
                p.beginTransaction();
                int n = 10 + (t % 4) * 3;
                for (int i = 0; i < n; i++) {
                    int part = (t % 5 == 2) ? 0 : i % PARTITIONS;
                    send(p, g.record(TXN_TOPIC, part), abort ? 'A' : 'C', 'C');
                }
                p.flush();   // every record written (and acknowledged) before the outcome
                check();
                if (abort) { p.abortTransaction(); aborted++; } else { p.commitTransaction(); committed++; }
            }
            for (int part = 0; part < PARTITIONS; part++) lastTs[part] = Math.max(lastTs[part], g.nextTs[part]);
        }
        check();
        System.err.println("produced " + TXN_TOPIC + ": " + committed + " committed, " + aborted + " aborted transactions");

        // 4. End markers: a record whose timestamp is SEGMENT_MS past the segment's first batch rolls
        //    the segment (LogSegment.shouldRoll compares record timestamps for CreateTime). The
        //    marker is the first record of the new active segment; everything before it can tier.
        long markerTs = System.currentTimeMillis() + SEGMENT_MS + 60_000;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps("none"))) {
            for (String topic : topics()) {
                if (topic.equals(LAT_TOPIC)) continue;
                for (int part = 0; part < PARTITIONS; part++)
                    send(p, new ProducerRecord<>(topic, part, markerTs, null,
                        "end marker".getBytes(StandardCharsets.UTF_8)), 'M', 'C');
            }
            p.flush();
            long wait = latDone + LAT_SEGMENT_MS + 500 - System.currentTimeMillis();
            if (wait > 0) Thread.sleep(wait);
            for (int part = 0; part < PARTITIONS; part++)
                send(p, new ProducerRecord<>(LAT_TOPIC, part, null, null,
                    "end marker".getBytes(StandardCharsets.UTF_8)), 'M', 'L');
            p.flush();
        }
        check();
        for (Row r : produced)
            if (r.offset < 0) throw new IllegalStateException("a record of " + r.topic + " has no offset");
        writeRows(Path.of(opt("oracle")), new ArrayList<>(produced));
        System.err.println("produced " + produced.size() + " records into " + topics().size() + " topics");
    }

    static void check() throws Exception {
        if (sendError != null) throw new IllegalStateException("send failed", sendError);
    }

    static List<String> topics() {
        List<String> t = new ArrayList<>();
        for (String c : CODECS) t.add("e2e_" + c);
        t.add(TXN_TOPIC);
        t.add(LAT_TOPIC);
        return t;
    }

    static void createTopics(Admin admin, boolean tiering, String segmentBytes) throws Exception {
        List<NewTopic> nts = new ArrayList<>();
        for (String t : topics()) {
            Map<String, String> c = new LinkedHashMap<>();
            c.put("retention.ms", "-1");
            c.put("segment.ms", Long.toString(t.equals(LAT_TOPIC) ? LAT_SEGMENT_MS : SEGMENT_MS));
            c.put("message.timestamp.after.max.ms", Long.toString(Long.MAX_VALUE));
            c.put("message.timestamp.type", t.equals(LAT_TOPIC) ? "LogAppendTime" : "CreateTime");
            c.put("compression.type", "producer");
            if (tiering) {
                c.put("remote.storage.enable", "true");
                c.put("local.retention.ms", "1000");
            }
            nts.add(new NewTopic(t, PARTITIONS, (short) 1).configs(c));
        }
        // Kafka 4 refuses segment.bytes below 1 MiB; internal.segment.bytes (the test-only override
        // Kafka's own tiered-storage tests use) allows small segments, hence many of them.
        List<NewTopic> withSmall = new ArrayList<>();
        for (NewTopic nt : nts) {
            Map<String, String> c = new LinkedHashMap<>(nt.configs());
            c.put(Integer.parseInt(segmentBytes) < 1 << 20 ? "internal.segment.bytes" : "segment.bytes", segmentBytes);
            withSmall.add(new NewTopic(nt.name(), PARTITIONS, (short) 1).configs(c));
        }
        admin.createTopics(withSmall).all().get();
        waitForLeaders(admin, topics());
    }

    static void waitForLeaders(Admin admin, List<String> topics) throws Exception {
        long deadline = System.currentTimeMillis() + 60_000;
        while (true) {
            try {
                Map<String, TopicDescription> d = admin.describeTopics(topics).allTopicNames().get();
                boolean ok = d.values().stream().allMatch(td -> td.partitions().stream().allMatch(p -> p.leader() != null));
                if (ok) return;
            } catch (ExecutionException e) {
                if (System.currentTimeMillis() > deadline) throw e;
            }
            if (System.currentTimeMillis() > deadline) throw new IllegalStateException("no leaders after 60 s");
            Thread.sleep(200);
        }
    }

    // ------------------------------------------------------------------------------------------
    // wait-tiered

    static List<TopicPartition> partitions(List<String> topics) {
        List<TopicPartition> tps = new ArrayList<>();
        int n = Integer.parseInt(opt("partitions", Integer.toString(PARTITIONS)));
        for (String t : topics) for (int p = 0; p < n; p++) tps.add(new TopicPartition(t, p));
        return tps;
    }

    static Map<TopicPartition, Long> listOffsets(Admin admin, List<TopicPartition> tps, OffsetSpec spec) throws Exception {
        Map<TopicPartition, OffsetSpec> q = new HashMap<>();
        for (TopicPartition tp : tps) q.put(tp, spec);
        Map<TopicPartition, ListOffsetsResultInfo> r = admin.listOffsets(q).all().get();
        Map<TopicPartition, Long> out = new HashMap<>();
        for (Map.Entry<TopicPartition, ListOffsetsResultInfo> e : r.entrySet()) out.put(e.getKey(), e.getValue().offset());
        return out;
    }

    static long localSegments(Path logDir, TopicPartition tp) throws IOException {
        Path dir = logDir.resolve(tp.topic() + "-" + tp.partition());
        if (!Files.isDirectory(dir)) return -1;
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".log")).count();
        }
    }

    static void waitTiered() throws Exception {
        List<String> topics = Arrays.asList(opt("topics").split(","));
        // Several brokers (integration/cluster/run.sh): their log dirs, comma-separated; every
        // replica must be down to its active segment.
        List<Path> logDirs = new ArrayList<>();
        for (String d : opt("log-dir").split(",")) logDirs.add(Path.of(d));
        boolean tiering = opt("tiering", "on").equals("on");
        boolean endMarker = opt("end-marker", "yes").equals("yes");
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(opt("timeout-s", "180"));
        List<TopicPartition> tps = partitions(topics);
        try (Admin admin = admin()) {
            String status = "";
            while (true) {
                Map<TopicPartition, Long> earliest = listOffsets(admin, tps, OffsetSpec.earliest());
                Map<TopicPartition, Long> local = listOffsets(admin, tps, OffsetSpec.earliestLocal());
                Map<TopicPartition, Long> tiered = listOffsets(admin, tps, OffsetSpec.latestTiered());
                Map<TopicPartition, Long> latest = listOffsets(admin, tps, OffsetSpec.latest());
                int pending = 0;
                StringBuilder lines = new StringBuilder();
                StringBuilder why = new StringBuilder();
                for (TopicPartition tp : tps) {
                    long segs = 0;
                    for (Path logDir : logDirs) segs = Math.max(segs, localSegments(logDir, tp));
                    boolean done = !tiering || (segs == 1 && local.get(tp) == tiered.get(tp) + 1
                        // Everything before the end marker; the marker may tier too, when local
                        // retention rolls the active segment (its LogAppendTime is wall-clock).
                        && (!endMarker || local.get(tp) >= latest.get(tp) - 1));
                    if (!done) {
                        pending++;
                        why.append(String.format(" %s(local segments %d, earliest-local %d, latest-tiered %d, latest %d)",
                            tp, segs, local.get(tp), tiered.get(tp), latest.get(tp)));
                    }
                    lines.append(tp.topic()).append('\t').append(tp.partition()).append('\t').append(earliest.get(tp))
                        .append('\t').append(local.get(tp)).append('\t').append(tiered.get(tp)).append('\t')
                        .append(latest.get(tp)).append('\n');
                }
                if (pending == 0) {
                    Files.writeString(Path.of(opt("out")), lines.toString());
                    return;
                }
                String s = pending + " partition(s) not yet tiered";
                if (!s.equals(status)) { System.err.println("wait-tiered: " + s); status = s; }
                if (System.currentTimeMillis() > deadline) {
                    Files.writeString(Path.of(opt("out")), lines.toString());
                    throw new IllegalStateException("timed out:" + why);
                }
                Thread.sleep(1000);
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // consume

    static void consume() throws Exception {
        List<String> topics = Arrays.asList(opt("topics").split(","));
        String isolation = opt("isolation");
        long timeoutMs = 1000L * Long.parseLong(opt("timeout-s", "300"));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.CHECK_CRCS_CONFIG, "true");
        String partitionFetchBytes = opt("max-partition-fetch-bytes", "");
        if (!partitionFetchBytes.isEmpty()) p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, partitionFetchBytes);
        List<Row> rows = new ArrayList<>();
        boolean keep = !opt("out").equals("-");   // "-": count only (measure.sh)
        long count = 0;
        List<Long> pollNanos = new ArrayList<>();
        long bytes = 0;
        long start = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : topics) {
                int n = c.partitionsFor(t).size();
                for (int i = 0; i < n; i++) tps.add(new TopicPartition(t, i));
            }
            c.assign(tps);
            for (TopicPartition tp : tps) c.seek(tp, 0);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) { done = false; break; }
                if (done) break;
                if (System.currentTimeMillis() > deadline) {
                    StringBuilder sb = new StringBuilder();
                    for (TopicPartition tp : tps) sb.append(' ').append(tp).append(" at ").append(c.position(tp)).append('/').append(end.get(tp));
                    throw new IllegalStateException("consume timed out:" + sb);
                }
                long t = System.nanoTime();
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
                long dt = System.nanoTime() - t;
                if (!recs.isEmpty()) pollNanos.add(dt);
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    if (keep) rows.add(new Row(r)); else count++;
                    bytes += Math.max(0, r.serializedKeySize()) + Math.max(0, r.serializedValueSize());
                }
            }
        }
        double secs = (System.nanoTime() - start) / 1e9;
        if (keep) writeRows(Path.of(opt("out")), rows);
        System.err.printf("consume %s: %d records, %.1f MiB of keys+values in %.1f s, %d non-empty polls%n",
            isolation, keep ? rows.size() : count, bytes / 1048576.0, secs, pollNanos.size());
        if (opts.containsKey("latency-out")) {
            StringBuilder sb = new StringBuilder();
            for (long n : pollNanos) sb.append(n / 1e6).append('\n');
            Files.writeString(Path.of(opt("latency-out")), sb.toString());
        }
    }

    // ------------------------------------------------------------------------------------------
    // offsets by timestamp

    static void offsets() throws Exception {
        List<String> out = new ArrayList<>();
        try (Admin admin = admin()) {
            for (String line : Files.readAllLines(Path.of(opt("queries")))) {
                if (line.isBlank()) continue;
                String[] f = line.split("\t");
                TopicPartition tp = new TopicPartition(f[0], Integer.parseInt(f[1]));
                long ts = Long.parseLong(f[2]);
                ListOffsetsResultInfo r = admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(ts))).partitionResult(tp).get();
                out.add(f[0] + "\t" + f[1] + "\t" + ts + "\t" + r.offset() + "\t" + r.timestamp());
            }
        }
        Files.write(Path.of(opt("out")), out);
    }

    // ------------------------------------------------------------------------------------------
    // delete-topic

    static void deleteTopic() throws Exception {
        try (Admin admin = admin()) {
            admin.deleteTopics(List.of(opt("topic"))).all().get();
        }
    }

    // ------------------------------------------------------------------------------------------
    // seek-bench: latency of "seek to a random offset, poll until its first record" (one partition)

    static void seekBench() throws Exception {
        String topic = opt("topic");
        int samples = Integer.parseInt(opt("samples", "200"));
        long maxOffset = Long.parseLong(opt("max-offset"));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1");
        Random rnd = new Random(42);
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            TopicPartition tp = new TopicPartition(topic, Integer.parseInt(opt("partition", "0")));
            c.assign(List.of(tp));
            for (int i = 0; i < samples + 5; i++) {
                long target = (long) (rnd.nextDouble() * maxOffset);
                c.seek(tp, target);
                long t = System.nanoTime();
                ConsumerRecords<byte[], byte[]> recs;
                long deadline = System.currentTimeMillis() + 30_000;
                do {
                    recs = c.poll(Duration.ofMillis(100));
                    if (System.currentTimeMillis() > deadline) throw new IllegalStateException("no record at " + target);
                } while (recs.isEmpty());
                long dt = System.nanoTime() - t;
                ConsumerRecord<byte[], byte[]> first = recs.iterator().next();
                if (first.offset() < target) throw new IllegalStateException("got offset " + first.offset() + " for " + target);
                if (i >= 5) out.add(Double.toString(dt / 1e6));   // 5 warm-up samples
            }
        }
        Files.write(Path.of(opt("out")), out);
    }
}
