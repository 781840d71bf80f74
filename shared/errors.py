"""resq's one error hierarchy. Each class carries its HTTP status and machine code;
the web tier turns any of them into the JSON error body in one place
(`web.errors`), and the worker stores them as a failed job's `error`."""

from __future__ import annotations


class ResqError(Exception):
    """Base of every error resq reports to a client."""

    status_code: int = 500
    code: str = "internal_error"
    default_message: str = "internal error"
    default_retry_after: int | None = None
    """Seconds a client is told to wait (`Retry-After`) unless the raiser knows better."""

    def __init__(self, message: str | None = None, *, details: list[dict] | None = None,
                 retry_after: int | None = None):
        self.message = message or self.default_message
        self.details = details
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after
        super().__init__(self.message)

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadImage(ResqError):
    status_code = 400
    code = "bad_image"
    default_message = "the body is not an image resq can decode"


class UnsupportedImageFormat(BadImage):
    code = "unsupported_image_format"
    default_message = "unsupported image format"


class BadUrl(ResqError):
    status_code = 400
    code = "bad_url"
    default_message = "the URL is not an http(s) URL resq can fetch"


class UrlFetchFailed(ResqError):
    status_code = 400
    code = "url_fetch_failed"
    default_message = "the image URL could not be fetched"


class BadRequest(ResqError):
    status_code = 400
    code = "bad_request"
    default_message = "the request is malformed"


class NotFound(ResqError):
    status_code = 404
    code = "not_found"
    default_message = "no such resource"


class JobNotFound(NotFound):
    code = "job_not_found"
    default_message = "no job with this id (unknown or expired)"


class BatchNotFound(NotFound):
    code = "batch_not_found"
    default_message = "no such batch (it may have expired)"


class ResultDropped(JobNotFound):
    code = "result_dropped"
    default_message = ("this job ended, and its result was dropped before its time to make "
                       "room for newer jobs (Redis's memory is small for this rate of jobs "
                       "and RESULT_TTL_SECONDS)")


class MethodNotAllowed(ResqError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "method not allowed on this resource"


class PayloadTooLarge(ResqError):
    status_code = 413
    code = "payload_too_large"
    default_message = "the request body is over the size limit"


class ImageTooLarge(ResqError):
    status_code = 413
    code = "image_too_large"
    default_message = "the image has more pixels than the limit"


class UnsupportedMediaType(ResqError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "send multipart/form-data, an image/* body or application/json"


class InvalidField(ResqError):
    status_code = 422
    code = "invalid_field"
    default_message = "one or more fields are invalid"


class Unauthorized(ResqError):
    status_code = 401
    code = "unauthorized"
    default_message = ("a valid API key is required: send `Authorization: Bearer <key>` "
                       "or `X-API-Key: <key>`")


class RateLimited(ResqError):
    status_code = 429
    code = "rate_limited"
    default_message = "too many requests; retry later"


class Unavailable(ResqError):
    status_code = 503
    code = "unavailable"
    default_retry_after = 5
    default_message = "the service is unavailable; retry later"


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"
    default_message = "the job queue is unreachable; retry later"


class NotReplicated(BrokerUnavailable):
    code = "not_replicated"
    default_retry_after = 2
    default_message = ("the job store's replicas did not confirm the job in time (a "
                       "failover may be under way); nothing was accepted, retry")


class ServerBusy(Unavailable):
    """This web process holds as many request bodies as its `UPLOAD_BUDGET_BYTES`
    allows; the body was not read. Another try (on this process or another) soon
    gets in."""

    code = "server_busy"
    default_retry_after = 1
    default_message = "this server is reading as many uploads as it may; retry shortly"


class QueueFull(Unavailable):
    code = "queue_full"
    default_retry_after = 10
    default_message = "too many jobs are waiting; retry later"


class QuotaExceeded(RateLimited):
    """One API key (or one address, without keys) holds its `QUEUE_MAX_PER_KEY`
    queued jobs; other keys still get in."""

    code = "quota_exceeded"
    default_retry_after = 5
    default_message = "this key has as many jobs queued as it may; retry once some have started"


class JobExpired(ResqError):
    """A failed job's error when it was not started by its deadline: it never ran."""

    status_code = 410
    code = "expired"
    default_message = "the job was not started by its deadline; it never ran"


class JobCancelled(ResqError):
    """A failed job's error when it was cancelled before it ran."""

    status_code = 409
    code = "cancelled"
    default_message = "the job was cancelled before it finished"


class IdempotencyConflict(ResqError):
    status_code = 409
    code = "idempotency_key_reused"
    default_message = ("this Idempotency-Key was used for a different request; use a new key "
                       "for a new request")


class InferenceFailed(ResqError):
    code = "inference_failed"
    default_message = "the job failed in the model"


class WorkerLost(ResqError):
    code = "worker_lost"
    default_message = "the worker processing the job died"


class WorkerStalled(ResqError):
    code = "worker_stalled"
    default_message = ("the worker stopped making progress on this job's batch; the job was "
                       "ended rather than left waiting (the worker's liveness probe restarts it)")


class JobKilledWorker(ResqError):
    code = "job_killed_worker"
    default_message = "the job's worker died every time it ran the job; it is not retried"


def error_codes() -> set[str]:
    """Every code of the hierarchy: the fixed set of a metric's `reason` or `code`."""
    codes, pending = set(), [ResqError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes


def normalised_error(body: dict | None) -> dict:
    """A failed job's stored error, normalised to `{"code", "message"}`."""
    if not isinstance(body, dict) or "code" not in body:
        return ResqError().to_dict()
    return {"code": str(body["code"]), "message": str(body.get("message", ""))}
