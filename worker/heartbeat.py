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
from shared.lanes import served_lists

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "resq:worker:"  # a live worker's heartbeat key
LOCK_PREFIX = "resq:orphan-scan-lock:"  # one orphan scan per beat and queue
HELD_PREFIX = "resq:held:"  # job id -> delivery tag of the messages a worker holds
REGISTRY_PREFIX = "resq:workers:"  # the workers of a queue (sorted set)
LAPSE_FACTOR = 5  # a heartbeat lives this many beats

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
        self.registry_key = REGISTRY_PREFIX + queue
        self.held_key = HELD_PREFIX + worker_id
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what this worker holds -------------------------------------------------
    def holding(self, job_id: str, delivery_tag: str) -> None:
        self.client.hset(self.held_key, job_id, delivery_tag)

    def released(self, job_id: str) -> None:
        self.client.hdel(self.held_key, job_id)

    # --- the beat -------------------------------------------------------------------
    def beat(self) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(HEARTBEAT_PREFIX + self.worker_id, "1", px=self.ttl_ms)
            pipe.zadd(self.registry_key, {self.worker_id: time.time()})
            pipe.pexpire(self.held_key, self.ttl_ms * 10)
            pipe.execute()

    def live_workers(self) -> list[str]:
        """This queue's workers whose heartbeat lives; the records of the others are
        removed."""
        ids = [raw.decode() for raw in self.client.zrange(self.registry_key, 0, -1)]
        with self.client.pipeline(transaction=False) as pipe:
            for other in ids:
                pipe.exists(HEARTBEAT_PREFIX + other)
            alive = pipe.execute()
        dead = [other for other, up in zip(ids, alive, strict=True) if not up]
        if dead:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(self.registry_key, *dead)
                pipe.delete(*(HELD_PREFIX + other for other in dead))
                pipe.execute()
            log.warning("workers stopped beating: %s", ", ".join(dead))
        return [other for other, up in zip(ids, alive, strict=True) if up]

    def recover_orphans(self, now: float | None = None) -> list[str]:
        """Hand back this queue's messages that were taken more than a lapse ago and
        that no live worker holds; returns their job ids."""
        now = time.time() if now is None else now
        lapse = self.ttl_ms / 1000
        taken = self.client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", now - lapse)
        if not taken:
            return []
        live = self.live_workers()
        with self.client.pipeline(transaction=False) as pipe:
            for other in live:
                pipe.hvals(HELD_PREFIX + other)
            held = {tag.decode() for tags in pipe.execute() for tag in tags}
        orphans = [tag.decode() for tag in taken if tag.decode() not in held]
        if not orphans:
            return []
        handed, lists = [], served_lists(self.queue)
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

    def scan(self) -> None:
        """The orphan scan, by one worker of the queue per beat."""
        if self.client.set(LOCK_PREFIX + self.queue, self.worker_id, nx=True,
                           px=max(1, int(self.interval * 1000))):
            self.recover_orphans()

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.beat()
                self.scan()
            except Exception as error:  # Redis away: beat again next time
                log.warning("heartbeat failed: %s", error)

    def stop(self) -> None:
        """A clean exit (after the warm shutdown has finished or handed back what it
        held): nothing left to recover."""
        self._stopping.set()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(HEARTBEAT_PREFIX + self.worker_id, self.held_key)
                pipe.zrem(self.registry_key, self.worker_id)
                pipe.execute()
        except redis.RedisError as error:
            log.warning("could not remove the heartbeat: %s", error)
