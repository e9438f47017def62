//! Decode throughput: this crate's decoder (decode + canonical-encoding check + column append, in
//! one pass) beside apache-avro's `from_avro_datum` (decode to its `Value` only), and on the
//! benchmark's ~1 KiB orders. Ignored by default; run with an optimised build for real figures:
//!
//!   cargo test -p calving-schema --release --test throughput -- --ignored --nocapture

use std::sync::Arc;
use std::time::Instant;

use apache_avro::types::Value as A;
use calving_schema::{ValueColumns, WriterSchema};

const SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"customer","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":"string"}},
  {"name":"address","type":["null",{"type":"record","name":"Address","fields":[
     {"name":"street","type":"string"},{"name":"city","type":"string"},{"name":"zip","type":["null","int"]}]}]},
  {"name":"note","type":["null","string"]}
]}"#;

fn value(i: i64) -> A {
    A::Record(vec![
        ("id".into(), A::Long(i)),
        (
            "customer".into(),
            A::String(format!("customer-{:08}", i * 7919 % 100_000)),
        ),
        ("ts".into(), A::TimestampMillis(1_700_000_000_000 + i)),
        (
            "amount".into(),
            A::Decimal(apache_avro::Decimal::from(minimal_be((i % 100_000) as i32))),
        ),
        (
            "tags".into(),
            A::Array(vec![
                A::String("alpha".into()),
                A::String(format!("t{}", i % 10)),
            ]),
        ),
        (
            "attrs".into(),
            A::Map(
                [
                    ("channel".to_string(), A::String("web".into())),
                    ("lang".to_string(), A::String("en".into())),
                ]
                .into_iter()
                .collect(),
            ),
        ),
        (
            "address".into(),
            A::Union(
                1,
                Box::new(A::Record(vec![
                    (
                        "street".into(),
                        A::String(format!("{} Long Street Name", i % 1000)),
                    ),
                    ("city".into(), A::String("Springfield".into())),
                    (
                        "zip".into(),
                        A::Union(1, Box::new(A::Int((i % 99_999) as i32))),
                    ),
                ])),
            ),
        ),
        (
            "note".into(),
            if i % 3 == 0 {
                A::Union(0, Box::new(A::Null))
            } else {
                A::Union(1, Box::new(A::String("leave at the door".into())))
            },
        ),
    ])
}

/// Minimal two's complement, as Java's `BigInteger.toByteArray()` (apache-avro writes decimal
/// bytes as given).
fn minimal_be(v: i32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let sign = if v < 0 { 0xff } else { 0 };
    let mut start = 0;
    while start < 3 && b[start] == sign && (b[start + 1] & 0x80) == (sign & 0x80) {
        start += 1;
    }
    b[start..].to_vec()
}

#[test]
#[ignore]
fn decode_throughput() {
    let avro = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let payloads: Vec<Vec<u8>> = (0..50_000)
        .map(|i| apache_avro::to_avro_datum(&avro, value(i)).unwrap())
        .collect();
    let total: usize = payloads.iter().map(Vec::len).sum();
    let mib = total as f64 / (1 << 20) as f64;

    let writer = Arc::new(WriterSchema::parse(SCHEMA).unwrap());
    let schema = iceberg::spec::Schema::builder()
        .with_fields(writer.iceberg_fields(1))
        .build()
        .unwrap();
    let mut cols = ValueColumns::new(&schema, &[]).unwrap();
    let mut decoder = cols.decoder(writer);
    let t = Instant::now();
    for p in &payloads {
        cols.append(&mut decoder, p).unwrap();
    }
    let arrays = cols.finish().unwrap();
    let ours = t.elapsed();
    assert_eq!(arrays[0].len(), payloads.len());

    let t = Instant::now();
    for p in &payloads {
        let v = apache_avro::from_avro_datum(&avro, &mut &p[..], None).unwrap();
        std::hint::black_box(v);
    }
    let theirs = t.elapsed();
    println!(
        "{} values, {:.1} MiB (avg {} B): calving-schema decode+check+append {:.1} MiB/s; apache-avro from_avro_datum {:.1} MiB/s",
        payloads.len(),
        mib,
        total / payloads.len(),
        mib / ours.as_secs_f64(),
        mib / theirs.as_secs_f64()
    );
}

