//! The SQLite SQL catalog: default table, adoption, exactly-once appends and reconciliation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use calving_table::table::{columns, default_schema};
use calving_table::{
    ancestry, append, committed_ranges, day_partition_value, ensure_table, field_id,
    find_segment_commit, partition_value, CalvingCatalog, CommitOutcome, CommittedRange, Error,
    SegmentCommit, END_OFFSET_PROP, PARTITION_PROP, SEGMENT_ID_PROP, START_OFFSET_PROP,
    TOPIC_ID_PROP,
};
use futures::TryStreamExt;
use iceberg::spec::{
    Datum, NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{NamespaceIdent, TableCreation};

use crate::common::{data_file, rows, TempCatalog, DAY0_US, TOPIC_ID};
use crate::faults::{Fault, FaultyCatalog};

pub fn segment(id: &str, partition: i32, start: i64, end: i64) -> SegmentCommit {
    SegmentCommit {
        topic_id: TOPIC_ID.to_string(),
        partition,
        segment_id: id.to_string(),
        start_offset: start,
        end_offset: end,
        extra: BTreeMap::from([("calving.broker-id".to_string(), "1".to_string())]),
    }
}

/// Rows in the table's current snapshot, read with iceberg-rust's scan.
pub async fn scanned_rows(table: &Table) -> usize {
    let stream = table.scan().build().unwrap().to_arrow().await.unwrap();
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

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
        .append(&table, vec![df], segment("seg-custom", 2, 0, 3))
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(scanned_rows(&table).await, 4);
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
async fn appends_exactly_once_and_reconciles_from_snapshot_summaries() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("events").await.unwrap();
    let stale = table.clone();

    let a = rows(0, 0, 6);
    let out = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &a)],
            segment("seg-a", 0, 0, 5),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_a,
        table,
    } = out
    else {
        panic!("{out:?}")
    };
    let b = rows(0, 6, 5);
    let out = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &b[..3]), data_file(&table, &b[3..])],
            segment("seg-b", 0, 6, 10),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed {
        snapshot_id: snap_b,
        table,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_ne!(snap_a, snap_b);

    // The summary carries the segment's identity and the extra properties.
    let s = find_segment_commit(&table, "seg-b").unwrap();
    assert_eq!(s.snapshot_id(), snap_b);
    let p = &s.summary().additional_properties;
    assert_eq!(p[SEGMENT_ID_PROP], "seg-b");
    assert_eq!(p[TOPIC_ID_PROP], TOPIC_ID);
    assert_eq!(p[PARTITION_PROP], "0");
    assert_eq!(p[START_OFFSET_PROP], "6");
    assert_eq!(p[END_OFFSET_PROP], "10");
    assert_eq!(p["calving.broker-id"], "1");
    assert_eq!(p["added-data-files"], "2");
    assert_eq!(
        find_segment_commit(&table, "seg-a").unwrap().snapshot_id(),
        snap_a
    );
    assert!(find_segment_commit(&table, "seg-x").is_none());
    assert_eq!(
        committed_ranges(&table, TOPIC_ID, 0),
        vec![
            CommittedRange {
                start_offset: 0,
                end_offset: 5,
                segment_id: "seg-a".into(),
                snapshot_id: snap_a
            },
            CommittedRange {
                start_offset: 6,
                end_offset: 10,
                segment_id: "seg-b".into(),
                snapshot_id: snap_b
            },
        ]
    );
    assert!(committed_ranges(&table, TOPIC_ID, 1).is_empty());
    assert!(committed_ranges(&table, "another-topic-id", 0).is_empty());

    // A retry of seg-a, from a stale handle that has never seen it: nothing is appended.
    let before = table.metadata().snapshots().count();
    let out = cat
        .calving
        .append(
            &stale,
            vec![data_file(&stale, &a)],
            segment("seg-a", 0, 0, 5),
        )
        .await
        .unwrap();
    assert!(
        matches!(out, CommitOutcome::AlreadyCommitted { snapshot_id } if snapshot_id == snap_a),
        "{out:?}"
    );
    // A re-upload of offsets 3..=8 under a new segment id: refused, naming both segments.
    let e = cat
        .calving
        .append(
            &stale,
            vec![data_file(&stale, &a[3..])],
            segment("seg-a2", 0, 3, 8),
        )
        .await
        .unwrap_err();
    match &e {
        Error::OffsetsAlreadyCommitted {
            existing,
            partition: 0,
            start_offset: 3,
            end_offset: 8,
            ..
        } => {
            assert_eq!(
                existing
                    .iter()
                    .map(|r| r.segment_id.as_str())
                    .collect::<Vec<_>>(),
                vec!["seg-a", "seg-b"]
            );
        }
        other => panic!("{other}"),
    }
    assert!(!e.is_retriable());
    let table = cat.calving.load_table("events").await.unwrap();
    assert_eq!(
        table.metadata().snapshots().count(),
        before,
        "no snapshot added by the refused commits"
    );
    assert_eq!(total_records(&table), 11);
    assert_eq!(scanned_rows(&table).await, 11);

    // The same offsets in another partition, or under another topic id (a re-created topic), land.
    let out = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &rows(1, 0, 6))],
            segment("seg-p1", 1, 0, 5),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out else {
        panic!("{out:?}")
    };
    let mut recreated = segment("seg-new-topic", 0, 0, 5);
    recreated.topic_id = "Zm9vYmFyYmF6cXV4cXV1eA".into();
    let out = append(
        cat.calving.catalog().as_ref(),
        &table,
        vec![data_file(&table, &a)],
        recreated,
    )
    .await
    .unwrap();
    let CommitOutcome::Committed { table, .. } = out else {
        panic!("{out:?}")
    };

    // A segment without records (e.g. only control batches) is still recorded.
    let out = cat
        .calving
        .append(&table, vec![], segment("seg-empty", 0, 11, 12))
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        committed_ranges(&table, TOPIC_ID, 0)
            .last()
            .unwrap()
            .segment_id,
        "seg-empty"
    );
    assert_eq!(total_records(&table), 23);
    assert_eq!(scanned_rows(&table).await, 23);
    assert_eq!(ancestry(&table).count(), 5);
}

