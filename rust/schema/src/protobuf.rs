//! Protobuf writer schemas as Avro: the schema mapping and the transcoder of their values.
//!
//! [`compile`] reads a `.proto` file's text as a Schema Registry returns it (proto2 or proto3;
//! imports resolved from its references by import path, Google's well-known types from the
//! copies protox ships) with a pure-Rust compiler (`protox`, descriptors read with
//! `prost-reflect`), and maps the file's **first top-level message** to an Avro record schema
//! of the same shape plus a [`Transcoder`](crate::transcode::Transcoder) between the message's
//! bytes and that schema's Avro datums (`codec`: its own wire decoder and encoder, no
//! intermediate value tree). A value whose Confluent message-index list names another message
//! goes raw.
//!
//! # Type mapping
//!
//! | Protobuf | Avro | note |
//! |---|---|---|
//! | message | `record` | fields in declaration order; name `protobuf.` + the message's full name |
//! | `int32`, `sint32`, `sfixed32` | `int` | |
//! | `int64`, `sint64`, `sfixed64` | `long` | |
//! | `uint32`, `fixed32` | `long` | |
//! | `uint64`, `fixed64` | `decimal(20,0)` on `bytes` | minimal two's complement, as Avro writes decimals |
//! | `float`, `double`, `bool`, `string`, `bytes` | same | |
//! | enum | `enum` | the value names in declaration order; aliases: a number reads as its first name |
//! | proto3 singular scalar or enum (no `optional`) | `T` | absent on the wire = the default value |
//! | proto3 `optional`, proto2 `optional`/`required`, message-typed, oneof member | `["null", T]` | |
//! | `oneof` | one `["null", T]` field per member | at most one set |
//! | `repeated T` | `array<T>` | packed or not as declared (proto3 numeric: packed) |
//! | `map<string, V>` | `map<V>` | entries in wire order |
//! | `map<K, V>`, K not `string` | `array<record {key: K, value: V}>` | entries in wire order |
//! | `google.protobuf.Timestamp` | `["null", timestamp-micros]` | nanos must be a multiple of 1000 |
//! | `google.protobuf.Duration` | `["null", record {seconds: long, nanos: int}]` | its plain message mapping |
//! | wrappers (`Int32Value`, …, `BytesValue`) | `["null", T]` | T: the wrapped scalar's mapping |
//! | `Any`, `FieldMask`, other non-recursive messages | their plain message mapping | |
//! | `Struct`, `Value`, `ListValue`, any recursive message | [`SchemaError::Unsupported`] | the whole schema goes raw |
//! | `Empty`, any message without fields | [`SchemaError::Unsupported`] (by the Avro compiler) | a record without columns |
//! | proto2 groups | [`SchemaError::Unsupported`] | |
//!
//! A map's value and a repeated field's element are never null (`array<T>`, `map<V>`, with a
//! message `V` as a plain record): Protobuf cannot write a missing one.
//!
//! # The lossless rule
//!
//! A value goes to columns only if transcoding its datum back gives its bytes exactly. The
//! transcoder checks that itself, inline, in its one reading of the bytes
//! ([`Transcoder::checks_canonical`](crate::transcode::Transcoder::checks_canonical)): the
//! decoder (`message_to_avro`) refuses every message the encoder (`avro_to_message`) would not
//! write the same way, so release builds skip the way back ([`crate::decode::ValueColumns::append`];
//! debug builds still transcode back and assert the bytes are equal). What the encoder writes is
//! what Java's protobuf and the Confluent/Apicurio serializers write:
//!
//! - the Confluent message-index list `[0]` as the single byte `0` (any other list: raw);
//! - fields in field-number order: the decoder refuses a field number lower than the one before
//!   it (fields out of order, or a repeated field's items not contiguous) and a singular field
//!   written twice;
//! - every varint minimal (tags, lengths, values: no trailing `0x00` byte after a continuation);
//!   `int32` and enum numbers sign-extended to 64 bits (a negative one in exactly ten bytes, a
//!   non-negative one without the upper bits), `uint32`/`sint32` within 32 bits, a `bool` as the
//!   single byte `0` or `1`;
//! - proto3 implicit-presence fields omitted when they hold their default (zero, empty,
//!   `false`, a float whose bits are zero — `-0.0` is not the default —, enum number 0): a
//!   default written out goes raw;
//! - a repeated field packed or not as declared (the other form: raw); a packed one as exactly
//!   one run with at least one item (an empty run, or a second run, goes raw);
//! - map entries exactly as Java writes them: key (tag 1) then value (tag 2), both always
//!   written even when default, nothing else; a key repeated goes raw (the columns would keep
//!   both);
//! - a Timestamp as `seconds` then `nanos`, each omitted when zero (a zero written out goes
//!   raw), nanos in `0..1e9` and whole microseconds, within Protobuf's range (0001-01-01 to
//!   9999-12-31);
//! - a wrapper as its field 1, omitted when the wrapped value is the default (an empty
//!   wrapper), so a default written out goes raw.
//!
//! The decoder also sends raw what a column cannot hold or would misrepresent: an unknown field
//! number (extensions included), a wrong wire type, an unknown enum number, two members of one
//! oneof, a string that is not UTF-8, truncated bytes. Its errors
//! ([`Fallback::Transcode`](crate::decode::Fallback::Transcode)) say what and at which byte of the
//! payload. Nothing here panics on any input; memory is bounded by the input (times the schema's
//! size, for the defaults of absent fields).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost_reflect::{Cardinality, DescriptorPool, EnumDescriptor, Kind, MessageDescriptor};
use protox::file::{File, FileResolver, GoogleFileResolver};
use serde_json::{json, Value as Json};

