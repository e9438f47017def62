// One record that rolls the last data segment of a partition, for integration/e2e/connect-compare.sh
// (the same trick as E2eClient's produce: a CreateTime timestamp past segment.ms, 7 days by
// default, after the segment's first batch makes LogSegment.shouldRoll roll it; the marker is the
// first record of the new active segment and everything before it can tier). Its value is a JSON
// object like the workload's (id -1), so the Iceberg sink takes it as a row like any other.
//
//   java -cp "$LIBS/*" EndMarker.java <bootstrap> <topic>      prints the marker's offset
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class EndMarker {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        long ts = System.currentTimeMillis() + 7 * 86_400_000L + 60_000L;
        byte[] value = "{\"id\":-1,\"user\":\"end-marker\",\"items\":[]}".getBytes(StandardCharsets.UTF_8);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            RecordMetadata m = producer.send(new ProducerRecord<>(args[1], 0, ts, null, value)).get();
            System.out.println(m.offset());
        }
    }
}