#[tokio::test]
async fn invalid_segment_commits_are_rejected() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("invalid").await.unwrap();
    for bad in [
        segment("", 0, 0, 1),
        segment("s", 0, 5, 4),
        segment("s", -1, 0, 1),
    ] {
        let e = cat.calving.append(&table, vec![], bad).await.unwrap_err();
        assert!(!e.is_retriable(), "{e}");
    }
}

/// Two brokers (two catalog instances on the same SQLite file) append different segments at the
/// same time from the same stale table handle. A barrier makes both send their first commit only
/// when both have prepared it on the same base, so exactly one of them conflicts; iceberg's own
/// retry reloads and re-applies it. Both land, once each, in a linear history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_stale_handles_both_land_exactly_once() {
    let cat = TempCatalog::with_props(&[
        ("commit.retry.min-wait-ms", "10"),
        ("commit.retry.max-wait-ms", "100"),
    ])
    .await;
    let table = cat.calving.ensure_table("busy").await.unwrap();
    let seed = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &rows(0, 0, 3))],
            segment("seg-0", 0, 0, 2),
        )
        .await
        .unwrap();
    let stale = table; // does not even know seg-0

    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let broker = |barrier: Arc<tokio::sync::Barrier>| {
        let config = cat.calving.config().clone();
        async move {
            let inner = calving_table::CatalogConfig::build(&config).await.unwrap();
            let faulty = Arc::new(FaultyCatalog::new(inner).with_barrier(barrier));
            (CalvingCatalog::new(faulty.clone(), config), faulty)
        }
    };
    let (one, one_faults) = broker(barrier.clone()).await;
    let (two, two_faults) = broker(barrier).await;
    let (f1, f2) = (
        data_file(&stale, &rows(1, 0, 4)),
        data_file(&stale, &rows(2, 0, 5)),
    );
    let (r1, r2) = tokio::join!(
        one.append(&stale, vec![f1], segment("seg-p1", 1, 0, 3)),
        two.append(&stale, vec![f2], segment("seg-p2", 2, 0, 4)),
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(
        matches!(r1, CommitOutcome::Committed { .. })
            && matches!(r2, CommitOutcome::Committed { .. }),
        "{r1:?} {r2:?}"
    );
    let conflicts = one_faults
        .conflicts
        .load(std::sync::atomic::Ordering::SeqCst)
        + two_faults
            .conflicts
            .load(std::sync::atomic::Ordering::SeqCst);
    let calls = one_faults
        .update_calls
        .load(std::sync::atomic::Ordering::SeqCst)
        + two_faults
            .update_calls
            .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(conflicts, 1, "exactly one of the two commits conflicted");
    assert_eq!(calls, 3, "and was retried once");

    let table = cat.calving.load_table("busy").await.unwrap();
    let ids: Vec<String> = ancestry(&table)
        .map(|s| s.summary().additional_properties[SEGMENT_ID_PROP].clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["seg-0", "seg-p1", "seg-p2"],
        "each segment once, in one linear history"
    );
    assert_eq!(ids.last().unwrap(), "seg-0");
    assert_eq!(table.metadata().snapshots().count(), 3);
    assert_eq!(total_records(&table), 3 + 4 + 5);
    assert_eq!(scanned_rows(&table).await, 12);
    assert!(matches!(seed, CommitOutcome::Committed { .. }));
}

