"""Batches: many images in one submission, each item a job of its own, released into
the batch lane a few at a time.

    create ─> running ──(every item ended)──> succeeded
                 └─────────── cancel ───────> cancelled

- **An item is a job** whose id is `<batch id>.<index>`: `GET /jobs/<id>` reads it,
  and its end is counted in its batch by the same FINISH script that ends any job
  (`shared.job_data.lua.BATCH_ITEM_ENDED`), atomically.
- **Items are released, not queued, at create.** The create script stores the batch,
  its items (their inputs, and the images of uploaded items) and nothing in the
  lane. RELEASE writes the next items' job records, indexes them as open jobs and
  returns their ids, which the caller sends as Celery messages: at most
  `BATCH_INFLIGHT` items of one batch wait (released, not yet started or ended) at a
  time, so another key's jobs wait behind at most that many of each running batch.
  The web tier releases the first items; a worker releases the next each time it
  starts one;
  the sweeper releases for every batch with items left (after a crash, or a
  message lost between RELEASE and its send, which the sweeper resends like any
  open job).
- **URL items are fetched by the worker** when their turn comes; their bytes never
  sit in Redis. Uploaded items' images are stored at create and counted in the
  queue's bytes (`QUEUE_MAX_BYTES`), like any job's.
- **Autoscaling sees the whole batch**: the queue's count of unreleased items is
  read by `/scaling` beside the open jobs.
- **Cancel** ends the unreleased items at once (their images freed; no record is
  written for them: an unreleased item of a cancelled batch reads as cancelled), and
  the caller cancels each released item still open with the job store.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import redis

from shared.api_models import (
    Batch,
    BatchCounts,
    BatchResultLine,
    BatchStatus,
    ErrorDetail,
    Job,
    JobResult,
    JobStatus,
)
from shared.errors import JobCancelled, QueueFull, ResultDropped, normalised_error
from shared.job_data import lua
from shared.job_data.budget import HEADROOM, ROOM_CAP, SLACK
from shared.job_data.keys import QueueKeys
from shared.job_data.records import JobRecord, new_job_id
from shared.lanes import Lane

CREATE_BATCH = lua.PRELUDE + lua.MAKE_ROOM + """
-- KEYS: batch, items, batches with items to release, unreleased count, queued-bytes,
--   ended jobs, results-dropped, dropped-before, then each uploaded item's image key,
--   then the cache entries (last)
-- ARGV: batch id, created_at, ttl, max queued bytes (0: none), headroom, slack, cap,
--   item count n, count c of batch fields, c field/value pairs, n item JSONs, then
--   each uploaded item's image (in the order of their keys)
-- Returns {1, results dropped} or {0, why}: 'bytes', 'memory'.
local created_at, ttl, max_bytes = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local n, c = tonumber(ARGV[8]), tonumber(ARGV[9])
local first_item = 10 + 2 * c
local first_image = first_item + n
local total = 0
for i = first_image, #ARGV do total = total + string.len(ARGV[i]) end
if max_bytes > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') + total > max_bytes then
  return {0, 'bytes'}
end
local dropped, fits = make_room(KEYS[6], KEYS[7], KEYS[8], total + 200 * n,
                                tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
                                KEYS[#KEYS])
if not fits then return {0, 'memory'} end
redis.call('HSET', KEYS[1], 'status', BATCH_RUNNING, 'total', n, 'released', 0, 'ended', 0,
           'created_at', created_at, 'held_bytes', total, unpack(ARGV, 10, 9 + 2 * c))
for i = first_item, first_image - 1, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, first_image - 1)))
end
for i = first_image, #ARGV do
  redis.call('SET', KEYS[9 + i - first_image], ARGV[i], 'EX', ttl)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('INCRBY', KEYS[5], total)
redis.call('ZADD', KEYS[3], created_at, ARGV[1])
redis.call('INCRBY', KEYS[4], n)
return {1, dropped}
"""

# An item's job record as its release writes it: queued, in the batch lane, with the
# batch's options (`f`: the batch's fields as RELEASE and ITEM_RECORD read them).
WRITE_ITEM = """
local function write_item(item, f, ttl, lane)
  local record = RECORD_PREFIX .. item.id
  redis.call('HSET', record, 'status', QUEUED, 'created_at', f[9], 'top_k', f[5],
             'form', f[6], 'lane', lane, 'bytes', item.bytes or 0)
  if f[7] and f[7] ~= '' then redis.call('HSET', record, 'owner', f[7]) end
  if f[8] and f[8] ~= '' then redis.call('HSET', record, 'deadline_at', f[8]) end
  if item.url then redis.call('HSET', record, 'url', item.url) end
  redis.call('EXPIRE', record, ttl)
