//! `calving bench commit`: the commit path at cluster scale. `--writers` OS processes, each
//! standing for one broker (its own catalog client, its own `--copiers` copy threads like Kafka's
//! `remote.log.manager.copier.thread.pool.size`), commit segments of `--partitions` partitions of
//! one table at a total target rate of `--rate` segments per second for `--duration` seconds.
//!
//! Each writer owns the partitions `p % writers == index` (one leader per partition) and first
//! writes its segments' data files (small Parquet files of `--records` rows with the segment's
//! offsets, written before the clock starts: the conversion is `calving bench convert`'s
//! business). Then segments become ready at evenly spaced times, wait for a free copier, and go
//! through the same commit path as the broker's copies (`CalvingCatalog::append`: group commit
//! per table, ledger check, commit driver with rebase and jittered backoff). The latency of a
//! segment is from ready to durably committed; past saturation the queue grows, and so does the
//! latency (nothing may fail).
//!
//! The parent also runs the built-in maintenance every `--maintain-every-secs` (manifest merge,
//! expiry down to 100 snapshots, no compaction), as one broker's background task would: without
//! it every commit's snapshot stays in `metadata.json` and each commit grows slower.
//!
//! The parent prints a progress line per second and, last, one JSON line: `writers`,
//! `partitions`, `copiers`, `target_rate`, `segments`, `segments_per_s`, `commits_per_s`,
//! `segments_per_commit`, `conflicts_per_commit`, `carried_segments` (segments committed by
//! another writer's commit, `calving_table::carry`), `p50_ms`, `p99_ms`, `max_ms` (every
//! segment), `steady_p50_ms` and `steady_p99_ms` (segments ready after the first `--warmup-secs`:
//! the sustained rate without the first wave, in which every writer starts at once against a
//! catalog and store that have served nothing yet), `failed_copies`, `metadata_bytes` (the final
//! `metadata.json`), and a check of the result: the table's ledger holds every committed
//! segment's offsets once, and its row count is what was committed.
//!
//! Children are this same binary with `--writer-index` (hidden); they talk to the parent over
//! stdin (`go`) and stdout (`ready`, `progress …`, `done {json}`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray};
use calving_table::{CalvingCatalog, CatalogConfig, SegmentCommit};
use clap::Args;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use serde_json::json;

use super::{machine, BenchError, ScratchDir};

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Writer processes (brokers), each with its own catalog client.
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// Copy threads per writer (Kafka's remote.log.manager.copier.thread.pool.size default: 10).
    #[arg(long, default_value_t = 10)]
    copiers: usize,
    /// Partitions of the topic (each writer leads `partitions / writers` of them).
    #[arg(long, default_value_t = 120)]
    partitions: i32,
    /// Target segments per second, all writers together.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of segments becoming ready.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Rows per segment's data file.
    #[arg(long, default_value_t = 20)]
    records: usize,
    /// Segments ready in the first this many seconds are left out of `steady_p50_ms` and
    /// `steady_p99_ms` (never out of `p50_ms`, `p99_ms`, `max_ms`).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Run the built-in maintenance (manifest merge, expiry keeping 100 snapshots; no
    /// compaction) every this many seconds in the parent, as a broker's background task would
    /// (0: never).
    #[arg(long, default_value_t = 10)]
    maintain_every_secs: u64,
    /// The warehouse: a directory, or a URI (s3://…); default: a scratch directory.
    #[arg(long)]
    warehouse: Option<String>,
    /// The catalog: `http(s)://…` for a REST catalog, `postgresql://…` or `sqlite:…` for the SQL
    /// catalog; default: the embedded SQLite catalog in the warehouse.
    #[arg(long)]
    catalog_uri: Option<String>,
    /// More plugin properties (`key=value`), e.g. s3.endpoint=…
    #[arg(long = "property", value_parser = super::parse_kv)]
    properties: Vec<(String, String)>,
    /// (Internal) run as this writer of a parent's benchmark.
    #[arg(long, hide = true)]
    writer_index: Option<usize>,
    /// (Internal) the parent's table.
    #[arg(long, hide = true)]
    topic: Option<String>,
}