/// `n` orders of about 1 KiB from `calving_schema::synth`, always the same ones.
fn orders(n: usize) -> (calving_schema::synth::AvroOrders, Vec<Vec<u8>>) {
    let orders = calving_schema::synth::AvroOrders::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let payloads = (0..n)
        .map(|_| {
            let mut v = Vec::new();
            orders.write(&mut rand, 1024, &mut v);
            v
        })
        .collect();
    (orders, payloads)
}

/// The benchmark's workload (`calving bench typed`): ~1 KiB orders from `calving_schema::synth`
/// (nested record, an array of ~22 item records, a map, strings, longs, doubles, a
/// timestamp-millis, a decimal, optional unions). Best of 5 passes over 20 000 values.
#[test]
#[ignore]
fn decode_throughput_orders() {
    let (orders, payloads) = orders(20_000);
    let total: usize = payloads.iter().map(Vec::len).sum();
    let mib = total as f64 / (1 << 20) as f64;
    let writer = Arc::new(WriterSchema::parse(orders.schema()).unwrap());
    let mut cols = ValueColumns::for_writer(&writer).unwrap();
    let mut decoder = cols.decoder(writer);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for (i, p) in payloads.iter().enumerate() {
            cols.append(&mut decoder, p).unwrap();
            // Batches of 4096 rows, as the converter finishes them.
            if i % 4096 == 4095 {
                std::hint::black_box(cols.finish().unwrap());
            }
        }
        std::hint::black_box(cols.finish().unwrap());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{} orders, {:.1} MiB (avg {} B): calving-schema decode+check+append {:.1} MiB/s ({:.0} ns per value)",
        payloads.len(),
        mib,
        total / payloads.len(),
        mib / best,
        best * 1e9 / payloads.len() as f64
    );
}

/// The way back, on the same orders: the values decoded into columns (batches of 4096 rows, as
/// a data file's row groups come back) re-encoded by a [`calving_schema::RowEncoder`] per batch
/// (what serving does), beside apache-avro's `to_avro_datum` writing the same values from its
/// own value tree, and a plain copy of the payloads. Checks every re-encoded value equals its
/// original bytes. Best of 5 passes.
#[test]
#[ignore]
fn encode_throughput_orders() {
    use arrow_array::RecordBatch;
    use calving_schema::RowEncoder;

    let (orders, payloads) = orders(20_000);
    let total: usize = payloads.iter().map(Vec::len).sum();
    let mib = total as f64 / (1 << 20) as f64;
    let writer = Arc::new(WriterSchema::parse(orders.schema()).unwrap());
    let mut cols = ValueColumns::for_writer(&writer).unwrap();
    let mut decoder = cols.decoder(writer.clone());
    let mut batches = Vec::new();
    for chunk in payloads.chunks(4096) {
        for p in chunk {
            cols.append(&mut decoder, p).unwrap();
        }
        let fields = cols.fields();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        batches.push(RecordBatch::try_new(schema, cols.finish().unwrap()).unwrap());
    }
    let best_of = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let mut out = Vec::with_capacity(4096);
    let ours = best_of(&mut || {
        let mut i = 0;
        for b in &batches {
            let e = RowEncoder::new(&writer, b);
            for row in 0..b.num_rows() {
                out.clear();
                e.encode(row, &mut out).unwrap();
                assert_eq!(out, payloads[i], "value {i}");
                i += 1;
            }
        }
    });
    let avro = apache_avro::Schema::parse_str(orders.schema()).unwrap();
    let values: Vec<A> = payloads
        .iter()
        .map(|p| apache_avro::from_avro_datum(&avro, &mut &p[..], None).unwrap())
        .collect();
    let theirs = best_of(&mut || {
        for v in &values {
            std::hint::black_box(apache_avro::to_avro_datum(&avro, v.clone()).unwrap());
        }
    });
    let copy = best_of(&mut || {
        for p in &payloads {
            out.clear();
            out.extend_from_slice(p);
            std::hint::black_box(&out);
        }
    });
    println!(
        "{} orders, {:.1} MiB: RowEncoder {:.1} MiB/s ({:.0} ns per value, compare included); apache-avro to_avro_datum {:.1} MiB/s ({:.2}x ours); plain copy {:.0} MiB/s",
        payloads.len(),
        mib,
        mib / ours,
        ours * 1e9 / payloads.len() as f64,
        mib / theirs,
        theirs / ours,
        mib / copy
    );
}
