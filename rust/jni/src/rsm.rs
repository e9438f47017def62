//! Entry points of `io.calving.kafka.NativeRsm`: open and close a [`RemoteStorage`], and the
//! RemoteStorageManager operations on it.
//!
//! A segment crosses as four arguments (`NativeRsm`'s javadoc is the reference):
//! `String topic, int partition, long[] segment, long[] leaderEpochs`, where `segment` holds
//! [`SEGMENT_FIELDS`] longs in the order of the `SEGMENT_*` indexes below and `leaderEpochs`
//! holds (epoch, start offset) pairs. Files cross as absolute path strings, never as bytes; the
//! leader-epoch checkpoint (a `ByteBuffer` in Kafka's `LogSegmentData`) as a `byte[]`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use calving_rsm::{IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use jni::objects::{JByteArray, JClass, JLongArray, JObjectArray, JString};
use jni::sys::{jint, jlong};
use jni::{Env, EnvUnowned};

use crate::error::{self, BridgeError};
use crate::fetch_stream::StreamHandle;
use crate::handle::{self, HandleKind};

/// `segment[SEGMENT_TOPIC_ID_HIGH]`: the topic id's most significant 64 bits.
pub const SEGMENT_TOPIC_ID_HIGH: usize = 0;
/// The topic id's least significant 64 bits.
pub const SEGMENT_TOPIC_ID_LOW: usize = 1;
/// The segment id's (`RemoteLogSegmentId.id()`) most significant 64 bits.
pub const SEGMENT_ID_HIGH: usize = 2;
/// The segment id's least significant 64 bits.
pub const SEGMENT_ID_LOW: usize = 3;
/// First offset of the segment (inclusive).
pub const SEGMENT_START_OFFSET: usize = 4;
/// Last offset of the segment (inclusive).
pub const SEGMENT_END_OFFSET: usize = 5;
/// Largest record timestamp, epoch milliseconds.
pub const SEGMENT_MAX_TIMESTAMP_MS: usize = 6;
/// Size of the original `.log` file in bytes.
pub const SEGMENT_SIZE_BYTES: usize = 7;
/// Length of the `segment` array.
pub const SEGMENT_FIELDS: usize = 8;

/// The native state behind a `NativeRsm` handle.
pub(crate) struct RsmHandle {
    storage: Arc<RemoteStorage>,
    /// Fetch streams of this storage not yet closed (for tests and leak checks).
    pub(crate) open_streams: Arc<AtomicI64>,
}

impl HandleKind for RsmHandle {
    const TAG: u64 = 0xCA1F_0001_5253_4D00;
    const NAME: &'static str = "storage";
}

/// Borrows the storage behind a handle.
fn storage<'a>(handle: jlong) -> Result<&'a RsmHandle, BridgeError> {
    // SAFETY: Java's CalvingRemoteStorageManager passes only the handle `open` returned, under a
    // read lock, and `close` (under the write lock) is the only release.
    unsafe { handle::borrow::<RsmHandle>(handle) }
}

fn string(env: &Env<'_>, s: &JString<'_>, name: &'static str) -> Result<String, BridgeError> {
    if s.is_null() {
        return Err(BridgeError::InvalidArgument { name, reason: "null".into() });
    }
    Ok(s.try_to_string(env)?)
}

fn longs(env: &Env<'_>, a: &JLongArray<'_>, name: &'static str) -> Result<Vec<i64>, BridgeError> {
    if a.is_null() {
        return Err(BridgeError::InvalidArgument { name, reason: "null".into() });
    }
    let mut out = vec![0i64; a.len(env)?];
    a.get_region(env, 0, &mut out)?;
    Ok(out)
}

