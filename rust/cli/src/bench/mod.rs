//! `calving bench …`: benchmarks on generated segments (`calving_segment::synth`: ~1 KiB
//! JSON-like values, 16-byte keys, 2 headers), each figure printed as a ratio against a baseline
//! measured in the same run, so a loaded or slow machine shows up in both.
//!
//! - `parse`: the segment codec alone (CRC-32C, decompression, records) against a plain read.
//! - `convert`: `copyLogSegmentData` into a fresh embedded-default warehouse against a plain copy
//!   and a bare Parquet encode of the same rows, then fetches served back from the table against
//!   plain reads of the original file.
//! - `typed`: the same Avro segment converted as raw bytes and as Avro columns (schema mode,
//!   with a real Schema Registry), and where the Avro time goes.
//! - `aging`: thousands of small copies into one table with the built-in maintenance on: the
//!   last copies against the first (a table that ages must not get slower), metadata bounded.
//! - `commit`: the commit path at cluster scale: writer processes (brokers) committing segments
//!   of one table at a target rate: segments/s, segments per commit, conflicts, latency.
//! - `memory`: a convert's peak memory for the input shapes that make it hold more than it
//!   streams (many day partitions, LogAppendTime small records), beside the common case.
//!
//! Rates are MiB per CPU-second (per core), from the kernel's accounting: the calling thread's
//! (`/proc/thread-self/schedstat`) for single-threaded work, the whole process's (`/proc/self/stat`)
//! where several threads take part. Each figure is the best of `--runs`.

mod aging;
mod commit;
mod convert;
mod memory;
mod parse;
mod typed;

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use calving_segment::synth::{write_segment, SynthSpec, SynthStats};
use calving_segment::Compression;
use clap::Subcommand;

/// Errors of the benchmarks.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Read(#[from] calving_segment::ReadError),
    #[error(transparent)]
    Rsm(#[from] calving_rsm::RsmError),
    #[error(transparent)]
    Layout(#[from] calving_layout::LayoutError),
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Parse throughput per codec, beside a plain read of the same file.
    Parse(parse::ParseArgs),
    /// Conversion into the table and fetches back from it, beside a plain copy, a bare Parquet
    /// encode and plain reads of the same segment.
    Convert(convert::ConvertArgs),
    /// Conversion of Avro values in the Confluent wire format into columns
    /// (value.mode=value_schema_id_prefix) beside raw mode (key_value), against a real Schema
    /// Registry.
    Typed(typed::TypedArgs),
    /// Many small segment copies into one table with the built-in maintenance on: per-copy time
    /// and CPU, metadata size and manifest count as the table ages.
    Aging(aging::AgingArgs),
    /// The commit path at cluster scale: several writer processes (brokers) with their copier
    /// threads committing segments of one table at a target rate; throughput, segments per
    /// commit, conflicts, ready-to-durable latency.
    Commit(commit::CommitArgs),
    /// Peak memory of one segment's convert for the shapes that make a converter hold more than
    /// it streams (many day partitions, LogAppendTime small records), beside the common case.
    Memory(memory::MemoryArgs),
}

/// A `key=value` argument.
fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not key=value"))
}

pub fn run(cmd: BenchCommand) -> Result<(), BenchError> {
    match cmd {
        BenchCommand::Parse(args) => parse::run(args),
        BenchCommand::Convert(args) => convert::run(args),
        BenchCommand::Typed(args) => typed::run(args),
        BenchCommand::Aging(args) => aging::run(args),
        BenchCommand::Commit(args) => commit::run(args),
        BenchCommand::Memory(args) => memory::run(args),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { path: path.to_path_buf(), source }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// CPU time of the calling thread in seconds.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// CPU time (user + system) of the whole process, every thread that ever ran in it included,
/// in seconds. Linux reports it in USER_HZ ticks, 100 per second on every architecture Rust runs
/// on, so figures over a few seconds are exact to well under 1%.
fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let mut fields = s.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[derive(Clone, Copy, Debug)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Runs `f`, timing it by the wall clock and by `clock` (a CPU clock).
fn timed<T>(clock: fn() -> Option<f64>, f: impl FnOnce() -> T) -> (T, Timing) {
    let cpu0 = clock().unwrap_or(0.0);
    let t0 = Instant::now();
    let r = f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = clock().map_or(wall, |c| c - cpu0);
    (r, Timing { wall, cpu })
}

/// The best (least CPU) of `runs` timings.
fn best(runs: u32, mut f: impl FnMut() -> Result<Timing, BenchError>) -> Result<Timing, BenchError> {
    let mut best: Option<Timing> = None;
    for _ in 0..runs.max(1) {
        let t = f()?;
        if best.is_none_or(|b| t.cpu < b.cpu) {
            best = Some(t);
        }
    }
    Ok(best.expect("at least one run"))
}

/// Runs `f` until at least 0.2 s have passed and returns the timing of one run: the kernel
/// brings a running thread's CPU time up to date only at scheduler ticks, so short runs would
/// read as free.
fn per_run(clock: fn() -> Option<f64>, mut f: impl FnMut() -> Result<(), BenchError>) -> Result<Timing, BenchError> {
    let mut runs = 0u32;
    let t0 = Instant::now();
    let (r, t) = timed(clock, || -> Result<(), BenchError> {
        while runs == 0 || t0.elapsed().as_secs_f64() < 0.2 {
            f()?;
            runs += 1;
        }
        Ok(())
    });
    r?;
    Ok(Timing { wall: t.wall / f64::from(runs), cpu: t.cpu / f64::from(runs) })
}

/// A plain sequential read of a file in 1 MiB steps, on this thread.
fn plain_read(path: &Path) -> Result<Timing, BenchError> {
    let mut buf = vec![0u8; 1 << 20];
    per_run(thread_cpu_seconds, || {
        let mut f = File::open(path).map_err(io_err(path))?;
        let mut sum = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err(path))?;
            if n == 0 {
                std::hint::black_box(sum);
                return Ok(());
            }
            sum = sum.wrapping_add(u64::from(buf[n - 1]));
        }
    })
}

/// The codecs named on the command line, or `default`.
fn codecs(names: &[String], default: &[Compression]) -> Result<Vec<Compression>, BenchError> {
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    names
        .iter()
        .map(|n| Compression::from_name(n).ok_or_else(|| BenchError::Usage(format!("unknown codec {n:?}"))))
        .collect()
}

/// Writes a synthetic segment of at least `target` bytes, offsets from 0.
fn generate(path: &Path, compression: Compression, target: u64) -> Result<SynthStats, BenchError> {
    generate_with(path, &SynthSpec { compression, ..SynthSpec::default() }, target)
}

/// [`generate`] of any synthetic shape.
fn generate_with(path: &Path, spec: &SynthSpec, target: u64) -> Result<SynthStats, BenchError> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io_err(path))?);
    let stats = write_segment(spec, 0, target, &mut w).map_err(io_err(path))?;
    w.into_inner().map_err(|e| io_err(path)(e.into_error()))?;
    Ok(stats)
}

/// A scratch directory under `base` (default: the system temp dir), removed with everything
/// in it when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(base: Option<&Path>, name: &str) -> Result<ScratchDir, BenchError> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        // Absolute, for `file://` warehouse URLs.
        let base = base.canonicalize().map_err(io_err(&base))?;
        let dir = base.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("calving: could not remove {}: {e}", self.0.display());
        }
    }
}

/// The machine and its load, for the record beside the figures.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} CPUs, {}", load())
}

fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("load average {}", avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
