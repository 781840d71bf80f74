"""The one home of a job's life cycle. Every change of a job's state goes through
`JobStore`, and each change is one Lua script, so it is atomic in Redis:

    create ─> queued ──start──> started ──finish──> succeeded | failed
                 └────────────── cancel ───────────────┘  (failed: cancelled)

- **Admitted whole or not at all.** One create script admits every job of a request
  (the images of a multipart request) against the limits on waiting work
  (`QUEUE_MAX_LENGTH`, `QUEUE_MAX_BYTES`, `QUEUE_MAX_PER_KEY`) and writes them all,
  with their index entries and counts; or refuses them all and writes nothing.
- **New work beats old results.** Where Redis has a `maxmemory`, the create script
  first makes room: it drops the oldest ended jobs' records (`shared.job_data.budget`)
  until the new jobs fit under the headroom line. It refuses only when what fills
  Redis cannot be dropped: waiting or running jobs, undelivered webhooks, or data
  that is not resq's.
- **The first terminal state wins.** `finish` and `cancel` on a job that already
  reads `succeeded` or `failed` change nothing and say so (they return False).
- **Ending a job is one step**: the outcome stored (the record becomes the job's
  final JSON), the image deleted, the job out of the index and the counts, into the
  list of ended jobs, its webhook delivery written to the outbox, waiting requests
  told. Only the first finisher does any of that, so a job sends its webhook once.
- **A message for a job that is terminal or unknown is dropped unrun** (`start`).
- **A job not started by its deadline never runs** (`start` says `expired`).
- **A create cut short is sent or ended**: the job is in the index from the create
  script on, so a job whose message never left (its web process killed, the
  script's reply lost) is found by the sweeper (`worker.redelivery`) and sent.
- **Safe at maxmemory**: every script frees before it writes (`shared.job_data.lua`).

Nothing else writes a job's state.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import redis
from celery import Celery

from shared.api_models import ErrorDetail, Job, JobResult, JobStatus
from shared.celery_app import CLASSIFY_TASK
from shared.errors import (
    JobCancelled,
    JobExpired,
    NotReplicated,
    QueueFull,
    QuotaExceeded,
    ResqError,
    normalised_error,
)
from shared.job_data import lua
from shared.job_data.batches import BatchStore
from shared.job_data.budget import HEADROOM, ROOM_CAP, SLACK, ResultBudget
from shared.job_data.keys import QueueKeys
from shared.job_data.lua import Start
from shared.job_data.outbox import WebhookOutbox
from shared.job_data.records import JobRecord, JobRecords
from shared.lanes import Lane, lane_list
from shared.settings import CommonSettings

CREATE = lua.PRELUDE + lua.MAKE_ROOM + """
-- KEYS: inflight index, queued-bytes, caller's counter (or '' without a quota),
--   quota counters in use, ended jobs, results-dropped, dropped-before, then each
--   lane's list, then each job's record and image, then the cache entries (last)
-- ARGV: jobs n, max waiting (0: none), max bytes (0: none), max per caller (0: none),
--   ttl, created_at, headroom, slack, cap, count c of common fields, c field/value
--   pairs, then for each job: id, size, image
-- Returns {1, results dropped}, or {0, why}: 'length', 'bytes', 'quota', 'memory'.
local n, max_length, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_per_caller, ttl, created_at = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local c = tonumber(ARGV[10])
local common = {unpack(ARGV, 11, 10 + 2 * c)}
local first = 11 + 2 * c
local total = 0
for i = 0, n - 1 do total = total + tonumber(ARGV[first + 3 * i + 1]) end
if max_length > 0 and redis.call('LLEN', KEYS[8]) + redis.call('LLEN', KEYS[9]) + n
    > max_length then
  return {0, 'length'}
end
if max_bytes > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') + total > max_bytes then
  return {0, 'bytes'}
end
if max_per_caller > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + n > max_per_caller then
  return {0, 'quota'}
