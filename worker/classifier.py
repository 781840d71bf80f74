"""Classifies one image: decode and preprocess it in the calling job thread, run it
in a shared batch, and take the top-k with ImageNet labels."""

from __future__ import annotations

import time

import torch

from worker.batching import Batcher
from worker.model import LoadedModel
from worker.preprocess import preprocess


class Classifier:
    def __init__(self, model: LoadedModel, batcher: Batcher, max_pixels: int):
        self.model = model
        self.batcher = batcher
        self.max_pixels = max_pixels

    def classify(self, data: bytes, top_k: int) -> dict:
        """The job result for one image, less the queue timing. Raises `BadImage`
        (or `ImageTooLarge`) for an image that cannot be used; such an image never
        reaches a batch."""
        started = time.perf_counter()
        with self.batcher.slot() as slot:
            tensor = preprocess(data, self.max_pixels)
            preprocessed = time.perf_counter()
            output = slot.submit(tensor).result()
        return {
            "predictions": self.top_k(output.logits, top_k),
            "model": self.model.info(),
            "timing_ms": {
                "preprocess": round((preprocessed - started) * 1000, 3),
                "inference": round(output.inference_seconds * 1000, 3),
            },
            "batch_size": output.batch_size,
        }

    def top_k(self, logits: torch.Tensor, k: int) -> list[dict]:
        probabilities = torch.softmax(logits.float(), dim=0)
        scores, indices = torch.topk(probabilities, k=min(k, probabilities.numel()))
        return [
            {"label": self.model.labels[i], "class_id": int(i), "score": float(s)}
            for s, i in zip(scores.tolist(), indices.tolist())
        ]
