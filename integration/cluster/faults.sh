#!/usr/bin/env bash
# Calving under faults: the cluster of integration/cluster/run.sh (three Apache Kafka 4.1.2 KRaft
# nodes on 127.0.0.1 with the plugin jar, one Iceberg REST catalog (Apache Iceberg's fixture) and
# one warehouse on moto's S3 server) tiering while producers write and things break.
#
#   integration/cluster/faults.sh   (after tests/install-deps.sh, `gradle --no-daemon -q jar` and
#                                    `cargo build -p calving-cli`: the `calving sweep` it runs)
#
# The brokers' remote log metadata manager is io.calving.kafka.CalvingRemoteLogMetadataManager
# (integration/kafka/harness.sh): Kafka's own with the repair of the hole in its cache this test
# found (README, "Kafka's remote log metadata: the hole Calving mends"); the figures count the
# segments whose reads it recovered.
#
# Workload: one topic of 12 partitions, replication factor 3, min.insync.replicas=2, 64 KiB
# segments, local.retention.ms=1000; MaintainClient soak: an idempotent producer (acks=all) and a
# transactional one (every third transaction aborted) write until the faults are over; what was
# acknowledged goes to the oracle, sends whose callback failed to oracle.unacked.
#
# Faults, one after the other while the producers run (each is written to windows.tsv: "kind start
# end orphaning-end", epoch seconds: from its start to its recovery; the last column ends where it
# can no longer leave objects behind: a kill at the kill, a wipe at the stop, an outage at its end):
#   kill      CALVING_FAULTS_KILLS (10) rounds: a random node, at a random point during a copy (its
#             next "Copying … to remote storage" line, then 100-500 ms), gets kill -9, is restarted
#             at once and must have every partition back to 3 in-sync replicas before the next
#             round (the PASS line says how many kills found a copy in flight on the node);
#   elect     after every third kill round, a preferred leader election (Kafka's
#             LeaderElectionCommand, kafka-leader-election.sh) moves leadership back;
#   reassign  kafka-reassign-partitions.sh (ReassignPartitionsCommand): partitions 0-3 each lose a
#             replica (replication factor 2) and then get it back as their preferred leader: with 3
#             brokers and 3 replicas there is nowhere else to move a replica, so it leaves its
#             broker (log deleted) and comes back, rebuilt from the tier;
#   wipe      a random node is stopped, its log dir emptied but for meta.properties (the KRaft
#             metadata log lives in a metadata.log.dir of its own: CLUSTER_METADATA_DIR=1), and
#             restarted: each of its 12 replicas is rebuilt from the tier (the leader epoch
#             checkpoint and producer snapshot of the remote segment, through fetchIndex) and must
#             catch up to the ISR; then a preferred leader election makes it lead its partitions
#             (and copy, from the leader epochs it took from the tier);
#   s3        the object store unreachable for CALVING_FAULTS_OUTAGE_S (60) seconds mid-copy;
#   catalog   the REST catalog unreachable as long, mid-copy.
# The outages pause the servers with SIGSTOP and resume them with SIGCONT, not a stop and restart:
# moto keeps its state in memory only (checked: a moto restarted on the same port has no bucket),
# and the fixture, whose catalog would survive in its SQLite file, takes a free port when it starts
# (the brokers know its URI). A paused process keeps its port and its state, the kernel still
# accepts connections on its behalf and nothing answers: what a client sees of a hung or
# partitioned server (requests time out), not of a refused connection. While moto is paused the
# REST catalog's own reads of the table metadata hang too, so most copies wait in the catalog (the
# plugin's REST client has no request timeout besides the 60 s of its commits) and few fail.
#
# Checks (PASS/FAIL lines as in run.sh, through integration/kafka/harness.sh):
#   - every acknowledged record consumed from offset 0 under read_uncommitted and read_committed,
#     equal, at its offset; aborted ones absent under read_committed; no record twice, nothing
#     nobody sent (check.py acked). "Acknowledged" timestamps are the records' own: a producer
#     retry that the broker finds a duplicate is acknowledged with the batch's max timestamp for
#     every record (E2eClient.acknowledgedTimestamp), which once failed this check for a record
#     served right;
#   - the table through the REST catalog, with pyiceberg and with DuckDB: every tiered record
#     (the consumed records up to each partition's latest tiered offset) once, no (topic id,
#     partition, offset) twice (check.py table);
#   - the wiped node rebuilt each of its replicas from the tier (its log: producer state rebuilt from
#     an offset above 0; its plugin's JMX: two fetchIndex calls per replica);
#   - no ERROR from the remote log subsystem in any broker log outside the fault windows, and
#     inside them only the expected ones, each named with its cause in step 7 below;
#   - `calving sweep --dry-run` lists only objects written during a fault (check.py orphans; the
#     metadata files the REST catalog itself writes and leaves when a concurrent commit wins the
#     race are counted apart, at any time), a real sweep deletes them, a second dry run finds
#     none, and every acknowledged record still reads back afterwards (read_committed).
# Figures (the "figures:" line): acked, consumed, lost, duplicates, copy failures and retries (the
# plugin's JMX metrics since each broker's last start; over the whole run from the broker logs:
# copies started and copied, Kafka's "Error occurred while copying", the plugin's commits of
# unknown outcome), orphans swept, and the time to recover after each kind of fault (kill, wipe:
# until 3 in-sync replicas everywhere; reassign: until done and in sync; elect: the command;
# outages: from the end of the outage to the next copy committed). ~10 min on 2 cores. Ends with
# "faults: N passed, N failed (S s)"; exit status 1 when anything failed; the work directory is kept
# on failure or with CALVING_KEEP_WORK=1.
#
# Env: CALVING_JAR, CALVING_CLI (the calving binary; default $CARGO_TARGET_DIR or
# ~/.cache/calving/target, debug then release), CALVING_FAULTS_KILLS (10), CALVING_FAULTS_OUTAGE_S
# (60), CALVING_FAULTS_RATE (records a second of the idempotent producer, 40),
# CALVING_FAULTS_SEED (random choices; printed), CALVING_FAULTS_TIMEOUT (watchdog, 1200 s).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
kills=${CALVING_FAULTS_KILLS:-10}
outage=${CALVING_FAULTS_OUTAGE_S:-60}
rate=${CALVING_FAULTS_RATE:-40}
seed=${CALVING_FAULTS_SEED:-$((RANDOM * 32768 + RANDOM))}
timeout=${CALVING_FAULTS_TIMEOUT:-1200}
topic=faults_orders
partitions=12
target=${CARGO_TARGET_DIR:-$HOME/.cache/calving/target}
cli=${CALVING_CLI:-}
[ -n "$cli" ] || for c in "$target/debug/calving" "$target/release/calving"; do [ -x "$c" ] && { cli=$c; break; }; done
RANDOM=$seed

