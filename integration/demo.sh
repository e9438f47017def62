#!/usr/bin/env bash
# Calving in one command: sets up a fresh machine, builds the plugin jar, starts a real Apache Kafka
# 4.1.2 broker (single node, KRaft, 127.0.0.1 only) with the plugin on the embedded default (local
# warehouse + SQLite catalog), produces sample order events, shows them tiered into the Iceberg
# table and deleted from the broker's disk, consumes them back through Kafka (served from the
# table) and queries the table with DuckDB. Every step is printed; the broker stops at the end.
#
#   integration/demo.sh
#
# Needs: Rust (cargo), JDK 17, Maven, Python 3 (tests/install-deps.sh installs the rest: gradle,
# pyiceberg, DuckDB, the Kafka jars). Takes ~1 min once built (the first build of the native
# library takes several minutes). The warehouse stays in $CALVING_DEMO_DIR (default
# ${TMPDIR:-/tmp}/calving-demo, replaced on every run) for you to explore.
# Env: CALVING_DEMO_SKIP_SETUP=1 skips install-deps.sh and the jar build; CALVING_DEMO_EVENTS
# (default 40000).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${CALVING_DEMO_DIR:-${TMPDIR:-/tmp}/calving-demo}
events=${CALVING_DEMO_EVENTS:-40000}
topic=orders
jar=${CALVING_JAR:-$root/build/libs/calving-0.1.0-SNAPSHOT.jar}

bold=""; off=""
if [ -t 1 ]; then bold=$(printf '\033[1m'); off=$(printf '\033[0m'); fi
step() { echo; echo "${bold}==> $*${off}"; }
die() { echo "demo: error: $*" >&2; exit 1; }

if [ "${CALVING_DEMO_SKIP_SETUP:-0}" != 1 ]; then
  step "Setting up (tests/install-deps.sh) and building the plugin jar (gradle --no-daemon -q jar)"
  "$root/tests/install-deps.sh"
  (cd "$root" && gradle --no-daemon -q jar 2>&1 | grep -v -e '^openjdk version' -e '^OpenJDK ' || true)
fi
[ -f "$jar" ] || die "no plugin jar at $jar"
python3 -m zipfile -l "$jar" | grep -q libcalving || die "$jar holds no native library: the build did not include it"
echo "plugin jar: $jar ($(du -h "$jar" | cut -f1))"

LIBS=$("$root/integration/kafka/resolve-jars.sh" | tail -n1)
# shellcheck source=kafka/harness.sh
. "$root/integration/kafka/harness.sh"

rm -rf "$demo"
mkdir -p "$demo"
warehouse="$demo/warehouse"
say_failed() { [ "$1" = 0 ] || echo "demo: failed; broker log: $demo/server.log" >&2; }
harness_traps demo "" "" say_failed   # the demo directory stays
start_watchdog 900 demo "15 min"

kafka() { java -Xmx256m -XX:+UseSerialGC -Dlog4j2.configurationFile="$root/integration/kafka/log4j2.xml" \
  -Dcalving.log.file="$demo/tools.log" -cp "$LIBS/*" "$@"; }

step "Starting a Kafka 4.1.2 broker with Calving as its RemoteStorageManager"
plugin_properties "$jar" "$warehouse" >"$demo/calving.properties"
echo "broker properties added for Calving:"
sed 's/^/    /' "$demo/calving.properties"
broker_init "$demo" "$LIBS" "$demo/calving.properties"
broker_start
echo "broker up at $BROKER_BOOTSTRAP (log: $BROKER_LOG)"

step "Creating topic '$topic': remote.storage.enable=true, 1 MiB segments, local.retention.ms=1000"
kafka org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKER_BOOTSTRAP" --create --topic "$topic" \
  --partitions 1 --replication-factor 1 --config remote.storage.enable=true --config segment.bytes=1048576 \
  --config local.retention.ms=1000 --config retention.ms=-1

step "Producing $events order events with kafka-console-producer (key|json value)"
python3 - "$events" >"$demo/events.txt" <<'PY'
import json, random, sys
rnd = random.Random(7)
countries = ["DE", "FR", "NL", "IS", "NO", "CA", "JP", "BR"]
products = ["crampons", "ice axe", "parka", "tent", "stove", "rope", "goggles"]
for i in range(int(sys.argv[1])):
    ev = {"order_id": i, "customer": f"c{rnd.randint(1, 5000)}", "country": rnd.choice(countries),
          "product": rnd.choice(products), "amount": round(rnd.uniform(5, 400), 2)}
    print(f"{ev['customer']}|{json.dumps(ev)}")
