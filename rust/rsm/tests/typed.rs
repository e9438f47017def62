//! Typed tables (issue 4) end to end without a JVM broker: segments whose values were written by
//! an independent Avro implementation (the `apache-avro` crate's writer, not calving-schema's
//! encoder) in the Confluent wire format, with schemas registered in a real Apicurio Registry
//! through its Confluent API, copied in `value_schema_id_prefix` and `value_schema_latest` mode
//! and fetched back.
//!
//! What is checked: served segments are byte-identical to the originals (uncompressed batches)
//! and Kafka's own record parser reads the same records from both; pyiceberg and DuckDB read the
//! typed columns with the produced values; a schema evolved twice (a field added, then another
//! added and one removed) adds columns with stable ids and nulls where a schema lacks a field; an
//! incompatible type change keeps those values raw and is logged once; values that are not Avro,
//! carry an unknown id, or are non-canonical encodings stay raw, byte for byte; tombstones stay
//! null; a registry that does not answer fails the copy retriable, naming segment and registry,
//! and leaves nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::types::Value as A;
use calving_rsm::{KafkaUuid, LogSegmentFiles, RemoteStorage, SegmentMetadata};
use calving_segment::record::record::write_record;
use calving_segment::{Attributes, BatchEncoder, BatchHeader, Compression};
use calving_test_utils::{kafka_reads, read_table_all_columns};
use serde_json::{json, Value as J};

mod common;
use calving_test_utils::registry::Registry;
use common::{check_served, fetch_all, walk};

// ---------------------------------------------------------------------------------------------
// Schemas: v1, v2 (adds `discount`), v3 (adds `channel`, drops `note`), v4 (`status` enum → int:
// a type change Iceberg cannot express).
// ---------------------------------------------------------------------------------------------

