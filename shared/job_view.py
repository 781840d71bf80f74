"""A job as clients see it (`shared.jobs.Job`), built from its record and the state
and payload Celery stored: what `GET /jobs/<id>` answers and what a webhook sends."""

from __future__ import annotations

from shared.errors import JobCancelled, ResqError, WorkerLost, error_from_dict
from shared.job_records import JobRecord
from shared.jobs import ErrorDetail, Job, JobResult, JobStatus


def job_from(record: JobRecord, state: str, payload) -> Job:
    status = JobStatus.from_celery_state(state)
    result = error = None
    if status is JobStatus.SUCCEEDED:
        result = JobResult.model_validate(payload)
    elif status is JobStatus.FAILED:
        error = ErrorDetail(**error_of(state, payload))
    return Job(id=record.id, status=status, created_at=record.created_at,
               top_k=record.top_k, result=result, error=error)


def error_of(state: str, payload) -> dict:
    """A failed job's `{"code", "message"}`, whatever form Celery stored it in."""
    if state == "REVOKED":
        return JobCancelled().to_dict()
    if isinstance(payload, ResqError):
        return payload.to_dict()
    if isinstance(payload, dict):
        return error_from_dict(payload)
    if payload is not None and type(payload).__name__ == "WorkerLostError":
        return WorkerLost().to_dict()
    return {"code": "inference_failed",
            "message": f"the job failed: {type(payload).__name__}: {payload}"}
