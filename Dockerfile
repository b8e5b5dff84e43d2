# syntax=docker/dockerfile:1
# cwo: a static Swift binary on a small Ubuntu runtime, run as a numeric non-root user.

# ---- build ----
FROM swift:6.3-noble AS build
WORKDIR /src
# libyaml's headers and static library (linked in: the runtime stage needs no libyaml).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
# Resolve dependencies first, in their own layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY linker ./linker
COPY scripts/build-release ./scripts/
# The same product the tests build, in release mode, with the Swift runtime linked in and the code
# `cwo run` executes laid out together (scripts/build-release, linker/cwo.order).
RUN --mount=type=cache,target=/src/.build \
    CWO_RELEASE_SCRATCH=.build scripts/build-release --product cwo \
 && mkdir -p /staging \
 && cp "$(CWO_RELEASE_SCRATCH=.build scripts/build-release --show-bin-path)/cwo" /staging/ \
 && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/

# ---- run ----
FROM ubuntu:noble
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /staging/ /usr/local/bin/
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/bin/swift-backtrace-static
LABEL org.opencontainers.image.title="cwo" \
      org.opencontainers.image.description="The Confidential Workload Operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/cwo"]
CMD ["run", "--leader-elect"]
