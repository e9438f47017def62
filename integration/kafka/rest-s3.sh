# shellcheck shell=bash
# A shared warehouse and catalog on loopback, for scripts that source this file
# (integration/bench/on-rest.sh, integration/cluster/run.sh): an S3 server (bucket `calving`) and
# Apache Iceberg's REST catalog fixture (JDBC on SQLite behind it, S3FileIO on the same bucket,
# warehouse s3://calving/wh), both on 127.0.0.1.
#
# The S3 server, from CALVING_S3_SERVER:
#   moto (or unset)  moto's server mode (PyPI): the tests' S3 server. One Python process that
#                    answers one request at a time (~190 a second on a 2-core machine).
#   s3s-fs           s3s-fs 0.14.1 (crates.io, an S3 server in Rust over a directory) that serves
#                    requests concurrently, as an object store does: the commit benchmark's store
#                    for figures about Calving rather than about the store. Built on first use
#                    into $CALVING_TOOLS (default ~/.cache/calving/tools; `cargo install`, ~3.5 min
#                    on 2 cores), see s3s_fs_binary.
#   <path>           any binary taking s3s-fs's arguments.
#
#   . integration/kafka/rest-s3.sh
#   rest_s3_start <work dir>   # returns once both answer; sets S3_ENDPOINT, REST_URI,
#                              # REST_S3_PROPS (the plugin's storage keys, one key=value a line),
#                              # S3_PID and REST_PID (the S3 server's and the fixture's processes)
#   s3_start <work dir>        # the S3 server alone (a SQL catalog on PostgreSQL: integration/cluster/run.sh):
#                              # S3_ENDPOINT, REST_S3_PROPS, S3_PID
#   rest_s3_stop               # stops both (also call it from the script's EXIT trap)
#
# The fixture stops when its stdin reaches end of file: a FIFO held open here for writing, closed
# by rest_s3_stop or when the script exits (even if killed).

_rest_s3_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_rest_s3_pids=()

# Prints the path of s3s-fs 0.14.1's binary, building it first when it is not there yet.
s3s_fs_binary() {
  local root=${CALVING_TOOLS:-$HOME/.cache/calving/tools}/s3s-fs-0.14.1
  if [ ! -x "$root/bin/s3s-fs" ]; then
    echo "rest-s3.sh: building s3s-fs 0.14.1 into $root (once; about 3.5 minutes on 2 cores)" >&2
    cargo install s3s-fs@0.14.1 --features binary --locked --root "$root" >&2 || return 1
  fi
  echo "$root/bin/s3s-fs"
}

s3_start() {
  local work=$1 s3_port
  mkdir -p "$work"
  s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local server=${CALVING_S3_SERVER:-moto}
  [ "$server" != s3s-fs ] || server=$(s3s_fs_binary) || return 1
  if [ "$server" != moto ]; then
    mkdir -p "$work/s3-root/calving"
    "$server" --host 127.0.0.1 --port "$s3_port" --access-key calving-test-key \
      --secret-key calving-test-secret "$work/s3-root" >"$work/s3.log" 2>&1 &
  else
    python3 -c 'import sys; from moto.server import main; main(["-H","127.0.0.1","-p",sys.argv[1]])' "$s3_port" \
      >"$work/s3.log" 2>&1 &
  fi
  S3_PID=$!
  _rest_s3_pids+=("$S3_PID")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.2; done
  [ "$server" != moto ] || curl -s -X PUT "http://127.0.0.1:$s3_port/calving" >/dev/null || { echo "rest-s3.sh: moto did not start" >&2; return 1; }
  S3_ENDPOINT="http://127.0.0.1:$s3_port"
  REST_S3_PROPS="s3.endpoint=$S3_ENDPOINT
s3.region=us-east-1
s3.access-key-id=calving-test-key
s3.secret-access-key=calving-test-secret
s3.path-style-access=true
s3.disable-config-load=true
s3.disable-ec2-metadata=true"
}

rest_s3_start() {
  local work=$1 rest_port classpath
  s3_start "$work" || return 1
  classpath=$("$_rest_s3_here/../../rust/table/tests/rest-fixture/resolve-rest-fixture.sh" | tail -n1) || return 1
  mkfifo "$work/rest.stdin"
  exec {_rest_s3_fd}<>"$work/rest.stdin"
  CATALOG_CATALOG__IMPL=org.apache.iceberg.jdbc.JdbcCatalog \
  CATALOG_URI="jdbc:sqlite:$work/rest-catalog.db" \
  CATALOG_WAREHOUSE=s3://calving/wh \
  CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO \
  CATALOG_S3_ENDPOINT="$S3_ENDPOINT" \
  CATALOG_S3_PATH__STYLE__ACCESS=true \
  CATALOG_S3_ACCESS__KEY__ID=calving-test-key \
  CATALOG_S3_SECRET__ACCESS__KEY=calving-test-secret \
  CATALOG_CLIENT_REGION=us-east-1 \
  CATALOG_REST_PORT=0 \
  AWS_EC2_METADATA_DISABLED=true \
    java -Xmx512m -cp "$classpath" org.apache.iceberg.rest.CalvingRestFixture >"$work/rest.out" 2>"$work/rest.log" <"$work/rest.stdin" &
  REST_PID=$!
  _rest_s3_pids+=("$REST_PID")
  rest_port=
  for _ in $(seq 450); do
    rest_port=$(sed -n 's/^CALVING_REST_FIXTURE_PORT=//p' "$work/rest.out" | head -n1)
    [ -n "$rest_port" ] && break
    sleep 0.2
  done
  [ -n "$rest_port" ] || { echo "rest-s3.sh: the REST fixture did not start:" >&2; tail -n 20 "$work/rest.log" >&2; return 1; }
  REST_URI="http://127.0.0.1:$rest_port"
}

rest_s3_stop() {
  local p
  # SIGCONT first: a process paused with SIGSTOP (integration/cluster/faults.sh) acts on SIGTERM
  # only once it runs again.
  for p in "${_rest_s3_pids[@]}"; do kill "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null || true; done
  _rest_s3_pids=()
}