pub fn run(args: CommitArgs) -> Result<(), BenchError> {
    match args.writer_index {
        Some(index) => writer(&args, index),
        None => parent(args),
    }
}

fn usage(e: impl std::fmt::Display) -> BenchError {
    BenchError::Usage(e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(usage)
}

/// The plugin properties of the catalog and warehouse the arguments name.
fn properties(args: &CommitArgs, scratch: Option<&ScratchDir>) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    let warehouse = match (&args.warehouse, scratch) {
        (Some(w), _) if w.contains("://") => w.clone(),
        (Some(w), _) => format!("file://{}", std::path::absolute(w).unwrap_or_else(|_| w.into()).display()),
        (None, Some(s)) => format!("file://{}", s.0.join("warehouse").display()),
        (None, None) => unreachable!("the parent passes --warehouse to its writers"),
    };
    props.insert("warehouse".to_string(), warehouse);
    if let Some(uri) = &args.catalog_uri {
        if uri.starts_with("http://") || uri.starts_with("https://") {
            props.insert("catalog.type".to_string(), "rest".to_string());
        }
        props.insert("catalog.uri".to_string(), uri.clone());
    }
    props.extend(args.properties.iter().cloned());
    props
}

async fn connect(props: &BTreeMap<String, String>) -> Result<CalvingCatalog, BenchError> {
    let config = CatalogConfig::from_props(props.iter()).map_err(usage)?;
    CalvingCatalog::connect(config).await.map_err(usage)
}

/// What a writer reports when it is done.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WriterReport {
    latencies_ms: Vec<f64>,
    /// When each segment of `latencies_ms` became ready, seconds after the start.
    #[serde(default)]
    ready_s: Vec<f64>,
    snapshots: Vec<i64>,
    failed: u64,
    conflicts: u64,
    commits: u64,
    /// Other writers' segments this writer's commits carried.
    #[serde(default)]
    carried: u64,
    elapsed_s: f64,
    errors: Vec<String>,
}

