// The Protobuf and JSON Schema side of Calving's typed end-to-end run (integration/typed/run.sh):
// values written by Apicurio Registry's real Kafka serdes (io.apicurio:apicurio-registry-protobuf-serde-kafka
// and apicurio-registry-jsonschema-serde-kafka 3.1.7, class path $TYPED/serde-pj), registering
// their schemas through the registry's v3 API (auto-register, TopicIdStrategy: subjects
// typed_proto-value and typed_json-value). Compiled by run.sh (javac -cp "$KAFKA_LIBS/*:$TYPED/serde-pj/*").
//
// The wire format (what the configs below make the serializers write; checked per value here):
//   Protobuf (ProtobufKafkaSerializer, headers.enabled=false, send-type-ref=false, send-indexes=true):
//     0x00, the 4-byte content id (Default4ByteIdHandler, use-id contentId), Apicurio's
//     message-index list, the message bytes. Apicurio writes the list as zigzag varints: count,
//     then each index; [0] is the two bytes 02 00 (MessageIndexesUtil.writeTo), where Confluent's
//     serializer writes the single byte 00. Both are valid Confluent frames (Confluent's and
//     Apicurio's deserializers read both). With send-type-ref=true (the default) and headers off
//     Apicurio writes instead its own type header (a length-delimited io.apicurio Ref message
//     naming the type) BEFORE the index list: not the Confluent format.
//   JSON Schema (JsonSchemaKafkaSerializer, headers.enabled=false): 0x00, the 4-byte content id,
//     the JSON text as Jackson writes it to a stream (compact, properties in insertion order,
//     BMP non-ASCII as UTF-8, characters outside the BMP as \\uD83D\\uDE00-style surrogate escapes,
//     control characters as \\u0001, \\n, \\t): the Confluent format.
//
//   produce --bootstrap B --registry <v3 URL> --out-dir D [--records N] [--segment-bytes N]
//       creates typed_proto and typed_json (one partition, remote storage on) and produces N
//       records to each:
//       typed_proto: Order messages (proto3; DynamicMessage built from descriptors that
//         Apicurio's FileDescriptorUtils compiles from the .proto text below: no protoc) with a
//         nested message, repeated messages, packed repeated scalars, map<string,int64>,
//         map<int32,string>, a oneof (string / int64 / message), an enum, proto3 `optional`,
//         google.protobuf.Timestamp (µs precision) and StringValue, absent fields; the schema
//         evolved twice (v2 adds `discount`, `weights`; v3 adds `channel`, `shipped`); as
//         written by Apicurio ("proto") and re-framed with Confluent's one-byte index list
//         ("proto-confluent", the bytes Confluent's serializer writes); tombstones; values that
//         must stay raw: an unknown schema id, a truncated message, an unknown field number,
//         an index list naming the second message of the file;
//       typed_json: Event objects (nested objects, arrays of strings and of objects, a
//         date-time, integers, numbers, booleans, strings with escapes and non-ASCII, absent
//         properties), the schema evolved twice (v2 adds `note`, `ratio`; v3 adds `flags`,
//         `source`); tombstones; raw: an unknown id, truncated JSON, a wrong type, a property
//         the schema forbids (additionalProperties false), not JSON;
//       then one end marker per topic (rolls the last segment).
//       Writes D/oracle-pj.tsv (E2eClient's oracle format) and D/expected-pj.jsonl, per record
//       the fields of TypedClient's expected.jsonl that check_typed.py table reads (topic,
//       partition, offset, timestamp, key, kind, version, schema_id, value, columns, key_kind,
//       key_schema_id) plus `decoded` (what the deserializer must give back: the message in
//       protobuf text format, or the JSON object) and, for Protobuf, `indexes` (hex of the
//       index list). `columns` follow the Protobuf mapping of rust/schema/src/protobuf.rs
//       (field names; proto3 scalars: their default when absent; message, optional and oneof
//       members: null when absent; one column per oneof member; enums by name; Timestamp as µs;
//       StringValue as a nullable string; uint32 as long; map<string,V> as [[k, v], ...],
//       map<int32,string> as [{key, value}, ...], both in wire order) and for JSON the property
//       names (integer: long, number: double, date-time: µs, objects: structs with every
//       declared property, absent: null).
//   decode  --bootstrap B --registry <v3 URL> --expected D/expected-pj.jsonl
//       reads both topics from offset 0 and decodes every value written from the schema with
//       Apicurio's ProtobufKafkaDeserializer (read-indexes=true, read-type-ref=false, return
//       class DynamicMessage) and JsonSchemaKafkaDeserializer (validation on): equal to the
//       produced message. Apicurio 3.1.7's Protobuf deserializer reads the index list but does
//       not use it: without a type name it has no descriptor (NullPointerException), so the
//       check hands it the type name "Order" in a header (apicurio.value.msgType) of its own,
//       not one on the record. Prints PASS/FAIL lines.

import java.io.BufferedWriter;
import java.io.ByteArrayOutputStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import com.google.protobuf.DescriptorProtos;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import com.google.protobuf.TextFormat;

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

