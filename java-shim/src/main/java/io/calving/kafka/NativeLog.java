package io.calving.kafka;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Brings the native library's log events ({@code tracing} in Rust, {@code rust/jni/src/log.rs})
 * to the broker's log through SLF4J, which the broker provides (it is not bundled).
 *
 * <p>Native code queues its events; the daemon thread {@code calving-native-log} drains the queue
 * ({@link #drain}) and logs each event on the logger {@code io.calving.<target>}, where the
 * target is the Rust module with {@code ::} replaced by {@code .} (for example
 * {@code io.calving.calving_rsm.copy}). So operators set the level of {@code io.calving} (or of
 * one module) in the broker's log4j configuration; the native side is told the most verbose
 * level enabled on {@code io.calving} and re-reads it every {@value #LEVEL_REFRESH_MS} ms. Events
 * of third-party Rust libraries are passed at WARN and above only.
 *
 * <p>Native threads never call Java: if this thread is slow or stopped, native code drops events
 * (and says how many) rather than wait.
 */
final class NativeLog {

    /** Level numbers shared with native code. */
    static final int OFF = -1;
    static final int ERROR = 0;
    static final int WARN = 1;
    static final int INFO = 2;
    static final int DEBUG = 3;
    static final int TRACE = 4;

    static final String ROOT = "io.calving";
    static final long LEVEL_REFRESH_MS = 10_000;

    private static final ConcurrentMap<String, Logger> LOGGERS = new ConcurrentHashMap<>();
    private static boolean started;

    private NativeLog() {
    }

    /** Installs the native log bridge and starts the drain thread (once per class loader). */
    static synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        try {
            install(maxLevel());
        } catch (Throwable t) {
            LoggerFactory.getLogger(ROOT).warn("Calving: native log events will not reach this log", t);
            return;
        }
        Thread t = new Thread(NativeLog::drainLoop, "calving-native-log");
        t.setDaemon(true);
        t.start();
    }

    /** The most verbose level SLF4J enables on {@value #ROOT}. */
    static int maxLevel() {
        Logger l = LoggerFactory.getLogger(ROOT);
        if (l.isTraceEnabled()) {
            return TRACE;
        } else if (l.isDebugEnabled()) {
            return DEBUG;
        } else if (l.isInfoEnabled()) {
            return INFO;
        } else if (l.isWarnEnabled()) {
            return WARN;
        } else if (l.isErrorEnabled()) {
            return ERROR;
        }
        return OFF;
    }

    private static void drainLoop() {
        long nextRefresh = System.currentTimeMillis() + LEVEL_REFRESH_MS;
        while (true) {
            try {
                drain(1024, 1000);
                long now = System.currentTimeMillis();
                if (now >= nextRefresh) {
                    setMaxLevel(maxLevel());
                    nextRefresh = now + LEVEL_REFRESH_MS;
                }
            } catch (Throwable t) {
                // Never let the thread die; back off a little.
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /**
     * Called by native code (from {@link #drain}, on the drain thread) for each event. Never
     * throws.
     *
     * @param level {@link #ERROR} .. {@link #TRACE}
     * @param target the Rust module that emitted it (e.g. {@code calving_rsm::copy})
     * @param thread the emitting native thread's name, or empty
     * @param message the formatted event: message, then {@code key=value} fields
     */
    static void log(int level, String target, String thread, String message) {
        try {
            Logger logger = LOGGERS.computeIfAbsent(target, t -> LoggerFactory.getLogger(ROOT + "." + t.replace("::", ".")));
            String text = thread.isEmpty() ? message : message + " [" + thread + "]";
            switch (level) {
                case ERROR:
                    logger.error(text);
                    break;
                case WARN:
                    logger.warn(text);
                    break;
                case INFO:
                    logger.info(text);
                    break;
                case DEBUG:
                    logger.debug(text);
                    break;
                default:
                    logger.trace(text);
                    break;
            }
        } catch (Throwable t) {
            // A broken logger must not break the drain thread.
        }
    }

    /**
     * Makes the native log bridge the library's log sink.
     *
     * @param maxLevel the most verbose level passed for Calving's own events ({@link #OFF} .. {@link #TRACE})
     * @return false if another sink was installed first (then events do not come here)
     */
    static native boolean install(int maxLevel);

    /** @param maxLevel the most verbose level passed from now on ({@link #OFF} .. {@link #TRACE}) */
    static native void setMaxLevel(int maxLevel);

    /**
     * Waits up to {@code timeoutMillis} for native events and calls {@link #log} for each (and
     * once more if events were dropped because the queue was full).
     *
     * @param maxEvents most events handled in this call
     * @param timeoutMillis how long to wait for the first event, in milliseconds
     * @return the number of events handled
     */
    static native int drain(int maxEvents, long timeoutMillis);

    /**
     * Emits one event from a new native thread that is not attached to the JVM, as the plugin's
     * I/O threads do; for tests.
     *
     * @param level {@link #ERROR} .. {@link #TRACE}
     * @param message the event's message
     */
    static native void emitForTest(int level, String message);
}
