# syntax=docker/dockerfile:1
# The worker tier: Celery with ResNet50 on OpenVINO. The build stage has torch (CPU
# wheels) to convert the pretrained weights into OpenVINO's IR once; the final image
# carries the IR and the OpenVINO runtime, and no torch at all.
# Build from the repository root: docker build -f docker/worker.Dockerfile -t resq-worker .
# `--build-arg MODEL_PRECISION=int8` bakes the int8 model too (calibrated on
# worker/calibration/, or on CALIBRATION_DIR copied into the build context).
# Behind a registry mirror or a TLS-intercepting proxy: PYTHON_IMAGE and
# EXTRA_CA_CERTS as in web.Dockerfile; TORCH_INDEX_URL and PYPI_INDEX_URL point pip
# at mirrors (the public defaults: PyTorch's CPU wheels, and PyPI).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
# On every stage and image built here: stale build layers of resq can be pruned
# without touching anything else (podman image prune --filter label=io.resq.project).
LABEL io.resq.project="resq"
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/resq-extra.crt \
        && update-ca-certificates; \
    fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt

FROM base AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/common.txt requirements/worker-runtime.txt requirements/worker.txt \
     /tmp/requirements/
# CPU-only torch: no CUDA libraries, and only in this stage.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PYPI_INDEX_URL=https://pypi.org/simple
RUN /opt/venv/bin/pip install --index-url "$TORCH_INDEX_URL" \
        --extra-index-url "$PYPI_INDEX_URL" -r /tmp/requirements/worker.txt
WORKDIR /app
COPY shared/ shared/
COPY worker/ worker/
# Bake the weights (IMAGENET1K_V2) and the converted model into the image
# (`--build-arg MODEL_WEIGHTS=random` builds one offline, for tests only).
ARG MODEL_PRECISION=auto
ARG MODEL_WEIGHTS=imagenet
ENV TORCH_HOME=/opt/resq/torch COMPILE_CACHE_DIR=/opt/resq/compiled \
    MODEL_WEIGHTS=$MODEL_WEIGHTS MODEL_ENGINE=openvino MODEL_PRECISION=$MODEL_PRECISION \
    WORKER_METRICS_PORT=0
RUN /opt/venv/bin/python -m worker.bake

FROM base AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/common.txt requirements/worker-runtime.txt /tmp/requirements/
ARG PYPI_INDEX_URL=https://pypi.org/simple
RUN /opt/venv/bin/pip install --index-url "$PYPI_INDEX_URL" \
        -r /tmp/requirements/worker-runtime.txt

FROM base AS final
LABEL org.opencontainers.image.title="resq-worker"
ARG MODEL_WEIGHTS=imagenet
ENV MODEL_WEIGHTS=$MODEL_WEIGHTS
RUN useradd --system --uid 10001 --gid 0 --home-dir /nonexistent --shell /usr/sbin/nologin resq
COPY --from=runtime /opt/venv /opt/venv
COPY --from=build /opt/resq /opt/resq
WORKDIR /app
COPY shared/ shared/
COPY worker/ worker/
# Read-only root filesystem: the baked IR is read as is, and OpenVINO compiles it for
# this CPU at each start (about a second; COMPILE_CACHE_DIR on a writable volume
# keeps its compiled blobs too). The weights stay for their digest, the IR's key.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TORCH_HOME=/opt/resq/torch \
    COMPILE_CACHE_DIR=/opt/resq/compiled \
    MODEL_ENGINE=openvino \
    HOME=/tmp
USER 10001
EXPOSE 9540
# Alive while its batcher makes progress or has nothing to do (worker/health.py);
# readiness (model loaded) is the chart's startup probe.
HEALTHCHECK --interval=20s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-m", "shared.liveness", "http://127.0.0.1:9540/healthz"]
CMD ["python", "-m", "worker"]
