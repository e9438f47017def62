#!/usr/bin/env bash
# Start Apicurio Registry (see resolve.sh) on 127.0.0.1 and wait until its Confluent API answers.
#
#   tests/schema-registry/start.sh PORT [LOGFILE]        # prints the PID as the last line
#   kill "$PID"                                           # stops it (in-memory: nothing to clean)
#
# The Confluent-compatible API is then http://127.0.0.1:PORT/apis/ccompat/v7.
# Basic auth: set CALVING_REGISTRY_USER=name:password to require it on /apis/* (Quarkus' embedded
# users realm, which Apicurio's build enables).
# Extra JVM or Quarkus options: $CALVING_REGISTRY_OPTS (e.g. -Dquarkus.http.access-log.enabled=false).
# Waits at most $CALVING_REGISTRY_WAIT seconds (default 90); typical start is 5-10 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port="${1:?usage: start.sh PORT [LOGFILE]}"
log="${2:-/dev/null}"
wait_s="${CALVING_REGISTRY_WAIT:-90}"
jar=$("$here/resolve.sh" | tail -n1)

opts=(-Xmx384m -XX:TieredStopAtLevel=1 -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$port")
if [ -n "${CALVING_REGISTRY_USER:-}" ]; then
  user=${CALVING_REGISTRY_USER%%:*}
  password=${CALVING_REGISTRY_USER#*:}
  opts+=(-Dquarkus.http.auth.basic=true
         -Dquarkus.security.users.embedded.plain-text=true
         "-Dquarkus.security.users.embedded.users.$user=$password"
         "-Dquarkus.http.auth.permission.calving.paths=/apis/*"
         -Dquarkus.http.auth.permission.calving.policy=authenticated)
fi
# shellcheck disable=SC2206
extra=(${CALVING_REGISTRY_OPTS:-})

java "${opts[@]}" "${extra[@]}" -jar "$jar" >"$log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port/apis/ccompat/v7/subjects"
deadline=$((SECONDS + wait_s))
until code=$(curl -s -o /dev/null -w '%{http_code}' "$url") && [ "$code" != 000 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: error: the registry exited; see $log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    kill "$pid" 2>/dev/null || true
    echo "start.sh: error: no answer on $url within ${wait_s}s; see $log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "$pid"
