// The client side of Calving's typed end-to-end run (integration/typed/run.sh): Avro values written
// by a real serializer, Apicurio Registry's Kafka serde (io.apicurio:apicurio-registry-avro-serde-kafka),
// configured for the Confluent wire format (Default4ByteIdHandler: magic byte 0 + the 4-byte
// content id, which is the id the registry's Confluent API (/apis/ccompat/v7) hands out; no
// headers), registering its schemas through the registry's own v3 API. Compiled by run.sh
// (javac -cp "$KAFKA_LIBS/*:$TYPED/serde/*") and run per step:
//
//   produce --bootstrap B --registry <v3 URL> --out-dir D [--records N] [--segment-bytes N]
//       creates the topics typed_orders (value.mode value_schema_id_prefix, key.mode
//       key_schema_id_prefix) and typed_latest (value_schema_latest, raw keys), one partition
//       each, and produces:
//       typed_orders: N orders (nested records, arrays, maps, date, timestamp-millis, decimals,
//         uuid, a three-branch union, an enum, nulls) with the schema evolved twice while
//         producing (v1; v2 adds `discount`; v3 adds `channel` and drops `note`), tombstones,
//         and values that must stay raw: not Avro (JSON text, binary, empty), an unknown schema id,
//         a truncated frame, trailing bytes, a non-canonical (over-long varint) encoding;
//         keys: Avro OrderKey records written by a second AvroKafkaSerializer configured as a key
//         serializer (subject typed_orders-key), the key schema evolved once while producing
//         (v1 {customer_id, region}; v2 adds an optional `shard`), on Avro, raw and tombstone
//         values alike, and keys that must stay raw: null, plain UTF-8, a truncated Avro key, an
//         Avro key with an unknown schema id;
//       typed_latest: N/4 bare Avro values (the serializer's output without its 5-byte prefix) of
//         one schema, tombstones, truncated and trailing-byte values;
//       then one end marker per topic that rolls the last data segment (as E2eClient does).
//       Writes D/oracle.tsv (E2eClient's oracle format, for check.py consumed) and
//       D/expected.jsonl: per record {topic, partition, offset, timestamp, key (hex of the key
//       bytes as sent, or null), kind, schema_id, value (hex, expected in the raw column or null),
//       columns (expected typed columns, or null), avro (what was serialized, as its columns' JSON
//       with map entries in key order, or null), key_kind (avro, null, utf8, truncated,
//       unknown-id; raw for typed_latest's keys), key_version (1, 2 or null), key_schema_id (the
//       writer schema id of an Avro key, expected in kafka.key_schema_id, or null), key_avro (the
//       key record as avro above, which is also what the `key` struct reads, or null)}.
//   decode  --bootstrap B --registry <v3 URL> --expected D/expected.jsonl
//       reads both topics from offset 0 with ByteArrayDeserializer and decodes every value that
//       was written as Avro with Apicurio's AvroKafkaDeserializer (typed_orders) or Avro's
//       GenericDatumReader with the subject's schema (typed_latest, bare values), and every key
//       of typed_orders written as Avro with a second AvroKafkaDeserializer configured for keys:
//       the decoded record must equal the produced one (compared as avro above). Prints PASS/FAIL
//       lines.
//
// Exit status 0 on success, 1 on failure (message on stderr).

import java.io.ByteArrayOutputStream;
import java.io.BufferedWriter;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.avro.Conversions;
import org.apache.avro.LogicalType;
import org.apache.avro.LogicalTypes;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import io.apicurio.registry.serde.avro.AvroKafkaSerializer;

public class TypedClient {

    static final String ORDERS = "typed_orders";
    static final String LATEST = "typed_latest";
    static final long DAY = 86_400_000L;
    static final long SEGMENT_MS = 7 * DAY;
    static final ObjectMapper JSON = new ObjectMapper();
    static final JsonNodeFactory NF = JsonNodeFactory.instance;

    static Map<String, String> opts = new HashMap<>();

