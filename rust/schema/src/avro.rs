//! Avro writer schemas and what they become in Iceberg.
//!
//! [`WriterSchema::parse`] reads a schema's JSON text (apache-avro's parser) and compiles it into
//! this crate's own tree, which keeps exactly what the binary encoding depends on (apache-avro
//! 0.21 folds `fixed(16)` + `uuid` and `string` + `uuid` into one variant, although their
//! encodings differ; the text is pre-processed so that the two stay apart).
//!
//! # Type mapping
//!
//! | Avro | Iceberg | note |
//! |---|---|---|
//! | `null` (record field) | no column | encodes to no bytes |
//! | `boolean`, `int`, `long`, `float`, `double` | same | |
//! | `bytes` | `binary` | |
//! | `string` | `string` | |
//! | `record` | `struct` | nested; field ids by name path |
//! | `array<T>` | `list<T>` | element optional |
//! | `map<T>` (string keys) | `map<string, T>` | key required, value optional |
//! | `enum` | `string` | the symbol |
//! | `fixed(n)` | `fixed(n)` | |
//! | `["null", T]` (either order) | `T`, optional | |
//! | `[A, B, …]` (2+ non-null branches) | `struct<A, B, …>` | one optional field per branch (below) |
//! | `date` | `date` | |
//! | `time-millis`, `time-micros` | `time` | millis ×1000 |
//! | `timestamp-millis`, `timestamp-micros` | `timestamptz` | millis ×1000 |
//! | `local-timestamp-millis`, `local-timestamp-micros` | `timestamp` | millis ×1000 |
//! | `timestamp-nanos`, `local-timestamp-nanos` | `long` | format v2 has no nanosecond type |
//! | `decimal(p,s)` on `bytes` or `fixed`, p ≤ 38 | `decimal(p,s)` | p > 38: the underlying `binary`/`fixed` |
//! | `uuid` on `string` or `fixed(16)` | `uuid` | non-canonical text (upper case…) goes to the raw fallback |
//! | `duration` | `fixed(12)` | |
//! | `big-decimal` | `binary` | |
//!
//! Every column is optional: a value that goes to the raw fallback leaves its row's columns null,
//! and a field removed by a later writer schema reads as null in new rows.
//!
//! **Wider unions.** A union with two or more non-null branches becomes a struct with one optional
//! field per non-null branch, named by the branch's type: the primitive type name (`int`,
//! `string`, … — a logical type keeps its underlying name, since a union cannot hold two `int`s),
//! `array`, `map`, or a named type's simple name (its full name with `.` → `_` if two branches
//! share a simple name). Exactly one field is set for a non-null value; the struct is null for
//! the null branch. This is lossless (the set field names the branch), keeps each branch typed
//! and queryable, and is the shape Spark's and Confluent's Avro converters use (`member0`, … in
//! Spark; we prefer names that survive a reordering of the branches).
//!
//! **uuid.** Iceberg's `uuid` type (16 bytes) rather than `string`: it is what the logical type
//! means, is half the size, and engines compare it as a uuid. Avro's string form is Java's
//! `UUID.toString()` (lower-case, hyphenated): any other spelling does not round-trip and goes to
//! the raw fallback.
//!
//! # Field ids
//!
//! [`evolve`] merges a writer schema into a table's current Iceberg schema. A field is identified
//! by its name path (`address.city`, `tags.element`, `attrs.value`): an existing path keeps its
//! id; a new one gets an id above the table's `last-column-id`, in field order. Type changes
//! Iceberg can express are applied as promotions (`int`→`long`, `float`→`double`, wider decimal
//! precision); others (say `int`→`string`) are reported as [`FieldConflict`]s: the table keeps its
//! type, and values of that writer schema go to the raw fallback.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema as IcebergSchema,
    StructType, Type,
};
use thiserror::Error;

/// The attribute a uuid `fixed(16)` is re-tagged with before apache-avro parses the text.
const FIXED_UUID_MARKER: &str = "calving.fixedUuid";

/// The column name of a writer schema whose top level is not a record.
pub const NON_RECORD_COLUMN: &str = "value";

/// Why a schema's text cannot be used for columns. Values written with it go to the raw fallback.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// Not valid JSON, or not a valid Avro schema.
    #[error("invalid Avro schema: {reason}")]
    Parse {
        /// The parser's message.
        reason: String,
    },
    /// Valid Avro with no Iceberg equivalent (a recursive type, an array of nulls, …).
    #[error("Avro type at {path} has no Iceberg equivalent: {what}")]
    Unsupported {
        /// The field's name path.
        path: String,
        /// What is not supported.
        what: String,
    },
}

