# Multi-stage build of the Convos server and worker.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p convos-server -p convos-worker

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent convos
COPY --from=builder /src/target/release/convos-server /usr/local/bin/convos-server
COPY --from=builder /src/target/release/convos-worker /usr/local/bin/convos-worker
USER convos
EXPOSE 8080
CMD ["convos-server", "serve"]
