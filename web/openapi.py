"""The OpenAPI 3.1 document, its schemas generated from the same pydantic models
that validate requests and shape responses (`shared.api_models`)."""

from __future__ import annotations

from typing import get_args

from pydantic.json_schema import models_json_schema

from shared.api_models import (
    DEADLINE_MAX_SECONDS,
    MAX_URL_LENGTH,
    TOP_K_DEFAULT,
    TOP_K_MAX,
    Batch,
    BatchResultLine,
    BatchUrlSubmission,
    ErrorResponse,
    Health,
    Job,
    JobList,
    QueueLoad,
    SubmitOptions,
    UrlSubmission,
    WebhookEvent,
)
from web.batch_intake import ARCHIVE_TYPES
from web.idempotency import MAX_KEY_LENGTH
from web.intake import MAX_IMAGES_PER_REQUEST

REF = "#/components/schemas/{model}"


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict:
    words = {400: "Bad image, URL or request", 401: "Missing or invalid API key",
             404: "Unknown or expired job or batch",
             409: "Idempotency-Key already used for a different request",
             413: "Body or image over the limit", 415: "Unsupported content type",
             422: "Invalid field", 429: "Rate limited", 503: "Queue unreachable or full"}
    return {str(code): _json(ErrorResponse, words[code]) for code in codes}


def _job_or_list(description: str) -> dict:
    """A job (one image), or `{"jobs": [...]}` (several `image` parts)."""
    return {"description": description, "headers": _LOCATION_OPTIONAL,
            "content": {"application/json": {"schema": {"oneOf": [_ref(Job), _ref(JobList)]}}}}


_WAIT = {
    "name": "wait", "in": "query", "required": False,
    "description": "`true` (wait up to the server's cap) or seconds to hold the request "
                   "for the result; capped by WAIT_MAX_SECONDS. When every wait slot of "
                   "the web process is taken (WAIT_MAX_CONCURRENT, WAIT_MAX_PER_KEY) the "
                   "request is answered at once, with `Retry-After: 1`: poll again.",
    "schema": {"type": "string", "pattern": r"^(true|false|yes|no|[0-9]{1,6}(\.[0-9]{1,6})?)?$",
               "examples": ["true", "10"]},
}
_PREFER = {
    "name": "Prefer", "in": "header", "required": False,
    "description": "RFC 7240 `wait=<seconds>`, as the `wait` query parameter; a value "
                   "that is not a number of seconds is ignored.",
    "schema": {"type": "string", "examples": ["wait=10"]},
}
_TOP_K = {
    "name": "top_k", "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": TOP_K_MAX, "default": TOP_K_DEFAULT},
}
_WEBHOOK = {
    "name": "webhook", "in": "query", "required": False,
    "description": "https URL that gets the finished job by POST, signed as Standard "
                   "Webhooks 1.0 has it (`webhook-id`, `webhook-timestamp`, "
                   "`webhook-signature`: see docs/clients.md); the server must have webhooks "
                   "on, and plain http goes only to its WEBHOOK_HTTP_NETWORKS.",
    "schema": {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH},
}
_EVENTS = "|".join(get_args(WebhookEvent))
_WEBHOOK_EVENTS = {
    "name": "webhook_events", "in": "query", "required": False,
    "description": "When the webhook is sent, comma-separated: `completed` (default), "
                   "`started`, or both (the body's `type` says which).",
    "schema": {"type": "string", "pattern": f"^({_EVENTS})(,({_EVENTS}))*$",
               "default": "completed"},
}
_DEADLINE = {
    "name": "deadline_seconds", "in": "query", "required": False,
    "description": "Seconds the job may wait in the queue: one not started by then never "
                   "runs and ends `failed` with code `expired`.",
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": DEADLINE_MAX_SECONDS},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": f"Any string of 1-{MAX_KEY_LENGTH} printable ASCII characters: the same "
                   "key and request "
                   "within the result TTL give the same job (with `Idempotent-Replayed: true`); "
                   "the same key with another request gives 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
               "pattern": "^[\\x20-\\x7e]+$"},
}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_LOCATION = {"Location": {"description": "/jobs/<id>", "schema": {"type": "string"}}}
_LOCATION_OPTIONAL = {"Location": {"description": "/jobs/<id> (one image only)", "required": False,
                                   "schema": {"type": "string"}}}


