#!/usr/bin/env bash
# A `calving bench` on the REST catalog over a loopback S3 server: moto's S3 server and Apache
# Iceberg's REST catalog fixture (the one the Rust tests use, S3FileIO on the same bucket) are
# started here on 127.0.0.1, the benchmark runs against them through the same code path as a
# broker, and both servers are stopped at the end (also on failure).
#
#   integration/bench/on-rest.sh <aging|commit> [its arguments...]
#   e.g. integration/bench/on-rest.sh aging --commits 10000
#        integration/bench/on-rest.sh commit --writers 3 --rate 30 --duration 30
#
# Prerequisites: tests/install-deps.sh (moto, the REST fixture jars), and the release CLI
# (cargo build --release -p calving-cli; CARGO_TARGET_DIR is honoured).
set -euo pipefail
sub=${1:?usage: integration/bench/on-rest.sh <aging|commit> [arguments...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
calving="$target/release/calving"
[ -x "$calving" ] || { echo "build the CLI first: cargo build --release -p calving-cli" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

s3_port=$(free_port)
python3 -c 'import sys; from moto.server import main; main(["-H","127.0.0.1","-p",sys.argv[1]])' "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.2; done
curl -s -X PUT "http://127.0.0.1:$s3_port/calving" >/dev/null

classpath=$("$root/rust/table/tests/rest-fixture/resolve-rest-fixture.sh" | tail -n1)
# The fixture stops when its stdin reaches end of file: a FIFO this script holds open for writing,
# closed when the script exits (even if killed).
mkfifo "$work/stdin"
exec 3<>"$work/stdin"
CATALOG_CATALOG__IMPL=org.apache.iceberg.jdbc.JdbcCatalog \
CATALOG_URI="jdbc:sqlite:$work/rest-catalog.db" \
CATALOG_WAREHOUSE=s3://calving/wh \
CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO \
CATALOG_S3_ENDPOINT="http://127.0.0.1:$s3_port" \
CATALOG_S3_PATH__STYLE__ACCESS=true \
CATALOG_S3_ACCESS__KEY__ID=calving-test-key \
CATALOG_S3_SECRET__ACCESS__KEY=calving-test-secret \
CATALOG_CLIENT_REGION=us-east-1 \
CATALOG_REST_PORT=0 \
AWS_EC2_METADATA_DISABLED=true \
  java -cp "$classpath" org.apache.iceberg.rest.CalvingRestFixture >"$work/rest.out" 2>"$work/rest.log" <"$work/stdin" &
pids+=($!)
rest_port=
for _ in $(seq 450); do
  rest_port=$(sed -n 's/^CALVING_REST_FIXTURE_PORT=//p' "$work/rest.out" | head -n1)
  [ -n "$rest_port" ] && break
  sleep 0.2
done
[ -n "$rest_port" ] || { echo "the REST fixture did not start:" >&2; cat "$work/rest.log" >&2; exit 1; }

"$calving" bench "$sub" \
  --property catalog.type=rest --property "catalog.uri=http://127.0.0.1:$rest_port" \
  --property warehouse=s3://calving/wh --property "s3.endpoint=http://127.0.0.1:$s3_port" \
  --property s3.region=us-east-1 --property s3.access-key-id=calving-test-key \
  --property s3.secret-access-key=calving-test-secret --property s3.path-style-access=true \
  --property s3.disable-config-load=true --property s3.disable-ec2-metadata=true \
  "$@"