/// One node of a compiled writer schema: the encoding and the Iceberg type it maps to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Date,
    /// `time-millis` (an `int`) or `time-micros` (a `long`); the column holds microseconds.
    Time {
        millis: bool,
    },
    /// `timestamp-*` (`utc`) or `local-timestamp-*`; the column holds microseconds.
    Timestamp {
        millis: bool,
        utc: bool,
    },
    /// `uuid` on a `string` (36 characters) or on a `fixed(16)`.
    Uuid {
        fixed: bool,
    },
    /// `decimal(p, s)` with p ≤ 38, on `bytes` (`fixed: None`) or `fixed(n)`.
    Decimal {
        precision: u8,
        scale: u8,
        fixed: Option<usize>,
    },
    Fixed(usize),
    Enum(Arc<[String]>),
    Array(Box<Node>),
    Map(Box<Node>),
    Record(Vec<RecordField>),
    Union(Union),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordField {
    pub(crate) name: String,
    pub(crate) node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Union {
    /// Position of `null` among the branches, if it is one.
    pub(crate) null_index: Option<u32>,
    /// The non-null branches, in union order.
    pub(crate) branches: Vec<Branch>,
    /// For each union position, its index in `branches` (`None` for the null branch).
    pub(crate) by_index: Vec<Option<usize>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    /// Position in the union: the index written on the wire.
    pub(crate) index: u32,
    /// The struct field name for unions of 2+ non-null branches.
    pub(crate) name: String,
    pub(crate) node: Node,
}

impl Union {
    /// A single non-null branch: the column has that branch's type (optional).
    pub(crate) fn single(&self) -> Option<&Branch> {
        (self.branches.len() == 1).then(|| &self.branches[0])
    }
}

/// A writer schema, parsed and compiled for decoding and type mapping.
#[derive(Debug, Clone)]
pub struct WriterSchema {
    /// The top-level columns: a record's fields, or [`NON_RECORD_COLUMN`] for any other type.
    pub(crate) fields: Vec<RecordField>,
    /// Whether the top level is a record (else one column holds the whole value).
    pub(crate) is_record: bool,
    avro: apache_avro::Schema,
    /// For a Protobuf or JSON Schema writer: between its bytes and this Avro schema's datums.
    pub(crate) transcoder: Option<Arc<dyn crate::transcode::Transcoder>>,
    /// For a Protobuf writer in the Confluent wire format: the message-index list its values
    /// were written with, as a sidecar recorded it (`00` if none).
    pub(crate) message_indexes: Vec<u8>,
}

impl WriterSchema {
    /// Parses an Avro schema's JSON text (as a Schema Registry returns it), or the
    /// [`crate::transcode::Envelope`] of a Protobuf or JSON Schema writer schema.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let mut json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Parse {
                reason: e.to_string(),
            })?;
        let mut transcoder = None;
        let mut message_indexes = crate::transcode::FIRST_MESSAGE_INDEXES[0].to_vec();
        if let Some(envelope) = crate::transcode::Envelope::of(&json) {
            let envelope = envelope?;
            message_indexes = envelope.message_index_bytes()?;
            let compiled = envelope.compile()?;
            json = compiled.avro;
            transcoder = Some(compiled.transcoder);
        }
        tag_fixed_uuids(&mut json);
        let avro = apache_avro::Schema::parse(&json).map_err(|e| SchemaError::Parse {
            reason: e.to_string(),
        })?;
        let mut cx = Compiler::default();
        let root = cx.compile(&avro, "")?;
        let (fields, is_record) = match root {
            Node::Record(fields) => (fields, true),
            other => {
                if other == Node::Null {
                    (Vec::new(), false)
                } else {
                    cx.check_has_column(&other, NON_RECORD_COLUMN)?;
                    (
                        vec![RecordField {
                            name: NON_RECORD_COLUMN.to_string(),
                            node: other,
                        }],
                        false,
                    )
                }
            }
        };
        Ok(Self {
            fields,
            is_record,
            avro,
            transcoder,
            message_indexes,
        })
    }

    /// Whether the top level is a record (else its one column is [`NON_RECORD_COLUMN`]).
    pub fn is_record(&self) -> bool {
        self.is_record
    }

    /// The schema as apache-avro parsed it (the uuid-on-fixed tag aside).
    pub fn avro(&self) -> &apache_avro::Schema {
        &self.avro
    }

    /// The format of the values: `avro`, or the format a Protobuf or JSON Schema writer's
    /// values are transcoded from (see [`crate::transcode`]).
    pub fn format(&self) -> &'static str {
        self.transcoder.as_ref().map_or("avro", |t| t.format())
    }

    /// The names of the top-level columns this schema writes, in field order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| has_column(&f.node))
            .map(|f| f.name.as_str())
    }

    /// The Iceberg type of each top-level column, with ids numbered from `first_id` in field
    /// order (depth first). For a table created from this schema alone; see [`evolve`] otherwise.
    pub fn iceberg_fields(&self, first_id: i32) -> Vec<NestedFieldRef> {
        let mut next = first_id;
        self.fields
            .iter()
            .filter_map(|f| fresh_field(&f.name, &f.node, &mut next))
            .collect()
    }
}

