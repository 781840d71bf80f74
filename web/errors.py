"""The one place where errors become HTTP responses: every `ResqError`, every
werkzeug HTTP error and anything unexpected leaves as the JSON error body."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shared.errors import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, ResqError
from web import metrics
from web.rate_limits import as_resq_error

log = logging.getLogger(__name__)

_HTTP_TO_RESQ = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def error_response(error: ResqError):
    metrics.rejected(error.code)
    response = jsonify({"error": error.to_dict()})
    response.status_code = error.status_code
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="resq"'
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ResqError)
    def _resq(error: ResqError):
        return error_response(error)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded):
        return error_response(as_resq_error(app.extensions.get("resq.limiter"), error))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge):
        return error_response(PayloadTooLarge(
            f"the request body is over the limit of {app.config['RESQ_MAX_UPLOAD_BYTES']} bytes"))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        cls = _HTTP_TO_RESQ.get(error.code)
        if cls is not None:
            return error_response(cls(error.description if error.code == 400 else None))
        generic = ResqError(error.description)
        generic.status_code = error.code or 500
        generic.code = (error.name or "error").lower().replace(" ", "_")
        return error_response(generic)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return error_response(ResqError())
