#!/usr/bin/env python3
"""Comparisons of Calving's typed end-to-end run (integration/typed/run.sh). Each check prints one
line, `PASS <name>` or `FAIL <name>: <why>`; the exit status is 1 when any check failed.

    check_typed.py wire <expected.jsonl> <ccompat URL>
        every value the serializer wrote for typed_orders is in the Confluent wire format with
        one of the three ids of subject typed_orders-value in the registry's Confluent API, whose
        schema there is the version the record was written with (v1: note; v2: note, discount;
        v3: discount, channel); typed_latest's values used the subject's latest id; every Avro key
        of typed_orders is framed with one of the two ids of subject typed_orders-key, whose schema
        is the key version it was written with (v1: customer_id, region; v2: + shard), and the
        raw key with an unknown id names no version of it
    check_typed.py wire-pj <expected-pj.jsonl> <oracle-pj.tsv> <ccompat URL>
        typed_proto and typed_json (ProtoJsonClient.java): every value written from a schema is
        framed 0x00 + the 4-byte id of the version of subject typed_proto-value (schemaType
        PROTOBUF) or typed_json-value (JSON) it was written with, one distinct id per version,
        the subject holding exactly those; Protobuf values carry the index list recorded as sent
        (02 00 as Apicurio writes [0], 00 as Confluent does) and then the message
    check_typed.py table <expected.jsonl> <tiered.tsv> <warehouse> <topic> <engine> <label>
        the topic's table read by pyiceberg, DuckDB or Spark (tests/oracle/read_table.py
        --all-columns) holds exactly the records of the tiered segments: per row the offset and
        timestamp; Avro values in the typed columns with their writer schema id in
        kafka.value_schema_id and `value` null; raw values (not Avro, unknown id, truncated,
        trailing bytes, non-canonical) byte for byte in `value` with every typed column null;
        tombstones with both null; columns a writer schema lacks read as null. Keys of
        typed_orders (key.mode key_schema_id_prefix): an Avro key in the `key` struct (its fields,
        `shard` null for a v1 key), its writer schema id in kafka.key_schema_id and kafka.key
        null; a raw key (plain UTF-8, truncated Avro, unknown id) byte for byte in kafka.key with
        the struct and kafka.key_schema_id null; a null key: all three null. typed_latest (raw
        keys): kafka.key byte for byte, no `key` struct, no kafka.key_schema_id. typed_proto and
        typed_json (expected-pj.jsonl, raw keys): the same comparisons; a FAIL says first how
        many of the values written from a schema are in columns, by kind
    check_typed.py schema <warehouse> <topic> <min schemas>
        the table's schema history (pyiceberg): at least <min schemas> schemas (created, then
        evolved), every field id of an earlier schema unchanged in the current one (by name
        path: the `key` struct's fields too), and the Iceberg types of the logical types (date,
        timestamptz, decimal, uuid); typed_orders: an optional `key` struct {customer_id long,
        region string, shard int}, the key evolved in the history (an earlier schema's `key` has
        no `shard`), and an int kafka.key_schema_id; typed_latest: neither; typed_proto: the
        Protobuf mapping's types (Timestamp: timestamptz, enum: string, map<string,int64>: map,
        map<int32,string>: list of {key, value}, message: struct, oneof: a column per member,
        uint32: long); typed_json: integer long, number double, date-time timestamptz, object
        struct, array list

File formats: see TypedClient.java (expected.jsonl) and E2eClient.java (tiered file). result,
read_tiered and read_table come from integration/e2e/check.py.
"""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import check  # noqa: E402  integration/e2e/check.py
from check import read_table, read_tiered, result  # noqa: E402


