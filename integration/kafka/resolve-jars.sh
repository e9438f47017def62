#!/usr/bin/env bash
# Resolve the runtime jars of an Apache Kafka broker (kafka_2.13 + kafka-tools + the logging backend
# of its release: log4j2 for 4.x, log4j 1 through reload4j for 3.x) from Maven Central into one
# directory, and print that directory as the LAST line of stdout.
#
#   LIBS=$(integration/kafka/resolve-jars.sh | tail -n1)
#   java -cp "$LIBS/*" kafka.Kafka server.properties
#
# Version: $CALVING_KAFKA_VERSION, default 4.1.2 (tested: 3.9.2, 4.0.2, 4.1.2, 4.2.2, 4.3.2, 4.4.0;
# see integration/kafka/versions.sh). Target directory: $CALVING_KAFKA_LIBS, default
# $HOME/.cache/calving/kafka-<version>/libs.
# Idempotent: once a run completed, the directory holds a stamp file (.calving-resolved) with the
# sha256 of pom.xml and the version; later runs with the same pom and version return at once without
# calling Maven. A changed pom.xml or version or a missing/partial directory triggers a fresh
# resolution, which replaces every *.jar in the directory (so point CALVING_KAFKA_LIBS at a directory
# of its own). Concurrent runs are serialised with flock(1) when it is available.
#
# Needs: mvn (3.x) able to reach Maven Central (or a populated ~/.m2), sha256sum. Extra Maven
# arguments (e.g. -o for offline, -s settings.xml) can be passed in $CALVING_MVN_ARGS.
# Exit status: 0 on success; non-zero with a message on stderr on any failure.
# Maven's own output goes to stderr, so stdout carries only the directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom="$here/pom.xml"
version="${CALVING_KAFKA_VERSION:-4.1.2}"
libs="${CALVING_KAFKA_LIBS:-$HOME/.cache/calving/kafka-$version/libs}"
stamp_name=".calving-resolved"

die() { echo "resolve-jars.sh: error: $*" >&2; exit 1; }

[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CALVING_KAFKA_VERSION=$version is not a release version (x.y.z)"
[ -f "$pom" ] || die "missing $pom"
command -v sha256sum >/dev/null || die "sha256sum not found"
pom_sum=$({ cat "$pom"; echo "kafka.version=$version"; } | sha256sum | cut -d' ' -f1)

# Jars that must be present for the directory to count as complete (RemoteLogManager is in kafka_2.13
# up to 4.0, in kafka-storage from 4.1).
required=(
  "kafka_2.13-$version.jar"
  "kafka-clients-$version.jar"
  "kafka-tools-$version.jar"
  "kafka-storage-$version.jar"
  "kafka-server-$version.jar"
  "kafka-raft-$version.jar"
  "kafka-metadata-$version.jar"
  scala-library-2.13.*.jar
  slf4j-api-*.jar
)
mvn_props=(-Dkafka.version="$version")
case $version in
  3.*) required+=(reload4j-*.jar slf4j-reload4j-*.jar); mvn_props+=(-Dcalving.log4j1) ;;
  *) required+=(log4j-core-*.jar log4j-slf4j-impl-*.jar) ;;
esac

is_complete() {
  [ -f "$libs/$stamp_name" ] || return 1
  [ "$(head -n1 "$libs/$stamp_name")" = "$pom_sum" ] || return 1
  local pat f
  for pat in "${required[@]}"; do
    f=$(compgen -G "$libs/$pat" | head -n1 || true)
    [ -n "$f" ] || return 1
  done
  return 0
}

if is_complete; then
  echo "$libs"
  exit 0
fi

command -v mvn >/dev/null || die "mvn (Apache Maven) not found on PATH; it is needed to resolve the Kafka jars"
mkdir -p "$libs" || die "cannot create $libs"

# Serialise concurrent runs on the same directory.
if command -v flock >/dev/null; then
  exec 9>"$libs/.calving-resolve.lock"
  flock 9 || die "cannot lock $libs/.calving-resolve.lock"
  if is_complete; then   # another run finished while we waited
    echo "$libs"
    exit 0
  fi
fi

tmp=$(mktemp -d "$libs/.resolving.XXXXXX") || die "cannot create a temp dir in $libs"
trap 'rm -rf "$tmp"' EXIT

echo "resolve-jars.sh: resolving Kafka $version runtime jars into $libs (Maven Central) ..." >&2
# shellcheck disable=SC2086  # CALVING_MVN_ARGS is intentionally word-split
if ! mvn -q -B -f "$pom" "${mvn_props[@]}" ${CALVING_MVN_ARGS:-} \
      dependency:copy-dependencies -DoutputDirectory="$tmp" >&2; then
  die "mvn dependency:copy-dependencies failed for $pom, Kafka $version (see Maven output above); no network or no Maven Central?"
fi

for pat in "${required[@]}"; do
  compgen -G "$tmp/$pat" >/dev/null || die "Maven finished but $pat is missing from the resolved jars"
done

# Replace the jars of any earlier (partial or outdated) run, then stamp.
rm -f "$libs/$stamp_name"
find "$libs" -maxdepth 1 -type f -name '*.jar' -delete
mv "$tmp"/*.jar "$libs"/ || die "cannot move jars into $libs"
{
  echo "$pom_sum"
  echo "resolved $(date -u +%Y-%m-%dT%H:%M:%SZ) from $pom, Kafka $version"
  (cd "$libs" && ls -1 -- *.jar)
} > "$libs/$stamp_name.tmp"
mv "$libs/$stamp_name.tmp" "$libs/$stamp_name"

echo "resolve-jars.sh: $(ls -1 "$libs"/*.jar | wc -l) jars of Kafka $version in $libs" >&2
echo "$libs"
