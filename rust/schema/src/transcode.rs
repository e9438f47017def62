//! Writer schemas of the registry's other formats (Protobuf, JSON Schema), seen as Avro.
//!
//! A Protobuf or JSON Schema writer schema is compiled into two things: an **Avro schema** with
//! the same shape (what its values become as columns: the Avro type mapping of [`crate::avro`]
//! then gives the Iceberg types, [`crate::avro::evolve`] the field ids by name path), and a
//! [`Transcoder`] between the format's bytes and the Avro binary datum of that schema. Every
//! step after it is the Avro path, unchanged: decoding into columns, schema evolution, the
//! re-encoding when serving.
//!
//! **Lossless.** A value goes to columns only if transcoding its datum back gives exactly its
//! bytes: [`crate::decode::ValueColumns::append`] transcodes the message to Avro, back again, and
//! compares (a field order, a packed or unpacked repeated field, a default value written out, a
//! number spelled `1.0` or `1`: whatever `avro_to_message` would not write the same way goes
//! raw). A transcoder that checks the canonical form inline while transcoding in
//! ([`Transcoder::checks_canonical`]: both of ours do) lets release builds skip the way back,
//! the conversion's largest cost after the decode itself; debug builds still transcode back and
//! assert the bytes are equal, and each transcoder's property tests hold the inline check to the
//! round trip (accepted exactly when the round trip gives the bytes back).
//!
//! **What the sidecar keeps.** The registry's text of such a schema is wrapped in an
//! [`Envelope`] (its type, its text, the texts of its references by name), which
//! [`crate::WriterSchema::parse`] recognises: serving needs no registry for these formats either.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::avro::SchemaError;
use crate::decode::Fallback;

/// What precedes a value's payload besides the Confluent header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFraming {
    /// After the Confluent header (magic byte, schema id): a Protobuf payload starts with its
    /// message-index list. That list is framing, handled by the decoder and encoder around the
    /// transcoder: only the two spellings of `[0]` (the schema's first message) go to columns,
    /// `00` (Confluent's serializers) and `02 00` (Apicurio's), and each segment's sidecar keeps
    /// the spelling its values use ([`Envelope::message_indexes`]).
    Confluent,
    /// Bare bytes of one writer schema (`value_schema_latest`): the message alone.
    Bare,
}

/// The spellings of the message-index list `[0]` that go to columns: Confluent's short form
/// and the zig-zag count-then-indexes form Apicurio writes.
pub const FIRST_MESSAGE_INDEXES: [&[u8]; 2] = [&[0x00], &[0x02, 0x00]];

/// Between one format's message bytes and the Avro datum of the compiled schema.
pub trait Transcoder: Send + Sync + Debug {
    /// The format's name, for messages (`protobuf`, `json`).
    fn format(&self) -> &'static str;

    /// Whether Confluent-framed payloads of this format start with a message-index list
    /// (Protobuf's do).
    fn message_indexes(&self) -> bool {
        false
    }

    /// Whether `message_to_avro` itself refuses every message that `avro_to_message` would not
    /// give back byte for byte (it checks the canonical form inline). Then the caller skips the
    /// way back in release builds; debug builds still transcode back and assert the bytes are
    /// equal, so every test run checks the claim.
    fn checks_canonical(&self) -> bool {
        false
    }

    /// Whether every string `message_to_avro` writes into a datum was checked as UTF-8 (then
    /// the Avro decoder reading the datum does not check them again).
    fn checks_utf8(&self) -> bool {
        false
    }

    /// Appends to `avro` the Avro binary datum of `message` (a value's bytes after the Confluent
    /// header and any message-index list, or the bare value). An `Err` sends the value raw: it
    /// does not decode with the schema, or holds something the datum cannot (an unknown field,
    /// an unknown enum number). Whether `avro_to_message` gives `message` back is checked by the
    /// caller. On `Err`, `avro` may hold a partial datum (the caller truncates it).
    fn message_to_avro(&self, message: &[u8], avro: &mut Vec<u8>) -> Result<(), Fallback>;

