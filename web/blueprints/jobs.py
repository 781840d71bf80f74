"""`/jobs`: translates HTTP to `JobService` calls and jobs back to JSON."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify, request

from shared.errors import InvalidField, Unauthorized
from shared.jobs import Job, JobList
from web.idempotency import check_key
from web.waiting import requested_wait

bp = Blueprint("jobs", __name__)


@bp.before_request
def authenticate():
    """With `API_KEYS` set, every `/jobs` call needs a valid key; `g.owner` is the
    key's owner id (empty without keys)."""
    keys = current_app.extensions["resq.api_keys"]
    g.owner = ""
    if keys.enabled:
        owner = keys.owner_of(request)
        if owner is None:
            raise Unauthorized()
        g.owner = owner


def _service():
    return current_app.extensions["resq.jobs"]


def _intake():
    return current_app.extensions["resq.intake"]


def _wait_seconds() -> tuple[float, bool]:
    return requested_wait(request.args.get("wait"), request.headers.get("Prefer"),
                          current_app.config["RESQ_WAIT_MAX_SECONDS"])


def _job_response(job: Job, status: int, *, waited: float | None = None, from_prefer=False):
    response = jsonify(job.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = f"/jobs/{job.id}"
    if from_prefer and waited is not None:
        response.headers["Preference-Applied"] = f"wait={waited:g}"
    return response


@bp.post("/jobs")
def submit():
    wait, from_prefer = _wait_seconds()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = check_key(key)
    submissions = _intake().read(request)
    if len(submissions) > 1:
        return _submit_many(submissions, key, wait)
    job, replayed = _service().submit(submissions[0], g.owner, key)
    if wait > 0:
        job = _service().wait(job.id, wait, g.owner)
    status = 200 if job.status.is_terminal() else 202
    response = _job_response(job, status, waited=wait, from_prefer=from_prefer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _submit_many(submissions, key, wait: float):
    """Several `image` parts: one job each, answered as `{"jobs": [...]}` in order."""
    if key is not None:
        raise InvalidField("Idempotency-Key: send one image per request to use a key",
                           details=[{"field": "Idempotency-Key",
                                     "message": "one image per request"}])
    jobs = [_service().submit(submission, g.owner)[0] for submission in submissions]
    if wait > 0:
        deadline = time.monotonic() + wait
        jobs = [_service().wait(job.id, max(0.0, deadline - time.monotonic()), g.owner)
                for job in jobs]
    status = 200 if all(job.status.is_terminal() for job in jobs) else 202
    response = jsonify(JobList(jobs=jobs).model_dump(mode="json"))
    response.status_code = status
    return response


@bp.get("/jobs/<job_id>")
def get(job_id: str):
    wait, from_prefer = _wait_seconds()
    job = _service().wait(job_id, wait, g.owner)
    return _job_response(job, 200, waited=wait, from_prefer=from_prefer)


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str):
    return _job_response(_service().cancel(job_id, g.owner), 200)
