//! Shared pieces of the rsm integration tests: the broker's view of a fixture segment, the checks
//! of what a fetch serves, and the real parts DESIGN.md asks for ("Real components in tests"):
//! moto's S3 server on loopback, Apache Iceberg's REST catalog fixture (S3FileIO on the same
//! bucket), and a loopback TCP proxy that can cut chosen requests (a server that stops answering
//! in the middle of a copy). Every external process is stopped by a Drop guard, also on panic.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use calving_rsm::{IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_segment::index::offset;
use calving_segment::{Compression, LogEntries, LogEntry};
use calving_storage::{ObjectStorage, StorageConfig};
use calving_test_utils::{fixture_files, repo_root};


// ---------------------------------------------------------------------------------------------
// Segments as the broker hands them over
// ---------------------------------------------------------------------------------------------

pub fn topic_id(fixture: &str) -> KafkaUuid {
    let mut b = [0u8; 16];
    for (i, c) in fixture.bytes().enumerate() {
        b[i % 16] ^= c;
    }
    KafkaUuid(b)
}

/// The broker's view of a fixture segment: metadata and files (as in `copy_fetch.rs`).
pub fn segment(fixture: &str, log: &Path) -> (SegmentMetadata, LogSegmentFiles) {
    let base: i64 = log.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let data = std::fs::read(log).unwrap();
    let (mut last, mut max_ts) = (base, -1);
    for e in LogEntries::new(&data) {
        match e.unwrap() {
            LogEntry::Batch(b) => {
                last = b.header.last_offset();
                max_ts = max_ts.max(b.header.max_timestamp);
            }
            LogEntry::Legacy(l) => {
                last = l.offset;
                max_ts = max_ts.max(l.timestamp);
            }
        }
    }
    let dir = log.parent().unwrap();
    let snapshot = fixture_files(fixture, "snapshot")
        .into_iter()
        .find(|s| s.file_stem().unwrap().to_str().unwrap().parse::<i64>().unwrap() > base)
        .unwrap_or_else(|| dir.join("none.snapshot"));
    let txn = log.with_extension("txnindex");
    let md = SegmentMetadata {
        topic: format!("fx-{fixture}"),
        topic_id: topic_id(fixture),
        partition: 0,
        segment_id: KafkaUuid::random(),
        start_offset: base,
        end_offset: last,
        max_timestamp_ms: max_ts,
        segment_size: data.len() as u64,
        leader_epochs: BTreeMap::from([(0, base)]),
    };
    let files = LogSegmentFiles {
        log: log.to_path_buf(),
        offset_index: log.with_extension("index"),
        time_index: log.with_extension("timeindex"),
        txn_index: txn.exists().then_some(txn),
        producer_snapshot: snapshot,
        leader_epoch: std::fs::read(dir.join("leader-epoch-checkpoint")).unwrap_or_default(),
    };
    (md, files)
}

/// A served segment as the broker's positions see it: each batch's position (0, then the offset
/// index's entries, one per batch after the first) and where its bytes start in the whole served
/// segment. Layout version 2's positions are lower bounds of the bytes: checked here.
pub struct Served {
    pub whole: Vec<u8>,
    pub positions: Vec<u64>,
    pub starts: Vec<usize>,
}

impl Served {
    /// From the whole served segment (`fetch_all` from 0), already fetched.
    pub fn new(rsm: &RemoteStorage, md: &SegmentMetadata, whole: Vec<u8>) -> Served {
        let index = offset::parse(&rsm.fetch_index(md, IndexType::Offset).unwrap()).unwrap();
        let positions: Vec<u64> = std::iter::once(0).chain(index.iter().map(|e| e.position as u64)).collect();
        let starts: Vec<usize> = LogEntries::new(&whole).map(|e| e.unwrap().position() as usize).collect();
        assert_eq!(positions.len(), starts.len().max(1), "{md}: one index entry per batch after the first");
        for k in 1..starts.len() {
            assert!(positions[k] > positions[k - 1], "{md}: positions increase");
            assert!(positions[k] - positions[k - 1] <= (starts[k] - starts[k - 1]) as u64, "{md}: a position step exceeds its batch");
        }
        Served { whole, positions, starts }
    }

    /// The batch whose positions hold `position`.
    pub fn batch_at(&self, position: u64) -> usize {
        self.positions.partition_point(|&p| p <= position) - 1
    }

