# shellcheck shell=bash
# Shared helpers for the project's scripts. Source it; do not run it.
#
#   REPO_ROOT   the repository root (derived from this file's location)
#   RUN_DIR     logs, pid files and data of `scripts/up.sh` (default <repo>/run)
#   TOOLS_DIR   tools built by `scripts/install.sh` (default <repo>/.tools)
#
# Everything listens on loopback only (127.0.0.1).

if [[ -n "${_ORDERS_LIB_SH:-}" ]]; then
  return 0
fi
_ORDERS_LIB_SH=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$REPO_ROOT/run}"
TOOLS_DIR="${TOOLS_DIR:-$REPO_ROOT/.tools}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export REPO_ROOT RUN_DIR TOOLS_DIR CARGO_HOME

# Tools built or installed by install.sh come first on PATH.
case ":$PATH:" in *":$TOOLS_DIR/bin:"*) ;; *) PATH="$TOOLS_DIR/bin:$PATH" ;; esac
case ":$PATH:" in *":$CARGO_HOME/bin:"*) ;; *) PATH="$PATH:$CARGO_HOME/bin" ;; esac
export PATH

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
  printf '==> ERROR: %s\n' "$*" >&2
  exit 1
}

now_s() { date +%s; }

# Human readable duration of N seconds.
fmt_duration() {
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# timed LABEL CMD...  runs CMD and prints "==> LABEL: Ns" afterwards (also on failure);
# LABEL is e.g. "[install] kcat".
timed() {
  local label=$1
  shift
  local start rc=0
  start=$(now_s)
  log "$label ..."
  # A subshell that is not in an `||` context, so `set -e` stays in force inside CMD.
  # (Variables CMD sets do not reach the caller.)
  local had_e=0
  [[ $- == *e* ]] && had_e=1
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  ((had_e)) && set -e
  local took=$(($(now_s) - start))
  if ((rc == 0)); then
    log "$label: ${took}s ($(fmt_duration "$took"))"
  else
    log "$label: FAILED (exit $rc) after ${took}s"
  fi
  return "$rc"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race until it is bound again).
free_port() {
  python3 - <<'EOF' 2>/dev/null && return 0
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
  # Fallback without python: probe random high ports.
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for_tcp HOST PORT DEADLINE_SECONDS [PID]  polls until HOST:PORT accepts a connection.
# When PID is given and the process dies, fail at once.
wait_for_tcp() {
  local host=$1 port=$2 deadline=$(($(now_s) + $3)) pid=${4:-}
  while ! tcp_open "$host" "$port"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $host:$port opened"
      return 1
    fi
    if (($(now_s) >= deadline)); then
      warn "timed out after $3s waiting for $host:$port"
      return 1
    fi
    sleep 0.2
  done
}

# http_status URL  prints the HTTP status code (000 when nothing answers).
http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    python3 - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
  fi
}

# wait_for_http URL DEADLINE_SECONDS [PID]  polls until URL answers 2xx.
wait_for_http() {
  local url=$1 deadline=$(($(now_s) + $2)) pid=${3:-} code
  while :; do
    code=$(http_status "$url")
    [[ "$code" == 2* ]] && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $url answered (last status $code)"
      return 1
    fi
    if (($(now_s) >= deadline)); then
      warn "timed out after $2s waiting for $url (last status $code)"
      return 1
    fi
    sleep 0.3
  done
}

# wait_for_ready BASE_URL DEADLINE_SECONDS [PID]  waits for BASE/ready, or BASE/health when
# /ready answers 404.
wait_for_ready() {
  local base=$1 deadline=$(($(now_s) + $2)) pid=${3:-} code path=/ready
  while :; do
    code=$(http_status "$base$path")
    [[ "$code" == 2* ]] && return 0
    if [[ "$code" == 404 && "$path" == /ready ]]; then
      path=/health
      continue
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process $pid exited before $base$path answered (last status $code)"
      return 1
    fi
    if (($(now_s) >= deadline)); then
      warn "timed out after $2s waiting for $base$path (last status $code)"
      return 1
    fi
    sleep 0.3
  done
}

# pid_alive PIDFILE  true when PIDFILE names a live process.
pid_alive() {
  local pidfile=$1 pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# start_bg NAME DIR CMD...  starts CMD in the background (in its own session, cwd DIR) with
# stdout+stderr appended to $LOG_DIR/NAME.log and its pid in $PID_DIR/NAME.pid.
# LOG_DIR and PID_DIR default to $RUN_DIR/logs and $RUN_DIR/pids. The environment for
# CMD is the caller's (use `env VAR=... cmd` in CMD for extra variables).
# When the pid file already names a live process, nothing is started (returns 0) and
# STARTED_BG is set to 0; otherwise STARTED_BG=1. The pid is left in BG_PID.
start_bg() {
  local name=$1 dir=$2
  shift 2
  local log_dir=${LOG_DIR:-$RUN_DIR/logs} pid_dir=${PID_DIR:-$RUN_DIR/pids}
  mkdir -p "$log_dir" "$pid_dir" "$dir"
  local pidfile="$pid_dir/$name.pid" logfile="$log_dir/$name.log"
  if pid_alive "$pidfile"; then
    BG_PID=$(cat "$pidfile")
    # shellcheck disable=SC2034  # read by callers
    STARTED_BG=0
    log "$name already running (pid $BG_PID), left alone"
    return 0
  fi
  rm -f "$pidfile"
  {
    printf '\n===== %s start %s: %s\n' "$name" "$(date -Is)" "$*"
  } >>"$logfile"
  # setsid: own process group, so a terminal's Ctrl-C does not reach it and stop_pidfile
  # can signal the whole group. </dev/null: never reads our stdin.
  (cd "$dir" && exec setsid "$@" </dev/null >>"$logfile" 2>&1) &
  BG_PID=$!
  echo "$BG_PID" >"$pidfile"
  # shellcheck disable=SC2034  # read by callers
  STARTED_BG=1
  log "$name started (pid $BG_PID, log $logfile)"
}

# pgid_of PID  process group id of PID (from /proc: procps may not be installed).
pgid_of() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # fields after "comm": state ppid pgrp ...
  read -r _ _ pgrp _ <<<"$stat"
  echo "$pgrp"
}

# stop_pidfile PIDFILE [DEADLINE_SECONDS]  TERM the process (and its process group when it
# leads one), KILL after the deadline, remove the pid file.
stop_pidfile() {
  local pidfile=$1 deadline_s=${2:-15} pid name
  name=$(basename "$pidfile" .pid)
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    return 0
  fi
  local target=$pid
  # Signal the group only when the process leads its own group (started by start_bg).
  if [[ "$(pgid_of "$pid")" == "$pid" ]]; then
    target=-$pid
  fi
  kill -TERM -- "$target" 2>/dev/null || true
  local deadline=$(($(now_s) + deadline_s))
  while kill -0 "$pid" 2>/dev/null; do
    if (($(now_s) >= deadline)); then
      warn "$name (pid $pid) still running after ${deadline_s}s: KILL"
      kill -KILL -- "$target" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # Reap it when it is our child; ignore otherwise.
  wait "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "$name stopped (pid $pid)"
}

# nisshi_bin  path of the nisshi broker binary, or nothing.
nisshi_bin() {
  if command -v nisshi >/dev/null 2>&1; then
    command -v nisshi
  elif [[ -x "$CARGO_HOME/bin/nisshi" ]]; then
    echo "$CARGO_HOME/bin/nisshi"
  elif [[ -x "$HOME/.cargo/bin/nisshi" ]]; then
    echo "$HOME/.cargo/bin/nisshi"
  fi
}

# kcat_bin  path of the project's kcat (built against librdkafka 2.12.1).
kcat_bin() { echo "$TOOLS_DIR/bin/kcat"; }

# k6_bin  path of k6, or nothing.
k6_bin() {
  if [[ -x "$TOOLS_DIR/bin/k6" ]]; then
    echo "$TOOLS_DIR/bin/k6"
  elif command -v k6 >/dev/null 2>&1; then
    command -v k6
  fi
}

# start_broker NAME PORT STORAGE_URL WORKDIR  starts nisshi on 127.0.0.1:PORT.
# A sqlite:// storage URL is resolved by nisshi relative to its working directory,
# which is WORKDIR (use e.g. sqlite://nisshi.db with WORKDIR=<run>/data).
start_broker() {
  local name=$1 port=$2 storage=$3 workdir=$4 bin
  bin=$(nisshi_bin)
  [[ -n "$bin" ]] || die "nisshi not found (run scripts/install.sh)"
  start_bg "$name" "$workdir" env \
    -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY \
    LISTENER_URL="tcp://127.0.0.1:$port" \
    ADVERTISED_LISTENER_URL="tcp://127.0.0.1:$port" \
    STORAGE_ENGINE="$storage" \
    CLUSTER_ID="${NISSHI_CLUSTER_ID:-orders}" \
    GROUP_INITIAL_REBALANCE_DELAY="${GROUP_INITIAL_REBALANCE_DELAY:-100ms}" \
    RUST_LOG="${NISSHI_LOG:-warn}" \
    "$bin" broker
}

# target_bin PROFILE NAME  path of a workspace binary.
target_bin() {
  local profile=$1 name=$2 dir
  dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
  case "$profile" in
    dev | debug) echo "$dir/debug/$name" ;;
    *) echo "$dir/$profile/$name" ;;
  esac
}

