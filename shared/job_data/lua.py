"""What the job data's Lua scripts share: the words they compare and write,
generated from the Python that owns them (the status enum, the start decisions,
the record's key prefix), and the helper functions more than one script calls.
Each script is a constant beside the class that runs it, and begins with
`PRELUDE` plus the helpers it uses.

Safe at `maxmemory`: Redis refuses a script's first write that may grow memory
while it is over its limit (noeviction), but lets a script that has already
written finish. So every script that changes a job frees first (an HDEL of the
fields it rewrites, or a DEL of what the job no longer needs), and the writes that
follow always complete: a full Redis can still start, end, cancel and discard jobs.
"""

from __future__ import annotations

from enum import Enum
from typing import get_args

from shared.api_models import BatchStatus, JobStatus, WebhookEvent
from shared.job_data.keys import QueueKeys


class Start(Enum):
    """What a worker does with a job's message (the START script's first reply)."""

    RUN = "run"
    TERMINAL = "terminal"  # ended already (finished, failed, cancelled): drop the message
    UNKNOWN = "unknown"  # no record (expired, dropped, or its create undone): drop it
    EXPIRED = "expired"  # queued past its deadline: end it `expired`, never decode it


def _locals(pairs: dict[str, str]) -> str:
    return "".join(f"local {name} = '{value}'\n" for name, value in pairs.items())


PRELUDE = _locals({
    **{status.name: status.value for status in JobStatus},
    **{f"BATCH_{status.name}": status.value for status in BatchStatus},
    **{f"ON_{event.upper()}": event for event in get_args(WebhookEvent)},
    **{f"ON_BATCH_{event.upper()}": f"batch.{event}" for event in get_args(WebhookEvent)},
    "START_TERMINAL": Start.TERMINAL.value, "START_EXPIRED": Start.EXPIRED.value,
    "RECORD_PREFIX": QueueKeys.record(""),
    "BATCH_PREFIX": QueueKeys.batch(""), "BATCH_ENDED_PREFIX": QueueKeys.batch_ended(""),
    "BATCH_STATS_PREFIX": QueueKeys.batch_stats_of(""),
}) + """
-- A number's text as JSON has it (Redis replies with integers and strings only).
local function number(text) return tonumber(text) and text or '0' end
"""

# A queued job's caller counter (`QUEUE_MAX_PER_KEY`): the job leaves the count in the
# script that moves it out of `queued` (start, finish, discard).
LEAVE_QUEUED = """
local function leave_queued(counter)
  if counter and counter ~= '' and tonumber(redis.call('DECR', counter)) < 0 then
    redis.call('SET', counter, 0)
  end
end
"""

# A job's record as clients see it, as JSON: the body of a webhook, and (with its
# owner and end time) what an ended job's record becomes.
JOB_JSON = """
local function job_json(status, created_at, top_k, extra)
  return '{"status":' .. cjson.encode(status) .. ',"created_at":' .. number(created_at) ..
         ',"top_k":' .. number(top_k) .. (extra or '') .. '}'
end
"""

# START's `started` and FINISH's `completed` webhooks: a delivery in the outbox (with
# the body as the job is now) when the job has a webhook that asked for the event.
ENQUEUE_WEBHOOK = """
local function enqueue_webhook(outbox, delivery, delivery_id, job_id, url, events, event,
                               body, now, ttl)
  if not url or url == '' then return end
  if not string.find(',' .. (events or ON_COMPLETED) .. ',', ',' .. event .. ',', 1, true) then
    return
  end
  redis.call('HSET', delivery, 'job_id', job_id, 'url', url, 'attempts', 0, 'event', event,
             'body', body, 'at', now)
  redis.call('EXPIRE', delivery, ttl)
  redis.call('ZADD', outbox, now, delivery_id)
end
"""

# Ends a batch's average time between ends (its ETA) is taken over: every end up to
# this many, then a moving average with this span.
BATCH_RATE_SPAN = 64

# START's and FINISH's step for a batch item that leaves `queued` (started, or ended
# before it started): it no longer waits in the lane, so its batch may release
# another (`shared.job_data.batches.RELEASE` keeps at most BATCH_INFLIGHT waiting).
# A batch's own webhook (`batch.started`, `batch.completed`) when it asked for the
# event: a delivery in the outbox whose body the sender reads from the batch then.
ENQUEUE_BATCH_WEBHOOK = """
local function enqueue_batch_webhook(batch, batch_id, event, wanted, outbox, delivery,
                                     delivery_id, now, ttl)
  local f = redis.call('HMGET', batch, 'webhook', 'webhook_events')
  if not f[1] or f[1] == '' then return end
  if not string.find(',' .. (f[2] or ON_COMPLETED) .. ',', ',' .. wanted .. ',', 1, true) then
    return
  end
  redis.call('HSET', delivery, 'job_id', batch_id, 'url', f[1], 'attempts', 0,
             'event', event, 'body', '', 'at', now)
  redis.call('EXPIRE', delivery, ttl)
  redis.call('ZADD', outbox, now, delivery_id)
end
"""

