#!/usr/bin/env bash
# Rebuild-rate benchmark: fills the topics with a bounded mixed order run, waits until every
# service has caught up, then rebuilds read models with `<service> replay` (while the services
# keep serving) and prints events/s and the duration of each.
#
#   scripts/bench-replay.sh [ORDERS] [--memory]
#       ORDERS    default 6000 orders of 3 lines (≈ 107,000 events for order-svc's rebuild)
#       --memory  broker storage in memory (passed to up.sh); its default, SQLite, is durable
#                 but makes the broker the bottleneck of the order run
#
# Starts the system with scripts/up.sh when it is not running (same ports, run/ folder), so
# it also works on a fresh machine. Traffic goes only to 127.0.0.1; the run is bounded by
# ORDERS and by SETTLE_TIMEOUT (seconds, default 900) and stops by itself.
# Env: KAFKA_PORT (9092), PROFILE (release), SETTLE_TIMEOUT, REPLAY_SERVICES (the services to
#      rebuild, space-separated; default every service of services.tsv, in its order).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ORDERS=6000
UP_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --memory) UP_ARGS+=(--memory) ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *) ORDERS=$arg ;;
  esac
done
[[ "$ORDERS" =~ ^[0-9]+$ ]] && ((ORDERS > 0)) || die "ORDERS must be a positive number"
KAFKA_BROKERS="127.0.0.1:${KAFKA_PORT:-9092}"
SETTLE_TIMEOUT="${SETTLE_TIMEOUT:-900}"
# Service names and ports: services.tsv (SERVICES, SERVICE_PORT: scripts/lib/services.sh).
REPLAY_SERVICES="${REPLAY_SERVICES:-${SERVICES[*]}}"
export PROFILE="${PROFILE:-release}"
PORTS=()
for svc in "${SERVICES[@]}"; do PORTS+=("${SERVICE_PORT[$svc]}"); done
# order-svc: the system is up when it answers; it serves the orderflow_orders gauge.
ORDER_SVC_URL=$(service_url order-svc)

bench_start=$(now_s)
if ! http_status "$ORDER_SVC_URL/health" | grep -q 200; then
  timed "[bench] scripts/up.sh" "$REPO_ROOT/scripts/up.sh" "${UP_ARGS[@]}"
fi
KCAT="$(kcat_bin)"
[[ -x "$KCAT" ]] || die "kcat missing: run scripts/install.sh kcat"

# ------------------------------------------------------------------ a bounded mixed run
run_id="bench-$(date +%s)"
work="$RUN_DIR/bench/$run_id"
mkdir -p "$work"
skus=50
customers=200
{
  for ((s = 0; s < skus; s++)); do
    printf '%s-sku-%d\t{"type":"RestockItem","sku":"%s-sku-%d","quantity":%d}\n' "$run_id" "$s" "$run_id" "$s" $((ORDERS * 4 * 8 / 10 / skus))
  done
} >"$work/stock.commands"
{
  for ((c = 0; c < customers; c++)); do
    # every tenth customer can barely pay: some payments are declined
    amount=$(((c % 10 == 9) ? 3000 : 100000000))
    printf '%s-cust-%d\t{"type":"DepositFunds","customer_id":"%s-cust-%d","amount_cents":%d,"currency":"EUR"}\n' "$run_id" "$c" "$run_id" "$c" "$amount"
  done
} >"$work/account.commands"
{
  for ((i = 0; i < ORDERS; i++)); do
    country=$(((i % 29 == 0)) && echo AQ || echo DE)
    printf '%s-order-%d\t{"type":"PlaceOrder","order_id":"%s-order-%d","customer_id":"%s-cust-%d","lines":[{"sku":"%s-sku-%d","quantity":1,"unit_price_cents":1000},{"sku":"%s-sku-%d","quantity":1,"unit_price_cents":500},{"sku":"%s-sku-%d","quantity":2,"unit_price_cents":250}],"currency":"EUR","shipping_address":{"name":"Bench","street":"Main 1","city":"Berlin","postal_code":"10115","country":"%s"}}\n' \
      "$run_id" "$i" "$run_id" "$i" "$run_id" $((i % customers)) "$run_id" $((i % skus)) "$run_id" $(((i + 1) % skus)) "$run_id" $(((i + 2) % skus)) "$country"
    ((i % 13 == 5)) && printf '%s-order-%d\t{"type":"CancelOrder","order_id":"%s-order-%d","reason":"bench"}\n' "$run_id" "$i" "$run_id" "$i"
  done
} >"$work/order.commands"

# murmur2 (Kafka's Java partitioner) puts each command on the partition that owns its
# aggregate; kcat's default would make the services forward most of them first.
produce() { "$KCAT" -P -b "$KAFKA_BROKERS" -t "$1" -K $'\t' -X partitioner=murmur2_random -l "$work/$1"; }
produce_start=$(now_s)
produce stock.commands
produce account.commands
produce order.commands
log "[bench] produced $ORDERS orders (+ restocks, deposits, cancels) in $(fmt_duration $(($(now_s) - produce_start)))"

# ------------------------------------------------------------------ wait until caught up
# Caught up = every consumer loop of every service reports lag 0, twice in a row.
total_lag() {
  local port sum=0 lag
  for port in "${PORTS[@]}"; do
    lag=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^orderflow_consumer_lag[{ ]/ {s += $NF} END {printf "%d", s}')
    sum=$((sum + lag))
  done
  echo "$sum"
}
settle_start=$(now_s)
zero=0
while ((zero < 2)); do
  (($(now_s) - settle_start > SETTLE_TIMEOUT)) && die "not caught up after ${SETTLE_TIMEOUT}s (lag $(total_lag))"
  if (($(total_lag) == 0)); then zero=$((zero + 1)); else zero=0; fi
  sleep 2
done
settled_s=$(($(now_s) - settle_start))
log "[bench] all services caught up $(fmt_duration "$settled_s") after the last command was produced"
curl -s "$ORDER_SVC_URL/metrics" | grep '^orderflow_orders{' | sed 's/^/    /' >&2 || true

# ------------------------------------------------------------------------------ replay
for svc in $REPLAY_SERVICES; do
  "$REPO_ROOT/scripts/replay" "$svc" | tee "$work/replay-$svc.txt"
done
log "[bench] done in $(fmt_duration $(($(now_s) - bench_start))); reports under $work"
