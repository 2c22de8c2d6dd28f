# syntax=docker/dockerfile:1

# The build stages use the same Debian release as the runtime image
# (bookworm = distroless debian12), so the binary links against the glibc it
# runs with. cargo-chef splits the build so that dependencies, which change
# rarely and take most of the compile time, sit in their own cached layer.
FROM rust:1.95-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /app

# The recipe is a digest of the manifests only: it changes when dependencies
# change, not when application code does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin astrada-token-vendor

# distroless/cc: glibc, libgcc and CA certificates, no shell or package
# manager, so a compromised process has little to work with.
FROM gcr.io/distroless/cc-debian12:nonroot
# checkov:skip=CKV_DOCKER_2:No HEALTHCHECK on purpose. Kubernetes ignores it and runs its own liveness/readiness/startup probes against /healthz and /readyz (deploy/base/deployment.yaml); the image has no shell or curl to run a check with.
LABEL org.opencontainers.image.title="astrada-token-vendor" \
      org.opencontainers.image.description="Exchanges Astrada OAuth client credentials for tokens and serves them."
COPY --from=builder /app/target/release/astrada-token-vendor /astrada-token-vendor
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 8080: public listener (SDK token, probes). 9090: internal listener (API
# token, metrics); it binds 127.0.0.1 unless ATV_SERVER__INTERNAL_ADDR says
# otherwise, deliberately not baked in here, so a bare `docker run -p` never
# publishes full-access API tokens. The Kubernetes manifests set it.
EXPOSE 8080 9090
ENTRYPOINT ["/astrada-token-vendor"]
CMD ["serve"]
