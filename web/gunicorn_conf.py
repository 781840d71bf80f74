"""gunicorn settings for the web tier, taken from resq's settings.

`gthread` workers: each of `WEB_WORKERS` processes runs `WEB_THREADS` threads, and a
waiting request holds one thread (not a process), so one process holds
`WEB_THREADS` concurrent waits while the others keep answering.
"""

from shared.settings import get_settings
from web import gunicorn_errors

gunicorn_errors.install()  # gunicorn's own 4xx answers are JSON too

_settings = get_settings()

bind = [f"0.0.0.0:{_settings.port}"]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# A request may legitimately be held for the whole wait.
timeout = int(_settings.wait_max_seconds) + 30
graceful_timeout = int(_settings.wait_max_seconds) + 5
keepalive = 5
# Bounded request line and headers (hostile clients).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
wsgi_app = "web:create_app()"
