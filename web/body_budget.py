"""How many bytes of request bodies one web process holds at once, and what happens to
a body that is never read.

Each thread of a web process can hold one upload, and an upload costs more than its
size while it is read, checked and written to Redis. Without a bound, threads ×
upload size (64 × 10 MiB by default) is far above what the chart gives a web pod,
and slow clients are enough to get it OOM-killed. So `POST /jobs` first reserves
what its body will cost (`body_cost`, from the headers alone) from this process's
`BodyBudget`; past the budget it is answered 503 `server_busy` with `Retry-After` at
once, before a byte of its body is read, and the client retries (on this process or
another). The reservation is given back once the job is created, before any wait for
its result: a waiting request holds a thread, never body bytes.

The budget counts what the request itself holds in this process:
`COPIES_PER_BYTE` × the body (read in chunks and joined, the image's bytes, and the
Redis command they are packed into); for a JSON body, the image its URL will fetch,
at most `MAX_UPLOAD_BYTES`, as well. A multipart file is held in memory, counted
here, never spooled to `/tmp` (a memory-backed emptyDir in the chart, which would
count against the pod without being counted here).

A refused body is never read by the app. gunicorn (27) drains at most 64 KiB of
what a response left unread, for at most 5 s, and otherwise closes the connection
the graceful way (its write side shut first, what still comes read for 2 s), so a
slow client holds no thread for long and still reads its 503 rather than a reset.
"""

from __future__ import annotations

import threading
from io import BytesIO

from flask import Request

from shared.errors import ServerBusy

# Bytes of memory one byte of an upload costs at its peak in a web process: the body
# read in chunks and joined into one bytes object, that object (the image), and the
# Redis command it is packed into. Measured by tests/web/test_body_budget.py.
COPIES_PER_BYTE = 3
# Largest JSON body (a URL submission: the URL and options) read at all.
MAX_JSON_BODY_BYTES = 64 * 1024


class BodyBudget:
    """Bytes of request bodies this process may hold at once (0: no bound). One
    request larger than the whole budget is let in when nothing else is held, so a
    small budget slows large uploads down but never refuses them for good."""

    def __init__(self, limit_bytes: int):
        if limit_bytes < 0:
            raise ValueError("a body budget is 0 (no bound) or a number of bytes")
        self.limit_bytes = limit_bytes
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._held

    def reserve(self, cost: int) -> Reservation | None:
        """A reservation of `cost` bytes, or None when the budget has no room now."""
        with self._lock:
            if self.limit_bytes and self._held and self._held + cost > self.limit_bytes:
                return None
            self._held += cost
        return Reservation(self, cost)

    def _give_back(self, cost: int) -> None:
        with self._lock:
            self._held -= cost


class Reservation:
    """Bytes held from a `BodyBudget` until `release()` (which may be called again)."""

    def __init__(self, budget: BodyBudget, cost: int):
        self._budget = budget
        self.cost = cost
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._budget._give_back(self.cost)


def body_cost(request: Request, max_body_bytes: int, fetched_bytes: int = 0) -> int:
    """What reading and submitting `request`'s body costs this process at most, from
    its headers: its declared length (the most a body may be, without one), times
    `COPIES_PER_BYTE`, plus `fetched_bytes` for a JSON body (the image a URL job's
    URL may fetch)."""
    length = request.content_length
    body = max_body_bytes if length is None else min(length, max_body_bytes)
    if request.mimetype == "application/json":
        return COPIES_PER_BYTE * (body + fetched_bytes)
    return COPIES_PER_BYTE * body


def reserve(budget: BodyBudget, request: Request, max_body_bytes: int,
            fetched_bytes: int = 0) -> Reservation:
    """`request`'s reservation (`body_cost`), or `ServerBusy` (503) before a byte of
    its body is read."""
    reservation = budget.reserve(body_cost(request, max_body_bytes, fetched_bytes))
    if reservation is None:
        raise ServerBusy()
    return reservation


class InMemoryFileRequest(Request):
    """A Flask request whose multipart files are read into memory (counted by the
    body budget), never into temporary files."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return BytesIO()

