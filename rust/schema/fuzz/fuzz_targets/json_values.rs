//! Any bytes as a JSON value of a fixed JSON Schema writer schema (nested objects, arrays, maps,
//! nullable properties, a wider union, date-times, dates, uuids, an enum, a `$ref`, a verbatim
//! `{}` property), through the public path: a writer schema from its envelope,
//! `ValueColumns::append`. Nothing may panic, and a value that goes to the columns must re-encode
//! to exactly its bytes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use calving_schema::transcode::Envelope;
use calving_schema::{RowEncoder, ValueColumns, WriterSchema};
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = r##"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{
  "id":{"type":"string","format":"uuid"},
  "placed":{"type":"string","format":"date-time"},
  "day":{"type":"string","format":"date"},
  "n":{"type":"integer"},
  "x":{"type":["number","null"]},
  "ok":{"type":"boolean"},
  "status":{"enum":["NEW","PAID"]},
  "lines":{"type":"array","items":{"$ref":"#/definitions/line"}},
  "attrs":{"type":"object","additionalProperties":{"type":["string","null"]}},
  "either":{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"number"},{"type":"array","items":{"type":"boolean"}}]},
  "any":{}
},"definitions":{"line":{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer"}}}}}"##;

fn writer() -> &'static Arc<WriterSchema> {
    static WRITER: OnceLock<Arc<WriterSchema>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let text = Envelope::new("JSON", SCHEMA, BTreeMap::new()).to_text();
        Arc::new(WriterSchema::parse(&text).expect("the fuzz schema compiles"))
    })
}

fuzz_target!(|data: &[u8]| {
    let w = writer();
    let mut cols = ValueColumns::for_writer(w).expect("columns");
    let mut decoder = cols.decoder(w.clone());
    if cols.append(&mut decoder, data).is_err() {
        return;
    }
    let fields = cols.fields();
    let arrays = cols.finish().expect("arrays");
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(1));
    let batch = arrow_array::RecordBatch::try_new_with_options(schema, arrays, &options).expect("batch");
    let mut out = Vec::new();
    RowEncoder::new(w, &batch).encode(0, &mut out).expect("a value in the columns re-encodes");
    assert_eq!(out, data, "a value in the columns re-encodes to its bytes");
});
