//! `calving bench typed`: what decoding Avro, Protobuf or JSON values into columns costs (issue
//! 4's and 13's target: convert throughput per core in `value_schema_id_prefix` mode at least half
//! of raw mode's).
//!
//! One segment per codec holds orders of about 1 KiB (`calving_schema::synth`: a nested record,
//! an array of records, a map, strings, longs, doubles, a timestamp, a decimal or an enum, optional
//! fields; written by apache-avro for `--format avro`, as Protobuf messages or compact JSON by the
//! synth module's own writers for `protobuf` and `json`) in the Confluent wire format under a
//! schema id that a
//! real Schema Registry gave: Apicurio Registry started from `tests/schema-registry/start.sh`, or
//! the one `--registry` names. The same segment is then converted twice, each run in a process of
//! its own into a fresh warehouse (as `calving bench convert` does):
//!
//! - **raw**: `value.mode=key_value`, values as bytes in the `value` column;
//! - **typed** (named by the format): `value.mode=value_schema_id_prefix`, every value decoded
//!   into columns (checked:
//!   all of them, none in the raw fallback).
//!
//! Both warehouses are read back in full and compared: served bytes identical to the original for
//! uncompressed segments; for lz4 ones (served batches are re-encoded), the two modes serve the
//! same bytes and the same records as the original.
//!
//! Where the typed time goes is measured on one thread beside it (best of `--runs` each): the copy's pre-scan for schema
//! ids (one more parse of the segment), the decode into columns (one pass, the canonical form that
//! makes it lossless checked inline) and the Parquet encode of the value columns against that of the raw
//! `value` column.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, LargeBinaryArray, RecordBatch};
use calving_layout::parquet_props::writer_properties;
use calving_layout::schema::names;
use calving_schema::synth::{AvroOrders, JsonOrders, ProtobufOrders};
use calving_schema::transcode::Envelope;
use calving_schema::{wire, ValueColumns, WriterSchema};
use calving_rsm::{IndexType, SegmentMetadata};
use calving_segment::index::offset;
use calving_segment::synth::{write_segment_with, Rng, SynthSpec};
use calving_segment::{Compression, LogEntry, LogReader};
use clap::Args;
use parquet::arrow::ArrowWriter;

use super::convert::{
    convert_in_child_with, data_bytes, described, fetch_positions, latencies, open_warehouse, read_served, Segment, FETCH_BYTES, LOG,
};
use super::{best, codecs, io_err, mib, process_cpu_seconds, thread_cpu_seconds, timed, BenchError, ScratchDir, Timing};

#[derive(Debug, Args)]
pub struct TypedArgs {
    /// Segment size per codec, in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Codecs of the generated segments.
    #[arg(long, value_delimiter = ',', default_value = "none,lz4")]
    codecs: Vec<String>,
    /// Directory for segments and warehouses (default: the system temp dir). Everything is
    /// removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs per mode; the best (least CPU) is reported, and the highest peak memory.
    #[arg(long, default_value_t = 2)]
    runs: u32,
    /// A Confluent-compatible Schema Registry (http://…, e.g. Apicurio's
    /// http://127.0.0.1:8080/apis/ccompat/v7). Default: start Apicurio Registry with
    /// tests/schema-registry/start.sh and stop it afterwards.
    #[arg(long)]
    registry: Option<String>,
    /// Most record bytes (MiB) held in memory as value columns for the Parquet encode split.
    #[arg(long, default_value_t = 128)]
    reference_mib: u64,
    /// The values' format: Avro orders, or the same orders as Protobuf messages or JSON
    /// documents (registered with schemaType PROTOBUF / JSON).
    #[arg(long, default_value = "avro", value_parser = ["avro", "protobuf", "json"])]
    format: String,
    /// The plugin's `served.compression` in both modes: `lz4` (served layout version 2, the
    /// default) or `none` (version 3: compressed batches served uncompressed).
    #[arg(long, default_value = "lz4", value_parser = ["lz4", "none"])]
    served_compression: String,
    /// 1 MiB fetches timed per mode, each from a random served offset-index position in the
    /// middle half of the segment (0: none).
    #[arg(long, default_value_t = 100)]
    fetches: usize,
}

