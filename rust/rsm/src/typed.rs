//! The schema modes in a copy (`value.mode` = `value_schema_id_prefix` | `value_schema_latest`,
//! `key.mode` = `key_schema_id_prefix` | `key_schema_latest`): which writer schemas a segment's
//! values and keys use, the table schema they need, and the [`TypedValues`] that put each value
//! (key) in columns or in the raw fallback (`calving_layout::typed`). Keys go through the same
//! steps as values; their columns are the fields of the top-level `key` struct, their schema ids
//! `kafka.key_schema_id`, their raw fallback `kafka.key`.
//!
//! Before any byte is written:
//! 1. **Writer schemas.** `value_schema_id_prefix`: one pass over the segment collects the schema
//!    ids of the values in the Confluent wire format; each id is asked of the Schema Registry
//!    (cached: one request per id for the plugin's lifetime). `value_schema_latest`: the latest
//!    version of the topic's subject. A registry that does not answer fails the copy
//!    ([`RsmError::SchemaRegistry`], retriable: Kafka keeps its data and retries): never a
//!    degraded table. An id the registry says does not exist (or whose schema is not usable for
//!    columns) sends its values to the raw fallback. Avro, Protobuf and JSON Schema writers take
//!    the same path (`calving_schema::transcode`: the latter two are seen as Avro).
//! 2. **Table schema.** The table's current schema gains `kafka.value_schema_id` (optional int)
//!    if it lacks it, and each writer schema is merged in with `calving_schema::evolve` (field
//!    ids stable by name path). A writer with a type change Iceberg cannot express keeps its
//!    values raw, and this is logged once per (topic, schema id) for the plugin's lifetime. A
//!    changed schema is committed before the data (`calving_table::commit_schema`); if another
//!    writer evolved the table meanwhile, the table is reloaded and merged again.
//! 3. **Columns.** The data files of the segment are all written with the resulting schema, so a
//!    segment never needs more than one schema; the pre-scan costs one more parse of the segment
//!    (BENCHMARKS.md, "Typed tables: Avro values beside raw", measures it with `calving bench
//!    typed`).
//!
//! Why `kafka.value_schema_id` and not a top-level column: it is a fact about the Kafka record
//! (how its value was framed), like the other `kafka.*` fields, and it keeps the top level for the
//! value's own fields: `kafka` and `value` stay the only names a value writer schema cannot use
//! (and `key`, in a table whose keys are typed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use calving_layout::schema::names;
use calving_layout::typed::{Framing, TypedValues, WriterEntry};
use calving_layout::LayoutError;
use calving_schema::transcode::FIRST_MESSAGE_INDEXES;
use calving_schema::{wire, SchemaId, ValueColumns};
use calving_segment::record::batch::DEFAULT_MAX_UNCOMPRESSED;
use calving_segment::{LogEntry, LogReader};
use iceberg::spec::{NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type};
use iceberg::table::Table;

use crate::config::{KeyMode, ValueMode};
use crate::error::{Result, RsmError};
use crate::metadata::{LogSegmentFiles, SegmentMetadata};
use crate::Inner;

/// Top-level columns that are not the value's.
const RESERVED: [&str; 2] = [names::KAFKA, names::VALUE];
/// The same, in a table with typed keys.
const RESERVED_WITH_KEYS: [&str; 3] = [names::KAFKA, names::VALUE, names::KEY_COLUMNS];

/// Values and keys of a copy in the schema modes (each `None` when its mode is raw).
pub(crate) struct Typed {
    pub values: Option<TypedValues>,
    pub keys: Option<TypedValues>,
}

/// One part of the records (values or keys) in a schema mode.
struct PartMode {
    part: &'static str,
    framing: Framing,
    /// For [`Framing::Plain`]: the subject whose latest schema decodes the part.
    subject: String,
}

fn part_modes(inner: &Inner, topic: &str, value_mode: ValueMode, key_mode: KeyMode) -> (Option<PartMode>, Option<PartMode>) {
    let values = match value_mode {
        ValueMode::KeyValue => None,
        ValueMode::SchemaIdPrefix => Some(Framing::Prefixed),
        ValueMode::SchemaLatest => Some(Framing::Plain),
    }
    .map(|framing| PartMode { part: "value", framing, subject: inner.config.value_subject(topic) });
    let keys = match key_mode {
        KeyMode::Raw => None,
        KeyMode::SchemaIdPrefix => Some(Framing::Prefixed),
        KeyMode::SchemaLatest => Some(Framing::Plain),
    }
    .map(|framing| PartMode { part: "key", framing, subject: inner.config.key_subject(topic) });
    (values, keys)
}

