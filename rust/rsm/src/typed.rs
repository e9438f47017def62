//! The schema modes in a copy (`value.mode` = `value_schema_id_prefix` | `value_schema_latest`):
//! which writer schemas a segment's values use, the table schema they need, and the
//! [`TypedValues`] that put each value in columns or in the raw fallback (`calving_layout::typed`).
//!
//! Before any byte is written:
//! 1. **Writer schemas.** `value_schema_id_prefix`: one pass over the segment collects the schema
//!    ids of the values in the Confluent wire format; each id is asked of the Schema Registry
//!    (cached: one request per id for the plugin's lifetime). `value_schema_latest`: the latest
//!    version of the topic's subject. A registry that does not answer fails the copy
//!    ([`RsmError::SchemaRegistry`], retriable: Kafka keeps its data and retries): never a
//!    degraded table. An id the registry says does not exist (or is not usable Avro) sends its
//!    values to the raw fallback.
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
//! value's own fields: `kafka` and `value` stay the only names a writer schema cannot use.

use std::collections::BTreeSet;
use std::sync::Arc;

use calving_layout::typed::{Framing, TypedValues, WriterEntry};
use calving_layout::LayoutError;
use calving_schema::{wire, SchemaId, ValueColumns};
use calving_segment::record::batch::DEFAULT_MAX_UNCOMPRESSED;
use calving_segment::{LogEntry, LogReader};
use iceberg::spec::{NestedField, PrimitiveType, Schema, StructType, Type};
use iceberg::table::Table;

use crate::config::ValueMode;
use crate::error::{Result, RsmError};
use crate::metadata::{LogSegmentFiles, SegmentMetadata};
use crate::Inner;

/// Top-level columns that are not the value's.
pub(crate) const RESERVED: [&str; 2] = ["kafka", "value"];

