//! The SQLite SQL catalog: default table, adoption, exactly-once appends against the ledger,
//! concurrent brokers, the retry policy, and commits whose outcome is unknown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use calving_table::ledger::{self, Ledger, LedgerSource};
use calving_table::table::{columns, default_schema};
use calving_table::{
    ancestry, append, day_partition_value, ensure_table, field_id, partition_value,
    CalvingCatalog, CommitOutcome, Error, RetryPolicy, END_OFFSET_PROP, LEDGER_PROP, LEDGER_SNAPSHOT_PROP,
    PARTITION_PROP, SEGMENT_ID_PROP, START_OFFSET_PROP, TOPIC_ID_PROP,
};
use iceberg::spec::{
    Datum, NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{NamespaceIdent, TableCreation};

pub use crate::common::segment;
use crate::common::{
    all_referenced_files_exist, data_file, keys, rows, scanned_keys, unreferenced_metadata_files,
    TempCatalog, DAY0_US, TOPIC_ID,
};
use crate::faults::{Fault, FaultyCatalog, SqlFaults};

fn total_records(table: &Table) -> u64 {
    table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary().additional_properties["total-records"]
                .parse()
                .unwrap()
        })
        .unwrap_or(0)
}

/// One partition's entry of a ledger: (topic id, partition, ranges).
pub type LedgerEntry = (String, i32, Vec<(i64, i64)>);

/// The entries of a ledger, in its order.
pub fn ledger_entries(ledger: &Ledger) -> Vec<LedgerEntry> {
    ledger
        .iter()
        .map(|(t, p, r)| (t.to_string(), p, r.to_vec()))
        .collect()
}

/// `n` brokers (catalog instances on the same SQLite file) whose first table load meets the
/// others' at a barrier, so that they all plan their first commit on the same table state.
async fn brokers_meeting(cat: &TempCatalog, n: usize) -> Vec<(CalvingCatalog, Arc<FaultyCatalog>)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut out = vec![];
    for _ in 0..n {
        let inner = cat.calving.config().build().await.unwrap();
        let faulty = Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone()));
        out.push((
            CalvingCatalog::new(faulty.clone(), cat.calving.config().clone()),
            faulty,
        ));
    }
    out
}

#[tokio::test]
async fn creates_the_default_table_then_adopts_it() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("orders").await.unwrap();
    let md = table.metadata();
    assert_eq!(table.identifier().to_string(), "kafka.orders");
    assert_eq!(md.format_version(), iceberg::spec::FormatVersion::V2);

    // Field ids read back from the loaded table (the catalog may reassign them): here they are
    // the ones Calving declares.
    let schema = md.current_schema();
    for (name, id) in [
        ("kafka", 1),
        ("value", 2),
        (columns::TOPIC_ID, 3),
        (columns::PARTITION, 4),
        (columns::OFFSET, 5),
        (columns::TIMESTAMP, 6),
        (columns::KEY, 7),
        (columns::HEADERS, 8),
        ("kafka.headers.element", 9),
        ("kafka.headers.element.key", 10),
        ("kafka.headers.element.value", 11),
    ] {
        assert_eq!(schema.field_id_by_name(name), Some(id), "{name}");
    }
    assert_eq!(
        *schema.field_by_id(6).unwrap().field_type,
        Type::Primitive(PrimitiveType::Timestamptz)
    );

    let spec = md.default_partition_spec();
    assert_eq!(spec.fields().len(), 1);
    assert_eq!(spec.fields()[0].name, columns::TIMESTAMP_DAY);
    assert_eq!(spec.fields()[0].transform, Transform::Day);
    assert_eq!(
        spec.fields()[0].source_id,
        field_id(&table, columns::TIMESTAMP).unwrap()
    );

    let order = md.default_sort_order();
    let sources: Vec<i32> = order.fields.iter().map(|f| f.source_id).collect();
    assert_eq!(
        sources,
        vec![
            field_id(&table, columns::PARTITION).unwrap(),
            field_id(&table, columns::OFFSET).unwrap()
        ]
    );
    assert!(order
        .fields
        .iter()
        .all(|f| f.direction == iceberg::spec::SortDirection::Ascending));

    let props = md.properties();
    assert_eq!(props["write.parquet.compression-codec"], "zstd");
    assert_eq!(props["write.parquet.compression-level"], "1");
    assert_eq!(props["calving.layout-version"], "1");
    assert_eq!(props["write.metadata.metrics.column.kafka.topic_id"], "full");

    // A second broker adopts the same table.
    let other = cat.second_instance().await;
    let again = other.ensure_table("orders").await.unwrap();
    assert_eq!(again.metadata().uuid(), md.uuid());
}

#[tokio::test]
async fn brokers_racing_to_create_get_the_same_table() {
    let cat = TempCatalog::new().await;
    let a = cat.second_instance().await;
    let b = cat.second_instance().await;
    let (ta, tb) = tokio::join!(a.ensure_table("race"), b.ensure_table("race"));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    let loaded = cat.calving.load_table("race").await.unwrap();
    assert_eq!(ta.metadata().uuid(), loaded.metadata().uuid());
    assert_eq!(tb.metadata().uuid(), loaded.metadata().uuid());
}

#[tokio::test]
async fn adopts_a_table_created_ahead_with_its_own_spec_and_properties() {
    let cat = TempCatalog::new().await;
    let catalog = cat.calving.catalog().clone();
    let ns = NamespaceIdent::new("kafka".into());
    catalog.create_namespace(&ns, HashMap::new()).await.unwrap();
    // The default columns plus an extra optional one, partitioned by identity(kafka.partition).
    let mut fields: Vec<_> = default_schema().as_struct().fields().to_vec();
    fields.push(NestedField::optional(12, "note", Type::Primitive(PrimitiveType::String)).into());
    let schema = Schema::builder().with_fields(fields).build().unwrap();
    let spec = UnboundPartitionSpec::builder()
        .add_partition_field(4, "by_partition", Transform::Identity)
        .unwrap()
        .build();
    let creation = TableCreation::builder()
        .name("custom".to_string())
        .schema(schema)
        .partition_spec(spec)
        .properties(HashMap::from([(
            "owner".to_string(),
            "analytics".to_string(),
        )]))
        .build();
    catalog.create_table(&ns, creation).await.unwrap();

    let table = cat.calving.ensure_table("custom").await.unwrap();
    let md = table.metadata();
    assert_eq!(md.default_partition_spec().fields()[0].name, "by_partition");
    assert_eq!(
        md.properties().get("owner").map(String::as_str),
        Some("analytics")
    );
    assert!(
        !md.properties().contains_key("calving.layout-version"),
        "adopted as is"
    );
    assert!(md.current_schema().field_by_name("note").is_some());

    // Data files for it take their partition from its own spec.
    let part_id = field_id(&table, columns::PARTITION).unwrap();
    let partition = partition_value(&table, &HashMap::from([(part_id, Datum::int(2))])).unwrap();
    assert_ne!(partition, day_partition_value(DAY0_US));
    let rs = rows(2, 0, 4);
    let (location, size, written) = crate::common::write_parquet(&table, &rs, 10);
    assert!(location.contains("/by_partition=2/"), "{location}");
    let df = calving_table::data_file_from_parquet(&table, &location, size, &written, partition)
        .unwrap();
    let out = cat
        .calving
        .append("custom", vec![df], segment("seg-custom", 2, 0, 3))
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out;
    assert_eq!(scanned_keys(&table).await, keys(2, 0..4));
    let (ledger, _) = ledger::load(&table).await.unwrap();
    assert_eq!(ledger.ranges(TOPIC_ID, 2), &[(0, 3)]);
}

