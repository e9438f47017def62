//! Typed values and keys (schema modes): the value's Avro record fields as top-level columns, with
//! the raw `value` column as the fallback; the key's fields as the top-level `key` struct, with the
//! raw `kafka.key` as the fallback (the key schema modes).
//!
//! [`TypedValues`] sits inside [`crate::rows::RowsBuilder`] (one for values, one for keys) and
//! decides, value by value, where a record's value (key) goes (DESIGN.md "Table layout", issue 4).
//! For values:
//!
//! | value | value columns | `value` (raw fallback) | `kafka.value_schema_id` |
//! |---|---|---|---|
//! | null (tombstone) | null | null | null |
//! | decoded, re-encodes byte-identically | the fields | null | writer schema id |
//! | anything else (not framed, bad magic, unknown or unusable schema id, malformed, not canonical, a type conflict) | null | the original bytes | null |
//!
//! So the three kinds of rows are told apart by the two nullable columns alone, and a consumer is
//! always served the original bytes: from `value`, or re-encoded from the columns with the writer
//! schema the row names ([`crate::served`]), whose text the segment's sidecar keeps
//! ([`WriterSchemas`]): serving never needs the registry.
//!
//! **Framing.** [`Framing::Prefixed`] (`value_schema_id_prefix`): each value is in the Confluent
//! wire format (magic byte 0, 4-byte schema id, Avro binary) and is decoded with the writer schema
//! of its id. [`Framing::Plain`] (`value_schema_latest`): values are bare Avro binary, decoded with
//! one schema (the subject's latest when the segment was copied); served without a header.
//!
//! The writer schemas are resolved before the conversion (calving-rsm asks the registry), so this
//! module stays pure: an id it was not given a decoder for goes to the raw fallback.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::Int32Builder;
use arrow_array::{ArrayRef, Int32Array, RecordBatch};
use arrow_schema::FieldRef;
use calving_schema::transcode::Envelope;
use calving_schema::{wire, Decoder, RowEncoder, SchemaId, ValueColumns, WriterSchema};

use crate::error::LayoutError;
use crate::sidecar::Sidecar;

/// How values carry their writer schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary.
    Prefixed,
    /// Bare Avro binary, one writer schema for the segment.
    Plain,
}

impl Framing {
    pub(crate) fn id(self) -> u8 {
        match self {
            Framing::Prefixed => 1,
            Framing::Plain => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Framing> {
        match id {
            1 => Some(Framing::Prefixed),
            2 => Some(Framing::Plain),
            _ => None,
        }
    }
}

/// The writer schemas a segment's rows use, as the sidecar keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterSchemas {
    pub framing: Framing,
    /// Schema id → the schema's text as the registry returned it.
    pub schemas: BTreeMap<SchemaId, String>,
}

/// One writer schema the conversion may decode with.
#[derive(Clone, Debug)]
pub struct WriterEntry {
    pub id: SchemaId,
    pub writer: Arc<WriterSchema>,
    /// The schema's text (kept in the sidecar).
    pub text: String,
}

/// Counters of a conversion in a schema mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypedStats {
    /// Values in columns.
    pub in_columns: u64,
    /// Values kept in the raw fallback.
    pub raw: u64,
    /// Null values.
    pub tombstones: u64,
}

/// Decides and builds the value columns of rows (see the module doc).
pub struct TypedValues {
    framing: Framing,
    columns: ValueColumns,
    decoders: HashMap<SchemaId, (Decoder, String)>,
    /// For [`Framing::Plain`]: the one writer.
    plain: Option<SchemaId>,
    schema_ids: Int32Builder,
    used: BTreeMap<SchemaId, String>,
    stats: TypedStats,
}

impl std::fmt::Debug for TypedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedValues")
            .field("framing", &self.framing)
            .field("writers", &self.decoders.keys().collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish()
    }
}

