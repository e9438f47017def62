//! Writer schemas of the registry's other formats (Protobuf, JSON Schema), seen as Avro.
//!
//! A Protobuf or JSON Schema writer schema is compiled into two things: an **Avro schema** with
//! the same shape (what its values become as columns: the Avro type mapping of [`crate::avro`]
//! then gives the Iceberg types, [`crate::avro::evolve`] the field ids by name path), and a
//! [`Transcoder`] between the format's bytes and the Avro binary datum of that schema. Every
//! step after it is the Avro path, unchanged: decoding into columns, schema evolution, the
//! re-encoding when serving.
//!
//! **Lossless.** A value goes to the columns only if transcoding its datum back gives exactly its
//! bytes: [`crate::decode::ValueColumns::append`] transcodes the payload to Avro, back again, and
//! compares, so a transcoder needs no notion of canonical form of its own (a field order, a
//! packed or unpacked repeated field, a default value written out, a number spelled `1.0` or
//! `1`: whatever `from_avro` would not write the same way goes raw).
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

/// What precedes a payload's message in its bytes (after the Confluent header, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFraming {
    /// After the Confluent header (magic byte, schema id): Protobuf payloads start with the
    /// message-index list (a single `0` byte for the first message).
    Confluent,
    /// Bare bytes of one writer schema (`value_schema_latest`): the message alone.
    Bare,
}

/// Between one format's bytes and the Avro datum of the compiled schema.
pub trait Transcoder: Send + Sync + Debug {
    /// The format's name, for messages (`protobuf`, `json`).
    fn format(&self) -> &'static str;

    /// Appends to `avro` the Avro binary datum of `payload` (the bytes after the Confluent
    /// header, or the bare value). An `Err` sends the value raw: it does not decode with the
    /// schema, or holds something the datum cannot (an unknown field, an unknown enum number, a
    /// message other than the schema's). Whether `from_avro` gives `payload` back is checked by
    /// the caller. On `Err`, `avro` may hold a partial datum (the caller truncates it).
    fn to_avro(&self, payload: &[u8], framing: PayloadFraming, avro: &mut Vec<u8>) -> Result<(), Fallback>;

    /// Appends to `out` the format's bytes of an Avro datum of the compiled schema (one that
    /// `to_avro` wrote, or that was re-encoded from columns it filled). An `Err` says why the
    /// datum has no such bytes (a bug, or columns that were changed by someone else).
    fn from_avro(&self, avro: &[u8], framing: PayloadFraming, out: &mut Vec<u8>) -> Result<(), String>;
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
}

impl Envelope {
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

    /// Compiles the schema for columns.
    pub fn compile(&self) -> Result<Compiled, SchemaError> {
        match self.schema_type.as_str() {
            "PROTOBUF" => crate::protobuf::compile(&self.schema, &self.references),
            "JSON" => crate::json::compile(&self.schema, &self.references),
            other => Err(SchemaError::Parse { reason: format!("unknown schema type {other}") }),
        }
    }
}
