"""`/batches`: many images in one submission (`web/batch_intake.py`), its progress,
its results as JSON Lines, and its cancel. Each item is a job (`/jobs/<id>`)."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, g, jsonify, request, stream_with_context

from shared.errors import InvalidField
from web import metrics
from web.auth import authenticate
from web.body_budget import reserve
from web.event_stream import State, stream_response
from web.idempotency import check_key
from web.services import services

bp = Blueprint("batches", __name__)
bp.before_request(authenticate)
# Lines read from Redis at a time while a results stream is written.
RESULTS_PAGE = 500
# How often a followed results stream looks for items that ended since.
FOLLOW_EVERY_SECONDS = 0.25


@bp.before_request
def reserve_body():
    """A batch's body is read only once this process's body budget holds it."""
    if request.endpoint != "batches.submit":
        return
    intake = services().batch_intake
    g.body_reservation = reserve(services().body_budget, request,
                                 intake.max_body_bytes(request))


@bp.teardown_request
def release_body(_error=None):
    reservation = g.pop("body_reservation", None)
    if reservation is not None:
        reservation.release()


def _batch_response(batch, status: int):
    response = jsonify(batch.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = f"/batches/{batch.id}"
    return response


@bp.post("/batches")
def submit():
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = check_key(key)
    submission = services().batch_intake.read(request)
    batch, replayed = services().batches.submit(submission, g.owner, key)
    del submission
    release_body()  # the images are in Redis
    response = _batch_response(batch, 202)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/batches/<batch_id>")
def get(batch_id: str):
    return _batch_response(services().batches.get(batch_id, g.owner), 200)


@bp.delete("/batches/<batch_id>")
def cancel(batch_id: str):
    return _batch_response(services().batches.cancel(batch_id, g.owner), 200)


@bp.get("/batches/<batch_id>/events")
def events(batch_id: str):
    """The batch's progress as Server-Sent Events (`web/event_stream.py`): its status
    and counts, at most 2 a second, until it ends."""
    service, owner = services().batches, g.owner
    service.record(batch_id, owner)  # 404 now, before the stream starts

    def read() -> State:
        batch = service.get(batch_id, owner)
        ended = batch.counts.status["succeeded"] + batch.counts.status["failed"]
        terminal = batch.status.is_terminal()
        return State(id=ended + int(terminal), event="batch",
                     data=batch.model_dump(mode="json"), terminal=terminal)

    return stream_response(read, slots=services().wait_slots, key=_slot_key(),
                           max_seconds=services().settings.batch_stream_max_seconds,
                           kind="batch")


def _slot_key() -> str | None:
    return g.owner if services().api_keys.enabled else None


def _after() -> int:
    raw = request.args.get("after", "0")
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidField("after: the number of result lines already read (0 or more)",
                           details=[{"field": "after", "message": "a whole number >= 0"}])
    return int(raw)


@bp.get("/batches/<batch_id>/results")
def results(batch_id: str):
    """JSON Lines, one per ended item in the order they ended, from line `after`. While
    the batch runs the stream stays open and each item is written as it ends, for
    up to `BATCH_STREAM_MAX_SECONDS` and while a wait slot of this process is free
    (`WAIT_MAX_CONCURRENT`); it ends when the batch has, and a client resumes with
    `?after=<lines it has>`."""
    service, owner, after = services().batches, g.owner, _after()
    service.record(batch_id, owner)  # 404 now, before the stream starts
    key, limit = _slot_key(), services().settings.batch_stream_max_seconds

    def lines():
        cursor = after
        with services().wait_slots.hold(key) as follow, metrics.stream_open("results"):
            deadline = time.monotonic() + (limit if follow else 0)
            while True:
                page, cursor, record = service.results(batch_id, owner, cursor, RESULTS_PAGE)
                for line in page:
                    yield json.dumps(line.model_dump(mode="json", exclude_none=True),
                                     separators=(",", ":")) + "\n"
                if page:
                    continue
                if record.status.is_terminal() and cursor >= record.ended:
                    return
                if time.monotonic() >= deadline:
                    return
                time.sleep(FOLLOW_EVERY_SECONDS)

    return Response(stream_with_context(lines()), mimetype="application/jsonl",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