/// Re-tags `{"type": "fixed", "logicalType": "uuid"}` so that apache-avro keeps it a `fixed`.
const AVRO_PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// Makes a schema that uses named types defined in other schemas (Schema Registry references,
/// `definitions` by full name) self-contained: the first use of such a name becomes the
/// definition (inlined in turn, with its namespace made explicit), later uses stay names, as Avro
/// allows. `defined` collects the full names already defined; `namespace` is the enclosing one.
pub(crate) fn inline_references(
    schema: serde_json::Value,
    definitions: &HashMap<String, serde_json::Value>,
    defined: &mut HashSet<String>,
    namespace: Option<&str>,
) -> serde_json::Value {
    use serde_json::Value;
    let full = |name: &str, ns: Option<&str>| match (name.contains('.'), ns) {
        (false, Some(ns)) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    };
    match schema {
        Value::String(name) if AVRO_PRIMITIVES.contains(&name.as_str()) => Value::String(name),
        Value::String(name) => {
            let key = [full(&name, namespace), name.clone()]
                .into_iter()
                .find(|k| definitions.contains_key(k));
            match key {
                Some(key) if !defined.contains(&key) => {
                    let mut def = definitions[&key].clone();
                    if let Value::Object(o) = &mut def {
                        if !o.contains_key("namespace") && !o.get("name").and_then(Value::as_str).is_some_and(|n| n.contains('.')) {
                            let ns = key.rsplit_once('.').map_or("", |(ns, _)| ns);
                            o.insert("namespace".into(), Value::String(ns.to_string()));
                        }
                    }
                    inline_references(def, definitions, defined, namespace)
                }
                // Defined already (here or inline): refer to it by its full name.
                Some(key) => Value::String(key),
                None => Value::String(name),
            }
        }
        Value::Array(branches) => Value::Array(
            branches
                .into_iter()
                .map(|b| inline_references(b, definitions, defined, namespace))
                .collect(),
        ),
        Value::Object(mut o) => {
            let kind = o.get("type").and_then(Value::as_str).map(str::to_string);
            match kind.as_deref() {
                Some("record") | Some("error") | Some("enum") | Some("fixed") => {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    let ns = o.get("namespace").and_then(Value::as_str).map(str::to_string);
                    let fullname = if name.contains('.') {
                        name.clone()
                    } else {
                        full(&name, ns.as_deref().or(namespace))
                    };
                    defined.insert(fullname.clone());
                    let inner_ns = fullname.rsplit_once('.').map(|(ns, _)| ns.to_string());
                    if let Some(Value::Array(fields)) = o.remove("fields") {
                        let fields = fields
                            .into_iter()
                            .map(|mut f| {
                                if let Value::Object(fo) = &mut f {
                                    if let Some(t) = fo.remove("type") {
                                        let t = inline_references(t, definitions, defined, inner_ns.as_deref());
                                        fo.insert("type".into(), t);
                                    }
                                }
                                f
                            })
                            .collect();
                        o.insert("fields".into(), Value::Array(fields));
                    }
                    Value::Object(o)
                }
                Some("array") | Some("map") => {
                    let key = if kind.as_deref() == Some("array") { "items" } else { "values" };
                    if let Some(inner) = o.remove(key) {
                        o.insert(key.into(), inline_references(inner, definitions, defined, namespace));
                    }
                    Value::Object(o)
                }
                _ => {
                    if let Some(t) = o.remove("type") {
                        o.insert("type".into(), inline_references(t, definitions, defined, namespace));
                    }
                    Value::Object(o)
                }
            }
        }
        other => other,
    }
}

