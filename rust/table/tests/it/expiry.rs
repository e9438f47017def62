//! Snapshot expiry bounded by count as well as age (`calving.history.expire.max-snapshots`): a
//! table that takes one commit per segment keeps a bounded history whatever the age rule keeps.

use calving_table::ledger::{self, LedgerSource};
use calving_table::maintain::{expire_snapshots, MaintenanceOptions, MAX_SNAPSHOTS_PROP};
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::common::{all_referenced_files_exist, data_file, keys, rows, scanned_keys, segment, TempCatalog, TOPIC_ID};

#[tokio::test]
async fn expiry_keeps_at_most_max_snapshots_the_newest() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("bounded").await.unwrap();
    assert_eq!(table.metadata().properties()[MAX_SNAPSHOTS_PROP], "500", "tables Calving creates are bounded");
    let mut ids = vec![];
    for i in 0..8i64 {
        let table = cat.calving.load_table("bounded").await.unwrap();
        let rs = rows(0, i * 2, 2);
        let out = cat.calving.append("bounded", vec![data_file(&table, &rs)], segment(&format!("seg-{i}"), 0, i * 2, i * 2 + 1)).await.unwrap();
        ids.push(out.snapshot_id());
    }
    // Under the age rule (5 days) nothing is old enough; the count rule alone expires.
    let options = MaintenanceOptions::default();
    let idle = expire_snapshots(&cat.calving, "bounded", &options).await.unwrap();
    assert_eq!((idle.expired.len(), idle.retained), (0, 8));

    let table = cat.calving.load_table("bounded").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx.update_table_properties().set(MAX_SNAPSHOTS_PROP.into(), "3".into()).apply(tx).unwrap();
    tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let out = expire_snapshots(&cat.calving, "bounded", &options).await.unwrap();
    let mut expired = out.expired.clone();
    expired.sort();
    let mut oldest = ids[..5].to_vec();
    oldest.sort();
    assert_eq!((expired, out.retained), (oldest, 3), "the five oldest go");
    assert!(!out.deleted_files.is_empty(), "their manifest lists are deleted");
    let table = cat.calving.load_table("bounded").await.unwrap();
    let mut kept: Vec<i64> = table.metadata().snapshots().map(|s| s.snapshot_id()).collect();
    kept.sort();
    let mut newest = ids[5..].to_vec();
    newest.sort();
    assert_eq!(kept, newest);
    assert!(all_referenced_files_exist(&table).await);
    assert_eq!(scanned_keys(&table).await, keys(0, 0..16));
    let (l, source) = ledger::load(&table).await.unwrap();
    assert_eq!((l.ranges(TOPIC_ID, 0), source), (&[(0, 15)][..], LedgerSource::Snapshot(ids[7])));

    // The option wins over the property; the current snapshot always stays.
    let out = expire_snapshots(&cat.calving, "bounded", &MaintenanceOptions { max_snapshots: Some(0), ..options }).await.unwrap();
    assert_eq!((out.expired.len(), out.retained), (2, 1));
    let table = cat.calving.load_table("bounded").await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), Some(ids[7]));
    assert_eq!(scanned_keys(&table).await, keys(0, 0..16));
}