use crate::avro::SchemaError;
use crate::transcode::Compiled;

mod codec;
#[cfg(test)]
mod tests;

use codec::{Card, EnumInfo, Field, Msg, ProtobufTranscoder, Scalar, Value};

/// The name the writer schema's own text is compiled under (its imports are resolved by path).
const MAIN_FILE: &str = "__calving_writer_schema__.proto";

/// The namespace prefix of every Avro name made from a Protobuf full name (so that a message of
/// a file without a package never inherits an enclosing record's namespace).
const AVRO_NAMESPACE: &str = "protobuf";

/// Compiles a Protobuf schema (and the texts of its references, by import path) for columns:
/// the Avro schema of its first top-level message, and the transcoder to it.
pub fn compile(schema: &str, references: &BTreeMap<String, String>) -> Result<Compiled, SchemaError> {
    let (transcoder, avro) = transcoder(schema, references)?;
    Ok(Compiled { avro, transcoder: Arc::new(transcoder) })
}

/// The transcoder of [`compile`] and its Avro schema.
fn transcoder(schema: &str, references: &BTreeMap<String, String>) -> Result<(ProtobufTranscoder, Json), SchemaError> {
    let pool = descriptor_pool(schema, references)?;
    let file = pool
        .get_file_by_name(MAIN_FILE)
        .ok_or_else(|| parse_error("the compiled file is missing".into()))?;
    let root = file
        .messages()
        .next()
        .ok_or_else(|| SchemaError::Unsupported { path: String::new(), what: "a Protobuf schema without messages".into() })?;
    let mut b = Builder::default();
    let (root_index, avro) = b.message(&root, "")?;
    Ok((ProtobufTranscoder::new(b.messages, root_index), avro))
}

fn parse_error(reason: String) -> SchemaError {
    SchemaError::Parse { reason: format!("Protobuf schema: {reason}") }
}

/// The writer schema's text, its references by import path, Google's well-known types.
struct Sources {
    main: String,
    references: BTreeMap<String, String>,
}

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == MAIN_FILE {
            return File::from_source(name, &self.main);
        }
        // protox's copies first: the well-known-type mapping relies on their definitions.
        if name.starts_with("google/protobuf/") {
            if let Ok(file) = GoogleFileResolver::new().open_file(name) {
                return Ok(file);
            }
        }
        match self.references.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn descriptor_pool(schema: &str, references: &BTreeMap<String, String>) -> Result<DescriptorPool, SchemaError> {
    let sources = Sources { main: schema.to_string(), references: references.clone() };
    let mut compiler = protox::Compiler::with_file_resolver(sources);
    compiler.include_imports(true);
    compiler.open_file(MAIN_FILE).map_err(|e| parse_error(e.to_string()))?;
    Ok(compiler.descriptor_pool())
}

