#!/usr/bin/env bash
# Restart benchmark: what a restart of order-svc costs as its history grows. order-svc runs
# alone on a durable (sqlite) broker of its own; its order log is filled with the histories of
# N orders (written straight to order.events, five events each up to CONFIRMED), then it is
# killed (-9) and started again, with snapshots off (SNAPSHOT_EVERY_EVENTS=0: the whole log is
# read back) and on. Prints, per history size and setting, the medians of restart-to-/ready,
# restart-to-a-new-order's-first-decision and resident memory, as a table.
#
#   scripts/bench-restart.sh                         1,000, 10,000 and 100,000 orders
#   scripts/bench-restart.sh --orders 1000,10000     other sizes (cumulative, ascending)
#   scripts/bench-restart.sh --restarts 5            restarts per size and setting (3)
#   scripts/bench-restart.sh --snapshots on          only with snapshots on (off | on | both)
#
# Options: --orders LIST, --restarts N, --snapshots off|on|both, --no-build.
# Env: PROFILE (release | debug, default release), BENCH_DIR (default run/bench-restart-<timestamp>).
# Everything listens on 127.0.0.1 and stops by itself; writes <BENCH_DIR>/summary.json.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

args=()
BUILD=1
while (($#)); do
  case "$1" in
    --orders | --restarts | --snapshots)
      (($# >= 2)) || die "$1 needs a value"
      args+=("$1" "$2")
      shift 2
      ;;
    --no-build) BUILD=0 && shift ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

PROFILE="${PROFILE:-release}"
BENCH_DIR="${BENCH_DIR:-$RUN_DIR/bench-restart-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
NISSHI=$(nisshi_bin)
[[ -n "$NISSHI" ]] || die "nisshi not installed (run scripts/install.sh)"
PATH="$(dirname "$NISSHI"):$PATH"

if ((BUILD)); then
  build_workspace_bins "$PROFILE"
fi
BENCH_BIN=$(target_bin "$PROFILE" restart_bench)
[[ -x "$BENCH_BIN" ]] || die "$BENCH_BIN not built (run without --no-build, or set PROFILE)"

export READ_MODEL_DB=sqlite TEST_RUN_DIR="$BENCH_DIR"
log "restart benchmark under $BENCH_DIR"
"$BENCH_BIN" --dir "$BENCH_DIR" "${args[@]}" </dev/null