/// The synthetic orders of one format.
enum Orders {
    Avro(Box<AvroOrders>),
    Protobuf(ProtobufOrders),
    Json(JsonOrders),
}

impl Orders {
    fn of(format: &str) -> Orders {
        match format {
            "protobuf" => Orders::Protobuf(ProtobufOrders),
            "json" => Orders::Json(JsonOrders),
            _ => Orders::Avro(Box::new(AvroOrders::new())),
        }
    }

    /// The registry's `schemaType` and the schema's text.
    fn schema(&self) -> (&'static str, &str) {
        match self {
            Orders::Avro(o) => ("AVRO", o.schema()),
            Orders::Protobuf(o) => ("PROTOBUF", o.schema()),
            Orders::Json(o) => ("JSON", o.schema()),
        }
    }

    /// The writer schema as a copy compiles it (Protobuf and JSON in their envelope).
    fn writer(&self) -> Result<WriterSchema, BenchError> {
        let text = match self.schema() {
            ("AVRO", text) => text.to_string(),
            (kind, text) => Envelope::new(kind, text, Default::default()).to_text(),
        };
        WriterSchema::parse(&text).map_err(usage)
    }

    /// A value in the Confluent wire format of about `size` bytes.
    fn write(&self, id: i32, rand: &mut dyn FnMut() -> u64, size: usize, out: &mut Vec<u8>) {
        out.push(0);
        out.extend_from_slice(&id.to_be_bytes());
        match self {
            Orders::Avro(o) => o.write(rand, size - 5, out),
            Orders::Protobuf(o) => {
                out.push(0); // the message-index list [0]
                o.write(rand, size - 6, out)
            }
            Orders::Json(o) => o.write(rand, size - 5, out),
        }
    }
}

/// One mode's figures.
struct Mode {
    convert: Timing,
    peak_bytes: Option<u64>,
    warehouse_bytes: u64,
    served_bytes: u64,
    full_read: Timing,
    /// 1 MiB fetch wall time p50 / p99, ms (`None` without `--fetches`).
    fetch_ms: Option<(f64, f64)>,
}

/// Single-thread CPU seconds of the parts of the typed convert, for the whole segment.
struct Split {
    /// Parse + wire header of every value (the copy's pre-scan).
    prescan: f64,
    /// Parse + decode into columns (canonical form checked in the same pass), minus the parse.
    decode: f64,
    /// Parquet encode of the value columns, scaled to the whole segment.
    parquet_typed: f64,
    /// Parquet encode of the raw `value` column, scaled to the whole segment.
    parquet_raw: f64,
}

struct Figures {
    seg: Segment,
    raw: Mode,
    typed: Mode,
    split: Split,
    check: String,
}

pub fn run(args: TypedArgs) -> Result<(), BenchError> {
    let codecs = codecs(&args.codecs, &[])?;
    let dir = ScratchDir::new(args.dir.as_deref(), "calving-bench-typed")?;
    let machine = super::machine();
    let (registry, started) = match &args.registry {
        Some(url) => (Registry { url: url.trim_end_matches('/').to_string(), pid: None }, None),
        None => {
            let t0 = Instant::now();
            let r = Registry::start(&dir.0)?;
            (r, Some(t0.elapsed().as_secs_f64()))
        }
    };
    let orders = Orders::of(&args.format);
    let (schema_type, schema) = orders.schema();
    let id = registry.register(&format!("calving-bench-orders-{}-value", args.format), schema_type, schema)?;
    let writer = Arc::new(orders.writer()?);
    let mut all = Vec::new();
    for codec in codecs {
        eprintln!("calving bench typed: {codec} segment of {} MiB…", args.size_mib);
        let seg_dir = dir.0.join(codec.name());
        std::fs::create_dir_all(&seg_dir).map_err(io_err(&seg_dir))?;
        let log = seg_dir.join(LOG);
        let spec = SynthSpec { compression: codec, ..SynthSpec::default() };
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&log).map_err(io_err(&log))?);
        let mut value = |rng: &mut Rng, size: usize, out: &mut Vec<u8>| orders.write(id, &mut || rng.next_u64(), size, out);
        let stats = write_segment_with(&spec, 0, args.size_mib << 20, &mut w, &mut value).map_err(io_err(&log))?;
        w.into_inner().map_err(|e| io_err(&log)(e.into_error()))?;
        let seg = described(&seg_dir, codec, stats)?;
        all.push(measure(&args, seg, &registry.url, &writer)?);
        std::fs::remove_dir_all(&seg_dir).map_err(io_err(&seg_dir))?;
    }
    print(&args, &all, &machine, &registry, started);
    Ok(())
}

