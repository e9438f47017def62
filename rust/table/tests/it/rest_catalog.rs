//! The same operations through a real Iceberg REST catalog: Apache Iceberg's REST fixture 1.10.1
//! (Java, from Maven Central; JdbcCatalog on SQLite behind it), started on a free 127.0.0.1 port
//! and stopped by a Drop guard. Lost commit answers are injected by an HTTP proxy in front of it
//! (`RestFaults`), on the commit path only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use calving_table::ledger::{self, LedgerSource};
use calving_table::table::columns;
use calving_table::{
    ancestry, field_id, CalvingCatalog, CatalogConfig, CommitOutcome, Error, LEDGER_PROP,
    SEGMENT_ID_PROP,
};
use serde_json::json;

use crate::common::{
    data_file, keys, require_python_modules, rows, scanned_keys, scripts_dir, segment, Row,
    TOPIC_ID,
};
use crate::faults::{Fault, FaultyCatalog, RestFaults};
use crate::readers::{expected_rows, pyiceberg_view, read_table};
use crate::sql_catalog::ledger_entries;

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

fn rest_config(uri: &str, warehouse: &Path, extra: &[(&str, &str)]) -> CatalogConfig {
    let warehouse = format!("file://{}", warehouse.display());
    let mut props = vec![
        ("catalog.type", "rest"),
        ("catalog.uri", uri),
        ("warehouse", warehouse.as_str()),
    ];
    props.extend_from_slice(extra);
    CatalogConfig::from_props(props).unwrap()
}

async fn rest_catalog(fixture: &RestFixture, warehouse: &Path) -> CalvingCatalog {
    let config = rest_config(&fixture.uri, warehouse, &[("commit.retry.min-wait-ms", "10")]);
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

    // Append two segments; the ledger is one range, carried in the summaries.
    let a = rows(0, 0, 6);
    let b = rows(0, 6, 5);
    let out = calving
        .append("events", vec![data_file(&table, &a)], segment("seg-a", 0, 0, 5))
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_a,
        table: after_a,
    } = out;
    assert_eq!(after_a.metadata().current_snapshot_id(), Some(snap_a));
    let out = calving
        .append("events", vec![data_file(&table, &b)], segment("seg-b", 0, 6, 10))
        .await
        .unwrap();
    let snap_b = out.snapshot_id();
    let loaded = calving.load_table("events").await.unwrap();
    assert_eq!(loaded.metadata().current_snapshot_id(), Some(snap_b));
    let summary = |id: i64| {
        loaded
            .metadata()
            .snapshot_by_id(id)
            .unwrap()
            .summary()
            .additional_properties
            .clone()
    };
    assert_eq!(summary(snap_a)[SEGMENT_ID_PROP], "seg-a");
    assert_eq!(summary(snap_b)[SEGMENT_ID_PROP], "seg-b");
    assert_eq!(
        loaded.metadata().properties()[LEDGER_PROP],
        format!(r#"{{"{TOPIC_ID}":{{"0":[[0,10]]}}}}"#)
    );
    assert!(!summary(snap_b).contains_key(LEDGER_PROP));
    let (l, source) = ledger::load(&loaded).await.unwrap();
    assert_eq!(source, LedgerSource::Snapshot(snap_b));
    assert_eq!(l.ranges(TOPIC_ID, 0), &[(0, 10)]);

    // Retries from another broker, of the same segment or under a new id: refused.
    for (id, start, end) in [("seg-a", 0, 5), ("seg-b2", 6, 10)] {
        let rs = rows(0, start, (end - start + 1) as usize);
        let e = other
            .append("events", vec![data_file(&table, &rs)], segment(id, 0, start, end))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 10)]),
            "{id}: {e}"
        );
    }
    let loaded = calving.load_table("events").await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 2);
    assert_eq!(scanned_keys(&loaded).await, keys(0, 0..11));

    // Two brokers plan on the same table state: one gets 409, re-plans once, both land.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut brokers = vec![];
    let mut faults = vec![];
    for _ in 0..2 {
        let inner = calving.config().build().await.unwrap();
        let f = Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone()));
        faults.push(f.clone());
        brokers.push(CalvingCatalog::new(f, calving.config().clone()));
    }
    let (f1, f2) = (data_file(&table, &rows(1, 0, 3)), data_file(&table, &rows(2, 0, 4)));
    let (r1, r2) = tokio::join!(
        brokers[0].append("events", vec![f1], segment("seg-p1", 1, 0, 2)),
        brokers[1].append("events", vec![f2], segment("seg-p2", 2, 0, 3)),
    );
    assert!(r1.is_ok() && r2.is_ok(), "{r1:?} {r2:?}");
    let loads: usize = faults.iter().map(|f| f.loads()).sum();
    assert_eq!(loads, 3, "one REST 409, re-planned once");

    // Commits whose answer is lost (the proxy in front of the catalog): applied, then 504 —
    // the driver finds its snapshot; not applied, 500 — the driver commits again. Once each.
    let proxy = RestFaults::start(&fixture.uri);
    let broker = CalvingCatalog::new(
        calving.config().build().await.unwrap(),
        rest_config(&proxy.uri, &warehouse, &[("commit.retry.min-wait-ms", "10")]),
    );
    let c = rows(0, 11, 2);
    proxy.inject(Fault::ApplyThenLoseAnswer);
    let out = broker
        .append("events", vec![data_file(&table, &c)], segment("seg-c", 0, 11, 12))
        .await
        .unwrap();
    assert_eq!((proxy.fired(), proxy.commits()), (1, 1), "applied once, answer lost");
    let loaded = calving.load_table("events").await.unwrap();
    assert_eq!(loaded.metadata().current_snapshot_id(), Some(out.snapshot_id()));
    let d = rows(0, 13, 2);
    proxy.inject(Fault::FailWithoutApplying);
    let out = broker
        .append("events", vec![data_file(&table, &d)], segment("seg-d", 0, 13, 14))
        .await
        .unwrap();
    assert_eq!((proxy.fired(), proxy.commits()), (2, 3), "failed once, then committed");
    let loaded = calving.load_table("events").await.unwrap();
    assert_eq!(loaded.metadata().current_snapshot_id(), Some(out.snapshot_id()));

    let table = calving.load_table("events").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 6);
    assert_eq!(ancestry(&table).count(), 6);
    let (l, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&l),
        vec![
            (TOPIC_ID.to_string(), 0, vec![(0, 14)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 2)]),
            (TOPIC_ID.to_string(), 2, vec![(0, 3)]),
        ]
    );
    let mut expected = keys(0, 0..15);
    expected.extend(keys(1, 0..3));
    expected.extend(keys(2, 0..4));
    assert_eq!(scanned_keys(&table).await, expected);

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
    let partition0: Vec<Row> = [a, b, c, d].concat();
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
    assert_eq!(got["pyiceberg"]["rows"].as_array().unwrap().len(), 15 + 3 + 4);
    drop(fixture);
}

