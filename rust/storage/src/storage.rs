//! [`ObjectStorage`]: the warehouse's object store, addressed by full locations.
//!
//! Owns the clients (one per bucket: the warehouse's, built eagerly, and any other bucket of the
//! same kind a location names, built on first use with the same configuration), the mapping of
//! locations to object_store paths and back, and the operations the rest of Calving needs: put,
//! streaming write, get, ranged get, head, idempotent delete, list. Every operation logs one
//! `debug` event (operation, location, bytes, elapsed) and maps errors through
//! [`crate::error::classify`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::runtime::Handle;

use crate::client::build_store;
use crate::config::{Scheme, StorageConfig};
use crate::error::{classify, Error, Operation, Result};
use crate::location::{format_location, Location};
use crate::writer::{BlockingObjectWriter, ObjectWriter};

/// What a listing or a head returns about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full location (`s3://bucket/key`).
    pub location: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time as the store reports it.
    pub last_modified: SystemTime,
    /// The store's entity tag, if it has one.
    pub e_tag: Option<String>,
}

/// The warehouse's object store, addressed by full locations. Cheap to clone (shares clients).
#[derive(Clone)]
pub struct ObjectStorage {
    inner: Arc<Inner>,
}

struct Inner {
    config: StorageConfig,
    root: Location,
    root_store: Arc<dyn ObjectStore>,
    /// Clients of other buckets of the warehouse's kind, by authority.
    others: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("config", &self.inner.config)
            .field("store", &format_args!("{}", self.inner.root_store))
            .finish()
    }
}

impl ObjectStorage {
    /// Builds the client of the warehouse's store (no I/O yet).
    pub fn new(config: StorageConfig) -> Result<Self> {
        let root = Location::parse(config.warehouse())?;
        let root_store = build_store(&config, root.scheme, &root.scheme_str, &root.authority)?;
        Ok(Self::from_parts(config, root, root_store))
    }

    /// Wraps an existing client for the warehouse (for tests and wrappers such as throttling).
    pub fn with_store(config: StorageConfig, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let root = Location::parse(config.warehouse())?;
        Ok(Self::from_parts(config, root, store))
    }

    fn from_parts(config: StorageConfig, root: Location, root_store: Arc<dyn ObjectStore>) -> Self {
        ObjectStorage {
            inner: Arc::new(Inner {
                config,
                root,
                root_store,
                others: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The configuration this storage was built from.
    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// The warehouse root location (no trailing `/`).
    pub fn warehouse(&self) -> &str {
        self.inner.config.warehouse()
    }

    /// The location `relative` under the warehouse root (`warehouse/relative`).
    pub fn location(&self, relative: &str) -> String {
        let root = self.warehouse().trim_end_matches('/');
        format!("{root}/{}", relative.trim_start_matches('/'))
    }

    /// The warehouse bucket's object_store client, for code that needs object_store itself.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.root_store)
    }

    /// The client and path of `location`; other buckets of the warehouse's kind get their own
    /// client (same configuration), built once.
    pub fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let loc = Location::parse(location)?;
        let store = self.store_for(&loc, location)?;
        Ok((store, loc.path))
    }

    /// The full location of `path` in the warehouse bucket's client.
    pub fn location_of(&self, path: &Path) -> String {
        format_location(
            &self.inner.root.scheme_str,
            &self.inner.root.authority,
            path,
        )
    }

    fn store_for(&self, loc: &Location, location: &str) -> Result<Arc<dyn ObjectStore>> {
        let root = &self.inner.root;
        if loc.scheme != root.scheme {
            return Err(Error::invalid_location(
                location,
                format!(
                    "the warehouse is in {} ({}), not {}",
                    root.scheme,
                    self.warehouse(),
                    loc.scheme
                ),
            ));
        }
        if loc.authority == root.authority || loc.scheme == Scheme::File {
            return Ok(Arc::clone(&self.inner.root_store));
        }
        if let Some(store) = self
            .inner
            .others
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&loc.authority)
        {
            return Ok(Arc::clone(store));
        }
        let store = build_store(
            &self.inner.config,
            loc.scheme,
            &loc.scheme_str,
            &loc.authority,
        )?;
        let mut others = self.inner.others.write().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(
            others.entry(loc.authority.clone()).or_insert(store),
        ))
    }

    fn target(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Location)> {
        let loc = Location::parse(location)?;
        if loc.path.as_ref().is_empty() {
            return Err(Error::invalid_location(
                location,
                "names a bucket or directory, not an object",
            ));
        }
        Ok((self.store_for(&loc, location)?, loc))
    }

