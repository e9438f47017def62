package io.calving.kafka;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

import org.apache.kafka.common.utils.ChildFirstClassLoader;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager;
import org.apache.kafka.server.log.remote.storage.RemoteStorageManager.IndexType;
import org.junit.Test;

/**
 * The built plugin jar loaded as a broker does with {@code remote.log.storage.manager.class.path}:
 * through Kafka's own {@link ChildFirstClassLoader}, in a JVM where the test's class loader has
 * already loaded the same classes and native library. Both must work side by side.
 */
public class ClassLoaderIsolationTest {

    /** Kept reachable: a broker keeps its plugin loader (and so its native library) for life. */
    private static final List<ClassLoader> LOADERS = new ArrayList<>();

    private static File jar() {
        File jar = new File(System.getProperty("calving.test.jar", "build/libs/calving-0.1.0-SNAPSHOT.jar"));
        assertTrue("the plugin jar is built before the tests: " + jar, jar.isFile());
        return jar;
    }

    @Test
    public void theJarHoldsTheShimAndTheNativeLibraryOnly() throws Exception {
        List<String> other = new ArrayList<>();
        boolean library = false;
        try (JarFile jar = new JarFile(jar())) {
            for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements(); ) {
                String name = e.nextElement().getName();
                if (name.equals("io/calving/native/linux/x86_64/libcalving.so")) {
                    library = true;
                } else if (!name.startsWith("META-INF/") && !name.endsWith("/")
                        && !(name.startsWith("io/calving/kafka/") && name.endsWith(".class"))) {
                    other.add(name);
                }
            }
        }
        assertTrue("libcalving.so in the jar", library);
        assertEquals("nothing but the shim's classes and the library", Collections.emptyList(), other);
    }

    @Test
    public void aSecondClassLoaderGetsItsOwnWorkingCopy() throws Exception {
        ChildFirstClassLoader loader = new ChildFirstClassLoader(jar().getAbsolutePath(), getClass().getClassLoader());
        LOADERS.add(loader);
        Class<?> isolated = loader.loadClass(CalvingRemoteStorageManager.class.getName());
        assertNotSame("a class of its own", CalvingRemoteStorageManager.class, isolated);
        assertSame(loader, isolated.getClassLoader());
        assertSame("Kafka's interface comes from the broker", RemoteStorageManager.class,
                loader.loadClass(RemoteStorageManager.class.getName()));

        File dirA = Fixtures.tempDir("loader-a");
        File dirB = Fixtures.tempDir("loader-b");
        RemoteStorageManager first = new CalvingRemoteStorageManager();
        RemoteStorageManager second = (RemoteStorageManager) isolated.getDeclaredConstructor().newInstance();
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        try {
            first.configure(Fixtures.config(dirA.toPath()));
            // ClassLoaderAwareRemoteStorageManager sets the plugin's loader as the context loader
            // around every call; do the same.
            Thread.currentThread().setContextClassLoader(loader);
            second.configure(Fixtures.config(dirB.toPath()));
            // Each loader loaded its own copy of the library, named after this JVM's pid.
            String prefix = "libcalving-" + ProcessHandle.current().pid() + "-";
            File[] copies = new File(System.getProperty("java.io.tmpdir"))
                    .listFiles((d, name) -> name.startsWith(prefix) && name.endsWith(".so"));
            assertTrue("one library copy per class loader", copies != null && copies.length >= 2);
            Path log = Fixtures.logs("snappy").get(0);
            Fixtures.Segment a = Fixtures.segment("snappy", log, "fx-loader");
            Fixtures.Segment b = Fixtures.segment("snappy", log, "fx-loader");
            second.copyLogSegmentData(b.metadata, b.data);
            Thread.currentThread().setContextClassLoader(previous);
            first.copyLogSegmentData(a.metadata, a.data);

            Thread.currentThread().setContextClassLoader(loader);
            byte[] fromSecond = Fixtures.fetch(second, b.metadata, 0);
            byte[] indexSecond = Fixtures.readAll(second.fetchIndex(b.metadata, IndexType.OFFSET));
            Thread.currentThread().setContextClassLoader(previous);
            byte[] fromFirst = Fixtures.fetch(first, a.metadata, 0);
            // Same input, two independent warehouses and libraries: same served bytes (the
            // served layout is a pure function of the segment).
            assertArrayEquals(fromFirst, fromSecond);
            assertArrayEquals(Fixtures.readAll(first.fetchIndex(a.metadata, IndexType.OFFSET)), indexSecond);
            assertEquals(Fixtures.originalBatches(log, 0), Fixtures.servedBatches(fromSecond));
            // Each wrote to its own warehouse only: the other's segment is not there.
            try {
                first.fetchLogSegment(b.metadata, 0);
                throw new AssertionError("the first instance must not see the second's segment");
            } catch (org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException expected) {
                // ok
            }
        } finally {
            Thread.currentThread().setContextClassLoader(previous);
            first.close();
            second.close();
            CalvingRemoteStorageManagerTest.deleteTree(dirA.toPath());
            CalvingRemoteStorageManagerTest.deleteTree(dirB.toPath());
        }
    }
}
