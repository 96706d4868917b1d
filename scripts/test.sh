#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, builds, starts its
# own broker (nisshi, memory storage, free port), its own schema registry (free port) and
# its own PostgreSQL server (free port, data under the run folder), then runs
# `cargo test --workspace "$@"` twice: pass 1 with the read models on SQLite
# (READ_MODEL_DB=sqlite), pass 2 on PostgreSQL (READ_MODEL_DB=postgres: every test and every
# service of the system tests gets its own fresh database on that server). Stops all three
# on exit, also on failure. Exit code: 0 only when every pass passed.
#
# Exported to the tests:
#   KAFKA_BROKERS        127.0.0.1:<port> of this run's broker
#   SCHEMA_REGISTRY_URL  http://127.0.0.1:<port> of this run's registry
#   TEST_RUN_DIR         a folder for this run (logs of broker and registry, scratch space)
#   KCAT                 path of kcat (librdkafka 2.12.1)
#   K6                   path of k6 (when installed)
#   TEST_POSTGRES_URL    postgres://orders_test:<pw>@127.0.0.1:<port>/postgres (a superuser)
#   READ_MODEL_DB        sqlite or postgres: the pass running
#
# Before the build: `docker-compose config` of docker-compose.kafka.yml, alone and with the
# 3-broker docker-compose.kafka-3.yml (scripts/lib/compose.sh; Docker itself cannot run here).
# After them: a 20 s smoke of the k6 load test against the whole system (LOAD_SMOKE=0 skips it),
# then schemathesis against every service's OpenAPI document on the whole system, about 1.5
# minutes: no 5xx, every response as documented (scripts/api-fuzz.sh; API_FUZZ=0 skips it).
# Last, the short form of the chaos run (scripts/chaos.sh --duration 45s --rate 300, about two
# minutes; CHAOS=0 skips it, CHAOS_SEED=N repeats a run's schedule).
# Before the tests: `cargo fmt --check` and `cargo clippy --workspace --all-targets -D warnings`
# (NO_LINT=1 skips both).
# Env: TEST_RUN_DIR (default run/test-<timestamp>), NO_INSTALL=1, NO_BUILD=1,
#      KEEP_TEST_RUN_DIR=0 (delete the run folder when the tests pass),
#      READ_MODEL_DBS="sqlite postgres" (the passes to run, in order; e.g. "postgres").
# The PostgreSQL data folder (one database per test) is deleted when the run ends; its
# log stays in <run folder>/postgres/postgres.log.
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

READ_MODEL_DBS="${READ_MODEL_DBS:-sqlite postgres}"
for db in $READ_MODEL_DBS; do
  [[ "$db" == sqlite || "$db" == postgres ]] || die "READ_MODEL_DBS: unknown database '$db' (sqlite, postgres)"
done
[[ -n "${READ_MODEL_DBS// /}" ]] || die "READ_MODEL_DBS is empty"
PG_DIR="$TEST_RUN_DIR/postgres"

test_rc=1
tests_ran=0
# One line per step (pass, load smoke, API fuzz, chaos), printed last of all, after the logs
# of a failure: a CI that shows only the end of the output still shows what failed.
summary=()
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if ((tests_ran)) && ((test_rc != 0)) || ((!tests_ran && rc != 0)); then
    for f in "$LOG_DIR/nisshi.log" "$LOG_DIR/schema-registry.log" "$PG_DIR/postgres.log"; do
      if [[ -f "$f" ]]; then
        echo "----- last 50 lines of $f -----" >&2
        tail -n 50 "$f" >&2
      fi
    done
  fi
  for line in "${summary[@]}"; do log "[test] $line"; done
  stop_pidfile "$PID_DIR/schema-registry.pid" 10
  stop_pidfile "$PID_DIR/nisshi.pid" 10
  if [[ -e "$PG_DIR" ]]; then
    stop_test_postgres "$PG_DIR"
    rm -rf "$(readlink -f "$PG_DIR")/data"
  fi
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
# Formatting and lints are part of the suite: a red lint fails the run like a red test.
if [[ "${NO_LINT:-0}" != 1 ]]; then
  for component in rustfmt clippy; do
    cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || timed "[install] rustup component $component" rustup component add "$component"
  done
  timed "[lint] cargo fmt --all --check" cargo fmt --all -- --check
