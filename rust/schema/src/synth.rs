//! Synthetic Avro values for benchmarks (`calving bench typed`): orders of about 1 KiB with a
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

    /// The orders are deterministic, about the asked size, and every one goes to columns.
    #[test]
    fn orders_decode_losslessly() {
        let orders = AvroOrders::new();
        let writer = Arc::new(WriterSchema::parse(orders.schema()).unwrap());
        let mut columns = crate::ValueColumns::for_writer(&writer).unwrap();
        let mut decoder = columns.decoder(writer);
        assert_eq!(decoder.conflict(), None);
        let make = |seed: u64| {
            let mut x = seed;
            let mut rand = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut out = Vec::new();
            for _ in 0..200 {
                orders.write(&mut rand, 1024, &mut out);
                out.push(0xAA); // separator, for the comparison
            }
            out
        };
        assert_eq!(make(7), make(7));
        let mut x = 99u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
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
