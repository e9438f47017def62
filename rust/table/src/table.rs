//! The topic's table: the default Calving table (schema, partition spec, sort order,
//! properties), and [`ensure_table`], which adopts an existing table or creates the default one.
//!
//! Adoption is by column *name*: a table created ahead of time (with its own partition spec,
//! sort order, properties, extra columns, field ids) is kept as it is, provided it has every
//! column Calving writes with a compatible type ([`check_compatible`]). Field ids are never
//! assumed: catalogs reassign them at creation, so callers read the schema back from the table.

use std::collections::HashMap;
use std::time::Instant;

use iceberg::spec::{
    ListType, NestedField, NestedFieldRef, NullOrder, PrimitiveType, Schema, SortDirection,
    SortField, SortOrder, StructType, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};

use crate::error::{Error, Result};

/// Table property recording the version of the row layout of tables Calving creates (their
/// columns and what the rows hold). Not the served layout: that is per segment, in its sidecar
/// and in the `calving.layout-version` of the snapshot summary that committed it
/// (`calving_layout::served::Layout`; versions 1 and 2 share these rows).
pub const LAYOUT_VERSION_PROP: &str = "calving.layout-version";
/// Row layout version of tables created by this crate.
pub const LAYOUT_VERSION: &str = "1";

/// Column names (dotted paths) of the default table.
pub mod columns {
    /// The `kafka` struct.
    pub const KAFKA: &str = "kafka";
    /// Kafka's topic id, as Kafka prints it (base64 UUID).
    pub const TOPIC_ID: &str = "kafka.topic_id";
    /// Partition number.
    pub const PARTITION: &str = "kafka.partition";
    /// Record offset.
    pub const OFFSET: &str = "kafka.offset";
    /// Record timestamp (timestamptz, µs).
    pub const TIMESTAMP: &str = "kafka.timestamp";
    /// Record key (null when the record has none).
    pub const KEY: &str = "kafka.key";
    /// Record headers, in order, duplicates kept.
    pub const HEADERS: &str = "kafka.headers";
    /// Record value (null when the record has none).
    pub const VALUE: &str = "value";
    /// Name of the default partition field, `day(kafka.timestamp)`.
    pub const TIMESTAMP_DAY: &str = "kafka_timestamp_day";
}

fn prim(p: PrimitiveType) -> Type {
    Type::Primitive(p)
}

/// The default schema (field ids as Calving declares them; a catalog may reassign them).
pub fn default_schema() -> Schema {
    let header = StructType::new(vec![
        NestedField::required(10, "key", prim(PrimitiveType::String)).into(),
        NestedField::optional(11, "value", prim(PrimitiveType::Binary)).into(),
    ]);
    let headers = ListType::new(NestedField::list_element(9, Type::Struct(header), true).into());
    let kafka = StructType::new(vec![
        NestedField::required(3, "topic_id", prim(PrimitiveType::String)).into(),
        NestedField::required(4, "partition", prim(PrimitiveType::Int)).into(),
        NestedField::required(5, "offset", prim(PrimitiveType::Long)).into(),
        NestedField::required(6, "timestamp", prim(PrimitiveType::Timestamptz)).into(),
        NestedField::optional(7, "key", prim(PrimitiveType::Binary)).into(),
        NestedField::optional(8, "headers", Type::List(headers)).into(),
    ]);
    Schema::builder()
        .with_schema_id(0)
        .with_fields(vec![
            NestedField::required(1, "kafka", Type::Struct(kafka)).into(),
            NestedField::optional(2, "value", prim(PrimitiveType::Binary)).into(),
        ])
        .build()
        .expect("the default schema is valid")
}

/// The default partition spec, `day(kafka.timestamp)` named `kafka_timestamp_day`.
pub fn default_partition_spec() -> UnboundPartitionSpec {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(6, columns::TIMESTAMP_DAY, Transform::Day)
        .expect("the default partition spec is valid")
        .build()
}

/// The default sort order: `kafka.partition` asc, `kafka.offset` asc.
pub fn default_sort_order() -> SortOrder {
    let field = |source_id| {
        SortField::builder()
            .source_id(source_id)
            .transform(Transform::Identity)
            .direction(SortDirection::Ascending)
            .null_order(NullOrder::First)
            .build()
    };
    SortOrder::builder()
        .with_order_id(1)
        .with_sort_field(field(4))
        .with_sort_field(field(5))
        .build_unbound()
        .expect("the default sort order is valid")
}