    public static void main(String[] args) {
        try {
            for (int i = 1; i + 1 < args.length; i += 2) opts.put(args[i].substring(2), args[i + 1]);
            switch (args.length == 0 ? "" : args[0]) {
                case "produce": produce(); break;
                case "decode": System.exit(decode() ? 0 : 1); break;
                default: throw new IllegalArgumentException("usage: TypedClient produce|decode --key value...");
            }
            System.exit(0);
        } catch (Throwable t) {
            System.err.println("TypedClient: FAILED: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }

    static String opt(String k) {
        String v = opts.get(k);
        if (v == null) throw new IllegalArgumentException("missing --" + k);
        return v;
    }

    // ------------------------------------------------------------------------------------------
    // Schemas: Order v1, v2 (+ discount), v3 (+ channel, - note); the typed_latest topic's Event.

    static final String ORDER_V1_FIELDS = String.join(",",
        "{\"name\":\"id\",\"type\":\"long\"}",
        "{\"name\":\"customer\",\"type\":{\"type\":\"record\",\"name\":\"Customer\",\"fields\":["
            + "{\"name\":\"name\",\"type\":\"string\"},"
            + "{\"name\":\"email\",\"type\":[\"null\",\"string\"],\"default\":null},"
            + "{\"name\":\"address\",\"type\":{\"type\":\"record\",\"name\":\"Address\",\"fields\":["
            + "{\"name\":\"city\",\"type\":\"string\"},{\"name\":\"zip\",\"type\":[\"null\",\"string\"],\"default\":null}]}}]}}",
        "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Item\",\"fields\":["
            + "{\"name\":\"sku\",\"type\":\"string\"},{\"name\":\"qty\",\"type\":\"int\"},"
            + "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,\"scale\":2}}]}}}",
        "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}",
        "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}",
        "{\"name\":\"counters\",\"type\":{\"type\":\"map\",\"values\":\"long\"}}",
        "{\"name\":\"placed\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}",
        "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}}",
        "{\"name\":\"amount\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":10,\"scale\":2}}",
        "{\"name\":\"ref\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}}",
        "{\"name\":\"payment\",\"type\":[\"null\",\"string\",\"long\"],\"default\":null}",
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"Status\",\"symbols\":[\"NEW\",\"PAID\",\"SHIPPED\"]}}",
        "{\"name\":\"blob\",\"type\":[\"null\",\"bytes\"],\"default\":null}");

    static Schema orderSchema(int version) {
        StringBuilder f = new StringBuilder(ORDER_V1_FIELDS);
        if (version != 3) f.append(",{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null}");
        if (version >= 2) f.append(",{\"name\":\"discount\",\"type\":[\"null\",\"double\"],\"default\":null}");
        if (version == 3) f.append(",{\"name\":\"channel\",\"type\":[\"null\",\"string\"],\"default\":null}");
        return new Schema.Parser().parse("{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"shop\",\"fields\":[" + f + "]}");
    }

    /** The key of typed_orders: OrderKey v1 {customer_id, region}; v2 adds an optional `shard`. */
    static Schema orderKeySchema(int version) {
        return new Schema.Parser().parse("{\"type\":\"record\",\"name\":\"OrderKey\",\"namespace\":\"shop\",\"fields\":["
            + "{\"name\":\"customer_id\",\"type\":\"long\"},{\"name\":\"region\",\"type\":\"string\"}"
            + (version >= 2 ? ",{\"name\":\"shard\",\"type\":[\"null\",\"int\"],\"default\":null}" : "") + "]}");
    }

    static GenericRecord orderKey(Schema s, int version, long i) {
        GenericRecord k = new GenericData.Record(s);
        k.put("customer_id", (i % 97) * 1_000_003L - 40_000_000L);   // negative and positive
        k.put("region", new String[] {"eu-north", "us-east", "ap-東京", "sa"}[(int) (i % 4)]);
        if (version >= 2) k.put("shard", i % 3 == 0 ? null : (Object) ((int) (i % 16) - 4));
        return k;
    }

    static final Schema EVENT = new Schema.Parser().parse("{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"shop\",\"fields\":["
        + "{\"name\":\"seq\",\"type\":\"long\"},"
        + "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"CLICK\",\"VIEW\",\"BUY\"]}},"
        + "{\"name\":\"at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        + "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
        + "{\"name\":\"session\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
        + "{\"name\":\"price\",\"type\":[\"null\",{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":12,\"scale\":3}],\"default\":null},"
        + "{\"name\":\"labels\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"string\"}}}]}");

    static final Conversions.DecimalConversion DECIMAL = new Conversions.DecimalConversion();

    static ByteBuffer decimal(Schema s, BigDecimal v) {
        Schema bytes = s.getType() == Schema.Type.UNION ? s.getTypes().get(1) : s;
        return DECIMAL.toBytes(v, bytes, bytes.getLogicalType());
    }

    static GenericRecord order(Schema s, int version, long i) {
        Schema cs = s.getField("customer").schema();
        Schema as = cs.getField("address").schema();
        GenericRecord addr = new GenericData.Record(as);
        addr.put("city", new String[] {"Oslo", "Québec", "東京", "Ilulissat"}[(int) (i % 4)]);
        addr.put("zip", i % 5 == 0 ? null : String.format("%05d", i * 37 % 100000));
        GenericRecord cust = new GenericData.Record(cs);
        cust.put("name", "customer " + i);
        cust.put("email", i % 3 == 0 ? null : "c" + i + "@example.com");
        cust.put("address", addr);
        Schema is = s.getField("items").schema().getElementType();
        List<GenericRecord> items = new ArrayList<>();
        for (int k = 0; k < i % 4; k++) {
            GenericRecord it = new GenericData.Record(is);
            it.put("sku", "sku-" + (i + k) % 97);
            it.put("qty", k + 1);
            it.put("price", decimal(is.getField("price").schema(), BigDecimal.valueOf((i * 131 + k * 7) % 100000 - 50000, 2)));
            items.add(it);
        }
        List<String> tags = new ArrayList<>();
        for (int k = 0; k < i % 3; k++) tags.add("tag" + (i + k) % 5);
        Map<String, String> attrs = new LinkedHashMap<>();
        attrs.put("src", i % 2 == 0 ? "web" : "app");
        if (i % 4 == 1) attrs.put("promo", "P" + i);
        Map<String, Long> counters = new LinkedHashMap<>();
        for (int k = 0; k < i % 3; k++) counters.put("c" + k, i * 1000 + k - 1500);
        GenericRecord r = new GenericData.Record(s);
        r.put("id", i * 7919 - 100_000);          // negative and positive
        r.put("customer", cust);
        r.put("items", items);
        r.put("tags", tags);
        r.put("attrs", attrs);
        r.put("counters", counters);
        r.put("placed", 1_700_000_000_123L + i * 60_013L);
        r.put("day", 19_000 + (int) (i % 900));
        r.put("amount", decimal(s.getField("amount").schema(), BigDecimal.valueOf(i * 12_345 - 3_000_000, 2)));
        r.put("ref", new UUID(0x1234_5678_9abc_def0L ^ (i * 0x9E37_79B9_7F4A_7C15L), i * 31 + 7).toString());
        r.put("payment", i % 3 == 0 ? null : i % 3 == 1 ? (Object) ("card-" + i) : (Object) (i * 100));
        r.put("status", new GenericData.EnumSymbol(s.getField("status").schema(), new String[] {"NEW", "PAID", "SHIPPED"}[(int) (i % 3)]));
        r.put("blob", i % 2 == 0 ? null : ByteBuffer.wrap(new byte[] {(byte) i, (byte) 0xff, 0, (byte) 0x80}));
        if (version != 3) r.put("note", i % 2 == 0 ? "note " + i : null);
        if (version >= 2) r.put("discount", i % 5 == 0 ? null : (Object) (i / 4.0));
        if (version == 3) r.put("channel", new String[] {"web", "app", "store"}[(int) (i % 3)]);
        return r;
    }

    static GenericRecord event(long i) {
        GenericRecord r = new GenericData.Record(EVENT);
        r.put("seq", i);
        r.put("kind", new GenericData.EnumSymbol(EVENT.getField("kind").schema(), new String[] {"CLICK", "VIEW", "BUY"}[(int) (i % 3)]));
        r.put("at", 1_710_000_000_000L + i * 997);
        r.put("day", 19_500 + (int) (i % 30));
        r.put("session", new UUID(i * 0x5DEE_CE66_DL, ~i).toString());
        r.put("price", i % 4 == 0 ? null : decimal(EVENT.getField("price").schema(), BigDecimal.valueOf(i * 1_234_567 - 9_000_000, 3)));
        Map<String, List<String>> labels = new LinkedHashMap<>();
        for (int k = 0; k < i % 3; k++) labels.put("l" + k, i % 2 == 0 ? List.of() : List.of("a" + k, "b"));
        r.put("labels", labels);
        return r;
    }

    // ------------------------------------------------------------------------------------------
    // What an Iceberg engine reads from the columns (tests/oracle/read_table.py --all-columns):
    // bytes as hex, timestamps as µs, dates ISO, decimals as plain strings, uuids as 32 hex digits,
    // maps as [[key, value], ...] in stored order, a union of 2+ non-null branches as a struct with
    // one field per branch (named by the branch's type), enums as their symbol.

    static String hex(byte[] b) {
        if (b == null) return null;
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static byte[] bytes(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }

    static String branchName(Schema s) {
        switch (s.getType()) {
            case RECORD: case ENUM: case FIXED: return s.getName();
            default: return s.getType().getName();
        }
    }

    static JsonNode column(Schema s, Object v) { return column(s, v, false); }

    /** With sortMaps, map entries in key order: how a decoded record (a HashMap) is compared. */
    static JsonNode column(Schema s, Object v, boolean sortMaps) {
        if (v == null) return NF.nullNode();
        if (s.getType() == Schema.Type.UNION) {
            List<Schema> nonNull = new ArrayList<>();
            for (Schema b : s.getTypes()) if (b.getType() != Schema.Type.NULL) nonNull.add(b);
            if (nonNull.size() == 1) return column(nonNull.get(0), v, sortMaps);
            int idx = GenericData.get().resolveUnion(s, v);
            ObjectNode o = NF.objectNode();
            for (Schema b : nonNull) o.set(branchName(b), b == s.getTypes().get(idx) ? column(b, v, sortMaps) : NF.nullNode());
            return o;
        }
        LogicalType lt = s.getLogicalType();
        // (A reader with Avro's conversions hands out Instant, LocalDate, BigDecimal, UUID.)
        if (lt instanceof LogicalTypes.TimestampMillis)
            return NF.numberNode(v instanceof Instant ? ((Instant) v).toEpochMilli() * 1000 : (Long) v * 1000);
        if (lt instanceof LogicalTypes.Date)
            return NF.textNode(v instanceof LocalDate ? v.toString() : LocalDate.ofEpochDay((Integer) v).toString());
        if (lt instanceof LogicalTypes.Decimal)
            return NF.textNode(v instanceof BigDecimal ? ((BigDecimal) v).toPlainString()
                : new BigDecimal(new BigInteger(bytes((ByteBuffer) v)), ((LogicalTypes.Decimal) lt).getScale()).toPlainString());
        if (lt != null && lt.getName().equals("uuid")) return NF.textNode(v.toString().replace("-", ""));
        switch (s.getType()) {
            case RECORD: {
                ObjectNode o = NF.objectNode();
                GenericRecord r = (GenericRecord) v;
                for (Schema.Field f : s.getFields()) o.set(f.name(), column(f.schema(), r.get(f.name()), sortMaps));
                return o;
            }
            case ARRAY: {
                ArrayNode a = NF.arrayNode();
                for (Object x : (List<?>) v) a.add(column(s.getElementType(), x, sortMaps));
                return a;
            }
            case MAP: {
                ArrayNode a = NF.arrayNode();
                List<Map.Entry<?, ?>> entries = new ArrayList<>(((Map<?, ?>) v).entrySet());
                if (sortMaps) entries.sort((x, y) -> x.getKey().toString().compareTo(y.getKey().toString()));
                for (Map.Entry<?, ?> e : entries)
                    a.add(NF.arrayNode().add(e.getKey().toString()).add(column(s.getValueType(), e.getValue(), sortMaps)));
                return a;
            }
            case ENUM: case STRING: return NF.textNode(v.toString());
            case BYTES: return NF.textNode(hex(bytes((ByteBuffer) v)));
            case INT: return NF.numberNode((Integer) v);
            case LONG: return NF.numberNode((Long) v);
            case DOUBLE: return NF.numberNode((Double) v);
            case FLOAT: return NF.numberNode((Float) v);
            case BOOLEAN: return NF.booleanNode((Boolean) v);
            default: throw new IllegalArgumentException("no expectation for " + s);
        }
    }

    /** A record as compared after decoding: its columns' JSON with map entries in key order. */
    static String avroText(GenericRecord r) {
        return column(r.getSchema(), r, true).toString();
    }

    static ObjectNode columns(GenericRecord r) {
        ObjectNode o = NF.objectNode();
        for (Schema.Field f : r.getSchema().getFields()) o.set(f.name(), column(f.schema(), r.get(f.name())));
        return o;
    }

    // ------------------------------------------------------------------------------------------
    // produce

    static final class Sent {
        final String topic;
        final long timestamp;
        final byte[] key, value;
        final char status;
        final ObjectNode expected = NF.objectNode();
        long offset = -1;

        Sent(String topic, long timestamp, byte[] key, byte[] value, char status) {
            this.topic = topic; this.timestamp = timestamp; this.key = key; this.value = value; this.status = status;
        }
    }

    static final List<Sent> sent = Collections.synchronizedList(new ArrayList<>());
    static volatile Exception sendError;

    static Sent send(KafkaProducer<byte[], byte[]> p, String topic, long ts, String key, byte[] value, char status) {
        return send(p, topic, ts, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value, status);
    }

    static Sent send(KafkaProducer<byte[], byte[]> p, String topic, long ts, byte[] key, byte[] value, char status) {
        Sent s = new Sent(topic, ts, key, value, status);
        sent.add(s);
        p.send(new ProducerRecord<>(topic, 0, ts, s.key, value), (md, e) -> {
            if (e != null) { sendError = e; return; }
            // The record's own timestamp stands (CreateTime), not md.timestamp():
            // E2eClient.acknowledgedTimestamp says why.
            s.offset = md.offset();
        });
        return s;
    }

    static Map<String, Object> serdeConfig() {
        Map<String, Object> c = new HashMap<>();
        c.put("apicurio.registry.url", opt("registry"));
        c.put("apicurio.registry.auto-register", "true");
        // The Confluent wire format: magic byte 0, a 4-byte id (the content id, which is what the
        // registry's Confluent API calls a schema's id), no headers. (3.0.x's defaults, spelled out.)
        c.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Default4ByteIdHandler");
        c.put("apicurio.registry.use-id", "contentId");
        c.put("apicurio.registry.headers.enabled", "false");
        // Apicurio's default for nested named types (records, enums): each is registered as an
        // artifact of its own and the value's schema refers to them (Confluent schema references),
        // which Calving resolves. CALVING_TYPED_DEREFERENCE=true registers one self-contained
        // schema per version instead.
        if ("true".equals(System.getenv("CALVING_TYPED_DEREFERENCE"))) {
            c.put("apicurio.registry.dereference-schema", "true");
        }
        return c;
    }

    /** The 4-byte id of a Confluent-framed value. */
    static int schemaId(byte[] framed) {
        if (framed.length < 5 || framed[0] != 0) throw new IllegalStateException("not the Confluent wire format: " + hex(Arrays.copyOf(framed, Math.min(8, framed.length))));
        return ByteBuffer.wrap(framed, 1, 4).getInt();
    }

    /** The same datum with its first field (a long) written as an over-long varint: Avro readers
     *  accept it, but it is not the canonical encoding, so Calving must keep it raw. */
    static byte[] overlongFirstVarint(byte[] framed) {
        int p = 5, n = 0;
        while ((framed[p + n] & 0x80) != 0) n++;
        n++;                                              // varint bytes: framed[p .. p+n)
        if (n >= 9) throw new IllegalStateException("varint too long to pad");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(framed, 0, p);
        for (int k = 0; k < n - 1; k++) out.write(framed[p + k]);
        out.write(framed[p + n - 1] | 0x80);              // continue ...
        out.write(0);                                     // ... with a zero group
        out.write(framed, p + n, framed.length - p - n);
        return out.toByteArray();
    }

    static void produce() throws Exception {
        int records = Integer.parseInt(opts.getOrDefault("records", "1200"));
        String segmentBytes = opts.getOrDefault("segment-bytes", "32768");
        Path outDir = Path.of(opt("out-dir"));
        long t0 = (System.currentTimeMillis() - DAY) / 1000 * 1000;

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        try (Admin admin = Admin.create(ap)) {
            List<NewTopic> nts = new ArrayList<>();
            for (String t : List.of(ORDERS, LATEST)) {
                Map<String, String> c = new LinkedHashMap<>();
                c.put("retention.ms", "-1");
                c.put("segment.ms", Long.toString(SEGMENT_MS));
                c.put("internal.segment.bytes", segmentBytes);
                c.put("message.timestamp.after.max.ms", Long.toString(Long.MAX_VALUE));
                c.put("remote.storage.enable", "true");
                c.put("local.retention.ms", "1000");
                nts.add(new NewTopic(t, 1, (short) 1).configs(c));
            }
            admin.createTopics(nts).all().get();
        }

        AvroKafkaSerializer<GenericRecord> ser = new AvroKafkaSerializer<>();
        ser.configure(serdeConfig(), false);
        // Keys: the same serde as a key serializer (TopicIdStrategy: subject typed_orders-key).
        AvroKafkaSerializer<GenericRecord> keySer = new AvroKafkaSerializer<>();
        keySer.configure(serdeConfig(), true);
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        int[] ids = new int[4];
        int[] keyIds = new int[3];
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp)) {
            // typed_orders: the schema evolves at records/3 and 2*records/3.
            // Its key schema evolves at records/2.
            Schema[] schemas = {null, orderSchema(1), orderSchema(2), orderSchema(3)};
            Schema[] keySchemas = {null, orderKeySchema(1), orderKeySchema(2)};
            byte[] lastAvro = null;
            byte[] lastAvroKey = null;
            int rawKind = 0;
            for (long i = 0; i < records; i++) {
                int version = 1 + (int) (i * 3 / records);
                long ts = t0 + i * 50;
                // The key: Avro, or one that must stay raw (the key expectations go in with keyed()).
                int keyVersion = i < records / 2 ? 1 : 2;
                GenericRecord keyRecord = null;
                String keyKind;
                byte[] key;
                int keyCase = (int) (i % 41);
                if (keyCase == 3) {
                    keyKind = "null"; key = null;
                } else if (keyCase == 17) {
                    keyKind = "utf8"; key = ("order-" + i).getBytes(StandardCharsets.UTF_8);
                } else if (keyCase == 29 && lastAvroKey != null) {
                    keyKind = "truncated"; key = Arrays.copyOf(lastAvroKey, lastAvroKey.length - 1);
                } else if (keyCase == 37 && lastAvroKey != null) {
                    keyKind = "unknown-id"; key = lastAvroKey.clone(); ByteBuffer.wrap(key).putInt(1, 876_543);
                } else {
                    keyKind = "avro";
                    keyRecord = orderKey(keySchemas[keyVersion], keyVersion, i);
                    RecordHeaders kh = new RecordHeaders();
                    key = keySer.serialize(ORDERS, kh, keyRecord);
                    if (kh.toArray().length != 0) throw new IllegalStateException("the key serializer wrote headers");
                    int kid = schemaId(key);
                    if (keyIds[keyVersion] == 0) keyIds[keyVersion] = kid;
                    else if (keyIds[keyVersion] != kid) throw new IllegalStateException("key schema v" + keyVersion + " got ids " + keyIds[keyVersion] + " and " + kid);
                    lastAvroKey = key;
                }
                if (i % 37 == 5) {                                   // tombstone
                    keyed(send(p, ORDERS, ts, key, null, 'N'), keyKind, keyVersion, keyRecord).expected.put("kind", "tombstone");
                    continue;
                }
                if (i % 29 == 11 && lastAvro != null) {              // a value that must stay raw
                    byte[] v;
                    String kind;
                    switch (rawKind++ % 7) {
                        case 0: kind = "json"; v = ("{\"order\":" + i + ",\"note\":\"not avro\"}").getBytes(StandardCharsets.UTF_8); break;
                        case 1: kind = "binary"; v = new byte[] {(byte) 0xff, (byte) 0xfe, 0x00, 0x01, (byte) i}; break;
                        case 2: kind = "unknown-id"; v = lastAvro.clone(); ByteBuffer.wrap(v).putInt(1, 987_654); break;
                        case 3: kind = "truncated"; v = Arrays.copyOf(lastAvro, lastAvro.length - 3); break;
                        case 4: kind = "trailing"; v = Arrays.copyOf(lastAvro, lastAvro.length + 1); break;
                        case 5: kind = "empty"; v = new byte[0]; break;
                        default: kind = "noncanonical"; v = overlongFirstVarint(lastAvro); break;
                    }
                    Sent s = keyed(send(p, ORDERS, ts, key, v, 'N'), keyKind, keyVersion, keyRecord);
                    s.expected.put("kind", kind).put("value", hex(v));
                    if (kind.equals("noncanonical")) s.expected.put("avro", avroText(lastRecord));
                    continue;
                }
                GenericRecord r = order(schemas[version], version, i);
                RecordHeaders headers = new RecordHeaders();
                byte[] v = ser.serialize(ORDERS, headers, r);
                if (headers.toArray().length != 0) throw new IllegalStateException("the serializer wrote headers");
                int id = schemaId(v);
                if (ids[version] == 0) ids[version] = id;
                else if (ids[version] != id) throw new IllegalStateException("schema v" + version + " got ids " + ids[version] + " and " + id);
                Sent s = keyed(send(p, ORDERS, ts, key, v, 'N'), keyKind, keyVersion, keyRecord);
                s.expected.put("kind", "avro").put("version", version).put("schema_id", id)
                    .put("avro", avroText(r)).set("columns", columns(r));
                lastAvro = v;
                lastRecord = r;
                if (i % 100 == 99) p.flush();
            }
            p.flush();
            check();
            System.err.println("produced " + ORDERS + ": schema ids v1 " + ids[1] + ", v2 " + ids[2] + ", v3 " + ids[3]
                + "; key schema ids v1 " + keyIds[1] + ", v2 " + keyIds[2]);

            // typed_latest: bare Avro (value_schema_latest), one schema.
            int latestRecords = Math.max(40, records / 4);
            for (long i = 0; i < latestRecords; i++) {
                long ts = t0 + i * 200;
                String key = i % 10 == 3 ? null : "event-" + i;
                if (i % 23 == 7) { send(p, LATEST, ts, key, null, 'N').expected.put("kind", "tombstone"); continue; }
                GenericRecord r = event(i);
                byte[] framed = ser.serialize(LATEST, new RecordHeaders(), r);
                schemaId(framed);
                byte[] bare = Arrays.copyOfRange(framed, 5, framed.length);
                if (i % 31 == 13) {
                    Sent s = send(p, LATEST, ts, key, Arrays.copyOf(bare, bare.length - 2), 'N');
                    s.expected.put("kind", "truncated").put("value", hex(s.value));
                } else if (i % 31 == 27) {
                    Sent s = send(p, LATEST, ts, key, Arrays.copyOf(bare, bare.length + 2), 'N');
                    s.expected.put("kind", "trailing").put("value", hex(s.value));
                } else {
                    Sent s = send(p, LATEST, ts, key, bare, 'N');
                    s.expected.put("kind", "latest").put("schema_id", schemaId(framed))
                        .put("avro", avroText(r)).set("columns", columns(r));
                }
            }
            p.flush();
            check();
            System.err.println("produced " + LATEST);

            // End markers: roll the last data segment of each topic (see E2eClient).
            long markerTs = System.currentTimeMillis() + SEGMENT_MS + 60_000;
            for (String t : List.of(ORDERS, LATEST))
                {
                byte[] v = "end marker".getBytes(StandardCharsets.UTF_8);
                send(p, t, markerTs, (byte[]) null, v, 'M').expected.put("kind", "marker").put("value", hex(v));
            }
            p.flush();
        }
        ser.close();
        keySer.close();
        check();
        if (ids[1] == 0 || ids[2] == 0 || ids[3] == 0 || ids[1] == ids[2] || ids[2] == ids[3] || ids[1] == ids[3])
            throw new IllegalStateException("expected three distinct schema ids, got " + Arrays.toString(ids));
        if (keyIds[1] == 0 || keyIds[2] == 0 || keyIds[1] == keyIds[2])
            throw new IllegalStateException("expected two distinct key schema ids, got " + Arrays.toString(keyIds));

        List<Sent> all = new ArrayList<>(sent);
        all.sort((a, b) -> a.topic.equals(b.topic) ? Long.compare(a.offset, b.offset) : a.topic.compareTo(b.topic));
        try (BufferedWriter o = Files.newBufferedWriter(outDir.resolve("oracle.tsv"));
             BufferedWriter e = Files.newBufferedWriter(outDir.resolve("expected.jsonl"))) {
            for (Sent s : all) {
                if (s.offset < 0) throw new IllegalStateException("a record of " + s.topic + " has no offset");
                o.write(s.topic + "\t0\t" + s.offset + "\t" + s.timestamp + "\tC\t" + s.status + "\t"
                    + (s.key == null ? "-" : hex(s.key)) + "\t" + (s.value == null ? "-" : hex(s.value)) + "\t\n");
                ObjectNode x = s.expected;
                x.put("topic", s.topic).put("partition", 0).put("offset", s.offset).put("timestamp", s.timestamp)
                    .put("key", hex(s.key));
                if (!x.has("schema_id")) x.putNull("schema_id");
                if (!x.has("value")) x.putNull("value");
                if (!x.has("columns")) x.putNull("columns");
                if (!x.has("avro")) x.putNull("avro");
                if (!x.has("key_kind")) x.put("key_kind", s.key == null ? "null" : "raw");
                if (!x.has("key_version")) x.putNull("key_version");
                if (!x.has("key_schema_id")) x.putNull("key_schema_id");
                if (!x.has("key_avro")) x.putNull("key_avro");
                e.write(JSON.writeValueAsString(x));
                e.write('\n');
            }
        }
        System.err.println("produced " + all.size() + " records");
    }

    static GenericRecord lastRecord;

    /** Records what the key columns of a sent typed_orders record must read. */
    static Sent keyed(Sent s, String keyKind, int keyVersion, GenericRecord keyRecord) {
        s.expected.put("key_kind", keyKind);
        if (keyRecord != null) {
            s.expected.put("key_version", keyVersion).put("key_schema_id", schemaId(s.key)).put("key_avro", avroText(keyRecord));
        }
        return s;
    }

    static void check() {
        if (sendError != null) throw new IllegalStateException("send failed", sendError);
    }

    // ------------------------------------------------------------------------------------------
    // decode

    static boolean decode() throws Exception {
        Map<String, Map<Long, JsonNode>> expected = new HashMap<>();
        for (String line : Files.readAllLines(Path.of(opt("expected")))) {
            if (line.isBlank()) continue;
            JsonNode n = JSON.readTree(line);
            expected.computeIfAbsent(n.get("topic").asText(), k -> new HashMap<>()).put(n.get("offset").asLong(), n);
        }
        AvroKafkaDeserializer<GenericRecord> de = new AvroKafkaDeserializer<>();
        de.configure(serdeConfig(), false);
        AvroKafkaDeserializer<GenericRecord> keyDe = new AvroKafkaDeserializer<>();
        keyDe.configure(serdeConfig(), true);
        GenericDatumReader<GenericRecord> latestReader = new GenericDatumReader<>(EVENT);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        boolean ok = true;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            for (String topic : List.of(ORDERS, LATEST)) {
                TopicPartition tp = new TopicPartition(topic, 0);
                c.assign(List.of(tp));
                c.seek(tp, 0);
                long end = c.endOffsets(List.of(tp)).get(tp);
                long deadline = System.currentTimeMillis() + 120_000;
                int decoded = 0, mismatched = 0, keysDecoded = 0, keysMismatched = 0;
                String first = null, firstKey = null;
                while (c.position(tp) < end) {
                    if (System.currentTimeMillis() > deadline) throw new IllegalStateException(topic + ": consume timed out at " + c.position(tp) + "/" + end);
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                        JsonNode e = expected.getOrDefault(topic, Map.of()).get(r.offset());
                        if (e == null) continue;
                        if (!e.get("key_avro").isNull()) {
                            String gotKey;
                            try {
                                gotKey = avroText(keyDe.deserialize(topic, r.headers(), r.key()));
                            } catch (RuntimeException ex) {
                                gotKey = "exception: " + ex;
                            }
                            keysDecoded++;
                            if (!gotKey.equals(e.get("key_avro").asText())) {
                                keysMismatched++;
                                if (firstKey == null) firstKey = "offset " + r.offset() + " (key v" + e.get("key_version").asText() + "): expected "
                                    + e.get("key_avro").asText() + ", decoded " + gotKey;
                            }
                        }
                        if (e.get("avro").isNull()) continue;
                        String got;
                        try {
                            got = topic.equals(ORDERS)
                                ? avroText(de.deserialize(topic, r.headers(), r.value()))
                                : avroText(latestReader.read(null, DecoderFactory.get().binaryDecoder(r.value(), null)));
                        } catch (RuntimeException ex) {
                            got = "exception: " + ex;
                        }
                        decoded++;
                        if (!got.equals(e.get("avro").asText())) {
                            mismatched++;
                            if (first == null) first = "offset " + r.offset() + " (" + e.get("kind").asText() + "): expected "
                                + e.get("avro").asText() + ", decoded " + got;
                        }
                    }
                }
                long want = expected.getOrDefault(topic, Map.of()).values().stream().filter(n -> !n.get("avro").isNull()).count();
                String name = "Avro " + (topic.equals(ORDERS) ? "deserializer (Apicurio AvroKafkaDeserializer)" : "reader (bare values, the subject's schema)")
                    + " decodes " + topic;
                if (mismatched == 0 && decoded == want) {
                    System.out.println("PASS " + name + " (" + decoded + " values equal the produced records)");
                } else {
                    ok = false;
                    System.out.println("FAIL " + name + ": " + decoded + " of " + want + " decoded, " + mismatched + " differ; first: " + first);
                }
                if (topic.equals(ORDERS)) {
                    long wantKeys = expected.getOrDefault(topic, Map.of()).values().stream().filter(n -> !n.get("key_avro").isNull()).count();
                    String keyName = "Avro key deserializer (Apicurio AvroKafkaDeserializer for keys) decodes " + topic + "' keys";
                    if (keysMismatched == 0 && keysDecoded == wantKeys && wantKeys > 0) {
                        System.out.println("PASS " + keyName + " (" + keysDecoded + " keys equal the produced records)");
                    } else {
                        ok = false;
                        System.out.println("FAIL " + keyName + ": " + keysDecoded + " of " + wantKeys + " decoded, " + keysMismatched + " differ; first: " + firstKey);
                    }
                }
            }
        }
        de.close();
        keyDe.close();
        return ok;
    }
}
