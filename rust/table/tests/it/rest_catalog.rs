//! The same operations through a real Iceberg REST catalog: Apache Iceberg's REST fixture 1.10.1
//! (Java, from Maven Central; JdbcCatalog on SQLite behind it), started on a free 127.0.0.1 port
//! and stopped by a Drop guard.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use calving_table::table::columns;
use calving_table::{
    committed_ranges, field_id, find_segment_commit, CalvingCatalog, CatalogConfig, CommitOutcome,
    Error,
};
use serde_json::json;

use crate::common::{data_file, require_python_modules, rows, scripts_dir, Row, TOPIC_ID};
use crate::faults::{Fault, FaultyCatalog};
use crate::readers::{expected_rows, pyiceberg_view, read_table};
use crate::sql_catalog::{scanned_rows, segment};

/// A running REST fixture; killed when dropped.
struct RestFixture {
    child: Child,
    uri: String,
    log: PathBuf,
}

impl RestFixture {
    fn start(dir: &Path) -> RestFixture {
        let script = scripts_dir().join("rest-fixture/resolve-rest-fixture.sh");
        let out = Command::new(&script).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run tests/install-deps.sh",
                script.display()
            )
        });
        assert!(
            out.status.success(),
            "{} failed (the REST fixture comes from Maven Central; run tests/install-deps.sh):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let classpath = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();

        let log = dir.join("rest-fixture.log");
        let warehouse = dir.join("rest-warehouse");
        std::fs::create_dir_all(&warehouse).unwrap();
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg("org.apache.iceberg.rest.CalvingRestFixture")
            .env(
                "CATALOG_CATALOG__IMPL",
                "org.apache.iceberg.jdbc.JdbcCatalog",
            )
            .env(
                "CATALOG_URI",
                format!("jdbc:sqlite:{}", dir.join("rest-catalog.db").display()),
            )
            .env(
                "CATALOG_WAREHOUSE",
                format!("file://{}", warehouse.display()),
            )
            .env("CATALOG_REST_PORT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start java ({e}): install a JDK 17, then run tests/install-deps.sh")
            });

        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("CALVING_REST_FIXTURE_PORT=") {
                    let _ = tx.send(port.trim().to_string());
                }
            }
        });
        let mut fixture = RestFixture {
            child,
            uri: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(port) => fixture.uri = format!("http://127.0.0.1:{port}"),
            Err(_) => panic!(
                "the REST fixture did not start within 90 s; its log:\n{}",
                std::fs::read_to_string(&fixture.log).unwrap_or_default()
            ),
        }
        fixture
    }
}

impl Drop for RestFixture {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the fixture exits on EOF ...
        let _ = self.child.kill(); // ... and is killed in any case
        let _ = self.child.wait();
    }
}

