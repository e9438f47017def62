#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, property and Kafka-oracle tests, which run Apache
# Kafka's own DumpLogSegments and record parser on real segment fixtures), then the Java shim
# (Gradle, JUnit 4), then the end-to-end checks on a real Kafka 4.1.2 broker with the plugin jar
# (integration/e2e/run.sh, then integration/typed/run.sh for typed tables with a real Schema Registry,
# then integration/maintain/run.sh for Iceberg maintenance by Spark and pyiceberg, then
# integration/cluster/run.sh for three brokers on one REST catalog and S3 warehouse: each of their
# PASS/FAIL lines counts as one test). Ends with one summary line "N passed, N failed".
#
# Prerequisites: tests/install-deps.sh (gradle, Kafka jars). Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
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

echo "== End to end: integration/e2e/run.sh (a real Kafka 4.1.2 broker with the plugin jar)"
e2e_rc=0
integration/e2e/run.sh 2>&1 | tee "$logs/e2e.txt" || e2e_rc=$?
e2e_passed=$(grep -c '^PASS' "$logs/e2e.txt" || true)
e2e_failed=$(grep -c '^FAIL' "$logs/e2e.txt" || true)
# A harness error (no jar, no broker) ends run.sh before any FAIL line: count it as one failure.
if [ "$e2e_rc" != 0 ] && [ "$e2e_failed" = 0 ]; then e2e_failed=1; fi

echo "== Typed tables end to end: integration/typed/run.sh (Apicurio Registry, Apicurio's Avro serde, the broker; pyiceberg, DuckDB, Spark)"
typed_rc=0
integration/typed/run.sh 2>&1 | tee "$logs/typed.txt" || typed_rc=$?
typed_passed=$(grep -c '^PASS' "$logs/typed.txt" || true)
typed_failed=$(grep -c '^FAIL' "$logs/typed.txt" || true)
if [ "$typed_rc" != 0 ] && [ "$typed_failed" = 0 ]; then typed_failed=1; fi

echo "== Table maintenance by other engines: integration/maintain/run.sh (Spark's rewrite_data_files, rewrite_manifests, expire_snapshots, remove_orphan_files and pyiceberg's expire_snapshots on a real broker's tables)"
maint_rc=0
# The `calving` binary cargo test has just built (for the re-upload through `calving convert`).
cli="${CARGO_TARGET_DIR:-$root/target}/debug/calving"
[ -x "$cli" ] || cli=""
CALVING_CLI=$cli integration/maintain/run.sh 2>&1 | tee "$logs/maintain.txt" || maint_rc=$?
maint_passed=$(grep -c '^PASS' "$logs/maintain.txt" || true)
maint_failed=$(grep -c '^FAIL' "$logs/maintain.txt" || true)
if [ "$maint_rc" != 0 ] && [ "$maint_failed" = 0 ]; then maint_failed=1; fi

echo "== Several brokers: integration/cluster/run.sh (3 KRaft nodes committing into one table through one REST catalog, warehouse on a loopback S3 server)"
cluster_rc=0
integration/cluster/run.sh 2>&1 | tee "$logs/cluster.txt" || cluster_rc=$?
cluster_passed=$(grep -c '^PASS' "$logs/cluster.txt" || true)
cluster_failed=$(grep -c '^FAIL' "$logs/cluster.txt" || true)
if [ "$cluster_rc" != 0 ] && [ "$cluster_failed" = 0 ]; then cluster_failed=1; fi
e2e_passed=$((e2e_passed + typed_passed + maint_passed + cluster_passed))
e2e_failed=$((e2e_failed + typed_failed + maint_failed + cluster_failed))

rust_passed=$(grep -Eo '[0-9]+ passed' "$logs/cargo.txt" | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' "$logs/cargo.txt" | awk '{s+=$1} END {print s+0}')
java_total=$(cat build/test-results/test/TEST-*.xml 2>/dev/null | grep -Eo '<testsuite [^>]*' | grep -Eo ' tests="[0-9]+"' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
java_failed=$(cat build/test-results/test/TEST-*.xml 2>/dev/null | grep -Eo '<testsuite [^>]*' | grep -Eo ' (failures|errors)="[0-9]+"' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo "Rust: $rust_passed passed, $rust_failed failed; Java: $((java_total - java_failed)) passed, $java_failed failed; end to end (incl. typed: $typed_passed passed, $typed_failed failed; maintenance: $maint_passed passed, $maint_failed failed; cluster: $cluster_passed passed, $cluster_failed failed): $e2e_passed passed, $e2e_failed failed"
echo "$((rust_passed + java_total - java_failed + e2e_passed)) passed, $((rust_failed + java_failed + e2e_failed)) failed"
[ $((rust_failed + java_failed + e2e_failed)) = 0 ]
