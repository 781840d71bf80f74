"""Redis's memory budget, in which new work beats old results.

What Redis holds for resq, and what may go:
- waiting work (messages, queued records, their images): bounded by the
  `QUEUE_MAX_*` limits, never dropped;
- started jobs and undelivered webhooks: never dropped;
- cached results (`RESULT_CACHE`): kept for `RESULT_CACHE_TTL_SECONDS` as long as
  they fit, and dropped first, oldest first;
- ended jobs' records (each job's final JSON, a few hundred bytes): kept for
  `RESULT_TTL_SECONDS` as long as they fit, and otherwise dropped oldest first.

Where Redis has a `maxmemory`, `HEADROOM` of it stays free for what ends jobs and for
Celery's own bookkeeping (a write past maxmemory is refused under noeviction). A
create that would take used memory over that line first drops the oldest ended
records (inside the create script, `shared.job_data.store`), down to `SLACK` below
the line so that one drop serves many creates; the worker's housekeeping does the
same when ends alone fill Redis (`ResultBudget.trim`). Each dropped record is counted
(`resq_results_dropped_total`), and a GET for it answers 404 `result_dropped`.
Without a `maxmemory` nothing is dropped: records expire after their TTL.

Sizing: results need about `jobs/s × RESULT_TTL_SECONDS × bytes per ended job` of
Redis's memory (docs/reliability.md has the figures).
"""

from __future__ import annotations

import redis

from shared.job_data import lua
from shared.job_data.keys import QueueKeys

HEADROOM = 0.10  # of maxmemory, kept free for ends and Celery's bookkeeping
SLACK = 0.02  # of maxmemory, freed below the headroom line by one drop
ROOM_CAP = 5_000  # most records one script drops (the rest wait for the next)
EXPIRED_HEADS = 1_000  # most ids of expired records one trim takes off the list

TRIM = lua.PRELUDE + lua.MAKE_ROOM + """
-- KEYS: ended jobs, results-dropped, dropped-before, cache entries; ARGV: headroom,
--   slack, cap, expired heads to clear.
-- Takes the ids of records (and cache entries) that expired by themselves off the
-- head of their lists, then drops the oldest ended jobs while Redis is over the headroom
-- line. Returns {records dropped, expired ids cleared}.
local cleared = 0
while cleared < tonumber(ARGV[4]) do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or redis.call('EXISTS', RECORD_PREFIX .. head) == 1 then break end
  redis.call('LPOP', KEYS[1])
  cleared = cleared + 1
end
-- Cache entries expire by themselves, in the order they were listed.
local entries_cleared = 0
while entries_cleared < tonumber(ARGV[4]) do
  local head = redis.call('LINDEX', KEYS[4], 0)
  if not head or redis.call('EXISTS', head) == 1 then break end
  redis.call('LPOP', KEYS[4])
  entries_cleared = entries_cleared + 1
end
local dropped = make_room(KEYS[1], KEYS[2], KEYS[3], 0, tonumber(ARGV[1]),
                          tonumber(ARGV[2]), tonumber(ARGV[3]), KEYS[4])
return {dropped, cleared}
"""


class ResultBudget:
    """The ended jobs of a queue, as what Redis may drop when memory is needed."""

    def __init__(self, client: redis.Redis, queue: str):
        self.client = client
        self.keys = QueueKeys(queue)
        self._trim = client.register_script(TRIM)

    def trim(self) -> tuple[int, int]:
        """Drop the oldest ended jobs while Redis is over the headroom line, and clear
        expired ones off the list: (records dropped, expired ids cleared)."""
        dropped, cleared = self._trim(
            keys=[self.keys.finished, self.keys.results_dropped, self.keys.dropped_before,
                  self.keys.cache_entries],
            args=[HEADROOM, SLACK, ROOM_CAP, EXPIRED_HEADS])
        return int(dropped), int(cleared)

    def dropped_total(self) -> int:
        return int(self.client.get(self.keys.results_dropped) or 0)
