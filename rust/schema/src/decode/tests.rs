//! Unit and property tests of the decoder and its lossless check.

use std::sync::Arc;

use apache_avro::types::Value as A;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::Array;
use proptest::prelude::*;

use super::*;
use crate::avro::{evolve, WriterSchema};

fn writer(text: &str) -> Arc<WriterSchema> {
    Arc::new(WriterSchema::parse(text).unwrap())
}

/// Value columns of a table made from this writer schema alone.
fn columns_for(w: &WriterSchema) -> ValueColumns {
    let schema = iceberg::spec::Schema::builder()
        .with_fields(w.iceberg_fields(1))
        .build()
        .unwrap();
    ValueColumns::new(&schema, &[]).unwrap()
}

/// The value columns as one batch (what a data file gives back).
fn columns_batch(fields: Vec<arrow_schema::FieldRef>, arrays: Vec<arrow_array::ArrayRef>, rows: usize) -> arrow_array::RecordBatch {
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
    arrow_array::RecordBatch::try_new_with_options(schema, arrays, &options).unwrap()
}

/// Every type, several rows (nulls of optional fields included), through the columns and back.
#[test]
fn columns_encode_back_to_the_original_bytes() {
    let w = writer(ALL);
    let mut cols = columns_for(&w);
    let mut d = cols.decoder(w.clone());
    let originals: Vec<Vec<u8>> = (0..4).map(|i| avro_bytes(ALL, all_value(i))).collect();
    for b in &originals {
        cols.append(&mut d, b).unwrap();
    }
    cols.append_null();
    let batch = columns_batch(cols.fields(), cols.finish().unwrap(), originals.len() + 1);
    let encoder = crate::encode::RowEncoder::new(&w, &batch);
    for (row, b) in originals.iter().enumerate() {
        let mut out = Vec::new();
        encoder.encode(row, &mut out).unwrap();
        assert_eq!(&out, b, "row {row}");
    }
    // The null row (a value kept raw) has no encoding with this writer.
    assert!(encoder.encode(4, &mut Vec::new()).is_err());
}

fn avro_bytes(text: &str, v: A) -> Vec<u8> {
    let s = apache_avro::Schema::parse_str(text).unwrap();
    apache_avro::to_avro_datum(&s, v.clone()).unwrap_or_else(|e| panic!("{e}: {text} {v:?}"))
}

