"""A dead worker's jobs come back within seconds, not after the visibility timeout.

Each worker process keeps a heartbeat key that lives `5 × WORKER_HEARTBEAT_SECONDS`
(the lapse) and is renewed every `WORKER_HEARTBEAT_SECONDS`, and a record of the
messages it holds (job id → kombu delivery tag), written as each message arrives
and removed when its task is done.

On each beat one worker of the queue (under a short lock) looks for orphans: the
queue's messages that were taken more than a lapse ago and are still
unacknowledged, but that no live worker holds. Their worker died (SIGKILL, an OOM
kill, a lost node), or died in the instant between taking a message and recording
it. Each orphan is marked as taken long ago in kombu's `unacked_index`, and
kombu's own restore (which every live worker runs each second) puts it back on its
queue, flagged redelivered. A slow worker keeps beating (the beat is its own
thread) and keeps its record, so its jobs are never handed out twice; the
visibility timeout stays as the last resort. Dead workers' records are removed.

After a Redis outage every heartbeat has lapsed at once, the live workers' too. So a
worker scans only once it has itself beaten without a miss for a whole lapse (the
grace): by then every live worker has beaten again, and only the dead still look
dead. A miss is a beat that failed, or one that came more than two beats after the
last (the client rides out a Redis restart by retrying, so a beat may just be late).
A scan that Redis held up for longer than a beat is abandoned before it writes
anything: what it read before the wait may be from before an outage.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

import redis

from shared.celery_app import UNACKED_INDEX_KEY, UNACKED_KEY
from shared.job_data.keys import QueueKeys

log = logging.getLogger(__name__)

LAPSE_FACTOR = 5  # a heartbeat lives this many beats
MODELS_KEPT_SECONDS = 86_400  # a model no worker has run for this long is forgotten

def new_worker_id() -> str:
    """Unique per process: host names repeat (several workers on one machine)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    def __init__(self, client: redis.Redis, queue: str, worker_id: str, *,
                 interval: float):
        self.client = client
        self.queue = queue
        self.worker_id = worker_id
        self.interval = interval
        self.ttl_ms = int(interval * LAPSE_FACTOR * 1000)
        self.keys = QueueKeys(queue)
        self.registry_key = self.keys.workers
        self.held_key = QueueKeys.held(worker_id)
        # When this worker's unbroken run of beats began (None: its last beat failed),
        # and when its last beat was stored.
        self._beating_since: float | None = None
        self._last_beat = float("-inf")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # The model identity this worker runs (`worker.runtime.model_identity`), said
        # with each beat: the web tier serves cached results under it.
        self.model = ""

    # --- what this worker holds -------------------------------------------------
    def holding(self, job_id: str, delivery_tag: str) -> None:
        self.client.hset(self.held_key, job_id, delivery_tag)

    def released(self, job_id: str) -> None:
        self.client.hdel(self.held_key, job_id)

    # --- the beat -------------------------------------------------------------------
    def beat(self) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(QueueKeys.heartbeat(self.worker_id), "1", px=self.ttl_ms)
            pipe.zadd(self.registry_key, {self.worker_id: time.time()})
            pipe.pexpire(self.held_key, self.ttl_ms * 10)
            if self.model:
                pipe.zadd(self.keys.models, {self.model: time.time()})
                pipe.zremrangebyscore(self.keys.models, "-inf", time.time() - MODELS_KEPT_SECONDS)
            pipe.execute()

    def live_workers(self, began: float | None = None) -> list[str] | None:
        """This queue's workers whose heartbeat lives; the records of the others are
        removed. None, and nothing removed, when the scan that `began` then (monotonic)
        has been held up past a beat."""
        ids = [raw.decode() for raw in self.client.zrange(self.registry_key, 0, -1)]
        with self.client.pipeline(transaction=False) as pipe:
            for other in ids:
                pipe.exists(QueueKeys.heartbeat(other))
            alive = pipe.execute()
        if self._held_up(began):
            return None
        dead = [other for other, up in zip(ids, alive, strict=True) if not up]
        if dead:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(self.registry_key, *dead)
                pipe.delete(*(QueueKeys.held(other) for other in dead))
                pipe.execute()
            log.warning("workers stopped beating: %s", ", ".join(dead))
        return [other for other, up in zip(ids, alive, strict=True) if up]

    def recover_orphans(self, now: float | None = None) -> list[str]:
        """Hand back this queue's messages that were taken more than a lapse ago and
        that no live worker holds; returns their job ids."""
        began = time.monotonic()
        now = time.time() if now is None else now
        lapse = self.ttl_ms / 1000
        taken = self.client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", now - lapse)
        if not taken:
            return []
        live = self.live_workers(began)
        if live is None:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for other in live:
                pipe.hvals(QueueKeys.held(other))
            held = {tag.decode() for tags in pipe.execute() for tag in tags}
        orphans = [tag.decode() for tag in taken if tag.decode() not in held]
        if not orphans or self._held_up(began):
            return []
        handed, lists = [], self.keys.lane_lists
        for tag, raw in zip(orphans, self.client.hmget(UNACKED_KEY, orphans), strict=True):
            try:
                message, _exchange, routing_key = json.loads(raw)
            except (TypeError, ValueError):
                continue  # acknowledged meanwhile
            if routing_key not in lists:
                continue  # another queue's: its own workers see to it
            # As if taken at the epoch: kombu's next restore puts it back.
            self.client.zadd(UNACKED_INDEX_KEY, {tag: 1}, xx=True)
            handed.append(message.get("headers", {}).get("id", tag))
        if handed:
            log.warning("%d jobs held by no live worker are delivered again: %s",
                        len(handed), handed)
        return handed

    def _held_up(self, began: float | None) -> bool:
        """Whether a scan that began then has waited on Redis past a beat: its reads
        may be from before an outage. It is abandoned, and the grace starts over."""
        if began is None or time.monotonic() - began <= self.interval:
            return False
        log.warning("an orphan scan was held up %.1f s; abandoned",
                    time.monotonic() - began)
        self._beating_since = None
        return True

    def scan(self, now: float | None = None) -> None:
        """The orphan scan, by one worker of the queue per beat, once this worker has
        beaten without a miss for a lapse (the grace after an outage)."""
        now = time.monotonic() if now is None else now
        if self._beating_since is None or now - self._beating_since < self.ttl_ms / 1000:
            return
        if self.client.set(self.keys.orphan_scan_lock, self.worker_id, nx=True,
                           px=max(1, int(self.interval * 1000))):
            self.recover_orphans()

    def _beat_in_run(self) -> None:
        """A beat of the loop: it starts, continues or (failing) breaks the run."""
        try:
            self.beat()
        except Exception:
            self._beating_since = None
            raise
        now = time.monotonic()
        if self._beating_since is None or now - self._last_beat > 2 * self.interval:
            self._beating_since = now
        self._last_beat = now

    def start(self) -> None:
        self._beat_in_run()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._beat_in_run()
                self.scan()
            except Exception as error:  # Redis away: beat again next time
                log.warning("heartbeat failed: %s", error)

    def stop(self) -> None:
        """A clean exit (after the warm shutdown has finished or handed back what it
        held): nothing left to recover."""
        self._stopping.set()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(QueueKeys.heartbeat(self.worker_id), self.held_key)
                pipe.zrem(self.registry_key, self.worker_id)
                pipe.execute()
        except redis.RedisError as error:
            log.warning("could not remove the heartbeat: %s", error)