fn tag_fixed_uuids(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::Object(map) => {
            let is_fixed_uuid = map.get("type").and_then(|t| t.as_str()) == Some("fixed")
                && map.get("logicalType").and_then(|t| t.as_str()) == Some("uuid");
            if is_fixed_uuid {
                map.remove("logicalType");
                map.insert(FIXED_UUID_MARKER.to_string(), serde_json::Value::Bool(true));
            }
            for v in map.values_mut() {
                tag_fixed_uuids(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(tag_fixed_uuids),
        _ => {}
    }
}

/// Whether a node has a column (a `null` or a record without columns has none).
pub(crate) fn has_column(node: &Node) -> bool {
    match node {
        Node::Null => false,
        Node::Record(fields) => fields.iter().any(|f| has_column(&f.node)),
        _ => true,
    }
}

#[derive(Default)]
struct Compiler {
    /// Named types defined so far, by full name and by simple name.
    defined: HashMap<String, apache_avro::Schema>,
    /// Named types being compiled (a reference to one of them is recursion).
    open: HashSet<String>,
}

impl Compiler {
    fn define(&mut self, name: &apache_avro::schema::Name, schema: &apache_avro::Schema) {
        self.defined.insert(name.fullname(None), schema.clone());
        self.defined
            .entry(name.name.clone())
            .or_insert_with(|| schema.clone());
    }

    fn check_has_column(&self, node: &Node, path: &str) -> Result<(), SchemaError> {
        if has_column(node) {
            Ok(())
        } else {
            Err(SchemaError::Unsupported {
                path: path.to_string(),
                what: "a null or a record without fields where a value is needed".into(),
            })
        }
    }

    fn compile(&mut self, s: &apache_avro::Schema, path: &str) -> Result<Node, SchemaError> {
        use apache_avro::Schema as S;
        let unsupported = |what: &str| SchemaError::Unsupported {
            path: display_path(path),
            what: what.to_string(),
        };
        Ok(match s {
            S::Null => Node::Null,
            S::Boolean => Node::Boolean,
            S::Int => Node::Int,
            S::Long => Node::Long,
            S::Float => Node::Float,
            S::Double => Node::Double,
            S::Bytes | S::BigDecimal => Node::Bytes,
            S::String => Node::String,
            S::Date => Node::Date,
            S::TimeMillis => Node::Time { millis: true },
            S::TimeMicros => Node::Time { millis: false },
            S::TimestampMillis => Node::Timestamp {
                millis: true,
                utc: true,
            },
            S::TimestampMicros => Node::Timestamp {
                millis: false,
                utc: true,
            },
            S::LocalTimestampMillis => Node::Timestamp {
                millis: true,
                utc: false,
            },
            S::LocalTimestampMicros => Node::Timestamp {
                millis: false,
                utc: false,
            },
            S::TimestampNanos | S::LocalTimestampNanos => Node::Long,
            S::Uuid => Node::Uuid { fixed: false },
            S::Duration => Node::Fixed(12),
            S::Array(a) => {
                let p = format!("{path}.element");
                let item = self.compile(&a.items, &p)?;
                self.check_has_column(&item, &display_path(&p))?;
                Node::Array(Box::new(item))
            }
            S::Map(m) => {
                let p = format!("{path}.value");
                let value = self.compile(&m.types, &p)?;
                self.check_has_column(&value, &display_path(&p))?;
                Node::Map(Box::new(value))
            }
            S::Union(u) => {
                let variants = u.variants();
                let mut null_index = None;
                let mut branches = Vec::new();
                let mut by_index = Vec::with_capacity(variants.len());
                // Branch names: a named type's simple name unless two branches share it.
                let simple: Vec<Option<String>> = variants
                    .iter()
                    .map(|v| named(v).map(|n| n.name.clone()))
                    .collect();
                for (i, v) in variants.iter().enumerate() {
                    if matches!(v, S::Null) {
                        null_index = Some(i as u32);
                        by_index.push(None);
                        continue;
                    }
                    let name = match (named(v), &simple[i]) {
                        (Some(n), Some(sn)) => {
                            if simple.iter().filter(|o| o.as_deref() == Some(sn)).count() > 1 {
                                n.fullname(None).replace('.', "_")
                            } else {
                                sn.clone()
                            }
                        }
                        _ => unnamed_branch_name(v).to_string(),
                    };
                    let p = format!("{path}.{name}");
                    let node = self.compile(v, &p)?;
                    self.check_has_column(&node, &display_path(&p))?;
                    by_index.push(Some(branches.len()));
                    branches.push(Branch {
                        index: i as u32,
                        name,
                        node,
                    });
                }
                if branches.is_empty() {
                    // ["null"]: encodes to the index alone; no column can hold it.
                    return Err(unsupported("a union with no non-null branch"));
                }
                Node::Union(Union {
                    null_index,
                    branches,
                    by_index,
                })
            }
            S::Record(r) => {
                let full = r.name.fullname(None);
                self.open.insert(full.clone());
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let p = if path.is_empty() {
                        f.name.clone()
                    } else {
                        format!("{path}.{}", f.name)
                    };
                    fields.push(RecordField {
                        name: f.name.clone(),
                        node: self.compile(&f.schema, &p)?,
                    });
                }
                self.open.remove(&full);
                self.define(&r.name, s);
                Node::Record(fields)
            }
            S::Enum(e) => {
                self.define(&e.name, s);
                Node::Enum(e.symbols.clone().into())
            }
            S::Fixed(f) => {
                self.define(&f.name, s);
                if f.size == 16 && f.attributes.contains_key(FIXED_UUID_MARKER) {
                    Node::Uuid { fixed: true }
                } else {
                    Node::Fixed(f.size)
                }
            }
            S::Decimal(d) => {
                let inner = self.compile(&d.inner, path)?;
                let fixed = match inner {
                    Node::Bytes => None,
                    Node::Fixed(n) => Some(n),
                    _ => return Err(unsupported("a decimal on neither bytes nor fixed")),
                };
                if (1..=38).contains(&d.precision) && d.scale <= d.precision {
                    Node::Decimal {
                        precision: d.precision as u8,
                        scale: d.scale as u8,
                        fixed,
                    }
                } else {
                    inner
                }
            }
            S::Ref { name } => {
                let full = name.fullname(None);
                if self.open.contains(&full) || self.open.contains(&name.name) {
                    return Err(unsupported(&format!("recursive type {full}")));
                }
                let def = self
                    .defined
                    .get(&full)
                    .or_else(|| self.defined.get(&name.name))
                    .cloned()
                    .ok_or_else(|| unsupported(&format!("unresolved reference to {full}")))?;
                self.compile(&def, path)?
            }
        })
    }
}

fn named(s: &apache_avro::Schema) -> Option<&apache_avro::schema::Name> {
    use apache_avro::Schema as S;
    match s {
        S::Record(r) => Some(&r.name),
        S::Enum(e) => Some(&e.name),
        S::Fixed(f) => Some(&f.name),
        S::Decimal(d) => named(&d.inner),
        S::Ref { name } => Some(name),
        _ => None,
    }
}

fn unnamed_branch_name(s: &apache_avro::Schema) -> &'static str {
    use apache_avro::Schema as S;
    match s {
        S::Null => "null",
        S::Boolean => "boolean",
        S::Int | S::Date | S::TimeMillis => "int",
        S::Long
        | S::TimeMicros
        | S::TimestampMillis
        | S::TimestampMicros
        | S::TimestampNanos
        | S::LocalTimestampMillis
        | S::LocalTimestampMicros
        | S::LocalTimestampNanos => "long",
        S::Float => "float",
        S::Double => "double",
        S::Bytes | S::BigDecimal => "bytes",
        S::String | S::Uuid => "string",
        S::Array(_) => "array",
        S::Map(_) => "map",
        S::Duration => "fixed",
        _ => "union",
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "<root>".into()
    } else {
        path.to_string()
    }
}