fi
# The Apache Kafka compose files must validate (their contents: system-tests/tests/compose.rs).
timed "[check] docker-compose config (docker-compose.kafka.yml: 1 and 3 brokers)" validate_compose
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  timed "[build] cargo build --workspace --all-targets" cargo build --workspace --all-targets
fi
if [[ "${NO_LINT:-0}" != 1 ]]; then
  timed "[lint] cargo clippy --workspace --all-targets -D warnings" cargo clippy --workspace --all-targets -- -D warnings
fi

# ------------------------------------------------------------------ broker + registry
# Each pass gets a fresh (empty, in-memory) broker and registry, so both passes start from the
# same state: a stack's projections read every event already on the broker.
start_broker_and_registry() {
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
  log "broker   $KAFKA_BROKERS (memory, log $LOG_DIR/nisshi.log)"
  log "registry $SCHEMA_REGISTRY_URL (log $LOG_DIR/schema-registry.log)"
}

stop_broker_and_registry() {
  stop_pidfile "$PID_DIR/schema-registry.pid" 10
  stop_pidfile "$PID_DIR/nisshi.pid" 10
}

KCAT="$(kcat_bin)"
export KCAT
K6="$(k6_bin)"
export K6
log "KCAT=$KCAT TEST_RUN_DIR=$TEST_RUN_DIR"

# ------------------------------------------------------------------------- PostgreSQL
if [[ " $READ_MODEL_DBS " == *" postgres "* ]]; then
  start_test_postgres "$PG_DIR" || die "PostgreSQL for the READ_MODEL_DB=postgres pass did not start"
fi

