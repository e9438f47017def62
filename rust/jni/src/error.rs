//! The one wrapper every entry point runs its body through, and the errors it turns into Java
//! exceptions.
//!
//! [`run`] calls the body inside jni's `EnvUnowned::with_env` (which catches panics) and
//! resolves the outcome with [`ThrowKafkaException`]: a value goes back to Java; an error or a
//! panic becomes a pending Java exception and the native method returns a placeholder (0, null)
//! that Java never reads, because the exception is thrown as soon as the native method returns.
//!
//! The Java class is chosen by the error's *kind*, never by its text ([`ExceptionKind`]):
//! [`RsmError::is_not_found`] is Kafka's `RemoteResourceNotFoundException` (the broker treats a
//! missing transaction index as "no aborted transactions", a missing segment as deleted);
//! [`RsmError::is_retriable`] (a catalog or object store unreachable, a commit that kept meeting
//! other writers' commits, an unknown commit outcome) is `RetriableRemoteStorageException` where
//! the broker has it (Kafka 4.2+, looked up at run time, so older brokers never meet the class;
//! from 4.3 a retriable copy failure keeps the segment, is logged at INFO and counts no failed
//! copy) and `RemoteStorageException` on older brokers; everything else is
//! `RemoteStorageException`. Retriable errors also say so in the message. The message is `<operation>: <error>` followed by
//! each cause the error's own text does not already contain, so an operator reads what failed,
//! for which segment, and why.
//!
//! A panic is a bug in Calving: it becomes a `RemoteStorageException` naming the operation, the
//! panic message and where it happened (the panic hook installed by [`install_panic_hook`] also
//! logs it with a backtrace), and the broker carries on.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use calving_rsm::RsmError;
use jni::errors::ErrorPolicy;
use jni::strings::JNIString;
use jni::{jni_str, Env, EnvUnowned};

/// Why a native call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The storage operation failed (its message names the segment).
    #[error(transparent)]
    Rsm(#[from] RsmError),
    /// Java passed an argument the native side cannot use (a bug in the shim, or a broker
    /// passing something out of contract, such as a negative position).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    /// A handle that is 0 or not of the expected kind.
    #[error("invalid {kind} handle {handle:#x} (closed, or not a {kind})")]
    InvalidHandle { kind: &'static str, handle: i64 },
    /// A fetch stream that failed or panicked earlier is not read again.
    #[error("the fetch stream failed earlier and cannot be read further")]
    StreamBroken,
    /// A JNI call failed (a Java exception may be pending; it is then thrown unchanged).
    #[error("JNI: {0}")]
    Jni(#[from] jni::errors::Error),
}

/// Which Java exception an error becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionKind {
    /// `org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException`
    NotFound,
    /// `org.apache.kafka.server.log.remote.storage.RemoteStorageException`
    Storage,
    /// `org.apache.kafka.server.log.remote.storage.RetriableRemoteStorageException` (Kafka 4.2+;
    /// [`ExceptionKind::Storage`] where the broker lacks it)
    Retriable,
}

impl ExceptionKind {
    /// The class's JNI name.
    pub fn class_name(self) -> &'static str {
        match self {
            ExceptionKind::NotFound => "org/apache/kafka/server/log/remote/storage/RemoteResourceNotFoundException",
            ExceptionKind::Storage => "org/apache/kafka/server/log/remote/storage/RemoteStorageException",
            ExceptionKind::Retriable => "org/apache/kafka/server/log/remote/storage/RetriableRemoteStorageException",
        }
    }

    /// What to throw instead when the broker lacks this class.
    fn fallback(self) -> Option<ExceptionKind> {
        match self {
            ExceptionKind::Retriable => Some(ExceptionKind::Storage),
            ExceptionKind::NotFound | ExceptionKind::Storage => None,
        }
    }
}

impl BridgeError {
    /// The Java exception this error becomes.
    pub fn kind(&self) -> ExceptionKind {
        match self {
            BridgeError::Rsm(e) if e.is_not_found() => ExceptionKind::NotFound,
            BridgeError::Rsm(e) if e.is_retriable() => ExceptionKind::Retriable,
            _ => ExceptionKind::Storage,
        }
    }

    /// Whether retrying the same call later can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, BridgeError::Rsm(e) if e.is_retriable())
    }
}

