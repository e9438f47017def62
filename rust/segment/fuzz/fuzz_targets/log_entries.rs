//! Any bytes as a `.log` file: walking entries, checking CRCs, decoding records of v2 batches
//! (every codec), control records and legacy wrappers must never panic, and must not allocate
//! past the decompression bound.
#![no_main]

use calving_segment::record::control::parse_control_record;
use calving_segment::{LogEntries, LogEntry};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for entry in LogEntries::new(data) {
        let Ok(entry) = entry else { break };
        let _ = entry.verify_crc();
        match entry {
            LogEntry::Batch(batch) => {
                let control = batch.header.attributes.is_control();
                if let Ok(records) = batch.records_with_limit(&mut scratch, LIMIT) {
                    for r in records {
                        let Ok(r) = r else { break };
                        let mut out = Vec::new();
                        r.write(&mut out);
                        let _ = r.headers.iter().count();
                        if control {
                            let _ = parse_control_record(&r);
                        }
                    }
                }
            }
            LogEntry::Legacy(legacy) => {
                let _ = legacy.records(&mut scratch, LIMIT);
            }
        }
    }
});
