"""`GET /scaling`: the queue's load as KEDA's `metrics-api` trigger reads it (the
chart points the worker ScaledObject here; `shared.queue_load` says what `open`
counts). Counts only: no job, key or owner is named, so it needs no API key, as
`/metrics` does not."""

from __future__ import annotations

from flask import Blueprint, jsonify

from shared.queue_load import read_load
from web.job_service import redis_guard
from web.services import services

bp = Blueprint("scaling", __name__)


@bp.get("/scaling")
def scaling():
    service = services().jobs
    with redis_guard():
        load = read_load(service.client, service.settings.queue_name)
    return jsonify(load.model_dump())
