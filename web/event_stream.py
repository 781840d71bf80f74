"""Server-Sent Events: a job's or a batch's progress pushed as it changes
(`GET /jobs/<id>/events`, `GET /batches/<id>/events`), so that a client (a browser's
`EventSource`, `curl -N`) need not poll.

- The first event is the state now, sent at once; then one each time the state
  changes, at most 2 a second (changes in between are folded into the next); a
  comment every 15 s keeps proxies from closing a quiet stream. The stream ends after
  the terminal state's event.
- Each event has an `id`; a client that reconnects with `Last-Event-ID` (an
  `EventSource` does by itself) is not sent the state it already has again.
- A stream holds a thread, so it takes a wait slot (`WAIT_MAX_CONCURRENT`,
  `WAIT_MAX_PER_KEY`), as `?wait` does, and lasts at most `BATCH_STREAM_MAX_SECONDS`.
  Past the slots, or at the end of its time, the stream sends the state now with a
  `retry:` (the milliseconds before the client reconnects) and ends, so a browser
  comes back later by itself instead of taking the last thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import Response, request, stream_with_context

from web import metrics
from web.wait_slots import WaitSlots

# At most 2 events a second.
MIN_GAP_SECONDS = 0.5
# How often the state is read while nothing is sent.
POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
# What a client is told to wait before it reconnects: after a stream that ran out of
# time, and (longer) when no slot was free.
RETRY_MS = 1000
BUSY_RETRY_MS = 5000


@dataclass(frozen=True)
class State:
    """What one read of the job or batch gives: the event's id (it grows as the
    state moves on), its name and data, and whether the state is terminal."""

    id: int
    event: str
    data: dict
    terminal: bool


def sse(state: State, retry_ms: int | None = None) -> str:
    lines = [f"id: {state.id}", f"event: {state.event}"]
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines.append("data: " + json.dumps(state.data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def last_event_id(header: str | None) -> int | None:
    if header is None or not (header.isascii() and header.strip().isdigit()):
        return None
    return int(header.strip())


def events(read: Callable[[], State], *, slots: WaitSlots, key: str | None,
           max_seconds: float, last_id: int | None, kind: str) -> Iterator[str]:
    """The stream's text, event by event; `read` gives the state now."""
    with slots.hold(key) as granted:
        state = read()
        if not granted:
            metrics.wait_declined()
            yield sse(state, retry_ms=BUSY_RETRY_MS)
            return
        with metrics.stream_open(kind):
            yield from _follow(read, state, max_seconds, last_id)


def _follow(read, state: State, max_seconds: float, last_id: int | None) -> Iterator[str]:
    deadline = time.monotonic() + max_seconds
    sent_id, sent_data, sent_at = last_id, None, float("-inf")
    if state.terminal or state.id != last_id:
        yield sse(state, retry_ms=RETRY_MS)
        sent_id, sent_data, sent_at = state.id, state.data, time.monotonic()
    quiet_since = time.monotonic()
    while not state.terminal:
        now = time.monotonic()
        if now >= deadline:
            yield sse(state, retry_ms=RETRY_MS)  # the client reconnects to go on
            return
        time.sleep(max(POLL_SECONDS, MIN_GAP_SECONDS - (now - sent_at)))
        state = read()
        if state.id != sent_id or (sent_data is not None and state.data != sent_data):
            yield sse(state)
            sent_id, sent_data, sent_at = state.id, state.data, time.monotonic()
            quiet_since = sent_at
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()


def stream_response(read: Callable[[], State], *, slots: WaitSlots, key: str | None,
                    max_seconds: float, kind: str) -> Response:
    """The `text/event-stream` answer of `events`, resuming from the request's
    `Last-Event-ID`."""
    last_id = last_event_id(request.headers.get("Last-Event-ID"))
    return Response(stream_with_context(events(read, slots=slots, key=key,
                                               max_seconds=max_seconds, last_id=last_id,
                                               kind=kind)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
