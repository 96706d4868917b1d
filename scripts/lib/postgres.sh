# shellcheck shell=bash
# PostgreSQL for tests: the private server scripts/test.sh starts for its PostgreSQL pass.
# Part of scripts/lib.sh (source that, not this). Uses common.sh and proc.sh (free_port).

# pg_bin_dir  the bin folder of the newest PostgreSQL server from Debian's packages
# (/usr/lib/postgresql/<version>/bin with initdb, pg_ctl and postgres); fails when none.
pg_bin_dir() {
  local d
  while read -r d; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      echo "$d"
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  return 1
}

# as_pg_user CMD...  runs CMD as the `postgres` user when we are root (initdb and postgres
# refuse to run as root), else as ourselves. Runs from / (the user may not reach our cwd).
as_pg_user() {
  if ((EUID == 0)); then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      local quoted
      quoted=$(printf '%q ' "$@")
      (cd / && su -s /bin/sh postgres -c "$quoted")
    fi
  else
    (cd / && "$@")
  fi
}

# start_test_postgres DIR  a private PostgreSQL server for one test run: a fresh cluster in
# DIR/data (log DIR/postgres.log) on a free 127.0.0.1 port, no Unix socket, fsync off (on with
# TEST_PG_DURABLE=1), with a
# superuser `orders_test` and a random password. Exports TEST_POSTGRES_URL
# (postgres://orders_test:<pw>@127.0.0.1:<port>/postgres) and sets TEST_PG_DIR to the folder
# actually used. As root the cluster belongs to the `postgres` user; when that user cannot
# reach DIR (e.g. a checkout under /root), the cluster goes to a folder under /tmp that DIR
# links to. Fails with the log's tail when the server does not start.
start_test_postgres() {
  local dir=$1 bin port pw user=orders_test
  bin=$(pg_bin_dir) || {
    warn "no PostgreSQL server under /usr/lib/postgresql/*/bin (run scripts/install.sh postgres)"
    return 1
  }
  mkdir -p "$dir"
  if ((EUID == 0)); then
    getent passwd postgres >/dev/null || {
      warn "user 'postgres' does not exist (install Debian's postgresql package)"
      return 1
    }
    chown postgres: "$dir"
    chmod 0700 "$dir"
    if ! as_pg_user test -w "$dir"; then
      local tmp
      tmp=$(mktemp -d "${TMPDIR:-/tmp}/orders-test-pg.XXXXXX")
      chown postgres: "$tmp"
      chmod 0700 "$tmp"
      rmdir "$dir"
      ln -s "$tmp" "$dir"
      warn "user postgres cannot write $dir; PostgreSQL data in $tmp (linked from $dir)"
      dir=$tmp
    fi
  fi
  # shellcheck disable=SC2034  # read by callers
  TEST_PG_DIR=$dir
  local data="$dir/data" logfile="$dir/postgres.log" pwfile="$dir/pwfile"
  pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  (umask 077 && printf '%s\n' "$pw" >"$pwfile")
  ((EUID == 0)) && chown postgres: "$pwfile"
  if ! as_pg_user "$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1; then
    rm -f "$pwfile"
    warn "initdb failed ($bin/initdb); last lines of $dir/initdb.log:"
    tail -n 30 "$dir/initdb.log" >&2
    return 1
  fi
  rm -f "$pwfile"
  port=$(free_port) || return 1
  # Test settings: loopback only, no Unix socket (its default folder may not exist), room for
  # many small pools, and no durability (a crashed test server is thrown away anyway) unless
  # TEST_PG_DURABLE=1: a server that is restarted under load, as the chaos run does, must keep
  # every commit it acknowledged, or a read model loses its last batches while its service's
  # position in the log moves on.
  local durability="fsync = off
synchronous_commit = off
full_page_writes = off"
  [[ "${TEST_PG_DURABLE:-0}" == 1 ]] && durability="fsync = on
synchronous_commit = on
full_page_writes = on"
  cat >>"$data/postgresql.conf" <<EOF

# ---- scripts/lib.sh start_test_postgres
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 500
shared_buffers = 64MB
$durability
EOF
  if ! as_pg_user "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
    warn "PostgreSQL did not start ($bin/pg_ctl); last lines of $logfile:"
    tail -n 30 "$dir/pg_ctl.log" "$logfile" >&2 2>/dev/null
    return 1
  fi
  TEST_POSTGRES_URL="postgres://$user:$pw@127.0.0.1:$port/postgres"
  export TEST_POSTGRES_URL
  log "postgres 127.0.0.1:$port (pid $(head -1 "$data/postmaster.pid" 2>/dev/null), $("$bin/postgres" --version), data $data, log $logfile)"
}

# stop_test_postgres DIR  fast shutdown of the server start_test_postgres started in DIR
# (pg_ctl; SIGQUIT, then SIGKILL to the postmaster when that fails). Leaves the files.
stop_test_postgres() {
  local dir data pid bin
  # The real folder: DIR may be the link to a folder the postgres user can reach.
  dir=$(readlink -f "$1" 2>/dev/null || echo "$1")
  data="$dir/data"
  [[ -f "$data/postmaster.pid" ]] || return 0
  pid=$(head -1 "$data/postmaster.pid" 2>/dev/null || true)
  if bin=$(pg_bin_dir) && as_pg_user "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
    log "postgres stopped (pid $pid)"
    return 0
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  warn "pg_ctl stop failed; sending SIGQUIT to postgres (pid $pid)"
  kill -QUIT "$pid" 2>/dev/null || true
  local deadline=$(($(now_s) + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if (($(now_s) >= deadline)); then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  log "postgres stopped (pid $pid)"
}

# restart_test_postgres DIR  restarts the server start_test_postgres started in DIR with an
# immediate shutdown (no checkpoint, like a crash; it recovers from its WAL at start), as the
# chaos run does to the read models' database.
restart_test_postgres() {
  local dir data bin
  dir=$(readlink -f "$1" 2>/dev/null || echo "$1")
  data="$dir/data"
  bin=$(pg_bin_dir) || return 1
  as_pg_user "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -m immediate -w -t 60 restart >"$dir/pg_ctl.log" 2>&1
}
