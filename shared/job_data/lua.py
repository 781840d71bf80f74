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

from shared.api_models import JobStatus, WebhookEvent
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
    **{f"ON_{event.upper()}": event for event in get_args(WebhookEvent)},
    "START_TERMINAL": Start.TERMINAL.value, "START_EXPIRED": Start.EXPIRED.value,
    "RECORD_PREFIX": QueueKeys.record(""),
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

# Ended jobs' records are dropped oldest first when new work needs Redis's memory:
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
                          slack, cap)
  local used, limit = memory()
  if limit == 0 then return 0, true end
  local line = limit * (1 - headroom)
  if used + incoming <= line then return 0, true end
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
