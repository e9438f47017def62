//! Rust `tracing` events to the broker's log (SLF4J), and the entry points of
//! `io.calving.kafka.NativeLog`.
//!
//! ## How an event travels
//! [`JavaLog`] is the library's global `tracing` subscriber. It formats each enabled event
//! (message, then its fields as `key=value`) and pushes it on a bounded in-memory queue; it never
//! calls Java, never blocks on Java, and when the queue is full it drops the event and counts it.
//! A Java daemon thread (`calving-native-log`, started by `NativeLog`) sits in
//! `NativeLog.drain`, which waits for events and hands each to the static Java method
//! `NativeLog.log(int level, String target, String thread, String message)`, which logs it
//! through SLF4J on the logger `io.calving.<target with :: as .>`.
//!
//! Why a queue rather than a call from the emitting thread: events come from the broker's
//! threads (already attached to the JVM) but also from the plugin's tokio workers, which are not;
//! attaching those would make them non-daemon Java threads (jni 0.22 has no daemon attachment)
//! that hold the JVM open and that call into Java from inside async I/O. With the queue, no Rust
//! thread is ever attached, a stuck or slow logger cannot stall a copy or a fetch, and a
//! deadlock is impossible: the queue's lock is never held while Java runs.
//!
//! ## Levels
//! Java passes the most verbose level SLF4J enables on the logger `io.calving` ([`LEVEL_ERROR`]
//! .. [`LEVEL_TRACE`], or [`LEVEL_OFF`]) and refreshes it periodically, so a level changed at run
//! time (e.g. with `kafka-configs --alter --entity-type broker-loggers`) takes effect. Events of
//! Calving's crates (`calving_*` targets) pass up to that level; those of libraries (iceberg,
//! object_store, sqlx, …) up to WARN at most. Disabled events cost one atomic load.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jni::objects::{JClass, JString, JValue};
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_sig, jni_str, Env, EnvUnowned};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::error::{self, BridgeError};

/// Nothing is logged.
pub const LEVEL_OFF: i32 = -1;
/// SLF4J `error`.
pub const LEVEL_ERROR: i32 = 0;
/// SLF4J `warn`.
pub const LEVEL_WARN: i32 = 1;
/// SLF4J `info`.
pub const LEVEL_INFO: i32 = 2;
/// SLF4J `debug`.
pub const LEVEL_DEBUG: i32 = 3;
/// SLF4J `trace`.
pub const LEVEL_TRACE: i32 = 4;

/// Events waiting for the Java thread; beyond this, new events are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;

/// One formatted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub level: i32,
    pub target: String,
    /// The emitting thread's Rust name, or empty (threads created by the JVM have none).
    pub thread: String,
    pub message: String,
}

/// The queue between the subscriber and the Java drain thread.
#[derive(Debug)]
pub struct LogQueue {
    events: Mutex<VecDeque<LogEvent>>,
    ready: Condvar,
    dropped: AtomicU64,
    max_level: AtomicI32,
}

impl Default for LogQueue {
    fn default() -> Self {
        LogQueue::new()
    }
}

impl LogQueue {
    pub const fn new() -> LogQueue {
        LogQueue {
            events: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            max_level: AtomicI32::new(LEVEL_OFF),
        }
    }

    /// Sets the most verbose level that passes for Calving's own targets.
    pub fn set_max_level(&self, level: i32) {
        self.max_level.store(level.clamp(LEVEL_OFF, LEVEL_TRACE), Ordering::Relaxed);
    }

    /// Whether an event of this level and target passes.
    pub fn enabled(&self, level: &Level, target: &str) -> bool {
        let max = self.max_level.load(Ordering::Relaxed);
        let max = if target.starts_with("calving") { max } else { max.min(LEVEL_WARN) };
        level_number(level) <= max
    }