end
local dropped, fits = make_room(KEYS[5], KEYS[6], KEYS[7], total, tonumber(ARGV[7]),
                                tonumber(ARGV[8]), tonumber(ARGV[9]), KEYS[#KEYS])
if not fits then return {0, 'memory'} end
for i = 0, n - 1 do
  local id, size, image = ARGV[first + 3 * i], ARGV[first + 3 * i + 1], ARGV[first + 3 * i + 2]
  local record, image_key = KEYS[10 + 2 * i], KEYS[11 + 2 * i]
  redis.call('HSET', record, 'status', QUEUED, 'bytes', size, unpack(common))
  redis.call('EXPIRE', record, ttl)
  redis.call('SET', image_key, image, 'EX', ttl)
  redis.call('ZADD', KEYS[1], created_at, id)
end
redis.call('INCRBY', KEYS[2], total)
if max_per_caller > 0 then
  redis.call('INCRBY', KEYS[3], n)
  redis.call('EXPIRE', KEYS[3], ttl)
  redis.call('SADD', KEYS[4], KEYS[3])
end
return {1, dropped}
"""

DISCARD = lua.PRELUDE + lua.LEAVE_QUEUED + """
-- KEYS: record, image, queued-bytes, inflight index; ARGV: job id.
-- Undoes the create of a job that is still queued (its message never sent, or sent
-- and to be dropped unrun): no trace of it stays, nor in any count.
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local f = redis.call('HMGET', KEYS[1], 'status', 'bytes', 'quota')
if f[1] ~= QUEUED then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])  -- frees first
leave_queued(f[3])
if tonumber(redis.call('DECRBY', KEYS[3], tonumber(f[2] or '0'))) < 0 then
  redis.call('SET', KEYS[3], 0)
end
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

START = (lua.PRELUDE + lua.LEAVE_QUEUED + lua.JOB_JSON + lua.ENQUEUE_WEBHOOK
         + lua.ENQUEUE_BATCH_WEBHOOK + lua.BATCH_ITEM_TAKEN + """
-- KEYS: record, image, outbox, delivery; ARGV: worker, now, ttl, delivery id, job id.
-- Returns {START_TERMINAL} for an ended job, {''} for an unknown one, {START_EXPIRED}
-- for a queued job past its deadline (left as it is: the caller ends it). A queued or
-- started job is (re)marked started, and its status before, crash count, image
-- (false once gone), lane, URL (a batch's URL item: fetched by the worker; '' for
-- others) and owner come back: one round trip. A job's first start sends its
-- `started` webhook if it asked for one.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'string' then return {START_TERMINAL} end
if kind ~= 'hash' then return {''} end
local f = redis.call('HMGET', KEYS[1], 'status', 'deadline_at', 'quota', 'webhook',
                     'webhook_events', 'created_at', 'top_k', 'crashes', 'lane', 'url',
                     'owner')
local status = f[1]
if status == QUEUED then
  local deadline = tonumber(f[2] or '0')
  if deadline > 0 and tonumber(ARGV[2]) > deadline then return {START_EXPIRED} end
  redis.call('HDEL', KEYS[1], 'status', 'deadline_at', 'quota')  -- frees first
  leave_queued(f[3])
  enqueue_webhook(KEYS[3], KEYS[4], ARGV[4], ARGV[5], f[4], f[5], ON_STARTED,
                  job_json(STARTED, f[6], f[7]), ARGV[2], ARGV[3])
  batch_item_taken(ARGV[5], KEYS[3], KEYS[4], ARGV[4], ARGV[2], ARGV[3])
elseif status == STARTED then
  redis.call('HDEL', KEYS[1], 'status')  -- frees first
else
  return {''}
end
redis.call('HSET', KEYS[1], 'status', STARTED, 'worker', ARGV[1], 'started_at', ARGV[2])
return {status, f[8] or '0', redis.call('GET', KEYS[2]), f[9] or 'batch', f[10] or '',
        f[11] or ''}
""")

