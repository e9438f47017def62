//! `calving segment bench`: parse throughput per codec on a generated segment, printed beside a
//! plain sequential read of the same file in the same run (the baseline), single-threaded, so
//! MiB/s is per core. CPU time is read from the kernel (`/proc/thread-self/schedstat`) and
//! reported beside wall time.
//!
//! The parse pass is what conversion will cost before any columnar work: read every batch,
//! verify its CRC-32C, decompress, and walk every record and header.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use calving_segment::synth::{write_segment, SynthSpec};
use calving_segment::{Compression, LogEntry, LogReader};
use clap::Args;

use super::SegmentCommandError;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Segment size per codec, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Codecs to measure (default: all five).
    #[arg(long, value_delimiter = ',')]
    codecs: Vec<String>,
    /// Directory for the generated segments (default: the system temp dir). Files are removed
    /// afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs per measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

/// CPU time of the calling thread in seconds.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Timing) {
    let cpu0 = thread_cpu_seconds().unwrap_or(0.0);
    let t0 = Instant::now();
    let r = f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds().map_or(wall, |c| c - cpu0);
    (r, Timing { wall, cpu })
}

fn best(runs: u32, mut f: impl FnMut() -> Result<Timing, SegmentCommandError>) -> Result<Timing, SegmentCommandError> {
    let mut best: Option<Timing> = None;
    for _ in 0..runs.max(1) {
        let t = f()?;
        if best.is_none_or(|b| t.wall < b.wall) {
            best = Some(t);
        }
    }
    Ok(best.expect("at least one run"))
}

fn plain_read(path: &Path) -> Result<Timing, SegmentCommandError> {
    let io = |source| SegmentCommandError::Io { path: path.to_path_buf(), source };
    let (r, t) = timed(|| -> std::io::Result<u64> {
        let mut f = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut sum = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(sum);
            }
            sum = sum.wrapping_add(u64::from(buf[n - 1]));
        }
    });
    std::hint::black_box(r.map_err(io)?);
    Ok(t)
}

/// Parses every batch and record; returns (records, uncompressed record bytes).
fn parse_all(path: &Path) -> Result<(u64, u64), SegmentCommandError> {
    let mut reader = LogReader::open(path)?;
    let mut scratch = Vec::new();
    let (mut records, mut bytes, mut touched) = (0u64, 0u64, 0usize);
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(batch) = entry else {
            return Err(SegmentCommandError::Usage("bench segments hold v2 batches only".into()));
        };
        batch.verify_crc()?;
        let recs = batch.records(&mut scratch)?;
        for r in recs {
            let r = r?;
            records += 1;
            touched += r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
            touched += r.headers.iter().map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len)).sum::<usize>();
        }
        bytes += match batch.compression() {
            Compression::None => batch.payload().len(),
            _ => scratch.len(),
        } as u64;
    }
    std::hint::black_box(touched);
    Ok((records, bytes))
}

pub fn run(args: BenchArgs) -> Result<(), SegmentCommandError> {
    let codecs: Vec<Compression> = if args.codecs.is_empty() {
        Compression::ALL.to_vec()
    } else {
        args.codecs
            .iter()
            .map(|n| Compression::from_name(n).ok_or_else(|| SegmentCommandError::Usage(format!("unknown codec {n:?}"))))
            .collect::<Result<_, _>>()?
    };
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir).join(format!("calving-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| SegmentCommandError::Io { path: dir.clone(), source })?;
    let target = args.size_mib << 20;
    println!(
        "calving segment bench: {} MiB segments, ~1 KiB JSON-like values, 16-byte keys, 2 headers, 64 records/batch; \
         best of {} runs, one thread",
        args.size_mib, args.runs
    );
    println!(
        "{:<7} {:>10} {:>10} {:>12} {:>12} {:>13} {:>9} {:>8}",
        "codec", "seg MiB", "rec MiB", "read MiB/s", "parse MiB/s", "parse rec/s*", "vs read", "cpu/wall"
    );
    let result = (|| {
        for codec in codecs {
            let path = dir.join(format!("{}.log", codec.name()));
            let spec = SynthSpec { compression: codec, ..SynthSpec::default() };
            let file = File::create(&path).map_err(|source| SegmentCommandError::Io { path: path.clone(), source })?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let stats = write_segment(&spec, 0, target, &mut w)
                .and_then(|s| std::io::Write::flush(&mut w).map(|_| s))
                .map_err(|source| SegmentCommandError::Io { path: path.clone(), source })?;
            drop(w);
            plain_read(&path)?; // warm the page cache for both passes
            let read = best(args.runs, || plain_read(&path))?;
            let mut parsed = (0, 0);
            let parse = best(args.runs, || {
                let (r, t) = timed(|| parse_all(&path));
                parsed = r?;
                Ok(t)
            })?;
            if parsed.0 != stats.records || parsed.1 != stats.record_bytes {
                return Err(SegmentCommandError::Usage(format!(
                    "{codec}: parsed {} records / {} bytes, generated {} / {}",
                    parsed.0, parsed.1, stats.records, stats.record_bytes
                )));
            }
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            let seg = mib(stats.segment_bytes);
            println!(
                "{:<7} {:>10.0} {:>10.0} {:>12.0} {:>12.0} {:>13.0} {:>8.2}x {:>8.2}",
                codec.name(),
                seg,
                mib(stats.record_bytes),
                seg / read.wall,
                seg / parse.cpu,
                mib(stats.record_bytes) / parse.cpu,
                (seg / parse.cpu) / (seg / read.wall),
                parse.cpu / parse.wall,
            );
            std::fs::remove_file(&path).map_err(|source| SegmentCommandError::Io { path: path.clone(), source })?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    println!("parse MiB/s = segment bytes per CPU-second of the parsing thread; parse rec/s* = uncompressed record MiB per CPU-second");
    result
}
