"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify

from shared.errors import Unavailable
from web.services import services

bp = Blueprint("probes", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return jsonify({"status": "ok", "checks": {}})


@bp.get("/readyz")
def readyz():
    """Redis answers (the web tier depends on nothing else)."""
    try:
        services().jobs.ping()
    except Unavailable:
        response = jsonify({"status": "unavailable", "checks": {"redis": "unreachable"}})
        response.status_code = 503
        response.headers["Retry-After"] = str(Unavailable.default_retry_after)
        return response
    return jsonify({"status": "ok", "checks": {"redis": "ok"}})
