//! `calving bench aging`: many small segment copies into one table through the plugin's own
//! copy path (`RemoteStorage::copy_log_segment`), with the built-in maintenance every
//! `--maintain-every` copies, to show what a long-lived table costs per copy.
//!
//! Per window of `--window` copies it prints the copies' wall time (mean, p50, p99), the process
//! CPU per copy (maintenance excluded, measured apart), and the table's state after the window:
//! `metadata.json` bytes, manifests in the current snapshot, snapshots kept, live data files.
//! After the first and the last window it times what operators and Kafka do on the side: listing
//! the stored segments (`calving segments`), fetching a segment whole, and deleting one. The last
//! line compares the last window with the first (target: at most 1.3x).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use calving_rsm::{KafkaUuid, LogSegmentFiles, MaintenanceOptions, RemoteStorage, SegmentMetadata};
use calving_segment::synth::{write_segment, SynthSpec};
use calving_segment::Compression;
use clap::Args;

use super::{io_err, load, machine, process_cpu_seconds, BenchError, ScratchDir};

#[derive(Debug, Args)]
pub struct AgingArgs {
    /// Segment copies in all.
    #[arg(long, default_value_t = 10_000)]
    commits: usize,
    /// Kafka partitions the copies go round.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Size of each segment (lz4, ~1 KiB records).
    #[arg(long, default_value_t = 16)]
    segment_kib: u64,
    /// Copies per reported window.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Run the built-in maintenance every this many copies (0: never).
    #[arg(long, default_value_t = 500)]
    maintain_every: usize,
    /// Snapshots the maintenance keeps (it expires every older one).
    #[arg(long, default_value_t = 100)]
    retain_last: usize,
    /// Plugin properties (`key=value`), e.g. catalog.type=rest, catalog.uri=…, warehouse=s3://…
    /// (default: the embedded default in a scratch warehouse).
    #[arg(long = "property", value_parser = super::parse_kv)]
    properties: Vec<(String, String)>,
    /// Directory for the scratch warehouse and segments (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

struct Window {
    walls: Vec<f64>,
    cpu: f64,
}

impl Window {
    fn mean_ms(&self) -> f64 {
        self.walls.iter().sum::<f64>() / self.walls.len().max(1) as f64 * 1e3
    }
    fn pct_ms(&self, p: f64) -> f64 {
        let mut w = self.walls.clone();
        w.sort_by(f64::total_cmp);
        w.get(((w.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0) * 1e3
    }
    fn cpu_ms(&self) -> f64 {
        self.cpu / self.walls.len().max(1) as f64 * 1e3
    }
}

pub fn run(args: AgingArgs) -> Result<(), BenchError> {
    let scratch = ScratchDir::new(args.dir.as_deref(), "calving-bench-aging")?;
    let mut props: BTreeMap<String, String> = BTreeMap::from([(
        "warehouse".to_string(),
        format!("file://{}", scratch.0.join("warehouse").display()),
    )]);
    props.extend(args.properties.iter().cloned());
    std::fs::create_dir_all(scratch.0.join("warehouse")).map_err(io_err(&scratch.0))?;
    let rsm = RemoteStorage::open(&props.clone().into_iter().collect())?;
    let topic = format!("bench-aging-{}", std::process::id());
    let topic_id = KafkaUuid::random();
    println!("# calving bench aging: {} copies of ~{} KiB lz4 segments into one table, {} partitions, maintenance every {} copies (keeping {} snapshots); catalog {}",
        args.commits, args.segment_kib, args.partitions, args.maintain_every, args.retain_last,
        props.get("catalog.type").map_or("sql (embedded default)", String::as_str));
    println!("# {}", machine());
    println!("{:>7} {:>9} {:>8} {:>8} {:>10} {:>14} {:>10} {:>10} {:>11}", "copies", "mean ms", "p50 ms", "p99 ms", "cpu ms", "metadata bytes", "manifests", "snapshots", "data files");
    let spec = SynthSpec { compression: Compression::Lz4, records_per_batch: 8, ..SynthSpec::default() };
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut windows: Vec<Window> = Vec::new();
    let mut current = Window { walls: Vec::new(), cpu: 0.0 };
    let mut copied: Vec<SegmentMetadata> = Vec::new();
    let mut maintenance = (0usize, Duration::ZERO, 0.0f64);
    let mut side: Vec<(String, Duration)> = Vec::new();
    let seg_dir = scratch.0.join("segments");
    std::fs::create_dir_all(&seg_dir).map_err(io_err(&seg_dir))?;
    for i in 0..args.commits {
        let partition = (i as i32) % args.partitions.max(1);
        let base = *next_offset.get(&partition).unwrap_or(&0);
        let (md, files) = write(&seg_dir, &spec, &topic, topic_id, partition, base, args.segment_kib << 10)?;
        next_offset.insert(partition, md.end_offset + 1);
        let cpu0 = process_cpu_seconds().unwrap_or(0.0);
        let t0 = Instant::now();
        rsm.copy_log_segment(&md, &files)?;
        current.walls.push(t0.elapsed().as_secs_f64());
        current.cpu += process_cpu_seconds().unwrap_or(0.0) - cpu0;
        for f in [&files.log, &files.offset_index, &files.time_index, &files.producer_snapshot] {
            let _ = std::fs::remove_file(f);
        }
        copied.push(md);
        if args.maintain_every > 0 && (i + 1) % args.maintain_every == 0 {
            let options = MaintenanceOptions {
                small_file_bytes: 32 << 20,
                min_manifests: 8,
                max_snapshot_age: Some(Duration::ZERO),
                min_snapshots_to_keep: Some(args.retain_last),
                ..MaintenanceOptions::default()
            };
            let (cpu0, t0) = (process_cpu_seconds().unwrap_or(0.0), Instant::now());
            rsm.maintain(&topic, &options, &|_| {})?;
            maintenance.0 += 1;
            maintenance.1 += t0.elapsed();
            maintenance.2 += process_cpu_seconds().unwrap_or(0.0) - cpu0;
        }
        if (i + 1) % args.window == 0 || i + 1 == args.commits {
            let state = table_state(&rsm, &topic)?;
            println!(
                "{:>7} {:>9.1} {:>8.1} {:>8.1} {:>10.1} {:>14} {:>10} {:>10} {:>11}",
                i + 1,
                current.mean_ms(),
                current.pct_ms(0.5),
                current.pct_ms(0.99),
                current.cpu_ms(),
                state.0,
                state.1,
                state.2,
                state.3
            );
            windows.push(std::mem::replace(&mut current, Window { walls: Vec::new(), cpu: 0.0 }));
            if windows.len() == 1 || i + 1 == args.commits {
                side.extend(side_operations(&rsm, &topic, &copied, windows.len() == 1)?);
            }
        }
    }
    println!("# maintenance: {} runs, {:.2} s wall, {:.2} CPU-s in all ({:.1} ms per copy)", maintenance.0, maintenance.1.as_secs_f64(), maintenance.2, maintenance.2 * 1e3 / args.commits.max(1) as f64);
    for (what, t) in &side {
        println!("# {what}: {:.1} ms", t.as_secs_f64() * 1e3);
    }
    if let (Some(first), Some(last)) = (windows.first(), windows.last()) {
        let wall = last.mean_ms() / first.mean_ms();
        let cpu = last.cpu_ms() / first.cpu_ms();
        println!(
            "# last window / first window: wall {wall:.2}x, cpu {cpu:.2}x ({}; target <= 1.3x), {}",
            if wall <= 1.3 && cpu <= 1.3 { "PASS" } else { "MISS" },
            load()
        );
    }
    Ok(())
}

/// (metadata.json bytes, manifests of the current snapshot, snapshots, live data files).
fn table_state(rsm: &RemoteStorage, topic: &str) -> Result<(u64, usize, usize, usize), BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| BenchError::Usage(e.to_string()))?;
    rt.block_on(async {
        let table_err = |e: calving_table::Error| BenchError::Usage(e.to_string());
        let table = rsm.catalog().load_table(topic).await.map_err(table_err)?;
        let metadata_bytes = match table.metadata_location() {
            Some(l) => rsm.storage().head(l).await.map(|m| m.size).unwrap_or(0),
            None => 0,
        };
        let manifests = match table.metadata().current_snapshot() {
            Some(s) => table.manifest_list_reader(s).load().await.map_err(|e| BenchError::Usage(e.to_string()))?.entries().len(),
            None => 0,
        };
        let files = calving_table::live_files(&table).await.map_err(table_err)?.len();
        Ok((metadata_bytes, manifests, table.metadata().snapshots().count(), files))
    })
}

/// Times listing the stored segments, fetching a segment whole (an early one and the latest) and
/// deleting one (the oldest left, as Kafka's retention does).
fn side_operations(rsm: &RemoteStorage, topic: &str, copied: &[SegmentMetadata], first: bool) -> Result<Vec<(String, Duration)>, BenchError> {
    let when = if first { "after the first window" } else { "at the end" };
    let mut out = Vec::new();
    let t0 = Instant::now();
    let listed = rsm.list_segments(topic)?.len();
    out.push((format!("list {listed} stored segments {when}"), t0.elapsed()));
    for (what, md) in [("an early", &copied[2]), ("the latest", copied.last().expect("copied"))] {
        let t0 = Instant::now();
        let mut s = rsm.fetch_log_segment(md, 0, None)?;
        while s.next_chunk()?.is_some() {}
        out.push((format!("fetch {what} segment whole {when}"), t0.elapsed()));
    }
    let t0 = Instant::now();
    rsm.delete_log_segment(&copied[if first { 0 } else { 1 }])?;
    out.push((format!("delete a segment {when}"), t0.elapsed()));
    Ok(out)
}

/// Writes one small segment of `partition` from `base` (with empty side files), its metadata.
fn write(
    dir: &Path,
    spec: &SynthSpec,
    topic: &str,
    topic_id: KafkaUuid,
    partition: i32,
    base: i64,
    bytes: u64,
) -> Result<(SegmentMetadata, LogSegmentFiles), BenchError> {
    let log = dir.join(format!("{partition}-{base:020}.log"));
    let mut w = BufWriter::new(File::create(&log).map_err(io_err(&log))?);
    let stats = write_segment(spec, base, bytes, &mut w).map_err(io_err(&log))?;
    w.into_inner().map_err(|e| io_err(&log)(e.into_error()))?;
    let empty = |ext: &str| -> Result<std::path::PathBuf, BenchError> {
        let p = log.with_extension(ext);
        std::fs::write(&p, b"").map_err(io_err(&p))?;
        Ok(p)
    };
    let md = SegmentMetadata {
        topic: topic.to_string(),
        topic_id,
        partition,
        segment_id: KafkaUuid::random(),
        start_offset: base,
        end_offset: base + stats.records as i64 - 1,
        max_timestamp_ms: 0,
        segment_size: stats.segment_bytes,
        leader_epochs: BTreeMap::from([(0, 0)]),
    };
    let files = LogSegmentFiles {
        log: log.clone(),
        offset_index: empty("index")?,
        time_index: empty("timeindex")?,
        txn_index: None,
        producer_snapshot: empty("snapshot")?,
        leader_epoch: b"0\n1\n0 0\n".to_vec(),
    };
    Ok((md, files))
}
