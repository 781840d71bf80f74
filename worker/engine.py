"""What runs the model (`MODEL_ENGINE`): the interface both engines meet, and the
choice between them.

An engine takes a batch of uint8 N×224×224×3 crops (what `worker.preprocess`
makes) and returns float32 N×1000 logits; the normalisation is the engine's own.
`auto` is OpenVINO (`worker.openvino_engine`: several times the images per core of
torch on the same CPU, int8 available), falling back to torch
(`worker.torch_engine`) with a warning where OpenVINO cannot load.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from worker.precision import resolve_precision
from worker.settings import ModelEngine, WorkerSettings

log = logging.getLogger(__name__)


class Engine(Protocol):
    name: str  # "openvino" or "torch"
    precision: str  # "fp32", "bf16" or "int8"
    weights_name: str
    compiled: bool
    labels: tuple[str, ...]
    load_seconds: float

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 N×224×224×3 → float32 N×1000 logits."""

    def info(self) -> dict:
        """The job result's `model` field."""


class EngineUnavailable(RuntimeError):
    """The engine cannot run on this machine (not installed, or it fails to load)."""


def model_info(engine: Engine) -> dict:
    return {"name": "resnet50", "weights": engine.weights_name, "precision": engine.precision,
            "engine": engine.name}


def load_engine(settings: WorkerSettings, threads: int) -> Engine:
    precision = resolve_precision(settings.model_precision)
    if settings.model_engine is ModelEngine.TORCH:
        from worker.torch_engine import load_torch_engine

        return load_torch_engine(settings, precision, threads)
    from worker.openvino_engine import load_openvino_engine

    try:
        return load_openvino_engine(settings, precision, threads)
    except EngineUnavailable as error:
        if settings.model_engine is ModelEngine.OPENVINO or precision == "int8":
            raise
        log.warning("OpenVINO cannot run here (%s); running the model with torch", error)
    from worker.torch_engine import load_torch_engine

    return load_torch_engine(settings, precision, threads)
