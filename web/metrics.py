"""Prometheus metrics of the web tier.

gunicorn runs several worker processes; prometheus-client's multiprocess mode
keeps each process's counters in files under `METRICS_DIR` (its environment
variable `PROMETHEUS_MULTIPROC_DIR` is set, and the directory emptied, by
`web.gunicorn_conf` before any worker starts; a dead worker's files are marked),
and `/metrics` sums them. Outside gunicorn (the Flask test client) the process's
own registry is served. Every label comes from a fixed set: routes by their
template (`/jobs/<job_id>`), never the raw path; methods from the standard ones,
any other as `other` (gunicorn accepts any made-up token as a method); reasons by
error code. Each labelled counter starts with its known label values at 0, so
dashboards and ratios read 0, not "no data", before the first event.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

from shared.api_models import InputForm
from shared.capacity import CapacityCollector
from shared.errors import InvalidField, error_codes
from shared.lanes import Lane
from shared.queue_metrics import QueueCollector
from web.process_metrics import ProcessGroupCollector
from web.wait_param import requested_wait

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("resq_http_requests_total",
                   "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
DURATION = Histogram("resq_http_request_duration_seconds",
                     "Time to answer an HTTP request, by route template, method and whether "
                     "the client asked to wait for the result (`wait`: yes or no)",
                     ["route", "method", "wait"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
SUBMITTED = Counter("resq_jobs_submitted_total",
                    "Jobs accepted, by input form and lane (`cached`: created succeeded from "
                    "the result cache, in no lane)", ["form", "lane"])
CACHED_LANE = "cached"
BATCHES = Counter("resq_batches_submitted_total", "Batches accepted, by input form", ["form"])
BATCH_ITEMS = Counter("resq_batch_items_submitted_total",
                      "Items of the batches accepted, by input form", ["form"])
STREAMS = Gauge("resq_streams_open", "Event and result streams open, by kind (`job`, "
                "`batch`, `results`)", ["kind"], multiprocess_mode="livesum")
RESULT_CACHE = Counter("resq_result_cache_lookups_total",
                       "The web tier's result cache lookups as it creates a job from an "
                       "upload or a fetched URL, by outcome: hit (created succeeded, never "
                       "queued) or miss", ["outcome"])
EXPIRED = Counter("resq_jobs_expired_total",
                  "Queued jobs the web tier ended `expired` when it read them past their "
                  "deadline (workers count theirs in resq_worker_jobs_total{code=\"expired\"})")
WAITS = Counter("resq_waits_total",
                "Requests that asked to wait for a job's result, by outcome: `result` (the "
                "job finished within the wait), `timeout`, or `declined` (every wait slot "
                "was taken: answered at once, the client polls)", ["outcome"])
REJECTIONS = Counter("resq_rejections_total",
                     "Requests answered with an error, by reason (the error code)", ["reason"])


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WAIT_OUTCOMES = ("result", "timeout", "declined")
STREAM_KINDS = ("job", "batch", "results")


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def initialise() -> None:
    """Create each counter's known series at 0."""
    for form in InputForm:
        for lane in (*(lane.value for lane in Lane), CACHED_LANE):
            SUBMITTED.labels(form=form.value, lane=lane)
    for form in InputForm:
        BATCHES.labels(form=form.value)
        BATCH_ITEMS.labels(form=form.value)
    for outcome in ("hit", "miss"):
        RESULT_CACHE.labels(outcome=outcome)
    for kind in STREAM_KINDS:
        STREAMS.labels(kind=kind)
    for outcome in WAIT_OUTCOMES:
        WAITS.labels(outcome=outcome)
    for code in error_codes():
        REJECTIONS.labels(reason=code)


def job_submitted(form: str, lane: str) -> None:
    SUBMITTED.labels(form=form, lane=lane).inc()


def batch_submitted(form: str, items: int) -> None:
    BATCHES.labels(form=form).inc()
    BATCH_ITEMS.labels(form=form).inc(items)


@contextmanager
def stream_open(kind: str) -> Iterator[None]:
    """Counts a stream of `kind` as open while the block runs."""
    STREAMS.labels(kind=kind).inc()
    try:
        yield
    finally:
        STREAMS.labels(kind=kind).dec()


def cache_looked_up(hit: bool) -> None:
    RESULT_CACHE.labels(outcome="hit" if hit else "miss").inc()


def job_expired() -> None:
    EXPIRED.inc()


def wait_ended(got_result: bool) -> None:
    WAITS.labels(outcome="result" if got_result else "timeout").inc()


def wait_declined() -> None:
    WAITS.labels(outcome="declined").inc()


def rejected(reason: str) -> None:
    REJECTIONS.labels(reason=reason).inc()


def exposition(queue: QueueCollector) -> bytes:
    """This process's metrics, or (under gunicorn) every web process's summed with
    the CPU and memory of the whole process group, and the queue's and the pod's
    gauges."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
        registry.register(ProcessGroupCollector())
    else:
        registry.register(_Own())
    registry.register(queue)
    registry.register(CapacityCollector())
    return generate_latest(registry)


class _Own(Collector):
    """The process's default registry, as one collector."""

    def collect(self):
        yield from REGISTRY.collect()


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _asked_to_wait() -> bool:
    """Whether the request waits, read by the handler's own parser (web/wait_param.py);
    a `wait` it refuses (400) did not wait."""
    try:
        seconds, _ = requested_wait(request.args.get("wait"), request.headers.get("Prefer"),
                                    cap=math.inf)
    except InvalidField:
        return False
    return seconds > 0


def install(app: Flask, queue: QueueCollector) -> None:
    initialise()

    @app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        route, method = _route(), method_label(request.method)
        if route != "/metrics":
            started = g.get("metrics_started", time.perf_counter())
            waited = "yes" if _asked_to_wait() else "no"
            REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
            DURATION.labels(route=route, method=method, wait=waited).observe(
                time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics():
        return Response(exposition(queue), content_type=CONTENT_TYPE_LATEST)
