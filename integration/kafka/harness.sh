# shellcheck shell=bash
# What the scripts that run a broker share besides the broker itself, for scripts that source this
# file (integration/e2e/run.sh, integration/e2e/measure.sh, integration/typed/run.sh,
# integration/demo.sh, tests/fixtures/generate.sh). Sources integration/kafka/broker.sh.
#
#   . integration/kafka/harness.sh
#   harness_traps <label> <work dir> <kept note> [<function> [<on INT> [<on TERM>]]]
#   start_watchdog <seconds> <label> [<shown>]
#   plugin_properties <plugin jar> <warehouse dir> [<key>=<value>...] >extra.properties
#
# and for the scripts that report PASS/FAIL lines (integration/e2e/run.sh, integration/typed/run.sh):
#
#   results_init <file>     # RESULTS=<file>, emptied
#   pass <name>             # "PASS <name>" on stdout and appended to RESULTS (a check: counted)
#   step <name>             # "STEP <name>" likewise: a harness step that went well (a broker
#                           # started, a workload produced), reported but not counted as a test
#   fail <name> <why>       # "FAIL <name>: <why>" likewise
#   tee_results             # stdin (a checker's PASS/FAIL lines) likewise
#   check_broker_log        # pass, or fail when BROKER_LOG holds an ERROR line of the remote log
#                           # subsystem (remote, calving, rsm); one known Kafka 3.9 race is
#                           # counted apart, not failed (see below)
#   summary <label> <start> # "<label>: N passed, N failed (S s)", S since <start> (date +%s); returns
#                           # non-zero when anything failed
#
# harness_traps traps EXIT: runs <function> with the exit status (the script's own children: clients,
# samplers, a registry), broker_kill, stops the watchdog, then keeps <work dir> on a non-zero exit
# status or with CALVING_KEEP_WORK=1 ("<label>: work directory kept: <work dir><kept note>" on
# stderr) or removes it (an empty <work dir>: neither); the script exits with its own status. SIGINT
# exits with 130, SIGTERM with 143, each after "<label>: <on INT>" / "<label>: <on TERM>" on stderr
# when given (not empty).
#
# start_watchdog starts a background subshell (WATCHDOG_PID) that, after <seconds>, prints
# "<label>: watchdog: <shown> elapsed, stopping" (<shown> defaults to "<seconds> s") on stderr and
# sends SIGTERM to the script.
#
# plugin_properties prints the broker properties that load the plugin jar
# (remote.log.storage.system.enable, io.calving.kafka.CalvingRemoteStorageManager,
# remote.log.storage.manager.class.path=<jar>, Kafka's topic-based RemoteLogMetadataManager as
# io.calving.kafka.CalvingRemoteLogMetadataManager from the same jar, on PLAINTEXT with 1 partition
# and replication factor 1, rsm.config.warehouse=file://<warehouse dir>, 1 s
# remote.log.manager.task.interval.ms and log.retention.check.interval.ms); each <key>=<value>
# replaces the line of that key, or is added after them.

# shellcheck source=broker.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/broker.sh"

WATCHDOG_PID=""

harness_traps() {
  _harness_label=$1
  _harness_work=$2
  _harness_kept=$3
  _harness_hook=${4:-}
  _harness_int=${5:-}
  _harness_term=${6:-}
  trap _harness_exit EXIT
  trap '_harness_signal "$_harness_int" 130' INT
  trap '_harness_signal "$_harness_term" 143' TERM
}

_harness_exit() {
  local rc=$?
  if [ -n "$_harness_hook" ]; then "$_harness_hook" "$rc" || true; fi
  broker_kill
  if [ -n "$WATCHDOG_PID" ]; then kill -TERM "$WATCHDOG_PID" 2>/dev/null || true; fi
  if [ -n "$_harness_work" ]; then
    if [ "$rc" -ne 0 ] || [ "${CALVING_KEEP_WORK:-0}" = 1 ]; then
      echo "$_harness_label: work directory kept: $_harness_work$_harness_kept" >&2
    else
      rm -rf "$_harness_work"
    fi
  fi
  exit "$rc"
}

