# shellcheck shell=bash
# Shared helpers for the project's scripts. Source it; do not run it.
#
#   REPO_ROOT   the repository root (derived from this file's location)
#   RUN_DIR     logs, pid files and data of `scripts/up.sh` (default <repo>/run)
#   TOOLS_DIR   tools built by `scripts/install.sh` (default <repo>/.tools)
#
# Everything listens on loopback only (127.0.0.1).
#
# This is the one entry point: it sources the parts under scripts/lib/, in this order:
#   common.sh    paths (REPO_ROOT, RUN_DIR, TOOLS_DIR, CARGO_HOME), PATH, log/warn/die, timing
#   proc.sh      free ports, TCP/HTTP probes and waits, background processes and pid files
#   tools.sh     where kcat and k6 are
#   broker.sh    the nisshi broker: nisshi_bin, start_broker
#   build.sh     workspace binaries: target_bin, built_bin, build_workspace_bins
#   postgres.sh  the tests' private PostgreSQL server
#   services.sh  the service list (<repo>/services.tsv): SERVICES, SERVICE_PORT, ...
#   compose.sh   the Apache Kafka compose files: validate_compose

if [[ -n "${_ORDERS_LIB_SH:-}" ]]; then
  return 0
fi
_ORDERS_LIB_SH=1

_ORDERS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)"

# shellcheck source=lib/common.sh
source "$_ORDERS_LIB_DIR/common.sh"
# shellcheck source=lib/proc.sh
source "$_ORDERS_LIB_DIR/proc.sh"
# shellcheck source=lib/tools.sh
source "$_ORDERS_LIB_DIR/tools.sh"
# shellcheck source=lib/broker.sh
source "$_ORDERS_LIB_DIR/broker.sh"
# shellcheck source=lib/build.sh
source "$_ORDERS_LIB_DIR/build.sh"
# shellcheck source=lib/postgres.sh
source "$_ORDERS_LIB_DIR/postgres.sh"
# shellcheck source=lib/services.sh
source "$_ORDERS_LIB_DIR/services.sh"
# shellcheck source=lib/compose.sh
source "$_ORDERS_LIB_DIR/compose.sh"