/// The segment's metadata from its JNI form (see the module doc).
fn segment(
    env: &Env<'_>,
    topic: &JString<'_>,
    partition: jint,
    fields: &JLongArray<'_>,
    epochs: &JLongArray<'_>,
) -> Result<SegmentMetadata, BridgeError> {
    let topic = string(env, topic, "topic")?;
    let f = longs(env, fields, "segment")?;
    if f.len() != SEGMENT_FIELDS {
        return Err(BridgeError::InvalidArgument {
            name: "segment",
            reason: format!("{} fields, expected {SEGMENT_FIELDS}", f.len()),
        });
    }
    let size = u64::try_from(f[SEGMENT_SIZE_BYTES])
        .map_err(|_| BridgeError::InvalidArgument { name: "segment size", reason: format!("{} < 0", f[SEGMENT_SIZE_BYTES]) })?;
    let e = longs(env, epochs, "leaderEpochs")?;
    if !e.len().is_multiple_of(2) {
        return Err(BridgeError::InvalidArgument { name: "leaderEpochs", reason: "odd length: expected (epoch, start offset) pairs".into() });
    }
    let mut leader_epochs = BTreeMap::new();
    for pair in e.chunks_exact(2) {
        let epoch = i32::try_from(pair[0])
            .map_err(|_| BridgeError::InvalidArgument { name: "leaderEpochs", reason: format!("epoch {} is not an int", pair[0]) })?;
        leader_epochs.insert(epoch, pair[1]);
    }
    Ok(SegmentMetadata {
        topic,
        topic_id: KafkaUuid::from_bits(f[SEGMENT_TOPIC_ID_HIGH], f[SEGMENT_TOPIC_ID_LOW]),
        partition,
        segment_id: KafkaUuid::from_bits(f[SEGMENT_ID_HIGH], f[SEGMENT_ID_LOW]),
        start_offset: f[SEGMENT_START_OFFSET],
        end_offset: f[SEGMENT_END_OFFSET],
        max_timestamp_ms: f[SEGMENT_MAX_TIMESTAMP_MS],
        segment_size: size,
        leader_epochs,
    })
}

fn position(value: jlong, name: &'static str) -> Result<u64, BridgeError> {
    u64::try_from(value).map_err(|_| BridgeError::InvalidArgument { name, reason: format!("{value} < 0") })
}

/// `static native long open(String[] properties)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_open<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    properties: JObjectArray<'l, JString<'l>>,
) -> jlong {
    error::run(&mut env, "configure", |env| {
        error::install_panic_hook();
        if properties.is_null() {
            return Err(BridgeError::InvalidArgument { name: "properties", reason: "null".into() });
        }
        let n = properties.len(env)?;
        if !n.is_multiple_of(2) {
            return Err(BridgeError::InvalidArgument { name: "properties", reason: "odd length: expected key, value pairs".into() });
        }
        let mut props = HashMap::new();
        for i in (0..n).step_by(2) {
            let k = properties.get_element(env, i)?;
            let v = properties.get_element(env, i + 1)?;
            props.insert(string(env, &k, "property key")?, string(env, &v, "property value")?);
            env.delete_local_ref(k);
            env.delete_local_ref(v);
        }
        let storage = RemoteStorage::open(&props)?;
        tracing::info!(target: "calving_jni::rsm", ?storage, "Calving remote storage opened");
        Ok(handle::into_handle(RsmHandle { storage: Arc::new(storage), open_streams: Arc::default() }))
    })
}

/// `static native void close(long handle)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_close<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, handle: jlong) {
    error::run(&mut env, "close", |_env| {
        // SAFETY: called once, under the write lock that excludes every other use (see `storage`).
        let h = unsafe { handle::release::<RsmHandle>(handle)? };
        let streams = h.open_streams.load(Ordering::SeqCst);
        if streams > 0 {
            tracing::info!(target: "calving_jni::rsm", streams, "closing the remote storage; open fetch streams keep its runtime until they close");
        }
        drop(h);
        Ok(())
    })
}

/// `static native long openStreams(long handle)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_openStreams<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, handle: jlong) -> jlong {
    error::run(&mut env, "openStreams", |_env| Ok(storage(handle)?.open_streams.load(Ordering::SeqCst)))
}

/// `static native String metrics(long handle)`: the plugin's metrics as `Name=value` lines
/// (`RemoteStorage::metrics`; the shim's MBean shows them as JMX attributes).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_metrics<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>, handle: jlong) -> JString<'l> {
    error::run(&mut env, "metrics", |env| {
        let text: String = storage(handle)?.storage.metrics().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        Ok(env.new_string(text)?)
    })
}

