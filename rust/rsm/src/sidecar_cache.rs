//! The parsed sidecars a broker keeps in memory, bounded by count and by bytes.
//!
//! Every fetch of a segment needs its sidecar (batch facts, served positions, the indexes), and
//! a consumer reading a segment from the start fetches it many times in a row, so parsed
//! sidecars are kept. Their sizes differ by orders of magnitude: a segment of large records has
//! a few hundred batch entries, one of tiny `LogAppendTime` records or with verbatim batches can
//! carry megabytes. A bound by count alone leaves the broker's native memory to the data, so the
//! cache holds at most `sidecar.cache.entries` sidecars *and* `sidecar.cache.bytes` of them
//! ([`Sidecar::memory_size`]), evicting the least recently used; a sidecar larger than the byte
//! bound is used and not kept. Fetch streams hold their own reference, so eviction never
//! disturbs a read in progress.
//!
//! Beside each sidecar the cache keeps what the segment's streams learned of it: how many served
//! bytes its batches come to per byte of their estimate (`calving_layout::served::served_estimate`,
//! the original size of a batch re-compressed as lz4). The next stream over the segment sizes
//! its first step with it (`fetch`), instead of over- or undershooting a fetch by the codec's
//! ratio to lz4.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use calving_layout::sidecar::{DataFileRef, Sidecar};

use crate::metadata::KafkaUuid;

struct Entry {
    sidecar: Arc<Sidecar>,
    bytes: usize,
    used: u64,
    /// Served bytes per estimated byte, as the segment's last stream measured them.
    served_per_estimate: Option<f64>,
}

#[derive(Default)]
struct State {
    entries: HashMap<KafkaUuid, Entry>,
    bytes: usize,
    clock: u64,
}

/// Parsed sidecars by segment id, least recently used evicted first.
pub(crate) struct SidecarCache {
    max_entries: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

impl SidecarCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> SidecarCache {
        SidecarCache { max_entries, max_bytes, state: Mutex::default() }
    }

    pub(crate) fn get(&self, segment_id: &KafkaUuid) -> Option<Arc<Sidecar>> {
        let mut state = self.state.lock().expect("sidecar cache");
        state.clock += 1;
        let now = state.clock;
        state.entries.get_mut(segment_id).map(|e| {
            e.used = now;
            Arc::clone(&e.sidecar)
        })
    }

    /// Keeps `sidecar` if it fits, evicting the least recently used ones to make room.
    pub(crate) fn insert(&self, segment_id: KafkaUuid, sidecar: Arc<Sidecar>) {
        self.insert_learned(segment_id, sidecar, None)
    }

    /// [`SidecarCache::insert`], with what streams learned of the segment's batches already.
    fn insert_learned(&self, segment_id: KafkaUuid, sidecar: Arc<Sidecar>, served_per_estimate: Option<f64>) {
        let bytes = sidecar.memory_size();
        let mut state = self.state.lock().expect("sidecar cache");
        if let Some(old) = state.entries.remove(&segment_id) {
            state.bytes -= old.bytes;
        }
        if bytes > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while state.entries.len() >= self.max_entries || state.bytes + bytes > self.max_bytes {
            let Some((&oldest, _)) = state.entries.iter().min_by_key(|(_, e)| e.used) else { break };
            let gone = state.entries.remove(&oldest).expect("present");
            state.bytes -= gone.bytes;
        }
        state.clock += 1;
        let used = state.clock;
        state.bytes += bytes;
        state.entries.insert(segment_id, Entry { sidecar, bytes, used, served_per_estimate });
    }

    /// Served bytes per estimated byte of the segment's batches, if a stream measured them.
    pub(crate) fn served_per_estimate(&self, segment_id: &KafkaUuid) -> Option<f64> {
        self.state.lock().expect("sidecar cache").entries.get(segment_id).and_then(|e| e.served_per_estimate)
    }

    /// Records what a stream measured of the segment (kept while its sidecar is).
    pub(crate) fn learn_served_per_estimate(&self, segment_id: &KafkaUuid, ratio: f64) {
        if let Some(e) = self.state.lock().expect("sidecar cache").entries.get_mut(segment_id) {
            e.served_per_estimate = Some(ratio);
        }
    }

    /// Points a cached sidecar at the files its rows are in now (after compaction). What streams
    /// learned of its batches stays: the rows and batches are the same, only their files moved.
    pub(crate) fn repoint(&self, segment_id: KafkaUuid, files: Vec<DataFileRef>) {
        let cached = self
            .state
            .lock()
            .expect("sidecar cache")
            .entries
            .get(&segment_id)
            .map(|e| (Arc::clone(&e.sidecar), e.served_per_estimate));
        if let Some((cached, learned)) = cached {
            let mut moved = Sidecar::clone(&cached);
            moved.files = files;
            self.insert_learned(segment_id, Arc::new(moved), learned);
        }
    }

