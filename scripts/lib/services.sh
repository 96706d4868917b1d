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
#   service_url NAME      e.g. http://127.0.0.1:8001 (instance 0)
#   is_service NAME       true when NAME is in the list (no output)
#   service_database_url NAME [I]   the read-model database of instance I (default 0)
#
# Instances. `scripts/up.sh --instances N` (or INSTANCES_<SVC>=K for one service) runs several
# processes of a service in the same consumer groups. The scheme lives here and nowhere else:
#
#   MAX_INSTANCES         9: instance i listens on port + 100*i, so 10 would reach the next
#                         hundred's service ports of a 80xx-style list
#   INSTANCES[NAME]       how many processes of NAME to run (set_instances fills it)
#   set_instances [N]     INSTANCES[NAME] = $INSTANCES_<SVC> when set, else N (default 1);
#                         dies on a count outside 1..MAX_INSTANCES or a port past 65535
#   instances_var NAME    the variable of NAME: order-svc -> INSTANCES_ORDER (a trailing
#                         `-svc` dropped, upper case, `-` -> `_`)
#   instance_ids NAME     0 .. INSTANCES[NAME]-1, one a line
#   instance_name NAME I  order-svc for 0, order-svc-1, ...: its pid file and log file name
#   instance_port NAME I  the port of services.tsv + 100*I (8001, 8101, ...)
#   instance_url NAME I   http://127.0.0.1:<instance_port>
#
# Every instance has its own read-model database (service_database_url NAME I): projections
# read all partitions by assignment, not through the consumer group, and keep their
# checkpoints in that database, so each instance builds complete read models; two sharing one
# database would write the same tables and checkpoints.
#
# The running layout: up.sh writes $RUN_DIR/instances.tsv (layout_file), one line per
# started instance in start order, columns service, instance, port, pid file, database url
# (mode 600: a PostgreSQL url carries its password). Readers (down.sh, replay, load.sh,
# stuck) use:
#
#   layout_file                 its path
#   write_layout                writes it from INSTANCES (PID_DIR: the pid files' folder)
#   load_layout                 reads it into LAYOUT_SERVICE, LAYOUT_INSTANCE, LAYOUT_PORT,
#                               LAYOUT_PIDFILE, LAYOUT_DATABASE (parallel arrays); false and
#                               empty arrays when there is no layout
#   layout_urls NAME [SEP]      the URLs of NAME's instances in the layout, joined by SEP
#                               (default a newline); instance 0's service_url without a layout
#   layout_database_urls NAME   "instance<TAB>database url" per instance of NAME in the
#                               layout; instance 0's service_database_url without a layout

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
    if [[ "$name" =~ -[0-9]+$ ]]; then
      die "$file:$n: service name '$name' ends in -<digits>, which instance names use (order-svc-1)"
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