fn measure(args: &TypedArgs, seg: Segment, url: &str, writer: &Arc<WriterSchema>) -> Result<Figures, BenchError> {
    super::plain_read(&seg.files.log)?; // the page cache holds the segment for every pass
    let served_compression = ("served.compression".to_string(), args.served_compression.clone());
    let raw_config = vec![("value.mode".to_string(), "key_value".to_string()), served_compression.clone()];
    let typed_config = vec![
        ("value.mode".to_string(), "value_schema_id_prefix".to_string()),
        ("schema.registry.url".to_string(), url.to_string()),
        served_compression,
    ];
    let raw_served = seg.dir.join("served-raw.log");
    let typed_served = seg.dir.join("served-typed.log");
    let raw = mode(args, &seg, &raw_config, false, &raw_served)?;
    let typed = mode(args, &seg, &typed_config, true, &typed_served)?;
    let check = check_served(&seg, &raw_served, &typed_served)?;
    let split = split(&seg, writer, args.reference_mib << 20, args.runs)?;
    Ok(Figures { seg, raw, typed, split, check })
}

/// Converts `seg` `--runs` times with the plugin properties `config`, then reads the last
/// warehouse back in full (timed) and into `served` (untimed).
fn mode(args: &TypedArgs, seg: &Segment, config: &[(String, String)], typed: bool, served: &Path) -> Result<Mode, BenchError> {
    let wh = seg.dir.join("warehouse");
    let mut peak_bytes: Option<u64> = None;
    let convert = best(args.runs, || {
        if wh.exists() {
            std::fs::remove_dir_all(&wh).map_err(io_err(&wh))?;
        }
        let (t, peak, in_columns) = convert_in_child_with(seg, config)?;
        let expected = if typed { seg.stats.records } else { 0 };
        if in_columns != expected {
            return Err(BenchError::Usage(format!("{in_columns} of {} values went to columns, expected {expected}", seg.stats.records)));
        }
        peak_bytes = peak_bytes.max(peak);
        Ok(t)
    })?;
    let warehouse_bytes = data_bytes(&wh)?;
    let rsm = open_warehouse(&wh, config)?;
    let md: &SegmentMetadata = &seg.metadata;
    let mut buf = vec![0u8; 1 << 20];
    let mut served_bytes = 0;
    let full_read = best(args.runs, || {
        let (r, t) = timed(process_cpu_seconds, || read_served(&rsm, md, 0, u64::MAX, &mut buf));
        served_bytes = r?;
        Ok(t)
    })?;
    let fetch_ms = match args.fetches {
        0 => None,
        n => {
            let index = offset::parse(&rsm.fetch_index(md, IndexType::Offset)?)?;
            Some(latencies(&fetch_positions(&index, n), |p| read_served(&rsm, md, p, FETCH_BYTES as u64, &mut buf).map(drop))?)
        }
    };
    let mut stream = rsm.fetch_log_segment(md, 0, None)?;
    let mut out = BufWriter::new(File::create(served).map_err(io_err(served))?);
    std::io::copy(&mut stream, &mut out).map_err(io_err(served))?;
    out.flush().map_err(io_err(served))?;
    drop(rsm);
    std::fs::remove_dir_all(&wh).map_err(io_err(&wh))?;
    Ok(Mode { convert, peak_bytes, warehouse_bytes, served_bytes, full_read, fetch_ms })
}

