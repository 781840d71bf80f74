"""The Celery app both tiers use: Redis as broker and result backend, JSON only,
late acknowledgement, one explicit queue.

The web tier only sends tasks by name (`CLASSIFY_TASK`); the worker registers the
task body (`worker.tasks`), so the web tier never imports the model code.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.lanes import served_lists
from shared.redis_client import REDIS_SOCKET_TIMEOUT, RedisTarget
from shared.settings import CommonSettings

CLASSIFY_TASK = "resq.classify"
# Where kombu's Redis transport keeps the messages workers have taken and not yet
# acknowledged (its defaults): a hash by delivery tag, and when each was taken.
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"


def make_celery(settings: CommonSettings, *, store_retries: int = 2) -> Celery:
    """The Celery app. `store_retries` bounds how often storing a result is retried
    while Redis is away: small for the web tier (it answers 503 instead), large for
    the worker (it holds the finished result until Redis is back)."""
    app = Celery("resq", set_as_current=False)
    # One server, or the primary that the sentinels name (`shared.redis_client`).
    broker, sentinel_options = RedisTarget.of(settings).celery_broker()
    app.conf.update(
        broker_url=broker,
        result_backend=broker,
        # JSON in both directions: a pickled message is refused, never run.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A job is acknowledged only after its end is stored (by the job store, not
        # Celery's result backend); a worker that dies mid-job leaves the message to
        # be delivered again, and a message for a job that has ended is dropped
        # unrun (`shared.job_data.store`).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # The task never fails for a job's own reasons (every outcome is the job's);
        # it raises only when the job's end could not be stored or replicated
        # (`NotReplicated`), and then its message stays unacknowledged, to be
        # delivered again: the end, if it did survive, drops it unrun.
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_expires=settings.result_ttl_seconds,
        result_extended=False,
        # Task events (Flower's task pages) only when asked for: four event messages
        # a job cost about 9 ms of CPU across the tiers (`TASK_EVENTS`). Workers send
        # their heartbeats to Flower either way.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        # The queue's two lanes, explicit; a typo in a queue name fails instead of
        # creating one. Workers pop them in this order (`queue_order_strategy`).
        task_queues=[Queue(name, routing_key=name) for name in served_lists(settings.queue_name)],
        task_default_queue=settings.queue_name,
        task_default_routing_key=settings.queue_name,
        task_create_missing_queues=False,
        task_routes={CLASSIFY_TASK: {"queue": settings.queue_name}},
        # Fail fast when Redis is unreachable instead of hanging a web request.
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
            # Messages a dead worker held come back after the visibility timeout;
            # every worker sweeps for them each second (not every 100 s).
            "visibility_timeout": settings.visibility_timeout_seconds,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            # The interactive lane first, always (`shared.lanes`), not round robin.
            "queue_order_strategy": "priority",
            **sentinel_options,
        },
        redis_socket_timeout=REDIS_SOCKET_TIMEOUT,
        redis_socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        redis_retry_on_timeout=True,
        # Every result-backend call retries a lost connection (`store_retries` times,
        # 50 ms to 1 s apart), not only the writes: storing a result first reads it.
        result_backend_always_retry=True,
        result_backend_max_retries=store_retries,
        result_backend_base_sleep_between_retries_ms=50,
        result_backend_max_sleep_between_retries_ms=1000,
        result_backend_transport_options={"retry_policy": {
            "max_retries": store_retries, "interval_start": 0,
            "interval_step": 0.5, "interval_max": 1}, **sentinel_options},
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.2,
                                   "interval_step": 0.2, "interval_max": 0.2},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_channel_error_retry=True,
    )
    return app
