# The Capstan manager image: `capstan manager --provider <name>`, as the components YAML that
# `capstan release` writes runs it. The production binary has no simulator and no `capstan up`
# (`--no-default-features`).
#
#   docker build -t <your-registry>/capstan:<version> .
#
# Base images are arguments so that air-gapped builds can point at a mirror; RUNTIME_IMAGE may be
# any glibc image (a distroless "cc" image is the smallest); the manager runs as UID 65532.
ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p capstan --no-default-features \
 && install -D -m 0755 target/release/capstan /out/capstan

FROM ${RUNTIME_IMAGE}
# TLS roots for the clouds' APIs when a cluster gives no CA bundle of its own.
RUN if command -v apt-get >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /out/capstan /capstan
USER 65532:65532
ENTRYPOINT ["/capstan"]
CMD ["manager", "--help"]
