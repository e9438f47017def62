//! `calving segment dump`: one line per batch and per record of a `.log` file, or per entry of an
//! index, snapshot or checkpoint file, in a human form or as JSON lines (`--json`).
//!
//! The JSON form names fields as Kafka does (`baseOffset`, `partitionLeaderEpoch`, …) and prints
//! every byte (keys, values, header values as lowercase hex, `null` kept apart from empty); the
//! test suite compares it with Kafka's own `DumpLogSegments` and record parser.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use calving_segment::index::{offset, time, txn};
use calving_segment::record::control::parse_control_record;
use calving_segment::record::batch::DEFAULT_MAX_UNCOMPRESSED;
use calving_segment::{leader_epoch, producer_snapshot, LogEntry, LogReader, ReadError, RecordBatch, TimestampType};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::SegmentCommandError;

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The file to dump.
    file: PathBuf,
    /// Print JSON lines instead of the human form.
    #[arg(long)]
    json: bool,
    /// Print batches only, not their records.
    #[arg(long)]
    batches_only: bool,
    /// The file's kind; by default taken from its name.
    #[arg(long, value_enum)]
    kind: Option<FileKind>,
    /// In the human form, show at most this many bytes of each key and value.
    #[arg(long, default_value_t = 64)]
    max_bytes: usize,
}

/// The kinds of files a segment has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileKind {
    Log,
    Index,
    Timeindex,
    Txnindex,
    Snapshot,
    LeaderEpoch,
}

impl FileKind {
    fn of(path: &Path) -> Option<FileKind> {
        let name = path.file_name()?.to_str()?;
        if name.starts_with("leader-epoch-checkpoint") {
            return Some(FileKind::LeaderEpoch);
        }
        match path.extension()?.to_str()? {
            "log" => Some(FileKind::Log),
            "index" => Some(FileKind::Index),
            "timeindex" => Some(FileKind::Timeindex),
            "txnindex" => Some(FileKind::Txnindex),
            "snapshot" => Some(FileKind::Snapshot),
            _ => None,
        }
    }
}

/// The segment's base offset from a file name like `00000000000000001234.index`.
fn base_offset_of(path: &Path) -> i64 {
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub fn run(args: DumpArgs) -> Result<(), SegmentCommandError> {
    let kind = args.kind.or_else(|| FileKind::of(&args.file)).ok_or_else(|| {
        SegmentCommandError::Usage(format!(
            "{}: cannot tell the file's kind from its name; pass --kind",
            args.file.display()
        ))
    })?;
    let stdout = io::stdout();
    let mut out = Printer { out: BufWriter::new(stdout.lock()), json: args.json, max_bytes: args.max_bytes };
    let result = match kind {
        FileKind::Log => dump_log(&args, &mut out),
        other => dump_side_file(&args.file, other, &mut out),
    };
    out.out.flush().map_err(SegmentCommandError::Output)?;
    result
}

struct Printer<W: Write> {
    out: W,
    json: bool,
    max_bytes: usize,
}

impl<W: Write> Printer<W> {
    fn line(&mut self, json: Value, human: impl FnOnce() -> String) -> Result<(), SegmentCommandError> {
        let r = if self.json { writeln!(self.out, "{json}") } else { writeln!(self.out, "{}", human()) };
        r.map_err(SegmentCommandError::Output)
    }

}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn hex_or_null(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, |b| Value::String(hex(b)))
}

/// Human form of a byte string: quoted text when it is printable UTF-8, else hex.
fn show_bytes(bytes: Option<&[u8]>, max: usize) -> String {
    let Some(b) = bytes else { return "null".into() };
    let (cut, more) = if b.len() > max { (&b[..max], format!("…(+{} bytes)", b.len() - max)) } else { (b, String::new()) };
    match std::str::from_utf8(cut) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => format!("{s:?}{more}"),
        _ => format!("0x{}{more}", hex(cut)),
    }
}

/// `DefaultRecord.sequence`: the batch's base sequence plus the offset delta, wrapping like Kafka.
fn record_sequence(base_sequence: i32, offset_delta: i32) -> i32 {
    if base_sequence < 0 {
        -1
    } else if base_sequence > i32::MAX - offset_delta {
        offset_delta - (i32::MAX - base_sequence) - 1
    } else {
        base_sequence + offset_delta
    }
}

