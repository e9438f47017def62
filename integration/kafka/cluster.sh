# shellcheck shell=bash
# A KRaft cluster of N Apache Kafka nodes (each broker and controller, a static quorum of all N) on
# 127.0.0.1, for scripts that source this file (integration/cluster/run.sh).
#
#   . integration/kafka/cluster.sh
#   cluster_init <work dir> <kafka libs dir> <nodes> [file of extra server properties]
#   cluster_start           # starts every node; returns once each logged "Kafka Server started"
#   node_start <i>          # (re)starts node i (1-based) and waits for it
#   node_kill <i>           # kill -9
#   node_stop <i> [<s>]     # SIGTERM, waits up to <s> seconds (default 60); non-zero if it needed SIGKILL
#   cluster_stop            # node_stop one node after the other; non-zero if any needed SIGKILL
#   cluster_kill            # best effort, for traps
#
# After cluster_init: CLUSTER_BOOTSTRAP (every node's PLAINTEXT address, comma-separated),
# CLUSTER_LOG_DIRS (every node's log dir, comma-separated), CLUSTER_LOGS (their server logs,
# space-separated), NODE_DATA[i], NODE_LOG[i], NODE_JMX_URL[i] (JMX without authentication, on
# 127.0.0.1 only), NODE_PID[i] (while it runs). Every internal topic has replication factor
# min(3, N) and min.insync.replicas min(2, N). Heap per node: CLUSTER_HEAP (default 512m).
# With CLUSTER_METADATA_DIR=1 each node keeps its KRaft metadata log in a directory of its own,
# NODE_META[i] (metadata.log.dir), apart from its log dir: a node's log dir can then be wiped
# (keeping its meta.properties) and the node still rejoins (integration/cluster/faults.sh).

_cluster_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=broker.sh
. "$_cluster_here/broker.sh"   # KAFKA_LOG_OPTS, jmx_options, kafka_wait_started
NODE_DATA=(); NODE_META=(); NODE_LOG=(); NODE_JMX_URL=(); NODE_JMX_PORT=(); NODE_PID=(); NODE_WORK=(); _NODE_STARTS=()

