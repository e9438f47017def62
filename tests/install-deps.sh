#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Calving, and nothing that is there
# already: Debian's gradle (4.4.1) and postgresql (Node.js and Go when missing), the object-store
# emulators Azurite (npm) and fake-gcs-server (Go modules), Python packages from PyPI (moto, pyiceberg, DuckDB, pyspark),
# and jars from Maven Central (Kafka 3.9.2, 4.1.2 and 4.4.0, Apicurio Registry and its Avro serde,
# Iceberg's REST fixture and Spark runtime; cached under ~/.cache/calving). Rust (cargo), a JDK 17,
# Maven and Python 3 are expected on the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for tool in cargo java javac mvn python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps.sh: please install first: ${missing[*]} (Rust via rustup, openjdk-17-jdk, maven, python3)" >&2
  exit 1
fi

debs=()
command -v gradle >/dev/null || debs+=(gradle)
command -v openssl >/dev/null || debs+=(openssl) # a private CA for the Schema Registry HTTPS test
{ command -v node && command -v npm; } >/dev/null || debs+=(nodejs npm) # Azurite (Azure Blob emulator)
{ command -v go || [ -x /usr/local/go/bin/go ]; } >/dev/null || debs+=(golang-go) # the GCS emulator (its go.mod asks for Go 1.26: fetched as the go1.26 toolchain module)
# A throwaway PostgreSQL catalog (integration/kafka/postgres.sh: the cluster test, commit-sweep.sh).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || debs+=(postgresql)
if [ ${#debs[@]} -gt 0 ]; then
  echo "== installing ${debs[*]} (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi

python3 -c 'import moto, moto.server, flask_cors; assert moto.__version__ == "5.2.1"' 2>/dev/null || { echo "== installing moto[server] 5.2.1 (loopback S3 server for calving-storage tests)"; python3 -m pip install -q "moto[server]==5.2.1"; }
python3 -c 'import importlib.metadata as m; assert m.version("pyiceberg") == "0.12.0" and m.version("duckdb") == "1.5.5" and m.version("duckdb-extension-iceberg") == "1.5.5" and m.version("duckdb-extension-avro") == "1.5.5"; import pyiceberg.catalog.sql, pyarrow, sqlalchemy, duckdb_extensions' 2>/dev/null || { echo "== installing pyiceberg 0.12.0 and DuckDB 1.5.5 + iceberg/avro extensions (independent readers for calving-table tests)"; python3 -m pip install -q "pyiceberg[sql-sqlite,pyarrow]==0.12.0" duckdb==1.5.5 duckdb-extensions==1.5.5 duckdb-extension-iceberg==1.5.5 duckdb-extension-avro==1.5.5; }
python3 -c 'import importlib.metadata as m; assert m.version("pyiceberg-core") == "0.11.0"; import pyiceberg_core' 2>/dev/null || { echo "== installing pyiceberg-core 0.11.0 (pyiceberg writes partitioned tables: the foreign maintenance of rust/rsm/tests/maintenance.rs)"; python3 -m pip install -q "pyiceberg-core==0.11.0"; }
python3 -c 'import importlib.metadata as m; assert m.version("duckdb-extension-httpfs") == "1.5.5"; import psycopg2' 2>/dev/null || { echo "== installing psycopg2-binary and DuckDB's httpfs extension 1.5.5 (pyiceberg's SqlCatalog on PostgreSQL, DuckDB on S3: integration/cluster/run.sh postgres, faults.sh)"; python3 -m pip install -q "pyiceberg[sql-postgres]==0.12.0" duckdb-extension-httpfs==1.5.5; }
# Object-store emulators of the calving-storage and calving-rsm suites (the tests build the GCS one
# again when its source changed: an up-to-date build is a no-op).
echo "== building the GCS emulator: fake-gcs-server 1.56.1 + the XML API writes object_store makes (rust/test-utils/fake-gcs)"
(cd "$root/rust/test-utils/fake-gcs" && "$(command -v go || echo /usr/local/go/bin/go)" build -o "$HOME/.cache/calving/bin/calving-fake-gcs" .)
[ "$(node -p 'require(process.argv[1]).version' "$HOME/.cache/calving/azurite/node_modules/azurite/package.json" 2>/dev/null)" = 3.37.0 ] || { echo "== installing azurite 3.37.0 (Azure Blob emulator for calving-storage and calving-rsm tests)"; npm install -s --no-audit --no-fund --prefix "$HOME/.cache/calving/azurite" azurite@3.37.0; }
echo "== resolving Apache Iceberg's REST catalog fixture 1.10.1 (calving-table tests)"
"$root/rust/table/tests/rest-fixture/resolve-rest-fixture.sh" | tail -n1
# 3.9.2 and 4.4.0: integration/e2e/run.sh in tests/run-all.sh; 4.1.2: the other suites and the
# Kafka-oracle tests. integration/kafka/versions.sh resolves the other versions on first use.
for v in 3.9.2 4.1.2 4.4.0; do
  echo "== resolving Kafka $v jars"
  CALVING_KAFKA_VERSION=$v "$root/integration/kafka/resolve-jars.sh" | tail -n1
done
echo "== resolving Apicurio Registry 3.0.9 (a real Schema Registry for calving-schema tests)"
"$root/tests/schema-registry/resolve.sh" | tail -n1
python3 -c 'import importlib.metadata as m; assert m.version("pyspark") == "3.5.9"; import pyspark.sql' 2>/dev/null || { echo "== installing pyspark 3.5.9 (Spark reads the typed tables in integration/typed/run.sh and maintains the tables in integration/maintain/run.sh)"; python3 -m pip install -q "pyspark==3.5.9"; }
echo "== resolving Apicurio's Kafka serdes (Avro 3.0.2; Protobuf and JSON Schema 3.1.7), iceberg-spark-runtime-3.5_2.12 1.10.1 and sqlite-jdbc (integration/typed/run.sh, integration/maintain/run.sh)"
"$root/integration/typed/resolve-jars.sh" | tail -n1
