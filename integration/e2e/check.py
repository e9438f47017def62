#!/usr/bin/env python3
"""Comparisons of Calving's end-to-end run (integration/e2e/run.sh). Each check prints one line,
`PASS <name>` or `FAIL <name>: <why>`; the exit status is 1 when any check failed.

    check.py consumed <oracle> <dump> <isolation> <tiered> <label>
        every record the consumer read equals what was produced (offset, timestamp and its type,
        key, value, headers in order), per topic; read_committed hides exactly the aborted ones;
        with tiering, some records of every partition lay below the local log start (remote only)
    check.py queries <oracle> <tiered> <out>
        ListOffsets-by-timestamp queries whose answers lie in remote segments
    check.py offsets <oracle> <queries> <results> <label>
        the broker's answers equal the first produced offset whose timestamp is >= the target
    check.py table <oracle> <tiered> <warehouse dir> <topic> <engine> <label>
        the topic's Iceberg table (pyiceberg or DuckDB) holds exactly the produced data records of
        the tiered segments (aborted ones included: the table keeps records, Kafka hides them),
        once each, with their timestamps, keys, values and headers

    check.py acked <oracle> <unacked> <dump> <isolation> <figures> <label>
        (integration/cluster/faults.sh) every acknowledged record of the oracle read back at its
        offset, equal (MaintainClient soak: records in transactions of unknown outcome, status U,
        may be missing under read_committed), aborted ones hidden under read_committed, no record
        twice; records the consumer read that nobody acknowledged must be sends whose callback
        failed (<unacked>: written after all); the counts go to <figures> as JSON
    check.py jmx-figures <jmx file>...
        the plugin's copy and commit counters summed over brokers, one line (no check)
    check.py orphans <sweep output> <objects> <windows> <grace s> <label>
        every orphan `calving sweep --dry-run` listed was written (its object's last-modified time,
        <objects>: "key epoch-seconds" lines, the bucket's keys) inside a fault window ("kind start end
        [orphaning end]" lines, epoch seconds: from start to the fourth column when there is one)
        widened by <grace> seconds: nothing is left behind when nothing failed;
        metadata files (*.metadata.json, written by the REST catalog itself) are counted apart

    check.py jmx <after tiering> <after reads> <copied> <label>
        the plugin's MBean, as Kafka's JmxTool read it from the running broker (properties
        format) after tiering and after the consumers' remote reads: copies and commits cover the
        broker's "Copied" log lines counted just before the first read (<copied>; a line is
        logged after its copy returned, so later copies can only add), no copy failed, bytes,
        records and tiering lag recorded, and the remote reads moved the fetch, index and
        served-bytes counters

File formats: see E2eClient.java (oracle/dump lines) and its wait-tiered command (tiered file:
topic partition earliest earliestLocal latestTiered latest).

integration/typed/check_typed.py imports its helpers: result (and the exit status kept in `failed`),
read_tiered and read_table.
"""
import json
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failed = False


def result(ok, name, why=""):
    global failed
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failed = True
        print(f"FAIL {name}: {why}", flush=True)


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            t, p, o, ts, tt, st, k, v, h = line.split("\t")
            rows.append(dict(topic=t, partition=int(p), offset=int(o), timestamp=int(ts), tstype=tt,
                             status=st, key=k, value=v, headers=h))
    return rows


def read_tiered(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                t, p, earliest, local, tiered, latest = line.split()
                out[(t, int(p))] = dict(earliest=int(earliest), local=int(local), tiered=int(tiered),
                                        latest=int(latest))
    return out


def read_table(name, engine, warehouse, topic, *flags, tail=500):
    """The lines tests/oracle/read_table.py prints for table kafka.<topic> (one JSON row each), or
    None after a FAIL <name> line when it fails (the last <tail> characters of its stderr)."""
    # $CALVING_READ_CATALOG: another catalog (a REST catalog's URI: integration/cluster/run.sh).
    db = os.environ.get("CALVING_READ_CATALOG") or os.path.join(warehouse, "calving-catalog.db")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests/oracle/read_table.py"), engine, db, warehouse,
                           f"kafka.{topic}", *flags], capture_output=True, text=True)
    if proc.returncode != 0:
        result(False, name, f"read_table.py failed: {proc.stderr.strip()[-tail:]}")
        return None
    return proc.stdout.splitlines()


