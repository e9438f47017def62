#!/usr/bin/env python3
"""Helpers of integration/e2e/connect-compare.sh.

    compare.py committed <catalog.db> <namespace.table>
        rows of the table's current snapshot (summary total-records) as its SQLite JDBC catalog
        points at it; 0 while the table or its first snapshot does not exist (cheap: JSON only)
    compare.py calving-rows <catalog.db> <namespace.table> <end offset>
        Calving's table read by pyiceberg: "rows bytes rows_total", rows and keys+values bytes of
        the records at offsets below <end offset> (the produced data; the end marker is at it)
    compare.py connect-rows <catalog.db> <namespace.table>
        the Iceberg sink's table read by pyiceberg: "rows markers snapshots data_files columns"
    compare.py summary key=value...
        the comparison as a Markdown table and one JSON line (prefix "connect-compare-json: ")
Both tables are read through the metadata file their catalog names (pyiceberg's StaticTable), so
neither catalog is written to.
"""
import json
import sqlite3
import sys
import urllib.parse


def metadata_location(db, ident):
    namespace, name = ident.split(".")
    try:
        row = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
            "select metadata_location from iceberg_tables where table_namespace = ? and table_name = ?",
            (namespace, name)).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def static_table(db, ident):
    from pyiceberg.table import StaticTable

    location = metadata_location(db, ident)
    if location is None:
        sys.exit(f"compare.py: no table {ident} in {db}")
    return StaticTable.from_metadata(location)


def committed(db, ident):
    location = metadata_location(db, ident)
    if location is None:
        print(0)
        return
    path = urllib.parse.urlparse(location).path if location.startswith("file:") else location
    meta = json.load(open(path))
    current = meta.get("current-snapshot-id")
    for s in meta.get("snapshots", []):
        if s["snapshot-id"] == current:
            print(int(s["summary"].get("total-records", 0)))
            return
    print(0)


def calving_rows(db, ident, end):
    import pyarrow.compute as pc
    from pyiceberg.expressions import LessThan

    end = int(end)
    table = static_table(db, ident)
    total = table.scan(selected_fields=("kafka.offset",)).to_arrow().num_rows
    arrow = table.scan(row_filter=LessThan("kafka.offset", end),
                       selected_fields=("kafka.offset", "kafka.key", "value")).to_arrow()
    size = 0
    for col in (pc.struct_field(arrow["kafka"], "key"), arrow["value"]):
        size += pc.sum(pc.binary_length(col)).as_py() or 0
    print(arrow.num_rows, size, total)


def connect_rows(db, ident):
    import pyarrow.compute as pc

    table = static_table(db, ident)
    arrow = table.scan(selected_fields=("id",)).to_arrow()
    markers = pc.sum(pc.equal(arrow["id"], -1)).as_py() or 0
    files = len(list(table.scan().plan_files()))
    columns = ",".join(f.name for f in table.schema().fields)
    print(arrow.num_rows, markers, len(table.snapshots()), files, columns)


def summary(*pairs):
    v = dict(p.split("=", 1) for p in pairs)
    gib = int(v["bytes"]) / 2**30
    cal, plain, conn = float(v["cpu_calving"]), float(v["cpu_plain"]), float(v["cpu_connect"])
    both = plain + conn
    per = lambda s: s / gib
    ratio = cal / both
    target = 1 / 3
    rows = [
        ("Calving broker (ingest + convert + commit to Iceberg)", cal, v["wall_calving"]),
        ("plain-tiering broker (ingest + LocalTieredStorage copy + serving the sink)", plain, v["wall_connect"]),
        ("Kafka Connect worker (Iceberg sink)", conn, v["wall_connect"]),
        ("Connect + plain tiering", both, v["wall_connect"]),
    ]
    print(f"records: {v['records']} (+1 end marker) of {gib:.3f} GiB (keys+values: {v['bytes']} bytes), "
          f"ProducerPerformance, lz4, {v['segment_bytes']}-byte segments")
    print()
    print("| process | CPU-seconds | window (s) | CPU-s per GiB of records |")
    print("|---|---:|---:|---:|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.1f} | {wall} | {per(cpu):.1f} |")
    print()
    print(f"Calving / (Connect + plain tiering) = {ratio:.3f} (target <= {target:.3f}: "
          f"{'met' if ratio <= target else 'NOT met'})")
    idle = {k: float(v[f"idle_{k}"]) for k in ("calving", "plain", "connect")}
    wc, wb = float(v["wall_calving"]), float(v["wall_connect"])
    net_cal = cal - idle["calving"] * wc
    net_both = plain - idle["plain"] * wb + conn - idle["connect"] * wb
    net_ratio = net_cal / net_both
    print(f"idle CPU (10 s before the first record, CPU-s per s): Calving broker {idle['calving']:.3f}, "
          f"plain-tiering broker {idle['plain']:.3f}, Connect worker {idle['connect']:.3f}; with each process's idle "
          f"rate times its window taken out: Calving {net_cal:.1f} CPU-s ({net_cal / gib:.1f} per GiB), Connect + plain "
          f"tiering {net_both:.1f} CPU-s ({net_both / gib:.1f} per GiB), ratio {net_ratio:.3f}")
    print(f"rows in Calving's table below the end marker: {v['rows_calving']}; rows in the sink's table: "
          f"{v['rows_connect']} (records + end marker)")
    print(f"sink: commit interval {v['commit_ms']} ms (the sink's default: 300000 ms = 5 min), "
          f"{v['sink_snapshots']} snapshots, {v['sink_files']} data files; last row committed "
          f"{v['sink_lag']} s after the producer finished")
    print(f"on disk: Calving's warehouse {v['mib_calving_warehouse']} MiB (the table: raw key/value bytes + Kafka "
          f"metadata); side B: LocalTieredStorage's segment copies {v['mib_plain_remote']} MiB + the sink's warehouse "
          f"{v['mib_sink_warehouse']} MiB (parsed JSON columns)")
    out = {
        "date": v["date"], "loadavg": v["loadavg"], "kafka": v["kafka"], "iceberg_sink": v["iceberg"],
        "records": int(v["records"]), "bytes": int(v["bytes"]), "gib": round(gib, 4),
        "cpu_s": {"calving_broker": cal, "plain_tiering_broker": plain, "connect_worker": conn,
                  "connect_plus_plain_tiering": round(both, 2)},
        "cpu_s_per_gib": {"calving_broker": round(per(cal), 2), "plain_tiering_broker": round(per(plain), 2),
                          "connect_worker": round(per(conn), 2), "connect_plus_plain_tiering": round(per(both), 2)},
        "ratio_calving_over_connect_plus_plain": round(ratio, 4), "target": "<= 1/3", "target_met": ratio <= target,
        "rows": {"calving": int(v["rows_calving"]), "connect": int(v["rows_connect"])},
        "idle_cpu_s_per_s": idle, "ratio_net_of_idle": round(net_ratio, 4),
        "disk_mib": {"calving_warehouse": int(v["mib_calving_warehouse"]), "plain_remote": int(v["mib_plain_remote"]),
                     "sink_warehouse": int(v["mib_sink_warehouse"])},
        "commit_interval_ms": int(v["commit_ms"]), "wall_s": {"calving": float(v["wall_calving"]),
                                                              "connect": float(v["wall_connect"])},
    }
    print("connect-compare-json: " + json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"committed": committed, "calving-rows": calving_rows, "connect-rows": connect_rows, "summary": summary}[cmd](*args)
