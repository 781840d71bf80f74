"""The web tier's runtime: submits, reads, waits for and cancels jobs. The HTTP
layer (`web.blueprints.jobs`) only translates requests to these calls."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from contextlib import contextmanager

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from shared.celery_app import CLASSIFY_TASK, WEBHOOK_TASK, webhook_queue
from shared.errors import BrokerUnavailable, JobNotFound, QueueFull
from shared.job_records import JobRecords
from shared.job_view import job_from
from shared.jobs import Job
from shared.redis_client import REDIS_ERRORS
from shared.settings import Settings
from web import metrics
from web.idempotency import IdempotencyStore
from web.intake import Submission
from web.result_waiter import RECHECK_SECONDS, ResultWaiter

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = 5
RETRY_AFTER_QUEUE_FULL = 10
# How long a replayed idempotent request waits for the job of a concurrent twin.
REPLAY_GRACE_SECONDS = 2.0
UNAVAILABLE_ERRORS = (*REDIS_ERRORS, OperationalError)


@contextmanager
def redis_guard():
    """Turn a lost Redis into a 503 with `Retry-After`."""
    try:
        yield
    except UNAVAILABLE_ERRORS as error:
        log.warning("redis unavailable: %s", error)
        raise BrokerUnavailable(retry_after=RETRY_AFTER_UNAVAILABLE) from error


class JobService:
    def __init__(self, settings: Settings, celery: Celery, client: redis.Redis,
                 waiter: ResultWaiter):
        self.settings = settings
        self.celery = celery
        self.client = client
        self.records = JobRecords(client, settings.result_ttl_seconds, settings.queue_name)
        self.waiter = waiter
        self.idempotency = IdempotencyStore(client, settings.result_ttl_seconds)

    # --- submit -------------------------------------------------------------
    def submit(self, submission: Submission, owner: str = "",
               idempotency_key: str | None = None) -> tuple[Job, bool]:
        """The new job, or (with an idempotency key seen before for the same request)
        the job that key made; the flag says which."""
        job_id = str(uuid.uuid4())
        if idempotency_key is not None:
            with redis_guard():
                earlier = self.idempotency.claim(owner, idempotency_key,
                                                 submission.fingerprint(), job_id)
            if earlier is not None:
                return self._replayed(earlier, owner), True
            try:
                return self._create(job_id, submission, owner), False
            except Exception:
                with redis_guard():
                    self.idempotency.release(owner, idempotency_key, job_id)
                raise
        return self._create(job_id, submission, owner), False

    def _replayed(self, job_id: str, owner: str) -> Job:
        """The job an earlier request made; it may be a moment away from existing
        when both requests came at once."""
        deadline = time.monotonic() + REPLAY_GRACE_SECONDS
        while True:
            try:
                return self.get(job_id, owner)
            except JobNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _create(self, job_id: str, submission: Submission, owner: str) -> Job:
        with redis_guard():
            if self.client.llen(self.settings.queue_name) >= self.settings.queue_max_length:
                raise QueueFull(retry_after=RETRY_AFTER_QUEUE_FULL)
            record = self.records.create(job_id, top_k=submission.options.top_k,
                                         form=submission.form.value, image=submission.image,
                                         owner=owner, webhook=submission.options.webhook or "")
            self.celery.send_task(
                CLASSIFY_TASK,
                kwargs={"top_k": record.top_k, "created_at": record.created_at},
                task_id=job_id,
                queue=self.settings.queue_name,
            )
        log.info("job accepted", extra={"job_id": job_id, "form": submission.form.value,
                                        "bytes": len(submission.image)})
        metrics.job_submitted(submission.form.value)
        return job_from(record, "PENDING", None)

    # --- read ---------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> Job:
        """The job, if it exists and belongs to `owner` (another key's job is as
        good as unknown: 404)."""
        with redis_guard():
            record = self.records.get(job_id)
            if record is None or not hmac.compare_digest(record.owner, owner):
                raise JobNotFound()
            meta = self.celery.backend.get_task_meta(job_id)
        return job_from(record, meta.get("status", "PENDING"), meta.get("result"))

    def wait(self, job_id: str, seconds: float, owner: str = "") -> Job:
        """The job once it is finished, or as it is after `seconds`."""
        job = self.get(job_id, owner)
        if seconds <= 0 or job.status.is_terminal():
            return job
        job = self._wait(job_id, seconds, owner)
        metrics.wait_ended(job.status.is_terminal())
        return job

    def _wait(self, job_id: str, seconds: float, owner: str) -> Job:
        deadline = time.monotonic() + seconds
        with self.waiter.watch(job_id) as changed:
            while True:
                # Read again once subscribed: a result stored between the first read
                # and the subscription would otherwise go unnoticed until a re-check.
                job = self.get(job_id, owner)
                remaining = deadline - time.monotonic()
                if job.status.is_terminal() or remaining <= 0:
                    return job
                changed.wait(min(remaining, RECHECK_SECONDS))
                changed.clear()

    # --- cancel -------------------------------------------------------------
    def cancel(self, job_id: str, owner: str = "") -> Job:
        job = self.get(job_id, owner)
        if job.status.is_terminal():
            return job
        with redis_guard():
            self.records.mark_cancelled(job_id)
            self.celery.backend.mark_as_revoked(job_id, "cancelled")
            self.celery.control.revoke(job_id)
            record = self.records.get(job_id)
            if record is not None and record.webhook:
                self.celery.send_task(WEBHOOK_TASK, args=[job_id],
                                      queue=webhook_queue(self.settings.queue_name))
        log.info("job cancelled", extra={"job_id": job_id})
        return self.get(job_id, owner)

    def close(self) -> None:
        self.waiter.stop()
        self.client.close()

    def ping(self) -> None:
        with redis_guard():
            self.client.ping()
