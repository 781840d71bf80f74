# syntax=docker/dockerfile:1
# The worker tier: Celery with ResNet50 on CPU-only torch wheels, with the
# pretrained weights and the compiled model baked in at build time.
# Build from the repository root: docker build -f docker/worker.Dockerfile -t resq-worker .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C++ compiler for AOTInductor's ahead-of-time compile (build stage only).
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements/common.txt requirements/worker.txt /tmp/requirements/
# CPU-only torch: no CUDA libraries in the image.
RUN /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple -r /tmp/requirements/worker.txt
WORKDIR /app
COPY shared/ shared/
COPY worker/ worker/
# Bake the weights (IMAGENET1K_V2) and the compiled model into the image.
ENV TORCH_HOME=/opt/resq/torch COMPILE_CACHE_DIR=/opt/resq/compiled \
    MODEL_WEIGHTS=imagenet WORKER_METRICS_PORT=0
RUN /opt/venv/bin/python -m worker.prepare

FROM python:3.11-slim
RUN useradd --system --uid 10001 --gid 0 --home-dir /nonexistent --shell /usr/sbin/nologin resq
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/resq /opt/resq
WORKDIR /app
COPY shared/ shared/
COPY worker/ worker/
# Read-only root filesystem: the baked cache is read as is. A worker on a CPU of
# another capability than the build machine's needs COMPILE_CACHE_DIR on a writable
# volume to compile once, else it runs eager (with a warning in its log).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TORCH_HOME=/opt/resq/torch \
    COMPILE_CACHE_DIR=/opt/resq/compiled \
    MODEL_WEIGHTS=imagenet \
    HOME=/tmp
USER 10001
EXPOSE 9540
# Alive while its batcher makes progress or has nothing to do (worker/health.py);
# readiness (model loaded) is the chart's startup probe.
HEALTHCHECK --interval=20s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "-m", "shared.liveness", "http://127.0.0.1:9540/healthz"]
CMD ["python", "-m", "worker"]
