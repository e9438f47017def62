//! `calving bench convert`: what tiering a segment through Calving costs, against what plain
//! tiering costs, measured side by side in one run per codec of a generated segment:
//!
//! 1. **copy** (baseline): `std::fs::copy` of the segment into the warehouse directory.
//! 2. **reference**: a bare Parquet encode (`ArrowWriter` into `io::sink`, the data files' writer
//!    settings) of the same rows, built beforehand (untimed) from a prefix of at most
//!    `--reference-mib` of record bytes.
//! 3. **convert**: `RemoteStorage::copy_log_segment` into a fresh embedded-default warehouse
//!    (`file://`, SQLite catalog), each run in a fresh process of this binary (`--child`), so its
//!    CPU time covers all its threads and its peak memory (`VmHWM` reset through
//!    `/proc/self/clear_refs`, minus the RSS before) is not hidden by memory an earlier
//!    measurement freed but the allocator kept.
//! 4. **reading the input**: the part of the convert no layout of the rows can avoid, on one
//!    thread over the whole segment: decompressing and parsing every record, as the converter
//!    does. Convert is held against the reference plus this (`(ref + read) / convert`, per
//!    record byte): what Calving adds beyond decoding its input and encoding Parquet. (Served
//!    layout version 1 also re-compressed every compressed batch at copy time to learn its
//!    served size; version 2 does not, `calving_layout::served`.)
//! 5. **serving**: 1 MiB fetches opened at random served offset-index positions in the middle half
//!    of the segment (after one warm-up pass), the same from a segment never read before (each
//!    from a freshly opened plugin: its sidecar not cached yet; the files are in the page cache),
//!    and the whole segment read back in one stream, beside the same reads of the original file.
//! 6. **the floor of a full read**: the two parts of the full read no serving of these rows
//!    avoids, each on one thread over the whole segment: reading every column of the data files
//!    (a plain Parquet Arrow read: the pages' decompression and decoding) and, for compressed
//!    segments, the served batches' lz4 compression by the pinned encoder. Their sum, per served
//!    byte, bounds the full read's served MiB/s per core from above, whatever the serve path does
//!    around them (rebuilding records, CRC-32C, copying).
//!
//! The project's performance targets are printed beside the figures, each PASS or MISS.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow_array::RecordBatch;
use calving_layout::convert::{ChunkLimits, SegmentConverter, SideFiles};
use calving_layout::parquet_props::writer_properties;
use calving_layout::schema::{default_arrow_schema, TargetColumns};
use calving_layout::served::Layout;
use calving_rsm::{IndexType, KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_segment::compression::{self, CompressionLevels};
use calving_segment::index::offset::{self, OffsetIndexEntry};
use calving_segment::index::time::{self, TimeIndexEntry};
use calving_segment::record::batch::BATCH_HEADER_LEN;
use calving_segment::synth::{distinct_batches, Rng, SynthSpec, SynthStats};
use calving_segment::{Compression, LogEntry, LogReader};
use clap::Args;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::{
    best, codecs, generate, io_err, mib, per_run, plain_read, process_cpu_seconds, thread_cpu_seconds, timed,
    BenchError, ScratchDir, Timing,
};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Segment size per codec, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Codecs of the generated segments.
    #[arg(long, value_delimiter = ',', default_value = "none,lz4,zstd")]
    codecs: Vec<String>,
    /// Directory for segments and warehouses (default: the system temp dir). Everything is
    /// removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs per measurement; the best (least CPU) is reported, and the highest peak memory.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Timed 1 MiB fetches (after as many untimed ones).
    #[arg(long, default_value_t = 200)]
    fetches: usize,
    /// Most record bytes (MiB) held in memory as Arrow rows for the reference encode.
    #[arg(long, default_value_t = 512)]
    reference_mib: u64,
    /// The plugin's `served.compression` for the copies: `lz4` (served layout version 2, the
    /// default) or `none` (version 3: compressed batches served uncompressed).
    #[arg(long, default_value = "lz4", value_parser = ["lz4", "none"])]
    served_compression: String,
    /// Internal: convert the segment in this directory once and print what it cost.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
    /// Internal: a plugin property (KEY=VALUE) of the `--child` convert, beside the warehouse.
    #[arg(long, hide = true)]
    child_config: Vec<String>,
}

impl ConvertArgs {
    /// The served layout the copies write with `--served-compression`.
    fn served_layout(&self) -> Layout {
        if self.served_compression == "none" {
            Layout::UNCOMPRESSED
        } else {
            Layout::CURRENT
        }
    }
}

