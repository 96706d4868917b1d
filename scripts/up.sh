#!/usr/bin/env bash
# Starts the whole system in the background, on 127.0.0.1 only:
#   nisshi broker :9092 -> schema-registry :8081 -> topics + schemas (orderctl)
#   -> every service listed in services.tsv (name, port, crate), in the file's order, each
#      started with HTTP_ADDR=127.0.0.1:<its port from the file>
# Installs what is missing and builds first. Logs, pid files and data live under run/
# (env RUN_DIR). Re-running is safe: what already runs (live pid file) is left alone.
# Stop with scripts/down.sh.
#
# Options
#   --memory        broker storage in memory (default: sqlite under run/data, durable)
#   --no-build      do not run cargo build
#   --no-install    do not run scripts/install.sh
#   --secure        writes and /admin/* need a bearer token: generated once into
#                   run/api-token (mode 600, kept across restarts), given to the services as
#                   API_TOKEN_FILE; prints how to use it with curl and k6
# Env: PROFILE (release | debug, default release), PARTITIONS (1), KAFKA_PORT (9092),
#      REGISTRY_PORT (8081), READY_TIMEOUT (seconds, 120),
#      NISSHI_STORAGE (a Nisshi storage engine URL, overriding the default and --memory),
#      POSTGRES_URL (postgres://user:password@host:port: read models in PostgreSQL, one
#      database orderflow_<svc> per service, created when missing; default SQLite files).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STORAGE=sqlite
DO_BUILD=1
DO_INSTALL=1
SECURE=0
for arg in "$@"; do
  case "$arg" in
    --memory) STORAGE=memory ;;
    --no-build) DO_BUILD=0 ;;
    --no-install) DO_INSTALL=0 ;;
    --secure) SECURE=1 ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    *) die "unknown option: $arg (see --help)" ;;
  esac
done

PROFILE="${PROFILE:-release}"
# One partition per stream by default: on Nisshi 0.8.1 every partition of a fetch is storage
# work on every poll of its long-poll loop, and one partition carried 3,000 orders/min within
# 5 s where six carried 600 (README, "Throughput"). Partitions are the unit of scale-out: on
# Apache Kafka, or to run several instances of a service, create the topics with more
# (PARTITIONS=6). It applies when topics are created; existing topics keep their count.
PARTITIONS="${PARTITIONS:-1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
export LOG_DIR="$RUN_DIR/logs" PID_DIR="$RUN_DIR/pids"
DATA_DIR="$RUN_DIR/data"
mkdir -p "$LOG_DIR" "$PID_DIR" "$DATA_DIR"

up_start=$(now_s)

if ((DO_INSTALL)); then
  # Everything but `compose`, which only the tests use (to validate the compose files).
  INSTALL_COMPONENTS="${INSTALL_COMPONENTS:-base nisshi kcat k6 postgres}" "$REPO_ROOT/scripts/install.sh"
fi

if ((DO_BUILD)); then
  case "$PROFILE" in
    debug | dev) profile_args=() ;;
    release) profile_args=(--release) ;;
    *) profile_args=(--profile "$PROFILE") ;;
  esac
  (cd "$REPO_ROOT" && timed "[build] cargo build --workspace --bins ${profile_args[*]:-}" \
    cargo build --workspace --bins "${profile_args[@]}")
fi

bin() {
  local b
  b=$(target_bin "$PROFILE" "$1")
  [[ -x "$b" ]] || die "$b not built (run without --no-build, or set PROFILE)"
  echo "$b"
}

# Fails when PORT is taken by a process that is not the one in NAME's pid file.
check_port_free() {
  local name=$1 port=$2
  if ! pid_alive "$PID_DIR/$name.pid" && tcp_open 127.0.0.1 "$port"; then
    die "127.0.0.1:$port is in use by another process (not $name from $PID_DIR); stop it or choose another port"
  fi
}