/// `static native void copyLogSegmentData(long handle, String topic, int partition, long[] segment,
/// long[] leaderEpochs, String logSegment, String offsetIndex, String timeIndex,
/// String transactionIndex, String producerSnapshot, byte[] leaderEpochCheckpoint)`
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_copyLogSegmentData<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    topic: JString<'l>,
    partition: jint,
    fields: JLongArray<'l>,
    epochs: JLongArray<'l>,
    log_segment: JString<'l>,
    offset_index: JString<'l>,
    time_index: JString<'l>,
    transaction_index: JString<'l>,
    producer_snapshot: JString<'l>,
    leader_epoch_checkpoint: JByteArray<'l>,
) {
    error::run(&mut env, "copyLogSegmentData", |env| {
        let h = storage(handle)?;
        let md = segment(env, &topic, partition, &fields, &epochs)?;
        if leader_epoch_checkpoint.is_null() {
            return Err(BridgeError::InvalidArgument { name: "leaderEpochCheckpoint", reason: "null".into() });
        }
        let files = LogSegmentFiles {
            log: PathBuf::from(string(env, &log_segment, "logSegment")?),
            offset_index: PathBuf::from(string(env, &offset_index, "offsetIndex")?),
            time_index: PathBuf::from(string(env, &time_index, "timeIndex")?),
            txn_index: if transaction_index.is_null() {
                None
            } else {
                Some(PathBuf::from(string(env, &transaction_index, "transactionIndex")?))
            },
            producer_snapshot: PathBuf::from(string(env, &producer_snapshot, "producerSnapshot")?),
            leader_epoch: env.convert_byte_array(&leader_epoch_checkpoint)?,
        };
        let outcome = h.storage.copy_log_segment(&md, &files)?;
        tracing::debug!(target: "calving_jni::rsm", segment = %md, ?outcome, "copied");
        Ok(())
    })
}

/// `static native long fetchLogSegment(long handle, String topic, int partition, long[] segment,
/// long[] leaderEpochs, long startPosition, long endPosition)`
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_fetchLogSegment<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    topic: JString<'l>,
    partition: jint,
    fields: JLongArray<'l>,
    epochs: JLongArray<'l>,
    start_position: jlong,
    end_position: jlong,
) -> jlong {
    error::run(&mut env, "fetchLogSegment", |env| {
        let h = storage(handle)?;
        let md = segment(env, &topic, partition, &fields, &epochs)?;
        let start = position(start_position, "startPosition")?;
        let end = if end_position == -1 { None } else { Some(position(end_position, "endPosition")?) };
        let stream = h.storage.fetch_log_segment(&md, start, end)?;
        Ok(handle::into_handle(StreamHandle::new(stream, h.open_streams.clone())))
    })
}

/// `static native byte[] fetchIndex(long handle, String topic, int partition, long[] segment,
/// long[] leaderEpochs, int indexType)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_fetchIndex<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    topic: JString<'l>,
    partition: jint,
    fields: JLongArray<'l>,
    epochs: JLongArray<'l>,
    index_type: jint,
) -> JByteArray<'l> {
    error::run(&mut env, "fetchIndex", |env| {
        let h = storage(handle)?;
        let md = segment(env, &topic, partition, &fields, &epochs)?;
        let index = IndexType::from_ordinal(index_type).ok_or_else(|| BridgeError::InvalidArgument {
            name: "indexType",
            reason: format!("ordinal {index_type} is not a RemoteStorageManager.IndexType"),
        })?;
        let bytes = h.storage.fetch_index(&md, index)?;
        Ok(env.byte_array_from_slice(&bytes)?)
    })
}

/// `static native void deleteLogSegmentData(long handle, String topic, int partition,
/// long[] segment, long[] leaderEpochs)`
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_deleteLogSegmentData<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    topic: JString<'l>,
    partition: jint,
    fields: JLongArray<'l>,
    epochs: JLongArray<'l>,
) {
    error::run(&mut env, "deleteLogSegmentData", |env| {
        let h = storage(handle)?;
        let md = segment(env, &topic, partition, &fields, &epochs)?;
        h.storage.delete_log_segment(&md)?;
        Ok(())
    })
}

/// `static native void panicForTest(String message)`: panics inside the wrapper, so the shim's
/// tests can prove a panic becomes a `RemoteStorageException` and the JVM carries on.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_calving_kafka_NativeRsm_panicForTest<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    message: JString<'l>,
) {
    error::run(&mut env, "panicForTest", |env| -> Result<(), BridgeError> {
        error::install_panic_hook();
        let message = string(env, &message, "message")?;
        panic!("{message}")
    })
}