/// What a timed fetch reads: Kafka's default `max.partition.fetch.bytes`.
pub(super) const FETCH_BYTES: usize = 1 << 20;
/// Kafka's default `index.interval.bytes`.
const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Record bytes decompressed (untimed) before each timed slice of the served-batch encode.
const ENCODE_SLICE_BYTES: usize = 256 << 20;
/// Rows per Arrow batch of the data files' read, as fetches read them (`calving_rsm`).
const READ_BATCH_ROWS: usize = 8192;

/// A generated segment as the broker hands it to the plugin.
pub(super) struct Segment {
    pub(super) codec: Compression,
    pub(super) dir: PathBuf,
    pub(super) stats: SynthStats,
    pub(super) metadata: SegmentMetadata,
    pub(super) files: LogSegmentFiles,
    /// Its offset index (Kafka's rule), for plain reads at batch starts.
    pub(super) index: Vec<OffsetIndexEntry>,
}

/// Everything measured for one codec.
struct Figures {
    codec: Compression,
    segment: SynthStats,
    /// The lz4 segment of the same records.
    lz4_bytes: u64,
    copy: Timing,
    reference: Timing,
    reference_record_bytes: u64,
    convert: Timing,
    peak_bytes: Option<u64>,
    warehouse_bytes: u64,
    served_bytes: u64,
    full_read: Timing,
    plain_read: Timing,
    fetch_ms: (f64, f64),
    /// The first fetch of a segment never read before (its sidecar not cached).
    first_fetch_ms: (f64, f64),
    plain_fetch_ms: (f64, f64),
    /// Reading the segment's records (decompress + parse), one thread.
    read_records: Timing,
    /// Reading every column of the data files (all row groups), one thread.
    read_columns: Timing,
    /// Compressing the served batches' records sections with the pinned encoder, one thread
    /// (zero for uncompressed segments: served as they are).
    served_encode: Timing,
}

pub fn run(args: ConvertArgs) -> Result<(), BenchError> {
    if let Some(dir) = &args.child {
        let config = args
            .child_config
            .iter()
            .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| BenchError::Usage(format!("--child-config wants KEY=VALUE, got {:?}", args.child_config)))?;
        return child(dir, &config);
    }
    let codecs = codecs(&args.codecs, &[])?;
    let target = args.size_mib << 20;
    let dir = ScratchDir::new(args.dir.as_deref(), "calving-bench-convert")?;
    let machine = super::machine();
    let mut all = Vec::new();
    for codec in codecs {
        eprintln!("calving bench convert: {codec} segment of {} MiB…", args.size_mib);
        let seg = prepare(&dir.0.join(codec.name()), codec, target)?;
        all.push(measure(&args, &seg)?);
        std::fs::remove_dir_all(&seg.dir).map_err(io_err(&seg.dir))?;
    }
    print(&args, &all, &machine);
    Ok(())
}

/// Bytes of the lz4 segment holding the same records as a generated segment of `batches`.
fn lz4_bytes(batches: u64) -> u64 {
    let (encoded, _) = distinct_batches(&SynthSpec { compression: Compression::Lz4, ..SynthSpec::default() });
    (0..batches).map(|i| encoded[i as usize % encoded.len()].len() as u64).sum()
}

/// Writes a segment into `dir` with the side files a broker would have.
fn prepare(dir: &Path, codec: Compression, target: u64) -> Result<Segment, BenchError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let stats = generate(&dir.join(LOG), codec, target)?;
    described(dir, codec, stats)
}

/// The segment `LOG` in `dir` (written by the caller), with the side files a broker would have.
pub(super) fn described(dir: &Path, codec: Compression, stats: SynthStats) -> Result<Segment, BenchError> {
    let (metadata, files, index) = describe(dir)?;
    Ok(Segment { codec, dir: dir.to_path_buf(), stats, metadata, files, index })
}

pub(super) const LOG: &str = "00000000000000000000.log";