def read_expected(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def subject_schemas(ccompat, subject):
    """{id: parsed schema} of every version of the subject in the registry's Confluent API."""
    by_id = {}
    for v in get(f"{ccompat}/subjects/{subject}/versions"):
        d = get(f"{ccompat}/subjects/{subject}/versions/{v}")
        by_id[d["id"]] = json.loads(d["schema"])
    return by_id


def cmd_wire(expected_path, ccompat):
    rows = read_expected(expected_path)
    name = "Confluent wire format: typed_orders values carry the ids of subject typed_orders-value"
    key_name = "Confluent wire format: typed_orders' Avro keys carry the ids of subject typed_orders-key"
    try:
        by_id = subject_schemas(ccompat, "typed_orders-value")
        key_by_id = subject_schemas(ccompat, "typed_orders-key")
        latest = get(f"{ccompat}/subjects/typed_latest-value/versions/latest")
    except Exception as e:  # noqa: BLE001
        result(False, name, f"registry: {e}")
        return
    problems = []
    seen = {}
    for r in rows:
        if r["topic"] != "typed_orders" or r["kind"] != "avro":
            continue
        sid = r["schema_id"]
        seen.setdefault(r["version"], set()).add(sid)
        if sid not in by_id:
            problems.append(f"offset {r['offset']}: id {sid} is not a version of the subject ({sorted(by_id)})")
            continue
        fields = {f["name"] for f in by_id[sid]["fields"]}
        want = {1: ({"note"}, {"discount", "channel"}), 2: ({"note", "discount"}, {"channel"}),
                3: ({"discount", "channel"}, {"note"})}[r["version"]]
        if not want[0] <= fields or want[1] & fields:
            problems.append(f"offset {r['offset']}: id {sid}'s schema has fields {sorted(fields)}, not v{r['version']}'s")
    if sorted(seen) != [1, 2, 3] or any(len(s) != 1 for s in seen.values()) or len(set().union(*seen.values())) != 3:
        problems.append(f"expected one distinct id per schema version, got {seen}")
    result(not problems, f"{name} ({len(by_id)} versions, ids {sorted(by_id)})", "; ".join(problems[:3]))
    lat = {r["schema_id"] for r in rows if r["topic"] == "typed_latest" and r["kind"] == "latest"}
    result(lat == {latest["id"]}, f"typed_latest-value's latest schema id {latest['id']} wrote every bare value",
           f"values were written with ids {lat}")

    problems = []
    seen = {}
    kinds = {}
    for r in rows:
        if r["topic"] != "typed_orders":
            continue
        kinds[r["key_kind"]] = kinds.get(r["key_kind"], 0) + 1
        key = bytes.fromhex(r["key"]) if r["key"] is not None else None
        if r["key_kind"] == "unknown-id":
            kid = int.from_bytes(key[1:5], "big")
            if key[0] != 0 or kid in key_by_id or kid in by_id:
                problems.append(f"offset {r['offset']}: the unknown-id key {r['key'][:10]} names a known id")
            continue
        if r["key_kind"] != "avro":
            continue
        sid, version = r["key_schema_id"], r["key_version"]
        seen.setdefault(version, set()).add(sid)
        if key is None or len(key) < 6 or key[0] != 0 or int.from_bytes(key[1:5], "big") != sid:
            problems.append(f"offset {r['offset']}: key {r['key']} is not framed with id {sid}")
            continue
        if sid not in key_by_id:
            problems.append(f"offset {r['offset']}: key id {sid} is not a version of the subject ({sorted(key_by_id)})")
            continue
        sch = key_by_id[sid]
        fields = [f["name"] for f in sch.get("fields", [])]
        want = ["customer_id", "region"] + (["shard"] if version == 2 else [])
        if sch.get("name") != "OrderKey" or fields != want:
            problems.append(f"offset {r['offset']}: key id {sid}'s schema {short(sch, 200)} is not OrderKey v{version}")
    if sorted(seen) != [1, 2] or any(len(s) != 1 for s in seen.values()) or len(set().union(*seen.values())) != 2:
        problems.append(f"expected one distinct key id per key schema version, got {seen}")
    if sorted(key_by_id) != sorted(set().union(*seen.values()) if seen else set()):
        problems.append(f"the subject's ids {sorted(key_by_id)} are not the ones the keys used {seen}")
    for k in ("avro", "null", "utf8", "truncated", "unknown-id"):
        if not kinds.get(k):
            problems.append(f"no {k} key produced ({kinds})")
    result(not problems, f"{key_name} ({len(key_by_id)} versions, ids {sorted(key_by_id)}; keys: "
           + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")", "; ".join(problems[:3]))


def cmd_wire_pj(expected_path, oracle_path, ccompat):
    rows = read_expected(expected_path)
    sent = {(r["topic"], r["offset"]): r["value"] for r in check.read_rows(oracle_path)}
    for topic, schema_type, marks in (
            ("typed_proto", "PROTOBUF", {1: ([], ["discount = 19", "channel = 21"]), 2: (["discount = 19", "weights = 20"], ["channel = 21"]),
                                         3: (["discount = 19", "channel = 21", "shipped = 22"], [])}),
            ("typed_json", "JSON", {1: ([], ['"note"', '"flags"']), 2: (['"note"', '"ratio"'], ['"flags"']),
                                    3: (['"note"', '"flags"', '"source"'], [])})):
        subject = f"{topic}-value"
        name = f"Confluent wire format: {topic} values carry the ids of subject {subject} ({schema_type})"
        try:
            by_id = {}
            for v in get(f"{ccompat}/subjects/{subject}/versions"):
                d = get(f"{ccompat}/subjects/{subject}/versions/{v}")
                by_id[d["id"]] = d
        except Exception as e:  # noqa: BLE001
            result(False, name, f"registry: {e}")
            continue
        problems = []
        seen = {}
        kinds = {}
        for r in rows:
            if r["topic"] != topic or r["schema_id"] is None:
                continue
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
            sid, version = r["schema_id"], r["version"]
            seen.setdefault(version, set()).add(sid)
            v = sent.get((topic, r["offset"]))
            b = bytes.fromhex(v) if v and v != "-" else b""
            prefix = "00" + sid.to_bytes(4, "big").hex() + (r["indexes"] or "")
            if not b.hex().startswith(prefix) or len(b) <= len(prefix) // 2:
                problems.append(f"offset {r['offset']} ({r['kind']}): value {b[:12].hex()}... does not start with {prefix}")
            if sid not in by_id:
                problems.append(f"offset {r['offset']}: id {sid} is not a version of the subject ({sorted(by_id)})")
                continue
            d = by_id[sid]
            if d.get("schemaType") != schema_type:
                problems.append(f"id {sid}: schemaType {d.get('schemaType')}, expected {schema_type}")
            has, lacks = marks[version]
            text = d["schema"]
            if any(m not in text for m in has) or any(m in text for m in lacks):
                problems.append(f"offset {r['offset']}: id {sid}'s schema is not v{version} (wants {has}, not {lacks})")
        if sorted(seen) != [1, 2, 3] or any(len(x) != 1 for x in seen.values()) or len(set().union(*seen.values())) != 3:
            problems.append(f"expected one distinct id per schema version, got {seen}")
        elif sorted(by_id) != sorted(set().union(*seen.values())):
            problems.append(f"the subject's ids {sorted(by_id)} are not the ones the values used {seen}")
        idx = sorted({r["indexes"] for r in rows if r["topic"] == topic and r["schema_id"] is not None and r["indexes"]})
        note = f"; index lists {', '.join(idx)}" if idx else ""
        result(not problems, f"{name} ({len(by_id)} versions, ids {sorted(by_id)}; "
               + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + note + ")", "; ".join(problems[:3]))


def short(v, n=300):
    s = json.dumps(v)
    return s if len(s) <= n else s[:n] + "..."


# pyiceberg 0.12 reads a null list<struct<...>> as an empty list (its projection rebuilds the list
# without the validity bitmap: apache/iceberg-python#251, #3833, open); the Parquet files hold the
# null, as pyarrow, DuckDB and Spark read them. Counted and named in pyiceberg's PASS line.
tolerated = []


def first_difference(path, e, a, empty_for_null=False):
    if e is None and a == [] and empty_for_null:
        tolerated.append(path)
        return None
    if isinstance(e, dict) and isinstance(a, dict):
        for k in e:
            if k not in a:
                return f"{path}.{k}: missing (columns: {sorted(a)})"
            d = first_difference(f"{path}.{k}", e[k], a[k], empty_for_null)
            if d:
                return d
        return None
    if isinstance(e, list) and isinstance(a, list):
        if len(e) != len(a):
            return f"{path}: expected {short(e)}, got {short(a)}"
        for i, (x, y) in enumerate(zip(e, a)):
            d = first_difference(f"{path}[{i}]", x, y, empty_for_null)
            if d:
                return d
        return None
    if e != a or type(e) is bool and type(a) is not bool:
        if isinstance(e, (int, float)) and isinstance(a, (int, float)) and not isinstance(e, bool) and float(e) == float(a):
            return None
        return f"{path}: expected {short(e)}, got {short(a)}"
    return None


def sort_maps(v):
    """Lists of [key, value] pairs (maps) in key order: Spark's maps come back as dicts."""
    if isinstance(v, dict):
        return {k: sort_maps(x) for k, x in v.items()}
    if isinstance(v, list):
        items = [sort_maps(x) for x in v]
        if items and all(isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) for x in items):
            return sorted(items, key=lambda x: x[0])
        return items
    return v