end
local BATCH_FIELDS = {'status', 'total', 'released', 'taken', 'top_k', 'form', 'owner',
                      'deadline_at', 'created_at'}
"""

RELEASE = lua.PRELUDE + WRITE_ITEM + """
-- KEYS: batch, items, ended list, batches with items to release, unreleased count,
--   inflight index, batch stats
-- ARGV: batch id, most items waiting (released, not yet taken by a worker), now, ttl,
--   the batch lane's name
-- Writes the next items' job records (queued, in the batch lane), indexes them as open
-- jobs and returns {id, top_k, created_at} of each, for the caller to send. An item
-- that already has a record is passed over.
local f = redis.call('HMGET', KEYS[1], unpack(BATCH_FIELDS))
if f[1] ~= BATCH_RUNNING then return {} end
local total, released, taken = tonumber(f[2]), tonumber(f[3]), tonumber(f[4] or '0')
local room = math.min(tonumber(ARGV[2]) - (released - taken), total - released)
if room <= 0 then return {} end
local out = {}
local items = redis.call('LRANGE', KEYS[2], released, released + room - 1)
local held = 0
for _, raw in ipairs(items) do
  local item = cjson.decode(raw)
  if redis.call('EXISTS', RECORD_PREFIX .. item.id) == 0 then
    write_item(item, f, ARGV[4], ARGV[5])
    redis.call('ZADD', KEYS[6], ARGV[3], item.id)
    table.insert(out, {item.id, f[5], f[9]})
  end
  held = held + (item.bytes or 0)
end
local moved = #items
redis.call('HSET', KEYS[1], 'released', released + moved)
if #out > 0 then redis.call('HINCRBY', KEYS[7], 'released', #out) end
if held > 0 then redis.call('HINCRBY', KEYS[1], 'held_bytes', -held) end
if tonumber(redis.call('DECRBY', KEYS[5], moved)) < 0 then redis.call('SET', KEYS[5], 0) end
if released + moved >= total then redis.call('ZREM', KEYS[4], ARGV[1]) end
for _, key in ipairs({KEYS[1], KEYS[2], KEYS[3]}) do redis.call('EXPIRE', key, ARGV[4]) end
return out
"""

ITEM_RECORD = lua.PRELUDE + WRITE_ITEM + """
-- KEYS: batch, items; ARGV: index, ttl, the batch lane's name
-- Writes the job record of one item of a running batch that is not released yet (to be
-- cancelled on its own); RELEASE passes over it later. Returns 1 if it wrote it.
local f = redis.call('HMGET', KEYS[1], unpack(BATCH_FIELDS))
if f[1] ~= BATCH_RUNNING or tonumber(ARGV[1]) < tonumber(f[3]) then return 0 end
local raw = redis.call('LINDEX', KEYS[2], ARGV[1])
if not raw then return 0 end
local item = cjson.decode(raw)
if redis.call('EXISTS', RECORD_PREFIX .. item.id) == 1 then return 0 end
write_item(item, f, ARGV[2], ARGV[3])
return 1
"""

CANCEL_BATCH = lua.PRELUDE + lua.ENQUEUE_BATCH_WEBHOOK + """
-- KEYS: batch, items, ended list, batches with items to release, unreleased count,
--   queued-bytes, outbox, delivery, batch stats
-- ARGV: batch id, now, image key prefix, the cancelled error's code, delivery id, ttl
-- A running batch becomes cancelled: its unreleased items end at once (their images
-- freed first), counted failed/cancelled. Returns how many items were released (the
-- caller cancels those still open), or -1 when the batch was not running.
local f = redis.call('HMGET', KEYS[1], 'status', 'total', 'released', 'ended',
                     'held_bytes')
