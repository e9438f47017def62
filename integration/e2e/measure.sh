#!/usr/bin/env bash
# Calving's end-to-end figures on a real Apache Kafka 4.1.2 broker (single node, 127.0.0.1), the
# same workload twice: once with the plugin tiering every segment, once with tiering off.
#
#   integration/e2e/measure.sh        (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#
# Workload: Kafka's own ProducerPerformance writes CALVING_MEASURE_MIB (default 64) MiB of ~1 KiB
# JSON-like records (lz4, acks=all) into one partition with 4 MiB segments (segment.bytes),
# unthrottled (CALVING_MEASURE_RATE=<records/s> throttles it; CALVING_MEASURE_MODES=on or off runs
# one side only). With tiering: remote.storage.enable=true, local.retention.ms=1000,
# remote.log.manager.task.interval.ms=1000.
# Figures (printed as a Markdown table, also written to $CALVING_MEASURE_OUT if set):
#   - roll -> queryable: per segment, from the broker's "Rolled new log segment" log line to the
#     commit time of the Iceberg snapshot holding its rows (snapshot summary calving.end-offset);
#   - broker CPU seconds (/proc/<pid>/stat utime+stime) from the first produced record until
#     every rolled segment is tiered and deleted locally (tiering off: until the producer is done,
#     plus the same 5 s settle time), peak and mean used heap (jstat -gc, every second), peak RSS;
#   - consumer reading the partition from offset 0 (with tiering: everything but the active
#     segment comes from the table): time per non-empty poll p50/p99, MiB/s, and the broker's CPU
#     seconds while it reads (serving it: fetchLogSegment with tiering, the local log without);
#     and the latency of "seek to a random offset, poll its first record" (200 samples) p50/p99.
# CALVING_MEASURE_SERVED_COMPRESSION=none copies with rsm.config.served.compression=none (remote
# reads get the batches uncompressed, served layout v3); default lz4 (re-compressed, v2).
# CALVING_MEASURE_FETCH_BYTES sets the consumer's max.partition.fetch.bytes (default 1 MiB).
# CALVING_MEASURE_PRODUCER_COMPRESSION sets the producer's compression.type (default lz4).
# Machine notes go with the figures: both runs share the machine with the producer and consumer.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
mib=${CALVING_MEASURE_MIB:-64}
segment_bytes=${CALVING_MEASURE_SEGMENT_BYTES:-4194304}
rate=${CALVING_MEASURE_RATE:--1}   # records/s of the producer (~1 KiB each); -1: as fast as it goes
timeout=${CALVING_MEASURE_TIMEOUT:-1500}
served_compression=${CALVING_MEASURE_SERVED_COMPRESSION:-lz4}
fetch_bytes=${CALVING_MEASURE_FETCH_BYTES:-}   # the consumer's max.partition.fetch.bytes (default: Kafka's, 1 MiB)
producer_compression=${CALVING_MEASURE_PRODUCER_COMPRESSION:-lz4}
topic=measure

say() { echo "measure: $*" >&2; }
die() { echo "measure: error: $*" >&2; exit 2; }

