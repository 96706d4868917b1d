# shellcheck shell=bash
# The services of the system and their settings. Part of scripts/lib.sh (source that, not
# this). Uses common.sh.
#
# <repo>/services.tsv is the only place the service names and ports live: one line per
# service, in start order, columns name, port, crate (separated by tabs or spaces); lines
# starting with `#` and blank lines are ignored. Sourcing this file loads it into
#
#   SERVICES              the names, in start order (down.sh stops them in reverse)
#   SERVICE_PORT[NAME]    the service's HTTP port on 127.0.0.1 (up.sh sets HTTP_ADDR from it)
#   SERVICE_CRATE[NAME]   its Cargo package; the binary has the service's name
#
# and these print them (each fails, with a warning, for a name not in the list):
#
#   service_names         the names, one a line, in start order
#   service_port NAME     e.g. 8001
#   service_crate NAME    e.g. order-svc
#   service_url NAME      e.g. http://127.0.0.1:8001
#   is_service NAME       true when NAME is in the list (no output)

SERVICES_FILE="$REPO_ROOT/services.tsv"

# load_services [FILE]  (re)reads FILE (default $SERVICES_FILE) into SERVICES, SERVICE_PORT
# and SERVICE_CRATE. Dies naming the file and line on a malformed line (not exactly three
# columns, a name that is not lowercase letters, digits, `-` and `_`, a port outside
# 1..65535), a duplicate name or port, a name the scripts use for something else
# (nisshi, schema-registry), or when the file lists no service.
load_services() {
  local file=${1:-$SERVICES_FILE} line n=0 name port crate extra other
  [[ -r "$file" ]] || die "service list $file is missing"
  SERVICES=()
  declare -gA SERVICE_PORT=() SERVICE_CRATE=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    name='' port='' crate='' extra=''
    IFS=$' \t' read -r name port crate extra <<<"$line"
    if [[ -z "$crate" || -n "$extra" ]]; then
      die "$file:$n: expected three columns (name, port, crate): $line"
    fi
    if [[ ! "$name" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
      die "$file:$n: service name '$name' is not lowercase letters, digits, '-' and '_'"
    fi
    if [[ "$name" == nisshi || "$name" == schema-registry ]]; then
      die "$file:$n: '$name' is not a service (the scripts run it themselves)"
    fi
    if [[ ! "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
      die "$file:$n: port '$port' of $name is not a TCP port (1..65535)"
    fi
    for other in "${SERVICES[@]}"; do
      [[ "$other" != "$name" ]] || die "$file:$n: service $name is listed twice"
      [[ "${SERVICE_PORT[$other]}" != "$port" ]] || die "$file:$n: port $port of $name is also $other's"
    done
    SERVICES+=("$name")
    SERVICE_PORT[$name]=$port
    SERVICE_CRATE[$name]=$crate
  done <"$file"
  ((${#SERVICES[@]} > 0)) || die "$file lists no service"
}

# is_service NAME  true when NAME is one of SERVICES.
is_service() {
  local s
  for s in "${SERVICES[@]}"; do
    [[ "$s" == "$1" ]] && return 0
  done
  return 1
}

# _known_service NAME  is_service, with a warning naming the services when it is not.
_known_service() {
  is_service "$1" && return 0
  warn "unknown service '$1' (one of: ${SERVICES[*]}; see $SERVICES_FILE)"
  return 1
}

service_names() { printf '%s\n' "${SERVICES[@]}"; }
service_port() { _known_service "$1" && echo "${SERVICE_PORT[$1]}"; }
service_crate() { _known_service "$1" && echo "${SERVICE_CRATE[$1]}"; }
service_url() { _known_service "$1" && echo "http://127.0.0.1:${SERVICE_PORT[$1]}"; }

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

load_services "$SERVICES_FILE"