/// Two brokers commit the *same* segment at the same time (e.g. around a leader change): the one
/// that conflicts re-checks the reloaded table inside iceberg's retry and finds the segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_of_the_same_segment_land_once() {
    let cat = TempCatalog::with_props(&[("commit.retry.min-wait-ms", "10")]).await;
    let table = cat.calving.ensure_table("twice").await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut brokers = vec![];
    for _ in 0..2 {
        let inner = cat.calving.config().build().await.unwrap();
        let faulty = Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone()));
        brokers.push(CalvingCatalog::new(faulty, cat.calving.config().clone()));
    }
    let rs = rows(0, 0, 5);
    let (f1, f2) = (data_file(&table, &rs), data_file(&table, &rs));
    let (r1, r2) = tokio::join!(
        brokers[0].append(&table, vec![f1], segment("seg-same", 0, 0, 4)),
        brokers[1].append(&table, vec![f2], segment("seg-same", 0, 0, 4)),
    );
    let outcomes = [r1.unwrap(), r2.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, CommitOutcome::Committed { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, CommitOutcome::AlreadyCommitted { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes[0].snapshot_id(), outcomes[1].snapshot_id());
    let table = cat.calving.load_table("twice").await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    assert_eq!(scanned_rows(&table).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_retry_settings_from_the_config_are_respected() {
    // No retries: the commit that loses the race fails with a retriable CommitConflict.
    let cat = TempCatalog::with_props(&[("commit.retry.num-retries", "0")]).await;
    let table = cat.calving.ensure_table("strict").await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut brokers = vec![];
    for _ in 0..2 {
        let inner = cat.calving.config().build().await.unwrap();
        brokers.push(CalvingCatalog::new(
            Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone())),
            cat.calving.config().clone(),
        ));
    }
    let (f1, f2) = (
        data_file(&table, &rows(1, 0, 2)),
        data_file(&table, &rows(2, 0, 2)),
    );
    let (r1, r2) = tokio::join!(
        brokers[0].append(&table, vec![f1.clone()], segment("s1", 1, 0, 1)),
        brokers[1].append(&table, vec![f2.clone()], segment("s2", 2, 0, 1)),
    );
    let (ok, err) = match (r1, r2) {
        (Ok(o), Err(e)) => (o, (e, f2, segment("s2", 2, 0, 1))),
        (Err(e), Ok(o)) => (o, (e, f1, segment("s1", 1, 0, 1))),
        other => panic!("expected one conflict: {other:?}"),
    };
    assert!(matches!(ok, CommitOutcome::Committed { .. }));
    assert!(matches!(err.0, Error::CommitConflict { .. }), "{}", err.0);
    assert!(err.0.is_retriable());
    let table = cat.calving.load_table("strict").await.unwrap();
    assert_eq!(
        table.metadata().snapshots().count(),
        1,
        "the conflicting commit left nothing"
    );
    // Retrying it later succeeds.
    let out = cat
        .calving
        .append(&table, vec![err.1], err.2)
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Committed { .. }));

    // A table's own commit.retry.* properties win over the configuration.
    let table = cat.calving.load_table("strict").await.unwrap();
    let tx = Transaction::new(&table);
    let tx = tx
        .update_table_properties()
        .set("commit.retry.num-retries".into(), "3".into())
        .set("commit.retry.min-wait-ms".into(), "10".into())
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut brokers = vec![];
    for _ in 0..2 {
        let inner = cat.calving.config().build().await.unwrap();
        brokers.push(CalvingCatalog::new(
            Arc::new(FaultyCatalog::new(inner).with_barrier(barrier.clone())),
            cat.calving.config().clone(),
        ));
    }
    let (f3, f4) = (
        data_file(&table, &rows(3, 0, 2)),
        data_file(&table, &rows(4, 0, 2)),
    );
    let (r3, r4) = tokio::join!(
        brokers[0].append(&table, vec![f3], segment("s3", 3, 0, 1)),
        brokers[1].append(&table, vec![f4], segment("s4", 4, 0, 1)),
    );
    assert!(r3.is_ok() && r4.is_ok(), "{r3:?} {r4:?}");
}

