#!/usr/bin/env bash
# Resolve Apache Iceberg's REST catalog test fixture (1.10.1) and its runtime from Maven Central,
# compile CalvingRestFixture.java against it, and print the Java classpath as the LAST line of
# stdout:
#
#   CP=$(rust/table/tests/rest-fixture/resolve-rest-fixture.sh | tail -n1)
#   CATALOG_URI=jdbc:sqlite:/tmp/x.db CATALOG_WAREHOUSE=file:///tmp/wh \
#     java -cp "$CP" org.apache.iceberg.rest.CalvingRestFixture
#
# Target directory: $CALVING_REST_FIXTURE_DIR, default $HOME/.cache/calving/iceberg-rest-fixture-1.10.1
# (libs/ for the jars, classes/ for the launcher). Idempotent: a stamp file holds the sha256 of
# pom.xml and CalvingRestFixture.java; later runs with the same inputs return at once without
# calling Maven or javac. Concurrent runs are serialised with flock(1) when it is available.
#
# Needs: mvn (3.x) able to reach Maven Central (or a populated ~/.m2), javac 17+, sha256sum.
# Extra Maven arguments (e.g. -o) can be passed in $CALVING_MVN_ARGS. Maven's output goes to
# stderr, so stdout carries only the classpath. Exit status non-zero with a message on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom="$here/pom.xml"
src="$here/CalvingRestFixture.java"
dir="${CALVING_REST_FIXTURE_DIR:-$HOME/.cache/calving/iceberg-rest-fixture-1.10.1}"
stamp="$dir/.calving-resolved"

die() { echo "resolve-rest-fixture.sh: error: $*" >&2; exit 1; }

[ -f "$pom" ] || die "missing $pom"
[ -f "$src" ] || die "missing $src"
command -v sha256sum >/dev/null || die "sha256sum not found"
sum=$(cat "$pom" "$src" | sha256sum | cut -d' ' -f1)
classpath="$dir/classes:$dir/libs/*"

required=(
  iceberg-open-api-1.10.1-test-fixtures.jar
  iceberg-core-1.10.1.jar
  iceberg-core-1.10.1-tests.jar
  jetty-server-11.*.jar
  sqlite-jdbc-*.jar
  hadoop-client-api-*.jar
  iceberg-aws-1.10.1.jar
  iceberg-aws-bundle-1.10.1.jar
)

is_complete() {
  [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$sum" ] || return 1
  [ -f "$dir/classes/org/apache/iceberg/rest/CalvingRestFixture.class" ] || return 1
  local pat
  for pat in "${required[@]}"; do
    compgen -G "$dir/libs/$pat" >/dev/null || return 1
  done
}

if is_complete; then echo "$classpath"; exit 0; fi

command -v mvn >/dev/null || die "mvn (Apache Maven) not found on PATH; it resolves the fixture jars"
command -v javac >/dev/null || die "javac (JDK 17) not found on PATH"
mkdir -p "$dir" || die "cannot create $dir"
if command -v flock >/dev/null; then
  exec 9>"$dir/.calving-resolve.lock"
  flock 9 || die "cannot lock $dir/.calving-resolve.lock"
  if is_complete; then echo "$classpath"; exit 0; fi
fi

tmp=$(mktemp -d "$dir/.resolving.XXXXXX") || die "cannot create a temp dir in $dir"
trap 'rm -rf "$tmp"' EXIT

echo "resolve-rest-fixture.sh: resolving the Iceberg 1.10.1 REST fixture into $dir (Maven Central) ..." >&2
# shellcheck disable=SC2086  # CALVING_MVN_ARGS is intentionally word-split
mvn -q -B -f "$pom" ${CALVING_MVN_ARGS:-} dependency:copy-dependencies -DoutputDirectory="$tmp/libs" >&2 \
  || die "mvn dependency:copy-dependencies failed for $pom (see Maven output above); no network or no Maven Central?"
for pat in "${required[@]}"; do
  compgen -G "$tmp/libs/$pat" >/dev/null || die "Maven finished but $pat is missing"
done
javac -nowarn --release 17 -cp "$tmp/libs/*" -d "$tmp/classes" "$src" >&2 \
  || die "javac failed on $src"

rm -f "$stamp"
rm -rf "$dir/libs" "$dir/classes"
mv "$tmp/libs" "$dir/libs" && mv "$tmp/classes" "$dir/classes" || die "cannot move results into $dir"
{ echo "$sum"; echo "resolved $(date -u +%Y-%m-%dT%H:%M:%SZ)"; } > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
echo "resolve-rest-fixture.sh: $(ls -1 "$dir/libs" | wc -l) jars in $dir/libs" >&2
echo "$classpath"
