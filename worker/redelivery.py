"""Puts back the jobs whose message vanished with a killed worker.

Kombu's Redis transport pops a message (BRPOP) and only then records it as unacked
in the `unacked` hash; a worker killed in between (the message read, or still in
its socket buffer) takes the message with it, and neither the visibility timeout
nor the heartbeat (`worker.heartbeat`) can bring back what was never recorded.
Such a job is still `queued`, and its message is nowhere.

The job store indexes every accepted, unfinished job (`resq:inflight:<queue>`,
scored by when it was accepted or its message last sent), from the create script on:
a job whose message never left (its web process killed between the create and the
send, or the create's reply lost) is indexed too, and is found here like a lost one.
Each sweep, under a per-queue lock, reads at most `batch` of the jobs last sent more
than `stale_after` seconds ago (the oldest first), keeps those still `queued` and
not unacked, and looks for them in the queue from its tail, where the oldest
messages wait (the queue is first in, first out): a page at a time, stopping as soon
as each is found, or as soon as it has passed messages sent well after one of them,
which proves that one gone. So a sweep reads about `batch` messages however long the
queue is. A lost job's message is sent again (`JobStore.resend`).

The lock is fenced: each re-send first claims its job in one Lua step that checks
the lock still holds this sweep's token and that the job is still stale, and moves
it forward in the index. Two sweeps that overlap (one paused past its lock) never
re-send the same job twice. A job sent twice anyway (found in transit) is
harmless: a message of a job that has ended is dropped unrun, and a job's first
end is its only one.

The same thread, under the same lock, keeps the job data in shape (`housekeeping`):
it drops the oldest ended jobs while Redis is over its memory line and clears
expired ones off their list (`shared.job_data.budget`), and every
`reconcile_interval` seconds it recomputes the counts from the records
(`shared.job_data.reconcile`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid

import redis

from shared.api_models import JobStatus
from shared.celery_app import UNACKED_KEY
from shared.errors import JobExpired
from shared.job_data.keys import QueueKeys
from shared.job_data.reconcile import Reconciler
from shared.job_data.store import JobStore
from shared.lanes import Lane, lane_list
from worker import metrics

log = logging.getLogger(__name__)

PAGE = 200  # messages read from the queue at a time
MAX_PAGES = 50  # at most this many pages a sweep; the rest waits for the next sweep
# A message sent this long after a missing job's last send proves that job is not
# behind it in the queue (its own send may have been delayed by up to this much).
ORDER_MARGIN_SECONDS = 5.0

_CLAIM = """
-- KEYS: lock, inflight index; ARGV: token, job id, stale cutoff, now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score or tonumber(score) > tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return 1
"""

_RENEW = """
-- KEYS: lock; ARGV: token, milliseconds. Extends the lock while this sweep holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def _unacked_id(raw: bytes | str) -> str | None:
    try:
        return json.loads(raw)[0]["headers"]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _queued_message(raw: bytes | str) -> tuple[str, float] | None:
    """(job id, accepted at) of a classify message as it waits in the queue."""
    try:
        message = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        return message["headers"]["id"], float(kwargs["created_at"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class LostJobSweeper:
    def __init__(self, client: redis.Redis, store: JobStore, *, stale_after: float,
                 interval: float, batch: int = 100, reconcile_interval: float = 60.0):
        self.client = client
        self.store = store
        self.records = store.records
        self.queue = store.queue
        self.stale_after = stale_after
        self.interval = interval
        self.batch = batch
        self.lock_key = QueueKeys(self.queue).sweeper_lock
        self.reconciler = Reconciler(client, self.queue)
        self.reconcile_interval = reconcile_interval
        self._reconciled_at = float("-inf")
        self.lock_ms = max(1000, int(interval * 3000))
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self, now: float | None = None) -> list[str]:
        """Take the lock and re-send the lost jobs; returns their ids ([] when
        another sweep holds the lock)."""
        token = uuid.uuid4().hex
        if not self.client.set(self.lock_key, token, nx=True, px=self.lock_ms):
            return []
        try:
            resent = self._sweep(token, time.time() if now is None else now)
            self.housekeeping()
            return resent
        finally:
            self.client.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                             "return redis.call('DEL', KEYS[1]) end return 0",
                             1, self.lock_key, token)

    def _sweep(self, token: str, now: float) -> list[str]:
        cutoff = now - self.stale_after
        stale = dict(self.client.zrangebyscore(self.records.inflight_key, "-inf", cutoff,
                                               start=0, num=self.batch, withscores=True))
        if not stale:
            return []
        ids = [raw.decode() for raw in stale]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(QueueKeys.record(job_id), "status", "lane", "deadline_at")
            # An ended job's record is its final JSON, not a hash: WRONGTYPE, as ended.
            found = [(None, None, None) if isinstance(reply, redis.ResponseError) else reply
                     for reply in pipe.execute(raise_on_error=False)]
        missing: dict[str, float] = {}
        lanes: dict[str, str] = {}
        for job_id, (status, lane, deadline_at) in zip(ids, found, strict=True):
            if status is None or JobStatus(status.decode()).is_terminal():
                self.records.drop_inflight(job_id)  # ended, or its record expired
            elif status.decode() == JobStatus.QUEUED.value:
                if deadline_at and 0 < float(deadline_at) < now:
                    if self.store.expire(job_id):  # nobody took it in time: it never runs
                        metrics.job_finished(JobExpired.code)
                    continue
                missing[job_id] = stale[job_id.encode()]
                lanes[job_id] = (lane or b"batch").decode()
            # A started job was received by a worker: the heartbeat covers it.
        if missing:
            for raw in self.client.hvals(UNACKED_KEY):  # bounded: what workers hold
                missing.pop(_unacked_id(raw), None)
        lost = []
        for lane in Lane:
            in_lane = {j: sent for j, sent in missing.items() if lanes[j] == lane.value}
            lost += self._not_in_queue(lane_list(self.queue, lane), in_lane, token)
        resent = []
        for job_id in lost:
            if not self._claim(keys=[self.lock_key, self.records.inflight_key],
                               args=[token, job_id, cutoff, now]):
                continue  # another sweep has it, or it moved on
            record = self.store.record(job_id)
            if record is not None and record.status is JobStatus.QUEUED:
                self.store.resend(record)
                resent.append(job_id)
        if resent:
            log.warning("re-sent %d jobs whose message was lost: %s", len(resent), resent)
        return resent

    def housekeeping(self, now: float | None = None) -> None:
        """Release the batches' items that no worker released (after a crash, or an
        ended item's release lost), make room in Redis if ends alone filled it, and
        reconcile the counts when one is due (the caller holds the sweeper's lock)."""
        released = self.store.batches.release_all()
        if released:
            log.info("released %d batch items the workers had not", released)
        dropped, _ = self.store.budget.trim()
        if dropped:
            log.warning("dropped %d ended jobs' results to keep Redis under its memory line",
                        dropped)
        now = time.monotonic() if now is None else now
        if now - self._reconciled_at >= self.reconcile_interval:
            self._reconciled_at = now
            corrected = self.reconciler.reconcile()
            if corrected:
                log.warning("the job counts had drifted and are corrected: %s", corrected)

    def _not_in_queue(self, queue: str, missing: dict[str, float], token: str) -> list[str]:
        """Of `missing` (job id -> when last sent), those not in the list `queue`,
        read from its tail a page at a time; an undecided job waits for the next
        sweep."""
        lost: list[str] = []
        newest_seen = float("-inf")
        for page in range(MAX_PAGES):
            if not missing:
                break
            raw = self.client.lrange(queue, -(page + 1) * PAGE, -page * PAGE - 1)
            for item in reversed(raw):  # tail first: the next to be taken
                found = _queued_message(item)
                if found is None:
                    continue
                job_id, accepted = found
                missing.pop(job_id, None)
                newest_seen = max(newest_seen, accepted)
            passed = [j for j, sent in missing.items()
                      if newest_seen > sent + ORDER_MARGIN_SECONDS]
            for job_id in passed:
                lost.append(job_id)
                del missing[job_id]
            if len(raw) < PAGE:  # the whole queue is read: the rest are gone too
                lost.extend(missing)
                break
            self._renew(keys=[self.lock_key], args=[token, self.lock_ms])
        return lost

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lost-job-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sweep_once()
            except Exception as error:  # Redis away: try again next round
                log.warning("lost-job sweep failed: %s", error)
