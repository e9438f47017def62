//! Synthetic values for benchmarks (`calving bench typed`): orders of about 1 KiB, in Avro
//! ([`AvroOrders`]), Protobuf ([`ProtobufOrders`]) and JSON ([`JsonOrders`]), with a
//! nested record, an array of records, a map, strings, longs, doubles, a `timestamp-millis`, a
//! `decimal` and an optional union, written by an independent Avro implementation (the
//! `apache-avro` crate's `to_avro_datum`, not this crate's encoder), deterministically: the same
//! random numbers give the same bytes in every process.
//!
//! apache-avro keeps a map's entries in a `HashMap`, whose order changes from process to process,
//! so the record is written in three parts, which Avro concatenates for a record: the fields
//! before the map (one apache-avro datum), the map (its block count and strings written by
//! apache-avro, entries in a fixed order), and the fields after it (another datum).

use apache_avro::types::Value as A;
use apache_avro::Schema;

const BEFORE_MAP: &str = r#"
  {"name":"order_id","type":"string"},
  {"name":"placed","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"customer","type":{"type":"record","name":"Customer","fields":[
     {"name":"id","type":"long"},{"name":"segment","type":"string"},{"name":"locale","type":"string"},
     {"name":"email","type":["null","string"],"default":null}]}},
  {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
     {"name":"sku","type":"string"},{"name":"name","type":"string"},{"name":"qty","type":"int"},
     {"name":"unit_price","type":"double"},{"name":"tag","type":"string"}]}}}"#;

const MAP: &str = r#"{"name":"attrs","type":{"type":"map","values":"string"}}"#;