/// The exception message for an error of `operation`: the error, then every cause whose text
/// the message does not already hold, then whether a retry can succeed.
pub fn message(operation: &str, error: &BridgeError) -> String {
    let mut out = format!("{operation}: {error}");
    append_causes(&mut out, std::error::Error::source(error));
    if error.is_retriable() {
        out.push_str(" (transient: a retry can succeed)");
    }
    out
}

/// Appends `: <cause>` for each cause in the chain whose text `out` does not already hold.
fn append_causes(out: &mut String, mut cause: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

thread_local! {
    /// Where the last panic on this thread happened, set by the panic hook, read by the wrapper.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per library copy) a panic hook that logs the panic with its backtrace
/// through `tracing` (so it reaches the broker's log) instead of printing to stderr, and
/// remembers where it happened for the exception message.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let _ = PANIC_LOCATION.try_with(|l| l.try_borrow_mut().map(|mut l| *l = Some(location.clone())));
            let backtrace = std::backtrace::Backtrace::force_capture();
            tracing::error!(
                target: "calving_jni::panic",
                "panic at {location}: {} (a bug in Calving; the call fails with RemoteStorageException)\n{backtrace}",
                panic_message(info.payload())
            );
        }));
    });
}

/// Runs an entry point's body: its value goes back to Java; an error or a panic becomes a
/// pending Java exception (see the module doc) and the placeholder `T::default()` is returned.
pub fn run<'local, T, F>(env: &mut EnvUnowned<'local>, operation: &'static str, body: F) -> T
where
    T: Default,
    F: FnOnce(&mut Env<'local>) -> Result<T, BridgeError>,
{
    env.with_env(body).resolve_with::<ThrowKafkaException, _>(|| operation)
}

/// The error policy of [`run`]: errors and panics become Kafka's exceptions.
#[derive(Debug)]
pub struct ThrowKafkaException;

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowKafkaException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = &'static str;

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        operation: &mut &'static str,
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        // A Java exception already pending (thrown by a JNI call, e.g. an out-of-bounds array
        // region or an OutOfMemoryError) is the better report: leave it to propagate.
        if !env.exception_check() {
            throw(env, err.kind(), &message(operation, &err))?;
        }
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        operation: &mut &'static str,
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let location = PANIC_LOCATION.try_with(|l| l.borrow_mut().take()).ok().flatten();
        let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
        let msg = format!(
            "{operation}: internal error in Calving's native library (please report it): panic{at}: {}",
            panic_message(payload.as_ref())
        );
        env.exception_clear();
        throw(env, ExceptionKind::Storage, &msg)?;
        Ok(T::default())
    }

    fn on_internal_jni_error<'unowned_env_local: 'native_method, 'native_method>(
        operation: &mut &'static str,
        err: jni::errors::Error,
    ) -> T {
        tracing::error!(target: "calving_jni::error", "{operation}: could not throw the Java exception: {err}");
        T::default()
    }

    fn on_internal_panic<'unowned_env_local: 'native_method, 'native_method>(
        operation: &mut &'static str,
        payload: Box<dyn Any + Send + 'static>,
    ) -> T {
        tracing::error!(
            target: "calving_jni::error",
            "{operation}: panic while throwing the Java exception: {}",
            panic_message(payload.as_ref())
        );
        T::default()
    }
}

