# syntax=docker/dockerfile:1
# Build: docker build -t hss-sync:0.1.0 .   (BuildKit, the default builder since Docker 23)
#
# The Rust tag is Cargo.toml's rust-version (the newest rust-version among the locked
# dependencies); .ci/run fails when either falls behind the lock file.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# tests/ is needed only because Cargo.toml names the integration-test target's path.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
# Dependency cache: the crate registry and target/ live in BuildKit cache mounts, so a
# source change recompiles hss-sync alone, not the ~300 crates it depends on. target/ is not
# in the image layer, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin hss-sync \
    && cp target/release/hss-sync /usr/local/bin/hss-sync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hss-sync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hss-sync --create-home hss-sync
COPY --from=build /usr/local/bin/hss-sync /usr/local/bin/hss-sync
# In a container the health and metrics endpoint must be reachable from outside it; the
# binary's own default is loopback.
ENV HSS_SYNC_LISTEN=0.0.0.0:9464
EXPOSE 9464
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/hss-sync
ENTRYPOINT ["hss-sync"]
CMD ["--help"]
