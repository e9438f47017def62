#!/usr/bin/env bash
# Calving end to end on a real Apache Kafka broker (single-node KRaft, 127.0.0.1; 4.1.2 by default,
# any of 3.9.2 to 4.4.0 with CALVING_KAFKA_VERSION) with the plugin jar on the embedded default (local
# warehouse + SQLite catalog).
#
#   integration/e2e/run.sh            (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#   CALVING_KAFKA_VERSION=3.9.2 integration/e2e/run.sh
#   integration/kafka/versions.sh     (every supported version in turn)
#
# Steps, each ending in lines "PASS <name>" or "FAIL <name>: <why>":
#   1. start the broker with remote.log.storage.system.enable=true and
#      io.calving.kafka.CalvingRemoteStorageManager from build/libs/calving-0.1.0-SNAPSHOT.jar
#      (remote.log.storage.manager.class.path), rsm.config.warehouse=file://<tmp>/warehouse;
#   2. produce the workload (E2eClient.java produce): 7 topics x 2 partitions, every compression
#      type with idempotent producers, a transactional producer committing and aborting, headers
#      (duplicate keys, null and empty values), null keys, tombstones, empty and binary keys and
#      values, 10-50 KiB values (> index.interval.bytes), a LogAppendTime topic (non-idempotent);
#      128 KiB segments (internal.segment.bytes, Kafka 4.1+; before 4.1 the smallest is 1 MiB of
#      segment.bytes, with 3000 instead of 300 records per partition so that every partition still
#      rolls several segments), local.retention.ms=1000, retention.ms=-1;
#   3. wait until every rolled segment was copied and deleted locally (ListOffsets earliest-local
#      = latest-tiered + 1 = the end marker, one .log file left per partition directory);
#   4. consume everything from offset 0 with read_uncommitted and read_committed and compare with
#      the producer's record of what it sent (check.py consumed);
#   5. ListOffsets by timestamp against the remote segments (check.py offsets);
#   6. read every table with pyiceberg and DuckDB and compare (check.py table); e2e_txn and
#      e2e_gzip are copied with rsm.config.topic.<name>.served.compression=none, so the reads of 4,
#      5 and 7 (read_committed included) get their batches uncompressed (served layout v3), the
#      other topics' re-compressed as lz4 (v2): each table's copy snapshots say which (check.py layouts);
#   7. restart the broker (its remote index cache stays on disk) and do 4 and 5 again;
#   8. delete two topics: their sidecars go; e2e_zstd's rows stay (retention.mode=keep), e2e_snappy's
#      go (retention.mode=delete); other topics keep theirs;
#   9. no ERROR from the remote log subsystem in the broker log; clean shutdown.
# Between 3 and 7, the plugin's JMX metrics are read from the running broker with Kafka's JmxTool
# (after tiering, and after the reads) and checked against the broker's log (check.py jmx).
# Ends with "e2e (Kafka <version>): N passed, N failed"; exit status 1 when anything failed. The
# work directory (broker log, data, warehouse) is kept on failure, or always with CALVING_KEEP_WORK=1.
#
# Env: CALVING_JAR (default build/libs/calving-0.1.0-SNAPSHOT.jar), CALVING_E2E_TIERING=off (the
# same run with tiering off: checks the harness against local data), CALVING_E2E_RECORDS (records
# per partition per topic, default 300, 3000 before Kafka 4.1), CALVING_E2E_SEGMENT_BYTES (default
# 131072, 1048576 before 4.1), CALVING_E2E_TIMEOUT (watchdog, default 900 s), CALVING_KAFKA_VERSION
# and CALVING_KAFKA_LIBS (see integration/kafka/resolve-jars.sh; the version run is the one of the
# kafka_2.13 jar in the libs dir).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
tiering=${CALVING_E2E_TIERING:-on}
timeout=${CALVING_E2E_TIMEOUT:-900}
tier_timeout=${CALVING_E2E_TIER_TIMEOUT:-240}
topics=e2e_none,e2e_gzip,e2e_snappy,e2e_lz4,e2e_zstd,e2e_txn,e2e_lat
deleted_topic=e2e_zstd          # retention.mode=keep (the default): rows stay
purged_topic=e2e_snappy         # retention.mode=delete: rows go with the segments

