#!/usr/bin/env bash
# Iceberg maintenance by other engines on a real broker's tables (DESIGN.md invariants 4 and 9):
# Spark's rewrite_data_files, rewrite_manifests, expire_snapshots and remove_orphan_files, then
# pyiceberg's snapshot expiry, on the tables a real Apache Kafka 4.1.2 broker (single-node KRaft,
# 127.0.0.1) tiered into with the plugin jar on the embedded default (local warehouse + SQLite
# catalog). Kafka's reads must outlive them, and the table must keep one row per offset.
#
#   integration/maintain/run.sh      (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#
# Steps, each ending in lines "PASS <name>" or "FAIL <name>: <why>":
#   1. start the broker (rsm.config.topic.maint_delete.retention.mode=delete; maint_keep keeps the
#      default `keep`); produce round 1 (MaintainClient.java produce): 2 topics x 3 partitions,
#      idempotent producers (zstd, none) interleaved with transactions (every third aborted),
#      E2eClient's records (headers, null keys, tombstones, binary, 10-50 KiB values), 64 KiB
#      segments (internal.segment.bytes), local.retention.ms=1000, timestamps 30 days old; wait until
#      every rolled segment was copied and deleted locally (E2eClient wait-tiered); meanwhile the
#      files of partition directory maint_keep-0 are hard-linked aside (for step 5);
#   2. baseline: consume from offset 0 (read_uncommitted, read_committed) and compare with what
#      was produced (integration/e2e/check.py consumed); the tables equal the produced records;
#   3. Spark (maintain.py spark; pyspark + iceberg-spark-runtime + the JdbcCatalog on the broker's
#      SQLite catalog file, the broker running): rewrite_data_files (min-input-files=1,
#      rewrite-all=true), rewrite_manifests, expire_snapshots(older_than => now, retain_last => 1),
#      remove_orphan_files(older_than => now + 5 s) on both tables: every data file the broker wrote
#      is gone; the segments' sidecars survive (they must live outside the table location); the
#      tables still equal the produced records (pyiceberg, DuckDB); consume from 0 again, compare;
#   4. produce round 2 (timestamps 10 days old), wait until tiered: new segments tiered after
#      maintenance; no (topic id, partition, offset) twice and every tiered record in the table
#      (pyiceberg, DuckDB);
#   5. a re-upload of offsets already in the table: stop the broker, `calving convert` the
#      hard-linked segments of maintain_keep-0 (same topic id, partition.metadata) into the same
#      warehouse and catalog, start the broker: still no (topic id, partition, offset) twice;
#   6. delete the `delete`-mode topic: its table has 0 rows (pyiceberg, DuckDB); lower maint_keep's
#      retention.ms to 25 days: Kafka deletes round 1's oldest remote segments (up to the first
#      holding a transaction marker, whose timestamp is the coordinator's clock), the earliest
#      offsets move, and the rows Kafka deleted stay in the table;
#   7. pyiceberg's own expire_snapshots (Table.maintenance, pyiceberg 0.12) on both tables, then
#      consume maint_keep from its earliest offset and compare;
#   8. Calving's own maintenance, the broker running: `calving maintain --warehouse <the broker's
#      warehouse> --topic maint_keep --min-input-files 2 --expire-older-than-secs 0 --retain-last 1`
#      (the same SQLite catalog) succeeds and prints its progress; it compacted small files (round
#      2's and the re-upload's), the table has 1 snapshot and fewer live data files, the files it
#      replaced are gone from storage, the sidecars stay; the table still holds every tiered record
#      once and no (topic id, partition, offset) twice (pyiceberg, DuckDB); consume maint_keep from
#      its earliest offset (the broker remembered where step 7's fetches found their rows: those
#      files are gone now) and compare;
#   9. no ERROR from the remote log subsystem in the broker log; clean shutdown.
# Ends with "maintain: N passed, N failed"; exit status 1 when anything failed. The work directory
# is kept on failure, or always with CALVING_KEEP_WORK=1.
#
# Env: CALVING_JAR (default build/libs/calving-0.1.0-SNAPSHOT.jar), CALVING_CLI (the `calving`
# binary; tests/run-all.sh passes the debug one its cargo test built; default: release/calving or
# debug/calving under $CARGO_TARGET_DIR, default ~/.cache/calving/target, when newer than every
# Rust source, else `cargo build --release --locked -p calving-cli`), CALVING_MAINT_RECORDS / CALVING_MAINT_RECORDS2 (records per partition
# per topic in rounds 1 and 2, default 250 / 80), CALVING_MAINT_STALL (seconds without a record
# before a consumer gives up, default 12), CALVING_MAINT_TIMEOUT (watchdog, default 900 s),
# CALVING_KAFKA_LIBS, CALVING_TYPED_LIBS (the Spark jars, integration/typed/resolve-jars.sh).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
records=${CALVING_MAINT_RECORDS:-250}
records2=${CALVING_MAINT_RECORDS2:-80}
stall=${CALVING_MAINT_STALL:-12}
timeout=${CALVING_MAINT_TIMEOUT:-900}
tier_timeout=${CALVING_MAINT_TIER_TIMEOUT:-240}
keep_topic=maint_keep        # retention.mode=keep (the default)
delete_topic=maint_delete    # retention.mode=delete
topics=$keep_topic,$delete_topic
partitions=3
keep_retention_ms=$((25 * 86400000))   # between round 1 (30 days old) and its end markers (20 days)

