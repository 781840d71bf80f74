"""The worker's Celery app: the shared app with the task registered, and the model
loaded (and compiled, and warmed up) before the worker consumes its first message.
Jobs run in Celery's thread pool so that they can share one model in batches
(`python -m worker` runs it so, after its start-up checks)."""

from __future__ import annotations

import logging

from celery import current_task
from celery.signals import setup_logging, task_postrun, task_received, worker_init, worker_shutdown

from shared import log_format
from shared.celery_app import make_celery
from shared.dns_resolver import DnsResolver
from shared.job_data.store import JobStore, ReplicaAcks
from shared.redis_client import RedisTarget, connect
from shared.settings import webhook_keys
from shared.url_guard import AddressPolicy
from worker import health, metrics
from worker.health import Liveness
from worker.heartbeat import Heartbeat, new_worker_id
from worker.redelivery import LostJobSweeper
from worker.runtime import load_classifier, loaded_classifier
from worker.settings import WorkerSettings
from worker.tasks import ClassifyTask
from worker.webhooks import WebhookDispatcher, WebhookSender

settings = WorkerSettings.current()
app = make_celery(settings, store_retries=100)
# Jobs in the middle of their run wait out a Redis restart rather than fail.
REDIS_RIDE_OUT_SECONDS = 60
redis_target = RedisTarget.of(settings)
client = connect(redis_target, ride_out_seconds=REDIS_RIDE_OUT_SECONDS)
store = JobStore(client, app, queue=settings.queue_name,
                 ttl_seconds=settings.result_ttl_seconds, acks=ReplicaAcks.of(settings),
                 batch_inflight=settings.batch_inflight)
worker_id = new_worker_id()
heartbeat = Heartbeat(client, settings.queue_name, worker_id,
                      interval=settings.worker_heartbeat_seconds)
sweeper = LostJobSweeper(client, store, stale_after=settings.visibility_timeout_seconds,
                         interval=min(10.0, settings.visibility_timeout_seconds),
                         reconcile_interval=settings.reconcile_interval_seconds)
app.register_task(ClassifyTask(settings, store, worker_id))
log = logging.getLogger(__name__)


class CurrentJob(logging.Filter):
    """Adds the running task's id as `job_id` to records logged inside a task."""

    def filter(self, record: logging.LogRecord) -> bool:
        if current_task and not hasattr(record, "job_id"):
            record.job_id = current_task.request.id
        return True


@setup_logging.connect
def _resq_logging(**_):
    """Connected, this replaces Celery's own logging setup with resq's format."""
    log_format.configure(settings.log_level, settings.log_format, CurrentJob())


@task_received.connect
def _holding(request=None, **_):
    """Recorded as it arrives, so that the message comes back at once if this
    worker dies holding it (`worker.heartbeat`)."""
    try:
        heartbeat.holding(request.id, request.message.delivery_tag)
    except Exception as error:  # the visibility timeout still covers it
        log.warning("could not record a held job: %s", error)


@task_postrun.connect
def _released(task_id=None, **_):
    try:
        heartbeat.released(task_id)
    except Exception as error:
        log.warning("could not record a released job: %s", error)


@worker_shutdown.connect
def _stop_beating(**_):
    # A worker that stops beating stops sweeping too: the live ones sweep after it.
    heartbeat.stop()
    sweeper.stop()


def _stalled_seconds() -> float | None:
    classifier = loaded_classifier()
    return classifier.batcher.stalled_seconds() if classifier is not None else None


@worker_init.connect
def _load_model_before_consuming(**_):
    # Scrapes read the queue with a client that fails fast, not the patient one.
    metrics.register(connect(redis_target), settings.queue_name)
    if settings.worker_metrics_port:
        health.serve(settings.worker_metrics_port, Liveness(_stalled_seconds,
                                                            settings.worker_stall_seconds))
    settings.worker_ready_file.unlink(missing_ok=True)
    heartbeat.model = load_classifier(settings).identity
    heartbeat.start()
    sweeper.start()
    # One zone takes at most half of the dispatchers: the others go on with other
    # receivers' deliveries.
    zone_share = min(settings.dns_lookups_per_zone, max(1, settings.webhook_threads // 2))
    sender = WebhookSender(store, keys=webhook_keys(settings.webhook_secret.get_secret_value()),
                           http_networks=settings.webhook_http_networks,
                           timeout=settings.webhook_timeout_seconds,
                           policy=AddressPolicy(settings.url_fetch_allow_networks,
                                                settings.url_fetch_allow_ports),
                           resolver=DnsResolver(settings.dns_nameservers, per_zone=zone_share))
    WebhookDispatcher(store, sender, max_attempts=settings.webhook_max_attempts,
                      threads=settings.webhook_threads).start()
    settings.worker_ready_file.write_text("ready\n")  # the startup probe's signal
