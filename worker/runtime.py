"""The model runtime of a worker process: loaded, compiled and warmed up once, before
the worker takes its first job, and shared by all the job threads."""

from __future__ import annotations

import logging
import threading

import torch

from shared.settings import Settings
from worker.batching import Batcher
from worker.classifier import Classifier
from worker.compiled import CompiledModelCache, file_digest
from worker.cores import usable_cores
from worker.model import RANDOM_SEED, load_model
from worker.precision import resolve_precision
from worker.weights import WeightsSource, resolve_weights

log = logging.getLogger(__name__)

_lock = threading.Lock()
_classifier: Classifier | None = None


def torch_threads(settings: Settings) -> int:
    """Model threads: the setting, else every core this worker may use."""
    return settings.torch_threads or usable_cores()


def weights_identity(source: WeightsSource) -> str:
    return f"random-seed-{RANDOM_SEED}" if source.is_random else file_digest(source.path)


def build_classifier(settings: Settings) -> Classifier:
    torch.set_num_threads(torch_threads(settings))
    source = resolve_weights(settings.model_weights, download=False)
    precision = resolve_precision(settings.model_precision)
    compiler = None
    if settings.model_compile:
        cache = CompiledModelCache(settings.compile_cache_dir, weights_identity(source),
                                   settings.batch_max_size)
        compiler = cache.compiler(precision)
    model = load_model(source, precision, compiler=compiler)
    model.warm_up((1, settings.batch_max_size))
    batcher = Batcher(model.logits, max_size=settings.batch_max_size,
                      max_wait_seconds=settings.batch_max_wait_ms / 1000)
    log.info("runtime ready: %s, %d model threads, batches of up to %d",
             "compiled" if model.compiled else "eager", torch.get_num_threads(),
             settings.batch_max_size)
    return Classifier(model, batcher, settings.max_image_pixels)


def load_runtime(settings: Settings) -> Classifier:
    """The process's classifier, built on the first call."""
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = build_classifier(settings)
        return _classifier