fn parent(args: CommitArgs) -> Result<(), BenchError> {
    if args.writers == 0 || args.copiers == 0 || args.partitions <= 0 || args.rate <= 0.0 || args.duration <= 0.0 {
        return Err(usage("--writers, --copiers, --partitions, --rate and --duration must be positive"));
    }
    let scratch = match &args.warehouse {
        Some(_) => None,
        None => Some(ScratchDir::new(None, "calving-bench-commit")?),
    };
    let props = properties(&args, scratch.as_ref());
    if let Some(s) = &scratch {
        std::fs::create_dir_all(s.0.join("warehouse")).map_err(super::io_err(&s.0))?;
    }
    let topic = format!("bench-commit-{}", std::process::id());
    let rt = runtime()?;
    let catalog = rt.block_on(connect(&props))?;
    rt.block_on(catalog.ensure_table(&topic)).map_err(usage)?;
    let catalog_name = if props.get("catalog.type").is_some_and(|t| t == "rest") {
        "rest"
    } else if props.get("catalog.uri").is_some_and(|u| u.starts_with("postgres")) {
        "sql (postgresql)"
    } else {
        "sql (sqlite)"
    };
    println!(
        "# calving bench commit: {} writers x {} copiers, {} partitions, {} segments/s for {} s ({} rows each), catalog {catalog_name}",
        args.writers, args.copiers, args.partitions, args.rate, args.duration, args.records
    );
    println!("# {}", machine());

    // Start the writers; each writes its files, says `ready`, and waits for `go`.
    let exe = std::env::current_exe().map_err(usage)?;
    let mut children: Vec<Child> = Vec::new();
    for index in 0..args.writers {
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "commit"])
            .args(["--writers", &args.writers.to_string(), "--copiers", &args.copiers.to_string()])
            .args(["--partitions", &args.partitions.to_string(), "--rate", &args.rate.to_string()])
            .args(["--duration", &args.duration.to_string(), "--records", &args.records.to_string()])
            .args(["--warehouse", &props["warehouse"], "--writer-index", &index.to_string(), "--topic", &topic]);
        for (k, v) in &props {
            if k != "warehouse" {
                cmd.arg("--property").arg(format!("{k}={v}"));
            }
        }
        children.push(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().map_err(usage)?);
    }
    let committed = Arc::new((0..args.writers).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
    let failed = Arc::new((0..args.writers).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
    let reports: Arc<Mutex<Vec<Option<WriterReport>>>> = Arc::new(Mutex::new((0..args.writers).map(|_| None).collect()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<usize>();
    let mut readers = Vec::new();
    for (index, child) in children.iter_mut().enumerate() {
        let stdout = child.stdout.take().expect("piped");
        let (committed, failed, reports, ready_tx) = (committed.clone(), failed.clone(), reports.clone(), ready_tx.clone());
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = ready_tx.send(index);
                } else if let Some(rest) = line.strip_prefix("progress ") {
                    let mut it = rest.split(' ').filter_map(|v| v.parse::<u64>().ok());
                    committed[index].store(it.next().unwrap_or(0), Ordering::Relaxed);
                    failed[index].store(it.next().unwrap_or(0), Ordering::Relaxed);
                } else if let Some(json) = line.strip_prefix("done ") {
                    reports.lock().expect("reports")[index] = serde_json::from_str(json).ok();
                }
            }
        }));
    }
    drop(ready_tx);
    let prepare = Instant::now();
    for _ in 0..args.writers {
        ready_rx.recv_timeout(Duration::from_secs(600)).map_err(|_| usage("a writer did not get ready (see its errors above)"))?;
    }
    println!("# writers ready ({:.1} s writing data files); go", prepare.elapsed().as_secs_f64());
    for child in &mut children {
        let mut stdin = child.stdin.take().expect("piped");
        writeln!(stdin, "go").map_err(usage)?;
    }
    let started = Instant::now();
    let total = (args.rate * args.duration).round() as u64;
    let done_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let maintainer = (args.maintain_every_secs > 0).then(|| {
        let (props, topic, done, every) = (props.clone(), topic.clone(), done_flag.clone(), args.maintain_every_secs);
        std::thread::spawn(move || maintain_loop(&props, &topic, &done, Duration::from_secs(every)))
    });
    let mut last = 0u64;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let done: u64 = committed.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let bad: u64 = failed.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        println!(
            "{:>5.0} s  committed {done:>7} / {total}  ({:>6.1}/s this second)  failed {bad}",
            started.elapsed().as_secs_f64(),
            done - last
        );
        last = done;
        if done + bad >= total || children.iter_mut().all(|c| matches!(c.try_wait(), Ok(Some(_)))) {
            break;
        }
    }
    for (index, mut child) in children.into_iter().enumerate() {
        let status = child.wait().map_err(usage)?;
        if !status.success() {
            eprintln!("# writer {index} exited with {status}");
        }
    }
    done_flag.store(true, Ordering::Relaxed);
    let maintenance = maintainer.map(|m| m.join().unwrap_or_default()).unwrap_or_default();
    if args.maintain_every_secs > 0 {
        println!("# maintenance: {} runs, {} failed ({} conflicts with the writers' commits)", maintenance.0, maintenance.1, maintenance.2);
    }
    for r in readers {
        let _ = r.join();
    }
    let reports: Vec<WriterReport> = std::mem::take(&mut *reports.lock().expect("reports"))
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| usage(format!("writer {i} gave no report"))))
        .collect::<Result<_, _>>()?;

    let mut latencies: Vec<f64> = reports.iter().flat_map(|r| r.latencies_ms.iter().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    let mut steady: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.latencies_ms.iter().zip(&r.ready_s))
        .filter(|&(_, &ready)| ready >= args.warmup_secs)
        .map(|(&l, _)| l)
        .collect();
    steady.sort_by(f64::total_cmp);
    let segments = latencies.len() as u64;
    let snapshots: BTreeSet<i64> = reports.iter().flat_map(|r| r.snapshots.iter().copied()).collect();
    let commits = snapshots.len() as u64;
    let conflicts: u64 = reports.iter().map(|r| r.conflicts).sum();
    let carried: u64 = reports.iter().map(|r| r.carried).sum();
    let failed_copies: u64 = reports.iter().map(|r| r.failed).sum();
    let elapsed = reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
    for e in reports.iter().flat_map(|r| r.errors.iter()).take(5) {
        eprintln!("# a failed copy: {e}");
    }

    // The result, checked: every committed segment once in the ledger, the rows all there.
    let (metadata_bytes, check) = rt.block_on(async {
        let table = catalog.load_table(&topic).await.map_err(usage)?;
        let bytes = match table.metadata_location() {
            Some(l) => table.file_io().new_input(l).map_err(usage)?.metadata().await.map_err(usage)?.size,
            None => 0,
        };
        let (ledger, _) = calving_table::ledger::load(&table).await.map_err(usage)?;
        let rows: u64 = table
            .metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-records"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let held: u64 = (0..args.partitions)
            .map(|p| ledger.ranges(&topic_id(&topic), p).iter().map(|&(s, e)| (e - s + 1) as u64).sum::<u64>())
            .sum();
        let expected = segments * args.records as u64;
        let check = if held == expected && rows == expected {
            format!("ok: the ledger holds {held} offsets and the table {rows} rows, as committed")
        } else {
            format!("MISMATCH: committed {expected} rows; the ledger holds {held} offsets, the table {rows} rows")
        };
        Ok::<_, BenchError>((bytes, check))
    })?;
    println!("# check: {check}");
    let report = json!({
        "writers": args.writers,
        "partitions": args.partitions,
        "copiers": args.copiers,
        "catalog": catalog_name,
        "target_rate": args.rate,
        "duration_s": args.duration,
        "segments": segments,
        "elapsed_s": round(elapsed),
        "segments_per_s": round(segments as f64 / elapsed.max(1e-9)),
        "commits_per_s": round(commits as f64 / elapsed.max(1e-9)),
        "segments_per_commit": round(segments as f64 / commits.max(1) as f64),
        "conflicts_per_commit": round(conflicts as f64 / commits.max(1) as f64),
        "carried_segments": carried,
        "p50_ms": round(percentile(&latencies, 0.5)),
        "p99_ms": round(percentile(&latencies, 0.99)),
        "max_ms": round(latencies.last().copied().unwrap_or(0.0)),
        "warmup_s": args.warmup_secs,
        "steady_p50_ms": round(percentile(&steady, 0.5)),
        "steady_p99_ms": round(percentile(&steady, 0.99)),
        "failed_copies": failed_copies,
        "metadata_bytes": metadata_bytes,
        "check_ok": check.starts_with("ok"),
    });
    println!("{report}");
    if !check.starts_with("ok") {
        return Err(usage(check));
    }
    Ok(())
}

