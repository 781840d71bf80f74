"""Builds ResNet50 with its weights and labels, ready for inference."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torchvision.models import ResNet50_Weights, resnet50

from worker.weights import WeightsSource

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


@dataclass
class LoadedModel:
    module: torch.nn.Module
    weights_name: str
    precision: str
    labels: tuple[str, ...]
    load_seconds: float

    def info(self) -> dict:
        return {"name": "resnet50", "weights": self.weights_name, "precision": self.precision}

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Float32 logits for a N×3×224×224 batch."""
        if self.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.module(batch).float()
        return self.module(batch)


def load_model(source: WeightsSource, precision: str) -> LoadedModel:
    started = time.perf_counter()
    module = resnet50(weights=None)
    if not source.is_random:
        state = torch.load(source.path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        module.load_state_dict(state)
    module.eval()
    seconds = time.perf_counter() - started
    log.info("model loaded", extra={"weights": source.name, "precision": precision,
                                    "seconds": round(seconds, 3)})
    return LoadedModel(module=module, weights_name=source.name, precision=precision,
                       labels=LABELS, load_seconds=seconds)