fn dump_log<W: Write>(args: &DumpArgs, out: &mut Printer<W>) -> Result<(), SegmentCommandError> {
    let mut reader = LogReader::open(&args.file)?;
    let mut scratch = Vec::new();
    let in_file = |e: ReadError| e.in_file(&args.file);
    while let Some(entry) = reader.next_entry()? {
        match entry {
            LogEntry::Batch(batch) => {
                print_batch(&batch, out)?;
                if !args.batches_only {
                    print_records(&batch, &mut scratch, &args.file, out)?;
                }
            }
            LogEntry::Legacy(legacy) => {
                let records = legacy.records(&mut scratch, DEFAULT_MAX_UNCOMPRESSED).map_err(in_file)?;
                let h = &legacy;
                let base_offset = records.first().map_or(h.offset, |r| r.offset);
                let crc_valid = h.computed_crc() == h.crc;
                let codec = h.compression().expect("checked when parsed");
                out.line(
                    json!({
                        "type": "batch", "position": h.position, "sizeInBytes": h.bytes().len(), "magic": h.magic,
                        "baseOffset": base_offset, "lastOffset": h.offset, "count": Value::Null,
                        "crc": h.crc, "crcValid": crc_valid, "compression": codec.name(),
                        "timestampType": h.timestamp_type().name(), "maxTimestamp": h.timestamp,
                        "partitionLeaderEpoch": -1, "producerId": -1, "producerEpoch": -1, "baseSequence": -1,
                        "isTransactional": false, "isControl": false, "deleteHorizonMs": Value::Null,
                        "attributes": h.attributes,
                    }),
                    || {
                        format!(
                            "batch position={} offsets={}..{} size={} magic={} codec={} crc={:#010x}{} {} ts={}",
                            h.position,
                            base_offset,
                            h.offset,
                            h.bytes().len(),
                            h.magic,
                            codec,
                            h.crc,
                            if crc_valid { "" } else { " (CRC MISMATCH)" },
                            h.timestamp_type().name(),
                            h.timestamp
                        )
                    },
                )?;
                if !args.batches_only {
                    let max = out.max_bytes;
                    for r in &records {
                        out.line(
                            json!({
                                "type": "record", "offset": r.offset, "timestamp": r.timestamp, "sequence": -1,
                                "key": hex_or_null(r.key), "value": hex_or_null(r.value), "headers": [],
                            }),
                            || {
                                format!(
                                    "  record offset={} ts={} key={} value={}",
                                    r.offset,
                                    r.timestamp,
                                    show_bytes(r.key, max),
                                    show_bytes(r.value, max)
                                )
                            },
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_batch<W: Write>(batch: &RecordBatch<'_>, out: &mut Printer<W>) -> Result<(), SegmentCommandError> {
    let h = &batch.header;
    let crc_valid = batch.computed_crc() == h.crc;
    let a = h.attributes;
    out.line(
        json!({
            "type": "batch", "position": batch.position, "sizeInBytes": h.size_in_bytes(), "magic": h.magic,
            "baseOffset": h.base_offset, "lastOffset": h.last_offset(), "count": h.records_count,
            "crc": h.crc, "crcValid": crc_valid, "compression": batch.compression().name(),
            "timestampType": a.timestamp_type().name(), "baseTimestamp": h.base_timestamp, "maxTimestamp": h.max_timestamp,
            "partitionLeaderEpoch": h.partition_leader_epoch, "producerId": h.producer_id,
            "producerEpoch": h.producer_epoch, "baseSequence": h.base_sequence, "lastSequence": h.last_sequence(),
            "isTransactional": a.is_transactional(), "isControl": a.is_control(),
            "deleteHorizonMs": h.delete_horizon_ms(), "attributes": a.0,
        }),
        || {
            format!(
                "batch position={} offsets={}..{} count={} size={} magic={} codec={} crc={:#010x}{} {} base_ts={} max_ts={} \
                 leader_epoch={} producer={}/{} sequence={}..{}{}{}{}",
                batch.position,
                h.base_offset,
                h.last_offset(),
                h.records_count,
                h.size_in_bytes(),
                h.magic,
                batch.compression(),
                h.crc,
                if crc_valid { "" } else { " (CRC MISMATCH)" },
                a.timestamp_type().name(),
                h.base_timestamp,
                h.max_timestamp,
                h.partition_leader_epoch,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.last_sequence(),
                if a.is_transactional() { " transactional" } else { "" },
                if a.is_control() { " control" } else { "" },
                h.delete_horizon_ms().map(|d| format!(" delete_horizon={d}")).unwrap_or_default(),
            )
        },
    )
}

fn print_records<W: Write>(
    batch: &RecordBatch<'_>,
    scratch: &mut Vec<u8>,
    file: &Path,
    out: &mut Printer<W>,
) -> Result<(), SegmentCommandError> {
    let h = &batch.header;
    let max = out.max_bytes;
    let log_append = h.attributes.timestamp_type() == TimestampType::LogAppendTime;
    for record in batch.records(scratch).map_err(|e| e.in_file(file))? {
        let r = record.map_err(|e| e.in_file(file))?;
        let offset = h.base_offset + i64::from(r.offset_delta);
        let timestamp = if log_append { h.max_timestamp } else { h.base_timestamp.wrapping_add(r.timestamp_delta) };
        let sequence = record_sequence(h.base_sequence, r.offset_delta);
        let headers: Vec<Value> = r
            .headers
            .iter()
            .map(|hd| json!([String::from_utf8_lossy(hd.key), hex_or_null(hd.value)]))
            .collect();
        let mut j = json!({
            "type": "record", "offset": offset, "timestamp": timestamp, "sequence": sequence,
            "key": hex_or_null(r.key), "value": hex_or_null(r.value), "headers": headers,
        });
        let mut control_text = String::new();
        if h.attributes.is_control() {
            match parse_control_record(&r) {
                Ok(c) => {
                    j["control"] = json!({"type": c.kind.name(), "coordinatorEpoch": c.coordinator_epoch});
                    control_text = format!(
                        " control={}{}",
                        c.kind.name(),
                        c.coordinator_epoch.map(|e| format!(" coordinator_epoch={e}")).unwrap_or_default()
                    );
                }
                Err(reason) => {
                    j["control"] = json!({"error": reason});
                    control_text = format!(" control=<{reason}>");
                }
            }
        }
        out.line(j, || {
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|hd| format!("{}={}", String::from_utf8_lossy(hd.key), show_bytes(hd.value, max)))
                .collect();
            format!(
                "  record offset={offset} ts={timestamp} sequence={sequence} key={} value={} headers=[{}]{control_text}",
                show_bytes(r.key, max),
                show_bytes(r.value, max),
                headers.join(", ")
            )
        })?;
    }
    Ok(())
}

fn dump_side_file<W: Write>(path: &Path, kind: FileKind, out: &mut Printer<W>) -> Result<(), SegmentCommandError> {
    let bytes = std::fs::read(path).map_err(|source| SegmentCommandError::Io { path: path.to_path_buf(), source })?;
    let in_file = |e: ReadError| e.in_file(path);
    let base = base_offset_of(path);
    match kind {
        FileKind::Index => {
            for e in offset::parse(&bytes).map_err(in_file)? {
                let abs = base + i64::from(e.relative_offset);
                out.line(json!({"type": "offsetIndex", "offset": abs, "position": e.position}), || {
                    format!("offset={abs} position={}", e.position)
                })?;
            }
        }
        FileKind::Timeindex => {
            for e in time::parse(&bytes).map_err(in_file)? {
                let abs = base + i64::from(e.relative_offset);
                out.line(json!({"type": "timeIndex", "timestamp": e.timestamp, "offset": abs}), || {
                    format!("timestamp={} offset={abs}", e.timestamp)
                })?;
            }
        }
        FileKind::Txnindex => {
            for e in txn::parse(&bytes).map_err(in_file)? {
                out.line(
                    json!({"type": "abortedTxn", "version": e.version, "producerId": e.producer_id,
                           "firstOffset": e.first_offset, "lastOffset": e.last_offset,
                           "lastStableOffset": e.last_stable_offset}),
                    || {
                        format!(
                            "version={} producerId={} firstOffset={} lastOffset={} lastStableOffset={}",
                            e.version, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
                        )
                    },
                )?;
            }
        }
        FileKind::Snapshot => {
            let s = producer_snapshot::parse(&bytes).map_err(in_file)?;
            for e in &s.entries {
                out.line(
                    json!({"type": "producerState", "producerId": e.producer_id, "producerEpoch": e.producer_epoch,
                           "lastSequence": e.last_sequence, "lastOffset": e.last_offset, "offsetDelta": e.offset_delta,
                           "timestamp": e.timestamp, "coordinatorEpoch": e.coordinator_epoch,
                           "currentTxnFirstOffset": e.current_txn_first_offset}),
                    || {
                        format!(
                            "producerId={} producerEpoch={} lastSequence={} lastOffset={} offsetDelta={} timestamp={} \
                             coordinatorEpoch={} currentTxnFirstOffset={}",
                            e.producer_id,
                            e.producer_epoch,
                            e.last_sequence,
                            e.last_offset,
                            e.offset_delta,
                            e.timestamp,
                            e.coordinator_epoch,
                            e.current_txn_first_offset
                        )
                    },
                )?;
            }
        }
        FileKind::LeaderEpoch => {
            for e in leader_epoch::parse(&bytes).map_err(in_file)? {
                out.line(json!({"type": "leaderEpoch", "epoch": e.epoch, "startOffset": e.start_offset}), || {
                    format!("epoch={} startOffset={}", e.epoch, e.start_offset)
                })?;
            }
        }
        FileKind::Log => unreachable!("handled by dump_log"),
    }
    Ok(())
}
