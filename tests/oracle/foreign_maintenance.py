#!/usr/bin/env python3
"""Maintains a Calving table the way another engine would, with pyiceberg (not Calving's code).

    foreign_maintenance.py <catalog.db> <warehouse dir> <namespace.table> <step> [<step> ...]

Steps, run in order:
  rewrite   every live row read back and written again by pyiceberg's overwrite, sorted by
            (kafka.partition, kafka.offset): new data files holding the rows of several Kafka
            partitions and segments, the old files dropped from the table (what Spark's
            rewrite_data_files does to Calving's files); the new snapshot carries no Calving
            summary (no ledger)
  drop:<lo>-<hi>
            like rewrite, without the rows of offsets lo..=hi (another engine deleting rows)
  expire    every snapshot but the current one expired (pyiceberg's maintenance API)
  orphans   every file under the table's location that the current metadata does not reach
            deleted (what Spark's remove_orphan_files does with older_than = now): old metadata
            files, manifests and manifest lists of expired snapshots, the data files they alone
            referenced, and anything else (such as sidecars written under the table location)
Prints one JSON line per step with what it did.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog


def local(path):
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def reachable(table):
    io = table.io
    out = {local(table.metadata_location)}
    for snapshot in table.metadata.snapshots:
        out.add(local(snapshot.manifest_list))
        for manifest in snapshot.manifests(io):
            out.add(local(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                out.add(local(entry.data_file.file_path))
    return out


def main():
    catalog_db, warehouse, name, *steps = sys.argv[1:]
    catalog = SqlCatalog("calving", uri=f"sqlite:///{catalog_db}", warehouse=f"file://{warehouse}")
    table = catalog.load_table(name)
    for step in steps:
        if step == "rewrite" or step.startswith("drop:"):
            rows = table.scan().to_arrow()
            if step.startswith("drop:"):
                lo, hi = (int(x) for x in step[len("drop:"):].split("-"))
                offsets = pc.struct_field(rows["kafka"], "offset")
                rows = rows.filter(pc.invert(pc.and_(pc.greater_equal(offsets, lo), pc.less_equal(offsets, hi))))
            keys = pa.table({
                "p": pc.struct_field(rows["kafka"], "partition"),
                "o": pc.struct_field(rows["kafka"], "offset"),
            })
            rows = rows.take(pc.sort_indices(keys, sort_keys=[("p", "ascending"), ("o", "ascending")]))
            before = len(table.inspect.files())
            table.overwrite(rows)
            table = catalog.load_table(name)
            print(json.dumps({"step": step, "rows": rows.num_rows, "files_before": before, "files_after": len(table.inspect.files())}))
        elif step == "expire":
            current = table.current_snapshot().snapshot_id
            old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != current]
            if old:
                table.maintenance.expire_snapshots().by_ids(old).commit()
            table = catalog.load_table(name)
            print(json.dumps({"step": step, "expired": len(old), "left": len(table.metadata.snapshots)}))
        elif step == "orphans":
            keep = reachable(table)
            root = local(table.metadata.location)
            deleted = []
            for d, _, files in os.walk(root):
                for f in files:
                    p = os.path.join(d, f)
                    if p not in keep:
                        os.remove(p)
                        deleted.append(p)
            print(json.dumps({"step": step, "deleted": len(deleted)}))
        else:
            sys.exit(f"unknown step {step!r}")


if __name__ == "__main__":
    main()
