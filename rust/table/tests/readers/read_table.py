#!/usr/bin/env python3
"""Reads a Calving table with independent Iceberg implementations and prints what they see as JSON.

Used by calving-table's integration tests (DESIGN.md invariant 8: any engine reads the table).

  read_table.py --table kafka.events --sql-uri sqlite:////abs/calving-catalog.db \
      --warehouse file:///abs/warehouse [--catalog-name calving] [--metadata <metadata.json>] \
      [--reader pyiceberg] [--reader duckdb]
  read_table.py --table kafka.events --rest-uri http://127.0.0.1:PORT --warehouse file:///abs/wh ...
  read_table.py ... --rollback-to SNAPSHOT_ID     (pyiceberg: set main back to that snapshot, print nothing)
  read_table.py ... --rewrite                     (pyiceberg: overwrite the table with its own rows, as
                                                   another engine's compaction does; prints the new
                                                   snapshot ids and the data files as JSON)

Readers:
  pyiceberg  pyiceberg's SqlCatalog (the same SQLite file) or RestCatalog; scans all rows and lists
             the snapshots with their summaries.
  duckdb     DuckDB's iceberg extension (installed offline from the duckdb-extension-* wheels) on
             the table's metadata.json via iceberg_scan; also lists iceberg_snapshots.

Output: {"<reader>": {"rows": [...], "snapshots": [...], ...}}; rows sorted by (partition, offset),
binary values as hex. Install the readers with tests/install-deps.sh.
"""

import argparse
import datetime
import json
import sys


def hexify(b):
    return None if b is None else bytes(b).hex()


def row_json(topic_id, partition, offset, ts_us, key, headers, value):
    return {
        "topic_id": topic_id,
        "partition": partition,
        "offset": offset,
        "timestamp_us": ts_us,
        "key": hexify(key),
        "headers": None if headers is None else [[h["key"], hexify(h["value"])] for h in headers],
        "value": hexify(value),
    }


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def load_pyiceberg_catalog(args):
    if args.rest_uri:
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(args.catalog_name, uri=args.rest_uri, warehouse=args.warehouse)
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(args.catalog_name, uri=args.sql_uri, warehouse=args.warehouse)


def read_pyiceberg(args):
    table = load_pyiceberg_catalog(args).load_table(args.table)
    rows = []
    for r in table.scan().to_arrow().to_pylist():
        k = r["kafka"]
        ts_us = (k["timestamp"] - EPOCH) // datetime.timedelta(microseconds=1)
        rows.append(row_json(k["topic_id"], k["partition"], k["offset"], ts_us, k["key"], k["headers"], r["value"]))
    rows.sort(key=lambda r: (r["partition"], r["offset"]))
    current = table.current_snapshot()
    snapshots = [
        {
            "snapshot_id": s.snapshot_id,
            "parent_id": s.parent_snapshot_id,
            "sequence_number": s.sequence_number,
            "operation": s.summary.operation.value if s.summary else None,
            "summary": dict(s.summary.additional_properties) if s.summary else {},
        }
        for s in sorted(table.snapshots(), key=lambda s: s.sequence_number)
    ]
    spec = table.spec()
    return {
        "rows": rows,
        "snapshots": snapshots,
        "current_snapshot_id": current.snapshot_id if current else None,
        "format_version": table.format_version,
        "partition_fields": [[f.name, str(f.transform), f.source_id] for f in spec.fields],
        "properties": dict(table.properties),
        "metadata_location": table.metadata_location,
    }


def read_duckdb(args):
    import duckdb
    import duckdb_extensions

    con = duckdb.connect()
    for ext in ("avro", "iceberg"):
        duckdb_extensions.import_extension(ext, con=con)
        con.execute(f"LOAD {ext}")
    metadata = args.metadata
    if metadata is None:
        metadata = load_pyiceberg_catalog(args).load_table(args.table).metadata_location
    result = con.execute(
        "SELECT kafka.topic_id, kafka.partition, kafka.\"offset\", epoch_us(kafka.\"timestamp\"), "
        "kafka.key, kafka.headers, \"value\" FROM iceberg_scan(?) ORDER BY kafka.partition, kafka.\"offset\"",
        [metadata],
    ).fetchall()
    rows = [row_json(*r) for r in result]
    cur = con.execute("SELECT * FROM iceberg_snapshots(?) ORDER BY sequence_number", [metadata])
    names = [d[0] for d in cur.description]
    snapshots = [{n: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for n, v in zip(names, r)} for r in cur.fetchall()]
    count = con.execute("SELECT count(*) FROM iceberg_scan(?)", [metadata]).fetchone()[0]
    return {"rows": rows, "snapshots": snapshots, "count": count, "metadata_location": metadata}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True)
    ap.add_argument("--sql-uri")
    ap.add_argument("--rest-uri")
    ap.add_argument("--warehouse")
    ap.add_argument("--catalog-name", default="calving")
    ap.add_argument("--metadata")
    ap.add_argument("--reader", action="append", choices=["pyiceberg", "duckdb"])
    ap.add_argument("--rollback-to", type=int)
    ap.add_argument("--rewrite", action="store_true")
    args = ap.parse_args()
    if not (args.sql_uri or args.rest_uri):
        ap.error("one of --sql-uri or --rest-uri is required")

    if args.rollback_to is not None:
        table = load_pyiceberg_catalog(args).load_table(args.table)
        table.manage_snapshots().set_current_snapshot(snapshot_id=args.rollback_to).commit()
        return

    if args.rewrite:
        table = load_pyiceberg_catalog(args).load_table(args.table)
        before = {s.snapshot_id for s in table.snapshots()}
        rows = table.scan().to_arrow()
        table.overwrite(rows)
        table = table.refresh()
        files = [
            {"path": t.file.file_path, "records": t.file.record_count}
            for t in table.scan().plan_files()
        ]
        new = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in before]
        json.dump({"snapshots": new, "files": files}, sys.stdout)
        return

    readers = {"pyiceberg": read_pyiceberg, "duckdb": read_duckdb}
    out = {name: readers[name](args) for name in (args.reader or ["pyiceberg", "duckdb"])}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
