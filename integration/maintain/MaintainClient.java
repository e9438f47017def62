// The client side of Calving's table-maintenance run (integration/maintain/run.sh): Apache Kafka's
// own producer, consumer and admin clients against a real broker. Compiled together with
// integration/e2e/E2eClient.java (whose record generator, oracle lines and helpers it reuses; its
// wait-tiered and delete-topic commands serve this run as they are):
//
//   produce    --bootstrap B --oracle FILE --round 1|2 --topics a,b [--partitions N] [--records N]
//              [--segment-bytes N]
//              round 1 creates the topics (remote storage, local.retention.ms=1000, retention.ms=-1,
//              segment.ms one day, tiny segments); each round writes N records per partition per
//              topic with an idempotent producer, interleaved with transactions of a transactional
//              producer (every third one aborted, some spanning every partition), then one end
//              marker per partition whose timestamp rolls the last data segment. Timestamps lie in
//              the past (round 1: 30 days ago, its markers 20 days ago; round 2: 10 days ago, its
//              markers 5 days ago), so local retention deletes every tiered segment and a
//              retention.ms between them (see `retention`) deletes round 1's segments up to the
//              first one holding a transaction marker (markers carry the coordinator's wall-clock
//              time)
//   consume    --bootstrap B --topics a,b --isolation read_committed|read_uncommitted --out FILE
//              [--stall-s N] [--timeout-s N]
//              reads every partition from its beginning (seekToBeginning: the earliest offset,
//              which retention may have moved) to its end offset; fails when no record came for
//              --stall-s seconds (a remote fetch that keeps failing), naming where each partition
//              stopped
//   retention  --bootstrap B --topic T --retention-ms N --out FILE [--timeout-s N]
//              sets the topic's retention.ms, then waits until the earliest offset of every
//              partition moved above 0 and stayed for 3 s; writes "topic partition earliest" per
//              partition
//
// File formats: those of E2eClient.java (oracle and dump lines).
// Exit status 0 on success, 1 on failure (message on stderr).

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class MaintainClient {

    static final long DAY = E2eClient.DAY;

    public static void main(String[] args) {
        try {
            if (args.length == 0) throw new IllegalArgumentException("usage: MaintainClient <command> [--key value]...");
            for (int i = 1; i + 1 < args.length; i += 2) {
                if (!args[i].startsWith("--")) throw new IllegalArgumentException("bad argument " + args[i]);
                E2eClient.opts.put(args[i].substring(2), args[i + 1]);
            }
            switch (args[0]) {
                case "produce": produce(); break;
                case "consume": consume(); break;
                case "retention": retention(); break;
                default: throw new IllegalArgumentException("unknown command " + args[0]);
            }
            System.exit(0);
        } catch (Throwable t) {
            System.err.println("MaintainClient: FAILED: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }

    static String opt(String k) { return E2eClient.opt(k); }

    static String opt(String k, String dflt) { return E2eClient.opt(k, dflt); }

    static List<String> topics() { return Arrays.asList(opt("topics").split(",")); }

    static int partitions() { return Integer.parseInt(opt("partitions", "3")); }

    // ------------------------------------------------------------------------------------------
    // produce

    static void createTopics(Admin admin) throws Exception {
        String segmentBytes = opt("segment-bytes", "65536");
        List<NewTopic> nts = new ArrayList<>();
        for (String t : topics()) {
            Map<String, String> c = new LinkedHashMap<>();
            c.put("remote.storage.enable", "true");
            c.put("local.retention.ms", "1000");
            c.put("retention.ms", "-1");
            c.put("segment.ms", Long.toString(DAY));
            c.put("message.timestamp.type", "CreateTime");
            c.put("message.timestamp.before.max.ms", Long.toString(Long.MAX_VALUE));
            c.put("message.timestamp.after.max.ms", Long.toString(Long.MAX_VALUE));
            c.put("compression.type", "producer");
            // Kafka 4 refuses segment.bytes below 1 MiB; internal.segment.bytes (4.1+, the test-only
            // override of Kafka's own tiered-storage tests) allows small segments.
            c.put(Integer.parseInt(segmentBytes) < 1 << 20 ? "internal.segment.bytes" : "segment.bytes", segmentBytes);
            // Several brokers (integration/cluster/run.sh): replicas and min.insync.replicas.
            short replicas = Short.parseShort(opt("replication-factor", "1"));
            if (replicas > 1) c.put("min.insync.replicas", opt("min-isr", "2"));
            nts.add(new NewTopic(t, partitions(), replicas).configs(c));
        }
        admin.createTopics(nts).all().get();
        E2eClient.waitForLeaders(admin, topics());
    }

    static void produce() throws Exception {
        int round = Integer.parseInt(opt("round"));
        int records = Integer.parseInt(opt("records", "250"));
        int parts = partitions();
        long now = System.currentTimeMillis() / 1000 * 1000;
        long t0 = now - (round == 1 ? 30 : 10) * DAY;
        long markerTs = now - (round == 1 ? 20 : 5) * DAY;
        if (round == 1) {
            try (Admin admin = E2eClient.admin()) { createTopics(admin); }
        }
        String[] codecs = {"zstd", "none", "lz4", "gzip", "snappy"};
        List<String> topics = topics();
        for (int ti = 0; ti < topics.size(); ti++) {
            String topic = topics.get(ti);
            String codec = codecs[ti % codecs.length];
            Properties tp = E2eClient.producerProps("lz4");
            tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "calving-maint-" + topic);
            E2eClient.Gen g = new E2eClient.Gen(1000L * round + ti, topic + "-r" + round, t0, parts);
            int committed = 0, aborted = 0;
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(E2eClient.producerProps(codec));
                 KafkaProducer<byte[], byte[]> tx = new KafkaProducer<>(tp)) {
                tx.initTransactions();
                int txns = 0;
                for (int i = 0; i < records; i++) {
                    for (int part = 0; part < parts; part++) E2eClient.send(p, g.record(topic, part), 'N', 'C');
                    if (i % 25 == 24) {
                        // A transaction between idempotent batches: every third aborted; every
                        // fourth on partition 0 only, the others over every partition.
                        p.flush();
                        boolean abort = txns % 3 == 1;
                        tx.beginTransaction();
                        int n = 6 + (txns % 4) * 3;
                        for (int k = 0; k < n; k++) {
                            int part = txns % 4 == 2 ? 0 : k % parts;
                            E2eClient.send(tx, g.record(topic, part), abort ? 'A' : 'C', 'C');
                        }
                        tx.flush();
                        E2eClient.check();
                        if (abort) { tx.abortTransaction(); aborted++; } else { tx.commitTransaction(); committed++; }
                        txns++;
                    }
                    if (i % 40 == 39) p.flush();   // vary batch sizes
                }
                p.flush();
            }
            E2eClient.check();
            System.err.println("produced " + topic + " (round " + round + ", " + codec + "): " + committed
                + " committed, " + aborted + " aborted transactions");
        }
        // End markers: a record whose timestamp is segment.ms past the active segment's first batch
        // rolls it (LogSegment.shouldRoll compares record timestamps for CreateTime topics).
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(E2eClient.producerProps("none"))) {
            for (String topic : topics)
                for (int part = 0; part < parts; part++)
                    E2eClient.send(p, new ProducerRecord<>(topic, part, markerTs, null,
                        ("end marker " + round).getBytes(StandardCharsets.UTF_8)), 'M', 'C');
            p.flush();
        }
        E2eClient.check();
        for (E2eClient.Row r : E2eClient.produced)
            if (r.offset < 0) throw new IllegalStateException("a record of " + r.topic + " has no offset");
        E2eClient.writeRows(Path.of(opt("oracle")), new ArrayList<>(E2eClient.produced));
        System.err.println("produced " + E2eClient.produced.size() + " records into " + topics.size() + " topics");
    }

    // ------------------------------------------------------------------------------------------
    // consume

    static void consume() throws Exception {
        String isolation = opt("isolation");
        long stallMs = 1000L * Long.parseLong(opt("stall-s", "20"));
        long timeoutMs = 1000L * Long.parseLong(opt("timeout-s", "180"));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.CHECK_CRCS_CONFIG, "true");
        List<E2eClient.Row> rows = new ArrayList<>();
        long start = System.currentTimeMillis();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : topics()) {
                int n = c.partitionsFor(t).size();
                for (int i = 0; i < n; i++) tps.add(new TopicPartition(t, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> begin = c.beginningOffsets(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long lastProgress = System.currentTimeMillis();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) { done = false; break; }
                if (done) break;
                long now = System.currentTimeMillis();
                if (now - lastProgress > stallMs || now - start > timeoutMs) {
                    StringBuilder sb = new StringBuilder();
                    for (TopicPartition tp : tps)
                        if (c.position(tp) < end.get(tp))
                            sb.append(' ').append(tp).append(" at ").append(c.position(tp)).append(" of ")
                              .append(begin.get(tp)).append("..").append(end.get(tp));
                    throw new IllegalStateException((now - start > timeoutMs ? "timed out after " + timeoutMs / 1000 + " s"
                        : "no record for " + stallMs / 1000 + " s") + ", " + rows.size() + " records read; stuck:" + sb);
                }
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
                if (!recs.isEmpty()) lastProgress = System.currentTimeMillis();
                for (ConsumerRecord<byte[], byte[]> r : recs) rows.add(new E2eClient.Row(r));
            }
        }
        E2eClient.writeRows(Path.of(opt("out")), rows);
        System.err.printf("consume %s: %d records in %.1f s%n", isolation, rows.size(),
            (System.currentTimeMillis() - start) / 1000.0);
    }

    // ------------------------------------------------------------------------------------------
    // retention

    static void retention() throws Exception {
        String topic = opt("topic");
        long deadline = System.currentTimeMillis() + 1000L * Long.parseLong(opt("timeout-s", "60"));
        try (Admin admin = E2eClient.admin()) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", opt("retention-ms")), AlterConfigOp.OpType.SET)))).all().get();
            int n = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < n; i++) tps.add(new TopicPartition(topic, i));
            Map<TopicPartition, Long> last = null;
            long stableSince = System.currentTimeMillis();
            while (true) {
                Map<TopicPartition, Long> earliest = E2eClient.listOffsets(admin, tps, OffsetSpec.earliest());
                boolean moved = earliest.values().stream().allMatch(o -> o > 0);
                if (!earliest.equals(last)) { last = earliest; stableSince = System.currentTimeMillis(); }
                // Kafka deletes the expired remote segments over a few runs of its expiration task:
                // done when every partition moved and nothing changed for 3 s.
                boolean stable = System.currentTimeMillis() - stableSince >= 3000;
                if ((moved && stable) || System.currentTimeMillis() > deadline) {
                    StringBuilder sb = new StringBuilder();
                    for (TopicPartition tp : tps) sb.append(topic).append('\t').append(tp.partition()).append('\t').append(earliest.get(tp)).append('\n');
                    Files.writeString(Path.of(opt("out")), sb.toString());
                    if (!moved) throw new IllegalStateException("earliest offsets still " + new HashMap<>(earliest) + " after the timeout");
                    return;
                }
                Thread.sleep(500);
            }
        }
    }
}