PY
head -n 3 "$demo/events.txt" | sed 's/^/    /'
echo "    ..."
kafka org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" \
  --property parse.key=true --property key.separator='|' --producer-property linger.ms=20 <"$demo/events.txt"
echo "local segments after producing: $(ls "$BROKER_DATA/$topic-0" | grep -c '\.log$') .log files in $BROKER_DATA/$topic-0"

offsets() {   # earliest-local latest-tiered latest
  local spec
  for spec in -4 -5 -1; do
    kafka org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" --time "$spec" | cut -d: -f3
  done | paste -sd' '
}

step "Waiting for the broker to tier the rolled segments into the Iceberg table and delete them locally"
for i in $(seq 120); do
  read -r local_start tiered latest < <(offsets)
  nlogs=$(ls "$BROKER_DATA/$topic-0" | grep -c '\.log$')
  if [ "$nlogs" = 1 ] && [ "$local_start" -gt 0 ] && [ "$local_start" = $((tiered + 1)) ]; then break; fi
  sleep 1
done
[ "$nlogs" = 1 ] && [ "$local_start" -gt 0 ] || die "segments not tiered after 120 s (see $BROKER_LOG)"
echo "copied to remote storage (broker log): $(grep -c 'Copied .* to remote storage' "$BROKER_LOG") segments"
echo "local disk now holds one (active) segment: $(cd "$BROKER_DATA/$topic-0" && ls ./*.log | xargs -n1 basename)"
if [ "$local_start" -lt "$latest" ]; then
  echo "offsets 0..$tiered live only in the table; $local_start..$((latest - 1)) are still local (active segment)"
else
  echo "offsets 0..$tiered live only in the table; the local log is empty (once local.retention.ms"
  echo "expired, Kafka rolled the active segment too, and tiered it)"
fi
echo "warehouse ($warehouse):"
(cd "$warehouse" && find . -type f | grep -v -e '/metadata/' | sort | head -n 8 | sed 's/^/    /'; echo "    ... $(find . -name '*.parquet' | wc -l) Parquet files, $(find . -name '*.sidecar' | wc -l) sidecars, $(du -sh . | cut -f1)")

step "Consuming from offset 0 with kafka-console-consumer: Kafka serves these from the table"
kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" \
  --from-beginning --max-messages 3 --property print.offset=true --property print.key=true \
  --property print.timestamp=true 2>/dev/null | sed 's/^/    /'
n=$(kafka org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BROKER_BOOTSTRAP" --topic "$topic" \
  --from-beginning --max-messages "$latest" --timeout-ms 60000 2>/dev/null | wc -l)
echo "read back $n of $latest events through Kafka ($((tiered + 1)) of them from the Iceberg table)"
[ "$n" = "$latest" ] || die "expected $latest events"

step "Querying the table kafka.$topic with DuckDB (iceberg extension) while Kafka keeps serving it"
python3 - "$warehouse" "$topic" <<'PY'
import sqlite3, sys
import duckdb, duckdb_extensions
warehouse, topic = sys.argv[1:3]
(location,) = sqlite3.connect(f"{warehouse}/calving-catalog.db").execute(
    "select metadata_location from iceberg_tables where table_namespace='kafka' and table_name=?", (topic,)).fetchone()
print(f"    metadata: {location}")
duckdb_extensions.import_extension("avro")
duckdb_extensions.import_extension("iceberg")
con = duckdb.connect()
con.execute("LOAD avro")
con.execute("LOAD iceberg")
con.execute(f"CREATE VIEW orders AS SELECT * FROM iceberg_scan('{location}')")
q1 = "SELECT count(*) AS rows, min(kafka.offset) AS first_offset, max(kafka.offset) AS last_offset FROM orders"
q2 = """SELECT json_extract_string(decode(value), '$.country') AS country, count(*) AS orders,
       round(sum(CAST(json_extract(decode(value), '$.amount') AS DOUBLE)), 2) AS revenue
FROM orders GROUP BY 1 ORDER BY revenue DESC"""
for q in (q1, q2):
    print("    " + q.replace("\n", "\n    ") + ";")
    con.sql(q).show()
PY

step "Done"
cat <<EOF
The table stays in $warehouse. Read it with pyiceberg:
    from pyiceberg.catalog.sql import SqlCatalog
    catalog = SqlCatalog("calving", uri="sqlite:///$warehouse/calving-catalog.db", warehouse="file://$warehouse")
    catalog.load_table("kafka.$topic").scan().to_arrow()
Stopping the broker.
EOF
broker_stop
