# qwend images. CPU (default target):   docker build -t qwend .
#               CUDA:                    docker build --target cuda -t qwend:cuda .
ARG GO_VERSION=1.26.8
ARG CUDA_VERSION=12.8.1

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends nlohmann-json3-dev libstb-dev && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
COPY scripts/deps.sh scripts/deps.sh
RUN ./scripts/deps.sh --build-only
COPY . .
RUN . ./scripts/cgo-env.sh \
 && go build -trimpath -ldflags "-s -w" -o /out/bin/qwend ./cmd/qwend \
 && mkdir -p /out/models /out/cuda-src/ml/backend/ggml \
 && mod=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama) \
 && cp "$mod/CMakeLists.txt" "$mod/CMakePresets.json" /out/cuda-src/ \
 && cp -r "$mod/ml/backend/ggml/ggml" /out/cuda-src/ml/backend/ggml/

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS cuda-build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/cuda-src /cuda-src
COPY scripts/cuda.sh /cuda.sh
RUN SRC=/cuda-src BUILD_DIR=/ggbuild DEST=/out/lib/ollama CUDA_ARCHITECTURES="80;86;89;90" /cuda.sh

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04 AS cuda
COPY --from=build /out/bin/qwend /opt/qwend/bin/qwend
COPY --from=cuda-build /out/lib/ollama /opt/qwend/lib/ollama
RUN useradd -r -u 10001 qwend && mkdir -p /models /var/log/qwend /home/qwend && chown qwend /models /var/log/qwend /home/qwend
USER qwend
ENV QWEND_ADDR=:8080 QWEND_CACHE_DIR=/models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/opt/qwend/bin/qwend", "version"]
ENTRYPOINT ["/opt/qwend/bin/qwend"]
CMD ["serve"]

FROM debian:bookworm-slim AS cpu
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libgomp1 && rm -rf /var/lib/apt/lists/* \
 && useradd -r -u 10001 qwend && mkdir -p /models /var/log/qwend /home/qwend && chown qwend /models /var/log/qwend /home/qwend
COPY --from=build /out/bin/qwend /opt/qwend/bin/qwend
USER qwend
ENV QWEND_ADDR=:8080 QWEND_CACHE_DIR=/models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/opt/qwend/bin/qwend"]
CMD ["serve"]
