#!/usr/bin/env bash
# The end-to-end run (integration/e2e/run.sh) on every supported Apache Kafka version, one after the
# other, then a table: version, passed, failed, seconds.
#
#   integration/kafka/versions.sh                 # 3.9.2 4.0.2 4.1.2 4.2.2 4.3.2 4.4.0
#   integration/kafka/versions.sh 3.9.2 4.4.0     # only these
#
# Each version's jars are resolved on first use (integration/kafka/resolve-jars.sh, Maven Central,
# cached under ~/.cache/calving/kafka-<version>/libs); CALVING_KAFKA_LIBS is ignored (one directory
# per version). Every other CALVING_E2E_* / CALVING_JAR setting goes through to run.sh. Each run's
# output is shown and kept in <logs>/e2e-<version>.txt (<logs>: $CALVING_VERSIONS_LOGS, default a
# new temporary directory, named at the end). A run that ends before any FAIL line (no broker, no
# jar) counts as one failure. Exit status 1 when any version failed. Needs what run.sh needs
# (tests/install-deps.sh, `gradle --no-daemon -q jar`); about 4 min per version.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.9.2 4.0.2 4.1.2 4.2.2 4.3.2 4.4.0)
logs=${CALVING_VERSIONS_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/calving-versions.XXXXXX")}
mkdir -p "$logs" || { echo "versions.sh: cannot create $logs" >&2; exit 2; }
unset CALVING_KAFKA_LIBS

rows=()
any_failed=0
for v in "${versions[@]}"; do
  echo "== Kafka $v: integration/e2e/run.sh"
  out="$logs/e2e-$v.txt"
  t0=$(date +%s)
  rc=0
  CALVING_KAFKA_VERSION=$v "$root/integration/e2e/run.sh" 2>&1 | tee "$out" || rc=$?
  seconds=$(($(date +%s) - t0))
  passed=$(grep -c '^PASS' "$out" || true)
  failed=$(grep -c '^FAIL' "$out" || true)
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
  [ "$failed" = 0 ] || any_failed=1
  rows+=("$(printf '%-8s %6s %6s %7s' "$v" "$passed" "$failed" "$seconds")")
done

echo "== Kafka versions: integration/e2e/run.sh (logs: $logs)"
printf '%-8s %6s %6s %7s\n' version passed failed seconds
printf '%s\n' "${rows[@]}"
exit "$any_failed"
