//! Integration tests of calving-table, in one test binary (iceberg and its catalogs link once).
//!
//! - `data_file`: DataFiles built from ArrowWriter footers match the Parquet read back.
//! - `sql_catalog`: table creation/adoption, exactly-once appends against the ledger, concurrent
//!   brokers, the retry policy, "commit state unknown", on the SQLite SQL catalog.
//! - `ledger`: the ledger is compact, survives snapshot expiry, and is rebuilt from the rows when
//!   no snapshot carries it.
//! - `remove`: removing offsets' rows by what the files hold (rewrite shared files, drop whole
//!   ones).
//! - `expiry`: snapshot expiry by count as well as age (`calving.history.expire.max-snapshots`).
//! - `faults`: failure injection (catalog loads, SQLite triggers, an HTTP proxy for REST).
//! - `manifest_merge`: appends merge small manifests once `commit.manifest.min-count-to-merge`
//!   of them would be listed; every file keeps its snapshot and sequence numbers.
//! - `readers`: pyiceberg and DuckDB read what we committed (invariant 8).
//! - `rest_catalog`: the same operations through Apache Iceberg's REST fixture.

mod common;
mod data_file;
mod expiry;
mod faults;
mod ledger;
mod manifest_merge;
mod readers;
mod remove;
mod rest_catalog;
mod sql_catalog;
