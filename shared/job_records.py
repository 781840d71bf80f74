"""How a job is kept in Redis: its record (a hash) and the image bytes its message
points to. Reads and bookkeeping only: every change of a job's *state* is made
by `shared.job_store.JobStore`, atomically.

Celery reports PENDING for any id it has never seen, so the record is what tells a
queued job from an unknown one; it also holds the job's status and outcome. The
image travels beside the message (a "claim check") so the queue itself only ever
holds small messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from shared.api_models import TOP_K_DEFAULT, JobStatus

RECORD_PREFIX = "resq:job:"
IMAGE_PREFIX = "resq:image:"
# Every accepted job of a queue that has not finished, scored by when it was
# accepted: what the lost-job sweeper (`worker.redelivery`) checks against the queue.
INFLIGHT_PREFIX = "resq:inflight:"


@dataclass(frozen=True)
class JobRecord:
    id: str
    created_at: float
    top_k: int
    form: str
    status: JobStatus
    owner: str = ""
    webhook: str = ""
    result: dict | None = None
    error: dict | None = None
    lane: str = "batch"  # `shared.lanes.Lane`; records from before lanes: batch
    deadline_at: float = 0.0  # Unix time it must start by; 0: no deadline
    webhook_events: tuple[str, ...] = ("completed",)


def parse_record(job_id: str, fields: dict[bytes, bytes]) -> JobRecord | None:
    if not fields or b"created_at" not in fields or b"status" not in fields:
        return None
    return JobRecord(
        id=job_id,
        created_at=float(fields[b"created_at"]),
        top_k=int(fields.get(b"top_k", TOP_K_DEFAULT)),
        form=fields.get(b"form", b"").decode(),
        status=JobStatus(fields[b"status"].decode()),
        owner=fields.get(b"owner", b"").decode(),
        webhook=fields.get(b"webhook", b"").decode(),
        result=_json(fields.get(b"result")),
        error=_json(fields.get(b"error")),
        lane=fields.get(b"lane", b"batch").decode(),
        deadline_at=float(fields.get(b"deadline_at", 0) or 0),
        webhook_events=tuple(fields.get(b"webhook_events", b"completed").decode().split(",")),
    )


def _json(raw: bytes | None):
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class JobRecords:
    def __init__(self, client: redis.Redis, ttl_seconds: int, queue: str):
        self.client = client
        self.ttl = ttl_seconds
        self.inflight_key = INFLIGHT_PREFIX + queue

    def get(self, job_id: str) -> JobRecord | None:
        return parse_record(job_id, self.client.hgetall(RECORD_PREFIX + job_id))

    def load_image(self, job_id: str) -> bytes | None:
        return self.client.get(IMAGE_PREFIX + job_id)

    def batch_started(self, job_id: str) -> None:
        """Charge the job with a crash until `batch_ended` takes it back."""
        self._add_crashes(job_id, 1)

    def batch_ended(self, job_id: str) -> None:
        self._add_crashes(job_id, -1)

    def _add_crashes(self, job_id: str, amount: int) -> None:
        # HINCRBY on a record that expired would make one with no status: never
        # read as a job (`parse_record`), and it expires again.
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(RECORD_PREFIX + job_id, "crashes", amount)
            pipe.expire(RECORD_PREFIX + job_id, self.ttl)
            pipe.execute()

    def index_inflight(self, job_id: str, when: float) -> None:
        """Enter a sent job in the lost-job index (only `JobStore.create` does)."""
        self.client.zadd(self.inflight_key, {job_id: when})

    def stale_inflight(self, older_than: float) -> list[str]:
        """Unfinished jobs accepted (or last re-sent) before `older_than`."""
        found = self.client.zrangebyscore(self.inflight_key, "-inf", older_than)
        return [i.decode() for i in found]

    def touch_inflight(self, job_id: str, when: float) -> None:
        self.client.zadd(self.inflight_key, {job_id: when}, xx=True)

    def drop_inflight(self, job_id: str) -> None:
        self.client.zrem(self.inflight_key, job_id)
