#!/usr/bin/env bash
# Calving's typed tables (value.mode value_schema_id_prefix / value_schema_latest, key.mode
# key_schema_id_prefix) end to end: a real Apache Kafka 4.1.2 broker (single-node KRaft, 127.0.0.1)
# with the plugin jar, a real Schema Registry (Apicurio Registry 3.0.9, tests/schema-registry) and
# a real Avro serializer for values and keys (Apicurio's Kafka serde,
# io.apicurio:apicurio-registry-avro-serde-kafka 3.0.2, writing the Confluent wire format: magic
# byte 0, 4-byte id, Avro binary), and Protobuf and JSON Schema values written by Apicurio's Kafka
# serdes for those (io.apicurio:apicurio-registry-protobuf-serde-kafka and
# apicurio-registry-jsonschema-serde-kafka 3.1.7, their own class path; ProtoJsonClient.java says
# which configs give which bytes: 0, 4-byte id, for Protobuf the index list [0] as Apicurio writes
# it, 02 00, or as Confluent does, 00, then the message; for JSON the text).
#
#   integration/typed/run.sh        (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#
# Steps, each ending in lines "PASS <name>" or "FAIL <name>: <why>":
#   1. start the registry, then the broker with rsm.config.schema.registry.url=<registry>/apis/ccompat/v7,
#      rsm.config.topic.typed_orders.value.mode=value_schema_id_prefix,
#      rsm.config.topic.typed_orders.key.mode=key_schema_id_prefix and
#      rsm.config.topic.typed_latest.value.mode=value_schema_latest (its keys stay raw),
#      rsm.config.topic.typed_proto.value.mode=value_schema_id_prefix and
#      rsm.config.topic.typed_json.value.mode=value_schema_id_prefix;
#   2. produce (TypedClient.java produce): typed_orders, Avro orders with nested records, arrays,
#      maps, date/timestamp-millis/decimal/uuid, nulls, a three-branch union, an enum, bytes, the
#      schema evolved twice while producing, tombstones and values that must stay raw; keys: Avro
#      OrderKey records from a second serializer configured for keys (subject typed_orders-key),
#      the key schema evolved once while producing, and keys that must stay raw (null, plain
#      UTF-8, truncated Avro, an unknown schema id); typed_latest, bare Avro values of one schema
#      and raw keys (see TypedClient.java); 32 KiB segments;
#      (ProtoJsonClient.java produce) typed_proto, proto3 Order messages (nested and repeated
#      messages, packed repeated scalars, map<string,int64>, map<int32,string>, a oneof, an enum,
#      `optional`, Timestamp, StringValue, absent fields; DynamicMessages from descriptors
#      compiled at run time from .proto text) with the schema evolved twice, as Apicurio frames
#      them and re-framed with Confluent's one-byte index list, tombstones and values that must
#      stay raw (unknown id, truncated, unknown field, another message's index); typed_json,
#      Event objects (nested objects, arrays, date-time, integers, numbers, booleans, escaped and
#      non-ASCII strings, absent properties) with the schema evolved twice, tombstones and raw
#      values (unknown id, truncated, wrong type, forbidden property, not JSON); raw keys;
#   3. the ids in the values and keys are the versions of subjects typed_orders-value and
#      typed_orders-key in the registry's Confluent API (check_typed.py wire), those of typed_proto
#      and typed_json the versions of typed_proto-value (PROTOBUF) and typed_json-value (JSON),
#      the Protobuf frames with the index list expected (check_typed.py wire-pj);
#   4. wait until every rolled segment was copied and deleted locally (E2eClient wait-tiered);
#   5. consume from offset 0: every key and value byte-identical to what the serializers wrote
#      (E2eClient consume + integration/e2e/check.py consumed), and Apicurio's AvroKafkaDeserializer
#      decodes the values, and a second one configured for keys the Avro keys, to the produced
#      records (TypedClient decode); Apicurio's ProtobufKafkaDeserializer and
#      JsonSchemaKafkaDeserializer decode typed_proto and typed_json to the produced messages
#      (ProtoJsonClient decode);
#   6. the tables: schema history and types, the `key` struct's field ids stable too (pyiceberg),
#      then every row's typed columns, raw fallback, schema id, key struct, key schema id, raw key
#      fallback and Kafka fields read by pyiceberg, DuckDB and Spark (pyspark with Iceberg's Spark
#      runtime), compared with the produced values and keys (check_typed.py); the same for
#      typed_proto and typed_json: every value written from the schema in columns named by the
#      proto fields / JSON properties with kafka.value_schema_id set, the others raw;
#   7. stop the registry, restart the broker, consume again: byte-identical keys and values with
#      no registry (a tiered segment's sidecar keeps its writer schemas, the keys' too);
#   8. no ERROR from the remote log subsystem in the broker log; clean shutdown.
# Ends with "typed: N passed, N failed"; exit status 1 when anything failed. The work directory
# is kept on failure, or always with CALVING_KEEP_WORK=1.
#
# Env: CALVING_JAR (default build/libs/calving-0.1.0-SNAPSHOT.jar), CALVING_TYPED_RECORDS
# (typed_orders records, default 1200; typed_proto and typed_json get a quarter each),
# CALVING_TYPED_SPARK=off (skip the Spark reads),
# CALVING_TYPED_TIMEOUT (watchdog, default 900 s), CALVING_KAFKA_LIBS, CALVING_TYPED_LIBS.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
records=${CALVING_TYPED_RECORDS:-1200}
timeout=${CALVING_TYPED_TIMEOUT:-900}
tier_timeout=${CALVING_TYPED_TIER_TIMEOUT:-240}
spark=${CALVING_TYPED_SPARK:-on}
pj_records=$(( records / 4 > 80 ? records / 4 : 80 ))
topics=typed_orders,typed_latest,typed_proto,typed_json