/// Several brokers append a segment of each of their partitions of one table at once through the
/// REST catalog, with the default retry policy: every commit lands. (Each REST commit takes
/// 100-300 ms here, ten times a SQLite one: brokers committing back to back for seconds can starve
/// one of them beyond Iceberg's default 4 retries, so this is one round per partition; the SQL
/// test runs several.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_brokers_appending_different_partitions_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = RestFixture::start(dir.path());
    let warehouse = dir.path().join("rest-warehouse");
    let config = rest_config(&fixture.uri, &warehouse, &[]);
    let first = CalvingCatalog::connect(config.clone()).await.unwrap();
    let table = first.ensure_table("shared").await.unwrap();
    const BROKERS: i32 = 3;
    const PARTITIONS_PER_BROKER: i32 = 2;
    const SEGMENTS: i64 = 1;
    let mut tasks = vec![];
    for b in 0..BROKERS {
        let broker = CalvingCatalog::connect(config.clone()).await.unwrap();
        for k in 0..PARTITIONS_PER_BROKER {
            let partition = b * PARTITIONS_PER_BROKER + k;
            let (broker, table) = (broker.clone(), table.clone());
            tasks.push(tokio::spawn(async move {
                for s in 0..SEGMENTS {
                    let df = data_file(&table, &rows(partition, s * 2, 2));
                    broker
                        .append("shared", vec![df], segment(&format!("p{partition}-s{s}"), partition, s * 2, s * 2 + 1))
                        .await
                        .unwrap_or_else(|e| panic!("partition {partition} segment {s}: {e}"));
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let table = first.load_table("shared").await.unwrap();
    let partitions = BROKERS * PARTITIONS_PER_BROKER;
    // A broker's appends may share a snapshot (group commit, also when one joins the other's
    // retry after a conflict): every segment is in exactly one.
    let segments_committed: i64 = ancestry(&table)
        .map(|s| s.summary().additional_properties.get(calving_table::SEGMENTS_PROP).map_or(1, |n| n.parse::<i64>().unwrap()))
        .sum();
    assert_eq!(segments_committed, partitions as i64 * SEGMENTS);
    let (l, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&l),
        (0..partitions)
            .map(|p| (TOPIC_ID.to_string(), p, vec![(0, SEGMENTS * 2 - 1)]))
            .collect::<Vec<_>>()
    );
    let expected: Vec<_> = (0..partitions).flat_map(|p| keys(p, 0..SEGMENTS * 2)).collect();
    assert_eq!(scanned_keys(&table).await, expected);
    drop(fixture);
}

/// A REST catalog that accepts connections and never answers (a hung server, a black-holed
/// proxy) fails the call after `catalog.request-timeout-ms`, retriable, instead of holding the
/// copy (and a broker's copier thread) for as long as the server stays silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_rest_catalog_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = rest_config(&uri, dir.path(), &[("catalog.request-timeout-ms", "700")]);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        let catalog = CalvingCatalog::connect(config).await?;
        catalog.load_table("silent").await.map(drop)
    })
    .await
    .expect("the catalog call must give up by itself");
    let e = result.expect_err("nothing answered");
    assert!(e.is_retriable(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
