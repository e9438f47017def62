#!/usr/bin/env python3
"""Helpers of integration/e2e/measure.sh.

    measure.py payload <file>                      JSON-like payload lines (~1 KiB) for ProducerPerformance
    measure.py percentiles <file of numbers>       "n p50 p99 max" of a column of numbers
    measure.py samples <samples file>              "peak_heap_mib avg_heap_mib peak_rss_mib" of the sampler
    measure.py roll-latency <broker log> <warehouse dir> <topic> <partition>
        per tiered segment: the broker's "Rolled new log segment at offset E+1" log time (the roll
        that closed the segment ending at E) to the commit time of the Iceberg snapshot whose
        summary says calving.end-offset=E (the moment its rows became queryable); prints
        "n p50 max" in seconds
"""
import datetime
import json
import random
import re
import sys


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def payload(path):
    rnd = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "glacier", "calving", "iceberg", "floe", "orders", "eu-west"]
    with open(path, "w") as f:
        for i in range(4000):
            target = rnd.randint(200, 1800)
            parts = [f'{{"id":{i},"user":"u{rnd.randint(1, 10**6)}","items":[']
            n = len(parts[0])
            while n < target:
                s = f'{{"sku":"{rnd.choice(words)}-{rnd.randint(1, 9999)}","qty":{rnd.randint(1, 9)},"price":{rnd.random() * 100:.2f}}},'
                parts.append(s)
                n += len(s)
            parts.append("{}]}")
            f.write("".join(parts) + "\n")


def percentiles(path):
    vals = [float(x) for x in open(path) if x.strip()]
    print(f"{len(vals)} {pct(vals, 0.5):.1f} {pct(vals, 0.99):.1f} {max(vals) if vals else float('nan'):.1f}")


def samples(path):
    heap, rss = [], []
    for line in open(path):
        f = line.split()
        if len(f) >= 3:
            heap.append(float(f[1]))
            rss.append(float(f[2]))
    print(f"{max(heap):.0f} {sum(heap) / len(heap):.0f} {max(rss):.0f}")


def roll_latency(log, warehouse, topic, partition):
    rolled = {}
    pat = re.compile(r"^\[([0-9T:\-]+),(\d+)\] INFO \[LocalLog partition=" + re.escape(f"{topic}-{partition}")
                     + r", .*Rolled new log segment at offset (\d+)")
    for line in open(log):
        m = pat.match(line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").timestamp() + int(m.group(2)) / 1000
            rolled[int(m.group(3))] = t
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("calving", uri=f"sqlite:///{warehouse}/calving-catalog.db", warehouse=f"file://{warehouse}")
    table = catalog.load_table(f"kafka.{topic}")
    lat = []
    for s in table.snapshots():
        props = s.summary.additional_properties if s.summary else {}
        if props.get("calving.partition") != str(partition) or "calving.end-offset" not in props:
            continue
        end = int(props["calving.end-offset"])
        if end + 1 in rolled:
            lat.append(s.timestamp_ms / 1000 - rolled[end + 1])
    print(f"{len(lat)} {pct(lat, 0.5):.2f} {max(lat) if lat else float('nan'):.2f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"payload": payload, "percentiles": percentiles, "samples": samples, "roll-latency": roll_latency}[cmd](*args)
