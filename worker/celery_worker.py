"""The worker's Celery app: the shared app with the task registered, and the model
loaded (and compiled, and warmed up) before the worker consumes its first message.
Jobs run in Celery's thread pool so that they can share one model in batches
(`python -m worker` runs it so, after its start-up checks)."""

from __future__ import annotations

import logging

from celery._state import get_current_task
from celery.signals import setup_logging, worker_init

from shared import log_format
from shared.celery_app import make_celery
from shared.job_store import JobStore
from shared.redis_client import connect
from shared.settings import get_settings
from shared.url_guard import AddressPolicy
from worker import metrics
from worker.redelivery import LostJobSweeper
from worker.runtime import load_runtime
from worker.tasks import register_tasks
from worker.webhooks import WebhookDispatcher, WebhookSender

settings = get_settings()
app = make_celery(settings, store_retries=100)
# Jobs in the middle of their run wait out a Redis restart rather than fail.
REDIS_RIDE_OUT_SECONDS = 60
client = connect(settings.redis_url, ride_out_seconds=REDIS_RIDE_OUT_SECONDS)
store = JobStore(client, app, queue=settings.queue_name,
                 ttl_seconds=settings.result_ttl_seconds)
register_tasks(app, settings, store)


class CurrentJob(logging.Filter):
    """Adds the running task's id as `job_id` to records logged inside a task."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        if task is not None and not hasattr(record, "job_id"):
            record.job_id = task.request.id
        return True


@setup_logging.connect
def _resq_logging(**_):
    """Connected, this replaces Celery's own logging setup with resq's format."""
    log_format.configure(settings.log_level, settings.log_format, CurrentJob())


@worker_init.connect
def _load_model_before_consuming(**_):
    # Scrapes read the queue with a client that fails fast, not the patient one.
    metrics.serve(settings.worker_metrics_port, connect(settings.redis_url),
                  settings.queue_name, store.records.inflight_key)
    settings.worker_ready_file.unlink(missing_ok=True)
    load_runtime(settings)
    LostJobSweeper(client, store, stale_after=settings.visibility_timeout_seconds,
                   interval=min(10.0, settings.visibility_timeout_seconds)).start()
    sender = WebhookSender(store, secret=settings.webhook_secret.get_secret_value().encode(),
                           timeout=settings.webhook_timeout_seconds,
                           policy=AddressPolicy(settings.url_fetch_allow_networks))
    WebhookDispatcher(store, sender, max_attempts=settings.webhook_max_attempts,
                      threads=settings.webhook_threads).start()
    settings.worker_ready_file.write_text("ready\n")  # the startup probe's signal
