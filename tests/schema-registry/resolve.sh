#!/usr/bin/env bash
# Resolve Apicurio Registry 3.0.9 (a real Schema Registry that serves the Confluent API under
# /apis/ccompat/v7) from Maven Central, unpack it, and print the path of its runner jar as the
# LAST line of stdout:
#
#   JAR=$(tests/schema-registry/resolve.sh | tail -n1)
#   java -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=8081 -jar "$JAR"
#
# The artifact: io.apicurio:apicurio-registry-app:3.0.9:tar.gz:all (the app module's assembly,
# deployed to Maven Central): a Quarkus "legacy-jar" layout, apicurio-registry-app-3.0.9-runner.jar
# plus lib/. Storage defaults to an in-memory H2 database, so nothing outlives the process.
# 3.0.9 is the newest release built for Java 17 (3.3.x needs Java 21; the 2.x line is older).
#
# Target directory: $CALVING_APICURIO_HOME, default $HOME/.cache/calving/apicurio-registry-3.0.9.
# Idempotent: once unpacked, a stamp file makes later runs return at once without Maven.
# Concurrent runs are serialised with flock(1) when it is available.
#
# Needs: mvn (3.x) able to reach Maven Central (or a populated ~/.m2), tar, Java 17+ to run it.
# Extra Maven arguments (e.g. -o) can be passed in $CALVING_MVN_ARGS. Maven's output goes to
# stderr, so stdout carries only the jar path. Exit status non-zero with a message on failure.
set -euo pipefail

version=3.0.9
artifact="io.apicurio:apicurio-registry-app:${version}:tar.gz:all"
dir="${CALVING_APICURIO_HOME:-$HOME/.cache/calving/apicurio-registry-${version}}"
jar="$dir/apicurio-registry-app-${version}-runner.jar"
stamp="$dir/.calving-resolved"

die() { echo "resolve.sh: error: $*" >&2; exit 1; }

if [ -f "$stamp" ] && [ -f "$jar" ] && [ -d "$dir/lib" ]; then
  echo "$jar"
  exit 0
fi

command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
mkdir -p "$dir"

resolve() {
  if [ -f "$stamp" ] && [ -f "$jar" ]; then return 0; fi
  local tmp
  tmp=$(mktemp -d "$dir/.download.XXXXXX")
  # shellcheck disable=SC2086
  if ! mvn -B -q ${CALVING_MVN_ARGS:-} dependency:copy -Dartifact="$artifact" \
      -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "Maven could not fetch $artifact"
  fi
  local tgz="$tmp/apicurio-registry-app-${version}-all.tar.gz"
  [ -f "$tgz" ] || { rm -rf "$tmp"; die "Maven did not produce $tgz"; }
  rm -rf "$dir/lib" "$jar"
  tar -xzf "$tgz" -C "$dir" || { rm -rf "$tmp"; die "cannot unpack $tgz"; }
  rm -rf "$tmp"
  [ -f "$jar" ] || die "the archive has no $(basename "$jar")"
  date -u +%FT%TZ > "$stamp"
}

if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
fi
resolve
echo "$jar"
