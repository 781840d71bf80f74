"""Gathers single images from many job threads into batches for one forward pass.

Each job thread takes a `slot` before it decodes its image, so the batcher knows
how many inputs are on their way. A batch runs as soon as it is full, or when
nothing more is on its way, or after `max_wait` from its first input: one job
alone never waits, and under load the batches fill up while the previous batch
is in the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOutput:
    """One input's row of the batch output, and how the batch went."""

    logits: torch.Tensor
    batch_size: int
    inference_seconds: float
    waited_seconds: float


class Slot:
    def __init__(self, batcher: "Batcher"):
        self._batcher = batcher
        self.submitted = False

    def submit(self, tensor: torch.Tensor) -> Future:
        self.submitted = True
        return self._batcher._submit(tensor)


class Batcher:
    def __init__(self, infer: Callable[[torch.Tensor], torch.Tensor], *, max_size: int,
                 max_wait_seconds: float, name: str = "batcher"):
        self.infer = infer
        self.max_size = max_size
        self.max_wait = max_wait_seconds
        self._cond = threading.Condition()
        self._queue: deque[tuple[torch.Tensor, Future, float]] = deque()
        self._announced = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @contextmanager
    def slot(self):
        """Announce an input that is being prepared; submit it with `slot.submit`."""
        handle = Slot(self)
        with self._cond:
            self._announced += 1
        try:
            yield handle
        finally:
            if not handle.submitted:  # preparing it failed: nothing will come
                with self._cond:
                    self._announced -= 1
                    self._cond.notify()

    def _submit(self, tensor: torch.Tensor) -> Future:
        future: Future = Future()
        with self._cond:
            self._announced -= 1
            self._queue.append((tensor, future, time.perf_counter()))
            self._cond.notify()
        return future

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(5)

    def _next_batch(self) -> list[tuple[torch.Tensor, Future, float]] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = self._queue[0][2] + self.max_wait
            while len(self._queue) < self.max_size and self._announced > 0:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(len(self._queue), self.max_size)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.perf_counter()
            try:
                logits = self.infer(torch.stack([tensor for tensor, _, _ in batch]))
            except BaseException as error:  # the model failed: every job of it fails
                log.exception("batch of %d failed", len(batch))
                for _, future, _ in batch:
                    future.set_exception(error)
                continue
            seconds = time.perf_counter() - started
            for row, (_, future, queued_at) in enumerate(batch):
                future.set_result(BatchOutput(logits=logits[row], batch_size=len(batch),
                                              inference_seconds=seconds,
                                              waited_seconds=started - queued_at))