/// The table (evolved if needed) and the typed values and keys for a copy in a schema mode.
pub(crate) fn prepare(
    inner: &Inner,
    seg: &SegmentMetadata,
    files: &LogSegmentFiles,
    mut table: Table,
    value_mode: ValueMode,
    key_mode: KeyMode,
    reused: &ReusedIds,
) -> Result<(Table, Typed)> {
    let name = seg.to_string();
    let (value_part, key_part) = part_modes(inner, &seg.topic, value_mode, key_mode);
    let prefixed = |p: &Option<PartMode>| p.as_ref().is_some_and(|p| p.framing == Framing::Prefixed);
    let (value_ids, key_ids) = if prefixed(&value_part) || prefixed(&key_part) { schema_ids(&name, files)? } else { Default::default() };
    let (value_spellings, key_spellings) = (index_spellings(&value_ids), index_spellings(&key_ids));
    let (value_ids, key_ids): (BTreeSet<SchemaId>, BTreeSet<SchemaId>) = (value_ids.into_keys().collect(), key_ids.into_keys().collect());
    let value_writers = match &value_part {
        Some(p) => writers(inner, seg, p, &value_ids)?,
        None => Vec::new(),
    };
    let key_writers = match &key_part {
        Some(p) => writers(inner, seg, p, &key_ids)?,
        None => Vec::new(),
    };

    let mut attempt = 0;
    let (values_ok, keys_ok) = loop {
        attempt += 1;
        let merged = merge(inner, seg, &table, value_part.is_some(), &value_writers, key_part.is_some(), &key_writers)?;
        if !merged.changed {
            break (merged.values, merged.keys);
        }
        match inner.runtime.block_on(calving_table::commit_schema(&inner.catalog, &table, merged.schema)) {
            Ok(t) => {
                table = t;
                break (merged.values, merged.keys);
            }
            Err(calving_table::Error::CommitConflict { .. }) if attempt < 3 => {
                tracing::info!(segment = %seg, "the table's schema changed concurrently; merging again");
                table = inner
                    .runtime
                    .block_on(inner.catalog.load_table(&seg.topic))
                    .map_err(|source| RsmError::Table { segment: name.clone(), source: Box::new(source) })?;
            }
            Err(source) => return Err(RsmError::Table { segment: name.clone(), source: Box::new(source) }),
        }
    };
    let schema = table.metadata().current_schema().clone();
    let layout_err = |reason: String| RsmError::Layout { segment: name.clone(), source: LayoutError::Typed(reason) };
    let values = match value_part {
        Some(p) => {
            let reserved: &[&str] = if key_part.is_some() { &RESERVED_WITH_KEYS } else { &RESERVED };
            let columns = ValueColumns::new(&schema, reserved).map_err(|e| layout_err(e.to_string()))?;
            let mut typed = typed_part(inner, seg, &p, columns, values_ok);
            for (&id, &indexes) in &value_spellings {
                typed.set_message_indexes(id, indexes);
            }
            keep_reused(inner, seg, &p, &reused.values, &mut typed)?;
            Some(typed)
        }
        None => None,
    };
    let has_key_struct = schema.as_struct().field_by_name(names::KEY_COLUMNS).is_some();
    let keys = match key_part {
        // No key writer ever fitted: no `key` struct yet, every key stays raw.
        Some(_) if !has_key_struct => None,
        Some(p) => {
            let key_schema = key_struct_schema(&schema).map_err(layout_err)?;
            let columns = ValueColumns::new(&key_schema, &[]).map_err(|e| layout_err(e.to_string()))?;
            let mut typed = typed_part(inner, seg, &p, columns, keys_ok);
            for (&id, &indexes) in &key_spellings {
                typed.set_message_indexes(id, indexes);
            }
            keep_reused(inner, seg, &p, &reused.keys, &mut typed)?;
            Some(typed)
        }
        None => None,
    };
    Ok((table, Typed { values, keys }))
}