modes=${CALVING_MEASURE_MODES:-on off}   # "off" alone checks the harness without the plugin
if [[ " $modes " == *" on "* ]]; then
  [ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
  python3 -m zipfile -l "$jar" | grep -q libcalving || die "$jar holds no native library (skeleton jar?)"
fi
LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"

base=$(mktemp -d "${TMPDIR:-/tmp}/calving-measure.XXXXXX")
sampler_pid=""
child_pid=""
stop_children() {
  [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null
  [ -z "$child_pid" ] || kill "$child_pid" 2>/dev/null
}
harness_traps measure "$base" "" stop_children "" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" measure

bg() { "$@" & child_pid=$!; wait "$child_pid"; local rc=$?; child_pid=""; return $rc; }
tool() { bg java -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml" \
  -Dcalving.log.file="$base/clients.log" -cp "$base/classes:$LIBS/*" "$@"; }

mkdir -p "$base/classes"
javac -nowarn -d "$base/classes" -cp "$LIBS/*" "$here/E2eClient.java" || die "E2eClient.java does not compile"
python3 "$here/measure.py" payload "$base/payload.txt"
records=$((mib * 1024))

sample_loop() {   # <pid> <file>: "elapsed_s used_heap_mib rss_mib" every second
  local pid=$1 out=$2 t0 heap rss
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    heap=$(jstat -gc "$pid" 2>/dev/null | awk 'NR==2 {printf "%.1f", ($3+$4+$6+$8)/1024}')
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$heap" ] && echo "$(($(date +%s) - t0)) $heap $rss" >>"$out"
    sleep 1
  done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {   # <on|off>
  local mode=$1 work="$base/$1"
  mkdir -p "$work"
  local extra="$work/extra.properties"
  : >"$extra"
  if [ "$mode" = on ]; then
    plugin_properties "$jar" "$work/warehouse" log.initial.task.delay.ms=500 \
      "rsm.config.served.compression=$served_compression" >"$extra"
  fi
  BROKER_HEAP=768m
  broker_init "$work" "$LIBS" "$extra" || die "broker setup failed"
  broker_start || die "broker did not start"
  local configs="retention.ms=-1 segment.bytes=$segment_bytes"
  [ "$mode" = on ] && configs="$configs remote.storage.enable=true local.retention.ms=1000"
  local cargs=() c
  for c in $configs; do cargs+=(--config "$c"); done
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER_BOOTSTRAP" --create --topic "$topic" \
    --partitions 1 --replication-factor 1 "${cargs[@]}" >"$work/topic.out" 2>&1 || { cat "$work/topic.out"; die "topic creation failed"; }
  sleep 2
  sample_loop "$BROKER_PID" "$work/samples.txt" &
  sampler_pid=$!
  local ticks0 t0 ticks1 t1
  ticks0=$(cpu_ticks "$BROKER_PID"); t0=$(date +%s.%N)
  say "[$mode] producing $mib MiB"
  tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" \
    --payload-file "$base/payload.txt" --throughput "$rate" \
    --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" compression.type="$producer_compression" linger.ms=20 batch.size=131072 acks=all \
    >"$work/producer.out" 2>&1 || { tail "$work/producer.out"; die "ProducerPerformance failed"; }
  tail -n1 "$work/producer.out" | sed "s/^/measure: [$mode] producer: /" >&2
  if [ "$mode" = on ]; then
    say "[$mode] waiting for every rolled segment to be tiered and deleted locally"
    tool E2eClient wait-tiered --bootstrap "$BROKER_BOOTSTRAP" --log-dir "$BROKER_DATA" --topics "$topic" \
      --partitions 1 --end-marker no --out "$work/tiered.tsv" --timeout-s 900 || die "tiering did not complete"
  fi
  sleep 5
  ticks1=$(cpu_ticks "$BROKER_PID"); t1=$(date +%s.%N)
  kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=""
  local hz; hz=$(getconf CLK_TCK)
  cpu[$mode]=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) / hz}')
  wall[$mode]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}')
  read -r peak_heap[$mode] avg_heap[$mode] peak_rss[$mode] < <(python3 "$here/measure.py" samples "$work/samples.txt")
  produced_mib[$mode]=$(du -sm "$BROKER_DATA/$topic-0" | cut -f1)
  if [ "$mode" = on ]; then
    read -r n_roll roll_p50 roll_max < <(python3 "$here/measure.py" roll-latency "$BROKER_LOG" "$work/warehouse" "$topic" 0)
    read -r _ local_start _ _ < <(awk '{print $3, $4, $5, $6}' "$work/tiered.tsv")
    max_offset[$mode]=$local_start
    warehouse_mib=$(du -sm "$work/warehouse" | cut -f1)
  else
    max_offset[$mode]=$((records - 1))
  fi
  say "[$mode] consuming from offset 0"
  ticks0=$(cpu_ticks "$BROKER_PID")
  tool E2eClient consume --bootstrap "$BROKER_BOOTSTRAP" --topics "$topic" --isolation read_uncommitted \
    --out - --latency-out "$work/polls.txt" ${fetch_bytes:+--max-partition-fetch-bytes "$fetch_bytes"} \
    2>"$work/consume.err" || { cat "$work/consume.err"; die "consume failed"; }
  ticks1=$(cpu_ticks "$BROKER_PID")
  consume_cpu[$mode]=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) / hz}')
  consume_line[$mode]=$(grep '^consume' "$work/consume.err")
  read -r _ poll_p50[$mode] poll_p99[$mode] _ < <(python3 "$here/measure.py" percentiles "$work/polls.txt")
  consume_mibs[$mode]=$(sed -E 's/.* ([0-9.]+) MiB of keys\+values in ([0-9.]+) s.*/\1 \2/' <<<"${consume_line[$mode]}" | awk '{printf "%.1f", $1 / $2}')
  say "[$mode] random seeks"
  tool E2eClient seek-bench --bootstrap "$BROKER_BOOTSTRAP" --topic "$topic" --samples 200 \
    --max-offset "${max_offset[$mode]}" --out "$work/seeks.txt" 2>"$work/seek.err" || { cat "$work/seek.err"; die "seek-bench failed"; }
  read -r _ seek_p50[$mode] seek_p99[$mode] _ < <(python3 "$here/measure.py" percentiles "$work/seeks.txt")
  broker_stop || true
}

declare -A cpu wall peak_heap avg_heap peak_rss produced_mib max_offset consume_line poll_p50 poll_p99 consume_mibs consume_cpu seek_p50 seek_p99
n_roll=0 roll_p50=- roll_max=- warehouse_mib=-
for m in $modes; do run "$m"; done
set +u

report=$(cat <<EOF
| figure | tiering on (Calving) | tiering off |
|---|---:|---:|
| workload | $mib MiB of ~1 KiB records ($producer_compression), one partition, ${segment_bytes}-byte segments, producer rate $rate records/s (-1: unthrottled) | same |
| broker CPU seconds, first record until tiered (off: produced) + 5 s | ${cpu[on]} s over ${wall[on]} s | ${cpu[off]} s over ${wall[off]} s |
| broker heap used, peak / mean (jstat) | ${peak_heap[on]} / ${avg_heap[on]} MiB | ${peak_heap[off]} / ${avg_heap[off]} MiB |
| broker RSS, peak | ${peak_rss[on]} MiB | ${peak_rss[off]} MiB |
| segment roll -> rows queryable (task interval 1 s), p50 / max over $n_roll segments | ${roll_p50} / ${roll_max} s | — |
| warehouse size vs local log of the same data | ${warehouse_mib} MiB vs ${produced_mib[off]} MiB | — |
| consumer from offset 0: time per non-empty poll p50 / p99 | ${poll_p50[on]} / ${poll_p99[on]} ms (remote: offsets below ${max_offset[on]}) | ${poll_p50[off]} / ${poll_p99[off]} ms (local) |
| consumer from offset 0: throughput (keys+values) | ${consume_mibs[on]} MiB/s | ${consume_mibs[off]} MiB/s |
| broker CPU seconds while the consumer reads from offset 0 | ${consume_cpu[on]} s (served.compression=$served_compression) | ${consume_cpu[off]} s |
| seek to a random offset, first record back: p50 / p99 (200 samples) | ${seek_p50[on]} / ${seek_p99[on]} ms | ${seek_p50[off]} / ${seek_p99[off]} ms |
EOF
)
echo "$report"
[ -z "${CALVING_MEASURE_OUT:-}" ] || echo "$report" >"$CALVING_MEASURE_OUT"
