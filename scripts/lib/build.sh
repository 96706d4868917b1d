# shellcheck shell=bash
# Workspace binaries: where they are, building them when missing. Part of scripts/lib.sh
# (source that, not this). Uses common.sh.

# target_bin PROFILE NAME  path of a workspace binary.
target_bin() {
  local profile=$1 name=$2 dir
  dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
  case "$profile" in
    dev | debug) echo "$dir/debug/$name" ;;
    *) echo "$dir/$profile/$name" ;;
  esac
}

# built_bin NAME PACKAGE: path of binary NAME, built from PACKAGE when no profile has it yet.
# PROFILE=release|debug picks the profile; by default whichever exists (release first), else
# release is built. Build output goes to stderr.
built_bin() {
  local name=$1 package=$2 p b args=()
  local profiles=("${PROFILE:-release}")
  [[ -z "${PROFILE:-}" ]] && profiles=(release debug)
  for p in "${profiles[@]}"; do
    b=$(target_bin "$p" "$name")
    if [[ -x "$b" ]]; then
      echo "$b"
      return 0
    fi
  done
  p=${profiles[0]}
  case "$p" in
    debug | dev) ;;
    release) args=(--release) ;;
    *) args=(--profile "$p") ;;
  esac
  (cd "$REPO_ROOT" && cargo build -q -p "$package" --bin "$name" "${args[@]}") >&2
  target_bin "$p" "$name"
}

# build_workspace_bins PROFILE  cargo build --workspace --bins in that profile (release, debug
# or a custom one), timed.
build_workspace_bins() {
  local profile_args=()
  case "$1" in
    debug | dev) ;;
    release) profile_args=(--release) ;;
    *) profile_args=(--profile "$1") ;;
  esac
  (cd "$REPO_ROOT" && timed "[build] cargo build --workspace --bins ${profile_args[*]:-}" \
    cargo build --workspace --bins "${profile_args[@]}")
}
