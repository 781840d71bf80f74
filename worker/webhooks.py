"""Webhook delivery, as Standard Webhooks 1.0 has it: when a job ends (and, if it asked
with `webhook_events`, when a worker starts it), its webhook URL gets a POST of

    {"type": "job.completed" | "job.started", "timestamp": "<ISO 8601, the event's time>",
     "data": <the job as it was then: the body of GET /jobs/<id>>}

with the headers `webhook-id` (the delivery's id, the same on every attempt, for a
receiver to drop a repeat: delivery is at least once on the wire), `webhook-timestamp`
(Unix seconds of the attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`, one per key of `WEBHOOK_SECRET` (`whsec_` keys, newest
first), space-separated, so that a receiver verifies with either key during a
rotation. The id and the event (in the body) are signed with the body: a delivery
cannot be replayed under another id or passed off as another event. Receivers verify
with the `standardwebhooks` library (any language) or `resq_client.webhooks.verify`.

A webhook goes over https, or over plain http only to `WEBHOOK_HTTP_NETWORKS`; every
address is checked by the SSRF guard at each delivery.

Durable: the delivery is written to the job store's outbox in the same atomic step
that ends the job (`shared.job_data.store`), so a Redis blip at that moment loses
nothing. Each worker runs a few dispatcher threads of their own, apart from the
classification pool, that lease due deliveries from the outbox, POST them, and
then remove them, or put them back with backoff (1, 2, 4 ... s, at most 60 s)
until `WEBHOOK_MAX_ATTEMPTS`. A dispatcher that dies mid-delivery lets its lease
run out, and another takes the delivery. An address the guard refuses is not
tried again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime
from http.client import HTTPException
from ipaddress import IPv4Network, IPv6Network

from urllib3.exceptions import HTTPError

from shared.dns_resolver import ZoneBusy
from shared.errors import BadUrl
from shared.job_data.outbox import Delivery
from shared.job_data.records import parse_record
from shared.job_data.store import JobStore, job_view
from shared.pinned_http import Deadline, DeadlineExceeded, pinned_request
from shared.url_guard import AddressPolicy, Resolver, resolve
from worker import metrics

log = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_BACKOFF_SECONDS = 60
IDLE_POLL_SECONDS = 0.25


def signature(keys: list[bytes], delivery_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256>` of "id.timestamp.body" under each
    key, space-separated."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
                    .decode() for key in keys)


def envelope(delivery: Delivery, job: dict) -> bytes:
    """The body Standard Webhooks recommends: the event's type and time, and its data
    (the job, or for `batch.started` and `batch.completed` the batch)."""
    when = datetime.fromtimestamp(delivery.at or time.time(), UTC)
    kind = delivery.event if "." in delivery.event else f"job.{delivery.event}"
    return json.dumps({"type": kind,
                       "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       "data": job}, separators=(",", ":")).encode()


class DeliveryFailed(Exception):
    """The receiver did not take the delivery; it may be tried again."""


class DeliveryDeferred(Exception):
    """Not tried: the URL's zone has as many lookups under way as a worker allows."""


DEFER_SECONDS = 1.0


class WebhookSender:
    def __init__(self, store: JobStore, *, keys: list[bytes], timeout: float,
                 policy: AddressPolicy, resolver: Resolver = resolve,
                 http_networks: tuple[IPv4Network | IPv6Network, ...] = ()):
        self.store = store
        self.keys = keys
        self.timeout = timeout
        self.policy = policy
        self.resolver = resolver
        self.http_networks = http_networks

    def deliver(self, delivery: Delivery) -> bool:
        """True once delivered; False when there is nothing to deliver (the job
        expired) or the guard refuses the address (no retry helps); raises
        `DeliveryFailed` otherwise."""
        # The job as it was at the event, written with the delivery (a delivery from
        # before bodies were kept reads the record as it is now).
        if delivery.event.startswith("batch."):
            batch = self.store.batches.batch(delivery.job_id)
            data = None if batch is None else batch.model_dump(mode="json")
        else:
            record = (parse_record(delivery.job_id, delivery.body) if delivery.body
                      else self.store.record(delivery.job_id))
            data = None if record is None else job_view(record).model_dump(mode="json")
        if data is None:
            return False
        body = envelope(delivery, data)
        sent_at = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "resq-webhook",
                   ID_HEADER: delivery.id, TIMESTAMP_HEADER: str(sent_at),
                   SIGNATURE_HEADER: signature(self.keys, delivery.id, sent_at, body)}
        deadline = Deadline(self.timeout)  # the whole attempt: lookup, send, answer
        try:
            response, exchange = pinned_request(
                "POST", delivery.url, policy=self.policy, resolver=self.resolver, body=body,
                deadline=deadline, headers=headers, plain_http_networks=self.http_networks)
        except ZoneBusy:
            raise DeliveryDeferred() from None
        except BadUrl as error:
            log.error("webhook of job %s refused: %s", delivery.job_id, error.message,
                      extra={"job_id": delivery.job_id})
            return False
        except (HTTPError, HTTPException, OSError, DeadlineExceeded) as error:
            raise DeliveryFailed(f"{type(error).__name__}") from None
        try:
            response.read(64 * 1024)  # a little of the answer, never all of it
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"HTTP {response.status}")
        except (HTTPError, HTTPException, OSError) as error:
            raise DeliveryFailed(f"{type(error).__name__}") from None
        finally:
            exchange.close()
        log.info("webhook of job %s delivered", delivery.job_id,
                 extra={"job_id": delivery.job_id})
        return True


class WebhookDispatcher:
    """`threads` threads that take due deliveries from the outbox and send them."""

    def __init__(self, store: JobStore, sender: WebhookSender, *, max_attempts: int,
                 threads: int):
        self.store = store
        self.sender = sender
        self.max_attempts = max_attempts
        # Long enough for one attempt (connect and read) with room to spare.
        self.lease_seconds = 3 * sender.timeout + 5
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"webhooks-{n}", daemon=True)
                         for n in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                delivery = self.store.outbox.claim(self.lease_seconds)
            except Exception as error:  # Redis away: the outbox keeps every delivery
                log.warning("webhook outbox unreachable: %s", error)
                self._stopping.wait(1.0)
                continue
            if delivery is None:
                self._stopping.wait(IDLE_POLL_SECONDS)
                continue
            try:
                self.attempt(delivery)
            except Exception:  # its lease runs out and it is tried again
                log.exception("webhook delivery %s", delivery.id)

    def attempt(self, delivery: Delivery) -> None:
        try:
            delivered = self.sender.deliver(delivery)
        except DeliveryDeferred:
            metrics.WEBHOOKS.labels(outcome="deferred").inc()
            self.store.outbox.defer(delivery, DEFER_SECONDS)
            return
        except DeliveryFailed as error:
            tried = delivery.attempts + 1
            if tried >= self.max_attempts:
                log.error("webhook of job %s: giving up after %d attempts (%s)",
                          delivery.job_id, tried, error, extra={"job_id": delivery.job_id})
                metrics.WEBHOOKS.labels(outcome="gave_up").inc()
                self.store.outbox.done(delivery)
                return
            metrics.WEBHOOKS.labels(outcome="retried").inc()
            self.store.outbox.failed(delivery, min(2 ** delivery.attempts, MAX_BACKOFF_SECONDS))
            return
        metrics.WEBHOOKS.labels(outcome="delivered" if delivered else "refused").inc()
        self.store.outbox.done(delivery)
