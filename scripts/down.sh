#!/usr/bin/env bash
# Stops exactly the processes whose pid files are in run/pids (env RUN_DIR), in the
# reverse order of scripts/up.sh: services (services.tsv, last line first; of each service
# every instance, the highest first: `up.sh --instances N`), then the schema registry, then
# the broker. Removes run/instances.tsv, the layout of what ran.
# Each gets TERM, then KILL after STOP_TIMEOUT seconds (default 15).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_DIR="$RUN_DIR/pids"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"
# The services in reverse start order (SERVICES: services.tsv), each with every instance it
# can have (instance_name: scripts/lib/services.sh), whatever count the last up.sh used, then
# registry and broker.
ORDER=()
for ((s = ${#SERVICES[@]} - 1; s >= 0; s--)); do
  for ((i = MAX_INSTANCES - 1; i >= 0; i--)); do ORDER+=("$(instance_name "${SERVICES[s]}" "$i")"); done
done
ORDER+=(schema-registry nisshi)

if [[ ! -d "$PID_DIR" ]]; then
  log "nothing to stop ($PID_DIR does not exist)"
  rm -f "$(layout_file)"
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
rm -f "$(layout_file)"
log "all stopped"
