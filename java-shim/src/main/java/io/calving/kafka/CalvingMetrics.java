package io.calving.kafka;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.AttributeNotFoundException;
import javax.management.DynamicMBean;
import javax.management.InstanceAlreadyExistsException;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import org.apache.kafka.server.log.remote.storage.RemoteStorageException;

/**
 * The plugin's metrics as a JMX MBean, {@code io.calving:type=RemoteStorageManager,broker=<id>},
 * on the platform MBean server: what operators scrape with the JMX exporter they already run for
 * the broker. Works on every Kafka version (KIP-877's {@code Monitorable} never reaches a plugin
 * loaded through {@code remote.log.storage.manager.class.path}).
 *
 * <p>The attributes are the native side's metrics ({@code RemoteStorage::metrics}, names listed in
 * the README): read on demand, at most once a second (a scrape of every attribute costs one
 * native call). Every value is a {@code double}; counters only grow.
 */
final class CalvingMetrics implements DynamicMBean {

    interface Source {
        String read() throws RemoteStorageException;
    }

    private static final long MAX_AGE_NANOS = 1_000_000_000L;

    private final Source source;
    private final ObjectName name;
    private Map<String, Double> values = new LinkedHashMap<>();
    private long readAt = Long.MIN_VALUE;

    private CalvingMetrics(Source source, ObjectName name) {
        this.source = source;
        this.name = name;
    }

    /**
     * Registers the metrics of one plugin instance. The name carries the broker id; a second
     * instance in the same JVM (tests, a reconfigure) gets {@code ,instance=<n>} as well.
     */
    static CalvingMetrics register(Source source, Object brokerId) throws RemoteStorageException {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        String base = "io.calving:type=RemoteStorageManager,broker=" + ObjectName.quote(String.valueOf(brokerId));
        for (int instance = 0; instance < 1000; instance++) {
            try {
                ObjectName name = new ObjectName(instance == 0 ? base : base + ",instance=" + instance);
                CalvingMetrics metrics = new CalvingMetrics(source, name);
                server.registerMBean(metrics, name);
                return metrics;
            } catch (InstanceAlreadyExistsException e) {
                // taken by another instance: try the next
            } catch (Exception e) {
                throw new RemoteStorageException("registering the JMX metrics " + base + " failed: " + e, e);
            }
        }
        throw new RemoteStorageException("registering the JMX metrics " + base + " failed: 1000 instances registered");
    }

    ObjectName name() {
        return name;
    }

    /** Removes the MBean (at close); idempotent. */
    void unregister() {
        try {
            ManagementFactory.getPlatformMBeanServer().unregisterMBean(name);
        } catch (Exception e) {
            // already gone
        }
    }

    private synchronized Map<String, Double> values() {
        long now = System.nanoTime();
        if (readAt == Long.MIN_VALUE || now - readAt > MAX_AGE_NANOS) {
            Map<String, Double> fresh = new LinkedHashMap<>();
            try {
                for (String line : source.read().split("\n")) {
                    int eq = line.indexOf('=');
                    if (eq > 0) {
                        fresh.put(line.substring(0, eq), Double.valueOf(line.substring(eq + 1)));
                    }
                }
                values = fresh;
                readAt = now;
            } catch (RemoteStorageException | NumberFormatException e) {
                // closed or failing: keep the last values
            }
        }
        return values;
    }

    @Override
    public Object getAttribute(String attribute) throws AttributeNotFoundException {
        Double v = values().get(attribute);
        if (v == null) {
            throw new AttributeNotFoundException(attribute);
        }
        return v;
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        Map<String, Double> all = values();
        AttributeList out = new AttributeList();
        for (String a : attributes) {
            Double v = all.get(a);
            if (v != null) {
                out.add(new Attribute(a, v));
            }
        }
        return out;
    }

    @Override
    public void setAttribute(Attribute attribute) throws AttributeNotFoundException {
        throw new AttributeNotFoundException(attribute.getName() + " is read-only");
    }

    @Override
    public AttributeList setAttributes(AttributeList attributes) {
        return new AttributeList();
    }

    @Override
    public Object invoke(String actionName, Object[] params, String[] signature) {
        throw new UnsupportedOperationException("no operations");
    }

    @Override
    public MBeanInfo getMBeanInfo() {
        List<MBeanAttributeInfo> attributes = new ArrayList<>();
        for (String n : values().keySet()) {
            attributes.add(new MBeanAttributeInfo(n, "java.lang.Double", n, true, false, false));
        }
        return new MBeanInfo(CalvingMetrics.class.getName(), "Calving remote storage metrics",
                attributes.toArray(new MBeanAttributeInfo[0]), null, null, null);
    }
}
