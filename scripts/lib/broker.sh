# shellcheck shell=bash
# The nisshi broker (Kafka-compatible). Part of scripts/lib.sh (source that, not this).
# Uses common.sh and proc.sh.

# nisshi_bin  path of the nisshi broker binary, or nothing.
nisshi_bin() {
  if command -v nisshi >/dev/null 2>&1; then
    command -v nisshi
  elif [[ -x "$CARGO_HOME/bin/nisshi" ]]; then
    echo "$CARGO_HOME/bin/nisshi"
  elif [[ -x "$HOME/.cargo/bin/nisshi" ]]; then
    echo "$HOME/.cargo/bin/nisshi"
  fi
}

# start_broker NAME PORT STORAGE_URL WORKDIR  starts nisshi on 127.0.0.1:PORT.
# A sqlite:// storage URL is resolved by nisshi relative to its working directory,
# which is WORKDIR (use e.g. sqlite://nisshi.db with WORKDIR=<run>/data).
start_broker() {
  local name=$1 port=$2 storage=$3 workdir=$4 bin
  bin=$(nisshi_bin)
  [[ -n "$bin" ]] || die "nisshi not found (run scripts/install.sh)"
  start_bg "$name" "$workdir" env \
    -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY \
    LISTENER_URL="tcp://127.0.0.1:$port" \
    ADVERTISED_LISTENER_URL="tcp://127.0.0.1:$port" \
    STORAGE_ENGINE="$storage" \
    CLUSTER_ID="${NISSHI_CLUSTER_ID:-orders}" \
    GROUP_INITIAL_REBALANCE_DELAY="${GROUP_INITIAL_REBALANCE_DELAY:-100ms}" \
    RUST_LOG="${NISSHI_LOG:-warn}" \
    "$bin" broker
}
