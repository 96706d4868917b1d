# shellcheck shell=bash
# Where the tools installed by scripts/install.sh are. Part of scripts/lib.sh (source that,
# not this). Uses common.sh.

# kcat_bin  path of the project's kcat (built against librdkafka 2.12.1).
kcat_bin() { echo "$TOOLS_DIR/bin/kcat"; }

# k6_bin  path of k6, or nothing.
k6_bin() {
  if [[ -x "$TOOLS_DIR/bin/k6" ]]; then
    echo "$TOOLS_DIR/bin/k6"
  elif command -v k6 >/dev/null 2>&1; then
    command -v k6
  fi
}

# The schemathesis release scripts/api-fuzz.sh is written for (its CLI changed a lot between
# 3.x and 4.x); scripts/install.sh installs exactly this one.
SCHEMATHESIS_VERSION=4.32.5

# schemathesis_bin  path of schemathesis $SCHEMATHESIS_VERSION, or nothing (also when only
# another version is installed).
schemathesis_bin() {
  local cand
  for cand in "$TOOLS_DIR/bin/schemathesis" "$(command -v schemathesis 2>/dev/null)"; do
    [[ -n "$cand" && -x "$cand" ]] || continue
    if [[ "$("$cand" --version 2>/dev/null)" == *"version $SCHEMATHESIS_VERSION" ]]; then
      echo "$cand"
      return 0
    fi
  done
}