/// The Iceberg primitive (or nested) type of a node; `None` for nodes without a column.
fn fresh_type(node: &Node, next: &mut i32) -> Option<Type> {
    let p = |t: PrimitiveType| Some(Type::Primitive(t));
    match node {
        Node::Null => None,
        Node::Boolean => p(PrimitiveType::Boolean),
        Node::Int => p(PrimitiveType::Int),
        Node::Long => p(PrimitiveType::Long),
        Node::Float => p(PrimitiveType::Float),
        Node::Double => p(PrimitiveType::Double),
        Node::Bytes => p(PrimitiveType::Binary),
        Node::String | Node::Enum(_) => p(PrimitiveType::String),
        Node::Date => p(PrimitiveType::Date),
        Node::Time { .. } => p(PrimitiveType::Time),
        Node::Timestamp { utc: true, .. } => p(PrimitiveType::Timestamptz),
        Node::Timestamp { utc: false, .. } => p(PrimitiveType::Timestamp),
        Node::Uuid { .. } => p(PrimitiveType::Uuid),
        Node::Decimal {
            precision, scale, ..
        } => p(PrimitiveType::Decimal {
            precision: u32::from(*precision),
            scale: u32::from(*scale),
        }),
        Node::Fixed(n) => p(PrimitiveType::Fixed(*n as u64)),
        Node::Array(item) => {
            let id = take(next);
            let t = fresh_type(item, next)?;
            Some(Type::List(ListType::new(
                NestedField::list_element(id, t, false).into(),
            )))
        }
        Node::Map(value) => {
            let key_id = take(next);
            let value_id = take(next);
            let t = fresh_type(value, next)?;
            Some(Type::Map(MapType::new(
                NestedField::map_key_element(key_id, Type::Primitive(PrimitiveType::String)).into(),
                NestedField::map_value_element(value_id, t, false).into(),
            )))
        }
        Node::Record(fields) => {
            let fields: Vec<NestedFieldRef> = fields
                .iter()
                .filter_map(|f| fresh_field(&f.name, &f.node, next))
                .collect();
            (!fields.is_empty()).then(|| Type::Struct(StructType::new(fields)))
        }
        Node::Union(u) => match u.single() {
            Some(b) => fresh_type(&b.node, next),
            None => Some(Type::Struct(StructType::new(
                u.branches
                    .iter()
                    .filter_map(|b| fresh_field(&b.name, &b.node, next))
                    .collect(),
            ))),
        },
    }
}

fn fresh_field(name: &str, node: &Node, next: &mut i32) -> Option<NestedFieldRef> {
    if !has_column(node) {
        return None;
    }
    let id = take(next);
    let t = fresh_type(node, next)?;
    Some(NestedField::optional(id, name, t).into())
}

fn take(next: &mut i32) -> i32 {
    let id = *next;
    *next += 1;
    id
}

/// A writer field whose type the table's column cannot hold, even after a promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// Name path of the field (`address.city`, `tags.element`).
    pub path: String,
    /// The table's type there.
    pub table_type: String,
    /// The Iceberg type the writer schema maps to.
    pub writer_type: String,
}

/// A column whose type is widened (an Iceberg type promotion) to hold the writer's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// Name path of the field.
    pub path: String,
    /// The field's id (unchanged).
    pub id: i32,
    /// The table's type before.
    pub from: String,
    /// The type after.
    pub to: String,
}

/// A table schema merged with a writer schema.
#[derive(Debug, Clone)]
pub struct Evolution {
    /// The table's schema with the writer's new fields and promotions (schema id + 1 if changed).
    pub schema: IcebergSchema,
    /// The table's last column id after the new fields.
    pub last_column_id: i32,
    /// Name paths of the fields added, in id order.
    pub added: Vec<String>,
    /// Columns widened.
    pub promoted: Vec<Promotion>,
    /// Fields whose values must go to the raw fallback.
    pub conflicts: Vec<FieldConflict>,
}

impl Evolution {
    /// Whether the schema differs from the table's (an update to commit with the data).
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.promoted.is_empty()
    }
}

