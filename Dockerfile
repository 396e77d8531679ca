# Event Notification System: one image with both binaries.
#   docker build -t event-notification .
#   docker run --rm -p 8000:8000 event-notification                  # event-logger (default)
#   docker run --rm event-notification notification-processor        # the processor
# docker-compose.yml runs both against RabbitMQ; see the README, "Run with Docker".
# .ci/docker.sh builds the binaries with the same command as the builder stage (--locked).

# ---- builder -------------------------------------------------------------------------------
# Pinned minor version; Cargo.toml uses edition 2024 (Rust >= 1.85).
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# amiquip's TLS (native-tls, for amqps://) links the system's OpenSSL: headers and pkg-config.
# The official image has both; a leaner base gets them here (and .ci/docker.sh, which replays
# this stage on the CI host, changes nothing there when they are installed). Not pinned
# (DL3008): bookworm's security updates replace the versions, and a pin would break the build.
# hadolint ignore=DL3008
RUN dpkg -s libssl-dev pkg-config >/dev/null 2>&1 \
    || { apt-get update \
        && apt-get install -y --no-install-recommends libssl-dev pkg-config \
        && rm -rf /var/lib/apt/lists/*; }

# Dependency layer: only the manifests, the lockfile and the vendored, patched tiny_http
# ([patch.crates-io] in Cargo.toml), with stub sources, so the whole dependency graph is
# compiled in a layer that stays cached until one of these files changes. The stubs' own
# artifacts are then removed (`cargo clean -p`), so the real sources are always compiled, even
# when their modification times are older than the stubs'.
COPY Cargo.toml Cargo.lock ./
COPY vendor/ vendor/
RUN mkdir -p src/bin \
    && echo '//! stub' > src/lib.rs \
    && echo 'fn main() {}' > src/bin/event-logger.rs \
    && echo 'fn main() {}' > src/bin/notification-processor.rs \
    && cargo build --release --locked --bins \
    && cargo clean --release --package event-notification \
    && rm -rf src

# The crate itself.
COPY src/ src/
RUN cargo build --release --locked --bins \
    && mkdir -p out \
    && cp target/release/event-logger target/release/notification-processor out/

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# libssl3 for amqps:// (the binaries link OpenSSL) and ca-certificates, the system's CAs a hosted
# broker's certificate is checked against (AMQP_TLS_CA_FILE adds a private one). No curl: the
# healthcheck is the binary's own. Not pinned (DL3008), for the same reason as in the builder:
# the image should get bookworm's OpenSSL security updates when it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir /data && chown app:app /data

COPY --from=builder /build/out/event-logger /build/out/notification-processor /usr/local/bin/

ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
# The numeric ids of the `app` user created above.
USER 10001:10001

# For the event-logger. A container running notification-processor from this image has no
# HTTP port: docker-compose.yml disables this check for it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["event-logger", "--healthcheck"]

# Both binaries stop cleanly on SIGTERM (docker stop) within SHUTDOWN_TIMEOUT_SECS.
STOPSIGNAL SIGTERM
CMD ["event-logger"]
