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
through it; the webhook dispatcher reads its deliveries from the outbox here.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from enum import Enum

import redis
from celery import Celery

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

# Waiting requests subscribe to these channels (`web.result_waiter`).
EVENTS_PREFIX = "resq:job-events:"
QUEUED_BYTES_PREFIX = "resq:queued-bytes:"
OUTBOX_PREFIX = "resq:outbox:"  # webhook deliveries due, scored by when
DELIVERY_PREFIX = "resq:delivery:"  # one hash per delivery: job id, URL, attempts
RETRY_AFTER_QUEUE_FULL = 10
RETRY_AFTER_QUOTA = 5
# New jobs are refused while Redis's memory is this close to its `maxmemory`: the
# rest stays free for what ends jobs (taking a message, storing a result), so that
# a full Redis drains instead of wedging (with noeviction, a write past maxmemory
# is refused, the worker's included).
REDIS_MEMORY_HEADROOM = 0.10

# A job's record names the counter of its owner's queued jobs (`QUEUE_MAX_PER_KEY`)
# in its `quota` field; the job leaves the count when it leaves `queued`, in the
# one script that moves it on (start, finish or discard).
_LEAVE_QUEUED = """
local function leave_queued(record)
  local quota = redis.call('HGET', record, 'quota')
  if quota and quota ~= '' and tonumber(redis.call('DECR', quota)) < 0 then
    redis.call('SET', quota, 0)
  end
end
"""

_CREATE = """
-- KEYS: record, image, queued-bytes, owner's queued-jobs counter
-- ARGV: max bytes (0: no limit), size, ttl, image, max per owner (0: no limit),
-- then field/value pairs of the record. Returns 1, or 0 (bytes full), -1 (quota).
local max_bytes, size = tonumber(ARGV[1]), tonumber(ARGV[2])
if max_bytes > 0 and (tonumber(redis.call('GET', KEYS[3]) or '0') + size) > max_bytes then
  return 0
end
local max_per_owner = tonumber(ARGV[5])
if max_per_owner > 0 then
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= max_per_owner then return -1 end
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
redis.call('INCRBY', KEYS[3], size)
return 1
"""

_DISCARD = _LEAVE_QUEUED + """
-- KEYS: record, image, queued-bytes. Removes a job that is still queued.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
leave_queued(KEYS[1])
local size = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
redis.call('DEL', KEYS[1], KEYS[2])
if tonumber(redis.call('DECRBY', KEYS[3], size)) < 0 then redis.call('SET', KEYS[3], 0) end
return 1
"""

_START = _LEAVE_QUEUED + """
-- KEYS: record, image, outbox, delivery; ARGV: worker, now, ttl, delivery id, job id.
-- Returns the job's status before the call ('' for an unknown job), or 'expired'
-- for a queued job past its deadline (left as it is: the caller ends it). Only a
-- queued or started job is (re)marked started, and for it also its crash count, its
-- image (false once gone) and its lane come back: one round trip. A job's first start sends
-- its `started` webhook if it asked for one.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {''} end
if status == 'queued' then
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline_at') or '0')
  if deadline > 0 and tonumber(ARGV[2]) > deadline then return {'expired'} end
  leave_queued(KEYS[1])
  local webhook = redis.call('HGET', KEYS[1], 'webhook')
  local events = redis.call('HGET', KEYS[1], 'webhook_events') or ''
  if webhook and webhook ~= '' and string.find(',' .. events .. ',', ',started,', 1, true) then
    redis.call('HSET', KEYS[4], 'job_id', ARGV[5], 'url', webhook,
               'attempts', 0, 'event', 'started')
    redis.call('EXPIRE', KEYS[4], ARGV[3])
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
  end
end
if status == 'queued' or status == 'started' then
  redis.call('HSET', KEYS[1], 'status', 'started', 'worker', ARGV[1], 'started_at', ARGV[2])
  return {status, redis.call('HGET', KEYS[1], 'crashes') or '0', redis.call('GET', KEYS[2]),
          redis.call('HGET', KEYS[1], 'lane') or 'batch'}
end
return {status}
"""