const AFTER_MAP: &str = r#"
  {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
  {"name":"weight_kg","type":"double"},
  {"name":"status","type":"string"},
  {"name":"coupon","type":["null","string"],"default":null}"#;

const WORDS: &[&str] = &[
    "checkout", "payment", "refund", "login", "search", "view", "cart", "shipping", "invoice", "mobile", "desktop",
    "tablet", "berlin", "paris", "tokyo", "lima", "oslo", "premium", "basic", "trial", "red", "blue", "large",
    "small", "organic", "steel", "cotton", "wooden",
];
const LOCALES: &[&str] = &["en-US", "de-DE", "fr-FR", "ja-JP"];
const STATUS: &[&str] = &["NEW", "PAID", "SHIPPED", "DELIVERED"];
const ATTR_KEYS: &[&str] = &["channel", "campaign", "device", "region", "referrer", "ab_bucket"];

/// Writes synthetic orders (see the module doc).
#[derive(Debug)]
pub struct AvroOrders {
    text: String,
    before: Schema,
    after: Schema,
    string: Schema,
    long: Schema,
}

impl Default for AvroOrders {
    fn default() -> Self {
        Self::new()
    }
}

impl AvroOrders {
    /// The schema and its parts.
    pub fn new() -> AvroOrders {
        let record = |name: &str, fields: &str| format!(r#"{{"type":"record","name":"{name}","namespace":"calving.bench","fields":[{fields}]}}"#);
        let parse = |t: &str| Schema::parse_str(t).expect("the synthetic schema parses");
        AvroOrders {
            text: record("Order", &format!("{BEFORE_MAP},{MAP},{AFTER_MAP}")),
            before: parse(&record("Before", BEFORE_MAP)),
            after: parse(&record("After", AFTER_MAP)),
            string: Schema::String,
            long: Schema::Long,
        }
    }

    /// The writer schema's text (to register).
    pub fn schema(&self) -> &str {
        &self.text
    }

    /// Appends to `out` the Avro binary datum (no header) of an order of about `size` bytes,
    /// drawn from `rand` (uniform `u64`s).
    pub fn write(&self, rand: &mut dyn FnMut() -> u64, size: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let mut below = |n: usize| (rand() % n as u64) as usize;
        let word = |i: usize| WORDS[i].to_string();
        let customer_id = below(1_000_000) as i64;
        let email = if below(4) == 0 { A::Union(0, Box::new(A::Null)) } else { A::Union(1, Box::new(A::String(format!("user{customer_id}@example.com")))) };
        let customer = A::Record(vec![
            ("id".into(), A::Long(customer_id)),
            ("segment".into(), A::String(word(17 + below(3)))),
            ("locale".into(), A::String(LOCALES[below(LOCALES.len())].into())),
            ("email".into(), email),
        ]);
        let order_id = format!("{:016x}", (below(usize::MAX) as u64));
        let placed = A::TimestampMillis(1_700_000_000_000 + below(10_000_000) as i64);
        // Fixed part ~150 bytes, an item ~39: as many items as reach `size`.
        let n_items = size.saturating_sub(150) / 39;
        let mut cents_total: i64 = 0;
        let items: Vec<A> = (0..n_items.max(1))
            .map(|_| {
                let qty = 1 + below(5) as i32;
                let cents = 99 + below(50_000) as i64;
                cents_total += cents * i64::from(qty);
                A::Record(vec![
                    ("sku".into(), A::String(format!("SKU-{:05}", below(5000)))),
                    ("name".into(), A::String(format!("{} {}", WORDS[20 + below(8)], WORDS[below(17)]))),
                    ("qty".into(), A::Int(qty)),
                    ("unit_price".into(), A::Double(cents as f64 / 100.0)),
                    ("tag".into(), A::String(word(below(WORDS.len())))),
                ])
            })
            .collect();
        let before = A::Record(vec![
            ("order_id".into(), A::String(order_id)),
            ("placed".into(), placed),
            ("customer".into(), customer),
            ("items".into(), A::Array(items)),
        ]);
        out.extend(apache_avro::to_avro_datum(&self.before, before).expect("a valid order"));
        let entries = 3 + below(ATTR_KEYS.len() - 2);
        let long = |v: i64| apache_avro::to_avro_datum(&self.long, A::Long(v)).expect("a long");
        let string = |s: String| apache_avro::to_avro_datum(&self.string, A::String(s)).expect("a string");
        out.extend(long(entries as i64));
        for key in &ATTR_KEYS[..entries] {
            out.extend(string((*key).to_string()));
            out.extend(string(format!("{}-{}", WORDS[below(WORDS.len())], below(100))));
        }
        out.extend(long(0));
        let coupon = if below(3) == 0 { A::Union(1, Box::new(A::String(format!("SAVE{}", 5 * (1 + below(6)))))) } else { A::Union(0, Box::new(A::Null)) };
        let after = A::Record(vec![
            ("total".into(), A::Decimal(apache_avro::Decimal::from(minimal_be(cents_total)))),
            ("weight_kg".into(), A::Double(below(20_000) as f64 / 1000.0)),
            ("status".into(), A::String(STATUS[below(STATUS.len())].into())),
            ("coupon".into(), coupon),
        ]);
        out.extend(apache_avro::to_avro_datum(&self.after, after).expect("a valid order"));
        debug_assert!(out.len() > start);
    }
}

/// The orders' Protobuf schema (proto3; the first message is the value's).
const ORDER_PROTO: &str = r#"syntax = "proto3";
package calving.bench;

import "google/protobuf/timestamp.proto";

message Order {
  string order_id = 1;
  google.protobuf.Timestamp placed = 2;
  Customer customer = 3;
  repeated Item items = 4;
  map<string, string> attrs = 5;
  int64 total_cents = 6;
  double weight_kg = 7;
  Status status = 8;
  optional string coupon = 9;

  message Customer {
    int64 id = 1;
    string segment = 2;
    string locale = 3;
    optional string email = 4;
  }
  message Item {
    string sku = 1;
    string name = 2;
    int32 qty = 3;
    double unit_price = 4;
    string tag = 5;
  }
  enum Status {
    NEW = 0;
    PAID = 1;
    SHIPPED = 2;
    DELIVERED = 3;
  }
}
"#;

/// The orders' JSON Schema (draft-07), properties in the order the values write them.
const ORDER_JSON_SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","title":"Order","type":"object","properties":{"order_id":{"type":"string"},"placed":{"type":"string","format":"date-time"},"customer":{"type":"object","properties":{"id":{"type":"integer"},"segment":{"type":"string"},"locale":{"type":"string"},"email":{"type":"string"}}},"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string"},"name":{"type":"string"},"qty":{"type":"integer"},"unit_price":{"type":"number"},"tag":{"type":"string"}}}},"attrs":{"type":"object","additionalProperties":{"type":"string"}},"total_cents":{"type":"integer"},"weight_kg":{"type":"number"},"status":{"type":"string","enum":["NEW","PAID","SHIPPED","DELIVERED"]},"coupon":{"type":"string"}}}"#;

/// The fields of one synthetic order, drawn once and written in each format.
struct Order {
    order_id: String,
    placed_millis: i64,
    customer_id: i64,
    segment: &'static str,
    locale: &'static str,
    email: Option<String>,
    items: Vec<(String, String, i32, i64, &'static str)>,
    attrs: Vec<(&'static str, String)>,
    total_cents: i64,
    weight_grams: i64,
    status: usize,
    coupon: Option<String>,
}

impl Order {
    /// About `size` bytes once written (`item` bytes per item, `fixed` for the rest).
    fn draw(rand: &mut dyn FnMut() -> u64, size: usize, fixed: usize, item: usize) -> Order {
        let mut below = |n: usize| (rand() % n as u64) as usize;
        let customer_id = 1 + below(1_000_000) as i64;
        let email = (below(4) != 0).then(|| format!("user{customer_id}@example.com"));
        let segment = WORDS[17 + below(3)];
        let locale = LOCALES[below(LOCALES.len())];
        let order_id = format!("{:016x}", below(usize::MAX) as u64);
        let placed_millis = 1_700_000_000_000 + below(10_000_000) as i64;
        let n_items = (size.saturating_sub(fixed) / item).max(1);
        let mut total_cents = 0;
        let items = (0..n_items)
            .map(|_| {
                let qty = 1 + below(5) as i32;
                let cents = 99 + below(50_000) as i64;
                total_cents += cents * i64::from(qty);
                let sku = format!("SKU-{:05}", below(5000));
                let name = format!("{} {}", WORDS[20 + below(8)], WORDS[below(17)]);
                (sku, name, qty, cents, WORDS[below(WORDS.len())])
            })
            .collect();
        let entries = 3 + below(ATTR_KEYS.len() - 2);
        let attrs = ATTR_KEYS[..entries].iter().map(|k| (*k, format!("{}-{}", WORDS[below(WORDS.len())], below(100)))).collect();
        let coupon = (below(3) == 0).then(|| format!("SAVE{}", 5 * (1 + below(6))));
        Order {
            order_id,
            placed_millis,
            customer_id,
            segment,
            locale,
            email,
            items,
            attrs,
            total_cents,
            weight_grams: 1 + below(20_000) as i64,
            status: below(STATUS.len()),
            coupon,
        }
    }
}

/// Synthetic orders as Protobuf messages (the same shape as [`AvroOrders`]: a nested message,
/// repeated messages, a map, a Timestamp, an enum, proto3 `optional`s), written by this module's
/// own few lines of Protobuf encoding (field-number order, proto3 defaults omitted, as Java's
/// generated code writes them), not by the transcoder under test.
#[derive(Debug, Default)]
pub struct ProtobufOrders;

impl ProtobufOrders {
    /// The `.proto` text (to register, schemaType `PROTOBUF`).
    pub fn schema(&self) -> &'static str {
        ORDER_PROTO
    }

    /// Appends an order of about `size` bytes: the message alone (a Confluent-framed value puts
    /// the message-index byte `0` before it).
    pub fn write(&self, rand: &mut dyn FnMut() -> u64, size: usize, out: &mut Vec<u8>) {
        let o = Order::draw(rand, size, 190, 40);
        let mut customer = Vec::new();
        pb_varint_field(1, o.customer_id as u64, &mut customer);
        pb_bytes_field(2, o.segment.as_bytes(), &mut customer);
        pb_bytes_field(3, o.locale.as_bytes(), &mut customer);
        if let Some(email) = &o.email {
            pb_bytes_field(4, email.as_bytes(), &mut customer);
        }
        let mut placed = Vec::new();
        pb_varint_field(1, (o.placed_millis / 1000) as u64, &mut placed);
        let nanos = (o.placed_millis % 1000) * 1_000_000;
        if nanos != 0 {
            pb_varint_field(2, nanos as u64, &mut placed);
        }
        pb_bytes_field(1, o.order_id.as_bytes(), out);
        pb_bytes_field(2, &placed, out);
        pb_bytes_field(3, &customer, out);
        let mut item = Vec::new();
        for (sku, name, qty, cents, tag) in &o.items {
            item.clear();
            pb_bytes_field(1, sku.as_bytes(), &mut item);
            pb_bytes_field(2, name.as_bytes(), &mut item);
            pb_varint_field(3, *qty as u64, &mut item);
            pb_double_field(4, *cents as f64 / 100.0, &mut item);
            pb_bytes_field(5, tag.as_bytes(), &mut item);
            pb_bytes_field(4, &item, out);
        }
        let mut entry = Vec::new();
        for (k, v) in &o.attrs {
            entry.clear();
            pb_bytes_field(1, k.as_bytes(), &mut entry);
            pb_bytes_field(2, v.as_bytes(), &mut entry);
            pb_bytes_field(5, &entry, out);
        }
        pb_varint_field(6, o.total_cents as u64, out);
        pb_double_field(7, o.weight_grams as f64 / 1000.0, out);
        if o.status != 0 {
            pb_varint_field(8, o.status as u64, out);
        }
        if let Some(coupon) = &o.coupon {
            pb_bytes_field(9, coupon.as_bytes(), out);
        }
    }
}

fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_varint_field(field: u64, v: u64, out: &mut Vec<u8>) {
    pb_varint(field << 3, out);
    pb_varint(v, out);
}

fn pb_double_field(field: u64, v: f64, out: &mut Vec<u8>) {
    pb_varint((field << 3) | 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn pb_bytes_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
    pb_varint((field << 3) | 2, out);
    pb_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// Synthetic orders as JSON documents of [`ORDER_JSON_SCHEMA`]: compact, properties in schema
/// order, absent optional properties left out, doubles as Java's `Double.toString` writes them
/// (what Jackson, and so Apicurio's JSON Schema serde, writes), timestamps as `Instant.toString`.
#[derive(Debug, Default)]
pub struct JsonOrders;

impl JsonOrders {
    /// The JSON Schema text (to register, schemaType `JSON`).
    pub fn schema(&self) -> &'static str {
        ORDER_JSON_SCHEMA
    }

    /// Appends an order of about `size` bytes.
    pub fn write(&self, rand: &mut dyn FnMut() -> u64, size: usize, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let o = Order::draw(rand, size, 330, 90);
        let mut s = String::with_capacity(size + 64);
        let _ = write!(s, r#"{{"order_id":"{}","placed":"{}","customer":{{"id":{},"segment":"{}","locale":"{}""#,
            o.order_id, instant(o.placed_millis), o.customer_id, o.segment, o.locale);
        if let Some(email) = &o.email {
            let _ = write!(s, r#","email":"{email}""#);
        }
        s.push_str(r#"},"items":["#);
        for (i, (sku, name, qty, cents, tag)) in o.items.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, r#"{{"sku":"{sku}","name":"{name}","qty":{qty},"unit_price":{},"tag":"{tag}"}}"#, java_double(*cents as f64 / 100.0));
        }
        s.push_str(r#"],"attrs":{"#);
        for (i, (k, v)) in o.attrs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, r#""{k}":"{v}""#);
        }
        let _ = write!(s, r#"}},"total_cents":{},"weight_kg":{},"status":"{}""#, o.total_cents, java_double(o.weight_grams as f64 / 1000.0), STATUS[o.status]);
        if let Some(coupon) = &o.coupon {
            let _ = write!(s, r#","coupon":"{coupon}""#);
        }
        s.push('}');
        out.extend_from_slice(s.as_bytes());
    }
}

/// `Double.toString` for the values the orders hold (0.001 <= |x| < 10^7: plain notation, at
/// least one digit after the point).
fn java_double(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// `Instant.toString` of epoch milliseconds (UTC, `Z`; a fraction of 3 digits unless zero).
fn instant(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let time = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if ms == 0 { format!("{time}Z") } else { format!("{time}.{ms:03}Z") }
}

/// Minimal big-endian two's complement, as Java's `BigInteger.toByteArray()` writes a decimal.
fn minimal_be(v: i64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let sign = if v < 0 { 0xff } else { 0 };
    let mut start = 0;
    while start < 7 && b[start] == sign && (b[start + 1] & 0x80) == (sign & 0x80) {
        start += 1;
    }
    b[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::WriterSchema;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn instants_and_doubles_as_java_writes_them() {
        // Instant.ofEpochMilli(…).toString() and Double.toString(…), from a JVM.
        assert_eq!(instant(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(instant(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(instant(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(java_double(5.0), "5.0");
        assert_eq!(java_double(12.34), "12.34");
        assert_eq!(java_double(0.005), "0.005");
    }

    /// JSON orders are valid JSON (serde_json's parser), compact, with the schema's properties
    /// in order; Protobuf orders are about the asked size.
    #[test]
    fn json_and_protobuf_orders_are_well_formed() {
        let schema: serde_json::Value = serde_json::from_str(ORDER_JSON_SCHEMA).unwrap();
        let mut rand = xorshift(5);
        let (mut json_total, mut proto_total) = (0, 0);
        for _ in 0..200 {
            let mut v = Vec::new();
            JsonOrders.write(&mut rand, 1024, &mut v);
            json_total += v.len();
            let doc: serde_json::Value = serde_json::from_slice(&v).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&v)));
            assert!(!v.contains(&b' ') || doc.to_string().contains(' '));
            for key in doc.as_object().unwrap().keys() {
                assert!(schema["properties"].get(key).is_some(), "{key}");
            }
            let mut p = Vec::new();
            ProtobufOrders.write(&mut rand, 1024, &mut p);
            proto_total += p.len();
        }
        assert!((900..=1150).contains(&(json_total / 200)), "JSON average {}", json_total / 200);
        assert!((900..=1150).contains(&(proto_total / 200)), "Protobuf average {}", proto_total / 200);
    }

    /// The orders are deterministic, about the asked size, and every one goes to columns.
    #[test]
    fn orders_decode_losslessly() {
        let orders = AvroOrders::new();
        let writer = Arc::new(WriterSchema::parse(orders.schema()).unwrap());
        let mut columns = crate::ValueColumns::for_writer(&writer).unwrap();
        let mut decoder = columns.decoder(writer);
        assert_eq!(decoder.conflict(), None);
        let make = |seed: u64| {
            let mut rand = xorshift(seed);
            let mut out = Vec::new();
            for _ in 0..200 {
                orders.write(&mut rand, 1024, &mut out);
                out.push(0xAA); // separator, for the comparison
            }
            out
        };
        assert_eq!(make(7), make(7));
        let mut rand = xorshift(99);
        let mut total = 0;
        for _ in 0..200 {
            let mut v = Vec::new();
            orders.write(&mut rand, 1024, &mut v);
            total += v.len();
            columns.append(&mut decoder, &v).unwrap_or_else(|e| panic!("{e}"));
        }
        let avg = total / 200;
        assert!((950..=1100).contains(&avg), "average size {avg}");
    }
}
