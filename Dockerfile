# One image with every binary the system runs: the services listed in services.tsv and
# orderctl (create-topics, register-schemas, consume). Used by docker-compose.kafka.yml; on its
# own: `docker build -t orderflow .`, then e.g. `docker run --rm orderflow orderctl --help`.
#
# The builder and the runtime image are the same Debian release, so the binaries find the same
# glibc. RUST_VERSION is the toolchain the workspace is built and tested with here.
ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

# ------------------------------------------------------------------------------------ build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build

# rdkafka-sys builds the bundled librdkafka 2.12.1 with its own ./configure and make (the
# workspace enables only rdkafka's default `libz` feature: no cmake-build, ssl, sasl or zstd),
# so it needs a C/C++ toolchain, make, pkg-config and the zlib headers. libsqlite3-sys (sqlx)
# compiles its bundled SQLite with the same toolchain. Nothing links OpenSSL: reqwest and sqlx
# are built without TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps target/, run/ and .tools/ out of the context.
COPY . .
# The binaries to ship: every service named in services.tsv (the binary has the service's
# name), and orderctl.
RUN cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && for bin in $(awk '!/^[[:space:]]*#/ && NF { print $1 }' services.tsv) orderctl; do \
         install -m 0755 "target/release/$bin" /out/; \
       done

# ---------------------------------------------------------------------------------- runtime
FROM debian:${DEBIAN_RELEASE}-slim

# curl: the compose healthchecks ask each service's /ready. zlib1g: librdkafka's compression.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/orderflow orderflow

COPY --from=build /out/ /usr/local/bin/

# RUN_DIR: where notify-svc appends notifications.jsonl when no NOTIFY_WEBHOOK_URL is set,
# and the services' default SQLite files (docker-compose.kafka.yml uses PostgreSQL instead).
ENV RUN_DIR=/var/lib/orderflow
WORKDIR /var/lib/orderflow
USER orderflow

CMD ["orderctl", "--help"]