fn avro_name(full_name: &str) -> String {
    format!("{AVRO_NAMESPACE}.{full_name}")
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Messages and enums compiled so far (each named type is defined once in the Avro schema, then
/// referenced by name).
#[derive(Default)]
struct Builder {
    messages: Vec<Msg>,
    message_index: HashMap<String, usize>,
    enums: HashMap<String, Arc<EnumInfo>>,
    /// Messages being compiled: meeting one again is recursion.
    open: Vec<String>,
}

impl Builder {
    fn message(&mut self, m: &MessageDescriptor, path: &str) -> Result<(usize, Json), SchemaError> {
        let full = m.full_name();
        if let Some(&i) = self.message_index.get(full) {
            return Ok((i, Json::String(avro_name(full))));
        }
        if self.open.iter().any(|o| o == full) {
            return Err(SchemaError::Unsupported { path: path.to_string(), what: format!("recursive message {full}") });
        }
        self.open.push(full.to_string());
        let mut fields = Vec::new();
        let mut avro_fields = Vec::new();
        let mut oneofs: Vec<String> = Vec::new();
        for proto in &m.descriptor_proto().field {
            let f = m
                .get_field_by_name(proto.name())
                .ok_or_else(|| parse_error(format!("field {} of {full} not found", proto.name())))?;
            let p = join(path, f.name());
            let unsupported = |what: String| SchemaError::Unsupported { path: p.clone(), what };
            if f.is_group() {
                return Err(unsupported("a proto2 group".into()));
            }
            let (card, value, avro_type) = if f.is_map() {
                let Kind::Message(entry) = f.kind() else {
                    return Err(unsupported("a map without an entry message".into()));
                };
                let key_field = entry.map_entry_key_field();
                let value_field = entry.map_entry_value_field();
                let key = Scalar::of(&key_field.kind()).ok_or_else(|| unsupported("a map key that is not a scalar".into()))?;
                let (value, value_avro) = self.value(&value_field.kind(), &p)?;
                let key_avro = key.avro();
                let string_key = key == Scalar::String;
                let avro = if string_key {
                    json!({"type": "map", "values": value_avro})
                } else {
                    json!({"type": "array", "items": {
                        "type": "record",
                        "name": avro_name(entry.full_name()),
                        "fields": [{"name": "key", "type": key_avro}, {"name": "value", "type": value_avro}],
                    }})
                };
                (Card::Map { key }, value, avro)
            } else {
                let (value, avro) = self.value(&f.kind(), &p)?;
                if f.is_list() {
                    // The declared option first: prost-reflect 0.16's is_packed() ignores an
                    // explicit `packed` option on descriptors protox builds (its syntax default
                    // is right).
                    let declared = f.field_descriptor_proto().options.as_ref().and_then(|o| o.packed);
                    let packed = declared.unwrap_or_else(|| f.is_packed()) && value.packable();
                    (Card::Repeated { packed }, value, json!({"type": "array", "items": avro}))
                } else if f.supports_presence() || f.cardinality() == Cardinality::Required || value.always_present() {
                    (Card::Optional, value, json!(["null", avro]))
                } else {
                    (Card::Implicit, value, avro)
                }
            };
            let oneof = match f.containing_oneof() {
                Some(o) if !o.is_synthetic() => {
                    let name = o.name().to_string();
                    Some(match oneofs.iter().position(|n| *n == name) {
                        Some(i) => i,
                        None => {
                            oneofs.push(name);
                            oneofs.len() - 1
                        }
                    })
                }
                _ => None,
            };
            let number = f.number();
            fields.push(Field::new(f.name().to_string(), number, card, value, oneof));
            avro_fields.push(json!({"name": f.name(), "type": avro_type}));
        }
        self.open.pop();
        let index = self.messages.len();
        self.messages.push(Msg::new(full.to_string(), fields, oneofs.len()));
        self.message_index.insert(full.to_string(), index);
        Ok((index, json!({"type": "record", "name": avro_name(full), "fields": avro_fields})))
    }

    fn value(&mut self, kind: &Kind, path: &str) -> Result<(Value, Json), SchemaError> {
        if let Some(s) = Scalar::of(kind) {
            return Ok((Value::Scalar(s), s.avro()));
        }
        match kind {
            Kind::Enum(e) => Ok(self.enumeration(e)),
            Kind::Message(m) => {
                if let Some(wk) = well_known(m) {
                    return Ok(wk);
                }
                let (i, avro) = self.message(m, path)?;
                Ok((Value::Message(i), avro))
            }
            _ => Err(SchemaError::Unsupported { path: path.to_string(), what: format!("Protobuf type {kind:?}") }),
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptor) -> (Value, Json) {
        let full = e.full_name();
        if let Some(info) = self.enums.get(full) {
            return (Value::Enum(info.clone()), Json::String(avro_name(full)));
        }
        let values: Vec<(String, i32)> = e
            .enum_descriptor_proto()
            .value
            .iter()
            .map(|v| (v.name().to_string(), v.number()))
            .collect();
        let symbols: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        let avro = json!({"type": "enum", "name": avro_name(full), "symbols": symbols});
        let info = Arc::new(EnumInfo::new(values.iter().map(|(_, n)| *n).collect()));
        self.enums.insert(full.to_string(), info.clone());
        (Value::Enum(info), avro)
    }
}

/// Google's Timestamp and wrapper messages, checked by shape as well as by name.
fn well_known(m: &MessageDescriptor) -> Option<(Value, Json)> {
    let full = m.full_name();
    let rest = full.strip_prefix("google.protobuf.")?;
    let fields: Vec<(u32, Option<Scalar>, bool)> = m
        .fields()
        .map(|f| (f.number(), Scalar::of(&f.kind()), f.is_list() || f.supports_presence()))
        .collect();
    if rest == "Timestamp" {
        return (fields == [(1, Some(Scalar::Int64), false), (2, Some(Scalar::Int32), false)])
            .then(|| (Value::Timestamp, json!({"type": "long", "logicalType": "timestamp-micros"})));
    }
    let wrapped = match rest {
        "DoubleValue" => Scalar::Double,
        "FloatValue" => Scalar::Float,
        "Int64Value" => Scalar::Int64,
        "UInt64Value" => Scalar::Uint64,
        "Int32Value" => Scalar::Int32,
        "UInt32Value" => Scalar::Uint32,
        "BoolValue" => Scalar::Bool,
        "StringValue" => Scalar::String,
        "BytesValue" => Scalar::Bytes,
        _ => return None,
    };
    (fields == [(1, Some(wrapped), false)]).then(|| (Value::Wrapper(wrapped), wrapped.avro()))
}