def cmd_table(expected_path, tiered_path, warehouse, topic, engine, label):
    name = f"{label} {topic} ({engine})"
    db = os.path.join(warehouse, "calving-catalog.db")
    if not os.path.exists(db):
        result(False, name, f"no catalog at {db}")
        return
    lines = read_table(name, engine, warehouse, topic, "--all-columns", tail=800)
    if lines is None:
        return
    actual = [json.loads(line) for line in lines if line.strip()]
    bound = read_tiered(tiered_path)[(topic, 0)]["tiered"]
    for r in actual:
        bound = max(bound, r["kafka"]["offset"])
    expected = [r for r in read_expected(expected_path) if r["topic"] == topic and r["offset"] <= bound]
    expected.sort(key=lambda r: r["offset"])
    if not actual:
        result(False, name, "no rows")
        return
    typed_keys = topic == "typed_orders"  # key.mode key_schema_id_prefix; typed_latest's keys are raw
    typed_columns = sorted(k for k in actual[0] if k not in ("kafka", "value", "key"))
    problems = []
    kinds = {}
    key_kinds = {}
    if typed_keys != ("key" in actual[0]):
        problems.append(f"a top-level `key` struct {'expected' if typed_keys else 'not expected'}, columns: {sorted(actual[0])}")
    if typed_keys != ("key_schema_id" in actual[0]["kafka"]):
        problems.append(f"kafka.key_schema_id {'expected' if typed_keys else 'not expected'}, kafka: {sorted(actual[0]['kafka'])}")
    key_fields = ("customer_id", "region", "shard")
    if len(actual) != len(expected):
        problems.append(f"{len(expected)} rows expected (offsets up to {bound}), {len(actual)} read")
    if topic in ("typed_proto", "typed_json"):
        # How many values written from a schema are in columns (id set, raw `value` null), by kind.
        typed = {}
        for e, a in zip(expected, actual):
            if e["columns"] is None or a["kafka"]["offset"] != e["offset"]:
                continue
            n, ok = typed.get(e["kind"], (0, 0))
            in_cols = a["kafka"].get("value_schema_id") == e["schema_id"] and a["value"] is None
            typed[e["kind"]] = (n + 1, ok + in_cols)
        if any(ok != n for n, ok in typed.values()):
            problems.append("values written from the schema in columns (kafka.value_schema_id set, `value` null): "
                            + ", ".join(f"{k} {ok} of {n}" for k, (n, ok) in sorted(typed.items())))
    for e, a in zip(expected, actual):
        k = a["kafka"]
        where = f"offset {e['offset']} ({e['kind']}, key {e['key_kind']})"
        in_columns = typed_keys and e["key_schema_id"] is not None
        want_key = None if in_columns else e["key"]
        if (k["partition"], k["offset"], k["timestamp"], k["key"]) != (0, e["offset"], e["timestamp"] * 1000, want_key):
            problems.append(f"{where}: kafka struct {short(k)} differs from offset {e['offset']} ts {e['timestamp']} key {want_key}")
            continue
        if k.get("key_schema_id") != (e["key_schema_id"] if typed_keys else None):
            problems.append(f"{where}: kafka.key_schema_id {k.get('key_schema_id')}, expected {e['key_schema_id']}")
        if typed_keys:
            want = None
            if in_columns:
                want = {f: None for f in key_fields}
                want.update(json.loads(e["key_avro"]))
            got = a.get("key")
            if want is None or got is None:
                if want != got:
                    problems.append(f"{where}: key struct {short(got, 120)}, expected {short(want, 120)}")
            elif sorted(got) != sorted(want):
                problems.append(f"{where}: key struct fields {sorted(got)}, expected {sorted(want)}")
            else:
                d = first_difference("key", want, got)
                if d:
                    problems.append(f"{where}: {d}")
        key_kinds[e["key_kind"]] = key_kinds.get(e["key_kind"], 0) + 1
        # A value expected raw (its bytes in `value`) has no schema id in the table, even if it
        # was written from a schema (Protobuf values framed unlike the rest of their segment).
        want_id = e["schema_id"] if e["value"] is None else None
        if k.get("value_schema_id") != want_id:
            problems.append(f"{where}: kafka.value_schema_id {k.get('value_schema_id')}, expected {want_id}")
        if a["value"] != e["value"]:
            problems.append(f"{where}: value {short(a['value'], 80)}, expected {short(e['value'], 80)}")
        want = {c: None for c in typed_columns}
        want.update(e["columns"] or {})
        got = {c: a.get(c) for c in want}
        if engine == "spark":
            want, got = sort_maps(want), sort_maps(got)
        d = first_difference("", want, got, engine == "pyiceberg")
        if d:
            problems.append(f"{where}: column {d}")
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        if len(problems) > 5:
            break
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    summary += "; keys: " + ", ".join(f"{n} {k}" for k, n in sorted(key_kinds.items()))
    if tolerated:
        summary += (f"; {len(tolerated)} null list<struct> cells ({', '.join(sorted(set(tolerated)))}) read as [],"
                    " pyiceberg's known bug iceberg-python#3833")
    result(not problems, f"{name} ({len(actual)} rows: {summary}; {len(typed_columns)} typed columns)", "; ".join(problems[:4]))


