//! `calving bench memory`: the peak memory of one segment's convert for the input shapes that
//! make a converter hold more than it streams (issue: native memory bounded whatever the input):
//!
//! - **one day**: the common case (1 KiB records, timestamps over a few minutes), the baseline;
//! - **many days**: the same records with batch timestamps 6 hours apart, cycling, so the rows of
//!   one segment fall into 64 day partitions of the table, interleaved (a backfill, a producer
//!   replaying history): one Parquet writer per day partition is open at once;
//! - **LogAppendTime, small records**: 64-byte values in batches stamped by the broker, whose
//!   records' own timestamp deltas the sidecar must keep (an exception per record).
//!
//! Each convert is then checked with `calving verify` (every record and batch fact served back
//! equal to the segment's), since bounding memory changes how rows are cut into files.
//!
//! Each convert runs in a process of its own (`calving bench convert --child`), which reports its
//! peak resident memory (`VmHWM` after a reset, minus the resident memory before the copy), so
//! one shape's memory is not hidden by another's. A broker runs up to
//! `remote.log.manager.copier.thread.pool.size` of these at once.

use std::path::Path;

use calving_segment::synth::SynthSpec;
use calving_segment::Compression;
use clap::Args;

use super::convert::{convert_in_child_with, described, LOG};
use super::{generate_with, io_err, mib, BenchError, ScratchDir};

/// The target: a convert's peak memory, whatever the input.
const TARGET_PEAK_BYTES: u64 = 256 << 20;

#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Segment size per shape, in MiB (a broker's default segment is 1 GiB).
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Directory for segments and warehouses (default: the system temp dir). Everything is
    /// removed afterwards.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Only the shapes whose name contains this text (e.g. `days`).
    #[arg(long)]
    shape: Option<String>,
}

struct Shape {
    name: &'static str,
    spec: SynthSpec,
}

fn shapes() -> Vec<Shape> {
    let lz4 = SynthSpec { compression: Compression::Lz4, ..SynthSpec::default() };
    vec![
        Shape { name: "one day, 1 KiB records", spec: lz4.clone() },
        Shape { name: "64 days interleaved, 1 KiB", spec: SynthSpec { batch_interval_ms: 6 * 3_600_000, distinct_batches: 256, ..lz4.clone() } },
        Shape {
            name: "LogAppendTime, 64 B records",
            spec: SynthSpec { value_size: 64, records_per_batch: 200, log_append_time: true, ..lz4 },
        },
    ]
}

/// `calving verify` of the converted segment against its file; an error names the difference.
fn verify(seg: &super::convert::Segment) -> Result<(), BenchError> {
    let exe = std::env::current_exe().map_err(io_err(Path::new("the calving executable")))?;
    let out = std::process::Command::new(&exe)
        .arg("verify")
        .arg("--warehouse")
        .arg(seg.dir.join("warehouse"))
        .args(["--topic", &seg.metadata.topic, "--partition", &seg.metadata.partition.to_string()])
        .args(["--topic-id", &seg.metadata.topic_id.to_string()])
        .arg(&seg.files.log)
        .output()
        .map_err(io_err(&exe))?;
    if !out.status.success() {
        return Err(BenchError::Usage(format!(
            "calving verify of {} failed: {}{}",
            seg.files.log.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

pub fn run(args: MemoryArgs) -> Result<(), BenchError> {
    let scratch = ScratchDir::new(args.dir.as_deref(), "calving-bench-memory")?;
    println!("# calving bench memory: peak memory of one segment's convert, {} MiB lz4 segments; {}", args.size_mib, super::machine());
    println!("{:<30} {:>9} {:>11} {:>6} {:>9} {:>10} {:>13}  (each verified with calving verify)", "shape", "seg MiB", "records", "days", "cpu s", "MiB/s/core", "peak MiB");
    let mut worst = 0u64;
    let chosen = shapes().into_iter().filter(|s| args.shape.as_deref().is_none_or(|f| s.name.contains(f)));
    for (i, shape) in chosen.enumerate() {
        let dir = scratch.0.join(format!("shape-{i}"));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let stats = generate_with(&dir.join(LOG), &shape.spec, args.size_mib << 20)?;
        let seg = described(&dir, shape.spec.compression, stats)?;
        let (t, peak, _) = convert_in_child_with(&seg, &[])?;
        verify(&seg)?;
        let days = ((shape.spec.distinct_batches as i64 * shape.spec.batch_interval_ms + 86_399_999) / 86_400_000).max(1);
        let peak_text = match peak {
            Some(p) => {
                worst = worst.max(p);
                format!("{:.1}", mib(p))
            }
            None => "-".into(),
        };
        println!(
            "{:<30} {:>9.0} {:>11} {:>6} {:>9.2} {:>10.1} {:>13}",
            shape.name,
            mib(stats.segment_bytes),
            stats.records,
            days,
            t.cpu,
            mib(stats.record_bytes) / t.cpu.max(1e-9),
            peak_text
        );
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    println!(
        "# worst peak {:.1} MiB: {} (target <= {} MiB per convert)",
        mib(worst),
        if worst <= TARGET_PEAK_BYTES { "PASS" } else { "MISS" },
        TARGET_PEAK_BYTES >> 20
    );
    Ok(())
}
