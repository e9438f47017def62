//! `calving bench parse`: parse throughput per codec on a generated segment, printed beside a
//! plain sequential read of the same file in the same run (the baseline), single-threaded, so
//! MiB/s is per core.
//!
//! The parse pass is what conversion costs before any columnar work: read every batch, verify
//! its CRC-32C, decompress, and walk every record and header.

use std::path::{Path, PathBuf};

use calving_segment::{Compression, LogEntry, LogReader};
use clap::Args;

use super::{best, codecs, generate, io_err, mib, plain_read, thread_cpu_seconds, timed, BenchError, ScratchDir};

#[derive(Debug, Args)]
pub struct ParseArgs {
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

/// Parses every batch and record; returns (records, uncompressed record bytes).
fn parse_all(path: &Path) -> Result<(u64, u64), BenchError> {
    let mut reader = LogReader::open(path)?;
    let mut scratch = Vec::new();
    let (mut records, mut bytes, mut touched) = (0u64, 0u64, 0usize);
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(batch) = entry else {
            return Err(BenchError::Usage("bench segments hold v2 batches only".into()));
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

pub fn run(args: ParseArgs) -> Result<(), BenchError> {
    let codecs = codecs(&args.codecs, &Compression::ALL)?;
    let dir = ScratchDir::new(args.dir.as_deref(), "calving-bench")?;
    let target = args.size_mib << 20;
    println!(
        "calving bench parse: {} MiB segments, ~1 KiB JSON-like values, 16-byte keys, 2 headers, 64 records/batch; \
         best of {} runs, one thread; {}",
        args.size_mib,
        args.runs,
        super::machine()
    );
    println!(
        "{:<7} {:>10} {:>10} {:>12} {:>12} {:>13} {:>9} {:>8}",
        "codec", "seg MiB", "rec MiB", "read MiB/s", "parse MiB/s", "parse rec/s*", "vs read", "cpu/wall"
    );
    for codec in codecs {
        let path = dir.0.join(format!("{}.log", codec.name()));
        let stats = generate(&path, codec, target)?;
        plain_read(&path)?; // warm the page cache for both passes
        let read = best(args.runs, || plain_read(&path))?;
        let mut parsed = (0, 0);
        let parse = best(args.runs, || {
            let (r, t) = timed(thread_cpu_seconds, || parse_all(&path));
            parsed = r?;
            Ok(t)
        })?;
        if parsed.0 != stats.records || parsed.1 != stats.record_bytes {
            return Err(BenchError::Usage(format!(
                "{codec}: parsed {} records / {} bytes, generated {} / {}",
                parsed.0, parsed.1, stats.records, stats.record_bytes
            )));
        }
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
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    println!("parse MiB/s = segment bytes per CPU-second of the parsing thread; parse rec/s* = uncompressed record MiB per CPU-second");
    Ok(())
}
