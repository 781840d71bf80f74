"""The worker's task, thin: the job store says whether the job's message is to run
(`shared.job_data.store.Start`, with its image, crash count and lane), `JobHandler` runs
it, and the store ends the job with its result or error (a job past its deadline
ends `expired` unread). The task itself never fails: every outcome is the job's,
and the message is acknowledged once the job's end is stored."""

from __future__ import annotations

import logging

import redis
from celery import Task

from shared.celery_app import CLASSIFY_TASK
from shared.dns_resolver import DnsResolver
from shared.errors import InferenceFailed, JobExpired, ResqError
from shared.job_data.batches import split_item_id
from shared.job_data.cache import ResultCache, scope_of
from shared.job_data.lua import Start
from shared.job_data.store import JobStore
from shared.url_fetch import UrlFetcher
from shared.url_guard import AddressPolicy
from worker import metrics
from worker.job_handler import JobHandler
from worker.runtime import load_classifier
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def public_error(error: Exception, job_id: str) -> ResqError:
    """What a failed job tells its client: a `ResqError` as it is (its message is
    written for clients); anything else as `inference_failed` with a safe message,
    the details (which may name hosts, paths or addresses) in the worker's log."""
    if isinstance(error, ResqError):
        return error
    log.error("job %s failed", job_id, exc_info=error, extra={"job_id": job_id})
    return InferenceFailed(f"the job failed in the worker; its log has the details "
                           f"(job {job_id})")


class ClassifyTask(Task):
    """The classify task, a class at module level: Celery calls `run` for each
    message (the job id is the task id); `celery_worker` registers one instance with
    the worker's settings, job store and id."""

    name = CLASSIFY_TASK
    ignore_result = True

    def __init__(self, settings: WorkerSettings, store: JobStore, worker_id: str):
        self.settings, self.store, self.worker_id = settings, store, worker_id
        # A batch's URL items are fetched here, when their turn comes, behind the same
        # SSRF guard and deadline as the web tier's URL jobs.
        self.fetcher = UrlFetcher(
            max_bytes=settings.max_upload_bytes,
            timeout_seconds=settings.url_fetch_timeout_seconds,
            policy=AddressPolicy(settings.url_fetch_allow_networks,
                                 settings.url_fetch_allow_ports),
            resolver=DnsResolver(settings.dns_nameservers,
                                 per_zone=settings.dns_lookups_per_zone, wait_for_slot=True))

        self.cache = ResultCache(store.client, settings.queue_name,
                                 settings.result_cache_ttl_seconds)

    def _release_next(self, job_id: str) -> None:
        """A batch item has left the lane (started, or ended unrun): release its
        batch's next item. Best effort: the sweeper releases what this misses."""
        parts = split_item_id(job_id)
        if parts is None:
            return
        try:
            self.store.batches.release(parts[0])
        except redis.RedisError as error:
            log.warning("batch %s: releasing its next items failed (%s); the sweeper will",
                        parts[0], error)

    def run(self, top_k: int, created_at: float) -> None:
        job_id = self.request.id
        store = self.store
        started = store.start(job_id, worker=self.worker_id)
        decision = started.decision
        self._release_next(job_id)
        if decision is Start.EXPIRED:
            # Queued past its deadline: ended `expired` here, never decoded.
            # Counted, logged at debug only: a backlog of them is drained at hundreds a
            # second, and a log line each was a tenth of what one cost the worker.
            if store.expire(job_id):
                metrics.job_finished(JobExpired.code)
            log.debug("job %s was not started by its deadline; it ends expired", job_id,
                      extra={"job_id": job_id})
            return
        if decision is not Start.RUN:
            # Terminal already (finished, failed, cancelled) or unknown: a redelivered
            # or duplicated message, acknowledged and dropped without running.
            metrics.MESSAGES_DROPPED.labels(reason=decision.value).inc()
            log.info("job %s is %s; its message is dropped unrun", job_id, decision.value,
                     extra={"job_id": job_id})
            return
        handler = JobHandler(store.records, load_classifier(self.settings),
                             max_attempts=self.settings.job_max_attempts, cache=self.cache,
                             scope=scope_of(self.settings.result_cache, started.owner))
        try:
            image = self.fetcher.fetch(started.url) if started.url else started.image
            result = handler.run(job_id, top_k, created_at, image=image,
                                 crashes=started.crashes, interactive=started.interactive)
        except Exception as error:
            failure = public_error(error, job_id)
            outcome, ended = failure.code, store.finish(job_id, error=failure)
        else:
            outcome, ended = "", store.finish(job_id, result=result)
        if ended:
            metrics.job_finished(outcome)
        else:  # cancelled meanwhile, or a duplicate finished first: nothing changes
            metrics.MESSAGES_DROPPED.labels(reason="ended_meanwhile").inc()
            log.info("job %s had ended meanwhile; this run's outcome is discarded", job_id,
                     extra={"job_id": job_id})
