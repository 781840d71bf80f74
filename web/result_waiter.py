"""Wakes the threads that wait for a job when its state changes.

The job store PUBLISHes every change of a job's state on the job's own channel
(`shared.job_data.keys`: `resq:job-events:<id>`). One pattern subscription per web process
listens for all of them and sets the event of each thread waiting on that job, so a thousand waiting
requests cost one Redis connection, not a thousand. Waiters also re-check on a
short period, so a missed message (Redis restarting) costs latency, not a result.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from contextlib import contextmanager

import redis

from shared.job_data.keys import QueueKeys

log = logging.getLogger(__name__)

CHANNEL_PREFIX = QueueKeys.events("")
RECHECK_SECONDS = 1.0
RECONNECT_SECONDS = 0.5
POLL_SECONDS = 0.25


class ResultWaiter:
    def __init__(self, client: redis.Redis):
        self.client = client
        self._lock = threading.Lock()
        self._events: dict[str, set[threading.Event]] = defaultdict(set)
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._stopping = threading.Event()

    @contextmanager
    def watch(self, job_id: str):
        """An event set whenever the job's stored state changes."""
        self._ensure_listening()
        event = threading.Event()
        with self._lock:
            self._events[job_id].add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._events.get(job_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._events[job_id]

    def _ensure_listening(self) -> None:
        # Started lazily, in the process that serves requests (after gunicorn forks).
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="result-waiter",
                                                daemon=True)
                self._thread.start()
        # A brief head start, so that a fast result is not missed by a subscription
        # that is not yet in place; the periodic re-check covers the rest.
        self._subscribed.wait(0.5)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                self._subscribed.set()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message and message["type"] == "pmessage":
                        self._notify(message["channel"].decode()[len(CHANNEL_PREFIX):])
            except Exception as error:  # Redis gone, or torn down under us
                self._subscribed.clear()
                if self._stopping.is_set():
                    return
                log.warning("result subscription lost (%s); reconnecting", error)
                self._stopping.wait(RECONNECT_SECONDS)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def _notify(self, job_id: str) -> None:
        with self._lock:
            events = list(self._events.get(job_id, ()))
        for event in events:
            event.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
