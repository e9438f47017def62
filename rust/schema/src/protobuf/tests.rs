//! Protobuf transcoder tests: values written by prost-reflect (an independent encoder), datums
//! read by apache-avro (an independent decoder), and the public path through the columns.

use std::collections::BTreeMap;
use std::sync::Arc;

use apache_avro::types::Value as A;
use prost_reflect::prost::Message as _;
use prost_reflect::{DynamicMessage, MapKey, MessageDescriptor, ReflectMessage as _, Value as P};

use super::*;
use crate::decode::Fallback;
use crate::transcode::Envelope;

fn refs() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn compiled(text: &str) -> Compiled {
    compile(text, &refs()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The first message of `text`, for prost-reflect to write values with.
fn descriptor(text: &str, references: &BTreeMap<String, String>) -> MessageDescriptor {
    let pool = descriptor_pool(text, references).unwrap();
    pool.get_file_by_name(MAIN_FILE).unwrap().messages().next().unwrap()
}

fn msg(d: &MessageDescriptor, fields: &[(&str, P)]) -> DynamicMessage {
    let mut m = DynamicMessage::new(d.clone());
    for (name, v) in fields {
        m.set_field_by_name(name, v.clone());
    }
    m
}

fn sub(d: &MessageDescriptor, field: &str, fields: &[(&str, P)]) -> P {
    let f = d.get_field_by_name(field).unwrap();
    let k = f.kind();
    let m = k.as_message().unwrap();
    P::Message(msg(m, fields))
}

/// message_to_avro (bare) → the datum apache-avro reads; avro_to_message gives the bytes back.
fn through(c: &Compiled, payload: &[u8]) -> A {
    let mut avro = Vec::new();
    c.transcoder.message_to_avro(payload, &mut avro).unwrap_or_else(|e| panic!("{e}: {payload:?}"));
    let mut back = Vec::new();
    c.transcoder.avro_to_message(&avro, &mut back).unwrap();
    assert_eq!(back, payload, "avro_to_message gives the bytes back");
    let schema = apache_avro::Schema::parse(&c.avro).unwrap_or_else(|e| panic!("{e}: {}", c.avro));
    apache_avro::from_avro_datum(&schema, &mut &avro[..], None).unwrap()
}

/// message_to_avro, then avro_to_message and the comparison the caller does: whether the value goes to columns.
fn goes_raw(c: &Compiled, payload: &[u8]) -> bool {
    let mut avro = Vec::new();
    match c.transcoder.message_to_avro(payload, &mut avro) {
        Err(Fallback::Transcode { format: "protobuf", reason }) => {
            assert!(!reason.is_empty());
            true
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(()) => {
            let mut back = Vec::new();
            c.transcoder.avro_to_message(&avro, &mut back).is_err() || back != payload
        }
    }
}

fn fields(v: A) -> Vec<(String, A)> {
    match v {
        A::Record(f) => f,
        other => panic!("not a record: {other:?}"),
    }
}

fn field(v: &[(String, A)], name: &str) -> A {
    v.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}")).1.clone()
}

fn some(v: A) -> A {
    A::Union(1, Box::new(v))
}

fn none() -> A {
    A::Union(0, Box::new(A::Null))
}

fn dec(v: u64) -> A {
    // Minimal two's complement, as Java's BigInteger.toByteArray().
    let be = (v as i128).to_be_bytes();
    let mut s = 0;
    while s < 15 && be[s] == 0 && be[s + 1] & 0x80 == 0 {
        s += 1;
    }
    A::Decimal(apache_avro::Decimal::from(be[s..].to_vec()))
}

const SCALARS: &str = r#"
syntax = "proto3";
package t.s;
message S {
  int32 i32 = 1; sint32 s32 = 2; sfixed32 f32 = 3;
  int64 i64 = 4; sint64 s64 = 5; sfixed64 f64 = 6;
  uint32 u32 = 7; fixed32 x32 = 8; uint64 u64 = 9; fixed64 x64 = 10;
  float fl = 11; double db = 12; bool b = 13; string s = 14; bytes y = 15;
}
"#;

#[test]
fn scalars_map_to_their_avro_types() {
    let c = compiled(SCALARS);
    assert_eq!(c.avro["name"], "protobuf.t.s.S");
    let types: Vec<_> = c.avro["fields"].as_array().unwrap().iter().map(|f| f["type"].clone()).collect();
    assert_eq!(types[0], "int");
    assert_eq!(types[6], "long");
    assert_eq!(types[8]["logicalType"], "decimal");
    assert_eq!(types[8]["precision"], 20);
    let d = descriptor(SCALARS, &refs());
    for (i, (a, b)) in [(-5i32, -7i64), (i32::MIN, i64::MIN), (i32::MAX, i64::MAX), (1, 1)].into_iter().enumerate() {
        let u = [u32::MAX, 0, 1, 300][i];
        let w = [u64::MAX, 0, 1 << 63, 127][i];
        let m = msg(&d, &[
            ("i32", P::I32(a)), ("s32", P::I32(a)), ("f32", P::I32(a)),
            ("i64", P::I64(b)), ("s64", P::I64(b)), ("f64", P::I64(b)),
            ("u32", P::U32(u)), ("x32", P::U32(u)), ("u64", P::U64(w)), ("x64", P::U64(w)),
            ("fl", P::F32(1.5)), ("db", P::F64(-2.25)), ("b", P::Bool(true)),
            ("s", P::String("héllo".into())), ("y", P::Bytes(vec![0, 255].into())),
        ]);
        let v = fields(through(&c, &m.encode_to_vec()));
        for n in ["i32", "s32", "f32"] {
            assert_eq!(field(&v, n), A::Int(a), "{n}");
        }
        for n in ["i64", "s64", "f64"] {
            assert_eq!(field(&v, n), A::Long(b), "{n}");
        }
        assert_eq!(field(&v, "u32"), A::Long(i64::from(u)));
        assert_eq!(field(&v, "x32"), A::Long(i64::from(u)));
        assert_eq!(field(&v, "u64"), dec(w));
        assert_eq!(field(&v, "x64"), dec(w));
        assert_eq!(field(&v, "fl"), A::Float(1.5));
        assert_eq!(field(&v, "db"), A::Double(-2.25));
        assert_eq!(field(&v, "b"), A::Boolean(true));
        assert_eq!(field(&v, "s"), A::String("héllo".into()));
        assert_eq!(field(&v, "y"), A::Bytes(vec![0, 255]));
    }
}

#[test]
fn proto3_absent_fields_are_their_defaults() {
    let c = compiled(SCALARS);
    let v = fields(through(&c, &[]));
    assert_eq!(field(&v, "i32"), A::Int(0));
    assert_eq!(field(&v, "u32"), A::Long(0));
    assert_eq!(field(&v, "u64"), dec(0));
    assert_eq!(field(&v, "fl"), A::Float(0.0));
    assert_eq!(field(&v, "b"), A::Boolean(false));
    assert_eq!(field(&v, "s"), A::String(String::new()));
    // -0.0 is not the default (its bits are not zero): Java writes it (prost does not), and it
    // is kept.
    let bytes = [0x61, 0, 0, 0, 0, 0, 0, 0, 0x80];
    let v = fields(through(&c, &bytes));
    assert!(matches!(field(&v, "db"), A::Double(x) if x == 0.0 && x.is_sign_negative()));
}

#[test]
fn presence_gives_nullable_fields() {
    let text = r#"
syntax = "proto3";
message P { optional int32 a = 1; optional string b = 2; int32 c = 3; }
"#;
    let c = compiled(text);
    assert_eq!(c.avro["fields"][0]["type"], json!(["null", "int"]));
    assert_eq!(c.avro["fields"][2]["type"], json!("int"));
    let d = descriptor(text, &refs());
    let v = fields(through(&c, &msg(&d, &[("a", P::I32(0))]).encode_to_vec()));
    assert_eq!(field(&v, "a"), some(A::Int(0)), "an optional 0 is present");
    assert_eq!(field(&v, "b"), none());
    let proto2 = r#"
syntax = "proto2";
package p2;
message Q { required int64 id = 1; optional string name = 2 [default = "x"]; repeated int32 r = 3; repeated int32 pk = 4 [packed = true]; }
"#;
    let c = compiled(proto2);
    assert_eq!(c.avro["fields"][0]["type"], json!(["null", "long"]));
    let d = descriptor(proto2, &refs());
    let m = msg(&d, &[("id", P::I64(7)), ("r", P::List(vec![P::I32(1), P::I32(-2)]))]);
    // (prost-reflect 0.16 ignores an explicit `packed` option: pk written by hand.)
    let bytes = [m.encode_to_vec(), vec![0x22, 0x02, 0x03, 0x04]].concat();
    assert_eq!(bytes[2], 3 << 3, "proto2 repeated is unpacked by default");
    let v = fields(through(&c, &bytes));
    assert_eq!(field(&v, "id"), some(A::Long(7)));
    assert_eq!(field(&v, "name"), none());
    assert_eq!(field(&v, "r"), A::Array(vec![A::Int(1), A::Int(-2)]));
    assert_eq!(field(&v, "pk"), A::Array(vec![A::Int(3), A::Int(4)]));
}

const NESTED: &str = r#"
syntax = "proto3";
package t.n;
message Order {
  message Line { string sku = 2; uint32 qty = 1; }
  Line first = 3;
  repeated Line lines = 1;
  Address ship = 2;
  Address bill = 4;
}
message Address { string city = 1; }
"#;

#[test]
fn nested_messages_are_records_in_declaration_order() {
    let c = compiled(NESTED);
    // A message type used twice is defined once, then named.
    assert_eq!(c.avro["fields"][3]["type"], json!(["null", "protobuf.t.n.Address"]));
    let d = descriptor(NESTED, &refs());
    let line = |sku: &str, qty: u32| sub(&d, "first", &[("sku", P::String(sku.into())), ("qty", P::U32(qty))]);
    let m = msg(&d, &[
        ("first", line("a", 1)),
        ("lines", P::List(vec![line("b", 2), line("", 0)])),
        ("bill", sub(&d, "bill", &[("city", P::String("Oslo".into()))])),
    ]);
    let v = fields(through(&c, &m.encode_to_vec()));
    let rec = |sku: &str, qty: i64| A::Record(vec![("sku".into(), A::String(sku.into())), ("qty".into(), A::Long(qty))]);
    assert_eq!(field(&v, "first"), some(rec("a", 1)));
    assert_eq!(field(&v, "lines"), A::Array(vec![rec("b", 2), rec("", 0)]));
    assert_eq!(field(&v, "ship"), none());
    assert_eq!(field(&v, "bill"), some(A::Record(vec![("city".into(), A::String("Oslo".into()))])));
}

const ENUMS: &str = r#"
syntax = "proto3";
message E {
  enum Color { option allow_alias = true; RED = 0; GREEN = 5; VERDE = 5; BLUE = -1; }
  Color c = 1;
  repeated Color cs = 2;
  optional Color o = 3;
}
"#;

#[test]
fn enums_are_avro_enums() {
    let c = compiled(ENUMS);
    assert_eq!(c.avro["fields"][0]["type"]["symbols"], json!(["RED", "GREEN", "VERDE", "BLUE"]));
    let d = descriptor(ENUMS, &refs());
    let m = msg(&d, &[("c", P::EnumNumber(5)), ("cs", P::List(vec![P::EnumNumber(-1), P::EnumNumber(0)])), ("o", P::EnumNumber(0))]);
    let v = fields(through(&c, &m.encode_to_vec()));
    assert_eq!(field(&v, "c"), A::Enum(1, "GREEN".into()), "an alias reads as the first name");
    assert_eq!(field(&v, "cs"), A::Array(vec![A::Enum(3, "BLUE".into()), A::Enum(0, "RED".into())]));
    assert_eq!(field(&v, "o"), some(A::Enum(0, "RED".into())));
    let v = fields(through(&c, &[]));
    assert_eq!(field(&v, "c"), A::Enum(0, "RED".into()));
    // An unknown number goes raw.
    let m = msg(&d, &[("c", P::EnumNumber(9))]);
    assert!(goes_raw(&c, &m.encode_to_vec()));
}

const MAPS: &str = r#"
syntax = "proto3";
message M {
  message V { int32 x = 1; }
  map<string, int64> counts = 1;
  map<int32, string> names = 2;
  map<string, V> vs = 3;
  map<bool, bytes> flags = 4;
}
"#;

#[test]
fn maps_with_string_keys_are_maps_others_arrays_of_records() {
    let c = compiled(MAPS);
    assert_eq!(c.avro["fields"][0]["type"], json!({"type": "map", "values": "long"}));
    assert_eq!(c.avro["fields"][1]["type"]["type"], "array");
    let d = descriptor(MAPS, &refs());
    let mut m = DynamicMessage::new(d.clone());
    // (Keys and values that are not defaults: prost-reflect leaves defaults out of an entry.)
    m.set_field_by_name("counts", P::Map([(MapKey::String("a".into()), P::I64(1)), (MapKey::String("b".into()), P::I64(-3))].into()));
    m.set_field_by_name("names", P::Map([(MapKey::I32(-1), P::String("n".into()))].into()));
    let vd = d.get_field_by_name("vs").unwrap().kind().as_message().unwrap().map_entry_value_field().kind().as_message().unwrap().clone();
    m.set_field_by_name("vs", P::Map([(MapKey::String("k".into()), P::Message(msg(&vd, &[("x", P::I32(4))])))].into()));
    let v = fields(through(&c, &m.encode_to_vec()));
    let A::Map(counts) = field(&v, "counts") else { panic!() };
    assert_eq!(counts.len(), 2);
    assert_eq!(counts["a"], A::Long(1));
    assert_eq!(counts["b"], A::Long(-3));
    assert_eq!(
        field(&v, "names"),
        A::Array(vec![A::Record(vec![("key".into(), A::Int(-1)), ("value".into(), A::String("n".into()))])])
    );
    let A::Map(vs) = field(&v, "vs") else { panic!() };
    assert_eq!(vs["k"], A::Record(vec![("x".into(), A::Int(4))]));
    assert_eq!(field(&v, "flags"), A::Array(vec![]));
    // Entries as Java writes them: key and value always, defaults included.
    let java = [0x0a, 0x05, 0x0a, 0x01, b'a', 0x10, 0x00, 0x12, 0x04, 0x08, 0x00, 0x12, 0x00];
    let v = fields(through(&c, &java));
    let A::Map(counts) = field(&v, "counts") else { panic!() };
    assert_eq!(counts["a"], A::Long(0));
    assert_eq!(field(&v, "names"), A::Array(vec![A::Record(vec![("key".into(), A::Int(0)), ("value".into(), A::String(String::new()))])]));
    // A key repeated (Protobuf keeps the last entry): raw.
    assert!(goes_raw(&c, &[0x12, 0x05, 0x08, 0x01, 0x12, 0x01, b'x', 0x12, 0x05, 0x08, 0x01, 0x12, 0x01, b'y']));
    assert!(!goes_raw(&c, &[0x12, 0x05, 0x08, 0x01, 0x12, 0x01, b'x', 0x12, 0x05, 0x08, 0x02, 0x12, 0x01, b'y']));
    // An entry without its default key or value (as prost writes them) goes raw.
    assert!(goes_raw(&c, &[0x0a, 0x02, 0x10, 0x01]));
    assert!(goes_raw(&c, &[0x0a, 0x03, 0x0a, 0x01, b'a']));
}

const ONEOF: &str = r#"
syntax = "proto3";
message O {
  int32 id = 1;
  oneof pick { string s = 2; int64 n = 3; Inner m = 4; }
  message Inner { bool f = 1; }
}
"#;

#[test]
fn oneof_members_are_nullable_fields() {
    let c = compiled(ONEOF);
    let d = descriptor(ONEOF, &refs());
    let v = fields(through(&c, &msg(&d, &[("n", P::I64(0))]).encode_to_vec()));
    assert_eq!(field(&v, "s"), none());
    assert_eq!(field(&v, "n"), some(A::Long(0)));
    assert_eq!(field(&v, "m"), none());
    // Two members on the wire: not what one value holds.
    assert!(goes_raw(&c, &[0x12, 0x01, b'x', 0x18, 0x01]));
}

const WELL_KNOWN: &str = r#"
syntax = "proto3";
package t.w;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/any.proto";
message W {
  google.protobuf.Timestamp at = 1;
  google.protobuf.Duration took = 2;
  google.protobuf.Int32Value i = 3;
  google.protobuf.UInt64Value u = 4;
  google.protobuf.StringValue s = 5;
  google.protobuf.BoolValue b = 6;
  google.protobuf.Any any = 7;
  repeated google.protobuf.Timestamp ats = 8;
  google.protobuf.DoubleValue d = 9;
}
"#;

#[test]
fn well_known_types() {
    let c = compiled(WELL_KNOWN);
    assert_eq!(c.avro["fields"][0]["type"], json!(["null", {"type": "long", "logicalType": "timestamp-micros"}]));
    assert_eq!(c.avro["fields"][2]["type"], json!(["null", "int"]));
    let d = descriptor(WELL_KNOWN, &refs());
    let ts = |s: i64, n: i32| sub(&d, "at", &[("seconds", P::I64(s)), ("nanos", P::I32(n))]);
    let m = msg(&d, &[
        ("at", ts(-1, 999_000)),
        ("took", sub(&d, "took", &[("seconds", P::I64(3)), ("nanos", P::I32(5))])),
        ("i", sub(&d, "i", &[("value", P::I32(0))])),
        ("u", sub(&d, "u", &[("value", P::U64(u64::MAX))])),
        ("s", sub(&d, "s", &[("value", P::String("w".into()))])),
        ("any", sub(&d, "any", &[("type_url", P::String("x/y".into())), ("value", P::Bytes(vec![1].into()))])),
        ("ats", P::List(vec![ts(0, 0), ts(1_700_000_000, 123_456_000)])),
    ]);
    let v = fields(through(&c, &m.encode_to_vec()));
    assert_eq!(field(&v, "at"), some(A::TimestampMicros(-1_000_000 + 999)));
    assert_eq!(field(&v, "took"), some(A::Record(vec![("seconds".into(), A::Long(3)), ("nanos".into(), A::Int(5))])));
    assert_eq!(field(&v, "i"), some(A::Int(0)));
    assert_eq!(field(&v, "u"), some(dec(u64::MAX)));
    assert_eq!(field(&v, "s"), some(A::String("w".into())));
    assert_eq!(field(&v, "b"), none());
    assert_eq!(field(&v, "any"), some(A::Record(vec![("type_url".into(), A::String("x/y".into())), ("value".into(), A::Bytes(vec![1]))])));
    assert_eq!(field(&v, "ats"), A::Array(vec![A::TimestampMicros(0), A::TimestampMicros(1_700_000_000_123_456)]));
    // Nanoseconds that are not whole microseconds, or out of Timestamp's range: raw.
    for (s, n) in [(1, 1), (1, 1_000_000_000), (253_402_300_800, 0), (1, -1000)] {
        let m = msg(&d, &[("at", ts(s, n))]);
        assert!(goes_raw(&c, &m.encode_to_vec()), "{s} {n}");
    }
}

#[test]
fn unsupported_schemas_are_errors() {
    let recursive = "syntax = \"proto3\"; message R { R next = 1; int32 x = 2; }";
    assert!(matches!(compile(recursive, &refs()), Err(SchemaError::Unsupported { .. })));
    let mutual = "syntax = \"proto3\"; message A { B b = 1; } message B { repeated A a = 1; }";
    assert!(matches!(compile(mutual, &refs()), Err(SchemaError::Unsupported { .. })));
    let strukt = "syntax = \"proto3\"; import \"google/protobuf/struct.proto\"; message S { google.protobuf.Struct s = 1; }";
    assert!(matches!(compile(strukt, &refs()), Err(SchemaError::Unsupported { .. })));
    let group = "syntax = \"proto2\"; message G { optional group Gr = 1 { optional int32 a = 2; } }";
    assert!(matches!(compile(group, &refs()), Err(SchemaError::Unsupported { .. })));
    // Empty compiles here, but a record without columns is not a column type.
    let empty = "syntax = \"proto3\"; import \"google/protobuf/empty.proto\"; message E { google.protobuf.Empty e = 1; }";
    let text = Envelope::new("PROTOBUF", empty, refs()).to_text();
    assert!(matches!(crate::WriterSchema::parse(&text), Err(SchemaError::Unsupported { .. })));
    assert!(matches!(compile("syntax = \"proto3\"; enum X { A = 0; }", &refs()), Err(SchemaError::Unsupported { .. })));
    assert!(matches!(compile("not a proto", &refs()), Err(SchemaError::Parse { .. })));
    assert!(matches!(compile("syntax = \"proto3\"; import \"missing.proto\"; message M {}", &refs()), Err(SchemaError::Parse { .. })));
}

#[test]
fn references_resolve_imports() {
    let mut references = BTreeMap::new();
    references.insert("other/dep.proto".to_string(), "syntax = \"proto3\"; package dep; message D { string v = 1; }".to_string());
    let text = "syntax = \"proto3\"; import \"other/dep.proto\"; message M { dep.D d = 1; }";
    let c = compile(text, &references).unwrap();
    assert_eq!(c.avro["fields"][0]["type"][1]["name"], "protobuf.dep.D");
    let d = descriptor(text, &references);
    let m = msg(&d, &[("d", sub(&d, "d", &[("v", P::String("x".into()))]))]);
    assert_eq!(fields(through(&c, &m.encode_to_vec()))[0].1, some(A::Record(vec![("v".into(), A::String("x".into()))])));
}

#[test]
fn what_the_columns_cannot_give_back_goes_raw() {
    let c = compiled(SCALARS);
    let raw = |b: &[u8]| goes_raw(&c, b);
    assert!(!raw(&[0x08, 0x01]));
    assert!(raw(&[0x08, 0x00]), "a proto3 default written out");
    assert!(raw(&[0xa0, 0x01, 0x01]), "unknown field 20");
    assert!(raw(&[0x10, 0x02, 0x08, 0x01]), "fields out of order");
    assert!(raw(&[0x08, 0x01, 0x08, 0x02]), "a singular field twice");
    assert!(raw(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0]), "wrong wire type");
    assert!(raw(&[0x08, 0x81, 0x00]), "a varint not minimal");
    assert!(raw(&[0x08]), "truncated");
    assert!(raw(&[0x72, 0x05, b'a']), "truncated string");
    assert!(raw(&[0x72, 0x01, 0xff]), "not UTF-8");
    assert!(raw(&[0xff; 12]), "garbage");
    assert!(raw(&[0x68, 0x02]), "a bool of 2");
    // Packed vs not.
    let packed = "syntax = \"proto3\"; message R { repeated int32 p = 1; repeated int32 u = 2 [packed = false]; repeated string s = 3; }";
    let c = compiled(packed);
    let raw = |b: &[u8]| goes_raw(&c, b);
    assert!(!raw(&[0x0a, 0x02, 0x01, 0x02, 0x10, 0x01, 0x10, 0x02]));
    assert!(raw(&[0x08, 0x01, 0x08, 0x02]), "packed field unpacked");
    assert!(raw(&[0x12, 0x02, 0x01, 0x02]), "unpacked field packed");
    assert!(raw(&[0x0a, 0x00]), "an empty packed list written");
    assert!(raw(&[0x0a, 0x01, 0x01, 0x0a, 0x01, 0x02]), "packed in two runs");
    assert!(raw(&[0x10, 0x01, 0x1a, 0x00, 0x10, 0x02]), "repeated items not contiguous");
}

/// The public path: envelope → writer schema → columns → re-encoding.
#[test]
fn end_to_end_through_the_columns() {
    use arrow_array::cast::AsArray;
    use arrow_array::Array as _;
    use arrow_array::types::{Int32Type, TimestampMicrosecondType};
    let text = Envelope::new("PROTOBUF", WELL_KNOWN, refs()).to_text();
    let w = crate::WriterSchema::parse(&text).unwrap();
    let mut cols = crate::ValueColumns::for_writer(&w).unwrap();
    let mut dec = cols.decoder(Arc::new(w.clone()));
    assert_eq!(dec.conflict(), None);
    let d = descriptor(WELL_KNOWN, &refs());
    let ts = |s: i64| sub(&d, "at", &[("seconds", P::I64(s))]);
    let payloads: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let m = msg(&d, &[("at", ts(i)), ("i", sub(&d, "i", &[("value", P::I32(i as i32 * 10))])), ("ats", P::List(vec![ts(i); i as usize]))]);
            [&[0u8][..], &m.encode_to_vec()].concat()
        })
        .collect();
    for p in &payloads {
        cols.append(&mut dec, p).unwrap();
    }
    // Raw: garbage, and a Timestamp with nanos.
    assert!(matches!(cols.append(&mut dec, &[0, 0xff, 0xff]), Err(Fallback::Transcode { .. })));
    let nanos = msg(&d, &[("at", sub(&d, "at", &[("nanos", P::I32(1))]))]);
    assert!(cols.append(&mut dec, &[&[0u8][..], &nanos.encode_to_vec()].concat()).is_err());
    let fields = cols.fields();
    let arrays = cols.finish().unwrap();
    let at = fields.iter().position(|f| f.name() == "at").unwrap();
    let at = arrays[at].as_primitive::<TimestampMicrosecondType>();
    assert_eq!((at.value(0), at.value(2)), (0, 2_000_000));
    assert!(at.is_null(3) && at.is_null(4));
    let i = fields.iter().position(|f| f.name() == "i").unwrap();
    assert_eq!(arrays[i].as_primitive::<Int32Type>().value(2), 20);
    let ats = fields.iter().position(|f| f.name() == "ats").unwrap();
    assert_eq!(arrays[ats].as_list::<i32>().value(2).len(), 2);
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(5));
    let batch = arrow_array::RecordBatch::try_new_with_options(schema, arrays, &options).unwrap();
    let enc = crate::RowEncoder::new(&w, &batch);
    for (row, p) in payloads.iter().enumerate() {
        let mut out = Vec::new();
        enc.encode(row, &mut out).unwrap();
        assert_eq!(&out, p, "row {row}");
    }
    let bare = crate::RowEncoder::new(&w, &batch).bare();
    let mut out = Vec::new();
    bare.encode(1, &mut out).unwrap();
    assert_eq!(out, payloads[1][1..]);
}

