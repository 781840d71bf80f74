"""The model runtime of a worker process: loaded, compiled and warmed up once, before
the worker takes its first job, and shared by all the job threads."""

from __future__ import annotations

import hashlib
import io
import logging
import threading

from PIL import Image

from shared.capacity import usable_cores
from worker import metrics
from worker.batch_pipeline import BatchPipeline
from worker.batching import Batcher
from worker.classifier import Classifier
from worker.engine import Engine, load_engine
from worker.preprocess import preprocess
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_classifier: Classifier | None = None


def torch_threads(settings: WorkerSettings) -> int:
    """Model threads (either engine's): the setting, else every core this worker may
    use."""
    return settings.torch_threads or usable_cores()


def build_classifier(settings: WorkerSettings) -> Classifier:
    threads = torch_threads(settings)
    engine = load_engine(settings, threads)
    pipeline = batch_pipeline(engine, settings, threads)
    # Warm up on the batch thread's own path: the first calls of a compiled model
    # with a new batch size are slow.
    pipeline.run([warm_up_image()] * settings.batch_max_size)
    pipeline.run([warm_up_image()])
    pipeline.on_batch = metrics.batch_ran  # counted from here: warm-up batches are not jobs
    metrics.MODEL_LOAD.set(engine.load_seconds)
    metrics.MODEL_COMPILE.set(engine.compile_seconds if engine.compiled else 0.0)
    metrics.MODEL_INFO.labels(engine=engine.name, weights=engine.weights_name,
                              precision=engine.precision,
                              compiled=str(engine.compiled).lower()).set(1)
    overlap = settings.batch_overlap
    batcher = Batcher(pipeline, max_size=settings.batch_max_size,
                      max_wait_seconds=settings.batch_max_wait_ms / 1000, overlap=overlap)
    log.info("runtime ready: %s engine, %s, %s, %d model threads, batches of up to %d, "
             "decoding %s", engine.name, engine.precision,
             "compiled" if engine.compiled else "eager", threads, settings.batch_max_size,
             "beside the model" if overlap else "between batches")
    return Classifier(engine, batcher, deadline_seconds=settings.worker_stall_seconds,
                      identity=model_identity(settings, engine))


def model_identity(settings: WorkerSettings, engine: Engine) -> str:
    """What the result cache keys this worker's results by: its weights' digest, engine,
    precision and the preprocessing's version. Two workers with the same identity give
    the same predictions for the same bytes."""
    from worker.preprocess import PREPROCESS_VERSION
    from worker.weights import resolve_weights, weights_identity

    weights = weights_identity(resolve_weights(settings.model_weights, download=False))
    parts = [weights, engine.name, engine.precision, PREPROCESS_VERSION]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def batch_pipeline(engine: Engine, settings: WorkerSettings, threads: int) -> BatchPipeline:
    """Decode with as many threads as the model has cores, then run the model."""
    pixels, decode_bytes = settings.max_image_pixels, settings.max_decode_bytes
    return BatchPipeline(lambda data: preprocess(data, pixels, max_decode_bytes=decode_bytes),
                       engine.infer, threads=threads)


def warm_up_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 128)).save(buffer, "JPEG")
    return buffer.getvalue()


def loaded_classifier() -> Classifier | None:
    """The process's classifier if it has been built (no loading here)."""
    return _classifier


def load_classifier(settings: WorkerSettings) -> Classifier:
    """The process's classifier, built on the first call."""
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = build_classifier(settings)
        return _classifier
