"""The Celery app Flower loads (`celery -A shared.flower_app flower`): the
settings and the queue, no task code, so the monitor never imports torch."""

from shared.celery_app import make_celery
from shared.flower_main import FlowerSettings
from shared.patches import flower_metrics_behind_auth

app = make_celery(FlowerSettings.current())

# This module is Flower's entry point: Flower's /metrics goes behind its basic auth.
flower_metrics_behind_auth()
