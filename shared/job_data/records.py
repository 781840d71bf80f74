"""A job's record: how it is read, and the bookkeeping on it that is not a change of
its state (every state change is a script of `shared.job_data.store.JobStore`).

While a job is queued or started its record is a hash (`resq:job:<id>`) of small
fields. When it ends, the finish script replaces the hash with the job's final JSON,
a string of just what a client may still read: status, created_at, top_k, the
result or error, its owner and when it ended. A hash that holds a result is stored
by Redis as a hash table (a result is past `hash-max-listpack-value`), about 2.8 KB;
the string is a quarter of that, and an ended job's record is what Redis holds the
most of. It keeps what a client reads (status, created_at, top_k, result or error),
whose job it is, when it ended, and which worker ran it.

Job ids are UUIDv7: they carry the millisecond they were made in, which tells an id
whose result was dropped (made before the newest dropped one) from one never seen.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass

import redis

from shared.api_models import TOP_K_DEFAULT, JobStatus
from shared.job_data.keys import QueueKeys


def new_job_id(now: float | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 \
        | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def id_time(job_id: str) -> float | None:
    """When a UUIDv7 job id (or a batch item's, `<batch id>.<index>`) was made (Unix
    seconds); None for any other id."""
    try:
        parsed = uuid.UUID(job_id.split(".", 1)[0])
    except ValueError:
        return None
    return (parsed.int >> 80) / 1000 if parsed.version == 7 else None


@dataclass(frozen=True)
class JobRecord:
    id: str
    created_at: float
    top_k: int
    status: JobStatus
    form: str = ""
    owner: str = ""
    webhook: str = ""
    result: dict | None = None
    error: dict | None = None
    lane: str = "batch"  # `shared.lanes.Lane`; records from before lanes: batch
    deadline_at: float = 0.0  # Unix time it must start by; 0: no deadline
    webhook_events: tuple[str, ...] = ("completed",)
    finished_at: float = 0.0
    worker: str = ""  # the worker that started it last


def parse_record(job_id: str, raw: dict[bytes, bytes] | bytes | str | None) -> JobRecord | None:
    """A record as Redis holds it: a live job's hash, or an ended job's JSON."""
    if isinstance(raw, bytes | str):
        return _parse_ended(job_id, raw)
    if not raw or b"created_at" not in raw or b"status" not in raw:
        return None
    return JobRecord(
        id=job_id,
        created_at=float(raw[b"created_at"]),
        top_k=int(raw.get(b"top_k", TOP_K_DEFAULT)),
        form=raw.get(b"form", b"").decode(),
        status=JobStatus(raw[b"status"].decode()),
        owner=raw.get(b"owner", b"").decode(),
        webhook=raw.get(b"webhook", b"").decode(),
        lane=raw.get(b"lane", b"batch").decode(),
        deadline_at=float(raw.get(b"deadline_at", 0) or 0),
        webhook_events=tuple(raw.get(b"webhook_events", b"completed").decode().split(",")),
        worker=raw.get(b"worker", b"").decode(),
    )


def _parse_ended(job_id: str, raw: bytes | str) -> JobRecord | None:
    try:
        fields = json.loads(raw)
        return JobRecord(id=job_id, created_at=float(fields["created_at"]),
                         top_k=int(fields["top_k"]), status=JobStatus(fields["status"]),
                         owner=fields.get("owner", ""), result=fields.get("result"),
                         error=fields.get("error"),
                         finished_at=float(fields.get("finished_at", 0)),
                         worker=fields.get("worker", ""))
    except (ValueError, KeyError, TypeError):
        return None


ADD_CRASHES = """
-- KEYS: record; ARGV: amount. A live job's crash count moves by `amount`; an ended
-- job (cancelled mid-batch) or a vanished one is left alone.
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  return redis.call('HINCRBY', KEYS[1], 'crashes', ARGV[1])
end
return 0
"""


class JobRecords:
    def __init__(self, client: redis.Redis, ttl_seconds: int, queue: str):
        self.client = client
        self.ttl = ttl_seconds
        self.keys = QueueKeys(queue)
        self.inflight_key = self.keys.inflight
        self._add_crashes = client.register_script(ADD_CRASHES)

    def get(self, job_id: str) -> JobRecord | None:
        return self.get_many([job_id])[0]

    def get_many(self, ids: list[str]) -> list[JobRecord | None]:
        """The records of `ids`, in one round trip. Each is read both ways, as a live
        job's hash and then as an ended job's string; the read of the other type fails
        with WRONGTYPE. A record changes type once, from hash to string, so where both
        reads succeed the job ended between them and the string is the truth. Plain
        reads, neither a script nor MULTI: they pass where writes may not (Redis at its
        maxmemory refuses a MULTI, CLIENT PAUSE WRITE holds scripts, a replica)."""
        if not ids:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.record(job_id))
                pipe.get(self.keys.record(job_id))
            replies = pipe.execute(raise_on_error=False)
        records = []
        for n, job_id in enumerate(ids):
            live, ended = replies[2 * n], replies[2 * n + 1]
            if isinstance(ended, bytes):
                records.append(parse_record(job_id, ended))
            elif isinstance(live, dict):
                records.append(parse_record(job_id, live))
            else:
                records.append(None)
        return records

    def dropped(self, job_id: str, now: float | None = None) -> bool:
        """Whether an id with no record is one whose result was dropped to make room
        (made within the result TTL, before the newest dropped job): always False for
        ids that are not UUIDv7."""
        made = id_time(job_id)
        if made is None or made < (time.time() if now is None else now) - self.ttl:
            return False
        newest = self.client.get(self.keys.dropped_before)
        return newest is not None and made * 1000 <= int(newest)

    def batch_started(self, job_id: str) -> None:
        """Charge the job with a crash until `batch_ended` takes it back."""
        self._add_crashes(keys=[self.keys.record(job_id)], args=[1])

    def batch_ended(self, job_id: str) -> None:
        self._add_crashes(keys=[self.keys.record(job_id)], args=[-1])

    def drop_inflight(self, job_id: str) -> None:
        self.client.zrem(self.inflight_key, job_id)
