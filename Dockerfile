# The evmesh sidecar image: the official Envoy 1.40.0 image plus evmesh's
# dynamic modules on Envoy's module search path.
#
#   docker build -t evmesh/envoy:1.40.0-evmesh .
#   docker run --rm -v $PWD/envoy.yaml:/etc/envoy/envoy.yaml evmesh/envoy:1.40.0-evmesh
#
# where envoy.yaml comes from `evmesh render SPEC`.

# ---- build the modules offline with Debian's Bazel (same toolchain as CI)
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bazel-bootstrap g++ libgtest-dev libbenchmark-dev nlohmann-json3-dev ca-certificates \
      zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY WORKSPACE .bazelrc .bazelversion ./
COPY bazel/ bazel/
COPY filters/ filters/
RUN bazel build //filters/module:libevmesh.so //filters/module:libevmesh_check.so \
 && mkdir -p /out \
 && cp bazel-bin/filters/module/libevmesh.so bazel-bin/filters/module/libevmesh_check.so /out/ \
 && bazel shutdown

# ---- the sidecar: stock Envoy 1.40.0 (the module ABI v0.2.0 belongs to it)
FROM envoyproxy/envoy:v1.40.0
COPY --from=build /out/libevmesh.so /usr/local/lib/evmesh/libevmesh.so
COPY --from=build /out/libevmesh_check.so /usr/local/lib/evmesh/libevmesh_check.so
ENV ENVOY_DYNAMIC_MODULES_SEARCH_PATH=/usr/local/lib/evmesh
