"""The classify task: thin, it hands the job to `JobRunner`."""

from __future__ import annotations

from celery import Celery, Task
from celery.exceptions import Ignore

from shared.celery_app import CLASSIFY_TASK
from shared.errors import ResqError
from shared.job_records import JobRecords
from worker import metrics
from worker.job_runner import JobCancelledBeforeRun, JobRunner
from worker.runtime import load_runtime


def register_tasks(app: Celery, settings, records: JobRecords) -> None:
    class ClassifyTask(Task):
        # Runs after the result is stored (and before the message is acked).
        def on_success(self, retval, task_id, args, kwargs):
            records.finish(task_id)
            metrics.job_finished("succeeded")

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            records.finish(task_id)
            code = exc.code if isinstance(exc, ResqError) else "inference_failed"
            metrics.job_finished("failed", code)

    @app.task(name=CLASSIFY_TASK, bind=True, base=ClassifyTask)
    def classify(self, top_k: int, created_at: float) -> dict:
        runner = JobRunner(records, load_runtime(settings),
                           max_attempts=settings.job_max_attempts)
        try:
            return runner.run(self.request.id, top_k, created_at)
        except JobCancelledBeforeRun:
            self.backend.mark_as_revoked(self.request.id, "cancelled", request=self.request)
            records.finish(self.request.id)
            metrics.job_finished("cancelled", "cancelled")
            raise Ignore() from None