/// The broker's view of the segment in `dir`: its metadata (fixed ids: each convert has a
/// warehouse of its own) and files; writes its offset and time indexes by Kafka's rule and an
/// empty producer snapshot.
fn describe(dir: &Path) -> Result<(SegmentMetadata, LogSegmentFiles, Vec<OffsetIndexEntry>), BenchError> {
    let log = dir.join(LOG);
    let (mut offsets, mut times) = (Vec::<OffsetIndexEntry>::new(), Vec::<TimeIndexEntry>::new());
    let (mut since, mut max_ts, mut offset_of_max, mut last) = (0u64, -1i64, 0i64, 0i64);
    let mut reader = LogReader::open(&log)?;
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(b) = entry else {
            return Err(BenchError::Usage("bench segments hold v2 batches only".into()));
        };
        last = b.header.last_offset();
        if b.header.max_timestamp > max_ts {
            (max_ts, offset_of_max) = (b.header.max_timestamp, last);
        }
        if since > INDEX_INTERVAL_BYTES {
            offsets.push(OffsetIndexEntry { relative_offset: last as i32, position: b.position as i32 });
            if times.last().is_none_or(|t| max_ts > t.timestamp) {
                times.push(TimeIndexEntry { timestamp: max_ts, relative_offset: offset_of_max as i32 });
            }
            since = 0;
        }
        since += b.bytes().len() as u64;
    }
    if times.last().is_none_or(|t| max_ts > t.timestamp) {
        times.push(TimeIndexEntry { timestamp: max_ts, relative_offset: offset_of_max as i32 });
    }
    let write = |ext: &str, bytes: Vec<u8>| -> Result<PathBuf, BenchError> {
        let path = log.with_extension(ext);
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
        Ok(path)
    };
    let mut bytes = Vec::new();
    offset::encode(&offsets, &mut bytes);
    let offset_index = write("index", bytes)?;
    let mut bytes = Vec::new();
    time::encode(&times, &mut bytes);
    let time_index = write("timeindex", bytes)?;
    let producer_snapshot = write("snapshot", Vec::new())?;
    let metadata = SegmentMetadata {
        topic: "bench".into(),
        topic_id: KafkaUuid([1; 16]),
        partition: 0,
        segment_id: KafkaUuid([2; 16]),
        start_offset: 0,
        end_offset: last,
        max_timestamp_ms: max_ts,
        segment_size: std::fs::metadata(&log).map_err(io_err(&log))?.len(),
        leader_epochs: BTreeMap::from([(0, 0)]),
    };
    let files = LogSegmentFiles {
        log,
        offset_index,
        time_index,
        txn_index: None,
        producer_snapshot,
        leader_epoch: b"0\n1\n0 0\n".to_vec(),
    };
    Ok((metadata, files, offsets))
}

/// The plugin on the warehouse `wh` (created if needed), with the properties `config` beside it.
pub(super) fn open_warehouse(wh: &Path, config: &[(String, String)]) -> Result<RemoteStorage, BenchError> {
    std::fs::create_dir_all(wh).map_err(io_err(wh))?;
    let mut props = HashMap::from([("warehouse".to_string(), format!("file://{}", wh.display()))]);
    props.extend(config.iter().cloned());
    Ok(RemoteStorage::open(&props)?)
}

/// `--child`: one convert of the segment in `dir` into `dir/warehouse`, in a process of its own;
/// prints records, CPU seconds, wall seconds, peak bytes (`-` when unknown) and the values that
/// went to columns (schema modes).
fn child(dir: &Path, config: &[(String, String)]) -> Result<(), BenchError> {
    let (md, files, _) = describe(dir)?;
    let rsm = open_warehouse(&dir.join("warehouse"), config)?;
    let rss = status_bytes("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (outcome, t) = timed(process_cpu_seconds, || rsm.copy_log_segment(&md, &files));
    let outcome = outcome?;
    let peak = match (reset, status_bytes("VmHWM"), rss) {
        (true, Some(hwm), Some(rss)) => hwm.saturating_sub(rss).to_string(),
        _ => "-".into(),
    };
    println!("{} {} {} {peak} {}", outcome.stats.records, t.cpu, t.wall, outcome.stats.values_in_columns);
    Ok(())
}

/// Runs one convert in a child process with the plugin properties `config`; returns its timing,
/// peak memory and the values that went to columns.
pub(super) fn convert_in_child_with(seg: &Segment, config: &[(String, String)]) -> Result<(Timing, Option<u64>, u64), BenchError> {
    let exe = std::env::current_exe().map_err(io_err(Path::new("the calving executable")))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "convert", "--child"]).arg(&seg.dir);
    for (k, v) in config {
        cmd.arg(format!("--child-config={k}={v}"));
    }
    let out = cmd.stderr(Stdio::inherit()).output().map_err(io_err(&exe))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    let parsed = (f.len() == 5 && out.status.success())
        .then(|| Some((f[0].parse::<u64>().ok()?, f[1].parse::<f64>().ok()?, f[2].parse::<f64>().ok()?, f[4].parse::<u64>().ok()?)))
        .flatten();
    match parsed {
        Some((records, cpu, wall, in_columns)) if records == seg.stats.records => {
            Ok((Timing { wall, cpu }, f[3].parse().ok(), in_columns))
        }
        _ => Err(BenchError::Usage(format!("the convert process ({}) printed {line:?}, expected {} records", out.status, seg.stats.records))),
    }
}