_LAST_EVENT_ID = {
    "name": "Last-Event-ID", "in": "header", "required": False,
    "description": "The id of the last event a client has (an EventSource sends it when "
                   "it reconnects): the state it names is not sent again.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}


def _events(operation_id: str, id_parameter: dict, model, summary: str) -> dict:
    return {"summary": summary, "operationId": operation_id,
            "parameters": [id_parameter, _LAST_EVENT_ID],
            "responses": {"200": {"description": f"`data:` is the {model.__name__}, as JSON",
                                  "content": {"text/event-stream": {
                                      "schema": {"type": "string"}}}},
                          **_errors(401, 404, 429, 503)}}


def build_openapi(version: str) -> dict:
    _, schemas = models_json_schema(
        [(m, "validation") for m in (SubmitOptions, UrlSubmission, BatchUrlSubmission)]
        + [(m, "serialization") for m in (Job, JobList, ErrorResponse, Health, QueueLoad,
                                          Batch, BatchResultLine)],
        ref_template=REF,
    )
    binary = {"type": "string", "format": "binary"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "resq", "version": version,
                 "description": "Queue-backed image classification with ResNet50."},
        "paths": {
            "/jobs": {"post": {
                "summary": "Submit one image",
                "operationId": "submitJob",
                "parameters": [_TOP_K, _WEBHOOK, _WEBHOOK_EVENTS, _DEADLINE, _WAIT, _PREFER,
                               _IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["image"],
                        "properties": {
                            "image": {"oneOf": [binary, {"type": "array", "items": binary,
                                                         "minItems": 1,
                                                         "maxItems": MAX_IMAGES_PER_REQUEST}],
                                      "description": "One image, or several (one job each)"},
                            "top_k": _TOP_K["schema"],
                            "webhook": {"type": "string", "format": "uri"},
                            "webhook_events": _WEBHOOK_EVENTS["schema"],
                            "deadline_seconds": _DEADLINE["schema"]}}},
                    "image/*": {"schema": binary},
                    "application/json": {"schema": _ref(UrlSubmission)},
                }},
                "responses": {
                    "200": _job_or_list("Finished within the wait"),
                    "202": _job_or_list("Accepted; poll the Location (each job's, for several)"),
                    **_errors(400, 401, 409, 413, 415, 422, 429, 503),
                },
            }},
            "/jobs/{job_id}": {
                "get": {
                    "summary": "Read a job (long poll with `wait`)",
                    "operationId": "getJob",
                    "parameters": [_JOB_ID, _WAIT, _PREFER],
                    "responses": {"200": _json(Job, "The job"),
                                  **_errors(401, 404, 422, 429, 503)},
                },
                "delete": {
                    "summary": "Cancel a job that has not finished",
                    "operationId": "cancelJob",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _json(Job, "The job after the cancel"),
                                  **_errors(401, 404, 429, 503)},
                },
            },
            "/batches": {"post": {
                "summary": "Submit a batch: many images, each a job, released a few at a time",
                "operationId": "submitBatch",
                "parameters": [_TOP_K, _WEBHOOK, _WEBHOOK_EVENTS, _DEADLINE, _IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(BatchUrlSubmission)},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["image"],
                        "properties": {
                            "image": {"type": "array", "items": binary, "minItems": 1,
                                      "description": "The images, one item each (at most "
                                                     "BATCH_MAX_ITEMS)"},
                            "top_k": _TOP_K["schema"],
                            "webhook": {"type": "string", "format": "uri"},
                            "webhook_events": _WEBHOOK_EVENTS["schema"],
                            "deadline_seconds": _DEADLINE["schema"]}}},
                    **{kind: {"schema": binary} for kind in sorted(ARCHIVE_TYPES)},
                }},
                "responses": {
                    "202": {**_json(Batch, "Accepted; follow the Location"),
                            "headers": {"Location": {"description": "/batches/<id>",
                                                     "schema": {"type": "string"}}}},
                    **_errors(400, 401, 409, 413, 415, 422, 429, 503),
                },
            }},
            "/batches/{batch_id}": {
                "get": {"summary": "A batch's progress: counts by status and error, ETA",
                        "operationId": "getBatch", "parameters": [_BATCH_ID],
                        "responses": {"200": _json(Batch, "The batch"),
                                      **_errors(401, 404, 429, 503)}},
                "delete": {"summary": "Cancel every item of a batch not ended",
                           "operationId": "cancelBatch", "parameters": [_BATCH_ID],
                           "responses": {"200": _json(Batch, "The batch after the cancel"),
                                         **_errors(401, 404, 429, 503)}},
            },
            "/batches/{batch_id}/results": {"get": {
                "summary": "Results as JSON Lines, in the order items ended, streamed as "
                           "they end",
                "operationId": "batchResults",
                "parameters": [_BATCH_ID, {
                    "name": "after", "in": "query", "required": False,
                    "description": "Lines already read: the stream starts after them.",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}}],
                "responses": {"200": {"description": "One BatchResultLine a line",
                                      "content": {"application/jsonl": {
                                          "schema": _ref(BatchResultLine)}}},
                              **_errors(401, 404, 422, 429, 503)}}},
            "/batches/{batch_id}/events": {"get": _events(
                "getBatchEvents", _BATCH_ID, Batch,
                "The batch's progress as Server-Sent Events (`event: batch`), at most 2 a "
                "second, until it ends")},
            "/jobs/{job_id}/events": {"get": _events(
                "getJobEvents", _JOB_ID, Job,
                "The job's status as Server-Sent Events (`event: job`), until it ends")},
            "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                                 "responses": {"200": _json(Health, "Alive")}}},
            "/readyz": {"get": {"summary": "Readiness: Redis reachable", "operationId": "readyz",
                                "responses": {"200": _json(Health, "Ready"),
                                              "503": _json(Health, "Redis unreachable")}}},
            "/scaling": {"get": {"summary": "The queue's load, as autoscaling reads it",
                                 "operationId": "scaling",
                                 "responses": {"200": _json(QueueLoad, "Jobs waiting in "
                                                            "each lane, and jobs open"),
                                               **_errors(503)}}},
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key, when the server sets API_KEYS"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        # Keys are optional: a server without API_KEYS asks for none.
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }
