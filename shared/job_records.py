"""The record the web tier keeps of every job it accepted, and the image bytes
the job's message points to.

Celery reports PENDING for any id it has never seen, so the record is what tells a
queued job from an unknown one. The image travels beside the message (a "claim
check") so the queue itself only ever holds small messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

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
    cancelled: bool
    owner: str = ""
    webhook: str = ""


class JobRecords:
    def __init__(self, client: redis.Redis, ttl_seconds: int, queue: str):
        self.client = client
        self.ttl = ttl_seconds
        self.inflight_key = INFLIGHT_PREFIX + queue

    def create(self, job_id: str, *, top_k: int, form: str, image: bytes,
               owner: str = "", webhook: str = "") -> JobRecord:
        record = JobRecord(id=job_id, created_at=time.time(), top_k=top_k, form=form,
                           cancelled=False, owner=owner, webhook=webhook)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + job_id, mapping={
                "created_at": repr(record.created_at), "top_k": top_k, "form": form,
                "owner": owner, "webhook": webhook,
            })
            pipe.expire(RECORD_PREFIX + job_id, self.ttl)
            pipe.set(IMAGE_PREFIX + job_id, image, ex=self.ttl)
            pipe.zadd(self.inflight_key, {job_id: record.created_at})
            pipe.execute()
        return record

    def get(self, job_id: str) -> JobRecord | None:
        fields = self.client.hgetall(RECORD_PREFIX + job_id)
        if not fields or b"created_at" not in fields:
            return None
        return JobRecord(
            id=job_id,
            created_at=float(fields[b"created_at"]),
            top_k=int(fields.get(b"top_k", 5)),
            form=fields.get(b"form", b"").decode(),
            cancelled=b"cancelled_at" in fields,
            owner=fields.get(b"owner", b"").decode(),
            webhook=fields.get(b"webhook", b"").decode(),
        )

    def load_image(self, job_id: str) -> bytes | None:
        return self.client.get(IMAGE_PREFIX + job_id)

    def crashes(self, job_id: str) -> int:
        """Batches the job went into that never ended: its worker died in them."""
        return int(self.client.hget(RECORD_PREFIX + job_id, "crashes") or 0)

    def batch_started(self, job_id: str) -> None:
        """Charge the job with a crash until `batch_ended` takes it back."""
        self._add_crashes(job_id, 1)

    def batch_ended(self, job_id: str) -> None:
        self._add_crashes(job_id, -1)

    def _add_crashes(self, job_id: str, amount: int) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(RECORD_PREFIX + job_id, "crashes", amount)
            pipe.expire(RECORD_PREFIX + job_id, self.ttl)
            pipe.execute()

    def stale_inflight(self, older_than: float) -> list[str]:
        """Unfinished jobs accepted (or last re-sent) before `older_than`."""
        found = self.client.zrangebyscore(self.inflight_key, "-inf", older_than)
        return [i.decode() for i in found]

    def touch_inflight(self, job_id: str, when: float) -> None:
        self.client.zadd(self.inflight_key, {job_id: when}, xx=True)

    def drop_inflight(self, job_id: str) -> None:
        self.client.zrem(self.inflight_key, job_id)

    def is_cancelled(self, job_id: str) -> bool:
        return bool(self.client.hexists(RECORD_PREFIX + job_id, "cancelled_at"))

    def mark_cancelled(self, job_id: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + job_id, "cancelled_at", repr(time.time()))
            pipe.delete(IMAGE_PREFIX + job_id)
            pipe.zrem(self.inflight_key, job_id)
            pipe.execute()

    def finish(self, job_id: str) -> str:
        """The result is stored: drop the image and keep the record as long as the
        result. Returns the job's webhook URL ("" for none), read in the same trip."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(IMAGE_PREFIX + job_id)
            pipe.expire(RECORD_PREFIX + job_id, self.ttl)
            pipe.zrem(self.inflight_key, job_id)
            pipe.hget(RECORD_PREFIX + job_id, "webhook")
            webhook = pipe.execute()[-1]
        return (webhook or b"").decode()