#[tokio::test]
async fn lost_commit_answers_are_reconciled() {
    let cat = TempCatalog::new().await;
    let faulty = Arc::new(FaultyCatalog::new(cat.calving.catalog().clone()));
    let broker = CalvingCatalog::new(faulty.clone(), cat.calving.config().clone());
    let table = broker.ensure_table("flaky").await.unwrap();

    // Applied, answer lost (REST 504): reconciled by reloading and finding the segment id.
    faulty.inject(Fault::ApplyThenLoseAnswer);
    let out = broker
        .append(
            &table,
            vec![data_file(&table, &rows(0, 0, 4))],
            segment("seg-1", 0, 0, 3),
        )
        .await
        .unwrap();
    let CommitOutcome::Reconciled { snapshot_id } = out else {
        panic!("{out:?}")
    };
    let reloaded = broker.load_table("flaky").await.unwrap();
    assert_eq!(
        find_segment_commit(&reloaded, "seg-1")
            .unwrap()
            .snapshot_id(),
        snapshot_id
    );
    assert_eq!(reloaded.metadata().snapshots().count(), 1);

    // Not applied (REST 500): a retriable error; the retry commits once.
    faulty.inject(Fault::FailWithoutApplying);
    let df = data_file(&table, &rows(0, 4, 4));
    let e = broker
        .append(&table, vec![df.clone()], segment("seg-2", 0, 4, 7))
        .await
        .unwrap_err();
    assert!(e.is_retriable(), "{e}");
    assert!(matches!(e, Error::CatalogUnavailable { .. }), "{e}");
    assert!(find_segment_commit(&broker.load_table("flaky").await.unwrap(), "seg-2").is_none());
    let out = broker
        .append(&table, vec![df], segment("seg-2", 0, 4, 7))
        .await
        .unwrap();
    assert!(matches!(out, CommitOutcome::Committed { .. }), "{out:?}");

    // Applied, answer lost, and the catalog is gone when reconciling: CommitStateUnknown
    // (retriable); once the catalog is back, the retry finds the earlier commit.
    faulty.inject(Fault::ApplyThenGoAway);
    let df = data_file(&table, &rows(0, 8, 4));
    let e = broker
        .append(&table, vec![df.clone()], segment("seg-3", 0, 8, 11))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::CommitStateUnknown { ref segment_id, .. } if segment_id == "seg-3"),
        "{e}"
    );
    assert!(e.is_retriable());
    faulty.heal();
    let out = broker
        .append(&table, vec![df], segment("seg-3", 0, 8, 11))
        .await
        .unwrap();
    assert!(
        matches!(out, CommitOutcome::AlreadyCommitted { .. }),
        "{out:?}"
    );

    let table = broker.load_table("flaky").await.unwrap();
    let ranges = committed_ranges(&table, TOPIC_ID, 0);
    assert_eq!(
        ranges
            .iter()
            .map(|r| r.segment_id.as_str())
            .collect::<Vec<_>>(),
        vec!["seg-1", "seg-2", "seg-3"]
    );
    assert_eq!(table.metadata().snapshots().count(), 3);
    assert_eq!(scanned_rows(&table).await, 12);
}

#[tokio::test]
async fn expired_snapshots_no_longer_count() {
    let cat = TempCatalog::new().await;
    let table = cat.calving.ensure_table("expiring").await.unwrap();
    let out = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &rows(0, 0, 2))],
            segment("seg-old", 0, 0, 1),
        )
        .await
        .unwrap();
    let old = out.snapshot_id();
    let out = cat
        .calving
        .append(
            &table,
            vec![data_file(&table, &rows(0, 2, 2))],
            segment("seg-new", 0, 2, 3),
        )
        .await
        .unwrap();
    let CommitOutcome::Committed { table, .. } = out else {
        panic!()
    };
    let tx = Transaction::new(&table);
    let tx = tx
        .expire_snapshots()
        .expire_snapshot_ids([old])
        .apply(tx)
        .unwrap();
    let table = tx.commit(cat.calving.catalog().as_ref()).await.unwrap();
    assert!(find_segment_commit(&table, "seg-old").is_none());
    assert_eq!(
        committed_ranges(&table, TOPIC_ID, 0)
            .iter()
            .map(|r| r.segment_id.as_str())
            .collect::<Vec<_>>(),
        vec!["seg-new"]
    );
    // The rows of the expired snapshot are still in the current one.
    assert_eq!(scanned_rows(&table).await, 4);
    // The free function adopts the table as it is now.
    let again = ensure_table(
        cat.calving.catalog().as_ref(),
        &NamespaceIdent::new("kafka".into()),
        "expiring",
    )
    .await
    .unwrap();
    assert_eq!(
        again.metadata().current_snapshot_id(),
        table.metadata().current_snapshot_id()
    );
}