/// Properties of a table Calving creates.
pub fn default_properties() -> HashMap<String, String> {
    HashMap::from([
        (
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        ),
        (
            "write.parquet.compression-level".to_string(),
            "1".to_string(),
        ),
        (LAYOUT_VERSION_PROP.to_string(), LAYOUT_VERSION.to_string()),
        // Exact topic-id bounds: a Kafka topic id is 22 characters, longer than the default
        // truncate(16), and only exact bounds show that a file holds one topic id only — what
        // lets a removal drop a file by its bounds instead of reading it (`remove`).
        (
            "write.metadata.metrics.column.kafka.topic_id".to_string(),
            "full".to_string(),
        ),
        // Every copy commits a metadata file: keep the last 20, delete older ones on commit.
        ("write.metadata.delete-after-commit.enabled".to_string(), "true".to_string()),
        ("write.metadata.previous-versions-max".to_string(), "20".to_string()),
        // Every copy is a snapshot, and metadata.json lists every retained one: maintenance
        // keeps at most 500 (~0.4 MB of metadata), whatever the age rule keeps.
        (crate::maintain::MAX_SNAPSHOTS_PROP.to_string(), "500".to_string()),
    ])
}

/// The default table of `topic` (format v2).
pub fn default_table_creation(topic: &str) -> TableCreation {
    TableCreation::builder()
        .name(topic.to_string())
        .schema(default_schema())
        .partition_spec(default_partition_spec())
        .sort_order(default_sort_order())
        .properties(default_properties())
        .build()
}

