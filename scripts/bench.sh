#!/usr/bin/env bash
# Throughput benchmark against the running system (scripts/up.sh first), in one run against
# the same broker, printed as a table:
#   1. raw ceiling: N records of the saga's event size (measured from the *.events topics)
#      produced through librdkafka (scripts/kcat, idempotent, acks=all, murmur2 like the
#      services) into a scratch topic it creates and deletes, then consumed from the start:
#      records/s both ways (as kafka-producer-perf-test / -consumer-perf-test would);
#   2. the saga at saturation: a burst through scripts/load.sh (orders/min settled, events/s
#      appended by all services, from their /metrics);
#   3. the ratio saga events/s : raw produce records/s;
#   4. the replay rate: scripts/replay order-svc (events/s).
# Traffic goes to 127.0.0.1 only; everything is bounded by count and time.
#
#   scripts/bench.sh [--records N] [--saga-rate R] [--saga-duration D] [--no-saga] [--no-replay]
#
# Options
#   --records N         records for the raw test (200000)
#   --size BYTES        record value size (default: the mean value size of up to 2000 records
#                       per *.events topic; 400 when they are empty)
#   --partitions P      partitions of the scratch topic (PARTITIONS, 1: up.sh's default)
#   --saga-rate R       orders/min offered in the saga burst (6000)
#   --saga-duration D   length of the burst (30s)
#   --no-saga, --no-replay   skip those parts
# Env: KAFKA_PORT (9092), RUN_DIR (run); results under run/bench/<timestamp>/.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RECORDS=200000
SIZE=""
BENCH_PARTITIONS="${PARTITIONS:-1}"
SAGA_RATE=6000
SAGA_DURATION=30s
DO_SAGA=1
DO_REPLAY=1
while (($# > 0)); do
  case "$1" in
    --records) RECORDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --partitions) BENCH_PARTITIONS=$2; shift ;;
    --saga-rate) SAGA_RATE=$2; shift ;;
    --saga-duration) SAGA_DURATION=$2; shift ;;
    --no-saga) DO_SAGA=0 ;;
    --no-replay) DO_REPLAY=0 ;;
    -h | --help)
      sed -n '2,25p' "$0"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

KAFKA_PORT="${KAFKA_PORT:-9092}"
BROKERS="127.0.0.1:$KAFKA_PORT"
KCAT=$(kcat_bin)
[[ -x "$KCAT" ]] || die "kcat missing ($KCAT): run scripts/install.sh kcat"
NISSHI=$(nisshi_bin)
[[ -n "$NISSHI" ]] || die "nisshi missing: run scripts/install.sh nisshi"
tcp_open 127.0.0.1 "$KAFKA_PORT" || die "no broker on $BROKERS (scripts/up.sh first)"

SERVICES_TSV="$REPO_ROOT/services.tsv"
[[ -f "$SERVICES_TSV" ]] || die "$SERVICES_TSV missing"
SVC_URLS=()
while IFS=$'\t' read -r name port _crate; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  SVC_URLS+=("http://127.0.0.1:$port")
done <"$SERVICES_TSV"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$RUN_DIR/bench/$STAMP"
mkdir -p "$OUT"
elapsed() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- 1. record size of the saga
if [[ -z "$SIZE" ]]; then
  : >"$OUT/sizes"
  for topic in order.events stock.events account.events shipment.events notification.events; do
    timeout 30 "$KCAT" -b "$BROKERS" -C -t "$topic" -o beginning -e -q -c 2000 -f '%S %K\n' >>"$OUT/sizes" 2>/dev/null || true
  done
  SIZE=$(awk '$1 > 0 { s += $1; k += $2; n++ } END { if (n) printf "%d", s / n; else print 400 }' "$OUT/sizes")
  SAMPLED=$(wc -l <"$OUT/sizes")
  log "record value size: $SIZE bytes (mean of $SAMPLED records of the *.events topics)"
else
  SAMPLED=0
fi