/// Why a table schema and a writer schema cannot be merged at all.
#[derive(Debug, Error)]
#[error("cannot build the merged schema: {0}")]
pub struct EvolveError(#[from] iceberg::Error);

/// Merges a writer schema into the table's current schema: existing name paths keep their ids,
/// new fields get ids above `last_column_id`, promotable types are widened, others reported.
///
/// `reserved` names top-level columns that are not the value's (the `kafka` struct, the raw
/// fallback…): a writer field with such a name is a conflict.
pub fn evolve(
    table: &IcebergSchema,
    last_column_id: i32,
    reserved: &[&str],
    writer: &WriterSchema,
) -> Result<Evolution, EvolveError> {
    let mut m = Merger {
        next: last_column_id.max(table.highest_field_id()) + 1,
        added: Vec::new(),
        promoted: Vec::new(),
        conflicts: Vec::new(),
    };
    let mut fields: Vec<NestedFieldRef> = table.as_struct().fields().to_vec();
    for wf in &writer.fields {
        if !has_column(&wf.node) {
            continue;
        }
        match fields.iter().position(|f| f.name == wf.name) {
            Some(i) if reserved.contains(&wf.name.as_str()) => {
                let mut probe = 0;
                m.conflicts.push(FieldConflict {
                    path: wf.name.clone(),
                    table_type: fields[i].field_type.to_string(),
                    writer_type: type_name(fresh_type(&wf.node, &mut probe)),
                });
            }
            Some(i) => {
                let merged = m.merge_field(&fields[i], &wf.node, &wf.name);
                fields[i] = merged;
            }
            None => {
                if let Some(f) = m.add_field(&wf.name, &wf.node, &wf.name) {
                    fields.push(f);
                }
            }
        }
    }
    let changed = !m.added.is_empty() || !m.promoted.is_empty();
    let schema = IcebergSchema::builder()
        .with_schema_id(table.schema_id() + i32::from(changed))
        .with_identifier_field_ids(table.identifier_field_ids())
        .with_fields(fields)
        .build()?;
    Ok(Evolution {
        schema,
        last_column_id: m.next - 1,
        added: m.added,
        promoted: m.promoted,
        conflicts: m.conflicts,
    })
}

fn type_name(t: Option<Type>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "none".into())
}

struct Merger {
    next: i32,
    added: Vec<String>,
    promoted: Vec<Promotion>,
    conflicts: Vec<FieldConflict>,
}

impl Merger {
    fn add_field(&mut self, name: &str, node: &Node, path: &str) -> Option<NestedFieldRef> {
        let f = fresh_field(name, node, &mut self.next)?;
        self.added.push(path.to_string());
        Some(f)
    }

    fn conflict(&mut self, path: &str, table: &Type, node: &Node) {
        let mut probe = 0;
        self.conflicts.push(FieldConflict {
            path: path.to_string(),
            table_type: table.to_string(),
            writer_type: type_name(fresh_type(node, &mut probe)),
        });
    }

    /// The table's field with the writer's node merged into its type.
    fn merge_field(&mut self, field: &NestedFieldRef, node: &Node, path: &str) -> NestedFieldRef {
        match self.merge_type(&field.field_type, node, path, field.id) {
            Some(t) => Arc::new(NestedField {
                field_type: Box::new(t),
                ..(**field).clone()
            }),
            None => field.clone(),
        }
    }

    /// `Some(new type)` if the type changes (fields added or promoted), `None` if it stays.
    fn merge_type(&mut self, table: &Type, node: &Node, path: &str, id: i32) -> Option<Type> {
        // An optional single-branch union has its branch's type.
        if let Node::Union(u) = node {
            if let Some(b) = u.single() {
                return self.merge_type(table, &b.node, path, id);
            }
        }
        match (table, node) {
            (Type::Struct(st), Node::Record(wfields)) => {
                let pairs: Vec<(&str, &Node)> =
                    wfields.iter().map(|f| (f.name.as_str(), &f.node)).collect();
                self.merge_struct(st, &pairs, path)
            }
            (Type::Struct(st), Node::Union(u)) => {
                let pairs: Vec<(&str, &Node)> = u
                    .branches
                    .iter()
                    .map(|b| (b.name.as_str(), &b.node))
                    .collect();
                self.merge_struct(st, &pairs, path)
            }
            (Type::List(lt), Node::Array(item)) => {
                let p = format!("{path}.element");
                let e = &lt.element_field;
                self.merge_type(&e.field_type, item, &p, e.id).map(|t| {
                    Type::List(ListType::new(Arc::new(NestedField {
                        field_type: Box::new(t),
                        ..(**e).clone()
                    })))
                })
            }
            (Type::Map(mt), Node::Map(value)) => {
                if *mt.key_field.field_type != Type::Primitive(PrimitiveType::String) {
                    self.conflict(
                        &format!("{path}.key"),
                        &mt.key_field.field_type,
                        &Node::String,
                    );
                    return None;
                }
                let p = format!("{path}.value");
                let v = &mt.value_field;
                self.merge_type(&v.field_type, value, &p, v.id).map(|t| {
                    Type::Map(MapType::new(
                        mt.key_field.clone(),
                        Arc::new(NestedField {
                            field_type: Box::new(t),
                            ..(**v).clone()
                        }),
                    ))
                })
            }
            (Type::Primitive(tp), _) => {
                let mut probe = 0;
                let Some(Type::Primitive(wp)) = fresh_type(node, &mut probe) else {
                    self.conflict(path, table, node);
                    return None;
                };
                match primitive_fit(tp, &wp) {
                    Fit::Same => None,
                    Fit::Promote(to) => {
                        self.promoted.push(Promotion {
                            path: path.to_string(),
                            id,
                            from: tp.to_string(),
                            to: to.to_string(),
                        });
                        Some(Type::Primitive(to))
                    }
                    Fit::Conflict => {
                        self.conflict(path, table, node);
                        None
                    }
                }
            }
            _ => {
                self.conflict(path, table, node);
                None
            }
        }
    }

