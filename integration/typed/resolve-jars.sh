#!/usr/bin/env bash
# Resolve the jars of the typed end-to-end run (integration/typed/run.sh) from Maven Central, and
# print their directory as the LAST line of stdout:
#
#   TYPED=$(integration/typed/resolve-jars.sh | tail -n1)
#   $TYPED/serde/*   Apicurio Registry's Kafka Avro serde 3.0.2 and its dependencies, less what the
#                    Kafka 4.1.2 class path already has (see pom.xml beside this script)
#   $TYPED/serde-pj/* Apicurio's Kafka serdes for Protobuf and JSON Schema 3.1.7 and their
#                    dependencies, likewise (pom-protobuf-json.xml: a class path of their own)
#   $TYPED/spark/*   Apache Iceberg's Spark runtime (iceberg-spark-runtime-3.5_2.12) and the SQLite
#                    JDBC driver (org.xerial:sqlite-jdbc), for pyspark's spark.jars
#
# Target directory: $CALVING_TYPED_LIBS, default $HOME/.cache/calving/typed-e2e. Idempotent: a stamp
# file holds the sha256 of this script and pom.xml; later runs with the same inputs return at once
# without Maven. Concurrent runs are serialised with flock(1) when it is available.
#
# Needs: mvn (3.x) able to reach Maven Central (or a populated ~/.m2). Maven runs with
# maven-settings.xml (a mirror of every repository to Maven Central: Apicurio's parent POM names
# others). Extra Maven arguments in $CALVING_MVN_ARGS. Maven's output goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="${CALVING_TYPED_LIBS:-$HOME/.cache/calving/typed-e2e}"
iceberg_spark="org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.1"
sqlite_jdbc="org.xerial:sqlite-jdbc:3.50.3.0"
stamp="$dir/.calving-resolved"

die() { echo "typed/resolve-jars.sh: error: $*" >&2; exit 1; }

command -v sha256sum >/dev/null || die "sha256sum not found"
sum=$(cat "${BASH_SOURCE[0]}" "$here/pom.xml" "$here/pom-protobuf-json.xml" "$here/maven-settings.xml" | sha256sum | cut -d' ' -f1)

complete() {
  [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$sum" ] \
    && compgen -G "$dir/serde/apicurio-registry-avro-serde-kafka-*.jar" >/dev/null \
    && compgen -G "$dir/serde/avro-1.*.jar" >/dev/null \
    && compgen -G "$dir/serde-pj/apicurio-registry-protobuf-serde-kafka-*.jar" >/dev/null \
    && compgen -G "$dir/serde-pj/apicurio-registry-jsonschema-serde-kafka-*.jar" >/dev/null \
    && compgen -G "$dir/serde-pj/protobuf-java-*.jar" >/dev/null \
    && compgen -G "$dir/spark/iceberg-spark-runtime-*.jar" >/dev/null \
    && compgen -G "$dir/spark/sqlite-jdbc-*.jar" >/dev/null
}

if complete; then echo "$dir"; exit 0; fi

command -v mvn >/dev/null || die "mvn (Apache Maven) not found on PATH"
mkdir -p "$dir"
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9 || die "cannot lock $dir/.lock"
  if complete; then echo "$dir"; exit 0; fi
fi

tmp=$(mktemp -d "$dir/.resolving.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mvn_() {
  # shellcheck disable=SC2086
  mvn -q -B -s "$here/maven-settings.xml" ${CALVING_MVN_ARGS:-} "$@" >&2
}
echo "typed/resolve-jars.sh: resolving the Apicurio Avro, Protobuf and JSON Schema serdes, Iceberg's Spark runtime and sqlite-jdbc into $dir ..." >&2
mvn_ -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/serde" \
  || die "mvn could not resolve $here/pom.xml (no network or no Maven Central?)"
mvn_ -f "$here/pom-protobuf-json.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/serde-pj" \
  || die "mvn could not resolve $here/pom-protobuf-json.xml (no network or no Maven Central?)"
for a in "$iceberg_spark" "$sqlite_jdbc"; do
  mvn_ dependency:copy -Dartifact="$a" -DoutputDirectory="$tmp/spark" || die "mvn could not fetch $a"
done

rm -rf "$dir/serde" "$dir/serde-pj" "$dir/spark" "$stamp"
mv "$tmp/serde" "$tmp/serde-pj" "$tmp/spark" "$dir/"
{ echo "$sum"; date -u +%FT%TZ; (cd "$dir" && ls -1 serde serde-pj spark); } >"$stamp"
complete || die "resolution finished but jars are missing from $dir"
echo "typed/resolve-jars.sh: $(ls "$dir/serde" | wc -l) + $(ls "$dir/serde-pj" | wc -l) serde jars, $(ls "$dir/spark" | wc -l) Spark jars in $dir" >&2
echo "$dir"
