#!/usr/bin/env bash
# k6 load test of the running system (scripts/up.sh first): seeds stock and funds of its own
# (unique SKUs and customers per run) and waits until they are visible, then places orders with
# POST /orders at a constant arrival rate and waits for each with
# GET /orders/{id}?wait_for=CONFIRMED,CANCELLED (load/orders.js). Traffic goes to 127.0.0.1 only.
# With several instances (`scripts/up.sh --instances N`: the layout in run/instances.tsv) the
# requests go round-robin over them: each order is placed on one order-svc instance and
# waited for on the next, seeds spread over the inventory-svc and payment-svc instances and
# are waited for on every one; CPU and the idle /ready probes cover every instance.
#
#   scripts/load.sh                              600 orders/min for 1m
#   scripts/load.sh --rate 10000 --duration 2m   the seeds' bar
#   scripts/load.sh --ramp --rate 600            steps the rate up (x --ramp-factor) until a
#                                                threshold fails; prints the highest rate that held
#   scripts/load.sh --idle 60                    no traffic: CPU of every process for 60 s and
#                                                whether every /ready stayed 200
#
# Options
#   --rate N              orders per minute (600)
#   --duration D          k6 duration per run / ramp step (1m)
#   --ramp                ramp mode (see above)
#   --ramp-factor F       rate multiplier per step (1.5); --ramp-max N stops there (100000)
#   --out-of-stock F, --declined F, --unserviceable F   order mix shares (0.03 0.03 0.02)
#   --target-ms MS        bound for "terminal within" and p99 (5000)
#   --wait-budget-ms MS   how long one order is waited for at most (30000)
#   --idle SECONDS        idle measurement instead of a load test
# Env: RUN_DIR (run), LOAD_DIR (run/load), CUSTOMERS (200), SKUS (50), MAX_LINES (2),
#      K6_EXTRA_ARGS (passed to k6 run), API_TOKEN (the bearer token of `up.sh --secure`;
#      default: the contents of run/api-token when that file exists).
#
# Thresholds: p99 place->terminal <= target, >= 99 % terminal within target, no HTTP errors,
# at most 1 % of the arrivals dropped by k6 (no free VU: the rate was not offered).
# Exits 1 when they fail (in ramp mode: when the first step fails).
# Each run writes run/load/<timestamp>/[rate-N/]{report.html,summary.json,summary.txt,k6.log,cpu.tsv}.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RATE=600
DURATION=1m
RAMP=0
RAMP_FACTOR=1.5
RAMP_MAX=100000
SHARE_OOS=0.03
SHARE_DECLINED=0.03
SHARE_UNSERVICEABLE=0.02
TARGET_MS=5000
WAIT_BUDGET_MS=30000
IDLE=0
while (($# > 0)); do
  case "$1" in
    --rate) RATE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --ramp) RAMP=1 ;;
    --ramp-factor) RAMP_FACTOR=$2; shift ;;
    --ramp-max) RAMP_MAX=$2; shift ;;
    --out-of-stock) SHARE_OOS=$2; shift ;;
    --declined) SHARE_DECLINED=$2; shift ;;
    --unserviceable) SHARE_UNSERVICEABLE=$2; shift ;;
    --target-ms) TARGET_MS=$2; shift ;;
    --wait-budget-ms) WAIT_BUDGET_MS=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    -h | --help)
      sed -n '2,34p' "$0"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
[[ "$RATE" =~ ^[0-9]+$ ]] && ((RATE > 0)) || die "--rate must be a positive integer (orders/min)"

PID_DIR="$RUN_DIR/pids"
LOAD_DIR="${LOAD_DIR:-$RUN_DIR/load}"
SCRIPT="$REPO_ROOT/load/orders.js"
[[ -f "$SCRIPT" ]] || die "$SCRIPT missing"

# -------------------------------------------- services (services.tsv and the running layout)
for need in order-svc inventory-svc payment-svc; do
  is_service "$need" || die "$need is not in $SERVICES_FILE"
