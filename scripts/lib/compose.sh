# shellcheck shell=bash
# The Apache Kafka compose files: docker-compose.kafka.yml (one broker) and its override
# docker-compose.kafka-3.yml (three brokers). Part of scripts/lib.sh (source that, not this).
# Uses common.sh.
#
# Docker cannot run on the project's machines. `docker-compose config` (Debian's docker-compose
# 1.29, `scripts/install.sh compose`) needs no daemon: it parses both files, applies the
# override, the merge keys and the variable defaults, and checks the result against the
# compose schema. What the files must contain (every service, port and variable) is checked
# by system-tests/tests/compose.rs.

COMPOSE_KAFKA="$REPO_ROOT/docker-compose.kafka.yml"
COMPOSE_KAFKA_3="$REPO_ROOT/docker-compose.kafka-3.yml"

# compose_config LABEL FILE...  `docker-compose -f FILE... config -q` from the repository root;
# logs LABEL as valid, or warns and fails.
compose_config() {
  local label=$1 file args=()
  shift
  for file in "$@"; do args+=(-f "$file"); done
  if (cd "$REPO_ROOT" && docker-compose "${args[@]}" config -q); then
    log "compose ($label): valid"
  else
    warn "compose ($label): docker-compose ${args[*]} config failed"
    return 1
  fi
}

# validate_compose  both variants (1 broker; 3 brokers), each with `docker-compose config -q`.
# Fails when docker-compose is missing or either variant does not validate.
validate_compose() {
  command -v docker-compose >/dev/null 2>&1 || {
    warn "docker-compose not found (run scripts/install.sh compose)"
    return 1
  }
  local rc=0
  compose_config "1 broker" "$COMPOSE_KAFKA" || rc=1
  compose_config "3 brokers" "$COMPOSE_KAFKA" "$COMPOSE_KAFKA_3" || rc=1
  return "$rc"
}