import io.apicurio.registry.serde.jsonschema.JsonSchemaKafkaDeserializer;
import io.apicurio.registry.serde.jsonschema.JsonSchemaKafkaSerializer;
import io.apicurio.registry.serde.kafka.headers.KafkaSerdeHeaders;
import io.apicurio.registry.serde.protobuf.ProtobufKafkaDeserializer;
import io.apicurio.registry.serde.protobuf.ProtobufKafkaSerializer;
import io.apicurio.registry.utils.protobuf.schema.FileDescriptorUtils;

public class ProtoJsonClient {

    static final String PROTO = "typed_proto";
    static final String JSONT = "typed_json";
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
                default: throw new IllegalArgumentException("usage: ProtoJsonClient produce|decode --key value...");
            }
            System.exit(0);
        } catch (Throwable t) {
            System.err.println("ProtoJsonClient: FAILED: " + t);
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
    // Protobuf: Order v1, v2 (+ discount, weights), v3 (+ channel, shipped). Order is the file's
    // first message (message index [0]); Customer and Item follow it.

    static String orderProto(int version) {
        return "syntax = \"proto3\";\n"
            + "package shop;\n"
            + "import \"google/protobuf/timestamp.proto\";\n"
            + "import \"google/protobuf/wrappers.proto\";\n"
            + "message Order {\n"
            + "  int64 id = 1;\n"
            + "  Customer customer = 2;\n"
            + "  repeated Item items = 3;\n"
            + "  repeated int32 quantities = 4;\n"
            + "  repeated string tags = 5;\n"
            + "  map<string, int64> counters = 6;\n"
            + "  map<int32, string> labels = 7;\n"
            + "  oneof payment {\n"
            + "    string card = 8;\n"
            + "    int64 voucher = 9;\n"
            + "    Transfer transfer = 10;\n"
            + "  }\n"
            + "  Status status = 11;\n"
            + "  optional string note = 12;\n"
            + "  google.protobuf.Timestamp placed = 13;\n"
            + "  google.protobuf.StringValue coupon = 14;\n"
            + "  double total = 15;\n"
            + "  bool gift = 16;\n"
            + "  bytes blob = 17;\n"
            + "  uint32 points = 18;\n"
            + (version >= 2 ? "  optional double discount = 19;\n  repeated double weights = 20;\n" : "")
            + (version >= 3 ? "  string channel = 21;\n  google.protobuf.Timestamp shipped = 22;\n" : "")
            + "  enum Status {\n    NEW = 0;\n    PAID = 1;\n    SHIPPED = 2;\n  }\n"
            + "  message Transfer {\n    string iban = 1;\n    sint64 amount_cents = 2;\n  }\n"
            + "}\n"
            + "message Customer {\n"
            + "  string name = 1;\n"
            + "  optional string email = 2;\n"
            + "  Address address = 3;\n"
            + "  message Address {\n    string city = 1;\n    string zip = 2;\n  }\n"
            + "}\n"
            + "message Item {\n  string sku = 1;\n  int32 qty = 2;\n  sint32 delta = 3;\n}\n";
    }

    static Descriptor orderDescriptor(int version) throws Exception {
        // Built on exactly the files it imports: FileDescriptorUtils.protoFileToFileDescriptor makes
        // every file of Apicurio's bundle (27 google/protobuf, google/type, ... files) a dependency,
        // which the serializer then registers as 27 references, and Apicurio's own deserializer
        // cannot parse that back ("multiple enums share constant CALENDAR_PERIOD_UNSPECIFIED").
        DescriptorProtos.FileDescriptorProto proto = FileDescriptorUtils.toFileDescriptorProto(orderProto(version), "order.proto", Optional.of("shop"), Map.of());
        FileDescriptor fd = FileDescriptor.buildFrom(proto, new FileDescriptor[] {
            com.google.protobuf.Timestamp.getDescriptor().getFile(), com.google.protobuf.StringValue.getDescriptor().getFile()});
        Descriptor d = fd.getMessageTypes().get(0);
        if (!d.getName().equals("Order")) throw new IllegalStateException("first message is " + d.getName());
        return d;
    }

    static final String[] CITIES = {"Oslo", "Québec", "東京", "Ilulissat"};

    static DynamicMessage order(Descriptor d, int version, long i) {
        DynamicMessage.Builder b = DynamicMessage.newBuilder(d);
        FileDescriptor file = d.getFile();
        Descriptor custD = file.findMessageTypeByName("Customer");
        Descriptor itemD = file.findMessageTypeByName("Item");
        b.setField(d.findFieldByName("id"), i * 7919 - 100_000);   // 0 (absent) once, negative and positive
        if (i % 6 != 4) {                                        // customer absent sometimes
            Descriptor addrD = custD.findNestedTypeByName("Address");
            DynamicMessage.Builder cb = DynamicMessage.newBuilder(custD).setField(custD.findFieldByName("name"), "customer " + i);
            if (i % 3 != 0) cb.setField(custD.findFieldByName("email"), "c" + i + "@example.com");
            if (i % 5 != 0) {
                DynamicMessage.Builder ab = DynamicMessage.newBuilder(addrD).setField(addrD.findFieldByName("city"), CITIES[(int) (i % 4)]);
                if (i % 7 != 0) ab.setField(addrD.findFieldByName("zip"), String.format("%05d", i * 37 % 100000));
                cb.setField(custD.findFieldByName("address"), ab.build());
            }
            b.setField(d.findFieldByName("customer"), cb.build());
        }
        for (int k = 0; k < i % 4; k++) {
            DynamicMessage.Builder ib = DynamicMessage.newBuilder(itemD).setField(itemD.findFieldByName("sku"), "sku-" + (i + k) % 97)
                .setField(itemD.findFieldByName("qty"), k + 1);
            if (k != 1) ib.setField(itemD.findFieldByName("delta"), (int) (k * 3 - 4));
            b.addRepeatedField(d.findFieldByName("items"), ib.build());
        }
        for (int k = 0; k < i % 5; k++) b.addRepeatedField(d.findFieldByName("quantities"), (int) (k * 1000 - 1500 + i));  // packed, negatives
        for (int k = 0; k < i % 3; k++) b.addRepeatedField(d.findFieldByName("tags"), "tag" + (i + k) % 5);
        FieldDescriptor counters = d.findFieldByName("counters");
        for (int k = 0; k < i % 3; k++) {
            Descriptor e = counters.getMessageType();
            b.addRepeatedField(counters, DynamicMessage.newBuilder(e).setField(e.findFieldByName("key"), "c" + k)
                .setField(e.findFieldByName("value"), i * 1000 + k - 1500).build());
        }
        FieldDescriptor labels = d.findFieldByName("labels");
        for (int k = 0; k < (i + 1) % 3; k++) {
            Descriptor e = labels.getMessageType();
            b.addRepeatedField(labels, DynamicMessage.newBuilder(e).setField(e.findFieldByName("key"), (int) (k * 10 - 5))
                .setField(e.findFieldByName("value"), "l" + k + "-é").build());
        }
        switch ((int) (i % 4)) {                                 // the oneof: card, voucher, transfer, none
            case 0: b.setField(d.findFieldByName("card"), "card-" + i); break;
            case 1: b.setField(d.findFieldByName("voucher"), -i * 100); break;
            case 2: {
                Descriptor t = d.findNestedTypeByName("Transfer");
                b.setField(d.findFieldByName("transfer"), DynamicMessage.newBuilder(t).setField(t.findFieldByName("iban"), "NO93 8601 " + i)
                    .setField(t.findFieldByName("amount_cents"), i * 250 - 30_000).build());
                break;
            }
            default: break;
        }
        b.setField(d.findFieldByName("status"), d.findEnumTypeByName("Status").findValueByNumber((int) (i % 3)));
        if (i % 2 == 0) b.setField(d.findFieldByName("note"), i % 4 == 0 ? "" : "note \"" + i + "\" ✓");  // optional: "" is present
        if (i % 9 != 3) {
            Descriptor ts = d.findFieldByName("placed").getMessageType();
            long micros = 1_700_000_000_123_456L + i * 60_013_017L;
            b.setField(d.findFieldByName("placed"), DynamicMessage.newBuilder(ts).setField(ts.findFieldByName("seconds"), Math.floorDiv(micros, 1_000_000L))
                .setField(ts.findFieldByName("nanos"), (int) Math.floorMod(micros, 1_000_000L) * 1000).build());
        }
        if (i % 3 == 1) {
            Descriptor sv = d.findFieldByName("coupon").getMessageType();
            b.setField(d.findFieldByName("coupon"), DynamicMessage.newBuilder(sv).setField(sv.findFieldByName("value"), "SAVE" + i).build());
        }
        if (i % 5 != 2) b.setField(d.findFieldByName("total"), i * 1.25 - 40);
        if (i % 2 == 1) b.setField(d.findFieldByName("gift"), true);
        if (i % 4 == 3) b.setField(d.findFieldByName("blob"), ByteString.copyFrom(new byte[] {(byte) i, (byte) 0xff, 0, (byte) 0x80}));
        if (i % 3 != 2) b.setField(d.findFieldByName("points"), (int) (0xF000_0000L + i));   // uint32 above 2^31
        if (version >= 2) {
            if (i % 5 != 0) b.setField(d.findFieldByName("discount"), i / 4.0);
            for (int k = 0; k < i % 3; k++) b.addRepeatedField(d.findFieldByName("weights"), k * 0.5 - 0.25);
        }
        if (version >= 3) {
            if (i % 4 != 0) b.setField(d.findFieldByName("channel"), new String[] {"web", "app", "store"}[(int) (i % 3)]);
            if (i % 2 == 0) {
                Descriptor ts = d.findFieldByName("shipped").getMessageType();
                b.setField(d.findFieldByName("shipped"), DynamicMessage.newBuilder(ts).setField(ts.findFieldByName("seconds"), 1_710_000_000L + i).build());
            }
        }
        return b.build();
    }

    /** The expected columns of a message: see the header. */
    static ObjectNode protoColumns(Message m) {
        ObjectNode o = NF.objectNode();
        for (FieldDescriptor f : m.getDescriptorForType().getFields()) o.set(f.getName(), protoField(m, f));
        return o;
    }

    static JsonNode protoField(Message m, FieldDescriptor f) {
        if (f.isMapField()) {
            ArrayNode a = NF.arrayNode();
            Descriptor e = f.getMessageType();
            FieldDescriptor kf = e.findFieldByName("key"), vf = e.findFieldByName("value");
            for (Object x : (List<?>) m.getField(f)) {
                Message entry = (Message) x;
                JsonNode k = protoValue(kf, entry.getField(kf)), v = protoValue(vf, entry.getField(vf));
                if (kf.getType() == FieldDescriptor.Type.STRING) a.add(NF.arrayNode().add(k).add(v));
                else a.add(NF.objectNode().<ObjectNode>set("key", k).set("value", v));
            }
            return a;
        }
        if (f.isRepeated()) {
            ArrayNode a = NF.arrayNode();
            for (Object x : (List<?>) m.getField(f)) a.add(protoValue(f, x));
            return a;
        }
        if (f.hasPresence() && !m.hasField(f)) return NF.nullNode();
        return protoValue(f, m.getField(f));
    }

    static JsonNode protoValue(FieldDescriptor f, Object v) {
        switch (f.getJavaType()) {
            case MESSAGE: {
                Message mm = (Message) v;
                Descriptor md = mm.getDescriptorForType();
                String full = md.getFullName();
                if (full.equals("google.protobuf.Timestamp")) {
                    long s = (Long) mm.getField(md.findFieldByName("seconds"));
                    int n = (Integer) mm.getField(md.findFieldByName("nanos"));
                    return NF.numberNode(s * 1_000_000L + n / 1000);
                }
                if (full.startsWith("google.protobuf.") && full.endsWith("Value") && md.getFields().size() == 1) {
                    FieldDescriptor vf = md.findFieldByName("value");
                    return protoValue(vf, mm.getField(vf));
                }
                return protoColumns(mm);
            }
            case ENUM: return NF.textNode(((EnumValueDescriptor) v).getName());
            case BYTE_STRING: return NF.textNode(hex(((ByteString) v).toByteArray()));
            case INT:
                if (f.getType() == FieldDescriptor.Type.UINT32 || f.getType() == FieldDescriptor.Type.FIXED32)
                    return NF.numberNode(Integer.toUnsignedLong((Integer) v));
                return NF.numberNode((Integer) v);
            case LONG: return NF.numberNode((Long) v);
            case FLOAT: return NF.numberNode((Float) v);
            case DOUBLE: return NF.numberNode((Double) v);
            case BOOLEAN: return NF.booleanNode((Boolean) v);
            case STRING: return NF.textNode((String) v);
            default: throw new IllegalArgumentException("no expectation for " + f);
        }
    }

    // ------------------------------------------------------------------------------------------
    // JSON Schema: Event v1, v2 (+ note, ratio), v3 (+ flags, source).

    static String eventSchema(int version) {
        return "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"title\":\"Event\",\"type\":\"object\","
            + "\"additionalProperties\":false,\"required\":[\"id\"],\"properties\":{"
            + "\"id\":{\"type\":\"integer\"},"
            + "\"name\":{\"type\":\"string\"},"
            + "\"score\":{\"type\":\"number\"},"
            + "\"active\":{\"type\":\"boolean\"},"
            + "\"at\":{\"type\":\"string\",\"format\":\"date-time\"},"
            + "\"user\":{\"type\":\"object\",\"properties\":{\"handle\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
            + "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"zip\":{\"type\":\"string\"}}}}},"
            + "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
            + "\"points\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"},\"y\":{\"type\":\"integer\"}}}}"
            + (version >= 2 ? ",\"note\":{\"type\":\"string\"},\"ratio\":{\"type\":\"number\"}" : "")
            + (version >= 3 ? ",\"flags\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}},"
                + "\"source\":{\"type\":\"object\",\"properties\":{\"system\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"}}}" : "")
            + "}}";
    }

    static final String[] ESCAPES = {"plain", "quote \" and backslash \\", "line\nbreak\ttab", "ctrl \u0001\u001f", "東京 Québec 😀", "slash / <tag> &amp;"};

    static ObjectNode event(int version, long i) {
        ObjectNode o = NF.objectNode();
        o.put("id", i * 104_729 - 1_000_000);                    // negative, positive, past 2^31 below
        if (i % 11 == 5) o.put("id", 5_000_000_000L + i);
        if (i % 4 != 3) o.put("name", ESCAPES[(int) (i % ESCAPES.length)] + " " + i);
        if (i % 5 != 1) o.put("score", i % 3 == 0 ? (double) (i * 2) : i * 0.125 - 7.5);   // 2.0-style values too
        if (i % 3 != 2) o.put("active", i % 2 == 0);
        // What Jackson's JavaTimeModule writes for an Instant (ISO_INSTANT: no fraction when zero).
        if (i % 6 != 5) o.put("at", Instant.ofEpochMilli(1_710_000_000_000L + i * 3_600_017L).toString());
        if (i % 7 != 6) {
            ObjectNode u = o.putObject("user");
            u.put("handle", "@user" + i);
            if (i % 2 == 0) u.put("age", 18 + i % 60);
            if (i % 3 != 0) {
                ObjectNode a = u.putObject("address");
                a.put("city", CITIES[(int) (i % 4)]);
                if (i % 5 != 0) a.put("zip", String.format("%05d", i * 31 % 100000));
            }
        }
        if (i % 4 != 2) {
            ArrayNode t = o.putArray("tags");
            for (int k = 0; k < i % 3; k++) t.add("t" + (i + k) % 7);
        }
        if (i % 3 == 1) {
            ArrayNode p = o.putArray("points");
            for (int k = 0; k < 1 + i % 3; k++) {
                ObjectNode pt = p.addObject();
                pt.put("x", k * 1.5 - i);
                if (k != 1) pt.put("y", k - 2);
            }
        }
        if (version >= 2) {
            if (i % 2 == 0) o.put("note", "v2 note é " + i);
            if (i % 3 == 0) o.put("ratio", i / 8.0);
        }
        if (version >= 3) {
            if (i % 2 == 1) { ArrayNode f = o.putArray("flags"); f.add(true); f.add(i % 4 == 1); }
            if (i % 3 != 1) { ObjectNode s = o.putObject("source"); s.put("system", "sys-" + i % 4); if (i % 2 == 0) s.put("version", i % 9); }
        }
        return o;
    }

    /** The expected columns of a JSON value: every property the schema declares, absent ones null. */
    static ObjectNode jsonColumns(JsonNode schema, JsonNode v) {
        ObjectNode o = NF.objectNode();
        for (Iterator<Map.Entry<String, JsonNode>> it = schema.get("properties").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> p = it.next();
            o.set(p.getKey(), jsonColumn(p.getValue(), v.get(p.getKey())));
        }
        return o;
    }

    static JsonNode jsonColumn(JsonNode s, JsonNode v) {
        if (v == null || v.isNull()) return NF.nullNode();
        switch (s.get("type").asText()) {
            case "object": return jsonColumns(s, v);
            case "array": {
                ArrayNode a = NF.arrayNode();
                for (JsonNode x : v) a.add(jsonColumn(s.get("items"), x));
                return a;
            }
            case "integer": return NF.numberNode(v.longValue());
            case "number": return NF.numberNode(v.doubleValue());
            case "boolean": return NF.booleanNode(v.booleanValue());
            case "string":
                if (s.has("format") && s.get("format").asText().equals("date-time")) {
                    Instant t = Instant.parse(v.asText());
                    return NF.numberNode(t.getEpochSecond() * 1_000_000L + t.getNano() / 1000);
                }
                return NF.textNode(v.asText());
            default: throw new IllegalArgumentException("no expectation for " + s);
        }
    }

    // ------------------------------------------------------------------------------------------

    static String hex(byte[] b) {
        if (b == null) return null;
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

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
        Sent s = new Sent(topic, ts, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value, status);
        sent.add(s);
        p.send(new ProducerRecord<>(topic, 0, ts, s.key, value), (md, e) -> {
            if (e != null) { sendError = e; return; }
            // The record's own timestamp stands (CreateTime), not md.timestamp():
            // E2eClient.acknowledgedTimestamp says why.
            s.offset = md.offset();
        });
        return s;
    }

    static void check() {
        if (sendError != null) throw new IllegalStateException("send failed", sendError);
    }

    static Map<String, Object> serdeConfig() {
        Map<String, Object> c = new HashMap<>();
        c.put("apicurio.registry.url", opt("registry"));
        c.put("apicurio.registry.auto-register", "true");
        c.put("apicurio.registry.artifact-resolver-strategy", "io.apicurio.registry.serde.strategy.TopicIdStrategy");
        // The Confluent frame: magic byte 0 + the 4-byte content id (the Confluent API's id), no headers.
        c.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Default4ByteIdHandler");
        c.put("apicurio.registry.use-id", "contentId");
        c.put("apicurio.registry.headers.enabled", "false");
        // Protobuf: Confluent's message-index list after the id, not Apicurio's Ref type header.
        c.put("apicurio.registry.serde.send-type-ref", "false");
        c.put("apicurio.registry.serde.send-indexes", "true");
        c.put("apicurio.registry.serde.read-type-ref", "false");
        c.put("apicurio.registry.serde.read-indexes", "true");
        return c;
    }

    static int schemaId(byte[] framed) {
        if (framed.length < 5 || framed[0] != 0) throw new IllegalStateException("not the Confluent wire format: " + hex(Arrays.copyOf(framed, Math.min(8, framed.length))));
        return ByteBuffer.wrap(framed, 1, 4).getInt();
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.write(p, 0, p.length);
        return out.toByteArray();
    }

    static void produce() throws Exception {
        int records = Integer.parseInt(opts.getOrDefault("records", "300"));
        String segmentBytes = opts.getOrDefault("segment-bytes", "32768");
        Path outDir = Path.of(opt("out-dir"));
        long t0 = (System.currentTimeMillis() - DAY) / 1000 * 1000;

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        try (Admin admin = Admin.create(ap)) {
            List<NewTopic> nts = new ArrayList<>();
            for (String t : List.of(PROTO, JSONT)) {
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

        // JSON schemas: the serializer reads its schema from the context class loader
        // (apicurio.registry.artifact.schema.location), one serializer per version.
        Path schemaDir = outDir.resolve("json-schemas");
        Files.createDirectories(schemaDir);
        for (int v = 1; v <= 3; v++) Files.writeString(schemaDir.resolve("event-v" + v + ".json"), eventSchema(v));
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        Thread.currentThread().setContextClassLoader(new URLClassLoader(new URL[] {schemaDir.toUri().toURL()}, previous));

        // Protobuf: one serializer per version (the serde caches the schema per message class,
        // and every version's class is DynamicMessage).
        Descriptor[] descriptors = new Descriptor[4];
        List<ProtobufKafkaSerializer<DynamicMessage>> protoSers = new ArrayList<>();
        List<JsonSchemaKafkaSerializer<JsonNode>> jsonSers = new ArrayList<>();
        protoSers.add(null);
        jsonSers.add(null);
        JsonNode[] jsonSchemas = new JsonNode[4];
        for (int v = 1; v <= 3; v++) {
            descriptors[v] = orderDescriptor(v);
            ProtobufKafkaSerializer<DynamicMessage> ps = new ProtobufKafkaSerializer<>();
            ps.configure(serdeConfig(), false);
            protoSers.add(ps);
            Map<String, Object> jc = serdeConfig();
            jc.put("apicurio.registry.artifact.schema.location", "event-v" + v + ".json");
            JsonSchemaKafkaSerializer<JsonNode> js = new JsonSchemaKafkaSerializer<>();
            js.configure(jc, false);
            jsonSers.add(js);
            jsonSchemas[v] = JSON.readTree(eventSchema(v));
        }

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        int[] protoIds = new int[4], jsonIds = new int[4];
        String indexHex = null;
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp)) {
            // typed_proto
            byte[] last = null;
            int rawKind = 0;
            for (long i = 0; i < records; i++) {
                int version = 1 + (int) (i * 3 / records);
                long ts = t0 + i * 100;
                String key = i % 13 == 4 ? null : "order-" + i;
                if (i % 37 == 5) { send(p, PROTO, ts, key, null, 'N').expected.put("kind", "tombstone"); continue; }
                if (i % 23 == 11 && last != null) {
                    byte[] v;
                    String kind;
                    switch (rawKind++ % 4) {
                        case 0: kind = "unknown-id"; v = last.clone(); ByteBuffer.wrap(v).putInt(1, 987_654); break;
                        case 1: kind = "truncated"; v = Arrays.copyOf(last, last.length - 3); break;
                        case 2: kind = "unknown-field"; v = concat(last, new byte[] {(byte) 0x98, 0x06, 0x01}); break;   // field 99, varint 1
                        default: kind = "other-message"; v = last.clone(); v[6] = 0x02; break;   // index list [1]: Customer
                    }
                    send(p, PROTO, ts, key, v, 'N').expected.put("kind", kind).put("value", hex(v));
                    continue;
                }
                DynamicMessage m = order(descriptors[version], version, i);
                RecordHeaders h = new RecordHeaders();
                byte[] v = protoSers.get(version).serialize(PROTO, h, m);
                if (h.toArray().length != 0) throw new IllegalStateException("the Protobuf serializer wrote headers");
                int id = schemaId(v);
                byte[] body = m.toByteArray();
                if (v.length != 5 + 2 + body.length || !Arrays.equals(Arrays.copyOfRange(v, 7, v.length), body))
                    throw new IllegalStateException("Protobuf frame is not 00 <id> <2-byte index list> <message>: " + hex(Arrays.copyOf(v, Math.min(16, v.length))));
                String idx = hex(Arrays.copyOfRange(v, 5, 7));
                if (indexHex == null) indexHex = idx;
                else if (!indexHex.equals(idx)) throw new IllegalStateException("index lists " + indexHex + " and " + idx);
                if (protoIds[version] == 0) protoIds[version] = id;
                else if (protoIds[version] != id) throw new IllegalStateException("proto v" + version + " got ids " + protoIds[version] + " and " + id);
                // Every 7th value re-framed as Confluent's serializer frames it: the index list [0] as one 00 byte.
                boolean confluent = i % 7 == 3;
                byte[] sentBytes = confluent ? concat(Arrays.copyOf(v, 5), new byte[] {0}, body) : v;
                Sent s = send(p, PROTO, ts, key, sentBytes, 'N');
                s.expected.put("kind", confluent ? "proto-confluent" : "proto").put("version", version).put("schema_id", id)
                    .put("indexes", confluent ? "00" : idx).put("decoded", TextFormat.printer().printToString(m))
                    .set("columns", confluent ? null : protoColumns(m));
                // A segment keeps one spelling of the index list per writer schema, the one most
                // of its values use (here Apicurio's): the Confluent-framed few stay raw.
                if (confluent) s.expected.put("value", hex(sentBytes));
                last = v;
                if (i % 100 == 99) p.flush();
            }
            p.flush();
            check();
            System.err.println("produced " + PROTO + ": schema ids v1 " + protoIds[1] + ", v2 " + protoIds[2] + ", v3 " + protoIds[3]
                + "; Apicurio's index list for [0]: " + indexHex);

            // typed_json
            last = null;
            rawKind = 0;
            for (long i = 0; i < records; i++) {
                int version = 1 + (int) (i * 3 / records);
                long ts = t0 + i * 100;
                String key = i % 13 == 4 ? null : "event-" + i;
                if (i % 37 == 5) { send(p, JSONT, ts, key, null, 'N').expected.put("kind", "tombstone"); continue; }
                if (i % 23 == 11 && last != null) {
                    byte[] v;
                    String kind;
                    byte[] prefix = Arrays.copyOf(last, 5);
                    switch (rawKind++ % 5) {
                        case 0: kind = "unknown-id"; v = last.clone(); ByteBuffer.wrap(v).putInt(1, 987_655); break;
                        case 1: kind = "truncated"; v = Arrays.copyOf(last, last.length - 2); break;
                        case 2: kind = "wrong-type"; v = concat(prefix, ("{\"id\":\"" + i + "\"}").getBytes(StandardCharsets.UTF_8)); break;
                        case 3: kind = "extra-property"; v = concat(prefix, ("{\"id\":" + i + ",\"bogus\":1}").getBytes(StandardCharsets.UTF_8)); break;
                        default: kind = "not-json"; v = concat(prefix, "not json".getBytes(StandardCharsets.UTF_8)); break;
                    }
                    send(p, JSONT, ts, key, v, 'N').expected.put("kind", kind).put("value", hex(v));
                    continue;
                }
                ObjectNode o = event(version, i);
                RecordHeaders h = new RecordHeaders();
                byte[] v = jsonSers.get(version).serialize(JSONT, h, o);
                if (h.toArray().length != 0) throw new IllegalStateException("the JSON Schema serializer wrote headers");
                int id = schemaId(v);
                String text = JSON.writeValueAsString(o);
                // (The serializer writes to a stream: Jackson escapes characters outside the BMP there,
                // \\uD83D\\uDE00, which writeValueAsString does not.)
                if (!JSON.readTree(Arrays.copyOfRange(v, 5, v.length)).equals(JSON.readTree(text)))
                    throw new IllegalStateException("JSON frame is not 00 <id> <the object's JSON text>: " + hex(v));
                if (jsonIds[version] == 0) jsonIds[version] = id;
                else if (jsonIds[version] != id) throw new IllegalStateException("json v" + version + " got ids " + jsonIds[version] + " and " + id);
                Sent s = send(p, JSONT, ts, key, v, 'N');
                s.expected.put("kind", "json").put("version", version).put("schema_id", id).put("decoded", text)
                    .set("columns", jsonColumns(jsonSchemas[version], o));
                last = v;
                if (i % 100 == 99) p.flush();
            }
            p.flush();
            check();
            System.err.println("produced " + JSONT + ": schema ids v1 " + jsonIds[1] + ", v2 " + jsonIds[2] + ", v3 " + jsonIds[3]);

            long markerTs = System.currentTimeMillis() + SEGMENT_MS + 60_000;
            for (String t : List.of(PROTO, JSONT)) {
                byte[] v = "end marker".getBytes(StandardCharsets.UTF_8);
                send(p, t, markerTs, null, v, 'M').expected.put("kind", "marker").put("value", hex(v));
            }
            p.flush();
        }
        check();
        for (int v = 1; v <= 3; v++) { protoSers.get(v).close(); jsonSers.get(v).close(); }
        for (int[] ids : List.of(protoIds, jsonIds))
            if (ids[1] == 0 || ids[2] == 0 || ids[3] == 0 || ids[1] == ids[2] || ids[2] == ids[3] || ids[1] == ids[3])
                throw new IllegalStateException("expected three distinct schema ids, got " + Arrays.toString(ids));

        List<Sent> all = new ArrayList<>(sent);
        all.sort((a, b) -> a.topic.equals(b.topic) ? Long.compare(a.offset, b.offset) : a.topic.compareTo(b.topic));
        try (BufferedWriter o = Files.newBufferedWriter(outDir.resolve("oracle-pj.tsv"));
             BufferedWriter e = Files.newBufferedWriter(outDir.resolve("expected-pj.jsonl"))) {
            for (Sent s : all) {
                if (s.offset < 0) throw new IllegalStateException("a record of " + s.topic + " has no offset");
                o.write(s.topic + "\t0\t" + s.offset + "\t" + s.timestamp + "\tC\t" + s.status + "\t"
                    + (s.key == null ? "-" : hex(s.key)) + "\t" + (s.value == null ? "-" : hex(s.value)) + "\t\n");
                ObjectNode x = s.expected;
                x.put("topic", s.topic).put("partition", 0).put("offset", s.offset).put("timestamp", s.timestamp)
                    .put("key", hex(s.key)).put("key_kind", s.key == null ? "null" : "raw").putNull("key_schema_id");
                for (String f : List.of("version", "schema_id", "value", "columns", "decoded", "indexes"))
                    if (!x.has(f)) x.putNull(f);
                e.write(JSON.writeValueAsString(x));
                e.write('\n');
            }
        }
        System.err.println("produced " + all.size() + " records");
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
        Map<String, Object> pc = serdeConfig();
        pc.put("apicurio.registry.deserializer.value.return-class", DynamicMessage.class.getName());
        ProtobufKafkaDeserializer<DynamicMessage> protoDe = new ProtobufKafkaDeserializer<>();
        protoDe.configure(pc, false);
        // The type name Apicurio's deserializer needs (it does not map the index list to a type).
        RecordHeaders typeHeader = new RecordHeaders();
        typeHeader.add(KafkaSerdeHeaders.HEADER_VALUE_MESSAGE_TYPE, "Order".getBytes(StandardCharsets.UTF_8));
        Map<String, Object> jc = serdeConfig();
        jc.put("apicurio.registry.serde.validation-enabled", "true");
        JsonSchemaKafkaDeserializer<JsonNode> jsonDe = new JsonSchemaKafkaDeserializer<>();
        jsonDe.configure(jc, false);

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt("bootstrap"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        boolean ok = true;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            for (String topic : List.of(PROTO, JSONT)) {
                TopicPartition tp = new TopicPartition(topic, 0);
                c.assign(List.of(tp));
                c.seek(tp, 0);
                long end = c.endOffsets(List.of(tp)).get(tp);
                long deadline = System.currentTimeMillis() + 120_000;
                int decoded = 0, mismatched = 0, tolerated = 0;
                Map<String, Integer> kinds = new LinkedHashMap<>();
                String first = null;
                while (c.position(tp) < end) {
                    if (System.currentTimeMillis() > deadline) throw new IllegalStateException(topic + ": consume timed out at " + c.position(tp) + "/" + end);
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                        JsonNode e = expected.getOrDefault(topic, Map.of()).get(r.offset());
                        if (e == null || e.get("decoded").isNull()) continue;
                        String want = e.get("decoded").asText(), got;
                        boolean same;
                        try {
                            if (topic.equals(PROTO)) {
                                got = TextFormat.printer().printToString(protoDe.deserialize(topic, typeHeader, r.value()));
                                same = got.equals(want);
                                if (!same) {
                                    // Apicurio builds the reader's descriptor from the registry's .proto
                                    // text without proto3 `optional` presence: an optional field set to its
                                    // default ("" here) reads as absent. Tolerated, counted, named.
                                    int skip = e.get("indexes").asText().length() / 2 + 5;
                                    DynamicMessage produced = DynamicMessage.parseFrom(orderDescriptor(e.get("version").asInt()),
                                        Arrays.copyOfRange(r.value(), skip, r.value().length));
                                    DynamicMessage.Builder nb = produced.toBuilder();
                                    for (FieldDescriptor f : produced.getDescriptorForType().getFields())
                                        if (f.toProto().getProto3Optional() && produced.hasField(f) && produced.getField(f).equals(f.getDefaultValue()))
                                            nb.clearField(f);
                                    if (TextFormat.printer().printToString(produced).equals(want)
                                            && TextFormat.printer().printToString(nb.build()).equals(got)) {
                                        same = true;
                                        tolerated++;
                                    }
                                }
                            } else {
                                JsonNode n = jsonDe.deserialize(topic, r.headers(), r.value());
                                got = JSON.writeValueAsString(n);
                                same = n.equals(JSON.readTree(want));
                            }
                        } catch (RuntimeException | com.google.protobuf.InvalidProtocolBufferException ex) {
                            got = "exception: " + ex;
                            same = false;
                        }
                        decoded++;
                        kinds.merge(e.get("kind").asText(), 1, Integer::sum);
                        if (!same) {
                            mismatched++;
                            if (first == null) first = "offset " + r.offset() + " (" + e.get("kind").asText() + " v" + e.get("version").asText()
                                + "): expected " + want.replace("\n", " ") + ", decoded " + got.replace("\n", " ");
                        }
                    }
                }
                long wantCount = expected.getOrDefault(topic, Map.of()).values().stream().filter(n -> !n.get("decoded").isNull()).count();
                String name = (topic.equals(PROTO) ? "Protobuf deserializer (Apicurio ProtobufKafkaDeserializer, DynamicMessage)"
                    : "JSON Schema deserializer (Apicurio JsonSchemaKafkaDeserializer, validating)") + " decodes " + topic;
                if (mismatched == 0 && decoded == wantCount && wantCount > 0) {
                    System.out.println("PASS " + name + " (" + decoded + " values equal the produced messages: " + kinds
                        + (tolerated > 0 ? "; " + tolerated + " of them with an `optional` field set to its default read as absent:"
                           + " Apicurio's reader descriptor, from the registry's text, has no proto3 optional presence" : "") + ")");
                } else {
                    ok = false;
                    System.out.println("FAIL " + name + ": " + decoded + " of " + wantCount + " decoded, " + mismatched + " differ; first: " + first);
                }
            }
        }
        protoDe.close();
        jsonDe.close();
        return ok;
    }
}