say() { echo "typed: $*" >&2; }
die() { echo "typed: error: $*" >&2; exit 2; }

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
TYPED=$("$here/resolve-jars.sh" | tail -n1) || die "could not resolve the serde and Spark jars"
"$root/tests/schema-registry/resolve.sh" >/dev/null || die "could not resolve Apicurio Registry"
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/calving-typed.XXXXXX")
warehouse="$work/warehouse"
results_init "$work/results.txt"
client_pid=""
registry_pid=""
started=$(date +%s)

stop_registry() {
  [ -n "$registry_pid" ] || return 0
  kill -TERM "$registry_pid" 2>/dev/null
  local i
  for i in $(seq 100); do kill -0 "$registry_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$registry_pid" 2>/dev/null
  registry_pid=""
}

stop_children() {
  [ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null
  stop_registry
}
harness_traps typed "$work" " (broker log: $work/server.log, registry log: $work/registry.log)" stop_children \
  "interrupted" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" typed

bg() { "$@" & client_pid=$!; wait "$client_pid"; local rc=$?; client_pid=""; return $rc; }
java_client() {   # <class> <command> [args]
  local cp="$work/classes:$LIBS/*:$TYPED/serde/*"
  [ "$1" != ProtoJsonClient ] || cp="$work/classes-pj:$LIBS/*:$TYPED/serde-pj/*"
  bg java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml" \
    -Dcalving.log.file="$work/clients.log" -cp "$cp" "$1" "$2" --bootstrap "$BROKER_BOOTSTRAP" "${@:3}"
}

# ---- 0. the plugin jar and the clients
[ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
python3 -m zipfile -l "$jar" | grep -q 'libcalving' || die "$jar holds no libcalving native library"
mkdir -p "$work/classes"
javac -nowarn -d "$work/classes" -cp "$LIBS/*:$TYPED/serde/*" "$root/integration/e2e/E2eClient.java" "$here/TypedClient.java" \
  2>"$work/javac.out" || { cat "$work/javac.out" >&2; die "E2eClient.java / TypedClient.java do not compile"; }
mkdir -p "$work/classes-pj"
javac -nowarn -d "$work/classes-pj" -cp "$LIBS/*:$TYPED/serde-pj/*" "$here/ProtoJsonClient.java" \
  2>"$work/javac-pj.out" || { cat "$work/javac-pj.out" >&2; die "ProtoJsonClient.java does not compile"; }

# ---- 1. registry and broker
read -r registry_port < <(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(date +%s)
CALVING_REGISTRY_OPTS="-Dquarkus.http.access-log.enabled=false -XX:+UseSerialGC" \
  "$root/tests/schema-registry/start.sh" "$registry_port" "$work/registry.log" >"$work/registry.pid" 2>"$work/registry.err" &
start_pid=$!
wait "$start_pid" || { cat "$work/registry.err" >&2; die "Apicurio Registry did not start (see $work/registry.log)"; }
registry_pid=$(tail -n1 "$work/registry.pid")
ccompat="http://127.0.0.1:$registry_port/apis/ccompat/v7"
v3="http://127.0.0.1:$registry_port/apis/registry/v3"
step "Apicurio Registry 3.0.9 started on 127.0.0.1:$registry_port in $(($(date +%s) - t0)) s"

extra="$work/extra.properties"
plugin_properties "$jar" "$warehouse" "rsm.config.schema.registry.url=$ccompat" \
  rsm.config.topic.typed_orders.value.mode=value_schema_id_prefix rsm.config.topic.typed_orders.key.mode=key_schema_id_prefix \
  rsm.config.topic.typed_latest.value.mode=value_schema_latest rsm.config.topic.typed_proto.value.mode=value_schema_id_prefix \
  rsm.config.topic.typed_json.value.mode=value_schema_id_prefix log.initial.task.delay.ms=500 \
  remote.log.manager.copier.thread.pool.size=2 >"$extra"
BROKER_HEAP=${BROKER_HEAP:-512m}
broker_init "$work" "$LIBS" "$extra" || die "broker setup failed"
if broker_start; then step "broker started with the plugin and schema.registry.url=$ccompat"; else fail "broker start" "see $BROKER_LOG"; exit 1; fi

# ---- 2. produce
t0=$(date +%s)
if java_client TypedClient produce --registry "$v3" --out-dir "$work" --records "$records" 2>"$work/produce.err"; then
  step "produce with Apicurio's AvroKafkaSerializer ($(wc -l <"$work/oracle.tsv") records: $(grep -c '"kind":"avro"' "$work/expected.jsonl") Avro in 3 schema versions, $(grep -c '"kind":"latest"' "$work/expected.jsonl") bare Avro, $(grep -c '"kind":"tombstone"' "$work/expected.jsonl") tombstones, $(grep -v -c -E '"kind":"(avro|latest|tombstone|marker)"' "$work/expected.jsonl") raw; typed_orders keys: $(grep -c '"key_kind":"avro"' "$work/expected.jsonl") Avro in 2 schema versions, $(grep '"topic":"typed_orders"' "$work/expected.jsonl" | grep -v -c -E '"key_kind":"(avro|null)"') raw, $(grep '"topic":"typed_orders"' "$work/expected.jsonl" | grep -c '"key_kind":"null"') null; $(($(date +%s) - t0)) s)"
else
  tail -n 30 "$work/produce.err"; fail "produce" "TypedClient produce failed"; exit 1
fi
t0=$(date +%s)
if java_client ProtoJsonClient produce --registry "$v3" --out-dir "$work" --records "$pj_records" 2>"$work/produce-pj.err"; then
  pj() { grep "\"topic\":\"$1\"" "$work/expected-pj.jsonl" | grep -c "\"kind\":\"$2\""; }
  step "produce with Apicurio's ProtobufKafkaSerializer and JsonSchemaKafkaSerializer (typed_proto: $(pj typed_proto proto) Apicurio-framed + $(pj typed_proto proto-confluent) Confluent-framed Protobuf in 3 schema versions, $(pj typed_proto tombstone) tombstones, $(grep '"topic":"typed_proto"' "$work/expected-pj.jsonl" | grep -v -c -E '"kind":"(proto|proto-confluent|tombstone|marker)"') raw; typed_json: $(pj typed_json json) JSON in 3 schema versions, $(pj typed_json tombstone) tombstones, $(grep '"topic":"typed_json"' "$work/expected-pj.jsonl" | grep -v -c -E '"kind":"(json|tombstone|marker)"') raw; $(grep -h -o "Apicurio's index list.*" "$work/produce-pj.err"); $(($(date +%s) - t0)) s)"
else
  tail -n 30 "$work/produce-pj.err"; fail "produce" "ProtoJsonClient produce failed"; exit 1
fi
cat "$work/oracle.tsv" "$work/oracle-pj.tsv" >"$work/oracle-all.tsv"

# ---- 3. ids in the values and keys = the registry's Confluent ids
bg python3 "$here/check_typed.py" wire "$work/expected.jsonl" "$ccompat" | tee_results
bg python3 "$here/check_typed.py" wire-pj "$work/expected-pj.jsonl" "$work/oracle-pj.tsv" "$ccompat" | tee_results

# ---- 4. tiered and deleted locally
t0=$(date +%s)
if java_client E2eClient wait-tiered --log-dir "$BROKER_DATA" --topics "$topics" --partitions 1 --out "$work/tiered.tsv" \
     --timeout-s "$tier_timeout" 2>"$work/wait.err"; then
  pass "tiered: every rolled segment copied and deleted locally in $(($(date +%s) - t0)) s ($(grep -c 'Copied .* to remote storage' "$BROKER_LOG") segments; local log starts: $(awk '{printf "%s %s ", $1, $4}' "$work/tiered.tsv"))"
else
  tail -n 5 "$work/wait.err"; fail "tiered" "segments not copied and deleted locally in $tier_timeout s (see $BROKER_LOG)"
  [ -f "$work/tiered.tsv" ] || exit 1
fi

# ---- 5. consume: bytes, then the deserializer
consume_bytes() {   # <label>
  if java_client E2eClient consume --topics "$topics" --isolation read_uncommitted --out "$work/consumed.tsv" 2>"$work/consume.err"; then
    bg python3 "$root/integration/e2e/check.py" consumed "$work/oracle-all.tsv" "$work/consumed.tsv" read_uncommitted \
      "$work/tiered.tsv" "$1" | sed 's/ records equal/ keys and values byte-identical to the serializers'"'"' output/' | tee_results
  else
    tail -n 5 "$work/consume.err"; fail "$1" "E2eClient consume failed"
  fi
}
consume_bytes "consume from offset 0:"
java_client TypedClient decode --registry "$v3" --expected "$work/expected.jsonl" >"$work/decode.out" 2>"$work/decode.err"
tee_results <"$work/decode.out"
if grep -q 'TypedClient: FAILED' "$work/decode.err"; then
  tail -n 20 "$work/decode.err" >&2; fail "decode" "TypedClient decode failed: $(grep -m1 'TypedClient: FAILED' "$work/decode.err" | cut -c1-300)"
fi
java_client ProtoJsonClient decode --registry "$v3" --expected "$work/expected-pj.jsonl" >"$work/decode-pj.out" 2>"$work/decode-pj.err"
tee_results <"$work/decode-pj.out"
if grep -q 'ProtoJsonClient: FAILED' "$work/decode-pj.err"; then
  tail -n 20 "$work/decode-pj.err" >&2; fail "decode" "ProtoJsonClient decode failed: $(grep -m1 'ProtoJsonClient: FAILED' "$work/decode-pj.err" | cut -c1-300)"
fi

# ---- 6. the tables
check_table() { bg python3 "$here/check_typed.py" "$@" | tee_results; }
check_table schema "$warehouse" typed_orders 3
check_table schema "$warehouse" typed_latest 1
# typed_proto and typed_json: 300 values in three schema versions, in few segments; the first
# segment holds two versions, merged in one schema update: at least 2 schemas.
check_table schema "$warehouse" typed_proto 2
check_table schema "$warehouse" typed_json 2
engines="pyiceberg duckdb"
if [ "$spark" = on ]; then engines="$engines spark"; fi
export CALVING_SPARK_JARS
CALVING_SPARK_JARS=$(ls "$TYPED"/spark/*.jar | paste -sd, -)
for topic in ${topics//,/ }; do
  for engine in $engines; do
    t0=$(date +%s)
    case $topic in typed_proto|typed_json) expected="$work/expected-pj.jsonl" ;; *) expected="$work/expected.jsonl" ;; esac
    check_table table "$expected" "$work/tiered.tsv" "$warehouse" "$topic" "$engine" "table"
    say "$engine read kafka.$topic in $(($(date +%s) - t0)) s"
  done
done

# ---- 7. without the registry
stop_registry
if broker_stop && broker_start; then
  step "registry stopped, broker restarted"
  consume_bytes "consume without the registry, after a restart:"
else
  fail "broker restart without the registry" "see $BROKER_LOG"
fi

# ---- 8. broker log and shutdown
check_broker_log
if broker_stop; then pass "broker stopped cleanly"; else fail "broker stop" "no clean shutdown"; fi

summary typed "$started"
