#!/usr/bin/env bash
# Calving against what users run instead to get the same Iceberg table: Apache Kafka's plain
# tiered storage plus a Kafka Connect standalone worker with the Apache Iceberg sink connector.
# CPU-seconds per GiB of records of each side, the same records, one run, loopback only.
#
#   integration/e2e/connect-compare.sh    (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#
# Workload (both sides, one after the other, each on a fresh single-node Kafka broker on
# 127.0.0.1): Kafka's ProducerPerformance writes CALVING_COMPARE_MIB (default 512) MiB of ~1 KiB
# JSON-like records (integration/e2e/measure.py payload; ProducerPerformance picks the lines with a
# fixed seed, SplittableRandom(0), so both sides get the very same records) with lz4, acks=all,
# linger 20 ms, 128 KiB batches, unthrottled, into one partition of 4 MiB segments
# (retention.ms=-1, remote.storage.enable=true, local.retention.ms=1000, task interval 1 s); then
# one end-marker record (connect/EndMarker.java) rolls the last data segment so that every data
# record tiers.
#
#  A. Calving: the broker with the plugin jar on the embedded default (local warehouse + SQLite
#     catalog). Measured: broker CPU (utime+stime, /proc/<pid>/stat) from the first record until
#     every rolled segment is tiered and deleted locally, plus 5 s (as integration/e2e/measure.sh).
#  B. Plain tiering + Connect: the broker with Kafka's own LocalTieredStorage (kafka-storage's test
#     jar, Maven Central: copies each segment's files to a local directory, no conversion) and
#     Kafka's TopicBasedRemoteLogMetadataManager; a Kafka Connect standalone worker (connect-runtime
#     of the broker's Kafka version) runs org.apache.iceberg.connect.IcebergSinkConnector
#     (iceberg-kafka-connect, CALVING_COMPARE_ICEBERG default 1.10.1) on the same topic into an
#     Iceberg table on a JdbcCatalog over SQLite (sqlite-jdbc) with a local file:// warehouse
#     (HadoopFileIO), records through JsonConverter with schemas.enable=false (schemaless JSON: each
#     record a map, the table auto-created from the first one, rows as columns), commit interval
#     CALVING_COMPARE_COMMIT_MS (default 10000; the sink's default is 300000). Measured: broker CPU +
#     worker CPU from the first record until every segment is tiered AND the sink's table holds every
#     record (its current snapshot's total-records), plus 5 s. The worker is started and its task
#     running before the first record (its JVM start and plugin scan are not counted, nor the
#     brokers' starts).
# Both JVMs: SerialGC, the broker's 768 MiB heap (BROKER_HEAP) and the worker's 1 GiB.
# The headline figures subtract nothing. Also shown: each process's idle CPU rate (10 s before the
# first record, the sink already running) and the ratio with rate x window taken out of each, since
# side B's window is longer (the sink commits on its interval); and the sizes on disk of Calving's
# warehouse, the sink's warehouse and LocalTieredStorage's copies.
# Checks (exit 1 otherwise): Calving's table holds exactly the produced records below the end
# marker; the sink's table holds every record (the produced ones + the end marker), once; side B's
# consumer from offset 0 reads the same number of records and bytes (keys+values) as were counted in
# Calving's table.
# Output: a Markdown table and one JSON line ("connect-compare-json: {...}"), also written to
# $CALVING_COMPARE_OUT if set. CALVING_COMPARE_SIDES="calving" or "connect" runs one side only (a
# check of the harness, no comparison).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
mib=${CALVING_COMPARE_MIB:-512}
segment_bytes=${CALVING_COMPARE_SEGMENT_BYTES:-4194304}
commit_ms=${CALVING_COMPARE_COMMIT_MS:-10000}
iceberg_version=${CALVING_COMPARE_ICEBERG:-1.10.1}
kafka_version=${CALVING_KAFKA_VERSION:-4.1.2}
timeout=${CALVING_COMPARE_TIMEOUT:-2400}
sides=${CALVING_COMPARE_SIDES:-calving connect}
topic=measure
table=kafka.measure

say() { echo "connect-compare: $*" >&2; }
die() { echo "connect-compare: error: $*" >&2; exit 1; }

