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
fn columns_batch(fields: Vec<arrow_schema::FieldRef>, arrays: Vec<arrow_array::ArrayRef>) -> arrow_array::RecordBatch {
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    arrow_array::RecordBatch::try_new(schema, arrays).unwrap()
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
    let batch = columns_batch(cols.fields(), cols.finish().unwrap());
    for (row, b) in originals.iter().enumerate() {
        let mut out = Vec::new();
        crate::encode::encode_row(&w, &batch, row, &mut out).unwrap();
        assert_eq!(&out, b, "row {row}");
    }
    // The null row (a value kept raw) has no encoding with this writer.
    assert!(crate::encode::encode_row(&w, &batch, 4, &mut Vec::new()).is_err());
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
    Bool,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Date,
    TimeMs,
    TsUs,
    TsMs,
    Uuid,
    Dec(u8, u8),
    Fixed(usize),
    Enum(usize),
    Array(Box<G>),
    Map(Box<G>),
    Opt(Box<G>),
    Wide(Box<G>),
    Record(Vec<G>),
}

fn render(g: &G, n: &mut usize) -> String {
    let mut name = || {
        *n += 1;
        format!("N{n}")
    };
    match g {
        G::Bool => r#""boolean""#.into(),
        G::Int => r#""int""#.into(),
        G::Long => r#""long""#.into(),
        G::Float => r#""float""#.into(),
        G::Double => r#""double""#.into(),
        G::Bytes => r#""bytes""#.into(),
        G::Str => r#""string""#.into(),
        G::Date => r#"{"type":"int","logicalType":"date"}"#.into(),
        G::TimeMs => r#"{"type":"int","logicalType":"time-millis"}"#.into(),
        G::TsUs => r#"{"type":"long","logicalType":"timestamp-micros"}"#.into(),
        G::TsMs => r#"{"type":"long","logicalType":"local-timestamp-millis"}"#.into(),
        G::Uuid => r#"{"type":"string","logicalType":"uuid"}"#.into(),
        G::Dec(p, s) => {
            format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#)
        }
        G::Fixed(size) => format!(r#"{{"type":"fixed","name":"{}","size":{size}}}"#, name()),
        G::Enum(k) => {
            let symbols: Vec<String> = (0..*k).map(|i| format!("\"S{i}\"")).collect();
            format!(
                r#"{{"type":"enum","name":"{}","symbols":[{}]}}"#,
                name(),
                symbols.join(",")
            )
        }
        G::Array(i) => format!(r#"{{"type":"array","items":{}}}"#, render(i, n)),
        G::Map(v) => format!(r#"{{"type":"map","values":{}}}"#, render(v, n)),
        G::Opt(v) => format!(r#"["null",{}]"#, render(v, n)),
        G::Wide(v) => format!(
            r#"["null","int","string",{{"type":"array","items":{}}}]"#,
            render(v, n)
        ),
        G::Record(fields) => {
            let rn = name();
            let fs: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| format!(r#"{{"name":"f{i}","type":{}}}"#, render(f, n)))
                .collect();
            format!(
                r#"{{"type":"record","name":"{rn}","fields":[{}]}}"#,
                fs.join(",")
            )
        }
    }
}

fn gen_type() -> impl Strategy<Value = G> {
    let leaf = prop_oneof![
        Just(G::Bool),
        Just(G::Int),
        Just(G::Long),
        Just(G::Float),
        Just(G::Double),
        Just(G::Bytes),
        Just(G::Str),
        Just(G::Date),
        Just(G::TimeMs),
        Just(G::TsUs),
        Just(G::TsMs),
        Just(G::Uuid),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p))
            .prop_map(|(p, s)| G::Dec(p, s)),
        (1usize..20).prop_map(G::Fixed),
        (1usize..5).prop_map(G::Enum),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|g| G::Array(Box::new(g))),
            inner.clone().prop_map(|g| G::Map(Box::new(g))),
            inner.clone().prop_map(|g| match g {
                // A union may not directly contain a union.
                G::Opt(_) | G::Wide(_) => g,
                g => G::Opt(Box::new(g)),
            }),
            inner.clone().prop_map(|g| G::Wide(Box::new(g))),
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
    match g {
        G::Bool => any::<bool>().prop_map(A::Boolean).boxed(),
        G::Int => any::<i32>().prop_map(A::Int).boxed(),
        G::Long => any::<i64>().prop_map(A::Long).boxed(),
        G::Float => any::<u32>()
            .prop_map(|b| A::Float(canonical_f32(b)))
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
        G::TsUs => any::<i64>().prop_map(A::TimestampMicros).boxed(),
        G::TsMs => (-(i64::MAX / 1000)..=i64::MAX / 1000)
            .prop_map(A::LocalTimestampMillis)
            .boxed(),
        G::Uuid => any::<[u8; 16]>()
            .prop_map(|b| A::Uuid(uuid::Uuid::from_bytes(b)))
            .boxed(),
        G::Dec(p, _) => {
            let max = 10i128.pow(u32::from(*p)) - 1;
            (-max..=max)
                .prop_map(|v| A::Decimal(apache_avro::Decimal::from(min_be(v))))
                .boxed()
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
        G::Array(i) => proptest::collection::vec(gen_value(i), 0..4)
            .prop_map(A::Array)
            .boxed(),
        G::Map(v) => proptest::collection::hash_map("[a-z]{0,3}", gen_value(v), 0..4)
            .prop_map(A::Map)
            .boxed(),
        G::Opt(v) => prop_oneof![
            Just(A::Union(0, Box::new(A::Null))),
            gen_value(v).prop_map(|x| A::Union(1, Box::new(x))),
        ]
        .boxed(),
        G::Wide(v) => prop_oneof![
            Just(A::Union(0, Box::new(A::Null))),
            any::<i32>().prop_map(|x| A::Union(1, Box::new(A::Int(x)))),
            ".{0,4}".prop_map(|x| A::Union(2, Box::new(A::String(x)))),
            proptest::collection::vec(gen_value(v), 0..3)
                .prop_map(|x| A::Union(3, Box::new(A::Array(x)))),
        ]
        .boxed(),
        G::Record(fields) => {
            let strategies: Vec<BoxedStrategy<A>> = fields.iter().map(gen_value).collect();
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
        let text = render(&g, &mut n);
        gen_value(&g).prop_map(move |v| {
            let bytes = avro_bytes(&text, v);
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
        let batch = columns_batch(fields, arrays);
        let mut again = Vec::new();
        crate::encode::encode_row(&w, &batch, 0, &mut again).unwrap();
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
