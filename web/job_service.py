"""The web tier's runtime: submits, reads, waits for and cancels jobs, each through
the job store (`shared.job_store`), which owns every change of a job's state. The
HTTP layer (`web.blueprints.jobs`) only translates requests to these calls."""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import contextmanager

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from shared.api_models import Job, JobStatus
from shared.errors import BrokerUnavailable, JobNotFound, ResultDropped
from shared.job_data.cache import ResultCache, image_digest, scope_of
from shared.job_data.records import new_job_id
from shared.job_data.store import JobStore, NewJob, ReplicaAcks, job_view
from shared.lanes import Lane
from shared.redis_client import REDIS_ERRORS
from web import metrics
from web.idempotency import IdempotencyStore
from web.intake import Submission
from web.result_waiter import RECHECK_SECONDS, ResultWaiter
from web.settings import WebSettings

log = logging.getLogger(__name__)

# How long a replayed idempotent request waits for the job of a concurrent twin.
REPLAY_GRACE_SECONDS = 2.0
# The result cache is read under the model the workers said they run within this long
# (a worker says it with each heartbeat), that model read at most this often.
MODEL_LIVE_SECONDS = 60.0
MODEL_RECHECK_SECONDS = 1.0
# A lost Redis, and a full one (`maxmemory` reached with `noeviction`: Redis refuses
# writes with an OOM error until jobs end and free their images).
UNAVAILABLE_ERRORS = (*REDIS_ERRORS, OperationalError, redis.OutOfMemoryError)


@contextmanager
def redis_guard():
    """Turn a lost or full Redis into a 503 with `Retry-After`."""
    try:
        yield
    except UNAVAILABLE_ERRORS as error:
        log.warning("redis unavailable: %s", error)
        raise BrokerUnavailable() from error
    except redis.ResponseError as error:
        if "OOM" not in str(error):  # kombu re-raises Redis's OOM error as it found it
            raise
        log.warning("redis is full: %s", error)
        raise BrokerUnavailable("the job queue is full; retry later") from error


