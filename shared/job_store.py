"""The one home of a job's life cycle. Every change of a job's state goes through
`JobStore`, and each change is one Lua script, so it is atomic in Redis:

    create ─> queued ──start──> started ──finish──> succeeded | failed
                 └────────────── cancel ───────────────┘  (failed: cancelled)

- **The first terminal state wins.** `finish` and `cancel` on a job that already
  reads `succeeded` or `failed` change nothing and say so (they return False): once
  a job reads terminal, every later read gives the same answer.
- **Ending a job is one step**: the outcome is stored, the image deleted, the job
  taken out of the lost-job index and the queued-bytes count, its webhook delivery
  written to the outbox (when it has a webhook), and waiting requests told. Only
  the first finisher does any of that, so a job sends its webhook once.
- **A message for a job that is terminal or unknown is dropped unrun**: `start`
  says so, and the worker acknowledges the message without running it (a
  redelivered or duplicated message, a cancelled job, a job whose enqueue failed).
- **Cancel wins over a running job**: DELETE on a job that is queued or started
  ends it `failed`/`cancelled` at once; a worker that finishes it later finds it
  terminal and its result is discarded. DELETE on a terminal job changes nothing.

- **A job not started by its deadline never runs**: `start` on a queued job past
  its `deadline_at` changes nothing and says `expired`, and the worker ends it
  `failed`/`expired` (`expire`) without reading its image; the web tier and the
  lost-job sweeper expire one they read past its deadline the same way.
- **A key's queued jobs are counted** (`QUEUE_MAX_PER_KEY`): `create` refuses a
  job over its key's count, and the job leaves the count in the same script that
  moves it out of `queued` (start, finish, discard).

Nothing else writes a job's state: the web tier creates, reads and cancels through
this class; the worker starts and finishes through it; the sweeper re-sends
through it; the webhook dispatcher reads its deliveries from the outbox the finish script
writes (`shared.webhook_outbox`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from enum import Enum

import redis
from celery import Celery

from shared import redis_scripts
from shared.api_models import ErrorDetail, Job, JobResult, JobStatus
from shared.celery_app import CLASSIFY_TASK
from shared.errors import (
    JobCancelled,
    JobExpired,
    QueueFull,
    QuotaExceeded,
    ResqError,
    normalised_error,
)
from shared.job_records import IMAGE_PREFIX, RECORD_PREFIX, JobRecord, JobRecords
from shared.lanes import Lane, lane_list, served_lists
from shared.webhook_outbox import DELIVERY_PREFIX, OUTBOX_PREFIX, WebhookOutbox

# Waiting requests subscribe to these channels (`web.result_waiter`).
EVENTS_PREFIX = "resq:job-events:"
QUEUED_BYTES_PREFIX = "resq:queued-bytes:"
# New jobs are refused while Redis's memory is this close to its `maxmemory`: the
# rest stays free for what ends jobs (taking a message, storing a result), so that
# a full Redis drains instead of wedging (with noeviction, a write past maxmemory
# is refused, the worker's included).
REDIS_MEMORY_HEADROOM = 0.10

class Start(Enum):
    """What a worker does with a job's message."""

    RUN = "run"
    TERMINAL = "terminal"  # finished, failed or cancelled already: drop the message
    UNKNOWN = "unknown"  # no record (expired, or its enqueue failed): drop it
    EXPIRED = "expired"  # queued past its deadline: end it `expired`, never decode it


@dataclass(frozen=True)
class Started:
    """What `JobStore.start` found: whether to run the job and, when it is to run,
    its image (None once expired), the crashes it has been charged with and whether
    it came by the interactive lane."""

    decision: Start
    image: bytes | None = None
    crashes: int = 0
    interactive: bool = False


QUEUE_PREFIX_BY_OWNER = "resq:queued-by:"  # + queue + ":" + owner key: queued jobs


