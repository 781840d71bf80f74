"""The worker's Celery app: the shared app with the task registered, and the model
loaded (and compiled, and warmed up) before the worker consumes its first message.
Jobs run in Celery's thread pool so that they can share one model in batches
(`python -m worker` runs it so, after its start-up checks)."""

from __future__ import annotations

from celery.signals import worker_init

from shared.celery_app import make_celery
from shared.job_records import JobRecords
from shared.redis_client import connect
from shared.settings import get_settings
from worker.runtime import load_runtime
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings, store_retries=100)
register_tasks(app, settings, JobRecords(connect(settings.redis_url), settings.result_ttl_seconds))


@worker_init.connect
def _load_model_before_consuming(**_):
    load_runtime(settings)