#[tokio::test]
async fn rejects_incompatible_tables_naming_the_column() {
    let cat = TempCatalog::new().await;
    let catalog = cat.calving.catalog().clone();
    let ns = NamespaceIdent::new("kafka".into());
    catalog.create_namespace(&ns, HashMap::new()).await.unwrap();

    let kafka = |offset_type: PrimitiveType, key_required: bool| {
        Type::Struct(iceberg::spec::StructType::new(
            default_schema()
                .field_by_name("kafka")
                .map(|f| match f.field_type.as_ref() {
                    Type::Struct(s) => s
                        .fields()
                        .iter()
                        .map(|f| match f.name.as_str() {
                            "offset" => NestedField::required(
                                f.id,
                                "offset",
                                Type::Primitive(offset_type.clone()),
                            )
                            .into(),
                            "key" => NestedField::new(
                                f.id,
                                "key",
                                Type::Primitive(PrimitiveType::Binary),
                                key_required,
                            )
                            .into(),
                            _ => f.clone(),
                        })
                        .collect(),
                    _ => unreachable!(),
                })
                .unwrap(),
        ))
    };
    let value = || NestedField::optional(2, "value", Type::Primitive(PrimitiveType::Binary)).into();
    let cases: Vec<(&str, Vec<iceberg::spec::NestedFieldRef>, &str)> = vec![
        (
            "offset_int",
            vec![
                NestedField::required(1, "kafka", kafka(PrimitiveType::Int, false)).into(),
                value(),
            ],
            "kafka.offset",
        ),
        (
            "no_value",
            vec![NestedField::required(1, "kafka", kafka(PrimitiveType::Long, false)).into()],
            "value",
        ),
        (
            "key_required",
            vec![
                NestedField::required(1, "kafka", kafka(PrimitiveType::Long, true)).into(),
                value(),
            ],
            "kafka.key",
        ),
        (
            "extra_required",
            vec![
                NestedField::required(1, "kafka", kafka(PrimitiveType::Long, false)).into(),
                value(),
                NestedField::required(20, "tenant", Type::Primitive(PrimitiveType::String)).into(),
            ],
            "tenant",
        ),
    ];
    for (name, fields, column) in cases {
        let schema = Schema::builder().with_fields(fields).build().unwrap();
        catalog
            .create_table(
                &ns,
                TableCreation::builder()
                    .name(name.to_string())
                    .schema(schema)
                    .build(),
            )
            .await
            .unwrap();
        let e = cat.calving.ensure_table(name).await.unwrap_err();
        match &e {
            Error::IncompatibleTable {
                table, column: c, ..
            } => {
                assert_eq!(table, &format!("kafka.{name}"));
                assert_eq!(c, column, "{e}");
            }
            other => panic!("{name}: {other}"),
        }
        assert!(!e.is_retriable());
    }
}

#[tokio::test]
async fn appends_exactly_once_against_the_ledger() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("events").await.unwrap();
    assert_eq!(
        ledger::load(&table).await.unwrap(),
        (Ledger::default(), LedgerSource::Empty)
    );

    let a = rows(0, 0, 6);
    let out = cat
        .calving
        .append("events", vec![data_file(&table, &a)], segment("seg-a", 0, 0, 5))
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_a,
        table,
    } = out;
    let b = rows(0, 6, 5);
    let out = cat
        .calving
        .append(
            "events",
            vec![data_file(&table, &b[..3]), data_file(&table, &b[3..])],
            segment("seg-b", 0, 6, 10),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_b,
        table,
    } = out;
    assert_ne!(snap_a, snap_b);
    assert_eq!(table.metadata().current_snapshot_id(), Some(snap_b));

    // The summary carries the segment's identity and the extra properties; the table's
    // properties the whole ledger, stamped with the snapshot.
    let p = &table
        .metadata()
        .snapshot_by_id(snap_b)
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(p[SEGMENT_ID_PROP], "seg-b");
    assert_eq!(p[TOPIC_ID_PROP], TOPIC_ID);
    assert_eq!(p[PARTITION_PROP], "0");
    assert_eq!(p[START_OFFSET_PROP], "6");
    assert_eq!(p[END_OFFSET_PROP], "10");
    assert_eq!(p["calving.broker-id"], "1");
    assert_eq!(p["added-data-files"], "2");
    assert!(!p.contains_key(LEDGER_PROP));
    let props = table.metadata().properties();
    assert_eq!(props[LEDGER_PROP], format!(r#"{{"{TOPIC_ID}":{{"0":[[0,10]]}}}}"#));
    assert_eq!(Ledger::decode(&props[LEDGER_PROP]).unwrap().ranges(TOPIC_ID, 0), &[(0, 10)]);
    assert_eq!(props[LEDGER_SNAPSHOT_PROP], snap_b.to_string());

    // The ledger: one merged range, found in the current snapshot.
    let (ledger, source) = ledger::load(&table).await.unwrap();
    assert_eq!(source, LedgerSource::Snapshot(snap_b));
    assert_eq!(ledger.ranges(TOPIC_ID, 0), &[(0, 10)]);
    assert!(ledger.ranges(TOPIC_ID, 1).is_empty());
    assert!(ledger.ranges("another-topic-id", 0).is_empty());
    assert!(ledger.covers(TOPIC_ID, 0, 7) && !ledger.covers(TOPIC_ID, 0, 11));

    // A retry of seg-a from another broker (a catalog instance that never saw the table): the
    // commit driver checks the fresh table and refuses, naming what the table holds.
    let other = cat.second_instance().await;
    let before = table.metadata().snapshots().count();
    let e = other
        .append("events", vec![data_file(&table, &a)], segment("seg-a", 0, 0, 5))
        .await
        .unwrap_err();
    match &e {
        Error::OffsetsAlreadyCommitted {
            table,
            topic_id,
            partition: 0,
            start_offset: 0,
            end_offset: 5,
            existing,
        } => {
            assert_eq!(table, "kafka.events");
            assert_eq!(topic_id, TOPIC_ID);
            assert_eq!(existing, &vec![(0, 10)]);
        }
        other => panic!("{other}"),
    }
    assert!(!e.is_retriable());
    // A re-upload of offsets 3..=8 under a new segment id: refused as well.
    let e = other
        .append("events", vec![data_file(&table, &a[3..])], segment("seg-a2", 0, 3, 8))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::OffsetsAlreadyCommitted { existing, start_offset: 3, end_offset: 8, .. } if existing == &vec![(0, 10)]),
        "{e}"
    );
    // A plan made on an older view of the table (it saw only seg-a) is refused too.
    let mut stale_plan = segment("seg-c", 0, 3, 12);
    stale_plan.already_held = vec![(0, 5)];
    let e = other
        .append("events", vec![data_file(&table, &rows(0, 6, 7))], stale_plan)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 10)]), "{e}");
    let table = cat.calving.load_table("events").await.unwrap();
    assert_eq!(
        table.metadata().snapshots().count(),
        before,
        "no snapshot added by the refused commits"
    );
    assert_eq!(total_records(&table), 11);
    assert_eq!(scanned_keys(&table).await, keys(0, 0..11));
    assert!(unreferenced_metadata_files(&table).await.is_empty());

    // A re-upload of 3..=12 planned around what the table holds writes only 11..=12: it lands.
    let mut planned = segment("seg-c", 0, 3, 12);
    planned.already_held = vec![(0, 10)];
    other
        .append("events", vec![data_file(&table, &rows(0, 11, 2))], planned.clone())
        .await
        .unwrap();
    // The same plan once more (a retry after it landed) no longer matches the ledger.
    let e = other
        .append("events", vec![data_file(&table, &rows(0, 11, 2))], planned)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 12)]), "{e}");

    // The same offsets in another partition, or under another topic id (a re-created topic), land.
    let table = cat.calving.load_table("events").await.unwrap();
    let out = cat
        .calving
        .append("events", vec![data_file(&table, &rows(1, 0, 6))], segment("seg-p1", 1, 0, 5))
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out;
    let mut recreated = segment("seg-new-topic", 0, 0, 5);
    recreated.topic_id = "Zm9vYmFyYmF6cXV4cXV1eA".into();
    let mut moved = a.clone();
    for r in &mut moved {
        r.topic_id = recreated.topic_id.clone();
    }
    append(&cat.calving, "events", vec![data_file(&table, &moved)], recreated)
        .await
        .unwrap();

    // A segment without records (e.g. only control batches) is still recorded in the ledger.
    let out = cat
        .calving
        .append("events", vec![], segment("seg-empty", 0, 13, 14))
        .await
        .unwrap();
    let CommitOutcome::Committed { snapshot_id, table } = out;
    assert_eq!(
        ledger::load(&table).await.unwrap(),
        (
            {
                let mut l = Ledger::default();
                l.add(TOPIC_ID, 0, 0, 14);
                l.add(TOPIC_ID, 1, 0, 5);
                l.add("Zm9vYmFyYmF6cXV4cXV1eA", 0, 0, 5);
                l
            },
            LedgerSource::Snapshot(snapshot_id)
        )
    );
    assert_eq!(total_records(&table), 11 + 2 + 6 + 6);
    let mut expected = keys(0, 0..13);
    expected.extend(keys(1, 0..6));
    expected.extend((0..6).map(|o| ("Zm9vYmFyYmF6cXV4cXV1eA".to_string(), 0, o)));
    expected.sort();
    assert_eq!(scanned_keys(&table).await, expected);
    assert_eq!(ancestry(&table).count(), 6);
}

