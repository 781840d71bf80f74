"""gunicorn settings for the web tier, taken from resq's settings.

`gthread` workers: each of `WEB_WORKERS` processes runs `WEB_THREADS` threads, and a
waiting request holds one thread (not a process), so one process holds
`WEB_THREADS` concurrent waits while the others keep answering.
"""

import os
import sys

from web.metrics_dir import ForeignFiles, empty_metrics_dir
from web.settings import WebSettings

_settings = WebSettings.current()

# Prometheus multiprocess mode: every gunicorn worker writes its counters under
# METRICS_DIR and /metrics sums them (web.metrics). The directory is emptied of an
# earlier run's counters now, before any worker exists (and refused if it holds
# anything else). This must come before anything imports prometheus_client
# (importing `web.metrics` does).
try:
    empty_metrics_dir(_settings.metrics_dir)
except ForeignFiles as error:
    sys.exit(f"resq web: {error}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_settings.metrics_dir)

from web import gunicorn_errors  # noqa: E402  (after the environment above)

gunicorn_errors.install()  # gunicorn's own 4xx answers are JSON too

bind = [f"{_settings.web_host}:{_settings.port}"]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# A request may legitimately be held for the whole wait.
timeout = int(_settings.wait_max_seconds) + 30
graceful_timeout = int(_settings.wait_max_seconds) + 5
keepalive = 5
# Nothing is written outside /tmp (read-only root filesystems): no control socket
# under $HOME, heartbeats in shared memory where there is one.
control_socket_disable = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Bounded request line and headers (hostile clients).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(L)ss'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"resq": {"()": "shared.log_format.formatter",
                            "log_format": _settings.log_format}},
    "filters": {"access": {"()": "web.access_log.AccessFields"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "resq",
                   "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "resq",
                   "filters": ["access"], "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": _settings.log_level,
                           "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": _settings.log_level},
}
wsgi_app = "web:create_app()"


def child_exit(server, worker):
    """A dead worker's live gauges are dropped; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