    /// Writes `bytes` to `location` in one request, replacing any object there. Atomic: readers
    /// see the old object or the new one, never a part.
    pub async fn put(&self, location: &str, bytes: Bytes) -> Result<()> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        let len = bytes.len();
        store
            .put(&loc.path, PutPayload::from(bytes))
            .await
            .map_err(|e| classify(e, Operation::Put, location))?;
        log_done(Operation::Put, location, len as u64, started);
        Ok(())
    }

    /// Writes `bytes` to `location` only if no object is there: [`Error::AlreadyExists`] otherwise.
    pub async fn put_if_absent(&self, location: &str, bytes: Bytes) -> Result<()> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        let len = bytes.len();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .put_opts(&loc.path, PutPayload::from(bytes), opts)
            .await
            .map_err(|e| classify(e, Operation::Put, location))?;
        log_done(Operation::Put, location, len as u64, started);
        Ok(())
    }

    /// A streaming writer to `location`: small objects go up in one request on
    /// [`ObjectWriter::finish`], larger ones as a multipart upload of
    /// `storage.multipart.part-size-bytes` parts, at most `storage.multipart.max-concurrency` in
    /// flight, so memory stays below `part-size × (max-concurrency + 1)`. Nothing is visible at
    /// `location` before `finish` succeeds.
    pub fn writer(&self, location: &str) -> Result<ObjectWriter> {
        let (store, loc) = self.target(location)?;
        let s = self.inner.config.settings();
        Ok(ObjectWriter::new(
            store,
            loc.path,
            location.to_string(),
            s.part_size,
            s.max_concurrency,
            Handle::try_current().ok(),
        ))
    }

    /// A [`std::io::Write`] writer to `location` for synchronous encoders (Parquet's
    /// `ArrowWriter`), running the upload on `runtime`. Use it from a thread that is not one of
    /// the runtime's workers (a JNI thread, `std::thread`, `spawn_blocking`).
    pub fn blocking_writer(&self, location: &str, runtime: Handle) -> Result<BlockingObjectWriter> {
        let (store, loc) = self.target(location)?;
        let s = self.inner.config.settings();
        let writer = ObjectWriter::new(
            store,
            loc.path,
            location.to_string(),
            s.part_size,
            s.max_concurrency,
            Some(runtime.clone()),
        );
        Ok(BlockingObjectWriter::new(writer, runtime))
    }

    /// The whole object at `location`.
    pub async fn get(&self, location: &str) -> Result<Bytes> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        let result = store
            .get(&loc.path)
            .await
            .map_err(|e| classify(e, Operation::Get, location))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| classify(e, Operation::Get, location))?;
        log_done(Operation::Get, location, bytes.len() as u64, started);
        Ok(bytes)
    }

    /// Bytes `range` of the object at `location`. An empty range returns no bytes without a
    /// request; a range past the end of the object is an error.
    pub async fn get_range(&self, location: &str, range: Range<u64>) -> Result<Bytes> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let bytes = store
            .get_range(&loc.path, range.clone())
            .await
            .map_err(|e| classify(e, Operation::GetRange, location))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::Other {
                operation: Operation::GetRange,
                location: location.to_string(),
                source: format!("asked for bytes {range:?}, got {} bytes", bytes.len()).into(),
            });
        }
        tracing::debug!(
            op = "get-range",
            location,
            start = range.start,
            bytes = bytes.len(),
            elapsed_ms = elapsed_ms(started),
            "storage operation done"
        );
        Ok(bytes)
    }

    /// Several ranges of one object; nearby ranges are fetched together (object_store coalesces
    /// them), which suits Parquet pages.
    pub async fn get_ranges(&self, location: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        let result = store
            .get_ranges(&loc.path, ranges)
            .await
            .map_err(|e| classify(e, Operation::GetRange, location))?;
        let total: u64 = result.iter().map(|b| b.len() as u64).sum();
        tracing::debug!(
            op = "get-ranges",
            location,
            ranges = ranges.len(),
            bytes = total,
            elapsed_ms = elapsed_ms(started),
            "storage operation done"
        );
        Ok(result)
    }

    /// Size and metadata of the object at `location`.
    pub async fn head(&self, location: &str) -> Result<ObjectInfo> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        let meta = store
            .head(&loc.path)
            .await
            .map_err(|e| classify(e, Operation::Head, location))?;
        log_done(Operation::Head, location, meta.size, started);
        Ok(self.info(&loc, meta))
    }

    /// Whether an object exists at `location`.
    pub async fn exists(&self, location: &str) -> Result<bool> {
        match self.head(location).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the object at `location`. Idempotent: a missing object is success.
    pub async fn delete(&self, location: &str) -> Result<()> {
        let started = Instant::now();
        let (store, loc) = self.target(location)?;
        match store.delete(&loc.path).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(classify(e, Operation::Delete, location)),
        }
        log_done(Operation::Delete, location, 0, started);
        Ok(())
    }

    /// Deletes the objects at `locations` (idempotent, like [`Self::delete`]) with the store's
    /// bulk delete where it has one (S3 `DeleteObjects`: up to 1,000 objects a request);
    /// consecutive locations of one store go in one stream.
    pub async fn delete_many(&self, locations: &[String]) -> Result<()> {
        let started = Instant::now();
        let targets = locations
            .iter()
            .map(|location| Ok((self.target(location)?, location.as_str())))
            .collect::<Result<Vec<_>>>()?;
        for group in targets.chunk_by(|((a, _), _), ((b, _), _)| Arc::ptr_eq(a, b)) {
            let ((store, _), first) = &group[0];
            let paths = group.iter().map(|((_, loc), _)| loc.path.clone()).collect();
            delete_all(store, paths, first).await?;
        }
        tracing::debug!(op = "delete-many", objects = locations.len(), elapsed_ms = elapsed_ms(started), "storage operation done");
        Ok(())
    }

    /// Every object under `prefix` (recursive; by whole path segments: `a/b` covers `a/b/c`, not
    /// `a/bc`). Order is unspecified.
    pub fn list_stream(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo>> {
        let (store, loc) = match Location::parse(prefix)
            .and_then(|loc| Ok((self.store_for(&loc, prefix)?, loc)))
        {
            Ok(x) => x,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let this = self.clone();
        let prefix_owned = prefix.to_string();
        let path = loc.path.clone();
        let path = if path.as_ref().is_empty() {
            None
        } else {
            Some(path)
        };
        store
            .list(path.as_ref())
            .map(move |r| match r {
                Ok(meta) => Ok(this.info(&loc, meta)),
                Err(e) => Err(classify(e, Operation::List, &prefix_owned)),
            })
            .boxed()
    }

    /// [`Self::list_stream`] collected.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let started = Instant::now();
        let items: Vec<ObjectInfo> = self.list_stream(prefix).try_collect().await?;
        tracing::debug!(
            op = "list",
            location = prefix,
            objects = items.len(),
            elapsed_ms = elapsed_ms(started),
            "storage operation done"
        );
        Ok(items)
    }

    /// Deletes every object under `prefix` (see [`Self::list_stream`]); returns how many. Uses
    /// the store's bulk delete where it has one (S3 `DeleteObjects`).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let started = Instant::now();
        let loc = Location::parse(prefix)?;
        let store = self.store_for(&loc, prefix)?;
        let path = if loc.path.as_ref().is_empty() {
            None
        } else {
            Some(loc.path.clone())
        };
        let paths: Vec<Path> = store
            .list(path.as_ref())
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| classify(e, Operation::List, prefix))?;
        let count = paths.len() as u64;
        delete_all(&store, paths, prefix).await?;
        tracing::debug!(
            op = "delete-prefix",
            location = prefix,
            objects = count,
            elapsed_ms = elapsed_ms(started),
            "storage operation done"
        );
        Ok(count)
    }

    /// Copies the object at `from` to `to` (same bucket or not), replacing `to`.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let started = Instant::now();
        let (src_store, src) = self.target(from)?;
        let (dst_store, dst) = self.target(to)?;
        if Arc::ptr_eq(&src_store, &dst_store) {
            src_store
                .copy(&src.path, &dst.path)
                .await
                .map_err(|e| classify(e, Operation::Copy, from))?;
            log_done(Operation::Copy, to, 0, started);
            return Ok(());
        }
        let bytes = self.get(from).await?;
        let len = bytes.len() as u64;
        self.put(to, bytes).await?;
        log_done(Operation::Copy, to, len, started);
        Ok(())
    }

    fn info(&self, loc: &Location, meta: ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            location: loc.sibling(&meta.location),
            size: meta.size,
            last_modified: meta.last_modified.into(),
            e_tag: meta.e_tag,
        }
    }
}

/// Deletes `paths` of `store` with its bulk delete where it has one (S3 `DeleteObjects`); a
/// missing object is success. `what` names the request in an error.
async fn delete_all(store: &Arc<dyn ObjectStore>, paths: Vec<Path>, what: &str) -> Result<()> {
    let mut results = store.delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
    while let Some(result) = results.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(classify(e, Operation::Delete, what)),
        }
    }
    Ok(())
}

pub(crate) fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

pub(crate) fn log_done(op: Operation, location: &str, bytes: u64, started: Instant) {
    tracing::debug!(
        op = op.as_str(),
        location,
        bytes,
        elapsed_ms = elapsed_ms(started),
        "storage operation done"
    );
}