#[tokio::test]
async fn invalid_segment_commits_are_rejected() {
    let cat = TempCatalog::new().await;
    cat.calving.ensure_table("invalid").await.unwrap();
    let mut no_topic = segment("s", 0, 0, 1);
    no_topic.topic_id.clear();
    for bad in [
        segment("", 0, 0, 1),
        no_topic,
        segment("s", 0, 5, 4),
        segment("s", -1, 0, 1),
        segment("s", 0, -1, 1),
    ] {
        let e = cat.calving.append("invalid", vec![], bad).await.unwrap_err();
        assert!(!e.is_retriable(), "{e}");
    }
    let table = cat.calving.load_table("invalid").await.unwrap();
    assert!(table.metadata().current_snapshot().is_none());
}

/// Two brokers (two catalog instances on the same SQLite file) append different segments at the
/// same time. A barrier makes both plan their first commit on the same table state, so exactly
/// one of them conflicts; the commit driver reloads, checks the ledger again and re-commits.
/// Both land, once each, in a linear history, and nothing the lost attempt wrote is left over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_on_the_same_base_both_land_exactly_once() {
    let cat = TempCatalog::with_props(&[
        ("commit.retry.min-wait-ms", "10"),
        ("commit.retry.max-wait-ms", "100"),
    ])
    .await;
    let table = cat.calving.ensure_table("busy").await.unwrap();
    cat.calving
        .append("busy", vec![data_file(&table, &rows(0, 0, 3))], segment("seg-0", 0, 0, 2))
        .await
        .unwrap();

    let brokers = brokers_meeting(&cat, 2).await;
    let (f1, f2) = (data_file(&table, &rows(1, 0, 4)), data_file(&table, &rows(2, 0, 5)));
    let (r1, r2) = tokio::join!(
        brokers[0].0.append("busy", vec![f1], segment("seg-p1", 1, 0, 3)),
        brokers[1].0.append("busy", vec![f2], segment("seg-p2", 2, 0, 4)),
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_ne!(r1.snapshot_id(), r2.snapshot_id());
    let loads: usize = brokers.iter().map(|(_, f)| f.loads()).sum();
    assert_eq!(loads, 3, "exactly one of the two commits conflicted, and was re-planned once");

    let table = cat.calving.load_table("busy").await.unwrap();
    let ids: Vec<String> = ancestry(&table)
        .map(|s| s.summary().additional_properties[SEGMENT_ID_PROP].clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["seg-0", "seg-p1", "seg-p2"], "each segment once, in one linear history");
    assert_eq!(ids.last().unwrap(), "seg-0");
    assert_eq!(table.metadata().snapshots().count(), 3);
    // The re-planned commit carried the winner's ledger forward.
    let (ledger, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&ledger),
        vec![
            (TOPIC_ID.to_string(), 0, vec![(0, 2)]),
            (TOPIC_ID.to_string(), 1, vec![(0, 3)]),
            (TOPIC_ID.to_string(), 2, vec![(0, 4)]),
        ]
    );
    assert_eq!(total_records(&table), 3 + 4 + 5);
    let mut expected = keys(0, 0..3);
    expected.extend(keys(1, 0..4));
    expected.extend(keys(2, 0..5));
    assert_eq!(scanned_keys(&table).await, expected);
    assert_eq!(
        unreferenced_metadata_files(&table).await,
        Vec::<String>::new(),
        "the conflicting attempt's manifest list and metadata file are cleaned up"
    );
}

