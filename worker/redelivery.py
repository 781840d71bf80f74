"""Puts back the jobs whose message vanished with a killed worker.

Kombu's Redis transport pops a message (BRPOP) and only then records it as unacked
in the `unacked` hash; a worker killed in between (the message read, or still in
its socket buffer) takes the message with it, and the visibility timeout cannot
bring back what was never recorded. The web tier records every accepted job in
`resq:inflight`; this sweeper, run by every worker (one at a time, under a Redis
lock per queue), finds the jobs accepted more than `stale_after` seconds ago that have no
result and no message anywhere (neither waiting in the queue nor unacked), and
sends their message again (`JobStore.resend`). A job found in transit at that
moment is sent twice at worst, which is harmless: a message for a job that has
ended is dropped unrun, and the first end of a job is the only one.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from shared.job_store import JobStore

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"  # kombu's Redis transport default
LOCK_PREFIX = "resq:sweeper-lock:"  # one sweeper at a time per queue


def _message_id(raw: bytes | str, *, unacked: bool) -> str | None:
    try:
        payload = json.loads(raw)
        message = payload[0] if unacked else payload
        return message["headers"]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class LostJobSweeper:
    def __init__(self, client: redis.Redis, store: JobStore, *, stale_after: float,
                 interval: float):
        self.client = client
        self.store = store
        self.records = store.records
        self.queue = store.queue
        self.stale_after = stale_after
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def messages_present(self) -> set[str]:
        """Ids of every job whose message waits in the queue or is unacked, read in
        one transaction so that a message moving from one to the other is seen."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(self.queue, 0, -1)
            pipe.hvals(UNACKED_KEY)
            waiting, unacked = pipe.execute()
        ids = {_message_id(raw, unacked=False) for raw in waiting}
        ids |= {_message_id(raw, unacked=True) for raw in unacked}
        ids.discard(None)
        return ids

    def sweep_once(self, now: float | None = None) -> list[str]:
        """Re-send the lost jobs; returns their ids."""
        now = time.time() if now is None else now
        candidates = self.records.stale_inflight(now - self.stale_after)
        if not candidates:
            return []
        present = self.messages_present()
        resent = []
        for job_id in candidates:
            if job_id in present:
                continue
            record = self.store.record(job_id)
            if record is None or record.status.is_terminal():
                self.records.drop_inflight(job_id)
                continue
            self.store.resend(record)
            self.records.touch_inflight(job_id, now)
            resent.append(job_id)
        if resent:
            log.warning("re-sent %d jobs whose message was lost: %s", len(resent), resent)
        return resent

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lost-job-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                # One sweeper at a time across all workers.
                if self.client.set(LOCK_PREFIX + self.queue, "1", nx=True,
                                   ex=max(1, int(self.interval))):
                    self.sweep_once()
            except Exception as error:  # Redis away: try again next round
                log.warning("lost-job sweep failed: %s", error)