# ------------------------------------------------------------------------- 2. raw ceiling
TOPIC="bench.raw.$STAMP.$$"
cleanup() { "$NISSHI" topic delete --broker "tcp://$BROKERS" "$TOPIC" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$NISSHI" topic create --broker "tcp://$BROKERS" --partitions "$BENCH_PARTITIONS" --silent "$TOPIC" >/dev/null ||
  die "could not create scratch topic $TOPIC"
log "scratch topic $TOPIC ($BENCH_PARTITIONS partitions): $RECORDS records of $SIZE bytes"
python3 - "$RECORDS" "$SIZE" >"$OUT/records" <<'EOF'
import random, string, sys, uuid
n, size = int(sys.argv[1]), int(sys.argv[2])
alphabet = string.ascii_letters + string.digits
rnd = random.Random(7)
base = "".join(rnd.choice(alphabet) for _ in range(size + 64))
out = sys.stdout
for i in range(n):
    off = i % 64
    out.write(f"{uuid.UUID(int=rnd.getrandbits(128))}\t{base[off:off + size]}\n")
EOF
# The services' producer settings (runtime/src/kafka/clients.rs) and the headers an event
# carries (a single-event decision's: its type and the trace context).
PRODUCER=(-X enable.idempotence=true -X acks=all -X partitioner=murmur2_random -X linger.ms=2
  -H "event_type=OrderStockReserved" -H "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
t=$(now)
"$KCAT" -b "$BROKERS" -P -t "$TOPIC" -K $'\t' -l "${PRODUCER[@]}" "$OUT/records" 2>"$OUT/produce.err" ||
  die "produce failed: $(tail -3 "$OUT/produce.err")"
PRODUCE_S=$(elapsed "$t")
t=$(now)
CONSUMED=$("$KCAT" -b "$BROKERS" -C -t "$TOPIC" -o beginning -e -q -f '.' 2>"$OUT/consume.err" | wc -c)
CONSUME_S=$(elapsed "$t")
cleanup
trap - EXIT
[[ "$CONSUMED" == "$RECORDS" ]] || warn "consumed $CONSUMED records, produced $RECORDS"
PRODUCE_RPS=$(python3 -c "print(round($RECORDS / $PRODUCE_S))")
CONSUME_RPS=$(python3 -c "print(round($CONSUMED / $CONSUME_S))")
log "raw: produce $PRODUCE_RPS records/s ($PRODUCE_S s), consume $CONSUME_RPS records/s ($CONSUME_S s)"
rm -f "$OUT/records"

# --------------------------------------------------------------- 3. the saga at saturation
events_appended() {
  local u total=0 n
  for u in "${SVC_URLS[@]}"; do
    n=$(curl -s -m 5 "$u/metrics" | awk '/^orderflow_events_appended_total/ { s += $NF } END { printf "%d", s }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
SAGA_OPM="-" SAGA_EPS="-" SAGA_PLACED="-" SAGA_P99="-" SAGA_WITHIN="-"
if ((DO_SAGA)); then
  e0=$(events_appended)
  t=$(now)
  LOAD_DIR="$OUT/load" "$REPO_ROOT/scripts/load.sh" --rate "$SAGA_RATE" --duration "$SAGA_DURATION" | tee "$OUT/saga.txt" || true
  SAGA_S=$(elapsed "$t")
  e1=$(events_appended)
  summary=$(ls -1 "$OUT"/load/*/summary.json 2>/dev/null | tail -1)
  if [[ -n "$summary" ]]; then
    read -r SAGA_PLACED SAGA_TERMINAL RUN_MS SAGA_P99 SAGA_WITHIN < <(python3 - "$summary" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["metrics"]
v = lambda n, f: m.get(n, {}).get("values", {}).get(f, 0)
print(int(v("orders_placed", "count")), int(v("orders_confirmed", "count") + v("orders_cancelled", "count")),
      int(d["state"]["testRunDurationMs"]), int(v("order_place_to_terminal", "p(99)")),
      f'{100 * v("order_terminal_within_target", "rate"):.1f}')
EOF
)
    # Settled orders per minute over the k6 run, including the wait for the last ones.
    SAGA_OPM=$(python3 -c "print(round($SAGA_TERMINAL / ($RUN_MS / 60000)))")
    SAGA_EPS=$(python3 -c "print(round(($e1 - $e0) / ($RUN_MS / 1000)))")
  fi
fi

# ------------------------------------------------------------------------------ 4. replay
REPLAY_EPS="-" REPLAY_EVENTS="-" REPLAY_NOTE="-"
if ((DO_REPLAY)); then
  "$REPO_ROOT/scripts/replay" order-svc >"$OUT/replay.log" 2>&1 || warn "replay failed (see $OUT/replay.log)"
  # One "rebuilt <projection>: N events from P partitions in S s (R events/s)" line per projection.
  read -r REPLAY_EVENTS REPLAY_EPS REPLAY_NOTE < <(python3 - "$OUT/replay.log" <<'PY'
import re, sys
rows = re.findall(r"rebuilt (\S+): (\d+) events from \d+ partitions in ([\d.]+) s", open(sys.argv[1], errors="replace").read())
n = sum(int(r[1]) for r in rows); t = sum(float(r[2]) for r in rows)
note = ", ".join(f"{r[0]} {int(r[1]) / float(r[2]):.0f}/s" for r in rows if float(r[2]) > 0)
print(n if rows else "-", round(n / t) if t else "-", note or "-")
PY
)
  REPLAY_EVENTS=${REPLAY_EVENTS:--} REPLAY_EPS=${REPLAY_EPS:--}
fi

ratio() { python3 -c "a, b = '$1', '$2'; print(f'{100 * float(a) / float(b):.2f} %' if a not in ('-', '') and b not in ('-', '', '0') else '-')"; }
{
  storage=$(tr '\0' '\n' <"/proc/$(cat "$RUN_DIR/pids/nisshi.pid" 2>/dev/null || echo 0)/environ" 2>/dev/null | sed -n 's/^STORAGE_ENGINE=//p' | sed 's/:[^:@/]*@/:***@/')
  echo "bench $STAMP, broker $BROKERS (storage ${storage:-unknown})"
  printf '%-46s %16s  %s\n' MEASURE VALUE NOTE
  printf '%-46s %16s  %s\n' "record value size (bytes)" "$SIZE" "mean of $SAMPLED sampled *.events records; + 36 B key, 2 headers"
  printf '%-46s %16s  %s\n' "raw produce (records/s)" "$PRODUCE_RPS" "$RECORDS records, kcat/librdkafka 2.12.1, idempotent acks=all, $BENCH_PARTITIONS partitions"
  printf '%-46s %16s  %s\n' "raw consume (records/s)" "$CONSUME_RPS" "from the beginning to the end"
  printf '%-46s %16s  %s\n' "saga offered (orders/min)" "$SAGA_RATE" "scripts/load.sh --rate $SAGA_RATE --duration $SAGA_DURATION"
  printf '%-46s %16s  %s\n' "saga settled (orders/min)" "$SAGA_OPM" "placed $SAGA_PLACED; p99 ${SAGA_P99} ms; ${SAGA_WITHIN} % within 5 s"
  printf '%-46s %16s  %s\n' "saga events appended (events/s)" "$SAGA_EPS" "all services, orderflow_events_appended_total"
  printf '%-46s %16s  %s\n' "saga events/s : raw produce records/s" "$(ratio "$SAGA_EPS" "$PRODUCE_RPS")" ""
  printf '%-46s %16s  %s\n' "replay order-svc (events/s)" "$REPLAY_EPS" "$REPLAY_EVENTS events in all, one projection after the other: $REPLAY_NOTE"
  printf '%-46s %16s  %s\n' "replay : raw consume" "$(ratio "$REPLAY_EPS" "$CONSUME_RPS")" ""
} | tee "$OUT/bench.txt"
