"""Builds ResNet50 with its weights and labels, in the precision and memory layout
inference runs in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.models import resnet50

from worker.labels import IMAGENET_CLASSES
from worker.weights import RANDOM_SEED, WeightsSource

log = logging.getLogger(__name__)

LABELS = IMAGENET_CLASSES
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build_module(source: WeightsSource, precision: str) -> torch.nn.Module:
    """ResNet50 in eval mode, channels_last, weights in `precision`."""
    if source.is_random:
        with torch.random.fork_rng():
            torch.manual_seed(RANDOM_SEED)
            module = resnet50(weights=None)
    else:
        module = resnet50(weights=None)
        state = torch.load(source.path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        module.load_state_dict(state)
    module.eval()
    return module.to(memory_format=torch.channels_last, dtype=DTYPES[precision])


@dataclass
class LoadedModel:
    module: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    weights_name: str
    precision: str
    compiled: bool
    labels: tuple[str, ...]
    load_seconds: float

    def info(self) -> dict:
        return {"name": "resnet50", "weights": self.weights_name, "precision": self.precision}

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Float32 logits for a float32 N×3×224×224 batch."""
        batch = batch.to(dtype=DTYPES[self.precision]).contiguous(memory_format=torch.channels_last)
        return self.forward(batch).float()


def load_model(source: WeightsSource, precision: str, *,
               compiler: Callable[[torch.nn.Module], Callable] | None = None) -> LoadedModel:
    """Load the weights and, when `compiler` is given, swap in the compiled forward."""
    started = time.perf_counter()
    module = build_module(source, precision)
    forward = compiler(module) if compiler else module
    seconds = time.perf_counter() - started
    log.info("model loaded in %.2f s (weights %s, %s, %s)", seconds, source.name, precision,
             "compiled" if forward is not module else "eager")
    return LoadedModel(module=module, forward=forward, weights_name=source.name,
                       precision=precision, compiled=forward is not module, labels=LABELS,
                       load_seconds=seconds)
