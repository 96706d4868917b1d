# shellcheck shell=bash
# Paths, PATH, logging and timing. Part of scripts/lib.sh (source that, not this).
#
#   REPO_ROOT   the repository root (derived from this file's location)
#   RUN_DIR     logs, pid files and data of `scripts/up.sh` (default <repo>/run)
#   TOOLS_DIR   tools built by `scripts/install.sh` (default <repo>/.tools)
#   CARGO_HOME  default ~/.cargo

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${RUN_DIR:-$REPO_ROOT/run}"
TOOLS_DIR="${TOOLS_DIR:-$REPO_ROOT/.tools}"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export REPO_ROOT RUN_DIR TOOLS_DIR CARGO_HOME

# Tools built or installed by install.sh come first on PATH.
case ":$PATH:" in *":$TOOLS_DIR/bin:"*) ;; *) PATH="$TOOLS_DIR/bin:$PATH" ;; esac
case ":$PATH:" in *":$CARGO_HOME/bin:"*) ;; *) PATH="$PATH:$CARGO_HOME/bin" ;; esac
export PATH

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
  printf '==> ERROR: %s\n' "$*" >&2
  exit 1
}

now_s() { date +%s; }

# Human readable duration of N seconds.
fmt_duration() {
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# timed LABEL CMD...  runs CMD and prints "==> LABEL: Ns" afterwards (also on failure);
# LABEL is e.g. "[install] kcat".
timed() {
  local label=$1
  shift
  local start rc=0
  start=$(now_s)
  log "$label ..."
  # A subshell that is not in an `||` context, so `set -e` stays in force inside CMD.
  # (Variables CMD sets do not reach the caller.)
  local had_e=0
  [[ $- == *e* ]] && had_e=1
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  ((had_e)) && set -e
  local took=$(($(now_s) - start))
  if ((rc == 0)); then
    log "$label: ${took}s ($(fmt_duration "$took"))"
  else
    log "$label: FAILED (exit $rc) after ${took}s"
  fi
  return "$rc"
}