# ------------------------------------------------------------------------------ broker
check_port_free nisshi "$KAFKA_PORT"
# The broker's storage is chosen here and nowhere else. The durable default is Nisshi's sqlite
# engine (WAL, synchronous=normal: survives a broker crash or kill -9; a power cut can lose
# the last commits). Measured against sqlite ?mode=direct and postgres:// (fsync on) with
# scripts/load.sh, it settled the most orders per minute at the lowest CPU (README,
# "Throughput"). NISSHI_STORAGE takes any engine URL Nisshi accepts, e.g.
# postgres://user:pw@127.0.0.1:5432/nisshi?sslmode=disable for fsync'd commits.
if [[ -n "${NISSHI_STORAGE:-}" ]]; then
  storage_url=$NISSHI_STORAGE
  # Shown without its password and options.
  storage_desc=$(sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#; s#\?.*##' <<<"$NISSHI_STORAGE")
elif [[ "$STORAGE" == memory ]]; then
  storage_url="memory://nisshi/"
  storage_desc=memory
else
  # nisshi resolves sqlite://FILE relative to its working directory (DATA_DIR).
  storage_url="sqlite://nisshi.db"
  storage_desc="sqlite $DATA_DIR/nisshi.db"
fi
# Groups in a running system: keep a short first-rebalance delay too.
start_broker nisshi "$KAFKA_PORT" "$storage_url" "$DATA_DIR"
wait_for_tcp 127.0.0.1 "$KAFKA_PORT" 60 "$BG_PID" || {
  tail -n 30 "$LOG_DIR/nisshi.log" >&2 || true
  die "broker did not start"
}

# ---------------------------------------------------------------------------- registry
check_port_free schema-registry "$REGISTRY_PORT"
start_bg schema-registry "$RUN_DIR" env \
  KAFKA_BROKERS="$KAFKA_BROKERS" \
  HTTP_ADDR="127.0.0.1:$REGISTRY_PORT" \
  SCHEMAS_TOPIC=_schemas \
  "$(bin schema-registry)"
wait_for_http "$SCHEMA_REGISTRY_URL/subjects" 60 "$BG_PID" || {
  tail -n 30 "$LOG_DIR/schema-registry.log" >&2 || true
  die "schema registry did not become ready"
}

# ------------------------------------------------------------------ topics and schemas
ORDERCTL=$(bin orderctl)
export KAFKA_BROKERS SCHEMA_REGISTRY_URL PARTITIONS
timed "[up] orderctl create-topics" "$ORDERCTL" create-topics
timed "[up] orderctl register-schemas" "$ORDERCTL" register-schemas

# ---------------------------------------------------------------------------- services
# The token lives in a file only its owner reads; the services get the file's path, so the
# secret is in no process's arguments or environment.
token_env=()
if ((SECURE)); then
  TOKEN_FILE="$RUN_DIR/api-token"
  if [[ ! -s "$TOKEN_FILE" ]]; then
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
  fi
  chmod 600 "$TOKEN_FILE"
  token_env=(API_TOKEN_FILE="$TOKEN_FILE")
fi
# Names and ports from services.tsv (SERVICES, SERVICE_PORT: scripts/lib/services.sh).
declare -A SVC_PID
for svc in "${SERVICES[@]}"; do
  port=${SERVICE_PORT[$svc]}
  check_port_free "$svc" "$port"
  start_bg "$svc" "$RUN_DIR" env \
    KAFKA_BROKERS="$KAFKA_BROKERS" \
    SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" \
    HTTP_ADDR="127.0.0.1:$port" \
    DATABASE_URL="$(service_database_url "$svc")" \
    RUN_DIR="$RUN_DIR" \
    "${token_env[@]}" \
    "$(bin "$svc")"
  SVC_PID[$svc]=$BG_PID
done

failed=0
for svc in "${SERVICES[@]}"; do
  if ! wait_for_ready "http://127.0.0.1:${SERVICE_PORT[$svc]}" "$READY_TIMEOUT" "${SVC_PID[$svc]}"; then
    warn "$svc is not ready; last log lines:"
    tail -n 30 "$LOG_DIR/$svc.log" >&2 || true
    failed=1
  fi
done

# ------------------------------------------------------------------------------ report
kcat=$(kcat_bin)
{
  echo
  printf '%-16s %-8s %-28s %s\n' COMPONENT PID ADDRESS LOG
  printf '%-16s %-8s %-28s %s\n' nisshi "$(cat "$PID_DIR/nisshi.pid")" "$KAFKA_BROKERS" "$LOG_DIR/nisshi.log"
  printf '%-16s %-8s %-28s %s\n' schema-registry "$(cat "$PID_DIR/schema-registry.pid")" "$SCHEMA_REGISTRY_URL" "$LOG_DIR/schema-registry.log"
  for svc in "${SERVICES[@]}"; do
    printf '%-16s %-8s %-28s %s\n' "$svc" "$(cat "$PID_DIR/$svc.pid" 2>/dev/null || echo -)" "http://127.0.0.1:${SERVICE_PORT[$svc]}" "$LOG_DIR/$svc.log"
  done
  echo
  echo "storage:  $storage_desc"
  echo "data:     $DATA_DIR"
  echo "kcat:     $kcat (wrapper: scripts/kcat)"
  echo "k6:       $(k6_bin)"
  echo
  echo "Examples:"
  echo "  scripts/kcat -b $KAFKA_BROKERS -L"
  echo "  scripts/consume --help        # Avro event topics as JSON (orderctl consume)"
  echo "  curl -s $SCHEMA_REGISTRY_URL/subjects"
  echo "  curl -s http://127.0.0.1:${SERVICE_PORT[${SERVICES[0]}]}/ready"
  echo "  scripts/down.sh"
  if ((SECURE)); then
    echo
    echo "Writes and /admin/* need the token in $TOKEN_FILE:"
    echo "  curl -s -XPOST -H \"Authorization: Bearer \$(cat $TOKEN_FILE)\" http://127.0.0.1:${SERVICE_PORT[inventory-svc]}/stock/sku-1/restock -H 'content-type: application/json' -d '{\"quantity\":10}'"
    echo "  scripts/load.sh --rate 1000     # reads $TOKEN_FILE itself (or API_TOKEN=...)"
  fi
  echo
  echo "up.sh took $(fmt_duration $(($(now_s) - up_start)))"
} >&2

if ((failed)); then
  die "some services are not ready (see above); scripts/down.sh stops what runs"
fi