class JobStore:
    def __init__(self, client: redis.Redis, celery: Celery, *, queue: str, ttl_seconds: int):
        self.client = client
        self.celery = celery
        self.queue = queue
        self.ttl = ttl_seconds
        self.records = JobRecords(client, ttl_seconds, queue)
        self.queued_bytes_key = QUEUED_BYTES_PREFIX + queue
        self.outbox_key = OUTBOX_PREFIX + queue
        self._create = client.register_script(redis_scripts.CREATE)
        self._discard_script = client.register_script(redis_scripts.DISCARD)
        self._start = client.register_script(redis_scripts.START)
        self._finish = client.register_script(redis_scripts.FINISH)
        self.outbox = WebhookOutbox(client, queue)

    # --- create + enqueue (web tier) ------------------------------------------
    def create(self, job_id: str, *, top_k: int, form: str, image: bytes, owner: str = "",
               webhook: str = "", max_queue_length: int = 0, max_queue_bytes: int = 0,
               lane: Lane = Lane.BATCH, deadline_seconds: float = 0.0,
               quota_key: str = "", max_per_key: int = 0,
               webhook_events: tuple[str, ...] = ("completed",)) -> JobRecord:
        """Record the job and its image, then send its message to `lane`. Refused with
        `QueueFull` when `max_queue_length` jobs wait (both lanes), when their images
        would pass `max_queue_bytes`, or when Redis is within its headroom of
        `maxmemory`; with `QuotaExceeded` when `quota_key` (an API key or an address)
        has `max_per_key` jobs queued. A job not started within `deadline_seconds`
        (0: no deadline) ends `expired`. If the message cannot be sent, the record is
        removed again (so nothing ever runs a job its client was refused) and the
        error raised. Only a sent job enters the lost-job index."""
        with self.client.pipeline(transaction=False) as pipe:  # one round trip
            for name in served_lists(self.queue):
                pipe.llen(name)
            pipe.info("memory")
            *lengths, memory = pipe.execute()
        if max_queue_length and sum(lengths) >= max_queue_length:
            raise QueueFull()
        self._check_memory(memory, len(image))
        created_at = time.time()
        deadline_at = created_at + deadline_seconds if deadline_seconds > 0 else 0.0
        quota_counter = (QUEUE_PREFIX_BY_OWNER + self.queue + ":" + quota_key
                         if max_per_key > 0 else "")
        fields = {"created_at": repr(created_at), "top_k": top_k, "form": form,
                  "owner": owner, "webhook": webhook, "status": JobStatus.QUEUED.value,
                  "bytes": len(image), "lane": Lane(lane).value,
                  "deadline_at": repr(deadline_at), "quota": quota_counter,
                  "webhook_events": ",".join(webhook_events)}
        pairs = [item for pair in fields.items() for item in pair]
        admitted = self._create(
            keys=[RECORD_PREFIX + job_id, IMAGE_PREFIX + job_id, self.queued_bytes_key,
                  quota_counter or self.queued_bytes_key],
            args=[max_queue_bytes, len(image), self.ttl, image, max_per_key, *pairs])
        if admitted == 0:
            raise QueueFull("the images waiting in the queue are over its size limit; "
                            "retry later")
        if admitted == -1:
            raise QuotaExceeded(f"this key has {max_per_key} jobs queued, as many as it may; "
                                "retry once some have started")
        record = JobRecord(id=job_id, created_at=created_at, top_k=top_k, form=form,
                           status=JobStatus.QUEUED, owner=owner, webhook=webhook,
                           lane=Lane(lane).value, deadline_at=deadline_at,
                           webhook_events=tuple(webhook_events))
        try:
            self._send(record)
        except Exception:
            self._discard(job_id)
            raise
        self.records.index_inflight(job_id, created_at)
        return record

    @staticmethod
    def _check_memory(memory: dict, incoming: int) -> None:
        limit = int(memory.get("maxmemory", 0))
        if limit and memory["used_memory"] + incoming > limit * (1 - REDIS_MEMORY_HEADROOM):
            raise QueueFull("the job store is nearly full; retry later")

    def _send(self, record: JobRecord) -> None:
        # ignore_result: the job's end is read from its record, never from Celery's
        # result backend, so the web tier does not subscribe to a result channel per
        # job (a SUBSCRIBE and an UNSUBSCRIBE each, seen in Redis's MONITOR).
        self.celery.send_task(CLASSIFY_TASK, task_id=record.id,
                              queue=lane_list(self.queue, record.lane),
                              kwargs={"top_k": record.top_k, "created_at": record.created_at},
                              ignore_result=True)

    def _discard(self, job_id: str) -> None:
        """Undo a create whose message was never sent (best effort: Redis may be the
        reason it failed; a record left behind is never run and expires)."""
        try:
            self._discard_script(keys=[RECORD_PREFIX + job_id, IMAGE_PREFIX + job_id,
                                       self.queued_bytes_key])
        except redis.RedisError:
            pass

    def resend(self, record: JobRecord) -> None:
        """Send a lost job's message again (the lost-job sweeper)."""
        self._send(record)

    # --- read ---------------------------------------------------------------------
    def record(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    # --- transitions ----------------------------------------------------------------
    def start(self, job_id: str, worker: str) -> Started:
        delivery_id = str(uuid.uuid4())
        found = self._start(keys=[RECORD_PREFIX + job_id, IMAGE_PREFIX + job_id,
                                  self.outbox_key, DELIVERY_PREFIX + delivery_id],
                            args=[worker, repr(time.time()), self.ttl, delivery_id, job_id])
        before = found[0].decode() if isinstance(found[0], bytes) else found[0]
        if not before:
            return Started(Start.UNKNOWN)
        if before == Start.EXPIRED.value:
            return Started(Start.EXPIRED)
        if JobStatus(before).is_terminal():
            return Started(Start.TERMINAL)
        return Started(Start.RUN, image=found[2] or None, crashes=int(found[1]),
                       interactive=found[3] == Lane.INTERACTIVE.value.encode())

    def finish(self, job_id: str, *, result: dict | None = None,
               error: ResqError | None = None) -> bool:
        """End the job with `result` (succeeded) or `error` (failed). True if this
        call ended it; False if it was terminal already (or unknown)."""
        if (result is None) == (error is None):
            raise ValueError("finish takes a result or an error")
        if result is not None:
            status, field, payload = JobStatus.SUCCEEDED, "result", result
        else:
            status, field, payload = JobStatus.FAILED, "error", error.to_dict()
        delivery_id = str(uuid.uuid4())
        return bool(self._finish(
            keys=[RECORD_PREFIX + job_id, IMAGE_PREFIX + job_id, self.records.inflight_key,
                  self.queued_bytes_key, self.outbox_key, DELIVERY_PREFIX + delivery_id,
                  EVENTS_PREFIX + job_id],
            args=[job_id, status.value, field, json.dumps(payload), repr(time.time()),
                  self.ttl, delivery_id]))

    def expire(self, job_id: str) -> bool:
        """End a queued job past its deadline `failed`/`expired`: it never runs. True if
        this call ended it."""
        return self.finish(job_id, error=JobExpired())

    def expire_if_due(self, record: JobRecord, now: float | None = None) -> bool:
        """Expire `record`'s job if it is still queued past its deadline."""
        now = time.time() if now is None else now
        if (record.status is JobStatus.QUEUED and record.deadline_at
                and now > record.deadline_at):
            return self.expire(record.id)
        return False

    def cancel(self, job_id: str) -> bool:
        """Cancel wins: a queued or started job ends `failed`/`cancelled` now. True if
        this call ended it; False if it had ended already."""
        return self.finish(job_id, error=JobCancelled())

    def queued_bytes(self) -> int:
        return int(self.client.get(self.queued_bytes_key) or 0)


def job_view(record: JobRecord) -> Job:
    """The job as clients see it: what `GET /jobs/<id>` answers and a webhook sends."""
    result = error = None
    if record.status is JobStatus.SUCCEEDED:
        result = JobResult.model_validate(record.result)
    elif record.status is JobStatus.FAILED:
        error = ErrorDetail(**normalised_error(record.error))
    return Job(id=record.id, status=record.status, created_at=record.created_at,
               top_k=record.top_k, result=result, error=error)


