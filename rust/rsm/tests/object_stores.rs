//! One copy/fetch/delete round trip through the plugin's operations (`RemoteStorage`) on each
//! object store Calving supports, with the embedded catalog (SQLite, a local file) and the whole
//! warehouse in the store: Parquet data files, sidecars and Iceberg metadata.
//!
//! | test | warehouse | store | keys |
//! |---|---|---|---|
//! | `s3_warehouse` | `s3://calving/wh` | moto | `s3.*` (endpoint, path style, static keys) |
//! | `gcs_warehouse` | `gs://calving/wh` | fake-gcs-server | `gcs.service.host`, `gcs.no-auth` |
//! | `azure_warehouse` | `abfs://calving@devstoreaccount1.dfs.core.windows.net/wh` | Azurite | `adls.connection-string` |
//!
//! A missing emulator fails these tests, naming tests/install-deps.sh.

mod common;

use std::collections::HashMap;
use std::path::Path;

use calving_rsm::{IndexType, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_storage::{ObjectStorage, StorageConfig};
use calving_test_utils::azure::{AzuriteServer, ACCOUNT};
use calving_test_utils::fixture_files;
use calving_test_utils::gcs::GcsServer;
use common::{check_copied_to_the_store, check_served, count_rows, fetch_all, segment, S3Server};

/// Both segments of each fixture (lz4: compressed; txn: uncompressed, transactional, with
/// aborts and a transaction index).
fn fixture_segments(fixtures: &[&str]) -> Vec<(SegmentMetadata, LogSegmentFiles)> {
    fixtures
        .iter()
        .flat_map(|f| fixture_files(f, "log").into_iter().map(move |l| segment(f, &l)))
        .collect()
}

/// Every object under the warehouse, listed with calving-storage's own client.
fn list(props: &HashMap<String, String>) -> Vec<String> {
    let config = StorageConfig::new(&props["warehouse"], props).expect("storage config");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let storage = ObjectStorage::new(config).unwrap();
        let mut out: Vec<String> =
            storage.list(storage.warehouse()).await.unwrap().into_iter().map(|o| o.location).collect();
        out.sort();
        out
    })
}

/// The plugin's properties: `store` (the storage keys), the warehouse, the SQLite catalog in `dir`.
fn rsm_props(store: Vec<(&'static str, String)>, warehouse: &str, dir: &Path) -> HashMap<String, String> {
    let mut p: HashMap<String, String> = store.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    p.insert("warehouse".into(), warehouse.into());
    p.insert("catalog.uri".into(), format!("sqlite:{}/catalog.db", dir.display()));
    p
}

/// Copy every segment, check where everything landed, serve it back (this broker and another
/// one), check the rows, delete, check that Kafka's view and the sidecars are gone.
fn round_trip(props: &HashMap<String, String>, dir: &Path) {
    let warehouse = &props["warehouse"];
    let rsm = RemoteStorage::open(props).unwrap();
    let segments = fixture_segments(&["lz4", "txn"]);
    let mut outcomes = Vec::new();
    for (md, files) in &segments {
        let outcome = rsm.copy_log_segment(md, files).unwrap_or_else(|e| panic!("copy {md}: {e}"));
        assert!(outcome.snapshot_id.is_some() && !outcome.data_files.is_empty(), "{md}: {outcome:?}");
        outcomes.push(outcome);
    }
    check_copied_to_the_store(warehouse, &segments, &outcomes, &list(props), dir);

    // Fetch: records, batch facts, every index type; another broker serves the same bytes.
    for (md, files) in &segments {
        check_served(&rsm, md, files);
    }
    let other = RemoteStorage::open(props).unwrap();
    for (md, _) in &segments {
        assert_eq!(fetch_all(&other, md, 0, None), fetch_all(&rsm, md, 0, None), "{md}");
    }
    for topic in ["fx-lz4", "fx-txn"] {
        let records: u64 =
            segments.iter().zip(&outcomes).filter(|((m, _), _)| m.topic == topic).map(|(_, o)| o.stats.records).sum();
        assert_eq!(count_rows(&rsm, topic), records, "{topic}");
    }

    // Delete: Kafka's view is gone, the sidecars leave the store, the rows stay (retention keep).
    for (md, _) in &segments {
        rsm.delete_log_segment(md).unwrap();
        assert!(rsm.fetch_log_segment(md, 0, None).unwrap_err().is_not_found(), "{md}");
        assert!(rsm.fetch_index(md, IndexType::Offset).unwrap_err().is_not_found(), "{md}");
    }
    let objects = list(props);
    assert!(!objects.iter().any(|l| l.ends_with(".sidecar")), "{objects:#?}");
    assert!(count_rows(&rsm, "fx-lz4") > 0);
}

#[test]
fn s3_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("calving");
    round_trip(&rsm_props(S3Server::s3_props(&s3.endpoint), "s3://calving/wh", dir.path()), dir.path());
}

#[test]
fn gcs_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let gcs = GcsServer::start();
    gcs.create_bucket("calving");
    let props = rsm_props(GcsServer::gcs_props(&gcs.endpoint), "gs://calving/wh", dir.path());
    round_trip(&props, dir.path());
}

#[test]
fn azure_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = AzuriteServer::start();
    azurite.create_container("calving");
    let warehouse = format!("abfs://calving@{ACCOUNT}.dfs.core.windows.net/wh");
    let props = rsm_props(vec![("adls.connection-string", azurite.connection_string())], &warehouse, dir.path());
    round_trip(&props, dir.path());
}
