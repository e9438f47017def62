#!/usr/bin/env python3
"""Reads a Calving table with an independent Iceberg reader and prints one JSON line per row.

    read_table.py pyiceberg|duckdb <catalog.db> <warehouse dir> <namespace.table> [--all-columns]

pyiceberg reads through its SqlCatalog on Calving's SQLite catalog file; DuckDB (its iceberg
extension, installed from PyPI, offline) reads the table's current metadata file that the same
catalog points at. Rows come out as {partition, offset, timestamp (µs), key, value (hex or null),
headers [[key, hex or null], ...], topic_id}, sorted by (topic_id, partition, offset).

With --all-columns (typed tables, value.mode value_schema_*), each line is instead every column of
the row: {"kafka": {...the kafka struct, timestamp in µs...}, "value": hex or null, "<column>": ...},
with values as JSON: bytes as hex, timestamps as µs since the epoch, dates and times in ISO form,
decimals as strings, uuids as 32 hex digits, maps as [[key, value], ...] in stored order.
"""
import decimal
import uuid
import datetime
import json
import sqlite3
import sys

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def micros(ts):
    return (ts - EPOCH) // datetime.timedelta(microseconds=1)


def hexed(b):
    return None if b is None else bytes(b).hex()


def as_json(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        if isinstance(v, str) and len(v) == 36 and v.count("-") == 4:
            try:
                return uuid.UUID(v).hex  # DuckDB hands uuids out as text
            except ValueError:
                return v
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, uuid.UUID):
        return v.hex
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            return (v - datetime.datetime(1970, 1, 1)) // datetime.timedelta(microseconds=1)
        return micros(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: as_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [as_json(x) for x in v]
    return str(v)


def main():
    engine, db, warehouse, ident = sys.argv[1:5]
    all_columns = "--all-columns" in sys.argv[5:]
    namespace, name = ident.split(".")
    if engine == "pyiceberg":
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog("calving", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
        rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
    elif engine == "duckdb":
        import duckdb
        import duckdb_extensions

        duckdb_extensions.import_extension("avro")
        duckdb_extensions.import_extension("iceberg")
        (location,) = sqlite3.connect(db).execute(
            "select metadata_location from iceberg_tables where table_namespace = ? and table_name = ?",
            (namespace, name),
        ).fetchone()
        con = duckdb.connect()
        con.execute("LOAD avro")
        con.execute("LOAD iceberg")
        columns = "*" if all_columns else "kafka, value"
        rows = con.execute(f"select {columns} from iceberg_scan('{location}')").fetch_arrow_table().to_pylist()
    else:
        sys.exit(f"unknown engine {engine}")
    if all_columns:
        full = [as_json(r) for r in rows]
        full.sort(key=lambda r: (r["kafka"]["topic_id"], r["kafka"]["partition"], r["kafka"]["offset"]))
        for r in full:
            print(json.dumps(r))
        return
    out = []
    for r in rows:
        k = r["kafka"]
        out.append(
            {
                "topic_id": k["topic_id"],
                "partition": k["partition"],
                "offset": k["offset"],
                "timestamp": micros(k["timestamp"]),
                "key": hexed(k["key"]),
                "value": hexed(r["value"]),
                "headers": [[h["key"], hexed(h["value"])] for h in (k["headers"] or [])],
            }
        )
    out.sort(key=lambda r: (r["topic_id"], r["partition"], r["offset"]))
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
