"""Gathers the images of many jobs into batches, and runs each batch in two phases:
decode all its images (in parallel across the cores), then one forward pass.

With `overlap` (the service's default), the model runs on a thread of its own and
the next batch is decoded while the current one is in the model: a pipeline two
batches deep, which fills the gaps the job threads' Celery and Redis work leave in
each phase (see docs/performance.md for what it measured). Without it
the phases take turns, so the model's threads never compete with decoding for a
core.

Each job thread takes a `slot` as soon as it starts, so the batcher knows how many
images are on their way. A batch runs as soon as it is full, or when nothing more
is on its way, or `max_wait` after its first image: one job alone never waits, and
under load the next batch fills while the current one is in the model.

An image may come with a `BatchWatch`: told just before its batch is decoded and
just after the batch is done. The job handler counts a job's unfinished batches
with it, so that when a worker dies only the jobs of the batch it was running are
charged with the crash (with overlap, the jobs of the batch being decoded too). An
image submitted `alone` (a job charged before) gets a batch of its own, run with no
other batch in flight, so a poison input is the only job charged with the crashes
it causes.

The batcher also says whether it is making progress (`stalled_seconds`): how long
it has had work without finishing any, which a worker's liveness probe reads.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from worker.batch_pipeline import BatchPipeline, Decoded

log = logging.getLogger(__name__)


class BatchWatch(Protocol):
    def batch_started(self) -> None: ...

    def batch_ended(self) -> None: ...


@dataclass(frozen=True, eq=False)
class _Pending:
    payload: object
    future: Future
    queued: float
    alone: bool
    watch: BatchWatch | None = None
    urgent: bool = False


class Slot:
    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self.submitted = False

    def submit(self, payload, *, alone: bool = False, watch: BatchWatch | None = None,
               urgent: bool = False) -> Future:
        """Hand the image over. `urgent` (an interactive job's) goes into the next
        batch before every image that is not."""
        self.submitted = True
        return self._batcher._submit(_Pending(payload, Future(), time.perf_counter(), alone,
                                              watch, urgent))


class Batcher:
    def __init__(self, pipeline: BatchPipeline, *, max_size: int, max_wait_seconds: float,
                 overlap: bool = False, name: str = "batcher"):
        self.pipeline = pipeline
        self.max_size = max_size
        self.max_wait = max_wait_seconds
        self.overlap = overlap
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._announced = 0
        self._stopping = False
        # When each phase's current batch began ("decode", "model"; absent between
        # batches), and when the last batch ended: what `stalled_seconds` reads.
        self._busy_since: dict[str, float] = {}
        self._last_progress = time.perf_counter()
        self._threads = [threading.Thread(target=self._run, name=name, daemon=True)]
        # With overlap, the decoded batch the model's thread takes next, and how many
        # batches it has been handed and not finished.
        self._handoff: queue.Queue = queue.Queue(maxsize=1)
        self._handed = 0
        if overlap:
            self._threads.append(threading.Thread(target=self._run_model,
                                                  name=f"{name}-model", daemon=True))
        for thread in self._threads:
            thread.start()

    @contextmanager
    def slot(self):
        """Announce an image that is on its way; hand it over with `slot.submit`."""
        handle = Slot(self)
        with self._cond:
            self._announced += 1
        try:
            yield handle
        finally:
            if not handle.submitted:  # it never came: stop waiting for it
                with self._cond:
                    self._announced -= 1
                    self._cond.notify()

    def stalled_seconds(self) -> float:
        """Seconds the batcher has had work without getting through any of it: the
        age of the running batch, else of the oldest image waiting (counted from the
        last batch's end, if later); 0 with nothing to do; infinite once its thread
        has ended (it does only when stopped)."""
        now = time.perf_counter()
        with self._cond:
            if not all(thread.is_alive() for thread in self._threads):
                return 0.0 if self._stopping else math.inf
            if self._busy_since:
                return now - min(self._busy_since.values())
            if self._queue:
                return now - max(self._queue[0].queued, self._last_progress)
            return 0.0

    def _submit(self, pending: _Pending) -> Future:
        with self._cond:
            self._announced -= 1
            self._queue.append(pending)
            self._cond.notify()
        return pending.future

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        for thread in self._threads:
            thread.join(5)
        self.pipeline.close()

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            if not self._first().alone:
                deadline = self._queue[0].queued + self.max_wait
                while len(self._queue) < self.max_size and self._announced > 0:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            # Urgent images (the interactive lane's) first, each kind in arrival order;
            # an image to run alone ends the batch before it, or is a batch of its own.
            ordered = sorted(self._queue, key=lambda item: not item.urgent)
            if ordered[0].alone:
                batch = ordered[:1]
            else:
                batch = []
                for item in ordered:
                    if item.alone or len(batch) == self.max_size:
                        break
                    batch.append(item)
            for item in batch:
                self._queue.remove(item)
            return batch

    def _first(self) -> _Pending:
        """The image the next batch begins with: the oldest urgent one, else the oldest."""
        return next((item for item in self._queue if item.urgent), self._queue[0])

    @staticmethod
    def _started(batch: list[_Pending]) -> list[_Pending]:
        """Tell each image's watch; an image whose watch fails fails alone."""
        going = []
        for item in batch:
            try:
                if item.watch is not None:
                    item.watch.batch_started()
                going.append(item)
            except Exception as error:
                item.future.set_exception(error)
        return going

    @staticmethod
    def _ended(batch: list[_Pending]) -> None:
        for item in batch:
            if item.watch is None:
                continue
            try:
                item.watch.batch_ended()
            except Exception:  # the job stays charged: it only errs on the safe side
                log.exception("could not record the end of a batch")

    def _busy(self, phase: str, busy: bool) -> None:
        with self._cond:
            if busy:
                self._busy_since[phase] = time.perf_counter()
            else:
                self._busy_since.pop(phase, None)
                if phase == "model":
                    self._last_progress = time.perf_counter()

    def _run(self) -> None:
        """The batcher's thread: gathers each batch and decodes it; then runs the
        model too, or (with overlap) hands the batch to the model's thread."""
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                pipelined = self.overlap and not batch[0].alone
                if self.overlap and not pipelined:
                    # A job charged with a crash runs with nothing else in flight, so
                    # the crashes it causes charge no other job.
                    with self._cond:
                        self._cond.wait_for(lambda: self._handed == 0)
                batch = self._started(batch)
                if not batch:
                    continue
                self._busy("decode", True)
                try:
                    decoded = self.pipeline.decode([item.payload for item in batch])
                except BaseException as error:  # never leave a job waiting forever
                    decoded = error
                finally:
                    self._busy("decode", False)
                if pipelined:
                    # Handed over once the model's thread takes it (its previous batch
                    # done): then gather the next, so one batch at most waits decoded.
                    with self._cond:
                        self._handed += 1
                    self._handoff.put((batch, decoded))
                    self._handoff.join()
                else:
                    self._infer(batch, decoded)
        finally:
            if self.overlap:
                self._handoff.put(None)  # the model's thread ends after what is queued

    def _run_model(self) -> None:
        while True:
            handed = self._handoff.get()
            self._handoff.task_done()
            if handed is None:
                return
            try:
                self._infer(*handed)
            finally:
                with self._cond:
                    self._handed -= 1
                    self._cond.notify_all()

    def _infer(self, batch: list[_Pending], decoded: Decoded | BaseException) -> None:
        """The model phase of one batch, then each image's outcome to its future."""
        self._busy("model", True)
        try:
            if isinstance(decoded, BaseException):
                raise decoded
            outputs = self.pipeline.infer_decoded(decoded)
        except BaseException as error:  # never leave a job waiting forever
            outputs = [error] * len(batch)
        finally:
            self._busy("model", False)
        self._ended(batch)
        for item, output in zip(batch, outputs, strict=True):
            if isinstance(output, BaseException):
                item.future.set_exception(output)
            else:
                item.future.set_result(output)