const ALL: &str = r#"{"type":"record","name":"R","namespace":"t","fields":[
  {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
  {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"y","type":"bytes"},
  {"name":"s","type":"string"},{"name":"n","type":"null"},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
  {"name":"x","type":{"type":"fixed","name":"F","size":3}},
  {"name":"o","type":["null","string"]},
  {"name":"u","type":["null","int","string"]},
  {"name":"arr","type":{"type":"array","items":{"type":"record","name":"P","fields":[{"name":"k","type":"int"}]}}},
  {"name":"m","type":{"type":"map","values":["null","double"]}},
  {"name":"date","type":{"type":"int","logicalType":"date"}},
  {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
  {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
  {"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"ltu","type":{"type":"long","logicalType":"local-timestamp-micros"}},
  {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
  {"name":"decf","type":{"type":"fixed","name":"DF","size":8,"logicalType":"decimal","precision":18,"scale":3}},
  {"name":"uid","type":{"type":"string","logicalType":"uuid"}}
]}"#;

fn all_value(i: i32) -> A {
    A::Record(vec![
        ("b".into(), A::Boolean(i % 2 == 0)),
        ("i".into(), A::Int(-i)),
        ("l".into(), A::Long(i64::from(i) << 40)),
        ("f".into(), A::Float(1.5)),
        ("d".into(), A::Double(-0.0)),
        ("y".into(), A::Bytes(vec![0, 1, 2])),
        ("s".into(), A::String(format!("héllo {i}"))),
        ("n".into(), A::Null),
        ("e".into(), A::Enum(2, "C".into())),
        ("x".into(), A::Fixed(3, vec![9, 8, 7])),
        (
            "o".into(),
            if i == 0 {
                A::Union(0, Box::new(A::Null))
            } else {
                A::Union(1, Box::new(A::String("opt".into())))
            },
        ),
        ("u".into(), A::Union(2, Box::new(A::String("wide".into())))),
        (
            "arr".into(),
            A::Array(vec![
                A::Record(vec![("k".into(), A::Int(1))]),
                A::Record(vec![("k".into(), A::Int(2))]),
            ]),
        ),
        (
            "m".into(),
            A::Map(
                [("a".to_string(), A::Union(1, Box::new(A::Double(2.5))))]
                    .into_iter()
                    .collect(),
            ),
        ),
        ("date".into(), A::Date(19000)),
        ("tm".into(), A::TimeMillis(1234)),
        ("tu".into(), A::TimeMicros(5678)),
        ("tsm".into(), A::TimestampMillis(1_700_000_000_123)),
        ("ltu".into(), A::LocalTimestampMicros(42)),
        (
            "dec".into(),
            A::Decimal(apache_avro::Decimal::from(vec![0x30, 0x39])),
        ), // 12345 → 123.45
        (
            "decf".into(),
            A::Decimal(apache_avro::Decimal::from(vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
            ])),
        ), // -2
        ("uid".into(), A::Uuid(uuid::Uuid::from_bytes([0xab; 16]))),
    ])
}

#[test]
fn every_type_decodes_to_its_column() {
    let w = writer(ALL);
    let mut cols = columns_for(&w);
    let mut d = cols.decoder(w.clone());
    assert_eq!(d.conflict(), None);
    for i in 0..2 {
        let bytes = avro_bytes(ALL, all_value(i));
        cols.append(&mut d, &bytes).unwrap();
    }
    cols.append_null();
    let fields = cols.fields();
    let arrays = cols.finish().unwrap();
    assert_eq!(cols.len(), 0);
    let col = |name: &str| {
        let i = fields.iter().position(|f| f.name() == name).unwrap();
        arrays[i].clone()
    };
    assert!(
        fields.iter().all(|f| f.name() != "n"),
        "null fields have no column"
    );
    assert!(col("b").as_boolean().value(0));
    assert_eq!(col("i").as_primitive::<Int32Type>().value(1), -1);
    assert_eq!(col("l").as_primitive::<Int64Type>().value(1), 1 << 40);
    assert_eq!(col("f").as_primitive::<Float32Type>().value(0), 1.5);
    assert!(col("d")
        .as_primitive::<Float64Type>()
        .value(0)
        .is_sign_negative());
    assert_eq!(col("y").as_binary::<i64>().value(0), &[0, 1, 2]);
    assert_eq!(col("s").as_string::<i32>().value(1), "héllo 1");
    assert_eq!(col("e").as_string::<i32>().value(0), "C");
    assert_eq!(col("x").as_fixed_size_binary().value(0), &[9, 8, 7]);
    assert!(col("o").is_null(0));
    assert_eq!(col("o").as_string::<i32>().value(1), "opt");
    let u = col("u");
    let u = u.as_struct();
    assert!(u.column_by_name("int").unwrap().is_null(0));
    assert_eq!(
        u.column_by_name("string")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "wide"
    );
    let arr = col("arr");
    let arr = arr.as_list::<i32>();
    assert_eq!(arr.value_length(0), 2);
    let k = arr
        .values()
        .as_struct()
        .column_by_name("k")
        .unwrap()
        .as_primitive::<Int32Type>()
        .clone();
    assert_eq!(k.values(), &[1, 2, 1, 2]);
    let m = col("m");
    let m = m.as_map();
    assert_eq!(m.keys().as_string::<i32>().value(0), "a");
    assert_eq!(m.values().as_primitive::<Float64Type>().value(0), 2.5);
    assert_eq!(col("date").as_primitive::<Date32Type>().value(0), 19000);
    assert_eq!(
        col("tm").as_primitive::<Time64MicrosecondType>().value(0),
        1_234_000
    );
    assert_eq!(
        col("tu").as_primitive::<Time64MicrosecondType>().value(0),
        5678
    );
    let tsm = col("tsm");
    assert_eq!(
        tsm.as_primitive::<TimestampMicrosecondType>().value(0),
        1_700_000_000_123_000
    );
    assert!(matches!(tsm.data_type(), DataType::Timestamp(_, Some(_))));
    assert!(matches!(
        col("ltu").data_type(),
        DataType::Timestamp(_, None)
    ));
    assert_eq!(col("dec").as_primitive::<Decimal128Type>().value(0), 12345);
    assert_eq!(col("decf").as_primitive::<Decimal128Type>().value(0), -2);
    assert_eq!(col("uid").as_fixed_size_binary().value(0), &[0xab; 16]);
    // The appended null row.
    assert!(arrays.iter().all(|a| a.len() == 3 && a.is_null(2)));
    // Every array's type is exactly the schema's (field ids in nested metadata included).
    for (f, a) in fields.iter().zip(&arrays) {
        assert_eq!(f.data_type(), a.data_type(), "{}", f.name());
    }
}

/// Decodes `bytes` with a one-field schema; the outcome.
fn outcome(text: &str, bytes: &[u8]) -> Result<(), Fallback> {
    let w = writer(text);
    let mut cols = columns_for(&w);
    let mut d = cols.decoder(w);
    let r = cols.append(&mut d, bytes);
    let arrays = cols.finish().unwrap();
    assert!(
        arrays.iter().all(|a| a.len() == 1),
        "a row is appended either way"
    );
    if r.is_err() {
        assert!(
            arrays.iter().all(|a| a.is_null(0)),
            "a fallback row has null columns"
        );
    }
    r
}

fn rec(field_type: &str) -> String {
    format!(r#"{{"type":"record","name":"R","fields":[{{"name":"a","type":{field_type}}}]}}"#)
}

fn not_canonical(r: Result<(), Fallback>) -> bool {
    matches!(r, Err(Fallback::NotCanonical { .. }))
}

#[test]
fn canonical_forms_pass() {
    assert_eq!(outcome(&rec(r#""long""#), &[0x02]), Ok(()));
    assert_eq!(outcome(&rec(r#""long""#), &[0x80, 0x01]), Ok(())); // 64
    assert_eq!(
        outcome(&rec(r#"{"type":"array","items":"int"}"#), &[0]),
        Ok(())
    );
    assert_eq!(
        outcome(&rec(r#"{"type":"array","items":"int"}"#), &[4, 2, 4, 0]),
        Ok(())
    );
    assert_eq!(outcome(&rec(r#"["null","int"]"#), &[0]), Ok(()));
    assert_eq!(outcome(&rec(r#""float""#), &f32::NAN.to_le_bytes()), Ok(()));
}

#[test]
fn non_minimal_varints_fall_back() {
    // 1 as a 2-byte varint.
    assert!(not_canonical(outcome(&rec(r#""long""#), &[0x82, 0x00])));
    assert!(not_canonical(outcome(
        &rec(r#""int""#),
        &[0x82, 0x80, 0x00]
    )));
    // A string length padded.
    assert!(not_canonical(outcome(
        &rec(r#""string""#),
        &[0x82, 0x00, b'x']
    )));
    // A union index padded.
    assert!(not_canonical(outcome(
        &rec(r#"["null","int"]"#),
        &[0x82, 0x00, 0x02]
    )));
    // An enum index padded.
    assert!(not_canonical(outcome(
        &rec(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#),
        &[0x82, 0x00]
    )));
}

#[test]
fn block_encodings_fall_back() {
    let arr = rec(r#"{"type":"array","items":"int"}"#);
    // [1, 2] in two blocks.
    assert!(not_canonical(outcome(&arr, &[2, 2, 2, 4, 0])));
    // [1, 2] as one block with a negative count and a byte size.
    assert!(not_canonical(outcome(&arr, &[3, 4, 2, 4, 0])));
    // An empty block before the end marker is not possible (0 ends); a count of 0 padded is.
    assert!(not_canonical(outcome(&arr, &[0x80, 0x00])));
    let map = rec(r#"{"type":"map","values":"int"}"#);
    assert_eq!(outcome(&map, &[4, 2, b'a', 2, 2, b'b', 4, 0]), Ok(()));
    assert!(not_canonical(outcome(
        &map,
        &[2, 2, b'a', 2, 2, 2, b'b', 4, 0]
    )));
    assert!(not_canonical(outcome(
        &map,
        &[3, 10, 2, b'a', 2, 2, b'b', 4, 0]
    )));
}

#[test]
fn policy_fallbacks() {
    // NaN with a payload round-trips bytewise but is kept raw.
    let nan = f32::from_bits(0x7fc0_0001).to_le_bytes();
    assert_eq!(outcome(&rec(r#""float""#), &nan), Err(Fallback::NanPayload));
    let nan = f64::from_bits(0xfff8_0000_0000_0000).to_le_bytes(); // negative quiet NaN
    assert_eq!(
        outcome(&rec(r#""double""#), &nan),
        Err(Fallback::NanPayload)
    );
    // Duplicate map keys.
    let map = rec(r#"{"type":"map","values":"int"}"#);
    assert_eq!(
        outcome(&map, &[4, 2, b'a', 2, 2, b'a', 4, 0]),
        Err(Fallback::DuplicateMapKey("a".into()))
    );
    // A decimal beyond its precision: 1000 in decimal(3, 0).
    let dec = rec(r#"{"type":"bytes","logicalType":"decimal","precision":3,"scale":0}"#);
    assert_eq!(outcome(&dec, &[4, 0x03, 0xe8]), Err(Fallback::OutOfRange));
    assert_eq!(outcome(&dec, &[4, 0x03, 0xe7]), Ok(())); // 999
                                                         // Timestamp millis whose micros overflow.
    let ts = rec(r#"{"type":"long","logicalType":"timestamp-millis"}"#);
    let mut big = Vec::new();
    write_long(i64::MAX / 10, &mut big, Style::default());
    assert_eq!(outcome(&ts, &big), Err(Fallback::OutOfRange));
}

#[test]
fn other_non_canonical_values_fall_back() {
    // A boolean byte 2.
    assert!(not_canonical(outcome(&rec(r#""boolean""#), &[2])));
    // Decimal zero as empty bytes (Java writes one byte), and with a redundant sign byte.
    let dec = rec(r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#);
    assert_eq!(outcome(&dec, &[2, 0]), Ok(()));
    assert!(not_canonical(outcome(&dec, &[0])));
    assert!(not_canonical(outcome(&dec, &[4, 0, 0x05])));
    assert!(not_canonical(outcome(&dec, &[4, 0xff, 0xfe])));
    assert_eq!(outcome(&dec, &[2, 0xfe]), Ok(()));
    assert_eq!(outcome(&dec, &[4, 0x00, 0x80]), Ok(())); // 128 needs the 0 sign byte
                                                         // An upper-case uuid.
    let uid = rec(r#"{"type":"string","logicalType":"uuid"}"#);
    let lower = b"0f0e0d0c-0b0a-0908-0706-050403020100";
    let mut ok = vec![72];
    ok.extend_from_slice(lower);
    assert_eq!(outcome(&uid, &ok), Ok(()));
    let mut upper = vec![72];
    upper.extend_from_slice(&lower.to_ascii_uppercase());
    assert!(not_canonical(outcome(&uid, &upper)));
    // Trailing bytes.
    assert!(not_canonical(outcome(&rec(r#""int""#), &[2, 0])));
}

#[test]
fn fixed_uuid_is_sixteen_raw_bytes() {
    let text = rec(r#"{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}"#);
    let w = writer(&text);
    let mut cols = columns_for(&w);
    let mut d = cols.decoder(w);
    cols.append(&mut d, &[7; 16]).unwrap();
    let a = cols.finish().unwrap();
    assert_eq!(a[0].as_fixed_size_binary().value(0), &[7; 16]);
}

#[test]
fn malformed_values_fall_back() {
    let m = |r: Result<(), Fallback>| match r {
        Err(Fallback::Malformed { kind, .. }) => Some(kind),
        _ => None,
    };
    assert_eq!(
        m(outcome(&rec(r#""long""#), &[])),
        Some(Malformed::Truncated)
    );
    assert_eq!(
        m(outcome(&rec(r#""long""#), &[0xff; 11])),
        Some(Malformed::VarintOverflow)
    );
    assert_eq!(
        m(outcome(&rec(r#""int""#), &[0xfe, 0xff, 0xff, 0xff, 0x1f])),
        Some(Malformed::VarintOverflow)
    );
    assert_eq!(
        m(outcome(&rec(r#""string""#), &[1])),
        Some(Malformed::NegativeLength)
    );
    assert_eq!(
        m(outcome(&rec(r#""string""#), &[4, 0xff, 0xfe])),
        Some(Malformed::Utf8)
    );
    assert_eq!(
        m(outcome(&rec(r#"["null","int"]"#), &[4])),
        Some(Malformed::UnionIndex)
    );
    assert_eq!(
        m(outcome(&rec(r#"["null","int"]"#), &[1])),
        Some(Malformed::UnionIndex)
    );
    assert_eq!(
        m(outcome(
            &rec(r#"{"type":"enum","name":"E","symbols":["A"]}"#),
            &[2]
        )),
        Some(Malformed::EnumIndex)
    );
    // A forged count: a billion items announced in 3 bytes.
    let mut forged = Vec::new();
    write_long(1 << 30, &mut forged, Style::default());
    assert_eq!(
        m(outcome(&rec(r#"{"type":"array","items":"int"}"#), &forged)),
        Some(Malformed::TooManyItems)
    );
    assert_eq!(
        m(outcome(
            &rec(r#""string""#),
            &[0x80, 0x80, 0x80, 0x80, 0x10]
        )),
        Some(Malformed::Truncated)
    );
}

#[test]
fn schema_evolution_rows_share_the_merged_columns() {
    let v1 = writer(
        r#"{"type":"record","name":"R","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"}]}"#,
    );
    let v2 = writer(
        r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"tags","type":{"type":"array","items":"string"}}]}"#,
    );
    let v3 = writer(r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}"#);
    let kafka = iceberg::spec::NestedField::optional(
        1,
        "kafka",
        iceberg::spec::Type::Primitive(iceberg::spec::PrimitiveType::Long),
    );
    let base = iceberg::spec::Schema::builder()
        .with_fields(vec![kafka.into()])
        .build()
        .unwrap();
    let e1 = evolve(&base, 1, &["kafka"], &v1).unwrap();
    let e2 = evolve(&e1.schema, e1.last_column_id, &["kafka"], &v2).unwrap();
    assert_eq!(e2.promoted.len(), 1, "int -> long");
    let e3 = evolve(&e2.schema, e2.last_column_id, &["kafka"], &v3).unwrap();
    assert_eq!(e3.conflicts.len(), 1, "long -> string");
    let mut cols = ValueColumns::new(&e3.schema, &["kafka"]).unwrap();
    let mut d1 = cols.decoder(v1);
    let mut d2 = cols.decoder(v2);
    let mut d3 = cols.decoder(v3);
    assert!(d3.conflict().is_some());
    cols.append(&mut d1, &[2, 2, b'x']).unwrap(); // id 1, "x"
    cols.append(&mut d2, &[4, 2, 2, b't', 0]).unwrap(); // id 2, ["t"]
    assert_eq!(cols.append(&mut d3, &[2, b'3']), Err(Fallback::Schema));
    let names: Vec<String> = cols.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "name", "tags"]);
    let a = cols.finish().unwrap();
    let id = a[0].as_primitive::<Int64Type>();
    assert_eq!((id.value(0), id.value(1), id.is_null(2)), (1, 2, true));
    assert!(
        a[1].is_null(1),
        "a field the writer does not have reads as null"
    );
    assert!(a[2].is_null(0));
}

#[test]
fn decimal_bytes_helpers() {
    for v in [
        0i128,
        1,
        -1,
        127,
        128,
        -128,
        -129,
        i64::MAX as i128,
        i128::MAX,
        i128::MIN,
    ] {
        let mut out = Vec::new();
        encode(
            &Node::Decimal {
                precision: 38,
                scale: 0,
                fixed: None,
            },
            &Value::Decimal(v),
            &mut out,
            Style::default(),
        );
        let mut r = Reader { buf: &out, pos: 0 };
        assert_eq!(decimal_from_be(r.bytes().unwrap()), Some(v));
    }
    assert_eq!(decimal_from_be(&[0xff; 20]), Some(-1));
    assert_eq!(decimal_from_be(&[1; 17]), None);
    let mut x = vec![0u8; 4];
    x.extend_from_slice(&[0x80; 16]);
    assert_eq!(
        decimal_from_be(&x),
        None,
        "positive value that needs 17 bytes"
    );
}

// ---- property tests ----

/// A generated Avro type (rendered to JSON; values generated as apache-avro values).
#[derive(Debug, Clone)]
enum G {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Date,
    TimeMs,
    TimeUs,
    TsUs,
    TsMs,
    TsMsUtc,
    LocalTsUs,
    TsNanos,
    Uuid,
    UuidFixed,
    Dec(u8, u8),
    /// Precision, scale, extra bytes beyond the fewest that hold the precision.
    DecFixed(u8, u8, usize),
    Fixed(usize),
    Enum(usize),
    Array(Box<G>),
    Map(Box<G>),
    Opt(Box<G>),
    /// `[T, "null"]`.
    OptLast(Box<G>),
    Wide(Box<G>),
    /// `["bytes", record, "null"]`.
    WideRecord(Vec<G>),
    Record(Vec<G>),
}

/// The fewest bytes of two's complement that hold every value of `p` decimal digits.
fn decimal_fixed_size(p: u8) -> usize {
    let max = 10i128.pow(u32::from(p)) - 1;
    min_be(max).len()
}

/// The schema's JSON; `avro`: for apache-avro, which writes the values (a uuid `fixed` as a
/// plain `fixed`: same bytes).
fn render(g: &G, n: &mut usize, avro: bool) -> String {
    let mut name = || {
        *n += 1;
        format!("N{n}")
    };
    match g {
        G::Null => r#""null""#.into(),
        G::Bool => r#""boolean""#.into(),
        G::Int => r#""int""#.into(),
        G::Long => r#""long""#.into(),
        G::Float => r#""float""#.into(),
        G::Double => r#""double""#.into(),
        G::Bytes => r#""bytes""#.into(),
        G::Str => r#""string""#.into(),
        G::Date => r#"{"type":"int","logicalType":"date"}"#.into(),
        G::TimeMs => r#"{"type":"int","logicalType":"time-millis"}"#.into(),
        G::TimeUs => r#"{"type":"long","logicalType":"time-micros"}"#.into(),
        G::TsUs => r#"{"type":"long","logicalType":"timestamp-micros"}"#.into(),
        G::TsMs => r#"{"type":"long","logicalType":"local-timestamp-millis"}"#.into(),
        G::TsMsUtc => r#"{"type":"long","logicalType":"timestamp-millis"}"#.into(),
        G::LocalTsUs => r#"{"type":"long","logicalType":"local-timestamp-micros"}"#.into(),
        G::TsNanos => r#"{"type":"long","logicalType":"timestamp-nanos"}"#.into(),
        G::Uuid => r#"{"type":"string","logicalType":"uuid"}"#.into(),
        G::UuidFixed if avro => format!(r#"{{"type":"fixed","name":"{}","size":16}}"#, name()),
        G::UuidFixed => format!(
            r#"{{"type":"fixed","name":"{}","size":16,"logicalType":"uuid"}}"#,
            name()
        ),
        G::Dec(p, s) => {
            format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#)
        }
        G::DecFixed(p, s, extra) => format!(
            r#"{{"type":"fixed","name":"{}","size":{},"logicalType":"decimal","precision":{p},"scale":{s}}}"#,
            name(),
            decimal_fixed_size(*p) + extra
        ),
        G::Fixed(size) => format!(r#"{{"type":"fixed","name":"{}","size":{size}}}"#, name()),
        G::Enum(k) => {
            let symbols: Vec<String> = (0..*k).map(|i| format!("\"S{i}\"")).collect();
            format!(
                r#"{{"type":"enum","name":"{}","symbols":[{}]}}"#,
                name(),
                symbols.join(",")
            )
        }
        G::Array(i) => format!(r#"{{"type":"array","items":{}}}"#, render(i, n, avro)),
        G::Map(v) => format!(r#"{{"type":"map","values":{}}}"#, render(v, n, avro)),
        G::Opt(v) => format!(r#"["null",{}]"#, render(v, n, avro)),
        G::OptLast(v) => format!(r#"[{},"null"]"#, render(v, n, avro)),
        G::Wide(v) => format!(
            r#"["null","int","string",{{"type":"array","items":{}}}]"#,
            render(v, n, avro)
        ),
        G::WideRecord(fields) => format!(
            r#"["bytes",{},"null"]"#,
            render(&G::Record(fields.clone()), n, avro)
        ),
        G::Record(fields) => {
            let rn = name();
            let fs: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| format!(r#"{{"name":"f{i}","type":{}}}"#, render(f, n, avro)))
                .collect();
            format!(
                r#"{{"type":"record","name":"{rn}","fields":[{}]}}"#,
                fs.join(",")
            )
        }
    }
}

/// Whether a generated type has a column (what `avro::has_column` says of its node).
fn g_has_column(g: &G) -> bool {
    match g {
        G::Null => false,
        G::Record(fields) => fields.iter().any(g_has_column),
        _ => true,
    }
}

fn gen_type() -> impl Strategy<Value = G> {
    let leaf = prop_oneof![
        Just(G::Null),
        Just(G::Bool),
        Just(G::Int),
        Just(G::Long),
        Just(G::Float),
        Just(G::Double),
        Just(G::Bytes),
        Just(G::Str),
        Just(G::Date),
        Just(G::TimeMs),
        Just(G::TimeUs),
        Just(G::TsUs),
        Just(G::TsMs),
        Just(G::TsMsUtc),
        Just(G::LocalTsUs),
        Just(G::TsNanos),
        Just(G::Uuid),
        Just(G::UuidFixed),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p))
            .prop_map(|(p, s)| G::Dec(p, s)),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p, 0usize..4))
            .prop_map(|(p, s, e)| G::DecFixed(p, s, e)),
        (1usize..20).prop_map(G::Fixed),
        (1usize..5).prop_map(G::Enum),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            // Array items, map values and union branches need a column.
            inner.clone().prop_filter("a column", g_has_column).prop_map(|g| G::Array(Box::new(g))),
            inner.clone().prop_filter("a column", g_has_column).prop_map(|g| G::Map(Box::new(g))),
            inner.clone().prop_filter("a column", g_has_column).prop_map(|g| match g {
                // A union may not directly contain a union.
                G::Opt(_) | G::OptLast(_) | G::Wide(_) | G::WideRecord(_) => g,
                g => G::Opt(Box::new(g)),
            }),
            inner.clone().prop_filter("a column", g_has_column).prop_map(|g| match g {
                G::Opt(_) | G::OptLast(_) | G::Wide(_) | G::WideRecord(_) => g,
                g => G::OptLast(Box::new(g)),
            }),
            inner.clone().prop_filter("a column", g_has_column).prop_map(|g| G::Wide(Box::new(g))),
            proptest::collection::vec(inner.clone(), 1..3)
                .prop_filter("a column", |fs| fs.iter().any(g_has_column))
                .prop_map(G::WideRecord),
            proptest::collection::vec(inner, 1..4).prop_map(G::Record),
        ]
    })
}

fn canonical_f32(bits: u32) -> f32 {
    let f = f32::from_bits(bits);
    if f.is_nan() {
        f32::NAN
    } else {
        f
    }
}

fn canonical_f64(bits: u64) -> f64 {
    let f = f64::from_bits(bits);
    if f.is_nan() {
        f64::NAN
    } else {
        f
    }
}

fn min_be(v: i128) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &Node::Decimal {
            precision: 38,
            scale: 0,
            fixed: None,
        },
        &Value::Decimal(v),
        &mut out,
        Style::default(),
    );
    let mut r = Reader { buf: &out, pos: 0 };
    r.bytes().unwrap().to_vec()
}

fn gen_value(g: &G) -> BoxedStrategy<A> {
    gen_value_in(g, false)
}

/// A value of `g`. Not `wild`: every value fits its column (NaNs canonical, timestamps in range,
/// decimals minimal and within their precision). `wild`: also values that go to the fallback.
fn gen_value_in(g: &G, wild: bool) -> BoxedStrategy<A> {
    match g {
        G::Null => Just(A::Null).boxed(),
        G::Bool => any::<bool>().prop_map(A::Boolean).boxed(),
        G::Int => any::<i32>().prop_map(A::Int).boxed(),
        G::Long => any::<i64>().prop_map(A::Long).boxed(),
        G::Float if wild => any::<u32>().prop_map(|b| A::Float(f32::from_bits(b))).boxed(),
        G::Float => any::<u32>()
            .prop_map(|b| A::Float(canonical_f32(b)))
            .boxed(),
        G::Double if wild => prop_oneof![
            any::<u64>().prop_map(|b| A::Double(f64::from_bits(b))),
            any::<u64>().prop_map(|b| A::Double(f64::from_bits(b | 0x7ff0_0000_0000_0000))),
        ]
        .boxed(),
        G::Double => any::<u64>()
            .prop_map(|b| A::Double(canonical_f64(b)))
            .boxed(),
        G::Bytes => proptest::collection::vec(any::<u8>(), 0..20)
            .prop_map(A::Bytes)
            .boxed(),
        G::Str => ".{0,12}".prop_map(A::String).boxed(),
        G::Date => any::<i32>().prop_map(A::Date).boxed(),
        G::TimeMs => (0..86_400_000i32).prop_map(A::TimeMillis).boxed(),
        G::TimeUs => (0..86_400_000_000i64).prop_map(A::TimeMicros).boxed(),
        G::TsUs => any::<i64>().prop_map(A::TimestampMicros).boxed(),
        G::LocalTsUs => any::<i64>().prop_map(A::LocalTimestampMicros).boxed(),
        G::TsNanos => any::<i64>().prop_map(A::TimestampNanos).boxed(),
        G::TsMs if wild => any::<i64>().prop_map(A::LocalTimestampMillis).boxed(),
        G::TsMs => (-(i64::MAX / 1000)..=i64::MAX / 1000)
            .prop_map(A::LocalTimestampMillis)
            .boxed(),
        G::TsMsUtc if wild => prop_oneof![
            any::<i64>().prop_map(A::TimestampMillis),
            (i64::MAX / 1000 - 2..=i64::MAX / 1000 + 2).prop_map(A::TimestampMillis),
        ]
        .boxed(),
        G::TsMsUtc => (-(i64::MAX / 1000)..=i64::MAX / 1000)
            .prop_map(A::TimestampMillis)
            .boxed(),
        G::Uuid => any::<[u8; 16]>()
            .prop_map(|b| A::Uuid(uuid::Uuid::from_bytes(b)))
            .boxed(),
        G::UuidFixed => any::<[u8; 16]>()
            .prop_map(|b| A::Fixed(16, b.to_vec()))
            .boxed(),
        G::Dec(p, _) if wild => {
            let max = 10i128.pow(u32::from(*p));
            // Near the precision's limit, anywhere, and with redundant sign bytes (apache-avro
            // writes a decimal's bytes as given, but refuses empty ones: zero as empty bytes is
            // in `other_non_canonical_values_fall_back`).
            (prop_oneof![-max - 2..=max + 1, any::<i128>(), -300i128..300], 0usize..3)
                .prop_map(|(v, extra)| {
                    let mut b = min_be(v);
                    for _ in 0..extra {
                        b.insert(0, if v < 0 { 0xff } else { 0 });
                    }
                    A::Decimal(apache_avro::Decimal::from(b))
                })
                .boxed()
        }
        G::Dec(p, _) => {
            let max = 10i128.pow(u32::from(*p)) - 1;
            (-max..=max)
                .prop_map(|v| A::Decimal(apache_avro::Decimal::from(min_be(v))))
                .boxed()
        }
        G::DecFixed(p, _, extra) => {
            let size = decimal_fixed_size(*p) + extra;
            let max = 10i128.pow(u32::from(*p)) - 1;
            let fit = (-max..=max).prop_map(move |v| {
                let b = min_be(v);
                let mut out = vec![if v < 0 { 0xff } else { 0 }; size - b.len()];
                out.extend_from_slice(&b);
                A::Decimal(apache_avro::Decimal::from(out))
            });
            if wild {
                prop_oneof![
                    fit,
                    proptest::collection::vec(any::<u8>(), size)
                        .prop_map(|b| A::Decimal(apache_avro::Decimal::from(b))),
                ]
                .boxed()
            } else {
                fit.boxed()
            }
        }
        G::Fixed(n) => {
            let n = *n;
            proptest::collection::vec(any::<u8>(), n)
                .prop_map(move |b| A::Fixed(n, b))
                .boxed()
        }
        G::Enum(k) => (0..*k as u32)
            .prop_map(|i| A::Enum(i, format!("S{i}")))
            .boxed(),
        G::Array(i) => proptest::collection::vec(gen_value_in(i, wild), 0..4)
            .prop_map(A::Array)
            .boxed(),
        G::Map(v) => proptest::collection::hash_map("[a-z]{0,3}", gen_value_in(v, wild), 0..4)
            .prop_map(A::Map)
            .boxed(),
        G::Opt(v) => prop_oneof![
            Just(A::Union(0, Box::new(A::Null))),
            gen_value_in(v, wild).prop_map(|x| A::Union(1, Box::new(x))),
        ]
        .boxed(),
        G::OptLast(v) => prop_oneof![
            Just(A::Union(1, Box::new(A::Null))),
            gen_value_in(v, wild).prop_map(|x| A::Union(0, Box::new(x))),
        ]
        .boxed(),
        G::Wide(v) => prop_oneof![
            Just(A::Union(0, Box::new(A::Null))),
            any::<i32>().prop_map(|x| A::Union(1, Box::new(A::Int(x)))),
            ".{0,4}".prop_map(|x| A::Union(2, Box::new(A::String(x)))),
            proptest::collection::vec(gen_value_in(v, wild), 0..3)
                .prop_map(|x| A::Union(3, Box::new(A::Array(x)))),
        ]
        .boxed(),
        G::WideRecord(fields) => prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(|b| A::Union(0, Box::new(A::Bytes(b)))),
            gen_value_in(&G::Record(fields.clone()), wild).prop_map(|x| A::Union(1, Box::new(x))),
            Just(A::Union(2, Box::new(A::Null))),
        ]
        .boxed(),
        G::Record(fields) => {
            let strategies: Vec<BoxedStrategy<A>> =
                fields.iter().map(|f| gen_value_in(f, wild)).collect();
            strategies
                .prop_map(|vs| {
                    A::Record(
                        vs.into_iter()
                            .enumerate()
                            .map(|(i, v)| (format!("f{i}"), v))
                            .collect(),
                    )
                })
                .boxed()
        }
    }
}

/// A top-level record of generated fields, and a value written by apache-avro.
fn schema_and_bytes() -> impl Strategy<Value = (String, Vec<u8>)> {
    proptest::collection::vec(gen_type(), 1..5).prop_flat_map(|fields| {
        let g = G::Record(fields);
        let mut n = 0;
        let text = render(&g, &mut n, false);
        let mut n = 0;
        let avro_text = render(&g, &mut n, true);
        gen_value(&g).prop_map(move |v| {
            let bytes = avro_bytes(&avro_text, v);
            (text.clone(), bytes)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// What apache-avro writes decodes to columns and re-encodes to the same bytes.
    #[test]
    fn serializer_output_round_trips((text, bytes) in schema_and_bytes()) {
        let w = writer(&text);
        let mut cols = columns_for(&w);
        let mut d = cols.decoder(w.clone());
        prop_assert_eq!(d.conflict(), None);
        prop_assert_eq!(cols.append(&mut d, &bytes), Ok(()));
        let fields = cols.fields();
        let arrays = cols.finish().unwrap();
        for (f, a) in fields.iter().zip(&arrays) {
            prop_assert_eq!(f.data_type(), a.data_type());
            prop_assert_eq!(a.len(), 1);
        }
        // And the way back: the columns re-encode to the serializer's bytes.
        let batch = columns_batch(fields, arrays, 1);
        let mut again = Vec::new();
        crate::encode::RowEncoder::new(&w, &batch).encode(0, &mut again).unwrap();
        prop_assert_eq!(again, bytes);
    }

    /// The same values written in a non-canonical way go to the fallback (never panic).
    #[test]
    fn non_canonical_encodings_fall_back(
        (text, bytes) in schema_and_bytes(),
        pad in any::<bool>(), split in any::<bool>(), sized in any::<bool>(),
    ) {
        let w = writer(&text);
        let values = decode_payload(&w, &bytes).unwrap();
        let mut odd = Vec::new();
        encode_payload(&w, &values, &mut odd, Style { pad_varints: pad, split_blocks: split, sized_blocks: sized });
        // Decoding the odd form gives the same values back (a padded 10-byte varint is 11
        // bytes: malformed, which is a fallback too).
        match decode_payload(&w, &odd) {
            Ok(again) => {
                // Compared through their canonical encodings: values may hold NaNs (NaN != NaN).
                let (mut a, mut b) = (Vec::new(), Vec::new());
                encode_payload(&w, &again, &mut a, Style::default());
                encode_payload(&w, &values, &mut b, Style::default());
                prop_assert_eq!(a, b);
            }
            Err(Fallback::Malformed { kind: Malformed::VarintOverflow, .. }) if pad => {}
            Err(e) => prop_assert!(false, "{:?}", e),
        }
        let mut cols = columns_for(&w);
        let mut d = cols.decoder(w);
        let r = cols.append(&mut d, &odd);
        if odd == bytes {
            prop_assert_eq!(r, Ok(()));
        } else {
            prop_assert!(
                matches!(r, Err(Fallback::NotCanonical { .. } | Fallback::Malformed { kind: Malformed::VarintOverflow, .. })),
                "{:?}", r
            );
        }
    }

    /// Arbitrary bytes against an arbitrary schema: an outcome, never a panic; and whatever
    /// is accepted re-encodes to exactly those bytes.
    #[test]
    fn garbage_never_panics((text, _) in schema_and_bytes(), garbage in proptest::collection::vec(any::<u8>(), 0..64)) {
        let w = writer(&text);
        let mut cols = columns_for(&w);
        let mut d = cols.decoder(w.clone());
        if cols.append(&mut d, &garbage).is_ok() {
            let values = decode_payload(&w, &garbage).unwrap();
            let mut again = Vec::new();
            encode_payload(&w, &values, &mut again, Style::default());
            prop_assert_eq!(again, garbage);
        }
        cols.finish().unwrap();
    }
}

// ---- the direct decoder against the oracle (decode tree + re-encode + Arrow builders) ----

/// Both decoders over the same payloads, row after row into the same columns: the same outcome
/// per row (the same `Fallback`, a `NotCanonical` position aside) and equal arrays, finished after
/// the first two rows (the builders then go on from empty) and at the end.
fn agree_with_oracle(w: &Arc<WriterSchema>, schema: &iceberg::spec::Schema, payloads: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut new = ValueColumns::new(schema, &[]).unwrap();
    let mut old = OracleColumns::new(schema, &[]).unwrap();
    let mut d = new.decoder(w.clone());
    let split = if payloads.len() > 2 { 2 } else { payloads.len() };
    for batch in [&payloads[..split], &payloads[split..]] {
        for (row, p) in batch.iter().enumerate() {
            let a = new.append(&mut d, p);
            let b = old.append(&d, p);
            match (&a, &b) {
                (Err(Fallback::NotCanonical { position }), Err(Fallback::NotCanonical { .. })) => {
                    prop_assert!(*position <= p.len(), "position {} beyond {} bytes", position, p.len());
                }
                _ => prop_assert_eq!(&a, &b, "row {} payload {:?}", row, p),
            }
            prop_assert_eq!(new.len(), row + 1);
        }
        let fields = new.fields();
        let x = new.finish().unwrap();
        let y = old.finish().unwrap();
        prop_assert_eq!(x.len(), y.len());
        for ((f, a), b) in fields.iter().zip(&x).zip(&y) {
            prop_assert_eq!(a.len(), batch.len());
            prop_assert_eq!(f.data_type(), a.data_type());
            prop_assert_eq!(a.to_data(), b.to_data(), "column {}", f.name());
        }
    }
    Ok(())
}

fn table_of(w: &WriterSchema) -> iceberg::spec::Schema {
    iceberg::spec::Schema::builder()
        .with_fields(w.iceberg_fields(1))
        .build()
        .unwrap()
}

/// A byte-level change to a payload.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate(usize),
    Replace(usize, u8),
    Xor(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Trailing(Vec<u8>),
    /// Every `a`–`f` upper-cased (uuid strings become non-canonical).
    Upcase,
}

fn gen_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::None),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Xor(i, 1 << b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => proptest::collection::vec(any::<u8>(), 1..3).prop_map(Mutation::Trailing),
        1 => Just(Mutation::Upcase),
    ]
}

fn mutate(mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = b.len();
    match m {
        Mutation::None => {}
        Mutation::Truncate(i) => b.truncate(i % (n + 1)),
        Mutation::Replace(i, x) if n > 0 => b[i % n] = *x,
        Mutation::Xor(i, x) if n > 0 => b[i % n] ^= *x,
        Mutation::Insert(i, x) => b.insert(i % (n + 1), *x),
        Mutation::Delete(i) if n > 0 => {
            b.remove(i % n);
        }
        Mutation::Trailing(t) => b.extend_from_slice(t),
        Mutation::Upcase => b.iter_mut().for_each(|c| {
            if (b'a'..=b'f').contains(c) {
                c.make_ascii_uppercase()
            }
        }),
        _ => {}
    }
    b
}

/// A payload written canonically (apache-avro), possibly re-written in a non-canonical style by
/// the oracle's encoder, possibly mutated.
fn variant(w: &WriterSchema, bytes: &[u8], style: (bool, bool, bool), m: &Mutation) -> Vec<u8> {
    let (pad_varints, split_blocks, sized_blocks) = style;
    let styled = match decode_payload(w, bytes) {
        Ok(values) if pad_varints || split_blocks || sized_blocks => {
            let mut out = Vec::new();
            encode_payload(w, &values, &mut out, Style { pad_varints, split_blocks, sized_blocks });
            out
        }
        _ => bytes.to_vec(),
    };
    mutate(styled, m)
}

fn gen_style() -> impl Strategy<Value = (bool, bool, bool)> {
    prop_oneof![
        3 => Just((false, false, false)),
        1 => (any::<bool>(), any::<bool>(), any::<bool>()),
    ]
}

/// A schema and several rows of it: canonical (apache-avro, values in or out of the columns'
/// ranges), restyled and mutated.
fn schema_and_rows() -> impl Strategy<Value = (String, Vec<Vec<u8>>)> {
    proptest::collection::vec(gen_type(), 1..5).prop_flat_map(|fields| {
        let g = G::Record(fields);
        let mut n = 0;
        let text = render(&g, &mut n, false);
        let mut n = 0;
        let avro_text = render(&g, &mut n, true);
        let row = (gen_value_in(&g, true), gen_style(), gen_mutation());
        proptest::collection::vec(row, 1..5).prop_map(move |rows| {
            let w = writer(&text);
            let payloads = rows
                .into_iter()
                .map(|(v, style, m)| variant(&w, &avro_bytes(&avro_text, v), style, &m))
                .collect();
            (text.clone(), payloads)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Random writer schemas, canonical and broken values: the direct decoder and the oracle
    /// agree on every outcome and on the arrays.
    #[test]
    fn direct_decoder_equals_the_re_encoding_oracle((text, payloads) in schema_and_rows()) {
        let w = writer(&text);
        agree_with_oracle(&w, &table_of(&w), &payloads)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Maps written by hand with repeated keys, in one or several blocks (sized or not).
    #[test]
    fn repeated_map_keys_agree(
        rows in proptest::collection::vec(
            (proptest::collection::vec(("[ab]{0,2}", any::<i32>()), 0..20), 1usize..4, any::<bool>(), any::<bool>()),
            1..4),
    ) {
        let text = rec(r#"{"type":"map","values":["null","int"]}"#);
        let w = writer(&text);
        let payloads: Vec<Vec<u8>> = rows
            .iter()
            .map(|(entries, chunk, sized, null_first)| {
                let mut out = Vec::new();
                for block in entries.chunks(*chunk) {
                    let mut body = Vec::new();
                    for (k, v) in block {
                        write_long(k.len() as i64, &mut body, Style::default());
                        body.extend_from_slice(k.as_bytes());
                        if *null_first && v % 3 == 0 {
                            write_long(0, &mut body, Style::default());
                        } else {
                            write_long(1, &mut body, Style::default());
                            write_long(i64::from(*v), &mut body, Style::default());
                        }
                    }
                    if *sized {
                        write_long(-(block.len() as i64), &mut out, Style::default());
                        write_long(body.len() as i64, &mut out, Style::default());
                    } else {
                        write_long(block.len() as i64, &mut out, Style::default());
                    }
                    out.extend_from_slice(&body);
                }
                write_long(0, &mut out, Style::default());
                out
            })
            .collect();
        agree_with_oracle(&w, &table_of(&w), &payloads)?;
    }

    /// Values of older writer schemas into an evolved table (promoted types, columns the writer
    /// lacks, a conflicting writer), mutated.
    #[test]
    fn evolved_tables_agree(
        rows in proptest::collection::vec((any::<i32>(), ".{0,6}", any::<u32>(), proptest::collection::vec("[a-c]{0,3}", 0..4), gen_mutation(), 0usize..3), 1..6),
    ) {
        let v1 = writer(r#"{"type":"record","name":"R","fields":[{"name":"id","type":"int"},{"name":"name","type":"string"},{"name":"f","type":"float"}]}"#);
        let v2 = writer(r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"f","type":"double"},{"name":"tags","type":{"type":"array","items":"string"}}]}"#);
        let v3 = writer(r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}"#);
        let base = iceberg::spec::Schema::builder().build().unwrap();
        let e1 = evolve(&base, 0, &[], &v1).unwrap();
        let e2 = evolve(&e1.schema, e1.last_column_id, &[], &v2).unwrap();
        let e3 = evolve(&e2.schema, e2.last_column_id, &[], &v3).unwrap();
        let mut new = ValueColumns::new(&e3.schema, &[]).unwrap();
        let mut old = OracleColumns::new(&e3.schema, &[]).unwrap();
        let mut decoders: Vec<Decoder> = [v1, v2, v3].into_iter().map(|w| new.decoder(w)).collect();
        for (id, name, f, tags, m, which) in &rows {
            let mut p = Vec::new();
            match which {
                0 => {
                    write_long(i64::from(*id), &mut p, Style::default());
                    write_long(name.len() as i64, &mut p, Style::default());
                    p.extend_from_slice(name.as_bytes());
                    p.extend_from_slice(&f.to_le_bytes());
                }
                1 => {
                    write_long(i64::from(*id) << 20, &mut p, Style::default());
                    p.extend_from_slice(&f64::from(*f).to_le_bytes());
                    if !tags.is_empty() {
                        write_long(tags.len() as i64, &mut p, Style::default());
                        for t in tags {
                            write_long(t.len() as i64, &mut p, Style::default());
                            p.extend_from_slice(t.as_bytes());
                        }
                    }
                    write_long(0, &mut p, Style::default());
                }
                _ => {
                    write_long(name.len() as i64, &mut p, Style::default());
                    p.extend_from_slice(name.as_bytes());
                }
            }
            let p = mutate(p, m);
            let d = &mut decoders[*which];
            let a = new.append(d, &p);
            let b = old.append(d, &p);
            match (&a, &b) {
                (Err(Fallback::NotCanonical { .. }), Err(Fallback::NotCanonical { .. })) => {}
                _ => prop_assert_eq!(&a, &b),
            }
        }
        let x = new.finish().unwrap();
        let y = old.finish().unwrap();
        for (a, b) in x.iter().zip(&y) {
            prop_assert_eq!(a.len(), rows.len());
            prop_assert_eq!(a.to_data(), b.to_data());
        }
    }
}

/// Writer schemas the fuzz test throws bytes at: every type, the benchmark's orders, wide unions.
fn fuzz_schemas() -> Vec<Arc<WriterSchema>> {
    let orders = crate::synth::AvroOrders::new();
    [
        ALL.to_string(),
        orders.schema().to_string(),
        rec(r#"{"type":"array","items":{"type":"map","values":["null","string",{"type":"record","name":"X","fields":[{"name":"b","type":"boolean"},{"name":"d","type":{"type":"fixed","name":"D","size":20,"logicalType":"decimal","precision":38,"scale":4}}]}]}}"#),
        rec(r#"["null",{"type":"string","logicalType":"uuid"},{"type":"fixed","name":"U","size":16,"logicalType":"uuid"},{"type":"long","logicalType":"timestamp-millis"}]"#),
        rec(r#"{"type":"bytes","logicalType":"decimal","precision":38,"scale":0}"#),
    ]
    .iter()
    .map(|t| writer(t))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Random bytes (and random bytes after a valid start) never panic, and both decoders agree.
    #[test]
    fn fuzz_random_bytes(
        which in 0usize..5,
        rows in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..48),
                proptest::collection::vec(prop_oneof![Just(0u8), Just(2), Just(0x80), Just(1), any::<u8>()], 0..200),
            ],
            1..4),
    ) {
        let w = fuzz_schemas().swap_remove(which);
        agree_with_oracle(&w, &table_of(&w), &rows)?;
    }
}

/// A row that fails halfway (after appending into nested lists, maps and structs) leaves every
/// column aligned and null, and the rows around it intact.
#[test]
fn a_failed_row_is_rolled_back() {
    let w = writer(ALL);
    let good = avro_bytes(ALL, all_value(1));
    let schema = table_of(&w);
    let mut rows = vec![good.clone()];
    for cut in [good.len() - 1, good.len() / 2, 40, 3] {
        rows.push(good[..cut].to_vec());
        rows.push(good.clone());
    }
    let mut padded = good.clone();
    padded.push(0);
    rows.push(padded);
    proptest::test_runner::TestRunner::default()
        .run(&Just(rows), |rows| agree_with_oracle(&w, &schema, &rows))
        .unwrap();
}


/// `payloads` decoded into the columns of `w` (those that fall back as null rows), as one batch.
fn rows_batch(w: &Arc<WriterSchema>, payloads: &[Vec<u8>]) -> arrow_array::RecordBatch {
    let mut cols = columns_for(w);
    let mut d = cols.decoder(w.clone());
    for p in payloads {
        let _ = cols.append(&mut d, p);
    }
    columns_batch(cols.fields(), cols.finish().unwrap(), payloads.len())
}

/// Encodes every row of `batch` with `w` through one [`crate::encode::RowEncoder`] and through
/// the value-tree oracle: the same bytes, or the same error.
fn encoders_agree(w: &WriterSchema, batch: &arrow_array::RecordBatch) -> Result<(), TestCaseError> {
    let compiled = crate::encode::RowEncoder::new(w, batch);
    prop_assert!(compiled.is_for(batch));
    for row in 0..batch.num_rows() {
        let (mut a, mut b) = (vec![7u8], vec![7u8]);
        let x = compiled.encode(row, &mut a);
        let y = crate::encode::encode_row_tree(w, batch, row, &mut b);
        prop_assert_eq!(&x, &y, "row {}", row);
        prop_assert_eq!(&a, &b, "row {}", row);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Random writer schemas, rows in the columns or not (null rows: values kept raw): the
    /// compiled encoder writes what the value-tree oracle writes, row by row, errors included.
    #[test]
    fn compiled_encoder_equals_the_value_tree((text, payloads) in schema_and_rows()) {
        let w = writer(&text);
        encoders_agree(&w, &rows_batch(&w, &payloads))?;
    }

    /// The same with another random writer schema than the columns' (names that collide with
    /// other types, missing columns, unions over non-structs): the same errors, or bytes.
    #[test]
    fn compiled_encoder_equals_the_value_tree_on_foreign_columns(
        (text, payloads) in schema_and_rows(),
        (other, _) in schema_and_rows(),
    ) {
        encoders_agree(&writer(&other), &rows_batch(&writer(&text), &payloads))?;
    }
}

/// A batch told by its arrays: an encoder is for the batch it was built on, not for another
/// batch with equal values.
#[test]
fn an_encoder_is_for_its_own_batch() {
    let w = writer(ALL);
    let build = || {
        let mut cols = columns_for(&w);
        let mut d = cols.decoder(w.clone());
        cols.append(&mut d, &avro_bytes(ALL, all_value(1))).unwrap();
        columns_batch(cols.fields(), cols.finish().unwrap(), 1)
    };
    let (a, b) = (build(), build());
    let e = crate::encode::RowEncoder::new(&w, &a);
    assert!(e.is_for(&a) && e.is_for(&a.clone()));
    assert!(!e.is_for(&b));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    e.encode(0, &mut x).unwrap();
    crate::encode::RowEncoder::new(&w, &b).encode(0, &mut y).unwrap();
    assert_eq!(x, y);
    assert_eq!(x, avro_bytes(ALL, all_value(1)));
}