/// Loads `<namespace>.<topic>` and adopts it if it exists (keeping its spec, sort order and
/// properties, after [`check_compatible`]); otherwise creates the namespace if missing and the
/// default table. When two brokers race to create it, the loser loads the winner's table.
pub async fn ensure_table(
    catalog: &dyn Catalog,
    namespace: &NamespaceIdent,
    topic: &str,
) -> Result<Table> {
    if topic.is_empty() {
        return Err(Error::config("topic", "empty topic name"));
    }
    let started = Instant::now();
    let ident = TableIdent::new(namespace.clone(), topic.to_string());
    match catalog.load_table(&ident).await {
        Ok(table) => {
            check_compatible(&table)?;
            tracing::info!(table = %ident, elapsed_ms = started.elapsed().as_millis() as u64, "adopted existing table");
            return Ok(table);
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
            ) => {}
        Err(e) => return Err(Error::from_catalog("load table", e)),
    }

    ensure_namespace(catalog, namespace).await?;
    match catalog
        .create_table(namespace, default_table_creation(topic))
        .await
    {
        Ok(table) => {
            check_compatible(&table)?;
            tracing::info!(
                table = %ident,
                location = table.metadata().location(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "created table"
            );
            Ok(table)
        }
        // Another broker created it between our load and create: REST answers 409
        // (TableAlreadyExists); the SQL catalog fails its INSERT on the primary key. Either way,
        // the table now exists if we lost a race.
        Err(create_err) => match catalog.load_table(&ident).await {
            Ok(table) => {
                check_compatible(&table)?;
                tracing::info!(table = %ident, "table created concurrently by another writer; adopted it");
                Ok(table)
            }
            Err(_) => Err(Error::from_catalog("create table", create_err)),
        },
    }
}

async fn ensure_namespace(catalog: &dyn Catalog, namespace: &NamespaceIdent) -> Result<()> {
    match catalog.namespace_exists(namespace).await {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => return Err(Error::from_catalog("check namespace", e)),
    }
    match catalog.create_namespace(namespace, HashMap::new()).await {
        Ok(_) => {
            tracing::info!(namespace = ?namespace, "created namespace");
            Ok(())
        }
        Err(e) => match catalog.namespace_exists(namespace).await {
            // NamespaceAlreadyExists, or a lost race surfacing as a constraint violation.
            Ok(true) => Ok(()),
            _ => Err(Error::from_catalog("create namespace", e)),
        },
    }
}

/// How a column Calving writes must look in a table it adopts.
enum Want {
    Primitive(PrimitiveType),
    Struct(Vec<(&'static str, Want, Nulls)>),
    List(Box<Want>, Nulls),
}

/// Whether Calving writes nulls into a column (then the table must declare it optional).
#[derive(Clone, Copy, PartialEq)]
enum Nulls {
    Never,
    Sometimes,
}

fn calving_columns() -> Vec<(&'static str, Want, Nulls)> {
    use Nulls::*;
    use PrimitiveType as P;
    vec![
        (
            "kafka",
            Want::Struct(vec![
                ("topic_id", Want::Primitive(P::String), Never),
                ("partition", Want::Primitive(P::Int), Never),
                ("offset", Want::Primitive(P::Long), Never),
                ("timestamp", Want::Primitive(P::Timestamptz), Never),
                ("key", Want::Primitive(P::Binary), Sometimes),
                (
                    "headers",
                    Want::List(
                        Box::new(Want::Struct(vec![
                            ("key", Want::Primitive(P::String), Never),
                            ("value", Want::Primitive(P::Binary), Sometimes),
                        ])),
                        Never,
                    ),
                    Sometimes,
                ),
            ]),
            Never,
        ),
        ("value", Want::Primitive(P::Binary), Sometimes),
    ]
}

/// Checks that `table`'s current schema has every column Calving writes, by name, with the same
/// type, optional where Calving writes nulls, and no *required* column Calving does not write.
pub fn check_compatible(table: &Table) -> Result<()> {
    let schema = table.metadata().current_schema();
    let name = table.identifier().to_string();
    check_struct(&name, "", schema.as_struct().fields(), &calving_columns())
}

fn incompatible(table: &str, column: &str, reason: impl Into<String>) -> Error {
    Error::IncompatibleTable {
        table: table.to_string(),
        column: column.to_string(),
        reason: reason.into(),
    }
}

fn check_struct(
    table: &str,
    prefix: &str,
    fields: &[NestedFieldRef],
    wanted: &[(&'static str, Want, Nulls)],
) -> Result<()> {
    let path = |n: &str| {
        if prefix.is_empty() {
            n.to_string()
        } else {
            format!("{prefix}.{n}")
        }
    };
    for (col, want, nulls) in wanted {
        let column = path(col);
        let field = fields
            .iter()
            .find(|f| f.name == *col)
            .ok_or_else(|| incompatible(table, &column, "is missing"))?;
        if *nulls == Nulls::Sometimes && field.required {
            return Err(incompatible(
                table,
                &column,
                "is required, but Calving writes nulls into it",
            ));
        }
        check_type(table, &column, &field.field_type, want)?;
    }
    for field in fields {
        if field.required && !wanted.iter().any(|(n, _, _)| *n == field.name) {
            return Err(incompatible(
                table,
                &path(&field.name),
                "is required, but Calving does not write it (make it optional)",
            ));
        }
    }
    Ok(())
}

fn check_type(table: &str, column: &str, ty: &Type, want: &Want) -> Result<()> {
    match (want, ty) {
        (Want::Primitive(p), Type::Primitive(q)) if p == q => Ok(()),
        (Want::Primitive(p), other) => Err(incompatible(
            table,
            column,
            format!("has type {other}, Calving writes {p}"),
        )),
        (Want::Struct(w), Type::Struct(s)) => check_struct(table, column, s.fields(), w),
        (Want::Struct(_), other) => Err(incompatible(
            table,
            column,
            format!("has type {other}, Calving writes a struct"),
        )),
        (Want::List(elem, nulls), Type::List(l)) => {
            if *nulls == Nulls::Sometimes && l.element_field.required {
                return Err(incompatible(
                    table,
                    column,
                    "has required elements, but Calving writes null elements",
                ));
            }
            check_type(
                table,
                &format!("{column}.element"),
                &l.element_field.field_type,
                elem,
            )
        }
        (Want::List(..), other) => Err(incompatible(
            table,
            column,
            format!("has type {other}, Calving writes a list"),
        )),
    }
}

/// The field id of a column of the table's current schema, by dotted name
/// (e.g. [`columns::OFFSET`]).
pub fn field_id(table: &Table, column: &str) -> Result<i32> {
    table
        .metadata()
        .current_schema()
        .field_id_by_name(column)
        .ok_or_else(|| incompatible(&table.identifier().to_string(), column, "is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_ids_and_names() {
        let s = default_schema();
        for (name, id) in [
            ("kafka", 1),
            ("value", 2),
            ("kafka.topic_id", 3),
            ("kafka.partition", 4),
            ("kafka.offset", 5),
            ("kafka.timestamp", 6),
            ("kafka.key", 7),
            ("kafka.headers", 8),
            ("kafka.headers.element", 9),
            ("kafka.headers.element.key", 10),
            ("kafka.headers.element.value", 11),
        ] {
            assert_eq!(s.field_id_by_name(name), Some(id), "{name}");
        }
        assert!(s.field_by_id(1).unwrap().required);
        assert!(!s.field_by_id(2).unwrap().required);
        assert!(!s.field_by_id(7).unwrap().required);
        assert!(s.field_by_id(9).unwrap().required);
        assert!(!s.field_by_id(11).unwrap().required);
    }

    #[test]
    fn default_spec_and_order_bind() {
        let schema = default_schema();
        let spec = default_partition_spec().bind(schema.clone()).unwrap();
        let pt = spec.partition_type(&schema).unwrap();
        assert_eq!(pt.fields()[0].name, columns::TIMESTAMP_DAY);
        assert_eq!(
            *pt.fields()[0].field_type,
            Type::Primitive(PrimitiveType::Date)
        );
        let order = default_sort_order();
        assert_eq!(
            order.fields.iter().map(|f| f.source_id).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }
}
