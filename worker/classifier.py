"""Classifies one image: preprocess, forward pass, top-k with ImageNet labels."""

from __future__ import annotations

import time

import torch

from worker.model import LoadedModel
from worker.preprocess import preprocess


class Classifier:
    def __init__(self, model: LoadedModel, max_pixels: int):
        self.model = model
        self.max_pixels = max_pixels

    def classify(self, data: bytes, top_k: int) -> dict:
        """The job result for one image, less the queue timing. Raises `BadImage`
        (or `ImageTooLarge`) for an image that cannot be used."""
        started = time.perf_counter()
        tensor = preprocess(data, self.max_pixels)
        preprocessed = time.perf_counter()
        logits = self.model.logits(tensor.unsqueeze(0))[0]
        inferred = time.perf_counter()
        return {
            "predictions": self.top_k(logits, top_k),
            "model": self.model.info(),
            "timing_ms": {
                "preprocess": round((preprocessed - started) * 1000, 3),
                "inference": round((inferred - preprocessed) * 1000, 3),
            },
        }

    def top_k(self, logits: torch.Tensor, k: int) -> list[dict]:
        probabilities = torch.softmax(logits.float(), dim=0)
        scores, indices = torch.topk(probabilities, k=min(k, probabilities.numel()))
        return [
            {"label": self.model.labels[i], "class_id": int(i), "score": float(s)}
            for s, i in zip(scores.tolist(), indices.tolist())
        ]