/// Throws a new exception of `kind` with `msg`. The class is looked up with JNI `FindClass`,
/// which inside a native method uses the class loader of the method's class: the plugin's
/// loader, which delegates Kafka's classes to the broker's. A class the broker lacks falls back
/// to its [`ExceptionKind::fallback`] (a `RetriableRemoteStorageException` before Kafka 4.2 is a
/// `RemoteStorageException`), and to `java.lang.IllegalStateException` if Kafka's classes cannot
/// be found at all.
fn throw(env: &mut Env<'_>, kind: ExceptionKind, msg: &str) -> jni::errors::Result<()> {
    let mut candidate = Some(kind);
    let class = loop {
        let Some(k) = candidate else {
            break env.find_class(jni_str!("java/lang/IllegalStateException"))?;
        };
        match env.find_class(JNIString::new(k.class_name())) {
            Ok(c) => break c,
            Err(_) => {
                env.exception_clear();
                candidate = k.fallback();
            }
        }
    };
    match env.throw_new(&class, JNIString::new(msg)) {
        // throw_new reports the exception it just threw as `JavaException`: that is success.
        Ok(()) | Err(jni::errors::Error::JavaException) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> BridgeError {
        BridgeError::Rsm(RsmError::NotFound {
            segment: "segment AAAAAAAAAAAAAAAAAAAAAQ of orders-3 (topic id AAAAAAAAAAAAAAAAAAAAAg, offsets 0..=9)".into(),
            what: "transaction index (the segment has no aborted transactions)".into(),
        })
    }

    #[test]
    fn kinds_follow_the_rsm_error_kind_not_its_text() {
        assert_eq!(not_found().kind(), ExceptionKind::NotFound);
        let config = BridgeError::Rsm(RsmError::InvalidConfig { key: "warehouse".into(), reason: "not found".into() });
        // "not found" in the text does not make it a RemoteResourceNotFoundException.
        assert_eq!(config.kind(), ExceptionKind::Storage);
        let position = BridgeError::Rsm(RsmError::BadPosition { segment: "s".into(), position: 9, size: 3 });
        assert_eq!(position.kind(), ExceptionKind::Storage);
        assert_eq!(BridgeError::StreamBroken.kind(), ExceptionKind::Storage);
        assert_eq!(BridgeError::InvalidHandle { kind: "stream", handle: 0 }.kind(), ExceptionKind::Storage);
        assert!(ExceptionKind::NotFound.class_name().ends_with("/RemoteResourceNotFoundException"));
        assert!(ExceptionKind::Storage.class_name().ends_with("/RemoteStorageException"));
    }

    #[test]
    fn transient_failures_are_retriable_exceptions_falling_back_to_remote_storage_exceptions() {
        let unknown = BridgeError::Rsm(RsmError::Table {
            segment: "segment s of t-0".into(),
            source: Box::new(calving_table::Error::CommitStateUnknown {
                table: "kafka.t".into(),
                what: "snapshot 7".into(),
                source: Box::new(iceberg::Error::new(iceberg::ErrorKind::Unexpected, "timed out")),
            }),
        });
        assert_eq!(unknown.kind(), ExceptionKind::Retriable);
        assert!(message("copyLogSegmentData", &unknown).ends_with("(transient: a retry can succeed)"));
        assert!(ExceptionKind::Retriable.class_name().ends_with("/RetriableRemoteStorageException"));
        assert_eq!(ExceptionKind::Retriable.fallback(), Some(ExceptionKind::Storage));
        assert_eq!(ExceptionKind::Storage.fallback(), None);
        let config = BridgeError::Rsm(RsmError::InvalidConfig { key: "warehouse".into(), reason: "missing".into() });
        assert_eq!(config.kind(), ExceptionKind::Storage, "a configuration error is not transient");
    }

    #[test]
    fn message_names_operation_segment_and_reason() {
        let m = message("fetchIndex(TRANSACTION)", &not_found());
        assert_eq!(
            m,
            "fetchIndex(TRANSACTION): segment AAAAAAAAAAAAAAAAAAAAAQ of orders-3 (topic id AAAAAAAAAAAAAAAAAAAAAg, \
             offsets 0..=9): transaction index (the segment has no aborted transactions) not found"
        );
    }

    #[test]
    fn message_appends_causes_the_text_does_not_hold() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] Middle);
        #[derive(Debug, thiserror::Error)]
        #[error("middle")]
        struct Middle(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner reason")]
        struct Inner;
        let e = Outer(Middle(Inner));
        let mut out = format!("op: {e}");
        append_causes(&mut out, std::error::Error::source(&e));
        // "middle" is already in the text; "inner reason" is not.
        assert_eq!(out, "op: outer: middle: inner reason");
        let e = BridgeError::InvalidArgument { name: "x", reason: "bad".into() };
        assert_eq!(message("op", &e), "op: invalid argument x: bad");
        let j = BridgeError::Jni(jni::errors::Error::JavaException);
        assert_eq!(message("op", &j), "op: JNI: Java exception was thrown");
    }

    #[test]
    fn panic_payloads_give_their_message() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "boom 7");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "(no message)");
    }
}
