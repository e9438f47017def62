# shellcheck shell=bash
# A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql, /usr/lib/postgresql/*/bin), for
# scripts that source this file (integration/bench/commit-sweep.sh, integration/cluster/run.sh
# with CALVING_CLUSTER_CATALOG=postgres).
#
#   . integration/kafka/postgres.sh
#   pg_start [<max connections>]  # initdb (trust, superuser `calving`) in a fresh directory, start;
#                                 # sets PG_PORT, PG_URI (postgresql://calving@127.0.0.1:<port>/postgres),
#                                 # PG_DIR (data in $PG_DIR/data, server log $PG_DIR/log)
#   pg_stop [fast|immediate]      # stops it (default fast) and removes PG_DIR; call it from traps too
#   as_postgres <tool> [args...]  # one of PostgreSQL's tools, as the `postgres` user when root
#
# PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user, in a directory
# of its own (mktemp, chowned) because callers' work directories are root's, mode 700. pg_ctl
# detaches the server from the caller, so pg_start also starts a guard that stops it (immediate)
# once the calling shell is gone, even after SIGKILL (it ignores INT and TERM, and ends by itself
# within 2 s of pg_stop).

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
PG_DIR=""; PG_PORT=""; PG_URI=""; _pg_guard=""

as_postgres() {
  local tool=$1; shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pg_bin/$tool" "$@"; else "$pg_bin/$tool" "$@"; fi
}

pg_start() {
  local max=${1:-200}
  [ -n "$pg_bin" ] || { echo "postgres.sh: PostgreSQL is not installed (tests/install-deps.sh installs Debian's postgresql)" >&2; return 1; }
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/calving-pg.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  as_postgres initdb -D "$PG_DIR/data" -A trust -U calving >"$PG_DIR/init.log" 2>&1 \
    || { cat "$PG_DIR/init.log" >&2; echo "postgres.sh: initdb failed" >&2; return 1; }
  as_postgres pg_ctl -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=$max" start >/dev/null \
    || { tail -n 20 "$PG_DIR/log" >&2; echo "postgres.sh: PostgreSQL did not start" >&2; return 1; }
  PG_URI="postgresql://calving@127.0.0.1:$PG_PORT/postgres"
  local owner=$$ data="$PG_DIR/data"
  ( trap '' INT TERM
    while kill -0 "$owner" 2>/dev/null && [ -f "$data/postmaster.pid" ]; do sleep 2; done
    [ -f "$data/postmaster.pid" ] && as_postgres pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 ) </dev/null >/dev/null 2>&1 &
  _pg_guard=$!
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  as_postgres pg_ctl -D "$PG_DIR/data" -m "${1:-fast}" stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"   # the guard ends with the data directory
  PG_DIR=""; _pg_guard=""
}
