#!/usr/bin/env python3
"""Iceberg maintenance by other engines on Calving's tables, and the checks of
integration/maintain/run.sh. Each check prints one line, `PASS <name>` or `FAIL <name>: <why>`;
what a procedure did goes to stderr. The exit status is 1 when any check failed.

    maintain.py spark <warehouse dir> <topic>...
        Spark (pyspark, local[2], Iceberg's Spark runtime with IcebergSparkSessionExtensions,
        catalog `calving` = Iceberg's JdbcCatalog on Calving's own SQLite catalog file and the same
        warehouse) runs on each table kafka.<topic>, in this order:
          rewrite_data_files(options: min-input-files=1, rewrite-all=true)   every data file rewritten
          rewrite_manifests
          expire_snapshots(older_than => now, retain_last => 1)             files only older snapshots
                                                                             referenced are deleted
          remove_orphan_files(older_than => now + 5 s)                       anything else under the
                                                                             table location that the
                                                                             table does not reference
        One PASS line per table when every procedure ran (with what they did), and one saying
        whether every data file that existed before (those the broker wrote, that the segments'
        sidecars name) is gone from storage afterwards: if one were left, the run would not show
        that Kafka's reads survive maintenance.
    maintain.py pyiceberg-expire <warehouse dir> <topic>...
        pyiceberg's own snapshot expiry (Table.maintenance.expire_snapshots().older_than(now),
        pyiceberg 0.12): every snapshot but the current one leaves the metadata. pyiceberg deletes
        no file.
    maintain.py dups <warehouse dir> <topic> <engine> <label>
        no (kafka.topic_id, kafka.partition, kafka.offset) appears twice in the table's current
        snapshot, read by pyiceberg or DuckDB
    maintain.py rows-kept <oracle> <earliest file> <warehouse dir> <topic> <engine> <label>
        every produced data record below the partition's earliest offset (those Kafka deleted from
        its remote tier, retention.mode=keep) is still in the table, with its value
    maintain.py wait-empty <warehouse dir> <topic> <timeout s>
        waits until the table (pyiceberg) has no row; exit status 1 if it still has rows then
    maintain.py files <warehouse dir> <topic>
        prints "<data files> <sidecars> <metadata files>" under the table's location (the
        sidecars wherever they are under the warehouse)
    maintain.py live <warehouse dir> <topic> [<paths out>]
        prints "<snapshots> <live data files> <rows>" of the table (pyiceberg: the snapshots in its
        metadata, the data files of the current snapshot and their record counts); writes the live
        data files' local paths to <paths out>, one a line
    maintain.py gone <before paths> <after paths> <label>
        the data files live before (maintain.py live's paths) that are not live afterwards are gone
        from storage (a later read cannot have used them)

check.py (integration/e2e) does the comparisons with what was produced.
"""
import datetime
import json
import os
import sqlite3
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "integration", "e2e"))
from check import read_rows, result  # noqa: E402  integration/e2e/check.py
import check  # noqa: E402


def log(msg):
    print(f"maintain: {msg}", file=sys.stderr, flush=True)


def catalog_db(warehouse):
    return os.path.join(warehouse, "calving-catalog.db")


def metadata_location(warehouse, topic):
    row = sqlite3.connect(catalog_db(warehouse)).execute(
        "select metadata_location from iceberg_tables where table_namespace = ? and table_name = ?", ("kafka", topic)
    ).fetchone()
    if row is None:
        raise RuntimeError(f"no table kafka.{topic} in {catalog_db(warehouse)}")
    return row[0]


def strip_file(uri):
    for p in ("file://", "file:"):
        if uri.startswith(p):
            return uri[len(p):]
    return uri


def table_dir(warehouse, topic):
    """The table's location on the local filesystem (from its current metadata file)."""
    with open(strip_file(metadata_location(warehouse, topic))) as f:
        return strip_file(json.load(f)["location"]).rstrip("/")


def walk(d):
    out = []
    for dirpath, _, names in os.walk(d):
        out += [os.path.join(dirpath, n) for n in names]
    return out


