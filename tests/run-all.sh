#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, property and Kafka-oracle tests, which run Apache
# Kafka's own DumpLogSegments and record parser on real segment fixtures), then the Java shim
# (Gradle, JUnit 4), then the end-to-end checks on a real Kafka broker with the plugin jar
# (integration/e2e/run.sh on the oldest and the newest supported Kafka, 3.9.2 and 4.4.0; then, on
# Kafka 4.1.2, integration/typed/run.sh for typed tables with a real Schema Registry,
# then integration/maintain/run.sh for Iceberg maintenance by Spark and pyiceberg, then
# integration/cluster/run.sh for three brokers on one REST catalog and S3 warehouse, and again on
# the SQL catalog on PostgreSQL (integration/cluster/run.sh postgres), then
# integration/cluster/faults.sh for the same cluster under faults: each of their
# PASS/FAIL lines counts as one test). Ends with one summary line "N passed, N failed".
#
# Prerequisites: tests/install-deps.sh (gradle, Kafka jars). Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Every suite names its Kafka version (4.1.2 when it names none): none comes from the environment.
unset CALVING_KAFKA_VERSION
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "== Rust: cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee "$logs/cargo.txt"

echo "== Java: gradle test jar"
rm -rf build/test-results
if ! gradle --no-daemon -q test jar >"$logs/gradle.txt" 2>&1; then
  cat "$logs/gradle.txt"
  echo "gradle test jar failed"
  exit 1
fi
# Debian's launcher prints `java -version` on every start; JDK 17 warns about the test worker's
# SecurityManager. Neither is ours.
grep -v -e '^openjdk version' -e '^OpenJDK ' -e 'SecurityManager' -e '^WARNING: A terminally deprecated' -e '^WARNING: Please consider reporting' "$logs/gradle.txt" || true

# Runs one end-to-end suite (<name> <title> <command...>): its output is shown and kept in
# $logs/<name>.txt; sets <name>_passed and <name>_failed from its PASS/FAIL lines. A harness
# error (no jar, no broker) ends a suite before any FAIL line: it counts as one failure.
suite() {
  local name=$1 title=$2 rc=0 passed failed
  shift 2
  echo "== $title"
  "$@" 2>&1 | tee "$logs/$name.txt" || rc=$?
  passed=$(grep -c '^PASS' "$logs/$name.txt" || true)
  failed=$(grep -c '^FAIL' "$logs/$name.txt" || true)
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
  printf -v "${name}_passed" %s "$passed"
  printf -v "${name}_failed" %s "$failed"
}

# The oldest and the newest supported Kafka (integration/kafka/versions.sh runs every version).
suite e2e_39 "End to end on Kafka 3.9.2: integration/e2e/run.sh (a real broker with the plugin jar; 1 MiB segments)" \
  env CALVING_KAFKA_VERSION=3.9.2 integration/e2e/run.sh
suite e2e_44 "End to end on Kafka 4.4.0: integration/e2e/run.sh (a real broker with the plugin jar; 128 KiB segments)" \
  env CALVING_KAFKA_VERSION=4.4.0 integration/e2e/run.sh
suite typed "Typed tables end to end: integration/typed/run.sh (Apicurio Registry, Apicurio's Avro, Protobuf and JSON Schema serdes, the broker; pyiceberg, DuckDB, Spark)" \
  integration/typed/run.sh
# The `calving` binary cargo test has just built (for the re-upload through `calving convert`).
cli="${CARGO_TARGET_DIR:-$root/target}/debug/calving"
[ -x "$cli" ] || cli=""
suite maint "Table maintenance by other engines: integration/maintain/run.sh (Spark's rewrite_data_files, rewrite_manifests, expire_snapshots, remove_orphan_files and pyiceberg's expire_snapshots on a real broker's tables)" \
  env CALVING_CLI="$cli" integration/maintain/run.sh
suite cluster "Several brokers: integration/cluster/run.sh (3 KRaft nodes committing into one table through one REST catalog, warehouse on a loopback S3 server)" \
  integration/cluster/run.sh
suite cluster_pg "Several brokers on PostgreSQL: integration/cluster/run.sh postgres (the same, the SQL catalog on a throwaway PostgreSQL)" \
  env CALVING_CLI="$cli" integration/cluster/run.sh postgres
suite faults "Faults: integration/cluster/faults.sh (the 3 brokers under kill -9s, leader elections, a reassignment, a wiped log dir, S3 and catalog outages, producers writing; then the sweep)" \
  env CALVING_CLI="$cli" integration/cluster/faults.sh
# shellcheck disable=SC2154 # set by suite
e2e_passed=$((e2e_39_passed + e2e_44_passed + typed_passed + maint_passed + cluster_passed + cluster_pg_passed + faults_passed))
# shellcheck disable=SC2154
e2e_failed=$((e2e_39_failed + e2e_44_failed + typed_failed + maint_failed + cluster_failed + cluster_pg_failed + faults_failed))

rust_passed=$(grep -Eo '[0-9]+ passed' "$logs/cargo.txt" | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' "$logs/cargo.txt" | awk '{s+=$1} END {print s+0}')
java_total=$(cat build/test-results/test/TEST-*.xml 2>/dev/null | grep -Eo '<testsuite [^>]*' | grep -Eo ' tests="[0-9]+"' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
# A skipped JUnit test is neither passed nor failed.
java_skipped=$(cat build/test-results/test/TEST-*.xml 2>/dev/null | grep -Eo '<testsuite [^>]*' | grep -Eo ' skipped="[0-9]+"' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
java_total=$((java_total - java_skipped))
java_failed=$(cat build/test-results/test/TEST-*.xml 2>/dev/null | grep -Eo '<testsuite [^>]*' | grep -Eo ' (failures|errors)="[0-9]+"' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo "Rust: $rust_passed passed, $rust_failed failed; Java: $((java_total - java_failed)) passed, $java_failed failed, $java_skipped skipped; end to end (e2e on Kafka 3.9.2: $e2e_39_passed passed, $e2e_39_failed failed; e2e on Kafka 4.4.0: $e2e_44_passed passed, $e2e_44_failed failed; typed: $typed_passed passed, $typed_failed failed; maintenance: $maint_passed passed, $maint_failed failed; cluster: $cluster_passed passed, $cluster_failed failed; cluster on PostgreSQL: $cluster_pg_passed passed, $cluster_pg_failed failed; faults: $faults_passed passed, $faults_failed failed): $e2e_passed passed, $e2e_failed failed"
echo "$((rust_passed + java_total - java_failed + e2e_passed)) passed, $((rust_failed + java_failed + e2e_failed)) failed"
[ $((rust_failed + java_failed + e2e_failed)) = 0 ]
