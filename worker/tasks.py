"""The worker's tasks, thin: classify hands the job to `JobRunner`; a finished job
with a webhook gets a delivery task (`worker.webhooks`)."""

from __future__ import annotations

import logging

from celery import Celery, Task
from celery.exceptions import Ignore

from shared.celery_app import CLASSIFY_TASK, WEBHOOK_TASK, webhook_queue
from shared.errors import ResqError
from shared.job_records import JobRecords
from shared.url_guard import AddressPolicy
from worker import metrics
from worker.job_runner import JobCancelledBeforeRun, JobRunner
from worker.runtime import load_runtime
from worker.webhooks import DeliveryFailed, WebhookSender

MAX_BACKOFF_SECONDS = 60
log = logging.getLogger(__name__)


def register_tasks(app: Celery, settings, records: JobRecords) -> None:
    def finished(job_id: str) -> None:
        """Tidy up after a stored result. Nothing here may fail the job: its result
        is stored already (a leftover record or image expires with the TTL)."""
        try:
            if records.finish(job_id):  # it has a webhook
                app.send_task(WEBHOOK_TASK, args=[job_id],
                              queue=webhook_queue(settings.queue_name))
        except Exception:
            log.exception("could not tidy up after job %s", job_id, extra={"job_id": job_id})

    class ClassifyTask(Task):
        # Runs after the result is stored (and before the message is acked).
        def on_success(self, retval, task_id, args, kwargs):
            finished(task_id)
            metrics.job_finished("succeeded")

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            finished(task_id)
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
            finished(self.request.id)
            metrics.job_finished("cancelled", "cancelled")
            raise Ignore() from None

    sender = WebhookSender(records, app.backend,
                           secret=settings.webhook_secret.get_secret_value().encode(),
                           timeout=settings.webhook_timeout_seconds,
                           policy=AddressPolicy(settings.url_fetch_allow_networks))

    @app.task(name=WEBHOOK_TASK, bind=True, max_retries=settings.webhook_max_attempts - 1,
              acks_late=True)
    def deliver_webhook(self, job_id: str) -> bool:
        try:
            delivered = sender.deliver(job_id)
        except DeliveryFailed as error:
            if self.request.retries >= self.max_retries:
                metrics.WEBHOOKS.labels(outcome="gave_up").inc()
                raise
            metrics.WEBHOOKS.labels(outcome="retried").inc()
            raise self.retry(countdown=min(2 ** self.request.retries, MAX_BACKOFF_SECONDS),
                             exc=error) from None
        metrics.WEBHOOKS.labels(outcome="delivered" if delivered else "refused").inc()
        return delivered