say() { echo "faults: $*" >&2; }
die() { echo "faults: error: $*" >&2; exit 2; }

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"
# shellcheck source=../kafka/cluster.sh
. "$root/integration/kafka/cluster.sh"
# shellcheck source=../kafka/rest-s3.sh
. "$root/integration/kafka/rest-s3.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/calving-faults.XXXXXX")
results_init "$work/results.txt"
client_pid=""
producer_pid=""
started=$(date +%s)

on_exit() {
  [ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null
  [ -z "$producer_pid" ] || kill -KILL "$producer_pid" 2>/dev/null
  cluster_kill
  rest_s3_stop
}
harness_traps faults "$work" " (node logs: $work/node*/server.log)" on_exit "interrupted" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" faults

bg() { "$@" & client_pid=$!; wait "$client_pid"; local rc=$?; client_pid=""; return $rc; }
check() { bg python3 "$root/integration/e2e/check.py" "$@" | tee_results; }
jvm=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml"
  -Dcalving.log.file="$work/clients.log")
java_client() {   # <class> <command> [args...]
  bg "${jvm[@]}" -cp "$work/classes:$LIBS/*" "$1" "$2" --bootstrap "$CLUSTER_BOOTSTRAP" "${@:3}"
}
kafka_tool() {   # <class> [args...]: one of Kafka's command-line tools (kafka-*.sh)
  bg "${jvm[@]}" -cp "$LIBS/*" "$@"
}
now() { date +%s.%N | cut -c1-14; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$2"; }
# <kind> <start> <end> [<end of what can orphan files>]: a fault's window, from its start to the
# recovery; the fourth column ends where the fault can no longer leave objects behind (a kill: the
# kill; a wipe: the node's stop; an outage: its end), for the sweep's check (default: <end>).
window() { echo "$1 $2 $3 ${4:-$3}" >>"$work/windows.tsv"; }
recovered() { echo "$1 $2" >>"$work/recovery.tsv"; }   # <kind> <seconds>
count_lines() {   # <pattern> [<log>...]: lines matching in the given logs (default: every node's)
  local pat=$1 n=0 log logs; shift
  if [ $# -gt 0 ]; then logs=("$@"); else logs=("${NODE_LOG[@]}"); fi
  for log in "${logs[@]}"; do n=$((n + $(grep -c -E "$pat" "$log" 2>/dev/null || true))); done
  echo "$n"
}
isr_wait() {   # <timeout s>: every partition back to 3 in-sync replicas
  java_client MaintainClient isr --topics "$topic" --size 3 --timeout-s "$1" 2>>"$work/isr.err" >/dev/null
}

[ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
[ -n "$cli" ] && [ -x "$cli" ] || die "no calving binary (cargo build -p calving-cli, or CALVING_CLI)"
mkdir -p "$work/classes"
: >"$work/windows.tsv"; : >"$work/recovery.tsv"
javac -nowarn -d "$work/classes" -cp "$LIBS/*" "$root/integration/e2e/E2eClient.java" \
  "$root/integration/maintain/MaintainClient.java" 2>"$work/javac.out" \
  || { cat "$work/javac.out" >&2; die "the clients do not compile"; }
say "seed $seed (CALVING_FAULTS_SEED=$seed repeats the random choices)"

# ---- 1. storage, catalog, three nodes (the metadata log apart from the log dirs)
rest_s3_start "$work/rest-s3" || die "moto or the REST fixture did not start"
extra="$work/extra.properties"
mapfile -t s3_props < <(sed 's/^/rsm.config./' <<<"$REST_S3_PROPS")
# Storage requests time out after 10 s (3 tries, 20 s in all) instead of 60 s, so that a copy
# caught by the object store's outage fails within it and Kafka retries it afterwards.
plugin_properties "$jar" unused \
  "rsm.config.warehouse=s3://calving/wh" rsm.config.catalog.type=rest "rsm.config.catalog.uri=$REST_URI" "${s3_props[@]}" \
  rsm.config.storage.request-timeout-ms=10000 rsm.config.storage.connect-timeout-ms=3000 \
  rsm.config.storage.retry.total-timeout-ms=20000 \
  rlmm.config.remote.log.metadata.topic.replication.factor=3 rlmm.config.remote.log.metadata.topic.num.partitions=3 \
  log.initial.task.delay.ms=500 remote.log.manager.copier.thread.pool.size=2 remote.log.reader.threads=4 >"$extra"
CLUSTER_METADATA_DIR=1 cluster_init "$work" "$LIBS" 3 "$extra" || die "cluster setup failed"
if cluster_start; then step "3 nodes started ($CLUSTER_BOOTSTRAP; REST catalog $REST_URI, warehouse s3://calving/wh on $S3_ENDPOINT)"
else fail "cluster start" "see $work/node*/server.log"; exit 1; fi

# ---- 2. the producers, until the faults are over
"${jvm[@]}" -cp "$work/classes:$LIBS/*" MaintainClient soak --bootstrap "$CLUSTER_BOOTSTRAP" --topics "$topic" \
  --partitions "$partitions" --replication-factor 3 --min-isr 2 --segment-bytes 65536 --rate "$rate" \
  --oracle "$work/oracle.tsv" --stop-file "$work/stop" >"$work/soak.out" 2>"$work/soak.err" &
producer_pid=$!
t0=$(date +%s); t_produce=$t0
until [ "$(count_lines 'Copied .* to remote storage')" -ge 3 ]; do
  kill -0 "$producer_pid" 2>/dev/null || { tail -n 20 "$work/soak.err" >&2; fail "producers" "MaintainClient soak exited"; exit 1; }
  [ $(($(date +%s) - t0)) -lt 120 ] || { fail "tiering" "fewer than 3 segments copied in 120 s"; exit 1; }
  sleep 1
done
step "producers writing, tiering under way ($(count_lines 'Copied .* to remote storage') segments copied after $(($(date +%s) - t0)) s)"

# ---- 3. faults
# kill -9 at a random point during a copy, restart at once, wait for the ISR
inflight=0
for round in $(seq "$kills"); do
  i=$((RANDOM % 3 + 1))
  n0=$(count_lines 'Copying .* to remote storage' "${NODE_LOG[i]}")
  for _ in $(seq 100); do
    [ "$(count_lines 'Copying .* to remote storage' "${NODE_LOG[i]}")" -gt "$n0" ] && break
    sleep 0.1
  done
  sleep "0.$((RANDOM % 400 + 100))"
  tk=$(now)
  node_kill "$i"
  # In flight: the node's last copy line was "Copying" (its "Copied" never came).
  grep -E 'Copying .* to remote storage|Copied .* to remote storage' "${NODE_LOG[i]}" | tail -n 1 | grep -q Copying \
    && inflight=$((inflight + 1))
  if ! node_start "$i"; then fail "kill round $round" "node $i did not restart"; break; fi
  if isr_wait 120; then
    tr=$(now); window kill "$tk" "$tr" "$tk"; recovered kill "$(elapsed "$tk" "$tr")"
    say "kill round $round: node $i killed during a copy, back in sync after $(elapsed "$tk" "$tr") s"
  else
    window kill "$tk" "$(now)" "$tk"; fail "kill round $round" "partitions not back to 3 in-sync replicas within 120 s of node $i's kill: $(tail -n 1 "$work/isr.err" | cut -c1-300)"
  fi
  if [ $((round % 3)) = 0 ]; then
    te=$(now)
    if kafka_tool org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
         --election-type PREFERRED --all-topic-partitions >"$work/elect-$round.out" 2>&1; then
      tr=$(now); window elect "$te" "$tr"; recovered elect "$(elapsed "$te" "$tr")"
      say "preferred leader election: $(grep -i 'success' "$work/elect-$round.out" | grep -o "$topic-[0-9]*" | wc -l) partitions of $topic moved back to their preferred leader in $(elapsed "$te" "$tr") s"
    else
      # Nothing to elect (every preferred leader already leads) is an error of the tool too.
      window elect "$te" "$(now)"
      grep -q -i 'already' "$work/elect-$round.out" || fail "leader election" "$(tail -n 2 "$work/elect-$round.out" | tr '\n' ' ' | cut -c1-300)"
    fi
  fi
done
pass "$kills kill -9 rounds ($inflight with a copy in flight on the killed node), every partition back to 3 in-sync replicas after each"

# reassignment: partitions 0-3 lose a replica, then get it back as preferred leader
reassign() {   # <json file>
  kafka_tool org.apache.kafka.tools.reassign.ReassignPartitionsCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
    --reassignment-json-file "$1" --execute >"$1.out" 2>&1 || return 1
  local t=$(($(date +%s) + 120))
  while [ "$(date +%s)" -lt "$t" ]; do
    kafka_tool org.apache.kafka.tools.reassign.ReassignPartitionsCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
      --reassignment-json-file "$1" --verify >"$1.verify" 2>&1
    grep -q -i 'in progress' "$1.verify" || return 0
    sleep 1
  done
  return 1
}
python3 - "$topic" "$work" <<'EOF'
import json, sys
topic, work = sys.argv[1:3]
down, up = [], []
for p in range(4):
    gone = p % 3 + 1
    rest = [b for b in (1, 2, 3) if b != gone]
    down.append({"topic": topic, "partition": p, "replicas": rest})
    up.append({"topic": topic, "partition": p, "replicas": [gone] + rest})
for name, parts in (("reassign-down.json", down), ("reassign-up.json", up)):
    json.dump({"version": 1, "partitions": parts}, open(f"{work}/{name}", "w"))
EOF
ta=$(now)
if reassign "$work/reassign-down.json" && reassign "$work/reassign-up.json" && isr_wait 120; then
  tr=$(now); window reassign "$ta" "$tr"; recovered reassign "$(elapsed "$ta" "$tr")"
  kafka_tool org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
    --election-type PREFERRED --all-topic-partitions >"$work/elect-reassign.out" 2>&1 || true
  pass "reassignment: partitions 0-3 moved off a broker and back (rebuilt from the tier) in $(elapsed "$ta" "$tr") s"
else
  window reassign "$ta" "$(now)"
  fail "reassignment" "not complete within 120 s: $(cat "$work"/reassign-*.json.out "$work"/reassign-*.json.verify 2>/dev/null | tail -n 3 | tr '\n' ' ' | cut -c1-300)"
fi

# one node's log dir wiped (meta.properties kept), its replicas rebuilt from the tier
w=$((RANDOM % 3 + 1))
tw=$(now)
node_stop "$w" 60 || say "node $w needed SIGKILL to stop"
cp "${NODE_DATA[w]}/meta.properties" "$work/meta.properties.$w"
rm -rf "${NODE_DATA[w]}"; mkdir -p "${NODE_DATA[w]}"; cp "$work/meta.properties.$w" "${NODE_DATA[w]}/meta.properties"
tr0=$(now)
lines0=$(wc -l <"${NODE_LOG[w]}")
if node_start "$w" && isr_wait 240; then
  tr=$(now); window wipe "$tw" "$tr" "$tr0"; recovered wipe "$(elapsed "$tr0" "$tr")"
  # Each replica of the emptied log dir starts above offset 0 only through Kafka's rebuild from the
  # tier ("Reloading from producer snapshot and rebuilding producer state from offset N", N > 0, on
  # node w after its restart), which asks the plugin of node w (JMX, counted since that restart)
  # for the remote segment's leader epoch checkpoint and producer snapshot: two fetchIndex calls.
  # (Kafka 4.1.2 then logs "Deleted producer state snapshot …/N.snapshot" and "Wrote producer
  # snapshot at offset N with 0 producer ids" for every rebuilt replica: loadProducerState(N) calls
  # ProducerStateManager.truncateAndReload(logStartOffset N, logEndOffset N), which deletes every
  # snapshot at an offset <= the log start offset, the one just fetched included, and reloads
  # nothing since the map's end offset is already N. Kafka's, not the plugin's: the producer count
  # is printed, not checked.)
  kafka_tool org.apache.kafka.tools.JmxTool --jmx-url "${NODE_JMX_URL[w]}" --object-name 'io.calving:type=RemoteStorageManager,*' \
    --one-time true --report-format properties >"$work/jmx-wipe.txt" 2>>"$work/jmx.err"
  fetch_index=$(sed -n 's/.*:FetchIndexCount=\([0-9.]*\).*/\1/p' "$work/jmx-wipe.txt" | head -n1 | cut -d. -f1)
  tail -n +"$lines0" "${NODE_LOG[w]}" | grep -o "partition=$topic-[0-9]*, .*Reloading from producer snapshot and rebuilding producer state from offset [1-9][0-9]*" \
    | cut -d, -f1 | sed "s/^partition=$topic-//" | sort -u >"$work/wipe-rebuilt.txt"
  rebuilt=$(wc -l <"$work/wipe-rebuilt.txt")
  known=$(tail -n +"$lines0" "${NODE_LOG[w]}" | grep "ProducerStateManager partition=$topic-" | grep -o 'with [0-9]* producer ids' | awk '{ s += $2 } END { print s + 0 }')
  # A partition can have nothing in the tier yet: Kafka copies only segments below the last
  # stable offset, which an open transaction of the soak's transactional producer holds back (seen
  # once: a partition whose first segment was copied 7 minutes into the run, after the wipe). Its
  # replica then catches up from the leader. Every partition with a segment copied (by any broker)
  # more than 10 s before the wipe must be rebuilt from the tier.
  before=$(date -u -d "@$(python3 -c 'import sys; print(int(float(sys.argv[1])) - 10)' "$tw")" +%Y-%m-%dT%H:%M:%S)
  # shellcheck disable=SC2086 # CLUSTER_LOGS: the nodes' logs, space-separated
  grep -h "copied segment to the table | .* of $topic-[0-9]* " $CLUSTER_LOGS | awk -v b="$before" 'substr($1, 2, 19) < b' \
    | grep -o "of $topic-[0-9]* " | sed "s/^of $topic-//; s/ $//" | sort -u >"$work/wipe-tiered.txt"
  tiered_before=$(wc -l <"$work/wipe-tiered.txt")
  not_rebuilt=$(comm -23 "$work/wipe-tiered.txt" "$work/wipe-rebuilt.txt" | tr '\n' ' ')
  if [ -z "$not_rebuilt" ] && [ "$tiered_before" -gt $((partitions / 2)) ] && [ "${fetch_index:-0}" -ge $((2 * rebuilt)) ]; then
    pass "wipe: node $w's log dir emptied; $rebuilt of its $partitions replicas rebuilt from the tier ($tiered_before had segments in the tier 10 s before the wipe; $fetch_index fetchIndex calls to its plugin; $known producer ids in the producer snapshots Kafka wrote meanwhile), in sync $(elapsed "$tr0" "$tr") s after its restart"
  else
    fail "wipe" "node $w back in sync, but $rebuilt of $partitions replicas rebuilt from the tier ($tiered_before had segments in the tier 10 s before the wipe; not rebuilt: ${not_rebuilt:-none}), ${fetch_index:-no} fetchIndex calls"
  fi
else
  window wipe "$tw" "$(now)" "$tr0"; fail "wipe" "node $w not back in sync within 240 s of its restart"
fi
# Node w leads its preferred partitions again: its copies then build segment metadata from the
# leader epoch cache that the rebuild took from the tier (the plugin's fetchIndex bytes).
te=$(now)
kafka_tool org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
  --election-type PREFERRED --all-topic-partitions >"$work/elect-wipe.out" 2>&1 || true
window elect "$te" "$(now)"
say "preferred leader election after the wipe: $(grep -i 'success' "$work/elect-wipe.out" | grep -o "$topic-[0-9]*" | wc -l) partitions of $topic moved back (node $w leads again)"

# outages: the object store, then the catalog, paused mid-copy
outage() {   # <kind> <pid>
  local kind=$1 pid=$2 n0 tp tc tr
  n0=$(count_lines 'Copying .* to remote storage')
  for _ in $(seq 100); do [ "$(count_lines 'Copying .* to remote storage')" -gt "$n0" ] && break; sleep 0.1; done
  tp=$(now)
  kill -STOP "$pid"
  sleep "$outage"
  kill -CONT "$pid"
  tc=$(now)
  # Recovered: a copy started after the outage ended was committed ("Copied" after a new
  # "Copying"; every broker's copies resume on their own).
  local c0 copied=""
  c0=$(count_lines 'Copied .* to remote storage')
  for _ in $(seq 240); do
    [ "$(count_lines 'Copied .* to remote storage')" -gt "$c0" ] && { copied=1; break; }
    sleep 0.5
  done
  tr=$(now)
  window "$kind" "$tp" "$tr" "$tc"
  if [ -n "$copied" ]; then
    recovered "$kind" "$(elapsed "$tc" "$tr")"
    pass "$kind outage: ${outage} s unreachable mid-copy, copies committed again $(elapsed "$tc" "$tr") s after it ended"
  else
    fail "$kind outage" "no copy committed in 120 s after the ${outage} s outage ended"
  fi
}
outage s3 "$S3_PID"
outage catalog "$REST_PID"

# ---- 4. the producers stop; everything tiers
touch "$work/stop"
tstop=$(date +%s)
for _ in $(seq 180); do kill -0 "$producer_pid" 2>/dev/null || break; sleep 1; done
if kill -0 "$producer_pid" 2>/dev/null; then
  kill -KILL "$producer_pid"; producer_pid=""; fail "producers" "still running 180 s after the stop"; exit 1
fi
wait "$producer_pid"; prc=$?; producer_pid=""
soak=$(grep '^soak: acked=' "$work/soak.err" | tail -n1)
if [ "$prc" = 0 ]; then step "producers stopped after $(($(date +%s) - tstop)) s (${soak#soak: })"
else tail -n 20 "$work/soak.err" >&2; fail "producers" "MaintainClient soak failed: $(grep -m1 FAILED "$work/soak.err" | cut -c1-300)"; exit 1; fi

t0=$(date +%s)
if java_client E2eClient wait-tiered --log-dir "$CLUSTER_LOG_DIRS" --topics "$topic" --partitions "$partitions" \
     --out "$work/tiered.tsv" --timeout-s 240 2>"$work/wait.err"; then
  step "tiered: every rolled segment copied and deleted locally on every replica $(($(date +%s) - t0)) s after the producers stopped"
else
  tail -n 3 "$work/wait.err"; fail "tiered" "segments not copied and deleted locally in 240 s"
  [ -f "$work/tiered.tsv" ] || exit 1
fi

# ---- 5. every acknowledged record back, under both isolation levels; the table
for iso in read_uncommitted read_committed; do
  if java_client MaintainClient consume --topics "$topic" --isolation "$iso" --out "$work/consumed-$iso.tsv" \
       --stall-s 60 --timeout-s 300 2>"$work/consume-$iso.err"; then
    say "$(grep '^consume' "$work/consume-$iso.err")"
    check acked "$work/oracle.tsv" "$work/oracle.tsv.unacked" "$work/consumed-$iso.tsv" "$iso" "$work/figures-$iso.json" "consume $iso"
  else
    tail -n 5 "$work/consume-$iso.err"; fail "consume $iso" "MaintainClient consume failed: $(grep -m1 FAILED "$work/consume-$iso.err" | cut -c1-400)"
  fi
done
# The table against what Kafka holds (the records read under read_uncommitted: acknowledged or not,
# every record in the log), up to each partition's latest tiered offset.
if [ -f "$work/consumed-read_uncommitted.tsv" ]; then
  for engine in pyiceberg duckdb; do
    CALVING_READ_CATALOG="$REST_URI" CALVING_READ_S3_PROPS="$REST_S3_PROPS" \
      check table "$work/consumed-read_uncommitted.tsv" "$work/tiered.tsv" s3://calving/wh "$topic" "$engine" "table"
  done
fi

# ---- 6. figures from the brokers: JMX (since each broker's last start) and their logs (whole run)
jmx_pids=()
for i in 1 2 3; do
  "${jvm[@]}" -cp "$LIBS/*" org.apache.kafka.tools.JmxTool --jmx-url "${NODE_JMX_URL[i]}" \
    --object-name 'io.calving:type=RemoteStorageManager,*' --one-time true --report-format properties \
    >"$work/jmx-$i.txt" 2>"$work/jmx-$i.err" &
  jmx_pids+=($!)
done
for p in "${jmx_pids[@]}"; do wait "$p" || true; done
jmx=$(python3 "$root/integration/e2e/check.py" jmx-figures "$work"/jmx-[123].txt 2>&1)

# ---- 7. the broker logs: ERRORs of the remote log subsystem only where a fault explains them
# Expected, each only inside the windows of the faults named (from a fault's start to its recovery,
# plus 30 s: a copy started before the end can fail up to a storage timeout later), and the line
# after the ERROR (its exception) must match too. Anything else fails:
#   - ReplicaFetcherThread "Error building remote log auxiliary state for <partition>", caused by
#     "IllegalStateException: This instance is in invalid state, initialized: false",
#     "ReplicaNotAvailableException: Remote log metadata cache is not initialized for partition"
#     or "KafkaException: No topic id registered for topic partition" (thrown by
#     RemoteLogManager.fetchRemoteLogSegmentMetadata) (kill, wipe, reassign): a replica that was
#     restarted or newly created fetches before Kafka's own RemoteLogManager and
#     TopicBasedRemoteLogMetadataManager have registered and loaded its partitions; the fetcher
#     retries (the ISR checks above show it caught up). Kafka's, before the plugin is asked
#     anything.
#   - RLMCopyTask "Error occurred while copying log segments of partition", caused by
#     "IllegalArgumentException: segmentLeaderEpochs can not be null or empty" (reassign only): a
#     leader's copy task that runs on for a moment after its replica was removed and its log
#     deleted builds the next segment's metadata from the emptied leader epoch cache. Kafka's,
#     before the plugin is called. Anywhere else (say on the wiped node once it leads again) it
#     would mean a leader epoch cache rebuilt wrong from the tier: a failure.
#   - RLMCopyTask "Error occurred while copying log segments of partition", caused by the plugin's
#     "RemoteStorageException" (s3, catalog only): copyLogSegmentData failed while the object store
#     or the catalog was unreachable; Kafka copies the segment again later.
#   - "Encountered error while [querying or ]creating __remote_log_metadata topic" (Kafka 4.4's
#     wording has "querying or") before the first fault (as in
#     run.sh: the topic needs 3 brokers registered).
#   - ReplicaManager "Error processing append operation on partition …__remote_log_metadata-N",
#     caused by "OutOfOrderSequenceException" (kill, elect, reassign, wipe): a leader of a
#     partition of Kafka's own metadata topic moved while a broker's metadata producer (an
#     idempotent one) had writes in flight, and the new leader refused a resent batch; Kafka's,
#     not the plugin's (seen once, at a preferred election right after a kill).
python3 - "$work/windows.tsv" "$work/errors.txt" "${NODE_LOG[@]}" <<'EOF' | tee_results
import datetime, re, sys
windows_path, out_path, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
GRACE = 30.0
windows = []
for line in open(windows_path):
    if line.strip():
        kind, a, b = line.split()[:3]
        windows.append((kind, float(a), float(b) + GRACE))
first = min((a for _, a, _ in windows), default=float("inf"))
EXPECTED = [  # (ERROR line, the line after it, fault kinds; "startup": before the first fault)
    (r"Error building remote log auxiliary state for",
     r"IllegalStateException: This instance is in invalid state, initialized: false"
     r"|ReplicaNotAvailableException: Remote log metadata cache is not initialized for partition"
     r"|KafkaException: No topic id registered for topic partition", {"kill", "wipe", "reassign"}),
    (r"Error occurred while copying log segments of partition",
     r"IllegalArgumentException: segmentLeaderEpochs can not be null or empty", {"reassign"}),
    (r"Error occurred while copying log segments of partition", r"RemoteStorageException", {"s3", "catalog"}),
    (r"Encountered error while (querying or )?creating __remote_log_metadata topic", r".", {"startup"}),
    (r"Error processing append operation on partition \S*__remote_log_metadata-\d+",
     r"OutOfOrderSequenceException", {"kill", "elect", "reassign", "wipe"}),
]
stamp = re.compile(r"^\[(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d),(\d{3})\] ERROR")
unexpected, expected = [], {}
for n, log in enumerate(logs, 1):
    lines = open(log, errors="replace").read().splitlines()
    for j, line in enumerate(lines):
        m = stamp.match(line)
        if not m or not re.search(r"remote|calving|rsm", line, re.I):
            continue
        t = datetime.datetime.strptime(m.group(1).replace("T", " "), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp() + int(m.group(2)) / 1000
        cause = lines[j + 1] if j + 1 < len(lines) else ""
        kinds = {k for k, a, b in windows if a <= t <= b} | ({"startup"} if t < first else set())
        ok = next((e for e in EXPECTED if re.search(e[0], line) and re.search(e[1], cause) and kinds & e[2]), None)
        if ok:
            key = (ok[0], ",".join(sorted(kinds & ok[2])))
            expected[key] = expected.get(key, 0) + 1
        else:
            unexpected.append(f"node {n}: {line[:300]} | {cause[:300]} | during: {','.join(sorted(kinds)) or 'no fault'}")
with open(out_path, "w") as f:
    f.write("\n".join(unexpected) + "\n")
shown = "; ".join(f"{v} x '{k[0]}' during {k[1]}" for k, v in sorted(expected.items()))
if unexpected:
    print(f"FAIL broker logs: {len(unexpected)} ERROR lines of remote storage no fault explains (all in {out_path}), first: {unexpected[0]}")
else:
    print(f"PASS broker logs: no ERROR of remote storage that the faults do not explain ({shown or 'none at all'})")
EOF

# ---- 8. the orphan sweep: only what the faults left, all of it gone after a real sweep
sweep_props=(-p catalog.type=rest -p "catalog.uri=$REST_URI")
while IFS= read -r kv; do [ -n "$kv" ] && sweep_props+=(-p "$kv"); done <<<"$REST_S3_PROPS"
sweep() { bg "$cli" sweep --warehouse s3://calving/wh --topic "$topic" --older-than-secs 20 "${sweep_props[@]}" "$@"; }
if sweep --dry-run >"$work/sweep-1.txt" 2>"$work/sweep.err"; then
  orphans1=$(grep -c '^orphan ' "$work/sweep-1.txt" || true)
  say "sweep (dry run): $(tail -n 1 "$work/sweep-1.txt")"
  python3 - "$S3_ENDPOINT" >"$work/objects.txt" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="calving-test-key",
                  aws_secret_access_key="calving-test-secret", region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="calving"):
    for o in page.get("Contents", []):
        print(f"{o['Key']} {o['LastModified'].timestamp()}")
EOF
  check orphans "$work/sweep-1.txt" "$work/objects.txt" "$work/windows.tsv" 30 "sweep (dry run)"
  say "the sweep check's fault windows (+-30 s) cover $(python3 - "$work/windows.tsv" "$t_produce" "$tstop" <<'EOF'
import sys
w = sorted((float(l.split()[1]) - 30, float(l.split()[3]) + 30) for l in open(sys.argv[1]) if l.strip())
a0, b0 = float(sys.argv[2]), float(sys.argv[3])
covered, end = 0.0, a0
for a, b in w:
    a, b = max(a, end), min(b, b0)
    if b > a:
        covered += b - a
        end = b
print(f"{100 * covered / (b0 - a0):.0f}% of the {b0 - a0:.0f} s of production")
EOF
)"
  if sweep >"$work/sweep-2.txt" 2>>"$work/sweep.err" && sweep --dry-run >"$work/sweep-3.txt" 2>>"$work/sweep.err"; then
    left=$(grep -c '^orphan ' "$work/sweep-3.txt" || true)
    deleted=$(grep -c '^deleted ' "$work/sweep-2.txt" || true)
    if [ "$left" = 0 ]; then pass "sweep: $deleted orphans deleted, a second dry run finds none"
    else fail "sweep" "$left orphans left after a real sweep: $(grep -m1 '^orphan ' "$work/sweep-3.txt")"; fi
  else
    fail "sweep" "calving sweep failed: $(tail -n 2 "$work/sweep.err" | tr '\n' ' ' | cut -c1-300)"
  fi
  if java_client MaintainClient consume --topics "$topic" --isolation read_committed --out "$work/consumed-after-sweep.tsv" \
       --stall-s 60 --timeout-s 300 2>"$work/consume-after.err"; then
    check acked "$work/oracle.tsv" "$work/oracle.tsv.unacked" "$work/consumed-after-sweep.tsv" read_committed \
      "$work/figures-after.json" "consume after the sweep read_committed"
  else
    fail "consume after the sweep" "$(grep -m1 FAILED "$work/consume-after.err" | cut -c1-400)"
  fi
else
  orphans1="?"
  fail "sweep" "calving sweep --dry-run failed: $(tail -n 2 "$work/sweep.err" | tr '\n' ' ' | cut -c1-300)"
fi

# ---- 9. figures, shutdown
copy_errors=$(count_lines 'ERROR .*Error occurred while copying log segments')
copied=$(count_lines 'Copied .* to remote storage')
copying=$(count_lines 'Copying .* to remote storage')
unknown=$(count_lines 'commit outcome unknown; reloading')
landed=$(count_lines 'a commit whose outcome was unknown had landed')
# Segments Kafka's metadata cache dropped (an overlapping segment of the same epoch replaced it)
# that CalvingRemoteLogMetadataManager served reads from (a WARN line per segment and broker).
holes=$(count_lines "which Kafka's remote log metadata cache no longer maps")
rec=$(python3 - "$work/recovery.tsv" <<'EOF'
import sys
from collections import defaultdict
d = defaultdict(list)
for line in open(sys.argv[1]):
    if line.strip():
        k, v = line.split()
        d[k].append(float(v))
print(" ".join(f"{k}={max(v):.1f}s(max of {len(v)}, mean {sum(v) / len(v):.1f})" for k, v in d.items()))
EOF
)
figs=$(python3 - "$work" <<'EOF'
import json, os, sys
w = sys.argv[1]
out = []
for iso in ("read_uncommitted", "read_committed"):
    p = os.path.join(w, f"figures-{iso}.json")
    if os.path.exists(p):
        f = json.load(open(p))
        out.append(f"{iso}: consumed={f['consumed']} lost={f['lost']} duplicates={f['duplicates']}")
        acked, unacked = f["acked"], f["unacked_sends"]
if out:
    print(f"acked={acked} unacked_sends={unacked} " + " ".join(out))
EOF
)
# Copies started but never logged as copied were killed with their broker, failed (Kafka logged
# an ERROR and copies the segment again), or cancelled by a leader change (the new leader copies it).
echo "figures: $figs; copies (broker logs, whole run): $copied copied of $copying started, $copy_errors 'Error occurred while copying', $unknown commits of unknown outcome ($landed found landed); $holes reads of segments Kafka's metadata cache dropped (CalvingRemoteLogMetadataManager); orphans swept $orphans1; JMX since each broker's last start: $jmx; recovery: $rec"
# A clean shutdown is run.sh's check; here the nodes just go.
for i in 1 2 3; do node_kill "$i"; done
rest_s3_stop

summary faults "$started"
