package io.calving.kafka;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

import org.apache.kafka.server.log.remote.storage.RemoteStorageException;

/**
 * Loads Calving's native library ({@code libcalving.so}, built from {@code rust/jni}) from this
 * jar, once per class loader.
 *
 * <p><b>One copy per class loader.</b> A JVM binds a native library file to the first class loader
 * that loads it; the same file loaded by a second class loader fails with
 * {@code UnsatisfiedLinkError: ... already loaded in another classloader}. A broker loads the
 * plugin through its own {@code ChildFirstClassLoader} when
 * {@code remote.log.storage.manager.class.path} is set, and a JVM may host several such loaders
 * (tests, tools, two plugin instances). So each class loader that loads this class extracts the
 * library resource {@value #RESOURCE} to its own, uniquely named temporary file
 * ({@code libcalving-<pid>-<random>.so}) and {@code System.load}s that file, once, in this class's
 * static initialiser. Each copy has its own native state (runtime, log queue), so loaders share
 * nothing. The file stays while the JVM runs (a panic's backtrace and native profilers such as
 * async-profiler read the library's symbols from it) and is deleted when the JVM exits; copies left
 * by a JVM that did not exit cleanly (their pid is no longer running) are deleted by the next load.
 *
 * <p>The library is unloaded only if its class loader is garbage-collected; a broker keeps its
 * plugin loader for its whole life.
 *
 * <p><b>Never fails class initialisation.</b> A failure (unsupported platform, resource missing,
 * no writable temporary directory, link error) is saved and rethrown by {@link #ensureLoaded()},
 * which the plugin calls from {@code configure}, so the broker reports a clear error instead of a
 * {@code NoClassDefFoundError}.
 *
 * <p>System properties: {@code calving.native.tmpdir} (where to extract; default
 * {@code java.io.tmpdir}), {@code calving.native.library} (load this file instead of the jar's
 * resource: for development only, as it cannot be shared by two class loaders).
 */
final class NativeLoader {

    /** The library inside the jar. */
    static final String RESOURCE = "/io/calving/native/linux/x86_64/libcalving.so";

    private static final String PREFIX = "libcalving-";
    private static final String SUFFIX = ".so";

    /** Null once loaded; the cause otherwise. */
    private static final Throwable FAILURE;

    static {
        Throwable failure = null;
        try {
            load();
        } catch (Throwable t) {
            failure = t;
        }
        FAILURE = failure;
        if (failure == null) {
            NativeLog.start();
        }
    }

    private NativeLoader() {
    }

    /** Throws the saved load failure, if any. */
    static void ensureLoaded() throws RemoteStorageException {
        if (FAILURE != null) {
            throw new RemoteStorageException("Calving's native library could not be loaded ("
                    + System.getProperty("os.name") + "/" + System.getProperty("os.arch") + "): " + FAILURE, FAILURE);
        }
    }

    /** Whether the library is loaded in this class loader. */
    static boolean isLoaded() {
        return FAILURE == null;
    }

    private static void load() throws IOException {
        String override = System.getProperty("calving.native.library");
        if (override != null && !override.isEmpty()) {
            System.load(Paths.get(override).toAbsolutePath().toString());
            return;
        }
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new UnsupportedOperationException("this Calving jar has a native library for linux/x86_64 only");
        }
        Path dir = Paths.get(System.getProperty("calving.native.tmpdir", System.getProperty("java.io.tmpdir")));
        Files.createDirectories(dir);
        deleteStaleCopies(dir);
        String pid = Long.toString(ProcessHandle.current().pid());
        Path copy = Files.createTempFile(dir, PREFIX + pid + "-", SUFFIX);
        copy.toFile().deleteOnExit();
        try (InputStream in = NativeLoader.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IOException("resource " + RESOURCE + " is missing from the jar");
            }
            Files.copy(in, copy, StandardCopyOption.REPLACE_EXISTING);
        }
        try {
            System.load(copy.toAbsolutePath().toString());
        } catch (Throwable t) {
            Files.deleteIfExists(copy);
            throw t;
        }
    }

    /** Deletes copies extracted by JVMs that are no longer running. */
    private static void deleteStaleCopies(Path dir) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, PREFIX + "*" + SUFFIX)) {
            for (Path f : files) {
                String name = f.getFileName().toString();
                int dash = name.indexOf('-', PREFIX.length());
                if (dash < 0) {
                    continue;
                }
                try {
                    long pid = Long.parseLong(name.substring(PREFIX.length(), dash));
                    if (!ProcessHandle.of(pid).isPresent()) {
                        Files.deleteIfExists(f);
                    }
                } catch (NumberFormatException | IOException | SecurityException e) {
                    // Not ours, or not deletable: leave it.
                }
            }
        } catch (IOException | SecurityException e) {
            // Best effort only.
        }
    }
}
