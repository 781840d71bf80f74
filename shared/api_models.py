"""The job's status enum and the JSON shapes of requests and responses.

These pydantic models validate what the web tier accepts, describe what it answers
and generate the OpenAPI document, so the three never drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class JobStatus(StrEnum):
    """Where a job is in its life. The only place statuses are defined."""

    QUEUED = "queued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @classmethod
    def from_celery_state(cls, state: str) -> JobStatus:
        """Map a Celery task state onto a job status. PENDING means "no result yet";
        it reads as `queued` only for ids the web tier has recorded."""
        return _CELERY_STATES.get(state, cls.QUEUED)


class BatchStatus(StrEnum):
    """A batch is `running` until every item has ended (`succeeded`, whatever each
    item's outcome) or it is `cancelled` (its unfinished items end cancelled)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self is not BatchStatus.RUNNING


_CELERY_STATES = {
    "PENDING": JobStatus.QUEUED,
    "RECEIVED": JobStatus.QUEUED,
    "RETRY": JobStatus.QUEUED,
    "STARTED": JobStatus.STARTED,
    "SUCCESS": JobStatus.SUCCEEDED,
    "FAILURE": JobStatus.FAILED,
    "REVOKED": JobStatus.FAILED,
    "REJECTED": JobStatus.FAILED,
}

TOP_K_DEFAULT = 5
# Longest URL resq takes, to fetch an image or to send a webhook to.
MAX_URL_LENGTH = 2048
TOP_K_MAX = 20
# Longest `deadline_seconds` a job may ask for: a day, as long as a job record lives
# by default.
DEADLINE_MAX_SECONDS = 86_400
WebhookEvent = Literal["started", "completed"]


class InputForm(StrEnum):
    """How an image reached `POST /jobs`."""

    MULTIPART = "multipart"
    RAW = "raw"
    URL = "url"


# --- requests ------------------------------------------------------------------


class SubmitOptions(BaseModel):
    """Options of `POST /jobs`, from the query string (or the JSON body)."""

    model_config = ConfigDict(extra="ignore")

    top_k: int = Field(TOP_K_DEFAULT, ge=1, le=TOP_K_MAX,
                       description="How many predictions to return.")
    webhook: str | None = Field(
        None, max_length=MAX_URL_LENGTH, json_schema_extra={"format": "uri"},
        description="http(s) URL that gets the finished job (the body of GET /jobs/<id>) "
                    "by POST, signed as Standard Webhooks 1.0 has it (https; http only to "
                    "WEBHOOK_HTTP_NETWORKS).")
    webhook_events: list[WebhookEvent] = Field(
        ["completed"], min_length=1,
        description="When the webhook is sent: `completed` (the job ended), `started` (a "
                    "worker began it), or both; comma-separated in a query string.")
    deadline_seconds: float | None = Field(
        None, gt=0, le=DEADLINE_MAX_SECONDS,
        description="Seconds the job may wait in the queue: one not started by then is "
                    "never run and ends `failed` with code `expired` (the server's "
                    "JOB_MAX_QUEUE_SECONDS bounds it too).")

    @field_validator("webhook_events", mode="before")
    @classmethod
    def _split_events(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class UrlSubmission(SubmitOptions):
    """JSON body of `POST /jobs` that names an image by URL."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL of the image; fetched by the web tier.",
                     json_schema_extra={"format": "uri"})


# --- responses -----------------------------------------------------------------


class Prediction(BaseModel):
    label: str = Field(description="ImageNet-1k class name shipped with the weights.")
    class_id: int = Field(ge=0, description="Index of the class in the model's output.")
    score: float = Field(ge=0, le=1, description="Softmax probability.")


class ModelInfo(BaseModel):
    name: str = Field(examples=["resnet50"])
    weights: str = Field(description="`IMAGENET1K_V2`, `random`, or the state_dict file name.")
    precision: Literal["fp32", "bf16", "int8"]
    # Results stored before engines existed were all torch's: they read as such.
    engine: Literal["openvino", "torch"] = Field("torch", description="What ran the model.")


class Timing(BaseModel):
    """Milliseconds spent in each stage."""

    queued: float = Field(description="From acceptance by the web tier to a worker taking it.")
    preprocess: float
    inference: float
    total: float = Field(description="From acceptance to the result being ready.")


class JobResult(BaseModel):
    predictions: list[Prediction] = Field(description="Ordered by score, highest first.")
    model: ModelInfo
    timing_ms: Timing
    cached: bool = Field(False, description="The same image (the same bytes) was classified "
                                            "before by the same model, and its result was "
                                            "reused (`RESULT_CACHE`): no decode, no model.")


class ErrorDetail(BaseModel):
    code: str = Field(description="A machine word, e.g. `bad_image`.")
    message: str = Field(description="For a person.")
    details: list[dict] | None = Field(None, description="Per-field problems, for `invalid_field`.")


class ErrorResponse(BaseModel):
    """Every error response, whatever its status."""

    error: ErrorDetail


class Job(BaseModel):
    """`GET /jobs/<id>`; the same fields every time."""

    id: str
    status: JobStatus
    created_at: float = Field(description="Unix time the web tier accepted the job.")
    top_k: int
    result: JobResult | None = Field(None, description="Set when `status` is `succeeded`.")
    error: ErrorDetail | None = Field(None, description="Set when `status` is `failed`.")


class QueueLoad(BaseModel):
    """`GET /scaling`: what the queue asks of its workers (KEDA reads `open`)."""

    queue: str
    waiting: dict[str, int] = Field(description="Jobs waiting in each lane's list: "
                                                "`interactive` and `batch`.")
    open: int = Field(ge=0, description="Jobs accepted and not ended: waiting, held by a "
                                        "worker or running, and batch items not yet "
                                        "released into the queue.")
    unreleased: int = Field(0, ge=0, description="Of those, batch items not yet "
                                                 "released into the batch lane.")


class JobList(BaseModel):
    """`POST /jobs` with several `image` parts: one job per image, in order."""

    jobs: list[Job]


class BatchUrlSubmission(SubmitOptions):
    """`POST /batches` as JSON: one item per URL, each fetched by a worker when its
    turn comes (behind the same SSRF guard as a URL job)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1, description="http(s) URLs of the images, in "
                                                      "order; at most BATCH_MAX_ITEMS.")

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or not url.startswith(
                    ("http://", "https://")):
                raise ValueError(f"each URL is an http(s) URL of at most {MAX_URL_LENGTH} "
                                 "characters")
        return urls


class BatchCounts(BaseModel):
    status: dict[str, int] = Field(description="Items by job status (every status, "
                                               "0 included).")
    error: dict[str, int] = Field(description="Failed items by error code.")


class Batch(BaseModel):
    """`GET /batches/<id>`: a batch's progress. Each item is a job of its own
    (`GET /jobs/<batch id>.<index>`)."""

    id: str
    status: BatchStatus
    total: int = Field(description="Items in the batch.")
    counts: BatchCounts
    created_at: float = Field(description="Unix time the web tier accepted the batch.")
    finished_at: float | None = Field(None, description="When its last item ended.")
    eta_seconds: float | None = Field(None, description="Seconds until every item has "
                                                        "ended, at the rate items are "
                                                        "ending now; null until two have.")
    top_k: int


class BatchResultLine(BaseModel):
    """One line of `GET /batches/<id>/results` (JSON Lines), in the order items ended."""

    index: int = Field(description="The item's place in the submission, from 0.")
    id: str = Field(description="The item's job id.")
    input: str = Field(description="Its URL, or the name of its file.")
    status: JobStatus
    result: JobResult | None = None
    error: ErrorDetail | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
