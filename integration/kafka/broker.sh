# shellcheck shell=bash
# A single-node KRaft Apache Kafka broker on 127.0.0.1 (3.9 to 4.4: the version of the libs dir), for
# scripts that source this file, directly or through integration/kafka/harness.sh
# (integration/e2e/run.sh, integration/e2e/measure.sh, integration/typed/run.sh, integration/demo.sh,
# tests/fixtures/generate.sh).
#
#   . integration/kafka/broker.sh
#   broker_init <work dir> <kafka libs dir> [file of extra server properties]
#   broker_start            # returns once the broker logged "Kafka Server started"
#   broker_stop             # SIGTERM, waits for a clean shutdown (.kafka_cleanshutdown)
#   broker_kill             # best effort, for traps: TERM, then KILL after 20 s
#
# and, for any Kafka process (integration/kafka/cluster.sh too):
#   KAFKA_LOG_OPTS          # the JVM flags that make log4j2 (Kafka 4.x) or log4j 1 (reload4j, 3.x)
#                           # log to -Dcalving.log.file: integration/kafka/log4j2.xml, log4j.properties
#   jmx_options <port>      # the JVM flags of a JMX connector on 127.0.0.1:<port>, no authentication
#   kafka_wait_started <pid> <server log> <starts> <out file> <label> <seconds>
#                           # 0 once <server log> holds <starts> "Kafka Server started" lines; 1 when
#                           # <pid> exited first (the tail of <out file> on stderr); 2 after <seconds>
#
# broker_init writes <work>/server.properties (process.roles=broker,controller, node.id=1, static
# quorum, PLAINTEXT and CONTROLLER listeners on free ports of 127.0.0.1, log.dirs=<work>/data, every
# internal topic with replication factor 1) followed by the extra properties, then formats the log
# dir with kafka.tools.StorageTool. Afterwards: BROKER_BOOTSTRAP (127.0.0.1:<port>),
# BROKER_CONTROLLER_PORT, BROKER_DATA (log dir), BROKER_LOG (<work>/server.log, KAFKA_LOG_OPTS),
# BROKER_PID (set while it runs), BROKER_STARTS (broker_start calls),
# BROKER_JVM (the java command line prefix, heap capped: BROKER_HEAP, default 768m; initial heap
# BROKER_HEAP_MIN, default 128m; SerialGC), BROKER_JMX_URL (the broker's JMX connector, without
# authentication, on 127.0.0.1 only: for Kafka's JmxTool). Functions return non-zero (they do not exit) on failure,
# with a message on stderr.

_broker_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Both: each backend reads only its own property.
KAFKA_LOG_OPTS=(-Dlog4j2.configurationFile="$_broker_here/log4j2.xml"
  -Dlog4j.configuration="file:$_broker_here/log4j.properties")

broker_init() {
  BROKER_WORK=$1
  BROKER_LIBS=$2
  local extra=${3:-}
  BROKER_DATA="$BROKER_WORK/data"
  BROKER_LOG="$BROKER_WORK/server.log"
  BROKER_PID=""
  BROKER_STARTS=0
  BROKER_JVM=(java "-Xms${BROKER_HEAP_MIN:-128m}" "-Xmx${BROKER_HEAP:-768m}" -XX:+UseSerialGC
    "${KAFKA_LOG_OPTS[@]}")
  mkdir -p "$BROKER_WORK"
  local port controller_port jmx_port
  read -r port controller_port jmx_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])') || { echo "broker.sh: no free ports" >&2; return 1; }
  BROKER_PORT=$port
  BROKER_CONTROLLER_PORT=$controller_port
  BROKER_BOOTSTRAP="127.0.0.1:$port"
  BROKER_JMX_PORT=$jmx_port
  BROKER_JMX_URL="service:jmx:rmi:///jndi/rmi://127.0.0.1:$jmx_port/jmxrmi"
  {
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$BROKER_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=false
EOF
    [ -z "$extra" ] || cat "$extra"
  } >"$BROKER_WORK/server.properties"
  local cluster_id
  cluster_id=$("${BROKER_JVM[@]}" -Dcalving.log.file="$BROKER_WORK/tools.log" -cp "$BROKER_LIBS/*" \
    kafka.tools.StorageTool random-uuid) || { echo "broker.sh: StorageTool random-uuid failed" >&2; return 1; }
  "${BROKER_JVM[@]}" -Dcalving.log.file="$BROKER_WORK/tools.log" -cp "$BROKER_LIBS/*" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$BROKER_WORK/server.properties" \
    >"$BROKER_WORK/format.out" 2>&1 || { cat "$BROKER_WORK/format.out" >&2; echo "broker.sh: StorageTool format failed" >&2; return 1; }
}

jmx_options() {   # <port>
  echo "-Dcom.sun.management.jmxremote.port=$1 -Dcom.sun.management.jmxremote.rmi.port=$1" \
    "-Dcom.sun.management.jmxremote.host=127.0.0.1 -Djava.rmi.server.hostname=127.0.0.1" \
    "-Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false"
}

kafka_wait_started() {   # <pid> <server log> <starts> <out file> <label> <seconds>
  local n
  for _ in $(seq $(($6 * 5))); do
    if ! kill -0 "$1" 2>/dev/null; then
      tail -n 30 "$4" >&2
      echo "$5 exited during startup (see $2)" >&2
      return 1
    fi
    n=$(grep -c 'Kafka Server started' "$2" 2>/dev/null) || n=0
    [ "$n" -ge "$3" ] && return 0
    sleep 0.2
  done
  echo "$5 not ready after $6 s (see $2)" >&2
  return 2
}

broker_start() {
  BROKER_STARTS=$((BROKER_STARTS + 1))
  # shellcheck disable=SC2046 # jmx_options: flags without spaces, one word each
  "${BROKER_JVM[@]}" -Dcalving.log.file="$BROKER_LOG" $(jmx_options "$BROKER_JMX_PORT") -cp "$BROKER_LIBS/*" kafka.Kafka \
    "$BROKER_WORK/server.properties" >>"$BROKER_WORK/broker.out" 2>&1 &
  BROKER_PID=$!
  echo "$BROKER_PID" >"$BROKER_WORK/broker.pid"
  local rc=0
  kafka_wait_started "$BROKER_PID" "$BROKER_LOG" "$BROKER_STARTS" "$BROKER_WORK/broker.out" "broker.sh: broker" 120 || rc=$?
  [ "$rc" = 1 ] && BROKER_PID=""
  return "$rc"
}

broker_stop() {
  [ -n "$BROKER_PID" ] || return 0
  rm -f "$BROKER_DATA/.kafka_cleanshutdown"
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  local i
  for i in $(seq 300); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
    echo "broker.sh: broker did not stop within 60 s of SIGTERM (killed)" >&2
    return 1
  fi
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
  [ -f "$BROKER_DATA/.kafka_cleanshutdown" ] || { echo "broker.sh: no clean shutdown marker" >&2; return 1; }
}

broker_kill() {
  [ -n "${BROKER_PID:-}" ] || return 0
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    local i
    for i in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=""
}