if f[1] ~= BATCH_RUNNING then return -1 end
local total, released = tonumber(f[2]), tonumber(f[3])
local left = total - released
if left > 0 then
  local items = redis.call('LRANGE', KEYS[2], released, total - 1)
  for _, raw in ipairs(items) do
    local item = cjson.decode(raw)
    if (item.bytes or 0) > 0 then redis.call('DEL', ARGV[3] .. item.id) end
  end
  if tonumber(redis.call('DECRBY', KEYS[6], tonumber(f[5] or '0'))) < 0 then
    redis.call('SET', KEYS[6], 0)
  end
  for i = released, total - 1, 1000 do
    local chunk = {}
    for j = i, math.min(i + 999, total - 1) do table.insert(chunk, j) end
    redis.call('RPUSH', KEYS[3], unpack(chunk))
  end
  redis.call('HINCRBY', KEYS[1], 'n:' .. FAILED, left)
  redis.call('HINCRBY', KEYS[1], 'e:' .. ARGV[4], left)
  redis.call('HINCRBY', KEYS[1], 'ended', left)
  if tonumber(redis.call('DECRBY', KEYS[5], left)) < 0 then redis.call('SET', KEYS[5], 0) end
end
redis.call('HSET', KEYS[1], 'status', BATCH_CANCELLED, 'released', total, 'held_bytes', 0,
           'cancelled_from', released)
if tonumber(redis.call('HGET', KEYS[1], 'ended')) >= total then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
  redis.call('HINCRBY', KEYS[9], BATCH_CANCELLED, 1)
  enqueue_batch_webhook(KEYS[1], ARGV[1], ON_BATCH_COMPLETED, ON_COMPLETED, KEYS[7], KEYS[8],
                        ARGV[5], ARGV[2], ARGV[6])
end
redis.call('ZREM', KEYS[4], ARGV[1])
return released
"""


def item_id(batch_id: str, index: int) -> str:
    return f"{batch_id}.{index}"


def split_item_id(job_id: str) -> tuple[str, int] | None:
    """(batch id, index) of a batch item's job id; None for any other id."""
    batch_id, dot, index = job_id.rpartition(".")
    if not dot or not (index.isascii() and index.isdigit()):
        return None
    return batch_id, int(index)


@dataclass(frozen=True)
class NewItem:
    """One item of a batch at its create: what it came as (a URL, or a file's name),
    and an uploaded item's image."""

    input: str
    url: str | None = None
    image: bytes | None = None


@dataclass(frozen=True)
class BatchRecord:
    """A batch as Redis holds it."""

    id: str
    status: BatchStatus
    total: int
    released: int
    ended: int
    created_at: float
    top_k: int
    owner: str
    finished_at: float = 0.0
    interval: float | None = None  # average seconds between item ends
    cancelled_from: int | None = None  # items from this index on ended unreleased
    by_status: dict[str, int] | None = None
    by_error: dict[str, int] | None = None

    @classmethod
    def parse(cls, batch_id: str, raw: dict[bytes, bytes]) -> BatchRecord | None:
        if not raw or b"status" not in raw:
            return None
        text = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            id=batch_id, status=BatchStatus(text["status"]), total=int(text["total"]),
            released=int(text["released"]), ended=int(text["ended"]),
            created_at=float(text["created_at"]), top_k=int(text["top_k"]),
            owner=text.get("owner", ""), finished_at=float(text.get("finished_at", 0)),
            interval=float(text["interval"]) if "interval" in text else None,
            cancelled_from=int(text["cancelled_from"]) if "cancelled_from" in text else None,
            by_status={k[2:]: int(v) for k, v in text.items() if k.startswith("n:")},
            by_error={k[2:]: int(v) for k, v in text.items() if k.startswith("e:")})

    def view(self, now: float | None = None) -> Batch:
        remaining = self.total - self.ended
        eta = None
        if self.status is BatchStatus.RUNNING and self.interval is not None:
            eta = round(remaining * self.interval, 1)
        elif self.status.is_terminal():
            eta = 0.0
        counts = {status.value: (self.by_status or {}).get(status.value, 0)
                  for status in JobStatus}
        counts[JobStatus.QUEUED.value] = remaining  # less those started: `BatchStore.batch`
        return Batch(id=self.id, status=self.status, total=self.total,
                     counts=BatchCounts(status=counts, error=dict(self.by_error or {})),
                     created_at=self.created_at, finished_at=self.finished_at or None,
                     eta_seconds=eta, top_k=self.top_k)