/// Two brokers commit the *same* offsets at the same time (e.g. around a leader change): the one
/// that conflicts re-plans on the reloaded table, finds the offsets in the ledger and refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_of_the_same_offsets_land_once() {
    let cat = TempCatalog::with_props(&[("commit.retry.min-wait-ms", "10")]).await;
    let table = cat.calving.ensure_table("twice").await.unwrap();
    let brokers = brokers_meeting(&cat, 2).await;
    let rs = rows(0, 0, 5);
    let (f1, f2) = (data_file(&table, &rs), data_file(&table, &rs));
    let (r1, r2) = tokio::join!(
        brokers[0].0.append("twice", vec![f1], segment("seg-same", 0, 0, 4)),
        brokers[1].0.append("twice", vec![f2], segment("seg-same", 0, 0, 4)),
    );
    let (ok, err) = match (r1, r2) {
        (Ok(o), Err(e)) | (Err(e), Ok(o)) => (o, e),
        other => panic!("expected one commit and one refusal: {other:?}"),
    };
    assert!(
        matches!(&err, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 4)]),
        "{err}"
    );
    let table = cat.calving.load_table("twice").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    assert_eq!(table.metadata().current_snapshot_id(), Some(ok.snapshot_id()));
    assert_eq!(scanned_keys(&table).await, keys(0, 0..5));
    assert!(
        unreferenced_metadata_files(&table).await.is_empty(),
        "the refused commit's manifest and manifest list are cleaned up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_retry_settings_from_the_config_are_respected() {
    // No retries: the commit that loses the race fails with a retriable CommitConflict.
    let cat = TempCatalog::with_props(&[("commit.retry.num-retries", "0")]).await;
    let table = cat.calving.ensure_table("strict").await.unwrap();
    assert_eq!(
        RetryPolicy::for_table(&table, cat.calving.config().commit_retry()),
        RetryPolicy { num_retries: 0, ..RetryPolicy::default() }
    );
    let brokers = brokers_meeting(&cat, 2).await;
    let (f1, f2) = (data_file(&table, &rows(1, 0, 2)), data_file(&table, &rows(2, 0, 2)));
    let (r1, r2) = tokio::join!(
        brokers[0].0.append("strict", vec![f1.clone()], segment("s1", 1, 0, 1)),
        brokers[1].0.append("strict", vec![f2.clone()], segment("s2", 2, 0, 1)),
    );
    let (ok, err) = match (r1, r2) {
        (Ok(o), Err(e)) => (o, (e, f2, segment("s2", 2, 0, 1))),
        (Err(e), Ok(o)) => (o, (e, f1, segment("s1", 1, 0, 1))),
        other => panic!("expected one conflict: {other:?}"),
    };
    assert!(matches!(err.0, Error::CommitConflict { .. }), "{}", err.0);
    assert!(err.0.is_retriable());
    let loads: usize = brokers.iter().map(|(_, f)| f.loads()).sum();
    assert_eq!(loads, 2, "no retry");
    let table = cat.calving.load_table("strict").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1, "the conflicting commit left nothing");
    assert_eq!(table.metadata().current_snapshot_id(), Some(ok.snapshot_id()));
    assert_eq!(
        unreferenced_metadata_files(&table).await,
        Vec::<String>::new(),
        "what the failed commit wrote (manifest, manifest list, metadata file) is deleted"
    );
    // Retrying it later succeeds.
    cat.calving.append("strict", vec![err.1], err.2).await.unwrap();

    // A table's own commit.retry.* properties win over the configuration.
    let table = cat.calving.load_table("strict").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .set("commit.retry.num-retries".into(), "3".into())
        .set("commit.retry.min-wait-ms".into(), "10".into())
        .set("commit.retry.max-wait-ms".into(), "50".into())
        .set("commit.retry.total-timeout-ms".into(), "60000".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    assert_eq!(
        RetryPolicy::for_table(&table, cat.calving.config().commit_retry()),
        RetryPolicy {
            num_retries: 3,
            min_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(50),
            total_timeout: Duration::from_millis(60_000),
        }
    );
    let brokers = brokers_meeting(&cat, 2).await;
    let (f3, f4) = (data_file(&table, &rows(3, 0, 2)), data_file(&table, &rows(4, 0, 2)));
    let (r3, r4) = tokio::join!(
        brokers[0].0.append("strict", vec![f3], segment("s3", 3, 0, 1)),
        brokers[1].0.append("strict", vec![f4], segment("s4", 4, 0, 1)),
    );
    assert!(r3.is_ok() && r4.is_ok(), "{r3:?} {r4:?}");
    let loads: usize = brokers.iter().map(|(_, f)| f.loads()).sum();
    assert_eq!(loads, 3, "the conflict was retried once");

    // A total timeout shorter than the first wait: no retry either.
    let table = cat.calving.load_table("strict").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .set("commit.retry.min-wait-ms".into(), "5000".into())
        .set("commit.retry.total-timeout-ms".into(), "1000".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let brokers = brokers_meeting(&cat, 2).await;
    let (f5, f6) = (data_file(&table, &rows(5, 0, 2)), data_file(&table, &rows(6, 0, 2)));
    let started = std::time::Instant::now();
    let (r5, r6) = tokio::join!(
        brokers[0].0.append("strict", vec![f5], segment("s5", 5, 0, 1)),
        brokers[1].0.append("strict", vec![f6], segment("s6", 6, 0, 1)),
    );
    assert!(
        matches!((&r5, &r6), (Ok(_), Err(Error::CommitConflict { .. })) | (Err(Error::CommitConflict { .. }), Ok(_))),
        "{r5:?} {r6:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "gave up without waiting");
}

/// Commits whose answer is lost, injected in the SQLite catalog itself (see `SqlFaults`): the
/// commit driver reloads and tells by its snapshot id whether the commit landed.
#[tokio::test]
async fn lost_commit_answers_are_reconciled() {
    let cat = TempCatalog::with_props(&[("commit.retry.min-wait-ms", "10")]).await;
    let faulty = Arc::new(FaultyCatalog::new(cat.calving.catalog().clone()));
    let broker = CalvingCatalog::new(faulty.clone(), cat.calving.config().clone());
    let table = broker.ensure_table("flaky").await.unwrap();
    let sql = SqlFaults::install(cat.calving.config().uri()).await;

    // Applied, answer lost: the driver reloads, finds its snapshot and reports it committed.
    sql.inject(Fault::ApplyThenLoseAnswer).await;
    let out = broker
        .append("flaky", vec![data_file(&table, &rows(0, 0, 4))], segment("seg-1", 0, 0, 3))
        .await
        .unwrap();
    assert_eq!(sql.fired().await, (1, false), "the fault fired");
    let reloaded = broker.load_table("flaky").await.unwrap();
    assert_eq!(reloaded.metadata().current_snapshot_id(), Some(out.snapshot_id()));
    assert_eq!(reloaded.metadata().snapshots().count(), 1, "committed once");
    assert_eq!(scanned_keys(&reloaded).await, keys(0, 0..4));

    // Not applied: the driver reloads, does not find it, plans again and commits, once.
    sql.inject(Fault::FailWithoutApplying).await;
    let out = broker
        .append("flaky", vec![data_file(&table, &rows(0, 4, 4))], segment("seg-2", 0, 4, 7))
        .await
        .unwrap();
    assert_eq!(sql.fired().await, (2, false), "the fault fired");
    let reloaded = broker.load_table("flaky").await.unwrap();
    assert_eq!(reloaded.metadata().current_snapshot_id(), Some(out.snapshot_id()));
    assert_eq!(reloaded.metadata().snapshots().count(), 2);
    assert_eq!(scanned_keys(&reloaded).await, keys(0, 0..8));

    // Applied, answer lost, and the catalog is gone when reconciling: CommitStateUnknown
    // (retriable) naming the snapshot; nothing it wrote is deleted. Once the catalog is back,
    // the snapshot is there, and a retry of the same offsets is refused by the ledger.
    // (The broker plans on the state it committed last, without a load: the catalog is gone from
    // the first load on, which is the reconciling one.)
    sql.inject(Fault::ApplyThenLoseAnswer).await;
    faulty.go_away_after_loads(0);
    let e = broker
        .append("flaky", vec![data_file(&table, &rows(0, 8, 4))], segment("seg-3", 0, 8, 11))
        .await
        .unwrap_err();
    assert_eq!(sql.fired().await, (3, false), "the fault fired");
    let Error::CommitStateUnknown { table: t, what, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(t, "kafka.flaky");
    assert!(e.is_retriable());
    faulty.heal();
    let reloaded = broker.load_table("flaky").await.unwrap();
    let landed = reloaded.metadata().current_snapshot_id().unwrap();
    assert!(what.contains(&landed.to_string()), "the error names the snapshot: {e}");
    assert_eq!(reloaded.metadata().snapshots().count(), 3);
    assert!(all_referenced_files_exist(&reloaded).await);
    let e = broker
        .append("flaky", vec![data_file(&table, &rows(0, 8, 4))], segment("seg-3", 0, 8, 11))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 11)]), "{e}");

    // Not applied, and the catalog is gone when reconciling: CommitStateUnknown too; what it
    // wrote stays (the orphan sweep's business: it cannot know), nothing landed, and the retry
    // commits once.
    let before = unreferenced_metadata_files(&broker.load_table("flaky").await.unwrap()).await;
    sql.inject(Fault::FailWithoutApplying).await;
    faulty.go_away_after_loads(0);
    let df = data_file(&table, &rows(0, 12, 4));
    let e = broker
        .append("flaky", vec![df.clone()], segment("seg-4", 0, 12, 15))
        .await
        .unwrap_err();
    assert_eq!(sql.fired().await, (4, false), "the fault fired");
    assert!(matches!(e, Error::CommitStateUnknown { .. }), "{e}");
    faulty.heal();
    let reloaded = broker.load_table("flaky").await.unwrap();
    assert_eq!(reloaded.metadata().snapshots().count(), 3, "nothing landed");
    let left = unreferenced_metadata_files(&reloaded).await;
    let kept: Vec<&String> = left.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        kept.iter().any(|p| p.contains("/snap-")) && kept.iter().any(|p| p.ends_with("-m0.avro")),
        "its manifest and manifest list are kept: {kept:?}"
    );
    broker
        .append("flaky", vec![df], segment("seg-4", 0, 12, 15))
        .await
        .unwrap();

    // The catalog is unavailable from the start, for a broker that knows no state of the table
    // yet (it must load it first): CatalogUnavailable (retriable), nothing written.
    broker.forget_table_state("flaky");
    faulty.go_away_after_loads(0);
    let e = broker
        .append("flaky", vec![data_file(&table, &rows(0, 16, 1))], segment("seg-5", 0, 16, 16))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CatalogUnavailable { .. }), "{e}");
    assert!(e.is_retriable());
    faulty.heal();

    let table = broker.load_table("flaky").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 4);
    assert_eq!(ledger::load(&table).await.unwrap().0.ranges(TOPIC_ID, 0), &[(0, 15)]);
    assert_eq!(scanned_keys(&table).await, keys(0, 0..16));
    assert_eq!(unreferenced_metadata_files(&table).await, left, "nothing else left over");
}

