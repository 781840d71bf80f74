"""The model runtime of one pool process: loaded once, when the process starts,
and used by every job that process runs."""

from __future__ import annotations

import logging
import os
import threading

import torch

from shared.settings import Settings
from worker.classifier import Classifier
from worker.model import load_model
from worker.precision import resolve_precision
from worker.weights import resolve_weights

log = logging.getLogger(__name__)

_lock = threading.Lock()
_classifier: Classifier | None = None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_threads(settings: Settings) -> int:
    """Intra-op threads for one pool process, so that pool × threads ≤ cores."""
    if settings.torch_threads:
        return settings.torch_threads
    return max(1, usable_cores() // settings.worker_concurrency)


def load_runtime(settings: Settings) -> Classifier:
    """Load the model for this process (once; later calls return the same one)."""
    global _classifier
    with _lock:
        if _classifier is None:
            torch.set_num_threads(torch_threads(settings))
            source = resolve_weights(settings.model_weights, download=False)
            model = load_model(source, resolve_precision(settings.model_precision))
            _classifier = Classifier(model, settings.max_image_pixels)
        return _classifier


def loaded_runtime() -> Classifier | None:
    return _classifier
