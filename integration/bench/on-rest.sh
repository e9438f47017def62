#!/usr/bin/env bash
# A `calving bench` on the REST catalog over a loopback S3 server: an S3 server (moto's, or
# another with CALVING_S3_SERVER) and Apache Iceberg's REST catalog fixture (the one the Rust
# tests use, S3FileIO on the same bucket) are started here on 127.0.0.1, the benchmark runs
# against them through the same code path as a broker, and both servers are stopped at the end
# (also on failure).
#
#   integration/bench/on-rest.sh <aging|commit> [its arguments...]
#   e.g. integration/bench/on-rest.sh aging --commits 10000
#        integration/bench/on-rest.sh commit --writers 3 --rate 30 --duration 30
#
# CALVING_S3_SERVER=s3s-fs|<binary>: another S3 server instead of moto (see rest-s3.sh).
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
# shellcheck source=../kafka/rest-s3.sh
. "$root/integration/kafka/rest-s3.sh"
# KEEP_LOGS=<dir>: the S3 server's and the fixture's logs are copied there at the end.
trap 'rest_s3_stop; [ -z "${KEEP_LOGS:-}" ] || { mkdir -p "$KEEP_LOGS"; cp "$work"/*.log "$KEEP_LOGS"/ 2>/dev/null; }; rm -rf "$work"' EXIT
rest_s3_start "$work" || exit 1
s3_port=${S3_ENDPOINT##*:}
rest_port=${REST_URI##*:}

"$calving" bench "$sub" \
  --property catalog.type=rest --property "catalog.uri=http://127.0.0.1:$rest_port" \
  --property warehouse=s3://calving/wh --property "s3.endpoint=http://127.0.0.1:$s3_port" \
  --property s3.region=us-east-1 --property s3.access-key-id=calving-test-key \
  --property s3.secret-access-key=calving-test-secret --property s3.path-style-access=true \
  --property s3.disable-config-load=true --property s3.disable-ec2-metadata=true \
  "$@"