def file_counts(warehouse, topic):
    tdir = table_dir(warehouse, topic)
    files = walk(tdir)
    data = sum(1 for f in files if f.endswith(".parquet"))
    meta = sum(1 for f in files if "/metadata/" in f)
    # Sidecars: wherever they are under the warehouse (by default <warehouse>/calving-sidecars/kafka/<topic>/...).
    sidecars = sum(1 for f in walk(warehouse) if f.endswith(".sidecar") and f"/{topic}/" in f)
    return data, sidecars, meta


def cmd_files(warehouse, topic):
    print(*file_counts(warehouse, topic))


def cmd_live(warehouse, topic, paths_out=None):
    tbl = catalog(warehouse).load_table(f"kafka.{topic}")
    files = [t.file for t in tbl.scan().plan_files()]
    if paths_out:
        with open(paths_out, "w") as f:
            f.writelines(strip_file(d.file_path) + "\n" for d in files)
    print(len(tbl.snapshots()), len(files), sum(d.record_count for d in files))


def cmd_gone(before_path, after_path, label):
    def paths(p):
        with open(p) as f:
            return {line.strip() for line in f if line.strip()}

    replaced = sorted(paths(before_path) - paths(after_path))
    left = [f for f in replaced if os.path.exists(f)]
    if not replaced:
        result(False, label, "no data file live before is gone from the current snapshot (nothing was compacted)")
    elif left:
        result(False, label, f"{len(left)} of the {len(replaced)} replaced data files still exist (e.g. {left[0]})")
    else:
        result(True, f"{label}: the {len(replaced)} data files compaction replaced are gone from storage")


# ------------------------------------------------------------------------------------------------
# Spark