/// The table (evolved if needed) and the typed values for a copy in a schema mode.
pub(crate) fn prepare(
    inner: &Inner,
    seg: &SegmentMetadata,
    files: &LogSegmentFiles,
    mut table: Table,
    mode: ValueMode,
) -> Result<(Table, TypedValues)> {
    let name = seg.to_string();
    let registry = inner.registry.as_ref().ok_or_else(|| RsmError::InvalidConfig {
        key: crate::config::SCHEMA_REGISTRY_URL.into(),
        reason: "required by the schema modes".into(),
    })?;
    let registry_err = |source| RsmError::SchemaRegistry { segment: name.clone(), source };
    let mut writers: Vec<WriterEntry> = Vec::new();
    let framing = match mode {
        ValueMode::SchemaLatest => {
            let subject = inner.config.value_subject(&seg.topic);
            match inner.runtime.block_on(registry.latest(&subject)) {
                Ok(s) => writers.push(WriterEntry { id: s.id, writer: s.writer.clone(), text: s.text.clone() }),
                Err(e) if e.is_fallback() => {
                    inner.warn_once(&seg.topic, -1, &format!("subject {subject}: {e}; values stay raw"));
                }
                Err(e) => return Err(registry_err(e)),
            }
            Framing::Plain
        }
        _ => {
            for id in schema_ids(&name, files)? {
                match inner.runtime.block_on(registry.schema_by_id(id)).map_err(registry_err)? {
                    Ok(s) => writers.push(WriterEntry { id, writer: s.writer.clone(), text: s.text.clone() }),
                    Err(e) => inner.warn_once(&seg.topic, id, &format!("{e}; values with this id stay raw")),
                }
            }
            Framing::Prefixed
        }
    };

    let mut attempt = 0;
    let accepted = loop {
        attempt += 1;
        let (schema, changed, accepted) = merge(inner, seg, &table, &writers)?;
        if !changed {
            break accepted;
        }
        match inner.runtime.block_on(calving_table::commit_schema(&inner.catalog, &table, schema)) {
            Ok(t) => {
                table = t;
                break accepted;
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
    let columns = ValueColumns::new(table.metadata().current_schema(), &RESERVED)
        .map_err(|e| RsmError::Layout { segment: name.clone(), source: LayoutError::Typed(e.to_string()) })?;
    let mut usable = Vec::new();
    for w in accepted {
        match columns.decoder(w.writer.clone()).conflict() {
            Some(c) => inner.warn_once(&seg.topic, w.id, &format!("does not fit the table's columns ({c}); values with this id stay raw")),
            None => usable.push(w),
        }
    }
    Ok((table, TypedValues::new(framing, columns, usable)))
}

/// The table's schema with `kafka.value_schema_id` and every writer that fits merged in;
/// whether it changed; the writers whose values can be columns.
fn merge(inner: &Inner, seg: &SegmentMetadata, table: &Table, writers: &[WriterEntry]) -> Result<(Schema, bool, Vec<WriterEntry>)> {
    let typed_err = |reason: String| RsmError::Layout { segment: seg.to_string(), source: LayoutError::Typed(reason) };
    let current = table.metadata().current_schema();
    let mut last = table.metadata().last_column_id().max(current.highest_field_id());
    let mut schema = (**current).clone();
    let mut changed = false;
    let kafka = current.as_struct().field_by_name("kafka").ok_or_else(|| typed_err("the table has no kafka struct".into()))?;
    let Type::Struct(kafka_struct) = kafka.field_type.as_ref() else {
        return Err(typed_err("kafka is not a struct".into()));
    };
    if kafka_struct.field_by_name(calving_layout::schema::names::VALUE_SCHEMA_ID).is_none() {
        last += 1;
        let mut kfields = kafka_struct.fields().to_vec();
        kfields.push(NestedField::optional(last, calving_layout::schema::names::VALUE_SCHEMA_ID, Type::Primitive(PrimitiveType::Int)).into());
        let fields: Vec<_> = current
            .as_struct()
            .fields()
            .iter()
            .map(|f| {
                if f.id == kafka.id {
                    Arc::new(NestedField { field_type: Box::new(Type::Struct(StructType::new(kfields.clone()))), ..(**f).clone() })
                } else {
                    f.clone()
                }
            })
            .collect();
        schema = Schema::builder()
            .with_schema_id(current.schema_id() + 1)
            .with_identifier_field_ids(current.identifier_field_ids())
            .with_fields(fields)
            .build()
            .map_err(|e| typed_err(e.to_string()))?;
        changed = true;
    }
    let mut accepted = Vec::new();
    for w in writers {
        let e = calving_schema::evolve(&schema, last, &RESERVED, &w.writer).map_err(|e| typed_err(e.to_string()))?;
        if !e.conflicts.is_empty() {
            let what: Vec<String> =
                e.conflicts.iter().map(|c| format!("{}: table {} vs writer {}", c.path, c.table_type, c.writer_type)).collect();
            inner.warn_once(
                &seg.topic,
                w.id,
                &format!("type change Iceberg cannot express ({}); values with this id stay raw", what.join(", ")),
            );
            continue;
        }
        if e.changed() {
            tracing::info!(segment = %seg, schema_id = w.id, added = ?e.added, promoted = e.promoted.len(), "writer schema adds columns");
            schema = e.schema;
            last = e.last_column_id;
            changed = true;
        }
        accepted.push(w.clone());
    }
    Ok((schema, changed, accepted))
}

/// The schema ids of the segment's values in the Confluent wire format.
fn schema_ids(name: &str, files: &LogSegmentFiles) -> Result<BTreeSet<SchemaId>> {
    let read_err = |source| RsmError::SegmentRead { segment: name.to_string(), source };
    let mut ids = BTreeSet::new();
    let mut scratch = Vec::new();
    let mut reader = LogReader::open(&files.log).map_err(read_err)?;
    let mut add = |v: Option<&[u8]>| {
        if let Some(f) = v.and_then(|v| wire::parse(v).ok()) {
            ids.insert(f.schema_id);
        }
    };
    while let Some(entry) = reader.next_entry().map_err(read_err)? {
        match entry {
            LogEntry::Batch(b) => {
                if b.header.attributes.is_control() {
                    continue;
                }
                for r in b.records(&mut scratch).map_err(read_err)? {
                    add(r.map_err(read_err)?.value);
                }
            }
            LogEntry::Legacy(l) => {
                for r in l.records(&mut scratch, DEFAULT_MAX_UNCOMPRESSED).map_err(read_err)? {
                    add(r.value);
                }
            }
        }
    }
    Ok(ids)
}