    /// Appends to `out` the message bytes of an Avro datum of the compiled schema (one that
    /// `message_to_avro` wrote, or that was re-encoded from columns it filled). An `Err` says why the
    /// datum has no such bytes (a bug, or columns that were changed by someone else).
    fn avro_to_message(&self, avro: &[u8], out: &mut Vec<u8>) -> Result<(), String>;
}

/// A schema of another format compiled for columns: the Avro schema (JSON) of its values and the
/// transcoder to it.
pub struct Compiled {
    /// An Avro schema whose binary datums the transcoder reads and writes.
    pub avro: serde_json::Value,
    /// The transcoder.
    pub transcoder: Arc<dyn Transcoder>,
}

/// The key that marks an [`Envelope`] (an Avro schema never has it).
pub const ENVELOPE_KEY: &str = "calving.schemaType";

/// A registry schema of another format as Calving keeps it (the sidecar's text of a writer
/// schema): self-contained, references included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `PROTOBUF` or `JSON`, as the registry names it.
    #[serde(rename = "calving.schemaType")]
    pub schema_type: String,
    /// The schema's text, verbatim.
    pub schema: String,
    /// The texts of the schemas it references, by the name it references them with (a
    /// Protobuf import path, a JSON Schema `$ref`), references of references included.
    #[serde(default)]
    pub references: BTreeMap<String, String>,
    /// Protobuf in the Confluent wire format: the bytes (hex) of the message-index list that
    /// the values of one segment use (`0200`, Apicurio's); absent for `00`, Confluent's. Set in
    /// a sidecar's copy of the text, never by the registry.
    #[serde(default, rename = "messageIndexes", skip_serializing_if = "Option::is_none")]
    pub message_indexes: Option<String>,
}

impl Envelope {
    /// The envelope of a registry's schema: its type (`PROTOBUF`, `JSON`), text and
    /// references' texts by name.
    pub fn new(schema_type: impl Into<String>, schema: impl Into<String>, references: BTreeMap<String, String>) -> Envelope {
        Envelope { schema_type: schema_type.into(), schema: schema.into(), references, message_indexes: None }
    }

    /// The envelope's text (JSON), what [`crate::WriterSchema::parse`] reads back.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serializes")
    }

    /// The envelope in `json`, if it is one (an object with [`ENVELOPE_KEY`]).
    pub fn of(json: &serde_json::Value) -> Option<Result<Envelope, SchemaError>> {
        let object = json.as_object()?;
        object.get(ENVELOPE_KEY)?;
        Some(serde_json::from_value(json.clone()).map_err(|e| SchemaError::Parse { reason: format!("writer schema envelope: {e}") }))
    }

    /// `text` (an envelope's) with its values' message-index list set to `indexes`; `text` as
    /// it is if that is the default `00`, or if it is not an envelope.
    pub fn with_message_indexes(text: &str, indexes: &[u8]) -> String {
        if indexes == FIRST_MESSAGE_INDEXES[0] {
            return text.to_string();
        }
        let Some(Ok(mut envelope)) = serde_json::from_str(text).ok().as_ref().and_then(Envelope::of) else {
            return text.to_string();
        };
        envelope.message_indexes = Some(indexes.iter().map(|b| format!("{b:02x}")).collect());
        envelope.to_text()
    }

    /// The message-index list's bytes this envelope records (`00` if none).
    pub(crate) fn message_index_bytes(&self) -> Result<Vec<u8>, SchemaError> {
        let Some(hex) = &self.message_indexes else {
            return Ok(FIRST_MESSAGE_INDEXES[0].to_vec());
        };
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        match bytes {
            Some(b) if FIRST_MESSAGE_INDEXES.contains(&b.as_slice()) => Ok(b),
            _ => Err(SchemaError::Parse { reason: format!("writer schema envelope: message indexes {hex:?} are not [0]") }),
        }
    }

    /// Compiles the schema for columns.
    pub fn compile(&self) -> Result<Compiled, SchemaError> {
        match self.schema_type.as_str() {
            "PROTOBUF" => crate::protobuf::compile(&self.schema, &self.references),
            "JSON" => crate::json::compile(&self.schema, &self.references),
            other => Err(SchemaError::Parse { reason: format!("unknown schema type {other}") }),
        }
    }
}