def by_topic(rows):
    d = defaultdict(list)
    for r in rows:
        d[r["topic"]].append(r)
    for v in d.values():
        v.sort(key=lambda r: (r["partition"], r["offset"]))
    return d


FIELDS = ("partition", "offset", "timestamp", "tstype", "key", "value", "headers")


def short(r):
    s = {k: r[k] for k in FIELDS if k in r}
    for k in ("key", "value", "headers"):
        if k in s and isinstance(s[k], str) and len(s[k]) > 40:
            s[k] = s[k][:40] + f"...({len(s[k]) // 2} bytes)"
    return s


def first_difference(expected, actual, fields):
    for i, (e, a) in enumerate(zip(expected, actual)):
        for k in fields:
            if e[k] != a[k]:
                return f"record #{i} differs in {k}: expected {short(e)}, got {short(a)}"
    if len(expected) != len(actual):
        extra = actual[len(expected)] if len(actual) > len(expected) else expected[len(actual)]
        return (f"{len(expected)} records expected, {len(actual)} read; first unmatched: "
                f"{'read' if len(actual) > len(expected) else 'expected'} {short(extra)}")
    return None


def cmd_consumed(oracle, dump, isolation, tiered_path, label):
    expected = by_topic(r for r in read_rows(oracle)
                        if not (isolation == "read_committed" and r["status"] == "A"))
    actual = by_topic(read_rows(dump))
    tiered = read_tiered(tiered_path) if tiered_path != "-" else {}
    for topic in sorted(set(expected) | set(actual)):
        e, a = expected.get(topic, []), actual.get(topic, [])
        name = f"{label} {topic}"
        diff = first_difference(e, a, FIELDS)
        if diff:
            result(False, name, diff)
            continue
        remote = 0
        problems = []
        for p in sorted({r["partition"] for r in e}):
            t = tiered.get((topic, p))
            if t is None:
                continue
            n = sum(1 for r in a if r["partition"] == p and r["offset"] < t["local"])
            remote += n
            if n == 0:
                problems.append(f"partition {p}: no record below the local log start {t['local']}")
        aborted = sum(1 for r in read_rows(oracle) if r["topic"] == topic and r["status"] == "A")
        extra = f", {aborted} aborted hidden" if isolation == "read_committed" and aborted else ""
        if problems:
            result(False, name, "; ".join(problems))
        else:
            where = f", {remote} of them only in remote storage" if tiered else ""
            result(True, f"{name} ({len(a)} records equal{where}{extra})")


