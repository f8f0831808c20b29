# Build: docker build -t hss-sync .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
RUN cargo build --release --locked --bin hss-sync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/hss-sync --create-home hss-sync
COPY --from=build /src/target/release/hss-sync /usr/local/bin/hss-sync
USER hss-sync
WORKDIR /var/lib/hss-sync
ENTRYPOINT ["hss-sync"]
CMD ["--help"]