/// The writer schema ids of rows that a segment reuses from earlier commits of its offsets.
#[derive(Debug, Default)]
pub(crate) struct ReusedIds {
    pub values: BTreeSet<SchemaId>,
    pub keys: BTreeSet<SchemaId>,
}

/// Puts the writer schemas of reused rows in the sidecar: the rows were decoded when they were
/// first committed, maybe with a schema this conversion does not use (`value_schema_latest`
/// after the subject moved on), and serving them needs it. The registry keeps every version, so
/// it is asked by id; a schema it no longer has fails the copy (its rows could not be served).
fn keep_reused(inner: &Inner, seg: &SegmentMetadata, p: &PartMode, ids: &BTreeSet<SchemaId>, typed: &mut TypedValues) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let registry = registry(inner)?;
    for &id in ids {
        match inner.runtime.block_on(registry.schema_by_id(id)).map_err(|source| RsmError::SchemaRegistry { segment: seg.to_string(), source })? {
            Ok(s) => typed.keep_schema(id, s.text.clone()),
            Err(e) => {
                return Err(RsmError::Layout {
                    segment: seg.to_string(),
                    source: LayoutError::Typed(format!(
                        "rows committed earlier for these offsets have their {}s in columns with writer schema {id}, which the registry cannot give ({e})",
                        p.part
                    )),
                })
            }
        }
    }
    Ok(())
}

/// The Schema Registry the schema modes need (configure refuses them without one).
fn registry(inner: &Inner) -> Result<&calving_schema::SchemaRegistry> {
    inner.registry.as_deref().ok_or_else(|| RsmError::InvalidConfig {
        key: crate::config::SCHEMA_REGISTRY_URL.into(),
        reason: "required by the schema modes".into(),
    })
}

/// The writer schemas a part's records use: each id asked of the registry (prefixed), or the
/// subject's latest (plain).
fn writers(inner: &Inner, seg: &SegmentMetadata, p: &PartMode, ids: &BTreeSet<SchemaId>) -> Result<Vec<WriterEntry>> {
    let registry = registry(inner)?;
    let registry_err = |source| RsmError::SchemaRegistry { segment: seg.to_string(), source };
    let mut writers = Vec::new();
    match p.framing {
        Framing::Plain => match inner.runtime.block_on(registry.latest(&p.subject)) {
            Ok(s) => writers.push(WriterEntry { id: s.id, writer: s.writer.clone(), text: s.text.clone() }),
            Err(e) if e.is_fallback() => {
                inner.warn_once(&seg.topic, p.part, -1, &format!("subject {}: {e}; {}s stay raw", p.subject, p.part));
            }
            Err(e) => return Err(registry_err(e)),
        },
        Framing::Prefixed => {
            for &id in ids {
                match inner.runtime.block_on(registry.schema_by_id(id)).map_err(registry_err)? {
                    Ok(s) => writers.push(WriterEntry { id, writer: s.writer.clone(), text: s.text.clone() }),
                    Err(e) => inner.warn_once(&seg.topic, p.part, id, &format!("{e}; {}s with this id stay raw", p.part)),
                }
            }
        }
    }
    Ok(writers)
}

/// The typed part over `columns`, with the writers that fit them.
fn typed_part(inner: &Inner, seg: &SegmentMetadata, p: &PartMode, columns: ValueColumns, accepted: Vec<WriterEntry>) -> TypedValues {
    let mut usable = Vec::new();
    for w in accepted {
        match columns.decoder(w.writer.clone()).conflict() {
            Some(c) => inner.warn_once(
                &seg.topic,
                p.part,
                w.id,
                &format!("does not fit the table's columns ({c}); {}s with this id stay raw", p.part),
            ),
            None => usable.push(w),
        }
    }
    TypedValues::new(p.framing, columns, usable)
}

/// The fields of the table's `key` struct as a schema of their own (no `key` column: none).
fn key_struct_schema(table: &Schema) -> std::result::Result<Schema, String> {
    let fields = match table.as_struct().field_by_name(names::KEY_COLUMNS) {
        Some(f) => match f.field_type.as_ref() {
            Type::Struct(s) => s.fields().to_vec(),
            other => return Err(format!("the table's top-level key column is {other}, not a struct")),
        },
        None => Vec::new(),
    };
    Schema::builder().with_fields(fields).build().map_err(|e| e.to_string())
}