class JobService:
    def __init__(self, settings: WebSettings, celery: Celery, client: redis.Redis,
                 waiter: ResultWaiter):
        self.settings = settings
        self.celery = celery
        self.client = client
        self.store = JobStore(client, celery, queue=settings.queue_name,
                              ttl_seconds=settings.result_ttl_seconds,
                              acks=ReplicaAcks.of(settings),
                              batch_inflight=settings.batch_inflight)
        self.waiter = waiter
        self.idempotency = IdempotencyStore(client, settings.result_ttl_seconds)
        self.cache = ResultCache(client, settings.queue_name, settings.result_cache_ttl_seconds)
        self._live_model: tuple[float, str | None] = (float("-inf"), None)  # (when read, model)

    # --- submit -------------------------------------------------------------
    def submit(self, submission: Submission, owner: str = "",
               idempotency_key: str | None = None, *, interactive: bool = False,
               quota_key: str = "") -> tuple[Job, bool]:
        """The new job, or (with an idempotency key seen before for the same request)
        the job that key made; the flag says which. `interactive` (its client waits
        for it) sends it to the interactive lane where that lane is on; `quota_key`
        is who it counts against for `QUEUE_MAX_PER_KEY`."""
        lane = self._lane(interactive)
        job_id = new_job_id()
        if idempotency_key is not None:
            with redis_guard():
                earlier = self.idempotency.claim(owner, idempotency_key,
                                                 submission.fingerprint(), job_id)
            if earlier is not None:
                return self._replayed(earlier, owner), True
            try:
                return self._create_one(job_id, submission, owner, lane, quota_key), False
            except Exception:
                with redis_guard():
                    self.idempotency.release(owner, idempotency_key, job_id)
                raise
        return self._create_one(job_id, submission, owner, lane, quota_key), False

    def _create_one(self, job_id: str, submission: Submission, owner: str, lane: Lane,
                    quota_key: str) -> Job:
        """The job, created already `succeeded` when the result cache has its image's
        result under the model the workers run, else queued."""
        began = time.perf_counter()
        entry = self._cached(submission, owner)
        if entry is None:
            return self._create([job_id], [submission], owner, lane, quota_key)[0]
        options = submission.options
        elapsed_ms = round((time.perf_counter() - began) * 1000, 3)
        result = {"predictions": entry["predictions"][:options.top_k], "model": entry["model"],
                  "timing_ms": {"queued": 0.0, "preprocess": 0.0, "inference": 0.0,
                                "total": elapsed_ms},
                  "cached": True}
        with redis_guard():
            record = self.store.create_succeeded(
                job_id, result=result, top_k=options.top_k, owner=owner,
                webhook=options.webhook or "", webhook_events=tuple(options.webhook_events))
        log.info("job accepted, its result reused from the cache",
                 extra={"job_id": job_id, "form": submission.form.value})
        metrics.job_submitted(submission.form.value, metrics.CACHED_LANE)
        return job_view(record)

    def _cached(self, submission: Submission, owner: str) -> dict | None:
        """The cache entry of the submission's image (`shared.job_data.cache`), if the
        cache is on and the workers run one model."""
        scope = scope_of(self.settings.result_cache, owner)
        if scope is None:
            return None
        model = self._model()
        if model is None:
            return None
        entry = self.cache.get(model, scope, image_digest(submission.image))
        metrics.cache_looked_up(entry is not None)
        return entry

    def _model(self) -> str | None:
        """The workers' one live model identity, read from Redis at most once a second."""
        when, model = self._live_model
        if time.monotonic() - when > MODEL_RECHECK_SECONDS:
            model = self.cache.live_model(MODEL_LIVE_SECONDS)
            self._live_model = (time.monotonic(), model)
        return model

    def submit_many(self, submissions: list[Submission], owner: str = "", *,
                    interactive: bool = False, quota_key: str = "") -> list[Job]:
        """A job for each image of one request (the same options): all admitted, or
        none (the refusal raised)."""
        ids = [new_job_id() for _ in submissions]
        return self._create(ids, submissions, owner, self._lane(interactive), quota_key)

    def _lane(self, interactive: bool) -> Lane:
        return Lane.INTERACTIVE if interactive and self.settings.interactive_lane else Lane.BATCH

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

    def _create(self, ids: list[str], submissions: list[Submission], owner: str, lane: Lane,
                quota_key: str) -> list[Job]:
        options, form = submissions[0].options, submissions[0].form.value
        with redis_guard():
            records = self.store.create_many(
                [NewJob(job_id, s.image) for job_id, s in zip(ids, submissions, strict=True)],
                top_k=options.top_k, form=form, owner=owner, webhook=options.webhook or "",
                max_queue_length=self.settings.queue_max_length,
                max_queue_bytes=self.settings.queue_max_bytes, lane=lane,
                deadline_seconds=self.deadline_seconds(options.deadline_seconds),
                quota_key=quota_key, max_per_key=self.settings.queue_max_per_key,
                webhook_events=tuple(options.webhook_events))
        for record, submission in zip(records, submissions, strict=True):
            log.info("job accepted", extra={"job_id": record.id, "form": form,
                                            "bytes": len(submission.image), "lane": lane.value})
            metrics.job_submitted(form, lane.value)
        return [job_view(record) for record in records]

    def deadline_seconds(self, asked: float | None) -> float:
        """A job's queue deadline: what it asked for, bounded by the server's
        `JOB_MAX_QUEUE_SECONDS`; 0 for none."""
        bounds = [limit for limit in (asked or 0.0, self.settings.job_max_queue_seconds)
                  if limit > 0]
        return min(bounds, default=0.0)

    # --- read ---------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> Job:
        """The job, if it exists and belongs to `owner` (another key's job is as
        good as unknown: 404). A job still queued past its deadline is ended
        `expired` here, so a client reads the truth even while no worker runs."""
        with redis_guard():
            record = self.store.record(job_id)
            if record is not None and self.store.expire_if_due(record):
                metrics.job_expired()
                record = self.store.record(job_id)
        if record is None:
            return self._unreleased_or_gone(job_id, owner)
        if not hmac.compare_digest(record.owner, owner):
            raise JobNotFound()
        return job_view(record)

    def _unreleased_or_gone(self, job_id: str, owner: str) -> Job:
        """A job id without a record: a batch item not released yet (or ended with its
        cancelled batch unreleased), a result dropped to make room, or unknown."""
        with redis_guard():
            item = self.store.batches.unreleased_job(job_id)
            if item is not None and hmac.compare_digest(
                    self.store.batches.owner_of(job_id) or "", owner):
                return item
            dropped = self.store.records.dropped(job_id)
        raise ResultDropped() if dropped else JobNotFound()

    def wait(self, job: Job, seconds: float, owner: str = "") -> Job:
        """`job` (as just read or created for `owner`) once it is finished, or as it
        is after `seconds`."""
        if seconds <= 0 or job.status.is_terminal():
            return job
        job = self._wait(job.id, seconds, owner)
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
        """Cancel wins over a queued or running job; a finished job stays as it is
        (`shared.job_store`). Either way the answer is the job as it now stays."""
        job = self.get(job_id, owner)  # unknown, or another key's: 404
        with redis_guard():
            if job.status is JobStatus.QUEUED:  # a batch item not released yet has none
                self.store.batches.write_unreleased(job_id)
            cancelled = self.store.cancel(job_id)
        if cancelled:
            log.info("job cancelled", extra={"job_id": job_id})
        return self.get(job_id, owner)

    def close(self) -> None:
        self.waiter.stop()
        self.client.close()

    def ping(self) -> None:
        with redis_guard():
            self.client.ping()