/// Uncompressed: both served segments equal the original byte for byte. Compressed: the two
/// modes serve the same bytes, holding the original's records.
fn check_served(seg: &Segment, raw: &Path, typed: &Path) -> Result<String, BenchError> {
    let log = &seg.files.log;
    let fail = |what: String| Err(BenchError::Usage(format!("{} segment: {what}", seg.codec)));
    if seg.codec == Compression::None {
        for (name, p) in [("raw", raw), ("typed", typed)] {
            if !same_bytes(log, p)? {
                return fail(format!("the {name} mode's served segment differs from the original"));
            }
        }
        return Ok("both modes serve the original byte for byte".into());
    }
    if !same_bytes(raw, typed)? {
        return fail("the two modes serve different bytes".into());
    }
    let n = same_records(log, typed)?.ok_or_else(|| BenchError::Usage(format!("{}: served records differ from the original", seg.codec)))?;
    Ok(format!("both modes serve the same bytes; {n} records equal to the original's"))
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, BenchError> {
    let (mut fa, mut fb) = (File::open(a).map_err(io_err(a))?, File::open(b).map_err(io_err(b))?);
    if fa.metadata().map_err(io_err(a))?.len() != fb.metadata().map_err(io_err(b))?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).map_err(io_err(a))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(io_err(b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// The records of two segments, batch by batch (offsets, timestamps, producer fields, records);
/// their count if equal.
fn same_records(a: &Path, b: &Path) -> Result<Option<u64>, BenchError> {
    let (mut ra, mut rb) = (LogReader::open(a)?, LogReader::open(b)?);
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    loop {
        match (ra.next_entry()?, rb.next_entry()?) {
            (None, None) => return Ok(Some(n)),
            (Some(LogEntry::Batch(x)), Some(LogEntry::Batch(y))) => {
                let (hx, hy) = (&x.header, &y.header);
                if (hx.base_offset, hx.last_offset_delta, hx.base_timestamp, hx.max_timestamp, hx.producer_id, hx.base_sequence)
                    != (hy.base_offset, hy.last_offset_delta, hy.base_timestamp, hy.max_timestamp, hy.producer_id, hy.base_sequence)
                {
                    return Ok(None);
                }
                let xs: Vec<_> = x.records(&mut sa)?.collect::<Result<_, _>>()?;
                let ys: Vec<_> = y.records(&mut sb)?.collect::<Result<_, _>>()?;
                if xs != ys {
                    return Ok(None);
                }
                n += xs.len() as u64;
            }
            _ => return Ok(None),
        }
    }
}

fn usage(e: impl std::fmt::Display) -> BenchError {
    BenchError::Usage(e.to_string())
}

/// Calls `f` with the value of every record of the segment.
fn each_value(log: &Path, mut f: impl FnMut(Option<&[u8]>) -> Result<(), BenchError>) -> Result<(), BenchError> {
    let mut reader = LogReader::open(log)?;
    let mut scratch = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        let LogEntry::Batch(b) = entry else {
            return Err(BenchError::Usage("bench segments hold v2 batches only".into()));
        };
        for r in b.records(&mut scratch)? {
            f(r?.value)?;
        }
    }
    Ok(())
}

/// Where the typed convert's time goes (see [`Split`]), on this thread.
fn split(seg: &Segment, writer: &Arc<WriterSchema>, reference_bytes: u64, runs: u32) -> Result<Split, BenchError> {
    let log = &seg.files.log;
    // 1. The pre-scan, as calving-rsm's `typed::schema_ids` does it.
    let prescan = best(runs, || {
        let mut ids = std::collections::BTreeSet::new();
        let (r, t) = timed(thread_cpu_seconds, || {
            each_value(log, |v| {
                if let Some(f) = v.and_then(|v| wire::parse(v).ok()) {
                    ids.insert(f.schema_id);
                }
                Ok(())
            })
        });
        r.map(|()| t)
    })?;
    // 2. Decode into columns (one pass, canonical form checked inline), arrays finished
    //    every 8192 rows and dropped.
    let mut columns = ValueColumns::for_writer(writer).map_err(usage)?;
    let mut decoder = columns.decoder(writer.clone());
    let mut failed = 0u64;
    let decode = best(runs, || {
        let (r, t) = timed(thread_cpu_seconds, || {
            each_value(log, |v| {
                let payload = v.and_then(|v| wire::parse(v).ok()).map(|f| f.payload).unwrap_or_default();
                if columns.append(&mut decoder, payload).is_err() {
                    failed += 1;
                }
                if columns.len() == 8192 {
                    std::hint::black_box(columns.finish().map_err(usage)?);
                }
                Ok(())
            })
        });
        r.map(|()| t)
    })?;
    if failed > 0 {
        return Err(BenchError::Usage(format!("{failed} values did not decode losslessly")));
    }
    let decode = (decode.cpu - prescan.cpu).max(0.0);
    // The same again (untimed), keeping the chunks (and the raw values) that start within the
    // first `reference_bytes` of values for the Parquet encodes.
    let fields: Vec<(String, bool)> = columns.fields().iter().map(|f| (f.name().clone(), f.is_nullable())).collect();
    let (mut typed_batches, mut raw_batches) = (Vec::<RecordBatch>::new(), Vec::<RecordBatch>::new());
    let (mut raw_values, mut kept) = (Vec::<Vec<u8>>::new(), 0u64);
    columns.finish().map_err(usage)?;
    each_value(log, |v| {
        if kept >= reference_bytes && columns.is_empty() {
            return Ok(());
        }
        let payload = v.and_then(|v| wire::parse(v).ok()).map(|f| f.payload).unwrap_or_default();
        let _ = columns.append(&mut decoder, payload);
        let v = v.unwrap_or_default();
        kept += v.len() as u64;
        raw_values.push(v.to_vec());
        if columns.len() == 8192 {
            let arrays = columns.finish().map_err(usage)?;
            let typed = fields.iter().zip(arrays).map(|((n, nullable), a)| (n.as_str(), a, *nullable));
            typed_batches.push(RecordBatch::try_from_iter_with_nullable(typed).map_err(usage)?);
            let raw: ArrayRef = Arc::new(raw_values.drain(..).map(Some).collect::<LargeBinaryArray>());
            raw_batches.push(RecordBatch::try_from_iter_with_nullable([(names::VALUE, raw, true)]).map_err(usage)?);
        }
        Ok(())
    })?;
    // 3. Parquet encodes of the kept chunks, with the data files' writer settings.
    let encode = |chunks: &[RecordBatch]| -> Result<f64, BenchError> {
        let Some(first) = chunks.first() else { return Ok(0.0) };
        let t = best(runs, || {
            let props = writer_properties(1);
            let (r, t) = timed(thread_cpu_seconds, || -> Result<(), parquet::errors::ParquetError> {
                let mut w = ArrowWriter::try_new(std::io::sink(), first.schema(), Some(props))?;
                for c in chunks {
                    w.write(c)?;
                }
                w.close().map(drop)
            });
            r?;
            Ok(t)
        })?;
        Ok(t.cpu)
    };
    let kept_rows: usize = raw_batches.iter().map(RecordBatch::num_rows).sum();
    let scale = seg.stats.records as f64 / kept_rows.max(1) as f64;
    let parquet_typed = encode(&typed_batches)? * scale;
    let parquet_raw = encode(&raw_batches)? * scale;
    Ok(Split { prescan: prescan.cpu, decode, parquet_typed, parquet_raw })
}

/// A Schema Registry: one this bench started (stopped on drop) or the user's.
struct Registry {
    /// The Confluent API's base URL.
    url: String,
    pid: Option<String>,
}

impl Registry {
    /// Starts Apicurio Registry on a free loopback port with `tests/schema-registry/start.sh`.
    fn start(scratch: &Path) -> Result<Registry, BenchError> {
        let script = start_script()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_err(Path::new("127.0.0.1:0")))?
            .port();
        let log = scratch.join("apicurio.log");
        eprintln!("calving bench typed: starting Apicurio Registry on port {port} ({})…", script.display());
        let out = Command::new(&script).arg(port.to_string()).arg(&log).output().map_err(io_err(&script))?;
        let pid = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        if !out.status.success() || pid.parse::<u32>().is_err() {
            return Err(BenchError::Usage(format!(
                "{} failed ({}): {}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            )));
        }
        Ok(Registry { url: format!("http://127.0.0.1:{port}/apis/ccompat/v7"), pid: Some(pid) })
    }

    /// Registers `schema` of `schema_type` under `subject` through the Confluent API; its id.
    fn register(&self, subject: &str, schema_type: &str, schema: &str) -> Result<i32, BenchError> {
        let body = serde_json::json!({ "schema": schema, "schemaType": schema_type }).to_string();
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| BenchError::Usage(format!("--registry {}: only http:// URLs are supported", self.url)))?;
        let (host, path) = rest.split_once('/').map_or((rest, String::new()), |(h, p)| (h, format!("/{p}")));
        let addr = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
        let err = |e: std::io::Error| BenchError::Usage(format!("registering the schema at {}: {e}", self.url));
        let mut s = std::net::TcpStream::connect(&addr).map_err(err)?;
        write!(
            s,
            "POST {path}/subjects/{subject}/versions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(err)?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).map_err(err)?;
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        // The body may be chunked: the JSON object is between its outer braces.
        let json = body.find('{').and_then(|a| body.rfind('}').map(|b| &body[a..=b])).unwrap_or("");
        let id = serde_json::from_str::<serde_json::Value>(json).ok().and_then(|v| v["id"].as_i64());
        match id {
            Some(id) if head.starts_with("HTTP/1.1 200") => Ok(id as i32),
            _ => Err(BenchError::Usage(format!("registering the schema at {}: {head} {body}", self.url))),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(pid) = &self.pid {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}

/// `tests/schema-registry/start.sh` of the checkout: above the working directory, else where
/// this binary was built from.
fn start_script() -> Result<PathBuf, BenchError> {
    let rel = Path::new("tests/schema-registry/start.sh");
    let cwd = std::env::current_dir().unwrap_or_default();
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    cwd.ancestors()
        .chain(std::iter::once(built.as_path()))
        .map(|d| d.join(rel))
        .find(|p| p.is_file())
        .ok_or_else(|| BenchError::Usage("tests/schema-registry/start.sh not found: run from the checkout, or pass --registry URL".into()))
}

fn print(args: &TypedArgs, all: &[Figures], machine: &str, registry: &Registry, started: Option<f64>) {
    println!(
        "calving bench typed: {} MiB synthetic segments of {} orders (~1 KiB, Confluent wire format; 16-byte keys, \
         2 headers, 64 records/batch), converted as raw bytes (value.mode=key_value) and as columns \
         (value.mode=value_schema_id_prefix); best of {} runs",
        args.size_mib, args.format, args.runs
    );
    println!("machine: {machine} at the start, {} at the end", super::load());
    println!("served.compression={} in both modes", args.served_compression);
    match started {
        Some(s) => println!("registry: Apicurio Registry started by the bench at {} in {s:.1} s (excluded)", registry.url),
        None => println!("registry: {} (given)", registry.url),
    }
    println!(
        "registry time: each convert is a fresh process and asks the registry once for the schema id; that lookup is \
         included in the typed convert's CPU and wall time (the registry's own CPU is another process's, not counted)"
    );
    println!("* = MiB per CPU-second (per core) of all the convert's threads\n");
    println!(
        "{:<5} {:<8} {:>7} {:>7} {:>9} {:>9} {:>7} {:>7} {:>8} {:>7} {:>11} {:>10} {:>10}",
        "codec", "mode", "seg MiB", "rec MiB", "conv seg*", "conv rec*", "wall s", "cpu s", "peak MiB", "wh/seg", "full read*", "fetch p50", "fetch p99"
    );
    for f in all {
        for (name, m) in [("raw", &f.raw), (args.format.as_str(), &f.typed)] {
            let seg = mib(f.seg.stats.segment_bytes);
            println!(
                "{:<5} {:<8} {:>7.0} {:>7.0} {:>9.0} {:>9.0} {:>7.2} {:>7.2} {:>8} {:>7.2} {:>11.0} {:>10} {:>10}",
                f.seg.codec.name(),
                name,
                seg,
                mib(f.seg.stats.record_bytes),
                seg / m.convert.cpu,
                mib(f.seg.stats.record_bytes) / m.convert.cpu,
                m.convert.wall,
                m.convert.cpu,
                m.peak_bytes.map_or("n/a".into(), |b| format!("{:.0}", mib(b))),
                m.warehouse_bytes as f64 / f.seg.stats.segment_bytes as f64,
                mib(m.served_bytes) / m.full_read.cpu,
                m.fetch_ms.map_or("n/a".into(), |(p50, _)| format!("{p50:.2} ms")),
                m.fetch_ms.map_or("n/a".into(), |(_, p99)| format!("{p99:.2} ms")),
            );
        }
    }
    println!(
        "wh/seg: bytes of data files + sidecar / segment bytes; full read: the whole segment served in one stream \
         (MiB of segment bytes per CPU-second); fetch: 1 MiB from a random served-index position in the middle half, wall time\n"
    );
    println!("where the typed convert's extra CPU goes (one thread, best of {} runs, CPU seconds for the whole segment):", args.runs);
    println!(
        "{:<5} {:>9} {:>9} {:>9} {:>13} {:>12} {:>12}",
        "codec", "typed-raw", "pre-scan", "decode", "parquet typed", "parquet raw", "unexplained"
    );
    for f in all {
        let s = &f.split;
        let extra = f.typed.convert.cpu - f.raw.convert.cpu;
        let explained = s.prescan + s.decode + (s.parquet_typed - s.parquet_raw);
        println!(
            "{:<5} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>12.2} {:>12.2}",
            f.seg.codec.name(),
            extra,
            s.prescan,
            s.decode,
            s.parquet_typed,
            s.parquet_raw,
            extra - explained
        );
    }
    println!(
        "pre-scan: parse + wire header of every value (the copy's schema-id pass); decode: one pass into the columns, \
         canonical form checked inline; parquet: encode of the value columns vs the raw value column (zstd(1), from a prefix, \
         scaled); unexplained = typed-raw - pre-scan - decode - (parquet typed - parquet raw)\n"
    );
    println!("served:");
    for f in all {
        println!("  {:<5} {}", f.seg.codec.name(), f.check);
    }
    println!("\ntarget:");
    let cells: Vec<String> = all
        .iter()
        .map(|f| {
            let r = f.raw.convert.cpu / f.typed.convert.cpu;
            format!("{} {r:.2} {}", f.seg.codec.name(), if r >= 0.5 { "PASS" } else { "MISS" })
        })
        .collect();
    println!("  {:<50} {}", format!("{} convert >= 0.5 x raw convert (MiB/s per core)", args.format), cells.join("   "));
    let cells: Vec<String> = all
        .iter()
        .flat_map(|f| [("raw", &f.raw), (args.format.as_str(), &f.typed)].map(|(mode, m)| (f.seg.codec.name(), mode, m.fetch_ms)))
        .filter_map(|(codec, mode, ms)| ms.map(|(_, p99)| format!("{codec} {mode} {p99:.2} ms {}", if p99 <= 25.0 { "PASS" } else { "MISS" })))
        .collect();
    if !cells.is_empty() {
        println!("  {:<50} {}", "fetch p99 <= 25 ms", cells.join("   "));
    }
}
