//! Any bytes as a Protobuf value of a fixed writer schema (nested messages, repeated packed and
//! unpacked, maps, a oneof, enums, well-known types), through the public path: a writer schema
//! from its envelope, `ValueColumns::append` (Confluent framing and bare). Nothing may panic,
//! and a value that goes to the columns must re-encode to exactly its bytes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use calving_schema::transcode::Envelope;
use calving_schema::{RowEncoder, ValueColumns, WriterSchema};
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = r#"
syntax = "proto3";
package fuzz.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Order {
  string id = 1;
  google.protobuf.Timestamp created = 2;
  repeated Line lines = 3;
  map<string, string> attributes = 4;
  map<int32, Line> by_slot = 5;
  Status status = 6;
  repeated sint64 codes = 7;
  repeated string tags = 8;
  optional double total = 9;
  oneof payment { string card = 10; uint64 account = 11; }
  google.protobuf.Int64Value limit = 12;
  fixed64 checksum = 13;
  bytes blob = 14;
  message Line { string sku = 2; uint32 qty = 1; repeated float weights = 3; bool gift = 4; }
  enum Status { UNKNOWN = 0; NEW = 1; PAID = 2; }
}
"#;

fn writer() -> &'static Arc<WriterSchema> {
    static WRITER: OnceLock<Arc<WriterSchema>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let text = Envelope::new("PROTOBUF", SCHEMA, BTreeMap::new()).to_text();
        Arc::new(WriterSchema::parse(&text).expect("the fuzz schema compiles"))
    })
}

fn check(data: &[u8], bare: bool) {
    let w = writer();
    let mut cols = ValueColumns::for_writer(w).expect("columns");
    let decoder = cols.decoder(w.clone());
    let mut decoder = if bare { decoder.bare() } else { decoder };
    if cols.append(&mut decoder, data).is_err() {
        return;
    }
    let fields = cols.fields();
    let arrays = cols.finish().expect("arrays");
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(1));
    let batch = arrow_array::RecordBatch::try_new_with_options(schema, arrays, &options).expect("batch");
    // The message-index spelling the decoder took (00 or 02 00) is what a sidecar records.
    let kept = match decoder.message_indexes() {
        Some(indexes) => Arc::new(
            WriterSchema::parse(&Envelope::with_message_indexes(&Envelope::new("PROTOBUF", SCHEMA, BTreeMap::new()).to_text(), indexes))
                .expect("the kept text compiles"),
        ),
        None => w.clone(),
    };
    let encoder = RowEncoder::new(&kept, &batch);
    let encoder = if bare { encoder.bare() } else { encoder };
    let mut out = Vec::new();
    encoder.encode(0, &mut out).expect("a value in the columns re-encodes");
    assert_eq!(out, data, "a value in the columns re-encodes to its bytes");
}

fuzz_target!(|data: &[u8]| {
    check(data, false);
    check(data, true);
});
