//! The conformance suite against real stores: the local filesystem (temp dir), `memory://`,
//! a real S3-protocol server (moto) on loopback reached exactly as AWS S3 is (explicit
//! endpoint, path-style, static credentials, SigV4), Google Cloud Storage's emulator
//! (fake-gcs-server, `gs://`, `gcs.service.host` + `gcs.no-auth`) and Azure's (Azurite's Blob
//! service, `abfs://container@devstoreaccount1.dfs.core.windows.net`, shared key, per-account
//! endpoint; also `wasbs://` and a connection string). Plus iceberg's SQL catalog writing table
//! metadata through our storage factory, on each of them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use calving_storage::conformance::run_all;
use calving_storage::{
    file_io, iceberg_storage_factory, ObjectStorage, ObjectStoreStorage, StorageConfig,
};
use common::{
    init_logs, props, unique, AzuriteServer, EmulatorConfig, GcsServer, S3Config, S3Server, LARGE,
};
use iceberg::io::Storage;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem_conformance() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let config =
        StorageConfig::new(&format!("file://{}", dir.path().display()), &HashMap::new()).unwrap();
    let storage = ObjectStorage::new(config).unwrap();
    run_all(&storage, &storage.location("conformance"), LARGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_locations_are_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    // A bare path as warehouse, as the SQL catalog is often given.
    let storage = ObjectStorage::new(
        StorageConfig::new(dir.path().to_str().unwrap(), &HashMap::new()).unwrap(),
    )
    .unwrap();
    let loc = storage.location("ns/t/data/x.parquet");
    assert_eq!(
        loc,
        format!("file://{}/ns/t/data/x.parquet", dir.path().display())
    );
    storage.put(&loc, Bytes::from_static(b"abc")).await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("ns/t/data/x.parquet")).unwrap(),
        b"abc"
    );
    // Bare absolute paths address the same files.
    let bare = format!("{}/ns/t/data/x.parquet", dir.path().display());
    assert_eq!(&storage.get(&bare).await.unwrap()[..], b"abc");
    // Keys are literal here too: `%2F` is part of the file name, as with Iceberg's own LocalFs.
    let odd = storage.location("p/k=a%2Fb c/x.parquet");
    storage.put(&odd, Bytes::from_static(b"odd")).await.unwrap();
    assert!(
        dir.path().join("p/k=a%2Fb c/x.parquet").is_file(),
        "{:?}",
        std::fs::read_dir(dir.path().join("p"))
            .unwrap()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        storage.list(&storage.location("p")).await.unwrap()[0].location,
        odd
    );
    // Another kind of store is refused, naming the location.
    let err = storage.get("s3://bucket/x").await.unwrap_err();
    assert!(err.to_string().contains("s3://bucket/x"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conformance() {
    init_logs();
    let config = StorageConfig::memory(&unique("conformance")).unwrap();
    let storage = ObjectStorage::new(config).unwrap();
    run_all(&storage, &storage.location("suite"), LARGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_shared_by_every_client_of_one_config_and_survives_serde() {
    let config = StorageConfig::memory(&unique("shared")).unwrap();
    let storage = ObjectStorage::new(config.clone()).unwrap();
    let loc = storage.location("a/b.json");
    storage.put(&loc, Bytes::from_static(b"{}")).await.unwrap();
    // The free functions build their own clients, yet see the same in-memory store.
    let io = file_io(&config).unwrap();
    assert_eq!(
        &io.new_input(&loc).unwrap().read().await.unwrap()[..],
        b"{}"
    );
    // iceberg serializes storages with typetag: ours round-trips and rebuilds its client lazily.
    let boxed: Box<dyn Storage> = Box::new(ObjectStoreStorage::new(config.clone()));
    let json = serde_json::to_string(&boxed).unwrap();
    assert!(json.contains("ObjectStoreStorage"), "{json}");
    let back: Box<dyn Storage> = serde_json::from_str(&json).unwrap();
    assert_eq!(&back.read(&loc).await.unwrap()[..], b"{}");
    let factory = iceberg_storage_factory(&config);
    let json = serde_json::to_string(&factory).unwrap();
    let back: Box<dyn iceberg::io::StorageFactory> = serde_json::from_str(&json).unwrap();
    let built = back.build(&iceberg::io::StorageConfig::new()).unwrap();
    assert!(built.exists(&loc).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conformance_on_a_loopback_server() {
    init_logs();
    let server = S3Server::start();
    let bucket = unique("calving").to_lowercase();
    server.create_bucket(&bucket);
    let storage = ObjectStorage::new(server.config(&bucket, "warehouse", &[])).unwrap();
    let started = std::time::Instant::now();
    run_all(&storage, &storage.location("suite"), LARGE).await;
    eprintln!("S3 conformance suite took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_other_buckets_and_literal_keys() {
    let server = S3Server::start();
    let (home, other) = (
        unique("home").to_lowercase(),
        unique("other").to_lowercase(),
    );
    server.create_bucket(&home);
    server.create_bucket(&other);
    let storage = ObjectStorage::new(server.config(&home, "wh", &[])).unwrap();
    // A table adopted from another bucket: same configuration, its own client.
    let elsewhere = format!("s3://{other}/tables/t/metadata/v1.json");
    storage
        .put(&elsewhere, Bytes::from_static(b"v1"))
        .await
        .unwrap();
    assert_eq!(&storage.get(&elsewhere).await.unwrap()[..], b"v1");
    // A client of the other bucket alone finds it there.
    let other_storage = ObjectStorage::new(server.config(&other, "tables", &[])).unwrap();
    let listed = other_storage.list(other_storage.warehouse()).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| i.location.as_str())
            .collect::<Vec<_>>(),
        vec![elsewhere.as_str()]
    );
    assert!(
        storage.list(storage.warehouse()).await.unwrap().is_empty(),
        "nothing landed in the home bucket"
    );
    // Keys are literal: `%2F` and spaces stay as written (Iceberg Java's S3URI does the same).
    let odd = storage.location("p/k=a%2Fb c/x.parquet");
    storage.put(&odd, Bytes::from_static(b"odd")).await.unwrap();
    let listed = storage.list(&storage.location("p")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, odd);
    assert_eq!(&storage.get(&odd).await.unwrap()[..], b"odd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_conformance_on_a_loopback_emulator() {
    init_logs();
    let server = GcsServer::start();
    let bucket = unique("calving").to_lowercase();
    server.create_bucket(&bucket);
    let storage = ObjectStorage::new(server.config(&bucket, "warehouse", &[])).unwrap();
    let started = std::time::Instant::now();
    run_all(&storage, &storage.location("suite"), LARGE).await;
    eprintln!("GCS conformance suite took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_conformance_on_azurite() {
    init_logs();
    let server = AzuriteServer::start();
    let container = unique("calving").to_lowercase();
    server.create_container(&container);
    let storage = ObjectStorage::new(server.config(&container, "warehouse", &[])).unwrap();
    let started = std::time::Instant::now();
    run_all(&storage, &storage.location("suite"), LARGE).await;
    eprintln!("Azure conformance suite took {:?}", started.elapsed());
}

/// The other ways to name an Azure warehouse reach the same objects: `wasbs://` (Hadoop's Blob
/// scheme) and `abfss://`, with pyiceberg's connection string instead of Iceberg Java's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_locations_and_connection_strings_reach_the_same_objects() {
    let server = AzuriteServer::start();
    let container = unique("forms").to_lowercase();
    server.create_container(&container);
    let storage = ObjectStorage::new(server.config(&container, "wh", &[])).unwrap();
    let loc = storage.location("t/x.bin");
    storage.put(&loc, Bytes::from_static(b"abc")).await.unwrap();
    let account = calving_test_utils::azure::ACCOUNT;
    for warehouse in [
        format!("wasbs://{container}@{account}.blob.core.windows.net/wh"),
        format!("abfss://{container}@{account}.dfs.core.windows.net/wh"),
    ] {
        let config = StorageConfig::new(
            &warehouse,
            &props(&[("adls.connection-string", &server.connection_string())]),
        )
        .unwrap();
        let other = ObjectStorage::new(config).unwrap();
        let listed = other.list(other.warehouse()).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|i| i.location.as_str())
                .collect::<Vec<_>>(),
            vec![format!("{warehouse}/t/x.bin")],
            "{warehouse}"
        );
        assert_eq!(
            &other.get(&other.location("t/x.bin")).await.unwrap()[..],
            b"abc"
        );
    }
}

/// Keys are literal on GCS and Azure too: `%2F` and spaces stay as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_and_azure_keys_are_literal() {
    let gcs = GcsServer::start();
    let azurite = AzuriteServer::start();
    let bucket = unique("literal").to_lowercase();
    gcs.create_bucket(&bucket);
    azurite.create_container(&bucket);
    for config in [
        gcs.config(&bucket, "wh", &[]),
        azurite.config(&bucket, "wh", &[]),
    ] {
        let storage = ObjectStorage::new(config).unwrap();
        let odd = storage.location("p/k=a%2Fb c/x.parquet");
        storage.put(&odd, Bytes::from_static(b"odd")).await.unwrap();
        let listed = storage.list(&storage.location("p")).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|i| i.location.as_str())
                .collect::<Vec<_>>(),
            vec![odd.as_str()]
        );
        assert_eq!(&storage.get(&odd).await.unwrap()[..], b"odd");
        storage.delete(&odd).await.unwrap();
        assert!(!storage.exists(&odd).await.unwrap(), "{odd}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_catalog_writes_table_metadata_through_the_factory() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    // Local filesystem warehouse and a memory one: both go through our Storage.
    for warehouse in [
        format!("file://{}/wh", dir.path().display()),
        format!("memory://{}/wh", unique("catalog")),
    ] {
        let config = StorageConfig::new(&warehouse, &HashMap::new()).unwrap();
        let storage = ObjectStorage::new(config.clone()).unwrap();
        sql_catalog_round_trip(&storage, dir.path(), &unique("cat")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_catalog_on_s3() {
    let server = S3Server::start();
    let bucket = unique("catalog").to_lowercase();
    server.create_bucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let storage = ObjectStorage::new(server.config(&bucket, "wh", &[])).unwrap();
    sql_catalog_round_trip(&storage, dir.path(), "s3cat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_catalog_on_gcs_and_azure() {
    let dir = tempfile::tempdir().unwrap();
    let gcs = GcsServer::start();
    let bucket = unique("catalog").to_lowercase();
    gcs.create_bucket(&bucket);
    let storage = ObjectStorage::new(gcs.config(&bucket, "wh", &[])).unwrap();
    sql_catalog_round_trip(&storage, dir.path(), "gcscat").await;
    let azurite = AzuriteServer::start();
    azurite.create_container(&bucket);
    let storage = ObjectStorage::new(azurite.config(&bucket, "wh", &[])).unwrap();
    sql_catalog_round_trip(&storage, dir.path(), "azcat").await;
}

async fn sql_catalog_round_trip(storage: &ObjectStorage, dir: &std::path::Path, name: &str) {
    let db = dir.join(format!("{name}.db"));
    let catalog = SqlCatalogBuilder::default()
        .with_storage_factory(storage.iceberg_storage_factory())
        .sql_bind_style(SqlBindStyle::QMark)
        .load(
            name,
            props(&[
                ("uri", &format!("sqlite:{}?mode=rwc", db.display())),
                ("warehouse", storage.warehouse()),
            ]),
        )
        .await
        .expect("SQL catalog");
    let ns = NamespaceIdent::new("kafka".into());
    catalog.create_namespace(&ns, HashMap::new()).await.unwrap();
    let schema = Schema::builder()
        .with_fields(vec![Arc::new(NestedField::required(
            1,
            "offset",
            Type::Primitive(PrimitiveType::Long),
        ))])
        .build()
        .unwrap();
    let creation = TableCreation::builder()
        .name("topic".into())
        .schema(schema)
        .build();
    let table = catalog
        .create_table(&ns, creation)
        .await
        .expect("create table");
    let metadata = table
        .metadata_location()
        .expect("metadata location")
        .to_string();
    assert!(
        metadata.starts_with(storage.warehouse()),
        "{metadata} is under {}",
        storage.warehouse()
    );
    // The metadata file is in our store, seen through our own client.
    let listed = storage
        .list(&storage.location("kafka/topic/metadata"))
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| i.location.as_str())
            .collect::<Vec<_>>(),
        vec![metadata.as_str()]
    );
    let loaded = catalog
        .load_table(&TableIdent::new(ns, "topic".into()))
        .await
        .expect("load table");
    assert_eq!(
        loaded
            .metadata()
            .current_schema()
            .as_struct()
            .fields()
            .len(),
        1
    );
}

#[test]
fn the_emulator_guards_stop_their_servers_even_on_panic() {
    for start in [|| GcsServer::start().port, || AzuriteServer::start().port] {
        let port = start();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "an emulator still answers on {port} after its guard dropped"
        );
    }
    let port = std::panic::catch_unwind(|| {
        let server = AzuriteServer::start();
        std::panic::panic_any(server.port);
    })
    .unwrap_err();
    let port = *port.downcast::<u16>().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_s3_server_guard_stops_the_server_even_on_panic() {
    let port = std::panic::catch_unwind(|| {
        let server = S3Server::start();
        let port = server.port;
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        std::panic::panic_any(port);
    })
    .unwrap_err();
    let port = *port.downcast::<u16>().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still answers on {port} after its guard dropped"
    );
}
