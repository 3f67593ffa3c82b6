#!/usr/bin/env bash
# Runs CMD... with a throwaway PostgreSQL server: initdb in a temporary
# directory, a server on a free 127.0.0.1 port (trust authentication, its
# unix socket in that directory), a database qwend_test, and
#   QWEND_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/qwend_test?sslmode=disable
# in CMD's environment. The server is stopped and the directory removed when
# CMD ends; the script exits with CMD's status. QWEND_TEST_POSTGRES_STOP and
# QWEND_TEST_POSTGRES_START hold shell commands that stop and restart the
# server (for outage tests: give such a test a server of its own). Needs Debian's postgresql
# package (scripts/deps.sh installs it). As root, the server runs as the
# postgres user, since PostgreSQL refuses to run as root.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 2
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "with-postgres: no PostgreSQL under /usr/lib/postgresql; run scripts/deps.sh" >&2
  exit 1
fi

as=()
base="${TMPDIR:-/tmp}"
if [ "$(id -u)" -eq 0 ]; then
  as=(runuser -u postgres --)
  base=/tmp # reachable by the postgres user
fi
dir=$(mktemp -d "$base/qwend-pg.XXXXXX")
data="$dir/data"

cleanup() {
  if [ -f "$data/postmaster.pid" ]; then
    "${as[@]}" "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$dir"
fi
"${as[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The port is free when picked but could be taken before the server binds
# it: try a few.
started=""
for _ in 1 2 3 4 5; do
  port=$(free_port)
  opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200"
  if "${as[@]}" "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "with-postgres: the server did not start:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi

"${as[@]}" "$bindir/createdb" -h "$dir" -p "$port" -U postgres qwend_test

export QWEND_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/qwend_test?sslmode=disable"
export QWEND_TEST_POSTGRES_STOP="${as[*]} $bindir/pg_ctl -D $data -m fast -w stop"
export QWEND_TEST_POSTGRES_START="${as[*]} $bindir/pg_ctl -D $data -l $dir/server.log -w -t 60 -o '$opts' start"
set +e
"$@"
status=$?
set -e
exit "$status"