say() { echo "e2e: $*" >&2; }
die() { echo "e2e: error: $*" >&2; exit 2; }

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
kafka_version=$(basename "$(compgen -G "$LIBS/kafka_2.13-*.jar" | head -n1)" .jar)
kafka_version=${kafka_version#kafka_2.13-}
[ -n "$kafka_version" ] || die "no kafka_2.13 jar in $LIBS"
# internal.segment.bytes (any size) exists from Kafka 4.1; before, segment.bytes >= 1 MiB only.
if [ "$(printf '%s\n' 4.1 "$kafka_version" | sort -V | head -n1)" = 4.1 ]; then
  segment_bytes=${CALVING_E2E_SEGMENT_BYTES:-131072}; records=${CALVING_E2E_RECORDS:-300}
else
  segment_bytes=${CALVING_E2E_SEGMENT_BYTES:-1048576}; records=${CALVING_E2E_RECORDS:-3000}
fi
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/calving-e2e.XXXXXX")
warehouse="$work/warehouse"
results_init "$work/results.txt"
client_pid=""
started=$(date +%s)

stop_client() { [ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null; }
harness_traps e2e "$work" " (broker log: $work/server.log)" stop_client \
  "interrupted" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" e2e

# Runs a command in the background (so that signals reach the trap at once), waits for it.
bg() { "$@" & client_pid=$!; wait "$client_pid"; local rc=$?; client_pid=""; return $rc; }
# Runs check.py; its PASS/FAIL lines go to the results.
check() { bg python3 "$here/check.py" "$@" | tee_results; }

client() { bg java -Xmx512m -XX:+UseSerialGC "${KAFKA_LOG_OPTS[@]}" \
  -Dcalving.log.file="$work/clients.log" -cp "$work/classes:$LIBS/*" E2eClient "$1" --bootstrap "$BROKER_BOOTSTRAP" "${@:2}"; }

# ---- 0. the plugin jar and the client
if [ "$tiering" = on ]; then
  [ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
  if python3 -m zipfile -l "$jar" | grep -q 'libcalving'; then
    pass "plugin jar holds the native library ($(python3 -m zipfile -l "$jar" | grep -o '[^ ]*libcalving[^ ]*' | head -n1))"
  else
    fail "plugin jar" "$jar holds no libcalving native library (skeleton jar?)"
  fi
fi
mkdir -p "$work/classes"
javac -nowarn -d "$work/classes" -cp "$LIBS/*" "$here/E2eClient.java" 2>"$work/javac.out" \
  || { cat "$work/javac.out" >&2; die "E2eClient.java does not compile"; }

# ---- 1. broker
extra="$work/extra.properties"
if [ "$tiering" = on ]; then
  plugin_properties "$jar" "$warehouse" rlmm.config.remote.log.metadata.topic.num.partitions=2 \
    "rsm.config.topic.$purged_topic.retention.mode=delete" "rsm.config.topic.e2e_txn.served.compression=none" \
    "rsm.config.topic.e2e_gzip.served.compression=none" log.initial.task.delay.ms=500 remote.log.reader.threads=4 \
    remote.log.manager.copier.thread.pool.size=2 remote.log.manager.expiration.thread.pool.size=2 >"$extra"
else
  : >"$extra"
fi
broker_init "$work" "$LIBS" "$extra" || die "broker setup failed"
if broker_start; then step "broker started (Kafka $kafka_version, tiering $tiering, $BROKER_BOOTSTRAP)"; else fail "broker start" "see $BROKER_LOG"; exit 1; fi

# ---- 2. workload
t0=$(date +%s)
if client produce --oracle "$work/oracle.tsv" --tiering "$tiering" --records "$records" \
     --segment-bytes "$segment_bytes" 2>"$work/produce.err"; then
  step "produce ($(wc -l <"$work/oracle.tsv") records, $(cut -f6 "$work/oracle.tsv" | grep -c A) in aborted transactions, $segment_bytes-byte segments, $(($(date +%s) - t0)) s)"
else
  tail -n 20 "$work/produce.err"; fail "produce" "E2eClient produce failed"; exit 1
fi

# ---- 3. tiered and deleted locally
t0=$(date +%s)
if client wait-tiered --log-dir "$BROKER_DATA" --topics "$topics" --out "$work/tiered.tsv" \
     --tiering "$tiering" --timeout-s "$tier_timeout" 2>"$work/wait.err"; then
  if [ "$tiering" = on ]; then
    segs=$(grep -c 'Copied .* to remote storage' "$BROKER_LOG" || true)
    remote=$(awk '{s += $4} END {print s}' "$work/tiered.tsv")
    pass "tiered: every rolled segment copied and deleted locally in $(($(date +%s) - t0)) s ($remote offsets below the local log starts; broker log: $segs 'Copied' lines)"
  fi
else
  tail -n 5 "$work/wait.err"; fail "tiered" "segments not copied and deleted locally in $tier_timeout s (see $BROKER_LOG)"
  [ -f "$work/tiered.tsv" ] || exit 1
fi
tiered_arg="$work/tiered.tsv"
[ "$tiering" = on ] || tiered_arg=-

# The plugin's MBean, read from the running broker by Kafka's own JmxTool (properties format).
jmx() {   # <out file>
  bg java -Xmx256m -cp "$LIBS/*" org.apache.kafka.tools.JmxTool --jmx-url "$BROKER_JMX_URL" \
    --object-name 'io.calving:type=RemoteStorageManager,*' --one-time true --report-format properties \
    >"$1" 2>"$work/jmx.err" || tail -n 5 "$work/jmx.err" >&2
}
if [ "$tiering" = on ]; then
  # The broker logs "Copied" after a copy returned: lines counted now are all in the next read.
  copied_before_jmx=$(grep -c 'Copied .* to remote storage' "$BROKER_LOG" || true)
  jmx "$work/jmx-tiered.txt"
fi

consume_and_compare() {   # <label suffix>
  local iso
  for iso in read_uncommitted read_committed; do
    if client consume --topics "$topics" --isolation "$iso" --out "$work/consumed-$iso$1.tsv" 2>"$work/consume.err"; then
      say "$(grep '^consume' "$work/consume.err")"
      check consumed "$work/oracle.tsv" "$work/consumed-$iso$1.tsv" "$iso" "$tiered_arg" "consume $iso$1"
    else
      tail -n 5 "$work/consume.err"; fail "consume $iso$1" "E2eClient consume failed"
    fi
  done
}

offsets_by_timestamp() {   # <label suffix>
  if client offsets --queries "$work/queries.tsv" --out "$work/offsets$1.tsv" 2>"$work/offsets.err"; then
    check offsets "$work/oracle.tsv" "$work/queries.tsv" "$work/offsets$1.tsv" "offsets by timestamp$1"
  else
    tail -n 5 "$work/offsets.err"; fail "offsets by timestamp$1" "E2eClient offsets failed"
  fi
}

# ---- 4, 5. consume and look up timestamps
consume_and_compare ""
python3 "$here/check.py" queries "$work/oracle.tsv" "$work/tiered.tsv" "$work/queries.tsv"
offsets_by_timestamp ""

# ---- 6. the tables, read by independent engines
# A topic's sidecars, wherever sidecar.location puts them under the warehouse (by default
# <warehouse>/calving-sidecars/<namespace>/<topic>/<partition>/).
sidecars() { find "$warehouse" -path "*/$1/*" -name '*.sidecar' 2>/dev/null | wc -l; }
if [ "$tiering" = on ]; then
  for topic in ${topics//,/ }; do
    for engine in pyiceberg duckdb; do
      check table "$work/oracle.tsv" "$work/tiered.tsv" "$warehouse" "$topic" "$engine" "table"
    done
  done
  # e2e_txn (lz4, transactions: read_committed above) and e2e_gzip are served uncompressed.
  check layouts "$warehouse" "e2e_txn=3,e2e_gzip=3,e2e_lz4=2,e2e_zstd=2,e2e_none=2" "served layout"
  n=$(ls "$BROKER_DATA/remote-log-index-cache" 2>/dev/null | grep -c -E '\.(index|timeindex)$' || true)
  if [ "$n" -gt 0 ]; then pass "broker's remote index cache on disk ($n index files served by the plugin)"
  else fail "remote index cache" "no index files in $BROKER_DATA/remote-log-index-cache"; fi
fi

if [ "$tiering" = on ]; then
  jmx "$work/jmx-read.txt"
  check jmx "$work/jmx-tiered.txt" "$work/jmx-read.txt" "$copied_before_jmx" "JMX metrics"
fi

# ---- 7. restart and read again
if broker_stop && broker_start; then
  pass "broker restarted cleanly"
  consume_and_compare " after restart"
  offsets_by_timestamp " after restart"
else
  fail "broker restart" "see $BROKER_LOG"
fi

# ---- 8. delete topics: one per retention mode
if [ "$tiering" = on ]; then
  before=$(sidecars "$deleted_topic")
  purged_before=$(sidecars "$purged_topic")
  others_before=$(sidecars e2e_gzip)
  [ "$before" -gt 0 ] || fail "sidecars before delete" "no sidecar of $deleted_topic under $warehouse"
  [ "$purged_before" -gt 0 ] || fail "sidecars before delete" "no sidecar of $purged_topic under $warehouse"
fi
for topic in "$deleted_topic" "$purged_topic"; do
  if ! client delete-topic --topic "$topic" 2>"$work/delete.err"; then
    tail -n 5 "$work/delete.err"; fail "delete topic $topic" "E2eClient delete-topic failed"; continue
  fi
  t0=$(date +%s)
  if [ "$tiering" = on ]; then
    mode=keep; [ "$topic" = "$purged_topic" ] && mode=delete
    left=1
    for _ in $(seq 120); do left=$(sidecars "$topic"); [ "$left" = 0 ] && break; sleep 0.5; done
    if [ "$left" = 0 ]; then pass "delete topic $topic: its sidecars deleted in $(($(date +%s) - t0)) s (retention.mode=$mode)"
    else fail "delete topic $topic" "$left sidecars still there after 60 s"; fi
    if [ "$mode" = keep ]; then
      check table "$work/oracle.tsv" "$work/tiered.tsv" "$warehouse" "$topic" pyiceberg "rows kept after delete"
    else
      for engine in pyiceberg duckdb; do check table-empty "$warehouse" "$topic" "$engine" "rows removed after delete"; done
    fi
  fi
  for _ in $(seq 120); do compgen -G "$BROKER_DATA/$topic-*" >/dev/null || break; sleep 0.5; done
  if compgen -G "$BROKER_DATA/$topic-[0-9]*" >/dev/null; then fail "delete topic local" "partition directories of $topic still there"
  else pass "delete topic $topic: local partitions gone"; fi
done
if [ "$tiering" = on ]; then
  others=$(sidecars e2e_gzip)
  if [ "$others" = "$others_before" ]; then pass "other topics keep their sidecars (e2e_gzip: $others)"
  else fail "other topics' sidecars" "e2e_gzip had $others_before sidecars, now $others"; fi
fi

# ---- 9. broker log and shutdown
if [ "$tiering" = on ]; then check_broker_log; fi
if broker_stop; then pass "broker stopped cleanly"; else fail "broker stop" "no clean shutdown"; fi

summary "e2e (Kafka $kafka_version)" "$started"
