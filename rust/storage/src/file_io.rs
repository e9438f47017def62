//! iceberg's FileIO on the same object store: [`ObjectStoreStorage`] implements iceberg 0.10's
//! [`Storage`], [`ObjectStoreStorageFactory`] its [`StorageFactory`].
//!
//! Catalogs take a factory (`SqlCatalogBuilder`/`RestCatalogBuilder::with_storage_factory`) and
//! call [`StorageFactory::build`] with the properties they hand to FileIO: the catalog's own
//! (`uri`, `warehouse`, …: ignored here) and, for a REST catalog, the server's defaults and a
//! table's vended credentials (`s3.*`: laid over our configuration, see
//! [`StorageConfig::with_overrides`]). When those change nothing, the storage shares the
//! factory's client, so table metadata, manifests and data files go through one connection pool
//! with one set of settings.
//!
//! iceberg's traits are `#[typetag::serde]`: a storage must serialize. Both types serialize
//! their [`StorageConfig`] (credentials included) and rebuild the client lazily after
//! deserialization.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig as IcebergStorageConfig, StorageFactory,
};
use serde::{Deserialize, Serialize};

use crate::config::StorageConfig;
use crate::storage::ObjectStorage;
use crate::writer::ObjectWriter;

/// A factory for [`ObjectStoreStorage`] on `config`: give it to a catalog builder's
/// `with_storage_factory`. Builds the client on first use.
pub fn iceberg_storage_factory(config: &StorageConfig) -> Arc<dyn StorageFactory> {
    Arc::new(ObjectStoreStorageFactory::new(config.clone()))
}

/// A FileIO on `config` (the client is built now, so a bad configuration fails here).
pub fn file_io(config: &StorageConfig) -> iceberg::Result<FileIO> {
    Ok(ObjectStorage::new(config.clone())?.file_io())
}

impl ObjectStorage {
    /// A factory whose storages share this storage's client (unless a catalog's properties
    /// change the configuration).
    pub fn iceberg_storage_factory(&self) -> Arc<dyn StorageFactory> {
        let shared = Arc::new(OnceLock::new());
        let _ = shared.set(self.clone());
        Arc::new(ObjectStoreStorageFactory {
            config: self.config().clone(),
            shared,
        })
    }

    /// A FileIO on this storage's client.
    pub fn file_io(&self) -> FileIO {
        FileIOBuilder::new(self.iceberg_storage_factory()).build()
    }
}

/// The lazily built client: set at construction, or on first use after deserialization.
type SharedStorage = Arc<OnceLock<ObjectStorage>>;

fn get_or_build(shared: &SharedStorage, config: &StorageConfig) -> iceberg::Result<ObjectStorage> {
    if let Some(storage) = shared.get() {
        return Ok(storage.clone());
    }
    let storage = ObjectStorage::new(config.clone())?;
    Ok(shared.get_or_init(|| storage).clone())
}

/// iceberg's [`StorageFactory`] on object_store.
#[derive(Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorageFactory {
    config: StorageConfig,
    #[serde(skip)]
    shared: SharedStorage,
}

impl ObjectStoreStorageFactory {
    /// A factory on `config`; the client is built on first use.
    pub fn new(config: StorageConfig) -> Self {
        ObjectStoreStorageFactory {
            config,
            shared: Arc::new(OnceLock::new()),
        }
    }
}

impl fmt::Debug for ObjectStoreStorageFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreStorageFactory")
            .field("config", &self.config)
            .finish()
    }
}

#[typetag::serde]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, config: &IcebergStorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage_for(config.props())?))
    }
}

impl ObjectStoreStorageFactory {
    /// The storage for the properties a catalog hands to FileIO: this factory's shared client
    /// when they change nothing, a new client on the overridden configuration otherwise.
    pub fn storage_for(
        &self,
        props: &std::collections::HashMap<String, String>,
    ) -> iceberg::Result<ObjectStoreStorage> {
        Ok(match self.config.with_overrides(props)? {
            None => ObjectStoreStorage {
                config: self.config.clone(),
                shared: Arc::clone(&self.shared),
            },
            Some(overridden) => {
                tracing::debug!(config = %overridden, "catalog properties change the storage configuration: new client");
                ObjectStoreStorage::new(overridden)
            }
        })
    }
}

/// iceberg's [`Storage`] on object_store (see the module doc).
#[derive(Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorage {
    config: StorageConfig,
    #[serde(skip)]
    shared: SharedStorage,
}

impl ObjectStoreStorage {
    /// A storage on `config`; the client is built on first use.
    pub fn new(config: StorageConfig) -> Self {
        ObjectStoreStorage {
            config,
            shared: Arc::new(OnceLock::new()),
        }
    }