/// The message-index list `[0]` in its two spellings: `00` (Confluent's serializers) and `02 00`
/// (Apicurio's). A decoder takes the first value's spelling; values with the other one, another
/// message's list or none go raw. The sidecar's text records a non-default spelling, and an
/// encoder of that text writes it back.
#[test]
fn message_indexes_in_both_spellings() {
    let text = Envelope::new("PROTOBUF", SCALARS, BTreeMap::new()).to_text();
    let w = Arc::new(crate::WriterSchema::parse(&text).unwrap());
    let message = [0x08, 0x01];
    for (spelling, other) in [(&[0x00][..], &[0x02, 0x00][..]), (&[0x02, 0x00][..], &[0x00][..])] {
        let mut cols = crate::ValueColumns::for_writer(&w).unwrap();
        let mut dec = cols.decoder(w.clone());
        let value = [spelling, &message[..]].concat();
        cols.append(&mut dec, &value).unwrap();
        assert_eq!(dec.message_indexes(), Some(spelling));
        cols.append(&mut dec, &value).unwrap();
        for raw in [[other, &message[..]].concat(), [&[0x02, 0x02][..], &message[..]].concat(), vec![], vec![0x04, 0x00, 0x00, 0x08, 0x01]] {
            assert!(matches!(cols.append(&mut dec, &raw), Err(Fallback::Transcode { format: "protobuf", .. })), "{raw:02x?}");
        }
        // A second pass over the same segment starts with what the first learned.
        let mut again = cols.decoder(w.clone());
        again.set_message_indexes(dec.message_indexes());
        assert!(cols.append(&mut again, &[other, &message[..]].concat()).is_err());
        // What the sidecar keeps, and the encoder of it.
        let kept = Envelope::with_message_indexes(&text, spelling);
        assert_eq!(kept == text, spelling == [0x00], "only Apicurio's spelling is recorded");
        let kept = crate::WriterSchema::parse(&kept).unwrap();
        let fields = cols.fields();
        let arrays = cols.finish().unwrap();
        let batch = arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays).unwrap();
        let mut out = Vec::new();
        crate::RowEncoder::new(&kept, &batch).encode(0, &mut out).unwrap();
        assert_eq!(out, value);
    }
    let bad = Envelope { message_indexes: Some("0202".into()), ..Envelope::new("PROTOBUF", SCALARS, BTreeMap::new()) };
    assert!(crate::WriterSchema::parse(&bad.to_text()).is_err(), "a recorded list other than [0]");
}

mod props;
mod speed;
mod canonical;
