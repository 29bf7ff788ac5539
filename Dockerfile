# kaigo-hub: multi-stage build. The runtime image holds the binary, the shipped mappings and
# samples, and runs as an unprivileged user.
#   docker build -t kaigo-hub .
#   docker run --rm -p 8080:8080 -p 2575:2575 kaigo-hub serve --demo
#   docker run --rm kaigo-hub translate --dir samples
#   docker run --rm -v "$PWD/in:/in:ro" kaigo-hub translate /in/adt.hl7
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin kaigo-hub

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kaigo \
 && mkdir -p /app/data && chown kaigo /app/data
WORKDIR /app
COPY --from=build /src/target/release/kaigo-hub /usr/local/bin/kaigo-hub
COPY mappings ./mappings
COPY samples ./samples
COPY parties.yaml ./parties.yaml
USER kaigo
ENV KAIGO_MAPPINGS=/app/mappings \
    KAIGO_PARTIES=/app/parties.yaml \
    KAIGO_DATA_DIR=/app/data \
    KAIGO_HTTP_ADDR=0.0.0.0:8080 \
    KAIGO_MLLP_ADDR=0.0.0.0:2575
EXPOSE 8080 2575
ENTRYPOINT ["kaigo-hub"]
CMD ["--help"]