cluster_init() {
  CLUSTER_WORK=$1
  CLUSTER_LIBS=$2
  CLUSTER_N=$3
  local extra=${4:-} i ports voters="" rf isr
  CLUSTER_JVM=(java -Xms128m "-Xmx${CLUSTER_HEAP:-512m}" -XX:+UseSerialGC "${KAFKA_LOG_OPTS[@]}")
  read -r -a ports < <(python3 -c '
import socket, sys
n = int(sys.argv[1]) * 3
ss = [socket.socket() for _ in range(n)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$CLUSTER_N") || { echo "cluster.sh: no free ports" >&2; return 1; }
  for i in $(seq "$CLUSTER_N"); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[$(( (i - 1) * 3 + 1 ))]}"
  done
  rf=$(( CLUSTER_N < 3 ? CLUSTER_N : 3 )); isr=$(( CLUSTER_N < 2 ? CLUSTER_N : 2 ))
  CLUSTER_BOOTSTRAP=""; CLUSTER_LOG_DIRS=""; CLUSTER_LOGS=""
  local cluster_id
  mkdir -p "$CLUSTER_WORK"
  cluster_id=$("${CLUSTER_JVM[@]}" -Dcalving.log.file="$CLUSTER_WORK/tools.log" -cp "$CLUSTER_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null) \
    || { echo "cluster.sh: StorageTool random-uuid failed" >&2; return 1; }
  for i in $(seq "$CLUSTER_N"); do
    local port=${ports[$(( (i - 1) * 3 ))]} cport=${ports[$(( (i - 1) * 3 + 1 ))]} jport=${ports[$(( (i - 1) * 3 + 2 ))]}
    NODE_WORK[i]="$CLUSTER_WORK/node$i"
    NODE_DATA[i]="${NODE_WORK[i]}/data"
    NODE_META[i]=""
    [ "${CLUSTER_METADATA_DIR:-0}" != 1 ] || NODE_META[i]="${NODE_WORK[i]}/metadata"
    NODE_LOG[i]="${NODE_WORK[i]}/server.log"
    NODE_JMX_PORT[i]=$jport
    NODE_JMX_URL[i]="service:jmx:rmi:///jndi/rmi://127.0.0.1:$jport/jmxrmi"
    _NODE_STARTS[i]=0
    mkdir -p "${NODE_WORK[i]}"
    CLUSTER_BOOTSTRAP+="${CLUSTER_BOOTSTRAP:+,}127.0.0.1:$port"
    CLUSTER_LOG_DIRS+="${CLUSTER_LOG_DIRS:+,}${NODE_DATA[i]}"
    CLUSTER_LOGS+="${CLUSTER_LOGS:+ }${NODE_LOG[i]}"
    {
      cat <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${NODE_DATA[i]}
${NODE_META[i]:+metadata.log.dir=${NODE_META[i]}}
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=false
EOF
      [ -z "$extra" ] || cat "$extra"
    } >"${NODE_WORK[i]}/server.properties"
    "${CLUSTER_JVM[@]}" -Dcalving.log.file="${NODE_WORK[i]}/tools.log" -cp "$CLUSTER_LIBS/*" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "${NODE_WORK[i]}/server.properties" \
      >"${NODE_WORK[i]}/format.out" 2>&1 \
      || { cat "${NODE_WORK[i]}/format.out" >&2; echo "cluster.sh: StorageTool format of node $i failed" >&2; return 1; }
  done
}

_node_launch() {   # <i>
  local i=$1
  _NODE_STARTS[i]=$(( ${_NODE_STARTS[i]} + 1 ))
  # shellcheck disable=SC2046 # jmx_options: flags without spaces, one word each
  "${CLUSTER_JVM[@]}" -Dcalving.log.file="${NODE_LOG[i]}" $(jmx_options "${NODE_JMX_PORT[i]}") \
    -cp "$CLUSTER_LIBS/*" kafka.Kafka "${NODE_WORK[i]}/server.properties" >>"${NODE_WORK[i]}/broker.out" 2>&1 &
  NODE_PID[i]=$!
}

_node_wait() {   # <i>
  local i=$1 rc=0
  kafka_wait_started "${NODE_PID[i]}" "${NODE_LOG[i]}" "${_NODE_STARTS[i]}" "${NODE_WORK[i]}/broker.out" "cluster.sh: node $i" 180 || rc=$?
  [ "$rc" = 1 ] && NODE_PID[i]=""
  return "$rc"
}

cluster_start() {
  local i
  for i in $(seq "$CLUSTER_N"); do _node_launch "$i"; done
  for i in $(seq "$CLUSTER_N"); do _node_wait "$i" || return 1; done
}

node_start() { _node_launch "$1"; _node_wait "$1"; }

node_kill() {
  local i=$1
  [ -n "${NODE_PID[i]:-}" ] || return 0
  kill -KILL "${NODE_PID[i]}" 2>/dev/null || true
  wait "${NODE_PID[i]}" 2>/dev/null || true
  NODE_PID[i]=""
}

node_stop() {
  local i=$1 limit=${2:-60} ok=0
  [ -n "${NODE_PID[i]:-}" ] || return 0
  kill -TERM "${NODE_PID[i]}" 2>/dev/null || true
  for _ in $(seq $((limit * 5))); do kill -0 "${NODE_PID[i]}" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "${NODE_PID[i]}" 2>/dev/null; then ok=1; kill -KILL "${NODE_PID[i]}" 2>/dev/null || true; fi
  wait "${NODE_PID[i]}" 2>/dev/null || true
  NODE_PID[i]=""
  return $ok
}

cluster_stop() {
  local i ok=0
  for i in $(seq "$CLUSTER_N"); do node_stop "$i" || ok=1; done
  return $ok
}

cluster_kill() {
  local i
  for i in $(seq "${CLUSTER_N:-0}"); do
    [ -n "${NODE_PID[i]:-}" ] && kill -KILL "${NODE_PID[i]}" 2>/dev/null || true
  done
}
