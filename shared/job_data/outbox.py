"""The webhook outbox in Redis: deliveries due, scored by when (`resq:outbox:<queue>`),
one hash per delivery (`resq:delivery:<id>`: job id, URL, attempts, event, and the
body: the job as it was at the event). A job's finish (or first start) script writes
its delivery here, in the same step that ends (or starts) the job
(`shared.job_data.store`), so a delivery needs nothing else: the job's record may be
dropped or expire before it is sent. The worker's dispatcher (`worker.webhooks`)
claims due deliveries under a lease, so a dispatcher that dies lets its claim come
due again. Deliveries are never dropped to make room; they expire with the result
TTL."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared.api_models import WebhookEvent
from shared.job_data.keys import QueueKeys

CLAIM = """
-- KEYS: outbox; ARGV: now, lease seconds. The first due delivery, leased until
-- now + lease (a dispatcher that dies with it lets it come due again).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), due[1])
return due[1]
"""


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str  # a batch's id for a batch's event
    url: str
    attempts: int
    event: WebhookEvent | str = "completed"  # a job's; a batch's: `batch.<event>`
    body: bytes = b""  # the job as it was at the event (JSON, without its id); a
    # batch's event has none: the batch is read when it is sent
    at: float = 0.0  # when the event happened (Unix seconds)


class WebhookOutbox:
    def __init__(self, client: redis.Redis, queue: str):
        self.client = client
        self.keys = QueueKeys(queue)
        self.outbox_key = self.keys.outbox
        self._claim = client.register_script(CLAIM)

    def claim(self, lease_seconds: float) -> Delivery | None:
        """The next due webhook delivery, leased to the caller for `lease_seconds`."""
        delivery_id = self._claim(keys=[self.outbox_key], args=[time.time(), lease_seconds])
        if not delivery_id:
            return None
        delivery_id = delivery_id.decode()
        fields = self.client.hgetall(self.keys.delivery(delivery_id))
        if not fields:  # expired with its job: nothing left to send
            self.client.zrem(self.outbox_key, delivery_id)
            return None
        return Delivery(id=delivery_id, job_id=fields[b"job_id"].decode(),
                        url=fields[b"url"].decode(), attempts=int(fields[b"attempts"]),
                        event=fields.get(b"event", b"completed").decode(),
                        body=fields.get(b"body", b""), at=float(fields.get(b"at", 0) or 0))

    def done(self, delivery: Delivery) -> None:
        """Delivered, or given up: the delivery leaves the outbox."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.outbox_key, delivery.id)
            pipe.delete(self.keys.delivery(delivery.id))
            pipe.execute()

    def defer(self, delivery: Delivery, retry_in: float) -> None:
        """Put the delivery back for `retry_in` seconds, no attempt counted (it was not
        tried: its zone's lookups were all taken)."""
        self.client.zadd(self.outbox_key, {delivery.id: time.time() + retry_in}, xx=True)

    def failed(self, delivery: Delivery, retry_in: float) -> None:
        """Try the delivery again in `retry_in` seconds."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.keys.delivery(delivery.id), "attempts", 1)
            pipe.zadd(self.outbox_key, {delivery.id: time.time() + retry_in})
            pipe.execute()