impl TypedValues {
    /// Value columns `columns` (the table's, see [`ValueColumns::new`]) filled from values
    /// written with `writers`. A writer whose fields do not fit the columns is left out (its
    /// values go raw); the caller resolved and logged that already. For [`Framing::Plain`],
    /// `writers` holds the one schema values are decoded with (none: every value goes raw).
    pub fn new(framing: Framing, columns: ValueColumns, writers: impl IntoIterator<Item = WriterEntry>) -> TypedValues {
        let mut decoders = HashMap::new();
        let mut plain = None;
        for w in writers {
            let d = match framing {
                Framing::Prefixed => columns.decoder(w.writer),
                Framing::Plain => columns.decoder(w.writer).bare(),
            };
            if let Some(conflict) = d.conflict() {
                tracing::debug!(schema_id = w.id, conflict, "writer schema does not fit the value columns; its values stay raw");
                continue;
            }
            plain = Some(w.id);
            decoders.insert(w.id, (d, w.text));
        }
        if framing == Framing::Plain && decoders.len() > 1 {
            plain = None;
            decoders.clear();
        }
        TypedValues {
            framing,
            columns,
            decoders,
            plain,
            schema_ids: Int32Builder::new(),
            used: BTreeMap::new(),
            stats: TypedStats::default(),
        }
    }

    /// A new start over the same columns and writer schemas, nothing appended or counted (a
    /// conversion that reads its segment again for other table partitions).
    pub fn restart(&self) -> Result<TypedValues, LayoutError> {
        let columns = self.columns.fresh().map_err(|e| LayoutError::Typed(e.to_string()))?;
        let writers: Vec<WriterEntry> = self
            .decoders
            .iter()
            .map(|(&id, (d, text))| WriterEntry { id, writer: Arc::clone(d.writer()), text: text.clone() })
            .collect();
        let mut again = TypedValues::new(self.framing, columns, writers);
        // The Protobuf message-index spellings this pass learned: the next pass takes the same
        // values to columns, and the sidecar keeps one text per writer.
        for (id, (d, _)) in &mut again.decoders {
            if let Some((learned, _)) = self.decoders.get(id) {
                d.set_message_indexes(learned.message_indexes());
            }
        }
        Ok(again)
    }

    /// Protobuf writer `id`: its values must spell the message-index list `[0]` as `indexes`
    /// (the spelling most of the segment's values use); values with the other go raw.
    pub fn set_message_indexes(&mut self, id: SchemaId, indexes: &[u8]) {
        if let Some((d, _)) = self.decoders.get_mut(&id) {
            d.set_message_indexes(Some(indexes));
        }
    }

    pub fn stats(&self) -> TypedStats {
        self.stats
    }

    /// Appends one row's value columns; returns what the raw `value` column keeps (the original
    /// bytes when the value is not in columns, else `None`).
    pub fn append<'v>(&mut self, value: Option<&'v [u8]>) -> Option<&'v [u8]> {
        let Some(bytes) = value else {
            self.columns.append_null();
            self.schema_ids.append_null();
            self.stats.tombstones += 1;
            return None;
        };
        let (id, payload) = match self.framing {
            Framing::Prefixed => match wire::parse(bytes) {
                Ok(f) => (Some(f.schema_id), f.payload),
                Err(_) => (None, bytes),
            },
            Framing::Plain => (self.plain, bytes),
        };
        if let Some((id, (decoder, text))) = id.and_then(|id| self.decoders.get_mut(&id).map(|d| (id, d))) {
            if self.columns.append(decoder, payload).is_ok() {
                self.schema_ids.append_value(id);
                // Protobuf: the message-index spelling these values use is part of the text
                // the sidecar keeps (serving writes it back).
                let indexes = decoder.message_indexes();
                self.used.entry(id).or_insert_with(|| match indexes {
                    Some(indexes) => Envelope::with_message_indexes(text, indexes),
                    None => text.clone(),
                });
                self.stats.in_columns += 1;
                return None;
            }
        } else {
            self.columns.append_null();
        }
        self.schema_ids.append_null();
        self.stats.raw += 1;
        Some(bytes)
    }

    /// The value columns (by field) and the `kafka.value_schema_id` column of the rows appended
    /// since the last call.
    pub fn finish(&mut self) -> Result<(Vec<(FieldRef, ArrayRef)>, Int32Array), LayoutError> {
        let fields = self.columns.fields();
        let arrays = self.columns.finish().map_err(|e| LayoutError::Typed(e.to_string()))?;
        Ok((fields.into_iter().zip(arrays).collect(), self.schema_ids.finish()))
    }

    /// Keeps writer schema `id` in the sidecar although this conversion may not use it: rows
    /// that an earlier commit of the same offsets wrote, and that the segment reuses, name it.
    pub fn keep_schema(&mut self, id: SchemaId, text: String) {
        self.used.entry(id).or_insert(text);
    }

    /// The writer schemas the rows so far use (for the sidecar).
    pub fn writer_schemas(&self) -> WriterSchemas {
        WriterSchemas { framing: self.framing, schemas: self.used.clone() }
    }
}

