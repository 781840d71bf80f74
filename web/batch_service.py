"""Batches for the web tier: create one from what `BatchIntake` read, read its
progress and results, cancel it. The batch itself lives in `shared.job_data.batches`;
each of its items is a job that `JobService` reads like any other."""

from __future__ import annotations

import hmac

from shared.api_models import Batch, BatchResultLine
from shared.errors import BatchNotFound
from shared.job_data.batches import BatchRecord
from shared.job_data.records import new_job_id
from web import metrics
from web.batch_intake import BatchSubmission
from web.job_service import JobService, redis_guard


class BatchService:
    def __init__(self, jobs: JobService):
        self.jobs = jobs
        self.settings = jobs.settings
        self.batches = jobs.store.batches

    def submit(self, submission: BatchSubmission, owner: str = "",
               idempotency_key: str | None = None) -> tuple[Batch, bool]:
        """Store the batch and release its first items; the batch as it is then, or
        (with an `Idempotency-Key` seen before for the same request) the batch that
        key made, and whether it is that one. `QueueFull` (503) when its images would
        pass `QUEUE_MAX_BYTES`."""
        batch_id = new_job_id()
        if idempotency_key is None:
            return self._create(submission, owner, batch_id), False
        idempotency = self.jobs.idempotency
        with redis_guard():
            earlier = idempotency.claim(owner, idempotency_key, submission.fingerprint(),
                                        batch_id)
        if earlier is not None:
            return self.get(earlier, owner), True
        try:
            return self._create(submission, owner, batch_id), False
        except Exception:
            with redis_guard():
                idempotency.release(owner, idempotency_key, batch_id)
            raise

    def _create(self, submission: BatchSubmission, owner: str, batch_id: str) -> Batch:
        options = submission.options
        with redis_guard():
            self.batches.create(
                submission.items, top_k=options.top_k, form=submission.form.value,
                owner=owner, deadline_seconds=self.jobs.deadline_seconds(
                    options.deadline_seconds),
                max_queue_bytes=self.settings.queue_max_bytes,
                webhook=options.webhook or "", webhook_events=tuple(options.webhook_events),
                batch_id=batch_id)
        metrics.batch_submitted(submission.form.value, len(submission.items))
        return self.get(batch_id, owner)

    def record(self, batch_id: str, owner: str = "") -> BatchRecord:
        """The batch's record if it exists and is `owner`'s (another key's batch is as
        good as unknown: 404)."""
        with redis_guard():
            record = self.batches.record(batch_id)
        if record is None or not hmac.compare_digest(record.owner, owner):
            raise BatchNotFound()
        return record

    def get(self, batch_id: str, owner: str = "") -> Batch:
        self.record(batch_id, owner)
        with redis_guard():
            batch = self.batches.batch(batch_id)
        if batch is None:
            raise BatchNotFound()
        return batch

    def results(self, batch_id: str, owner: str, after: int, limit: int
                ) -> tuple[list[BatchResultLine], int, BatchRecord]:
        """Up to `limit` result lines from position `after` (the order items ended),
        the position after them, and the batch as read."""
        record = self.record(batch_id, owner)
        with redis_guard():
            lines, cursor = self.batches.results(record, after, limit,
                                                 self.jobs.store.records.get_many)
        return lines, cursor, record

    def cancel(self, batch_id: str, owner: str = "") -> Batch:
        """Every item not ended ends cancelled; an ended batch stays as it is."""
        self.record(batch_id, owner)
        with redis_guard():
            self.batches.cancel(batch_id, self.jobs.store.cancel)
        return self.get(batch_id, owner)
