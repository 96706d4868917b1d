# shellcheck shell=bash
# Free ports, TCP/HTTP probes and waits, background processes and their pid files.
# Part of scripts/lib.sh (source that, not this). Uses common.sh.

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range: a port the kernel hands out
# for :0 is free then, but any outgoing connection may take it as its local port before the
# process meant for it binds it.
free_port() {
  python3 - <<'EOF' 2>/dev/null && return 0
import random, socket
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    ephemeral = 32768
ports = list(range(10000, ephemeral)) if ephemeral > 11000 else []
random.shuffle(ports)
for port in ports + [0]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(s.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        s.close()
EOF
  # Fallback without python: probe random ports below the usual ephemeral range.
  local p
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % 22000))
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