# ------------------------------------------------------------------------------ tests
# One pass per read-model database, the same command each time. (While a pass's broker and
# registry start, tests_ran=0: a failure there exits with its own code.)
test_rc=0
read -r -a passes <<<"$READ_MODEL_DBS"
for i in "${!passes[@]}"; do
  db=${passes[$i]}
  label="pass $((i + 1))/${#passes[@]} READ_MODEL_DB=$db"
  log "===== $label: cargo test --workspace $* ====="
  pass_start=$(now_s)
  tests_ran=0
  ((i == 0)) || stop_broker_and_registry
  start_broker_and_registry
  tests_ran=1
  set +e
  # --no-fail-fast: one failing test binary does not hide the others' results.
  pass_log="$TEST_RUN_DIR/pass-$((i + 1))-$db.log"
  READ_MODEL_DB=$db cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$pass_log"
  rc=${PIPESTATUS[0]}
  set -e
  took=$(($(now_s) - pass_start))
  if ((rc == 0)); then
    summary+=("$label: passed in ${took}s ($(fmt_duration "$took"))")
  else
    failed=$(grep -E '^test .* \.\.\. FAILED$' "$pass_log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u | paste -sd, - || true)
    summary+=("$label: FAILED (exit $rc) after ${took}s ($(fmt_duration "$took")); failed: ${failed:-see $pass_log}")
    ((test_rc != 0)) || test_rc=$rc
  fi
  log "===== ${summary[-1]} ====="
done
stop_broker_and_registry

# ------------------------------------------------------------------------- load smoke
# The k6 load test keeps working: the whole system as scripts/up.sh starts it (debug build,
# memory broker, its own run folder; two instances of every service over 2 partitions, so
# k6 places each order on one order-svc and waits for it on the other), 20 s at 600 orders/min, then every order placed must be
# terminal and the summary written. No timing is asserted here (--target-ms is the wait budget).
load_smoke() {
  local dir="$TEST_RUN_DIR/load-smoke" summary rc=0
  RUN_DIR="$dir" KAFKA_PORT=$(free_port) REGISTRY_PORT=$(free_port) PROFILE=debug PARTITIONS=2 \
    "$REPO_ROOT/scripts/up.sh" --memory --no-install --no-build --instances 2 || rc=$?
  # A failed start may leave some processes up: stop them either way.
  if ((rc == 0)); then
    RUN_DIR="$dir" LOAD_DIR="$dir/load" "$REPO_ROOT/scripts/load.sh" --rate 600 --duration 20s --target-ms 30000 || rc=$?
  fi
  RUN_DIR="$dir" "$REPO_ROOT/scripts/down.sh" || true
  ((rc == 0)) || return "$rc"
  summary=$(ls -1 "$dir"/load/*/summary.json 2>/dev/null | tail -n 1)
  [[ -n "$summary" ]] || { warn "load smoke: no summary.json under $dir/load"; return 1; }
  python3 "$REPO_ROOT/scripts/lib/all_settled.py" "$summary" || return 1
  return "$rc"
}
if [[ "${LOAD_SMOKE:-1}" == 1 ]]; then
  smoke_start=$(now_s)
  if load_smoke; then
    summary+=("load smoke (20 s at 600 orders/min): passed in $(fmt_duration $(($(now_s) - smoke_start)))")
  else
    summary+=("load smoke (20 s at 600 orders/min): FAILED")
    ((test_rc != 0)) || test_rc=1
  fi
fi

# ------------------------------------------------------------------------- API fuzz
# The whole system as scripts/up.sh starts it (debug build, memory broker, its own run folder),
# then scripts/api-fuzz.sh with its fixed seed. Stops the system whatever happened.
api_fuzz() {
  local dir="$TEST_RUN_DIR/api-fuzz" start rc=0
  start=$(now_s)
  RUN_DIR="$dir" KAFKA_PORT=$(free_port) REGISTRY_PORT=$(free_port) PROFILE=debug \
    "$REPO_ROOT/scripts/up.sh" --memory --no-install --no-build || rc=$?
  if ((rc == 0)); then
    RUN_DIR="$dir" API_FUZZ_DIR="$dir/reports" "$REPO_ROOT/scripts/api-fuzz.sh" || rc=$?
  fi
  RUN_DIR="$dir" "$REPO_ROOT/scripts/down.sh" || true
  local totals
  totals=$(cat "$dir/reports/totals.txt" 2>/dev/null || echo "no totals")
  if ((rc == 0)); then
    summary+=("API fuzz (schemathesis: $totals): passed in $(fmt_duration $(($(now_s) - start)))")
  else
    summary+=("API fuzz (schemathesis: $totals): FAILED (reports under $dir/reports)")
    ((test_rc != 0)) || test_rc=1
  fi
}
if [[ "${API_FUZZ:-1}" == 1 ]]; then api_fuzz; fi

# ------------------------------------------------------------------------- chaos (short form)
# scripts/chaos.sh for 45 s at 300 orders/min (debug build, its own durable broker behind its
# fault proxy): every fault kind once or more, then every invariant. A new seed each run,
# printed (CHAOS_SEED=N repeats one).
chaos_short() {
  local start seed_args=()
  start=$(now_s)
  [[ -n "${CHAOS_SEED:-}" ]] && seed_args=(--seed "$CHAOS_SEED")
  mkdir -p "$TEST_RUN_DIR/chaos"
  # Its output is kept too: a run that ends before its summary is explained by its last lines.
  if CHAOS_DIR="$TEST_RUN_DIR/chaos" PROFILE=debug "$REPO_ROOT/scripts/chaos.sh" --no-build --duration 45s --rate 300 "${seed_args[@]}" \
    2>&1 | tee "$TEST_RUN_DIR/chaos/chaos.out"; then
    summary+=("chaos (45 s at 300 orders/min, faults of every kind): passed in $(fmt_duration $(($(now_s) - start)))")
  else
    summary+=("chaos (45 s at 300 orders/min): FAILED (summary and logs under $TEST_RUN_DIR/chaos)")
    local line
    while IFS= read -r line; do summary+=("  chaos: $line"); done \
      < <(python3 "$REPO_ROOT/scripts/lib/chaos_failures.py" "$TEST_RUN_DIR/chaos")
    ((test_rc != 0)) || test_rc=1
  fi
}
if [[ "${CHAOS:-1}" == 1 ]]; then chaos_short; fi

log "cargo test exit code: $test_rc"
exit "$test_rc"
