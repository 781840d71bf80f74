"""Webhook delivery: when a job ends (and, if it asked with `webhook_events`, when a
worker starts it), its webhook URL gets the job as it is then (the same body as
`GET /jobs/<id>`) by POST, signed, through the SSRF guard; `Resq-Event` says which.

Signature (as Stripe's): the header
    Resq-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<t>." + body)>
A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares
in constant time, and refuses old timestamps (replays). `Resq-Job-Id` names the job;
`Resq-Delivery-Id` names the delivery, the same on every attempt, so a receiver
drops a delivery it has seen (delivery is at least once on the wire).

Durable: the delivery is written to the job store's outbox in the same atomic step
that ends the job (`shared.job_store`), so a Redis blip at that moment loses
nothing. Each worker runs a few dispatcher threads of their own, apart from the
classification pool, that lease due deliveries from the outbox, POST them, and
then remove them, or put them back with backoff (1, 2, 4 ... s, at most 60 s)
until `WEBHOOK_MAX_ATTEMPTS`. A dispatcher that dies mid-delivery lets its lease
run out, and another takes the delivery. An address the guard refuses is not
tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from http.client import HTTPException

from urllib3.exceptions import HTTPError

from shared.errors import BadUrl
from shared.job_data.outbox import Delivery
from shared.job_data.records import parse_record
from shared.job_data.store import JobStore, job_view
from shared.pinned_http import Deadline, DeadlineExceeded, pinned_request
from shared.url_guard import AddressPolicy, Resolver, resolve
from worker import metrics

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Resq-Signature"
DELIVERY_HEADER = "Resq-Delivery-Id"
EVENT_HEADER = "Resq-Event"  # `started` or `completed` (a job's `webhook_events`)
MAX_BACKOFF_SECONDS = 60
IDLE_POLL_SECONDS = 0.25


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does (also documented in docs/clients.md)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class DeliveryFailed(Exception):
    """The receiver did not take the delivery; it may be tried again."""


class WebhookSender:
    def __init__(self, store: JobStore, *, secret: bytes, timeout: float,
                 policy: AddressPolicy, resolver: Resolver = resolve):
        self.store = store
        self.secret = secret
        self.timeout = timeout
        self.policy = policy
        self.resolver = resolver

    def deliver(self, delivery: Delivery) -> bool:
        """True once delivered; False when there is nothing to deliver (the job
        expired) or the guard refuses the address (no retry helps); raises
        `DeliveryFailed` otherwise."""
        # The job as it was at the event, written with the delivery (a delivery from
        # before bodies were kept reads the record as it is now).
        record = (parse_record(delivery.job_id, delivery.body) if delivery.body
                  else self.store.record(delivery.job_id))
        if record is None:
            return False
        body = job_view(record).model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "resq-webhook",
                   "Resq-Job-Id": delivery.job_id, DELIVERY_HEADER: delivery.id,
                   EVENT_HEADER: delivery.event,
                   SIGNATURE_HEADER: signature(self.secret, int(time.time()), body)}
        deadline = Deadline(self.timeout)  # the whole attempt: lookup, send, answer
        try:
            response, exchange = pinned_request(
                "POST", delivery.url, policy=self.policy, resolver=self.resolver, body=body,
                deadline=deadline, headers=headers)
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
