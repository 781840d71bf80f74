"""A worker's HTTP endpoint: `/metrics` for Prometheus and `/healthz` for its
liveness probe, on `WORKER_METRICS_PORT`.

`/healthz` answers 200 while the worker is starting (its startup probe covers
that), while its batcher has nothing to do, and while it is getting through its
work; 503 once the batcher has had work for `WORKER_STALL_SECONDS` without
finishing a batch (a hung decode, a deadlock, a dead batch thread). The process
may still answer HTTP then, which is why serving `/metrics` is not liveness.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, stalled_seconds: Callable[[], float | None], limit_seconds: float):
        """`stalled_seconds` returns how long the batcher has had work without
        progress, or None before it exists (the model is still loading)."""
        self.stalled_seconds = stalled_seconds
        self.limit_seconds = limit_seconds

    def check(self) -> tuple[bool, dict]:
        stalled = self.stalled_seconds()
        if stalled is None:
            return True, {"status": "starting"}
        if stalled >= self.limit_seconds:
            return False, {"status": "stalled", "stalled_seconds": _finite(stalled),
                           "limit_seconds": self.limit_seconds}
        return True, {"status": "busy" if stalled > 0 else "idle",
                      "stalled_seconds": round(stalled, 3), "limit_seconds": self.limit_seconds}


def _finite(seconds: float) -> float | None:
    return round(seconds, 3) if seconds != float("inf") else None


def health_app(liveness: Liveness, metrics_app=None):
    metrics_app = metrics_app or make_wsgi_app(REGISTRY)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            ok, body = liveness.check()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"),
                            ("Cache-Control", "no-store")])
            return [json.dumps(body).encode()]
        return metrics_app(environ, start_response)

    return app


def serve(port: int, liveness: Liveness, addr: str = "0.0.0.0") -> ThreadingWSGIServer:
    server = make_server(addr, port, health_app(liveness), ThreadingWSGIServer,
                         handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics on :%d/metrics, liveness on :%d/healthz", port, port)
    return server
