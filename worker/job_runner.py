"""What the classify task does, as a plain class the task delegates to."""

from __future__ import annotations

import logging
import time

from shared.errors import BadImage
from shared.job_records import JobRecords
from worker.classifier import Classifier

log = logging.getLogger(__name__)


class JobCancelledBeforeRun(Exception):
    """The job was cancelled; its REVOKED state is stored and nothing is returned."""


class JobRunner:
    def __init__(self, records: JobRecords, classifier: Classifier):
        self.records = records
        self.classifier = classifier

    def run(self, job_id: str, top_k: int, created_at: float) -> dict:
        taken = time.time()
        record = self.records.get(job_id)
        if record is not None and record.cancelled:
            raise JobCancelledBeforeRun(job_id)
        data = self.records.load_image(job_id)
        if data is None:
            raise BadImage("the job's image has expired or was removed before it ran")
        result = self.classifier.classify(data, top_k)
        batch_size = result.pop("batch_size")
        if self.records.is_cancelled(job_id):
            raise JobCancelledBeforeRun(job_id)
        finished = time.time()
        result["timing_ms"] = {
            "queued": round(max(0.0, taken - created_at) * 1000, 3),
            **result["timing_ms"],
            "total": round(max(0.0, finished - created_at) * 1000, 3),
        }
        log.info("job %s classified in a batch of %d", job_id, batch_size)
        return result
