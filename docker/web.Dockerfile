# syntax=docker/dockerfile:1
# The web tier: Flask on gunicorn. No torch in this image. A second target,
# `flower`, adds Flower on the same base (Flower needs only Celery and the queue).
# Build from the repository root:
#   docker build -f docker/web.Dockerfile --target web -t resq-web .
#   docker build -f docker/web.Dockerfile --target flower -t resq-flower .
# Behind a registry mirror: --build-arg PYTHON_IMAGE=mirror.example/python:3.11-slim.
# Behind a TLS-intercepting proxy: --build-arg EXTRA_CA_CERTS="$(cat proxy-ca.pem)"
# (PEM text; pip and the image trust it besides the public authorities).

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
# pip trusts the system's store (with any extra authority), not only its own copy.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt

FROM base AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/common.txt requirements/web.txt /tmp/requirements/
RUN /opt/venv/bin/pip install -r /tmp/requirements/web.txt

FROM build AS build-flower
COPY requirements/flower.txt /tmp/requirements/
RUN /opt/venv/bin/pip install -r /tmp/requirements/flower.txt

FROM base AS flower
LABEL org.opencontainers.image.title="resq-flower"
RUN useradd --system --uid 10001 --gid 0 --home-dir /nonexistent --shell /usr/sbin/nologin resq
COPY --from=build-flower /opt/venv /opt/venv
WORKDIR /app
COPY shared/ shared/
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
USER 10001
EXPOSE 5555
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5555/healthcheck', timeout=2)"]
# Never anonymous: FLOWER_BASIC_AUTH, or a one-time password on 127.0.0.1 only.
CMD ["python", "-m", "shared.flower_main"]

FROM base AS web
LABEL org.opencontainers.image.title="resq-web"
RUN useradd --system --uid 10001 --gid 0 --home-dir /nonexistent --shell /usr/sbin/nologin resq
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY shared/ shared/
COPY web/ web/
# Read-only root filesystem: the only writable path is /tmp (a tmpfs or emptyDir),
# where gunicorn keeps its heartbeats and Prometheus counters.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_DIR=/tmp/resq-metrics
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "python:web.gunicorn_conf"]
