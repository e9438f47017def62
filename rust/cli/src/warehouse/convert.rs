//! `calving convert`: segment files, or whole partition directories of a broker's log dir, into
//! the topic's table, exactly as the broker plugin's `copyLogSegmentData` does, with progress.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::discover::{discover, SegmentIdentityArgs};
use super::{WarehouseArgs, WarehouseError};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub identity: SegmentIdentityArgs,
    /// Partition directories (`<topic>-<partition>`) or `.log` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: ConvertArgs) -> Result<(), WarehouseError> {
    let segments = discover(&args.paths, &args.identity)?;
    if segments.is_empty() {
        return Err(WarehouseError::Usage("no rolled segments found".into()));
    }
    let rsm = args.warehouse.open()?;
    let total: u64 = segments.iter().map(|s| s.metadata.segment_size).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let (mut records, mut files, mut reused) = (0u64, 0usize, 0u64);
    for s in &segments {
        bar.set_message(format!("{}-{} @{}", s.metadata.topic, s.metadata.partition, s.metadata.start_offset));
        let outcome = rsm.copy_log_segment(&s.metadata, &s.files)?;
        records += outcome.stats.records;
        files += outcome.data_files.len();
        reused += outcome.reused_rows;
        bar.inc(s.metadata.segment_size);
        bar.println(format!(
            "{}: {} records, {} batches, {} data files{}, snapshot {}",
            s.files.log.display(),
            outcome.stats.records,
            outcome.stats.batches,
            outcome.data_files.len(),
            if outcome.reused_rows > 0 { format!(" ({} rows already in the table)", outcome.reused_rows) } else { String::new() },
            outcome.snapshot_id.map_or("none (nothing new)".to_string(), |s| s.to_string()),
        ));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "converted {} segments ({:.1} MiB) in {secs:.1} s: {records} records, {files} data files, {reused} rows already in the table",
        segments.len(),
        total as f64 / (1 << 20) as f64
    );
    Ok(())
}