/// The outcome of merging writer schemas into the table's schema.
struct Merged {
    schema: Schema,
    changed: bool,
    /// The writers whose values (keys) can be columns.
    values: Vec<WriterEntry>,
    keys: Vec<WriterEntry>,
}

/// The table's schema with `kafka.value_schema_id` / `kafka.key_schema_id` (for the parts in a
/// schema mode) and every writer that fits merged in: value writers at the top level, key
/// writers into the `key` struct.
fn merge(
    inner: &Inner,
    seg: &SegmentMetadata,
    table: &Table,
    values_on: bool,
    value_writers: &[WriterEntry],
    keys_on: bool,
    key_writers: &[WriterEntry],
) -> Result<Merged> {
    let typed_err = |reason: String| RsmError::Layout { segment: seg.to_string(), source: LayoutError::Typed(reason) };
    let current = table.metadata().current_schema();
    let mut last = table.metadata().last_column_id().max(current.highest_field_id());
    let mut fields: Vec<NestedFieldRef> = current.as_struct().fields().to_vec();
    let mut changed = false;

    // The schema id columns in the kafka struct.
    let kafka_at = fields.iter().position(|f| f.name == names::KAFKA).ok_or_else(|| typed_err("the table has no kafka struct".into()))?;
    let Type::Struct(kafka_struct) = fields[kafka_at].field_type.as_ref() else {
        return Err(typed_err("kafka is not a struct".into()));
    };
    let mut kfields = kafka_struct.fields().to_vec();
    for (on, column) in [(values_on, names::VALUE_SCHEMA_ID), (keys_on, names::KEY_SCHEMA_ID)] {
        if on && !kfields.iter().any(|f| f.name == column) {
            last += 1;
            kfields.push(NestedField::optional(last, column, Type::Primitive(PrimitiveType::Int)).into());
            changed = true;
        }
    }
    fields[kafka_at] =
        Arc::new(NestedField { field_type: Box::new(Type::Struct(StructType::new(kfields))), ..(*fields[kafka_at]).clone() });
    let rebuild = |fields: Vec<NestedFieldRef>, changed: bool| {
        Schema::builder()
            .with_schema_id(current.schema_id() + i32::from(changed))
            .with_identifier_field_ids(current.identifier_field_ids())
            .with_fields(fields)
            .build()
            .map_err(|e| typed_err(e.to_string()))
    };

    // Keys: merged into the key struct's own schema, which then replaces (or becomes) `key`.
    let mut keys_ok = Vec::new();
    if keys_on {
        let at = fields.iter().position(|f| f.name == names::KEY_COLUMNS);
        let struct_id = match at {
            Some(i) => fields[i].id,
            None => {
                last += 1;
                last
            }
        };
        match key_struct_schema(&rebuild(fields.clone(), false)?) {
            Err(reason) => {
                for w in key_writers {
                    inner.warn_once(&seg.topic, "key", w.id, &format!("{reason}; keys with this id stay raw"));
                }
            }
            Ok(mut key_schema) => {
                let mut key_changed = false;
                for w in key_writers {
                    let Some(e) = evolved(inner, seg, "key", &key_schema, last, &[], w)? else {
                        continue;
                    };
                    if e.changed() {
                        tracing::info!(segment = %seg, schema_id = w.id, added = ?e.added, promoted = e.promoted.len(), "key writer schema adds columns");
                        key_schema = e.schema;
                        last = e.last_column_id;
                        key_changed = true;
                    }
                    keys_ok.push(w.clone());
                }
                // A new `key` struct only once it has fields (Parquet has no empty groups).
                if key_changed && !key_schema.as_struct().fields().is_empty() {
                    let key = Arc::new(NestedField::optional(
                        struct_id,
                        names::KEY_COLUMNS,
                        Type::Struct(StructType::new(key_schema.as_struct().fields().to_vec())),
                    ));
                    match at {
                        Some(i) => fields[i] = key,
                        None => fields.push(key),
                    }
                    changed = true;
                }
            }
        }
    }

    // Values: merged at the top level.
    let mut schema = rebuild(fields, changed)?;
    let reserved: &[&str] = if keys_on { &RESERVED_WITH_KEYS } else { &RESERVED };
    let mut values_ok = Vec::new();
    for w in value_writers {
        let Some(e) = evolved(inner, seg, "value", &schema, last, reserved, w)? else {
            continue;
        };
        if e.changed() {
            tracing::info!(segment = %seg, schema_id = w.id, added = ?e.added, promoted = e.promoted.len(), "writer schema adds columns");
            schema = e.schema;
            last = e.last_column_id;
            changed = true;
        }
        values_ok.push(w.clone());
    }
    Ok(Merged { schema, changed, values: values_ok, keys: keys_ok })
}

