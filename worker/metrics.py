"""Prometheus metrics of a worker process, served on `WORKER_METRICS_PORT`.

A worker is one process (Celery's thread pool shares one model), so its default
registry is the pod's whole count; nothing needs summing across processes. The
queue's length and the age of its oldest unfinished job are read from Redis at
each scrape (`shared.queue_metrics`; the web tier reports them too). The cores and
memory this process may use are exported beside prometheus-client's `process_*`
metrics, so alerts can compare usage with capacity.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from shared.api_models import JobStatus
from shared.capacity import CapacityCollector
from shared.errors import error_codes
from shared.queue_metrics import QueueCollector

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JOBS = Counter("resq_worker_jobs_total",
               "Jobs a worker ended, by outcome (succeeded or failed) and error "
               "code (empty when it succeeded)", ["outcome", "code"])
QUEUE_WAIT = Histogram("resq_job_queue_wait_seconds",
                       "Time from a job's acceptance by the web tier to a worker taking it",
                       buckets=SECONDS_BUCKETS)
PREPROCESS = Histogram("resq_batch_preprocess_seconds",
                       "Time to decode and preprocess the images of one batch",
                       buckets=SECONDS_BUCKETS)
INFERENCE = Histogram("resq_batch_inference_seconds",
                      "Time of one batch's forward pass", buckets=SECONDS_BUCKETS)
BATCH_SIZE = Histogram("resq_batch_size", "Images per forward pass",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
MESSAGES_DROPPED = Counter(
    "resq_worker_messages_dropped_total",
    "Job messages a worker acknowledged without running or without storing their outcome, "
    "by reason: terminal (the job had ended: a redelivered or duplicated message, a "
    "cancelled job), unknown (no such job), ended_meanwhile (the job was cancelled, or a "
    "duplicate finished it, while this run was under way)", ["reason"])
WEBHOOKS = Counter("resq_webhook_deliveries_total",
                   "Webhook delivery attempts by outcome: delivered, retried (a failed try "
                   "that will be tried again), gave_up, refused (an address the guard refuses)",
                   ["outcome"])
RESULT_CACHE = Counter("resq_worker_result_cache_lookups_total",
                       "A worker's result cache lookups (`RESULT_CACHE`), by outcome: hit (the "
                       "image's result reused: no decode, no model) or miss", ["outcome"])
MODEL_LOAD = Gauge("resq_model_load_seconds",
                   "Seconds this worker took to load its model (compile or cache load included)")
MODEL_COMPILE = Gauge("resq_model_compile_seconds",
                      "Seconds this worker spent compiling the model, or loading the compiled "
                      "model from its cache; 0 in eager mode")
MODEL_INFO = Gauge("resq_model_info", "The model this worker runs (value 1)",
                   ["engine", "weights", "precision", "compiled"])


def cache_looked_up(hit: bool) -> None:
    RESULT_CACHE.labels(outcome="hit" if hit else "miss").inc()


def initialise() -> None:
    """Create each counter's known series at 0 (a ratio or a panel reads 0, not "no
    data", before the first event)."""
    JOBS.labels(outcome=JobStatus.SUCCEEDED.value, code="")
    for outcome in ("hit", "miss"):
        RESULT_CACHE.labels(outcome=outcome)
    for code in error_codes():
        JOBS.labels(outcome=JobStatus.FAILED.value, code=code)
    for reason in ("terminal", "unknown", "ended_meanwhile"):
        MESSAGES_DROPPED.labels(reason=reason)
    for outcome in ("delivered", "retried", "deferred", "gave_up", "refused"):
        WEBHOOKS.labels(outcome=outcome)


def job_finished(code: str = "") -> None:
    """A job this worker ended: `failed` with its error code, else `succeeded`."""
    outcome = JobStatus.FAILED if code else JobStatus.SUCCEEDED
    JOBS.labels(outcome=outcome.value, code=code).inc()


def batch_ran(size: int, preprocess_seconds: float, inference_seconds: float) -> None:
    BATCH_SIZE.observe(size)
    PREPROCESS.observe(preprocess_seconds)
    INFERENCE.observe(inference_seconds)


def register(client: redis.Redis, queue: str) -> None:
    """Every series at its start, and the queue's and the pod's gauges (served by
    `worker.health` with `/healthz`)."""
    initialise()
    REGISTRY.register(QueueCollector(client, queue))
    REGISTRY.register(CapacityCollector())