def cmd_queries(oracle, tiered_path, out):
    rows = read_rows(oracle)
    tiered = read_tiered(tiered_path)
    rnd = random.Random(1)
    lines = []
    for (topic, p), t in sorted(tiered.items()):
        part = [r for r in rows if r["topic"] == topic and r["partition"] == p and r["status"] != "M"]
        # Answers in remote segments; without tiering (local == earliest), in the local log.
        remote = [r for r in part if r["offset"] < t["local"]] if t["local"] > t["earliest"] else part
        if not remote:
            continue
        targets = {remote[0]["timestamp"] - 1000, remote[0]["timestamp"], remote[-1]["timestamp"]}
        for r in rnd.sample(remote, min(5, len(remote))):
            targets.add(r["timestamp"])
            targets.add(r["timestamp"] + 1)
        for ts in sorted(targets):
            lines.append(f"{topic}\t{p}\t{ts}")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def cmd_offsets(oracle, queries, results, label):
    rows = defaultdict(list)
    for r in read_rows(oracle):
        rows[(r["topic"], r["partition"])].append(r)
    got = {}
    with open(results) as f:
        for line in f:
            if line.strip():
                t, p, ts, off, rts = line.split("\t")
                got[(t, int(p), int(ts))] = (int(off), int(rts))
    per_topic = defaultdict(list)
    with open(queries) as f:
        for line in f:
            if line.strip():
                t, p, ts = line.split("\t")
                per_topic[t].append((int(p), int(ts)))
    for topic, qs in sorted(per_topic.items()):
        problems = []
        for p, ts in qs:
            part = rows[(topic, p)]
            offsets = {r["offset"] for r in part}
            # Offsets between produced records are transaction markers (COMMIT/ABORT control
            # records). They carry the coordinator's wall-clock time, later than every produced
            # timestamp of this workload (a day in the past), and ListOffsets counts them: the
            # answer is the first offset, marker or record, whose timestamp is >= the target.
            exp = next((r for r in part if r["timestamp"] >= ts), None)
            marker = next((o for o in range(part[-1]["offset"]) if o not in offsets), None) if part else None
            off, rts = got.get((topic, p, ts), (None, None))
            if exp is None:
                problems.append(f"p{p} ts {ts}: no produced record at or after it")
                continue
            if marker is not None and marker < exp["offset"]:
                if off != marker or rts < max(r["timestamp"] for r in part if r["status"] != "M"):
                    problems.append(f"p{p} ts {ts}: expected the transaction marker at offset {marker}, got {off} (ts {rts})")
                continue
            if off != exp["offset"] or rts != exp["timestamp"]:
                problems.append(f"p{p} ts {ts}: expected offset {exp['offset']} (ts {exp['timestamp']}), got {off} (ts {rts})")
        name = f"{label} {topic} ({len(qs)} timestamps)"
        result(not problems, name, "; ".join(problems[:5]))


def cmd_table(oracle, tiered_path, warehouse, topic, engine, label):
    tiered = read_tiered(tiered_path)
    db = os.path.join(warehouse, "calving-catalog.db")
    if not os.environ.get("CALVING_READ_CATALOG") and not os.path.exists(db):
        result(False, f"{label} {topic} ({engine})", f"no catalog at {db}: nothing was committed")
        return
    name = f"{label} {topic} ({engine})"
    lines = read_table(name, engine, warehouse, topic)
    if lines is None:
        return
    actual = []
    topic_ids = set()
    ids = Counter()
    for line in lines:
        d = json.loads(line)
        topic_ids.add(d["topic_id"])
        ids[(d["topic_id"], d["partition"], d["offset"])] += 1
        ts_us = d["timestamp"]
        actual.append(dict(partition=d["partition"], offset=d["offset"],
                           timestamp=ts_us // 1000 if ts_us % 1000 == 0 else ts_us / 1000,
                           key="-" if d["key"] is None else d["key"],
                           value="-" if d["value"] is None else d["value"],
                           headers=",".join(k.encode("utf-8").hex() + "=" + ("-" if v is None else v)
                                            for k, v in d["headers"])))
    actual.sort(key=lambda r: (r["partition"], r["offset"]))
    twice = sorted(k for k, n in ids.items() if n > 1)
    if twice:
        result(False, name, f"{len(twice)} (topic id, partition, offset) twice in the table, first: {twice[:3]}")
        return
    # Every produced record up to the partition's latest tiered offset when tiering was checked;
    # segments tiered since then (the LogAppendTime topic's end marker: local retention rolls its
    # active segment) may add rows, which must then be the produced ones too.
    bound = {p: t["tiered"] for (tp, p), t in tiered.items() if tp == topic}
    for r in actual:
        bound[r["partition"]] = max(bound.get(r["partition"], -1), r["offset"])
    expected = sorted((r for r in read_rows(oracle) if r["topic"] == topic and r["offset"] <= bound.get(r["partition"], -1)),
                      key=lambda r: (r["partition"], r["offset"]))
    diff = first_difference(expected, actual, ("partition", "offset", "timestamp", "key", "value", "headers"))
    if diff:
        result(False, name, diff)
    elif len(topic_ids) > 1:
        result(False, name, f"rows of several topic ids: {topic_ids}")
    else:
        aborted = sum(1 for r in expected if r["status"] == "A")
        more = f", {aborted} of aborted transactions" if aborted else ""
        result(True, f"{name} ({len(actual)} rows equal the produced records{more}, no (topic id, partition, offset) twice)")