/// `schema` merged with writer `w`, or `None` (logged once) when a type change Iceberg cannot
/// express keeps the writer's records raw.
fn evolved(
    inner: &Inner,
    seg: &SegmentMetadata,
    part: &'static str,
    schema: &Schema,
    last: i32,
    reserved: &[&str],
    w: &WriterEntry,
) -> Result<Option<calving_schema::Evolution>> {
    let e = calving_schema::evolve(schema, last, reserved, &w.writer)
        .map_err(|e| RsmError::Layout { segment: seg.to_string(), source: LayoutError::Typed(e.to_string()) })?;
    if e.conflicts.is_empty() {
        return Ok(Some(e));
    }
    let what: Vec<String> = e.conflicts.iter().map(|c| format!("{}: table {} vs writer {}", c.path, c.table_type, c.writer_type)).collect();
    inner.warn_once(
        &seg.topic,
        part,
        w.id,
        &format!("type change Iceberg cannot express ({}); {part}s with this id stay raw", what.join(", ")),
    );
    Ok(None)
}

/// Per schema id of a segment: how many of its payloads start with each spelling of the
/// Protobuf message-index list `[0]` (`calving_schema::transcode::FIRST_MESSAGE_INDEXES`:
/// Confluent's `00`, Apicurio's `02 00`). Counted for every id; only Protobuf writers use it.
type Spellings = [u64; 2];

/// The spelling most of each id's payloads use (Confluent's on a tie), for ids that have any.
fn index_spellings(ids: &BTreeMap<SchemaId, Spellings>) -> BTreeMap<SchemaId, &'static [u8]> {
    ids.iter()
        .filter(|(_, c)| c[0] + c[1] > 0)
        .map(|(&id, c)| (id, FIRST_MESSAGE_INDEXES[usize::from(c[1] > c[0])]))
        .collect()
}

/// The schema ids of the segment's values and keys in the Confluent wire format, with the
/// message-index spellings of their payloads.
fn schema_ids(name: &str, files: &LogSegmentFiles) -> Result<(BTreeMap<SchemaId, Spellings>, BTreeMap<SchemaId, Spellings>)> {
    let read_err = |source| RsmError::SegmentRead { segment: name.to_string(), source };
    let mut values = BTreeMap::new();
    let mut keys = BTreeMap::new();
    let mut scratch = Vec::new();
    let mut reader = LogReader::open(&files.log).map_err(read_err)?;
    let count = |ids: &mut BTreeMap<SchemaId, Spellings>, bytes: Option<&[u8]>| {
        if let Some(f) = bytes.and_then(|v| wire::parse(v).ok()) {
            let c = ids.entry(f.schema_id).or_default();
            for (n, spelling) in c.iter_mut().zip(FIRST_MESSAGE_INDEXES) {
                *n += u64::from(f.payload.starts_with(spelling));
            }
        }
    };
    let mut add = |key: Option<&[u8]>, value: Option<&[u8]>| {
        count(&mut values, value);
        count(&mut keys, key);
    };
    while let Some(entry) = reader.next_entry().map_err(read_err)? {
        match entry {
            LogEntry::Batch(b) => {
                if b.header.attributes.is_control() {
                    continue;
                }
                for r in b.records(&mut scratch).map_err(read_err)? {
                    let r = r.map_err(read_err)?;
                    add(r.key, r.value);
                }
            }
            LogEntry::Legacy(l) => {
                for r in l.records(&mut scratch, DEFAULT_MAX_UNCOMPRESSED).map_err(read_err)? {
                    add(r.key, r.value);
                }
            }
        }
    }
    Ok((values, keys))
}