    /// What a fetch from `start` through `end` (positions, inclusive) serves: whole batches, from
    /// the one holding `start` through the one holding `end`.
    pub fn expected(&self, start: u64, end: Option<u64>) -> &[u8] {
        let from = self.starts.get(self.batch_at(start)).copied().unwrap_or(self.whole.len());
        let to = end.map_or(self.whole.len(), |e| self.starts.get(self.batch_at(e) + 1).copied().unwrap_or(self.whole.len()));
        &self.whole[from..to]
    }
}

pub fn fetch_all(rsm: &RemoteStorage, md: &SegmentMetadata, start: u64, end: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    rsm.fetch_log_segment(md, start, end).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// What Kafka reads back equals what was copied: every batch's facts (all header fields but the
/// length and CRC, which a re-encoding changes, and the codec bits), every record, uncompressed
/// batches byte for byte, valid CRCs; every index type; fetches from index positions (spread
/// over the segment) and ranges.
pub fn check_served(rsm: &RemoteStorage, md: &SegmentMetadata, files: &LogSegmentFiles) {
    let log = &files.log;
    let original = std::fs::read(log).unwrap();
    let served = fetch_all(rsm, md, 0, None);
    let served_entries: Vec<LogEntry> = LogEntries::new(&served).map(Result::unwrap).collect();
    let original_entries: Vec<LogEntry> = LogEntries::new(&original).map(Result::unwrap).collect();
    assert_eq!(served_entries.len(), original_entries.len(), "{}: batches", log.display());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (s, o) in served_entries.iter().zip(&original_entries) {
        let (LogEntry::Batch(s), LogEntry::Batch(o)) = (s, o) else { panic!("v2 fixtures") };
        s.verify_crc().unwrap();
        let (sh, oh) = (&s.header, &o.header);
        let facts = |h: &calving_segment::BatchHeader| {
            (
                h.base_offset,
                h.last_offset_delta,
                h.partition_leader_epoch,
                h.magic,
                h.attributes.with_compression(Compression::None),
                h.base_timestamp,
                h.max_timestamp,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.records_count,
            )
        };
        assert_eq!(facts(sh), facts(oh), "{}: batch facts at {}", log.display(), o.position);
        if o.compression() == Compression::None {
            assert_eq!(s.bytes(), o.bytes(), "{}: uncompressed batch at {} differs", log.display(), o.position);
        }
        let sr: Vec<_> = s.records(&mut a).unwrap().map(Result::unwrap).collect();
        let or: Vec<_> = o.records(&mut b).unwrap().map(Result::unwrap).collect();
        assert_eq!(sr, or, "{}: records of the batch at {}", log.display(), o.position);
    }
    // The served offset index has one entry per batch after the first, whose positions are
    // lower bounds of the bytes ([`Served`]); a fetch from any entry is the tail of the whole
    // segment from that batch; a bounded fetch ends with the batch holding the end.
    let map = Served::new(rsm, md, served);
    assert!(map.positions.len() > 1 || map.whole.len() < 4096, "{}: empty offset index", log.display());
    // Tails from (at most 24, evenly spread) batches: each fetch reads to the end.
    for &p in map.positions.iter().step_by(map.positions.len().div_ceil(24).max(1)) {
        assert!(fetch_all(rsm, md, p, None) == map.expected(p, None), "{}: fetch from {p}", log.display());
    }
    if let Some(&p) = map.positions.get(1) {
        assert!(fetch_all(rsm, md, p, Some(p + 99)) == map.expected(p, Some(p + 99)), "{}: fetch {p}..={}", log.display(), p + 99);
    }
    assert!(!rsm.fetch_index(md, IndexType::Timestamp).unwrap().is_empty());
    assert_eq!(rsm.fetch_index(md, IndexType::ProducerSnapshot).unwrap(), std::fs::read(&files.producer_snapshot).unwrap());
    assert_eq!(rsm.fetch_index(md, IndexType::LeaderEpoch).unwrap(), files.leader_epoch);
    match &files.txn_index {
        Some(t) => assert_eq!(rsm.fetch_index(md, IndexType::Transaction).unwrap(), std::fs::read(t).unwrap()),
        None => assert!(rsm.fetch_index(md, IndexType::Transaction).unwrap_err().is_not_found()),
    }
}

/// Where copies into a remote warehouse put things: each outcome's data files under its table's
/// location and its sidecar under `<warehouse>/calving-sidecars`, all of them among `objects`
/// (the store's listing), every topic's metadata (JSON and Avro manifests) in the store, and no
/// file of the warehouse on the local disk (`dir`).
pub fn check_copied_to_the_store(
    warehouse: &str,
    segments: &[(SegmentMetadata, LogSegmentFiles)],
    outcomes: &[calving_rsm::CopyOutcome],
    objects: &[String],
    dir: &Path,
) {
    for ((md, _), outcome) in segments.iter().zip(outcomes) {
        let table = format!("{warehouse}/kafka/{}/", md.topic);
        for l in &outcome.data_files {
            assert!(l.starts_with(&table), "{l} is not under {table}");
        }
        // Sidecars live outside every table's location, where orphan removal does not reach.
        let sidecars = format!("{warehouse}/calving-sidecars/kafka/{}/{}/", md.topic, md.partition);
        assert!(outcome.sidecar_location.starts_with(&sidecars), "{} is not under {sidecars}", outcome.sidecar_location);
        for l in outcome.data_files.iter().chain([&outcome.sidecar_location]) {
            assert!(objects.contains(l), "{l} is not in the store: {objects:#?}");
        }
        let metadata = format!("{warehouse}/kafka/{}/metadata/", md.topic);
        assert!(objects.iter().any(|l| l.starts_with(&metadata) && l.ends_with(".metadata.json")), "{objects:#?}");
        assert!(objects.iter().any(|l| l.starts_with(&metadata) && l.ends_with(".avro")), "{objects:#?}");
    }
    let local: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| ["parquet", "sidecar", "json", "avro"].contains(&p.extension().and_then(|e| e.to_str()).unwrap_or("")))
        .collect();
    assert!(local.is_empty(), "nothing of the warehouse is a local file: {local:?}");
}