FINISH = (lua.PRELUDE + lua.LEAVE_QUEUED + lua.JOB_JSON + lua.ENQUEUE_WEBHOOK
          + lua.ENQUEUE_BATCH_WEBHOOK + lua.BATCH_ITEM_TAKEN + lua.BATCH_ITEM_ENDED + """
-- KEYS: record, image, inflight index, queued-bytes, outbox, delivery, events channel,
--   ended jobs
-- ARGV: job id, status, field ('result' or 'error'), its JSON, now, ttl, delivery id,
--   error code ('' for a result)
-- Returns 1 if this call ended the job, 0 if it had ended already (or is unknown).
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local f = redis.call('HMGET', KEYS[1], 'status', 'created_at', 'top_k', 'owner', 'bytes',
                     'quota', 'webhook', 'webhook_events', 'worker')
if f[1] ~= QUEUED and f[1] ~= STARTED then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])  -- frees first: the live record and the image
if f[1] == QUEUED then
  leave_queued(f[6])
  batch_item_taken(ARGV[1], KEYS[5], KEYS[6], ARGV[7], ARGV[5], ARGV[6])
end
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(redis.call('DECRBY', KEYS[4], tonumber(f[5] or '0'))) < 0 then
  redis.call('SET', KEYS[4], 0)
end
local outcome = ',"' .. ARGV[3] .. '":' .. ARGV[4]
-- What an ended job keeps: what a client reads, whose it is, when it ended and which
-- worker ran it (for whoever looks into it).
local kept = outcome .. ',"finished_at":' .. ARGV[5]
if f[4] and f[4] ~= '' then kept = kept .. ',"owner":' .. cjson.encode(f[4]) end
if f[9] then kept = kept .. ',"worker":' .. cjson.encode(f[9]) end
local ended = job_json(ARGV[2], f[2], f[3], kept)
redis.call('SET', KEYS[1], ended, 'EX', ARGV[6])
redis.call('RPUSH', KEYS[8], ARGV[1])
enqueue_webhook(KEYS[5], KEYS[6], ARGV[7], ARGV[1], f[7], f[8], ON_COMPLETED,
                job_json(ARGV[2], f[2], f[3], outcome), ARGV[5], ARGV[6])
redis.call('PUBLISH', KEYS[7], ARGV[2])
batch_item_ended(ARGV[1], ARGV[2], ARGV[8], ARGV[5], KEYS[5], KEYS[6], ARGV[7], ARGV[6])
return 1
""")


CREATE_ENDED = lua.PRELUDE + lua.JOB_JSON + lua.ENQUEUE_WEBHOOK + """
-- KEYS: record, ended jobs, outbox, delivery, events channel
-- ARGV: job id, its final JSON, now, ttl, delivery id, webhook URL ('' for none),
--   webhook events, created_at, top_k, the result's JSON
-- A job whose result is known as it is created (a result cache hit): it is written
-- ended, never queued, and its `completed` webhook goes out as any job's does.
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[1])
enqueue_webhook(KEYS[3], KEYS[4], ARGV[5], ARGV[1], ARGV[6], ARGV[7], ON_COMPLETED,
                job_json(SUCCEEDED, ARGV[8], ARGV[9], ',"result":' .. ARGV[10]), ARGV[3],
                ARGV[4])
redis.call('PUBLISH', KEYS[5], SUCCEEDED)
return 1
"""