done
[[ -r "$(layout_file)" ]] || log "no $(layout_file) (scripts/up.sh writes it): instance 0 of each service only"
# urls_of SVC: the comma-separated base URLs of SVC's running instances (layout_urls:
# scripts/lib/services.sh), as load/orders.js takes them.
urls_of() { layout_urls "$1" ,; }

# ---------------------------------------------------------------------------- CPU from /proc
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ticks PID: utime+stime of PID (fields 14 and 15 of /proc/PID/stat), empty when gone.
ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # after "comm": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}

# cpu_snapshot FILE: "name<TAB>pid<TAB>ticks" for every pid file under run/pids, plus the sum
# over PostgreSQL processes (when Nisshi or the read models use a PostgreSQL on this box).
cpu_snapshot() {
  local out=$1 f name pid t sum=0 p c
  : >"$out"
  shopt -s nullglob
  for f in "$PID_DIR"/*.pid; do
    name=$(basename "$f" .pid)
    pid=$(cat "$f" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    t=$(ticks "$pid")
    [[ -n "$t" ]] && printf '%s\t%s\t%s\n' "$name" "$pid" "$t" >>"$out"
  done
  local n=0
  for p in /proc/[0-9]*; do
    c=$(cat "$p/comm" 2>/dev/null || true)
    if [[ "$c" == postgres ]]; then
      t=$(ticks "${p#/proc/}")
      [[ -n "$t" ]] && sum=$((sum + t)) && n=$((n + 1))
    fi
  done
  ((n > 0)) && printf 'postgres(all %d)\t-\t%s\n' "$n" "$sum" >>"$out"
  return 0
}

# cpu_delta BEFORE AFTER SECONDS OUT: name, pid, CPU seconds and % of one core over the interval.
cpu_delta() {
  python3 - "$1" "$2" "$3" "$CLK_TCK" >"$4" <<'EOF'
import sys
before, after, secs, hz = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
def load(p):
    d = {}
    for line in open(p):
        name, pid, t = line.rstrip("\n").split("\t")
        d[name.split("(")[0]] = (name, pid, int(t))
    return d
b, a = load(before), load(after)
print("process\tpid\tcpu_s\tpct_core")
total = 0.0
for key, (name, pid, t) in a.items():
    if key not in b or b[key][1] != pid:
        continue
    s = (t - b[key][2]) / hz
    total += s
    print(f"{name}\t{pid}\t{s:.2f}\t{100 * s / secs if secs else 0:.1f}")
print(f"TOTAL\t-\t{total:.2f}\t{100 * total / secs if secs else 0:.1f}")
EOF
}

# -------------------------------------------------------------------------------- idle mode
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if ((IDLE > 0)); then
  dir="$LOAD_DIR/$STAMP-idle"
  mkdir -p "$dir"
  cpu_snapshot "$dir/cpu.before"
  start=$(date +%s.%N)
  not_ready=0
  declare -A bad
  for ((i = 0; i < IDLE; i++)); do
    for svc in "${SERVICES[@]}"; do
      while read -r url; do
        code=$(http_status "$url/ready")
        if [[ "$code" != 200 ]]; then
          not_ready=$((not_ready + 1))
          bad[$url]=$((${bad[$url]:-0} + 1))
        fi
      done < <(layout_urls "$svc")
    done
    sleep 1
  done
  secs=$(python3 -c "import time; print(time.time() - $start)")
  cpu_snapshot "$dir/cpu.after"
  cpu_delta "$dir/cpu.before" "$dir/cpu.after" "$secs" "$dir/cpu.tsv"
  {
    printf 'idle %.0f s (no traffic from this script; the /ready probes are 1 per service instance per s)\n' "$secs"
    column -t -s $'\t' "$dir/cpu.tsv"
    if ((not_ready == 0)); then
      echo "/ready: 200 on every probe"
    else
      printf '/ready: %d non-200 answers:' "$not_ready"
      for svc in "${!bad[@]}"; do printf ' %s=%s' "$svc" "${bad[$svc]}"; done
      echo
    fi
  } | tee "$dir/summary.txt"
  exit 0
fi

# ------------------------------------------------------------------------------------- k6
# k6 reads API_TOKEN from its environment (never from its arguments, which ps shows).
if [[ -z "${API_TOKEN:-}" && -s "$RUN_DIR/api-token" ]]; then
  API_TOKEN=$(<"$RUN_DIR/api-token")
fi
[[ -n "${API_TOKEN:-}" ]] && export API_TOKEN
K6=$(k6_bin)
if [[ -z "$K6" ]]; then
  "$REPO_ROOT/scripts/install.sh" k6
  K6=$(k6_bin)
  [[ -n "$K6" ]] || die "k6 not found after scripts/install.sh k6"
fi

for svc in order-svc inventory-svc payment-svc; do
  while read -r url; do
    [[ "$(http_status "$url/health")" == 200 ]] || die "$svc does not answer on $url/health (scripts/up.sh first)"
  done < <(layout_urls "$svc")
done

duration_s() {
  python3 - "$1" <<'EOF'
import re, sys
s, total = sys.argv[1], 0.0
for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", s):
    total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u]
print(total if total else float(s))
EOF
}

# run_once RATE DIR: seed, run k6 at RATE into DIR, print the summary; returns k6's verdict.
run_once() {
  local rate=$1 dir=$2 run_id rc=0
  mkdir -p "$dir"
  run_id="$(date -u +%H%M%S)$RANDOM"
  local common=(
    -e "ORDER_URL=$(urls_of order-svc)" -e "INVENTORY_URL=$(urls_of inventory-svc)" -e "PAYMENT_URL=$(urls_of payment-svc)"
    -e "RATE=$rate" -e "DURATION=$DURATION" -e "RUN_ID=$run_id"
    -e "SHARE_OUT_OF_STOCK=$SHARE_OOS" -e "SHARE_DECLINED=$SHARE_DECLINED" -e "SHARE_UNSERVICEABLE=$SHARE_UNSERVICEABLE"
    -e "TARGET_MS=$TARGET_MS" -e "WAIT_BUDGET_MS=$WAIT_BUDGET_MS"
    -e "CUSTOMERS=${CUSTOMERS:-200}" -e "SKUS=${SKUS:-50}" -e "MAX_LINES=${MAX_LINES:-2}"
  )
  log "seeding stock and funds (run $run_id) ..."
  "$K6" run -q --no-summary "${common[@]}" -e SEED_ONLY=1 "$SCRIPT" >"$dir/k6-seed.log" 2>&1 || {
    tail -n 20 "$dir/k6-seed.log" >&2
    die "seeding failed (log $dir/k6-seed.log)"
  }
  log "k6: $rate orders/min for $DURATION -> $dir"
  cpu_snapshot "$dir/cpu.before"
  local start
  start=$(date +%s.%N)
  # shellcheck disable=SC2086  # K6_EXTRA_ARGS is a list of words
  K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_EXPORT="$dir/report.html" \
    "$K6" run --quiet "${common[@]}" -e SEEDED=1 -e "SUMMARY_JSON=$dir/summary.json" ${K6_EXTRA_ARGS:-} "$SCRIPT" \
    >"$dir/k6.log" 2>&1 || rc=$?
  local secs
  secs=$(python3 -c "import time; print(time.time() - $start)")
  cpu_snapshot "$dir/cpu.after"
  cpu_delta "$dir/cpu.before" "$dir/cpu.after" "$secs" "$dir/cpu.tsv"
  if [[ ! -f "$dir/summary.json" ]]; then
    tail -n 30 "$dir/k6.log" >&2
    die "k6 wrote no summary (exit $rc; log $dir/k6.log)"
  fi
  python3 - "$dir/summary.json" "$dir/cpu.tsv" "$(duration_s "$DURATION")" "$secs" "$rc" >"$dir/summary.txt" <<'EOF'
import json, sys
summary, cpu, dur, wall, rc = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
d = json.load(open(summary))
m = d["metrics"]
def v(name, field, default=0):
    return m.get(name, {}).get("values", {}).get(field, default)
o = d.get("orderflow", {})
placed = v("orders_placed", "count")
conf, canc, nt = v("orders_confirmed", "count"), v("orders_cancelled", "count"), v("orders_not_terminal", "count")
terminal = conf + canc
within = v("order_terminal_within_target", "rate")
print(f"orders: target {o.get('rate_per_min')}/min for {o.get('duration')}; placed {placed:.0f} "
      f"= {placed / dur * 60:.0f} orders/min achieved; terminal {terminal:.0f} ({terminal / dur * 60:.0f}/min)")
print(f"place->terminal ms: p50 {v('order_place_to_terminal', 'med'):.0f}  p95 {v('order_place_to_terminal', 'p(95)'):.0f}  "
      f"p99 {v('order_place_to_terminal', 'p(99)'):.0f}  max {v('order_place_to_terminal', 'max'):.0f}   "
      f"within {o.get('target_ms')} ms: {100 * within:.2f} %")
def pct(n):
    return f"{n:.0f} ({100 * n / placed:.1f} %)" if placed else f"{n:.0f}"
print(f"status: CONFIRMED {pct(conf)}  CANCELLED {pct(canc)}  not terminal after {o.get('wait_budget_ms')} ms {pct(nt)}")
print(f"  cancelled: OUT_OF_STOCK {v('cancelled_out_of_stock', 'count'):.0f}  PAYMENT_DECLINED {v('cancelled_payment_declined', 'count'):.0f}  "
      f"SHIPPING_UNAVAILABLE {v('cancelled_shipping_unavailable', 'count'):.0f}  CUSTOMER_REQUEST {v('cancelled_customer_request', 'count'):.0f}  "
      f"other {v('cancelled_other_reason', 'count'):.0f};  unexpected outcome {v('orders_unexpected_outcome', 'count'):.0f}")
print(f"http: {v('http_reqs', 'count'):.0f} requests, failed {100 * v('http_req_failed', 'rate'):.2f} %, "
      f"POST /orders failed {v('orders_post_failed', 'count'):.0f}, dropped iterations {v('dropped_iterations', 'count'):.0f}")
print(f"CPU during the run ({wall:.0f} s wall incl. waiting for the last orders):")
rows = [l.rstrip("\n").split("\t") for l in open(cpu)][1:]
for name, pid, s, p in rows:
    print(f"  {name:<20} {s:>8} s  {p:>6} % of a core")
failed = [f"{k}: {', '.join(t for t, ok in ((t, r.get('ok', True)) for t, r in x.get('thresholds', {}).items()) if not ok)}"
          for k, x in m.items() if any(not r.get("ok", True) for r in x.get("thresholds", {}).values())]
print("thresholds: " + ("PASSED" if rc == 0 and not failed else f"FAILED (k6 exit {rc}) " + "; ".join(failed)))
print(f"report: {summary.rsplit('/', 1)[0]}/report.html")
EOF
  cat "$dir/summary.txt"
  return "$rc"
}

root="$LOAD_DIR/$STAMP"
if ((RAMP == 0)); then
  if run_once "$RATE" "$root"; then exit 0; fi
  exit 1
fi

held=0
rate=$RATE
while ((rate <= RAMP_MAX)); do
  if run_once "$rate" "$root/rate-$rate"; then
    held=$rate
    log "rate $rate orders/min held"
  else
    log "rate $rate orders/min failed its thresholds"
    break
  fi
  next=$(python3 -c "import math; print(max($rate + 1, math.floor($rate * $RAMP_FACTOR)))")
  rate=$next
done
{
  if ((held > 0)); then
    echo "ramp: highest rate that held its thresholds: $held orders/min (factor $RAMP_FACTOR, $DURATION per step)"
  else
    echo "ramp: not even $RATE orders/min held its thresholds"
  fi
} | tee "$root/ramp.txt"
((held > 0))