    pub(crate) fn remove(&self, segment_id: &KafkaUuid) {
        let mut state = self.state.lock().expect("sidecar cache");
        if let Some(old) = state.entries.remove(segment_id) {
            state.bytes -= old.bytes;
        }
    }

    /// (sidecars, bytes) held now.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let state = self.state.lock().expect("sidecar cache");
        (state.entries.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calving_layout::sidecar::SegmentIdentity;

    fn sidecar(verbatim: usize) -> Arc<Sidecar> {
        let segment = SegmentIdentity {
            topic: "t".into(),
            topic_id: [1; 16],
            partition: 0,
            segment_id: [2; 16],
            start_offset: 0,
            end_offset: 0,
            segment_size: 0,
            max_timestamp_ms: 0,
        };
        Arc::new(Sidecar {
            layout_version: 1,
            segment,
            files: Vec::new(),
            batches: Vec::new(),
            exceptions: Vec::new(),
            timestamp_deltas: Default::default(),
            verbatim: vec![0; verbatim],
            offset_index: Vec::new(),
            time_index: Vec::new(),
            txn_index: None,
            producer_snapshot: Vec::new(),
            leader_epoch: Vec::new(),
            value_schemas: None,
            key_schemas: None,
        })
    }

    fn id(i: u8) -> KafkaUuid {
        KafkaUuid([i; 16])
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_first() {
        let one = sidecar(1000).memory_size();
        let cache = SidecarCache::new(100, one * 3);
        for i in 0..3 {
            cache.insert(id(i), sidecar(1000));
        }
        assert_eq!(cache.usage(), (3, one * 3));
        assert!(cache.get(&id(0)).is_some()); // 1 is now the least recently used
        cache.insert(id(3), sidecar(1000));
        assert_eq!(cache.usage(), (3, one * 3));
        assert!(cache.get(&id(1)).is_none());
        assert!(cache.get(&id(0)).is_some() && cache.get(&id(2)).is_some() && cache.get(&id(3)).is_some());
        // A big one evicts as many as it needs; one larger than the bound is not kept at all.
        cache.insert(id(4), sidecar(2000));
        assert!(cache.usage().1 <= one * 3, "{:?}", cache.usage());
        cache.insert(id(5), sidecar(10_000));
        assert!(cache.get(&id(5)).is_none());
        assert!(cache.usage().1 <= one * 3);
        cache.remove(&id(4));
        let (n, bytes) = cache.usage();
        assert_eq!(bytes, n * one, "what is left is accounted exactly");
    }

    #[test]
    fn bounded_by_count_and_repointed_in_place() {
        let cache = SidecarCache::new(2, usize::MAX);
        cache.insert(id(0), sidecar(10));
        cache.insert(id(1), sidecar(10));
        cache.insert(id(2), sidecar(10));
        assert_eq!(cache.usage().0, 2);
        assert!(cache.get(&id(0)).is_none());
        let file = DataFileRef { location: "file:///x.parquet".into(), file_size: 1, row_count: 1, min_offset: 0, max_offset: 0 };
        cache.learn_served_per_estimate(&id(2), 1.6);
        cache.repoint(id(2), vec![file.clone()]);
        assert_eq!(cache.get(&id(2)).unwrap().files, vec![file]);
        assert_eq!(cache.usage().0, 2);
        assert_eq!(cache.served_per_estimate(&id(2)), Some(1.6), "repointed, the same batches: what was learned stays");
    }

    #[test]
    fn keeps_what_streams_learned_while_the_sidecar_is_kept() {
        let cache = SidecarCache::new(1, usize::MAX);
        cache.learn_served_per_estimate(&id(0), 1.5); // not cached: nothing kept
        assert_eq!(cache.served_per_estimate(&id(0)), None);
        cache.insert(id(0), sidecar(10));
        assert_eq!(cache.served_per_estimate(&id(0)), None);
        cache.learn_served_per_estimate(&id(0), 1.5);
        assert_eq!(cache.served_per_estimate(&id(0)), Some(1.5));
        cache.insert(id(1), sidecar(10)); // evicts 0
        cache.insert(id(0), sidecar(10));
        assert_eq!(cache.served_per_estimate(&id(0)), None, "a sidecar read again starts afresh");
    }
}
