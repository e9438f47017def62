//! Schema evolution commits: a new current schema whose field ids the caller chose.
//!
//! Calving's schema modes (issue 4) add value columns as writer schemas evolve, with field ids
//! stable by name path (`calving_schema::evolve` picks them). iceberg-rust 0.10.1's
//! `Transaction::update_schema()` assigns ids itself when it adds a column, so the ids `evolve`
//! chose could not be kept; this module commits the evolved schema as it is (`AddSchema` +
//! `SetCurrentSchema`) through Calving's own commit path (`snapshot_commit`: SQL compare-and-set,
//! REST `CommitTableRequest`), under the requirements that the table's current schema and last
//! assigned field id are still the ones the schema was evolved from. A concurrent evolution
//! makes the commit fail with [`Error::CommitConflict`] (retriable): the caller reloads the table
//! and evolves again.
//!
//! Iceberg reads a data file written with an older schema by field id, so columns added later
//! read as null in older files, and a promoted column (`int` → `long`) reads widened.

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{TableRequirement, TableUpdate};

use crate::error::Result;
use crate::CalvingCatalog;

/// Makes `schema` (field ids as given) the current schema of `table`, if the table's current
/// schema is still the one it was evolved from. Returns the table as committed.
pub async fn commit_schema(catalog: &CalvingCatalog, table: &Table, schema: Schema) -> Result<Table> {
    let metadata = table.metadata();
    let requirements = vec![
        TableRequirement::UuidMatch { uuid: metadata.uuid() },
        TableRequirement::CurrentSchemaIdMatch { current_schema_id: metadata.current_schema_id() },
        TableRequirement::LastAssignedFieldIdMatch { last_assigned_field_id: metadata.last_column_id() },
    ];
    let fields = schema.highest_field_id();
    let updates = vec![TableUpdate::AddSchema { schema }, TableUpdate::SetCurrentSchema { schema_id: -1 }];
    let committed = crate::snapshot_commit::commit(catalog, table, requirements, updates).await?;
    tracing::info!(table = %table.identifier(), highest_field_id = fields, "committed an evolved schema");
    Ok(committed)
}