# service_database_url SVC [I]: where instance I (default 0) of SVC keeps its read models: its
# SQLite file under $RUN_DIR/data (<svc>.db for 0, so runs from before instances keep their
# data; <svc>-<i>.db for the others), or, when POSTGRES_URL=postgres://user:password@host:port
# (a server, no database) is set, the database orderflow_<svc> (orderflow_<svc>_<i>) there,
# created with psql when missing.
service_database_url() {
  local svc=$1 instance=${2:-0} db server name
  _known_service "$svc" || return 1
  _known_instance "$instance" || return 1
  name=$(instance_name "$svc" "$instance")
  if [[ -z "${POSTGRES_URL:-}" ]]; then
    echo "sqlite://$RUN_DIR/data/$name.db?mode=rwc"
    return 0
  fi
  server="${POSTGRES_URL%/}"
  db="orderflow_${name//-/_}"
  command -v psql >/dev/null 2>&1 || die "POSTGRES_URL is set but psql is missing (scripts/install.sh postgres)"
  if [[ "$(psql "$server/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
    psql "$server/postgres" -q -c "CREATE DATABASE $db" >&2 || die "could not create database $db on $server"
  fi
  echo "$server/$db"
}

# --------------------------------------------------------------------------- instances

MAX_INSTANCES=9
# Instance i of a service listens on its port + INSTANCE_PORT_STEP * i.
INSTANCE_PORT_STEP=100
declare -gA INSTANCES=()

# _known_instance I  true for 0 .. MAX_INSTANCES-1, with a warning otherwise.
_known_instance() {
  [[ "$1" =~ ^[0-9]$ ]] && (($1 < MAX_INSTANCES)) && return 0
  warn "instance '$1' is not one of 0..$((MAX_INSTANCES - 1))"
  return 1
}

instances_var() {
  local base=${1%-svc}
  base=${base//-/_}
  echo "INSTANCES_${base^^}"
}

instance_name() {
  _known_instance "$2" || return 1
  if (($2 == 0)); then echo "$1"; else echo "$1-$2"; fi
}

instance_port() {
  _known_service "$1" && _known_instance "$2" && echo $((SERVICE_PORT[$1] + INSTANCE_PORT_STEP * $2))
}

instance_url() {
  local port
  port=$(instance_port "$1" "$2") && echo "http://127.0.0.1:$port"
}

instance_ids() {
  local i
  for ((i = 0; i < ${INSTANCES[$1]:-1}; i++)); do echo "$i"; done
}

# set_instances [N]  see the header. The ports of all instances of all services must differ
# (two services 100 apart in services.tsv would collide from instance 1 on).
set_instances() {
  local default=${1:-1} svc var count i port origin
  declare -A owner=()
  for svc in "${SERVICES[@]}"; do
    var=$(instances_var "$svc")
    count=${!var:-$default}
    origin="--instances"
    [[ -n "${!var:-}" ]] && origin=$var
    if [[ ! "$count" =~ ^[1-9][0-9]*$ ]] || ((count > MAX_INSTANCES)); then
      die "$origin=$count for $svc: give 1..$MAX_INSTANCES (instance i listens on port + $INSTANCE_PORT_STEP*i)"
    fi
    INSTANCES[$svc]=$count
    for ((i = 0; i < count; i++)); do
      port=$(instance_port "$svc" "$i")
      ((port <= 65535)) || die "$svc instance $i would listen on port $port (past 65535): fewer instances, or a lower port in $SERVICES_FILE"
      [[ -z "${owner[$port]:-}" ]] || die "$svc instance $i and ${owner[$port]} would both listen on port $port (ports in $SERVICES_FILE 100 apart?)"
      owner[$port]="$svc instance $i"
    done
  done
}

layout_file() { echo "$RUN_DIR/instances.tsv"; }

# write_layout  $RUN_DIR/instances.tsv from INSTANCES, written whole and then renamed, so a
# reader never sees half of it.
write_layout() {
  local file tmp svc i
  file=$(layout_file)
  tmp="$file.tmp.$$"
  (
    umask 077
    {
      printf '# The instances scripts/up.sh started (scripts/lib/services.sh). Columns:\n'
      printf '# service\tinstance\tport\tpid_file\tdatabase_url\n'
      for svc in "${SERVICES[@]}"; do
        for i in $(instance_ids "$svc"); do
          printf '%s\t%s\t%s\t%s\t%s\n' "$svc" "$i" "$(instance_port "$svc" "$i")" \
            "${PID_DIR:-$RUN_DIR/pids}/$(instance_name "$svc" "$i").pid" "$(service_database_url "$svc" "$i")"
        done
      done
    } >"$tmp"
  )
  mv -f "$tmp" "$file"
}

load_layout() {
  local file svc instance port pidfile database
  file=$(layout_file)
  LAYOUT_SERVICE=() LAYOUT_INSTANCE=() LAYOUT_PORT=() LAYOUT_PIDFILE=() LAYOUT_DATABASE=()
  [[ -r "$file" ]] || return 1
  while IFS=$'\t' read -r svc instance port pidfile database; do
    [[ -z "$svc" || "$svc" == \#* ]] && continue
    [[ -n "$database" ]] || die "$file: a line without its five columns (service $svc): run scripts/up.sh again"
    LAYOUT_SERVICE+=("$svc")
    LAYOUT_INSTANCE+=("$instance")
    LAYOUT_PORT+=("$port")
    LAYOUT_PIDFILE+=("$pidfile")
    LAYOUT_DATABASE+=("$database")
  done <"$file"
}

layout_urls() {
  local svc=$1 sep=${2:-$'\n'} k out=()
  _known_service "$svc" || return 1
  load_layout || true
  for k in "${!LAYOUT_SERVICE[@]}"; do
    [[ "${LAYOUT_SERVICE[k]}" == "$svc" ]] && out+=("http://127.0.0.1:${LAYOUT_PORT[k]}")
  done
  ((${#out[@]} > 0)) || out=("$(service_url "$svc")")
  local joined=${out[0]}
  for ((k = 1; k < ${#out[@]}; k++)); do joined+="$sep${out[k]}"; done
  echo "$joined"
}

layout_database_urls() {
  local svc=$1 k found=0
  _known_service "$svc" || return 1
  load_layout || true
  for k in "${!LAYOUT_SERVICE[@]}"; do
    if [[ "${LAYOUT_SERVICE[k]}" == "$svc" ]]; then
      printf '%s\t%s\n' "${LAYOUT_INSTANCE[k]}" "${LAYOUT_DATABASE[k]}"
      found=1
    fi
  done
  ((found)) || printf '0\t%s\n' "$(service_database_url "$svc" 0)"
}

load_services "$SERVICES_FILE"