say() { echo "maintain: [$(($(date +%s) - started)) s] $*" >&2; }
die() { echo "maintain: error: $*" >&2; exit 2; }

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
TYPED=$("$root/integration/typed/resolve-jars.sh" | tail -n1) || die "could not resolve the Spark jars"
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/calving-maintain.XXXXXX")
warehouse="$work/warehouse"
results_init "$work/results.txt"
client_pids=""
linker_pid=""
started=$(date +%s)

stop_children() {
  [ -z "$client_pids" ] || kill -TERM $client_pids 2>/dev/null
  [ -z "$linker_pid" ] || kill -TERM "$linker_pid" 2>/dev/null
  return 0
}
harness_traps maintain "$work" " (broker log: $work/server.log)" stop_children \
  "interrupted" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" maintain

# Runs a command in the background (so that signals reach the trap at once), waits for it.
bg() { "$@" & client_pids=$!; wait "$client_pids"; local rc=$?; client_pids=""; return $rc; }
jvm=(java -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml"
  -Dcalving.log.file="$work/clients.log" -cp "$work/classes:$LIBS/*")
client() { bg "${jvm[@]}" "$1" "$2" --bootstrap "$BROKER_BOOTSTRAP" "${@:3}"; }
check() { bg python3 "$root/integration/e2e/check.py" "$@" | tee_results; }
maint() { bg python3 "$here/maintain.py" "$@" | tee_results; }
export CALVING_SPARK_JARS CALVING_SPARK_LOCAL_DIR="$work/spark"
CALVING_SPARK_JARS=$(ls "$TYPED"/spark/*.jar | paste -sd, -)

# ---- 0. the plugin jar, the CLI, the clients
[ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
python3 -m zipfile -l "$jar" | grep -q 'libcalving' || die "$jar holds no libcalving native library"
cli=${CALVING_CLI:-}
target=${CARGO_TARGET_DIR:-$HOME/.cache/calving/target}
if [ -z "$cli" ]; then
  # A binary newer than every Rust source (tests and fuzz targets aside), else a release build.
  for b in "$target/release/calving" "$target/debug/calving"; do
    if [ -x "$b" ] && [ -z "$(cd "$root" && find rust Cargo.toml Cargo.lock \( -path '*/tests' -o -path '*/fuzz' -o -path '*/benches' \) \
         -prune -o -newer "$b" -type f -print -quit)" ]; then cli=$b; break; fi
  done
fi
if [ -z "$cli" ]; then
  t0=$(date +%s)
  if (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --locked -q -p calving-cli) >"$work/cargo.out" 2>&1; then
    cli=$target/release/calving
    say "calving CLI built in $(($(date +%s) - t0)) s"
  else
    say "cargo build -p calving-cli failed (see $work/cargo.out): the re-upload step will fail"
  fi
fi
[ -z "$cli" ] || say "calving CLI: $cli"
mkdir -p "$work/classes" "$work/spark"
javac -nowarn -d "$work/classes" -cp "$LIBS/*" "$root/integration/e2e/E2eClient.java" "$here/MaintainClient.java" \
  2>"$work/javac.out" || { cat "$work/javac.out" >&2; die "E2eClient.java / MaintainClient.java do not compile"; }

# ---- 1. broker, round 1, tiered
extra="$work/extra.properties"
plugin_properties "$jar" "$warehouse" "rsm.config.topic.$delete_topic.retention.mode=delete" \
  log.initial.task.delay.ms=500 remote.log.reader.threads=4 remote.log.manager.copier.thread.pool.size=2 \
  remote.log.manager.expiration.thread.pool.size=2 >"$extra"
BROKER_HEAP=${BROKER_HEAP:-512m}
broker_init "$work" "$LIBS" "$extra" || die "broker setup failed"
if broker_start; then step "broker started with the plugin ($BROKER_BOOTSTRAP)"; else fail "broker start" "see $BROKER_LOG"; exit 1; fi

# Hard links to every file of maint_keep-0 as soon as it appears: Kafka deletes a segment about a
# second after tiering it, the links keep its bytes for the re-upload of step 5.
backup="$work/backup/$keep_topic-0"
mkdir -p "$backup"
( trap 'exit 0' TERM
  src="$BROKER_DATA/$keep_topic-0"
  while :; do
    for f in "$src"/*.log "$src"/*.index "$src"/*.timeindex "$src"/*.txnindex "$src"/*.snapshot; do
      [ -e "$f" ] && [ ! -e "$backup/${f##*/}" ] && ln "$f" "$backup/${f##*/}" 2>/dev/null
    done
    sleep 0.1
  done ) &
linker_pid=$!

wait_tiered() {   # <out> <label>
  local t0 segs
  t0=$(date +%s)
  segs=$(grep -c 'Copied .* to remote storage' "$BROKER_LOG")
  if client E2eClient wait-tiered --log-dir "$BROKER_DATA" --topics "$topics" --partitions "$partitions" --out "$1" \
       --timeout-s "$tier_timeout" 2>"$work/wait.err"; then
    pass "$2: every rolled segment copied and deleted locally in $(($(date +%s) - t0)) s ($(($(grep -c 'Copied .* to remote storage' "$BROKER_LOG") - segs)) segments; local log starts: $(awk '{printf "%s-%s@%s ", $1, $2, $4}' "$1"))"
  else
    tail -n 5 "$work/wait.err" >&2
    fail "$2" "segments not copied and deleted locally in $tier_timeout s: $(grep -m1 'FAILED' "$work/wait.err" | cut -c1-300) (see $BROKER_LOG)"
  fi
}

t0=$(date +%s)
if client MaintainClient produce --oracle "$work/oracle1.tsv" --round 1 --topics "$topics" --partitions "$partitions" \
     --records "$records" 2>"$work/produce1.err"; then
  step "produce round 1 ($(wc -l <"$work/oracle1.tsv") records, $(cut -f6 "$work/oracle1.tsv" | grep -c A) in aborted transactions, $(cut -f6 "$work/oracle1.tsv" | grep -c C) in committed ones, $(($(date +%s) - t0)) s)"
else
  tail -n 20 "$work/produce1.err" >&2; fail "produce round 1" "MaintainClient produce failed"; exit 1
fi
cp "$work/oracle1.tsv" "$work/oracle.tsv"
wait_tiered "$work/tiered1.tsv" "round 1 tiered"
[ -f "$work/tiered1.tsv" ] || exit 1
per_partition=$(grep -o 'partition=[^]]*\] Copied' "$BROKER_LOG" | sed 's/^partition=[^:]*://; s/\] Copied//' | sort | uniq -c)
min_segments=$(echo "$per_partition" | awk 'NR == 1 || $1 < m {m = $1} END {print m + 0}')
if [ "$(echo "$per_partition" | grep -c .)" = $((2 * partitions)) ] && [ "$min_segments" -ge 8 ]; then
  pass "round 1: at least 8 segments tiered per partition ($(echo "$per_partition" | awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//'))"
else
  fail "round 1 segments" "fewer than 8 segments tiered in some partition: $(echo "$per_partition" | awk '{printf "%s %s, ", $2, $1}')"
fi

# Consumers of every (topic, isolation) at once; their dumps compared with <oracle>, kept as
# $work/<stem>-<topic>-<isolation>.* (stem: consumed unless given).
consume_and_compare() {   # <label> <oracle> <tiered> <topics> [<stem>]
  local topic iso pids=() names=() i=0 rc name out stem=${5:-consumed}
  for topic in ${4//,/ }; do
    for iso in read_uncommitted read_committed; do
      out="$work/$stem-$topic-$iso"
      "${jvm[@]}" MaintainClient consume --bootstrap "$BROKER_BOOTSTRAP" --topics "$topic" --isolation "$iso" \
        --out "$out.tsv" --stall-s "$stall" 2>"$out.err" &
      pids+=($!); names+=("$topic $iso")
    done
  done
  client_pids="${pids[*]}"
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    topic=${names[$i]% *}; iso=${names[$i]#* }
    out="$work/$stem-$topic-$iso"
    name="$1 $iso"
    if [ "$rc" = 0 ]; then
      awk -F'\t' -v t="$topic" '$1 == t' "$2" >"$out.oracle"
      python3 "$root/integration/e2e/check.py" consumed "$out.oracle" "$out.tsv" "$iso" "$3" "$name" | tee_results
    else
      fail "$name $topic" "$(grep -m1 'FAILED' "$out.err" | sed 's/^MaintainClient: FAILED: //' | cut -c1-500)"
    fi
  done
  client_pids=""
}

# ---- 2. baseline
say "2. baseline reads"
consume_and_compare "before maintenance: consume" "$work/oracle1.tsv" "$work/tiered1.tsv" "$topics"
for topic in ${topics//,/ }; do
  check table "$work/oracle1.tsv" "$work/tiered1.tsv" "$warehouse" "$topic" pyiceberg "before maintenance: table"
done

# ---- 3. Spark
say "3. Spark maintenance"
declare -A sidecars_before
for topic in ${topics//,/ }; do
  read -r data sidecars meta < <(python3 "$here/maintain.py" files "$warehouse" "$topic")
  sidecars_before[$topic]=${sidecars:-0}
  say "kafka.$topic before Spark: $data data files, $sidecars sidecars, $meta metadata files"
done
t0=$(date +%s)
maint spark "$warehouse" $keep_topic $delete_topic
say "Spark maintenance took $(($(date +%s) - t0)) s"
for topic in ${topics//,/ }; do
  read -r data sidecars meta < <(python3 "$here/maintain.py" files "$warehouse" "$topic")
  say "kafka.$topic after Spark: $data data files, $sidecars sidecars, $meta metadata files"
  if [ "${sidecars_before[$topic]}" -gt 0 ] && [ "$sidecars" = "${sidecars_before[$topic]}" ]; then
    pass "after Spark maintenance: the ${sidecars_before[$topic]} sidecars of $topic survive remove_orphan_files"
  else
    fail "after Spark maintenance: sidecars of $topic" "${sidecars_before[$topic]} before, $sidecars after remove_orphan_files (sidecars must live outside the table location)"
  fi
  for engine in pyiceberg duckdb; do
    check table "$work/oracle1.tsv" "$work/tiered1.tsv" "$warehouse" "$topic" "$engine" "after Spark maintenance: table"
  done
done
consume_and_compare "after Spark maintenance: consume" "$work/oracle1.tsv" "$work/tiered1.tsv" "$topics"

# ---- 4. round 2: segments tiered after maintenance
say "4. round 2"
t0=$(date +%s)
if client MaintainClient produce --oracle "$work/oracle2.tsv" --round 2 --topics "$topics" --partitions "$partitions" \
     --records "$records2" 2>"$work/produce2.err"; then
  step "produce round 2 after maintenance ($(wc -l <"$work/oracle2.tsv") records, $(($(date +%s) - t0)) s)"
  cat "$work/oracle1.tsv" "$work/oracle2.tsv" >"$work/oracle.tsv"
else
  tail -n 20 "$work/produce2.err" >&2; fail "produce round 2" "MaintainClient produce failed"
fi
wait_tiered "$work/tiered2.tsv" "round 2 tiered after maintenance"
[ -f "$work/tiered2.tsv" ] || cp "$work/tiered1.tsv" "$work/tiered2.tsv"
for topic in ${topics//,/ }; do
  for engine in pyiceberg duckdb; do
    maint dups "$warehouse" "$topic" "$engine" "exactly once after maintenance and round 2:"
    check table "$work/oracle.tsv" "$work/tiered2.tsv" "$warehouse" "$topic" "$engine" "after round 2: every tiered record in the table once,"
  done
done

# ---- 5. re-upload of offsets already in the table (calving convert, the broker stopped)
say "5. re-upload"
# The links end before the broker stops (its producer snapshot at shutdown would make the active
# segment look rolled).
kill -TERM "$linker_pid" 2>/dev/null; wait "$linker_pid" 2>/dev/null; linker_pid=""
cp "$BROKER_DATA/$keep_topic-0/partition.metadata" "$BROKER_DATA/$keep_topic-0/leader-epoch-checkpoint" "$backup/"
if broker_stop; then
  n=$(ls "$backup"/*.log 2>/dev/null | wc -l)
  if [ -z "$cli" ] || [ ! -x "$cli" ]; then
    fail "re-upload with calving convert" "no calving CLI (see $work/cargo.out)"
  elif bg "$cli" convert --warehouse "$warehouse" "$backup" >"$work/convert.out" 2>&1; then
    pass "re-upload: calving convert of $keep_topic-0's $((n - 1)) rolled segments (topic id $(grep -o 'topic_id: *[^ ]*' "$backup/partition.metadata" | cut -d' ' -f2), broker stopped): $(tail -n1 "$work/convert.out")"
  else
    fail "re-upload with calving convert" "$(grep -v '^\s*$' "$work/convert.out" | tail -n 3 | tr '\n' ' ' | cut -c1-500)"
  fi
  for engine in pyiceberg duckdb; do
    maint dups "$warehouse" "$keep_topic" "$engine" "exactly once after a re-upload of tiered segments:"
  done
  if broker_start; then pass "broker restarted after the re-upload"; else fail "broker restart" "see $BROKER_LOG"; exit 1; fi
else
  fail "broker stop before the re-upload" "see $BROKER_LOG"
fi

# ---- 6. retention after maintenance
say "6. retention"
if client E2eClient delete-topic --topic "$delete_topic" 2>"$work/delete.err"; then
  t0=$(date +%s)
  if bg python3 "$here/maintain.py" wait-empty "$warehouse" "$delete_topic" 30 2>>"$work/wait-empty.err"; then
    say "kafka.$delete_topic empty $(($(date +%s) - t0)) s after the topic's deletion"
  fi
  for engine in pyiceberg duckdb; do
    check table-empty "$warehouse" "$delete_topic" "$engine" "retention.mode=delete after maintenance: topic deleted, rows removed"
  done
  # Kafka renames a deleted partition's directory to <topic>-<n>.<id>-delete at once (and removes
  # it file.delete.delay.ms later).
  live_dirs() { find "$BROKER_DATA" -maxdepth 1 -regex ".*/$delete_topic-[0-9]+" | wc -l; }
  for _ in $(seq 60); do [ "$(live_dirs)" = 0 ] && break; sleep 0.5; done
  if [ "$(live_dirs)" = 0 ]; then pass "delete topic $delete_topic: local partitions gone"
  else fail "delete topic $delete_topic" "$(live_dirs) local partition directories still there"; fi
else
  tail -n 5 "$work/delete.err" >&2; fail "delete topic $delete_topic" "E2eClient delete-topic failed"
fi

markers=$(awk -F'\t' -v t="$keep_topic" '$1 == t && $6 == "M" {printf "%s\t%s\n", $2, $3}' "$work/oracle1.tsv")
if client MaintainClient retention --topic "$keep_topic" --retention-ms "$keep_retention_ms" --out "$work/earliest.tsv" \
     --timeout-s 60 2>"$work/retention.err"; then
  # Kafka deletes round 1's segments in order up to the first one holding a transaction marker
  # (COMMIT/ABORT markers carry the coordinator's wall-clock time): 0 < earliest <= the end marker.
  bad=$(awk -F'\t' 'NR == FNR {m[$1] = $2; next} !($3 > 0 && $3 <= m[$2]) {printf "p%s@%s (end marker %s) ", $2, $3, m[$2]}' \
    <(echo "$markers") "$work/earliest.tsv")
  if [ -z "$bad" ]; then
    pass "retention.ms lowered on $keep_topic: Kafka deleted round 1's oldest remote segments, the earliest offsets moved ($(awk '{printf "p%s@%s ", $2, $3}' "$work/earliest.tsv")within round 1)"
  else
    fail "retention.ms lowered on $keep_topic" "earliest offsets not in (0, round 1's end marker]: $bad"
  fi
  for engine in pyiceberg duckdb; do
    maint rows-kept "$work/oracle.tsv" "$work/earliest.tsv" "$warehouse" "$keep_topic" "$engine" "retention.mode=keep after maintenance: rows stay"
  done
else
  fail "retention.ms lowered on $keep_topic" "$(grep -m1 FAILED "$work/retention.err" | cut -c1-400)"
  awk -F'\t' -v t="$keep_topic" '$1 == t && $6 == "M" {print t "\t" $2 "\t0"}' "$work/oracle1.tsv" >"$work/earliest.tsv"
fi

# ---- 7. pyiceberg's snapshot expiry, then read again
say "7. pyiceberg expire_snapshots"
maint pyiceberg-expire "$warehouse" $keep_topic $delete_topic
awk -F'\t' 'NR == FNR {e[$1 "\t" $2] = $3; next} ($1 "\t" $2) in e && $3 >= e[$1 "\t" $2]' \
  "$work/earliest.tsv" "$work/oracle.tsv" >"$work/oracle-retained.tsv"
consume_and_compare "after pyiceberg expire_snapshots: consume from the earliest offset" \
  "$work/oracle-retained.tsv" "$work/tiered2.tsv" "$keep_topic"

# ---- 8. Calving's own maintenance (calving maintain), the broker running
say "8. calving maintain"
read -r snaps_before live_before rows_before < <(python3 "$here/maintain.py" live "$warehouse" "$keep_topic" "$work/live-before.txt")
read -r _ sidecars_before_cm _ < <(python3 "$here/maintain.py" files "$warehouse" "$keep_topic")
say "kafka.$keep_topic before calving maintain: ${snaps_before:-?} snapshots, ${live_before:-?} live data files, ${rows_before:-?} rows, ${sidecars_before_cm:-?} sidecars"
cm_out="$work/calving-maintain.out"; cm_err="$work/calving-maintain.err"
if [ -z "$cli" ] || [ ! -x "$cli" ]; then
  fail "calving maintain" "no calving CLI (see $work/cargo.out)"
else
  t0=$(date +%s)
  if bg "$cli" maintain --warehouse "$warehouse" --topic "$keep_topic" --min-input-files 2 --expire-older-than-secs 0 \
       --retain-last 1 >"$cm_out" 2>"$cm_err"; then
    summary_line=$(grep -E '^compacted [0-9]+ files' "$cm_out" | tail -n1)
    progress_lines=$(grep -cE '^\[ *[0-9.]+ s\] ' "$cm_err")
    if [ -n "$summary_line" ] && [ "$progress_lines" -ge 3 ]; then
      pass "calving maintain on the broker's warehouse ($(($(date +%s) - t0)) s, broker running): $summary_line; progress: $(grep -E '^\[ *[0-9.]+ s\] ' "$cm_err" | sed 's/^\[ *\([0-9.]*\) s\] /\1 s: /' | paste -sd'|' - | sed 's/|/; /g' | cut -c1-600)"
    else
      fail "calving maintain output" "no summary line or fewer than 3 progress lines (stdout: $(tail -n1 "$cm_out" | cut -c1-200); stderr: $(tail -n3 "$cm_err" | tr '\n' ' ' | cut -c1-300))"
    fi
  else
    fail "calving maintain" "exit status $?: $(grep -v '^\s*$' "$cm_err" | tail -n 3 | tr '\n' ' ' | cut -c1-500)"
  fi
  compacted=$(sed -n 's/^compacted \([0-9]*\) files.*/\1/p' "$cm_out" | tail -n1)
  written=$(sed -n 's/^compacted [0-9]* files ([0-9]* bytes) into \([0-9]*\) .*/\1/p' "$cm_out" | tail -n1)
  read -r snaps_after live_after rows_after < <(python3 "$here/maintain.py" live "$warehouse" "$keep_topic" "$work/live-after.txt")
  say "kafka.$keep_topic after calving maintain: ${snaps_after:-?} snapshots, ${live_after:-?} live data files, ${rows_after:-?} rows"
  if [ "${snaps_after:-}" = 1 ]; then
    pass "after calving maintain: kafka.$keep_topic has 1 snapshot (${snaps_before:-?} before, --expire-older-than-secs 0 --retain-last 1)"
  else
    fail "after calving maintain: snapshots of kafka.$keep_topic" "${snaps_after:-?} snapshots (${snaps_before:-?} before), expected 1"
  fi
  if [ "${compacted:-0}" -gt 0 ] && [ -n "${live_after:-}" ] && [ "$live_after" -lt "${live_before:-0}" ] \
     && [ "$live_after" = $((live_before - compacted + ${written:-0})) ] && [ "${rows_after:-}" = "${rows_before:-}" ]; then
    pass "after calving maintain: kafka.$keep_topic has fewer live data files ($live_before -> $live_after: $compacted compacted into ${written:-?}), the same $rows_after rows"
  elif [ "${compacted:-0}" = 0 ]; then
    fail "calving maintain compaction" "nothing compacted ($live_before live data files; the step would not test reads of compacted rows): $(grep -E '^\[' "$cm_err" | head -n2 | tr '\n' ' ' | cut -c1-300)"
  else
    fail "after calving maintain: live data files of kafka.$keep_topic" "$live_before -> ${live_after:-?} live data files ($compacted compacted into ${written:-?}), rows ${rows_before:-?} -> ${rows_after:-?}"
  fi
  python3 "$here/maintain.py" gone "$work/live-before.txt" "$work/live-after.txt" "after calving maintain: kafka.$keep_topic" | tee_results
  read -r _ sidecars_after_cm _ < <(python3 "$here/maintain.py" files "$warehouse" "$keep_topic")
  if [ "${sidecars_before_cm:-0}" -gt 0 ] && [ "${sidecars_after_cm:-}" = "$sidecars_before_cm" ]; then
    pass "after calving maintain: the $sidecars_before_cm sidecars of $keep_topic stay"
  else
    fail "after calving maintain: sidecars of $keep_topic" "${sidecars_before_cm:-?} before, ${sidecars_after_cm:-?} after"
  fi
fi
for engine in pyiceberg duckdb; do
  maint dups "$warehouse" "$keep_topic" "$engine" "exactly once after calving maintain:"
  check table "$work/oracle.tsv" "$work/tiered2.tsv" "$warehouse" "$keep_topic" "$engine" "after calving maintain: every tiered record in the table once,"
done
consume_and_compare "after calving maintain: consume from the earliest offset" \
  "$work/oracle-retained.tsv" "$work/tiered2.tsv" "$keep_topic" consumed-calving-maintain

# ---- 9. broker log and shutdown
say "9. broker log"
check_broker_log
if broker_stop; then pass "broker stopped cleanly"; else fail "broker stop" "no clean shutdown"; fi

summary maintain "$started"
