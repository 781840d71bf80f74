"""The Celery app Flower loads (`celery -A shared.monitor_app flower`): the
settings and the queue, no task code, so the monitor never imports torch."""

from shared.celery_app import make_celery
from shared.settings import get_settings

app = make_celery(get_settings())


def _metrics_behind_auth() -> None:
    """Flower serves `/metrics` to anyone, even with basic auth on; put it behind the
    same check as every other page (Prometheus scrapes it with `basic_auth`). The
    health check stays open for probes."""
    try:
        from flower.views.monitor import Metrics
        from tornado import web
    except ImportError:  # not inside Flower
        return
    if not getattr(Metrics.get, "_resq_authenticated", False):
        Metrics.get = web.authenticated(Metrics.get)
        Metrics.get._resq_authenticated = True


_metrics_behind_auth()
