"""The model runtime of a worker process: loaded, compiled and warmed up once, before
the worker takes its first job, and shared by all the job threads."""

from __future__ import annotations

import io
import logging
import threading

import torch
from PIL import Image

from shared.capacity import usable_cores
from shared.settings import Settings
from worker import metrics
from worker.batching import Batcher, BatchRunner
from worker.classifier import Classifier
from worker.compiled import CompiledModelCache, file_digest
from worker.model import RANDOM_SEED, LoadedModel, load_model
from worker.precision import resolve_precision
from worker.preprocess import preprocess
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
    compiler = compiler_cache = None
    if settings.model_compile:
        compiler_cache = CompiledModelCache(settings.compile_cache_dir, weights_identity(source),
                                            settings.batch_max_size)
        compiler = compiler_cache.compiler(precision)
    model = load_model(source, precision, compiler=compiler)
    runner = batch_runner(model, settings)
    # Warm up on the batch thread's own path: the first calls of a compiled model
    # with a new batch size are slow.
    runner.run([warm_up_image()] * settings.batch_max_size)
    runner.run([warm_up_image()])
    runner.on_batch = metrics.batch_ran  # counted from here: warm-up batches are not jobs
    metrics.MODEL_LOAD.set(model.load_seconds)
    metrics.MODEL_COMPILE.set(compiler_seconds(compiler_cache) if model.compiled else 0.0)
    metrics.MODEL_INFO.labels(weights=model.weights_name, precision=model.precision,
                              compiled=str(model.compiled).lower()).set(1)
    batcher = Batcher(runner, max_size=settings.batch_max_size,
                      max_wait_seconds=settings.batch_max_wait_ms / 1000)
    log.info("runtime ready: %s, %d model threads, batches of up to %d",
             "compiled" if model.compiled else "eager", torch.get_num_threads(),
             settings.batch_max_size)
    return Classifier(model, batcher, deadline_seconds=settings.worker_stall_seconds)


def compiler_seconds(cache: CompiledModelCache | None) -> float:
    return cache.compile_seconds if cache is not None else 0.0


def batch_runner(model: LoadedModel, settings: Settings) -> BatchRunner:
    """Decode with as many threads as the model has cores, then run the model."""
    pixels, decode_bytes = settings.max_image_pixels, settings.max_decode_bytes
    return BatchRunner(lambda data: preprocess(data, pixels, max_decode_bytes=decode_bytes),
                       model.logits,
                       threads=torch.get_num_threads())


def warm_up_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 128)).save(buffer, "JPEG")
    return buffer.getvalue()


def loaded_runtime() -> Classifier | None:
    """The process's classifier if it has been built (no loading here)."""
    return _classifier


def load_runtime(settings: Settings) -> Classifier:
    """The process's classifier, built on the first call."""
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = build_classifier(settings)
        return _classifier
