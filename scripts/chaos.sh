#!/usr/bin/env bash
# Chaos run: the whole system on a durable (sqlite) broker behind a fault-injecting proxy of
# its own, orders at a constant rate with a shop's mix (out of stock, declined, unserviceable,
# cancelled by the customer, dispatched and delivered), and on a seeded schedule that it prints:
# kill -9 of a random service every 4-9 s (restarted after 0-3 s), kill -9 of the broker once
# (restarted on the same storage), a schema registry restart, reset, refused and delayed
# connections to the broker, a process stalled past its session timeout (SIGSTOP: evicted from
# its groups) and an operator pause; with --postgres also a PostgreSQL restart.
# Then, faults over, it waits at most --settle for: every order terminal, none lost, none
# twice; stock (on_hand = restocked - shipped, reserved = live reservations, never oversold);
# money (balance = deposited - captured + refunded, captured - refunded = the orders not
# cancelled); exactly one notification decided and delivered per (order, kind); every
# service's `replay --verify`. It prints each figure and the time to recover, and exits 1
# when any check fails. Everything listens on 127.0.0.1 and stops by itself.
#
#   scripts/chaos.sh                          600 orders/min for 3 min (the full run)
#   scripts/chaos.sh --duration 45s --rate 300   the short form scripts/test.sh runs
#   scripts/chaos.sh --seed 42                repeat a run's schedule and orders
#   scripts/chaos.sh --postgres               read models on a private PostgreSQL, restarted once
#
# Options: --rate N (orders/min, 600), --duration D (3m), --settle D (60s), --seed N,
#          --partitions N (per topic, 1 as up.sh on Nisshi),
#          --postgres, --no-build.
# Env: PROFILE (release | debug, default release), CHAOS_DIR (default run/chaos-<timestamp>).
# Writes <CHAOS_DIR>/summary.json; logs of every process under <CHAOS_DIR>.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

args=()
POSTGRES=0
BUILD=1
while (($#)); do
  case "$1" in
    --rate | --duration | --settle | --seed | --partitions)
      (($# >= 2)) || die "$1 needs a value"
      args+=("$1" "$2")
      shift 2
      ;;
    --postgres) POSTGRES=1 && shift ;;
    --no-build) BUILD=0 && shift ;;
    -h | --help)
      sed -n '2,25p' "$0"
      exit 0
      ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

PROFILE="${PROFILE:-release}"
CHAOS_DIR="${CHAOS_DIR:-$RUN_DIR/chaos-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$CHAOS_DIR"
CHAOS_DIR="$(cd "$CHAOS_DIR" && pwd)"
NISSHI=$(nisshi_bin)
[[ -n "$NISSHI" ]] || die "nisshi not installed (run scripts/install.sh)"
# The chaos run starts `nisshi` from PATH.
PATH="$(dirname "$NISSHI"):$PATH"

if ((BUILD)); then
  build_workspace_bins "$PROFILE"
fi
CHAOS_BIN=$(target_bin "$PROFILE" chaos)
[[ -x "$CHAOS_BIN" ]] || die "$CHAOS_BIN not built (run without --no-build, or set PROFILE)"

PG_DIR="$CHAOS_DIR/postgres"
cleanup() {
  [[ -e "$PG_DIR/data" || -L "$PG_DIR" ]] && stop_test_postgres "$PG_DIR"
  return 0
}
trap cleanup EXIT
export READ_MODEL_DB=sqlite
if ((POSTGRES)); then
  # Durable, as a real server: it is restarted mid-run and must keep what it acknowledged.
  TEST_PG_DURABLE=1 start_test_postgres "$PG_DIR" || die "PostgreSQL for the read models did not start"
  export READ_MODEL_DB=postgres
  cat >"$CHAOS_DIR/restart-postgres" <<EOS
#!/usr/bin/env bash
source "$REPO_ROOT/scripts/lib.sh"
restart_test_postgres "$PG_DIR"
EOS
  chmod +x "$CHAOS_DIR/restart-postgres"
  args+=(--postgres-restart "$CHAOS_DIR/restart-postgres")
fi

log "chaos run in $CHAOS_DIR (read models on $READ_MODEL_DB, $PROFILE build)"
TEST_RUN_DIR="$CHAOS_DIR" "$CHAOS_BIN" --dir "$CHAOS_DIR" "${args[@]}"
