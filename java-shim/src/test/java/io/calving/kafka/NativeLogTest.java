package io.calving.kafka;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.junit.Test;

/**
 * Native log events reach SLF4J (here slf4j-simple writing to the file named by
 * {@code org.slf4j.simpleLogger.logFile}, with {@code io.calving} at debug; see build.gradle),
 * also when emitted by a native thread the JVM does not know.
 */
public class NativeLogTest {

    private static String waitForLog(String needle) throws Exception {
        Path file = Paths.get(System.getProperty("org.slf4j.simpleLogger.logFile", "build/test-native.log"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        String text = "";
        while (System.nanoTime() < deadline) {
            if (Files.exists(file)) {
                text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
                if (text.contains(needle)) {
                    return text;
                }
            }
            Thread.sleep(20);
        }
        throw new AssertionError("no log line with " + needle + " in " + file + ":\n" + text);
    }

    @Test
    public void eventsOfNativeThreadsReachSlf4jWithTheirLevels() throws Exception {
        assertTrue(NativeLoader.isLoaded());
        assertEquals("the level slf4j enables on io.calving", NativeLog.DEBUG, NativeLog.maxLevel());
        String id = UUID.randomUUID().toString();
        NativeLog.emitForTest(NativeLog.INFO, "info " + id);
        NativeLog.emitForTest(NativeLog.DEBUG, "debug " + id);
        NativeLog.emitForTest(NativeLog.TRACE, "trace " + id);
        NativeLog.emitForTest(NativeLog.WARN, "warn " + id);
        String log = waitForLog("WARN io.calving.calving_jni.test - warn " + id);
        assertTrue(log, log.contains("INFO io.calving.calving_jni.test - info " + id + " [calving-test-emitter]"));
        assertTrue(log, log.contains("DEBUG io.calving.calving_jni.test - debug " + id + " | n=42 [calving-test-emitter]"));
        assertFalse("trace is below the enabled level", log.contains("trace " + id));
    }

    @Test
    public void theStoragesOwnEventsReachSlf4j() throws Exception {
        File dir = Fixtures.tempDir("log");
        CalvingRemoteStorageManager rsm = new CalvingRemoteStorageManager();
        try {
            rsm.configure(Fixtures.config(dir.toPath()));
            String log = waitForLog("io.calving.calving_jni.rsm - Calving remote storage opened");
            assertTrue(log, log.contains(dir.toPath().resolve("warehouse").toUri().toString().replaceAll("/$", "")));
        } finally {
            rsm.close();
            CalvingRemoteStorageManagerTest.deleteTree(dir.toPath());
        }
    }
}
