#!/usr/bin/env bash
# Calving on a cluster: three Apache Kafka 4.1.2 nodes (KRaft, each broker and controller) on
# 127.0.0.1 with the plugin jar, one shared warehouse on a loopback S3 server (moto) and one
# Iceberg REST catalog (Apache Iceberg's fixture), every broker committing into the same table.
# With CALVING_CLUSTER_CATALOG=postgres (or the argument `postgres`) the catalog is instead the SQL
# catalog on a throwaway PostgreSQL on 127.0.0.1 (integration/kafka/postgres.sh; catalog.type=sql,
# catalog.uri=postgresql://…), the warehouse still on moto's S3.
#
#   integration/cluster/run.sh [postgres]   (after tests/install-deps.sh and `gradle --no-daemon -q jar`)
#
# Steps, each ending in lines "PASS <name>" or "FAIL <name>: <why>":
#   1. moto + the REST fixture (or PostgreSQL, then eight CLI processes opening the fresh SQL
#      catalog at once, as brokers starting together do: none may fail); three nodes with the plugin (catalog.type=rest or
#      sql, warehouse s3://calving/wh), remote log metadata topic with replication factor 3, two copier threads
#      per broker (copies of one table arrive from every broker at once);
#   2. one topic of 12 partitions, replication factor 3, min.insync.replicas=2, 64 KiB segments
#      (internal.segment.bytes); idempotent producers (acks=all) interleaved with transactions,
#      every third aborted (integration/maintain/MaintainClient.java produce);
#   3. wait until every rolled segment was copied and every replica deleted it locally;
#   4. consume everything from offset 0 under read_uncommitted and read_committed: every
#      acknowledged record back, in order, nothing lost (integration/e2e/check.py consumed);
#   5. the table, read by pyiceberg through the REST catalog (its SqlCatalog on PostgreSQL) and by
#      DuckDB (the metadata file the catalog names, on S3 through httpfs): every tiered record
#      once, no (topic id, partition, offset) twice (check.py table);
#   6. the plugin's JMX metrics of every broker (Kafka's JmxTool): the copies the brokers logged
#      were all committed, none failed, and the commits, segments per commit and conflicts retried
#      are printed;
#   7. no ERROR from the remote log subsystem in any broker log; clean shutdown.
# Ends with "cluster: N passed, N failed" ("cluster-pg: …" on PostgreSQL); exit status 1 when anything failed. The work directory
# is kept on failure, or always with CALVING_KEEP_WORK=1.
#
# Env: CALVING_CLUSTER_CATALOG (rest, the default, or postgres), CALVING_JAR, CALVING_CLUSTER_RECORDS (records per partition, default 120),
# CALVING_CLUSTER_TIMEOUT (watchdog, default 900 s), CALVING_KAFKA_LIBS.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}
records=${CALVING_CLUSTER_RECORDS:-120}
timeout=${CALVING_CLUSTER_TIMEOUT:-900}
topic=cluster_orders
catalog=${1:-${CALVING_CLUSTER_CATALOG:-rest}}
case "$catalog" in
  rest) label=cluster ;;
  postgres) label=cluster-pg ;;
  *) echo "cluster: unknown catalog $catalog (rest or postgres)" >&2; exit 2 ;;
esac

say() { echo "$label: $*" >&2; }
die() { echo "$label: error: $*" >&2; exit 2; }

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1) || die "could not resolve the Kafka jars"
# shellcheck source=../kafka/harness.sh
. "$root/integration/kafka/harness.sh"
# shellcheck source=../kafka/cluster.sh
. "$root/integration/kafka/cluster.sh"
# shellcheck source=../kafka/rest-s3.sh
. "$root/integration/kafka/rest-s3.sh"
# shellcheck source=../kafka/postgres.sh
. "$root/integration/kafka/postgres.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/calving-$label.XXXXXX")
results_init "$work/results.txt"
client_pid=""
started=$(date +%s)

on_exit() {
  [ -z "$client_pid" ] || kill -TERM "$client_pid" 2>/dev/null
  cluster_kill
  rest_s3_stop
  pg_stop immediate
}
harness_traps "$label" "$work" " (node logs: $work/node*/server.log)" on_exit "interrupted" "terminated (watchdog after ${timeout} s?)"
start_watchdog "$timeout" "$label"

