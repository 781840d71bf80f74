"""How many requests of one web process may be held waiting for results at once.

A waiting request holds a gunicorn thread for up to `WAIT_MAX_SECONDS`. Without a
bound, `?wait=30` requests at the rate limit fill every thread in seconds and the
process stops answering anyone, health checks included. Past the bound (for the
whole process, or for one API key) a request that asked to wait is answered at once,
as if it had not asked: 202 (or 200 for a poll) with the job as it is, and the
client polls. Nothing is refused and no thread is stuck.

The bounds are per process because threads are per process: one key holds at most
`WAIT_MAX_PER_KEY` threads of each web process, never all of them. Without API
keys there is only the process's bound: behind a proxy every client has the
proxy's address, so an address says nothing about who is waiting.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class WaitSlots:
    def __init__(self, total: int, per_key: int):
        if total < 1 or per_key < 1:
            raise ValueError("wait slots need total >= 1 and per_key >= 1")
        self.total = total
        self.per_key = min(per_key, total)
        self._lock = threading.Lock()
        self._in_use = 0
        self._per_key: Counter[str] = Counter()

    @classmethod
    def for_threads(cls, threads: int, total: int = 0, per_key: int = 0) -> WaitSlots:
        """Zeros mean the defaults: three quarters of the process's threads wait at
        most (the rest keep answering polls, submissions and probes), and one key
        holds at most half of those."""
        total = total or max(1, threads * 3 // 4)
        return cls(total, per_key or max(1, total // 2))

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    @contextmanager
    def hold(self, key: str | None) -> Iterator[bool]:
        """Yields whether a request (of API key `key`, None without keys) may wait
        now; a granted slot is given back on exit."""
        with self._lock:
            granted = self._in_use < self.total and (
                key is None or self._per_key[key] < self.per_key)
            if granted:
                self._in_use += 1
                if key is not None:
                    self._per_key[key] += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self._in_use -= 1
                    if key is not None:
                        self._per_key[key] -= 1
                        if self._per_key[key] <= 0:
                            del self._per_key[key]
