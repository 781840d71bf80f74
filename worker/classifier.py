"""Classifies one image: hand its bytes to the shared batcher (which decodes and
runs it with the other images of its batch) and take the top-k with ImageNet
labels."""

from __future__ import annotations

import torch

from worker.batching import Batcher, BatchWatch
from worker.model import LoadedModel


class Classifier:
    def __init__(self, model: LoadedModel, batcher: Batcher):
        self.model = model
        self.batcher = batcher

    def classify(self, data: bytes, top_k: int, *, alone: bool = False,
                 watch: BatchWatch | None = None) -> dict:
        """The job result for one image, less the queue timing. Raises `BadImage`
        (or `ImageTooLarge`) for an image that cannot be used; such an image fails
        alone and never reaches the model. `alone` runs it in a batch of its own;
        `watch` is told when its batch begins and ends."""
        with self.batcher.slot() as slot:
            output = slot.submit(data, alone=alone, watch=watch).result()
        return {
            "predictions": self.top_k(output.logits, top_k),
            "model": self.model.info(),
            "timing_ms": {
                "preprocess": round(output.preprocess_seconds * 1000, 3),
                "inference": round(output.inference_seconds * 1000, 3),
            },
            "batch_size": output.batch_size,
        }

    def top_k(self, logits: torch.Tensor, k: int) -> list[dict]:
        probabilities = torch.softmax(logits.float(), dim=0)
        scores, indices = torch.topk(probabilities, k=min(k, probabilities.numel()))
        return [
            {"label": self.model.labels[i], "class_id": int(i), "score": float(s)}
            for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]
