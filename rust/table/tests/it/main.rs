//! Integration tests of calving-table, in one test binary (iceberg and its catalogs link once).
//!
//! - `data_file`: DataFiles built from ArrowWriter footers match the Parquet read back.
//! - `sql_catalog`: table creation/adoption, exactly-once appends, reconciliation, concurrency,
//!   "commit state unknown", on the SQLite SQL catalog.
//! - `readers`: pyiceberg and DuckDB read what we committed (invariant 8).
//! - `rest_catalog`: the same operations through Apache Iceberg's REST fixture.

mod common;
mod data_file;
mod faults;
mod readers;
mod rest_catalog;
mod sql_catalog;