_harness_signal() {   # <message> <exit status>
  [ -z "$1" ] || echo "$_harness_label: $1" >&2
  exit "$2"
}

start_watchdog() {
  local main_pid=$$
  ( trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$1" & sp=$!
    wait "$sp" && { echo "$2: watchdog: ${3:-$1 s} elapsed, stopping" >&2; kill -TERM "$main_pid"; } ) &
  WATCHDOG_PID=$!
}

results_init() { RESULTS=$1; : >"$RESULTS"; }
pass() { echo "PASS $*" | tee -a "$RESULTS"; }
step() { echo "STEP $*" | tee -a "$RESULTS"; }
fail() { echo "FAIL $1: $2" | tee -a "$RESULTS"; }
tee_results() { tee -a "$RESULTS"; }

# Kafka 3.9's RemoteLogManager runs its tasks as soon as a partition has a leader, also before its
# own topic-based RemoteLogMetadataManager is initialized after a restart: the copy task then logs
# ERROR "Error occurred while copying log segments" with "IllegalStateException: This instance is in
# invalid state, initialized: false" and succeeds on its next run. Kafka 4.0 waits for
# RemoteLogMetadataManager.isReady (KAFKA-17980). Such ERROR lines (that exception on the next line)
# are Kafka's, not the plugin's: counted in the PASS line, not failed.
check_broker_log() {
  local lines errors race
  lines=$(awk '
    e != "" { print (($0 ~ /^java\.lang\.IllegalStateException: This instance is in invalid state, initialized: false/ && e ~ /RemoteLogManager/) ? "R " : "E ") e; e = "" }
    /^\[[^]]*\] ERROR/ { e = $0 }
    END { if (e != "") print "E " e }' "$BROKER_LOG")
  errors=$(echo "$lines" | sed -n 's/^E //p' | grep -i -E 'remote|calving|rsm' || true)
  race=$(echo "$lines" | grep -c '^R ' || true)
  if [ -z "$errors" ]; then
    if [ "$race" = 0 ]; then pass "no ERROR from remote storage in the broker log"
    else pass "no ERROR from remote storage in the broker log ($race ERROR lines left out: Kafka's own RemoteLogMetadataManager not yet initialized at startup, a Kafka 3.9 race fixed in 4.0 by KAFKA-17980)"; fi
  else fail "broker log" "$(echo "$errors" | wc -l) ERROR lines, first: $(echo "$errors" | head -n1 | cut -c1-400)"; fi
}

summary() {
  local passed failed
  passed=$(grep -c '^PASS' "$RESULTS" || true)
  failed=$(grep -c '^FAIL' "$RESULTS" || true)
  echo "$1: $passed passed, $failed failed ($(($(date +%s) - $2)) s)"
  [ "$failed" = 0 ]
}

plugin_properties() {
  local props=(
    remote.log.storage.system.enable=true
    remote.log.storage.manager.class.name=io.calving.kafka.CalvingRemoteStorageManager
    "remote.log.storage.manager.class.path=$1"
    remote.log.metadata.manager.class.name=io.calving.kafka.CalvingRemoteLogMetadataManager
    "remote.log.metadata.manager.class.path=$1"
    remote.log.metadata.manager.listener.name=PLAINTEXT
    rlmm.config.remote.log.metadata.topic.replication.factor=1
    rlmm.config.remote.log.metadata.topic.num.partitions=1
    "rsm.config.warehouse=file://$2"
    remote.log.manager.task.interval.ms=1000
    log.retention.check.interval.ms=1000
  )
  shift 2
  local p i
  for p in "$@"; do
    for i in "${!props[@]}"; do
      if [ "${props[$i]%%=*}" = "${p%%=*}" ]; then props[i]=$p; continue 2; fi
    done
    props+=("$p")
  done
  printf '%s\n' "${props[@]}"
}