    fn merge_struct(
        &mut self,
        st: &StructType,
        wfields: &[(&str, &Node)],
        path: &str,
    ) -> Option<Type> {
        let mut fields: Vec<NestedFieldRef> = st.fields().to_vec();
        let mut changed = false;
        for (name, node) in wfields {
            if !has_column(node) {
                continue;
            }
            let p = format!("{path}.{name}");
            match fields.iter().position(|f| f.name == *name) {
                Some(i) => {
                    let merged = self.merge_field(&fields[i], node, &p);
                    if !Arc::ptr_eq(&merged, &fields[i]) {
                        fields[i] = merged;
                        changed = true;
                    }
                }
                None => {
                    if let Some(f) = self.add_field(name, node, &p) {
                        fields.push(f);
                        changed = true;
                    }
                }
            }
        }
        changed.then(|| Type::Struct(StructType::new(fields)))
    }
}

enum Fit {
    Same,
    Promote(PrimitiveType),
    Conflict,
}

/// Whether a table column of type `table` holds a writer value of type `writer`.
fn primitive_fit(table: &PrimitiveType, writer: &PrimitiveType) -> Fit {
    use PrimitiveType as P;
    match (table, writer) {
        (t, w) if t == w => Fit::Same,
        (P::Long, P::Int) | (P::Double, P::Float) => Fit::Same,
        (P::Int, P::Long) => Fit::Promote(P::Long),
        (P::Float, P::Double) => Fit::Promote(P::Double),
        (
            P::Decimal {
                precision: tp,
                scale: ts,
            },
            P::Decimal {
                precision: wp,
                scale: ws,
            },
        ) if ts == ws => {
            if wp <= tp {
                Fit::Same
            } else {
                Fit::Promote(P::Decimal {
                    precision: *wp,
                    scale: *ws,
                })
            }
        }
        _ => Fit::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(t: &str) -> Vec<RecordField> {
        WriterSchema::parse(t).unwrap().fields
    }

    #[test]
    fn maps_every_avro_type() {
        let w = WriterSchema::parse(
            r#"{"type":"record","name":"R","namespace":"n","fields":[
              {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
              {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"y","type":"bytes"},
              {"name":"s","type":"string"},{"name":"n","type":"null"},
              {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
              {"name":"x","type":{"type":"fixed","name":"F","size":3}},
              {"name":"o","type":["null","string"]},
              {"name":"o2","type":["long","null"]},
              {"name":"u","type":["null","int","string",{"type":"record","name":"Inner","fields":[{"name":"a","type":"int"}]}]},
              {"name":"arr","type":{"type":"array","items":"Inner"}},
              {"name":"m","type":{"type":"map","values":["null","double"]}},
              {"name":"date","type":{"type":"int","logicalType":"date"}},
              {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
              {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
              {"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
              {"name":"ltm","type":{"type":"long","logicalType":"local-timestamp-millis"}},
              {"name":"ltu","type":{"type":"long","logicalType":"local-timestamp-micros"}},
              {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
              {"name":"decf","type":{"type":"fixed","name":"DF","size":8,"logicalType":"decimal","precision":18,"scale":3}},
              {"name":"big","type":{"type":"bytes","logicalType":"decimal","precision":50,"scale":2}},
              {"name":"uid","type":{"type":"string","logicalType":"uuid"}},
              {"name":"uidf","type":{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}}
            ]}"#,
        )
        .unwrap();
        let fields = w.iceberg_fields(1);
        let got: Vec<String> = fields
            .iter()
            .map(|f| format!("{}:{}", f.name, f.field_type))
            .collect();
        let expect = [
            "b:boolean", "i:int", "l:long", "f:float", "d:double", "y:binary", "s:string",
            "e:string", "x:fixed(3)", "o:string", "o2:long",
            "u:struct<6: int: optional int, 7: string: optional string, 8: Inner: optional struct<9: a: optional int>>",
            "arr:list<struct<12: a: optional int>>",
            "m:map<string, double>",
            "date:date", "tm:time", "tu:time", "tsm:timestamptz", "tsu:timestamptz",
            "ltm:timestamp", "ltu:timestamp", "dec:decimal(10, 2)", "decf:decimal(18, 3)",
            "big:binary", "uid:uuid", "uidf:uuid",
        ];
        // Compare loosely on the display of nested types (iceberg's Display format is its own).
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        for (g, e) in got.iter().zip(expect) {
            let (gn, gt) = g.split_once(':').unwrap();
            let (en, et) = e.split_once(':').unwrap();
            assert_eq!(gn, en);
            if !et.contains('<') {
                assert_eq!(gt, et, "{g}");
            }
        }
        // Ids are unique and dense from 1.
        let schema = IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap();
        assert!(schema.highest_field_id() > 26);
        assert!(matches!(
            w.fields.iter().find(|f| f.name == "uidf").unwrap().node,
            Node::Uuid { fixed: true }
        ));
        assert!(matches!(
            w.fields.iter().find(|f| f.name == "uid").unwrap().node,
            Node::Uuid { fixed: false }
        ));
    }

    #[test]
    fn wide_union_branch_names() {
        let f = fields_of(
            r#"{"type":"record","name":"R","fields":[{"name":"u","type":["null","int",
              {"type":"record","name":"A","namespace":"x","fields":[{"name":"a","type":"int"}]},
              {"type":"record","name":"A","namespace":"y","fields":[{"name":"b","type":"int"}]},
              {"type":"array","items":"int"},{"type":"map","values":"int"}]}]}"#,
        );
        let Node::Union(u) = &f[0].node else { panic!() };
        let names: Vec<&str> = u.branches.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["int", "x_A", "y_A", "array", "map"]);
        assert_eq!(u.null_index, Some(0));
    }

    #[test]
    fn unsupported_shapes_are_errors() {
        let recursive =
            r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#;
        assert!(matches!(
            WriterSchema::parse(recursive),
            Err(SchemaError::Unsupported { .. })
        ));
        let nulls = r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}"#;
        assert!(matches!(
            WriterSchema::parse(nulls),
            Err(SchemaError::Unsupported { .. })
        ));
        assert!(matches!(
            WriterSchema::parse("{not json"),
            Err(SchemaError::Parse { .. })
        ));
        assert!(matches!(
            WriterSchema::parse(
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}"#
            ),
            Err(SchemaError::Parse { .. })
        ));
    }

    #[test]
    fn reused_named_type_is_not_recursion() {
        let f = fields_of(
            r#"{"type":"record","name":"R","fields":[
              {"name":"a","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}},
              {"name":"b","type":"P"}]}"#,
        );
        assert_eq!(f[0].node, f[1].node);
    }

    #[test]
    fn non_record_root_is_one_column() {
        let w = WriterSchema::parse(r#""string""#).unwrap();
        assert_eq!(w.column_names().collect::<Vec<_>>(), [NON_RECORD_COLUMN]);
    }

    fn table(fields: Vec<NestedFieldRef>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_fields(fields)
            .build()
            .unwrap()
    }

    #[test]
    fn evolve_keeps_ids_by_name_and_adds_above_last_column_id() {
        let v1 = WriterSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},
              {"name":"addr","type":{"type":"record","name":"A","fields":[{"name":"city","type":"string"}]}}]}"#,
        )
        .unwrap();
        let kafka = NestedField::optional(1, "kafka", Type::Primitive(PrimitiveType::Long));
        let base = table(vec![kafka.into()]);
        let e1 = evolve(&base, 1, &["kafka"], &v1).unwrap();
        assert_eq!(e1.added, ["id", "addr"]);
        assert!(e1.conflicts.is_empty());
        let s1 = e1.schema;
        let id_of = |s: &IcebergSchema, n: &str| s.field_by_name(n).unwrap().id;
        assert_eq!(id_of(&s1, "id"), 2);
        assert_eq!(id_of(&s1, "addr"), 3);
        assert_eq!(id_of(&s1, "addr.city"), 4);

        // v2: a field removed (id), one added at the top and one nested, fields reordered,
        // int -> long promotion on a new-looking field that exists. Last column id 10 (a
        // dropped column once used 5..10).
        let v2 = WriterSchema::parse(
            r#"{"type":"record","name":"R","fields":[
              {"name":"addr","type":{"type":"record","name":"A","fields":[{"name":"zip","type":["null","int"]},{"name":"city","type":"string"}]}},
              {"name":"score","type":"double"}]}"#,
        )
        .unwrap();
        let e2 = evolve(&s1, 10, &["kafka"], &v2).unwrap();
        assert_eq!(e2.added, ["addr.zip", "score"]);
        let s2 = e2.schema;
        assert_eq!(id_of(&s2, "id"), 2, "removed fields stay in the table");
        assert_eq!(id_of(&s2, "addr.city"), 4);
        assert_eq!(id_of(&s2, "addr.zip"), 11);
        assert_eq!(id_of(&s2, "score"), 12);
        assert_eq!(e2.last_column_id, 12);
        assert_eq!(s2.schema_id(), s1.schema_id() + 1);

        // The same writer again: nothing changes.
        let e3 = evolve(&s2, 12, &["kafka"], &v2).unwrap();
        assert!(!e3.changed());
        assert_eq!(e3.schema.schema_id(), s2.schema_id());
    }

    #[test]
    fn evolve_promotes_and_reports_conflicts() {
        let t = table(vec![
            NestedField::optional(1, "a", Type::Primitive(PrimitiveType::Int)).into(),
            NestedField::optional(2, "b", Type::Primitive(PrimitiveType::Int)).into(),
            NestedField::optional(3, "c", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(4, "kafka", Type::Primitive(PrimitiveType::Long)).into(),
        ]);
        let w = WriterSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},
              {"name":"b","type":"string"},{"name":"c","type":"int"},{"name":"kafka","type":"long"}]}"#,
        )
        .unwrap();
        let e = evolve(&t, 4, &["kafka"], &w).unwrap();
        assert_eq!(e.promoted.len(), 1);
        assert_eq!(e.promoted[0].path, "a");
        assert_eq!(e.promoted[0].to, "long");
        let paths: Vec<&str> = e.conflicts.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["b", "kafka"]);
        assert_eq!(e.conflicts[0].table_type, "int");
        assert_eq!(e.conflicts[0].writer_type, "string");
    }
}