/// Several brokers (catalog instances on the same SQLite file), each appending segments of its
/// own partitions, all at once, with the default retry policy: every commit lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_appending_different_partitions_all_land() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("shared").await.unwrap();
    const BROKERS: i32 = 4;
    const PARTITIONS_PER_BROKER: i32 = 2;
    const SEGMENTS: i64 = 3;
    const ROWS: i64 = 3;
    let mut brokers = vec![];
    for _ in 0..BROKERS {
        brokers.push(cat.second_instance().await);
    }
    let mut tasks = vec![];
    for (b, broker) in brokers.iter().enumerate() {
        for k in 0..PARTITIONS_PER_BROKER {
            let partition = b as i32 * PARTITIONS_PER_BROKER + k;
            let (broker, table) = (broker.clone(), table.clone());
            tasks.push(tokio::spawn(async move {
                for s in 0..SEGMENTS {
                    let first = s * ROWS;
                    let df = data_file(&table, &rows(partition, first, ROWS as usize));
                    broker
                        .append("shared", vec![df], segment(&format!("p{partition}-s{s}"), partition, first, first + ROWS - 1))
                        .await
                        .unwrap_or_else(|e| panic!("partition {partition} segment {s}: {e}"));
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let table = cat.calving.load_table("shared").await.unwrap();
    let partitions = BROKERS * PARTITIONS_PER_BROKER;
    // Appends of one broker may share a snapshot (group commit): every segment is in exactly one.
    let segments_committed: i64 = ancestry(&table)
        .map(|s| s.summary().additional_properties.get(calving_table::SEGMENTS_PROP).map_or(1, |n| n.parse::<i64>().unwrap()))
        .sum();
    assert_eq!(segments_committed, partitions as i64 * SEGMENTS);
    assert_eq!(ancestry(&table).count(), table.metadata().snapshots().count(), "one linear history");
    let (ledger, _) = ledger::load(&table).await.unwrap();
    assert_eq!(
        ledger_entries(&ledger),
        (0..partitions)
            .map(|p| (TOPIC_ID.to_string(), p, vec![(0, SEGMENTS * ROWS - 1)]))
            .collect::<Vec<_>>()
    );
    let expected: Vec<_> = (0..partitions).flat_map(|p| keys(p, 0..SEGMENTS * ROWS)).collect();
    assert_eq!(scanned_keys(&table).await, expected);
}

#[tokio::test]
async fn the_free_ensure_table_adopts_the_table_as_it_is() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("adopted").await.unwrap();
    cat.calving
        .append("adopted", vec![data_file(&table, &rows(0, 0, 2))], segment("s", 0, 0, 1))
        .await
        .unwrap();
    let table = cat.calving.load_table("adopted").await.unwrap();
    let again = ensure_table(
        cat.calving.catalog().as_ref(),
        &NamespaceIdent::new("kafka".into()),
        "adopted",
    )
    .await
    .unwrap();
    assert_eq!(
        again.metadata().current_snapshot_id(),
        table.metadata().current_snapshot_id()
    );
}

/// Group commit: appends to one table that arrive while a commit is in flight go together in the
/// next commit (one snapshot, one manifest, every member in the ledger); a member whose offsets
/// the table holds already is refused alone, the others land.
#[tokio::test]
async fn appends_waiting_for_a_commit_share_the_next_snapshot() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("grouped").await.unwrap();
    const N: i32 = 6;
    let appends = (0..N).map(|p| {
        let df = data_file(&table, &rows(p, 0, 3));
        cat.calving.append("grouped", vec![df], segment(&format!("g{p}"), p, 0, 2))
    });
    // A duplicate of partition 0's offsets, queued behind it: refused alone.
    let dup = cat.calving.append("grouped", vec![data_file(&table, &rows(0, 0, 3))], segment("g0-again", 0, 0, 2));
    let (results, dup) = tokio::join!(futures::future::join_all(appends), dup);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(matches!(dup, Err(Error::OffsetsAlreadyCommitted { .. })), "{dup:?}");
    let table = cat.calving.load_table("grouped").await.unwrap();
    let snapshots: Vec<_> = ancestry(&table).collect();
    assert!(snapshots.len() < N as usize, "{} snapshots for {N} appends: no group formed", snapshots.len());
    let grouped = snapshots
        .iter()
        .filter_map(|s| s.summary().additional_properties.get(calving_table::SEGMENTS_PROP))
        .map(|n| n.parse::<usize>().unwrap())
        .max()
        .unwrap_or(1);
    assert!(grouped >= 2, "a snapshot holds several segments");
    let (ledger, _) = ledger::load(&table).await.unwrap();
    for p in 0..N {
        assert_eq!(ledger.ranges(TOPIC_ID, p), &[(0, 2)]);
    }
    let expected: Vec<_> = (0..N).flat_map(|p| keys(p, 0..3)).collect();
    assert_eq!(scanned_keys(&table).await, expected, "every member once, the refused one not at all");
    // One new manifest per commit: the manifest list has one entry per snapshot.
    let list = table.manifest_list_reader(table.metadata().current_snapshot().unwrap()).load().await.unwrap();
    assert_eq!(list.entries().len(), snapshots.len());
}

/// A broker that is a table's only writer plans each commit on the table its last commit
/// returned (no load, no metadata parse); once another writer commits, its next commit planned
/// on the stale state conflicts, reloads, is checked against the fresh ledger and lands, and
/// from then on it loads before every plan (the table is shared).
#[tokio::test]
async fn a_sole_writer_plans_on_its_last_commit_and_a_shared_table_is_loaded() {
    let cat = TempCatalog::new().await;
    let faulty = Arc::new(FaultyCatalog::new(
        cat.calving.config().build().await.unwrap(),
    ));
    let broker = CalvingCatalog::new(faulty.clone(), cat.calving.config().clone());
    let table = broker.ensure_table("sole").await.unwrap();
    let loads = faulty.loads();
    for i in 0..3 {
        broker
            .append(
                "sole",
                vec![data_file(&table, &rows(0, i * 2, 2))],
                segment(&format!("s{i}"), 0, i * 2, i * 2 + 1),
            )
            .await
            .unwrap();
    }
    assert_eq!(faulty.loads(), loads, "three commits, no load");

    // Another writer commits partition 1, then this broker commits more of partition 0 and
    // re-commits offsets the other writer took meanwhile.
    let other = cat.second_instance().await;
    other
        .append(
            "sole",
            vec![data_file(&table, &rows(1, 0, 2))],
            segment("o1", 1, 0, 1),
        )
        .await
        .unwrap();
    let loads = faulty.loads();
    broker
        .append(
            "sole",
            vec![data_file(&table, &rows(0, 6, 2))],
            segment("s3", 0, 6, 7),
        )
        .await
        .unwrap();
    assert_eq!(
        faulty.loads(),
        loads + 1,
        "the stale plan conflicted and the retry loaded"
    );
    let e = broker
        .append(
            "sole",
            vec![data_file(&table, &rows(1, 0, 2))],
            segment("dup", 1, 0, 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::OffsetsAlreadyCommitted { existing, .. } if existing == &vec![(0, 1)]),
        "{e}"
    );
    assert_eq!(
        faulty.loads(),
        loads + 2,
        "a shared table is loaded before every plan"
    );
    let stats = broker.commit_stats();
    assert_eq!(
        (stats.commits, stats.segments, stats.conflicts, stats.refused, stats.failed),
        (4, 4, 1, 1, 0),
        "counted: four commits of one segment each, one conflict, one refused member: {stats:?}"
    );

    let table = broker.load_table("sole").await.unwrap();
    let (ledger, _) = ledger::load(&table).await.unwrap();
    assert_eq!(ledger.ranges(TOPIC_ID, 0), &[(0, 7)]);
    assert_eq!(ledger.ranges(TOPIC_ID, 1), &[(0, 1)]);
    let mut expected = keys(0, 0..8);
    expected.extend(keys(1, 0..2));
    expected.sort();
    let mut got = scanned_keys(&table).await;
    got.sort();
    assert_eq!(got, expected, "every offset once");
}

/// Group commit under contention: appends that queue while a group waits out a conflict join
/// that group when it plans again (one snapshot for all of them, not the conflicting one alone
/// and the others in the next round), each checked against the ledger on its own: one whose
/// offsets the other writer took meanwhile is refused alone.
#[tokio::test]
async fn appends_queued_while_a_group_retries_join_it() {
    let cat = TempCatalog::new().await;
    let broker = cat.calving.clone();
    let table = broker.ensure_table("joined").await.unwrap();
    broker
        .append("joined", vec![data_file(&table, &rows(0, 0, 2))], segment("first", 0, 0, 1))
        .await
        .unwrap();
    // Another writer commits: this broker's next plan, on the state it knows, conflicts.
    let other = cat.second_instance().await;
    other
        .append("joined", vec![data_file(&table, &rows(9, 0, 2))], segment("other", 9, 0, 1))
        .await
        .unwrap();
    const N: i32 = 5;
    let appends = (1..=N).map(|p| {
        let df = data_file(&table, &rows(p, 0, 2));
        broker.append("joined", vec![df], segment(&format!("j{p}"), p, 0, 1))
    });
    // Offsets the other writer committed, queued behind the conflicting group: refused alone.
    let dup = broker.append("joined", vec![data_file(&table, &rows(9, 0, 2))], segment("dup", 9, 0, 1));
    let (results, dup) = tokio::join!(futures::future::join_all(appends), dup);
    let snapshots: Vec<i64> = results.iter().map(|r| r.as_ref().unwrap().snapshot_id()).collect();
    assert!(snapshots.iter().all(|s| *s == snapshots[0]), "one snapshot for every member: {snapshots:?}");
    assert!(matches!(dup, Err(Error::OffsetsAlreadyCommitted { .. })), "{dup:?}");
    let stats = broker.commit_stats();
    assert_eq!(
        (stats.commits, stats.segments, stats.conflicts, stats.refused, stats.failed),
        (2, 1 + N as u64, 1, 1, 0),
        "the first commit, then one conflict and one commit of all {N}: {stats:?}"
    );
    let table = broker.load_table("joined").await.unwrap();
    let grouped = table.metadata().current_snapshot().unwrap().summary().additional_properties.get(calving_table::SEGMENTS_PROP).cloned();
    assert_eq!(grouped.as_deref(), Some("5"));
    assert_eq!(ancestry(&table).count(), 3, "first, other, the group");
    let (ledger, _) = ledger::load(&table).await.unwrap();
    for p in 0..=N {
        assert_eq!(ledger.ranges(TOPIC_ID, p), &[(0, 1)], "partition {p}");
    }
    let mut expected: Vec<_> = (0..=N).chain([9]).flat_map(|p| keys(p, 0..2)).collect();
    expected.sort();
    let mut got = scanned_keys(&table).await;
    got.sort();
    assert_eq!(got, expected, "every member once, the refused one not at all");
    assert!(all_referenced_files_exist(&table).await);
}

/// A catalog with `commit.carry.enabled` = `carry` and retry waits of 10 ms to `max_wait_ms`,
/// and `topic`'s table holding one segment (partition 0, offsets 0..=1).
async fn with_first_segment(topic: &str, carry: bool, max_wait_ms: &str) -> (TempCatalog, Table) {
    let cat = TempCatalog::with_props(&[
        ("commit.retry.min-wait-ms", "10"),
        ("commit.retry.max-wait-ms", max_wait_ms),
        ("commit.carry.enabled", if carry { "true" } else { "false" }),
    ])
    .await;
    let table = cat.calving.ensure_table(topic).await.unwrap();
    cat.calving.append(topic, vec![data_file(&table, &rows(0, 0, 2))], segment("first", 0, 0, 1)).await.unwrap();
    (cat, table)
}

/// Two brokers (each its own catalog client, loads answered 300 ms late) that loaded `topic`'s
/// table before a third writer committed to it: the next plans of both, on the state they know,
/// conflict.
async fn two_brokers_behind_a_third_writer(cat: &TempCatalog, table: &Table, topic: &str) -> Vec<(Arc<CalvingCatalog>, Arc<FaultyCatalog>)> {
    let mut brokers = Vec::new();
    for _ in 0..2 {
        let faulty = Arc::new(FaultyCatalog::new(cat.calving.config().build().await.unwrap()));
        let broker = Arc::new(CalvingCatalog::new(faulty.clone(), cat.calving.config().clone()));
        broker.load_table(topic).await.unwrap();
        brokers.push((broker, faulty));
    }
    let c = cat.second_instance().await;
    c.append(topic, vec![data_file(table, &rows(9, 0, 2))], segment("other", 9, 0, 1)).await.unwrap();
    for (_, faulty) in &brokers {
        faulty.delay_loads(Duration::from_millis(300));
    }
    brokers
}

/// Carried appends (`calving_table::carry`): two brokers lose a race to a third at the same
/// time; each posts its segment for others to carry; the owner of the older intent commits next
/// (its catalog answers loads slowly: the other has posted by then), carrying the other's segment
/// in its snapshot, and the other, waiting in line, finds its segment committed there without a
/// commit of its own. With `commit.carry.enabled=false` each commits its own snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_that_lost_a_race_take_turns_and_carry_each_other() {
    for carry in [true, false] {
        let (cat, table) = with_first_segment("carried", carry, "200").await;
        let brokers = two_brokers_behind_a_third_writer(&cat, &table, "carried").await;
        let (a, b) = (&brokers[0].0, &brokers[1].0);
        let (fa, fb) = (data_file(&table, &rows(1, 0, 3)), data_file(&table, &rows(2, 0, 4)));
        let (fa_copy, fb_copy) = (fa.clone(), fb.clone());
        let (ra, rb) = tokio::join!(
            a.append("carried", vec![fa], segment("a1", 1, 0, 2)),
            b.append("carried", vec![fb], segment("b1", 2, 0, 3)),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (sa, sb) = (a.commit_stats(), b.commit_stats());
        let table = cat.calving.load_table("carried").await.unwrap();
        if carry {
            assert_eq!(ra.snapshot_id(), rb.snapshot_id(), "one snapshot holds both segments");
            let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
            assert_eq!(summary.get(calving_table::SEGMENTS_PROP).map(String::as_str), Some("2"));
            assert!(summary.contains_key(calving_table::carry::CARRIED_PROP), "{summary:?}");
            let (carrier, carried) = if sa.carried == 1 { (sa, sb) } else { (sb, sa) };
            assert_eq!((carrier.commits, carrier.carried, carrier.carried_by_others, carrier.conflicts), (1, 1, 0, 1), "{carrier:?}");
            assert_eq!((carried.commits, carried.carried, carried.carried_by_others, carried.segments), (0, 0, 1, 1), "{carried:?}");
            assert_eq!(ancestry(&table).count(), 3, "first, other, one carrying both");
            // The carried files came through the intent's JSON form: their counts and bounds are
            // intact (the re-upload path finds a segment's rows by these bounds).
            for (partition, last, original) in [(1, 2, &fa_copy), (2, 3, &fb_copy)] {
                let found = calving_table::files_holding(&table, TOPIC_ID, partition, 0, 100).await.unwrap();
                assert_eq!(found.len(), 1, "partition {partition}: {found:?}");
                let (live, holding) = &found[0];
                assert_eq!(*holding, calving_table::Holding::Only(0, last), "partition {partition}");
                assert_eq!(live.data_file.file_path(), original.file_path());
                assert_eq!(live.data_file.record_count(), original.record_count());
                assert_eq!(live.data_file.file_size_in_bytes(), original.file_size_in_bytes());
                assert_eq!(live.data_file.lower_bounds(), original.lower_bounds(), "partition {partition}");
                assert_eq!(live.data_file.upper_bounds(), original.upper_bounds(), "partition {partition}");
            }
        } else {
            assert_ne!(ra.snapshot_id(), rb.snapshot_id());
            assert_eq!((sa.carried, sb.carried, sa.commits, sb.commits), (0, 0, 1, 1));
            assert_eq!(ancestry(&table).count(), 4);
        }
        let (ledger, _) = ledger::load(&table).await.unwrap();
        assert_eq!(
            ledger_entries(&ledger),
            vec![
                (TOPIC_ID.to_string(), 0, vec![(0, 1)]),
                (TOPIC_ID.to_string(), 1, vec![(0, 2)]),
                (TOPIC_ID.to_string(), 2, vec![(0, 3)]),
                (TOPIC_ID.to_string(), 9, vec![(0, 1)]),
            ]
        );
        let mut expected: Vec<_> = [(0, 2), (1, 3), (2, 4), (9, 2)].into_iter().flat_map(|(p, n)| keys(p, 0..n)).collect();
        expected.sort();
        let mut got = scanned_keys(&table).await;
        got.sort();
        assert_eq!(got, expected, "every segment once (carry {carry})");
        assert!(all_referenced_files_exist(&table).await);
        assert_eq!(unreferenced_metadata_files(&table).await, Vec::<String>::new(), "intent manifests and lost attempts cleaned up");
        let intents = intents_dir(&table);
        let left = std::fs::read_dir(&intents).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "intents withdrawn");
    }
}

/// A writer outside the line plans on the state it committed last and needs no reload, so it
/// wins every race against a line's head that must reload; a head that loses writes the line's
/// waiting marker (`calving-intents/waiting`). A writer that finds the marker fresh beside a
/// commit has its next group join the line (a fresh load, an intent posted and withdrawn); without
/// the marker it keeps planning on its own state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_outside_the_line_joins_it_when_the_head_keeps_losing() {
    for marker in [true, false] {
        let (cat, table) = with_first_segment("outsider", true, "200").await;
        let faulty = Arc::new(FaultyCatalog::new(cat.calving.config().build().await.unwrap()));
        let broker = CalvingCatalog::new(faulty.clone(), cat.calving.config().clone());
        broker.load_table("outsider").await.unwrap();
        let intents = intents_dir(&table);
        let f = |p: i32| data_file(&table, &rows(p, 0, 2));
        broker.append("outsider", vec![f(1)], segment("b1", 1, 0, 1)).await.unwrap();
        if marker {
            std::fs::create_dir_all(&intents).unwrap();
            std::fs::write(intents.join("waiting"), b"").unwrap();
        }
        let loads = faulty.loads();
        broker.append("outsider", vec![f(2)], segment("b2", 2, 0, 1)).await.unwrap();
        assert_eq!(faulty.loads(), loads, "planned on its own last state (marker {marker})");
        broker.append("outsider", vec![f(3)], segment("b3", 3, 0, 1)).await.unwrap();
        let joined = faulty.loads() > loads;
        assert_eq!(joined, marker, "the group after the one that saw the marker joins the line (marker {marker})");
        let left: Vec<String> = std::fs::read_dir(&intents)
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let expected: Vec<String> = if marker { vec!["waiting".to_string()] } else { vec![] };
        assert_eq!(left, expected, "its intent withdrawn");
        let table = cat.calving.load_table("outsider").await.unwrap();
        assert_eq!(ancestry(&table).count(), 4, "three commits after the first");
    }
}

/// The gather (`commit::GroupAppend::wait_turn`): a writer first in a line that others were in
/// a moment ago waits half its commit cycle before it plans, so that a writer the last round
/// answered, coming back with its next segment, joins this commit instead of waiting a round
/// behind it. Two brokers first lose a race to a third writer and one carries the other (both
/// have seen the line). Then the carried one appends again (it joins the line, alone; it never
/// measured a commit cycle of its own, so it gathers for half of the 100 ms it assumes), and
/// once its intent is posted the carrier appends: one snapshot takes both, and the first
/// loaded the table to plan (its next step after the wait) no sooner than 25 ms after its intent
/// appeared (measured: 50–53 ms). Without the gather it loads at once (the test fails every
/// time), and the second writer is often too late for its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_alone_in_a_line_others_just_left_gathers_the_next_segments() {
    let (cat, table) = with_first_segment("gather", true, "200").await;
    // Round 1 (as in writers_that_lost_a_race_take_turns_and_carry_each_other).
    let brokers = two_brokers_behind_a_third_writer(&cat, &table, "gather").await;
    let (ra, rb) = tokio::join!(
        brokers[0].0.append("gather", vec![data_file(&table, &rows(1, 0, 2))], segment("a1", 1, 0, 1)),
        brokers[1].0.append("gather", vec![data_file(&table, &rows(2, 0, 2))], segment("b1", 2, 0, 1)),
    );
    assert_eq!(ra.unwrap().snapshot_id(), rb.unwrap().snapshot_id(), "round 1: one carried the other");
    for (_, faulty) in &brokers {
        faulty.delay_loads(Duration::ZERO);
    }
    let (carrier, other) = if brokers[0].0.commit_stats().carried == 1 { (&brokers[0], &brokers[1]) } else { (&brokers[1], &brokers[0]) };
    assert_eq!((carrier.0.commit_stats().carried, other.0.commit_stats().carried_by_others), (1, 1));

    // Round 2: the carried one first, alone in the line; the carrier once its intent is there.
    let ((head, head_catalog), (next, _)) = (other, carrier);
    let loads = head_catalog.loads();
    let intents = intents_dir(&table);
    let first = {
        let head = head.clone();
        let f = data_file(&table, &rows(1, 2, 2));
        tokio::spawn(async move { head.append("gather", vec![f], segment("a2", 1, 2, 3)).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while posted_intents(&intents) == 0 {
        assert!(!first.is_finished(), "the first writer committed without joining the line");
        assert!(std::time::Instant::now() < deadline, "the first writer never posted its intent");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let posted = std::time::Instant::now();
    assert_eq!(head_catalog.loads(), loads, "no load between joining the line and the wait");
    let (second, planned) = tokio::join!(next.append("gather", vec![data_file(&table, &rows(2, 2, 2))], segment("b2", 2, 2, 3)), async {
        while head_catalog.loads() == loads && posted.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        posted.elapsed()
    });
    let second = second.unwrap();
    assert!(planned < Duration::from_secs(20), "the first writer never loaded the table to plan");
    assert!(planned >= Duration::from_millis(25), "the first writer loaded the table to plan {planned:?} after posting: it did not gather");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.snapshot_id(), second.snapshot_id(), "one snapshot takes both segments of round 2");
    assert_eq!((head.commit_stats().carried, next.commit_stats().carried_by_others), (1, 1), "the first carried the second");
    let table = cat.calving.load_table("gather").await.unwrap();
    let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
    assert_eq!(summary.get(calving_table::SEGMENTS_PROP).map(String::as_str), Some("2"), "{summary:?}");
    let mut expected: Vec<_> = [(0, 0..2), (1, 0..4), (2, 0..4), (9, 0..2)].into_iter().flat_map(|(p, r)| keys(p, r)).collect();
    expected.sort();
    let mut got = scanned_keys(&table).await;
    got.sort();
    assert_eq!(got, expected, "every segment once");
    assert_eq!(posted_intents(&intents), 0, "intents withdrawn");
}

/// The directory of `table`'s line of commit intents (`calving_table::carry`), on a local warehouse.
fn intents_dir(table: &Table) -> std::path::PathBuf {
    crate::common::local_path(table.metadata().location()).join("calving-intents")
}

/// How many commit intents (`*.json`) are posted in a table's intents directory `dir` (none
/// when it does not exist).
fn posted_intents(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

/// The line's waiting marker (`carry::signal_waiting`): a group that heads the line and still
/// loses a race writes `calving-intents/waiting`, so that a writer committing outside the line
/// (on its own last state, which needs no reload) joins it. Here the broker's first attempt
/// loses to a commit by another engine (a table property set), so it posts its segment and
/// heads the line; its reload answers slowly, and another commit lands meanwhile: as the head,
/// it loses again and writes the marker, then commits. Without that second commit it heads the
/// line, wins, and writes no marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_loses_a_race_writes_the_waiting_marker() {
    for loses_as_head in [true, false] {
        let (cat, table) = with_first_segment("marker", true, "50").await;
        let faulty = Arc::new(FaultyCatalog::new(cat.calving.config().build().await.unwrap()));
        let broker = Arc::new(CalvingCatalog::new(faulty.clone(), cat.calving.config().clone()));
        broker.load_table("marker").await.unwrap();
        broker.append("marker", vec![data_file(&table, &rows(1, 0, 2))], segment("a0", 1, 0, 1)).await.unwrap();
        let intents = intents_dir(&table);
        let another_engine = |n: usize| {
            let cat = &cat;
            async move {
                let table = cat.calving.load_table("marker").await.unwrap();
                let tx = Transaction::new(&table);
                let tx = tx.update_table_properties().set("another.engine".into(), n.to_string()).apply(tx).unwrap();
                tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
            }
        };
        another_engine(1).await; // the broker's state is stale: its first attempt loses
        faulty.delay_answers(Duration::from_millis(1500));
        let loads = faulty.loads_read();
        let appending = {
            let broker = broker.clone();
            let f = data_file(&table, &rows(2, 0, 2));
            tokio::spawn(async move { broker.append("marker", vec![f], segment("a1", 2, 0, 1)).await })
        };
        // It posted its segment and reloads as the line's head.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !(posted_intents(&intents) == 1 && faulty.loads_read() > loads) {
            assert!(std::time::Instant::now() < deadline, "the broker never lost its first race and reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if loses_as_head {
            another_engine(2).await; // while the reload's answer, read before it, is on its way
        }
        appending.await.unwrap().unwrap();
        assert_eq!(
            intents.join("waiting").exists(),
            loses_as_head,
            "the marker is written exactly when the line's head loses a race (loses as head: {loses_as_head})"
        );
        assert_eq!(posted_intents(&intents), 0, "its intent is withdrawn");
        let table = cat.calving.load_table("marker").await.unwrap();
        assert!(ancestry(&table).any(|s| s.summary().additional_properties.get(SEGMENT_ID_PROP).map(String::as_str) == Some("a1")), "a1 committed");
    }
}

/// A group that posted its members for others to carry never reports a certain failure: a
/// carrier may still land them, and a certain failure would have the caller delete files that
/// carrier's snapshot refers to. Here the catalog goes away right after the intent is posted:
/// the append fails with an unknown outcome (retriable), the intent is withdrawn. Without
/// carrying the same failure is the catalog's, certain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_group_that_fails_reports_an_unknown_outcome() {
    for carry in [true, false] {
        let (cat, table) = with_first_segment("posted", carry, "50").await;
        let faulty = Arc::new(FaultyCatalog::new(cat.calving.config().build().await.unwrap()));
        let a = CalvingCatalog::new(faulty.clone(), cat.calving.config().clone());
        a.load_table("posted").await.unwrap();
        // Another writer commits: a's next plan, on the state it knows, conflicts; then a's
        // catalog is gone.
        let other = cat.second_instance().await;
        other.append("posted", vec![data_file(&table, &rows(9, 0, 2))], segment("other", 9, 0, 1)).await.unwrap();
        faulty.go_away_after_loads(0);
        let err = a.append("posted", vec![data_file(&table, &rows(1, 0, 2))], segment("a1", 1, 0, 1)).await.unwrap_err();
        assert!(err.is_retriable(), "{err}");
        if carry {
            assert!(matches!(err, Error::CommitStateUnknown { .. }), "posted, so unknown: {err}");
        } else {
            assert!(matches!(err, Error::CatalogUnavailable { .. }), "certain: {err}");
        }
        let intents = intents_dir(&table);
        assert_eq!(posted_intents(&intents), 0, "the intent is withdrawn (carry {carry})");
    }
}
