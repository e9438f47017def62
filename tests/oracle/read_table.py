#!/usr/bin/env python3
"""Reads a Calving table with an independent Iceberg reader and prints one JSON line per row.

    read_table.py pyiceberg|duckdb|spark <catalog.db> <warehouse dir> <namespace.table> [--all-columns]

pyiceberg reads through its SqlCatalog on Calving's SQLite catalog file, or, when <catalog.db>
is an http:// URI, through its RestCatalog at that URI (integration/cluster/run.sh), or, when it
is a postgresql:// URI, through its SqlCatalog on that PostgreSQL database (psycopg2;
integration/cluster/run.sh with CALVING_CLUSTER_CATALOG=postgres), with the storage properties
in $CALVING_READ_S3_PROPS (key=value lines: s3.endpoint, s3.access-key-id, ...); DuckDB (its
iceberg extension, installed from PyPI, offline) reads the table's current metadata file that the
same catalog points at (asked of the SQLite file or the PostgreSQL database with SQL, of a REST
catalog with a plain HTTP GET of the table), on S3 through its httpfs extension with the same
storage properties. Spark (pyspark, local[1]) reads through Iceberg's SparkCatalog with its
JdbcCatalog on a copy of the catalog file (a reader never writes to Calving's own); the jars (iceberg-spark-runtime, sqlite-jdbc) come from
$CALVING_SPARK_JARS (comma-separated paths, see integration/typed/resolve-jars.sh). Rows come out as {partition, offset, timestamp (µs), key, value (hex or null),
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


def s3_props():
    """The storage properties of $CALVING_READ_S3_PROPS (key=value lines)."""
    import os

    lines = os.environ.get("CALVING_READ_S3_PROPS", "").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def metadata_location(db, namespace, name):
    """The table's current metadata file, as its catalog (SQLite file, PostgreSQL or REST) names it."""
    query = "select metadata_location from iceberg_tables where table_namespace = {0} and table_name = {0}"
    if db.startswith("http://"):
        import urllib.request

        prefix = json.load(urllib.request.urlopen(f"{db}/v1/config")).get("overrides", {}).get("prefix")
        base = f"{db}/v1/{prefix}" if prefix else f"{db}/v1"
        return json.load(urllib.request.urlopen(f"{base}/namespaces/{namespace}/tables/{name}"))["metadata-location"]
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg2

        with psycopg2.connect(db) as con, con.cursor() as cur:
            cur.execute(query.format("%s"), (namespace, name))
            (location,) = cur.fetchone()
            return location
    (location,) = sqlite3.connect(db).execute(query.format("?"), (namespace, name)).fetchone()
    return location


def spark_rows(db, warehouse, ident):
    """Every row of the table as read by Spark, as plain Python values (maps as [(key, value)])."""
    import os
    import shutil
    import tempfile
    import time

    os.environ["TZ"] = "UTC"  # pyspark hands timestamps out as naive local datetimes
    time.tzset()
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    jars = os.environ.get("CALVING_SPARK_JARS")
    if not jars:
        sys.exit("read_table.py spark: set CALVING_SPARK_JARS (iceberg-spark-runtime and sqlite-jdbc jars)")
    tmp = tempfile.mkdtemp(prefix="calving-spark-")
    try:
        copy = os.path.join(tmp, "catalog.db")
        shutil.copyfile(db, copy)
        c = "spark.sql.catalog.calving"
        spark = (
            SparkSession.builder.master("local[1]")
            .appName("calving-read-table")
            .config("spark.jars", jars)
            .config("spark.driver.memory", "512m")
            .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.local.dir", tmp)
            .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
            .config(c, "org.apache.iceberg.spark.SparkCatalog")
            .config(c + ".catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
            .config(c + ".uri", "jdbc:sqlite:" + copy)
            .config(c + ".jdbc.schema-version", "V1")
            .config(c + ".warehouse", "file://" + warehouse)
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            df = spark.table("calving." + ident)

            def plain(v, t):
                if v is None:
                    return None
                if isinstance(t, T.StructType):
                    return {f.name: plain(v[f.name], f.dataType) for f in t.fields}
                if isinstance(t, T.ArrayType):
                    return [plain(x, t.elementType) for x in v]
                if isinstance(t, T.MapType):
                    return [(plain(k, t.keyType), plain(x, t.valueType)) for k, x in v.items()]
                if isinstance(t, T.TimestampType):
                    return v.replace(tzinfo=datetime.timezone.utc)
                return v

            return [plain(r, df.schema) for r in df.collect()]
        finally:
            spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    engine, db, warehouse, ident = sys.argv[1:5]
    all_columns = "--all-columns" in sys.argv[5:]
    namespace, name = ident.split(".")
    if engine == "pyiceberg" and db.startswith("http://"):
        from pyiceberg.catalog.rest import RestCatalog

        catalog = RestCatalog("calving", uri=db, warehouse=warehouse, **s3_props())
        rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
    elif engine == "pyiceberg" and db.startswith(("postgresql://", "postgres://")):
        from pyiceberg.catalog.sql import SqlCatalog

        # Calving's catalog.name (default `calving`) is the JDBC layout's catalog_name.
        uri = "postgresql+psycopg2://" + db.split("://", 1)[1]
        catalog = SqlCatalog("calving", uri=uri, warehouse=warehouse, **s3_props())
        rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
    elif engine == "pyiceberg":
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog("calving", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
        rows = catalog.load_table(ident).scan().to_arrow().to_pylist()
    elif engine == "duckdb":
        import duckdb
        import duckdb_extensions

        duckdb_extensions.import_extension("avro")
        duckdb_extensions.import_extension("iceberg")
        location = metadata_location(db, namespace, name)
        con = duckdb.connect()
        con.execute("LOAD avro")
        con.execute("LOAD iceberg")
        if location.startswith("s3://"):
            duckdb_extensions.import_extension("httpfs")
            con.execute("LOAD httpfs")
            props = s3_props()
            endpoint = props.get("s3.endpoint", "")
            con.execute(
                "CREATE SECRET calving (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE ?, USE_SSL ?)",
                [props.get("s3.access-key-id", ""), props.get("s3.secret-access-key", ""),
                 props.get("s3.region", "us-east-1"), endpoint.split("://", 1)[-1],
                 "path" if props.get("s3.path-style-access") == "true" else "vhost",
                 not endpoint.startswith("http://")],
            )
        columns = "*" if all_columns else "kafka, value"
        rows = con.execute(f"select {columns} from iceberg_scan('{location}')").fetch_arrow_table().to_pylist()
    elif engine == "spark":
        rows = spark_rows(db, warehouse, ident)
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
