"""One batch's work, in two phases: decode every image (in parallel across the
cores), then one forward pass over the stacked arrays. An image that fails to decode
gets its own exception and the rest still run. `worker.batching.Batcher` decides
what goes into a batch and when it runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("worker.batching")  # one logger name for the batcher's messages


@dataclass(frozen=True)
class BatchOutput:
    """One image's row of the batch output, and how its batch went."""

    logits: np.ndarray
    batch_size: int
    preprocess_seconds: float
    inference_seconds: float


@dataclass(frozen=True)
class Decoded:
    """A batch after its first phase: each payload's array or exception, and how
    long decoding them took."""

    items: list
    seconds: float


class BatchPipeline:
    """Runs one batch: `decode` every payload, then `infer` the stacked arrays.
    A payload that fails to decode gets its own exception; the rest still run."""

    def __init__(self, decode_one: Callable[[bytes], np.ndarray],
                 infer: Callable[[np.ndarray], np.ndarray], threads: int,
                 on_batch: Callable[[int, float, float], None] | None = None):
        self.decode_one = decode_one
        self.infer = infer
        # Told (size, preprocess seconds, inference seconds) after each forward pass.
        self.on_batch = on_batch
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="decode")

    def _decode_one(self, payload):
        try:
            return self.decode_one(payload)
        except Exception as error:
            return error

    def run(self, payloads: list) -> list:
        """A `BatchOutput` or an exception for each payload, in order."""
        return self.infer_decoded(self.decode(payloads))

    def decode(self, payloads: list) -> Decoded:
        """The first phase: every payload decoded, or its exception."""
        started = time.perf_counter()
        decoded_items = list(self.pool.map(self._decode_one, payloads))
        return Decoded(decoded_items, time.perf_counter() - started)

    def infer_decoded(self, decoded: Decoded) -> list:
        """The second phase: one forward pass over the payloads that decoded."""
        decoded_items = decoded.items
        good = [i for i, item in enumerate(decoded_items) if not isinstance(item, Exception)]
        results: list = list(decoded_items)
        if not good:
            return results
        started = time.perf_counter()
        try:
            logits = self.infer(np.stack([decoded_items[i] for i in good]))
        except Exception as error:  # the model failed: every image of this batch fails
            log.exception("batch of %d failed", len(good))
            for i in good:
                results[i] = error
            return results
        inference = time.perf_counter() - started
        if self.on_batch is not None:
            self.on_batch(len(good), decoded.seconds, inference)
        for row, i in enumerate(good):
            results[i] = BatchOutput(
                logits=logits[row], batch_size=len(good),
                preprocess_seconds=decoded.seconds, inference_seconds=inference)
        return results

    def close(self) -> None:
        self.pool.shutdown(wait=False)