# START's and FINISH's step for a batch item that leaves `queued` (started, or ended
# before it started): it no longer waits in the lane, so its batch may release
# another (`shared.job_data.batches.RELEASE` keeps at most BATCH_INFLIGHT waiting).
# The batch's first item to go sends `batch.started` if the batch asked for it.
BATCH_ITEM_TAKEN = """
local function batch_item_taken(job_id, outbox, delivery, delivery_id, now, ttl)
  local dot = string.find(job_id, '.', 1, true)
  if not dot then return end
  local batch_id = string.sub(job_id, 1, dot - 1)
  local batch = BATCH_PREFIX .. batch_id
  if redis.call('EXISTS', batch) == 0 then return end
  if redis.call('HINCRBY', batch, 'taken', 1) == 1 then
    enqueue_batch_webhook(batch, batch_id, ON_BATCH_STARTED, ON_STARTED, outbox, delivery,
                          delivery_id, now, ttl)
  end
end
"""

# FINISH's step for an item of a batch (a job id
# `<batch>.<index>`): the batch's counts by status and error code, the index onto
# the list its results are read from, the average time between ends, and the batch
# ended once its last item is. Returns the batch's ended count (0: not an item).
BATCH_ITEM_ENDED = f"""
local function batch_item_ended(job_id, status, code, now, outbox, delivery, delivery_id,
                                ttl)
  local dot = string.find(job_id, '.', 1, true)
  if not dot then return 0 end
  local batch_id = string.sub(job_id, 1, dot - 1)
  local batch = BATCH_PREFIX .. batch_id
  if redis.call('EXISTS', batch) == 0 then return 0 end
  redis.call('HINCRBY', batch, 'n:' .. status, 1)
  if code and code ~= '' then redis.call('HINCRBY', batch, 'e:' .. code, 1) end
  local ended = redis.call('HINCRBY', batch, 'ended', 1)
  redis.call('RPUSH', BATCH_ENDED_PREFIX .. batch_id, string.sub(job_id, dot + 1))
  local f = redis.call('HMGET', batch, 'last_end_at', 'interval', 'total', 'status',
                       'first_end_at')
  -- The average time between ends: over every end until there are enough of them,
  -- then a moving average that follows the rate as it changes.
  if not f[5] then
    redis.call('HSET', batch, 'first_end_at', now)
  elseif ended <= {BATCH_RATE_SPAN} then
    local interval = (tonumber(now) - tonumber(f[5])) / (ended - 1)
    redis.call('HSET', batch, 'interval', string.format('%.6f', interval))
  else
    local gap = math.max(0, tonumber(now) - tonumber(f[1]))
    local interval = tonumber(f[2]) * (1 - 1 / {BATCH_RATE_SPAN}) + gap / {BATCH_RATE_SPAN}
    redis.call('HSET', batch, 'interval', string.format('%.6f', interval))
  end
  redis.call('HSET', batch, 'last_end_at', now)
  if ended >= tonumber(f[3]) then
    redis.call('HSET', batch, 'finished_at', now)
    local final = f[4] == BATCH_RUNNING and BATCH_SUCCEEDED or f[4]
    redis.call('HSET', batch, 'status', final)
    redis.call('HINCRBY', BATCH_STATS_PREFIX .. redis.call('HGET', batch, 'queue'), final, 1)
    enqueue_batch_webhook(batch, batch_id, ON_BATCH_COMPLETED, ON_COMPLETED, outbox,
                          delivery, delivery_id, now, ttl)
  end
  return ended
end
"""

# Cached results (`cache_entries`), then ended jobs' records, are dropped oldest first
# when new work needs Redis's memory:
# until used memory plus `incoming` is `slack` (a fraction of maxmemory) below the
# line `headroom` draws, or `cap` records are gone. Returns how many went and whether
# used memory plus `incoming` is now under the line. Without a maxmemory, all fits.
MAKE_ROOM = """
local function memory()
  local info = redis.call('INFO', 'memory')
  return tonumber(string.match(info, 'used_memory:(%d+)')),
         tonumber(string.match(info, 'maxmemory:(%d+)'))
end

local function id_time(id)  -- the milliseconds a UUIDv7 job id was made at, or nil
  if string.sub(id, 15, 15) ~= '7' then return nil end
  return tonumber(string.sub(id, 1, 8) .. string.sub(id, 10, 13), 16)
end

local function make_room(finished, dropped_total, dropped_before, incoming, headroom,
                          slack, cap, cache_entries)
  local used, limit = memory()
  if limit == 0 then return 0, true end
  local line = limit * (1 - headroom)
  if used + incoming <= line then return 0, true end
  -- Cached results go first: a job's result is what its client asked for, a cached
  -- one only spares a worker some work.
  local gone = 0
  while used + incoming > line - limit * slack and gone < cap do
    local entries = redis.call('LPOP', cache_entries, 64)
    if not entries then break end
    gone = gone + redis.call('DEL', unpack(entries))
    used = memory()
  end
  local dropped, newest = 0, nil
  while used + incoming > line - limit * slack and dropped < cap do
    local ids = redis.call('LPOP', finished, 64)
    if not ids then break end
    for _, id in ipairs(ids) do
      if redis.call('DEL', RECORD_PREFIX .. id) == 1 then
        dropped = dropped + 1
        local made = id_time(id)
        if made and (not newest or made > newest) then newest = made end
      end
    end
    used = memory()
  end
  if dropped > 0 then
    redis.call('INCRBY', dropped_total, dropped)
    if newest and newest > tonumber(redis.call('GET', dropped_before) or '0') then
      redis.call('SET', dropped_before, string.format('%d', newest))
    end
  end
  return dropped, used + incoming <= line
end
"""