def cmd_table_empty(warehouse, topic, engine, label):
    """The topic's table exists and holds no row (retention.mode=delete after the topic was deleted)."""
    name = f"{label} {topic} ({engine})"
    lines = read_table(name, engine, warehouse, topic)
    if lines is None:
        return
    rows = [line for line in lines if line.strip()]
    result(not rows, f"{name} (0 rows)" if not rows else name, f"{len(rows)} rows left")


def content(r):
    return (r["timestamp"], r["key"], r["value"], r["headers"])


def cmd_acked(oracle, unacked_path, dump, isolation, figures, label):
    acked = read_rows(oracle)
    unacked = read_rows(unacked_path) if os.path.exists(unacked_path) else []
    consumed = read_rows(dump)
    by_offset = {(r["topic"], r["partition"], r["offset"]): r for r in acked}
    read = defaultdict(list)
    for r in consumed:
        read[(r["topic"], r["partition"], r["offset"])].append(r)
    # Content seen once among every record sent (acknowledged or not): a second copy of it in the
    # log is a duplicate.
    sent = Counter(content(r) for r in acked + unacked)
    acked_content = {content(r) for r in acked}
    unacked_content = {content(r) for r in unacked}
    committed = isolation == "read_committed"
    lost, differ, visible_aborted, uncertain_in = [], [], [], 0
    for k, r in sorted(by_offset.items()):
        got = read.get(k, [])
        if committed and r["status"] == "A":
            if got:
                visible_aborted.append(k)
            continue
        if committed and r["status"] == "U" and not got:
            continue
        if not got:
            lost.append(k)
        elif any(content(g) != content(r) or g["tstype"] != r["tstype"] for g in got):
            differ.append((k, short(r), short(got[0])))
        elif r["status"] == "U":
            uncertain_in += 1
    twice = [k for k, g in read.items() if len(g) > 1]
    duplicates, written_unacked, unknown = [], 0, []
    for k, g in read.items():
        if k in by_offset:
            continue
        c = content(g[0])
        if c in acked_content and sent[c] == 1:
            duplicates.append(k)
        elif c in unacked_content:
            written_unacked += 1
        else:
            unknown.append((k, short(g[0])))
    aborted = sum(1 for r in acked if r["status"] == "A")
    uncertain = sum(1 for r in acked if r["status"] == "U")
    figs = dict(isolation=isolation, acked=len(acked), consumed=len(consumed), lost=len(lost), differ=len(differ),
                duplicates=len(duplicates) + len(twice), aborted_visible=len(visible_aborted),
                unacked_sends=len(unacked), unacked_in_log=written_unacked, unknown=len(unknown),
                aborted=aborted, uncertain=uncertain, uncertain_committed=uncertain_in)
    with open(figures, "w") as f:
        json.dump(figs, f)
    result(not lost and not differ,
           f"{label}: every acknowledged record back ({len(acked)} acknowledged, {len(consumed)} read, 0 lost"
           + (f", {aborted} aborted hidden" if committed else "")
           + (f", {uncertain} in transactions of unknown outcome ({uncertain_in} committed)" if uncertain else "") + ")",
           f"{len(lost)} lost (first {lost[:5]}), {len(differ)} differ (first {differ[:2]})")
    result(not duplicates and not twice and not unknown,
           f"{label}: no record twice, nothing nobody sent ({written_unacked} of {len(unacked)} unacknowledged sends in the log)",
           f"{len(duplicates)} acknowledged records again at other offsets (first {sorted(duplicates)[:5]}), "
           f"{len(twice)} offsets read twice, {len(unknown)} records nobody sent (first {unknown[:2]})")
    if committed:
        result(not visible_aborted, f"{label}: no aborted record visible ({aborted} aborted)",
               f"{len(visible_aborted)} aborted records read under read_committed (first {visible_aborted[:5]})")