if [[ " $sides " == *" calving "* ]]; then
  [ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
  python3 -m zipfile -l "$jar" | grep -q libcalving || die "$jar holds no native library (skeleton jar?)"
fi
LIBS=$(CALVING_KAFKA_VERSION=$kafka_version "$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"

# The sink and its runtime (a Connect plugin directory) and Kafka's LocalTieredStorage, from Maven
# Central into ~/.cache/calving/connect-<iceberg version>/ (not the repo), once per pom and version.
resolve_connect() {
  local pom="$here/connect/pom.xml" cache=${CALVING_COMPARE_CACHE:-$HOME/.cache/calving/connect-$iceberg_version}
  local sum; sum=$({ cat "$pom"; echo "$iceberg_version $kafka_version"; } | sha256sum | cut -d' ' -f1)
  PLUGIN_DIR="$cache/plugins/iceberg-kafka-connect"
  RSM_DIR="$cache/kafka-$kafka_version-local-tiered-storage"
  if [ "$(head -n1 "$cache/.calving-resolved" 2>/dev/null)" != "$sum" ]; then
    say "resolving iceberg-kafka-connect $iceberg_version and kafka-storage $kafka_version (test) into $cache (Maven Central)"
    rm -rf "$cache/plugins" "$RSM_DIR"; mkdir -p "$PLUGIN_DIR" "$RSM_DIR"
    # shellcheck disable=SC2086  # CALVING_MVN_ARGS is intentionally word-split
    mvn -q -B -f "$pom" -Diceberg.version="$iceberg_version" ${CALVING_MVN_ARGS:-} \
      dependency:copy-dependencies -DoutputDirectory="$PLUGIN_DIR" >&2 || die "mvn could not resolve the Iceberg sink"
    # shellcheck disable=SC2086
    mvn -q -B -f "$pom" -Dcalving.rsm -Dkafka.version="$kafka_version" ${CALVING_MVN_ARGS:-} \
      dependency:copy-dependencies -DoutputDirectory="$RSM_DIR" >&2 || die "mvn could not resolve kafka-storage (test)"
    echo "$sum" >"$cache/.calving-resolved"
  fi
  [ -f "$PLUGIN_DIR/iceberg-kafka-connect-$iceberg_version.jar" ] || die "no iceberg-kafka-connect jar in $PLUGIN_DIR"
  RSM_JAR="$RSM_DIR/kafka-storage-$kafka_version-test.jar"
  [ -f "$RSM_JAR" ] || die "no $RSM_JAR"
}
[[ " $sides " == *" connect "* ]] && resolve_connect

# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"

base=$(mktemp -d "${TMPDIR:-/tmp}/calving-connect-compare.XXXXXX")
child_pid=""
connect_pid=""
stop_connect() {
  [ -n "$connect_pid" ] || return 0
  kill -TERM "$connect_pid" 2>/dev/null || true
  local i
  for i in $(seq 150); do kill -0 "$connect_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$connect_pid" 2>/dev/null || true
  wait "$connect_pid" 2>/dev/null || true
  connect_pid=""
}
stop_children() {
  [ -z "$child_pid" ] || kill "$child_pid" 2>/dev/null
  stop_connect
}
harness_traps connect-compare "$base" "" stop_children "" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" connect-compare

bg() { "$@" & child_pid=$!; wait "$child_pid"; local rc=$?; child_pid=""; return $rc; }
tool() { bg java -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml" \
  -Dcalving.log.file="$base/clients.log" -cp "$base/classes:$LIBS/*" "$@"; }

mkdir -p "$base/classes"
javac -nowarn -d "$base/classes" -cp "$LIBS/*" "$here/E2eClient.java" "$here/connect/EndMarker.java" \
  || die "E2eClient.java / EndMarker.java do not compile"
python3 "$here/measure.py" payload "$base/payload.txt"
records=$((mib * 1024))
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
secs() { awk -v a="$1" -v b="$2" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) / hz}'; }
idle_rate() {   # <pid>...: each one's CPU-seconds per second over 10 s before the workload
  local p a=() b=() i
  for p in "$@"; do a+=("$(cpu_ticks "$p")"); done
  sleep 10
  for p in "$@"; do b+=("$(cpu_ticks "$p")"); done
  for i in "${!a[@]}"; do awk -v a="${a[$i]}" -v b="${b[$i]}" -v hz="$hz" 'BEGIN {printf "%.3f ", (b - a) / hz / 10}'; done
  echo
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

create_topic() {   # <work> <topic> <partitions> [config...]
  local work=$1 t=$2 n=$3 c cargs=()
  shift 3
  for c in "$@"; do cargs+=(--config "$c"); done
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER_BOOTSTRAP" --create --topic "$t" \
    --partitions "$n" --replication-factor 1 "${cargs[@]}" >"$work/topic-$t.out" 2>&1 \
    || { cat "$work/topic-$t.out" >&2; die "creating topic $t failed"; }
}
# message.timestamp.after.max.ms: Kafka 4 refuses timestamps over 1 h ahead; the end marker's is 7 days.
topic_configs=(retention.ms=-1 "segment.bytes=$segment_bytes" remote.storage.enable=true local.retention.ms=1000
  message.timestamp.after.max.ms=9223372036854775807)

produce() {   # <work> <label>: the workload, then the end marker (its offset in MARKER)
  local work=$1
  say "[$2] producing $mib MiB ($records records)"
  tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" \
    --payload-file "$base/payload.txt" --throughput -1 \
    --producer-props bootstrap.servers="$BROKER_BOOTSTRAP" compression.type=lz4 linger.ms=20 batch.size=131072 acks=all \
    >"$work/producer.out" 2>&1 || { tail "$work/producer.out" >&2; die "ProducerPerformance failed"; }
  tail -n1 "$work/producer.out" | sed "s/^/connect-compare: [$2] producer: /" >&2
  MARKER=$(tool EndMarker "$BROKER_BOOTSTRAP" "$topic" 2>>"$work/marker.err") || { cat "$work/marker.err" >&2; die "end marker failed"; }
  [ "$MARKER" = "$records" ] || die "[$2] end marker at offset $MARKER, expected $records (records lost or duplicated?)"
}

wait_tiered() {   # <work> <label>
  say "[$2] waiting for every rolled segment to be tiered and deleted locally"
  tool E2eClient wait-tiered --bootstrap "$BROKER_BOOTSTRAP" --log-dir "$BROKER_DATA" --topics "$topic" \
    --partitions 1 --end-marker yes --out "$1/tiered.tsv" --timeout-s 1200 || die "[$2] tiering did not complete"
}

declare -A R
R[date]=$(date -u +%Y-%m-%dT%H:%MZ)

run_calving() {
  local work="$base/calving"
  mkdir -p "$work"
  plugin_properties "$jar" "$work/warehouse" log.initial.task.delay.ms=500 >"$work/extra.properties"
  BROKER_HEAP=768m
  broker_init "$work/broker" "$LIBS" "$work/extra.properties" || die "broker setup failed"
  broker_start || die "broker did not start"
  create_topic "$work" "$topic" 1 "${topic_configs[@]}"
  sleep 2
  R[idle_calving]=$(idle_rate "$BROKER_PID")
  local b0 t0 b1 t1
  b0=$(cpu_ticks "$BROKER_PID"); t0=$(date +%s.%N)
  produce "$work" calving
  wait_tiered "$work" calving
  sleep 5
  b1=$(cpu_ticks "$BROKER_PID"); t1=$(date +%s.%N)
  R[cpu_calving]=$(secs "$b0" "$b1")
  R[wall_calving]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}')
  say "[calving] broker CPU ${R[cpu_calving]} s over ${R[wall_calving]} s"
  broker_stop || true
  local rows bytes total
  read -r rows bytes total < <(python3 "$here/connect/compare.py" calving-rows "$work/warehouse/calving-catalog.db" "$table" "$records") \
    || die "[calving] could not read the table"
  [ "$rows" = "$records" ] || die "[calving] the table holds $rows records below the end marker, $records were produced"
  R[rows_calving]=$rows
  R[mib_calving_warehouse]=$(du -sm "$work/warehouse" | cut -f1)
  R[bytes]=$bytes
  say "[calving] table $table: $rows records below the end marker ($total rows in all), $bytes bytes of keys+values"
}

run_connect() {
  local work="$base/connect"
  mkdir -p "$work/plugins"
  ln -s "$PLUGIN_DIR" "$work/plugins/iceberg-kafka-connect"
  cat >"$work/extra.properties" <<EOF
remote.log.storage.system.enable=true
remote.log.storage.manager.class.name=org.apache.kafka.server.log.remote.storage.LocalTieredStorage
remote.log.storage.manager.class.path=$RSM_JAR
rsm.config.dir=$work/remote
rsm.config.delete.on.close=false
remote.log.metadata.manager.listener.name=PLAINTEXT
rlmm.config.remote.log.metadata.topic.replication.factor=1
rlmm.config.remote.log.metadata.topic.num.partitions=1
remote.log.manager.task.interval.ms=1000
log.retention.check.interval.ms=1000
log.initial.task.delay.ms=500
EOF
  BROKER_HEAP=768m
  broker_init "$work/broker" "$LIBS" "$work/extra.properties" || die "broker setup failed"
  broker_start || die "broker did not start"
  create_topic "$work" "$topic" 1 "${topic_configs[@]}"
  create_topic "$work" control-iceberg 1

  local rest_port; rest_port=$(free_port)
  cat >"$work/worker.properties" <<EOF
bootstrap.servers=$BROKER_BOOTSTRAP
listeners=http://127.0.0.1:$rest_port
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
offset.storage.file.filename=$work/connect.offsets
offset.flush.interval.ms=10000
plugin.path=$work/plugins
plugin.discovery=service_load
EOF
  cat >"$work/iceberg-sink.properties" <<EOF
name=iceberg-sink
connector.class=org.apache.iceberg.connect.IcebergSinkConnector
tasks.max=1
topics=$topic
iceberg.tables=$table
iceberg.tables.auto-create-enabled=true
iceberg.catalog=iceberg
iceberg.catalog.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog
iceberg.catalog.uri=jdbc:sqlite:$work/sink-catalog.db
iceberg.catalog.jdbc.schema-version=V1
iceberg.catalog.warehouse=file://$work/sink-warehouse
iceberg.control.topic=control-iceberg
iceberg.control.commit.interval-ms=$commit_ms
iceberg.kafka.bootstrap.servers=$BROKER_BOOTSTRAP
EOF
  say "[connect] starting the Kafka Connect standalone worker (REST on 127.0.0.1:$rest_port)"
  java -Xms256m -Xmx1g -XX:+UseSerialGC "${KAFKA_LOG_OPTS[@]}" -Dcalving.log.file="$work/connect.log" \
    -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectStandalone "$work/worker.properties" "$work/iceberg-sink.properties" \
    >"$work/connect.out" 2>&1 &
  connect_pid=$!
  local i state=""
  for i in $(seq 300); do
    kill -0 "$connect_pid" 2>/dev/null || { tail -n 30 "$work/connect.out" >&2; die "the Connect worker exited (see $work/connect.log)"; }
    state=$(curl -s "http://127.0.0.1:$rest_port/connectors/iceberg-sink/status" 2>/dev/null \
      | python3 -c 'import json,sys; s=json.load(sys.stdin); t=s.get("tasks",[]); print(s["connector"]["state"], t[0]["state"] if t else "-")' 2>/dev/null) || state=""
    [ "$state" = "RUNNING RUNNING" ] && break
    case $state in *FAILED*) die "the sink failed to start: $(curl -s "http://127.0.0.1:$rest_port/connectors/iceberg-sink/status" | head -c 2000)";; esac
    sleep 1
  done
  [ "$state" = "RUNNING RUNNING" ] || die "the sink is not running after 300 s (state: $state; see $work/connect.log)"
  sleep 10   # the task joins its consumer group and the sink's coordinator starts
  say "[connect] sink running"
  read -r R[idle_plain] R[idle_connect] < <(idle_rate "$BROKER_PID" "$connect_pid")

  local b0 c0 t0 b1 c1 t1 tp n
  b0=$(cpu_ticks "$BROKER_PID"); c0=$(cpu_ticks "$connect_pid"); t0=$(date +%s.%N)
  produce "$work" connect
  tp=$(date +%s.%N)
  wait_tiered "$work" connect
  say "[connect] waiting for the sink to commit all $((records + 1)) records"
  for i in $(seq 1200); do
    n=$(python3 "$here/connect/compare.py" committed "$work/sink-catalog.db" "$table") || n=0
    [ "$n" -ge $((records + 1)) ] && break
    kill -0 "$connect_pid" 2>/dev/null || die "the Connect worker exited (see $work/connect.log)"
    sleep 1
  done
  [ "$n" -ge $((records + 1)) ] || die "[connect] the sink committed $n of $((records + 1)) records in 1200 s"
  R[sink_lag]=$(awk -v a="$tp" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')
  sleep 5
  b1=$(cpu_ticks "$BROKER_PID"); c1=$(cpu_ticks "$connect_pid"); t1=$(date +%s.%N)
  R[cpu_plain]=$(secs "$b0" "$b1")
  R[cpu_connect]=$(secs "$c0" "$c1")
  R[wall_connect]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}')
  say "[connect] broker CPU ${R[cpu_plain]} s, Connect worker CPU ${R[cpu_connect]} s over ${R[wall_connect]} s"
  stop_connect

  say "[connect] consuming the topic from offset 0 (tiered segments served by LocalTieredStorage)"
  tool E2eClient consume --bootstrap "$BROKER_BOOTSTRAP" --topics "$topic" --partitions 1 --isolation read_uncommitted \
    --out - 2>"$work/consume.err" || { cat "$work/consume.err" >&2; die "consume failed"; }
  R[consume]=$(grep '^consume' "$work/consume.err")
  say "[connect] ${R[consume]}"
  broker_stop || true
  local rows markers snaps files cols
  read -r rows markers snaps files cols < <(python3 "$here/connect/compare.py" connect-rows "$work/sink-catalog.db" "$table") \
    || die "[connect] could not read the sink's table"
  [ "$rows" = $((records + 1)) ] && [ "$markers" = 1 ] \
    || die "[connect] the sink's table holds $rows rows ($markers end markers); $records records + 1 end marker were produced"
  R[rows_connect]=$rows R[sink_snapshots]=$snaps R[sink_files]=$files
  R[mib_sink_warehouse]=$(du -sm "$work/sink-warehouse" | cut -f1)
  R[mib_plain_remote]=$(du -sm "$work/remote" | cut -f1)
  say "[connect] sink table $table: $rows rows, $snaps snapshots, $files data files, columns $cols"
}

for s in $sides; do "run_$s"; done

if [[ " $sides " == *" calving "* && " $sides " == *" connect "* ]]; then
  # Same records on both sides: the consumer's count and keys+values MiB (one decimal) on side B
  # against Calving's table.
  read -r c_n c_mib < <(sed -E 's/.*: ([0-9]+) records, ([0-9.]+) MiB of keys.*/\1 \2/' <<<"${R[consume]}")
  t_mib=$(awk -v b="${R[bytes]}" 'BEGIN {printf "%.1f", b / 1048576}')
  [ "$c_n" = $((records + 1)) ] || die "side B's consumer read $c_n records, $((records + 1)) were produced"
  awk -v a="$c_mib" -v b="$t_mib" 'BEGIN {exit !(a - b <= 0.11 && b - a <= 0.11)}' \
    || die "side B's consumer read $c_mib MiB of keys+values, Calving's table holds $t_mib MiB: not the same records"
  R[loadavg]=$(cut -d' ' -f1-3 /proc/loadavg)
  args=()
  for k in "${!R[@]}"; do [ "$k" = consume ] || args+=("$k=${R[$k]}"); done
  report=$(python3 "$here/connect/compare.py" summary "${args[@]}" records="$records" segment_bytes="$segment_bytes" \
    commit_ms="$commit_ms" kafka="$kafka_version" iceberg="$iceberg_version")
  echo "$report"
  [ -z "${CALVING_COMPARE_OUT:-}" ] || echo "$report" >"$CALVING_COMPARE_OUT"
fi