/// The `p` quantile (nearest rank) of `sorted`; 0 when it is empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The benchmark topic's Kafka topic id (any fixed 22-character id: the ledger's key).
fn topic_id(topic: &str) -> String {
    let h = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}bench0").chars().take(22).collect()
}

/// The built-in maintenance every `every` until `done`: (runs, failed runs, conflicts).
fn maintain_loop(
    props: &BTreeMap<String, String>,
    topic: &str,
    done: &std::sync::atomic::AtomicBool,
    every: Duration,
) -> (u64, u64, u64) {
    // Its own runtime and catalog client (a broker's maintenance task shares the broker's; here
    // the parent's runtime is another thread's).
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return (0, 0, 0);
    };
    let Ok(catalog) = rt.block_on(connect(props)) else {
        return (0, 1, 0);
    };
    let catalog = &catalog;
    let options = calving_table::maintain::MaintenanceOptions {
        small_file_bytes: 0,
        min_manifests: 8,
        max_snapshot_age: Some(Duration::ZERO),
        min_snapshots_to_keep: Some(100),
        ..Default::default()
    };
    let (mut runs, mut failed) = (0, 0);
    let conflicts_before = catalog.commit_stats().conflicts;
    let mut next = Instant::now() + every;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        runs += 1;
        if let Err(e) = rt.block_on(calving_table::maintain::maintain(catalog, topic, &options, &|_| {})) {
            failed += 1;
            eprintln!("# maintenance failed: {e}");
        }
    }
    (runs, failed, catalog.commit_stats().conflicts - conflicts_before)
}