def cmd_jmx_figures(*paths):
    brokers = [read_jmx(p) for p in paths]
    keys = ("CopyCount", "CopyFailures", "CommitFailures", "Commits", "CommittedSegments", "CommitConflicts",
            "CommitUnknownOutcomes", "CarriedSegments", "FetchCount", "FetchIndexCount")
    print(" ".join(f"{k}={sum(b.get(k, 0) for b in brokers):.0f}" for k in keys)
          + " errors_by_kind=" + ",".join(f"{k}:{sum(b.get(k, 0) for b in brokers):.0f}"
                                          for k in sorted({k for b in brokers for k in b if "Error" in k})
                                          if sum(b.get(k, 0) for b in brokers)))


def cmd_orphans(sweep_out, objects_path, windows_path, grace, label):
    grace = float(grace)
    orphans = [line.split(" ", 1)[1].strip() for line in open(sweep_out) if line.startswith("orphan ")]
    mtime = {}
    for line in open(objects_path):
        if line.strip():
            path, t = line.rsplit(" ", 1)
            mtime[path] = float(t)
    windows = []
    for line in open(windows_path):
        if line.strip():
            kind, a, b, *c = line.split()
            windows.append((kind, float(a) - grace, float(c[0] if c else b) + grace))
    outside, kinds, catalog_files = [], Counter(), 0
    for o in orphans:
        if o.endswith(".metadata.json"):
            # Written by the catalog, not by Calving: Iceberg's REST catalog (JdbcCatalog) writes
            # the next metadata file before its compare-and-set, and leaves it when another
            # broker's commit won (a conflict Calving retries), or when two brokers created the
            # table at once (00000-*): in ordinary operation, not only under faults.
            catalog_files += 1
            continue
        key = o.split("://", 1)[1].split("/", 1)[1] if "://" in o else o.lstrip("/")  # s3://bucket/key or key
        t = mtime.get(key)
        w = next((k for k, a, b in windows if t is not None and a <= t <= b), None)
        if w is None:
            outside.append((o, t))
        else:
            kinds[w] += 1
    result(not outside, f"{label}: {len(orphans)} orphans: {catalog_files} metadata files of the catalog's lost races, "
           f"{len(orphans) - catalog_files} others each written during a fault ({dict(kinds)})",
           f"{len(outside)} orphans written outside every fault window (first {outside[:3]})")


def read_jmx(path):
    """The io.calving MBean's attributes from JmxTool's properties output (`<name>:<attr>=<v>`)."""
    values = {}
    for line in open(path):
        key, _, value = line.strip().rpartition("=")
        if key.startswith("io.calving:") and ":" in key[len("io.calving:"):]:
            try:
                values[key.rsplit(":", 1)[1]] = float(value)
            except ValueError:
                pass
    return values


def check_copies(brokers, copied, label):
    """The copy and commit checks of one or more brokers' MBeans: every broker copied, together
    at least the <copied> 'Copied' lines of their logs, none failed, and their commits hold every
    copied segment (at least one segment per commit on each)."""
    total = lambda k: sum(b[k] for b in brokers)
    copied = int(copied)
    per = ", ".join(f"{b['CopyCount']:.0f}" for b in brokers)
    result(total("CopyCount") >= copied > 0 and all(b["CopyCount"] > 0 for b in brokers),
           f"{label}: CopyCount {per} (in all {total('CopyCount'):.0f} >= {copied} 'Copied' log lines)",
           f"CopyCount per broker {per}, broker logs {copied}")
    result(total("CopyFailures") == 0 and total("CommitFailures") == 0, f"{label}: no failed copy or commit",
           f"CopyFailures {total('CopyFailures')}, CommitFailures {total('CommitFailures')}")
    commits, segments = total("Commits"), total("CommittedSegments")
    # A broker whose every segment another broker's commit carried (commit.carry.enabled) has no
    # commit of its own.
    carried = sum(b.get("CarriedSegments", 0) for b in brokers)
    result(segments >= copied and commits >= 1 and all(b["SegmentsPerCommit"] >= 1 or b["Commits"] == 0 for b in brokers),
           f"{label}: {segments:.0f} segments in {commits:.0f} commits ({segments / max(commits, 1):.2f} per commit, "
           f"{carried:.0f} carried for another broker), "
           f"{total('CommitConflicts'):.0f} conflicts retried, {total('CommitUnknownOutcomes'):.0f} unknown outcomes",
           f"CommittedSegments {segments}, Commits {commits}, SegmentsPerCommit per broker "
           f"{[b['SegmentsPerCommit'] for b in brokers]}")


