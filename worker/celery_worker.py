"""The worker's Celery app: the shared app with the task registered and the model
loaded in every pool process as it starts (`celery -A worker.celery_worker worker`;
`python -m worker` adds the start-up checks)."""

from __future__ import annotations

from celery.signals import worker_process_init

from shared.celery_app import make_celery
from shared.job_records import JobRecords
from shared.redis_client import connect
from shared.settings import get_settings
from worker.runtime import load_runtime
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings, store_retries=100)
register_tasks(app, settings, JobRecords(connect(settings.redis_url), settings.result_ttl_seconds))


@worker_process_init.connect
def _load_model_in_pool_process(**_):
    load_runtime(settings)
