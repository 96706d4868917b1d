#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, builds, starts its
# own broker (nisshi, memory storage, free port) and its own schema registry (free port),
# runs `cargo test --workspace "$@"` against them, and stops both on exit, also on
# failure. Exit code = the test exit code.
#
# Exported to the tests:
#   KAFKA_BROKERS        127.0.0.1:<port> of this run's broker
#   SCHEMA_REGISTRY_URL  http://127.0.0.1:<port> of this run's registry
#   TEST_RUN_DIR         a folder for this run (logs of broker and registry, scratch space)
#   KCAT                 path of kcat (librdkafka 2.12.1)
#   K6                   path of k6 (when installed)
#
# Env: TEST_RUN_DIR (default run/test-<timestamp>), NO_INSTALL=1, NO_BUILD=1,
#      KEEP_TEST_RUN_DIR=0 (delete the run folder when the tests pass).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

test_start=$(now_s)
cd "$REPO_ROOT"

TEST_RUN_DIR="${TEST_RUN_DIR:-$RUN_DIR/test-$(date +%Y%m%d-%H%M%S)-$$}"
mkdir -p "$TEST_RUN_DIR"
TEST_RUN_DIR="$(cd "$TEST_RUN_DIR" && pwd)"
export TEST_RUN_DIR
export LOG_DIR="$TEST_RUN_DIR/logs" PID_DIR="$TEST_RUN_DIR/pids"
mkdir -p "$LOG_DIR" "$PID_DIR"

test_rc=1
tests_ran=0
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if ((tests_ran)) && ((test_rc != 0)) || ((!tests_ran && rc != 0)); then
    for name in nisshi schema-registry; do
      if [[ -f "$LOG_DIR/$name.log" ]]; then
        echo "----- last 50 lines of $LOG_DIR/$name.log -----" >&2
        tail -n 50 "$LOG_DIR/$name.log" >&2
      fi
    done
  fi
  stop_pidfile "$PID_DIR/schema-registry.pid" 10
  stop_pidfile "$PID_DIR/nisshi.pid" 10
  if ((tests_ran)) && ((test_rc == 0)) && [[ "${KEEP_TEST_RUN_DIR:-1}" == 0 ]]; then
    rm -rf "$TEST_RUN_DIR"
  fi
  log "test.sh total: $(fmt_duration $(($(now_s) - test_start))) (exit $( ((tests_ran)) && echo "$test_rc" || echo "$rc"))"
  if ((tests_ran)); then exit "$test_rc"; else exit "$rc"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ install and build
if [[ "${NO_INSTALL:-0}" != 1 ]]; then
  timed "[test] install" "$REPO_ROOT/scripts/install.sh"
fi
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  timed "[build] cargo build --workspace --all-targets" cargo build --workspace --all-targets
fi

# ------------------------------------------------------------------ broker + registry
KAFKA_PORT=$(free_port)
start_broker nisshi "$KAFKA_PORT" "memory://nisshi/" "$TEST_RUN_DIR"
wait_for_tcp 127.0.0.1 "$KAFKA_PORT" 60 "$BG_PID" || die "broker did not start"
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"

REGISTRY_PORT=$(free_port)
REGISTRY_BIN=$(target_bin debug schema-registry)
[[ -x "$REGISTRY_BIN" ]] || die "$REGISTRY_BIN not built"
start_bg schema-registry "$TEST_RUN_DIR" env \
  KAFKA_BROKERS="$KAFKA_BROKERS" \
  HTTP_ADDR="127.0.0.1:$REGISTRY_PORT" \
  SCHEMAS_TOPIC=_schemas \
  "$REGISTRY_BIN"
export SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
wait_for_http "$SCHEMA_REGISTRY_URL/subjects" 60 "$BG_PID" || die "schema registry did not become ready"

KCAT="$(kcat_bin)"
export KCAT
K6="$(k6_bin)"
export K6

log "broker   $KAFKA_BROKERS (memory, log $LOG_DIR/nisshi.log)"
log "registry $SCHEMA_REGISTRY_URL (log $LOG_DIR/schema-registry.log)"
log "KCAT=$KCAT TEST_RUN_DIR=$TEST_RUN_DIR"

# ------------------------------------------------------------------------------ tests
tests_ran=1
set +e
cargo test --workspace "$@"
test_rc=$?
set -e
log "cargo test exit code: $test_rc"
exit "$test_rc"