# service_database_url SVC: where SVC keeps its read models: its SQLite file under
# $RUN_DIR/data, or, when POSTGRES_URL=postgres://user:password@host:port (a server, no
# database) is set, the database orderflow_<svc> there, created with psql when missing.
service_database_url() {
  local svc=$1 db server
  if [[ -z "${POSTGRES_URL:-}" ]]; then
    echo "sqlite://$RUN_DIR/data/$svc.db?mode=rwc"
    return 0
  fi
  server="${POSTGRES_URL%/}"
  db="orderflow_${svc//-/_}"
  command -v psql >/dev/null 2>&1 || die "POSTGRES_URL is set but psql is missing (scripts/install.sh postgres)"
  if [[ "$(psql "$server/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
    psql "$server/postgres" -q -c "CREATE DATABASE $db" >&2 || die "could not create database $db on $server"
  fi
  echo "$server/$db"
}

# built_bin NAME PACKAGE: path of binary NAME, built from PACKAGE when no profile has it yet.
# PROFILE=release|debug picks the profile; by default whichever exists (release first), else
# release is built. Build output goes to stderr.
built_bin() {
  local name=$1 package=$2 p b args=()
  local profiles=("${PROFILE:-release}")
  [[ -z "${PROFILE:-}" ]] && profiles=(release debug)
  for p in "${profiles[@]}"; do
    b=$(target_bin "$p" "$name")
    if [[ -x "$b" ]]; then
      echo "$b"
      return 0
    fi
  done
  p=${profiles[0]}
  case "$p" in
    debug | dev) ;;
    release) args=(--release) ;;
    *) args=(--profile "$p") ;;
  esac
  (cd "$REPO_ROOT" && cargo build -q -p "$package" --bin "$name" "${args[@]}") >&2
  target_bin "$p" "$name"
}

# ------------------------------------------------------------------ PostgreSQL for tests

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
# DIR/data (log DIR/postgres.log) on a free 127.0.0.1 port, no Unix socket, fsync off, with a
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
  # Test settings: loopback only, no Unix socket (its default folder may not exist), no
  # durability (a crashed test server is thrown away anyway), room for many small pools.
  cat >>"$data/postgresql.conf" <<EOF

# ---- scripts/lib.sh start_test_postgres
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 500
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
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
