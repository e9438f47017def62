//! A quick measurement (printed, not asserted): ~1 KiB order-like messages through
//! message_to_avro + avro_to_message + the comparison, and prost-reflect's DynamicMessage decode for scale.
//! `cargo test -p calving-schema --release protobuf::tests::speed -- --nocapture`

use std::time::Instant;

use super::*;
use crate::transcode::Transcoder as _;

const ORDER: &str = r#"
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
message Order {
  string order_id = 1;
  google.protobuf.Timestamp created = 2;
  Customer customer = 3;
  repeated Line lines = 4;
  map<string, string> attributes = 5;
  Status status = 6;
  double total = 7;
  string currency = 8;
  repeated int64 coupon_ids = 9;
  optional string note = 10;
  message Customer { string id = 1; string name = 2; string email = 3; Address address = 4; }
  message Address { string street = 1; string city = 2; string zip = 3; string country = 4; }
  message Line { string sku = 1; uint32 quantity = 2; double price = 3; repeated string tags = 4; uint64 warehouse = 5; }
  enum Status { UNKNOWN = 0; NEW = 1; PAID = 2; SHIPPED = 3; }
}
"#;

fn order(d: &MessageDescriptor, i: u64) -> DynamicMessage {
    let customer = sub(d, "customer", &[
        ("id", P::String(format!("cust-{i:08}"))),
        ("name", P::String("Jane Q. Example".into())),
        ("email", P::String(format!("jane.{i}@example.com"))),
    ]);
    let P::Message(mut customer) = customer else { unreachable!() };
    let addr_desc = customer.descriptor().get_field_by_name("address").unwrap().kind().as_message().unwrap().clone();
    customer.set_field_by_name(
        "address",
        P::Message(msg(&addr_desc, &[
            ("street", P::String("1234 Long Street Name Apt 56".into())),
            ("city", P::String("Springfield".into())),
            ("zip", P::String("12345-6789".into())),
            ("country", P::String("US".into())),
        ])),
    );
    let lines = (0..14)
        .map(|l| {
            sub(d, "lines", &[
                ("sku", P::String(format!("SKU-{:06}-{l}", i % 100_000))),
                ("quantity", P::U32((l + 1) as u32)),
                ("price", P::F64(9.99 * (l + 1) as f64)),
                ("tags", P::List(vec![P::String("gift".into()), P::String(format!("promo-{l}"))])),
                ("warehouse", P::U64(1_000_000_007 + l)),
            ])
        })
        .collect();
    let mut m = msg(d, &[
        ("order_id", P::String(format!("ord-{i:016x}"))),
        ("created", sub(d, "created", &[("seconds", P::I64(1_700_000_000 + i as i64)), ("nanos", P::I32(123_000))])),
        ("customer", P::Message(customer)),
        ("lines", P::List(lines)),
        ("status", P::EnumNumber(2)),
        ("total", P::F64(359.64)),
        ("currency", P::String("USD".into())),
        ("coupon_ids", P::List(vec![P::I64(17), P::I64(-4), P::I64(1 << 40)])),
    ]);
    m.set_field_by_name(
        "attributes",
        P::Map([(MapKey::String("channel".into()), P::String("web".into())), (MapKey::String("region".into()), P::String("us-east".into()))].into()),
    );
    m
}

use prost_reflect::MapKey;

#[test]
fn speed_of_one_kib_orders() {
    let c = compiled(ORDER);
    let d = descriptor(ORDER, &refs());
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| order(&d, i).encode_to_vec()).collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let (mut avro, mut back) = (Vec::new(), Vec::new());
    let rounds = if cfg!(debug_assertions) { 20 } else { 2000 };
    let start = Instant::now();
    for _ in 0..rounds {
        for p in &payloads {
            avro.clear();
            back.clear();
            c.transcoder.message_to_avro(p, &mut avro).unwrap();
            c.transcoder.avro_to_message(&avro, &mut back).unwrap();
            assert!(back == *p);
        }
    }
    let t = start.elapsed().as_secs_f64();
    let mib = (bytes * rounds) as f64 / (1 << 20) as f64;
    println!(
        "protobuf transcode round trip: {:.0} B/value, {:.0} MiB/s, {:.2} µs/value",
        bytes as f64 / 64.0,
        mib / t,
        t * 1e6 / (64 * rounds) as f64
    );
    let start = Instant::now();
    for _ in 0..rounds {
        for p in &payloads {
            std::hint::black_box(DynamicMessage::decode(d.clone(), &p[..]).unwrap());
        }
    }
    let t2 = start.elapsed().as_secs_f64();
    // message_to_avro alone: with its inline canonical-form checks, and without (the lenient
    // decoder the tests' oracle uses), interleaved so that the machine's load hits both alike.
    let (t, _) = transcoder(ORDER, &refs()).unwrap();
    let (mut strict, mut lenient) = (0f64, 0f64);
    for _ in 0..10 {
        for checked in [false, true] {
            let start = Instant::now();
            for _ in 0..rounds / 10 {
                for p in &payloads {
                    avro.clear();
                    if checked {
                        t.message_to_avro(p, &mut avro).unwrap();
                    } else {
                        t.message_to_avro_lenient(p, &mut avro).unwrap();
                    }
                }
            }
            *if checked { &mut strict } else { &mut lenient } += start.elapsed().as_secs_f64();
        }
    }
    println!("message_to_avro alone: {:.0} MiB/s checked, {:.0} MiB/s unchecked", mib / strict, mib / lenient);
    println!("prost-reflect DynamicMessage::decode alone: {:.0} MiB/s", mib / t2);
    // Through the columns (transcode both ways, compare, Avro decode into builders).
    let text = Envelope::new("PROTOBUF", ORDER, refs()).to_text();
    let w = crate::WriterSchema::parse(&text).unwrap();
    let mut cols = crate::ValueColumns::for_writer(&w).unwrap();
    let mut dec = cols.decoder(Arc::new(w)).bare();
    let start = Instant::now();
    for _ in 0..rounds / 4 {
        for p in &payloads {
            cols.append(&mut dec, p).unwrap();
        }
        cols.finish().unwrap();
    }
    let t3 = start.elapsed().as_secs_f64();
    println!("ValueColumns::append (protobuf): {:.0} MiB/s", mib / 4.0 / t3);
}