    /// The underlying [`ObjectStorage`] (built now if needed).
    pub fn storage(&self) -> iceberg::Result<ObjectStorage> {
        get_or_build(&self.shared, &self.config)
    }
}

impl fmt::Debug for ObjectStoreStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreStorage")
            .field("config", &self.config)
            .finish()
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        Ok(self.storage()?.exists(path).await?)
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let info = self.storage()?.head(path).await?;
        Ok(FileMetadata { size: info.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        Ok(self.storage()?.get(path).await?)
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let storage = self.storage()?;
        // Fail early on a location we cannot address; existence is checked by the first read.
        storage.resolve(path)?;
        Ok(Box::new(ObjectFileRead {
            storage,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        Ok(self.storage()?.put(path, bs).await?)
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let writer = self.storage()?.writer(path)?;
        Ok(Box::new(ObjectFileWrite {
            writer: Some(writer),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        Ok(self.storage()?.delete(path).await?)
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        self.storage()?.delete_prefix(path).await?;
        Ok(())
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let storage = self.storage()?;
        let mut deletes = paths
            .map(|path| {
                let storage = storage.clone();
                async move { storage.delete(&path).await }
            })
            .buffer_unordered(16);
        while let Some(result) = deletes.next().await {
            result?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// iceberg's ranged reader: one ranged GET per `read`.
struct ObjectFileRead {
    storage: ObjectStorage,
    location: String,
}

#[async_trait]
impl FileRead for ObjectFileRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        Ok(self.storage.get_range(&self.location, range).await?)
    }
}

/// iceberg's streaming writer on [`ObjectWriter`].
struct ObjectFileWrite {
    writer: Option<ObjectWriter>,
}

#[async_trait]
impl FileWrite for ObjectFileWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => Ok(writer.write(bs).await?),
            None => Err(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "write after close",
            )),
        }
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        match self.writer.take() {
            Some(writer) => {
                writer.finish().await?;
                Ok(())
            }
            None => Err(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "file already closed",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::ConfigKey;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What iceberg-catalog-rest 0.10.1 hands to FileIO (`load_file_io`): the catalog's
    /// properties (minus `uri`/`warehouse`), the server's config and a table's vended credentials.
    #[test]
    fn rest_catalog_properties() {
        let config = StorageConfig::new(
            "s3://bucket/wh",
            &props(&[
                ("s3.endpoint", "http://127.0.0.1:9000"),
                ("s3.path-style-access", "true"),
            ]),
        )
        .unwrap();
        let storage = ObjectStorage::new(config).unwrap();
        let factory = ObjectStoreStorageFactory {
            config: storage.config().clone(),
            shared: Arc::new(OnceLock::from(storage.clone())),
        };
        // Catalog-only properties (and storage keys this client has no use for): same client.
        let same = factory
            .storage_for(&props(&[
                ("credential", "client:secret"),
                ("oauth2-server-uri", "http://rest/v1/oauth/tokens"),
                ("prefix", "wh"),
                ("header.X-Iceberg-Access-Delegation", "vended-credentials"),
                ("s3.remote-signing-enabled", "false"),
                ("s3.endpoint", "http://127.0.0.1:9000"),
            ]))
            .unwrap();
        assert!(Arc::ptr_eq(
            &same.storage().unwrap().object_store(),
            &storage.object_store()
        ));
        // Vended credentials: laid over our configuration, in a new client.
        let vended = factory
            .storage_for(&props(&[
                ("s3.access-key-id", "ASIAVENDED"),
                ("s3.secret-access-key", "vended-secret"),
                ("s3.session-token", "vended-token"),
                ("client.region", "eu-west-1"),
            ]))
            .unwrap();
        let vended = vended.storage().unwrap();
        assert!(!Arc::ptr_eq(
            &vended.object_store(),
            &storage.object_store()
        ));
        let c = vended.config();
        assert!(c.is_set(ConfigKey::S3SessionToken));
        assert_eq!(c.get(ConfigKey::S3Region), Some("eu-west-1"));
        assert_eq!(
            c.get(ConfigKey::S3Endpoint),
            Some("http://127.0.0.1:9000"),
            "our settings stay"
        );
        assert!(!format!(
            "{:?}",
            factory
                .storage_for(&props(&[
                    ("s3.secret-access-key", "vended-secret"),
                    ("s3.access-key-id", "A")
                ]))
                .unwrap()
        )
        .contains("vended-secret"));
        // A malformed vended value is an error, not a silent default.
        assert!(factory
            .storage_for(&props(&[("s3.path-style-access", "sometimes")]))
            .is_err());
    }
}