async fn rest_catalog(fixture: &RestFixture, warehouse: &Path) -> CalvingCatalog {
    let config = CatalogConfig::from_props([
        ("catalog.type", "rest"),
        ("catalog.uri", fixture.uri.as_str()),
        ("warehouse", &format!("file://{}", warehouse.display())),
        ("commit.retry.min-wait-ms", "10"),
    ])
    .unwrap();
    CalvingCatalog::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_catalog_create_append_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = RestFixture::start(dir.path());
    let warehouse = dir.path().join("rest-warehouse");
    let calving = rest_catalog(&fixture, &warehouse).await;

    // Create: the server assigns the ids; read them back by name.
    let table = calving.ensure_table("events").await.unwrap();
    let md = table.metadata();
    let ts = field_id(&table, columns::TIMESTAMP).unwrap();
    assert_eq!(md.default_partition_spec().fields()[0].source_id, ts);
    assert_eq!(
        md.default_partition_spec().fields()[0].name,
        columns::TIMESTAMP_DAY
    );
    assert_eq!(
        md.default_sort_order()
            .fields
            .iter()
            .map(|f| f.source_id)
            .collect::<Vec<_>>(),
        vec![
            field_id(&table, columns::PARTITION).unwrap(),
            field_id(&table, columns::OFFSET).unwrap()
        ]
    );
    assert_eq!(md.properties()["calving.layout-version"], "1");
    assert_eq!(md.properties()["write.parquet.compression-codec"], "zstd");
    // Adopt (a second broker, racing on another table too).
    let other = rest_catalog(&fixture, &warehouse).await;
    assert_eq!(
        other
            .ensure_table("events")
            .await
            .unwrap()
            .metadata()
            .uuid(),
        md.uuid()
    );
    let (r1, r2) = tokio::join!(calving.ensure_table("race"), other.ensure_table("race"));
    assert_eq!(r1.unwrap().metadata().uuid(), r2.unwrap().metadata().uuid());

    // Append two segments; reconcile.
    let stale = table.clone();
    let a = rows(0, 0, 6);
    let b = rows(0, 6, 5);
    let out = calving
        .append(
            &table,
            vec![data_file(&table, &a)],
            segment("seg-a", 0, 0, 5),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_a,
        table,
    } = out
    else {
        panic!("{out:?}")
    };
    let out = calving
        .append(
            &table,
            vec![data_file(&table, &b)],
            segment("seg-b", 0, 6, 10),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_b,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    let table = calving.load_table("events").await.unwrap();
    assert_eq!(
        find_segment_commit(&table, "seg-a").unwrap().snapshot_id(),
        snap_a
    );
    assert_eq!(
        find_segment_commit(&table, "seg-b").unwrap().snapshot_id(),
        snap_b
    );
    let ranges = committed_ranges(&table, TOPIC_ID, 0);
    assert_eq!(
        ranges
            .iter()
            .map(|r| (r.start_offset, r.end_offset))
            .collect::<Vec<_>>(),
        vec![(0, 5), (6, 10)]
    );
    let out = calving
        .append(
            &stale,
            vec![data_file(&stale, &a)],
            segment("seg-a", 0, 0, 5),
        )
        .await
        .unwrap();
    assert!(
        matches!(out, CommitOutcome::AlreadyCommitted { snapshot_id } if snapshot_id == snap_a),
        "{out:?}"
    );
    let e = calving
        .append(
            &stale,
            vec![data_file(&stale, &b)],
            segment("seg-b2", 0, 6, 10),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OffsetsAlreadyCommitted { .. }), "{e}");
    assert_eq!(scanned_rows(&table).await, 11);

    // Two brokers commit at the same time from a stale handle: one gets 409, retries, both land.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut brokers = vec![];
    let mut faults = vec![];
    for _ in 0..2 {
        let inner = calving.config().build().await.unwrap();
        let f = Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone()));
        faults.push(f.clone());
        brokers.push(CalvingCatalog::new(f, calving.config().clone()));
    }
    let (f1, f2) = (
        data_file(&stale, &rows(1, 0, 3)),
        data_file(&stale, &rows(2, 0, 4)),
    );
    let (r1, r2) = tokio::join!(
        brokers[0].append(&stale, vec![f1], segment("seg-p1", 1, 0, 2)),
        brokers[1].append(&stale, vec![f2], segment("seg-p2", 2, 0, 3)),
    );
    assert!(
        matches!(r1, Ok(CommitOutcome::Committed { .. }))
            && matches!(r2, Ok(CommitOutcome::Committed { .. })),
        "{r1:?} {r2:?}"
    );
    let conflicts: usize = faults
        .iter()
        .map(|f| f.conflicts.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    assert_eq!(conflicts, 1, "one REST 409, retried by iceberg");

    // A lost answer after the server applied the commit is reconciled.
    let flaky = Arc::new(FaultyCatalog::new(calving.config().build().await.unwrap()));
    let broker = CalvingCatalog::new(flaky.clone(), calving.config().clone());
    flaky.inject(Fault::ApplyThenLoseAnswer);
    let c = rows(0, 11, 2);
    let out = broker
        .append(
            &stale,
            vec![data_file(&stale, &c)],
            segment("seg-c", 0, 11, 12),
        )
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Reconciled { .. }), "{out:?}");

    let table = calving.load_table("events").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 5);
    assert_eq!(scanned_rows(&table).await, 11 + 3 + 4 + 2);

    // pyiceberg reads the table through the REST catalog.
    require_python_modules(&["pyiceberg", "pyarrow"]);
    let got = read_table(&[
        "--table".into(),
        "kafka.events".into(),
        "--rest-uri".into(),
        fixture.uri.clone(),
        "--warehouse".into(),
        format!("file://{}", warehouse.display()),
        "--reader".into(),
        "pyiceberg".into(),
    ]);
    let partition0: Vec<Row> = a.iter().chain(b.iter()).chain(c.iter()).cloned().collect();
    let py_rows: Vec<_> = got["pyiceberg"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["partition"] == json!(0))
        .cloned()
        .collect();
    assert_eq!(
        serde_json::Value::Array(py_rows),
        pyiceberg_view(&expected_rows(&partition0))
    );
    assert_eq!(got["pyiceberg"]["rows"].as_array().unwrap().len(), 20);
    drop(fixture);
}
