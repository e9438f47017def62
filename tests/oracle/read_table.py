#!/usr/bin/env python3
"""Reads a Calving table with an independent Iceberg reader and prints one JSON line per row.

    read_table.py pyiceberg|duckdb <catalog.db> <warehouse dir> <namespace.table>

pyiceberg reads through its SqlCatalog on Calving's SQLite catalog file; DuckDB (its iceberg
extension, installed from PyPI, offline) reads the table's current metadata file that the same
catalog points at. Rows come out as {partition, offset, timestamp (µs), key, value (hex or null),
headers [[key, hex or null], ...], topic_id}, sorted by (topic_id, partition, offset).
"""
import datetime
import json
import sqlite3
import sys

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def micros(ts):
    return (ts - EPOCH) // datetime.timedelta(microseconds=1)


def hexed(b):
    return None if b is None else bytes(b).hex()


def main():
    engine, db, warehouse, ident = sys.argv[1:5]
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
        rows = con.execute(f"select kafka, value from iceberg_scan('{location}')").fetch_arrow_table().to_pylist()
    else:
        sys.exit(f"unknown engine {engine}")
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
