"""The Lua scripts behind each change of a job's state (`shared.job_store.JobStore`
runs them): each change is one script, so it is atomic in Redis."""

# A job's record names the counter of its owner's queued jobs (`QUEUE_MAX_PER_KEY`)
# in its `quota` field; the job leaves the count when it leaves `queued`, in the
# one script that moves it on (start, finish or discard).
LEAVE_QUEUED = """
local function leave_queued(record)
  local quota = redis.call('HGET', record, 'quota')
  if quota and quota ~= '' and tonumber(redis.call('DECR', quota)) < 0 then
    redis.call('SET', quota, 0)
  end
end
"""

CREATE = """
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

DISCARD = LEAVE_QUEUED + """
-- KEYS: record, image, queued-bytes. Removes a job that is still queued.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
leave_queued(KEYS[1])
local size = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
redis.call('DEL', KEYS[1], KEYS[2])
if tonumber(redis.call('DECRBY', KEYS[3], size)) < 0 then redis.call('SET', KEYS[3], 0) end
return 1
"""

START = LEAVE_QUEUED + """
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

FINISH = LEAVE_QUEUED + """
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
