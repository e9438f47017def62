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
//   soak       --bootstrap B --oracle FILE --topics t --stop-file F [--partitions N] [--rate N]
//              [--replication-factor N --min-isr N] [--segment-bytes N]
//              (integration/cluster/faults.sh) creates the topic as produce round 1 does, then
//              produces until F exists, through faults: an idempotent producer (acks=all) writes
//              about N records a second round the partitions while a transactional one, in a thread
//              of its own, runs a transaction of 6 to 15 records over every partition every 1.5 s,
//              every third aborted; then one end marker per partition. A send whose callback failed
//              was not acknowledged: it is left out of the oracle and written to FILE.unacked (offset
//              -1; it may still be in the log). A transaction whose commit failed has an unknown
//              outcome: status U (its records acknowledged, committed or not); one whose abort
//              failed is aborted all the same (a new producer with the same transactional.id aborts
//              it): A. After a failed transaction the producer is closed and a new one initialized.
//              Timestamps start two hours back (see soak()). Prints "soak: <key>=<value> ..." (acked,
//              unacked, send failures by exception, transactions committed/aborted/uncertain,
//              producer restarts) on stderr
//   isr        --bootstrap B --topics t --size N [--timeout-s N]
//              waits until every partition has a leader and at least N in-sync replicas; prints the
//              milliseconds it waited on stdout
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
                case "soak": soak(); break;
                case "isr": isr(); break;
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
    // soak

    static final Map<String, Integer> sendFailures = new java.util.TreeMap<>();

    /** E2eClient.send, but a failed send is counted, not fatal: its row keeps offset -1. */
    static E2eClient.Row sendTracked(KafkaProducer<byte[], byte[]> producer, ProducerRecord<byte[], byte[]> rec, char status) {
        E2eClient.Row row = new E2eClient.Row(rec, status, 'C');
        E2eClient.produced.add(row);
        producer.send(rec, (md, e) -> {
            if (e != null) {
                synchronized (sendFailures) { sendFailures.merge(e.getClass().getSimpleName(), 1, Integer::sum); }
                return;
            }
            row.acknowledged(md);
        });
        return row;
    }

    static Properties faultTolerant(Properties p) {
        // Through a broker's kill -9 and restart: retry sends for up to 2 minutes.
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        return p;
    }

    static KafkaProducer<byte[], byte[]> transactional(String topic) {
        Properties tp = faultTolerant(E2eClient.producerProps("lz4"));
        tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "calving-soak-" + topic);
        tp.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        while (true) {
            KafkaProducer<byte[], byte[]> tx = new KafkaProducer<>(tp);
            try {
                tx.initTransactions();
                return tx;
            } catch (Exception e) {
                System.err.println("soak: initTransactions failed, again: " + e);
                tx.close(Duration.ZERO);
            }
        }
    }

    static void soak() throws Exception {
        String topic = opt("topics");
        Path stop = Path.of(opt("stop-file"));
        int parts = partitions();
        double rate = Double.parseDouble(opt("rate", "50"));
        long now = System.currentTimeMillis() / 1000 * 1000;
        // Timestamps from two hours back: older than local.retention.ms (1 s), so that every tiered
        // segment leaves the local log, and younger than producer.id.expiration.ms (a day), which
        // Kafka compares with record timestamps: a replica rebuilt from the tier keeps its
        // producers. The end markers, a day and three hours on (segment.ms after every record),
        // roll the last data segments.
        long t0 = now - 2 * 3_600_000L, markerTs = t0 + DAY + 3 * 3_600_000L;
        try (Admin admin = E2eClient.admin()) { createTopics(admin); }
        E2eClient.Gen g = new E2eClient.Gen(7, topic + "-soak", t0, parts);
        int[] txStats = new int[4];   // committed, aborted, uncertain, producer restarts
        java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
        Thread txThread = new Thread(() -> {
            KafkaProducer<byte[], byte[]> tx = transactional(topic);
            int txns = 0;
            while (!done.get()) {
                boolean abort = txns % 3 == 1;
                int n = 6 + (txns % 4) * 3;
                List<E2eClient.Row> rows = new ArrayList<>();
                try {
                    tx.beginTransaction();
                    for (int k = 0; k < n; k++) {
                        ProducerRecord<byte[], byte[]> rec;
                        synchronized (g) { rec = g.record(topic, k % parts); }
                        rows.add(sendTracked(tx, rec, abort ? 'A' : 'C'));
                    }
                    if (abort) { tx.abortTransaction(); txStats[1]++; } else { tx.commitTransaction(); txStats[0]++; }
                } catch (Exception e) {
                    System.err.println("soak: transaction " + txns + (abort ? " (abort)" : " (commit)") + " failed: " + e);
                    for (E2eClient.Row r : rows) r.status = abort ? 'A' : 'U';
                    if (abort) txStats[1]++; else txStats[2]++;
                    tx.close(Duration.ZERO);
                    tx = transactional(topic);
                    txStats[3]++;
                }
                txns++;
                try { Thread.sleep(1500); } catch (InterruptedException ie) { break; }
            }
            tx.close();
        }, "soak-transactions");
        txThread.start();
        long start = System.currentTimeMillis();
        long sent = 0;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(faultTolerant(E2eClient.producerProps("zstd")))) {
            while (!Files.exists(stop)) {
                ProducerRecord<byte[], byte[]> rec;
                synchronized (g) { rec = g.record(topic, (int) (sent % parts)); }
                sendTracked(p, rec, 'N');
                sent++;
                long due = start + (long) (sent * 1000 / rate);
                long wait = due - System.currentTimeMillis();
                if (wait > 0) Thread.sleep(wait);
            }
            done.set(true);
            txThread.join();
            p.flush();
            for (int part = 0; part < parts; part++)
                sendTracked(p, new ProducerRecord<>(topic, part, markerTs, null,
                    "end marker".getBytes(StandardCharsets.UTF_8)), 'M');
            p.flush();
        }
        List<E2eClient.Row> acked = new ArrayList<>(), unacked = new ArrayList<>();
        synchronized (E2eClient.produced) {
            for (E2eClient.Row r : E2eClient.produced) (r.offset >= 0 ? acked : unacked).add(r);
        }
        E2eClient.writeRows(Path.of(opt("oracle")), acked);
        E2eClient.writeRows(Path.of(opt("oracle") + ".unacked"), unacked);
        for (E2eClient.Row r : acked)
            if (r.status == 'M' && r.offset < 0) throw new IllegalStateException("an end marker was not acknowledged");
        // TransactionAbortedException: records of a transaction this client aborted before they were
        // sent (never written); any other failure is a send the faults made fail.
        StringBuilder causes = new StringBuilder();
        synchronized (sendFailures) { sendFailures.forEach((k, v) -> causes.append(causes.length() > 0 ? "," : "").append(k).append(':').append(v)); }
        System.err.printf("soak: acked=%d unacked=%d send_failures=%s tx_committed=%d tx_aborted=%d tx_uncertain=%d"
            + " tx_producer_restarts=%d seconds=%.0f%n", acked.size(), unacked.size(), causes.length() > 0 ? causes : "0",
            txStats[0], txStats[1], txStats[2], txStats[3], (System.currentTimeMillis() - start) / 1000.0);
        long markers = acked.stream().filter(r -> r.status == 'M').count();
        if (markers != parts) throw new IllegalStateException(markers + " of " + parts + " end markers acknowledged");
    }

    // ------------------------------------------------------------------------------------------
    // isr

    static void isr() throws Exception {
        int size = Integer.parseInt(opt("size"));
        long start = System.currentTimeMillis();
        long deadline = start + 1000L * Long.parseLong(opt("timeout-s", "120"));
        String last = "";
        try (Admin admin = E2eClient.admin()) {
            while (true) {
                String why = "";
                try {
                    for (org.apache.kafka.clients.admin.TopicDescription d : admin.describeTopics(topics()).allTopicNames().get().values())
                        for (org.apache.kafka.common.TopicPartitionInfo p : d.partitions())
                            if (p.leader() == null || p.isr().size() < size)
                                why += " " + d.name() + "-" + p.partition() + " (leader " + (p.leader() == null ? "none" : p.leader().id())
                                    + ", isr " + p.isr().stream().map(n -> Integer.toString(n.id())).reduce((a, b) -> a + "," + b).orElse("") + ")";
                } catch (java.util.concurrent.ExecutionException e) {
                    why = " " + e.getCause();
                }
                if (why.isEmpty()) { System.out.println(System.currentTimeMillis() - start); return; }
                last = why;
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("not in sync after the timeout:" + last);
                Thread.sleep(250);
            }
        }
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