    /// Queues an event, or drops it (counted) if the queue is full. Never blocks for long:
    /// the lock is only ever held to push or pop.
    pub fn push(&self, event: LogEvent) {
        let Ok(mut events) = self.events.lock() else { return };
        if events.len() >= QUEUE_CAPACITY {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back(event);
        drop(events);
        self.ready.notify_one();
    }

    /// Waits up to `timeout` for events and takes up to `max` of them, with the number of events
    /// dropped since the last call.
    pub fn take(&self, max: usize, timeout: Duration) -> (Vec<LogEvent>, u64) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        if let Ok(mut events) = self.events.lock() {
            while events.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                events = match self.ready.wait_timeout(events, deadline - now) {
                    Ok((e, _)) => e,
                    Err(_) => return (out, 0),
                };
            }
            let n = events.len().min(max);
            out.extend(events.drain(..n));
        }
        (out, self.dropped.swap(0, Ordering::Relaxed))
    }
}

fn level_number(level: &Level) -> i32 {
    match *level {
        Level::ERROR => LEVEL_ERROR,
        Level::WARN => LEVEL_WARN,
        Level::INFO => LEVEL_INFO,
        Level::DEBUG => LEVEL_DEBUG,
        Level::TRACE => LEVEL_TRACE,
    }
}

/// The library's one queue.
static QUEUE: LogQueue = LogQueue::new();

/// The `tracing` subscriber that feeds [`LogQueue`]. Spans are not recorded (events carry their
/// facts as fields).
#[derive(Debug)]
pub struct JavaLog {
    queue: &'static LogQueue,
}

impl JavaLog {
    pub fn new(queue: &'static LogQueue) -> JavaLog {
        JavaLog { queue }
    }
}

/// Formats an event's fields: the message first, then `key=value` for the rest.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Formats an event as it will be logged.
pub fn format_event(event: &Event<'_>) -> LogEvent {
    let mut m = Message::default();
    event.record(&mut m);
    let meta = event.metadata();
    let mut message = m.message;
    if !m.fields.is_empty() {
        if message.is_empty() {
            message.push_str(m.fields.trim_start());
        } else {
            message.push_str(" |");
            message.push_str(&m.fields);
        }
    }
    LogEvent {
        level: level_number(meta.level()),
        target: meta.target().to_string(),
        thread: std::thread::current().name().unwrap_or_default().to_string(),
        message,
    }
}

impl Subscriber for JavaLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_event() {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event() && self.queue.enabled(meta.level(), meta.target())
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        // Formatting runs user Debug impls: keep a panic there from reaching the caller.
        if let Ok(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format_event(event))) {
            self.queue.push(e);
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Makes [`JavaLog`] the global subscriber (once). False if another one was set first.
fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(JavaLog::new(&QUEUE)).is_ok())
}

/// `static native boolean install(int maxLevel)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeLog_install<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, max_level: jint) -> jboolean {
    error::run(&mut env, "NativeLog.install", |_env| {
        QUEUE.set_max_level(max_level);
        let installed = install();
        error::install_panic_hook();
        Ok(installed)
    })
}

/// `static native void setMaxLevel(int maxLevel)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeLog_setMaxLevel<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, max_level: jint) {
    error::run(&mut env, "NativeLog.setMaxLevel", |_env| {
        QUEUE.set_max_level(max_level);
        Ok(())
    })
}

fn deliver(env: &mut Env<'_>, class: &JClass<'_>, e: &LogEvent) -> Result<(), BridgeError> {
    let target = JString::from_str(env, &e.target)?;
    let thread = JString::from_str(env, &e.thread)?;
    let message = JString::from_str(env, &e.message)?;
    env.call_static_method(
        class,
        jni_str!("log"),
        jni_sig!("(ILjava/lang/String;Ljava/lang/String;Ljava/lang/String;)V"),
        &[JValue::Int(e.level), JValue::Object(&target), JValue::Object(&thread), JValue::Object(&message)],
    )?;
    env.delete_local_ref(target);
    env.delete_local_ref(thread);
    env.delete_local_ref(message);
    Ok(())
}

/// `static native int drain(int maxEvents, long timeoutMillis)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeLog_drain<'l>(
    mut env: EnvUnowned<'l>,
    class: JClass<'l>,
    max_events: jint,
    timeout_millis: jlong,
) -> jint {
    error::run(&mut env, "NativeLog.drain", |env| {
        let timeout = Duration::from_millis(timeout_millis.max(0) as u64);
        let (events, dropped) = QUEUE.take(max_events.max(1) as usize, timeout);
        if dropped > 0 {
            let e = LogEvent {
                level: LEVEL_WARN,
                target: "calving_jni::log".into(),
                thread: String::new(),
                message: format!("{dropped} log events were dropped (more than {QUEUE_CAPACITY} waiting for the log thread)"),
            };
            deliver(env, &class, &e)?;
        }
        for e in &events {
            deliver(env, &class, e)?;
        }
        Ok(events.len() as jint)
    })
}

