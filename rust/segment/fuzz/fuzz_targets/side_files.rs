//! Any bytes as each of a segment's side files (offset, time and transaction index, producer
//! snapshot, leader-epoch checkpoint): parsing must never panic.
#![no_main]

use calving_segment::index::{offset, time, txn};
use calving_segment::{leader_epoch, producer_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = offset::parse(data) {
        let _ = offset::lookup(&entries, i32::from(data.first().copied().unwrap_or(0)));
    }
    let _ = time::parse(data);
    let _ = txn::parse(data);
    let _ = producer_snapshot::parse(data);
    let _ = leader_epoch::parse(data);
});
