//! `calving verify`: segment files against what the table and sidecar serve for them. Every
//! batch fact and every record must be equal (the codec, and so the size and CRC, of originally
//! compressed batches aside); uncompressed batches, control batches and legacy entries must come
//! back byte for byte. Exits non-zero naming the first difference.

use std::path::PathBuf;

use calving_segment::{Compression, LogEntries, LogEntry, LogReader};
use clap::Args;

use super::discover::{discover, SegmentIdentityArgs};
use super::{WarehouseArgs, WarehouseError};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub identity: SegmentIdentityArgs,
    /// Partition directories or `.log` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: VerifyArgs) -> Result<(), WarehouseError> {
    let rsm = args.warehouse.open()?;
    let segments = discover(&args.paths, &args.identity)?;
    let mut checked = 0;
    for s in &segments {
        let topic = &s.metadata.topic;
        let stored: Vec<_> = rsm
            .list_segments(topic)?
            .into_iter()
            .filter(|x| x.partition == s.metadata.partition && x.start_offset == s.metadata.start_offset)
            .collect();
        if stored.is_empty() {
            return Err(WarehouseError::Mismatch(format!("{}: not in the warehouse", s.files.log.display())));
        }
        for st in stored {
            let md = rsm.stored_segment_metadata(topic, &st)?;
            let mut served = Vec::new();
            let mut stream = rsm.fetch_log_segment(&md, 0, None)?;
            while let Some(chunk) = stream.next_chunk()? {
                served.extend_from_slice(chunk);
            }
            let (batches, records, identical) = compare(&s.files.log, &served)
                .map_err(|d| WarehouseError::Mismatch(format!("{} vs segment {}: {d}", s.files.log.display(), st.segment_id)))?;
            println!(
                "OK {} = segment {}: {batches} batches ({identical} byte-identical), {records} records",
                s.files.log.display(),
                st.segment_id
            );
            checked += 1;
        }
    }
    println!("verified {checked} stored segment(s)");
    Ok(())
}

/// Compares a segment file with served bytes; returns (batches, records, byte-identical batches)
/// or the first difference.
fn compare(log: &std::path::Path, served: &[u8]) -> Result<(u64, u64, u64), String> {
    let mut reader = LogReader::open(log).map_err(|e| e.to_string())?;
    let mut served_entries = LogEntries::new(served);
    let (mut batches, mut records, mut identical) = (0u64, 0u64, 0u64);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while let Some(original) = reader.next_entry().map_err(|e| e.to_string())? {
        let at = original.position();
        let served = served_entries
            .next()
            .ok_or_else(|| format!("the served segment ends before the original's batch at byte {at}"))?
            .map_err(|e| format!("served bytes: {e}"))?;
        batches += 1;
        if served.bytes() == original.bytes() {
            identical += 1;
            records += match &original {
                LogEntry::Batch(b) => b.header.records_count as u64,
                LogEntry::Legacy(_) => 1,
            };
            continue;
        }
        let (LogEntry::Batch(o), LogEntry::Batch(s)) = (&original, &served) else {
            return Err(format!("entry at byte {at} differs"));
        };
        if o.compression() == Compression::None || o.header.attributes.is_control() {
            return Err(format!("batch at byte {at} (offset {}) should come back byte for byte", o.header.base_offset));
        }
        s.verify_crc().map_err(|e| format!("served batch for offset {}: {e}", o.header.base_offset))?;
        let mut h = s.header.clone();
        h.attributes = h.attributes.with_compression(o.compression());
        h.crc = o.header.crc;
        h.batch_length = o.header.batch_length;
        if h != o.header {
            return Err(format!("batch at offset {}: facts differ: {:?} vs {:?}", o.header.base_offset, s.header, o.header));
        }
        let or: Vec<_> = o.records(&mut a).map_err(|e| e.to_string())?.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let sr: Vec<_> = s.records(&mut b).map_err(|e| e.to_string())?.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        for (x, y) in or.iter().zip(&sr) {
            if x != y {
                return Err(format!("offset {}: record differs", o.header.base_offset + i64::from(x.offset_delta)));
            }
        }
        if or.len() != sr.len() {
            return Err(format!("batch at offset {}: {} records served, {} stored", o.header.base_offset, sr.len(), or.len()));
        }
        records += or.len() as u64;
    }
    if served_entries.next().is_some() {
        return Err("the served segment has more batches than the original".into());
    }
    Ok((batches, records, identical))
}
