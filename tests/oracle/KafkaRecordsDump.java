// Independent oracle: dumps Kafka log segment files (.log) as JSON lines using Kafka's own parser
// (org.apache.kafka.common.record.FileRecords from kafka-clients), so that tests can compare
// Calving's Rust codec against what Kafka itself reads.
//
// Run as a Java 17 single-file source program (no build step), with the jars resolved by
// integration/kafka/resolve-jars.sh:
//
//   java -cp "$LIBS/*" tests/oracle/KafkaRecordsDump.java <file.log> [<file.log> ...]
//
// Output (stdout, UTF-8, strict JSON, one object per line; every non-ASCII character is \\u-escaped):
//   {"type":"file","path":"<path as given>"}
//   then, per batch (for magic 0/1 every shallow entry, i.e. a plain message or a compressed wrapper):
//   {"type":"batch","position":P,"sizeInBytes":S,"magic":M,"baseOffset":B|null,"lastOffset":L,
//    "count":N|null,"crc":C,"valid":true|false,"compression":"none|gzip|snappy|lz4|zstd",
//    "timestampType":"CreateTime|LogAppendTime|NoTimestampType","maxTimestamp":T,
//    "partitionLeaderEpoch":E,"producerId":I,"producerEpoch":PE,"baseSequence":Q,
//    "isTransactional":b,"isControl":b,"deleteHorizonMs":D|null
//    [,"baseTimestamp":BT,"attributes":A]}          <- the last two for magic 2 only (header bytes 27 and 21)
//   then, if the batch is valid, per record:
//   {"type":"record","offset":O,"timestamp":T,"sequence":Q,"key":"<hex>"|null,"value":"<hex>"|null,
//    "headers":[["<key>","<hex>"|null],...][,"control":{"type":"COMMIT|ABORT|...","coordinatorEpoch":K|null}]}
//   and last, per file:
//   {"type":"end","path":"...","fileSize":F,"batchBytes":X,"trailingBytes":F-X,"batches":n,"records":m,"invalidBatches":k}
//   (trailingBytes > 0 means a partial batch at the end, which FileRecords silently stops at).
//
// "crc" is the stored checksum as an unsigned 32-bit number; "valid" is whether batch.ensureValid()
// passed (CRC-32C over the v2 batch, CRC-32 over a legacy message). Records of an invalid batch are
// not printed. "baseOffset" is null only for an invalid magic 0/1 compressed wrapper whose inner
// messages cannot be decompressed (Kafka derives a legacy wrapper's base offset from them).
// "timestamp" of a record is Record.timestamp() as Kafka reports it (for LogAppendTime batches that
// is the batch's maxTimestamp, not the stored delta). Control records: the key parsed
// by ControlRecordType.parse, coordinatorEpoch from EndTransactionMarker.deserialize for COMMIT/ABORT
// (null for other control types).
//
// Exit status: 0 if every batch of every file is valid; 3 if some batch was invalid (everything is
// still printed); 2 on an exception (message on stderr; output printed so far stays valid JSON lines);
// 1 on bad usage.

import java.io.BufferedWriter;
import java.io.File;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.OptionalLong;

import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.record.ControlRecordType;
import org.apache.kafka.common.record.EndTransactionMarker;
import org.apache.kafka.common.record.FileLogInputStream.FileChannelRecordBatch;
import org.apache.kafka.common.record.FileRecords;
import org.apache.kafka.common.record.Record;
import org.apache.kafka.common.record.RecordBatch;

public class KafkaRecordsDump {

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    public static void main(String[] args) {
        if (args.length == 0) {
            System.err.println("usage: java -cp \"$LIBS/*\" KafkaRecordsDump.java <file.log> [<file.log> ...]");
            System.exit(1);
        }
        Writer out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
        int status = 0;
        try {
            for (String path : args) {
                if (!dumpFile(path, out)) status = 3;
            }
            out.flush();
        } catch (Throwable t) {
            try { out.flush(); } catch (IOException ignored) { }
            System.err.println("KafkaRecordsDump: error: " + t);
            t.printStackTrace(System.err);
            System.exit(2);
        }
        System.exit(status);
    }

