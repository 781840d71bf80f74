"""What the classify task does, as a plain class the task delegates to: given the
job's image and crash count (read when the job was started), check the count,
classify the image in a batch and add the timings.
It changes no job state: the task ends the job through the job store."""

from __future__ import annotations

import logging
import time

from shared.errors import BadImage, JobKilledWorker
from shared.job_data.cache import CACHED_PREDICTIONS, ResultCache, image_digest
from shared.job_data.records import JobRecords
from worker import metrics
from worker.classifier import Classifier

log = logging.getLogger(__name__)


class _CrashCount:
    """Charges a job with a crash while its batch runs (see `worker.batching`)."""

    def __init__(self, records: JobRecords, job_id: str):
        self.records = records
        self.job_id = job_id

    def batch_started(self) -> None:
        self.records.batch_started(self.job_id)

    def batch_ended(self) -> None:
        self.records.batch_ended(self.job_id)


class JobHandler:
    def __init__(self, records: JobRecords, classifier: Classifier, *, max_attempts: int,
                 cache: ResultCache | None = None, scope: str | None = None):
        self.records = records
        self.classifier = classifier
        self.max_attempts = max_attempts
        # The result cache and the job's scope in it; no lookup without both, or
        # without a model identity (a stand-in classifier has none).
        model = getattr(classifier, "identity", "")
        self.cache = cache if scope is not None and model else None
        self.scope, self.model_key = scope, model

    def run(self, job_id: str, top_k: int, created_at: float, *, image: bytes | None,
            crashes: int, interactive: bool = False) -> dict:
        taken = time.time()
        metrics.QUEUE_WAIT.observe(max(0.0, taken - created_at))
        if image is None:
            raise BadImage("the job's image has expired or was removed before it ran")
        data = image
        if crashes >= self.max_attempts:
            log.error("job %s: its worker died in each of its %d attempts; failing it",
                      job_id, crashes)
            raise JobKilledWorker(f"the worker died each of the {crashes} times it ran this "
                                  f"job; it is not tried again")
        digest = image_digest(data) if self.cache is not None else ""
        if self.cache is not None:
            entry = self.cache.get(self.model_key, self.scope, digest)
            metrics.cache_looked_up(entry is not None)
            if entry is not None:
                log.info("job %s: its image's result is reused from the cache", job_id,
                         extra={"job_id": job_id})
                return self._result(entry["predictions"][:top_k], entry["model"], 0.0, 0.0,
                                    created_at, taken, cached=True)
        # A job charged with a crash runs in a batch of its own: if it is what kills
        # workers, no other job is charged with its crashes.
        wanted = max(top_k, CACHED_PREDICTIONS) if self.cache is not None else top_k
        done = self.classifier.classify(data, wanted, alone=crashes > 0,
                                        watch=_CrashCount(self.records, job_id),
                                        urgent=interactive)
        if self.cache is not None:
            self.cache.put(self.model_key, self.scope, digest, done.predictions, done.model)
        log.info("job %s classified in a batch of %d", job_id, done.batch_size,
                 extra={"job_id": job_id, "batch_size": done.batch_size})
        return self._result(done.predictions[:top_k], done.model, done.preprocess_ms,
                            done.inference_ms, created_at, taken)

    @staticmethod
    def _result(predictions: list[dict], model: dict, preprocess_ms: float,
                inference_ms: float, created_at: float, taken: float, *,
                cached: bool = False) -> dict:
        finished = time.time()
        return {
            "predictions": predictions,
            "model": model,
            "timing_ms": {
                "queued": round(max(0.0, taken - created_at) * 1000, 3),
                "preprocess": preprocess_ms,
                "inference": inference_ms,
                "total": round(max(0.0, finished - created_at) * 1000, 3),
            },
            "cached": cached,
        }
