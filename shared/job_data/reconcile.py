"""The counts the job data keeps (the bytes of waiting images, `QUEUE_MAX_BYTES`; each
caller's queued jobs, `QUEUE_MAX_PER_KEY`) are updated by the scripts that change
jobs, in the same step. `Reconciler` recomputes them from the records themselves and
heals any drift: a job whose record expired under it, a counter that outlived its
jobs, a bug. It runs on its own in the worker's housekeeping (`worker.redelivery`),
and counts what it corrected (`resq_counter_corrections_total`).

One script, so nothing changes while it counts: it reads every job of the index of
open jobs (bounded by the queue's limits) and the batches with unreleased uploads,
drops the index entries of jobs that have ended or vanished, and sets each count to
what the records say.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.job_data import lua
from shared.job_data.keys import QueueKeys

RECONCILE = lua.PRELUDE + """
-- KEYS: inflight index, queued-bytes, quota counters in use, corrections, batches with
--   items to release, unreleased count
-- Returns {index entries dropped, queued-bytes corrected (0/1), counters corrected,
--   unreleased count corrected (0/1)}.
-- Sets a count to what the records say; 1 if it was off.
local function set_if_off(key, value)
  if tonumber(redis.call('GET', key) or '0') == value then return 0 end
  redis.call('SET', key, value)
  return 1
end
local bytes, queued_by = 0, {}
-- A batch whose record expired (no worker released its items for a whole TTL) leaves
-- the index of batches to release; what the others hold is counted.
local unreleased = 0
for _, batch in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local f = redis.call('HMGET', BATCH_PREFIX .. batch, 'held_bytes', 'total', 'released',
                       'status')
  if not f[4] then
    redis.call('ZREM', KEYS[5], batch)
  elseif f[4] == BATCH_RUNNING then
    bytes = bytes + tonumber(f[1] or '0')
    unreleased = unreleased + tonumber(f[2]) - tonumber(f[3])
  end
end
local unreleased_fixed = set_if_off(KEYS[6], unreleased)
local stale = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = RECORD_PREFIX .. id
  if redis.call('TYPE', record).ok ~= 'hash' then
    redis.call('ZREM', KEYS[1], id)
    stale = stale + 1
  else
    local f = redis.call('HMGET', record, 'status', 'bytes', 'quota')
    bytes = bytes + tonumber(f[2] or '0')
    if f[1] == QUEUED and f[3] and f[3] ~= '' then
      queued_by[f[3]] = (queued_by[f[3]] or 0) + 1
    end
  end
end
local bytes_fixed = set_if_off(KEYS[2], bytes)
for _, counter in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not queued_by[counter] then queued_by[counter] = 0 end
end
local counters_fixed = 0
for counter, count in pairs(queued_by) do
  if tonumber(redis.call('GET', counter) or '0') ~= count then
    counters_fixed = counters_fixed + 1
  end
  if count == 0 then
    redis.call('DEL', counter)
    redis.call('SREM', KEYS[3], counter)
  else
    redis.call('SET', counter, count, 'KEEPTTL')
    redis.call('SADD', KEYS[3], counter)
  end
end
if stale > 0 then redis.call('HINCRBY', KEYS[4], 'open_jobs', stale) end
if bytes_fixed > 0 then redis.call('HINCRBY', KEYS[4], 'queued_bytes', 1) end
if counters_fixed > 0 then redis.call('HINCRBY', KEYS[4], 'queued_by_key', counters_fixed) end
if unreleased_fixed > 0 then redis.call('HINCRBY', KEYS[4], 'batch_unreleased', 1) end
return {stale, bytes_fixed, counters_fixed, unreleased_fixed}
"""


@dataclass(frozen=True)
class Corrections:
    """What one reconcile corrected."""

    open_jobs: int  # index entries of jobs that had ended or vanished
    queued_bytes: int  # 1 if the bytes count was off
    queued_by_key: int  # callers' counters that were off
    batch_unreleased: int = 0  # 1 if the count of unreleased batch items was off

    def __bool__(self) -> bool:
        return bool(self.open_jobs or self.queued_bytes or self.queued_by_key
                    or self.batch_unreleased)


class Reconciler:
    def __init__(self, client: redis.Redis, queue: str):
        self.client = client
        self.keys = QueueKeys(queue)
        self._reconcile = client.register_script(RECONCILE)

    def reconcile(self) -> Corrections:
        return Corrections(*(int(n) for n in self._reconcile(
            keys=[self.keys.inflight, self.keys.queued_bytes, self.keys.quota_keys,
                  self.keys.corrections, self.keys.batches, self.keys.batch_unreleased])))

    def corrections_total(self) -> dict[str, int]:
        """Corrections so far, by counter (`open_jobs`, `queued_bytes`, `queued_by_key`,
        `batch_unreleased`)."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.corrections).items()}