/// Rows of the topic's table, counted by an Iceberg scan (through the catalog and its FileIO).
pub fn count_rows(rsm: &RemoteStorage, topic: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use futures::TryStreamExt;
        let table = rsm.catalog().load_table(topic).await.unwrap();
        let stream = table.scan().select_all().build().unwrap().to_arrow().await.unwrap();
        let batches: Vec<_> = stream.try_collect().await.unwrap();
        batches.iter().map(|b| b.num_rows() as u64).sum()
    })
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// ---------------------------------------------------------------------------------------------
// moto's S3 server (calving-test-utils), listed with calving-storage's own client
// ---------------------------------------------------------------------------------------------

#[allow(unused_imports)]
pub use calving_test_utils::s3::{closed_port, S3Server, ACCESS_KEY, SECRET_KEY};

/// Listing a bucket through calving-storage.
pub trait ListObjects {
    /// Every object under `s3://bucket/prefix`, listed with calving-storage's own client straight
    /// from this server.
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String>;
}

impl ListObjects for S3Server {
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let p: HashMap<String, String> = Self::s3_props(&self.endpoint).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let config = StorageConfig::new(&format!("s3://{bucket}/{prefix}"), &p).expect("S3 config");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let storage = ObjectStorage::new(config).unwrap();
            let mut out: Vec<String> = storage.list(storage.warehouse()).await.unwrap().into_iter().map(|o| o.location).collect();
            out.sort();
            out
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Apache Iceberg's REST catalog fixture
// ---------------------------------------------------------------------------------------------

/// Apache Iceberg's REST catalog fixture 1.10.1 (rust/table/tests/rest-fixture: JdbcCatalog on
/// SQLite behind it) on a free 127.0.0.1 port, killed when dropped. Its table metadata goes to
/// the S3 server through Iceberg's own S3FileIO (iceberg-aws + AWS SDK v2 bundle), so the
/// catalog server and Calving share one bucket as they would in production.
pub struct RestFixture {
    child: Child,
    pub port: u16,
    pub uri: String,
    pub log: PathBuf,
}

impl RestFixture {
    /// `warehouse`: the server's warehouse, e.g. `s3://calving/wh`, on `s3`.
    pub fn start(dir: &Path, s3: &S3Server, warehouse: &str) -> RestFixture {
        let script = repo_root().join("rust/table/tests/rest-fixture/resolve-rest-fixture.sh");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); run tests/install-deps.sh", script.display()));
        assert!(
            out.status.success(),
            "{} failed (the REST fixture comes from Maven Central; run tests/install-deps.sh):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let classpath = String::from_utf8(out.stdout).unwrap().lines().last().unwrap_or_default().to_string();
        let libs = classpath
            .split(':')
            .find_map(|p| p.strip_suffix("/*"))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no libs/* in the fixture classpath {classpath:?}; run tests/install-deps.sh"));
        for jar in ["iceberg-aws-1.10.1.jar", "iceberg-aws-bundle-1.10.1.jar"] {
            assert!(
                libs.join(jar).is_file(),
                "{} lacks {jar} (S3FileIO for the REST fixture, from rust/table/tests/rest-fixture/pom.xml): run tests/install-deps.sh",
                libs.display()
            );
        }
        let log = dir.join("rest-fixture.log");
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg("org.apache.iceberg.rest.CalvingRestFixture")
            .env("CATALOG_CATALOG__IMPL", "org.apache.iceberg.jdbc.JdbcCatalog")
            .env("CATALOG_URI", format!("jdbc:sqlite:{}", dir.join("rest-catalog.db").display()))
            .env("CATALOG_WAREHOUSE", warehouse)
            // RCKUtils.environmentCatalogConfig: CATALOG_ dropped, `__` -> `-`, `_` -> `.`.
            .env("CATALOG_IO__IMPL", "org.apache.iceberg.aws.s3.S3FileIO")
            .env("CATALOG_S3_ENDPOINT", &s3.endpoint)
            .env("CATALOG_S3_PATH__STYLE__ACCESS", "true")
            .env("CATALOG_S3_ACCESS__KEY__ID", ACCESS_KEY)
            .env("CATALOG_S3_SECRET__ACCESS__KEY", SECRET_KEY)
            .env("CATALOG_CLIENT_REGION", "us-east-1")
            .env("CATALOG_REST_PORT", "0")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java ({e}): install a JDK 17, then run tests/install-deps.sh"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("CALVING_REST_FIXTURE_PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>().unwrap());
                }
            }
        });
        let mut fixture = RestFixture { child, port: 0, uri: String::new(), log };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(port) => {
                fixture.port = port;
                fixture.uri = format!("http://127.0.0.1:{port}");
            }
            Err(e) => panic!(
                "the REST fixture {} (java -cp {classpath} org.apache.iceberg.rest.CalvingRestFixture; run tests/install-deps.sh if jars are missing); its log:\n{}",
                match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => "did not start within 90 s",
                    std::sync::mpsc::RecvTimeoutError::Disconnected => "exited before it listened",
                },
                fixture.log_text()
            ),
        }
        fixture
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RestFixture {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the fixture exits on EOF ...
        let _ = self.child.kill(); // ... and is killed in any case
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy that cuts chosen requests
// ---------------------------------------------------------------------------------------------

/// A loopback HTTP/1.1 proxy in front of `127.0.0.1:<upstream>`. It forwards every request as
/// is, except, while cutting is on, a request whose request line (`METHOD /path HTTP/1.1`)
/// matches the rule: that connection is closed after the whole request was received and before
/// anything reaches the server, as when a server dies or the network drops mid-operation (the
/// client cannot know whether the request was applied). Responses are piped through untouched.
pub struct CutProxy {
    pub port: u16,
    pub endpoint: String,
    cutting: Arc<AtomicBool>,
    /// Forward matching requests, then drop the connection before the answer comes back.
    losing: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(upstream: u16, rule: fn(&str) -> bool) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutting = Arc::new(AtomicBool::new(false));
        let losing = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, l, n, s) = (cutting.clone(), losing.clone(), cut.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (c, l, n) = (c.clone(), l.clone(), n.clone());
                std::thread::spawn(move || {
                    let _ = proxy_connection(client, upstream, rule, &c, &l, &n);
                });
            }
        });
        CutProxy { port, endpoint: format!("http://127.0.0.1:{port}"), cutting, losing, cut, stop }
    }

    /// While on, a matching request reaches the server (and is applied) but its answer never
    /// reaches the client: the connection to the client is dropped (counted in `cut_count`).
    pub fn set_losing_answers(&self, on: bool) {
        self.losing.store(on, Ordering::SeqCst);
    }

    pub fn set_cutting(&self, on: bool) {
        self.cutting.store(on, Ordering::SeqCst);
    }

    /// Requests cut so far.
    pub fn cut_count(&self) -> usize {
        self.cut.lock().unwrap().len()
    }

    /// The request lines of the requests cut so far.
    pub fn cut_requests(&self) -> Vec<String> {
        self.cut.lock().unwrap().clone()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

fn proxy_connection(
    client: TcpStream,
    upstream: u16,
    rule: fn(&str) -> bool,
    cutting: &AtomicBool,
    losing: &AtomicBool,
    cut: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream))?;
    // Responses: piped as they come, unless an answer is to be lost.
    let lose_next = Arc::new(AtomicBool::new(false));
    let (mut from_server, mut to_client) = (server.try_clone()?, client.try_clone()?);
    let lose = lose_next.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if lose.load(Ordering::SeqCst) {
                break;
            }
            if to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
    // Requests: one at a time (head, then a Content-Length body), so each can be judged.
    let mut reader = BufReader::new(client.try_clone()?);
    let mut to_server = server.try_clone()?;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                let _ = server.shutdown(Shutdown::Write);
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let request_line = text.lines().next().unwrap_or_default().to_string();
        let header = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            // Not judged: pass the rest of the connection through.
            to_server.write_all(&head)?;
            std::io::copy(&mut reader, &mut to_server)?;
            return Ok(());
        }
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        if cutting.load(Ordering::SeqCst) && rule(&request_line) {
            cut.lock().unwrap().push(request_line);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return Ok(());
        }
        if losing.load(Ordering::SeqCst) && rule(&request_line) {
            cut.lock().unwrap().push(request_line);
            lose_next.store(true, Ordering::SeqCst);
            to_server.write_all(&head)?;
            to_server.write_all(&body)?;
            // The server applies the request and answers into the void; the client sees the
            // connection end without an answer.
            std::thread::sleep(Duration::from_millis(1500));
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        to_server.write_all(&head)?;
        to_server.write_all(&body)?;
    }
}

// ---------------------------------------------------------------------------------------------
// A large segment
// ---------------------------------------------------------------------------------------------

/// A segment of at least `target_bytes` at offset 0 in `dir`, uncompressed, of records with
/// 4 KiB random values (incompressible, so the Parquet data file is about as large), all on one
/// day (one data file), with empty side files. For uploads that span several multipart parts.
pub fn large_segment(dir: &Path, topic: &str, target_bytes: usize) -> (SegmentMetadata, LogSegmentFiles) {
    use calving_segment::compression::CompressionLevels;
    use calving_segment::record::record::write_record;
    use calving_segment::synth::Rng;
    use calving_segment::{Attributes, BatchEncoder, BatchHeader};
    let mut rng = Rng::new(7);
    let mut encoder = BatchEncoder::new(CompressionLevels::default());
    let (mut log, mut records, mut value) = (Vec::new(), Vec::new(), vec![0u8; 4096]);
    let (mut offset, per_batch) = (0i64, 16i32);
    let base_ts = 1_700_000_000_000i64;
    while log.len() < target_bytes {
        records.clear();
        for i in 0..per_batch {
            for chunk in value.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
            }
            let key = format!("key-{}", offset + i64::from(i));
            write_record(&mut records, 0, i64::from(i), i, Some(key.as_bytes()), Some(&value), []);
        }
        let header = BatchHeader {
            base_offset: offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: Attributes(0),
            last_offset_delta: per_batch - 1,
            base_timestamp: base_ts + offset,
            max_timestamp: base_ts + offset + i64::from(per_batch - 1),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: per_batch,
        };
        encoder.encode(&header, Compression::None, &records, &mut log).unwrap();
        offset += i64::from(per_batch);
    }
    let path = dir.join(format!("{:020}.log", 0));
    std::fs::write(&path, &log).unwrap();
    for ext in ["index", "timeindex", "snapshot"] {
        std::fs::write(path.with_extension(ext), b"").unwrap();
    }
    let md = SegmentMetadata {
        topic: topic.to_string(),
        topic_id: topic_id(topic),
        partition: 0,
        segment_id: KafkaUuid::random(),
        start_offset: 0,
        end_offset: offset - 1,
        max_timestamp_ms: base_ts + offset - 1,
        segment_size: log.len() as u64,
        leader_epochs: BTreeMap::from([(0, 0)]),
    };
    let files = LogSegmentFiles {
        log: path.clone(),
        offset_index: path.with_extension("index"),
        time_index: path.with_extension("timeindex"),
        txn_index: None,
        producer_snapshot: path.with_extension("snapshot"),
        leader_epoch: Vec::new(),
    };
    (md, files)
}
