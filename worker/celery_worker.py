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
from worker.redelivery import LostJobSweeper
from worker.runtime import load_runtime
from worker.tasks import register_tasks

settings = get_settings()
app = make_celery(settings, store_retries=100)
# Jobs in the middle of their run wait out a Redis restart rather than fail.
REDIS_RIDE_OUT_SECONDS = 60
client = connect(settings.redis_url, ride_out_seconds=REDIS_RIDE_OUT_SECONDS)
records = JobRecords(client, settings.result_ttl_seconds, settings.queue_name)
register_tasks(app, settings, records)


@worker_init.connect
def _load_model_before_consuming(**_):
    load_runtime(settings)
    LostJobSweeper(client, app, records, settings.queue_name,
                   stale_after=settings.visibility_timeout_seconds,
                   interval=min(10.0, settings.visibility_timeout_seconds)).start()