fn measure(args: &ConvertArgs, seg: &Segment) -> Result<Figures, BenchError> {
    let log = &seg.files.log;
    plain_read(log)?; // the page cache holds the segment for every pass

    // 1. Baseline: a plain copy into the warehouse directory.
    let copy_dir = seg.dir.join("warehouse-copy");
    std::fs::create_dir_all(&copy_dir).map_err(io_err(&copy_dir))?;
    let copy = best(args.runs, || {
        let mut n = 0;
        let t = per_run(thread_cpu_seconds, || {
            n += 1;
            let to = copy_dir.join(format!("{n}.log"));
            std::fs::copy(log, &to).map(drop).map_err(io_err(&to))
        });
        std::fs::remove_dir_all(&copy_dir).and_then(|_| std::fs::create_dir(&copy_dir)).map_err(io_err(&copy_dir))?;
        t
    })?;

    // 3. Convert, each run in a process of its own into a fresh warehouse; the last is served.
    let wh = seg.dir.join("warehouse");
    let mut peak_bytes: Option<u64> = None;
    let convert = best(args.runs, || {
        if wh.exists() {
            std::fs::remove_dir_all(&wh).map_err(io_err(&wh))?;
        }
        let config = [("served.compression".to_string(), args.served_compression.clone())];
        let (t, peak, _) = convert_in_child_with(seg, &config)?;
        peak_bytes = peak_bytes.max(peak);
        Ok(t)
    })?;
    let warehouse_bytes = data_bytes(&wh)?;
    let rsm = open_warehouse(&wh, &[])?;
    let md = seg.metadata.clone();

    // 4. Serving.
    let mut buf = vec![0u8; FETCH_BYTES];
    let mut served_bytes = 0;
    let full_read = best(args.runs, || {
        let (r, t) = timed(process_cpu_seconds, || read_served(&rsm, &md, 0, u64::MAX, &mut buf));
        served_bytes = r?;
        Ok(t)
    })?;
    let plain = best(args.runs, || plain_read(log))?;
    let served_index = offset::parse(&rsm.fetch_index(&md, IndexType::Offset)?)?;
    let picks = |index: &[OffsetIndexEntry]| fetch_positions(index, args.fetches);
    let fetch_ms = latencies(&picks(&served_index), |p| read_served(&rsm, &md, p, FETCH_BYTES as u64, &mut buf).map(drop))?;
    // A segment never read before: every fetch from a plugin opened afresh (untimed).
    let mut first = Vec::new();
    for p in picks(&served_index) {
        let fresh = open_warehouse(&wh, &[])?;
        let start = Instant::now();
        read_served(&fresh, &md, p, FETCH_BYTES as u64, &mut buf)?;
        first.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let first_fetch_ms = percentiles(first);
    let plain_fetch_ms = latencies(&picks(&seg.index), |p| {
        let mut f = File::open(log).map_err(io_err(log))?;
        f.seek(SeekFrom::Start(p)).map_err(io_err(log))?;
        let n = f.take(FETCH_BYTES as u64).read(&mut buf).map_err(io_err(log))?;
        std::hint::black_box(n);
        Ok(())
    })?;
    // 6. The floor of the full read: the data files' columns (while the warehouse is there) and
    //    the served batches' lz4 encode, each alone on one thread.
    let data_files = parquet_files(&wh)?;
    let read_columns = best(args.runs, || {
        let (r, t) = timed(thread_cpu_seconds, || read_columns(&data_files));
        match r? {
            rows if rows == seg.stats.records => Ok(t),
            rows => Err(BenchError::Usage(format!("the data files hold {rows} rows, the segment {} records", seg.stats.records))),
        }
    })?;
    let served_encode = best(args.runs, || {
        let (t, bytes) = served_encode(seg, args.served_layout())?;
        if bytes != served_bytes {
            return Err(BenchError::Usage(format!(
                "the served-batch encode makes {bytes} bytes, the full read served {served_bytes}: not the serve path's encoder"
            )));
        }
        Ok(t)
    })?;
    drop(rsm);
    std::fs::remove_dir_all(&wh).map_err(io_err(&wh))?;

    // 4. Reading the input, which no layout of the rows avoids.
    let read_records = best(args.runs, || {
        let (r, t) = timed(thread_cpu_seconds, || read_all_records(seg));
        r.map(|_| t)
    })?;
    // 2. Reference: the bare encode of the same rows, built beforehand.
    let (rows, reference_record_bytes) = reference_rows(seg, args.reference_mib << 20)?;
    let schema = default_arrow_schema();
    let props = writer_properties(1);
    let reference = best(args.runs, || {
        let (r, t) = timed(thread_cpu_seconds, || -> Result<(), parquet::errors::ParquetError> {
            let mut w = ArrowWriter::try_new(std::io::sink(), schema.clone(), Some(props.clone()))?;
            for chunk in &rows {
                w.write(chunk)?;
            }
            w.close().map(drop)
        });
        r?;
        Ok(t)
    })?;

    Ok(Figures {
        codec: seg.codec,
        segment: seg.stats,
        lz4_bytes: lz4_bytes(seg.stats.batches),
        copy,
        reference,
        reference_record_bytes,
        convert,
        peak_bytes,
        warehouse_bytes,
        served_bytes,
        full_read,
        plain_read: plain,
        fetch_ms,
        first_fetch_ms,
        plain_fetch_ms,
        read_records,
        read_columns,
        served_encode,
    })
}

/// The `*.parquet` files under `dir` (a warehouse: its data files), in a stable order.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_dir() {
            files.extend(parquet_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every column of every row group of `files` on this thread, with a plain `parquet` Arrow
/// reader (batches of [`READ_BATCH_ROWS`] rows, as fetches read): the pages' decompression and
/// decoding, which any serving of the rows pays. Returns the rows read.
fn read_columns(files: &[PathBuf]) -> Result<u64, BenchError> {
    let mut rows = 0u64;
    for path in files {
        let reading = |e: &dyn std::fmt::Display| BenchError::Usage(format!("{}: reading Parquet: {e}", path.display()));
        let file = File::open(path).map_err(io_err(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
            .map_err(|e| reading(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| reading(&e))?;
            rows += std::hint::black_box(batch).num_rows() as u64;
        }
    }
    Ok(rows)
}

/// Compresses each served batch's records section as `fetchLogSegment` does in `layout`, with the
/// pinned encoder of `calving_segment::compression` (lz4 for originally compressed batches;
/// batches served uncompressed cost nothing here), on this thread: the compression alone (no
/// header, no CRC-32C). The records section is the original batch's, decompressed untimed (the
/// served records are the same bytes), [`ENCODE_SLICE_BYTES`] at a time, each slice's encode
/// timed as a whole (the thread's CPU clock moves at scheduler ticks). Returns the summed timing
/// and the bytes the served batches take (header + frame), which must be the full read's.
fn served_encode(seg: &Segment, layout: Layout) -> Result<(Timing, u64), BenchError> {
    let mut reader = LogReader::open(&seg.files.log)?;
    let (mut records, mut ends) = (Vec::<u8>::new(), Vec::<usize>::new());
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    let mut total = Timing { wall: 0.0, cpu: 0.0 };
    let mut served = 0u64;
    let mut encode_slice = |records: &mut Vec<u8>, ends: &mut Vec<usize>, served: &mut u64| -> Result<(), BenchError> {
        let (r, t) = timed(thread_cpu_seconds, || -> std::io::Result<()> {
            let mut start = 0;
            for &end in ends.iter() {
                out.clear();
                compression::compress(Compression::Lz4, CompressionLevels::default(), &records[start..end], &mut out)?;
                *served += (BATCH_HEADER_LEN + std::hint::black_box(&out).len()) as u64;
                start = end;
            }
            Ok(())
        });
        r.map_err(|e| BenchError::Usage(format!("lz4-compressing served batches: {e}")))?;
        (total.wall, total.cpu) = (total.wall + t.wall, total.cpu + t.cpu);
        records.clear();
        ends.clear();
        Ok(())
    };
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(b) = entry else { continue };
        if b.compression() == Compression::None {
            served += b.bytes().len() as u64;
            continue;
        }
        compression::decompress(b.compression(), b.payload(), &mut scratch, usize::MAX)
            .map_err(|e| BenchError::Usage(format!("decompressing the batch at {}: {e}", b.position)))?;
        if layout.served_codec(b.compression()) == Compression::None {
            served += (BATCH_HEADER_LEN + scratch.len()) as u64;
            continue;
        }
        records.extend_from_slice(&scratch);
        ends.push(records.len());
        if records.len() >= ENCODE_SLICE_BYTES {
            encode_slice(&mut records, &mut ends, &mut served)?;
        }
    }
    if !ends.is_empty() {
        encode_slice(&mut records, &mut ends, &mut served)?;
    }
    Ok((total, served))
}

/// Walks every record of the segment as the converter does (decompressing and parsing).
/// Returns the value bytes seen.
fn read_all_records(seg: &Segment) -> Result<u64, BenchError> {
    let mut reader = LogReader::open(&seg.files.log)?;
    let mut scratch = Vec::new();
    let mut seen = 0u64;
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(b) = entry else { continue };
        for r in b.records(&mut scratch)? {
            let r = r?;
            seen += std::hint::black_box(r.value.map_or(0, <[u8]>::len) as u64 + r.headers.iter().count() as u64);
        }
    }
    Ok(seen)
}

/// Reads up to `len` served bytes from `start` through one stream into `buf`, as the broker
/// does; returns the bytes read.
pub(super) fn read_served(rsm: &RemoteStorage, md: &SegmentMetadata, start: u64, len: u64, buf: &mut [u8]) -> Result<u64, BenchError> {
    let mut stream = rsm.fetch_log_segment(md, start, None)?.take(len);
    let mut total = 0u64;
    loop {
        let n = stream.read(buf).map_err(|e| BenchError::Usage(format!("reading the served segment: {e}")))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// `n` (at least one) positions of `index` picked at random in its middle half, the same on
/// every call: where the fetch latencies are measured.
pub(super) fn fetch_positions(index: &[OffsetIndexEntry], n: usize) -> Vec<u64> {
    let middle = &index[index.len() / 4..index.len() * 3 / 4];
    let mut rng = Rng::new(7);
    (0..n.max(1)).map(|_| middle.get(rng.below(middle.len() as u64) as usize).map_or(0, |e| e.position as u64)).collect()
}

/// p50 and p99 (ms, nearest rank) of `read` at each position, after one untimed pass.
pub(super) fn latencies(positions: &[u64], mut read: impl FnMut(u64) -> Result<(), BenchError>) -> Result<(f64, f64), BenchError> {
    for &p in positions {
        read(p)?;
    }
    let mut ms = Vec::with_capacity(positions.len());
    for &p in positions {
        let t0 = Instant::now();
        read(p)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(percentiles(ms))
}

/// p50 and p99 (nearest rank) of `ms`.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    if ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    ms.sort_by(f64::total_cmp);
    let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (rank(0.50), rank(0.99))
}

/// Rows of the segment as the converter makes them, from a prefix of at most `limit` record
/// bytes; returns them and the record bytes they hold.
fn reference_rows(seg: &Segment, limit: u64) -> Result<(Vec<RecordBatch>, u64), BenchError> {
    let md = &seg.metadata;
    let identity = md.identity();
    let target = TargetColumns::locate(default_arrow_schema())?;
    let mut converter = SegmentConverter::new(target, identity, ChunkLimits::default());
    let mut rows = Vec::new();
    let mut sink = |chunk: RecordBatch| -> Result<(), calving_layout::LayoutError> {
        rows.push(chunk);
        Ok(())
    };
    let mut reader = LogReader::open(&seg.files.log)?;
    while let Some(entry) = reader.next_entry()? {
        if converter.stats().record_bytes >= limit {
            break;
        }
        converter.push(&entry, &mut sink)?;
    }
    let (_, stats) = converter.finish(SideFiles::default(), &mut sink)?;
    Ok((rows, stats.record_bytes))
}

/// Bytes of `/proc/self/status`'s `key` (reported in kB).
fn status_bytes(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    Some(line.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

/// Bytes of the data files and sidecars under `dir` (not the catalog and table metadata).
pub(super) fn data_bytes(dir: &Path) -> Result<u64, BenchError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io_err(&path))?;
        if meta.is_dir() {
            total += data_bytes(&path)?;
        } else if path.extension().is_some_and(|e| e == "parquet" || e == "sidecar") {
            total += meta.len();
        }
    }
    Ok(total)
}

fn print(args: &ConvertArgs, all: &[Figures], machine: &str) {
    println!(
        "calving bench convert: {} MiB synthetic segments (~1 KiB JSON-like values, 16-byte keys, 2 headers, \
         64 records/batch); best of {} runs",
        args.size_mib, args.runs
    );
    println!("machine: {machine} at the start, {} at the end", super::load());
    println!("served.compression={} (served layout version {})", args.served_compression, args.served_layout().version());
    if let Some(f) = all.iter().find(|f| f.reference_record_bytes < f.segment.record_bytes) {
        println!(
            "reference: Arrow rows of the first {:.0} MiB of record bytes only (the whole segment's rows would not fit \
             comfortably in memory)",
            mib(f.reference_record_bytes)
        );
    }
    println!("* = MiB per CPU-second (per core): copy and reference on one thread, convert and reads of all threads\n");
    println!(
        "{:<5} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "codec", "seg MiB", "rec MiB", "copy*", "ref rec*", "conv seg*", "conv rec*", "wall s", "cpu s", "conv/ref",
        "cpu/copy", "wh/seg", "wh/lz4", "peak MiB"
    );
    for f in all {
        let rec = mib(f.segment.record_bytes);
        let seg = mib(f.segment.segment_bytes);
        println!(
            "{:<5} {:>7.0} {:>7.0} {:>8.0} {:>9.0} {:>9.0} {:>9.0} {:>7.2} {:>7.2} {:>8.2} {:>7.1}x {:>7.2} {:>7.2} {:>7}",
            f.codec.name(),
            seg,
            rec,
            seg / f.copy.cpu,
            mib(f.reference_record_bytes) / f.reference.cpu,
            seg / f.convert.cpu,
            rec / f.convert.cpu,
            f.convert.wall,
            f.convert.cpu,
            f.ratio_to_reference(),
            f.convert.cpu / f.copy.cpu,
            f.warehouse_bytes as f64 / f.segment.segment_bytes as f64,
            f.warehouse_bytes as f64 / f.lz4_bytes as f64,
            f.peak_bytes.map_or("n/a".into(), |b| format!("{:.0}", mib(b))),
        );
    }
    println!(
        "conv/ref: convert / reference per record byte; cpu/copy: convert CPU / copy CPU; wh: bytes of data files + \
         sidecar; peak: resident memory the convert added"
    );
    println!(
        "\n{:<5} {:>10} {:>11} {:>10} {:>11} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "codec", "served MiB", "full read*", "full rec*", "plain read*", "cpu/plain", "fetch p50", "fetch p99", "plain p50", "plain p99"
    );
    for f in all {
        let full = mib(f.served_bytes) / f.full_read.cpu;
        let plain = mib(f.segment.segment_bytes) / f.plain_read.cpu;
        println!(
            "{:<5} {:>10.0} {:>11.0} {:>10.0} {:>11.0} {:>9.1}x {:>7.2} ms {:>7.2} ms {:>8.2} ms {:>7.2} ms",
            f.codec.name(),
            mib(f.served_bytes),
            full,
            mib(f.segment.record_bytes) / f.full_read.cpu,
            plain,
            plain / full,
            f.fetch_ms.0,
            f.fetch_ms.1,
            f.plain_fetch_ms.0,
            f.plain_fetch_ms.1,
        );
    }
    println!(
        "full read: the whole segment served in one stream (full rec: the same in MiB of records); cpu/plain: its CPU per \
         byte / a plain read's; fetch: 1 MiB from a random served-index position in the middle half, wall time; plain: the same from the original file"
    );
    let target = |name: &str, value: &dyn Fn(&Figures) -> f64, pass: &dyn Fn(f64) -> bool, unit: &str| {
        let cells: Vec<String> = all
            .iter()
            .map(|f| {
                let v = value(f);
                format!("{} {v:.2}{unit} {}", f.codec.name(), if pass(v) { "PASS" } else { "MISS" })
            })
            .collect();
        println!("  {name:<50} {}", cells.join("   "));
    };
    println!(
        "\nwhat Calving adds beyond decoding its input and encoding Parquet (CPU ms per MiB of records):\n{:<5} {:>10} {:>13} {:>9} {:>18}",
        "codec", "reference", "read records", "convert", "(ref+read)/conv"
    );
    for f in all {
        let (r, read, conv) = f.per_record_mib();
        println!("{:<5} {r:>10.2} {read:>13.2} {conv:>9.2} {:>18.2}", f.codec.name(), (r + read) / conv);
    }
    println!(
        "reference: the bare Parquet encode of the same rows; read records: decompress + parse, as the converter does \
         (one thread each); convert: the whole copy, all threads"
    );
    println!(
        "\nthe floor of a full read (CPU ms per served MiB; in brackets the served MiB/s per core it implies):\n{:<5} {:>16} {:>16} {:>16} {:>16}",
        "codec", "read columns", "lz4 encode", "floor (sum)", "full read"
    );
    let cell = |ms: f64| if ms > 0.0 { format!("{ms:.2} ({:.0})", 1e3 / ms) } else { format!("{ms:.2} (-)") };
    for f in all {
        let (columns, encode, full) = f.per_served_mib();
        println!(
            "{:<5} {:>16} {:>16} {:>16} {:>16}",
            f.codec.name(),
            cell(columns),
            cell(encode),
            cell(columns + encode),
            cell(full)
        );
    }
    println!(
        "read columns: a plain Parquet Arrow read of every column of the data files, all row groups; lz4 encode: each \
         served batch's records compressed by the pinned encoder (calving_segment::compression), the compression alone \
         (one thread each); the floor leaves out rebuilding the records, CRC-32C and copying: no full read is faster"
    );
    println!(
        "full read >= 150 served MiB/s per core reachable at all (floor's bound >= 150): {}",
        all.iter()
            .map(|f| {
                let (columns, encode, _) = f.per_served_mib();
                let bound = 1e3 / (columns + encode);
                format!("{} bound {bound:.0} {}", f.codec.name(), if bound >= 150.0 { "yes" } else { "NO" })
            })
            .collect::<Vec<_>>()
            .join("   ")
    );
    println!(
        "\nfirst fetch of a segment never read before (a freshly opened plugin: sidecar not cached), 1 MiB, wall time: {}",
        all.iter().map(|f| format!("{} p50 {:.2} / p99 {:.2} ms", f.codec.name(), f.first_fetch_ms.0, f.first_fetch_ms.1)).collect::<Vec<_>>().join("; ")
    );
    println!("\ntargets:");
    target("convert >= 150 record MiB/s per core (zstd(1))", &|f| mib(f.segment.record_bytes) / f.convert.cpu, &|v| v >= 150.0, "");
    target("convert >= 0.8 x (reference + read records)", &|f| f.ratio(), &|v| v >= 0.8, "");
    target("warehouse <= 0.7 x lz4 segment", &|f| f.warehouse_bytes as f64 / f.lz4_bytes as f64, &|v| v <= 0.7, "");
    target("convert peak memory <= 256 MiB", &|f| f.peak_bytes.map_or(f64::NAN, mib), &|v| v <= 256.0, " MiB");
    target("fetch p99 <= 25 ms", &|f| f.fetch_ms.1, &|v| v <= 25.0, " ms");
    target("first fetch, never read before, p99 <= 50 ms", &|f| f.first_fetch_ms.1, &|v| v <= 50.0, " ms");
    target("full read >= 150 served MiB/s per core (raw)", &|f| mib(f.served_bytes) / f.full_read.cpu, &|v| v >= 150.0, "");
}

impl Figures {
    /// CPU ms per MiB of records: the reference encode, reading the records, the convert.
    fn per_record_mib(&self) -> (f64, f64, f64) {
        let per = |t: &Timing, bytes: u64| 1e3 * t.cpu / mib(bytes);
        (
            per(&self.reference, self.reference_record_bytes),
            per(&self.read_records, self.segment.record_bytes),
            per(&self.convert, self.segment.record_bytes),
        )
    }

    /// CPU ms per served MiB: reading the data files' columns, the served-batch lz4 encode, the
    /// full read.
    fn per_served_mib(&self) -> (f64, f64, f64) {
        let per = |t: &Timing| 1e3 * t.cpu / mib(self.served_bytes);
        (per(&self.read_columns), per(&self.served_encode), per(&self.full_read))
    }

    /// Convert against the reference alone, per record byte.
    fn ratio_to_reference(&self) -> f64 {
        let (r, _, conv) = self.per_record_mib();
        r / conv
    }

    /// Convert against the reference plus reading the input, per record byte.
    fn ratio(&self) -> f64 {
        let (r, read, conv) = self.per_record_mib();
        (r + read) / conv
    }
}