    /** Returns false if some batch of the file failed ensureValid(). */
    static boolean dumpFile(String path, Writer out) throws IOException {
        File file = new File(path);
        if (!file.isFile()) throw new IOException("not a regular file: " + path);
        StringBuilder sb = new StringBuilder(256);
        sb.append("{\"type\":\"file\",\"path\":");
        str(sb, path);
        sb.append("}\n");
        out.write(sb.toString());

        long batches = 0, records = 0, invalid = 0, batchBytes = 0;
        FileRecords fileRecords = FileRecords.open(file, false);
        try {
            ByteBuffer header = ByteBuffer.allocate(8);
            for (FileChannelRecordBatch batch : fileRecords.batches()) {
                batches++;
                batchBytes += batch.sizeInBytes();
                boolean valid;
                try {
                    batch.ensureValid();
                    valid = true;
                } catch (RuntimeException e) { // CorruptRecordException, InvalidRecordException
                    valid = false;
                    invalid++;
                }
                sb.setLength(0);
                sb.append("{\"type\":\"batch\"");
                num(sb, "position", batch.position());
                num(sb, "sizeInBytes", batch.sizeInBytes());
                num(sb, "magic", batch.magic());
                sb.append(",\"baseOffset\":").append(baseOffset(batch, valid));
                num(sb, "lastOffset", batch.lastOffset());
                Integer count = batch.countOrNull();
                sb.append(",\"count\":").append(count == null ? "null" : count.toString());
                num(sb, "crc", batch.checksum() & 0xffffffffL);
                sb.append(",\"valid\":").append(valid);
                sb.append(",\"compression\":");
                str(sb, batch.compressionType().name);
                sb.append(",\"timestampType\":");
                str(sb, batch.timestampType().name);
                num(sb, "maxTimestamp", batch.maxTimestamp());
                num(sb, "partitionLeaderEpoch", batch.partitionLeaderEpoch());
                num(sb, "producerId", batch.producerId());
                num(sb, "producerEpoch", batch.producerEpoch());
                num(sb, "baseSequence", batch.baseSequence());
                sb.append(",\"isTransactional\":").append(batch.isTransactional());
                sb.append(",\"isControl\":").append(batch.isControlBatch());
                OptionalLong horizon = batch.deleteHorizonMs();
                sb.append(",\"deleteHorizonMs\":").append(horizon.isPresent() ? Long.toString(horizon.getAsLong()) : "null");
                if (batch.magic() >= RecordBatch.MAGIC_VALUE_V2) {
                    // No public accessor on FileChannelRecordBatch: read the v2 header bytes.
                    header.clear().limit(8);
                    fileRecords.readInto(header, batch.position() + 27);
                    num(sb, "baseTimestamp", header.getLong(0));
                    header.clear().limit(2);
                    fileRecords.readInto(header, batch.position() + 21);
                    num(sb, "attributes", header.getShort(0) & 0xffff);
                }
                sb.append("}\n");
                out.write(sb.toString());
                if (!valid) continue;

                for (Record record : batch) {
                    records++;
                    sb.setLength(0);
                    sb.append("{\"type\":\"record\"");
                    num(sb, "offset", record.offset());
                    num(sb, "timestamp", record.timestamp());
                    num(sb, "sequence", record.sequence());
                    sb.append(",\"key\":");
                    hex(sb, record.hasKey() ? record.key() : null);
                    sb.append(",\"value\":");
                    hex(sb, record.hasValue() ? record.value() : null);
                    sb.append(",\"headers\":[");
                    Header[] headers = record.headers();
                    for (int i = 0; i < headers.length; i++) {
                        if (i > 0) sb.append(',');
                        sb.append('[');
                        str(sb, headers[i].key());
                        sb.append(',');
                        byte[] v = headers[i].value();
                        hex(sb, v == null ? null : ByteBuffer.wrap(v));
                        sb.append(']');
                    }
                    sb.append(']');
                    if (batch.isControlBatch()) {
                        ControlRecordType type = record.hasKey() ? ControlRecordType.parse(record.key()) : ControlRecordType.UNKNOWN;
                        sb.append(",\"control\":{\"type\":");
                        str(sb, type.name());
                        sb.append(",\"coordinatorEpoch\":");
                        if (type == ControlRecordType.ABORT || type == ControlRecordType.COMMIT)
                            sb.append(EndTransactionMarker.deserialize(record).coordinatorEpoch());
                        else
                            sb.append("null");
                        sb.append('}');
                    }
                    sb.append("}\n");
                    out.write(sb.toString());
                }
            }
            long fileSize = fileRecords.sizeInBytes();
            sb.setLength(0);
            sb.append("{\"type\":\"end\",\"path\":");
            str(sb, path);
            num(sb, "fileSize", fileSize);
            num(sb, "batchBytes", batchBytes);
            num(sb, "trailingBytes", fileSize - batchBytes);
            num(sb, "batches", batches);
            num(sb, "records", records);
            num(sb, "invalidBatches", invalid);
            sb.append("}\n");
            out.write(sb.toString());
        } finally {
            fileRecords.closeHandlers();
        }
        return invalid == 0;
    }

    /**
     * The batch's base offset. For a magic 0/1 compressed wrapper Kafka finds it by decompressing the
     * inner messages, which can throw when the wrapper is corrupt: then "null" (only for invalid batches).
     */
    static String baseOffset(FileChannelRecordBatch batch, boolean valid) {
        if (valid || batch.magic() >= RecordBatch.MAGIC_VALUE_V2) return Long.toString(batch.baseOffset());
        try {
            return Long.toString(batch.baseOffset());
        } catch (RuntimeException e) {
            return "null";
        }
    }

    static void num(StringBuilder sb, String name, long v) {
        sb.append(",\"").append(name).append("\":").append(v);
    }

    /** Lowercase hex of the buffer's remaining bytes (position untouched), or null. */
    static void hex(StringBuilder sb, ByteBuffer b) {
        if (b == null) {
            sb.append("null");
            return;
        }
        sb.append('"');
        for (int i = b.position(); i < b.limit(); i++) {
            int x = b.get(i) & 0xff;
            sb.append(HEX[x >>> 4]).append(HEX[x & 0xf]);
        }
        sb.append('"');
    }

    /** JSON string; escapes quotes, backslash, control characters and everything outside ASCII. */
    static void str(StringBuilder sb, String s) {
        if (s == null) {
            sb.append("null");
            return;
        }
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                case '\b': sb.append("\\b"); break;
                case '\f': sb.append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        sb.append("\\u").append(HEX[(c >>> 12) & 0xf]).append(HEX[(c >>> 8) & 0xf])
                          .append(HEX[(c >>> 4) & 0xf]).append(HEX[c & 0xf]);
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