# How long the primary's count of connected replicas is taken as it was last read.
REPLICAS_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Started:
    """What `JobStore.start` found: whether to run the job and, when it is to run,
    its image (None once expired, or for a URL item), the crashes it has been charged
    with, whether it came by the interactive lane, a batch URL item's URL, and whose
    job it is (the result cache's scope)."""

    decision: Start
    image: bytes | None = None
    crashes: int = 0
    interactive: bool = False
    url: str = ""
    owner: str = ""


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must hold a create or an end before it counts (Redis `WAIT`,
    on the connection that wrote it), and how long to wait for them: at most as many
    as the primary has connected (a primary left alone by a failover, its replicas
    gone, still takes work; it says so in `connected_slaves`)."""

    replicas: int = 0
    timeout_seconds: float = 1.0

    @classmethod
    def of(cls, settings: CommonSettings) -> ReplicaAcks:
        """`REDIS_REPLICA_ACKS` where the primary has replicas (`REDIS_SENTINELS`)."""
        if not settings.redis_sentinels:
            return cls()
        return cls(settings.redis_replica_acks, settings.redis_replica_ack_seconds)


@dataclass(frozen=True)
class NewJob:
    """One job of a create: its id and image (the options are the request's)."""

    id: str
    image: bytes


class JobStore:
    def __init__(self, client: redis.Redis, celery: Celery, *, queue: str, ttl_seconds: int,
                 acks: ReplicaAcks = ReplicaAcks(), batch_inflight: int = 16):
        self.client = client
        self.acks = acks
        self._replicas_seen: tuple[float, int] = (float("-inf"), 0)  # (when, how many)
        self.celery = celery
        self.queue = queue
        self.ttl = ttl_seconds
        self.keys = QueueKeys(queue)
        self.records = JobRecords(client, ttl_seconds, queue)
        self.queued_bytes_key = self.keys.queued_bytes
        self.outbox_key = self.keys.outbox
        self.outbox = WebhookOutbox(client, queue)
        self.budget = ResultBudget(client, queue)
        self._create = client.register_script(CREATE)
        self._discard_script = client.register_script(DISCARD)
        self._start = client.register_script(START)
        self._finish = client.register_script(FINISH)
        self._create_ended = client.register_script(CREATE_ENDED)
        self.batches = BatchStore(client, queue=queue, ttl_seconds=ttl_seconds,
                                  send=self._send, inflight=batch_inflight)

    # --- create + enqueue (web tier) ------------------------------------------
    def create(self, job_id: str, *, image: bytes, **options) -> JobRecord:
        """One job: `create_many` with one image."""
        return self.create_many([NewJob(job_id, image)], **options)[0]

    def create_many(self, jobs: list[NewJob], *, top_k: int, form: str, owner: str = "",
                    webhook: str = "", max_queue_length: int = 0, max_queue_bytes: int = 0,
                    lane: Lane = Lane.BATCH, deadline_seconds: float = 0.0,
                    quota_key: str = "", max_per_key: int = 0,
                    webhook_events: tuple[str, ...] = ("completed",)) -> list[JobRecord]:
        """Record the jobs and their images, then send their messages to `lane`; all
        of them or none. Refused with `QueueFull` when `max_queue_length` jobs would
        wait (both lanes), when their images would pass `max_queue_bytes`, or when
        Redis's memory is full of what cannot be dropped; with `QuotaExceeded` when
        `quota_key` (an API key or an address) would hold more than `max_per_key`
        queued jobs. A job not started within `deadline_seconds` (0: no deadline)
        ends `expired`. If a message cannot be sent, every job of the call is undone
        (a message already sent finds no job and is dropped unrun) and the error
        raised."""
        created_at = time.time()
        deadline_at = created_at + deadline_seconds if deadline_seconds > 0 else 0.0
        counter = self.keys.quota_counter(quota_key) if max_per_key > 0 else ""
        common = {"created_at": repr(created_at), "top_k": top_k, "form": form,
                  "lane": Lane(lane).value}
        # Empty and default fields are left out: a smaller hash.
        optional = {"owner": owner, "webhook": webhook, "quota": counter,
                    "deadline_at": repr(deadline_at) if deadline_at else "",
                    "webhook_events": ",".join(webhook_events)
                    if webhook and tuple(webhook_events) != ("completed",) else ""}
        common.update({k: v for k, v in optional.items() if v})
        pairs = [item for pair in common.items() for item in pair]
        per_job = [item for job in jobs for item in (job.id, len(job.image), job.image)]
        keys = [self.keys.inflight, self.keys.queued_bytes, counter or self.keys.queued_bytes,
                self.keys.quota_keys, self.keys.finished, self.keys.results_dropped,
                self.keys.dropped_before, *self.keys.lane_lists,
                *(key for job in jobs for key in (self.keys.record(job.id),
                                                   self.keys.image(job.id))),
                self.keys.cache_entries]
        try:
            admitted, detail = self._replicated(self._create, keys, [
                len(jobs), max_queue_length, max_queue_bytes, max_per_key, self.ttl,
                repr(created_at), HEADROOM, SLACK, ROOM_CAP, len(common), *pairs, *per_job])
        except (redis.TimeoutError, NotReplicated):
            # The script may have run (or run and not reached a replica): undo it (best
            # effort; the sweeper sends a job this leaves, so it is never lost and
            # holds nothing for long).
            self._discard_all(jobs)
            raise
        if not admitted:
            raise self._refusal(detail.decode(), max_per_key)
        records = [JobRecord(id=job.id, created_at=created_at, top_k=top_k, form=form,
                             status=JobStatus.QUEUED, owner=owner, webhook=webhook,
                             lane=Lane(lane).value, deadline_at=deadline_at,
                             webhook_events=tuple(webhook_events)) for job in jobs]
        try:
            for record in records:
                self._send(record)
        except Exception:
            self._discard_all(jobs)
            raise
        return records

    def create_succeeded(self, job_id: str, *, result: dict, top_k: int, owner: str = "",
                         webhook: str = "", webhook_events: tuple[str, ...] = ("completed",)
                         ) -> JobRecord:
        """A job created already `succeeded` with `result` (the result cache had it):
        never queued, counted nowhere, its webhook sent as any job's."""
        created_at = time.time()
        outcome = json.dumps(result, separators=(",", ":"))
        ended = {"status": JobStatus.SUCCEEDED.value, "created_at": created_at,
                 "top_k": top_k, "result": result, "finished_at": created_at}
        if owner:
            ended["owner"] = owner
        delivery_id = str(uuid.uuid4())
        self._replicated(self._create_ended,
                         [self.keys.record(job_id), self.keys.finished, self.keys.outbox,
                          self.keys.delivery(delivery_id), self.keys.events(job_id)],
                         [job_id, json.dumps(ended, separators=(",", ":")), repr(created_at),
                          self.ttl, delivery_id, webhook, ",".join(webhook_events),
                          repr(created_at), top_k, outcome])
        return JobRecord(id=job_id, created_at=created_at, top_k=top_k,
                         status=JobStatus.SUCCEEDED, owner=owner, webhook=webhook,
                         result=result, finished_at=created_at)

    def _replicated(self, script, keys: list, args: list):
        """`script`'s reply once `acks.replicas` replicas hold what it wrote: the script
        and WAIT go down one connection in one round trip (WAIT counts the writes of
        its own connection). `NotReplicated` when they do not confirm in time."""
        needed = min(self.acks.replicas, self._connected_replicas())
        if not needed:
            return script(keys=keys, args=args)
        reply, acked = None, 0
        for attempt in range(2):
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                    pipe.execute_command("WAIT", needed,
                                         int(self.acks.timeout_seconds * 1000))
                    reply, acked = pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                # A new primary (after a failover, or a restart) knows no script yet.
                script.sha = self.client.script_load(script.script)
        if acked < needed:
            raise NotReplicated()
        return reply

    def _connected_replicas(self) -> int:
        """The primary's connected replicas, asked at most once a second."""
        if not self.acks.replicas:
            return 0
        when, count = self._replicas_seen
        if time.monotonic() - when > REPLICAS_RECHECK_SECONDS:
            count = int(self.client.info("replication").get("connected_slaves", 0))
            self._replicas_seen = (time.monotonic(), count)
        return count

    @staticmethod
    def _refusal(why: str, max_per_key: int) -> ResqError:
        if why == "quota":
            return QuotaExceeded(f"this key may hold {max_per_key} queued jobs, and these "
                                 "would pass that; retry once some have started")
        if why == "bytes":
            return QueueFull("the images waiting in the queue are over its size limit; "
                             "retry later")
        if why == "memory":
            return QueueFull("the job store is full of waiting and running jobs; "
                             "retry later")
        return QueueFull()

    def _send(self, record: JobRecord) -> None:
        # ignore_result: the job's end is read from its record, never from Celery's
        # result backend, so the web tier does not subscribe to a result channel per
        # job (a SUBSCRIBE and an UNSUBSCRIBE each, seen in Redis's MONITOR).
        self.celery.send_task(CLASSIFY_TASK, task_id=record.id,
                              queue=lane_list(self.queue, record.lane),
                              kwargs={"top_k": record.top_k, "created_at": record.created_at},
                              ignore_result=True)

    def _discard_all(self, jobs: list[NewJob]) -> None:
        for job in jobs:
            self.discard(job.id)

    def discard(self, job_id: str) -> bool:
        """Undo the create of a still-queued job (best effort: Redis may be the reason
        its create failed; a job left behind is sent by the sweeper)."""
        try:
            return bool(self._discard_script(
                keys=[self.keys.record(job_id), self.keys.image(job_id),
                      self.keys.queued_bytes, self.keys.inflight], args=[job_id]))
        except redis.RedisError:
            return False

    def resend(self, record: JobRecord) -> None:
        """Send a lost job's message again (the lost-job sweeper)."""
        self._send(record)

    # --- read ---------------------------------------------------------------------
    def record(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    # --- transitions ----------------------------------------------------------------
    def start(self, job_id: str, worker: str) -> Started:
        delivery_id = str(uuid.uuid4())
        found = self._start(keys=[self.keys.record(job_id), self.keys.image(job_id),
                                  self.keys.outbox, self.keys.delivery(delivery_id)],
                            args=[worker, repr(time.time()), self.ttl, delivery_id, job_id])
        before = found[0].decode() if isinstance(found[0], bytes) else found[0]
        if not before:
            return Started(Start.UNKNOWN)
        if before in (Start.EXPIRED.value, Start.TERMINAL.value):
            return Started(Start(before))
        return Started(Start.RUN, image=found[2] or None, crashes=int(found[1]),
                       interactive=found[3] == Lane.INTERACTIVE.value.encode(),
                       url=found[4].decode() if len(found) > 4 and found[4] else "",
                       owner=found[5].decode() if len(found) > 5 and found[5] else "")

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
        return bool(self._replicated(
            self._finish,
            [self.keys.record(job_id), self.keys.image(job_id), self.keys.inflight,
             self.keys.queued_bytes, self.keys.outbox, self.keys.delivery(delivery_id),
             self.keys.events(job_id), self.keys.finished],
            [job_id, status.value, field, json.dumps(payload, separators=(",", ":")),
             repr(time.time()), self.ttl, delivery_id, "" if error is None else error.code]))

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
        return int(self.client.get(self.keys.queued_bytes) or 0)


def job_view(record: JobRecord) -> Job:
    """The job as clients see it: what `GET /jobs/<id>` answers and a webhook sends."""
    result = error = None
    if record.status is JobStatus.SUCCEEDED:
        result = JobResult.model_validate(record.result)
    elif record.status is JobStatus.FAILED:
        error = ErrorDetail(**normalised_error(record.error))
    return Job(id=record.id, status=record.status, created_at=record.created_at,
               top_k=record.top_k, result=result, error=error)
