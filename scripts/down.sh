#!/usr/bin/env bash
# Stops exactly the processes whose pid files are in run/pids (env RUN_DIR), in the
# reverse order of scripts/up.sh: services (services.tsv, last line first), then the schema
# registry, then the broker.
# Each gets TERM, then KILL after STOP_TIMEOUT seconds (default 15).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_DIR="$RUN_DIR/pids"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"
# The services in reverse start order (SERVICES: services.tsv), then registry and broker.
ORDER=()
for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do ORDER+=("${SERVICES[i]}"); done
ORDER+=(schema-registry nisshi)

if [[ ! -d "$PID_DIR" ]]; then
  log "nothing to stop ($PID_DIR does not exist)"
  exit 0
fi

# Pid files of anything else (not in ORDER) go first: they are clients of the others.
shopt -s nullglob
for f in "$PID_DIR"/*.pid; do
  name=$(basename "$f" .pid)
  [[ " ${ORDER[*]} " == *" $name "* ]] && continue
  stop_pidfile "$f" "$STOP_TIMEOUT"
done
for name in "${ORDER[@]}"; do
  stop_pidfile "$PID_DIR/$name.pid" "$STOP_TIMEOUT"
done
log "all stopped"