/// `static native void emitForTest(int level, String message)`: emits an event from a new
/// native thread that is not attached to the JVM (as a tokio worker's would be), for the shim's
/// tests.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeLog_emitForTest<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    level: jint,
    message: JString<'l>,
) {
    error::run(&mut env, "NativeLog.emitForTest", |env| {
        let message = message.try_to_string(env)?;
        let t = std::thread::Builder::new().name("calving-test-emitter".into()).spawn(move || match level {
            LEVEL_ERROR => tracing::error!(target: "calving_jni::test", "{message}"),
            LEVEL_WARN => tracing::warn!(target: "calving_jni::test", "{message}"),
            LEVEL_INFO => tracing::info!(target: "calving_jni::test", "{message}"),
            LEVEL_DEBUG => tracing::debug!(target: "calving_jni::test", n = 42, "{message}"),
            _ => tracing::trace!(target: "calving_jni::test", "{message}"),
        });
        t.map_err(|e| BridgeError::InvalidArgument { name: "thread", reason: e.to_string() })?
            .join()
            .map_err(|_| BridgeError::InvalidArgument { name: "thread", reason: "the emitter panicked".into() })?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST_QUEUE: LogQueue = LogQueue::new();

    #[test]
    fn events_are_formatted_filtered_and_bounded() {
        let q = &TEST_QUEUE;
        q.set_max_level(LEVEL_INFO);
        assert!(q.enabled(&Level::INFO, "calving_rsm::copy"));
        assert!(!q.enabled(&Level::DEBUG, "calving_rsm::copy"));
        // Libraries: WARN at most, whatever Calving's level.
        assert!(!q.enabled(&Level::INFO, "iceberg::spec"));
        assert!(q.enabled(&Level::WARN, "object_store::client"));
        q.set_max_level(LEVEL_OFF);
        assert!(!q.enabled(&Level::ERROR, "calving_rsm"));
        q.set_max_level(LEVEL_TRACE);

        let dispatch = tracing::Dispatch::new(JavaLog::new(q));
        tracing::dispatcher::with_default(&dispatch, || {
            let segment = "segment X of t-0";
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _d = tracing::dispatcher::set_default(&dispatch);
                    tracing::info!(target: "calving_rsm::copy", %segment, n = 3, "copied {} rows", 10);
                });
            });
            tracing::debug!(target: "calving_table", "no fields");
            tracing::info_span!("ignored").in_scope(|| tracing::warn!(target: "calving_x", only = "fields"));
        });
        let (events, dropped) = q.take(10, Duration::ZERO);
        assert_eq!(dropped, 0);
        assert_eq!(
            events,
            vec![
                LogEvent {
                    level: LEVEL_INFO,
                    target: "calving_rsm::copy".into(),
                    thread: String::new(),
                    message: "copied 10 rows | segment=segment X of t-0 n=3".into(),
                },
                LogEvent {
                    level: LEVEL_DEBUG,
                    target: "calving_table".into(),
                    thread: std::thread::current().name().unwrap_or_default().into(),
                    message: "no fields".into(),
                },
                LogEvent { level: LEVEL_WARN, target: "calving_x".into(), thread: events[2].thread.clone(), message: "only=fields".into() },
            ]
        );

        // Bounded: beyond the capacity events are dropped and counted, never blocking.
        for i in 0..QUEUE_CAPACITY + 5 {
            q.push(LogEvent { level: 0, target: "t".into(), thread: String::new(), message: i.to_string() });
        }
        let (events, dropped) = q.take(usize::MAX, Duration::ZERO);
        assert_eq!((events.len(), dropped), (QUEUE_CAPACITY, 5));
        // An empty queue waits for at most the timeout.
        let started = Instant::now();
        assert!(q.take(1, Duration::from_millis(50)).0.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