def cmd_schema(warehouse, topic, min_schemas):
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg import types as T

    name = f"table schema kafka.{topic}"
    db = os.path.join(warehouse, "calving-catalog.db")
    table = SqlCatalog("calving", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}").load_table(f"kafka.{topic}")
    schemas = table.metadata.schemas
    current = table.schema()

    def ids(schema):
        return {schema.find_column_name(i): i for i in schema._lazy_id_to_name}  # noqa: SLF001

    problems = []
    if len(schemas) < int(min_schemas):
        problems.append(f"{len(schemas)} schemas in the table's history, expected at least {min_schemas}")
    cur = ids(current)
    for s in schemas:
        for path, i in ids(s).items():
            if path in cur and cur[path] != i:
                problems.append(f"schema {s.schema_id}: {path} had id {i}, now {cur[path]}")
    types = {f.name: f.field_type for f in current.fields}
    want = {}
    if topic == "typed_orders":
        want = {"placed": T.TimestamptzType(), "day": T.DateType(), "amount": T.DecimalType(10, 2), "ref": T.UUIDType(),
                "status": T.StringType(), "discount": T.DoubleType(), "channel": T.StringType(), "note": T.StringType()}
        for col, kind in (("customer", T.StructType), ("items", T.ListType), ("attrs", T.MapType), ("payment", T.StructType)):
            if not isinstance(types.get(col), kind):
                problems.append(f"{col} is {types.get(col)}, expected a {kind.__name__}")
    elif topic == "typed_latest":
        want = {"at": T.TimestamptzType(), "day": T.DateType(), "session": T.UUIDType(), "price": T.DecimalType(12, 3)}
    elif topic == "typed_proto":
        want = {"id": T.LongType(), "placed": T.TimestamptzType(), "shipped": T.TimestamptzType(), "status": T.StringType(),
                "coupon": T.StringType(), "note": T.StringType(), "card": T.StringType(), "voucher": T.LongType(),
                "total": T.DoubleType(), "gift": T.BooleanType(), "blob": T.BinaryType(), "points": T.LongType(),
                "discount": T.DoubleType(), "channel": T.StringType()}
        for col, kind in (("customer", T.StructType), ("transfer", T.StructType), ("items", T.ListType), ("quantities", T.ListType),
                          ("counters", T.MapType), ("labels", T.ListType), ("weights", T.ListType)):
            if not isinstance(types.get(col), kind):
                problems.append(f"{col} is {types.get(col)}, expected a {kind.__name__}")
    elif topic == "typed_json":
        want = {"id": T.LongType(), "name": T.StringType(), "score": T.DoubleType(), "active": T.BooleanType(),
                "at": T.TimestamptzType(), "note": T.StringType(), "ratio": T.DoubleType()}
        for col, kind in (("user", T.StructType), ("tags", T.ListType), ("points", T.ListType), ("flags", T.ListType),
                          ("source", T.StructType)):
            if not isinstance(types.get(col), kind):
                problems.append(f"{col} is {types.get(col)}, expected a {kind.__name__}")
    for col, t in want.items():
        if types.get(col) != t:
            problems.append(f"{col} is {types.get(col)}, expected {t}")
    sid = current.find_field("kafka.value_schema_id", case_sensitive=True) if "kafka" in types else None
    if sid is None or not isinstance(sid.field_type, T.IntegerType):
        problems.append("no int column kafka.value_schema_id")
    kafka_fields = {f.name: f for f in types["kafka"].fields} if isinstance(types.get("kafka"), T.StructType) else {}
    key_note = ""
    if topic == "typed_orders":
        key = current.find_field("key") if "key" in types else None
        if key is None or not isinstance(key.field_type, T.StructType) or key.required:
            problems.append(f"key is {key}, expected an optional struct")
        else:
            kt = {f.name: f.field_type for f in key.field_type.fields}
            want_key = {"customer_id": T.LongType(), "region": T.StringType(), "shard": T.IntegerType()}
            if kt != want_key:
                problems.append(f"key struct fields {kt}, expected {want_key}")
            history = [(s.schema_id, ids(s)) for s in schemas]
            if not any("key" in i and "key.shard" not in i for _, i in history):
                problems.append("no schema in the history has a `key` without `shard` (the key evolution is not in it)")
            seen_key = {p: sorted({i[p] for _, i in history if p in i}) for p in ("key", "key.customer_id", "key.region", "key.shard")}
            unstable = {p: v for p, v in seen_key.items() if len(v) != 1}
            if unstable:
                problems.append(f"key field ids differ across the history: {unstable}")
            first_with_shard = min((sid_ for sid_, i in history if "key.shard" in i), default=None)
            key_note = (f"; key struct ids {', '.join(f'{p}={v[0]}' for p, v in seen_key.items() if v)}, key.shard from schema"
                        f" {first_with_shard}")
        ksid = kafka_fields.get("key_schema_id")
        if ksid is None or not isinstance(ksid.field_type, T.IntegerType):
            problems.append("no int column kafka.key_schema_id")
    elif topic in ("typed_latest", "typed_proto", "typed_json"):
        if "key" in types or "key_schema_id" in kafka_fields:
            problems.append("raw keys, yet the table has a `key` struct or kafka.key_schema_id")
    result(not problems, f"{name} ({len(schemas)} schemas, field ids stable, {len(current.fields)} top-level columns{key_note})",
           "; ".join(problems[:4]))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"wire": cmd_wire, "wire-pj": cmd_wire_pj, "table": cmd_table, "schema": cmd_schema}[cmd](*args)
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
