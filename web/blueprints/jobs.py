"""`/jobs`: translates HTTP to `JobService` calls and jobs back to JSON."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify, request

from shared.api_models import Job, JobList, JobStatus
from shared.errors import InvalidField
from web import metrics
from web.auth import authenticate
from web.body_budget import MAX_JSON_BODY_BYTES, reserve
from web.event_stream import State, stream_response
from web.idempotency import check_key
from web.rate_limits import caller_key
from web.services import services
from web.wait_param import requested_wait

bp = Blueprint("jobs", __name__)
# A request that asked to wait when no wait slot was free is answered at once: poll
# again this soon.
WAIT_DECLINED_RETRY_AFTER = 1


bp.before_request(authenticate)


@bp.before_request
def reserve_body():
    """A submission's body is read only once this process's body budget holds what it
    will cost (`web/body_budget.py`); otherwise 503 `server_busy`, the body unread."""
    if request.endpoint != "jobs.submit":
        return
    max_body = MAX_JSON_BODY_BYTES if request.mimetype == "application/json" else \
        current_app.config["MAX_CONTENT_LENGTH"]
    g.body_reservation = reserve(services().body_budget, request, max_body,
                                 fetched_bytes=current_app.config["RESQ_MAX_UPLOAD_BYTES"])


@bp.teardown_request
def release_body(_error=None):
    """Whatever happened to the request, its reservation is given back."""
    reservation = g.pop("body_reservation", None)
    if reservation is not None:
        reservation.release()


def _quota_key() -> str:
    """Who a new job counts against for `QUEUE_MAX_PER_KEY`: as for the rate limit."""
    return caller_key(g.owner if services().api_keys.enabled else None)


def _service():
    return services().jobs


def _intake():
    return services().intake


def _wait_seconds() -> tuple[float, bool]:
    return requested_wait(request.args.get("wait"), request.headers.get("Prefer"),
                          current_app.config["RESQ_WAIT_MAX_SECONDS"])


def _await(jobs: list[Job], seconds: float) -> tuple[list[Job], float | None]:
    """The jobs once finished, or as they are after `seconds`, and the seconds the
    request was allowed to wait: None when every wait slot of this process (or of
    this API key) is taken, in which case the jobs are answered as they are now."""
    if seconds <= 0 or all(job.status.is_terminal() for job in jobs):
        return jobs, seconds
    with services().wait_slots.hold(_slot_key()) as granted:
        if not granted:
            metrics.wait_declined()
            return jobs, None
        deadline = time.monotonic() + seconds
        return [_service().wait(job, max(0.0, deadline - time.monotonic()), g.owner)
                for job in jobs], seconds


def _job_response(job: Job, status: int, *, waited: float | None = 0.0, from_prefer=False):
    response = jsonify(job.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = f"/jobs/{job.id}"
    _wait_headers(response, waited, from_prefer)
    return response


def _wait_headers(response, waited: float | None, from_prefer: bool) -> None:
    if waited is None:  # asked to wait, answered at once: poll again shortly
        response.headers["Retry-After"] = str(WAIT_DECLINED_RETRY_AFTER)
    elif from_prefer:
        response.headers["Preference-Applied"] = f"wait={waited:g}"


@bp.post("/jobs")
def submit():
    wait, from_prefer = _wait_seconds()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = check_key(key)
    jobs, replayed = _create(key, wait)
    release_body()  # the images are in Redis and out of scope: a wait holds none
    jobs, waited = _await(jobs, wait)
    if len(jobs) > 1:
        response = jsonify(JobList(jobs=jobs).model_dump(mode="json"))
        response.status_code = 200 if all(job.status.is_terminal() for job in jobs) else 202
        _wait_headers(response, waited, from_prefer)
        return response
    job = jobs[0]
    status = 200 if job.status.is_terminal() else 202
    response = _job_response(job, status, waited=waited, from_prefer=from_prefer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _create(key: str | None, wait: float) -> tuple[list[Job], bool]:
    """Read the body into submissions and create their jobs: one, or (several `image`
    parts) one each, answered as `{"jobs": [...]}` in order; and whether the one job
    is an idempotent replay."""
    submissions = _intake().read(request)
    if len(submissions) == 1:
        job, replayed = _service().submit(submissions[0], g.owner, key, interactive=wait > 0,
                                          quota_key=_quota_key())
        return [job], replayed
    if key is not None:
        raise InvalidField("Idempotency-Key: send one image per request to use a key",
                           details=[{"field": "Idempotency-Key",
                                     "message": "one image per request"}])
    return _service().submit_many(submissions, g.owner, interactive=wait > 0,
                                  quota_key=_quota_key()), False


@bp.get("/jobs/<job_id>")
def get(job_id: str):
    wait, from_prefer = _wait_seconds()
    (job,), waited = _await([_service().get(job_id, g.owner)], wait)
    return _job_response(job, 200, waited=waited, from_prefer=from_prefer)


@bp.get("/jobs/<job_id>/events")
def events(job_id: str):
    """The job's status as Server-Sent Events (`web/event_stream.py`)."""
    owner = g.owner
    _service().get(job_id, owner)  # 404 now, before the stream starts

    def read() -> State:
        job = _service().get(job_id, owner)
        return State(id=list(JobStatus).index(job.status), event="job",
                     data=job.model_dump(mode="json"), terminal=job.status.is_terminal())

    return stream_response(read, slots=services().wait_slots, key=_slot_key(),
                           max_seconds=services().settings.batch_stream_max_seconds,
                           kind="job")


def _slot_key() -> str | None:
    return g.owner if services().api_keys.enabled else None


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str):
    return _job_response(_service().cancel(job_id, g.owner), 200)
