#!/usr/bin/env bash
# Starts the whole system in the background, on 127.0.0.1 only:
#   nisshi broker :9092 -> schema-registry :8081 -> topics + schemas (orderctl)
#   -> every service listed in services.tsv (name, port, crate), in the file's order, each
#      started with HTTP_ADDR=127.0.0.1:<its port from the file>; with --instances N (or
#      INSTANCES_<SVC>=K) N processes of it, instance i on port + 100*i (8001, 8101, ...)
# Installs what is missing and builds first. Logs, pid files and data live under run/
# (env RUN_DIR). Re-running is safe: what already runs (live pid file) is left alone, and an
# instance still running from an earlier, larger --instances stays in the layout.
# Writes the running layout to run/instances.tsv (service, instance, port, pid file,
# database url; scripts/lib/services.sh): down.sh, replay, load.sh and stuck read it.
# Stop with scripts/down.sh.
#
# Options
#   --memory        broker storage in memory (default: sqlite under run/data, durable)
#   --no-build      do not run cargo build
#   --no-install    do not run scripts/install.sh
#   --secure        writes and /admin/* need a bearer token: generated once into
#                   run/api-token (mode 600, kept across restarts), given to the services as
#                   API_TOKEN_FILE; prints how to use it with curl and k6
#   --instances N   N processes of every service (1..9, default 1), each with
#                   SERVICE_INSTANCE=i (its static group membership), its own HTTP port and
#                   its own read-model database (run/data/<svc>-<i>.db, orderflow_<svc>_<i>;
#                   instance 0 keeps <svc>.db / orderflow_<svc>). Their consumer groups split
#                   the partitions: an instance beyond the topics' partition count stands by
#                   (serves reads, takes over when another dies); up.sh warns then.
# Env: PROFILE (release | debug, default release), PARTITIONS (1), KAFKA_PORT (9092),
#      REGISTRY_PORT (8081), READY_TIMEOUT (seconds, 120),
#      INSTANCES_<SVC> (instances of one service, overriding --instances: INSTANCES_ORDER,
#      INSTANCES_INVENTORY, INSTANCES_PAYMENT, INSTANCES_SHIPPING, INSTANCES_NOTIFY),
#      NISSHI_STORAGE (a Nisshi storage engine URL, overriding the default and --memory),
#      POSTGRES_URL (postgres://user:password@host:port: read models in PostgreSQL, one
#      database orderflow_<svc> per service instance, created when missing; default SQLite files).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STORAGE=sqlite
DO_BUILD=1
DO_INSTALL=1
SECURE=0
INSTANCE_COUNT=1
while (($# > 0)); do
  case "$1" in
    --memory) STORAGE=memory ;;
    --no-build) DO_BUILD=0 ;;
    --no-install) DO_INSTALL=0 ;;
    --secure) SECURE=1 ;;
    --instances)
      (($# >= 2)) || die "--instances needs a count (1..$MAX_INSTANCES)"
      INSTANCE_COUNT=$2
      shift
      ;;
    --instances=*) INSTANCE_COUNT=${1#--instances=} ;;
    -h | --help)
      sed -n '2,33p' "$0"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
# INSTANCES[svc] from --instances and INSTANCES_<SVC> (scripts/lib/services.sh); checked
# before anything starts.
set_instances "$INSTANCE_COUNT"

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
  build_workspace_bins "$PROFILE"
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

kcat=$(kcat_bin)
# The fewest partitions of any topic (kcat's metadata), empty when kcat cannot tell: each
# consumer group gives work to at most that many of a service's instances.
fewest_partitions() {
  [[ -x "$kcat" ]] || return 0
  "$kcat" -b "$KAFKA_BROKERS" -L 2>/dev/null |
    sed -nE 's/^ *topic "([^_"][^"]*)" with ([0-9]+) partitions:.*/\2/p' | sort -n | head -n 1
}

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
# An instance still running from an earlier up.sh with more instances stays: it is in the
# group and in the layout, so down.sh, replay and load.sh know it.
for svc in "${SERVICES[@]}"; do
  for ((i = INSTANCES[$svc]; i < MAX_INSTANCES; i++)); do
    if pid_alive "$PID_DIR/$(instance_name "$svc" "$i").pid"; then
      warn "$(instance_name "$svc" "$i") still runs (asked for ${INSTANCES[$svc]} of $svc): kept, with every instance below it"
      INSTANCES[$svc]=$((i + 1))
    fi
  done
done

# Every instance of a service is in the same consumer groups; the partitions decide how many
# of them get work. Checked on the topics as they are (existing topics keep their count).
most_instances=1
for svc in "${SERVICES[@]}"; do ((INSTANCES[$svc] > most_instances)) && most_instances=${INSTANCES[$svc]}; done
partitions=$(fewest_partitions)
if ((most_instances > 1)) && [[ -n "$partitions" ]] && ((most_instances > partitions)); then
  for svc in "${SERVICES[@]}"; do
    ((INSTANCES[$svc] > partitions)) || continue
    warn "$svc: ${INSTANCES[$svc]} instances but topics of $partitions partition(s): in each consumer group $((INSTANCES[$svc] - partitions)) of them stand by (they serve reads and take over when an owner leaves)"
  done
  warn "for every instance to get work, topics of $most_instances partitions or more: scripts/down.sh, then PARTITIONS=$most_instances scripts/up.sh --memory (or a new RUN_DIR)"
fi

# Names and ports: services.tsv and the instance scheme (scripts/lib/services.sh). Instance i
# gets SERVICE_INSTANCE=i: its own static member id in every group (two live processes with
# one id fence each other).
declare -A SVC_PID
for svc in "${SERVICES[@]}"; do
  for i in $(instance_ids "$svc"); do
    name=$(instance_name "$svc" "$i")
    port=$(instance_port "$svc" "$i")
    check_port_free "$name" "$port"
    start_bg "$name" "$RUN_DIR" env \
      KAFKA_BROKERS="$KAFKA_BROKERS" \
      SCHEMA_REGISTRY_URL="$SCHEMA_REGISTRY_URL" \
      HTTP_ADDR="127.0.0.1:$port" \
      SERVICE_INSTANCE="$i" \
      DATABASE_URL="$(service_database_url "$svc" "$i")" \
      RUN_DIR="$RUN_DIR" \
      "${token_env[@]}" \
      "$(bin "$svc")"
    SVC_PID[$name]=$BG_PID
  done
done
write_layout

failed=0
for svc in "${SERVICES[@]}"; do
  for i in $(instance_ids "$svc"); do
    name=$(instance_name "$svc" "$i")
    if ! wait_for_ready "$(instance_url "$svc" "$i")" "$READY_TIMEOUT" "${SVC_PID[$name]}"; then
      warn "$name is not ready; last log lines:"
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      failed=1
    fi
  done
done

# ------------------------------------------------------------------------------ report
{
  echo
  printf '%-16s %-8s %-28s %s\n' COMPONENT PID ADDRESS LOG
  printf '%-16s %-8s %-28s %s\n' nisshi "$(cat "$PID_DIR/nisshi.pid")" "$KAFKA_BROKERS" "$LOG_DIR/nisshi.log"
  printf '%-16s %-8s %-28s %s\n' schema-registry "$(cat "$PID_DIR/schema-registry.pid")" "$SCHEMA_REGISTRY_URL" "$LOG_DIR/schema-registry.log"
  for svc in "${SERVICES[@]}"; do
    for i in $(instance_ids "$svc"); do
      name=$(instance_name "$svc" "$i")
      printf '%-16s %-8s %-28s %s\n' "$name" "$(cat "$PID_DIR/$name.pid" 2>/dev/null || echo -)" "$(instance_url "$svc" "$i")" "$LOG_DIR/$name.log"
    done
  done
  echo
  echo "storage:  $storage_desc"
  echo "data:     $DATA_DIR"
  echo "layout:   $(layout_file) (partitions per topic: ${partitions:-unknown})"
  echo "kcat:     $kcat (wrapper: scripts/kcat)"
  echo "k6:       $(k6_bin)"
  echo
  echo "Examples:"
  echo "  scripts/kcat -b $KAFKA_BROKERS -L"
  echo "  scripts/consume --help        # Avro event topics as JSON (orderctl consume)"
  echo "  curl -s $SCHEMA_REGISTRY_URL/subjects"
  echo "  curl -s $(service_url "${SERVICES[0]}")/ready"
  echo "  scripts/down.sh"
  if ((SECURE)); then
    echo
    echo "Writes and /admin/* need the token in $TOKEN_FILE:"
    echo "  curl -s -XPOST -H \"Authorization: Bearer \$(cat $TOKEN_FILE)\" $(service_url inventory-svc)/stock/sku-1/restock -H 'content-type: application/json' -d '{\"quantity\":10}'"
    echo "  scripts/load.sh --rate 1000     # reads $TOKEN_FILE itself (or API_TOKEN=...)"
  fi
  echo
  echo "up.sh took $(fmt_duration $(($(now_s) - up_start)))"
} >&2

if ((failed)); then
  die "some services are not ready (see above); scripts/down.sh stops what runs"
fi
