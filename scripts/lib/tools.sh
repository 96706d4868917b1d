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