def spark_session(warehouse):
    os.environ["TZ"] = "UTC"
    import time

    time.tzset()
    from pyspark.sql import SparkSession

    jars = os.environ.get("CALVING_SPARK_JARS")
    if not jars:
        sys.exit("maintain.py spark: set CALVING_SPARK_JARS (iceberg-spark-runtime and sqlite-jdbc jars)")
    c = "spark.sql.catalog.calving"
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("calving-maintain")
        .config("spark.jars", jars)
        .config("spark.driver.memory", "768m")
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.local.dir", os.environ.get("CALVING_SPARK_LOCAL_DIR", "/tmp"))
        # remove_orphan_files refuses an older_than less than 24 hours ago unless the session's conf
        # says spark.testing (as Iceberg's own tests do).
        .config("spark.testing", "true")
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config(c, "org.apache.iceberg.spark.SparkCatalog")
        .config(c + ".catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
        # Calving's own catalog file, written by Spark's commits (the broker keeps running).
        .config(c + ".uri", "jdbc:sqlite:" + catalog_db(warehouse))
        .config(c + ".jdbc.schema-version", "V1")
        .config(c + ".warehouse", "file://" + warehouse)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def ts_literal(dt):
    return "TIMESTAMP '" + dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "'"


def cmd_spark(warehouse, *topics):
    spark = spark_session(warehouse)
    try:
        for topic in topics:
            ident = f"kafka.{topic}"
            name = f"Spark maintenance of {ident}"
            try:
                tdir = table_dir(warehouse, topic)
                before = set(walk(tdir))
                data_before = {f for f in before if f.endswith(".parquet")}
                done = []
                step = "rewrite_data_files"
                r = spark.sql(
                    f"CALL calving.system.rewrite_data_files(table => '{ident}', "
                    "options => map('min-input-files', '1', 'rewrite-all', 'true'))"
                ).collect()[0].asDict()
                log(f"{ident}: rewrite_data_files: {r}")
                done.append(f"rewrite_data_files rewrote {r['rewritten_data_files_count']} data files into "
                            f"{r['added_data_files_count']}")
                step = "rewrite_manifests"
                r = spark.sql(f"CALL calving.system.rewrite_manifests('{ident}')").collect()[0].asDict()
                log(f"{ident}: rewrite_manifests: {r}")
                done.append(f"rewrite_manifests {r['rewritten_manifests_count']} into {r['added_manifests_count']}")
                step = "expire_snapshots"
                snaps = spark.sql(f"SELECT count(*) AS n FROM calving.{ident}.snapshots").collect()[0]["n"]
                now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
                r = spark.sql(
                    f"CALL calving.system.expire_snapshots(table => '{ident}', older_than => {ts_literal(now)}, "
                    "retain_last => 1)"
                ).collect()[0].asDict()
                log(f"{ident}: expire_snapshots: {r}")
                left = spark.sql(f"SELECT count(*) AS n FROM calving.{ident}.snapshots").collect()[0]["n"]
                done.append(f"expire_snapshots {snaps} -> {left} snapshots, deleted {r['deleted_data_files_count']} "
                            f"data files, {r['deleted_manifest_files_count']} manifests, "
                            f"{r['deleted_manifest_lists_count']} manifest lists")
                step = "remove_orphan_files"
                later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
                rows = spark.sql(
                    f"CALL calving.system.remove_orphan_files(table => '{ident}', older_than => {ts_literal(later)})"
                ).collect()
                orphans = [strip_file(x["orphan_file_location"]) for x in rows]
                kinds = Counter(
                    "sidecar" if o.endswith(".sidecar") else "data" if o.endswith(".parquet")
                    else "metadata" if "/metadata/" in o else "other" for o in orphans)
                log(f"{ident}: remove_orphan_files deleted {len(orphans)} files: {dict(kinds)}")
                for o in orphans[:5]:
                    log(f"  {o}")
                done.append(f"remove_orphan_files deleted {len(orphans)} files" + (
                    " (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")" if kinds else ""))
            except Exception as e:  # noqa: BLE001  a failed procedure is a FAIL line, the run goes on
                result(False, name, f"{step} failed: {str(e).strip().splitlines()[0][:400]}")
                continue
            result(True, f"{name}: " + "; ".join(done))
            gone = sorted(f for f in data_before if not os.path.exists(f))
            left = sorted(data_before - set(gone))
            result(not left and bool(data_before),
                   f"{name}: every data file the broker wrote is gone from storage ({len(gone)} files)",
                   f"{len(left)} of {len(data_before)} data files from before maintenance still exist "
                   f"(e.g. {left[0] if left else '-'}): the run would not test reads after maintenance")
    finally:
        spark.stop()


# ------------------------------------------------------------------------------------------------
# pyiceberg


def catalog(warehouse):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("calving", uri=f"sqlite:///{catalog_db(warehouse)}", warehouse=f"file://{warehouse}")


def cmd_pyiceberg_expire(warehouse, *topics):
    cat = catalog(warehouse)
    for topic in topics:
        name = f"pyiceberg expire_snapshots on kafka.{topic}"
        try:
            tbl = cat.load_table(f"kafka.{topic}")
            if not hasattr(tbl, "maintenance"):
                result(False, name, "this pyiceberg has no Table.maintenance (0.12 has)")
                continue
            before = len(tbl.snapshots())
            current = tbl.current_snapshot().snapshot_id if tbl.current_snapshot() else None
            now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
            tbl.maintenance.expire_snapshots().older_than(now).commit()
            tbl = cat.load_table(f"kafka.{topic}")
            after = len(tbl.snapshots())
            kept = tbl.current_snapshot().snapshot_id if tbl.current_snapshot() else None
            log(f"kafka.{topic}: pyiceberg expired {before - after} of {before} snapshots, current {kept}")
        except Exception as e:  # noqa: BLE001
            result(False, name, f"{type(e).__name__}: {str(e).strip()[:400]}")
            continue
        result(after == 1 and kept == current, f"{name}: {before} -> {after} snapshots (the current one kept)",
               f"{before} -> {after} snapshots, current {current} -> {kept}")


def keys(warehouse, topic, engine):
    """[(topic_id, partition, offset)] of every row of the current snapshot."""
    if engine == "pyiceberg":
        tbl = catalog(warehouse).load_table(f"kafka.{topic}")
        rows = tbl.scan(selected_fields=("kafka.topic_id", "kafka.partition", "kafka.offset")).to_arrow().to_pylist()
        return [(str(r["kafka"]["topic_id"]), r["kafka"]["partition"], r["kafka"]["offset"]) for r in rows]
    if engine == "duckdb":
        import duckdb
        import duckdb_extensions

        duckdb_extensions.import_extension("avro")
        duckdb_extensions.import_extension("iceberg")
        con = duckdb.connect()
        con.execute("LOAD avro")
        con.execute("LOAD iceberg")
        loc = metadata_location(warehouse, topic)
        rows = con.execute(
            f"select kafka.topic_id::varchar, kafka.partition, kafka.offset from iceberg_scan('{loc}')").fetchall()
        return [(str(t), p, o) for t, p, o in rows]
    raise SystemExit(f"unknown engine {engine}")


def cmd_dups(warehouse, topic, engine, label):
    name = f"{label} kafka.{topic} ({engine})"
    try:
        ks = keys(warehouse, topic, engine)
    except Exception as e:  # noqa: BLE001
        result(False, name, f"{type(e).__name__}: {str(e).strip()[:400]}")
        return
    counts = Counter(ks)
    dup = {k: n for k, n in counts.items() if n > 1}
    if dup:
        per_part = Counter(k[1] for k in dup)
        first = min(dup)
        result(False, name, f"{len(dup)} of {len(counts)} (topic id, partition, offset) appear more than once "
                            f"({sum(dup.values()) - len(dup)} extra rows; per partition {dict(sorted(per_part.items()))}; "
                            f"e.g. partition {first[1]} offset {first[2]} x{dup[first]})")
    else:
        ids = {k[0] for k in ks}
        result(True, f"{name}: {len(ks)} rows, each (topic id, partition, offset) once ({len(ids)} topic id)")


def cmd_rows_kept(oracle, earliest_path, warehouse, topic, engine, label):
    name = f"{label} kafka.{topic} ({engine})"
    earliest = {}
    with open(earliest_path) as f:
        for line in f:
            if line.strip():
                t, p, e = line.split()
                earliest[int(p)] = int(e)
    gone = [r for r in read_rows(oracle) if r["topic"] == topic and r["offset"] < earliest.get(r["partition"], -1)]
    lines = check.read_table(name, engine, warehouse, topic)
    if lines is None:
        return
    table = {}
    for line in lines:
        d = json.loads(line)
        table[(d["partition"], d["offset"])] = "-" if d["value"] is None else d["value"]
    missing = [r for r in gone if (r["partition"], r["offset"]) not in table]
    differ = [r for r in gone if (r["partition"], r["offset"]) in table and table[(r["partition"], r["offset"])] != r["value"]]
    if not gone:
        result(False, name, "Kafka deleted no record (earliest offsets " + str(earliest) + ")")
    elif missing or differ:
        r = (missing or differ)[0]
        result(False, name, f"of the {len(gone)} records Kafka deleted, {len(missing)} are not in the table and "
                            f"{len(differ)} differ (e.g. partition {r['partition']} offset {r['offset']})")
    else:
        per = defaultdict(int)
        for r in gone:
            per[r["partition"]] += 1
        result(True, f"{name}: the {len(gone)} records Kafka deleted from its remote tier are still rows "
                     f"(per partition {dict(sorted(per.items()))})")


def cmd_wait_empty(warehouse, topic, timeout_s):
    """Waits (pyiceberg, every second) until the table has no row; exit status 0 if it came."""
    import time

    deadline = time.time() + float(timeout_s)
    n = None
    while True:
        try:
            tbl = catalog(warehouse).load_table(f"kafka.{topic}")
            n = tbl.scan(selected_fields=("kafka.offset",)).to_arrow().num_rows
        except Exception as e:  # noqa: BLE001
            log(f"wait-empty kafka.{topic}: {type(e).__name__}: {e}")
        if n == 0:
            sys.exit(0)
        if time.time() > deadline:
            log(f"wait-empty kafka.{topic}: still {n} rows after {timeout_s} s")
            sys.exit(1)
        time.sleep(1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"spark": cmd_spark, "pyiceberg-expire": cmd_pyiceberg_expire, "dups": cmd_dups, "rows-kept": cmd_rows_kept,
     "files": cmd_files, "live": cmd_live, "gone": cmd_gone, "wait-empty": cmd_wait_empty}[cmd](*args)
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
