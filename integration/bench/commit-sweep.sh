#!/usr/bin/env bash
# The commit path at cluster scale (issue 16): `calving bench commit` for W = 1, 3, 6, 12 writer
# processes (brokers) and rising rates, on each catalog a cluster can share, all on loopback:
#
#   embedded  the embedded default (SQLite + local warehouse; W = 1 and 3: one machine's catalog)
#   postgres  the SQL catalog on PostgreSQL (Debian's postgresql, a throwaway cluster: integration/kafka/postgres.sh)
#             with a local warehouse
#   rest      Apache Iceberg's REST catalog fixture + moto's S3 server, the tests' store
#             (integration/bench/on-rest.sh; CALVING_S3_SERVER picks another, see integration/kafka/rest-s3.sh)
#   rest-s3s  the same fixture + s3s-fs, an S3 server that answers requests concurrently as object
#             stores do (moto answers one at a time); built on first use (integration/kafka/rest-s3.sh)
#
#   integration/bench/commit-sweep.sh [embedded|postgres|rest|rest-s3s ...]     (default: all four)
#   WRITERS="1 3 6 12" RATES="25 50 100 200" DURATION=20 integration/bench/commit-sweep.sh postgres
#   EXTRA="--property commit.group.max-segments=1 ..." …   (the baseline: see BENCHMARKS.md)
#
# Every run prints its progress and one JSON line; this script collects the JSON lines into
# $OUT (default: /tmp/calving-commit-sweep.jsonl) and prints them as a table at the end.
# Prerequisites: tests/install-deps.sh, the release CLI (cargo build --release -p calving-cli).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
calving="$target/release/calving"
[ -x "$calving" ] || { echo "build the CLI first: cargo build --release -p calving-cli" >&2; exit 2; }
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(embedded postgres rest rest-s3s)
duration=${DURATION:-20}
copiers=${COPIERS:-10}
partitions=${PARTITIONS:-120}
out=${OUT:-/tmp/calving-commit-sweep.jsonl}
: >"$out"
work=$(mktemp -d)
# shellcheck source=../kafka/postgres.sh
. "$root/integration/kafka/postgres.sh"   # pg_start, pg_stop: a throwaway PostgreSQL on loopback
cleanup() {
  pg_stop immediate
  rm -rf "$work"
}
trap cleanup EXIT

run() { # <backend> <writers> <rate> [calving bench commit arguments...]
  local backend=$1 w=$2 r=$3; shift 3
  echo "== $backend: writers $w, rate $r segments/s, $duration s"
  local log="$work/run.log"
  # shellcheck disable=SC2086 # EXTRA: more `calving bench commit` arguments, split on spaces
  "$@" --writers "$w" --rate "$r" --duration "$duration" --copiers "$copiers" --partitions "$partitions" ${EXTRA:-} 2>&1 | tee "$log" | grep -v '^ *[0-9]* s ' || true
  grep '^{' "$log" | tail -n1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["backend"]=sys.argv[1]; print(json.dumps(d))' "$backend" >>"$out" || echo "   (no result line)"
}

for backend in "${backends[@]}"; do
  case "$backend" in
    embedded)
      for w in ${WRITERS_EMBEDDED:-1 3}; do
        for r in ${RATES_EMBEDDED:-25 50 100 200}; do
          wh="$work/wh-embedded-$w-$r"; mkdir -p "$wh"
          run embedded "$w" "$r" "$calving" bench commit --warehouse "$wh"
        done
      done
      ;;
    postgres)
      pg_start 200 || exit 2
      for w in ${WRITERS:-1 3 6 12}; do
        for r in ${RATES:-25 50 100 200}; do
          wh="$work/wh-pg-$w-$r"; mkdir -p "$wh"
          run postgres "$w" "$r" "$calving" bench commit --warehouse "$wh" --catalog-uri "$PG_URI"
        done
      done
      pg_stop
      ;;
    rest|rest-s3s)
      server=${CALVING_S3_SERVER:-moto}
      [ "$backend" = rest ] || server=s3s-fs
      for w in ${WRITERS:-1 3 6 12}; do
        for r in ${RATES_REST:-${RATES:-25 50 100}}; do
          run "$backend" "$w" "$r" env CALVING_S3_SERVER="$server" "$root/integration/bench/on-rest.sh" commit
        done
      done
      ;;
    *) echo "unknown backend $backend (embedded, postgres, rest, rest-s3s)" >&2; exit 2 ;;
  esac
done

echo "== results ($out)"
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = ["backend", "writers", "target_rate", "segments_per_s", "commits_per_s", "segments_per_commit",
        "conflicts_per_commit", "p50_ms", "p99_ms", "steady_p50_ms", "steady_p99_ms", "failed_copies",
        "metadata_bytes", "check_ok"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
EOF
