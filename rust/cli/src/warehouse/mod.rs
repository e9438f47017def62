//! `calving convert | cat | verify | segments`: segments into the table and back, from the
//! command line, through exactly the code the broker plugin runs (`calving-rsm`).

pub mod cat;
pub mod convert;
mod discover;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;

use calving_rsm::{RemoteStorage, RsmError};
use clap::Args;

pub use cat::CatArgs;
pub use convert::ConvertArgs;
pub use verify::VerifyArgs;

/// Errors of the warehouse commands.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Rsm(#[from] RsmError),
    #[error(transparent)]
    Read(#[from] calving_segment::ReadError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    /// `verify` found a difference.
    #[error("{0}")]
    Mismatch(String),
}

/// Where the table and its files are.
#[derive(Debug, Args, Clone)]
pub struct WarehouseArgs {
    /// The warehouse: a directory or a URL (`file:///…`, `s3://bucket/prefix`, …).
    #[arg(long, default_value = "./warehouse")]
    pub warehouse: String,
    /// More plugin properties, as the broker's `rsm.config.*` keys without the prefix
    /// (`catalog.type=rest`, `catalog.uri=…`, `s3.endpoint=…`, `namespace=…`). Repeatable.
    #[arg(long = "property", short = 'p', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

impl WarehouseArgs {
    /// The warehouse as a URL (a plain path becomes an absolute `file://` URL).
    pub fn warehouse_url(&self) -> Result<String, WarehouseError> {
        if self.warehouse.contains("://") {
            return Ok(self.warehouse.clone());
        }
        let path = PathBuf::from(&self.warehouse);
        std::fs::create_dir_all(&path).map_err(|source| WarehouseError::Io { path: path.clone(), source })?;
        let abs = path.canonicalize().map_err(|source| WarehouseError::Io { path: path.clone(), source })?;
        Ok(format!("file://{}", abs.display()))
    }

    pub fn open(&self) -> Result<RemoteStorage, WarehouseError> {
        let mut props = HashMap::new();
        for p in &self.properties {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| WarehouseError::Usage(format!("--property {p:?}: expected KEY=VALUE")))?;
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        props.insert("warehouse".into(), self.warehouse_url()?);
        Ok(RemoteStorage::open(&props)?)
    }
}

/// `calving segments`: the stored segments of a topic.
#[derive(Debug, Args)]
pub struct SegmentsArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The topic.
    #[arg(long)]
    pub topic: String,
}

pub fn segments(args: SegmentsArgs) -> Result<(), WarehouseError> {
    let rsm = args.warehouse.open()?;
    for s in rsm.list_segments(&args.topic)? {
        let md = rsm.stored_segment_metadata(&args.topic, &s)?;
        println!(
            "partition={} offsets={}..={} segment={} size={} sidecar={}",
            s.partition, s.start_offset, md.end_offset, s.segment_id, md.segment_size, s.sidecar_location
        );
    }
    Ok(())
}

/// `calving sweep`: delete what copies that never committed left in a topic's table location.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// Only objects older than this many seconds go (a copy in flight is younger). Default: a day.
    #[arg(long, default_value_t = 86_400)]
    pub older_than_secs: u64,
    /// List the orphans without deleting them.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn sweep(args: SweepArgs) -> Result<(), WarehouseError> {
    let rsm = args.warehouse.open()?;
    let report = rsm.sweep_orphans(&args.topic, std::time::Duration::from_secs(args.older_than_secs), args.dry_run)?;
    for o in &report.orphans {
        println!("{} {o}", if args.dry_run { "orphan" } else { "deleted" });
    }
    println!(
        "scanned {} objects: {} orphans ({} bytes) {}, {} unreferenced but younger than {} s kept",
        report.scanned,
        report.orphans.len(),
        report.orphan_bytes,
        if args.dry_run { "found (dry run)" } else { "deleted" },
        report.too_young,
        args.older_than_secs
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct MaintainArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// Say what would be done without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Compact data files smaller than this many bytes (0: no compaction).
    #[arg(long, default_value_t = 32 << 20)]
    pub small_file_bytes: u64,
    /// Merge the small files of one partition once this many are of one size class (a factor of 4).
    #[arg(long, default_value_t = 4)]
    pub min_input_files: usize,
    /// Size of compacted files (default: the table's write.target-file-size-bytes, else 512 MiB).
    #[arg(long)]
    pub target_file_bytes: Option<u64>,
    /// Merge the data manifests when there are at least this many (0: never).
    #[arg(long, default_value_t = 16)]
    pub min_manifests: usize,
    /// Expire snapshots older than this many seconds (default: the table's
    /// history.expire.max-snapshot-age-ms, else 5 days).
    #[arg(long)]
    pub expire_older_than_secs: Option<u64>,
    /// Keep at least this many snapshots of the current history (default: the table's
    /// history.expire.min-snapshots-to-keep, else 1).
    #[arg(long)]
    pub retain_last: Option<usize>,
    /// Keep at most this many snapshots, expiring the oldest beyond (default: the table's
    /// calving.history.expire.max-snapshots, 500 on tables Calving creates; else no bound).
    #[arg(long)]
    pub max_snapshots: Option<usize>,
}

pub fn maintain(args: MaintainArgs) -> Result<(), WarehouseError> {
    let rsm = args.warehouse.open()?;
    let options = calving_rsm::MaintenanceOptions {
        small_file_bytes: args.small_file_bytes,
        min_input_files: args.min_input_files,
        target_file_bytes: args.target_file_bytes,
        min_manifests: args.min_manifests,
        max_snapshot_age: args.expire_older_than_secs.map(std::time::Duration::from_secs),
        min_snapshots_to_keep: args.retain_last,
        max_snapshots: args.max_snapshots,
        dry_run: args.dry_run,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64());
    let report = rsm.maintain(&args.topic, &options, &progress)?;
    for f in &report.expire.deleted_files {
        println!("deleted {f}");
    }
    println!(
        "{}compacted {} files ({} bytes) into {} ({} bytes); merged {} manifests; expired {} snapshots ({} retained); deleted {} files",
        if args.dry_run { "dry run: would have " } else { "" },
        report.compact.input_files,
        report.compact.input_bytes,
        report.compact.output_files,
        report.compact.output_bytes,
        report.manifests_merged,
        report.expire.expired.len(),
        report.expire.retained,
        report.expire.deleted_files.len(),
    );
    Ok(())
}