def cmd_jmx(tiered_path, read_path, copied, label):
    a, b = read_jmx(tiered_path), read_jmx(read_path)
    if not a or not b:
        result(False, label, f"no io.calving MBean attributes read ({len(a)}, {len(b)})")
        return
    check_copies([a], copied, label)
    result(a["CopiedBytes"] > 0 and a["CopiedRecords"] > 0 and a["CopyLatencyP99Ms"] > 0,
           f"{label}: {a['CopiedBytes']:.0f} bytes, {a['CopiedRecords']:.0f} records copied, copy p99 {a['CopyLatencyP99Ms']:.1f} ms",
           f"CopiedBytes {a['CopiedBytes']} CopiedRecords {a['CopiedRecords']} CopyLatencyP99Ms {a['CopyLatencyP99Ms']}")
    # The lag is from a segment's newest record timestamp: the workload's timestamps are its own
    # (some a day old), so only its consistency is checked.
    result(0 < a["TieringLagLastMs"] <= a["TieringLagMaxMs"] and a["TieringLagP50Ms"] > 0,
           f"{label}: tiering lag last {a['TieringLagLastMs']:.0f} ms, p50 {a['TieringLagP50Ms']:.0f}, max {a['TieringLagMaxMs']:.0f}",
           f"TieringLagLastMs {a['TieringLagLastMs']} TieringLagP50Ms {a['TieringLagP50Ms']} TieringLagMaxMs {a['TieringLagMaxMs']}")
    moved = {k: b[k] - a[k] for k in ("FetchCount", "FetchIndexCount", "ServedBytes")}
    result(all(v > 0 for v in moved.values()), f"{label}: remote reads moved the fetch counters {moved}",
           f"after the reads minus after tiering: {moved}")


def cmd_jmx_cluster(copied, label, *paths):
    """Every broker's MBean: together they committed every copy their logs report, none failed."""
    brokers = [read_jmx(p) for p in paths]
    if not all(brokers):
        result(False, label, f"attributes read from {sum(1 for b in brokers if b)} of {len(brokers)} brokers")
        return
    check_copies(brokers, copied, label)


def cmd_layouts(warehouse, expected, label):
    """Each topic's table says, in the summary of every snapshot a copy committed
    (calving.layout-version), the served layout its copies used: `expected` is topic=version,...
    (rsm.config.topic.<name>.served.compression=none copies in version 3, the default in 2)."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("calving", uri=f"sqlite:///{warehouse}/calving-catalog.db", warehouse=f"file://{warehouse}")
    for item in expected.split(","):
        topic, version = item.split("=")
        name = f"{label} {topic} (v{version})"
        if not catalog.table_exists(f"kafka.{topic}"):
            result(False, name, "no such table in the catalog")
            continue
        snapshots = catalog.load_table(f"kafka.{topic}").snapshots()
        seen = Counter(s.summary.additional_properties.get("calving.layout-version") for s in snapshots if s.summary)
        seen.pop(None, None)
        ok = bool(seen) and set(seen) == {version}
        result(ok, f"{name}: {sum(seen.values())} copy snapshots in layout v{version}" if ok else name,
               f"layout versions of its copy snapshots: {dict(seen)}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"consumed": cmd_consumed, "queries": cmd_queries, "offsets": cmd_offsets, "table": cmd_table,
     "table-empty": cmd_table_empty, "jmx": cmd_jmx, "jmx-cluster": cmd_jmx_cluster, "acked": cmd_acked,
     "jmx-figures": cmd_jmx_figures, "orphans": cmd_orphans, "layouts": cmd_layouts}[cmd](*args)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
