//! # calving-jni: the native library behind the Java shim
//!
//! `libcalving.so`, loaded by `io.calving.kafka.NativeLoader` inside a Kafka broker, exposes
//! [`calving_rsm::RemoteStorage`] to the shim's Java classes over JNI. This is the only crate of
//! the workspace with `unsafe`: the module `handle` (native state crossing JNI as a tagged `jlong`)
//! holds it, and the entry points' calls to its `borrow`/`release` each say, in a `SAFETY`
//! comment, which Java-side rule makes them sound.
//!
//! One file of entry points per Java class that declares natives (DataFusion Comet's layout):
//!
//! | Rust | Java class | what |
//! |---|---|---|
//! | [`rsm`] | `io.calving.kafka.NativeRsm` | open/close the storage, copy, open a fetch, fetch an index, delete |
//! | [`fetch_stream`] | `io.calving.kafka.NativeInputStream` | read the served bytes of a fetch, close it |
//! | [`log`] | `io.calving.kafka.NativeLog` | Rust `tracing` events to the broker's SLF4J loggers |
//!
//! ## Rules at the boundary (DESIGN.md invariant 6: never take the broker down)
//! - Every entry point runs its body through [`error::run`], which catches panics and errors
//!   and turns them into the Kafka exception of their kind (`RemoteResourceNotFoundException`
//!   for what does not exist, `RemoteStorageException` otherwise), with the error's message
//!   (what, which segment, why). Nothing unwinds into the JVM; `panic = "unwind"` in the
//!   release profile is what makes the panics catchable.
//! - Java owns every handle's lifetime: `open` returns a `jlong` made by `Box::into_raw`, and the
//!   matching `close` takes it back. The Java side never passes a handle after closing it (a
//!   read-write lock in `CalvingRemoteStorageManager`, a monitor in `NativeInputStream`), and a
//!   fetch stream holds its own reference to the storage, so it stays valid after the storage
//!   is closed.
//! - No Rust thread calls into Java: log events are queued and a Java daemon thread drains them
//!   (see [`log`]), so tokio workers are never attached to the JVM.
//!
//! ## One library per class loader
//! A JVM binds a native library to one class loader. `NativeLoader` extracts a private copy of
//! the library for each class loader that loads the shim, so each copy has its own statics here
//! (log queue, panic hook), and two plugin instances loaded through different class loaders
//! share nothing.

pub mod error;
pub mod fetch_stream;
mod handle;
pub mod log;
pub mod rsm;

pub use error::BridgeError;
