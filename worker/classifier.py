"""Classifies one image: hand its bytes to the shared batcher (which decodes and
runs it with the other images of its batch) and take the top-k with ImageNet
labels."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from shared.errors import WorkerStalled
from worker.batching import Batcher, BatchWatch
from worker.engine import Engine


@dataclass(frozen=True)
class Classification:
    """One image's classification, before the job adds its queue timings."""

    predictions: list[dict]
    """`{"label", "class_id", "score"}`, highest score first."""
    model: dict
    """The job result's `model` field (name, weights, precision, engine)."""
    preprocess_ms: float
    inference_ms: float
    batch_size: int
    """How many images shared the batch (logged; not part of the job's result)."""


class Classifier:
    def __init__(self, model: Engine, batcher: Batcher, *, deadline_seconds: float = 60.0,
                 identity: str = ""):
        self.model = model
        self.batcher = batcher
        self.identity = identity  # the result cache's model key (`runtime.model_identity`)
        # Longest a job waits for its batch: past it the batcher is wedged (a hung
        # decode, a deadlock), and the job fails with `worker_stalled` instead of
        # holding its thread, and its message, forever.
        self.deadline_seconds = deadline_seconds

    def classify(self, data: bytes, top_k: int, *, alone: bool = False,
                 watch: BatchWatch | None = None, urgent: bool = False) -> Classification:
        """The job result for one image, less the queue timing. Raises `BadImage`
        (or `ImageTooLarge`) for an image that cannot be used; such an image fails
        alone and never reaches the model. `alone` runs it in a batch of its own;
        `watch` is told when its batch begins and ends; `urgent` (an interactive
        job) goes into the next batch before the rest. Raises `WorkerStalled` when
        the batch has not come back within the deadline."""
        with self.batcher.slot() as slot:
            future = slot.submit(data, alone=alone, watch=watch, urgent=urgent)
        try:
            output = future.result(timeout=self.deadline_seconds)
        except FutureTimeout:
            raise WorkerStalled(f"the worker's batch made no progress in "
                                f"{self.deadline_seconds:g} s; the job was ended rather than "
                                "left waiting") from None
        return Classification(predictions=self.top_k(output.logits, top_k),
                              model=self.model.info(),
                              preprocess_ms=round(output.preprocess_seconds * 1000, 3),
                              inference_ms=round(output.inference_seconds * 1000, 3),
                              batch_size=output.batch_size)

    def top_k(self, logits: np.ndarray, k: int) -> list[dict]:
        return likeliest(logits, k, self.model.labels)


def likeliest(logits: np.ndarray, k: int, labels) -> list[dict]:
    """The `k` likeliest classes by softmax score, highest first (ties: lower id)."""
    values = np.asarray(logits, dtype=np.float64).ravel()
    exp = np.exp(values - values.max())
    probabilities = exp / exp.sum()
    order = np.argsort(-probabilities, kind="stable")[:min(k, probabilities.size)]
    return [{"label": labels[i], "class_id": int(i), "score": float(probabilities[i])}
            for i in order]