class BatchStore:
    """Creates, releases, reads and cancels batches on one queue; sends the released
    items' messages through `send` (the job store's)."""

    def __init__(self, client: redis.Redis, *, queue: str, ttl_seconds: int, send,
                 inflight: int):
        self.client = client
        self.keys = QueueKeys(queue)
        self.ttl = ttl_seconds
        self.send = send
        self.inflight = inflight
        self._create = client.register_script(CREATE_BATCH)
        self._release = client.register_script(RELEASE)
        self._cancel = client.register_script(CANCEL_BATCH)
        self._item_record = client.register_script(ITEM_RECORD)

    def create(self, items: list[NewItem], *, top_k: int, form: str, owner: str = "",
               deadline_seconds: float = 0.0, max_queue_bytes: int = 0, webhook: str = "",
               webhook_events: tuple[str, ...] = ("completed",),
               batch_id: str | None = None) -> str:
        """Store a batch of `items` and release its first ones; its id. `QueueFull`
        when its images would pass `max_queue_bytes`, or Redis's memory is full of
        what cannot be dropped."""
        batch_id = batch_id or new_job_id()  # a UUIDv7, as job ids: items' ids read its time
        created_at = time.time()
        fields = {"top_k": top_k, "form": form, "owner": owner, "webhook": webhook,
                  "queue": self.keys.queue,
                  "webhook_events": ",".join(webhook_events) if webhook else "",
                  "deadline_at": repr(created_at + deadline_seconds)
                  if deadline_seconds > 0 else ""}
        pairs = [x for k, v in fields.items() if v != "" for x in (k, v)]
        entries, image_keys, images = [], [], []
        for index, item in enumerate(items):
            job_id = item_id(batch_id, index)
            entry = {"id": job_id, "input": item.input}
            if item.url is not None:
                entry["url"] = item.url
            if item.image is not None:
                entry["bytes"] = len(item.image)
                image_keys.append(self.keys.image(job_id))
                images.append(item.image)
            entries.append(json.dumps(entry, separators=(",", ":")))
        keys = [self.keys.batch(batch_id), self.keys.batch_items(batch_id), self.keys.batches,
                self.keys.batch_unreleased, self.keys.queued_bytes, self.keys.finished,
                self.keys.results_dropped, self.keys.dropped_before, *image_keys,
                self.keys.cache_entries]
        admitted, why = self._create(keys=keys, args=[
            batch_id, repr(created_at), self.ttl, max_queue_bytes, HEADROOM, SLACK, ROOM_CAP,
            len(items), len(pairs) // 2, *pairs, *entries, *images])
        if not admitted:
            raise QueueFull("the images waiting in the queue are over its size limit; retry "
                            "later" if why == b"bytes" else
                            "the job store is full of waiting and running jobs; retry later")
        self.release(batch_id)
        return batch_id

    def release(self, batch_id: str) -> int:
        """Release the batch's next items (up to `inflight` waiting) and send their
        messages; how many were sent."""
        out = self._release(keys=[self.keys.batch(batch_id), self.keys.batch_items(batch_id),
                                  self.keys.batch_ended(batch_id), self.keys.batches,
                                  self.keys.batch_unreleased, self.keys.inflight,
                                  self.keys.batch_stats],
                            args=[batch_id, self.inflight, repr(time.time()), self.ttl,
                                  Lane.BATCH.value])
        for raw_id, top_k, created_at in out:
            self.send(JobRecord(id=raw_id.decode(), created_at=float(created_at),
                                top_k=int(top_k), status=JobStatus.QUEUED,
                                lane=Lane.BATCH.value))
        return len(out)

    def release_all(self) -> int:
        """Release for every batch with items left (the sweeper's pass)."""
        return sum(self.release(raw.decode())
                   for raw in self.client.zrange(self.keys.batches, 0, -1))

    def record(self, batch_id: str) -> BatchRecord | None:
        return BatchRecord.parse(batch_id, self.client.hgetall(self.keys.batch(batch_id)))

    def running_items(self, record: BatchRecord) -> int:
        """Released items that are started (read from their records)."""
        ended = set(self._ended_indexes(record.id))
        open_ids = [item_id(record.id, i) for i in range(record.released) if i not in ended]
        statuses = self.client.pipeline(transaction=False)
        for job_id in open_ids:
            statuses.hget(self.keys.record(job_id), "status")
        replies = statuses.execute(raise_on_error=False) if open_ids else []
        return sum(1 for reply in replies if reply == JobStatus.STARTED.value.encode())

    def batch(self, batch_id: str) -> Batch | None:
        record = self.record(batch_id)
        if record is None:
            return None
        view = record.view()
        if record.status is BatchStatus.RUNNING:
            started = self.running_items(record)
            view.counts.status[JobStatus.STARTED.value] = started
            view.counts.status[JobStatus.QUEUED.value] = max(
                0, record.total - record.ended - started)
        return view

    def _ended_indexes(self, batch_id: str, start: int = 0, stop: int = -1) -> list[int]:
        return [int(raw) for raw in self.client.lrange(self.keys.batch_ended(batch_id),
                                                         start, stop)]

    def results(self, record: BatchRecord, after: int, limit: int, records
                ) -> tuple[list[BatchResultLine], int]:
        """Up to `limit` lines of items that ended, from position `after` of the order
        they ended in, and the position after the last one. `records` reads job
        records (`JobRecords.get_many`)."""
        indexes = self._ended_indexes(record.id, after, after + limit - 1)
        if not indexes:
            return [], after
        with self.client.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.lindex(self.keys.batch_items(record.id), index)
            raw_items = pipe.execute()
        items = [json.loads(raw) if raw else {"id": item_id(record.id, i), "input": ""}
                 for i, raw in zip(indexes, raw_items, strict=True)]
        found = records([item["id"] for item in items])
        lines = []
        for index, item, job in zip(indexes, items, found, strict=True):
            lines.append(self._line(record, index, item, job))
        return lines, after + len(indexes)

    @staticmethod
    def _line(record: BatchRecord, index: int, item: dict, job: JobRecord | None
              ) -> BatchResultLine:
        base = {"index": index, "id": item["id"], "input": item.get("input", "")}
        if job is None:
            cancelled = record.cancelled_from is not None and index >= record.cancelled_from
            error = JobCancelled() if cancelled else ResultDropped()
            return BatchResultLine(**base, status=JobStatus.FAILED,
                                   error=ErrorDetail(**error.to_dict()))
        result = error = None
        if job.status is JobStatus.SUCCEEDED:
            result = JobResult.model_validate(job.result)
        elif job.status is JobStatus.FAILED:
            error = ErrorDetail(**normalised_error(job.error))
        return BatchResultLine(**base, status=job.status, result=result, error=error)

    def unreleased_job(self, job_id: str) -> Job | None:
        """The job an item is before its release (queued), or after its batch was
        cancelled unreleased (failed/cancelled); None for an id that is no such item.
        Its owner is the batch's: the caller checks it."""
        parts = split_item_id(job_id)
        if parts is None:
            return None
        record = self.record(parts[0])
        if record is None or not 0 <= parts[1] < record.total:
            return None
        if record.cancelled_from is not None and parts[1] >= record.cancelled_from:
            return Job(id=job_id, status=JobStatus.FAILED, created_at=record.created_at,
                       top_k=record.top_k, error=ErrorDetail(**JobCancelled().to_dict()))
        if parts[1] >= record.released:
            return Job(id=job_id, status=JobStatus.QUEUED, created_at=record.created_at,
                       top_k=record.top_k)
        return None

    def write_unreleased(self, job_id: str) -> bool:
        """Give an unreleased item of a running batch its job record now (queued, not
        sent), so that it can be cancelled on its own like any job."""
        parts = split_item_id(job_id)
        if parts is None:
            return False
        return bool(self._item_record(
            keys=[self.keys.batch(parts[0]), self.keys.batch_items(parts[0])],
            args=[parts[1], self.ttl, Lane.BATCH.value]))

    def owner_of(self, job_id: str) -> str | None:
        parts = split_item_id(job_id)
        if parts is None:
            return None
        raw = self.client.hget(self.keys.batch(parts[0]), "owner")
        return None if raw is None else raw.decode()

    def cancel(self, batch_id: str, cancel_job) -> bool:
        """Cancel a running batch: its unreleased items end now, each released one
        still open is cancelled with `cancel_job` (the job store's). False when it was
        not running."""
        delivery_id = str(uuid.uuid4())
        released = self._cancel(
            keys=[self.keys.batch(batch_id), self.keys.batch_items(batch_id),
                  self.keys.batch_ended(batch_id), self.keys.batches,
                  self.keys.batch_unreleased, self.keys.queued_bytes, self.keys.outbox,
                  self.keys.delivery(delivery_id), self.keys.batch_stats],
            args=[batch_id, repr(time.time()), self.keys.image(""), JobCancelled.code,
                  delivery_id, self.ttl])
        if released < 0:
            return False
        ended = set(self._ended_indexes(batch_id))
        for index in range(released):
            if index not in ended:
                cancel_job(item_id(batch_id, index))
        return True
