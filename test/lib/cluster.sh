# Shared by test/run, test/demo and bench/run: install what is missing, build and install the
# extension, start a throwaway PostgreSQL 15 cluster as an unprivileged user on a free port in a
# temporary directory, and always stop it again (EXIT/INT/TERM traps).
# shellcheck shell=bash

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_MAJOR=${PG_MAJOR:-15}
# ES_DESTDIR: install into a private copy of the PostgreSQL tree instead of the system one
# (no root needed; several checkouts can test side by side). See es_private_tree.
if [ -n "${ES_DESTDIR:-}" ]; then
  PG_BIN=$ES_DESTDIR/usr/lib/postgresql/$PG_MAJOR/bin
fi
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}

es_log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Installs the Debian packages the build and the tests need, when any is missing.
es_ensure_deps() {
  local need=()
  [ -x "$PG_BIN/postgres" ] || need+=("postgresql-$PG_MAJOR")
  [ -f "/usr/include/postgresql/$PG_MAJOR/server/postgres.h" ] &&
    [ -x "/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/isolation/pg_isolation_regress" ] ||
    need+=("postgresql-server-dev-$PG_MAJOR")
  command -v g++ >/dev/null || need+=(g++)
  command -v make >/dev/null || need+=(make)
  command -v cmake >/dev/null || need+=(cmake)
  [ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
  [ -f /usr/include/postgresql/libpq-fe.h ] || need+=(libpq-dev)
  perl -MIPC::Run -e1 2>/dev/null || need+=(libipc-run-perl)
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run as root, or apt-get install them)" >&2
    return 1
  fi
  es_log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
}

# Copies the system PostgreSQL into $ES_DESTDIR once; the server finds its share and lib
# directories relative to its binary, so `make install DESTDIR=$ES_DESTDIR` lands beside it.
es_private_tree() {
  [ -x "$ES_DESTDIR/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ] && return 0
  mkdir -p "$ES_DESTDIR/usr/lib/postgresql" "$ES_DESTDIR/usr/share/postgresql"
  cp -a "/usr/lib/postgresql/$PG_MAJOR" "$ES_DESTDIR/usr/lib/postgresql/"
  cp -a "/usr/share/postgresql/$PG_MAJOR" "$ES_DESTDIR/usr/share/postgresql/"
}

es_build_install() {
  es_log "building and installing pg_eventstore"
  make -C "$ES_ROOT" -s -j2 >/dev/null || return 1
  if [ -n "${ES_DESTDIR:-}" ]; then
    es_private_tree && make -C "$ES_ROOT" -s install DESTDIR="$ES_DESTDIR" >/dev/null
  elif [ "$(id -u)" -eq 0 ] || [ -w "$($PG_CONFIG --pkglibdir)" ]; then
    make -C "$ES_ROOT" -s install >/dev/null
  else
    echo "cannot write $($PG_CONFIG --pkglibdir): run as root to install the extension" >&2
    return 1
  fi
}

es_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Runs a command as the cluster's unprivileged owner.
es_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$ES_PG_USER" -- "$@"
  else
    "$@"
  fi
}

es_cluster_stop() {
  if [ -n "${ES_PGDATA:-}" ] && [ -f "$ES_PGDATA/postmaster.pid" ]; then
    es_as_owner "$PG_BIN/pg_ctl" -D "$ES_PGDATA" -m fast -w stop >/dev/null 2>&1 ||
      es_as_owner "$PG_BIN/pg_ctl" -D "$ES_PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${ES_TMP:-}" ] && [ -d "$ES_TMP" ] && [ -z "${ES_KEEP_TMP:-}" ]; then
    rm -rf "$ES_TMP"
  fi
}

# Starts the cluster; exports PGHOST, PGPORT, PGUSER, PGDATABASE, ES_PGDATA, ES_TMP.
# Extra postgresql.conf lines can be passed as arguments.
es_cluster_start() {
  if [ "$(id -u)" -eq 0 ]; then
    ES_PG_USER=${ES_PG_USER:-postgres}
    id "$ES_PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$ES_PG_USER"
  else
    ES_PG_USER=$(id -un)
  fi
  ES_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg_eventstore.XXXXXX")
  chmod 755 "$ES_TMP"
  [ "$(id -u)" -eq 0 ] && chown "$ES_PG_USER" "$ES_TMP"
  ES_PGDATA=$ES_TMP/data
  export ES_TMP ES_PGDATA ES_PG_USER
  trap 'es_cluster_stop' EXIT
  trap 'es_cluster_stop; exit 130' INT TERM
  local port
  port=$(es_free_port)
  es_log "starting PostgreSQL $PG_MAJOR on port $port ($ES_PGDATA)"
  es_as_owner "$PG_BIN/initdb" -D "$ES_PGDATA" -U postgres --auth=trust -E UTF8 \
    --locale=C >"$ES_TMP/initdb.log" 2>&1 || { cat "$ES_TMP/initdb.log"; return 1; }
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$ES_TMP'"
    echo "max_connections = 120"
    echo "max_prepared_transactions = 20"
    echo "shared_buffers = 256MB"
    echo "log_min_messages = warning"
    echo "log_line_prefix = '%m [%p] '"
    for line in "$@"; do echo "$line"; done
  } >>"$ES_PGDATA/postgresql.conf"
  es_as_owner "$PG_BIN/pg_ctl" -D "$ES_PGDATA" -l "$ES_TMP/server.log" -w -t 60 start >/dev/null ||
    { cat "$ES_TMP/server.log"; return 1; }
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
}