/// One segment a writer commits.
struct Planned {
    partition: i32,
    start: i64,
    file: iceberg::spec::DataFile,
}

fn writer(args: &CommitArgs, index: usize) -> Result<(), BenchError> {
    let topic = args.topic.clone().ok_or_else(|| usage("--writer-index needs --topic"))?;
    let props = properties(args, None);
    let rt = runtime()?;
    let catalog = rt.block_on(connect(&props))?;
    let table = rt.block_on(catalog.load_table(&topic)).map_err(usage)?;
    let owned: Vec<i32> = (0..args.partitions).filter(|p| *p as usize % args.writers == index).collect();
    let rate = args.rate / args.writers as f64;
    let n = if owned.is_empty() { 0 } else { (rate * args.duration).round() as usize };
    let tid = topic_id(&topic);

    // The data files, written before the clock starts.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut specs = Vec::with_capacity(n);
    for k in 0..n {
        let partition = owned[k % owned.len()];
        let start = *next.entry(partition).or_insert(0);
        next.insert(partition, start + args.records as i64);
        specs.push((partition, start));
    }
    let planned: Vec<Planned> = rt.block_on(async {
        futures::stream::iter(specs)
            .map(|(partition, start)| {
                let (table, tid) = (&table, &tid);
                async move {
                    let file = write_data_file(table, tid, partition, start, args.records).await?;
                    Ok::<_, BenchError>(Planned { partition, start, file })
                }
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
    })?;
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(usage)?;

    // Segments become ready evenly spaced; `copiers` tasks take them in order.
    let started = Instant::now();
    let interval = if rate > 0.0 { 1.0 / rate } else { 0.0 };
    let queue = Arc::new(Mutex::new(planned.into_iter().enumerate().collect::<std::collections::VecDeque<_>>()));
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let report = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..args.copiers {
            let (queue, catalog, topic, tid) = (queue.clone(), catalog.clone(), topic.clone(), tid.clone());
            let (committed, failed) = (committed.clone(), failed.clone());
            let records = args.records as i64;
            tasks.push(tokio::spawn(async move {
                let mut out = WriterReport::default();
                loop {
                    let Some((k, seg)) = queue.lock().expect("queue").pop_front() else { break };
                    let ready = started + Duration::from_secs_f64(k as f64 * interval);
                    tokio::time::sleep_until(ready.into()).await;
                    let commit = SegmentCommit {
                        topic_id: tid.clone(),
                        partition: seg.partition,
                        segment_id: uuid_like(k, index),
                        start_offset: seg.start,
                        end_offset: seg.start + records - 1,
                        ..SegmentCommit::default()
                    };
                    match catalog.append(&topic, vec![seg.file], commit).await {
                        Ok(outcome) => {
                            out.latencies_ms.push(ready.elapsed().as_secs_f64() * 1e3);
                            out.ready_s.push(k as f64 * interval);
                            out.snapshots.push(outcome.snapshot_id());
                            committed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            out.failed += 1;
                            out.errors.push(e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                out
            }));
        }
        let progress = {
            let (committed, failed) = (committed.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    println!("progress {} {}", committed.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
                }
            })
        };
        let mut all = WriterReport::default();
        for t in tasks {
            let r = t.await.map_err(usage)?;
            all.latencies_ms.extend(r.latencies_ms);
            all.ready_s.extend(r.ready_s);
            all.snapshots.extend(r.snapshots);
            all.failed += r.failed;
            all.errors.extend(r.errors);
        }
        progress.abort();
        Ok::<_, BenchError>(all)
    });
    let mut report = report?;
    report.elapsed_s = started.elapsed().as_secs_f64();
    let stats = catalog.commit_stats();
    report.conflicts = stats.conflicts;
    report.commits = stats.commits;
    report.carried = stats.carried;
    report.snapshots.sort_unstable();
    report.snapshots.dedup();
    println!("progress {} {}", committed.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("done {}", serde_json::to_string(&report).map_err(usage)?);
    Ok(())
}

/// A segment id unique in the run (Kafka's are random UUIDs; any unique string serves).
fn uuid_like(k: usize, writer: usize) -> String {
    format!("bench-w{writer}-s{k}")
}

/// Writes one segment's data file: `records` rows of `partition` from offset `start`, ~100-byte
/// values, the table's schema.
async fn write_data_file(
    table: &iceberg::table::Table,
    topic_id: &str,
    partition: i32,
    start: i64,
    records: usize,
) -> Result<iceberg::spec::DataFile, BenchError> {
    let schema = std::sync::Arc::new(iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()).map_err(usage)?);
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let mut columns: Vec<ArrayRef> = Vec::new();
    for field in schema.fields() {
        let column: ArrayRef = match (field.name().as_str(), field.data_type()) {
            ("kafka", arrow_schema::DataType::Struct(fields)) => {
                let children: Vec<ArrayRef> = fields
                    .iter()
                    .map(|f| -> ArrayRef {
                        match f.name().as_str() {
                            "topic_id" => Arc::new(StringArray::from(vec![topic_id; records])),
                            "partition" => Arc::new(Int32Array::from(vec![partition; records])),
                            "offset" => Arc::new(Int64Array::from_iter_values(start..start + records as i64)),
                            "timestamp" => Arc::new(
                                TimestampMicrosecondArray::from_iter_values((0..records as i64).map(|i| now_us + i)).with_timezone("+00:00"),
                            ),
                            _ => arrow_array::new_null_array(f.data_type(), records),
                        }
                    })
                    .collect();
                Arc::new(StructArray::try_new(fields.clone(), children, None).map_err(usage)?)
            }
            ("value", arrow_schema::DataType::LargeBinary) => {
                Arc::new(arrow_array::LargeBinaryArray::from_iter_values((0..records).map(|i| format!("{{\"n\":{i},\"pad\":\"{:080}\"}}", start))))
            }
            ("value", arrow_schema::DataType::Binary) => {
                Arc::new(BinaryArray::from_iter_values((0..records).map(|i| format!("{{\"n\":{i},\"pad\":\"{:080}\"}}", start))))
            }
            _ => arrow_array::new_null_array(field.data_type(), records),
        };
        columns.push(column);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(usage)?;
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None)?;
    w.write(&batch)?;
    let metadata = w.close()?;
    let partition_value = calving_table::day_partition_value(now_us);
    let location = calving_table::new_data_file_location(table, &partition_value);
    let size = buf.len() as u64;
    table.file_io().new_output(&location).map_err(usage)?.write(buf.into()).await.map_err(usage)?;
    calving_table::data_file_from_parquet(table, &location, size, &metadata, partition_value).map_err(usage)
}