const V1_FIELDS: &str = r#"
  {"name":"id","type":"long"},
  {"name":"customer","type":{"type":"record","name":"Customer","fields":[
     {"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null}]}},
  {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
     {"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}},
  {"name":"attrs","type":{"type":"map","values":"string"}},
  {"name":"placed","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"day","type":{"type":"int","logicalType":"date"}},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
  {"name":"ref","type":{"type":"string","logicalType":"uuid"}},
  {"name":"payment","type":["null","string","long"],"default":null}"#;

fn schema(version: u32) -> String {
    let status = if version == 4 {
        r#"{"name":"status","type":"int"}"#
    } else {
        r#"{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}}"#
    };
    let mut extra = String::new();
    if version != 3 {
        extra.push_str(r#",{"name":"note","type":["null","string"],"default":null}"#);
    }
    if version >= 2 {
        extra.push_str(r#",{"name":"discount","type":["null","double"],"default":null}"#);
    }
    if version == 3 {
        extra.push_str(r#",{"name":"channel","type":["null","string"],"default":null}"#);
    }
    format!(r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{V1_FIELDS},{status}{extra}]}}"#)
}

/// An order of schema `version`, as an apache-avro value, and what an engine should read from
/// its columns (`tests/oracle/read_table.py --all-columns` conventions).
fn order(version: u32, i: i64) -> (A, J) {
    let placed_ms = 1_700_000_000_000 + i * 1000;
    let uuid_bytes = [(i as u8).wrapping_mul(7); 16];
    let uid = uuid::Uuid::from_bytes(uuid_bytes);
    let email = if i % 3 == 0 { None } else { Some(format!("c{i}@example.com")) };
    let payment = match i % 3 {
        0 => (0, A::Null, J::Null),
        1 => (1, A::String(format!("card-{i}")), json!({"string": format!("card-{i}"), "long": null})),
        _ => (2, A::Long(i * 100), json!({"string": null, "long": i * 100})),
    };
    let cents = 12345 + i as i32; // minimal two's complement bytes, as Java's BigInteger writes them
    let mut fields = vec![
        ("id".to_string(), A::Long(i)),
        (
            "customer".into(),
            A::Record(vec![
                ("name".into(), A::String(format!("c{i}"))),
                (
                    "email".into(),
                    match &email {
                        None => A::Union(0, Box::new(A::Null)),
                        Some(e) => A::Union(1, Box::new(A::String(e.clone()))),
                    },
                ),
            ]),
        ),
        (
            "items".into(),
            A::Array(
                (0..(i % 3))
                    .map(|k| A::Record(vec![("sku".into(), A::String(format!("sku-{k}"))), ("qty".into(), A::Int(k as i32 + 1))]))
                    .collect(),
            ),
        ),
        ("attrs".into(), A::Map([("src".to_string(), A::String("web".into()))].into_iter().collect())),
        ("placed".into(), A::TimestampMillis(placed_ms)),
        ("day".into(), A::Date(19_700 + i as i32)),
        ("amount".into(), A::Decimal(apache_avro::Decimal::from(min_be(cents)))),
        ("ref".into(), A::Uuid(uid)),
        ("payment".into(), A::Union(payment.0, Box::new(payment.1))),
        (
            "status".into(),
            if version == 4 { A::Int(i as i32 % 3) } else { A::Enum((i % 3) as u32, ["NEW", "PAID", "SHIPPED"][(i % 3) as usize].into()) },
        ),
    ];
    let mut expected = json!({
        "id": i,
        "customer": {"name": format!("c{i}"), "email": email},
        "items": (0..(i % 3)).map(|k| json!({"sku": format!("sku-{k}"), "qty": k + 1})).collect::<Vec<_>>(),
        "attrs": [["src", "web"]],
        "placed": placed_ms * 1000,
        "day": date_iso(19_700 + i),
        "amount": format!("{}.{:02}", cents / 100, cents % 100),
        "ref": hex(&uuid_bytes),
        "payment": payment.2,
        "status": (["NEW", "PAID", "SHIPPED"][(i % 3) as usize]),
        "note": null, "discount": null, "channel": null,
    });
    if version != 3 {
        let note = (i % 2 == 0).then(|| format!("note {i}"));
        fields.push(("note".into(), note.clone().map_or(A::Union(0, Box::new(A::Null)), |n| A::Union(1, Box::new(A::String(n))))));
        expected["note"] = json!(note);
    }
    if version >= 2 {
        fields.push(("discount".into(), A::Union(1, Box::new(A::Double(i as f64 / 4.0)))));
        expected["discount"] = json!(i as f64 / 4.0);
    }
    if version == 3 {
        fields.push(("channel".into(), A::Union(1, Box::new(A::String("app".into())))));
        expected["channel"] = json!("app");
    }
    (A::Record(fields), expected)
}

fn min_be(v: i32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 3 && ((b[start] == 0 && b[start + 1] & 0x80 == 0) || (b[start] == 0xff && b[start + 1] & 0x80 != 0)) {
        start += 1;
    }
    b[start..].to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn date_iso(days: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Confluent wire format of an apache-avro value.
fn framed(id: i32, text: &str, v: A) -> Vec<u8> {
    let s = apache_avro::Schema::parse_str(text).unwrap();
    let payload = apache_avro::to_avro_datum(&s, v).unwrap();
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

/// One record to write: its value, and what its row should hold: `Ok(columns)` for a value in
/// columns (with its writer schema id), `Err(())` for the raw fallback, `None` value = tombstone.
struct Rec {
    value: Option<Vec<u8>>,
    typed: Option<(i32, J)>,
    /// The record's key, if not the default `k<offset>`.
    key: Option<Option<Vec<u8>>>,
}

fn typed(id: i32, version: u32, i: i64) -> Rec {
    let (v, expected) = order(version, i);
    Rec { value: Some(framed(id, &schema(version), v)), typed: Some((id, expected)), key: None }
}

fn raw(value: Option<Vec<u8>>) -> Rec {
    Rec { value, typed: None, key: None }
}

/// Writes a segment of `batches` (codec, records) from `base` into `dir`; the broker's view of it.
fn write_segment(dir: &Path, topic: &str, base: i64, batches: &[(Compression, &[Rec])]) -> (SegmentMetadata, LogSegmentFiles) {
    write_segment_over_days(dir, topic, base, batches, 1)
}

/// [`write_segment`] with the batches' timestamps cycling over `days` days (a backfill).
fn write_segment_over_days(
    dir: &Path,
    topic: &str,
    base: i64,
    batches: &[(Compression, &[Rec])],
    days: i64,
) -> (SegmentMetadata, LogSegmentFiles) {
    let log = dir.join(format!("{topic}-{base:020}.log"));
    let mut data = Vec::new();
    let mut offset = base;
    for (i, (codec, recs)) in batches.iter().enumerate() {
        let day_ms = (i as i64 % days) * 86_400_000;
        let mut records = Vec::new();
        for (d, r) in recs.iter().enumerate() {
            let key = r.key.clone().unwrap_or_else(|| Some(format!("k{}", offset + d as i64).into_bytes()));
            write_record(&mut records, 0, d as i64, d as i32, key.as_deref(), r.value.as_deref(), []);
        }
        let n = recs.len() as i32;
        let header = BatchHeader {
            base_offset: offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: Attributes(0).with_compression(*codec),
            last_offset_delta: n - 1,
            base_timestamp: 1_700_000_000_000 + day_ms + offset,
            max_timestamp: 1_700_000_000_000 + day_ms + offset + i64::from(n) - 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: n,
        };
        BatchEncoder::default().encode(&header, *codec, &records, &mut data).unwrap();
        offset += i64::from(n);
    }
    std::fs::write(&log, &data).unwrap();
    for ext in ["index", "timeindex", "snapshot"] {
        std::fs::write(log.with_extension(ext), b"").unwrap();
    }
    let md = SegmentMetadata {
        topic: topic.to_string(),
        topic_id: KafkaUuid([3; 16]),
        partition: 0,
        segment_id: KafkaUuid::random(),
        start_offset: base,
        end_offset: offset - 1,
        max_timestamp_ms: 1_700_000_000_000 + (days - 1) * 86_400_000 + offset,
        segment_size: data.len() as u64,
        leader_epochs: BTreeMap::from([(0, base)]),
    };
    let files = LogSegmentFiles {
        log: log.clone(),
        offset_index: log.with_extension("index"),
        time_index: log.with_extension("timeindex"),
        txn_index: None,
        producer_snapshot: log.with_extension("snapshot"),
        leader_epoch: b"0\n1\n0 0\n".to_vec(),
    };
    (md, files)
}

/// Kafka's record parser reads the same records from the served bytes as from the original.
fn kafka_reads_the_same(dir: &Path, md: &SegmentMetadata, files: &LogSegmentFiles, rsm: &RemoteStorage) {
    let served = fetch_all(rsm, md, 0, None);
    let sub = dir.join(format!("served-{}", md.segment_id));
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join(files.log.file_name().unwrap());
    std::fs::write(&path, &served).unwrap();
    let by_file = kafka_reads(&[files.log.clone(), path]);
    assert!(by_file[1].iter().all(|v| v["type"] != "batch" || v["valid"] == true));
    assert_eq!(by_file[0], by_file[1], "Kafka reads the served segment differently");
}

/// Captured WARN (and ERROR) events of this test binary: their messages and fields, one line each.
fn warnings() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::set_global_default(Capture(buf.clone())).unwrap();
        buf
    })
}

/// A minimal `tracing` subscriber: WARN and up, written as text into a buffer (and to stderr).
struct Capture(Arc<Mutex<Vec<u8>>>);

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut line = Line(format!("{} {}", e.metadata().level(), e.metadata().target()));
        e.record(&mut line);
        line.0.push('\n');
        eprint!("{}", line.0);
        self.0.lock().unwrap().extend_from_slice(line.0.as_bytes());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn open(dir: &Path, extra: &[(&str, &str)]) -> RemoteStorage {
    let mut props = HashMap::from([("warehouse".to_string(), format!("file://{}/warehouse", dir.display()))]);
    props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    RemoteStorage::open(&props).unwrap()
}

/// Field ids of the table's current schema, by name path.
fn field_ids(rsm: &RemoteStorage, topic: &str) -> BTreeMap<String, i32> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = rt.block_on(rsm.catalog().load_table(topic)).unwrap();
    let schema = table.metadata().current_schema().clone();
    let mut out = BTreeMap::new();
    for name in
        ["id", "customer", "customer.name", "items", "amount", "ref", "note", "discount", "channel", "status", "kafka.value_schema_id"]
    {
        if let Some(f) = schema.field_by_name(name) {
            out.insert(name.to_string(), f.id);
        }
    }
    out
}

#[test]
fn avro_values_become_columns_and_come_back_byte_identical() {
    let log = warnings();
    let registry = Registry::start("typed");
    let id1 = registry.register("orders-value", &schema(1));
    let id2 = registry.register("orders-value", &schema(2));
    let id3 = registry.register("orders-value", &schema(3));
    // The incompatible one under its own subject (registries may enforce compatibility per
    // subject); ids are global, which is all the prefix mode uses.
    let id4 = registry.register("orders-incompatible-value", &schema(4));
    let unknown_id = 7_777_777;

    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(
        dir.path(),
        &[
            ("schema.registry.url", url.as_str()),
            ("value.mode", "value_schema_id_prefix"),
            ("topic.latest.value.mode", "value_schema_latest"),
            ("topic.latest.value.subject", "orders-value"),
        ],
    );
    let topic = "orders";

    // A non-canonical encoding written by apache-avro itself: a decimal with a redundant sign
    // byte (Java's BigInteger would write 0x30 0x39).
    let mut odd_decimal = order(1, 50).0;
    if let A::Record(fields) = &mut odd_decimal {
        fields[6].1 = A::Decimal(apache_avro::Decimal::from(vec![0x00, 0x30, 0x39]));
    }
    // A padded varint: the id 1 (zig-zag 0x02) written as 0x82 0x00.
    let mut padded = framed(id1, &schema(1), order(1, 1).0);
    assert_eq!(padded[5], 0x02);
    padded.splice(5..6, [0x82, 0x00]);
    let mut truncated = framed(id1, &schema(1), order(1, 2).0);
    truncated.truncate(truncated.len() - 3);

    let seg1: Vec<Rec> = vec![
        typed(id1, 1, 0),
        typed(id1, 1, 1),
        raw(Some(br#"{"not":"avro"}"#.to_vec())),
        raw(None),
        typed(id1, 1, 2),
        raw(Some(framed(unknown_id, &schema(1), order(1, 3).0))),
        raw(Some(framed(id1, &schema(1), odd_decimal))),
        raw(Some(padded)),
        raw(Some(truncated)),
        raw(Some(Vec::new())),
        raw(Some(vec![0, 0, 0])),
        typed(id1, 1, 3),
    ];
    let seg2: Vec<Rec> = (10..16).map(|i| typed(id2, 2, i)).collect();
    let seg3: Vec<Rec> =
        (20..26).map(|i| if i % 2 == 0 { typed(id3, 3, i) } else { raw(Some(framed(id4, &schema(4), order(4, i).0))) }).collect();
    let seg4: Vec<Rec> =
        (30..34).map(|i| if i % 2 == 0 { raw(Some(framed(id4, &schema(4), order(4, i).0))) } else { typed(id1, 1, i) }).collect();

    let segments = [
        write_segment(dir.path(), topic, 0, &[(Compression::None, &seg1[..6]), (Compression::None, &seg1[6..])]),
        write_segment(dir.path(), topic, 12, &[(Compression::None, &seg2[..3]), (Compression::Zstd, &seg2[3..])]),
        write_segment(dir.path(), topic, 18, &[(Compression::None, &seg3[..])]),
        write_segment(dir.path(), topic, 24, &[(Compression::Lz4, &seg4[..2]), (Compression::None, &seg4[2..])]),
    ];
    let all: Vec<&Rec> = seg1.iter().chain(&seg2).chain(&seg3).chain(&seg4).collect();
    let mut ids_after = Vec::new();
    for ((md, files), recs) in segments.iter().zip([&seg1, &seg2, &seg3, &seg4]) {
        let outcome = rsm.copy_log_segment(md, files).unwrap_or_else(|e| panic!("{md}: {e}"));
        let in_columns = recs.iter().filter(|r| r.typed.is_some()).count() as u64;
        let raw_values = recs.iter().filter(|r| r.typed.is_none() && r.value.is_some()).count() as u64;
        assert_eq!((outcome.stats.values_in_columns, outcome.stats.values_raw_fallback), (in_columns, raw_values), "{md}");
        check_served(&rsm, md, files);
        kafka_reads_the_same(dir.path(), md, files, &rsm);
        ids_after.push(field_ids(&rsm, topic));
    }
    // Uncompressed segments come back byte for byte.
    for (md, files) in [&segments[0], &segments[2]] {
        assert!(fetch_all(&rsm, md, 0, None) == std::fs::read(&files.log).unwrap(), "{md}");
    }

    // Field ids: stable by name across the evolutions; added fields get new ids.
    let (a, b, c) = (&ids_after[0], &ids_after[1], &ids_after[2]);
    for name in ["id", "customer", "customer.name", "items", "amount", "ref", "note", "status", "kafka.value_schema_id"] {
        assert_eq!(a.get(name), c.get(name), "{name} keeps its id");
    }
    assert!(!a.contains_key("discount") && b.contains_key("discount") && !b.contains_key("channel") && c.contains_key("channel"));
    assert_eq!(b["discount"], c["discount"]);
    assert_eq!(ids_after[3], ids_after[2], "the incompatible writer added nothing");

    // The incompatible writer: logged once (two segments, four values), naming the field.
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let needle = format!("writer schema {id4} of topic {topic}");
    assert_eq!(text.matches(&needle).count(), 1, "{text}");
    assert!(text.contains("status"), "{text}");

    // pyiceberg and DuckDB read the typed columns.
    let warehouse = dir.path().join("warehouse");
    rows_hold(&warehouse, topic, &all, &["id", "customer", "amount", "status", "discount", "channel"]);

    // value_schema_latest: bare Avro (no header), the subject's latest schema (v3).
    let latest: Vec<Rec> = (0..5)
        .map(|i| {
            let (v, expected) = order(3, i);
            let s = apache_avro::Schema::parse_str(&schema(3)).unwrap();
            Rec { value: Some(apache_avro::to_avro_datum(&s, v).unwrap()), typed: Some((id3, expected)), key: None }
        })
        .chain([raw(None), raw(Some(b"plain text".to_vec()))])
        .collect();
    let (md, files) = write_segment(dir.path(), "latest", 0, &[(Compression::None, &latest[..])]);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!((outcome.stats.values_in_columns, outcome.stats.values_raw_fallback), (5, 1));
    assert!(fetch_all(&rsm, &md, 0, None) == std::fs::read(&files.log).unwrap());
    check_served(&rsm, &md, &files);
    let rows = read_table_all_columns("pyiceberg", &warehouse, "kafka.latest");
    for (row, rec) in rows.iter().zip(&latest) {
        match &rec.typed {
            Some((_, expected)) => {
                assert_eq!(row["kafka"]["value_schema_id"], json!(id3));
                assert_eq!(row["channel"], expected["channel"]);
                assert_eq!(row["customer"], expected["customer"]);
            }
            None => assert_eq!(row["kafka"]["value_schema_id"], J::Null),
        }
    }
    // Serving needs no registry: it is gone, fetches still serve byte for byte.
    drop(registry);
    let fresh = open(dir.path(), &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_id_prefix")]);
    for (md, files) in [&segments[0], &segments[2]] {
        assert!(fetch_all(&fresh, md, 0, None) == std::fs::read(&files.log).unwrap(), "{md} without a registry");
    }
}

/// A registry that does not answer: the copy fails retriable, naming the segment and the
/// registry, and nothing is left in the warehouse but the (empty) table.
#[test]
fn registry_down_fails_retriable_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::closed_port();
    let url = format!("http://127.0.0.1:{port}/apis/ccompat/v7");
    let rsm = open(
        dir.path(),
        &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_id_prefix"), ("schema.registry.request.timeout.ms", "2000")],
    );
    let recs = [raw(Some(framed(1, &schema(1), order(1, 0).0)))];
    let (md, files) = write_segment(dir.path(), "down", 0, &[(Compression::None, &recs[..])]);
    let e = rsm.copy_log_segment(&md, &files).unwrap_err();
    assert!(e.is_retriable(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&md.to_string()) && msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("schema registry"), "{msg}");
    let left: Vec<PathBuf> = walk(&dir.path().join("warehouse"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet" || e == "sidecar"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(common::count_rows(&rsm, "down"), 0);
}

// ---------------------------------------------------------------------------------------------
// Keys: `key.mode`
// ---------------------------------------------------------------------------------------------

fn key_schema(version: u32) -> String {
    let shard = if version >= 2 { r#",{"name":"shard","type":["null","int"],"default":null}"# } else { "" };
    format!(
        r#"{{"type":"record","name":"OrderKey","namespace":"shop","fields":[{{"name":"customer_id","type":"long"}},{{"name":"region","type":"string"}}{shard}]}}"#
    )
}

/// A key of schema `version` in the wire format, and what an engine reads from the `key` struct.
fn order_key(id: i32, version: u32, i: i64) -> (Vec<u8>, J) {
    let mut fields = vec![("customer_id".to_string(), A::Long(i * 11)), ("region".into(), A::String(format!("eu-{}", i % 4)))];
    let mut expected = json!({"customer_id": i * 11, "region": format!("eu-{}", i % 4)});
    if version >= 2 {
        let shard = (i % 2 == 0).then_some(i as i32);
        fields.push(("shard".into(), shard.map_or(A::Union(0, Box::new(A::Null)), |v| A::Union(1, Box::new(A::Int(v))))));
        expected["shard"] = json!(shard);
    }
    (framed(id, &key_schema(version), A::Record(fields)), expected)
}

/// Keys in the Confluent wire format become the fields of the top-level `key` struct (evolved
/// like values), with `kafka.key_schema_id`; keys that do not decode stay raw in `kafka.key`;
/// served segments are byte-identical; `key_schema_latest` decodes bare Avro keys (a primitive
/// schema: the struct's one field is `value`).
#[test]
fn avro_keys_become_columns_and_come_back_byte_identical() {
    let registry = Registry::start("keys");
    let k1 = registry.register("keyed-key", &key_schema(1));
    let k2 = registry.register("keyed-key", &key_schema(2));
    let v1 = registry.register("keyed-value", &schema(1));
    let plain = registry.register("plainkey-key", r#""string""#);
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(
        dir.path(),
        &[
            ("schema.registry.url", url.as_str()),
            ("topic.keyed.key.mode", "key_schema_id_prefix"),
            ("topic.keyed.value.mode", "value_schema_id_prefix"),
            ("topic.plainkey.key.mode", "key_schema_latest"),
        ],
    );
    // (record, the key struct an engine reads: Some((id, fields)) or None for a raw/null key)
    let keyed = |key: Option<Vec<u8>>, i: i64| -> Rec {
        let mut r = typed(v1, 1, i);
        r.key = Some(key);
        r
    };
    let mut truncated = order_key(k1, 1, 9).0;
    truncated.pop();
    let mut expected_keys: Vec<Option<(i32, J)>> = Vec::new();
    let mut recs_a = Vec::new();
    for i in 0..4 {
        let (k, e) = order_key(k1, 1, i);
        recs_a.push(keyed(Some(k), i));
        expected_keys.push(Some((k1, e)));
    }
    for key in [None, Some(b"plain-key".to_vec()), Some(order_key(424_242, 1, 5).0), Some(truncated)] {
        recs_a.push(keyed(key, 10));
        expected_keys.push(None);
    }
    let mut recs_b = Vec::new();
    for i in 20..24 {
        let (k, e) = order_key(k2, 2, i);
        recs_b.push(keyed(Some(k), i));
        expected_keys.push(Some((k2, e)));
    }
    let segments = [
        write_segment(dir.path(), "keyed", 0, &[(Compression::None, &recs_a[..])]),
        write_segment(dir.path(), "keyed", 8, &[(Compression::Lz4, &recs_b[..2]), (Compression::None, &recs_b[2..])]),
    ];
    let mut key_ids = Vec::new();
    for ((md, files), recs) in segments.iter().zip([&recs_a, &recs_b]) {
        let outcome = rsm.copy_log_segment(md, files).unwrap_or_else(|e| panic!("{md}: {e}"));
        let first = if recs.len() == 8 { 0 } else { 8 };
        let in_columns = expected_keys[first..first + recs.len()].iter().filter(|k| k.is_some()).count() as u64;
        let raw_keys = recs.iter().filter(|r| matches!(&r.key, Some(Some(_)))).count() as u64 - in_columns;
        assert_eq!((outcome.stats.keys_in_columns, outcome.stats.keys_raw_fallback), (in_columns, raw_keys), "{md}");
        assert_eq!(outcome.stats.values_in_columns, recs.len() as u64, "{md}");
        check_served(&rsm, md, files);
        kafka_reads_the_same(dir.path(), md, files, &rsm);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let table = rt.block_on(rsm.catalog().load_table("keyed")).unwrap();
        let schema = table.metadata().current_schema().clone();
        key_ids.push(
            ["key", "key.customer_id", "key.region", "key.shard", "kafka.key_schema_id", "id"]
                .map(|n| schema.field_by_name(n).map(|f| f.id)),
        );
    }
    assert!(fetch_all(&rsm, &segments[0].0, 0, None) == std::fs::read(&segments[0].1.log).unwrap());
    // Ids stable by name; the evolved key schema added `key.shard`.
    let (a, b) = (&key_ids[0], &key_ids[1]);
    assert!(a.iter().enumerate().all(|(i, id)| i == 3 || (id.is_some() && id == &b[i])), "{a:?} {b:?}");
    assert!(a[3].is_none() && b[3].is_some(), "{a:?} {b:?}");

    let all: Vec<&Rec> = recs_a.iter().chain(&recs_b).collect();
    let warehouse = dir.path().join("warehouse");
    for engine in ["pyiceberg", "duckdb"] {
        let rows = read_table_all_columns(engine, &warehouse, "kafka.keyed");
        assert_eq!(rows.len(), all.len(), "{engine}");
        for (offset, ((row, rec), key)) in rows.iter().zip(&all).zip(&expected_keys).enumerate() {
            assert_eq!(row["kafka"]["offset"], json!(offset), "{engine}");
            match key {
                Some((id, fields)) => {
                    assert_eq!(row["kafka"]["key_schema_id"], json!(id), "{engine} offset {offset}");
                    assert_eq!(row["kafka"]["key"], J::Null, "{engine} offset {offset}");
                    for (k, v) in fields.as_object().unwrap() {
                        assert_eq!(&row["key"][k.as_str()], v, "{engine} offset {offset} key.{k}: {row}");
                    }
                }
                None => {
                    assert_eq!(row["kafka"]["key_schema_id"], J::Null, "{engine} offset {offset}");
                    assert_eq!(row["key"], J::Null, "{engine} offset {offset}");
                    let raw = rec.key.clone().flatten();
                    assert_eq!(row["kafka"]["key"], raw.as_deref().map_or(J::Null, |k| json!(hex(k))), "{engine} offset {offset}");
                }
            }
            // The value columns are unaffected.
            assert_eq!(row["id"], rec.typed.as_ref().unwrap().1["id"], "{engine} offset {offset}");
        }
    }

    // key_schema_latest: bare Avro keys with the subject's latest schema, a primitive one.
    let s = apache_avro::Schema::parse_str(r#""string""#).unwrap();
    let plain_recs: Vec<Rec> = ["alpha", "beta"]
        .iter()
        .map(|k| Rec {
            value: Some(b"v".to_vec()),
            typed: None,
            key: Some(Some(apache_avro::to_avro_datum(&s, A::String(k.to_string())).unwrap())),
        })
        .chain([Rec { value: None, typed: None, key: Some(None) }])
        .collect();
    let (md, files) = write_segment(dir.path(), "plainkey", 0, &[(Compression::None, &plain_recs[..])]);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!((outcome.stats.keys_in_columns, outcome.stats.keys_raw_fallback), (2, 0));
    assert!(fetch_all(&rsm, &md, 0, None) == std::fs::read(&files.log).unwrap());
    let rows = read_table_all_columns("pyiceberg", &warehouse, "kafka.plainkey");
    assert_eq!(rows[0]["key"], json!({"value": "alpha"}));
    assert_eq!(rows[1]["key"]["value"], json!("beta"));
    assert_eq!((rows[0]["kafka"]["key_schema_id"].clone(), rows[2]["key"].clone()), (json!(plain), J::Null));

    // Serving keys needs no registry either.
    drop(registry);
    let fresh = open(dir.path(), &[]);
    assert!(fetch_all(&fresh, &segments[0].0, 0, None) == std::fs::read(&segments[0].1.log).unwrap());
}

/// `value_schema_latest`, and the subject's latest schema changes between a copy and a re-upload
/// of the same offsets (Kafka re-uploads after a failed copy or a leader change): the re-upload
/// reuses the committed rows, whose values are in columns with the old schema, and still serves
/// them byte for byte (its sidecar keeps the old schema too); the table holds each offset once.
#[test]
fn reupload_after_the_latest_schema_moved_on_still_serves() {
    let registry = Registry::start("relatest");
    let id1 = registry.register("relatest-value", &schema(1));
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(dir.path(), &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_latest")]);
    let s = apache_avro::Schema::parse_str(&schema(1)).unwrap();
    let recs: Vec<Rec> = (0..4)
        .map(|i| {
            let (v, expected) = order(1, i);
            Rec { value: Some(apache_avro::to_avro_datum(&s, v).unwrap()), typed: Some((id1, expected)), key: None }
        })
        .collect();
    let (md, files) = write_segment(dir.path(), "relatest", 0, &[(Compression::None, &recs[..])]);
    let first = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!(first.stats.values_in_columns, 4);
    let id2 = registry.register("relatest-value", &schema(2));
    assert_ne!(id1, id2);
    let again = SegmentMetadata { segment_id: KafkaUuid::random(), ..md.clone() };
    let outcome = rsm.copy_log_segment(&again, &files).unwrap_or_else(|e| panic!("re-upload: {e}"));
    assert_eq!(outcome.reused_rows, 4);
    for m in [&md, &again] {
        assert!(fetch_all(&rsm, m, 0, None) == std::fs::read(&files.log).unwrap(), "{m}");
    }
    // A fresh plugin (no cached sidecar), after the first copy's sidecar is gone.
    rsm.delete_log_segment(&md).unwrap();
    let fresh = open(dir.path(), &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_latest")]);
    assert!(fetch_all(&fresh, &again, 0, None) == std::fs::read(&files.log).unwrap());
    assert_eq!(common::count_rows(&rsm, "relatest"), 4);
}

/// Values in columns over more day partitions than a copy writes at once: the later passes'
/// value columns (fresh decoders over the same writer schemas) hold the same values, which come
/// back byte for byte.
#[test]
fn typed_values_over_many_day_partitions() {
    let registry = Registry::start("backfill");
    let id = registry.register("backfill-value", &schema(1));
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(dir.path(), &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_id_prefix")]);
    let days = 24;
    let recs: Vec<Vec<Rec>> = (0..days * 2).map(|b| (0..3).map(|r| typed(id, 1, b * 3 + r)).collect()).collect();
    let batches: Vec<(Compression, &[Rec])> = recs.iter().map(|r| (Compression::None, &r[..])).collect();
    let (md, files) = write_segment_over_days(dir.path(), "backfill", 0, &batches, days);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!(outcome.stats.values_in_columns, (days * 6) as u64);
    assert_eq!(outcome.data_files.len(), days as usize, "one data file per day partition");
    assert!(fetch_all(&rsm, &md, 0, None) == std::fs::read(&files.log).unwrap(), "served byte for byte");
    assert_eq!(common::count_rows(&rsm, "backfill"), (days * 6) as u64);
}

// ---------------------------------------------------------------------------------------------
// Protobuf and JSON Schema (issue 13): values written by this file's own few lines of encoding
// (independent of calving-schema's transcoders), schemas registered in Apicurio with their
// `schemaType`, copied and fetched back like the Avro ones.
// ---------------------------------------------------------------------------------------------

fn order_proto(version: u32) -> String {
    let discount = if version >= 2 { "  double discount = 11;\n" } else { "" };
    format!(
        r#"syntax = "proto3";
package shop;

import "google/protobuf/timestamp.proto";

message Order {{
  int64 id = 1;
  Customer customer = 2;
  repeated Item items = 3;
  map<string, string> attrs = 4;
  google.protobuf.Timestamp placed = 5;
  Status status = 6;
  repeated int32 codes = 7;
  oneof payment {{
    string card = 8;
    int64 points = 9;
  }}
  optional string note = 10;
{discount}
  message Customer {{
    string name = 1;
    optional string email = 2;
  }}
  message Item {{
    string sku = 1;
    int32 qty = 2;
  }}
  enum Status {{
    NEW = 0;
    PAID = 1;
    SHIPPED = 2;
  }}
}}
"#
    )
}

fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_tag(field: u64, wire_type: u64, out: &mut Vec<u8>) {
    pb_varint((field << 3) | wire_type, out);
}

fn pb_len(field: u64, b: &[u8], out: &mut Vec<u8>) {
    pb_tag(field, 2, out);
    pb_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// A protobuf `Order` of `version` (fields in number order, proto3 defaults left out, repeated
/// scalars packed: what Java's generated code writes), and what an engine reads from its columns.
fn pb_order(version: u32, i: i64) -> (Vec<u8>, J) {
    let mut m = Vec::new();
    pb_tag(1, 0, &mut m);
    pb_varint(i as u64, &mut m);
    let email = (i % 3 != 0).then(|| format!("c{i}@example.com"));
    let mut customer = Vec::new();
    pb_len(1, format!("c{i}").as_bytes(), &mut customer);
    if let Some(e) = &email {
        pb_len(2, e.as_bytes(), &mut customer);
    }
    pb_len(2, &customer, &mut m);
    for k in 0..(i % 3) {
        let mut item = Vec::new();
        pb_len(1, format!("sku-{k}").as_bytes(), &mut item);
        pb_tag(2, 0, &mut item);
        pb_varint(k as u64 + 1, &mut item);
        pb_len(3, &item, &mut m);
    }
    let mut entry = Vec::new();
    pb_len(1, b"src", &mut entry);
    pb_len(2, b"web", &mut entry);
    pb_len(4, &entry, &mut m);
    let (seconds, nanos) = (1_700_000_000 + i, (i % 2) * 500_000);
    let mut placed = Vec::new();
    pb_tag(1, 0, &mut placed);
    pb_varint(seconds as u64, &mut placed);
    if nanos != 0 {
        pb_tag(2, 0, &mut placed);
        pb_varint(nanos as u64, &mut placed);
    }
    pb_len(5, &placed, &mut m);
    if i % 3 != 0 {
        pb_tag(6, 0, &mut m);
        pb_varint((i % 3) as u64, &mut m);
    }
    let mut codes = Vec::new();
    pb_varint(i as u64, &mut codes);
    pb_varint(i as u64 + 1, &mut codes);
    pb_len(7, &codes, &mut m);
    match i % 3 {
        1 => pb_len(8, format!("card-{i}").as_bytes(), &mut m),
        2 => {
            pb_tag(9, 0, &mut m);
            pb_varint(i as u64 * 100, &mut m);
        }
        _ => {}
    }
    let note = (i % 2 == 0).then(|| format!("note {i}"));
    if let Some(n) = &note {
        pb_len(10, n.as_bytes(), &mut m);
    }
    let mut expected = json!({
        "id": i,
        "customer": {"name": format!("c{i}"), "email": email},
        "items": (0..(i % 3)).map(|k| json!({"sku": format!("sku-{k}"), "qty": k + 1})).collect::<Vec<_>>(),
        "attrs": [["src", "web"]],
        "placed": seconds * 1_000_000 + nanos / 1000,
        "status": (["NEW", "PAID", "SHIPPED"][(i % 3) as usize]),
        "codes": [i, i + 1],
        "card": (i % 3 == 1).then(|| format!("card-{i}")),
        "points": (i % 3 == 2).then_some(i * 100),
        "note": note,
        "discount": null,
    });
    if version >= 2 {
        pb_tag(11, 1, &mut m);
        m.extend_from_slice(&(i as f64 / 4.0).to_le_bytes());
        expected["discount"] = json!(i as f64 / 4.0);
    }
    (m, expected)
}

/// The Confluent wire format of a Protobuf message of the schema's first message type.
fn pb_framed(id: i32, message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0); // message indexes [0]
    out.extend_from_slice(message);
    out
}

fn pb_typed(id: i32, version: u32, i: i64) -> Rec {
    let (m, expected) = pb_order(version, i);
    Rec { value: Some(pb_framed(id, &m)), typed: Some((id, expected)), key: None }
}

/// pyiceberg and DuckDB read from `topic`'s table, row by row, what `all` says: a value in
/// columns has its writer schema id, no raw bytes and the expected column values; any other its
/// raw bytes (or null, a tombstone), no schema id and null `null_columns`.
fn rows_hold(warehouse: &Path, topic: &str, all: &[&Rec], null_columns: &[&str]) {
    for engine in ["pyiceberg", "duckdb"] {
        let rows = read_table_all_columns(engine, warehouse, &format!("kafka.{topic}"));
        assert_eq!(rows.len(), all.len(), "{engine}");
        for (offset, (row, rec)) in rows.iter().zip(all).enumerate() {
            assert_eq!(row["kafka"]["offset"], json!(offset), "{engine}");
            match (&rec.typed, &rec.value) {
                (Some((id, expected)), _) => {
                    assert_eq!(row["kafka"]["value_schema_id"], json!(id), "{engine} offset {offset}: {row}");
                    assert_eq!(row["value"], J::Null, "{engine} offset {offset}");
                    for (k, v) in expected.as_object().unwrap() {
                        assert_eq!(&row[k.as_str()], v, "{engine} offset {offset} column {k}: {row}");
                    }
                }
                (None, value) => {
                    assert_eq!(row["kafka"]["value_schema_id"], J::Null, "{engine} offset {offset}: {row}");
                    assert_eq!(row["value"], value.as_deref().map_or(J::Null, |v| json!(hex(v))), "{engine} offset {offset}");
                    for k in null_columns {
                        assert_eq!(row[*k], J::Null, "{engine} offset {offset} column {k}");
                    }
                }
            }
        }
    }
}

/// Copies `segments` of `topic` and checks what every row holds (columns with the expected
/// values, or the raw bytes), read by pyiceberg and DuckDB; served bytes identical to the
/// originals, also by a plugin whose registry is gone.
fn copy_and_check_typed(dir: &Path, rsm: &RemoteStorage, topic: &str, segments: &[((SegmentMetadata, LogSegmentFiles), &[Rec])], registry: Registry, url: &str) {
    for ((md, files), recs) in segments {
        let outcome = rsm.copy_log_segment(md, files).unwrap_or_else(|e| panic!("{md}: {e}"));
        let in_columns = recs.iter().filter(|r| r.typed.is_some()).count() as u64;
        let raw_values = recs.iter().filter(|r| r.typed.is_none() && r.value.is_some()).count() as u64;
        assert_eq!((outcome.stats.values_in_columns, outcome.stats.values_raw_fallback), (in_columns, raw_values), "{md}");
        check_served(rsm, md, files);
        kafka_reads_the_same(dir, md, files, rsm);
        assert!(fetch_all(rsm, md, 0, None) == std::fs::read(&files.log).unwrap(), "{md}: served byte for byte");
    }
    let all: Vec<&Rec> = segments.iter().flat_map(|(_, recs)| recs.iter()).collect();
    rows_hold(&dir.join("warehouse"), topic, &all, &[]);
    drop(registry);
    let fresh = open(dir, &[("schema.registry.url", url), ("value.mode", "value_schema_id_prefix")]);
    for ((md, files), _) in segments {
        assert!(fetch_all(&fresh, md, 0, None) == std::fs::read(&files.log).unwrap(), "{md} without a registry");
    }
}

#[test]
fn protobuf_values_become_columns_and_come_back_byte_identical() {
    let log = warnings();
    let registry = Registry::start("typed-protobuf");
    let id1 = registry.register_typed("pb-orders-value", "PROTOBUF", &order_proto(1), json!([]));
    let id2 = registry.register_typed("pb-orders-value", "PROTOBUF", &order_proto(2), json!([]));
    // `id` from int64 to string: a type change Iceberg cannot express (its own subject, as a
    // registry enforcing compatibility would want).
    let incompatible = order_proto(1).replace("int64 id = 1;", "string id = 1;");
    let id_bad = registry.register_typed("pb-orders-incompatible-value", "PROTOBUF", &incompatible, json!([]));
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(
        dir.path(),
        &[
            ("schema.registry.url", url.as_str()),
            ("value.mode", "value_schema_id_prefix"),
            ("topic.pb_latest.value.mode", "value_schema_latest"),
            ("topic.pb_latest.value.subject", "pb-orders-value"),
        ],
    );
    let (m, _) = pb_order(1, 4);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = m.clone();
        f(&mut v);
        raw(Some(pb_framed(id1, &v)))
    };
    // The same codes unpacked (two tag-7 varints instead of one packed run).
    let (packed_at, unpacked) = {
        let at = m.windows(2).position(|w| w == [0x3a, 0x02]).expect("the packed codes");
        let mut u = m[..at].to_vec();
        u.extend_from_slice(&[0x38, 4, 0x38, 5]);
        u.extend_from_slice(&m[at + 4..]);
        (at, u)
    };
    assert_eq!(&m[packed_at + 2..packed_at + 4], &[4, 5]);
    let mut other_message = pb_framed(id1, &m);
    other_message.splice(5..6, [0x02, 0x02]); // message indexes [1]
    let seg1: Vec<Rec> = vec![
        pb_typed(id1, 1, 1),
        pb_typed(id1, 1, 2),
        raw(None),
        pb_typed(id1, 1, 3),
        with(&|v| v.extend_from_slice(&[0xf8, 0x06, 0x01])), // unknown field 111
        with(&|v| v.splice(0..0, [0x08, 0x00]).for_each(drop)), // id 0 written out: proto3 omits it
        raw(Some(pb_framed(id1, &unpacked))),
        raw(Some(other_message)),
        with(&|v| v.truncate(v.len() - 2)),
        raw(Some(pb_framed(7_777_777, &m))),
        pb_typed(id1, 1, 5),
    ];
    let seg2: Vec<Rec> = (6..12)
        .map(|i| if i % 3 == 0 { raw(Some(pb_framed(id_bad, &[0x0a, 0x02, b'i', b'd']))) } else { pb_typed(id2, 2, i) })
        .collect();
    // Apicurio's serializer spells the message-index list [0] as 02 00: such a segment's values
    // go to columns and are served with that spelling; one in Confluent's spelling among them,
    // first in the segment, stays raw (a segment keeps one spelling per writer schema, the one
    // most of its values use).
    let apicurio = |rec: Rec| match rec.value {
        Some(v) => Rec { value: Some([&v[..5], &[0x02, 0x00], &v[6..]].concat()), ..rec },
        None => rec,
    };
    let seg3: Vec<Rec> = [raw(pb_typed(id2, 2, 12).value)].into_iter().chain((13..17).map(|i| apicurio(pb_typed(id2, 2, i)))).collect();
    let segments = [
        (write_segment(dir.path(), "pb_orders", 0, &[(Compression::None, &seg1[..5]), (Compression::None, &seg1[5..])]), &seg1[..]),
        (write_segment(dir.path(), "pb_orders", 11, &[(Compression::None, &seg2[..])]), &seg2[..]),
        (write_segment(dir.path(), "pb_orders", 17, &[(Compression::None, &seg3[..])]), &seg3[..]),
    ];
    // value_schema_latest: bare messages (no header, no message indexes), the latest schema (v2).
    let latest: Vec<Rec> = (1..5)
        .map(|i| {
            let (m, expected) = pb_order(2, i);
            Rec { value: Some(m), typed: Some((id2, expected)), key: None }
        })
        .chain([raw(Some(vec![0xff, 0xff]))])
        .collect();
    let (md, files) = write_segment(dir.path(), "pb_latest", 0, &[(Compression::None, &latest[..])]);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!((outcome.stats.values_in_columns, outcome.stats.values_raw_fallback), (4, 1));
    assert!(fetch_all(&rsm, &md, 0, None) == std::fs::read(&files.log).unwrap());
    let rows = read_table_all_columns("pyiceberg", &dir.path().join("warehouse"), "kafka.pb_latest");
    assert_eq!(rows[2]["customer"], latest[2].typed.as_ref().unwrap().1["customer"]);
    assert_eq!(rows[2]["discount"], json!(0.75));
    copy_and_check_typed(dir.path(), &rsm, "pb_orders", &segments, registry, &url);
    // The incompatible writer: its values raw, logged once (two values), naming the field.
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let needle = format!("writer schema {id_bad} of topic pb_orders");
    assert_eq!(text.matches(&needle).count(), 1, "{text}");
}

const PERSON_JSON_V1: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"},"address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string"}}},"tags":{"type":"array","items":{"type":"string"}},"attrs":{"type":"object","additionalProperties":{"type":"string"}},"seen":{"type":"string","format":"date-time"},"score":{"type":"number"},"active":{"type":"boolean"}"#;

fn person_schema(version: u32) -> String {
    let extra = if version >= 2 { r#","level":{"type":"integer"}"# } else { "" };
    format!("{PERSON_JSON_V1}{extra}}}}}")
}

/// A person of `version` as Jackson writes it (compact, properties in schema order, `"`, `\`
/// and control characters escaped, non-ASCII as is, doubles as `Double.toString`), and what an
/// engine reads from its columns.
fn json_person(version: u32, i: i64) -> (Vec<u8>, J) {
    let name = format!("p{i} \"Zoë\"\n");
    let name_json = format!("p{i} \\\"Zoë\\\"\\n");
    let city = (i % 3 != 0).then(|| format!("town {i}"));
    let millis = 1_700_000_000_000 + i * 1001;
    let seen = {
        let secs = millis / 1000;
        let ms = millis % 1000;
        format!("2023-11-14T22:{:02}:{:02}.{ms:03}Z", 13 + (secs - 1_700_000_000 + 20) / 60, (secs - 1_700_000_000 + 20) % 60)
    };
    let score = i as f64 * 1.5 + 0.25;
    let mut s = format!(r#"{{"id":{i},"name":"{name_json}","address":{{"#);
    if let Some(c) = &city {
        s.push_str(&format!(r#""city":"{c}","#));
    }
    s.push_str(&format!(r#""zip":"{:05}"}},"tags":["a{i}","b"],"attrs":{{"src":"web"}},"seen":"{seen}","score":{score},"active":{}"#, 10_000 + i, i % 2 == 0));
    let mut expected = json!({
        "id": i,
        "name": name,
        "address": {"city": city, "zip": format!("{:05}", 10_000 + i)},
        "tags": [format!("a{i}"), "b"],
        "attrs": [["src", "web"]],
        "seen": millis * 1000,
        "score": score,
        "active": i % 2 == 0,
        "level": null,
    });
    if version >= 2 {
        s.push_str(&format!(r#","level":{}"#, i * 10));
        expected["level"] = json!(i * 10);
    }
    s.push('}');
    (s.into_bytes(), expected)
}

fn json_framed(id: i32, doc: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(doc);
    out
}

#[test]
fn json_values_become_columns_and_come_back_byte_identical() {
    let registry = Registry::start("typed-json");
    let id1 = registry.register_typed("people-value", "JSON", &person_schema(1), json!([]));
    let id2 = registry.register_typed("people-value", "JSON", &person_schema(2), json!([]));
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(dir.path(), &[("schema.registry.url", url.as_str()), ("value.mode", "value_schema_id_prefix")]);
    let typed_rec = |id: i32, version: u32, i: i64| {
        let (doc, expected) = json_person(version, i);
        Rec { value: Some(json_framed(id, &doc)), typed: Some((id, expected)), key: None }
    };
    let (doc, _) = json_person(1, 7);
    let text = String::from_utf8(doc.clone()).unwrap();
    let edited = |f: &dyn Fn(&str) -> String| raw(Some(json_framed(id1, f(&text).as_bytes())));
    let seg1: Vec<Rec> = vec![
        typed_rec(id1, 1, 1),
        typed_rec(id1, 1, 2),
        raw(None),
        typed_rec(id1, 1, 3),
        edited(&|t| t.replacen(":", ": ", 1)),                            // whitespace
        edited(&|t| t.replacen(r#"{"id":7,"#, r#"{"#, 1).replacen(r#","address""#, r#","id":7,"address""#, 1)), // key order
        edited(&|t| t.replacen(r#""active":false"#, r#""active":false,"extra":1"#, 1)), // unknown property
        edited(&|t| t.replacen(r#""score":10.75"#, r#""score":10.750"#, 1)),  // another spelling
        edited(&|t| t[..t.len() - 3].to_string()),                          // truncated
        raw(Some(json_framed(id1, b"[1,2,3]"))),
        typed_rec(id1, 1, 5),
    ];
    assert!(text.contains(r#""score":10.75"#), "{text}");
    let seg2: Vec<Rec> = (6..12).map(|i| typed_rec(id2, 2, i)).collect();
    let segments = [
        (write_segment(dir.path(), "people", 0, &[(Compression::None, &seg1[..5]), (Compression::None, &seg1[5..])]), &seg1[..]),
        (write_segment(dir.path(), "people", 11, &[(Compression::None, &seg2[..])]), &seg2[..]),
    ];
    copy_and_check_typed(dir.path(), &rsm, "people", &segments, registry, &url);
}

/// The key modes follow the registry's schema type too: JSON Schema keys in
/// `key_schema_id_prefix` mode become the `key` struct beside Protobuf values in columns (one
/// table, two formats); a key in another key order stays raw; everything served byte for byte.
#[test]
fn json_keys_beside_protobuf_values() {
    let registry = Registry::start("typed-mixed");
    let kid = registry.register_typed(
        "mixed-key",
        "JSON",
        r#"{"type":"object","properties":{"customer":{"type":"integer"},"region":{"type":"string"}}}"#,
        json!([]),
    );
    let vid = registry.register_typed("mixed-value", "PROTOBUF", &order_proto(1), json!([]));
    let dir = tempfile::tempdir().unwrap();
    let url = registry.url();
    let rsm = open(
        dir.path(),
        &[
            ("schema.registry.url", url.as_str()),
            ("topic.mixed.key.mode", "key_schema_id_prefix"),
            ("topic.mixed.value.mode", "value_schema_id_prefix"),
        ],
    );
    let recs: Vec<Rec> = (1..7)
        .map(|i| {
            let doc = if i == 4 { format!(r#"{{"region":"eu","customer":{i}}}"#) } else { format!(r#"{{"customer":{i},"region":"eu"}}"#) };
            Rec { key: Some(Some(json_framed(kid, doc.as_bytes()))), ..pb_typed(vid, 1, i) }
        })
        .collect();
    let (md, files) = write_segment(dir.path(), "mixed", 0, &[(Compression::None, &recs[..])]);
    let outcome = rsm.copy_log_segment(&md, &files).unwrap();
    assert_eq!((outcome.stats.keys_in_columns, outcome.stats.keys_raw_fallback), (5, 1));
    assert_eq!(outcome.stats.values_in_columns, 6);
    assert!(fetch_all(&rsm, &md, 0, None) == std::fs::read(&files.log).unwrap(), "served byte for byte");
    check_served(&rsm, &md, &files);
    let rows = read_table_all_columns("pyiceberg", &dir.path().join("warehouse"), "kafka.mixed");
    for (row, i) in rows.iter().zip(1..) {
        assert_eq!(row["kafka"]["value_schema_id"], json!(vid), "{row}");
        assert_eq!(row["id"], json!(i), "{row}");
        if i == 4 {
            assert_eq!(row["kafka"]["key_schema_id"], J::Null, "{row}");
            assert_eq!(row["key"], J::Null, "{row}");
        } else {
            assert_eq!(row["kafka"]["key_schema_id"], json!(kid), "{row}");
            assert_eq!(row["key"], json!({"customer": i, "region": "eu"}), "{row}");
        }
    }
}