_FINISH = _LEAVE_QUEUED + """
-- KEYS: record, image, inflight index, queued-bytes, outbox, delivery, events channel
-- ARGV: job id, status, field ('result' or 'error'), payload JSON, now, ttl, delivery id
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'succeeded' or status == 'failed' then
  return 0
end
if status == 'queued' then leave_queued(KEYS[1]) end
-- Frees first: with Redis full (maxmemory, noeviction) a script's first write
-- decides whether it may run, and deleting is always allowed.
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[2], ARGV[3], ARGV[4], 'finished_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
local size = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if size > 0 and tonumber(redis.call('DECRBY', KEYS[4], size)) < 0 then
  redis.call('SET', KEYS[4], 0)
end
local webhook = redis.call('HGET', KEYS[1], 'webhook')
local events = redis.call('HGET', KEYS[1], 'webhook_events') or 'completed'
if webhook and webhook ~= '' and string.find(',' .. events .. ',', ',completed,', 1, true) then
  redis.call('HSET', KEYS[6], 'job_id', ARGV[1], 'url', webhook, 'attempts', 0,
             'event', 'completed')
  redis.call('EXPIRE', KEYS[6], ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[7])
end
redis.call('PUBLISH', KEYS[7], ARGV[2])
return 1
"""

_CLAIM = """
-- KEYS: outbox; ARGV: now, lease seconds. The first due delivery, leased until
-- now + lease (a dispatcher that dies with it lets it come due again).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), due[1])
return due[1]
"""


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


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    url: str
    attempts: int
    event: str = "completed"  # or "started" (`webhook_events`)


# What a job's webhook may be sent on; a job asks for some (`webhook_events`).
WEBHOOK_EVENTS = ("started", "completed")
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
        self._create = client.register_script(_CREATE)
        self._discard_script = client.register_script(_DISCARD)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)
        self._claim = client.register_script(_CLAIM)

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
            raise QueueFull(retry_after=RETRY_AFTER_QUEUE_FULL)
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
                            "retry later", retry_after=RETRY_AFTER_QUEUE_FULL)
        if admitted == -1:
            raise QuotaExceeded(f"this key has {max_per_key} jobs queued, as many as it may; "
                                "retry once some have started",
                                retry_after=RETRY_AFTER_QUOTA)
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
            raise QueueFull("the job store is nearly full; retry later",
                            retry_after=RETRY_AFTER_QUEUE_FULL)

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

    # --- webhook outbox -----------------------------------------------------------
    def claim_delivery(self, lease_seconds: float) -> Delivery | None:
        """The next due webhook delivery, leased to the caller for `lease_seconds`."""
        delivery_id = self._claim(keys=[self.outbox_key], args=[time.time(), lease_seconds])
        if not delivery_id:
            return None
        delivery_id = delivery_id.decode()
        fields = self.client.hgetall(DELIVERY_PREFIX + delivery_id)
        if not fields:  # expired with its job: nothing left to send
            self.client.zrem(self.outbox_key, delivery_id)
            return None
        return Delivery(id=delivery_id, job_id=fields[b"job_id"].decode(),
                        url=fields[b"url"].decode(), attempts=int(fields[b"attempts"]),
                        event="started" if fields.get(b"event") == b"started" else "completed")

    def delivery_done(self, delivery: Delivery) -> None:
        """Delivered, or given up: the delivery leaves the outbox."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.outbox_key, delivery.id)
            pipe.delete(DELIVERY_PREFIX + delivery.id)
            pipe.execute()

    def delivery_failed(self, delivery: Delivery, retry_in: float) -> None:
        """Try the delivery again in `retry_in` seconds."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(DELIVERY_PREFIX + delivery.id, "attempts", 1)
            pipe.zadd(self.outbox_key, {delivery.id: time.time() + retry_in})
            pipe.execute()

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