/// Which part of a record a writer schema encodes, with the columns it reads.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    /// The value: the batch's top-level value columns.
    Value(&'a RecordBatch),
    /// The key: the `key` struct's fields.
    Key(&'a RecordBatch),
}

/// Compiled writer schemas of sidecars, for re-encoding values and keys when serving, and
/// each one resolved against the batch being served ([`RowEncoder`]: columns looked up and
/// downcast once per batch, not per row).
#[derive(Debug, Default)]
pub struct WriterCache {
    by_segment: HashMap<([u8; 16], &'static str, SchemaId), Arc<WriterSchema>>,
    /// Encoders of the batch being served, per part: an encoder holds its batch's arrays, so
    /// those of earlier batches are dropped as soon as a part moves on to another batch.
    encoders: Vec<(EncoderKey, RowEncoder)>,
}

type EncoderKey = ([u8; 16], &'static str, SchemaId);

impl WriterCache {
    /// The writer schema `id` of the segment `segment_id` whose writer schemas (of values or of
    /// keys, as `section` names them) are `schemas`.
    pub fn get(
        &mut self,
        segment_id: [u8; 16],
        section: &'static str,
        schemas: &WriterSchemas,
        id: SchemaId,
    ) -> Result<Arc<WriterSchema>, LayoutError> {
        let key = (segment_id, section, id);
        if let Some(w) = self.by_segment.get(&key) {
            return Ok(w.clone());
        }
        let text = schemas.schemas.get(&id).ok_or_else(|| LayoutError::Sidecar {
            section,
            reason: format!("a row names writer schema {id}, which the sidecar does not hold"),
        })?;
        let w =
            Arc::new(WriterSchema::parse(text).map_err(|e| LayoutError::Sidecar { section, reason: format!("writer schema {id}: {e}") })?);
        if self.by_segment.len() > 4096 {
            self.by_segment.clear();
        }
        self.by_segment.insert(key, w.clone());
        Ok(w)
    }

    /// Re-encodes row `row` of `part` with writer schema `id` of the sidecar (with the
    /// Confluent header for [`Framing::Prefixed`]) into `out`, which is cleared first.
    pub fn encode(&mut self, sidecar: &Sidecar, part: Part<'_>, id: SchemaId, row: usize, out: &mut Vec<u8>) -> Result<(), LayoutError> {
        let (section, schemas, batch) = match part {
            Part::Value(b) => (VALUE_SCHEMAS, &sidecar.value_schemas, b),
            Part::Key(b) => (KEY_SCHEMAS, &sidecar.key_schemas, b),
        };
        let schemas = schemas.as_ref().ok_or_else(|| LayoutError::Sidecar {
            section,
            reason: format!("a row is in columns (writer schema {id}), the sidecar has no {section}"),
        })?;
        let key = (sidecar.segment.segment_id, section, id);
        let at = match self.encoders.iter().position(|(k, e)| *k == key && e.is_for(batch)) {
            Some(at) => at,
            None => {
                let writer = self.get(key.0, section, schemas, id)?;
                self.encoders.retain(|((_, s, _), e)| *s != section || e.is_for(batch));
                let encoder = match schemas.framing {
                    Framing::Prefixed => RowEncoder::new(&writer, batch),
                    Framing::Plain => RowEncoder::new(&writer, batch).bare(),
                };
                self.encoders.push((key, encoder));
                self.encoders.len() - 1
            }
        };
        out.clear();
        if schemas.framing == Framing::Prefixed {
            wire::write(id, &[], out);
        }
        self.encoders[at]
            .1
            .encode(row, out)
            .map_err(|e| LayoutError::Typed(format!("re-encoding with writer schema {id} ({section}): {e}")))
    }
}

const VALUE_SCHEMAS: &str = "value schemas";
const KEY_SCHEMAS: &str = "key schemas";