bg() { "$@" & client_pid=$!; wait "$client_pid"; local rc=$?; client_pid=""; return $rc; }
check() { bg python3 "$root/integration/e2e/check.py" "$@" | tee_results; }
java_client() {   # <class> <command> [args...]
  bg java -Xmx384m -XX:+UseSerialGC -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml" \
    -Dcalving.log.file="$work/clients.log" -cp "$work/classes:$LIBS/*" "$1" "$2" --bootstrap "$CLUSTER_BOOTSTRAP" "${@:3}"
}

[ -f "$jar" ] || die "no plugin jar at $jar (run: gradle --no-daemon -q jar)"
mkdir -p "$work/classes"
javac -nowarn -d "$work/classes" -cp "$LIBS/*" "$root/integration/e2e/E2eClient.java" \
  "$root/integration/maintain/MaintainClient.java" 2>"$work/javac.out" \
  || { cat "$work/javac.out" >&2; die "the clients do not compile"; }

# ---- 1. shared storage and catalog; three nodes
if [ "$catalog" = postgres ]; then
  s3_start "$work/rest-s3" || die "moto did not start"
  pg_start 100 || die "PostgreSQL did not start"
  catalog_uri=$PG_URI
  catalog_props=(rsm.config.catalog.type=sql "rsm.config.catalog.uri=$PG_URI")
  catalog_shown="SQL catalog on PostgreSQL $PG_URI"
  # Every broker opening the catalog creates its tables if missing; PostgreSQL lets concurrent
  # `CREATE TABLE IF NOT EXISTS` collide. Eight processes open the fresh catalog at once (the CLI,
  # through the brokers' code path) and must all succeed, before the brokers do the same.
  target=${CARGO_TARGET_DIR:-$HOME/.cache/calving/target}
  cli=${CALVING_CLI:-}
  [ -n "$cli" ] || for c in "$target/debug/calving" "$target/release/calving"; do [ -x "$c" ] && { cli=$c; break; }; done
  [ -n "$cli" ] || die "no calving CLI under $target (cargo build -p calving-cli)"
  opens=()
  for i in 1 2 3 4 5 6 7 8; do
    "$cli" segments --warehouse "file://$work/open-race" -p catalog.type=sql -p "catalog.uri=$PG_URI" --topic none \
      >"$work/open-race.$i.log" 2>&1 &
    opens+=($!)
  done
  failed_opens=0
  for pid in "${opens[@]}"; do wait "$pid" || failed_opens=$((failed_opens + 1)); done
  if [ "$failed_opens" = 0 ]; then pass "8 processes opened the fresh SQL catalog at once, none failed creating its tables"
  else fail "concurrent catalog open" "$failed_opens of 8 failed: $(cat "$work"/open-race.*.log | sort -u | head -n 3)"; fi
else
  rest_s3_start "$work/rest-s3" || die "moto or the REST fixture did not start"
  catalog_uri=$REST_URI
  catalog_props=(rsm.config.catalog.type=rest "rsm.config.catalog.uri=$REST_URI")
  catalog_shown="REST catalog $REST_URI"
fi
extra="$work/extra.properties"
mapfile -t s3_props < <(sed 's/^/rsm.config./' <<<"$REST_S3_PROPS")
plugin_properties "$jar" unused \
  "rsm.config.warehouse=s3://calving/wh" "${catalog_props[@]}" "${s3_props[@]}" \
  rlmm.config.remote.log.metadata.topic.replication.factor=3 rlmm.config.remote.log.metadata.topic.num.partitions=3 \
  log.initial.task.delay.ms=500 remote.log.manager.copier.thread.pool.size=2 remote.log.reader.threads=4 >"$extra"
cluster_init "$work" "$LIBS" 3 "$extra" || die "cluster setup failed"
if cluster_start; then step "3 nodes started ($CLUSTER_BOOTSTRAP; $catalog_shown, warehouse s3://calving/wh on $S3_ENDPOINT)"
else fail "cluster start" "see $work/node*/server.log"; exit 1; fi

# ---- 2. workload
t0=$(date +%s)
if java_client MaintainClient produce --round 1 --topics "$topic" --partitions 12 --replication-factor 3 --min-isr 2 \
     --records "$records" --segment-bytes 65536 --oracle "$work/oracle.tsv" 2>"$work/produce.err"; then
  step "produce ($(wc -l <"$work/oracle.tsv") records acknowledged, $(cut -f6 "$work/oracle.tsv" | grep -c A) in aborted transactions, $(($(date +%s) - t0)) s)"
else
  tail -n 20 "$work/produce.err"; fail "produce" "MaintainClient produce failed"; exit 1
fi

# ---- 3. tiered and deleted locally on every replica
t0=$(date +%s)
if java_client E2eClient wait-tiered --log-dir "$CLUSTER_LOG_DIRS" --topics "$topic" --out "$work/tiered.tsv" \
     --timeout-s 300 2>"$work/wait.err"; then
  copied=0
  for log in $CLUSTER_LOGS; do copied=$((copied + $(grep -c 'Copied .* to remote storage' "$log" || true))); done
  pass "tiered: every rolled segment copied and deleted locally on every replica in $(($(date +%s) - t0)) s ($copied 'Copied' lines in the brokers' logs)"
else
  tail -n 5 "$work/wait.err"; fail "tiered" "segments not copied and deleted locally in 300 s"
  [ -f "$work/tiered.tsv" ] || exit 1
fi

# ---- 4. every acknowledged record back, under both isolation levels
for iso in read_uncommitted read_committed; do
  if java_client MaintainClient consume --topics "$topic" --isolation "$iso" --out "$work/consumed-$iso.tsv" 2>"$work/consume.err"; then
    say "$(grep '^consume' "$work/consume.err")"
    check consumed "$work/oracle.tsv" "$work/consumed-$iso.tsv" "$iso" "$work/tiered.tsv" "consume $iso"
  else
    tail -n 5 "$work/consume.err"; fail "consume $iso" "MaintainClient consume failed"
  fi
done

# ---- 5. the table, through the catalog
for engine in pyiceberg duckdb; do
  CALVING_READ_CATALOG="$catalog_uri" CALVING_READ_S3_PROPS="$REST_S3_PROPS" \
    check table "$work/oracle.tsv" "$work/tiered.tsv" s3://calving/wh "$topic" "$engine" "table"
done

# ---- 6. the brokers' metrics (the "Copied" lines counted first: each is logged after its copy
# returned, so the reads that follow include them all)
copied=0
for log in $CLUSTER_LOGS; do copied=$((copied + $(grep -c 'Copied .* to remote storage' "$log" || true))); done
jmx_files=()
for i in 1 2 3; do
  bg java -Xmx256m -cp "$LIBS/*" org.apache.kafka.tools.JmxTool --jmx-url "${NODE_JMX_URL[i]}" \
    --object-name 'io.calving:type=RemoteStorageManager,*' --one-time true --report-format properties \
    >"$work/jmx-$i.txt" 2>"$work/jmx.err" || tail -n 3 "$work/jmx.err" >&2
  jmx_files+=("$work/jmx-$i.txt")
done
check jmx-cluster "$copied" "JMX metrics of 3 brokers" "${jmx_files[@]}"

# ---- 7. logs and shutdown
for i in 1 2 3; do
  BROKER_LOG=${NODE_LOG[i]}
  # Kafka's own remote log metadata manager logs one ERROR per try while it creates its topic
  # with replication factor 3 before all three brokers registered; it retries until they have
  # (the tiering checks above show it did). Not from remote storage: left out.
  errors=$(grep -E '^\[[^]]*\] ERROR' "$BROKER_LOG" | grep -i -E 'remote|calving|rsm' \
    | grep -v -E 'Encountered error while (querying or )?creating __remote_log_metadata topic' || true)
  if [ -z "$errors" ]; then pass "node $i: no ERROR from remote storage in its log"
  else fail "node $i log" "$(echo "$errors" | wc -l) ERROR lines, first: $(echo "$errors" | head -n1 | cut -c1-400)"; fi
done
# One after the other: nodes 1 and 2 must stop cleanly; node 3, alone, has no controller quorum
# left to complete its controlled shutdown with (KRaft), so it gets 20 s and is not judged.
stopped=0
for i in 1 2; do node_stop "$i" 60 && stopped=$((stopped + 1)); done
node_stop 3 20 || true
if [ "$stopped" = 2 ]; then pass "nodes 1 and 2 stopped cleanly, one after the other"; else fail "cluster stop" "$((2 - stopped)) of nodes 1 and 2 needed SIGKILL"; fi
rest_s3_stop
pg_stop

summary "$label" "$started"
